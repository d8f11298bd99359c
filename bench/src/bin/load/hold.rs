//! `hold`: what idle WebSocket tunnels cost a proxy. Open N connections
//! (bounded concurrency, connect and upgrade each under a timeout), print
//! `holding N` once every child has finished opening — the window in which
//! an outside script measures the proxy — wait `--hold`, then send one text
//! message on every connection, check its echo, and close each with the
//! closing handshake. Reports opened, upgraded, alive after the hold,
//! closed cleanly, failures by kind, time to open and latency quantiles.

use std::cell::RefCell;
use std::io::Write;
use std::rc::Rc;
use std::time::{Duration, Instant};

use lexopt::ValueExt;
use ringway_bench::cli::parse_duration;
use ringway_bench::client::{bounded, for_each_bounded, Phase};
use ringway_bench::hist::Hist;
use ringway_bench::report::{r3, Counts};
use ringway_bench::rt;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::fleet::{self, Fleet, Open};
use crate::pingpong::open_slice;
use crate::Opts;

/// Slack added to every computed deadline.
const SLACK: Duration = Duration::from_secs(30);
/// How long children may take to exit after reporting.
const GRACE: Duration = Duration::from_secs(5);

/// `hold`'s own options.
#[derive(Debug, Clone)]
pub struct HoldOpts {
    /// How long to hold after all are open.
    pub hold: Duration,
    /// Echo one message on each connection once all are open, before the
    /// `open` report: the hold then measures tunnels that have carried a
    /// message.
    pub echo_first: bool,
}

impl Default for HoldOpts {
    fn default() -> Self {
        Self {
            hold: Duration::from_secs(10),
            echo_first: false,
        }
    }
}

impl HoldOpts {
    /// Take `--NAME` if it is ours.
    pub fn flag(&mut self, name: &str, p: &mut lexopt::Parser) -> Result<bool, lexopt::Error> {
        match name {
            "hold" => self.hold = p.value()?.parse_with(parse_duration)?,
            "echo-first" => self.echo_first = true,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// A child's `done` line: its connections after the hold.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Done {
    /// Echoed after the hold.
    alive: u64,
    /// Closed cleanly.
    closed: u64,
    failures: Counts,
    /// Echo latency.
    hist: Hist,
}

/// Run the children, hold, verify, report. Returns the exit status.
pub fn parent(o: &Opts, h: &HoldOpts, argv: &[String]) -> anyhow::Result<i32> {
    let (slices, per) = fleet::plan(o.n, o.procs, 0, "connections")?;
    let waves = per.div_ceil(o.concurrency as u64).max(1) as u32;
    let started = Instant::now();
    let mut fleet = Fleet::spawn("hold", argv, &slices)?;

    let t = &o.timeouts;
    let mut open = Open::default();
    for l in fleet.collect::<Open>(
        "open",
        Instant::now() + (t.connect + t.handshake + t.io * u32::from(h.echo_first)) * waves + SLACK,
    )? {
        open.merge(&l);
    }
    let open_secs = started.elapsed().as_secs_f64();
    let upgraded = open.upgraded;
    println!("holding {upgraded}");
    std::io::stdout().flush()?;

    std::thread::sleep(h.hold);

    let verify_started = Instant::now();
    fleet.broadcast("verify")?;
    let dones = fleet.collect::<Done>("done", Instant::now() + t.io * 2 * waves + SLACK)?;
    let verify_secs = verify_started.elapsed().as_secs_f64();
    fleet.finish(GRACE);
    let mut done = Done::default();
    let mut failures = open.failures.clone();
    for l in &dones {
        done.alive += l.alive;
        done.closed += l.closed;
        failures.merge(&l.failures);
        done.hist.merge(&l.hist);
    }
    let (alive, closed, open_hist, echo_hist) = (done.alive, done.closed, &open.hist, &done.hist);

    if o.json {
        let r = json!({
            "mode": "hold",
            "target": o.target,
            "path": &o.path,
            "requested": o.n,
            "procs": slices.len(),
            "sources": o.sources.len(),
            "opened": open.opened,
            "upgraded": upgraded,
            "open_secs": r3(open_secs),
            "open_p50_ms": open_hist.ms(0.5),
            "open_p99_ms": open_hist.ms(0.99),
            "open_max_ms": open_hist.max_ms(),
            "hold_secs": r3(h.hold.as_secs_f64()),
            "alive_after_hold": alive,
            "closed_clean": closed,
            "verify_secs": r3(verify_secs),
            "echo_p50_ms": echo_hist.ms(0.5),
            "echo_p99_ms": echo_hist.ms(0.99),
            "echo_max_ms": echo_hist.max_ms(),
            "failed": failures.total(),
            "failures": failures,
        });
        println!("{}", serde_json::to_string(&r)?);
    } else {
        let sources = o.sources_human();
        println!(
            "hold: {} connections to {}{} from {sources} in {} processes",
            o.n,
            o.target,
            o.path,
            slices.len()
        );
        println!(
            "  open     {upgraded}/{} upgraded ({} TCP-connected) in {open_secs:.2}s; \
             connect+upgrade p50 {:.1}ms p99 {:.1}ms max {:.1}ms",
            o.n,
            open.opened,
            open_hist.ms(0.5),
            open_hist.ms(0.99),
            open_hist.max_ms(),
        );
        println!("  held     {:.1}s", h.hold.as_secs_f64());
        println!(
            "  alive    {alive}/{upgraded} echoed after the hold, {closed} closed cleanly, \
             in {verify_secs:.2}s; echo p50 {:.1}ms p99 {:.1}ms max {:.1}ms",
            echo_hist.ms(0.5),
            echo_hist.ms(0.99),
            echo_hist.max_ms(),
        );
        println!("  failures {}", failures.human());
    }
    Ok(if failures.total() == 0 && alive == o.n as u64 {
        0
    } else {
        1
    })
}

/// One load process: open its slice, report, hold until told, verify.
pub fn child(o: &Opts, h: &HoldOpts) -> anyhow::Result<()> {
    fleet::child_init();
    rt::raise_nofile();
    let slice = o.child.ok_or_else(|| anyhow::anyhow!("not a child"))?;
    let o = Rc::new(o.clone());
    let echo_first = h.echo_first;
    rt::block_on(o.driver, async move {
        let n = o.n;
        let (conns, mut open) = open_slice(o.clone(), slice.offset).await;
        if echo_first {
            // One echo each; a connection that fails it is dropped and
            // counted as not upgraded, under the echo's failure.
            let failed = Rc::new(RefCell::new(Counts::default()));
            {
                let (o, conns, failed) = (o.clone(), conns.clone(), failed.clone());
                for_each_bounded(n, o.concurrency, move |i| {
                    let (o, conns, failed) = (o.clone(), conns.clone(), failed.clone());
                    async move {
                        let Some(mut c) = conns.borrow_mut()[i].take() else {
                            return;
                        };
                        let msg = format!("ringway-first {}:{i}", slice.index);
                        match bounded(Phase::Echo, o.timeouts.io, c.echo(msg.as_bytes())).await {
                            Ok(()) => conns.borrow_mut()[i] = Some(c),
                            Err(f) => failed.borrow_mut().add(&f.key()),
                        }
                    }
                })
                .await;
            }
            let failed = failed.take();
            open.upgraded -= failed.total();
            open.failures.merge(&failed);
        }
        fleet::send("open", &open);

        // Hold: nothing to do until the parent says so.
        if fleet::command().as_deref() != Some("verify") {
            return;
        }

        // Verify and close.
        let tally = Rc::new(RefCell::new(Done::default()));
        {
            let (o, conns, tally) = (o.clone(), conns.clone(), tally.clone());
            for_each_bounded(n, o.concurrency, move |i| {
                let (o, conns, tally) = (o.clone(), conns.clone(), tally.clone());
                async move {
                    let Some(mut c) = conns.borrow_mut()[i].take() else {
                        return;
                    };
                    let msg = format!("ringway-hold {}:{i}", slice.index);
                    let t0 = Instant::now();
                    let echoed = bounded(Phase::Echo, o.timeouts.io, c.echo(msg.as_bytes())).await;
                    let elapsed = t0.elapsed();
                    let mut failure = None;
                    match echoed {
                        Ok(()) => {
                            {
                                let mut t = tally.borrow_mut();
                                t.alive += 1;
                                t.hist.record(elapsed);
                            }
                            match bounded(Phase::Close, o.timeouts.io, c.close()).await {
                                Ok(()) => tally.borrow_mut().closed += 1,
                                Err(f) => failure = Some(f),
                            }
                        }
                        Err(f) => failure = Some(f),
                    }
                    if let Some(f) = failure {
                        tally.borrow_mut().failures.add(&f.key());
                    }
                }
            })
            .await;
        }
        fleet::send("done", &tally.take());
    })?;
    Ok(())
}
