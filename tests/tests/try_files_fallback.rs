//! `try_files` fallbacks that leave the static location, ringway and
//! nginx side by side with the same lines: a named location `@app` that
//! proxies ("files first, else the application" — method, body and
//! WebSocket upgrade carried over, the URI unchanged), a URI fallback
//! with its own query that another location proxies, a fallback whose
//! location's access rules refuse it, and a file that exists (405 for a
//! POST, as nginx's static module).

use std::io::{Read, Write};
use std::net::SocketAddr;

use ringway_tests::nginx::Nginx;
use ringway_tests::*;

both_drivers!(fallbacks_go_where_nginx_sends_them);

/// (status, body) of one request with an optional body, on a fresh
/// connection.
fn ask(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let (status, _, body) = request_once(addr, method, path, body);
    (status, body)
}

/// What the backend's answer says it got, without the Host and
/// Connection it saw (those differ by design: nginx sends its
/// `proxy_set_header` defaults and HTTP/1.0).
fn seen(body: &str) -> String {
    body.split(' ')
        .filter(|w| !w.starts_with("host=") && !w.starts_with("connection="))
        .collect::<Vec<_>>()
        .join(" ")
}

fn ws_echo(addr: SocketAddr, path: &str) -> String {
    ws_echo_text(addr, path, "ping through @app")
}

fn fallbacks_go_where_nginx_sends_them(d: Driver) {
    let up = HttpBackend::start();
    let up = up.addr;
    let site = temp_dir("try-files-fallback");
    std::fs::write(site.join("file.txt"), "a file\n").unwrap();
    let s = site.display();
    let rw = Ringway::start(
        &format!(
            r#"
[servers.app]
listen = ["127.0.0.1:0"]

[servers.app.locations."/"]
root = "{s}"
try_files = ["$uri", "@app"]

[servers.app.locations."@app"]
proxy_pass = "http://{up}"

[servers.app.locations."/spa/"]
root = "{s}"
try_files = ["$uri", "/api/index?from=$uri"]

[servers.app.locations."/api/"]
proxy_pass = "http://{up}"

[servers.app.locations."/locked/"]
root = "{s}"
try_files = ["$uri", "/private/x"]

[servers.app.locations."/private/"]
proxy_pass = "http://{up}"
access = ["deny all"]
"#
        ),
        d,
    );
    let cases: &[(&str, &str, &str, u16, &str)] = &[
        ("GET", "/file.txt", "", 200, "a file\n"),
        // Named: the request's own URI, query and body go upstream.
        ("GET", "/missing?x=1", "", 200, "GET /missing?x=1 body=0"),
        (
            "POST",
            "/form/submit",
            "hello",
            200,
            "POST /form/submit body=5",
        ),
        // A URI fallback with its own query replaces the request's.
        (
            "GET",
            "/spa/deep/link?y=2",
            "",
            200,
            "GET /api/index?from=/spa/deep/link body=0",
        ),
        // The fallback's location refuses: its access rules decide.
        ("GET", "/locked/nothing", "", 403, ""),
        // A file that exists takes GET and HEAD only.
        ("POST", "/file.txt", "x", 405, ""),
    ];
    let nginx = nginx::binary().map(|bin| {
        Nginx::start(
            &bin,
            "try-files-nginx",
            "",
            &format!(
                "location / {{ root {s}; try_files $uri @app; }} \
                 location @app {{ proxy_pass http://{up}; proxy_http_version 1.1; \
                   proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection upgrade; }} \
                 location /spa/ {{ root {s}; try_files $uri /api/index?from=$uri; }} \
                 location /api/ {{ proxy_pass http://{up}; }} \
                 location /locked/ {{ root {s}; try_files $uri /private/x; }} \
                 location /private/ {{ deny all; proxy_pass http://{up}; }}"
            ),
        )
    });
    for &(method, path, body, status, want) in cases {
        let (got_status, got) = ask(rw.addr("app"), method, path, body);
        assert_eq!(got_status, status, "ringway {method} {path}: {got}");
        if status == 200 {
            assert_eq!(seen(&got), want, "ringway {method} {path}");
        }
        if let Some(ng) = &nginx {
            let (n_status, n_got) = ask(ng.addr, method, path, body);
            assert_eq!(n_status, status, "nginx {method} {path}: {n_got}");
            if status == 200 {
                assert_eq!(seen(&n_got), want, "nginx {method} {path}");
            }
        }
    }
    assert_eq!(ws_echo(rw.addr("app"), "/live"), "ping through @app");
    if let Some(ng) = &nginx {
        assert_eq!(ws_echo(ng.addr, "/live"), "ping through @app");
    }

    // A query a fallback makes from the decoded `$uri` is escaped: the
    // upstream gets one request line, whatever the path held.
    let mut c = rw.client("app");
    c.write_all(
        b"GET /spa/a%20b%0D%0AX-Injected:%201 HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut out = String::new();
    let _ = c.read_to_string(&mut out);
    assert!(
        out.contains("GET /api/index?from=/spa/a%20b%0D%0AX-Injected:%201 "),
        "{out}"
    );
}
