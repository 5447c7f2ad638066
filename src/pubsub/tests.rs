use super::*;

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn drain(rx: &mut Receiver) -> Vec<(Option<Bytes>, Bytes, Bytes)> {
    let mut out = Vec::new();
    let mut taken = Vec::new();
    rx.try_take(&mut taken);
    for d in taken {
        out.push((
            d.pattern.clone(),
            d.message.channel.clone(),
            d.message.payload.clone(),
        ));
    }
    out
}

#[test]
fn publish_reaches_channel_and_pattern_subscribers_once_each() {
    let registry = Arc::new(PubSub::default());
    let mut a = registry.subscriptions(1, CancellationToken::new());
    let mut b_ = registry.subscriptions(2, CancellationToken::new());
    assert!(a.subscribe(Kind::Channel, &b("news")));
    assert!(!a.subscribe(Kind::Channel, &b("news")));
    assert!(a.subscribe(Kind::Pattern, &b("n*")));
    assert!(b_.subscribe(Kind::Pattern, &b("x*")));
    assert_eq!(a.count(), 2);
    assert_eq!(registry.publish(b("news"), b("hi")), 2);
    assert_eq!(registry.publish(b("other"), b("no")), 0);
    let mut rx = a.take_receiver().expect("receiver");
    assert!(a.take_receiver().is_none());
    assert_eq!(
        drain(&mut rx),
        vec![
            (None, b("news"), b("hi")),
            (Some(b("n*")), b("news"), b("hi")),
        ]
    );
    assert_eq!(registry.numsub(b"news"), 1);
    assert_eq!(registry.channel_count(), 1);
    assert_eq!(registry.pattern_count(), 2);
    assert_eq!(registry.channels(Some(b"n?ws")), vec![b("news")]);
    assert!(registry.channels(Some(b"x")).is_empty());
    // Dropping a connection's subscriptions removes them all.
    drop(a);
    assert_eq!(registry.numsub(b"news"), 0);
    assert_eq!(registry.pattern_count(), 1);
    assert!(b_.unsubscribe(Kind::Pattern, b"x*"));
    assert!(!b_.unsubscribe(Kind::Pattern, b"x*"));
    assert_eq!(registry.pattern_count(), 0);
}

#[test]
fn deliveries_count_until_written_and_the_hard_limit_closes_the_subscriber() {
    let registry = Arc::new(PubSub::default());
    registry.limits.set(b"pubsub 1000 0 0").expect("valid");
    let kill = CancellationToken::new();
    let mut slow = registry.subscriptions(1, kill.clone());
    slow.subscribe(Kind::Channel, &b("c"));
    let me = slow.subscriber();
    let payload = Bytes::from(vec![b'x'; 100]);
    let mut delivered = 0;
    while !kill.is_cancelled() {
        registry.publish(b("c"), payload.clone());
        delivered += 1;
        assert!(delivered < 100, "never closed");
    }
    // Everything queued stays within the limit, and nothing more is queued once closing.
    assert!(me.pending() <= 1000, "{}", me.pending());
    let before = me.pending();
    registry.publish(b("c"), payload.clone());
    assert_eq!(me.pending(), before);
    let mut rx = slow.take_receiver().expect("receiver");
    let queued = drain(&mut rx).len();
    assert_eq!(queued, delivered - 1);
    me.written(before);
    assert_eq!(me.pending(), 0);
}

#[test]
fn the_soft_limit_closes_a_subscriber_that_stays_above_it() {
    let registry = Arc::new(PubSub::default());
    registry.limits.set(b"pubsub 0 100 0").expect("valid");
    let kill = CancellationToken::new();
    let mut slow = registry.subscriptions(1, kill.clone());
    slow.subscribe(Kind::Channel, &b("c"));
    let payload = Bytes::from(vec![b'x'; 200]);
    // The first delivery above the soft limit starts its timer; one later in another
    // millisecond (0 seconds allowed) closes it.
    registry.publish(b("c"), payload.clone());
    assert!(!kill.is_cancelled());
    std::thread::sleep(std::time::Duration::from_millis(5));
    registry.publish(b("c"), payload);
    assert!(kill.is_cancelled());
}

#[test]
fn delivery_frames_are_redis_messages() {
    let message = Arc::new(Message {
        channel: b("c"),
        payload: b("m"),
    });
    let plain = Delivery::new(None, message.clone());
    assert_eq!(
        plain.to_reply(),
        Reply::Push(vec![
            Reply::text("message"),
            Reply::bulk("c"),
            Reply::bulk("m")
        ])
    );
    let matched = Delivery::new(Some(b("*")), message);
    assert_eq!(
        matched.to_reply(),
        Reply::Push(vec![
            Reply::text("pmessage"),
            Reply::bulk("*"),
            Reply::bulk("c"),
            Reply::bulk("m")
        ])
    );
    assert!(matched.size() > plain.size());
}

#[test]
fn a_frame_is_encoded_once_per_way_and_shared() {
    let message = Arc::new(Message {
        channel: b("c"),
        payload: b("m"),
    });
    let delivery = Delivery::new(None, message);
    let resp = |resp3: bool| {
        move |reply: &Reply, dst: &mut BytesMut| {
            crate::protocol::resp::encode_reply(reply, resp3, dst);
            Ok::<_, ()>(())
        }
    };
    let mut first = BytesMut::new();
    delivery
        .encode_into(0, &mut first, resp(false))
        .expect("encoded");
    assert_eq!(&first[..], b"*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nm\r\n");
    // The second connection of the same encoding copies the bytes: its encoder never runs.
    let mut second = BytesMut::from(&b"+OK\r\n"[..]);
    delivery
        .encode_into(0, &mut second, |_, _| Err("encoded again"))
        .expect("shared");
    assert_eq!(
        &second[..],
        b"+OK\r\n*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nm\r\n"
    );
    let mut resp3 = BytesMut::new();
    delivery
        .encode_into(1, &mut resp3, resp(true))
        .expect("encoded");
    assert_eq!(&resp3[..], b">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nm\r\n");
    // A failed encoding keeps nothing; an unknown slot encodes every time.
    assert_eq!(
        delivery.encode_into(2, &mut BytesMut::new(), |_, _| Err(7)),
        Err(7)
    );
    let mut other = BytesMut::new();
    delivery
        .encode_into(9, &mut other, resp(true))
        .expect("encoded");
    assert_eq!(other, resp3);
}

/// A waker that counts its wake-ups.
struct Counter(std::sync::atomic::AtomicUsize);

impl std::task::Wake for Counter {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

#[test]
fn a_sleeping_subscriber_is_woken_once_per_batch_and_a_dropped_receiver_takes_nothing() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll};
    let registry = Arc::new(PubSub::default());
    let mut subs = registry.subscriptions(1, CancellationToken::new());
    subs.subscribe(Kind::Channel, &b("c"));
    let me = subs.subscriber();
    let mut rx = subs.take_receiver().expect("receiver");
    let counter = Arc::new(Counter(AtomicUsize::new(0)));
    let waker = std::task::Waker::from(counter.clone());
    let mut cx = Context::from_waker(&waker);
    let mut taken = Vec::new();
    assert_eq!(rx.poll_take(&mut cx, &mut taken), Poll::Pending);
    // A pipeline of PUBLISHes: queued at once, the sleeping task woken once, when asked.
    let mut wakes = Wakes::default();
    for i in 0..3 {
        let payload = Bytes::from(vec![b'0' + i]);
        assert_eq!(registry.publish_deferring(b("c"), payload, &mut wakes), 1);
    }
    assert_eq!(counter.0.load(Ordering::Relaxed), 0);
    assert_eq!(me.pending(), 3 * (DELIVERY_OVERHEAD + 2));
    wakes.wake();
    assert_eq!(counter.0.load(Ordering::Relaxed), 1);
    assert_eq!(rx.poll_take(&mut cx, &mut taken), Poll::Ready(()));
    let payloads: Vec<_> = taken.iter().map(|d| d.message.payload.clone()).collect();
    assert_eq!(payloads, vec![b("0"), b("1"), b("2")]);
    // Taken is not written: the bytes count until the connection gives them back.
    assert_eq!(me.pending(), 3 * (DELIVERY_OVERHEAD + 2));
    me.written(3 * (DELIVERY_OVERHEAD + 2));
    assert_eq!(me.pending(), 0);
    // Not asleep (it has not polled since): a publish queues without a wake-up. Asleep
    // again, PUBLISH outside a connection's batch wakes it at once.
    registry.publish_deferring(b("c"), b("3"), &mut Wakes::default());
    assert_eq!(counter.0.load(Ordering::Relaxed), 1);
    assert_eq!(rx.poll_take(&mut cx, &mut taken), Poll::Ready(()));
    assert_eq!(taken.len(), 4);
    assert_eq!(rx.poll_take(&mut cx, &mut taken), Poll::Pending);
    registry.publish(b("c"), b("4"));
    assert_eq!(counter.0.load(Ordering::Relaxed), 2);
    // The connection's end: nothing more is queued or counted.
    drop(rx);
    let before = me.pending();
    assert_eq!(registry.publish(b("c"), b("5")), 1);
    assert_eq!(me.pending(), before);
}
