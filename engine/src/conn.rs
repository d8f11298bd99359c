//! One client connection: read a request head, route it, answer it, and
//! loop while keep-alive allows; an upgrade hands the connection to the
//! tunnel for the rest of its life.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use monoio::net::TcpStream;
use ringway_config::{Action, Balance, ProxyTarget, Server};
use tracing::{debug, info, warn};

use crate::access_log::Entry as AccessEntry;
use crate::http::request;
use crate::http::rewrite::{self, UpstreamConn};
use crate::http::{reply, BodyKind, HeadError};
use crate::proxy::upgrade::{Outcome, TunnelPlan};
use crate::proxy::{self, tunnel, OwnedKey, ProxyError, Target};
use crate::route::{self, ServerGroup};
use crate::runtime::worker::{BusyGuard, ConnGuard, Snapshot, Worker};
use crate::static_files;
use crate::sys;
use crate::vars::VarCtx;

enum HeadRead {
    /// A complete head is at the start of the buffer.
    Ready,
    /// The client closed (or reset) with no partial request pending.
    Closed,
    /// The client closed mid-head.
    Truncated,
    Timeout,
    Bad(HeadError),
}

/// Serve one accepted connection until it closes.
pub async fn serve(
    worker: Rc<Worker>,
    snap: Rc<Snapshot>,
    group: Rc<ServerGroup>,
    stream: TcpStream,
    peer: SocketAddr,
    guard: ConnGuard,
) {
    if let Err(e) = sys::set_nonblocking(stream.as_raw_fd()) {
        warn!(client = %peer, error = %e, "cannot set non-blocking");
        return;
    }
    let _ = stream.set_nodelay(true);
    let local = stream
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let config = &snap.config;
    // Head limits come from the address's default server, as in nginx
    // (the Host is not known before the head is read).
    let default = group.select(config, None);
    let mut buf: Vec<u8> = Vec::new();
    let mut first = true;
    loop {
        let wait = if first || !buf.is_empty() {
            default.client_header_timeout
        } else {
            default.keepalive_timeout
        };
        match read_head(&stream, &mut buf, default, wait).await {
            HeadRead::Ready => {}
            HeadRead::Closed => return,
            HeadRead::Truncated => {
                debug!(client = %peer, "client closed mid-request");
                return;
            }
            HeadRead::Timeout => {
                if !buf.is_empty() || first {
                    info!(client = %peer, "request head timed out (408)");
                    answer_error(&stream, 408, default.send_timeout).await;
                }
                return;
            }
            HeadRead::Bad(e) => {
                info!(client = %peer, status = e.status(), reason = e.reason(), "bad request");
                answer_error(&stream, e.status(), default.send_timeout).await;
                return;
            }
        }
        first = false;
        let busy = worker.busy();
        let started = Instant::now();
        let (next, logged) = handle(&worker, &snap, &group, &stream, peer, local, &mut buf).await;
        if let Next::Tunnel(plan) = next {
            let t = Tunnel {
                worker: worker.clone(),
                client: stream,
                peer,
                plan,
                logged,
                started,
                _busy: busy,
                _guard: guard,
            };
            let task = t.run();
            tracing::trace!(bytes = std::mem::size_of_val(&task), "tunnel task size");
            monoio::spawn(task);
            return;
        }
        drop(busy);
        if let Some(l) = logged {
            worker.access.log(&AccessEntry {
                remote: peer.ip(),
                method: &l.method,
                target: &l.target,
                minor_version: l.minor_version,
                status: l.status,
                body_bytes: l.body_bytes,
                referer: l.referer.as_deref(),
                user_agent: l.user_agent.as_deref(),
                duration: started.elapsed(),
            });
        }
        match next {
            Next::KeepAlive(rest) => buf = rest,
            Next::Close | Next::Tunnel(_) => return,
        }
        if worker.shutting_down.is_raised() && buf.is_empty() {
            return;
        }
    }
}

/// An upgraded connection in a task of its own: only what the relay needs
/// stays alive for the tunnel's lifetime.
struct Tunnel {
    worker: Rc<Worker>,
    client: TcpStream,
    peer: SocketAddr,
    plan: TunnelPlan,
    logged: Option<Logged>,
    started: Instant,
    _busy: BusyGuard,
    _guard: ConnGuard,
}

impl Tunnel {
    async fn run(mut self) {
        let up = &self.plan.upstream;
        // Bytes the client sent behind its upgrade request go first.
        let early = std::mem::take(&mut self.plan.early);
        let early_len = early.len() as u64;
        let sent = if early.is_empty() {
            Ok(())
        } else {
            sys::write_all(&up.stream, &early, self.plan.send_timeout).await
        };
        drop(early);
        let stats = match sent {
            Ok(()) => {
                let mut s = tunnel::run(
                    &self.worker,
                    &self.client,
                    &up.stream,
                    self.plan.idle_timeout,
                    self.plan.send_timeout,
                )
                .await;
                s.client_to_upstream += early_len;
                s
            }
            Err(_) => tunnel::Stats {
                end: tunnel::End::Error,
                client_to_upstream: 0,
                upstream_to_client: 0,
            },
        };
        debug!(
            client = %self.peer,
            upstream = %up.addr,
            end = ?stats.end,
            up_bytes = stats.client_to_upstream,
            down_bytes = stats.upstream_to_client,
            secs = self.started.elapsed().as_secs_f64(),
            "tunnel closed"
        );
        if let Some(l) = &self.logged {
            self.worker.access.log(&AccessEntry {
                remote: self.peer.ip(),
                method: &l.method,
                target: &l.target,
                minor_version: l.minor_version,
                status: 101,
                body_bytes: stats.upstream_to_client,
                referer: l.referer.as_deref(),
                user_agent: l.user_agent.as_deref(),
                duration: self.started.elapsed(),
            });
        }
    }
}

/// What the access log needs of a request once its buffer is gone.
struct Logged {
    method: String,
    target: String,
    minor_version: u8,
    referer: Option<Vec<u8>>,
    user_agent: Option<Vec<u8>>,
    status: u16,
    body_bytes: u64,
}

enum Next {
    /// Serve the next request; these bytes already belong to it.
    KeepAlive(Vec<u8>),
    Close,
    /// The connection is upgraded: run the tunnel.
    Tunnel(TunnelPlan),
}

async fn handle(
    worker: &Rc<Worker>,
    snap: &Snapshot,
    group: &ServerGroup,
    stream: &TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    buf: &mut Vec<u8>,
) -> (Next, Option<Logged>) {
    let config = &snap.config;
    let default = group.select(config, None);
    let req = match request::parse(buf, default.max_headers, default.client_header_buffer_size) {
        Ok(Some(r)) => r,
        // read_head already parsed this successfully.
        _ => return (Next::Close, None),
    };
    let host = req.host();
    let server = group.select(config, host.as_deref());
    let keep_alive = req.wants_keep_alive() && !worker.shutting_down.is_raised();
    let body = req.body;
    let head_len = req.head_len;
    let head_only = req.method == "HEAD";
    let mut logged = worker.access.enabled().then(|| Logged {
        method: req.method.to_string(),
        target: req.target.to_string(),
        minor_version: req.minor_version,
        referer: req.header("referer").map(<[u8]>::to_vec),
        user_agent: req.header("user-agent").map(<[u8]>::to_vec),
        status: 0,
        body_bytes: 0,
    });
    // A request body ringway does not read means the connection cannot be
    // reused for another request.
    let reply_ka = keep_alive && body.is_empty();
    let (status, bytes, next) = 'done: {
        let Some(m) = route::find_location(server, &req.norm_path) else {
            debug!(client = %peer, uri = req.target, "no location (404)");
            let rest = buf[head_len..].to_vec();
            let body = b"404 Not Found\n";
            let next = write_reply(
                stream,
                server.send_timeout,
                404,
                &[],
                body,
                head_only,
                reply_ka,
                rest,
            )
            .await;
            break 'done (404, body.len() as u64, next);
        };
        let loc = m.location;
        let server_name = first_name(server);
        let vars = VarCtx {
            req: &req,
            remote: peer,
            local,
            server_name: &server_name,
            scheme: "http",
            proxy_host: "",
        };
        let pp = match &loc.action {
            Action::Proxy(pp) => pp,
            Action::Return {
                status,
                body: tbody,
                location,
            } => {
                let text = tbody
                    .as_ref()
                    .map(|t| vars.render_to_vec(t))
                    .unwrap_or_default();
                let mut headers: Vec<(String, Vec<u8>)> = Vec::new();
                if let Some(t) = location {
                    headers.push(("Location".to_string(), vars.render_to_vec(t)));
                }
                if rewrite::add_header_applies(*status) {
                    for (n, t) in &loc.add_header {
                        headers.push((n.clone(), vars.render_to_vec(t)));
                    }
                }
                let extra: Vec<(&str, &[u8])> = headers
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.as_slice()))
                    .collect();
                let rest = buf[head_len..].to_vec();
                let next = write_reply(
                    stream,
                    server.send_timeout,
                    *status,
                    &extra,
                    &text,
                    head_only,
                    reply_ka,
                    rest,
                )
                .await;
                break 'done (*status, text.len() as u64, next);
            }
            Action::Static(_) => {
                let r = static_files::StaticRequest {
                    stream,
                    server,
                    vars: &vars,
                    method: req.method,
                    keep_alive: reply_ka,
                };
                let s = static_files::serve(&r, loc, m.prefix).await;
                let next = if s.reusable {
                    Next::KeepAlive(buf[head_len..].to_vec())
                } else {
                    Next::Close
                };
                break 'done (s.status, s.body_bytes, next);
            }
        };

        let (proxy_host, addrs) = match &pp.target {
            ProxyTarget::Address { host, addrs } => (host.as_str(), Some(addrs)),
            // nginx: $proxy_host of an upstream group is its name.
            ProxyTarget::Upstream(name) => (name.as_str(), None),
        };
        let uri = rewrite::upstream_uri(&req, m.prefix, pp.uri.as_deref());
        let vars = VarCtx { proxy_host, ..vars };
        let target = match addrs {
            Some(addrs) => Target::Addrs(addrs.clone()),
            None => {
                let Some(group) = snap.upstreams.get(proxy_host) else {
                    // Validation guarantees the name exists.
                    break 'done (502, 0, Next::Close);
                };
                let key = match group.balance {
                    Balance::IpHash => OwnedKey::Ip(peer.ip()),
                    Balance::Hash => config.upstreams[proxy_host]
                        .hash_key
                        .as_ref()
                        .map_or(OwnedKey::None, |t| OwnedKey::Hash(vars.render_to_vec(t))),
                    _ => OwnedKey::None,
                };
                Target::Group {
                    group: group.clone(),
                    key,
                }
            }
        };
        let upgrade = req.is_upgrade();
        if upgrade && !body.is_empty() {
            // A WebSocket handshake has no body; one that declares a body
            // leaves no single reading of where the switched protocol
            // starts.
            info!(client = %peer, uri = req.target, "upgrade request with a body (400)");
            answer_error(stream, 400, server.send_timeout).await;
            break 'done (400, 0, Next::Close);
        }
        let mut head = Vec::with_capacity(head_len + 256);
        let pooled = matches!(&target, Target::Group { group, .. } if group.pool.enabled());
        let conn = if upgrade {
            UpstreamConn::Upgrade
        } else if pooled {
            UpstreamConn::KeepAlive
        } else {
            UpstreamConn::Close
        };
        rewrite::request_head(
            &mut head,
            &req,
            &uri,
            &loc.proxy_set_header,
            &vars,
            conn,
            server.underscores_in_headers,
        );
        let log_uri = req.target.to_string();
        let idempotent = proxy::idempotent(req.method);
        if upgrade {
            // Bytes the client sent behind the head wait for the 101.
            let early = buf[head_len..].to_vec();
            drop(req);
            *buf = Vec::new();
            let u = proxy::upgrade::Upgrade {
                worker,
                location: loc,
                client: stream,
                peer,
                head,
                idempotent,
                early,
                target,
                uri: log_uri.clone(),
                max_head: server.client_header_buffer_size,
                max_headers: server.max_headers,
            };
            break 'done match proxy::upgrade::run(u).await {
                Ok(Outcome::Tunnel(plan)) => (101, 0, Next::Tunnel(plan)),
                Ok(Outcome::Refused { status, body_bytes }) => (status, body_bytes, Next::Close),
                Err(e) => (
                    proxy_failed(stream, peer, &log_uri, &e, server.send_timeout).await,
                    0,
                    Next::Close,
                ),
            };
        }
        if let BodyKind::Length(n) = body {
            if loc.client_max_body_size > 0 && n > loc.client_max_body_size {
                info!(client = %peer, length = n, limit = loc.client_max_body_size, "request body too large (413)");
                answer_error(stream, 413, server.send_timeout).await;
                break 'done (413, 0, Next::Close);
            }
        }
        let x = proxy::http::Exchange {
            worker,
            location: loc,
            client: stream,
            peer,
            head,
            method_is_head: head_only,
            idempotent,
            body,
            early: buf[head_len..].to_vec(),
            expect_continue: req
                .header("expect")
                .is_some_and(|v| v.eq_ignore_ascii_case(b"100-continue")),
            target,
            client_keep_alive: keep_alive,
            client_http10: req.minor_version == 0,
            client_body_timeout: server.client_header_timeout,
            max_head: server.client_header_buffer_size,
            max_headers: server.max_headers,
            add_header: loc
                .add_header
                .iter()
                .map(|(n, t)| (n.clone(), vars.render_to_vec(t)))
                .collect(),
        };
        drop(req);
        *buf = Vec::new();
        match proxy::http::run(x).await {
            Ok(o) if o.keep_alive => (o.status, o.body_bytes, Next::KeepAlive(o.leftover)),
            Ok(o) => (o.status, o.body_bytes, Next::Close),
            Err(e) => (
                proxy_failed(stream, peer, &log_uri, &e, server.send_timeout).await,
                0,
                Next::Close,
            ),
        }
    };
    if let Some(l) = logged.as_mut() {
        l.status = status;
        l.body_bytes = bytes;
    }
    (next, logged)
}

/// The error answer for a failed proxy exchange, when one can still be sent.
/// Returns the status for the access log (499, nginx's "client closed",
/// when the client went away).
async fn proxy_failed(
    stream: &TcpStream,
    peer: SocketAddr,
    uri: &str,
    e: &ProxyError,
    send_timeout: Duration,
) -> u16 {
    match e {
        ProxyError::Client(err) => {
            debug!(client = %peer, uri, error = %err, "client went away");
            499
        }
        _ => {
            warn!(client = %peer, uri, status = e.status(), error = %e, "proxy error");
            answer_error(stream, e.status(), send_timeout).await;
            e.status()
        }
    }
}

fn first_name(server: &Server) -> String {
    match server.server_names.first() {
        Some(ringway_config::ServerName::Exact(n)) => n.clone(),
        _ => String::new(),
    }
}

/// Read until a complete request head is at the start of `buf`.
/// `first_wait` bounds the wait for the first byte (keep-alive idle or the
/// header timeout); once bytes arrive the whole head must follow within
/// `client_header_timeout`.
async fn read_head(
    stream: &TcpStream,
    buf: &mut Vec<u8>,
    server: &Server,
    first_wait: Duration,
) -> HeadRead {
    let max = server.client_header_buffer_size;
    let mut deadline = Instant::now() + first_wait;
    loop {
        if !buf.is_empty() {
            match request::parse(buf, server.max_headers, max) {
                Ok(Some(_)) => return HeadRead::Ready,
                Ok(None) => {}
                Err(e) => return HeadRead::Bad(e),
            }
        }
        let was_empty = buf.is_empty();
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return HeadRead::Timeout;
        }
        match monoio::time::timeout(left, sys::read_append(stream, buf, max)).await {
            Err(_) => return HeadRead::Timeout,
            Ok(Err(_)) | Ok(Ok(0)) => {
                return if buf.is_empty() {
                    HeadRead::Closed
                } else {
                    HeadRead::Truncated
                }
            }
            Ok(Ok(_)) => {
                if was_empty {
                    deadline = Instant::now() + server.client_header_timeout;
                }
            }
        }
    }
}

/// Write a complete response; keep the connection (with `rest`, the bytes
/// already read past this request) when asked and the write succeeded.
#[allow(clippy::too_many_arguments)]
async fn write_reply(
    stream: &TcpStream,
    send_timeout: Duration,
    status: u16,
    extra: &[(&str, &[u8])],
    body: &[u8],
    head_only: bool,
    keep_alive: bool,
    rest: Vec<u8>,
) -> Next {
    let mut out = Vec::with_capacity(160 + body.len());
    reply::full(
        &mut out,
        status,
        extra,
        "text/plain",
        body,
        head_only,
        keep_alive,
    );
    let ok = sys::write_all(stream, &out, send_timeout).await.is_ok();
    if ok && keep_alive {
        Next::KeepAlive(rest)
    } else {
        Next::Close
    }
}

async fn answer_error(stream: &TcpStream, status: u16, send_timeout: Duration) {
    let mut out = Vec::with_capacity(160);
    reply::error(&mut out, status);
    let _ = sys::write_all(stream, &out, send_timeout).await;
}
