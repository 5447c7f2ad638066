//! Publish/subscribe: the node's registry of channel and pattern subscriptions, and delivery
//! of published messages to the connections that subscribed.
//!
//! One [`PubSub`] hangs off the node. A connection's first SUBSCRIBE or PSUBSCRIBE gives it a
//! [`Subscriptions`] (kept in its session) holding its [`Subscriber`]: a queue of
//! [`Delivery`] values, and a count of the bytes delivered to it that are not yet written to
//! its socket (the `queue` module). PUBLISH builds one [`Message`] behind an `Arc`, looks
//! the channel up and matches every pattern with [`crate::store::pattern`] (Redis's glob, as
//! Redis matches patterns), and sends each subscriber an `Arc` of a [`Delivery`]: the shared
//! message and the pattern that matched, one per publish and subscription (every subscriber
//! of the channel gets the same one). The connection task receives them beside its socket
//! (the out-of-band path MONITOR uses too) and appends each frame in its own protocol's
//! encoding, which the first connection of that encoding renders and the rest copy
//! ([`Delivery::encode_into`]; this module keeps the bytes without knowing the codecs).
//!
//! Slow subscribers are bounded as Redis bounds them with `client-output-buffer-limit pubsub`
//! ([`OutputLimits`]): a delivery that takes a subscriber's pending bytes past the hard limit,
//! or finds them above the soft limit for longer than its seconds, closes that connection
//! (its kill token, as CLIENT KILL) and nothing more is queued for it. The queue has no bound
//! of its own: with a hard limit set, what it holds never exceeds that limit.
//!
//! This module must not know about connections, codecs or the store's data: it keeps
//! subscriptions and hands out deliveries.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};

use bytes::{Bytes, BytesMut};
use tokio_util::sync::CancellationToken;

use crate::protocol::{Reply, PUSH_ENCODINGS};
use crate::store::pattern;

pub mod limits;
mod queue;

pub use limits::{ClassLimit, OutputLimits};
pub use queue::{Receiver, Subscriber, Wakes};

/// The node's subscriptions: channel and pattern to subscribers.
#[derive(Debug)]
pub struct PubSub {
    /// Channels and patterns. A std lock: every holder is short and synchronous (a publish
    /// only queues its deliveries), and nothing awaits while holding it.
    registry: RwLock<Registry>,
    /// `client-output-buffer-limit`, changed at run time by CONFIG SET.
    pub limits: OutputLimits,
    /// The clock of the soft limit's timers (milliseconds since this instant).
    epoch: std::time::Instant,
}

#[derive(Debug, Default)]
struct Registry {
    /// Channel to its subscribers, in subscription order.
    channels: HashMap<Bytes, Vec<Arc<Subscriber>>, ahash::RandomState>,
    /// Pattern to its subscribers, in subscription order.
    patterns: HashMap<Bytes, Vec<Arc<Subscriber>>, ahash::RandomState>,
}

/// One published message, shared by every delivery of it.
#[derive(Debug)]
pub struct Message {
    /// The channel it was published to.
    pub channel: Bytes,
    /// What was published.
    pub payload: Bytes,
}

/// A message on its way to the subscribers of one subscription: the shared message, the
/// pattern it matched (`None` for a channel subscription), and its frame in each encoding.
/// One publish makes one delivery for a channel's subscribers and one per matching pattern,
/// each shared (behind an `Arc`) by every subscriber it goes to, so a frame is encoded once
/// per publish and encoding, not once per subscriber.
#[derive(Debug)]
pub struct Delivery {
    /// The pattern subscription it came through, if any.
    pub pattern: Option<Bytes>,
    /// The message.
    pub message: Arc<Message>,
    /// What it counts against a subscriber's output limits (see [`Delivery::size`]).
    size: usize,
    /// The frame in each of the [`PUSH_ENCODINGS`], made by the first connection that needs
    /// it.
    encoded: [OnceLock<Bytes>; PUSH_ENCODINGS],
}

impl Delivery {
    /// A delivery of `message`, through `pattern` if it matched one.
    pub fn new(pattern: Option<Bytes>, message: Arc<Message>) -> Delivery {
        let size = DELIVERY_OVERHEAD
            + message.channel.len()
            + message.payload.len()
            + pattern.as_ref().map_or(0, Bytes::len);
        Delivery {
            pattern,
            message,
            size,
            encoded: Default::default(),
        }
    }

    /// The bytes this delivery counts against the subscriber's output limits: about its RESP
    /// size, as Redis counts its output buffer.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The push frame Redis sends for it: `message channel payload`, or
    /// `pmessage pattern channel payload`.
    pub fn to_reply(&self) -> Reply {
        let m = &self.message;
        match &self.pattern {
            None => Reply::Push(vec![
                Reply::text("message"),
                Reply::Bulk(m.channel.clone()),
                Reply::Bulk(m.payload.clone()),
            ]),
            Some(pattern) => Reply::Push(vec![
                Reply::text("pmessage"),
                Reply::Bulk(pattern.clone()),
                Reply::Bulk(m.channel.clone()),
                Reply::Bulk(m.payload.clone()),
            ]),
        }
    }

    /// Appends the frame in push encoding `slot` (a codec's
    /// [`crate::protocol::Codec::push_encoding`]) to `dst`. The first caller for a slot
    /// renders it with `encode` (given [`Delivery::to_reply`] and a buffer to append to) and
    /// keeps the bytes; later callers, whichever connection they serve, copy them.
    ///
    /// # Errors
    /// What `encode` returned.
    pub fn encode_into<E>(
        &self,
        slot: usize,
        dst: &mut BytesMut,
        encode: impl FnOnce(&Reply, &mut BytesMut) -> Result<(), E>,
    ) -> Result<(), E> {
        let Some(cell) = self.encoded.get(slot) else {
            return encode(&self.to_reply(), dst);
        };
        if let Some(frame) = cell.get() {
            dst.extend_from_slice(frame);
            return Ok(());
        }
        let mut frame = BytesMut::with_capacity(self.size);
        encode(&self.to_reply(), &mut frame)?;
        // Two connections may race to render it: both made the same bytes.
        let frame = cell.get_or_init(|| frame.freeze());
        dst.extend_from_slice(frame);
        Ok(())
    }
}

impl Default for PubSub {
    fn default() -> Self {
        PubSub {
            registry: RwLock::default(),
            limits: OutputLimits::default(),
            epoch: std::time::Instant::now(),
        }
    }
}

impl PubSub {
    /// Publishes `payload` on `channel` to this node's subscribers; returns how many
    /// deliveries were made (a connection subscribed to the channel and to a matching
    /// pattern counts twice, as in Redis). The subscribers' connections are woken before it
    /// returns.
    pub fn publish(&self, channel: Bytes, payload: Bytes) -> usize {
        self.publish_deferring(channel, payload, &mut Wakes::default())
    }

    /// [`PubSub::publish`], leaving the subscribers' connections that need waking in `wakes`
    /// (a connection running a pipeline of PUBLISHes wakes each subscriber once at its end).
    pub fn publish_deferring(&self, channel: Bytes, payload: Bytes, wakes: &mut Wakes) -> usize {
        let message = Arc::new(Message { channel, payload });
        let limit = self.limits.pubsub();
        let now_ms = self.epoch.elapsed().as_millis() as u64;
        let registry = self.read();
        let mut receivers = 0;
        if let Some(subscribers) = registry.channels.get(&message.channel) {
            let delivery = Arc::new(Delivery::new(None, message.clone()));
            for s in subscribers {
                s.deliver(&delivery, limit, now_ms, wakes);
            }
            receivers += subscribers.len();
        }
        for (pattern, subscribers) in &registry.patterns {
            if !pattern::matches(pattern, &message.channel) {
                continue;
            }
            let delivery = Arc::new(Delivery::new(Some(pattern.clone()), message.clone()));
            for s in subscribers {
                s.deliver(&delivery, limit, now_ms, wakes);
            }
            receivers += subscribers.len();
        }
        receivers
    }

    /// Channels with at least one subscriber, matching `filter` when given (PUBSUB CHANNELS).
    pub fn channels(&self, filter: Option<&[u8]>) -> Vec<Bytes> {
        self.read()
            .channels
            .keys()
            .filter(|c| filter.is_none_or(|p| pattern::matches(p, c)))
            .cloned()
            .collect()
    }

    /// Subscribers of `channel` (PUBSUB NUMSUB; patterns not counted).
    pub fn numsub(&self, channel: &[u8]) -> usize {
        self.read().channels.get(channel).map_or(0, Vec::len)
    }

    /// Channels with at least one subscriber (INFO `pubsub_channels`).
    pub fn channel_count(&self) -> usize {
        self.read().channels.len()
    }

    /// Distinct patterns subscribed to (PUBSUB NUMPAT, INFO `pubsub_patterns`).
    pub fn pattern_count(&self) -> usize {
        self.read().patterns.len()
    }

    /// A new connection's subscription state, not yet subscribed to anything; `kill` closes
    /// the connection (its client's kill token).
    pub fn subscriptions(self: &Arc<Self>, id: u64, kill: CancellationToken) -> Subscriptions {
        let (me, rx) = Subscriber::new(id, kill);
        Subscriptions {
            registry: self.clone(),
            me,
            rx: Some(rx),
            channels: HashSet::default(),
            patterns: HashSet::default(),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Registry> {
        self.registry.read().expect("pubsub registry lock poisoned")
    }

    fn write(&self) -> RwLockWriteGuard<'_, Registry> {
        self.registry
            .write()
            .expect("pubsub registry lock poisoned")
    }
}

/// What one connection is subscribed to. Dropping it (the connection ends, whatever the
/// reason) removes every subscription from the registry.
#[derive(Debug)]
pub struct Subscriptions {
    registry: Arc<PubSub>,
    me: Arc<Subscriber>,
    /// The receiving end, until the connection takes it.
    rx: Option<Receiver>,
    channels: HashSet<Bytes, ahash::RandomState>,
    patterns: HashSet<Bytes, ahash::RandomState>,
}

/// Which kind of subscription: to a channel by name, or to a pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// SUBSCRIBE / UNSUBSCRIBE.
    Channel,
    /// PSUBSCRIBE / PUNSUBSCRIBE.
    Pattern,
}

impl Subscriptions {
    /// Subscribes to `name`; false if it already was.
    pub fn subscribe(&mut self, kind: Kind, name: &Bytes) -> bool {
        if !self.set(kind).insert(name.clone()) {
            return false;
        }
        let mut registry = self.registry.write();
        let map = match kind {
            Kind::Channel => &mut registry.channels,
            Kind::Pattern => &mut registry.patterns,
        };
        map.entry(name.clone()).or_default().push(self.me.clone());
        true
    }

    /// Unsubscribes from `name`; false if it was not subscribed.
    pub fn unsubscribe(&mut self, kind: Kind, name: &[u8]) -> bool {
        if !self.set(kind).remove(name) {
            return false;
        }
        let mut registry = self.registry.write();
        let map = match kind {
            Kind::Channel => &mut registry.channels,
            Kind::Pattern => &mut registry.patterns,
        };
        remove(map, name, self.me.id);
        true
    }

    /// Everything of `kind` subscribed to now, in no particular order (as Redis's dict).
    pub fn names(&self, kind: Kind) -> Vec<Bytes> {
        match kind {
            Kind::Channel => self.channels.iter().cloned().collect(),
            Kind::Pattern => self.patterns.iter().cloned().collect(),
        }
    }

    /// Channel subscriptions.
    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    /// Pattern subscriptions.
    pub fn pattern_count(&self) -> usize {
        self.patterns.len()
    }

    /// Channel and pattern subscriptions together (the count in confirmations).
    pub fn count(&self) -> usize {
        self.channels.len() + self.patterns.len()
    }

    /// The receiving end of the connection's deliveries, once: the connection task takes it
    /// and reads it beside its socket.
    pub fn take_receiver(&mut self) -> Option<Receiver> {
        self.rx.take()
    }

    /// The registry's handle on this connection (to give back written bytes).
    pub fn subscriber(&self) -> Arc<Subscriber> {
        self.me.clone()
    }

    fn set(&mut self, kind: Kind) -> &mut HashSet<Bytes, ahash::RandomState> {
        match kind {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
        }
    }
}

impl Drop for Subscriptions {
    fn drop(&mut self) {
        if self.channels.is_empty() && self.patterns.is_empty() {
            return;
        }
        let mut registry = self.registry.write();
        for c in &self.channels {
            remove(&mut registry.channels, c, self.me.id);
        }
        for p in &self.patterns {
            remove(&mut registry.patterns, p, self.me.id);
        }
    }
}

/// Removes subscriber `id` from `name`'s list, and the name when nobody is left.
fn remove(
    map: &mut HashMap<Bytes, Vec<Arc<Subscriber>>, ahash::RandomState>,
    name: &[u8],
    id: u64,
) {
    if let Some(list) = map.get_mut(name) {
        if let Some(i) = list.iter().position(|s| s.id == id) {
            // `remove`, not `swap_remove`: the others keep their delivery order.
            list.remove(i);
        }
        if list.is_empty() {
            map.remove(name);
        }
    }
}

/// What a delivery costs beyond its strings: the RESP headers around them.
const DELIVERY_OVERHEAD: usize = 48;

#[cfg(test)]
mod tests;
