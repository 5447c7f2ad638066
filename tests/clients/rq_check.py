"""rq (Python job queue) end to end against a node: `python3 rq_check.py PORT [PROTOCOL]`.

Enqueues jobs with rq, runs a real `rq worker --burst` process (started as
`python3 -m rq.cli worker`), and asserts what rq reads back: results stored in the job
hashes, a failing job in the failed job registry with its traceback, a job with `depends_on`
deferred until its dependency finished, and one whose dependency failed left deferred. Then a
long-running worker (`--max-jobs 1`, no `--burst`) waits on an empty queue with BLPOP and is
woken by the next enqueue.
Runs twice: with redis-py's default protocol (HELLO 3) and with protocol 2 (the worker gets
the same URL). Exits non-zero naming the first mismatch. Run by tests/clients.rs.

rq 1.11.1 is pinned (scripts/test.sh installs it): later versions keep results in streams
(XADD/XREVRANGE, from rq 1.12 on whenever the server reports version 5 or later), and
minikv has no streams. This scenario needs no Lua (`Queue.empty()` is the one EVAL in
rq 1.11 and is not called).
"""

import os
import subprocess
import sys
import time

# No __pycache__ left in the source tree by this script or the worker it starts.
sys.dont_write_bytecode = True

import redis  # noqa: E402 (after the bytecode switch)
import rq  # noqa: E402
from rq import Queue  # noqa: E402
from rq.job import Job  # noqa: E402
from rq.registry import DeferredJobRegistry, FailedJobRegistry, FinishedJobRegistry  # noqa: E402

import rq_jobs  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
RUN = f"{os.getpid()}.{time.time_ns()}"
WORKER_LIMIT = 60  # seconds for the burst worker to drain the queue and exit


def expect(what, got, want):
    if got != want:
        raise AssertionError(f"{what}: expected {want!r}, got {got!r}")


def worker_command(url, queue_name, *options):
    """`rq worker` on one queue, as a command line and its environment."""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1",
               PYTHONPATH=HERE + os.pathsep + os.environ.get("PYTHONPATH", ""))
    command = [sys.executable, "-m", "rq.cli", "worker", *options, "--url", url,
               "--path", HERE, "--name", f"w.{queue_name}", queue_name]
    return command, env


def run_worker(url, queue_name):
    """Runs `rq worker --burst` on one queue and returns its combined output."""
    command, env = worker_command(url, queue_name, "--burst")
    done = subprocess.run(command, cwd=HERE, env=env, capture_output=True, text=True,
                          timeout=WORKER_LIMIT)
    output = done.stdout + done.stderr
    if done.returncode != 0:
        raise AssertionError(f"rq worker exited with {done.returncode}:\n{output}")
    return output


def check_waiting_worker(conn, url, name):
    """A worker without --burst blocks in BLPOP on its empty queue; an enqueue wakes it."""
    q = Queue(name + ".wait", connection=conn)
    command, env = worker_command(url, q.name, "--max-jobs", "1")
    worker = subprocess.Popen(command, cwd=HERE, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        # Wait (bounded) until the worker is blocked on the queue: the node counts it.
        deadline = time.monotonic() + WORKER_LIMIT
        while conn.info("clients")["blocked_clients"] < 1:
            if worker.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("the waiting worker never blocked:\n"
                                     + (worker.communicate()[0] if worker.poll() is not None
                                        else "(still running)"))
            time.sleep(0.05)
        job = q.enqueue(rq_jobs.add, 20, 22, result_ttl=600)
        output, _ = worker.communicate(timeout=WORKER_LIMIT)
        expect("waiting worker exit code", worker.returncode, 0)
        job.refresh()
        if job.get_status() != "finished":
            raise AssertionError(f"job after wake-up: {job.get_status()}\n{output}")
        expect("woken worker's result", job.result, 42)
        expect("blocked clients after", conn.info("clients")["blocked_clients"], 0)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


def check(port, protocol):
    label = "default" if protocol is None else f"protocol={protocol}"
    url = f"redis://127.0.0.1:{port}/0"
    if protocol is not None:
        url += f"?protocol={protocol}"
    conn = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    name = f"rq.{RUN}.{protocol or 'default'}"
    q = Queue(name, connection=conn)

    ok = q.enqueue(rq_jobs.add, 2, 3, result_ttl=600)
    bad = q.enqueue(rq_jobs.fail, "boom", failure_ttl=600)
    first = q.enqueue(rq_jobs.stamp, result_ttl=600)
    after = q.enqueue(rq_jobs.stamp, depends_on=first, result_ttl=600)
    orphan = q.enqueue(rq_jobs.add, 1, 1, depends_on=bad)

    # Before any worker: three jobs waiting, two deferred on their dependencies.
    expect("queue length", len(q), 3)
    expect("queued ids", q.get_job_ids(), [ok.id, bad.id, first.id])
    expect("status queued", ok.get_status(refresh=True), "queued")
    expect("status deferred", after.get_status(refresh=True), "deferred")
    deferred = DeferredJobRegistry(queue=q)
    expect("deferred registry", sorted(deferred.get_job_ids()), sorted([after.id, orphan.id]))
    expect("dependents of first", first.dependent_ids, [after.id])
    expect("job fetched back", Job.fetch(ok.id, connection=conn).args, (2, 3))
    expect("queues known", name in [x.name for x in Queue.all(connection=conn)], True)

    output = run_worker(url, name)

    # The successful job's return value, read back from its hash.
    ok.refresh()
    expect("ok status", ok.get_status(), "finished")
    expect("ok result", ok.result, 5)
    expect("ok fetched result", Job.fetch(ok.id, connection=conn).result, 5)
    finished = FinishedJobRegistry(queue=q)
    # The failing job: failed registry, its traceback kept.
    bad.refresh()
    expect("bad status", bad.get_status(), "failed")
    failed = FailedJobRegistry(queue=q)
    expect("failed registry", failed.get_job_ids(), [bad.id])
    if "ValueError: boom" not in (bad.exc_info or ""):
        raise AssertionError(f"failed job's exc_info lacks the error: {bad.exc_info!r}\n{output}")
    # The dependent job ran after its dependency finished.
    first.refresh()
    after.refresh()
    expect("first status", first.get_status(), "finished")
    expect("after status", after.get_status(), "finished")
    if not after.result >= first.result:
        raise AssertionError(f"dependent ran at {after.result}, before its dependency "
                             f"({first.result})")
    if not after.started_at >= first.ended_at:
        raise AssertionError("dependent started before its dependency ended")
    expect("finished registry", sorted(finished.get_job_ids()),
           sorted([ok.id, first.id, after.id]))
    # A job whose dependency failed is still waiting.
    expect("orphan status", orphan.get_status(refresh=True), "deferred")
    expect("deferred registry after", deferred.get_job_ids(), [orphan.id])
    expect("queue drained", len(q), 0)

    # Requeue the failed job: it leaves the registry and waits in the queue again.
    failed.requeue(bad.id)
    expect("failed registry after requeue", failed.get_job_ids(), [])
    expect("requeued", q.get_job_ids(), [bad.id])
    expect("requeued status", bad.get_status(refresh=True), "queued")
    # Cancel and delete: the job's hash is gone.
    bad.delete()
    expect("deleted job gone", Job.exists(bad.id, connection=conn), False)
    expect("queue after delete", len(q), 0)

    # The burst worker deregistered itself when it stopped.
    expect("workers left", [w.name for w in rq.Worker.all(queue=q)], [])

    check_waiting_worker(conn, url, name)
    conn.close()
    print(f"rq {rq.__version__} with redis-py {redis.__version__} ({label}): ok")


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: rq_check.py PORT [PROTOCOL]")
    port = int(sys.argv[1])
    protocols = [int(sys.argv[2])] if len(sys.argv) == 3 else [None, 2]
    for protocol in protocols:
        try:
            check(port, protocol)
        except Exception as e:  # report which variant failed, then fail
            label = "default" if protocol is None else f"protocol={protocol}"
            print(f"rq ({label}) FAILED: {type(e).__name__}: {e}", file=sys.stderr)
            raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
