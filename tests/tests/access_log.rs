//! The access log end to end, on both drivers, written to a file: a
//! tunnel's line (status 101, its upstream, why it closed and its exact
//! bytes each way), the `json` and custom formats, SIGUSR1 reopening the
//! file after a rename, and `-t` naming an unknown variable.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringway_tests::*;
use tungstenite::Message;

both_drivers!(
    tunnel_line_has_status_upstream_reason_and_bytes,
    idle_tunnel_logs_idle,
    upstream_closed_tunnel_is_logged,
    upstream_bytes_sent_with_the_101_are_counted,
    json_lines_parse,
    custom_format_variables,
    sigusr1_reopens_a_renamed_log,
    the_dist_logrotate_snippet_rotates_the_log,
);

/// Lines reach the file at least once a second (each worker's flush).
const LOG_WAIT: Duration = Duration::from_secs(10);

fn config(ws: SocketAddr, http: SocketAddr, log_lines: &str, ws_extra: &str) -> String {
    // Lines before the first table belong to the harness's [log] table.
    format!(
        r#"{log_lines}
[servers.app]
listen = ["127.0.0.1:0"]
[servers.app.locations."= /ok"]
return = {{ status = 200, body = "OK" }}
[servers.app.locations."/api/"]
proxy_pass = "http://{http}"
[servers.app.locations."/ws/"]
proxy_pass = "http://{ws}"
{ws_extra}
"#
    )
}

fn log_path(tag: &str) -> PathBuf {
    temp_dir(tag).join("access.log")
}

fn start(config: &str, d: Driver, runtime: &str, log: &Path) -> Ringway {
    Ringway::start_with_log(config, d, runtime, log.to_str().unwrap())
}

/// The file's lines once `ready` holds on them (bounded).
fn lines_until(path: &Path, what: &str, ready: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = Instant::now() + LOG_WAIT;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        if ready(&lines) {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "{} never had {what} within {LOG_WAIT:?}:\n{text}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The one line containing `needle` (waits for it).
fn line_with(path: &Path, needle: &str) -> String {
    let lines = lines_until(path, needle, |l| l.iter().any(|l| l.contains(needle)));
    let found: Vec<&String> = lines.iter().filter(|l| l.contains(needle)).collect();
    assert_eq!(found.len(), 1, "lines with {needle:?}: {lines:#?}");
    found[0].clone()
}

fn get(addr: SocketAddr, path: &str, headers: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n").as_bytes(),
    )
    .unwrap();
    read_response(&mut s)
}

/// The fields of a `ringway` line after its quoted request line:
/// status, body bytes, referer, user agent, request time, upstream,
/// connect time, close reason, bytes from and to the client.
fn after_request(line: &str, request: &str) -> Vec<String> {
    let quoted = format!("\"{request}\" ");
    let at = line
        .find(&quoted)
        .unwrap_or_else(|| panic!("no {quoted:?} in {line:?}"));
    line[at + quoted.len()..]
        .split(' ')
        .map(|f| f.trim_matches('"').to_string())
        .collect()
}

/// A WebSocket through the proxy: `msgs` echoed, then closed by the
/// client. Returns the bytes (sent, received) after the handshake.
fn echo_tunnel(
    addr: SocketAddr,
    path: &str,
    msgs: &[&str],
    headers: &[(&str, &str)],
) -> (u64, u64) {
    use tungstenite::client::IntoClientRequest;
    let (read, written) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let s = Counted {
        s,
        read: read.clone(),
        written: written.clone(),
    };
    let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
    for (n, v) in headers {
        req.headers_mut().append(
            tungstenite::http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    let mut ws = tungstenite::client::client_with_config(req, s, Some(ws_config()))
        .map_err(|e| format!("{e}"))
        .expect("websocket handshake")
        .0;
    let (read0, written0) = (read.load(Ordering::SeqCst), written.load(Ordering::SeqCst));
    for m in msgs {
        ws.send(Message::Text((*m).into())).unwrap();
        assert_eq!(ws.read().unwrap(), Message::Text((*m).into()));
    }
    close_websocket(&mut ws);
    drop(ws);
    (
        written.load(Ordering::SeqCst) - written0,
        read.load(Ordering::SeqCst) - read0,
    )
}

// ---- tests ----

fn tunnel_line_has_status_upstream_reason_and_bytes(d: Driver) {
    let ws = Backend::start();
    let http = HttpBackend::start();
    let log = log_path("tunnel");
    let rw = start(&config(ws.addr, http.addr, "", ""), d, "", &log);
    let (sent, received) = echo_tunnel(
        rw.addr("app"),
        "/ws/chat?room=1",
        &[
            "hello",
            "a somewhat longer second message",
            &"x".repeat(300),
        ],
        &[("User-Agent", "e2e-agent/1.0")],
    );
    let line = line_with(&log, "/ws/chat");
    assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
    let f = after_request(&line, "GET /ws/chat?room=1 HTTP/1.1");
    assert_eq!(f.len(), 10, "{line}");
    assert_eq!(f[0], "101", "{line}");
    assert_eq!(f[1], received.to_string(), "body bytes: {line}");
    assert_eq!(f[2], "-", "{line}");
    assert_eq!(f[3], "e2e-agent/1.0", "{line}");
    assert!(f[4].parse::<f64>().is_ok(), "request time: {line}");
    assert_eq!(f[5], ws.addr.to_string(), "{line}");
    assert_eq!(f[7], "client", "close reason: {line}");
    assert_eq!(f[8], sent.to_string(), "bytes from the client: {line}");
    assert_eq!(f[9], received.to_string(), "bytes to the client: {line}");

    // A plain request's line has no tunnel fields.
    get(rw.addr("app"), "/ok", "");
    let line = line_with(&log, "\"GET /ok HTTP/1.1\"");
    let f = after_request(&line, "GET /ok HTTP/1.1");
    assert_eq!(f[0], "200", "{line}");
    assert_eq!(f[1], "2", "{line}");
    assert_eq!(f[5..], ["-", "-", "-", "-", "-"], "{line}");
}

fn idle_tunnel_logs_idle(d: Driver) {
    let ws = Backend::start();
    let http = HttpBackend::start();
    let log = log_path("idle");
    let rw = start(
        &config(ws.addr, http.addr, "", "proxy_read_timeout = \"1s\""),
        d,
        "",
        &log,
    );
    let started = Instant::now();
    let mut ws_client = ws_handshake(
        TcpStream::connect(rw.addr("app")).unwrap(),
        &format!("ws://{}/ws/quiet", rw.addr("app")),
    );
    // No traffic: ringway closes the tunnel after about a second.
    match ws_client.read() {
        Ok(Message::Close(_)) | Err(_) => {}
        Ok(m) => panic!("unexpected message {m:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(8));
    let line = line_with(&log, "/ws/quiet");
    let f = after_request(&line, "GET /ws/quiet HTTP/1.1");
    assert_eq!(f[0], "101", "{line}");
    assert_eq!(f[7], "idle", "{line}");
    assert_eq!((f[8].as_str(), f[9].as_str()), ("0", "0"), "{line}");
    let secs: f64 = f[4].parse().unwrap();
    assert!((0.9..8.0).contains(&secs), "request time {secs}: {line}");
}

fn upstream_closed_tunnel_is_logged(d: Driver) {
    let ws = Backend::start();
    let http = HttpBackend::start();
    let log = log_path("bye");
    let rw = start(&config(ws.addr, http.addr, "", ""), d, "", &log);
    let mut s = TcpStream::connect(rw.addr("app")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(upgrade_request("/ws/bye").as_bytes()).unwrap();
    let received = read_after_head(&mut s);
    // The backend's close frame (no payload) came through.
    assert_eq!(received, [0x88, 0x00]);
    drop(s);
    let line = line_with(&log, "/ws/bye");
    let f = after_request(&line, "GET /ws/bye HTTP/1.1");
    assert_eq!(f[0], "101", "{line}");
    // The backend closed first (its close frame, then its end of stream).
    assert_eq!(f[7], "upstream", "{line}");
    assert_eq!(f[8], "0", "{line}");
    assert_eq!(f[9], received.len().to_string(), "{line}");
}

fn upgrade_request(path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// Read a 101 head, then every byte until EOF; returns those bytes.
fn read_after_head(s: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e) => panic!("reading the tunnel: {e}; got {all:?}"),
        }
    }
    let end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head")
        + 4;
    let head = String::from_utf8_lossy(&all[..end]);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    all[end..].to_vec()
}

/// An upstream that answers 101 and its first frames in one write (so
/// they reach ringway together), then closes.
fn eager_backend() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut c) = conn else { continue };
            c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                if c.read(&mut byte).unwrap_or(0) == 0 {
                    break;
                }
                head.push(byte[0]);
            }
            let text = String::from_utf8_lossy(&head).to_string();
            let key = text
                .lines()
                .find_map(|l| {
                    let (n, v) = l.split_once(':')?;
                    n.eq_ignore_ascii_case("sec-websocket-key")
                        .then(|| v.trim().to_string())
                })
                .unwrap_or_default();
            let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
            let mut out = format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n").into_bytes();
            out.extend_from_slice(&[0x81, 0x05]);
            out.extend_from_slice(b"early");
            out.extend_from_slice(&[0x88, 0x00]);
            let _ = c.write_all(&out);
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    });
    addr
}

fn upstream_bytes_sent_with_the_101_are_counted(d: Driver) {
    let ws = eager_backend();
    let http = HttpBackend::start();
    let log = log_path("eager");
    let rw = start(&config(ws, http.addr, "", ""), d, "", &log);
    let mut s = TcpStream::connect(rw.addr("app")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(upgrade_request("/ws/eager").as_bytes())
        .unwrap();
    let received = read_after_head(&mut s);
    assert_eq!(received, b"\x81\x05early\x88\x00");
    drop(s);
    let line = line_with(&log, "/ws/eager");
    let f = after_request(&line, "GET /ws/eager HTTP/1.1");
    assert_eq!(f[0], "101", "{line}");
    assert_eq!(f[1], "9", "body bytes: {line}");
    assert_eq!(f[9], "9", "bytes to the client: {line}");
}

fn json_lines_parse(d: Driver) {
    let ws = Backend::start();
    let http = HttpBackend::start();
    let log = log_path("json");
    let rw = start(
        &config(ws.addr, http.addr, "log_format = \"json\"", ""),
        d,
        "",
        &log,
    );
    let addr = rw.addr("app");
    get(addr, "/ok?a=1&b=\"q\"", "User-Agent: agent \"quoted\"\r\n");
    get(addr, "/missing", "");
    get(addr, "/api/thing", "");
    let (sent, received) = echo_tunnel(addr, "/ws/json", &["one", "two"], &[]);
    let lines = lines_until(&log, "four lines", |l| l.len() >= 4);
    assert_eq!(lines.len(), 4, "{lines:#?}");
    let v: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let by_uri = |uri: &str| -> &serde_json::Value {
        v.iter()
            .find(|o| o["request_uri"] == uri)
            .unwrap_or_else(|| panic!("no line for {uri}: {lines:#?}"))
    };
    let ok = by_uri("/ok?a=1&b=\"q\"");
    assert_eq!(ok["status"], 200);
    assert_eq!(ok["remote_addr"], "127.0.0.1");
    assert_eq!(ok["request_method"], "GET");
    assert_eq!(ok["http_user_agent"], "agent \"quoted\"");
    assert_eq!(ok["body_bytes_sent"], 2);
    assert!(ok["request_time"].is_number(), "{ok}");
    assert!(ok.get("tunnel_close_reason").is_none(), "{ok}");
    assert_eq!(by_uri("/missing")["status"], 404);
    let api = by_uri("/api/thing");
    assert_eq!(api["status"], 200);
    assert_eq!(api["upstream_addr"], http.addr.to_string());
    let t = by_uri("/ws/json");
    assert_eq!(t["status"], 101);
    assert_eq!(t["remote_addr"], "127.0.0.1");
    assert_eq!(t["upstream_addr"], ws.addr.to_string());
    assert_eq!(t["tunnel_close_reason"], "client");
    assert_eq!(t["tunnel_bytes_from_client"], sent);
    assert_eq!(t["tunnel_bytes_to_client"], received);
}

fn custom_format_variables(d: Driver) {
    let ws = Backend::start();
    let http = HttpBackend::start();
    let log = log_path("custom");
    let rw = start(
        &config(
            ws.addr,
            http.addr,
            "log_format = 'custom: $remote_addr $status $request_time \"$upstream_addr\" [$http_x_test] ${request_method}!'",
            "",
        ),
        d,
        "",
        &log,
    );
    let addr = rw.addr("app");
    get(addr, "/api/one", "X-Test: hello \"there\"\r\n");
    get(addr, "/ok", "");
    let (sent, _) = echo_tunnel(addr, "/ws/custom", &["x"], &[("X-Test", "tunnel-header")]);
    assert!(sent > 0);
    let lines = lines_until(&log, "three lines", |l| l.len() >= 3);
    assert_eq!(lines.len(), 3, "{lines:#?}");
    // Each line: `custom: IP STATUS TIME "UPSTREAM" [X-TEST] METHOD!`.
    let parse = |l: &str| -> Vec<String> {
        let rest = l.strip_prefix("custom: ").unwrap_or_else(|| panic!("{l}"));
        rest.split(' ').map(str::to_string).collect()
    };
    let api = lines
        .iter()
        .find(|l| l.contains(" 200 ") && !l.contains("\"-\""))
        .expect("the proxied line");
    assert_eq!(
        api,
        &format!(
            "custom: 127.0.0.1 200 {} \"{}\" [hello \\x22there\\x22] GET!",
            parse(api)[2],
            http.addr
        )
    );
    assert!(parse(api)[2].parse::<f64>().is_ok(), "{api}");
    let ok = lines
        .iter()
        .find(|l| l.contains("\"-\""))
        .expect("the /ok line");
    assert_eq!(
        ok,
        &format!("custom: 127.0.0.1 200 {} \"-\" [-] GET!", parse(ok)[2])
    );
    let t = lines
        .iter()
        .find(|l| l.contains(" 101 "))
        .expect("the tunnel line");
    assert_eq!(
        t,
        &format!(
            "custom: 127.0.0.1 101 {} \"{}\" [tunnel-header] GET!",
            parse(t)[2],
            ws.addr
        )
    );
}

fn sigusr1_reopens_a_renamed_log(d: Driver) {
    let ws = Backend::start();
    let http = HttpBackend::start();
    let log = log_path("rotate");
    let rw = start(
        &config(ws.addr, http.addr, "", ""),
        d,
        "workers = 2\n",
        &log,
    );
    let addr = rw.addr("app");
    for i in 0..6 {
        get(addr, &format!("/ok?before={i}"), "");
    }
    lines_until(&log, "six lines", |l| l.len() >= 6);
    let rotated = log.with_extension("log.1");
    std::fs::rename(&log, &rotated).unwrap();
    rw.signal(libc::SIGUSR1);
    // Every worker reopens.
    rw.wait_for_log_count("access log reopened", 2, Duration::from_secs(10));
    for i in 0..6 {
        get(addr, &format!("/ok?after={i}"), "");
    }
    let new = lines_until(&log, "six new lines", |l| l.len() >= 6);
    assert_eq!(new.len(), 6, "{new:#?}");
    assert!(new.iter().all(|l| l.contains("after=")), "{new:#?}");
    let old: Vec<String> = std::fs::read_to_string(&rotated)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(old.len(), 6, "{old:#?}");
    assert!(old.iter().all(|l| l.contains("before=")), "{old:#?}");
}

/// `dist/ringway.logrotate`, run by the real logrotate: `-d` reads it
/// without an error, and a forced rotation renames the log, signals
/// ringway, and the next lines go to a new file. Only the paths, the user
/// and the signal's target are changed for the test (no systemd here: the
/// postrotate line's `systemctl kill` becomes a `kill` of this ringway).
fn the_dist_logrotate_snippet_rotates_the_log(d: Driver) {
    let Ok(out) = std::process::Command::new("logrotate")
        .arg("--version")
        .output()
    else {
        // scripts/test.sh installs logrotate where it can (as root).
        eprintln!("logrotate is not installed; skipped");
        return;
    };
    assert!(out.status.success());
    let ws = Backend::start();
    let http = HttpBackend::start();
    let log = log_path("logrotate");
    let dir = log.parent().unwrap().to_path_buf();
    let rw = start(&config(ws.addr, http.addr, "", ""), d, "", &log);
    let addr = rw.addr("app");
    for i in 0..3 {
        get(addr, &format!("/ok?before={i}"), "");
    }
    lines_until(&log, "three lines", |l| l.len() >= 3);

    let id = |flag: &str| {
        let out = std::process::Command::new("id").arg(flag).output().unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let snippet = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist/ringway.logrotate"),
    )
    .unwrap();
    let mut conf = snippet.clone();
    for (from, to) in [
        ("/var/log/ringway/", format!("{}/", dir.display())),
        (
            "su ringway ringway",
            format!("su {} {}", id("-un"), id("-gn")),
        ),
        (
            "systemctl kill --signal=USR1 ringway.service",
            format!("kill -USR1 {}", rw.pid()),
        ),
    ] {
        assert!(
            conf.contains(from),
            "dist/ringway.logrotate no longer has `{from}`"
        );
        conf = conf.replace(from, &to);
    }
    let conf_path = dir.join("ringway.logrotate");
    std::fs::write(&conf_path, conf).unwrap();
    let state = dir.join("logrotate.state");
    let run = |mode: &str| {
        let out = std::process::Command::new("logrotate")
            .arg(mode)
            .arg("-s")
            .arg(&state)
            .arg(&conf_path)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "logrotate {mode}: {text}");
        assert!(!text.contains("error:"), "logrotate {mode}: {text}");
        text
    };
    let debug = run("-d");
    assert!(debug.contains("rotating pattern"), "{debug}");
    run("-f");
    rw.wait_for_log("access log reopened", LOG_WAIT);
    for i in 0..3 {
        get(addr, &format!("/ok?after={i}"), "");
    }
    let new = lines_until(&log, "three new lines", |l| l.len() >= 3);
    assert!(new.iter().all(|l| l.contains("after=")), "{new:#?}");
    let rotated = std::fs::read_to_string(log.with_extension("log.1")).unwrap();
    assert_eq!(rotated.lines().count(), 3, "{rotated}");
    assert!(rotated.lines().all(|l| l.contains("before=")), "{rotated}");
}

#[test]
fn unknown_variable_fails_the_test_naming_log_format() {
    let (code, out, _) = config_test(
        "[log]\nlog_format = \"$remote_addr $no_such_thing\"\n\n[servers.app]\nlisten = [\"127.0.0.1:0\"]\n[servers.app.locations.\"/\"]\nreturn = { status = 200 }\n",
    );
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("log.log_format"), "{out}");
    assert!(out.contains("no_such_thing"), "{out}");
    // The same file with a known variable passes.
    let (code, out, _) = config_test(
        "[log]\nlog_format = \"$remote_addr $tunnel_close_reason\"\n\n[servers.app]\nlisten = [\"127.0.0.1:0\"]\n[servers.app.locations.\"/\"]\nreturn = { status = 200 }\n",
    );
    assert_eq!(code, 0, "{out}");
}
