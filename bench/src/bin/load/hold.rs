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

use ringway_bench::cli::{parse_duration, Args, CliError};
use ringway_bench::client::{bounded, for_each_bounded, Phase, WsClient};
use ringway_bench::hist::Hist;
use ringway_bench::report::{Counts, JsonObject, Line};
use ringway_bench::rt;

use crate::fleet::{self, Fleet};
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
}

impl Default for HoldOpts {
    fn default() -> Self {
        Self {
            hold: Duration::from_secs(10),
        }
    }
}

impl HoldOpts {
    /// Take `flag` if it is ours.
    pub fn flag(&mut self, flag: &str, args: &mut Args) -> Result<bool, CliError> {
        match flag {
            "--hold" => self.hold = args.with(flag, parse_duration)?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// Run the children, hold, verify, report. Returns the exit status.
pub fn parent(o: &Opts, h: &HoldOpts, argv: &[String]) -> anyhow::Result<i32> {
    let (slices, per) = fleet::plan(o.n, o.procs, 0, "connections")?;
    let waves = per.div_ceil(o.concurrency as u64).max(1) as u32;
    let started = Instant::now();
    let mut fleet = Fleet::spawn("hold", argv, &slices)?;

    let t = &o.timeouts;
    let opens = fleet.collect(
        "open",
        Instant::now() + (t.connect + t.handshake) * waves + SLACK,
    )?;
    let open_secs = started.elapsed().as_secs_f64();
    let mut failures = Counts::default();
    let mut open_hist = Hist::new();
    let (mut opened, mut upgraded) = (0, 0);
    for l in &opens {
        opened += l.num("opened");
        upgraded += l.num("upgraded");
        failures.merge(&l.failure_counts());
        if let Some(hist) = l.hist() {
            open_hist.merge(&hist);
        }
    }
    println!("holding {upgraded}");
    std::io::stdout().flush()?;

    std::thread::sleep(h.hold);

    let verify_started = Instant::now();
    fleet.broadcast("verify")?;
    let dones = fleet.collect("done", Instant::now() + t.io * 2 * waves + SLACK)?;
    let verify_secs = verify_started.elapsed().as_secs_f64();
    fleet.finish(GRACE);
    let mut echo_hist = Hist::new();
    let (mut alive, mut closed) = (0, 0);
    for l in &dones {
        alive += l.num("alive");
        closed += l.num("closed");
        failures.merge(&l.failure_counts());
        if let Some(hist) = l.hist() {
            echo_hist.merge(&hist);
        }
    }

    let ms = |us: u64| us as f64 / 1000.0;
    if o.json {
        let mut j = JsonObject::new();
        j.str("mode", "hold")
            .str("target", &o.target.to_string())
            .str("path", &o.path)
            .num("requested", o.n as u64)
            .num("procs", slices.len() as u64)
            .num("sources", o.sources.len() as u64)
            .num("opened", opened)
            .num("upgraded", upgraded)
            .float("open_secs", open_secs)
            .float("open_p50_ms", ms(open_hist.quantile_us(0.5)))
            .float("open_p99_ms", ms(open_hist.quantile_us(0.99)))
            .float("open_max_ms", ms(open_hist.max_us()))
            .float("hold_secs", h.hold.as_secs_f64())
            .num("alive_after_hold", alive)
            .num("closed_clean", closed)
            .float("verify_secs", verify_secs)
            .float("echo_p50_ms", ms(echo_hist.quantile_us(0.5)))
            .float("echo_p99_ms", ms(echo_hist.quantile_us(0.99)))
            .float("echo_max_ms", ms(echo_hist.max_us()))
            .num("failed", failures.total())
            .raw("failures", &failures.json());
        println!("{}", j.finish());
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
            "  open     {upgraded}/{} upgraded ({opened} TCP-connected) in {open_secs:.2}s; \
             connect+upgrade p50 {:.1}ms p99 {:.1}ms max {:.1}ms",
            o.n,
            ms(open_hist.quantile_us(0.5)),
            ms(open_hist.quantile_us(0.99)),
            ms(open_hist.max_us()),
        );
        println!("  held     {:.1}s", h.hold.as_secs_f64());
        println!(
            "  alive    {alive}/{upgraded} echoed after the hold, {closed} closed cleanly, \
             in {verify_secs:.2}s; echo p50 {:.1}ms p99 {:.1}ms max {:.1}ms",
            ms(echo_hist.quantile_us(0.5)),
            ms(echo_hist.quantile_us(0.99)),
            ms(echo_hist.max_us()),
        );
        println!("  failures {}", failures.human());
    }
    Ok(if failures.total() == 0 && alive == o.n as u64 {
        0
    } else {
        1
    })
}

/// What a child collects while opening or verifying.
#[derive(Default)]
struct Tally {
    ok: u64,
    closed: u64,
    failures: Counts,
    hist: Hist,
}

/// One load process: open its slice, report, hold until told, verify.
pub fn child(o: &Opts, _h: &HoldOpts) -> anyhow::Result<()> {
    fleet::child_init();
    rt::raise_nofile();
    let slice = o.child.ok_or_else(|| anyhow::anyhow!("not a child"))?;
    let o = Rc::new(o.clone());
    rt::block_on(o.driver, async move {
        let n = o.n;
        let conns: Rc<RefCell<Vec<Option<WsClient>>>> =
            Rc::new(RefCell::new((0..n).map(|_| None).collect()));

        // Open.
        let tally = Rc::new(RefCell::new(Tally::default()));
        let started = Instant::now();
        {
            let (o, conns, tally) = (o.clone(), conns.clone(), tally.clone());
            for_each_bounded(n, o.concurrency, move |i| {
                let (o, conns, tally) = (o.clone(), conns.clone(), tally.clone());
                async move {
                    let src = o.source(slice.offset + i);
                    let t0 = Instant::now();
                    match WsClient::open(src, o.target, &o.host, &o.path, &o.timeouts).await {
                        Ok(c) => {
                            let mut t = tally.borrow_mut();
                            t.ok += 1;
                            t.hist.record(t0.elapsed());
                            conns.borrow_mut()[i] = Some(c);
                        }
                        Err(f) => tally.borrow_mut().failures.add(&f.key()),
                    }
                }
            })
            .await;
        }
        let t = std::mem::take(&mut *tally.borrow_mut());
        let connect_failed: u64 = t
            .failures
            .0
            .iter()
            .filter(|(k, _)| k.starts_with("connect_"))
            .map(|(_, v)| v)
            .sum();
        fleet::send(
            &Line::new("open")
                .field("upgraded", t.ok)
                .field("opened", n as u64 - connect_failed)
                .field("secs", format!("{:.3}", started.elapsed().as_secs_f64()))
                .field("hist", t.hist.encode())
                .failures(&t.failures),
        );

        // Hold: nothing to do until the parent says so.
        if fleet::command().as_deref() != Some("verify") {
            return;
        }

        // Verify and close.
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
                                t.ok += 1;
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
        let t = std::mem::take(&mut *tally.borrow_mut());
        fleet::send(
            &Line::new("done")
                .field("alive", t.ok)
                .field("closed", t.closed)
                .field("hist", t.hist.encode())
                .failures(&t.failures),
        );
    })?;
    Ok(())
}
