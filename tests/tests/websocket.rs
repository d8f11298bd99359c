//! WebSocket proxying end to end: the real binary between a tungstenite
//! client and a tungstenite echo backend, on both drivers.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use ringway_tests::*;
use tungstenite::client::IntoClientRequest;
use tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tungstenite::protocol::frame::{CloseFrame, Frame};
use tungstenite::{Message, WebSocket};

every_relay!(
    text_and_binary_echo,
    sixteen_mib_message,
    fragmented_message,
    ping_pong,
    close_handshake_with_code_and_reason,
    thousand_pipelined_messages_in_order,
    subprotocol_passes_both_ways,
    forwarded_headers_and_hop_by_hop,
    default_host_is_proxy_host,
    prefix_rewrite,
    non_101_answer_is_relayed,
    upstream_down_is_502,
    connect_timeout_is_504,
    idle_timeout_closes_the_tunnel,
    activity_keeps_the_tunnel,
    half_close_from_the_backend,
    health_with_keep_alive,
    unrouted_path_is_404,
    graceful_stop_drains_tunnels,
    shutdown_timeout_closes_tunnels,
    curl_sees_101,
);

fn proxy_config(backend: SocketAddr, extra: &str) -> String {
    format!(
        r#"
[servers.ws]
listen = ["127.0.0.1:0"]

[servers.ws.locations."= /health"]
return = {{ status = 200, body = "OK" }}

[servers.ws.locations."/ws/"]
proxy_pass = "http://{backend}"
proxy_connect_timeout = "2s"
{extra}
"#
    )
}

type Ws = WebSocket<TcpStream>;

fn connect(addr: SocketAddr, path: &str) -> Ws {
    connect_req(addr, path, &[]).0
}

fn connect_req(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (Ws, tungstenite::handshake::client::Response) {
    let stream = TcpStream::connect(addr).expect("connect to ringway");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
    for (n, v) in headers {
        req.headers_mut().append(
            tungstenite::http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    tungstenite::client::client_with_config(req, stream, Some(ws_config()))
        .expect("websocket handshake through ringway")
}

fn read_data(ws: &mut Ws) -> Message {
    loop {
        match ws.read().expect("read from ringway") {
            m @ (Message::Text(_) | Message::Binary(_) | Message::Close(_) | Message::Pong(_)) => {
                return m
            }
            _ => continue,
        }
    }
}

fn text_and_binary_echo(d: Driver) {
    let b = Backend::start();
    let rw = Ringway::start(&proxy_config(b.addr, ""), d);
    let mut ws = connect(rw.addr("ws"), "/ws/echo");
    ws.send(Message::Text("hello through ringway".into()))
        .unwrap();
    assert_eq!(
        read_data(&mut ws),
        Message::Text("hello through ringway".into())
    );
    let bin: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    ws.send(Message::Binary(bin.clone())).unwrap();
    assert_eq!(read_data(&mut ws), Message::Binary(bin));
}

fn sixteen_mib_message(d: Driver) {
    let b = Backend::start();
    let rw = Ringway::start(&proxy_config(b.addr, ""), d);
    let mut ws = connect(rw.addr("ws"), "/ws/big");
    let big: Vec<u8> = (0..16u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    ws.send(Message::Binary(big.clone())).unwrap();
    match read_data(&mut ws) {
        Message::Binary(got) => {
            assert_eq!(got.len(), big.len());
            assert!(got == big, "16 MiB payload corrupted");
        }
        other => panic!("expected the binary echo, got {other:?}"),
    }
}

fn fragmented_message(d: Driver) {
    let b = Backend::start();
    let rw = Ringway::start(&proxy_config(b.addr, ""), d);
    let mut ws = connect(rw.addr("ws"), "/ws/frag");
    ws.write(Message::Frame(Frame::message(
        b"frag-".to_vec(),
        OpCode::Data(Data::Text),
        false,
    )))
    .unwrap();
    ws.write(Message::Frame(Frame::message(
        b"men-".to_vec(),
        OpCode::Data(Data::Continue),
        false,
    )))
    .unwrap();
    ws.write(Message::Frame(Frame::message(
        b"ted".to_vec(),
        OpCode::Data(Data::Continue),
        true,
    )))
    .unwrap();
    ws.flush().unwrap();
    assert_eq!(read_data(&mut ws), Message::Text("frag-men-ted".into()));
}

fn ping_pong(d: Driver) {
    let b = Backend::start();
    let rw = Ringway::start(&proxy_config(b.addr, ""), d);
    let mut ws = connect(rw.addr("ws"), "/ws/ping");
    ws.send(Message::Ping(b"are you there".to_vec())).unwrap();
    assert_eq!(read_data(&mut ws), Message::Pong(b"are you there".to_vec()));
}

fn close_handshake_with_code_and_reason(d: Driver) {
    let b = Backend::start();
    let rw = Ringway::start(&proxy_config(b.addr, ""), d);
    let mut ws = connect(rw.addr("ws"), "/ws/close");
    ws.close(Some(CloseFrame {
        code: CloseCode::Library(4001),
        reason: "bye now".into(),
    }))
    .unwrap();
    match read_data(&mut ws) {
        Message::Close(Some(f)) => {
            assert_eq!(f.code, CloseCode::Library(4001));
            assert_eq!(f.reason, "bye now");
        }
        other => panic!("expected the echoed close, got {other:?}"),
    }
    // After the close handshake the connection ends.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match ws.read() {
            Err(tungstenite::Error::ConnectionClosed) | Err(tungstenite::Error::AlreadyClosed) => {
                break
            }
            Err(e) => panic!("unexpected error after close: {e}"),
            Ok(m) => assert!(
                Instant::now() < deadline,
                "still reading after close: {m:?}"
            ),
        }
    }
}

fn thousand_pipelined_messages_in_order(d: Driver) {
    let b = Backend::start();
    let rw = Ringway::start(&proxy_config(b.addr, ""), d);
    let mut ws = connect(rw.addr("ws"), "/ws/pipe");
    for i in 0..1000 {
        ws.write(Message::Text(format!("message {i}"))).unwrap();
    }
    ws.flush().unwrap();
    for i in 0..1000 {
        assert_eq!(
            read_data(&mut ws),
            Message::Text(format!("message {i}")),
            "order broken at {i}"
        );
    }
}

fn subprotocol_passes_both_ways(d: Driver) {
    let b = Backend::start();
    let rw = Ringway::start(&proxy_config(b.addr, ""), d);
    let (mut ws, resp) = connect_req(
        rw.addr("ws"),
        "/ws/proto",
        &[("Sec-WebSocket-Protocol", "chat.v2, chat.v1")],
    );
    assert_eq!(
        resp.headers()
            .get("sec-websocket-protocol")
            .map(|v| v.to_str().unwrap()),
        Some("chat.v2")
    );
    let seen = b.requests();
    assert_eq!(
        seen[0].header("sec-websocket-protocol"),
        Some("chat.v2, chat.v1")
    );
    ws.send(Message::Text("x".into())).unwrap();
    assert_eq!(read_data(&mut ws), Message::Text("x".into()));
}

fn forwarded_headers_and_hop_by_hop(d: Driver) {
    let b = Backend::start();
    let extra = r#"
[servers.ws.locations."/ws/".proxy_set_header]
Host = "$host"
X-Real-IP = "$remote_addr"
X-Forwarded-For = "$proxy_add_x_forwarded_for"
X-Forwarded-Proto = "$scheme"
"#;
    let rw = Ringway::start(&proxy_config(b.addr, extra), d);
    let addr = rw.addr("ws");
    let (_ws, _) = connect_req(
        addr,
        "/ws/h",
        &[
            ("X-Forwarded-For", "203.0.113.9"),
            ("X-Secret", "1"),
            ("Keep-Alive", "5"),
        ],
    );
    // tungstenite sends "Connection: Upgrade"; add a raw request that also
    // names X-Secret as hop-by-hop.
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /ws/raw HTTP/1.1\r\nHost: chat.example.org\r\nUpgrade: websocket\r\nConnection: Upgrade, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: 5\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").unwrap();
    let mut head = [0u8; 512];
    let n = s.read(&mut head).unwrap();
    assert!(String::from_utf8_lossy(&head[..n]).starts_with("HTTP/1.1 101"));

    let seen = b.requests();
    assert_eq!(seen.len(), 2);
    let first = &seen[0];
    // nginx's $host is the client's host without its port.
    assert_eq!(first.header("host"), Some("127.0.0.1"), "Host = $host");
    assert_eq!(first.header("x-real-ip"), Some("127.0.0.1"));
    assert_eq!(
        first.header("x-forwarded-for"),
        Some("203.0.113.9, 127.0.0.1")
    );
    assert_eq!(first.header("x-forwarded-proto"), Some("http"));
    assert_eq!(first.header("upgrade"), Some("websocket"));
    assert_eq!(first.header("connection"), Some("upgrade"));
    assert_eq!(first.header("keep-alive"), None, "Keep-Alive is hop-by-hop");
    let raw = &seen[1];
    assert_eq!(raw.header("host"), Some("chat.example.org"));
    assert_eq!(raw.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(
        raw.header("x-secret"),
        None,
        "a header named by Connection is hop-by-hop"
    );
    assert_eq!(raw.header("keep-alive"), None);
    assert_eq!(raw.header("connection"), Some("upgrade"));
}

fn default_host_is_proxy_host(d: Driver) {
    let b = Backend::start();
    let rw = Ringway::start(&proxy_config(b.addr, ""), d);
    let _ws = connect(rw.addr("ws"), "/ws/host");
    assert_eq!(
        b.requests()[0].header("host"),
        Some(b.addr.to_string().as_str())
    );
}

fn prefix_rewrite(d: Driver) {
    let b = Backend::start();
    let config = format!(
        "[servers.ws]\nlisten = [\"127.0.0.1:0\"]\n[servers.ws.locations.\"/ws/\"]\nproxy_pass = \"http://{}/\"\n",
        b.addr
    );
    let rw = Ringway::start(&config, d);
    let mut ws = connect(rw.addr("ws"), "/ws/chat?room=1");
    ws.send(Message::Text("in the room".into())).unwrap();
    assert_eq!(read_data(&mut ws), Message::Text("in the room".into()));
    assert_eq!(b.requests()[0].path, "/chat?room=1");
}

fn non_101_answer_is_relayed(d: Driver) {
    let b = Backend::start();
    let rw = Ringway::start(&proxy_config(b.addr, ""), d);
    let out = raw_exchange(
        rw.addr("ws"),
        b"GET /ws/deny HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        Duration::from_secs(10),
    );
    assert!(out.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{out}");
    assert!(out.ends_with("\r\n\r\nforbidden"), "{out}");
}

fn upstream_down_is_502(d: Driver) {
    let rw = Ringway::start(&proxy_config(refused_addr(), ""), d);
    let out = raw_exchange(
        rw.addr("ws"),
        b"GET /ws/x HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        Duration::from_secs(10),
    );
    assert!(out.starts_with("HTTP/1.1 502 Bad Gateway\r\n"), "{out}");
    assert!(out.contains("502 Bad Gateway\n"), "short body: {out}");
    rw.wait_for_log("proxy error", Duration::from_secs(5));
}

fn connect_timeout_is_504(d: Driver) {
    let Some(hole) = blackhole() else {
        eprintln!("skipped: this kernel does not drop SYNs to a full accept queue");
        return;
    };
    let config = format!(
        "[servers.ws]\nlisten = [\"127.0.0.1:0\"]\n[servers.ws.locations.\"/ws/\"]\nproxy_pass = \"http://{}\"\nproxy_connect_timeout = \"1s\"\n",
        hole.addr
    );
    let rw = Ringway::start(&config, d);
    let started = Instant::now();
    let out = raw_exchange(
        rw.addr("ws"),
        b"GET /ws/x HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        Duration::from_secs(15),
    );
    assert!(out.starts_with("HTTP/1.1 504 Gateway Timeout\r\n"), "{out}");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "answered before the connect timeout"
    );
}

fn idle_timeout_closes_the_tunnel(d: Driver) {
    let b = Backend::start();
    let rw = Ringway::start(&proxy_config(b.addr, "proxy_read_timeout = \"1s\""), d);
    let mut ws = connect(rw.addr("ws"), "/ws/idle");
    let opened = Instant::now();
    // Nothing is sent: ringway must close within a bounded wait.
    match ws.read() {
        Err(tungstenite::Error::ConnectionClosed)
        | Err(tungstenite::Error::Protocol(_))
        | Err(tungstenite::Error::Io(_)) => {}
        other => panic!("expected the tunnel to be closed, got {other:?}"),
    }
    let idle = opened.elapsed();
    assert!(
        idle >= Duration::from_millis(900),
        "closed too early: {idle:?}"
    );
    assert!(idle < Duration::from_secs(10), "closed too late: {idle:?}");
}

fn activity_keeps_the_tunnel(d: Driver) {
    let b = Backend::start();
    let rw = Ringway::start(&proxy_config(b.addr, "proxy_read_timeout = \"1s\""), d);
    let mut ws = connect(rw.addr("ws"), "/ws/busy");
    let start = Instant::now();
    let mut i = 0;
    while start.elapsed() < Duration::from_millis(2500) {
        ws.send(Message::Text(format!("tick {i}"))).unwrap();
        assert_eq!(read_data(&mut ws), Message::Text(format!("tick {i}")));
        i += 1;
        // Pacing, not synchronisation: one message every 300 ms.
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(i >= 6);
}

fn half_close_from_the_backend(d: Driver) {
    let b = Backend::start();
    let rw = Ringway::start(&proxy_config(b.addr, ""), d);
    let mut s = TcpStream::connect(rw.addr("ws")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /ws/bye HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").unwrap();
    let mut data = Vec::new();
    let mut buf = [0u8; 1024];
    // The backend closes: we must see its close frame (0x88), then EOF.
    loop {
        let n = s.read(&mut buf).expect("read until EOF");
        if n == 0 {
            break;
        }
        data.extend_from_slice(&buf[..n]);
        assert!(data.len() < 4096, "no EOF");
    }
    let text = String::from_utf8_lossy(&data);
    assert!(text.starts_with("HTTP/1.1 101"), "{text}");
    let head_end = data.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(data.get(head_end), Some(&0x88), "the backend's close frame");
}

fn health_with_keep_alive(d: Driver) {
    let b = Backend::start();
    let rw = Ringway::start(&proxy_config(b.addr, ""), d);
    let mut s = TcpStream::connect(rw.addr("ws")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    for _ in 0..2 {
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let (head, body) = read_response(&mut s);
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.contains("Connection: keep-alive"), "{head}");
        assert_eq!(body, "OK");
    }
}

fn unrouted_path_is_404(d: Driver) {
    let b = Backend::start();
    let rw = Ringway::start(&proxy_config(b.addr, ""), d);
    let out = raw_exchange(
        rw.addr("ws"),
        b"GET /elsewhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(10),
    );
    assert!(out.starts_with("HTTP/1.1 404 Not Found\r\n"), "{out}");
}

fn graceful_stop_drains_tunnels(d: Driver) {
    let b = Backend::start();
    let mut rw =
        Ringway::start_with_runtime(&proxy_config(b.addr, ""), d, "shutdown_timeout = \"30s\"");
    let addr = rw.addr("ws");
    let mut ws = connect(addr, "/ws/drain");
    rw.signal(libc::SIGTERM);
    rw.wait_for_log("draining", Duration::from_secs(10));
    // New connections are refused once the listener is closed.
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok() {
        assert!(Instant::now() < deadline, "still accepting after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The open tunnel is drained: a close frame 1001 "going away" (the
    // first of the drain spread goes at once; tests/drain.rs has more).
    let code = loop {
        match ws.read().expect("a close frame before the end") {
            Message::Close(c) => break c.map(|c| c.code),
            _ => continue,
        }
    };
    assert_eq!(code, Some(CloseCode::Away));
    let _ = ws.flush();
    while ws.read().is_ok() {}
    drop(ws);
    let st = rw
        .wait_exit(Duration::from_secs(10))
        .expect("ringway exits once the tunnel is gone");
    assert!(st.success(), "{st:?}");
}

fn shutdown_timeout_closes_tunnels(d: Driver) {
    let b = Backend::start();
    let mut rw =
        Ringway::start_with_runtime(&proxy_config(b.addr, ""), d, "shutdown_timeout = \"1s\"");
    let mut ws = connect(rw.addr("ws"), "/ws/stuck");
    let start = Instant::now();
    rw.signal(libc::SIGQUIT);
    let st = rw
        .wait_exit(Duration::from_secs(10))
        .expect("ringway exits after shutdown_timeout");
    assert!(st.success(), "{st:?}");
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "did not wait for the tunnel"
    );
    // Drained (a close frame 1001) and, as this client does not answer,
    // closed at shutdown_timeout.
    loop {
        match ws.read() {
            Ok(Message::Close(c)) => assert_eq!(c.map(|c| c.code), Some(CloseCode::Away)),
            Ok(m) => panic!("unexpected {m:?}"),
            Err(_) => break,
        }
    }
}

fn curl_sees_101(d: Driver) {
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: curl is not installed");
        return;
    }
    let b = Backend::start();
    let rw = Ringway::start(&proxy_config(b.addr, ""), d);
    let out = std::process::Command::new("curl")
        .args(["-i", "-N", "-s", "--max-time", "5"])
        .args(["-H", "Connection: Upgrade", "-H", "Upgrade: websocket"])
        .args([
            "-H",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            "-H",
            "Sec-WebSocket-Version: 13",
        ])
        .arg(format!("http://{}/ws/bye", rw.addr("ws")))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("HTTP/1.1 101 Switching Protocols"),
        "stdout: {text}\nstderr: {}\nstatus: {:?}",
        String::from_utf8_lossy(&out.stderr),
        out.status
    );
    // Header names are case-insensitive; the backend writes them lowercase.
    assert!(
        text.to_ascii_lowercase()
            .contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{text}"
    );
}
