//! A real browser end to end, on both drivers: headless Chromium loads a
//! page from ringway over https with HTTP/2 (ALPN `h2`), and the page's
//! script opens a WebSocket to the same origin, which Chromium sends as an
//! RFC 8441 extended CONNECT on the connection the page came over (it
//! does so only on an HTTP/2 connection it already has, to a server that
//! sent SETTINGS_ENABLE_CONNECT_PROTOCOL); ringway proxies it to the
//! harness's WebSocket echo backend as an HTTP/1.1 upgrade.
//!
//! Needs the `chromium` command (Debian's `chromium` package; runs as
//! root with `--no-sandbox`) and `openssl` (the test certificates and the
//! hash of the leaf's public key that Chromium is told to accept).

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ringway_tests::tls_support::*;
use ringway_tests::*;

both_drivers!(chromium_page_and_websocket_over_one_h2_connection);

/// How long Chromium has to load the page and finish the WebSocket
/// exchange (it starts in one to three seconds on an idle machine; the
/// tests run beside each other and beside compilers).
const BROWSER_WAIT: Duration = Duration::from_secs(60);

/// The page: a WebSocket to its own origin's `/ws/chat`, one text message,
/// the echo, a clean close from the page; then `/done` reports what
/// happened in its query (the access log shows it) and in `#out`.
const PAGE: &str = r#"<!doctype html>
<html><head><title>ringway h2 websocket</title></head>
<body><pre id="out">pending</pre>
<script>
const out = document.getElementById('out');
const nav = performance.getEntriesByType('navigation')[0];
const report = (fields) => {
  fields.nav = nav ? nav.nextHopProtocol : 'unknown';
  const q = new URLSearchParams(fields).toString();
  out.textContent = q;
  fetch('/done?' + q);
};
let error = false;
// Two WebSockets one after the other: the second shows the first's
// stream did not make Chromium give up on HTTP/2 for WebSockets.
const open = (path, text, next) => {
  let echo = 'none';
  const ws = new WebSocket('wss://' + location.host + path);
  ws.onopen = () => ws.send(text);
  ws.onmessage = (e) => { echo = e.data; ws.close(1000, 'bye'); };
  ws.onerror = () => { error = true; };
  ws.onclose = (e) => next(echo, e);
};
open('/ws/chat', 'hello from chromium', (echo, e) =>
  open('/ws/again', 'second', (echo2, e2) => report({
    echo: echo, code: e.code, clean: e.wasClean,
    echo2: echo2, code2: e2.code, error: error,
  })));
</script>
</body></html>
"#;

/// Chromium in a process group of its own, killed whole (browser,
/// zygotes, renderer, GPU and network processes) when dropped.
struct Chromium {
    child: Child,
    stderr: PathBuf,
    killed: bool,
}

impl Chromium {
    fn start(url: &str, host_rule: &str, spki: &str, dir: &Path) -> Chromium {
        let profile = dir.join("profile");
        let stderr = dir.join("chromium.stderr");
        let mut cmd = Command::new("chromium");
        cmd.args([
            "--headless=new",
            // The tests run as root (scripts/test.sh installs as root).
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--disable-crash-reporter",
            "--mute-audio",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        // `a.test` is the certificate's name; the test CA is unknown to
        // Chromium, so it is told to accept the leaf's public key.
        .arg(format!("--host-resolver-rules={host_rule}"))
        .arg(format!("--ignore-certificate-errors-spki-list={spki}"))
        .arg(url)
        // Its caches and crash dumps stay in the temp dir.
        .env("HOME", dir)
        .stdin(Stdio::null())
        // Files, not pipes: a pipe left open by a grandchild would hold
        // a reader past the kill.
        .stdout(File::create(dir.join("chromium.stdout")).unwrap())
        .stderr(File::create(&stderr).unwrap())
        .process_group(0);
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "the `chromium` command is missing: the browser test needs it \
                 (apt-get install chromium) ({e})"
            ),
            Err(e) => panic!("cannot run chromium: {e}"),
        };
        Chromium {
            child,
            stderr,
            killed: false,
        }
    }

    /// Kill the whole process group and reap the browser process (once).
    fn kill(&mut self) {
        if self.killed {
            return;
        }
        self.killed = true;
        // SAFETY: kill(2) on the process group this test made (the
        // child's pid is its group id); the child is not reaped yet, so
        // the id is not reused.
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The end of Chromium's stderr (`path`), for assertion messages.
fn stderr_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let start = text.len().saturating_sub(4000);
    let start = (start..text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(text.len());
    format!("--- chromium stderr (end)\n{}", &text[start..])
}

/// The SHA-256 of the certificate's SubjectPublicKeyInfo, base64: what
/// `--ignore-certificate-errors-spki-list` takes.
fn spki_hash(cert: &Path, dir: &Path) -> String {
    let openssl = |args: &[&str]| {
        let out = run_bounded(
            Command::new("openssl").args(args).current_dir(dir),
            None,
            Duration::from_secs(30),
            "the `openssl` command is missing (apt-get install openssl)",
        );
        assert!(out.ok(), "openssl {args:?}: {}", out.all());
        out.stdout
    };
    let cert = cert.to_str().unwrap();
    openssl(&["x509", "-in", cert, "-pubkey", "-noout", "-out", "pub.pem"]);
    openssl(&[
        "pkey", "-pubin", "-in", "pub.pem", "-outform", "der", "-out", "pub.der",
    ]);
    openssl(&[
        "dgst",
        "-sha256",
        "-binary",
        "-out",
        "pub.sha256",
        "pub.der",
    ]);
    let hash = openssl(&["base64", "-A", "-in", "pub.sha256"]);
    let hash = hash.trim().to_string();
    assert_eq!(hash.len(), 44, "not a base64 SHA-256: {hash:?}");
    hash
}

/// The access log's lines once one contains `needle` (bounded by
/// `BROWSER_WAIT`); `context` on failure.
fn wait_line(log: &Path, needle: &str, context: &dyn Fn() -> String) -> Vec<String> {
    let deadline = Instant::now() + BROWSER_WAIT;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.lines().any(|l| l.contains(needle)) {
            return text.lines().map(str::to_string).collect();
        }
        assert!(
            Instant::now() < deadline,
            "no access-log line with {needle:?} within {BROWSER_WAIT:?}\n\
             --- access log\n{text}\n{}",
            context()
        );
        // A file has no wait-for-change here; the log is short.
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The one line containing `needle`.
fn line_with<'a>(lines: &'a [String], needle: &str) -> &'a str {
    let found: Vec<&String> = lines.iter().filter(|l| l.contains(needle)).collect();
    assert_eq!(found.len(), 1, "lines with {needle:?}: {lines:#?}");
    found[0]
}

/// The client's port: a line's first field (`$remote_port`).
fn port_of(line: &str) -> &str {
    line.split(' ').next().unwrap()
}

/// One Chromium at a time: two headless browsers starting at once on a
/// two-core machine slow each other enough that Chromium may open the
/// page's WebSocket on a new HTTP/1.1 connection before it has read the
/// HTTP/2 connection's SETTINGS (its choice, not the server's), which is
/// not what this test is about.
static ONE_BROWSER: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn chromium_page_and_websocket_over_one_h2_connection(d: Driver) {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    const ATTEMPTS: u32 = 3;
    for attempt in 1..=ATTEMPTS {
        let ws = Backend::start();
        let c = certs();
        let dir = temp_dir("chromium");
        let www = dir.join("www");
        std::fs::create_dir_all(&www).unwrap();
        std::fs::write(www.join("index.html"), PAGE).unwrap();
        let log = dir.join("access.log");
        // The first line belongs to the harness's [log] table: the client's
        // port tells the connections apart.
        let config = format!(
            r#"log_format = '$remote_port "$request" $status $tunnel_close_reason $tunnel_bytes_from_client $tunnel_bytes_to_client "$http_user_agent"'

    [servers.a]
    listen = ["127.0.0.1:0"]
    server_name = ["a.test"]
    http2 = true
    tls = {{ cert = "{cert}", key = "{key}" }}
    [servers.a.locations."/"]
    root = "{www}"
    [servers.a.locations."/ws/"]
    proxy_pass = "http://{ws}"
    proxy_read_timeout = "300s"
    [servers.a.locations."= /done"]
    return = {{ status = 200, body = "done" }}
    "#,
            cert = c.a_cert.display(),
            key = c.a_key.display(),
            www = www.display(),
            ws = ws.addr,
        );
        let rw = Ringway::start_with_log(&config, d, "", log.to_str().unwrap());
        let port = rw.addr("a").port();
        let spki = spki_hash(&c.a_cert, &dir);
        let mut browser = Chromium::start(
            &format!("https://a.test:{port}/index.html"),
            "MAP a.test 127.0.0.1",
            &spki,
            &dir,
        );
        let stderr = browser.stderr.clone();
        let context = || stderr_tail(&stderr);

        // The page reports once its WebSocket has closed.
        let lines = wait_line(&log, "\"GET /done?", &context);
        let done = line_with(&lines, "\"GET /done?");
        assert!(
            done.contains(
                "\"GET /done?echo=hello+from+chromium&code=1000&clean=true&echo2=second&code2=1000\
                 &error=false&nav=h2 HTTP/2.0\" 200 "
            ),
            "the page's report: {done}\n{}",
            context()
        );
        let page = line_with(&lines, "\"GET /index.html ");
        assert!(
            page.contains("\"GET /index.html HTTP/2.0\" 200 ") && page.contains("HeadlessChrome/"),
            "{page}"
        );

        // The backend saw the WebSocket as an HTTP/1.1 upgrade, with the
        // browser's Origin carried through.
        let seen = ws.requests();
        assert_eq!(seen.len(), 2, "{seen:#?}");
        assert_eq!(seen[1].path, "/ws/again");
        assert_eq!(seen[0].path, "/ws/chat");
        assert_eq!(seen[0].header("upgrade"), Some("websocket"));
        assert_eq!(
            seen[0].header("origin"),
            Some(format!("https://a.test:{port}").as_str())
        );

        // The tunnel's line is written when the tunnel ends. Chromium does not
        // end its half of the stream after the closing handshake and the
        // END_STREAM for the backend's close; ringway ends the stream then
        // (the client's close frame has passed), so the line comes while the
        // browser still holds its connection (proxy_read_timeout is 300 s,
        // far beyond the wait).
        let lines = wait_line(&log, "\"GET /ws/chat ", &context);
        browser.kill();
        let tunnel = line_with(&lines, "\"GET /ws/chat ");
        // Chromium's own choice, now and then on a loaded 2-core machine: the
        // WebSocket on a new HTTP/1.1 connection. Not what this test is about
        // (ringway proxied it as asked): a fresh browser tries again.
        if tunnel.contains("\"GET /ws/chat HTTP/1.1\" 101 ") && attempt < ATTEMPTS {
            eprintln!("attempt {attempt}: Chromium opened the WebSocket over HTTP/1.1; again");
            continue;
        }
        // The page's text frame (2 + 4 mask + 19) and close frame (2 + 4 +
        // code 2 + "bye" 3) up; the echo (2 + 19) and the backend's close
        // (2 + 2 + 3) down.
        assert!(
            tunnel.contains("\"GET /ws/chat HTTP/2.0\" 101 ") && tunnel.contains(" 36 28 "),
            "{tunnel}"
        );
        // The second WebSocket (6 bytes each way plus the same framing): on
        // HTTP/2 too, so the first's end did not send Chromium back to
        // HTTP/1.1.
        let second = line_with(&lines, "\"GET /ws/again ");
        assert!(
            second.contains("\"GET /ws/again HTTP/2.0\" 101 ") && second.contains(" 23 15 "),
            "{second}"
        );
        // One connection: the page, the WebSockets (extended CONNECTs, RFC
        // 8441) and the report all came from the same client port.
        for line in [page, tunnel, second, done] {
            assert_eq!(port_of(line), port_of(page), "{lines:#?}");
        }
        return;
    }
}
