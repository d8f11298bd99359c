//! HTTP/1.1 on bytes: request and response heads, body framing, the
//! upstream head rewrite, and the answers ringway writes itself.
//!
//! Everything here is pure: `&[u8]` in, values out, no I/O, so it is unit
//! tested (and fuzzable) on byte fixtures. RFC 9110 (semantics) and RFC 9112
//! (HTTP/1.1 message syntax) are the references.

pub mod chunked;
pub mod date;
pub mod framing;
pub mod gzip;
pub mod path;
pub mod reply;
pub mod request;
pub mod response;
pub mod rewrite;
pub mod upgrade;

/// A byte range of a parsed head's buffer: parsed heads own their buffer
/// and keep their parts as spans of it, so they travel without borrowing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    start: u32,
    len: u32,
}

impl Span {
    /// The span of `part`, a sub-slice of `whole`. An empty part may point
    /// anywhere (httparse's default for a missing reason phrase): it is the
    /// empty span.
    pub(crate) fn of(whole: &[u8], part: &[u8]) -> Span {
        if part.is_empty() {
            return Span { start: 0, len: 0 };
        }
        let start = part.as_ptr() as usize - whole.as_ptr() as usize;
        Span {
            start: start as u32,
            len: part.len() as u32,
        }
    }

    pub(crate) fn get(self, buf: &[u8]) -> &[u8] {
        &buf[self.start as usize..(self.start + self.len) as usize]
    }

    /// The (name, value) spans of httparse's header fields.
    pub(crate) fn headers(buf: &[u8], headers: &[httparse::Header<'_>]) -> Vec<(Span, Span)> {
        headers
            .iter()
            .map(|h| (Span::of(buf, h.name.as_bytes()), Span::of(buf, h.value)))
            .collect()
    }
}

/// Why a head could not be accepted; each maps to one status code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadError {
    /// 400
    Malformed(&'static str),
    /// 414: the request line does not fit the head buffer.
    UriTooLong,
    /// 431: the header section does not fit the head buffer.
    HeadersTooLarge,
    /// 431: more header fields than `max_headers`.
    TooManyHeaders,
    /// 501: a transfer coding ringway does not implement.
    NotImplemented(&'static str),
    /// 505
    Version,
}

impl HeadError {
    pub fn status(&self) -> u16 {
        match self {
            HeadError::Malformed(_) => 400,
            HeadError::UriTooLong => 414,
            HeadError::HeadersTooLarge | HeadError::TooManyHeaders => 431,
            HeadError::NotImplemented(_) => 501,
            HeadError::Version => 505,
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            HeadError::Malformed(why) => why,
            HeadError::UriTooLong => "request line too long",
            HeadError::HeadersTooLarge => "request header section too large",
            HeadError::TooManyHeaders => "too many header fields",
            HeadError::NotImplemented(why) => why,
            HeadError::Version => "unsupported HTTP version",
        }
    }
}

/// How a message body is delimited (RFC 9112 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    None,
    Length(u64),
    Chunked,
    /// Response only: the body runs until the upstream closes.
    UntilClose,
}

impl BodyKind {
    /// Whether no body bytes follow the head (`Content-Length: 0` included).
    pub fn is_empty(self) -> bool {
        matches!(self, BodyKind::None | BodyKind::Length(0))
    }
}

/// Hop-by-hop fields that are never forwarded (RFC 9110 §7.6.1), besides
/// the ones a `Connection` header names.
pub const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

/// RFC 9110 §5.6.2 token characters: the configuration's check, so a
/// header name the config accepts is one the parser accepts.
pub use ringway_config::is_tchar;

/// Case-insensitive comparison of a header token with an ASCII name.
pub fn header_eq(a: &[u8], b: &str) -> bool {
    a.eq_ignore_ascii_case(b.as_bytes())
}

/// Case-insensitive comparison of two header tokens.
pub fn token_eq(a: &[u8], b: &[u8]) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// The comma-separated tokens of a list-valued field, trimmed, empties
/// skipped (RFC 9110 §5.6.1).
pub fn tokens(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|&b| b == b',').map(trim).filter(|t| !t.is_empty())
}

pub fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

pub fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

/// A Content-Length value: digits only (RFC 9110 §8.6).
pub fn parse_content_length(v: &[u8]) -> Option<u64> {
    let v = trim(v);
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// Fields whose meaning a `Connection` header can never take away: the
/// message's framing and target, and the upgrade ringway decided on. They
/// are written by ringway itself for the next hop (RFC 9110 §7.6.1 lets a
/// sender name any field in `Connection`; naming these is how a client
/// makes a proxy and its backend disagree on where a request ends).
pub const PROTECTED: &[&str] = &["content-length", "transfer-encoding", "host", "upgrade"];

/// Whether `name` must not be forwarded, given the `Connection` values of
/// the same message. A `Connection` value naming a [`PROTECTED`] field does
/// not make it hop-by-hop.
pub fn is_hop_by_hop<'a>(
    name: &[u8],
    connection_values: impl IntoIterator<Item = &'a [u8]>,
) -> bool {
    if HOP_BY_HOP.iter().any(|h| header_eq(name, h)) {
        return true;
    }
    if PROTECTED.iter().any(|p| header_eq(name, p)) {
        return false;
    }
    connection_values
        .into_iter()
        .any(|v| tokens(v).any(|t| token_eq(t, name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_lists() {
        let t: Vec<&[u8]> = tokens(b" keep-alive ,Upgrade,, x ").collect();
        assert_eq!(t, vec![&b"keep-alive"[..], b"Upgrade", b"x"]);
    }

    #[test]
    fn content_length_values() {
        assert_eq!(parse_content_length(b" 42 "), Some(42));
        assert_eq!(parse_content_length(b"-1"), None);
        assert_eq!(parse_content_length(b"1,2"), None);
        assert_eq!(parse_content_length(b""), None);
        assert_eq!(parse_content_length(b"99999999999999999999"), None);
    }

    #[test]
    fn hop_by_hop_names() {
        assert!(is_hop_by_hop(b"Keep-Alive", []));
        assert!(is_hop_by_hop(b"X-Secret", [&b"Upgrade, x-secret"[..]]));
        assert!(!is_hop_by_hop(b"X-Other", [&b"Upgrade, x-secret"[..]]));
        // Class 2 of the smuggling issue: Connection cannot strip framing.
        let conn = [&b"Content-Length, Transfer-Encoding, Host"[..]];
        assert!(!is_hop_by_hop(b"Content-Length", conn));
        assert!(!is_hop_by_hop(b"transfer-encoding", conn));
        assert!(!is_hop_by_hop(b"Host", conn));
        assert!(is_hop_by_hop(b"Upgrade", []));
    }
}
