//! `proxy_next_upstream` (with `_tries`), ringway and nginx side by side
//! with the same lines: upstream groups of a server that answers 503, one
//! that answers 200 and one that refuses connections; which requests go
//! on to the next server — by status, by method (`non_idempotent`), by
//! count — and which do not (`off`, the default for statuses).

use std::collections::BTreeSet;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use ringway_tests::nginx::Nginx;
use ringway_tests::*;

both_drivers!(next_upstream_as_nginx_decides);

/// An upstream answering every request with `status` and `body`
/// (keep-alive).
fn fixed(status: &'static str, body: &'static str) -> SocketAddr {
    answering_backend(move |_| {
        let answer = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        (answer, false)
    })
}

/// "STATUS body" of one request on a fresh connection.
fn ask(addr: SocketAddr, method: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = if method == "POST" { "x=1" } else { "" };
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: app\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let (head, body) = read_response(&mut s);
    let status = head.split(' ').nth(1).unwrap_or("?").to_string();
    if status == "200" || status == "503" {
        format!("{status} {body}")
    } else {
        status
    }
}

/// The answers of `n` requests, as a set.
fn answers(addr: SocketAddr, method: &str, path: &str, n: usize) -> BTreeSet<String> {
    (0..n).map(|_| ask(addr, method, path)).collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn next_upstream_as_nginx_decides(d: Driver) {
    let busy = fixed("503 Service Unavailable", "busy");
    let busy2 = fixed("503 Service Unavailable", "busy too");
    let fine = fixed("200 OK", "fine");
    let dead = refused_addr();
    // Passive health off (max_fails 0): the servers alternate, so every
    // path meets each server within a few requests.
    let group = |name: &str, a: SocketAddr, b: SocketAddr| {
        format!(
            "[upstreams.{name}]\nservers = [{{ addr = \"{a}\" }}, {{ addr = \"{b}\" }}]\nmax_fails = 0\n"
        )
    };
    let mut conf = String::new();
    for (name, a, b) in [
        ("on503", busy, fine),
        ("plain", busy, fine),
        ("both", busy, busy2),
        ("ni", busy, fine),
        ("one", busy, fine),
        ("off", dead, fine),
        ("deflt", dead, fine),
    ] {
        conf.push_str(&group(name, a, b));
    }
    conf.push_str(
        r#"
[servers.app]
listen = ["127.0.0.1:0"]

[servers.app.locations."/on503/"]
proxy_pass = "http://on503"
proxy_next_upstream = ["error", "timeout", "http_503"]

[servers.app.locations."/plain/"]
proxy_pass = "http://plain"

[servers.app.locations."/both/"]
proxy_pass = "http://both"
proxy_next_upstream = ["http_503"]

[servers.app.locations."/ni/"]
proxy_pass = "http://ni"
proxy_next_upstream = ["http_503", "non_idempotent"]
# nginx buffers request bodies by default; ringway streams them unless
# told (a streamed body cannot be sent to a second server).
proxy_request_buffering = true

[servers.app.locations."/one/"]
proxy_pass = "http://one"
proxy_next_upstream = ["http_503"]
proxy_next_upstream_tries = 1

[servers.app.locations."/off/"]
proxy_pass = "http://off"
proxy_next_upstream = ["off"]

[servers.app.locations."/deflt/"]
proxy_pass = "http://deflt"
"#,
    );
    let echo = HttpBackend::start();
    conf.push_str(&format!(
        "\n[servers.app.locations.\"/buf/\"]\nproxy_pass = \"http://{}\"\nproxy_request_buffering = true\n",
        echo.addr
    ));
    let rw = Ringway::start(&conf, d);
    // A buffered body arrives whole (it came in pieces, with a pause).
    let mut s = TcpStream::connect(rw.addr("app")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"POST /buf/x HTTP/1.1\r\nHost: app\r\nContent-Length: 5000\r\n\r\n")
        .unwrap();
    s.write_all(&[b'a'; 3000]).unwrap();
    s.flush().unwrap();
    s.write_all(&[b'b'; 2000]).unwrap();
    let (head, body) = read_response(&mut s);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        body.starts_with("POST /buf/x ") && body.ends_with(" body=5000"),
        "{body}"
    );
    let cases: &[(&str, &str, &[&str])] = &[
        // A 503 goes on to the next server: every answer is the 200.
        ("GET", "/on503/x", &["200 fine"]),
        // Without http_503 it is the answer.
        ("GET", "/plain/x", &["200 fine", "503 busy"]),
        // No server answers otherwise: the last answer is the client's.
        ("GET", "/both/x", &["503 busy", "503 busy too"]),
        // A POST goes on only with non_idempotent.
        ("POST", "/on503/x", &["200 fine", "503 busy"]),
        ("POST", "/ni/x", &["200 fine"]),
        // One try: no next server.
        ("GET", "/one/x", &["200 fine", "503 busy"]),
        // A refused connect: the next server by default, a 502 with off.
        ("GET", "/deflt/x", &["200 fine"]),
        ("GET", "/off/x", &["200 fine", "502"]),
    ];
    let nginx = nginx::binary().map(|bin| {
        let up = |name: &str, a: SocketAddr, b: SocketAddr| {
            format!("upstream {name} {{ server {a} max_fails=0; server {b} max_fails=0; }} ")
        };
        let http = [
            up("on503", busy, fine),
            up("plain", busy, fine),
            up("both", busy, busy2),
            up("ni", busy, fine),
            up("one", busy, fine),
            up("off", dead, fine),
            up("deflt", dead, fine),
        ]
        .concat();
        Nginx::start_with_http(
            &bin,
            "next-upstream-nginx",
            &http,
            "",
            "location /on503/ { proxy_pass http://on503; proxy_next_upstream error timeout http_503; } \
             location /plain/ { proxy_pass http://plain; } \
             location /both/ { proxy_pass http://both; proxy_next_upstream http_503; } \
             location /ni/ { proxy_pass http://ni; proxy_next_upstream http_503 non_idempotent; } \
             location /one/ { proxy_pass http://one; proxy_next_upstream http_503; proxy_next_upstream_tries 1; } \
             location /off/ { proxy_pass http://off; proxy_next_upstream off; } \
             location /deflt/ { proxy_pass http://deflt; }",
        )
    });
    for &(method, path, want) in cases {
        let want = set(want);
        assert_eq!(
            answers(rw.addr("app"), method, path, 6),
            want,
            "ringway {method} {path}"
        );
        if let Some(ng) = &nginx {
            assert_eq!(
                answers(ng.addr, method, path, 6),
                want,
                "nginx {method} {path}"
            );
        }
    }
}
