//! The importer on small configurations: what each directive becomes,
//! what is reported lost, and that the output is a ringway.toml ringway
//! accepts.

use std::path::{Path, PathBuf};

use super::{import, nginx_time, Imported};

fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ringway-convert-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run(tag: &str, conf: &str) -> Imported {
    let d = dir(tag);
    let f = d.join("nginx.conf");
    std::fs::write(&f, conf).unwrap();
    let i = import(&f, None).unwrap();
    if let Err(e) = crate::parse_str_with(&i.toml, Path::new("out.toml"), crate::Resolve::Loopback)
    {
        panic!("the output does not pass -t: {e}\n{}", i.toml);
    }
    i
}

#[test]
fn nginx_times() {
    assert_eq!(nginx_time("60").as_deref(), Some("60s"));
    assert_eq!(nginx_time("3600s").as_deref(), Some("3600s"));
    assert_eq!(nginx_time("1m30s").as_deref(), Some("90s"));
    assert_eq!(nginx_time("1h 30m").as_deref(), Some("5400s"));
    assert_eq!(nginx_time("500ms").as_deref(), Some("500ms"));
    assert_eq!(nginx_time("1d").as_deref(), Some("86400s"));
    assert_eq!(nginx_time("x"), None);
    assert_eq!(nginx_time(""), None);
}

#[test]
fn the_websocket_idiom_and_the_seed_shapes() {
    let i = run(
        "idiom",
        "map $http_upgrade $connection_upgrade { default upgrade; '' close; }\n\
         upstream chat { hash $remote_addr consistent; server 127.0.0.1:3000 weight=2 max_fails=3 fail_timeout=10s; server 127.0.0.1:3001 backup; keepalive 16; }\n\
         server {\n listen 8080 default_server;\n server_name ws.example.com;\n\
           location /ws/ { proxy_pass http://chat; proxy_http_version 1.1;\n\
             proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection $connection_upgrade;\n\
             proxy_set_header Host $host; proxy_read_timeout 1h; }\n\
           location /api/ { proxy_pass http://127.0.0.1:4000/; }\n\
           location = /health { return 200 \"OK\"; }\n\
         }\n",
    );
    assert!(i.losses.is_empty(), "{:?}", i.losses);
    let t = &i.toml;
    for want in [
        "[upstreams.chat]",
        "balance = \"hash\"",
        "hash_key = \"$remote_addr\"",
        "{ addr = \"127.0.0.1:3000\", weight = 2 }",
        "{ addr = \"127.0.0.1:3001\", backup = true }",
        "max_fails = 3",
        "fail_timeout = \"10s\"",
        "keepalive = 16",
        "listen = [\"8080\"]",
        "server_name = [\"ws.example.com\"]",
        "[servers.\"ws.example.com\".locations.\"/ws/\"]",
        "proxy_read_timeout = \"3600s\"  # nginx.conf:8",
        "Host = \"$host\"",
        "ringway forwards an upgrade itself",
        // No Upgrade lines for /api/: nginx passes none, neither does ringway.
        "upgrade = []",
        "return = { status = 200, body = \"OK\" }",
    ] {
        assert!(t.contains(want), "no {want:?} in\n{t}");
    }
    assert!(!t.contains("Upgrade = "), "{t}");
    assert!(i.ignored.iter().any(|(n, _)| n == "map"));
    assert!(i.ignored.iter().any(|(n, _)| n == "proxy_http_version"));
}

#[test]
fn inheritance_nested_locations_and_losses() {
    let i = run(
        "inherit",
        "http {\n proxy_read_timeout 30s;\n add_header X-A a;\n gzip on;\n sendfile on;\n\
         server {\n listen 127.0.0.1:8081;\n add_header X-S s always;\n\
           location / { root /srv;\n location ~ \\.php$ { return 403; }\n location /inner/ { add_header X-L l; } }\n\
           location /p/ { proxy_pass http://127.0.0.1:1; proxy_cache zone1; if ($x) { return 404; } }\n\
         }\n}\n",
    );
    let t = &i.toml;
    // http-level settings reach the locations; the server's add_header
    // replaces http's, and the nested location's its parent's.
    assert!(t.contains("proxy_read_timeout = \"30s\""), "{t}");
    assert!(t.contains("X-S = { value = \"s\", always = true }"), "{t}");
    assert!(!t.contains("X-A"), "{t}");
    assert!(
        t.contains("[servers.default.locations.\"/inner/\".add_header]\nX-L"),
        "{t}"
    );
    assert!(
        t.contains("[servers.default.locations.\"~ \\\\.php$\"]")
            || t.contains("[servers.default.locations.'~ \\.php$']"),
        "{t}"
    );
    // Reported: the unanchored nested regex, proxy_cache (not planned),
    // and `if`.
    let lost: Vec<&str> = i.losses.iter().map(|l| l.directive.as_str()).collect();
    assert_eq!(lost, ["location", "proxy_cache", "if"], "{:?}", i.losses);
    assert!(
        i.losses[1].why.contains("does not cache"),
        "{}",
        i.losses[1]
    );
    assert!(
        i.losses[2].to_string().starts_with("nginx.conf:12: if: "),
        "{}",
        i.losses[2]
    );
    assert!(t.contains("# NOT CARRIED OVER: nginx.conf:12: if:"), "{t}");
    assert!(i
        .ignored
        .iter()
        .any(|(n, at)| n == "sendfile" && at == "nginx.conf:5"));
}

#[test]
fn server_level_returns_and_tls() {
    let i = run(
        "tls",
        "server { listen 80; server_name _; return 301 https://$host$request_uri; }\n\
         server { listen 127.0.0.1:8443 ssl; http2 on; server_name a.test;\n\
           ssl_certificate /c.pem; ssl_certificate_key /k.pem; ssl_protocols TLSv1 TLSv1.2 TLSv1.3;\n\
           ssl_session_timeout 1h; ssl_session_cache shared:SSL:10m; ssl_session_tickets off;\n\
           return 302 /moved;\n location / { return 204; } }\n\
         server { listen 127.0.0.1:9000 default_server; return 444; }\n",
    );
    let t = &i.toml;
    assert!(
        t.contains("[servers.default.locations.\"/\"]\nreturn = { status = 301, location = \"https://$host$request_uri\" }"),
        "{t}"
    );
    assert!(t.contains("tls = { cert = \"/c.pem\", key = \"/k.pem\", protocols = [\"TLSv1.2\", \"TLSv1.3\"], session_timeout = \"3600s\", session_cache = true, session_tickets = false }"), "{t}");
    assert!(t.contains("http2 = true"), "{t}");
    assert!(t.contains("rewrite = [\"^ /moved? redirect\"]"), "{t}");
    assert!(t.contains("return = { status = 444 }"), "{t}");
}

#[test]
fn templated_files_fail_cleanly() {
    let d = dir("tpl");
    let f = d.join("nginx.conf");
    std::fs::write(&f, "server {\n  server_name {{ domain }};\n}\n").unwrap();
    let e = import(&f, None).unwrap_err();
    assert_eq!(e.line, 2);
    assert!(
        e.to_string().ends_with("nginx.conf:2: unexpected \"{\""),
        "{e}"
    );
}
