//! One plain HTTP/1.1 exchange through the proxy: connect, send the
//! rewritten head and stream the request body, read the response head,
//! stream the response body to the client as it arrives (RFC 9112).
//!
//! The upstream connection is used for this one exchange (`Connection:
//! close`); the client connection stays open when both the request and the
//! response framing allow it.

use std::net::SocketAddr;

use monoio::net::TcpStream;
use ringway_config::Location;
use tracing::warn;

use super::body::{BodyError, Relay};
use super::connect::connect_any;
use super::{upstream_io, ProxyError, Target};
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
    pub body: BodyKind,
    /// Bytes the client sent after its head (body, maybe more).
    pub early: Vec<u8>,
    /// Send "100 Continue" to the client before reading the body.
    pub expect_continue: bool,
    pub target: Target,
    pub client_keep_alive: bool,
    pub client_body_timeout: std::time::Duration,
    pub max_head: usize,
    pub max_headers: usize,
}

pub struct Outcome {
    pub status: u16,
    pub body_bytes: u64,
    /// Whether the client connection can carry another request.
    pub keep_alive: bool,
    /// Bytes after this request's body (the next pipelined request).
    pub leftover: Vec<u8>,
}

pub async fn run(x: Exchange<'_>) -> Result<Outcome, ProxyError> {
    let loc = x.location;
    if x.target.addrs.is_empty() {
        warn!(upstream = ?x.target.upstream, "no live upstream server");
        return Err(ProxyError::NoUpstream);
    }
    let (upstream, _) = connect_any(&x.target.addrs, loc.proxy_connect_timeout).await?;
    sys::write_all(&upstream, &x.head, loc.proxy_send_timeout)
        .await
        .map_err(upstream_io)?;

    if x.expect_continue && x.body != BodyKind::None && x.early.is_empty() {
        sys::write_all(
            x.client,
            b"HTTP/1.1 100 Continue\r\n\r\n",
            loc.proxy_send_timeout,
        )
        .await
        .map_err(ProxyError::Client)?;
    }
    let up = Relay {
        from: x.client,
        to: &upstream,
        read_timeout: x.client_body_timeout,
        send_timeout: loc.proxy_send_timeout,
        pool: &x.worker.bufs,
    };
    let leftover = match up.body(x.body, &x.early).await {
        Ok((rest, _)) => rest,
        Err(BodyError::Write(e)) => return Err(upstream_io(e)),
        Err(BodyError::Read(e)) => return Err(ProxyError::Client(e)),
        Err(BodyError::Framing(why)) => {
            return Err(ProxyError::Client(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                why,
            )))
        }
    };

    // Response head; interim 1xx answers (100, 103) are skipped.
    let mut buf = Vec::new();
    let (head_len, status, kind) = loop {
        match response::parse(&buf, x.max_headers, x.max_head) {
            Ok(Some(r)) if (100..200).contains(&r.status) => {
                let n = r.head_len;
                buf.drain(..n);
                continue;
            }
            Ok(Some(r)) => {
                let kind = r
                    .body_kind(if x.method_is_head { "HEAD" } else { "GET" })
                    .map_err(|_| ProxyError::BadResponse("bad response framing"))?;
                break (r.head_len, r.status, kind);
            }
            Ok(None) => {}
            Err(response::BadResponse::TooLarge) => {
                return Err(ProxyError::BadResponse("head too large"))
            }
            Err(response::BadResponse::Malformed(why)) => return Err(ProxyError::BadResponse(why)),
        }
        let read = monoio::time::timeout(
            loc.proxy_read_timeout,
            sys::read_append(&upstream, &mut buf, x.max_head),
        )
        .await;
        match read {
            Err(_) => return Err(ProxyError::UpstreamTimeout),
            Ok(Err(e)) => return Err(upstream_io(e)),
            Ok(Ok(0)) => {
                return Err(ProxyError::Upstream(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "upstream closed before a response head",
                )))
            }
            Ok(Ok(_)) => {}
        }
    };
    let keep_alive = x.client_keep_alive && kind != BodyKind::UntilClose;
    let mut out = Vec::with_capacity(head_len + 32);
    {
        let resp = match response::parse(&buf, x.max_headers, x.max_head) {
            Ok(Some(r)) => r,
            _ => return Err(ProxyError::BadResponse("invalid response head")),
        };
        rewrite::response_head(&mut out, &resp, keep_alive);
    }
    sys::write_all(x.client, &out, loc.proxy_send_timeout)
        .await
        .map_err(ProxyError::Client)?;
    let down = Relay {
        from: &upstream,
        to: x.client,
        read_timeout: loc.proxy_read_timeout,
        send_timeout: loc.proxy_send_timeout,
        pool: &x.worker.bufs,
    };
    match down.body(kind, &buf[head_len..]).await {
        Ok((_, n)) => Ok(Outcome {
            status,
            body_bytes: n,
            keep_alive,
            leftover,
        }),
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
