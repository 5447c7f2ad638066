#!/usr/bin/env bash
# instructions.sh BINARY [TEST] [N]
#
# User-space instructions per request of one minikv build, counted by valgrind's callgrind:
# repeatable to a fraction of a percent whatever else the machine is doing, unlike timings on
# a shared 2-core box. Starts BINARY (`minikv server 1 PORT --threads 1`) under callgrind on a
# free port, loads 20000 keys, then runs `redis-benchmark -t TEST -c 50 -P 16 -n N`, and does
# the same again with N = 0; the difference divided by N is the cost of one request (start-up,
# loading and shutdown cancel out). Kernel time (the read and write system calls) is not
# counted: compare builds with it, and compare with Redis with scripts/bench/compare.sh.
#
#   scripts/bench/instructions.sh target/release/minikv set 100000
#
# Needs valgrind, redis-benchmark and redis-cli. TEST defaults to set, N to 100000.
set -euo pipefail

if [ $# -lt 1 ]; then
  echo "usage: $0 BINARY [TEST=set] [N=100000]" >&2
  exit 2
fi
BIN=$1
TEST=${2:-set}
N=${3:-100000}
for tool in valgrind redis-benchmark redis-cli python3; do
  command -v "$tool" >/dev/null 2>&1 || { echo "missing tool: $tool" >&2; exit 1; }
done

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# total_instructions REQUESTS: runs the node under callgrind with REQUESTS requests of TEST.
total_instructions() {
  local requests=$1 port dir pid
  port=$(free_port)
  dir=$(mktemp -d)
  valgrind --tool=callgrind --callgrind-out-file="$dir/callgrind.out" \
    "$BIN" server 1 "$port" --data-dir "$dir" --threads 1 --save-interval 3600 \
    >"$dir/node.log" 2>&1 &
  pid=$!
  for _ in $(seq 300); do
    redis-cli -p "$port" PING >/dev/null 2>&1 && break
    sleep 0.2
  done
  redis-benchmark -h 127.0.0.1 -p "$port" -t set -c 50 -n 20000 -P 16 -q >/dev/null
  if [ "$requests" -gt 0 ]; then
    redis-benchmark -h 127.0.0.1 -p "$port" -t "$TEST" -c 50 -n "$requests" -P 16 -q >/dev/null
  fi
  kill -TERM "$pid"
  wait "$pid" || true
  awk '/^totals:/ {print $2}' "$dir/callgrind.out"
  rm -rf "$dir"
}

idle=$(total_instructions 0)
busy=$(total_instructions "$N")
echo "$TEST: $(( (busy - idle) / N )) instructions per request (user space, -P 16, $N requests; totals $idle idle, $busy loaded)"
