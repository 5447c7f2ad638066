//! Calls over the cluster bus (`BusCaller` to a bus's `CallHandler`): answers come back, calls
//! to one peer run concurrently (a blocked call does not hold up the next), a password is
//! required, a bus without a handler says so, a call times out clearly, and a bus that went
//! away is an error until it comes back on the same port, then calls succeed again.
//! Every wait is bounded; nothing sleeps to make an assertion true.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::WAIT;
use minikv::replication::bus::{self, BusCaller, BusError, CallHandler, Groups};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A bus serving calls only, on `listener`.
struct Bus {
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl Bus {
    async fn start(password: Option<&str>, handler: Option<CallHandler>) -> Bus {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind bus");
        Bus::on(listener, password, handler)
    }

    fn on(listener: TcpListener, password: Option<&str>, handler: Option<CallHandler>) -> Bus {
        let addr = listener.local_addr().expect("bus address");
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(bus::run(
            listener,
            Groups::default(),
            password.map(Arc::from),
            None,
            handler,
            shutdown.clone(),
        ));
        Bus {
            addr,
            shutdown,
            task,
        }
    }

    /// Stops the bus: its listener and connections are closed when this returns.
    async fn stop(self) -> SocketAddr {
        self.shutdown.cancel();
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("bus stops in time")
            .expect("bus task ends cleanly");
        self.addr
    }
}

/// Answers `payload` reversed.
fn reverse() -> CallHandler {
    Arc::new(|mut payload: Vec<u8>| {
        Box::pin(async move {
            payload.reverse();
            payload
        })
    })
}

/// Answers `block` only once the test adds a permit to `gate` (telling it through `entered`
/// that the call is waiting); answers anything else at once, reversed.
fn gated(gate: Arc<Semaphore>, entered: mpsc::UnboundedSender<()>) -> CallHandler {
    Arc::new(move |mut payload: Vec<u8>| {
        let (gate, entered) = (gate.clone(), entered.clone());
        Box::pin(async move {
            if payload == b"block" {
                let _ = entered.send(());
                let permit = gate.acquire().await;
                drop(permit);
            } else {
                payload.reverse();
            }
            payload
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_are_answered_by_the_handler_over_reused_connections() {
    let bus = Bus::start(Some("secret"), Some(reverse())).await;
    let addr = bus.addr.to_string();
    let caller = BusCaller::new(Some(Arc::from("secret")), None);
    for n in 0..20u8 {
        let answer = caller
            .call(&addr, vec![n, 1, 2], WAIT)
            .await
            .expect("call answered");
        assert_eq!(answer, vec![2, 1, n]);
    }
    // Large payloads both ways (a few MiB, under the frame limit).
    let big: Vec<u8> = (0..3 << 20).map(|i| (i % 251) as u8).collect();
    let answer = caller
        .clone()
        .call(&addr, big.clone(), WAIT)
        .await
        .expect("big call");
    assert_eq!(answer.len(), big.len());
    assert!(answer.iter().rev().eq(big.iter()));

    let wrong = BusCaller::new(Some(Arc::from("wrong")), None);
    let refused = wrong.call(&addr, b"x".to_vec(), WAIT).await;
    let auth = |e: &BusError| matches!(e, BusError::Auth);
    assert!(
        matches!(&refused, Err(BusError::Unreachable { source, .. }) if auth(source)),
        "{refused:?}"
    );
    let anonymous = BusCaller::new(None, None);
    let refused = anonymous.call(&addr, b"x".to_vec(), WAIT).await;
    assert!(matches!(refused, Err(BusError::Lost { .. })), "{refused:?}");
    bus.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_call_does_not_hold_up_other_calls_to_the_same_peer() {
    let gate = Arc::new(Semaphore::new(0));
    let (entered_tx, mut entered) = mpsc::unbounded_channel();
    let bus = Bus::start(None, Some(gated(gate.clone(), entered_tx))).await;
    let addr = bus.addr.to_string();
    let caller = BusCaller::new(None, None);
    // Warm the pool: the blocked calls below must not be stuck behind a shared connection.
    caller
        .call(&addr, b"ab".to_vec(), WAIT)
        .await
        .expect("warm");

    let blocked: Vec<_> = (0..3)
        .map(|_| {
            let (caller, addr) = (caller.clone(), addr.clone());
            tokio::spawn(async move { caller.call(&addr, b"block".to_vec(), WAIT).await })
        })
        .collect();
    for _ in 0..3 {
        tokio::time::timeout(WAIT, entered.recv())
            .await
            .expect("every blocked call reaches the handler at once")
            .expect("handler alive");
    }
    // Three calls are in the handler; more calls to the same peer are still answered.
    for _ in 0..5 {
        let answer = caller
            .call(&addr, b"abc".to_vec(), WAIT)
            .await
            .expect("answered while others block");
        assert_eq!(answer, b"cba");
    }
    gate.add_permits(3);
    for call in blocked {
        let answer = tokio::time::timeout(WAIT, call)
            .await
            .expect("released calls finish")
            .expect("task")
            .expect("released call answered");
        assert_eq!(answer, b"block");
    }
    bus.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_times_out_clearly_and_the_next_call_is_answered() {
    let gate = Arc::new(Semaphore::new(0));
    let (entered_tx, _entered) = mpsc::unbounded_channel();
    let bus = Bus::start(None, Some(gated(gate, entered_tx))).await;
    let addr = bus.addr.to_string();
    let caller = BusCaller::new(None, None);
    let late = caller
        .call(&addr, b"block".to_vec(), Duration::from_millis(200))
        .await;
    let short = Duration::from_millis(200);
    assert!(
        matches!(&late, Err(BusError::Timeout { after, .. }) if *after == short),
        "{late:?}"
    );
    let message = late.expect_err("timed out").to_string();
    assert!(message.contains(&addr), "{message}");
    let answer = caller
        .call(&addr, b"xy".to_vec(), WAIT)
        .await
        .expect("answered");
    assert_eq!(answer, b"yx");
    bus.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bus_without_a_handler_says_so() {
    let bus = Bus::start(None, None).await;
    let addr = bus.addr.to_string();
    let caller = BusCaller::new(None, None);
    for _ in 0..2 {
        let refused = caller.call(&addr, b"x".to_vec(), WAIT).await;
        assert!(
            matches!(&refused, Err(BusError::NoCallHandler { addr: a }) if *a == addr),
            "{refused:?}"
        );
    }
    bus.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bus_that_went_away_is_an_error_until_it_is_back_on_its_port() {
    let bus = Bus::start(Some("secret"), Some(reverse())).await;
    let addr = bus.addr.to_string();
    let caller = BusCaller::new(Some(Arc::from("secret")), None);
    let answer = caller
        .call(&addr, b"12".to_vec(), WAIT)
        .await
        .expect("answered");
    assert_eq!(answer, b"21");

    let gone = bus.stop().await;
    for _ in 0..2 {
        let failed = caller.call(&addr, b"12".to_vec(), WAIT).await;
        assert!(
            matches!(
                failed,
                Err(BusError::Unreachable { .. } | BusError::Lost { .. })
            ),
            "{failed:?}"
        );
    }
    let failed = caller.call(&addr, b"12".to_vec(), WAIT).await;
    assert!(
        matches!(failed, Err(BusError::Unreachable { .. })),
        "{failed:?}"
    );

    let listener = TcpListener::bind(gone).await.expect("rebind bus");
    let bus = Bus::on(listener, Some("secret"), Some(reverse()));
    let answer = caller
        .call(&addr, b"34".to_vec(), WAIT)
        .await
        .expect("answered once the bus is back");
    assert_eq!(answer, b"43");
    bus.stop().await;
}
