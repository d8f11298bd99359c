//! Plain HTTP/1.1 through the proxy: REST calls, chunked both ways,
//! client keep-alive and pipelining, HEAD, and socket.io-style polling and
//! upgrade on one location.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use ringway_tests::*;

both_drivers!(
    get_with_keep_alive,
    chunked_request_and_response,
    ten_pipelined_requests_in_order,
    head_has_no_body,
    polling_then_upgrade_on_one_location,
    buffering_reads_the_body_before_the_client_does,
);

fn config(http: std::net::SocketAddr, ws: std::net::SocketAddr) -> String {
    format!(
        r#"
[servers.app]
listen = ["127.0.0.1:0"]
[servers.app.locations."/api/"]
proxy_pass = "http://{http}"
[servers.app.locations."/socket.io/"]
proxy_pass = "http://{ws}"
"#
    )
}

fn client(rw: &Ringway) -> TcpStream {
    rw.client("app")
}

fn get_with_keep_alive(d: Driver) {
    let http = HttpBackend::start();
    let ws = Backend::start();
    let rw = Ringway::start(&config(http.addr, ws.addr), d);
    let mut s = client(&rw);
    for i in 0..3 {
        s.write_all(
            format!("GET /api/items/{i}?x=1 HTTP/1.1\r\nHost: app.example.com\r\n\r\n").as_bytes(),
        )
        .unwrap();
        let (head, body) = read_response(&mut s);
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.contains("Connection: keep-alive"), "{head}");
        // Default Host upstream is $proxy_host; ringway closes its upstream
        // connection after each exchange for now.
        assert_eq!(
            body,
            format!(
                "GET /api/items/{i}?x=1 host={} connection=close body=0",
                http.addr
            )
        );
    }
}

fn chunked_request_and_response(d: Driver) {
    let http = HttpBackend::start();
    let ws = Backend::start();
    let rw = Ringway::start(&config(http.addr, ws.addr), d);
    let mut s = client(&rw);
    let payload: Vec<u8> = (0..100_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let mut req =
        b"POST /api/chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for part in payload.chunks(30_000) {
        req.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        req.extend_from_slice(part);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    s.write_all(&req).unwrap();
    // Read the chunked response and decode it.
    let mut data = Vec::new();
    let mut buf = [0u8; 65536];
    let decoded = loop {
        let n = std::io::Read::read(&mut s, &mut buf).unwrap();
        assert!(n > 0, "EOF before the end of the chunked response");
        data.extend_from_slice(&buf[..n]);
        if data.ends_with(b"\r\n0\r\n\r\n") {
            let head_end = data.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
            let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
            assert!(head.contains("Transfer-Encoding: chunked"), "{head}");
            let mut body = Vec::new();
            let mut rest = &data[head_end..];
            loop {
                let le = rest.windows(2).position(|w| w == b"\r\n").unwrap();
                let size =
                    usize::from_str_radix(std::str::from_utf8(&rest[..le]).unwrap(), 16).unwrap();
                rest = &rest[le + 2..];
                if size == 0 {
                    break;
                }
                body.extend_from_slice(&rest[..size]);
                rest = &rest[size + 2..];
            }
            break body;
        }
    };
    assert_eq!(decoded, payload);
    // The connection is still usable.
    s.write_all(b"GET /api/after HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (head, _) = read_response(&mut s);
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
}

fn ten_pipelined_requests_in_order(d: Driver) {
    let http = HttpBackend::start();
    let ws = Backend::start();
    let rw = Ringway::start(&config(http.addr, ws.addr), d);
    let mut s = client(&rw);
    let mut all = Vec::new();
    for i in 0..10 {
        all.extend_from_slice(format!("GET /api/p{i} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
    }
    s.write_all(&all).unwrap();
    for i in 0..10 {
        let (head, body) = read_response(&mut s);
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
        assert!(
            body.starts_with(&format!("GET /api/p{i} ")),
            "response {i} out of order: {body}"
        );
    }
}

fn head_has_no_body(d: Driver) {
    let http = HttpBackend::start();
    let ws = Backend::start();
    let rw = Ringway::start(&config(http.addr, ws.addr), d);
    let mut s = client(&rw);
    s.write_all(b"HEAD /api/h HTTP/1.1\r\nHost: x\r\n\r\nGET /api/g HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    // The HEAD response announces a length but carries no body, so the
    // next response follows its head directly.
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    while data.windows(4).filter(|w| w == b"\r\n\r\n").count() < 2 {
        let n = std::io::Read::read(&mut s, &mut buf).unwrap();
        assert!(n > 0);
        data.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&data);
    let second = text.find("\r\n\r\n").unwrap() + 4;
    assert!(text[second..].starts_with("HTTP/1.1 200 OK"), "{text}");
}

fn polling_then_upgrade_on_one_location(d: Driver) {
    // socket.io: several long-polling requests on one keep-alive
    // connection, then an Upgrade on a new connection, same location, same
    // backend port.
    let http = HttpBackend::start();
    let config = format!(
        "[servers.app]\nlisten = [\"127.0.0.1:0\"]\n[servers.app.locations.\"/socket.io/\"]\nproxy_pass = \"http://{}\"\nproxy_read_timeout = \"86400s\"\n",
        http.addr
    );
    let rw = Ringway::start(&config, d);
    let mut s = client(&rw);
    for i in 0..3 {
        s.write_all(
            format!("GET /socket.io/?EIO=4&transport=polling&t={i} HTTP/1.1\r\nHost: x\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
        let (head, body) = read_response(&mut s);
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
        assert!(body.contains(&format!("t={i}")), "{body}");
    }
    let addr = rw.addr("app");
    let mut ws = ws_handshake(
        TcpStream::connect(addr).unwrap(),
        &format!("ws://{addr}/socket.io/?EIO=4&transport=websocket"),
    );
    ws.send(tungstenite::Message::Text("2probe".into()))
        .unwrap();
    assert_eq!(
        ws.read().unwrap(),
        tungstenite::Message::Text("2probe".into())
    );
    let seen = http.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 4);
    assert_eq!(seen[3].header("upgrade"), Some("websocket"));
}

mod http10 {
    use super::*;
    both_drivers!(http10_client_gets_a_decoded_body);
}

fn http10_client_gets_a_decoded_body(d: Driver) {
    let http = HttpBackend::start();
    let ws = Backend::start();
    let rw = Ringway::start(&config(http.addr, ws.addr), d);
    let mut s = client(&rw);
    // HTTP/1.0 request with a body; the backend answers chunked, which an
    // HTTP/1.0 client cannot read: ringway decodes it and closes.
    s.write_all(b"POST /api/chunked HTTP/1.0\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world")
        .unwrap();
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut s, &mut out).unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(
        !text.to_ascii_lowercase().contains("transfer-encoding"),
        "{text}"
    );
    assert!(text.contains("Connection: close"), "{text}");
    assert!(text.ends_with("\r\n\r\nhello world"), "{text}");
}

mod pool {
    use super::*;
    both_drivers!(upstream_keepalive_reuses_connections);
}

fn upstream_keepalive_reuses_connections(d: Driver) {
    let http = HttpBackend::start();
    let config = format!(
        "[upstreams.api]\nservers = [{{ addr = \"{}\" }}]\nkeepalive = 8\n[servers.app]\nlisten = [\"127.0.0.1:0\"]\n[servers.app.locations.\"/api/\"]\nproxy_pass = \"http://api\"\n",
        http.addr
    );
    let rw = Ringway::start(&config, d);
    for c in 0..2 {
        let mut s = client(&rw);
        for i in 0..10 {
            s.write_all(format!("GET /api/k{c}-{i} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                .unwrap();
            let (head, body) = read_response(&mut s);
            assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
            // Pooled upstream requests carry no "Connection: close".
            assert!(body.ends_with("host=api connection=- body=0"), "{body}");
        }
    }
    let n = http.connections.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        n, 1,
        "20 requests should share one pooled upstream connection, used {n}"
    );
}

mod streaming_and_limits {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::sync::mpsc;
    use std::thread;
    use std::time::{Duration, Instant};

    use ringway_tests::*;

    both_drivers!(
        sse_events_arrive_before_the_next_is_sent,
        expect_100_continue,
        chunked_body_over_limit_is_413,
        slow_body_is_408,
        add_header_on_proxied_responses,
    );

    /// An SSE backend: answers one request with `text/event-stream`
    /// (chunked) and sends event i+1 only after the test says the client
    /// has seen event i.
    fn sse_backend(events: usize) -> (SocketAddr, mpsc::Sender<()>, thread::JoinHandle<()>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let (tx, rx) = mpsc::channel::<()>();
        let h = thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut r = BufReader::new(c.try_clone().unwrap());
            let mut line = String::new();
            while r.read_line(&mut line).unwrap() > 2 {
                line.clear();
            }
            c.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\
                  Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n",
            )
            .unwrap();
            for i in 0..events {
                let ev = format!("data: event {i}\n\n");
                c.write_all(format!("{:x}\r\n{ev}\r\n", ev.len()).as_bytes())
                    .unwrap();
                // Bounded: the test answers within 10 s or the backend gives up.
                if rx.recv_timeout(Duration::from_secs(10)).is_err() {
                    return;
                }
            }
            c.write_all(b"0\r\n\r\n").unwrap();
        });
        (addr, tx, h)
    }

    fn sse_events_arrive_before_the_next_is_sent(d: Driver) {
        let (backend, tx, h) = sse_backend(5);
        let config = format!(
            r#"
[servers.app]
listen = ["127.0.0.1:0"]
[servers.app.locations."/events"]
proxy_pass = "http://{backend}"
"#
        );
        let rw = Ringway::start(&config, d);
        let mut s = TcpStream::connect(rw.addr("app")).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GET /events HTTP/1.1\r\nHost: app\r\nAccept: text/event-stream\r\n\r\n")
            .unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        for i in 0..5 {
            let want = format!("data: event {i}\n\n");
            // The backend holds event i+1 until we confirm event i: if the
            // proxy buffered, this read would time out.
            while !String::from_utf8_lossy(&seen).contains(&want) {
                let n = s.read(&mut buf).expect("event arrives unbuffered");
                assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&seen));
                seen.extend_from_slice(&buf[..n]);
            }
            tx.send(()).unwrap();
        }
        let text = String::from_utf8_lossy(&seen).into_owned();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.contains("Content-Type: text/event-stream"), "{text}");
        h.join().unwrap();
    }

    fn config(http: SocketAddr) -> String {
        format!(
            r#"
[servers.app]
listen = ["127.0.0.1:0"]
client_header_timeout = "1s"
client_body_timeout = "1s"
[servers.app.locations."/api/"]
proxy_pass = "http://{http}"
client_max_body_size = "1k"
add_header = {{ X-Frame-Options = "SAMEORIGIN", X-Via-Host = "$host" }}
"#
        )
    }

    fn expect_100_continue(d: Driver) {
        let http = HttpBackend::start();
        let rw = Ringway::start(&config(http.addr), d);
        let mut s = TcpStream::connect(rw.addr("app")).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(
            b"POST /api/upload HTTP/1.1\r\nHost: app\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
        )
        .unwrap();
        let mut interim = [0u8; 25];
        s.read_exact(&mut interim).unwrap();
        assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
        s.write_all(b"hello").unwrap();
        let (head, body) = read_response(&mut s);
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(body.starts_with("POST /api/upload "), "{body}");
        assert!(body.ends_with("body=5"), "{body}");
    }

    fn chunked_body_over_limit_is_413(d: Driver) {
        let http = HttpBackend::start();
        let rw = Ringway::start(&config(http.addr), d);
        let mut s = TcpStream::connect(rw.addr("app")).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"POST /api/x HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\n\r\n")
            .unwrap();
        let chunk = format!("400\r\n{}\r\n", "a".repeat(0x400));
        let mut out = Vec::new();
        for _ in 0..4 {
            // The proxy may close as soon as the limit is passed.
            if s.write_all(chunk.as_bytes()).is_err() {
                break;
            }
        }
        let _ = s.read_to_end(&mut out);
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 413 "), "{text}");
        rw.wait_for_log("413", Duration::from_secs(5));
    }

    fn slow_body_is_408(d: Driver) {
        let http = HttpBackend::start();
        let rw = Ringway::start(&config(http.addr), d);
        let mut s = TcpStream::connect(rw.addr("app")).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"POST /api/x HTTP/1.1\r\nHost: app\r\nContent-Length: 100\r\n\r\nonly ten..")
            .unwrap();
        let start = Instant::now();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{out}");
        assert!(start.elapsed() >= Duration::from_millis(900));
    }

    fn add_header_on_proxied_responses(d: Driver) {
        let http = HttpBackend::start();
        let rw = Ringway::start(&config(http.addr), d);
        let mut s = TcpStream::connect(rw.addr("app")).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GET /api/a HTTP/1.1\r\nHost: app.example.com\r\n\r\n")
            .unwrap();
        let (head, _) = read_response(&mut s);
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.contains("X-Frame-Options: SAMEORIGIN\r\n"), "{head}");
        assert!(head.contains("X-Via-Host: app.example.com\r\n"), "{head}");
    }
}

/// `proxy_buffering = true`: a body that fits `proxy_buffers` is read whole
/// from the upstream before the client reads any of it (the upstream's
/// write completes while the client has not read a byte), then delivered
/// intact.
fn buffering_reads_the_body_before_the_client_does(d: Driver) {
    let rec = ringway_tests::recorder::Recorder::start();
    let rw = Ringway::start(
        &format!(
            "[servers.app]\nlisten = [\"127.0.0.1:0\"]\n[servers.app.locations.\"/b/\"]\nproxy_pass = \"http://{}\"\nproxy_buffering = {}\nproxy_buffers = \"32m\"\n",
            rec.addr, BUFFERING
        ),
        d,
    );
    // 16 MB: more than the loopback socket buffers hold, so only a proxy
    // that reads ahead lets the upstream finish its write.
    let n = 16_000_000;
    let mut s = client(&rw);
    s.write_all(format!("GET /b/big-{n} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .unwrap();
    rec.wait_for(
        "the upstream's whole answer written",
        Duration::from_secs(20),
        |c| c.iter().any(|c| c.answers_written == 1),
    );
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(std::io::Read::read(&mut s, &mut b).unwrap(), 1);
        head.push(b[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.contains(&format!("Content-Length: {n}\r\n")), "{head}");
    let mut body = vec![0u8; n];
    std::io::Read::read_exact(&mut s, &mut body).unwrap();
    assert!(body
        .iter()
        .enumerate()
        .all(|(i, &c)| c == b'a' + (i % 26) as u8));
}

/// The buffering test's setting (a constant so the test's premise can be
/// checked by flipping it: with `false` the upstream's write never ends
/// while the client does not read).
const BUFFERING: bool = true;
