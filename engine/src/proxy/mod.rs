//! Proxying: choose and connect the upstream, then either relay one plain
//! HTTP exchange (`http`) or an upgrade and its tunnel (`upgrade`,
//! `tunnel`). Failures are `error::Error`s that know their side; the
//! status ringway answers comes from there.
//!
//! Retries follow nginx's `proxy_next_upstream error timeout`: a failed
//! connect, or an upstream that closes or times out before sending any byte
//! of a response head, is retried on the next server of the group — only
//! while nothing has been relayed to the client and no request body has
//! been sent, and, once a request has been sent, only for an idempotent
//! method (nginx does not pass POST, LOCK or PATCH to a next server). A
//! reused (pooled) connection that the upstream had closed is retried on
//! a new one to the same server. When every try failed the last failure
//! answers: a timeout is 504.
//!
//! An upstream connection goes back to the keep-alive pool only after an
//! exchange that ended cleanly: never after a 101, an interim 1xx, a
//! response that did not end exactly where its framing said, or a request
//! body the upstream answered before it could have read it all.
//!
//! The proxy works with the per-core [`kit::Kit`] (buffers, pipes, idle
//! sweep), never with the worker.

pub mod body;
pub mod connect;
pub mod frames;
pub mod http;
pub mod idle;
pub mod kit;
pub mod pool;
pub mod stream;
pub mod tunnel;
pub mod upgrade;

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use std::sync::Arc;

use ringway_config::{Location, NextUpstream, UpstreamAddr};
use tracing::warn;

use crate::error::{Error, Kind, Retry};
use crate::http::response::{self, Response};
use crate::http::rewrite::{Added, Relay};
use crate::tls::Connector;
use crate::transport::{Pending, Transport};
use crate::upstream::{Group, Key};
use kit::Kit;
pub use stream::UpStream;

/// Where a request goes.
pub enum Target {
    /// `proxy_pass` to an address: its resolved addresses, tried in order.
    Addrs(Vec<UpstreamAddr>),
    /// `proxy_pass` to an upstream group, with the request's balancing key.
    Group { group: Rc<Group>, key: OwnedKey },
}

/// A balancing key that outlives the request buffer.
pub enum OwnedKey {
    None,
    Ip(std::net::IpAddr),
    Hash(Vec<u8>),
}

impl Target {
    /// The request's balancing key as a tunnel keeps it, for a group
    /// that rebalances (`rebalance` with `hash` or `ip_hash`).
    pub fn tunnel_key(&self) -> Option<crate::upstream::TunnelKey> {
        match self {
            Target::Group { group, key } if group.rebalance.is_some() => key.as_key().tunnel_key(),
            _ => None,
        }
    }
}

impl OwnedKey {
    fn as_key(&self) -> Key<'_> {
        match self {
            OwnedKey::None => Key::None,
            OwnedKey::Ip(ip) => Key::Ip(*ip),
            OwnedKey::Hash(v) => Key::Hash(v),
        }
    }
}

/// What the proxy phases of one request share: the upstream exchange
/// around the rewritten head.
pub struct Exchange<'a, C: Transport> {
    pub kit: &'a Kit,
    pub location: &'a Location,
    pub client: &'a C,
    pub peer: SocketAddr,
    /// The rewritten request head.
    pub head: Vec<u8>,
    pub target: Target,
    /// TLS to the upstream (`proxy_pass https://`).
    pub tls: Option<Arc<Connector>>,
    /// The method may be passed to the next server after it was sent.
    pub idempotent: bool,
    /// Bytes the client sent after its head.
    pub early: &'a [u8],
    pub limits: HeadLimits,
    /// The location's `add_header` and `expires` fields, rendered for
    /// this request.
    pub added: Vec<Added>,
    /// The server's `server_tokens`.
    pub server_tokens: bool,
}

impl<C: Transport> Exchange<'_, C> {
    /// What the location does to the response head relayed to the client.
    pub fn relay(&self) -> Relay<'_> {
        Relay {
            added: &self.added,
            replace: if self.location.expires.is_some() {
                crate::http::rewrite::EXPIRES_FIELDS
            } else {
                &[]
            },
            hide: &self.location.proxy_hide,
            server_tokens: self.server_tokens,
            redirect: &self.location.proxy_redirect,
            gzip: None,
        }
    }

    /// Connect, send the head, read the response head, retrying as
    /// nginx does, and give up when the client leaves.
    async fn exchange_head(&self) -> Result<Answered, Error> {
        self.exchange_head_with(&self.head).await
    }

    /// [`Self::exchange_head`] sending `bytes` (the head, or the head and
    /// a buffered body).
    async fn exchange_head_with(&self, bytes: &[u8]) -> Result<Answered, Error> {
        let loc = self.location;
        monoio::select! {
            biased;
            r = exchange_head(
                &self.target,
                self.tls.as_ref(),
                bytes,
                self.idempotent,
                &loc.next_upstream,
                loc.proxy_connect_timeout,
                loc.proxy_send_timeout,
                self.limits,
            ) => r,
            _ = client_gone(self.client) => Err(Error::new(Kind::ClientGone)),
        }
    }
}

/// A connected upstream. For a group member, counts as an active
/// connection (least_conn) until dropped.
pub struct Connected {
    pub stream: UpStream,
    pub addr: UpstreamAddr,
    peer: Option<Active>,
    /// Taken from the keep-alive pool (it may turn out stale).
    pub pooled: bool,
}

/// A group member's active-connection count (least_conn), held while the
/// connection is in use.
struct Active {
    group: Rc<Group>,
    index: u32,
    /// The number of the tunnel the connection carries (counted for
    /// `rebalance`), or 0.
    tunnel: u32,
}

impl Active {
    fn new(group: &Rc<Group>, index: usize) -> Self {
        let a = &group.peers[index].active;
        a.set(a.get() + 1);
        Active {
            group: group.clone(),
            index: index as u32,
            tunnel: 0,
        }
    }

    fn peer(&self) -> &crate::upstream::Peer {
        &self.group.peers[self.index as usize]
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        let a = &self.peer().active;
        a.set(a.get().saturating_sub(1));
        if self.tunnel != 0 {
            self.group.tunnel_closed(self.index as usize, self.tunnel);
        }
    }
}

impl Connected {
    /// A connection to an address (not a group member).
    pub fn direct(stream: UpStream, addr: UpstreamAddr) -> Connected {
        Connected {
            stream,
            addr,
            peer: None,
            pooled: false,
        }
    }

    /// A connection adopted from an older process (binary upgrade) to
    /// member `index` of `group`: counted on it as one it picked.
    pub fn adopted(
        stream: UpStream,
        addr: UpstreamAddr,
        group: &Rc<Group>,
        index: usize,
    ) -> Connected {
        Connected {
            stream,
            addr,
            peer: Some(Active::new(group, index)),
            pooled: false,
        }
    }

    /// For a binary upgrade's record: the group, the member's key and
    /// the tunnel's balancing key (none for an address).
    pub fn member_names(&self) -> Option<(&str, &str, Option<crate::upstream::TunnelKey>)> {
        self.peer.as_ref().map(|p| {
            (
                p.group.name.as_str(),
                &*p.peer().key,
                p.group.tunnel_key(p.tunnel),
            )
        })
    }

    /// The upstream group this connection's server belongs to (none for
    /// a `proxy_pass` to an address).
    pub fn group_name(&self) -> Option<&str> {
        self.peer.as_ref().map(|p| p.group.name.as_str())
    }

    /// The tag of the group member this connection goes to
    /// (`upstream::verdict`; `NO_TAG` for an address).
    pub fn tag(&self) -> u32 {
        self.peer
            .as_ref()
            .map_or(crate::upstream::verdict::NO_TAG, |p| p.peer().tag())
    }

    /// This connection now carries tunnel `id`: counted on its server
    /// until it is dropped, with its balancing key when its group moves
    /// tunnels by key (`rebalance`).
    pub fn tunnel_started(&mut self, id: u32, key: Option<crate::upstream::TunnelKey>) {
        if let Some(p) = self.peer.as_mut().filter(|p| p.tunnel == 0) {
            p.tunnel = id;
            p.group.tunnel_opened(p.index as usize, id, key);
        }
    }

    /// The number of the tunnel this connection carries (0: none, or not
    /// a group member).
    pub fn tunnel_id(&self) -> u32 {
        self.peer.as_ref().map_or(0, |p| p.tunnel)
    }

    /// The exchange got a usable response: clear the peer's failures.
    pub fn succeeded(&self) {
        if let Some(p) = &self.peer {
            p.peer().health.success();
        }
    }

    /// The peer failed before answering: count it against its health.
    pub fn failed(&self) {
        if let Some(p) = &self.peer {
            mark_failed(&p.group, p.index as usize, &self.addr);
        }
    }

    /// Whether this connection may go back to a keep-alive pool.
    pub fn poolable(&self) -> bool {
        self.peer.as_ref().is_some_and(|p| p.group.pool.enabled())
    }

    /// The exchange ended cleanly and the upstream keeps the connection:
    /// park it in its group's pool (or close it when there is none).
    pub fn keep(self) {
        let Connected { stream, peer, .. } = self;
        if let Some(p) = peer {
            let server = p.peer().key.clone();
            p.group.pool.put(server, stream, Instant::now());
        }
    }
}

fn mark_failed(g: &Group, i: usize, addr: &UpstreamAddr) {
    if g.peers[i].health.failure(Instant::now()) {
        warn!(upstream = %g.name, server = %addr, "upstream server marked down for fail_timeout");
    }
}

/// Connect to the target; for a group, pick servers not yet `tried`, and
/// count each failed connect against the server's health.
/// `fresh`: do not take a pooled connection (after a stale one failed).
pub async fn connect(
    target: &Target,
    tls: Option<&Arc<Connector>>,
    tried: &mut Vec<usize>,
    timeout: Duration,
    fresh: bool,
    go_on: &dyn Fn(&Error, usize) -> bool,
) -> Result<Connected, Error> {
    match target {
        Target::Addrs(addrs) => {
            if !tried.is_empty() {
                return Err(Kind::NoLiveUpstream.into());
            }
            tried.push(0);
            let started = Instant::now();
            let r = connect::connect_any(addrs, tls, timeout).await;
            count_connect(None, addrs, &r, started);
            let (stream, addr) = r?;
            Ok(Connected::direct(stream, addr))
        }
        Target::Group { group, key } => {
            let mut last: Option<Error> = None;
            loop {
                let Some(i) = group.pick(key.as_key(), tried, Instant::now()) else {
                    if last.is_none() {
                        let (checks, passive, configured) = group.down_counts(Instant::now());
                        warn!(
                            upstream = %group.name,
                            servers = group.peers.len(),
                            down_by_check = checks,
                            down_by_passive = passive,
                            down_in_config = configured,
                            tried = tried.len(),
                            "no live upstream server"
                        );
                    }
                    return Err(last.unwrap_or_else(|| Kind::NoLiveUpstream.into()));
                };
                tried.push(i);
                let addrs = &group.addrs[i];
                if !fresh {
                    if let Some(stream) = group.pool.take(&group.peers[i].key, tls, Instant::now())
                    {
                        // Which of a name's addresses the connection went
                        // to; never asked of a unix socket (monoio's
                        // peer_addr is TCP's only).
                        let addr = match &addrs[..] {
                            [UpstreamAddr::Inet(first), _, ..] => stream
                                .tcp()
                                .peer_addr()
                                .map_or(UpstreamAddr::Inet(*first), UpstreamAddr::Inet),
                            _ => addrs[0].clone(),
                        };
                        return Ok(Connected {
                            stream,
                            addr,
                            peer: Some(Active::new(group, i)),
                            pooled: true,
                        });
                    }
                }
                let started = Instant::now();
                let r = connect::connect_any(addrs, tls, timeout).await;
                count_connect(Some(&group.name), addrs, &r, started);
                match r {
                    Ok((stream, addr)) => {
                        return Ok(Connected {
                            stream,
                            addr,
                            peer: Some(Active::new(group, i)),
                            pooled: false,
                        });
                    }
                    Err(e) => {
                        mark_failed(group, i, &addrs[0]);
                        // `proxy_next_upstream`: whether a failed connect
                        // goes on to the next server.
                        if !go_on(&e, tried.len()) {
                            return Err(e);
                        }
                        last = Some(e);
                    }
                }
            }
        }
    }
}

/// An upstream connect into the worker's metrics: latency or failure by
/// upstream (the group's name, or the address for a literal proxy_pass)
/// and upstream server address (its first address, as the health
/// reports name it).
fn count_connect<T>(
    group: Option<&str>,
    addrs: &[UpstreamAddr],
    r: &Result<T, Error>,
    started: Instant,
) {
    let Some(first) = addrs.first() else { return };
    let addr = first.to_string();
    let outcome = match r {
        Ok(_) => Ok(started.elapsed()),
        Err(_) => Err(()),
    };
    crate::metrics::with(|m| m.upstream_connect(group.unwrap_or(&addr), &addr, outcome));
}

/// Limits for reading an upstream response head.
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    pub max_len: usize,
    pub max_headers: usize,
    pub read_timeout: Duration,
}

/// Interim (1xx) responses tolerated before the final one.
const MAX_INTERIM: u32 = 8;

/// A final response head, parsed once.
pub struct ResponseHead {
    pub resp: Response,
    /// Interim 1xx responses came first (dropped, not relayed): the
    /// connection is not reused after this exchange.
    pub interim: bool,
}

/// Read an upstream's response head. Interim 1xx responses other than 101
/// are dropped.
pub async fn read_response_head<U: Transport>(
    up: &U,
    lim: HeadLimits,
) -> Result<ResponseHead, Error> {
    let mut buf = Vec::new();
    let mut interim = 0;
    loop {
        if !buf.is_empty() {
            match response::parse(buf, lim.max_headers, lim.max_len).map_err(Kind::from)? {
                response::Parse::Complete(r)
                    if (100..200).contains(&r.status) && r.status != 101 =>
                {
                    interim += 1;
                    if interim > MAX_INTERIM {
                        return Err(Kind::BadResponse("too many interim responses").into());
                    }
                    buf = r.early().to_vec();
                    continue;
                }
                response::Parse::Complete(resp) => {
                    return Ok(ResponseHead {
                        resp,
                        interim: interim > 0,
                    })
                }
                response::Parse::Partial(b) => buf = b,
            }
        }
        let was_empty = buf.is_empty();
        let read = monoio::time::timeout(lim.read_timeout, up.read_append(&mut buf, lim.max_len));
        match read.await {
            Err(_) => {
                return Err(nothing_yet(
                    Kind::UpstreamTimeout,
                    was_empty && interim == 0,
                ))
            }
            Ok(Err(e)) => {
                return Err(nothing_yet(Kind::UpstreamIo, was_empty && interim == 0).with_source(e))
            }
            Ok(Ok(0)) => return Err(nothing_yet(Kind::UpstreamClosed, was_empty && interim == 0)),
            Ok(Ok(_)) => {}
        }
    }
}

/// An upstream failure; `before_any_byte` marks one that may be retried
/// (the caller decides with the method and the connection).
fn nothing_yet(kind: Kind, before_any_byte: bool) -> Error {
    Error::new(kind).with_retry(Retry::Decided(before_any_byte))
}

/// An upstream that answered: the connection and its response head.
pub struct Answered {
    pub up: Connected,
    pub head: ResponseHead,
}

/// Connect, send `head`, read the response head — retrying on the next
/// server while the upstream failed without sending a byte (for a
/// non-idempotent request, only when the connect failed). When every
/// server failed, the last failure is the answer (a timeout: 504).
#[allow(clippy::too_many_arguments)]
pub async fn exchange_head(
    target: &Target,
    tls: Option<&Arc<Connector>>,
    head: &[u8],
    idempotent: bool,
    next: &NextUpstream,
    connect_timeout: Duration,
    send_timeout: Duration,
    lim: HeadLimits,
) -> Result<Answered, Error> {
    let mut tried = Vec::new();
    let mut fresh = false;
    let mut last: Option<Error> = None;
    // An answer whose status asked for the next server: the client gets
    // it when no next server answers (nginx passes the last one).
    let mut held: Option<Answered> = None;
    let started = Instant::now();
    let go_on = |e: &Error, tried: usize| next_allows(next, e, tried, started.elapsed());
    loop {
        let up = match connect(target, tls, &mut tried, connect_timeout, fresh, &go_on).await {
            Ok(up) => up,
            Err(e) if e.kind == Kind::NoLiveUpstream && (held.is_some() || last.is_some()) => {
                if let Some(a) = held {
                    return Ok(a);
                }
                return Err(last.unwrap_or(e));
            }
            Err(e) => return Err(e),
        };
        let res = match up.stream.write_all(head, send_timeout).await {
            Err(e) => Err(Error::upstream_io(e).with_retry(Retry::Decided(true))),
            Ok(()) => read_response_head(&up.stream, lim).await,
        };
        let e = match res {
            Ok(head) => {
                let status = head.resp.status;
                let again = next.statuses.contains(&status)
                    && (idempotent || next.non_idempotent)
                    && next.within_limits(tried.len(), started.elapsed());
                if !again {
                    up.succeeded();
                    return Ok(Answered { up, head });
                }
                warn!(server = %up.addr, status, "upstream answered a status proxy_next_upstream names, trying the next one");
                // nginx counts these against the server (not a 403 or 404).
                if status >= 429 {
                    up.failed();
                }
                held = Some(Answered { up, head });
                continue;
            }
            Err(e) => e,
        };
        // `invalid_header`: a response head ringway cannot take, when the
        // location says so, may go on as a failure before any byte did.
        let e = if matches!(e.kind, Kind::BadResponse(_)) && next.invalid_header {
            e.with_retry(Retry::Decided(true))
        } else {
            e
        };
        let before_any_byte = e.retry == Retry::Decided(true);
        let e = if up.pooled && before_any_byte {
            e.with_retry(Retry::ReusedOnly)
        } else {
            e
        };
        match e.retry {
            Retry::ReusedOnly => {
                // A pooled connection the upstream had already closed: not
                // the server's fault; try the same server on a new one.
                tracing::debug!(server = %up.addr, error = %e, "stale keep-alive connection, reconnecting");
                if let Some(p) = &up.peer {
                    tried.retain(|&t| t != p.index as usize);
                }
                fresh = true;
            }
            Retry::Decided(true)
                if (idempotent || next.non_idempotent) && go_on(&e, tried.len()) =>
            {
                warn!(server = %up.addr, error = %e, "upstream failed before answering, trying the next one");
                up.failed();
                last = Some(e);
            }
            Retry::Decided(_) => {
                up.failed();
                return Err(e);
            }
        }
    }
}

/// `proxy_next_upstream`: whether failure `e` goes on to the next server,
/// after `tried` servers and `elapsed` time. A timeout is `timeout`'s, a
/// response head ringway cannot take `invalid_header`'s, any other
/// failure `error`'s.
pub fn next_allows(next: &NextUpstream, e: &Error, tried: usize, elapsed: Duration) -> bool {
    let condition = match e.kind {
        Kind::ConnectTimeout | Kind::UpstreamTimeout => next.timeout,
        Kind::BadResponse(_) => next.invalid_header,
        _ => next.error,
    };
    condition && next.within_limits(tried, elapsed)
}

/// nginx's idempotent methods: everything but POST, LOCK and PATCH may be
/// passed to the next server after it was sent to one.
pub fn idempotent(method: &str) -> bool {
    !matches!(method, "POST" | "LOCK" | "PATCH")
}

/// How long a proxied exchange runs before ringway starts watching the
/// client for a close. Most exchanges end sooner and pay nothing for it;
/// a long poll whose client left is closed upstream within this delay.
const CLIENT_WATCH_DELAY: Duration = Duration::from_millis(100);

/// Resolves when the client has closed its connection (or half-closed it,
/// or reset it) while ringway waits on the upstream; pending for as long
/// as the client is there. Bytes from the client (a pipelined request)
/// end the watch: they are read later, and the close cannot be seen past
/// them. nginx does the same (`proxy_ignore_client_abort off`): the
/// upstream connection is closed at once and the request logged as 499.
/// An HTTP/2 stream whose request has ended is watched for its reset.
pub async fn client_gone<C: Transport>(client: &C) {
    monoio::time::sleep(CLIENT_WATCH_DELAY).await;
    loop {
        match client.pending() {
            // An HTTP/2 request's END_STREAM ends the request, not the
            // client's connection: only a reset says it left.
            Pending::Eof if client.http2() => return client.stream_reset().await,
            Pending::Eof | Pending::Error => return,
            Pending::Data => std::future::pending::<()>().await,
            Pending::Nothing => {
                if client.readable().await.is_err() {
                    return;
                }
            }
        }
    }
}
