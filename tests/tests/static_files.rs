//! Static files: SPA fallback with try_files, index and directory
//! redirects, alias, validators (304), byte ranges (206/416), HEAD, large
//! files (sendfile), add_header and redirects, path traversal.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ringway_tests::*;

both_drivers!(
    spa_fallback_serves_index_for_deep_links,
    ranges_validators_and_large_files,
    traversal_never_leaves_the_root,
    a_swapped_root_symlink_moves_the_root,
    index_alias_redirects_and_headers,
    keep_alive_across_static_answers,
);

const INDEX: &str = "<!doctype html><title>app</title>\n";

/// A site: index.html, app.js, docs/index.html, big.bin (300 KiB).
fn site(tag: &str) -> std::path::PathBuf {
    let root = temp_dir(tag).join("www");
    std::fs::create_dir_all(root.join("docs")).unwrap();
    std::fs::create_dir_all(root.join("assets/img")).unwrap();
    std::fs::write(root.join("index.html"), INDEX).unwrap();
    std::fs::write(root.join("app.js"), "console.log('app');\n").unwrap();
    std::fs::write(root.join("docs/index.html"), "docs home\n").unwrap();
    std::fs::write(root.join("assets/img/logo.svg"), "<svg/>").unwrap();
    std::fs::write(root.join("big.bin"), big_content()).unwrap();
    root
}

fn big_content() -> Vec<u8> {
    (0..300 * 1024u32).map(|i| (i * 7 % 251) as u8).collect()
}

fn get(addr: SocketAddr, path: &str, headers: &str) -> (String, Vec<u8>) {
    let req = format!("GET {path} HTTP/1.1\r\nHost: app\r\nConnection: close\r\n{headers}\r\n");
    split(raw_bytes(addr, req.as_bytes()))
}

fn raw_bytes(addr: SocketAddr, req: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(req).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out)
        .expect("read until the proxy closes");
    out
}

fn split(raw: Vec<u8>) -> (String, Vec<u8>) {
    let at = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {:?}", String::from_utf8_lossy(&raw)))
        + 4;
    (
        String::from_utf8_lossy(&raw[..at]).into_owned(),
        raw[at..].to_vec(),
    )
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn app_config(root: &Path) -> String {
    format!(
        r#"
[servers.app]
listen = ["127.0.0.1:0"]
[servers.app.locations."= /health"]
return = {{ status = 200, body = "OK" }}
[servers.app.locations."/"]
root = "{}"
try_files = ["$uri", "/index.html"]
"#,
        root.display()
    )
}

fn spa_fallback_serves_index_for_deep_links(d: Driver) {
    let root = site("spa");
    let rw = Ringway::start(&app_config(&root), d);
    let addr = rw.addr("app");

    for path in ["/app/deep/link", "/", "/settings?tab=2", "/docs"] {
        let (head, body) = get(addr, path, "");
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{path}: {head}");
        assert_eq!(
            header(&head, "content-type"),
            Some("text/html; charset=utf-8")
        );
        assert_eq!(body, INDEX.as_bytes(), "{path}");
    }
    let (head, body) = get(addr, "/app.js", "");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(
        header(&head, "content-type"),
        Some("application/javascript; charset=utf-8")
    );
    assert_eq!(body, b"console.log('app');\n");
    let (head, body) = get(addr, "/assets/img/logo.svg", "");
    assert_eq!(
        header(&head, "content-type"),
        Some("image/svg+xml"),
        "{head}"
    );
    assert_eq!(body, b"<svg/>");
    // The exact location still wins over the static "/".
    let (head, body) = get(addr, "/health", "");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(body, b"OK");
    // Not a static method.
    let raw = raw_bytes(
        addr,
        b"POST /app.js HTTP/1.1\r\nHost: app\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    let (head, _) = split(raw);
    assert!(head.starts_with("HTTP/1.1 405 "), "{head}");
    assert_eq!(header(&head, "allow"), Some("GET, HEAD"));
}

fn curl(args: &[&str]) -> (String, Vec<u8>) {
    let out = Command::new("curl")
        .args(["-s", "-S", "-i", "--max-time", "10"])
        .args(args)
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    split(out.stdout)
}

fn ranges_validators_and_large_files(d: Driver) {
    let root = site("range");
    let rw = Ringway::start(&app_config(&root), d);
    let url = format!("http://{}/big.bin", rw.addr("app"));
    let content = big_content();

    // Whole file: 300 KiB goes out with sendfile.
    let (head, body) = curl(&[&url]);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(header(&head, "content-length"), Some("307200"));
    assert_eq!(header(&head, "accept-ranges"), Some("bytes"));
    assert_eq!(
        header(&head, "content-type"),
        Some("application/octet-stream")
    );
    assert!(body == content, "body differs ({} bytes)", body.len());
    let etag = header(&head, "etag").expect("ETag").to_string();
    let last_modified = header(&head, "last-modified")
        .expect("Last-Modified")
        .to_string();

    // A middle range, a suffix range, an open range (large: sendfile at an offset).
    let (head, body) = curl(&["-r", "1000-1999", &url]);
    assert!(
        head.starts_with("HTTP/1.1 206 Partial Content\r\n"),
        "{head}"
    );
    assert_eq!(
        header(&head, "content-range"),
        Some("bytes 1000-1999/307200")
    );
    assert_eq!(body, &content[1000..2000]);
    let (head, body) = curl(&["-r", "-100", &url]);
    assert!(head.starts_with("HTTP/1.1 206 "), "{head}");
    assert_eq!(body, &content[content.len() - 100..]);
    let (head, body) = curl(&["-r", "100000-", &url]);
    assert_eq!(
        header(&head, "content-range"),
        Some("bytes 100000-307199/307200")
    );
    assert!(body == content[100_000..], "open range differs");
    // Past the end.
    let (head, _) = curl(&["-r", "400000-500000", &url]);
    assert!(head.starts_with("HTTP/1.1 416 "), "{head}");
    assert_eq!(header(&head, "content-range"), Some("bytes */307200"));
    // If-Range with a stale tag: the whole file.
    let (head, _) = curl(&["-r", "0-9", "-H", "If-Range: \"0-0\"", &url]);
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");

    // Validators.
    let (head, body) = curl(&["-H", &format!("If-None-Match: {etag}"), &url]);
    assert!(head.starts_with("HTTP/1.1 304 Not Modified\r\n"), "{head}");
    assert!(body.is_empty());
    assert_eq!(header(&head, "etag"), Some(etag.as_str()));
    let (head, _) = curl(&["-H", &format!("If-Modified-Since: {last_modified}"), &url]);
    assert!(head.starts_with("HTTP/1.1 304 "), "{head}");
    let (head, _) = curl(&[
        "-H",
        "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT",
        &url,
    ]);
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    let (head, _) = curl(&["-H", "If-None-Match: \"other\"", &url]);
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");

    // HEAD: the same head, no body.
    let (head, body) = curl(&["-I", &url]);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(header(&head, "content-length"), Some("307200"));
    assert!(body.is_empty());
}

fn traversal_never_leaves_the_root(d: Driver) {
    let base = temp_dir("traversal");
    let root = base.join("www");
    std::fs::create_dir_all(root.join("pub")).unwrap();
    std::fs::write(root.join("pub/ok.txt"), "fine").unwrap();
    std::fs::write(base.join("secret.txt"), "TOP-SECRET").unwrap();
    std::os::unix::fs::symlink(base.join("secret.txt"), root.join("pub/link.txt")).unwrap();
    std::os::unix::fs::symlink(&base, root.join("up")).unwrap();
    let config = format!(
        r#"
[servers.app]
listen = ["127.0.0.1:0"]
[servers.app.locations."/"]
root = "{}"
"#,
        root.display()
    );
    let rw = Ringway::start(&config, d);
    let addr = rw.addr("app");
    let (head, body) = get(addr, "/pub/ok.txt", "");
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert_eq!(body, b"fine");
    for path in [
        "/../secret.txt",
        "/pub/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/pub/%2E%2E/%2e%2e/secret.txt",
        "/pub/..%2f..%2fsecret.txt",
        "/pub/link.txt",
        "/up/secret.txt",
        "/pub/ok.txt%00.html",
    ] {
        let (head, body) = get(addr, path, "");
        assert!(
            head.starts_with("HTTP/1.1 400 ") || head.starts_with("HTTP/1.1 404 "),
            "{path}: {head}"
        );
        assert!(
            !String::from_utf8_lossy(&body).contains("TOP-SECRET"),
            "{path} leaked the file"
        );
    }
    // The proxy keeps serving.
    let (head, _) = get(addr, "/pub/ok.txt", "");
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    // The log is read by another thread: wait for the line (bounded).
    rw.wait_for_log("outside the root", Duration::from_secs(5));
}

/// A deploy that swaps the `current` symlink a root goes through: the new
/// release is served, and a link in it back into the old release (now
/// outside the root) is refused, though the old release was the root's
/// real path when the worker last looked.
fn a_swapped_root_symlink_moves_the_root(d: Driver) {
    let base = temp_dir("swap");
    for (release, text) in [("v1", "one"), ("v2", "two")] {
        std::fs::create_dir_all(base.join(release)).unwrap();
        std::fs::write(base.join(release).join("a.txt"), text).unwrap();
    }
    std::os::unix::fs::symlink(base.join("v1/a.txt"), base.join("v2/old.txt")).unwrap();
    let current = base.join("current");
    std::os::unix::fs::symlink(base.join("v1"), &current).unwrap();
    let config = format!(
        r#"
[servers.app]
listen = ["127.0.0.1:0"]
[servers.app.locations."/"]
root = "{}"
"#,
        current.display()
    );
    let rw = Ringway::start(&config, d);
    let addr = rw.addr("app");
    let (head, body) = get(addr, "/a.txt", "");
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert_eq!(body, b"one");
    // Swap atomically, as deploy tools do (rename over the link).
    std::os::unix::fs::symlink(base.join("v2"), base.join("next")).unwrap();
    std::fs::rename(base.join("next"), &current).unwrap();
    let (head, body) = get(addr, "/a.txt", "");
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert_eq!(body, b"two");
    let (head, body) = get(addr, "/old.txt", "");
    assert!(head.starts_with("HTTP/1.1 404 "), "{head}");
    assert_ne!(body, b"one");
}

fn index_alias_redirects_and_headers(d: Driver) {
    let root = site("alias");
    let config = format!(
        r#"
[servers.app]
listen = ["127.0.0.1:0"]
[servers.app.locations."/"]
root = "{root}"
add_header = {{ X-Frame-Options = "DENY", X-Served-Uri = "$uri" }}
[servers.app.locations."/static/"]
alias = "{root}/assets/"
[servers.app.locations."/strict/"]
root = "{root}"
try_files = ["$uri", "$uri/", "=404"]
[servers.app.locations."= /old"]
return = {{ status = 301, location = "https://example.com/new?from=$uri" }}
"#,
        root = root.display()
    );
    let rw = Ringway::start(&config, d);
    let addr = rw.addr("app");

    // A directory without its slash: 301 to it (query kept); with it: index.
    let (head, _) = get(addr, "/docs?x=1", "");
    assert!(head.starts_with("HTTP/1.1 301 "), "{head}");
    assert_eq!(header(&head, "location"), Some("/docs/?x=1"));
    let (head, body) = get(addr, "/docs/", "");
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert_eq!(body, b"docs home\n");
    // add_header on a file answer, with variables.
    assert_eq!(header(&head, "x-frame-options"), Some("DENY"));
    assert_eq!(header(&head, "x-served-uri"), Some("/docs/"));
    // No file: 404 (no try_files here).
    let (head, _) = get(addr, "/missing.txt", "");
    assert!(head.starts_with("HTTP/1.1 404 "), "{head}");

    // alias swaps the location prefix for the directory.
    let (head, body) = get(addr, "/static/img/logo.svg", "");
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert_eq!(body, b"<svg/>");
    assert!(header(&head, "x-frame-options").is_none(), "{head}");

    // try_files "=404" as the last resort.
    let (head, _) = get(addr, "/strict/nothing", "");
    assert!(head.starts_with("HTTP/1.1 404 "), "{head}");
    let (head, body) = get(addr, "/strict/../app.js", "");
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert_eq!(body, b"console.log('app');\n");

    // return with a redirect code and Location built from variables.
    let (head, _) = get(addr, "/old", "");
    assert!(
        head.starts_with("HTTP/1.1 301 Moved Permanently\r\n"),
        "{head}"
    );
    assert_eq!(
        header(&head, "location"),
        Some("https://example.com/new?from=/old")
    );
}

fn keep_alive_across_static_answers(d: Driver) {
    let root = site("ka");
    let rw = Ringway::start(&app_config(&root), d);
    let mut s = TcpStream::connect(rw.addr("app")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // Pipelined: a file, the SPA fallback, a 304, a health check.
    s.write_all(
        b"GET /app.js HTTP/1.1\r\nHost: app\r\n\r\n\
          GET /deep/link HTTP/1.1\r\nHost: app\r\n\r\n\
          GET /app.js HTTP/1.1\r\nHost: app\r\nIf-Modified-Since: Fri, 01 Jan 2100 00:00:00 GMT\r\n\r\n\
          GET /health HTTP/1.1\r\nHost: app\r\n\r\n",
    )
    .unwrap();
    let (head, body) = read_response(&mut s);
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert!(head.contains("Connection: keep-alive"), "{head}");
    assert_eq!(body, "console.log('app');\n");
    let (head, body) = read_response(&mut s);
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert_eq!(body, INDEX);
    let (head, body) = read_response(&mut s);
    assert!(head.starts_with("HTTP/1.1 304 "), "{head}");
    assert_eq!(body, "");
    let (head, body) = read_response(&mut s);
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert_eq!(body, "OK");
}
