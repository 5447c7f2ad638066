#!/usr/bin/env bash
# Memory of one long list: starts a minikv node and a redis-server side by side (fresh, on free
# ports in 6600-6699, no persistence), pushes the same NITEMS items into one list on each, and
# reports the resident memory of both processes. Needs redis-server, redis-cli, awk, timeout.
#
#   scripts/bench/memory_lists.sh [NITEMS=1000000] [KIND=str]
#
# - KIND str: items s000000, s000001, ... (7 bytes, never a number); KIND int: 0, 1, 2, ...
#   (Redis and minikv both store canonical integers as integers). They are sent as RPUSH
#   commands of 100 items each through `redis-cli --pipe`.
# - The node is $MINIKV (default ./target/release/minikv) run with `--threads 1` (Redis
#   serves commands on one thread too). Resident memory is VmRSS from /proc/PID/status, read
#   before the load and one second after it. Growth per item is (after - before) / NITEMS.
#
# Output (docs/performance.md quotes it; keep the format):
#   items: 1000000 (str), LLEN minikv/redis: 1000000/1000000, LINDEX 500000: 's500000'/'s500000'
#   minikv RSS before: 4100 kB, after: 12000 kB, growth per item: 8.0 bytes
#   redis  RSS before: 3900 kB, after: 11000 kB, growth per item: 7.2 bytes
#   ratio minikv/redis: total RSS 1.05, growth 1.11
# Both servers are stopped (by PID) on exit.
set -uo pipefail
export LC_ALL=C

items=${1:-1000000}
kind=${2:-str}
[[ $items =~ ^[1-9][0-9]*$ ]] || { echo "NITEMS is a positive integer" >&2; exit 2; }
[[ $kind == str || $kind == int ]] || { echo "KIND is str or int" >&2; exit 2; }
minikv=${MINIKV:-./target/release/minikv}
host=127.0.0.1
for tool in redis-server redis-cli awk timeout; do
  command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done
[[ -x $minikv ]] || { echo "no minikv binary at $minikv (cargo build --release, or set MINIKV)" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_in_use() { (exec 3<>"/dev/tcp/$host/$1") 2>/dev/null; }
free_port() {
  local p
  for p in $(seq "$1" 6699); do
    port_in_use "$p" || { echo "$p"; return 0; }
  done
  return 1
}
cli() { timeout 10 redis-cli -h "$host" -p "$1" "${@:2}" 2>/dev/null | tr -d '\r'; }
rss_kb() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$1/status" 2>/dev/null; }
wait_ping() {
  local _
  for _ in $(seq 1 100); do
    [[ $(cli "$1" PING) == PONG ]] && return 0
    sleep 0.05
  done
  return 1
}

mport=$(free_port 6600) || { echo "no free port" >&2; exit 1; }
mkdir -p "$work/minikv"
"$minikv" server 1 "$mport" --threads 1 --data-dir "$work/minikv" --save-interval 3600 \
  >"$work/minikv.log" 2>&1 &
pids+=($!)
mpid=$!
wait_ping "$mport" || { echo "minikv did not start (see $work/minikv.log)" >&2; exit 1; }
rport=$(free_port $((mport + 1))) || { echo "no free port" >&2; exit 1; }
redis-server --port "$rport" --bind "$host" --save '' --appendonly no --daemonize no \
  --dir "$work" --logfile "$work/redis.log" &
pids+=($!)
rpid=$!
wait_ping "$rport" || { echo "redis-server did not start" >&2; exit 1; }

# The load as RESP: RPUSH biglist item x100, generated on the fly.
load() {
  awk -v n="$items" -v kind="$kind" 'BEGIN {
    batch = 100
    for (i = 0; i < n; i += batch) {
      m = (n - i < batch) ? n - i : batch
      printf "*%d\r\n$5\r\nRPUSH\r\n$7\r\nbiglist\r\n", m + 2
      for (j = i; j < i + m; j++) {
        item = (kind == "int") ? sprintf("%d", j) : sprintf("s%06d", j)
        printf "$%d\r\n%s\r\n", length(item), item
      }
    }
  }' | timeout 600 redis-cli -h "$host" -p "$1" --pipe >/dev/null 2>&1
}

mbefore=$(rss_kb "$mpid")
rbefore=$(rss_kb "$rpid")
load "$mport" || echo "note: the minikv load exited with $?" >&2
load "$rport" || echo "note: the redis load exited with $?" >&2
sleep 1
mafter=$(rss_kb "$mpid")
rafter=$(rss_kb "$rpid")

middle=$((items / 2))
echo "items: $items ($kind), LLEN minikv/redis: $(cli "$mport" LLEN biglist)/$(cli "$rport" LLEN biglist)," \
  "LINDEX $middle: '$(cli "$mport" LINDEX biglist "$middle")'/'$(cli "$rport" LINDEX biglist "$middle")'"
per_item() { awk -v a="$1" -v b="$2" -v n="$items" 'BEGIN { printf "%.1f", (b - a) * 1024 / n }'; }
echo "minikv RSS before: $mbefore kB, after: $mafter kB, growth per item: $(per_item "$mbefore" "$mafter") bytes"
echo "redis  RSS before: $rbefore kB, after: $rafter kB, growth per item: $(per_item "$rbefore" "$rafter") bytes"
awk -v mb="$mbefore" -v ma="$mafter" -v rb="$rbefore" -v ra="$rafter" 'BEGIN {
  printf "ratio minikv/redis: total RSS %.2f, growth %.2f\n", ma / ra, (ma - mb) / (ra - rb)
}'
