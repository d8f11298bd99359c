//! Request heads: parse (httparse) and check (RFC 9112), once.
//!
//! A parsed [`Request`] owns the buffer its head was read into and keeps
//! the head's parts as spans of it, so it travels through a connection's
//! phases (route, answer, proxy, finish) without borrowing anything and
//! without being parsed again. Pure: no I/O; the caller reads the bytes.
//!
//! A parsed request carries the decisions later phases rely on, made once
//! here: its body framing (`framing::request`) and its normalised path
//! (`path::normalize`, what locations match). A head that leaves either in
//! doubt is refused.

use std::mem::MaybeUninit;

use super::framing::{self, FramingError};
use super::path;
use super::{find_crlf, header_eq, BodyKind, HeadError, Span};

/// The most header fields any configuration allows (`max_headers` is
/// validated to at most this), so the parse scratch fits on the stack.
pub const MAX_HEADERS_LIMIT: usize = 1000;

/// A parsed request head, with the buffer it was read into.
#[derive(Debug)]
pub struct Request {
    /// The bytes read: the head, then whatever followed it (body bytes, a
    /// pipelined request).
    buf: Vec<u8>,
    /// Bytes of the head including the blank line.
    pub head_len: usize,
    method: Span,
    target: Span,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    headers: Vec<(Span, Span)>,
    /// How the body is framed: the one decision the body relay and the
    /// upstream head both follow.
    pub body: BodyKind,
    /// The normalised path, when it differs from the path as sent.
    norm: Option<Box<str>>,
}

/// The outcome of a parse that did not fail.
#[derive(Debug)]
pub enum Parse {
    Complete(Request),
    /// More bytes are needed; the buffer comes back.
    Partial(Vec<u8>),
}

/// Parse the request head at the start of `buf`.
///
/// `Partial` when incomplete, unless `buf` already holds `max_len` bytes:
/// then the head is too large, which this reports (414 when the request
/// line does not fit, 431 otherwise, RFC 9112 §3).
pub fn parse(buf: Vec<u8>, max_headers: usize, max_len: usize) -> Result<Parse, HeadError> {
    let mut scratch = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS_LIMIT];
    let scratch = &mut scratch[..max_headers.clamp(1, MAX_HEADERS_LIMIT)];
    let mut req = httparse::Request::new(&mut []);
    let status = httparse::ParserConfig::default()
        .parse_request_with_uninit_headers(&mut req, &buf, scratch);
    let head_len = match status {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() < max_len {
                return Ok(Parse::Partial(buf));
            }
            let line_done = find_crlf(&buf[..max_len]).is_some();
            return Err(if line_done {
                HeadError::HeadersTooLarge
            } else {
                HeadError::UriTooLong
            });
        }
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders),
        Err(httparse::Error::Version) => return Err(HeadError::Version),
        Err(e) => return Err(HeadError::Malformed(describe(e))),
    };
    let method = Span::of(&buf, req.method.unwrap_or("").as_bytes());
    let target = Span::of(&buf, req.path.unwrap_or("").as_bytes());
    let minor_version = req.version.unwrap_or(1);
    let headers = Span::headers(&buf, req.headers);
    let mut r = Request {
        buf: fit(buf),
        head_len,
        method,
        target,
        minor_version,
        headers,
        body: BodyKind::None,
        norm: None,
    };
    r.check()?;
    r.body = framing::request(r.headers(), minor_version).map_err(|e| match e {
        FramingError::Coding => HeadError::NotImplemented(e.reason()),
        FramingError::Bad(why) => HeadError::Malformed(why),
    })?;
    r.norm = match path::normalize(r.path()) {
        Ok(std::borrow::Cow::Borrowed(_)) => None,
        Ok(std::borrow::Cow::Owned(p)) => Some(p.into_boxed_str()),
        Err(e) => return Err(HeadError::Malformed(e.reason())),
    };
    Ok(Parse::Complete(r))
}

/// The head buffer without the spare room the read reserved (up to the
/// read size): a request waiting on a long poll keeps only its bytes.
fn fit(mut buf: Vec<u8>) -> Vec<u8> {
    if buf.capacity() > buf.len() * 2 + 256 {
        buf.shrink_to_fit();
    }
    buf
}

/// `parse` of a copy of `bytes`: `None` when incomplete (tests, fuzzing).
/// nginx's first head buffer (`client_header_buffer_size`'s default).
pub const NGINX_FIRST_BUFFER: usize = 1024;

/// Whether a head fits nginx's `large_client_header_buffers N SIZE` as
/// nginx reads it: lines fill a first buffer of 1k, then up to `n`
/// buffers of `size`; a line that does not fit the buffer it starts in
/// moves whole to the next one, and must fit it. A request line that
/// fits no buffer is a 414; a header line that does not, or a head that
/// needs more buffers, is a 431 (nginx answers 400 "Request Header Or
/// Cookie Too Large"; RFC 6585's status says what happened).
pub fn fits_buffers(req: &Request, n: usize, size: usize) -> Option<HeadError> {
    let head = &req.buf[..req.head_len];
    let (mut room, mut used) = (NGINX_FIRST_BUFFER, 0usize);
    let mut large = 0;
    for (i, line) in head.split_inclusive(|&b| b == b'\n').enumerate() {
        if used + line.len() <= room {
            used += line.len();
            continue;
        }
        if line.len() > size || large == n {
            return Some(if i == 0 {
                HeadError::UriTooLong
            } else {
                HeadError::HeadersTooLarge
            });
        }
        large += 1;
        (room, used) = (size, line.len());
    }
    None
}

pub fn parse_bytes(
    bytes: &[u8],
    max_headers: usize,
    max_len: usize,
) -> Result<Option<Request>, HeadError> {
    match parse(bytes.to_vec(), max_headers, max_len)? {
        Parse::Complete(r) => Ok(Some(r)),
        Parse::Partial(_) => Ok(None),
    }
}

fn describe(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "invalid header name",
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Status => "invalid status",
        httparse::Error::Token => "invalid token",
        httparse::Error::TooManyHeaders => "too many headers",
        httparse::Error::Version => "invalid HTTP version",
    }
}

fn text(b: &[u8]) -> &str {
    // httparse accepts only ASCII tokens and visible characters in the
    // method and target, so this never fails on them.
    std::str::from_utf8(b).unwrap_or("")
}

impl Request {
    pub fn method(&self) -> &str {
        text(self.method.get(&self.buf))
    }

    /// The request target as sent (origin-form "/a?b" or absolute-form).
    pub fn target(&self) -> &str {
        text(self.target.get(&self.buf))
    }

    /// The header fields, in order: (name, value).
    pub fn headers(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.headers
            .iter()
            .map(|(n, v)| (n.get(&self.buf), v.get(&self.buf)))
    }

    /// First value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers()
            .find(|(n, _)| header_eq(n, name))
            .map(|(_, v)| v)
    }

    /// All values of a header, in order.
    pub fn headers_named<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s [u8]> + 's {
        self.headers()
            .filter(move |(n, _)| header_eq(n, name))
            .map(|(_, v)| v)
    }

    /// Whether a `Connection` header lists `token` (RFC 9110 §7.6.1).
    pub fn connection_has(&self, token: &str) -> bool {
        self.headers_named("connection")
            .any(|v| super::tokens(v).any(|t| header_eq(t, token)))
    }

    /// An upgrade request: `Upgrade` present and named in `Connection`
    /// (RFC 9110 §7.8). Only HTTP/1.1 can upgrade.
    pub fn is_upgrade(&self) -> bool {
        self.minor_version == 1
            && self.header("upgrade").is_some_and(|v| !v.is_empty())
            && self.connection_has("upgrade")
    }

    /// Whether the client wants the connection kept open after this
    /// exchange (RFC 9112 §9.3).
    pub fn wants_keep_alive(&self) -> bool {
        if self.connection_has("close") {
            return false;
        }
        self.minor_version == 1 || self.connection_has("keep-alive")
    }

    /// The path part of the target as sent, without the query ("/a/b").
    pub fn path(&self) -> &str {
        let t = self.origin_target();
        match t.find('?') {
            Some(i) => &t[..i],
            None => t,
        }
    }

    /// The path percent-decoded, dot segments resolved and slashes merged:
    /// what locations match and `$uri` is.
    pub fn norm_path(&self) -> &str {
        self.norm.as_deref().unwrap_or_else(|| self.path())
    }

    /// The query string without '?', if any.
    pub fn query(&self) -> Option<&str> {
        let t = self.origin_target();
        t.find('?').map(|i| &t[i + 1..])
    }

    /// The target in origin-form: for an absolute-form target
    /// ("http://h/p?q") the "/p?q" part.
    pub fn origin_target(&self) -> &str {
        match self.absolute_authority() {
            Some((_, rest)) => rest,
            None => self.target(),
        }
    }

    /// For an absolute-form target, (authority, origin-form rest).
    fn absolute_authority(&self) -> Option<(&str, &str)> {
        let t = self.target();
        let after = t
            .strip_prefix("http://")
            .or_else(|| t.strip_prefix("https://"))?;
        match after.find('/') {
            Some(i) => Some((&after[..i], &after[i..])),
            None => Some((after, "/")),
        }
    }

    /// The host this request is for, lowercase, without port: from an
    /// absolute-form target, else the Host header (RFC 9112 §3.2.2).
    pub fn host(&self) -> Option<String> {
        let raw = match self.absolute_authority() {
            Some((a, _)) => a.as_bytes(),
            None => self.header("host")?,
        };
        let s = std::str::from_utf8(raw).ok()?.trim();
        let host = strip_port(s);
        // "example.com." names the same host as "example.com" (nginx).
        let host = host.strip_suffix('.').unwrap_or(host);
        if host.is_empty() {
            None
        } else {
            Some(host.to_ascii_lowercase())
        }
    }

    /// Bytes that arrived after the head (body, pipelined requests).
    pub fn early(&self) -> &[u8] {
        &self.buf[self.head_len..]
    }

    /// The bytes after the head, as the start of the next read (a fresh,
    /// small buffer: a connection waiting for its next request keeps no
    /// large one).
    pub fn rest(&self) -> Vec<u8> {
        self.early().to_vec()
    }

    fn check(&self) -> Result<(), HeadError> {
        let t = self.target();
        if !(t.starts_with('/') || t.starts_with("http://") || t.starts_with("https://")) {
            return Err(HeadError::Malformed("unsupported request target"));
        }
        // RFC 9112 §3.2: a request target has no fragment.
        if t.contains('#') {
            return Err(HeadError::Malformed("fragment in request target"));
        }
        let hosts = self.headers_named("host").count();
        if hosts > 1 || (hosts == 0 && self.minor_version == 1) {
            // RFC 9112 §3.2: exactly one Host in HTTP/1.1.
            return Err(HeadError::Malformed("missing or repeated Host"));
        }
        if let Some((authority, _)) = self.absolute_authority() {
            if !valid_host(authority.as_bytes()) {
                return Err(HeadError::Malformed("bad host in request target"));
            }
        }
        if let Some(h) = self.header("host") {
            if !valid_host(h) {
                return Err(HeadError::Malformed("bad Host"));
            }
        }
        Ok(())
    }
}

/// A Host value nginx would accept (`ngx_http_validate_host`): not empty,
/// no path separator, no `..`, no NUL, control character or whitespace.
/// `$host` is rendered into upstream heads and redirects, and picks the
/// server: a value that could read as a path there is refused.
pub fn valid_host(v: &[u8]) -> bool {
    let v = super::trim(v);
    !v.is_empty()
        && !v.windows(2).any(|w| w == b"..")
        && !v
            .iter()
            .any(|&b| b <= b' ' || b == 0x7f || b == b'/' || b == b'\\')
}

/// "example.com:80" → "example.com"; "[::1]:80" → "[::1]".
pub fn strip_port(s: &str) -> &str {
    if s.starts_with('[') {
        return match s.find(']') {
            Some(i) => &s[..=i],
            None => s,
        };
    }
    match s.rfind(':') {
        Some(i) if s[i + 1..].bytes().all(|b| b.is_ascii_digit()) => &s[..i],
        _ => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Option<Request>, HeadError> {
        parse_bytes(s.as_bytes(), 100, 8192)
    }

    #[test]
    fn parses_an_upgrade_request() {
        let raw = "GET /ws/chat?room=1 HTTP/1.1\r\nHost: WS.Example.com:8080\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: x\r\n\r\nrest";
        let r = p(raw).unwrap().unwrap();
        assert_eq!(r.method(), "GET");
        assert_eq!(r.path(), "/ws/chat");
        assert_eq!(r.query(), Some("room=1"));
        assert_eq!(r.host().as_deref(), Some("ws.example.com"));
        assert!(r.is_upgrade());
        assert_eq!(r.early(), b"rest");
        assert_eq!(r.headers().count(), 4);
    }

    #[test]
    fn partial_gives_the_buffer_back() {
        let raw = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
        match parse(raw.clone(), 100, 8192).unwrap() {
            Parse::Partial(b) => assert_eq!(b, raw),
            Parse::Complete(_) => panic!("complete"),
        }
    }

    #[test]
    fn upgrade_needs_the_connection_token() {
        let r = p("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!r.is_upgrade());
        let r = p("GET / HTTP/1.0\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!r.is_upgrade(), "HTTP/1.0 cannot upgrade");
    }

    #[test]
    fn partial_then_limits() {
        assert!(p("GET / HTTP/1.1\r\nHost: a\r\n").unwrap().is_none());
        let long_line = format!("GET /{} HTTP/1.1\r\n", "a".repeat(100));
        assert_eq!(
            parse_bytes(long_line.as_bytes(), 100, 50).unwrap_err(),
            HeadError::UriTooLong
        );
        let long_headers = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(100));
        assert_eq!(
            parse_bytes(long_headers.as_bytes(), 100, 60).unwrap_err(),
            HeadError::HeadersTooLarge
        );
        let many = format!("GET / HTTP/1.1\r\n{}\r\n", "X: 1\r\n".repeat(5));
        assert_eq!(
            parse_bytes(many.as_bytes(), 4, 8192).unwrap_err(),
            HeadError::TooManyHeaders
        );
    }

    #[test]
    fn rejects_bad_heads() {
        assert!(
            matches!(p("GET / HTTP/1.1\r\n\r\n"), Err(HeadError::Malformed(_))),
            "no Host"
        );
        assert!(matches!(
            p("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
        assert!(matches!(
            p("GET x HTTP/1.1\r\nHost: a\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
        assert!(matches!(
            p("GE(T / HTTP/1.1\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
        assert!(matches!(
            p("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
        assert!(matches!(
            p("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
        assert_eq!(p("GET / HTTP/2.0\r\n\r\n").unwrap_err(), HeadError::Version);
    }

    #[test]
    fn body_framing() {
        let r = p("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(r.body, BodyKind::Length(12));
        let r = p("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(r.body, BodyKind::Chunked);
        let r = p("GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap().unwrap();
        assert_eq!(r.body, BodyKind::None);
        // nginx: 501 for a coding it does not implement.
        assert_eq!(
            p("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")
                .unwrap_err()
                .status(),
            501
        );
        // Class 5 of the smuggling issue: two Transfer-Encoding fields.
        assert_eq!(
            p("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n")
                .unwrap_err()
                .status(),
            400
        );
    }

    #[test]
    fn paths_are_normalised_or_refused() {
        let r = p("GET /p/%61dmin/../x//y?q=/../ HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(r.norm_path(), "/p/x/y");
        assert_eq!(r.query(), Some("q=/../"));
        let r = p("GET /plain/path HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(r.norm_path(), "/plain/path");
        for bad in ["/../x", "/a%00", "/a%zz", "/a#frag", "/a%ff"] {
            let raw = format!("GET {bad} HTTP/1.1\r\nHost: a\r\n\r\n");
            assert_eq!(p(&raw).unwrap_err().status(), 400, "{bad}");
        }
    }

    #[test]
    fn hosts_are_validated() {
        for bad in ["a/b", "a..b", "a\\b", ""] {
            let raw = format!("GET / HTTP/1.1\r\nHost: {bad}\r\n\r\n");
            assert_eq!(p(&raw).unwrap_err().status(), 400, "{bad:?}");
        }
        assert!(p("GET http://a/b/x HTTP/1.1\r\nHost: a\r\n\r\n").is_ok());
        assert!(p("GET http://a..b/x HTTP/1.1\r\nHost: a\r\n\r\n").is_err());
        let r = p("GET / HTTP/1.1\r\nHost: Example.COM.:80\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(r.host().as_deref(), Some("example.com"));
    }

    #[test]
    fn absolute_form_gives_host_and_path() {
        let r = p("GET http://Other.Host:81/x/y?z HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(r.host().as_deref(), Some("other.host"));
        assert_eq!(r.origin_target(), "/x/y?z");
        assert_eq!(r.path(), "/x/y");
    }

    #[test]
    fn keep_alive_rules() {
        let r = p("GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap().unwrap();
        assert!(r.wants_keep_alive());
        let r = p("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!r.wants_keep_alive());
        let r = p("GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert!(!r.wants_keep_alive());
        let r = p("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(r.wants_keep_alive());
    }

    #[test]
    fn strip_port_forms() {
        assert_eq!(strip_port("a.b:80"), "a.b");
        assert_eq!(strip_port("a.b"), "a.b");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
    }
}
