//! Phase `Route`: pick the server (Host, nginx's `server_name` rules) and
//! the location (the normalised path, `crate::route`), and with the
//! location's action the next phase. No location is a 404.

use std::time::Instant;

use ringway_config::Action;

use super::{Conn, Done, Next, Phase, Routed};
use crate::error::{Error, Kind};
use crate::http::request::Request;
use crate::route;
use crate::transport::Transport;

impl<T: Transport> Conn<T> {
    pub(super) fn route(&mut self, req: Request) -> Phase {
        self.begin();
        let started = Instant::now();
        let config = &self.snap.config;
        let host = req.host();
        let server_index = self.listen.select_index(config, host.as_deref());
        let server = &config.servers[server_index];
        let keep_alive = req.wants_keep_alive() && !self.shared.shutting_down.is_raised();
        let Some(m) = route::find_location(server, req.norm_path()) else {
            // nginx answers 404 and keeps the connection when it can.
            let next = if keep_alive && req.body.is_empty() {
                Next::KeepAlive(req.rest())
            } else {
                Next::Close
            };
            return Phase::Finish(Box::new(Done {
                req: Some(req),
                started,
                status: 404,
                body_bytes: 0,
                error: Some(Error::new(Kind::NoLocation)),
                next,
            }));
        };
        let upgrade = req.is_upgrade();
        let r = Routed {
            req,
            server: server_index,
            location: m.index,
            keep_alive,
            started,
        };
        match &m.location.action {
            Action::Return { .. } => Phase::Return(r),
            Action::Static(_) => Phase::Static(r),
            Action::Proxy(_) if upgrade => Phase::Upgrade(r),
            Action::Proxy(_) => Phase::Proxy(r),
        }
    }
}
