//! `default_type` end to end, beside nginx with the same lines: the
//! `Content-Type` of a `return` body (the JSON health endpoint idiom) and
//! of a static file whose extension is not in the type table.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use ringway_tests::nginx::Nginx;
use ringway_tests::*;

both_drivers!(default_type_names_return_bodies_and_unknown_files);

fn content_type(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let (head, body) = read_response(&mut s);
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let ct = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    (status, ct, body)
}

fn default_type_names_return_bodies_and_unknown_files(d: Driver) {
    let site = temp_dir("default-type-site");
    std::fs::write(site.join("blob"), "<p>x</p>").unwrap();
    let s = site.display();
    let rw = Ringway::start(
        &format!(
            r#"
[servers.app]
listen = ["127.0.0.1:0"]
default_type = "application/json"

[servers.app.locations."= /health"]
return = {{ status = 200, body = '{{"ok":true}}' }}

[servers.app.locations."/files/"]
alias = "{s}/"
default_type = "text/html"

[servers.plain]
listen = ["127.0.0.1:0"]
server_name = "plain"

[servers.plain.locations."= /health"]
return = {{ status = 200, body = "ok" }}
"#
        ),
        d,
    );
    let cases = [
        ("/health", (200, "application/json", r#"{"ok":true}"#)),
        ("/files/blob", (200, "text/html", "<p>x</p>")),
    ];
    let nginx = nginx::binary().map(|bin| {
        let server = format!(
            "default_type application/json; \
             location = /health {{ return 200 '{{\"ok\":true}}'; }} \
             location /files/ {{ alias {s}/; default_type text/html; }}"
        );
        Nginx::start(&bin, "default-type-nginx", "", &server)
    });
    for (path, (status, ct, body)) in cases {
        let got = content_type(rw.addr("app"), path);
        assert_eq!(
            (got.0, got.1.as_str(), got.2.as_str()),
            (status, ct, body),
            "ringway {path}"
        );
        if let Some(ng) = &nginx {
            assert_eq!(content_type(ng.addr, path), got, "{path}: nginx vs ringway");
        }
    }
    // Unset: a `return` body is text/plain (nginx's built-in default).
    assert_eq!(
        content_type(rw.addr("plain"), "/plain/health").1,
        "text/plain"
    );
}
