//! `rebalance` and `slow_start` end to end (both drivers, two workers).
//!
//! - `rebalance = { max_skew, rate }`: after a reload adds servers, the
//!   tunnels on the crowded ones (more than their weighted share of the
//!   worker's tunnels times `1 + max_skew`, rounded up) are closed with a
//!   WebSocket close 1001, newest first, at most `rate` per second for
//!   the process; a server at its bound takes no new tunnel while another
//!   can, so the clients, who reconnect as browsers do, land on the new
//!   servers and are never moved twice.
//! - Without `rebalance` the same scale-out moves nothing.
//! - `slow_start`: a server a reload adds gets a share of the requests
//!   that ramps from nothing to its weight's over `slow_start`
//!   (round_robin and least_conn).
//!
//! The backends are in-process [`Switch`]es, always healthy: each answers
//! a plain request with its name and, on a WebSocket, the text `who?`
//! with its name; each counts its live tunnels and the close codes it
//! received.
//!
//! The tests of this file run one at a time (`one_at_a_time`): the
//! scale-out holds 2,000 tunnels and measures the rate of closes, and
//! the slow-start test measures shares against the clock; two of them at
//! once on a 2-core machine would measure each other.

use std::io::{ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use ringway_tests::logs::{field, lines_with};
use ringway_tests::prom::{metrics_addr, moved, scrape, scrape_until, sum};
use ringway_tests::switch::{Health, Switch};
use ringway_tests::tunnel::{assert_echoes, echo, heard, open_tunnel, try_open_tunnel, Tunnel, Ws};
use ringway_tests::*;
use tungstenite::Message;

both_drivers!(
    scale_out_moves_the_surplus_to_the_new_servers_at_the_rate,
    without_rebalance_a_scale_out_moves_nothing,
    slow_start_ramps_a_joining_server_round_robin,
    slow_start_ramps_a_joining_server_least_conn,
);

/// The scale-out on the io_uring driver's syscall relay too (the close
/// frames go in at a frame boundary that relay finds).
mod io_uring_syscall_relay {
    use ringway_tests::Driver;
    #[test]
    fn scale_out_moves_the_surplus_to_the_new_servers_at_the_rate() {
        super::scale_out_moves_the_surplus_to_the_new_servers_at_the_rate(
            Driver::IoUringSyscallRelay,
        )
    }
}

/// Serialises the tests of this file (see the module comment).
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// How long backend counts may take to show a change (metrics:
/// `prom::SCRAPE_WITHIN`).
const SETTLE: Duration = Duration::from_secs(10);

// ---- configuration ----

/// The metrics listener, the group `chat` of `servers` (`balance`,
/// passive health off, the `extra` lines) and the server `app` proxying
/// `/` to it. The default proxy_read_timeout (60 s) puts the tunnel sweep,
/// and so `rebalance`, at 1 s.
fn config(balance: &str, servers: &[SocketAddr], extra: &str) -> String {
    let list = servers
        .iter()
        .map(|a| format!("{{ addr = \"{a}\" }}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"
[metrics]
listen = "127.0.0.1:0"

[upstreams.chat]
balance = "{balance}"
servers = [{list}]
max_fails = 0
{extra}

[servers.app]
listen = ["127.0.0.1:0"]
[servers.app.locations."/"]
proxy_pass = "http://chat"
proxy_connect_timeout = "2s"
proxy_next_upstream = ["off"]
"#
    )
}

fn addrs(backends: &[&Switch]) -> Vec<SocketAddr> {
    backends.iter().map(|b| b.addr).collect()
}

// ---- the log and the metrics ----

const MOVING: &str = "moving tunnels off a crowded server (close 1001)";

/// The `rebalance` log lines: (server, tunnels) of each.
fn moving_lines(rw: &Ringway) -> Vec<(String, usize)> {
    lines_with(rw, MOVING, &[])
        .iter()
        .map(|l| {
            assert_eq!(field(l, "upstream").as_deref(), Some("chat"), "{l}");
            (
                field(l, "server").unwrap_or_else(|| panic!("server= in {l}")),
                field(l, "tunnels")
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("tunnels= in {l}")),
            )
        })
        .collect()
}

/// `ringway_tunnels_active` of the group `chat` to `addr`.
fn tunnels_active(text: &str, addr: SocketAddr) -> f64 {
    let a = addr.to_string();
    sum(
        text,
        "ringway_tunnels_active",
        &[
            ("server", "app"),
            ("upstream", "chat"),
            ("upstream_addr", &a),
        ],
    )
}

/// Wait (bounded by [`SETTLE`]) until `ok` holds; `what` says what was
/// awaited, `state` how things stand.
fn wait_until(what: &str, ok: impl Fn() -> bool, state: impl Fn() -> String) {
    let deadline = Instant::now() + SETTLE;
    while !ok() {
        assert!(
            Instant::now() < deadline,
            "{what} not within {SETTLE:?}: {}",
            state()
        );
        // Pacing for a poll of a condition with a deadline.
        thread::sleep(Duration::from_millis(20));
    }
}

// ---- clients ----

/// One browser-like client of the scale-out: it holds a tunnel; on a close
/// frame it answers it and reconnects 0–100 ms later, then asks `who?`.
struct Client {
    id: usize,
    ws: Option<Ws>,
    /// The server of each tunnel it held, in order (the last: now).
    servers: Vec<String>,
    /// Each close frame it received: code and arrival.
    closes: Vec<(u16, Instant)>,
    /// When it reconnects (after a close).
    reconnect_at: Option<Instant>,
    /// What went wrong (a message instead of a close, a failed reconnect).
    problems: Vec<String>,
}

impl Client {
    fn on(&self) -> &str {
        self.servers.last().map_or("-", String::as_str)
    }
}

/// What the client threads share with the test.
#[derive(Default)]
struct Progress {
    /// Tunnels opened at the start.
    opened: AtomicUsize,
    /// Close frames received by all clients.
    closes: AtomicUsize,
    /// Reconnections scheduled and not done yet.
    pending: AtomicUsize,
    /// The last close's arrival, in µs since `epoch`.
    last_close_us: AtomicU64,
    stop: AtomicBool,
}

/// Sets `stop` when dropped: the client threads end when the test does,
/// however it ends.
struct StopOnDrop(Arc<Progress>);
impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop.store(true, Ordering::SeqCst);
    }
}

/// A small xorshift for the reconnect delays (no dependency, seeded per
/// thread: the run is reproducible).
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// One client thread: open `ids.len()` tunnels, then watch them all with
/// poll(2) (non-blocking reads) until `progress.stop`; answer each close
/// frame, reconnect after a random 0–100 ms, and keep watching.
fn client_thread(
    proxy: SocketAddr,
    ids: std::ops::Range<usize>,
    progress: Arc<Progress>,
    epoch: Instant,
) -> Vec<Client> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (ids.start as u64 + 1));
    let mut clients: Vec<Client> = Vec::new();
    for id in ids {
        let Tunnel { ws, on } = open_tunnel(proxy, &format!("/ws/{id}"));
        ws.get_ref().set_nonblocking(true).unwrap();
        clients.push(Client {
            id,
            ws: Some(ws),
            servers: vec![on],
            closes: Vec::new(),
            reconnect_at: None,
            problems: Vec::new(),
        });
        progress.opened.fetch_add(1, Ordering::SeqCst);
    }
    // Old tunnels whose close this side answered, until the proxy ends
    // them (bounded by a deadline each).
    let mut closing: Vec<(Ws, Instant)> = Vec::new();
    while !progress.stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        let next_reconnect = clients.iter().filter_map(|c| c.reconnect_at).min();
        let wait_ms = next_reconnect
            .map_or(50, |t| t.saturating_duration_since(now).as_millis() as i32)
            .clamp(0, 50);
        let watched: Vec<usize> = (0..clients.len())
            .filter(|&i| clients[i].ws.is_some())
            .collect();
        let mut fds: Vec<libc::pollfd> = watched
            .iter()
            .map(|&i| clients[i].ws.as_ref().unwrap().get_ref().as_raw_fd())
            .chain(closing.iter().map(|(ws, _)| ws.get_ref().as_raw_fd()))
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: `fds` is a valid array of pollfd for the call.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, wait_ms) };
        assert!(r >= 0, "poll: {}", std::io::Error::last_os_error());
        // First read what came (the arrival times), then reconnect.
        for (k, &i) in watched.iter().enumerate() {
            if fds[k].revents == 0 {
                continue;
            }
            let c = &mut clients[i];
            let ws = c.ws.as_mut().unwrap();
            match ws.read() {
                Ok(Message::Close(f)) => {
                    let at = Instant::now();
                    let code = f.map_or(1005, |f| u16::from(f.code));
                    // Answer the close (blocking for this one write).
                    ws.get_ref().set_nonblocking(false).unwrap();
                    let _ = ws.flush();
                    ws.get_ref().set_nonblocking(true).unwrap();
                    c.closes.push((code, at));
                    progress.closes.fetch_add(1, Ordering::SeqCst);
                    progress.last_close_us.fetch_max(
                        at.duration_since(epoch).as_micros() as u64,
                        Ordering::SeqCst,
                    );
                    closing.push((c.ws.take().unwrap(), at + Duration::from_secs(3)));
                    c.reconnect_at = Some(at + Duration::from_millis(rng.below(101)));
                    progress.pending.fetch_add(1, Ordering::SeqCst);
                }
                Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => {}
                Ok(m) => c.problems.push(format!("on {}: a message {m:?}", c.on())),
                Err(e) => {
                    c.problems.push(format!(
                        "on {}: the tunnel ended without a close: {e}",
                        c.on()
                    ));
                    c.ws = None;
                }
            }
        }
        let base = watched.len();
        let mut ended = Vec::new();
        for (k, (ws, by)) in closing.iter_mut().enumerate() {
            if fds.get(base + k).is_some_and(|p| p.revents != 0) {
                match ws.read() {
                    Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => {}
                    // The proxy ended it (or something more came: the
                    // close was answered, nothing more counts).
                    _ => ended.push(k),
                }
            } else if Instant::now() >= *by {
                ended.push(k);
            }
        }
        for k in ended.into_iter().rev() {
            closing.swap_remove(k);
        }
        let now = Instant::now();
        for c in clients.iter_mut() {
            if c.reconnect_at.is_none_or(|t| t > now) {
                continue;
            }
            c.reconnect_at = None;
            let again = c.closes.len();
            match try_open_tunnel(proxy, &format!("/ws/{}-again-{again}", c.id)) {
                Ok(Tunnel { ws, on }) => {
                    ws.get_ref().set_nonblocking(true).unwrap();
                    c.ws = Some(ws);
                    c.servers.push(on);
                    progress.pending.fetch_sub(1, Ordering::SeqCst);
                }
                Err(Ok(code)) => {
                    // Closed before it could ask: a close like any other.
                    let at = Instant::now();
                    c.closes.push((code, at));
                    c.servers.push("(closed at once)".into());
                    progress.closes.fetch_add(1, Ordering::SeqCst);
                    progress.last_close_us.fetch_max(
                        at.duration_since(epoch).as_micros() as u64,
                        Ordering::SeqCst,
                    );
                    c.reconnect_at = Some(at + Duration::from_millis(rng.below(101)));
                }
                Err(Err(e)) => {
                    c.problems.push(format!("reconnecting: {e}"));
                    progress.pending.fetch_sub(1, Ordering::SeqCst);
                }
            }
        }
    }
    clients
}

/// The most of `times` (sorted) in any window of `width`.
fn densest(times: &[Instant], width: Duration) -> (usize, Option<Instant>) {
    let mut best = (0, None);
    let mut j = 0;
    for i in 0..times.len() {
        while j < times.len() && times[j] < times[i] + width {
            j += 1;
        }
        if j - i > best.0 {
            best = (j - i, Some(times[i]));
        }
    }
    best
}

// ---- tests ----

const SCALE_TUNNELS: usize = 2000;
const CLIENT_THREADS: usize = 8;
const RATE: usize = 400;
const WORKERS: usize = 2;
/// No close for this long (and the moved count still): balanced.
const QUIET: Duration = Duration::from_secs(2);

/// The issue's scenario: 2,000 tunnels on A and B (two workers), a
/// reload adds C and D. With `rebalance = { max_skew = 0.2, rate =
/// "400/s" }` the surplus on A and B is closed with 1001; the clients
/// reconnect, land on C and D and are never moved again; every server ends
/// within 20 % of the mean; the closes never beat the rate; the log, the
/// metric and the clients agree on how many moved.
fn scale_out_moves_the_surplus_to_the_new_servers_at_the_rate(d: Driver) {
    let _one = one_at_a_time();
    let a = Switch::start("A", Health::Ok);
    let b = Switch::start("B", Health::Ok);
    let c = Switch::start("C", Health::Ok);
    let dd = Switch::start("D", Health::Ok);
    let all = [&a, &b, &c, &dd];
    let extra = format!("rebalance = {{ max_skew = 0.2, rate = \"{RATE}/s\" }}\n");
    let rw = Ringway::start_with_runtime(
        &config("round_robin", &addrs(&[&a, &b]), &extra),
        d,
        &format!("workers = {WORKERS}\nshutdown_timeout = \"10s\"\n"),
    );
    let proxy = rw.addr("app");
    let maddr = metrics_addr(&rw);

    // 2,000 browser-like clients over several threads.
    let epoch = Instant::now();
    let progress = Arc::new(Progress::default());
    let _stop = StopOnDrop(progress.clone());
    let per = SCALE_TUNNELS / CLIENT_THREADS;
    let threads: Vec<_> = (0..CLIENT_THREADS)
        .map(|t| {
            let progress = progress.clone();
            thread::spawn(move || client_thread(proxy, t * per..(t + 1) * per, progress, epoch))
        })
        .collect();
    let open_deadline = Instant::now() + Duration::from_secs(60);
    while progress.opened.load(Ordering::SeqCst) < SCALE_TUNNELS {
        if threads.iter().any(|t| t.is_finished()) || Instant::now() >= open_deadline {
            progress.stop.store(true, Ordering::SeqCst);
            for t in threads {
                if let Err(e) = t.join() {
                    std::panic::resume_unwind(e);
                }
            }
            panic!(
                "only {} of {SCALE_TUNNELS} tunnels opened",
                progress.opened.load(Ordering::SeqCst)
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
    let opened_in = epoch.elapsed();
    wait_until(
        "every tunnel live at A or B",
        || a.live_tunnels() + b.live_tunnels() == SCALE_TUNNELS,
        || format!("A {}, B {}", a.live_tunnels(), b.live_tunnels()),
    );
    let (a0, b0) = (a.live_tunnels(), b.live_tunnels());
    eprintln!("{SCALE_TUNNELS} tunnels open in {opened_in:?}: A {a0}, B {b0}");
    assert!(
        a0.abs_diff(b0) <= 2 * WORKERS,
        "round robin put {a0} on A and {b0} on B"
    );
    assert_eq!(
        progress.closes.load(Ordering::SeqCst),
        0,
        "a tunnel was closed before the scale-out (A and B are balanced)"
    );
    assert!(moving_lines(&rw).is_empty(), "{}", rw.logs());

    // Scale out: the same configuration and C and D.
    rw.reload(&config("round_robin", &addrs(&all), &extra), 1);
    let reloaded = Instant::now();

    // Wait (bounded) until no tunnel has been closed for QUIET, no client
    // is still to reconnect, and the moved count has stopped growing.
    let deadline = reloaded + Duration::from_secs(40);
    let mut last_moved = -1.0;
    let mut moved_since = Instant::now();
    loop {
        let now = Instant::now();
        let m = moved(&scrape(maddr), "chat", "rebalance");
        if m != last_moved {
            last_moved = m;
            moved_since = now;
        }
        let closes = progress.closes.load(Ordering::SeqCst);
        let pending = progress.pending.load(Ordering::SeqCst);
        let last_close =
            epoch + Duration::from_micros(progress.last_close_us.load(Ordering::SeqCst));
        let quiet = now.duration_since(last_close.max(reloaded)) >= QUIET
            && now.duration_since(moved_since) >= QUIET
            && pending == 0;
        // Something moved, or long enough has passed for a sweep (1 s) to
        // have found nothing to move.
        if quiet && (closes > 0 || now.duration_since(reloaded) >= QUIET * 3) {
            break;
        }
        if now >= deadline || threads.iter().any(|t| t.is_finished()) {
            progress.stop.store(true, Ordering::SeqCst);
            for t in threads {
                if let Err(e) = t.join() {
                    std::panic::resume_unwind(e);
                }
            }
            panic!(
                "the tunnels never settled within 40 s of the scale-out: {closes} closes, {pending} reconnections pending, moved {m}; A {} B {} C {} D {}",
                a.live_tunnels(),
                b.live_tunnels(),
                c.live_tunnels(),
                dd.live_tunnels()
            );
        }
        thread::sleep(Duration::from_millis(100));
    }
    progress.stop.store(true, Ordering::SeqCst);
    let mut clients: Vec<Client> = Vec::new();
    for t in threads {
        match t.join() {
            Ok(cs) => clients.extend(cs),
            Err(e) => std::panic::resume_unwind(e),
        }
    }
    assert_eq!(clients.len(), SCALE_TUNNELS);

    // What the clients saw.
    let problems: Vec<String> = clients
        .iter()
        .flat_map(|c| {
            c.problems
                .iter()
                .map(move |p| format!("client {}: {p}", c.id))
        })
        .collect();
    let mut times: Vec<Instant> = clients
        .iter()
        .flat_map(|c| c.closes.iter().map(|&(_, t)| t))
        .collect();
    times.sort_unstable();
    let closes = times.len();
    let first = times.first().map(|t| t.duration_since(reloaded));
    let last = times.last().map(|t| t.duration_since(reloaded));
    let (densest_1s, densest_at) = densest(&times, Duration::from_secs(1));
    let by_server = |name: &str| clients.iter().filter(|c| c.on() == name).count();
    let landed = |name: &str| {
        clients
            .iter()
            .filter(|c| c.servers.len() > 1 && c.on() == name)
            .count()
    };
    eprintln!(
        "scale-out on {d:?}: {closes} closes from {first:?} to {last:?} after the reload; \
         final (by who?) A {} B {} C {} D {}; reconnections landed on A {} B {} C {} D {}; \
         densest 1 s window {densest_1s} closes (at {:?} after the reload); settled (quiet {QUIET:?}) {:?} after the reload",
        by_server("A"),
        by_server("B"),
        by_server("C"),
        by_server("D"),
        landed("A"),
        landed("B"),
        landed("C"),
        landed("D"),
        densest_at.map(|t| t.duration_since(reloaded)),
        reloaded.elapsed(),
    );
    assert!(
        problems.is_empty(),
        "{} client problems:\n{}",
        problems.len(),
        problems
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );

    // Each close was a 1001, and each client came back.
    let codes: Vec<u16> = clients
        .iter()
        .flat_map(|c| c.closes.iter().map(|&(code, _)| code))
        .filter(|&code| code != 1001)
        .collect();
    assert!(codes.is_empty(), "close codes other than 1001: {codes:?}");
    for c in &clients {
        assert!(
            c.ws.is_some(),
            "client {} holds no tunnel: {:?}",
            c.id,
            c.servers
        );
        assert_eq!(c.servers.len(), c.closes.len() + 1, "client {}", c.id);
    }
    // Only A and B gave tunnels up.
    let moved_from: Vec<String> = clients
        .iter()
        .filter(|c| {
            c.servers[..c.closes.len()]
                .iter()
                .any(|n| !["A", "B"].contains(&n.as_str()))
        })
        .map(|c| format!("client {}: {:?}", c.id, c.servers))
        .collect();
    assert!(moved_from.is_empty(), "moved off C or D: {moved_from:?}");

    // The backends' own counts agree with the clients', and so does
    // ringway_tunnels_active.
    wait_until(
        "the backends' live tunnels matching the clients'",
        || all.iter().all(|s| s.live_tunnels() == by_server(s.name)),
        || {
            all.iter()
                .map(|s| {
                    format!(
                        "{} live {} (clients say {})",
                        s.name,
                        s.live_tunnels(),
                        by_server(s.name)
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        },
    );
    let text = scrape_until(maddr, "ringway_tunnels_active per server", |t| {
        all.iter()
            .all(|s| tunnels_active(t, s.addr) == s.live_tunnels() as f64)
    });
    let counts: Vec<usize> = all.iter().map(|s| s.live_tunnels()).collect();
    eprintln!(
        "final distribution (backends' live tunnels): A {} B {} C {} D {}",
        counts[0], counts[1], counts[2], counts[3]
    );
    // Within 20 % of the mean (max_skew): each worker bounds a server by
    // ceil(its share × 1.2) of that worker's tunnels, so over WORKERS
    // workers the rounding may add up to WORKERS tunnels (and take as
    // many from the others).
    let mean = SCALE_TUNNELS / all.len();
    let (lo, hi) = (mean * 8 / 10 - WORKERS, mean * 12 / 10 + WORKERS);
    assert!(
        counts.iter().all(|n| (lo..=hi).contains(n)),
        "not every server within 20 % of {mean} ({lo}..={hi}): A B C D = {counts:?}"
    );
    assert_eq!(counts.iter().sum::<usize>(), SCALE_TUNNELS);

    // The log, the metric and the clients agree: every move is a 1001 a
    // client saw, and the upstream side of each got one too.
    let lines = moving_lines(&rw);
    let logged: usize = lines.iter().map(|(_, n)| n).sum();
    let metric = moved(&text, "chat", "rebalance");
    eprintln!(
        "moved: {closes} closes seen by clients, {logged} in {} log lines, metric {metric}",
        lines.len()
    );
    assert_eq!(logged, closes, "log lines {lines:?}");
    assert_eq!(metric, closes as f64, "{text}");
    assert_eq!(moved(&text, "chat", "down"), 0.0);
    assert_eq!(moved(&text, "chat", "removed"), 0.0);
    for s in [&a, &b] {
        let from_log: usize = lines
            .iter()
            .filter(|(server, _)| *server == s.addr.to_string())
            .map(|(_, n)| n)
            .sum();
        // The server each close came from: the one the client was on.
        let from_clients: usize = clients
            .iter()
            .map(|c| {
                c.servers[..c.closes.len()]
                    .iter()
                    .filter(|n| *n == s.name)
                    .count()
            })
            .sum();
        assert_eq!(from_log, from_clients, "moved off {}", s.name);
        let codes: Vec<u16> = s.tunnel_closes().into_iter().map(|(_, c)| c).collect();
        assert_eq!(codes.len(), from_clients, "close frames at {}", s.name);
        assert!(
            codes.iter().all(|&c| c == 1001),
            "{}'s close codes: {codes:?}",
            s.name
        );
    }
    assert!(c.tunnel_closes().is_empty() && dd.tunnel_closes().is_empty());

    // The rate held: no 1-second window of arrivals holds more than the
    // rate. The slack: each worker tops its allowance up per sweep and
    // spreads a sweep's closes over the next sweep period, so the two
    // workers' schedules and the clients' poll wake-ups (arrival times are
    // taken here, not at the proxy) can put a few more in one window than
    // the rate strictly allows: 10 % and 10 tunnels.
    let limit = RATE * 11 / 10 + 10;
    assert!(
        densest_1s <= limit,
        "{densest_1s} closes in one second (at {:?} after the reload), over the rate {RATE}/s (limit {limit})",
        densest_at.map(|t| t.duration_since(reloaded))
    );
    // 800 or so at 400/s: moving them took at least a second.
    assert!(closes >= 700, "only {closes} tunnels were moved");

    // Last, as they hold the issue's promise: no client was moved twice
    // (a client placed over its server's bound would be: the sweep moves
    // the newest first), and the moved clients went to servers with room:
    // C and D, or A or B only where a worker's share grew while they were
    // closing (its tunnels grew by the reconnections the other worker's
    // moves brought it), a few: up to 3 % were seen. Without the rule
    // (round robin over four) half would land on A and B.
    let twice: Vec<String> = clients
        .iter()
        .filter(|c| c.closes.len() > 1)
        .map(|c| format!("client {}: servers {:?}", c.id, c.servers))
        .collect();
    assert!(
        twice.is_empty(),
        "{} clients were moved more than once:\n{}",
        twice.len(),
        twice
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    let back: Vec<String> = clients
        .iter()
        .filter(|c| c.servers.len() > 1 && !["C", "D"].contains(&c.on()))
        .map(|c| format!("client {}: {:?}", c.id, c.servers))
        .collect();
    assert!(
        back.len() * 10 <= closes,
        "{} of {closes} moved clients did not land on C or D (they should go to servers with room):\n{}",
        back.len(),
        back.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );

    // Every tunnel still carries messages.
    for c in clients.iter_mut() {
        let ws = c.ws.as_mut().unwrap();
        ws.get_ref().set_nonblocking(false).unwrap();
        echo(ws, "still here").unwrap_or_else(|e| panic!("client {} on {}: {e}", c.id, c.on()));
    }
}

const CONTROL_TUNNELS: usize = 200;

/// The control case: the same scale-out without `rebalance` moves
/// nothing. A and B keep their tunnels (nothing comes on any for three
/// sweeps), no 1001, no log line, the moved count stays 0; new tunnels do
/// reach C and D.
fn without_rebalance_a_scale_out_moves_nothing(d: Driver) {
    let _one = one_at_a_time();
    let a = Switch::start("A", Health::Ok);
    let b = Switch::start("B", Health::Ok);
    let c = Switch::start("C", Health::Ok);
    let dd = Switch::start("D", Health::Ok);
    let rw = Ringway::start_with_runtime(
        &config("round_robin", &addrs(&[&a, &b]), ""),
        d,
        &format!("workers = {WORKERS}\n"),
    );
    let proxy = rw.addr("app");
    let maddr = metrics_addr(&rw);
    let mut tunnels: Vec<Tunnel> = (0..CONTROL_TUNNELS)
        .map(|i| open_tunnel(proxy, &format!("/ws/{i}")))
        .collect();
    wait_until(
        "every tunnel live at A or B",
        || a.live_tunnels() + b.live_tunnels() == CONTROL_TUNNELS,
        || format!("A {}, B {}", a.live_tunnels(), b.live_tunnels()),
    );
    let (a0, b0) = (a.live_tunnels(), b.live_tunnels());
    rw.reload(&config("round_robin", &addrs(&[&a, &b, &c, &dd]), ""), 1);

    // Watch every tunnel for three sweeps (1 s each): nothing comes.
    let heard = heard(&mut tunnels, Instant::now() + Duration::from_secs(3));
    assert!(
        heard.is_empty(),
        "without rebalance, tunnels heard: {heard:?}"
    );
    assert_eq!(
        (a.live_tunnels(), b.live_tunnels()),
        (a0, b0),
        "A and B keep their tunnels"
    );
    assert_eq!((c.live_tunnels(), dd.live_tunnels()), (0, 0));
    assert!(a.tunnel_closes().is_empty() && b.tunnel_closes().is_empty());
    assert!(!rw.logs().contains(MOVING), "{}", rw.logs());
    let text = scrape(maddr);
    assert_eq!(moved(&text, "chat", "rebalance"), 0.0, "{text}");
    assert_eq!(tunnels_active(&text, a.addr), a0 as f64, "{text}");
    assert_eq!(tunnels_active(&text, b.addr), b0 as f64, "{text}");

    // The reload took: new tunnels reach C and D too.
    let mut on = Vec::new();
    for i in 0..8 {
        let mut t = open_tunnel(proxy, &format!("/ws/after-{i}"));
        close_websocket(&mut t.ws);
        on.push(t.on);
    }
    assert!(
        on.iter().any(|n| n == "C") && on.iter().any(|n| n == "D"),
        "new tunnels after the scale-out: {on:?}"
    );
    assert_echoes(&mut tunnels, None, "still here");
}

/// Keep-alive HTTP clients of the proxy, used in turn (so requests reach
/// both workers); one whose answer says `Connection: close` is replaced.
struct Requester {
    proxy: SocketAddr,
    conns: Vec<Option<TcpStream>>,
    next: usize,
}

impl Requester {
    fn new(proxy: SocketAddr, n: usize) -> Requester {
        Requester {
            proxy,
            conns: (0..n).map(|_| None).collect(),
            next: 0,
        }
    }

    /// `GET /who`: the body (the backend's name).
    fn who(&mut self) -> String {
        let k = self.next;
        self.next = (k + 1) % self.conns.len();
        let proxy = self.proxy;
        let s = self.conns[k].get_or_insert_with(|| {
            let s = TcpStream::connect(proxy).expect("connect to ringway");
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.set_nodelay(true).ok();
            s
        });
        s.write_all(b"GET /who HTTP/1.1\r\nHost: app\r\n\r\n")
            .expect("write a request");
        let (head, body) = read_response(s);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        if field_values(&head, "connection")
            .iter()
            .any(|v| v.eq_ignore_ascii_case("close"))
        {
            self.conns[k] = None;
        }
        body
    }
}

fn slow_start_ramps_a_joining_server_round_robin(d: Driver) {
    slow_start_ramps_a_joining_server(d, "round_robin");
}

fn slow_start_ramps_a_joining_server_least_conn(d: Driver) {
    slow_start_ramps_a_joining_server(d, "least_conn");
}

/// `slow_start = "3s"`: A and B answer requests; a reload adds C. Requests
/// are sent without pause and binned by time since the reload: in the first
/// half second C's share is well under a third (its weight ramps from 0),
/// it grows, and from 3.5 s it is about a third. A and B were there at the
/// start: no ramp for them (before the reload they share evenly).
fn slow_start_ramps_a_joining_server(d: Driver, balance: &str) {
    let _one = one_at_a_time();
    let a = Switch::start("A", Health::Ok);
    let b = Switch::start("B", Health::Ok);
    let c = Switch::start("C", Health::Ok);
    let extra = "slow_start = \"3s\"\nkeepalive = 16\n";
    let rw = Ringway::start_with_runtime(
        &config(balance, &addrs(&[&a, &b]), extra),
        d,
        &format!("workers = {WORKERS}\n"),
    );
    let proxy = rw.addr("app");
    let mut req = Requester::new(proxy, 4);
    let before: Vec<String> = (0..200).map(|_| req.who()).collect();
    let on_a = before.iter().filter(|n| *n == "A").count();
    assert_eq!(before.iter().filter(|n| *n == "B").count(), 200 - on_a);
    assert!(
        (80..=120).contains(&on_a),
        "A and B (no ramp: there from the start) should share evenly: A {on_a} of 200"
    );

    rw.reload(&config(balance, &addrs(&[&a, &b, &c]), extra), 1);
    let reloaded = Instant::now();
    // Fresh connections: a live connection keeps the configuration it was
    // accepted with (docs/CONFIG.md, reload), so the old ones never see C.
    let mut req = Requester::new(proxy, 4);
    // Half-second bins up to 4 s: (requests, C's).
    const BIN: Duration = Duration::from_millis(500);
    // The last bin (3.5 s on, the ramp done) goes on until it holds 300
    // requests (bounded: 10 s after the reload).
    let mut bins = [(0usize, 0usize); 8];
    let last = bins.len() - 1;
    loop {
        let name = req.who();
        let at = reloaded.elapsed();
        let k = ((at.as_nanos() / BIN.as_nanos()) as usize).min(last);
        if k == last && (at >= BIN * bins.len() as u32 && bins[last].0 >= 300)
            || at >= Duration::from_secs(10)
        {
            break;
        }
        assert!(["A", "B", "C"].contains(&name.as_str()), "{name}");
        bins[k].0 += 1;
        bins[k].1 += usize::from(name == "C");
    }
    let share = |(n, c): (usize, usize)| c as f64 / n.max(1) as f64;
    let shares: Vec<String> = bins
        .iter()
        .enumerate()
        .map(|(k, &b)| {
            let to = if k == last {
                "on".to_string()
            } else {
                format!("-{:.1}", (k + 1) as f64 * 0.5)
            };
            format!("{:.1}{to} s: {:.3} of {}", k as f64 * 0.5, share(b), b.0)
        })
        .collect();
    eprintln!(
        "slow_start {balance} on {d:?}: C's share by half second after the reload:\n  {}",
        shares.join("\n  ")
    );
    for k in [0, 3, last] {
        assert!(
            bins[k].0 >= 20,
            "only {} requests in bin {k}: {shares:?}",
            bins[k].0
        );
    }
    let early = share(bins[0]);
    let late = share(bins[last]);
    assert!(
        early < 0.15,
        "C's share in the first 0.5 s: {early:.3} ({shares:?})"
    );
    assert!(
        (0.25..=0.42).contains(&late),
        "C's share from 3.5 s after it joined (its ramp done): {late:.3} ({shares:?})"
    );
    // Ramping: the middle of the ramp lies between its ends.
    let mid = share(bins[3]);
    assert!(
        early < mid && mid < late + 0.05,
        "C's share does not ramp: {shares:?}"
    );
    assert!(c.requests() > 0);
}
