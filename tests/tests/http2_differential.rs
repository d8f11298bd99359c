//! HTTP/2 differential hostile test: the h2→h1 downgrade classes of
//! `ringway::h2::request::HOSTILE` (CR/LF/NUL in names and values,
//! uppercase names, connection-specific fields, `te` other than
//! `trailers`, pseudo-header fields missing, twice, late or unknown, bad
//! `:path`, `:authority` against `host`, `content-length` against the
//! request's DATA, CONNECT) plus two of this file's own (a declared
//! `content-length` the DATA falls short of or runs past), each sent over
//! h2c as raw frames — the header block encoded here as literals without
//! indexing, so any bytes go on the wire — to ringway in front of a
//! recording backend (`recorder::Recorder`), and the same to nginx in
//! front of its own recorder.
//!
//! Each case has a connection of its own: preface, SETTINGS, the case on
//! stream 1 (HEADERS, then a PING; the body, where the case has one, only
//! once the PING's ACK shows stream 1 was not refused), then a well-formed
//! GET of `/control-N` on stream 3. What is asserted, on ringway only:
//! - every case the fixture calls malformed is reset with PROTOCOL_ERROR
//!   and no HEADERS; every one it answers gets that status; neither
//!   reaches the backend (no request there);
//! - the ones it accepts (a plain GET, `te: trailers`, a valid
//!   `content-length`, an RFC 8441 CONNECT, ...) reach the backend once,
//!   answered 200; split `cookie` fields arrive as one `cookie: a=1; b=2`;
//! - the control GET after each case is answered 200 and reaches the
//!   backend exactly once: the connection goes on after a refused stream;
//! - after all of them a fresh connection is served and the log has no
//!   panic.
//!
//! The `:scheme` of the fixtures (written for https) is swapped for h2c:
//! `https` ⇄ `http`, and a `host` naming port 443 names port 80, so each
//! case means on h2c what it means on TLS.
//!
//! nginx 1.22 (`listen PORT http2;`, `proxy_pass` to its recorder) gets the
//! same cases and its verdicts are printed beside ringway's (`cargo test
//! --test http2_differential -- --nocapture`); nothing is asserted on
//! them. Measured with nginx 1.22.1 (docs/H2-STATUS.md has the table):
//! nginx lets these reach its backend — a value with a leading SP or a
//! trailing HTAB, a control character or DEL (the field sent on as is);
//! a name that is not a token (the field dropped); `transfer-encoding:
//! chunked`, `keep-alive`, `proxy-connection`, `upgrade`, `connection`,
//! `te` other than `trailers` (all dropped but `proxy-connection`, which
//! goes upstream); a pseudo-header field after a regular one; a `#` in
//! `:path` (`/a#b` goes upstream as the target); `:scheme` `ftp`, or
//! `https` on h2c; userinfo in `:authority`.
//! It answers most other malformed requests `400` (or `501` for a
//! `transfer-encoding` other than `chunked`) where RFC 9113 §8.1.1 wants
//! a stream error, ends the connection (GOAWAY) for an empty name, checks
//! `content-length` against the DATA only once the body is in (it buffers
//! it: `400`, nothing upstream, where ringway, which streams the body, has
//! sent the head upstream before the DATA runs short or long, then cuts
//! that connection), and refuses the RFC 8441 CONNECT (`400`) and a `host`
//! naming the default port beside `:authority` (`400`). Both join split
//! cookies into one `cookie: a=1; b=2`.
//!
//! nginx is needed: `scripts/test.sh` installs it (as root, with apt-get);
//! without it this test fails after ringway's half, saying so.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use ringway::h2::hpack::Decoder;
use ringway::h2::request::{Expect, HOSTILE};
use ringway_tests::http1::Parsed;
use ringway_tests::nginx::Nginx;
use ringway_tests::recorder::{ConnRecord, Recorder};
use ringway_tests::*;

both_drivers!(hostile_requests_never_reach_the_backend);

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0;
const HEADERS: u8 = 1;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const PING: u8 = 6;
const GOAWAY: u8 = 7;
const CONTINUATION: u8 = 9;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PROTOCOL_ERROR: u32 = 1;
/// Bound of each case's wait for an answer.
const WAIT: Duration = Duration::from_secs(5);

/// One case: a field list (as HPACK hands it out), END_STREAM on the
/// HEADERS, a body to send as DATA after it (with END_STREAM), and what
/// ringway must do.
struct Case {
    name: String,
    fields: Vec<(Vec<u8>, Vec<u8>)>,
    end_stream: bool,
    body: Option<Vec<u8>>,
    expect: Expect,
}

/// The fixtures for h2c (see the module doc) and this file's own.
fn cases() -> Vec<Case> {
    let mut out: Vec<Case> = HOSTILE
        .iter()
        .map(|h| {
            let fields: Vec<(Vec<u8>, Vec<u8>)> = h
                .fields
                .iter()
                .map(|&(n, v)| {
                    let v = match (n, v) {
                        (b":scheme", b"https") => b"http".to_vec(),
                        (b":scheme", b"http") => b"https".to_vec(),
                        (b"host", v) if v.ends_with(b":443") => [&v[..v.len() - 3], b"80"].concat(),
                        _ => v.to_vec(),
                    };
                    (n.to_vec(), v)
                })
                .collect();
            let connect = fields
                .iter()
                .any(|(n, v)| n == b":method" && v == b"CONNECT");
            // A request that stays open sends a body: as long as its first
            // content-length says (when that is a small number), else 3 bytes.
            // CONNECT streams carry tunnel bytes, not a body: none.
            let body = (!h.end_stream && !connect).then(|| {
                let n = fields
                    .iter()
                    .find(|(n, _)| n == b"content-length")
                    .and_then(|(_, v)| std::str::from_utf8(v).ok()?.parse::<usize>().ok())
                    .filter(|&n| n <= 1024)
                    .unwrap_or(3);
                vec![b'b'; n]
            });
            Case {
                name: h.name.to_string(),
                fields,
                end_stream: h.end_stream,
                body,
                expect: h.expect,
            }
        })
        .collect();
    let post_cl5 = || -> Vec<(Vec<u8>, Vec<u8>)> {
        [
            (":method", "POST"),
            (":scheme", "http"),
            (":authority", "a.example"),
            (":path", "/"),
            ("content-length", "5"),
        ]
        .iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
    };
    // RFC 9113 §8.1.1: a content-length other than the DATA's total is
    // malformed, whichever side it errs on.
    for (name, n) in [
        ("content-length 5, 3 bytes of DATA", 3),
        ("content-length 5, 7 bytes of DATA", 7),
    ] {
        out.push(Case {
            name: name.to_string(),
            fields: post_cl5(),
            end_stream: false,
            body: Some(vec![b'b'; n]),
            expect: Expect::Malformed,
        });
    }
    out
}

/// An HTTP/2 frame (RFC 9113 §4.1).
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    f.extend_from_slice(&[kind, flags]);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An HPACK integer with an N-bit prefix (RFC 7541 §5.1).
fn hpack_int(out: &mut Vec<u8>, first: u8, prefix: u32, mut v: usize) {
    let max = (1usize << prefix) - 1;
    if v < max {
        out.push(first | v as u8);
        return;
    }
    out.push(first | max as u8);
    v -= max;
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
}

/// A header block of literals without indexing, new names, no Huffman
/// (RFC 7541 §6.2.2): every byte of every name and value as given.
fn block(fields: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (n, v) in fields {
        out.push(0x00);
        hpack_int(&mut out, 0, 7, n.len());
        out.extend_from_slice(n);
        hpack_int(&mut out, 0, 7, v.len());
        out.extend_from_slice(v);
    }
    out
}

/// What one stream came to.
#[derive(Debug, Default, Clone)]
struct Stream {
    status: Option<u16>,
    reset: Option<u32>,
    ended: bool,
}

impl Stream {
    fn done(&self, tunnel: bool) -> bool {
        self.reset.is_some() || self.ended || (tunnel && self.status.is_some())
    }
}

/// A client connection reading frames, its header blocks decoded with
/// ringway's HPACK decoder (an independent encoder wrote them: the
/// server's).
struct Client {
    s: TcpStream,
    buf: Vec<u8>,
    dec: Decoder,
    /// A header block waiting for its CONTINUATION: (stream, flags, bytes).
    pending: Option<(u32, u8, Vec<u8>)>,
    streams: BTreeMap<u32, Stream>,
    goaway: Option<u32>,
    closed: bool,
    pings: Vec<[u8; 8]>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(WAIT)).unwrap();
        s.set_write_timeout(Some(WAIT)).unwrap();
        let mut c = Client {
            s,
            buf: Vec::new(),
            dec: Decoder::new(4096),
            pending: None,
            streams: BTreeMap::new(),
            goaway: None,
            closed: false,
            pings: Vec::new(),
        };
        c.send(&[PREFACE.to_vec(), frame(SETTINGS, 0, 0, &[])].concat());
        c
    }

    /// Write; a failed write (the peer closed) marks the connection closed.
    fn send(&mut self, bytes: &[u8]) {
        if self.s.write_all(bytes).is_err() {
            self.closed = true;
        }
    }

    /// Read and handle frames until `done(self)` holds, the connection
    /// closes or `WAIT` passes.
    fn until(&mut self, done: impl Fn(&Client) -> bool) {
        let deadline = Instant::now() + WAIT;
        let mut tmp = [0u8; 16384];
        while !done(self) && !self.closed && Instant::now() < deadline {
            if let Some(f) = self.take_frame() {
                self.handle(f);
                continue;
            }
            match self.s.read(&mut tmp) {
                Ok(0) | Err(_) => self.closed = true,
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
            }
        }
    }

    fn take_frame(&mut self) -> Option<(u8, u8, u32, Vec<u8>)> {
        let b = &self.buf;
        if b.len() < 9 {
            return None;
        }
        let len = u32::from_be_bytes([0, b[0], b[1], b[2]]) as usize;
        if b.len() < 9 + len {
            return None;
        }
        let id = u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & 0x7fff_ffff;
        let f = (b[3], b[4], id, b[9..9 + len].to_vec());
        self.buf.drain(..9 + len);
        Some(f)
    }

    fn handle(&mut self, (kind, flags, id, payload): (u8, u8, u32, Vec<u8>)) {
        match kind {
            SETTINGS if flags & ACK == 0 => self.send(&frame(SETTINGS, ACK, 0, &[])),
            PING if flags & ACK != 0 && payload.len() == 8 => {
                self.pings.push(payload[..8].try_into().unwrap())
            }
            GOAWAY if payload.len() >= 8 => {
                self.goaway = Some(u32::from_be_bytes(payload[4..8].try_into().unwrap()))
            }
            RST_STREAM if payload.len() == 4 => {
                self.streams.entry(id).or_default().reset =
                    Some(u32::from_be_bytes(payload[..4].try_into().unwrap()))
            }
            DATA if flags & END_STREAM != 0 => self.streams.entry(id).or_default().ended = true,
            HEADERS | CONTINUATION => {
                // The HEADERS's flags say END_STREAM; each frame's own, END_HEADERS.
                let (hflags, mut bytes) = match (kind, self.pending.take()) {
                    (CONTINUATION, Some((pid, pflags, bytes))) if pid == id => (pflags, bytes),
                    (HEADERS, None) => (flags, Vec::new()),
                    other => panic!("unexpected header frame order: {kind} after {other:?}"),
                };
                bytes.extend_from_slice(&header_fragment(kind, flags, &payload));
                if flags & END_HEADERS == 0 {
                    self.pending = Some((id, hflags, bytes));
                    return;
                }
                let mut status = None;
                let mut scratch = Vec::new();
                self.dec
                    .decode(&bytes, usize::MAX, &mut scratch, |n, v, _| {
                        if n == b":status" {
                            status = std::str::from_utf8(v).ok().and_then(|s| s.parse().ok());
                        }
                    })
                    .expect("the server's header block decodes");
                let st = self.streams.entry(id).or_default();
                // The final status (not a 1xx) is the one kept.
                if status.is_some_and(|s: u16| s >= 200) || st.status.is_none() {
                    st.status = status;
                }
                if hflags & END_STREAM != 0 {
                    st.ended = true;
                }
            }
            _ => {}
        }
    }

    fn stream(&self, id: u32) -> Stream {
        self.streams.get(&id).cloned().unwrap_or_default()
    }
}

/// The header block fragment of a HEADERS (without padding and priority)
/// or CONTINUATION payload.
fn header_fragment(kind: u8, flags: u8, p: &[u8]) -> Vec<u8> {
    if kind == CONTINUATION {
        return p.to_vec();
    }
    let mut start = 0;
    let mut end = p.len();
    if flags & 0x8 != 0 {
        start = 1;
        end -= p[0] as usize;
    }
    if flags & 0x20 != 0 {
        start += 5;
    }
    p[start..end].to_vec()
}

/// What happened to one case on one proxy.
#[derive(Debug, Clone)]
struct Outcome {
    fixture: Stream,
    goaway: Option<u32>,
    closed: bool,
    control: Option<Stream>,
    /// Requests the backend parsed, beside the control GET.
    forwarded: Vec<Parsed>,
    /// Upstream connections that brought bytes but no whole request.
    partial: usize,
    control_seen: usize,
    /// The case's regular fields (but `host`, `content-length` and
    /// `connection`, which a proxy writes itself, and `cookie`, checked
    /// joined) and whether a field of
    /// that name and value (less the whitespace around it) reached the
    /// backend, when the request did.
    kept: Vec<(String, bool)>,
}

fn code_name(code: u32) -> String {
    match code {
        0 => "NO_ERROR".into(),
        1 => "PROTOCOL_ERROR".into(),
        2 => "INTERNAL_ERROR".into(),
        5 => "STREAM_CLOSED".into(),
        6 => "FRAME_SIZE_ERROR".into(),
        8 => "CANCEL".into(),
        9 => "COMPRESSION_ERROR".into(),
        11 => "ENHANCE_YOUR_CALM".into(),
        c => format!("code {c}"),
    }
}

impl Outcome {
    /// One table cell: the stream's answer, then what reached the backend.
    fn verdict(&self) -> String {
        let f = &self.fixture;
        let mut v = match (f.status, f.reset) {
            (Some(s), _) => s.to_string(),
            (None, Some(c)) => format!("RST {}", code_name(c)),
            (None, None) => match self.goaway {
                Some(c) => format!("GOAWAY {}", code_name(c)),
                None if self.closed => "closed".into(),
                None => "no answer".into(),
            },
        };
        if !self.forwarded.is_empty() {
            v.push_str(&format!(", FORWARDED x{}", self.forwarded.len()));
            let kept: Vec<String> = self
                .kept
                .iter()
                .map(|(n, k)| format!("{}{n}", if *k { '+' } else { '-' }))
                .collect();
            if !kept.is_empty() {
                v.push_str(&format!(" [{}]", kept.join(" ")));
            }
        } else if self.partial > 0 {
            v.push_str(", head only upstream");
        }
        if let Some(c) = &self.control {
            if c.status != Some(200) {
                v.push_str(&format!(", control {:?}", c.status));
            }
        } else {
            v.push_str(", no control");
        }
        v
    }
}

/// Run `case` (number `i`) against `addr`, proxying to `rec`.
fn run_case(addr: SocketAddr, rec: &Recorder, i: usize, case: &Case) -> Outcome {
    let before = rec.conns().len();
    let tunnel = case
        .fields
        .iter()
        .any(|(n, v)| n == b":method" && v == b"CONNECT");
    let mut c = Client::connect(addr);
    let flags = END_HEADERS | if case.end_stream { END_STREAM } else { 0 };
    let ping = *b"fixture1";
    c.send(
        &[
            frame(HEADERS, flags, 1, &block(&case.fields)),
            frame(PING, 0, 0, &ping),
        ]
        .concat(),
    );
    // The PING's ACK comes after the connection has judged the HEADERS.
    c.until(|c| c.pings.contains(&ping) || c.stream(1).done(tunnel));
    if let Some(body) = &case.body {
        let s1 = c.stream(1);
        if s1.reset.is_none() && s1.status.is_none() && c.goaway.is_none() {
            c.send(&frame(DATA, END_STREAM, 1, body));
        }
    }
    c.until(|c| c.stream(1).done(tunnel) || c.goaway.is_some());
    let fixture = c.stream(1);
    let control_path = format!("/control-{i}");
    let control = if c.goaway.is_none() && !c.closed {
        let get = [
            (":method", "GET"),
            (":scheme", "http"),
            (":authority", "a.example"),
            (":path", control_path.as_str()),
        ]
        .iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect::<Vec<_>>();
        c.send(&frame(HEADERS, END_HEADERS | END_STREAM, 3, &block(&get)));
        c.until(|c| c.stream(3).done(false));
        Some(c.stream(3))
    } else {
        None
    };
    let (goaway, closed) = (c.goaway, c.closed);
    drop(c);
    // A tunnel's upstream connection stays open until ringway sees the
    // client go; its request was parsed when the 101 was sent.
    let conns: Vec<ConnRecord> = rec.conns().split_off(before);
    let mut forwarded = Vec::new();
    let mut partial = 0;
    let mut control_seen = 0;
    for conn in &conns {
        let (ctl, other): (Vec<Parsed>, Vec<Parsed>) = conn
            .requests
            .iter()
            .cloned()
            .partition(|r| r.target == control_path);
        control_seen += ctl.len();
        if conn.requests.is_empty() && !conn.raw.is_empty() {
            partial += 1;
        }
        forwarded.extend(other);
    }
    let mut kept = Vec::new();
    if !forwarded.is_empty() {
        for (n, v) in &case.fields {
            let name = String::from_utf8_lossy(n).to_ascii_lowercase();
            if n.starts_with(b":")
                || ["host", "content-length", "connection", "cookie"].contains(&name.as_str())
            {
                continue;
            }
            let value = String::from_utf8_lossy(v);
            let arrived = forwarded.iter().any(|r| {
                r.headers
                    .iter()
                    .any(|(h, hv)| h.eq_ignore_ascii_case(&name) && hv.trim() == value.trim())
            });
            let name = name.escape_debug().to_string();
            if !kept.iter().any(|(k, _)| *k == name) {
                kept.push((name, arrived));
            }
        }
    }
    Outcome {
        fixture,
        goaway,
        closed,
        control,
        forwarded,
        partial,
        control_seen,
        kept,
    }
}

/// What ringway must have done with `case`; `Err` says what it did not.
fn check_ringway(case: &Case, o: &Outcome) -> Result<(), String> {
    let f = &o.fixture;
    match case.expect {
        Expect::Malformed => {
            if f.reset != Some(PROTOCOL_ERROR) || f.status.is_some() {
                return Err(format!("not reset with PROTOCOL_ERROR: {}", o.verdict()));
            }
        }
        Expect::Answer(s) => {
            if f.status != Some(s) {
                return Err(format!("not answered {s}: {}", o.verdict()));
            }
        }
        Expect::Accept => {
            if f.status != Some(200) || o.forwarded.len() != 1 {
                return Err(format!(
                    "not forwarded once and answered 200: {}",
                    o.verdict()
                ));
            }
        }
    }
    if case.expect != Expect::Accept && !o.forwarded.is_empty() {
        return Err(format!("reached the backend: {:?}", o.forwarded));
    }
    if o.goaway.is_some() || o.closed {
        return Err(format!("connection ended: {}", o.verdict()));
    }
    match &o.control {
        Some(c) if c.status == Some(200) && c.ended && o.control_seen == 1 => Ok(()),
        other => Err(format!(
            "the control GET after it: {other:?}, at the backend {} time(s)",
            o.control_seen
        )),
    }
}

fn ringway_config(rec: SocketAddr) -> String {
    format!(
        r#"
[servers.h2]
listen = ["127.0.0.1:0"]
http2 = "h2c"
[servers.h2.locations."/"]
proxy_pass = "http://{rec}"
"#
    )
}

fn start_nginx(bin: &Path, rec: SocketAddr) -> Nginx {
    Nginx::start(
        bin,
        "h2diff-nginx",
        "http2",
        &format!("location / {{ proxy_pass http://{rec}; }}"),
    )
}

fn printable(name: &str) -> String {
    name.escape_debug().to_string()
}

fn hostile_requests_never_reach_the_backend(d: Driver) {
    let cases = cases();
    let rec = Recorder::start();
    let rw = Ringway::start(&ringway_config(rec.addr), d);
    let addr = rw.addr("h2");
    let mut rows: Vec<(String, Outcome)> = Vec::new();
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let o = run_case(addr, &rec, i, case);
        if let Err(e) = check_ringway(case, &o) {
            failures.push(format!("{}: {e}", printable(&case.name)));
        }
        if case.name == "cookies" {
            let cookies: Vec<&str> = o
                .forwarded
                .iter()
                .flat_map(|r| &r.headers)
                .filter(|(n, _)| n.eq_ignore_ascii_case("cookie"))
                .map(|(_, v)| v.as_str())
                .collect();
            if cookies != ["a=1; b=2"] {
                failures.push(format!("cookies forwarded as {cookies:?}"));
            }
        }
        rows.push((case.name.clone(), o));
    }
    // Still serving, on a connection of its own, and no panic logged.
    let after = run_case(addr, &rec, cases.len(), &cases[0]);
    if let Err(e) = check_ringway(&cases[0], &after) {
        failures.push(format!("after every case, a plain GET: {e}"));
    }
    assert!(!rw.logs().contains("panicked"), "{}", rw.logs());

    // nginx's half, side by side.
    let nginx = ringway_tests::nginx::binary();
    let mut nginx_cells: Vec<String> = vec!["(nginx not installed)".into(); rows.len()];
    let mut cookie_note = String::new();
    if let Some(bin) = &nginx {
        let rec2 = Recorder::start();
        let ng = start_nginx(bin, rec2.addr);
        for (i, case) in cases.iter().enumerate() {
            let o = run_case(ng.addr, &rec2, i, case);
            if case.name == "cookies" {
                let c: Vec<String> = o
                    .forwarded
                    .iter()
                    .flat_map(|r| &r.headers)
                    .filter(|(n, _)| n.eq_ignore_ascii_case("cookie"))
                    .map(|(_, v)| v.clone())
                    .collect();
                cookie_note = format!("nginx forwarded the cookies as {c:?}");
            }
            nginx_cells[i] = o.verdict();
        }
    }
    let w = rows
        .iter()
        .map(|(n, _)| printable(n).len())
        .max()
        .unwrap_or(8);
    let mut table = format!(
        "HTTP/2 hostile fixtures over h2c, ringway ({}) / nginx 1.22 — answer, then what reached the backend\n",
        d.name()
    );
    table.push_str(&format!(
        "{:w$}  {:<8}  {:<48}  {}\n",
        "fixture", "expect", "ringway", "nginx"
    ));
    for (i, (case, (name, o))) in cases.iter().zip(&rows).enumerate() {
        let expect = match case.expect {
            Expect::Malformed => "reset".to_string(),
            Expect::Answer(s) => s.to_string(),
            Expect::Accept => "accept".to_string(),
        };
        table.push_str(&format!(
            "{:w$}  {:<8}  {:<48}  {}\n",
            printable(name),
            expect,
            o.verdict(),
            nginx_cells[i]
        ));
    }
    if !cookie_note.is_empty() {
        table.push_str(&cookie_note);
        table.push('\n');
    }
    eprintln!("{table}");
    assert!(
        failures.is_empty(),
        "ringway ({}):\n{}",
        d.name(),
        failures.join("\n")
    );
    assert!(
        nginx.is_some(),
        "nginx is not installed (looked in PATH and /usr/sbin): this test runs the same \
         cases against nginx 1.22 beside ringway. Install it (apt-get install -y nginx; \
         scripts/test.sh does when run as root)."
    );
}
