//! The metrics listener: one named std thread ("ringway-metrics") with
//! blocking sockets, one connection at a time (scrapes are rare). It reads
//! a request head (at most [`MAX_HEAD`] bytes within [`HEAD_TIMEOUT`]),
//! answers `GET`/`HEAD /metrics` (Prometheus text) and `/status` (JSON),
//! 404 for other paths, 405 for other methods (RFC 9110 section 15.5.6),
//! 400 for what does not parse, 431 for a head over the cap, and closes.
//! A client that stalls is dropped at the deadline, so it holds the next
//! scrape back by [`HEAD_TIMEOUT`] at most (and a reader that does not
//! read by [`WRITE_TIMEOUT`] per write).

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::encode::{encode_json, encode_prometheus, PROMETHEUS_CONTENT_TYPE};
use super::series::WorkerSnapshot;
use super::Process;

/// The whole request head must arrive within this.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Each write of the answer must progress within this.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest request head read.
pub const MAX_HEAD: usize = 8 * 1024;
/// The most headers a head may have.
const MAX_HEADERS: usize = 64;
/// The pause after a failed accept (EMFILE) before the next one.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

const JSON_CONTENT_TYPE: &str = "application/json";
const TEXT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

/// Serve `/metrics` and `/status` on `listener` from a thread; each scrape
/// calls `collect` for the workers' snapshots and the process facts. The
/// thread runs until the process exits.
pub fn serve(
    listener: TcpListener,
    collect: impl Fn() -> (Vec<WorkerSnapshot>, Process) + Send + 'static,
) -> JoinHandle<()> {
    serve_with(listener, collect, HEAD_TIMEOUT)
}

pub(super) fn serve_with(
    listener: TcpListener,
    collect: impl Fn() -> (Vec<WorkerSnapshot>, Process) + Send + 'static,
    head_timeout: Duration,
) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name("ringway-metrics".into())
        .spawn(move || {
            if let Err(e) = listener.set_nonblocking(false) {
                tracing::warn!(error = %e, "metrics listener: cannot make it blocking");
            }
            loop {
                match listener.accept() {
                    Ok((stream, peer)) => {
                        if let Err(e) = handle(stream, &collect, head_timeout) {
                            tracing::debug!(%peer, error = %e, "metrics connection");
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "metrics listener: accept failed");
                        std::thread::sleep(ACCEPT_ERROR_PAUSE);
                    }
                }
            }
        })
        .expect("spawn the ringway-metrics thread")
}

/// What a request head asks for.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Ask {
    /// More bytes needed.
    Partial,
    /// Not HTTP/1.x.
    Bad,
    Metrics {
        head_only: bool,
    },
    Status {
        head_only: bool,
    },
    NotFound {
        head_only: bool,
    },
    MethodNotAllowed,
}

/// Reads a request head (pure: bytes in, a decision out).
pub(super) fn parse(buf: &[u8]) -> Ask {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Partial) => Ask::Partial,
        Err(_) => Ask::Bad,
        Ok(httparse::Status::Complete(_)) => {
            let (Some(method), Some(target)) = (req.method, req.path) else {
                return Ask::Bad;
            };
            let path = target.split_once('?').map_or(target, |(p, _)| p);
            let head_only = match method {
                "GET" => false,
                "HEAD" => true,
                _ if path == "/metrics" || path == "/status" => return Ask::MethodNotAllowed,
                _ => return Ask::NotFound { head_only: false },
            };
            match path {
                "/metrics" => Ask::Metrics { head_only },
                "/status" => Ask::Status { head_only },
                _ => Ask::NotFound { head_only },
            }
        }
    }
}

fn handle(
    mut s: TcpStream,
    collect: &impl Fn() -> (Vec<WorkerSnapshot>, Process),
    head_timeout: Duration,
) -> io::Result<()> {
    s.set_nonblocking(false)?;
    s.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let deadline = Instant::now() + head_timeout;
    let mut buf = vec![0u8; MAX_HEAD];
    let mut n = 0;
    let ask = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        s.set_read_timeout(Some(left))?;
        let r = s.read(&mut buf[n..])?;
        if r == 0 {
            return Ok(()); // closed before a whole head
        }
        n += r;
        match parse(&buf[..n]) {
            Ask::Partial if n == MAX_HEAD => {
                return reply(
                    &mut s,
                    "431 Request Header Fields Too Large",
                    TEXT_CONTENT_TYPE,
                    &[],
                    b"request head too large\n",
                    false,
                );
            }
            Ask::Partial => continue,
            ask => break ask,
        }
    };
    match ask {
        Ask::Metrics { head_only } => {
            let (w, p) = collect();
            let body = encode_prometheus(&w, &p);
            reply(
                &mut s,
                "200 OK",
                PROMETHEUS_CONTENT_TYPE,
                &[],
                body.as_bytes(),
                head_only,
            )
        }
        Ask::Status { head_only } => {
            let (w, p) = collect();
            let body = encode_json(&w, &p);
            reply(
                &mut s,
                "200 OK",
                JSON_CONTENT_TYPE,
                &[],
                body.as_bytes(),
                head_only,
            )
        }
        Ask::NotFound { head_only } => reply(
            &mut s,
            "404 Not Found",
            TEXT_CONTENT_TYPE,
            &[],
            b"not found: try /metrics or /status\n",
            head_only,
        ),
        Ask::MethodNotAllowed => reply(
            &mut s,
            "405 Method Not Allowed",
            TEXT_CONTENT_TYPE,
            &["Allow: GET, HEAD"],
            b"method not allowed\n",
            false,
        ),
        Ask::Bad | Ask::Partial => reply(
            &mut s,
            "400 Bad Request",
            TEXT_CONTENT_TYPE,
            &[],
            b"bad request\n",
            false,
        ),
    }
}

fn reply(
    s: &mut TcpStream,
    status: &str,
    content_type: &str,
    extra: &[&str],
    body: &[u8],
    head_only: bool,
) -> io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for h in extra {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    if !head_only {
        s.write_all(body)?;
    }
    s.flush()?;
    s.shutdown(std::net::Shutdown::Write)
}
