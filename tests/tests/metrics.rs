//! Prometheus metrics end to end: known traffic through the real binary
//! (two workers, both drivers), then `GET /metrics` and `GET /status` from
//! the metrics listener, checked for exact counts: requests by class,
//! upgrades by result, tunnels closed and their bytes each way, upstream
//! connect failures, connections by worker, reloads, limit rejections,
//! TLS handshakes and certificate expiry, and the endpoint's own 404/405;
//! the bytes of a tunnel still open (every relay, and the TLS one); the
//! standard `process_*` families; each label name with one meaning; and
//! the whole exposition read by a real parser (Python's
//! `prometheus_client`, tests/py/prom_parse.py).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringway_tests::*;
use serde_json::Value;
use tungstenite::Message;

both_drivers!(
    known_traffic_gives_exact_counts,
    reloads_are_counted,
    limit_rejections_are_counted,
    tls_handshakes_and_certificate_expiry,
    unknown_path_is_404_and_post_is_405,
    tunnel_bytes_count_while_the_tunnel_is_open,
    wss_tunnel_bytes_count_while_the_tunnel_is_open,
    process_families_read_true_and_the_text_parses,
    http2_streams_are_counted_as_streams,
);

/// The io_uring driver's syscall relay (what a kernel before 5.19 runs):
/// the ring relay and the syscall relay count bytes in different tables.
mod io_uring_syscall_relay {
    #[test]
    fn tunnel_bytes_count_while_the_tunnel_is_open() {
        super::tunnel_bytes_count_while_the_tunnel_is_open(
            ringway_tests::Driver::IoUringSyscallRelay,
        )
    }
}

const TWO_WORKERS: &str = "workers = 2\n";
/// How long the counts may take to show what the clients saw.
const SETTLE: Duration = Duration::from_secs(10);

// ---- the metrics endpoint ----

/// The metrics listener's address, from its log line.
fn metrics_addr(rw: &Ringway) -> SocketAddr {
    let line = rw.wait_for_log("metrics: serving", Duration::from_secs(10));
    let start = line.find(" addr=").expect("addr= in the metrics line") + 6;
    let rest = &line[start..];
    let end = rest.find(' ').unwrap_or(rest.len());
    rest[..end].trim_matches('"').parse().expect("metrics addr")
}

/// One request to `addr` with `Connection: close`: (head, body).
fn request(addr: SocketAddr, method: &str, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(
        format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .unwrap();
    read_response(&mut s)
}

fn scrape(maddr: SocketAddr) -> String {
    let (head, body) = request(maddr, "GET", "/metrics");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    body
}

fn status(maddr: SocketAddr) -> Value {
    let (head, body) = request(maddr, "GET", "/status");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("/status is not JSON ({e}): {body}"))
}

/// One sample of the exposition text.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// The samples of a Prometheus text (comments skipped; label values
/// unescaped).
fn samples(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a sample line");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series.to_string(), BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("labels end with }");
                let mut labels = BTreeMap::new();
                let mut chars = body.chars().peekable();
                loop {
                    let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
                    if key.is_empty() {
                        break;
                    }
                    assert_eq!(chars.next(), Some('"'), "{line}");
                    let mut v = String::new();
                    while let Some(c) = chars.next() {
                        match c {
                            '\\' => match chars.next() {
                                Some('n') => v.push('\n'),
                                Some(c) => v.push(c),
                                None => panic!("{line}"),
                            },
                            '"' => break,
                            c => v.push(c),
                        }
                    }
                    labels.insert(key, v);
                    if chars.peek() == Some(&',') {
                        chars.next();
                    }
                }
                (name.to_string(), labels)
            }
        };
        out.push(Sample {
            name,
            labels,
            value,
        });
    }
    out
}

/// The samples named `name` whose labels include `labels`.
fn matching<'a>(all: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    all.iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect()
}

/// The one series `name{labels}` (labels: all of its labels but `worker`
/// or `le`, enough to pick one); panics when there is none or several.
fn one(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let all = samples(text);
    let m = matching(&all, name, labels);
    assert_eq!(
        m.len(),
        1,
        "{name}{labels:?}: expected one series, got {m:?}\n{text}"
    );
    m[0].value
}

/// The sum of `name` over the series whose labels include `labels`.
fn sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    matching(&samples(text), name, labels)
        .iter()
        .map(|s| s.value)
        .sum()
}

/// Scrape until `ready` holds on the text (bounded), then return it.
fn scrape_until(maddr: SocketAddr, what: &str, ready: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + SETTLE;
    loop {
        let text = scrape(maddr);
        if ready(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "metrics never showed {what} within {SETTLE:?}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---- clients ----

/// Connections made to the proxy, and tunnel bytes the clients moved.
#[derive(Default)]
struct Traffic {
    connections: u64,
    tunnel_sent: u64,
    tunnel_received: u64,
}

impl Traffic {
    fn connect(&mut self, addr: SocketAddr) -> TcpStream {
        self.connections += 1;
        let s = TcpStream::connect(addr).expect("connect to ringway");
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
        s
    }

    /// `paths` on one keep-alive connection (the last closes it); the
    /// status of each answer.
    fn get(&mut self, addr: SocketAddr, paths: &[&str]) -> Vec<u16> {
        let mut s = self.connect(addr);
        let mut out = Vec::new();
        for (i, p) in paths.iter().enumerate() {
            let close = if i + 1 == paths.len() {
                "Connection: close\r\n"
            } else {
                ""
            };
            s.write_all(format!("GET {p} HTTP/1.1\r\nHost: x\r\n{close}\r\n").as_bytes())
                .unwrap();
            let (head, _) = read_response(&mut s);
            out.push(head[9..12].parse().expect("status"));
        }
        out
    }

    /// A WebSocket through the proxy: one message echoed, closed by the
    /// client; the bytes after the handshake are added up.
    fn tunnel(&mut self, addr: SocketAddr, path: &str, msg: &str) {
        let (read, written) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let s = Counted {
            s: self.connect(addr),
            read: read.clone(),
            written: written.clone(),
        };
        let mut ws = tungstenite::client::client_with_config(
            format!("ws://{addr}{path}"),
            s,
            Some(ws_config()),
        )
        .map_err(|e| format!("{e}"))
        .expect("websocket handshake")
        .0;
        let (read0, written0) = (read.load(Ordering::SeqCst), written.load(Ordering::SeqCst));
        ws.send(Message::Text(msg.into())).unwrap();
        assert_eq!(ws.read().unwrap(), Message::Text(msg.into()));
        close_websocket(&mut ws);
        drop(ws);
        self.tunnel_sent += written.load(Ordering::SeqCst) - written0;
        self.tunnel_received += read.load(Ordering::SeqCst) - read0;
    }

    /// An upgrade the proxy answers without a tunnel: its status.
    fn refused_upgrade(&mut self, addr: SocketAddr, path: &str) -> u16 {
        let s = self.connect(addr);
        match tungstenite::client::client_with_config(
            format!("ws://{addr}{path}"),
            s,
            Some(ws_config()),
        ) {
            Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(resp))) => {
                resp.status().as_u16()
            }
            Err(e) => panic!("upgrade to {path}: {e:?}"),
            Ok(_) => panic!("upgrade to {path} was switched"),
        }
    }
}

// ---- tests ----

fn traffic_config(http: SocketAddr, ws: SocketAddr, refused: SocketAddr) -> String {
    format!(
        r#"
[metrics]
listen = "127.0.0.1:0"

[upstreams.wsgroup]
servers = [{{ addr = "{ws}" }}]

[servers.app]
listen = ["127.0.0.1:0"]
[servers.app.locations."= /ok"]
return = {{ status = 200, body = "OK" }}
[servers.app.locations."/api/"]
proxy_pass = "http://{http}"
[servers.app.locations."/ws/"]
proxy_pass = "http://wsgroup"
[servers.app.locations."/down/"]
proxy_pass = "http://{refused}"
proxy_connect_timeout = "2s"
"#
    )
}

fn known_traffic_gives_exact_counts(d: Driver) {
    let http = HttpBackend::start();
    let ws = Backend::start();
    let refused = refused_addr();
    let rw =
        Ringway::start_with_runtime(&traffic_config(http.addr, ws.addr, refused), d, TWO_WORKERS);
    let maddr = metrics_addr(&rw);
    let addr = rw.addr("app");
    let mut t = Traffic::default();

    // Nothing yet: no request series with counts, no tunnels.
    let empty = scrape(maddr);
    assert_eq!(sum(&empty, "ringway_http_requests_total", &[]), 0.0);
    assert_eq!(one(&empty, "ringway_workers", &[]), 2.0);

    let mut ok = 0u64;
    for _ in 0..15 {
        assert_eq!(t.get(addr, &["/ok", "/ok"]), [200, 200]);
        ok += 2;
    }
    let missing = 6u64;
    for _ in 0..3 {
        assert_eq!(t.get(addr, &["/missing", "/nowhere?x=1"]), [404, 404]);
    }
    let proxied = 5u64;
    for i in 0..proxied {
        assert_eq!(t.get(addr, &[&format!("/api/item/{i}")]), [200]);
    }
    let tunnels = 4u64;
    for i in 0..tunnels {
        t.tunnel(
            addr,
            &format!("/ws/echo/{i}"),
            &"m".repeat(10 + i as usize * 100),
        );
    }
    assert_eq!(t.refused_upgrade(addr, "/ws/deny"), 403);
    assert_eq!(t.refused_upgrade(addr, "/down/ws"), 502);

    // Both workers must have served some: SO_REUSEPORT spreads new
    // connections by their ports, so make more until both have.
    let per_worker_accepted = |text: &str| -> Vec<f64> {
        (0..2)
            .map(|w| {
                sum(
                    text,
                    "ringway_connections_accepted_total",
                    &[("worker", &w.to_string())],
                )
            })
            .collect()
    };
    for _ in 0..200 {
        let text = scrape(maddr);
        if per_worker_accepted(&text).iter().all(|&n| n > 0.0) {
            break;
        }
        assert_eq!(t.get(addr, &["/ok"]), [200]);
        ok += 1;
    }

    let s = [("server", "app")];
    let class = |c: &'static str| [("server", "app"), ("class", c)];
    let expected_requests = ok + proxied + missing + 1 + 1 + tunnels;
    let text = scrape_until(maddr, "every request, tunnel and connection", |text| {
        sum(text, "ringway_http_requests_total", &s) as u64 == expected_requests
            && sum(text, "ringway_tunnels_closed_total", &s) as u64 == tunnels
            && sum(text, "ringway_connections_active", &[]) == 0.0
    });
    eprintln!("{text}");

    // Requests by class: the 101s of the tunnels, the 200s (return and
    // proxied), the 404s and the 403 of the refused upgrade, the 502 of
    // the upstream that refuses connections.
    let requests = |c| one(&text, "ringway_http_requests_total", &class(c)) as u64;
    assert_eq!(requests("1xx"), tunnels);
    assert_eq!(requests("2xx"), ok + proxied);
    assert_eq!(requests("3xx"), 0);
    assert_eq!(requests("4xx"), missing + 1);
    assert_eq!(requests("5xx"), 1);
    assert_eq!(
        one(&text, "ringway_http_request_duration_seconds_count", &s) as u64,
        expected_requests
    );
    assert_eq!(
        one(
            &text,
            "ringway_http_request_duration_seconds_bucket",
            &[("server", "app"), ("le", "+Inf")]
        ) as u64,
        expected_requests
    );
    // Only the configured server block is a `server` of the request
    // series (upstream addresses are not).
    let servers: std::collections::BTreeSet<String> =
        matching(&samples(&text), "ringway_http_requests_total", &[])
            .iter()
            .map(|s| s.labels["server"].clone())
            .collect();
    assert_eq!(servers.into_iter().collect::<Vec<_>>(), ["app"]);

    // Upgrades and tunnels.
    let upgrades = |r| {
        one(
            &text,
            "ringway_websocket_upgrades_total",
            &[("server", "app"), ("result", r)],
        ) as u64
    };
    assert_eq!(upgrades("switched"), tunnels);
    assert_eq!(upgrades("refused"), 1);
    assert_eq!(upgrades("failed"), 1);
    let closed = |r| {
        one(
            &text,
            "ringway_tunnels_closed_total",
            &[("server", "app"), ("reason", r)],
        ) as u64
    };
    assert_eq!(closed("client"), tunnels);
    for r in ["upstream", "idle", "drain", "error"] {
        assert_eq!(closed(r), 0, "reason {r}");
    }
    assert_eq!(
        one(&text, "ringway_tunnel_duration_seconds_count", &s) as u64,
        tunnels
    );
    // A tunnel series: the server block, the upstream group, the
    // upstream server's address.
    let up = ws.addr.to_string();
    let pair = [
        ("server", "app"),
        ("upstream", "wsgroup"),
        ("upstream_addr", up.as_str()),
    ];
    assert_eq!(one(&text, "ringway_tunnels_active", &pair), 0.0);
    let bytes = |dir| {
        one(
            &text,
            "ringway_tunnel_bytes_total",
            &[pair[0], pair[1], pair[2], ("direction", dir)],
        ) as u64
    };
    assert_eq!(bytes("client_to_upstream"), t.tunnel_sent);
    assert_eq!(bytes("upstream_to_client"), t.tunnel_received);
    assert!(t.tunnel_sent > 4 * 10 && t.tunnel_received > 4 * 10);

    // The upstream that refuses connections: a proxy_pass to an
    // address is its own upstream.
    let refused = refused.to_string();
    let failures = one(
        &text,
        "ringway_upstream_connect_failures_total",
        &[
            ("upstream", refused.as_str()),
            ("upstream_addr", refused.as_str()),
        ],
    );
    assert!(failures >= 1.0, "connect failures {failures}:\n{text}");
    let http_addr = http.addr.to_string();
    assert!(
        one(
            &text,
            "ringway_upstream_connect_duration_seconds_count",
            &[("upstream", &http_addr), ("upstream_addr", &http_addr)]
        ) as u64
            >= proxied
    );
    assert_eq!(
        one(
            &text,
            "ringway_upstream_connect_duration_seconds_count",
            &[("upstream", "wsgroup"), ("upstream_addr", &up)]
        ) as u64,
        tunnels + 1,
        "the tunnels' connects and the refused upgrade's"
    );
    assert_eq!(
        one(
            &text,
            "ringway_upstream_up",
            &[("upstream", "wsgroup"), ("upstream_addr", &up)]
        ),
        1.0
    );
    // One meaning per label name, across every family: `server` is only
    // ever the server block, `upstream` a group or a proxy_pass address,
    // `upstream_addr` an upstream server's address.
    for sample in samples(&text) {
        let l = &sample.labels;
        if let Some(server) = l.get("server") {
            assert_eq!(server, "app", "{sample:?}");
        }
        if let Some(u) = l.get("upstream") {
            assert!(
                [&"wsgroup".to_string(), &refused, &http_addr].contains(&u),
                "{sample:?}"
            );
        }
        if let Some(a) = l.get("upstream_addr") {
            assert!([&up, &refused, &http_addr].contains(&a), "{sample:?}");
        }
        if sample.name.starts_with("ringway_upstream_") {
            assert!(!l.contains_key("server"), "{sample:?}");
        }
    }
    // The whole text through a real parser.
    let parsed = parse_exposition(&text);
    assert_eq!(parsed["ringway_tunnel_bytes_total"]["type"], "counter");

    // Connections: every one counted once, on some worker; none open.
    let accepted = per_worker_accepted(&text);
    assert!(accepted.iter().all(|&n| n > 0.0), "{accepted:?}");
    assert_eq!(accepted.iter().sum::<f64>() as u64, t.connections);
    assert_eq!(
        sum(
            &text,
            "ringway_connections_accepted_total",
            &[("listen", "127.0.0.1:0")]
        ) as u64,
        t.connections
    );
    assert_eq!(
        one(&text, "ringway_accept_errors_total", &[("worker", "0")]),
        0.0
    );

    // /status: the same counts, totals the sum of the workers.
    let st = status(maddr);
    assert_eq!(st["workers"], 2);
    assert_eq!(st["driver"], d.name());
    let per_worker = st["per_worker"].as_array().expect("per_worker");
    assert_eq!(per_worker.len(), 2);
    let totals = &st["totals"];
    let server = |w: &Value| -> Value {
        w["servers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["server"] == "app")
            .cloned()
            .unwrap_or(Value::Null)
    };
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let tapp = server(totals);
    for (key, sub) in [
        ("requests", "1xx"),
        ("requests", "2xx"),
        ("requests", "4xx"),
        ("requests", "5xx"),
        ("websocket_upgrades", "switched"),
        ("websocket_upgrades", "refused"),
        ("websocket_upgrades", "failed"),
        ("tunnels_closed", "client"),
        ("request_duration_seconds", "count"),
        ("tunnel_duration_seconds", "count"),
    ] {
        let parts: u64 = per_worker.iter().map(|w| n(&server(w)[key][sub])).sum();
        assert_eq!(n(&tapp[key][sub]), parts, "{key}.{sub}: {st}");
    }
    assert_eq!(n(&tapp["requests"]["2xx"]), ok + proxied);
    assert_eq!(n(&tapp["requests"]["1xx"]), tunnels);
    assert_eq!(n(&tapp["websocket_upgrades"]["switched"]), tunnels);
    assert_eq!(n(&tapp["tunnels_closed"]["client"]), tunnels);
    let accepted_in = |w: &Value| -> u64 {
        w["listens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| n(&l["accepted"]))
            .sum()
    };
    let worker_ids: Vec<u64> = per_worker.iter().map(|w| n(&w["worker"])).collect();
    assert_eq!(worker_ids, [0, 1]);
    assert!(per_worker.iter().all(|w| accepted_in(w) > 0), "{st}");
    assert_eq!(accepted_in(totals), t.connections);
    assert_eq!(
        per_worker.iter().map(accepted_in).sum::<u64>(),
        t.connections
    );
    let bytes_in = |w: &Value, dir: &str| -> u64 {
        w["tunnels"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|u| {
                u["server"] == "app"
                    && u["upstream"] == "wsgroup"
                    && u["upstream_addr"] == up.as_str()
            })
            .map(|u| n(&u["bytes"][dir]))
            .sum()
    };
    for (dir, want) in [
        ("client_to_upstream", t.tunnel_sent),
        ("upstream_to_client", t.tunnel_received),
    ] {
        assert_eq!(bytes_in(totals, dir), want, "{dir}");
        assert_eq!(
            per_worker.iter().map(|w| bytes_in(w, dir)).sum::<u64>(),
            want
        );
    }
}

fn small_config(body: &str) -> String {
    format!(
        "[metrics]\nlisten = \"127.0.0.1:0\"\n\n[servers.app]\nlisten = [\"127.0.0.1:0\"]\n[servers.app.locations.\"= /ok\"]\nreturn = {{ status = 200, body = \"{body}\" }}\n"
    )
}

/// Four HTTP/2 streams on one h2c connection (Python `h2`,
/// tests/py/h2_multiplex.py: three GETs and a POST): one connection
/// accepted, four streams, none open once they are answered; the JSON
/// status says the same.
fn http2_streams_are_counted_as_streams(d: Driver) {
    let config = small_config("v1").replace(
        "listen = [\"127.0.0.1:0\"]\n",
        "listen = [\"127.0.0.1:0\"]\nhttp2 = \"h2c\"\n",
    );
    let rw = Ringway::start_with_runtime(&config, d, TWO_WORKERS);
    let maddr = metrics_addr(&rw);
    let addr = rw.addr("app");
    let mut cmd = Command::new("python3");
    cmd.arg(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("py")
            .join("h2_multiplex.py"),
    )
    .arg(addr.ip().to_string())
    .arg(addr.port().to_string())
    .args(["/ok", "/ok", "/ok"]);
    let out = ringway_tests::tls_support::run_bounded(
        &mut cmd,
        None,
        Duration::from_secs(30),
        "python3 is missing",
    );
    assert!(out.ok() && out.stdout.ends_with("DONE\n"), "{}", out.all());
    // The label is the address as configured.
    let listen = "127.0.0.1:0";
    let l = [("listen", listen)];
    let text = scrape_until(maddr, "four streams, none open", |t| {
        sum(t, "ringway_http2_streams_total", &l) == 4.0
            && sum(t, "ringway_http2_streams_active", &l) == 0.0
            && sum(t, "ringway_connections_active", &l) == 0.0
    });
    assert_eq!(sum(&text, "ringway_connections_accepted_total", &l), 1.0);
    let st = status(maddr);
    let listens = st["totals"]["listens"].as_array().expect("listens");
    let entry = listens
        .iter()
        .find(|e| e["listen"] == listen)
        .expect("the app's listen");
    assert_eq!(entry["http2_streams"], 4, "{st}");
    assert_eq!(entry["accepted"], 1, "{st}");
}

fn reloads_are_counted(d: Driver) {
    let rw = Ringway::start_with_runtime(&small_config("v1"), d, TWO_WORKERS);
    let maddr = metrics_addr(&rw);
    let reloads = |text: &str, r| one(text, "ringway_config_reloads_total", &[("result", r)]);
    let text = scrape(maddr);
    assert_eq!((reloads(&text, "ok"), reloads(&text, "failed")), (0.0, 0.0));

    // Each worker logs "configuration reloaded": two per reload.
    rw.reload(&small_config("v2"), 2);
    assert_eq!(request(rw.addr("app"), "GET", "/ok").1, "v2");
    let text = scrape(maddr);
    assert_eq!((reloads(&text, "ok"), reloads(&text, "failed")), (1.0, 0.0));

    let old = std::fs::read_to_string(&rw.config_path).unwrap();
    std::fs::write(&rw.config_path, format!("{old}\nbogus = [\n")).unwrap();
    rw.signal(libc::SIGHUP);
    rw.wait_for_log("reload failed", Duration::from_secs(10));
    let text = scrape_until(maddr, "the failed reload", |t| reloads(t, "failed") == 1.0);
    assert_eq!((reloads(&text, "ok"), reloads(&text, "failed")), (1.0, 1.0));
    let st = status(maddr);
    assert_eq!(st["reloads"]["ok"], 1);
    assert_eq!(st["reloads"]["failed"], 1);
    // The running configuration is still v2.
    assert_eq!(request(rw.addr("app"), "GET", "/ok").1, "v2");
}

fn limit_rejections_are_counted(d: Driver) {
    let config = r#"
[metrics]
listen = "127.0.0.1:0"

[limit_req_zones.z]
key = "$binary_remote_addr"
rate = "1r/m"

[servers.app]
listen = ["127.0.0.1:0"]
[servers.app.locations."= /ok"]
return = { status = 200, body = "OK" }
limit_req = { zone = "z", burst = 1, nodelay = true }
"#;
    let rw = Ringway::start_with_runtime(config, d, TWO_WORKERS);
    let maddr = metrics_addr(&rw);
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let (head, _) = request(rw.addr("app"), "GET", "/ok");
        statuses.push(head[9..12].parse::<u16>().unwrap());
    }
    // One at the rate and one of burst pass; the rest are refused (503,
    // limit_req_status's default).
    assert_eq!(statuses, [200, 200, 503, 503, 503]);
    let text = scrape_until(maddr, "five requests", |t| {
        sum(t, "ringway_http_requests_total", &[("server", "app")]) == 5.0
    });
    let z = |kind| {
        one(
            &text,
            "ringway_limit_rejections_total",
            &[("zone", "z"), ("kind", kind)],
        )
    };
    assert_eq!(z("req"), 3.0);
    assert_eq!(z("conn"), 0.0);
    assert_eq!(
        one(&text, "ringway_limit_delayed_total", &[("zone", "z")]),
        0.0
    );
    assert_eq!(
        one(
            &text,
            "ringway_http_requests_total",
            &[("server", "app"), ("class", "5xx")]
        ),
        3.0
    );
    let st = status(maddr);
    let zone = &st["totals"]["limits"][0];
    assert_eq!(zone["zone"], "z");
    assert_eq!(zone["rejected_req"], 3);
}

fn tls_handshakes_and_certificate_expiry(d: Driver) {
    use ringway_tests::tls_support::*;
    let c = certs();
    let config = format!(
        r#"
[metrics]
listen = "127.0.0.1:0"

[servers.a]
listen = ["127.0.0.1:0"]
server_name = ["a.test"]
tls = {{ cert = "{}", key = "{}" }}
[servers.a.locations."= /ok"]
return = {{ status = 200, body = "OK" }}
"#,
        c.a_cert.display(),
        c.a_key.display()
    );
    let rw = Ringway::start_with_runtime(&config, d, TWO_WORKERS);
    let maddr = metrics_addr(&rw);
    for _ in 0..3 {
        let out = https_get(rw.addr("a"), "a.test", "/ok");
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    }
    // A client that does not trust the certificate fails its handshake.
    let bad = client_config_with(&c.wrong_ca, TLS12_AND_13, &[]);
    let failed = tls_connect(rw.addr("a"), "a.test", bad)
        .and_then(|mut s| {
            s.write_all(b"GET /ok HTTP/1.1\r\nHost: a.test\r\n\r\n")?;
            s.flush()
        })
        .is_err();
    assert!(failed, "a client trusting another CA completed a request");
    let text = scrape_until(maddr, "three TLS handshakes", |t| {
        sum(t, "ringway_http_requests_total", &[("server", "a")]) == 3.0
            && sum(t, "ringway_tls_handshakes_total", &[("result", "failed")]) >= 1.0
    });
    assert_eq!(
        one(&text, "ringway_tls_handshakes_total", &[("result", "ok")]),
        3.0
    );
    let not_after = one(
        &text,
        "ringway_tls_certificate_not_after_seconds",
        &[("server", "a")],
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as f64;
    assert!(not_after > now, "notAfter {not_after} is not in the future");
    let st = status(maddr);
    assert_eq!(st["totals"]["tls_handshakes"]["ok"], 3);
    assert_eq!(st["certificates"][0]["server"], "a");
}

fn unknown_path_is_404_and_post_is_405(d: Driver) {
    let rw = Ringway::start_with_runtime(&small_config("OK"), d, TWO_WORKERS);
    let maddr = metrics_addr(&rw);
    let (head, _) = request(maddr, "GET", "/nope");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    let (head, _) = request(maddr, "POST", "/metrics");
    assert!(head.starts_with("HTTP/1.1 405"), "{head}");
    assert!(head.contains("Allow: GET, HEAD"), "{head}");
    // HEAD: the head of the text, no body.
    let out = raw_exchange(
        maddr,
        b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::from_secs(10),
    );
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.ends_with("\r\n\r\n"), "HEAD has a body: {out}");
    // The endpoint still serves after those.
    assert!(scrape(maddr).contains("# TYPE ringway_http_requests_total counter"));
}

// ---- a real parser ----

const NO_PROMETHEUS_CLIENT: &str = "python3 is missing: this test needs Python 3 with the `prometheus_client` package (pip install prometheus-client)";

/// The exposition read by Python's `prometheus_client` parser and the
/// checks of tests/py/prom_parse.py (HELP and TYPE once per family, every
/// sample in its declared family, names and labels valid, histograms
/// whole): the families by name, each `{"type", "help", "samples":
/// [[name, {labels}, value]]}`.
fn parse_exposition(text: &str) -> serde_json::Map<String, Value> {
    use ringway_tests::tls_support::run_bounded;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("py")
        .join("prom_parse.py");
    let out = run_bounded(
        Command::new("python3").arg(script),
        Some(text.as_bytes().to_vec()),
        Duration::from_secs(60),
        NO_PROMETHEUS_CLIENT,
    );
    assert!(
        !out.stdout.contains("MISSING-PROMETHEUS-CLIENT"),
        "{NO_PROMETHEUS_CLIENT}: {}",
        out.all()
    );
    assert!(
        out.ok(),
        "the exposition does not parse: {}\n{text}",
        out.all()
    );
    let v: Value = serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("prom_parse.py output ({e}): {}", out.all()));
    v["families"].as_object().expect("families").clone()
}

/// The one sample of family `name` (no labels) in a parsed exposition.
fn parsed_value(families: &serde_json::Map<String, Value>, name: &str) -> f64 {
    let f = families
        .get(name)
        .unwrap_or_else(|| panic!("no family {name}"));
    let samples = f["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 1, "{name}: {f}");
    match &samples[0][2] {
        Value::String(s) if s == "+Inf" => f64::INFINITY,
        v => v.as_f64().unwrap_or_else(|| panic!("{name}: value {v}")),
    }
}

// ---- /proc of the ringway process, read by the test ----

fn proc_text(pid: u32, file: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/{file}: {e}"))
}

/// Fields 3.. of /proc/PID/stat (after the command name).
fn stat_fields(pid: u32) -> Vec<u64> {
    let text = proc_text(pid, "stat");
    let rest = &text[text.rfind(')').expect("comm") + 1..];
    rest.split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect()
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf reads a configuration value.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }) as f64
}

/// utime + stime of `pid`, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let f = stat_fields(pid);
    (f[14 - 3] + f[15 - 3]) as f64 / clock_ticks()
}

/// The soft `Max open files` of /proc/PID/limits.
fn soft_nofile(pid: u32) -> f64 {
    let text = proc_text(pid, "limits");
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .expect("Max open files line");
    match line.split_whitespace().next() {
        Some("unlimited") => f64::INFINITY,
        Some(n) => n.parse().expect("a number"),
        None => panic!("{line}"),
    }
}

fn open_fds(pid: u32) -> f64 {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("/proc/PID/fd")
        .count() as f64
}

/// The `VmRSS` of /proc/PID/status, in bytes.
fn vm_rss(pid: u32) -> f64 {
    let text = proc_text(pid, "status");
    let kb: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kb * 1024.0
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The standard `process_*` families of a running ringway against what
/// /proc says of it, and the whole exposition through a real parser.
fn process_families_read_true_and_the_text_parses(d: Driver) {
    let t0 = unix_now();
    let rw = Ringway::start_with_runtime(&small_config("OK"), d, TWO_WORKERS);
    let maddr = metrics_addr(&rw);
    let pid = rw.pid();
    // Client connections held open: each is a descriptor of ringway's.
    let held: Vec<TcpStream> = (0..8).map(|_| rw.client("app")).collect();
    scrape_until(maddr, "the held connections", |t| {
        sum(t, "ringway_connections_active", &[]) == held.len() as f64
    });
    let (cpu_before, fds_before, rss_before) = (cpu_seconds(pid), open_fds(pid), vm_rss(pid));
    let text = scrape(maddr);
    let (cpu_after, fds_after) = (cpu_seconds(pid), open_fds(pid));
    let t1 = unix_now();
    let f = parse_exposition(&text);
    for (name, kind) in [
        ("process_cpu_seconds_total", "counter"),
        ("process_start_time_seconds", "gauge"),
        ("process_virtual_memory_bytes", "gauge"),
        ("process_resident_memory_bytes", "gauge"),
        ("process_open_fds", "gauge"),
        ("process_max_fds", "gauge"),
    ] {
        assert_eq!(f[name]["type"], kind, "{name}");
    }
    assert_eq!(
        sum(&text, "ringway_connections_active", &[]),
        held.len() as f64
    );
    let v = |name| parsed_value(&f, name);

    // Started within this test's run: /proc/stat's btime is whole
    // seconds, so the start may read up to a second early.
    let start = v("process_start_time_seconds");
    assert!(
        start >= t0 - 1.5 && start <= t1,
        "start {start} not in {t0}..{t1}"
    );
    // CPU time as /proc said just before and after the scrape.
    let cpu = v("process_cpu_seconds_total");
    assert!(
        cpu >= cpu_before && cpu <= cpu_after,
        "cpu {cpu} not in {cpu_before}..{cpu_after}"
    );
    // At least the held connections are open; about what /proc lists
    // (give or take the scrape's own connection and directory read).
    let fds = v("process_open_fds");
    assert!(fds >= held.len() as f64, "open fds {fds}");
    assert!(
        fds >= fds_before.min(fds_after) - 2.0 && fds <= fds_before.max(fds_after) + 3.0,
        "open fds {fds}, /proc lists {fds_before} then {fds_after}"
    );
    assert_eq!(v("process_max_fds"), soft_nofile(pid));
    let (rss, vsize) = (
        v("process_resident_memory_bytes"),
        v("process_virtual_memory_bytes"),
    );
    assert!(rss > 0.0 && rss <= vsize, "rss {rss}, virtual {vsize}");
    assert!(
        rss > rss_before / 2.0 && rss < rss_before * 2.0,
        "rss {rss}, VmRSS {rss_before}"
    );
    drop(held);
}

// ---- the bytes of an open tunnel ----

/// A stream that counts the bytes through it (plaintext, over TLS too).
struct Tally<S> {
    s: S,
    read: u64,
    written: u64,
}

impl<S: Read> Read for Tally<S> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.s.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

impl<S: Write> Write for Tally<S> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.s.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.s.flush()
    }
}

/// The bytes of one WebSocket frame with `payload` bytes (RFC 6455
/// §5.2): two, the extended length (2 or 8), the mask (a client's), the
/// payload.
fn frame_len(payload: usize, masked: bool) -> u64 {
    let ext = match payload {
        0..=125 => 0,
        126..=65535 => 2,
        _ => 8,
    };
    (2 + ext + if masked { 4 } else { 0 } + payload) as u64
}

fn open_tunnel_config(ws: SocketAddr, tls: bool) -> String {
    let tls = if tls {
        let c = ringway_tests::tls_support::certs();
        format!(
            "server_name = [\"a.test\"]\ntls = {{ cert = \"{}\", key = \"{}\" }}\n",
            c.a_cert.display(),
            c.a_key.display()
        )
    } else {
        String::new()
    };
    format!(
        r#"
[metrics]
listen = "127.0.0.1:0"

[servers.app]
listen = ["127.0.0.1:0"]
{tls}
[servers.app.locations."/ws/"]
proxy_pass = "http://{ws}"
"#
    )
}

/// Messages each way through a tunnel that stays open: the byte counters
/// reach exactly what passed (every frame byte counted, both ways) while
/// it is open, move on with the next message, and end at the exact total
/// when it closes (counted once).
fn tunnel_bytes_count_while_the_tunnel_is_open(d: Driver) {
    let ws = Backend::start();
    let rw = Ringway::start(&open_tunnel_config(ws.addr, false), d);
    let addr = rw.addr("app");
    let stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    open_tunnel_counts(&rw, ws.addr, stream, true);
}

/// The same through a TLS client side (the buffered relay).
fn wss_tunnel_bytes_count_while_the_tunnel_is_open(d: Driver) {
    use ringway_tests::tls_support::{client_config, tls_connect};
    let ws = Backend::start();
    let rw = Ringway::start(&open_tunnel_config(ws.addr, true), d);
    let tls = tls_connect(rw.addr("app"), "a.test", client_config()).expect("TLS handshake");
    tls.sock
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    open_tunnel_counts(&rw, ws.addr, tls, false);
}

fn open_tunnel_counts<S: Read + Write>(rw: &Ringway, backend: SocketAddr, stream: S, plain: bool) {
    let maddr = metrics_addr(rw);
    let port = rw.addr("app").port();
    let mut ws = tungstenite::client::client_with_config(
        format!("ws://a.test:{port}/ws/open"),
        Tally {
            s: stream,
            read: 0,
            written: 0,
        },
        Some(ws_config()),
    )
    .map_err(|e| format!("{e}"))
    .expect("websocket handshake")
    .0;
    let (read0, written0) = (ws.get_ref().read, ws.get_ref().written);
    let up = backend.to_string();
    let labels = |dir| {
        [
            ("server", "app"),
            ("upstream", up.as_str()),
            ("upstream_addr", up.as_str()),
            ("direction", dir),
        ]
    };
    // Counted so far: what ringway shows once it has caught up, never
    // more than the client moved.
    let counted_reach = |sent: u64, received: u64, what: &str| -> String {
        scrape_until(maddr, what, |t| {
            let a = sum(
                t,
                "ringway_tunnel_bytes_total",
                &labels("client_to_upstream"),
            ) as u64;
            let b = sum(
                t,
                "ringway_tunnel_bytes_total",
                &labels("upstream_to_client"),
            ) as u64;
            assert!(
                a <= sent && b <= received,
                "counted {a}/{b}, more than the {sent}/{received} that passed:\n{t}"
            );
            a == sent && b == received
        })
    };
    // Every length form of a frame header, and bursts past the relay
    // buffer (16 KiB), which the relays splice.
    let (mut sent, mut received) = (0u64, 0u64);
    for (i, len) in [0usize, 10, 125, 126, 5_000, 65_535, 65_536, 300_000]
        .into_iter()
        .enumerate()
    {
        let msg = Message::Binary(vec![i as u8; len]);
        ws.send(msg.clone()).unwrap();
        assert_eq!(ws.read().unwrap(), msg);
        sent += frame_len(len, true);
        received += frame_len(len, false);
    }
    // The client's own count agrees with the frames' sizes.
    assert_eq!(ws.get_ref().written - written0, sent);
    assert_eq!(ws.get_ref().read - read0, received);

    let text = counted_reach(sent, received, "the open tunnel's bytes");
    assert_eq!(
        one(&text, "ringway_tunnels_active", &labels("")[..3]),
        1.0,
        "the tunnel is open"
    );
    assert_eq!(sum(&text, "ringway_tunnels_closed_total", &[]), 0.0);

    // More while still open: the counters move on.
    let msg = Message::Text("still open".into());
    ws.send(msg.clone()).unwrap();
    assert_eq!(ws.read().unwrap(), msg);
    sent += frame_len(10, true);
    received += frame_len(10, false);
    counted_reach(sent, received, "the next message's bytes");

    // Closed by the client: the close frames pass, then both ends.
    close_websocket(&mut ws);
    let (sent, received) = (ws.get_ref().written - written0, ws.get_ref().read - read0);
    drop(ws);
    let text = scrape_until(maddr, "the tunnel's close", |t| {
        sum(t, "ringway_tunnels_closed_total", &[]) == 1.0
    });
    let bytes = |dir| one(&text, "ringway_tunnel_bytes_total", &labels(dir)) as u64;
    assert_eq!(bytes("client_to_upstream"), sent, "counted once, exactly");
    assert_eq!(bytes("upstream_to_client"), received);
    assert_eq!(one(&text, "ringway_tunnels_active", &labels("")[..3]), 0.0);
    if plain {
        assert_eq!(
            one(
                &text,
                "ringway_tunnels_closed_total",
                &[("server", "app"), ("reason", "client")]
            ),
            1.0
        );
    }
}
