#!/usr/bin/env bash
# The test command (README, CI): format and lint checks, then every unit
# and end-to-end test. End-to-end tests run the real `ringway` binary on
# both drivers (io_uring and epoll), so build it first.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --workspace --bins
# --test-threads: each end-to-end test starts a proxy and a backend; keep
# the 2-core machine from being oversubscribed.
cargo test --workspace -- --test-threads="${RINGWAY_TEST_THREADS:-4}"
