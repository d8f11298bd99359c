#!/usr/bin/env bash
# Idle-tunnel cost: hold N idle WebSocket tunnels through a proxy with one
# worker and measure what they cost it — RSS, open descriptors, threads,
# io_uring io-wq workers (iou-wrk) — before the load and while holding; then
# check every tunnel still echoes. Kernel TCP socket memory
# (/proc/net/sockstat) is shown as extra, system-wide information.
#
#   scripts/hold.sh [--proxy ringway|nginx|both] [-n 8000] [--driver io_uring|epoll]
#                   [--hold 10] [--procs 4] [--sources 127.0.0.2-127.0.0.40] [--no-build]
#
# The echo backend (ringway-echo) and the load processes (ringway-load hold)
# run on epoll, so every iou-wrk thread in the system belongs to the proxy
# or to someone else on the machine. Sources are spread over 127.0.0.x so
# no address runs out of ephemeral ports; connections over several load
# processes so none nears the 20,000 open-file cap.
# Exit status: 0 when every tunnel was held and echoed after the hold.
set -euo pipefail
cd "$(dirname "$0")/.."

proxy=both n=8000 driver=io_uring hold=10 procs=4 sources=127.0.0.2-127.0.0.40 build=1
usage() {
  echo "usage: $0 [--proxy ringway|nginx|both] [-n N] [--driver io_uring|epoll] [--hold SECS]" \
    "[--procs P] [--sources A-B] [--no-build]" >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case "$1" in
    --proxy) proxy=${2:?}; shift 2 ;;
    -n) n=${2:?}; shift 2 ;;
    --driver) driver=${2:?}; shift 2 ;;
    --hold) hold=${2:?}; shift 2 ;;
    --procs) procs=${2:?}; shift 2 ;;
    --sources) sources=${2:?}; shift 2 ;;
    --no-build) build=0; shift ;;
    *) usage ;;
  esac
done
case "$proxy" in ringway|nginx|both) ;; *) usage ;; esac
case "$driver" in io_uring|epoll) ;; *) usage ;; esac
[ "$hold" -ge 3 ] 2>/dev/null || { echo "--hold must be >= 3 (seconds)" >&2; exit 2; }

want_ringway=0 want_nginx=0
[ "$proxy" != nginx ] && want_ringway=1
[ "$proxy" != ringway ] && want_nginx=1

ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if [ "$build" = 1 ]; then
  if [ "$want_ringway" = 1 ]; then
    cargo build --release -q -p ringway -p ringway-bench
  else
    cargo build --release -q -p ringway-bench
  fi
fi
bin=target/release
tmp=$(mktemp -d /tmp/ringway-hold.XXXXXX)
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
trap cleanup EXIT
trap 'exit 130' INT TERM


rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
nfds() { ls "/proc/$1/fd" | wc -l; }
# Threads of a process, not counting its iou-wrk workers (they are tasks too).
nthreads() { cat /proc/"$1"/task/*/comm 2>/dev/null | grep -vc '^iou-wrk' || true; }
iouwrk_of() { cat /proc/"$1"/task/*/comm 2>/dev/null | grep -c '^iou-wrk' || true; }
iouwrk_all() { cat /proc/[0-9]*/task/*/comm 2>/dev/null | grep -c '^iou-wrk' || true; }
sockstat() { awk -v k="$1" '$1 == "TCP:" {for (i = 2; i < NF; i++) if ($i == k) print $(i + 1)}' /proc/net/sockstat; }
slab_kb() { awk '/^Slab:/ {print $2}' /proc/meminfo; }
json_field() { sed -n "s/.*\"$2\":\([^,}]*\).*/\1/p" "$1" | tail -n1 | tr -d '"'; }

# A fresh echo backend for each proxy, so its memory figures start clean.
echo_pid=
start_echo() {
  if [ -n "$echo_pid" ]; then stop "$echo_pid"; fi
  "$bin/ringway-echo" --listen 127.0.0.1:0 --threads 1 --driver epoll > "$tmp/echo.out" 2>&1 &
  echo_pid=$!
  pids+=("$echo_pid")
  backend=$(wait_line "$tmp/echo.out" 'listening addr=' 10 "$echo_pid" | sed 's/.*addr=\([^ ]*\).*/\1/')
  echo "echo backend $backend (pid $echo_pid)"
}
echo "$n tunnels, $procs load processes, sources $sources, hold ${hold}s"

# Peak iou-wrk counts (of PID, of the system) while the load runs: io-wq
# workers come and go, so a single sample could miss them. Writes
# "PROXY SYSTEM" to FILE every 0.2 s until PID or the load LP ends.
sample_iouwrk() {
  local pid=$1 lp=$2 f=$3 mp=0 ms=0 a b
  while kill -0 "$pid" 2>/dev/null && kill -0 "$lp" 2>/dev/null; do
    a=$(iouwrk_of "$pid"); b=$(iouwrk_all)
    if [ "$a" -gt "$mp" ]; then mp=$a; fi
    if [ "$b" -gt "$ms" ]; then ms=$b; fi
    echo "$mp $ms" > "$f"
    sleep 0.2
  done
}

declare -A M
names=()
failed=0

# measure NAME PID ADDR: hold $n tunnels through ADDR, sample PID before and while holding.
measure() {
  local name=$1 pid=$2 addr=$3 out="$tmp/load-${1//\//-}.out"
  names+=("$name")
  M[$name,rss0]=$(rss_kb "$pid"); M[$name,fd0]=$(nfds "$pid"); M[$name,th0]=$(nthreads "$pid")
  M[$name,wrk0]=$(iouwrk_of "$pid"); M[$name,wrkall0]=$(iouwrk_all)
  M[$name,tcpmem0]=$(sockstat mem); M[$name,echorss0]=$(rss_kb "$echo_pid")
  M[$name,tcpinuse0]=$(sockstat inuse); M[$name,slab0]=$(slab_kb)
  timeout $((hold + 600)) "$bin/ringway-load" hold --target "$addr" --path /ws/ -n "$n" \
    --sources "$sources" --procs "$procs" --hold "${hold}s" --json > "$out" &
  local lp=$!
  pids+=("$lp")
  rm -f "$tmp/iouwrk-peak"
  sample_iouwrk "$pid" "$lp" "$tmp/iouwrk-peak" &
  local sp=$!
  pids+=("$sp")
  if ! wait_line "$out" '^holding' 300 "$lp" > /dev/null; then
    failed=1; wait "$lp" || true; return 0
  fi
  sleep 1 # let the last handshakes settle before sampling
  M[$name,held]=$(awk '/^holding/ {print $2}' "$out")
  M[$name,rss1]=$(rss_kb "$pid"); M[$name,fd1]=$(nfds "$pid"); M[$name,th1]=$(nthreads "$pid")
  M[$name,wrk1]=$(iouwrk_of "$pid"); M[$name,wrkall1]=$(iouwrk_all)
  M[$name,tcpmem1]=$(sockstat mem); M[$name,echorss1]=$(rss_kb "$echo_pid")
  M[$name,tcpinuse1]=$(sockstat inuse); M[$name,slab1]=$(slab_kb)
  local rc=0
  wait "$lp" || rc=$?
  [ "$rc" = 0 ] || failed=1
  wait "$sp" || true
  read -r "M[$name,wrkpeak]" "M[$name,wrkallpeak]" < "$tmp/iouwrk-peak" || true
  M[$name,alive]=$(json_field "$out" alive_after_hold)
  M[$name,open_secs]=$(json_field "$out" open_secs)
  M[$name,open_p99]=$(json_field "$out" open_p99_ms)
  M[$name,failures]=$(sed -n 's/.*"failures":\({[^}]*}\).*/\1/p' "$out")
  [ "${M[$name,alive]:-0}" = "$n" ] || failed=1
  echo "$name: $(tail -n1 "$out")"
}

if [ "$want_ringway" = 1 ]; then
  start_echo
  cat > "$tmp/ringway.toml" <<TOML
[runtime]
workers = 1
driver = "$driver"

[log]
level = "info"
access_log = "off"

[servers.ws]
listen = ["127.0.0.1:0"]

[servers.ws.locations."/ws/"]
proxy_pass = "http://$backend"
proxy_read_timeout = "3600s"
proxy_send_timeout = "3600s"
TOML
  "$bin/ringway" -c "$tmp/ringway.toml" 2> "$tmp/ringway.err" &
  rw_pid=$!
  pids+=("$rw_pid")
  rw_addr=$(wait_line "$tmp/ringway.err" 'listening.*addr=' 10 "$rw_pid" \
    | sed 's/\x1b\[[0-9;]*m//g; s/.*addr=\([0-9.:]*\).*/\1/')
  echo "ringway $rw_addr (pid $rw_pid, 1 worker, $driver)"
  measure "ringway/$driver" "$rw_pid" "$rw_addr"
  stop "$rw_pid"
  if grep -qiE 'panic|error' "$tmp/ringway.err"; then
    echo "ringway stderr:"; grep -iE 'panic|error' "$tmp/ringway.err" | head -n 5 | sed 's/^/  | /'
  fi
fi

if [ "$want_nginx" = 1 ]; then
  if ! command -v nginx > /dev/null; then
    echo "nginx is not installed (apt-get install -y nginx); skipping it" >&2
  else
    start_echo
    port=$(free_port)
    { nginx_prelude 1; cat <<CONF
  map \$http_upgrade \$connection_upgrade { default upgrade; '' close; }
  server {
    listen 127.0.0.1:$port;
    location /ws/ {
      proxy_pass http://$backend;
      proxy_http_version 1.1;
      proxy_set_header Upgrade \$http_upgrade;
      proxy_set_header Connection \$connection_upgrade;
      proxy_set_header Host \$host;
      proxy_read_timeout 3600s;
      proxy_send_timeout 3600s;
    }
  }
}
CONF
    } > "$tmp/nginx.conf"
    nginx -c "$tmp/nginx.conf" -p "$tmp/nginx" -e "$tmp/nginx/error.log" &
    ng_pid=$!
    pids+=("$ng_pid")
    ng_worker=
    for _ in $(seq 1 100); do
      ng_worker=$(pgrep -P "$ng_pid" | head -n1 || true)
      [ -n "$ng_worker" ] && break
      sleep 0.05
    done
    if [ -z "$ng_worker" ]; then
      echo "nginx did not start:" >&2; sed 's/^/  | /' "$tmp/nginx/error.log" >&2; failed=1
    else
      echo "nginx $(nginx -v 2>&1 | sed 's/.*\///') 127.0.0.1:$port (master $ng_pid, worker $ng_worker)"
      measure "nginx" "$ng_worker" "127.0.0.1:$port"
    fi
    stop "$ng_pid"
  fi
fi

# The table: one column per proxy.
row() { # LABEL FORMULA-FUNCTION
  local label=$1 f=$2 nm
  printf '%-32s' "$label"
  for nm in "${names[@]}"; do printf '%20s' "$($f "$nm")"; done
  printf '\n'
}
v() { echo "${M[$1,$2]:-?}"; }
per_tunnel() { # name key0 key1 scale
  awk -v a="${M[$1,$2]:-0}" -v b="${M[$1,$3]:-0}" -v n="${M[$1,held]:-0}" -v s="$4" -v d="$5" \
    'BEGIN { if (n > 0) printf "%." d "f", (b - a) * s / n; else print "?" }'
}
c_held() { v "$1" held; }
c_alive() { v "$1" alive; }
c_open() { echo "$(v "$1" open_secs) s"; }
c_openp99() { echo "$(v "$1" open_p99) ms"; }
c_rss() { echo "$(v "$1" rss0) -> $(v "$1" rss1)"; }
c_rsspt() { per_tunnel "$1" rss0 rss1 1024 0; }
c_fd() { echo "$(v "$1" fd0) -> $(v "$1" fd1)"; }
c_fdpt() { per_tunnel "$1" fd0 fd1 1 2; }
c_th() { echo "$(v "$1" th0) -> $(v "$1" th1)"; }
c_wrk() { echo "$(v "$1" wrk0) -> $(v "$1" wrk1) (peak $(v "$1" wrkpeak))"; }
c_wrkall() { echo "$(v "$1" wrkall0) -> $(v "$1" wrkall1) (peak $(v "$1" wrkallpeak))"; }
c_tcpmem() { echo "$(v "$1" tcpmem0) -> $(v "$1" tcpmem1)"; }
c_inuse() { echo "$(v "$1" tcpinuse0) -> $(v "$1" tcpinuse1)"; }
c_slabpt() { per_tunnel "$1" slab0 slab1 1024 0; }
c_echorss() { per_tunnel "$1" echorss0 echorss1 1024 0; }
c_fail() { local f; f=$(v "$1" failures); [ "$f" = "{}" ] && echo none || echo "$f"; }

echo
row "proxy (1 worker)" echo
row "tunnels held" c_held
row "alive after hold (echo checked)" c_alive
row "time to open all" c_open
row "connect+upgrade p99" c_openp99
row "RSS KiB before -> holding" c_rss
row "RSS bytes per tunnel" c_rsspt
row "fds before -> holding" c_fd
row "fds per tunnel" c_fdpt
row "threads before -> holding" c_th
row "iou-wrk of proxy" c_wrk
row "iou-wrk in system" c_wrkall
row "TCP sockets in use (system)" c_inuse
row "TCP buffer pages (system)" c_tcpmem
row "slab B/tunnel (system, 4 socks)" c_slabpt
row "echo backend RSS B/tunnel" c_echorss
row "failures" c_fail
exit "$failed"
