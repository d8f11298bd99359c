//! Upstream response heads: parse (httparse) and body framing (RFC 9112
//! §6.3, decided by `framing::response`).

use super::framing::{self, ResponseFraming};
use super::header_eq;

#[derive(Debug)]
pub struct Response<'b> {
    pub status: u16,
    pub reason: &'b str,
    pub minor_version: u8,
    pub headers: Vec<httparse::Header<'b>>,
    pub head_len: usize,
}

/// Why an upstream response head is unusable (→ 502).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadResponse {
    Malformed(&'static str),
    TooLarge,
}

/// Parse a response head at the start of `buf`; `Ok(None)` means read more.
pub fn parse(
    buf: &[u8],
    max_headers: usize,
    max_len: usize,
) -> Result<Option<Response<'_>>, BadResponse> {
    let mut headers = vec![httparse::EMPTY_HEADER; max_headers];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(buf) {
        Ok(httparse::Status::Complete(head_len)) => {
            let status = resp.code.unwrap_or(0);
            // RFC 9110 §15: a status code is 100..=599 (httparse takes any
            // three digits, "020" included).
            if !(100..=599).contains(&status) {
                return Err(BadResponse::Malformed("invalid status code"));
            }
            let reason = resp.reason.unwrap_or("");
            let minor_version = resp.version.unwrap_or(1);
            let count = resp.headers.len();
            headers.truncate(count);
            Ok(Some(Response {
                status,
                reason,
                minor_version,
                headers,
                head_len,
            }))
        }
        Ok(httparse::Status::Partial) if buf.len() >= max_len => Err(BadResponse::TooLarge),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(BadResponse::TooLarge),
        Err(_) => Err(BadResponse::Malformed("invalid response head")),
    }
}

impl<'b> Response<'b> {
    pub fn header(&self, name: &str) -> Option<&'b [u8]> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }

    pub fn connection_values(&self) -> impl Iterator<Item = &'b [u8]> + '_ {
        self.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("connection"))
            .map(|h| h.value)
    }

    /// How the body is delimited, given whether the request was HEAD
    /// (RFC 9112 §6.3). Ambiguous framing is an error (→ 502).
    pub fn framing(&self, head_request: bool) -> Result<ResponseFraming, BadResponse> {
        framing::response(self.status, &self.headers, self.minor_version, head_request)
            .map_err(|e| BadResponse::Malformed(e.reason()))
    }

    /// Whether the upstream keeps the connection open after this response.
    pub fn keeps_alive(&self) -> bool {
        let close = self
            .connection_values()
            .any(|v| super::tokens(v).any(|t| header_eq(t, "close")));
        !close && self.minor_version == 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::BodyKind;

    #[test]
    fn parses_101() {
        let raw = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: abc\r\n\r\n\x81\x02hi";
        let r = parse(raw, 64, 4096).unwrap().unwrap();
        assert_eq!(r.status, 101);
        assert_eq!(r.header("sec-websocket-accept"), Some(&b"abc"[..]));
        assert_eq!(&raw[r.head_len..], b"\x81\x02hi");
        assert_eq!(r.framing(false).unwrap().body, BodyKind::None);
    }

    #[test]
    fn framing() {
        let r = parse(
            b"HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\n\r\n",
            64,
            4096,
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.framing(false).unwrap().body, BodyKind::Length(9));
        assert_eq!(r.framing(true).unwrap().body, BodyKind::None);
        let r = parse(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            64,
            4096,
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.framing(false).unwrap().body, BodyKind::Chunked);
        let r = parse(b"HTTP/1.0 200 OK\r\n\r\n", 64, 4096)
            .unwrap()
            .unwrap();
        assert_eq!(r.framing(false).unwrap().body, BodyKind::UntilClose);
        assert!(!r.keeps_alive());
        let r = parse(b"HTTP/1.1 204 No Content\r\n\r\n", 64, 4096)
            .unwrap()
            .unwrap();
        assert_eq!(r.framing(false).unwrap().body, BodyKind::None);
    }

    #[test]
    fn bad_heads() {
        assert!(parse(b"HTTP/1.1 2x0 OK\r\n\r\n", 64, 4096).is_err());
        assert!(parse(b"HTTP/1.1 020 OK\r\n\r\n", 64, 4096).is_err());
        assert!(parse(b"HTTP/1.1 600 OK\r\n\r\n", 64, 4096).is_err());
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\nX: y", 64, 10).unwrap_err(),
            BadResponse::TooLarge
        );
        assert!(parse(b"HTTP/1.1 200 OK\r\n", 64, 4096).unwrap().is_none());
        let r = parse(
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            64,
            4096,
        )
        .unwrap()
        .unwrap();
        assert!(r.framing(false).is_err());
    }
}
