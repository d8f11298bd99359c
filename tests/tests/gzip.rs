//! `gzip` and its `gzip_*` keys, ringway and nginx side by side with the
//! same lines, read with curl (`--compressed` decodes what came gzipped):
//! proxied answers (by type, length, an upstream encoding, chunked),
//! static files (compressed on the way, a Range left alone,
//! `gzip_static`'s FILE.gz), a `return` body, a location that turns it
//! off, clients that do not take gzip. For each: whether the answer came
//! gzipped, `Vary`, and the decoded body.
//!
//! Deliberately different from nginx: an upstream answer with
//! `Cache-Control: no-transform` is not compressed (RFC 9111 §5.2.2.6);
//! nginx compresses it. A Range request gets its range, uncompressed;
//! nginx ignores the Range and sends the whole file gzipped.

use std::io::Write;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use ringway_tests::nginx::Nginx;
use ringway_tests::tls_support::run_bounded;
use ringway_tests::*;

both_drivers!(gzip_as_nginx_compresses);

fn json(n: usize) -> String {
    let mut s = String::from("[");
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!(
            "{{\"id\":{i},\"name\":\"user {i}\",\"online\":true}}"
        ));
    }
    s.push(']');
    s
}

/// An upstream answering by path: /json (a large JSON body), /small,
/// /png, /encoded (already br), /chunked (JSON, chunked), /keep (JSON
/// with no-transform).
fn backend() -> SocketAddr {
    answering_backend(|head| {
        let path = path_of(head);
        let big = json(200);
        let (ty, extra, body) = match path.rsplit('/').next().unwrap_or("") {
            "small" => ("application/json", "", json(1)),
            "png" => ("image/png", "", big),
            "encoded" => ("application/json", "Content-Encoding: br\r\n", big),
            "keep" => ("application/json", "Cache-Control: no-transform\r\n", big),
            _ => ("application/json", "", big),
        };
        let answer = if path.ends_with("/chunked") {
            let (a, b) = body.split_at(body.len() / 2);
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {ty}\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
                a.len(),
                b.len()
            )
        } else {
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {ty}\r\n{extra}Content-Length: {}\r\n\r\n{body}",
                body.len()
            )
        };
        (answer, false)
    })
}

/// (status, Content-Encoding, Vary, the body as curl decoded it).
fn fetch(addr: SocketAddr, path: &str, extra: &[&str]) -> (String, String, String, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-D", "-", "--max-time", "10"])
        .args(extra)
        .arg(format!("http://{addr}{path}"));
    let out = run_bounded(&mut cmd, None, Duration::from_secs(20), "needs curl");
    assert!(out.ok(), "{}", out.all());
    let (head, body) = out
        .stdout
        .split_once("\r\n\r\n")
        .unwrap_or((&out.stdout, ""));
    let status = head.split(' ').nth(1).unwrap_or("?").to_string();
    let one = |n: &str| field_values(head, n).join(",");
    (
        status,
        one("content-encoding"),
        one("vary"),
        body.to_string(),
    )
}

fn gzip_as_nginx_compresses(d: Driver) {
    let up = backend();
    let site = temp_dir("gzip-site");
    let css: String = (0..2000)
        .map(|i| format!(".c{i} {{ color: red; }}\n"))
        .collect();
    std::fs::write(site.join("big.css"), &css).unwrap();
    std::fs::write(site.join("page.html"), "<p>plain page</p>\n").unwrap();
    // The precompressed twin says something else, so the test sees which
    // one was sent.
    let gz = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(b"<p>precompressed page</p>\n").unwrap();
        e.finish().unwrap()
    };
    std::fs::write(site.join("page.html.gz"), gz).unwrap();
    let s = site.display();
    let ret: String = "ok ".repeat(100);
    let rw = Ringway::start(
        &format!(
            r#"
[servers.app]
listen = ["127.0.0.1:0"]
gzip = true
gzip_types = ["application/json", "text/css"]
gzip_min_length = 100
gzip_vary = true

[servers.app.locations."/api/"]
proxy_pass = "http://{up}"

[servers.app.locations."/off/"]
proxy_pass = "http://{up}"
gzip = false

[servers.app.locations."/static/"]
alias = "{s}/"

[servers.app.locations."/pre/"]
alias = "{s}/"
gzip_static = true

[servers.app.locations."/pre-only/"]
alias = "{s}/"
gzip = false
gzip_static = true

[servers.app.locations."= /ret"]
default_type = "application/json"
return = {{ status = 200, body = "{ret}" }}
"#
        ),
        d,
    );
    let big = json(200);
    let gzip: &[&str] = &["--compressed"];
    let none: &[&str] = &[];
    let range: &[&str] = &["--compressed", "-r", "0-99"];
    let http10: &[&str] = &["--compressed", "--http1.0"];
    // (path, curl options, gzipped?, body)
    let cases: Vec<(&str, &[&str], bool, String)> = vec![
        ("/api/json", gzip, true, big.clone()),
        ("/api/chunked", gzip, true, big.clone()),
        ("/api/png", gzip, false, big.clone()),
        ("/api/small", gzip, false, json(1)),
        ("/off/json", gzip, false, big.clone()),
        ("/api/json", none, false, big.clone()),
        ("/api/json", http10, false, big.clone()),
        ("/static/big.css", gzip, true, css.clone()),
        (
            "/pre/page.html",
            gzip,
            true,
            "<p>precompressed page</p>\n".into(),
        ),
        ("/pre/page.html", none, false, "<p>plain page</p>\n".into()),
        // gzip_static works with gzip off; nothing else is compressed there.
        (
            "/pre-only/page.html",
            gzip,
            true,
            "<p>precompressed page</p>\n".into(),
        ),
        ("/pre-only/big.css", gzip, false, css.clone()),
        ("/ret", gzip, true, ret.clone()),
    ];
    let check = |who: &str, addr: SocketAddr| {
        for (path, opts, gzipped, body) in &cases {
            let (status, ce, vary, got) = fetch(addr, path, opts);
            assert!(
                status == "200" || status == "206",
                "{who} {path} {opts:?}: {status}"
            );
            assert_eq!(
                ce == "gzip",
                *gzipped,
                "{who} {path} {opts:?}: Content-Encoding {ce:?}"
            );
            if *gzipped {
                assert_eq!(vary, "Accept-Encoding", "{who} {path}: Vary");
            }
            assert!(
                &got == body,
                "{who} {path} {opts:?}: body of {} bytes, {} wanted: {:?}",
                got.len(),
                body.len(),
                &got[..got.len().min(200)]
            );
        }
    };
    check("ringway", rw.addr("app"));
    // A Range answer is the range, uncompressed (the issue's rule); nginx
    // drops the range and sends the whole file gzipped instead.
    let (status, ce, _, got) = fetch(rw.addr("app"), "/static/big.css", range);
    assert_eq!((status.as_str(), ce.as_str()), ("206", ""));
    assert!(got == css[..100], "{got:?}");
    // Not nginx's: no-transform is honoured.
    let (_, ce, _, got) = fetch(rw.addr("app"), "/api/keep", gzip);
    assert!(ce.is_empty() && got == big, "{ce:?}, {} bytes", got.len());

    let Some(bin) = nginx::binary() else { return };
    let ng = Nginx::start(
        &bin,
        "gzip-nginx",
        "",
        &format!(
            "types {{ text/css css; text/html html; }} \
             gzip on; gzip_types application/json text/css; gzip_min_length 100; gzip_vary on; \
             location /api/ {{ proxy_pass http://{up}; }} \
             location /off/ {{ proxy_pass http://{up}; gzip off; }} \
             location /static/ {{ alias {s}/; }} \
             location /pre/ {{ alias {s}/; gzip_static on; }} \
             location /pre-only/ {{ alias {s}/; gzip off; gzip_static on; }} \
             location = /ret {{ default_type application/json; return 200 \"{ret}\"; }}"
        ),
    );
    check("nginx", ng.addr);
    let (status, ce, _, got) = fetch(ng.addr, "/static/big.css", range);
    assert_eq!((status.as_str(), ce.as_str()), ("200", "gzip"));
    assert!(got == css, "nginx: the whole file");
    let (_, ce, _, _) = fetch(ng.addr, "/api/keep", gzip);
    assert_eq!(ce, "gzip", "nginx compresses a no-transform answer");
}
