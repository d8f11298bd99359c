//! Phase `Tunnel`: after a 101 the connection leaves the request path for
//! a task of its own that keeps only what the relay needs (the two
//! streams, the guards, and the request line for the access log when one
//! is written), so an idle tunnel costs little. The client's bytes that
//! came behind the upgrade request are written upstream first; the tunnel
//! is logged once, when it ends.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use tracing::debug;

use super::finish::{log_request, RequestLine};
use super::{Conn, Routed};
use crate::proxy::tunnel;
use crate::proxy::upgrade::TunnelPlan;
use crate::shared::{BusyGuard, ConnGuard, Shared};
use crate::transport::Transport;

/// The request line of a tunnel, kept for its log entry.
struct Logged {
    method: String,
    target: String,
    minor_version: u8,
    referer: Option<Vec<u8>>,
    user_agent: Option<Vec<u8>>,
}

struct Tunnel<T: Transport> {
    shared: Rc<Shared>,
    client: T,
    peer: SocketAddr,
    plan: TunnelPlan,
    logged: Option<Logged>,
    started: Instant,
    _busy: Option<BusyGuard>,
    _guard: ConnGuard,
}

impl<T: Transport + 'static> Conn<T> {
    pub(super) fn into_tunnel(self, plan: TunnelPlan, r: Routed) {
        let logged = self.shared.access.enabled().then(|| Logged {
            method: r.req.method().to_string(),
            target: r.req.target().to_string(),
            minor_version: r.req.minor_version,
            referer: r.req.header("referer").map(<[u8]>::to_vec),
            user_agent: r.req.header("user-agent").map(<[u8]>::to_vec),
        });
        let t = Tunnel {
            shared: self.shared,
            client: self.io,
            peer: self.peer,
            plan,
            logged,
            started: r.started,
            _busy: self.busy,
            _guard: self.guard,
        };
        drop(r);
        monoio::spawn(t.run());
    }
}

impl<T: Transport> Tunnel<T> {
    async fn run(mut self) {
        let up = &self.plan.upstream;
        // Bytes the client sent behind its upgrade request go first.
        let early = std::mem::take(&mut self.plan.early);
        let early_len = early.len() as u64;
        let sent = if early.is_empty() {
            Ok(())
        } else {
            up.stream.write_all(&early, self.plan.send_timeout).await
        };
        drop(early);
        let stats = match sent {
            Ok(()) => {
                let mut s = tunnel::run(
                    &self.shared.kit,
                    &self.client,
                    &up.stream,
                    self.plan.idle_timeout,
                    self.plan.send_timeout,
                )
                .await;
                s.client_to_upstream += early_len;
                s
            }
            Err(_) => tunnel::Stats {
                end: tunnel::End::Error,
                client_to_upstream: 0,
                upstream_to_client: 0,
            },
        };
        debug!(
            client = %self.peer,
            upstream = %up.addr,
            end = ?stats.end,
            up_bytes = stats.client_to_upstream,
            down_bytes = stats.upstream_to_client,
            secs = self.started.elapsed().as_secs_f64(),
            "tunnel closed"
        );
        if let Some(l) = &self.logged {
            log_request(
                &self.shared.access,
                self.peer.ip(),
                &RequestLine {
                    method: &l.method,
                    target: &l.target,
                    minor_version: l.minor_version,
                    referer: l.referer.as_deref(),
                    user_agent: l.user_agent.as_deref(),
                },
                101,
                stats.upstream_to_client,
                self.started,
            );
        }
    }
}
