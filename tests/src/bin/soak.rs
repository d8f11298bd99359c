//! `ringway-soak`: mixed traffic through one ringway for a bounded time,
//! then the checks (`scripts/soak.sh` runs it on both drivers).
//!
//! Traffic, all at once:
//! - tunnels: WebSocket connections carrying sequence-numbered messages
//!   (mostly small, some 64 KiB), each echoed by the backend and checked
//!   to arrive once and in order; each tunnel lives a random number of
//!   messages, then closes cleanly and is replaced;
//! - churn: connect, upgrade, one message, close;
//! - REST: keep-alive POSTs with bodies (by length and chunked) and GETs
//!   through a pooled upstream group, each answer checked;
//! - hostile input: generated smuggling attempts (`hostile`) to a recording
//!   backend;
//! - backend restarts: the WebSocket backend is killed (every connection
//!   cut) and started again on its port, periodically.
//!
//! Checks: every message on a tunnel arrived once and in order, and a
//! tunnel broke only across a backend restart; every REST answer was
//! right; no request reached a backend that ringway did not log
//! (`forwarded::check`, strict and lenient parsers); after the traffic,
//! ringway's descriptors return to their baseline and its RSS to within a
//! tolerance of it (the baseline is taken after a warm-up with the same
//! mix, so pools and allocator caches are already grown).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use ringway_tests::hostile::{self, Rng};
use ringway_tests::recorder::Recorder;
use ringway_tests::*;
use tungstenite::Message;

const USAGE: &str =
    "usage: ringway-soak [--duration SECS] [--warmup SECS] [--driver io_uring|epoll] \
[--tunnels N] [--restart-every SECS] [--seed N]\n\
  (set RINGWAY_BIN to the ringway binary to test)";

struct Opts {
    duration: Duration,
    warmup: Duration,
    driver: Driver,
    tunnels: usize,
    restart_every: Duration,
    seed: u64,
}

fn opts() -> Opts {
    let mut o = Opts {
        duration: Duration::from_secs(60),
        warmup: Duration::from_secs(10),
        driver: Driver::IoUring,
        tunnels: 120,
        restart_every: Duration::from_secs(15),
        seed: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| die(USAGE));
        let secs = |v: String| Duration::from_secs(v.parse().unwrap_or_else(|_| die(USAGE)));
        match a.as_str() {
            "--duration" => o.duration = secs(val()),
            "--warmup" => o.warmup = secs(val()),
            "--restart-every" => o.restart_every = secs(val()),
            "--tunnels" => o.tunnels = val().parse().unwrap_or_else(|_| die(USAGE)),
            "--seed" => o.seed = val().parse().unwrap_or_else(|_| die(USAGE)),
            "--driver" => {
                o.driver = match val().as_str() {
                    "io_uring" => Driver::IoUring,
                    "epoll" => Driver::Epoll,
                    _ => die(USAGE),
                }
            }
            _ => die(USAGE),
        }
    }
    o
}

fn die(msg: &str) -> ! {
    eprintln!("{msg}");
    std::process::exit(2)
}

/// Counters shared by the traffic threads.
#[derive(Default)]
struct Stats {
    messages: AtomicU64,
    message_bytes: AtomicU64,
    tunnels_opened: AtomicU64,
    tunnels_closed: AtomicU64,
    /// Broken across a backend restart (expected).
    tunnels_cut: AtomicU64,
    churn: AtomicU64,
    rest: AtomicU64,
    hostile: AtomicU64,
    restarts: AtomicU64,
    /// Connects or handshakes refused while the backend restarted.
    refused_in_restart: AtomicU64,
}

/// Everything a failure check needs: a list of what went wrong.
#[derive(Default)]
struct Failures(Mutex<Vec<String>>);

impl Failures {
    fn add(&self, what: String) {
        eprintln!("FAILURE: {what}");
        let mut f = self.0.lock().unwrap();
        if f.len() < 50 {
            f.push(what);
        }
    }
    fn list(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

struct Shared {
    proxy: SocketAddr,
    stop: AtomicBool,
    /// Bumped before each backend restart; `settled` is bumped after it.
    /// A failure is excused as the restart's doing only when a restart
    /// began or was under way during the attempt (`excused`).
    epoch: AtomicU64,
    settled: AtomicU64,
    stats: Stats,
    failures: Failures,
}

fn config(ws: SocketAddr, api: SocketAddr, hostile: SocketAddr) -> String {
    format!(
        r#"
[upstreams.api]
servers = [{{ addr = "{api}" }}]
keepalive = 16

[servers.s]
listen = ["127.0.0.1:0"]
client_header_timeout = "2s"
keepalive_timeout = "5s"
[servers.s.locations."= /__end"]
return = {{ status = 200, body = "end" }}
[servers.s.locations."/ws/"]
proxy_pass = "http://{ws}"
proxy_read_timeout = "60s"
proxy_connect_timeout = "2s"
[servers.s.locations."/api/"]
proxy_pass = "http://api"
client_max_body_size = "1m"
[servers.s.locations."/h/"]
proxy_pass = "http://{hostile}"
proxy_read_timeout = "5s"
"#
    )
}

/// The restart generation now: (begun, finished).
fn generation(sh: &Shared) -> (u64, u64) {
    (
        sh.epoch.load(Ordering::SeqCst),
        sh.settled.load(Ordering::SeqCst),
    )
}

/// Whether a restart began or was under way between `start` and now.
fn excused(sh: &Shared, start: (u64, u64)) -> bool {
    let now = generation(sh);
    start.0 != start.1 || now.0 != now.1 || now.0 != start.0
}

fn ws_connect(sh: &Shared) -> Option<tungstenite::WebSocket<TcpStream>> {
    let s = TcpStream::connect(sh.proxy).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(20))).ok()?;
    s.set_nodelay(true).ok()?;
    tungstenite::client::client_with_config("ws://x/ws/soak", s, Some(ws_config()))
        .ok()
        .map(|(ws, _)| ws)
}

/// A tunnel and where its sequence stands.
struct Tunnel {
    ws: tungstenite::WebSocket<TcpStream>,
    id: u64,
    opened: (u64, u64),
    next: u64,
    left: u64,
}

fn message(id: u64, seq: u64, rng: &mut Rng) -> String {
    let pad = if rng.chance(3) {
        65_536
    } else {
        rng.below(200)
    };
    format!("{id}:{seq}:{}", "x".repeat(pad))
}

/// Send a window of messages on `t`, read their echoes, check order.
/// Err(true): the tunnel broke; Err(false): it failed a check.
fn exchange(t: &mut Tunnel, sh: &Shared, rng: &mut Rng) -> Result<(), bool> {
    let window = 1 + rng.below(8) as u64;
    let mut sent = Vec::new();
    for k in 0..window {
        let m = message(t.id, t.next + k, rng);
        t.ws.send(Message::text(m.clone())).map_err(|_| true)?;
        sent.push(m);
    }
    for (k, want) in sent.iter().enumerate() {
        let got = loop {
            match t.ws.read() {
                Ok(Message::Text(s)) => break s.to_string(),
                Ok(Message::Binary(_)) => {
                    sh.failures.add(format!("tunnel {}: binary frame", t.id));
                    return Err(false);
                }
                Ok(_) => continue,
                Err(_) => return Err(true),
            }
        };
        if &got != want {
            let head = |s: &str| s.split(':').take(2).collect::<Vec<_>>().join(":");
            sh.failures.add(format!(
                "tunnel {}: expected message {} ({}), got {}",
                t.id,
                t.next + k as u64,
                head(want),
                head(&got)
            ));
            return Err(false);
        }
        sh.stats.messages.fetch_add(1, Ordering::Relaxed);
        sh.stats
            .message_bytes
            .fetch_add(got.len() as u64, Ordering::Relaxed);
    }
    t.next += window;
    t.left = t.left.saturating_sub(window);
    Ok(())
}

fn tunnels_thread(sh: Arc<Shared>, slots: usize, seed: u64, first_id: u64) {
    let mut rng = Rng::new(seed);
    let mut tunnels: Vec<Option<Tunnel>> = (0..slots).map(|_| None).collect();
    let mut next_id = first_id;
    while !sh.stop.load(Ordering::Relaxed) {
        for slot in tunnels.iter_mut() {
            if sh.stop.load(Ordering::Relaxed) {
                break;
            }
            let Some(t) = slot else {
                let opened = generation(&sh);
                match ws_connect(&sh) {
                    Some(ws) => {
                        sh.stats.tunnels_opened.fetch_add(1, Ordering::Relaxed);
                        *slot = Some(Tunnel {
                            ws,
                            id: next_id,
                            opened,
                            next: 0,
                            left: 20 + rng.below(400) as u64,
                        });
                        next_id += slots as u64 * 1000;
                    }
                    None if excused(&sh, opened) => {
                        // The backend was between stop and start.
                        sh.stats.refused_in_restart.fetch_add(1, Ordering::Relaxed);
                    }
                    None => sh
                        .failures
                        .add("tunnel: connect or handshake failed".into()),
                }
                continue;
            };
            match exchange(t, &sh, &mut rng) {
                Ok(()) if t.left == 0 => {
                    let _ = t.ws.close(None);
                    // Read until the close handshake completes.
                    for _ in 0..64 {
                        if t.ws.read().is_err() {
                            break;
                        }
                    }
                    sh.stats.tunnels_closed.fetch_add(1, Ordering::Relaxed);
                    *slot = None;
                }
                Ok(()) => {}
                Err(true) if excused(&sh, t.opened) => {
                    sh.stats.tunnels_cut.fetch_add(1, Ordering::Relaxed);
                    *slot = None;
                }
                Err(true) => {
                    sh.failures.add(format!(
                        "tunnel {} broke after {} messages with no backend restart",
                        t.id, t.next
                    ));
                    *slot = None;
                }
                Err(false) => *slot = None,
            }
        }
    }
    for t in tunnels.into_iter().flatten() {
        let mut ws = t.ws;
        let _ = ws.close(None);
        let _ = ws.flush();
    }
}

fn churn_thread(sh: Arc<Shared>, seed: u64) {
    let mut rng = Rng::new(seed);
    while !sh.stop.load(Ordering::Relaxed) {
        let start = generation(&sh);
        let ok = (|| {
            let mut ws = ws_connect(&sh)?;
            let m = message(0, rng.next_u64(), &mut rng);
            ws.send(Message::text(m.clone())).ok()?;
            let got = ws.read().ok()?;
            let _ = ws.close(None);
            let _ = ws.flush();
            Some(got.to_text().ok()? == m)
        })();
        match ok {
            Some(true) => {
                sh.stats.churn.fetch_add(1, Ordering::Relaxed);
            }
            Some(false) => sh.failures.add("churn: wrong echo".into()),
            None if excused(&sh, start) => {
                sh.stats.refused_in_restart.fetch_add(1, Ordering::Relaxed);
            }
            None => sh.failures.add("churn: connection failed".into()),
        }
    }
}

/// Read one response (head + Content-Length body); None on EOF/error.
fn read_one(s: &mut TcpStream) -> Option<(String, String)> {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut b).ok()? == 0 {
            return None;
        }
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).ok()?;
    Some((head, String::from_utf8_lossy(&body).into_owned()))
}

fn rest_thread(sh: Arc<Shared>, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut n = 0u64;
    let mut conn: Option<TcpStream> = None;
    while !sh.stop.load(Ordering::Relaxed) {
        let s = match conn.as_mut() {
            Some(s) => s,
            None => {
                let s = TcpStream::connect(sh.proxy).expect("connect to ringway");
                s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                conn.insert(s)
            }
        };
        n += 1;
        let len = if rng.chance(10) {
            rng.below(256 * 1024)
        } else {
            rng.below(2048)
        };
        let body: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
        let mut req = Vec::new();
        let target = format!("/api/r{n}");
        match rng.below(3) {
            0 => req.extend_from_slice(
                format!("GET {target} HTTP/1.1\r\nHost: api\r\n\r\n").as_bytes(),
            ),
            1 => {
                req.extend_from_slice(
                    format!("POST {target} HTTP/1.1\r\nHost: api\r\nContent-Length: {len}\r\n\r\n")
                        .as_bytes(),
                );
                req.extend_from_slice(&body);
            }
            _ => {
                req.extend_from_slice(
                    format!(
                        "POST {target} HTTP/1.1\r\nHost: api\r\nTransfer-Encoding: chunked\r\n\r\n"
                    )
                    .as_bytes(),
                );
                for part in body.chunks(1 + rng.below(9000)) {
                    req.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
                    req.extend_from_slice(part);
                    req.extend_from_slice(b"\r\n");
                }
                req.extend_from_slice(b"0\r\n\r\n");
            }
        }
        let method = if req.starts_with(b"GET") {
            "GET"
        } else {
            "POST"
        };
        let want_len = if method == "GET" { 0 } else { len };
        if s.write_all(&req).is_err() {
            // The keep-alive connection was closed by ringway (idle): retry.
            conn = None;
            continue;
        }
        match read_one(s) {
            Some((head, got)) => {
                let want = format!("{method} {target} body={want_len}");
                if !head.starts_with("HTTP/1.1 200 ") || got != want {
                    sh.failures.add(format!(
                        "rest: {:?} / {got:?}, wanted {want:?}",
                        head.lines().next()
                    ));
                    conn = None;
                } else {
                    sh.stats.rest.fetch_add(1, Ordering::Relaxed);
                }
            }
            None => conn = None,
        }
    }
}

fn hostile_thread(sh: Arc<Shared>, seed: u64) {
    let mut i = 0u64;
    while !sh.stop.load(Ordering::Relaxed) {
        let bytes = hostile::request(&mut Rng::new(seed.wrapping_add(i)), "/h", i as usize);
        i += 1;
        let Ok(mut s) = TcpStream::connect(sh.proxy) else {
            continue;
        };
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let _ = s.write_all(&bytes).and_then(|()| {
            s.write_all(b"GET /__end HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        });
        let mut sink = [0u8; 8192];
        while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
        sh.stats.hostile.fetch_add(1, Ordering::Relaxed);
    }
}

/// Run the traffic mix for `d`; the WebSocket backend is restarted every
/// `restart_every` (never when it is zero).
fn traffic(sh: &Arc<Shared>, o: &Opts, d: Duration, ws: &Mutex<Option<Backend>>, seed: u64) {
    sh.stop.store(false, Ordering::SeqCst);
    let per = 20;
    let mut threads = Vec::new();
    for i in 0..o.tunnels.div_ceil(per) {
        let slots = per.min(o.tunnels - i * per);
        let sh = sh.clone();
        threads.push(thread::spawn(move || {
            tunnels_thread(sh, slots, seed + i as u64, 1 + i as u64)
        }));
    }
    for k in 0..2 {
        let sh2 = sh.clone();
        threads.push(thread::spawn(move || churn_thread(sh2, seed + 100 + k)));
        let sh2 = sh.clone();
        threads.push(thread::spawn(move || rest_thread(sh2, seed + 200 + k)));
    }
    {
        let sh = sh.clone();
        threads.push(thread::spawn(move || hostile_thread(sh, seed * 1_000_003)));
    }
    let end = Instant::now() + d;
    let mut next_restart = Instant::now() + o.restart_every;
    while Instant::now() < end {
        let now = Instant::now();
        if !o.restart_every.is_zero() && now >= next_restart {
            let mut slot = ws.lock().unwrap();
            let old = slot.take().expect("backend");
            let addr = old.addr;
            sh.epoch.fetch_add(1, Ordering::SeqCst);
            old.kill();
            *slot = Some(Backend::start_unrecorded(addr));
            sh.settled.fetch_add(1, Ordering::SeqCst);
            sh.stats.restarts.fetch_add(1, Ordering::SeqCst);
            next_restart = now + o.restart_every;
        }
        // The traffic threads run on their own; this loop only paces the
        // restarts and the end.
        thread::sleep(
            Duration::from_millis(100).min(end.saturating_duration_since(Instant::now())),
        );
    }
    sh.stop.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().expect("traffic thread");
    }
}

fn proc_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn proc_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Wait (bounded) until ringway's descriptor count is at most `want`.
fn settle_fds(pid: u32, want: usize, timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    loop {
        let n = proc_fds(pid);
        if n <= want || Instant::now() >= deadline {
            return n;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

fn main() {
    let o = opts();
    let dir = temp_dir("soak");
    let log = dir.join("access.log");
    let ws = Mutex::new(Some(Backend::start_unrecorded(
        "127.0.0.1:0".parse().unwrap(),
    )));
    let ws_addr = ws.lock().unwrap().as_ref().unwrap().addr;
    // The REST backend sees millions of requests in a long soak: it keeps
    // counts and any target the REST traffic does not use (a smuggled
    // request); the REST threads check every answer themselves.
    let api = Recorder::start_lean("/api/r");
    let hostile_rec = Recorder::start();
    let rw = Ringway::start_with_log(
        &config(ws_addr, api.addr, hostile_rec.addr),
        o.driver,
        "",
        log.to_str().unwrap(),
    );
    let pid = rw.pid();
    let sh = Arc::new(Shared {
        proxy: rw.addr("s"),
        stop: AtomicBool::new(false),
        epoch: AtomicU64::new(0),
        settled: AtomicU64::new(0),
        stats: Stats::default(),
        failures: Failures::default(),
    });
    let fds_start = proc_fds(pid);
    let rss_start = proc_rss_kib(pid);

    eprintln!("soak: warm-up {:?} on {}", o.warmup, o.driver.name());
    traffic(&sh, &o, o.warmup, &ws, o.seed);
    let fds_base = settle_fds(pid, fds_start, Duration::from_secs(30));
    let rss_base = proc_rss_kib(pid);
    eprintln!("soak: baseline fds {fds_base} (at start {fds_start}), RSS {rss_base} KiB (at start {rss_start} KiB)");

    let before = snapshot(&sh.stats);
    let started = Instant::now();
    eprintln!("soak: traffic for {:?}", o.duration);
    traffic(&sh, &o, o.duration, &ws, o.seed + 7919);
    let elapsed = started.elapsed();
    let fds_after = settle_fds(pid, fds_base, Duration::from_secs(30));
    let rss_after = proc_rss_kib(pid);
    let after = snapshot(&sh.stats);

    // A graceful stop flushes the access log.
    let mut rw = rw;
    rw.signal(libc::SIGTERM);
    let exited = rw.wait_exit(Duration::from_secs(30));
    let (logged, api_logged) =
        ringway_tests::forwarded::logged_requests_where(&log, &["/__end"], |t| {
            t.starts_with("/api/r")
        });
    let hostile_conns = hostile_rec.wait_all_closed(Duration::from_secs(30));
    let mut failures = sh.failures.list();
    match ringway_tests::forwarded::check(&hostile_conns, &logged, true) {
        Ok(s) => eprintln!(
            "soak: hostile backend: {} connections, {} complete requests, each logged",
            s.connections, s.forwarded
        ),
        Err(e) => failures.push(format!("hostile backend: {e}")),
    }
    let api_conns = api.conns();
    let unexpected: Vec<&String> = api_conns.iter().flat_map(|c| &c.unexpected).collect();
    if !unexpected.is_empty() {
        failures.push(format!(
            "api backend got requests no client sent: {unexpected:?}"
        ));
    }
    let api_served: usize = api_conns.iter().map(|c| c.served).sum();
    if api_served > api_logged {
        failures.push(format!(
            "api backend served {api_served} requests, ringway logged {api_logged}"
        ));
    }
    if exited.is_none_or(|st| !st.success()) {
        failures.push(format!("ringway did not stop cleanly: {exited:?}"));
    }
    if fds_after > fds_base {
        failures.push(format!(
            "descriptors: {fds_after} after, {fds_base} at baseline"
        ));
    }
    // Allocator caches and pools may keep what the busiest moment needed;
    // the baseline already holds a warm-up's worth. Allow 25 % + 8 MiB.
    let rss_limit = rss_base + rss_base / 4 + 8 * 1024;
    if rss_after > rss_limit {
        failures.push(format!(
            "RSS: {rss_after} KiB after, {rss_base} KiB at baseline"
        ));
    }

    let d = |i: usize| after[i] - before[i];
    let secs = elapsed.as_secs_f64();
    println!("soak {} for {:.0} s:", o.driver.name(), secs);
    println!(
        "  tunnel messages: {} ({:.0}/s, {:.1} MB), tunnels opened {}, closed cleanly {}, cut by {} backend restarts {}",
        d(0),
        d(0) as f64 / secs,
        d(1) as f64 / 1e6,
        d(2),
        d(3),
        d(8),
        d(4)
    );
    println!(
        "  churn handshakes: {}, REST exchanges: {}, hostile cases: {}, refused during restarts: {}",
        d(5),
        d(6),
        d(7),
        d(9)
    );
    println!(
        "  ringway fds: start {fds_start}, baseline {fds_base}, after {fds_after}; RSS KiB: start {rss_start}, baseline {rss_base}, after {rss_after}"
    );
    if failures.is_empty() {
        println!("  result: clean");
    } else {
        println!("  result: {} FAILURES", failures.len());
        for f in &failures {
            println!("    - {f}");
        }
        std::process::exit(1);
    }
}

fn snapshot(s: &Stats) -> [u64; 10] {
    [
        s.messages.load(Ordering::SeqCst),
        s.message_bytes.load(Ordering::SeqCst),
        s.tunnels_opened.load(Ordering::SeqCst),
        s.tunnels_closed.load(Ordering::SeqCst),
        s.tunnels_cut.load(Ordering::SeqCst),
        s.churn.load(Ordering::SeqCst),
        s.rest.load(Ordering::SeqCst),
        s.hostile.load(Ordering::SeqCst),
        s.restarts.load(Ordering::SeqCst),
        s.refused_in_restart.load(Ordering::SeqCst),
    ]
}
