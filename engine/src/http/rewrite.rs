//! The heads ringway sends on: the upstream request (URI rewrite, Host,
//! `proxy_set_header`, hop-by-hop removal, Upgrade) and the response
//! relayed to the client (hop-by-hop removal).
//!
//! Hop-by-hop handling follows RFC 9110 §7.6.1: `Connection` and every field
//! it names, `Keep-Alive`, `TE`, `Trailer`, `Proxy-Connection` and `Upgrade`
//! never cross the proxy. ringway then adds its own `Upgrade` and
//! `Connection` for the next hop: a WebSocket upgrade needs no
//! `proxy_set_header` boilerplate (RFC 6455 §4.1, RFC 9110 §7.8).
//!
//! Framing fields are never copied: `Content-Length` / `Transfer-Encoding`
//! are written from the message's one framing decision (`framing`), and
//! `Host` from the route, so no field the sender controls (`Connection`
//! naming them included) changes how the next hop delimits the message.

use ringway_config::Template;

use super::framing::{self, ResponseFraming};
use super::path;
use super::request::Request;
use super::response::Response;
use super::upgrade;
use super::{header_eq, is_hop_by_hop, BodyKind};
use crate::vars::VarCtx;

/// What the upstream request should say about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamConn<'a> {
    /// An upgrade: `Upgrade: <the protocols the location allows of those
    /// offered>` (`http::upgrade::select`, never empty) + `Connection:
    /// upgrade`.
    Upgrade(&'a [u8]),
    /// A plain request on a connection that is closed afterwards.
    Close,
    /// A plain request on a pooled connection.
    KeepAlive,
}

/// The URI to send upstream (CONFIG.md "proxy_pass with a URI part"), as
/// nginx builds it: with a URI part, the matched location prefix of the
/// *normalised* path is replaced by it and the rest re-escaped
/// (`path::escape_uri`), then the query as received; without one the
/// request target is sent as the client sent it. `matched_prefix` is
/// `None` for regex locations, which send the target unchanged.
pub fn upstream_uri(
    req: &Request,
    matched_prefix: Option<&str>,
    proxy_uri: Option<&str>,
    changed: Option<&InternalUri>,
) -> String {
    let (path, query, made) = match changed {
        Some(InternalUri {
            path,
            args: Some(a),
        }) => (path.as_str(), Some(a.as_str()), true),
        Some(c) => (c.path.as_str(), req.query(), false),
        None => (req.norm_path(), req.query(), false),
    };
    match (proxy_uri, matched_prefix) {
        (Some(uri), Some(prefix)) if path.starts_with(prefix) => {
            let rest = &path[prefix.len()..];
            let mut s = String::with_capacity(uri.len() + rest.len() + 16);
            s.push_str(uri);
            // "/ws" + proxy "/" on "/ws?x" must give "/?x", not "?x".
            if s.is_empty() || (!s.starts_with('/') && !rest.starts_with('/')) {
                s.insert(0, '/');
            }
            path::escape_uri(&mut s, rest);
            push_query(&mut s, query, made);
            s
        }
        // A changed URI (a `try_files` fallback) goes normalised, as
        // nginx passes "the complete normalized request URI" then.
        _ if changed.is_some() => {
            let mut s = String::with_capacity(path.len() + 16);
            path::escape_uri(&mut s, path);
            push_query(&mut s, query, made);
            s
        }
        _ => req.origin_target().to_string(),
    }
}

/// The request's own query goes as received (the parser checked it);
/// one a fallback made is escaped ([`path::escape_args`]).
fn push_query(s: &mut String, query: Option<&str>, made: bool) {
    if let Some(q) = query.filter(|q| !q.is_empty()) {
        s.push('?');
        if made {
            path::escape_args(s, q);
        } else {
            s.push_str(q);
        }
    }
}

/// A `proxy_pass` URI rendered from `$variables`: sent as rendered, with
/// what a request line cannot hold (controls, space, `#`, DEL, non-ASCII
/// from decoded captures) escaped, so it stays one request-target.
pub fn rendered_uri(rendered: &[u8]) -> String {
    let mut s = String::with_capacity(rendered.len() + 8);
    path::escape_args(&mut s, &String::from_utf8_lossy(rendered));
    if !s.starts_with('/') {
        s.insert(0, '/');
    }
    s
}

pub use crate::vars::InternalUri;

/// Whether a client header field is dropped for having an underscore in
/// its name (nginx's `underscores_in_headers off`, the default): a backend
/// that maps `X-Real-IP` and `X_Real_IP` to the same CGI-style variable
/// would otherwise take the client's spelling for ringway's.
pub fn drops_underscored(name: &[u8], allow_underscores: bool) -> bool {
    !allow_underscores && name.contains(&b'_')
}

/// Write the upstream request head into `out`. The body framing written is
/// `req.body`'s; the client's own framing fields are not copied.
pub fn request_head(
    out: &mut Vec<u8>,
    req: &Request,
    uri: &str,
    set_headers: &[(String, Template)],
    vars: &VarCtx<'_>,
    conn: UpstreamConn<'_>,
    allow_underscores: bool,
) {
    out.extend_from_slice(req.method().as_bytes());
    out.push(b' ');
    out.extend_from_slice(uri.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");

    // Host: proxy_set_header Host wins, else $proxy_host (nginx default).
    let set = |name: &[u8]| {
        set_headers
            .iter()
            .find(|(n, _)| n.as_bytes().eq_ignore_ascii_case(name))
    };
    let mut value = Vec::new();
    match set(b"host") {
        Some((_, t)) => vars.render(t, &mut value),
        None => value.extend_from_slice(vars.proxy_host.as_bytes()),
    }
    if !value.is_empty() {
        push_header(out, "Host", &value);
    }

    for (name, t) in set_headers {
        if header_eq(name.as_bytes(), "host")
            || header_eq(name.as_bytes(), "connection")
            || header_eq(name.as_bytes(), "upgrade")
        {
            continue;
        }
        value.clear();
        vars.render(t, &mut value);
        // nginx: an empty value means the field is not sent.
        if !value.is_empty() {
            push_header(out, name, &value);
        }
    }

    for (name, v) in req.headers() {
        // Expect: ringway answers "100 Continue" itself (as nginx does).
        // HTTP2-Settings belongs to an h2c upgrade (RFC 7540 §3.2.1): it
        // goes along below only when that upgrade is forwarded.
        if header_eq(name, "host")
            || header_eq(name, "expect")
            || header_eq(name, "http2-settings")
            || framing::is_framing(name)
            || is_hop_by_hop(name, req.headers_named("connection"))
            || drops_underscored(name, allow_underscores)
            || set(name).is_some()
        {
            continue;
        }
        push_header(out, name, v);
    }
    framing::write(out, req.body);

    match conn {
        UpstreamConn::Upgrade(protocols) => {
            push_header(out, "Upgrade", protocols);
            match req.header("http2-settings") {
                Some(settings) if upgrade::offers_h2c(protocols) => {
                    push_header(out, "HTTP2-Settings", settings);
                    out.extend_from_slice(b"Connection: upgrade, HTTP2-Settings\r\n");
                }
                _ => out.extend_from_slice(b"Connection: upgrade\r\n"),
            }
        }
        UpstreamConn::Close => out.extend_from_slice(b"Connection: close\r\n"),
        UpstreamConn::KeepAlive => {}
    }
    out.extend_from_slice(b"\r\n");
}

/// A rendered `add_header` field (or one `expires` makes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Added {
    pub name: String,
    pub value: Vec<u8>,
    /// `always`: on every status.
    pub always: bool,
}

impl Added {
    /// Whether this field goes on an answer with `status`.
    pub fn applies(&self, status: u16) -> bool {
        self.always || add_header_applies(status)
    }
}

/// What the location does to a relayed response head besides the
/// hop-by-hop rules: fields it adds, upstream fields those replace, the
/// upstream fields it hides, and the `Server` field it writes.
#[derive(Debug, Clone, Copy)]
pub struct Relay<'a> {
    pub added: &'a [Added],
    /// Upstream fields the added fields replace where they apply
    /// (`expires`'s).
    pub replace: &'a [&'a str],
    /// Upstream fields not relayed, lowercase (`Location::proxy_hide`).
    pub hide: &'a [String],
    /// `server_tokens`.
    pub server_tokens: bool,
    /// `proxy_redirect`: (FROM, TO) prefixes of `Location` and
    /// `Refresh`'s URL, the first that matches applied.
    pub redirect: &'a [(String, String)],
    /// The body goes gzipped (`Some(gzip_vary)`): chunked, with
    /// `Content-Encoding: gzip`, a strong `ETag` made weak (the bytes are
    /// not the upstream's), `Vary: Accept-Encoding` with `gzip_vary`.
    pub gzip: Option<bool>,
}

impl Relay<'_> {
    /// Relay everything but the hop-by-hop fields; add nothing.
    pub const NONE: Relay<'static> = Relay {
        added: &[],
        replace: &[],
        hide: &[],
        server_tokens: false,
        redirect: &[],
        gzip: None,
    };
}

/// `proxy_redirect` on one field value: `Location`'s whole value, or the
/// URL after `url=` in `Refresh`; the first rule whose FROM is a prefix
/// (ASCII case-insensitive, as nginx) replaces it. `None`: unchanged.
pub fn redirected(name: &[u8], value: &[u8], rules: &[(String, String)]) -> Option<Vec<u8>> {
    let at = if header_eq(name, "location") {
        0
    } else if header_eq(name, "refresh") {
        let lower = value.to_ascii_lowercase();
        lower.windows(4).position(|w| w == b"url=")? + 4
    } else {
        return None;
    };
    let url = &value[at..];
    let (from, to) = rules.iter().find(|(from, _)| {
        url.len() >= from.len() && url[..from.len()].eq_ignore_ascii_case(from.as_bytes())
    })?;
    let mut out = Vec::with_capacity(value.len() + to.len());
    out.extend_from_slice(&value[..at]);
    out.extend_from_slice(to.as_bytes());
    out.extend_from_slice(&url[from.len()..]);
    Some(out)
}

/// The `Server` field ringway writes: its name, with `server_tokens`
/// its version too (never by default: a version helps only an attacker).
pub fn server_field(tokens: bool) -> &'static [u8] {
    if tokens {
        concat!("Server: ringway/", env!("CARGO_PKG_VERSION"), "\r\n").as_bytes()
    } else {
        b"Server: ringway\r\n"
    }
}

/// Write the response head relayed to the client. A 101 keeps its
/// `Upgrade` and gets `Connection: upgrade`; any other response loses the
/// upstream's hop-by-hop fields and gets `Connection: close` or
/// `keep-alive` as the client connection will do.
pub fn response_head(
    out: &mut Vec<u8>,
    resp: &Response,
    framing: ResponseFraming,
    client_keep_alive: bool,
    relay: &Relay<'_>,
) {
    response_head_for(out, resp, framing, client_keep_alive, false, relay)
}

/// The fields `expires` sets (and replaces in a proxied answer).
pub const EXPIRES_FIELDS: &[&str] = &["Expires", "Cache-Control"];

/// The statuses nginx's `add_header` (without `always`) applies to.
pub fn add_header_applies(status: u16) -> bool {
    matches!(
        status,
        200 | 201 | 204 | 206 | 301 | 302 | 303 | 304 | 307 | 308
    )
}

/// `response_head`, optionally without `Transfer-Encoding` (the body is
/// relayed decoded to an HTTP/1.0 client, delimited by closing). As
/// nginx: the upstream's fields in `relay.hide` are dropped, ringway's
/// own `Server` and `Date` take the place of the upstream's when those
/// are hidden (the default), and the location's added fields follow
/// where the status takes them, replacing the upstream's fields named in
/// `relay.replace`. The framing field written is `framing`'s, not the
/// upstream's.
pub fn response_head_for(
    out: &mut Vec<u8>,
    resp: &Response,
    framing: ResponseFraming,
    client_keep_alive: bool,
    dechunk: bool,
    relay: &Relay<'_>,
) {
    let replacing = add_header_applies(resp.status) && !relay.replace.is_empty();
    let hidden = |name: &[u8]| relay.hide.iter().any(|h| header_eq(name, h));
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(resp.status.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(resp.reason());
    out.extend_from_slice(b"\r\n");
    if relay.hide.iter().any(|h| h == "server") {
        out.extend_from_slice(server_field(relay.server_tokens));
    }
    if relay.hide.iter().any(|h| h == "date") {
        super::date::push_date(out);
    }
    for (name, v) in resp.headers() {
        if framing::is_framing(name) || is_hop_by_hop(name, resp.connection_values()) {
            continue;
        }
        if hidden(name) {
            continue;
        }
        if relay.gzip.is_some() && header_eq(name, "etag") {
            push_header(out, name, &super::gzip::weak_etag(v));
            continue;
        }
        if let Some(v) = redirected(name, v, relay.redirect) {
            push_header(out, name, &v);
            continue;
        }
        if replacing
            && relay
                .replace
                .iter()
                .any(|r| r.as_bytes().eq_ignore_ascii_case(name))
        {
            continue;
        }
        push_header(out, name, v);
    }
    match framing.body {
        _ if relay.gzip.is_some() => {
            out.extend_from_slice(b"Content-Encoding: gzip\r\n");
            if relay.gzip == Some(true) {
                out.extend_from_slice(b"Vary: Accept-Encoding\r\n");
            }
            framing::write(out, BodyKind::Chunked);
        }
        BodyKind::Chunked if dechunk => {}
        BodyKind::None => {
            if let Some(n) = framing.declared_length {
                framing::write_length(out, n);
            }
        }
        kind => framing::write(out, kind),
    }
    for a in relay.added.iter().filter(|a| a.applies(resp.status)) {
        push_header(out, &a.name, &a.value);
    }
    if resp.status == 101 {
        if let Some(up) = resp.header("upgrade") {
            push_header(out, "Upgrade", up);
        }
        out.extend_from_slice(b"Connection: upgrade\r\n");
    } else if client_keep_alive {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    } else {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

pub fn push_header(out: &mut Vec<u8>, name: impl AsRef<[u8]>, value: &[u8]) {
    out.extend_from_slice(name.as_ref());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{request, response};
    use ringway_config::{Part, Var};

    fn tpl(v: Var) -> Template {
        Template {
            parts: vec![Part::Var(v)],
        }
    }

    fn render(raw: &str, set: &[(String, Template)], conn: UpstreamConn<'_>, uri: &str) -> String {
        render_with(raw, set, conn, uri, false)
    }

    fn render_with(
        raw: &str,
        set: &[(String, Template)],
        conn: UpstreamConn<'_>,
        uri: &str,
        underscores: bool,
    ) -> String {
        let req = request::parse_bytes(raw.as_bytes(), 64, 8192)
            .unwrap()
            .unwrap();
        let vars = VarCtx {
            req: &req,
            remote: "192.0.2.7:40000".parse().unwrap(),
            peer: crate::vars::Peer::direct("192.0.2.7:40000".parse().unwrap()),
            local: "127.0.0.1:80".parse().unwrap(),
            server_name: "",
            tls: None,
            proxy_host: "127.0.0.1:3000",
            captures: &[],
            uri: None,
            named: &[],
        };
        let mut out = Vec::new();
        request_head(&mut out, &req, uri, set, &vars, conn, underscores);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn upgrade_head_without_boilerplate() {
        let raw = "GET /ws/chat HTTP/1.1\r\nHost: ws.example.com\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\nSec-WebSocket-Key: k\r\nSec-WebSocket-Protocol: chat\r\n\r\n";
        let out = render(raw, &[], UpstreamConn::Upgrade(b"websocket"), "/chat");
        assert_eq!(
            out,
            "GET /chat HTTP/1.1\r\nHost: 127.0.0.1:3000\r\nSec-WebSocket-Key: k\r\nSec-WebSocket-Protocol: chat\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n"
        );
    }

    /// The upgrade forwarded is the location's choice, not the client's
    /// value; HTTP2-Settings goes only with a forwarded h2c upgrade.
    #[test]
    fn only_the_allowed_upgrade_is_forwarded() {
        let raw = "GET /p HTTP/1.1\r\nHost: a\r\nUpgrade: websocket, h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n";
        let out = render(raw, &[], UpstreamConn::Upgrade(b"websocket"), "/p");
        assert_eq!(
            out,
            "GET /p HTTP/1.1\r\nHost: 127.0.0.1:3000\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n"
        );
        let out = render(raw, &[], UpstreamConn::KeepAlive, "/p");
        assert_eq!(out, "GET /p HTTP/1.1\r\nHost: 127.0.0.1:3000\r\n\r\n");
        // Not listed in Connection: still never forwarded on its own.
        let raw = "GET /p HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: Upgrade\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n";
        let out = render(raw, &[], UpstreamConn::Close, "/p");
        assert_eq!(
            out,
            "GET /p HTTP/1.1\r\nHost: 127.0.0.1:3000\r\nConnection: close\r\n\r\n"
        );
        let out = render(raw, &[], UpstreamConn::Upgrade(b"h2c"), "/p");
        assert_eq!(
            out,
            "GET /p HTTP/1.1\r\nHost: 127.0.0.1:3000\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\nConnection: upgrade, HTTP2-Settings\r\n\r\n"
        );
    }

    #[test]
    fn set_headers_replace_client_ones() {
        let raw = "GET / HTTP/1.1\r\nHost: ws.example.com\r\nX-Forwarded-For: 1.1.1.1\r\nX-Real-IP: spoof\r\n\r\n";
        let set = vec![
            ("Host".to_string(), tpl(Var::Host)),
            ("X-Real-IP".to_string(), tpl(Var::RemoteAddr)),
            (
                "X-Forwarded-For".to_string(),
                tpl(Var::ProxyAddXForwardedFor),
            ),
            ("X-Forwarded-Proto".to_string(), tpl(Var::Scheme)),
            ("X-Empty".to_string(), tpl(Var::Http("x-none".into()))),
            ("Connection".to_string(), tpl(Var::ConnectionUpgrade)),
        ];
        let out = render(raw, &set, UpstreamConn::Close, "/");
        assert_eq!(
            out,
            "GET / HTTP/1.1\r\nHost: ws.example.com\r\nX-Real-IP: 192.0.2.7\r\nX-Forwarded-For: 1.1.1.1, 192.0.2.7\r\nX-Forwarded-Proto: http\r\nConnection: close\r\n\r\n"
        );
    }

    fn uri(target: &str, prefix: Option<&str>, proxy: Option<&str>) -> String {
        let raw = format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n");
        let req = request::parse_bytes(raw.as_bytes(), 16, 8192)
            .unwrap()
            .unwrap();
        upstream_uri(&req, prefix, proxy, None)
    }

    /// A `try_files` fallback's URI: sent normalised and escaped, with its
    /// own query or else the request's; a URI part replaces the prefix.
    #[test]
    fn changed_uri() {
        let raw = "GET /a%20b?x=1 HTTP/1.1\r\nHost: a\r\n\r\n";
        let req = request::parse_bytes(raw.as_bytes(), 16, 8192)
            .unwrap()
            .unwrap();
        let to = |path: &str, args: Option<&str>| InternalUri {
            path: path.into(),
            args: args.map(str::to_string),
        };
        assert_eq!(
            upstream_uri(&req, None, None, Some(&to("/index.php", None))),
            "/index.php?x=1"
        );
        assert_eq!(
            upstream_uri(&req, None, None, Some(&to("/i p", Some("q=/a b")))),
            "/i%20p?q=/a%20b"
        );
        assert_eq!(
            upstream_uri(&req, Some("/app/"), Some("/"), Some(&to("/app/x", None))),
            "/x?x=1"
        );
    }

    #[test]
    fn uri_rewrite() {
        assert_eq!(
            uri("/ws/chat?room=1", Some("/ws/"), Some("/")),
            "/chat?room=1"
        );
        assert_eq!(uri("/ws/chat", Some("/ws/"), None), "/ws/chat");
        assert_eq!(uri("/ws/chat", Some("/ws/"), Some("/v2/")), "/v2/chat");
        assert_eq!(uri("/ws?x=1", Some("/ws"), Some("/")), "/?x=1");
        assert_eq!(uri("/ws/a", Some("/ws"), Some("/b")), "/b/a");
        assert_eq!(uri("/health", Some("/health"), Some("/up")), "/up");
        assert_eq!(uri("/x.png", None, Some("/")), "/x.png");
        assert_eq!(uri("/ws/a?", Some("/ws/"), Some("/")), "/a");
    }

    /// What nginx forwards: the routed (normalised) path with a URI part,
    /// the client's bytes without one.
    #[test]
    fn uri_forwarded_as_nginx() {
        assert_eq!(
            uri("/u/a%20b%2561%3F/%2F/c?q=%20", Some("/u/"), Some("/x/")),
            "/x/a%20b%2561%3F/c?q=%20"
        );
        assert_eq!(uri("/u/..%2fu/./z", Some("/u/"), Some("/x/")), "/x/z");
        assert_eq!(
            uri("/p/%61dmin//x", Some("/p/"), None),
            "/p/%61dmin//x",
            "no URI part: the target as sent"
        );
        assert_eq!(
            uri("http://h/p/%61?q", Some("/p/"), None),
            "/p/%61?q",
            "absolute-form: its origin-form part"
        );
    }

    /// The head relayed to the client for upstream head `raw`.
    fn relayed(raw: &[u8], head_request: bool, keep_alive: bool) -> String {
        let r = response::parse_bytes(raw, 64, 4096).unwrap().unwrap();
        let mut out = Vec::new();
        response_head(
            &mut out,
            &r,
            r.framing(head_request).unwrap(),
            keep_alive,
            &Relay::NONE,
        );
        String::from_utf8(out).unwrap()
    }

    fn added(name: &str, value: &str, always: bool) -> Added {
        Added {
            name: name.into(),
            value: value.into(),
            always,
        }
    }

    /// nginx's defaults: the upstream's Server, Date, X-Pad and the five
    /// X-Accel-* it acts on are not relayed (other X-Accel-* are); its own
    /// Server and Date take their place; `always` fields go on every
    /// status, the others on nginx's list only.
    #[test]
    fn hidden_fields_and_added_ones() {
        let hide: Vec<String> = ringway_config::DEFAULT_PROXY_HIDE
            .iter()
            .map(|s| s.to_string())
            .collect();
        let add = [added("X-A", "a", false), added("X-B", "b", true)];
        let relay = Relay {
            added: &add,
            replace: &[],
            hide: &hide,
            server_tokens: false,
            redirect: &[],
            gzip: None,
        };
        let head = |raw: &[u8]| {
            let r = response::parse_bytes(raw, 64, 4096).unwrap().unwrap();
            let mut out = Vec::new();
            response_head(&mut out, &r, r.framing(false).unwrap(), true, &relay);
            String::from_utf8(out).unwrap()
        };
        let ok = head(b"HTTP/1.1 200 OK\r\nServer: up/1\r\nDate: Mon, 01 Jan 2001 00:00:00 GMT\r\nX-Pad: p\r\nX-Accel-Buffering: no\r\nX-Accel-Other: o\r\nContent-Length: 0\r\n\r\n");
        assert!(
            ok.starts_with("HTTP/1.1 200 OK\r\nServer: ringway\r\nDate: "),
            "{ok}"
        );
        for gone in ["up/1", "2001", "X-Pad", "X-Accel-Buffering"] {
            assert!(!ok.contains(gone), "{gone} relayed: {ok}");
        }
        assert!(ok.contains("X-Accel-Other: o\r\n"), "{ok}");
        assert!(ok.contains("X-A: a\r\nX-B: b\r\n"), "{ok}");
        let missing = head(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        assert!(
            missing.contains("X-B: b\r\n") && !missing.contains("X-A"),
            "{missing}"
        );
        // proxy_pass_header Server: the upstream's, and no second one.
        let passed: Vec<String> = hide.iter().filter(|h| *h != "server").cloned().collect();
        let relay = Relay {
            hide: &passed,
            server_tokens: true,
            ..relay
        };
        let r = response::parse_bytes(b"HTTP/1.1 200 OK\r\nServer: up/1\r\n\r\n", 64, 4096)
            .unwrap()
            .unwrap();
        let mut out = Vec::new();
        response_head(&mut out, &r, r.framing(false).unwrap(), true, &relay);
        let out = String::from_utf8(out).unwrap();
        assert_eq!(out.matches("Server:").count(), 1, "{out}");
        assert!(out.contains("Server: up/1\r\n"), "{out}");
    }

    #[test]
    fn proxy_redirect_rewrites_location_and_refresh() {
        let rules = [
            ("http://up:9000/two/".to_string(), "/one/".to_string()),
            ("http://up:9000/".to_string(), "/".to_string()),
        ];
        let r = |n: &str, v: &str| {
            redirected(n.as_bytes(), v.as_bytes(), &rules).map(|v| String::from_utf8(v).unwrap())
        };
        assert_eq!(
            r("Location", "http://up:9000/two/x?y=1").as_deref(),
            Some("/one/x?y=1")
        );
        assert_eq!(
            r("location", "HTTP://UP:9000/three").as_deref(),
            Some("/three")
        );
        assert_eq!(r("Location", "https://elsewhere/two/"), None);
        assert_eq!(
            r("Refresh", "5; URL=http://up:9000/two/r").as_deref(),
            Some("5; URL=/one/r")
        );
        assert_eq!(r("Refresh", "5"), None);
        assert_eq!(r("Content-Location", "http://up:9000/two/x"), None);
    }

    #[test]
    fn server_tokens_names_the_version() {
        assert_eq!(server_field(false), b"Server: ringway\r\n");
        let with = String::from_utf8_lossy(server_field(true)).into_owned();
        assert!(with.starts_with("Server: ringway/") && with.ends_with("\r\n"));
    }

    #[test]
    fn response_heads() {
        assert_eq!(
            relayed(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: abc\r\n\r\n", false, false),
            "HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: abc\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n"
        );
        assert_eq!(
            relayed(b"HTTP/1.1 403 Forbidden\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nContent-Length: 9\r\n\r\n", false, false),
            "HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\nConnection: close\r\n\r\n"
        );
    }

    /// Class 2 of the smuggling issue: a `Connection` header naming the
    /// framing field cannot take it off the forwarded head; the framing
    /// written is the decision ringway relays the body by.
    #[test]
    fn connection_cannot_remove_framing() {
        let raw = "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: Content-Length, Transfer-Encoding, Host, X-Drop\r\nX-Drop: 1\r\n\r\n";
        let out = render(raw, &[], UpstreamConn::KeepAlive, "/a");
        assert_eq!(
            out,
            "POST /a HTTP/1.1\r\nHost: 127.0.0.1:3000\r\nContent-Length: 5\r\n\r\n"
        );
        let raw = "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: transfer-encoding\r\n\r\n";
        let out = render(raw, &[], UpstreamConn::Close, "/a");
        assert_eq!(
            out,
            "POST /a HTTP/1.1\r\nHost: 127.0.0.1:3000\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        );
        let raw = "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n";
        let out = render(raw, &[], UpstreamConn::Close, "/a");
        assert!(out.contains("\r\nContent-Length: 0\r\n"), "{out}");
    }

    #[test]
    fn underscored_names_are_dropped_by_default() {
        let raw = "GET / HTTP/1.1\r\nHost: x\r\nX_Real_IP: 6.6.6.6\r\nX-Ok: 1\r\n\r\n";
        let out = render(raw, &[], UpstreamConn::KeepAlive, "/");
        assert_eq!(
            out,
            "GET / HTTP/1.1\r\nHost: 127.0.0.1:3000\r\nX-Ok: 1\r\n\r\n"
        );
        let out = render_with(raw, &[], UpstreamConn::KeepAlive, "/", true);
        assert!(out.contains("X_Real_IP: 6.6.6.6"), "{out}");
    }

    /// The response side of class 2: the length stays, so a kept-alive
    /// client connection cannot see two responses merge.
    #[test]
    fn response_framing_is_ringways() {
        assert_eq!(
            relayed(
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: Content-Length\r\n\r\nabc",
                false,
                true
            ),
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\n"
        );
        // HEAD: the declared length is passed on, no body follows.
        assert!(
            relayed(b"HTTP/1.1 200 OK\r\nContent-Length: 30\r\n\r\n", true, true)
                .contains("Content-Length: 30\r\n")
        );
        // Chunked to an HTTP/1.0 client: no framing field, closed after.
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        let r = response::parse_bytes(raw, 64, 4096).unwrap().unwrap();
        let mut out = Vec::new();
        response_head_for(
            &mut out,
            &r,
            r.framing(false).unwrap(),
            false,
            true,
            &Relay::NONE,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"
        );
    }
}
