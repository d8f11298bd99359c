#!/usr/bin/env bash
# h2spec (HTTP/2 conformance) against a debug build of ringway and, side by
# side, against nginx, each on h2c (prior knowledge) and on TLS (ALPN h2):
#
#   scripts/h2spec.sh [DRIVER...]        DRIVER: io_uring, epoll (default: both)
#
# Build first: cargo build --bin ringway. h2spec is $H2SPEC, else
# ../shared/tools/h2spec/h2spec next to the repository, else
# /work/shared/tools/h2spec/h2spec (exit 2 when none is there).
#
# Every target proxies `-P /echo` to the same HTTP/1.1 echo that reads the
# request body (see the tool's README: a path answered at once, a
# `return`, ends the stream before some tests' frames arrive and changes
# which tests fail). ringway: one worker per driver. nginx (1.22: `listen
# PORT http2;` and `listen PORT ssl http2;`): one worker, `proxy_pass` to
# the echo; skipped, with a line saying so, when nginx is not installed.
#
# Prints a totals table, ringway against nginx. Exits 1 when any ringway
# run is below 146/146 (its failed tests are listed); nginx's score is
# reported only. The reports (text and JUnit XML, `-j`) are kept in the
# scratch directory when a run fails or KEEP_TMP is set.
#
# H2SPEC_TIMEOUT: h2spec's -o (seconds to wait for an expected frame,
# default 3). nginx's runs take the longest (about 75 s each on a 2-core
# machine, whole), so they go in the background, split by section, while
# ringway's run one after the other (about 3 s each).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=lib.sh
. "$root/scripts/lib.sh"
# nginx lives in /usr/sbin, which a non-login PATH may lack.
case ":$PATH:" in *:/usr/sbin:*) ;; *) PATH=$PATH:/usr/sbin ;; esac

h2spec=${H2SPEC:-}
if [ -z "$h2spec" ]; then
  for c in "$root/../shared/tools/h2spec/h2spec" /work/shared/tools/h2spec/h2spec; do
    if [ -x "$c" ]; then h2spec=$c; break; fi
  done
fi
if [ -z "$h2spec" ] || [ ! -x "$h2spec" ]; then
  echo "h2spec.sh: no h2spec binary (set H2SPEC or put it at ../shared/tools/h2spec/h2spec)" >&2
  exit 2
fi
drivers=("$@")
[ ${#drivers[@]} -gt 0 ] || drivers=(io_uring epoll)
for d in "${drivers[@]}"; do
  case "$d" in io_uring|epoll) ;; *) echo "usage: $0 [io_uring|epoll]..." >&2; exit 2 ;; esac
done
bin="$root/target/debug/ringway"
[ -x "$bin" ] || { echo "h2spec.sh: $bin is missing: cargo build --bin ringway" >&2; exit 2; }
o=${H2SPEC_TIMEOUT:-3}
version=$("$h2spec" --version 2>&1 | sed -n 's/^Version: \([^ ]*\).*/\1/p')

tmp=$(mktemp -d /tmp/h2spec.XXXXXX)
# nginx's workers run as nobody when started as root: they must reach
# their temp paths under $tmp.
chmod 755 "$tmp"
keep=${KEEP_TMP:-}
finish() {
  local p
  for p in "${pids[@]}"; do stop "$p"; done
  wait 2>/dev/null || true
  if [ -n "$keep" ]; then echo "reports kept in $tmp" >&2; else rm -rf "$tmp"; fi
}
trap finish EXIT

openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
  -keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null

# Wait (bounded: 10 s) until every PORT accepts a connection.
wait_ports() {
  local i
  for i in $(seq 1 100); do
    if python3 - "$@" <<'PY' 2>/dev/null; then return 0; fi
import socket, sys
for p in sys.argv[1:]:
    socket.create_connection(("127.0.0.1", int(p)), 0.2).close()
PY
    sleep 0.1
  done
  echo "h2spec.sh: ports $* not accepting within 10 s" >&2
  return 1
}

echo_port=$(free_port)
cat > "$tmp/echo.py" <<PY
import http.server, socketserver
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_any(self):
        n = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(n) if n else b""
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                body += self.rfile.read(size); self.rfile.readline()
                if size == 0:
                    break
        out = b"echo " + str(len(body)).encode()
        self.send_response(200)
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = do_OPTIONS = do_any
    def log_message(self, *a):
        pass
    def handle(self):
        # A proxy that drops the connection mid-request is part of the tests.
        try:
            super().handle()
        except (ConnectionError, ValueError):
            pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
S(("127.0.0.1", $echo_port), H).serve_forever()
PY
python3 "$tmp/echo.py" 2> "$tmp/echo.log" & pids+=($!)
wait_ports "$echo_port"

# run NAME PORT [-t -k] [SECTION...]: one h2spec run; its report is
# $tmp/NAME.txt (SECTIONs: only those; see run_split).
run() {
  local name=$1 port=$2; shift 2
  timeout 300 "$h2spec" "$@" -h 127.0.0.1 -p "$port" -P /echo -o "$o" \
    -j "$tmp/$name.xml" > "$tmp/$name.txt" 2>&1 || true
}
# "PASSED/TOTAL" over the reports $tmp/NAME.txt and $tmp/NAME.*.txt, or
# "no result" when one has no totals line.
score() {
  local f line total=0 passed=0
  for f in "$tmp/$1.txt" "$tmp/$1".*.txt; do
    [ -e "$f" ] || continue
    line=$(grep -E '^[0-9]+ tests, [0-9]+ passed' "$f") || { echo "no result"; return; }
    total=$((total + $(echo "$line" | cut -d' ' -f1)))
    passed=$((passed + $(echo "$line" | cut -d' ' -f3)))
  done
  echo "$passed/$total"
}
# nginx fails some tests by not answering, and each of those waits the
# whole -o timeout: its runs are split by section (all 146 tests between
# them), run side by side, and summed.
sections=(generic hpack http2/3 http2/4 http2/5 http2/6 http2/7 http2/8)
run_split() {
  local name=$1 port=$2 s; shift 2
  for s in "${sections[@]}"; do
    run "$name.${s//\//-}" "$port" "$@" "$s" & nginx_runs+=($!)
  done
}

# nginx first, in the background.
nginx_runs=()
if command -v nginx > /dev/null; then
  nginx_version=$(nginx -v 2>&1 | sed 's/.*\///')
  ng_h2c=$(free_port) ng_tls=$(free_port)
  { nginx_prelude 1; cat <<CONF
  server {
    listen 127.0.0.1:$ng_h2c http2;
    location / { proxy_pass http://127.0.0.1:$echo_port; }
  }
  server {
    listen 127.0.0.1:$ng_tls ssl http2;
    ssl_certificate $tmp/cert.pem;
    ssl_certificate_key $tmp/key.pem;
    location / { proxy_pass http://127.0.0.1:$echo_port; }
  }
}
CONF
  } > "$tmp/nginx.conf"
  nginx -c "$tmp/nginx.conf" -p "$tmp/nginx" -e "$tmp/nginx/error.log" > "$tmp/nginx/stdout.log" 2>&1 & pids+=($!)
  if wait_ports "$ng_h2c" "$ng_tls"; then
    run_split nginx-h2c "$ng_h2c"
    run_split nginx-tls "$ng_tls" -t -k
  else
    echo "nginx did not start:" >&2; sed 's/^/  | /' "$tmp/nginx/error.log" >&2
  fi
else
  nginx_version=""
  echo "h2spec.sh: nginx is not installed (apt-get install -y nginx): its runs are skipped" >&2
fi

for d in "${drivers[@]}"; do
  h2c_port=$(free_port) tls_port=$(free_port)
  cat > "$tmp/ringway-$d.toml" <<TOML
[runtime]
workers = 1
driver = "$d"
[log]
level = "warn"
[servers.h2c]
listen = ["127.0.0.1:$h2c_port"]
http2 = "h2c"
[servers.h2c.locations."/"]
proxy_pass = "http://127.0.0.1:$echo_port"
[servers.tls]
listen = ["127.0.0.1:$tls_port"]
http2 = true
tls = { cert = "$tmp/cert.pem", key = "$tmp/key.pem" }
[servers.tls.locations."/"]
proxy_pass = "http://127.0.0.1:$echo_port"
TOML
  "$bin" -c "$tmp/ringway-$d.toml" > "$tmp/ringway-$d.log" 2>&1 & rw=$!
  pids+=("$rw")
  wait_ports "$h2c_port" "$tls_port"
  run "ringway-$d-h2c" "$h2c_port"
  run "ringway-$d-tls" "$tls_port" -t -k
  stop "$rw"
done
for p in "${nginx_runs[@]}"; do wait "$p" || true; done

echo
echo "h2spec $version (-o $o, -P /echo: a proxied HTTP/1.1 echo that reads the body)"
printf '%-22s %-10s %-10s\n' target h2c tls
failed=0
for d in "${drivers[@]}"; do
  printf '%-22s %-10s %-10s\n' "ringway ($d)" "$(score "ringway-$d-h2c")" "$(score "ringway-$d-tls")"
  for t in h2c tls; do
    r="ringway-$d-$t"
    if ! grep -qE '^146 tests, 146 passed, 0 skipped, 0 failed' "$tmp/$r.txt"; then
      failed=1
      echo "  $r below 146/146:" >&2
      if grep -q '^Failures:' "$tmp/$r.txt"; then
        sed -n '/^Failures:/,$p' "$tmp/$r.txt" | sed 's/^/    /' >&2
      else
        tail -5 "$tmp/$r.txt" | sed 's/^/    /' >&2
      fi
    fi
  done
done
if [ -n "$nginx_version" ]; then
  printf '%-22s %-10s %-10s\n' "nginx $nginx_version" "$(score nginx-h2c)" "$(score nginx-tls)"
else
  printf '%-22s %s\n' nginx "skipped (not installed)"
fi
if [ "$failed" = 1 ]; then
  keep=1
  echo "h2spec.sh: ringway is below 146/146 (reports in $tmp)" >&2
  exit 1
fi
