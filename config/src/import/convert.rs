//! An nginx directive tree → ringway.toml text, every part commented with
//! the nginx `file:line` it came from. What cannot be carried over is a
//! [`Loss`] (reported, and written as a comment where it was); directives
//! with no effect in ringway are listed once as ignored.
//!
//! Inheritance is nginx's, resolved here: a location gets the directives
//! of its server and of `http` (and of the locations it is nested in)
//! that it does not set itself, a level that sets any of a group
//! (`proxy_set_header`, `add_header`, `allow`/`deny`, `error_page`, …)
//! replacing its parents' whole group. Every setting is then written on
//! the location, where ringway reads it; the server's own keys on the
//! server.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::tree::Directive;
use crate::render::{key, string};

/// A directive that could not be carried over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loss {
    /// `file:line`.
    pub at: String,
    pub directive: String,
    /// Why, and what to do.
    pub why: String,
}

impl std::fmt::Display for Loss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}: {}", self.at, self.directive, self.why)
    }
}

/// The result of an import.
#[derive(Debug, Default)]
pub struct Imported {
    pub toml: String,
    pub losses: Vec<Loss>,
    /// Directives with no effect in ringway: (name, `file:line`).
    pub ignored: Vec<(String, String)>,
}

/// Why a directive has no ringway equivalent, and what to do.
const UNSUPPORTED: &str =
    "not supported in ringway: leave it out, or do it upstream (docs/CONFIG.md lists what ringway carries)";

/// Why `if` is not carried over, and what to do.
const IF: &str = "if is not supported in ringway: express the condition as locations (by path), or decide it upstream";

/// Directives that change nothing ringway does (OS tuning, nginx's own
/// process and buffer management, things ringway always does).
const HARMLESS: &[&str] = &[
    "sendfile",
    "tcp_nopush",
    "tcp_nodelay",
    "server_names_hash_bucket_size",
    "server_names_hash_max_size",
    "types_hash_max_size",
    "types_hash_bucket_size",
    "variables_hash_max_size",
    "variables_hash_bucket_size",
    "map_hash_max_size",
    "map_hash_bucket_size",
    "types",
    "pid",
    "user",
    "error_log",
    "multi_accept",
    "use",
    "accept_mutex",
    "worker_cpu_affinity",
    "worker_rlimit_nofile",
    "ssl_prefer_server_ciphers",
    "ssl_dhparam",
    "ssl_ecdh_curve",
    "proxy_http_version",
    "proxy_buffer_size",
    "proxy_busy_buffers_size",
    "proxy_temp_file_write_size",
    "proxy_max_temp_file_size",
    "proxy_temp_path",
    "client_body_buffer_size",
    "client_body_temp_path",
    "keepalive_disable",
    "reset_timedout_connection",
    "open_file_cache",
    "open_file_cache_valid",
    "open_file_cache_min_uses",
    "open_file_cache_errors",
    "charset",
    "source_charset",
    "server_name_in_redirect",
    "port_in_redirect",
    "absolute_redirect",
    "chunked_transfer_encoding",
    "load_module",
    "resolver_timeout",
    "lingering_close",
    "lingering_time",
    "lingering_timeout",
    "log_not_found",
    "msie_padding",
    "aio",
    "directio",
    "output_buffers",
    "postpone_output",
    "send_lowat",
];

/// `proxy_cache off`: what ringway always does (it caches nothing).
fn caches_nothing(d: &Directive) -> bool {
    d.name == "proxy_cache" && d.args.first().is_some_and(|a| a == "off")
}

/// Directives whose occurrences at one level replace a parent's as a
/// group (nginx's array directives), keyed by the group's first name.
fn group_of(name: &str) -> &str {
    match name {
        "allow" | "deny" => "allow",
        n => n,
    }
}

/// Directives that belong to the level they are written at (nginx's
/// rewrite module, content handlers, locations), never inherited.
fn not_inherited(name: &str) -> bool {
    matches!(
        name,
        "rewrite"
            | "set"
            | "return"
            | "if"
            | "location"
            | "proxy_pass"
            | "try_files"
            | "internal"
            | "limit_except"
    )
}

/// The TOML of one table: `key = value  # at` lines, then sub-tables.
#[derive(Default)]
struct Table {
    lines: Vec<String>,
    subtables: Vec<(String, Vec<String>)>,
}

impl Table {
    fn kv(&mut self, k: &str, v: String, at: &str) {
        self.lines.push(format!("{} = {v}  # {at}", key(k)));
    }

    fn comment(&mut self, text: &str) {
        self.lines.push(format!("# {text}"));
    }

    fn sub(&mut self, name: &str, k: &str, v: String, at: &str) {
        let line = format!("{} = {v}  # {at}", key(k));
        match self.subtables.iter_mut().find(|(n, _)| n == name) {
            Some((_, lines)) => lines.push(line),
            None => self.subtables.push((name.to_string(), vec![line])),
        }
    }

    fn write(&self, out: &mut String, path: &str) {
        let _ = writeln!(out, "\n[{path}]");
        for l in &self.lines {
            let _ = writeln!(out, "{l}");
        }
        for (name, lines) in &self.subtables {
            let _ = writeln!(out, "[{path}.{}]", key(name));
            for l in lines {
                let _ = writeln!(out, "{l}");
            }
        }
    }
}

struct Cx<'a> {
    losses: Vec<Loss>,
    ignored: Vec<(String, String)>,
    /// The variables the configuration makes (`set`, named captures).
    made: std::collections::BTreeSet<String>,
    /// `file:line` shown relative to this directory.
    base: &'a std::path::Path,
}

impl Cx<'_> {
    /// A variable in `d`'s arguments that ringway does not have, if any.
    fn unknown_variable(&self, d: &Directive) -> Option<String> {
        d.args
            .iter()
            .find_map(|a| crate::template::parse_with(a, &|n| self.made.contains(n)).err())
    }

    /// `d` if ringway has every variable it uses; else reported.
    fn usable<'d>(&mut self, d: &'d Directive) -> Option<&'d Directive> {
        match self.unknown_variable(d) {
            None => Some(d),
            Some(v) => {
                self.lose(d, format!("uses ${v}, a variable ringway does not have"));
                None
            }
        }
    }

    fn at(&self, d: &Directive) -> String {
        let f = d.file.strip_prefix(self.base).unwrap_or(&d.file);
        format!("{}:{}", f.display(), d.line)
    }

    fn lose(&mut self, d: &Directive, why: impl Into<String>) -> String {
        let l = Loss {
            at: self.at(d),
            directive: d.name.clone(),
            why: why.into(),
        };
        let comment = format!("NOT CARRIED OVER: {l}");
        self.losses.push(l);
        comment
    }

    fn ignore(&mut self, d: &Directive) {
        let at = self.at(d);
        self.ignored.push((d.name.clone(), at));
    }
}

/// Convert the directives of an nginx configuration (`base`: the
/// directory `file:line`s are shown relative to).
pub fn convert(tree: &[Directive], base: &std::path::Path) -> Imported {
    let mut made = std::collections::BTreeSet::new();
    made_variables(tree, &mut made);
    let mut cx = Cx {
        losses: Vec::new(),
        ignored: Vec::new(),
        made,
        base,
    };
    // A fragment with no `http` block (a conf.d file) is read as the
    // inside of one.
    let (main, http): (Vec<&Directive>, Vec<&Directive>) =
        match tree.iter().find(|d| d.name == "http") {
            Some(h) => (
                tree.iter().filter(|d| d.name != "http").collect(),
                h.block.iter().flatten().collect(),
            ),
            None => {
                let (top, rest): (Vec<&Directive>, Vec<&Directive>) = tree.iter().partition(|d| {
                    matches!(
                        d.name.as_str(),
                        "events"
                            | "worker_processes"
                            | "worker_rlimit_nofile"
                            | "user"
                            | "pid"
                            | "error_log"
                            | "load_module"
                    )
                });
                (top, rest)
            }
        };
    let mut out = String::new();
    let mut sections: Vec<(String, Table)> = Vec::new();

    // [runtime] from the main context and `events`.
    let mut runtime = Table::default();
    let mut workers: Option<u64> = None;
    for d in &main {
        match d.name.as_str() {
            "worker_processes" => match d.args.first().map(String::as_str) {
                Some("auto") => runtime.kv("workers", string("auto"), &cx.at(d)),
                Some(n) => match n.parse::<u64>() {
                    Ok(n) => {
                        workers = Some(n);
                        runtime.kv("workers", n.to_string(), &cx.at(d));
                    }
                    Err(_) => {
                        let c = cx.lose(d, "not a number or auto: write it as nginx reads it");
                        runtime.comment(&c);
                    }
                },
                None => {}
            },
            "events" => {
                for e in d.block.iter().flatten() {
                    match e.name.as_str() {
                        "worker_connections" => {
                            match e.args.first().and_then(|n| n.parse::<u64>().ok()) {
                                Some(n) => {
                                    // nginx's is per worker; ringway's per process.
                                    let total = n * workers.unwrap_or(1);
                                    runtime.kv("max_connections", total.to_string(), &cx.at(e));
                                    if workers.is_none() {
                                        runtime.comment("worker_connections is per worker in nginx; with worker_processes auto, multiply by the cores");
                                    }
                                }
                                None => {
                                    let c = cx.lose(e, "not a number: write it as nginx reads it");
                                    runtime.comment(&c);
                                }
                            }
                        }
                        _ if HARMLESS.contains(&e.name.as_str()) => cx.ignore(e),
                        _ => {
                            let c = cx.lose(e, UNSUPPORTED);
                            runtime.comment(&c);
                        }
                    }
                }
            }
            "worker_rlimit_nofile" => {
                runtime.comment(&format!(
                    "{}: worker_rlimit_nofile {}: ringway raises its open-file limit to the hard limit itself (raise that with LimitNOFILE= or ulimit -Hn)",
                    cx.at(d),
                    d.args.join(" ")
                ));
                cx.ignore(d);
            }
            n if HARMLESS.contains(&n) => cx.ignore(d),
            _ => {
                let c = cx.lose(d, UNSUPPORTED);
                runtime.comment(&c);
            }
        }
    }
    // nginx's http-level `resolver` serves every upstream name with
    // `resolve`: ringway's is the process's.
    for d in http.iter().filter(|d| d.name == "resolver") {
        let at = cx.at(d);
        let mut addrs: Vec<String> = Vec::new();
        for a in &d.args {
            if let Some(v) = a.strip_prefix("valid=") {
                let v = nginx_time(v).unwrap_or_else(|| v.to_string());
                runtime.kv("resolver_valid", string(&v), &at);
                runtime.comment("nginx's valid= replaces the answers' TTL; ringway's resolver_valid is a floor under it");
            } else if a.contains('=') {
                let c = cx.lose(
                    d,
                    format!("resolver parameter `{a}` is not supported: leave it out"),
                );
                runtime.comment(&c);
            } else if a.parse::<std::net::SocketAddr>().is_ok()
                || a.trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok()
            {
                addrs.push(string(a));
            } else {
                let c = cx.lose(d, format!("resolver `{a}` is a name: ringway's resolver is an IP address with an optional port"));
                runtime.comment(&c);
            }
        }
        if !addrs.is_empty() {
            runtime.kv("resolver", format!("[{}]", addrs.join(", ")), &at);
        }
    }
    if !runtime.lines.is_empty() {
        sections.push(("runtime".into(), runtime));
    }

    // http level: zones, real IP, logs, maps, upstreams; the rest is
    // inherited by the servers.
    let mut inherited: Vec<&Directive> = Vec::new();
    let mut log = Table::default();
    let mut real_ip = Table::default();
    let mut upstreams: Vec<(String, Table)> = Vec::new();
    let mut zones: Vec<(String, Table)> = Vec::new();
    let mut formats: BTreeMap<String, String> = BTreeMap::new();
    let mut set_real_ip: Vec<String> = Vec::new();
    let mut set_real_ip_at = String::new();
    let mut servers: Vec<&Directive> = Vec::new();
    for d in &http {
        let at = cx.at(d);
        match d.name.as_str() {
            "server" => servers.push(d),
            "resolver" => {} // [runtime] above
            "upstream" => upstreams.push(upstream(&mut cx, d)),
            "map" => map_block(&mut cx, d),
            "limit_req_zone" | "limit_conn_zone" => {
                if let Some(z) = zone(&mut cx, d) {
                    zones.push(z);
                }
            }
            "set_real_ip_from" => {
                set_real_ip.extend(d.args.iter().cloned());
                set_real_ip_at = at;
            }
            "real_ip_header" => real_ip.kv("header", string(&d.args.join(" ")), &at),
            "real_ip_recursive" => real_ip.kv("recursive", on(d).to_string(), &at),
            "log_format" => {
                if let Some((name, parts)) = d.args.split_first() {
                    let parts: Vec<&str> = parts
                        .iter()
                        .map(String::as_str)
                        .filter(|p| !p.starts_with("escape="))
                        .collect();
                    formats.insert(name.clone(), parts.concat());
                }
            }
            "access_log" => match d.args.first().map(String::as_str) {
                Some("off") => log.kv("access_log", string("off"), &at),
                Some(path) => {
                    log.kv("access_log", string(path), &at);
                    match d.args.get(1).map(String::as_str) {
                        None | Some("combined") => log.kv("log_format", string("combined"), &at),
                        Some(f) => match formats.get(f) {
                            Some(text) => log.kv("log_format", string(text), &at),
                            None => {
                                let c = cx
                                    .lose(d, format!("log_format `{f}` is not defined before it"));
                                log.comment(&c);
                            }
                        },
                    }
                }
                None => {}
            },
            _ => inherited.push(d),
        }
    }
    if !set_real_ip.is_empty() {
        real_ip.lines.insert(
            0,
            format!(
                "set_real_ip_from = {}  # {set_real_ip_at}",
                array(&set_real_ip)
            ),
        );
    }
    if !log.lines.is_empty() {
        sections.push(("log".into(), log));
    }
    if !real_ip.lines.is_empty() {
        sections.push(("real_ip".into(), real_ip));
    }
    for (name, t) in zones {
        sections.push((name, t));
    }
    for (name, t) in upstreams {
        sections.push((format!("upstreams.{}", key(&name)), t));
    }

    // nginx's default server of an address is the one marked
    // `default_server`, else the first listed; ringway's is the first
    // without a name, else the first listed. Marked servers go first;
    // where the two rules still pick differently, it is a loss.
    servers.sort_by_key(|s| !listens(s).iter().any(|(_, default)| *default));
    default_servers(&mut cx, &servers);
    // Servers, named by their first name.
    let mut names: Vec<String> = Vec::new();
    let mut server_sections: Vec<(String, Table)> = Vec::new();
    for s in servers {
        let block: Vec<&Directive> = s.block.iter().flatten().collect();
        let first = block
            .iter()
            .find(|d| d.name == "server_name")
            .and_then(|d| d.args.first())
            .filter(|n| *n != "_" && !n.is_empty())
            .cloned()
            .unwrap_or_else(|| "default".into());
        let mut name = first.clone();
        let mut n = 2;
        while names.contains(&name) {
            name = format!("{first}-{n}");
            n += 1;
        }
        names.push(name.clone());
        // ringway's `tls` is a server's, for all its addresses: a server
        // with TLS and plain listens becomes two.
        let ssl: Vec<bool> = block
            .iter()
            .filter(|d| d.name == "listen")
            .map(|d| d.args[1..].iter().any(|p| p == "ssl"))
            .collect();
        if ssl.contains(&true) && ssl.contains(&false) {
            server_sections.extend(server(&mut cx, s, &name, &inherited, &block, Some(false)));
            let tls_name = format!("{name}-tls");
            names.push(tls_name.clone());
            server_sections.extend(server(
                &mut cx,
                s,
                &tls_name,
                &inherited,
                &block,
                Some(true),
            ));
        } else {
            server_sections.extend(server(&mut cx, s, &name, &inherited, &block, None));
        }
    }
    sections.extend(server_sections);

    let _ = writeln!(
        out,
        "# Imported from nginx by `ringway import`: each line names the nginx file:line it came from."
    );
    if !cx.losses.is_empty() {
        let _ = writeln!(
            out,
            "# {} directive(s) could not be carried over: see the NOT CARRIED OVER lines.",
            cx.losses.len()
        );
    }
    if !cx.ignored.is_empty() {
        let mut seen: Vec<&str> = Vec::new();
        for (n, _) in &cx.ignored {
            if !seen.contains(&n.as_str()) {
                seen.push(n);
            }
        }
        let _ = writeln!(out, "# Ignored (no effect in ringway): {}", seen.join(", "));
    }
    for (path, t) in &sections {
        t.write(&mut out, path);
    }
    // A server written twice (TLS and plain halves) reports once.
    let mut losses: Vec<Loss> = Vec::new();
    for l in cx.losses {
        if !losses.contains(&l) {
            losses.push(l);
        }
    }
    Imported {
        toml: out,
        losses,
        ignored: cx.ignored,
    }
}

/// The names `set` gives and the named captures of location and
/// `rewrite` regexes, anywhere in the tree (nginx's variables are global).
fn made_variables(tree: &[Directive], out: &mut std::collections::BTreeSet<String>) {
    for d in tree {
        match d.name.as_str() {
            "set" => {
                if let Some(n) = d.args.first().and_then(|a| a.strip_prefix('$')) {
                    out.insert(n.to_string());
                }
            }
            "location" | "rewrite" => {
                for a in &d.args {
                    for part in a.split("(?").skip(1) {
                        let part = part.strip_prefix('P').unwrap_or(part);
                        if let Some(rest) = part.strip_prefix('<') {
                            if let Some(end) = rest.find('>') {
                                out.insert(rest[..end].to_string());
                            }
                        }
                    }
                }
            }
            _ => {}
        }
        if let Some(b) = &d.block {
            made_variables(b, out);
        }
    }
}

/// A TOML array of strings.
fn array(items: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|i| string(i)).collect();
    format!("[{}]", items.join(", "))
}

fn on(d: &Directive) -> bool {
    d.args.first().is_some_and(|a| a == "on")
}

/// nginx's time (`10`, `10s`, `1m30s`, `500ms`; no unit: seconds) as
/// ringway's duration text.
pub fn nginx_time(s: &str) -> Option<String> {
    let mut total_ms: u64 = 0;
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (mult, len) = if rest.starts_with("ms") {
            (1, 2)
        } else {
            match rest.chars().next() {
                None => (1_000, 0),
                Some('s') => (1_000, 1),
                Some('m') => (60_000, 1),
                Some('h') => (3_600_000, 1),
                Some('d') => (86_400_000, 1),
                Some('w') => (604_800_000, 1),
                Some('M') => (2_592_000_000, 1),
                Some('y') => (31_536_000_000, 1),
                Some(' ') => (1_000, 0),
                _ => return None,
            }
        };
        total_ms = total_ms.checked_add(n.checked_mul(mult)?)?;
        rest = rest[len..].trim_start();
    }
    Some(if total_ms % 1000 == 0 {
        format!("{}s", total_ms / 1000)
    } else {
        format!("{total_ms}ms")
    })
}

/// `map`: the `$http_upgrade` → `$connection_upgrade` idiom is dropped
/// (ringway sets `Connection` for an upgrade itself); any other map is a
/// loss.
fn map_block(cx: &mut Cx<'_>, d: &Directive) {
    if d.args.first().map(String::as_str) == Some("$http_upgrade") {
        cx.ignore(d);
        return;
    }
    cx.lose(
        d,
        "map is not supported in ringway; set the value upstream or per location",
    );
}

/// `limit_req_zone` / `limit_conn_zone` → a zone table.
fn zone(cx: &mut Cx<'_>, d: &Directive) -> Option<(String, Table)> {
    let at = cx.at(d);
    let mut t = Table::default();
    let mut name = None;
    let mut key_text = None;
    for a in &d.args {
        if let Some(z) = a.strip_prefix("zone=") {
            let (n, size) = z.split_once(':').unwrap_or((z, ""));
            name = Some(n.to_string());
            if !size.is_empty() {
                t.kv("size", string(size), &at);
            }
        } else if let Some(r) = a.strip_prefix("rate=") {
            t.kv("rate", string(r), &at);
        } else if a == "sync" {
            cx.lose(
                d,
                "sync (nginx Plus) has no equivalent; each ringway process counts its own",
            );
        } else if key_text.is_none() {
            key_text = Some(a.clone());
        }
    }
    let Some(name) = name else {
        cx.lose(d, "no zone=NAME:SIZE: name the zone as nginx requires");
        return None;
    };
    if let Some(k) = key_text {
        t.lines.insert(0, format!("key = {}  # {at}", string(&k)));
    }
    let table = if d.name == "limit_req_zone" {
        "limit_req_zones"
    } else {
        "limit_conn_zones"
    };
    Some((format!("{table}.{}", key(&name)), t))
}

/// `upstream NAME { ... }` → `[upstreams.NAME]`.
fn upstream(cx: &mut Cx<'_>, d: &Directive) -> (String, Table) {
    let name = d.args.first().cloned().unwrap_or_default();
    let mut t = Table::default();
    let mut servers: Vec<String> = Vec::new();
    // max_fails, fail_timeout: the first server's that names them.
    let mut fails: [Option<String>; 2] = [None, None];
    for e in d.block.iter().flatten() {
        let at = cx.at(e);
        match e.name.as_str() {
            "server" => {
                let Some(addr) = e.args.first() else { continue };
                let mut fields = vec![format!("addr = {}", string(addr))];
                for p in &e.args[1..] {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    match k {
                        "weight" => fields.push(format!("weight = {v}")),
                        "backup" => fields.push("backup = true".into()),
                        "down" => fields.push("down = true".into()),
                        "resolve" => fields.push("resolve = true".into()),
                        "max_fails" | "fail_timeout" => {
                            let v = if k == "fail_timeout" {
                                nginx_time(v).unwrap_or_else(|| v.to_string())
                            } else {
                                v.to_string()
                            };
                            let slot = &mut fails[usize::from(k == "fail_timeout")];
                            match slot {
                                Some(p) if *p != v => {
                                    let c = cx.lose(e, format!("{k} differs between servers: ringway has one {k} per group (the first server's is kept)"));
                                    t.comment(&c);
                                }
                                Some(_) => {}
                                None => *slot = Some(v),
                            }
                        }
                        _ => {
                            let c = cx.lose(
                                e,
                                format!("server parameter `{p}` is not supported: leave it out"),
                            );
                            t.comment(&c);
                        }
                    }
                }
                servers.push(format!("  {{ {} }},  # {at}", fields.join(", ")));
            }
            "ip_hash" => t.kv("balance", string("ip_hash"), &at),
            "least_conn" => t.kv("balance", string("least_conn"), &at),
            "hash" => {
                t.kv("balance", string("hash"), &at);
                t.kv(
                    "hash_key",
                    string(e.args.first().map_or("", String::as_str)),
                    &at,
                );
                if e.args.get(1).map(String::as_str) != Some("consistent") {
                    t.comment("nginx's plain `hash` (without consistent) remaps most keys when a server changes; ringway's hash is consistent");
                }
            }
            "keepalive" => t.kv(
                "keepalive",
                e.args.first().cloned().unwrap_or_default(),
                &at,
            ),
            "keepalive_timeout" => t.kv(
                "keepalive_timeout",
                string(&nginx_time(e.args.first().map_or("", String::as_str)).unwrap_or_default()),
                &at,
            ),
            // Shared memory for the group's state: ringway's is the
            // process's without one.
            "keepalive_requests" | "keepalive_time" | "zone" => cx.ignore(e),
            _ => {
                let c = cx.lose(e, "not supported in an upstream group: leave it out");
                t.comment(&c);
            }
        }
    }
    {
        let [mf, ft] = &fails;
        if let Some(mf) = mf {
            t.lines.push(format!("max_fails = {mf}"));
        }
        if let Some(ft) = ft {
            t.lines.push(format!("fail_timeout = {}", string(ft)));
        }
    }
    if !d.block.iter().flatten().any(|e| e.name == "keepalive") {
        // nginx pools no upstream connections unless told to; ringway's
        // default is a pool of 32.
        t.lines.push(format!(
            "keepalive = 0  # {} (no keepalive in nginx: no pool)",
            cx.at(d)
        ));
    }
    t.lines
        .push(format!("servers = [\n{}\n]", servers.join("\n")));
    (name, t)
}

/// A server's listen addresses (as written) and whether each is marked
/// `default_server`.
fn listens(s: &Directive) -> Vec<(String, bool)> {
    s.block
        .iter()
        .flatten()
        .filter(|d| d.name == "listen")
        .filter_map(|d| {
            let addr = d.args.first()?.clone();
            let default = d.args[1..]
                .iter()
                .any(|p| p == "default_server" || p == "default");
            Some((addr, default))
        })
        .collect()
}

/// Whether a server has a name a request can carry (not none, "" or "_").
fn named(s: &Directive) -> bool {
    s.block
        .iter()
        .flatten()
        .filter(|d| d.name == "server_name")
        .flat_map(|d| d.args.iter())
        .any(|n| !n.is_empty() && n != "_")
}

/// A loss for each address whose default server ringway would pick
/// differently from nginx (`servers` in output order).
fn default_servers(cx: &mut Cx<'_>, servers: &[&Directive]) {
    let mut addrs: Vec<String> = Vec::new();
    for s in servers {
        for (a, _) in listens(s) {
            if !addrs.contains(&a) {
                addrs.push(a);
            }
        }
    }
    for a in addrs {
        let on: Vec<&&Directive> = servers
            .iter()
            .filter(|s| listens(s).iter().any(|(x, _)| *x == a))
            .collect();
        let nginx = on
            .iter()
            .find(|s| listens(s).iter().any(|(x, d)| *x == a && *d))
            .or(on.first());
        let ringway = on.iter().find(|s| !named(s)).or(on.first());
        if let (Some(n), Some(r)) = (nginx, ringway) {
            if !std::ptr::eq(**n, **r) {
                let at = cx.at(r);
                cx.lose(
                    n,
                    format!("nginx's default server for {a}; ringway's is the first server there without a name ({at}): give that one a server_name, or remove this one's"),
                );
            }
        }
    }
}

/// The effective directives of a level: `own` over `parent`, nginx's way.
fn inherit<'d>(parent: &[&'d Directive], own: &[&'d Directive]) -> Vec<&'d Directive> {
    let set: Vec<&str> = own.iter().map(|d| group_of(&d.name)).collect();
    let mut out: Vec<&Directive> = parent
        .iter()
        .filter(|d| !not_inherited(&d.name) && !set.contains(&group_of(&d.name)))
        .copied()
        .collect();
    out.extend(own.iter().copied());
    out
}

/// Directives read on the server table (nginx's server-level ones).
fn server_key(name: &str) -> bool {
    matches!(
        name,
        "listen"
            | "server_name"
            | "ssl_certificate"
            | "ssl_certificate_key"
            | "ssl_protocols"
            | "ssl_ciphers"
            | "ssl_session_tickets"
            | "ssl_session_timeout"
            | "ssl_session_cache"
            | "ssl_reject_handshake"
            | "http2"
            | "client_header_buffer_size"
            | "large_client_header_buffers"
            | "client_header_timeout"
            | "keepalive_timeout"
            | "keepalive_requests"
            | "send_timeout"
            | "underscores_in_headers"
            | "server_tokens"
            | "ssl"
            | "ssl_stapling"
            | "ssl_stapling_verify"
            | "ssl_trusted_certificate"
            | "ssl_session_ticket_key"
            | "ssl_buffer_size"
            | "ssl_early_data"
    )
}

/// One server and its locations.
fn server(
    cx: &mut Cx<'_>,
    s: &Directive,
    name: &str,
    http: &[&Directive],
    block: &[&Directive],
    tls_only: Option<bool>,
) -> Vec<(String, Table)> {
    let path = format!("servers.{}", key(name));
    let own: Vec<&Directive> = block
        .iter()
        .filter(|d| d.name != "location")
        .copied()
        .collect();
    let effective = inherit(http, &own);
    let mut t = Table::default();
    let mut listen: Vec<String> = Vec::new();
    let mut tls: Vec<String> = Vec::new();
    let mut ssl = false;
    let mut http2 = false;
    for d in effective.iter().filter(|d| server_key(&d.name)) {
        let at = cx.at(d);
        let a0 = d.args.first().map(String::as_str).unwrap_or("");
        match d.name.as_str() {
            "listen" => {
                // One side of a server with both TLS and plain listens.
                let is_ssl = d.args[1..].iter().any(|p| p == "ssl");
                if tls_only.is_some_and(|want| want != is_ssl) {
                    continue;
                }
                let addr = match a0.strip_prefix("localhost:") {
                    Some(port) => format!("127.0.0.1:{port}"),
                    None => a0.to_string(),
                };
                let mut pp = false;
                for p in &d.args[1..] {
                    match p.as_str() {
                        "ssl" => ssl = true,
                        "http2" => http2 = true,
                        "proxy_protocol" => pp = true,
                        "default_server" | "default" | "reuseport" | "deferred" | "bind" => {}
                        p if p.starts_with("backlog=")
                            || p.starts_with("rcvbuf=")
                            || p.starts_with("sndbuf=")
                            || p.starts_with("fastopen=")
                            || p == "ipv6only=on"
                            || p.starts_with("so_keepalive=") => {}
                        p => {
                            let c = cx.lose(
                                d,
                                format!("listen parameter `{p}` is not supported: leave it out"),
                            );
                            t.comment(&c);
                        }
                    }
                }
                let addr = if addr.parse::<u16>().is_ok()
                    || addr.contains(':')
                    || addr.starts_with("unix:")
                {
                    addr
                } else {
                    // `listen 127.0.0.1` (no port): nginx's port 80.
                    format!("{addr}:80")
                };
                listen.push(if pp {
                    format!("{{ addr = {}, proxy_protocol = true }}  ", string(&addr))
                } else {
                    string(&addr)
                });
            }
            "server_name" => t.kv("server_name", array(&d.args), &at),
            "ssl_certificate" => tls.push(format!("cert = {}", string(a0))),
            "ssl_certificate_key" => tls.push(format!("key = {}", string(a0))),
            "ssl_protocols" => {
                let kept: Vec<String> = d
                    .args
                    .iter()
                    .filter(|p| matches!(p.as_str(), "TLSv1.2" | "TLSv1.3"))
                    .map(|p| string(p))
                    .collect();
                if kept.len() < d.args.len() {
                    t.comment(&format!(
                        "{at}: ssl_protocols: versions before TLSv1.2 are not offered by ringway"
                    ));
                }
                tls.push(format!("protocols = [{}]", kept.join(", ")));
            }
            "ssl_ciphers" => tls.push(format!("ciphers = {}", string(a0))),
            "ssl_session_tickets" => tls.push(format!("session_tickets = {}", on(d))),
            "ssl_session_timeout" => tls.push(format!(
                "session_timeout = {}",
                string(&nginx_time(a0).unwrap_or_default())
            )),
            "ssl_session_cache" => {
                tls.push(format!("session_cache = {}", !matches!(a0, "off" | "none")))
            }
            "ssl_reject_handshake" if on(d) => tls.push("reject_handshake = true".into()),
            "ssl_reject_handshake" => {}
            "ssl" if on(d) => ssl = true,
            "ssl" => {}
            "http2" => http2 = on(d),
            "client_header_buffer_size" | "large_client_header_buffers" => {
                t.kv(&d.name, string(&d.args.join(" ")), &at)
            }
            "client_header_timeout" | "keepalive_timeout" | "send_timeout" => {
                match nginx_time(a0) {
                    Some(v) => t.kv(&d.name, string(&v), &at),
                    None => {
                        let c = cx.lose(d, "not a time nginx reads (10s, 1m30s, 500ms): fix it");
                        t.comment(&c);
                    }
                }
            }
            "keepalive_requests" => t.kv(&d.name, a0.to_string(), &at),
            "underscores_in_headers" | "server_tokens" => t.kv(&d.name, on(d).to_string(), &at),
            _ => {
                let c = cx.lose(d, UNSUPPORTED);
                t.comment(&c);
            }
        }
    }
    t.lines.insert(
        0,
        format!("listen = [{}]  # {}", listen.join(", "), cx.at(s)),
    );
    if ssl {
        let has_cert = tls.iter().any(|l| l.starts_with("cert"));
        let reject = tls.iter().any(|l| l.starts_with("reject_handshake"));
        if has_cert || reject {
            t.lines.insert(1, format!("tls = {{ {} }}", tls.join(", ")));
        } else {
            let c = cx.lose(s, "a TLS listen without ssl_certificate");
            t.comment(&c);
        }
    }
    if http2 {
        // On a plain listener nginx's http2 is cleartext HTTP/2 (h2c).
        let value = if ssl { "true" } else { "\"h2c\"" };
        t.lines.push(format!("http2 = {value}  # {}", cx.at(s)));
    }
    let mut out = vec![(path.clone(), t)];
    // Server-level rewrite-module lines.
    let mut server_loc_level: Vec<&Directive> = Vec::new();
    let locations: Vec<&Directive> = block
        .iter()
        .filter(|d| d.name == "location")
        .copied()
        .collect();
    let returns: Vec<&Directive> = own
        .iter()
        .filter(|d| d.name == "return")
        .filter_map(|d| cx.usable(d))
        .collect();
    for d in &own {
        if matches!(d.name.as_str(), "rewrite" | "set") {
            if let Some(d) = cx.usable(d) {
                server_loc_level.push(d);
            }
        }
    }
    let mut st = std::mem::take(&mut out[0].1);
    rewrite_lines(cx, &mut st, &server_loc_level);
    if let Some(r) = returns.first() {
        if locations.is_empty() {
            // The whole server answers: a location for every path.
            let mut lt = Table::default();
            return_line(cx, &mut lt, r);
            out[0].1 = st;
            out.push((format!("{path}.locations.\"/\""), lt));
            return out;
        }
        match return_as_rewrite(r) {
            Some(line) => st.kv("rewrite", format!("[{}]", string(&line)), &cx.at(r)),
            None => {
                let c = cx.lose(r, "a server-level return with locations is carried only as a 301/302/307/308 redirect");
                st.comment(&c);
            }
        }
    }
    out[0].1 = st;
    // Locations, nested ones flattened: nested regexes first (nginx
    // tries them before the outer level's when their parent matched).
    let server_effective = inherit(http, &own);
    let mut flat: Vec<(String, Vec<&Directive>, &Directive)> = Vec::new();
    for l in &locations {
        flatten(cx, l, &server_effective, None, &mut flat);
    }
    for (k, directives, l) in flat {
        let mut lt = Table::default();
        location(cx, &mut lt, l, &directives);
        out.push((format!("{path}.locations.{}", string(&k)), lt));
    }
    out
}

/// A location and its nested ones, each with its effective directives.
fn flatten<'d>(
    cx: &mut Cx<'_>,
    l: &'d Directive,
    parent: &[&'d Directive],
    parent_prefix: Option<&str>,
    out: &mut Vec<(String, Vec<&'d Directive>, &'d Directive)>,
) {
    let k = l.args.join(" ");
    let own: Vec<&Directive> = l
        .block
        .iter()
        .flatten()
        .filter(|d| d.name != "location")
        .collect();
    let effective = inherit(parent, &own);
    let is_regex = matches!(l.args.first().map(String::as_str), Some("~" | "~*"));
    if let (Some(p), true) = (parent_prefix, is_regex) {
        let re = l.args.get(1).map_or("", String::as_str);
        if !re.starts_with(&format!("^{p}")) {
            cx.lose(
                l,
                format!("a regex location nested in `{p}` now applies to every path, not only under it; anchor it (`^{p}...`)"),
            );
        }
    }
    let prefix = match l.args.as_slice() {
        [p] if p.starts_with('/') => Some(p.clone()),
        [m, p] if m == "^~" || m == "=" => Some(p.clone()),
        _ => None,
    };
    out.push((k, effective.clone(), l));
    for n in l.block.iter().flatten().filter(|d| d.name == "location") {
        flatten(cx, n, &effective, prefix.as_deref().or(parent_prefix), out);
    }
}

/// `return CODE [TEXT|URL]` / `return URL` as a return table.
fn return_line(cx: &mut Cx<'_>, t: &mut Table, d: &Directive) {
    let at = cx.at(d);
    let (status, rest) = match d.args.first().map(|a| a.parse::<u16>()) {
        Some(Ok(code)) => (code, d.args.get(1)),
        _ => (302, d.args.first()),
    };
    let value = match rest {
        None => format!("{{ status = {status} }}"),
        Some(x) if matches!(status, 301 | 302 | 303 | 307 | 308) => {
            format!("{{ status = {status}, location = {} }}", string(x))
        }
        Some(x) => format!("{{ status = {status}, body = {} }}", string(x)),
    };
    t.kv("return", value, &at);
}

/// A server-level `return 301 URL` as the `rewrite` line that does the
/// same before any location: the URL whole (`?` at its end keeps the
/// request's query from being added again).
fn return_as_rewrite(d: &Directive) -> Option<String> {
    let code: u16 = d.args.first()?.parse().ok()?;
    let url = d.args.get(1)?;
    let flag = match code {
        301 | 308 => "permanent",
        302 | 307 => "redirect",
        _ => return None,
    };
    Some(format!("^ {url}? {flag}"))
}

/// `rewrite` and `set` lines of a level.
fn rewrite_lines(cx: &mut Cx<'_>, t: &mut Table, ds: &[&Directive]) {
    let mut rewrites = Vec::new();
    let mut sets = Vec::new();
    for d in ds {
        match d.name.as_str() {
            "rewrite" => {
                if d.args.iter().any(|a| a.chars().any(char::is_whitespace)) {
                    let c = cx.lose(
                        d,
                        "a regex or replacement with whitespace: write it with \\s",
                    );
                    t.comment(&c);
                    continue;
                }
                rewrites.push(string(&d.args.join(" ")));
            }
            "set" => sets.push(string(&d.args.join(" "))),
            _ => {}
        }
    }
    if !sets.is_empty() {
        t.lines.push(format!("set = [{}]", sets.join(", ")));
    }
    if !rewrites.is_empty() {
        t.lines.push(format!("rewrite = [{}]", rewrites.join(", ")));
    }
}

/// One location's keys from its effective directives.
fn location(cx: &mut Cx<'_>, t: &mut Table, l: &Directive, ds: &[&Directive]) {
    let mut access: Vec<String> = Vec::new();
    let mut index: Option<String> = None;
    let mut upgrade_header = false;
    let mut proxied = false;
    let list = |t: &mut Table, k: &str, items: &mut Vec<String>, at: &str| {
        if !items.is_empty() {
            t.kv(k, format!("[{}]", items.join(", ")), at);
            items.clear();
        }
    };
    let mut error_pages: Vec<String> = Vec::new();
    let mut hide: Vec<String> = Vec::new();
    let mut pass: Vec<String> = Vec::new();
    let mut redirects: Vec<String> = Vec::new();
    let mut gzip_types: Vec<String> = Vec::new();
    let mut level: Vec<&Directive> = Vec::new();
    let at_l = cx.at(l);
    // What answers here: a `return` or `proxy_pass` of the location's own
    // (nginx's return runs first), else files from an inherited `root`.
    let own = |n: &str| l.block.iter().flatten().any(|d| d.name == n);
    let content = if own("return") {
        "return"
    } else if own("proxy_pass") {
        "proxy"
    } else if ds.iter().any(|d| d.name == "root" || d.name == "alias") {
        "static"
    } else if ds.iter().any(|d| d.name == "rewrite") {
        "rewrite"
    } else {
        "none"
    };
    let static_only = |n: &str| matches!(n, "root" | "alias" | "index" | "try_files");
    for d in ds {
        if static_only(&d.name) && content != "static" {
            continue;
        }
        let templated = matches!(
            d.name.as_str(),
            "proxy_pass"
                | "proxy_set_header"
                | "add_header"
                | "return"
                | "try_files"
                | "set"
                | "rewrite"
        );
        if templated && cx.usable(d).is_none() {
            t.comment(&format!(
                "NOT CARRIED OVER: {}",
                cx.losses.last().map(|l| l.to_string()).unwrap_or_default()
            ));
            continue;
        }
        if d.name == "proxy_pass" && content == "return" {
            cx.ignore(d);
            continue;
        }
        let at = cx.at(d);
        let a0 = d.args.first().map(String::as_str).unwrap_or("");
        let time = |cx: &mut Cx<'_>, t: &mut Table| match nginx_time(a0) {
            Some(v) => t.kv(&d.name, string(&v), &at),
            None => {
                let c = cx.lose(d, "not a time nginx reads (10s, 1m30s, 500ms): fix it");
                t.comment(&c);
            }
        };
        match d.name.as_str() {
            n if server_key(n) => {}
            "proxy_pass" => {
                proxied = true;
                t.kv("proxy_pass", string(a0), &at);
            }
            "proxy_set_header" => {
                let name = a0;
                let value = d.args.get(1).map_or("", String::as_str);
                if name.eq_ignore_ascii_case("upgrade") && value == "$http_upgrade" {
                    upgrade_header = true;
                    t.comment(&format!(
                        "{at}: proxy_set_header Upgrade: ringway forwards an upgrade itself"
                    ));
                } else if name.eq_ignore_ascii_case("connection")
                    && matches!(
                        value,
                        "$connection_upgrade" | "upgrade" | "Upgrade" | "\"upgrade\""
                    )
                {
                    t.comment(&format!("{at}: proxy_set_header Connection: ringway sets Connection for an upgrade itself"));
                } else {
                    t.sub("proxy_set_header", name, string(value), &at);
                }
            }
            "proxy_connect_timeout"
            | "proxy_read_timeout"
            | "proxy_send_timeout"
            | "client_body_timeout"
            | "proxy_next_upstream_timeout" => time(cx, t),
            "proxy_buffering"
            | "proxy_request_buffering"
            | "proxy_intercept_errors"
            | "proxy_ssl_verify"
            | "proxy_ssl_server_name"
            | "etag" => t.kv(&d.name, on(d).to_string(), &at),
            "gzip" | "gzip_vary" | "gzip_static" => t.kv(&d.name, on(d).to_string(), &at),
            "gzip_types" => {
                gzip_types.extend(d.args.iter().map(|a| string(a)));
                list(t, "gzip_types", &mut gzip_types, &at);
            }
            "gzip_min_length" | "gzip_comp_level" | "proxy_next_upstream_tries" => {
                t.kv(&d.name, a0.to_string(), &at)
            }
            "gzip_proxied" | "gzip_disable" | "proxy_next_upstream" => {
                t.kv(&d.name, array(&d.args), &at)
            }
            "gzip_buffers" | "gzip_http_version" => cx.ignore(d),
            "proxy_buffers" => match (
                d.args.first().and_then(|n| n.parse::<u64>().ok()),
                d.args.get(1).and_then(|s| crate::parse_size(s)),
            ) {
                (Some(n), Some(size)) => t.kv(
                    "proxy_buffers",
                    string(&format!("{}k", n * size / 1024)),
                    &at,
                ),
                _ => {
                    let c = cx.lose(d, "not NUMBER SIZE: write it as nginx reads it");
                    t.comment(&c);
                }
            },
            "proxy_ssl_trusted_certificate"
            | "proxy_ssl_name"
            | "default_type"
            | "root"
            | "alias" => t.kv(&d.name, string(a0), &at),
            "client_max_body_size" => t.kv(&d.name, string(a0), &at),
            "expires" => t.kv("expires", string(&d.args.join(" ")), &at),
            "index" => index = Some(array(&d.args)),
            "try_files" => t.kv("try_files", array(&d.args), &at),
            "return" => return_line(cx, t, d),
            "internal" => t.kv("internal", "true".into(), &at),
            "allow" | "deny" => access.push(string(&format!("{} {a0}", d.name))),
            "add_header" => {
                let value = d.args.get(1).map_or("", String::as_str);
                let v = if d.args.get(2).map(String::as_str) == Some("always") {
                    format!("{{ value = {}, always = true }}", string(value))
                } else {
                    string(value)
                };
                t.sub("add_header", a0, v, &at);
            }
            "proxy_hide_header" => hide.push(string(a0)),
            "proxy_pass_header" => pass.push(string(a0)),
            "proxy_redirect" => redirects.push(string(&d.args.join(" "))),
            "error_page" => error_pages.push(string(&d.args.join(" "))),
            "rewrite" | "set" => level.push(d),
            "limit_req" => {
                let mut f = Vec::new();
                for a in &d.args {
                    if let Some(z) = a.strip_prefix("zone=") {
                        f.push(format!("zone = {}", string(z)));
                    } else if let Some(b) = a.strip_prefix("burst=") {
                        f.push(format!("burst = {b}"));
                    } else if let Some(b) = a.strip_prefix("delay=") {
                        f.push(format!("delay = {b}"));
                    } else if a == "nodelay" {
                        f.push("nodelay = true".into());
                    }
                }
                t.kv("limit_req", format!("{{ {} }}", f.join(", ")), &at);
            }
            "limit_conn" => t.kv(
                "limit_conn",
                format!(
                    "{{ zone = {}, max = {} }}",
                    string(a0),
                    d.args.get(1).map_or("0", String::as_str)
                ),
                &at,
            ),
            "limit_req_status" | "limit_conn_status" => t.kv(&d.name, a0.to_string(), &at),
            n if HARMLESS.contains(&n) => cx.ignore(d),
            _ if caches_nothing(d) => cx.ignore(d),
            n => {
                let why = match crate::keys::not_planned(n) {
                    Some(why) => why.to_string(),
                    None if n == "if" => IF.to_string(),
                    None => UNSUPPORTED.to_string(),
                };
                let c = cx.lose(d, why);
                t.comment(&c);
            }
        }
    }
    let last = at_l.clone();
    list(t, "access", &mut access, &last);
    list(t, "error_page", &mut error_pages, &last);
    list(t, "proxy_hide_header", &mut hide, &last);
    list(t, "proxy_pass_header", &mut pass, &last);
    list(t, "proxy_redirect", &mut redirects, &last);
    if let Some(i) = index {
        t.kv("index", i, &last);
    }
    rewrite_lines(cx, t, &level);
    if content == "none" {
        let c = cx.lose(
            l,
            "no return, proxy_pass or root: nginx serves its default root (html/ under its prefix); this location answers 404",
        );
        t.comment(&c);
        t.kv("return", "{ status = 404 }".into(), &last);
    }
    if proxied && !upgrade_header {
        // nginx passes no Upgrade unless told to: no tunnel here either.
        t.kv(
            "upgrade",
            "[]".into(),
            &format!("{last} (nginx passed no Upgrade header here)"),
        );
    }
}
