//! Which upgrades a location forwards (`upgrade = [...]`, default
//! `["websocket"]`), and why: h2c smuggling.
//!
//! A client that sends `Upgrade: h2c` to a proxied location of a proxy
//! that forwards the upgrade verbatim gets, from an h2c-capable backend
//! (Hypercorn upgrades on `Upgrade: h2c` alone), a `101` and a blind
//! tunnel; it then speaks HTTP/2 straight to the backend and reaches paths
//! the proxy refuses (an `/admin` behind `return 403`), unlogged.
//!
//! What is checked here, on both drivers:
//!
//! - an h2c upgrade request (every spelling: with and without
//!   `HTTP2-Settings`, listed in `Connection` or not, `H2C`, empty list
//!   elements, several `Upgrade` fields) to a location that does not name
//!   h2c is proxied as a plain request: the recording backend's raw bytes
//!   never hold `h2c` nor `HTTP2-Settings`, the client never gets a `101`,
//!   and the connection stays HTTP/1.1 — the next request on it, to a
//!   `return 403` location, gets ringway's 403, and both are in the access
//!   log; an HTTP/2 preface sent next gets an error from ringway and never
//!   reaches the backend;
//! - `Upgrade: websocket, h2c` (and the other mixed lists) forwards the
//!   WebSocket upgrade alone;
//! - a `101` naming a protocol ringway did not forward, or answering a
//!   request ringway downgraded, is a 502;
//! - `upgrade = ["h2c"]` forwards and tunnels h2c, `upgrade = []` answers
//!   a WebSocket handshake as a plain request;
//! - `ringway -t` warns about `h2c` and refuses malformed `upgrade` values
//!   naming the file, line and key;
//! - with a real h2c server (Hypercorn) and an independent client library
//!   (Python `h2`): the smuggled `/admin` is never reached through the
//!   default key, and is reached where `upgrade = ["h2c"]` allows it (so
//!   the test can fail, and the key works both ways).
//!
//! The recorder (`recorder.rs`) plays the h2c-capable backend for the raw
//! tests: a request whose `Upgrade` lists `h2c` gets a `101 h2c` and an
//! echo, and a target ending in `proto-NAME` gets a `101` naming `NAME`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use ringway_tests::http1::Parsed;
use ringway_tests::recorder::{ConnRecord, Recorder};
use ringway_tests::tls_support::run_bounded;
use ringway_tests::*;

both_drivers!(
    h2c_upgrade_is_proxied_as_a_plain_request,
    http2_preface_after_a_downgraded_upgrade_is_refused,
    a_101_naming_another_protocol_is_502,
    a_101_to_a_downgraded_request_is_502,
    empty_upgrade_list_answers_a_handshake_as_plain,
    hypercorn_h2c_upgrade_is_not_forwarded,
);

/// Tests that run a tunnel: on every relay.
mod tunnels {
    use super::*;
    every_relay!(
        websocket_h2c_list_forwards_websocket_alone,
        h2c_location_tunnels_h2c,
        hypercorn_h2c_upgrade_is_forwarded_where_allowed,
    );
}

/// A valid `HTTP2-Settings` value (base64url SETTINGS payload).
const SETTINGS: &str = "AAMAAABkAARAAAAAAAIAAAAA";
const WS_KEY: &str = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";
/// The HTTP/2 connection preface and an empty SETTINGS frame.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";
/// Access log lines reach the file at least once a second.
const LOG_WAIT: Duration = Duration::from_secs(10);
const WAIT: Duration = Duration::from_secs(10);

/// `/ws/` (a WebSocket location, one upstream connection per request) and
/// `/api/` (a REST location on a pooled upstream) with the default
/// `upgrade`, `/admin/` refused by ringway, and `extra` (locations with
/// an `upgrade` key).
fn config(rec: SocketAddr, extra: &str) -> String {
    format!(
        r#"
[upstreams.pooled]
servers = [{{ addr = "{rec}" }}]
keepalive = 8
{}
[servers.s.locations."/ws/"]
proxy_pass = "http://{rec}"
proxy_read_timeout = "5s"
[servers.s.locations."/api/"]
proxy_pass = "http://pooled"
proxy_read_timeout = "5s"
{extra}
"#,
        server("/admin/")
    )
}

/// Server `s` on a free port, with `admin` answered 403 by ringway.
fn server(admin: &str) -> String {
    format!(
        r#"
[servers.s]
listen = ["127.0.0.1:0"]
client_header_timeout = "5s"
[servers.s.locations."{admin}"]
return = {{ status = 403, body = "denied" }}
"#
    )
}

/// Locations with an `upgrade` key (unknown to an engine without it).
fn keyed_locations(rec: SocketAddr) -> String {
    format!(
        r#"
[servers.s.locations."/h2c/"]
proxy_pass = "http://{rec}"
proxy_read_timeout = "5s"
upgrade = ["h2c"]
[servers.s.locations."/both/"]
proxy_pass = "http://{rec}"
proxy_read_timeout = "5s"
upgrade = ["WebSocket", "h2c"]
[servers.s.locations."/none/"]
proxy_pass = "http://pooled"
proxy_read_timeout = "5s"
upgrade = []
"#
    )
}

/// Every way of asking for h2c: (what it is, the fields after Host).
fn h2c_asks() -> Vec<(&'static str, String)> {
    vec![
        (
            "settings listed in Connection",
            format!("Upgrade: h2c\r\nHTTP2-Settings: {SETTINGS}\r\nConnection: Upgrade, HTTP2-Settings\r\n"),
        ),
        ("no settings", "Upgrade: h2c\r\nConnection: Upgrade\r\n".into()),
        (
            "settings not listed",
            format!("Upgrade: h2c\r\nHTTP2-Settings: {SETTINGS}\r\nConnection: Upgrade\r\n"),
        ),
        (
            "Connection: keep-alive, settings",
            format!("Upgrade: h2c\r\nHTTP2-Settings: {SETTINGS}\r\nConnection: keep-alive\r\n"),
        ),
        (
            "Connection: keep-alive, no settings",
            "Upgrade: h2c\r\nConnection: keep-alive\r\n".into(),
        ),
        (
            "no Connection",
            format!("Upgrade: h2c\r\nHTTP2-Settings: {SETTINGS}\r\n"),
        ),
        (
            "odd case",
            format!("Upgrade: H2C\r\nHTTP2-Settings: {SETTINGS}\r\nConnection: UPGRADE, http2-settings\r\n"),
        ),
        (
            "empty list elements",
            "Upgrade: , h2c ,\r\nConnection: Upgrade\r\n".into(),
        ),
        (
            "two Upgrade fields",
            "Upgrade: foo\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n".into(),
        ),
    ]
}

fn client(rw: &Ringway) -> TcpStream {
    rw.client("s")
}

fn get(target: &str, fields: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: x\r\n{fields}\r\n").into_bytes()
}

fn status(head: &str) -> u16 {
    head.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// A field of a response head (the first with that name).
fn head_field(head: &str, name: &str) -> Option<String> {
    head.split("\r\n").skip(1).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

/// The comma-list elements of every field `name` of `req`, lowercased.
fn list(req: &Parsed, name: &str) -> Vec<String> {
    req.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .flat_map(|(_, v)| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// A request forwarded as a plain request: no trace of an upgrade.
fn assert_plain(req: &Parsed, what: &str) {
    assert!(
        req.header("upgrade").is_none()
            && req.header("http2-settings").is_none()
            && !list(req, "connection").iter().any(|t| t == "upgrade"),
        "{what}: the backend got an upgrade: {req:?}"
    );
}

/// No byte the backend received names h2c or carries HTTP2-Settings.
fn assert_no_h2c_upstream(conns: &[ConnRecord]) {
    for c in conns {
        let raw = String::from_utf8_lossy(&c.raw).to_ascii_lowercase();
        assert!(
            !raw.contains("h2c") && !raw.contains("http2-settings"),
            "h2c reached the backend: {raw:?}"
        );
        assert!(
            !raw.contains("pri * http/2.0"),
            "an HTTP/2 preface reached the backend: {raw:?}"
        );
    }
}

fn requests_in(conns: &[ConnRecord]) -> Vec<Parsed> {
    conns.iter().flat_map(|c| c.requests.clone()).collect()
}

/// Wait (bounded) until the backend has served `n` requests.
fn wait_requests(rec: &Recorder, n: usize) -> Vec<ConnRecord> {
    rec.wait_for(&format!("{n} requests"), WAIT, |c| {
        c.iter().map(|c| c.requests.len()).sum::<usize>() >= n
    })
}

/// The access log's lines once each of `needles` is in one (bounded).
fn log_lines_with(path: &Path, needles: &[String]) -> Vec<String> {
    let deadline = Instant::now() + LOG_WAIT;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if needles.iter().all(|n| text.contains(n.as_str())) {
            return text.lines().map(str::to_string).collect();
        }
        let missing: Vec<&String> = needles
            .iter()
            .filter(|n| !text.contains(n.as_str()))
            .collect();
        assert!(
            Instant::now() < deadline,
            "{} never logged {missing:?} within {LOG_WAIT:?}:\n{text}",
            path.display()
        );
        // The log is a file written by a worker's periodic flush: poll it.
        thread::sleep(Duration::from_millis(50));
    }
}

/// Every h2c ask, on the WebSocket and the REST location, is proxied as a
/// plain request; the connection stays HTTP/1.1: a request to a refused
/// location behind it is refused and logged, and a third is proxied.
fn h2c_upgrade_is_proxied_as_a_plain_request(d: Driver) {
    let rec = Recorder::start();
    let log = temp_dir("h2c-log").join("access.log");
    let rw = Ringway::start_with_log(&config(rec.addr, ""), d, "", log.to_str().unwrap());
    let asks = h2c_asks();
    let mut logged = Vec::new();
    for prefix in ["/ws/", "/api/"] {
        let tag = prefix.trim_matches('/');
        for (i, (what, fields)) in asks.iter().enumerate() {
            let what = format!("{prefix} {what}");
            let mut s = client(&rw);
            let target = format!("{prefix}ask-{i}");
            s.write_all(&get(&target, fields)).unwrap();
            let (head, body) = read_response(&mut s);
            assert_ne!(status(&head), 101, "{what}: the client got a 101: {head}");
            assert_eq!(status(&head), 200, "{what}: {head}");
            assert_eq!(body, format!("GET {target} body=0"), "{what}");
            assert!(head_field(&head, "upgrade").is_none(), "{what}: {head}");
            assert_eq!(
                head_field(&head, "connection").as_deref(),
                Some("keep-alive"),
                "{what}: {head}"
            );
            // Still HTTP/1.1, routed: the refused location refuses.
            let admin = format!("/admin/{tag}-{i}");
            s.write_all(&get(&admin, "")).unwrap();
            let (head, body) = read_response(&mut s);
            assert_eq!(status(&head), 403, "{what}: the next request: {head}");
            assert_eq!(body, "denied", "{what}");
            let last = format!("{prefix}last-{i}");
            s.write_all(&get(&last, "Connection: close\r\n")).unwrap();
            let (head, body) = read_response(&mut s);
            assert_eq!(status(&head), 200, "{what}: the third request: {head}");
            assert_eq!(body, format!("GET {last} body=0"), "{what}");
            assert_closed(&mut s);
            logged.push(format!("\"GET {target} HTTP/1.1\" 200 "));
            logged.push(format!("\"GET {admin} HTTP/1.1\" 403 "));
            logged.push(format!("\"GET {last} HTTP/1.1\" 200 "));
        }
    }
    let conns = wait_requests(&rec, 2 * 2 * asks.len());
    assert_no_h2c_upstream(&conns);
    assert!(!conns.iter().any(|c| c.switched), "{conns:#?}");
    let reqs = requests_in(&conns);
    assert_eq!(reqs.len(), 2 * 2 * asks.len(), "{reqs:#?}");
    for r in &reqs {
        assert_plain(r, &r.line());
        assert!(
            !r.target.contains("admin"),
            "a refused path reached the backend: {r:?}"
        );
    }
    log_lines_with(&log, &logged);
}

/// After a downgraded h2c ask, the HTTP/2 preface is read as HTTP/1.1:
/// ringway answers it with an error and closes; the backend never sees it.
fn http2_preface_after_a_downgraded_upgrade_is_refused(d: Driver) {
    let rec = Recorder::start();
    let rw = Ringway::start(&config(rec.addr, ""), d);
    let asks = h2c_asks();
    let mut n = 0;
    for prefix in ["/ws/", "/api/"] {
        for (what, fields) in [&asks[0], &asks[3]] {
            let what = format!("{prefix} {what}");
            let mut s = client(&rw);
            let target = format!("{prefix}pre-{n}");
            n += 1;
            s.write_all(&get(&target, fields)).unwrap();
            let (head, _) = read_response(&mut s);
            assert_eq!(status(&head), 200, "{what}: {head}");
            s.write_all(PREFACE).unwrap();
            let (head, _) = read_response(&mut s);
            let st = status(&head);
            assert!(
                (400..600).contains(&st),
                "{what}: the HTTP/2 preface got {head:?}, not an error"
            );
            assert_closed(&mut s);
        }
    }
    // A last request per location: anything forwarded from the prefaces
    // would have reached the backend before it.
    for prefix in ["/ws/", "/api/"] {
        let mut s = client(&rw);
        s.write_all(&get(&format!("{prefix}end"), "")).unwrap();
        assert_eq!(status(&read_response(&mut s).0), 200);
    }
    let conns = wait_requests(&rec, n + 2);
    assert_no_h2c_upstream(&conns);
    assert_eq!(requests_in(&conns).len(), n + 2, "{conns:#?}");
}

/// A `101` whose `Upgrade` names a protocol ringway did not forward is a
/// 502 and the client connection is closed; the name is compared without
/// regard to case (`WebSocket` answers `websocket`).
fn a_101_naming_another_protocol_is_502(d: Driver) {
    let rec = Recorder::start();
    let rw = Ringway::start(&config(rec.addr, ""), d);
    let ws = format!("Upgrade: websocket\r\nConnection: Upgrade\r\n{WS_KEY}");
    for target in [
        "/ws/proto-other",
        "/ws/proto-h2c",
        "/api/proto-h2c",
        "/api/proto-other",
    ] {
        let mut s = client(&rw);
        s.write_all(&get(target, &ws)).unwrap();
        let (head, _) = read_response(&mut s);
        assert_eq!(status(&head), 502, "{target}: {head}");
        assert_closed(&mut s);
    }
    // The same protocol in another case is the protocol asked for.
    let mut s = client(&rw);
    s.write_all(&get("/ws/proto-WebSocket", &ws)).unwrap();
    let (head, _) = read_response(&mut s);
    assert_eq!(status(&head), 101, "{head}");
    s.write_all(b"ping").unwrap();
    let mut echo = [0u8; 4];
    s.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"ping");
    drop(s);
    // The switched upstream connections of the 502s got nothing more.
    let conns = rec.wait_for("5 switched connections", WAIT, |c| {
        c.iter().filter(|c| c.switched).count() == 5
    });
    for c in conns.iter().filter(|c| c.switched) {
        let target = &c.requests[0].target;
        if !target.ends_with("WebSocket") {
            assert!(
                c.after_switch.is_empty(),
                "bytes into a refused switch: {c:?}"
            );
        }
    }
}

/// A downgraded h2c ask is a plain request: a `101` to it is a 502.
fn a_101_to_a_downgraded_request_is_502(d: Driver) {
    let rec = Recorder::start();
    let rw = Ringway::start(&config(rec.addr, ""), d);
    let asks = h2c_asks();
    for target in ["/ws/switch", "/api/switch"] {
        for (what, fields) in [&asks[0], &asks[1], &asks[3]] {
            let mut s = client(&rw);
            s.write_all(&get(target, fields)).unwrap();
            let (head, _) = read_response(&mut s);
            assert_eq!(status(&head), 502, "{target} {what}: {head}");
            assert_closed(&mut s);
        }
    }
    let conns = wait_requests(&rec, 6);
    assert_no_h2c_upstream(&conns);
    for r in requests_in(&conns) {
        assert_plain(&r, &r.line());
    }
}

/// `upgrade = []`: a WebSocket handshake (and an h2c ask) is answered as
/// a plain request on a kept-alive connection; `/ws/` (default key) in
/// the same server still upgrades.
fn empty_upgrade_list_answers_a_handshake_as_plain(d: Driver) {
    let rec = Recorder::start();
    let rw = Ringway::start(&config(rec.addr, &keyed_locations(rec.addr)), d);
    let ws = format!("Upgrade: websocket\r\nConnection: Upgrade\r\n{WS_KEY}");
    let mut s = client(&rw);
    s.write_all(&get("/none/ws", &ws)).unwrap();
    let (head, body) = read_response(&mut s);
    assert_eq!(status(&head), 200, "{head}");
    assert_eq!(body, "GET /none/ws body=0");
    s.write_all(&get("/admin/x", "")).unwrap();
    let (head, _) = read_response(&mut s);
    assert_eq!(status(&head), 403, "{head}");
    s.write_all(&get("/none/second", &h2c_asks()[0].1)).unwrap();
    let (head, body) = read_response(&mut s);
    assert_eq!(status(&head), 200, "{head}");
    assert_eq!(body, "GET /none/second body=0");
    drop(s);
    let conns = wait_requests(&rec, 2);
    for r in requests_in(&conns) {
        assert_plain(&r, &r.line());
    }
    assert_no_h2c_upstream(&conns);
    // The default key still forwards a WebSocket upgrade.
    let mut s = client(&rw);
    s.write_all(&get("/ws/up", &ws)).unwrap();
    let (head, _) = read_response(&mut s);
    assert_eq!(status(&head), 101, "{head}");
    assert_eq!(head_field(&head, "upgrade").as_deref(), Some("websocket"));
}

/// A list naming websocket and h2c (in one field or two, in any order,
/// with empty elements) forwards the WebSocket upgrade alone; the tunnel
/// then carries bytes both ways. A versioned offer (`websocket/13`) is
/// forwarded as offered, and the recorder's `101` naming bare
/// `websocket` to it is the same protocol: relayed, the tunnel works.
fn websocket_h2c_list_forwards_websocket_alone(d: Driver) {
    let rec = Recorder::start();
    let rw = Ringway::start(&config(rec.addr, ""), d);
    let cases = [
        "Upgrade: websocket, h2c\r\nConnection: Upgrade\r\n".to_string(),
        format!("Upgrade: h2c, WebSocket\r\nHTTP2-Settings: {SETTINGS}\r\nConnection: Upgrade, HTTP2-Settings\r\n"),
        "Upgrade: h2c\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n".to_string(),
        "Upgrade: , websocket ,\r\nConnection: Upgrade\r\n".to_string(),
    ];
    let versioned = "Upgrade: websocket/13, H2C\r\nConnection: Upgrade\r\n";
    let mut n = 0;
    for prefix in ["/ws/", "/api/"] {
        for (i, fields) in cases.iter().enumerate() {
            let target = format!("{prefix}mixed-{i}");
            let mut s = client(&rw);
            s.write_all(&get(&target, &format!("{fields}{WS_KEY}")))
                .unwrap();
            let (head, _) = read_response(&mut s);
            assert_eq!(status(&head), 101, "{fields:?}: {head}");
            assert_eq!(
                head_field(&head, "upgrade").as_deref(),
                Some("websocket"),
                "{fields:?}: {head}"
            );
            let msg = format!("tunnel bytes {target}");
            s.write_all(msg.as_bytes()).unwrap();
            let mut echo = vec![0u8; msg.len()];
            s.read_exact(&mut echo).unwrap();
            assert_eq!(echo, msg.as_bytes());
            n += 1;
            let conns = wait_requests(&rec, n);
            let req = requests_in(&conns)
                .into_iter()
                .find(|r| r.target == target)
                .expect("the upgrade request");
            if i == 0 {
                assert_eq!(req.header("upgrade"), Some("websocket"), "{req:?}");
            }
            let protos: Vec<String> = list(&req, "upgrade")
                .iter()
                .map(|p| p.split('/').next().unwrap_or("").to_string())
                .collect();
            assert_eq!(protos, ["websocket"], "{fields:?}: {req:?}");
            assert!(req.header("http2-settings").is_none(), "{req:?}");
            assert!(
                list(&req, "connection").contains(&"upgrade".to_string()),
                "{req:?}"
            );
        }
        let target = format!("{prefix}versioned");
        let mut s = client(&rw);
        s.write_all(&get(&target, &format!("{versioned}{WS_KEY}")))
            .unwrap();
        let (head, _) = read_response(&mut s);
        assert_eq!(status(&head), 101, "{versioned:?}: {head}");
        s.write_all(b"versioned bytes").unwrap();
        let mut echo = [0u8; 15];
        s.read_exact(&mut echo).unwrap();
        assert_eq!(&echo, b"versioned bytes");
        n += 1;
        let conns = wait_requests(&rec, n);
        let req = requests_in(&conns)
            .into_iter()
            .find(|r| r.target == target)
            .expect("the upgrade request");
        assert_eq!(req.header("upgrade"), Some("websocket/13"), "{req:?}");
    }
    assert_no_h2c_upstream(&rec.conns());
}

/// `upgrade = ["h2c"]` forwards an h2c upgrade (`HTTP2-Settings` too,
/// listed in `Connection`) and relays the `101`; the tunnel carries bytes
/// both ways. A WebSocket handshake there is a plain request; a `101`
/// naming websocket to the h2c ask is a 502; entries match any case.
fn h2c_location_tunnels_h2c(d: Driver) {
    let rec = Recorder::start();
    let rw = Ringway::start(&config(rec.addr, &keyed_locations(rec.addr)), d);
    let asks = h2c_asks();
    // (target, fields, HTTP2-Settings forwarded)
    let cases = [
        ("/h2c/listed", asks[0].1.as_str(), true),
        ("/h2c/bare", asks[1].1.as_str(), false),
        ("/h2c/odd", asks[6].1.as_str(), true),
        ("/both/h2c", asks[0].1.as_str(), true),
    ];
    for (n, (target, fields, settings)) in cases.into_iter().enumerate() {
        let mut s = client(&rw);
        s.write_all(&get(target, fields)).unwrap();
        let (head, _) = read_response(&mut s);
        assert_eq!(status(&head), 101, "{target}: {head}");
        assert_eq!(
            head_field(&head, "upgrade").as_deref(),
            Some("h2c"),
            "{head}"
        );
        s.write_all(PREFACE).unwrap();
        let mut echo = vec![0u8; PREFACE.len()];
        s.read_exact(&mut echo).unwrap();
        assert_eq!(echo, PREFACE, "{target}: the tunnel's echo");
        let conns = wait_requests(&rec, n + 1);
        let req = requests_in(&conns)
            .into_iter()
            .find(|r| r.target == target)
            .expect("the upgrade request");
        assert_eq!(list(&req, "upgrade"), ["h2c"], "{target}: {req:?}");
        let conn = list(&req, "connection");
        assert!(conn.contains(&"upgrade".to_string()), "{target}: {req:?}");
        if settings {
            assert_eq!(
                req.header("http2-settings"),
                Some(SETTINGS),
                "{target}: {req:?}"
            );
            assert!(
                conn.contains(&"http2-settings".to_string()),
                "{target}: {req:?}"
            );
        } else {
            assert!(req.header("http2-settings").is_none(), "{target}: {req:?}");
            assert_eq!(conn, ["upgrade"], "{target}: {req:?}");
        }
        let conns = rec.conns();
        let up = conns
            .iter()
            .find(|c| c.requests.iter().any(|r| r.target == target))
            .unwrap();
        assert_eq!(up.after_switch, PREFACE, "{target}");
    }
    // The h2c location does not forward WebSocket.
    let ws = format!("Upgrade: websocket\r\nConnection: Upgrade\r\n{WS_KEY}");
    let mut s = client(&rw);
    s.write_all(&get("/h2c/ws", &ws)).unwrap();
    let (head, body) = read_response(&mut s);
    assert_eq!(status(&head), 200, "{head}");
    assert_eq!(body, "GET /h2c/ws body=0");
    // "WebSocket" in the list matches websocket.
    let mut s = client(&rw);
    s.write_all(&get("/both/ws", &ws)).unwrap();
    let (head, _) = read_response(&mut s);
    assert_eq!(status(&head), 101, "{head}");
    assert_eq!(head_field(&head, "upgrade").as_deref(), Some("websocket"));
    // A 101 naming websocket to the h2c ask.
    let mut s = client(&rw);
    s.write_all(&get("/h2c/proto-websocket", &asks[0].1))
        .unwrap();
    let (head, _) = read_response(&mut s);
    assert_eq!(status(&head), 502, "{head}");
    assert_closed(&mut s);
}

// ---- ringway -t ----

fn keyed_file(upgrade_line: &str) -> String {
    format!(
        "[servers.s]\nlisten = [\"127.0.0.1:0\"]\n[servers.s.locations.\"/h2c/\"]\nproxy_pass = \"http://127.0.0.1:3000\"\n{upgrade_line}\n"
    )
}

const KEY: &str = "servers.s.locations.\"/h2c/\".upgrade";

#[test]
fn config_test_h2c_is_a_warning_naming_file_line_and_key() {
    for line in ["upgrade = [\"h2c\"]", "upgrade = [\"websocket\", \"H2C\"]"] {
        let (code, out, path) = config_test(&keyed_file(line));
        assert_eq!(code, 0, "a warning does not fail the test: {line}: {out}");
        let warning = out
            .lines()
            .find(|l| l.contains("warning:"))
            .unwrap_or_else(|| panic!("no warning for {line}: {out}"));
        assert!(
            warning.contains(&format!("{}:5", path.display()))
                && warning.contains(KEY)
                && warning.to_ascii_lowercase().contains("h2c"),
            "{line}: {warning}"
        );
    }
}

#[test]
fn config_test_upgrade_without_h2c_passes_quietly() {
    for line in ["upgrade = [\"websocket\"]", "upgrade = []", ""] {
        let (code, out, _) = config_test(&keyed_file(line));
        assert_eq!(code, 0, "{line}: {out}");
        assert!(!out.contains("warning"), "{line}: {out}");
    }
}

#[test]
fn config_test_bad_upgrade_values_name_file_line_and_key() {
    for line in [
        "upgrade = \"websocket\"",
        "upgrade = [\"bad proto\"]",
        "upgrade = [\"\"]",
    ] {
        let (code, out, path) = config_test(&keyed_file(line));
        assert_eq!(code, 1, "{line}: {out}");
        assert!(
            out.contains(&format!("{}:5: {KEY}", path.display())),
            "{line}: {out}"
        );
        assert!(
            !out.contains("unknown key"),
            "{line}: the key is known: {out}"
        );
    }
}

// ---- a real h2c server (Hypercorn) and client (Python h2) ----

const NO_PYTHON: &str = "python3 is missing: this test needs Python 3 with the `hypercorn` and `h2` packages (pip install hypercorn h2)";

fn py_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("py").join(name)
}

/// A child's stdout lines and whether it ended, with a condvar to wait
/// for new ones.
#[derive(Default)]
struct Output {
    state: Mutex<(Vec<String>, bool)>,
    cv: Condvar,
}

/// Hypercorn serving tests/py/h2c_backend.py; killed on drop.
struct Hypercorn {
    child: Child,
    addr: SocketAddr,
    out: Arc<Output>,
}

impl Hypercorn {
    fn start() -> Hypercorn {
        let mut child = match Command::new("python3")
            .arg(py_script("h2c_backend.py"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
        {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!("{NO_PYTHON} ({e})"),
            Err(e) => panic!("cannot run python3: {e}"),
        };
        let out: Arc<Output> = Arc::default();
        let stdout = child.stdout.take().unwrap();
        let o2 = out.clone();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                o2.state.lock().unwrap().0.push(line);
                o2.cv.notify_all();
            }
            o2.state.lock().unwrap().1 = true;
            o2.cv.notify_all();
        });
        let stderr = child.stderr.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("[hypercorn] {line}");
            }
        });
        let mut h = Hypercorn {
            child,
            addr: "127.0.0.1:0".parse().unwrap(),
            out,
        };
        let port = h.wait_line("its port", Duration::from_secs(30), |l| {
            l.starts_with("PORT ") || l.starts_with("MISSING-HYPERCORN")
        });
        assert!(
            !port.starts_with("MISSING"),
            "the Python `hypercorn` package is missing: install it (pip install hypercorn h2); {port}"
        );
        h.addr.set_port(port[5..].trim().parse().expect("PORT n"));
        h
    }

    /// Wait (bounded) for a stdout line `pred` holds for.
    fn wait_line(&self, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        let mut g = self.out.state.lock().unwrap();
        loop {
            if let Some(l) = g.0.iter().find(|l| pred(l)) {
                return l.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !g.1 && !left.is_zero(),
                "hypercorn: no {what} within {timeout:?} (exited: {}); stdout: {:?}",
                g.1,
                g.0
            );
            g = self.out.cv.wait_timeout(g, left).unwrap().0;
        }
    }

    /// The requests its app served: "REQUEST <http version> <path>".
    fn requests(&self) -> Vec<String> {
        let g = self.out.state.lock().unwrap();
        g.0.iter()
            .filter(|l| l.starts_with("REQUEST "))
            .cloned()
            .collect()
    }
}

impl Drop for Hypercorn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn hypercorn_config(hyp: SocketAddr, extra: &str) -> String {
    format!(
        r#"{}
[servers.s.locations."/"]
proxy_pass = "http://{hyp}"
proxy_read_timeout = "10s"
{extra}
"#,
        server("/admin")
    )
}

/// Run tests/py/h2c_client.py against `addr` for `path`; its stdout.
fn h2c_client(addr: SocketAddr, path: &str) -> String {
    let mut cmd = Command::new("python3");
    cmd.arg(py_script("h2c_client.py"))
        .arg(addr.ip().to_string())
        .arg(addr.port().to_string())
        .arg(path);
    let out = run_bounded(&mut cmd, None, Duration::from_secs(60), NO_PYTHON);
    assert!(
        !out.stdout.contains("MISSING-H2"),
        "the Python `h2` package is missing: install it (pip install h2); {}",
        out.all()
    );
    assert!(
        out.ok() && out.stdout.contains("DONE"),
        "the h2c client failed: {}",
        out.all()
    );
    out.stdout
}

/// ringway's own answer to `GET /admin` over HTTP/1.1.
fn assert_admin_refused(rw: &Ringway) {
    let mut s = client(rw);
    s.write_all(&get("/admin", "")).unwrap();
    let (head, body) = read_response(&mut s);
    assert_eq!((status(&head), body.as_str()), (403, "denied"), "{head}");
}

/// Default key: Hypercorn never sees the upgrade, answers the request in
/// HTTP/1.1, and the smuggled `/admin` (an HTTP/2 preface pressed on the
/// same connection anyway) is refused by ringway, never reaching it.
fn hypercorn_h2c_upgrade_is_not_forwarded(d: Driver) {
    let hyp = Hypercorn::start();
    let rw = Ringway::start(&hypercorn_config(hyp.addr, ""), d);
    assert_admin_refused(&rw);
    let out = h2c_client(rw.addr("s"), "/public/");
    assert!(out.contains("HTTP1-STATUS 200\n"), "{out}");
    assert!(out.contains("HTTP1-BODY public\n"), "{out}");
    assert!(!out.contains("HTTP1-UPGRADE"), "{out}");
    assert!(
        !out.contains("H2-STREAM"),
        "HTTP/2 spoken through ringway: {out}"
    );
    let after = out
        .lines()
        .find_map(|l| l.strip_prefix("AFTER-PREFACE "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        after.starts_with("HTTP/1.1 4") || after.starts_with("HTTP/1.1 5"),
        "the HTTP/2 preface got {after:?}, not an error from ringway: {out}"
    );
    hyp.wait_line("the /public/ request", WAIT, |l| l.starts_with("REQUEST "));
    assert_eq!(hyp.requests(), ["REQUEST 1.1 /public/"], "{out}");
}

/// `upgrade = ["h2c"]`: the 101 arrives and the smuggled `/admin` is
/// answered "secret" over HTTP/2 though ringway refuses `/admin` — what
/// the default key prevents, and proof this test can fail.
fn hypercorn_h2c_upgrade_is_forwarded_where_allowed(d: Driver) {
    let hyp = Hypercorn::start();
    let extra = format!(
        "[servers.s.locations.\"/open/\"]\nproxy_pass = \"http://{}\"\nupgrade = [\"h2c\"]\n",
        hyp.addr
    );
    let rw = Ringway::start(&hypercorn_config(hyp.addr, &extra), d);
    assert_admin_refused(&rw);
    let out = h2c_client(rw.addr("s"), "/open/public/");
    assert!(out.contains("HTTP1-STATUS 101\n"), "{out}");
    assert!(out.contains("HTTP1-UPGRADE h2c\n"), "{out}");
    assert!(
        out.contains("H2-STREAM 1 STATUS 200 BODY public\n"),
        "{out}"
    );
    assert!(
        out.contains("H2-STREAM 3 STATUS 200 BODY secret\n"),
        "{out}"
    );
    hyp.wait_line("the smuggled /admin", WAIT, |l| l == "REQUEST 2 /admin");
}
