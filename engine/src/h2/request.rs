//! An HTTP/2 request head, checked (RFC 9113 §8.1–§8.5, RFC 8441 §4) and
//! turned into the HTTP/1.1 head ringway's own parser reads.
//!
//! Each HTTP/2 stream runs through the HTTP/1.1 phases (route, return,
//! static, proxy, upgrade/tunnel): its decoded field list is checked here
//! into a [`Head`], written as HTTP/1.1 head bytes by [`to_http1`], and those
//! bytes are parsed by `http::request::parse` like any HTTP/1.1 request, so
//! routing, limits, logging and the upstream rewrite stay one code path.
//!
//! That makes this module the h2→h1 downgrade, where HTTP/2 request
//! smuggling lives: a field HTTP/2 carries as one opaque string must never
//! become several HTTP/1.1 lines, a second framing or an upgrade. So
//! nothing that RFC 9113 calls malformed is forwarded, and every check
//! names the rule it enforces:
//!
//! - §8.2.1 field validity: names are non-empty lowercase tokens (RFC 9110
//!   §5.1; so no CR, LF, NUL, SP or colon), pseudo-headers aside; values
//!   hold no NUL, CR or LF and neither start nor end with SP or HTAB.
//! - §8.2.2 connection-specific fields: `connection`, `keep-alive`,
//!   `proxy-connection`, `transfer-encoding`, `upgrade`, and `te` other than
//!   `trailers`.
//! - §8.3 pseudo-headers: only the defined ones (`:protocol` only where
//!   RFC 8441 §3 was advertised; `:status` never in a request), each once,
//!   all before the regular fields; `:method`, `:scheme` and `:path`
//!   present except for CONNECT (§8.5); `:path` starting with `/`
//!   (§8.3.1); `:authority` without userinfo and agreeing with `host`.
//! - §8.1.1 `content-length`: digits only, one value, and zero when the
//!   HEADERS frame ends the stream ([`Head::check_data`] holds DATA to it).
//! - §8.2.3 cookies: several `cookie` fields are joined with "; " into one,
//!   forwarded after the other fields (empty ones add nothing).
//! - §8.5 and RFC 8441 §4: CONNECT and extended CONNECT.
//!
//! What the RFCs call malformed is a stream error of type PROTOCOL_ERROR
//! ([`Reject::Malformed`], §8.1.1). A well-formed request that ringway will
//! not serve is answered instead ([`Reject::Answer`]), with the status its
//! HTTP/1.1 side gives the same request, so both ends refuse alike.
//!
//! Decisions where the RFCs leave room (each where it is made):
//! - a `host` field that agrees with `:authority` is dropped; they agree
//!   when equal ignoring ASCII case, or equal once the scheme's default
//!   port (`:443` for https, `:80` for http) is removed from either; any
//!   other difference, another port included, is malformed (§8.3.1 says
//!   SHOULD): one of the two would be routed and the other could be read
//!   by the backend; a second `host` is 400 (HTTP/1.1 allows one);
//! - two `content-length` fields with the same value are refused (400), as
//!   ringway's HTTP/1.1 side refuses them (one framing decision per
//!   message); different values are malformed;
//! - plain CONNECT (no `:protocol`) is answered 405: ringway is a reverse
//!   proxy, not a forward one, and the request itself is well formed (a
//!   reset would read as a broken request; RFC 9110 §15.5.6 wants an
//!   `Allow` field with the 405, which the answer's writer adds);
//! - `:scheme` must be `http` or `https`, ASCII case aside (else 400), and
//!   the connection's own (else 421 Misdirected Request, RFC 9110
//!   §15.5.20): a request for the other scheme on this connection cannot
//!   be answered authoritatively here, and nothing downstream could tell
//!   (`$scheme` comes from the connection);
//! - `OPTIONS *` is answered 400, as ringway's HTTP/1.1 side answers it;
//! - `:authority` (or `host`) must be visible ASCII, no `@` (userinfo is
//!   malformed, §8.3.1), and pass the HTTP/1.1 side's `Host` check;
//!   `:path` must be visible ASCII without `#` and normalise as the
//!   HTTP/1.1 side requires; control characters other than NUL, CR and LF
//!   in a value are answered 400 (RFC 9110 §5.5, and what httparse
//!   refuses);
//! - extended CONNECT: `:protocol` must be one protocol (`name` or
//!   `name/version`, RFC 9110 §7.8), never a list; it may not declare a
//!   body (`content-length`, 400 — an upgrade request with a body is 400 on
//!   the HTTP/1.1 side too) nor end the stream on its HEADERS (400: the
//!   tunnel would have nothing to carry); for `websocket`, a client's
//!   `sec-websocket-version` must be 13 (400 otherwise) and its
//!   `sec-websocket-key`/`-accept`/`-version` are replaced by ringway's own;
//! - `te: trailers` (any case) is accepted and not forwarded: it is
//!   hop-by-hop in HTTP/1.1, where ringway's rewrite drops it anyway.

use super::frame::ErrorCode;
use super::websocket;
use crate::http::chunked;
use crate::http::request::valid_host;
use crate::http::{framing, is_tchar, parse_content_length, path, BodyKind};

/// The scheme of the connection a stream arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    /// The `:port` suffix an authority may leave out (RFC 9110 §4.2).
    fn default_port(self) -> &'static [u8] {
        match self {
            Scheme::Http => b":80",
            Scheme::Https => b":443",
        }
    }
}

/// Why a request head is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// Malformed (RFC 9113 §8.1.1): reset the stream with PROTOCOL_ERROR
    /// (a response may go first, §8.1.1 allows it; nothing goes upstream).
    Malformed(&'static str),
    /// Well formed, but refused: answer with `status`, then end the stream.
    Answer { status: u16, why: &'static str },
}

impl Reject {
    /// For the log.
    pub fn reason(self) -> &'static str {
        match self {
            Reject::Malformed(why) | Reject::Answer { why, .. } => why,
        }
    }

    /// The RST_STREAM code, for a malformed request.
    pub fn error_code(self) -> Option<ErrorCode> {
        match self {
            Reject::Malformed(_) => Some(ErrorCode::ProtocolError),
            Reject::Answer { .. } => None,
        }
    }

    /// The status to answer, for a refused one.
    pub fn status(self) -> Option<u16> {
        match self {
            Reject::Malformed(_) => None,
            Reject::Answer { status, .. } => Some(status),
        }
    }
}

fn answer(status: u16, why: &'static str) -> Reject {
    Reject::Answer { status, why }
}

/// A list of (name, value) fields in one buffer: one allocation for the
/// bytes and one for the index, whatever the number of fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldList {
    buf: Vec<u8>,
    /// (start, name length, value length) per field.
    index: Vec<(usize, usize, usize)>,
}

impl FieldList {
    pub fn new() -> Self {
        FieldList::default()
    }

    pub fn push(&mut self, name: &[u8], value: &[u8]) {
        self.index.push((self.buf.len(), name.len(), value.len()));
        self.buf.extend_from_slice(name);
        self.buf.extend_from_slice(value);
    }

    /// A field whose name is lowercased on the way in.
    pub fn push_lowercase(&mut self, name: &[u8], value: &[u8]) {
        let start = self.buf.len();
        self.push(name, value);
        self.buf[start..start + name.len()].make_ascii_lowercase();
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The fields in order: (name, value).
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + Clone {
        self.index.iter().map(|&(start, n, v)| {
            (
                &self.buf[start..start + n],
                &self.buf[start + n..start + n + v],
            )
        })
    }

    /// The first value of `name` (exact, lowercase).
    pub fn get(&self, name: &[u8]) -> Option<&[u8]> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }
}

/// A byte range of [`Head::pseudo`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Span {
    start: usize,
    end: usize,
}

/// Pseudo-header slots.
const METHOD: usize = 0;
const SCHEME: usize = 1;
const AUTHORITY: usize = 2;
const PATH: usize = 3;
const PROTOCOL: usize = 4;

/// A checked HTTP/2 request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The pseudo-header values (and the `host` value standing in for a
    /// missing `:authority`), visible ASCII once checked.
    pseudo: Vec<u8>,
    method: Span,
    scheme: Scheme,
    authority: Span,
    path: Span,
    protocol: Option<Span>,
    /// The regular fields as forwarded: as received, less `host`,
    /// `content-length` and `te` (consumed), the cookies joined into one
    /// `cookie` field at the end, and for a WebSocket tunnel less the
    /// client's `sec-websocket-key`, `-accept` and `-version`.
    fields: FieldList,
    /// The declared `content-length`.
    pub content_length: Option<u64>,
    /// HEADERS carried END_STREAM: no DATA follows.
    pub end_stream: bool,
}

fn ascii(b: &[u8]) -> &str {
    // Checked to be visible ASCII before a Head is made.
    std::str::from_utf8(b).unwrap_or("")
}

impl Head {
    fn part(&self, s: Span) -> &[u8] {
        &self.pseudo[s.start..s.end]
    }

    /// `:method` (for an extended CONNECT, "CONNECT").
    pub fn method(&self) -> &str {
        ascii(self.part(self.method))
    }

    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// `:authority`, or the `host` field where there is none.
    pub fn authority(&self) -> &str {
        ascii(self.part(self.authority))
    }

    /// `:path`: path and query.
    pub fn path(&self) -> &str {
        ascii(self.part(self.path))
    }

    /// RFC 8441's `:protocol`, for an extended CONNECT.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.map(|s| ascii(self.part(s)))
    }

    /// An extended CONNECT: after the upstream's 101 the stream is a
    /// tunnel (RFC 8441 §4).
    pub fn is_tunnel(&self) -> bool {
        self.protocol.is_some()
    }

    /// An extended CONNECT for `:protocol websocket` (RFC 8441 §5).
    pub fn is_websocket(&self) -> bool {
        self.protocol()
            .is_some_and(|p| p.eq_ignore_ascii_case("websocket"))
    }

    /// The regular fields forwarded, in order (see the field's comment).
    pub fn fields(&self) -> impl Iterator<Item = (&[u8], &[u8])> + Clone {
        self.fields.iter()
    }

    /// What follows HEADERS, as far as HEADERS tells.
    pub fn body(&self) -> Body {
        if self.end_stream {
            Body::Empty
        } else {
            Body::Data
        }
    }

    /// Hold the DATA received to the declared `content-length` (RFC 9113
    /// §8.1.1): `received` bytes so far, `end_stream` once the stream's
    /// last DATA came. More than declared, or less at the end, is
    /// malformed.
    pub fn check_data(&self, received: u64, end_stream: bool) -> Result<(), Reject> {
        match self.content_length {
            Some(n) if received > n => Err(Reject::Malformed("DATA beyond content-length")),
            Some(n) if end_stream && received < n => {
                Err(Reject::Malformed("DATA shorter than content-length"))
            }
            _ => Ok(()),
        }
    }
}

/// Collects a header list field by field, as the HPACK decoder hands them
/// out ([`Builder::field`]), and checks it as a whole ([`Builder::finish`]).
/// The first malformed field decides; later ones are not looked at.
#[derive(Debug)]
pub struct Builder {
    scheme: Scheme,
    connect_protocol: bool,
    pseudo: Vec<u8>,
    slots: [Option<Span>; 5],
    fields: FieldList,
    regular_seen: bool,
    cookies: Vec<u8>,
    host: Option<Span>,
    content_length: Option<u64>,
    malformed: Option<&'static str>,
    answer: Option<Reject>,
}

/// Checks the decoded field list of a request's HEADERS into a [`Head`]:
/// `end_stream` is HEADERS' END_STREAM flag, `scheme` the connection's,
/// `connect_protocol` whether ringway advertised
/// SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441 §3).
pub fn validate<'a, I>(
    fields: I,
    end_stream: bool,
    scheme: Scheme,
    connect_protocol: bool,
) -> Result<Head, Reject>
where
    I: IntoIterator<Item = (&'a [u8], &'a [u8])>,
{
    let mut b = Builder::new(scheme, connect_protocol);
    for (name, value) in fields {
        b.field(name, value);
    }
    b.finish(end_stream)
}

impl Builder {
    pub fn new(scheme: Scheme, connect_protocol: bool) -> Self {
        Builder {
            scheme,
            connect_protocol,
            pseudo: Vec::new(),
            slots: [None; 5],
            fields: FieldList::new(),
            regular_seen: false,
            cookies: Vec::new(),
            host: None,
            content_length: None,
            malformed: None,
            answer: None,
        }
    }

    fn malformed(&mut self, why: &'static str) {
        self.malformed.get_or_insert(why);
    }

    fn refuse(&mut self, status: u16, why: &'static str) {
        self.answer.get_or_insert(answer(status, why));
    }

    fn keep(&mut self, value: &[u8]) -> Span {
        let start = self.pseudo.len();
        self.pseudo.extend_from_slice(value);
        Span {
            start,
            end: self.pseudo.len(),
        }
    }

    fn slot(&self, i: usize) -> Option<&[u8]> {
        self.slots[i].map(|s| &self.pseudo[s.start..s.end])
    }

    fn websocket(&self) -> bool {
        self.slot(PROTOCOL)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"websocket"))
    }

    /// One decoded field.
    pub fn field(&mut self, name: &[u8], value: &[u8]) {
        if self.malformed.is_some() {
            return;
        }
        if name.is_empty() {
            return self.malformed("empty field name");
        }
        // §8.2.1: NUL, CR, LF anywhere in a value, SP or HTAB at its ends.
        if value.iter().any(|&b| matches!(b, 0 | b'\r' | b'\n')) {
            return self.malformed("NUL, CR or LF in a field value");
        }
        if matches!(value.first(), Some(b' ' | b'\t')) || matches!(value.last(), Some(b' ' | b'\t'))
        {
            return self.malformed("whitespace around a field value");
        }
        if name[0] == b':' {
            return self.pseudo_field(&name[1..], value);
        }
        self.regular_seen = true;
        // §8.2.1 / RFC 9110 §5.1: a lowercase token (no colon, no CR, LF,
        // NUL or SP either).
        if name.iter().any(u8::is_ascii_uppercase) {
            return self.malformed("uppercase in a field name");
        }
        if !name.iter().all(|&b| is_tchar(b)) {
            return self.malformed("field name is not a token");
        }
        // RFC 9110 §5.5: other control characters are invalid too; the
        // HTTP/1.1 side cannot carry them (httparse refuses them: 400).
        if value.iter().any(|&b| b < 0x20 && b != b'\t' || b == 0x7f) {
            self.refuse(400, "control character in a field value");
        }
        match name {
            // §8.2.2: connection-specific fields.
            b"connection" | b"keep-alive" | b"proxy-connection" | b"transfer-encoding"
            | b"upgrade" => self.malformed("connection-specific field"),
            b"te" => {
                if !value.eq_ignore_ascii_case(b"trailers") {
                    self.malformed("te other than trailers");
                }
            }
            // §8.3.1: a `host` beside `:authority` must name the same
            // (pseudo-headers came first, so `:authority` is known here);
            // one is kept, as the HTTP/1.1 side allows one.
            b"host" => {
                let disagrees = self
                    .slot(AUTHORITY)
                    .is_some_and(|a| !same_authority(a, value, self.scheme));
                if disagrees {
                    self.malformed("host and :authority disagree");
                } else if self.host.is_some() {
                    self.refuse(400, "repeated host");
                } else {
                    self.host = Some(self.keep(value));
                }
            }
            b"content-length" => match (parse_content_length(value), self.content_length) {
                (None, _) => self.malformed("content-length is not a number"),
                (Some(n), Some(m)) if n != m => self.malformed("content-length values disagree"),
                (Some(_), Some(_)) => self.refuse(400, "repeated content-length"),
                (Some(n), None) => self.content_length = Some(n),
            },
            // §8.2.3: one field on the way to HTTP/1.1. An empty one adds
            // nothing (and would leave "; " at the end).
            b"cookie" => {
                if !value.is_empty() {
                    if !self.cookies.is_empty() {
                        self.cookies.extend_from_slice(b"; ");
                    }
                    self.cookies.extend_from_slice(value);
                }
            }
            // RFC 8441 §5: no key or accept over HTTP/2; ringway writes its
            // own key and version for the HTTP/1.1 handshake.
            b"sec-websocket-key" | b"sec-websocket-accept" if self.websocket() => {}
            b"sec-websocket-version" if self.websocket() => {
                if value != websocket::VERSION {
                    self.refuse(400, "sec-websocket-version other than 13");
                }
            }
            _ => self.fields.push(name, value),
        }
    }

    fn pseudo_field(&mut self, name: &[u8], value: &[u8]) {
        // §8.3: all pseudo-headers before the regular fields.
        if self.regular_seen {
            return self.malformed("pseudo-header field after a regular field");
        }
        let slot = match name {
            b"method" => METHOD,
            b"scheme" => SCHEME,
            b"authority" => AUTHORITY,
            b"path" => PATH,
            // RFC 8441 §3: defined only once ringway advertised it.
            b"protocol" if self.connect_protocol => PROTOCOL,
            // :status included: a response pseudo-header (§8.3.2).
            _ => return self.malformed("unknown pseudo-header field"),
        };
        if self.slots[slot].is_some() {
            return self.malformed("repeated pseudo-header field");
        }
        self.slots[slot] = Some(self.keep(value));
    }

    /// The whole list checked: a [`Head`], or why not. Malformed lists are
    /// reported before refused ones.
    pub fn finish(self, end_stream: bool) -> Result<Head, Reject> {
        if let Some(why) = self.malformed {
            return Err(Reject::Malformed(why));
        }
        let malformed = |why| Err(Reject::Malformed(why));
        let Some(method) = self.slot(METHOD) else {
            return malformed("missing :method");
        };
        if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
            return malformed(":method is not a token");
        }
        let connect = method == b"CONNECT";
        let protocol = self.slot(PROTOCOL);
        if protocol.is_some() && !connect {
            return malformed(":protocol with a method other than CONNECT");
        }
        if connect && protocol.is_none() {
            // §8.5: only :method and :authority.
            if self.slots[SCHEME].is_some()
                || self.slots[PATH].is_some()
                || self.slots[AUTHORITY].is_none()
            {
                return malformed("CONNECT with :scheme or :path, or without :authority");
            }
            return Err(answer(405, "CONNECT: ringway is not a forward proxy"));
        }
        let Some(scheme) = self.slot(SCHEME) else {
            return malformed("missing :scheme");
        };
        let Some(path) = self.slot(PATH) else {
            return malformed("missing :path");
        };
        if protocol.is_some() && self.slots[AUTHORITY].is_none() {
            // RFC 8441 §4.
            return malformed("extended CONNECT without :authority");
        }
        // §8.3.1: "/" and on, or "*" for OPTIONS.
        let asterisk = path == b"*";
        if path.is_empty() {
            return malformed("empty :path");
        }
        if asterisk && method != b"OPTIONS" {
            return malformed(":path * with a method other than OPTIONS");
        }
        if !asterisk && path[0] != b'/' {
            return malformed(":path does not start with /");
        }
        if end_stream && self.content_length.is_some_and(|n| n > 0) {
            // §8.1.1: no DATA can follow.
            return malformed("content-length above 0 with END_STREAM");
        }
        // §8.3.1: userinfo is not allowed in an http(s) authority.
        let authority_slot = self.slots[AUTHORITY].or(self.host);
        let authority = authority_slot.map(|s| &self.pseudo[s.start..s.end]);
        if authority.is_some_and(|a| a.contains(&b'@')) {
            return malformed("userinfo in :authority");
        }

        // Well formed; now what ringway will not serve.
        if let Some(refused) = self.answer {
            return Err(refused);
        }
        if !(scheme.eq_ignore_ascii_case(b"http") || scheme.eq_ignore_ascii_case(b"https")) {
            return Err(answer(400, "unsupported :scheme"));
        }
        if !scheme.eq_ignore_ascii_case(self.scheme.as_str().as_bytes()) {
            return Err(answer(421, ":scheme is not the connection's"));
        }
        let Some(authority) = authority else {
            return Err(answer(400, "no :authority or host"));
        };
        if !authority.iter().all(|&b| b.is_ascii_graphic()) || !valid_host(authority) {
            return Err(answer(400, "bad :authority"));
        }
        if asterisk {
            return Err(answer(400, "unsupported request target"));
        }
        // What the HTTP/1.1 side checks of a target: a request line's
        // characters, no fragment, a path that normalises.
        if !path.iter().all(|&b| b.is_ascii_graphic()) {
            return Err(answer(400, "invalid character in :path"));
        }
        if path.contains(&b'#') {
            return Err(answer(400, "fragment in request target"));
        }
        let before_query = path.split(|&b| b == b'?').next().unwrap_or_default();
        if let Err(e) = path::normalize(ascii(before_query)) {
            return Err(answer(400, e.reason()));
        }
        if let Some(p) = protocol {
            if !is_protocol(p) {
                return Err(answer(400, ":protocol is not one protocol"));
            }
            if self.content_length.is_some() {
                return Err(answer(400, "extended CONNECT with content-length"));
            }
            if end_stream {
                return Err(answer(400, "extended CONNECT with END_STREAM"));
            }
        }

        let Builder {
            pseudo,
            slots,
            mut fields,
            cookies,
            content_length,
            ..
        } = self;
        if !cookies.is_empty() {
            fields.push(b"cookie", &cookies);
        }
        let span = |i: usize| slots[i].unwrap_or_default();
        Ok(Head {
            pseudo,
            method: span(METHOD),
            scheme: self.scheme,
            authority: authority_slot.unwrap_or_default(),
            path: span(PATH),
            protocol: slots[PROTOCOL],
            fields,
            content_length,
            end_stream,
        })
    }
}

/// Whether `:authority` and `host` name the same authority: equal without
/// regard to ASCII case, or once the scheme's default port is left out.
fn same_authority(a: &[u8], h: &[u8], scheme: Scheme) -> bool {
    let port = scheme.default_port();
    let strip = |x: &'_ [u8]| -> usize {
        let n = x.len();
        if n > port.len() && x[n - port.len()..] == *port {
            n - port.len()
        } else {
            n
        }
    };
    a.eq_ignore_ascii_case(h) || a[..strip(a)].eq_ignore_ascii_case(&h[..strip(h)])
}

/// One protocol element of `Upgrade` (RFC 9110 §7.8): `name` or
/// `name/version`, both tokens.
fn is_protocol(p: &[u8]) -> bool {
    let token = |t: &[u8]| !t.is_empty() && t.iter().all(|&b| is_tchar(b));
    match p.iter().position(|&b| b == b'/') {
        Some(i) => token(&p[..i]) && token(&p[i + 1..]),
        None => token(p),
    }
}

/// What follows the request head, as the caller writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// No DATA: HEADERS carried END_STREAM (or the caller already saw an
    /// empty DATA frame end the stream).
    Empty,
    /// DATA frames follow and are relayed as they come.
    Data,
    /// DATA frames follow, `n` bytes in all, and the caller has them all
    /// (it waited for END_STREAM): a `Content-Length` then, not chunks.
    Length(u64),
}

/// Whether a method's request usually has content (RFC 9110 §9.3): an
/// empty one is then said to be empty.
fn expects_body(method: &str) -> bool {
    matches!(method, "POST" | "PUT" | "PATCH")
}

/// Append the HTTP/1.1 head for `head` to `out` and return the framing it
/// declares, which ringway's HTTP/1.1 parser reads back and by which the
/// caller writes DATA ([`write_chunk`] and [`write_last_chunk`] for
/// chunked). `ws_key` is the caller's 16 random bytes for the
/// `Sec-WebSocket-Key` of a WebSocket tunnel (unused otherwise).
///
/// - `METHOD PATH HTTP/1.1`, `Host: <authority>`, the fields (names as
///   received: lowercase);
/// - framing: `Content-Length` when declared (or `Body::Length`), none for
///   [`Body::Empty`] (`Content-Length: 0` for POST, PUT and PATCH),
///   `Transfer-Encoding: chunked` for [`Body::Data`] of unknown length;
/// - an extended CONNECT (RFC 8441 §4) becomes a `GET` upgrade: `Upgrade:
///   <protocol>`, `Connection: upgrade` and, for WebSocket (RFC 6455 §4.1),
///   `Sec-WebSocket-Version: 13` and `Sec-WebSocket-Key`; no framing (DATA
///   becomes the tunnel's bytes after the 101).
///
/// The content-length declared must agree with a `Body::Length` (the
/// caller checked DATA with [`Head::check_data`]); the declared one is
/// written.
pub fn to_http1(head: &Head, body: Body, ws_key: &[u8; 16], out: &mut Vec<u8>) -> BodyKind {
    let method = if head.is_tunnel() {
        "GET"
    } else {
        head.method()
    };
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(head.path().as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(head.authority().as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in head.fields() {
        line(out, name, value);
    }
    let kind = if let Some(protocol) = head.protocol() {
        if head.is_websocket() {
            out.extend_from_slice(b"Upgrade: websocket\r\nConnection: upgrade\r\n");
            line(out, b"Sec-WebSocket-Version", websocket::VERSION);
            line(out, b"Sec-WebSocket-Key", &websocket::key(ws_key));
        } else {
            line(out, b"Upgrade", protocol.as_bytes());
            out.extend_from_slice(b"Connection: upgrade\r\n");
        }
        BodyKind::None
    } else {
        debug_assert!(
            !matches!(body, Body::Length(n) if head.content_length.is_some_and(|d| d != n)),
            "Body::Length disagrees with content-length"
        );
        match (head.content_length, body) {
            (Some(n), _) | (None, Body::Length(n)) => BodyKind::Length(n),
            (None, Body::Empty) if expects_body(head.method()) => BodyKind::Length(0),
            (None, Body::Empty) => BodyKind::None,
            (None, Body::Data) => BodyKind::Chunked,
        }
    };
    framing::write(out, kind);
    out.extend_from_slice(b"\r\n");
    kind
}

fn line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// One DATA frame's payload as a chunk of a chunked body (nothing for an
/// empty one: an empty chunk would end the body).
pub fn write_chunk(data: &[u8], out: &mut Vec<u8>) {
    chunked::encode_chunk(out, data);
}

/// The end of a chunked body (END_STREAM): the last chunk, no trailers.
pub fn write_last_chunk(out: &mut Vec<u8>) {
    out.extend_from_slice(chunked::LAST_CHUNK);
}

/// What a hostile fixture should come to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Reset with PROTOCOL_ERROR.
    Malformed,
    /// Answered with this status.
    Answer(u16),
    /// Accepted, and forwarded as an HTTP/1.1 request.
    Accept,
}

/// One fixture: a header list as HPACK would hand it out.
#[derive(Debug, Clone, Copy)]
pub struct Hostile {
    pub name: &'static str,
    pub fields: &'static [(&'static [u8], &'static [u8])],
    pub end_stream: bool,
    pub expect: Expect,
}

/// The h2→h1 downgrade classes (RFC 9113 §8.1.1, §8.2, §8.3, RFC 8441 §4)
/// as fixtures, for the unit tests here and a later differential test
/// (`tests/src/hostile.rs` has the HTTP/1.1 ones). Each is validated on an
/// https connection that advertised SETTINGS_ENABLE_CONNECT_PROTOCOL.
#[rustfmt::skip]
pub const HOSTILE: &[Hostile] = &{
    const M: Expect = Expect::Malformed;
    const A: Expect = Expect::Accept;
    const fn h(
        name: &'static str,
        end_stream: bool,
        fields: &'static [(&'static [u8], &'static [u8])],
        expect: Expect,
    ) -> Hostile {
        Hostile {
            name,
            fields,
            end_stream,
            expect,
        }
    }
    const GET: (&[u8], &[u8]) = (b":method", b"GET");
    const POST: (&[u8], &[u8]) = (b":method", b"POST");
    const HTTPS: (&[u8], &[u8]) = (b":scheme", b"https");
    const AUTH: (&[u8], &[u8]) = (b":authority", b"a.example");
    const ROOT: (&[u8], &[u8]) = (b":path", b"/");
    const CONNECT: (&[u8], &[u8]) = (b":method", b"CONNECT");
    const WS: (&[u8], &[u8]) = (b":protocol", b"websocket");
    [
        h("plain GET", true, &[GET, HTTPS, AUTH, ROOT], A),
        // §8.2.1: CR, LF, NUL in values and names.
        h("CRLF in a value", true, &[GET, HTTPS, AUTH, ROOT, (b"x", b"a\r\nhost: evil")], M),
        h("LF in a value", true, &[GET, HTTPS, AUTH, ROOT, (b"x", b"a\nb")], M),
        h("CR in a value", true, &[GET, HTTPS, AUTH, ROOT, (b"x", b"a\rb")], M),
        h("NUL in a value", true, &[GET, HTTPS, AUTH, ROOT, (b"x", b"a\0b")], M),
        h("CRLF in :path", true, &[GET, HTTPS, AUTH, (b":path", b"/ HTTP/1.1\r\nx: y")], M),
        h("CRLF in :authority", true, &[GET, HTTPS, (b":authority", b"a\r\nx: y"), ROOT], M),
        h("CRLF in :method", true, &[(b":method", b"GET / HTTP/1.1\r\nx:"), HTTPS, AUTH, ROOT], M),
        h("CRLF in a name", true, &[GET, HTTPS, AUTH, ROOT, (b"x\r\ny", b"z")], M),
        h("NUL in a name", true, &[GET, HTTPS, AUTH, ROOT, (b"x\0", b"z")], M),
        h("leading SP in a value", true, &[GET, HTTPS, AUTH, ROOT, (b"x", b" a")], M),
        h("trailing HTAB in a value", true, &[GET, HTTPS, AUTH, ROOT, (b"x", b"a\t")], M),
        h("leading SP in :path", true, &[GET, HTTPS, AUTH, (b":path", b" /")], M),
        h("SP inside a value", true, &[GET, HTTPS, AUTH, ROOT, (b"x", b"a b\tc")], A),
        h("control char in a value", true, &[GET, HTTPS, AUTH, ROOT, (b"x", b"a\x01b")], Expect::Answer(400)),
        h("DEL in a value", true, &[GET, HTTPS, AUTH, ROOT, (b"x", b"a\x7f")], Expect::Answer(400)),
        h("obs-text in a value", true, &[GET, HTTPS, AUTH, ROOT, (b"x", b"caf\xc3\xa9")], A),
        // Names.
        h("uppercase name", true, &[GET, HTTPS, AUTH, ROOT, (b"X-Foo", b"1")], M),
        h("uppercase Content-Length", false, &[POST, HTTPS, AUTH, ROOT, (b"Content-Length", b"1")], M),
        h("colon in a name", true, &[GET, HTTPS, AUTH, ROOT, (b"x:y", b"1")], M),
        h("empty name", true, &[GET, HTTPS, AUTH, ROOT, (b"", b"1")], M),
        h("SP in a name", true, &[GET, HTTPS, AUTH, ROOT, (b"x y", b"1")], M),
        h("name not a token", true, &[GET, HTTPS, AUTH, ROOT, (b"x(y)", b"1")], M),
        h("underscore name", true, &[GET, HTTPS, AUTH, ROOT, (b"x_y", b"1")], A),
        // §8.2.2: connection-specific fields.
        h("transfer-encoding chunked", false, &[POST, HTTPS, AUTH, ROOT, (b"transfer-encoding", b"chunked")], M),
        h("transfer-encoding identity", true, &[GET, HTTPS, AUTH, ROOT, (b"transfer-encoding", b"identity")], M),
        h("transfer-encoding empty", true, &[GET, HTTPS, AUTH, ROOT, (b"transfer-encoding", b"")], M),
        h("connection", true, &[GET, HTTPS, AUTH, ROOT, (b"connection", b"close")], M),
        h("keep-alive", true, &[GET, HTTPS, AUTH, ROOT, (b"keep-alive", b"timeout=5")], M),
        h("proxy-connection", true, &[GET, HTTPS, AUTH, ROOT, (b"proxy-connection", b"keep-alive")], M),
        h("upgrade", true, &[GET, HTTPS, AUTH, ROOT, (b"upgrade", b"websocket")], M),
        h("upgrade h2c", true, &[GET, HTTPS, AUTH, ROOT, (b"upgrade", b"h2c")], M),
        h("te gzip", true, &[GET, HTTPS, AUTH, ROOT, (b"te", b"gzip")], M),
        h("te trailers, gzip", true, &[GET, HTTPS, AUTH, ROOT, (b"te", b"trailers, gzip")], M),
        h("te trailers", true, &[GET, HTTPS, AUTH, ROOT, (b"te", b"trailers")], A),
        // §8.3: pseudo-headers.
        h(":status in a request", true, &[GET, HTTPS, AUTH, ROOT, (b":status", b"200")], M),
        h("unknown pseudo-header", true, &[GET, HTTPS, AUTH, ROOT, (b":foo", b"x")], M),
        h("pseudo after regular", true, &[GET, HTTPS, AUTH, (b"x", b"1"), ROOT], M),
        h("duplicate :path", true, &[GET, HTTPS, AUTH, ROOT, (b":path", b"/admin")], M),
        h("duplicate :method", true, &[GET, POST, HTTPS, AUTH, ROOT], M),
        h("duplicate :authority", true, &[GET, HTTPS, AUTH, (b":authority", b"b.example"), ROOT], M),
        h("missing :method", true, &[HTTPS, AUTH, ROOT], M),
        h("missing :scheme", true, &[GET, AUTH, ROOT], M),
        h("missing :path", true, &[GET, HTTPS, AUTH], M),
        h("empty :path", true, &[GET, HTTPS, AUTH, (b":path", b"")], M),
        h(":path not absolute", true, &[GET, HTTPS, AUTH, (b":path", b"admin")], M),
        h(":path absolute-form", true, &[GET, HTTPS, AUTH, (b":path", b"http://b.example/")], M),
        h(":path * for GET", true, &[GET, HTTPS, AUTH, (b":path", b"*")], M),
        h(":path * for OPTIONS", true, &[(b":method", b"OPTIONS"), HTTPS, AUTH, (b":path", b"*")], Expect::Answer(400)),
        h("SP in :path", true, &[GET, HTTPS, AUTH, (b":path", b"/a b")], Expect::Answer(400)),
        h("fragment in :path", true, &[GET, HTTPS, AUTH, (b":path", b"/a#b")], Expect::Answer(400)),
        h(":path above root", true, &[GET, HTTPS, AUTH, (b":path", b"/../etc")], Expect::Answer(400)),
        h(":method not a token", true, &[(b":method", b"GE T"), HTTPS, AUTH, ROOT], M),
        h("empty :method", true, &[(b":method", b""), HTTPS, AUTH, ROOT], M),
        h(":scheme ftp", true, &[GET, (b":scheme", b"ftp"), AUTH, ROOT], Expect::Answer(400)),
        h(":scheme http on https", true, &[GET, (b":scheme", b"http"), AUTH, ROOT], Expect::Answer(421)),
        // Host and :authority.
        h("host disagrees", true, &[GET, HTTPS, AUTH, ROOT, (b"host", b"b.example")], M),
        h("host other port", true, &[GET, HTTPS, AUTH, ROOT, (b"host", b"a.example:8443")], M),
        h("host default port", true, &[GET, HTTPS, AUTH, ROOT, (b"host", b"A.Example:443")], A),
        h("host only", true, &[GET, HTTPS, ROOT, (b"host", b"a.example")], A),
        h("two hosts", true, &[GET, HTTPS, ROOT, (b"host", b"a.example"), (b"host", b"b.example")], Expect::Answer(400)),
        h("second host disagrees", true, &[GET, HTTPS, AUTH, ROOT, (b"host", b"a.example"), (b"host", b"b.example")], M),
        h("two equal hosts", true, &[GET, HTTPS, AUTH, ROOT, (b"host", b"a.example"), (b"host", b"a.example")], Expect::Answer(400)),
        h("no authority", true, &[GET, HTTPS, ROOT], Expect::Answer(400)),
        h("userinfo", true, &[GET, HTTPS, (b":authority", b"u@a.example"), ROOT], M),
        h("authority with slash", true, &[GET, HTTPS, (b":authority", b"a.example/x"), ROOT], Expect::Answer(400)),
        h("empty authority", true, &[GET, HTTPS, (b":authority", b""), ROOT], Expect::Answer(400)),
        // §8.1.1: content-length.
        h("content-length", false, &[POST, HTTPS, AUTH, ROOT, (b"content-length", b"5")], A),
        h("content-length not digits", false, &[POST, HTTPS, AUTH, ROOT, (b"content-length", b"5x")], M),
        h("content-length list", false, &[POST, HTTPS, AUTH, ROOT, (b"content-length", b"5, 5")], M),
        h("content-length negative", false, &[POST, HTTPS, AUTH, ROOT, (b"content-length", b"-1")], M),
        h("content-length huge", false, &[POST, HTTPS, AUTH, ROOT, (b"content-length", b"99999999999999999999")], M),
        h("content-lengths disagree", false, &[POST, HTTPS, AUTH, ROOT, (b"content-length", b"5"), (b"content-length", b"6")], M),
        h("content-lengths equal", false, &[POST, HTTPS, AUTH, ROOT, (b"content-length", b"5"), (b"content-length", b"5")], Expect::Answer(400)),
        h("content-length with END_STREAM", true, &[POST, HTTPS, AUTH, ROOT, (b"content-length", b"5")], M),
        h("content-length 0 with END_STREAM", true, &[POST, HTTPS, AUTH, ROOT, (b"content-length", b"0")], A),
        // §8.5, RFC 8441 §4: CONNECT.
        h("plain CONNECT", false, &[CONNECT, AUTH], Expect::Answer(405)),
        h("plain CONNECT with :path", false, &[CONNECT, AUTH, ROOT], M),
        h("plain CONNECT without :authority", false, &[CONNECT], M),
        h("extended CONNECT", false, &[CONNECT, HTTPS, AUTH, (b":path", b"/chat"), WS, (b"sec-websocket-version", b"13")], A),
        h("extended CONNECT without :path", false, &[CONNECT, HTTPS, AUTH, WS], M),
        h("extended CONNECT without :scheme", false, &[CONNECT, AUTH, ROOT, WS], M),
        h("extended CONNECT without :authority", false, &[CONNECT, HTTPS, ROOT, WS, (b"host", b"a.example")], M),
        h(":protocol on GET", false, &[GET, HTTPS, AUTH, ROOT, WS], M),
        h(":protocol list", false, &[CONNECT, HTTPS, AUTH, ROOT, (b":protocol", b"websocket, h2c")], Expect::Answer(400)),
        h("extended CONNECT with content-length", false, &[CONNECT, HTTPS, AUTH, ROOT, WS, (b"content-length", b"3")], Expect::Answer(400)),
        h("extended CONNECT with END_STREAM", true, &[CONNECT, HTTPS, AUTH, ROOT, WS], Expect::Answer(400)),
        h("websocket version 8", false, &[CONNECT, HTTPS, AUTH, ROOT, WS, (b"sec-websocket-version", b"8")], Expect::Answer(400)),
        // §8.2.3
        h("cookies", true, &[GET, HTTPS, AUTH, ROOT, (b"cookie", b"a=1"), (b"x", b"y"), (b"cookie", b"b=2")], A),
    ]
};

#[cfg(test)]
mod tests;
