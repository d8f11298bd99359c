#!/usr/bin/env bash
# Fuzz ringway's parsers with cargo-fuzz (libFuzzer, nightly toolchain).
#
#   scripts/fuzz.sh                      every target for 60 s each
#   scripts/fuzz.sh --time 600           every target for 10 minutes each
#   scripts/fuzz.sh --time 600 -j 2      two targets at a time
#   scripts/fuzz.sh --seeds              run each target over its seed corpus
#                                        only (a regression check, seconds)
#   scripts/fuzz.sh chunked path_routing only these targets
#
# Targets (fuzz/fuzz_targets/): request_head, response_head, chunked,
# path_routing, config, tls_hello, proxy_protocol, h2_frame, hpack_decode,
# h2_request, h2_conn, h2_writer.
# Seeds are checked in under fuzz/seeds/<target>; what the fuzzer finds grows
# fuzz/corpus/<target> (not committed), and a crash leaves its input in
# fuzz/artifacts/<target>/ and fails this script.
# Each target's final libFuzzer stats line (execs/s, corpus size) is printed
# and kept in target/fuzz-logs/<target>.log.
set -euo pipefail
cd "$(dirname "$0")/.."

time_s=60
jobs=1
seeds_only=0
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --time) time_s="$2"; shift 2 ;;
    -j) jobs="$2"; shift 2 ;;
    --seeds) seeds_only=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | grep '^#'; exit 0 ;;
    *) targets+=("$1"); shift ;;
  esac
done
if [ ${#targets[@]} -eq 0 ]; then
  targets=(request_head response_head chunked path_routing config tls_hello proxy_protocol h2_frame hpack_decode h2_request h2_conn h2_writer handoff_wire)
fi

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz.sh: the nightly toolchain is needed (rustup toolchain install nightly)" >&2
  exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: installing cargo-fuzz" >&2
  cargo install --locked cargo-fuzz
fi

cargo +nightly fuzz build 2>&1 | tail -n 3
# Run the built binaries directly (not `cargo fuzz run`, which rebuilds):
# a long run then fuzzes exactly the code it started with.
triple=$(rustc +nightly -vV | sed -n 's/^host: //p')
bin_dir="fuzz/target/$triple/release"
mkdir -p target/fuzz-logs

run_one() {
  local t="$1"
  local log="target/fuzz-logs/$t.log"
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  local args=(-max_total_time="$time_s" -print_final_stats=1)
  if [ "$seeds_only" = 1 ]; then
    args=(-runs=0)
  fi
  # The first corpus dir receives new inputs; the seeds are read only.
  if "$bin_dir/$t" "${args[@]}" -artifact_prefix="fuzz/artifacts/$t/" \
      "fuzz/corpus/$t" "fuzz/seeds/$t" >"$log" 2>&1; then
    local stats
    stats=$(grep -E "^#[0-9]+.*(DONE|pulse|INITED)" "$log" | tail -n 1 || true)
    local execs
    execs=$(grep -E "stat::number_of_executed_units" "$log" | awk '{print $2}' || true)
    local what="${time_s}s"; [ "$seeds_only" = 1 ] && what="seeds"
    echo "fuzz $t: ok ($what) ${execs:+$execs execs, }$stats"
  else
    echo "fuzz $t: FAILED — see $log and fuzz/artifacts/$t/" >&2
    tail -n 30 "$log" >&2
    return 1
  fi
}

status=0
running=0
pids=()
names=()
for t in "${targets[@]}"; do
  run_one "$t" &
  pids+=($!)
  names+=("$t")
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n || status=1
    running=$((running - 1))
  fi
done
while [ "$running" -gt 0 ]; do
  wait -n || status=1
  running=$((running - 1))
done
exit $status
