//! A backend that names itself and whose health a test switches while
//! ringway (or HAProxy) runs, for the health-check, DNS-discovery and
//! rebalance tests: `GET /health` answers by its [`Health`], any other
//! request with its name, and a WebSocket answers the text `who?` with
//! its name and echoes the rest. It counts what the checks and the
//! tunnels did: checks passed and failed, plain requests, live tunnels,
//! the close frames it received and how each WebSocket ended. With the
//! clients that ask who answers ([`who`], [`only_from`], [`until_each`])
//! and a bounded wait on a count ([`wait_count`]).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tungstenite::protocol::Role;
use tungstenite::{Message, WebSocket};

use crate::tunnel::ended;
use crate::{get_once, seen_head, ws_config, SeenRequest};

/// What a [`Switch`] answers to `GET /health`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Health {
    /// `200` with body `status: ok`.
    Ok = 0,
    /// `200` with body `status: starting` (passes a status check, fails
    /// `expect_body = "ok"`).
    Starting = 1,
    /// `503` with body `unavailable`.
    Unavailable = 2,
}

#[derive(Default)]
struct State {
    health: AtomicU8,
    /// `/health` answers given in [`Health::Ok`].
    passing: AtomicUsize,
    /// `/health` answers given in any other mode.
    failing: AtomicUsize,
    /// Plain requests to any other path.
    requests: AtomicUsize,
    /// WebSocket connections on `/ws/…` (tunnels through a proxy) open now.
    live_tunnels: AtomicUsize,
    /// Close codes received on tunnels, with the tunnel's path (1005: a
    /// close frame without one).
    tunnel_closes: Mutex<Vec<(String, u16)>>,
    /// Close codes received on WebSocket upgrades on any other path
    /// (websocket health checks), with the path.
    check_closes: Mutex<Vec<(String, u16)>>,
    /// How each WebSocket ended here, with its path: `close CODE` (the
    /// first close frame), or the error a send or read gave first.
    ends: Mutex<Vec<(String, String)>>,
}

/// An HTTP/1.1 backend named `name` (a thread per connection, with a
/// small stack: thousands may be open; keep-alive): `GET /health` answers
/// by its switchable [`Health`]; any other path answers `200` with its
/// name as the body; an upgrade is a WebSocket that answers the text
/// `who?` with its name and echoes everything else.
pub struct Switch {
    pub name: &'static str,
    pub addr: SocketAddr,
    st: Arc<State>,
}

impl Switch {
    /// Listen on a free port of 127.0.0.1, answering `/health` by `health`.
    pub fn start(name: &'static str, health: Health) -> Switch {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind switch backend");
        Switch::on(name, listener, health)
    }

    /// Serve on `listener`, answering `/health` by `health`.
    pub fn on(name: &'static str, listener: TcpListener, health: Health) -> Switch {
        let addr = listener.local_addr().unwrap();
        let st = Arc::new(State::default());
        st.health.store(health as u8, Ordering::SeqCst);
        let st2 = st.clone();
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let st = st2.clone();
                // Thousands of these at once: a small stack each.
                let spawned = thread::Builder::new()
                    .stack_size(256 * 1024)
                    .spawn(move || {
                        let _ = serve(conn, name, &st);
                    });
                if spawned.is_err() {
                    eprintln!("backend {name}: cannot start a connection thread");
                }
            }
        });
        Switch { name, addr, st }
    }

    pub fn set_health(&self, h: Health) {
        self.st.health.store(h as u8, Ordering::SeqCst);
    }

    /// `/health` answers given while [`Health::Ok`].
    pub fn passing(&self) -> usize {
        self.st.passing.load(Ordering::SeqCst)
    }

    /// `/health` answers given otherwise.
    pub fn failing(&self) -> usize {
        self.st.failing.load(Ordering::SeqCst)
    }

    /// Plain requests answered (not `/health`).
    pub fn requests(&self) -> usize {
        self.st.requests.load(Ordering::SeqCst)
    }

    /// Tunnels (WebSockets on `/ws/…`) open now.
    pub fn live_tunnels(&self) -> usize {
        self.st.live_tunnels.load(Ordering::SeqCst)
    }

    /// The close frames received on tunnels: (path, code).
    pub fn tunnel_closes(&self) -> Vec<(String, u16)> {
        self.st.tunnel_closes.lock().unwrap().clone()
    }

    /// The close frames received on health-check WebSockets: (path, code).
    pub fn check_closes(&self) -> Vec<(String, u16)> {
        self.st.check_closes.lock().unwrap().clone()
    }

    /// How the WebSockets whose path starts with `prefix` ended here.
    pub fn ends_of(&self, prefix: &str) -> Vec<String> {
        self.st
            .ends
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p.starts_with(prefix))
            .map(|(_, e)| e.clone())
            .collect()
    }

    /// Assert that no tunnel here received a close frame, but those whose
    /// path starts with `but` (the clients' own, closed by the test).
    pub fn assert_no_tunnel_closes(&self, but: &str) {
        let closed: Vec<(String, u16)> = self
            .tunnel_closes()
            .into_iter()
            .filter(|(path, _)| !path.starts_with(but))
            .collect();
        assert!(
            closed.is_empty(),
            "tunnels on {} were closed: {closed:?}",
            self.name
        );
    }

    /// The upstream side of the `n` tunnels a proxy moved off this
    /// backend: wait (bounded by `timeout`) for their `n` close frames,
    /// assert each was 1001, and wait until none is open here.
    pub fn assert_tunnels_closed_1001(&self, n: usize, timeout: Duration) {
        wait_count(
            &format!("close frames at {}", self.name),
            || self.st.tunnel_closes.lock().unwrap().len(),
            n,
            timeout,
        );
        let closes = self.tunnel_closes();
        assert!(
            closes.iter().all(|(_, c)| *c == 1001),
            "{}'s close codes: {closes:?}",
            self.name
        );
        wait_count(
            &format!("{}'s tunnels closed", self.name),
            || n.saturating_sub(self.live_tunnels()),
            n,
            timeout,
        );
    }
}

fn serve(mut conn: TcpStream, name: &'static str, st: &State) -> std::io::Result<()> {
    // Longer than any test here: a timeout would end a tunnel.
    conn.set_read_timeout(Some(Duration::from_secs(180)))?;
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
            return serve_ws(conn, buf, &req, name, st);
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
        // HAProxy's checks are HTTP/1.0 without keep-alive: it closes.
        if req
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
        {
            return Ok(());
        }
    }
}

fn serve_ws(
    mut conn: TcpStream,
    rest: Vec<u8>,
    req: &SeenRequest,
    name: &'static str,
    st: &State,
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
        (None, &st.check_closes)
    };
    let mut ws = WebSocket::from_partially_read(conn, rest, Role::Server, Some(ws_config()));
    let mut end: Option<String> = None;
    loop {
        let answer = match ws.read() {
            Ok(Message::Text(t)) if t == "who?" => Message::text(name),
            Ok(m @ (Message::Text(_) | Message::Binary(_))) => m,
            Ok(Message::Close(f)) => {
                let code = f.map_or(1005, |f| u16::from(f.code));
                closes.lock().unwrap().push((req.path.clone(), code));
                end.get_or_insert(format!("close {code}"));
                // tungstenite queued the close reply; send it.
                let _ = ws.flush();
                continue;
            }
            Ok(_) => continue,
            Err(e) => {
                end.get_or_insert(ended(&e));
                break;
            }
        };
        if let Err(e) = ws.send(answer) {
            end.get_or_insert(format!("send: {e}"));
            break;
        }
    }
    st.ends
        .lock()
        .unwrap()
        .push((req.path.clone(), end.unwrap_or_default()));
    if let Some(live) = live {
        live.fetch_sub(1, Ordering::SeqCst);
    }
    Ok(())
}

/// `GET path` through `proxy` on a fresh connection (Host `app`):
/// (status, body: the name of the backend that answered).
pub fn who_at(proxy: SocketAddr, path: &str) -> (u16, String) {
    let (status, _, body) = get_once(proxy, "app", path, "");
    (status, body)
}

/// [`who_at`] `/who`.
pub fn who(proxy: SocketAddr) -> (u16, String) {
    who_at(proxy, "/who")
}

/// Ask who answers until 10 answers in a row are `200` from `want`
/// (bounded by `timeout`: the change may take a moment to reach every
/// worker), then check that 30 more are too.
pub fn only_from(proxy: SocketAddr, want: &str, timeout: Duration) {
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

/// Ask who answers until each of `want` has (bounded by `timeout`; every
/// answer must be a 200 from one of `allowed`); how many asks it took.
pub fn until_each(proxy: SocketAddr, want: &[&str], allowed: &[&str], timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    let mut seen: Vec<String> = Vec::new();
    for n in 1.. {
        let got = who(proxy);
        assert!(
            got.0 == 200 && allowed.contains(&got.1.as_str()),
            "answer {n}: {got:?}, not a 200 from one of {allowed:?}"
        );
        if !seen.contains(&got.1) {
            seen.push(got.1);
        }
        if want.iter().all(|w| seen.iter().any(|s| s == w)) {
            return n;
        }
        assert!(
            Instant::now() < deadline,
            "not every one of {want:?} answered within {timeout:?}: only {seen:?}"
        );
        // Pacing: a change (a health mark, a resolver's table) reaches
        // the workers between requests.
        thread::sleep(Duration::from_millis(10));
    }
    unreachable!()
}

/// Wait (bounded by `timeout`) until `count` reaches `n`.
pub fn wait_count(what: &str, count: impl Fn() -> usize, n: usize, timeout: Duration) {
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
        // Pacing for a poll of a counter with a deadline.
        thread::sleep(Duration::from_millis(20));
    }
}
