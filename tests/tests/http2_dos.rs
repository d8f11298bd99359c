//! Denial of service against ringway's HTTP/2 server (RFC 9113), end to
//! end on both drivers: hand-built frames over a raw TCP socket to an h2c
//! (prior knowledge) server. For each attack class the attacking
//! connection gets the verdict `engine/src/h2/conn.rs` documents (the abuse
//! budget's GOAWAY ENHANCE_YOUR_CALM, a 431, FRAME_SIZE_ERROR, ...), the
//! attack's effect is bounded (process RSS, requests reaching the
//! upstream), and a well-behaved client on another connection is served
//! (curl, h2c prior knowledge, 200) after it, with the process still up.
//!
//! Needs `curl` with HTTP/2.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringway_tests::*;

both_drivers!(
    rapid_reset_is_ended_with_enhance_your_calm,
    continuation_flood_is_ended_with_enhance_your_calm,
    hpack_bomb_is_answered_431,
    ping_flood_is_ended_with_enhance_your_calm,
    settings_flood_is_ended_with_enhance_your_calm,
    empty_data_flood_is_ended_with_enhance_your_calm,
);

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const ENHANCE_YOUR_CALM: u32 = 0xb;

fn config(http: SocketAddr) -> String {
    format!(
        r#"
[servers.app]
listen = ["127.0.0.1:0"]
http2 = "h2c"
send_timeout = "1s"
[servers.app.locations."= /r"]
return = {{ status = 200, body = "ok" }}
[servers.app.locations."/api/"]
proxy_pass = "http://{http}"
"#
    )
}

/// An HTTP/2 frame: length, type, flags, stream, payload (RFC 9113 §4.1).
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    f.extend_from_slice(&[kind, flags]);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// The preface and an empty SETTINGS.
fn hello() -> Vec<u8> {
    let mut out = PREFACE.to_vec();
    out.extend(frame(4, 0, 0, &[]));
    out
}

/// A GET of `path` (authority "a", scheme http) as an HPACK block.
fn get_block(path: &str) -> Vec<u8> {
    [
        &[0x82, 0x86, 0x04, path.len() as u8][..],
        path.as_bytes(),
        &[0x01, 1, b'a'],
    ]
    .concat()
}

/// The whole frames in `b`: (type, flags, stream, payload).
fn frames(b: &[u8]) -> Vec<(u8, u8, u32, &[u8])> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + 9 <= b.len() {
        let len = u32::from_be_bytes([0, b[i], b[i + 1], b[i + 2]]) as usize;
        if i + 9 + len > b.len() {
            break;
        }
        let id = u32::from_be_bytes([b[i + 5], b[i + 6], b[i + 7], b[i + 8]]) & 0x7fff_ffff;
        out.push((b[i + 3], b[i + 4], id, &b[i + 9..i + 9 + len]));
        i += 9 + len;
    }
    out
}

/// The error code of the GOAWAY in `b`, if any.
fn goaway_code(b: &[u8]) -> Option<u32> {
    frames(b)
        .into_iter()
        .find(|f| f.0 == 7 && f.3.len() >= 8)
        .map(|f| u32::from_be_bytes([f.3[4], f.3[5], f.3[6], f.3[7]]))
}

/// Connect, write `prelude`, then `chunk(i)` for i in 0..max until a write
/// fails or ringway has closed the connection, while a reader thread
/// collects what ringway sends until it closes (10 s bound). Returns what
/// was read and how many chunks went out; panics if ringway never closed.
fn flood(rw: &Ringway, prelude: &[u8], chunk: impl Fn(u32) -> Vec<u8>, max: u32) -> (Vec<u8>, u32) {
    let mut s = TcpStream::connect(rw.addr("app")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = s.try_clone().unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let done2 = done.clone();
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = [0u8; 16384];
        let closed = loop {
            match r.read(&mut buf) {
                Ok(0) => break true,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
                Err(_) => break false,
            }
        };
        done2.store(true, Ordering::SeqCst);
        (got, closed)
    });
    let mut sent = 0;
    if s.write_all(prelude).is_ok() {
        while sent < max && !done.load(Ordering::SeqCst) {
            if s.write_all(&chunk(sent)).is_err() {
                break;
            }
            sent += 1;
        }
    }
    let (got, closed) = reader.join().unwrap();
    assert!(
        closed,
        "not closed within 10 s after {sent} chunks: {got:?}"
    );
    (got, sent)
}

/// The process's resident set in KiB (/proc/PID/status VmRSS).
fn rss_kib(rw: &Ringway) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", rw.pid())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// A well-behaved client on a connection of its own is served: curl over
/// h2c prior knowledge gets 200 and the body; the process is up and its
/// RSS under 256 MiB.
fn still_serves(rw: &Ringway) {
    let out = Command::new("curl")
        .args(["-sS", "--http2-prior-knowledge", "--max-time", "10"])
        .args(["-w", " %{http_code} %{http_version}"])
        .arg(format!("http://{}/r", rw.addr("app")))
        .output()
        .expect("curl");
    let out = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out, "ok 200 2", "{}", rw.logs());
    let rss = rss_kib(rw);
    assert!(rss < 256 * 1024, "RSS {rss} KiB");
}

/// Rapid reset (CVE-2023-44487): HEADERS + RST_STREAM(CANCEL) pairs for
/// proxied GETs. The budget (100 tokens, 10/s) ends the connection with
/// ENHANCE_YOUR_CALM, at most a few hundred of the 20 000 requests reach
/// the upstream, and another client is served.
fn rapid_reset_is_ended_with_enhance_your_calm(d: Driver) {
    let http = HttpBackend::start();
    let rw = Ringway::start(&config(http.addr), d);
    let (got, sent) = flood(
        &rw,
        &hello(),
        |i| {
            let id = 2 * i + 1;
            let mut f = frame(1, 0x4 | 0x1, id, &get_block("/api/x"));
            f.extend(frame(3, 0, id, &8u32.to_be_bytes()));
            f
        },
        20_000,
    );
    assert_eq!(
        goaway_code(&got),
        Some(ENHANCE_YOUR_CALM),
        "{sent}: {got:?}"
    );
    still_serves(&rw);
    let upstream = http.seen.lock().unwrap().len();
    assert!(upstream <= 300, "{upstream} requests reached the upstream");
}

/// CONTINUATION flood (CVE-2024-27316): HEADERS without END_HEADERS, then
/// 16 KiB CONTINUATION frames without end. Past max_header_list_size
/// (32 KiB) + 1 KiB gathered the connection ends with ENHANCE_YOUR_CALM;
/// nowhere near the 1000 frames (16 MiB) offered go out.
fn continuation_flood_is_ended_with_enhance_your_calm(d: Driver) {
    let http = HttpBackend::start();
    let rw = Ringway::start(&config(http.addr), d);
    let mut prelude = hello();
    prelude.extend(frame(1, 0x1, 1, &get_block("/r")));
    let junk = vec![0x40u8; 16384];
    let (got, sent) = flood(&rw, &prelude, |_| frame(9, 0, 1, &junk), 1000);
    assert_eq!(
        goaway_code(&got),
        Some(ENHANCE_YOUR_CALM),
        "{sent}: {got:?}"
    );
    assert!(sent < 1000, "all {sent} frames went out");
    assert!(!frames(&got).iter().any(|f| f.0 == 1), "{got:?}");
    still_serves(&rw);
}

/// HPACK bomb: one 4000-byte value put in the dynamic table, then
/// referenced 200 times in the same small block (800 KB decoded, past the
/// 32 KiB max_header_list_size). The connection answers 431 itself, the
/// request never reaches the upstream, and the connection goes on serving
/// (a GET on stream 3 gets 200).
fn hpack_bomb_is_answered_431(d: Driver) {
    let http = HttpBackend::start();
    let rw = Ringway::start(&config(http.addr), d);
    let mut s = TcpStream::connect(rw.addr("app")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut block = get_block("/api/bomb");
    // Literal with incremental indexing, new name "x", 4000-byte value
    // (length 4000 = 127 + 3873: 0x7f then 3873 as 7-bit groups).
    block.extend_from_slice(&[0x40, 1, b'x', 0x7f, 0xa1, 0x1e]);
    block.extend(std::iter::repeat_n(b'v', 4000));
    // Index 62: the entry just added.
    block.extend(std::iter::repeat_n(0xbe, 200));
    let mut out = hello();
    out.extend(frame(1, 0x4 | 0x1, 1, &block));
    out.extend(frame(1, 0x4 | 0x1, 3, &get_block("/r")));
    s.write_all(&out).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 16384];
    let deadline = Instant::now() + Duration::from_secs(10);
    let answered = |got: &[u8], id: u32| frames(got).iter().any(|f| f.0 == 1 && f.2 == id);
    while !(answered(&got, 1) && answered(&got, 3)) {
        assert!(Instant::now() < deadline, "{got:?}");
        let n = s.read(&mut buf).expect("answers within 10 s");
        assert!(n > 0, "closed: {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
    let fs = frames(&got);
    let h1 = fs.iter().find(|f| f.0 == 1 && f.2 == 1).unwrap();
    assert!(h1.3.windows(3).any(|w| w == b"431"), "{h1:?}");
    let h3 = fs.iter().find(|f| f.0 == 1 && f.2 == 3).unwrap();
    assert_eq!(h3.3.first(), Some(&0x88), "{h3:?}");
    assert_eq!(goaway_code(&got), None, "{got:?}");
    assert!(http.seen.lock().unwrap().is_empty());
    still_serves(&rw);
}

/// PING flood (CVE-2019-9512): every PING costs a token; the connection
/// ends with ENHANCE_YOUR_CALM.
fn ping_flood_is_ended_with_enhance_your_calm(d: Driver) {
    let http = HttpBackend::start();
    let rw = Ringway::start(&config(http.addr), d);
    let (got, sent) = flood(
        &rw,
        &hello(),
        |i| frame(6, 0, 0, &u64::from(i).to_be_bytes()),
        100_000,
    );
    assert_eq!(
        goaway_code(&got),
        Some(ENHANCE_YOUR_CALM),
        "{sent}: {got:?}"
    );
    still_serves(&rw);
}

/// SETTINGS flood (CVE-2019-9515): every SETTINGS after the first costs a
/// token; the connection ends with ENHANCE_YOUR_CALM.
fn settings_flood_is_ended_with_enhance_your_calm(d: Driver) {
    let http = HttpBackend::start();
    let rw = Ringway::start(&config(http.addr), d);
    let (got, sent) = flood(&rw, &hello(), |_| frame(4, 0, 0, &[]), 100_000);
    assert_eq!(
        goaway_code(&got),
        Some(ENHANCE_YOUR_CALM),
        "{sent}: {got:?}"
    );
    still_serves(&rw);
}

/// Empty-DATA flood (CVE-2019-9518): a POST whose body is endless empty
/// DATA frames without END_STREAM; each costs a token and the connection
/// ends with ENHANCE_YOUR_CALM.
fn empty_data_flood_is_ended_with_enhance_your_calm(d: Driver) {
    let http = HttpBackend::start();
    let rw = Ringway::start(&config(http.addr), d);
    let mut prelude = hello();
    let post = [&[0x83, 0x86, 0x04, 7][..], b"/api/up", &[0x01, 1, b'a']].concat();
    prelude.extend(frame(1, 0x4, 1, &post));
    let (got, sent) = flood(&rw, &prelude, |_| frame(0, 0, 1, &[]), 100_000);
    assert_eq!(
        goaway_code(&got),
        Some(ENHANCE_YOUR_CALM),
        "{sent}: {got:?}"
    );
    still_serves(&rw);
}
