//! One plain HTTP/1.1 exchange through the proxy: connect, send the
//! rewritten head and stream the request body, read the response head,
//! stream the response body to the client as it arrives (RFC 9112).
//!
//! Upstream groups with `keepalive > 0` reuse connections from a per-core
//! pool (a request on a pooled connection that turns out stale is retried
//! on a new one when it has no body); direct `proxy_pass` addresses use
//! one connection per exchange (`Connection: close`), as nginx does. The
//! client connection stays open when the request and response framing
//! allow it. A request without a body is retried on the next server when
//! the upstream fails before answering (an idempotent one even after it
//! was sent); one with a body is retried only when the connect itself
//! fails.
//!
//! A 101 to a request that did not ask to upgrade is a bad response (502):
//! the upstream has switched protocols on a connection ringway would
//! otherwise hand the next request. While the exchange waits on the
//! upstream, a client that closes ends it (`client_gone`).

use std::cell::Cell;
use std::net::SocketAddr;

use monoio::net::TcpStream;
use ringway_config::Location;
use tracing::{debug, warn};

use super::body::{BodyError, Relay};
use super::{
    bad_response, client_gone, client_left, connect, exchange_head, read_response_head,
    upstream_io, Answered, HeadLimits, ProxyError, Target,
};
use crate::http::{response, rewrite, BodyKind};
use crate::runtime::worker::Worker;
use crate::sys;

pub struct Exchange<'a> {
    pub worker: &'a Worker,
    pub location: &'a Location,
    pub client: &'a TcpStream,
    pub peer: SocketAddr,
    /// The rewritten request head.
    pub head: Vec<u8>,
    pub method_is_head: bool,
    /// The method may be passed to the next server after it was sent.
    pub idempotent: bool,
    pub body: BodyKind,
    /// Bytes the client sent after its head (body, maybe more).
    pub early: Vec<u8>,
    /// Send "100 Continue" to the client before reading the body.
    pub expect_continue: bool,
    pub target: Target,
    pub client_keep_alive: bool,
    /// HTTP/1.0 client: cannot take a chunked response.
    pub client_http10: bool,
    pub client_body_timeout: std::time::Duration,
    pub max_head: usize,
    pub max_headers: usize,
    /// The location's `add_header` fields, rendered for this request.
    pub add_header: Vec<(String, Vec<u8>)>,
}

pub struct Outcome {
    pub status: u16,
    pub body_bytes: u64,
    /// Whether the client connection can carry another request.
    pub keep_alive: bool,
    /// Bytes after this request's body (the next pipelined request).
    pub leftover: Vec<u8>,
}

pub async fn run(mut x: Exchange<'_>) -> Result<Outcome, ProxyError> {
    let lim = HeadLimits {
        max_len: x.max_head,
        max_headers: x.max_headers,
        read_timeout: x.location.proxy_read_timeout,
    };
    let answered_early = Cell::new(false);
    let (answered, leftover) = if x.body.is_empty() {
        let loc = x.location;
        let a = monoio::select! {
            biased;
            r = exchange_head(
                &x.target,
                &x.head,
                x.idempotent,
                loc.proxy_connect_timeout,
                loc.proxy_send_timeout,
                lim,
            ) => r?,
            _ = client_gone(x.client) => return Err(client_left()),
        };
        // Length(0): nothing to relay; every early byte is the next request.
        (a, std::mem::take(&mut x.early))
    } else {
        send_with_body(&x, lim, &answered_early).await?
    };
    respond(&x, answered, leftover, answered_early.get()).await
}

/// Connect, send the head and relay the request body, then read the
/// response head.
async fn send_with_body(
    x: &Exchange<'_>,
    lim: HeadLimits,
    answered_early: &Cell<bool>,
) -> Result<(Answered, Vec<u8>), ProxyError> {
    let loc = x.location;
    let up = connect(&x.target, &mut Vec::new(), loc.proxy_connect_timeout, false).await?;
    sys::write_all(&up.stream, &x.head, loc.proxy_send_timeout)
        .await
        .map_err(upstream_io)?;
    if x.expect_continue && x.early.is_empty() {
        sys::write_all(
            x.client,
            b"HTTP/1.1 100 Continue\r\n\r\n",
            loc.proxy_send_timeout,
        )
        .await
        .map_err(ProxyError::Client)?;
    }
    let relay = Relay {
        from: x.client,
        to: &up.stream,
        read_timeout: x.client_body_timeout,
        send_timeout: loc.proxy_send_timeout,
        pool: &x.worker.bufs,
        max: loc.client_max_body_size,
        max_trailer: x.max_head,
        answered_early: Some(answered_early),
    };
    let leftover = match relay.body(x.body, &x.early).await {
        Ok((rest, _)) => rest,
        Err(BodyError::Write(e)) => return Err(upstream_io(e)),
        Err(BodyError::Read(e)) if e.kind() == std::io::ErrorKind::TimedOut => {
            return Err(ProxyError::ClientBody(408, "client body timeout"))
        }
        Err(BodyError::Read(e)) => return Err(ProxyError::Client(e)),
        Err(BodyError::Framing(why)) => return Err(ProxyError::ClientBody(400, why)),
        Err(BodyError::TooLarge) => {
            return Err(ProxyError::ClientBody(
                413,
                "larger than client_max_body_size",
            ))
        }
    };
    let mut buf = Vec::new();
    let head = monoio::select! {
        biased;
        r = read_response_head(&up.stream, &mut buf, lim) => r?,
        _ = client_gone(x.client) => return Err(client_left()),
    };
    up.succeeded();
    Ok((Answered { up, buf, head }, leftover))
}

/// Relay the response head and body to the client; pool the upstream
/// connection when the exchange ended cleanly.
async fn respond(
    x: &Exchange<'_>,
    a: Answered,
    leftover: Vec<u8>,
    answered_early: bool,
) -> Result<Outcome, ProxyError> {
    let loc = x.location;
    let Answered { up, buf, head } = a;
    let mut out = Vec::with_capacity(head.len + 32);
    let (status, kind, keep_alive, upstream_keeps) = {
        let resp = match response::parse(&buf, x.max_headers, x.max_head) {
            Ok(Some(r)) => r,
            _ => return Err(ProxyError::BadResponse("invalid response head")),
        };
        if resp.status == 101 {
            return Err(ProxyError::BadResponse("101 to a request without Upgrade"));
        }
        let framing = resp.framing(x.method_is_head).map_err(bad_response)?;
        let kind = framing.body;
        let dechunk = x.client_http10 && kind == BodyKind::Chunked;
        let keep_alive = x.client_keep_alive && kind != BodyKind::UntilClose && !dechunk;
        rewrite::response_head_for(&mut out, &resp, framing, keep_alive, dechunk, &x.add_header);
        let upstream_keeps = resp.keeps_alive() && kind != BodyKind::UntilClose;
        (resp.status, kind, keep_alive, upstream_keeps)
    };
    sys::write_all(x.client, &out, loc.proxy_send_timeout)
        .await
        .map_err(ProxyError::Client)?;
    let down = Relay {
        from: &up.stream,
        to: x.client,
        read_timeout: loc.proxy_read_timeout,
        send_timeout: loc.proxy_send_timeout,
        pool: &x.worker.bufs,
        max: 0,
        max_trailer: x.max_head,
        answered_early: None,
    };
    let early = &buf[head.len..];
    let relay = async {
        if x.client_http10 && kind == BodyKind::Chunked {
            down.dechunked(early).await
        } else {
            down.body(kind, early).await
        }
    };
    let relayed = monoio::select! {
        biased;
        r = relay => r,
        _ = client_gone(x.client) => Err(BodyError::Write(std::io::ErrorKind::ConnectionAborted.into())),
    };
    match relayed {
        Ok((rest, n)) => {
            // Reuse only a connection whose exchange ended exactly where
            // its framing said, with no interim response and a request
            // body the upstream had the chance to read in full.
            let clean = rest.is_empty() && !head.interim && !answered_early;
            if upstream_keeps && up.poolable() {
                if clean {
                    up.keep();
                } else {
                    debug!(
                        upstream = %up.addr,
                        extra_bytes = rest.len(),
                        interim = head.interim,
                        answered_early,
                        "upstream connection not reused"
                    );
                }
            }
            Ok(Outcome {
                status,
                body_bytes: n,
                keep_alive,
                leftover,
            })
        }
        Err(e) => {
            // The head is out; the only honest signal left is closing.
            warn!(client = %x.peer, status, error = ?e, "response cut short");
            Ok(Outcome {
                status,
                body_bytes: 0,
                keep_alive: false,
                leftover: Vec::new(),
            })
        }
    }
}
