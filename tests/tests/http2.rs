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

use ringway_tests::tls_support::*;
use ringway_tests::*;

both_drivers!(
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
