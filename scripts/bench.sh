#!/usr/bin/env bash
# HTTP throughput: wrk against /api/ through ringway and through nginx, in
# one run, in front of the same keep-alive backend (ringway-echo), both
# proxies with the same number of workers and a 32-connection upstream
# keep-alive pool. Rounds alternate ringway and nginx; the table shows the
# median round of each and the ratio ringway / nginx.
#
#   scripts/bench.sh [--workers 1] [--connections 50] [--threads 1]
#                    [--duration 10] [--rounds 3] [--no-build]
#
# Needs wrk and nginx (apt-get install -y wrk nginx). On a small machine
# wrk, the proxy and the backend share the cores: compare the ratio, not
# the absolute numbers.
set -euo pipefail
cd "$(dirname "$0")/.."

workers=1 conns=50 threads=1 duration=10 rounds=3 build=1
usage() {
  echo "usage: $0 [--workers N] [--connections N] [--threads N] [--duration SECS] [--rounds N] [--no-build]" >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case "$1" in
    --workers) workers=${2:?}; shift 2 ;;
    --connections) conns=${2:?}; shift 2 ;;
    --threads) threads=${2:?}; shift 2 ;;
    --duration) duration=${2:?}; shift 2 ;;
    --rounds) rounds=${2:?}; shift 2 ;;
    --no-build) build=0; shift ;;
    *) usage ;;
  esac
done
for tool in wrk nginx; do
  command -v "$tool" > /dev/null || { echo "$tool is not installed (apt-get install -y $tool)" >&2; exit 2; }
done

ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
[ "$build" = 1 ] && cargo build --release -q -p ringway -p ringway-bench
bin=target/release
tmp=$(mktemp -d /tmp/ringway-bench.XXXXXX)
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
trap cleanup EXIT
trap 'exit 130' INT TERM

"$bin/ringway-echo" --listen 127.0.0.1:0 --threads 1 --driver epoll > "$tmp/echo.out" 2>&1 &
pids+=($!)
backend=$(wait_line "$tmp/echo.out" 'listening addr=' 10 | sed 's/.*addr=\([^ ]*\).*/\1/')

cat > "$tmp/ringway.toml" <<TOML
[runtime]
workers = $workers

[log]
level = "info"
access_log = "off"

[upstreams.api]
servers = [{ addr = "$backend" }]
keepalive = 32

[servers.app]
listen = ["127.0.0.1:0"]

[servers.app.locations."/api/"]
proxy_pass = "http://api"
TOML
"$bin/ringway" -c "$tmp/ringway.toml" 2> "$tmp/ringway.err" &
pids+=($!)
rw_addr=$(wait_line "$tmp/ringway.err" 'listening.*addr=' 10 \
  | sed 's/\x1b\[[0-9;]*m//g; s/.*addr=\([0-9.:]*\).*/\1/')

port=$(free_port)
{ nginx_prelude "$workers"; cat <<CONF
  upstream api { server $backend; keepalive 32; }
  server {
    listen 127.0.0.1:$port;
    location /api/ {
      proxy_pass http://api;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
CONF
} > "$tmp/nginx.conf"
nginx -c "$tmp/nginx.conf" -p "$tmp/nginx" -e "$tmp/nginx/error.log" &
pids+=($!)
ng_addr=127.0.0.1:$port
for _ in $(seq 1 100); do
  curl -fsS -o /dev/null "http://$ng_addr/api/ready" 2>/dev/null && break
  sleep 0.05
done
curl -fsS -o /dev/null "http://$rw_addr/api/ready"
curl -fsS -o /dev/null "http://$ng_addr/api/ready"

echo "backend $backend; ringway $rw_addr; nginx $(nginx -v 2>&1 | sed 's/.*\///') $ng_addr"
echo "wrk -t$threads -c$conns -d${duration}s --latency http://ADDR/api/items?id=1 ($rounds rounds, $workers worker(s) each)"

# run NAME ADDR ROUND: one wrk run; appends "rps p99_ms" to $tmp/NAME.
run() {
  local name=$1 addr=$2 round=$3 out="$tmp/wrk-$1-$3.txt"
  wrk -t"$threads" -c"$conns" -d"${duration}s" --latency "http://$addr/api/items?id=1" > "$out"
  local rps p99 p50 errs
  rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
  p50=$(awk '$1 == "50%" {print $2}' "$out")
  p99=$(awk '$1 == "99%" {print $2}' "$out")
  errs=$(awk '/Non-2xx|Socket errors/ {print}' "$out" | tr '\n' ' ')
  printf '  round %d %-8s %10s req/s  p50 %-9s p99 %-9s %s\n' "$round" "$name" "$rps" "$p50" "$p99" "$errs"
  echo "$rps $(to_ms "$p50") $(to_ms "$p99")" >> "$tmp/res-$name"
}
to_ms() { # wrk latency ("812.00us", "1.20ms", "1.01s") -> ms
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
    else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
    else print "?" }'
}
median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

for r in $(seq 1 "$rounds"); do
  run ringway "$rw_addr" "$r"
  run nginx "$ng_addr" "$r"
done

rw_rps=$(awk '{print $1}' "$tmp/res-ringway" | median); ng_rps=$(awk '{print $1}' "$tmp/res-nginx" | median)
rw_p50=$(awk '{print $2}' "$tmp/res-ringway" | median); ng_p50=$(awk '{print $2}' "$tmp/res-nginx" | median)
rw_p99=$(awk '{print $3}' "$tmp/res-ringway" | median); ng_p99=$(awk '{print $3}' "$tmp/res-nginx" | median)
echo
printf '%-22s %14s %14s %16s\n' "median of $rounds" ringway nginx "ringway / nginx"
printf '%-22s %14s %14s %16s\n' "requests/s" "$rw_rps" "$ng_rps" "$(awk -v a="$rw_rps" -v b="$ng_rps" 'BEGIN {printf "%.2f", a / b}')"
printf '%-22s %14s %14s %16s\n' "p50 latency (ms)" "$rw_p50" "$ng_p50" "$(awk -v a="$rw_p50" -v b="$ng_p50" 'BEGIN {printf "%.2f", a / b}')"
printf '%-22s %14s %14s %16s\n' "p99 latency (ms)" "$rw_p99" "$ng_p99" "$(awk -v a="$rw_p99" -v b="$ng_p99" 'BEGIN {printf "%.2f", a / b}')"
