#!/usr/bin/env bash
# The test command (README, CI): format and lint checks, then every unit
# and end-to-end test. End-to-end tests run the real `ringway` binary on
# both drivers (io_uring and epoll), so build it first.
set -euo pipefail
cd "$(dirname "$0")/.."

# What the end-to-end tests drive ringway with, installed when missing and
# only when run as root on Debian/Ubuntu (otherwise install them yourself):
#   apt: curl, openssl (the TLS tests make their certificates with it),
#        python3 and python3-pip, logrotate (dist/ringway.logrotate is run
#        by the access-log tests), chromium (a real browser for the
#        WebSocket-over-HTTP/2 test, tests/tests/browser.rs), nginx
#        (tests/http2_differential.rs sends its HTTP/2 cases to nginx
#        beside ringway), haproxy (tests/health_vs_haproxy.rs compares
#        ringway's active health checks with HAProxy's beside it),
#        dnsmasq (a real DNS server for the `resolve = true` upstream
#        tests, tests/tests/dns_discovery.rs)
#   pip: websockets (an independent WebSocket client for the wss tests),
#        hypercorn and h2 (a real h2c server and HTTP/2 client for the h2c
#        smuggling tests, tests/tests/upgrade_protocols.rs),
#        prometheus-client (a real Prometheus text parser for the metrics
#        tests, tests/py/prom_parse.py)
# Each install is announced before it runs.
pip_install() {
  python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
  echo "test.sh: installing with pip (as root): $*" >&2
  python3 -m pip install -q "$@" 2>/dev/null \
    || python3 -m pip install -q --break-system-packages "$@"
}
apt_install() {
  echo "test.sh: installing with apt-get (as root): $*" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q "$@"
}
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  need_apt=()
  command -v curl >/dev/null || need_apt+=(curl)
  command -v openssl >/dev/null || need_apt+=(openssl)
  command -v python3 >/dev/null || need_apt+=(python3 python3-pip)
  command -v logrotate >/dev/null || [ -x /usr/sbin/logrotate ] || need_apt+=(logrotate)
  command -v chromium >/dev/null || need_apt+=(chromium)
  command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need_apt+=(nginx)
  command -v dnsmasq >/dev/null || [ -x /usr/sbin/dnsmasq ] || need_apt+=(dnsmasq)
  command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || need_apt+=(haproxy)
  [ ${#need_apt[@]} -eq 0 ] || apt_install "${need_apt[@]}"
  python3 -c 'import websockets' 2>/dev/null || pip_install websockets
  python3 -c 'import hypercorn, h2' 2>/dev/null || pip_install hypercorn h2
  python3 -c 'import prometheus_client' 2>/dev/null || pip_install prometheus-client
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --workspace --bins
# --test-threads: each end-to-end test starts a proxy (one worker) and a
# backend; two tests per core keep the machine busy without starving
# them. RINGWAY_TEST_THREADS overrides.
threads=${RINGWAY_TEST_THREADS:-$((2 * $(nproc 2>/dev/null || echo 2)))}
cargo test --workspace -- --test-threads="$threads"
