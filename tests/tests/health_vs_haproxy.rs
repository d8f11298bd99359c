//! Active health checks, ringway beside HAProxy (the reference for this
//! feature: nginx OSS has no active checks). The same two backends, A
//! and B, sit behind both proxies at once with the same check settings —
//! `GET /health` every 200 ms, expect 200, 2 fails mark a server down, 2
//! passes mark it up, 500 ms timeout, round robin:
//!
//! - ringway: `[upstreams.chat]` with `on_down = "close"`, `max_fails =
//!   0`, `[upstreams.chat.health_check]` `type = "http"`; `drain_spread =
//!   "1s"`.
//! - HAProxy: `option httpchk GET /health`, `http-check expect status
//!   200`, `check inter 200ms fall 2 rise 2 on-marked-down
//!   shutdown-sessions`, `timeout check 500ms`, `timeout tunnel 1h`.
//!
//! A's `/health` is switched to 503 once and both proxies are watched
//! side by side: both move requests off A within the same bound, and back
//! when it passes again. The difference is what a WebSocket tunnel on A
//! sees: ringway ends it at a frame boundary with close 1001 (going away)
//! so the client reconnects politely; HAProxy's `shutdown-sessions` cuts
//! the connection, and the client gets no close frame. B's tunnels stay
//! open through both. Each test prints a side-by-side table (eprintln;
//! `--nocapture` shows it) with the times and what A's tunnels saw.
//!
//! The tests skip (with a line on stderr) where haproxy is not installed;
//! scripts/test.sh installs it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use ringway_tests::haproxy::{self, HaProxy};
use ringway_tests::switch::{wait_count, Health, Switch};
use ringway_tests::tunnel::{echo, open_tunnel, watch_gone, Event, Tunnel};
use ringway_tests::*;

both_drivers!(
    requests_leave_a_failing_server_and_come_back_like_haproxy,
    tunnels_of_a_failing_server_close_with_1001_where_haproxy_cuts_them,
);

/// The bound on each proxy marking A down or up again (the checks take
/// 2 × 200 ms).
const MARK_WITHIN: Duration = Duration::from_secs(5);
/// Answers in a row from one backend that show a proxy has moved.
const RUN: usize = 20;
/// WebSocket tunnels opened through each proxy.
const TUNNELS: usize = 20;

// ---- the two proxies ----

/// ringway and HAProxy over A and B with the same checks, or `None`
/// (after a line on stderr) where haproxy is not installed.
struct Pair {
    rw: Ringway,
    hp: HaProxy,
    hp_version: String,
}

impl Pair {
    fn start(d: Driver, a: &Switch, b: &Switch, test: &str) -> Option<Pair> {
        let bin = haproxy_binary(test)?;
        let rw = Ringway::start_with_runtime(
            &format!(
                r#"
[upstreams.chat]
servers = [{{ addr = "{a}" }}, {{ addr = "{b}" }}]
on_down = "close"
max_fails = 0

[upstreams.chat.health_check]
type = "http"
uri = "/health"
interval = "200ms"
fails = 2
passes = 2
timeout = "500ms"

[servers.app]
listen = ["127.0.0.1:0"]
[servers.app.locations."/"]
proxy_pass = "http://chat"
"#,
                a = a.addr,
                b = b.addr,
            ),
            d,
            "drain_spread = \"1s\"\n",
        );
        let hp = HaProxy::start(
            &bin,
            "haproxy",
            &format!(
                r#"defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  timeout tunnel 1h
  timeout check 500ms

frontend app
  bind {{LISTEN}}
  default_backend chat

backend chat
  balance roundrobin
  option httpchk GET /health
  http-check expect status 200
  server a {a} check inter 200ms fall 2 rise 2 on-marked-down shutdown-sessions
  server b {b} check inter 200ms fall 2 rise 2 on-marked-down shutdown-sessions
"#,
                a = a.addr,
                b = b.addr,
            ),
        );
        Some(Pair {
            rw,
            hp,
            hp_version: haproxy::version(&bin),
        })
    }

    fn ringway(&self) -> SocketAddr {
        self.rw.addr("app")
    }

    fn haproxy(&self) -> SocketAddr {
        self.hp.addr
    }

    /// The number of ringway's log lines saying a server was marked
    /// `dir` ("down" or "up") by the health check.
    fn ringway_marks(&self, dir: &str) -> usize {
        let needle = format!("upstream server marked {dir} by health check");
        self.rw
            .logs()
            .lines()
            .filter(|l| l.contains(&needle))
            .count()
    }

    /// How long after `since` ringway logged A (`a`) marked `dir` ("down"
    /// or "up"): the line after the `before` such lines there were at
    /// `since` (bounded by [`MARK_WITHIN`]; the line is taken as it comes:
    /// `wait_for_log_count` blocks on the log's condvar).
    fn ringway_marked(&self, dir: &str, before: usize, a: SocketAddr, since: Instant) -> Duration {
        let needle = format!("upstream server marked {dir} by health check");
        self.rw.wait_for_log_count(&needle, before + 1, MARK_WITHIN);
        let at = since.elapsed();
        let logs = self.rw.logs();
        let line = logs
            .lines()
            .filter(|l| l.contains(&needle))
            .nth(before)
            .unwrap();
        assert!(
            line.contains(&a.to_string()) && line.contains("chat"),
            "ringway marked another server {dir}: {line}\n{logs}"
        );
        at
    }

    /// When HAProxy logged `chat/a` marked `dir` ("DOWN" or "UP") after
    /// `since`, if it did within [`MARK_WITHIN`].
    fn haproxy_marked(&self, dir: &str, since: Instant) -> Option<Duration> {
        self.hp
            .wait_for_log_since(&format!("Server chat/a is {dir}"), since, MARK_WITHIN)
            .map(|(at, _)| at.duration_since(since))
    }
}

/// The haproxy binary, or `None` after saying on stderr that `test` is
/// skipped.
fn haproxy_binary(test: &str) -> Option<PathBuf> {
    let bin = haproxy::binary();
    if bin.is_none() {
        eprintln!(
            "SKIP {test}: haproxy is not installed (apt-get install haproxy; scripts/test.sh installs it as root)"
        );
    }
    bin
}

// ---- clients ----

/// `GET /who` on a fresh connection: the body (the backend's name), or
/// what went wrong (not [`switch::who`](ringway_tests::switch::who): the
/// head goes into the answer).
fn who(proxy: SocketAddr) -> String {
    let (status, head, body) = get_once(proxy, "app", "/who", "");
    if status == 200 {
        body
    } else {
        format!("status {status}: {head}")
    }
}

/// `n` answers in a row through `proxy`.
fn answers(proxy: SocketAddr, n: usize) -> Vec<String> {
    (0..n).map(|_| who(proxy)).collect()
}

/// Ask who answers through `proxy` until [`RUN`] answers in a row come
/// from `want`; how long after `since` the first of them was asked
/// (bounded by `since` + [`MARK_WITHIN`]).
fn moved_to(proxy: SocketAddr, want: &str, since: Instant) -> Result<Duration, String> {
    let deadline = since + MARK_WITHIN;
    let mut run = 0;
    let mut run_start = since;
    let mut last = Vec::new();
    while run < RUN {
        if Instant::now() >= deadline {
            return Err(format!(
                "answers never came only from {want} within {MARK_WITHIN:?}; the last: {last:?}"
            ));
        }
        let asked = Instant::now();
        let got = who(proxy);
        if got == want {
            if run == 0 {
                run_start = asked;
            }
            run += 1;
        } else {
            run = 0;
        }
        last.push(got);
        if last.len() > RUN {
            last.remove(0);
        }
        // Pacing: the mark takes checks 200 ms apart.
        thread::sleep(Duration::from_millis(5));
    }
    Ok(run_start.duration_since(since))
}

/// Ask who answers through `proxy` until `want` does; how long after
/// `since` (bounded by `since` + [`MARK_WITHIN`]).
fn back_to(proxy: SocketAddr, want: &str, since: Instant) -> Result<Duration, String> {
    let deadline = since + MARK_WITHIN;
    loop {
        let asked = Instant::now();
        if asked >= deadline {
            return Err(format!(
                "{want} did not answer again within {MARK_WITHIN:?}"
            ));
        }
        if who(proxy) == want {
            return Ok(asked.duration_since(since));
        }
        // Pacing: the mark takes checks 200 ms apart.
        thread::sleep(Duration::from_millis(5));
    }
}

/// Both backends answer among 20 requests through `proxy`.
fn assert_both_answer(proxy: SocketAddr, which: &str, when: &str) {
    let from = answers(proxy, 20);
    assert!(
        from.iter().any(|n| n == "A") && from.iter().any(|n| n == "B"),
        "{when}, both A and B should answer through {which}: {from:?}"
    );
}

/// What came on the tunnels on `on`, grouped: `Nx what, at T s` (or a
/// range of times) after `since`.
fn summary(tunnels: &[Tunnel], seen: &[Option<Event>], on: &str, since: Instant) -> String {
    // (what, how many, when each came in seconds after `since`)
    let mut groups: Vec<(String, usize, Vec<f64>)> = Vec::new();
    for (_, s) in tunnels.iter().zip(seen).filter(|(t, _)| t.on == on) {
        let (what, at) = match s {
            None => ("nothing".to_string(), None),
            Some(Event::Close(code, at)) => (format!("close frame {code}"), Some(*at)),
            Some(Event::Other(what, at)) => (format!("no close frame: {what}"), Some(*at)),
        };
        let secs = at.map(|at| at.duration_since(since).as_secs_f64());
        match groups.iter_mut().find(|(w, _, _)| *w == what) {
            Some((_, n, times)) => {
                *n += 1;
                times.extend(secs);
            }
            None => groups.push((what, 1, secs.into_iter().collect())),
        }
    }
    groups
        .iter()
        .map(|(what, n, times)| {
            let lo = times.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = times.iter().copied().fold(0.0, f64::max);
            if times.is_empty() {
                format!("{n}x {what}")
            } else if hi - lo < 0.0005 {
                format!("{n}x {what}, at {lo:.3} s")
            } else {
                format!("{n}x {what}, {lo:.3}-{hi:.3} s")
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// `n` tunnels through `proxy` at `/ws/{tag}-i`: how many reached A and B.
fn open_tunnels(proxy: SocketAddr, tag: &str, n: usize) -> Vec<Tunnel> {
    let tunnels: Vec<Tunnel> = (0..n)
        .map(|i| open_tunnel(proxy, &format!("/ws/{tag}-{i}")))
        .collect();
    let on_a = tunnels.iter().filter(|t| t.on == "A").count();
    let on_b = tunnels.iter().filter(|t| t.on == "B").count();
    assert_eq!(on_a + on_b, n, "{tag}: tunnels reached neither A nor B");
    assert!(
        on_a >= n / 4 && on_b >= n / 4,
        "{tag}: round robin put {on_a} tunnels on A, {on_b} on B"
    );
    tunnels
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

/// A side-by-side table on stderr: `rows` of (what, ringway, HAProxy).
fn table(title: &str, d: Driver, hp_version: &str, rows: &[(&str, String, String)]) {
    let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let rw_head = format!("ringway ({})", d.name());
    let w1 = rows
        .iter()
        .map(|r| r.1.len())
        .chain([rw_head.len()])
        .max()
        .unwrap_or(0);
    let mut out = format!("\n== {title} ==\n");
    out += &format!("{:w0$} | {rw_head:w1$} | {hp_version}\n", "");
    out += &format!(
        "{}-+-{}-+-{}\n",
        "-".repeat(w0),
        "-".repeat(w1),
        "-".repeat(20)
    );
    for (what, rw, hp) in rows {
        out += &format!("{what:w0$} | {rw:w1$} | {hp}\n");
    }
    eprintln!("{out}");
}

// ---- tests ----

/// While A and B are healthy both proxies send requests to both. A's
/// `/health` answers 503: both mark A down (ringway's log line, HAProxy's
/// `Server chat/a is DOWN`) and send every request to B, each within
/// [`MARK_WITHIN`]. A passes again: both send requests to A again.
fn requests_leave_a_failing_server_and_come_back_like_haproxy(d: Driver) {
    let a = Switch::start("A", Health::Ok);
    let b = Switch::start("B", Health::Ok);
    let Some(p) = Pair::start(
        d,
        &a,
        &b,
        "requests_leave_a_failing_server_and_come_back_like_haproxy",
    ) else {
        return;
    };
    let (rw, hp) = (p.ringway(), p.haproxy());
    assert_both_answer(rw, "ringway", "while healthy");
    assert_both_answer(hp, "HAProxy", "while healthy");

    // A fails: both proxies are asked side by side until only B answers.
    let downs = p.ringway_marks("down");
    let failed = Instant::now();
    a.set_health(Health::Unavailable);
    let rw_moved = thread::spawn(move || moved_to(rw, "B", failed));
    let hp_moved = thread::spawn(move || moved_to(hp, "B", failed));
    let rw_down = p.ringway_marked("down", downs, a.addr, failed);
    let hp_down = p.haproxy_marked("DOWN", failed);
    let rw_moved = rw_moved.join().unwrap();
    let hp_moved = hp_moved.join().unwrap();
    let rw_moved = rw_moved.unwrap_or_else(|e| panic!("ringway: {e}"));
    let hp_moved = hp_moved.unwrap_or_else(|e| panic!("HAProxy: {e}\n{}", p.hp.logs()));
    assert_eq!(p.ringway_marks("down"), downs + 1, "{}", p.rw.logs());

    // A passes again: both use it again.
    let ups = p.ringway_marks("up");
    let healed = Instant::now();
    a.set_health(Health::Ok);
    let rw_back = thread::spawn(move || back_to(rw, "A", healed));
    let hp_back = thread::spawn(move || back_to(hp, "A", healed));
    let rw_up = p.ringway_marked("up", ups, a.addr, healed);
    let hp_up = p.haproxy_marked("UP", healed);
    let rw_back = rw_back.join().unwrap();
    let hp_back = hp_back.join().unwrap();
    let rw_back = rw_back.unwrap_or_else(|e| panic!("ringway: {e}"));
    let hp_back = hp_back.unwrap_or_else(|e| panic!("HAProxy: {e}\n{}", p.hp.logs()));
    assert_both_answer(rw, "ringway", "once A passed again");
    assert_both_answer(hp, "HAProxy", "once A passed again");

    let logged = |t: Option<Duration>| t.map_or("(no log line)".to_string(), secs);
    table(
        "A's /health fails (503), then passes again: times after the switch",
        d,
        &p.hp_version,
        &[
            ("A marked down (log line)", secs(rw_down), logged(hp_down)),
            (
                "first of 20 answers in a row from B",
                secs(rw_moved),
                secs(hp_moved),
            ),
            ("A marked up (log line)", secs(rw_up), logged(hp_up)),
            ("first answer from A again", secs(rw_back), secs(hp_back)),
        ],
    );
}

/// 20 WebSocket tunnels through each proxy, about half on A; A's
/// `/health` fails. Through ringway every tunnel on A gets a close frame
/// 1001 (spread over `drain_spread`), its upstream side too; through
/// HAProxy (`on-marked-down shutdown-sessions`) every tunnel on A is cut:
/// the client gets no close frame. B's tunnels hear nothing through
/// either and still echo.
fn tunnels_of_a_failing_server_close_with_1001_where_haproxy_cuts_them(d: Driver) {
    let a = Switch::start("A", Health::Ok);
    let b = Switch::start("B", Health::Ok);
    let Some(p) = Pair::start(
        d,
        &a,
        &b,
        "tunnels_of_a_failing_server_close_with_1001_where_haproxy_cuts_them",
    ) else {
        return;
    };
    let mut rw_tunnels = open_tunnels(p.ringway(), "rw", TUNNELS);
    let mut hp_tunnels = open_tunnels(p.haproxy(), "hp", TUNNELS);
    let rw_on_a = rw_tunnels.iter().filter(|t| t.on == "A").count();
    let hp_on_a = hp_tunnels.iter().filter(|t| t.on == "A").count();

    // Fail A; watch the tunnels through both proxies side by side.
    let downs = p.ringway_marks("down");
    let failed = Instant::now();
    a.set_health(Health::Unavailable);
    let deadline = failed + Duration::from_secs(10);
    let rw_watch = thread::spawn(move || {
        let seen = watch_gone(&mut rw_tunnels, "A", deadline);
        (rw_tunnels, seen)
    });
    let hp_watch = thread::spawn(move || {
        let seen = watch_gone(&mut hp_tunnels, "A", deadline);
        (hp_tunnels, seen)
    });
    let rw_down = p.ringway_marked("down", downs, a.addr, failed);
    // The closes are scheduled (spread over drain_spread) at the worker's
    // next sweep after the verdict.
    p.rw.wait_for_log("closing tunnels of a server marked down", MARK_WITHIN);
    let rw_closing = failed.elapsed();
    let hp_down = p.haproxy_marked("DOWN", failed);
    let (mut rw_tunnels, rw_seen) = rw_watch.join().unwrap();
    let (mut hp_tunnels, hp_seen) = hp_watch.join().unwrap();
    let rw_a = summary(&rw_tunnels, &rw_seen, "A", failed);
    let hp_a = summary(&hp_tunnels, &hp_seen, "A", failed);
    let rw_b = summary(&rw_tunnels, &rw_seen, "B", failed);
    let hp_b = summary(&hp_tunnels, &hp_seen, "B", failed);
    eprintln!("through ringway: A's tunnels: {rw_a}; B's: {rw_b}");
    eprintln!("through HAProxy: A's tunnels: {hp_a}; B's: {hp_b}");

    // ringway: a close frame 1001 on each of A's; nothing on B's.
    for (i, (t, s)) in rw_tunnels.iter().zip(&rw_seen).enumerate() {
        match (t.on.as_str(), s) {
            ("A", Some(Event::Close(1001, _))) | ("B", None) => {}
            (on, _) => panic!(
                "ringway tunnel {i} on {on}: A's should get close 1001 and B's nothing; A's: {rw_a}; B's: {rw_b}"
            ),
        }
    }
    // HAProxy: each of A's ended without a close frame; nothing on B's.
    for (i, (t, s)) in hp_tunnels.iter().zip(&hp_seen).enumerate() {
        match (t.on.as_str(), s) {
            ("A", Some(Event::Other(..))) | ("B", None) => {}
            (on, _) => panic!(
                "HAProxy tunnel {i} on {on}: A's should be cut without a close frame and B's hear nothing; A's: {hp_a}; B's: {hp_b}\n{}",
                p.hp.logs()
            ),
        }
    }
    // What the clients of HAProxy's cut tunnels saw is the end of the
    // stream or a reset, never data.
    for s in hp_seen.iter().flatten() {
        if let Event::Other(what, _) = s {
            assert!(
                !what.starts_with("message"),
                "a cut HAProxy tunnel delivered a message: {what}"
            );
        }
    }

    // B's tunnels still carry messages through both.
    for (which, tunnels) in [("ringway", &mut rw_tunnels), ("HAProxy", &mut hp_tunnels)] {
        for (i, t) in tunnels.iter_mut().enumerate().filter(|(_, t)| t.on == "B") {
            echo(&mut t.ws, "still here")
                .unwrap_or_else(|e| panic!("{which}: B's tunnel {i}: {e}"));
        }
    }

    // A's side of the tunnels: ringway closed each with 1001 too; HAProxy
    // cut them.
    wait_count(
        "A's tunnels through ringway ended at A",
        || a.ends_of("/ws/rw-").len(),
        rw_on_a,
        Duration::from_secs(5),
    );
    wait_count(
        "A's tunnels through HAProxy ended at A",
        || a.ends_of("/ws/hp-").len(),
        hp_on_a,
        Duration::from_secs(5),
    );
    let group = |ends: Vec<String>| {
        let mut g: Vec<(String, usize)> = Vec::new();
        for e in ends {
            match g.iter_mut().find(|(w, _)| *w == e) {
                Some((_, n)) => *n += 1,
                None => g.push((e, 1)),
            }
        }
        g.iter()
            .map(|(w, n)| format!("{n}x {w}"))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let rw_at_a = a.ends_of("/ws/rw-");
    let hp_at_a = a.ends_of("/ws/hp-");
    assert!(
        rw_at_a.iter().all(|e| e == "close 1001"),
        "A's side of ringway's tunnels: {rw_at_a:?}"
    );
    assert!(
        hp_at_a.iter().all(|e| !e.starts_with("close")),
        "A's side of HAProxy's tunnels got a close frame: {hp_at_a:?}"
    );

    let logged = |t: Option<Duration>| t.map_or("(no log line)".to_string(), secs);
    table(
        &format!("{TUNNELS} tunnels through each proxy; A's /health fails: times after the switch"),
        d,
        &p.hp_version,
        &[
            ("A marked down (log line)", secs(rw_down), logged(hp_down)),
            (
                "A's tunnels: closing begins (log line)",
                secs(rw_closing),
                "(no such step: cut at the mark)".to_string(),
            ),
            (
                "tunnels on A / on B",
                format!("{rw_on_a} / {}", TUNNELS - rw_on_a),
                format!("{hp_on_a} / {}", TUNNELS - hp_on_a),
            ),
            ("A's tunnels, the client saw", rw_a, hp_a),
            ("A's tunnels, backend A saw", group(rw_at_a), group(hp_at_a)),
            (
                "B's tunnels",
                format!("{rw_b}, then echo ok"),
                format!("{hp_b}, then echo ok"),
            ),
        ],
    );

    for t in rw_tunnels.iter_mut().chain(hp_tunnels.iter_mut()) {
        if t.on == "B" {
            close_websocket(&mut t.ws);
        }
    }
}
