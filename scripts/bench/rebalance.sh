#!/usr/bin/env bash
# Rebalancing a replicated cluster from three shards to four (issue 11): how long
# `minikv rebalance` takes to move a quarter of the keys, how many keys per second it moves,
# the bytes it sends between the nodes (compressed) against the raw key and value bytes, and a
# light client's latency during the move against before it. Run it from the repository root
# after `cargo build --release`; it needs python3 (the driver below speaks RESP over plain
# sockets, no packages).
#
#   scripts/bench/rebalance.sh [KEYS]
#
# How:
# - Starts three nodes (`minikv server ID PORT --cluster A,B,C --data-dir DIR`: three shards,
#   each replicated on all three nodes) on free ports in 15000-21999 whose bus ports
#   (PORT+10000) are free too, each with its own data directory in a temporary directory, and
#   waits until every node says `cluster_state:ok` and agrees on every shard's leader.
# - Loads KEYS keys (default 1,000,000) `key:0` ... with values of 16 to 100 bytes (a function
#   of the key's number, so that they can be checked later); every tenth key is written with
#   `SET ... EX 86400`, the others with `MSET` of up to 100 keys of one shard. Each command
#   goes to the leader of its keys' shard (slot = md5(key) mod 12288, owners from
#   `CLUSTER SHARDS`, leaders from `INFO replication`), pipelined, all shards at once. Then
#   waits until every node has applied its shards' whole logs, and checks DBSIZE.
# - Starts the probe, a separate python process: one connection to each of nodes 1-3, one
#   request at a time at PROBE_RATE requests per second (alternately a GET of a random key and
#   a SET of a random key without TTL to the value it already has, so the check below still
#   holds; nodes in turn), each request's latency measured from its send to its reply
#   (2 s timeout; a timeout, an error reply or a GET of another value than the one written,
#   WRONGVALUE, is counted as an error, and its latency kept). The first 0.5 s are not
#   counted.
# - After BEFORE_S seconds of probe alone ("before"), starts node 4 with
#   `--join NODE1 --bus-port P --data-dir DIR` and waits until every node sees shard 4 with a
#   leader ("join"); then runs `minikv rebalance --servers A,B,C,D --batch BATCH` and times it
#   ("during"; its lines are printed as they come). The probe stops when rebalance exits.
# - Checks: every node's `CLUSTER SHARDS` gives each shard 3072 slots; the keys moved
#   (`done: keys=`) are at least the loaded keys whose slot changed shard (more is fine: keys
#   written during a move's copy are sent again; not checked when rebalance retried, as a call
#   whose reply was lost is not counted); each node's DBSIZE equals the loaded keys of
#   the shards it replicates (INFO replication's `shardN:` lines); SAMPLE random keys
#   (default 20000; KEYS or more reads every key) read back through random nodes, node 4
#   included, have the values written, and the sampled keys with a TTL still have one.
# - Prints progress lines, rebalance's own lines, the checks, then per phase the probe's
#   percentiles, its five slowest requests and the first reply of each error kind, and the
#   CPU seconds each node used (utime + stime from /proc/PID/stat) before and during the move.
#   The last line always starts with `rebalance:` and ends with `check ok` or `check FAILED`
#   (then the exit status is 1, and each failed check has a `FAILED:` line before it):
#     probe before: 5000 requests in 10.0 s, p50 0.791 ms, p99 3.583 ms, max 8.5 ms, errors 0
#     probe during: 2160 requests in 32.8 s, p50 0.702 ms, p99 381.054 ms, max 2027.7 ms, errors 4 [TIMEOUT x4]
#     cpu during: 9.0 9.0 7.2 0.8 of 32.8 s (nodes 1-4; 2 cores = 65.5 s)
#     rebalance: 1000000 keys, 3 -> 4 shards: 250241 keys moved in 32.76 s (7638 keys/s), raw 17.0 MB, wire 3.2 MB; p99 before 3.58 ms, during 381.05 ms (max 2027.7 ms); probe errors 4; check ok
#   Keys moved, seconds, keys/s, raw and wire are rebalance's `done:` totals (MB = 10^6
#   bytes; raw is key and value bytes, wire the zstd-compressed chunks sent to the target);
#   probe errors are those before and during the move. docs/performance.md quotes lines in
#   this format; keep it when changing the script.
#
# Environment: MINIKV (./target/release/minikv), PROBE_RATE (500 requests/s), BEFORE_S (10),
# BATCH (1024, rebalance's --batch), SAMPLE (20000), NODE_TIMEOUT_MS (unset: the nodes'
# default; else every node's --cluster-node-timeout), SAMPLES (a file: every probe request as
# a tab-separated line: phase, seconds into it, ms, node, command, error), KEEP_LOGS (set: keep the
# node logs' directory and print its path on standard error; it is kept anyway when a check
# fails). Every
# process it starts is stopped by its PID when it exits.
set -euo pipefail
export LC_ALL=C

usage() {
  echo "usage: $0 [KEYS=1000000]   (env: PROBE_RATE BEFORE_S BATCH SAMPLE NODE_TIMEOUT_MS SAMPLES MINIKV KEEP_LOGS)" >&2
  exit 2
}
positive() { [[ $1 =~ ^[1-9][0-9]*$ ]]; }

keys=${1:-1000000}
rate=${PROBE_RATE:-500}
before=${BEFORE_S:-10}
batch=${BATCH:-1024}
sample=${SAMPLE:-20000}
for value in "$keys" "$rate" "$before" "$batch" "$sample"; do positive "$value" || usage; done
minikv=${MINIKV:-./target/release/minikv}
[[ -x $minikv ]] || { echo "no minikv binary at $minikv (cargo build --release, or set MINIKV)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "missing: python3" >&2; exit 1; }

node_timeout=${NODE_TIMEOUT_MS:-}
[[ -z $node_timeout ]] || positive "$node_timeout" || usage

exec python3 - "$minikv" "$keys" "$rate" "$before" "$batch" "$sample" "${KEEP_LOGS:-}" \
  "$node_timeout" "${SAMPLES:-}" <<'PYTHON'
import array
import os
import hashlib
import multiprocessing
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

BINARY, KEYS, RATE, BEFORE_S, BATCH, SAMPLE, KEEP, NODE_TIMEOUT_MS, SAMPLES = (
    sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]),
    int(sys.argv[6]), sys.argv[7], sys.argv[8], sys.argv[9])
SLOTS = 12288
TTL_S = 86400
HEALTHY_WITHIN_S = 60.0
TICKS = os.sysconf("SC_CLK_TCK")
PROBE_TIMEOUT_S = 2.0
# Commands in flight per connection while loading, and keys per MSET.
DEPTH = 64
MSET_KEYS = 100


class Conn:
    """One RESP connection; replies as Python values (errors as Err)."""

    def __init__(self, port, timeout=10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.pos = 0

    def close(self):
        self.sock.close()

    def send(self, commands):
        out = []
        for args in commands:
            out.append(b"*%d\r\n" % len(args))
            for a in args:
                if isinstance(a, str):
                    a = a.encode()
                out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))

    def call(self, *args):
        self.send([args])
        return self.reply()

    def fill(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise OSError("connection closed")
        if self.pos:
            self.buf = self.buf[self.pos:]
            self.pos = 0
        self.buf += chunk

    def line(self):
        while True:
            end = self.buf.find(b"\r\n", self.pos)
            if end >= 0:
                line = self.buf[self.pos:end]
                self.pos = end + 2
                return line
            self.fill()

    def reply(self):
        line = self.line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return Err(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) - self.pos < n + 2:
                self.fill()
            data = self.buf[self.pos:self.pos + n]
            self.pos += n + 2
            return data
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise OSError("unexpected reply %r" % line)


class Err(str):
    pass


def ask(port, *args, timeout=2.0):
    """One command on a fresh connection; None on any error."""
    try:
        c = Conn(port, timeout)
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


def key(i):
    return "key:%d" % i


def value(i):
    n = 16 + (i * 37) % 85
    word = "%08x" % ((i * 2654435761) & 0xFFFFFFFF)
    return (word * 13)[:n]


def has_ttl(i):
    return i % 10 == 0


def slot(k):
    return int.from_bytes(hashlib.md5(k.encode()).digest(), "big") % SLOTS


def replication(port):
    """{shard: {field: value}} from INFO replication, or None."""
    r = ask(port, "INFO", "replication")
    if not isinstance(r, bytes):
        return None
    shards = {}
    for line in r.decode().splitlines():
        if line.startswith("shard") and ":" in line:
            name, rest = line.split(":", 1)
            shards[int(name[5:])] = dict(f.split("=", 1) for f in rest.split(",") if "=" in f)
    return shards


def owners(port):
    """(slot -> shard as a bytearray, {shard: [node ports]}) from CLUSTER SHARDS, or None."""
    r = ask(port, "CLUSTER", "SHARDS", timeout=5.0)
    if not isinstance(r, list):
        return None
    table = bytearray(SLOTS)
    members = {}
    for shard in r:
        f = dict(zip(shard[0::2], shard[1::2]))
        sid = f[b"shard-index"]
        ranges = f[b"slots"]
        for a, b in zip(ranges[0::2], ranges[1::2]):
            for s in range(a, b + 1):
                table[s] = sid
        members[sid] = [dict(zip(n[0::2], n[1::2]))[b"port"] for n in f[b"nodes"]]
    return table, members


work = tempfile.mkdtemp(prefix="minikv-rebalance-")
ports = free_ports(4)
cluster = ",".join("127.0.0.1:%d" % p for p in ports[:3])
procs = []


def start(i):
    log = open("%s/node%d.log" % (work, i + 1), "ab")
    args = [BINARY, "server", str(i + 1), str(ports[i]), "--data-dir", "%s/node%d" % (work, i + 1)]
    if NODE_TIMEOUT_MS:
        args += ["--cluster-node-timeout", NODE_TIMEOUT_MS]
    if i < 3:
        args += ["--cluster", cluster]
    else:
        args += ["--join", "127.0.0.1:%d" % ports[0], "--bus-port", str(ports[i] + 10000)]
    procs.append(subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log))
    log.close()


def leaders(n_nodes, n_shards):
    """{shard: leader node id} when all nodes are ok and agree on every shard's leader."""
    agreed = {}
    for i in range(n_nodes):
        if procs[i].poll() is not None:
            raise SystemExit("node %d exited with %s; logs in %s" % (i + 1, procs[i].returncode, work))
        info = ask(ports[i], "CLUSTER", "INFO")
        if not isinstance(info, bytes) or b"cluster_state:ok" not in info:
            return None
        t = owners(ports[i])
        if t is None or len(t[1]) != n_shards:
            return None
        for s, f in (replication(ports[i]) or {}).items():
            if f.get("leader", "0") == "0" or agreed.setdefault(s, f["leader"]) != f["leader"]:
                return None
    return agreed if len(agreed) == n_shards else None


def wait(what, check, within=HEALTHY_WITHIN_S):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        r = check()
        if r:
            return r
        time.sleep(0.05)
    raise SystemExit("%s: not within %.0f s; logs in %s" % (what, within, work))


def settled(n_nodes):
    """Every node has applied its shards' logs up to the leader's last entry."""
    last = {}
    states = [replication(p) for p in ports[:n_nodes]]
    if any(s is None for s in states):
        return False
    for s in states:
        for shard, f in s.items():
            if f.get("role") == "leader":
                last[shard] = f.get("last_log")
    return all(f.get("applied") == last.get(shard) for s in states for shard, f in s.items())


def cpu_seconds(pid):
    """User + system CPU seconds used so far by process `pid` (0 when it is gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(") ", 1)[1].split()
    except OSError:
        return 0.0
    # fields[0] is field 3, so utime (14) and stime (15) are fields[11] and fields[12].
    return (int(fields[11]) + int(fields[12])) / TICKS


def cpu_now():
    return [cpu_seconds(p.pid) for p in procs[:4]] + [0.0] * (4 - len(procs[:4]))


def cpu_line(name, a, b, seconds):
    used = [y - x for x, y in zip(a, b)]
    print("cpu %s: %s of %.1f s (nodes 1-4; 2 cores = %.1f s)"
          % (name, " ".join("%.1f" % u for u in used), seconds, 2 * seconds), flush=True)


def percentile(sorted_values, q):
    k = max(1, -(-len(sorted_values) * q // 100))
    return sorted_values[int(k) - 1]


def probe(probe_ports, rate, stop, out):
    """Requests at `rate` per second until `stop` is set; sends (sent, latency, error word)."""
    rng = random.Random(1)
    conns = [None] * len(probe_ports)
    sent_at, latency, errors = array.array("d"), array.array("d"), []
    # Per request: node index * 2 + (1 for a SET).
    what = array.array("b")
    n = 0
    t0 = time.monotonic()
    while not stop.is_set():
        due = t0 + n / rate
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        elif now - due > 1.0:
            # Far behind (a long stall): restart the schedule rather than burst.
            t0, n = now, 0
        node = n % len(probe_ports)
        i = rng.randrange(KEYS)
        if n % 2 and has_ttl(i):
            # Its neighbour has no TTL (unless there is none).
            i = i + 1 if i + 1 < KEYS else max(i - 1, 0)
        cmd = ("SET", key(i), value(i)) if n % 2 and not has_ttl(i) else ("GET", key(i))
        n += 1
        start_t = time.monotonic()
        word = text = ""
        try:
            if conns[node] is None:
                conns[node] = Conn(probe_ports[node], PROBE_TIMEOUT_S)
            r = conns[node].call(*cmd)
            if isinstance(r, Err):
                word, text = r.split(" ")[0], str(r)
            elif cmd[0] == "GET" and r != value(i).encode():
                word = "WRONGVALUE"
        except socket.timeout:
            word = "TIMEOUT"
        except (OSError, ValueError):
            word = "CONNERROR"
        end_t = time.monotonic()
        if word and conns[node] is not None and word in ("TIMEOUT", "CONNERROR"):
            conns[node].close()
            conns[node] = None
        sent_at.append(start_t)
        latency.append(end_t - start_t)
        what.append(node * 2 + (cmd[0] == "SET"))
        if word:
            errors.append((start_t, word, "%s %s through node %d: %s" % (cmd[0], cmd[1], node + 1, text or word)))
    out.send((sent_at.tobytes(), latency.tobytes(), what.tobytes(), errors))


def phase_line(name, sent_at, latency, what, errors, a, b):
    inside = [(l, t, w) for t, l, w in zip(sent_at, latency, what) if a <= t < b]
    lat = sorted(l for l, _, _ in inside)
    errs, texts = {}, {}
    for t, w, text in errors:
        if a <= t < b:
            errs[w] = errs.get(w, 0) + 1
            if text:
                texts.setdefault(w, "%s (at %.3f s)" % (text, t - a))
    if not lat:
        print("probe %s: no requests" % name)
        return None, None, 0
    p50, p99, mx = percentile(lat, 50) * 1e3, percentile(lat, 99) * 1e3, lat[-1] * 1e3
    print("probe %s: %d requests in %.1f s, p50 %.3f ms, p99 %.3f ms, max %.1f ms, errors %d%s"
          % (name, len(lat), b - a, p50, p99, mx, sum(errs.values()),
             "".join(" [%s x%d]" % kv for kv in sorted(errs.items()))), flush=True)
    slowest = sorted(inside, reverse=True)[:5]
    print("probe %s slowest: %s" % (name, ", ".join(
        "%.1f ms (%s node %d at %.2f s)" % (l * 1e3, "SET" if w % 2 else "GET", w // 2 + 1, t - a)
        for l, t, w in slowest)), flush=True)
    for w, text in sorted(texts.items()):
        print("probe %s first %s: %s" % (name, w, text), flush=True)
    return p99, mx, sum(errs.values())


ok = False
failures = []
prober = None
# The probe is a forked process (this script has no file a spawned one could import).
mp = multiprocessing.get_context("fork")
stop = mp.Event()
try:
    for i in range(3):
        start(i)
    wait("the three nodes healthy", lambda: leaders(3, 3))
    table, members = owners(ports[0])
    lead = leaders(3, 3)
    leader_port = {s: ports[int(l) - 1] for s, l in lead.items()}

    # Load.
    t = time.monotonic()
    slots = array.array("H", (slot(key(i)) for i in range(KEYS)))
    commands = {s: [] for s in leader_port}
    pending = {s: [] for s in leader_port}
    for i in range(KEYS):
        s = table[slots[i]]
        if has_ttl(i):
            commands[s].append(("SET", key(i), value(i), "EX", str(TTL_S)))
        else:
            p = pending[s]
            p.append(key(i))
            p.append(value(i))
            if len(p) == 2 * MSET_KEYS:
                commands[s].append(["MSET"] + p)
                pending[s] = []
    for s, p in pending.items():
        if p:
            commands[s].append(["MSET"] + p)
    prepared = time.monotonic() - t
    t = time.monotonic()
    conns = {s: Conn(leader_port[s], 30.0) for s in leader_port}
    at = {s: 0 for s in conns}
    while any(at[s] < len(commands[s]) for s in conns):
        chunks = {}
        for s, c in conns.items():
            chunks[s] = commands[s][at[s]:at[s] + DEPTH]
            at[s] += len(chunks[s])
            if chunks[s]:
                c.send(chunks[s])
        for s, c in conns.items():
            for cmd in chunks[s]:
                r = c.reply()
                if r != "OK":
                    raise SystemExit("loading: %s %s... replied %r" % (cmd[0], cmd[1], r))
    for c in conns.values():
        c.close()
    loaded = time.monotonic() - t
    wait("the loaded writes applied everywhere", lambda: settled(3), within=120.0)
    sizes = [ask(p, "DBSIZE") for p in ports[:3]]
    print("loaded %d keys (%d with a TTL) in %.1f s (%.0f keys/s; %.1f s to prepare); DBSIZE %s"
          % (KEYS, (KEYS + 9) // 10, loaded, KEYS / loaded, prepared, " ".join(map(str, sizes))),
          flush=True)
    if sizes != [KEYS] * 3:
        failures.append("DBSIZE after loading: %s, expected %d on each node" % (sizes, KEYS))

    # Probe, before.
    receiver, sender = mp.Pipe(duplex=False)
    prober = mp.Process(target=probe, args=(ports[:3], RATE, stop, sender), daemon=True)
    prober.start()
    time.sleep(0.5)
    t_before = time.monotonic()
    cpu_before = cpu_now()
    time.sleep(BEFORE_S)

    # Join.
    t_join = time.monotonic()
    cpu_join = cpu_now()
    start(3)
    wait("node 4 joined", lambda: leaders(4, 4))
    t_move = time.monotonic()
    cpu_move = cpu_now()
    print("node 4 joined in %.1f s; the move starts at %s (as in the node logs)"
          % (t_move - t_join, time.strftime("%H:%M:%S", time.gmtime()) + ".%03dZ" % (time.time() % 1 * 1000)),
          flush=True)

    # Rebalance.
    servers = ",".join("127.0.0.1:%d" % p for p in ports)
    rb_err = open("%s/rebalance.stderr" % work, "wb")
    rb = subprocess.Popen([BINARY, "rebalance", "--servers", servers, "--batch", str(BATCH)],
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=rb_err, text=True)
    procs.append(rb)
    done = None
    for line in rb.stdout:
        print(line.rstrip("\n"), flush=True)
        if line.startswith("done:"):
            done = dict(kv.split("=", 1) for kv in line.split()[1:])
    rc = rb.wait()
    t_end = time.monotonic()
    cpu_end = cpu_now()
    rb_err.close()
    stop.set()
    sent_at, latency, what, errors = receiver.recv()
    prober.join()
    sent_at = array.array("d", sent_at)
    latency = array.array("d", latency)
    what = array.array("b", what)
    retries = open("%s/rebalance.stderr" % work).read().strip()
    if retries:
        print("rebalance stderr:\n%s" % retries, flush=True)
    print("rebalance exited %d after %.2f s" % (rc, t_end - t_move), flush=True)
    if rc != 0 or done is None:
        failures.append("rebalance exited %d%s" % (rc, "" if done else " without a done: line"))
        done = done or {"keys": "0", "bytes": "0", "wire": "0", "seconds": "0", "keys/s": "0"}

    # Check.
    wait("no migration in progress", lambda: all(
        b"cluster_migrations_in_progress:0" in (ask(p, "INFO", "replication") or b"") for p in ports))
    wait("the moves applied everywhere", lambda: settled(4), within=120.0)
    after = [owners(p) for p in ports]
    if any(a is None or bytes(a[0]) != bytes(after[0][0]) for a in after):
        failures.append("the nodes' CLUSTER SHARDS differ")
    new_table = after[0][0]
    counts = {s: new_table.count(s) for s in range(1, 5)}
    if sorted(counts.values()) != [SLOTS // 4] * 4:
        failures.append("slots per shard after: %s" % counts)
    per_shard = {s: 0 for s in range(1, 5)}
    changed = 0
    for i in range(KEYS):
        s = new_table[slots[i]]
        per_shard[s] += 1
        changed += s != table[slots[i]]
    # A call whose reply was lost (rebalance retried) moved keys that its done: line cannot
    # count: then the figure is only shown.
    if int(done["keys"]) < changed and not retries:
        failures.append("rebalance says %s keys moved; %d loaded keys changed shard"
                        % (done["keys"], changed))
    for i, p in enumerate(ports):
        local = sorted((replication(p) or {}).keys())
        want = sum(per_shard[s] for s in local)
        got = ask(p, "DBSIZE")
        if got != want:
            failures.append("node %d (shards %s): DBSIZE %s, expected %d" % (i + 1, local, got, want))
    check = list(range(KEYS)) if SAMPLE >= KEYS else random.sample(range(KEYS), SAMPLE)
    conns = [Conn(p, 30.0) for p in ports]
    wrong = []
    for a in range(0, len(check), 1000):
        part = check[a:a + 1000]
        by_node = {}
        for i in part:
            by_node.setdefault(random.randrange(4), []).append(i)
        for n, items in by_node.items():
            conns[n].send([("GET", key(i)) for i in items] + [("TTL", key(i)) for i in items if has_ttl(i)])
        for n, items in by_node.items():
            values = [conns[n].reply() for _ in items]
            ttls = [conns[n].reply() for i in items if has_ttl(i)]
            for i, v in zip(items, values):
                if v != value(i).encode():
                    wrong.append("GET %s through node %d: %r" % (key(i), n + 1, v))
            for i, ttl in zip([i for i in items if has_ttl(i)], ttls):
                if not isinstance(ttl, int) or not 0 < ttl <= TTL_S:
                    wrong.append("TTL %s through node %d: %r" % (key(i), n + 1, ttl))
    for c in conns:
        c.close()
    if wrong:
        failures.append("%d of %d keys read back wrong, e.g. %s" % (len(wrong), len(check), "; ".join(wrong[:5])))
    print("checked: slots %s; %d loaded keys changed shard; DBSIZE per node as expected: %s; "
          "%d keys read back" % (" ".join("%d=%d" % kv for kv in sorted(counts.items())), changed,
                                 "no" if any("DBSIZE" in f for f in failures) else "yes", len(check)),
          flush=True)

    # Figures.
    p99_before, max_before, errs_before = phase_line("before", sent_at, latency, what, errors, t_before, t_join)
    phase_line("join", sent_at, latency, what, errors, t_join, t_move)
    p99_during, max_during, errs_during = phase_line("during", sent_at, latency, what, errors, t_move, t_end)
    cpu_line("before", cpu_before, cpu_join, t_join - t_before)
    cpu_line("during", cpu_move, cpu_end, t_end - t_move)
    if SAMPLES:
        with open(SAMPLES, "w") as f:
            f.write("phase\tseconds\tms\tnode\tcommand\terror\n")
            failed = {t: text for t, _, text in errors}
            for t, l, w in zip(sent_at, latency, what):
                name, a = (("before", t_before) if t < t_join else ("join", t_join) if t < t_move
                           else ("during", t_move))
                f.write("%s\t%.3f\t%.3f\t%d\t%s\t%s\n" % (name, t - a, l * 1e3, w // 2 + 1,
                                                            "SET" if w % 2 else "GET", failed.get(t, "")))
    for f in failures:
        print("FAILED: %s" % f, flush=True)
    print("rebalance: %d keys, 3 -> 4 shards: %s keys moved in %s s (%s keys/s), raw %.1f MB, "
          "wire %.1f MB; p99 before %.2f ms, during %.2f ms (max %.1f ms); probe errors %d; check %s"
          % (KEYS, done["keys"], done["seconds"], done["keys/s"], int(done["bytes"]) / 1e6,
             int(done["wire"]) / 1e6, p99_before or 0, p99_during or 0, max_during or 0,
             errs_before + errs_during, "FAILED" if failures else "ok"), flush=True)
    ok = not failures
finally:
    stop.set()
    if prober is not None and prober.is_alive():
        prober.join(5)
        if prober.is_alive():
            prober.kill()
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    if KEEP or not ok:
        # On standard error, so that the summary stays the last line of standard output.
        print("node logs in %s" % work, file=sys.stderr)
    else:
        shutil.rmtree(work, ignore_errors=True)
sys.exit(0 if ok else 1)
PYTHON
