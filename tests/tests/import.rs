//! `ringway import`: the command line (output, losses on stderr,
//! `--strict`, exit codes, a templated file) and, for the fixtures in
//! `tests/fixtures/import/`, nginx on the original beside ringway on the
//! imported file answering the same requests — WebSocket echo through
//! the upgrade location, REST, health, redirects — on both drivers.
//!
//! A fixture's addresses are those of the deployment it copies
//! (`listen 80`, `localhost:3000`); the test puts a free port and its own
//! backends in their place in the nginx text, before importing it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ringway_tests::nginx::Nginx;
use ringway_tests::tls_support::*;
use ringway_tests::*;

both_drivers!(
    seed000_behaves_as_nginx,
    seed001_behaves_as_nginx,
    seed002_behaves_as_nginx,
    seed003_behaves_as_nginx,
    seed004_behaves_as_nginx,
    deployment_shapes_behave_as_nginx,
);

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/import")
        .join(name)
}

/// `ringway import ARGS`: (exit code, stdout, stderr).
fn import(args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new(binary());
    cmd.arg("import").args(args);
    let out = run_bounded(&mut cmd, None, Duration::from_secs(20), "ringway import");
    (out.code.unwrap_or(-1), out.stdout, out.stderr)
}

#[test]
fn the_command_line() {
    let dir = temp_dir("import-cli");
    // A lossy file: written with the losses on stderr, or refused whole
    // with --strict.
    let lossy = dir.join("lossy.conf");
    std::fs::write(
        &lossy,
        "server {\n  listen 127.0.0.1:8080;\n  location / {\n    proxy_pass http://127.0.0.1:3000;\n    proxy_cache zone;\n  }\n}\n",
    )
    .unwrap();
    let out = dir.join("out.toml");
    let (code, _, err) = import(&["-o", out.to_str().unwrap(), lossy.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("lossy.conf:5: proxy_cache: ringway does not cache"),
        "{err}"
    );
    let toml = std::fs::read_to_string(&out).unwrap();
    assert!(
        toml.contains("# NOT CARRIED OVER: lossy.conf:5: proxy_cache"),
        "{toml}"
    );
    // The output passes `ringway -t`.
    let (tcode, tout, _) = config_test(&toml);
    assert_eq!(tcode, 0, "{tout}\n{toml}");

    let strict = dir.join("strict.toml");
    let (code, stdout, err) = import(&[
        "--strict",
        "-o",
        strict.to_str().unwrap(),
        lossy.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--strict"), "{err}");
    assert!(stdout.is_empty() && !strict.exists());

    // To stdout when no -o.
    let (code, stdout, _) = import(&[lossy.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("[servers.default.locations.\"/\"]"),
        "{stdout}"
    );

    // A templated file fails cleanly, naming its line.
    let tpl = dir.join("site.conf.j2");
    std::fs::write(&tpl, "server {\n  server_name {{ domain }};\n}\n").unwrap();
    let (code, stdout, err) = import(&[tpl.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(stdout.is_empty());
    assert!(err.contains("site.conf.j2:2: unexpected \"{\""), "{err}");
    // --prefix: where relative includes start.
    let prefix = dir.join("etc-nginx");
    std::fs::create_dir_all(prefix.join("sites")).unwrap();
    std::fs::write(
        prefix.join("sites/a.conf"),
        "server { listen 127.0.0.1:8080; location / { return 204; } }\n",
    )
    .unwrap();
    let main = dir.join("main.conf");
    std::fs::write(&main, "http { include sites/*.conf; }\n").unwrap();
    let (code, stdout, err) =
        import(&["--prefix", prefix.to_str().unwrap(), main.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        stdout.contains("return = { status = 204 }  # etc-nginx/sites/a.conf:1"),
        "{stdout}"
    );
    // A missing file, a bad argument.
    assert_eq!(import(&[dir.join("none.conf").to_str().unwrap()]).0, 2);
    assert_eq!(import(&["--nope", lossy.to_str().unwrap()]).0, 2);
}

/// The fixture's text with each (from, to) replaced.
fn placed(text: &str, swaps: &[(&str, String)]) -> String {
    let mut t = text.to_string();
    for (from, to) in swaps {
        assert!(t.contains(from), "{from} is not in the fixture");
        t = t.replace(from, to);
    }
    t
}

/// Import `text` (written as `name` in `dir`) and return the TOML.
fn imported(dir: &Path, name: &str, text: &str) -> String {
    let conf = dir.join(name);
    std::fs::write(&conf, text).unwrap();
    let out = dir.join(format!("{name}.toml"));
    let (code, _, err) = import(&["-o", out.to_str().unwrap(), conf.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    std::fs::read_to_string(out).unwrap()
}

/// What the fixture's requests get, the same way for either proxy.
fn answers(http: SocketAddr, https: SocketAddr) -> Vec<String> {
    let mut out = Vec::new();
    let (status, _, body) = get_once(http, "ws.example.com", "/health", "");
    out.push(format!("health {status} {body}"));
    out.push(format!(
        "ws {}",
        ws_echo_text(http, "/ws/chat", "through the import")
    ));
    let (status, _, _) = get_once(http, "ws.example.com", "/nothing", "");
    out.push(format!("no location {status}"));
    let api = curl(
        https,
        "app.example.com",
        &[
            // The test certificate names a.test, not the fixture's name.
            "-k",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{http_version}",
            &format!("https://app.example.com:{}/api/v1", https.port()),
        ],
    );
    out.push(format!("api {}", api.stdout));
    out
}

fn seed000_behaves_as_nginx(d: Driver) {
    let ws = Backend::start();
    let api = HttpBackend::start();
    let c = certs();
    let dir = temp_dir("import-seed000");
    let text = std::fs::read_to_string(fixture("seed000.conf")).unwrap();
    let swaps = |http: String, https: String| {
        vec![
            ("listen 80;", format!("listen {http};")),
            (
                "listen 443 ssl http2;",
                format!("listen {https} ssl http2;"),
            ),
            ("localhost:3000", ws.addr.to_string()),
            ("localhost:4000", api.addr.to_string()),
            (
                "/etc/letsencrypt/live/app.example.com/fullchain.pem",
                c.a_cert.display().to_string(),
            ),
            (
                "/etc/letsencrypt/live/app.example.com/privkey.pem",
                c.a_key.display().to_string(),
            ),
        ]
    };
    let toml = imported(
        &dir,
        "ringway.conf",
        &placed(&text, &swaps("127.0.0.1:0".into(), "127.0.0.2:0".into())),
    );
    let rw = Ringway::start(&toml, d);
    let ours = answers(rw.addr("ws.example.com"), rw.addr("app.example.com"));
    assert_eq!(ours[0], "health 200 OK");
    assert_eq!(ours[1], "ws through the import");
    assert_eq!(ours[3], "api 200 2");

    let Some(bin) = nginx::binary() else { return };
    let https = reserve_port();
    let ng = Nginx::start_with_http(
        &bin,
        "import-seed000-nginx",
        &placed(
            &text,
            // The harness's own server on {LISTEN} sets its options
            // (reuseport); a second server there may not.
            &swaps("{LISTEN}".into(), format!("{} reuseport", https.addr)),
        ),
        "",
        "server_name placeholder.invalid; return 204;",
    );
    let theirs = answers(ng.addr, https.addr);
    assert_eq!(ours, theirs);
}

/// A fixture with one listen line, imported and run beside nginx on the
/// original: `swaps` put the test's backends and directories in place of
/// the deployment's, `listen` is the fixture's listen line (its address
/// becomes a free one), `probe` asks both the same things. Returns what
/// ringway answered.
fn side_by_side(
    d: Driver,
    name: &str,
    listen: &str,
    swaps: Vec<(&str, String)>,
    probe: &dyn Fn(SocketAddr) -> Vec<String>,
) -> Vec<String> {
    let dir = temp_dir(&format!("import-{name}"));
    let text = std::fs::read_to_string(fixture(&format!("{name}.conf"))).unwrap();
    let with = |addr: String| {
        let mut all = swaps.clone();
        all.push((listen, format!("listen {addr};")));
        placed(&text, &all)
    };
    let toml = imported(&dir, &format!("{name}.conf"), &with("127.0.0.1:0".into()));
    let rw = Ringway::start(&without_runtime(&toml), d);
    let addr = *rw.addrs().values().next().expect("a listener");
    let ours = probe(addr);
    if let Some(bin) = nginx::binary() {
        let held = reserve_port();
        let conf = with(format!("{} reuseport", held.addr));
        let ng = Nginx::start_file(&bin, &format!("import-{name}-nginx"), &conf, held);
        assert_eq!(
            ours,
            probe(ng.addr),
            "{name}: ringway (left) and nginx (right)"
        );
    }
    ours
}

/// The path the WebSocket backend saw for the last upgrade.
fn last_path(b: &Backend) -> String {
    b.requests()
        .last()
        .map(|r| r.path.clone())
        .unwrap_or_default()
}

fn seed001_behaves_as_nginx(d: Driver) {
    let ws = Backend::start();
    let got = side_by_side(
        d,
        "seed001",
        "listen 8080;",
        vec![("localhost:9000", ws.addr.to_string())],
        &|a| {
            vec![
                ws_echo_text(a, "/ws/chat?x=1", "one"),
                // proxy_pass with a URI part: /ws/ becomes /.
                last_path(&ws),
                get_once(a, "h", "/elsewhere", "").0.to_string(),
            ]
        },
    );
    assert_eq!(got, ["one", "/chat?x=1", "404"]);
}

fn seed002_behaves_as_nginx(d: Driver) {
    let ws = Backend::start();
    let got = side_by_side(
        d,
        "seed002",
        "listen 8020;",
        vec![("192.168.100.10:8010", ws.addr.to_string())],
        &|a| vec![ws_echo_text(a, "/", "Hello"), last_path(&ws)],
    );
    assert_eq!(got, ["Hello", "/"]);
}

fn seed003_behaves_as_nginx(d: Driver) {
    let ws = Backend::start();
    let got = side_by_side(
        d,
        "seed003",
        "listen 80;",
        vec![("127.0.0.1:8080", ws.addr.to_string())],
        &|a| {
            vec![
                ws_echo_text(a, "/websocket", "hi"),
                last_path(&ws),
                get_once(a, "h", "/other", "").0.to_string(),
            ]
        },
    );
    assert_eq!(got, ["hi", "/websocket", "404"]);
}

fn seed004_behaves_as_nginx(d: Driver) {
    let ws = Backend::start();
    let www = temp_dir("import-seed004-www");
    std::fs::create_dir_all(www.join("static")).unwrap();
    std::fs::write(www.join("static/app.css"), "body{}\n").unwrap();
    let got = side_by_side(
        d,
        "seed004",
        "listen 80;",
        vec![
            ("127.0.0.1:8080", ws.addr.to_string()),
            ("/var/www/html", www.display().to_string()),
        ],
        &|a| {
            let (status, _, body) = get_once(a, "chat.example.com", "/static/app.css", "");
            vec![
                ws_echo_text(a, "/chat/room", "hello"),
                last_path(&ws),
                format!("{status} {}", body.trim()),
                get_once(a, "chat.example.com", "/static/none.css", "")
                    .0
                    .to_string(),
            ]
        },
    );
    assert_eq!(got, ["hello", "/chat/room", "200 body{}", "404"]);
}

/// The TOML without its `[runtime]` table (the test harness writes its
/// own: driver, one worker).
fn without_runtime(toml: &str) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in toml.lines() {
        if line.starts_with('[') {
            skipping = line == "[runtime]";
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[test]
fn worker_settings_become_runtime() {
    let dir = temp_dir("import-runtime");
    let toml = imported(
        &dir,
        "w.conf",
        "worker_processes 4;\nevents { worker_connections 1024; }\nworker_rlimit_nofile 65536;\nhttp { server { listen 127.0.0.1:0; location / { return 204; } } }\n",
    );
    assert!(
        toml.contains("[runtime]\nworkers = 4  # w.conf:1\nmax_connections = 4096  # w.conf:2\n# w.conf:3: worker_rlimit_nofile 65536: ringway raises"),
        "{toml}"
    );
}

/// A WebSocket echo with this `Host`.
fn ws_echo_host(addr: SocketAddr, host: &str, path: &str, text: &str) -> String {
    let stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (mut ws, _) = tungstenite::client::client_with_config(
        format!("ws://{host}{path}"),
        stream,
        Some(ws_config()),
    )
    .expect("WebSocket handshake");
    ws.send(tungstenite::Message::text(text)).unwrap();
    let got = ws.read().unwrap().into_text().unwrap().to_string();
    close_websocket(&mut ws);
    got
}

/// tests/fixtures/import/deploy: every shape of the list at once.
fn deployment_shapes_behave_as_nginx(d: Driver) {
    let xmpp = Backend::start();
    let (chat_a, chat_b) = (HttpBackend::start(), HttpBackend::start());
    let app = UnixHttpBackend::start(temp_dir("import-deploy-sock").join("app.sock"));
    let www = temp_dir("import-deploy-www");
    std::fs::write(www.join("index.html"), "<p>meet</p>\n").unwrap();
    let base = fixture("deploy");
    let text = std::fs::read_to_string(base.join("nginx.conf")).unwrap();
    let dir = temp_dir("import-deploy");
    std::fs::create_dir_all(dir.join("conf.d")).unwrap();
    for f in ["10-upgrade.conf", "20-realip.conf"] {
        std::fs::copy(base.join("conf.d").join(f), dir.join("conf.d").join(f)).unwrap();
    }
    let with = |listen: &str| {
        placed(
            &text,
            &[
                (
                    "listen 80 default_server;",
                    format!("listen {listen} default_server;"),
                ),
                ("listen 80;", format!("listen {listen};")),
                ("127.0.0.1:5280", xmpp.addr.to_string()),
                ("10.0.0.21:3000", chat_a.addr.to_string()),
                ("10.0.0.22:3000", chat_b.addr.to_string()),
                ("/run/meet/app.sock", app.path.display().to_string()),
                ("/srv/meet", www.display().to_string()),
            ],
        )
    };
    let probe = |a: SocketAddr| -> Vec<String> {
        let host = "meet.example.com";
        let get = |path: &str| {
            let (status, head, body) = get_once(a, host, path, "");
            let hsts = field_values(&head, "strict-transport-security").join(",");
            format!(
                "{path} {status} [{hsts}] {}",
                body.lines().next().unwrap_or("")
            )
        };
        let chat_seen = || {
            let all: Vec<_> = chat_a
                .seen
                .lock()
                .unwrap()
                .iter()
                .chain(chat_b.seen.lock().unwrap().iter())
                .cloned()
                .collect();
            let r = all.last().cloned().expect("a chat request");
            format!("{} x-api={}", r.path, r.header("x-api").unwrap_or("-"))
        };
        let mut out = vec![
            // Unknown hosts: closed without an answer.
            format!(
                "444 [{}]",
                raw_exchange(
                    a,
                    b"GET / HTTP/1.1\r\nHost: other.example\r\n\r\n",
                    Duration::from_secs(5)
                )
            ),
            ws_echo_host(a, host, "/xmpp-websocket?room=r1", "presence"),
            last_path(&xmpp),
            get("/api/health"),
        ];
        out.push(get("/api/v2/rooms"));
        out.push(chat_seen());
        out.push(get("/index.html"));
        out.push(get("/room/abc"));
        out.push(get("/files/none.txt"));
        out
    };
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, with("127.0.0.1:0")).unwrap();
    let out = dir.join("out.toml");
    let (code, _, err) = import(&["-o", out.to_str().unwrap(), conf.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    // tcp_nodelay is harmless; nothing is lost.
    assert!(
        !err.contains("NOT CARRIED") && !err.contains(": why"),
        "{err}"
    );
    let toml = std::fs::read_to_string(&out).unwrap();
    let rw = Ringway::start(&toml, d);
    let ours = probe(*rw.addrs().values().next().unwrap());
    assert_eq!(ours[0], "444 []");
    assert_eq!(ours[1], "presence");
    assert_eq!(ours[2], "/xmpp-websocket?prefix=&room=r1");
    assert_eq!(ours[3], "/api/health 200 [max-age=63072000] healthy");
    assert_eq!(ours[5], "/api/v2/rooms x-api=v2");
    assert_eq!(ours[6], "/index.html 200 [max-age=63072000] <p>meet</p>");
    assert_eq!(
        ours[8],
        "/files/none.txt 404 [max-age=63072000] no such file"
    );

    let Some(bin) = nginx::binary() else { return };
    let held = reserve_port();
    let ngconf = with(&format!("{} reuseport", held.addr)).replacen(
        &format!("listen {} reuseport;", held.addr),
        &format!("listen {};", held.addr),
        1,
    );
    std::fs::write(dir.join("nginx.conf"), &ngconf).unwrap();
    let ng = Nginx::start_file(
        &bin,
        "import-deploy-nginx",
        &ngconf.replace(
            "include conf.d/*.conf;",
            &format!("include {}/conf.d/*.conf;", dir.display()),
        ),
        held,
    );
    assert_eq!(ours, probe(ng.addr), "ringway (left), nginx (right)");
}
