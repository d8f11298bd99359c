//! Prometheus metrics end to end: known traffic through the real binary
//! (two workers, both drivers), then `GET /metrics` and `GET /status` from
//! the metrics listener, checked for exact counts: requests by class,
//! upgrades by result, tunnels closed and their bytes each way, upstream
//! connect failures, connections by worker, reloads, limit rejections,
//! TLS handshakes and certificate expiry, and the endpoint's own 404/405.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
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
);

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
        ws.close(None).unwrap();
        loop {
            match ws.read() {
                Ok(_) => continue,
                Err(tungstenite::Error::ConnectionClosed) => break,
                Err(e) => panic!("closing the websocket: {e}"),
            }
        }
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

[servers.app]
listen = ["127.0.0.1:0"]
[servers.app.locations."= /ok"]
return = {{ status = 200, body = "OK" }}
[servers.app.locations."/api/"]
proxy_pass = "http://{http}"
[servers.app.locations."/ws/"]
proxy_pass = "http://{ws}"
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
    let up = ws.addr.to_string();
    let pair = [("server", "app"), ("upstream", up.as_str())];
    assert_eq!(one(&text, "ringway_tunnels_active", &pair), 0.0);
    let bytes = |dir| {
        one(
            &text,
            "ringway_tunnel_bytes_total",
            &[
                ("server", "app"),
                ("upstream", up.as_str()),
                ("direction", dir),
            ],
        ) as u64
    };
    assert_eq!(bytes("client_to_upstream"), t.tunnel_sent);
    assert_eq!(bytes("upstream_to_client"), t.tunnel_received);
    assert!(t.tunnel_sent > 4 * 10 && t.tunnel_received > 4 * 10);

    // The upstream that refuses connections.
    let refused = refused.to_string();
    let failures = sum(
        &text,
        "ringway_upstream_connect_failures_total",
        &[("upstream", refused.as_str())],
    );
    assert!(failures >= 1.0, "connect failures {failures}:\n{text}");
    assert!(
        sum(
            &text,
            "ringway_upstream_connect_duration_seconds_count",
            &[("upstream", &http.addr.to_string())]
        ) as u64
            >= proxied
    );

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
        w["upstreams"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|u| u["server"] == "app" && u["upstream"] == up.as_str())
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
