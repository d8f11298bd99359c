//! The heads ringway sends on: the upstream request (URI rewrite, Host,
//! `proxy_set_header`, hop-by-hop removal, Upgrade) and the response
//! relayed to the client (hop-by-hop removal).
//!
//! Hop-by-hop handling follows RFC 9110 §7.6.1: `Connection` and every field
//! it names, `Keep-Alive`, `TE`, `Trailer`, `Proxy-Connection` and `Upgrade`
//! never cross the proxy. ringway then adds its own `Upgrade` and
//! `Connection` for the next hop: a WebSocket upgrade needs no
//! `proxy_set_header` boilerplate (RFC 6455 §4.1, RFC 9110 §7.8).

use ringway_config::Template;

use super::request::Request;
use super::response::Response;
use super::{header_eq, is_hop_by_hop};
use crate::vars::VarCtx;

/// What the upstream request should say about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamConn {
    /// An upgrade: `Upgrade: <client's value>` + `Connection: upgrade`.
    Upgrade,
    /// A plain request on a connection that is closed afterwards.
    Close,
    /// A plain request on a pooled connection.
    KeepAlive,
}

/// The URI to send upstream (CONFIG.md "proxy_pass with a URI part"):
/// with a URI part, the matched location prefix is replaced by it; without
/// one the request target is sent unchanged. `matched_prefix` is `None` for
/// regex locations, which send the target unchanged.
pub fn upstream_uri(target: &str, matched_prefix: Option<&str>, proxy_uri: Option<&str>) -> String {
    match (proxy_uri, matched_prefix) {
        (Some(uri), Some(prefix)) if target.starts_with(prefix) => {
            let rest = &target[prefix.len()..];
            let mut s = String::with_capacity(uri.len() + rest.len());
            s.push_str(uri);
            // "/ws" + proxy "/" on "/ws?x" must give "/?x", not "?x".
            if s.is_empty() || (!s.starts_with('/') && !rest.starts_with('/')) {
                s.insert(0, '/');
            }
            s.push_str(rest);
            s
        }
        _ => target.to_string(),
    }
}

/// Write the upstream request head into `out`.
pub fn request_head(
    out: &mut Vec<u8>,
    req: &Request<'_>,
    uri: &str,
    set_headers: &[(String, Template)],
    vars: &VarCtx<'_, '_>,
    conn: UpstreamConn,
) {
    out.extend_from_slice(req.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(uri.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");

    // Host: proxy_set_header Host wins, else $proxy_host (nginx default).
    let set = |name: &str| {
        set_headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
    };
    let mut value = Vec::new();
    match set("host") {
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

    let conn_values: Vec<&[u8]> = req.headers_named("connection").collect();
    for h in &req.headers {
        // Expect: ringway answers "100 Continue" itself (as nginx does).
        if h.name.eq_ignore_ascii_case("host")
            || h.name.eq_ignore_ascii_case("expect")
            || is_hop_by_hop(h.name, conn_values.iter().copied())
            || set(h.name).is_some()
        {
            continue;
        }
        push_header(out, h.name, h.value);
    }

    match conn {
        UpstreamConn::Upgrade => {
            push_header(
                out,
                "Upgrade",
                req.header("upgrade").unwrap_or(b"websocket"),
            );
            out.extend_from_slice(b"Connection: upgrade\r\n");
        }
        UpstreamConn::Close => out.extend_from_slice(b"Connection: close\r\n"),
        UpstreamConn::KeepAlive => {}
    }
    out.extend_from_slice(b"\r\n");
}

/// Write the response head relayed to the client. A 101 keeps its
/// `Upgrade` and gets `Connection: upgrade`; any other response loses the
/// upstream's hop-by-hop fields and gets `Connection: close` or
/// `keep-alive` as the client connection will do.
pub fn response_head(out: &mut Vec<u8>, resp: &Response<'_>, client_keep_alive: bool) {
    response_head_for(out, resp, client_keep_alive, false, &[])
}

/// The statuses nginx's `add_header` (without `always`) applies to.
pub fn add_header_applies(status: u16) -> bool {
    matches!(
        status,
        200 | 201 | 204 | 206 | 301 | 302 | 303 | 304 | 307 | 308
    )
}

/// `response_head`, optionally without `Transfer-Encoding` (the body is
/// relayed decoded to an HTTP/1.0 client, delimited by closing), plus the
/// location's rendered `add_header` fields where the status takes them.
pub fn response_head_for(
    out: &mut Vec<u8>,
    resp: &Response<'_>,
    client_keep_alive: bool,
    dechunk: bool,
    add_header: &[(String, Vec<u8>)],
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(resp.status.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(resp.reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    let conn_values: Vec<&[u8]> = resp.connection_values().collect();
    for h in &resp.headers {
        if is_hop_by_hop(h.name, conn_values.iter().copied())
            || (dechunk && h.name.eq_ignore_ascii_case("transfer-encoding"))
        {
            continue;
        }
        push_header(out, h.name, h.value);
    }
    if add_header_applies(resp.status) {
        for (n, v) in add_header {
            push_header(out, n, v);
        }
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

pub fn push_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
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

    fn render(raw: &str, set: &[(String, Template)], conn: UpstreamConn, uri: &str) -> String {
        let req = request::parse(raw.as_bytes(), 64, 8192).unwrap().unwrap();
        let vars = VarCtx {
            req: &req,
            remote: "192.0.2.7:40000".parse().unwrap(),
            local: "127.0.0.1:80".parse().unwrap(),
            server_name: "",
            scheme: "http",
            proxy_host: "127.0.0.1:3000",
        };
        let mut out = Vec::new();
        request_head(&mut out, &req, uri, set, &vars, conn);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn upgrade_head_without_boilerplate() {
        let raw = "GET /ws/chat HTTP/1.1\r\nHost: ws.example.com\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\nSec-WebSocket-Key: k\r\nSec-WebSocket-Protocol: chat\r\n\r\n";
        let out = render(raw, &[], UpstreamConn::Upgrade, "/chat");
        assert_eq!(
            out,
            "GET /chat HTTP/1.1\r\nHost: 127.0.0.1:3000\r\nSec-WebSocket-Key: k\r\nSec-WebSocket-Protocol: chat\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n"
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

    #[test]
    fn uri_rewrite() {
        assert_eq!(
            upstream_uri("/ws/chat?room=1", Some("/ws/"), Some("/")),
            "/chat?room=1"
        );
        assert_eq!(upstream_uri("/ws/chat", Some("/ws/"), None), "/ws/chat");
        assert_eq!(
            upstream_uri("/ws/chat", Some("/ws/"), Some("/v2/")),
            "/v2/chat"
        );
        assert_eq!(upstream_uri("/ws?x=1", Some("/ws"), Some("/")), "/?x=1");
        assert_eq!(upstream_uri("/ws/a", Some("/ws"), Some("/b")), "/b/a");
        assert_eq!(upstream_uri("/health", Some("/health"), Some("/up")), "/up");
        assert_eq!(upstream_uri("/x.png", None, Some("/")), "/x.png");
    }

    #[test]
    fn response_heads() {
        let raw = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: abc\r\n\r\n";
        let r = response::parse(raw, 64, 4096).unwrap().unwrap();
        let mut out = Vec::new();
        response_head(&mut out, &r, false);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: abc\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n"
        );
        let raw = b"HTTP/1.1 403 Forbidden\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nContent-Length: 9\r\n\r\n";
        let r = response::parse(raw, 64, 4096).unwrap().unwrap();
        let mut out = Vec::new();
        response_head(&mut out, &r, false);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\nConnection: close\r\n\r\n"
        );
    }
}
