//! nginx's rewrite module around the location search: the server's `set`
//! and `rewrite` lines run first (nginx's server rewrite phase), then the
//! location is searched for the (possibly new) URI and its own lines run;
//! a URI they change is searched for again (`last`, or no flag), at most
//! [`MAX_SEARCHES`] times, as nginx's `NGX_HTTP_MAX_URI_CHANGES`.
//!
//! Everything here is pure: the variables come in as a [`VarCtx`] and the
//! outcome says what the connection does next.

use ringway_config::{
    LocationMatch, Part, Rewrite, RewriteFlag, RewriteRules, Server, Template, Var,
};

use crate::http::path;
use crate::route::{self, Matched};
use crate::vars::{InternalUri, VarCtx};

/// nginx answers 500 on the 11th URI change of a request.
pub const MAX_SEARCHES: usize = 10;

/// What the rewrite lines and the search made of a request.
#[derive(Debug, Default)]
pub struct Search {
    /// The URI the lines changed the request to; `None`: unchanged.
    pub uri: Option<InternalUri>,
    /// `$1`..`$9` of the last regex that matched.
    pub captures: Vec<Option<String>>,
    /// The variables `set` and named captures made, in the order made
    /// (a later value of a name wins).
    pub named: Vec<(String, String)>,
    /// A location's `break` ended its lines: the new URI goes upstream
    /// whole (a `proxy_pass` URI part is not applied), as nginx.
    pub broke: bool,
}

pub enum Outcome<'c> {
    /// The location that takes the request (`None`: no location, 404).
    Found(Option<Matched<'c>>, Search),
    /// A `redirect`/`permanent` line (or an absolute replacement): answer
    /// `status` with this `Location`; the location whose line it was.
    Redirect {
        status: u16,
        to: Vec<u8>,
        location: Option<usize>,
    },
    /// More than [`MAX_SEARCHES`] new searches: 500.
    Cycle,
    /// A rewrite made a URI that climbs above the root: 400.
    BadUri,
}

/// How a level's lines ended.
enum End {
    /// All lines ran; `changed`: one of them changed the URI.
    Done {
        changed: bool,
    },
    Last,
    Break,
    Redirect(u16, Vec<u8>),
    BadUri,
}

/// Run the server's lines, search the location, run its lines, and search
/// again while they change the URI. `base` gives every other variable.
pub fn search<'c>(server: &'c Server, base: &VarCtx<'_>) -> Outcome<'c> {
    let mut s = Search::default();
    if let Err(stop) = level(&server.rewrites, base, &mut s, None) {
        return stop.into();
    }
    for _ in 0..=MAX_SEARCHES {
        let path = current_path(base, &s);
        // An `internal` location takes no URI a client sent; one a
        // rewrite made, it does (nginx's internal redirect).
        let changed = s.uri.is_some();
        let Some(m) =
            route::find_location(server, path).filter(|m| changed || !m.location.internal)
        else {
            return Outcome::Found(None, s);
        };
        if let LocationMatch::Regex { regex, .. } = &m.location.matcher {
            if let Some(c) = captures(regex, path) {
                c.take(&mut s);
            }
        }
        if m.location.rewrites.is_empty() {
            return Outcome::Found(Some(m), s);
        }
        match level(&m.location.rewrites, base, &mut s, Some(m.index)) {
            Err(stop) => return stop.into(),
            Ok(End::Break) => {
                s.broke = true;
                return Outcome::Found(Some(m), s);
            }
            Ok(End::Done { changed: false }) => return Outcome::Found(Some(m), s),
            Ok(_) => {}
        }
    }
    Outcome::Cycle
}

/// A level's lines run; `Err` when they answer the request at once.
fn level(
    rules: &RewriteRules,
    base: &VarCtx<'_>,
    s: &mut Search,
    location: Option<usize>,
) -> Result<End, Stop> {
    match run(rules, base, s) {
        End::Redirect(status, to) => Err(Stop::Redirect(status, to, location)),
        End::BadUri => Err(Stop::BadUri),
        end => Ok(end),
    }
}

/// Lines that answer at once: a redirect (by a line of this location's,
/// `None` for the server's), or a URI above the root.
enum Stop {
    Redirect(u16, Vec<u8>, Option<usize>),
    BadUri,
}

impl From<Stop> for Outcome<'_> {
    fn from(stop: Stop) -> Self {
        match stop {
            Stop::Redirect(status, to, location) => Outcome::Redirect {
                status,
                to,
                location,
            },
            Stop::BadUri => Outcome::BadUri,
        }
    }
}

/// `$uri` as the lines have left it.
fn current_path<'a>(base: &VarCtx<'a>, s: &'a Search) -> &'a str {
    s.uri
        .as_ref()
        .map_or_else(|| base.req.norm_path(), |u| u.path.as_str())
}

/// One level's lines: its `set` lines, then its `rewrite` lines.
fn run(rules: &RewriteRules, base: &VarCtx<'_>, s: &mut Search) -> End {
    for set in &rules.set {
        let value = render(base, s, &set.value);
        s.named.push((
            set.name.clone(),
            String::from_utf8_lossy(&value).into_owned(),
        ));
    }
    let mut changed = false;
    for rw in &rules.rewrite {
        let Some(c) = captures(&rw.regex, current_path(base, s)) else {
            continue;
        };
        c.take(s);
        let (new_path, new_args, drop_args) = replacement(rw, base, s);
        let old_args = {
            let v = vars(base, s);
            v.args().map(str::to_string)
        };
        // The request's query goes after the new one (`&`), unless the
        // replacement ends with `?`.
        let args = match (new_args, old_args.filter(|a| !a.is_empty() && !drop_args)) {
            (Some(n), Some(o)) => Some(format!("{n}&{o}")),
            (Some(n), None) => Some(n),
            (None, o) if drop_args => Some(o.unwrap_or_default()),
            (None, o) => o,
        };
        if matches!(rw.flag, RewriteFlag::Redirect | RewriteFlag::Permanent) {
            let status = if rw.flag == RewriteFlag::Permanent {
                301
            } else {
                302
            };
            let mut to = String::new();
            path::escape_args(&mut to, &new_path);
            if let Some(a) = args.as_deref().filter(|a| !a.is_empty()) {
                to.push('?');
                path::escape_args(&mut to, a);
            }
            return End::Redirect(status, to.into_bytes());
        }
        let new_path = if new_path.starts_with('/') {
            new_path
        } else {
            format!("/{new_path}")
        };
        let Ok(resolved) = path::resolve(&new_path) else {
            return End::BadUri;
        };
        s.uri = Some(InternalUri {
            path: resolved.into_owned(),
            args,
        });
        changed = true;
        match rw.flag {
            RewriteFlag::Last => return End::Last,
            RewriteFlag::Break => return End::Break,
            _ => {}
        }
    }
    End::Done { changed }
}

/// `$1`..`$9` and the named captures of a regex that matched.
struct Captured {
    numbered: Vec<Option<String>>,
    named: Vec<(String, String)>,
}

impl Captured {
    /// They replace the earlier captures; named ones are set as variables.
    fn take(self, s: &mut Search) {
        s.captures = self.numbered;
        s.named.extend(self.named);
    }
}

fn captures(regex: &regex::Regex, path: &str) -> Option<Captured> {
    let c = regex.captures(path)?;
    let numbered = c
        .iter()
        .map(|m| m.map(|m| m.as_str().to_string()))
        .collect();
    let named = regex
        .capture_names()
        .enumerate()
        .filter_map(|(i, name)| {
            let v = c.get(i).map_or("", |m| m.as_str());
            Some((name?.to_string(), v.to_string()))
        })
        .collect();
    Some(Captured { numbered, named })
}

/// The variables as the lines have made them so far.
fn vars<'a>(base: &VarCtx<'a>, s: &'a Search) -> VarCtx<'a> {
    VarCtx {
        captures: &s.captures,
        uri: s.uri.as_ref().or(base.uri),
        named: &s.named,
        ..*base
    }
}

fn render(base: &VarCtx<'_>, s: &Search, t: &Template) -> Vec<u8> {
    vars(base, s).render_to_vec(t)
}

/// A line's replacement rendered: (path, the new query if its text has a
/// `?`, whether it ends with `?` — the request's query then dropped). The
/// `?` that starts the query is the first one written in the line, never
/// one a variable brings (a decoded `%3F` in a capture stays in the path).
fn replacement(rw: &Rewrite, base: &VarCtx<'_>, s: &Search) -> (String, Option<String>, bool) {
    let v = vars(base, s);
    let mut path = Vec::new();
    let mut args: Option<Vec<u8>> = None;
    for part in &rw.to.parts {
        match part {
            Part::Literal(l) if args.is_none() && l.contains('?') => {
                let (before, after) = l.split_once('?').unwrap_or((l, ""));
                path.extend_from_slice(before.as_bytes());
                args = Some(after.as_bytes().to_vec());
            }
            Part::Literal(l) => args
                .as_mut()
                .unwrap_or(&mut path)
                .extend_from_slice(l.as_bytes()),
            // Captures go in as decoded: the new URI is decoded text,
            // escaped when it is sent (upstream, or as a `Location`).
            Part::Var(Var::Capture(n)) => {
                if let Some(Some(c)) = s.captures.get(*n as usize) {
                    args.as_mut()
                        .unwrap_or(&mut path)
                        .extend_from_slice(c.as_bytes());
                }
            }
            Part::Var(_) => {
                let t = Template {
                    parts: vec![part.clone()],
                };
                v.render(&t, args.as_mut().unwrap_or(&mut path));
            }
        }
    }
    let drop_args = matches!(rw.to.parts.last(), Some(Part::Literal(l)) if l.ends_with('?'));
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    let args = args.map(text).filter(|a| !(drop_args && a.is_empty()));
    (text(path), args, drop_args)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::request;
    use crate::vars::Peer;

    fn config(server_extra: &str, locations: &str) -> ringway_config::Config {
        let text = format!("[servers.s]\nlisten = \"127.0.0.1:0\"\n{server_extra}\n{locations}");
        ringway_config::parse_str(&text, std::path::Path::new("t.toml")).unwrap()
    }

    /// (location key or "404"/"500"/"400"/"REDIRECT status to", uri, args)
    fn run_on(cfg: &ringway_config::Config, target: &str) -> String {
        let raw = format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n");
        let req = request::parse_bytes(raw.as_bytes(), 64, 8192)
            .unwrap()
            .unwrap();
        let base = VarCtx {
            req: &req,
            remote: "10.0.0.1:5000".parse().unwrap(),
            peer: Peer::direct("10.0.0.1:5000".parse().unwrap()),
            local: "127.0.0.1:80".parse().unwrap(),
            server_name: "",
            tls: None,
            proxy_host: "",
            captures: &[],
            uri: None,
            named: &[],
        };
        let server = &cfg.servers[0];
        let show = |s: &Search| match &s.uri {
            None => String::new(),
            Some(u) => format!(" {}?{}", u.path, u.args.as_deref().unwrap_or("-")),
        };
        match search(server, &base) {
            Outcome::Found(None, s) => format!("404{}", show(&s)),
            Outcome::Found(Some(m), s) => {
                let named: Vec<String> = s.named.iter().map(|(n, v)| format!("{n}={v}")).collect();
                format!(
                    "{}{}{}{}",
                    m.location.key,
                    show(&s),
                    if s.broke { " break" } else { "" },
                    if named.is_empty() {
                        String::new()
                    } else {
                        format!(" [{}]", named.join(","))
                    }
                )
            }
            Outcome::Redirect { status, to, .. } => {
                format!("{status} {}", String::from_utf8(to).unwrap())
            }
            Outcome::Cycle => "500".into(),
            Outcome::BadUri => "400".into(),
        }
    }

    #[test]
    fn flags_and_queries() {
        let cfg = config(
            "rewrite = ['^/srv/(.*)$ /one/$1']",
            r#"
[servers.s.locations."/one/"]
rewrite = ['^/one/(.*)$ /new/$1 break']
proxy_pass = "http://127.0.0.1:9/two/"
[servers.s.locations."/lastp/"]
rewrite = ['^/lastp/(.*)$ /dest/$1?a=b last']
[servers.s.locations."/dest/"]
return = { status = 200 }
[servers.s.locations."/q/"]
rewrite = ['^/q/(.*)$ /new/$1? break']
return = { status = 200 }
[servers.s.locations."/r/"]
rewrite = ['^/r/(.*)$ /x/$1?z=1 redirect', '^ /never permanent']
[servers.s.locations."/p/"]
rewrite = ['^/p/(.*)$ http://h.example/$1']
[servers.s.locations."/loop/"]
rewrite = ['^/loop/(.*)$ /loop/$1 last']
[servers.s.locations."/chain/"]
rewrite = ['^/chain/a$ /chain/b', '^/chain/b$ /dest/c']
[servers.s.locations."/up/"]
rewrite = ['^/up/(.*)$ /../$1']
[servers.s.locations."= /secret"]
internal = true
return = { status = 200 }
[servers.s.locations."/in"]
rewrite = ['^ /secret last']
"#,
        );
        assert_eq!(run_on(&cfg, "/one/a?x=1"), "/one/ /new/a?x=1 break");
        assert_eq!(run_on(&cfg, "/srv/b?y=2"), "/one/ /new/b?y=2 break");
        assert_eq!(run_on(&cfg, "/lastp/c?q=1"), "/dest/ /dest/c?a=b&q=1");
        assert_eq!(run_on(&cfg, "/lastp/c"), "/dest/ /dest/c?a=b");
        assert_eq!(run_on(&cfg, "/q/d?q=1"), "/q/ /new/d? break");
        assert_eq!(run_on(&cfg, "/r/e?k=2"), "302 /x/e?z=1&k=2");
        assert_eq!(run_on(&cfg, "/p/f?k=2"), "302 http://h.example/f?k=2");
        assert_eq!(run_on(&cfg, "/loop/g"), "500");
        assert_eq!(run_on(&cfg, "/chain/a"), "/dest/ /dest/c?-");
        assert_eq!(run_on(&cfg, "/up/x"), "400");
        // A client cannot reach an internal location; a rewrite can.
        assert_eq!(run_on(&cfg, "/secret"), "404");
        assert_eq!(run_on(&cfg, "/in"), "= /secret /secret?-");
        // No line matches: the location as found, nothing changed.
        assert_eq!(run_on(&cfg, "/dest/z"), "/dest/");
    }

    #[test]
    fn captures_and_set() {
        let cfg = config(
            "set = ['$tier gold']",
            r#"
[servers.s.locations.'~ ^/cap/(?<room>[a-z]+)/(\d+)$']
set = ['$foo v-$room-$2-$tier']
rewrite = ['^ /z/$1 break']
proxy_pass = "http://127.0.0.1:9/c/$room/$foo/$1"
[servers.s.locations."/dec/"]
rewrite = ['^/dec/(.*)$ /d/$1 break']
return = { status = 200 }
"#,
        );
        assert_eq!(
            run_on(&cfg, "/cap/abc/42"),
            "~ ^/cap/(?<room>[a-z]+)/(\\d+)$ /z/?- break [tier=gold,room=abc,foo=v-abc-42-gold]"
        );
        // A decoded `?` from the path stays in the path.
        assert_eq!(
            run_on(&cfg, "/dec/a%3Fb?x=1"),
            "/dec/ /d/a?b?x=1 break [tier=gold]"
        );
    }
}
