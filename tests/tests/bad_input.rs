//! Malformed and oversized requests over raw TCP: a clear status, a log
//! line, and a closed connection — never a hang.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use ringway_tests::*;

both_drivers!(
    garbage_is_400,
    missing_host_is_400,
    long_request_line_is_414,
    huge_headers_are_431,
    too_many_headers_are_431,
    slow_head_is_408,
    body_over_limit_is_413,
    early_close_leaks_nothing,
);

const CONFIG: &str = r#"
[servers.s]
listen = ["127.0.0.1:0"]
client_header_buffer_size = "4k"
max_headers = 20
client_header_timeout = "1s"
[servers.s.locations."/"]
return = { status = 200, body = "OK" }
[servers.s.locations."/up/"]
proxy_pass = "http://127.0.0.1:9"
client_max_body_size = "1k"
"#;

fn status_of(rw: &Ringway, req: &[u8]) -> String {
    let out = raw_exchange(rw.addr("s"), req, Duration::from_secs(10));
    out.lines().next().unwrap_or("").to_string()
}

fn garbage_is_400(d: Driver) {
    let rw = Ringway::start(CONFIG, d);
    assert_eq!(
        status_of(&rw, b"\x16\x03\x01\x02\x00garbage\r\n\r\n"),
        "HTTP/1.1 400 Bad Request"
    );
    rw.wait_for_log("bad request", Duration::from_secs(5));
}

fn missing_host_is_400(d: Driver) {
    let rw = Ringway::start(CONFIG, d);
    assert_eq!(
        status_of(&rw, b"GET / HTTP/1.1\r\n\r\n"),
        "HTTP/1.1 400 Bad Request"
    );
}

fn long_request_line_is_414(d: Driver) {
    let rw = Ringway::start(CONFIG, d);
    let req = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(8000));
    assert_eq!(status_of(&rw, req.as_bytes()), "HTTP/1.1 414 URI Too Long");
}

fn huge_headers_are_431(d: Driver) {
    let rw = Ringway::start(CONFIG, d);
    let req = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "b".repeat(8000)
    );
    assert_eq!(
        status_of(&rw, req.as_bytes()),
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
}

fn too_many_headers_are_431(d: Driver) {
    let rw = Ringway::start(CONFIG, d);
    let mut req = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
    for i in 0..30 {
        req.push_str(&format!("X-H{i}: v\r\n"));
    }
    req.push_str("\r\n");
    assert_eq!(
        status_of(&rw, req.as_bytes()),
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
}

fn slow_head_is_408(d: Driver) {
    let rw = Ringway::start(CONFIG, d);
    let mut s = TcpStream::connect(rw.addr("s")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    let start = Instant::now();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{out}");
    assert!(start.elapsed() >= Duration::from_millis(900));
}

fn body_over_limit_is_413(d: Driver) {
    let rw = Ringway::start(CONFIG, d);
    let req = b"POST /up/x HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n";
    assert_eq!(status_of(&rw, req), "HTTP/1.1 413 Content Too Large");
}

/// Clients that vanish mid-head or mid-upgrade leave no connection behind:
/// afterwards the proxy still answers, and its fd count is back to where it
/// started.
fn early_close_leaks_nothing(d: Driver) {
    let rw = Ringway::start(CONFIG, d);
    let fds = || {
        std::fs::read_dir(format!("/proc/{}/fd", rw.pid()))
            .unwrap()
            .count()
    };
    // Warm up (the first requests may allocate lazily-created descriptors).
    assert_eq!(
        status_of(
            &rw,
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        ),
        "HTTP/1.1 200 OK"
    );
    let before = fds();
    for i in 0..50 {
        let mut s = TcpStream::connect(rw.addr("s")).unwrap();
        let partial: &[u8] = if i % 2 == 0 {
            b"GET / HTT"
        } else {
            b"GET /up/ HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
        };
        s.write_all(partial).unwrap();
        drop(s);
    }
    assert_eq!(
        status_of(
            &rw,
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        ),
        "HTTP/1.1 200 OK"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while fds() > before {
        assert!(
            Instant::now() < deadline,
            "descriptors leaked: {} > {before}",
            fds()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
