//! `large_client_header_buffers`, ringway and nginx side by side with
//! the same "2 1k", read as nginx packs lines into its 1k first buffer
//! and the large ones: a request line longer than one buffer is a 414
//! from both; a header field line longer than one buffer, or a head that
//! needs more buffers, is a 431 from ringway where nginx answers 400 ("Request
//! Header Or Cookie Too Large") — deliberately: RFC 6585's status says
//! what happened. A head within the bounds is served.

use std::time::Duration;

use ringway_tests::nginx::Nginx;
use ringway_tests::*;

both_drivers!(header_lines_bounded_as_nginx_bounds_them);

fn status_of(addr: std::net::SocketAddr, request: &str) -> u16 {
    let out = raw_exchange(addr, request.as_bytes(), Duration::from_secs(10));
    out.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn header_lines_bounded_as_nginx_bounds_them(d: Driver) {
    let rw = Ringway::start(
        r#"
[servers.app]
listen = ["127.0.0.1:0"]
large_client_header_buffers = "2 1k"
[servers.app.locations."/"]
return = { status = 200, body = "ok" }
"#,
        d,
    );
    let long_target = format!("/{}", "a".repeat(1100));
    let field = "b".repeat(1100);
    let medium = "c".repeat(700);
    let cases: Vec<(&str, String, u16, u16)> = vec![
        // Three 700-byte fields: the first buffer (1k) and the two large
        // ones take one each, as nginx packs them.
        (
            "three fields, one per buffer",
            format!(
                "GET /x HTTP/1.1\r\nHost: app\r\nX-A: {medium}\r\nX-B: {medium}\r\nX-C: {medium}\r\nConnection: close\r\n\r\n"
            ),
            200,
            200,
        ),
        (
            "within the bounds",
            format!("GET /x HTTP/1.1\r\nHost: app\r\nX-A: {medium}\r\nConnection: close\r\n\r\n"),
            200,
            200,
        ),
        (
            "a long request line",
            format!("GET {long_target} HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n"),
            414,
            414,
        ),
        (
            "a long header field",
            format!("GET /x HTTP/1.1\r\nHost: app\r\nX-Long: {field}\r\nConnection: close\r\n\r\n"),
            431,
            400,
        ),
        (
            "a fourth field needs a third large buffer",
            format!(
                "GET /x HTTP/1.1\r\nHost: app\r\nX-A: {medium}\r\nX-B: {medium}\r\nX-C: {medium}\r\nX-D: {medium}\r\nConnection: close\r\n\r\n"
            ),
            431,
            400,
        ),
    ];
    let nginx = nginx::binary().map(|bin| {
        Nginx::start(
            &bin,
            "header-buffers-nginx",
            "",
            "large_client_header_buffers 2 1k; location / { return 200 ok; }",
        )
    });
    for (what, req, ringway, ng_status) in &cases {
        assert_eq!(status_of(rw.addr("app"), req), *ringway, "ringway: {what}");
        if let Some(ng) = &nginx {
            assert_eq!(status_of(ng.addr, req), *ng_status, "nginx: {what}");
        }
    }
}
