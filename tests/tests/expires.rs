//! `expires` end to end, ringway and nginx side by side with the same
//! lines: static files, proxied answers (whose own `Expires` and
//! `Cache-Control` are replaced) and `return`, each checked on the
//! fields it is about — `Cache-Control`, and `Expires` as an offset from
//! the time the answer came.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use ringway_tests::nginx::Nginx;
use ringway_tests::*;

both_drivers!(expires_sets_the_fields_as_nginx_does);

/// An upstream that answers every request with its own caching fields.
fn cached_backend() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(conn) = conn else { continue };
            std::thread::spawn(move || {
                let mut w = conn.try_clone().unwrap();
                let mut r = BufReader::new(conn);
                loop {
                    // One request head (GETs only), then the answer.
                    let mut line = String::new();
                    let mut lines = 0;
                    loop {
                        line.clear();
                        match r.read_line(&mut line) {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                        lines += 1;
                        if line == "\r\n" || lines > 100 {
                            break;
                        }
                    }
                    let answer = "HTTP/1.1 200 OK\r\nCache-Control: private\r\nCache-Control: max-age=5\r\n\
                                  Expires: Thu, 01 Jan 2099 00:00:00 GMT\r\nContent-Length: 2\r\n\r\nok";
                    if w.write_all(answer.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// (status, every Cache-Control value, Expires minus now in seconds).
fn fields(addr: SocketAddr, path: &str) -> (u16, Vec<String>, Option<i64>) {
    let (status, head, _) = get_once(addr, "app", path, "");
    // From the clock here when the answer came (to the second).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let offset = field_values(&head, "expires")
        .first()
        .map(|e| httpdate(e) - now);
    (status, field_values(&head, "cache-control"), offset)
}

/// Seconds since the epoch of an IMF-fixdate ("Thu, 01 Jan 1970 00:00:01 GMT").
fn httpdate(v: &str) -> i64 {
    ringway::static_files::parse_http_date(v.as_bytes())
        .unwrap_or_else(|| panic!("not an HTTP date: {v}"))
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}

fn expires_sets_the_fields_as_nginx_does(d: Driver) {
    let up = cached_backend();
    let site = temp_dir("expires-site");
    std::fs::write(site.join("a.txt"), "hello").unwrap();
    let s = site.display();
    let rw = Ringway::start(
        &format!(
            r#"
[servers.app]
listen = ["127.0.0.1:0"]

[servers.app.locations."/static/"]
alias = "{s}/"
expires = "1h"

[servers.app.locations."/past/"]
alias = "{s}/"
expires = "-1"

[servers.app.locations."/api/"]
proxy_pass = "http://{up}"
expires = "30d"

[servers.app.locations."/plain/"]
proxy_pass = "http://{up}"

[servers.app.locations."= /epoch"]
return = {{ status = 200, body = "e" }}
expires = "epoch"

[servers.app.locations."= /max"]
return = {{ status = 200, body = "m" }}
expires = "max"
"#
        ),
        d,
    );
    let cases: &[(&str, u16, &[&str], Option<i64>)] = &[
        ("/static/a.txt", 200, &["max-age=3600"], Some(3_600)),
        // Not a status `expires` applies to: nothing added.
        ("/static/missing", 404, &[], None),
        ("/past/a.txt", 200, &["no-cache"], Some(-1)),
        // The upstream's two Cache-Control fields and its Expires replaced.
        ("/api/x", 200, &["max-age=2592000"], Some(30 * 86_400)),
        // Without expires, the upstream's pass through.
        ("/plain/x", 200, &["private", "max-age=5"], None),
        ("/epoch", 200, &["no-cache"], None),
        ("/max", 200, &["max-age=315360000"], None),
    ];
    let nginx = nginx::binary().map(|bin| {
        let server = format!(
            "location /static/ {{ alias {s}/; expires 1h; }} \
             location /past/ {{ alias {s}/; expires -1; }} \
             location /api/ {{ proxy_pass http://{up}; expires 30d; }} \
             location /plain/ {{ proxy_pass http://{up}; }} \
             location = /epoch {{ expires epoch; return 200 \"e\"; }} \
             location = /max {{ expires max; return 200 \"m\"; }}"
        );
        Nginx::start(&bin, "expires-nginx", "", &server)
    });
    for &(path, status, cc, offset) in cases {
        let (got_status, got_cc, got_offset) = fields(rw.addr("app"), path);
        assert_eq!(got_status, status, "ringway {path}");
        assert_eq!(got_cc, cc, "ringway {path}: Cache-Control");
        if let Some(want) = offset {
            // The clock may tick between the two stamps.
            let o = got_offset.expect("an Expires");
            assert!(
                (want..=want + 1).contains(&o),
                "ringway {path}: Expires - Date = {o}"
            );
        }
        if let Some(ng) = &nginx {
            let (n_status, n_cc, n_offset) = fields(ng.addr, path);
            assert_eq!(
                (n_status, &n_cc),
                (got_status, &got_cc),
                "{path}: nginx vs ringway"
            );
            assert_eq!(
                n_offset.is_some(),
                got_offset.is_some(),
                "{path}: Expires in one only"
            );
            if let (Some(a), Some(b)) = (n_offset, got_offset) {
                assert!(
                    (a - b).abs() <= 1,
                    "{path}: Expires offsets nginx {a}, ringway {b}"
                );
            }
        }
    }
    // epoch and max name fixed dates.
    let head = raw_exchange(
        rw.addr("app"),
        b"GET /epoch HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n",
        Duration::from_secs(10),
    );
    assert!(
        head.contains("Expires: Thu, 01 Jan 1970 00:00:01 GMT\r\n"),
        "{head}"
    );
    let head = raw_exchange(
        rw.addr("app"),
        b"GET /max HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n",
        Duration::from_secs(10),
    );
    assert!(
        head.contains("Expires: Thu, 31 Dec 2037 23:55:55 GMT\r\n"),
        "{head}"
    );
}
