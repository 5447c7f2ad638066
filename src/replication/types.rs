//! The type configuration of a shard's Raft group: what its log carries and what applying an
//! entry answers.

use std::io::Cursor;

use serde::{Deserialize, Serialize};

use crate::effect::Effect;

/// A member's id inside its group.
pub type NodeId = u64;

/// One log entry's application data: the effects of one command or one transaction, in the
/// order they happened (what an `EffectSink` receives in one `append`).
pub type Batch = Vec<Effect>;

/// What applying one batch answers to the writer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// Effects this member could not apply: they name a database past its `--databases`
    /// (the members were configured differently). The rest of the batch is applied.
    pub rejected: usize,
}

openraft::declare_raft_types!(
    /// The openraft configuration of a shard's group: batches of effects in, [`Applied`] out,
    /// `u64` ids, `BasicNode` addresses, snapshots as bytes (`Cursor<Vec<u8>>`), tokio.
    pub TypeConfig:
        D = Batch,
        R = Applied,
);

/// A handle to one member of a group.
pub type Raft = openraft::Raft<TypeConfig>;
