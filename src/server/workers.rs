//! Connection workers: threads that each run their own single-threaded tokio runtime (their own
//! epoll instance, timers and task queue). The accept loop hands every new connection to one
//! worker, the one serving the fewest connections, and the connection stays on that thread for
//! its whole life: no work stealing and no cross-thread wake-up on the request path. A request
//! is read, executed and answered on one thread, the event-loop-per-core shape of Dragonfly and
//! Seastar; the store stays shared, each shard locked only for its few map operations.
//!
//! With a multi-threaded tokio runtime instead, the thread that polls the reactor wakes tasks
//! that other threads then steal, so a request at `-P 1` costs futex wake-ups and cache-line
//! transfers that one event loop never pays (docs/performance.md, "Connection workers").

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// A fixed set of connection threads (see the module docs). Dropping it stops them; call
/// [`Workers::stop`] to wait for them.
#[derive(Debug)]
pub struct Workers {
    workers: Box<[Worker]>,
    /// Rotates the starting point of the least-loaded search, so ties spread evenly.
    next: AtomicUsize,
}

#[derive(Debug)]
struct Worker {
    handle: Handle,
    /// Connections this worker serves now.
    load: Arc<AtomicUsize>,
    /// Dropped or sent to end the thread's runtime.
    stop: Mutex<Option<oneshot::Sender<()>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// A connection's place on a worker, given back when dropped.
#[derive(Debug)]
pub struct Assigned {
    handle: Handle,
    load: Arc<AtomicUsize>,
}

impl Workers {
    /// Starts `count` worker threads (at least one), named `minikv-conn-N`.
    ///
    /// # Errors
    /// When a runtime or a thread cannot be created (out of threads or file descriptors).
    pub fn start(count: usize) -> std::io::Result<Workers> {
        let mut workers = Vec::with_capacity(count.max(1));
        for i in 0..count.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let handle = runtime.handle().clone();
            let (stop, stopped) = oneshot::channel::<()>();
            let thread = std::thread::Builder::new()
                .name(format!("minikv-conn-{i}"))
                .spawn(move || {
                    // Spawned connection tasks run while this thread blocks here; a closed or
                    // fired channel ends it, dropping whatever tasks are left.
                    let _ = runtime.block_on(stopped);
                })?;
            workers.push(Worker {
                handle,
                load: Arc::new(AtomicUsize::new(0)),
                stop: Mutex::new(Some(stop)),
                thread: Mutex::new(Some(thread)),
            });
        }
        Ok(Workers {
            workers: workers.into_boxed_slice(),
            next: AtomicUsize::new(0),
        })
    }

    /// How many worker threads there are.
    pub fn len(&self) -> usize {
        self.workers.len()
    }

    /// Always false: there is at least one worker.
    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }

    /// The worker serving the fewest connections, counting the new one from now on.
    pub fn assign(&self) -> Assigned {
        let n = self.workers.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let worker = (0..n)
            .map(|i| &self.workers[(start + i) % n])
            .min_by_key(|w| w.load.load(Ordering::Relaxed))
            .unwrap_or(&self.workers[0]);
        worker.load.fetch_add(1, Ordering::Relaxed);
        Assigned {
            handle: worker.handle.clone(),
            load: worker.load.clone(),
        }
    }

    /// Connections each worker serves now, in worker order.
    pub fn loads(&self) -> Vec<usize> {
        self.workers
            .iter()
            .map(|w| w.load.load(Ordering::Relaxed))
            .collect()
    }

    /// Ends every worker's runtime (dropping the tasks still on it) and waits for the threads.
    /// Call it after the servers have drained their connections.
    pub fn stop(&self) {
        for worker in self.workers.iter() {
            let stop = worker
                .stop
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take();
            if let Some(stop) = stop {
                let _ = stop.send(());
            }
        }
        for worker in self.workers.iter() {
            let thread = worker
                .thread
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take();
            if let Some(thread) = thread {
                if thread.join().is_err() {
                    tracing::warn!("a connection worker thread panicked");
                }
            }
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Assigned {
    /// The runtime to spawn the connection's task on.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }
}

impl Drop for Assigned {
    fn drop(&mut self) {
        self.load.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_go_to_the_least_loaded_worker_and_leave_it_when_dropped() {
        let workers = Workers::start(3).expect("workers start");
        let a = workers.assign();
        let b = workers.assign();
        let c = workers.assign();
        assert_eq!(workers.loads(), vec![1, 1, 1]);
        drop(b);
        assert_eq!(workers.loads().iter().sum::<usize>(), 2);
        let d = workers.assign();
        assert_eq!(workers.loads(), vec![1, 1, 1]);
        drop((a, c, d));
        assert_eq!(workers.loads(), vec![0, 0, 0]);
        workers.stop();
    }

    #[test]
    fn a_task_spawned_on_a_worker_runs_on_that_worker_thread() {
        let workers = Workers::start(2).expect("workers start");
        let assigned = workers.assign();
        let (tx, rx) = std::sync::mpsc::channel();
        assigned.handle().spawn(async move {
            let name = std::thread::current().name().map(str::to_owned);
            let _ = tx.send(name);
        });
        let name = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the task ran");
        assert!(name.is_some_and(|n| n.starts_with("minikv-conn-")));
        workers.stop();
    }
}
