//! Running saves: the node's saver thread (Linux SCHED_IDLE, raised to normal priority when a
//! save waits too long) and the periodic save task.

use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{PersistError, Persister};
use crate::config::live::SaveRule;
use crate::store::Store;

impl Persister {
    /// Saves on the node's background saver thread (periodic saves, BGSAVE): `force` saves
    /// even when nothing changed. The thread runs at the lowest CPU priority (SCHED_IDLE, see
    /// `lower_priority`), so on a busy machine serialising a snapshot takes CPU time the
    /// request path does not need, rather than competing with it; it still progresses under
    /// full load, only slower.
    /// The returned receiver gets the outcome; dropping it is fine.
    pub fn background(
        self: &Arc<Self>,
        store: Arc<Store>,
        force: bool,
    ) -> tokio::sync::oneshot::Receiver<Result<Option<usize>, PersistError>> {
        self.queue(store, force, false)
    }

    /// A forced save on the saver thread at normal priority, for a client waiting on it
    /// (SHUTDOWN): a save still running ahead of it is raised to normal priority too.
    pub fn save_urgently(
        self: &Arc<Self>,
        store: Arc<Store>,
    ) -> tokio::sync::oneshot::Receiver<Result<Option<usize>, PersistError>> {
        self.urgent.store(true, Ordering::Relaxed);
        self.queue(store, true, true)
    }

    fn queue(
        self: &Arc<Self>,
        store: Arc<Store>,
        force: bool,
        urgent: bool,
    ) -> tokio::sync::oneshot::Receiver<Result<Option<usize>, PersistError>> {
        let (done, outcome) = tokio::sync::oneshot::channel();
        let job = SaveJob {
            persister: self.clone(),
            store,
            force,
            urgent,
            done,
        };
        let queue = self
            .saver
            .get_or_init(|| Mutex::new(start_saver(self.server_id)));
        if let Err(mpsc::SendError(job)) =
            queue.lock().expect("saver queue lock poisoned").send(job)
        {
            // The thread could not be started or died: save on a blocking-pool thread instead.
            std::thread::spawn(move || job.run());
        }
        outcome
    }
}

/// Runs until `shutdown`, saving every interval of the `save` rule when something changed
/// (the rule is re-read whenever CONFIG SET changes it; with no interval, `save ""`, nothing
/// is saved periodically). Failures are logged (once, by the save job) and retried on the next
/// tick; the previous file stays intact.
pub async fn run(
    persister: Arc<Persister>,
    store: Arc<Store>,
    mut rule: watch::Receiver<SaveRule>,
    shutdown: CancellationToken,
) {
    loop {
        let interval = rule
            .borrow_and_update()
            .interval
            .map(|i| i.max(Duration::from_millis(10)));
        // Shutdown wins over a due tick: the caller writes the final snapshot itself. A new
        // rule restarts the wait with its interval.
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            changed = rule.changed() => {
                if changed.is_err() {
                    // The node is gone: nothing more to save periodically.
                    return;
                }
                continue;
            }
            _ = sleep_or_never(interval) => {}
        }
        let Some(interval) = interval else { continue };
        let mut outcome = persister.background(store.clone(), false);
        // A save still queued or running after this long is starved of idle CPU: boost it
        // to normal priority, so that snapshot-only durability stays about one interval.
        let patience = interval.max(Duration::from_secs(1));
        let result = match tokio::time::timeout(patience, &mut outcome).await {
            Ok(result) => result,
            Err(_) => {
                persister.urgent.store(true, Ordering::Relaxed);
                outcome.await
            }
        };
        match result {
            Ok(Ok(Some(keys))) => tracing::debug!(keys, "snapshot saved"),
            // A failure was logged by the save job itself: one line per failed attempt.
            Ok(Ok(None)) | Ok(Err(_)) => {}
            Err(_) => tracing::error!("snapshot thread stopped before answering"),
        }
    }
}

/// Sleeps `interval`, or forever when there is none.
async fn sleep_or_never(interval: Option<Duration>) {
    match interval {
        Some(interval) => tokio::time::sleep(interval).await,
        None => std::future::pending().await,
    }
}

/// One save for the saver thread.
pub(super) struct SaveJob {
    persister: Arc<Persister>,
    store: Arc<Store>,
    force: bool,
    /// Runs at normal priority from its start (someone waits for it).
    urgent: bool,
    done: tokio::sync::oneshot::Sender<Result<Option<usize>, PersistError>>,
}

impl SaveJob {
    fn run(self) {
        if self.urgent {
            // Boosts this job's copy and write as well (checked between shards).
            self.persister.urgent.store(true, Ordering::Relaxed);
        }
        set_priority(self.persister.urgent.load(Ordering::Relaxed));
        let result = if self.force {
            self.persister.save(&self.store).map(Some)
        } else {
            self.persister.save_if_dirty(&self.store)
        };
        // The one log line of a failed save, whoever asked for it: the periodic task (which
        // retries at its next tick, `force` false) or BGSAVE. SHUTDOWN (`urgent`) logs its
        // own outcome, with what it does about it.
        if let (Err(e), false) = (&result, self.urgent) {
            if self.force {
                tracing::error!("background save failed: {e}");
            } else {
                tracing::error!("snapshot failed, will retry at the next interval: {e}");
            }
        }
        self.persister.urgent.store(false, Ordering::Relaxed);
        // The requester may have stopped waiting (BGSAVE does not wait).
        let _ = self.done.send(result);
    }
}

thread_local! {
    /// The priority [`set_priority`] last gave this thread (`Some(false)`: lowered).
    static CURRENT: std::cell::Cell<Option<bool>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` at normal priority, on a thread [`set_priority`] lowered (the saver thread) lowering
/// it again afterwards; elsewhere just runs `f`. For work under locks that request threads
/// wait on: a SCHED_IDLE thread preempted while holding a shard's lock (by any runnable thread
/// on its core, a benchmark client, a shell) leaves every request for that shard waiting until
/// the core goes idle, tens of milliseconds on a busy machine (docs/performance.md,
/// "Latency while saving").
pub(super) fn at_normal_priority<T>(f: impl FnOnce() -> T) -> T {
    let lowered = CURRENT.get() == Some(false);
    if lowered {
        set_priority(true);
    }
    let out = f();
    if lowered {
        set_priority(false);
    }
    out
}

/// Puts the calling thread in Linux's SCHED_IDLE class (`urgent` false): it runs when a core
/// would otherwise idle and yields at once to any request-serving thread that wakes up, yet
/// still gets a small share under full load. `urgent` puts it back to normal priority: a
/// save that waited too long for idle CPU competes like any thread. Elsewhere: nice values.
pub(super) fn set_priority(urgent: bool) {
    use thread_priority::{
        set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy,
        ThreadPriority, ThreadPriorityValue, ThreadSchedulePolicy,
    };
    if CURRENT.get() == Some(urgent) {
        return;
    }
    let (policy, priority) = if urgent {
        let normal = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Other);
        let zero = ThreadPriorityValue::try_from(0u8).map(ThreadPriority::Crossplatform);
        (normal, zero.unwrap_or(ThreadPriority::Min))
    } else {
        let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
        (idle, ThreadPriority::Min)
    };
    match set_thread_priority_and_policy(thread_native_id(), priority, policy) {
        Ok(()) => CURRENT.set(Some(urgent)),
        Err(e) => tracing::warn!("could not change the snapshot thread's priority: {e:?}"),
    }
}

/// Starts the saver thread at the lowest priority; it ends when the queue's sender is dropped.
fn start_saver(server_id: u64) -> mpsc::Sender<SaveJob> {
    let (queue, jobs) = mpsc::channel::<SaveJob>();
    let spawned = std::thread::Builder::new()
        .name(format!("minikv-save-{server_id}"))
        .spawn(move || {
            for job in jobs {
                job.run();
            }
        });
    if let Err(e) = spawned {
        // `background` falls back to a plain thread per save when the queue is closed.
        tracing::warn!("could not start the snapshot thread: {e}");
    }
    queue
}
