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
        "worker_processes 4;\nevents { worker_connections 1024; }\nhttp { server { listen 127.0.0.1:0; location / { return 204; } } }\n",
    );
    assert!(
        toml.contains("[runtime]\nworkers = 4  # w.conf:1\nmax_connections = 4096  # w.conf:2"),
        "{toml}"
    );
}
