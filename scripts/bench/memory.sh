#!/usr/bin/env bash
# Memory per key: writes NKEYS keys into the RESP server on 127.0.0.1:PORT (a minikv node or a
# redis-server) and reports how much the resident memory of its process, PID, grew. Needs
# redis-cli and awk.
#
#   scripts/bench/memory.sh PORT PID [NKEYS] [VALUE_BYTES]
#
# - NKEYS (default 1000000) distinct keys key:000000001, key:000000002, ... each set to the same
#   VALUE_BYTES-byte value (default 10): "v" then "x"s, never a number, so that neither server
#   can store it as an integer. They are sent as SET commands through `redis-cli --pipe` into
#   the current database and left there: use an empty scratch server.
# - Resident memory is VmRSS from /proc/PID/status, read before the load and one second after
#   it (time for the allocator to settle). Growth per key is (after - before) / NKEYS; total
#   per key is after / NKEYS, which includes the process's fixed cost.
#
# Output (docs/performance.md quotes it; keep the format):
#   load: <the last lines of redis-cli --pipe> (rc=0, 3.2 s)
#   check: GET key:001000000 -> 'vxxxxxxxxx'
#   keys requested: 1000000 (value 10 bytes), DBSIZE before/after: 0/1000000
#   RSS before: 5368 kB, after: 75280 kB
#   RSS growth per key: 71.5 bytes
#   RSS total per key:  77.0 bytes
#   used_memory before: B0, after: B1, growth per key: G bytes   (when INFO memory reports it)
# Per-key figures are truncated to one decimal, not rounded, as the figures already published
# were.
#
# Environment: PIPE_TIMEOUT (10: seconds redis-cli --pipe waits for the last reply),
# LOAD_LIMIT_S (600: limit for the whole load).
set -uo pipefail
export LC_ALL=C

if (($# < 2 || $# > 4)); then
  echo "usage: $0 PORT PID [NKEYS=1000000] [VALUE_BYTES=10]" >&2
  exit 2
fi
port=$1 pid=$2 keys=${3:-1000000} value_bytes=${4:-10}
for value in "$port" "$pid" "$keys" "$value_bytes"; do
  [[ $value =~ ^[1-9][0-9]*$ ]] || { echo "PORT, PID, NKEYS and VALUE_BYTES are positive integers" >&2; exit 2; }
done
pipe_timeout=${PIPE_TIMEOUT:-10}
load_limit=${LOAD_LIMIT_S:-600}
host=127.0.0.1
for tool in redis-cli awk timeout; do
  command -v "$tool" >/dev/null || { echo "missing: $tool (./scripts/test.sh installs it)" >&2; exit 1; }
done

cli() { timeout 10 redis-cli -h "$host" -p "$port" "$@" 2>/dev/null | tr -d '\r'; }
rss_kb() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$pid/status" 2>/dev/null; }
# A field of INFO memory (empty if the server does not report it).
used_memory() { cli INFO memory | awk -F: '$1 == "used_memory" { print $2 }'; }
# DBSIZE, or n/a.
dbsize() {
  local n
  n=$(cli DBSIZE)
  if [[ $n =~ ^[0-9]+$ ]]; then echo "$n"; else echo n/a; fi
}
# $1 / $2, truncated to one decimal.
per_key() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", int(a * 10 / b) / 10 }'; }

[[ -n $(rss_kb) ]] || { echo "cannot read the memory of process $pid" >&2; exit 1; }
[[ $(cli PING) == PONG ]] || { echo "nothing on $host:$port answers PING" >&2; exit 1; }

rss_before=$(rss_kb)
used_before=$(used_memory)
keys_before=$(dbsize)
if [[ $keys_before != 0 && $keys_before != n/a ]]; then
  echo "warning: the database already holds $keys_before keys" >&2
fi

last_key=$(printf 'key:%09d' "$keys")
start_ns=$(date +%s%N)
# The whole load as RESP, generated on the fly: *3 $3 SET $len key $len value.
load_output=$(awk -v n="$keys" -v size="$value_bytes" 'BEGIN {
    value = "v"
    while (length(value) < size) value = value "x"
    value = substr(value, 1, size)
    for (i = 1; i <= n; i++) {
      key = sprintf("key:%09d", i)
      printf "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", length(key), key, size, value
    }
  }' | timeout "$load_limit" redis-cli -h "$host" -p "$port" --pipe --pipe-timeout "$pipe_timeout" 2>&1)
load_status=$?
end_ns=$(date +%s%N)
sleep 1
rss_after=$(rss_kb)
used_after=$(used_memory)
keys_after=$(dbsize)

seconds=$(awk -v ns=$((end_ns - start_ns)) 'BEGIN { printf "%.1f", ns / 1e9 }')
echo "load: $(tr -d '\r' <<<"$load_output" | tail -n 2 | tr '\n' ' ')(rc=$load_status, $seconds s)"
if ((load_status != 0)); then
  # redis-cli --pipe ends its input with an ECHO of a random marker and waits for it: a server
  # without ECHO, or one that is too slow, fails here after every SET was sent.
  echo "note: redis-cli --pipe exited with $load_status (no reply to its final ECHO in time?)"
fi
echo "check: GET $last_key -> '$(cli GET "$last_key")'"
echo "keys requested: $keys (value $value_bytes bytes), DBSIZE before/after: $keys_before/$keys_after"
echo "RSS before: $rss_before kB, after: $rss_after kB"
echo "RSS growth per key: $(per_key $(((rss_after - rss_before) * 1024)) "$keys") bytes"
echo "RSS total per key:  $(per_key $((rss_after * 1024)) "$keys") bytes"
if [[ -n $used_before && -n $used_after ]]; then
  echo "used_memory before: $used_before, after: $used_after, growth per key:" \
    "$(per_key $((used_after - used_before)) "$keys") bytes"
fi
