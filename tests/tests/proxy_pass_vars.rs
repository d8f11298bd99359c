//! `proxy_pass` with `$variables` and regex captures, ringway and nginx
//! side by side with the same lines: a WebSocket room path whose capture
//! and query go into the upstream URI (the shape of Jitsi's
//! `/xmpp-websocket?room=$1&$args`), `$is_args$args`, and `$1` in a
//! `return` redirect. A URI with variables is sent as rendered, as nginx
//! does; what a request line cannot hold (a decoded capture's space or
//! control characters) ringway sends escaped.

use std::io::{Read, Write};
use std::net::SocketAddr;

use ringway_tests::nginx::Nginx;
use ringway_tests::*;

both_drivers!(variables_in_proxy_pass_as_nginx_renders_them);

/// What the HttpBackend's answer says it got: "METHOD PATH".
fn seen(addr: SocketAddr, path: &str) -> String {
    let (status, _, body) = get_once(addr, "app", path, "");
    assert_eq!(status, 200, "{path}: {body}");
    body.split(' ').take(2).collect::<Vec<_>>().join(" ")
}

fn redirect_path(addr: SocketAddr, path: &str) -> String {
    let (status, head, _) = get_once(addr, "app", path, "");
    assert_eq!(status, 301, "{head}");
    let to = field_values(&head, "location").join(",");
    // nginx makes a relative Location absolute with its own host and port.
    match to.find("://") {
        Some(i) => to[i + 3..]
            .find('/')
            .map_or(to.clone(), |j| to[i + 3 + j..].to_string()),
        None => to,
    }
}

fn ws_echo(addr: SocketAddr, path: &str) -> String {
    ws_echo_text(addr, path, "into the room")
}

fn variables_in_proxy_pass_as_nginx_renders_them(d: Driver) {
    let up = HttpBackend::start();
    let u = up.addr;
    let rw = Ringway::start(
        &format!(
            r#"
[servers.app]
listen = ["127.0.0.1:0"]

[servers.app.locations.'~ ^/rooms/([^/]+)/ws$']
proxy_pass = "http://{u}/socket?room=$1&$args"

[servers.app.locations."/q/"]
proxy_pass = "http://{u}/api$is_args$args"

[servers.app.locations.'~ ^/old/(.*)$']
return = {{ status = 301, location = "/new/$1" }}
"#
        ),
        d,
    );
    let cases = [
        ("/rooms/abc/ws?token=t1", "GET /socket?room=abc&token=t1"),
        ("/rooms/abc/ws", "GET /socket?room=abc&"),
        ("/q/anything?x=1", "GET /api?x=1"),
        ("/q/anything", "GET /api"),
    ];
    for (path, want) in cases {
        assert_eq!(seen(rw.addr("app"), path), want, "ringway {path}");
    }
    assert_eq!(redirect_path(rw.addr("app"), "/old/a/b"), "/new/a/b");
    assert_eq!(ws_echo(rw.addr("app"), "/rooms/r1/ws?t=2"), "into the room");
    let last = up.seen.lock().unwrap().last().map(|r| r.path.clone());
    assert_eq!(last.as_deref(), Some("/socket?room=r1&t=2"));

    // A decoded capture with a space and CR LF: one request line still.
    let mut c = rw.client("app");
    c.write_all(
        b"GET /rooms/a%20b%0D%0AX-Evil:%201/ws HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut out = String::new();
    let _ = c.read_to_string(&mut out);
    assert!(
        out.contains("GET /socket?room=a%20b%0D%0AX-Evil:%201& "),
        "{out}"
    );

    let Some(bin) = nginx::binary() else { return };
    let ng = Nginx::start(
        &bin,
        "proxy-pass-vars-nginx",
        "",
        &format!(
            "location ~ ^/rooms/([^/]+)/ws$ {{ proxy_pass http://{u}/socket?room=$1&$args; \
               proxy_http_version 1.1; proxy_set_header Upgrade $http_upgrade; \
               proxy_set_header Connection upgrade; }} \
             location /q/ {{ proxy_pass http://{u}/api$is_args$args; }} \
             location ~ ^/old/(.*)$ {{ return 301 /new/$1; }}"
        ),
    );
    for (path, want) in cases {
        assert_eq!(seen(ng.addr, path), want, "nginx {path}");
    }
    assert_eq!(redirect_path(ng.addr, "/old/a/b"), "/new/a/b");
    assert_eq!(ws_echo(ng.addr, "/rooms/r1/ws?t=2"), "into the room");
}
