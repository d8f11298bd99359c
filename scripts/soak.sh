#!/usr/bin/env bash
# Soak: mixed traffic through ringway for a bounded time on each driver,
# then the checks (tests/src/bin/soak.rs says what runs and what is
# checked). Exits non-zero on any failure.
#
#   scripts/soak.sh                        60 s per driver (after a 10 s warm-up)
#   scripts/soak.sh --duration 600         10 minutes per driver
#   scripts/soak.sh --driver epoll         one driver
#   scripts/soak.sh --tunnels 200 --restart-every 20
#
# Other flags go to ringway-soak as they are.
set -euo pipefail
cd "$(dirname "$0")/.."

drivers=(io_uring epoll)
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --driver) drivers=("$2"); shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) args+=("$1"); shift ;;
  esac
done

# The soak holds a few hundred sockets on each side.
ulimit -n 20000 2>/dev/null || true
cargo build --release -q --bin ringway -p ringway
cargo build --release -q --bin ringway-soak -p ringway-tests
export RINGWAY_BIN="$PWD/target/release/ringway"
mkdir -p target/soak
status=0
for d in "${drivers[@]}"; do
  log="target/soak/$d.log"
  if target/release/ringway-soak --driver "$d" "${args[@]}" 2>"$log"; then
    :
  else
    status=1
    echo "soak $d: FAILED (ringway's log: $log)" >&2
    grep -E "FAILURE|panicked" "$log" | head -20 >&2 || true
  fi
done
exit $status
