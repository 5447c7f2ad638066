#!/usr/bin/env bash
# Runs the nemesis tests (tests/nemesis.rs: three real nodes of a replicated cluster under
# SIGKILL/restart, SIGSTOP/SIGCONT and partitions, with a linearizability check of the whole
# history) until at least ROUNDS fault rounds have run, and adds up what they report.
#
#   scripts/nemesis.sh ROUNDS [ROUNDS_PER_RUN=10]
#
# Each run is `NEMESIS_ROUNDS=ROUNDS_PER_RUN cargo test --release --test nemesis -- --nocapture
# --test-threads 1 FILTER`: both tests by default (one without and one with network namespaces,
# the second needs root and `ip`), one after the other, each with its own fresh cluster, seed
# and ROUNDS_PER_RUN rounds (a fault, FAULT later its repair, FAULT later the next fault). A
# run's output is kept in a temporary directory, whose path is printed on failure.
#
# The last line always starts with `nemesis:`:
#   nemesis: 100 rounds in 10 runs, 161532 operations, 80112 acknowledged, 35 indeterminate, 0 violations, 0 failed runs
# "violations" counts histories the checker could not linearize: an acknowledged write lost or
# a read of a value the cluster later forgot. Exit status 1 unless it and "failed runs" are 0.
#
# Environment: NEMESIS_FILTER (test name filter, e.g. `kills_and_pauses` for the run without
# namespaces), CARGO (cargo).
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."

usage() {
  echo "usage: $0 ROUNDS [ROUNDS_PER_RUN=10]" >&2
  exit 2
}
positive() { [[ $1 =~ ^[1-9][0-9]*$ ]]; }

target=${1:-}
per_run=${2:-10}
if ! positive "$target" || ! positive "$per_run"; then usage; fi
cargo=${CARGO:-cargo}
filter=${NEMESIS_FILTER:-}

work=$(mktemp -d)
keep=""
trap '[[ -n $keep ]] || rm -rf "$work"' EXIT

# Build once, outside the timed loop.
"$cargo" test --release --test nemesis --no-run >"$work/build.log" 2>&1 || {
  keep=1
  tail -n 30 "$work/build.log" >&2
  exit 1
}

runs=0 done_rounds=0 failed=0
: >"$work/results"
while ((done_rounds < target)); do
  runs=$((runs + 1))
  log=$work/run-$runs.log
  if ! NEMESIS_ROUNDS=$per_run "$cargo" test --release --test nemesis -- --nocapture \
    --test-threads 1 ${filter:+"$filter"} >"$log" 2>&1; then
    failed=$((failed + 1))
    keep=1
    echo "run $runs failed: see $log" >&2
    grep -E '^nemesis seed|panicked|^seed ' "$log" | head -n 5 >&2 || true
  fi
  # One line per test that got as far as its check.
  lines=$(grep '^nemesis result: ' "$log" || true)
  if [[ -z $lines ]]; then
    echo "run $runs: no result line (see $log)" >&2
    keep=1
    break
  fi
  while read -r line; do echo "run $runs: ${line#nemesis result: }"; done <<<"$lines"
  done_rounds=$((done_rounds + $(awk -F'rounds=' '{ split($2, a, " "); s += a[1] } END { print s + 0 }' <<<"$lines")))
  cat <<<"$lines" >>"$work/results"
  ((failed < 3)) || { echo "three failed runs: stopping" >&2; break; }
done

awk -v runs="$runs" -v failed="$failed" '
  {
    for (i = 1; i <= NF; i++) {
      split($i, kv, "=")
      total[kv[1]] += kv[2]
    }
  }
  END {
    printf "nemesis: %d rounds in %d runs, %d operations, %d acknowledged, %d indeterminate, %d violations, %d failed runs\n",
      total["rounds"], runs, total["operations"], total["acknowledged"], total["indeterminate"],
      total["violations"], failed
    exit (total["violations"] > 0 || failed > 0)
  }' "$work/results"
