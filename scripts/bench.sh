#!/usr/bin/env bash
# The benchmark: ringway against nginx, side by side in one run.
#
#   scripts/bench.sh            full run (~11 min on 2 cores): writes bench/RESULTS.md
#                               and bench/chart.svg
#   scripts/bench.sh --quick    smoke run (< 2 min): writes target/bench-quick/
#   scripts/bench.sh --syscalls also count the proxies' system calls per relayed
#                               message (strace -c, a separate untimed pass after the
#                               timed rounds of pingpong and lowrate)
#   scripts/bench.sh --scenarios pingpong,hold --targets nginx,ringway-epoll \
#                    --rounds 3 --workers 2 ...
#                               (every option goes to ringway-harness; --help lists them)
#
# Scenarios (bench/src/bin/harness): pingpong, lowrate, stream, churn, hold,
# fanout (WebSocket, driven by ringway-load against ringway-echo) and http
# (wrk against /api/). Each runs against the backend directly, nginx (the
# seeds' proxy directives, same worker count), ringway io_uring and ringway
# epoll, alternating, with the proxy pinned to its own CPU(s); pingpong,
# lowrate and stream also against "nginx tuned" (the same nginx with
# proxy_buffer_size 64k; proxy_buffers 8 64k; proxy_busy_buffers_size 128k).
# TLS scenarios: tls-handshake and tls-resume (ringway-load tlshs: connect,
# full or resumed TLS handshake, GET /health answered by the proxy), and
# wss-pingpong, wss-stream, wss-hold (8,000 idle tunnels) — the WebSocket
# ones with TLS from the client to the proxy; nginx and ringway only, one
# ECDSA P-256 certificate made with openssl per run. --quick runs the
# handshakes and a small wss-hold of them.
# Proxy CPU per unit of work is shown whole and split into user and system.
#
# Installs nginx, wrk, strace and openssl with apt-get when they are missing
# and this runs as root; without them those parts are skipped, not failed.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v nginx > /dev/null || missing+=(nginx)
command -v wrk > /dev/null || missing+=(wrk)
command -v strace > /dev/null || missing+=(strace)
command -v openssl > /dev/null || missing+=(openssl)
if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q "${missing[@]}" > /dev/null 2>&1 \
    || { apt-get update -q > /dev/null 2>&1 && apt-get install -y -q "${missing[@]}" > /dev/null 2>&1; } \
    || echo "could not install ${missing[*]}; running without" >&2
fi
# nginx lives in /usr/sbin, which a non-login PATH may lack.
case ":$PATH:" in *:/usr/sbin:*) ;; *) PATH=$PATH:/usr/sbin ;; esac

ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
cargo build --release -q -p ringway -p ringway-bench
exec target/release/ringway-harness "$@"
