//! Static files: `root`/`alias`, `index`, `try_files`, MIME types,
//! validators (ETag, Last-Modified → 304), single byte ranges (206/416),
//! HEAD, and sendfile(2) for the body (zero-copy, non-blocking, both
//! drivers).
//!
//! Paths are the request's normalised path (`http::path`: percent-decoded,
//! dot segments resolved, a path above the root already refused with 400);
//! a file whose real path (symlinks resolved) is outside the root is a
//! 404, never served.

use std::borrow::Cow;
use std::fs::{File, Metadata};
use std::io::{self, Write as _};
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ringway_config::{AccessRule, Action, Location, Server, StaticFiles, StaticRoot};
use tracing::{debug, warn};

use crate::http::date::push_date;
use crate::http::rewrite::{push_header, server_field, Added, InternalUri};
use crate::http::{gzip, path, reply};
use crate::route;
use crate::sys;
use crate::transport::{wait_writable, Transport};
use crate::vars::VarCtx;

/// Bodies up to this size go out in the same write as the head; larger
/// ones with sendfile(2).
const INLINE_BODY: u64 = 16 * 1024;
/// nginx's limit on internal redirects (try_files fallbacks) per request.
const MAX_REDIRECTS: usize = 10;

/// One static request, as `conn` hands it over.
pub struct StaticRequest<'a, T: Transport> {
    pub io: &'a T,
    pub server: &'a Server,
    pub vars: &'a VarCtx<'a>,
    pub method: &'a str,
    pub keep_alive: bool,
    /// Whether an `error_page` takes an answer with this status (then
    /// nothing is written: [`Served::page`]).
    pub intercept: &'a dyn Fn(u16) -> bool,
    /// The status a file goes out with (this is an error page); `None`:
    /// 200, 206 or 304 as the request asks.
    pub status: Option<u16>,
    /// The client takes gzip (`http::gzip::takes_encoding`): `gzip_static`
    /// may serve `FILE.gz`, and `gzip` (when on) compress what it sends.
    pub gzip: bool,
    /// The URI to serve when an internal redirect changed it (an
    /// `error_page` target); `None`: the request's normalised path.
    pub uri: Option<&'a str>,
}

/// What was sent, for the access log and the keep-alive decision.
pub struct Served {
    pub status: u16,
    pub body_bytes: u64,
    /// The answer went out whole and the connection may serve another request.
    pub reusable: bool,
    /// Nothing was written: an `error_page` takes `status`.
    pub page: bool,
}

/// Where a URI leads inside one static location.
enum Found {
    File {
        path: PathBuf,
        root: PathBuf,
    },
    /// A directory named without its trailing slash: 301 to `uri/`.
    Slash,
    Status(u16),
    /// A try_files fallback URI: route it again (an internal redirect).
    Internal(String),
}

/// What a static location did with a request.
pub enum Outcome {
    Served(Served),
    /// A `try_files` fallback leads to a location that is not static
    /// (a named `@proxy`, or a URI another location proxies or answers):
    /// the request goes on there, as nginx's internal redirect.
    Redirect {
        /// The location's index in the server.
        location: usize,
        /// The changed URI; `None` for a named location (the request's
        /// own URI stays, as nginx).
        uri: Option<InternalUri>,
    },
}

/// Serve a request that routed to a static location: `root`/`alias`,
/// `index`, `try_files` (whose fallback may lead elsewhere: [`Outcome`]),
/// conditional and range requests.
pub async fn serve<T: Transport>(
    r: &StaticRequest<'_, T>,
    location: &Location,
    prefix: Option<&str>,
) -> Outcome {
    let head_only = r.method == "HEAD";
    // The request's path was normalised when its head was parsed (a path
    // above the root was refused there with 400).
    let mut uri = r.uri.unwrap_or(r.vars.req.norm_path()).to_string();
    let (mut loc, mut prefix) = (location, prefix.map(str::to_string));
    for _ in 0..MAX_REDIRECTS {
        let Action::Static(sf) = &loc.action else {
            unreachable!("only static locations are served here");
        };
        let found = find(r, sf, prefix.as_deref(), &uri);
        // nginx's try_files runs for any method; its static handler then
        // takes GET and HEAD only.
        if r.method != "GET" && !head_only && !matches!(found, Found::Internal(_)) {
            debug!(
                method = r.method,
                "method not allowed on a static location (405)"
            );
            let allow: [(&str, &[u8]); 1] = [("Allow", b"GET, HEAD")];
            return Outcome::Served(answer(r, loc, 405, &allow, head_only).await);
        }
        let served = match found {
            Found::File { path, root } => send(r, loc, &path, &root, head_only).await,
            Found::Slash => {
                // The decoded path, escaped again for the Location field.
                let mut escaped = String::with_capacity(uri.len() + 8);
                path::escape_uri(&mut escaped, &uri);
                let mut to = format!("{escaped}/").into_bytes();
                if let Some(q) = r.vars.req.query() {
                    to.push(b'?');
                    to.extend_from_slice(q.as_bytes());
                }
                answer(r, loc, 301, &[("Location", &to)], head_only).await
            }
            Found::Status(s) => {
                debug!(uri, status = s, "static: not found");
                answer(r, loc, s, &[], head_only).await
            }
            Found::Internal(next) => {
                let (m, changed) = if let Some(name) = next.strip_prefix('@') {
                    (route::find_named(r.server, name), None)
                } else {
                    let (p, args) = match next.split_once('?') {
                        Some((p, a)) => (p, Some(a.to_string())),
                        None => (next.as_str(), None),
                    };
                    let Ok(p) = path::resolve(p).map(Cow::into_owned) else {
                        return Outcome::Served(answer(r, loc, 500, &[], head_only).await);
                    };
                    (
                        route::find_location(r.server, &p),
                        Some(InternalUri { path: p, args }),
                    )
                };
                let Some(m) = m else {
                    return Outcome::Served(answer(r, loc, 404, &[], head_only).await);
                };
                // nginx runs the access phase again after an internal
                // redirect: the new location's rules decide.
                if !AccessRule::allows(&m.location.access, r.vars.remote.ip()) {
                    warn!(client = %r.vars.remote, uri = %next, "access forbidden by rule");
                    return Outcome::Served(answer(r, m.location, 403, &[], head_only).await);
                }
                if !matches!(m.location.action, Action::Static(_)) {
                    return Outcome::Redirect {
                        location: m.index,
                        uri: changed,
                    };
                }
                if let Some(c) = changed {
                    uri = c.path;
                }
                loc = m.location;
                prefix = m.prefix.map(str::to_string);
                continue;
            }
        };
        return Outcome::Served(served);
    }
    warn!(uri, "too many internal redirects (500)");
    Outcome::Served(answer(r, loc, 500, &[], head_only).await)
}

fn root_dir(sf: &StaticFiles) -> &Path {
    match &sf.root {
        StaticRoot::Root(d) | StaticRoot::Alias(d) => d,
    }
}

/// The filesystem path of a normalised URI in this location; `base` is
/// the directory of `root`/`alias` ([`base_dir`]).
fn map(sf: &StaticFiles, base: &Path, prefix: Option<&str>, uri: &str) -> PathBuf {
    match &sf.root {
        StaticRoot::Root(_) => under(base, uri),
        // nginx: an alias with variables in a regex location is the file.
        StaticRoot::Alias(_) if sf.root_vars.is_some() && prefix.is_none() => base.to_path_buf(),
        StaticRoot::Alias(_) => {
            let rest = prefix.and_then(|p| uri.strip_prefix(p)).unwrap_or(uri);
            under(base, rest)
        }
    }
}

/// `root`/`alias` for this request: rendered when it has variables.
/// `None` when the rendered path has a dot segment or a control
/// character (a capture may not climb out of the fixed directory).
fn base_dir(r_vars: &VarCtx<'_>, sf: &StaticFiles) -> Option<PathBuf> {
    let Some(t) = &sf.root_vars else {
        return Some(root_dir(sf).to_path_buf());
    };
    let rendered = String::from_utf8(r_vars.render_to_vec(t)).ok()?;
    let bad = rendered.bytes().any(|b| b < 0x20 || b == 0x7f)
        || rendered.split('/').any(|seg| seg == ".." || seg == ".");
    (!bad).then(|| PathBuf::from(rendered))
}

/// The first index file that exists in `dir`.
fn index_in(sf: &StaticFiles, dir: &Path) -> Option<PathBuf> {
    sf.index
        .iter()
        .map(|i| dir.join(i))
        .find(|p| p.metadata().is_ok_and(|m| m.is_file()))
}

fn find<T: Transport>(
    r: &StaticRequest<'_, T>,
    sf: &StaticFiles,
    prefix: Option<&str>,
    uri: &str,
) -> Found {
    let root = root_dir(sf).to_path_buf();
    let Some(base) = base_dir(r.vars, sf) else {
        debug!(
            uri,
            "static: root or alias with variables made a path with a dot segment (404)"
        );
        return Found::Status(404);
    };
    if let Some((last, tries)) = sf.try_files.split_last() {
        for t in tries {
            let rendered = r.vars.render_with_uri(t, uri);
            let Some(cand) = std::str::from_utf8(&rendered)
                .ok()
                .and_then(|c| path::resolve(c).ok())
            else {
                continue;
            };
            let path = map(sf, &base, prefix, &cand);
            if cand.ends_with('/') {
                if path.is_dir() {
                    if let Some(path) = index_in(sf, &path) {
                        return Found::File { path, root };
                    }
                }
            } else if path.metadata().is_ok_and(|m| m.is_file()) {
                return Found::File { path, root };
            }
        }
        let last = r.vars.render_with_uri(last, uri);
        let last = String::from_utf8_lossy(&last).into_owned();
        return match last.strip_prefix('=') {
            Some(code) => Found::Status(code.trim().parse().unwrap_or(404)),
            None => Found::Internal(last),
        };
    }
    let path = map(sf, &base, prefix, uri);
    if uri.ends_with('/') {
        return match index_in(sf, &path) {
            Some(path) => Found::File { path, root },
            None if path.is_dir() => Found::Status(403),
            None => Found::Status(404),
        };
    }
    match path.metadata() {
        Ok(m) if m.is_file() => Found::File { path, root },
        Ok(m) if m.is_dir() => Found::Slash,
        _ => Found::Status(404),
    }
}

/// The location's `add_header` fields rendered for this request, and
/// its `expires` fields (which go where `add_header` without `always`
/// does). Which of them an answer takes depends on its status
/// ([`Added::applies`]).
pub fn added_fields(loc: &Location, vars: &VarCtx<'_>) -> Vec<Added> {
    let mut out: Vec<Added> = loc
        .add_header
        .iter()
        .map(|h| Added {
            name: h.name.clone(),
            value: vars.render_to_vec(&h.value),
            always: h.always,
        })
        .collect();
    out.extend(
        expires_fields(loc.expires)
            .into_iter()
            .map(|(name, value)| Added {
                name,
                value,
                always: false,
            }),
    );
    out
}

/// The added fields an answer with `status` takes, as `reply` wants them.
pub fn applicable(added: &[Added], status: u16) -> Vec<(&str, &[u8])> {
    added
        .iter()
        .filter(|a| a.applies(status))
        .map(|a| (a.name.as_str(), a.value.as_slice()))
        .collect()
}

/// A short plain-text answer (errors, redirects).
/// The location's added fields go where the status takes them.
async fn answer<T: Transport>(
    r: &StaticRequest<'_, T>,
    loc: &Location,
    status: u16,
    extra: &[(&str, &[u8])],
    head_only: bool,
) -> Served {
    if status >= 300 && (r.intercept)(status) {
        return Served {
            status,
            body_bytes: 0,
            reusable: false,
            page: true,
        };
    }
    let body = format!("{status} {}\n", reply::reason(status));
    let added = added_fields(loc, r.vars);
    let mut fields = extra.to_vec();
    fields.extend(applicable(&added, status));
    let mut out = Vec::with_capacity(256);
    reply::full(
        &mut out,
        status,
        &fields,
        r.server.server_tokens,
        "text/plain",
        body.as_bytes(),
        head_only,
        r.keep_alive,
    );
    let ok = r.io.write_all(&out, r.server.send_timeout).await.is_ok();
    Served {
        status,
        body_bytes: if head_only { 0 } else { body.len() as u64 },
        reusable: ok && r.keep_alive,
        page: false,
    }
}

/// A whole file compressed on the way (`gzip`): a chunked body, read and
/// compressed 64 KiB at a time. `out` holds the head so far, the fields
/// `head` wrote (its entity tag already weak).
#[allow(clippy::too_many_arguments)]
async fn send_gzipped<T: Transport>(
    r: &StaticRequest<'_, T>,
    file: &File,
    path: &Path,
    size: u64,
    mut out: Vec<u8>,
    status: u16,
    content_type: &str,
    g: &ringway_config::Gzip,
) -> Served {
    let _ = write!(
        out,
        "Content-Type: {content_type}\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n"
    );
    if g.vary {
        out.extend_from_slice(b"Vary: Accept-Encoding\r\n");
    }
    out.extend_from_slice(b"\r\n");
    let timeout = r.server.send_timeout;
    let mut enc = gzip::Chunked::new(g.level);
    let mut piece = vec![0u8; 64 * 1024];
    let mut at = 0u64;
    let mut sent = 0u64;
    let mut ok = true;
    while at < size {
        let want = (size - at).min(piece.len() as u64) as usize;
        if let Err(e) = file.read_exact_at(&mut piece[..want], at) {
            warn!(path = %path.display(), error = %e, "static: read failed while compressing");
            ok = false;
            break;
        }
        at += want as u64;
        enc.push(&piece[..want], &mut out);
        if !out.is_empty() {
            if r.io.write_all(&out, timeout).await.is_err() {
                ok = false;
                break;
            }
            sent += out.len() as u64;
            out.clear();
        }
    }
    if ok {
        enc.finish(&mut out);
        ok = r.io.write_all(&out, timeout).await.is_ok();
        sent += out.len() as u64;
    }
    Served {
        status,
        body_bytes: sent,
        reusable: ok && r.keep_alive,
        page: false,
    }
}

/// Whether the client's validators match (RFC 9110 §13.1.2, §13.1.3):
/// If-None-Match wins over If-Modified-Since — when there is an entity
/// tag (`etag`); without one it is not looked at (nginx with `etag off`).
fn not_modified<T: Transport>(
    r: &StaticRequest<'_, T>,
    tag: Option<&str>,
    mtime: SystemTime,
) -> bool {
    let req = r.vars.req;
    if let (Some(inm), Some(tag)) = (req.header("if-none-match"), tag) {
        return String::from_utf8_lossy(inm)
            .split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == "*" || t == tag);
    }
    match req.header("if-modified-since").and_then(parse_http_date) {
        Some(since) => secs(mtime) <= secs(since),
        None => false,
    }
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

async fn send<T: Transport>(
    r: &StaticRequest<'_, T>,
    loc: &Location,
    path: &Path,
    root: &Path,
    head_only: bool,
) -> Served {
    // `gzip_static`: FILE.gz, when there is one, for a client that takes
    // gzip (its type still FILE's).
    let typed = path;
    let gz_path = (loc.gzip.static_files && r.gzip && r.status.is_none())
        .then(|| {
            let mut p = path.as_os_str().to_owned();
            p.push(".gz");
            PathBuf::from(p)
        })
        .filter(|p| p.metadata().is_ok_and(|m| m.is_file()));
    let encoded = gz_path.is_some();
    let path = gz_path.as_deref().unwrap_or(path);
    let opened = File::open(path).and_then(|f| f.metadata().map(|m| (f, m)));
    let (file, meta): (File, Metadata) = match opened {
        Ok((f, m)) if m.is_file() => (f, m),
        Ok(_) => return answer(r, loc, 404, &[], head_only).await,
        Err(e) => {
            let status = if e.kind() == io::ErrorKind::PermissionDenied {
                403
            } else {
                404
            };
            debug!(path = %path.display(), error = %e, "static: cannot open");
            return answer(r, loc, status, &[], head_only).await;
        }
    };
    if !contained(root, &file, path) {
        warn!(client = %r.vars.remote, path = %path.display(), root = %root.display(), "file resolves outside the root (404)");
        return answer(r, loc, 404, &[], head_only).await;
    }
    let size = meta.len();
    let mtime = meta.modified().unwrap_or(UNIX_EPOCH);
    let tag = loc.etag.then(|| etag(mtime, size));
    let last_modified = http_date(mtime);
    let added = added_fields(loc, r.vars);

    let mut out = Vec::with_capacity(512);
    // `compressed`: the body goes gzipped, its entity tag weak.
    let head = |out: &mut Vec<u8>, status: u16, compressed: bool| {
        let _ = write!(out, "HTTP/1.1 {status} {}\r\n", reply::reason(status));
        out.extend_from_slice(server_field(r.server.server_tokens));
        push_date(out);
        push_header(out, "Last-Modified", last_modified.as_bytes());
        match &tag {
            Some(tag) if compressed => push_header(out, "ETag", &gzip::weak_etag(tag.as_bytes())),
            Some(tag) => push_header(out, "ETag", tag.as_bytes()),
            None => {}
        }
        for (n, v) in applicable(&added, status) {
            push_header(out, n, v);
        }
        out.extend_from_slice(if r.keep_alive {
            b"Connection: keep-alive\r\n"
        } else {
            b"Connection: close\r\n"
        });
    };

    // An error page is the whole file with the page's status: no
    // validators or ranges (nginx answers them for a 200 only).
    if r.status.is_none() && not_modified(r, tag.as_deref(), mtime) {
        head(&mut out, 304, false);
        out.extend_from_slice(b"\r\n");
        let ok = r.io.write_all(&out, r.server.send_timeout).await.is_ok();
        return Served {
            status: 304,
            body_bytes: 0,
            reusable: ok && r.keep_alive,
            page: false,
        };
    }

    let req = r.vars.req;
    // If-Range: a range only while the representation is unchanged.
    let range_ok = req.header("if-range").is_none_or(|v| {
        let v = String::from_utf8_lossy(v);
        tag.as_deref() == Some(v.trim()) || v.trim() == last_modified
    });
    let range = if range_ok && r.status.is_none() {
        parse_range(req.header("range"), size)
    } else {
        Range::Full
    };
    let (status, start, len) = match range {
        Range::Full => (r.status.unwrap_or(200), 0, size),
        Range::Part(a, b) => (206, a, b - a + 1),
        Range::Unsatisfiable => {
            let cr = format!("bytes */{size}");
            let headers: [(&str, &[u8]); 1] = [("Content-Range", cr.as_bytes())];
            return answer(r, loc, 416, &headers, head_only).await;
        }
    };
    let content_type = known_type(typed)
        .or(loc.default_type.as_deref())
        .unwrap_or(UNKNOWN_TYPE);
    let g = &loc.gzip;
    let compress = !encoded
        && g.on
        && r.gzip
        && status == 200
        && r.status.is_none()
        && gzip::response_takes(
            200,
            |n| (n == "content-type").then_some(content_type.as_bytes()),
            Some(size),
            g,
            r.vars.req.header("via").is_some(),
            r.vars.req.header("authorization").is_some(),
        );
    if compress {
        head(&mut out, status, true);
        return send_gzipped(r, &file, path, size, out, status, content_type, g).await;
    }
    head(&mut out, status, false);
    let _ = write!(
        out,
        "Content-Type: {content_type}\r\nContent-Length: {len}\r\nAccept-Ranges: bytes\r\n",
    );
    if encoded {
        out.extend_from_slice(b"Content-Encoding: gzip\r\n");
        if g.vary {
            out.extend_from_slice(b"Vary: Accept-Encoding\r\n");
        }
    }
    if status == 206 {
        let _ = write!(
            out,
            "Content-Range: bytes {start}-{}/{size}\r\n",
            start + len - 1
        );
    }
    out.extend_from_slice(b"\r\n");

    let mut sent = 0;
    let ok = if head_only {
        r.io.write_all(&out, r.server.send_timeout).await.is_ok()
    } else if len <= INLINE_BODY {
        let at = out.len();
        out.resize(at + len as usize, 0);
        match file.read_exact_at(&mut out[at..], start) {
            Ok(()) => {
                sent = len;
                r.io.write_all(&out, r.server.send_timeout).await.is_ok()
            }
            Err(e) => {
                warn!(path = %path.display(), error = %e, "static: read failed (500)");
                return answer(r, loc, 500, &[], head_only).await;
            }
        }
    } else {
        let timeout = r.server.send_timeout;
        let res = match r.io.write_all(&out, timeout).await {
            Ok(()) => send_file(r.io, &file, start, len, timeout).await,
            Err(e) => Err(e),
        };
        match res {
            Ok(()) => {
                sent = len;
                true
            }
            Err(e) => {
                debug!(path = %path.display(), error = %e, "static: send ended early");
                false
            }
        }
    };
    Served {
        status,
        body_bytes: sent,
        reusable: ok && r.keep_alive,
        page: false,
    }
}

/// A single `Range: bytes=...` against a file of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Range {
    /// No usable Range header (absent, not bytes, or several ranges):
    /// serve the whole file.
    Full,
    /// Inclusive byte range.
    Part(u64, u64),
    /// 416.
    Unsatisfiable,
}

pub fn parse_range(header: Option<&[u8]>, size: u64) -> Range {
    let Some(h) = header.and_then(|h| std::str::from_utf8(h).ok()) else {
        return Range::Full;
    };
    let Some(spec) = h.trim().strip_prefix("bytes=") else {
        return Range::Full;
    };
    if spec.contains(',') {
        return Range::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Range::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    let parsed = match (a.is_empty(), b.is_empty()) {
        (true, false) => {
            // Suffix: the last n bytes.
            let Ok(n) = b.parse::<u64>() else {
                return Range::Full;
            };
            if n == 0 || size == 0 {
                return Range::Unsatisfiable;
            }
            (size.saturating_sub(n), size - 1)
        }
        (false, _) => {
            let Ok(start) = a.parse::<u64>() else {
                return Range::Full;
            };
            let end = if b.is_empty() {
                size.saturating_sub(1)
            } else {
                let Ok(e) = b.parse::<u64>() else {
                    return Range::Full;
                };
                if e < start {
                    return Range::Full;
                }
                e.min(size.saturating_sub(1))
            };
            if start >= size {
                return Range::Unsatisfiable;
            }
            (start, end)
        }
        (true, true) => return Range::Full,
    };
    Range::Part(parsed.0, parsed.1)
}

/// The location's `expires` fields for an answer made now (none when
/// off), to go with its `add_header` fields.
pub fn expires_fields(expires: Option<ringway_config::Expires>) -> Vec<(String, Vec<u8>)> {
    let Some(e) = expires else {
        return Vec::new();
    };
    let now = std::time::SystemTime::now();
    let secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (at, cache_control) = e.fields(secs);
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(at.max(0) as u64);
    vec![
        (
            crate::http::rewrite::EXPIRES_FIELDS[0].to_string(),
            http_date(at).into_bytes(),
        ),
        (
            crate::http::rewrite::EXPIRES_FIELDS[1].to_string(),
            cache_control.into_bytes(),
        ),
    ]
}

pub use crate::http::date::http_date;

/// nginx's ETag: "<mtime hex>-<size hex>".
pub fn etag(mtime: SystemTime, size: u64) -> String {
    let secs = mtime.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    format!("\"{secs:x}-{size:x}\"")
}

/// Parse an IMF-fixdate (the only form senders must use).
pub fn parse_http_date(v: &[u8]) -> Option<SystemTime> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let s = std::str::from_utf8(v).ok()?.trim();
    let mut it = s.split_whitespace().skip(1);
    let day: i64 = it.next()?.parse().ok()?;
    let mon = it.next()?;
    let month = MONTHS.iter().position(|m| *m == mon)? as i64 + 1;
    let year: i64 = it.next()?.parse().ok()?;
    let mut hms = it.next()?.split(':').map(|x| x.parse::<i64>().ok());
    let (h, m, sec) = (hms.next()??, hms.next()??, hms.next()??);
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + m * 60 + sec;
    (secs >= 0).then(|| UNIX_EPOCH + Duration::from_secs(secs as u64))
}

/// The type of a file whose extension is not in the table, when the
/// location sets no `default_type`.
const UNKNOWN_TYPE: &str = "application/octet-stream";

/// MIME type by extension (the common part of nginx's mime.types).
pub fn mime_type(path: &Path) -> &'static str {
    known_type(path).unwrap_or(UNKNOWN_TYPE)
}

/// [`mime_type`] for the extensions the table knows.
fn known_type(path: &Path) -> Option<&'static str> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let t = match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "application/javascript; charset=utf-8",
        "json" | "map" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        "xml" => "text/xml",
        "svg" | "svgz" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "ico" => "image/x-icon",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "otf" => "font/otf",
        "wasm" => "application/wasm",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "mp3" => "audio/mpeg",
        "ogg" => "audio/ogg",
        "wav" => "audio/wav",
        "csv" => "text/csv",
        "md" => "text/markdown; charset=utf-8",
        _ => return None,
    };
    Some(t)
}

/// Join a normalised URI path under a directory.
pub fn under(dir: &Path, uri_path: &str) -> PathBuf {
    dir.join(uri_path.trim_start_matches('/'))
}

/// Whether the opened `file` (at `path`) really lies under `root`'s real
/// path, symlinks resolved: nothing outside the root is served.
///
/// The file's real path is read from its descriptor
/// (`/proc/self/fd/N`: one readlink, whatever the depth; `canonicalize`
/// of the path where /proc is missing). The root's real path is kept per
/// worker with the root's device and inode: one stat confirms it still
/// names the same directory (a deploy that swaps a `current` symlink
/// changes the inode), and a file that seems outside is checked once
/// more against a fresh resolution before it is refused. Before, both
/// paths were canonicalised per request: a readlink per path component
/// (7 of a request's 13 system calls for `/tmp/st/www/f.bin`).
pub fn contained(root: &Path, file: &File, path: &Path) -> bool {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    let real = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .or_else(|_| path.canonicalize());
    let Ok(real) = real else {
        return false;
    };
    let Ok(meta) = std::fs::metadata(root) else {
        return false;
    };
    let id = (meta.dev(), meta.ino());
    REAL_ROOTS.with(|roots| {
        let mut roots = roots.borrow_mut();
        if let Some((known, canon)) = roots.get(root) {
            if *known == id && real.starts_with(canon) {
                return true;
            }
        }
        // Unknown, moved, or the file seems outside: resolve afresh.
        let Ok(canon) = root.canonicalize() else {
            return false;
        };
        let inside = real.starts_with(&canon);
        if roots.len() >= 1024 {
            roots.clear();
        }
        roots.insert(root.to_path_buf(), (id, canon));
        inside
    })
}

/// A root as configured → (its device and inode, its real path).
type RealRoots = std::collections::HashMap<PathBuf, ((u64, u64), PathBuf)>;

thread_local! {
    /// Per worker, bounded (cleared past 1,024 roots).
    static REAL_ROOTS: std::cell::RefCell<RealRoots> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// Send `len` bytes of `file` from `offset`: with sendfile(2) when the
/// transport is a plain socket (each wait for it bounded by
/// `send_timeout`), else read and written in pieces.
pub async fn send_file<T: Transport>(
    io: &T,
    file: &File,
    mut offset: u64,
    mut len: u64,
    send_timeout: Duration,
) -> io::Result<()> {
    let Some(socket) = io.socket() else {
        let mut buf = vec![0u8; len.min(INLINE_BODY) as usize];
        while len > 0 {
            let n = (len as usize).min(buf.len());
            file.read_exact_at(&mut buf[..n], offset)?;
            io.write_all(&buf[..n], send_timeout).await?;
            offset += n as u64;
            len -= n as u64;
        }
        return Ok(());
    };
    while len > 0 {
        let chunk = len.min(1 << 30) as usize;
        match sys::sendfile(sys::fd(socket), file.as_fd(), &mut offset, chunk) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()), // file shrank
            Ok(n) => len -= n as u64,
            Err(e) if sys::would_block(&e) => Box::pin(wait_writable(socket, send_timeout)).await?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 100), Range::Full);
        assert_eq!(parse_range(Some(b"bytes=0-9"), 100), Range::Part(0, 9));
        assert_eq!(parse_range(Some(b"bytes=90-"), 100), Range::Part(90, 99));
        assert_eq!(parse_range(Some(b"bytes=-10"), 100), Range::Part(90, 99));
        assert_eq!(parse_range(Some(b"bytes=50-500"), 100), Range::Part(50, 99));
        assert_eq!(parse_range(Some(b"bytes=100-"), 100), Range::Unsatisfiable);
        assert_eq!(parse_range(Some(b"bytes=0-1,5-6"), 100), Range::Full);
        assert_eq!(parse_range(Some(b"items=0-1"), 100), Range::Full);
        assert_eq!(parse_range(Some(b"bytes=5-1"), 100), Range::Full);
    }

    #[test]
    fn dates_round_trip() {
        let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(parse_http_date(b"Sun, 06 Nov 1994 08:49:37 GMT"), Some(t));
        let now = UNIX_EPOCH + Duration::from_secs(1_795_406_545);
        assert_eq!(parse_http_date(http_date(now).as_bytes()), Some(now));
        assert_eq!(parse_http_date(b"yesterday"), None);
    }

    #[test]
    fn etags_and_types() {
        assert_eq!(
            etag(UNIX_EPOCH + Duration::from_secs(0x5f5e100), 0x1234),
            "\"5f5e100-1234\""
        );
        assert_eq!(
            mime_type(Path::new("/a/index.HTML")),
            "text/html; charset=utf-8"
        );
        assert_eq!(
            mime_type(Path::new("/a/app.js")),
            "application/javascript; charset=utf-8"
        );
        assert_eq!(mime_type(Path::new("/a/blob")), "application/octet-stream");
    }
}
