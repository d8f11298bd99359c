//! `limit_req` and `limit_conn` end to end: real clients from several
//! loopback source addresses against the real binary, two workers where
//! the zones must be shared (SO_REUSEPORT spreads one address's
//! connections over both), counts checked exactly as nginx predicts them.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use ringway_tests::*;
use tungstenite::Message;

both_drivers!(
    limit_req_nodelay_counts_exactly_across_two_workers,
    limit_req_status_429,
    limit_req_without_nodelay_delays_then_refuses,
    limit_conn_caps_live_tunnels_per_address,
    limit_req_with_an_undefined_zone_fails_the_config_test,
    zones_keep_their_state_across_a_reload,
    server_limit_is_inherited_and_delay_splits_the_burst,
);

fn src(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// One location proxying to `http`, limited by `limit`, with zone
/// `per_ip` at `rate` and the location lines `extra`.
fn req_config(http: SocketAddr, rate: &str, limit: &str, extra: &str) -> String {
    format!(
        r#"
[limit_req_zones.per_ip]
key = "$binary_remote_addr"
rate = "{rate}"
size = "1m"

[servers.app]
listen = ["127.0.0.1:0"]
[servers.app.locations."/"]
proxy_pass = "http://{http}"
limit_req = {limit}
{extra}
"#
    )
}

/// A request on a connection of its own from `from`: the status line.
fn get_from(from: IpAddr, proxy: SocketAddr, path: &str) -> String {
    let mut s = connect_from(from, proxy);
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let (head, _) = read_response(&mut s);
    head.lines().next().unwrap_or("").to_string()
}

/// `n` requests from `from`, each on its own connection, all released at
/// once from `n` threads: their status lines.
fn burst_from(from: IpAddr, proxy: SocketAddr, n: usize) -> Vec<String> {
    let go = Arc::new(Barrier::new(n));
    let threads: Vec<_> = (0..n)
        .map(|i| {
            let go = go.clone();
            thread::spawn(move || {
                // Connect first, then write together: the requests reach
                // the workers as close together as the machine allows.
                let mut s = connect_from(from, proxy);
                go.wait();
                s.write_all(
                    format!("GET /r{i} HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n")
                        .as_bytes(),
                )
                .unwrap();
                let (head, _) = read_response(&mut s);
                head.lines().next().unwrap_or("").to_string()
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

fn count(lines: &[String], status: &str) -> usize {
    lines.iter().filter(|l| l.contains(status)).count()
}

/// Twenty requests from one address, on twenty connections spread over
/// two workers: exactly 1 + burst pass (the rate, one a minute, adds none
/// during the test), the rest are refused without reaching the backend.
/// Per-worker zones would pass up to twice as many.
fn limit_req_nodelay_counts_exactly_across_two_workers(d: Driver) {
    let http = HttpBackend::start();
    let rw = Ringway::start_with_runtime(
        &req_config(
            http.addr,
            "1r/m",
            r#"{ zone = "per_ip", burst = 5, nodelay = true }"#,
            "",
        ),
        d,
        "workers = 2\n",
    );
    let proxy = rw.addr("app");
    let lines = burst_from(src(2), proxy, 20);
    assert_eq!(count(&lines, " 200 "), 6, "{lines:#?}");
    assert_eq!(count(&lines, " 503 "), 14, "{lines:#?}");
    assert_eq!(
        http.seen.lock().unwrap().len(),
        6,
        "refused requests went upstream"
    );
    rw.wait_for_log_count(
        "limiting: over the zone's limit",
        14,
        Duration::from_secs(5),
    );
    // Sequential connections from the same address stay refused (no
    // refill at one a minute), another address has its own bucket.
    assert!(get_from(src(2), proxy, "/again").contains(" 503 "));
    for i in 0..6 {
        let line = get_from(src(3), proxy, &format!("/other{i}"));
        assert!(line.contains(" 200 "), "request {i} from 127.0.0.3: {line}");
    }
    assert!(get_from(src(3), proxy, "/other-last").contains(" 503 "));
}

/// `limit_req_status` picks the refusal's status.
fn limit_req_status_429(d: Driver) {
    let http = HttpBackend::start();
    let rw = Ringway::start_with_runtime(
        &req_config(
            http.addr,
            "1r/m",
            r#"{ zone = "per_ip", burst = 1, nodelay = true }"#,
            "limit_req_status = 429",
        ),
        d,
        "workers = 2\n",
    );
    let proxy = rw.addr("app");
    let lines = burst_from(src(2), proxy, 6);
    assert_eq!(count(&lines, " 200 "), 2, "{lines:#?}");
    assert_eq!(count(&lines, " 429 "), 4, "{lines:#?}");
    assert!(get_from(src(3), proxy, "/").contains(" 200 "));
    // A refusal keeps the connection, as nginx does.
    let mut s = connect_from(src(2), proxy);
    for i in 0..3 {
        s.write_all(format!("GET /ka{i} HTTP/1.1\r\nHost: app\r\n\r\n").as_bytes())
            .unwrap();
        let (head, body) = read_response(&mut s);
        assert!(head.starts_with("HTTP/1.1 429 "), "{head}");
        assert!(head.contains("Connection: keep-alive"), "{head}");
        assert!(body.starts_with("429 "), "{body}");
    }
}

/// Without `nodelay` the excess within the burst waits its turn at the
/// rate: of five requests at once (10 r/s, burst 3) one passes at once,
/// three wait 100, 200 and 300 ms, and the fifth, beyond the burst, is
/// refused without waiting. (Which connection a worker routes first is
/// the scheduler's choice, so the statuses are counted, not matched to
/// the order of writing.)
fn limit_req_without_nodelay_delays_then_refuses(d: Driver) {
    let http = HttpBackend::start();
    let rw = Ringway::start(
        &req_config(http.addr, "10r/s", r#"{ zone = "per_ip", burst = 3 }"#, ""),
        d,
    );
    let proxy = rw.addr("app");
    let started = Instant::now();
    let conns: Vec<TcpStream> = (0..5)
        .map(|i| {
            let mut s = connect_from(src(2), proxy);
            s.write_all(
                format!("GET /d{i} HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n").as_bytes(),
            )
            .unwrap();
            s
        })
        .collect();
    let readers: Vec<_> = conns
        .into_iter()
        .map(|mut s| {
            thread::spawn(move || {
                let (head, _) = read_response(&mut s);
                (
                    head.lines().next().unwrap_or("").to_string(),
                    started.elapsed(),
                )
            })
        })
        .collect();
    let mut got: Vec<(String, Duration)> = readers.into_iter().map(|t| t.join().unwrap()).collect();
    got.sort_by_key(|(_, at)| *at);
    let lines: Vec<String> = got.iter().map(|(l, _)| l.clone()).collect();
    assert_eq!(count(&lines, " 200 "), 4, "{got:?}");
    assert_eq!(count(&lines, " 503 "), 1, "{got:?}");
    let refused_at = got.iter().find(|(l, _)| l.contains(" 503 ")).unwrap().1;
    let passed: Vec<Duration> = got
        .iter()
        .filter(|(l, _)| l.contains(" 200 "))
        .map(|(_, at)| *at)
        .collect();
    // The refusal does not wait for the delayed ones.
    assert!(refused_at < passed[3], "the refusal waited: {got:?}");
    // Lower bounds only: three excess requests at 100 ms each, less a
    // generous slack for the clock and the drain while they arrived.
    assert!(
        passed[3] >= Duration::from_millis(200),
        "the last was not delayed: {got:?}"
    );
    assert!(
        passed[2] >= Duration::from_millis(100),
        "the third was not delayed: {got:?}"
    );
    assert_eq!(http.seen.lock().unwrap().len(), 4);
}

fn conn_config(ws: SocketAddr) -> String {
    format!(
        r#"
[limit_conn_zones.c]
key = "$binary_remote_addr"
size = "1m"

[servers.app]
listen = ["127.0.0.1:0"]
[servers.app.locations."/ws/"]
proxy_pass = "http://{ws}"
limit_conn = {{ zone = "c", max = 3 }}
"#
    )
}

fn open_tunnel(from: IpAddr, proxy: SocketAddr, path: &str) -> tungstenite::WebSocket<TcpStream> {
    let mut ws = ws_handshake(connect_from(from, proxy), &format!("ws://{proxy}{path}"));
    ws.send(Message::Text(path.into())).unwrap();
    loop {
        match ws.read().expect("echo") {
            Message::Text(t) => {
                assert_eq!(t, path);
                return ws;
            }
            _ => continue,
        }
    }
}

/// An upgrade request on a connection of its own: the response head.
fn upgrade_head(from: IpAddr, proxy: SocketAddr, path: &str) -> (String, TcpStream) {
    let mut s = connect_from(from, proxy);
    s.write_all(
        format!(
            "GET {path} HTTP/1.1\r\nHost: app\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .as_bytes(),
    )
    .unwrap();
    let (head, _) = read_response(&mut s);
    (head, s)
}

/// Three live tunnels from one address (over two workers) hold its three
/// slots: the fourth handshake is refused with 503 before any upstream
/// connection, another address is not affected, and closing a tunnel
/// gives its slot back.
fn limit_conn_caps_live_tunnels_per_address(d: Driver) {
    let backend = Backend::start();
    let rw = Ringway::start_with_runtime(&conn_config(backend.addr), d, "workers = 2\n");
    let proxy = rw.addr("app");
    let mut open: Vec<_> = (0..3)
        .map(|i| open_tunnel(src(2), proxy, &format!("/ws/t{i}")))
        .collect();
    let (head, _s) = upgrade_head(src(2), proxy, "/ws/fourth");
    assert!(head.starts_with("HTTP/1.1 503 "), "{head}");
    assert_eq!(
        backend.requests().len(),
        3,
        "the refused handshake went upstream"
    );
    rw.wait_for_log("limiting: over the zone's limit", Duration::from_secs(5));
    // Another address has its own slots.
    let other = open_tunnel(src(3), proxy, "/ws/other");
    // The three still echo.
    for (i, ws) in open.iter_mut().enumerate() {
        let text = format!("still {i}");
        ws.send(Message::Text(text.clone())).unwrap();
        loop {
            match ws.read().expect("echo") {
                Message::Text(t) => {
                    assert_eq!(t, text);
                    break;
                }
                _ => continue,
            }
        }
    }
    // Close one; its slot comes back once ringway sees the tunnel end.
    let mut closing = open.pop().unwrap();
    closing.close(None).unwrap();
    while closing.read().is_ok() {}
    drop(closing);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut attempt = 0;
    let reopened = loop {
        let (head, s) = upgrade_head(src(2), proxy, &format!("/ws/retry{attempt}"));
        if head.starts_with("HTTP/1.1 101 ") {
            break s;
        }
        assert!(head.starts_with("HTTP/1.1 503 "), "{head}");
        assert!(
            Instant::now() < deadline,
            "the closed tunnel's slot never came back"
        );
        attempt += 1;
        // Polling the zone from outside: wait a little between attempts.
        thread::sleep(Duration::from_millis(20));
    };
    // Full again: one more from 127.0.0.2 is refused.
    let (head, _s2) = upgrade_head(src(2), proxy, "/ws/full-again");
    assert!(head.starts_with("HTTP/1.1 503 "), "{head}");
    drop((open, other, reopened));
}

/// `ringway -t` names the file, line and key of a `limit_req` whose zone
/// is not defined.
fn limit_req_with_an_undefined_zone_fails_the_config_test(d: Driver) {
    let (code, out, path) = config_test(&format!(
        "[runtime]\ndriver = \"{}\"\n\n[limit_req_zones.one]\nkey = \"$binary_remote_addr\"\nrate = \"1r/s\"\n\n[servers.app]\nlisten = [\"127.0.0.1:0\"]\n[servers.app.locations.\"/\"]\nreturn = {{ status = 200 }}\nlimit_req = {{ zone = \"two\", burst = 5 }}\n",
        d.name()
    ));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("{}:12: ", path.display())),
        "no file:line in {out}"
    );
    assert!(out.contains("limit_req.zone"), "no key in {out}");
    assert!(out.contains("no [limit_req_zones.two]"), "{out}");
}

/// A reload keeps a zone whose name, rate and size did not change, with
/// its counts (as nginx keeps a shared zone); a zone whose rate changed
/// starts afresh. Live tunnels keep their `limit_conn` slots across it.
fn zones_keep_their_state_across_a_reload(d: Driver) {
    let http = HttpBackend::start();
    let ws = Backend::start();
    let config = |rate: &str, marker: &str| {
        format!(
            r#"
[limit_req_zones.per_ip]
key = "$binary_remote_addr"
rate = "{rate}"
size = "1m"
[limit_conn_zones.c]
key = "$binary_remote_addr"
size = "1m"

[servers.app]
listen = ["127.0.0.1:0"]
[servers.app.locations."/"]
proxy_pass = "http://{http}"
limit_req = {{ zone = "per_ip", burst = 2, nodelay = true }}
[servers.app.locations."/ws/"]
proxy_pass = "http://{ws}"
limit_conn = {{ zone = "c", max = 1 }}
[servers.app.locations."= /marker"]
return = {{ status = 200, body = "{marker}" }}
"#,
            http = http.addr,
            ws = ws.addr
        )
    };
    let rw = Ringway::start(&config("1r/m", "one"), d);
    let proxy = rw.addr("app");
    for i in 0..3 {
        assert!(get_from(src(2), proxy, &format!("/a{i}")).contains(" 200 "));
    }
    assert!(get_from(src(2), proxy, "/a3").contains(" 503 "));
    let tunnel = open_tunnel(src(2), proxy, "/ws/held");
    let (head, _s) = upgrade_head(src(2), proxy, "/ws/second");
    assert!(head.starts_with("HTTP/1.1 503 "), "{head}");

    // Same zones, another marker: the counts stay.
    rw.reload(&config("1r/m", "two"), 1);
    let mut s = connect_from(src(2), proxy);
    s.write_all(b"GET /marker HTTP/1.1\r\nHost: app\r\n\r\n")
        .unwrap();
    let (_, body) = read_response(&mut s);
    assert_eq!(body, "two", "the reload did not take");
    assert!(get_from(src(2), proxy, "/b").contains(" 503 "));
    let (head, _s) = upgrade_head(src(2), proxy, "/ws/third");
    assert!(head.starts_with("HTTP/1.1 503 "), "{head}");

    // Another rate: a fresh limit_req zone.
    rw.reload(&config("2r/m", "three"), 2);
    for i in 0..3 {
        let line = get_from(src(2), proxy, &format!("/c{i}"));
        assert!(
            line.contains(" 200 "),
            "request {i} after the rate changed: {line}"
        );
    }
    assert!(get_from(src(2), proxy, "/c3").contains(" 503 "));
    drop(tunnel);
}

/// A server's `limit_req` holds for its locations that set none;
/// `delay = 1` lets the first excess request through at once and delays
/// the next (nginx's two-stage limiting).
fn server_limit_is_inherited_and_delay_splits_the_burst(d: Driver) {
    let http = HttpBackend::start();
    let rw = Ringway::start(
        &format!(
            r#"
[limit_req_zones.per_ip]
key = "$binary_remote_addr"
rate = "5r/s"
size = "1m"

[servers.app]
listen = ["127.0.0.1:0"]
limit_req = {{ zone = "per_ip", burst = 2, delay = 1 }}
limit_req_status = 429
[servers.app.locations."/"]
proxy_pass = "http://{http}"
[servers.app.locations."/free/"]
proxy_pass = "http://{http}"
limit_req = {{ zone = "per_ip", burst = 100, nodelay = true }}
"#,
            http = http.addr
        ),
        d,
    );
    let proxy = rw.addr("app");
    let started = Instant::now();
    let lines = burst_from(src(2), proxy, 4);
    let took = started.elapsed();
    assert_eq!(count(&lines, " 200 "), 3, "{lines:#?}");
    assert_eq!(count(&lines, " 429 "), 1, "{lines:#?}");
    // The third (excess 2, delay 1) waits one request's share: 200 ms at
    // 5 r/s; a lower bound only.
    assert!(
        took >= Duration::from_millis(100),
        "nothing was delayed: {took:?}"
    );
    // The location's own limit replaces the server's.
    for i in 0..5 {
        let line = get_from(src(2), proxy, &format!("/free/{i}"));
        assert!(line.contains(" 200 "), "{line}");
    }
}
