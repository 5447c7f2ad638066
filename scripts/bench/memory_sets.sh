#!/usr/bin/env bash
# Memory of small sets, minikv against Redis in the same run: starts a minikv node and a
# redis-server on free ports, writes NSETS sets of MEMBERS small integers into each, and
# compares the resident memory of the two processes. Needs redis-server, redis-cli and awk.
#
#   scripts/bench/memory_sets.sh [NSETS=100000] [MEMBERS=10]
#
# - Set i is `set:<i, 9 digits>` with members i%100, i%100+100, ... (MEMBERS integers below
#   32768: an intset of 16-bit values in both servers), sent as SADD commands through
#   `redis-cli --pipe`.
# - Resident memory is VmRSS from /proc/PID/status, read before the load and one second after
#   it. Growth per set is (after - before) / NSETS; the ratio compares the totals after the
#   load (each process's fixed cost included) and the growths.
# - The node runs with one worker thread and no snapshot during the run, as in
#   docs/performance.md's memory figures; Redis with `--save '' --appendonly no`.
#
# Environment: MINIKV (./target/release/minikv), PIPE_TIMEOUT (10 s), LOAD_LIMIT_S (600 s).
set -uo pipefail
export LC_ALL=C

if (($# > 2)); then
  echo "usage: $0 [NSETS=100000] [MEMBERS=10]" >&2
  exit 2
fi
sets=${1:-100000} members=${2:-10}
for value in "$sets" "$members"; do
  [[ $value =~ ^[1-9][0-9]*$ ]] || { echo "NSETS and MEMBERS are positive integers" >&2; exit 2; }
done
((members <= 300)) || { echo "MEMBERS is at most 300 (an intset of 16-bit values)" >&2; exit 2; }
minikv=${MINIKV:-./target/release/minikv}
pipe_timeout=${PIPE_TIMEOUT:-10}
load_limit=${LOAD_LIMIT_S:-600}
host=127.0.0.1
for tool in redis-server redis-cli awk timeout; do
  command -v "$tool" >/dev/null || { echo "missing: $tool (./scripts/test.sh installs it)" >&2; exit 1; }
done
[[ -x $minikv ]] || { echo "no minikv binary at $minikv (cargo build --release, or set MINIKV)" >&2; exit 1; }

scratch=$(mktemp -d)
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
  rm -rf "$scratch"
}
trap cleanup EXIT

# A TCP port nothing listens on (never 6379).
free_port() {
  local port
  for _ in $(seq 100); do
    port=$((20000 + RANDOM % 40000))
    ((port == 6379)) && continue
    if ! (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  return 1
}
cli() { timeout 10 redis-cli -h "$host" -p "$1" "${@:2}" 2>/dev/null | tr -d '\r'; }
rss_kb() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$1/status" 2>/dev/null; }
# Waits up to 10 s for PING on port $1.
wait_ready() {
  for _ in $(seq 100); do
    [[ $(cli "$1" PING) == PONG ]] && return 0
    sleep 0.1
  done
  return 1
}
# $1 / $2, truncated to one decimal.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", int(a * 10 / b) / 10 }'; }
ratio2() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

redis_port=$(free_port) || { echo "no free port" >&2; exit 1; }
minikv_port=$(free_port) || { echo "no free port" >&2; exit 1; }
((redis_port != minikv_port)) || minikv_port=$(free_port)
mkdir -p "$scratch/redis" "$scratch/minikv"
redis-server --port "$redis_port" --bind "$host" --save '' --appendonly no \
  --dir "$scratch/redis" >"$scratch/redis.log" 2>&1 &
pids+=($!)
redis_pid=$!
"$minikv" server 1 "$minikv_port" --threads 1 --data-dir "$scratch/minikv" \
  --save-interval 3600 >"$scratch/minikv.log" 2>&1 &
pids+=($!)
minikv_pid=$!
wait_ready "$redis_port" || { echo "redis-server did not start" >&2; cat "$scratch/redis.log" >&2; exit 1; }
wait_ready "$minikv_port" || { echo "minikv did not start" >&2; cat "$scratch/minikv.log" >&2; exit 1; }

# Loads the sets into port $1 and prints "before after" RSS (kB) of process $2.
load() {
  local port=$1 pid=$2 before after out rc
  before=$(rss_kb "$pid")
  out=$(awk -v n="$sets" -v m="$members" 'BEGIN {
      for (i = 1; i <= n; i++) {
        key = sprintf("set:%09d", i)
        printf "*%d\r\n$4\r\nSADD\r\n$%d\r\n%s\r\n", m + 2, length(key), key
        for (j = 0; j < m; j++) {
          v = (i % 100) + 100 * j
          printf "$%d\r\n%d\r\n", length(v ""), v
        }
      }
    }' | timeout "$load_limit" redis-cli -h "$host" -p "$port" --pipe --pipe-timeout "$pipe_timeout" 2>&1)
  rc=$?
  sleep 1
  after=$(rss_kb "$pid")
  echo "$before $after $rc $(tr -d '\r' <<<"$out" | tail -n 1)"
}

read -r r_before r_after r_rc _ <<<"$(load "$redis_port" "$redis_pid")"
read -r m_before m_after m_rc m_out <<<"$(load "$minikv_port" "$minikv_pid")"
last=$(printf 'set:%09d' "$sets")

echo "sets: $sets of $members integers; SCARD $last: redis $(cli "$redis_port" SCARD "$last")," \
  "minikv $(cli "$minikv_port" SCARD "$last"); OBJECT ENCODING: redis" \
  "$(cli "$redis_port" OBJECT ENCODING "$last"), minikv $(cli "$minikv_port" OBJECT ENCODING "$last")"
echo "DBSIZE: redis $(cli "$redis_port" DBSIZE), minikv $(cli "$minikv_port" DBSIZE)" \
  "(load rc: redis $r_rc, minikv $m_rc; last line: $m_out)"
echo "redis-server: RSS before $r_before kB, after $r_after kB," \
  "growth per set $(ratio $(((r_after - r_before) * 1024)) "$sets") bytes"
echo "minikv:       RSS before $m_before kB, after $m_after kB," \
  "growth per set $(ratio $(((m_after - m_before) * 1024)) "$sets") bytes"
echo "minikv / redis: total RSS $(ratio2 "$m_after" "$r_after")x," \
  "growth $(ratio2 $((m_after - m_before)) $((r_after - r_before)))x"
