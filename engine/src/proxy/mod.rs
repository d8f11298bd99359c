//! Proxying: choose and connect the upstream, then either relay one plain
//! HTTP exchange (`http`) or an upgrade and its tunnel (`upgrade`,
//! `tunnel`). Errors know their side, which maps onto the status ringway
//! answers: upstream refused/reset/bad → 502, upstream timeout → 504, no
//! live server in a group → 502 (nginx's "no live upstreams").
//!
//! Retries follow nginx's `proxy_next_upstream error timeout`: a failed
//! connect, or an upstream that closes or times out before sending any byte
//! of a response head, is retried on the next server of the group — only
//! while nothing has been relayed to the client and no request body has
//! been sent, and, once a request has been sent, only for an idempotent
//! method (nginx does not pass POST, LOCK or PATCH to a next server). When
//! every try failed the last failure answers: a timeout is 504.
//!
//! An upstream connection goes back to the keep-alive pool only after an
//! exchange that ended cleanly: never after a 101, an interim 1xx, a
//! response that did not end exactly where its framing said, or a request
//! body the upstream answered before it could have read it all.

pub mod body;
pub mod connect;
pub mod http;
pub mod tunnel;
pub mod upgrade;

use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use monoio::net::TcpStream;
use tracing::warn;

use crate::http::response;
use crate::sys;
use crate::upstream::{Group, Key};

/// Where a request goes.
pub enum Target {
    /// `proxy_pass` to an address: its resolved addresses, tried in order.
    Addrs(Vec<SocketAddr>),
    /// `proxy_pass` to an upstream group, with the request's balancing key.
    Group { group: Rc<Group>, key: OwnedKey },
}

/// A balancing key that outlives the request buffer.
pub enum OwnedKey {
    None,
    Ip(std::net::IpAddr),
    Hash(Vec<u8>),
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

/// A connected upstream. For a group member, counts as an active
/// connection (least_conn) until dropped.
pub struct Connected {
    pub stream: TcpStream,
    pub addr: SocketAddr,
    peer: Option<Active>,
    /// Taken from the keep-alive pool (it may turn out stale).
    pub pooled: bool,
}

/// A group member's active-connection count (least_conn), held while the
/// connection is in use.
struct Active {
    group: Rc<Group>,
    index: usize,
}

impl Active {
    fn new(group: &Rc<Group>, index: usize) -> Self {
        let a = &group.peers[index].active;
        a.set(a.get() + 1);
        Active {
            group: group.clone(),
            index,
        }
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        let a = &self.group.peers[self.index].active;
        a.set(a.get().saturating_sub(1));
    }
}

impl Connected {
    /// The exchange got a usable response: clear the peer's failures.
    pub fn succeeded(&self) {
        if let Some(p) = &self.peer {
            p.group.peers[p.index].health.success();
        }
    }

    /// The peer failed before answering: count it against its health.
    pub fn failed(&self) {
        if let Some(p) = &self.peer {
            mark_failed(&p.group, p.index, self.addr);
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
            p.group.pool.put(p.index, stream, Instant::now());
        }
    }
}

fn mark_failed(g: &Group, i: usize, addr: SocketAddr) {
    if g.peers[i].health.failure(Instant::now()) {
        warn!(upstream = %g.name, server = %addr, "upstream server marked down for fail_timeout");
    }
}

/// Connect to the target; for a group, pick servers not yet `tried`, and
/// count each failed connect against the server's health.
/// `fresh`: do not take a pooled connection (after a stale one failed).
pub async fn connect(
    target: &Target,
    tried: &mut Vec<usize>,
    timeout: Duration,
    fresh: bool,
) -> Result<Connected, ProxyError> {
    match target {
        Target::Addrs(addrs) => {
            if !tried.is_empty() {
                return Err(ProxyError::NoUpstream(None));
            }
            tried.push(0);
            let (stream, addr) = connect::connect_any(addrs, timeout).await?;
            Ok(Connected {
                stream,
                addr,
                peer: None,
                pooled: false,
            })
        }
        Target::Group { group, key } => {
            let mut last: Option<ProxyError> = None;
            loop {
                let Some(i) = group.pick(key.as_key(), tried, Instant::now()) else {
                    if last.is_none() {
                        warn!(upstream = %group.name, "no live upstream server");
                    }
                    return Err(
                        last.unwrap_or_else(|| ProxyError::NoUpstream(Some(group.name.clone())))
                    );
                };
                tried.push(i);
                let addrs = &group.addrs[i];
                if !fresh {
                    if let Some(stream) = group.pool.take(i, Instant::now()) {
                        let addr = stream.peer_addr().unwrap_or(addrs[0]);
                        return Ok(Connected {
                            stream,
                            addr,
                            peer: Some(Active::new(group, i)),
                            pooled: true,
                        });
                    }
                }
                match connect::connect_any(addrs, timeout).await {
                    Ok((stream, addr)) => {
                        return Ok(Connected {
                            stream,
                            addr,
                            peer: Some(Active::new(group, i)),
                            pooled: false,
                        });
                    }
                    Err(e) => {
                        mark_failed(group, i, addrs[0]);
                        last = Some(e);
                    }
                }
            }
        }
    }
}

/// Limits for reading an upstream response head.
#[derive(Clone, Copy)]
pub struct HeadLimits {
    pub max_len: usize,
    pub max_headers: usize,
    pub read_timeout: Duration,
}

/// Interim (1xx) responses tolerated before the final one.
const MAX_INTERIM: u32 = 8;

/// A final response head at the start of a buffer.
#[derive(Debug, Clone, Copy)]
pub struct ResponseHead {
    pub len: usize,
    /// Interim 1xx responses came first (dropped, not relayed): the
    /// connection is not reused after this exchange.
    pub interim: bool,
}

/// Read an upstream response head into `buf`. Interim 1xx responses
/// other than 101 are dropped from the buffer.
pub async fn read_response_head(
    up: &TcpStream,
    buf: &mut Vec<u8>,
    lim: HeadLimits,
) -> Result<ResponseHead, ProxyError> {
    let mut interim = 0;
    loop {
        match response::parse(buf, lim.max_headers, lim.max_len) {
            Ok(Some(r)) if (100..200).contains(&r.status) && r.status != 101 => {
                interim += 1;
                if interim > MAX_INTERIM {
                    return Err(ProxyError::BadResponse("too many interim responses"));
                }
                let n = r.head_len;
                buf.drain(..n);
                continue;
            }
            Ok(Some(r)) => {
                return Ok(ResponseHead {
                    len: r.head_len,
                    interim: interim > 0,
                })
            }
            Ok(None) => {}
            Err(e) => return Err(bad_response(e)),
        }
        match monoio::time::timeout(lim.read_timeout, sys::read_append(up, buf, lim.max_len)).await
        {
            Err(_) => return Err(ProxyError::UpstreamTimeout),
            Ok(Err(e)) => return Err(upstream_io(e)),
            Ok(Ok(0)) => {
                return Err(ProxyError::Upstream(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "upstream closed before a response head",
                )))
            }
            Ok(Ok(_)) => {}
        }
    }
}

/// An upstream that answered: the connection, the bytes read (a response
/// head, maybe more) and where the head ends.
pub struct Answered {
    pub up: Connected,
    pub buf: Vec<u8>,
    pub head: ResponseHead,
}

/// Connect, send `head`, read the response head — retrying on the next
/// server while the upstream failed without sending a byte (for a
/// non-idempotent request, only when the request was not sent). When
/// every server failed, the last failure is the answer (a timeout: 504).
pub async fn exchange_head(
    target: &Target,
    head: &[u8],
    idempotent: bool,
    connect_timeout: Duration,
    send_timeout: Duration,
    lim: HeadLimits,
) -> Result<Answered, ProxyError> {
    let mut tried = Vec::new();
    let mut fresh = false;
    let mut last: Option<ProxyError> = None;
    loop {
        let up = match connect(target, &mut tried, connect_timeout, fresh).await {
            Ok(up) => up,
            Err(ProxyError::NoUpstream(_)) if last.is_some() => {
                return Err(last.unwrap_or(ProxyError::NoUpstream(None)))
            }
            Err(e) => return Err(e),
        };
        let mut buf = Vec::new();
        let res = match sys::write_all(&up.stream, head, send_timeout).await {
            Err(e) => Err(upstream_io(e)),
            Ok(()) => read_response_head(&up.stream, &mut buf, lim).await,
        };
        match res {
            Ok(head) => {
                up.succeeded();
                return Ok(Answered { up, buf, head });
            }
            Err(e) if buf.is_empty() && up.pooled => {
                // A pooled connection the upstream had already closed: not
                // the server's fault; try the same server on a new one.
                tracing::debug!(server = %up.addr, error = %e, "stale keep-alive connection, reconnecting");
                if let Some(p) = &up.peer {
                    tried.retain(|&t| t != p.index);
                }
                fresh = true;
            }
            Err(e) if buf.is_empty() && e.retryable() && idempotent => {
                warn!(server = %up.addr, error = %e, "upstream failed before answering, trying the next one");
                up.failed();
                last = Some(e);
            }
            Err(e) => {
                up.failed();
                return Err(e);
            }
        }
    }
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
pub async fn client_gone(client: &TcpStream) {
    monoio::time::sleep(CLIENT_WATCH_DELAY).await;
    let fd = std::os::fd::AsRawFd::as_raw_fd(client);
    loop {
        match sys::pending(fd) {
            sys::Pending::Eof | sys::Pending::Error => return,
            sys::Pending::Data => std::future::pending::<()>().await,
            sys::Pending::Nothing => {
                if sys::readable(client).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// The error for a client that left while its exchange was in flight.
pub fn client_left() -> ProxyError {
    ProxyError::Client(io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "client closed the connection while waiting for the upstream",
    ))
}

/// How a proxied exchange failed, and so what the client is told.
#[derive(Debug)]
pub enum ProxyError {
    /// Connect refused/unreachable, upstream reset or closed early: 502.
    Upstream(io::Error),
    /// Upstream did not answer in time (connect, read or send): 504.
    UpstreamTimeout,
    /// No server to try (every one down or already tried): 502.
    NoUpstream(Option<String>),
    /// The upstream response head was malformed or too large: 502.
    BadResponse(&'static str),
    /// The client went away or misbehaved; nothing more can be sent.
    Client(io::Error),
    /// The client's request body failed before any response went out:
    /// 408 (too slow), 400 (bad chunked framing), 413 (too large).
    ClientBody(u16, &'static str),
}

impl ProxyError {
    pub fn status(&self) -> u16 {
        match self {
            ProxyError::UpstreamTimeout => 504,
            ProxyError::ClientBody(status, _) => *status,
            _ => 502,
        }
    }

    /// nginx's `proxy_next_upstream error timeout`.
    fn retryable(&self) -> bool {
        matches!(self, ProxyError::Upstream(_) | ProxyError::UpstreamTimeout)
    }
}

impl std::fmt::Display for ProxyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProxyError::Upstream(e) => write!(f, "upstream error: {e}"),
            ProxyError::UpstreamTimeout => f.write_str("upstream timed out"),
            ProxyError::NoUpstream(Some(name)) => write!(f, "no live upstream in `{name}`"),
            ProxyError::NoUpstream(None) => f.write_str("no live upstream"),
            ProxyError::BadResponse(why) => write!(f, "bad upstream response: {why}"),
            ProxyError::Client(e) => write!(f, "client error: {e}"),
            ProxyError::ClientBody(_, why) => write!(f, "request body: {why}"),
        }
    }
}

pub fn bad_response(e: response::BadResponse) -> ProxyError {
    match e {
        response::BadResponse::TooLarge => ProxyError::BadResponse("head too large"),
        response::BadResponse::Malformed(why) => ProxyError::BadResponse(why),
    }
}

pub fn upstream_io(e: io::Error) -> ProxyError {
    if e.kind() == io::ErrorKind::TimedOut {
        ProxyError::UpstreamTimeout
    } else {
        ProxyError::Upstream(e)
    }
}
