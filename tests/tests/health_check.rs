//! Active health checks end to end: `[upstreams.NAME.health_check]` with
//! `type = "http"`, `"websocket"` and `"tcp"`, against backends whose
//! health the test switches while the real binary runs (both drivers).
//! A server fails `fails` checks in a row: it is marked down (log line,
//! `ringway_upstream_check_up` 0) and requests and new tunnels go to the
//! other servers; it passes `passes` in a row: it is used again. A group
//! whose every server is down answers 502. `on_down = "close"` closes the
//! tunnels of a server marked down with WebSocket close 1001, spread over
//! `drain_spread`; `on_remove = "close"` does the same for a server a
//! reload removed, and `"keep"` (the default) leaves them open.
//!
//! Passive health is off in every group here (`max_fails = 0`) and a
//! request never goes on to another server (`proxy_next_upstream =
//! ["off"]`): only the health check keeps traffic off a server.

use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use ringway_tests::logs::{lines_with, wait_lines};
use ringway_tests::prom::{metrics_addr, moved, scrape, scrape_until, sum, values};
use ringway_tests::switch::{only_from, until_each, wait_count, who, Health, Switch};
use ringway_tests::tunnel::{
    assert_echoes, close_code, closed_with_1001, echo, heard, open_tunnel, watch_gone, Event,
    Tunnel,
};
use ringway_tests::*;

both_drivers!(
    http_check_moves_requests_off_a_failing_server_and_back,
    expect_body_marks_down_a_server_whose_body_lacks_it,
    websocket_check_needs_a_real_upgrade,
    tcp_check_marks_a_refused_server_down_and_an_all_down_group_answers_502,
    on_down_close_moves_the_tunnels_of_a_server_marked_down,
    on_remove_close_closes_the_tunnels_of_a_removed_server,
    on_remove_keep_is_the_default_and_keeps_them,
);

/// The tunnel tests on the io_uring driver's syscall relay too (the
/// close frames go in at a frame boundary the relay finds).
mod io_uring_syscall_relay {
    use ringway_tests::Driver;
    #[test]
    fn on_down_close_moves_the_tunnels_of_a_server_marked_down() {
        super::on_down_close_moves_the_tunnels_of_a_server_marked_down(Driver::IoUringSyscallRelay)
    }
    #[test]
    fn on_remove_close_closes_the_tunnels_of_a_removed_server() {
        super::on_remove_close_closes_the_tunnels_of_a_removed_server(Driver::IoUringSyscallRelay)
    }
}

/// Consecutive failed checks that mark a server down.
const FAILS: usize = 2;
/// Consecutive passed checks that mark it up again.
const PASSES: usize = 2;
/// Far more than `FAILS` or `PASSES` checks at `interval = "200ms"` take:
/// the bound on every wait for a server to be marked down or up.
const MARK_WITHIN: Duration = Duration::from_secs(10);
/// How long the backends' counts may take to show a change (metrics:
/// `prom::SCRAPE_WITHIN`).
const SETTLE: Duration = Duration::from_secs(10);

// ---- configuration ----

/// A configuration with the metrics listener, the group `chat` of
/// `servers` (passive health off, `group_extra` lines, then `check`),
/// `more` tables, and the server `app` proxying `/` to `chat`.
fn config(servers: &[SocketAddr], group_extra: &str, check: &str, more: &str) -> String {
    format!(
        r#"
[metrics]
listen = "127.0.0.1:0"

[upstreams.chat]
servers = [{}]
max_fails = 0
{group_extra}
{check}

[servers.app]
listen = ["127.0.0.1:0"]
[servers.app.locations."/"]
proxy_pass = "http://chat"
proxy_read_timeout = "60s"
proxy_connect_timeout = "2s"
proxy_next_upstream = ["off"]
{more}
"#,
        servers_list(servers)
    )
}

fn servers_list(servers: &[SocketAddr]) -> String {
    servers
        .iter()
        .map(|a| format!("{{ addr = \"{a}\" }}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `[upstreams.GROUP.health_check]` of `kind`: every 200 ms, no jitter,
/// `FAILS`/`PASSES`, and the `extra` lines.
fn check(group: &str, kind: &str, extra: &str) -> String {
    format!(
        "[upstreams.{group}.health_check]\ntype = \"{kind}\"\ninterval = \"200ms\"\njitter = \"0s\"\ntimeout = \"500ms\"\nfails = {FAILS}\npasses = {PASSES}\n{extra}"
    )
}

// ---- the log ----

/// The log lines saying `server` of `upstream` was marked `dir` ("down"
/// or "up") by the health check.
fn marked_lines(rw: &Ringway, dir: &str, upstream: &str, server: SocketAddr) -> Vec<String> {
    lines_with(
        rw,
        &format!("upstream server marked {dir} by health check"),
        &[("upstream", upstream), ("server", &server.to_string())],
    )
}

/// Wait (bounded by [`MARK_WITHIN`]) until `server` of `upstream` is
/// logged marked `dir`, at least `n` times in all.
fn wait_marked(rw: &Ringway, dir: &str, upstream: &str, server: SocketAddr, n: usize) {
    wait_lines(
        rw,
        &format!("upstream server marked {dir} by health check"),
        &[("upstream", upstream), ("server", &server.to_string())],
        n,
        MARK_WITHIN,
    );
}

fn assert_never_marked(rw: &Ringway, dir: &str, upstream: &str, server: SocketAddr) {
    let lines = marked_lines(rw, dir, upstream, server);
    assert!(
        lines.is_empty(),
        "{server} of {upstream} was marked {dir}: {lines:?}"
    );
}

// ---- metrics ----

/// The one value of `ringway_upstream_check_up` for `server` of
/// `upstream` (`None`: no series yet).
fn check_up(text: &str, upstream: &str, server: SocketAddr) -> Option<f64> {
    let s = server.to_string();
    let v = values(
        text,
        "ringway_upstream_check_up",
        &[("upstream", upstream), ("server", &s)],
    );
    assert!(
        v.len() <= 1,
        "several check_up series for {s}: {v:?}\n{text}"
    );
    v.first().copied()
}

/// `ringway_upstream_checks_total` for `server` of `upstream` and `result`.
fn checks(text: &str, upstream: &str, server: SocketAddr, result: &str) -> f64 {
    let s = server.to_string();
    sum(
        text,
        "ringway_upstream_checks_total",
        &[("upstream", upstream), ("server", &s), ("result", result)],
    )
}

// ---- tests ----

/// `type = "http"` with the default `expect_status` (2xx or 3xx): a 503
/// from A's `/health` marks A down after `fails` checks, every request
/// then goes to B; A's 200s mark it up after `passes`, and it answers
/// again. The metrics follow.
fn http_check_moves_requests_off_a_failing_server_and_back(d: Driver) {
    let a = Switch::start("A", Health::Ok);
    let b = Switch::start("B", Health::Ok);
    let rw = Ringway::start_with_runtime(
        &config(
            &[a.addr, b.addr],
            "",
            &check("chat", "http", "uri = \"/health\"\n"),
            "",
        ),
        d,
        // Two workers: the checker's verdict must reach both.
        "workers = 2\n",
    );
    let proxy = rw.addr("app");
    let maddr = metrics_addr(&rw);

    // Healthy: both are checked and both answer.
    scrape_until(maddr, "A and B checked up", |t| {
        check_up(t, "chat", a.addr) == Some(1.0)
            && check_up(t, "chat", b.addr) == Some(1.0)
            && checks(t, "chat", a.addr, "pass") >= 1.0
            && checks(t, "chat", b.addr, "pass") >= 1.0
    });
    assert!(a.passing() >= 1, "A's /health was never asked");
    let mut from = Vec::new();
    for _ in 0..20 {
        let (status, body) = who(proxy);
        assert_eq!(status, 200);
        from.push(body);
    }
    assert!(
        from.iter().any(|n| n == "A") && from.iter().any(|n| n == "B"),
        "both servers should answer while healthy: {from:?}"
    );

    // A fails its checks: marked down, only after `fails` failed checks.
    let failing_before = a.failing();
    assert_eq!(failing_before, 0);
    a.set_health(Health::Unavailable);
    wait_marked(&rw, "down", "chat", a.addr, 1);
    let failed = a.failing() - failing_before;
    assert!(
        failed >= FAILS,
        "A was marked down after {failed} failed checks, not {FAILS}"
    );
    only_from(proxy, "B", MARK_WITHIN);
    let text = scrape_until(maddr, "A's check_up 0", |t| {
        check_up(t, "chat", a.addr) == Some(0.0)
    });
    assert!(
        checks(&text, "chat", a.addr, "fail") >= FAILS as f64,
        "A's failed checks are not counted:\n{text}"
    );
    assert_eq!(check_up(&text, "chat", b.addr), Some(1.0), "{text}");
    let durations = sum(&text, "ringway_upstream_check_duration_seconds_count", &[]);
    assert!(
        durations >= 2.0,
        "ringway_upstream_check_duration_seconds counts no check:\n{text}"
    );
    assert_never_marked(&rw, "down", "chat", b.addr);

    // A passes again: marked up after `passes` passed checks, and used.
    let passing_before = a.passing();
    a.set_health(Health::Ok);
    wait_marked(&rw, "up", "chat", a.addr, 1);
    let passed = a.passing() - passing_before;
    assert!(
        passed >= PASSES,
        "A was marked up after {passed} passed checks, not {PASSES}"
    );
    until_each(proxy, &["A"], &["A", "B"], MARK_WITHIN);
    scrape_until(maddr, "A's check_up 1 again", |t| {
        check_up(t, "chat", a.addr) == Some(1.0)
    });
    assert_never_marked(&rw, "down", "chat", b.addr);
}

/// `expect_body`: a 200 whose body lacks the text fails the check (A
/// says `status: starting`); a body that holds it passes (B says
/// `status: ok`: a substring).
fn expect_body_marks_down_a_server_whose_body_lacks_it(d: Driver) {
    let a = Switch::start("A", Health::Starting);
    let b = Switch::start("B", Health::Ok);
    let rw = Ringway::start(
        &config(
            &[a.addr, b.addr],
            "",
            &check(
                "chat",
                "http",
                "uri = \"/health\"\nexpect_status = [200]\nexpect_body = \"ok\"\n",
            ),
            "",
        ),
        d,
    );
    let proxy = rw.addr("app");
    wait_marked(&rw, "down", "chat", a.addr, 1);
    // B has passed more checks than it would take to fail.
    wait_count("B's passed checks", || b.passing(), FAILS + 2, MARK_WITHIN);
    assert_never_marked(&rw, "down", "chat", b.addr);
    only_from(proxy, "B", MARK_WITHIN);

    // A's body says ok now: up again, and used.
    a.set_health(Health::Ok);
    wait_marked(&rw, "up", "chat", a.addr, 1);
    until_each(proxy, &["A"], &["A", "B"], MARK_WITHIN);
    assert_never_marked(&rw, "down", "chat", b.addr);
}

/// `type = "websocket"`: a server answering the upgrade with 200, and
/// one answering 101 with the Sec-WebSocket-Accept of RFC 6455's sample
/// key (what a checker that sends that fixed key would accept), are
/// marked down; real WebSocket servers stay up, see handshakes with
/// fresh keys on `uri`, and get a close frame 1000. Tunnels then reach
/// only the real ones.
fn websocket_check_needs_a_real_upgrade(d: Driver) {
    let good = Backend::start();
    let w = Switch::start("W", Health::Ok);
    let no_upgrade = answering_backend(|_| {
        (
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nno".into(),
            false,
        )
    });
    let sample_accept = tungstenite::handshake::derive_accept_key(b"dGhlIHNhbXBsZSBub25jZQ==");
    let wrong_accept = answering_backend(move |_| {
        (
            format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {sample_accept}\r\n\r\n"),
            true,
        )
    });
    let rw = Ringway::start(
        &config(
            &[good.addr, w.addr, no_upgrade, wrong_accept],
            "",
            &check("chat", "websocket", "uri = \"/ws-health\"\n"),
            "",
        ),
        d,
    );
    let proxy = rw.addr("app");
    wait_marked(&rw, "down", "chat", no_upgrade, 1);
    wait_marked(&rw, "down", "chat", wrong_accept, 1);

    // The real ones were checked more often than it takes to fail, and
    // each check closed with 1000.
    let checked = || {
        good.requests()
            .iter()
            .filter(|r| r.path == "/ws-health")
            .count()
    };
    wait_count("the echo backend's checks", checked, FAILS + 2, MARK_WITHIN);
    wait_count(
        "W's check closes",
        || w.check_closes().len(),
        FAILS + 2,
        MARK_WITHIN,
    );
    assert_never_marked(&rw, "down", "chat", good.addr);
    assert_never_marked(&rw, "down", "chat", w.addr);
    let codes = w.check_closes();
    assert!(
        codes
            .iter()
            .all(|(path, c)| path == "/ws-health" && *c == 1000),
        "the checks' close codes: {codes:?}"
    );
    let handshakes: Vec<SeenRequest> = good
        .requests()
        .into_iter()
        .filter(|r| r.path == "/ws-health")
        .collect();
    let mut keys: Vec<&str> = handshakes
        .iter()
        .map(|r| r.header("sec-websocket-key").expect("a Sec-WebSocket-Key"))
        .collect();
    for r in &handshakes {
        assert_eq!(r.header("sec-websocket-version"), Some("13"), "{r:?}");
    }
    let n = keys.len();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), n, "the checks reused a Sec-WebSocket-Key");

    // Tunnels go only to the two that are up: each is a working echo.
    let mut on = Vec::new();
    for i in 0..8 {
        let mut t = open_tunnel(proxy, &format!("/ws/t{i}"));
        echo(&mut t.ws, "hello").unwrap();
        close_websocket(&mut t.ws);
        on.push(t.on);
    }
    // The harness's echo backend echoes `who?`; W names itself.
    assert!(
        on.iter().all(|n| n == "who?" || n == "W"),
        "tunnels reached: {on:?}"
    );
    assert!(
        on.iter().any(|n| n == "who?") && on.iter().any(|n| n == "W"),
        "tunnels should reach both live servers: {on:?}"
    );
    let text = scrape(metrics_addr(&rw));
    assert_eq!(check_up(&text, "chat", no_upgrade), Some(0.0), "{text}");
    assert_eq!(check_up(&text, "chat", wrong_accept), Some(0.0), "{text}");
    assert_eq!(check_up(&text, "chat", good.addr), Some(1.0), "{text}");
    assert_eq!(check_up(&text, "chat", w.addr), Some(1.0), "{text}");
}

/// `type = "tcp"`: a refused address is marked down and gets no request
/// afterwards (no passive health, no next upstream: one that went there
/// would be a 502); a group whose servers are all down answers 502 and
/// logs `no live upstream server`.
fn tcp_check_marks_a_refused_server_down_and_an_all_down_group_answers_502(d: Driver) {
    let refused = refused_addr();
    let b = Switch::start("B", Health::Ok);
    let (dead1, dead2) = (refused_addr(), refused_addr());
    let more = format!(
        r#"[servers.app.locations."/dead/"]
proxy_pass = "http://dead"
proxy_next_upstream = ["off"]

[upstreams.dead]
servers = [{}]
max_fails = 0
{}
"#,
        servers_list(&[dead1, dead2]),
        check("dead", "tcp", "")
    );
    let rw = Ringway::start(
        &config(&[refused, b.addr], "", &check("chat", "tcp", ""), &more),
        d,
    );
    let proxy = rw.addr("app");
    let maddr = metrics_addr(&rw);
    wait_marked(&rw, "down", "chat", refused, 1);
    only_from(proxy, "B", MARK_WITHIN);
    let text = scrape_until(maddr, "the refused server's check_up 0", |t| {
        check_up(t, "chat", refused) == Some(0.0)
    });
    assert!(
        checks(&text, "chat", refused, "fail") >= FAILS as f64,
        "{text}"
    );
    assert_eq!(check_up(&text, "chat", b.addr), Some(1.0), "{text}");
    assert!(checks(&text, "chat", b.addr, "pass") >= 1.0, "{text}");
    assert_never_marked(&rw, "down", "chat", b.addr);

    // Every server of `dead` is down: 502, and the log says why.
    wait_marked(&rw, "down", "dead", dead1, 1);
    wait_marked(&rw, "down", "dead", dead2, 1);
    let (status, head, _) = get_once(proxy, "app", "/dead/x", "");
    assert_eq!(status, 502, "{head}");
    rw.wait_for_log("no live upstream server", Duration::from_secs(5));
    // `chat` still answers from B.
    assert_eq!(who(proxy), (200, "B".to_string()));
}

/// Runtime lines of the tunnel tests: closes spread over 2 s.
const SPREAD_2S: &str = "drain_spread = \"2s\"\nshutdown_timeout = \"10s\"\n";
/// Tunnels of [`on_down_close_moves_the_tunnels_of_a_server_marked_down`]
/// and the client threads that hold them.
const TUNNELS: usize = 500;
const CLIENT_THREADS: usize = 5;

/// `on_down = "close"`: 500 tunnels over A and B; A's health fails. Every
/// tunnel on A gets a close frame 1001 (its upstream side too), spread
/// over `drain_spread`; none on B hears anything and each still echoes;
/// every client of A reconnects and lands on B.
fn on_down_close_moves_the_tunnels_of_a_server_marked_down(d: Driver) {
    let a = Switch::start("A", Health::Ok);
    let b = Switch::start("B", Health::Ok);
    let rw = Ringway::start_with_runtime(
        &config(
            &[a.addr, b.addr],
            "on_down = \"close\"\n",
            &check("chat", "http", "uri = \"/health\"\n"),
            "",
        ),
        d,
        &format!("workers = 2\n{SPREAD_2S}"),
    );
    let proxy = rw.addr("app");
    let maddr = metrics_addr(&rw);

    // Open the tunnels from several threads.
    let per = TUNNELS / CLIENT_THREADS;
    let openers: Vec<_> = (0..CLIENT_THREADS)
        .map(|c| {
            thread::spawn(move || {
                (0..per)
                    .map(|i| open_tunnel(proxy, &format!("/ws/{c}-{i}")))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let groups: Vec<Vec<Tunnel>> = openers.into_iter().map(|h| h.join().unwrap()).collect();
    let on_a = groups.iter().flatten().filter(|t| t.on == "A").count();
    let on_b = groups.iter().flatten().filter(|t| t.on == "B").count();
    assert_eq!(on_a + on_b, TUNNELS);
    assert!(
        on_a >= 100 && on_b >= 100,
        "round robin put {on_a} tunnels on A, {on_b} on B"
    );
    assert_eq!(a.live_tunnels(), on_a);

    // Fail A; watch every tunnel until each of A's has closed.
    let switched = Instant::now();
    a.set_health(Health::Unavailable);
    let deadline = switched + Duration::from_secs(20);
    let watchers: Vec<_> = groups
        .into_iter()
        .enumerate()
        .map(|(c, mut tunnels)| {
            thread::spawn(move || {
                let seen = watch_gone(&mut tunnels, "A", deadline);
                // Each client of A reconnects.
                let again: Vec<String> = tunnels
                    .iter()
                    .zip(&seen)
                    .enumerate()
                    .filter(|(_, (t, s))| t.on == "A" && matches!(s, Some(Event::Close(..))))
                    .map(|(i, _)| {
                        let mut t = open_tunnel(proxy, &format!("/ws/again-{c}-{i}"));
                        let r = echo(&mut t.ws, "again").map(|()| t.on.clone());
                        close_websocket(&mut t.ws);
                        r.unwrap_or_else(|e| format!("no echo: {e}"))
                    })
                    .collect();
                (tunnels, seen, again)
            })
        })
        .collect();
    let mut tunnels = Vec::new();
    let mut seen = Vec::new();
    let mut again = Vec::new();
    for w in watchers {
        let (t, s, a) = w.join().unwrap();
        tunnels.extend(t);
        seen.extend(s);
        again.extend(a);
    }

    // A's tunnels: all closed with 1001; B's: nothing came.
    let times: Vec<Duration> = closed_with_1001(&tunnels, &seen, "A")
        .iter()
        .map(|at| at.duration_since(switched))
        .collect();
    let first = times.iter().min().unwrap().as_secs_f64();
    let last = times.iter().max().unwrap().as_secs_f64();
    assert!(
        last - first >= 1.0,
        "closes not spread over drain_spread: first {first:.3} s, last {last:.3} s after A's health failed"
    );
    rw.wait_for_log(
        "closing tunnels of a server marked down",
        Duration::from_secs(5),
    );
    wait_marked(&rw, "down", "chat", a.addr, 1);

    // Every client of A came back on B.
    assert_eq!(again.len(), on_a);
    let elsewhere: Vec<&String> = again.iter().filter(|n| *n != "B").collect();
    assert!(
        elsewhere.is_empty(),
        "{} reconnections did not land on B: {:?}",
        elsewhere.len(),
        elsewhere.iter().take(10).collect::<Vec<_>>()
    );

    // B's tunnels still carry messages.
    assert_echoes(&mut tunnels, Some("B"), "still here");

    // A's upstream side got its close 1001 too, and no tunnel is left
    // on A.
    a.assert_tunnels_closed_1001(on_a, SETTLE);
    // (The reconnected clients closed theirs, on `/ws/again-…`.)
    b.assert_no_tunnel_closes("/ws/again-");
    scrape_until(maddr, "the moved tunnels", |t| {
        moved(t, "chat", "down") == on_a as f64
    });
    drop(tunnels);
}

/// The group `chat` of `servers` with `extra` lines (`on_remove`), no
/// health check.
fn removal_config(servers: &[SocketAddr], extra: &str) -> String {
    config(servers, extra, "", "")
}

/// Tunnels over A and B, then a reload whose group has only B; the
/// tunnels and which backend each reached.
fn tunnels_then_remove_a(
    rw: &Ringway,
    a: &Switch,
    b: &Switch,
    extra: &str,
) -> (Vec<Tunnel>, usize) {
    let proxy = rw.addr("app");
    let tunnels: Vec<Tunnel> = (0..10)
        .map(|i| open_tunnel(proxy, &format!("/ws/{i}")))
        .collect();
    let on_a = tunnels.iter().filter(|t| t.on == a.name).count();
    let on_b = tunnels.iter().filter(|t| t.on == b.name).count();
    assert!(on_a >= 2 && on_b >= 2, "{on_a} tunnels on A, {on_b} on B");
    rw.reload(&removal_config(&[b.addr], extra), 1);
    // New tunnels go to B alone.
    for i in 0..4 {
        let mut t = open_tunnel(proxy, &format!("/ws/after-{i}"));
        assert_eq!(t.on, b.name, "a tunnel opened after the reload");
        close_websocket(&mut t.ws);
    }
    (tunnels, on_a)
}

/// `on_remove = "close"`: a reload removes A from the group; A's tunnels
/// get a close frame 1001, B's stay and echo.
fn on_remove_close_closes_the_tunnels_of_a_removed_server(d: Driver) {
    let a = Switch::start("A", Health::Ok);
    let b = Switch::start("B", Health::Ok);
    let extra = "on_remove = \"close\"\n";
    let rw = Ringway::start_with_runtime(
        &removal_config(&[a.addr, b.addr], extra),
        d,
        "drain_spread = \"500ms\"\nshutdown_timeout = \"10s\"\n",
    );
    let maddr = metrics_addr(&rw);
    let (mut tunnels, on_a) = tunnels_then_remove_a(&rw, &a, &b, extra);
    for (i, t) in tunnels.iter_mut().enumerate() {
        if t.on == "A" {
            assert_eq!(
                close_code(&mut t.ws, Duration::from_secs(15)),
                Ok(Some(1001)),
                "A's tunnel {i}"
            );
        }
    }
    assert_echoes(&mut tunnels, Some("B"), "still here");
    rw.wait_for_log(
        "closing tunnels of a removed server",
        Duration::from_secs(5),
    );
    wait_count(
        "A's tunnels closed",
        || on_a.saturating_sub(a.live_tunnels()),
        on_a,
        SETTLE,
    );
    let text = scrape_until(maddr, "the moved tunnels", |t| {
        moved(t, "chat", "removed") == on_a as f64
    });
    assert_eq!(moved(&text, "chat", "down"), 0.0, "{text}");
    assert_echoes(&mut tunnels, Some("B"), "and after");
    for t in tunnels.iter_mut().filter(|t| t.on == "B") {
        close_websocket(&mut t.ws);
    }
}

/// Without `on_remove` (`"keep"`): a reload removes A from the group,
/// and A's tunnels stay open and echo.
fn on_remove_keep_is_the_default_and_keeps_them(d: Driver) {
    let a = Switch::start("A", Health::Ok);
    let b = Switch::start("B", Health::Ok);
    let rw = Ringway::start_with_runtime(
        &removal_config(&[a.addr, b.addr], ""),
        d,
        "drain_spread = \"500ms\"\nshutdown_timeout = \"10s\"\n",
    );
    let maddr = metrics_addr(&rw);
    let (mut tunnels, on_a) = tunnels_then_remove_a(&rw, &a, &b, "");
    // Nothing comes on any tunnel for three times drain_spread.
    let heard = heard(&mut tunnels, Instant::now() + Duration::from_millis(1500));
    assert!(heard.is_empty(), "kept tunnels heard: {heard:?}");
    assert_echoes(&mut tunnels, None, "still here");
    assert_eq!(a.live_tunnels(), on_a);
    assert!(a.tunnel_closes().is_empty());
    assert!(
        !rw.logs().contains("closing tunnels of a removed server"),
        "{}",
        rw.logs()
    );
    let text = scrape(maddr);
    assert_eq!(moved(&text, "chat", "removed"), 0.0, "{text}");
    for t in tunnels.iter_mut() {
        close_websocket(&mut t.ws);
    }
}
