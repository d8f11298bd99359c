//! Upstreams on unix stream sockets, ringway and nginx side by side with
//! the same lines: a group whose server is `unix:/path` (kept alive in
//! the pool), `proxy_pass http://unix:/path:/uri` with a URI part, and a
//! WebSocket through the socket; `$upstream_addr` reads `unix:/path`.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ringway_tests::nginx::Nginx;
use ringway_tests::*;

both_drivers!(unix_socket_upstreams_as_nginx_reaches_them);

/// The method and path the backend's answer says it got.
fn seen_line(body: &str) -> String {
    body.split(' ').take(2).collect::<Vec<_>>().join(" ")
}

fn get_on(s: &mut TcpStream, path: &str) -> (u16, String) {
    write!(s, "GET {path} HTTP/1.1\r\nHost: app\r\n\r\n").unwrap();
    let (head, body) = read_response(s);
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, body)
}

fn ws_echo(addr: SocketAddr, path: &str) -> String {
    ws_echo_text(addr, path, "over a unix socket")
}

fn unix_socket_upstreams_as_nginx_reaches_them(d: Driver) {
    let dir = temp_dir("unix-upstream");
    let sock = dir.join("app.sock");
    let backend = UnixHttpBackend::start(sock.clone());
    let log = dir.join("access.log");
    let p = sock.display();
    let rw = Ringway::start_with_log(
        &format!(
            r#"
[upstreams.app]
servers = [{{ addr = "unix:{p}" }}]
keepalive = 8

[servers.app]
listen = ["127.0.0.1:0"]

[servers.app.locations."/api/"]
proxy_pass = "http://app"

[servers.app.locations."/direct/"]
proxy_pass = "http://unix:{p}:/d/"

[servers.app.locations."/ws/"]
proxy_pass = "http://app"
"#
        ),
        d,
        "",
        &log.display().to_string(),
    );
    let cases = [
        ("/api/x?q=1", "GET /api/x?q=1"),
        ("/api/y", "GET /api/y"),
        ("/direct/z", "GET /d/z"),
    ];
    let before = backend.connections.load(Ordering::SeqCst);
    let mut c = rw.client("app");
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    for (path, want) in cases {
        let (status, body) = get_on(&mut c, path);
        assert_eq!(status, 200, "ringway {path}: {body}");
        assert_eq!(seen_line(&body), want, "ringway {path}");
    }
    // The group's two requests took one pooled connection; the direct
    // proxy_pass (no pool) one more.
    assert_eq!(
        backend.connections.load(Ordering::SeqCst) - before,
        2,
        "pooled unix-socket connections"
    );
    assert_eq!(ws_echo(rw.addr("app"), "/ws/chat"), "over a unix socket");
    drop(c);
    // The access log is flushed once a second: poll it, bounded.
    let deadline = Instant::now() + Duration::from_secs(10);
    let line = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(l) = text.lines().find(|l| l.contains("GET /api/y HTTP/1.1")) {
            break l.to_string();
        }
        assert!(Instant::now() < deadline, "no access-log line:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(line.contains(&format!("\"unix:{p}\"")), "{line}");

    let Some(bin) = nginx::binary() else { return };
    let ng = Nginx::start(
        &bin,
        "unix-upstream-nginx",
        "",
        &format!(
            "location /api/ {{ proxy_pass http://unix:{p}; }} \
             location /direct/ {{ proxy_pass http://unix:{p}:/d/; }} \
             location /ws/ {{ proxy_pass http://unix:{p}; proxy_http_version 1.1; \
               proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection upgrade; }}"
        ),
    );
    let mut c = TcpStream::connect(ng.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    for (path, want) in cases {
        let (status, body) = get_on(&mut c, path);
        assert_eq!(status, 200, "nginx {path}: {body}");
        assert_eq!(seen_line(&body), want, "nginx {path}");
    }
    assert_eq!(ws_echo(ng.addr, "/ws/chat"), "over a unix socket");
}
