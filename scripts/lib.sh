# Helpers shared by the benchmark scripts (sourced, not run). The caller
# sets $tmp (a scratch directory) and appends every pid it starts to pids.

pids=()

# Stop a process by pid: TERM, up to 5 s, then KILL.
stop() {
  local p=$1
  kill -TERM "$p" 2>/dev/null || return 0
  for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$p" 2>/dev/null || true
}

# Stop everything started and remove $tmp (kept when KEEP_TMP is set).
cleanup() {
  local p
  for p in "${pids[@]}"; do stop "$p"; done
  wait 2>/dev/null || true
  if [ -n "${KEEP_TMP:-}" ]; then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi
}

# Wait (bounded: SECS) until FILE has a line matching RE; print that line.
# With PID, give up early when that process is gone.
wait_line() {
  local file=$1 re=$2 secs=$3 pid=${4:-} i
  for i in $(seq 1 $((secs * 20))); do
    if grep -m1 -E "$re" "$file" 2>/dev/null; then return 0; fi
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then break; fi
    sleep 0.05
  done
  echo "no /$re/ in $file within ${secs}s" >&2
  sed 's/^/  | /' "$file" >&2
  return 1
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null \
    || echo $((20000 + RANDOM % 10000))
}

# The top of an nginx.conf that runs in the foreground with every path
# under $tmp/nginx and WORKERS worker processes; the caller adds its
# servers and closes the http block.
nginx_prelude() {
  local workers=$1
  mkdir -p "$tmp/nginx"
  cat <<CONF
worker_processes $workers;
worker_rlimit_nofile 20000;
daemon off;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 20000; }
http {
  access_log off;
  client_body_temp_path $tmp/nginx/body;
  proxy_temp_path $tmp/nginx/proxy;
  fastcgi_temp_path $tmp/nginx/fastcgi;
  uwsgi_temp_path $tmp/nginx/uwsgi;
  scgi_temp_path $tmp/nginx/scgi;
CONF
}
