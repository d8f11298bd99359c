#!/usr/bin/env bash
# Build a fully static x86_64 ringway: glibc linked in (static-pie), no
# shared library needed at run time, so one file runs on any x86_64 Linux
# (RHEL 9, Debian, Alpine, a scratch container).
#
#   scripts/build-static.sh            build, check, strip; print the path
#                                      of the release binary
#   scripts/build-static.sh --smoke    then run the smoke subset of the
#                                      end-to-end tests against it
#
# Output, in target/static/: `ringway` (stripped: what to install and
# ship) and `ringway.debug` (its debug info, for perf/gdb: both find it by
# the binary's .gnu_debuglink, next to the binary or in
# /usr/lib/debug/usr/local/bin/ringway.debug).
#
# The explicit --target matters: with it, RUSTFLAGS (crt-static) applies to
# the target only, so build scripts and proc-macros stay dynamic (a static
# proc-macro cannot be loaded by rustc).
#
# Name resolution: upstream host names ("localhost:3000") are resolved when
# the configuration is loaded (config/src/validate.rs, to_socket_addrs ->
# getaddrinfo), through NSS even in a static binary (the linker warns
# "Using 'getaddrinfo' in statically linked applications requires at
# runtime the shared libraries from the glibc version used for linking").
# glibc's own "files" and "dns" sources are built in (a chroot with only
# the binary and /etc/hosts resolves names); NSS modules outside libc
# (myhostname, sss, resolve) are dlopened and need the linking glibc's
# libraries. --smoke proxies to "localhost:PORT" (tests/tests/ops.rs).
# README.md, "Static binary", has the details.
set -euo pipefail
cd "$(dirname "$0")/.."

smoke=0
for arg in "$@"; do
  case $arg in
    --smoke) smoke=1 ;;
    -h | --help)
      sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "unknown argument: $arg (try --help)" >&2
      exit 2
      ;;
  esac
done

target=x86_64-unknown-linux-gnu
target_dir=${CARGO_TARGET_DIR:-target}
bin=$target_dir/$target/release/ringway

start=$(date +%s)
RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-C target-feature=+crt-static" \
  cargo build --release --target "$target" -p ringway --bin ringway
echo "build took $(($(date +%s) - start))s" >&2

fail() {
  echo "build-static: $*" >&2
  exit 1
}

[ -x "$bin" ] || fail "$bin was not built"

if command -v file >/dev/null; then
  kind=$(file -L "$bin")
  echo "$kind"
  grep -qE 'static-pie linked|statically linked' <<<"$kind" \
    || fail "$bin is not statically linked"
else
  echo "build-static: 'file' is missing; skipping that check" >&2
fi

# ldd exits non-zero on a static binary; its text is what counts.
deps=$(ldd "$bin" 2>&1 || true)
echo "ldd: $deps"
grep -qE 'not a dynamic executable|statically linked' <<<"$deps" \
  || fail "$bin needs shared libraries: $deps"

# The release binary stripped, its debug info kept beside it (the release
# profile builds with debug = 1: line tables for profiles).
out=$target_dir/static
mkdir -p "$out"
objcopy --only-keep-debug "$bin" "$out/ringway.debug"
objcopy --strip-all --add-gnu-debuglink="$out/ringway.debug" "$bin" "$out/ringway.tmp"
mv "$out/ringway.tmp" "$out/ringway"
"$out/ringway" --version >/dev/null || fail "$out/ringway does not run"
size() { stat -c %s "$1"; }
echo "unstripped $(size "$bin") bytes; stripped $(size "$out/ringway") bytes, debug info $(size "$out/ringway.debug") bytes" >&2
echo "$out/ringway"

if [ "$smoke" = 1 ]; then
  # The harness (tests/src/lib.rs, binary()) runs $RINGWAY_BIN instead of
  # the debug build; one test thread per core on a small machine.
  RINGWAY_BIN=$(realpath "$out/ringway") cargo test -p ringway-tests \
    --test ops --test websocket --test http_proxy \
    -- --test-threads="${RINGWAY_TEST_THREADS:-2}"
fi
