//! HTTP/2 for clients (RFC 9113), on both drivers: cleartext with prior
//! knowledge (`http2 = "h2c"`) and over TLS with ALPN `h2`
//! (`http2 = true`), through curl and Python's `h2` package. Each request
//! runs through the HTTP/1.1 phases: `return`, proxying to an HTTP/1.1
//! backend (which sees an HTTP/1.1 request with ringway's framing), request
//! bodies (with and without a declared length), chunked responses turned
//! into DATA, the access log's `HTTP/2.0`, and WebSocket over HTTP/2
//! (RFC 8441: an extended CONNECT becomes an HTTP/1.1 upgrade upstream).
//!
//! Needs `curl` (with HTTP/2) and Python 3 with the `h2` package.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ringway_tests::http1::{parse_one, Mode, Parsed};
use ringway_tests::tls_support::*;
use ringway_tests::*;

both_drivers!(
    plain_connect_is_405_with_allow,
    websocket_over_h2_is_offered_only_where_it_can_be_kept,
    h2c_return_proxy_and_bodies,
    h2c_listener_still_serves_http11,
    h2c_streams_multiplex_on_one_connection,
    tls_alpn_h2_and_http11,
    websocket_over_h2c,
    a_client_gone_mid_stream_does_not_hold_the_stop,
    term_sends_goaway_and_lets_the_open_stream_finish,
    a_preface_without_settings_is_closed_at_the_header_timeout,
    a_header_block_never_ended_is_closed_at_the_header_timeout,
    a_stream_blocked_on_its_window_is_reset_at_the_send_timeout,
    refused_streams_are_reset_and_logged_with_their_reason,
    term_drains_a_websocket_over_h2_with_close_1001,
    an_answered_refusal_goes_through_the_error_answer_and_is_logged,
    term_sends_goaway_to_an_idle_connection,
    curl_h2_bodies_ranges_validators_and_return,
    fifty_streams_to_a_slow_upstream_end_independently,
    websocket_over_h2_text_binary_1mib_and_ping,
    websocket_over_h2_half_close_each_way,
    websocket_over_h2_reset_of_one_stream_leaves_the_other,
    websocket_over_h2_upgrade_refused_upstream_403,
);

fn h2c_config(http: SocketAddr) -> String {
    format!(
        r#"
[servers.app]
listen = ["127.0.0.1:0"]
http2 = "h2c"
[servers.app.locations."= /r"]
return = {{ status = 200, body = "returned $scheme" }}
[servers.app.locations."/api/"]
proxy_pass = "http://{http}"
client_max_body_size = "16m"
"#
    )
}

/// Start ringway with its access log in a file of its own.
fn start_logged(config: &str, d: Driver, tag: &str) -> (Ringway, PathBuf) {
    let log = temp_dir(tag).join("access.log");
    let rw = Ringway::start_with_log(config, d, "", log.to_str().unwrap());
    (rw, log)
}

/// Wait (bounded) until the access log has a line containing `needle`.
fn wait_access(log: &Path, needle: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(needle) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no access log line with {needle:?}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// curl with `args`, bounded; panics on failure. Its stdout.
fn curl_ok(args: &[&str], stdin: Option<Vec<u8>>) -> String {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "20", "--noproxy", "*"])
        .args(args);
    let out = run_bounded(
        &mut cmd,
        stdin,
        Duration::from_secs(30),
        "the `curl` command is missing (apt-get install curl)",
    );
    assert!(out.ok(), "curl {args:?}: {}", out.all());
    out.stdout
}

fn h2c_return_proxy_and_bodies(d: Driver) {
    let http = HttpBackend::start();
    let (rw, log) = start_logged(&h2c_config(http.addr), d, "h2c-log");
    let base = format!("http://{}", rw.addr("app"));
    let h2 = "--http2-prior-knowledge";

    // `return`, answered by ringway itself; curl says it spoke HTTP/2.
    let out = curl_ok(&[h2, "-w", "|%{http_version}", &format!("{base}/r")], None);
    assert_eq!(out, "returned http|2");

    // A proxied GET: the backend sees HTTP/1.1 with ringway's framing.
    let out = curl_ok(&[h2, &format!("{base}/api/items?x=1")], None);
    assert_eq!(
        out,
        format!(
            "GET /api/items?x=1 host={} connection=close body=0",
            http.addr
        )
    );
    let seen = http.seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(seen.header("transfer-encoding"), None, "{seen:?}");
    assert_eq!(
        seen.header("user-agent").map(|v| v.starts_with("curl/")),
        Some(true)
    );

    // A POST with a declared length: small, then 1 MiB.
    let out = curl_ok(
        &[h2, "--data-binary", "hello", &format!("{base}/api/post")],
        None,
    );
    assert_eq!(
        out,
        format!("POST /api/post host={} connection=close body=5", http.addr)
    );
    let dir = temp_dir("h2-body");
    let big: Vec<u8> = (0..1u32 << 20).map(|i| b'a' + (i % 26) as u8).collect();
    let big_file = dir.join("big");
    std::fs::write(&big_file, &big).unwrap();
    let out = curl_ok(
        &[
            h2,
            "--data-binary",
            &format!("@{}", big_file.display()),
            &format!("{base}/api/big"),
        ],
        None,
    );
    assert!(out.ends_with("body=1048576"), "{out}");
    let seen = http.seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(seen.header("content-length"), Some("1048576"), "{seen:?}");

    // A body of unknown length (curl -T - sends DATA without
    // content-length): chunked upstream; the backend's chunked answer
    // echoes it, and comes back as DATA.
    let payload: Vec<u8> = (0..300_000u32).map(|i| b'A' + (i % 26) as u8).collect();
    let out = curl_ok(
        &[
            h2,
            "-T",
            "-",
            "-X",
            "POST",
            &format!("{base}/api/up/chunked"),
        ],
        Some(payload.clone()),
    );
    assert_eq!(out.as_bytes(), &payload[..]);
    let seen = http.seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(
        seen.header("transfer-encoding"),
        Some("chunked"),
        "{seen:?}"
    );
    assert_eq!(seen.header("content-length"), None, "{seen:?}");

    // The access log names the protocol.
    wait_access(&log, "\"GET /r HTTP/2.0\" 200");
    wait_access(&log, "\"POST /api/big HTTP/2.0\" 200");
}

/// An h2c listener tells the preface from HTTP/1.1 by the first bytes.
fn h2c_listener_still_serves_http11(d: Driver) {
    let http = HttpBackend::start();
    let (rw, log) = start_logged(&h2c_config(http.addr), d, "h2c-h1");
    let base = format!("http://{}", rw.addr("app"));
    let out = curl_ok(
        &["--http1.1", "-w", "|%{http_version}", &format!("{base}/r")],
        None,
    );
    assert_eq!(out, "returned http|1.1");
    let reply = raw_exchange(
        rw.addr("app"),
        b"GET /api/x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    );
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    wait_access(&log, "\"GET /r HTTP/1.1\" 200");
}

fn py_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("py").join(name)
}

/// Python's `h2` opens five streams (four GETs and a 200 000-byte POST,
/// more than a stream window) before it reads anything; every one is
/// answered on the one connection.
fn h2c_streams_multiplex_on_one_connection(d: Driver) {
    let http = HttpBackend::start();
    let rw = Ringway::start(&h2c_config(http.addr), d);
    let addr = rw.addr("app");
    let mut cmd = Command::new("python3");
    cmd.arg(py_script("h2_multiplex.py"))
        .arg(addr.ip().to_string())
        .arg(addr.port().to_string())
        .args(["/api/1", "/r", "/api/2", "/api/3"]);
    let out = run_bounded(
        &mut cmd,
        None,
        Duration::from_secs(60),
        "python3 is missing",
    );
    assert!(
        !out.stdout.contains("MISSING-H2"),
        "the Python `h2` package is missing (pip install h2): {}",
        out.all()
    );
    assert!(out.ok() && out.stdout.contains("DONE"), "{}", out.all());
    let h = http.addr;
    let expect = [
        format!("STREAM 1 STATUS 200 BODY GET /api/1 host={h} connection=close body=0"),
        "STREAM 3 STATUS 200 BODY returned http".to_string(),
        format!("STREAM 5 STATUS 200 BODY GET /api/2 host={h} connection=close body=0"),
        format!("STREAM 7 STATUS 200 BODY GET /api/3 host={h} connection=close body=0"),
        format!("STREAM 9 STATUS 200 BODY POST /api/1 host={h} connection=close body=200000"),
        "OPENED-BEFORE-READING 5".to_string(),
    ];
    let lines: Vec<&str> = out.stdout.lines().filter(|l| !l.is_empty()).collect();
    for e in &expect {
        assert!(lines.contains(&e.as_str()), "{e:?} missing: {}", out.all());
    }
    assert_eq!(
        http.connections.load(std::sync::atomic::Ordering::SeqCst),
        4,
        "one upstream connection per proxied request"
    );
}

/// `http2 = true`: ALPN offers h2 then http/1.1; curl gets HTTP/2 when it
/// asks, HTTP/1.1 when it does not.
fn tls_alpn_h2_and_http11(d: Driver) {
    let http = HttpBackend::start();
    let c = certs();
    let config = format!(
        r#"
[servers.a]
listen = ["127.0.0.1:0"]
server_name = ["a.test"]
http2 = true
tls = {{ cert = "{}", key = "{}" }}
[servers.a.locations."= /r"]
return = {{ status = 200, body = "$scheme $https" }}
[servers.a.locations."/api/"]
proxy_pass = "http://{}"
client_max_body_size = "16m"
"#,
        c.a_cert.display(),
        c.a_key.display(),
        http.addr
    );
    let (rw, log) = start_logged(&config, d, "h2-tls");
    let addr = rw.addr("a");
    let base = format!("https://a.test:{}", addr.port());
    let out = curl(
        addr,
        "a.test",
        &["--http2", "-w", "|%{http_version}", &format!("{base}/r")],
    );
    assert!(out.ok(), "{}", out.all());
    assert_eq!(out.stdout, "https on|2");
    let out = curl(
        addr,
        "a.test",
        &[
            "--http2",
            "--data-binary",
            "hello over h2",
            &format!("{base}/api/p"),
        ],
    );
    assert!(out.ok(), "{}", out.all());
    assert_eq!(
        out.stdout,
        format!("POST /api/p host={} connection=close body=13", http.addr)
    );
    let out = curl(
        addr,
        "a.test",
        &["--http1.1", "-w", "|%{http_version}", &format!("{base}/r")],
    );
    assert!(out.ok(), "{}", out.all());
    assert_eq!(out.stdout, "https on|1.1");
    wait_access(&log, "\"POST /api/p HTTP/2.0\" 200");
}

/// RFC 8441: the server enables the extended CONNECT; a WebSocket
/// CONNECT goes upstream as an HTTP/1.1 upgrade with ringway's own key;
/// the backend's 101 (its accept checked) comes back as 200; WebSocket
/// frames then travel in DATA both ways; the client's END_STREAM ends
/// the tunnel and ringway ends its side too.
fn websocket_over_h2c(d: Driver) {
    let ws = Backend::start();
    let config = format!(
        r#"
[servers.app]
listen = ["127.0.0.1:0"]
http2 = "h2c"
[servers.app.locations."/ws/"]
proxy_pass = "http://{}"
"#,
        ws.addr
    );
    let (rw, log) = start_logged(&config, d, "h2-ws");
    let addr = rw.addr("app");
    let mut cmd = Command::new("python3");
    cmd.arg(py_script("h2_websocket.py"))
        .arg(addr.ip().to_string())
        .arg(addr.port().to_string())
        .args(["/ws/chat", "hello", "over h2"]);
    let out = run_bounded(
        &mut cmd,
        None,
        Duration::from_secs(60),
        "python3 is missing",
    );
    assert!(
        !out.stdout.contains("MISSING-H2"),
        "the Python `h2` package is missing (pip install h2): {}",
        out.all()
    );
    assert!(out.ok(), "{}", out.all());
    assert_eq!(
        out.stdout,
        "SETTINGS-ENABLE-CONNECT-PROTOCOL 1\nSTATUS 200\nECHO hello\nECHO over h2\nENDED\nDONE\n"
    );
    let seen = ws.seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(seen.path, "/ws/chat");
    assert_eq!(seen.header("upgrade"), Some("websocket"), "{seen:?}");
    assert_eq!(seen.header("sec-websocket-version"), Some("13"), "{seen:?}");
    assert_eq!(
        seen.header("sec-websocket-key").map(str::len),
        Some(24),
        "{seen:?}"
    );
    wait_access(&log, "\"GET /ws/chat HTTP/2.0\" 101");
}

/// A plain CONNECT (no `:protocol`) asks for a forward proxy: answered
/// 405 with `Allow` (RFC 9110 §15.5.6) through the usual error answer,
/// with its info line. (No access-log line: a CONNECT has no path, and
/// the line is made from an HTTP/1.1 head, which has no authority-form
/// target here — as an HTTP/1.1 CONNECT, refused as unparseable, has
/// none either.)
fn plain_connect_is_405_with_allow(d: Driver) {
    let config = "[servers.app]\nlisten = [\"127.0.0.1:0\"]\nhttp2 = \"h2c\"\n\
                  [servers.app.locations.\"/\"]\nreturn = { status = 200 }\n";
    let rw = Ringway::start(config, d);
    let addr = rw.addr("app");
    let script = r#"
import socket, sys, h2.connection, h2.config, h2.events
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
c.initiate_connection()
s.sendall(c.data_to_send())
c.send_headers(1, [(":method", "CONNECT"), (":authority", "example.com:443")], end_stream=True)
s.sendall(c.data_to_send())
done = False
while not done:
    data = s.recv(65536)
    if not data:
        break
    for ev in c.receive_data(data):
        if isinstance(ev, h2.events.ResponseReceived):
            h = dict(ev.headers)
            print("STATUS", h[b":status"].decode(), "ALLOW", h.get(b"allow", b"-").decode())
        elif isinstance(ev, h2.events.StreamReset):
            print("RESET", ev.error_code)
            done = True
        elif isinstance(ev, h2.events.StreamEnded):
            print("ENDED")
            done = True
    s.sendall(c.data_to_send())
"#;
    let mut cmd = Command::new("python3");
    cmd.args(["-c", script])
        .arg(addr.ip().to_string())
        .arg(addr.port().to_string());
    let out = run_bounded(
        &mut cmd,
        None,
        Duration::from_secs(30),
        "python3 is missing",
    );
    assert_eq!(
        out.stdout,
        "STATUS 405 ALLOW GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH\nENDED\n",
        "{}",
        out.all()
    );
    rw.wait_for_log("status=405", Duration::from_secs(5));
}

/// SETTINGS_ENABLE_CONNECT_PROTOCOL is offered only where it can be kept:
/// not with `http2_websocket = false`, not on a server whose locations
/// cannot upgrade (no proxying location, or `upgrade = []`). A browser
/// that sees it sends every WebSocket as an extended CONNECT and does not
/// fall back. An extended CONNECT sent anyway is refused on its stream
/// and never reaches the upstream.
fn websocket_over_h2_is_offered_only_where_it_can_be_kept(d: Driver) {
    let ws = Backend::start();
    for (extra, location) in [
        (
            "http2_websocket = false\n",
            format!("proxy_pass = \"http://{}\"", ws.addr),
        ),
        (
            "",
            format!("proxy_pass = \"http://{}\"\nupgrade = []", ws.addr),
        ),
        ("", "return = { status = 200 }".to_string()),
    ] {
        let config = format!(
            "[servers.app]\nlisten = [\"127.0.0.1:0\"]\nhttp2 = \"h2c\"\n{extra}\
             [servers.app.locations.\"/ws/\"]\n{location}\n"
        );
        let rw = Ringway::start(&config, d);
        let addr = rw.addr("app");
        let mut cmd = Command::new("python3");
        cmd.arg(py_script("h2_websocket.py"))
            .arg(addr.ip().to_string())
            .arg(addr.port().to_string())
            .args(["/ws/chat", "hello"]);
        let out = run_bounded(
            &mut cmd,
            None,
            Duration::from_secs(60),
            "python3 is missing",
        );
        assert!(
            out.stdout
                .starts_with("SETTINGS-ENABLE-CONNECT-PROTOCOL 0\n"),
            "{config}\n{}",
            out.all()
        );
        // The CONNECT was sent anyway: no 200 for it.
        assert!(
            !out.stdout.contains("STATUS 200"),
            "{config}\n{}",
            out.all()
        );
    }
    assert!(ws.seen.lock().unwrap().is_empty());
}

/// An HTTP/2 frame: length, type, flags, stream, payload (RFC 9113 §4.1).
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    f.extend_from_slice(&[kind, flags]);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Whether `b` holds a whole HEADERS frame on `stream`.
fn has_headers(b: &[u8], stream: u32) -> bool {
    let mut i = 0;
    while i + 9 <= b.len() {
        let len = u32::from_be_bytes([0, b[i], b[i + 1], b[i + 2]]) as usize;
        let id = u32::from_be_bytes([b[i + 5], b[i + 6], b[i + 7], b[i + 8]]) & 0x7fff_ffff;
        if b[i + 3] == 1 && id == stream && i + 9 + len <= b.len() {
            return true;
        }
        i += 9 + len;
    }
    false
}

/// A client that closes its side with two streams still open — a POST
/// whose body never comes, a GET whose answer its zero window never lets
/// through — ends them: the graceful stop right after finds nothing busy
/// (it would wait for the send and body timeouts, a minute, otherwise).
/// The client keeps reading, so ringway's writes still succeed and only
/// the end of the client's bytes says it is gone.
fn a_client_gone_mid_stream_does_not_hold_the_stop(d: Driver) {
    use std::io::{Read, Write};
    let http = HttpBackend::start();
    let mut rw = Ringway::start(&h2c_config(http.addr), d);
    let mut s = std::net::TcpStream::connect(rw.addr("app")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    // SETTINGS_INITIAL_WINDOW_SIZE = 0: no response DATA may flow.
    out.extend(frame(4, 0, 0, &[0, 4, 0, 0, 0, 0]));
    // HPACK literals without indexing: POST, http, /api/x, authority "a".
    let post = [&[0x83, 0x86, 0x04, 6][..], b"/api/x", &[0x01, 1, b'a']].concat();
    out.extend(frame(1, 0x4, 1, &post)); // END_HEADERS, body to come
    let get = [&[0x82, 0x86, 0x04, 2][..], b"/r", &[0x01, 1, b'a']].concat();
    out.extend(frame(1, 0x4 | 0x1, 3, &get)); // END_HEADERS | END_STREAM
    s.write_all(&out).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !has_headers(&got, 3) {
        let n = s.read(&mut buf).expect("the GET's response HEADERS");
        assert!(n > 0, "closed before answering: {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
    // The POST is upstream (connected), waiting for its body.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while http.connections.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the POST never went upstream"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    s.shutdown(std::net::Shutdown::Write).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    rw.signal(libc::SIGTERM);
    let exited = rw.wait_exit(Duration::from_secs(10));
    let logs = rw.logs();
    assert!(exited.is_some(), "the stop waited on dead streams: {logs}");
    assert!(logs.contains("busy=0"), "{logs}");
    drop(s);
}

/// SIGTERM with a stream in flight (a proxied POST whose body is half
/// sent): the connection gets GOAWAY(NO_ERROR, last stream 1); a stream
/// opened after it is not served (no frame on it, never upstream); the
/// in-flight one still completes once its body comes; then the connection
/// closes and the process exits, well within shutdown_timeout.
fn term_sends_goaway_and_lets_the_open_stream_finish(d: Driver) {
    let http = HttpBackend::start();
    let (mut rw, log) = start_logged(&h2c_config(http.addr), d, "h2-goaway");
    let addr = rw.addr("app");
    let started = std::time::Instant::now();
    let mut cmd = Command::new("python3");
    cmd.arg(py_script("h2_goaway.py"))
        .arg(addr.ip().to_string())
        .arg(addr.port().to_string())
        .arg(rw.pid().to_string())
        .args(["/api/slow", "/api/new"]);
    let out = run_bounded(
        &mut cmd,
        None,
        Duration::from_secs(30),
        "python3 is missing",
    );
    assert!(
        !out.stdout.contains("MISSING-H2"),
        "the Python `hpack`/`hyperframe` packages are missing (pip install h2): {}",
        out.all()
    );
    let access = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        out.ok() && out.stdout.contains("DONE"),
        "{}\naccess log:\n{}",
        out.all(),
        access()
    );
    let h = http.addr;
    let expect = [
        "GOAWAY LAST 1 CODE 0".to_string(),
        format!(
            "STREAM 1 STATUS 200 BODY POST /api/slow host={h} connection=close body=10 ENDED True"
        ),
        "STREAM 3 FRAMES 0".to_string(),
        "CLOSED".to_string(),
    ];
    let lines: Vec<&str> = out.stdout.lines().collect();
    for e in &expect {
        assert!(lines.contains(&e.as_str()), "{e:?} missing: {}", out.all());
    }
    let exited = rw.wait_exit(Duration::from_secs(10));
    let logs = rw.logs();
    assert!(exited.is_some(), "still running after the stop: {logs}");
    // The default shutdown_timeout is far longer: the stop ended with the
    // stream, not at the timeout.
    assert!(!logs.contains("shutdown_timeout reached"), "{logs}");
    assert!(started.elapsed() < Duration::from_secs(20), "{logs}");
    assert_eq!(
        http.connections.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "only the stream below the GOAWAY went upstream"
    );
    wait_access(&log, "\"POST /api/slow HTTP/2.0\" 200");
    let text = access();
    assert!(!text.contains("/api/new"), "{text}");
}

/// h2c with `client_header_timeout = "1s"` (keepalive_timeout keeps its
/// default, 75 s, so only the header timeout can close within the bound).
fn h2c_header_timeout_config() -> String {
    r#"
[servers.app]
listen = ["127.0.0.1:0"]
http2 = "h2c"
client_header_timeout = "1s"
[servers.app.locations."/"]
return = { status = 200, body = "ok" }
"#
    .to_string()
}

/// Send `bytes`, then read (each read bounded) until ringway closes; the
/// close must come after about `client_header_timeout` (1 s) and well
/// before the keep-alive timeout. Returns what was read.
fn closed_within_header_timeout(rw: &Ringway, bytes: &[u8]) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(rw.addr("app")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let started = std::time::Instant::now();
    s.write_all(bytes).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("not closed within 10 s ({e}): {}", rw.logs()),
        }
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "closed after {took:?}: {}",
        rw.logs()
    );
    got
}

/// Whether `b` holds a GOAWAY frame (RFC 9113 §6.8) with `code`.
fn has_goaway(b: &[u8], code: u32) -> bool {
    let mut i = 0;
    while i + 9 <= b.len() {
        let len = u32::from_be_bytes([0, b[i], b[i + 1], b[i + 2]]) as usize;
        if b[i + 3] == 7 && i + 9 + len <= b.len() && len >= 8 {
            let p = &b[i + 9..];
            return u32::from_be_bytes([p[4], p[5], p[6], p[7]]) == code;
        }
        i += 9 + len;
    }
    false
}

/// A client that sends the preface and nothing else (no SETTINGS) is
/// closed with GOAWAY at client_header_timeout.
fn a_preface_without_settings_is_closed_at_the_header_timeout(d: Driver) {
    let rw = Ringway::start(&h2c_header_timeout_config(), d);
    let got = closed_within_header_timeout(&rw, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    assert!(has_goaway(&got, 0), "{got:?}");
    rw.wait_for_log("HTTP/2 header timeout", Duration::from_secs(5));
}

/// A client that opens a stream with HEADERS and never sends the
/// END_HEADERS of its block (no CONTINUATION) is closed at
/// client_header_timeout; the stream never started.
fn a_header_block_never_ended_is_closed_at_the_header_timeout(d: Driver) {
    let rw = Ringway::start(&h2c_header_timeout_config(), d);
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(4, 0, 0, &[]));
    // GET http /r, no END_HEADERS: CONTINUATION frames must follow.
    let get = [&[0x82, 0x86, 0x04, 2][..], b"/r"].concat();
    out.extend(frame(1, 0x1, 1, &get));
    let got = closed_within_header_timeout(&rw, &out);
    assert!(has_goaway(&got, 0), "{got:?}");
    assert!(!has_headers(&got, 1), "{got:?}");
    rw.wait_for_log("HTTP/2 header timeout", Duration::from_secs(5));
}

/// Whether `b` holds a RST_STREAM frame on `stream`.
fn has_reset(b: &[u8], stream: u32) -> bool {
    let mut i = 0;
    while i + 9 <= b.len() {
        let len = u32::from_be_bytes([0, b[i], b[i + 1], b[i + 2]]) as usize;
        let id = u32::from_be_bytes([b[i + 5], b[i + 6], b[i + 7], b[i + 8]]) & 0x7fff_ffff;
        if b[i + 3] == 3 && id == stream && i + 9 + len <= b.len() {
            return true;
        }
        i += 9 + len;
    }
    false
}

/// A client whose window never lets a response's DATA through (initial
/// window 0, no WINDOW_UPDATE) has the stream reset at `send_timeout`
/// (1 s here), not held until the keep-alive or the graceful stop.
fn a_stream_blocked_on_its_window_is_reset_at_the_send_timeout(d: Driver) {
    use std::io::{Read, Write};
    let config = r#"
[servers.app]
listen = ["127.0.0.1:0"]
http2 = "h2c"
send_timeout = "1s"
[servers.app.locations."/"]
return = { status = 200, body = "a body the window never lets through" }
"#;
    let rw = Ringway::start(config, d);
    let mut s = std::net::TcpStream::connect(rw.addr("app")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(4, 0, 0, &[0, 4, 0, 0, 0, 0]));
    let get = [&[0x82, 0x86, 0x04, 2][..], b"/r", &[0x01, 1, b'a']].concat();
    out.extend(frame(1, 0x4 | 0x1, 1, &get));
    let started = std::time::Instant::now();
    s.write_all(&out).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !has_reset(&got, 1) {
        let n = s.read(&mut buf).expect("RST_STREAM within 10 s");
        assert!(n > 0, "closed without a reset: {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
    let took = started.elapsed();
    assert!(has_headers(&got, 1), "{got:?}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "reset after {took:?}"
    );
}

/// Malformed requests are reset and each gets an info line with its
/// reason — a connection-specific field (RFC 9113 §8.2.2) and `:path *`
/// on a GET, both judged by the one request check as the connection
/// decodes them; the connection goes on serving.
fn refused_streams_are_reset_and_logged_with_their_reason(d: Driver) {
    use std::io::{Read, Write};
    let rw = Ringway::start(&h2c_header_timeout_config(), d);
    let mut s = std::net::TcpStream::connect(rw.addr("app")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(4, 0, 0, &[]));
    // GET http /r, authority "a", then "connection: close" (a literal
    // without indexing, new name).
    let conn_field = [
        &[0x82, 0x86, 0x04, 2][..],
        b"/r",
        &[0x01, 1, b'a', 0x00, 10],
        b"connection",
        &[5],
        b"close",
    ]
    .concat();
    out.extend(frame(1, 0x4 | 0x1, 1, &conn_field));
    let star = [&[0x82, 0x86, 0x04, 1][..], b"*", &[0x01, 1, b'a']].concat();
    out.extend(frame(1, 0x4 | 0x1, 3, &star));
    let good = [&[0x82, 0x86, 0x04, 2][..], b"/r", &[0x01, 1, b'a']].concat();
    out.extend(frame(1, 0x4 | 0x1, 5, &good));
    s.write_all(&out).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !(has_reset(&got, 1) && has_reset(&got, 3) && has_headers(&got, 5)) {
        let n = s.read(&mut buf).expect("two resets and an answer");
        assert!(n > 0, "closed: {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
    assert!(!has_headers(&got, 1) && !has_headers(&got, 3), "{got:?}");
    rw.wait_for_log("stream=3", Duration::from_secs(5));
    let logs = rw.logs();
    assert!(
        logs.contains("HTTP/2 request refused") && logs.contains("connection-specific"),
        "{logs}"
    );
    assert!(
        logs.contains(":path * with a method other than OPTIONS"),
        "{logs}"
    );
}

/// SIGTERM with an RFC 8441 WebSocket open: the connection gets GOAWAY
/// (last stream 1), the tunnel is drained like an HTTP/1.1 one — a close
/// frame 1001 at a frame boundary, in DATA — the stream ends, the
/// connection closes and the process exits at once (drain_spread 100 ms).
fn term_drains_a_websocket_over_h2_with_close_1001(d: Driver) {
    let ws = Backend::start();
    let config = format!(
        r#"
[servers.app]
listen = ["127.0.0.1:0"]
http2 = "h2c"
[servers.app.locations."/ws/"]
proxy_pass = "http://{}"
"#,
        ws.addr
    );
    let mut rw = Ringway::start_with_runtime(&config, d, "drain_spread = \"100ms\"\n");
    let addr = rw.addr("app");
    let started = std::time::Instant::now();
    let mut cmd = Command::new("python3");
    cmd.arg(py_script("h2_ws_drain.py"))
        .arg(addr.ip().to_string())
        .arg(addr.port().to_string())
        .arg(rw.pid().to_string())
        .arg("/ws/chat");
    let out = run_bounded(
        &mut cmd,
        None,
        Duration::from_secs(30),
        "python3 is missing",
    );
    assert!(
        !out.stdout.contains("MISSING-H2"),
        "the Python `hpack`/`hyperframe` packages are missing (pip install h2): {}",
        out.all()
    );
    assert!(
        out.ok() && out.stdout.contains("DONE"),
        "{}\n{}",
        out.all(),
        rw.logs()
    );
    for e in [
        "STATUS 200",
        "ECHO before the stop",
        "GOAWAY LAST 1 CODE 0",
        "CLOSE-FRAME 1001",
    ] {
        assert!(
            out.stdout.lines().any(|l| l == e),
            "{e:?} missing: {}",
            out.all()
        );
    }
    assert!(
        out.stdout.contains("STREAM-END END_STREAM")
            || out.stdout.contains("STREAM-END RST_STREAM 0"),
        "{}",
        out.all()
    );
    let exited = rw.wait_exit(Duration::from_secs(10));
    let logs = rw.logs();
    assert!(exited.is_some(), "still running: {logs}");
    assert!(!logs.contains("shutdown_timeout reached"), "{logs}");
    assert!(started.elapsed() < Duration::from_secs(20), "{logs}");
}

/// A request the check refuses with an answer — `:scheme` https on a
/// cleartext connection, 421 — is answered like any failed request (a
/// body saying the status) and gets its access-log line and an info line
/// with the reason; the connection goes on serving.
fn an_answered_refusal_goes_through_the_error_answer_and_is_logged(d: Driver) {
    use std::io::{Read, Write};
    let (rw, log) = start_logged(&h2c_header_timeout_config(), d, "h2-421");
    let mut s = std::net::TcpStream::connect(rw.addr("app")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(4, 0, 0, &[]));
    // GET https /r, authority "a": :scheme is not the connection's.
    let https = [&[0x82, 0x87, 0x04, 2][..], b"/r", &[0x01, 1, b'a']].concat();
    out.extend(frame(1, 0x4 | 0x1, 1, &https));
    let good = [&[0x82, 0x86, 0x04, 2][..], b"/r", &[0x01, 1, b'a']].concat();
    out.extend(frame(1, 0x4 | 0x1, 3, &good));
    s.write_all(&out).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    // Both answered, each with a DATA frame carrying END_STREAM.
    let ended = |b: &[u8], stream: u32| {
        let mut i = 0;
        while i + 9 <= b.len() {
            let len = u32::from_be_bytes([0, b[i], b[i + 1], b[i + 2]]) as usize;
            let id = u32::from_be_bytes([b[i + 5], b[i + 6], b[i + 7], b[i + 8]]) & 0x7fff_ffff;
            if b[i + 3] == 0 && id == stream && b[i + 4] & 1 == 1 && i + 9 + len <= b.len() {
                return true;
            }
            i += 9 + len;
        }
        false
    };
    while !(ended(&got, 1) && ended(&got, 3)) {
        let n = s.read(&mut buf).expect("both streams answered");
        assert!(n > 0, "closed: {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
    assert!(has_headers(&got, 1) && !has_reset(&got, 1), "{got:?}");
    let body = String::from_utf8_lossy(&got);
    assert!(body.contains("421 Misdirected Request"), "{body}");
    wait_access(&log, "\"GET /r HTTP/2.0\" 421");
    wait_access(&log, "\"GET /r HTTP/2.0\" 200");
    rw.wait_for_log(":scheme is not the connection's", Duration::from_secs(5));
}

/// SIGTERM with an idle HTTP/2 connection (no stream ever opened): it gets
/// GOAWAY(NO_ERROR, last stream 0) before it is closed — the stop waits
/// for HTTP/2 connections to end, and an idle one ends right after its
/// GOAWAY — and the process exits at once.
fn term_sends_goaway_to_an_idle_connection(d: Driver) {
    use std::io::{Read, Write};
    let mut rw = Ringway::start(&h2c_header_timeout_config(), d);
    let mut s = std::net::TcpStream::connect(rw.addr("app")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(4, 0, 0, &[]));
    // A PING: its ACK says ringway has read the SETTINGS (the
    // connection is past the header timeout's watch).
    out.extend(frame(6, 0, 0, b"idle-gw!"));
    s.write_all(&out).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let ping_ack = |b: &[u8]| {
        let mut i = 0;
        while i + 9 <= b.len() {
            let len = u32::from_be_bytes([0, b[i], b[i + 1], b[i + 2]]) as usize;
            if b[i + 3] == 6 && b[i + 4] & 1 == 1 && i + 9 + len <= b.len() {
                return true;
            }
            i += 9 + len;
        }
        false
    };
    while !ping_ack(&got) {
        let n = s.read(&mut buf).expect("the PING's ACK");
        assert!(n > 0, "closed: {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
    let started = std::time::Instant::now();
    rw.signal(libc::SIGTERM);
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("not closed within 10 s ({e}): {}", rw.logs()),
        }
    }
    assert!(has_goaway(&got, 0), "no GOAWAY(NO_ERROR): {got:?}");
    let exited = rw.wait_exit(Duration::from_secs(10));
    let logs = rw.logs();
    assert!(exited.is_some(), "still running: {logs}");
    assert!(started.elapsed() < Duration::from_secs(5), "{logs}");
    assert!(!logs.contains("shutdown_timeout reached"), "{logs}");
}

/// A small HTTP/1.1 backend: a thread per connection reads one request
/// (its head and body, parsed strictly) and hands it, with the bytes read
/// past it and the socket, to `answer`. Its address.
fn script_backend<F>(answer: F) -> SocketAddr
where
    F: Fn(Parsed, Vec<u8>, std::net::TcpStream) + Send + Sync + 'static,
{
    use std::io::Read;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let answer = std::sync::Arc::new(answer);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let answer = answer.clone();
            std::thread::spawn(move || {
                let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
                let mut buf = Vec::new();
                let mut tmp = [0u8; 16384];
                loop {
                    match parse_one(&buf, Mode::Strict) {
                        Ok(Some((req, n))) => {
                            let rest = buf[n..].to_vec();
                            return answer(req, rest, conn);
                        }
                        Ok(None) => {}
                        Err(e) => panic!("the backend cannot parse what ringway sent: {e}"),
                    }
                    match conn.read(&mut tmp) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&tmp[..n]),
                    }
                }
            });
        }
    });
    addr
}

/// `n` bytes that do not repeat with a short period (a byte out of place
/// shows).
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

/// A header's value in curl's `-D` output (the last head in it).
fn dumped_header(head: &str, name: &str) -> Option<String> {
    let last = head.trim_end().rsplit("\r\n\r\n").next().unwrap_or("");
    last.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

/// curl over HTTP/2 — `--http2-prior-knowledge` on the h2c listener,
/// `--http2` with the test CA (ALPN h2) on the TLS one — on the same
/// locations: a `return`; a 1 MiB POST to a backend that echoes it, 1 MiB
/// back, byte for byte; a static file fetched with `Range` (206,
/// `Content-Range`, the exact bytes; one range wider than a stream window,
/// one suffix range) and with validators (`If-None-Match` and
/// `If-Modified-Since` give 304 with no body; a tag that does not match
/// gives 200 and the whole file). curl reports HTTP/2 for each; the access
/// log has the 206 and the 304 as `HTTP/2.0`.
fn curl_h2_bodies_ranges_validators_and_return(d: Driver) {
    use std::io::Write;
    let echo = script_backend(|req, _, mut s| {
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nX-Seen-Length: {}\r\n\r\n",
            req.body.len(),
            req.header("content-length").unwrap_or("-"),
        );
        let _ = s.write_all(head.as_bytes());
        let _ = s.write_all(&req.body);
    });
    let dir = temp_dir("h2-curl");
    let root = dir.join("www");
    std::fs::create_dir_all(root.join("files")).unwrap();
    let file = noise(300_000, 7);
    std::fs::write(root.join("files/data.bin"), &file).unwrap();
    let up = noise(1 << 20, 11);
    std::fs::write(dir.join("up.bin"), &up).unwrap();
    let c = certs();
    let locations = |name: &str| {
        format!(
            r#"
[servers.{name}.locations."= /r"]
return = {{ status = 200, body = "returned $scheme" }}
[servers.{name}.locations."/api/"]
proxy_pass = "http://{echo}"
client_max_body_size = "16m"
[servers.{name}.locations."/files/"]
root = "{}"
"#,
            root.display()
        )
    };
    let config = format!(
        r#"
[servers.app]
listen = ["127.0.0.1:0"]
http2 = "h2c"
{}
[servers.a]
listen = ["127.0.0.2:0"]
server_name = ["a.test"]
http2 = true
tls = {{ cert = "{}", key = "{}" }}
{}
"#,
        locations("app"),
        c.a_cert.display(),
        c.a_key.display(),
        locations("a")
    );
    let (rw, log) = start_logged(&config, d, "h2-curl-log");
    let tls_addr = rw.addr("a");
    for (mode, base) in [
        ("h2c", format!("http://{}", rw.addr("app"))),
        ("tls", format!("https://a.test:{}", tls_addr.port())),
    ] {
        let scheme = if mode == "tls" { "https" } else { "http" };
        // curl (prior knowledge, or ALPN with the test CA): its -w output.
        let run = |args: &[&str]| -> String {
            if mode == "tls" {
                let out = curl(tls_addr, "a.test", &[&["--http2"], args].concat());
                assert!(out.ok(), "{mode} curl {args:?}: {}", out.all());
                out.stdout
            } else {
                curl_ok(&[&["--http2-prior-knowledge"], args].concat(), None)
            }
        };
        let w = "%{http_version} %{response_code}";

        let out = run(&["-w", &format!("|{w}"), &format!("{base}/r")]);
        assert_eq!(out, format!("returned {scheme}|2 200"), "{mode}");

        // 1 MiB up, the same 1 MiB back.
        let down = dir.join(format!("down-{mode}.bin"));
        let head = dir.join(format!("echo-head-{mode}"));
        let out = run(&[
            "--data-binary",
            &format!("@{}", dir.join("up.bin").display()),
            "-D",
            head.to_str().unwrap(),
            "-o",
            down.to_str().unwrap(),
            "-w",
            w,
            &format!("{base}/api/echo"),
        ]);
        assert_eq!(out, "2 200", "{mode}");
        let back = std::fs::read(&down).unwrap();
        assert!(
            back == up,
            "{mode}: {} bytes came back, not the 1 MiB sent",
            back.len()
        );
        let head = std::fs::read_to_string(&head).unwrap();
        assert_eq!(
            dumped_header(&head, "x-seen-length").as_deref(),
            Some("1048576"),
            "{mode}: {head}"
        );

        // A static file: whole, then by ranges.
        let url = format!("{base}/files/data.bin");
        let fetch = |extra: &[&str], tag: &str| -> (String, String, Vec<u8>) {
            let head = dir.join(format!("head-{mode}-{tag}"));
            let body = dir.join(format!("body-{mode}-{tag}"));
            let out = run(&[
                extra,
                &[
                    "-D",
                    head.to_str().unwrap(),
                    "-o",
                    body.to_str().unwrap(),
                    "-w",
                    w,
                    &url,
                ],
            ]
            .concat());
            let head = std::fs::read_to_string(&head).unwrap();
            (out, head, std::fs::read(&body).unwrap_or_default())
        };
        let (out, head, body) = fetch(&[], "whole");
        assert_eq!(out, "2 200", "{mode}: {head}");
        assert!(body == file, "{mode}: the whole file differs");
        let etag = dumped_header(&head, "etag").expect("an ETag");
        let modified = dumped_header(&head, "last-modified").expect("a Last-Modified");
        for (range, from, to) in [
            ("bytes=1000-1999", 1000, 2000),
            ("bytes=20000-219999", 20_000, 220_000),
            ("bytes=-100", 299_900, 300_000),
        ] {
            let (out, head, body) = fetch(&["-H", &format!("Range: {range}")], "range");
            assert_eq!(out, "2 206", "{mode} {range}: {head}");
            assert_eq!(
                dumped_header(&head, "content-range"),
                Some(format!("bytes {from}-{}/300000", to - 1)),
                "{mode} {range}: {head}"
            );
            assert_eq!(
                dumped_header(&head, "content-length"),
                Some((to - from).to_string()),
                "{mode} {range}: {head}"
            );
            assert!(body == file[from..to], "{mode} {range}: other bytes");
        }

        // Validators: 304 with no body, then a tag that does not match.
        let (out, head, body) = fetch(&["-H", &format!("If-None-Match: {etag}")], "inm");
        assert_eq!(out, "2 304", "{mode}: {head}");
        assert!(body.is_empty(), "{mode}: a 304 with a body");
        assert_eq!(dumped_header(&head, "etag"), Some(etag.clone()), "{mode}");
        let (out, head, body) = fetch(&["-H", &format!("If-Modified-Since: {modified}")], "ims");
        assert_eq!(out, "2 304", "{mode}: {head}");
        assert!(body.is_empty(), "{mode}: a 304 with a body");
        let (out, _, body) = fetch(&["-H", "If-None-Match: \"other\""], "other");
        assert_eq!(out, "2 200", "{mode}");
        assert!(body == file, "{mode}: the whole file differs");
    }
    wait_access(&log, "\"GET /files/data.bin HTTP/2.0\" 206");
    wait_access(&log, "\"GET /files/data.bin HTTP/2.0\" 304");
    wait_access(&log, "\"POST /api/echo HTTP/2.0\" 200");
}

/// Fifty streams on one connection (Python `h2`,
/// `tests/py/h2_slow_streams.py`), all opened before anything is read, to
/// an upstream that answers each after the delay its path names: twenty
/// slow ones (4 s and more), opened first and among the others, and
/// thirty fast ones (0–290 ms). Every stream ends with its own answer;
/// every fast one ends before the first slow one (none is held behind a
/// slow stream) and each slow one no sooner than its delay; the twenty
/// slow requests were upstream at the same time.
fn fifty_streams_to_a_slow_upstream_end_independently(d: Driver) {
    use std::io::Write;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (f, p) = (in_flight.clone(), peak.clone());
    let slow = script_backend(move |req, _, mut s| {
        let now = f.fetch_add(1, Ordering::SeqCst) + 1;
        p.fetch_max(now, Ordering::SeqCst);
        // /api/delay/<ms>/<tag>: the delay is the behaviour under test.
        let ms: u64 = req.target.split('/').nth(3).unwrap().parse().unwrap();
        std::thread::sleep(Duration::from_millis(ms));
        let body = format!("answer of {}", req.target);
        let _ = s.write_all(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
        f.fetch_sub(1, Ordering::SeqCst);
    });
    let rw = Ringway::start(&h2c_config(slow), d);
    let addr = rw.addr("app");
    const SLOW_MS: u64 = 4000;
    let paths: Vec<(String, u64)> = (0..50u64)
        .map(|i| {
            let ms = if i % 5 < 2 { SLOW_MS + i * 25 } else { i * 6 };
            (format!("/api/delay/{ms}/{i}"), ms)
        })
        .collect();
    let mut cmd = Command::new("python3");
    cmd.arg(py_script("h2_slow_streams.py"))
        .arg(addr.ip().to_string())
        .arg(addr.port().to_string())
        .args(paths.iter().map(|(p, _)| p));
    let out = run_bounded(
        &mut cmd,
        None,
        Duration::from_secs(60),
        "python3 is missing",
    );
    assert!(
        !out.stdout.contains("MISSING-H2"),
        "the Python `h2` package is missing (pip install h2): {}",
        out.all()
    );
    assert!(out.ok() && out.stdout.contains("DONE"), "{}", out.all());
    assert!(out.stdout.contains("OPENED 50\n"), "{}", out.all());
    // END <id> <path> <status> <ms> <body>, in the order they ended.
    let ends: Vec<(String, String, u64, String)> = out
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("END "))
        .map(|l| {
            let mut f = l.splitn(5, ' ');
            let _id = f.next();
            let path = f.next().unwrap().to_string();
            let status = f.next().unwrap().to_string();
            let ms = f.next().unwrap().parse().unwrap();
            (path, status, ms, f.next().unwrap_or("").to_string())
        })
        .collect();
    assert_eq!(ends.len(), 50, "{}", out.all());
    let delay = |path: &str| paths.iter().find(|(p, _)| p == path).unwrap().1;
    for (path, status, _, body) in &ends {
        assert_eq!(status, "200", "{path}: {}\n{}", out.all(), rw.logs());
        assert_eq!(body, &format!("answer of {path}"), "{}", out.all());
    }
    let first_slow = ends.iter().position(|(p, ..)| delay(p) >= SLOW_MS).unwrap();
    assert_eq!(
        first_slow,
        30,
        "a fast stream ended after a slow one: {}",
        out.all()
    );
    // The client's clock starts when it has sent the request, the
    // backend's delay when it read it: a loaded machine can put the
    // second a millisecond or two before the first.
    for (path, _, ms, _) in &ends[30..] {
        assert!(
            *ms + 5 >= delay(path),
            "{path} ended at {ms} ms: {}",
            out.all()
        );
    }
    assert!(
        peak.load(Ordering::SeqCst) >= 20,
        "at most {} requests upstream at once",
        peak.load(Ordering::SeqCst)
    );
}

/// What the RFC 8441 case backend saw, in order.
type Events = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// Wait (bounded) until `events` has `needle`.
fn wait_event(events: &Events, needle: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if events.lock().unwrap().iter().any(|e| e == needle) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the backend never reported {needle:?}: {:?}",
            events.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A server's WebSocket text frame (unmasked, short).
fn server_text(text: &str) -> Vec<u8> {
    assert!(text.len() < 126);
    [&[0x81, text.len() as u8][..], text.as_bytes()].concat()
}

/// Read masked client frames from `s` (after the bytes in `buf`) until
/// the end of its stream: their payloads as text, and whether the end
/// was a clean EOF (not an error or a timeout).
fn client_frames_until_eof(s: &mut std::net::TcpStream, mut buf: Vec<u8>) -> (Vec<String>, bool) {
    use std::io::Read;
    let mut texts = Vec::new();
    let mut tmp = [0u8; 4096];
    loop {
        // One whole frame at the front: FIN/opcode, MASK|len, mask, payload.
        while buf.len() >= 2 {
            assert!(buf[1] & 0x80 != 0, "an unmasked client frame: {buf:?}");
            let (len, at) = match buf[1] & 0x7f {
                126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
                127 if buf.len() >= 10 => (
                    u64::from_be_bytes(buf[2..10].try_into().unwrap()) as usize,
                    10,
                ),
                126 | 127 => break,
                n => (n as usize, 2),
            };
            if buf.len() < at + 4 + len {
                break;
            }
            let mask = [buf[at], buf[at + 1], buf[at + 2], buf[at + 3]];
            let payload: Vec<u8> = buf[at + 4..at + 4 + len]
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ mask[i % 4])
                .collect();
            texts.push(String::from_utf8_lossy(&payload).into_owned());
            buf.drain(..at + 4 + len);
        }
        match s.read(&mut tmp) {
            Ok(0) => return (texts, buf.is_empty()),
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
            Err(_) => return (texts, false),
        }
    }
}

/// The WebSocket backend of the RFC 8441 cases, by the path
/// `/ws/MODE/TAG` of the HTTP/1.1 upgrade ringway sends it:
/// - `echo`: tungstenite echoes text and binary messages; reports
///   `closed PATH` when its connection ends.
/// - `late`: reads the client's frames until the client's side ends (EOF),
///   reports `late got [..] then eof`, and only then sends three text
///   frames (`late 1` to `late 3`) and closes.
/// - `fin`: sends `server done`, closes its own side (FIN, still
///   reading), reads the client's frames until EOF and reports
///   `fin got [..] then eof`.
/// - `refuse`: no upgrade — `403 Forbidden` with a body.
fn ws_case_backend() -> (SocketAddr, Events) {
    use std::io::Write;
    let events: Events = Default::default();
    let ev = events.clone();
    let addr = script_backend(move |req, rest, mut s| {
        let mode = req.target.split('/').nth(2).unwrap_or("").to_string();
        let key = req.header("sec-websocket-key").unwrap_or("").to_string();
        if mode == "refuse" {
            let body = "no websocket here\n";
            let _ = s.write_all(
                format!(
                    "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            );
            return;
        }
        let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
        let _ = s.write_all(
            format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n")
                .as_bytes(),
        );
        match mode.as_str() {
            "echo" => {
                let mut ws = tungstenite::WebSocket::from_partially_read(
                    s,
                    rest,
                    tungstenite::protocol::Role::Server,
                    Some(ws_config()),
                );
                loop {
                    match ws.read() {
                        Ok(m) if m.is_text() || m.is_binary() => {
                            if ws.send(m).is_err() {
                                break;
                            }
                        }
                        Ok(_) => {
                            let _ = ws.flush();
                        }
                        Err(_) => break,
                    }
                }
                ev.lock().unwrap().push(format!("closed {}", req.target));
            }
            "late" => {
                let (texts, eof) = client_frames_until_eof(&mut s, rest);
                let end = if eof { "eof" } else { "error" };
                ev.lock()
                    .unwrap()
                    .push(format!("late got {texts:?} then {end}"));
                for i in 1..=3 {
                    let _ = s.write_all(&server_text(&format!("late {i}")));
                }
            }
            "fin" => {
                let _ = s.write_all(&server_text("server done"));
                let _ = s.shutdown(std::net::Shutdown::Write);
                let (texts, eof) = client_frames_until_eof(&mut s, rest);
                let end = if eof { "eof" } else { "error" };
                ev.lock()
                    .unwrap()
                    .push(format!("fin got {texts:?} then {end}"));
            }
            _ => panic!("no such case: {}", req.target),
        }
    });
    (addr, events)
}

fn ws_h2c_config(ws: SocketAddr) -> String {
    format!(
        r#"
[servers.app]
listen = ["127.0.0.1:0"]
http2 = "h2c"
[servers.app.locations."/ws/"]
proxy_pass = "http://{ws}"
"#
    )
}

/// `tests/py/h2_ws_cases.py CASE ARGS...` against `rw`: its stdout.
fn ws_case(rw: &Ringway, case: &str, args: &[&str]) -> String {
    let addr = rw.addr("app");
    let mut cmd = Command::new("python3");
    cmd.arg(py_script("h2_ws_cases.py"))
        .arg(addr.ip().to_string())
        .arg(addr.port().to_string())
        .arg(case)
        .args(args);
    let out = run_bounded(
        &mut cmd,
        None,
        Duration::from_secs(90),
        "python3 is missing",
    );
    assert!(
        !out.stdout.contains("MISSING-H2"),
        "the Python `h2` package is missing (pip install h2): {}",
        out.all()
    );
    assert!(
        out.ok() && out.stdout.ends_with("DONE\n"),
        "{case}: {}\n{}",
        out.all(),
        rw.logs()
    );
    out.stdout
}

/// RFC 8441 through the tungstenite echo backend, every client frame
/// masked: a text message, a binary one, a 1 MiB binary message (more
/// than the stream and connection windows both ways) echoed whole, a
/// ping answered by a pong with its payload, a close echoed with its code;
/// then the client's END_STREAM, and the stream ends with END_STREAM, no
/// reset.
fn websocket_over_h2_text_binary_1mib_and_ping(d: Driver) {
    let ws = Backend::start();
    let (rw, log) = start_logged(&ws_h2c_config(ws.addr), d, "h2-ws-msgs");
    let out = ws_case(&rw, "messages", &["/ws/messages"]);
    assert_eq!(
        out,
        "SETTINGS-ENABLE-CONNECT-PROTOCOL 1\nSTATUS 200\nTEXT hello over h2\nBINARY 768 SAME\n\
         BIG 1048576 SAME\nPONG are you there\nCLOSE 1000\nENDED END_STREAM\nRESETS none\nDONE\n"
    );
    assert_eq!(ws.requests().len(), 1);
    wait_access(&log, "\"GET /ws/messages HTTP/2.0\" 101");
}

/// Half-closes each way. The client ends its side (END_STREAM on the DATA
/// of its one frame): the backend reads the frame and then EOF, and only
/// after that sends three frames, which all reach the client before the
/// stream's END_STREAM. The backend ends its side first (FIN after one
/// frame): the client gets the frame and END_STREAM, not RST_STREAM, and
/// what it sends after that still reaches the backend, then EOF.
fn websocket_over_h2_half_close_each_way(d: Driver) {
    let (backend, events) = ws_case_backend();
    let rw = Ringway::start(&ws_h2c_config(backend), d);
    let out = ws_case(&rw, "late", &["/ws/late/1"]);
    assert_eq!(
        out,
        "SETTINGS-ENABLE-CONNECT-PROTOCOL 1\nSTATUS 200\nFRAME late 1\nFRAME late 2\nFRAME late 3\n\
         ENDED END_STREAM LEFT 0\nRESETS none\nDONE\n"
    );
    wait_event(&events, "late got [\"before the end\"] then eof");
    let out = ws_case(&rw, "fin", &["/ws/fin/1"]);
    assert_eq!(
        out,
        "SETTINGS-ENABLE-CONNECT-PROTOCOL 1\nSTATUS 200\nFRAME server done\n\
         SERVER-ENDED END_STREAM\nRESETS none\nDONE\n"
    );
    wait_event(&events, "fin got [\"after the fin\"] then eof");
}

/// Two WebSocket streams on one connection; the client resets one
/// (RST_STREAM CANCEL): its upstream connection is closed, no more DATA
/// comes on it and ringway does not answer the reset with one; the other
/// stream goes on echoing and ends cleanly.
fn websocket_over_h2_reset_of_one_stream_leaves_the_other(d: Driver) {
    let (backend, events) = ws_case_backend();
    let rw = Ringway::start(&ws_h2c_config(backend), d);
    let out = ws_case(&rw, "reset", &["/ws/echo/a", "/ws/echo/b"]);
    assert_eq!(
        out,
        "SETTINGS-ENABLE-CONNECT-PROTOCOL 1\nSTATUS 200\nSTATUS 200\nA ECHO a1\nB ECHO b1\n\
         B ECHO b2\nB ECHO b3\nB ECHO b4\nA-AFTER-RESET 0\nB ENDED END_STREAM\nRESETS none\nDONE\n"
    );
    wait_event(&events, "closed /ws/echo/a");
    wait_event(&events, "closed /ws/echo/b");
}

/// An upstream that answers the upgrade with 403 and a body: the client's
/// extended CONNECT gets `:status 403` (not 200) and that body, and the
/// stream ends with END_STREAM; the access log has the 403. The CONNECT
/// stream is still open from the client's side (a tunnel request has no
/// END_STREAM of its own), so the complete answer is followed by
/// RST_STREAM NO_ERROR, as RFC 9113 §8.1 allows — never another code.
fn websocket_over_h2_upgrade_refused_upstream_403(d: Driver) {
    let (backend, _) = ws_case_backend();
    let (rw, log) = start_logged(&ws_h2c_config(backend), d, "h2-ws-403");
    let out = ws_case(&rw, "refused", &["/ws/refuse/1"]);
    assert_eq!(
        out,
        "SETTINGS-ENABLE-CONNECT-PROTOCOL 1\nSTATUS 403\nBODY no websocket here\n\n\
         ENDED END_STREAM RST_STREAM 0\nRESETS 1:0\nDONE\n"
    );
    wait_access(&log, "\"GET /ws/refuse/1 HTTP/2.0\" 403");
}
