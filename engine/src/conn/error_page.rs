//! `error_page`: an answer with a status a page is set for becomes an
//! internal redirect to that page (a static file or a `return`, by URI or
//! `@name`), or a redirect to a URL — once per request, as nginx's
//! `recursive_error_pages off`. The page's answer goes out with the
//! original status unless the line says `=CODE` (that code) or `=` (the
//! page's own).

use std::time::Instant;

use ringway_config::{AccessRule, Action, ErrorPage, ErrorStatus, ErrorTarget, Server};
use tracing::warn;

use super::{Conn, Done, Next, Phase, Routed};
use crate::http::request::Request;
use crate::http::rewrite::InternalUri;
use crate::http::{path, reply};
use crate::route;
use crate::transport::Transport;

/// Where a page sends an answer.
pub(super) enum Page {
    /// Go on in this location (of the same server).
    Location {
        index: usize,
        uri: Option<InternalUri>,
        status: Option<u16>,
    },
    /// Answer with a redirect to a URL; `location`: the location whose
    /// `add_header` fields go on it (a `rewrite` redirect's).
    Redirect {
        status: u16,
        url: String,
        location: Option<usize>,
    },
}

/// A `rewrite` line's redirect, for `Phase::Redirect`.
pub struct Redirect {
    pub failed: Failed,
    pub status: u16,
    pub url: String,
    pub location: Option<usize>,
}

/// The pages that apply to a request: its location's, or the server's
/// when no location took it.
pub(super) fn pages(server: &Server, location: Option<usize>) -> &[ErrorPage] {
    match location {
        Some(l) => &server.locations[l].error_page,
        None => &server.error_page,
    }
}

/// The page for `status`, resolved: `None` when none is set, or its
/// target cannot take the request (no such location, a location that
/// proxies — ringway serves error pages from files and `return` only —,
/// or one whose access rules refuse the client); the first two are
/// logged, when a request meets them.
pub(super) fn page_for(
    server: &Server,
    pages: &[ErrorPage],
    status: u16,
    client: std::net::IpAddr,
) -> Option<Page> {
    match resolve(server, pages, status, client) {
        Ok(page) => page,
        Err((page, why)) => {
            warn!(status, page, "error_page: {why}; plain answer");
            None
        }
    }
}

/// Whether [`page_for`] has a page for `status`, without logging (the
/// statuses `proxy_intercept_errors` looks for, listed per request).
pub(super) fn has_page(
    server: &Server,
    pages: &[ErrorPage],
    status: u16,
    client: std::net::IpAddr,
) -> bool {
    matches!(resolve(server, pages, status, client), Ok(Some(_)))
}

/// [`page_for`]'s work: `Err` (the line, why) for a page set whose
/// target cannot take any request.
fn resolve(
    server: &Server,
    pages: &[ErrorPage],
    status: u16,
    client: std::net::IpAddr,
) -> Result<Option<Page>, (String, String)> {
    let Some(page) = pages.iter().find(|p| p.codes.contains(&status)) else {
        return Ok(None);
    };
    let answer = match page.status {
        ErrorStatus::Keep => Some(status),
        ErrorStatus::Set(c) => Some(c),
        ErrorStatus::Target => None,
    };
    let (m, uri) = match &page.target {
        ErrorTarget::Redirect(url) => {
            let status = answer
                .filter(|c| matches!(c, 301 | 302 | 303 | 307 | 308))
                .unwrap_or(302);
            return Ok(Some(Page::Redirect {
                status,
                url: url.clone(),
                location: None,
            }));
        }
        ErrorTarget::Named(name) => (route::find_named(server, name), None),
        ErrorTarget::Uri(u) => {
            let (p, args) = match u.split_once('?') {
                Some((p, a)) => (p, Some(a.to_string())),
                None => (u.as_str(), None),
            };
            let Ok(p) = path::resolve(p) else {
                return Err((page.to_line(), "its URI climbs above /".into()));
            };
            let p = p.into_owned();
            (
                route::find_location(server, &p),
                Some(InternalUri { path: p, args }),
            )
        }
    };
    let Some(m) = m else {
        return Err((page.to_line(), "no location takes its target".into()));
    };
    if matches!(m.location.action, Action::Proxy(_)) {
        return Err((
            page.to_line(),
            format!(
                "the target location `{}` proxies (ringway serves error pages from files and return only)",
                m.location.key
            ),
        ));
    }
    if !AccessRule::allows(&m.location.access, client) {
        return Ok(None);
    }
    Ok(Some(Page::Location {
        index: m.index,
        uri,
        status: answer,
    }))
}

/// What a redirected request needs from the request that failed.
pub struct Failed {
    pub req: Request,
    pub server: usize,
    pub started: Instant,
    pub keep_alive: bool,
}

impl From<Routed> for Failed {
    fn from(r: Routed) -> Failed {
        Failed {
            req: r.req,
            server: r.server,
            started: r.started,
            keep_alive: r.keep_alive,
        }
    }
}

impl<T: Transport> Conn<T> {
    /// Follow `page` for the request in `f`: the phase of the page's
    /// location, or the redirect answer.
    pub(super) async fn follow_page(&mut self, page: Page, f: Failed) -> Phase {
        match page {
            Page::Location { index, uri, status } => {
                let loc = &self.snap.config.servers[f.server].locations[index];
                let r = Routed {
                    req: f.req,
                    server: f.server,
                    location: index,
                    keep_alive: f.keep_alive,
                    started: f.started,
                    permit: None,
                    upgrade: Vec::new(),
                    uri,
                    error_page: true,
                    status,
                    captures: Vec::new(),
                    named: Vec::new(),
                    broke: false,
                };
                match loc.action {
                    Action::Return { .. } => Phase::Return(r),
                    _ => Phase::Static(r),
                }
            }
            Page::Redirect {
                status,
                url,
                location,
            } => {
                let server = &self.snap.config.servers[f.server];
                let keep_alive = f.keep_alive && f.req.body.is_empty();
                let body = format!("{status} {}\n", reply::reason(status));
                // A `rewrite` redirect carries its location's `add_header`
                // fields (nginx adds them to 301 and 302).
                let added = match location {
                    Some(l) => {
                        let name = super::first_name(server);
                        let vars = self.request_vars(&f.req, &[], &name);
                        crate::static_files::added_fields(&server.locations[l], &vars)
                    }
                    None => Vec::new(),
                };
                let mut fields: Vec<(&str, &[u8])> = vec![("Location", url.as_bytes())];
                fields.extend(crate::static_files::applicable(&added, status));
                let mut out = Vec::with_capacity(256);
                reply::full(
                    &mut out,
                    status,
                    &fields,
                    server.server_tokens,
                    "text/plain",
                    body.as_bytes(),
                    f.req.method() == "HEAD",
                    keep_alive,
                );
                let ok = self.io.write_all(&out, server.send_timeout).await.is_ok();
                let body_bytes = if f.req.method() == "HEAD" {
                    0
                } else {
                    body.len() as u64
                };
                let next = if ok && keep_alive {
                    Next::KeepAlive(f.req.rest())
                } else {
                    Next::Close
                };
                Phase::Finish(Box::new(Done {
                    server: Some(f.server),
                    started: f.started,
                    req: Some(f.req),
                    status,
                    body_bytes,
                    error: None,
                    next,
                    upstream: None,
                    location,
                    // A `rewrite` redirect is no error page.
                    error_page: location.is_none(),
                    uri: None,
                }))
            }
        }
    }
}
