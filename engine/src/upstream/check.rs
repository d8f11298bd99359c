//! Active health checks, the pure part: the request a check sends, the
//! verdict on the bytes it read back, and the fall/rise count that turns
//! single checks into a server's state. The checker thread
//! (`upstream::checker`) does the I/O around these.
//!
//! - `http`: `GET uri HTTP/1.1`, `Host:` the server's address as written,
//!   `Connection: close`. Passes on an expected status (any 2xx or 3xx by
//!   default) and, with `expect_body`, on the body holding that text (the
//!   first [`MAX_BODY`] bytes, de-chunked).
//! - `websocket`: the same GET as an upgrade (RFC 6455 §4.1) with a fresh
//!   key; passes on 101 with the matching `Sec-WebSocket-Accept`
//!   (§4.2.2). The checker then sends [`CLOSE_1000`].
//! - `tcp`: nothing here — a connect within the timeout passes.

use ringway_config::{CheckKind, HealthCheck};

use crate::h2::websocket;
use crate::http::chunked::ChunkedDecoder;
use crate::http::response::{parse_bytes, Response};
use crate::http::BodyKind;

/// The most of a check's answer read: its head ...
pub const MAX_HEAD: usize = 16 * 1024;
/// ... and its body (for `expect_body`).
pub const MAX_BODY: usize = 64 * 1024;

/// A client's close frame, code 1000 ("normal closure"), masked
/// (RFC 6455 §5.3: a client masks; the key need not be secret).
pub const CLOSE_1000: [u8; 8] = [0x88, 0x82, 0x5a, 0x17, 0x3c, 0x81, 0x03 ^ 0x5a, 0xe8 ^ 0x17];

/// The bytes an `http` or `websocket` check sends; `ws_key` is the
/// `Sec-WebSocket-Key` of a websocket check.
pub fn request(check: &HealthCheck, host: &str, ws_key: Option<&[u8; 24]>) -> Vec<u8> {
    let mut out = format!(
        "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: ringway-health-check\r\n",
        check.uri
    )
    .into_bytes();
    match (check.kind, ws_key) {
        (CheckKind::WebSocket, Some(key)) => {
            out.extend_from_slice(
                b"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ",
            );
            out.extend_from_slice(key);
            out.extend_from_slice(b"\r\n\r\n");
        }
        _ => out.extend_from_slice(b"Connection: close\r\n\r\n"),
    }
    out
}

/// What the bytes read so far say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judged {
    /// Read more (the answer is not whole yet).
    More,
    Pass,
    /// Failed, and why (for the log).
    Fail(String),
}

/// Judge the answer `buf` (all bytes read so far; `eof`: the server
/// closed after them) to an `http` or `websocket` check.
pub fn judge(check: &HealthCheck, ws_key: Option<&[u8; 24]>, buf: &[u8], eof: bool) -> Judged {
    let r = match parse_bytes(buf, 100, MAX_HEAD) {
        Err(e) => return Judged::Fail(format!("bad response head: {e:?}")),
        Ok(None) if eof => return Judged::Fail("closed before a whole response head".into()),
        Ok(None) => return Judged::More,
        Ok(Some(r)) => r,
    };
    match check.kind {
        CheckKind::WebSocket => {
            if r.status != 101 {
                return Judged::Fail(format!("answered {} to the upgrade, not 101", r.status));
            }
            let want = ws_key.map(|k| websocket::accept(k));
            match (r.header("sec-websocket-accept"), want) {
                (Some(got), Some(want)) if got == want.as_slice() => Judged::Pass,
                _ => Judged::Fail("101 without the matching Sec-WebSocket-Accept".into()),
            }
        }
        _ => judge_http(check, &r, eof),
    }
}

fn judge_http(check: &HealthCheck, r: &Response, eof: bool) -> Judged {
    let status_ok = if check.expect_status.is_empty() {
        (200..400).contains(&r.status)
    } else {
        check.expect_status.contains(&r.status)
    };
    if !status_ok {
        return Judged::Fail(format!("status {}", r.status));
    }
    let Some(want) = &check.expect_body else {
        return Judged::Pass;
    };
    let framing = match r.framing(false) {
        Ok(f) => f.body,
        Err(e) => return Judged::Fail(format!("bad response framing: {e:?}")),
    };
    let early = r.early();
    let body: Vec<u8> = match framing {
        BodyKind::None => Vec::new(),
        BodyKind::Length(n) => {
            let need = (n as usize).min(MAX_BODY);
            if early.len() < need && !eof {
                return Judged::More;
            }
            early[..need.min(early.len())].to_vec()
        }
        BodyKind::UntilClose => {
            if early.len() < MAX_BODY && !eof {
                return Judged::More;
            }
            early[..early.len().min(MAX_BODY)].to_vec()
        }
        BodyKind::Chunked => {
            let mut d = ChunkedDecoder::new(MAX_HEAD);
            let mut body = Vec::new();
            match d.feed(early, |data| {
                let room = MAX_BODY - body.len().min(MAX_BODY);
                body.extend_from_slice(&data[..data.len().min(room)]);
            }) {
                Err(e) => return Judged::Fail(format!("bad chunked body: {}", e.0)),
                Ok(None) if body.len() < MAX_BODY && !eof => return Judged::More,
                Ok(_) => body,
            }
        }
    };
    if contains(&body, want.as_bytes()) {
        Judged::Pass
    } else {
        Judged::Fail(format!("body without {want:?}"))
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// A server's run of check results: `fails` failures in a row mark an up
/// server down, `passes` passes in a row mark a down one up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Streak {
    pub up: bool,
    /// Results in a row that speak against the current state.
    run: u32,
}

impl Streak {
    /// A server starts up (checked at once).
    pub fn new(up: bool) -> Self {
        Streak { up, run: 0 }
    }

    /// Record one check; returns the new state when this one changed it.
    pub fn record(&mut self, pass: bool, fails: u32, passes: u32) -> Option<bool> {
        if pass == self.up {
            self.run = 0;
            return None;
        }
        self.run += 1;
        let needed = if self.up { fails } else { passes };
        if self.run >= needed.max(1) {
            self.up = pass;
            self.run = 0;
            return Some(pass);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn check(kind: CheckKind) -> HealthCheck {
        HealthCheck {
            kind,
            uri: "/health".into(),
            expect_status: Vec::new(),
            expect_body: None,
            interval: Duration::from_secs(1),
            jitter: Duration::ZERO,
            timeout: Duration::from_secs(1),
            fails: 2,
            passes: 2,
            port: None,
        }
    }

    #[test]
    fn http_request_and_status() {
        let c = check(CheckKind::Http);
        let req = String::from_utf8(request(&c, "app:3000", None)).unwrap();
        assert!(req.starts_with("GET /health HTTP/1.1\r\nHost: app:3000\r\n"));
        assert!(req.ends_with("Connection: close\r\n\r\n"));
        let ok = b"HTTP/1.1 204 No Content\r\n\r\n";
        assert_eq!(judge(&c, None, ok, false), Judged::Pass);
        assert_eq!(
            judge(
                &c,
                None,
                b"HTTP/1.1 302 Found\r\nContent-Length: 0\r\n\r\n",
                false
            ),
            Judged::Pass
        );
        assert_eq!(
            judge(&c, None, b"HTTP/1.1 503 Busy\r\n\r\n", false),
            Judged::Fail("status 503".into())
        );
        assert_eq!(
            judge(&c, None, b"HTTP/1.1 200 OK\r\nContent-", false),
            Judged::More
        );
        assert!(matches!(
            judge(&c, None, b"HTTP/1.1 200 OK\r\nContent-", true),
            Judged::Fail(_)
        ));
        assert!(matches!(
            judge(&c, None, b"SSH-2.0-OpenSSH\r\n\r\n", false),
            Judged::Fail(_)
        ));
        let mut listed = check(CheckKind::Http);
        listed.expect_status = vec![200];
        assert!(matches!(judge(&listed, None, ok, false), Judged::Fail(_)));
    }

    #[test]
    fn expect_body_reads_the_body_whatever_its_framing() {
        let mut c = check(CheckKind::Http);
        c.expect_body = Some("ok".into());
        let length = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nstatus: o";
        assert_eq!(judge(&c, None, length, false), Judged::More);
        let whole = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nstatus: ok";
        assert_eq!(judge(&c, None, whole, false), Judged::Pass);
        let starting = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nstarting";
        assert!(matches!(judge(&c, None, starting, false), Judged::Fail(_)));
        // Split across chunks: de-chunked before the search.
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\no\r\n1\r\nk\r\n0\r\n\r\n";
        assert_eq!(judge(&c, None, chunked, false), Judged::Pass);
        let until_close = b"HTTP/1.0 200 OK\r\n\r\nall ok";
        assert_eq!(judge(&c, None, until_close, false), Judged::More);
        assert_eq!(judge(&c, None, until_close, true), Judged::Pass);
    }

    #[test]
    fn websocket_needs_101_and_the_right_accept() {
        let c = check(CheckKind::WebSocket);
        let key = websocket::key(&[7; 16]);
        let req = String::from_utf8(request(&c, "app:3000", Some(&key))).unwrap();
        assert!(
            req.contains("Upgrade: websocket\r\n") && req.contains("Sec-WebSocket-Version: 13\r\n")
        );
        assert!(req.contains(&format!(
            "Sec-WebSocket-Key: {}\r\n",
            String::from_utf8_lossy(&key)
        )));
        let accept = String::from_utf8(websocket::accept(&key).to_vec()).unwrap();
        let good = format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n");
        assert_eq!(judge(&c, Some(&key), good.as_bytes(), false), Judged::Pass);
        let other =
            String::from_utf8(websocket::accept(&websocket::key(&[8; 16])).to_vec()).unwrap();
        let wrong = good.replace(&accept, &other);
        assert!(matches!(
            judge(&c, Some(&key), wrong.as_bytes(), false),
            Judged::Fail(_)
        ));
        let ok200 = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
        assert_eq!(
            judge(&c, Some(&key), ok200, false),
            Judged::Fail("answered 200 to the upgrade, not 101".into())
        );
    }

    #[test]
    fn close_frame_is_a_masked_1000() {
        let f = CLOSE_1000;
        assert_eq!(f[0], 0x88, "FIN + close");
        assert_eq!(f[1], 0x80 | 2, "masked, 2 bytes");
        let code = [f[6] ^ f[2], f[7] ^ f[3]];
        assert_eq!(u16::from_be_bytes(code), 1000);
    }

    #[test]
    fn streak_falls_after_fails_and_rises_after_passes() {
        let mut s = Streak::new(true);
        assert_eq!(s.record(false, 3, 2), None);
        assert_eq!(s.record(true, 3, 2), None, "a pass breaks the run");
        assert_eq!(s.record(false, 3, 2), None);
        assert_eq!(s.record(false, 3, 2), None);
        assert_eq!(s.record(false, 3, 2), Some(false));
        assert!(!s.up);
        assert_eq!(s.record(false, 3, 2), None);
        assert_eq!(s.record(true, 3, 2), None);
        assert_eq!(s.record(false, 3, 2), None, "a failure breaks the rise");
        assert_eq!(s.record(true, 3, 2), None);
        assert_eq!(s.record(true, 3, 2), Some(true));
        let mut once = Streak::new(true);
        assert_eq!(once.record(false, 1, 1), Some(false));
        assert_eq!(once.record(true, 1, 1), Some(true));
    }
}
