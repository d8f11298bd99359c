//! `churn`: what short-lived WebSocket connections cost. `-n` workers in
//! all (split over the load processes) each loop, until the window ends:
//! TCP connect from the next source address, upgrade, send one small
//! masked text message and check its echo, send close 1000 and wait for
//! the server's close reply and then its FIN (EOF), close the socket. The
//! whole cycle is one handshake, timed and counted when it completes inside
//! the window. Children report `ready`, the parent says `start`, and every
//! child times `--warmup` (not counted) then `--duration` from that word,
//! so the windows line up.
//!
//! TIME_WAIT: the client never closes first. RFC 6455 §7.1.1 has the server
//! close the TCP connection first, and the client here waits for that EOF
//! before closing its socket, so the client's side goes through LAST_ACK and
//! the TIME_WAIT lands on the server's (or proxy's) side, where it holds no
//! ephemeral port of the client's. No SO_LINGER 0 (RST) games, which would
//! change what the proxy sees. A server that does not close within the io
//! timeout counts as a `close_timeout` failure. Source addresses still go
//! round-robin (each child starting at its slice's offset), so each source
//! spends few ports even when something between does leave TIME_WAIT on
//! the client side.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::Context;
use lexopt::ValueExt;
use ringway_bench::cli::parse_duration;
use ringway_bench::client::{bounded, Failure, Phase, What, WsClient};
use ringway_bench::hist::Hist;
use ringway_bench::report::{r3, Counts};
use ringway_bench::{rt, ws};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::fleet::{self, Fleet};
use crate::Opts;

/// Slack added to every computed deadline.
const SLACK: Duration = Duration::from_secs(30);
/// How long children may take to exit after reporting.
const GRACE: Duration = Duration::from_secs(5);
/// Pause after a failed cycle, so a refusing target is not spun on.
const BACKOFF: Duration = Duration::from_millis(10);

/// `churn`'s options.
#[derive(Debug, Clone)]
pub struct ChurnOpts {
    /// Run before measuring, not counted.
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
}

impl Default for ChurnOpts {
    fn default() -> Self {
        Self {
            warmup: Duration::ZERO,
            duration: Duration::from_secs(10),
        }
    }
}

impl ChurnOpts {
    /// Take `--NAME` if it is ours.
    pub fn flag(&mut self, name: &str, p: &mut lexopt::Parser) -> Result<bool, lexopt::Error> {
        match name {
            "duration" => self.duration = p.value()?.parse_with(parse_duration)?,
            "warmup" => self.warmup = p.value()?.parse_with(parse_duration)?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// The measured part of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    start: Instant,
    end: Instant,
}

impl Window {
    fn after(begin: Instant, c: &ChurnOpts) -> Self {
        let start = begin + c.warmup;
        Self {
            start,
            end: start + c.duration,
        }
    }

    /// A cycle that completed at `t` counts.
    fn measures(&self, t: Instant) -> bool {
        t >= self.start && t < self.end
    }

    /// Start no cycle at or after `t`.
    fn over(&self, t: Instant) -> bool {
        t >= self.end
    }
}

/// What a child's workers share.
struct Env {
    o: Opts,
    window: Window,
    /// Global connection index of the next cycle's source address.
    next_source: Cell<usize>,
    tally: RefCell<Tally>,
}

/// What a child counts; its `done` line, and merged, the parent's totals.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Tally {
    /// Cycles completed inside the window.
    handshakes: u64,
    /// Cycles completed at any time.
    cycles: u64,
    failures: Counts,
    hist: Hist,
}

impl Env {
    fn source(&self) -> Option<std::net::Ipv4Addr> {
        let i = self.next_source.get();
        self.next_source.set(i.wrapping_add(1));
        self.o.source(i)
    }

    fn record(&self, began: Instant, done: Instant) {
        let mut t = self.tally.borrow_mut();
        t.cycles += 1;
        if self.window.measures(done) {
            t.handshakes += 1;
            t.hist.record(done.saturating_duration_since(began));
        }
    }
}

impl Tally {
    fn add(&mut self, l: &Tally) {
        self.handshakes += l.handshakes;
        self.cycles += l.cycles;
        self.failures.merge(&l.failures);
        self.hist.merge(&l.hist);
    }

    fn per_sec(&self, d: Duration) -> f64 {
        if d.is_zero() {
            0.0
        } else {
            self.handshakes as f64 / d.as_secs_f64()
        }
    }
}

/// A child's `ready` line.
#[derive(Serialize, Deserialize)]
struct Ready {
    workers: usize,
}

/// Run the children, report. Returns the exit status.
pub fn parent(o: &Opts, c: &ChurnOpts, argv: &[String]) -> anyhow::Result<i32> {
    let (slices, _) = fleet::plan(o.n, o.procs, 0, "workers")?;
    let mut fleet = Fleet::spawn("churn", argv, &slices)?;
    fleet.collect::<Ready>("ready", Instant::now() + SLACK)?;
    fleet.broadcast("start")?;
    crate::pingpong::window_line(c.warmup, c.duration);
    let t = &o.timeouts;
    // After the window each worker finishes the cycle it is in: at most a
    // connect, an upgrade, an echo and a close.
    let after = t.connect + t.handshake + t.io * 2;
    let dones: Vec<Tally> = fleet.collect(
        "done",
        Instant::now() + c.warmup + c.duration + after + SLACK,
    )?;
    fleet.finish(GRACE);
    let mut tot = Tally::default();
    for l in &dones {
        tot.add(l);
    }
    let rate = tot.per_sec(c.duration);
    let errors = tot.failures.total();
    let h = &tot.hist;
    if o.json {
        let r = json!({
            "mode": "churn",
            "target": o.target,
            "path": &o.path,
            "workers": o.n,
            "procs": slices.len(),
            "sources": o.sources.len(),
            "warmup_secs": r3(c.warmup.as_secs_f64()),
            "duration_secs": r3(c.duration.as_secs_f64()),
            "handshakes": tot.handshakes,
            "handshakes_per_sec": r3(rate),
            "cycles_total": tot.cycles,
            "p50_ms": h.ms(0.5),
            "p99_ms": h.ms(0.99),
            "p999_ms": h.ms(0.999),
            "max_ms": h.max_ms(),
            "mean_ms": r3(h.mean_ms()),
            "errors": errors,
            "failures": tot.failures,
        });
        println!("{}", serde_json::to_string(&r)?);
    } else {
        let sources = o.sources_human();
        println!(
            "churn: {} workers against {}{} from {sources} in {} processes",
            o.n,
            o.target,
            o.path,
            slices.len()
        );
        println!(
            "  run      {:.1}s warmup + {:.1}s measured: {} handshakes, {rate:.0}/s \
             ({} cycles in all)",
            c.warmup.as_secs_f64(),
            c.duration.as_secs_f64(),
            tot.handshakes,
            tot.cycles,
        );
        println!(
            "  cycle    connect+upgrade+echo+close p50 {:.3}ms p99 {:.3}ms p999 {:.3}ms \
             max {:.3}ms mean {:.3}ms",
            h.ms(0.5),
            h.ms(0.99),
            h.ms(0.999),
            h.max_ms(),
            h.mean_ms(),
        );
        println!("  failures {}", tot.failures.human());
    }
    Ok(i32::from(errors != 0 || tot.handshakes == 0))
}

/// One load process: report ready, wait for `start`, run its workers
/// through the window, report.
pub fn child(o: &Opts, c: &ChurnOpts) -> anyhow::Result<()> {
    fleet::child_init();
    rt::raise_nofile();
    let slice = o.child.context("not a child")?;
    let (o, c) = (o.clone(), c.clone());
    rt::block_on(o.driver, async move {
        fleet::send("ready", &Ready { workers: o.n });
        if fleet::command().as_deref() != Some("start") {
            return;
        }
        let env = Rc::new(Env {
            window: Window::after(Instant::now(), &c),
            next_source: Cell::new(slice.offset),
            tally: RefCell::new(Tally::default()),
            o,
        });
        let workers: Vec<_> = (0..env.o.n)
            .map(|w| monoio::spawn(worker(env.clone(), slice.index, w)))
            .collect();
        for w in workers {
            w.await;
        }
        fleet::send("done", &env.tally.take());
    })?;
    Ok(())
}

/// Cycle until the window is over.
async fn worker(env: Rc<Env>, child: usize, w: usize) {
    let mut k = 0u64;
    while !env.window.over(Instant::now()) {
        let msg = format!("ringway-churn {child}:{w}:{k}");
        k += 1;
        let began = Instant::now();
        match cycle(&env.o, env.source(), msg.as_bytes()).await {
            Ok(()) => env.record(began, Instant::now()),
            Err(f) => {
                env.tally.borrow_mut().failures.add(&f.key());
                monoio::time::sleep(BACKOFF).await;
            }
        }
    }
}

/// One connection's life: connect, upgrade, echo, close handshake.
async fn cycle(o: &Opts, src: Option<std::net::Ipv4Addr>, msg: &[u8]) -> Result<(), Failure> {
    let mut c = WsClient::open(src, o.target, o.tls(), &o.host, &o.path, &o.timeouts, o.h2).await?;
    bounded(Phase::Echo, o.timeouts.io, c.echo(msg)).await?;
    bounded(Phase::Close, o.timeouts.io, close_after_server(&mut c)).await
    // `c` drops here, after the server's FIN: the client closes second.
}

/// Send close 1000, then read until the server closes the TCP connection
/// (its close reply comes first; anything else it sends is skipped).
async fn close_after_server(c: &mut WsClient) -> Result<(), What> {
    c.send(ws::FIN | ws::OP_CLOSE, &ws::close_payload(1000))
        .await?;
    loop {
        match c.recv().await {
            Ok(_) => {}
            Err(What::Eof) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_counts_cycles_that_end_inside_it() {
        let begin = Instant::now();
        let c = ChurnOpts {
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(2),
        };
        let w = Window::after(begin, &c);
        assert!(!w.measures(begin) && !w.over(begin));
        assert!(w.measures(begin + Duration::from_secs(1)));
        assert!(w.measures(begin + Duration::from_millis(2999)));
        assert!(!w.measures(begin + Duration::from_secs(3)));
        assert!(w.over(begin + Duration::from_secs(3)));

        let (o, _) = crate::parse(
            "churn",
            [
                "--target",
                "127.0.0.1:1",
                "--sources",
                "127.0.0.2-127.0.0.4",
            ]
            .map(String::from)
            .to_vec(),
        )
        .unwrap();
        let env = Env {
            o,
            window: w,
            next_source: Cell::new(2),
            tally: RefCell::new(Tally::default()),
        };
        let srcs: Vec<_> = (0..4).map(|_| env.source().unwrap().octets()[3]).collect();
        assert_eq!(srcs, [4, 2, 3, 4], "round-robin from the slice's offset");
        env.record(begin, begin + Duration::from_millis(500)); // warmup
        env.record(
            begin + Duration::from_secs(1),
            begin + Duration::from_millis(1250),
        );
        env.record(begin, begin + Duration::from_secs(4)); // after
        let t = env.tally.take();
        assert_eq!((t.handshakes, t.cycles, t.hist.0.len()), (1, 3, 1));
        assert!((t.hist.max_ms() / 250.0 - 1.0).abs() < 1e-3);
    }

    #[test]
    fn defaults_and_flags() {
        let (o, m) = crate::parse(
            "churn",
            ["--target", "127.0.0.1:1"].map(String::from).to_vec(),
        )
        .unwrap();
        assert_eq!(o.n, 50);
        let crate::Mode::Churn(c) = m else {
            panic!("not churn")
        };
        assert_eq!(
            (c.warmup, c.duration),
            (Duration::ZERO, Duration::from_secs(10))
        );
        let (_, m) = crate::parse(
            "churn",
            [
                "--target",
                "127.0.0.1:1",
                "--duration",
                "3s",
                "--warmup",
                "500ms",
            ]
            .map(String::from)
            .to_vec(),
        )
        .unwrap();
        let crate::Mode::Churn(c) = m else {
            panic!("not churn")
        };
        assert_eq!(
            (c.warmup, c.duration),
            (Duration::from_millis(500), Duration::from_secs(3))
        );
    }

    #[test]
    fn children_merge() {
        let (mut a, mut b) = (Tally::default(), Tally::default());
        (1..=100).for_each(|v| a.hist.record_us(v));
        (101..=300).for_each(|v| b.hist.record_us(v));
        (a.handshakes, a.cycles) = (100, 110);
        (b.handshakes, b.cycles) = (200, 205);
        b.failures.add("connect_addr_unavailable");
        let mut tot = Tally::default();
        for l in [a, b] {
            let line = serde_json::to_string(&l).unwrap();
            tot.add(&serde_json::from_str(&line).unwrap());
        }
        assert_eq!((tot.handshakes, tot.cycles), (300, 315));
        assert_eq!((tot.hist.0.len(), tot.hist.max_ms()), (300, 0.3));
        assert_eq!(tot.failures.0["connect_addr_unavailable"], 1);
        assert_eq!(tot.per_sec(Duration::from_secs(3)), 100.0);
        assert_eq!(tot.per_sec(Duration::ZERO), 0.0);
    }
}
