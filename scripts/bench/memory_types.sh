#!/usr/bin/env bash
# Memory of the collection types, a minikv node against redis-server in the same run.
#
#   scripts/bench/memory_types.sh [TYPE ...]        (default: every type below)
#
# For each TYPE it starts a fresh minikv node (MINIKV, default ./target/release/minikv, with
# --threads 1 and no snapshot during the run) and a fresh redis-server (REDIS_SERVER, default
# redis-server, --save '' --appendonly no), each on a free port picked at random in
# 20000-29999, sends both the same commands through `redis-cli --pipe`, and reads each
# process's VmRSS from /proc/PID/status before the load and one second after it. Both servers
# are stopped (by PID) before the next type and on exit.
#
# Types (each a `load_TYPE` function printing the load as RESP, and its key count in
# `key_counts`; add yours the same way):
#   hash   100,000 hashes hash:000001.. of 10 fields field:01..field:10, each value 10 bytes
#          ("v" and 9 digits, not a number, so neither server stores it as an integer),
#          one HSET per hash.
#
# Output, one line per type (docs/performance.md quotes it):
#   hash: 100000 keys; minikv RSS +X kB (Y B/key), redis +Z kB (W B/key); ratio R
# with R = minikv growth / redis growth (lower is better; the issue's aim is <= 1.00).
#
# Environment: MINIKV, REDIS_SERVER, PIPE_TIMEOUT (30 s for redis-cli --pipe's last reply).
set -uo pipefail
export LC_ALL=C

minikv=${MINIKV:-./target/release/minikv}
redis_server=${REDIS_SERVER:-redis-server}
pipe_timeout=${PIPE_TIMEOUT:-30}
all_types=(hash)
types=("$@")
((${#types[@]} > 0)) || types=("${all_types[@]}")

for tool in redis-cli awk "$redis_server"; do
  command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done
[[ -x $minikv ]] || { echo "no minikv binary at $minikv (cargo build --release)" >&2; exit 1; }

load_hash() {
  awk 'BEGIN {
    for (i = 1; i <= 100000; i++) {
      key = sprintf("hash:%06d", i)
      printf "*22\r\n$4\r\nHSET\r\n$%d\r\n%s\r\n", length(key), key
      for (f = 1; f <= 10; f++) {
        printf "$8\r\nfield:%02d\r\n$10\r\nv%09d\r\n", f, i * 10 + f
      }
    }
  }'
}
# Keys each load writes, by type.
declare -A key_counts=([hash]=100000)

pids=()
scratch=$(mktemp -d)
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
  pids=()
}
trap 'cleanup; rm -rf "$scratch"' EXIT

# A port in 20000-29999 nothing listens on.
free_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 10000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return
    fi
  done
}

# Waits (up to 10 s) until the server on $1 answers PING.
wait_ready() {
  local i
  for ((i = 0; i < 100; i++)); do
    [[ $(redis-cli -p "$1" PING 2>/dev/null) == PONG ]] && return 0
    sleep 0.1
  done
  echo "nothing answers on port $1" >&2
  return 1
}

rss_kb() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$1/status"; }

# Loads TYPE into the server on PORT (process PID); prints the RSS growth in kB.
measure() {
  local type=$1 port=$2 pid=$3 before after
  before=$(rss_kb "$pid")
  "load_$type" | redis-cli -p "$port" --pipe --pipe-timeout "$pipe_timeout" >/dev/null 2>&1 || {
    echo "load of $type into port $port failed" >&2
    return 1
  }
  sleep 1
  after=$(rss_kb "$pid")
  echo $((after - before))
}

for type in "${types[@]}"; do
  declare -F "load_$type" >/dev/null || { echo "unknown type: $type" >&2; exit 2; }
  keys=${key_counts[$type]}
  node_port=$(free_port)
  mkdir -p "$scratch/$type"
  "$minikv" server 1 "$node_port" --threads 1 --save-interval 1000000 \
    --data-dir "$scratch/$type" >"$scratch/$type.log" 2>&1 &
  pids+=($!)
  node_pid=$!
  redis_port=$(free_port)
  "$redis_server" --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$scratch" >/dev/null 2>&1 &
  pids+=($!)
  redis_pid=$!
  wait_ready "$node_port" && wait_ready "$redis_port" || exit 1
  node_kb=$(measure "$type" "$node_port" "$node_pid") || exit 1
  redis_kb=$(measure "$type" "$redis_port" "$redis_pid") || exit 1
  echo "$type: $keys keys; minikv RSS +$node_kb kB ($((node_kb * 1024 / keys)) B/key)," \
    "redis +$redis_kb kB ($((redis_kb * 1024 / keys)) B/key);" \
    "ratio $(awk -v a="$node_kb" -v b="$redis_kb" 'BEGIN { printf "%.2f", a / b }')"
  cleanup
done
