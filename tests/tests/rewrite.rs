//! `rewrite` and `set`, ringway and nginx side by side with the same
//! lines: server-level lines before the location search, `last` searching
//! again (a `proxy_pass` URI part then applied to the new URI), `break`
//! staying (the whole new URI goes upstream), the query appended or
//! dropped (`?`), `redirect`/`permanent` and absolute replacements, the
//! cycle limit (500), named captures and `set` variables in `proxy_pass`,
//! a redirect going out before the location's access rules (nginx's phase
//! order), and a WebSocket upgrade through a rewritten location. What the
//! backend got is compared, as the request line it read.

use std::io::{Read, Write};
use std::net::SocketAddr;

use ringway_tests::nginx::Nginx;
use ringway_tests::*;

both_drivers!(
    rewrite_and_set_as_nginx,
    captures_in_root_and_alias_as_nginx,
    the_access_log_has_the_rewritten_uri_as_nginx
);

/// What each request gets: the request line the backend read, or the
/// status and the path of the `Location` (nginx writes a relative one
/// absolute with its own address; ringway sends it as made).
fn outcome(addr: SocketAddr, path: &str) -> String {
    let (status, head, body) = get_once(addr, "app", path, "");
    match status {
        200 => body.split(' ').take(2).collect::<Vec<_>>().join(" "),
        301 | 302 => {
            let to = field_values(&head, "location").join(",");
            let local = ["http://127.0.0.1:", "http://app:"]
                .iter()
                .any(|p| to.starts_with(p));
            let to = match to.find("://") {
                Some(i) if local => to[i + 3..]
                    .find('/')
                    .map_or(to.clone(), |j| to[i + 3 + j..].to_string()),
                _ => to,
            };
            format!("{status} {to}")
        }
        s => s.to_string(),
    }
}

/// The lines, in nginx's syntax and in ringway.toml's.
fn lines(u: SocketAddr) -> (String, String) {
    let nginx = format!(
        "rewrite ^/srv/(.*)$ /one/$1; set $tier gold; \
         location /one/ {{ rewrite ^/one/(.*)$ /new/$1 break; proxy_pass http://{u}/two/; }} \
         location /lastp/ {{ rewrite ^/lastp/(.*)$ /dest/$1?a=b last; }} \
         location /dest/ {{ proxy_pass http://{u}/d/; }} \
         location /q/ {{ rewrite ^/q/(.*)$ /new/$1? break; proxy_pass http://{u}; }} \
         location /r/ {{ rewrite ^/r/(.*)$ /x/$1?z=1 redirect; }} \
         location /perm/ {{ rewrite ^/perm/(.*)$ /y/$1 permanent; }} \
         location /p/ {{ rewrite ^/p/(.*)$ http://h.example/$1; proxy_pass http://{u}; }} \
         location /loop/ {{ rewrite ^/loop/(.*)$ /loop/$1 last; }} \
         location /chain/ {{ rewrite ^/chain/a$ /chain/b; rewrite ^/chain/b$ /dest/c; }} \
         location ~ ^/cap/(?<room>[a-z]+)/(\\d+)$ {{ set $foo v-$room-$2-$tier; rewrite ^ /z/$1 break; \
           proxy_pass http://{u}/c/$room/$foo/$1$is_args$args; }} \
         location /enc/ {{ rewrite ^/enc/(?s:(.*))$ /e/$1 break; proxy_pass http://{u}; }} \
         location /deny/ {{ deny all; rewrite ^/deny/(.*)$ /open/$1 redirect; }} \
         location /old/ {{ rewrite ^/old/only$ /dest/only last; }} \
         location /chat/ {{ rewrite ^/chat/(.*)$ /ws/$1 break; proxy_pass http://{u}; \
           proxy_http_version 1.1; proxy_set_header Upgrade $http_upgrade; \
           proxy_set_header Connection upgrade; }}"
    );
    let ringway = format!(
        r#"
[servers.app]
listen = ["127.0.0.1:0"]
rewrite = ['^/srv/(.*)$ /one/$1']
set = ["$tier gold"]

[servers.app.locations."/one/"]
rewrite = ['^/one/(.*)$ /new/$1 break']
proxy_pass = "http://{u}/two/"

[servers.app.locations."/lastp/"]
rewrite = ['^/lastp/(.*)$ /dest/$1?a=b last']

[servers.app.locations."/dest/"]
proxy_pass = "http://{u}/d/"

[servers.app.locations."/q/"]
rewrite = ['^/q/(.*)$ /new/$1? break']
proxy_pass = "http://{u}"

[servers.app.locations."/r/"]
rewrite = ['^/r/(.*)$ /x/$1?z=1 redirect']

[servers.app.locations."/perm/"]
rewrite = ['^/perm/(.*)$ /y/$1 permanent']

[servers.app.locations."/p/"]
rewrite = ['^/p/(.*)$ http://h.example/$1']
proxy_pass = "http://{u}"

[servers.app.locations."/loop/"]
rewrite = ['^/loop/(.*)$ /loop/$1 last']

[servers.app.locations."/chain/"]
rewrite = ['^/chain/a$ /chain/b', '^/chain/b$ /dest/c']

[servers.app.locations.'~ ^/cap/(?<room>[a-z]+)/(\d+)$']
set = ["$foo v-$room-$2-$tier"]
rewrite = ['^ /z/$1 break']
proxy_pass = "http://{u}/c/$room/$foo/$1$is_args$args"

[servers.app.locations."/enc/"]
rewrite = ['^/enc/(?s:(.*))$ /e/$1 break']
proxy_pass = "http://{u}"

[servers.app.locations."/deny/"]
access = ["deny all"]
rewrite = ['^/deny/(.*)$ /open/$1 redirect']

[servers.app.locations."/old/"]
rewrite = ['^/old/only$ /dest/only last']

[servers.app.locations."/chat/"]
rewrite = ['^/chat/(.*)$ /ws/$1 break']
proxy_pass = "http://{u}"
"#
    );
    (nginx, ringway)
}

const CASES: &[(&str, &str)] = &[
    // A `break` in a location with a URI part: the whole new URI.
    ("/one/a?x=1", "GET /new/a?x=1"),
    // The server's line, then the location's.
    ("/srv/b?y=2", "GET /new/b?y=2"),
    // `last`: searched again, the new location's URI part applied; the
    // new query first, the request's after `&`.
    ("/lastp/c?q=1", "GET /d/c?a=b&q=1"),
    ("/lastp/c", "GET /d/c?a=b"),
    // A replacement ending in `?` drops the query.
    ("/q/d?q=1", "GET /new/d"),
    ("/r/e?k=2", "302 /x/e?z=1&k=2"),
    ("/perm/e", "301 /y/e"),
    ("/p/f?k=2", "302 http://h.example/f?k=2"),
    ("/loop/g", "500"),
    // No flag: the next line sees the new URI; then a new search.
    ("/chain/a", "GET /d/c"),
    // `$room` and `$foo` stay; `$1` is the last regex's (`^`: none).
    ("/cap/abc/42?t=1", "GET /c/abc/v-abc-42-gold/?t=1"),
    // The decoded path is escaped again on its way upstream.
    ("/enc/a%20b%3Fc", "GET /e/a%20b%3Fc"),
    // The rewrite phase comes before the access phase.
    ("/deny/x", "302 /open/x"),
    // A location with lines only: a request none takes is 404.
    ("/old/other", "404"),
    ("/old/only", "GET /d/only"),
];

fn check(addr: SocketAddr, who: &str) {
    for (path, want) in CASES {
        assert_eq!(outcome(addr, path), *want, "{who} {path}");
    }
    assert_eq!(
        ws_echo_text(addr, "/chat/room1", "hello"),
        "hello",
        "{who} WebSocket through a rewrite"
    );
}

fn rewrite_and_set_as_nginx(d: Driver) {
    let up = HttpBackend::start();
    let (nginx_lines, ringway_toml) = lines(up.addr);
    let rw = Ringway::start(&ringway_toml, d);
    check(rw.addr("app"), "ringway");
    let last = up.seen.lock().unwrap().last().map(|r| r.path.clone());
    assert_eq!(last.as_deref(), Some("/ws/room1"));

    // A CR LF decoded from the path (`(?s:` lets `.` take it) cannot
    // reach the backend's request line through a rewrite.
    let mut c = rw.client("app");
    c.write_all(b"GET /enc/a%0D%0AX-Evil:%201 HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    let _ = c.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    let last = up.seen.lock().unwrap().last().map(|r| r.path.clone());
    assert_eq!(last.as_deref(), Some("/e/a%0D%0AX-Evil:%201"));

    let Some(bin) = nginx::binary() else { return };
    let ng = Nginx::start(&bin, "rewrite-nginx", "", &nginx_lines);
    check(ng.addr, "nginx");
}

/// `root` and `alias` with captures, beside nginx: a regex location's
/// alias naming the file, a root per captured site; and where nginx
/// follows a capture out of the fixed directory, ringway answers 404.
fn captures_in_root_and_alias_as_nginx(d: Driver) {
    let dir = temp_dir("rewrite-roots");
    std::fs::create_dir_all(dir.join("rooms/abc")).unwrap();
    std::fs::create_dir_all(dir.join("sites/one/site/one")).unwrap();
    std::fs::write(dir.join("rooms/abc/a.txt"), "room abc\n").unwrap();
    std::fs::write(dir.join("sites/one/site/one/page.txt"), "site one\n").unwrap();
    std::fs::write(dir.join("secret.txt"), "outside\n").unwrap();
    let p = dir.display();
    let rw = Ringway::start(
        &format!(
            r#"
[servers.app]
listen = ["127.0.0.1:0"]

[servers.app.locations.'~ ^/rooms/(?<room>[a-z]+)/(.+)$']
alias = "{p}/rooms/$room/$2"

[servers.app.locations.'~ ^/site/([a-z]+)/']
root = "{p}/sites/$1"

[servers.app.locations.'~ ^/t(.*)$']
alias = "{p}/rooms/.$1"
"#
        ),
        d,
    );
    let body = |addr, path: &str| {
        let (status, _, body) = get_once(addr, "app", path, "");
        format!("{status} {}", if status == 200 { body.trim() } else { "" })
    };
    let cases = [
        ("/rooms/abc/a.txt", "200 room abc"),
        ("/rooms/abc/none.txt", "404 "),
        ("/site/one/page.txt", "200 site one"),
    ];
    for (path, want) in cases {
        assert_eq!(body(rw.addr("app"), path), want, "ringway {path}");
    }
    // `/t./secret.txt` captures `./secret.txt`: the alias becomes
    // `rooms/../secret.txt`, refused.
    assert_eq!(body(rw.addr("app"), "/t./secret.txt"), "404 ");

    let Some(bin) = nginx::binary() else { return };
    let ng = Nginx::start(
        &bin,
        "rewrite-roots-nginx",
        "",
        &format!(
            "location ~ ^/rooms/(?<room>[a-z]+)/(.+)$ {{ alias {p}/rooms/$room/$2; }} \
             location ~ ^/site/([a-z]+)/ {{ root {p}/sites/$1; }} \
             location ~ ^/t(.*)$ {{ alias {p}/rooms/.$1; }}"
        ),
    );
    for (path, want) in cases {
        assert_eq!(body(ng.addr, path), want, "nginx {path}");
    }
    // nginx serves the file outside the alias's directory.
    assert_eq!(body(ng.addr, "/t./secret.txt"), "200 outside");
}

/// The lines of the access log at `path` once it has `n` (bounded).
fn log_lines(path: &std::path::Path, n: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        if lines.len() >= n {
            return lines;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{n} lines in {}: {text}",
            path.display()
        );
        // A file has no wait-for-change here; the log is short.
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// `$uri` and `$args` in the access log are the rewritten ones (a tunnel's
/// line too), `$request_uri` the client's, as nginx logs them.
fn the_access_log_has_the_rewritten_uri_as_nginx(d: Driver) {
    let up = HttpBackend::start();
    let u = up.addr;
    let dir = temp_dir("rewrite-log");
    let log = dir.join("access.log");
    let rw = Ringway::start_with_log(
        &format!(
            r#"log_format = '$uri|$args|$request_uri'

[servers.app]
listen = ["127.0.0.1:0"]

[servers.app.locations."/one/"]
rewrite = ['^/one/(.*)$ /new/$1?z=1 break']
proxy_pass = "http://{u}"

[servers.app.locations."/chat/"]
rewrite = ['^/chat/(.*)$ /ws/$1 break']
proxy_pass = "http://{u}"
"#
        ),
        d,
        "",
        log.to_str().unwrap(),
    );
    let requests = |addr| {
        assert_eq!(get_once(addr, "app", "/one/a?x=1", "").0, 200);
        assert_eq!(ws_echo_text(addr, "/chat/r1?t=2", "hi"), "hi");
    };
    requests(rw.addr("app"));
    let want = ["/new/a|z=1&x=1|/one/a?x=1", "/ws/r1|t=2|/chat/r1?t=2"];
    assert_eq!(log_lines(&log, 2), want);

    let Some(bin) = nginx::binary() else { return };
    let nlog = dir.join("nginx.log");
    let ng = Nginx::start_with_http(
        &bin,
        "rewrite-log-nginx",
        "log_format u '$uri|$args|$request_uri';",
        "",
        &format!(
            "access_log {} u; \
             location /one/ {{ rewrite ^/one/(.*)$ /new/$1?z=1 break; proxy_pass http://{u}; }} \
             location /chat/ {{ rewrite ^/chat/(.*)$ /ws/$1 break; proxy_pass http://{u}; \
               proxy_http_version 1.1; proxy_set_header Upgrade $http_upgrade; \
               proxy_set_header Connection upgrade; }}",
            nlog.display()
        ),
    );
    requests(ng.addr);
    assert_eq!(log_lines(&nlog, 2), want);
}
