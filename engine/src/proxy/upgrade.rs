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

use std::time::Duration;

use tracing::{info, warn};

use super::body::{self, BodyLimits, BodyReader};
use super::frames::{self, Frames};
use super::{Answered, Connected, Exchange};
use crate::error::{Error, Kind};
use crate::http::upgrade::{self, Switched};
use crate::http::{header_eq, rewrite, tokens};
use crate::transport::Transport;

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
    /// The connection switched to WebSocket: the tunnel tracks frames (a
    /// drain closes it between frames with close frames), from the first
    /// byte each way — the upstream's that went out with the 101 are in
    /// already, the client's `early` go in when they are written.
    pub frames: Option<Box<Frames>>,
    /// Upstream bytes that came behind its 101 and went to the client
    /// with it: the tunnel counts them as sent to the client.
    pub upstream_early: u32,
}

/// Run the upgrade exchange of a request whose `Upgrade` went upstream as
/// `forwarded` (the protocols its location allows).
pub async fn run<C: Transport>(x: &Exchange<'_, C>, forwarded: &[u8]) -> Result<Outcome, Error> {
    let loc = x.location;
    let Answered { mut up, head } = x.exchange_head().await?;
    let resp = &head.resp;
    let status = resp.status;
    let framing = resp.framing(false).map_err(Kind::from)?;
    let switched = if status == 101 {
        // RFC 9110 §15.2.2: a 101 names the protocol it switches to, one
        // the request offered (§7.8) — here, one the location allows.
        let named = || {
            resp.headers()
                .filter(|(n, _)| header_eq(n, "upgrade"))
                .map(|(_, v)| v)
        };
        if named().flat_map(tokens).next().is_none() {
            return Err(Kind::BadResponse("101 without Upgrade").into());
        }
        let Some(switched) = upgrade::switched_to(named(), forwarded) else {
            let said: Vec<_> = named().map(String::from_utf8_lossy).collect();
            warn!(client = %x.peer, upstream = %up.addr, upgrade = ?said, offered = %String::from_utf8_lossy(forwarded), "101 to a protocol that was not offered");
            return Err(Kind::BadResponse("101 to a protocol that was not offered").into());
        };
        Some(switched)
    } else {
        None
    };
    let mut out = Vec::with_capacity(resp.head_len + 64);
    rewrite::response_head(&mut out, resp, framing, false, &x.relay());

    if let Some(switched) = switched {
        // The upstream's first bytes of the new protocol go with the 101,
        // and through the frame tracker first: a drain must know where
        // the frame they begin ends.
        out.extend_from_slice(resp.early());
        let upstream_early = u32::try_from(resp.early().len()).unwrap_or(u32::MAX);
        let frames = (switched == Switched::WebSocket).then(|| {
            let mut f = Box::<Frames>::default();
            f.feed(frames::FROM_UPSTREAM, resp.early());
            f
        });
        drop(head);
        x.client
            .write_all(&out, loc.proxy_send_timeout)
            .await
            .map_err(Error::client_io)?;
        // From here the connection carries a tunnel: counted on its
        // server, with its key where the group moves tunnels by key.
        up.tunnel_started(x.kit.next_tunnel_id(), x.target.tunnel_key());
        return Ok(Outcome::Tunnel(TunnelPlan {
            upstream: up,
            idle_timeout: loc.proxy_read_timeout,
            send_timeout: loc.proxy_send_timeout,
            frames,
            early: x.early.to_vec(),
            upstream_early,
        }));
    }

    // Not upgraded: relay the answer, then end the exchange; the client's
    // early bytes are dropped with its connection.
    if !x.early.is_empty() {
        info!(client = %x.peer, dropped = x.early.len(), "bytes sent behind a refused upgrade are dropped");
    }
    x.client
        .write_all(&out, loc.proxy_send_timeout)
        .await
        .map_err(Error::client_io)?;
    let lim = BodyLimits {
        read_timeout: loc.proxy_read_timeout,
        max: 0,
        max_trailer: x.limits.max_len,
    };
    let mut reader = BodyReader::new(
        &up.stream,
        &x.kit.bufs,
        framing.body,
        resp.early(),
        lim,
        false,
    );
    // The head is out: a failure now can only cut the response short.
    let body_bytes = match body::relay(&mut reader, x.client, loc.proxy_send_timeout, None).await {
        Ok(n) => n,
        Err(e) => {
            warn!(client = %x.peer, error = ?e, "upstream response cut short");
            0
        }
    };
    info!(client = %x.peer, upstream = %up.addr, status, "upgrade refused by upstream");
    Ok(Outcome::Refused { status, body_bytes })
}
