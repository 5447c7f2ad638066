//! Pub/sub across a replicated cluster: PUBLISH on any node reaches the subscribers of every
//! node. Each node delivers to its own subscribers, then hands the message to one forwarder
//! task per peer, which sends what has queued up as one [`Call::Publish`] over the bus and
//! waits for the answer before sending more, so a peer's subscribers get one publisher's
//! messages in order. Best effort, as Redis Cluster's bus broadcast: never through Raft, a
//! peer that is down or slow loses messages (its queue holds 16384 messages at most; beyond that
//! new messages for it are dropped), and PUBLISH's reply counts this node's receivers only.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::{Answer, Call, Cluster, CALL_TIMEOUT};
use crate::node::Node;
use crate::replication::bus::BusCaller;

/// The per-peer forwarders of one node, started on first use.
#[derive(Debug, Default)]
pub struct Fanout {
    /// Peer member id to its forwarder's queue. A std mutex held only to look up or insert.
    peers: Mutex<HashMap<u64, mpsc::Sender<(Bytes, Bytes)>>>,
}

impl Cluster {
    /// Sends a published message to every other node of the cluster (not waiting for them).
    pub fn publish(&self, channel: &Bytes, message: &Bytes) {
        let table = self.table();
        let mut peers = self
            .fanout
            .peers
            .lock()
            .expect("pubsub fanout lock poisoned");
        for (id, peer) in table.nodes.iter().filter(|(id, _)| **id != self.me) {
            let queue = peers.entry(*id).or_insert_with(|| {
                let (tx, rx) = mpsc::channel(QUEUE);
                tokio::spawn(forward(self.caller.clone(), peer.bus.clone(), rx));
                tx
            });
            if queue.try_send((channel.clone(), message.clone())).is_err() {
                tracing::debug!(
                    peer = id,
                    "pubsub message dropped: the peer is not keeping up"
                );
            }
        }
    }
}

/// Delivers messages published on another node to this node's subscribers.
pub(super) fn deliver(node: &Node, messages: Vec<(Bytes, Bytes)>) -> Answer {
    for (channel, message) in messages {
        node.pubsub.publish(channel, message);
    }
    Answer::Done
}

/// Sends queued messages to the bus at `addr`, a batch per call, until the node drops its
/// queue.
async fn forward(caller: BusCaller, addr: String, mut rx: mpsc::Receiver<(Bytes, Bytes)>) {
    while let Some(first) = rx.recv().await {
        let mut bytes = first.0.len() + first.1.len();
        let mut batch = vec![first];
        while bytes < BATCH_BYTES {
            let Ok(next) = rx.try_recv() else { break };
            bytes += next.0.len() + next.1.len();
            batch.push(next);
        }
        let payload = match postcard::to_allocvec(&Call::Publish(batch)) {
            Ok(payload) => payload,
            Err(e) => {
                tracing::warn!(%addr, "cannot encode published messages: {e}");
                continue;
            }
        };
        if let Err(e) = caller.call(&addr, payload, CALL_TIMEOUT).await {
            tracing::debug!(%addr, "published messages not delivered: {e}");
        }
    }
}

/// Messages waiting per peer before new ones are dropped.
const QUEUE: usize = 16 * 1024;
/// Bytes of messages sent in one call, about.
const BATCH_BYTES: usize = 1 << 20;
