#!/bin/bash
# Throughput and p99 of SET -c 50 -P 1 on a node holding 1M keys, with and without
# back-to-back snapshots, and the same for a fresh redis-server with BGSAVE called back to
# back. Run from the repository root after `cargo build --release`. Uses port 17111 on
# 127.0.0.1; every server it starts is stopped by PID on exit.
set -u
pid=""; loop=""
trap '[ -n "$loop" ] && kill $loop 2>/dev/null; [ -n "$pid" ] && kill $pid 2>/dev/null' EXIT
BIN=./target/release/minikv
PORT=17111
run_bench() { redis-benchmark -h 127.0.0.1 -p $PORT -t set -r 1000000 -c 50 -n 400000 --csv 2>/dev/null | tail -1; }
load() { python3 -c "
import sys
out=[]
for i in range(1,1000001):
    k=b'key:%09d'%i; v=b'vxxxxxxxxx'
    out.append(b'*3\r\n\$3\r\nSET\r\n\$%d\r\n%s\r\n\$%d\r\n%s\r\n'%(len(k),k,len(v),v))
sys.stdout.buffer.write(b''.join(out))
" | redis-cli -p $PORT --pipe > /dev/null; }
for mode in quiet saving; do
  rm -rf "${TMPDIR:-/tmp}"/minikv-snap && mkdir -p "${TMPDIR:-/tmp}"/minikv-snap
  interval=3600; [ $mode = saving ] && interval=0.01
  $BIN server 1 $PORT --threads 1 --data-dir "${TMPDIR:-/tmp}"/minikv-snap --save-interval $interval > "${TMPDIR:-/tmp}"/minikv-snap/log 2>&1 &
  pid=$!
  sleep 0.5; load
  echo "minikv $mode: $(run_bench)"
  redis-cli -p $PORT info persistence | grep -E "rdb_saves|rdb_last_bgsave_time" | tr -d '\r' | tr '\n' ' '; echo
  kill $pid; wait $pid 2>/dev/null; pid=""
done
# Redis reference: BGSAVE back to back.
rm -rf "${TMPDIR:-/tmp}"/minikv-rsnap && mkdir -p "${TMPDIR:-/tmp}"/minikv-rsnap
for mode in quiet saving; do
  redis-server --port $PORT --bind 127.0.0.1 --save '' --appendonly no --dir "${TMPDIR:-/tmp}"/minikv-rsnap > /dev/null 2>&1 &
  pid=$!
  sleep 0.5; load
  if [ $mode = saving ]; then
    ( while kill -0 $pid 2>/dev/null; do redis-cli -p $PORT bgsave > /dev/null 2>&1; while redis-cli -p $PORT info persistence 2>/dev/null | grep -q "rdb_bgsave_in_progress:1"; do sleep 0.01; done; done ) &
    loop=$!
  fi
  echo "redis $mode: $(run_bench)"
  redis-cli -p $PORT info persistence | grep -E "rdb_saves|rdb_last_bgsave_time_sec" | tr -d '\r' | tr '\n' ' '; echo
  if [ -n "$loop" ]; then kill $loop 2>/dev/null; loop=""; fi
  kill $pid; wait $pid 2>/dev/null; pid=""
done
