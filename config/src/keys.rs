//! Every key ringway.toml accepts, by its full path. The configuration
//! reference (docs/CONFIG.md) documents each of them, and a test holds the
//! two together; another test holds this list to what the parser accepts.
//!
//! Paths are dotted, with placeholders for the names a file chooses:
//! `NAME` (an upstream, server or zone), `MATCH` (a location's match, as
//! `"/ws/"` or `"~ ^/api"`), `HEADER` (a header name) and `[]` (each
//! element of an array).

/// Every accepted key, in the reference's order.
pub const KEYS: &[&str] = &[
    "runtime",
    "runtime.workers",
    "runtime.pin_cores",
    "runtime.driver",
    "runtime.max_connections",
    "runtime.shutdown_timeout",
    "runtime.tunnel_buffer",
    "runtime.splice",
    "runtime.tunnel_relay",
    "runtime.relay_buffers",
    "runtime.drain_spread",
    "runtime.drain_old_tunnels_after",
    "runtime.resolver",
    "runtime.resolver_valid",
    "runtime.upgrade_timeout",
    "log",
    "log.level",
    "log.access_log",
    "log.log_format",
    "metrics",
    "metrics.listen",
    "real_ip",
    "real_ip.set_real_ip_from",
    "real_ip.header",
    "real_ip.recursive",
    "real_ip.proxy_protocol_timeout",
    "limit_req_zones.NAME",
    "limit_req_zones.NAME.key",
    "limit_req_zones.NAME.rate",
    "limit_req_zones.NAME.size",
    "limit_conn_zones.NAME",
    "limit_conn_zones.NAME.key",
    "limit_conn_zones.NAME.size",
    "upstreams.NAME",
    "upstreams.NAME.balance",
    "upstreams.NAME.hash_key",
    "upstreams.NAME.servers",
    "upstreams.NAME.servers[].addr",
    "upstreams.NAME.servers[].weight",
    "upstreams.NAME.servers[].backup",
    "upstreams.NAME.servers[].down",
    "upstreams.NAME.servers[].resolve",
    "upstreams.NAME.max_fails",
    "upstreams.NAME.fail_timeout",
    "upstreams.NAME.keepalive",
    "upstreams.NAME.keepalive_timeout",
    "upstreams.NAME.on_down",
    "upstreams.NAME.on_remove",
    "upstreams.NAME.slow_start",
    "upstreams.NAME.rebalance",
    "upstreams.NAME.rebalance.max_skew",
    "upstreams.NAME.rebalance.rate",
    "upstreams.NAME.health_check",
    "upstreams.NAME.health_check.type",
    "upstreams.NAME.health_check.uri",
    "upstreams.NAME.health_check.expect_status",
    "upstreams.NAME.health_check.expect_body",
    "upstreams.NAME.health_check.interval",
    "upstreams.NAME.health_check.jitter",
    "upstreams.NAME.health_check.timeout",
    "upstreams.NAME.health_check.fails",
    "upstreams.NAME.health_check.passes",
    "upstreams.NAME.health_check.port",
    "servers.NAME",
    "servers.NAME.listen",
    "servers.NAME.listen[].addr",
    "servers.NAME.listen[].proxy_protocol",
    "servers.NAME.server_name",
    "servers.NAME.tls",
    "servers.NAME.tls.cert",
    "servers.NAME.tls.key",
    "servers.NAME.tls.min_version",
    "servers.NAME.tls.handshake_timeout",
    "servers.NAME.tls.protocols",
    "servers.NAME.tls.ciphers",
    "servers.NAME.tls.session_tickets",
    "servers.NAME.tls.session_timeout",
    "servers.NAME.tls.session_cache",
    "servers.NAME.tls.reject_handshake",
    "servers.NAME.http2",
    "servers.NAME.http2_max_concurrent_streams",
    "servers.NAME.http2_websocket",
    "servers.NAME.client_header_buffer_size",
    "servers.NAME.large_client_header_buffers",
    "servers.NAME.max_headers",
    "servers.NAME.client_header_timeout",
    "servers.NAME.client_body_timeout",
    "servers.NAME.keepalive_timeout",
    "servers.NAME.keepalive_requests",
    "servers.NAME.send_timeout",
    "servers.NAME.underscores_in_headers",
    "servers.NAME.limit_req",
    "servers.NAME.limit_req.zone",
    "servers.NAME.limit_req.burst",
    "servers.NAME.limit_req.nodelay",
    "servers.NAME.limit_req.delay",
    "servers.NAME.limit_req_status",
    "servers.NAME.limit_conn",
    "servers.NAME.limit_conn.zone",
    "servers.NAME.limit_conn.max",
    "servers.NAME.limit_conn_status",
    "servers.NAME.access",
    "servers.NAME.default_type",
    "servers.NAME.etag",
    "servers.NAME.server_tokens",
    "servers.NAME.add_header.HEADER",
    "servers.NAME.add_header.HEADER.value",
    "servers.NAME.add_header.HEADER.always",
    "servers.NAME.proxy_hide_header",
    "servers.NAME.proxy_pass_header",
    "servers.NAME.error_page",
    "servers.NAME.proxy_intercept_errors",
    "servers.NAME.set",
    "servers.NAME.rewrite",
    "servers.NAME.gzip",
    "servers.NAME.gzip_types",
    "servers.NAME.gzip_min_length",
    "servers.NAME.gzip_comp_level",
    "servers.NAME.gzip_vary",
    "servers.NAME.gzip_proxied",
    "servers.NAME.gzip_disable",
    "servers.NAME.gzip_static",
    "servers.NAME.locations.MATCH",
    "servers.NAME.locations.MATCH.proxy_pass",
    "servers.NAME.locations.MATCH.proxy_connect_timeout",
    "servers.NAME.locations.MATCH.proxy_read_timeout",
    "servers.NAME.locations.MATCH.proxy_send_timeout",
    "servers.NAME.locations.MATCH.proxy_buffering",
    "servers.NAME.locations.MATCH.proxy_buffers",
    "servers.NAME.locations.MATCH.proxy_set_header.HEADER",
    "servers.NAME.locations.MATCH.proxy_redirect",
    "servers.NAME.locations.MATCH.proxy_request_buffering",
    "servers.NAME.locations.MATCH.proxy_next_upstream",
    "servers.NAME.locations.MATCH.proxy_next_upstream_tries",
    "servers.NAME.locations.MATCH.proxy_next_upstream_timeout",
    "servers.NAME.locations.MATCH.proxy_hide_header",
    "servers.NAME.locations.MATCH.proxy_pass_header",
    "servers.NAME.locations.MATCH.proxy_ssl_verify",
    "servers.NAME.locations.MATCH.proxy_ssl_trusted_certificate",
    "servers.NAME.locations.MATCH.proxy_ssl_server_name",
    "servers.NAME.locations.MATCH.proxy_ssl_name",
    "servers.NAME.locations.MATCH.upgrade",
    "servers.NAME.locations.MATCH.return",
    "servers.NAME.locations.MATCH.return.status",
    "servers.NAME.locations.MATCH.return.body",
    "servers.NAME.locations.MATCH.return.location",
    "servers.NAME.locations.MATCH.return.url",
    "servers.NAME.locations.MATCH.root",
    "servers.NAME.locations.MATCH.alias",
    "servers.NAME.locations.MATCH.index",
    "servers.NAME.locations.MATCH.try_files",
    "servers.NAME.locations.MATCH.client_max_body_size",
    "servers.NAME.locations.MATCH.client_body_timeout",
    "servers.NAME.locations.MATCH.add_header.HEADER",
    "servers.NAME.locations.MATCH.add_header.HEADER.value",
    "servers.NAME.locations.MATCH.add_header.HEADER.always",
    "servers.NAME.locations.MATCH.expires",
    "servers.NAME.locations.MATCH.default_type",
    "servers.NAME.locations.MATCH.etag",
    "servers.NAME.locations.MATCH.internal",
    "servers.NAME.locations.MATCH.error_page",
    "servers.NAME.locations.MATCH.proxy_intercept_errors",
    "servers.NAME.locations.MATCH.set",
    "servers.NAME.locations.MATCH.rewrite",
    "servers.NAME.locations.MATCH.gzip",
    "servers.NAME.locations.MATCH.gzip_types",
    "servers.NAME.locations.MATCH.gzip_min_length",
    "servers.NAME.locations.MATCH.gzip_comp_level",
    "servers.NAME.locations.MATCH.gzip_vary",
    "servers.NAME.locations.MATCH.gzip_proxied",
    "servers.NAME.locations.MATCH.gzip_disable",
    "servers.NAME.locations.MATCH.gzip_static",
    "servers.NAME.locations.MATCH.limit_req",
    "servers.NAME.locations.MATCH.limit_req.zone",
    "servers.NAME.locations.MATCH.limit_req.burst",
    "servers.NAME.locations.MATCH.limit_req.nodelay",
    "servers.NAME.locations.MATCH.limit_req.delay",
    "servers.NAME.locations.MATCH.limit_req_status",
    "servers.NAME.locations.MATCH.limit_conn",
    "servers.NAME.locations.MATCH.limit_conn.zone",
    "servers.NAME.locations.MATCH.limit_conn.max",
    "servers.NAME.locations.MATCH.limit_conn_status",
    "servers.NAME.locations.MATCH.access",
];

/// nginx directives ringway does not plan to carry, by name (or name
/// prefix, ending in `*`), each with why and what to do instead. A key of
/// such a name in ringway.toml is refused with this reason (and the
/// importer reports the directive the same way).
pub const NOT_PLANNED: &[(&str, &str)] = &[
    (
        "proxy_cache*",
        "ringway does not cache responses; put a cache (Varnish, or nginx for that path) behind it",
    ),
    (
        "fastcgi_cache*",
        "ringway does not cache responses; put a cache (Varnish, or nginx for that path) behind it",
    ),
    (
        "ssi*",
        "server-side includes are an application's job; render the page upstream",
    ),
    (
        "sub_filter*",
        "ringway does not rewrite response bodies; change the upstream's output",
    ),
    (
        "*lua*",
        "ringway runs no embedded scripts; move the logic to the upstream or a small service",
    ),
    (
        "perl*",
        "ringway runs no embedded scripts; move the logic to the upstream or a small service",
    ),
    (
        "js_*",
        "ringway runs no embedded scripts; move the logic to the upstream or a small service",
    ),
];

/// Why `name` is not planned, when it is (see [`NOT_PLANNED`]).
pub fn not_planned(name: &str) -> Option<&'static str> {
    let name = name.to_ascii_lowercase();
    NOT_PLANNED.iter().find_map(|&(pattern, why)| {
        let hit = match (pattern.strip_prefix('*'), pattern.strip_suffix('*')) {
            (Some(mid), _) => name.contains(mid.trim_end_matches('*')),
            (None, Some(prefix)) => name.starts_with(prefix),
            (None, None) => name == pattern,
        };
        hit.then_some(why)
    })
}

/// The tables that take a key named `name`, as path patterns
/// (`servers.NAME.locations.MATCH`, or "the top level"): where a key
/// written in the wrong table belongs.
pub fn places_of(name: &str) -> Vec<&'static str> {
    let mut out = Vec::new();
    for key in KEYS {
        let (parent, last) = key.rsplit_once('.').unwrap_or(("the top level", key));
        if last == name && !out.contains(&parent) {
            out.push(parent);
        }
    }
    out
}

/// keys.rs held to the parser both ways: every path listed is accepted
/// (not refused as unknown), and every key a table accepts is listed.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ConfigError, ErrorKind};
    use indexmap::IndexMap;

    /// A TOML document as a tree, written out inline so that any path can
    /// be added to it without clashing with a header.
    enum Node {
        Table(IndexMap<String, Node>),
        Array(Vec<Node>),
        Value(String),
    }

    enum Step {
        Key(String),
        Index,
    }

    /// A pattern as concrete steps: NAME → `p`, MATCH → `/`, HEADER →
    /// `X-Probe`, `[]` → the first element.
    fn steps(pattern: &str) -> Vec<Step> {
        let mut out = Vec::new();
        for part in pattern.split('.').filter(|p| !p.is_empty()) {
            let (name, array) = match part.strip_suffix("[]") {
                Some(name) => (name, true),
                None => (part, false),
            };
            out.push(Step::Key(
                match name {
                    "NAME" => "p",
                    "MATCH" => "/",
                    "HEADER" => "X-Probe",
                    other => other,
                }
                .to_string(),
            ));
            if array {
                out.push(Step::Index);
            }
        }
        out
    }

    fn set(mut node: &mut Node, path: &[Step], value: &str) {
        for step in path {
            node = match step {
                Step::Key(k) => {
                    if !matches!(node, Node::Table(_)) {
                        *node = Node::Table(IndexMap::new());
                    }
                    let Node::Table(t) = node else { unreachable!() };
                    t.entry(k.clone())
                        .or_insert_with(|| Node::Table(IndexMap::new()))
                }
                Step::Index => {
                    if !matches!(node, Node::Array(a) if !a.is_empty()) {
                        *node = Node::Array(vec![Node::Table(IndexMap::new())]);
                    }
                    let Node::Array(a) = node else { unreachable!() };
                    &mut a[0]
                }
            };
        }
        *node = Node::Value(value.to_string());
    }

    fn inline(node: &Node) -> String {
        match node {
            Node::Value(v) => v.clone(),
            Node::Array(items) => {
                let items: Vec<String> = items.iter().map(inline).collect();
                format!("[{}]", items.join(", "))
            }
            Node::Table(t) => {
                let items: Vec<String> = t
                    .iter()
                    .map(|(k, v)| format!("{} = {}", crate::quote_key(k), inline(v)))
                    .collect();
                format!("{{ {} }}", items.join(", "))
            }
        }
    }

    /// A valid file (one server, one location) with `value` set at
    /// `pattern`'s path, parsed: validation gets as far as the key.
    fn parse_with(pattern: &str, value: &str) -> Result<crate::Config, ConfigError> {
        let mut root = Node::Table(IndexMap::new());
        set(&mut root, &steps("servers.p.listen"), "\"127.0.0.1:0\"");
        set(
            &mut root,
            &steps("servers.p.locations.MATCH.return.status"),
            "200",
        );
        set(&mut root, &steps(pattern), value);
        let Node::Table(t) = &root else {
            unreachable!()
        };
        let text: String = t
            .iter()
            .map(|(k, v)| format!("{} = {}\n", crate::quote_key(k), inline(v)))
            .collect();
        crate::parse_str_with(
            &text,
            std::path::Path::new("/probe.toml"),
            crate::Resolve::Loopback,
        )
    }

    fn unknown(r: &Result<crate::Config, ConfigError>) -> Option<&[String]> {
        match r {
            Err(ConfigError {
                kind: ErrorKind::UnknownKey { expected, .. },
                ..
            }) => Some(expected),
            _ => None,
        }
    }

    #[test]
    fn every_listed_key_is_accepted() {
        for key in KEYS {
            for value in ["1", "\"x\""] {
                let r = parse_with(key, value);
                assert!(
                    unknown(&r).is_none(),
                    "{key} = {value} is refused as unknown: {}",
                    r.err().map(|e| e.to_string()).unwrap_or_default()
                );
            }
        }
        // The probe does see an unknown key, in serde's tables and in
        // those validation reads by hand.
        for bogus in [
            "bogus",
            "runtime.bogus",
            "upstreams.NAME.servers[].bogus",
            "servers.NAME.bogus",
            "servers.NAME.listen[].bogus",
            "servers.NAME.limit_req.bogus",
            "servers.NAME.locations.MATCH.limit_conn.bogus",
            "servers.NAME.locations.MATCH.return.bogus",
        ] {
            assert!(unknown(&parse_with(bogus, "1")).is_some(), "{bogus}");
        }
    }

    #[test]
    fn not_planned_directives_say_so() {
        for name in [
            "proxy_cache",
            "proxy_cache_valid",
            "ssi",
            "sub_filter_once",
            "content_by_lua_block",
            "access_by_lua",
            "js_content",
        ] {
            assert!(not_planned(name).is_some(), "{name}");
            let e = parse_with(&format!("servers.NAME.locations.MATCH.{name}"), "1")
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains("not planned"), "{name}: {e}");
        }
        for name in ["proxy_pass", "proxy_buffering", "ssl_ciphers", "json"] {
            assert!(not_planned(name).is_none(), "{name}");
        }
        for (name, _) in NOT_PLANNED {
            let bare = name.trim_matches('*');
            assert!(
                !KEYS.iter().any(|k| k.ends_with(&format!(".{bare}"))),
                "{name}"
            );
        }
    }

    #[test]
    fn every_accepted_key_is_listed() {
        let is_placeholder = |s: &str| matches!(s, "NAME" | "MATCH" | "HEADER");
        let mut tables = vec![""];
        for key in KEYS {
            let (parent, last) = key.rsplit_once('.').unwrap_or(("", key));
            if !is_placeholder(last) && !tables.contains(&parent) {
                tables.push(parent);
            }
        }
        assert!(tables.len() > 15, "{tables:?}");
        for table in tables {
            let probe = match table {
                "" => "zz_probe".to_string(),
                t => format!("{t}.zz_probe"),
            };
            let r = parse_with(&probe, "1");
            let Some(accepted) = unknown(&r) else {
                panic!(
                    "{table}: a made-up key is not refused as unknown: {:?}",
                    r.err().map(|e| e.to_string())
                );
            };
            assert!(!accepted.is_empty(), "{table}");
            for name in accepted {
                let full = match table {
                    "" => name.clone(),
                    t => format!("{t}.{name}"),
                };
                let listed = KEYS.iter().any(|k| {
                    k.strip_prefix(full.as_str())
                        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
                });
                assert!(
                    listed,
                    "{full} is accepted by the parser but not in keys.rs"
                );
            }
        }
    }

    #[test]
    fn places_of_a_key() {
        assert_eq!(
            places_of("proxy_pass"),
            vec!["servers.NAME.locations.MATCH"]
        );
        assert_eq!(
            places_of("keepalive_timeout"),
            vec!["upstreams.NAME", "servers.NAME"]
        );
        assert_eq!(places_of("runtime"), vec!["the top level"]);
        assert_eq!(
            places_of("addr"),
            vec!["upstreams.NAME.servers[]", "servers.NAME.listen[]"]
        );
        assert!(places_of("bogus").is_empty());
    }
}
