//! Active health checks end to end: `[upstreams.NAME.health_check]` with
//! `type = "http"`, `"websocket"` and `"tcp"`, against backends whose
//! health the test switches while the real binary runs (both drivers).
//! A server fails `fails` checks in a row: it is marked down (log line,
//! `ringway_upstream_check_up` 0) and requests and new tunnels go to the
//! other servers; it passes `passes` in a row: it is used again. A group
//! whose every server is down answers 502. `on_down = "close"` closes the
//! tunnels of a server marked down with WebSocket close 1001, spread over
//! `drain_spread`; `on_remove = "close"` does the same for a server a
//! reload removed, and `"keep"` (the default) leaves them open.
//!
//! Passive health is off in every group here (`max_fails = 0`) and a
//! request never goes on to another server (`proxy_next_upstream =
//! ["off"]`): only the health check keeps traffic off a server.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use ringway_tests::*;
use tungstenite::protocol::Role;
use tungstenite::{Message, WebSocket};

both_drivers!(
    http_check_moves_requests_off_a_failing_server_and_back,
    expect_body_marks_down_a_server_whose_body_lacks_it,
    websocket_check_needs_a_real_upgrade,
    tcp_check_marks_a_refused_server_down_and_an_all_down_group_answers_502,
    on_down_close_moves_the_tunnels_of_a_server_marked_down,
    on_remove_close_closes_the_tunnels_of_a_removed_server,
    on_remove_keep_is_the_default_and_keeps_them,
);

/// The tunnel tests on the io_uring driver's syscall relay too (the
/// close frames go in at a frame boundary the relay finds).
mod io_uring_syscall_relay {
    use ringway_tests::Driver;
    #[test]
    fn on_down_close_moves_the_tunnels_of_a_server_marked_down() {
        super::on_down_close_moves_the_tunnels_of_a_server_marked_down(Driver::IoUringSyscallRelay)
    }
    #[test]
    fn on_remove_close_closes_the_tunnels_of_a_removed_server() {
        super::on_remove_close_closes_the_tunnels_of_a_removed_server(Driver::IoUringSyscallRelay)
    }
}

/// Consecutive failed checks that mark a server down.
const FAILS: usize = 2;
/// Consecutive passed checks that mark it up again.
const PASSES: usize = 2;
/// Far more than `FAILS` or `PASSES` checks at `interval = "200ms"` take:
/// the bound on every wait for a server to be marked down or up.
const MARK_WITHIN: Duration = Duration::from_secs(10);
/// How long metrics may take to show a change.
const SETTLE: Duration = Duration::from_secs(10);

// ---- a backend whose health the test switches ----

/// What a [`Switch`] answers to `GET /health`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Health {
    /// `200` with body `status: ok`.
    Ok = 0,
    /// `200` with body `status: starting` (passes a status check, fails
    /// `expect_body = "ok"`).
    Starting = 1,
    /// `503` with body `unavailable`.
    Unavailable = 2,
}

#[derive(Default)]
struct SwitchState {
    health: AtomicU8,
    /// `/health` answers given in [`Health::Ok`].
    passing: AtomicUsize,
    /// `/health` answers given in any other mode.
    failing: AtomicUsize,
    /// Plain requests to any other path.
    requests: AtomicUsize,
    /// WebSocket connections on `/ws/…` (tunnels through ringway) open now.
    live_tunnels: AtomicUsize,
    /// Close codes received on tunnels, with the tunnel's path (1005: a
    /// close frame without one).
    tunnel_closes: Mutex<Vec<(String, u16)>>,
    /// WebSocket upgrades on any other path (websocket health checks).
    check_upgrades: AtomicUsize,
    /// Close codes received on those, with the path.
    check_closes: Mutex<Vec<(String, u16)>>,
}

/// An HTTP/1.1 backend named `name` (a thread per connection,
/// keep-alive): `GET /health` answers by its switchable [`Health`]; any
/// other path answers `200` with its name as the body; an upgrade is a
/// WebSocket that answers the text `who?` with its name and echoes
/// everything else.
struct Switch {
    name: &'static str,
    addr: SocketAddr,
    st: Arc<SwitchState>,
}

impl Switch {
    fn start(name: &'static str, health: Health) -> Switch {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind switch backend");
        let addr = listener.local_addr().unwrap();
        let st = Arc::new(SwitchState::default());
        st.health.store(health as u8, Ordering::SeqCst);
        let st2 = st.clone();
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let st = st2.clone();
                thread::spawn(move || {
                    let _ = serve_switch(conn, name, &st);
                });
            }
        });
        Switch { name, addr, st }
    }

    fn set_health(&self, h: Health) {
        self.st.health.store(h as u8, Ordering::SeqCst);
    }

    fn passing(&self) -> usize {
        self.st.passing.load(Ordering::SeqCst)
    }

    fn failing(&self) -> usize {
        self.st.failing.load(Ordering::SeqCst)
    }

    fn live_tunnels(&self) -> usize {
        self.st.live_tunnels.load(Ordering::SeqCst)
    }
}

fn serve_switch(mut conn: TcpStream, name: &'static str, st: &SwitchState) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut buf: Vec<u8> = Vec::new();
    let mut tmp = [0u8; 4096];
    loop {
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if buf.len() > 64 * 1024 {
                return Ok(());
            }
            let n = conn.read(&mut tmp)?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&tmp[..n]);
        };
        let (method, req) = seen_head(&buf[..end]);
        buf.drain(..end);
        let length: usize = req
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < length {
            let n = conn.read(&mut tmp)?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&tmp[..n]);
        }
        buf.drain(..length);
        if req
            .header("upgrade")
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
        {
            return serve_switch_ws(conn, buf, &req, name, st);
        }
        let (status, body) = if req.path == "/health" {
            let h = st.health.load(Ordering::SeqCst);
            if h == Health::Ok as u8 {
                st.passing.fetch_add(1, Ordering::SeqCst);
            } else {
                st.failing.fetch_add(1, Ordering::SeqCst);
            }
            match h {
                0 => ("200 OK", "status: ok"),
                1 => ("200 OK", "status: starting"),
                _ => ("503 Service Unavailable", "unavailable"),
            }
        } else {
            st.requests.fetch_add(1, Ordering::SeqCst);
            ("200 OK", name)
        };
        let mut out = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        if method != "HEAD" {
            out.push_str(body);
        }
        conn.write_all(out.as_bytes())?;
        if req
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
        {
            return Ok(());
        }
    }
}

fn serve_switch_ws(
    mut conn: TcpStream,
    rest: Vec<u8>,
    req: &SeenRequest,
    name: &'static str,
    st: &SwitchState,
) -> std::io::Result<()> {
    let tunnel = req.path.starts_with("/ws/");
    let key = req.header("sec-websocket-key").unwrap_or("");
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    conn.write_all(
        format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n")
            .as_bytes(),
    )?;
    let (live, closes) = if tunnel {
        st.live_tunnels.fetch_add(1, Ordering::SeqCst);
        (Some(&st.live_tunnels), &st.tunnel_closes)
    } else {
        st.check_upgrades.fetch_add(1, Ordering::SeqCst);
        (None, &st.check_closes)
    };
    let mut ws = WebSocket::from_partially_read(conn, rest, Role::Server, Some(ws_config()));
    loop {
        match ws.read() {
            Ok(Message::Text(t)) if t == "who?" => {
                if ws.send(Message::text(name)).is_err() {
                    break;
                }
            }
            Ok(m @ (Message::Text(_) | Message::Binary(_))) => {
                if ws.send(m).is_err() {
                    break;
                }
            }
            Ok(Message::Close(f)) => {
                closes
                    .lock()
                    .unwrap()
                    .push((req.path.clone(), f.map_or(1005, |f| u16::from(f.code))));
                // tungstenite queued the close reply; send it.
                let _ = ws.flush();
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    if let Some(live) = live {
        live.fetch_sub(1, Ordering::SeqCst);
    }
    Ok(())
}

// ---- configuration ----

/// A configuration with the metrics listener, the group `chat` of
/// `servers` (passive health off, `group_extra` lines, then `check`),
/// `more` tables, and the server `app` proxying `/` to `chat`.
fn config(servers: &[SocketAddr], group_extra: &str, check: &str, more: &str) -> String {
    format!(
        r#"
[metrics]
listen = "127.0.0.1:0"

[upstreams.chat]
servers = [{}]
max_fails = 0
{group_extra}
{check}

[servers.app]
listen = ["127.0.0.1:0"]
[servers.app.locations."/"]
proxy_pass = "http://chat"
proxy_read_timeout = "60s"
proxy_connect_timeout = "2s"
proxy_next_upstream = ["off"]
{more}
"#,
        servers_list(servers)
    )
}

fn servers_list(servers: &[SocketAddr]) -> String {
    servers
        .iter()
        .map(|a| format!("{{ addr = \"{a}\" }}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `[upstreams.GROUP.health_check]` of `kind`: every 200 ms, no jitter,
/// `FAILS`/`PASSES`, and the `extra` lines.
fn check(group: &str, kind: &str, extra: &str) -> String {
    format!(
        "[upstreams.{group}.health_check]\ntype = \"{kind}\"\ninterval = \"200ms\"\njitter = \"0s\"\ntimeout = \"500ms\"\nfails = {FAILS}\npasses = {PASSES}\n{extra}"
    )
}

// ---- the log ----

/// `key=value` of a log line (the value up to the next space, quotes
/// trimmed).
fn field(line: &str, key: &str) -> Option<String> {
    let pat = format!(" {key}=");
    let start = line.find(&pat)? + pat.len();
    let rest = &line[start..];
    let end = rest.find(' ').unwrap_or(rest.len());
    Some(rest[..end].trim_matches('"').to_string())
}

/// The log lines saying `server` of `upstream` was marked `dir` ("down"
/// or "up") by the health check.
fn marked_lines(rw: &Ringway, dir: &str, upstream: &str, server: SocketAddr) -> Vec<String> {
    let needle = format!("upstream server marked {dir} by health check");
    rw.logs()
        .lines()
        .filter(|l| {
            l.contains(&needle)
                && field(l, "upstream").as_deref() == Some(upstream)
                && field(l, "server") == Some(server.to_string())
        })
        .map(str::to_string)
        .collect()
}

/// Wait (bounded by [`MARK_WITHIN`]) until `server` of `upstream` is
/// logged marked `dir`, at least `n` times in all.
fn wait_marked(rw: &Ringway, dir: &str, upstream: &str, server: SocketAddr, n: usize) {
    let deadline = Instant::now() + MARK_WITHIN;
    while marked_lines(rw, dir, upstream, server).len() < n {
        assert!(
            Instant::now() < deadline,
            "{server} of {upstream} was not marked {dir} by the health check (time {n}) within {MARK_WITHIN:?}; log:\n{}",
            rw.logs()
        );
        // Pacing for a poll of the log with a deadline.
        thread::sleep(Duration::from_millis(20));
    }
}

fn assert_never_marked(rw: &Ringway, dir: &str, upstream: &str, server: SocketAddr) {
    let lines = marked_lines(rw, dir, upstream, server);
    assert!(
        lines.is_empty(),
        "{server} of {upstream} was marked {dir}: {lines:?}"
    );
}

/// Wait (bounded) until `count` reaches `n`.
fn wait_count(what: &str, count: impl Fn() -> usize, n: usize, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let c = count();
        if c >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {c}, not {n}, within {timeout:?}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

// ---- metrics ----

/// The metrics listener's address, from its log line.
fn metrics_addr(rw: &Ringway) -> SocketAddr {
    let line = rw.wait_for_log("metrics: serving", Duration::from_secs(10));
    field(&line, "addr")
        .expect("addr= in the metrics line")
        .parse()
        .expect("metrics addr")
}

fn scrape(maddr: SocketAddr) -> String {
    let (status, head, body) = get_once(maddr, "x", "/metrics", "");
    assert_eq!(status, 200, "{head}");
    body
}

/// The values of the series `name` whose labels include `labels`.
fn values(text: &str, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (n, lbls) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        if n != name {
            continue;
        }
        // Label values here (names, addresses, results) hold no quote or
        // comma.
        let have: Vec<(&str, &str)> = lbls
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.trim(), v.trim_matches('"')))
            .collect();
        if labels.iter().all(|l| have.contains(l)) {
            out.push(value.parse().unwrap_or(f64::NAN));
        }
    }
    out
}

/// The one value of `ringway_upstream_check_up` for `server` of
/// `upstream` (`None`: no series yet).
fn check_up(text: &str, upstream: &str, server: SocketAddr) -> Option<f64> {
    let s = server.to_string();
    let v = values(
        text,
        "ringway_upstream_check_up",
        &[("upstream", upstream), ("server", &s)],
    );
    assert!(
        v.len() <= 1,
        "several check_up series for {s}: {v:?}\n{text}"
    );
    v.first().copied()
}

/// `ringway_upstream_checks_total` for `server` of `upstream` and `result`.
fn checks(text: &str, upstream: &str, server: SocketAddr, result: &str) -> f64 {
    let s = server.to_string();
    values(
        text,
        "ringway_upstream_checks_total",
        &[("upstream", upstream), ("server", &s), ("result", result)],
    )
    .iter()
    .sum()
}

/// `ringway_tunnels_moved_total` of `upstream` for `reason` (0 when there
/// is no series).
fn moved(text: &str, upstream: &str, reason: &str) -> f64 {
    values(
        text,
        "ringway_tunnels_moved_total",
        &[("upstream", upstream), ("reason", reason)],
    )
    .iter()
    .sum()
}

/// Scrape until `ready` holds (bounded by [`SETTLE`]); the text.
fn scrape_until(maddr: SocketAddr, what: &str, ready: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + SETTLE;
    loop {
        let text = scrape(maddr);
        if ready(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "metrics never showed {what} within {SETTLE:?}:\n{text}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

// ---- clients ----

/// `GET /who` through ringway on a fresh connection: (status, body).
fn who(proxy: SocketAddr) -> (u16, String) {
    let (status, _, body) = get_once(proxy, "app", "/who", "");
    (status, body)
}

/// Ask who answers until 10 answers in a row are `200` from `want`
/// (bounded by `timeout`: the change may take a moment to reach every
/// worker), then check that 30 more are too.
fn only_from(proxy: SocketAddr, want: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let mut run = 0;
    let mut last = Vec::new();
    while run < 10 {
        assert!(
            Instant::now() < deadline,
            "answers never came only from {want} within {timeout:?}; the last: {last:?}"
        );
        let got = who(proxy);
        if got.0 == 200 && got.1 == want {
            run += 1;
        } else {
            run = 0;
        }
        last.push(got);
        if last.len() > 10 {
            last.remove(0);
        }
    }
    for i in 0..30 {
        assert_eq!(
            who(proxy),
            (200, want.to_string()),
            "answer {i} after they came only from {want}"
        );
    }
}

/// Ask who answers until `want` does (bounded); how many asks it took.
fn until_from(proxy: SocketAddr, want: &str, timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    for n in 1.. {
        let got = who(proxy);
        assert_eq!(got.0, 200, "{got:?}");
        if got.1 == want {
            return n;
        }
        assert!(
            Instant::now() < deadline,
            "{want} did not answer again within {timeout:?}"
        );
        // Pacing: the mark takes check intervals of 200 ms.
        thread::sleep(Duration::from_millis(10));
    }
    unreachable!()
}

type Ws = WebSocket<TcpStream>;

/// A WebSocket through ringway and the name of the backend it reached.
struct Tunnel {
    ws: Ws,
    on: String,
}

/// Open a tunnel at `path` and ask the backend its name (`who?`; the
/// harness's echo backend answers `who?`).
fn open_tunnel(proxy: SocketAddr, path: &str) -> Tunnel {
    let s = TcpStream::connect(proxy).expect("connect to ringway");
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut ws = ws_handshake(s, &format!("ws://app{path}"));
    ws.send(Message::text("who?")).unwrap();
    let on = match ws.read() {
        Ok(Message::Text(t)) => t.to_string(),
        other => panic!("{path}: no name from the backend: {other:?}"),
    };
    Tunnel { ws, on }
}

/// Send `text` and read its echo.
fn echo(ws: &mut Ws, text: &str) -> Result<(), String> {
    ws.send(Message::text(text))
        .map_err(|e| format!("send: {e}"))?;
    match ws.read() {
        Ok(Message::Text(t)) if t == text => Ok(()),
        other => Err(format!("instead of the echo: {other:?}")),
    }
}

/// The close code a tunnel receives next (bounded by its read timeout).
fn close_code(ws: &mut Ws) -> Result<u16, String> {
    match ws.read() {
        Ok(Message::Close(f)) => {
            let _ = ws.flush();
            Ok(f.map_or(1005, |f| u16::from(f.code)))
        }
        other => Err(format!("instead of a close frame: {other:?}")),
    }
}

/// What came on a tunnel while it was watched.
#[derive(Debug, Clone)]
enum Event {
    /// A close frame with this code (1005: none), and when.
    Close(u16, Instant),
    /// Anything else: a message, the stream's end, an error.
    Other(String),
}

/// What came, in words (`nothing` for `None`).
fn describe(e: &Option<Event>) -> String {
    match e {
        None => "nothing".into(),
        Some(Event::Close(code, _)) => format!("close {code}"),
        Some(Event::Other(what)) => what.clone(),
    }
}

/// Watch `tunnels` (poll(2) on their sockets, no blocking read) until
/// `done` holds for what came so far, or until `deadline`; the first
/// thing that came on each (`None`: nothing).
fn watch(
    tunnels: &mut [Tunnel],
    done: impl Fn(&[Tunnel], &[Option<Event>]) -> bool,
    deadline: Instant,
) -> Vec<Option<Event>> {
    let mut seen: Vec<Option<Event>> = vec![None; tunnels.len()];
    for t in tunnels.iter() {
        t.ws.get_ref().set_nonblocking(true).unwrap();
    }
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if done(tunnels, &seen) || left.is_zero() {
            break;
        }
        let idx: Vec<usize> = (0..tunnels.len()).filter(|&i| seen[i].is_none()).collect();
        let mut fds: Vec<libc::pollfd> = idx
            .iter()
            .map(|&i| libc::pollfd {
                fd: tunnels[i].ws.get_ref().as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let wait_ms = left.as_millis().clamp(1, 100) as i32;
        // SAFETY: `fds` is a valid array of pollfd for the call.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, wait_ms) };
        assert!(r >= 0, "poll: {}", std::io::Error::last_os_error());
        for (k, &i) in idx.iter().enumerate() {
            if fds[k].revents == 0 {
                continue;
            }
            let ws = &mut tunnels[i].ws;
            seen[i] = match ws.read() {
                Ok(Message::Close(f)) => {
                    // Send tungstenite's close reply.
                    let _ = ws.flush();
                    Some(Event::Close(
                        f.map_or(1005, |f| u16::from(f.code)),
                        Instant::now(),
                    ))
                }
                Ok(m) => Some(Event::Other(format!("message {m:?}"))),
                Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => None,
                Err(e) => Some(Event::Other(format!("{e}"))),
            };
        }
    }
    for t in tunnels.iter() {
        t.ws.get_ref().set_nonblocking(false).unwrap();
    }
    seen
}

// ---- tests ----

/// `type = "http"` with the default `expect_status` (2xx or 3xx): a 503
/// from A's `/health` marks A down after `fails` checks, every request
/// then goes to B; A's 200s mark it up after `passes`, and it answers
/// again. The metrics follow.
fn http_check_moves_requests_off_a_failing_server_and_back(d: Driver) {
    let a = Switch::start("A", Health::Ok);
    let b = Switch::start("B", Health::Ok);
    let rw = Ringway::start_with_runtime(
        &config(
            &[a.addr, b.addr],
            "",
            &check("chat", "http", "uri = \"/health\"\n"),
            "",
        ),
        d,
        // Two workers: the checker's verdict must reach both.
        "workers = 2\n",
    );
    let proxy = rw.addr("app");
    let maddr = metrics_addr(&rw);

    // Healthy: both are checked and both answer.
    scrape_until(maddr, "A and B checked up", |t| {
        check_up(t, "chat", a.addr) == Some(1.0)
            && check_up(t, "chat", b.addr) == Some(1.0)
            && checks(t, "chat", a.addr, "pass") >= 1.0
            && checks(t, "chat", b.addr, "pass") >= 1.0
    });
    assert!(a.passing() >= 1, "A's /health was never asked");
    let mut from = Vec::new();
    for _ in 0..20 {
        let (status, body) = who(proxy);
        assert_eq!(status, 200);
        from.push(body);
    }
    assert!(
        from.iter().any(|n| n == "A") && from.iter().any(|n| n == "B"),
        "both servers should answer while healthy: {from:?}"
    );

    // A fails its checks: marked down, only after `fails` failed checks.
    let failing_before = a.failing();
    assert_eq!(failing_before, 0);
    a.set_health(Health::Unavailable);
    wait_marked(&rw, "down", "chat", a.addr, 1);
    let failed = a.failing() - failing_before;
    assert!(
        failed >= FAILS,
        "A was marked down after {failed} failed checks, not {FAILS}"
    );
    only_from(proxy, "B", MARK_WITHIN);
    let text = scrape_until(maddr, "A's check_up 0", |t| {
        check_up(t, "chat", a.addr) == Some(0.0)
    });
    assert!(
        checks(&text, "chat", a.addr, "fail") >= FAILS as f64,
        "A's failed checks are not counted:\n{text}"
    );
    assert_eq!(check_up(&text, "chat", b.addr), Some(1.0), "{text}");
    let durations: f64 = values(&text, "ringway_upstream_check_duration_seconds_count", &[])
        .iter()
        .sum();
    assert!(
        durations >= 2.0,
        "ringway_upstream_check_duration_seconds counts no check:\n{text}"
    );
    assert_never_marked(&rw, "down", "chat", b.addr);

    // A passes again: marked up after `passes` passed checks, and used.
    let passing_before = a.passing();
    a.set_health(Health::Ok);
    wait_marked(&rw, "up", "chat", a.addr, 1);
    let passed = a.passing() - passing_before;
    assert!(
        passed >= PASSES,
        "A was marked up after {passed} passed checks, not {PASSES}"
    );
    until_from(proxy, "A", MARK_WITHIN);
    scrape_until(maddr, "A's check_up 1 again", |t| {
        check_up(t, "chat", a.addr) == Some(1.0)
    });
    assert_never_marked(&rw, "down", "chat", b.addr);
}

/// `expect_body`: a 200 whose body lacks the text fails the check (A
/// says `status: starting`); a body that holds it passes (B says
/// `status: ok`: a substring).
fn expect_body_marks_down_a_server_whose_body_lacks_it(d: Driver) {
    let a = Switch::start("A", Health::Starting);
    let b = Switch::start("B", Health::Ok);
    let rw = Ringway::start(
        &config(
            &[a.addr, b.addr],
            "",
            &check(
                "chat",
                "http",
                "uri = \"/health\"\nexpect_status = [200]\nexpect_body = \"ok\"\n",
            ),
            "",
        ),
        d,
    );
    let proxy = rw.addr("app");
    wait_marked(&rw, "down", "chat", a.addr, 1);
    // B has passed more checks than it would take to fail.
    wait_count("B's passed checks", || b.passing(), FAILS + 2, MARK_WITHIN);
    assert_never_marked(&rw, "down", "chat", b.addr);
    only_from(proxy, "B", MARK_WITHIN);

    // A's body says ok now: up again, and used.
    a.set_health(Health::Ok);
    wait_marked(&rw, "up", "chat", a.addr, 1);
    until_from(proxy, "A", MARK_WITHIN);
    assert_never_marked(&rw, "down", "chat", b.addr);
}

/// `type = "websocket"`: a server answering the upgrade with 200, and
/// one answering 101 with the Sec-WebSocket-Accept of RFC 6455's sample
/// key (what a checker that sends that fixed key would accept), are
/// marked down; real WebSocket servers stay up, see handshakes with
/// fresh keys on `uri`, and get a close frame 1000. Tunnels then reach
/// only the real ones.
fn websocket_check_needs_a_real_upgrade(d: Driver) {
    let good = Backend::start();
    let w = Switch::start("W", Health::Ok);
    let no_upgrade = answering_backend(|_| {
        (
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nno".into(),
            false,
        )
    });
    let sample_accept = tungstenite::handshake::derive_accept_key(b"dGhlIHNhbXBsZSBub25jZQ==");
    let wrong_accept = answering_backend(move |_| {
        (
            format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {sample_accept}\r\n\r\n"),
            true,
        )
    });
    let rw = Ringway::start(
        &config(
            &[good.addr, w.addr, no_upgrade, wrong_accept],
            "",
            &check("chat", "websocket", "uri = \"/ws-health\"\n"),
            "",
        ),
        d,
    );
    let proxy = rw.addr("app");
    wait_marked(&rw, "down", "chat", no_upgrade, 1);
    wait_marked(&rw, "down", "chat", wrong_accept, 1);

    // The real ones were checked more often than it takes to fail, and
    // each check closed with 1000.
    let checked = || {
        good.requests()
            .iter()
            .filter(|r| r.path == "/ws-health")
            .count()
    };
    wait_count("the echo backend's checks", checked, FAILS + 2, MARK_WITHIN);
    wait_count(
        "W's check closes",
        || w.st.check_closes.lock().unwrap().len(),
        FAILS + 2,
        MARK_WITHIN,
    );
    assert_never_marked(&rw, "down", "chat", good.addr);
    assert_never_marked(&rw, "down", "chat", w.addr);
    let codes = w.st.check_closes.lock().unwrap().clone();
    assert!(
        codes
            .iter()
            .all(|(path, c)| path == "/ws-health" && *c == 1000),
        "the checks' close codes: {codes:?}"
    );
    let handshakes: Vec<SeenRequest> = good
        .requests()
        .into_iter()
        .filter(|r| r.path == "/ws-health")
        .collect();
    let mut keys: Vec<&str> = handshakes
        .iter()
        .map(|r| r.header("sec-websocket-key").expect("a Sec-WebSocket-Key"))
        .collect();
    for r in &handshakes {
        assert_eq!(r.header("sec-websocket-version"), Some("13"), "{r:?}");
    }
    let n = keys.len();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), n, "the checks reused a Sec-WebSocket-Key");

    // Tunnels go only to the two that are up: each is a working echo.
    let mut on = Vec::new();
    for i in 0..8 {
        let mut t = open_tunnel(proxy, &format!("/ws/t{i}"));
        echo(&mut t.ws, "hello").unwrap();
        close_websocket(&mut t.ws);
        on.push(t.on);
    }
    // The harness's echo backend echoes `who?`; W names itself.
    assert!(
        on.iter().all(|n| n == "who?" || n == "W"),
        "tunnels reached: {on:?}"
    );
    assert!(
        on.iter().any(|n| n == "who?") && on.iter().any(|n| n == "W"),
        "tunnels should reach both live servers: {on:?}"
    );
    let text = scrape(metrics_addr(&rw));
    assert_eq!(check_up(&text, "chat", no_upgrade), Some(0.0), "{text}");
    assert_eq!(check_up(&text, "chat", wrong_accept), Some(0.0), "{text}");
    assert_eq!(check_up(&text, "chat", good.addr), Some(1.0), "{text}");
    assert_eq!(check_up(&text, "chat", w.addr), Some(1.0), "{text}");
}

/// `type = "tcp"`: a refused address is marked down and gets no request
/// afterwards (no passive health, no next upstream: one that went there
/// would be a 502); a group whose servers are all down answers 502 and
/// logs `no live upstream server`.
fn tcp_check_marks_a_refused_server_down_and_an_all_down_group_answers_502(d: Driver) {
    let refused = refused_addr();
    let b = Switch::start("B", Health::Ok);
    let (dead1, dead2) = (refused_addr(), refused_addr());
    let more = format!(
        r#"[servers.app.locations."/dead/"]
proxy_pass = "http://dead"
proxy_next_upstream = ["off"]

[upstreams.dead]
servers = [{}]
max_fails = 0
{}
"#,
        servers_list(&[dead1, dead2]),
        check("dead", "tcp", "")
    );
    let rw = Ringway::start(
        &config(&[refused, b.addr], "", &check("chat", "tcp", ""), &more),
        d,
    );
    let proxy = rw.addr("app");
    let maddr = metrics_addr(&rw);
    wait_marked(&rw, "down", "chat", refused, 1);
    only_from(proxy, "B", MARK_WITHIN);
    let text = scrape_until(maddr, "the refused server's check_up 0", |t| {
        check_up(t, "chat", refused) == Some(0.0)
    });
    assert!(
        checks(&text, "chat", refused, "fail") >= FAILS as f64,
        "{text}"
    );
    assert_eq!(check_up(&text, "chat", b.addr), Some(1.0), "{text}");
    assert!(checks(&text, "chat", b.addr, "pass") >= 1.0, "{text}");
    assert_never_marked(&rw, "down", "chat", b.addr);

    // Every server of `dead` is down: 502, and the log says why.
    wait_marked(&rw, "down", "dead", dead1, 1);
    wait_marked(&rw, "down", "dead", dead2, 1);
    let (status, head, _) = get_once(proxy, "app", "/dead/x", "");
    assert_eq!(status, 502, "{head}");
    rw.wait_for_log("no live upstream server", Duration::from_secs(5));
    // `chat` still answers from B.
    assert_eq!(who(proxy), (200, "B".to_string()));
}

/// Runtime lines of the tunnel tests: closes spread over 2 s.
const SPREAD_2S: &str = "drain_spread = \"2s\"\nshutdown_timeout = \"10s\"\n";
/// Tunnels of [`on_down_close_moves_the_tunnels_of_a_server_marked_down`]
/// and the client threads that hold them.
const TUNNELS: usize = 500;
const CLIENT_THREADS: usize = 5;

/// `on_down = "close"`: 500 tunnels over A and B; A's health fails. Every
/// tunnel on A gets a close frame 1001 (its upstream side too), spread
/// over `drain_spread`; none on B hears anything and each still echoes;
/// every client of A reconnects and lands on B.
fn on_down_close_moves_the_tunnels_of_a_server_marked_down(d: Driver) {
    let a = Switch::start("A", Health::Ok);
    let b = Switch::start("B", Health::Ok);
    let rw = Ringway::start_with_runtime(
        &config(
            &[a.addr, b.addr],
            "on_down = \"close\"\n",
            &check("chat", "http", "uri = \"/health\"\n"),
            "",
        ),
        d,
        &format!("workers = 2\n{SPREAD_2S}"),
    );
    let proxy = rw.addr("app");
    let maddr = metrics_addr(&rw);

    // Open the tunnels from several threads.
    let per = TUNNELS / CLIENT_THREADS;
    let openers: Vec<_> = (0..CLIENT_THREADS)
        .map(|c| {
            thread::spawn(move || {
                (0..per)
                    .map(|i| open_tunnel(proxy, &format!("/ws/{c}-{i}")))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let groups: Vec<Vec<Tunnel>> = openers.into_iter().map(|h| h.join().unwrap()).collect();
    let on_a = groups.iter().flatten().filter(|t| t.on == "A").count();
    let on_b = groups.iter().flatten().filter(|t| t.on == "B").count();
    assert_eq!(on_a + on_b, TUNNELS);
    assert!(
        on_a >= 100 && on_b >= 100,
        "round robin put {on_a} tunnels on A, {on_b} on B"
    );
    assert_eq!(a.live_tunnels(), on_a);

    // Fail A; watch every tunnel until each of A's has closed.
    let switched = Instant::now();
    a.set_health(Health::Unavailable);
    let deadline = switched + Duration::from_secs(20);
    let watchers: Vec<_> = groups
        .into_iter()
        .enumerate()
        .map(|(c, mut tunnels)| {
            thread::spawn(move || {
                let seen = watch(
                    &mut tunnels,
                    |ts, seen| ts.iter().zip(seen).all(|(t, s)| t.on != "A" || s.is_some()),
                    deadline,
                );
                // Each client of A reconnects.
                let again: Vec<String> = tunnels
                    .iter()
                    .zip(&seen)
                    .enumerate()
                    .filter(|(_, (t, s))| t.on == "A" && matches!(s, Some(Event::Close(..))))
                    .map(|(i, _)| {
                        let mut t = open_tunnel(proxy, &format!("/ws/again-{c}-{i}"));
                        let r = echo(&mut t.ws, "again").map(|()| t.on.clone());
                        close_websocket(&mut t.ws);
                        r.unwrap_or_else(|e| format!("no echo: {e}"))
                    })
                    .collect();
                (tunnels, seen, again)
            })
        })
        .collect();
    let mut tunnels = Vec::new();
    let mut seen = Vec::new();
    let mut again = Vec::new();
    for w in watchers {
        let (t, s, a) = w.join().unwrap();
        tunnels.extend(t);
        seen.extend(s);
        again.extend(a);
    }

    // A's tunnels: all closed with 1001; B's: nothing came.
    let mut wrong = Vec::new();
    let mut times = Vec::new();
    for (i, (t, s)) in tunnels.iter().zip(&seen).enumerate() {
        match (t.on.as_str(), s) {
            ("A", Some(Event::Close(1001, at))) => times.push(at.duration_since(switched)),
            ("B", None) => {}
            (on, s) => wrong.push(format!("tunnel {i} on {on}: {}", describe(s))),
        }
    }
    assert!(
        wrong.is_empty(),
        "{} tunnels went wrong (A's should close with 1001, B's hear nothing):\n{}",
        wrong.len(),
        wrong
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    let first = times.iter().min().unwrap().as_secs_f64();
    let last = times.iter().max().unwrap().as_secs_f64();
    assert!(
        last - first >= 1.0,
        "closes not spread over drain_spread: first {first:.3} s, last {last:.3} s after A's health failed"
    );
    rw.wait_for_log(
        "closing tunnels of a server marked down",
        Duration::from_secs(5),
    );
    wait_marked(&rw, "down", "chat", a.addr, 1);

    // Every client of A came back on B.
    assert_eq!(again.len(), on_a);
    let elsewhere: Vec<&String> = again.iter().filter(|n| *n != "B").collect();
    assert!(
        elsewhere.is_empty(),
        "{} reconnections did not land on B: {:?}",
        elsewhere.len(),
        elsewhere.iter().take(10).collect::<Vec<_>>()
    );

    // B's tunnels still carry messages.
    for (i, t) in tunnels.iter_mut().enumerate().filter(|(_, t)| t.on == "B") {
        echo(&mut t.ws, "still here").unwrap_or_else(|e| panic!("B's tunnel {i}: {e}"));
    }

    // A's upstream side got its close 1001 too, and no tunnel is left
    // on A.
    wait_count(
        "close frames at A",
        || a.st.tunnel_closes.lock().unwrap().len(),
        on_a,
        SETTLE,
    );
    let codes = a.st.tunnel_closes.lock().unwrap().clone();
    assert!(
        codes.iter().all(|(_, c)| *c == 1001),
        "A's close codes: {codes:?}"
    );
    wait_count(
        "A's tunnels closed",
        || on_a.saturating_sub(a.live_tunnels()),
        on_a,
        SETTLE,
    );
    // (The reconnected clients closed theirs, on `/ws/again-…`.)
    let b_closed: Vec<(String, u16)> =
        b.st.tunnel_closes
            .lock()
            .unwrap()
            .iter()
            .filter(|(path, _)| !path.starts_with("/ws/again-"))
            .cloned()
            .collect();
    assert!(
        b_closed.is_empty(),
        "tunnels on B were closed: {b_closed:?}"
    );
    scrape_until(maddr, "the moved tunnels", |t| {
        moved(t, "chat", "down") == on_a as f64
    });
    drop(tunnels);
}

/// The group `chat` of `servers` with `extra` lines (`on_remove`), no
/// health check.
fn removal_config(servers: &[SocketAddr], extra: &str) -> String {
    config(servers, extra, "", "")
}

/// Tunnels over A and B, then a reload whose group has only B; the
/// tunnels and which backend each reached.
fn tunnels_then_remove_a(
    rw: &Ringway,
    a: &Switch,
    b: &Switch,
    extra: &str,
) -> (Vec<Tunnel>, usize) {
    let proxy = rw.addr("app");
    let tunnels: Vec<Tunnel> = (0..10)
        .map(|i| open_tunnel(proxy, &format!("/ws/{i}")))
        .collect();
    let on_a = tunnels.iter().filter(|t| t.on == a.name).count();
    let on_b = tunnels.iter().filter(|t| t.on == b.name).count();
    assert!(on_a >= 2 && on_b >= 2, "{on_a} tunnels on A, {on_b} on B");
    rw.reload(&removal_config(&[b.addr], extra), 1);
    // New tunnels go to B alone.
    for i in 0..4 {
        let mut t = open_tunnel(proxy, &format!("/ws/after-{i}"));
        assert_eq!(t.on, b.name, "a tunnel opened after the reload");
        close_websocket(&mut t.ws);
    }
    (tunnels, on_a)
}

/// `on_remove = "close"`: a reload removes A from the group; A's tunnels
/// get a close frame 1001, B's stay and echo.
fn on_remove_close_closes_the_tunnels_of_a_removed_server(d: Driver) {
    let a = Switch::start("A", Health::Ok);
    let b = Switch::start("B", Health::Ok);
    let extra = "on_remove = \"close\"\n";
    let rw = Ringway::start_with_runtime(
        &removal_config(&[a.addr, b.addr], extra),
        d,
        "drain_spread = \"500ms\"\nshutdown_timeout = \"10s\"\n",
    );
    let maddr = metrics_addr(&rw);
    let (mut tunnels, on_a) = tunnels_then_remove_a(&rw, &a, &b, extra);
    for (i, t) in tunnels.iter_mut().enumerate() {
        if t.on == "A" {
            assert_eq!(close_code(&mut t.ws), Ok(1001), "A's tunnel {i}");
        }
    }
    for (i, t) in tunnels.iter_mut().enumerate() {
        if t.on == "B" {
            echo(&mut t.ws, "still here").unwrap_or_else(|e| panic!("B's tunnel {i}: {e}"));
        }
    }
    rw.wait_for_log(
        "closing tunnels of a removed server",
        Duration::from_secs(5),
    );
    wait_count(
        "A's tunnels closed",
        || on_a.saturating_sub(a.live_tunnels()),
        on_a,
        SETTLE,
    );
    let text = scrape_until(maddr, "the moved tunnels", |t| {
        moved(t, "chat", "removed") == on_a as f64
    });
    assert_eq!(moved(&text, "chat", "down"), 0.0, "{text}");
    for (i, t) in tunnels.iter_mut().enumerate() {
        if t.on == "B" {
            echo(&mut t.ws, "and after").unwrap_or_else(|e| panic!("B's tunnel {i}: {e}"));
            close_websocket(&mut t.ws);
        }
    }
}

/// Without `on_remove` (`"keep"`): a reload removes A from the group,
/// and A's tunnels stay open and echo.
fn on_remove_keep_is_the_default_and_keeps_them(d: Driver) {
    let a = Switch::start("A", Health::Ok);
    let b = Switch::start("B", Health::Ok);
    let rw = Ringway::start_with_runtime(
        &removal_config(&[a.addr, b.addr], ""),
        d,
        "drain_spread = \"500ms\"\nshutdown_timeout = \"10s\"\n",
    );
    let maddr = metrics_addr(&rw);
    let (mut tunnels, on_a) = tunnels_then_remove_a(&rw, &a, &b, "");
    // Nothing comes on any tunnel for three times drain_spread.
    let seen = watch(
        &mut tunnels,
        |_, _| false,
        Instant::now() + Duration::from_millis(1500),
    );
    let heard: Vec<_> = tunnels
        .iter()
        .zip(&seen)
        .filter(|(_, s)| s.is_some())
        .map(|(t, s)| format!("{}: {}", t.on, describe(s)))
        .collect();
    assert!(heard.is_empty(), "kept tunnels heard: {heard:?}");
    for (i, t) in tunnels.iter_mut().enumerate() {
        echo(&mut t.ws, "still here").unwrap_or_else(|e| panic!("tunnel {i} on {}: {e}", t.on));
    }
    assert_eq!(a.live_tunnels(), on_a);
    assert!(a.st.tunnel_closes.lock().unwrap().is_empty());
    assert!(
        !rw.logs().contains("closing tunnels of a removed server"),
        "{}",
        rw.logs()
    );
    let text = scrape(maddr);
    assert_eq!(moved(&text, "chat", "removed"), 0.0, "{text}");
    for t in tunnels.iter_mut() {
        close_websocket(&mut t.ws);
    }
}
