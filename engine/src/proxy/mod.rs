//! Proxying: choose and connect the upstream, then either relay one plain
//! HTTP exchange (`http`) or an upgrade and its tunnel (`upgrade`,
//! `tunnel`). Errors know their side, which maps onto the status ringway
//! answers: upstream refused/reset/bad → 502, upstream timeout → 504.

pub mod body;
pub mod connect;
pub mod http;
pub mod tunnel;
pub mod upgrade;

use std::io;
use std::net::SocketAddr;

use ringway_config::{Config, ProxyPass, ProxyTarget};

use crate::runtime::worker::Worker;

/// Where a request goes: the addresses to try in order, and `$proxy_host`.
pub struct Target {
    pub addrs: Vec<SocketAddr>,
    pub proxy_host: String,
    /// The upstream group name, for logs.
    pub upstream: Option<String>,
}

/// Resolve `proxy_pass` to addresses for this request. Upstream groups are
/// walked round-robin per worker over their usable (not `down`, not
/// `backup`) servers, falling back to backups when none is usable; the
/// remaining servers follow as connect fallbacks.
pub fn target(worker: &Worker, config: &Config, pp: &ProxyPass) -> Target {
    match &pp.target {
        ProxyTarget::Address { host, addrs } => Target {
            addrs: addrs.clone(),
            proxy_host: host.clone(),
            upstream: None,
        },
        ProxyTarget::Upstream(name) => {
            let mut addrs = Vec::new();
            if let Some(up) = config.upstreams.get(name) {
                let primary: Vec<_> = up.servers.iter().filter(|s| !s.down && !s.backup).collect();
                let backup: Vec<_> = up.servers.iter().filter(|s| !s.down && s.backup).collect();
                let pool = if primary.is_empty() {
                    &backup
                } else {
                    &primary
                };
                if !pool.is_empty() {
                    let mut cursors = worker.cursors.borrow_mut();
                    let c = cursors.entry(name.clone()).or_insert(0);
                    let start = *c % pool.len();
                    *c = c.wrapping_add(1);
                    for i in 0..pool.len() {
                        addrs.extend_from_slice(&pool[(start + i) % pool.len()].addrs);
                    }
                    if !primary.is_empty() {
                        for b in &backup {
                            addrs.extend_from_slice(&b.addrs);
                        }
                    }
                }
            }
            Target {
                addrs,
                proxy_host: name.clone(),
                upstream: Some(name.clone()),
            }
        }
    }
}

/// How a proxied exchange failed, and so what the client is told.
#[derive(Debug)]
pub enum ProxyError {
    /// Connect refused/unreachable, upstream reset or sent garbage: 502.
    Upstream(io::Error),
    /// Upstream did not answer in time (connect, read or send): 504.
    UpstreamTimeout,
    /// No address to try (every server down): 502.
    NoUpstream,
    /// The upstream response head was malformed or too large: 502.
    BadResponse(&'static str),
    /// The client went away or misbehaved; nothing more can be sent.
    Client(io::Error),
}

impl ProxyError {
    pub fn status(&self) -> u16 {
        match self {
            ProxyError::UpstreamTimeout => 504,
            _ => 502,
        }
    }
}

impl std::fmt::Display for ProxyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProxyError::Upstream(e) => write!(f, "upstream error: {e}"),
            ProxyError::UpstreamTimeout => f.write_str("upstream timed out"),
            ProxyError::NoUpstream => f.write_str("no live upstream"),
            ProxyError::BadResponse(why) => write!(f, "bad upstream response: {why}"),
            ProxyError::Client(e) => write!(f, "client error: {e}"),
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
