#!/usr/bin/env bash
# Run h2spec (/work/shared/tools/h2spec, or $H2SPEC) against a debug build
# of ringway on h2c and on TLS, on one driver: scripts/h2spec.sh io_uring|epoll
# Build first: cargo build --bin ringway. Prints one summary line per run
# ("h2c: 146 tests, 146 passed, ...") and leaves the reports in $DIR.
# `-P /echo` goes to a proxied HTTP/1.1 echo that reads the body (see the
# tool's README: a `return` path changes which tests fail).
set -euo pipefail
driver=${1:-io_uring}
root=$(cd "$(dirname "$0")/.." && pwd)
h2spec=${H2SPEC:-/work/shared/tools/h2spec/h2spec}
DIR=$(mktemp -d /tmp/h2spec.XXXXXX)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
echo_port=$(free_port); h2c_port=$(free_port); tls_port=$(free_port)
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
  -keyout "$DIR/key.pem" -out "$DIR/cert.pem" 2>/dev/null
cat > "$DIR/echo.py" <<PY
import http.server, socketserver
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def handle_one_request(self):
        super().handle_one_request()
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
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
S(("127.0.0.1", $echo_port), H).serve_forever()
PY
cat > "$DIR/ringway.toml" <<TOML
[runtime]
workers = 1
driver = "$driver"
[log]
level = "warn"
access_log = "$DIR/access.log"
[servers.h2c]
listen = ["127.0.0.1:$h2c_port"]
http2 = "h2c"
[servers.h2c.locations."/"]
proxy_pass = "http://127.0.0.1:$echo_port"
[servers.tls]
listen = ["127.0.0.1:$tls_port"]
http2 = true
tls = { cert = "$DIR/cert.pem", key = "$DIR/key.pem" }
[servers.tls.locations."/"]
proxy_pass = "http://127.0.0.1:$echo_port"
TOML
python3 "$DIR/echo.py" 2> "$DIR/echo.log" & echo_pid=$!
"$root/target/debug/ringway" -c "$DIR/ringway.toml" 2> "$DIR/ringway.log" & rw_pid=$!
trap 'kill $rw_pid $echo_pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$tls_port),0.2); socket.create_connection(('127.0.0.1',$echo_port),0.2)" 2>/dev/null; then break; fi
  sleep 0.1
done
timeout 300 "$h2spec" -h 127.0.0.1 -p "$h2c_port" -P /echo -o 3 > "$DIR/h2c.txt" 2>&1 || true
timeout 300 "$h2spec" -t -k -h 127.0.0.1 -p "$tls_port" -P /echo -o 3 > "$DIR/tls.txt" 2>&1 || true
echo "driver $driver, reports in $DIR"
echo "h2c: $(grep -E '^[0-9]+ tests' "$DIR/h2c.txt" || tail -2 "$DIR/h2c.txt")"
echo "tls: $(grep -E '^[0-9]+ tests' "$DIR/tls.txt" || tail -2 "$DIR/tls.txt")"
