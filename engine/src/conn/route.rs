//! Phase `Route`: pick the server (Host, nginx's `server_name` rules) and
//! the location (the normalised path, `crate::route`), and with the
//! location's action the next phase. No location is a 404.

use std::time::Instant;

use ringway_config::{AccessRule, Action, Location};

use tracing::info;

use super::error_page::{Failed, Redirect};
use super::{Conn, Done, Next, Phase, Routed};
use crate::admission::{self, Admit};
use crate::error::{Error, Kind};
use crate::http::request::Request;
use crate::http::upgrade;
use crate::rewrites::{self, Outcome};
use crate::transport::Transport;

impl<T: Transport> Conn<T> {
    pub(super) fn route(&mut self, req: Request) -> Phase {
        self.begin();
        let started = Instant::now();
        self.peer = self.request_remote(&req);
        let config = &self.snap.config;
        let host = req.host();
        let server_index = self.listen.select_index(config, host.as_deref());
        let server = &config.servers[server_index];
        self.served = self.served.saturating_add(1);
        let keep_alive = req.wants_keep_alive()
            && !self.shared.shutting_down.is_raised()
            && self.served < server.keepalive_requests;
        let name = super::first_name(server);
        let outcome = {
            let base = self.request_vars(&req, &[], &name);
            rewrites::search(server, &base)
        };
        let (m, search) = match outcome {
            Outcome::Found(Some(m), search) => (m, search),
            Outcome::Found(None, _) => {
                // nginx answers 404 and keeps the connection when it can.
                return unrouted(req, server_index, started, keep_alive, Kind::NoLocation);
            }
            Outcome::Cycle => {
                let why = "rewrite or internal redirection cycle";
                return unrouted(req, server_index, started, false, Kind::Internal(why));
            }
            Outcome::BadUri => {
                let why = "a rewrite made a URI above the root";
                return unrouted(req, server_index, started, false, Kind::BadRequest(why));
            }
            Outcome::Redirect {
                status,
                to,
                location,
            } => {
                // nginx's rewrite phase comes before its limits and access
                // rules: the redirect goes out first.
                return Phase::Redirect(Box::new(Redirect {
                    failed: Failed {
                        req,
                        server: server_index,
                        started,
                        keep_alive,
                    },
                    status,
                    url: String::from_utf8_lossy(&to).into_owned(),
                    location,
                }));
            }
        };
        let loc = m.location;
        let upgrade = self.upgrade_allowed(&req, loc);
        let mut r = Routed {
            req,
            server: server_index,
            location: m.index,
            keep_alive,
            started,
            permit: None,
            upgrade,
            uri: search.uri,
            error_page: false,
            status: None,
            captures: search.captures,
            named: search.named,
            broke: search.broke,
        };
        if loc.limit_req.is_none() && loc.limit_conn.is_none() {
            return self.after_limits(r);
        }
        let verdict = {
            let vars = self.vars(&r, &name);
            admission::admit(&self.snap.limits, config, loc, &mut |t| {
                vars.render_to_vec(t)
            })
        };
        match verdict {
            Admit::Pass(permit) => {
                r.permit = permit;
                self.after_limits(r)
            }
            Admit::Delay(d, permit) => {
                r.permit = permit;
                if let Some(lr) = &loc.limit_req {
                    let zone = &config.limit_req_zones[lr.zone].name;
                    crate::metrics::with(|m| m.limit_delayed(zone));
                }
                Phase::Delay(r, d)
            }
            Admit::Refuse(status, kind, zone) => {
                info!(client = %self.peer, uri = r.req.target(), zone, kind = kind.label(), status, "limiting: over the zone's limit");
                crate::metrics::with(|m| m.limit_rejected(&zone, kind));
                refused(r, Kind::OverLimit(status))
            }
        }
    }

    /// For an upgrade request to a proxied location, the `Upgrade` value
    /// to forward: the protocols offered that the location's `upgrade`
    /// allows. Empty otherwise, and when it allows none of them: the
    /// request is then proxied as a plain one, without `Upgrade` (RFC
    /// 9110 §7.8 lets a server ignore it), so no tunnel opens to a
    /// protocol the location does not name — h2c above all.
    pub(super) fn upgrade_allowed(&self, req: &Request, loc: &Location) -> Vec<u8> {
        if !req.is_upgrade() || !matches!(loc.action, Action::Proxy(_)) {
            return Vec::new();
        }
        let forwarded = upgrade::select(req.headers_named("upgrade"), &loc.upgrade);
        if forwarded.is_empty() {
            let offered = String::from_utf8_lossy(req.header("upgrade").unwrap_or_default());
            info!(client = %self.peer, uri = req.target(), upgrade = %offered, location = %loc.key, "upgrade to a protocol this location does not allow: proxied as a plain request");
        }
        forwarded
    }

    /// The phase of a routed request's location, once its limits let it
    /// go: its access rules (nginx's access phase comes after its limits),
    /// then its action.
    pub(super) fn after_limits(&self, r: Routed) -> Phase {
        let loc = &self.snap.config.servers[r.server].locations[r.location];
        if !AccessRule::allows(&loc.access, self.peer.ip()) {
            return refused(r, Kind::Forbidden);
        }
        match &loc.action {
            Action::Return { .. } => Phase::Return(r),
            Action::Static(_) => Phase::Static(r),
            Action::Proxy(_) if !r.upgrade.is_empty() => Phase::Upgrade(r),
            Action::Proxy(_) => Phase::Proxy(r),
        }
    }
}

/// A request no location takes (404), or whose rewrite lines failed: the
/// connection is kept when `keep_alive` and the request allow it.
fn unrouted(req: Request, server: usize, started: Instant, keep_alive: bool, kind: Kind) -> Phase {
    let next = if keep_alive && req.body.is_empty() {
        Next::KeepAlive(req.rest())
    } else {
        Next::Close
    };
    Phase::Finish(Box::new(Done {
        server: Some(server),
        req: Some(req),
        started,
        status: kind.status(),
        body_bytes: 0,
        error: Some(Error::new(kind)),
        next,
        upstream: None,
        location: None,
        error_page: false,
        uri: None,
    }))
}

/// A routed request refused before its body is touched (a limit, an
/// access rule): answered with `kind`'s status, the connection kept when
/// the request allows it, as nginx does.
fn refused(r: Routed, kind: Kind) -> Phase {
    let next = if r.keep_alive && r.req.body.is_empty() {
        Next::KeepAlive(r.req.rest())
    } else {
        Next::Close
    };
    Phase::Finish(Box::new(Done {
        server: Some(r.server),
        started: r.started,
        req: Some(r.req),
        status: kind.status(),
        body_bytes: 0,
        error: Some(Error::new(kind)),
        next,
        upstream: None,
        location: Some(r.location),
        error_page: r.error_page,
        uri: r.uri,
    }))
}
