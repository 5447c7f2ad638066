//! minikv: a small distributed in-memory key-value store that speaks both the Redis protocol
//! (RESP2/RESP3) and the spec's JSON protocol on one port per node, with a cluster client that
//! shards keys across nodes by MD5 modulo N.
//!
//! Data flow of one request:
//! `accept -> server::sniff -> server::conn (codec loop) -> protocol::{resp|json} -> Request
//! -> cmd::execute (table lookup, handler) -> store shard -> Reply -> codec encode -> socket`,
//! and for a write, `cmd::capture -> effect::Effect -> the node's effect sink (aof, ...)`.
//!
//! Modules:
//! - [`server`]: accept loop, connection tasks, graceful shutdown.
//! - [`protocol`]: `Request`/`Reply` and the RESP and JSON codecs (bytes only, no store).
//! - [`cmd`]: the command table, sessions, effect capture and every command's handler.
//! - [`store`]: sharded keyspace, typed values, TTL index, expiry sweep, KEYS patterns.
//! - [`effect`]: the effect stream every write produces, and the sink interface.
//! - [`block`]: clients blocked on lists and sorted sets (BLPOP, BZPOPMIN...).
//! - [`aof`]: the append-only log, an effect sink, and its replay.
//! - [`persist`]: JSON snapshots, atomic writes, restore on start.
//! - [`error`]: the crate's error type.
//! - [`pubsub`]: channel and pattern subscriptions, PUBLISH's deliveries to the subscribed
//!   connections, and the slow-subscriber limits.
//! - [`stats`], [`node`], [`config`]: counters (and the latency monitor), shared node state,
//!   configuration.
//! - [`memory`]: the memory budget (`maxmemory`): the allocator's count and eviction.
//! - [`periodic`]: the tick of the node's background loops.
//! - [`report`]: a plain snapshot of every figure INFO and STATS show, gathered from the node.
//! - [`launch`]: serving a set of nodes in one process until Ctrl+C or SIGTERM.
//! - [`client`]: the cluster client (routing to shard leaders, pooling, retries); [`repl`]: the
//!   spec's REPL, [`repl::terminal`]: the REPL on standard input (prompt, history) or one command.
//!   [`client::rebalance`]: slot moves for `minikv rebalance` and `minikv remove-node`.
//! - [`http`]: the HTTP port: Prometheus `/metrics`, `/healthz` and the live dashboard.
//! - [`tls`]: optional TLS (rustls) for nodes and the cluster client.
//! - [`replication`]: Raft groups (openraft) replicating the effect stream, and the cluster bus
//!   (their RPCs over TCP).
//! - [`cluster`]: the replicated cluster (`--cluster`): placement, this node's shard members,
//!   routing and forwarding, CLUSTER commands.

// Deny, not forbid: `memory::alloc` asks glibc for its statistics in the crate's one unsafe
// block (a foreign call), allowed there alone.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod aof;
pub mod block;
pub mod client;
pub mod cluster;
pub mod cmd;
pub mod config;
pub mod effect;
pub mod error;
pub mod http;
pub mod launch;
pub mod memory;
pub mod node;
pub mod periodic;
pub mod persist;
pub mod protocol;
pub mod pubsub;
pub mod repl;
pub mod replication;
pub mod report;
pub mod server;
pub mod stats;
pub mod store;
pub mod tls;

pub use client::router::{node_for, slot_of, SLOTS};
pub use client::{ClientConfig, ClusterClient};
pub use config::NodeConfig;
pub use error::{Error, Result};
pub use server::Server;
