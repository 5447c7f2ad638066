#!/usr/bin/env bash
# Throughput and CPU per request of a RESP server already listening on 127.0.0.1:PORT (the
# "target", usually a minikv node) next to a throw-away redis-server ("redis") that this script
# starts, measured the same way in the same run. Run it from anywhere; it needs redis-server,
# redis-benchmark and redis-cli (./scripts/test.sh installs them).
#
#   scripts/bench/compare.sh PORT [redis-benchmark args...]
#
# How:
# - redis-server starts with `--save '' --appendonly no` (no disk work) on a free port picked at
#   random in 20000-29999 (below Linux's ephemeral range, so it never takes a port a test just
#   asked the kernel for; never 6379), with its files in a temporary directory. It is stopped by
#   its PID when the script exits.
# - Each round runs, for -P 1 then -P 16 and for each test of TESTS, one
#   `redis-benchmark -c 50 -P <P> -n <N> -t <test> --csv` against each server, one after the
#   other; the side that goes first alternates from round to round.
# - Around each run it reads the server's CPU time: utime + stime, fields 14 and 15 of
#   /proc/PID/stat, which count every thread of the process. CPU per request is the difference
#   divided by N. The target's PID is the process listening on PORT (from `ss -p`), or
#   TARGET_PID when set; "cpu n/a" when neither can be read.
# - At the end, medians over the rounds, one line per test and depth, then the worst ratios;
#   the last line always starts with `compare:`:
#     SET P=1: target X req/s, redis Y req/s, ratio X/Y; cpu target A us/req, redis B us/req, ratio A/B  [p50 ms t/r, p99 ms t/r]
#     WORST throughput ratio R (SET P=1)     lowest target/redis req/s (higher is better)
#     WORST cpu ratio C (GET P=16)           highest target/redis CPU per request (lower is better)
#     compare: worst throughput ratio R (SET P=1), worst cpu ratio C (GET P=16)
#   docs/performance.md quotes lines in this format; keep it when changing the script.
#
# Environment: TESTS (set,get), ROUNDS (3), N_P1 (200000 requests per run at -P 1), N_P16
# (2000000 at -P 16), REDIS_SERVER (redis-server), REDIS_BENCHMARK (redis-benchmark),
# RUN_TIMEOUT_S (120, limit of one redis-benchmark run), TARGET_PID (found from PORT).
# Extra arguments are passed to every redis-benchmark run after the defaults (`-d 100`,
# `-r 100000`); `-n N` sets both request counts and `-t LIST` the tests. Do not pass -h, -p,
# -P, -q or --csv.
#
# Reading the figures: the benchmark client, the target and redis share the machine's cores. At
# -P 1 the single-threaded client is often the limit, so equal throughput may mean "both wait
# for the client"; CPU per request is the better yardstick there. CPU time comes in clock ticks
# (usually 10 ms), about 1% of a one-second run, and includes whatever else the server does
# meanwhile (background saves, expiry sweeps).
set -uo pipefail
export LC_ALL=C

usage() {
  echo "usage: $0 PORT [redis-benchmark args...]" >&2
  exit 2
}
positive() { [[ $1 =~ ^[1-9][0-9]*$ ]]; }

positive "${1:-}" || usage
target_port=$1
shift
tests=${TESTS:-set,get}
rounds=${ROUNDS:-3}
n_p1=${N_P1:-200000}
n_p16=${N_P16:-2000000}
run_timeout=${RUN_TIMEOUT_S:-120}
redis_server=${REDIS_SERVER:-redis-server}
redis_benchmark=${REDIS_BENCHMARK:-redis-benchmark}
target_pid=${TARGET_PID:-}
host=127.0.0.1

extra=()
while (($# > 0)); do
  case $1 in
    -n)
      positive "${2:-}" || usage
      n_p1=$2 n_p16=$2
      shift 2
      ;;
    -t)
      [[ -n ${2:-} ]] || usage
      tests=$2
      shift 2
      ;;
    *)
      extra+=("$1")
      shift
      ;;
  esac
done
for value in "$rounds" "$n_p1" "$n_p16" "$run_timeout"; do
  positive "$value" || { echo "ROUNDS, N_P1, N_P16 and RUN_TIMEOUT_S must be positive integers" >&2; exit 2; }
done
for tool in "$redis_server" "$redis_benchmark" redis-cli awk timeout; do
  command -v "$tool" >/dev/null || { echo "missing: $tool (./scripts/test.sh installs it)" >&2; exit 1; }
done
hz=$(getconf CLK_TCK 2>/dev/null || echo 100)

ping() { timeout 2 redis-cli -h "$host" -p "$1" PING 2>/dev/null | tr -d '\r'; }

# Clock ticks of CPU time (user + system, all threads) used so far by process $1; fails when
# there is no such process or it cannot be read.
cpu_ticks() {
  local stat fields
  [[ -n $1 ]] || return 1
  { read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
  # Field 2 (the command name) may hold spaces and parentheses: count from its closing ") ".
  read -r -a fields <<<"${stat##*) }"
  # fields[0] is field 3, so utime (14) and stime (15) are fields[11] and fields[12].
  echo $((fields[11] + fields[12]))
}

# The PID of the process listening on port $1, if `ss` can tell.
listener_pid() {
  command -v ss >/dev/null || return 0
  ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | head -n 1 | cut -d= -f2
}

if [[ $(ping "$target_port") != PONG ]]; then
  echo "nothing on $host:$target_port answers PING" >&2
  exit 1
fi
[[ -n $target_pid ]] || target_pid=$(listener_pid "$target_port")

work=$(mktemp -d)
redis_pid=""
stop_redis() {
  if [[ -n $redis_pid ]]; then
    kill "$redis_pid" 2>/dev/null
    wait "$redis_pid" 2>/dev/null
    redis_pid=""
  fi
}
trap 'stop_redis; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

# Starts redis-server on a free port; sets redis_port and redis_pid.
start_redis() {
  local attempt port
  for attempt in $(seq 1 20); do
    port=$((20000 + RANDOM % 10000))
    # Something answers a connection there: taken.
    if [[ $port == "$target_port" ]] || (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
      continue
    fi
    "$redis_server" --port "$port" --bind "$host" --save '' --appendonly no \
      --daemonize no --dir "$work" --logfile "$work/redis-$attempt.log" &
    redis_pid=$!
    for _ in $(seq 1 100); do
      if [[ $(ping "$port") == PONG ]]; then
        redis_port=$port
        return 0
      fi
      # Exited: most likely someone bound the port in between. Try another.
      kill -0 "$redis_pid" 2>/dev/null || break
      sleep 0.05
    done
    stop_redis
  done
  echo "could not start $redis_server on a free port (logs were in $work)" >&2
  return 1
}
start_redis || exit 1

cpu_ticks "$target_pid" >/dev/null || target_pid=""
redis_version=$("$redis_server" --version | grep -o 'v=[^ ]*' | cut -d= -f2)
echo "target $host:$target_port (pid ${target_pid:-n/a}) vs redis-server ${redis_version:-?}" \
  "on $host:$redis_port (pid $redis_pid); rounds=$rounds; tests=$tests;" \
  "-n $n_p1 at P=1, $n_p16 at P=16; extra args: ${extra[*]:-(none)}"
[[ -n $target_pid ]] || echo "note: the target's PID is unknown (set TARGET_PID): cpu n/a" >&2

results=$work/results
: >"$results"

# One redis-benchmark run: measure SIDE PORT PID DEPTH TEST. Appends
# "side test depth req/s p50 p99 cpu" to $results (cpu in us per request, or na).
measure() {
  local side=$1 port=$2 pid=$3 depth=$4 test=$5 n before after out status rows cpu=na
  n=$n_p1
  ((depth == 1)) || n=$n_p16
  before=$(cpu_ticks "$pid")
  out=$(timeout "$run_timeout" "$redis_benchmark" -h "$host" -p "$port" -c 50 -P "$depth" \
    -n "$n" -t "$test" --csv "${extra[@]}" 2>>"$work/benchmark.err")
  status=$?
  after=$(cpu_ticks "$pid")
  # The CSV: "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms",
  # "p95_latency_ms","p99_latency_ms","max_latency_ms", after a header line.
  rows=$(tr -d '"\r' <<<"$out" | awk -F, '$1 != "test" && NF >= 7 && $2 > 0 {
    gsub(/ /, "_", $1); print $1, $2, $5, $7 }')
  if ((status != 0)); then
    echo "warning: $side P=$depth $test: redis-benchmark exited with $status" >&2
  fi
  [[ -n $rows ]] || return 0
  # CPU time only means something for a complete run of exactly one test.
  if ((status == 0)) && [[ -n $before && -n $after && $rows != *$'\n'* ]]; then
    cpu=$(awk -v t=$((after - before)) -v hz="$hz" -v n="$n" 'BEGIN { printf "%.6f", t / hz / n * 1e6 }')
  fi
  awk -v side="$side" -v depth="$depth" -v cpu="$cpu" '{ print side, $1, depth, $2, $3, $4, cpu }' \
    <<<"$rows" >>"$results"
}

IFS=, read -r -a test_list <<<"$tests"
for round in $(seq 1 "$rounds"); do
  for depth in 1 16; do
    for test in "${test_list[@]}"; do
      [[ -n $test ]] || continue
      if ((round % 2 == 1)); then
        measure target "$target_port" "$target_pid" "$depth" "$test"
        measure redis "$redis_port" "$redis_pid" "$depth" "$test"
      else
        measure redis "$redis_port" "$redis_pid" "$depth" "$test"
        measure target "$target_port" "$target_pid" "$depth" "$test"
      fi
    done
  done
done
stop_redis

# What redis-benchmark said on stderr, once per distinct line, before the summary so that the
# `compare:` line stays last.
if [[ -s $work/benchmark.err ]]; then
  grep -v -e '^$' -e 'Could not fetch server CONFIG' "$work/benchmark.err" | sort | uniq -c |
    head -n 5 | sed 's/^ */benchmark stderr: /' >&2
fi

awk -v rounds="$rounds" '
  # Median of the numbers in the space-separated list s.
  function median(s,   v, n, i, j, x) {
    n = split(s, v, " ")
    if (n == 0) return 0
    for (i = 2; i <= n; i++) {
      x = v[i] + 0
      for (j = i - 1; j >= 1 && v[j] + 0 > x; j--) v[j + 1] = v[j]
      v[j + 1] = x
    }
    return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
  }
  {
    key = $2 " P=" $3
    if (!(key in known)) { known[key] = 1; keys[++count] = key }
    runs[$1, key]++
    rps[$1, key] = rps[$1, key] " " $4
    p50[$1, key] = p50[$1, key] " " $5
    p99[$1, key] = p99[$1, key] " " $6
    if ($7 != "na") { cpu_runs[$1, key]++; cpu[$1, key] = cpu[$1, key] " " $7 }
  }
  END {
    if (count == 0) {
      print "no results: see the redis-benchmark messages above"
      print "compare: worst throughput ratio n/a, worst cpu ratio n/a"
      exit 1
    }
    worst = -1; worst_cpu = -1
    for (i = 1; i <= count; i++) {
      key = keys[i]
      t = median(rps["target", key]); r = median(rps["redis", key])
      ratio = r > 0 ? t / r : 0
      if (worst < 0 || ratio < worst) { worst = ratio; worst_key = key }
      cpu_text = "cpu n/a"
      if (cpu_runs["target", key] > 0 && cpu_runs["redis", key] > 0) {
        ct = median(cpu["target", key]); cr = median(cpu["redis", key])
        if (cr > 0) {
          cpu_ratio = ct / cr
          cpu_text = sprintf("cpu target %.3f us/req, redis %.3f us/req, ratio %.3f", ct, cr, cpu_ratio)
          if (cpu_ratio > worst_cpu) { worst_cpu = cpu_ratio; worst_cpu_key = key }
        }
      }
      note = ""
      if (runs["target", key] < rounds || runs["redis", key] < rounds)
        note = sprintf("  (runs: target %d, redis %d)", runs["target", key], runs["redis", key])
      printf "%s: target %.0f req/s, redis %.0f req/s, ratio %.3f; %s  [p50 ms %.3f/%.3f, p99 ms %.3f/%.3f]%s\n",
        key, t, r, ratio, cpu_text, median(p50["target", key]), median(p50["redis", key]),
        median(p99["target", key]), median(p99["redis", key]), note
    }
    throughput = sprintf("%.3f (%s)", worst, worst_key)
    cpu_worst = worst_cpu < 0 ? "n/a" : sprintf("%.3f (%s)", worst_cpu, worst_cpu_key)
    print "WORST throughput ratio " throughput
    print "WORST cpu ratio " cpu_worst
    print "compare: worst throughput ratio " throughput ", worst cpu ratio " cpu_worst
  }' "$results"
