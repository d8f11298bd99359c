//! Phase `Finish`: the one place a request ends. A failure that was not
//! answered yet is answered here, with the status its `error::Error`
//! picks (never for a client that went away: that is logged as 499), and
//! logged once with its side; then the access-log line is written, and the
//! connection reads its next request or closes.
//!
//! The access-log entry of a tunnel, written when the tunnel ends, is
//! built by the same [`log_request`].

use std::net::SocketAddr;
use std::time::Instant;

use tracing::{debug, info, warn};

use super::error_page::{self, Failed};
use super::{Conn, Done, Next, Phase};
use crate::access_log::{self, AccessLog, HeaderFn, Record, TunnelEnd};
use crate::error::{Error, Kind, Side};
use crate::http::reply;
use crate::transport::Transport;

impl<T: Transport> Conn<T> {
    pub(super) async fn finish(&mut self, mut done: Done) -> Phase {
        self.busy = None;
        if let Some(e) = done.error.take() {
            let (keep_alive, bytes) = match self.answer_error(&done, &e).await {
                Answer::Sent(keep_alive, bytes) => (keep_alive, bytes),
                Answer::Page(page, keep_alive) => {
                    let (Some(req), Some(server)) = (done.req.take(), done.server) else {
                        unreachable!("a page is looked up for a routed request only");
                    };
                    let f = Failed {
                        req,
                        server,
                        started: done.started,
                        keep_alive,
                    };
                    return self.follow_page(page, f).await;
                }
            };
            done.status = e.status();
            done.body_bytes = bytes;
            if !keep_alive {
                done.next = Next::Close;
            }
        }
        {
            let config = &self.snap.config;
            let server = done
                .server
                .unwrap_or_else(|| self.listen.select_index(config, None));
            let server = &config.servers[server];
            let took = done.started.elapsed();
            crate::metrics::with(|m| m.http_request(&server.name, done.status, took));
        }
        if let Some(req) = &done.req {
            if self.shared.access.enabled() {
                let tls = self.io.tls_info();
                let host = req.host();
                let path = done
                    .uri
                    .as_ref()
                    .map_or(req.norm_path(), |u| u.path.as_str());
                let args = done.uri.as_ref().and_then(|u| u.args.as_deref());
                self.shared.access.log(&Record {
                    realip_remote_addr: Some(self.addrs.tcp.ip()),
                    proxy_protocol_addr: self.addrs.proxy_protocol.map(|a| a.ip()),
                    method: req.method(),
                    target: req.target(),
                    uri: Some(path),
                    args,
                    protocol: if self.io.http2() {
                        "HTTP/2.0"
                    } else {
                        access_log::http1(req.minor_version)
                    },
                    status: done.status,
                    body_bytes_sent: done.body_bytes,
                    request_length: req.head_len as u64,
                    request_time: done.started.elapsed(),
                    host: host.as_deref(),
                    server_port: Some(self.local.port()),
                    scheme: if tls.is_some() { "https" } else { "http" },
                    header: &|name| req.header(name),
                    ssl_protocol: tls.map(|t| t.protocol),
                    ssl_server_name: tls.and_then(|t| t.server_name.as_deref()),
                    upstream_addr: done.upstream.as_ref(),
                    upstream_status: done.upstream.as_ref().map(|_| done.status),
                    ..Record::new(self.peer)
                });
            }
        }
        // A forwarded address holds for its request only (nginx's realip
        // restores the connection's on cleanup): what fails before the
        // next request is routed is the connection's.
        self.peer = super::connection_remote(&self.snap.config.real_ip, self.addrs);
        match done.next {
            Next::KeepAlive(rest) => {
                if self.shared.shutting_down.is_raised() && rest.is_empty() {
                    return Phase::Close;
                }
                self.buf = rest;
                Phase::ReadHead
            }
            Next::Close => Phase::Close,
        }
    }

    /// Log a failure and answer it when the client is still there.
    /// Returns whether the connection stays open and the bytes of the
    /// answer's body.
    async fn answer_error(&mut self, done: &Done, e: &Error) -> Answer {
        let status = e.status();
        let uri = done.req.as_ref().map_or("-", |r| r.target());
        match (e.side, e.kind) {
            (_, Kind::ClientGone) => {
                debug!(client = %self.peer, uri, error = %e, "client went away")
            }
            (_, Kind::NoLocation) => debug!(client = %self.peer, uri, "no location (404)"),
            // nginx logs it at `error`: a refusal an operator may look for.
            (_, Kind::Forbidden) => {
                warn!(client = %self.peer, uri, status, "access forbidden by rule")
            }
            // Route logged it ("limiting: over the zone's limit").
            (_, Kind::OverLimit(_)) => debug!(client = %self.peer, uri, status, "over a limit"),
            (Side::Client, _) => {
                info!(client = %self.peer, uri, status, reason = %e, "bad request")
            }
            _ => warn!(client = %self.peer, uri, status, error = %e, "proxy error"),
        }
        if !e.answerable() {
            return Answer::Sent(false, 0);
        }
        // Only a 404 and a limit's or an access rule's refusal keep the
        // connection (as nginx: they come before the request's body is
        // touched, and Route has said whether the connection may go on);
        // any other failure leaves the connection's state in doubt.
        let keep_alive = matches!(
            e.kind,
            Kind::NoLocation | Kind::OverLimit(_) | Kind::Forbidden
        ) && matches!(done.next, Next::KeepAlive(_));
        if let (Some(si), Some(_), false) = (done.server, &done.req, done.error_page) {
            let server = &self.snap.config.servers[si];
            let pages = error_page::pages(server, done.location);
            if !pages.is_empty() {
                if let Some(page) = error_page::page_for(server, pages, status, self.peer.ip()) {
                    return Answer::Page(page, keep_alive);
                }
            }
        }
        let head_only = done.req.as_ref().is_some_and(|r| r.method() == "HEAD");
        let snap = self.snap.clone();
        let server = match done.server {
            Some(i) => &snap.config.servers[i],
            None => self.listen.select(&snap.config, None),
        };
        // The routed location's `add_header ... always` fields (nginx
        // puts them on its error pages too).
        let added = match (done.location, &done.req) {
            (Some(l), Some(req)) => {
                let name = super::first_name(server);
                let vars = self.request_vars(req, &[], &name);
                crate::static_files::added_fields(&server.locations[l], &vars)
            }
            _ => Vec::new(),
        };
        let body = format!("{status} {}\n", reply::reason(status));
        // The one 405 of this path refuses a plain HTTP/2 CONNECT (ringway
        // is no forward proxy): RFC 9110 §15.5.6 wants the methods a
        // reverse proxy takes named.
        let mut extra: Vec<(&str, &[u8])> = match e.kind {
            Kind::Refused(405, _) => {
                vec![("Allow", b"GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH")]
            }
            _ => Vec::new(),
        };
        extra.extend(crate::static_files::applicable(&added, status));
        let mut out = Vec::with_capacity(160);
        reply::full(
            &mut out,
            status,
            &extra,
            server.server_tokens,
            "text/plain",
            body.as_bytes(),
            head_only,
            keep_alive,
        );
        let ok = self.io.write_all(&out, server.send_timeout).await.is_ok();
        let bytes = if head_only { 0 } else { body.len() as u64 };
        Answer::Sent(ok && keep_alive, bytes)
    }
}

/// How `answer_error` ended.
enum Answer {
    /// Answered (or not answerable): whether the connection stays open,
    /// and the bytes of the answer's body.
    Sent(bool, u64),
    /// An `error_page` takes it (nothing written yet); whether the
    /// connection may stay open after.
    Page(error_page::Page, bool),
}

/// The request-line fields of an access-log entry.
pub struct RequestLine<'a> {
    pub method: &'a str,
    pub target: &'a str,
    pub minor_version: u8,
    /// The request came on an HTTP/2 stream (`$server_protocol` HTTP/2.0).
    pub http2: bool,
    /// The request's headers (`$http_<name>`).
    pub header: &'a HeaderFn<'a>,
    /// `$uri`, `$args` as a rewrite changed them (`None`: the target's).
    pub uri: Option<&'a str>,
    pub args: Option<&'a str>,
}

/// The access-log line of one request or tunnel (`tunnel`: how a tunnel
/// ended).
#[allow(clippy::too_many_arguments)]
pub fn log_request<'a>(
    log: &AccessLog,
    remote: SocketAddr,
    line: &RequestLine<'a>,
    status: u16,
    body_bytes: u64,
    started: Instant,
    tunnel: Option<TunnelEnd>,
    upstream_addr: Option<&'a ringway_config::UpstreamAddr>,
) {
    if !log.enabled() {
        return;
    }
    log.log(&Record {
        method: line.method,
        target: line.target,
        uri: line.uri,
        args: line.args,
        protocol: if line.http2 {
            "HTTP/2.0"
        } else {
            access_log::http1(line.minor_version)
        },
        status,
        body_bytes_sent: body_bytes,
        request_time: started.elapsed(),
        header: line.header,
        tunnel,
        upstream_addr,
        ..Record::new(remote)
    });
}
