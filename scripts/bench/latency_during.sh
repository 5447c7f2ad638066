#!/usr/bin/env bash
# latency_during.sh: request latency while a snapshot or a log rewrite runs, against Redis.
#
# For minikv (MINIKV, default ./target/release/minikv, default flags) and a fresh redis-server
# (REDIS_SERVER, default redis-server), each loaded with KEYS (1000000) keys, three runs:
#   quiet     nothing in the background
#   snapshot  BGSAVE called again as soon as the previous one finished
#   rewrite   appendonly on, the log rewritten again as soon as the previous rewrite finished
#             (Redis: BGREWRITEAOF; minikv has none: it compacts its log after each snapshot,
#             so there this is BGSAVE with the log on)
# each `redis-benchmark -t set` then `-t get`, `-r KEYS -c 50 -n N (400000) --precision 3`, and
# prints one line per server, mode and test: req/s, p50, p99, p99.9 and max latency (ms), how
# many requests took over about 10 ms (its 10.1 ms histogram bucket), and how many
# saves/rewrites completed during the run. Issue 14's target: no request over 10 ms while a
# snapshot or a rewrite runs. MODES and SERVERS (space-separated) pick a subset. Uses free ports on 127.0.0.1; every server it starts is stopped
# by PID on exit.
#
#   cargo build --release && scripts/bench/latency_during.sh
set -u
export LC_ALL=C
MINIKV=${MINIKV:-./target/release/minikv}
REDIS_SERVER=${REDIS_SERVER:-redis-server}
KEYS=${KEYS:-1000000}
N=${N:-400000}
pid=""
loop=""
work=$(mktemp -d)
cleanup() {
  if [ -n "$loop" ]; then kill "$loop" 2>/dev/null; fi
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null; fi
  rm -rf "$work"
}
trap cleanup EXIT
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_ready() {
  for _ in $(seq 1 200); do
    redis-cli -p "$1" ping >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "server on port $1 did not start" >&2
  exit 1
}
load() {
  python3 -c "
import sys
out = []
for i in range(1, $KEYS + 1):
    k = b'key:%012d' % i
    out.append(b'*3\r\n\$3\r\nSET\r\n\$%d\r\n%s\r\n\$3\r\nxxx\r\n' % (len(k), k))
sys.stdout.buffer.write(b''.join(out))
" | redis-cli -p "$1" --pipe >/dev/null
}
info_field() { redis-cli -p "$1" info persistence | tr -d '\r' | sed -n "s/^$2://p"; }
# Calls COMMAND again each time the flag FIELD says the previous one is over.
background_loop() {
  local port=$1 command=$2 field=$3
  while true; do
    redis-cli -p "$port" "$command" >/dev/null 2>&1
    sleep 0.01
    while [ "$(info_field "$port" "$field")" = 1 ]; do sleep 0.01; done
  done
}
run() {
  local name=$1 mode=$2 port
  port=$(free_port)
  local dir="$work/$name-$mode"
  mkdir -p "$dir"
  local aof=no
  if [ "$mode" = rewrite ]; then aof=yes; fi
  if [ "$name" = minikv ]; then
    "$MINIKV" server 1 "$port" --data-dir "$dir" --save '' --appendonly "$aof" >"$dir/log" 2>&1 &
  else
    "$REDIS_SERVER" --port "$port" --bind 127.0.0.1 --save '' --appendonly "$aof" \
      --dir "$dir" >"$dir/log" 2>&1 &
  fi
  pid=$!
  wait_ready "$port"
  load "$port"
  local before_saves before_rewrites
  before_saves=$(info_field "$port" rdb_saves)
  before_rewrites=$(info_field "$port" aof_rewrites)
  case $name-$mode in
    *-snapshot | minikv-rewrite) background_loop "$port" bgsave rdb_bgsave_in_progress & loop=$! ;;
    redis-rewrite) background_loop "$port" bgrewriteaof aof_rewrite_in_progress & loop=$! ;;
  esac
  local tests=(set get) outputs=() test
  for test in "${tests[@]}"; do
    outputs+=("$(redis-benchmark -h 127.0.0.1 -p "$port" -t "$test" -r "$KEYS" -c 50 -n "$N" \
      --precision 3 2>/dev/null | tr '\r' '\n')")
  done
  if [ -n "$loop" ]; then kill "$loop" 2>/dev/null; wait "$loop" 2>/dev/null; loop=""; fi
  local saves rewrites
  saves=$(info_field "$port" rdb_saves)
  saves=$((${saves:-0} - ${before_saves:-0}))
  rewrites=$(info_field "$port" aof_rewrites)
  rewrites=$((${rewrites:-0} - ${before_rewrites:-0}))
  local i
  for i in "${!tests[@]}"; do
    printf '%s\n' "${outputs[$i]}" | awk -v name="$name" -v mode="$mode" -v test="${tests[$i]}" \
      -v n="$N" -v saves="$saves" -v rewrites="$rewrites" '
      /^Latency by percentile/ { section = "pct"; next }
      /^Cumulative distribution/ { section = "cum"; next }
      /^Summary/ { section = "sum"; next }
      section == "pct" && /%/ {
        pct = $1; sub(/%/, "", pct)
        if (p999 == "" && pct + 0 >= 99.9) p999 = $3
      }
      section == "cum" && /%/ {
        count = $7; sub(/\)/, "", count)
        if ($3 + 0 <= 10.2) within10 = count
      }
      /throughput summary/ { rps = $3 }
      section == "sum" && $1 ~ /^[0-9.]+$/ && NF == 6 { p50 = $3; p99 = $5; max = $6 }
      END {
        printf "%-6s %-8s %-4s %9s req/s  p50 %6s  p99 %6s  p99.9 %7s  max %8s ms  over 10 ms: %s  (saves %s, rewrites %s)\n",
          name, mode, toupper(test), rps, p50, p99, p999, max, n - within10, saves, rewrites
      }'
  done
  kill "$pid"
  wait "$pid" 2>/dev/null
  pid=""
}
for mode in ${MODES:-quiet snapshot rewrite}; do
  for server in ${SERVERS:-minikv redis}; do
    run "$server" "$mode"
  done
done
