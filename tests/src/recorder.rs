//! A recording, lenient HTTP/1.1 backend: it keeps every byte each
//! connection brought, parses requests the way a permissive server does
//! (`http1::Mode::Lenient`) and answers each one it finds, so a request
//! smuggled past the proxy is served — and recorded — as it would be in
//! production.
//!
//! What it answers depends on the request target's last segment:
//!
//! - upgrade requests (any `Upgrade` field, whether or not `Connection`
//!   names it, as an h2c-capable server such as Hypercorn does):
//!   `.../refuse` gets `426` on a kept-alive connection; `.../proto-NAME`
//!   gets a `101` naming `Upgrade: NAME` (a protocol the request may not
//!   have asked for); a request whose `Upgrade` values hold the token
//!   `h2c` (any case) gets `101` with `Upgrade: h2c`; others get a
//!   WebSocket `101`. After a `101` the connection echoes raw bytes;
//! - `.../switch`: `101` to a plain request (an upstream out of step), then
//!   it records whatever else arrives on that connection;
//! - `.../conn-cl`: a `200` whose `Connection` names `Content-Length`;
//! - `.../interim`: `100 Continue` then `200`;
//! - `.../extra`: a `200` followed by bytes that belong to no response;
//! - `.../hang`: no answer at all (the connection stays open);
//! - `.../big-N`: a `200` with an N-byte body (`X-Accel-Buffering: no` too
//!   for `.../big-nobuf-N`);
//! - `.../early`: a `200` as soon as the head is in, before the body (an
//!   upstream that answers without reading the whole request);
//! - anything else: `200` with the body "METHOD target body=N".
//!
//! Every wait on it is bounded.
//!
//! A lean recorder (`start_lean`, for long soaks) keeps no bytes and no
//! requests: it counts them, and keeps the targets that do not start with
//! the prefix the traffic is known to use (what a smuggled request would
//! show up as).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::http1::{parse_one, Mode, Parsed};

/// What one accepted connection brought.
#[derive(Debug, Clone, Default)]
pub struct ConnRecord {
    /// Every byte received, in order.
    pub raw: Vec<u8>,
    /// The requests parsed (leniently) and answered.
    pub requests: Vec<Parsed>,
    /// Bytes received after the connection switched protocols.
    pub after_switch: Vec<u8>,
    pub switched: bool,
    /// Answers sent before the request's body was complete (`.../early`).
    pub early_answers: usize,
    /// Answers written whole (the write returned).
    pub answers_written: usize,
    /// Requests parsed and answered (lean or not).
    pub served: usize,
    /// Lean recorders: targets outside the expected prefix.
    pub unexpected: Vec<String>,
    /// The peer closed (or reset) the connection.
    pub closed: bool,
}

#[derive(Default)]
struct State {
    conns: Mutex<Vec<ConnRecord>>,
    cv: Condvar,
    /// Lean: the only expected target prefix; nothing else is kept.
    lean: Option<&'static str>,
}

impl State {
    fn update(&self, i: usize, f: impl FnOnce(&mut ConnRecord)) {
        f(&mut self.conns.lock().unwrap()[i]);
        self.cv.notify_all();
    }
}

pub struct Recorder {
    pub addr: SocketAddr,
    state: Arc<State>,
}

impl Recorder {
    pub fn start() -> Recorder {
        Self::start_with(None)
    }

    /// A recorder that keeps counts and unexpected targets only (see the
    /// module doc).
    pub fn start_lean(expected_prefix: &'static str) -> Recorder {
        Self::start_with(Some(expected_prefix))
    }

    fn start_with(lean: Option<&'static str>) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind recorder");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            lean,
            ..State::default()
        });
        let st = state.clone();
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let i = {
                    let mut conns = st.conns.lock().unwrap();
                    conns.push(ConnRecord::default());
                    conns.len() - 1
                };
                st.cv.notify_all();
                let st = st.clone();
                thread::spawn(move || serve(conn, &st, i));
            }
        });
        Recorder { addr, state }
    }

    pub fn conns(&self) -> Vec<ConnRecord> {
        self.state.conns.lock().unwrap().clone()
    }

    /// Every request served, over all connections, in connection order.
    pub fn requests(&self) -> Vec<Parsed> {
        self.conns().into_iter().flat_map(|c| c.requests).collect()
    }

    /// Wait (bounded) until `pred` holds for the connections; returns them.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&[ConnRecord]) -> bool,
    ) -> Vec<ConnRecord> {
        let deadline = Instant::now() + timeout;
        let mut conns = self.state.conns.lock().unwrap();
        loop {
            if pred(&conns) {
                return conns.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "recorder: no {what} within {timeout:?}; connections: {conns:#?}"
            );
            conns = self.state.cv.wait_timeout(conns, left).unwrap().0;
        }
    }

    /// Wait (bounded) until every connection the backend accepted is
    /// closed; returns them.
    pub fn wait_all_closed(&self, timeout: Duration) -> Vec<ConnRecord> {
        self.wait_for("close of every connection", timeout, |c| {
            c.iter().all(|c| c.closed)
        })
    }
}

fn last_segment(target: &str) -> &str {
    let path = target.split('?').next().unwrap_or("");
    path.rsplit('/').next().unwrap_or("")
}

fn serve(mut conn: TcpStream, st: &State, i: usize) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(60)));
    let mut buf: Vec<u8> = Vec::new();
    let mut tmp = [0u8; 16384];
    let mut switched = false;
    // After a 101 to an upgrade request the connection echoes.
    let mut echo = false;
    let mut answered_early = false;
    loop {
        let n = match conn.read(&mut tmp) {
            Ok(0) | Err(_) => {
                st.update(i, |c| c.closed = true);
                return;
            }
            Ok(n) => n,
        };
        let bytes = &tmp[..n];
        if st.lean.is_none() {
            st.update(i, |c| {
                c.raw.extend_from_slice(bytes);
                if switched {
                    c.after_switch.extend_from_slice(bytes);
                }
            });
        }
        if switched {
            if echo {
                let _ = conn.write_all(bytes);
            }
            continue;
        }
        buf.extend_from_slice(bytes);
        loop {
            let (req, used) = match parse_one(&buf, Mode::Lenient) {
                Ok(Some(x)) => x,
                Ok(None) => {
                    let head_in = buf.windows(4).any(|w| w == b"\r\n\r\n");
                    let line = buf.split(|&b| b == b'\n').next().unwrap_or(b"");
                    if head_in && !answered_early && line.windows(7).any(|w| w == b"/early ") {
                        answered_early = true;
                        let _ =
                            conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nearly");
                        st.update(i, |c| c.early_answers += 1);
                    }
                    break;
                }
                Err(e) => {
                    let msg = format!("lenient parse error: {e}");
                    let _ = conn.write_all(
                        format!(
                            "HTTP/1.1 400 Bad Request\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{msg}",
                            msg.len()
                        )
                        .as_bytes(),
                    );
                    let _ = conn.shutdown(std::net::Shutdown::Write);
                    buf.clear();
                    break;
                }
            };
            buf.drain(..used);
            let close = req
                .header("connection")
                .is_some_and(|v| v.eq_ignore_ascii_case("close"));
            let upgrade = req.header("upgrade").is_some();
            let last = last_segment(&req.target).to_string();
            let answer = if last == "early" && std::mem::take(&mut answered_early) {
                None
            } else {
                answer(&req, upgrade, &last)
            };
            st.update(i, |c| {
                c.served += 1;
                match st.lean {
                    None => c.requests.push(req),
                    Some(prefix) if !req.target.starts_with(prefix) => {
                        c.unexpected.push(req.line())
                    }
                    Some(_) => {}
                }
            });
            let answered = answer.is_some();
            if let Some(a) = answer {
                if conn.write_all(&a).is_err() {
                    break;
                }
                st.update(i, |c| c.answers_written += 1);
            }
            if (upgrade && last != "refuse") || last == "switch" {
                switched = true;
                echo = upgrade;
                st.update(i, |c| {
                    c.switched = true;
                    // Bytes already read behind the request came after it.
                    c.after_switch.extend_from_slice(&buf);
                });
                if upgrade {
                    let _ = conn.write_all(&buf);
                }
                buf.clear();
                break;
            }
            if close && answered {
                let _ = conn.shutdown(std::net::Shutdown::Write);
            }
        }
    }
}

fn answer(req: &Parsed, upgrade: bool, last: &str) -> Option<Vec<u8>> {
    let text = |status: &str, extra: &str, body: &str| {
        format!(
            "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    };
    if upgrade {
        return Some(if last == "refuse" {
            text("426 Upgrade Required", "", "upgrade refused")
        } else if let Some(proto) = last.strip_prefix("proto-") {
            format!("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: {proto}\r\n\r\n")
                .into_bytes()
        } else if asks_for_h2c(req) {
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
                .to_vec()
        } else {
            let key = req.header("sec-websocket-key").unwrap_or("");
            let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
            format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n").into_bytes()
        });
    }
    Some(match last {
        "switch" => {
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
                .to_vec()
        }
        "conn-cl" => {
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: Content-Length\r\n\r\nhello"
                .to_vec()
        }
        "interim" => {
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec()
        }
        "extra" => b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA".to_vec(),
        "hang" => return None,
        big if big.starts_with("big-") => {
            let (n, extra) = match big.strip_prefix("big-nobuf-") {
                Some(n) => (n, "X-Accel-Buffering: no\r\n"),
                None => (&big[4..], ""),
            };
            let n: usize = n.parse().unwrap_or(0);
            let mut out =
                format!("HTTP/1.1 200 OK\r\n{extra}Content-Length: {n}\r\n\r\n").into_bytes();
            out.extend((0..n).map(|i| b'a' + (i % 26) as u8));
            out
        }
        _ => text(
            "200 OK",
            "Content-Type: text/plain\r\n",
            &format!("{} {} body={}", req.method, req.target, req.body.len()),
        ),
    })
}

/// Whether any `Upgrade` field of `req` lists the protocol `h2c` (any
/// case): what an h2c-capable server upgrades on, `Connection` or not.
fn asks_for_h2c(req: &Parsed) -> bool {
    req.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("upgrade"))
        .flat_map(|(_, v)| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case("h2c"))
}
