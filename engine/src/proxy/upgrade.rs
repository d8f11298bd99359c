//! The upgrade exchange: send the rewritten request upstream, read the
//! upstream's answer; a 101 turns the connection into a tunnel, anything
//! else is relayed to the client as an ordinary response and the exchange
//! ends (RFC 9110 §7.8, RFC 6455 §4.1).

use std::net::SocketAddr;
use std::time::Instant;

use monoio::net::TcpStream;
use ringway_config::Location;
use tracing::{debug, info, warn};

use super::body::Relay;
use super::{exchange_head, HeadLimits, ProxyError, Target};
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

/// What the client was told (for the access log).
pub struct Outcome {
    pub status: u16,
    /// Bytes sent to the client after the response head.
    pub body_bytes: u64,
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
        drop(out);
        let started = Instant::now();
        let stats = super::tunnel::run(
            u.worker,
            u.client,
            &up.stream,
            loc.proxy_read_timeout,
            loc.proxy_send_timeout,
        )
        .await;
        debug!(
            client = %u.peer,
            upstream = %up.addr,
            uri = %u.uri,
            end = ?stats.end,
            up_bytes = stats.client_to_upstream,
            down_bytes = stats.upstream_to_client,
            secs = started.elapsed().as_secs_f64(),
            "tunnel closed"
        );
        return Ok(Outcome {
            status,
            body_bytes: stats.upstream_to_client,
        });
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
    Ok(Outcome { status, body_bytes })
}
