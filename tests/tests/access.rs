//! `access` (nginx's `allow` / `deny`) end to end: clients from several
//! loopback source addresses, ringway and nginx side by side with the
//! same rules, answering the same raw requests; a recording backend shows
//! that a refused request (an upgrade too) never reaches it.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use ringway_tests::nginx::Nginx;
use ringway_tests::recorder::Recorder;
use ringway_tests::*;

both_drivers!(
    rules_answer_as_nginx_and_refused_requests_never_reach_the_backend,
    a_return_is_refused_too_where_nginx_answers_it,
    http2_streams_and_the_real_ip_are_checked,
    return_444_closes_without_an_answer,
);

fn src(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// The server's rules: everyone on 127/8 but 127.0.0.2; `/local/` has its
/// own (127.0.0.3 only), which replace the server's.
const SERVER_RULES: &[&str] = &["deny 127.0.0.2", "allow 127.0.0.0/8", "deny all"];
const LOCAL_RULES: &[&str] = &["allow 127.0.0.3", "deny all"];

fn toml_rules(rules: &[&str]) -> String {
    let quoted: Vec<String> = rules.iter().map(|r| format!("\"{r}\"")).collect();
    format!("[{}]", quoted.join(", "))
}

fn nginx_rules(rules: &[&str]) -> String {
    rules.iter().map(|r| format!("{r}; ")).collect()
}

fn ringway_config(rec: SocketAddr) -> String {
    format!(
        r#"
[servers.app]
listen = ["127.0.0.1:0"]
access = {server}

[servers.app.locations."/"]
proxy_pass = "http://{rec}"

[servers.app.locations."/local/"]
proxy_pass = "http://{rec}"
access = {local}

[servers.app.locations."/open/"]
proxy_pass = "http://{rec}"
access = []
"#,
        server = toml_rules(SERVER_RULES),
        local = toml_rules(LOCAL_RULES),
    )
}

/// Status and body of a GET of `path` from `from`, then (same connection,
/// when the first answer kept it) the status of a second GET of `/`: a
/// refusal keeps the connection, as nginx's does.
fn get_twice(addr: SocketAddr, from: IpAddr, path: &str) -> (u16, u16) {
    let mut s = connect_from(from, addr);
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut statuses = Vec::new();
    for p in [path, "/again"] {
        write!(s, "GET {p} HTTP/1.1\r\nHost: app\r\n\r\n").unwrap();
        let (head, _) = read_response(&mut s);
        statuses.push(status_of(&head));
    }
    (statuses[0], statuses[1])
}

fn status_of(head: &str) -> u16 {
    head.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn rules_answer_as_nginx_and_refused_requests_never_reach_the_backend(d: Driver) {
    let rec = Recorder::start();
    let rw = Ringway::start(&ringway_config(rec.addr), d);
    let cases: &[(u8, &str, u16)] = &[
        (1, "/x", 200),
        (2, "/x", 403),
        (9, "/x", 200),
        (3, "/local/x", 200),
        (1, "/local/x", 403),
        (2, "/local/x", 403),
    ];
    let nginx = nginx::binary().map(|bin| {
        let server = format!(
            "{} location / {{ proxy_pass http://{rec}; }} location /local/ {{ {} proxy_pass http://{rec}; }}",
            nginx_rules(SERVER_RULES),
            nginx_rules(LOCAL_RULES),
            rec = rec.addr,
        );
        Nginx::start(&bin, "access-nginx", "", &server)
    });
    for &(last, path, want) in cases {
        let got = get_twice(rw.addr("app"), src(last), path);
        assert_eq!(
            got,
            (want, if last == 2 { 403 } else { 200 }),
            "ringway: 127.0.0.{last} GET {path}"
        );
        if let Some(ng) = &nginx {
            let theirs = get_twice(ng.addr, src(last), path);
            assert_eq!(
                got, theirs,
                "127.0.0.{last} GET {path}: ringway {got:?}, nginx {theirs:?}"
            );
        }
    }
    if nginx.is_none() {
        eprintln!("nginx not installed: ringway checked against the expected answers only");
    }
    // `access = []` lets everyone in, whatever the server says (ringway's
    // own spelling; nginx has none).
    assert_eq!(get_twice(rw.addr("app"), src(2), "/open/x"), (200, 403));

    // What reached the backend: only what was allowed. An upgrade from a
    // refused client gets its 403 and opens no upstream connection.
    let before = rec.requests().len();
    let mut s = connect_from(src(2), rw.addr("app"));
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: app\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    let (head, _) = read_response(&mut s);
    assert_eq!(status_of(&head), 403, "{head}");
    let allowed = connect_from(src(1), rw.addr("app"));
    let ws = ws_handshake(allowed, &format!("ws://{}/ws", rw.addr("app")));
    drop(ws);
    let targets: Vec<String> = rec.requests().iter().map(|r| r.line()).collect();
    let ours = &targets[before..];
    assert!(
        ours.len() == 1 && ours[0].starts_with("GET /ws"),
        "only the allowed upgrade reached the backend: {ours:?}"
    );
    rw.wait_for_log("access forbidden by rule", Duration::from_secs(5));
}

/// nginx runs `return` in its rewrite phase, before the access phase, so
/// `deny all` does not stop a `return` there. ringway checks access
/// before any answer (stricter: a `deny` means what it says); the test
/// shows nginx's answer beside it.
fn a_return_is_refused_too_where_nginx_answers_it(d: Driver) {
    let rw = Ringway::start(
        r#"
[servers.app]
listen = ["127.0.0.1:0"]

[servers.app.locations."/"]
return = { status = 200, body = "hello" }
access = ["deny all"]
"#,
        d,
    );
    assert_eq!(get_twice(rw.addr("app"), src(1), "/").0, 403);
    if let Some(bin) = nginx::binary() {
        let ng = Nginx::start(
            &bin,
            "access-return",
            "",
            "location / { deny all; return 200 \"hello\"; }",
        );
        assert_eq!(
            get_twice(ng.addr, src(1), "/").0,
            200,
            "nginx answers a return despite deny all (rewrite phase first)"
        );
    }
}

/// An HTTP/2 stream goes through the same check; the client checked is
/// the one `[real_ip]` says (a trusted balancer's `X-Real-IP`).
fn http2_streams_and_the_real_ip_are_checked(d: Driver) {
    let rec = Recorder::start();
    let rw = Ringway::start(
        &format!(
            r#"
[real_ip]
set_real_ip_from = ["127.0.0.5"]
header = "X-Real-IP"

[servers.app]
listen = ["127.0.0.1:0"]
http2 = "h2c"
access = ["deny 10.0.0.1", "allow all"]

[servers.app.locations."/"]
proxy_pass = "http://{}"
"#,
            rec.addr
        ),
        d,
    );
    let addr = rw.addr("app");
    let curl = |from: &str, real: &str| -> String {
        let out = std::process::Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code} %{http_version}",
                "--http2-prior-knowledge",
                "--max-time",
                "10",
                "--interface",
                from,
                "-H",
            ])
            .arg(format!("X-Real-IP: {real}"))
            .arg(format!("http://{addr}/h2"))
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // From the trusted balancer: its X-Real-IP is the client.
    assert_eq!(curl("127.0.0.5", "10.0.0.1"), "403 2");
    assert_eq!(curl("127.0.0.5", "10.0.0.2"), "200 2");
    // From anyone else the header is not believed: the peer is checked.
    assert_eq!(curl("127.0.0.6", "10.0.0.1"), "200 2");
    assert_eq!(
        rec.requests().len(),
        2,
        "the refused stream reached the backend"
    );
}

/// `return 444` (nginx's "close, answer nothing"): the client reads no
/// byte, then the end of the connection — as from nginx with the same
/// line. Over HTTP/2 the stream ends without a response and the
/// connection goes on serving.
fn return_444_closes_without_an_answer(d: Driver) {
    let log = temp_dir("access-444").join("access.log");
    let rw = Ringway::start_with_log(
        r#"
[servers.app]
listen = ["127.0.0.1:0"]
http2 = "h2c"

[servers.app.locations."/"]
return = { status = 444 }

[servers.app.locations."/ok"]
return = { status = 200, body = "ok" }
"#,
        d,
        "",
        log.to_str().unwrap(),
    );
    let request = b"GET / HTTP/1.1\r\nHost: app\r\n\r\n";
    let ours = raw_exchange(rw.addr("app"), request, Duration::from_secs(10));
    assert_eq!(ours, "", "ringway answered a 444");
    if let Some(bin) = nginx::binary() {
        let ng = Nginx::start(&bin, "access-444", "", "location / { return 444; }");
        let theirs = raw_exchange(ng.addr, request, Duration::from_secs(10));
        assert_eq!(theirs, "", "nginx answered a 444");
    }
    // Logged as nginx logs it: status 444, no body bytes (the log is
    // flushed at least once a second).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("\"GET / HTTP/1.1\" 444 0 ") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no 444 line in the access log:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // HTTP/2: the stream is reset (INTERNAL_ERROR, as nginx's 444 does on
    // HTTP/2), nothing answered; the server goes on.
    let addr = rw.addr("app");
    let curl = |path: &str| {
        std::process::Command::new("curl")
            .args([
                "-s",
                "--http2-prior-knowledge",
                "--max-time",
                "10",
                "-w",
                "%{http_code}",
            ])
            .arg(format!("http://{addr}{path}"))
            .output()
            .expect("curl")
    };
    let reset = curl("/");
    assert_eq!(
        String::from_utf8_lossy(&reset.stdout),
        "000",
        "an answer to a 444 over HTTP/2"
    );
    assert_eq!(
        reset.status.code(),
        Some(92),
        "curl: HTTP/2 stream error expected"
    );
    assert_eq!(String::from_utf8_lossy(&curl("/ok").stdout), "ok200");
}
