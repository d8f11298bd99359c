//! `error_page`, `internal` and `proxy_intercept_errors`, ringway and
//! nginx side by side with the same lines: pages for ringway's own
//! answers (a 404 no location takes, a 502 from a dead upstream, a POST
//! included), for upstream errors when intercepting (and not without),
//! for a bare `return`, with `=CODE`, `=` and a URL, served from files
//! and from a named `return`; an `internal` location a request cannot
//! reach directly; one redirection per request.

use std::net::SocketAddr;

use ringway_tests::nginx::Nginx;
use ringway_tests::*;

both_drivers!(error_pages_as_nginx_serves_them);

/// An upstream answering 404 "upstream 404" for paths ending in /404,
/// else 200 "upstream ok".
fn backend() -> SocketAddr {
    answering_backend(|head| {
        let (status, body) = if path_of(head).ends_with("/404") {
            ("404 Not Found", "upstream 404")
        } else {
            ("200 OK", "upstream ok")
        };
        let answer = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        (answer, false)
    })
}

/// (status, Location, body) of one request, with an optional body.
fn ask(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, Option<String>, String) {
    let (status, head, body) = request_once(addr, method, path, body);
    let location = field_values(&head, "location").into_iter().next();
    (status, location, body)
}

fn error_pages_as_nginx_serves_them(d: Driver) {
    let up = backend();
    let dead = refused_addr();
    let site = temp_dir("error-page-site");
    std::fs::create_dir_all(site.join("errors")).unwrap();
    std::fs::create_dir_all(site.join("own")).unwrap();
    std::fs::write(site.join("errors/404.html"), "custom 404\n").unwrap();
    std::fs::write(site.join("errors/50x.html"), "custom 50x\n").unwrap();
    std::fs::write(site.join("errors/found.html"), "found instead\n").unwrap();
    std::fs::write(site.join("here.txt"), "here\n").unwrap();
    let s = site.display();
    let rw = Ringway::start(
        &format!(
            r#"
[servers.app]
listen = ["127.0.0.1:0"]
error_page = ["404 /errors/404.html", "500 502 503 504 /errors/50x.html"]

[servers.app.locations."/"]
root = "{s}"

[servers.app.locations."^~ /errors/"]
root = "{s}"
internal = true

[servers.app.locations."/api/"]
proxy_pass = "http://{dead}"

[servers.app.locations."/up/"]
proxy_pass = "http://{up}"
proxy_intercept_errors = true

[servers.app.locations."/plain/"]
proxy_pass = "http://{up}"

[servers.app.locations."/gone"]
return = {{ status = 410 }}
error_page = ["410 =200 @gone"]

[servers.app.locations."@gone"]
return = {{ status = 200, body = "gone but fine\n" }}

[servers.app.locations."/moved/"]
root = "{s}"
error_page = ["404 =301 https://example.com/new"]

[servers.app.locations."/own/"]
root = "{s}"
error_page = ["404 = /errors/found.html"]
"#
        ),
        d,
    );
    let custom_404 = "custom 404\n";
    let custom_50x = "custom 50x\n";
    type Case<'a> = (&'a str, &'a str, &'a str, u16, Option<&'a str>, &'a str);
    let cases: &[Case<'_>] = &[
        ("GET", "/here.txt", "", 200, None, "here\n"),
        ("GET", "/nope", "", 404, None, custom_404),
        // An internal location is not a URI's: its 404 takes the page.
        ("GET", "/errors/404.html", "", 404, None, custom_404),
        ("GET", "/errors/50x.html", "", 404, None, custom_404),
        ("GET", "/api/x", "", 502, None, custom_50x),
        ("POST", "/api/x", "data", 502, None, custom_50x),
        // Intercepted upstream error; relayed as is without interception.
        ("GET", "/up/404", "", 404, None, custom_404),
        ("GET", "/up/fine", "", 200, None, "upstream ok"),
        ("GET", "/plain/404", "", 404, None, "upstream 404"),
        ("GET", "/gone", "", 200, None, "gone but fine\n"),
        (
            "GET",
            "/moved/x",
            "",
            301,
            Some("https://example.com/new"),
            "",
        ),
        ("GET", "/own/x", "", 200, None, "found instead\n"),
        ("HEAD", "/nope", "", 404, None, ""),
    ];
    let nginx = nginx::binary().map(|bin| {
        Nginx::start(
            &bin,
            "error-page-nginx",
            "",
            &format!(
                "error_page 404 /errors/404.html; error_page 500 502 503 504 /errors/50x.html; \
                 location / {{ root {s}; }} \
                 location ^~ /errors/ {{ root {s}; internal; }} \
                 location /api/ {{ proxy_pass http://{dead}; }} \
                 location /up/ {{ proxy_pass http://{up}; proxy_intercept_errors on; }} \
                 location /plain/ {{ proxy_pass http://{up}; }} \
                 location /gone {{ error_page 410 =200 @gone; return 410; }} \
                 location @gone {{ return 200 \"gone but fine\\n\"; }} \
                 location /moved/ {{ root {s}; error_page 404 =301 https://example.com/new; }} \
                 location /own/ {{ root {s}; error_page 404 = /errors/found.html; }}"
            ),
        )
    });
    for &(method, path, body, status, location, want) in cases {
        let (got_status, got_location, got) = ask(rw.addr("app"), method, path, body);
        assert_eq!(got_status, status, "ringway {method} {path}: {got}");
        assert_eq!(got_location.as_deref(), location, "ringway {method} {path}");
        if location.is_none() {
            assert_eq!(got, want, "ringway {method} {path}");
        }
        if let Some(ng) = &nginx {
            let (n_status, n_location, n_got) = ask(ng.addr, method, path, body);
            assert_eq!(n_status, status, "nginx {method} {path}: {n_got}");
            assert_eq!(n_location.as_deref(), location, "nginx {method} {path}");
            if location.is_none() {
                assert_eq!(n_got, want, "nginx {method} {path}");
            }
        }
    }
}
