//! One plain HTTP/1.1 exchange through the proxy: connect, send the
//! rewritten head and stream the request body, read the response head,
//! send the response to the client (RFC 9112).
//!
//! Upstream groups with `keepalive > 0` reuse connections from a per-core
//! pool; direct `proxy_pass` addresses use one connection per exchange
//! (`Connection: close`), as nginx does. The client connection stays open
//! when the request and response framing allow it. A request without a
//! body is retried as `proxy::exchange_head` says; one with a body only
//! when the connect itself fails.
//!
//! The response body streams as it arrives (`proxy_buffering = false`,
//! ringway's default). With buffering on, a body that fits
//! `proxy_buffers` is read whole first, the upstream connection goes back
//! to the pool, and then the client gets head and body in one write; a
//! larger body (or one whose upstream says `X-Accel-Buffering: no`)
//! streams after what was read. A small body that came with the head goes
//! out in the same write as the head either way.
//!
//! A 101 to a request that did not ask to upgrade is a bad response (502):
//! the upstream has switched protocols on a connection ringway would
//! otherwise hand the next request. While the exchange waits on the
//! upstream, a client that closes ends it (`client_gone`).

use std::cell::Cell;

use tracing::{debug, warn};

use super::body::{self, BodyError, BodyLimits, BodyReader};
use super::{client_gone, connect, read_response_head, Answered, Exchange};
use crate::error::{Error, Kind};
use crate::http::rewrite::Relay;
use crate::http::{gzip, header_eq, rewrite, BodyKind};
use crate::transport::Transport;

/// What a plain exchange needs beyond the shared [`Exchange`].
pub struct Plain {
    pub method_is_head: bool,
    pub body: BodyKind,
    /// Send "100 Continue" to the client before reading the body.
    pub expect_continue: bool,
    pub client_keep_alive: bool,
    /// HTTP/1.0 client: cannot take a chunked response.
    pub client_http10: bool,
    /// The longest wait between two reads of the request body.
    pub client_body_timeout: std::time::Duration,
    /// The client takes gzip (`http::gzip::client_takes`): whether its
    /// request came through a proxy (`Via`) and carried `Authorization`,
    /// for `gzip_proxied`. `None`: no compression.
    pub gzip: Option<(bool, bool)>,
    /// Upstream statuses an `error_page` replaces (`proxy_intercept_errors`):
    /// such an answer is not relayed ([`Outcome::intercepted`]).
    pub intercept: Vec<u16>,
}

pub struct Outcome {
    pub status: u16,
    pub body_bytes: u64,
    /// Whether the client connection can carry another request.
    pub keep_alive: bool,
    /// Bytes after this request's body (the next pipelined request).
    pub leftover: Vec<u8>,
    /// The upstream server that answered (`$upstream_addr`).
    pub upstream: ringway_config::UpstreamAddr,
    /// Nothing was relayed: the upstream's status is one `intercept`
    /// names (its connection is closed, its body never read).
    pub intercepted: bool,
}

pub async fn run<C: Transport>(x: &Exchange<'_, C>, p: &Plain) -> Result<Outcome, Error> {
    let answered_early = Cell::new(false);
    let (answered, leftover) = if p.body.is_empty() {
        let a = x.exchange_head().await?;
        // Length(0): nothing to relay; every early byte is the next request.
        (a, x.early.to_vec())
    } else if x.location.proxy_request_buffering && matches!(p.body, BodyKind::Length(_)) {
        buffered(x, p).await?
    } else {
        send_with_body(x, p, &answered_early).await?
    };
    respond(x, p, answered, leftover, answered_early.get()).await
}

/// The reader of the client's request body, after the `100 Continue` it
/// asked for (when its body has not started to come).
async fn request_body<'a, C: Transport>(
    x: &'a Exchange<'_, C>,
    p: &Plain,
) -> Result<BodyReader<'a, C>, Error> {
    let loc = x.location;
    if p.expect_continue && x.early.is_empty() {
        x.client
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n", loc.proxy_send_timeout)
            .await
            .map_err(Error::client_io)?;
    }
    let lim = BodyLimits {
        read_timeout: p.client_body_timeout,
        max: loc.client_max_body_size,
        max_trailer: x.limits.max_len,
    };
    Ok(BodyReader::new(
        x.client,
        &x.kit.bufs,
        p.body,
        x.early,
        lim,
        false,
    ))
}

/// A failure relaying the client's request body, as the answer's error.
fn request_body_error(e: BodyError) -> Error {
    match e {
        BodyError::Write(e) => Error::upstream_io(e),
        BodyError::Read(e) if e.kind() == std::io::ErrorKind::TimedOut => {
            Error::new(Kind::BodyTimeout).with_source(e)
        }
        BodyError::Read(e) => Error::client_io(e),
        BodyError::Framing(why) => Kind::BadRequest(why).into(),
        BodyError::TooLarge => Kind::BodyTooLarge.into(),
    }
}

/// `proxy_request_buffering`: read the whole body first (its length was
/// declared and is within `client_max_body_size`), then send head and
/// body together as one exchange — which, having the body to send again,
/// may go on to the next server as a body-less request does.
async fn buffered<C: Transport>(
    x: &Exchange<'_, C>,
    p: &Plain,
) -> Result<(Answered, Vec<u8>), Error> {
    let mut reader = request_body(x, p).await?;
    let mut whole = x.head.clone();
    while !reader.is_done() {
        let step = reader.next().await.map_err(request_body_error)?;
        whole.extend_from_slice(step.data);
    }
    let leftover = reader.take_rest();
    drop(reader);
    let a = x.exchange_head_with(&whole).await?;
    Ok((a, leftover))
}

/// Connect, send the head and relay the request body, then read the
/// response head.
async fn send_with_body<C: Transport>(
    x: &Exchange<'_, C>,
    p: &Plain,
    answered_early: &Cell<bool>,
) -> Result<(Answered, Vec<u8>), Error> {
    let loc = x.location;
    let up = connect(
        &x.target,
        x.tls.as_ref(),
        &mut Vec::new(),
        loc.proxy_connect_timeout,
        false,
        // The body streams as it comes (nothing kept to send again): only
        // a failed connect goes on to the next server.
        &|e: &Error, tried: usize| {
            super::next_allows(&loc.next_upstream, e, tried, std::time::Duration::ZERO)
        },
    )
    .await?;
    up.stream
        .write_all(&x.head, loc.proxy_send_timeout)
        .await
        .map_err(Error::upstream_io)?;
    let mut reader = request_body(x, p).await?;
    let relayed = body::relay(
        &mut reader,
        &up.stream,
        loc.proxy_send_timeout,
        Some(answered_early),
    )
    .await;
    relayed.map_err(request_body_error)?;
    let leftover = reader.take_rest();
    drop(reader);
    let head = monoio::select! {
        biased;
        r = read_response_head(&up.stream, x.limits) => r?,
        _ = client_gone(x.client) => return Err(Kind::ClientGone.into()),
    };
    up.succeeded();
    Ok((Answered { up, head }, leftover))
}

/// Send the response head and body to the client; pool the upstream
/// connection when the exchange ended cleanly.
async fn respond<C: Transport>(
    x: &Exchange<'_, C>,
    p: &Plain,
    a: Answered,
    leftover: Vec<u8>,
    answered_early: bool,
) -> Result<Outcome, Error> {
    let loc = x.location;
    let Answered { up, head } = a;
    let upstream = up.addr.clone();
    let resp = &head.resp;
    if resp.status == 101 {
        return Err(Kind::BadResponse("101 to a request without Upgrade").into());
    }
    if p.intercept.contains(&resp.status) {
        let status = resp.status;
        // The exchange is over for the upstream: its body is not wanted,
        // so the connection cannot be reused.
        up.succeeded();
        drop(up);
        return Ok(Outcome {
            status,
            body_bytes: 0,
            keep_alive: false,
            leftover,
            upstream,
            intercepted: true,
        });
    }
    let framing = resp.framing(p.method_is_head).map_err(Kind::from)?;
    let kind = framing.body;
    let dechunk = p.client_http10 && kind == BodyKind::Chunked;
    let keep_alive =
        p.client_keep_alive && !x.kit.closing.get() && kind != BodyKind::UntilClose && !dechunk;
    let upstream_keeps = resp.keeps_alive() && kind != BodyKind::UntilClose;
    let declared = match kind {
        BodyKind::Length(n) => Some(n),
        _ => None,
    };
    let compress = p.gzip.is_some_and(|(via, auth)| {
        !p.method_is_head
            && !dechunk
            && gzip::response_takes(
                resp.status,
                |n| resp.header(n),
                declared,
                &loc.gzip,
                via,
                auth,
            )
    });
    if compress {
        let mut out = Vec::with_capacity(resp.head_len + 96);
        let relay = Relay {
            gzip: Some(loc.gzip.vary),
            ..x.relay()
        };
        rewrite::response_head_for(&mut out, resp, framing, keep_alive, false, &relay);
        let status = resp.status;
        let lim = BodyLimits {
            read_timeout: loc.proxy_read_timeout,
            max: 0,
            max_trailer: x.limits.max_len,
        };
        // Decoded (a chunked body's payload only): the gzip stream is
        // ringway's, framed by ringway.
        let mut reader = BodyReader::new(&up.stream, &x.kit.bufs, kind, resp.early(), lim, true);
        let mut enc = gzip::Chunked::new(loc.gzip.level);
        let mut sent = 0u64;
        let relayed: Result<(), Relayed> = async {
            while !reader.is_done() {
                let step = monoio::select! {
                    biased;
                    r = reader.next() => r.map_err(Relayed::Body)?,
                    _ = client_gone(x.client) => return Err(Relayed::ClientGone),
                };
                enc.push(step.data, &mut out);
                if !out.is_empty() {
                    x.client
                        .write_all(&out, loc.proxy_send_timeout)
                        .await
                        .map_err(|e| Relayed::Body(BodyError::Write(e)))?;
                    sent += out.len() as u64;
                    out.clear();
                }
            }
            enc.finish(&mut out);
            x.client
                .write_all(&out, loc.proxy_send_timeout)
                .await
                .map_err(|e| Relayed::Body(BodyError::Write(e)))?;
            sent += out.len() as u64;
            Ok(())
        }
        .await;
        return match relayed {
            Ok(()) => {
                let clean = reader.rest().is_empty() && !head.interim && !answered_early;
                drop(reader);
                release(up, upstream_keeps, clean, &head, answered_early);
                Ok(Outcome {
                    status,
                    body_bytes: sent,
                    keep_alive,
                    leftover,
                    upstream,
                    intercepted: false,
                })
            }
            Err(e) => {
                warn!(client = %x.peer, status, error = ?e, "compressed response cut short");
                Ok(Outcome {
                    status,
                    body_bytes: sent,
                    keep_alive: false,
                    leftover: Vec::new(),
                    upstream,
                    intercepted: false,
                })
            }
        };
    }
    let buffering = loc.proxy_buffering
        && !resp
            .header("x-accel-buffering")
            .is_some_and(|v| header_eq(v, "no"));
    let mut out = Vec::with_capacity(resp.head_len + 64);
    rewrite::response_head_for(&mut out, resp, framing, keep_alive, dechunk, &x.relay());
    let status = resp.status;
    let lim = BodyLimits {
        read_timeout: loc.proxy_read_timeout,
        max: 0,
        max_trailer: x.limits.max_len,
    };
    let mut reader = BodyReader::new(&up.stream, &x.kit.bufs, kind, resp.early(), lim, dechunk);
    // What goes out with the head: the body bytes that came with it, or
    // with buffering, as much of the body as fits `proxy_buffers`.
    let read_ahead = async {
        if let Some(step) = reader.next_early().map_err(Relayed::Body)? {
            out.extend_from_slice(step.data);
        }
        while buffering && !reader.is_done() && out.len() < loc.proxy_buffers {
            let step = reader.next().await.map_err(Relayed::Body)?;
            out.extend_from_slice(step.data);
        }
        Ok::<(), Relayed>(())
    };
    let ahead = monoio::select! {
        biased;
        r = read_ahead => r,
        _ = client_gone(x.client) => Err(Relayed::ClientGone),
    };
    if let Err(e) = ahead {
        // Nothing was sent to the client yet: it gets a 502/504.
        return Err(match e {
            Relayed::Body(BodyError::Read(e)) => Error::upstream_io(e),
            Relayed::Body(BodyError::Framing(why)) => Kind::BadResponse(why).into(),
            Relayed::Body(_) => Kind::UpstreamIo.into(),
            Relayed::ClientGone => Kind::ClientGone.into(),
        });
    }
    let complete = reader.is_done();
    let clean = complete && reader.rest().is_empty() && !head.interim && !answered_early;
    let body_bytes = reader.total();
    if complete {
        // The upstream is done with before the client is written to.
        drop(reader);
        release(up, upstream_keeps, clean, &head, answered_early);
        x.client
            .write_all(&out, loc.proxy_send_timeout)
            .await
            .map_err(Error::client_io)?;
        return Ok(Outcome {
            status,
            body_bytes,
            keep_alive,
            leftover,
            upstream,
            intercepted: false,
        });
    }
    x.client
        .write_all(&out, loc.proxy_send_timeout)
        .await
        .map_err(Error::client_io)?;
    drop(out);
    let relayed = monoio::select! {
        biased;
        r = body::relay(&mut reader, x.client, loc.proxy_send_timeout, None) => r.map_err(Relayed::Body),
        _ = client_gone(x.client) => Err(Relayed::ClientGone),
    };
    match relayed {
        Ok(n) => {
            let clean = reader.rest().is_empty() && !head.interim && !answered_early;
            drop(reader);
            release(up, upstream_keeps, clean, &head, answered_early);
            Ok(Outcome {
                status,
                body_bytes: n,
                keep_alive,
                leftover,
                upstream,
                intercepted: false,
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
                upstream,
                intercepted: false,
            })
        }
    }
}

#[derive(Debug)]
enum Relayed {
    Body(BodyError),
    ClientGone,
}

/// Pool the upstream connection when its exchange ended cleanly: exactly
/// where the framing said, with no interim response, and a request body
/// the upstream had the chance to read in full.
fn release(
    up: super::Connected,
    upstream_keeps: bool,
    clean: bool,
    head: &super::ResponseHead,
    answered_early: bool,
) {
    if !(upstream_keeps && up.poolable()) {
        return;
    }
    if clean {
        up.keep();
    } else {
        debug!(
            upstream = %up.addr,
            interim = head.interim,
            answered_early,
            "upstream connection not reused"
        );
    }
}
