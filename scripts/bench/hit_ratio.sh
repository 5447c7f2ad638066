#!/usr/bin/env bash
# Eviction quality (issue 15): the hit ratio of a cache-aside client (examples/hit_ratio.rs:
# GET a Zipf(0.99) key, SET it on a miss) against redis-server and against minikv, each
# started here with the same maxmemory and policy, for allkeys-lru and allkeys-lfu, in one run.
# KEYS must be at least 10x what fits in MAXMEMORY for the figure to mean anything.
#
#   scripts/bench/hit_ratio.sh [MAXMEMORY=32mb] [KEYS=2000000] [REQUESTS=4000000] [VALUE=100]
#
# Builds the release binary and the example (into $CARGO_TARGET_DIR, default target/), starts
# each server on a free ephemeral port of 127.0.0.1 (never 6379), with no snapshots, and stops
# it (by its PID only) after its run. Output, one line per run (docs/performance.md quotes it):
#   <server> <policy> hit_ratio=<r> peak_rss=<bytes> (<MiB>) maxmemory=<bytes> ops/s=<n>
# Needs redis-server, redis-cli and python3 (for a free port).
set -uo pipefail
export LC_ALL=C

maxmemory=${1:-32mb} keys=${2:-2000000} requests=${3:-4000000} value=${4:-100}
for tool in redis-server redis-cli python3 cargo; do
  command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done
root=$(cd "$(dirname "$0")/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
(cd "$root" && cargo build --release --quiet --bin minikv --example hit_ratio) || exit 1
# MINIKV_BIN runs another minikv build (an earlier commit's, for a before/after) in its place.
bin=${MINIKV_BIN:-$target/release/minikv}
client=$target/release/examples/hit_ratio
scratch=$(mktemp -d)
pid=""
cleanup() {
  if [[ -n $pid ]]; then kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; fi
  rm -rf "$scratch"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_ping() {
  for _ in $(seq 1 200); do
    [[ $(redis-cli -p "$1" PING 2>/dev/null) == PONG ]] && return 0
    sleep 0.05
  done
  echo "nothing answered PING on port $1" >&2
  return 1
}
limit_bytes() { redis-cli -p "$1" CONFIG GET maxmemory | tail -n 1 | tr -d '\r'; }

run() {
  local server=$1 policy=$2 port line
  port=$(free_port)
  [[ $port != 6379 ]] || port=$(free_port)
  case $server in
    redis)
      redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$scratch" --maxmemory "$maxmemory" --maxmemory-policy "$policy" \
        >"$scratch/redis.log" 2>&1 &
      ;;
    minikv)
      "$bin" server 1 "$port" --data-dir "$scratch" --save '' \
        --maxmemory "$maxmemory" --maxmemory-policy "$policy" >"$scratch/minikv.log" 2>&1 &
      ;;
  esac
  pid=$!
  wait_ping "$port" || return 1
  local limit
  limit=$(limit_bytes "$port")
  line=$("$client" "127.0.0.1:$port" "$keys" "$requests" "$value" "$pid" | tail -n 1)
  kill "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  pid=""
  local ratio rss ops
  ratio=$(sed -n 's/^hit_ratio: \([0-9.]*\).*/\1/p' <<<"$line")
  rss=$(sed -n 's/.*peak_rss=\([0-9]*\).*/\1/p' <<<"$line")
  ops=$(sed -n 's/.*ops\/s=\([0-9]*\).*/\1/p' <<<"$line")
  printf '%-6s %-11s hit_ratio=%s peak_rss=%s (%.1f MiB) maxmemory=%s ops/s=%s\n' \
    "$server" "$policy" "$ratio" "$rss" "$(awk -v b="$rss" 'BEGIN { print b / 1048576 }')" \
    "$limit" "$ops"
}

echo "maxmemory=$maxmemory keys=$keys requests=$requests value=$value bytes ($(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg))"
for policy in allkeys-lru allkeys-lfu; do
  run redis "$policy"
  run minikv "$policy"
done
