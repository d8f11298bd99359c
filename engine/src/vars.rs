//! `$variables` in `proxy_set_header`, `return` and friends, rendered for
//! one request. Templates are parsed once at config load (ringway-config);
//! rendering is a walk over their parts writing into a byte buffer.
//!
//! Names and meanings follow nginx's (ngx_http_core_module variables):
//! `$uri` is the normalised path (percent-decoded, dot segments resolved,
//! slashes merged), `$request_uri` the target as received.
//!
//! Every variable renders without control characters, because templates
//! become header values: `$uri` is the one value decoded from the client's
//! bytes, so its control characters (a `%0D%0A` in the path) are written
//! percent-escaped again. (nginx writes them raw, which turns
//! `proxy_set_header X-Uri $uri` into a header injection.)

use std::io::Write;
use std::net::SocketAddr;

use ringway_config::{Part, Template, Var};

use crate::http::request::Request;
use crate::transport::TlsInfo;

/// Who is at the other end of a client connection, before `[real_ip]`
/// picks `$remote_addr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// The TCP peer (`$realip_remote_addr`): a balancer, when there is one.
    pub tcp: SocketAddr,
    /// The source a PROXY protocol header named (`$proxy_protocol_addr`).
    pub proxy_protocol: Option<SocketAddr>,
}

impl Peer {
    /// A connection with no PROXY protocol header.
    pub fn direct(tcp: SocketAddr) -> Peer {
        Peer {
            tcp,
            proxy_protocol: None,
        }
    }
}

/// Everything a variable can be computed from.
pub struct VarCtx<'a> {
    pub req: &'a Request,
    /// `$remote_addr`: the client, as `[real_ip]` decided.
    pub remote: SocketAddr,
    pub peer: Peer,
    pub local: SocketAddr,
    /// The matched server's first name, or "" for a default server.
    pub server_name: &'a str,
    /// The client connection's TLS, when it has one (`$scheme` https).
    pub tls: Option<&'a TlsInfo>,
    /// `$proxy_host`: the upstream's host[:port] ("" when not proxying).
    pub proxy_host: &'a str,
    /// `$1`..`$9`: the captures of the last regex that matched (the
    /// location's or a `rewrite`'s; index 0 the whole match), decoded
    /// path text.
    pub captures: &'a [Option<String>],
    /// The URI a `rewrite` or a `try_files` fallback changed the request
    /// to (`$uri`, `$args`); `None`: the request's.
    pub uri: Option<&'a InternalUri>,
    /// The variables `set` lines and named captures made, by name.
    pub named: &'a [(String, String)],
}

/// The URI a `rewrite` or a `try_files` fallback changed a request to
/// (nginx's internal redirect): its normalised path, and its own query
/// when one was made (else the request's stays).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalUri {
    pub path: String,
    pub args: Option<String>,
}

impl<'a> VarCtx<'a> {
    /// `$scheme`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    pub fn render(&self, t: &Template, out: &mut Vec<u8>) {
        for part in &t.parts {
            match part {
                Part::Literal(s) => out.extend_from_slice(s.as_bytes()),
                Part::Var(v) => self.var(v, out),
            }
        }
    }

    /// `$uri`: the normalised path, as a rewrite changed it.
    pub fn path(&self) -> &'a str {
        match self.uri {
            Some(u) => &u.path,
            None => self.req.norm_path(),
        }
    }

    /// `$args`: the query, as a rewrite changed it.
    pub fn args(&self) -> Option<&'a str> {
        match self.uri {
            Some(InternalUri { args: Some(a), .. }) => Some(a),
            _ => self.req.query(),
        }
    }

    pub fn render_to_vec(&self, t: &Template) -> Vec<u8> {
        let mut v = Vec::new();
        self.render(t, &mut v);
        v
    }

    /// Render with `$uri` standing for `uri` (static files: the URI of an
    /// internal redirect).
    pub fn render_with_uri(&self, t: &Template, uri: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for part in &t.parts {
            match part {
                Part::Literal(s) => out.extend_from_slice(s.as_bytes()),
                Part::Var(Var::Uri) => out.extend_from_slice(uri.as_bytes()),
                Part::Var(v) => self.var(v, &mut out),
            }
        }
        out
    }

    fn var(&self, v: &Var, out: &mut Vec<u8>) {
        let req = self.req;
        match v {
            Var::Host => match req.host() {
                Some(h) => out.extend_from_slice(h.as_bytes()),
                None if !self.server_name.is_empty() => {
                    out.extend_from_slice(self.server_name.as_bytes())
                }
                None => write_ip(out, self.local),
            },
            Var::RemoteAddr => write_ip(out, self.remote),
            Var::BinaryRemoteAddr => match self.remote.ip() {
                std::net::IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
                std::net::IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
            },
            Var::ProxyProtocolAddr => {
                if let Some(a) = self.peer.proxy_protocol {
                    write_ip(out, a);
                }
            }
            Var::RealIpRemoteAddr => write_ip(out, self.peer.tcp),
            Var::RemotePort => {
                let _ = write!(out, "{}", self.remote.port());
            }
            Var::ServerAddr => write_ip(out, self.local),
            Var::ServerPort => {
                let _ = write!(out, "{}", self.local.port());
            }
            Var::ServerName => out.extend_from_slice(self.server_name.as_bytes()),
            Var::Scheme => out.extend_from_slice(self.scheme().as_bytes()),
            Var::Https => {
                if self.tls.is_some() {
                    out.extend_from_slice(b"on");
                }
            }
            Var::SslProtocol => {
                if let Some(t) = self.tls {
                    out.extend_from_slice(t.protocol.as_bytes());
                }
            }
            Var::SslServerName => {
                if let Some(name) = self.tls.and_then(|t| t.server_name.as_deref()) {
                    out.extend_from_slice(name.as_bytes());
                }
            }
            Var::RequestUri => out.extend_from_slice(req.origin_target().as_bytes()),
            Var::Uri => push_escaping_controls(out, self.path().as_bytes()),
            Var::Args => push_escaping_controls(out, self.args().unwrap_or("").as_bytes()),
            Var::IsArgs => {
                if self.args().is_some_and(|q| !q.is_empty()) {
                    out.push(b'?');
                }
            }
            // From the normalised (decoded) path: control characters are
            // written escaped again, as `$uri`'s.
            Var::Capture(n) => {
                if let Some(Some(c)) = self.captures.get(*n as usize) {
                    push_escaping_controls(out, c.as_bytes());
                }
            }
            Var::RequestMethod => out.extend_from_slice(req.method().as_bytes()),
            Var::ProxyHost => out.extend_from_slice(self.proxy_host.as_bytes()),
            Var::ProxyAddXForwardedFor => {
                let mut any = false;
                for v in req.headers_named("x-forwarded-for") {
                    if any {
                        out.extend_from_slice(b", ");
                    }
                    out.extend_from_slice(v);
                    any = true;
                }
                if any {
                    out.extend_from_slice(b", ");
                }
                write_ip(out, self.remote);
            }
            Var::ConnectionUpgrade => out.extend_from_slice(if req.is_upgrade() {
                b"upgrade"
            } else {
                b"close"
            }),
            Var::Http(name) => {
                // nginx joins repeated fields with ", " (cookies with "; ").
                let sep: &[u8] = if name == "cookie" { b"; " } else { b", " };
                for (i, v) in req.headers_named(name).enumerate() {
                    if i > 0 {
                        out.extend_from_slice(sep);
                    }
                    out.extend_from_slice(v);
                }
            }
            Var::Cookie(name) => {
                if let Some(v) = cookie(req, name) {
                    out.extend_from_slice(v);
                }
            }
            Var::Arg(name) => {
                if let Some(v) = arg(self.args().unwrap_or(""), name) {
                    push_escaping_controls(out, v.as_bytes());
                }
            }
            Var::Named(name) => {
                if let Some((_, v)) = self.named.iter().rev().find(|(n, _)| n == name) {
                    push_escaping_controls(out, v.as_bytes());
                }
            }
        }
    }
}

/// Append `v` with control bytes (and DEL) written as `%XX`.
fn push_escaping_controls(out: &mut Vec<u8>, v: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in v {
        if b < 0x20 || b == 0x7f {
            out.extend_from_slice(&[b'%', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
        } else {
            out.push(b);
        }
    }
}

fn write_ip(out: &mut Vec<u8>, addr: SocketAddr) {
    let _ = write!(out, "{}", addr.ip());
}

/// The value of cookie `name` from the request's Cookie fields.
pub fn cookie<'r>(req: &'r Request, name: &str) -> Option<&'r [u8]> {
    for v in req.headers_named("cookie") {
        for pair in v.split(|&b| b == b';') {
            let pair = crate::http::trim(pair);
            if let Some(eq) = pair.iter().position(|&b| b == b'=') {
                if &pair[..eq] == name.as_bytes() {
                    return Some(&pair[eq + 1..]);
                }
            }
        }
    }
    None
}

/// The raw value of query argument `name` (case-insensitive name, as nginx).
pub fn arg<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        k.eq_ignore_ascii_case(name).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::request;

    fn t(parts: Vec<Part>) -> Template {
        Template { parts }
    }

    fn ctx_render(raw: &str, tpl: &Template) -> String {
        let req = request::parse_bytes(raw.as_bytes(), 64, 8192)
            .unwrap()
            .unwrap();
        let ctx = VarCtx {
            req: &req,
            remote: "10.1.2.3:5555".parse().unwrap(),
            peer: Peer::direct("10.1.2.3:5555".parse().unwrap()),
            local: "127.0.0.1:8080".parse().unwrap(),
            server_name: "ws.example.com",
            tls: None,
            proxy_host: "127.0.0.1:3000",
            captures: &[],
            uri: None,
            named: &[],
        };
        String::from_utf8(ctx.render_to_vec(tpl)).unwrap()
    }

    /// `$uri` is decoded, so it is the one variable that could carry a CR
    /// or LF into a header value: they come out escaped.
    #[test]
    fn uri_never_renders_control_characters() {
        let tpl = t(vec![Part::Var(Var::Uri)]);
        assert_eq!(
            ctx_render(
                "GET /a%0D%0AX-Evil:%201%00%7F%20b HTTP/1.1\r\nHost: a\r\n\r\n"
                    .replace("%00", "")
                    .as_str(),
                &tpl
            ),
            "/a%0D%0AX-Evil: 1%7F b"
        );
    }

    #[test]
    fn forwarded_for_appends() {
        let tpl = t(vec![Part::Var(Var::ProxyAddXForwardedFor)]);
        assert_eq!(
            ctx_render("GET / HTTP/1.1\r\nHost: a\r\n\r\n", &tpl),
            "10.1.2.3"
        );
        assert_eq!(
            ctx_render("GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 2.2.2.2\r\n\r\n", &tpl),
            "1.1.1.1, 2.2.2.2, 10.1.2.3"
        );
    }

    #[test]
    fn request_variables() {
        let raw = "GET /ws/chat?room=7&x=1 HTTP/1.1\r\nHost: WS.example.com:81\r\nCookie: a=1; session=abc\r\nX-Token: t\r\n\r\n";
        let tpl = t(vec![
            Part::Var(Var::Host),
            Part::Literal("|".into()),
            Part::Var(Var::RequestUri),
            Part::Literal("|".into()),
            Part::Var(Var::Uri),
            Part::Literal("|".into()),
            Part::Var(Var::Args),
            Part::Literal("|".into()),
            Part::Var(Var::Cookie("session".into())),
            Part::Literal("|".into()),
            Part::Var(Var::Arg("room".into())),
            Part::Literal("|".into()),
            Part::Var(Var::Http("x-token".into())),
            Part::Literal("|".into()),
            Part::Var(Var::RemotePort),
            Part::Literal("|".into()),
            Part::Var(Var::ServerPort),
            Part::Literal("|".into()),
            Part::Var(Var::ConnectionUpgrade),
        ]);
        assert_eq!(
            ctx_render(raw, &tpl),
            "ws.example.com|/ws/chat?room=7&x=1|/ws/chat|room=7&x=1|abc|7|t|5555|8080|close"
        );
    }

    #[test]
    fn host_falls_back_to_server_name() {
        let tpl = t(vec![Part::Var(Var::Host)]);
        assert_eq!(ctx_render("GET / HTTP/1.0\r\n\r\n", &tpl), "ws.example.com");
    }
}
