#!/usr/bin/env bash
# Memory per small sorted set: writes NKEYS sorted sets of MEMBERS members each into the RESP
# server on 127.0.0.1:PORT (a minikv node or a redis-server) and reports how much the
# resident memory of its process, PID, grew. Needs redis-cli and awk.
#
#   scripts/bench/memory_zsets.sh PORT PID [NKEYS] [MEMBERS]
#
# - NKEYS (default 100000) keys zset:000000001, zset:000000002, ... each set by one
#   `ZADD key 1 member:1 2 member:2 ...` with MEMBERS (default 10) members: small enough for
#   Redis's listpack encoding (and minikv's), as most real sorted sets are. They are sent
#   through `redis-cli --pipe` into the current database and left there: use an empty
#   scratch server.
# - Resident memory is VmRSS from /proc/PID/status, read before the load and one second after
#   it. Growth per key is (after - before) / NKEYS.
#
# Output:
#   load: <the last lines of redis-cli --pipe> (rc=0, 1.2 s)
#   check: ZCARD zset:000100000 -> 10, OBJECT ENCODING -> listpack
#   keys requested: 100000 (10 members), DBSIZE before/after: 0/100000
#   RSS before: 5368 kB, after: 30280 kB
#   RSS growth per key: 251.1 bytes
#
# Environment: PIPE_TIMEOUT (10: seconds redis-cli --pipe waits for the last reply),
# LOAD_LIMIT_S (600: limit for the whole load).
set -uo pipefail
export LC_ALL=C

if [ $# -lt 2 ]; then
  echo "usage: $0 PORT PID [NKEYS=100000] [MEMBERS=10]" >&2
  exit 2
fi
PORT=$1
PID=$2
N=${3:-100000}
M=${4:-10}
HOST=127.0.0.1
PIPE_TIMEOUT=${PIPE_TIMEOUT:-10}
LOAD_LIMIT_S=${LOAD_LIMIT_S:-600}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$PID/status"; }
cli() { timeout 10 redis-cli -h "$HOST" -p "$PORT" "$@" 2>/dev/null | tr -d '\r'; }
dbsize() {
  local d
  d=$(cli DBSIZE)
  case "$d" in '' | *[!0-9]*) echo "n/a" ;; *) echo "$d" ;; esac
}

[ -r "/proc/$PID/status" ] || { echo "no such process: $PID" >&2; exit 1; }
[ "$(cli PING)" = "PONG" ] || { echo "server on port $PORT does not answer PING" >&2; exit 1; }

rss0=$(rss_kb)
db0=$(dbsize)
t0=$(date +%s.%N)
load_out=$(awk -v n="$N" -v m="$M" 'BEGIN {
    for (i = 1; i <= n; i++) {
      k = sprintf("zset:%09d", i);
      printf "*%d\r\n$4\r\nZADD\r\n$%d\r\n%s\r\n", 2 + 2 * m, length(k), k;
      for (j = 1; j <= m; j++) {
        s = sprintf("%d", j); e = sprintf("member:%d", j);
        printf "$%d\r\n%s\r\n$%d\r\n%s\r\n", length(s), s, length(e), e;
      }
    }
  }' | timeout "$LOAD_LIMIT_S" redis-cli -h "$HOST" -p "$PORT" --pipe --pipe-timeout "$PIPE_TIMEOUT" 2>&1)
load_rc=$?
t1=$(date +%s.%N)
sleep 1
rss1=$(rss_kb)
db1=$(dbsize)

last=$(printf 'zset:%09d' "$N")
echo "load: $(echo "$load_out" | tr -d '\r' | tail -2 | tr '\n' ' ') (rc=$load_rc, $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s)"
echo "check: ZCARD $last -> $(cli ZCARD "$last"), OBJECT ENCODING -> $(cli OBJECT ENCODING "$last")"
echo "keys requested: $N ($M members), DBSIZE before/after: $db0/$db1"
echo "RSS before: $rss0 kB, after: $rss1 kB"
awk -v a="$rss0" -v b="$rss1" -v n="$N" 'BEGIN { printf "RSS growth per key: %.1f bytes\n", (b - a) * 1024 / n }'
