//! The upgrade exchange: send the rewritten request upstream, read the
//! upstream's answer; a 101 turns the connection into a tunnel, anything
//! else is relayed to the client as an ordinary response and the exchange
//! ends (RFC 9110 §7.8, RFC 6455 §4.1).

use std::net::SocketAddr;
use std::time::Duration;

use monoio::net::TcpStream;
use ringway_config::Location;
use tracing::{info, warn};

use super::body::Relay;
use super::{exchange_head, Connected, HeadLimits, ProxyError, Target};
use crate::http::{response, rewrite};
use crate::runtime::worker::Worker;
use crate::sys;

/// An upgrade request ready to go upstream.
pub struct Upgrade<'a> {
    pub worker: &'a Worker,
    pub location: &'a Location,
    pub client: &'a TcpStream,
    pub peer: SocketAddr,
    /// The rewritten head, followed by any bytes the client sent after it.
    pub head: Vec<u8>,
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
}

pub async fn run(u: Upgrade<'_>) -> Result<Outcome, ProxyError> {
    let loc = u.location;
    let lim = HeadLimits {
        max_len: u.max_head,
        max_headers: u.max_headers,
        read_timeout: loc.proxy_read_timeout,
    };
    let (up, buf, head_len) = exchange_head(
        &u.target,
        &u.head,
        loc.proxy_connect_timeout,
        loc.proxy_send_timeout,
        lim,
    )
    .await?;
    drop(u.head);
    let resp = match response::parse(&buf, u.max_headers, u.max_head) {
        Ok(Some(r)) => r,
        _ => return Err(ProxyError::BadResponse("invalid response head")),
    };
    let status = resp.status;
    let mut out = Vec::with_capacity(head_len + 64);
    rewrite::response_head(&mut out, &resp, false);

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
        }));
    }

    // Not upgraded: relay the answer as it is, then end the exchange.
    let kind = resp
        .body_kind("GET")
        .map_err(|_| ProxyError::BadResponse("bad response framing"))?;
    drop(resp);
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
    };
    // The head is out: a failure now can only cut the response short.
    let body_bytes = match relay.body(kind, &buf[head_len..]).await {
        Ok((_, n)) => n,
        Err(e) => {
            warn!(client = %u.peer, uri = %u.uri, error = ?e, "upstream response cut short");
            0
        }
    };
    info!(client = %u.peer, upstream = %up.addr, uri = %u.uri, status, "upgrade refused by upstream");
    Ok(Outcome::Refused { status, body_bytes })
}
