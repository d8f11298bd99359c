//! The validated [`Config`] written back as `ringway.toml` text, every key
//! with its effective value: what `ringway -T` prints (nginx's `-T` dumps
//! its configuration too).
//!
//! The text is TOML that ringway itself accepts, and parsing it again
//! gives the same model (the tests hold both). Values are written in
//! ringway's own units: durations in seconds ("60s", or "500ms" below a
//! second), sizes in the largest unit that divides them ("64k", "10m"),
//! rates as "10r/s" or "30r/m"; templates with their variables' canonical
//! names (`$document_uri` is written `$uri`).
//!
//! What the model does not keep is written the way the model has it:
//! - a server's `limit_req` and `limit_req_status` are shown on each of its
//!   locations, which inherit them (so is its `limit_conn`, which the
//!   server also keeps for its connections);
//! - a server's `access` rules and `default_type` are shown on each of
//!   its locations that inherit them (written only where a location has
//!   some);
//! - `server_name = "_"` (and none) is the default server, written `"_"`;
//! - a `listen` address that any server marks `proxy_protocol = true` is
//!   written as a `{ addr, proxy_protocol }` table wherever it appears.
//!
//! Keys that have no effect where they stand are left out rather than
//! shown with a value nothing reads: the `proxy_*` keys, `upgrade` and
//! `client_max_body_size` on a location that does not proxy, and the
//! `proxy_ssl_*` keys on a location whose `proxy_pass` is not `https://`.

use std::fmt::Write as _;
use std::time::Duration;

use crate::log_format::{LogFormat, LogPart, LogVar};
use crate::model::*;

/// `config` as `ringway.toml` text with every default filled in.
pub fn render(config: &Config) -> String {
    let mut out = Out::default();
    runtime(&mut out, &config.runtime);
    log(&mut out, &config.log);
    match &config.metrics {
        Some(m) => {
            out.table("metrics");
            out.kv("listen", string(&m.listen.to_string()));
        }
        None => out.comment("[metrics] is not set: no metrics listener"),
    }
    real_ip(&mut out, &config.real_ip);
    for z in &config.limit_req_zones {
        out.table(&format!("limit_req_zones.{}", key(&z.name)));
        out.kv("key", string(&template(&z.key)));
        out.kv("rate", string(&rate(z.rate_milli)));
        out.kv("size", string(&size(z.size)));
    }
    for z in &config.limit_conn_zones {
        out.table(&format!("limit_conn_zones.{}", key(&z.name)));
        out.kv("key", string(&template(&z.key)));
        out.kv("size", string(&size(z.size)));
    }
    for (name, u) in &config.upstreams {
        upstream(&mut out, name, u);
    }
    for s in &config.servers {
        server(&mut out, config, s);
    }
    out.text
}

/// The text being written, with a blank line before each table.
#[derive(Default)]
struct Out {
    text: String,
}

impl Out {
    fn table(&mut self, path: &str) {
        self.blank();
        let _ = writeln!(self.text, "[{path}]");
    }

    fn kv(&mut self, k: &str, value: impl AsRef<str>) {
        let _ = writeln!(self.text, "{} = {}", key(k), value.as_ref());
    }

    fn comment(&mut self, what: &str) {
        self.blank();
        let _ = writeln!(self.text, "# {what}");
    }

    fn blank(&mut self) {
        if !self.text.is_empty() && !self.text.ends_with("\n\n") {
            self.text.push('\n');
        }
    }
}

fn runtime(out: &mut Out, r: &Runtime) {
    out.table("runtime");
    out.kv(
        "workers",
        match r.workers {
            Workers::Auto => string("auto"),
            Workers::Count(n) => n.to_string(),
        },
    );
    out.kv("pin_cores", r.pin_cores.to_string());
    out.kv(
        "driver",
        string(match r.driver {
            DriverChoice::Auto => "auto",
            DriverChoice::IoUring => "io_uring",
            DriverChoice::Epoll => "epoll",
        }),
    );
    out.kv("max_connections", r.max_connections.to_string());
    out.kv("shutdown_timeout", string(&duration(r.shutdown_timeout)));
    out.kv("tunnel_buffer", string(&size(r.tunnel_buffer as u64)));
    out.kv("splice", r.splice.to_string());
    out.kv(
        "tunnel_relay",
        string(match r.tunnel_relay {
            TunnelRelay::Auto => "auto",
            TunnelRelay::Syscall => "syscall",
        }),
    );
    out.kv("relay_buffers", r.relay_buffers.to_string());
    out.kv("drain_spread", string(&duration(r.drain_spread)));
    out.kv(
        "drain_old_tunnels_after",
        string(
            &r.drain_old_tunnels_after
                .map_or("off".to_string(), duration),
        ),
    );
    out.kv(
        "resolver",
        array(r.resolver.iter().map(|a| string(&a.to_string()))),
    );
    out.kv("resolver_valid", string(&duration(r.resolver_valid)));
    out.kv("upgrade_timeout", string(&duration(r.upgrade_timeout)));
}

fn log(out: &mut Out, l: &Log) {
    out.table("log");
    out.kv("level", string(&l.level));
    out.kv(
        "access_log",
        string(&match &l.access_log {
            AccessLog::Off => "off".to_string(),
            AccessLog::Stdout => "stdout".to_string(),
            AccessLog::File(p) => p.to_string_lossy().into_owned(),
        }),
    );
    out.kv("log_format", string(&log_format(&l.format)));
}

fn real_ip(out: &mut Out, r: &RealIp) {
    if r.set_real_ip_from.is_empty() {
        // Validation refuses a [real_ip] without set_real_ip_from.
        out.comment("[real_ip] is not set: $remote_addr is the connection's peer");
        return;
    }
    out.table("real_ip");
    out.kv(
        "set_real_ip_from",
        array(r.set_real_ip_from.iter().map(|c| string(&c.to_string()))),
    );
    match &r.header {
        Some(RealIpHeader::ProxyProtocol) => out.kv("header", string("proxy_protocol")),
        Some(RealIpHeader::Field(h)) => out.kv("header", string(h)),
        None => out
            .text
            .push_str("# header is not set: $remote_addr is the connection's peer\n"),
    }
    out.kv("recursive", r.recursive.to_string());
    out.kv(
        "proxy_protocol_timeout",
        string(&duration(r.proxy_protocol_timeout)),
    );
}

fn upstream(out: &mut Out, name: &str, u: &Upstream) {
    out.table(&format!("upstreams.{}", key(name)));
    out.kv(
        "balance",
        string(match u.balance {
            Balance::RoundRobin => "round_robin",
            Balance::IpHash => "ip_hash",
            Balance::LeastConn => "least_conn",
            Balance::Hash => "hash",
        }),
    );
    if let Some(h) = &u.hash_key {
        out.kv("hash_key", string(&template(h)));
    }
    out.text.push_str("servers = [\n");
    for s in &u.servers {
        let _ = writeln!(
            out.text,
            "  {},",
            inline(&[
                ("addr", string(&s.addr_text)),
                ("weight", s.weight.to_string()),
                ("backup", s.backup.to_string()),
                ("down", s.down.to_string()),
                ("resolve", s.resolve.to_string()),
            ])
        );
    }
    out.text.push_str("]\n");
    out.kv("max_fails", u.max_fails.to_string());
    out.kv("fail_timeout", string(&duration(u.fail_timeout)));
    out.kv("keepalive", u.keepalive.to_string());
    out.kv("keepalive_timeout", string(&duration(u.keepalive_timeout)));
    let on_change = |c: OnChange| {
        string(match c {
            OnChange::Keep => "keep",
            OnChange::Close => "close",
        })
    };
    out.kv("on_down", on_change(u.on_down));
    out.kv("on_remove", on_change(u.on_remove));
    out.kv("slow_start", string(&duration(u.slow_start)));
    if let Some(r) = &u.rebalance {
        out.kv(
            "rebalance",
            inline(&[
                ("max_skew", format!("{:?}", r.max_skew)),
                ("rate", string(&format!("{}/s", r.rate_per_sec))),
            ]),
        );
    }
    if let Some(h) = &u.health_check {
        out.table(&format!("upstreams.{}.health_check", key(name)));
        out.kv("type", string(h.kind.name()));
        if h.kind != CheckKind::Tcp {
            out.kv("uri", string(&h.uri));
        }
        if !h.expect_status.is_empty() {
            out.kv(
                "expect_status",
                format!(
                    "[{}]",
                    h.expect_status
                        .iter()
                        .map(u16::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
        if let Some(b) = &h.expect_body {
            out.kv("expect_body", string(b));
        }
        out.kv("interval", string(&duration(h.interval)));
        out.kv("jitter", string(&duration(h.jitter)));
        out.kv("timeout", string(&duration(h.timeout)));
        out.kv("fails", h.fails.to_string());
        out.kv("passes", h.passes.to_string());
        if let Some(p) = h.port {
            out.kv("port", p.to_string());
        }
    }
}

fn server(out: &mut Out, config: &Config, s: &Server) {
    let path = format!("servers.{}", key(&s.name));
    out.table(&path);
    out.kv(
        "listen",
        array(
            s.listen
                .iter()
                .map(|a| {
                    let addr = string(&a.to_string());
                    if config.proxy_protocol.contains(a) {
                        inline(&[("addr", addr), ("proxy_protocol", "true".into())])
                    } else {
                        addr
                    }
                })
                .chain(
                    s.listen_unix
                        .iter()
                        .map(|p| string(&format!("unix:{}", p.display()))),
                ),
        ),
    );
    out.kv(
        "server_name",
        if s.server_names.is_empty() {
            string("_")
        } else {
            array(s.server_names.iter().map(|n| {
                string(&match n {
                    ServerName::Exact(e) => e.clone(),
                    ServerName::WildcardStart(w) => format!("*{w}"),
                    ServerName::WildcardEnd(w) => format!("{w}*"),
                })
            }))
        },
    );
    if let Some(t) = &s.tls {
        out.kv("tls", inline(&tls_fields(t)));
    }
    out.kv(
        "http2",
        match s.http2 {
            Http2::Off => "false".to_string(),
            Http2::Tls => "true".to_string(),
            Http2::H2c => string("h2c"),
        },
    );
    out.kv(
        "http2_max_concurrent_streams",
        s.http2_max_concurrent_streams.to_string(),
    );
    out.kv("http2_websocket", s.http2_websocket.to_string());
    match s.header_line_max {
        Some((n, line)) => out.kv(
            "large_client_header_buffers",
            string(&format!("{n} {}", size(line as u64))),
        ),
        None => out.kv(
            "client_header_buffer_size",
            string(&size(s.client_header_buffer_size as u64)),
        ),
    }
    out.kv("max_headers", s.max_headers.to_string());
    out.kv(
        "client_header_timeout",
        string(&duration(s.client_header_timeout)),
    );
    out.kv("keepalive_timeout", string(&duration(s.keepalive_timeout)));
    out.kv("server_tokens", s.server_tokens.to_string());
    if !s.error_page.is_empty() {
        out.kv(
            "error_page",
            array(s.error_page.iter().map(|p| string(&p.to_line()))),
        );
    }
    rewrite_rules(out, &s.rewrites);
    out.kv("keepalive_requests", s.keepalive_requests.to_string());
    out.kv("send_timeout", string(&duration(s.send_timeout)));
    out.kv(
        "underscores_in_headers",
        s.underscores_in_headers.to_string(),
    );
    if let Some(c) = &s.limit_conn {
        out.kv("limit_conn", limit_conn(config, c));
    }
    out.kv("limit_conn_status", s.limit_conn_status.to_string());
    for l in &s.locations {
        location(out, config, &format!("{path}.locations.{}", key(&l.key)), l);
    }
}

fn location(out: &mut Out, config: &Config, path: &str, l: &Location) {
    out.table(path);
    match &l.action {
        Action::Return {
            status,
            body,
            location,
        } => {
            let mut fields = vec![("status", status.to_string())];
            if let Some(b) = body {
                fields.push(("body", string(&template(b))));
            }
            if let Some(to) = location {
                fields.push(("location", string(&template(to))));
            }
            out.kv("return", inline(&fields));
        }
        Action::Static(st) => {
            match &st.root {
                StaticRoot::Root(p) => out.kv("root", root_text(p, &st.root_vars)),
                StaticRoot::Alias(p) => out.kv("alias", root_text(p, &st.root_vars)),
            }
            out.kv("index", array(st.index.iter().map(|i| string(i))));
            if !st.try_files.is_empty() {
                out.kv(
                    "try_files",
                    array(st.try_files.iter().map(|t| string(&template(t)))),
                );
            }
        }
        Action::Proxy(p) => {
            out.kv("proxy_pass", string(&p.text));
            out.kv(
                "proxy_connect_timeout",
                string(&duration(l.proxy_connect_timeout)),
            );
            out.kv(
                "proxy_read_timeout",
                string(&duration(l.proxy_read_timeout)),
            );
            out.kv(
                "proxy_send_timeout",
                string(&duration(l.proxy_send_timeout)),
            );
            out.kv("proxy_buffering", l.proxy_buffering.to_string());
            out.kv("proxy_buffers", string(&size(l.proxy_buffers as u64)));
            out.kv(
                "client_max_body_size",
                string(&size(l.client_max_body_size)),
            );
            out.kv("upgrade", array(l.upgrade.iter().map(|u| string(u))));
            if l.proxy_redirect.is_empty() {
                out.kv("proxy_redirect", string("off"));
            } else {
                out.kv(
                    "proxy_redirect",
                    array(
                        l.proxy_redirect
                            .iter()
                            .map(|(from, to)| string(&format!("{from} {to}"))),
                    ),
                );
            }
            out.kv(
                "proxy_request_buffering",
                l.proxy_request_buffering.to_string(),
            );
            let n = &l.next_upstream;
            out.kv(
                "proxy_next_upstream",
                array(n.conditions().iter().map(|c| string(c))),
            );
            out.kv("proxy_next_upstream_tries", n.tries.to_string());
            out.kv("proxy_next_upstream_timeout", string(&duration(n.within)));
            if p.tls {
                let ssl = &l.proxy_ssl;
                out.kv("proxy_ssl_verify", ssl.verify.to_string());
                match &ssl.trusted_certificate {
                    Some(ca) => out.kv(
                        "proxy_ssl_trusted_certificate",
                        string(&ca.to_string_lossy()),
                    ),
                    None => out.text.push_str(
                        "# proxy_ssl_trusted_certificate is not set: the system's roots\n",
                    ),
                }
                out.kv("proxy_ssl_server_name", ssl.server_name.to_string());
                match &ssl.name {
                    Some(n) => out.kv("proxy_ssl_name", string(n)),
                    None => out
                        .text
                        .push_str("# proxy_ssl_name is not set: the proxy_pass host\n"),
                }
            }
        }
    }
    if let Some(r) = &l.limit_req {
        out.kv("limit_req", limit_req(config, r));
    }
    out.kv("limit_req_status", l.limit_req_status.to_string());
    if let Some(c) = &l.limit_conn {
        out.kv("limit_conn", limit_conn(config, c));
    }
    out.kv("limit_conn_status", l.limit_conn_status.to_string());
    if !l.etag {
        out.kv("etag", "false");
    }
    if let Some(t) = &l.default_type {
        out.kv("default_type", string(t));
    }
    out.kv(
        "client_body_timeout",
        string(&duration(l.client_body_timeout)),
    );
    if let Some(e) = &l.expires {
        out.kv("expires", string(&e.to_string()));
    }
    if l.internal {
        out.kv("internal", "true");
    }
    if !l.error_page.is_empty() {
        out.kv(
            "error_page",
            array(l.error_page.iter().map(|p| string(&p.to_line()))),
        );
    }
    if l.proxy_intercept_errors {
        out.kv("proxy_intercept_errors", "true");
    }
    rewrite_rules(out, &l.rewrites);
    gzip(out, &l.gzip);
    if !l.access.is_empty() {
        out.kv(
            "access",
            array(l.access.iter().map(|r| string(&r.to_string()))),
        );
    }
    {
        let hidden: Vec<&String> = l
            .proxy_hide
            .iter()
            .filter(|h| !DEFAULT_PROXY_HIDE.contains(&h.as_str()))
            .collect();
        if !hidden.is_empty() {
            out.kv("proxy_hide_header", array(hidden.iter().map(|h| string(h))));
        }
        let passed: Vec<&&str> = DEFAULT_PROXY_HIDE
            .iter()
            .filter(|d| !l.proxy_hide.iter().any(|h| h == *d))
            .collect();
        if !passed.is_empty() {
            out.kv("proxy_pass_header", array(passed.iter().map(|h| string(h))));
        }
    }
    // Sub-tables last: a table's own keys must come before them.
    if matches!(l.action, Action::Proxy(_)) {
        headers(
            out,
            &format!("{path}.proxy_set_header"),
            &l.proxy_set_header,
        );
    }
    if !l.add_header.is_empty() {
        out.table(&format!("{path}.add_header"));
        for h in &l.add_header {
            let value = string(&template(&h.value));
            if h.always {
                out.kv(
                    &h.name,
                    inline(&[("value", value), ("always", "true".into())]),
                );
            } else {
                out.kv(&h.name, value);
            }
        }
    }
}

fn headers(out: &mut Out, path: &str, headers: &[(String, Template)]) {
    if headers.is_empty() {
        return;
    }
    out.table(path);
    for (name, value) in headers {
        out.kv(name, string(&template(value)));
    }
}

/// A location's gzip settings, all of them when any differs from nginx's
/// defaults.
fn gzip(out: &mut Out, g: &Gzip) {
    let d = Gzip::nginx_default();
    let same = g.on == d.on
        && g.types == d.types
        && g.min_length == d.min_length
        && g.level == d.level
        && g.vary == d.vary
        && g.proxied == d.proxied
        && g.disable.is_empty()
        && g.static_files == d.static_files;
    if same {
        return;
    }
    out.kv("gzip", g.on.to_string());
    out.kv("gzip_types", array(g.types.iter().map(|t| string(t))));
    out.kv("gzip_min_length", g.min_length.to_string());
    out.kv("gzip_comp_level", g.level.to_string());
    out.kv("gzip_vary", g.vary.to_string());
    out.kv("gzip_proxied", array(g.proxied.iter().map(|p| string(p))));
    out.kv(
        "gzip_disable",
        array(
            g.disable
                .iter()
                .map(|r| string(r.as_str().trim_start_matches("(?i)"))),
        ),
    );
    out.kv("gzip_static", g.static_files.to_string());
}

fn tls_fields(t: &Tls) -> Vec<(&'static str, String)> {
    let mut f = Vec::new();
    if t.reject_handshake {
        f.push(("reject_handshake", "true".to_string()));
    }
    if let (Some(c), Some(k)) = (&t.cert, &t.key) {
        f.push(("cert", string(&c.to_string_lossy())));
        f.push(("key", string(&k.to_string_lossy())));
    }
    if t.max_version == TlsVersion::V1_3 {
        f.push(("min_version", string(tls_version(t.min_version))));
    } else {
        let versions = [TlsVersion::V1_2, TlsVersion::V1_3]
            .into_iter()
            .filter(|v| (t.min_version..=t.max_version).contains(v));
        f.push((
            "protocols",
            array(versions.map(|v| string(&format!("TLSv{}", tls_version(v))))),
        ));
    }
    if let Some(list) = &t.ciphers {
        let names: Vec<&str> = list
            .iter()
            .filter_map(|iana| TLS12_SUITES.iter().find(|s| s.1 == iana).map(|s| s.0))
            .collect();
        f.push(("ciphers", string(&names.join(":"))));
    }
    if !t.session_tickets {
        f.push(("session_tickets", "false".to_string()));
    }
    f.push(("session_timeout", string(&duration(t.session_timeout))));
    if !t.session_cache {
        f.push(("session_cache", "false".to_string()));
    }
    f.push(("handshake_timeout", string(&duration(t.handshake_timeout))));
    f
}

fn limit_req(config: &Config, r: &LimitReq) -> String {
    let mut fields = vec![
        ("zone", string(&config.limit_req_zones[r.zone].name)),
        ("burst", r.burst.to_string()),
    ];
    match r.delay {
        LimitDelay::All => {}
        LimitDelay::None => fields.push(("nodelay", "true".into())),
        LimitDelay::After(n) => fields.push(("delay", n.to_string())),
    }
    inline(&fields)
}

fn limit_conn(config: &Config, c: &LimitConn) -> String {
    inline(&[
        ("zone", string(&config.limit_conn_zones[c.zone].name)),
        ("max", c.max.to_string()),
    ])
}

fn tls_version(v: TlsVersion) -> &'static str {
    match v {
        TlsVersion::V1_2 => "1.2",
        TlsVersion::V1_3 => "1.3",
    }
}

/// A TOML string on one line: literal ('...') when it holds a quote or
/// backslash that a literal string can carry as is (regex locations read
/// as written), basic ("...") with escapes otherwise.
pub(crate) fn string(s: &str) -> String {
    let control = |c: char| c.is_control();
    if s.contains(['"', '\\']) && !s.contains('\'') && !s.chars().any(control) {
        return format!("'{s}'");
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if control(c) => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A key: bare when TOML allows it, quoted otherwise.
pub(crate) fn key(k: &str) -> String {
    if !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        k.to_string()
    } else {
        string(k)
    }
}

fn array(items: impl Iterator<Item = String>) -> String {
    format!("[{}]", items.collect::<Vec<_>>().join(", "))
}

fn inline(fields: &[(&str, String)]) -> String {
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{} = {v}", key(k)))
        .collect();
    format!("{{ {} }}", body.join(", "))
}

/// Whole seconds as "60s", anything finer in milliseconds.
fn duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// Bytes in the largest unit that divides them: "64k", "10m", "1g", "100".
fn size(n: u64) -> String {
    for (unit, shift) in [("g", 30), ("m", 20), ("k", 10)] {
        if n != 0 && n.trailing_zeros() >= shift {
            return format!("{}{unit}", n >> shift);
        }
    }
    n.to_string()
}

/// A rate in thousandths of a request per second, as the text that parses
/// to it: "10r/s" when whole per second, else "N r/m" (a per-minute rate
/// is stored rounded down, so N is the one that rounds to it).
fn rate(milli: u64) -> String {
    let (per_second, rest) = (milli / 1000, milli % 1000);
    if rest == 0 {
        return format!("{per_second}r/s");
    }
    // milli = floor(n * 1000 / 60) = floor(n * 50 / 3): n = ceil(milli * 3 / 50).
    let n = (milli * 3).div_ceil(50);
    if n * 1000 / 60 == milli {
        format!("{n}r/m")
    } else {
        // Not a rate the parser makes; the nearest per-minute one.
        format!("{}r/m", (milli * 60 / 1000).max(1))
    }
}

/// A template as text: each variable by its canonical name, in braces
/// where a name character follows it.
fn template(t: &Template) -> String {
    let mut s = String::new();
    for (i, part) in t.parts.iter().enumerate() {
        match part {
            Part::Literal(l) => s.push_str(l),
            Part::Var(v) => {
                let next = match t.parts.get(i + 1) {
                    Some(Part::Literal(l)) => l.chars().next(),
                    _ => None,
                };
                push_var(&mut s, &var_name(v), next);
            }
        }
    }
    s
}

fn push_var(s: &mut String, name: &str, next: Option<char>) {
    if next.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
        let _ = write!(s, "${{{name}}}");
    } else {
        let _ = write!(s, "${name}");
    }
}

/// `root`/`alias`: the template when it has variables, else the path.
fn root_text(dir: &std::path::Path, vars: &Option<Template>) -> String {
    match vars {
        Some(t) => string(&template(t)),
        None => string(&dir.to_string_lossy()),
    }
}

/// A level's `set` and `rewrite` lines, when it has any.
fn rewrite_rules(out: &mut Out, r: &RewriteRules) {
    if !r.set.is_empty() {
        let lines = r.set.iter().map(|v| {
            let value = template(&v.value);
            string(format!("${} {value}", v.name).trim_end())
        });
        out.kv("set", array(lines));
    }
    if !r.rewrite.is_empty() {
        let lines = r.rewrite.iter().map(|rw| {
            let flag = match rw.flag {
                RewriteFlag::Next => "",
                RewriteFlag::Last => " last",
                RewriteFlag::Break => " break",
                RewriteFlag::Redirect => " redirect",
                RewriteFlag::Permanent => " permanent",
            };
            string(&format!("{} {}{flag}", rw.regex.as_str(), template(&rw.to)))
        });
        out.kv("rewrite", array(lines));
    }
}

fn var_name(v: &Var) -> String {
    let fixed = match v {
        Var::Host => "host",
        Var::RemoteAddr => "remote_addr",
        Var::RemotePort => "remote_port",
        Var::ServerAddr => "server_addr",
        Var::ServerPort => "server_port",
        Var::ServerName => "server_name",
        Var::Scheme => "scheme",
        Var::RequestUri => "request_uri",
        Var::Uri => "uri",
        Var::Args => "args",
        Var::RequestMethod => "request_method",
        Var::ProxyHost => "proxy_host",
        Var::ProxyAddXForwardedFor => "proxy_add_x_forwarded_for",
        Var::ConnectionUpgrade => "connection_upgrade",
        Var::Https => "https",
        Var::SslProtocol => "ssl_protocol",
        Var::SslServerName => "ssl_server_name",
        Var::BinaryRemoteAddr => "binary_remote_addr",
        Var::ProxyProtocolAddr => "proxy_protocol_addr",
        Var::RealIpRemoteAddr => "realip_remote_addr",
        Var::Http(h) => return format!("http_{}", h.replace('-', "_")),
        Var::Cookie(c) => return format!("cookie_{c}"),
        Var::Arg(a) => return format!("arg_{a}"),
        Var::IsArgs => "is_args",
        Var::Capture(n) => return n.to_string(),
        Var::Named(n) => n,
    };
    fixed.to_string()
}

fn log_format(f: &LogFormat) -> String {
    let parts = match f {
        LogFormat::Combined => return "combined".into(),
        LogFormat::Ringway => return "ringway".into(),
        LogFormat::Json => return "json".into(),
        LogFormat::Custom(parts) => parts,
    };
    let mut s = String::new();
    for (i, part) in parts.iter().enumerate() {
        match part {
            LogPart::Literal(l) => s.push_str(l),
            LogPart::Var(v) => {
                let next = match parts.get(i + 1) {
                    Some(LogPart::Literal(l)) => l.chars().next(),
                    _ => None,
                };
                push_var(&mut s, &log_var_name(v), next);
            }
        }
    }
    s
}

fn log_var_name(v: &LogVar) -> String {
    use LogVar::*;
    let fixed = match v {
        RemoteAddr => "remote_addr",
        RemotePort => "remote_port",
        RemoteUser => "remote_user",
        RealipRemoteAddr => "realip_remote_addr",
        ProxyProtocolAddr => "proxy_protocol_addr",
        TimeLocal => "time_local",
        TimeIso8601 => "time_iso8601",
        Msec => "msec",
        Request => "request",
        RequestMethod => "request_method",
        RequestUri => "request_uri",
        Uri => "uri",
        Args => "args",
        ServerProtocol => "server_protocol",
        Status => "status",
        BodyBytesSent => "body_bytes_sent",
        BytesSent => "bytes_sent",
        RequestLength => "request_length",
        RequestTime => "request_time",
        Connection => "connection",
        ConnectionRequests => "connection_requests",
        Host => "host",
        ServerName => "server_name",
        ServerPort => "server_port",
        Scheme => "scheme",
        Http(h) => return format!("http_{}", h.replace('-', "_")),
        UpstreamAddr => "upstream_addr",
        UpstreamStatus => "upstream_status",
        UpstreamConnectTime => "upstream_connect_time",
        UpstreamHeaderTime => "upstream_header_time",
        UpstreamResponseTime => "upstream_response_time",
        UpstreamBytesSent => "upstream_bytes_sent",
        UpstreamBytesReceived => "upstream_bytes_received",
        Pipe => "pipe",
        TunnelCloseReason => "tunnel_close_reason",
        TunnelBytesFromClient => "tunnel_bytes_from_client",
        TunnelBytesToClient => "tunnel_bytes_to_client",
        SslProtocol => "ssl_protocol",
        SslServerName => "ssl_server_name",
    };
    fixed.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parse(text: &str) -> Config {
        crate::parse_str(text, Path::new("/etc/ringway/ringway.toml"))
            .unwrap_or_else(|e| panic!("{e}\n---\n{text}"))
    }

    /// The model as text, without what names a place in the file (lines,
    /// warnings), so two parses of different texts can be compared.
    fn comparable(mut c: Config) -> String {
        c.warnings.clear();
        for s in &mut c.servers {
            s.http2_line = None;
            if let Some(t) = &mut s.tls {
                t.line = 0;
                t.cert_line = 0;
                t.key_line = 0;
            }
            for l in &mut s.locations {
                l.proxy_ssl.line = 0;
            }
        }
        format!("{c:#?}")
    }

    /// `text` → model → rendered text → model: the same model, and the
    /// rendered text renders to itself.
    fn round_trip(text: &str) -> String {
        let first = parse(text);
        let rendered = render(&first);
        let second = parse(&rendered);
        assert_eq!(
            comparable(first),
            comparable(second.clone()),
            "the rendered text parses to another model:\n{rendered}"
        );
        assert_eq!(render(&second), rendered);
        rendered
    }

    #[test]
    fn the_full_example_round_trips() {
        let text = round_trip(crate::tests::FULL);
        assert!(text.contains("\n[upstreams.websocket_servers]\nbalance = \"ip_hash\"\n"));
        assert!(text.contains(
            "  { addr = \"127.0.0.1:3002\", weight = 1, backup = true, down = false, resolve = false },\n"
        ));
        assert!(text.contains("\n[servers.app.locations.\"/socket.io/\"]\nproxy_pass = \"http://websocket_servers\"\n"));
        assert!(text.contains("proxy_read_timeout = \"86400s\"\n"));
    }

    /// Each value of `http2` renders to itself, with the stream limit.
    #[test]
    fn http2_round_trips() {
        for (v, out) in [("true", "true"), ("false", "false"), ("\"H2C\"", "\"h2c\"")] {
            let text = round_trip(&format!(
                "[servers.s]\nlisten = \"127.0.0.1:80\"\nhttp2 = {v}\nhttp2_max_concurrent_streams = 9\n"
            ));
            assert!(
                text.contains(&format!(
                    "\nhttp2 = {out}\nhttp2_max_concurrent_streams = 9\n"
                )),
                "{text}"
            );
        }
    }

    /// Every `examples/*.toml` (a new one is covered without editing this).
    #[test]
    fn the_examples_round_trip() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).expect("examples/") {
            let path = entry.expect("dir entry").path();
            if path.extension().is_some_and(|e| e == "toml") {
                let text = std::fs::read_to_string(&path).expect("read example");
                let first = crate::parse_str(&text, &path)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                let rendered = render(&first);
                let second = crate::parse_str(&rendered, &path).unwrap_or_else(|e| {
                    panic!(
                        "{}: the rendering does not parse: {e}\n{rendered}",
                        path.display()
                    )
                });
                assert_eq!(
                    comparable(first),
                    comparable(second.clone()),
                    "{}",
                    path.display()
                );
                assert_eq!(render(&second), rendered, "{}", path.display());
                seen += 1;
            }
        }
        assert!(seen >= 1, "no examples/*.toml in {}", dir.display());
    }

    /// Every kind of value, each away from its default.
    const EVERYTHING: &str = r#"
[runtime]
workers = 3
pin_cores = false
driver = "epoll"
max_connections = 5000
shutdown_timeout = "20s"
tunnel_buffer = 1536
splice = false
tunnel_relay = "syscall"
relay_buffers = 64
drain_spread = "1500ms"
drain_old_tunnels_after = "1h"
resolver = ["127.0.0.1:5353", "[::1]:53"]
resolver_valid = "30s"
upgrade_timeout = "5s"

[log]
level = "debug,ringway=trace"
access_log = "/var/log/ringway/access.log"
log_format = "${remote_addr}x $status \"$http_X_Request_Id\" $ end$"

[metrics]
listen = "127.0.0.1:9145"

[real_ip]
set_real_ip_from = ["10.1.2.3/8", "::1"]
header = "proxy_protocol"
proxy_protocol_timeout = "2s"

[limit_req_zones.per_ip]
key = "$binary_remote_addr"
rate = "30r/m"
size = "1m"

[limit_req_zones."api keys"]
key = "$http_x_api_key"
rate = "1r/m"

[limit_conn_zones.conn_ip]
key = "$binary_remote_addr"
size = "100k"

[upstreams.hashed]
balance = "hash"
hash_key = "${arg_room}x$cookie_sid"
servers = [
  { addr = "127.0.0.1:4000", weight = 3 },
  { addr = "[::1]:4001", down = true },
  { addr = "127.0.0.1:4002", backup = true },
  { addr = "chat.internal:4003", resolve = true },
]
max_fails = 0
fail_timeout = "500ms"
keepalive = 0
keepalive_timeout = "90s"

on_down = "close"
on_remove = "close"

[upstreams.least]
balance = "least_conn"
servers = [{ addr = "127.0.0.1:4010" }]
slow_start = "30s"
rebalance = { max_skew = 0.25, rate = "20/s" }

[upstreams.least.health_check]
type = "http"
uri = "/healthz?deep=1"
expect_status = [200, 204]
expect_body = "ok"
interval = "2s"
jitter = "200ms"
timeout = "750ms"
fails = 3
passes = 2
port = 4011

[servers.edge]
listen = [{ addr = "127.0.0.1:8443", proxy_protocol = true }, "127.0.0.2:8443"]
server_name = ["*.Example.com", "mail.*", "exact.example.org"]
tls = { cert = "/etc/ringway/a.pem", key = "/etc/ringway/a.key", min_version = "TLSv1.3", handshake_timeout = "3s" }
http2 = true
client_header_buffer_size = "3k"
max_headers = 50
client_header_timeout = "15s"
client_body_timeout = "20s"
keepalive_timeout = "0"
keepalive_requests = 50
send_timeout = "1m"
underscores_in_headers = true
limit_req = { zone = "per_ip", burst = 20, nodelay = true }
limit_req_status = 429
limit_conn = { zone = "conn_ip", max = 10 }
limit_conn_status = 429
access = ["deny 192.168.1.1", "allow 192.168.0.0/16", "allow ::1", "deny all"]
server_tokens = true
gzip = true
gzip_types = ["application/json", "text/css"]
gzip_vary = true
error_page = ["500 502 503 504 /50x.html", "404 =200 @fallback"]
proxy_intercept_errors = true
set = ["$backend least", "$empty"]
rewrite = ['^/old/(?<rest>.*)$ /new/$rest?from=old last', "^/go/(.*)$ https://$host/$1 permanent"]
proxy_hide_header = ["X-Powered-By"]
proxy_pass_header = ["Server"]
[servers.edge.add_header]
Strict-Transport-Security = { value = "max-age=63072000", always = true }
X-Frame-Options = "SAMEORIGIN"

[servers.edge.locations."= /health"]
return = { status = 200, body = "OK $host\n" }

[servers.edge.locations."^~ /static/"]
alias = "/srv/static/"
index = ["index.htm", "default.html"]
try_files = ["$uri", "${uri}x/", "=404"]
expires = "30d"
default_type = "application/octet-stream"
etag = false
[servers.edge.locations."^~ /static/".add_header]
Cache-Control = "max-age=60"

[servers.edge.locations.'~* \.(png|jpg)$']
root = "/srv/img"

[servers.edge.locations.'~ ^/rooms/(?<room>[a-z]+)/(.*)$']
alias = "/srv/rooms/$room/$2"

[servers.edge.locations."~ ^/Case/(?<room>[a-z]+)"]
proxy_pass = "http://least"
set = ["$who $room-$1"]
rewrite = ["^/Case/x/(.*)$ /Case/y/$1 break", '^/Case/(\d+)$ /n/$1?']

[servers.edge.locations."/moved/"]
rewrite = "^/moved/(.*)$ /new/$1 redirect"

[servers.edge.locations."/api/"]
proxy_pass = "https://hashed/v1/"
proxy_ssl_verify = false
proxy_ssl_trusted_certificate = "/etc/ssl/ca.pem"
proxy_ssl_server_name = false
proxy_ssl_name = "api.internal"
proxy_buffering = true
proxy_buffers = "1m"
client_max_body_size = 0
client_body_timeout = "5s"
proxy_next_upstream = ["error", "invalid_header", "http_503", "http_429", "non_idempotent"]
proxy_request_buffering = false
proxy_redirect = ["default", "http://internal:8080/v1/ https://api.example.com/"]
proxy_next_upstream_tries = 3
proxy_next_upstream_timeout = "10s"
upgrade = []
limit_req = { zone = "api keys", delay = 4 }
limit_conn = { zone = "conn_ip", max = 2 }
limit_conn_status = 503
access = ["allow 10.0.0.0/8", "deny all"]
proxy_hide_header = ["X-Internal"]
proxy_pass_header = ["X-Accel-Buffering", "Date"]
[servers.edge.locations."/api/".proxy_set_header]
Host = "$proxy_host"
X-Empty = ""
X-Token = "$http_x_token;$document_uri?$query_string"

[servers.edge.locations."/ws/"]
proxy_pass = "https://127.0.0.1:9443"
upgrade = ["WebSocket", "mqtt/5"]

[servers.edge.locations."@fallback"]
proxy_pass = "http://least"

[servers.edge.locations."= /50x.html"]
root = "/srv/errors"
internal = true
gzip_static = true
gzip_min_length = 1000
gzip_comp_level = 6
gzip_proxied = ["expired", "no-cache"]
gzip_disable = ["msie6", "Bot/"]
error_page = ["403 = /other", "404 https://example.com/missing"]

[servers."plain one"]
listen = ["127.0.0.1:8080", "unix:/run/ringway/app.sock"]

[servers.old]
listen = "127.0.0.3:8443"
server_name = "old.example.com"
large_client_header_buffers = "4 8k"
tls = { cert = "/etc/ringway/b.pem", key = "/etc/ringway/b.key", protocols = ["TLSv1.2"], ciphers = "ECDHE-RSA-AES128-GCM-SHA256:ECDHE+CHACHA20:!ECDSA", session_tickets = false, session_timeout = "1h", session_cache = false }

[servers.old.locations."/"]
return = { status = 204 }

[servers.nobody]
listen = "127.0.0.3:8443"
tls = { reject_handshake = true }

[servers.nobody.locations."/"]
return = { status = 204 }

[servers."plain one".locations."/"]
return = { status = 301, url = "https://$host$request_uri" }
"#;

    #[test]
    fn every_kind_of_value_round_trips() {
        let text = round_trip(EVERYTHING);
        for line in [
            "workers = 3\n",
            "tunnel_buffer = \"1536\"\n",
            "drain_spread = \"1500ms\"\n",
            "drain_old_tunnels_after = \"3600s\"\n",
            "log_format = '${remote_addr}x $status \"$http_x_request_id\" $ end$'\n",
            "set_real_ip_from = [\"10.0.0.0/8\", \"::1/128\"]\n",
            "rate = \"30r/m\"\n",
            "rate = \"1r/m\"\n",
            "[limit_req_zones.\"api keys\"]\n",
            "size = \"100k\"\n",
            "hash_key = \"${arg_room}x$cookie_sid\"\n",
            "listen = [{ addr = \"127.0.0.1:8443\", proxy_protocol = true }, \"127.0.0.2:8443\"]\n",
            "server_name = [\"*.example.com\", \"mail.*\", \"exact.example.org\"]\n",
            "tls = { cert = \"/etc/ringway/a.pem\", key = \"/etc/ringway/a.key\", min_version = \"1.3\", session_timeout = \"300s\", handshake_timeout = \"3s\" }\n",
            "keepalive_timeout = \"0s\"\n",
            "send_timeout = \"60s\"\n",
            "return = { status = 200, body = \"OK $host\\n\" }\n",
            "try_files = [\"$uri\", \"${uri}x/\", \"=404\"]\n",
            "[servers.edge.locations.'~* \\.(png|jpg)$']\n",
            "client_max_body_size = \"0\"\n",
            "limit_req = { zone = \"api keys\", burst = 0, delay = 4 }\n",
            "limit_req = { zone = \"per_ip\", burst = 20, nodelay = true }\n",
            "X-Token = \"$http_x_token;$uri?$args\"\n",
            "upgrade = [\"websocket\", \"mqtt/5\"]\n",
            "# proxy_ssl_trusted_certificate is not set: the system's roots\n",
            "[servers.\"plain one\"]\n",
            "server_name = \"_\"\n",
            "return = { status = 301, location = \"https://$host$request_uri\" }\n",
        ] {
            assert!(text.contains(line), "no {line:?} in\n{text}");
        }
    }

    /// Every key the parser accepts is written (by its last name; `url`
    /// is `location`'s other spelling), so a new key cannot be left out.
    #[test]
    fn every_key_is_written() {
        let text = render(&parse(EVERYTHING));
        for path in crate::keys::KEYS {
            let leaf = path
                .split('.')
                .rev()
                .map(|p| p.trim_end_matches("[]"))
                .find(|p| !matches!(*p, "NAME" | "MATCH" | "HEADER"))
                .expect("a key has a name");
            if leaf == "url" {
                continue;
            }
            let written = text.contains(&format!("\n{leaf} = "))
                || text.contains(&format!(" {leaf} = "))
                || text.contains(&format!("[{leaf}]"))
                || text.contains(&format!("[{leaf}."))
                || text.contains(&format!(".{leaf}]"))
                || text.contains(&format!(".{leaf}."));
            assert!(written, "{path}: no `{leaf}` in\n{text}");
        }
    }

    /// A minimal file, every default written out.
    #[test]
    fn defaults_are_filled_in() {
        let text = render(&parse(
            "[servers.s]\nlisten = \"127.0.0.1:8080\"\n\
             [servers.s.locations.\"/\"]\nproxy_pass = \"http://127.0.0.1:9000/\"\n",
        ));
        assert_eq!(
            text,
            r#"[runtime]
workers = "auto"
pin_cores = true
driver = "auto"
max_connections = 200000
shutdown_timeout = "30s"
tunnel_buffer = "16k"
splice = true
tunnel_relay = "auto"
relay_buffers = 256
drain_spread = "10s"
drain_old_tunnels_after = "off"
resolver = []
resolver_valid = "10s"
upgrade_timeout = "30s"

[log]
level = "info"
access_log = "stdout"
log_format = "ringway"

# [metrics] is not set: no metrics listener

# [real_ip] is not set: $remote_addr is the connection's peer

[servers.s]
listen = ["127.0.0.1:8080"]
server_name = "_"
http2 = false
http2_max_concurrent_streams = 128
http2_websocket = true
client_header_buffer_size = "16k"
max_headers = 100
client_header_timeout = "60s"
keepalive_timeout = "75s"
server_tokens = false
keepalive_requests = 1000
send_timeout = "60s"
underscores_in_headers = false
limit_conn_status = 503

[servers.s.locations."/"]
proxy_pass = "http://127.0.0.1:9000/"
proxy_connect_timeout = "60s"
proxy_read_timeout = "60s"
proxy_send_timeout = "60s"
proxy_buffering = false
proxy_buffers = "64k"
client_max_body_size = "1m"
upgrade = ["websocket"]
proxy_redirect = ["http://127.0.0.1:9000/ /"]
proxy_request_buffering = false
proxy_next_upstream = ["error", "timeout"]
proxy_next_upstream_tries = 0
proxy_next_upstream_timeout = "0s"
limit_req_status = 503
limit_conn_status = 503
client_body_timeout = "60s"
"#
        );
    }

    #[test]
    fn units() {
        assert_eq!(duration(Duration::from_secs(3600)), "3600s");
        assert_eq!(duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(duration(Duration::ZERO), "0s");
        assert_eq!(size(0), "0");
        assert_eq!(size(1000), "1000");
        assert_eq!(size(64 << 10), "64k");
        assert_eq!(size(10 << 20), "10m");
        assert_eq!(size(3 << 30), "3g");
        assert_eq!(size((1 << 20) + 1024), "1025k");
        for s in [
            "plain",
            "~* \\.png$",
            "say \"hi\"",
            "it's \\ \"both\"",
            "line\nbreak\ttab\r\u{1}\u{7f}\u{85}",
            "",
        ] {
            let t: toml::Table = toml::from_str(&format!("k = {}", string(s))).unwrap();
            assert_eq!(t["k"].as_str(), Some(s), "{}", string(s));
            assert!(!string(s).contains('\n'), "{}", string(s));
        }
        assert_eq!(string("~ ^/a\\.b"), "'~ ^/a\\.b'");
        assert_eq!(key("X-Real-IP"), "X-Real-IP");
        assert_eq!(key("/ws/"), "\"/ws/\"");
        for (text, d) in [("1500ms", 1500), ("60s", 60_000)] {
            assert_eq!(crate::parse_duration(text), Some(Duration::from_millis(d)));
        }
    }

    /// Every per-minute and per-second rate the parser makes is written
    /// as a rate that parses back to it.
    #[test]
    fn rates_parse_back() {
        let zone = |rate: &str| {
            parse(&format!(
                "[limit_req_zones.z]\nkey = \"$remote_addr\"\nrate = \"{rate}\"\n\
                 [servers.s]\nlisten = \"127.0.0.1:8080\"\n"
            ))
            .limit_req_zones[0]
                .rate_milli
        };
        for n in (1..=240).chain([599, 600, 601, 3599, 60_000]) {
            let milli = zone(&format!("{n}r/m"));
            assert_eq!(zone(&rate(milli)), milli, "{n}r/m");
        }
        assert_eq!(rate(zone("10r/s")), "10r/s");
        assert_eq!(rate(zone("120r/m")), "2r/s");
        assert_eq!(rate(zone("7r/m")), "7r/m");
    }

    /// Each variable is written by a name that parses to it.
    #[test]
    fn variables_are_written_by_name() {
        let names = [
            "host",
            "remote_addr",
            "remote_port",
            "server_addr",
            "server_port",
            "server_name",
            "scheme",
            "request_uri",
            "uri",
            "args",
            "request_method",
            "proxy_host",
            "proxy_add_x_forwarded_for",
            "connection_upgrade",
            "https",
            "ssl_protocol",
            "ssl_server_name",
            "binary_remote_addr",
            "proxy_protocol_addr",
            "realip_remote_addr",
            "http_x_forwarded_for",
            "cookie_Session",
            "arg_room_id",
        ];
        for name in names {
            let text = format!("<${name}>${{{name}}}_");
            let t = crate::parse_template(&text).unwrap();
            assert_eq!(template(&t), text, "{name}");
        }
        for (alias, canonical) in [
            ("$document_uri", "$uri"),
            ("$query_string", "$args"),
            ("$http_X_Token", "$http_x_token"),
        ] {
            assert_eq!(template(&crate::parse_template(alias).unwrap()), canonical);
        }
        for name in crate::log_format::VAR_NAMES {
            let text = format!("<${name}>${{{name}}}_");
            let f = crate::log_format::parse(&text).unwrap();
            assert_eq!(log_format(&f), text, "{name}");
        }
        for built_in in ["ringway", "combined", "json"] {
            assert_eq!(
                log_format(&crate::log_format::parse(built_in).unwrap()),
                built_in
            );
        }
    }
}
