//! Phases `Return` and `Static`: answers ringway writes itself — a
//! `return` location (with `$variables` in its body or redirect), and
//! static files (`static_files`). A request body ringway does not read
//! means the connection cannot carry another request.

use ringway_config::Action;

use super::error_page;
use super::{first_name, Conn, Done, Next, Phase, Routed};
use crate::http::request::Request;
use crate::http::{gzip, reply};
use crate::static_files::{self, StaticRequest};
use crate::transport::Transport;
use crate::vars::VarCtx;

/// nginx's non-standard status for "close the connection, answer nothing".
const CLOSE_WITHOUT_ANSWER: u16 = 444;

impl<T: Transport> Conn<T> {
    /// The variables of a routed request (no upstream yet).
    pub(super) fn vars<'a>(&'a self, r: &'a Routed, server_name: &'a str) -> VarCtx<'a> {
        VarCtx {
            uri: r.uri.as_ref(),
            named: &r.named,
            ..self.request_vars(&r.req, &r.captures, server_name)
        }
    }

    /// The variables of a request on this connection.
    pub(super) fn request_vars<'a>(
        &'a self,
        req: &'a Request,
        captures: &'a [Option<String>],
        server_name: &'a str,
    ) -> VarCtx<'a> {
        VarCtx {
            req,
            remote: self.peer,
            peer: self.addrs,
            local: self.local,
            server_name,
            tls: self.io.tls_info(),
            proxy_host: "",
            captures,
            uri: None,
            named: &[],
        }
    }

    /// `return 444`: the connection closes with nothing written.
    pub(super) async fn answer_return(&mut self, r: Routed) -> Phase {
        let snap = self.snap.clone();
        let server = &snap.config.servers[r.server];
        let loc = &server.locations[r.location];
        let Action::Return {
            status,
            body,
            location,
        } = &loc.action
        else {
            unreachable!("routed to Return by its action");
        };
        // nginx: a bare `return CODE` (no text, no URL) goes through
        // `error_page`; so does ringway.
        if body.is_none() && location.is_none() && *status >= 300 && !r.error_page {
            let pages = error_page::pages(server, Some(r.location));
            if !pages.is_empty() {
                if let Some(page) = error_page::page_for(server, pages, *status, self.peer.ip()) {
                    return self.follow_page(page, r.into()).await;
                }
            }
        }
        // An error page answered by a `return`: with the page's status.
        let status = &r.status.unwrap_or(*status);
        if *status == CLOSE_WITHOUT_ANSWER {
            // nginx's 444: close without an answer (logged as 444, 0 bytes;
            // on HTTP/2 the stream is reset).
            return done(r, *status, 0, Next::Close);
        }
        let name = first_name(server);
        let vars = self.vars(&r, &name);
        let mut text = body
            .as_ref()
            .map(|t| vars.render_to_vec(t))
            .unwrap_or_default();
        let content_type = loc.default_type.as_deref().unwrap_or("text/plain");
        // `gzip` on a `return` body, compressed whole (it is small).
        let g = &loc.gzip;
        let compressed = !text.is_empty()
            && gzip::client_takes(&r.req, g, self.io.http2())
            && gzip::response_takes(
                *status,
                |n| (n == "content-type").then_some(content_type.as_bytes()),
                Some(text.len() as u64),
                g,
                r.req.header("via").is_some(),
                r.req.header("authorization").is_some(),
            );
        if compressed {
            text = gzip::compress(&text, g.level);
        }
        let to = location.as_ref().map(|t| vars.render_to_vec(t));
        let added = static_files::added_fields(loc, &vars);
        let mut extra: Vec<(&str, &[u8])> = Vec::new();
        if let Some(to) = &to {
            extra.push(("Location", to));
        }
        extra.extend(static_files::applicable(&added, *status));
        if compressed {
            extra.push(("Content-Encoding", b"gzip"));
            if g.vary {
                extra.push(("Vary", b"Accept-Encoding"));
            }
        }
        let keep_alive = r.keep_alive && r.req.body.is_empty();
        let head_only = r.req.method() == "HEAD";
        let mut out = Vec::with_capacity(160 + text.len());
        reply::full(
            &mut out,
            *status,
            &extra,
            server.server_tokens,
            content_type,
            &text,
            head_only,
            keep_alive,
        );
        let ok = self.io.write_all(&out, server.send_timeout).await.is_ok();
        let next = if ok && keep_alive {
            Next::KeepAlive(r.req.rest())
        } else {
            Next::Close
        };
        done(r, *status, text.len() as u64, next)
    }

    pub(super) async fn serve_static(&mut self, mut r: Routed) -> Phase {
        let snap = self.snap.clone();
        let server = &snap.config.servers[r.server];
        let loc = &server.locations[r.location];
        let name = first_name(server);
        let client = self.peer.ip();
        let pages = error_page::pages(server, Some(r.location));
        let redirected = r.error_page;
        let intercept = |status: u16| {
            !redirected
                && !pages.is_empty()
                && error_page::page_for(server, pages, status, client).is_some()
        };
        let outcome = {
            let vars = self.vars(&r, &name);
            let method = r.req.method();
            let s = StaticRequest {
                io: &self.io,
                server,
                vars: &vars,
                // nginx serves an error page to any method as a GET.
                method: if r.error_page && method != "HEAD" {
                    "GET"
                } else {
                    method
                },
                keep_alive: r.keep_alive && r.req.body.is_empty(),
                intercept: &intercept,
                status: r.status,
                gzip: crate::http::gzip::takes_encoding(&r.req, &loc.gzip, self.io.http2()),
                uri: r.uri.as_ref().map(|u| u.path.as_str()),
            };
            static_files::serve(&s, loc, crate::route::matched_prefix(loc)).await
        };
        let served = match outcome {
            static_files::Outcome::Served(s) if s.page => {
                let page = error_page::page_for(server, pages, s.status, client)
                    .expect("intercepted for a page");
                return self.follow_page(page, r.into()).await;
            }
            static_files::Outcome::Served(s) => s,
            static_files::Outcome::Redirect { location, uri } => {
                // The fallback's location takes the request: its upgrade
                // rules, access rules and action (a request body is still
                // unread).
                r.location = location;
                r.uri = uri;
                r.upgrade = self.upgrade_allowed(&r.req, &server.locations[location]);
                return self.after_limits(r);
            }
        };
        let next = if served.reusable {
            Next::KeepAlive(r.req.rest())
        } else {
            Next::Close
        };
        done(r, served.status, served.body_bytes, next)
    }
}

/// A request answered without failure.
pub(super) fn done(r: Routed, status: u16, body_bytes: u64, next: Next) -> Phase {
    Phase::Finish(Box::new(Done {
        server: Some(r.server),
        req: Some(r.req),
        started: r.started,
        status,
        body_bytes,
        error: None,
        next,
        upstream: None,
        location: Some(r.location),
        error_page: r.error_page,
        uri: r.uri,
    }))
}
