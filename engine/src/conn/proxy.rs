//! Phases `Proxy` and `Upgrade`: pick the upstream (an address, or a
//! group by the index validation resolved, with the balancing key), write
//! the upstream head, and run the exchange (`proxy::http`) or the upgrade
//! handshake (`proxy::upgrade`), whose 101 hands the connection to a
//! tunnel.

use ringway_config::{Balance, Location, ProxyPass, ProxyTarget, Server};
use tracing::info;

use super::error_page::{self, Failed};
use super::first_name;
use super::{Conn, Done, Next, Phase, Routed};
use crate::error::{Error, Kind};
use crate::http::rewrite::{self, UpstreamConn};
use crate::http::BodyKind;
use crate::proxy::http::Plain;
use crate::proxy::upgrade::Outcome;
use crate::proxy::{self, Exchange, HeadLimits, OwnedKey, Target};
use crate::transport::Transport;
use crate::vars::VarCtx;

impl<T: Transport> Conn<T> {
    pub(super) async fn proxy(&mut self, r: Routed) -> Phase {
        let snap = self.snap.clone();
        let server = &snap.config.servers[r.server];
        let loc = &server.locations[r.location];
        if let BodyKind::Length(n) = r.req.body {
            if loc.client_max_body_size > 0 && n > loc.client_max_body_size {
                info!(client = %self.peer, length = n, limit = loc.client_max_body_size, "request body too large (413)");
                return failed(r, Kind::BodyTooLarge.into());
            }
        }
        let name = first_name(server);
        let x = self.exchange(&r, server, loc, &name);
        let plain = Plain {
            method_is_head: r.req.method() == "HEAD",
            body: r.req.body,
            expect_continue: r
                .req
                .header("expect")
                .is_some_and(|v| v.eq_ignore_ascii_case(b"100-continue")),
            client_keep_alive: r.keep_alive,
            client_http10: r.req.minor_version == 0,
            client_body_timeout: loc.client_body_timeout,
            gzip: crate::http::gzip::client_takes(&r.req, &loc.gzip, self.io.http2()).then(|| {
                (
                    r.req.header("via").is_some(),
                    r.req.header("authorization").is_some(),
                )
            }),
            intercept: if loc.proxy_intercept_errors && !r.error_page {
                let client = self.peer.ip();
                loc.error_page
                    .iter()
                    .flat_map(|p| p.codes.iter().copied())
                    .filter(|&c| error_page::has_page(server, &loc.error_page, c, client))
                    .collect()
            } else {
                Vec::new()
            },
        };
        let result = proxy::http::run(&x, &plain).await;
        drop(x);
        match result {
            Ok(o) if o.intercepted => {
                let page = error_page::page_for(server, &loc.error_page, o.status, self.peer.ip())
                    .expect("intercepted for a page");
                let f = Failed {
                    keep_alive: false,
                    ..r.into()
                };
                self.follow_page(page, f).await
            }
            Ok(o) => {
                let next = if o.keep_alive {
                    Next::KeepAlive(o.leftover)
                } else {
                    Next::Close
                };
                let mut phase = super::answer::done(r, o.status, o.body_bytes, next);
                if let Phase::Finish(done) = &mut phase {
                    done.upstream = Some(o.upstream);
                }
                phase
            }
            Err(e) => failed(r, e),
        }
    }

    pub(super) async fn upgrade(&mut self, r: Routed) -> Phase {
        if !r.req.body.is_empty() {
            // A WebSocket handshake has no body; one that declares a body
            // leaves no single reading of where the switched protocol
            // starts.
            return failed(r, Kind::BadRequest("upgrade request with a body").into());
        }
        let snap = self.snap.clone();
        let server = &snap.config.servers[r.server];
        let loc = &server.locations[r.location];
        let name = first_name(server);
        let x = self.exchange(&r, server, loc, &name);
        let result = proxy::upgrade::run(&x, &r.upgrade).await;
        drop(x);
        use crate::metrics::UpgradeResult;
        let outcome = match &result {
            Ok(Outcome::Tunnel(_)) => UpgradeResult::Switched,
            Ok(Outcome::Refused { .. }) => UpgradeResult::Refused,
            Err(_) => UpgradeResult::Failed,
        };
        crate::metrics::with(|m| {
            m.upgrade(&server.name, outcome);
            // The 101 is this request's answer: the tunnel skips `finish`,
            // where the other answers are counted.
            if outcome == UpgradeResult::Switched {
                m.http_request(&server.name, 101, r.started.elapsed());
            }
        });
        match result {
            Ok(Outcome::Tunnel(plan)) => Phase::Tunnel(Box::new((plan, r))),
            Ok(Outcome::Refused { status, body_bytes }) => {
                super::answer::done(r, status, body_bytes, Next::Close)
            }
            Err(e) => failed(r, e),
        }
    }

    /// The upstream exchange of a routed request: its target, its
    /// rewritten head, and the location's rendered `add_header` fields.
    fn exchange<'a>(
        &'a self,
        r: &'a Routed,
        server: &'a Server,
        loc: &'a Location,
        server_name: &'a str,
    ) -> Exchange<'a, T> {
        let ringway_config::Action::Proxy(pp) = &loc.action else {
            unreachable!("routed to Proxy by its action");
        };
        let vars = VarCtx {
            proxy_host: proxy_host(pp),
            ..self.vars(r, server_name)
        };
        let target = self.target(pp, &vars);
        let pooled = matches!(&target, Target::Group { group, .. } if group.pool.enabled());
        let conn = if !r.upgrade.is_empty() {
            UpstreamConn::Upgrade(&r.upgrade)
        } else if pooled {
            UpstreamConn::KeepAlive
        } else {
            UpstreamConn::Close
        };
        let uri = match &pp.uri_vars {
            // nginx: a URI with variables goes as rendered, whole.
            Some(t) => rewrite::rendered_uri(&vars.render_to_vec(t)),
            // After `rewrite ... break` the new URI goes whole, as nginx.
            None => rewrite::upstream_uri(
                &r.req,
                crate::route::matched_prefix(loc).filter(|_| !r.broke),
                pp.uri.as_deref(),
                r.uri.as_ref(),
            ),
        };
        let mut head = Vec::with_capacity(r.req.head_len + 256);
        rewrite::request_head(
            &mut head,
            &r.req,
            &uri,
            &loc.proxy_set_header,
            &vars,
            conn,
            server.underscores_in_headers,
        );
        Exchange {
            kit: &self.shared.kit,
            location: loc,
            client: &self.io,
            peer: self.peer,
            head,
            target,
            tls: pp
                .tls
                .then(|| {
                    self.snap
                        .tls
                        .upstreams
                        .get(&(r.server, r.location))
                        .cloned()
                })
                .flatten(),
            idempotent: proxy::idempotent(r.req.method()),
            early: r.req.early(),
            limits: HeadLimits {
                max_len: server.client_header_buffer_size,
                max_headers: server.max_headers,
                read_timeout: loc.proxy_read_timeout,
            },
            added: crate::static_files::added_fields(loc, &vars),
            server_tokens: server.server_tokens,
        }
    }

    /// Where a `proxy_pass` goes, with the request's balancing key.
    fn target(&self, pp: &ProxyPass, vars: &VarCtx<'_>) -> Target {
        match &pp.target {
            ProxyTarget::Address { addrs, .. } => Target::Addrs(addrs.clone()),
            ProxyTarget::Upstream {
                index, hash_key, ..
            } => {
                let group = self.snap.upstreams[*index].clone();
                let key = match group.balance {
                    Balance::IpHash => OwnedKey::Ip(self.peer.ip()),
                    Balance::Hash => hash_key
                        .as_ref()
                        .map_or(OwnedKey::None, |t| OwnedKey::Hash(vars.render_to_vec(t))),
                    _ => OwnedKey::None,
                };
                Target::Group { group, key }
            }
        }
    }
}

/// `$proxy_host`: the address as written, or the group's name (nginx).
fn proxy_host(pp: &ProxyPass) -> &str {
    match &pp.target {
        ProxyTarget::Address { host, .. } => host,
        ProxyTarget::Upstream { name, .. } => name,
    }
}

/// A routed request that failed before its answer began: `Finish` answers
/// it from the error and closes the connection.
fn failed(r: Routed, e: Error) -> Phase {
    Phase::Finish(Box::new(Done {
        server: Some(r.server),
        req: Some(r.req),
        started: r.started,
        status: e.status(),
        body_bytes: 0,
        error: Some(e),
        next: Next::Close,
        upstream: None,
        location: Some(r.location),
        error_page: r.error_page,
        uri: r.uri,
    }))
}
