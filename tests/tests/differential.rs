//! Differential test: for generated hostile request byte strings
//! (`hostile`), what ringway forwards to a recording backend must parse
//! there — with a strict and with a lenient HTTP/1.1 parser — into exactly
//! the requests ringway logged, never more.
//!
//! Every case goes on its own client connection, followed by a sentinel
//! request that ringway answers itself, so each connection ends without a
//! timeout. `proxy_pass` to an address sends one request per upstream
//! connection (`Connection: close`), so each upstream connection's bytes
//! must hold at most one request, and both parsers must agree on it.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ringway_tests::hostile::{self, Rng};
use ringway_tests::http1::{parse_all, Mode, Parsed};
use ringway_tests::recorder::Recorder;
use ringway_tests::*;

both_drivers!(forwarded_bytes_hold_only_logged_requests);

/// Cases per driver, and the client threads sending them.
const CASES: usize = 400;
const THREADS: usize = 8;
const SENTINEL: &[u8] = b"GET /__end HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

fn config(rec: std::net::SocketAddr) -> String {
    format!(
        r#"
[servers.s]
listen = ["127.0.0.1:0"]
client_header_timeout = "1s"
keepalive_timeout = "2s"
[servers.s.locations."= /__end"]
return = {{ status = 200, body = "end" }}
[servers.s.locations."/"]
proxy_pass = "http://{rec}"
proxy_read_timeout = "5s"
"#
    )
}

/// Send one case and the sentinel; read until ringway closes.
fn run_case(addr: std::net::SocketAddr, bytes: &[u8]) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    // ringway may close early (a 400); a failed write is part of the case.
    let _ = s.write_all(bytes).and_then(|()| s.write_all(SENTINEL));
    let mut sink = [0u8; 16384];
    loop {
        match s.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
}

/// (method, target) of each access-log line, counted.
fn logged(path: &std::path::Path) -> BTreeMap<(String, String), usize> {
    let text = std::fs::read_to_string(path).expect("access log");
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(start) = line.find('"') else {
            continue;
        };
        let rest = &line[start + 1..];
        let Some(end) = rest.find('"') else { continue };
        let mut parts = rest[..end].split(' ');
        let (Some(m), Some(t)) = (parts.next(), parts.next()) else {
            continue;
        };
        if t == "/__end" {
            continue;
        }
        // The log has the target as sent; an absolute-form one goes
        // upstream in origin-form.
        let t = match t.strip_prefix("http://") {
            Some(rest) => rest.find('/').map_or("/", |i| &rest[i..]),
            None => t,
        };
        *out.entry((m.to_string(), t.to_string())).or_insert(0) += 1;
    }
    out
}

fn key(p: &Parsed) -> (String, String) {
    (p.method.clone(), p.target.clone())
}

fn forwarded_bytes_hold_only_logged_requests(d: Driver) {
    let rec = Recorder::start();
    let dir = temp_dir("diff");
    let log = dir.join("access.log");
    let rw = Ringway::start_with_log(&config(rec.addr), d, "", log.to_str().unwrap());
    let addr = rw.addr("s");
    let seed = 0x5eed_0000 + matches!(d, Driver::Epoll) as u64;
    let cases: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..CASES)
            .map(|i| hostile::request(&mut Rng::new(seed + i as u64), "/d", i))
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (cases, next) = (cases.clone(), next.clone());
            std::thread::spawn(move || loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= cases.len() {
                    break;
                }
                run_case(addr, &cases[i]);
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
    // A graceful stop flushes the access log.
    let mut rw = rw;
    rw.signal(libc::SIGTERM);
    assert!(
        rw.wait_exit(Duration::from_secs(20)).is_some(),
        "ringway did not stop"
    );
    let logged = logged(&log);
    let conns = rec.wait_all_closed(Duration::from_secs(20));

    let mut seen_strict: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut seen_lenient: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut forwarded = 0;
    for c in &conns {
        // After a 101 the bytes belong to the switched protocol.
        let http = &c.raw[..c.raw.len() - c.after_switch.len()];
        let (strict, _, strict_err) = parse_all(http, Mode::Strict);
        let (lenient, _, lenient_err) = parse_all(http, Mode::Lenient);
        let show = || String::from_utf8_lossy(http).into_owned();
        assert!(
            strict_err.is_none(),
            "not strict HTTP/1.1 ({strict_err:?}): {:?}",
            show()
        );
        assert!(
            lenient_err.is_none(),
            "lenient parse error ({lenient_err:?}): {:?}",
            show()
        );
        assert_eq!(
            strict.iter().map(key).collect::<Vec<_>>(),
            lenient.iter().map(key).collect::<Vec<_>>(),
            "the parsers disagree on {:?}",
            show()
        );
        assert!(
            strict.len() <= 1,
            "two requests on one Connection: close connection: {:?}",
            show()
        );
        for p in &strict {
            assert_eq!(p.body, lenient[0].body, "bodies differ: {:?}", show());
            *seen_strict.entry(key(p)).or_insert(0) += 1;
            forwarded += 1;
        }
        for p in &lenient {
            *seen_lenient.entry(key(p)).or_insert(0) += 1;
        }
    }
    for (seen, mode) in [(&seen_strict, "strict"), (&seen_lenient, "lenient")] {
        for (k, n) in seen {
            let l = logged.get(k).copied().unwrap_or(0);
            assert!(
                *n <= l,
                "{mode}: the backend got {n} x {k:?}, ringway logged {l}"
            );
        }
    }
    // The run exercised both outcomes: requests forwarded and refused.
    let logged_total: usize = logged.values().sum();
    eprintln!(
        "differential {}: {CASES} cases, {logged_total} requests logged, {forwarded} forwarded complete, {} upstream connections",
        d.name(),
        conns.len()
    );
    assert!(forwarded > CASES / 10, "too few forwarded: {forwarded}");
    assert!(logged_total < CASES * 2);
}
