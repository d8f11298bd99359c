//! `default_type` end to end, beside nginx with the same lines: the
//! `Content-Type` of a `return` body (the JSON health endpoint idiom) and
//! of a static file whose extension is not in the type table.

use std::net::SocketAddr;

use ringway_tests::nginx::Nginx;
use ringway_tests::*;

both_drivers!(default_type_names_return_bodies_and_unknown_files);

fn content_type(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let host = if path.starts_with("/plain") {
        "plain"
    } else {
        "app"
    };
    let path = path.strip_prefix("/plain").unwrap_or(path);
    let (status, head, body) = get_once(addr, host, path, "");
    let ct = field_values(&head, "content-type")
        .pop()
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
