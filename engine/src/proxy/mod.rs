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
//! been sent.

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

/// Read an upstream response head into `buf`; returns its length. Interim
/// 1xx responses other than 101 are dropped from the buffer.
pub async fn read_response_head(
    up: &TcpStream,
    buf: &mut Vec<u8>,
    lim: HeadLimits,
) -> Result<usize, ProxyError> {
    loop {
        match response::parse(buf, lim.max_headers, lim.max_len) {
            Ok(Some(r)) if (100..200).contains(&r.status) && r.status != 101 => {
                let n = r.head_len;
                buf.drain(..n);
                continue;
            }
            Ok(Some(r)) => return Ok(r.head_len),
            Ok(None) => {}
            Err(response::BadResponse::TooLarge) => {
                return Err(ProxyError::BadResponse("head too large"))
            }
            Err(response::BadResponse::Malformed(why)) => return Err(ProxyError::BadResponse(why)),
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

/// Connect, send `head`, read the response head — retrying on the next
/// server while the upstream failed without sending a byte.
pub async fn exchange_head(
    target: &Target,
    head: &[u8],
    connect_timeout: Duration,
    send_timeout: Duration,
    lim: HeadLimits,
) -> Result<(Connected, Vec<u8>, usize), ProxyError> {
    let mut tried = Vec::new();
    let mut fresh = false;
    loop {
        let up = connect(target, &mut tried, connect_timeout, fresh).await?;
        let mut buf = Vec::new();
        let res = match sys::write_all(&up.stream, head, send_timeout).await {
            Err(e) => Err(upstream_io(e)),
            Ok(()) => read_response_head(&up.stream, &mut buf, lim).await,
        };
        match res {
            Ok(n) => {
                up.succeeded();
                return Ok((up, buf, n));
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
            Err(e) if buf.is_empty() && e.retryable() => {
                warn!(server = %up.addr, error = %e, "upstream failed before answering, trying the next one");
                up.failed();
            }
            Err(e) => {
                up.failed();
                return Err(e);
            }
        }
    }
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

pub fn upstream_io(e: io::Error) -> ProxyError {
    if e.kind() == io::ErrorKind::TimedOut {
        ProxyError::UpstreamTimeout
    } else {
        ProxyError::Upstream(e)
    }
}
