//! The upgrade exchange: send the rewritten request upstream, read the
//! upstream's answer; a 101 turns the connection into a tunnel, anything
//! else is relayed to the client as an ordinary response and the exchange
//! ends (RFC 9110 §7.8, RFC 6455 §4.1).
//!
//! Bytes the client sent after its upgrade request are not part of that
//! request: they belong to the protocol the connection switches to, if it
//! switches. They are held until the upstream's 101 has been relayed and
//! go upstream as the tunnel's first bytes; when the upstream refuses the
//! upgrade they are dropped with the client connection, so an upstream
//! that keeps its connection after a refusal never reads them as a
//! request. The upstream connection of an upgrade attempt is never pooled.

use std::net::SocketAddr;
use std::time::Duration;

use monoio::net::TcpStream;
use ringway_config::Location;
use tracing::{info, warn};

use super::body::Relay;
use super::{
    bad_response, client_gone, client_left, exchange_head, Answered, Connected, HeadLimits,
    ProxyError, Target,
};
use crate::http::{response, rewrite};
use crate::runtime::worker::Worker;
use crate::sys;

/// An upgrade request ready to go upstream.
pub struct Upgrade<'a> {
    pub worker: &'a Worker,
    pub location: &'a Location,
    pub client: &'a TcpStream,
    pub peer: SocketAddr,
    /// The rewritten head (an upgrade request has no body).
    pub head: Vec<u8>,
    /// The method may be passed to the next server after it was sent.
    pub idempotent: bool,
    /// Bytes the client sent after the head: held for the tunnel.
    pub early: Vec<u8>,
    pub target: Target,
    /// For logs: the client's request target.
    pub uri: String,
    /// Response-head limits.
    pub max_head: usize,
    pub max_headers: usize,
}

/// How the handshake ended.
pub enum Outcome {
    /// 101 relayed to the client: the caller runs the tunnel (in a task of
    /// its own, so the connection's larger request-handling state is freed).
    Tunnel(TunnelPlan),
    /// The upstream refused the upgrade; its answer was relayed.
    Refused { status: u16, body_bytes: u64 },
}

/// An upgraded upstream connection and the tunnel's timeouts.
pub struct TunnelPlan {
    pub upstream: Connected,
    pub idle_timeout: Duration,
    pub send_timeout: Duration,
    /// Client bytes that arrived behind the upgrade request: the first
    /// bytes the tunnel writes upstream.
    pub early: Vec<u8>,
}

pub async fn run(u: Upgrade<'_>) -> Result<Outcome, ProxyError> {
    let loc = u.location;
    let lim = HeadLimits {
        max_len: u.max_head,
        max_headers: u.max_headers,
        read_timeout: loc.proxy_read_timeout,
    };
    let Answered { up, buf, head } = monoio::select! {
        biased;
        r = exchange_head(
            &u.target,
            &u.head,
            u.idempotent,
            loc.proxy_connect_timeout,
            loc.proxy_send_timeout,
            lim,
        ) => r?,
        _ = client_gone(u.client) => return Err(client_left()),
    };
    drop(u.head);
    let head_len = head.len;
    let resp = match response::parse(&buf, u.max_headers, u.max_head) {
        Ok(Some(r)) => r,
        _ => return Err(ProxyError::BadResponse("invalid response head")),
    };
    let status = resp.status;
    let framing = resp.framing(false).map_err(bad_response)?;
    if status == 101 && resp.header("upgrade").is_none_or(|v| v.is_empty()) {
        // RFC 9110 §15.2.2: a 101 names the protocol it switches to.
        return Err(ProxyError::BadResponse("101 without Upgrade"));
    }
    let mut out = Vec::with_capacity(head_len + 64);
    rewrite::response_head(&mut out, &resp, framing, false);

    if status == 101 {
        out.extend_from_slice(&buf[head_len..]);
        drop(resp);
        drop(buf);
        sys::write_all(u.client, &out, loc.proxy_send_timeout)
            .await
            .map_err(ProxyError::Client)?;
        return Ok(Outcome::Tunnel(TunnelPlan {
            upstream: up,
            idle_timeout: loc.proxy_read_timeout,
            send_timeout: loc.proxy_send_timeout,
            early: u.early,
        }));
    }

    // Not upgraded: relay the answer, then end the exchange; the client's
    // early bytes are dropped with its connection.
    drop(resp);
    if !u.early.is_empty() {
        info!(client = %u.peer, uri = %u.uri, dropped = u.early.len(), "bytes sent behind a refused upgrade are dropped");
    }
    sys::write_all(u.client, &out, loc.proxy_send_timeout)
        .await
        .map_err(ProxyError::Client)?;
    let relay = Relay {
        from: &up.stream,
        to: u.client,
        read_timeout: loc.proxy_read_timeout,
        send_timeout: loc.proxy_send_timeout,
        pool: &u.worker.bufs,
        max: 0,
        max_trailer: u.max_head,
        answered_early: None,
    };
    // The head is out: a failure now can only cut the response short.
    let body_bytes = match relay.body(framing.body, &buf[head_len..]).await {
        Ok((_, n)) => n,
        Err(e) => {
            warn!(client = %u.peer, uri = %u.uri, error = ?e, "upstream response cut short");
            0
        }
    };
    info!(client = %u.peer, upstream = %up.addr, uri = %u.uri, status, "upgrade refused by upstream");
    Ok(Outcome::Refused { status, body_bytes })
}
