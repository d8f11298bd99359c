//! The response fields a location shapes, ringway and nginx side by side
//! with the same lines: `add_header` with and without `always` and
//! nginx's inheritance (a level that sets any replaces the server's),
//! `proxy_hide_header` / `proxy_pass_header` over nginx's default hidden
//! list (the upstream's `Server`, `Date`, `X-Pad`, `X-Accel-*` it acts
//! on), and `server_tokens` — on proxied 200s, upstream errors, ringway's
//! own 502, and a WebSocket 101.
//!
//! Each answer is reduced to the fields these directives are about; the
//! `Server` value is read as "the upstream's", "the proxy's" or "the
//! proxy's with a version", since the names differ by design.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use ringway_tests::nginx::Nginx;
use ringway_tests::*;

both_drivers!(response_fields_as_nginx_shapes_them);

const OLD_DATE: &str = "Mon, 01 Jan 2001 00:00:00 GMT";

/// An upstream whose answers carry every field the directives act on.
/// `/404…` answers 404; an upgrade request gets a 101 (then the
/// connection closes); anything else a 200.
fn fields_backend() -> SocketAddr {
    answering_backend(|head| {
        let common = format!(
            "Server: up/1\r\nDate: {OLD_DATE}\r\nX-Pad: p\r\nX-Accel-Buffering: no\r\n\
             X-Accel-Other: o\r\nX-Secret: s\r\nX-Powered-By: php\r\n"
        );
        if head.to_ascii_lowercase().contains("upgrade: websocket") {
            let answer = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\
                 Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n{common}\r\n"
            );
            return (answer, true);
        }
        let status = if path_of(head).ends_with("/404") {
            "404 Not Found"
        } else {
            "200 OK"
        };
        let answer = format!("HTTP/1.1 {status}\r\n{common}Content-Length: 2\r\n\r\nok");
        (answer, false)
    })
}

/// A port nothing listens on.
fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// The fields the directives are about, in a fixed order: status, then
/// `name=value` for each one present (the Server field as `upstream`,
/// `proxy` or `proxy/version`; the Date as `upstream` or `fresh`).
fn shape(head: &str) -> Vec<String> {
    let status = head.split(' ').nth(1).unwrap_or("?").to_string();
    let mut out = vec![status];
    for v in field_values(head, "server") {
        let who = if v == "up/1" {
            "upstream"
        } else if v.contains('/') {
            "proxy/version"
        } else {
            "proxy"
        };
        out.push(format!("server={who}"));
    }
    for v in field_values(head, "date") {
        out.push(format!(
            "date={}",
            if v == OLD_DATE { "upstream" } else { "fresh" }
        ));
    }
    for name in [
        "x-srv",
        "x-srv-always",
        "x-own",
        "x-own-always",
        "x-pad",
        "x-accel-buffering",
        "x-accel-other",
        "x-secret",
        "x-powered-by",
    ] {
        for v in field_values(head, name) {
            out.push(format!("{name}={v}"));
        }
    }
    out
}

fn upgrade_request(path: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: app\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes()
}

fn head_of(raw: &str) -> String {
    raw.split("\r\n\r\n").next().unwrap_or("").to_string()
}

fn response_fields_as_nginx_shapes_them(d: Driver) {
    let up = fields_backend();
    let dead = closed_port();
    let rw = Ringway::start(
        &format!(
            r#"
[servers.app]
listen = ["127.0.0.1:0"]
proxy_hide_header = ["X-Powered-By"]
[servers.app.add_header]
X-Srv = "srv"
X-Srv-Always = {{ value = "srv", always = true }}

[servers.app.locations."/"]
proxy_pass = "http://{up}"

[servers.app.locations."/own/"]
proxy_pass = "http://{up}"
proxy_hide_header = ["X-Secret"]
proxy_pass_header = ["X-Accel-Buffering", "Server"]
[servers.app.locations."/own/".add_header]
X-Own = "own"
X-Own-Always = {{ value = "own", always = true }}

[servers.app.locations."/dead/"]
proxy_pass = "http://{dead}"

[servers.app.locations."= /ret"]
return = {{ status = 200, body = "r" }}

[servers.versioned]
listen = ["127.0.0.2:0"]
server_tokens = true

[servers.versioned.locations."/"]
proxy_pass = "http://{up}"
"#
        ),
        d,
    );
    let gets: &[(&str, &[&str])] = &[
        (
            "/a",
            &[
                "200",
                "server=proxy",
                "date=fresh",
                "x-srv=srv",
                "x-srv-always=srv",
                "x-accel-other=o",
                "x-secret=s",
            ],
        ),
        // Upstream error: only the `always` field.
        (
            "/404",
            &[
                "404",
                "server=proxy",
                "date=fresh",
                "x-srv-always=srv",
                "x-accel-other=o",
                "x-secret=s",
            ],
        ),
        // The location's own fields and lists replace the server's (both
        // hide and pass together: X-Powered-By is passed here).
        (
            "/own/a",
            &[
                "200",
                "server=upstream",
                "date=fresh",
                "x-own=own",
                "x-own-always=own",
                "x-accel-buffering=no",
                "x-accel-other=o",
                "x-powered-by=php",
            ],
        ),
        (
            "/own/404",
            &[
                "404",
                "server=upstream",
                "date=fresh",
                "x-own-always=own",
                "x-accel-buffering=no",
                "x-accel-other=o",
                "x-powered-by=php",
            ],
        ),
        // The proxy's own 502 takes the `always` field.
        (
            "/dead/x",
            &["502", "server=proxy", "date=fresh", "x-srv-always=srv"],
        ),
        (
            "/ret",
            &[
                "200",
                "server=proxy",
                "date=fresh",
                "x-srv=srv",
                "x-srv-always=srv",
            ],
        ),
    ];
    let ws_want: &[&str] = &[
        "101",
        "server=proxy",
        "date=fresh",
        "x-srv-always=srv",
        "x-accel-other=o",
        "x-secret=s",
    ];
    let versioned_want: &[&str] = &[
        "200",
        "server=proxy/version",
        "date=fresh",
        "x-accel-other=o",
        "x-secret=s",
        "x-powered-by=php",
    ];

    let ask = |addr: SocketAddr, path: &str| shape(&get_once(addr, "app", path, "").1);
    let ask_ws = |addr: SocketAddr| {
        shape(&head_of(&raw_exchange(
            addr,
            &upgrade_request("/chat"),
            Duration::from_secs(10),
        )))
    };
    for (path, want) in gets {
        assert_eq!(ask(rw.addr("app"), path), *want, "ringway {path}");
    }
    assert_eq!(ask_ws(rw.addr("app")), ws_want, "ringway 101");
    assert_eq!(
        ask(rw.addr("versioned"), "/a"),
        versioned_want,
        "ringway server_tokens"
    );

    let Some(bin) = nginx::binary() else { return };
    let ng = Nginx::start(
        &bin,
        "fields-nginx",
        "",
        &format!(
            "server_tokens off; proxy_hide_header X-Powered-By; \
             add_header X-Srv srv; add_header X-Srv-Always srv always; \
             location / {{ proxy_pass http://{up}; proxy_http_version 1.1; \
               proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection upgrade; }} \
             location /own/ {{ proxy_pass http://{up}; proxy_hide_header X-Secret; \
               proxy_pass_header X-Accel-Buffering; proxy_pass_header Server; \
               add_header X-Own own; add_header X-Own-Always own always; }} \
             location /dead/ {{ proxy_pass http://{dead}; }} \
             location = /ret {{ return 200 r; }}"
        ),
    );
    let versioned = Nginx::start(
        &bin,
        "fields-nginx-tokens",
        "",
        &format!("server_tokens on; location / {{ proxy_pass http://{up}; }}"),
    );
    for (path, want) in gets {
        assert_eq!(ask(ng.addr, path), *want, "nginx {path}");
    }
    assert_eq!(ask_ws(ng.addr), ws_want, "nginx 101");
    assert_eq!(
        ask(versioned.addr, "/a"),
        versioned_want,
        "nginx server_tokens"
    );
}
