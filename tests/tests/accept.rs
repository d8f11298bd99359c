//! Accepting under pressure: `max_connections` pauses accept (the
//! backlog holds new clients) and resumes when a connection closes; out of
//! descriptors (EMFILE), accept backs off and says so at most once a
//! second, and serves again once descriptors are free.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use ringway_tests::*;

both_drivers!(max_connections_pauses_accept, out_of_descriptors_backs_off);

const CONFIG: &str = r#"
[servers.a]
listen = "127.0.0.1:0"
[servers.a.locations."/"]
return = { status = 200, body = "OK" }
"#;

/// One request on `s` (keep-alive); the answer's status line, or None
/// when nothing came within the stream's read timeout.
fn get(s: &mut TcpStream) -> Option<String> {
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").ok()?;
    let mut buf = [0u8; 512];
    let mut got = Vec::new();
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    // The body ("OK") may follow in the same read or the next one.
    if !got.ends_with(b"OK") {
        let _ = s.read(&mut buf);
    }
    String::from_utf8_lossy(&got)
        .lines()
        .next()
        .map(str::to_string)
}

fn connect(addr: SocketAddr, read_timeout: Duration) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(read_timeout)).unwrap();
    s
}

fn max_connections_pauses_accept(driver: Driver) {
    let rw = Ringway::start_with_runtime(CONFIG, driver, "max_connections = 3\n");
    let addr = rw.addr("a");
    let mut held: Vec<TcpStream> = (0..3)
        .map(|_| connect(addr, Duration::from_secs(5)))
        .collect();
    for s in &mut held {
        assert_eq!(get(s).as_deref(), Some("HTTP/1.1 200 OK"));
    }
    // The fourth connects (the kernel's backlog takes it) but is not
    // served while three are open.
    let mut fourth = connect(addr, Duration::from_millis(700));
    assert_eq!(get(&mut fourth), None, "served beyond max_connections");
    // One closes: the fourth is accepted and answered.
    drop(held.pop());
    fourth
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 512];
    let n = fourth.read(&mut buf).expect("answer after a slot freed");
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200 OK"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    assert!(
        !rw.logs().contains("accept failed"),
        "pausing is not a failure"
    );
}

fn out_of_descriptors_backs_off(driver: Driver) {
    // Few descriptors: the runtime, listener and log take some; clients
    // beyond the rest make accept fail with EMFILE.
    let rw = Ringway::start_with_nofile(CONFIG, driver, "", 64);
    let addr = rw.addr("a");
    // More clients than descriptors: those beyond wait in the backlog
    // while accept fails.
    let held: Vec<TcpStream> = (0..120)
        .filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok())
        .collect();
    assert!(held.len() > 64, "only {} clients connected", held.len());
    let needle = "accept failed; backing off";
    rw.wait_for_log_count(needle, 3, Duration::from_secs(15));
    // The failure goes on every backoff (50 ms) but is logged at most once
    // a second: consecutive lines are at least ~1 s apart (their
    // timestamps), and each carries the count of failures since the last.
    let stamps: Vec<f64> = rw
        .logs()
        .lines()
        .filter(|l| l.contains(needle))
        .filter_map(seconds_of_day)
        .collect();
    assert!(stamps.len() >= 3, "{stamps:?}");
    for w in stamps.windows(2) {
        assert!(
            w[1] - w[0] >= 0.95,
            "accept failures logged {:.3} s apart",
            w[1] - w[0]
        );
    }
    let logs = rw.logs();
    assert!(logs.contains("Too many open files"), "not EMFILE:\n{logs}");
    assert!(logs.contains("failures="), "no failure count");
    // Free the descriptors: ringway serves again.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut s = connect(addr, Duration::from_secs(2));
        if get(&mut s).as_deref() == Some("HTTP/1.1 200 OK") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not serving after descriptors were freed"
        );
    }
}

/// Seconds since midnight of a tracing log line's timestamp
/// ("2026-11-23T21:05:30.288222Z ...").
fn seconds_of_day(line: &str) -> Option<f64> {
    let t = line
        .split_whitespace()
        .next()?
        .split('T')
        .nth(1)?
        .trim_end_matches('Z');
    let mut it = t.split(':');
    let (h, m, s): (f64, f64, f64) = (
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
    );
    Some(h * 3600.0 + m * 60.0 + s)
}
