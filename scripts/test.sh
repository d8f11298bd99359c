#!/usr/bin/env bash
# The test command (README, CI): format and lint checks, then every unit
# and end-to-end test. End-to-end tests run the real `ringway` binary on
# both drivers (io_uring and epoll), so build it first.
set -euo pipefail
cd "$(dirname "$0")/.."

# What the end-to-end tests drive ringway with, installed when missing (as
# root, on Debian/Ubuntu): curl, the openssl command, Python's websockets,
# prometheus_client, hypercorn and h2.
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  need_apt=()
  command -v curl >/dev/null || need_apt+=(curl)
  # The TLS tests make their CA and certificates, and check what a server
  # name gets, with the openssl command.
  command -v openssl >/dev/null || need_apt+=(openssl)
  command -v python3 >/dev/null || need_apt+=(python3 python3-pip)
  if [ ${#need_apt[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q "${need_apt[@]}"
  fi
  # An independent WebSocket client library for the wss tests.
  if ! python3 -c 'import websockets' 2>/dev/null; then
    python3 -m pip --version >/dev/null 2>&1 \
      || { DEBIAN_FRONTEND=noninteractive apt-get update -q && apt-get install -y -q python3-pip; }
    python3 -m pip install -q websockets 2>/dev/null \
      || python3 -m pip install -q --break-system-packages websockets
  fi
  # A real Prometheus text parser (prometheus_client) for the metrics
  # tests (tests/py/prom_parse.py).
  if ! python3 -c 'import prometheus_client' 2>/dev/null; then
    python3 -m pip --version >/dev/null 2>&1 \
      || { DEBIAN_FRONTEND=noninteractive apt-get update -q && apt-get install -y -q python3-pip; }
    python3 -m pip install -q prometheus-client 2>/dev/null \
      || python3 -m pip install -q --break-system-packages prometheus-client
  fi
  # A real h2c server (Hypercorn) and an independent HTTP/2 client
  # library (h2) for the h2c smuggling tests (tests/upgrade_protocols.rs).
  if ! python3 -c 'import hypercorn, h2' 2>/dev/null; then
    python3 -m pip --version >/dev/null 2>&1 \
      || { DEBIAN_FRONTEND=noninteractive apt-get update -q && apt-get install -y -q python3-pip; }
    python3 -m pip install -q hypercorn h2 2>/dev/null \
      || python3 -m pip install -q --break-system-packages hypercorn h2
  fi
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --workspace --bins
# --test-threads: each end-to-end test starts a proxy and a backend; keep
# the 2-core machine from being oversubscribed.
cargo test --workspace -- --test-threads="${RINGWAY_TEST_THREADS:-4}"
