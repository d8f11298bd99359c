//! `lowrate`: many mostly idle connections, the chat or dashboard shape.
//! Each connection sends one masked binary message of `--size` bytes every
//! `--interval` on its own timer and waits for its echo, so nearly every
//! message reaches the proxy on its own and costs it a wake-up. Run like
//! `pingpong` (aligned start, `--warmup` not counted, `--duration`
//! measured, closing handshake after); reports messages echoed in the
//! window, their rate next to the offered rate (upgraded connections ÷
//! interval), and send-to-echo latency.
//!
//! Pacing: connection number g (global, over every load process) fires at
//! phase frac(g·φ)·interval after the start and then every interval, so
//! the sends are spread evenly over the interval whatever the count. A
//! tick that comes while the previous echo is still out is skipped, not
//! queued (the rate shows it). Every wait ends with the window: the sleep
//! is cut at its end, each round trip is bounded by the io timeout.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::Context;
use lexopt::ValueExt;
use ringway_bench::cli::parse_duration;
use ringway_bench::client::{bounded, Failure, Phase, WsClient};
use ringway_bench::report::r3;
use serde_json::json;

use crate::pingpong::{child_run, parent_run, round_trip, Env, TimedOpts, Totals};
use crate::Opts;

/// The golden ratio's fractional part: consecutive multiples of it modulo
/// 1 spread evenly over [0, 1) for any count.
const PHI: f64 = 0.618_033_988_749_895;

/// `lowrate`'s options.
#[derive(Debug, Clone)]
pub struct LowrateOpts {
    /// Size, warmup, duration (window is 1: one message out at a time).
    pub t: TimedOpts,
    /// Time between one connection's sends.
    pub interval: Duration,
}

impl Default for LowrateOpts {
    fn default() -> Self {
        Self {
            t: TimedOpts {
                size: 64,
                warmup: Duration::from_secs(1),
                duration: Duration::from_secs(10),
                window: 1,
            },
            interval: Duration::from_millis(10),
        }
    }
}

impl LowrateOpts {
    /// Take `--NAME` if it is ours.
    pub fn flag(&mut self, name: &str, p: &mut lexopt::Parser) -> Result<bool, lexopt::Error> {
        match name {
            "interval" => {
                self.interval = p.value()?.parse_with(parse_duration)?;
                if self.interval.is_zero() {
                    return Err("--interval must be more than 0".into());
                }
            }
            _ => return self.t.flag(name, p),
        }
        Ok(true)
    }
}

/// Run the children, report. Returns the exit status.
pub fn parent(o: &Opts, l: &LowrateOpts, argv: &[String]) -> anyhow::Result<i32> {
    let t = &l.t;
    let tot = parent_run(o, "lowrate", argv, t)?;
    let rate = Totals::rate(tot.messages, t.duration);
    let offered = tot.upgraded as f64 / l.interval.as_secs_f64();
    if o.json {
        let own = json!({
            "interval_ms": r3(l.interval.as_secs_f64() * 1000.0),
            "messages": tot.messages,
            "messages_per_sec": r3(rate),
            "offered_per_sec": r3(offered),
        });
        println!(
            "{}",
            serde_json::to_string(&tot.report("lowrate", o, t, own))?
        );
    } else {
        let what = format!(
            "one {}-byte message every {:.1}ms each",
            t.size,
            l.interval.as_secs_f64() * 1000.0
        );
        tot.head_human("lowrate", &what, o);
        println!(
            "  run      {:.1}s warmup + {:.1}s measured: {} messages echoed, {rate:.0}/s \
             of {offered:.0}/s offered",
            t.warmup.as_secs_f64(),
            t.duration.as_secs_f64(),
            tot.messages,
        );
        tot.tail_human();
    }
    Ok(tot.exit_code(o.n))
}

/// One load process.
pub fn child(o: &Opts, l: &LowrateOpts) -> anyhow::Result<()> {
    let slice = o.child.context("not a child")?;
    let payload: Rc<[u8]> = (0..l.t.size).map(|i| i as u8).collect();
    let interval = l.interval;
    // Global number of the next connection handed out, for its phase.
    let next = Rc::new(Cell::new(slice.offset));
    child_run(o, &l.t, move |c, env| {
        let g = next.replace(next.get() + 1);
        conn(c, env, payload.clone(), interval, phase(g, interval))
    })
}

/// When connection number `g` first sends, after the start.
fn phase(g: usize, interval: Duration) -> Duration {
    interval.mul_f64((g as f64 * PHI).fract())
}

/// The first tick after `now` on the schedule `at`, `at + interval`, …
/// (`at` itself when it has not passed).
fn next_tick(at: Instant, now: Instant, interval: Duration) -> Instant {
    if at >= now {
        return at;
    }
    let behind = now.duration_since(at).as_nanos() / interval.as_nanos().max(1);
    at + interval * (behind as u32 + 1)
}

/// One connection's run: a round trip on every tick until the window is
/// over, then close.
async fn conn(
    mut c: WsClient,
    env: Rc<Env>,
    payload: Rc<[u8]>,
    interval: Duration,
    phase: Duration,
) -> Result<(), Failure> {
    let io = env.o.timeouts.io;
    let end = env.window.end;
    let mut at = env.window.start - env.t.warmup + phase;
    loop {
        let now = Instant::now();
        at = next_tick(at, now, interval);
        if at >= end {
            break;
        }
        monoio::time::sleep(at - now).await;
        let sent = Instant::now();
        bounded(Phase::Echo, io, round_trip(&mut c, &payload)).await?;
        let done = Instant::now();
        env.record(sent, done, payload.len() as u64);
        at += interval;
    }
    bounded(Phase::Close, io, c.close()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_spread_over_the_interval() {
        let iv = Duration::from_millis(10);
        let mut p: Vec<Duration> = (0..100).map(|g| phase(g, iv)).collect();
        assert!(p.iter().all(|d| *d < iv));
        p.sort();
        // No gap between neighbours is much wider than an even spread's.
        let widest = p.windows(2).map(|w| w[1] - w[0]).max().unwrap();
        assert!(widest < iv / 40, "{widest:?}");
    }

    #[test]
    fn ticks_skip_what_has_passed() {
        let iv = Duration::from_millis(10);
        let t0 = Instant::now();
        assert_eq!(next_tick(t0 + iv, t0, iv), t0 + iv);
        assert_eq!(next_tick(t0, t0, iv), t0);
        assert_eq!(next_tick(t0, t0 + iv, iv), t0 + iv * 2);
        assert_eq!(
            next_tick(t0, t0 + Duration::from_millis(25), iv),
            t0 + iv * 3
        );
    }

    #[test]
    fn options() {
        let (_, m) = crate::parse(
            "lowrate",
            [
                "--target",
                "127.0.0.1:9",
                "--interval",
                "20ms",
                "--size",
                "32",
            ]
            .map(String::from)
            .to_vec(),
        )
        .unwrap();
        let crate::Mode::Lowrate(l) = m else {
            panic!("not lowrate")
        };
        assert_eq!((l.interval, l.t.size), (Duration::from_millis(20), 32));
        let bad = ["--target", "127.0.0.1:9", "--interval", "0s"].map(String::from);
        assert!(crate::parse("lowrate", bad.to_vec()).is_err());
    }
}
