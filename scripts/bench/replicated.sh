#!/usr/bin/env bash
# Throughput and CPU per request of minikv's replicated cluster (issue 10) next to one
# unreplicated node and to Redis with two asynchronous replicas, all started by this script and
# measured the same way in the same run. Run it from the repository root after
# `cargo build --release`; it needs redis-server, redis-benchmark and redis-cli
# (./scripts/test.sh installs them).
#
#   scripts/bench/replicated.sh [redis-benchmark args...]
#
# The three sides (every port picked at random among free ones in 20000-21999, so that the
# cluster's bus ports, PORT+10000, stay below Linux's ephemeral range; never 6379):
# - node:    `minikv server 1 PORT --data-dir DIR`, no replication.
# - cluster: `minikv server ID PORT --cluster A,B,C --data-dir DIR` for ID 1..3 (three shards,
#            each replicated on all three nodes by Raft: a write is acknowledged once two
#            nodes have it on disk). The benchmark talks to node 1 only, which forwards the
#            requests of the shards it does not lead (two in three with `-r`) over the bus.
# - redis:   `redis-server --port A`, and two `redis-server --port B --replicaof 127.0.0.1 A`
#            (asynchronous replication, no disk: `--save '' --appendonly no` on all three).
# Each round runs, for -P 1 then -P 16 and for each test of TESTS,
# `redis-benchmark -c 50 -P <P> -n <N> -t <test> -d 100 -r 100000 --csv` against each side (the
# order rotates from round to round), and reads the CPU time of all the side's processes around
# it (utime + stime from /proc/PID/stat: all three processes for the cluster and for redis).
# Before each cluster run it waits for `cluster_state:ok` on every node; a cluster run that
# fails with CLUSTERDOWN (an election during the run) is run again, up to three times, with a
# warning on standard error.
#
# At the end, medians over the rounds, one line per test and depth; the last line always starts
# with `replicated:`:
#   SET P=1: node X req/s, cluster Y req/s (ratio Y/X), redis Z req/s; cpu node A, cluster B, redis C us/req  [p50 ms a/b/c, p99 ms a/b/c]
#   replicated: cluster/node SET P=1 0.500, GET P=1 0.900, SET P=16 0.300, GET P=16 0.800
# docs/performance.md quotes lines in this format; keep it when changing the script.
#
# Environment: MINIKV (./target/release/minikv), TESTS (set,get), ROUNDS (3), N_P1 (200000
# requests per run at -P 1), N_P16 (1000000 at -P 16), RUN_TIMEOUT_S (180, limit of one
# redis-benchmark run). Extra arguments go to every redis-benchmark run after the defaults;
# `-n N` sets both request counts. Do not pass -h, -p, -P, -q or --csv. Every process it
# starts is stopped by its PID when it exits.
set -uo pipefail
export LC_ALL=C

usage() {
  echo "usage: $0 [redis-benchmark args...]" >&2
  exit 2
}
positive() { [[ $1 =~ ^[1-9][0-9]*$ ]]; }

minikv=${MINIKV:-./target/release/minikv}
tests=${TESTS:-set,get}
rounds=${ROUNDS:-3}
n_p1=${N_P1:-200000}
n_p16=${N_P16:-1000000}
run_timeout=${RUN_TIMEOUT_S:-180}
host=127.0.0.1

extra=()
while (($# > 0)); do
  case $1 in
    -n)
      positive "${2:-}" || usage
      n_p1=$2 n_p16=$2
      shift 2
      ;;
    *)
      extra+=("$1")
      shift
      ;;
  esac
done
for value in "$rounds" "$n_p1" "$n_p16" "$run_timeout"; do
  positive "$value" || { echo "ROUNDS, N_P1, N_P16 and RUN_TIMEOUT_S must be positive integers" >&2; exit 2; }
done
[[ -x $minikv ]] || { echo "no minikv binary at $minikv (cargo build --release, or set MINIKV)" >&2; exit 1; }
for tool in redis-server redis-benchmark redis-cli awk timeout; do
  command -v "$tool" >/dev/null || { echo "missing: $tool (./scripts/test.sh installs it)" >&2; exit 1; }
done
hz=$(getconf CLK_TCK 2>/dev/null || echo 100)

work=$(mktemp -d)
pids=()
stop_all() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
  pids=()
}
trap 'stop_all; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

# Clock ticks of CPU time (user + system, all threads) used so far by the processes $@.
cpu_ticks() {
  local pid stat fields total=0
  for pid in "$@"; do
    { read -r stat <"/proc/$pid/stat"; } 2>/dev/null || return 1
    # Field 2 (the command name) may hold spaces and parentheses: count from its closing ") ".
    read -r -a fields <<<"${stat##*) }"
    # fields[0] is field 3, so utime (14) and stime (15) are fields[11] and fields[12].
    total=$((total + fields[11] + fields[12]))
  done
  echo "$total"
}

# A port in 20000-21999 on which nothing answers, whose PORT+10000 is free too, and that no
# earlier call returned.
taken=" "
free_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 2000))
    [[ $taken == *" $port "* ]] && continue
    (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null && continue
    (exec 3<>"/dev/tcp/$host/$((port + 10000))") 2>/dev/null && continue
    taken+="$port "
    echo "$port"
    return 0
  done
}

# Waits up to 30 s until `redis-cli -p PORT ARGS...` prints a line matching PATTERN.
wait_for() {
  local port=$1 pattern=$2
  shift 2
  for _ in $(seq 1 600); do
    if timeout 2 redis-cli -h "$host" -p "$port" "$@" 2>/dev/null | tr -d '\r' | grep -q "$pattern"; then
      return 0
    fi
    sleep 0.05
  done
  echo "port $port: no '$pattern' from $* within 30 s (logs in $work)" >&2
  return 1
}

node_port=$(free_port)
"$minikv" server 1 "$node_port" --data-dir "$work/node" >"$work/node.log" 2>&1 &
pids+=($!)
node_pids=$!

cluster_ports=()
for _ in 1 2 3; do cluster_ports+=("$(free_port)"); done
cluster_list=$host:${cluster_ports[0]},$host:${cluster_ports[1]},$host:${cluster_ports[2]}
cluster_pids=()
for id in 1 2 3; do
  "$minikv" server "$id" "${cluster_ports[id - 1]}" --cluster "$cluster_list" \
    --data-dir "$work/cluster$id" >"$work/cluster$id.log" 2>&1 &
  pids+=($!)
  cluster_pids+=($!)
done

redis_ports=()
redis_pids=()
for i in 0 1 2; do
  redis_ports+=("$(free_port)")
  replicaof=()
  ((i == 0)) || replicaof=(--replicaof "$host" "${redis_ports[0]}")
  redis-server --port "${redis_ports[i]}" --bind "$host" --save '' --appendonly no \
    --daemonize no --dir "$work" --dbfilename "redis$i.rdb" --logfile "$work/redis$i.log" \
    "${replicaof[@]}" &
  pids+=($!)
  redis_pids+=($!)
done

wait_for "$node_port" PONG PING || exit 1
for port in "${cluster_ports[@]}"; do wait_for "$port" 'cluster_state:ok' CLUSTER INFO || exit 1; done
wait_for "${redis_ports[0]}" 'connected_slaves:2' INFO replication || exit 1
for i in 1 2; do wait_for "${redis_ports[i]}" 'master_link_status:up' INFO replication || exit 1; done

redis_version=$(redis-server --version | grep -o 'v=[^ ]*' | cut -d= -f2)
echo "node $host:$node_port (pid $node_pids); cluster via $host:${cluster_ports[0]}" \
  "(pids ${cluster_pids[*]}); redis-server ${redis_version:-?} on $host:${redis_ports[0]} +" \
  "2 replicas (pids ${redis_pids[*]}); rounds=$rounds; tests=$tests;" \
  "-n $n_p1 at P=1, $n_p16 at P=16; extra args: ${extra[*]:-(none)}"

results=$work/results
: >"$results"

# One redis-benchmark run: measure SIDE PORT DEPTH TEST PID... Appends
# "side test depth req/s p50 p99 cpu" to $results (cpu in us per request, or na).
measure() {
  local side=$1 port=$2 depth=$3 test=$4 n before after out status rows cpu=na
  shift 4
  n=$n_p1
  ((depth == 1)) || n=$n_p16
  local attempt p err=$work/benchmark.err.last
  for attempt in 1 2 3; do
    before=$(cpu_ticks "$@")
    out=$(timeout "$run_timeout" redis-benchmark -h "$host" -p "$port" -c 50 -P "$depth" \
      -n "$n" -t "$test" -d 100 -r 100000 --csv "${extra[@]}" 2>"$err")
    status=$?
    after=$(cpu_ticks "$@")
    cat "$err" >>"$work/benchmark.err"
    # A shard that lost its leader mid-run (an election, likely with a debug build on two
    # cores) answers CLUSTERDOWN until the next one is elected: say so, wait, run again.
    if ((status == 0)) || [[ $side != cluster ]] || ! grep -q CLUSTERDOWN "$err"; then
      break
    fi
    echo "warning: $side P=$depth $test: CLUSTERDOWN during run $attempt (an election); running it again" >&2
    for p in "${cluster_ports[@]}"; do wait_for "$p" 'cluster_state:ok' CLUSTER INFO || exit 1; done
  done
  rows=$(tr -d '"\r' <<<"$out" | awk -F, '$1 != "test" && NF >= 7 && $2 > 0 {
    gsub(/ /, "_", $1); print $1, $2, $5, $7 }')
  if ((status != 0)); then
    echo "warning: $side P=$depth $test: redis-benchmark exited with $status" >&2
  fi
  [[ -n $rows ]] || return 0
  if ((status == 0)) && [[ -n $before && -n $after && $rows != *$'\n'* ]]; then
    cpu=$(awk -v t=$((after - before)) -v hz="$hz" -v n="$n" 'BEGIN { printf "%.6f", t / hz / n * 1e6 }')
  fi
  awk -v side="$side" -v depth="$depth" -v cpu="$cpu" '{ print side, $1, depth, $2, $3, $4, cpu }' \
    <<<"$rows" >>"$results"
}

run_side() {
  case $1 in
    node) measure node "$node_port" "$2" "$3" "$node_pids" ;;
    cluster)
      # Every shard led again before the run: an election the previous run's load caused
      # (likely with a debug build on two cores) would otherwise fail it with CLUSTERDOWN.
      for port in "${cluster_ports[@]}"; do wait_for "$port" 'cluster_state:ok' CLUSTER INFO || exit 1; done
      measure cluster "${cluster_ports[0]}" "$2" "$3" "${cluster_pids[@]}"
      ;;
    redis) measure redis "${redis_ports[0]}" "$2" "$3" "${redis_pids[@]}" ;;
  esac
}

IFS=, read -r -a test_list <<<"$tests"
sides=(node cluster redis)
for round in $(seq 1 "$rounds"); do
  for depth in 1 16; do
    for test in "${test_list[@]}"; do
      [[ -n $test ]] || continue
      for k in 0 1 2; do
        run_side "${sides[(round + k) % 3]}" "$depth" "$test"
      done
    done
  done
done
stop_all

if [[ -s $work/benchmark.err ]]; then
  grep -v -e '^$' -e 'Could not fetch server CONFIG' "$work/benchmark.err" | sort | uniq -c |
    head -n 5 | sed 's/^ */benchmark stderr: /' >&2
fi

awk '
  function median(s,   v, n, i, j, x) {
    n = split(s, v, " ")
    if (n == 0) return 0
    for (i = 2; i <= n; i++) {
      x = v[i] + 0
      for (j = i - 1; j >= 1 && v[j] + 0 > x; j--) v[j + 1] = v[j]
      v[j + 1] = x
    }
    return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
  }
  function cpu_of(side, key) { return cpu_n[side, key] ? sprintf("%.3f", median(cpu[side, key])) : "n/a" }
  {
    key = $2 " P=" $3
    if (!(key in known)) { known[key] = 1; keys[++count] = key }
    rps[$1, key] = rps[$1, key] " " $4
    p50[$1, key] = p50[$1, key] " " $5
    p99[$1, key] = p99[$1, key] " " $6
    if ($7 != "na") { cpu_n[$1, key]++; cpu[$1, key] = cpu[$1, key] " " $7 }
  }
  END {
    if (count == 0) {
      print "no results: see the redis-benchmark messages above"
      print "replicated: no results"
      exit 1
    }
    summary = "replicated: cluster/node"
    for (i = 1; i <= count; i++) {
      key = keys[i]
      n = median(rps["node", key]); c = median(rps["cluster", key]); r = median(rps["redis", key])
      ratio = n > 0 ? c / n : 0
      printf "%s: node %.0f req/s, cluster %.0f req/s (ratio %.3f), redis %.0f req/s; cpu node %s, cluster %s, redis %s us/req  [p50 ms %.3f/%.3f/%.3f, p99 ms %.3f/%.3f/%.3f]\n",
        key, n, c, ratio, r, cpu_of("node", key), cpu_of("cluster", key), cpu_of("redis", key),
        median(p50["node", key]), median(p50["cluster", key]), median(p50["redis", key]),
        median(p99["node", key]), median(p99["cluster", key]), median(p99["redis", key])
      summary = summary sprintf("%s %s %.3f", i > 1 ? "," : "", key, ratio)
    }
    print summary
  }' "$results"
