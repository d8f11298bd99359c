//! Routing: which server answers a Host on a listen address, and which
//! location answers a path — nginx's rules.
//!
//! Server: exact `server_name`, then the longest `*.suffix` wildcard, then
//! the longest `prefix.*` wildcard, then the default server for the address
//! (the first one without names, else the first one listed).
//! Location: an exact `= /x` match wins at once; otherwise the longest
//! prefix is remembered; if it is `^~` it wins, else the regex locations are
//! tried in file order and the first match wins, else the longest prefix.

use ringway_config::{Config, Location, LocationMatch, Server, ServerName};

/// The servers bound to one listen address, as indices into
/// `Config::servers`, in file order.
#[derive(Debug, Clone)]
pub struct ServerGroup {
    pub servers: Vec<usize>,
}

impl ServerGroup {
    /// The server for `host` (lowercase, no port), or the default.
    pub fn select<'c>(&self, config: &'c Config, host: Option<&str>) -> &'c Server {
        &config.servers[self.select_index(config, host)]
    }

    /// `select`, as an index into `Config::servers`.
    pub fn select_index(&self, config: &Config, host: Option<&str>) -> usize {
        let servers = || self.servers.iter().map(|&i| (i, &config.servers[i]));
        if let Some(host) = host {
            if let Some((i, _)) = servers().find(|(_, s)| {
                s.server_names
                    .iter()
                    .any(|n| matches!(n, ServerName::Exact(e) if e == host))
            }) {
                return i;
            }
            let mut best: Option<(usize, usize)> = None;
            for (i, s) in servers() {
                for n in &s.server_names {
                    if let ServerName::WildcardStart(suffix) = n {
                        // "*.example.com" also matches "example.com" in nginx
                        // only with the ".example.com" form; keep it strict.
                        if host.ends_with(suffix.as_str())
                            && best.is_none_or(|(_, l)| suffix.len() > l)
                        {
                            best = Some((i, suffix.len()));
                        }
                    }
                }
            }
            if best.is_none() {
                for (i, s) in servers() {
                    for n in &s.server_names {
                        if let ServerName::WildcardEnd(prefix) = n {
                            if host.starts_with(prefix.as_str())
                                && best.is_none_or(|(_, l)| prefix.len() > l)
                            {
                                best = Some((i, prefix.len()));
                            }
                        }
                    }
                }
            }
            if let Some((i, _)) = best {
                return i;
            }
        }
        servers()
            .find(|(_, s)| s.server_names.is_empty())
            .map_or(self.servers[0], |(i, _)| i)
    }
}

/// A location chosen for a path, with the prefix it matched (for the
/// `proxy_pass` URI rewrite; `None` for regex matches).
pub struct Matched<'c> {
    pub location: &'c Location,
    /// The location's index in `Server::locations`.
    pub index: usize,
    pub prefix: Option<&'c str>,
}

/// The path prefix a location matched on, for the `proxy_pass` URI
/// rewrite and `alias` (`None` for regex locations).
pub fn matched_prefix(loc: &Location) -> Option<&str> {
    match &loc.matcher {
        LocationMatch::Exact(p) | LocationMatch::Prefix { path: p, .. } => Some(p),
        LocationMatch::Regex { .. } | LocationMatch::Named(_) => None,
    }
}

/// The named location `@name` (given without `@`): a `try_files`
/// fallback's target, never a URI's.
pub fn find_named<'c>(server: &'c Server, name: &str) -> Option<Matched<'c>> {
    server
        .locations
        .iter()
        .enumerate()
        .find(|(_, l)| matches!(&l.matcher, LocationMatch::Named(n) if n == name))
        .map(|(index, location)| Matched {
            location,
            index,
            prefix: None,
        })
}

pub fn find_location<'c>(server: &'c Server, path: &str) -> Option<Matched<'c>> {
    let found = |index: usize| {
        let location = &server.locations[index];
        Some(Matched {
            location,
            index,
            prefix: matched_prefix(location),
        })
    };
    let mut longest: Option<(usize, usize, bool)> = None;
    for (i, loc) in server.locations.iter().enumerate() {
        match &loc.matcher {
            LocationMatch::Exact(p) if p == path => return found(i),
            LocationMatch::Prefix { path: p, no_regex }
                if path.starts_with(p.as_str()) && longest.is_none_or(|(_, l, _)| p.len() > l) =>
            {
                longest = Some((i, p.len(), *no_regex));
            }
            _ => {}
        }
    }
    if let Some((i, _, true)) = longest {
        return found(i);
    }
    for (i, loc) in server.locations.iter().enumerate() {
        if let LocationMatch::Regex { regex, .. } = &loc.matcher {
            if regex.is_match(path) {
                return found(i);
            }
        }
    }
    longest.and_then(|(i, _, _)| found(i))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const CONF: &str = r#"
[servers.a]
listen = ["127.0.0.1:0"]
server_name = ["ws.example.com", "*.example.com"]
[servers.a.locations."= /health"]
return = { status = 200, body = "OK" }
[servers.a.locations."/"]
return = { status = 200, body = "root" }
[servers.a.locations."/ws/"]
proxy_pass = "http://127.0.0.1:3000"
[servers.a.locations."^~ /static/"]
return = { status = 200, body = "static" }
[servers.a.locations."~* \\.(png|jpg)$"]
return = { status = 200, body = "image" }

[servers.b]
listen = ["127.0.0.1:0"]
server_name = ["_"]
[servers.b.locations."/"]
return = { status = 200, body = "b" }

[servers.c]
listen = ["127.0.0.1:0"]
server_name = ["mail.*"]
[servers.c.locations."/"]
return = { status = 200, body = "c" }
"#;

    fn config() -> Config {
        ringway_config::parse_str(CONF, Path::new("test.toml")).unwrap()
    }

    #[test]
    fn server_selection() {
        let c = config();
        let g = ServerGroup {
            servers: vec![0, 1, 2],
        };
        assert_eq!(g.select(&c, Some("ws.example.com")).name, "a");
        assert_eq!(g.select(&c, Some("api.example.com")).name, "a");
        assert_eq!(g.select(&c, Some("mail.other.org")).name, "c");
        assert_eq!(g.select(&c, Some("unknown.org")).name, "b");
        assert_eq!(g.select(&c, None).name, "b");
        let only_named = ServerGroup {
            servers: vec![2, 0],
        };
        assert_eq!(
            only_named.select(&c, Some("x.org")).name,
            "c",
            "first listed is the default"
        );
    }

    #[test]
    fn location_selection() {
        let c = config();
        let s = &c.servers[0];
        let key = |p: &str| find_location(s, p).map(|m| m.location.key.clone());
        assert_eq!(key("/health").as_deref(), Some("= /health"));
        assert_eq!(key("/healthz").as_deref(), Some("/"));
        assert_eq!(key("/ws/chat").as_deref(), Some("/ws/"));
        assert_eq!(
            key("/ws/a.png").as_deref(),
            Some("~* \\.(png|jpg)$"),
            "regex beats plain prefix"
        );
        assert_eq!(
            key("/static/a.PNG").as_deref(),
            Some("^~ /static/"),
            "^~ beats regex"
        );
        assert_eq!(find_location(s, "/ws/x").unwrap().prefix, Some("/ws/"));
        assert!(find_location(s, "/x.jpg").unwrap().prefix.is_none());
        let b = &c.servers[1];
        assert!(find_location(b, "/anything").is_some());
    }
}
