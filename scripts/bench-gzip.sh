#!/usr/bin/env bash
# gzip's cost: ringway against nginx, side by side in one run.
#
#   scripts/bench-gzip.sh [SECONDS]   (default 10 s a measurement; ~1 min)
#
# Both serve the same 256 KiB JSON file from a static location with gzip on
# (gzip_types application/json), one worker pinned to CPU 1 each, wrk
# (one thread, 8 connections, Accept-Encoding: gzip) pinned to CPU 0; at
# gzip_comp_level 1 (nginx's default) and 6. A check first that each
# answers gzipped (and decodes to the file). Measured: the proxy's CPU
# time (/proc/PID/stat user + system) over the run, divided by the
# megabytes of JSON it compressed (requests × file size): ms CPU per
# compressed MB, and ringway's ratio to nginx. The table replaces the
# "gzip" section of bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
case ":$PATH:" in *:/usr/sbin:*) ;; *) PATH=$PATH:/usr/sbin ;; esac
for t in nginx wrk curl taskset; do
  command -v "$t" > /dev/null || { echo "needs $t" >&2; exit 1; }
done
cargo build --release -q -p ringway
tmp=$(mktemp -d)
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
trap cleanup EXIT

site=$tmp/site
mkdir -p "$site"
python3 - "$site/data.json" <<'EOF'
import json, sys
rows = [{"id": i, "user": "user %d" % i, "online": i % 3 == 0, "score": i * 37 % 1000,
         "room": "room-%d" % (i % 50)} for i in range(3000)]
text = json.dumps(rows)
while len(text) < 256 * 1024:
    text += " "
open(sys.argv[1], "w").write(text[:256 * 1024])
EOF
size=$(stat -c %s "$site/data.json")
ticks=$(getconf CLK_TCK)

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# measure NAME PID PORT: wrk for $secs, print "requests cpu_ms"
measure() {
  local pid=$2 port=$3 before after out reqs
  before=$(cpu_ticks "$pid")
  out=$(taskset -c 0 wrk -t1 -c8 -d"${secs}s" -H 'Accept-Encoding: gzip' \
    "http://127.0.0.1:$port/static/data.json")
  after=$(cpu_ticks "$pid")
  reqs=$(echo "$out" | awk '/requests in/ { print $1 }')
  echo "$reqs $(( (after - before) * 1000 / ticks ))"
}

check() {
  local port=$1 who=$2 enc
  enc=$(curl -s -o "$tmp/got.gz" -D - -H 'Accept-Encoding: gzip' \
    "http://127.0.0.1:$port/static/data.json" | tr -d '\r' | awk -F': ' 'tolower($1)=="content-encoding" { print $2 }')
  [ "$enc" = gzip ] || { echo "$who did not answer gzipped" >&2; exit 1; }
  gzip -dc < "$tmp/got.gz" | cmp -s - "$site/data.json" || { echo "$who: the body does not decode to the file" >&2; exit 1; }
}

rows=()
for level in 1 6; do
  rport=$(free_port)
  cat > "$tmp/ringway.toml" <<EOF
[runtime]
workers = 1
pin_cores = false

[log]
access_log = "off"

[servers.bench]
listen = ["127.0.0.1:$rport"]
gzip = true
gzip_types = ["application/json"]
gzip_comp_level = $level

[servers.bench.locations."/static/"]
alias = "$site/"
EOF
  taskset -c 1 target/release/ringway -c "$tmp/ringway.toml" > "$tmp/ringway.log" 2>&1 &
  rpid=$!
  pids+=("$rpid")
  wait_line "$tmp/ringway.log" "all workers up" 10 "$rpid" > /dev/null

  nport=$(free_port)
  mkdir -p "$tmp/nginx"
  cat > "$tmp/nginx.conf" <<EOF
worker_processes 1;
master_process off;
daemon off;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  types { application/json json; }
  client_body_temp_path $tmp/nginx/body;
  proxy_temp_path $tmp/nginx/proxy;
  fastcgi_temp_path $tmp/nginx/fastcgi;
  uwsgi_temp_path $tmp/nginx/uwsgi;
  scgi_temp_path $tmp/nginx/scgi;
  server {
    listen 127.0.0.1:$nport;
    gzip on;
    gzip_types application/json;
    gzip_comp_level $level;
    location /static/ { alias $site/; }
  }
}
EOF
  taskset -c 1 nginx -c "$tmp/nginx.conf" -p "$tmp/nginx" > /dev/null 2>&1 &
  npid=$!
  pids+=("$npid")
  for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$nport/" && break; sleep 0.05; done

  check "$rport" ringway
  check "$nport" nginx
  read -r rreq rcpu < <(measure ringway "$rpid" "$rport")
  read -r nreq ncpu < <(measure nginx "$npid" "$nport")
  stop "$rpid"
  stop "$npid"
  row=$(python3 - "$level" "$size" "$rreq" "$rcpu" "$nreq" "$ncpu" "$secs" <<'EOF'
import sys
level, size, rreq, rcpu, nreq, ncpu, secs = sys.argv[1:]
size = int(size)
def per_mb(reqs, cpu):
    mb = int(reqs) * size / 1e6
    return int(cpu) / mb if mb else float("nan"), mb / float(secs)
r, rmbs = per_mb(rreq, rcpu)
n, nmbs = per_mb(nreq, ncpu)
print(f"| {level} | {r:.2f} | {n:.2f} | {r / n:.2f}× | {rmbs:.1f} | {nmbs:.1f} |")
EOF
)
  echo "$row"
  rows+=("$row")
done

{
  echo "## gzip"
  echo
  echo "\`scripts/bench-gzip.sh $secs\` ($(date -u +%Y-%m-%d), $(nproc) cores, $(nginx -v 2>&1 | sed 's/.*: //')):"
  echo "a 256 KiB JSON file from a static location with gzip on, one worker each pinned to"
  echo "CPU 1, wrk (1 thread, 8 connections, Accept-Encoding: gzip) on CPU 0, ${secs} s a"
  echo "measurement. CPU is the proxy's user + system time over the run per megabyte of"
  echo "JSON compressed."
  echo
  echo "| gzip_comp_level | ringway ms CPU / MB | nginx ms CPU / MB | ringway / nginx | ringway MB/s | nginx MB/s |"
  echo "|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
} > "$tmp/section.md"
python3 - bench/RESULTS.md "$tmp/section.md" <<'EOF'
import re, sys
path, section = sys.argv[1], open(sys.argv[2]).read()
text = open(path).read()
pattern = re.compile(r"^## gzip\n.*?(?=^## |\Z)", re.S | re.M)
if pattern.search(text):
    text = pattern.sub(section + "\n", text)
else:
    text = text.rstrip("\n") + "\n\n" + section
open(path, "w").write(text)
EOF
echo "wrote the gzip section of bench/RESULTS.md"
