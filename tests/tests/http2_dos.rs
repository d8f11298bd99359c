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
    a_zero_window_is_reset_at_the_send_timeout_while_others_are_served,
    streams_past_the_limit_are_refused,
    an_oversize_frame_is_a_frame_size_error,
    a_stream_depending_on_itself_is_reset,
    a_malformed_preface_is_closed,
    others_are_served_during_rapid_reset_on_many_connections,
    huge_windows_and_no_reading_hold_no_more_than_the_queue,
    made_you_reset_is_ended_with_enhance_your_calm,
    empty_header_blocks_are_refused_and_ended_with_enhance_your_calm,
    a_body_dribbled_one_byte_a_frame_is_proxied_whole,
    one_byte_windows_on_many_streams_hold_bounded_memory,
    the_last_stream_id_ends_the_connection_with_goaway,
    frames_on_closed_streams_get_stream_closed,
    the_header_list_bound_is_client_header_buffer_size,
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
/// ENHANCE_YOUR_CALM, at most 150 of the 20 000 requests reach the
/// upstream (101 seen: the burst of 100 and one), and another client is
/// served.
fn rapid_reset_is_ended_with_enhance_your_calm(d: Driver) {
    let http = HttpBackend::start();
    let rw = Ringway::start(&config(http.addr), d);
    let (got, sent) = flood(&rw, &hello(), reset_pair, 20_000);
    assert_eq!(
        goaway_code(&got),
        Some(ENHANCE_YOUR_CALM),
        "{sent}: {got:?}"
    );
    still_serves(&rw);
    let upstream = http.seen.lock().unwrap().len();
    assert!(upstream <= 150, "{upstream} requests reached the upstream");
}

/// HEADERS + RST_STREAM(CANCEL) for a proxied GET on stream `2i+1`.
fn reset_pair(i: u32) -> Vec<u8> {
    let id = 2 * i + 1;
    let mut f = frame(1, 0x4 | 0x1, id, &get_block("/api/x"));
    f.extend(frame(3, 0, id, &8u32.to_be_bytes()));
    f
}

/// Rapid reset from 20 connections one after another (each ended with
/// ENHANCE_YOUR_CALM) while a well-behaved client gets 200 ten times on
/// connections of its own; the upstream sees at most 150 requests per
/// attacking connection.
fn others_are_served_during_rapid_reset_on_many_connections(d: Driver) {
    let http = HttpBackend::start();
    let rw = Ringway::start(&config(http.addr), d);
    std::thread::scope(|sc| {
        let attacker = sc.spawn(|| {
            for _ in 0..20 {
                let (got, sent) = flood(&rw, &hello(), reset_pair, 20_000);
                assert_eq!(
                    goaway_code(&got),
                    Some(ENHANCE_YOUR_CALM),
                    "{sent}: {got:?}"
                );
            }
        });
        for _ in 0..10 {
            still_serves(&rw);
        }
        attacker.join().unwrap();
    });
    still_serves(&rw);
    let upstream = http.seen.lock().unwrap().len();
    assert!(
        upstream <= 20 * 150,
        "{upstream} requests reached the upstream"
    );
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
    assert!(is_200(h3.3), "{h3:?}");
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

/// Read from `s` until `done(what was read)` (10 s bound, each read
/// bounded by the socket's timeout); panics if ringway closes first.
fn read_until(s: &mut TcpStream, done: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let mut got = Vec::new();
    read_into(s, &mut got, done);
    got
}

/// [`read_until`], appending to `got` (whose bytes `done` sees too).
fn read_into(s: &mut TcpStream, got: &mut Vec<u8>, done: impl Fn(&[u8]) -> bool) {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 16384];
    while !done(got) {
        assert!(Instant::now() < deadline, "{got:?}");
        let n = s.read(&mut buf).expect("read within 10 s");
        assert!(n > 0, "closed: {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
}

/// The code of a RST_STREAM on `stream` in `b`, if any.
fn reset_code(b: &[u8], stream: u32) -> Option<u32> {
    frames(b)
        .into_iter()
        .find(|f| f.0 == 3 && f.2 == stream && f.3.len() == 4)
        .map(|f| u32::from_be_bytes([f.3[0], f.3[1], f.3[2], f.3[3]]))
}

fn has_headers(b: &[u8], stream: u32) -> bool {
    frames(b).iter().any(|f| f.0 == 1 && f.2 == stream)
}

/// SETTINGS_INITIAL_WINDOW_SIZE 0.
fn zero_window_settings() -> Vec<u8> {
    let mut out = PREFACE.to_vec();
    out.extend(frame(4, 0, 0, &[0, 4, 0, 0, 0, 0]));
    out
}

/// A client whose window never opens (INITIAL_WINDOW_SIZE 0, no
/// WINDOW_UPDATE) gets the response HEADERS, then its stream reset at
/// send_timeout (1 s) — and while it is blocked another client is served.
fn a_zero_window_is_reset_at_the_send_timeout_while_others_are_served(d: Driver) {
    let http = HttpBackend::start();
    let rw = Ringway::start(&config(http.addr), d);
    let mut s = TcpStream::connect(rw.addr("app")).unwrap();
    let mut out = zero_window_settings();
    out.extend(frame(1, 0x4 | 0x1, 1, &get_block("/r")));
    let started = Instant::now();
    s.write_all(&out).unwrap();
    let got = read_until(&mut s, |b| has_headers(b, 1));
    assert_eq!(reset_code(&got, 1), None);
    still_serves(&rw);
    let got = read_until(&mut s, |b| reset_code(b, 1).is_some());
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "reset after {took:?}"
    );
    assert!(
        !frames(&got).iter().any(|f| f.0 == 0 && !f.3.is_empty()),
        "{got:?}"
    );
    still_serves(&rw);
}

/// With http2_max_concurrent_streams = 2 (acknowledged by the client),
/// a third stream while two are open (held by a zero window) is refused
/// with RST_STREAM REFUSED_STREAM; the two open ones are answered.
fn streams_past_the_limit_are_refused(d: Driver) {
    let http = HttpBackend::start();
    let config = config(http.addr).replace(
        "http2 = \"h2c\"",
        "http2 = \"h2c\"\nhttp2_max_concurrent_streams = 2",
    );
    let rw = Ringway::start(&config, d);
    let mut s = TcpStream::connect(rw.addr("app")).unwrap();
    s.write_all(&zero_window_settings()).unwrap();
    read_until(&mut s, |b| {
        frames(b).iter().any(|f| f.0 == 4 && f.1 & 1 == 0)
    });
    let mut out = frame(4, 0x1, 0, &[]);
    for id in [1, 3, 5] {
        out.extend(frame(1, 0x4 | 0x1, id, &get_block("/r")));
    }
    s.write_all(&out).unwrap();
    let got = read_until(&mut s, |b| {
        has_headers(b, 1) && has_headers(b, 3) && reset_code(b, 5).is_some()
    });
    assert_eq!(reset_code(&got, 5), Some(0x7), "{got:?}");
    assert!(!has_headers(&got, 5), "{got:?}");
    still_serves(&rw);
}

/// A frame longer than SETTINGS_MAX_FRAME_SIZE (16 384) is a connection
/// FRAME_SIZE_ERROR: GOAWAY and close.
fn an_oversize_frame_is_a_frame_size_error(d: Driver) {
    let http = HttpBackend::start();
    let rw = Ringway::start(&config(http.addr), d);
    let mut out = hello();
    out.extend(frame(1, 0x4 | 0x1, 1, &vec![0x82; 20_000]));
    let (got, _) = flood(&rw, &out, |_| Vec::new(), 0);
    assert_eq!(goaway_code(&got), Some(0x6), "{got:?}");
    assert!(!has_headers(&got, 1), "{got:?}");
    still_serves(&rw);
}

/// HEADERS with a priority that depends on its own stream (RFC 9113
/// §5.3.1) is reset with PROTOCOL_ERROR and never answered; the
/// connection goes on (a GET on stream 3 is answered 200).
fn a_stream_depending_on_itself_is_reset(d: Driver) {
    let http = HttpBackend::start();
    let rw = Ringway::start(&config(http.addr), d);
    let mut s = TcpStream::connect(rw.addr("app")).unwrap();
    let mut out = hello();
    let prio = [&[0, 0, 0, 1, 15][..], &get_block("/api/self")].concat();
    out.extend(frame(1, 0x20 | 0x4 | 0x1, 1, &prio));
    out.extend(frame(1, 0x4 | 0x1, 3, &get_block("/r")));
    s.write_all(&out).unwrap();
    let got = read_until(&mut s, |b| reset_code(b, 1).is_some() && has_headers(b, 3));
    assert_eq!(reset_code(&got, 1), Some(0x1), "{got:?}");
    assert!(!has_headers(&got, 1), "{got:?}");
    let h3 = frames(&got)
        .into_iter()
        .find(|f| f.0 == 1 && f.2 == 3)
        .unwrap();
    assert!(is_200(h3.3), "{h3:?}");
    assert_eq!(goaway_code(&got), None, "{got:?}");
    assert!(http.seen.lock().unwrap().is_empty());
    still_serves(&rw);
}

/// Bytes that are not the connection preface are not HTTP/2: the h2c
/// listener hands them to HTTP/1.1, which answers and closes — a
/// preface-like `PRI * HTTP/2.0` with the wrong tail gets 505, binary
/// garbage 400; no HTTP/2 frame is sent and others are served.
fn a_malformed_preface_is_closed(d: Driver) {
    let http = HttpBackend::start();
    let rw = Ringway::start(&config(http.addr), d);
    for (bytes, status) in [
        (&b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n"[..], "HTTP/1.1 505 "),
        (&b"\x00\x01\x02garbage\r\n\r\n"[..], "HTTP/1.1 400 "),
    ] {
        let started = Instant::now();
        let (got, _) = flood(&rw, bytes, |_| Vec::new(), 0);
        assert!(started.elapsed() < Duration::from_secs(5));
        let got = String::from_utf8_lossy(&got).into_owned();
        assert!(got.starts_with(status), "{got:?}");
    }
    still_serves(&rw);
}

/// Whether a header block starts with `:status 200` (static index 8),
/// after any dynamic table size update (RFC 7541 §6.3).
fn is_200(block: &[u8]) -> bool {
    block.iter().find(|b| *b & 0xe0 != 0x20) == Some(&0x88)
}

/// The process's peak resident set in KiB (/proc/PID/status VmHWM).
fn peak_rss_kib(rw: &Ringway) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", rw.pid())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// A client that grants the largest windows (SETTINGS_INITIAL_WINDOW_SIZE
/// and the connection's window at 2^31-1) and then reads nothing, for a
/// 1 GiB static file: the windows would let ringway queue all of it; the
/// connection's queue budget holds it to what waits for the socket. The
/// stream ends at send_timeout (1 s: the access-log line), ringway's
/// peak RSS grew by less than 64 MiB, and another client is served.
fn huge_windows_and_no_reading_hold_no_more_than_the_queue(d: Driver) {
    let http = HttpBackend::start();
    let dir = temp_dir("h2-window");
    let root = dir.join("www");
    std::fs::create_dir_all(root.join("files")).unwrap();
    // Sparse: a gigabyte of zeros that costs no disk.
    std::fs::File::create(root.join("files/big.bin"))
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let config = format!(
        "{}[servers.app.locations.\"/files/\"]\nroot = \"{}\"\n",
        config(http.addr),
        root.display()
    );
    let log = dir.join("access.log");
    let rw = Ringway::start_with_log(&config, d, "", log.to_str().unwrap());
    still_serves(&rw);
    let before = peak_rss_kib(&rw);
    let mut s = TcpStream::connect(rw.addr("app")).unwrap();
    let mut out = PREFACE.to_vec();
    // SETTINGS_INITIAL_WINDOW_SIZE (4) = 2^31-1.
    out.extend(frame(4, 0, 0, &[0, 4, 0x7f, 0xff, 0xff, 0xff]));
    // The connection's window from 65 535 to 2^31-1.
    out.extend(frame(8, 0, 0, &(0x7fff_ffffu32 - 65_535).to_be_bytes()));
    out.extend(frame(1, 0x4 | 0x1, 1, &get_block("/files/big.bin")));
    s.write_all(&out).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("\"GET /files/big.bin HTTP/2.0\"")
    {
        assert!(
            Instant::now() < deadline,
            "no access-log line: {}",
            rw.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let grown = peak_rss_kib(&rw).saturating_sub(before);
    assert!(grown < 64 * 1024, "peak RSS grew by {grown} KiB");
    still_serves(&rw);
    drop(s);
}

/// The debug data of the GOAWAY in `b` (ringway puts its reason there).
fn goaway_reason(b: &[u8]) -> String {
    frames(b)
        .into_iter()
        .find(|f| f.0 == 7 && f.3.len() >= 8)
        .map(|f| String::from_utf8_lossy(&f.3[8..]).into_owned())
        .unwrap_or_default()
}

/// Every GOAWAY in `b`: (last stream, error code).
fn goaways(b: &[u8]) -> Vec<(u32, u32)> {
    frames(b)
        .into_iter()
        .filter(|f| f.0 == 7 && f.3.len() >= 8)
        .map(|f| {
            let last = u32::from_be_bytes([f.3[0], f.3[1], f.3[2], f.3[3]]) & 0x7fff_ffff;
            (last, u32::from_be_bytes([f.3[4], f.3[5], f.3[6], f.3[7]]))
        })
        .collect()
}

/// Every RST_STREAM in `b`: (stream, error code).
fn resets(b: &[u8]) -> Vec<(u32, u32)> {
    frames(b)
        .into_iter()
        .filter(|f| f.0 == 3 && f.3.len() == 4)
        .map(|f| (f.2, u32::from_be_bytes([f.3[0], f.3[1], f.3[2], f.3[3]])))
        .collect()
}

/// The DATA payload bytes ringway sent on `stream` (it never pads).
fn data_bytes(b: &[u8], stream: u32) -> usize {
    frames(b)
        .iter()
        .filter(|f| f.0 == 0 && f.2 == stream)
        .map(|f| f.3.len())
        .sum()
}

/// Whether `stream` has ended from ringway's side (END_STREAM on its
/// HEADERS or DATA).
fn ended(b: &[u8], stream: u32) -> bool {
    frames(b)
        .iter()
        .any(|f| (f.0 == 0 || f.0 == 1) && f.2 == stream && f.1 & 0x1 != 0)
}

/// A POST of `path` (authority "a", scheme http) as an HPACK block, with
/// a content-length when given (literal without indexing, static name 28).
fn post_block(path: &str, length: Option<&str>) -> Vec<u8> {
    let mut b = [
        &[0x83, 0x86, 0x04, path.len() as u8][..],
        path.as_bytes(),
        &[0x01, 1, b'a'],
    ]
    .concat();
    if let Some(l) = length {
        b.extend_from_slice(&[0x0f, 0x0d, l.len() as u8]);
        b.extend_from_slice(l.as_bytes());
    }
    b
}

/// WINDOW_UPDATE of `increment` on `stream` (0 is not a valid increment).
fn window_update(stream: u32, increment: u32) -> Vec<u8> {
    frame(8, 0, stream, &increment.to_be_bytes())
}

/// A PING with `payload`.
fn ping(payload: u64) -> Vec<u8> {
    frame(6, 0, 0, &payload.to_be_bytes())
}

/// Whether `b` holds the acknowledgement of the PING with `payload`.
fn has_ping_ack(b: &[u8], payload: u64) -> bool {
    frames(b)
        .iter()
        .any(|f| f.0 == 6 && f.1 & 1 == 1 && f.3 == payload.to_be_bytes())
}

/// Stream `2i+1` opened with a request and followed by a frame that makes
/// ringway reset it, in turn: WINDOW_UPDATE 0 on an open POST
/// (PROTOCOL_ERROR), DATA after the END_STREAM of a GET (STREAM_CLOSED),
/// DATA past a POST's content-length (PROTOCOL_ERROR), a WINDOW_UPDATE
/// taking an open POST's send window past 2^31-1 (FLOW_CONTROL_ERROR).
/// The POSTs send no END_STREAM, so their streams are open when the frame
/// arrives; the upstream waits for their bodies.
fn made_you_reset(i: u32) -> Vec<u8> {
    let id = 2 * i + 1;
    let (mut f, then) = match i % 4 {
        0 => (
            frame(1, 0x4, id, &post_block("/api/m", None)),
            frame(8, 0, id, &[0; 4]),
        ),
        1 => (
            frame(1, 0x4 | 0x1, id, &get_block("/api/m")),
            frame(0, 0, id, b"x"),
        ),
        2 => (
            frame(1, 0x4, id, &post_block("/api/m", Some("1"))),
            frame(0, 0, id, b"xx"),
        ),
        _ => (
            frame(1, 0x4, id, &post_block("/api/m", None)),
            window_update(id, 0x7fff_ffff),
        ),
    };
    f.extend(then);
    f
}

/// MadeYouReset (CVE-2025-8671): the client never sends RST_STREAM but
/// makes ringway reset each stream it opens (`made_you_reset`: four kinds,
/// each reset with its own code). Every such reset costs a token of the
/// budget, so the connection ends with ENHANCE_YOUR_CALM and the reason
/// "too many streams reset for the client's errors" (not the rapid-reset
/// one: the client reset nothing); the resets carried PROTOCOL_ERROR,
/// STREAM_CLOSED and FLOW_CONTROL_ERROR; of the 20 000 streams offered at
/// most 150 reach the upstream (connections and whole requests), and
/// another client is served.
fn made_you_reset_is_ended_with_enhance_your_calm(d: Driver) {
    let http = HttpBackend::start();
    let rw = Ringway::start(&config(http.addr), d);
    let (got, sent) = flood(&rw, &hello(), made_you_reset, 20_000);
    assert_eq!(
        goaway_code(&got),
        Some(ENHANCE_YOUR_CALM),
        "{sent}: {got:?}"
    );
    assert_eq!(
        goaway_reason(&got),
        "too many streams reset for the client's errors"
    );
    // How many streams ringway took is what its GOAWAY names (the last
    // stream it processed), not how many the client wrote: on a loaded
    // machine the socket buffers hold all 20 000 before ringway reads.
    let last = goaways(&got).first().map_or(u32::MAX, |g| g.0);
    assert!(
        last < 2 * 1000,
        "{sent} written, last stream processed {last}"
    );
    let codes: std::collections::BTreeSet<u32> = resets(&got).into_iter().map(|r| r.1).collect();
    for code in [0x1, 0x3, 0x5] {
        assert!(codes.contains(&code), "no reset with {code:#x}: {codes:?}");
    }
    still_serves(&rw);
    let upstream = http.seen.lock().unwrap().len();
    let connections = http.connections.load(Ordering::SeqCst);
    assert!(upstream <= 150, "{upstream} requests reached the upstream");
    assert!(
        connections <= 150,
        "{connections} connections to the upstream"
    );
}

/// Zero-length header blocks (CVE-2019-9516), three ways, each on a
/// connection of its own:
/// - an empty block (HEADERS with END_HEADERS and nothing in it) on each
///   new stream is a malformed request: RST_STREAM PROTOCOL_ERROR, a
///   token each, then ENHANCE_YOUR_CALM "too many streams refused";
/// - HEADERS without END_HEADERS and an empty fragment, then empty
///   CONTINUATIONs without end: nothing grows, but each costs a token
///   and the connection ends with ENHANCE_YOUR_CALM "too many empty
///   frames" — long before client_header_timeout (60 s);
/// - on each new stream an empty HEADERS then a CONTINUATION with the
///   whole block of a proxied GET: valid requests, yet the empty frame
///   costs a token: ENHANCE_YOUR_CALM "too many empty frames", at most
///   150 reach the upstream.
///
/// Another client is served after them.
fn empty_header_blocks_are_refused_and_ended_with_enhance_your_calm(d: Driver) {
    let http = HttpBackend::start();
    let rw = Ringway::start(&config(http.addr), d);

    let (got, sent) = flood(
        &rw,
        &hello(),
        |i| frame(1, 0x4 | 0x1, 2 * i + 1, &[]),
        20_000,
    );
    assert_eq!(
        goaway_code(&got),
        Some(ENHANCE_YOUR_CALM),
        "{sent}: {got:?}"
    );
    assert_eq!(goaway_reason(&got), "too many streams refused");
    let rs = resets(&got);
    assert!(!rs.is_empty() && rs.iter().all(|r| r.1 == 0x1), "{rs:?}");
    assert!(!frames(&got).iter().any(|f| f.0 == 1), "{got:?}");

    let mut prelude = hello();
    prelude.extend(frame(1, 0x1, 1, &[]));
    let (got, sent) = flood(&rw, &prelude, |_| frame(9, 0, 1, &[]), 100_000);
    assert_eq!(
        goaway_code(&got),
        Some(ENHANCE_YOUR_CALM),
        "{sent}: {got:?}"
    );
    assert_eq!(goaway_reason(&got), "too many empty frames");
    assert!(!frames(&got).iter().any(|f| f.0 == 1), "{got:?}");

    let (got, sent) = flood(
        &rw,
        &hello(),
        |i| {
            let id = 2 * i + 1;
            let mut f = frame(1, 0x1, id, &[]);
            f.extend(frame(9, 0x4, id, &get_block("/api/z")));
            f
        },
        20_000,
    );
    assert_eq!(
        goaway_code(&got),
        Some(ENHANCE_YOUR_CALM),
        "{sent}: {got:?}"
    );
    assert_eq!(goaway_reason(&got), "too many empty frames");
    still_serves(&rw);
    let upstream = http.seen.lock().unwrap().len();
    assert!(upstream <= 150, "{upstream} requests reached the upstream");
}

/// Data dribble, the request side (CVE-2019-9511 family): a proxied POST
/// of unknown length whose 100 000-byte body comes one byte per DATA
/// frame, sent as the windows ringway grants allow (so past the 65 535
/// stream window: ringway must credit the bytes back as the upstream
/// takes them). A non-empty DATA costs no token, so the stream is not
/// ended: the upstream gets the whole body (chunked, `body=100000`), the
/// client its 200 with END_STREAM and no reset or GOAWAY, ringway's peak
/// RSS grows by less than 16 MiB, and another client is served.
fn a_body_dribbled_one_byte_a_frame_is_proxied_whole(d: Driver) {
    const LEN: u64 = 100_000;
    let http = HttpBackend::start();
    let rw = Ringway::start(&config(http.addr), d);
    still_serves(&rw);
    let before = peak_rss_kib(&rw);
    let mut s = TcpStream::connect(rw.addr("app")).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut out = hello();
    out.extend(frame(1, 0x4, 1, &post_block("/api/up", None)));
    s.write_all(&out).unwrap();
    // What the client may send: the protocol's 65 535 on the stream and
    // the connection, plus every WINDOW_UPDATE ringway sent for them.
    let credit = |got: &[u8], stream: u32| -> u64 {
        65_535
            + frames(got)
                .iter()
                .filter(|f| f.0 == 8 && f.2 == stream && f.3.len() == 4)
                .map(|f| u64::from(u32::from_be_bytes([f.3[0], f.3[1], f.3[2], f.3[3]])))
                .sum::<u64>()
    };
    let mut got = Vec::new();
    let mut sent = 0u64;
    let started = Instant::now();
    // Bounded: each turn sends at least one byte or reads more credit
    // (read_into panics after 10 s without it).
    while sent < LEN {
        let window = credit(&got, 1).min(credit(&got, 0)) - sent;
        if window == 0 {
            read_into(&mut s, &mut got, |b| credit(b, 1).min(credit(b, 0)) > sent);
            continue;
        }
        let n = window.min(LEN - sent).min(4096);
        let mut batch = Vec::with_capacity(n as usize * 10);
        for k in 0..n {
            let last = sent + k + 1 == LEN;
            batch.extend(frame(0, u8::from(last), 1, b"d"));
        }
        s.write_all(&batch).unwrap();
        sent += n;
    }
    read_into(&mut s, &mut got, |b| ended(b, 1));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let h = frames(&got)
        .into_iter()
        .find(|f| f.0 == 1 && f.2 == 1)
        .expect("response HEADERS");
    assert!(is_200(h.3), "{h:?}");
    let body: Vec<u8> = frames(&got)
        .iter()
        .filter(|f| f.0 == 0 && f.2 == 1)
        .flat_map(|f| f.3.to_vec())
        .collect();
    let body = String::from_utf8_lossy(&body).into_owned();
    assert!(body.ends_with(" body=100000"), "{body}");
    assert!(credit(&got, 1) > 65_535, "no stream WINDOW_UPDATE");
    assert_eq!(resets(&got), vec![]);
    assert_eq!(goaways(&got), vec![]);
    let seen = http.seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert!(seen[0]
        .header("transfer-encoding")
        .is_some_and(|v| v.contains("chunked")));
    drop(seen);
    let grown = peak_rss_kib(&rw).saturating_sub(before);
    assert!(grown < 16 * 1024, "peak RSS grew by {grown} KiB");
    still_serves(&rw);
}

/// Data dribble, the response side (CVE-2019-9511): 100 streams fetch a
/// 1 GiB static file with SETTINGS_INITIAL_WINDOW_SIZE 0, then the client
/// opens each stream's window one byte at a time, 40 rounds, waiting for
/// each round's bytes. Ringway sends exactly what the windows allow (40
/// bytes per stream, in DATA frames of a byte or so), never more; when
/// the updates stop, every stream is reset INTERNAL_ERROR at send_timeout
/// (1 s). Ringway's peak RSS grew by less than 32 MiB for the 100 blocked
/// streams, no GOAWAY, and another client is served.
fn one_byte_windows_on_many_streams_hold_bounded_memory(d: Driver) {
    const STREAMS: u32 = 100;
    const ROUNDS: usize = 40;
    let http = HttpBackend::start();
    let dir = temp_dir("h2-dribble");
    let root = dir.join("www");
    std::fs::create_dir_all(root.join("files")).unwrap();
    std::fs::File::create(root.join("files/big.bin"))
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let config = format!(
        "{}[servers.app.locations.\"/files/\"]\nroot = \"{}\"\n",
        config(http.addr),
        root.display()
    );
    let rw = Ringway::start(&config, d);
    still_serves(&rw);
    let before = peak_rss_kib(&rw);
    let mut s = TcpStream::connect(rw.addr("app")).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    let ids: Vec<u32> = (0..STREAMS).map(|i| 2 * i + 1).collect();
    let mut out = zero_window_settings();
    // The connection's window is no limit: only the streams' count.
    out.extend(window_update(0, 1 << 30));
    for &id in &ids {
        out.extend(frame(1, 0x4 | 0x1, id, &get_block("/files/big.bin")));
    }
    s.write_all(&out).unwrap();
    let mut got = Vec::new();
    read_into(&mut s, &mut got, |b| {
        ids.iter().all(|&id| has_headers(b, id))
    });
    for round in 1..=ROUNDS {
        let mut out = Vec::new();
        for &id in &ids {
            out.extend(window_update(id, 1));
        }
        s.write_all(&out).unwrap();
        read_into(&mut s, &mut got, |b| {
            ids.iter().all(|&id| data_bytes(b, id) >= round)
        });
    }
    let started = Instant::now();
    read_into(&mut s, &mut got, |b| {
        ids.iter().all(|&id| reset_code(b, id).is_some())
    });
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "reset after {took:?}");
    for &id in &ids {
        assert_eq!(data_bytes(&got, id), ROUNDS, "stream {id}");
        assert_eq!(reset_code(&got, id), Some(0x2), "stream {id}");
    }
    let most = frames(&got)
        .iter()
        .filter(|f| f.0 == 0)
        .map(|f| f.3.len())
        .max();
    assert_eq!(most, Some(1), "DATA frames larger than the 1-byte windows");
    assert_eq!(goaways(&got), vec![]);
    let grown = peak_rss_kib(&rw).saturating_sub(before);
    assert!(grown < 32 * 1024, "peak RSS grew by {grown} KiB");
    still_serves(&rw);
    drop(s);
}

/// Stream-id exhaustion (RFC 9113 §5.1.1): a GET on 2^31-3 and a proxied
/// GET on 2^31-1, the last id a client can use: ringway sends a graceful
/// GOAWAY (NO_ERROR, last stream 2^31-1), answers both (200, END_STREAM)
/// and closes the connection once they are done. On a second connection
/// a HEADERS on stream 1 after 2^31-1 (a lower id: there is no higher
/// one) is a connection PROTOCOL_ERROR after the graceful GOAWAY, and the
/// connection closes. Another client is served.
fn the_last_stream_id_ends_the_connection_with_goaway(d: Driver) {
    const LAST: u32 = 0x7fff_ffff;
    let http = HttpBackend::start();
    let rw = Ringway::start(&config(http.addr), d);
    let mut out = hello();
    out.extend(frame(1, 0x4 | 0x1, LAST - 2, &get_block("/r")));
    out.extend(frame(1, 0x4 | 0x1, LAST, &get_block("/api/last")));
    let started = Instant::now();
    let (got, _) = flood(&rw, &out, |_| Vec::new(), 0);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(goaways(&got), vec![(LAST, 0)], "{got:?}");
    for id in [LAST - 2, LAST] {
        let h = frames(&got)
            .into_iter()
            .find(|f| f.0 == 1 && f.2 == id)
            .unwrap_or_else(|| panic!("no HEADERS on {id}: {got:?}"));
        assert!(is_200(h.3), "{h:?}");
        assert!(ended(&got, id), "{id} not ended: {got:?}");
    }
    assert_eq!(resets(&got), vec![]);
    assert_eq!(http.seen.lock().unwrap().len(), 1);

    let mut out = hello();
    out.extend(frame(1, 0x4 | 0x1, LAST, &get_block("/r")));
    out.extend(frame(1, 0x4 | 0x1, 1, &get_block("/r")));
    let started = Instant::now();
    let (got, _) = flood(&rw, &out, |_| Vec::new(), 0);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(goaways(&got), vec![(LAST, 0), (LAST, 0x1)], "{got:?}");
    assert!(!has_headers(&got, 1), "{got:?}");
    still_serves(&rw);
}

/// Frames on closed streams (RFC 9113 §5.1), one connection:
/// - stream 1 answered and ended: WINDOW_UPDATE, RST_STREAM and PRIORITY
///   on it are ignored; two DATA on it get one RST_STREAM STREAM_CLOSED
///   (then ringway counts it as reset by itself and ignores the second,
///   and a HEADERS on it too: no answer, no error);
/// - stream 3, a POST ringway resets (WINDOW_UPDATE 0: PROTOCOL_ERROR):
///   the DATA and trailers the client had in flight are ignored;
/// - stream 5, a POST the client resets: DATA after it gets RST_STREAM
///   STREAM_CLOSED;
/// - the connection lives: a GET on 7 gets 200;
/// - HEADERS on stream 7 again (ended, not reset by ringway) end the
///   connection: GOAWAY STREAM_CLOSED with last stream 7, then close.
///
/// Each step ends with a PING whose ack says ringway has read it all.
/// Another client is served.
fn frames_on_closed_streams_get_stream_closed(d: Driver) {
    let http = HttpBackend::start();
    let rw = Ringway::start(&config(http.addr), d);
    let mut s = TcpStream::connect(rw.addr("app")).unwrap();
    let mut out = hello();
    out.extend(frame(1, 0x4 | 0x1, 1, &get_block("/r")));
    s.write_all(&out).unwrap();
    let mut got = Vec::new();
    read_into(&mut s, &mut got, |b| ended(b, 1));
    let step = |s: &mut TcpStream, got: &mut Vec<u8>, frames: Vec<u8>, n: u64| {
        let from = got.len();
        let mut out = frames;
        out.extend(ping(n));
        s.write_all(&out).unwrap();
        read_into(s, got, |b| has_ping_ack(b, n));
        got[from..].to_vec()
    };

    let mut bad = window_update(1, 5);
    bad.extend(frame(3, 0, 1, &8u32.to_be_bytes()));
    bad.extend(frame(2, 0, 1, &[0, 0, 0, 0, 15]));
    let part = step(&mut s, &mut got, bad, 1);
    assert_eq!(resets(&part), vec![], "{part:?}");
    let mut bad = frame(0, 0, 1, b"x");
    bad.extend(frame(0, 0, 1, b"y"));
    let part = step(&mut s, &mut got, bad, 2);
    assert_eq!(resets(&part), vec![(1, 0x5)], "{part:?}");
    // Reset by ringway now: HEADERS on it are decoded and ignored.
    let part = step(
        &mut s,
        &mut got,
        frame(1, 0x4 | 0x1, 1, &get_block("/r")),
        6,
    );
    assert!(frames(&part).iter().all(|f| f.0 == 6), "{part:?}");

    let mut bad = frame(1, 0x4, 3, &post_block("/api/up", None));
    bad.extend(frame(8, 0, 3, &[0; 4]));
    bad.extend(frame(0, 0, 3, b"abc"));
    bad.extend(frame(1, 0x4 | 0x1, 3, &[0x00, 1, b'x', 1, b'y']));
    let part = step(&mut s, &mut got, bad, 3);
    assert_eq!(resets(&part), vec![(3, 0x1)], "{part:?}");
    assert!(!has_headers(&part, 3), "{part:?}");

    let mut bad = frame(1, 0x4, 5, &post_block("/api/up", None));
    bad.extend(frame(3, 0, 5, &8u32.to_be_bytes()));
    bad.extend(frame(0, 0, 5, b"x"));
    let part = step(&mut s, &mut got, bad, 4);
    assert_eq!(resets(&part), vec![(5, 0x5)], "{part:?}");

    step(
        &mut s,
        &mut got,
        frame(1, 0x4 | 0x1, 7, &get_block("/r")),
        5,
    );
    read_into(&mut s, &mut got, |b| ended(b, 7));
    let h7 = frames(&got)
        .into_iter()
        .find(|f| f.0 == 1 && f.2 == 7)
        .expect("HEADERS on 7");
    assert!(is_200(h7.3), "{h7:?}");
    assert_eq!(goaways(&got), vec![]);

    s.write_all(&frame(1, 0x4 | 0x1, 7, &get_block("/r")))
        .unwrap();
    let mut end = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "not closed: {end:?}");
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => end.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("{e}: {end:?}"),
        }
    }
    assert_eq!(goaways(&end), vec![(7, 0x5)], "{end:?}");
    assert!(!has_headers(&end, 7), "{end:?}");
    still_serves(&rw);
}

/// An HPACK integer with a 7-bit prefix (RFC 7541 §5.1), first byte's
/// high bit clear.
fn hpack_int7(mut n: usize) -> Vec<u8> {
    if n < 127 {
        return vec![n as u8];
    }
    let mut out = vec![0x7f];
    n -= 127;
    while n >= 128 {
        out.push((n % 128) as u8 | 0x80);
        n /= 128;
    }
    out.push(n as u8);
    out
}

/// `client_header_buffer_size` bounds an HTTP/2 request's field section
/// as it bounds an HTTP/1.1 head: ringway's SETTINGS carry it as
/// SETTINGS_MAX_HEADER_LIST_SIZE, a request under it is served, one over
/// it answered 431 on its stream (the connection goes on).
fn the_header_list_bound_is_client_header_buffer_size(d: Driver) {
    let http = HttpBackend::start();
    let config = config(http.addr).replace(
        "send_timeout = \"1s\"",
        "send_timeout = \"1s\"\nclient_header_buffer_size = \"4k\"",
    );
    let rw = Ringway::start(&config, d);
    let mut s = TcpStream::connect(rw.addr("app")).unwrap();
    s.write_all(&hello()).unwrap();
    let got = read_until(&mut s, |b| {
        frames(b).iter().any(|f| f.0 == 4 && f.1 & 1 == 0)
    });
    let settings = frames(&got)
        .into_iter()
        .find(|f| f.0 == 4 && f.1 & 1 == 0)
        .unwrap()
        .3
        .to_vec();
    let list = settings
        .chunks(6)
        .find(|c| c.len() == 6 && u16::from_be_bytes([c[0], c[1]]) == 6)
        .map(|c| u32::from_be_bytes([c[2], c[3], c[4], c[5]]));
    assert_eq!(list, Some(4096), "{settings:?}");
    // GET /r with a field "x" of `n` bytes (literal, not indexed).
    let with_field = |n: usize| {
        let mut block = get_block("/r");
        block.extend_from_slice(&[0x00, 1, b'x']);
        block.extend(hpack_int7(n));
        block.extend(std::iter::repeat_n(b'v', n));
        block
    };
    let mut out = frame(1, 0x4 | 0x1, 1, &with_field(3000));
    out.extend(frame(1, 0x4 | 0x1, 3, &with_field(4600)));
    out.extend(frame(1, 0x4 | 0x1, 5, &get_block("/r")));
    s.write_all(&out).unwrap();
    let answered = |b: &[u8], id: u32| frames(b).iter().any(|f| f.0 == 1 && f.2 == id);
    let got = read_until(&mut s, |b| (1..=5).step_by(2).all(|id| answered(b, id)));
    let fs = frames(&got);
    let head = |id: u32| fs.iter().find(|f| f.0 == 1 && f.2 == id).unwrap().3;
    assert!(is_200(head(1)), "{:?}", head(1));
    assert!(head(3).windows(3).any(|w| w == b"431"), "{:?}", head(3));
    assert!(is_200(head(5)), "{:?}", head(5));
    assert_eq!(goaway_code(&got), None, "{got:?}");
    still_serves(&rw);
}
