//! Upstream groups end to end: three WebSocket backends behind one
//! `[upstreams]` table, clients from many source addresses, a backend
//! killed and restarted mid-test.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use ringway_tests::*;
use tungstenite::Message;

both_drivers!(
    ip_hash_is_sticky_per_24,
    round_robin_is_even_and_survives_a_dead_backend
);

fn config(balance: &str, backends: &[SocketAddr]) -> String {
    let servers: Vec<String> = backends
        .iter()
        .map(|a| format!("{{ addr = \"{a}\" }}"))
        .collect();
    format!(
        r#"
[upstreams.pool]
balance = "{balance}"
servers = [{}]
max_fails = 1
fail_timeout = "2s"

[servers.ws]
listen = ["127.0.0.1:0"]
[servers.ws.locations."/ws/"]
proxy_pass = "http://pool"
proxy_connect_timeout = "2s"
"#,
        servers.join(", ")
    )
}

/// Which backend saw the handshake for `path` (each path is unique).
fn landed(backends: &[&Backend], path: &str) -> usize {
    let hits: Vec<usize> = backends
        .iter()
        .enumerate()
        .filter(|(_, b)| b.requests().iter().any(|r| r.path == path))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(hits.len(), 1, "{path} reached {hits:?}");
    hits[0]
}

fn open_and_echo(
    src: IpAddr,
    proxy: SocketAddr,
    path: &str,
) -> tungstenite::WebSocket<std::net::TcpStream> {
    let mut ws = ws_handshake(connect_from(src, proxy), &format!("ws://{proxy}{path}"));
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

fn ip_hash_is_sticky_per_24(d: Driver) {
    let (b0, b1, b2) = (Backend::start(), Backend::start(), Backend::start());
    let rw = Ringway::start(&config("ip_hash", &[b0.addr, b1.addr, b2.addr]), d);
    let proxy = rw.addr("ws");
    let all = [&b0, &b1, &b2];
    let mut per_backend = [0usize; 3];
    // 30 sources, each in its own /24 (127.X.0.1 is loopback on Linux),
    // 10 connections each: 300 in all.
    for s in 0..30u8 {
        let src = IpAddr::V4(Ipv4Addr::new(127, 10 + s, 0, 1));
        let mut first = None;
        for c in 0..10 {
            let path = format!("/ws/s{s}-c{c}");
            let ws = open_and_echo(src, proxy, &path);
            drop(ws);
            let at = landed(&all, &path);
            assert_eq!(
                *first.get_or_insert(at),
                at,
                "source {src} moved between backends"
            );
        }
        per_backend[first.unwrap()] += 1;
    }
    assert!(
        per_backend.iter().filter(|&&n| n > 0).count() >= 2,
        "30 /24s all hashed to one backend: {per_backend:?}"
    );
}

fn round_robin_is_even_and_survives_a_dead_backend(d: Driver) {
    let b0 = Backend::start();
    let b1 = Backend::start();
    let b2 = Backend::start();
    let addr2 = b2.addr;
    let rw = Ringway::start(&config("round_robin", &[b0.addr, b1.addr, b2.addr]), d);
    let proxy = rw.addr("ws");
    let src = |i: u8| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 10 + i));

    // Even split: 30 connections, 10 per backend.
    let mut held = Vec::new();
    let mut counts = [0usize; 3];
    for i in 0..30u8 {
        let path = format!("/ws/rr-{i}");
        held.push(open_and_echo(src(i % 30), proxy, &path));
        counts[landed(&[&b0, &b1, &b2], &path)] += 1;
    }
    assert_eq!(counts, [10, 10, 10]);

    // Kill backend 2: new connections all succeed, on the others.
    drop(b2);
    let mut counts = [0usize; 2];
    for i in 0..30u8 {
        let path = format!("/ws/after-{i}");
        held.push(open_and_echo(src(i % 30), proxy, &path));
        counts[landed(&[&b0, &b1], &path)] += 1;
    }
    assert_eq!(counts[0] + counts[1], 30);
    assert!(
        counts[0] >= 10 && counts[1] >= 10,
        "uneven failover: {counts:?}"
    );
    rw.wait_for_log("marked down", Duration::from_secs(5));

    // Restart it on the same port: after fail_timeout it gets traffic again.
    let b2 = Backend::start_on(addr2);
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut i = 0;
    loop {
        let path = format!("/ws/back-{i}");
        drop(open_and_echo(src(i as u8 % 30), proxy, &path));
        if landed(&[&b0, &b1, &b2], &path) == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "backend 2 never came back");
        i += 1;
        // Pacing: fail_timeout is 2 s; no need to spin.
        std::thread::sleep(Duration::from_millis(100));
    }
    // Connections opened before the kill on the live backends still work.
    for ws in held.iter_mut().take(3) {
        if ws.send(Message::Text("still".into())).is_ok() {
            let _ = ws.read();
        }
    }
}
