//! Binary upgrade end to end (`ringway upgrade [-c FILE] [--binary PATH]`,
//! SIGUSR2): the running process starts the new binary, hands it the
//! listening sockets and then every plain WebSocket tunnel with its
//! sockets, and exits once it holds nothing; a new binary that fails
//! (a config error, an exit) aborts the upgrade and the old process keeps
//! everything.
//!
//! The tunnels carry numbered messages both ways all the time
//! ([`ringway_tests::numbered`]): the clients and the backend check that
//! every message arrives exactly once and in order, across the switch.
//! The backend also echoes, and a thread keeps opening fresh connections
//! through the switch ([`Churn`]); none may fail.
//!
//! The 2,000-tunnel test runs alone (`exclusive`): it prints the handoff's
//! duration and the processes' memory for the README, which other tests
//! on the same 2 cores would distort; the others share the machine.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread;
use std::time::{Duration, Instant};

use ringway_tests::logs::field;
use ringway_tests::numbered::{hash, Event, Load, NumberedBackend};
use ringway_tests::upgrade::{
    copy_of_binary, exiting_binary, fresh_echo, Churn, Report, RssSampler,
};
use ringway_tests::*;
use tungstenite::Message;

both_drivers!(
    upgrade_hands_over_2000_busy_tunnels_without_losing_a_message,
    a_broken_config_aborts_the_upgrade_and_the_old_process_keeps_everything,
    a_new_binary_that_exits_aborts_the_upgrade,
    ten_upgrades_in_a_row_lose_nothing,
    a_frame_cut_by_the_upgrade_completes_and_the_drain_waits_for_the_next,
);

/// Upgrading onto the other driver (the config's `driver` changed
/// before the upgrade).
mod across_drivers {
    use ringway_tests::Driver;
    #[test]
    fn io_uring_to_epoll() {
        super::upgrade_onto_another_driver(Driver::IoUring, Driver::Epoll)
    }
    #[test]
    fn epoll_to_io_uring() {
        super::upgrade_onto_another_driver(Driver::Epoll, Driver::IoUring)
    }
}

static LOCK: RwLock<()> = RwLock::new(());

/// The 2,000-tunnel test runs with no other test of this file.
fn exclusive() -> RwLockWriteGuard<'static, ()> {
    LOCK.write().unwrap_or_else(|e| e.into_inner())
}

/// The other tests run beside each other, not beside the 2,000 tunnels.
fn shared() -> RwLockReadGuard<'static, ()> {
    LOCK.read().unwrap_or_else(|e| e.into_inner())
}

/// How long progress may take to show (every tunnel sends every
/// 100–300 ms; the bound is for a loaded CI machine).
const SETTLE: Duration = Duration::from_secs(20);

/// The server `app` proxying everything to `backend`.
fn config(backend: SocketAddr) -> String {
    format!(
        r#"
[servers.app]
listen = "127.0.0.1:0"
[servers.app.locations."/"]
proxy_pass = "http://{backend}"
proxy_read_timeout = "60s"
"#
    )
}

/// The upgrade's report, checked: it succeeded, replaced the process
/// that served, and holds nothing back.
fn succeeded(out: Result<String, String>, old: u32) -> Report {
    let out = out.unwrap_or_else(|e| panic!("the upgrade failed: {e}"));
    eprintln!("ringway upgrade: {}", out.trim_end());
    let r = Report::parse(&out).expect("the upgrade's report");
    assert_eq!(r.old_pid, old, "{out}");
    assert_ne!(r.new_pid, old, "{out}");
    assert_eq!(r.held, 0, "the old process still holds tunnels: {out}");
    r
}

/// The ringway processes running the config: exactly `pid` (bounded: a
/// process on its way out may take a moment).
fn only_process(rw: &Ringway, pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pids = servers_with_config(&rw.config_path);
        if pids == [pid] {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "ringway processes running the config: {pids:?}, expected only {pid}"
        );
        // Pacing for a poll of the process table with a deadline.
        thread::sleep(Duration::from_millis(20));
    }
}

/// Wait (bounded) for the new process's last handoff line after log
/// line `mark` (`the old process handed everything over handed=N`, once
/// the old process stopped) and check that its `upgrade: adopted
/// tunnels` lines add up to N, which is at least the `reported` count
/// (the report comes once every old worker had none left; a connection
/// the old process accepted as the listeners moved may become a tunnel
/// and be handed over after it). Returns N.
fn wait_adopted(rw: &Ringway, mark: usize, reported: usize) -> usize {
    let done = rw.wait_for_log_since(
        mark,
        "the old process handed everything over",
        Duration::from_secs(10),
    );
    let handed: usize = field(&done, "handed")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("handed= in {done}"));
    // The workers log what they adopted as they get to it: maybe after.
    let adopted = || -> usize {
        rw.logs()
            .lines()
            .skip(mark)
            .filter(|l| l.contains("upgrade: adopted tunnels"))
            .map(|l| {
                field(l, "count")
                    .and_then(|n| n.parse::<usize>().ok())
                    .unwrap_or_else(|| panic!("count= in {l}"))
            })
            .sum()
    };
    assert!(
        handed >= reported,
        "the old process handed over {handed}, reported {reported}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = adopted();
        assert!(got <= handed, "adopted {got}, handed over {handed}: {done}");
        if got == handed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the workers adopted {got} of the {handed} tunnels handed over: {done}"
        );
        // Pacing for a poll of the log with a deadline.
        thread::sleep(Duration::from_millis(20));
    }
    handed
}

const BUSY_TUNNELS: usize = 2000;

/// `t` from `base` in ms, negative when before.
fn ms_from(base: Instant, t: Instant) -> f64 {
    if t >= base {
        t.duration_since(base).as_secs_f64() * 1e3
    } else {
        -(base.duration_since(t).as_secs_f64() * 1e3)
    }
}

/// 2,000 tunnels (two workers) exchanging numbered messages both ways, and
/// fresh connections opened all along, while `ringway upgrade --binary
/// COPY` replaces the process: every tunnel is handed over, no message
/// is lost, duplicated or reordered, no fresh connection fails, the old
/// process is gone within 2 s of the handoff; prints the handoff's
/// duration and both processes' memory.
fn upgrade_hands_over_2000_busy_tunnels_without_losing_a_message(d: Driver) {
    let _alone = exclusive();
    let backend = NumberedBackend::start(BUSY_TUNNELS, 4);
    let mut rw = Ringway::start_with_runtime(
        &config(backend.addr),
        d,
        "workers = 2\nshutdown_timeout = \"10s\"\n",
    );
    let proxy = rw.addr("app");
    let load = Load::start(proxy, &backend, 4, Duration::from_secs(60));
    load.wait_progress(&load.mark(), SETTLE);
    let copy = copy_of_binary();
    let churn = Churn::start(proxy);
    fresh_echo(proxy, "/fresh/before").expect("a fresh connection before the upgrade");

    let old = rw.pid();
    let mark = rw.log_mark();
    let sampler = RssSampler::start(&rw);
    let began = Instant::now();
    let out = rw.upgrade(Some(&copy));
    let returned = Instant::now();
    let rss = sampler.stop();
    let report = succeeded(out, old);
    let done = rw.wait_for_log_since(mark, "upgrade: handoff done", Duration::from_secs(10));
    let (ready, ready_at) = rw
        .log_line_at(mark, "upgrade: new process ready")
        .expect("the old process logs `upgrade: new process ready`");
    let (_, done_at) = rw.log_line_at(mark, "upgrade: handoff done").unwrap();
    let gone_at = rw.wait_gone(old, Duration::from_secs(10));
    let rss_new_after = rss_kib(report.new_pid).unwrap_or(0);

    // The report, the log and the new process agree.
    assert!(
        (BUSY_TUNNELS..=BUSY_TUNNELS + 1).contains(&report.handed),
        "handed over {} tunnels (2,000 and at most one fresh connection's)",
        report.handed
    );
    assert_eq!(
        field(&ready, "pid").as_deref(),
        Some(report.new_pid.to_string().as_str()),
        "{ready}"
    );
    assert_eq!(
        field(&done, "handed").as_deref(),
        Some(report.handed.to_string().as_str()),
        "{done}"
    );
    assert_eq!(field(&done, "held").as_deref(), Some("0"), "{done}");
    rw.wait_for_log_since(mark, "upgrade: old process exits", Duration::from_secs(10));
    wait_adopted(&rw, mark, report.handed);

    // The numbers for the README.
    let exit_after = gone_at.map(|t| t.saturating_duration_since(done_at));
    eprintln!(
        "upgrade ({d:?}, {BUSY_TUNNELS} busy tunnels, 2 workers): command start -> handoff done {:?}; \
         new process ready -> handoff done {:?} (the old process's secs={}); command returned after {:?}; \
         old process gone {exit_after:?} after handoff done; \
         VmRSS old {} KiB before, {} KiB at most during; new (pid {}) {} KiB at most during, {} KiB after \
         ({} samples)",
        done_at.saturating_duration_since(began),
        done_at.saturating_duration_since(ready_at),
        field(&done, "secs").unwrap_or_default(),
        returned.duration_since(began),
        rss.old_before,
        rss.old_max,
        rss.new_pid,
        rss.new_max,
        rss_new_after,
        rss.samples,
    );
    let exit_after = exit_after.expect("the old process still runs 10 s after the upgrade");
    assert!(
        exit_after <= Duration::from_secs(2),
        "the old process exited {exit_after:?} after `handoff done`"
    );

    // Keep exchanging for a second through the new process: every tunnel
    // carries messages both ways.
    let after = load.mark();
    let since = Instant::now();
    load.wait_progress(&after, SETTLE);
    let left = Duration::from_secs(1).saturating_sub(since.elapsed());
    // The second of traffic after the upgrade (not a synchronisation).
    thread::sleep(left);
    load.tally().assert_no_problems("after the upgrade");

    let attempts = churn.stop();
    let failed: Vec<String> = attempts
        .iter()
        .filter_map(|a| {
            a.result.as_ref().err().map(|e| {
                format!(
                    "started {} ms after the command began, {} ms from `new process ready`, {} ms from `handoff done`: {e}",
                    ms_from(began, a.started),
                    ms_from(ready_at, a.started),
                    ms_from(done_at, a.started),
                )
            })
        })
        .collect();
    let during = attempts
        .iter()
        .filter(|a| a.ended >= began && a.started <= done_at)
        .count();
    eprintln!(
        "fresh connections: {} in all, {during} during the upgrade, {} failed",
        attempts.len(),
        failed.len()
    );
    // Where a failed one waits, if anywhere: the listen queues (Recv-Q).
    let queues = if failed.is_empty() {
        String::new()
    } else {
        std::process::Command::new("ss")
            .args(["-ltnH", &format!("sport = :{}", proxy.port())])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    assert!(
        failed.is_empty(),
        "fresh connections failed:\n{}\nlisten queues now:\n{queues}",
        failed.join("\n")
    );
    assert!(
        during > 0,
        "no fresh connection was tried during the upgrade"
    );
    fresh_echo(proxy, "/fresh/after").expect("a fresh connection after the upgrade");

    let messages = load.finish(SETTLE);
    eprintln!("{messages} numbered messages, each checked on arrival");
    only_process(&rw, report.new_pid);
}

/// 50 busy tunnels through ringway on driver `d` (2 load threads).
fn fifty_busy(d: Driver) -> (NumberedBackend, Ringway, Load) {
    let backend = NumberedBackend::start(50, 2);
    let rw = Ringway::start(&config(backend.addr), d);
    let load = Load::start(rw.addr("app"), &backend, 2, SETTLE);
    (backend, rw, load)
}

/// An upgrade (to `binary`) that must fail: `ringway upgrade` says so on
/// stderr, the old process logs it with a reason. Returns the reason.
fn failed(rw: &mut Ringway, binary: Option<&std::path::Path>, what: &str) -> String {
    let mark = rw.log_mark();
    let err = rw
        .upgrade(binary)
        .expect_err("an upgrade that had to fail succeeded");
    eprintln!("ringway upgrade ({what}): {err}");
    assert!(err.contains("ringway: upgrade failed:"), "{err}");
    let line = rw.wait_for_log_since(
        mark,
        "upgrade failed, the running process keeps everything",
        Duration::from_secs(10),
    );
    assert!(field(&line, "why").is_some_and(|w| !w.is_empty()), "{line}");
    err.split("upgrade failed:")
        .nth(1)
        .unwrap_or("")
        .to_string()
}

/// A config broken before the upgrade: the new process cannot start, the
/// upgrade fails (exit 1, the reason on stderr and in the log), and the
/// old process keeps its tunnels and goes on accepting; with the config
/// mended the next upgrade succeeds.
fn a_broken_config_aborts_the_upgrade_and_the_old_process_keeps_everything(d: Driver) {
    let _shared = shared();
    let (_backend, mut rw, load) = fifty_busy(d);
    let proxy = rw.addr("app");
    let old = rw.pid();

    let good = rw.config_text();
    rw.write_config(&format!("{good}\n[servers.app\nlisten = \n"));
    let why = failed(&mut rw, None, "broken config").to_ascii_lowercase();
    assert!(
        ["config", "toml", "exit", "status"]
            .iter()
            .any(|w| why.contains(w)),
        "the failure does not say why: {why}"
    );
    assert_eq!(rw.pid(), old);
    only_process(&rw, old);

    // The old process still carries every tunnel and accepts.
    rw.write_config(&good);
    load.wait_progress(&load.mark(), SETTLE);
    fresh_echo(proxy, "/fresh/after-abort").expect("a fresh connection after the abort");
    load.tally().assert_no_problems("after the failed upgrade");

    // Mended, the upgrade goes through.
    let report = succeeded(rw.upgrade(None), old);
    assert_eq!(report.handed, 50);
    assert!(rw.wait_gone(old, Duration::from_secs(10)).is_some());
    load.wait_progress(&load.mark(), SETTLE);
    fresh_echo(proxy, "/fresh/after-upgrade").expect("a fresh connection after the upgrade");
    load.finish(SETTLE);
    only_process(&rw, report.new_pid);
}

/// `--binary` a script that exits 3 at once: the upgrade fails naming the
/// exit status; nothing is lost.
fn a_new_binary_that_exits_aborts_the_upgrade(d: Driver) {
    let _shared = shared();
    let (_backend, mut rw, load) = fifty_busy(d);
    let proxy = rw.addr("app");
    let old = rw.pid();

    let reason = failed(&mut rw, Some(&exiting_binary(3)), "exit 3");
    assert!(
        reason.contains('3') && (reason.contains("exit") || reason.contains("status")),
        "the failure does not name the exit status: {reason}"
    );
    assert_eq!(rw.pid(), old);
    only_process(&rw, old);

    load.wait_progress(&load.mark(), SETTLE);
    fresh_echo(proxy, "/fresh/after-abort").expect("a fresh connection after the abort");
    load.finish(SETTLE);
}

/// Ten upgrades one after the other under 100 busy tunnels: each
/// succeeds and hands over every tunnel, traffic flows between them, no
/// message is lost, duplicated or reordered, and one process is left.
fn ten_upgrades_in_a_row_lose_nothing(d: Driver) {
    let _shared = shared();
    let backend = NumberedBackend::start(100, 2);
    let mut rw = Ringway::start(&config(backend.addr), d);
    let proxy = rw.addr("app");
    let load = Load::start(proxy, &backend, 2, SETTLE);
    for round in 1..=10 {
        let old = rw.pid();
        let mark = load.mark();
        let began = Instant::now();
        let report = succeeded(rw.upgrade(None), old);
        assert_eq!(report.handed, 100, "round {round}");
        assert!(
            rw.wait_gone(old, Duration::from_secs(10)).is_some(),
            "round {round}: the old process {old} still runs"
        );
        load.wait_progress(&mark, SETTLE);
        load.tally().assert_no_problems(&format!("round {round}"));
        eprintln!("upgrade {round} done in {:?}", began.elapsed());
    }
    fresh_echo(proxy, "/fresh/after-ten").expect("a fresh connection after ten upgrades");
    load.finish(SETTLE);
    only_process(&rw, rw.pid());
}

/// Start on `from`, change the config's driver to `to`, upgrade: the
/// tunnels cross to a process on the other driver and go on.
fn upgrade_onto_another_driver(from: Driver, to: Driver) {
    if !io_uring_available() {
        eprintln!("io_uring is not available here; skipped");
        return;
    }
    let _shared = shared();
    let backend = NumberedBackend::start(20, 1);
    let mut rw = Ringway::start(&config(backend.addr), from);
    let proxy = rw.addr("app");
    let load = Load::start(proxy, &backend, 1, SETTLE);
    let old = rw.pid();
    rw.set_driver(to);
    let mark = rw.log_mark();
    let report = succeeded(rw.upgrade(None), old);
    assert_eq!(report.handed, 20);
    let started = rw.wait_for_log_since(mark, "worker started", Duration::from_secs(10));
    assert!(
        started.contains(&format!("driver={}", to.name())),
        "the new process runs the wrong driver: {started}"
    );
    let relay = rw.wait_for_log_since(mark, "tunnel relay", Duration::from_secs(10));
    assert!(
        relay.contains(&format!("relay=\"{}\"", to.relay())),
        "the new process runs the wrong relay: {relay}"
    );
    assert!(rw.wait_gone(old, Duration::from_secs(10)).is_some());
    load.wait_progress(&load.mark(), SETTLE);
    fresh_echo(proxy, "/fresh/after").expect("a fresh connection after the upgrade");
    load.finish(SETTLE);
}

/// The big frames' length: 4 MiB.
const BIG: usize = 4 << 20;

/// A client's (masked) binary frame of [`BIG`] bytes, and its payload's
/// hash; `n` varies the bytes.
fn big_frame(n: u8) -> (Vec<u8>, u64) {
    let key = [0x5a, 0x17, 0xc3, n];
    let payload: Vec<u8> = (0..BIG).map(|i| (i % 251) as u8 ^ n).collect();
    let mut frame = vec![0x82, 0x80 | 127];
    frame.extend_from_slice(&(BIG as u64).to_be_bytes());
    frame.extend_from_slice(&key);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    (frame, hash(&payload))
}

/// A tunnel in the middle of a 4 MiB frame when the upgrade runs: the rest
/// of the frame, written after it, reaches the backend through the new
/// process and the whole frame arrives intact. Then a second frame is cut
/// by TERM to the new process: the drain's close 1001 comes only after
/// that frame completes — the new process knows where the frames end.
fn a_frame_cut_by_the_upgrade_completes_and_the_drain_waits_for_the_next(d: Driver) {
    let _shared = shared();
    let backend = NumberedBackend::start(0, 1);
    let mut rw = Ringway::start_with_runtime(
        &config(backend.addr),
        d,
        "drain_spread = \"200ms\"\nshutdown_timeout = \"5s\"\n",
    );
    let proxy = rw.addr("app");
    let path = "/echo/big";
    let s = TcpStream::connect(proxy).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut ws = ws_handshake(s, &format!("ws://app{path}"));
    ws.send(Message::text("hello")).unwrap();
    assert_eq!(ws.read().unwrap(), Message::text("hello"));

    // Half of the first frame, the upgrade, the rest.
    let (f1, h1) = big_frame(1);
    let half = f1.len() / 2;
    ws.get_mut().write_all(&f1[..half]).unwrap();
    let old = rw.pid();
    let report = succeeded(rw.upgrade(None), old);
    assert_eq!(report.handed, 1, "the tunnel mid-frame was not handed over");
    ws.get_mut()
        .write_all(&f1[half..])
        .expect("writing the rest of the frame after the upgrade");
    match ws.read() {
        Ok(Message::Binary(b)) => {
            assert_eq!(b.len(), BIG);
            assert!(hash(&b) == h1, "the echo of the first frame differs");
        }
        other => panic!("instead of the first frame's echo: {other:?}"),
    }
    let events = backend.wait_events(path, Duration::from_secs(10), |e| e.len() >= 2);
    assert_eq!(
        events,
        [Event::Text("hello".into()), Event::Binary(BIG, h1)],
        "the backend did not get the first frame whole"
    );
    assert!(rw.wait_gone(old, Duration::from_secs(10)).is_some());

    // Half of the second frame, TERM to the new process, the rest.
    let (f2, h2) = big_frame(2);
    ws.get_mut().write_all(&f2[..half]).unwrap();
    let mark = rw.log_mark();
    rw.signal(libc::SIGTERM);
    rw.wait_for_log_since(mark, "draining tunnels", Duration::from_secs(5));
    ws.get_mut()
        .write_all(&f2[half..])
        .expect("writing the rest of the frame after TERM");
    let code = loop {
        match ws.read() {
            Ok(Message::Close(f)) => break f.map_or(1005, |f| u16::from(f.code)),
            Ok(_) => continue,
            Err(e) => panic!("instead of a close frame: {}", tunnel::ended(&e)),
        }
    };
    assert_eq!(code, 1001, "the drain's close");
    let events = backend.wait_events(path, Duration::from_secs(10), |e| {
        e.iter()
            .any(|e| matches!(e, Event::Close(_) | Event::End(_)))
    });
    assert_eq!(
        events,
        [
            Event::Text("hello".into()),
            Event::Binary(BIG, h1),
            Event::Binary(BIG, h2),
            Event::Close(1001)
        ],
        "the second frame did not arrive whole before the close"
    );
    assert!(
        rw.wait_exit(Duration::from_secs(15)).is_some(),
        "the new process did not exit after TERM"
    );
}
