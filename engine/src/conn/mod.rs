//! One client connection as a state machine of named phases (the life of
//! a connection is written down in `LIFECYCLE.md` beside this file):
//!
//! ```text
//! ReadHead ─┬─> Route ─┬─> Return ─────┐   (Route may pass through Delay:
//!           │          │                   limit_req without nodelay)
//!           │          ├─> Static ─────┤
//!           │          ├─> Proxy ──────┤
//!           │          ├─> Upgrade ─┬──┤
//!           │          │            └─> Tunnel (a task of its own)
//!           │          └───────────────┤
//!           └──────────────────────────┴─> Finish ─┬─> ReadHead (keep-alive)
//!                                                  └─> Close
//! ```
//!
//! Each phase is a short method of [`Conn`] that returns the next phase;
//! the loop in [`serve`] checks every transition against that table. The
//! request head is parsed once (`ReadHead`) and the parsed request travels
//! through the phases. `Finish` is the one place that answers a failure
//! (from `error::Error`, which picks the status) and writes the access-log
//! line. Everything runs over a [`Transport`], so TLS and HTTP/2 streams
//! reuse the whole path.

mod answer;
mod error_page;
mod finish;
mod head;
mod proxy;
mod route;
mod tunnel;

pub use tunnel::adopt;

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use tracing::warn;

use crate::error::{Error, Kind};
use crate::http::request::Request;
use crate::proxy::upgrade::TunnelPlan;
use crate::route::ServerGroup;
use crate::shared::{BusyGuard, ConnGuard, Shared};
use crate::snapshot::Snapshot;
use crate::transport::Transport;
use crate::vars::Peer;

/// A client connection and what its phases share.
pub struct Conn<T: Transport> {
    shared: Rc<Shared>,
    snap: Rc<Snapshot>,
    /// The servers of the address this connection came in on.
    listen: Rc<ServerGroup>,
    io: T,
    /// `$remote_addr` of the current request (`[real_ip]`'s choice).
    peer: SocketAddr,
    /// The connection's peer and PROXY protocol source.
    addrs: Peer,
    local: SocketAddr,
    /// Bytes read and not yet part of a parsed request.
    buf: Vec<u8>,
    /// No request has been read yet on this connection.
    first: bool,
    /// Requests routed on this connection (`keepalive_requests`).
    served: u32,
    /// Held while a request is in flight (what a graceful stop waits for).
    busy: Option<BusyGuard>,
    guard: ConnGuard,
}

/// A request with its route: the server and location that answer it, by
/// index into the snapshot's configuration.
pub struct Routed {
    pub req: Request,
    pub server: usize,
    pub location: usize,
    pub keep_alive: bool,
    pub started: Instant,
    /// The `limit_conn` slot this request holds (a tunnel keeps it).
    pub permit: Option<crate::limit::ConnPermit>,
    /// The `Upgrade` value forwarded (`http::upgrade::select`: the
    /// protocols offered that the location allows); empty for a plain
    /// request, an upgrade request included whose protocols it refuses.
    pub upgrade: Vec<u8>,
    /// The URI a `rewrite` or a `try_files` fallback changed the request
    /// to (an internal redirect); `None`: the request's.
    pub uri: Option<crate::http::rewrite::InternalUri>,
    /// The request was redirected by `error_page`: no second one (nginx's
    /// `recursive_error_pages off`), and the method is read as GET.
    pub error_page: bool,
    /// `$1`..`$9` of the last regex that matched: the regex location's,
    /// or a `rewrite` line's (empty when none did).
    pub captures: Vec<Option<String>>,
    /// The variables `set` lines and named captures made.
    pub named: Vec<(String, String)>,
    /// A `rewrite ... break` chose this location: the new URI goes
    /// upstream whole (no `proxy_pass` URI part applied).
    pub broke: bool,
    /// The status its answer goes out with (`error_page` without `=`,
    /// or with `=CODE`); `None`: the answer's own.
    pub status: Option<u16>,
}

/// `$server_name`: the server's first name, or "" for a default server.
pub(super) fn first_name(server: &ringway_config::Server) -> String {
    match server.server_names.first() {
        Some(ringway_config::ServerName::Exact(n)) => n.clone(),
        _ => String::new(),
    }
}

/// How a request ended, for `Finish`.
pub struct Done {
    /// The server that routed the request (index into the snapshot's
    /// servers); none when no request was parsed.
    pub server: Option<usize>,
    /// The request, when one was parsed (for the access log).
    pub req: Option<Request>,
    pub started: Instant,
    pub status: u16,
    pub body_bytes: u64,
    /// What failed, when something did and was not answered yet.
    pub error: Option<Error>,
    pub next: Next,
    /// The upstream server that answered a proxied request (the access
    /// log's `$upstream_addr`, `$upstream_status`).
    pub upstream: Option<ringway_config::UpstreamAddr>,
    /// The location that routed the request (its `add_header ... always`
    /// fields go on an error answer); none before routing.
    pub location: Option<usize>,
    /// The request was already redirected by `error_page`.
    pub error_page: bool,
    /// The URI a rewrite or fallback changed the request to (the access
    /// log's `$uri`, `$args`).
    pub uri: Option<crate::vars::InternalUri>,
}

/// What the connection does after a request.
pub enum Next {
    /// Serve the next request; these bytes already belong to it.
    KeepAlive(Vec<u8>),
    Close,
}

pub enum Phase {
    ReadHead,
    Route(Request),
    /// `limit_req` without `nodelay`: wait, then the location's phase.
    Delay(Routed, std::time::Duration),
    Return(Routed),
    Static(Routed),
    Proxy(Routed),
    Upgrade(Routed),
    /// A `rewrite` line redirects: answer 301/302 with a `Location`.
    Redirect(Box<error_page::Redirect>),
    /// The upstream switched protocols: the tunnel takes the connection.
    Tunnel(Box<(TunnelPlan, Routed)>),
    Finish(Box<Done>),
    Close,
}

impl Phase {
    pub fn name(&self) -> &'static str {
        match self {
            Phase::ReadHead => "read-head",
            Phase::Route(_) => "route",
            Phase::Delay(..) => "delay",
            Phase::Return(_) => "return",
            Phase::Static(_) => "static",
            Phase::Proxy(_) => "proxy",
            Phase::Upgrade(_) => "upgrade",
            Phase::Redirect(_) => "redirect",
            Phase::Tunnel(_) => "tunnel",
            Phase::Finish(_) => "finish",
            Phase::Close => "close",
        }
    }
}

/// The transitions the state machine allows.
pub fn allowed(from: &str, to: &str) -> bool {
    matches!(
        (from, to),
        ("read-head", "route" | "finish" | "close")
            | (
                "route" | "delay",
                "return" | "static" | "proxy" | "upgrade" | "finish"
            )
            | ("route", "delay" | "redirect")
            | ("redirect", "finish")
            | ("return" | "static" | "proxy", "finish")
            // A `try_files` fallback to a location that is not static.
            | ("static", "return" | "proxy" | "upgrade")
            // `error_page` from a static answer or a bare `return CODE`.
            | ("static" | "return" | "proxy", "static" | "return")
            | ("upgrade", "tunnel" | "finish")
            | ("finish", "read-head" | "close")
            // `error_page`: the page's location, or its redirect answer.
            | ("finish", "static" | "return" | "finish")
    )
}

/// Serve one accepted connection until it closes (or becomes a tunnel).
pub async fn serve<T: Transport + 'static>(
    shared: Rc<Shared>,
    snap: Rc<Snapshot>,
    listen: Rc<ServerGroup>,
    io: T,
    addrs: Peer,
    local: SocketAddr,
    guard: ConnGuard,
) {
    serve_buffered(shared, snap, listen, io, addrs, local, guard, Vec::new()).await
}

/// [`serve`] with `early`, bytes already read from `io` (the start of the
/// first request: an h2c listener reads them to tell HTTP/2's preface
/// from HTTP/1.1).
#[allow(clippy::too_many_arguments)]
pub async fn serve_buffered<T: Transport + 'static>(
    shared: Rc<Shared>,
    snap: Rc<Snapshot>,
    listen: Rc<ServerGroup>,
    io: T,
    addrs: Peer,
    local: SocketAddr,
    guard: ConnGuard,
    early: Vec<u8>,
) {
    let peer = connection_remote(&snap.config.real_ip, addrs);
    let c = Conn {
        shared,
        snap,
        listen,
        io,
        peer,
        addrs,
        local,
        buf: early,
        first: true,
        served: 0,
        busy: None,
        guard,
    };
    run(c, Phase::ReadHead).await
}

/// Answer an HTTP/2 request that the request check refused (`status`,
/// `why`) the way any failed request is answered and logged
/// (`Conn::finish`): `head` is an HTTP/1.1 request head standing for it
/// in the access log (none when it does not parse).
#[allow(clippy::too_many_arguments)]
pub async fn serve_refused<T: Transport + 'static>(
    shared: Rc<Shared>,
    snap: Rc<Snapshot>,
    listen: Rc<ServerGroup>,
    io: T,
    addrs: Peer,
    local: SocketAddr,
    guard: ConnGuard,
    refusal: (u16, &'static str, Vec<u8>),
) {
    let (status, why, head) = refusal;
    let req = match crate::http::request::parse(head, 64, 64 * 1024) {
        Ok(crate::http::request::Parse::Complete(req)) => Some(req),
        _ => None,
    };
    let peer = connection_remote(&snap.config.real_ip, addrs);
    let c = Conn {
        shared,
        snap,
        listen,
        io,
        peer,
        addrs,
        local,
        buf: Vec::new(),
        first: true,
        served: 0,
        busy: None,
        guard,
    };
    let kind = Kind::Refused(status, why);
    let done = Done {
        server: None,
        req,
        started: std::time::Instant::now(),
        status,
        body_bytes: 0,
        error: Some(Error::new(kind)),
        next: Next::Close,
        upstream: None,
        location: None,
        error_page: false,
        uri: None,
    };
    run(c, Phase::Finish(Box::new(done))).await
}

/// The phase loop, from `phase`.
async fn run<T: Transport + 'static>(mut c: Conn<T>, mut phase: Phase) {
    loop {
        let from = phase.name();
        phase = match phase {
            Phase::ReadHead => c.read_head().await,
            Phase::Route(req) => c.route(req),
            Phase::Delay(r, d) => {
                monoio::time::sleep(d).await;
                c.after_limits(r)
            }
            Phase::Return(r) => c.answer_return(r).await,
            Phase::Static(r) => c.serve_static(r).await,
            Phase::Proxy(r) => c.proxy(r).await,
            Phase::Upgrade(r) => c.upgrade(r).await,
            Phase::Redirect(r) => {
                let r = *r;
                let page = error_page::Page::Redirect {
                    status: r.status,
                    url: r.url,
                    location: r.location,
                };
                c.follow_page(page, r.failed).await
            }
            Phase::Finish(done) => c.finish(*done).await,
            Phase::Tunnel(t) => {
                let (plan, routed) = *t;
                c.into_tunnel(plan, routed).await;
                return;
            }
            Phase::Close => return,
        };
        if !allowed(from, phase.name()) {
            warn!(
                from,
                to = phase.name(),
                "unexpected connection phase; closing"
            );
            debug_assert!(false, "{from} -> {}", phase.name());
            return;
        }
    }
}

/// `$remote_addr` for a connection: the PROXY protocol's source when
/// `[real_ip] header = "proxy_protocol"`, else the TCP peer (a request
/// header may still change it per request: [`Conn::request_remote`]).
fn connection_remote(real_ip: &ringway_config::RealIp, addrs: Peer) -> SocketAddr {
    match (&real_ip.header, addrs.proxy_protocol) {
        (Some(ringway_config::RealIpHeader::ProxyProtocol), Some(source)) => source,
        _ => addrs.tcp,
    }
}

impl<T: Transport> Conn<T> {
    /// `$remote_addr` for `req`: with `[real_ip] header = "X-Forwarded-For"`
    /// (or another field) from a trusted peer, the address the field
    /// names (nginx's realip module); the connection's otherwise.
    fn request_remote(&self, req: &Request) -> SocketAddr {
        let real_ip = &self.snap.config.real_ip;
        let base = connection_remote(real_ip, self.addrs);
        let Some(ringway_config::RealIpHeader::Field(name)) = &real_ip.header else {
            return base;
        };
        // X-Forwarded-For fields form one list; any other field (X-Real-IP)
        // is read from its first occurrence only, as nginx reads it.
        let values: Vec<&[u8]> = if name == "x-forwarded-for" {
            req.headers_named(name).collect()
        } else {
            req.headers_named(name).take(1).collect()
        };
        if values.is_empty() {
            return base;
        }
        let ip = crate::real_ip::forwarded_addr(
            base.ip(),
            &values,
            &real_ip.set_real_ip_from,
            real_ip.recursive,
        );
        SocketAddr::new(ip, base.port())
    }

    /// Start a request: it counts as busy until `Finish` (or its tunnel
    /// ends).
    fn begin(&mut self) {
        self.busy = Some(self.shared.busy());
    }
}

#[cfg(test)]
mod tests {
    use super::allowed;

    #[test]
    fn transitions_follow_the_table() {
        assert!(allowed("read-head", "route"));
        assert!(allowed("upgrade", "tunnel"));
        assert!(allowed("finish", "read-head"));
        assert!(
            !allowed("proxy", "tunnel"),
            "only an upgrade becomes a tunnel"
        );
        assert!(
            !allowed("route", "read-head"),
            "a routed request ends in finish"
        );
        assert!(!allowed("read-head", "proxy"));
        assert!(!allowed("close", "read-head"));
    }
}
