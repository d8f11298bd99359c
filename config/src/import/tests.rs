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
    // Each loss says why and what to do.
    assert!(
        i.losses[2]
            .why
            .contains("express the condition as locations"),
        "{}",
        i.losses[2]
    );
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
        t.contains("[servers.default-2.locations.\"/\"]\nreturn = { status = 301, location = \"https://$host$request_uri\" }"),
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

#[test]
fn default_servers_keep_their_address() {
    // Marked default, listed second: it goes first in the output.
    let i = run(
        "default",
        "server { listen 127.0.0.1:8080; server_name a.test; location / { return 200 a; } }\n\
         server { listen 127.0.0.1:8080 default_server; server_name _; location / { return 200 d; } }\n",
    );
    assert!(i.losses.is_empty(), "{:?}", i.losses);
    let first = i.toml.find("[servers.default]").unwrap();
    assert!(
        first < i.toml.find("[servers.\"a.test\"]").unwrap(),
        "{}",
        i.toml
    );
    // The first listed is nginx's default; ringway would take the
    // nameless one: reported.
    let i = run(
        "default2",
        "server { listen 127.0.0.1:8080; server_name a.test; location / { return 200 a; } }\n\
         server { listen 127.0.0.1:8080; location / { return 200 d; } }\n",
    );
    assert_eq!(i.losses.len(), 1, "{:?}", i.losses);
    assert!(
        i.losses[0]
            .to_string()
            .starts_with("nginx.conf:1: server: nginx's default server for 127.0.0.1:8080"),
        "{}",
        i.losses[0]
    );
}

#[test]
fn zones_limits_real_ip_and_logs() {
    let i = run(
        "zones",
        "http {\n limit_req_zone $binary_remote_addr zone=per_ip:10m rate=10r/s;\n\
         limit_conn_zone $binary_remote_addr zone=conn:10m;\n\
         set_real_ip_from 10.0.0.0/8; set_real_ip_from 192.168.0.0/16; real_ip_header X-Forwarded-For; real_ip_recursive on;\n\
         log_format main '$remote_addr [$time_local] \"$request\" $status';\n\
         access_log /var/log/ringway/access.log main;\n\
         server { listen 127.0.0.1:8080;\n location /api/ { limit_req zone=per_ip burst=20 nodelay; limit_conn conn 10; limit_req_status 429; proxy_pass http://127.0.0.1:3000; } }\n}\n",
    );
    assert!(i.losses.is_empty(), "{:?}", i.losses);
    for want in [
        "[limit_req_zones.per_ip]\nkey = \"$binary_remote_addr\"  # nginx.conf:2\nsize = \"10m\"  # nginx.conf:2\nrate = \"10r/s\"",
        "[limit_conn_zones.conn]",
        "set_real_ip_from = [\"10.0.0.0/8\", \"192.168.0.0/16\"]",
        "header = \"X-Forwarded-For\"",
        "recursive = true",
        "access_log = \"/var/log/ringway/access.log\"",
        "log_format = '$remote_addr [$time_local] \"$request\" $status'",
        "limit_req = { zone = \"per_ip\", burst = 20, nodelay = true }",
        "limit_conn = { zone = \"conn\", max = 10 }",
        "limit_req_status = 429",
    ] {
        assert!(i.toml.contains(want), "no {want:?} in\n{}", i.toml);
    }
}

/// The output without its `# file:line` notes (what stays the same when
/// only the nginx file's layout changes).
fn settings(toml: &str) -> String {
    toml.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split("  # ").next().unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_same_configuration_written_otherwise_imports_the_same() {
    // One configuration, and its twin: other whitespace, comments,
    // quoting, escapes, and one server moved into an included file.
    let one = "map $http_upgrade $connection_upgrade { default upgrade; '' close; }\n\
        upstream app { least_conn; server 127.0.0.1:3000 weight=3; server 127.0.0.1:3001; keepalive 8; }\n\
        server { listen 127.0.0.1:8080; server_name a.test www.a.test;\n\
          location /ws/ { proxy_pass http://app; proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection $connection_upgrade; proxy_read_timeout 1h; }\n\
          location ~* \\.(css|js)$ { root /srv/a; expires 7d; }\n\
          location = /health { return 200 \"ok\"; } }\n";
    let d = dir("twin");
    std::fs::write(
        d.join("part.conf"),
        "# the server, in a file of its own\nserver {\n\tlisten\t127.0.0.1:8080 ;\n\tserver_name \"a.test\" 'www.a.test';\n\
         \tlocation /ws/ {\n\t\tproxy_pass http://app ;\n\t\tproxy_set_header Upgrade $http_upgrade;\n\
         \t\tproxy_set_header Connection $connection_upgrade;\n\t\tproxy_read_timeout 60m;\n\t}\n\
         \tlocation ~* \"\\.(css|js)$\" {\n\t\troot /srv/a;\n\t\texpires 7d;\n\t}\n\
         \tlocation = /health {\n\t\treturn 200 ok;\n\t}\n}\n",
    )
    .unwrap();
    std::fs::write(
        d.join("nginx.conf"),
        "map $http_upgrade $connection_upgrade {\n  default upgrade;\n  \"\" close;\n}\n\n\
         upstream app {\n  least_conn;\n  server 127.0.0.1:3000 weight=3;\n  server 127.0.0.1:3001;\n  keepalive 8;\n}\n\
         include part.conf;\n",
    )
    .unwrap();
    let twin = import(&d.join("nginx.conf"), None).unwrap();
    let first = run("twin-one", one);
    assert_eq!(settings(&first.toml), settings(&twin.toml));
    // And importing is deterministic.
    assert_eq!(run("twin-one", one).toml, first.toml);
}

#[test]
fn a_server_with_tls_and_plain_listens_becomes_two() {
    let i = run(
        "split",
        "server { listen 127.0.0.1:8080; listen 127.0.0.1:8443 ssl; listen localhost:8081 http2;\n\
           server_name a.test; ssl_certificate /c.pem; ssl_certificate_key /k.pem;\n\
           location / { return 204; } }\n",
    );
    let t = &i.toml;
    assert!(
        t.contains("[servers.\"a.test\"]\nlisten = [\"127.0.0.1:8080\", \"127.0.0.1:8081\"]"),
        "{t}"
    );
    assert!(t.contains("[servers.\"a.test-tls\"]\nlisten = [\"127.0.0.1:8443\"]  # nginx.conf:1\ntls = { cert = \"/c.pem\", key = \"/k.pem\" }"), "{t}");
    // nginx's http2 on a plain listen is h2c.
    assert!(t.contains("http2 = \"h2c\""), "{t}");
    assert!(
        t.contains("[servers.\"a.test-tls\".locations.\"/\"]\nreturn = { status = 204 }"),
        "{t}"
    );
}

/// A fixture's twin: the same directives with its comments dropped and
/// all its whitespace folded to single spaces, on one line.
fn twin(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        // A `#` where a word starts begins a comment (the fixtures have
        // none inside quotes).
        let comment = line
            .find(" #")
            .map(|i| i + 1)
            .or(line.trim_start().starts_with('#').then_some(0));
        out.push_str(comment.map_or(line, |i| &line[..i]));
        out.push(' ');
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn each_seed_fixture_and_its_twin_import_the_same() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/import");
    for name in ["seed000", "seed001", "seed002", "seed003", "seed004"] {
        let text = std::fs::read_to_string(fixtures.join(format!("{name}.conf"))).unwrap();
        let first = run(name, &text);
        // Stable: the same file imports the same.
        assert_eq!(run(name, &text).toml, first.toml, "{name}");
        let other = run(&format!("{name}-twin"), &twin(&text));
        assert_eq!(settings(&first.toml), settings(&other.toml), "{name}");
    }
}

#[test]
fn a_variable_ringway_lacks_is_a_loss_not_a_broken_output() {
    let i = run(
        "vars",
        "server { listen 127.0.0.1:8080; set $tier gold;\n\
           location ~ ^/rooms/(?<room>[a-z]+)$ {\n\
             proxy_pass http://127.0.0.1:3000/r/$room;\n\
             proxy_set_header X-Request-Id $request_id;\n\
             add_header X-Tier $tier; } }\n",
    );
    assert_eq!(i.losses.len(), 1, "{:?}", i.losses);
    assert_eq!(
        i.losses[0].to_string(),
        "nginx.conf:4: proxy_set_header: uses $request_id, a variable ringway does not have"
    );
    assert!(
        i.toml
            .contains("proxy_pass = \"http://127.0.0.1:3000/r/$room\""),
        "{}",
        i.toml
    );
    assert!(i.toml.contains("X-Tier = \"$tier\""), "{}", i.toml);
}

/// nginx 1.27.3's `resolve` with its `resolver`: re-resolved members,
/// the resolver in `[runtime]`; the group's `zone` needs nothing here.
#[test]
fn resolve_and_the_resolver_carry_over() {
    let i = run(
        "resolve",
        "http {\n resolver 127.0.0.1:5353 10.0.0.2 valid=30s;\n\
         upstream chat { zone chat 64k; server chat.internal:3000 resolve; server 127.0.0.1:3001; }\n\
         server { listen 127.0.0.1:8080;\n location / { proxy_pass http://chat; } }\n}\n",
    );
    assert!(i.losses.is_empty(), "{:?}", i.losses);
    for want in [
        "resolver = [\"127.0.0.1:5353\", \"10.0.0.2\"]",
        "resolver_valid = \"30s\"",
        "{ addr = \"chat.internal:3000\", resolve = true }",
    ] {
        assert!(i.toml.contains(want), "no {want:?} in\n{}", i.toml);
    }
    let named = run(
        "resolver-name",
        "http {\n resolver localhost ipv6=off;\n server { listen 127.0.0.1:8080; location / { return 204; } }\n}\n",
    );
    assert_eq!(named.losses.len(), 2, "{:?}", named.losses);
}
