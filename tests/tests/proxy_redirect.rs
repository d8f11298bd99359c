//! `proxy_redirect`, ringway and nginx side by side with the same lines:
//! the default (the `proxy_pass` URL back to the location's prefix, with
//! a URI part and without; nothing for a group whose name is not in the
//! upstream's URLs), `off`, and an explicit FROM TO — on `Location` and
//! on `Refresh`'s URL.
//!
//! Deliberately different from nginx: a `Location` the rewrite leaves
//! relative stays relative (RFC 9110 §10.2.2 allows it); nginx makes it
//! absolute with the Host's name and the listening port, which is wrong
//! behind another proxy. The comparison reads nginx's without its
//! `http://HOST:PORT`.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use ringway_tests::nginx::Nginx;
use ringway_tests::*;

both_drivers!(redirects_rewritten_as_nginx_does);

/// An upstream answering every request with a 302 to itself.
fn redirecting() -> SocketAddr {
    let own = Arc::new(OnceLock::<SocketAddr>::new());
    let me = own.clone();
    let addr = answering_backend(move |head| {
        let addr = me.get().expect("set before any request");
        let path = path_of(head);
        let answer = format!(
            "HTTP/1.1 302 Found\r\nLocation: http://{addr}/two/x?from={path}\r\n\
             Refresh: 5; url=http://{addr}/two/r\r\nContent-Length: 0\r\n\r\n"
        );
        (answer, false)
    });
    own.set(addr).unwrap();
    addr
}

/// (Location, Refresh) of a GET, nginx's own-host prefix taken off.
fn fields(addr: SocketAddr, path: &str) -> (String, String) {
    let (status, head, _) = get_once(addr, "front.test", path, "");
    assert_eq!(status, 302, "{head}");
    let own = format!("http://front.test:{}", addr.port());
    let one = |n: &str| {
        let v = field_values(&head, n)
            .into_iter()
            .next()
            .unwrap_or_default();
        v.strip_prefix(&own).map(str::to_string).unwrap_or(v)
    };
    (one("location"), one("refresh"))
}

fn redirects_rewritten_as_nginx_does(d: Driver) {
    let up = redirecting();
    let rw = Ringway::start(
        &format!(
            r#"
[upstreams.grp]
servers = [{{ addr = "{up}" }}]

[servers.app]
listen = ["127.0.0.1:0"]

[servers.app.locations."/one/"]
proxy_pass = "http://{up}/two/"

[servers.app.locations."/plain/"]
proxy_pass = "http://{up}"

[servers.app.locations."/grp/"]
proxy_pass = "http://grp/two/"

[servers.app.locations."/off/"]
proxy_pass = "http://{up}/two/"
proxy_redirect = "off"

[servers.app.locations."/explicit/"]
proxy_pass = "http://{up}/two/"
proxy_redirect = ["http://{up}/two/ https://ext.example/new/"]
"#
        ),
        d,
    );
    let cases: Vec<(&str, (String, String))> = vec![
        (
            "/one/a",
            ("/one/x?from=/two/a".into(), "5; url=/one/r".into()),
        ),
        (
            "/plain/a",
            ("/two/x?from=/plain/a".into(), "5; url=/two/r".into()),
        ),
        (
            "/grp/a",
            (
                format!("http://{up}/two/x?from=/two/a"),
                format!("5; url=http://{up}/two/r"),
            ),
        ),
        (
            "/off/a",
            (
                format!("http://{up}/two/x?from=/two/a"),
                format!("5; url=http://{up}/two/r"),
            ),
        ),
        (
            "/explicit/a",
            (
                "https://ext.example/new/x?from=/two/a".into(),
                "5; url=https://ext.example/new/r".into(),
            ),
        ),
    ];
    for (path, want) in &cases {
        assert_eq!(&fields(rw.addr("app"), path), want, "ringway {path}");
    }
    let Some(bin) = nginx::binary() else { return };
    let ng = Nginx::start_with_http(
        &bin,
        "proxy-redirect-nginx",
        &format!("upstream grp {{ server {up}; }}"),
        "",
        &format!(
            "server_name front.test; \
             location /one/ {{ proxy_pass http://{up}/two/; }} \
             location /plain/ {{ proxy_pass http://{up}; }} \
             location /grp/ {{ proxy_pass http://grp/two/; }} \
             location /off/ {{ proxy_pass http://{up}/two/; proxy_redirect off; }} \
             location /explicit/ {{ proxy_pass http://{up}/two/; \
               proxy_redirect http://{up}/two/ https://ext.example/new/; }}"
        ),
    );
    for (path, want) in &cases {
        assert_eq!(&fields(ng.addr, path), want, "nginx {path}");
    }
}
