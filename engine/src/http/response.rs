//! Upstream response heads: parse (httparse), once, into a [`Response`]
//! that owns the bytes read (the head and whatever body bytes came with
//! it), and decide the body framing (RFC 9112 §6.3, `framing::response`).

use std::mem::MaybeUninit;

use super::request::MAX_HEADERS_LIMIT;

use super::framing::{self, ResponseFraming};
use super::{header_eq, Span};

/// Why an upstream response head is unusable (→ 502).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadResponse {
    Malformed(&'static str),
    TooLarge,
}

/// A parsed response head, with the buffer it was read into.
#[derive(Debug)]
pub struct Response {
    buf: Vec<u8>,
    pub status: u16,
    reason: Span,
    pub minor_version: u8,
    headers: Vec<(Span, Span)>,
    /// Bytes of the head including the blank line.
    pub head_len: usize,
}

/// The outcome of a parse that did not fail.
#[derive(Debug)]
pub enum Parse {
    Complete(Response),
    /// More bytes are needed; the buffer comes back.
    Partial(Vec<u8>),
}

/// Parse the response head at the start of `buf`.
pub fn parse(buf: Vec<u8>, max_headers: usize, max_len: usize) -> Result<Parse, BadResponse> {
    let mut scratch = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS_LIMIT];
    let scratch = &mut scratch[..max_headers.clamp(1, MAX_HEADERS_LIMIT)];
    let mut resp = httparse::Response::new(&mut []);
    let status = httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, &buf, scratch);
    let head_len = match status {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= max_len => return Err(BadResponse::TooLarge),
        Ok(httparse::Status::Partial) => return Ok(Parse::Partial(buf)),
        Err(httparse::Error::TooManyHeaders) => return Err(BadResponse::TooLarge),
        Err(_) => return Err(BadResponse::Malformed("invalid response head")),
    };
    let code = resp.code.unwrap_or(0);
    // RFC 9110 §15: a status code is 100..=599 (httparse takes any three
    // digits, "020" included).
    if !(100..=599).contains(&code) {
        return Err(BadResponse::Malformed("invalid status code"));
    }
    let reason = Span::of(&buf, resp.reason.unwrap_or("").as_bytes());
    let minor_version = resp.version.unwrap_or(1);
    let headers = Span::headers(&buf, resp.headers);
    Ok(Parse::Complete(Response {
        buf,
        status: code,
        reason,
        minor_version,
        headers,
        head_len,
    }))
}

/// `parse` of a copy of `bytes`: `None` when incomplete (tests, fuzzing).
pub fn parse_bytes(
    bytes: &[u8],
    max_headers: usize,
    max_len: usize,
) -> Result<Option<Response>, BadResponse> {
    match parse(bytes.to_vec(), max_headers, max_len)? {
        Parse::Complete(r) => Ok(Some(r)),
        Parse::Partial(_) => Ok(None),
    }
}

impl Response {
    /// The reason phrase as sent (visible characters only: httparse).
    pub fn reason(&self) -> &[u8] {
        self.reason.get(&self.buf)
    }

    /// The header fields, in order: (name, value).
    pub fn headers(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.headers
            .iter()
            .map(|(n, v)| (n.get(&self.buf), v.get(&self.buf)))
    }

    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers()
            .find(|(n, _)| header_eq(n, name))
            .map(|(_, v)| v)
    }

    pub fn connection_values(&self) -> impl Iterator<Item = &[u8]> {
        self.headers()
            .filter(|(n, _)| header_eq(n, "connection"))
            .map(|(_, v)| v)
    }

    /// How the body is delimited, given whether the request was HEAD
    /// (RFC 9112 §6.3). Ambiguous framing is an error (→ 502).
    pub fn framing(&self, head_request: bool) -> Result<ResponseFraming, BadResponse> {
        framing::response(
            self.status,
            self.headers(),
            self.minor_version,
            head_request,
        )
        .map_err(|e| BadResponse::Malformed(e.reason()))
    }

    /// Whether the upstream keeps the connection open after this response.
    pub fn keeps_alive(&self) -> bool {
        let close = self
            .connection_values()
            .any(|v| super::tokens(v).any(|t| header_eq(t, "close")));
        !close && self.minor_version == 1
    }

    /// Bytes that came after the head (the start of the body, or of the
    /// switched protocol after a 101).
    pub fn early(&self) -> &[u8] {
        &self.buf[self.head_len..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::BodyKind;

    fn p(raw: &[u8], max_len: usize) -> Result<Option<Response>, BadResponse> {
        parse_bytes(raw, 64, max_len)
    }

    #[test]
    fn parses_101() {
        let raw = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: abc\r\n\r\n\x81\x02hi";
        let r = p(raw, 4096).unwrap().unwrap();
        assert_eq!(r.status, 101);
        assert_eq!(r.reason(), b"Switching Protocols");
        assert_eq!(r.header("sec-websocket-accept"), Some(&b"abc"[..]));
        assert_eq!(r.early(), b"\x81\x02hi");
        assert_eq!(r.framing(false).unwrap().body, BodyKind::None);
    }

    #[test]
    fn framing() {
        let r = p(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\n\r\n", 4096)
            .unwrap()
            .unwrap();
        assert_eq!(r.framing(false).unwrap().body, BodyKind::Length(9));
        assert_eq!(r.framing(true).unwrap().body, BodyKind::None);
        let r = p(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            4096,
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.framing(false).unwrap().body, BodyKind::Chunked);
        let r = p(b"HTTP/1.0 200 OK\r\n\r\n", 4096).unwrap().unwrap();
        assert_eq!(r.framing(false).unwrap().body, BodyKind::UntilClose);
        assert!(!r.keeps_alive());
        let r = p(b"HTTP/1.1 204 No Content\r\n\r\n", 4096)
            .unwrap()
            .unwrap();
        assert_eq!(r.framing(false).unwrap().body, BodyKind::None);
    }

    #[test]
    fn a_missing_reason_phrase_is_empty() {
        let r = p(b"HTTP/1.1 206\n\n", 4096).unwrap().unwrap();
        assert_eq!((r.status, r.reason()), (206, &b""[..]));
    }

    #[test]
    fn bad_heads() {
        assert!(p(b"HTTP/1.1 2x0 OK\r\n\r\n", 4096).is_err());
        assert!(p(b"HTTP/1.1 020 OK\r\n\r\n", 4096).is_err());
        assert!(p(b"HTTP/1.1 600 OK\r\n\r\n", 4096).is_err());
        assert_eq!(
            p(b"HTTP/1.1 200 OK\r\nX: y", 10).unwrap_err(),
            BadResponse::TooLarge
        );
        assert!(p(b"HTTP/1.1 200 OK\r\n", 4096).unwrap().is_none());
        let r = p(
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            4096,
        )
        .unwrap()
        .unwrap();
        assert!(r.framing(false).is_err());
    }
}
