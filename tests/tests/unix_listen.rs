//! `listen = ["unix:/path"]`, beside nginx's `listen unix:/path`: plain
//! HTTP with keep-alive and a WebSocket upgrade through a unix socket, the
//! server chosen by `Host` among the servers of one socket, a stale socket
//! file replaced at start and the file removed at stop. Where ringway
//! differs on purpose: a unix client is `127.0.0.1` to `$remote_addr`
//! (nginx writes `unix:`), so access rules and `[real_ip]` treat it as
//! the local process it is.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use ringway_tests::nginx::Nginx;
use ringway_tests::*;

both_drivers!(unix_listener_serves_http_and_websocket_as_nginx);

fn connect(path: &Path) -> UnixStream {
    let s = UnixStream::connect(path).expect("connect to the unix listener");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Two requests on one connection: (status + body) of each.
fn two_requests(path: &Path, host: &str, uri: &str) -> Vec<String> {
    let mut s = connect(path);
    let mut out = Vec::new();
    for close in [false, true] {
        let conn = if close { "Connection: close\r\n" } else { "" };
        write!(s, "GET {uri} HTTP/1.1\r\nHost: {host}\r\n{conn}\r\n").unwrap();
        let (head, body) = read_response_from(&mut s);
        let status = head.split(' ').nth(1).unwrap_or("").to_string();
        out.push(format!(
            "{status} {}",
            String::from_utf8_lossy(&body).trim()
        ));
    }
    out
}

fn ws_echo(path: &Path, uri: &str) -> String {
    let (mut ws, _) = tungstenite::client::client_with_config(
        format!("ws://app{uri}"),
        connect(path),
        Some(ws_config()),
    )
    .expect("WebSocket handshake over the unix socket");
    ws.send(tungstenite::Message::text("over unix")).unwrap();
    let got = ws.read().unwrap().into_text().unwrap().to_string();
    close_websocket(&mut ws);
    got
}

fn check(sock: &Path, who: &str) {
    assert_eq!(
        two_requests(sock, "app", "/hello"),
        ["200 app", "200 app"],
        "{who}: keep-alive over the unix socket"
    );
    assert_eq!(
        two_requests(sock, "other.test", "/hello"),
        ["200 other", "200 other"],
        "{who}: the server by Host"
    );
    assert_eq!(ws_echo(sock, "/ws/room"), "over unix", "{who}");
}

fn unix_listener_serves_http_and_websocket_as_nginx(d: Driver) {
    let up = Backend::start();
    let dir = temp_dir("unix-listen");
    let sock = dir.join("rw.sock");
    // A socket file left by a process that is gone is replaced.
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    assert!(sock.exists());
    let u = up.addr;
    let mut rw = Ringway::start(
        &format!(
            r#"
[servers.app]
listen = ["127.0.0.1:0", "unix:{s}"]
server_name = "app"

[servers.app.locations."/hello"]
return = {{ status = 200, body = "app" }}

[servers.app.locations."/who"]
return = {{ status = 200, body = "$remote_addr" }}

[servers.app.locations."/ws/"]
proxy_pass = "http://{u}"

[servers.other]
listen = ["unix:{s}"]
server_name = "other.test"

[servers.other.locations."/"]
return = {{ status = 200, body = "other" }}
"#,
            s = sock.display()
        ),
        d,
    );
    check(&sock, "ringway");
    // The same server over TCP.
    let (status, _, body) = get_once(rw.addr("app"), "app", "/hello", "");
    assert_eq!((status, body.trim()), (200, "app"));
    assert_eq!(two_requests(&sock, "app", "/who")[0], "200 127.0.0.1");

    // TLS is refused on a unix listener (`-t`).
    let (code, out, _) = config_test(&format!(
        "[servers.s]\nlisten = [\"unix:{}\"]\ntls = {{ cert = \"/x.pem\", key = \"/x.key\" }}\n[servers.s.locations.\"/\"]\nreturn = {{ status = 204 }}\n",
        sock.display()
    ));
    assert_ne!(code, 0);
    assert!(out.contains("a unix listener takes plain HTTP"), "{out}");

    rw.signal(libc::SIGTERM);
    assert!(rw.wait_exit(Duration::from_secs(10)).is_some());
    assert!(!sock.exists(), "the socket file is removed at stop");

    let Some(bin) = nginx::binary() else { return };
    let ngx_sock = dir.join("nginx.sock");
    let s = ngx_sock.display();
    let _ng = Nginx::start_with_http(
        &bin,
        "unix-listen-nginx",
        &format!(
            "server {{ listen unix:{s}; server_name other.test; location / {{ return 200 other; }} }}"
        ),
        "",
        &format!(
            "listen unix:{s}; server_name app; \
             location /hello {{ return 200 app; }} \
             location /who {{ return 200 $remote_addr; }} \
             location /ws/ {{ proxy_pass http://{u}; proxy_http_version 1.1; \
               proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection upgrade; }}"
        ),
    );
    check(&ngx_sock, "nginx");
    // nginx's $remote_addr for a unix client.
    assert_eq!(two_requests(&ngx_sock, "app", "/who")[0], "200 unix:");
    let mut c = connect(&ngx_sock);
    c.write_all(b"GET /hello HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut all = String::new();
    let _ = c.read_to_string(&mut all);
    assert!(all.starts_with("HTTP/1.1 200"), "{all}");
}
