//! A binary upgrade and the tunnels it cannot hand over: a wss tunnel
//! (TLS state lives in the process; no kernel TLS here) stays in the old
//! process, relaying, until it ends — the report counts it as still held
//! and the old process exits once it closes — or, with
//! `drain_old_tunnels_after`, is closed with 1001 after that long. Plain
//! tunnels beside it move to the new process.

use std::io::{Read, Write};
use std::time::Duration;

use ringway_tests::tls_support::*;
use ringway_tests::*;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::Message;

both_drivers!(
    a_tls_tunnel_stays_in_the_old_process_until_it_ends,
    a_held_tls_tunnel_is_drained_after_drain_old_tunnels_after,
);

/// Server `a` (TLS, `a.test`) and server `p` (plain), both proxying to
/// `backend`.
fn config(backend: &Backend) -> String {
    let c = certs();
    format!(
        r#"
[servers.a]
listen = ["127.0.0.1:0"]
server_name = ["a.test"]
tls = {{ cert = "{}", key = "{}" }}
[servers.a.locations."/"]
proxy_pass = "http://{b}"

[servers.p]
listen = ["127.0.0.2:0"]
[servers.p.locations."/"]
proxy_pass = "http://{b}"
"#,
        c.a_cert.display(),
        c.a_key.display(),
        b = backend.addr
    )
}

/// The next data or close message.
fn next<S: Read + Write>(ws: &mut tungstenite::WebSocket<S>) -> Message {
    loop {
        match ws.read().expect("read from ringway") {
            m @ (Message::Text(_) | Message::Binary(_) | Message::Close(_)) => return m,
            _ => continue,
        }
    }
}

fn echo<S: Read + Write>(ws: &mut tungstenite::WebSocket<S>, text: &str) {
    ws.send(Message::text(text)).unwrap();
    assert_eq!(next(ws), Message::text(text));
}

fn a_tls_tunnel_stays_in_the_old_process_until_it_ends(d: Driver) {
    let backend = Backend::start();
    let mut rw = Ringway::start(&config(&backend), d);
    let (tls_addr, plain_url) = (rw.addr("a"), format!("ws://{}/p", rw.addr("p")));
    let mut wss = wss_connect(tls_addr, "a.test", "/held");
    echo(&mut wss, "wss before");
    let mut plain = ws_handshake(rw.client("p"), &plain_url);
    echo(&mut plain, "plain before");
    let old = rw.pid();

    let report = rw.upgrade(None).expect("upgrade");
    assert!(
        report.contains("handed over 1 tunnels, drained 0, still held 1"),
        "{report}"
    );
    // Both go on: the plain one in the new process, the wss one here.
    echo(&mut plain, "plain after");
    echo(&mut wss, "wss after");
    assert!(alive(old), "the old process left with a TLS tunnel in it");
    // New wss connections go to the new process.
    let mut fresh = wss_connect(tls_addr, "a.test", "/fresh");
    echo(&mut fresh, "fresh wss");
    fresh.close(None).unwrap();
    // The old process exits once its last tunnel ends.
    wss.close(None).unwrap();
    while let Ok(m) = wss.read() {
        if matches!(m, Message::Close(_)) {
            break;
        }
    }
    assert!(
        rw.wait_gone(old, Duration::from_secs(10)).is_some(),
        "the old process did not exit after its last tunnel"
    );
    echo(&mut plain, "plain at the end");
    close_websocket(&mut plain);
}

fn a_held_tls_tunnel_is_drained_after_drain_old_tunnels_after(d: Driver) {
    let backend = Backend::start();
    let mut rw = Ringway::start_with_runtime(
        &config(&backend),
        d,
        "drain_old_tunnels_after = \"1s\"\ndrain_spread = \"200ms\"",
    );
    let mut wss = wss_connect(rw.addr("a"), "a.test", "/drained");
    echo(&mut wss, "wss before");
    let old = rw.pid();
    let report = rw.upgrade(None).expect("upgrade");
    assert!(report.contains("still held 1"), "{report}");
    echo(&mut wss, "wss after");
    // After drain_old_tunnels_after: a close frame 1001 (going away),
    // then the old process exits.
    match next(&mut wss) {
        Message::Close(Some(f)) => assert_eq!(f.code, CloseCode::Away, "{f:?}"),
        other => panic!("instead of a close 1001: {other:?}"),
    }
    assert!(
        rw.wait_gone(old, Duration::from_secs(10)).is_some(),
        "the old process did not exit after the drain"
    );
    let mut plain = std::net::TcpStream::connect(rw.addr("p")).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    plain
        .write_all(b"GET /x HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    let _ = plain.read_to_string(&mut answer);
    assert!(
        answer.starts_with("HTTP/1.1 "),
        "the new process serves: {answer}"
    );
}
