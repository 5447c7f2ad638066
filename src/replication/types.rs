//! The type configuration of a shard's Raft group: what its log carries and what applying an
//! entry answers, and [`Speculation`], what the group's leader and its state machine share.

use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, RwLock};

use crate::effect::Effect;

/// A member's id inside its group.
pub type NodeId = u64;

/// One log entry's application data: the effects of one or more commands (or transactions),
/// in the order they happened, and who proposed them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// The [`Speculation::origin`] of the leader that proposed the batch (0: none). A member's
    /// state machine skips batches carrying its own current origin: its leader already
    /// applied them to the store when the commands ran.
    pub origin: u64,
    /// The proposer's sequence number of the last command batch included
    /// ([`Speculation::submitted`] counts them).
    pub seq: u64,
    /// The effects.
    pub effects: Vec<Effect>,
}

impl Batch {
    /// A batch of `effects` that every member applies (no origin).
    pub fn of(effects: Vec<Effect>) -> Batch {
        Batch {
            origin: 0,
            seq: 0,
            effects,
        }
    }
}

impl From<Vec<Effect>> for Batch {
    fn from(effects: Vec<Effect>) -> Batch {
        Batch::of(effects)
    }
}

/// What applying one batch answers to the writer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// Effects this member could not apply: they name a database past its `--databases`
    /// (the members were configured differently), or, in a group's state machine, a key of
    /// another group or a SWAPDB. The rest of the batch is applied.
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

/// What a group's leader shares with its member's state machine.
///
/// The leader runs write commands straight against the store (speculatively: before the
/// group has committed them) and proposes their effects tagged with `origin`; the state
/// machine skips batches with its current origin (already in the store) and applies every
/// other batch. A leader that steps down with proposals still open gets a new origin and its
/// store rebuilt from committed state, so batches of the old origin are applied normally.
///
/// `submitted` counts command batches handed to the proposer, `applied` the highest `seq`
/// the state machine has seen of the current origin: when they are equal, everything the
/// store holds is committed. A snapshot is copied with `pause` held for writing (no command
/// runs speculatively meanwhile) once they are equal, so a snapshot never holds a write the
/// group might still lose.
#[derive(Debug, Default)]
pub struct Speculation {
    /// The current origin (0 before the member first leads).
    pub origin: AtomicU64,
    /// Command batches submitted by the leader under the current origin.
    pub submitted: AtomicU64,
    /// The highest `seq` of the current origin the state machine has passed.
    pub applied: AtomicU64,
    /// Woken whenever `applied` moves.
    pub moved: Notify,
    /// Held for reading while a command runs speculatively; for writing while a snapshot copy
    /// is taken.
    pub pause: RwLock<()>,
}

impl Speculation {
    /// Records that the state machine passed batch `seq` of `origin`; false (and nothing
    /// recorded) when `origin` is not the current one.
    pub fn passed(&self, origin: u64, seq: u64) -> bool {
        if origin == 0 || origin != self.origin.load(Ordering::Acquire) {
            return false;
        }
        self.applied.fetch_max(seq, Ordering::AcqRel);
        self.moved.notify_waiters();
        true
    }

    /// Whether every submitted batch has been passed by the state machine.
    pub fn settled(&self) -> bool {
        self.applied.load(Ordering::Acquire) >= self.submitted.load(Ordering::Acquire)
    }

    /// Waits until every batch submitted so far has been passed by the state machine.
    pub async fn wait_settled(&self) {
        loop {
            let moved = self.moved.notified();
            tokio::pin!(moved);
            moved.as_mut().enable();
            if self.settled() {
                return;
            }
            moved.await;
        }
    }

    /// Starts a new origin (a new term of leadership, or after a rebuild): counters reset.
    pub fn renew(&self) -> u64 {
        let origin = fastrand::u64(1..);
        self.submitted.store(0, Ordering::Release);
        self.applied.store(0, Ordering::Release);
        self.origin.store(origin, Ordering::Release);
        self.moved.notify_waiters();
        origin
    }
}
