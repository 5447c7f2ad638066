#!/usr/bin/env bash
# The project's one test command (the README's second command; .ci/run calls it).
# Installs what the tests need and the machine lacks, then runs the checks:
# rustfmt, clippy and rustdoc with warnings denied, and every test.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v redis-cli >/dev/null 2>&1 || need_apt+=(redis-tools)
command -v redis-benchmark >/dev/null 2>&1 || need_apt+=(redis-tools)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
# The client-matrix tests (tests/clients.rs, tests/redis_cli.rs) drive real programs: tmux for
# the interactive redis-cli, pip for redis-py, node and npm for ioredis and node-redis.
command -v tmux >/dev/null 2>&1 || need_apt+=(tmux)
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
# tests/metrics.rs starts a real Prometheus (its own, on loopback) to scrape a cluster.
command -v prometheus >/dev/null 2>&1 || need_apt+=(prometheus)
python3 -m pip --version >/dev/null 2>&1 || need_apt+=(python3-pip)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
# The dashboard's browser tests (tests/dashboard.rs): headless Chromium and its WebDriver.
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
# The checks at the end: the benchmark scripts with shellcheck, the systemd unit with systemd-analyze.
command -v shellcheck >/dev/null 2>&1 || need_apt+=(shellcheck)
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing: ${need_apt[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  # Keep the redis-server and prometheus packages from starting services (on 6379, 9090):
  # tests start their own throw-away servers on ephemeral ports.
  policy_added=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    policy_added=1
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
  if [ -n "$policy_added" ]; then $SUDO rm -f /usr/sbin/policy-rc.d; fi
fi

# pip install, system-wide: Debian's own python3 refuses that (PEP 668) unless told otherwise.
pip_install() {
  echo "installing: pip $*"
  local pip_log
  pip_log=$(mktemp)
  if ! python3 -m pip install --quiet "$@" 2>"$pip_log"; then
    if grep -q externally-managed "$pip_log"; then
      python3 -m pip install --quiet --break-system-packages "$@"
    else
      cat "$pip_log" >&2
      exit 1
    fi
  fi
  rm -f "$pip_log"
}
# redis-py 8.x (its default connection opens with HELLO 3).
if ! python3 -c 'import sys, redis; sys.exit(not redis.__version__.startswith("8."))' 2>/dev/null; then
  pip_install 'redis==8.*'
fi
# rq 1.11.1, the job queue tests/clients.rs runs end to end: the last rq that keeps job results
# in the job's hash (1.12 and later use streams, which minikv lacks). It accepts redis-py 8.
if ! python3 -c 'import sys, rq; sys.exit(rq.__version__ != "1.11.1")' 2>/dev/null; then
  pip_install 'rq==1.11.1' 'redis==8.*'
fi
# selenium 4, the WebDriver client tests/dashboard/check.py drives Chromium with (it is given
# Debian's chromedriver, so it downloads nothing).
if ! python3 -c 'import sys, selenium; sys.exit(not selenium.__version__.startswith("4."))' 2>/dev/null; then
  pip_install 'selenium==4.*'
fi
# The strict OpenMetrics parser tests/metrics.rs checks /metrics with.
if ! python3 -c 'import prometheus_client.openmetrics.parser' 2>/dev/null; then
  pip_install 'prometheus-client==0.*'
fi
# ioredis 6 and node-redis 6, as listed in tests/clients/package.json (and its lock file).
if ! npm ls --prefix tests/clients --depth=0 >/dev/null 2>&1; then
  echo "installing: npm packages of tests/clients"
  npm install --no-audit --no-fund --prefix tests/clients
fi

rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy

cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps
cargo test --all-targets
cargo test --doc

# The benchmark scripts docs/performance.md and docs/reliability.md run (tests/bench_scripts.rs
# runs those under scripts/bench/ too).
shellcheck scripts/bench/*.sh scripts/*.sh

# contrib/minikv.service, as docs/operations.md installs it. `systemd-analyze verify` fails
# when ExecStart's program does not exist, so it checks a copy whose ExecStart names the binary
# just built; and it only warns about unknown keys or bad values, so any message fails here.
unit_dir=$(mktemp -d)
trap 'rm -rf "$unit_dir"' EXIT
built="$(cd "${CARGO_TARGET_DIR:-target}/debug" && pwd)/minikv"
sed "s|^ExecStart=/usr/local/bin/minikv |ExecStart=$built |" contrib/minikv.service \
  >"$unit_dir/minikv.service"
grep -q "^ExecStart=$built " "$unit_dir/minikv.service"
if ! verify_out=$(systemd-analyze verify "$unit_dir/minikv.service" 2>&1) || [ -n "$verify_out" ]; then
  echo "systemd-analyze verify contrib/minikv.service:" >&2
  echo "$verify_out" >&2
  exit 1
fi
