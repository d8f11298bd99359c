#!/usr/bin/env bash
# The benchmark: ringway against nginx, side by side in one run.
#
#   scripts/bench.sh            full run (~11 min on 2 cores): writes bench/RESULTS.md
#                               and bench/chart.svg
#   scripts/bench.sh --quick    smoke run (< 2 min): writes target/bench-quick/
#   scripts/bench.sh --h2       the HTTP/2 scenarios only (~16 min), their sections
#                               replaced in bench/RESULTS.md (the rest left as it is)
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
# HTTP/2 scenarios: h2-return, h2-proxy, h2-static (h2load over TLS, ALPN
# h2: a `return`, a proxied /api/, a 4 KiB static file), the same as h2c-*
# in cleartext, against nginx (`listen ... http2`) and ringway; h2ws-pingpong
# and h2ws-hold (RFC 8441 WebSockets over TLS from `ringway-load --h2`)
# against HAProxy and ringway, nginx having no RFC 8441; h1wss-hold, the
# HTTP/1.1 twin of h2ws-hold, against all three. --quick runs h2-proxy,
# h2ws-pingpong and a small h2ws-hold.
# Proxy CPU per unit of work is shown whole and split into user and system.
#
# Installs nginx, wrk, strace, openssl, h2load (nghttp2-client) and haproxy with apt-get when they are missing
# and this runs as root; without them those parts are skipped, not failed.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v nginx > /dev/null || missing+=(nginx)
command -v wrk > /dev/null || missing+=(wrk)
command -v strace > /dev/null || missing+=(strace)
command -v openssl > /dev/null || missing+=(openssl)
command -v h2load > /dev/null || missing+=(nghttp2-client)
command -v haproxy > /dev/null || missing+=(haproxy)
if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q "${missing[@]}" > /dev/null 2>&1 \
    || { apt-get update -q > /dev/null 2>&1 && apt-get install -y -q "${missing[@]}" > /dev/null 2>&1; } \
    || echo "could not install ${missing[*]}; running without" >&2
fi
# nginx and haproxy live in /usr/sbin, which a non-login PATH may lack.
case ":$PATH:" in *:/usr/sbin:*) ;; *) PATH=$PATH:/usr/sbin ;; esac

ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
cargo build --release -q -p ringway -p ringway-bench
exec target/release/ringway-harness "$@"
