//! Replication of the effect stream with Raft (issue 10, first building block): one Raft group
//! per shard, on `openraft` 0.9. A group's log entries are batches of [`Effect`]s, its state
//! machine is a [`Store`] that applies them with [`Effect::apply`], and its snapshots are the
//! store's dump.
//!
//! Pieces, one file each (the split of openraft's `raft-kv-memstore` example):
//! - [`types`]: the group's openraft type configuration and aliases.
//! - [`log`]: [`LogStore`], the Raft log and vote, in memory or durable in a directory.
//! - [`disk_log`]: the durable log's files: framed, checksummed entries and an atomically
//!   replaced vote file.
//! - [`state_machine`]: [`StateMachine`], committed batches applied to the group's [`Scope`]
//!   of a [`Store`] (its own leader's batches skipped: already there), snapshots built from
//!   its dump once no speculative write is outstanding, installed by clear + load, kept in a
//!   directory, and [`StateMachine::reset`] back to committed state.
//! - [`snapshot`]: the snapshot's bytes: a zstd-compressed, checksummed frame, and its file.
//! - [`network`]: [`Router`], an in-process network between `Raft` handles, for tests.
//! - [`bus`]: the cluster bus, the same RPCs over TCP or mutual TLS in compact binary frames:
//!   [`bus::run`] serves local members (and the node layer's calls), [`BusNetwork`] reaches
//!   peers by address, [`BusCaller`] makes calls (not on the command line yet).
//!
//! Not wired into the node or the command line yet: nothing here is reached from `server` or
//! `cmd`. This module knows the store and the effect stream, never commands; only [`bus`]
//! knows sockets.
//!
//! [`Effect`]: crate::effect::Effect
//! [`Effect::apply`]: crate::effect::Effect::apply
//! [`Store`]: crate::store::Store

pub mod bus;
pub mod disk_log;
pub mod log;
pub mod network;
pub mod slots;
pub mod snapshot;
pub mod state_machine;
pub mod types;

use std::sync::Arc;

use openraft::error::Fatal;

pub use bus::{BusCaller, BusNetwork, BusTls, CallHandler, GroupId, Groups};
pub use log::LogStore;
pub use network::Router;
pub use snapshot::SnapshotError;
pub use state_machine::{Scope, StateMachine};
pub use types::{Batch, NodeId, Raft, Speculation, TypeConfig};

use crate::store::Store;

/// Starts one member `id` of a group: a Raft node over a fresh in-memory log, applying to
/// `store`, reached by its peers through `router` (it registers itself there).
///
/// # Errors
/// [`Fatal`] when openraft cannot start the node (an invalid `config`, a storage error).
pub async fn start(
    id: NodeId,
    config: Arc<openraft::Config>,
    store: Arc<Store>,
    router: &Router,
) -> Result<Raft, Fatal<NodeId>> {
    restart(
        id,
        config,
        LogStore::default(),
        StateMachine::new(store),
        router,
    )
    .await
}

/// Starts member `id` again over the log and state machine it had before (a restart that
/// kept its disk), registering it in `router`.
///
/// # Errors
/// [`Fatal`] when openraft cannot start the node (an invalid `config`, a storage error).
pub async fn restart(
    id: NodeId,
    config: Arc<openraft::Config>,
    log: LogStore,
    state_machine: StateMachine,
    router: &Router,
) -> Result<Raft, Fatal<NodeId>> {
    let raft = Raft::new(id, config, router.clone(), log, state_machine).await?;
    router.add(id, raft.clone());
    Ok(raft)
}
