//! Counting, snapshot and merge exactness; the Prometheus text checked line
//! by line by a small parser of the exposition format; the JSON parsed and
//! its totals checked against the sum of its workers; the listener over a
//! real socket.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use super::encode::escape_label;
use super::serve::{parse, serve_with, Ask};
use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Two workers with overlapping and distinct labels.
fn two_workers() -> (Metrics, Metrics) {
    let a = Metrics::new(0);
    let b = Metrics::new(1);
    for _ in 0..3 {
        a.conn_opened("0.0.0.0:80");
    }
    a.conn_closed("0.0.0.0:80");
    a.conn_opened("[::]:443");
    b.conn_opened("0.0.0.0:80");
    a.accept_error();
    b.accept_error();
    b.accept_error();

    a.http_request("ws", 200, ms(2));
    a.http_request("ws", 404, ms(20));
    b.http_request("ws", 502, ms(3000));
    b.http_request("app", 101, ms(1));
    a.upgrade("ws", UpgradeResult::Switched);
    b.upgrade("ws", UpgradeResult::Switched);
    b.upgrade("ws", UpgradeResult::Refused);
    a.upgrade("app", UpgradeResult::Failed);

    let t1 = a.tunnel_opened("ws", "backends", "127.0.0.1:3000");
    let _t2 = a.tunnel_opened("ws", "backends", "127.0.0.1:3000");
    let t3 = b.tunnel_opened("ws", "backends", "127.0.0.1:3000");
    let _t4 = b.tunnel_opened("ws", "backends", "127.0.0.1:3001");
    a.tunnel_closed(t1, CloseReason::Client, 100, 2000, Duration::from_secs(2));
    b.tunnel_closed(t3, CloseReason::Idle, 5, 7, Duration::from_secs(4000));

    a.upstream_connect("backends", "127.0.0.1:3000", Ok(ms(1)));
    b.upstream_connect("backends", "127.0.0.1:3000", Ok(ms(3)));
    b.upstream_connect("backends", "127.0.0.1:3000", Err(()));
    b.upstream_state("backends", "127.0.0.1:3001", false);
    a.upstream_state("backends", "127.0.0.1:3001", true);

    a.tls_handshake(true);
    a.tls_handshake(false);
    b.tls_handshake(true);
    a.limit_rejected("perip", LimitKind::Req);
    b.limit_rejected("perip", LimitKind::Conn);
    b.limit_delayed("perip");
    (a, b)
}

fn process() -> Process {
    Process {
        checks: Vec::new(),
        version: "0.1.0",
        driver: "epoll",
        workers: 2,
        reloads_ok: 3,
        reloads_failed: 1,
        certificates: vec![("app".into(), 1_900_000_000)],
        start_time_unix: 1_700_000_000,
        resources: Some(Resources {
            cpu_seconds: 12.5,
            start_time_seconds: 1_699_999_999.37,
            virtual_memory_bytes: 1 << 30,
            resident_memory_bytes: 40 << 20,
            open_fds: 17,
            max_fds: process::Limit::At(524_288),
        }),
    }
}

fn tunnel(server: &str, upstream: &str, addr: &str) -> TunnelLabels {
    TunnelLabels {
        server: server.into(),
        upstream: upstream.into(),
        upstream_addr: addr.into(),
    }
}

fn upstream(upstream: &str, addr: &str) -> UpstreamLabels {
    UpstreamLabels {
        upstream: upstream.into(),
        upstream_addr: addr.into(),
    }
}

/// The stats under label `k` in a snapshot list.
fn find<'a, K: PartialEq + ?Sized, T>(v: &'a [(impl std::borrow::Borrow<K>, T)], k: &K) -> &'a T {
    &v.iter()
        .find(|(key, _)| key.borrow() == k)
        .expect("label")
        .1
}

#[test]
fn snapshots_keep_each_worker_and_merge_sums() {
    let (a, b) = two_workers();
    let (sa, sb) = (a.snapshot(), b.snapshot());
    assert_eq!(sa.worker, 0);
    assert_eq!(sb.worker, 1);

    // Per worker, as counted.
    let l = find::<str, _>(&sa.listens, "0.0.0.0:80");
    assert_eq!((l.accepted, l.active), (3, 2));
    assert_eq!(find::<str, _>(&sb.listens, "0.0.0.0:80").accepted, 1);
    assert_eq!(sa.accept_errors, 1);
    assert_eq!(sb.accept_errors, 2);
    let ws = find::<str, _>(&sa.servers, "ws");
    assert_eq!(ws.requests, [0, 1, 0, 1, 0]);
    assert_eq!(ws.request_duration.count(), 2);
    assert_eq!(ws.upgrades, [1, 0, 0]);
    assert_eq!(ws.tunnels_closed, [1, 0, 0, 0, 0]);
    let pair = tunnel("ws", "backends", "127.0.0.1:3000");
    let tu = find(&sa.tunnels, &pair);
    assert_eq!((tu.opened, tu.active), (2, 1));
    assert_eq!(
        (tu.bytes_client_to_upstream, tu.bytes_upstream_to_client),
        (100, 2000)
    );

    // Merged: sums, sorted by label.
    let t = merge(&[sa.clone(), sb.clone()]);
    assert_eq!(t.worker, WorkerSnapshot::MERGED);
    assert_eq!(t.accept_errors, 3);
    assert_eq!((t.tls_handshakes_ok, t.tls_handshakes_failed), (2, 1));
    let l = find::<str, _>(&t.listens, "0.0.0.0:80");
    assert_eq!((l.accepted, l.active), (4, 3));
    assert_eq!(find::<str, _>(&t.listens, "[::]:443").active, 1);
    let names: Vec<&str> = t.servers.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(names, ["app", "ws"]);
    let ws = find::<str, _>(&t.servers, "ws");
    assert_eq!(ws.requests, [0, 1, 0, 1, 1]);
    assert_eq!(ws.request_duration.count(), 3);
    assert_eq!(ws.request_duration.sum_ns, 3_022_000_000);
    assert_eq!(ws.upgrades, [2, 1, 0]);
    assert_eq!(ws.tunnels_closed, [1, 0, 1, 0, 0]);
    assert_eq!(ws.tunnel_duration.count(), 2);
    assert_eq!(ws.tunnel_duration.sum_seconds(), 4002.0);
    let app = find::<str, _>(&t.servers, "app");
    assert_eq!(app.requests, [1, 0, 0, 0, 0]);
    assert_eq!(app.upgrades, [0, 0, 1]);

    let tu = find(&t.tunnels, &pair);
    assert_eq!((tu.opened, tu.active), (3, 1));
    assert_eq!(
        (tu.bytes_client_to_upstream, tu.bytes_upstream_to_client),
        (105, 2007)
    );
    let up = find(&t.upstreams, &upstream("backends", "127.0.0.1:3000"));
    assert_eq!(up.connect_failures, 1);
    assert_eq!(up.connect_duration.count(), 2);
    assert!(up.up);
    // Down on one worker, up on the other: down.
    let up1 = find(&t.upstreams, &upstream("backends", "127.0.0.1:3001"));
    assert!(!up1.up);
    let tu1 = find(&t.tunnels, &tunnel("ws", "backends", "127.0.0.1:3001"));
    assert_eq!(tu1.active, 1);

    let z = find::<str, _>(&t.zones, "perip");
    assert_eq!((z.rejected_req, z.rejected_conn, z.delayed), (1, 1, 1));

    // Merging one worker changes nothing but the worker.
    let mut one = merge(std::slice::from_ref(&sa));
    one.worker = 0;
    assert_eq!(one, sa);
}

#[test]
fn gauges_do_not_go_below_zero_and_status_classes_clamp() {
    let m = Metrics::new(0);
    m.conn_closed("x");
    m.http_request("s", 0, ms(1));
    m.http_request("s", 799, ms(1));
    m.http_request("s", 301, ms(1));
    let s = m.snapshot();
    assert_eq!(find::<str, _>(&s.listens, "x").active, 0);
    assert_eq!(find::<str, _>(&s.servers, "s").requests, [1, 0, 1, 0, 1]);
}

#[test]
fn a_foreign_series_id_is_ignored_in_release() {
    let a = Metrics::new(0);
    let b = Metrics::new(1);
    let id = a.tunnel_opened("s", "u", "a");
    a.tunnel_opened("s", "u", "a2");
    let id2 = a.tunnel_opened("s", "u", "a2");
    assert_ne!(id, id2);
    if !cfg!(debug_assertions) {
        b.tunnel_closed(id2, CloseReason::Error, 0, 0, ms(1));
    }
}

#[test]
fn label_values_are_escaped() {
    let mut s = String::new();
    escape_label(&mut s, "a\\b\"c\nd€");
    assert_eq!(s, "a\\\\b\\\"c\\nd€");

    let m = Metrics::new(0);
    m.http_request("we\"ird\\na\nme", 200, ms(1));
    let text = encode_prometheus(&[m.snapshot()], &process());
    assert!(text.contains(
        "ringway_http_requests_total{server=\"we\\\"ird\\\\na\\nme\",class=\"2xx\"} 1\n"
    ));
    let samples = check_exposition(&text);
    assert!(samples
        .iter()
        .any(|s| s.name == "ringway_http_requests_total"
            && s.label("server") == Some("we\"ird\\na\nme")
            && s.value == 1.0));
    // And in JSON.
    let v: serde_json::Value =
        serde_json::from_str(&encode_json(&[m.snapshot()], &process())).unwrap();
    assert_eq!(v["totals"]["servers"][0]["server"], "we\"ird\\na\nme");
}

/// One sample line, parsed.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

impl Sample {
    fn label(&self, k: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }
}

fn is_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `name{k="v",..} value` with the format's escapes.
fn parse_sample(line: &str) -> Sample {
    let end = line
        .find(['{', ' '])
        .unwrap_or_else(|| panic!("no value: {line}"));
    let name = &line[..end];
    assert!(is_name(name), "bad name in {line:?}");
    let mut rest = &line[end..];
    let mut labels = Vec::new();
    if let Some(r) = rest.strip_prefix('{') {
        rest = r;
        loop {
            if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            }
            let eq = rest.find("=\"").unwrap_or_else(|| panic!("label: {line}"));
            let k = &rest[..eq];
            assert!(is_name(k) && !k.starts_with("__"), "label name {k:?}");
            let mut v = String::new();
            let mut chars = rest[eq + 2..].char_indices();
            let close = loop {
                match chars.next() {
                    Some((i, '"')) => break eq + 2 + i,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, '\\')) => v.push('\\'),
                        Some((_, '"')) => v.push('"'),
                        Some((_, 'n')) => v.push('\n'),
                        e => panic!("bad escape {e:?} in {line:?}"),
                    },
                    Some((_, '\n')) | None => panic!("unterminated value in {line:?}"),
                    Some((_, c)) => v.push(c),
                }
            };
            labels.push((k.to_string(), v));
            rest = &rest[close + 1..];
            if let Some(r) = rest.strip_prefix(',') {
                rest = r;
            } else {
                assert!(rest.starts_with('}'), "after a label: {line:?}");
            }
        }
    }
    let value = rest
        .strip_prefix(' ')
        .unwrap_or_else(|| panic!("no space before the value: {line:?}"));
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v
            .parse()
            .unwrap_or_else(|_| panic!("value {v:?} in {line:?}")),
    };
    Sample {
        name: name.to_string(),
        labels,
        value,
    }
}

/// Checks the text line by line: HELP then TYPE before a family's samples,
/// one TYPE per family, a family's samples together, names and labels
/// well-formed, histogram buckets cumulative and ending in `+Inf` equal to
/// `_count`, `_sum` present. Returns the samples.
fn check_exposition(text: &str) -> Vec<Sample> {
    assert!(text.ends_with('\n'));
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut helped: Vec<String> = Vec::new();
    let mut current: Option<String> = None;
    let mut samples = Vec::new();
    for line in text.lines() {
        assert!(!line.is_empty(), "empty line");
        if let Some(r) = line.strip_prefix("# HELP ") {
            let (name, _) = r.split_once(' ').expect("help text");
            assert!(is_name(name));
            assert!(!helped.contains(&name.to_string()), "second HELP {name}");
            helped.push(name.to_string());
            current = None;
        } else if let Some(r) = line.strip_prefix("# TYPE ") {
            let (name, kind) = r.split_once(' ').expect("type");
            assert_eq!(
                helped.last().map(String::as_str),
                Some(name),
                "TYPE {name} without HELP just before"
            );
            assert!(["counter", "gauge", "histogram"].contains(&kind));
            assert!(types.insert(name.into(), kind.into()).is_none());
            current = Some(name.into());
        } else {
            assert!(!line.starts_with('#'), "stray comment {line}");
            let s = parse_sample(line);
            let fam = current
                .as_deref()
                .unwrap_or_else(|| panic!("sample before its TYPE: {line}"));
            let ok = match types[fam].as_str() {
                "histogram" => [
                    format!("{fam}_bucket"),
                    format!("{fam}_sum"),
                    format!("{fam}_count"),
                ]
                .contains(&s.name),
                "counter" => s.name == fam && fam.ends_with("_total"),
                _ => s.name == fam,
            };
            assert!(ok, "{} under family {fam}", s.name);
            assert!(
                s.name.starts_with("ringway_") || s.name.starts_with("process_"),
                "{line}"
            );
            if s.name.ends_with("_bucket") {
                assert_eq!(s.labels.last().unwrap().0, "le", "le last: {line}");
            }
            samples.push((fam.to_string(), s));
        }
    }
    // Histograms: group by family and labels other than le.
    type Key = (String, Vec<(String, String)>);
    let mut buckets: BTreeMap<Key, Vec<(String, f64)>> = BTreeMap::new();
    let mut counts: BTreeMap<Key, f64> = BTreeMap::new();
    let mut sums: BTreeMap<Key, f64> = BTreeMap::new();
    for (fam, s) in &samples {
        if types[fam] != "histogram" {
            continue;
        }
        let others: Vec<_> = s
            .labels
            .iter()
            .filter(|(k, _)| k != "le")
            .cloned()
            .collect();
        let key = (fam.clone(), others);
        if s.name.ends_with("_bucket") {
            let le = s.label("le").unwrap().to_string();
            buckets.entry(key).or_default().push((le, s.value));
        } else if s.name.ends_with("_count") {
            assert!(counts.insert(key, s.value).is_none());
        } else {
            assert!(sums.insert(key, s.value).is_none());
        }
    }
    assert_eq!(buckets.len(), counts.len());
    assert_eq!(buckets.len(), sums.len());
    for (key, bs) in &buckets {
        let (last_le, last) = bs.last().unwrap();
        assert_eq!(last_le, "+Inf", "{key:?}");
        assert_eq!(*last, counts[key], "+Inf == _count for {key:?}");
        let mut prev = (f64::NEG_INFINITY, 0.0);
        for (le, n) in bs {
            let le: f64 = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap()
            };
            assert!(le > prev.0, "le ascending in {key:?}");
            assert!(*n >= prev.1, "cumulative in {key:?}");
            prev = (le, *n);
        }
    }
    samples.into_iter().map(|(_, s)| s).collect()
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let hits: Vec<&Sample> = samples
        .iter()
        .filter(|s| {
            s.name == name
                && s.labels.len() == labels.len()
                && labels.iter().all(|(k, v)| s.label(k) == Some(v))
        })
        .collect();
    assert_eq!(hits.len(), 1, "{name} {labels:?}");
    hits[0].value
}

#[test]
fn prometheus_text_is_well_formed_and_exact() {
    let (a, b) = two_workers();
    let text = encode_prometheus(&[a.snapshot(), b.snapshot()], &process());
    let s = check_exposition(&text);

    assert_eq!(
        value(
            &s,
            "ringway_info",
            &[("version", "0.1.0"), ("driver", "epoll")]
        ),
        1.0
    );
    assert_eq!(value(&s, "ringway_workers", &[]), 2.0);
    assert_eq!(value(&s, "ringway_start_time_seconds", &[]), 1.7e9);
    // Worker-labelled series stay per worker.
    let acc = "ringway_connections_accepted_total";
    assert_eq!(
        value(&s, acc, &[("listen", "0.0.0.0:80"), ("worker", "0")]),
        3.0
    );
    assert_eq!(
        value(&s, acc, &[("listen", "0.0.0.0:80"), ("worker", "1")]),
        1.0
    );
    let act = "ringway_connections_active";
    assert_eq!(
        value(&s, act, &[("listen", "0.0.0.0:80"), ("worker", "0")]),
        2.0
    );
    assert_eq!(
        value(&s, act, &[("listen", "[::]:443"), ("worker", "0")]),
        1.0
    );
    assert_eq!(
        value(&s, "ringway_accept_errors_total", &[("worker", "1")]),
        2.0
    );
    // The rest summed.
    let req = "ringway_http_requests_total";
    assert_eq!(value(&s, req, &[("server", "ws"), ("class", "5xx")]), 1.0);
    assert_eq!(value(&s, req, &[("server", "ws"), ("class", "2xx")]), 1.0);
    assert_eq!(value(&s, req, &[("server", "ws"), ("class", "3xx")]), 0.0);
    let h = "ringway_http_request_duration_seconds";
    assert_eq!(value(&s, &format!("{h}_count"), &[("server", "ws")]), 3.0);
    assert!((value(&s, &format!("{h}_sum"), &[("server", "ws")]) - 3.022).abs() < 1e-9);
    assert_eq!(
        value(
            &s,
            &format!("{h}_bucket"),
            &[("server", "ws"), ("le", "0.0025")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &s,
            &format!("{h}_bucket"),
            &[("server", "ws"), ("le", "0.025")]
        ),
        2.0
    );
    assert_eq!(
        value(
            &s,
            &format!("{h}_bucket"),
            &[("server", "ws"), ("le", "2.5")]
        ),
        2.0
    );
    assert_eq!(
        value(&s, &format!("{h}_bucket"), &[("server", "ws"), ("le", "5")]),
        3.0
    );
    let up = "ringway_websocket_upgrades_total";
    assert_eq!(
        value(&s, up, &[("server", "ws"), ("result", "switched")]),
        2.0
    );
    assert_eq!(
        value(&s, up, &[("server", "ws"), ("result", "refused")]),
        1.0
    );
    assert_eq!(
        value(&s, up, &[("server", "app"), ("result", "failed")]),
        1.0
    );
    let pair = [
        ("server", "ws"),
        ("upstream", "backends"),
        ("upstream_addr", "127.0.0.1:3000"),
    ];
    assert_eq!(value(&s, "ringway_tunnels_active", &pair), 1.0);
    let bytes = "ringway_tunnel_bytes_total";
    let dir = |d| [pair[0], pair[1], pair[2], ("direction", d)];
    assert_eq!(value(&s, bytes, &dir("client_to_upstream")), 105.0);
    assert_eq!(value(&s, bytes, &dir("upstream_to_client")), 2007.0);
    let closed = "ringway_tunnels_closed_total";
    assert_eq!(
        value(&s, closed, &[("server", "ws"), ("reason", "idle")]),
        1.0
    );
    assert_eq!(
        value(&s, closed, &[("server", "ws"), ("reason", "drain")]),
        0.0
    );
    let td = "ringway_tunnel_duration_seconds";
    assert_eq!(
        value(
            &s,
            &format!("{td}_bucket"),
            &[("server", "ws"), ("le", "1")]
        ),
        0.0
    );
    assert_eq!(
        value(
            &s,
            &format!("{td}_bucket"),
            &[("server", "ws"), ("le", "5")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &s,
            &format!("{td}_bucket"),
            &[("server", "ws"), ("le", "7200")]
        ),
        2.0
    );
    assert_eq!(value(&s, &format!("{td}_sum"), &[("server", "ws")]), 4002.0);
    let us = [
        ("upstream", "backends"),
        ("upstream_addr", "127.0.0.1:3000"),
    ];
    assert_eq!(
        value(&s, "ringway_upstream_connect_failures_total", &us),
        1.0
    );
    assert_eq!(
        value(&s, "ringway_upstream_connect_duration_seconds_count", &us),
        2.0
    );
    assert_eq!(value(&s, "ringway_upstream_up", &us), 1.0);
    let us1 = [
        ("upstream", "backends"),
        ("upstream_addr", "127.0.0.1:3001"),
    ];
    assert_eq!(value(&s, "ringway_upstream_up", &us1), 0.0);
    assert_eq!(
        value(&s, "ringway_tls_handshakes_total", &[("result", "ok")]),
        2.0
    );
    assert_eq!(
        value(&s, "ringway_tls_handshakes_total", &[("result", "failed")]),
        1.0
    );
    assert_eq!(
        value(
            &s,
            "ringway_tls_certificate_not_after_seconds",
            &[("server", "app")]
        ),
        1.9e9
    );
    assert_eq!(
        value(&s, "ringway_config_reloads_total", &[("result", "ok")]),
        3.0
    );
    assert_eq!(
        value(&s, "ringway_config_reloads_total", &[("result", "failed")]),
        1.0
    );
    let lim = "ringway_limit_rejections_total";
    assert_eq!(value(&s, lim, &[("zone", "perip"), ("kind", "req")]), 1.0);
    assert_eq!(value(&s, lim, &[("zone", "perip"), ("kind", "conn")]), 1.0);
    assert_eq!(
        value(&s, "ringway_limit_delayed_total", &[("zone", "perip")]),
        1.0
    );

    // Every family of the contract is there, even with nothing counted.
    let empty = encode_prometheus(&[], &Process::default());
    check_exposition(&empty);
    for name in [
        "ringway_info",
        "ringway_workers",
        "ringway_start_time_seconds",
        "ringway_connections_accepted_total",
        "ringway_connections_active",
        "ringway_accept_errors_total",
        "ringway_http_requests_total",
        "ringway_http_request_duration_seconds",
        "ringway_websocket_upgrades_total",
        "ringway_tunnels_active",
        "ringway_tunnel_bytes_total",
        "ringway_tunnels_closed_total",
        "ringway_tunnel_duration_seconds",
        "ringway_upstream_connect_failures_total",
        "ringway_upstream_connect_duration_seconds",
        "ringway_upstream_up",
        "ringway_tls_handshakes_total",
        "ringway_tls_certificate_not_after_seconds",
        "ringway_config_reloads_total",
        "ringway_limit_rejections_total",
        "ringway_limit_delayed_total",
    ] {
        assert!(
            empty.contains(&format!("\n# TYPE {name} "))
                || empty.starts_with(&format!("# HELP {name} ")),
            "{name}"
        );
        assert!(text.contains(&format!("# TYPE {name} ")), "{name}");
    }
}

/// Numbers in a JSON snapshot by path, array elements keyed by their
/// label members (so workers' lists line up whatever their order).
fn flatten(v: &serde_json::Value, path: &str, out: &mut BTreeMap<String, serde_json::Value>) {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k != "worker" {
                    flatten(x, &format!("{path}.{k}"), out);
                }
            }
        }
        Value::Array(a) => {
            for x in a {
                let key: Vec<&str> = [
                    "listen",
                    "server",
                    "upstream",
                    "upstream_addr",
                    "zone",
                    "le",
                ]
                .iter()
                .filter_map(|k| x.get(k).and_then(Value::as_str))
                .collect();
                assert!(!key.is_empty(), "an unlabelled element at {path}");
                flatten(x, &format!("{path}[{}]", key.join("|")), out);
            }
        }
        Value::String(_) => {}
        other => {
            assert!(out.insert(path.to_string(), other.clone()).is_none());
        }
    }
}

#[test]
fn json_parses_and_totals_are_the_sum_of_the_workers() {
    let (a, b) = two_workers();
    let text = encode_json(&[a.snapshot(), b.snapshot()], &process());
    let v: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(v["version"], "0.1.0");
    assert_eq!(v["driver"], "epoll");
    assert_eq!(v["workers"], 2);
    assert_eq!(v["reloads"]["ok"], 3);
    assert_eq!(v["reloads"]["failed"], 1);
    assert_eq!(v["certificates"][0]["server"], "app");
    assert_eq!(v["certificates"][0]["not_after_seconds"], 1_900_000_000);
    let per = v["per_worker"].as_array().unwrap();
    assert_eq!(per.len(), 2);
    assert_eq!(per[0]["worker"], 0);
    assert_eq!(per[1]["worker"], 1);
    assert_eq!(per[1]["accept_errors"], 2);

    let mut totals = BTreeMap::new();
    flatten(&v["totals"], "", &mut totals);
    let mut summed: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    for w in per {
        let mut f = BTreeMap::new();
        flatten(w, "", &mut f);
        for (k, x) in f {
            let merged = match (summed.get(&k), &x) {
                (None, _) => x,
                (Some(serde_json::Value::Bool(p)), serde_json::Value::Bool(q)) => (*p && *q).into(),
                (Some(p), q) if p.is_u64() && q.is_u64() => {
                    (p.as_u64().unwrap() + q.as_u64().unwrap()).into()
                }
                (Some(p), q) => (p.as_f64().unwrap() + q.as_f64().unwrap()).into(),
            };
            summed.insert(k, merged);
        }
    }
    assert_eq!(
        totals.keys().collect::<Vec<_>>(),
        summed.keys().collect::<Vec<_>>()
    );
    for (k, t) in &totals {
        let s = &summed[k];
        match (t.as_f64(), s.as_f64()) {
            (Some(x), Some(y)) => assert!((x - y).abs() < 1e-9, "{k}: {t} vs {s}"),
            _ => assert_eq!(t, s, "{k}"),
        }
    }
    assert_eq!(totals[".accept_errors"], 3);
    assert_eq!(totals[".servers[ws].requests.5xx"], 1);
    assert_eq!(totals[".upstreams[backends|127.0.0.1:3001].up"], false);
    assert_eq!(
        totals[".tunnels[ws|backends|127.0.0.1:3000].bytes.client_to_upstream"],
        105
    );
    assert_eq!(totals[".tunnels[ws|backends|127.0.0.1:3001].active"], 1);
    assert_eq!(
        totals[".servers[ws].tunnel_duration_seconds.buckets[+Inf].count"],
        2
    );

    // Nothing counted is still valid JSON.
    let e: serde_json::Value =
        serde_json::from_str(&encode_json(&[], &Process::default())).unwrap();
    assert_eq!(e["per_worker"].as_array().unwrap().len(), 0);
}

#[test]
fn request_heads_are_read_as_asked() {
    let p = |s: &str| parse(s.as_bytes());
    assert_eq!(
        p("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
        Ask::Metrics { head_only: false }
    );
    assert_eq!(
        p("HEAD /metrics?x=1 HTTP/1.0\r\n\r\n"),
        Ask::Metrics { head_only: true }
    );
    assert_eq!(
        p("GET /status HTTP/1.1\r\n\r\n"),
        Ask::Status { head_only: false }
    );
    assert_eq!(
        p("GET / HTTP/1.1\r\n\r\n"),
        Ask::NotFound { head_only: false }
    );
    assert_eq!(
        p("HEAD /x HTTP/1.1\r\n\r\n"),
        Ask::NotFound { head_only: true }
    );
    assert_eq!(p("POST /metrics HTTP/1.1\r\n\r\n"), Ask::MethodNotAllowed);
    assert_eq!(p("DELETE /status HTTP/1.1\r\n\r\n"), Ask::MethodNotAllowed);
    assert_eq!(
        p("POST /other HTTP/1.1\r\n\r\n"),
        Ask::NotFound { head_only: false }
    );
    assert_eq!(p("GET /metrics HTTP/1.1\r\nHost"), Ask::Partial);
    assert_eq!(parse(b"\x16\x03\x01\x00\xa5\x01"), Ask::Bad);
    assert_eq!(p("GET /metrics HTTP/9.9\r\n\r\n"), Ask::Bad);
}

fn exchange(addr: std::net::SocketAddr, request: &[u8]) -> (String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").expect("a whole head");
    (head.to_string(), body.to_string())
}

#[test]
fn the_listener_answers_over_a_socket() {
    let (a, b) = two_workers();
    let snaps = vec![a.snapshot(), b.snapshot()];
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let _t = serve_with(listener, move || (snaps.clone(), process()), ms(300));

    let (head, body) = exchange(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8"));
    assert!(head.contains("Connection: close"));
    assert!(head.contains(&format!("Content-Length: {}", body.len())));
    let s = check_exposition(&body);
    assert_eq!(
        value(&s, "ringway_accept_errors_total", &[("worker", "1")]),
        2.0
    );

    let (head, body) = exchange(addr, b"GET /status HTTP/1.0\r\n\r\n");
    assert!(head.contains("Content-Type: application/json"), "{head}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["totals"]["accept_errors"], 3);

    let (head, body) = exchange(addr, b"HEAD /metrics HTTP/1.1\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(!head.contains("Content-Length: 0\r"));
    assert!(body.is_empty());

    let (head, _) = exchange(addr, b"GET /nope HTTP/1.1\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 404 "), "{head}");
    let (head, _) = exchange(addr, b"PUT /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 405 "), "{head}");
    assert!(head.contains("Allow: GET, HEAD"));
    let (head, _) = exchange(addr, b"\x00\x01garbage\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 400 "), "{head}");
    let mut big = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
    big.resize(MAX_HEAD + 100, b'a');
    let mut s = TcpStream::connect(addr).unwrap();
    let _ = s.write_all(&big); // it may stop reading (and reset) past the cap
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let out = String::from_utf8_lossy(&out);
    assert!(out.is_empty() || out.starts_with("HTTP/1.1 431 "), "{out}");

    // A client that sends half a head and stalls is dropped at the
    // deadline; the next scrape is answered.
    let mut stuck = TcpStream::connect(addr).unwrap();
    stuck.write_all(b"GET /metrics HTTP/1.1\r\n").unwrap();
    let idle = TcpStream::connect(addr).unwrap(); // sends nothing
    let (head, _) = exchange(addr, b"GET /metrics HTTP/1.1\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"));
    let mut rest = Vec::new();
    stuck
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    assert_eq!(
        stuck.read_to_end(&mut rest).unwrap_or(0),
        0,
        "closed, no answer"
    );
    drop(idle);
}

/// A connect or health report (upstream, upstream server address) is no
/// server block: it makes no request, upgrade or tunnel series, and its
/// series have no `server` label.
#[test]
fn upstream_connects_make_no_server_series() {
    let m = Metrics::new(0);
    m.http_request("app", 200, ms(1));
    m.upstream_connect("backends", "127.0.0.1:3000", Ok(ms(1)));
    m.upstream_connect("127.0.0.1:3001", "127.0.0.1:3001", Err(()));
    m.upstream_state("backends", "127.0.0.1:3002", false);
    let t = m.tunnel_opened("app", "backends", "127.0.0.1:3000");
    m.tunnel_closed(t, CloseReason::Client, 1, 2, ms(5));
    let s = m.snapshot();
    let names: Vec<&str> = s.servers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["app"]);
    assert_eq!(
        find::<str, _>(&s.servers, "app").tunnels_closed,
        [1, 0, 0, 0, 0]
    );
    let ups: Vec<&UpstreamLabels> = s.upstreams.iter().map(|(k, _)| k).collect();
    assert_eq!(
        ups,
        [
            &upstream("127.0.0.1:3001", "127.0.0.1:3001"),
            &upstream("backends", "127.0.0.1:3000"),
            &upstream("backends", "127.0.0.1:3002"),
        ]
    );
    let tunnels: Vec<&TunnelLabels> = s.tunnels.iter().map(|(k, _)| k).collect();
    assert_eq!(tunnels, [&tunnel("app", "backends", "127.0.0.1:3000")]);
    let text = encode_prometheus(&[s], &process());
    for sample in check_exposition(&text) {
        if sample.name.starts_with("ringway_upstream_") {
            assert_eq!(sample.label("server"), None, "{sample:?}");
        }
        if let Some(server) = sample.label("server") {
            assert_eq!(server, "app", "{sample:?}");
        }
    }
}

/// Each label name means one thing in every family that has it: every
/// label of the text is listed here with what its values must be (a
/// new label must be added, and so thought about).
#[test]
fn each_label_name_has_one_meaning() {
    let (a, b) = two_workers();
    let text = encode_prometheus(&[a.snapshot(), b.snapshot()], &process());
    let is_addr = |v: &str| v.parse::<std::net::SocketAddr>().is_ok();
    let one_of = |set: &'static [&'static str]| move |v: &str| set.contains(&v);
    let closes: Vec<&str> = CloseReason::ALL.iter().map(|r| r.label()).collect();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for s in check_exposition(&text) {
        for (k, v) in &s.labels {
            let ok = match k.as_str() {
                // Server blocks (`[servers.NAME]`).
                "server" => one_of(&["ws", "app"])(v),
                // Upstream groups (or a literal proxy_pass address).
                "upstream" => one_of(&["backends"])(v),
                "upstream_addr" | "listen" => is_addr(v),
                "worker" => v.parse::<usize>().is_ok(),
                "class" => STATUS_CLASSES.contains(&v.as_str()),
                "result" => one_of(&["switched", "refused", "failed", "ok"])(v),
                "reason" => closes.contains(&v.as_str()),
                "direction" => one_of(&["client_to_upstream", "upstream_to_client"])(v),
                "zone" => one_of(&["perip"])(v),
                "kind" => one_of(&["req", "conn"])(v),
                "le" => v == "+Inf" || v.parse::<f64>().is_ok(),
                "version" | "driver" => s.name == "ringway_info",
                other => panic!("label {other:?} has no meaning listed here: {s:?}"),
            };
            assert!(ok, "{k}={v:?} in {s:?}");
            *seen.entry(k.clone()).or_default() += 1;
        }
    }
    for k in ["server", "upstream", "upstream_addr", "listen", "direction"] {
        assert!(seen.contains_key(k), "no {k} label in:\n{text}");
    }
}

/// A scrape's snapshot adds what the open tunnels have moved so far; the
/// close counts the relay's totals once, so the counter only grows and
/// ends at the exact total.
#[test]
fn open_tunnels_bytes_show_in_a_snapshot_and_count_once() {
    let m = Metrics::new(0);
    let t = m.tunnel_opened("ws", "backends", "127.0.0.1:3000");
    let other = m.tunnel_opened("ws", "backends", "127.0.0.1:3001");
    // Bytes that came with the upgrade and its 101.
    m.tunnel_bytes(t, 3, 4);
    let bytes = |s: &WorkerSnapshot, addr: &str| {
        let k = tunnel("ws", "backends", addr);
        let s = find(&s.tunnels, &k);
        (s.bytes_client_to_upstream, s.bytes_upstream_to_client)
    };
    assert_eq!(bytes(&m.snapshot(), "127.0.0.1:3000"), (3, 4));
    // The relay has moved 100 and 2000 so far; a foreign id is ignored.
    let foreign = Metrics::new(1);
    for port in 1..=5 {
        foreign.tunnel_opened("x", "y", &format!("127.0.0.1:{port}"));
    }
    let far = foreign.tunnel_opened("x", "y", "127.0.0.1:6");
    let live = m.snapshot_with(|add| {
        add(t, 100, 2000);
        add(other, 1, 0);
        add(far, 7, 7);
    });
    assert_eq!(bytes(&live, "127.0.0.1:3000"), (103, 2004));
    assert_eq!(bytes(&live, "127.0.0.1:3001"), (1, 0));
    // Live bytes are not kept: a plain snapshot shows the counted ones.
    assert_eq!(bytes(&m.snapshot(), "127.0.0.1:3000"), (3, 4));
    // It closes having moved 150 and 2500 in all: counted once.
    m.tunnel_closed(t, CloseReason::Client, 150, 2500, ms(9));
    let after = m.snapshot_with(|add| add(other, 1, 0));
    assert_eq!(bytes(&after, "127.0.0.1:3000"), (153, 2504));
    let k = tunnel("ws", "backends", "127.0.0.1:3000");
    assert_eq!(find(&after.tunnels, &k).active, 0);
    let text = encode_prometheus(&[after], &process());
    let s = check_exposition(&text);
    let labels = |d| {
        [
            ("server", "ws"),
            ("upstream", "backends"),
            ("upstream_addr", "127.0.0.1:3000"),
            ("direction", d),
        ]
    };
    let total = "ringway_tunnel_bytes_total";
    assert_eq!(value(&s, total, &labels("client_to_upstream")), 153.0);
    assert_eq!(value(&s, total, &labels("upstream_to_client")), 2504.0);
}

/// The `process_*` families, with their HELP and TYPE, only when the
/// figures were read; an unlimited descriptor limit is `+Inf`.
#[test]
fn process_families_follow_the_client_library_names() {
    let text = encode_prometheus(&[], &process());
    let s = check_exposition(&text);
    for (name, kind, v) in [
        ("process_cpu_seconds_total", "counter", 12.5),
        ("process_start_time_seconds", "gauge", 1_699_999_999.37),
        ("process_virtual_memory_bytes", "gauge", (1u64 << 30) as f64),
        (
            "process_resident_memory_bytes",
            "gauge",
            (40u64 << 20) as f64,
        ),
        ("process_open_fds", "gauge", 17.0),
        ("process_max_fds", "gauge", 524_288.0),
    ] {
        assert!(text.contains(&format!("# TYPE {name} {kind}\n")), "{name}");
        assert_eq!(value(&s, name, &[]), v, "{name}");
    }
    let mut p = process();
    if let Some(r) = &mut p.resources {
        r.max_fds = process::Limit::Unlimited;
    }
    let text = encode_prometheus(&[], &p);
    assert!(text.contains("\nprocess_max_fds +Inf\n"), "{text}");
    assert_eq!(
        value(&check_exposition(&text), "process_max_fds", &[]),
        f64::INFINITY
    );
    let none = encode_prometheus(&[], &Process::default());
    assert!(!none.contains("process_"), "{none}");
}
