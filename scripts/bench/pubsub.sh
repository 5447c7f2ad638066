#!/usr/bin/env bash
# Pub/sub fan-out, minikv next to redis-server in the same run: 1 publisher, SUBSCRIBERS (100)
# subscribers of one channel, MESSAGES (20000) messages of PAYLOAD (64) bytes, WINDOW (64)
# PUBLISHes in flight; the figure is messages delivered per second (examples/pubsub_fanout.rs).
#
#   scripts/bench/pubsub.sh
#
# Both servers start on free ports picked at random in 20000-29999 (never 6379), with no disk
# work (`--save ''` for redis-server, a temporary data directory for minikv), and are stopped by
# their PIDs when the script exits. Each of ROUNDS (3) rounds runs the example once against each
# server, the side that goes first alternating; the last lines are the medians:
#   pubsub: minikv X deliveries/s, redis Y deliveries/s, ratio X/Y
# It builds `minikv` and the example in release mode first (MINIKV_BIN and FANOUT_BIN skip that;
# CARGO_TARGET_DIR is honoured).
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/../.."

rounds=${ROUNDS:-3}
subscribers=${SUBSCRIBERS:-100}
messages=${MESSAGES:-20000}
payload=${PAYLOAD:-64}
window=${WINDOW:-64}
host=127.0.0.1
target_dir=${CARGO_TARGET_DIR:-target}
if [[ -z ${MINIKV_BIN:-} || -z ${FANOUT_BIN:-} ]]; then
  cargo build --release --bin minikv --example pubsub_fanout >&2
fi
minikv_bin=${MINIKV_BIN:-$target_dir/release/minikv}
fanout_bin=${FANOUT_BIN:-$target_dir/release/examples/pubsub_fanout}

tmp=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

free_port() {
  local port
  for _ in $(seq 100); do
    port=$((20000 + RANDOM % 10000))
    if ! (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
      echo "$port"
      return
    fi
  done
  echo "no free port" >&2
  exit 1
}

wait_port() {
  for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/$host/$1") 2>/dev/null && return
    sleep 0.05
  done
  echo "nothing listens on $1" >&2
  exit 1
}

redis_port=$(free_port)
redis-server --port "$redis_port" --bind "$host" --save '' --appendonly no --dir "$tmp" \
  >"$tmp/redis.log" 2>&1 &
pids+=($!)
minikv_port=$(free_port)
mkdir -p "$tmp/minikv"
"$minikv_bin" server 1 "$minikv_port" --data-dir "$tmp/minikv" >"$tmp/minikv.log" 2>&1 &
pids+=($!)
wait_port "$redis_port"
wait_port "$minikv_port"

run() {
  "$fanout_bin" "$host:$1" "$subscribers" "$messages" "$payload" "$window" | tail -n 1 |
    awk '{print $2}'
}

declare -a m r
for round in $(seq "$rounds"); do
  if ((round % 2)); then
    m+=("$(run "$minikv_port")"); r+=("$(run "$redis_port")")
  else
    r+=("$(run "$redis_port")"); m+=("$(run "$minikv_port")")
  fi
  echo "round $round: minikv ${m[-1]} deliveries/s, redis ${r[-1]} deliveries/s" >&2
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
mm=$(median "${m[@]}")
rm_=$(median "${r[@]}")
echo "pubsub: minikv $mm deliveries/s, redis $rm_ deliveries/s, ratio $(awk -v a="$mm" -v b="$rm_" 'BEGIN {printf "%.2f", a/b}')"
