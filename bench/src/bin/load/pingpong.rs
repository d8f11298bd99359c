//! `pingpong`: request/response latency through the target. Open N
//! connections; once every child has opened its slice the parent says
//! `start`, and each connection sends one masked binary message of
//! `--size` bytes, waits for its echo (length checked), records the round
//! trip and sends the next, for `--warmup` (not counted) then
//! `--duration`; then it closes with the closing handshake. Reports round
//! trips in the measured window, their rate, and latency quantiles.
//!
//! This module also holds the timed-window run that `stream` and `lowrate`
//! share: the options (`--size`, `--warmup`, `--duration`), the child's
//! phases (open its slice, `open` line, wait for `start`, run every
//! connection through the window, `done` line), the parent's side of them,
//! and the merge of the children's lines ([`Totals`]); and the round trip
//! that `lowrate` paces. The window is aligned: children open first, and
//! all start their clocks on the same broadcast.

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::Context;
use lexopt::ValueExt;
use ringway_bench::cli::parse_duration;
use ringway_bench::client::{bounded, for_each_bounded, Failure, Phase, What, WsClient, MAX_FRAME};
use ringway_bench::hist::Hist;
use ringway_bench::report::{r3, Counts};
use ringway_bench::{rt, ws};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::fleet::{self, Fleet, Open};
use crate::Opts;

/// Slack added to every computed deadline.
const SLACK: Duration = Duration::from_secs(30);
/// How long children may take to exit after reporting.
const GRACE: Duration = Duration::from_secs(5);
/// Largest message: what fits in the client's largest frame.
pub const MAX_SIZE: usize = MAX_FRAME - 14;

/// "64", "512b", "64k", "1m", "1MiB", "16KB": bytes, with binary
/// multiples (k = 1024, m = 1024²); at most [`MAX_SIZE`].
pub fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: usize = num.parse().map_err(|_| "expected a number".to_string())?;
    let scale = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        _ => return Err(format!("unknown unit {unit:?} (k, m)")),
    };
    let v = n.checked_mul(scale).ok_or("too large")?;
    if v > MAX_SIZE {
        return Err(format!("at most {MAX_SIZE} bytes"));
    }
    Ok(v)
}

/// Options of the timed modes.
#[derive(Debug, Clone)]
pub struct TimedOpts {
    /// Payload bytes per message.
    pub size: usize,
    /// Run before measuring, not counted.
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
    /// Messages in flight per connection (1 for pingpong).
    pub window: usize,
}

impl TimedOpts {
    /// Take `--NAME` if it is one of the shared ones.
    pub fn flag(&mut self, name: &str, p: &mut lexopt::Parser) -> Result<bool, lexopt::Error> {
        match name {
            "size" => self.size = p.value()?.parse_with(parse_size)?,
            "duration" => self.duration = p.value()?.parse_with(parse_duration)?,
            "warmup" => self.warmup = p.value()?.parse_with(parse_duration)?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// `pingpong`'s options.
#[derive(Debug, Clone)]
pub struct PingpongOpts(pub TimedOpts);

impl Default for PingpongOpts {
    fn default() -> Self {
        Self(TimedOpts {
            size: 64,
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(10),
            window: 1,
        })
    }
}

/// The measured part of a run: from the end of the warmup for the duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// First instant counted.
    pub start: Instant,
    /// First instant no longer counted.
    pub end: Instant,
}

impl Window {
    /// The window of a run that began at `begin`.
    pub fn after(begin: Instant, warmup: Duration, duration: Duration) -> Self {
        let start = begin + warmup;
        Self {
            start,
            end: start + duration,
        }
    }

    /// Whether something completed at `t` counts.
    pub fn measures(&self, t: Instant) -> bool {
        t >= self.start && t < self.end
    }

    /// Whether the run is over at `t`: start nothing new.
    pub fn over(&self, t: Instant) -> bool {
        t >= self.end
    }
}

/// What a child collects over the run; its `done` line.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Tally {
    /// Messages echoed back within the window.
    pub messages: u64,
    /// Their payload bytes.
    pub bytes: u64,
    /// Connections closed cleanly after the run.
    pub closed: u64,
    /// Failures by kind (one per failed connection).
    pub failures: Counts,
    /// Latency of the messages counted.
    pub hist: Hist,
}

/// What a child's connections share during the run.
pub struct Env {
    /// The child's options.
    pub o: Opts,
    /// The mode's options.
    pub t: TimedOpts,
    /// The measured window.
    pub window: Window,
    /// The child's counts.
    pub tally: RefCell<Tally>,
}

impl Env {
    /// A message sent at `sent` came back whole at `done`.
    pub fn record(&self, sent: Instant, done: Instant, bytes: u64) {
        if self.window.measures(done) {
            let mut t = self.tally.borrow_mut();
            t.messages += 1;
            t.bytes += bytes;
            t.hist.record(done.saturating_duration_since(sent));
        }
    }
}

/// The children's lines merged.
#[derive(Debug, Default)]
pub struct Totals {
    /// Load processes.
    pub procs: usize,
    /// TCP-connected.
    pub opened: u64,
    /// Upgraded.
    pub upgraded: u64,
    /// Time for all children to open.
    pub open_secs: f64,
    /// Messages echoed within the window.
    pub messages: u64,
    /// Their payload bytes.
    pub bytes: u64,
    /// Closed cleanly after the run.
    pub closed: u64,
    /// Message latency.
    pub hist: Hist,
    /// Failures by kind, opening and running.
    pub failures: Counts,
}

impl Totals {
    /// Add a child's `open` line.
    pub fn add_open(&mut self, l: &Open) {
        self.opened += l.opened;
        self.upgraded += l.upgraded;
        self.failures.merge(&l.failures);
    }

    /// Add a child's `done` line.
    pub fn add_done(&mut self, l: &Tally) {
        self.messages += l.messages;
        self.bytes += l.bytes;
        self.closed += l.closed;
        self.failures.merge(&l.failures);
        self.hist.merge(&l.hist);
    }

    /// `v` per second of `d`.
    pub fn rate(v: u64, d: Duration) -> f64 {
        let secs = d.as_secs_f64();
        if secs > 0.0 {
            v as f64 / secs
        } else {
            0.0
        }
    }

    /// 0 when every requested connection opened and nothing failed, else 1.
    pub fn exit_code(&self, requested: usize) -> i32 {
        i32::from(self.failures.total() != 0 || self.upgraded != requested as u64)
    }

    /// The `--json` result of `mode`, with its own members `own` (an
    /// object) after the common ones and before the latency.
    pub fn report(&self, mode: &str, o: &Opts, t: &TimedOpts, own: Value) -> Value {
        let h = &self.hist;
        let mut r = json!({
            "mode": mode,
            "target": o.target,
            "path": o.path,
            "requested": o.n,
            "procs": self.procs,
            "sources": o.sources.len(),
            "size": t.size,
            "opened": self.opened,
            "upgraded": self.upgraded,
            "open_secs": r3(self.open_secs),
            "warmup_secs": r3(t.warmup.as_secs_f64()),
            "duration_secs": r3(t.duration.as_secs_f64()),
        });
        let tail = json!({
            "latency_p50_ms": h.ms(0.5),
            "latency_p99_ms": h.ms(0.99),
            "latency_p999_ms": h.ms(0.999),
            "latency_max_ms": h.max_ms(),
            "latency_mean_ms": r3(h.mean_ms()),
            "closed_clean": self.closed,
            "failed": self.failures.total(),
            "failures": self.failures,
        });
        for part in [own, tail] {
            if let (Value::Object(r), Value::Object(part)) = (&mut r, part) {
                r.extend(part);
            }
        }
        r
    }

    /// The latency quantiles for humans.
    pub fn latency_human(&self) -> String {
        let h = &self.hist;
        format!(
            "p50 {:.3}ms p99 {:.3}ms p999 {:.3}ms max {:.3}ms mean {:.3}ms",
            h.ms(0.5),
            h.ms(0.99),
            h.ms(0.999),
            h.max_ms(),
            h.mean_ms(),
        )
    }

    /// The text lines every timed mode prints last.
    pub fn tail_human(&self) {
        println!("  latency  {}", self.latency_human());
        println!("  closed   {} cleanly", self.closed);
        println!("  failures {}", self.failures.human());
    }

    /// The text lines every timed mode prints first.
    pub fn head_human(&self, mode: &str, what: &str, o: &Opts) {
        let sources = o.sources_human();
        println!(
            "{mode}: {} connections to {}{} from {sources} in {} processes, {what}",
            o.n, o.target, o.path, self.procs
        );
        println!(
            "  open     {}/{} upgraded ({} TCP-connected) in {:.2}s",
            self.upgraded, o.n, self.opened, self.open_secs
        );
    }
}

/// The parent's side of a timed run: spawn, wait for every `open`,
/// Tell whoever watches the load (the harness measures proxy CPU over the
/// same window) when the measured part starts and how long it lasts.
pub fn window_line(warmup: Duration, duration: Duration) {
    eprintln!(
        "window warmup={:.3} duration={:.3}",
        warmup.as_secs_f64(),
        duration.as_secs_f64()
    );
}

/// broadcast `start`, wait for every `done`, merge.
pub fn parent_run(o: &Opts, mode: &str, argv: &[String], t: &TimedOpts) -> anyhow::Result<Totals> {
    let (slices, per) = fleet::plan(o.n, o.procs, 0, "connections")?;
    let waves = per.div_ceil(o.concurrency as u64).max(1) as u32;
    let started = Instant::now();
    let mut fleet = Fleet::spawn(mode, argv, &slices)?;
    let to = &o.timeouts;
    let opens: Vec<Open> = fleet.collect(
        "open",
        Instant::now() + (to.connect + to.handshake) * waves + SLACK,
    )?;
    let mut tot = Totals {
        procs: slices.len(),
        open_secs: started.elapsed().as_secs_f64(),
        ..Totals::default()
    };
    for l in &opens {
        tot.add_open(l);
    }
    fleet.broadcast("start")?;
    window_line(t.warmup, t.duration);
    // Every wait after the window is one message's or the close's, each
    // under the io timeout.
    let after = to.io * (t.window as u32 + 2);
    let dones: Vec<Tally> = fleet.collect(
        "done",
        Instant::now() + t.warmup + t.duration + after + SLACK,
    )?;
    fleet.finish(GRACE);
    for l in &dones {
        tot.add_done(l);
    }
    Ok(tot)
}

/// The child's side of a timed run: open the slice, report `open`, wait
/// for `start`, run `conn` on every upgraded connection (it records its
/// messages in the [`Env`] and closes; an error counts as the connection's
/// failure), report `done`.
pub fn child_run<F, Fut>(o: &Opts, t: &TimedOpts, conn: F) -> anyhow::Result<()>
where
    F: Fn(WsClient, Rc<Env>) -> Fut + 'static,
    Fut: Future<Output = Result<(), Failure>> + 'static,
{
    fleet::child_init();
    rt::raise_nofile();
    let slice = o.child.context("not a child")?;
    let (o, t) = (Rc::new(o.clone()), t.clone());
    rt::block_on(o.driver, async move {
        let (conns, open) = open_slice(o.clone(), slice.offset).await;
        fleet::send("open", &open);

        if fleet::command().as_deref() != Some("start") {
            return;
        }
        let env = Rc::new(Env {
            o: (*o).clone(),
            window: Window::after(Instant::now(), t.warmup, t.duration),
            t,
            tally: RefCell::new(Tally::default()),
        });
        let conn = Rc::new(conn);
        let open: Vec<WsClient> = conns.borrow_mut().drain(..).flatten().collect();
        let tasks: Vec<_> = open
            .into_iter()
            .map(|c| {
                let (env, conn) = (env.clone(), conn.clone());
                monoio::spawn(async move {
                    let r = conn(c, env.clone()).await;
                    let mut t = env.tally.borrow_mut();
                    match r {
                        Ok(()) => t.closed += 1,
                        Err(f) => t.failures.add(&f.key()),
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await;
        }
        fleet::send("done", &env.tally.take());
    })?;
    Ok(())
}

/// Run the children, report. Returns the exit status.
pub fn parent(o: &Opts, p: &PingpongOpts, argv: &[String]) -> anyhow::Result<i32> {
    let t = &p.0;
    let tot = parent_run(o, "pingpong", argv, t)?;
    let rate = Totals::rate(tot.messages, t.duration);
    if o.json {
        let own = json!({
            "round_trips": tot.messages,
            "round_trips_per_sec": r3(rate),
        });
        println!(
            "{}",
            serde_json::to_string(&tot.report("pingpong", o, t, own))?
        );
    } else {
        tot.head_human("pingpong", &format!("{}-byte messages", t.size), o);
        println!(
            "  run      {:.1}s warmup + {:.1}s measured: {} round trips, {rate:.0}/s",
            t.warmup.as_secs_f64(),
            t.duration.as_secs_f64(),
            tot.messages,
        );
        tot.tail_human();
    }
    Ok(tot.exit_code(o.n))
}

/// One load process.
pub fn child(o: &Opts, p: &PingpongOpts) -> anyhow::Result<()> {
    let payload: Rc<[u8]> = (0..p.0.size).map(|i| i as u8).collect();
    child_run(o, &p.0, move |c, env| conn(c, env, payload.clone()))
}

/// One connection's run: round trips until the window is over, then close.
async fn conn(mut c: WsClient, env: Rc<Env>, payload: Rc<[u8]>) -> Result<(), Failure> {
    let io = env.o.timeouts.io;
    loop {
        let sent = Instant::now();
        bounded(Phase::Echo, io, round_trip(&mut c, &payload)).await?;
        let done = Instant::now();
        env.record(sent, done, payload.len() as u64);
        if env.window.over(done) {
            break;
        }
    }
    bounded(Phase::Close, io, c.close()).await
}

/// Send `payload` as one binary message and wait for its echo (pings
/// answered, pongs skipped).
pub async fn round_trip(c: &mut WsClient, payload: &[u8]) -> Result<(), What> {
    c.send(ws::FIN | ws::OP_BINARY, payload).await?;
    loop {
        let f = c.recv().await?;
        match f.first & 0x0f {
            ws::OP_PING => c.send(ws::FIN | ws::OP_PONG, &f.payload).await?,
            ws::OP_PONG => {}
            ws::OP_CLOSE => return Err(What::Closed),
            _ if f.first == ws::FIN | ws::OP_BINARY && f.payload.len() == payload.len() => {
                return Ok(())
            }
            _ => return Err(What::Mismatch),
        }
    }
}

/// A child's connections, `None` where one failed to open.
pub type Conns = Rc<RefCell<Vec<Option<WsClient>>>>;

/// Open this child's `o.n` WebSockets (global indices from `offset`, for
/// source addresses), at most `o.concurrency` at a time, timing each
/// connect + upgrade: the connections and the child's `open` line.
pub async fn open_slice(o: Rc<Opts>, offset: usize) -> (Conns, Open) {
    let n = o.n;
    let conns: Conns = Rc::new(RefCell::new((0..n).map(|_| None).collect()));
    let open = Rc::new(RefCell::new(Open::default()));
    {
        let (o, conns, open) = (o.clone(), conns.clone(), open.clone());
        for_each_bounded(n, o.concurrency, move |i| {
            let (o, conns, open) = (o.clone(), conns.clone(), open.clone());
            async move {
                let src = o.source(offset + i);
                let t0 = Instant::now();
                let r = WsClient::open(src, o.target, o.tls(), &o.host, &o.path, &o.timeouts, o.h2)
                    .await;
                let mut open = open.borrow_mut();
                match r {
                    Ok(c) => {
                        open.upgraded += 1;
                        open.hist.record(t0.elapsed());
                        conns.borrow_mut()[i] = Some(c);
                    }
                    Err(f) => open.failures.add(&f.key()),
                }
            }
        })
        .await;
    }
    let mut open = open.take();
    // Failures before the TCP connection existed.
    let connect_failed: u64 = (open.failures.0.iter())
        .filter(|(k, _)| k.starts_with("connect_"))
        .map(|(_, v)| v)
        .sum();
    open.opened = n as u64 - connect_failed;
    (conns, open)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64"), Ok(64));
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("512b"), Ok(512));
        assert_eq!(parse_size("64k"), Ok(64 << 10));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size("1m"), Ok(1 << 20));
        assert_eq!(parse_size("1MB"), Ok(1 << 20));
        assert_eq!(parse_size(&MAX_SIZE.to_string()), Ok(MAX_SIZE));
        assert!(parse_size("16m").is_err(), "above the client's frame limit");
        assert!(parse_size("1g").is_err());
        assert!(parse_size("k").is_err());
        assert!(parse_size("1.5m").is_err());
        assert!(parse_size("99999999999999999999m").is_err());
    }

    #[test]
    fn window_counts_only_the_measured_part() {
        let begin = Instant::now();
        let w = Window::after(begin, Duration::from_secs(1), Duration::from_secs(5));
        assert!(!w.measures(begin));
        assert!(!w.over(begin));
        assert!(w.measures(begin + Duration::from_secs(1)));
        assert!(w.measures(begin + Duration::from_millis(5999)));
        assert!(!w.measures(begin + Duration::from_secs(6)));
        assert!(w.over(begin + Duration::from_secs(6)));

        let env = Env {
            o: crate::parse(
                "pingpong",
                ["--target", "127.0.0.1:1"].map(String::from).to_vec(),
            )
            .unwrap()
            .0,
            t: PingpongOpts::default().0,
            window: w,
            tally: RefCell::new(Tally::default()),
        };
        env.record(begin, begin + Duration::from_millis(500), 64); // warmup
        env.record(begin, begin + Duration::from_millis(1002), 64);
        env.record(begin, begin + Duration::from_secs(7), 64); // after
        let t = env.tally.take();
        assert_eq!((t.messages, t.bytes, t.hist.0.len()), (1, 64, 1));
        assert!((t.hist.max_ms() / 1002.0 - 1.0).abs() < 1e-3);
    }

    #[test]
    fn children_merge() {
        let mut f = Counts::default();
        f.add("connect_refused");
        let opens = [
            r#"{"opened":50,"upgraded":50,"publisher":0,"failures":{},"hist":[]}"#,
            r#"{"opened":49,"upgraded":49,"publisher":0,"failures":{"connect_refused":1},"hist":[]}"#,
        ]
        .map(|l| serde_json::from_str::<Open>(l).unwrap());
        let mut dones = [Tally::default(), Tally::default()];
        (1..=100).for_each(|v| dones[0].hist.record_us(v));
        (101..=200).for_each(|v| dones[1].hist.record_us(v));
        for (d, closed) in dones.iter_mut().zip([50, 48]) {
            (d.messages, d.bytes, d.closed) = (100, 6400, closed);
        }
        dones[1].failures.add("echo_timeout");
        let mut tot = Totals::default();
        for l in &opens {
            tot.add_open(l);
        }
        for l in &dones {
            let line = serde_json::to_string(l).unwrap();
            tot.add_done(&serde_json::from_str(&line).unwrap());
        }
        assert_eq!((tot.opened, tot.upgraded), (99, 99));
        assert_eq!((tot.messages, tot.bytes, tot.closed), (200, 12800, 98));
        assert_eq!((tot.hist.0.len(), tot.hist.max_ms()), (200, 0.2));
        assert_eq!(tot.failures.total(), 2);
        assert_eq!(tot.failures.0["connect_refused"], 1);
        assert_eq!(tot.exit_code(100), 1);
        assert_eq!(Totals::rate(200, Duration::from_secs(4)), 50.0);
        assert_eq!(Totals::rate(200, Duration::ZERO), 0.0);

        let mut clean = Totals::default();
        clean.add_open(&opens[0]);
        assert_eq!(clean.exit_code(50), 0);
        assert_eq!(clean.exit_code(51), 1);
    }
}
