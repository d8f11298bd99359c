//! `pingpong`: request/response latency through the target. Open N
//! connections; once every child has opened its slice the parent says
//! `start`, and each connection sends one masked binary message of
//! `--size` bytes, waits for its echo (length checked), records the round
//! trip and sends the next, for `--warmup` (not counted) then
//! `--duration`; then it closes with the closing handshake. Reports round
//! trips in the measured window, their rate, and latency quantiles.
//!
//! This module also holds the timed-window run that `stream` shares: the
//! options (`--size`, `--warmup`, `--duration`), the child's phases (open
//! its slice, `open` line, wait for `start`, run every connection through
//! the window, `done` line), the parent's side of them, and the merge of
//! the children's lines ([`Totals`]). The window is aligned: children open
//! first, and all start their clocks on the same broadcast.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::Context;
use ringway_bench::cli::{parse_duration, Args, CliError};
use ringway_bench::client::{bounded, for_each_bounded, Failure, Phase, What, WsClient, MAX_FRAME};
use ringway_bench::hist::Hist;
use ringway_bench::report::{Counts, JsonObject, Line};
use ringway_bench::{rt, ws};

use crate::fleet::{self, Fleet};
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
    /// Take `flag` if it is one of the shared ones.
    pub fn flag(&mut self, flag: &str, args: &mut Args) -> Result<bool, CliError> {
        match flag {
            "--size" => self.size = args.with(flag, parse_size)?,
            "--duration" => self.duration = args.with(flag, parse_duration)?,
            "--warmup" => self.warmup = args.with(flag, parse_duration)?,
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

impl PingpongOpts {
    /// Take `flag` if it is ours.
    pub fn flag(&mut self, flag: &str, args: &mut Args) -> Result<bool, CliError> {
        self.0.flag(flag, args)
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

/// What a child collects over the run.
#[derive(Debug, Default)]
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
    pub fn add_open(&mut self, l: &Line) {
        self.opened += l.num("opened");
        self.upgraded += l.num("upgraded");
        self.failures.merge(&l.failure_counts());
    }

    /// Add a child's `done` line.
    pub fn add_done(&mut self, l: &Line) {
        self.messages += l.num("messages");
        self.bytes += l.num("bytes");
        self.closed += l.num("closed");
        self.failures.merge(&l.failure_counts());
        if let Some(h) = l.hist() {
            self.hist.merge(&h);
        }
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

    /// The latency members, in milliseconds.
    pub fn latency_json(&self, j: &mut JsonObject) {
        let ms = |us: u64| us as f64 / 1000.0;
        j.float("latency_p50_ms", ms(self.hist.quantile_us(0.5)))
            .float("latency_p99_ms", ms(self.hist.quantile_us(0.99)))
            .float("latency_p999_ms", ms(self.hist.quantile_us(0.999)))
            .float("latency_max_ms", ms(self.hist.max_us()))
            .float("latency_mean_ms", self.hist.mean_us() / 1000.0);
    }

    /// The latency quantiles for humans.
    pub fn latency_human(&self) -> String {
        let ms = |us: u64| us as f64 / 1000.0;
        format!(
            "p50 {:.3}ms p99 {:.3}ms p999 {:.3}ms max {:.3}ms mean {:.3}ms",
            ms(self.hist.quantile_us(0.5)),
            ms(self.hist.quantile_us(0.99)),
            ms(self.hist.quantile_us(0.999)),
            ms(self.hist.max_us()),
            self.hist.mean_us() / 1000.0,
        )
    }

    /// The members every timed mode reports first.
    pub fn head_json(&self, j: &mut JsonObject, mode: &str, o: &Opts, t: &TimedOpts) {
        j.str("mode", mode)
            .str("target", &o.target.to_string())
            .str("path", &o.path)
            .num("requested", o.n as u64)
            .num("procs", self.procs as u64)
            .num("sources", o.sources.len() as u64)
            .num("size", t.size as u64)
            .num("opened", self.opened)
            .num("upgraded", self.upgraded)
            .float("open_secs", self.open_secs)
            .float("warmup_secs", t.warmup.as_secs_f64())
            .float("duration_secs", t.duration.as_secs_f64());
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
    let opens = fleet.collect(
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
    let dones = fleet.collect(
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
        let n = o.n;
        let Opened {
            conns,
            failures,
            upgraded,
            connect_failed,
        } = open_slice(o.clone(), slice.offset).await;
        fleet::send(
            &Line::new("open")
                .field("upgraded", upgraded.get())
                .field("opened", n as u64 - connect_failed)
                .failures(&failures),
        );

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
        let t = env.tally.take();
        fleet::send(
            &Line::new("done")
                .field("messages", t.messages)
                .field("bytes", t.bytes)
                .field("closed", t.closed)
                .field("hist", t.hist.encode())
                .failures(&t.failures),
        );
    })?;
    Ok(())
}

/// Run the children, report. Returns the exit status.
pub fn parent(o: &Opts, p: &PingpongOpts, argv: &[String]) -> anyhow::Result<i32> {
    let t = &p.0;
    let tot = parent_run(o, "pingpong", argv, t)?;
    let rate = Totals::rate(tot.messages, t.duration);
    if o.json {
        let mut j = JsonObject::new();
        tot.head_json(&mut j, "pingpong", o, t);
        j.num("round_trips", tot.messages)
            .float("round_trips_per_sec", rate);
        tot.latency_json(&mut j);
        j.num("closed_clean", tot.closed)
            .num("failed", tot.failures.total())
            .raw("failures", &tot.failures.json());
        println!("{}", j.finish());
    } else {
        tot.head_human("pingpong", &format!("{}-byte messages", t.size), o);
        println!(
            "  run      {:.1}s warmup + {:.1}s measured: {} round trips, {rate:.0}/s",
            t.warmup.as_secs_f64(),
            t.duration.as_secs_f64(),
            tot.messages,
        );
        println!("  latency  {}", tot.latency_human());
        println!("  closed   {} cleanly", tot.closed);
        println!("  failures {}", tot.failures.human());
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
async fn round_trip(c: &mut WsClient, payload: &[u8]) -> Result<(), What> {
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

/// What a child's opening phase left: its connections (None where one
/// failed), the failures by kind, and counts.
pub struct Opened {
    pub conns: Rc<RefCell<Vec<Option<WsClient>>>>,
    pub failures: Counts,
    pub upgraded: Rc<Cell<u64>>,
    /// Failures before the TCP connection existed.
    pub connect_failed: u64,
}

/// Open this child's `o.n` WebSockets (global indices from `offset`, for
/// source addresses), at most `o.concurrency` at a time.
pub async fn open_slice(o: Rc<Opts>, offset: usize) -> Opened {
    let n = o.n;
    let conns: Rc<RefCell<Vec<Option<WsClient>>>> =
        Rc::new(RefCell::new((0..n).map(|_| None).collect()));
    let failures = Rc::new(RefCell::new(Counts::default()));
    let upgraded = Rc::new(Cell::new(0u64));
    {
        let (o, conns, failures, upgraded) =
            (o.clone(), conns.clone(), failures.clone(), upgraded.clone());
        for_each_bounded(n, o.concurrency, move |i| {
            let (o, conns, failures, upgraded) =
                (o.clone(), conns.clone(), failures.clone(), upgraded.clone());
            async move {
                let src = o.source(offset + i);
                match WsClient::open(src, o.target, &o.host, &o.path, &o.timeouts).await {
                    Ok(c) => {
                        upgraded.set(upgraded.get() + 1);
                        conns.borrow_mut()[i] = Some(c);
                    }
                    Err(f) => failures.borrow_mut().add(&f.key()),
                }
            }
        })
        .await;
    }
    let failures = failures.take();
    let connect_failed = failures
        .0
        .iter()
        .filter(|(k, _)| k.starts_with("connect_"))
        .map(|(_, v)| v)
        .sum();
    Opened {
        conns,
        failures,
        upgraded,
        connect_failed,
    }
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
        assert_eq!((t.messages, t.bytes, t.hist.count()), (1, 64, 1));
        assert_eq!(t.hist.max_us(), 1_002_000);
    }

    #[test]
    fn children_merge() {
        let mut f = Counts::default();
        f.add("connect_refused");
        let opens = [
            Line::new("open").field("opened", 50).field("upgraded", 50),
            Line::new("open")
                .field("opened", 49)
                .field("upgraded", 49)
                .failures(&f),
        ];
        let mut h1 = Hist::new();
        let mut h2 = Hist::new();
        (1..=100).for_each(|v| h1.record_us(v));
        (101..=200).for_each(|v| h2.record_us(v));
        let mut g = Counts::default();
        g.add("echo_timeout");
        let dones = [
            Line::new("done")
                .field("messages", 100)
                .field("bytes", 6400)
                .field("closed", 50)
                .field("hist", h1.encode()),
            Line::new("done")
                .field("messages", 100)
                .field("bytes", 6400)
                .field("closed", 48)
                .field("hist", h2.encode())
                .failures(&g),
        ];
        let mut tot = Totals::default();
        for l in &opens {
            tot.add_open(&Line::parse(&l.render()).unwrap());
        }
        for l in &dones {
            tot.add_done(&Line::parse(&l.render()).unwrap());
        }
        assert_eq!((tot.opened, tot.upgraded), (99, 99));
        assert_eq!((tot.messages, tot.bytes, tot.closed), (200, 12800, 98));
        assert_eq!(tot.hist.count(), 200);
        assert_eq!(tot.hist.max_us(), 200);
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
