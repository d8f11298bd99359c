//! Differential test: for generated hostile request byte strings
//! (`hostile`), what ringway forwards to a recording backend must parse
//! there — with a strict and with a lenient HTTP/1.1 parser — into exactly
//! the requests ringway logged, never more.
//!
//! Every case goes on its own client connection, followed by a sentinel
//! request that ringway answers itself, so each connection ends without a
//! timeout. `proxy_pass` to an address sends one request per upstream
//! connection (`Connection: close`), so each upstream connection's bytes
//! must hold at most one request, and both parsers must agree on it
//! (`forwarded::check`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ringway_tests::forwarded;
use ringway_tests::hostile::{self, Rng};
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
    let logged = forwarded::logged_requests(&log, &["/__end"]);
    let conns = rec.wait_all_closed(Duration::from_secs(20));
    let summary = forwarded::check(&conns, &logged, true).unwrap_or_else(|e| panic!("{e}"));
    let forwarded = summary.forwarded;
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
