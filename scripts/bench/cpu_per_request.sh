#!/usr/bin/env bash
# cpu_per_request.sh TEST P N BINARY...
#
# Server CPU time per request of one or more minikv builds, alternating between them ROUNDS
# (4) times: for each round and binary, a fresh `BINARY server 1 PORT` (default flags) on a
# free port, 100000 keys written with SET, then `redis-benchmark -t TEST -c 50 -P P -n N`,
# and the server's utime+stime over that run (/proc/PID/stat, clock ticks) divided by N.
# Prints one line per run and the median per binary. Meant for comparing two builds of
# minikv on a busy machine, where throughput moves with the load but CPU per request mostly
# does not (compare.sh remains the yardstick against Redis).
#
#   scripts/bench/cpu_per_request.sh get 16 3000000 /tmp/minikv-before target/release/minikv
set -euo pipefail
export LC_ALL=C
if [ $# -lt 4 ]; then
  echo "usage: $0 TEST P N BINARY..." >&2
  exit 2
fi
test_name=$1 pipeline=$2 n=$3
shift 3
rounds=${ROUNDS:-4}
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
declare -A runs
for ((round = 1; round <= rounds; round++)); do
  for bin in "$@"; do
    port=$(free_port)
    dir=$(mktemp -d)
    "$bin" server 1 "$port" --data-dir "$dir" >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do
      redis-cli -p "$port" ping >/dev/null 2>&1 && break
      sleep 0.05
    done
    redis-benchmark -p "$port" -t set -c 50 -n 100000 -r 100000 -P 16 -q >/dev/null 2>&1
    before=$(cpu_ticks "$pid")
    redis-benchmark -p "$port" -t "$test_name" -c 50 -n "$n" -P "$pipeline" -q >/dev/null 2>&1
    after=$(cpu_ticks "$pid")
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    rm -rf "$dir"
    ticks_per_s=$(getconf CLK_TCK)
    us=$(echo "scale=4; ($after - $before) * 1000000 / $ticks_per_s / $n" | bc)
    echo "round $round $bin: $us us/req"
    runs[$bin]="${runs[$bin]:-} $us"
  done
done
for bin in "$@"; do
  median=$(tr ' ' '\n' <<<"${runs[$bin]}" | grep -v '^$' | sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}')
  echo "median $bin: $median us/req ($test_name -P $pipeline)"
done
