//! The access log: one line per request, and one per tunnel when it ends,
//! in the `[log] log_format` the configuration names
//! ([`ringway_config::LogFormat`]):
//!
//! - `ringway`, the default: nginx's `combined` plus `$request_time`, then
//!   the upstream, its connect time, and for a tunnel why it closed and its
//!   bytes each way (`"-"` where a line has no such field):
//!
//!   ```text
//!   127.0.0.1 - - [23/Nov/2026:04:02:25 +0000] "GET /api/ HTTP/1.1" 200 17 "-" "curl/7.88.1" 0.004 "10.0.0.7:4000" 0.001 - - -
//!   127.0.0.1 - - [23/Nov/2026:04:02:25 +0000] "GET /ws/ HTTP/1.1" 101 512 "-" "curl/7.88.1" 12.003 "10.0.0.7:3000" - client 240 512
//!   ```
//!
//!   The first fields are exactly the `combined` line, so a parser of that
//!   line reads this one (the extra fields come last).
//! - `combined`: nginx's `combined` plus ` $request_time`, the line ringway
//!   wrote before log formats existed (byte for byte: the request line is
//!   written as received, header values escaped as nginx does).
//! - `json`: one object per line, keys named as the variables: strings
//!   (`null` when absent) and numbers (status, byte counts, times in
//!   seconds with milliseconds); `tunnel_close_reason`,
//!   `tunnel_bytes_from_client` and `tunnel_bytes_to_client` only on a
//!   tunnel's line. Strings are escaped per RFC 8259: `"` and `\` with a
//!   backslash, control characters and DEL as `\u00XX`; valid UTF-8 is
//!   kept as is; a byte that is not part of valid UTF-8 is written as
//!   `\u00XX` of the byte (so every line is valid UTF-8 and valid JSON).
//! - a custom string of `$variables`: values escaped as nginx's
//!   `escape=default` (`"`, `\`, and bytes below 0x20 or from 0x7f as
//!   `\xHH`), `"-"` for an absent or empty value, times as seconds with
//!   three decimals (`0.012`), `$msec` as `1700000000.123`.
//!
//! A line is built from a [`Record`] that borrows what it logs (no
//! allocation to build one). A tunnel is logged when it closes (status
//! 101, bytes sent to the client, its whole duration), as nginx does. Each
//! worker buffers its own lines and writes them in whole lines of at most
//! PIPE_BUF bytes, so lines from different workers never interleave; the
//! buffer is flushed when it fills and once a second. [`AccessLog::reopen`]
//! reopens a file destination (SIGUSR1, after logrotate renamed it).

use std::cell::{Ref, RefCell};
use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};

use ringway_config::UpstreamAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ringway_config::AccessLog as Setting;
use ringway_config::{LogFormat, LogPart, LogVar};

use crate::sys;

/// Where lines go: opened once by the control thread, and a duplicate of
/// the descriptor handed to each worker (`try_clone`), which owns it.
#[derive(Debug)]
pub enum Sink {
    Off,
    Fd(OwnedFd),
}

impl Sink {
    pub fn open(setting: &Setting) -> io::Result<Sink> {
        Ok(match setting {
            Setting::Off => Sink::Off,
            Setting::Stdout => Sink::Fd(io::stdout().as_fd().try_clone_to_owned()?),
            Setting::File(path) => {
                let f = OpenOptions::new().create(true).append(true).open(path)?;
                Sink::Fd(f.into())
            }
        })
    }

    /// Another handle on the same destination (for the next worker).
    pub fn try_clone(&self) -> io::Result<Sink> {
        Ok(match self {
            Sink::Off => Sink::Off,
            Sink::Fd(fd) => Sink::Fd(fd.try_clone()?),
        })
    }
}

/// `$http_<name>`: the first value of a request header (lowercase name).
pub type HeaderFn<'a> = dyn Fn(&str) -> Option<&'a [u8]> + 'a;

/// The header lookup of a line that has no request headers.
fn no_headers<'a>(_: &str) -> Option<&'a [u8]> {
    None
}

/// Why a tunnel ended (`$tunnel_close_reason`): the metrics' reasons.
pub use crate::metrics::CloseReason;

/// A tunnel's end, on its line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelEnd {
    pub close_reason: CloseReason,
    pub bytes_from_client: u64,
    pub bytes_to_client: u64,
}

/// Everything one line may show; each field feeds the variable of the
/// same name. Build it with [`Record::new`] and fill what the line has:
/// `None` / `""` is written "-" (`null` in JSON).
#[derive(Clone, Copy)]
pub struct Record<'a> {
    /// `$remote_addr`, `$remote_port`: the client, after real-IP.
    pub remote: SocketAddr,
    /// `$realip_remote_addr`: the connection's peer before real-IP
    /// substitution; `None`: the same as `remote`.
    pub realip_remote_addr: Option<IpAddr>,
    pub proxy_protocol_addr: Option<IpAddr>,
    pub method: &'a str,
    /// `$request_uri`: the target as received.
    pub target: &'a str,
    /// `$uri`: the normalised path (as a rewrite changed it); `None`: the
    /// target's path.
    pub uri: Option<&'a str>,
    /// `$args`: the query a rewrite made; `None`: the target's.
    pub args: Option<&'a str>,
    /// `$server_protocol`: "HTTP/1.1", "HTTP/2.0".
    pub protocol: &'a str,
    pub status: u16,
    pub body_bytes_sent: u64,
    /// `$bytes_sent`: head and body.
    pub bytes_sent: u64,
    /// `$request_length`: request line, head and body.
    pub request_length: u64,
    pub request_time: Duration,
    /// `$connection`: the connection's serial number.
    pub connection: u64,
    pub connection_requests: u64,
    pub host: Option<&'a str>,
    pub server_name: Option<&'a str>,
    pub server_port: Option<u16>,
    /// "http" / "https"; "" before it is known.
    pub scheme: &'a str,
    /// `$http_<name>` (and referer / user-agent of the built-in formats).
    pub header: &'a HeaderFn<'a>,
    pub upstream_addr: Option<&'a UpstreamAddr>,
    pub upstream_status: Option<u16>,
    pub upstream_connect_time: Option<Duration>,
    pub upstream_header_time: Option<Duration>,
    pub upstream_response_time: Option<Duration>,
    pub upstream_bytes_sent: Option<u64>,
    pub upstream_bytes_received: Option<u64>,
    /// A tunnel's line: how it ended and its bytes each way.
    pub tunnel: Option<TunnelEnd>,
    pub ssl_protocol: Option<&'a str>,
    pub ssl_server_name: Option<&'a str>,
}

impl<'a> Record<'a> {
    /// A line for a client at `remote` with nothing else known yet.
    pub fn new(remote: SocketAddr) -> Record<'a> {
        Record {
            remote,
            realip_remote_addr: None,
            proxy_protocol_addr: None,
            method: "",
            target: "",
            uri: None,
            args: None,
            protocol: "",
            status: 0,
            body_bytes_sent: 0,
            bytes_sent: 0,
            request_length: 0,
            request_time: Duration::ZERO,
            connection: 0,
            connection_requests: 0,
            host: None,
            server_name: None,
            server_port: None,
            scheme: "",
            header: &no_headers,
            upstream_addr: None,
            upstream_status: None,
            upstream_connect_time: None,
            upstream_header_time: None,
            upstream_response_time: None,
            upstream_bytes_sent: None,
            upstream_bytes_received: None,
            tunnel: None,
            ssl_protocol: None,
            ssl_server_name: None,
        }
    }
}

/// `$server_protocol` of an HTTP/1.x request.
pub fn http1(minor_version: u8) -> &'static str {
    if minor_version == 0 {
        "HTTP/1.0"
    } else {
        "HTTP/1.1"
    }
}

/// The formatted current time, rebuilt once a second (per worker).
#[derive(Debug, Clone)]
pub struct TimeCache {
    secs: u64,
    millis: u32,
    local: String,
    iso8601: String,
}

impl Default for TimeCache {
    fn default() -> Self {
        TimeCache::at(Duration::ZERO)
    }
}

impl TimeCache {
    /// The cache at `now` (since the Unix epoch).
    pub fn at(now: Duration) -> TimeCache {
        let mut t = TimeCache {
            secs: u64::MAX,
            millis: 0,
            local: String::new(),
            iso8601: String::new(),
        };
        t.set(now);
        t
    }

    /// Move to `now`; the strings are rebuilt when the second changed.
    pub fn set(&mut self, now: Duration) {
        self.millis = now.subsec_millis();
        let secs = now.as_secs();
        if secs != self.secs {
            self.secs = secs;
            self.local.clear();
            write_time_local(&mut self.local, secs);
            self.iso8601.clear();
            write_time_iso8601(&mut self.iso8601, secs);
        }
    }

    /// "23/Nov/2026:04:02:25 +0000"
    pub fn time_local(&self) -> &str {
        &self.local
    }

    /// "2026-11-23T04:02:25+00:00"
    pub fn time_iso8601(&self) -> &str {
        &self.iso8601
    }
}

const PIPE_BUF: usize = 4096;
const FLUSH_AT: usize = 32 * 1024;

/// A worker's access log.
pub struct AccessLog {
    sink: RefCell<Sink>,
    format: RefCell<LogFormat>,
    buf: RefCell<Vec<u8>>,
    time: RefCell<TimeCache>,
}

impl AccessLog {
    pub fn new(sink: Sink, format: LogFormat) -> Self {
        Self {
            sink: RefCell::new(sink),
            format: RefCell::new(format),
            buf: RefCell::new(Vec::new()),
            time: RefCell::new(TimeCache::default()),
        }
    }

    pub fn enabled(&self) -> bool {
        matches!(*self.sink.borrow(), Sink::Fd(_))
    }

    /// The format lines are written in.
    pub fn format(&self) -> Ref<'_, LogFormat> {
        self.format.borrow()
    }

    /// Write the next lines in `format` (a reload).
    pub fn set_format(&self, format: LogFormat) {
        *self.format.borrow_mut() = format;
    }

    pub fn log(&self, r: &Record<'_>) {
        if !self.enabled() {
            return;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let mut time = self.time.borrow_mut();
        time.set(now);
        let mut buf = self.buf.borrow_mut();
        format(&mut buf, &self.format.borrow(), r, &time);
        let full = buf.len() >= FLUSH_AT;
        drop(buf);
        if full {
            self.flush();
        }
    }

    /// Write out buffered lines (whole lines, at most PIPE_BUF per write).
    pub fn flush(&self) {
        let sink = self.sink.borrow();
        let mut buf = self.buf.borrow_mut();
        if let Sink::Fd(fd) = &*sink {
            let mut rest: &[u8] = &buf;
            while !rest.is_empty() {
                let mut cut = rest.len().min(PIPE_BUF);
                if cut < rest.len() {
                    // Cut after the last newline that fits.
                    cut = rest[..cut]
                        .iter()
                        .rposition(|&b| b == b'\n')
                        .map_or(cut, |i| i + 1);
                }
                match sys::write(fd.as_fd(), &rest[..cut]) {
                    Ok(n) if n > 0 => rest = &rest[n..],
                    // The log is best effort: never stall the worker on it.
                    _ => break,
                }
            }
        }
        buf.clear();
        if buf.capacity() > 4 * FLUSH_AT {
            buf.shrink_to(FLUSH_AT);
        }
    }

    /// Flush, then write to `setting` from now on: a file is opened anew
    /// at its path (O_APPEND|O_CREAT), so after logrotate renamed it the
    /// lines go to a new file (SIGUSR1). On an error the old destination
    /// stays.
    pub fn reopen(&self, setting: &Setting) -> io::Result<()> {
        self.flush();
        let sink = Sink::open(setting)?;
        *self.sink.borrow_mut() = sink;
        Ok(())
    }
}

/// Append the line of `r` in `fmt` to `out`, at `time`.
pub fn format(out: &mut Vec<u8>, fmt: &LogFormat, r: &Record<'_>, time: &TimeCache) {
    match fmt {
        LogFormat::Combined => {
            combined(out, r, time);
            out.push(b'\n');
        }
        LogFormat::Ringway => {
            combined(out, r, time);
            out.extend_from_slice(b" \"");
            nginx_value(out, value(&LogVar::UpstreamAddr, r, time));
            out.extend_from_slice(b"\" ");
            for (i, v) in [
                LogVar::UpstreamConnectTime,
                LogVar::TunnelCloseReason,
                LogVar::TunnelBytesFromClient,
                LogVar::TunnelBytesToClient,
            ]
            .iter()
            .enumerate()
            {
                if i > 0 {
                    out.push(b' ');
                }
                nginx_value(out, value(v, r, time));
            }
            out.push(b'\n');
        }
        LogFormat::Json => json(out, r, time),
        LogFormat::Custom(parts) => {
            for p in parts {
                match p {
                    LogPart::Literal(s) => out.extend_from_slice(s.as_bytes()),
                    LogPart::Var(v) => nginx_value(out, value(v, r, time)),
                }
            }
            out.push(b'\n');
        }
    }
}

/// `$remote_addr - - [$time_local] "$request" $status $body_bytes_sent
/// "$http_referer" "$http_user_agent" $request_time`, no newline.
fn combined(out: &mut Vec<u8>, r: &Record<'_>, time: &TimeCache) {
    // The request line is escaped as nginx escapes "$request": a target
    // may carry '"' or bytes above 0x7f (httparse lets them through).
    let _ = write!(out, "{} - - [{}] \"", r.remote.ip(), time.time_local());
    nginx_value(out, Value::Request(r.method, r.target, r.protocol));
    let _ = write!(out, "\" {} {} \"", r.status, r.body_bytes_sent);
    nginx_escaped(out, (r.header)("referer"));
    out.extend_from_slice(b"\" \"");
    nginx_escaped(out, (r.header)("user-agent"));
    out.extend_from_slice(b"\" ");
    secs(out, r.request_time);
}

/// One variable's value, before it is written in a format's way.
enum Value<'a> {
    Absent,
    /// Written as is (never "-" for empty): "-" of $remote_user, "." of $pipe.
    Fixed(&'static str),
    Bytes(&'a [u8]),
    Ip(IpAddr),
    Addr(&'a UpstreamAddr),
    Num(u64),
    Secs(Duration),
    /// `$request`: method, target, protocol.
    Request(&'a str, &'a str, &'a str),
}

fn opt_str(s: Option<&str>) -> Value<'_> {
    s.map_or(Value::Absent, |s| Value::Bytes(s.as_bytes()))
}

fn value<'v>(v: &LogVar, r: &'v Record<'_>, time: &'v TimeCache) -> Value<'v> {
    let (path, query) = match r.target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (r.target, None),
    };
    match v {
        LogVar::RemoteAddr => Value::Ip(r.remote.ip()),
        LogVar::RemotePort => Value::Num(r.remote.port().into()),
        LogVar::RemoteUser => Value::Fixed("-"),
        LogVar::RealipRemoteAddr => Value::Ip(r.realip_remote_addr.unwrap_or(r.remote.ip())),
        LogVar::ProxyProtocolAddr => r.proxy_protocol_addr.map_or(Value::Absent, Value::Ip),
        LogVar::TimeLocal => Value::Bytes(time.local.as_bytes()),
        LogVar::TimeIso8601 => Value::Bytes(time.iso8601.as_bytes()),
        LogVar::Msec => Value::Secs(Duration::new(time.secs, time.millis * 1_000_000)),
        LogVar::Request if r.method.is_empty() => Value::Absent,
        LogVar::Request => Value::Request(r.method, r.target, r.protocol),
        LogVar::RequestMethod => opt_str(Some(r.method)),
        LogVar::RequestUri => opt_str(Some(r.target)),
        LogVar::Uri => opt_str(Some(r.uri.unwrap_or(path))),
        LogVar::Args => opt_str(r.args.or(query)),
        LogVar::ServerProtocol => opt_str(Some(r.protocol)),
        LogVar::Status => Value::Num(r.status.into()),
        LogVar::BodyBytesSent => Value::Num(r.body_bytes_sent),
        LogVar::BytesSent => Value::Num(r.bytes_sent),
        LogVar::RequestLength => Value::Num(r.request_length),
        LogVar::RequestTime => Value::Secs(r.request_time),
        LogVar::Connection => Value::Num(r.connection),
        LogVar::ConnectionRequests => Value::Num(r.connection_requests),
        LogVar::Host => opt_str(r.host),
        LogVar::ServerName => opt_str(r.server_name),
        LogVar::ServerPort => r
            .server_port
            .map_or(Value::Absent, |p| Value::Num(p.into())),
        LogVar::Scheme => opt_str(Some(r.scheme)),
        LogVar::Http(name) => (r.header)(name).map_or(Value::Absent, Value::Bytes),
        LogVar::UpstreamAddr => r.upstream_addr.map_or(Value::Absent, Value::Addr),
        LogVar::UpstreamStatus => r
            .upstream_status
            .map_or(Value::Absent, |s| Value::Num(s.into())),
        LogVar::UpstreamConnectTime => r.upstream_connect_time.map_or(Value::Absent, Value::Secs),
        LogVar::UpstreamHeaderTime => r.upstream_header_time.map_or(Value::Absent, Value::Secs),
        LogVar::UpstreamResponseTime => r.upstream_response_time.map_or(Value::Absent, Value::Secs),
        LogVar::UpstreamBytesSent => r.upstream_bytes_sent.map_or(Value::Absent, Value::Num),
        LogVar::UpstreamBytesReceived => {
            r.upstream_bytes_received.map_or(Value::Absent, Value::Num)
        }
        LogVar::Pipe => Value::Fixed("."),
        LogVar::TunnelCloseReason => r.tunnel.map_or(Value::Absent, |t| {
            Value::Bytes(t.close_reason.label().as_bytes())
        }),
        LogVar::TunnelBytesFromClient => r
            .tunnel
            .map_or(Value::Absent, |t| Value::Num(t.bytes_from_client)),
        LogVar::TunnelBytesToClient => r
            .tunnel
            .map_or(Value::Absent, |t| Value::Num(t.bytes_to_client)),
        LogVar::SslProtocol => opt_str(r.ssl_protocol),
        LogVar::SslServerName => opt_str(r.ssl_server_name),
    }
}

/// A value as nginx writes it in a log format (`escape=default`).
fn nginx_value(out: &mut Vec<u8>, v: Value<'_>) {
    match v {
        Value::Absent => out.push(b'-'),
        Value::Fixed(s) => out.extend_from_slice(s.as_bytes()),
        Value::Bytes(b) => nginx_escaped(out, Some(b)),
        Value::Ip(ip) => {
            let _ = write!(out, "{ip}");
        }
        // A unix socket's path is the operator's text: escaped as any.
        Value::Addr(a) => nginx_escaped(out, Some(a.to_string().as_bytes())),
        Value::Num(n) => {
            let _ = write!(out, "{n}");
        }
        Value::Secs(d) => secs(out, d),
        Value::Request(m, t, p) => {
            nginx_escaped(out, Some(m.as_bytes()));
            out.push(b' ');
            nginx_escaped(out, Some(t.as_bytes()));
            out.push(b' ');
            nginx_escaped(out, Some(p.as_bytes()));
        }
    }
}

/// A value inside a log field; "-" when absent or empty, `"`, `\` and
/// bytes outside 0x20..0x7f escaped as nginx does (\xHH).
fn nginx_escaped(out: &mut Vec<u8>, v: Option<&[u8]>) {
    match v {
        None | Some(b"") => out.push(b'-'),
        Some(v) => {
            for &b in v {
                if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) {
                    let _ = write!(out, "\\x{b:02X}");
                } else {
                    out.push(b);
                }
            }
        }
    }
}

/// Seconds with milliseconds, as nginx writes times: "12.003".
fn secs(out: &mut Vec<u8>, d: Duration) {
    let _ = write!(out, "{}.{:03}", d.as_secs(), d.subsec_millis());
}

/// The keys of a `json` line, in order (tunnel keys follow on a tunnel's
/// line).
const JSON_KEYS: [(&str, JsonField); 14] = [
    ("time_iso8601", JsonField::Var(LogVar::TimeIso8601)),
    ("remote_addr", JsonField::Var(LogVar::RemoteAddr)),
    ("request_method", JsonField::Var(LogVar::RequestMethod)),
    ("request_uri", JsonField::Var(LogVar::RequestUri)),
    ("server_protocol", JsonField::Var(LogVar::ServerProtocol)),
    ("status", JsonField::Var(LogVar::Status)),
    ("body_bytes_sent", JsonField::Var(LogVar::BodyBytesSent)),
    ("request_time", JsonField::Var(LogVar::RequestTime)),
    ("host", JsonField::Var(LogVar::Host)),
    ("http_referer", JsonField::Header("referer")),
    ("http_user_agent", JsonField::Header("user-agent")),
    ("upstream_addr", JsonField::Var(LogVar::UpstreamAddr)),
    ("upstream_status", JsonField::Var(LogVar::UpstreamStatus)),
    (
        "upstream_connect_time",
        JsonField::Var(LogVar::UpstreamConnectTime),
    ),
];

const JSON_TUNNEL_KEYS: [(&str, JsonField); 3] = [
    (
        "tunnel_close_reason",
        JsonField::Var(LogVar::TunnelCloseReason),
    ),
    (
        "tunnel_bytes_from_client",
        JsonField::Var(LogVar::TunnelBytesFromClient),
    ),
    (
        "tunnel_bytes_to_client",
        JsonField::Var(LogVar::TunnelBytesToClient),
    ),
];

enum JsonField {
    Var(LogVar),
    Header(&'static str),
}

fn json(out: &mut Vec<u8>, r: &Record<'_>, time: &TimeCache) {
    let tunnel: &[(&str, JsonField)] = if r.tunnel.is_some() {
        &JSON_TUNNEL_KEYS
    } else {
        &[]
    };
    out.push(b'{');
    for (i, (key, field)) in JSON_KEYS.iter().chain(tunnel).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'"');
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"\":");
        let v = match field {
            JsonField::Var(v) => value(v, r, time),
            JsonField::Header(h) => (r.header)(h).map_or(Value::Absent, Value::Bytes),
        };
        json_value(out, v);
    }
    out.extend_from_slice(b"}\n");
}

fn json_value(out: &mut Vec<u8>, v: Value<'_>) {
    match v {
        Value::Absent | Value::Bytes(b"") => out.extend_from_slice(b"null"),
        Value::Num(n) => {
            let _ = write!(out, "{n}");
        }
        Value::Secs(d) => secs(out, d),
        Value::Fixed(s) => json_string(out, &[s.as_bytes()]),
        Value::Bytes(b) => json_string(out, &[b]),
        Value::Ip(ip) => {
            let _ = write!(out, "\"{ip}\"");
        }
        Value::Addr(a) => json_string(out, &[a.to_string().as_bytes()]),
        Value::Request(m, t, p) => {
            json_string(out, &[m.as_bytes(), b" ", t.as_bytes(), b" ", p.as_bytes()])
        }
    }
}

/// The concatenation of `pieces` as one JSON string (RFC 8259 section 7).
fn json_string(out: &mut Vec<u8>, pieces: &[&[u8]]) {
    out.push(b'"');
    for piece in pieces {
        for chunk in piece.utf8_chunks() {
            for c in chunk.valid().chars() {
                match c {
                    '"' => out.extend_from_slice(b"\\\""),
                    '\\' => out.extend_from_slice(b"\\\\"),
                    '\u{0}'..='\u{1f}' | '\u{7f}' => {
                        let _ = write!(out, "\\u{:04x}", c as u32);
                    }
                    c => {
                        let mut b = [0; 4];
                        out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
                    }
                }
            }
            for &b in chunk.invalid() {
                let _ = write!(out, "\\u{b:04x}");
            }
        }
    }
    out.push(b'"');
}

/// (year, month 1-12, day 1-31) of a day counted from 1970-01-01
/// (Howard Hinnant's algorithm).
pub fn civil_date(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// nginx's `$time_local` in UTC: "23/Nov/2026:04:02:25 +0000".
pub fn time_local(unix_secs: u64) -> String {
    let mut s = String::with_capacity(26);
    write_time_local(&mut s, unix_secs);
    s
}

fn write_time_local(out: &mut String, unix_secs: u64) {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = unix_secs % 86_400;
    let (year, month, day) = civil_date((unix_secs / 86_400) as i64);
    let _ = write!(
        out,
        "{:02}/{}/{}:{:02}:{:02}:{:02} +0000",
        day,
        MONTHS[(month - 1) as usize],
        year,
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
}

/// nginx's `$time_iso8601` in UTC: "2026-11-23T04:02:25+00:00".
pub fn time_iso8601(unix_secs: u64) -> String {
    let mut s = String::with_capacity(25);
    write_time_iso8601(&mut s, unix_secs);
    s
}

fn write_time_iso8601(out: &mut String, unix_secs: u64) {
    let secs = unix_secs % 86_400;
    let (year, month, day) = civil_date((unix_secs / 86_400) as i64);
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}+00:00",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-23T04:02:25.046Z
    fn at() -> TimeCache {
        TimeCache::at(Duration::from_millis(1_795_406_545_046))
    }

    /// README's access-log section lists the `json` members in the order
    /// they are written.
    #[test]
    fn readme_lists_the_json_members() {
        let readme = include_str!("../../README.md");
        let start = readme
            .find("`json` writes one object per line")
            .expect("README describes the json format");
        let text = &readme[start..];
        let text = &text[..text.find("A custom format").expect("paragraph end")];
        let listed: Vec<&str> = text
            .split('`')
            .skip(3)
            .step_by(2)
            .filter(|w| {
                w.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            })
            .collect();
        let ours: Vec<&str> = JSON_KEYS
            .iter()
            .chain(&JSON_TUNNEL_KEYS)
            .map(|(k, _)| *k)
            .collect();
        assert_eq!(&listed[..ours.len()], &ours[..], "README: {text}");
    }

    fn line(fmt: &LogFormat, r: &Record<'_>) -> String {
        let mut out = Vec::new();
        format(&mut out, fmt, r, &at());
        String::from_utf8(out).unwrap()
    }

    fn headers<'a>(name: &str) -> Option<&'a [u8]> {
        match name {
            "user-agent" => Some(b"curl/7.88.1 \"x\""),
            "x-foo" => Some(b"a\\b\x01\xff"),
            _ => None,
        }
    }

    /// The HTTP line of the tests: a proxied GET.
    static UP_4000: std::sync::LazyLock<UpstreamAddr> =
        std::sync::LazyLock::new(|| UpstreamAddr::Inet("10.0.0.7:4000".parse().unwrap()));
    static UP_3000: std::sync::LazyLock<UpstreamAddr> =
        std::sync::LazyLock::new(|| UpstreamAddr::Inet("10.0.0.7:3000".parse().unwrap()));

    #[test]
    fn a_unix_upstream_is_logged_as_nginx_names_it() {
        let up = UpstreamAddr::Unix(std::path::Path::new("/run/a \"b\".sock").into());
        let r = Record {
            upstream_addr: Some(&up),
            ..http()
        };
        let mut out = Vec::new();
        nginx_value(
            &mut out,
            value(&LogVar::UpstreamAddr, &r, &TimeCache::default()),
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "unix:/run/a \\x22b\\x22.sock"
        );
    }

    fn http<'a>() -> Record<'a> {
        Record {
            method: "GET",
            target: "/api/v1?x=1",
            protocol: "HTTP/1.1",
            status: 200,
            body_bytes_sent: 17,
            bytes_sent: 160,
            request_time: Duration::from_millis(4),
            header: &headers,
            upstream_addr: Some(&UP_4000),
            upstream_status: Some(200),
            upstream_connect_time: Some(Duration::from_millis(1)),
            ..Record::new("127.0.0.1:50312".parse().unwrap())
        }
    }

    /// The tunnel line of the tests.
    fn tunnel<'a>() -> Record<'a> {
        Record {
            method: "GET",
            target: "/ws/",
            protocol: http1(1),
            status: 101,
            body_bytes_sent: 512,
            request_time: Duration::from_millis(12_003),
            header: &headers,
            upstream_addr: Some(&UP_3000),
            tunnel: Some(TunnelEnd {
                close_reason: CloseReason::Client,
                bytes_from_client: 240,
                bytes_to_client: 512,
            }),
            ..Record::new("127.0.0.1:50312".parse().unwrap())
        }
    }

    #[test]
    fn time_format() {
        assert_eq!(time_local(0), "01/Jan/1970:00:00:00 +0000");
        // 2026-11-23T04:02:25Z
        assert_eq!(time_local(1_795_406_545), "23/Nov/2026:04:02:25 +0000");
        // 2024-02-29T23:59:59Z (leap day)
        assert_eq!(time_local(1_709_251_199), "29/Feb/2024:23:59:59 +0000");
        assert_eq!(time_iso8601(0), "1970-01-01T00:00:00+00:00");
        assert_eq!(time_iso8601(1_709_251_199), "2024-02-29T23:59:59+00:00");
        let mut t = at();
        assert_eq!(t.time_iso8601(), "2026-11-23T04:02:25+00:00");
        t.set(Duration::from_millis(1_795_406_546_000));
        assert_eq!(t.time_local(), "23/Nov/2026:04:02:26 +0000");
    }

    /// The line ringway wrote before log formats, byte for byte.
    #[test]
    fn line_format() {
        let ua: &HeaderFn<'_> = &|n| (n == "user-agent").then_some(&b"curl/7.88.1 \"x\""[..]);
        let r = Record {
            method: "GET",
            target: "/ws/",
            protocol: http1(1),
            status: 101,
            body_bytes_sent: 512,
            request_time: Duration::from_millis(12_003),
            header: ua,
            ..Record::new("127.0.0.1:1".parse().unwrap())
        };
        assert_eq!(
            line(&LogFormat::Combined, &r),
            "127.0.0.1 - - [23/Nov/2026:04:02:25 +0000] \"GET /ws/ HTTP/1.1\" 101 512 \"-\" \"curl/7.88.1 \\x22x\\x22\" 12.003\n"
        );
    }

    #[test]
    fn ringway_default_http_and_tunnel_lines() {
        assert_eq!(LogFormat::default(), LogFormat::Ringway);
        assert_eq!(
            line(&LogFormat::Ringway, &http()),
            "127.0.0.1 - - [23/Nov/2026:04:02:25 +0000] \"GET /api/v1?x=1 HTTP/1.1\" 200 17 \"-\" \"curl/7.88.1 \\x22x\\x22\" 0.004 \"10.0.0.7:4000\" 0.001 - - -\n"
        );
        assert_eq!(
            line(&LogFormat::Ringway, &tunnel()),
            "127.0.0.1 - - [23/Nov/2026:04:02:25 +0000] \"GET /ws/ HTTP/1.1\" 101 512 \"-\" \"curl/7.88.1 \\x22x\\x22\" 12.003 \"10.0.0.7:3000\" - client 240 512\n"
        );
        // A line with no upstream (answered by ringway itself).
        let r = Record {
            upstream_addr: None,
            upstream_connect_time: None,
            ..http()
        };
        assert!(line(&LogFormat::Ringway, &r).ends_with(" 0.004 \"-\" - - - -\n"));
        // Combined is the same line without the last fields.
        let c = line(&LogFormat::Combined, &tunnel());
        assert!(line(&LogFormat::Ringway, &tunnel()).starts_with(c.trim_end()));
    }

    #[test]
    fn json_lines_are_valid_and_escaped() {
        let http_line = line(&LogFormat::Json, &http());
        assert!(http_line.ends_with("}\n") && !http_line[..http_line.len() - 1].contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&http_line).unwrap();
        assert_eq!(v["time_iso8601"], "2026-11-23T04:02:25+00:00");
        assert_eq!(v["remote_addr"], "127.0.0.1");
        assert_eq!(v["request_method"], "GET");
        assert_eq!(v["request_uri"], "/api/v1?x=1");
        assert_eq!(v["status"], 200);
        assert_eq!(v["body_bytes_sent"], 17);
        assert_eq!(v["request_time"], 0.004);
        assert_eq!(v["host"], serde_json::Value::Null);
        assert_eq!(v["http_referer"], serde_json::Value::Null);
        assert_eq!(v["http_user_agent"], "curl/7.88.1 \"x\"");
        assert_eq!(v["upstream_addr"], "10.0.0.7:4000");
        assert_eq!(v["upstream_status"], 200);
        assert_eq!(v["upstream_connect_time"], 0.001);
        assert!(v.get("tunnel_close_reason").is_none());

        let t: serde_json::Value =
            serde_json::from_str(&line(&LogFormat::Json, &tunnel())).unwrap();
        assert_eq!(t["status"], 101);
        assert_eq!(t["request_time"], 12.003);
        assert_eq!(t["tunnel_close_reason"], "client");
        assert_eq!(t["tunnel_bytes_from_client"], 240);
        assert_eq!(t["tunnel_bytes_to_client"], 512);
        assert_eq!(t["upstream_status"], serde_json::Value::Null);

        // Quotes, backslashes, control bytes, non-ASCII and bytes that
        // are not UTF-8.
        let nasty: &HeaderFn<'_> = &|n| match n {
            "user-agent" => Some(&b"q\"b\\s\x01\x1b\x7f\tn\n"[..]),
            "referer" => Some("https://ex.com/caf\u{e9}/\u{1f600}".as_bytes()),
            _ => None,
        };
        let r = Record {
            target: "/\u{e9}t\u{e9}\u{ff}",
            host: Some("h\u{0}"),
            header: nasty,
            ..http()
        };
        let raw = line(&LogFormat::Json, &r);
        assert!(raw.contains(r#""http_user_agent":"q\"b\\s\u0001\u001b\u007f\u0009n\u000a""#));
        let v: serde_json::Value = serde_json::from_str(&raw).unwrap();
        assert_eq!(v["http_user_agent"], "q\"b\\s\u{1}\u{1b}\u{7f}\tn\n");
        assert_eq!(v["http_referer"], "https://ex.com/caf\u{e9}/\u{1f600}");
        assert_eq!(v["request_uri"], "/\u{e9}t\u{e9}\u{ff}");
        assert_eq!(v["host"], "h\u{0}");
        // A byte that is not UTF-8 is \u00XX of the byte.
        let mut out = Vec::new();
        json_string(&mut out, &[b"a\xffb\xc3"]);
        assert_eq!(out, br#""a\u00ffb\u00c3""#);
        assert_eq!(
            serde_json::from_slice::<String>(&out).unwrap(),
            "a\u{ff}b\u{c3}"
        );
    }

    #[test]
    fn custom_formats() {
        let fmt = ringway_config::log_format::parse(
            "$remote_addr:$remote_port $upstream_addr $request_time $bytes_sent \"$http_x_foo\" ${status}s $upstream_response_time $upstream_status|$uri|$args|$request|$pipe|$remote_user|$msec|$tunnel_close_reason|$server_port|$host",
        )
        .unwrap();
        assert_eq!(
            line(&fmt, &http()),
            "127.0.0.1:50312 10.0.0.7:4000 0.004 160 \"a\\x5Cb\\x01\\xFF\" 200s - 200|/api/v1|x=1|GET /api/v1?x=1 HTTP/1.1|.|-|1795406545.046|-|-|-\n"
        );
        let fmt = ringway_config::log_format::parse(
            "$tunnel_close_reason $tunnel_bytes_from_client $tunnel_bytes_to_client $request_time $args $realip_remote_addr $time_iso8601",
        )
        .unwrap();
        let r = Record {
            realip_remote_addr: Some("10.1.1.1".parse().unwrap()),
            ..tunnel()
        };
        assert_eq!(
            line(&fmt, &r),
            "client 240 512 12.003 - 10.1.1.1 2026-11-23T04:02:25+00:00\n"
        );
        // Values are escaped, literals are not.
        let fmt = ringway_config::log_format::parse("é $request_uri").unwrap();
        let r = Record {
            target: "/\"\u{e9}",
            ..http()
        };
        assert_eq!(line(&fmt, &r), "é /\\x22\\xC3\\xA9\n");
    }

    #[test]
    fn writes_buffer_and_reopen_after_rename() {
        let dir = std::env::temp_dir().join(format!("ringway-access-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("access.log");
        let _ = std::fs::remove_file(&path);
        let setting = Setting::File(path.clone());
        let log = AccessLog::new(Sink::open(&setting).unwrap(), LogFormat::Combined);
        assert!(log.enabled());
        log.log(&http());
        // Buffered until a flush.
        assert_eq!(std::fs::read(&path).unwrap(), b"");
        log.flush();
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 1);

        // logrotate: rename, then SIGUSR1 -> reopen. The buffered line
        // goes to the old file, the next to a new one at the path.
        let rotated = dir.join("access.log.1");
        std::fs::rename(&path, &rotated).unwrap();
        log.log(&tunnel());
        log.reopen(&setting).unwrap();
        log.set_format(LogFormat::Ringway);
        log.log(&tunnel());
        log.flush();
        let old = std::fs::read_to_string(&rotated).unwrap();
        assert_eq!(old.lines().count(), 2);
        assert!(old.lines().nth(1).unwrap().ends_with("\" 12.003"));
        let new = std::fs::read_to_string(&path).unwrap();
        assert_eq!(new.lines().count(), 1);
        assert!(new.ends_with(" client 240 512\n"));

        // Reopening to "off" stops the log; a bad path keeps the old one.
        let bad = Setting::File(dir.join("no/such/dir/a.log"));
        assert!(log.reopen(&bad).is_err());
        assert!(log.enabled());
        log.reopen(&Setting::Off).unwrap();
        assert!(!log.enabled());
        log.log(&http());
        log.flush();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), new);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
