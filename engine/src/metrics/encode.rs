//! The two views of the counts, hand-written (no dependency): Prometheus
//! text exposition format 0.0.4 (HELP and TYPE before each family, label
//! values escaped, histograms as cumulative `_bucket{le}`, `_sum`,
//! `_count`) and JSON (RFC 8259). Pure functions from snapshots to text.
//!
//! Series with a `worker` label come from each worker's snapshot; the rest
//! are summed over the workers ([`merge`]). Each label name has one
//! meaning in every family: `server` a server block, `upstream` an
//! upstream group (or the address of a `proxy_pass` to an address),
//! `upstream_addr` an upstream server's address, `listen` a listen
//! address, `worker` a worker's index, `zone` a limit zone; `result`,
//! `reason`, `class`, `kind` and `direction` say which outcome, close
//! reason, status class, limit or direction a count is of. The
//! standard `process_*` families come first.

use std::fmt::Write;

use super::histogram::Histogram;
use super::process::{Limit, Resources};
use super::series::{merge, TunnelLabels, UpstreamLabels, WorkerSnapshot};
use super::{CloseReason, Process, UpgradeResult, STATUS_CLASSES};

/// The Content-Type of [`encode_prometheus`]'s text.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The Prometheus text for one scrape.
pub fn encode_prometheus(workers: &[WorkerSnapshot], p: &Process) -> String {
    let t = merge(workers);
    let mut e = Prom(String::with_capacity(16 * 1024));

    if let Some(r) = &p.resources {
        process_families(&mut e, r);
    }

    e.family("ringway_info", "gauge", "Build and runtime information.");
    e.sample(
        "ringway_info",
        &[("version", p.version), ("driver", p.driver)],
        1,
    );
    e.family("ringway_workers", "gauge", "Worker threads running.");
    e.sample("ringway_workers", &[], p.workers);
    e.family(
        "ringway_start_time_seconds",
        "gauge",
        "Start time of the process since the Unix epoch in seconds.",
    );
    e.sample("ringway_start_time_seconds", &[], p.start_time_unix);

    let mut wid = String::new();
    e.family(
        "ringway_connections_accepted_total",
        "counter",
        "Client connections accepted.",
    );
    for w in workers {
        worker_label(&mut wid, w.worker);
        for (listen, s) in &w.listens {
            e.sample(
                "ringway_connections_accepted_total",
                &[("listen", listen), ("worker", &wid)],
                s.accepted,
            );
        }
    }
    e.family(
        "ringway_connections_active",
        "gauge",
        "Client connections open.",
    );
    for w in workers {
        worker_label(&mut wid, w.worker);
        for (listen, s) in &w.listens {
            e.sample(
                "ringway_connections_active",
                &[("listen", listen), ("worker", &wid)],
                s.active,
            );
        }
    }
    e.family(
        "ringway_http2_streams_total",
        "counter",
        "HTTP/2 streams opened by clients (each is a request, or an RFC 8441 WebSocket).",
    );
    for w in workers {
        worker_label(&mut wid, w.worker);
        for (listen, s) in &w.listens {
            e.sample(
                "ringway_http2_streams_total",
                &[("listen", listen), ("worker", &wid)],
                s.http2_streams,
            );
        }
    }
    e.family(
        "ringway_http2_streams_active",
        "gauge",
        "HTTP/2 streams open.",
    );
    for w in workers {
        worker_label(&mut wid, w.worker);
        for (listen, s) in &w.listens {
            e.sample(
                "ringway_http2_streams_active",
                &[("listen", listen), ("worker", &wid)],
                s.http2_streams_active,
            );
        }
    }
    e.family(
        "ringway_accept_errors_total",
        "counter",
        "Failed accept calls (EMFILE and the like).",
    );
    for w in workers {
        worker_label(&mut wid, w.worker);
        e.sample(
            "ringway_accept_errors_total",
            &[("worker", &wid)],
            w.accept_errors,
        );
    }

    e.family(
        "ringway_http_requests_total",
        "counter",
        "HTTP requests answered, by server and status class.",
    );
    for (server, s) in &t.servers {
        for (class, n) in STATUS_CLASSES.iter().zip(s.requests) {
            e.sample(
                "ringway_http_requests_total",
                &[("server", server), ("class", class)],
                n,
            );
        }
    }
    e.family(
        "ringway_http_request_duration_seconds",
        "histogram",
        "Time from a request's head to the end of its answer.",
    );
    for (server, s) in &t.servers {
        e.histogram(
            "ringway_http_request_duration_seconds",
            &[("server", server)],
            &s.request_duration,
        );
    }
    e.family(
        "ringway_websocket_upgrades_total",
        "counter",
        "WebSocket upgrades by result: switched (101), refused (upstream answered otherwise), failed (no answer).",
    );
    for (server, s) in &t.servers {
        for (r, n) in UpgradeResult::ALL.iter().zip(s.upgrades) {
            e.sample(
                "ringway_websocket_upgrades_total",
                &[("server", server), ("result", r.label())],
                n,
            );
        }
    }

    e.family("ringway_tunnels_active", "gauge", "Tunnels open.");
    for (k, s) in &t.tunnels {
        e.sample("ringway_tunnels_active", &tunnel_labels(k, None), s.active);
    }
    e.family(
        "ringway_tunnel_bytes_total",
        "counter",
        "Bytes relayed by tunnels, by direction (open tunnels included).",
    );
    for (k, s) in &t.tunnels {
        for (dir, n) in [
            ("client_to_upstream", s.bytes_client_to_upstream),
            ("upstream_to_client", s.bytes_upstream_to_client),
        ] {
            e.sample(
                "ringway_tunnel_bytes_total",
                &tunnel_labels(k, Some(dir)),
                n,
            );
        }
    }
    e.family(
        "ringway_tunnels_closed_total",
        "counter",
        "Tunnels closed, by reason.",
    );
    for (server, s) in &t.servers {
        for (r, n) in CloseReason::ALL.iter().zip(s.tunnels_closed) {
            e.sample(
                "ringway_tunnels_closed_total",
                &[("server", server), ("reason", r.label())],
                n,
            );
        }
    }
    e.family(
        "ringway_tunnel_duration_seconds",
        "histogram",
        "Lifetime of closed tunnels.",
    );
    for (server, s) in &t.servers {
        e.histogram(
            "ringway_tunnel_duration_seconds",
            &[("server", server)],
            &s.tunnel_duration,
        );
    }

    e.family(
        "ringway_upstream_connect_failures_total",
        "counter",
        "Failed connects to upstream servers.",
    );
    for (k, s) in &t.upstreams {
        e.sample(
            "ringway_upstream_connect_failures_total",
            &upstream_labels(k),
            s.connect_failures,
        );
    }
    e.family(
        "ringway_upstream_connect_duration_seconds",
        "histogram",
        "Time to connect to upstream servers (successful connects).",
    );
    for (k, s) in &t.upstreams {
        e.histogram(
            "ringway_upstream_connect_duration_seconds",
            &upstream_labels(k),
            &s.connect_duration,
        );
    }
    e.family(
        "ringway_upstream_up",
        "gauge",
        "Passive health: 1 unless some worker marks the upstream server down.",
    );
    for (k, s) in &t.upstreams {
        e.sample("ringway_upstream_up", &upstream_labels(k), u8::from(s.up));
    }
    e.family(
        "ringway_upstream_check_up",
        "gauge",
        "Active health: 1 unless the health checks mark the upstream server down.",
    );
    for c in &p.checks {
        e.sample(
            "ringway_upstream_check_up",
            &[("upstream", &c.upstream), ("server", &c.server)],
            u8::from(c.up),
        );
    }
    e.family(
        "ringway_upstream_checks_total",
        "counter",
        "Active health checks of upstream servers, by result.",
    );
    for c in &p.checks {
        for (result, n) in [("pass", c.passes), ("fail", c.fails)] {
            e.sample(
                "ringway_upstream_checks_total",
                &[
                    ("upstream", &c.upstream),
                    ("server", &c.server),
                    ("result", result),
                ],
                n,
            );
        }
    }
    e.family(
        "ringway_upstream_check_duration_seconds",
        "histogram",
        "Time each active health check took, passed or failed.",
    );
    for c in &p.checks {
        e.histogram(
            "ringway_upstream_check_duration_seconds",
            &[("upstream", &c.upstream), ("server", &c.server)],
            &c.duration,
        );
    }
    e.family(
        "ringway_tunnels_moved_total",
        "counter",
        "Tunnels closed with 1001 so their clients reconnect elsewhere, by reason (down: on_down, removed: on_remove, rebalance: rebalance).",
    );
    for (upstream, m) in &t.moved {
        for (reason, n) in [
            ("down", m.down),
            ("removed", m.removed),
            ("rebalance", m.rebalance),
        ] {
            e.sample(
                "ringway_tunnels_moved_total",
                &[("upstream", upstream), ("reason", reason)],
                n,
            );
        }
    }

    e.family(
        "ringway_tls_handshakes_total",
        "counter",
        "TLS handshakes with clients, by result.",
    );
    e.sample(
        "ringway_tls_handshakes_total",
        &[("result", "ok")],
        t.tls_handshakes_ok,
    );
    e.sample(
        "ringway_tls_handshakes_total",
        &[("result", "failed")],
        t.tls_handshakes_failed,
    );
    e.family(
        "ringway_tls_certificate_not_after_seconds",
        "gauge",
        "Expiry (notAfter) of each server's certificate since the Unix epoch in seconds.",
    );
    for (server, not_after) in &p.certificates {
        e.sample(
            "ringway_tls_certificate_not_after_seconds",
            &[("server", server)],
            not_after,
        );
    }
    e.family(
        "ringway_config_reloads_total",
        "counter",
        "Configuration reloads, by result.",
    );
    e.sample(
        "ringway_config_reloads_total",
        &[("result", "ok")],
        p.reloads_ok,
    );
    e.sample(
        "ringway_config_reloads_total",
        &[("result", "failed")],
        p.reloads_failed,
    );

    e.family(
        "ringway_limit_rejections_total",
        "counter",
        "Requests (kind=req) or connections (kind=conn) refused by a limit zone.",
    );
    for (zone, z) in &t.zones {
        for (kind, n) in [("req", z.rejected_req), ("conn", z.rejected_conn)] {
            e.sample(
                "ringway_limit_rejections_total",
                &[("zone", zone), ("kind", kind)],
                n,
            );
        }
    }
    e.family(
        "ringway_limit_delayed_total",
        "counter",
        "Requests delayed by a limit zone's burst.",
    );
    for (zone, z) in &t.zones {
        e.sample("ringway_limit_delayed_total", &[("zone", zone)], z.delayed);
    }
    e.0
}

/// `server`, `upstream`, `upstream_addr` (and `direction`).
fn tunnel_labels<'a>(k: &'a TunnelLabels, direction: Option<&'a str>) -> Vec<(&'a str, &'a str)> {
    let mut v = vec![
        ("server", k.server.as_str()),
        ("upstream", k.upstream.as_str()),
        ("upstream_addr", k.upstream_addr.as_str()),
    ];
    v.extend(direction.map(|d| ("direction", d)));
    v
}

/// `upstream`, `upstream_addr`.
fn upstream_labels(k: &UpstreamLabels) -> [(&str, &str); 2] {
    [
        ("upstream", k.upstream.as_str()),
        ("upstream_addr", k.upstream_addr.as_str()),
    ]
}

/// The standard `process_*` families (HELP texts as the client
/// libraries word them).
fn process_families(e: &mut Prom, r: &Resources) {
    e.family(
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
    );
    e.sample("process_cpu_seconds_total", &[], r.cpu_seconds);
    e.family(
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
    );
    e.sample("process_start_time_seconds", &[], r.start_time_seconds);
    e.family(
        "process_virtual_memory_bytes",
        "gauge",
        "Virtual memory size in bytes.",
    );
    e.sample("process_virtual_memory_bytes", &[], r.virtual_memory_bytes);
    e.family(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
    );
    e.sample(
        "process_resident_memory_bytes",
        &[],
        r.resident_memory_bytes,
    );
    e.family(
        "process_open_fds",
        "gauge",
        "Number of open file descriptors.",
    );
    e.sample("process_open_fds", &[], r.open_fds);
    e.family(
        "process_max_fds",
        "gauge",
        "Maximum number of open file descriptors.",
    );
    match r.max_fds {
        Limit::At(n) => e.sample("process_max_fds", &[], n),
        Limit::Unlimited => e.sample("process_max_fds", &[], "+Inf"),
    }
}

fn worker_label(buf: &mut String, worker: usize) {
    buf.clear();
    let _ = write!(buf, "{worker}");
}

/// The text being written.
struct Prom(String);

impl Prom {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        self.0.push_str("# HELP ");
        self.0.push_str(name);
        self.0.push(' ');
        for c in help.chars() {
            match c {
                '\\' => self.0.push_str("\\\\"),
                '\n' => self.0.push_str("\\n"),
                c => self.0.push(c),
            }
        }
        let _ = writeln!(self.0, "\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.0.push_str(name);
        self.labels(labels, None);
        let _ = writeln!(self.0, " {value}");
    }

    fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &Histogram) {
        let mut le = String::new();
        for (bound, n) in h.cumulative() {
            le.clear();
            match bound {
                Some(b) => {
                    let _ = write!(le, "{b}");
                }
                None => le.push_str("+Inf"),
            }
            self.0.push_str(name);
            self.0.push_str("_bucket");
            self.labels(labels, Some(&le));
            let _ = writeln!(self.0, " {n}");
        }
        self.0.push_str(name);
        self.0.push_str("_sum");
        self.labels(labels, None);
        let _ = writeln!(self.0, " {}", h.sum_seconds());
        self.0.push_str(name);
        self.0.push_str("_count");
        self.labels(labels, None);
        let _ = writeln!(self.0, " {}", h.count());
    }

    /// `{a="x",b="y"}` (nothing when there are none), `le` last.
    fn labels(&mut self, labels: &[(&str, &str)], le: Option<&str>) {
        if labels.is_empty() && le.is_none() {
            return;
        }
        self.0.push('{');
        let all = labels.iter().copied().chain(le.map(|v| ("le", v)));
        for (i, (k, v)) in all.enumerate() {
            if i > 0 {
                self.0.push(',');
            }
            self.0.push_str(k);
            self.0.push_str("=\"");
            escape_label(&mut self.0, v);
            self.0.push('"');
        }
        self.0.push('}');
    }
}

/// A label value as the exposition format wants it: backslash, double
/// quote and line feed escaped.
pub(super) fn escape_label(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// The JSON for one `/status` request:
/// `{"version","driver","workers","start_time_seconds","totals":{..},
/// "per_worker":[{"worker":0,..},..],"reloads":{"ok","failed"},
/// "certificates":[{"server","not_after_seconds"},..]}`; `totals` is the
/// [`merge`] of `per_worker`, in the same shape less `worker`: `listens`,
/// `servers`, `tunnels` (by `server`, `upstream`, `upstream_addr`),
/// `upstreams` (by `upstream`, `upstream_addr`) and `limits`, named as
/// the Prometheus labels are.
pub fn encode_json(workers: &[WorkerSnapshot], p: &Process) -> String {
    let t = merge(workers);
    let mut o = String::with_capacity(16 * 1024);
    o.push_str("{\"version\":");
    json_str(&mut o, p.version);
    o.push_str(",\"driver\":");
    json_str(&mut o, p.driver);
    let _ = write!(
        o,
        ",\"workers\":{},\"start_time_seconds\":{},\"totals\":",
        p.workers, p.start_time_unix
    );
    json_snapshot(&mut o, &t, false);
    o.push_str(",\"per_worker\":[");
    for (i, w) in workers.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        json_snapshot(&mut o, w, true);
    }
    let _ = write!(
        o,
        "],\"reloads\":{{\"ok\":{},\"failed\":{}}},\"certificates\":[",
        p.reloads_ok, p.reloads_failed
    );
    for (i, (server, not_after)) in p.certificates.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        o.push_str("{\"server\":");
        json_str(&mut o, server);
        let _ = write!(o, ",\"not_after_seconds\":{not_after}}}");
    }
    o.push_str("]}");
    o
}

fn json_snapshot(o: &mut String, w: &WorkerSnapshot, with_worker: bool) {
    o.push('{');
    if with_worker {
        let _ = write!(o, "\"worker\":{},", w.worker);
    }
    let _ = write!(
        o,
        "\"accept_errors\":{},\"tls_handshakes\":{{\"ok\":{},\"failed\":{}}},\"listens\":[",
        w.accept_errors, w.tls_handshakes_ok, w.tls_handshakes_failed
    );
    for (i, (listen, s)) in w.listens.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        o.push_str("{\"listen\":");
        json_str(o, listen);
        let _ = write!(
            o,
            ",\"accepted\":{},\"active\":{},\"http2_streams\":{},\"http2_streams_active\":{}}}",
            s.accepted, s.active, s.http2_streams, s.http2_streams_active
        );
    }
    o.push_str("],\"servers\":[");
    for (i, (server, s)) in w.servers.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        o.push_str("{\"server\":");
        json_str(o, server);
        o.push_str(",\"requests\":{");
        for (j, (class, n)) in STATUS_CLASSES.iter().zip(s.requests).enumerate() {
            let sep = if j > 0 { "," } else { "" };
            let _ = write!(o, "{sep}\"{class}\":{n}");
        }
        o.push_str("},\"request_duration_seconds\":");
        json_histogram(o, &s.request_duration);
        o.push_str(",\"websocket_upgrades\":{");
        for (j, (r, n)) in UpgradeResult::ALL.iter().zip(s.upgrades).enumerate() {
            let sep = if j > 0 { "," } else { "" };
            let _ = write!(o, "{sep}\"{}\":{n}", r.label());
        }
        o.push_str("},\"tunnels_closed\":{");
        for (j, (r, n)) in CloseReason::ALL.iter().zip(s.tunnels_closed).enumerate() {
            let sep = if j > 0 { "," } else { "" };
            let _ = write!(o, "{sep}\"{}\":{n}", r.label());
        }
        o.push_str("},\"tunnel_duration_seconds\":");
        json_histogram(o, &s.tunnel_duration);
        o.push('}');
    }
    o.push_str("],\"tunnels\":[");
    for (i, (k, s)) in w.tunnels.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        o.push_str("{\"server\":");
        json_str(o, &k.server);
        o.push_str(",\"upstream\":");
        json_str(o, &k.upstream);
        o.push_str(",\"upstream_addr\":");
        json_str(o, &k.upstream_addr);
        let _ = write!(
            o,
            ",\"opened\":{},\"active\":{},\"bytes\":{{\"client_to_upstream\":{},\"upstream_to_client\":{}}}}}",
            s.opened, s.active, s.bytes_client_to_upstream, s.bytes_upstream_to_client,
        );
    }
    o.push_str("],\"upstreams\":[");
    for (i, (k, s)) in w.upstreams.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        o.push_str("{\"upstream\":");
        json_str(o, &k.upstream);
        o.push_str(",\"upstream_addr\":");
        json_str(o, &k.upstream_addr);
        let _ = write!(
            o,
            ",\"up\":{},\"connect_failures\":{},\"connect_duration_seconds\":",
            s.up, s.connect_failures
        );
        json_histogram(o, &s.connect_duration);
        o.push('}');
    }
    o.push_str("],\"limits\":[");
    for (i, (zone, z)) in w.zones.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        o.push_str("{\"zone\":");
        json_str(o, zone);
        let _ = write!(
            o,
            ",\"rejected_req\":{},\"rejected_conn\":{},\"delayed\":{}}}",
            z.rejected_req, z.rejected_conn, z.delayed
        );
    }
    o.push_str("]}");
}

/// `{"count":N,"sum":S,"buckets":[{"le":"0.0005","count":c},..,{"le":"+Inf","count":N}]}`,
/// bucket counts cumulative as in Prometheus.
fn json_histogram(o: &mut String, h: &Histogram) {
    let _ = write!(
        o,
        "{{\"count\":{},\"sum\":{},\"buckets\":[",
        h.count(),
        h.sum_seconds()
    );
    for (i, (bound, n)) in h.cumulative().enumerate() {
        if i > 0 {
            o.push(',');
        }
        match bound {
            Some(b) => {
                let _ = write!(o, "{{\"le\":\"{b}\",\"count\":{n}}}");
            }
            None => {
                let _ = write!(o, "{{\"le\":\"+Inf\",\"count\":{n}}}");
            }
        }
    }
    o.push_str("]}");
}

/// A JSON string (RFC 8259 section 7).
fn json_str(o: &mut String, s: &str) {
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
}
