#!/usr/bin/env bash
# Failover time of a replicated cluster (issue 10): from the SIGKILL of a shard's leader to the
# first acknowledged write on that shard through a surviving node. Run it from the repository
# root after `cargo build --release`; it needs python3 (the driver below speaks RESP over plain
# sockets, no packages).
#
#   scripts/bench/failover.sh [KILLS] [NODE_TIMEOUT_MS]
#
# How:
# - Starts three nodes (`minikv server ID PORT --cluster A,B,C --data-dir DIR
#   --cluster-node-timeout MS`, every shard on all three) on free ports in 15000-21999 whose bus
#   ports (PORT+10000) are free too, each with its own data directory in a temporary directory,
#   and waits until the cluster is healthy: every node says `cluster_state:ok` and agrees on
#   every shard's leader, and every leader has an acknowledged index from both followers.
# - Each kill: reads the leader of shard 1 from `INFO replication` (`shard1:...,leader=ID`),
#   starts a writer that sends `SET` of shard-1 keys (md5(key) mod 3 = 0) through one of the two
#   other nodes (alternately) in a tight loop, with 200 ms timeouts and a new connection after
#   any error or timeout (a node closes a connection whose write's fate it cannot know); after
#   0.3 s of writes, SIGKILLs the leader. The sample is the time from just before the kill to
#   the reply `+OK` to the first SET sent after it. Then the writer stops, the killed node starts
#   again on its data directory, and the next kill waits until the cluster is healthy again.
#   A kill with no OK within 10 s counts as a miss at 10 s.
# - Prints one line per kill, then the percentiles; the last line always starts with
#   `failover:`:
#     kill 3: node 2 led shard 1 (term 4), first OK through node 1 after 0.412 s; before it 25 errors, 1 timeouts, 2 reconnects
#     failover: 50 kills, node timeout 250 ms: p50 0.412 s, p90 0.520 s, max 0.733 s, misses 0
#   docs/reliability.md quotes lines in this format; keep it when changing the script.
#
# Environment: MINIKV (./target/release/minikv), KEEP_LOGS (set: keep the node logs' directory
# and print its path). Every process it starts is stopped by its PID when it exits.
set -euo pipefail
export LC_ALL=C

usage() {
  echo "usage: $0 [KILLS=50] [NODE_TIMEOUT_MS=250]" >&2
  exit 2
}
positive() { [[ $1 =~ ^[1-9][0-9]*$ ]]; }

kills=${1:-50}
node_timeout=${2:-250}
if ! positive "$kills" || ! positive "$node_timeout"; then usage; fi
minikv=${MINIKV:-./target/release/minikv}
[[ -x $minikv ]] || { echo "no minikv binary at $minikv (cargo build --release, or set MINIKV)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "missing: python3" >&2; exit 1; }

exec python3 - "$minikv" "$kills" "$node_timeout" "${KEEP_LOGS:-}" <<'PYTHON'
import hashlib
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

BINARY, KILLS, NODE_TIMEOUT_MS, KEEP = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
NODES = 3
# One request's connect/read/write timeout in the writer.
REQUEST_TIMEOUT_S = 0.2
# Writes before each kill, and the longest a failover may take before it counts as a miss.
WARM_S = 0.3
MISS_S = 10.0
HEALTHY_WITHIN_S = 60.0


def shard_of(key):
    return int.from_bytes(hashlib.md5(key.encode()).digest(), "big") % NODES


class Conn:
    """One RESP connection with a timeout on every operation."""

    def __init__(self, port, timeout):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def close(self):
        self.sock.close()

    def call(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a.encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.sock.sendall(out)
        line = self.line()
        kind, rest = line[:1], line[1:].decode()
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return ("$", None)
            while len(self.buf) < n + 2:
                self.fill()
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return ("$", data.decode())
        if kind in (b"+", b"-", b":"):
            return (kind.decode(), rest)
        raise OSError("unexpected reply %r" % line)

    def line(self):
        while b"\r\n" not in self.buf:
            self.fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise OSError("connection closed")
        self.buf += chunk


def ask(port, *args):
    """One command on a fresh connection; None on any error."""
    try:
        c = Conn(port, 1.0)
        try:
            return c.call(*args)
        finally:
            c.close()
    except (OSError, ValueError):
        return None


def free_ports(n):
    ports = []
    while len(ports) < n:
        p = random.randrange(15000, 22000)
        if p in ports or any(abs(p - q) == 10000 for q in ports):
            continue
        try:
            for candidate in (p, p + 10000):
                s = socket.socket()
                try:
                    s.bind(("127.0.0.1", candidate))
                finally:
                    s.close()
        except OSError:
            continue
        ports.append(p)
    return ports


work = tempfile.mkdtemp(prefix="minikv-failover-")
ports = free_ports(NODES)
cluster = ",".join("127.0.0.1:%d" % p for p in ports)
procs = [None] * NODES


def start(i):
    log = open("%s/node%d.log" % (work, i + 1), "ab")
    procs[i] = subprocess.Popen(
        [BINARY, "server", str(i + 1), str(ports[i]), "--cluster", cluster,
         "--data-dir", "%s/node%d" % (work, i + 1),
         "--cluster-node-timeout", str(NODE_TIMEOUT_MS)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
    log.close()


def shard_lines(port):
    """{shard: {field: value}} from INFO replication on the node at port, or None."""
    r = ask(port, "INFO", "replication")
    if r is None or r[0] != "$" or r[1] is None:
        return None
    shards = {}
    for line in r[1].splitlines():
        if line.startswith("shard") and ":" in line:
            name, fields = line.split(":", 1)
            shards[int(name[5:])] = dict(f.split("=", 1) for f in fields.split(",") if "=" in f)
    return shards


def healthy():
    """The leader of every shard when all nodes agree and every follower is acknowledged."""
    leaders = None
    for i, port in enumerate(ports):
        if procs[i].poll() is not None:
            raise SystemExit("node %d exited with %s; logs in %s" % (i + 1, procs[i].returncode, work))
        info = ask(port, "CLUSTER", "INFO")
        if info is None or "cluster_state:ok" not in (info[1] or ""):
            return None
        shards = shard_lines(port)
        if not shards or len(shards) != NODES:
            return None
        seen = {s: f.get("leader") for s, f in shards.items()}
        if "0" in seen.values() or (leaders is not None and seen != leaders):
            return None
        leaders = seen
        for f in shards.values():
            if f.get("role") == "leader":
                acked = [a for a in f.get("acked", "").split("|") if a]
                if len(acked) != NODES or any(a.endswith(":-") for a in acked):
                    return None
    return leaders


def wait_healthy():
    deadline = time.monotonic() + HEALTHY_WITHIN_S
    while time.monotonic() < deadline:
        leaders = healthy()
        if leaders is not None:
            return leaders
        time.sleep(0.05)
    raise SystemExit("the cluster was not healthy within %.0f s; logs in %s" % (HEALTHY_WITHIN_S, work))


class Writer(threading.Thread):
    """SETs shard-1 keys through one node until stopped, and notes the first OK after a kill."""

    def __init__(self, port, keys):
        super().__init__(daemon=True)
        self.port, self.keys = port, keys
        self.stop = threading.Event()
        self.done = threading.Event()
        self.kill_at = None
        self.first_ok = None
        self.oks_before = 0
        self.errors = self.timeouts = self.reconnects = 0
        # Error replies after the kill, by their first word, and when the last one came.
        self.kinds = {}

    def run(self):
        conn, n = None, 0
        while not self.stop.is_set():
            sent = time.monotonic()
            after_kill = self.kill_at is not None and sent >= self.kill_at
            try:
                if conn is None:
                    conn = Conn(self.port, REQUEST_TIMEOUT_S)
                    if after_kill:
                        self.reconnects += 1
                reply = conn.call("SET", self.keys[n % len(self.keys)], str(n))
                n += 1
                if reply == ("+", "OK"):
                    if not after_kill:
                        self.oks_before += 1
                    elif self.first_ok is None:
                        self.first_ok = time.monotonic()
                        self.done.set()
                else:
                    if after_kill:
                        self.errors += 1
                        word = "%s%s" % (reply[0], str(reply[1]).split(" ")[0])
                        first, count = self.kinds.get(word, (sent - self.kill_at, 0))
                        self.kinds[word] = (first, count + 1)
                    time.sleep(0.001)
            except socket.timeout:
                self.timeouts += after_kill
                conn = self.drop(conn)
            except (OSError, ValueError):
                self.errors += after_kill
                conn = self.drop(conn)
                time.sleep(0.001)
        self.drop(conn)

    @staticmethod
    def drop(conn):
        if conn is not None:
            conn.close()
        return None


def percentile(sorted_values, q):
    # Nearest rank.
    k = max(1, -(-len(sorted_values) * q // 100))
    return sorted_values[int(k) - 1]


keys = []
n = 0
while len(keys) < 16:
    k = "failover:%d" % n
    if shard_of(k) == 0:
        keys.append(k)
    n += 1

samples = []
misses = 0
ok = False
try:
    for i in range(NODES):
        start(i)
    leaders = wait_healthy()
    for kill in range(1, KILLS + 1):
        leader = int(leaders[1]) - 1
        others = [j for j in range(NODES) if j != leader]
        entry = others[kill % len(others)]
        term = (shard_lines(ports[entry]) or {}).get(1, {}).get("term", "?")
        writer = Writer(ports[entry], keys)
        writer.start()
        time.sleep(WARM_S)
        writer.kill_at = time.monotonic()
        procs[leader].kill()
        got = writer.done.wait(MISS_S)
        writer.stop.set()
        writer.join()
        procs[leader].wait()
        if got:
            took = writer.first_ok - writer.kill_at
        else:
            took = MISS_S
            misses += 1
        samples.append(took)
        print("kill %d: node %d led shard 1 (term %s), %s through node %d after %.3f s; "
              "before it %d errors, %d timeouts, %d reconnects%s%s"
              % (kill, leader + 1, term, "first OK" if got else "NO OK", entry + 1, took,
                 writer.errors, writer.timeouts, writer.reconnects,
                 "".join(" [%s x%d from %.3f s]" % (w, c, f) for w, (f, c) in sorted(writer.kinds.items())),
                 "" if writer.oks_before else " (no OK before the kill either)"),
              flush=True)
        start(leader)
        leaders = wait_healthy()
    ok = True
finally:
    for p in procs:
        if p is not None and p.poll() is None:
            p.kill()
            p.wait()
    if KEEP or not ok:
        print("node logs in %s" % work, file=sys.stderr if not ok else sys.stdout)
    else:
        shutil.rmtree(work, ignore_errors=True)

s = sorted(samples)
print("failover: %d kills, node timeout %d ms: p50 %.3f s, p90 %.3f s, max %.3f s, misses %d"
      % (len(s), NODE_TIMEOUT_MS, percentile(s, 50), percentile(s, 90), s[-1], misses))
PYTHON
