//! ringway.toml: parse (serde, unknown keys rejected) → validate → the
//! immutable [`Config`] the engine runs on. Pure: no sockets, no runtime;
//! the only I/O is reading the file and resolving upstream host names.
//!
//! The reference is `docs/CONFIG.md`. Every error names the file,
//! the line and the dotted key.

// A ConfigError carries its file, line and key by value; it is built at
// most once per load, so its size costs nothing that matters.
#![allow(clippy::result_large_err)]

pub mod cidr;
pub mod defaults;
mod error;
pub mod import;
pub mod keys;
mod locate;
pub mod log_format;
mod model;
mod raw;
mod render;
mod template;
mod units;
mod validate;

use std::path::Path;

pub use cidr::Cidr;
pub use error::{ConfigError, ErrorKind};
pub use locate::quote_key;
pub use log_format::{LogFormat, LogPart, LogVar};
pub use model::*;
pub use render::render;
pub use template::parse as parse_template;
pub use units::{parse_duration, parse_size};
pub use validate::is_tchar;

/// Read and validate a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let bytes = std::fs::read(path).map_err(|e| ConfigError {
        file: path.to_path_buf(),
        line: None,
        column: None,
        key: "(file)".into(),
        kind: ErrorKind::Read(e.to_string()),
    })?;
    let text = utf8(&bytes, path)?;
    parse_str(text, path)
}

/// The file as text; a byte that is not UTF-8 is named with its line and
/// column (TOML files are UTF-8).
fn utf8<'a>(bytes: &'a [u8], path: &Path) -> Result<&'a str, ConfigError> {
    std::str::from_utf8(bytes).map_err(|e| {
        let at = e.valid_up_to();
        // Everything before `at` is UTF-8, so it can be measured as text.
        let before = std::str::from_utf8(&bytes[..at]).expect("valid up to here");
        ConfigError {
            file: path.to_path_buf(),
            line: Some(locate::line_of(before, at)),
            column: Some(locate::column_of(before, at)),
            key: "(file)".into(),
            kind: ErrorKind::Syntax(format!(
                "byte 0x{:02x} is not UTF-8 (save the file as UTF-8)",
                bytes[at]
            )),
        }
    })
}

/// Validate configuration text; `path` names it in errors.
pub fn parse_str(text: &str, path: &Path) -> Result<Config, ConfigError> {
    validate::validate(text, path, Resolve::System)
}

/// How upstream host names are turned into addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolve {
    /// The system resolver (getaddrinfo), as at start and reload.
    System,
    /// No lookup: every name stands for 127.0.0.1. For fuzzing the loader,
    /// where a lookup per input would be slow and reach for the network.
    Loopback,
}

/// `parse_str` with a choice of resolver.
pub fn parse_str_with(text: &str, path: &Path, resolve: Resolve) -> Result<Config, ConfigError> {
    validate::validate(text, path, resolve)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        parse_str(text, Path::new("/etc/ringway/ringway.toml"))
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    /// The original contract's full example (shared/design/CONFIG.md),
    /// verbatim apart from the upstream hosts.
    pub(crate) const FULL: &str = r#"
[runtime]
workers = "auto"            # one pinned monoio runtime per core; or an integer
pin_cores = true
driver = "auto"
max_connections = 200000
shutdown_timeout = "30s"

[log]
level = "info"
access_log = "stdout"

[metrics]
listen = "127.0.0.1:9145"

[upstreams.websocket_servers]
balance = "ip_hash"
servers = [
  { addr = "127.0.0.1:3000" },
  { addr = "127.0.0.1:3001", weight = 2 },
  { addr = "127.0.0.1:3002", backup = true },
]
max_fails = 1
fail_timeout = "10s"
keepalive = 32

[servers.ws]
listen = ["0.0.0.0:80", "[::]:80"]
server_name = ["ws.example.com"]

[servers.ws.locations."= /health"]
return = { status = 200, body = "OK" }

[servers.ws.locations."/ws/"]
proxy_pass = "http://127.0.0.1:3000"
proxy_read_timeout = "3600s"
proxy_send_timeout = "3600s"
proxy_connect_timeout = "10s"
proxy_buffering = false
[servers.ws.locations."/ws/".proxy_set_header]
Host = "$host"
X-Real-IP = "$remote_addr"
X-Forwarded-For = "$proxy_add_x_forwarded_for"
X-Forwarded-Proto = "$scheme"

[servers.app]
listen = ["0.0.0.0:443"]
server_name = ["app.example.com"]
tls = { cert = "/etc/ringway/fullchain.pem", key = "/etc/ringway/privkey.pem" }
http2 = true

[servers.app.locations."/api/"]
proxy_pass = "http://127.0.0.1:4000"

[servers.app.locations."/socket.io/"]
proxy_pass = "http://websocket_servers"
proxy_read_timeout = "86400s"

[servers.app.locations."/"]
root = "/var/www/app"
try_files = ["$uri", "/index.html"]
"#;

    #[test]
    fn keys_a_location_never_reads_are_warned_about() {
        let c = parse(
            "[servers.a]\nlisten = [\"127.0.0.1:0\"]\n\
             [servers.a.locations.\"/r\"]\nreturn = { status = 204 }\nproxy_read_timeout = \"5s\"\ntry_files = [\"$uri\"]\n\
             [servers.a.locations.\"/p\"]\nproxy_pass = \"http://127.0.0.1:1\"\nproxy_read_timeout = \"5s\"\nindex = [\"a.html\"]\n\
             [servers.a.locations.\"/p\".proxy_set_header]\nX-A = \"1\"\n",
        )
        .unwrap();
        let w = c.warnings.join("\n");
        assert!(
            w.contains(":5: servers.a.locations.\"/r\".proxy_read_timeout: has no effect: this location does not proxy"),
            "{w}"
        );
        assert!(
            w.contains(":6: servers.a.locations.\"/r\".try_files: has no effect: this location answers with return"),
            "{w}"
        );
        assert!(
            w.contains(
                ":10: servers.a.locations.\"/p\".index: has no effect: this location proxies"
            ),
            "{w}"
        );
        // What a location reads is not warned about.
        assert_eq!(c.warnings.len(), 3, "{w}");
    }

    /// A connection zone has no rate: `rate` there is an unknown key that
    /// says where it belongs, and a typo is never offered `rate`.
    /// OpenSSL cipher strings as nginx users write them, read against the
    /// TLS 1.2 suites rustls has.
    #[test]
    fn cipher_strings() {
        let iana = |names: &[&str]| -> Vec<String> {
            names
                .iter()
                .map(|n| {
                    TLS12_SUITES
                        .iter()
                        .find(|s| s.0 == *n)
                        .unwrap()
                        .1
                        .to_string()
                })
                .collect()
        };
        // nginx's default: all six, no warning.
        let (all, w) = map_ciphers("HIGH:!aNULL:!MD5").unwrap();
        assert_eq!(all.len(), 6);
        assert!(w.is_empty(), "{w:?}");
        // Mozilla's intermediate list: its DHE suites are not rustls's.
        let (list, w) = map_ciphers(
            "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:\
             ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:\
             DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384",
        )
        .unwrap();
        assert_eq!(
            list,
            iana(&[
                "ECDHE-ECDSA-AES128-GCM-SHA256",
                "ECDHE-RSA-AES128-GCM-SHA256",
                "ECDHE-ECDSA-AES256-GCM-SHA384",
                "ECDHE-RSA-AES256-GCM-SHA384",
                "ECDHE-ECDSA-CHACHA20-POLY1305",
                "ECDHE-RSA-CHACHA20-POLY1305",
            ])
        );
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("DHE-RSA-AES128-GCM-SHA256"), "{w:?}");
        // Classes joined with +, and exclusions.
        let (list, _) = map_ciphers("EECDH+AESGCM:EDH+AESGCM:!ECDSA").unwrap();
        assert_eq!(
            list,
            iana(&["ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-AES128-GCM-SHA256"])
        );
        assert!(map_ciphers("DHE-RSA-AES256-SHA:AES128-SHA").is_err());
        assert!(map_ciphers("!ALL").is_err());
    }

    #[test]
    fn variables_in_proxy_pass() {
        let c = parse("[servers.s]\nlisten = \"8080\"\n[servers.s.locations.'~ ^/r/([a-z]+)$']\nproxy_pass = \"http://127.0.0.1:9/x?room=$1&$args\"\n").unwrap();
        let Action::Proxy(pp) = &c.servers[0].locations[0].action else {
            panic!()
        };
        let t = pp.uri_vars.as_ref().expect("a template");
        assert!(t.parts.contains(&Part::Var(Var::Capture(1))));
        assert!(t.parts.contains(&Part::Var(Var::Args)));
        let e = err("[servers.s]\nlisten = \"8080\"\n[servers.s.locations.\"/\"]\nproxy_pass = \"http://$host:9/\"\n");
        assert!(e.contains("variables in the host"), "{e}");
        let e = err("[servers.s]\nlisten = \"8080\"\n[servers.s.locations.\"/\"]\nproxy_pass = \"http://127.0.0.1:9/$nope\"\n");
        assert!(e.contains("nope"), "{e}");
    }

    #[test]
    fn error_page_lines() {
        let p = ErrorPage::parse("500 502  503 504 /50x.html").unwrap();
        assert_eq!(p.codes, [500, 502, 503, 504]);
        assert_eq!(p.status, ErrorStatus::Keep);
        assert_eq!(p.target, ErrorTarget::Uri("/50x.html".into()));
        let p = ErrorPage::parse("404 =200 @app").unwrap();
        assert_eq!(
            (p.status, p.target.clone()),
            (ErrorStatus::Set(200), ErrorTarget::Named("app".into()))
        );
        assert_eq!(p.to_line(), "404 =200 @app");
        let p = ErrorPage::parse("403 = https://example.com/x").unwrap();
        assert_eq!(p.status, ErrorStatus::Target);
        assert_eq!(p.to_line(), "403 = https://example.com/x");
        for bad in [
            "/x",
            "404",
            "200 /x",
            "404 =99 /x",
            "404 x.html",
            "=200 404 /x",
            "",
        ] {
            assert!(ErrorPage::parse(bad).is_err(), "{bad}");
        }
        let e = err(
            "[servers.s]\nlisten = \"127.0.0.1:0\"\nerror_page = [\"502 @down\"]\n\
                     [servers.s.locations.\"/\"]\nroot = \"/srv\"\n",
        );
        assert!(
            e.contains(":3: servers.s.error_page: no location \"@down\""),
            "{e}"
        );
    }

    #[test]
    fn rewrite_and_set_lines() {
        let at = |server: &str, loc: &str| {
            format!(
                "[servers.s]\nlisten = \"127.0.0.1:0\"\n{server}\n\
                 [servers.s.locations.\"/\"]\nroot = \"/srv\"\n{loc}\n"
            )
        };
        for (text, want) in [
            (
                at("set = [\"$host x\"]", ""),
                ":3: servers.s.set: `$host x`: $host is a built-in",
            ),
            (at("set = [\"host x\"]", ""), "a set line is `$name VALUE`"),
            (
                at("rewrite = [\"^/a /b sideways\"]", ""),
                ":3: servers.s.rewrite: `^/a /b sideways`: unknown flag",
            ),
            (
                at("rewrite = [\"^/a\"]", ""),
                "a rewrite line is `REGEX REPLACEMENT",
            ),
            (at("rewrite = [\"^/(a /b\"]", ""), ":3: servers.s.rewrite"),
            (
                at("", "rewrite = ['^/(?<uri>.*) /b']"),
                "would hide the built-in variable $uri",
            ),
            (at("", "rewrite = ['^/(.*) /b/$nope']"), "nope"),
        ] {
            let e = err(&text);
            assert!(e.contains(want), "{text}\n{e}");
        }
        let e = err("[servers.s]\nlisten = \"127.0.0.1:0\"\n\
             [servers.s.locations.'~ ^/r/(.+)$']\nalias = \"/srv/$1\"\ntry_files = [\"$uri\", \"=404\"]\n");
        assert!(
            e.contains(":4: servers.s.locations.\"~ ^/r/(.+)$\".alias: an alias with variables"),
            "{e}"
        );
        let e = err(
            "[servers.s]\nlisten = \"127.0.0.1:0\"\n[servers.s.locations.'/']\nroot = \"$1/x\"\n",
        );
        assert!(e.contains("must start with a fixed directory"), "{e}");
        // A variable a `set` or a named capture makes is known everywhere,
        // the location's own lines included.
        let c = parse_str(
            &at(
                "set = [\"$tier gold\"]",
                "rewrite = ['^/(?<rest>.*)$ /x/$rest?t=$tier last']\n\
                 [servers.s.locations.\"/x/\"]\nproxy_pass = \"http://127.0.0.1:9/$rest$tier\"",
            ),
            std::path::Path::new("t.toml"),
        )
        .unwrap();
        let rw = &c.servers[0].locations[0].rewrites.rewrite[0];
        assert_eq!(rw.flag, RewriteFlag::Last);
        assert!(rw.to.parts.contains(&Part::Var(Var::Named("rest".into()))));
        // An absolute replacement redirects without a flag.
        let c = parse_str(
            &at("rewrite = ['^ https://$host$request_uri']", ""),
            std::path::Path::new("t.toml"),
        )
        .unwrap();
        assert_eq!(c.servers[0].rewrites.rewrite[0].flag, RewriteFlag::Redirect);
    }

    #[test]
    fn named_locations_and_their_fallbacks() {
        let base = "[servers.s]\nlisten = \"127.0.0.1:0\"\n\
                    [servers.s.locations.\"/\"]\nroot = \"/srv\"\n";
        let c = parse(&format!(
            "{base}try_files = [\"$uri\", \"@app\"]\n\
             [servers.s.locations.\"@app\"]\nproxy_pass = \"http://127.0.0.1:9\"\n"
        ))
        .unwrap();
        assert!(
            matches!(&c.servers[0].locations[1].matcher, LocationMatch::Named(n) if n == "app")
        );
        let e = err(&format!("{base}try_files = [\"$uri\", \"@nope\"]\n"));
        assert!(
            e.contains(":5: servers.s.locations.\"/\".try_files: no location \"@nope\""),
            "{e}"
        );
        let e = err(&format!(
            "{base}[servers.s.locations.\"@bad name\"]\nreturn = {{ status = 204 }}\n"
        ));
        assert!(e.contains("a named location is `@` and a name"), "{e}");
    }

    #[test]
    fn a_connection_zone_refuses_a_rate() {
        let base = "[servers.a]\nlisten = [\"127.0.0.1:0\"]\n[servers.a.locations.\"/\"]\nreturn = { status = 200 }\n";
        let e = err(&format!(
            "[limit_conn_zones.c]\nkey = \"$binary_remote_addr\"\nrate = \"1r/s\"\n{base}"
        ));
        assert!(
            e.contains(":3: limit_conn_zones.c.rate: unknown key here (it belongs in limit_req_zones.NAME or upstreams.NAME.rebalance)"),
            "{e}"
        );
        let e = err(&format!(
            "[limit_conn_zones.c]\nkey = \"$binary_remote_addr\"\nrat = 1\n{base}"
        ));
        assert!(
            e.contains("limit_conn_zones.c.rat: unknown key") && !e.contains("`rate`"),
            "{e}"
        );
    }

    #[test]
    fn log_level_is_a_filter_of_levels() {
        let base = "[servers.a]\nlisten = [\"127.0.0.1:0\"]\n[servers.a.locations.\"/\"]\nreturn = { status = 200 }\n";
        for ok in [
            "info",
            "WARN",
            "warn,ringway=debug",
            "ringway::proxy=trace, info",
            "off",
        ] {
            parse(&format!("[log]\nlevel = {ok:?}\n{base}")).unwrap();
        }
        for bad in ["infoo", "verbose", "ringway=loud", "=debug"] {
            let e = err(&format!("[log]\nlevel = {bad:?}\n{base}"));
            assert!(
                e.contains(":2: log.level:") && e.contains("is not a level"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn the_full_example_parses() {
        let c = parse(FULL).unwrap();
        assert_eq!(c.runtime.workers, Workers::Auto);
        assert_eq!(c.runtime.shutdown_timeout, Duration::from_secs(30));
        assert_eq!(c.metrics.unwrap().listen, "127.0.0.1:9145".parse().unwrap());
        let up = &c.upstreams["websocket_servers"];
        assert_eq!(up.balance, Balance::IpHash);
        assert_eq!(up.servers[1].weight, 2);
        assert!(up.servers[2].backup);
        let ws = &c.servers[0];
        assert_eq!(ws.listen.len(), 2);
        assert_eq!(
            ws.server_names,
            vec![ServerName::Exact("ws.example.com".into())]
        );
        let loc = &ws.locations[1];
        assert_eq!(loc.proxy_read_timeout, Duration::from_secs(3600));
        assert_eq!(loc.proxy_connect_timeout, Duration::from_secs(10));
        assert!(!loc.proxy_buffering);
        assert_eq!(loc.proxy_set_header.len(), 4);
        assert_eq!(loc.proxy_set_header[2].0, "X-Forwarded-For");
        match &loc.action {
            Action::Proxy(p) => {
                assert!(p.uri.is_none());
                assert!(
                    matches!(&p.target, ProxyTarget::Address { host, .. } if host == "127.0.0.1:3000")
                );
            }
            other => panic!("{other:?}"),
        }
        let app = &c.servers[1];
        assert!(app.tls.is_some() && app.http2 == Http2::Tls);
        assert_eq!(app.http2_max_concurrent_streams, 128);
        assert!(
            matches!(&app.locations[1].action, Action::Proxy(p) if matches!(&p.target, ProxyTarget::Upstream { name, index: 0, hash_key: None } if name == "websocket_servers"))
        );
        assert!(matches!(&app.locations[2].action, Action::Static(s) if s.try_files.len() == 2));
    }

    /// Whatever the file breaks off at, or whichever line it repeats, the
    /// error is located and nothing panics (spans map back through
    /// partial documents).
    #[test]
    fn every_cut_and_repeat_of_the_full_example_is_located() {
        let load = |t: &str| parse_str_with(t, Path::new("/r.toml"), Resolve::Loopback);
        let mut cuts = 0;
        for (at, _) in FULL.char_indices() {
            if let Err(e) = load(&FULL[..at]) {
                assert!(e.to_string().starts_with("/r.toml:"), "{e}");
                if matches!(e.kind, ErrorKind::Syntax(_)) {
                    assert!(e.line.is_some() && e.column.is_some(), "{at}: {e}");
                    cuts += 1;
                }
            }
        }
        assert!(cuts > 100, "{cuts}");
        let lines: Vec<&str> = FULL.lines().collect();
        let mut duplicates = 0;
        for (n, line) in lines.iter().enumerate() {
            let mut text = lines[..=n].join("\n");
            text.push('\n');
            text.push_str(line);
            text.push('\n');
            text.push_str(&lines[n + 1..].join("\n"));
            if let Err(e) = load(&text) {
                if matches!(e.kind, ErrorKind::Duplicate { .. }) {
                    // Repeated on the next line: the first is this one.
                    assert!(
                        e.line == Some(n + 2)
                            && matches!(e.kind, ErrorKind::Duplicate { first_line: Some(f), .. } if f == n + 1),
                        "{n}: {e}"
                    );
                    duplicates += 1;
                }
            }
        }
        assert!(duplicates > 30, "{duplicates}");
    }

    #[test]
    fn defaults() {
        let c = parse("[servers.s]\nlisten = \"8080\"\n[servers.s.locations.\"/\"]\nproxy_pass = \"http://127.0.0.1:9000/\"\n").unwrap();
        assert_eq!(c.runtime.driver, DriverChoice::Auto);
        assert_eq!(c.runtime.max_connections, 200_000);
        assert_eq!(c.runtime.tunnel_buffer, 16 * 1024);
        assert!(c.runtime.splice && c.runtime.pin_cores);
        assert_eq!(c.log.access_log, AccessLog::Stdout);
        let s = &c.servers[0];
        assert_eq!(s.listen, vec!["0.0.0.0:8080".parse().unwrap()]);
        assert!(s.server_names.is_empty());
        assert_eq!(s.client_header_buffer_size, 16 * 1024);
        assert_eq!(s.max_headers, 100);
        assert_eq!(s.keepalive_timeout, Duration::from_secs(75));
        let l = &s.locations[0];
        assert_eq!(l.proxy_read_timeout, Duration::from_secs(60));
        assert_eq!(l.client_max_body_size, 1 << 20);
        assert!(!l.proxy_buffering, "ringway streams by default");
        assert_eq!(l.proxy_buffers, 64 * 1024);
        assert!(matches!(&l.action, Action::Proxy(p) if p.uri.as_deref() == Some("/")));
    }

    #[test]
    fn location_keys() {
        let c = parse(
            "[servers.s]\nlisten = \"8080\"\n[servers.s.locations.\"= /x\"]\nreturn = { status = 204 }\n[servers.s.locations.\"^~ /static/\"]\nroot = \"/srv\"\n[servers.s.locations.\"~* \\\\.png$\"]\nroot = \"/srv\"\n",
        )
        .unwrap();
        let l = &c.servers[0].locations;
        assert!(matches!(&l[0].matcher, LocationMatch::Exact(p) if p == "/x"));
        assert!(
            matches!(&l[1].matcher, LocationMatch::Prefix { path, no_regex: true } if path == "/static/")
        );
        assert!(
            matches!(&l[2].matcher, LocationMatch::Regex { regex, case_insensitive: true } if regex.is_match("/A.PNG"))
        );
    }

    #[test]
    fn proxy_pass_forms() {
        let c = parse("[upstreams.b]\nservers = [{ addr = \"127.0.0.1:1\" }]\n[servers.s]\nlisten = \"8080\"\n[servers.s.locations.\"/a/\"]\nproxy_pass = \"http://b/prefix\"\n[servers.s.locations.\"/c/\"]\nproxy_pass = \"http://[::1]:9000\"\n[servers.s.locations.\"/d/\"]\nproxy_pass = \"http://127.0.0.1\"\n").unwrap();
        let l = &c.servers[0].locations;
        assert!(
            matches!(&l[0].action, Action::Proxy(p) if matches!(&p.target, ProxyTarget::Upstream { name, index: 0, .. } if name == "b") && p.uri.as_deref() == Some("/prefix"))
        );
        assert!(
            matches!(&l[1].action, Action::Proxy(p) if matches!(&p.target, ProxyTarget::Address { host, addrs } if host == "[::1]:9000" && addrs[0].inet() == "[::1]:9000".parse().ok()))
        );
        assert!(
            matches!(&l[2].action, Action::Proxy(p) if matches!(&p.target, ProxyTarget::Address { host, .. } if host == "127.0.0.1"))
        );
    }

    /// nginx's unix-socket forms: `unix:/path` in a group, and
    /// `http://unix:/path:/uri` in proxy_pass.
    #[test]
    fn unix_socket_upstreams() {
        let c = parse("[upstreams.b]\nservers = [{ addr = \"unix:/run/app.sock\" }, { addr = \"127.0.0.1:1\" }]\n[servers.s]\nlisten = \"8080\"\n[servers.s.locations.\"/a/\"]\nproxy_pass = \"http://b\"\n[servers.s.locations.\"/c/\"]\nproxy_pass = \"http://unix:/run/c.sock:/x/\"\n[servers.s.locations.\"/d/\"]\nproxy_pass = \"http://unix:/run/d.sock\"\n[servers.s.locations.\"/e/\"]\nproxy_pass = \"http://unix:/run/e.sock:\"\n").unwrap();
        let unix = |p: &str| UpstreamAddr::Unix(Path::new(p).into());
        assert_eq!(c.upstreams[0].servers[0].addrs, [unix("/run/app.sock")]);
        assert_eq!(
            c.upstreams[0].servers[0].addrs[0].to_string(),
            "unix:/run/app.sock"
        );
        let l = &c.servers[0].locations;
        assert!(
            matches!(&l[1].action, Action::Proxy(p) if matches!(&p.target, ProxyTarget::Address { host, addrs } if host == "localhost" && addrs[..] == [unix("/run/c.sock")]) && p.uri.as_deref() == Some("/x/"))
        );
        assert!(
            matches!(&l[2].action, Action::Proxy(p) if matches!(&p.target, ProxyTarget::Address { addrs, .. } if addrs[..] == [unix("/run/d.sock")]) && p.uri.is_none())
        );
        // nginx's `unix:/path:` with nothing after the colon: no URI part.
        assert!(
            matches!(&l[3].action, Action::Proxy(p) if matches!(&p.target, ProxyTarget::Address { addrs, .. } if addrs[..] == [unix("/run/e.sock")]) && p.uri.is_none())
        );
        for bad in ["unix:run/x.sock", "unix:/x\\u0000y"] {
            let e = err(&format!("[upstreams.b]\nservers = [{{ addr = \"{bad}\" }}]\n[servers.s]\nlisten = \"8080\"\n[servers.s.locations.\"/\"]\nproxy_pass = \"http://b\"\n"));
            assert!(e.contains("upstreams.b.servers[0].addr"), "{e}");
        }
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let e = err("[runtime]\nworkers = 2\n\nbogus = 1\n");
        assert!(
            e.starts_with(
                "/etc/ringway/ringway.toml:4: runtime.bogus: unknown key (valid here: workers, "
            ),
            "{e}"
        );

        let e = err("[servers.ws]\nlisten = \"8080\"\n[servers.ws.locations.\"/ws/\"]\nproxy_pass = \"http://127.0.0.1:1\"\nproxy_read_timeout = \"10x\"\n");
        assert_eq!(
            e,
            "/etc/ringway/ringway.toml:5: servers.ws.locations.\"/ws/\".proxy_read_timeout: bad duration `10x` (use a number with a unit: 500ms, 10s, 5m, 1h; a bare number is seconds)"
        );

        let e = err("[servers.ws]\nlisten = \"8080\"\n[servers.ws.locations.\"/\"]\nproxy_pass = \"http://backend\"\n");
        assert!(e.starts_with("/etc/ringway/ringway.toml:4: servers.ws.locations.\"/\".proxy_pass: proxy_pass to undefined upstream `backend`"), "{e}");

        let e = err("[servers.ws]\nlisten = \"nope:80\"\n");
        assert!(
            e.starts_with("/etc/ringway/ringway.toml:2: servers.ws.listen: bad address `nope:80`"),
            "{e}"
        );

        let e = err("[servers.a]\nlisten = \"8080\"\nserver_name = \"x.org\"\n[servers.b]\nlisten = \"8080\"\nserver_name = \"x.org\"\n");
        assert!(e.contains(":6: servers.b.server_name: 0.0.0.0:8080 with server_name `x.org` is already used by server `a`"), "{e}");

        let e = err("[servers.a]\nlisten = \"443\"\ntls = { cert = \"/c.pem\" }\n");
        assert!(e.contains(":3: servers.a.tls.key: tls needs `key`"), "{e}");

        let e = err("[servers.a]\nlisten = \"80\"\n[servers.a.locations.\"/\"]\nproxy_pass = \"http://127.0.0.1:1\"\n[servers.a.locations.\"/\".proxy_set_header]\nX-Who = \"$nope\"\n");
        assert!(
            e.contains(
                ":6: servers.a.locations.\"/\".proxy_set_header.X-Who: unknown variable `$nope`"
            ),
            "{e}"
        );

        let e = err("[servers.a]\nlisten = \"80\"\n[servers.a.locations.\"~ (\"]\nreturn = { status = 200 }\n");
        assert!(e.contains("invalid regular expression"), "{e}");

        let e = err("[servers.a]\nlisten = \"80\"\n[servers.a.locations.\"/\"]\n");
        assert!(
            e.contains("a location needs one of return, proxy_pass, root or alias"),
            "{e}"
        );

        let e = err("[servers.a]\nlisten = \"80\"\n[servers.a.locations.\"/\"]\nreturn = { status = 301 }\n");
        assert!(e.contains("needs a location"), "{e}");

        let e = err("[runtime]\ndriver = \"kqueue\"\n");
        assert!(
            e.contains(":2: runtime.driver: unknown driver `kqueue`"),
            "{e}"
        );

        let e = err("[upstreams.u]\nbalance = \"hash\"\nservers = [{ addr = \"127.0.0.1:1\" }]\n");
        assert!(
            e.contains("upstreams.u.hash_key: balance = \"hash\" needs a hash_key"),
            "{e}"
        );

        let e = err("x = [");
        assert!(e.starts_with("/etc/ringway/ringway.toml:1:6: x: "), "{e}");
    }

    #[test]
    fn an_empty_config_is_refused() {
        let e = err("");
        assert_eq!(
            e,
            "/etc/ringway/ringway.toml: servers: no server is configured (add a [servers.NAME] table)"
        );
        let e = err("[runtime]\nworkers = 1\n");
        assert!(e.contains("no server is configured"), "{e}");
    }

    #[test]
    fn a_byte_that_is_not_utf8_is_located() {
        let bytes = b"[servers.a]\nlisten = \"80\"\n# caf\xe9\n";
        let e = utf8(bytes, Path::new("/x.toml")).unwrap_err().to_string();
        assert_eq!(
            e,
            "/x.toml:3:6: (file): byte 0xe9 is not UTF-8 (save the file as UTF-8)"
        );
    }

    #[test]
    fn a_missing_root_is_a_warning() {
        let c = parse("[servers.a]\nlisten = \"80\"\n[servers.a.locations.\"/\"]\nroot = \"/nonexistent/www\"\n[servers.a.locations.\"/t/\"]\nroot = \"/tmp\"\n").unwrap();
        assert_eq!(
            c.warnings,
            vec!["/etc/ringway/ringway.toml:4: servers.a.locations.\"/\".root: `/nonexistent/www` is not a directory (requests here will get 404)".to_string()]
        );
    }

    /// `http2` is `true`, `false` or `"h2c"`; anything else is refused
    /// at its line; `http2_max_concurrent_streams` defaults to 128 and is
    /// bounded.
    #[test]
    fn http2_values() {
        let one = |v: &str| parse(&format!("[servers.a]\nlisten = \"127.0.0.1:80\"\n{v}\n"));
        assert_eq!(one("").unwrap().servers[0].http2, Http2::Off);
        assert_eq!(one("http2 = false").unwrap().servers[0].http2, Http2::Off);
        assert_eq!(one("http2 = true").unwrap().servers[0].http2, Http2::Tls);
        let h2c = one("http2 = \"h2c\"\nhttp2_max_concurrent_streams = 7").unwrap();
        assert_eq!(h2c.servers[0].http2, Http2::H2c);
        assert_eq!(h2c.servers[0].http2_max_concurrent_streams, 7);
        assert_eq!(
            one("").unwrap().servers[0].http2_max_concurrent_streams,
            128
        );
        let e = one("http2 = \"h3\"").unwrap_err().to_string();
        assert!(e.contains(":3:") && e.contains("servers.a.http2"), "{e}");
        assert!(one("http2 = 2").is_err());
        for bad in ["0", "65537", "\"10\""] {
            let e = one(&format!("http2_max_concurrent_streams = {bad}"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("servers.a.http2_max_concurrent_streams"), "{e}");
        }
    }

    /// `http2_websocket` defaults to true; WebSocket over HTTP/2 is offered
    /// only with it on and a proxying location that can upgrade.
    #[test]
    fn http2_websocket_offer() {
        let one = |v: &str| {
            parse(&format!(
                "[servers.a]\nlisten = \"127.0.0.1:80\"\n{v}\n\
                 [servers.a.locations.\"/ws/\"]\nproxy_pass = \"http://127.0.0.1:1\"\n"
            ))
        };
        let on = one("").unwrap();
        assert!(on.servers[0].http2_websocket);
        assert!(on.servers[0].offers_websocket_over_http2());
        let off = one("http2_websocket = false").unwrap();
        assert!(!off.servers[0].offers_websocket_over_http2());
        let e = one("http2_websocket = \"no\"").unwrap_err().to_string();
        assert!(
            e.contains(":3:") && e.contains("servers.a.http2_websocket"),
            "{e}"
        );
        let none = parse(
            "[servers.a]\nlisten = \"127.0.0.1:80\"\n\
             [servers.a.locations.\"/ws/\"]\nproxy_pass = \"http://127.0.0.1:1\"\nupgrade = []\n\
             [servers.a.locations.\"/\"]\nreturn = { status = 200 }\n",
        )
        .unwrap();
        assert!(!none.servers[0].offers_websocket_over_http2());
    }

    /// Every warning reads `file:line: full.key: what`, and the model keeps
    /// the lines the engine needs for its own warnings and errors (http2,
    /// the certificate and key).
    #[test]
    fn warnings_carry_their_line() {
        let c = parse(
            "[servers.\"a b\"]\nlisten = \"127.0.0.1:443\"\n\nhttp2 = true\n\
             [servers.\"a b\".tls]\nmin_version = \"1.3\"\ncert = \"/c.pem\"\n\nkey = \"/k.pem\"\n\
             [servers.\"a b\".locations.\"/s/\"]\nalias = \"/nonexistent/s\"\n\
             [servers.\"a b\".locations.\"/u/\"]\nproxy_pass = \"http://127.0.0.1:1\"\nupgrade = [\"h2c\"]\n\
             [servers.plain]\nlisten = \"127.0.0.1:80\"\n",
        )
        .unwrap();
        let a = &c.servers[0];
        assert_eq!(a.http2_line, Some(4));
        let tls = a.tls.as_ref().unwrap();
        assert_eq!((tls.line, tls.cert_line, tls.key_line), (5, 7, 9));
        assert_eq!(c.servers[1].http2_line, None);
        let expect = [
            ":11: servers.\"a b\".locations.\"/s/\".alias: `/nonexistent/s` is not a directory",
            ":14: servers.\"a b\".locations.\"/u/\".upgrade: h2c upgrades are forwarded here",
        ];
        assert_eq!(c.warnings.len(), expect.len(), "{:?}", c.warnings);
        for (w, e) in c.warnings.iter().zip(expect) {
            assert!(
                w.starts_with(&format!("/etc/ringway/ringway.toml{e}")),
                "{w}"
            );
        }
    }

    /// `upgrade`: websocket alone by default; a list of protocol names
    /// (stored lowercase); h2c forwarded only when named, with a warning.
    #[test]
    fn upgrade_protocols() {
        let loc = |extra: &str| {
            format!("[servers.a]\nlisten = \"80\"\n[servers.a.locations.\"/\"]\nproxy_pass = \"http://127.0.0.1:1\"\n{extra}")
        };
        let c = parse(&loc("")).unwrap();
        assert_eq!(c.servers[0].locations[0].upgrade, vec!["websocket"]);
        assert!(c.warnings.is_empty());
        let c = parse(&loc("upgrade = []\n")).unwrap();
        assert!(c.servers[0].locations[0].upgrade.is_empty());
        let c = parse(&loc("upgrade = [\"WebSocket\", \"foo/2\"]\n")).unwrap();
        assert_eq!(
            c.servers[0].locations[0].upgrade,
            vec!["websocket", "foo/2"]
        );
        assert!(c.warnings.is_empty());
        let c = parse(&loc("upgrade = [\"websocket\", \"H2C\"]\n")).unwrap();
        assert_eq!(c.servers[0].locations[0].upgrade, vec!["websocket", "h2c"]);
        assert_eq!(c.warnings.len(), 1);
        assert!(
            c.warnings[0].starts_with("/etc/ringway/ringway.toml:5: servers.a.locations.\"/\".upgrade: h2c upgrades are forwarded here"),
            "{:?}",
            c.warnings
        );
        for (bad, what) in [
            (
                "upgrade = \"websocket\"",
                "expected an array of protocol names",
            ),
            ("upgrade = [1]", "expected an array of protocol names"),
            (
                "upgrade = [\"web socket\"]",
                "`web socket` is not a protocol name",
            ),
            (
                "upgrade = [\"websocket/\"]",
                "`websocket/` is not a protocol name",
            ),
            ("upgrade = [\"\"]", "`` is not a protocol name"),
            ("upgrade = [\"a\", \"A\"]", "`a` is listed twice"),
        ] {
            let e = err(&loc(&format!("{bad}\n")));
            assert!(
                e.starts_with("/etc/ringway/ringway.toml:5: servers.a.locations.\"/\".upgrade: ")
                    && e.contains(what),
                "{bad}: {e}"
            );
        }
        let c = parse("[servers.a]\nlisten = \"80\"\n[servers.a.locations.\"/\"]\nreturn = { status = 204 }\nupgrade = []\n").unwrap();
        assert_eq!(
            c.warnings,
            vec!["/etc/ringway/ringway.toml:5: servers.a.locations.\"/\".upgrade: has no effect without proxy_pass".to_string()]
        );
    }

    #[test]
    fn header_values_cannot_hold_control_characters() {
        let e = err("[servers.a]\nlisten = \"80\"\n[servers.a.locations.\"/\"]\nproxy_pass = \"http://127.0.0.1:1\"\n[servers.a.locations.\"/\".proxy_set_header]\nX-A = \"a\\r\\nX-B: b\"\n");
        assert!(
            e.contains(":6: servers.a.locations.\"/\".proxy_set_header.X-A: a header value cannot contain control characters"),
            "{e}"
        );
    }

    #[test]
    fn missing_file_is_named() {
        let e = load(Path::new("/nonexistent/ringway.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("/nonexistent/ringway.toml: (file): cannot read the file"),
            "{e}"
        );
    }

    #[test]
    fn tls_and_upstream_tls_keys() {
        let c = parse(
            "[servers.a]\nlisten = \"127.0.0.1:443\"\nserver_name = \"a.test\"\n\
             tls = { cert = \"/c.pem\", key = \"/k.pem\", min_version = \"TLSv1.3\", handshake_timeout = \"3s\" }\n\
             [servers.b]\nlisten = \"127.0.0.1:443\"\nserver_name = \"b.test\"\ntls = { cert = \"/c.pem\", key = \"/k.pem\" }\n\
             [servers.b.locations.\"/api/\"]\nproxy_pass = \"https://127.0.0.1\"\n\
             [servers.b.locations.\"/x/\"]\nproxy_pass = \"https://127.0.0.1:8443/\"\nproxy_ssl_verify = false\n\
             proxy_ssl_trusted_certificate = \"/ca.pem\"\nproxy_ssl_server_name = false\nproxy_ssl_name = \"api.internal\"\n\
             [servers.r]\nlisten = \"127.0.0.1:80\"\n[servers.r.locations.\"/\"]\nreturn = { status = 301, url = \"https://$host$request_uri\" }\n",
        )
        .unwrap();
        let a = c.servers[0].tls.as_ref().unwrap();
        assert_eq!(a.min_version, TlsVersion::V1_3);
        assert_eq!(a.handshake_timeout, Duration::from_secs(3));
        assert_eq!(a.line, 4);
        let b = c.servers[1].tls.as_ref().unwrap();
        assert_eq!(b.min_version, TlsVersion::V1_2);
        assert_eq!(b.handshake_timeout, Duration::from_secs(10));
        let Action::Proxy(pp) = &c.servers[1].locations[0].action else {
            panic!()
        };
        assert!(pp.tls);
        match &pp.target {
            ProxyTarget::Address { host, addrs } => {
                assert_eq!(host, "127.0.0.1", "443 is https's default port");
                assert_eq!(addrs[0].inet().map(|a| a.port()), Some(443));
            }
            _ => panic!(),
        }
        let ssl = &c.servers[1].locations[0].proxy_ssl;
        assert!(ssl.verify && ssl.server_name && ssl.trusted_certificate.is_none());
        let ssl = &c.servers[1].locations[1].proxy_ssl;
        assert!(!ssl.verify && !ssl.server_name);
        assert_eq!(ssl.name.as_deref(), Some("api.internal"));
        assert_eq!(
            ssl.trusted_certificate,
            Some(std::path::PathBuf::from("/ca.pem"))
        );
        assert!(matches!(
            &c.servers[2].locations[0].action,
            Action::Return {
                status: 301,
                location: Some(_),
                ..
            }
        ));
    }

    #[test]
    fn tls_errors() {
        let e = err("[servers.a]\nlisten = \"443\"\ntls = { cert = \"/c.pem\", key = \"/k.pem\", min_version = \"1.1\" }\n");
        assert!(e.contains(":3: servers.a.tls.min_version: `1.1`"), "{e}");
        let e = err("[servers.a]\nlisten = \"127.0.0.1:8443\"\ntls = { cert = \"/c.pem\", key = \"/k.pem\" }\n\
                     [servers.b]\nlisten = \"127.0.0.1:8443\"\nserver_name = \"b.test\"\n");
        assert!(
            e.contains(":5: servers.b.listen: 127.0.0.1:8443 mixes TLS (server `a`) and plain HTTP (server `b`)"),
            "{e}"
        );
        let e = err(
            "[servers.a]\nlisten = \"80\"\n[servers.a.locations.\"/\"]\nproxy_pass = \"ftp://x\"\n",
        );
        assert!(e.contains("must start with http:// or https://"), "{e}");
    }

    #[test]
    fn durations_with_bounds_name_them() {
        let server = "[servers.a]\nlisten = \"80\"\n[servers.a.locations.\"/\"]\nreturn = { status = 204 }\n";
        let e = err(&format!("[runtime]\nupgrade_timeout = \"50ms\"\n{server}"));
        assert!(
            e.contains("runtime.upgrade_timeout: must be between 100ms and 1h"),
            "{e}"
        );
        let e = err(&format!("[runtime]\nresolver_valid = \"2d\"\n{server}"));
        assert!(
            e.contains("runtime.resolver_valid: must be between 100ms and 1d"),
            "{e}"
        );
        let group =
            "[upstreams.g]\nservers = [{ addr = \"127.0.0.1:1\" }]\n[upstreams.g.health_check]\n";
        let e = err(&format!("{group}interval = \"10ms\"\n{server}"));
        assert!(e.contains("interval must be between 50ms and 1h"), "{e}");
        let e = err(&format!("{group}timeout = \"2h\"\n{server}"));
        assert!(e.contains("timeout must be between 10ms and 1h"), "{e}");
        let ok = parse(&format!("[runtime]\nupgrade_timeout = \"1h\"\n{server}")).unwrap();
        assert_eq!(ok.runtime.upgrade_timeout, Duration::from_secs(3600));
    }
}
