//! A decoded field section (RFC 9113 §8.1, §8.2, §8.3) as the connection
//! hands it out: the fields copied once into a per-worker [`Scratch`]
//! (bytes in one buffer, one small record per field), so a header block
//! costs no allocation per field and the connection holds nothing once it
//! is handed out.
//!
//! A request's fields are checked by the one request check,
//! [`request::Builder`], fed here field by field as the block decodes
//! (§8.1.1, §8.2, §8.3, §8.5, RFC 8441 §4: see `request.rs`); its verdict
//! comes out with the fields ([`Checked`]), and a malformed request is the
//! collector's error, which the connection refuses with RST_STREAM
//! PROTOCOL_ERROR (and charges to the client's budget). This file keeps
//! what the connection itself reads — the pseudo fields, the regular
//! fields in order, the `content-length` it holds DATA to — and the checks
//! of a trailer section (§8.1: no pseudo-header fields; §8.2.1 names and
//! values; §8.2.2 connection-specific fields; a content-length that
//! parses), which the request check does not see.

use super::hpack::Flags;
use super::request::{self, Head, Reject, Scheme};

/// Per-worker buffers the connection decodes header blocks into: lend one
/// to [`super::conn::Connection::recv`]. They grow to the largest block
/// seen (bounded by `max_header_list_size`, plus Huffman's 8/5 for the
/// decoder's scratch) and are reused; no connection holds them.
#[derive(Debug, Default)]
pub struct Scratch {
    /// The HPACK decoder's buffer for Huffman strings.
    pub(crate) huffman: Vec<u8>,
    /// Names and values, back to back.
    bytes: Vec<u8>,
    /// One record per regular field.
    spans: Vec<Span>,
}

impl Scratch {
    /// Heap bytes held (for the caller's accounting).
    pub fn heap_bytes(&self) -> usize {
        self.huffman.capacity()
            + self.bytes.capacity()
            + self.spans.capacity() * std::mem::size_of::<Span>()
    }
}

/// Where one field is in [`Scratch::bytes`]: the name at `start`, the
/// value right after it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Span {
    start: u32,
    name_len: u32,
    value_len: u32,
    never_indexed: bool,
}

impl Span {
    fn name<'a>(&self, bytes: &'a [u8]) -> &'a [u8] {
        let s = self.start as usize;
        &bytes[s..s + self.name_len as usize]
    }

    fn value<'a>(&self, bytes: &'a [u8]) -> &'a [u8] {
        let s = self.start as usize + self.name_len as usize;
        &bytes[s..s + self.value_len as usize]
    }
}

/// The request pseudo-header fields (§8.3.1, RFC 8441 §4), in this order.
const PSEUDO: [&[u8]; 5] = [
    b":method",
    b":scheme",
    b":authority",
    b":path",
    b":protocol",
];
const METHOD: usize = 0;
const SCHEME: usize = 1;
const AUTHORITY: usize = 2;
const PATH: usize = 3;
const PROTOCOL: usize = 4;

/// One field of a [`Fields`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    pub name: &'a [u8],
    pub value: &'a [u8],
    /// Sent "never indexed" (RFC 7541 §6.2.3): re-encode it so.
    pub never_indexed: bool,
}

/// A decoded request head or trailer section, borrowed from the
/// [`Scratch`] it was decoded into: the pseudo-header fields by name and
/// the regular fields in order.
#[derive(Clone, Copy)]
pub struct Fields<'a> {
    bytes: &'a [u8],
    spans: &'a [Span],
    pseudo: [Option<(u32, u32)>; 5],
    content_length: Option<u64>,
}

impl<'a> Fields<'a> {
    fn pseudo(&self, i: usize) -> Option<&'a [u8]> {
        self.pseudo[i].map(|(s, l)| &self.bytes[s as usize..(s + l) as usize])
    }

    /// `:method`.
    pub fn method(&self) -> Option<&'a [u8]> {
        self.pseudo(METHOD)
    }

    /// `:scheme`.
    pub fn scheme(&self) -> Option<&'a [u8]> {
        self.pseudo(SCHEME)
    }

    /// `:authority`.
    pub fn authority(&self) -> Option<&'a [u8]> {
        self.pseudo(AUTHORITY)
    }

    /// `:path`.
    pub fn path(&self) -> Option<&'a [u8]> {
        self.pseudo(PATH)
    }

    /// `:protocol` (RFC 8441 §4: extended CONNECT, e.g. `websocket`).
    pub fn protocol(&self) -> Option<&'a [u8]> {
        self.pseudo(PROTOCOL)
    }

    /// The request's `content-length`, which the connection holds its DATA
    /// to (§8.1.1).
    pub fn content_length(&self) -> Option<u64> {
        self.content_length
    }

    /// The regular fields, in the order received.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Field<'a>> + 'a {
        let bytes = self.bytes;
        self.spans.iter().map(move |s| Field {
            name: s.name(bytes),
            value: s.value(bytes),
            never_indexed: s.never_indexed,
        })
    }

    /// The number of regular fields.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The first regular field named `name` (lowercase).
    pub fn get(&self, name: &[u8]) -> Option<&'a [u8]> {
        self.iter().find(|f| f.name == name).map(|f| f.value)
    }
}

impl std::fmt::Debug for Fields<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut list = f.debug_list();
        for (i, name) in PSEUDO.iter().enumerate() {
            if let Some(v) = self.pseudo(i) {
                list.entry(&(String::from_utf8_lossy(name), String::from_utf8_lossy(v)));
            }
        }
        for field in self.iter() {
            list.entry(&(
                String::from_utf8_lossy(field.name),
                String::from_utf8_lossy(field.value),
            ));
        }
        list.finish()
    }
}

/// What is being decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A request head, checked by [`request::Builder`] (the one request
    /// check): `connect_protocol`: ringway advertised
    /// SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441 §3); `scheme`: the
    /// connection's; `end_stream`: the HEADERS' END_STREAM.
    Request {
        connect_protocol: bool,
        scheme: Scheme,
        end_stream: bool,
    },
    /// A trailer section (§8.1): no pseudo-header fields.
    Trailers,
    /// A block decoded only to keep the HPACK table in step: nothing kept.
    Discard,
}

/// Collects the fields of one block into a [`Scratch`], checking them as
/// they come (the decoder's callback cannot fail, so the first problem is
/// remembered and the block decoded to its end).
pub(crate) struct Collector<'s> {
    kind: Kind,
    bytes: &'s mut Vec<u8>,
    spans: &'s mut Vec<Span>,
    pseudo: [Option<(u32, u32)>; 5],
    content_length: Option<u64>,
    malformed: Option<&'static str>,
    /// A request's fields go to the request check as they come.
    builder: Option<request::Builder>,
}

/// A request's verdict from [`request::Builder`] beyond malformed (which
/// the connection refuses itself): the head, or an answered refusal.
pub type Checked = Result<Head, Reject>;

impl<'s> Collector<'s> {
    /// A collector over `scratch`'s field buffers (cleared), and the
    /// Huffman buffer for the decoder beside it.
    pub(crate) fn new(kind: Kind, scratch: &'s mut Scratch) -> (&'s mut Vec<u8>, Self) {
        let Scratch {
            huffman,
            bytes,
            spans,
        } = scratch;
        (huffman, Collector::over(kind, bytes, spans))
    }

    fn over(kind: Kind, bytes: &'s mut Vec<u8>, spans: &'s mut Vec<Span>) -> Self {
        bytes.clear();
        spans.clear();
        Collector {
            kind,
            bytes,
            spans,
            pseudo: [None; 5],
            content_length: None,
            malformed: None,
            builder: match kind {
                Kind::Request {
                    connect_protocol,
                    scheme,
                    ..
                } => Some(request::Builder::new(scheme, connect_protocol)),
                _ => None,
            },
        }
    }

    fn malformed(&mut self, why: &'static str) {
        if self.malformed.is_none() {
            self.malformed = Some(why);
        }
    }

    /// One decoded field.
    pub(crate) fn field(&mut self, name: &[u8], value: &[u8], flags: Flags) {
        if self.kind == Kind::Discard || self.malformed.is_some() {
            return;
        }
        if let Some(b) = &mut self.builder {
            // A request: the request check judges it; only what the
            // connection reads is kept here (the pseudo fields, the
            // regular fields, the content-length its DATA is held to).
            b.field(name, value);
            return self.keep_request_field(name, value, flags);
        }
        if let Some(why) = check_value(value) {
            return self.malformed(why);
        }
        if name.first() == Some(&b':') {
            return self.pseudo_field();
        }
        if let Some(why) = check_name(name) {
            return self.malformed(why);
        }
        match name {
            b"connection" | b"keep-alive" | b"proxy-connection" | b"transfer-encoding"
            | b"upgrade" => return self.malformed("connection-specific field (RFC 9113 §8.2.2)"),
            b"te" if value != b"trailers" => {
                return self.malformed("te other than \"trailers\" (RFC 9113 §8.2.2)")
            }
            b"content-length" => match parse_length(value) {
                Some(n) if self.content_length.is_none_or(|m| m == n) => {
                    self.content_length = Some(n)
                }
                Some(_) => return self.malformed("content-length values differ"),
                None => return self.malformed("content-length is not a number"),
            },
            _ => {}
        }
        self.push(name, value, flags.never_indexed);
    }

    /// A request field, unchecked (the Builder checks): the first of
    /// each known pseudo field, the regular ones, the first content-length
    /// that is a number.
    fn keep_request_field(&mut self, name: &[u8], value: &[u8], flags: Flags) {
        if name.first() == Some(&b':') {
            if let Some(i) = PSEUDO.iter().position(|p| *p == name) {
                if self.pseudo[i].is_none() {
                    let start = self.bytes.len() as u32;
                    self.bytes.extend_from_slice(value);
                    self.pseudo[i] = Some((start, value.len() as u32));
                }
            }
            return;
        }
        if name == b"content-length" && self.content_length.is_none() {
            self.content_length = parse_length(value);
        }
        self.push(name, value, flags.never_indexed);
    }

    /// A pseudo-header field outside a request: only trailers get here.
    fn pseudo_field(&mut self) {
        self.malformed("pseudo-header field in trailers (RFC 9113 §8.1)")
    }

    fn push(&mut self, name: &[u8], value: &[u8], never_indexed: bool) {
        let start = self.bytes.len() as u32;
        self.bytes.extend_from_slice(name);
        self.bytes.extend_from_slice(value);
        self.spans.push(Span {
            start,
            name_len: name.len() as u32,
            value_len: value.len() as u32,
            never_indexed,
        });
    }

    /// The whole block is in: the checks on the section as a whole. `Ok`
    /// with the fields, or the reason the request is malformed.
    /// For a request, the request check's verdict comes with the fields
    /// (`Some`); a malformed request is the `Err`.
    pub(crate) fn finish(self) -> Result<(Fields<'s>, Option<Checked>), &'static str> {
        if let Some(why) = self.malformed {
            return Err(why);
        }
        let checked = match (self.builder, self.kind) {
            (Some(b), Kind::Request { end_stream, .. }) => match b.finish(end_stream) {
                Err(Reject::Malformed(why)) => return Err(why),
                verdict => Some(verdict),
            },
            _ => None,
        };
        let fields = Fields {
            bytes: self.bytes,
            spans: self.spans,
            pseudo: self.pseudo,
            content_length: self.content_length,
        };
        Ok((fields, checked))
    }
}

/// §8.2.1: a field name's characters (its emptiness included).
fn check_name(name: &[u8]) -> Option<&'static str> {
    if name.is_empty() {
        return Some("empty field name");
    }
    if name
        .iter()
        .any(|&b| b <= 0x20 || b.is_ascii_uppercase() || b >= 0x7f || b == b':')
    {
        return Some("field name with a character RFC 9113 §8.2.1 forbids");
    }
    None
}

/// §8.2.1: a field value's characters.
fn check_value(value: &[u8]) -> Option<&'static str> {
    if value.iter().any(|&b| matches!(b, 0 | b'\r' | b'\n')) {
        return Some("field value with NUL, CR or LF (RFC 9113 §8.2.1)");
    }
    let ws = |b: Option<&u8>| matches!(b, Some(b' ' | b'\t'));
    if ws(value.first()) || ws(value.last()) {
        return Some("field value with leading or trailing whitespace (RFC 9113 §8.2.1)");
    }
    None
}

/// A content-length value: 1 to 19 digits (no sign, no list).
fn parse_length(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // Bounded by the 19 digits.
    Some(v.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(kind: Kind, list: &[(&str, &str)]) -> Result<Vec<(String, String)>, &'static str> {
        let mut scratch = Scratch::default();
        let (_, mut c) = Collector::new(kind, &mut scratch);
        for (n, v) in list {
            c.field(n.as_bytes(), v.as_bytes(), Flags::default());
        }
        let (f, _) = c.finish()?;
        let mut out = Vec::new();
        for (i, p) in PSEUDO.iter().enumerate() {
            if let Some(v) = f.pseudo(i) {
                out.push((
                    String::from_utf8_lossy(p).into(),
                    String::from_utf8_lossy(v).into(),
                ));
            }
        }
        for x in f.iter() {
            out.push((
                String::from_utf8_lossy(x.name).into(),
                String::from_utf8_lossy(x.value).into(),
            ));
        }
        Ok(out)
    }

    const REQ: Kind = Kind::Request {
        connect_protocol: false,
        scheme: Scheme::Http,
        end_stream: false,
    };
    const REQ_WS: Kind = Kind::Request {
        connect_protocol: true,
        scheme: Scheme::Http,
        end_stream: false,
    };

    #[test]
    fn a_plain_request() {
        let got = collect(
            REQ,
            &[
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/x"),
                (":authority", "a.example"),
                ("accept", "*/*"),
                ("te", "trailers"),
            ],
        )
        .unwrap();
        assert_eq!(got.len(), 6);
        assert_eq!(got[0], (":method".into(), "GET".into()));
        assert_eq!(got[5], ("te".into(), "trailers".into()));
    }

    #[test]
    fn malformed_requests() {
        let base = [(":method", "GET"), (":scheme", "http"), (":path", "/")];
        let with = |extra: (&'static str, &'static str)| {
            let mut v = base.to_vec();
            v.push(extra);
            v
        };
        for bad in [
            with(("Accept", "x")),
            with(("a b", "x")),
            with(("a:b", "x")),
            with(("", "x")),
            with(("x", " lead")),
            with(("x", "trail\t")),
            with(("x", "a\r\nb")),
            with(("connection", "close")),
            with(("transfer-encoding", "chunked")),
            with(("upgrade", "websocket")),
            with(("te", "gzip")),
            with(("content-length", "1x")),
            with(("content-length", "")),
            with((":method", "POST")),
            with((":status", "200")),
            with((":protocol", "websocket")),
            vec![
                (":method", "GET"),
                ("a", "b"),
                (":scheme", "http"),
                (":path", "/"),
            ],
            vec![(":method", "GET"), (":path", "/")],
            vec![(":method", "GET"), (":scheme", "http"), (":path", "")],
            vec![(":scheme", "http"), (":path", "/")],
            vec![
                (":method", "CONNECT"),
                (":authority", "a:1"),
                (":path", "/"),
            ],
            vec![(":method", "CONNECT")],
        ] {
            assert!(collect(REQ, &bad).is_err(), "{bad:?}");
        }
        let mut two = base.to_vec();
        two.push(("content-length", "5"));
        two.push(("content-length", "6"));
        assert!(collect(REQ, &two).is_err());
        two.pop();
        two.push(("content-length", "5"));
        assert!(collect(REQ, &two).is_ok());
    }

    #[test]
    fn connect_and_extended_connect() {
        let connect = [(":method", "CONNECT"), (":authority", "a:443")];
        assert!(collect(REQ, &connect).is_ok());
        let ws = [
            (":method", "CONNECT"),
            (":protocol", "websocket"),
            (":scheme", "https"),
            (":path", "/chat"),
            (":authority", "a"),
        ];
        assert!(collect(REQ, &ws).is_err(), "not advertised");
        assert!(collect(REQ_WS, &ws).is_ok());
        assert!(collect(REQ_WS, &ws[..4]).is_err(), "no :authority");
    }

    /// The request check's verdict comes with the fields: a head, or an
    /// answered refusal; malformed is the collector's error.
    #[test]
    fn the_request_check_verdict() {
        let verdict = |kind: Kind, list: &[(&str, &str)]| {
            let mut scratch = Scratch::default();
            let (_, mut c) = Collector::new(kind, &mut scratch);
            for (n, v) in list {
                c.field(n.as_bytes(), v.as_bytes(), Flags::default());
            }
            c.finish()
                .map(|(_, checked)| checked.expect("a request has a verdict"))
        };
        let get = [
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/x"),
            (":authority", "a"),
        ];
        let head = verdict(REQ, &get).unwrap().unwrap();
        assert_eq!(head.method(), "GET");
        let connect = [(":method", "CONNECT"), (":authority", "a:443")];
        let refused = verdict(REQ, &connect).unwrap().unwrap_err();
        assert_eq!(refused.status(), Some(405));
        let https = Kind::Request {
            connect_protocol: false,
            scheme: Scheme::Https,
            end_stream: true,
        };
        assert_eq!(
            verdict(https, &get).unwrap().unwrap_err().status(),
            Some(421)
        );
        let ended = Kind::Request {
            connect_protocol: false,
            scheme: Scheme::Http,
            end_stream: true,
        };
        let mut with_length = get.to_vec();
        with_length.push(("content-length", "3"));
        assert!(verdict(ended, &with_length).is_err(), "length without DATA");
        // No :scheme, no :path: malformed.
        assert!(verdict(REQ, &[(":method", "GET")]).is_err());
    }

    #[test]
    fn trailers_take_no_pseudo_fields() {
        assert!(collect(Kind::Trailers, &[("grpc-status", "0")]).is_ok());
        assert!(collect(Kind::Trailers, &[(":path", "/")]).is_err());
    }

    #[test]
    fn content_length_values() {
        assert_eq!(parse_length(b"0"), Some(0));
        assert_eq!(parse_length(b"18446744073709551615"), None, "20 digits");
        assert_eq!(
            parse_length(b"9999999999999999999"),
            Some(9_999_999_999_999_999_999)
        );
        assert_eq!(parse_length(b"+1"), None);
    }
}
