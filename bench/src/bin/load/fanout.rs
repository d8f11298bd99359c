//! `fanout`: broadcast delivery through the target. `-n` subscribers (split
//! over the load processes) connect to a fanout path of `ringway-echo`
//! (one whose path ends in `/fanout`, e.g. `--path /ws/fanout`) and wait.
//! Child 0 also opens one publisher connection. Once every child has
//! opened its slice the parent says `start`; the publisher then sends
//! `--messages` binary messages of `--size` bytes, message k at
//! start + (k+1)·`--interval`, each carrying its run id (the parent's pid),
//! its number and its send time (CLOCK_MONOTONIC, the same clock in every
//! process of the machine). The backend sends each to every member of its
//! group; every subscriber records, per message, receive time − send time.
//! Afterwards each subscriber and the publisher (which gets its own copies
//! too) close with the closing handshake.
//!
//! Bounded waits: a subscriber gives up after `--interval` plus
//! `--io-timeout` without a message, and everyone stops waiting at
//! start + (M+1)·interval + 2·io-timeout. Messages of another run (another
//! load generator sharing the backend's group) are skipped. The backend's group is per backend
//! thread: run `ringway-echo --threads 1`.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::Context;
use lexopt::ValueExt;
use ringway_bench::cli::parse_duration;
use ringway_bench::client::{bounded, Frame, Phase, What, WsClient, MAX_FRAME};
use ringway_bench::hist::Hist;
use ringway_bench::report::{r3, Counts};
use ringway_bench::{rt, ws};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::fleet::{self, Fleet, Open};
use crate::pingpong::open_slice;
use crate::Opts;

/// Slack added to every computed deadline.
const SLACK: Duration = Duration::from_secs(30);
/// How long children may take to exit after reporting.
const GRACE: Duration = Duration::from_secs(5);
/// First bytes of every message.
const MAGIC: [u8; 4] = *b"RWFO";
/// Magic, run id, number, send time.
pub const HEADER: usize = 20;
/// Largest message.
const MAX_SIZE: usize = MAX_FRAME - 14;

/// `fanout`'s options.
#[derive(Debug, Clone)]
pub struct FanoutOpts {
    /// Messages the publisher sends.
    pub messages: u32,
    /// Time between two messages.
    pub interval: Duration,
    /// Payload bytes per message (at least [`HEADER`]).
    pub size: usize,
}

impl Default for FanoutOpts {
    fn default() -> Self {
        Self {
            messages: 100,
            interval: Duration::from_millis(100),
            size: 64,
        }
    }
}

impl FanoutOpts {
    /// Take `--NAME` if it is ours.
    pub fn flag(&mut self, name: &str, p: &mut lexopt::Parser) -> Result<bool, lexopt::Error> {
        match name {
            "messages" => self.messages = p.value()?.parse()?,
            "interval" => self.interval = p.value()?.parse_with(parse_duration)?,
            "size" => {
                self.size = p.value()?.parse_with(|s| match s.parse::<usize>() {
                    Ok(n) if (HEADER..=MAX_SIZE).contains(&n) => Ok(n),
                    Ok(_) => Err(format!("between {HEADER} and {MAX_SIZE} bytes")),
                    Err(e) => Err(e.to_string()),
                })?
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// How long a subscriber waits for the next message.
    fn idle(&self, io: Duration) -> Duration {
        self.interval + io
    }

    /// When everyone stops waiting, from the start.
    fn run_limit(&self, io: Duration) -> Duration {
        self.interval * (self.messages + 1) + io * 2
    }
}

/// CLOCK_MONOTONIC in nanoseconds: one clock for every process of the
/// machine, unlike `Instant`, whose values cannot cross processes.
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the struct we pass.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
    }
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// What a message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The run (the parent's pid).
    pub run: u32,
    /// The message's number, from 0.
    pub seq: u32,
    /// [`mono_ns`] just before sending.
    pub sent_ns: u64,
}

impl Stamp {
    /// The payload: magic, run, seq, send time (big-endian), then filler
    /// up to `size` (at least [`HEADER`]).
    pub fn encode(&self, size: usize) -> Vec<u8> {
        let mut p = Vec::with_capacity(size.max(HEADER));
        p.extend_from_slice(&MAGIC);
        p.extend_from_slice(&self.run.to_be_bytes());
        p.extend_from_slice(&self.seq.to_be_bytes());
        p.extend_from_slice(&self.sent_ns.to_be_bytes());
        p.resize(size.max(HEADER), b'.');
        p
    }

    /// The inverse of [`Stamp::encode`]; `None` for anything else.
    pub fn decode(p: &[u8]) -> Option<Stamp> {
        if p.len() < HEADER || p[..4] != MAGIC {
            return None;
        }
        let u32_at = |i: usize| u32::from_be_bytes(p[i..i + 4].try_into().unwrap());
        Some(Stamp {
            run: u32_at(4),
            seq: u32_at(8),
            sent_ns: u64::from_be_bytes(p[12..20].try_into().unwrap()),
        })
    }
}

/// Which of a run's messages one connection has seen.
#[derive(Debug, Clone)]
pub struct Seen {
    bits: Vec<u64>,
    count: u32,
    of: u32,
}

impl Seen {
    /// None of `of` messages seen.
    pub fn new(of: u32) -> Self {
        Self {
            bits: vec![0; (of as usize).div_ceil(64)],
            count: 0,
            of,
        }
    }

    /// Mark `seq`; false when it was seen already or is out of range.
    pub fn insert(&mut self, seq: u32) -> bool {
        if seq >= self.of {
            return false;
        }
        let (w, b) = ((seq / 64) as usize, seq % 64);
        if self.bits[w] & (1 << b) != 0 {
            return false;
        }
        self.bits[w] |= 1 << b;
        self.count += 1;
        true
    }

    /// Every message seen.
    pub fn all(&self) -> bool {
        self.count == self.of
    }
}

/// What a child counts; its `done` line.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Tally {
    /// Distinct deliveries to subscribers.
    received: u64,
    /// Deliveries of a message the subscriber already had.
    duplicates: u64,
    /// Messages skipped: another run's, or not ours at all.
    foreign: u64,
    /// Messages the publisher sent.
    published: u64,
    /// Copies of its own messages the publisher got back.
    publisher_copies: u64,
    /// Connections closed with the closing handshake.
    closed: u64,
    failures: Counts,
    hist: Hist,
}

/// What a child's connections share during the run.
struct Env {
    o: Opts,
    f: FanoutOpts,
    run: u32,
    start: Instant,
    end: Instant,
    tally: RefCell<Tally>,
}

impl Env {
    fn fail(&self, key: String) {
        self.tally.borrow_mut().failures.add(&key);
    }

    /// Wait for the next frame: at most `idle`, never past the end.
    async fn next(&self, c: &mut WsClient, idle: Duration) -> Result<Frame, What> {
        let left = self.end.saturating_duration_since(Instant::now());
        match monoio::time::timeout(idle.min(left), c.recv()).await {
            Ok(r) => r,
            Err(_) => Err(What::Timeout),
        }
    }

    /// Take a data frame: a delivery of this run's message, or foreign.
    /// Returns the stamp when it is this run's and new to `seen`.
    fn take(&self, payload: &[u8], seen: &mut Seen, subscriber: bool) -> Option<Stamp> {
        let now = mono_ns();
        let mut t = self.tally.borrow_mut();
        let s = match Stamp::decode(payload) {
            Some(s) if s.run == self.run && s.seq < self.f.messages => s,
            _ => {
                t.foreign += 1;
                return None;
            }
        };
        if !seen.insert(s.seq) {
            t.duplicates += 1;
            t.failures.add(if subscriber {
                "deliver_duplicate"
            } else {
                "publisher_duplicate"
            });
            return None;
        }
        if subscriber {
            t.received += 1;
            t.hist.record_us(now.saturating_sub(s.sent_ns) / 1000);
        } else {
            t.publisher_copies += 1;
        }
        Some(s)
    }
}

/// The children's lines merged.
#[derive(Debug, Default)]
struct Totals {
    opened: u64,
    upgraded: u64,
    publishers: u64,
    received: u64,
    duplicates: u64,
    foreign: u64,
    published: u64,
    publisher_copies: u64,
    closed: u64,
    failures: Counts,
    hist: Hist,
}

impl Totals {
    fn add_open(&mut self, l: &Open) {
        self.opened += l.opened;
        self.upgraded += l.upgraded;
        self.publishers += l.publisher;
        self.failures.merge(&l.failures);
    }

    fn add_done(&mut self, l: &Tally) {
        self.received += l.received;
        self.duplicates += l.duplicates;
        self.foreign += l.foreign;
        self.published += l.published;
        self.publisher_copies += l.publisher_copies;
        self.closed += l.closed;
        self.failures.merge(&l.failures);
        self.hist.merge(&l.hist);
    }

    /// 0 when every subscriber got every message and nothing failed.
    fn exit_code(&self, expected: u64) -> i32 {
        i32::from(self.failures.total() != 0 || self.received != expected)
    }
}

/// Run the children, report. Returns the exit status.
pub fn parent(o: &Opts, f: &FanoutOpts, argv: &[String]) -> anyhow::Result<i32> {
    let (slices, per) = fleet::plan(o.n, o.procs, 1, "connections")?;
    let waves = per.div_ceil(o.concurrency as u64).max(1) as u32 + 1;
    let t = &o.timeouts;
    let started = Instant::now();
    let mut fleet = Fleet::spawn("fanout", argv, &slices)?;
    let opens: Vec<Open> = fleet.collect(
        "open",
        Instant::now() + (t.connect + t.handshake) * waves + SLACK,
    )?;
    let open_secs = started.elapsed().as_secs_f64();
    let mut tot = Totals::default();
    for l in &opens {
        tot.add_open(l);
    }
    let run_started = Instant::now();
    if tot.publishers > 0 {
        fleet.broadcast("start")?;
        // Then each connection's close handshake.
        let dones: Vec<Tally> =
            fleet.collect("done", Instant::now() + f.run_limit(t.io) + t.io + SLACK)?;
        for l in &dones {
            tot.add_done(l);
        }
    }
    // No publisher: nothing to run; closing their stdin ends the children.
    let run_secs = run_started.elapsed().as_secs_f64();
    fleet.finish(GRACE);

    let expected = o.n as u64 * u64::from(f.messages);
    let missing = expected.saturating_sub(tot.received);
    let errors = tot.failures.total();
    let h = &tot.hist;
    if o.json {
        let r = json!({
            "mode": "fanout",
            "target": o.target,
            "path": &o.path,
            "subscribers": o.n,
            "procs": slices.len(),
            "sources": o.sources.len(),
            "messages": f.messages,
            "interval_ms": r3(f.interval.as_secs_f64() * 1000.0),
            "size": f.size,
            "opened": tot.opened,
            "upgraded": tot.upgraded,
            "open_secs": r3(open_secs),
            "published": tot.published,
            "expected": expected,
            "received": tot.received,
            "missing": missing,
            "duplicates": tot.duplicates,
            "foreign": tot.foreign,
            "p50_ms": h.ms(0.5),
            "p99_ms": h.ms(0.99),
            "p999_ms": h.ms(0.999),
            "max_ms": h.max_ms(),
            "mean_ms": r3(h.mean_ms()),
            "run_secs": r3(run_secs),
            "closed_clean": tot.closed,
            "errors": errors,
            "failures": tot.failures,
        });
        println!("{}", serde_json::to_string(&r)?);
    } else {
        let sources = o.sources_human();
        println!(
            "fanout: {} subscribers of {}{} from {sources} in {} processes; \
             {} messages of {} bytes every {:.0}ms",
            o.n,
            o.target,
            o.path,
            slices.len(),
            f.messages,
            f.size,
            f.interval.as_secs_f64() * 1000.0
        );
        println!(
            "  open     {}/{} upgraded ({} TCP-connected) in {open_secs:.2}s; publisher {}",
            tot.upgraded,
            o.n,
            tot.opened,
            if tot.publishers > 0 { "open" } else { "FAILED" }
        );
        println!(
            "  deliver  {}/{expected} received ({missing} missing, {} duplicate, {} foreign) \
             of {} published, in {run_secs:.2}s",
            tot.received, tot.duplicates, tot.foreign, tot.published
        );
        println!(
            "  latency  send → receive p50 {:.3}ms p99 {:.3}ms p999 {:.3}ms max {:.3}ms \
             mean {:.3}ms",
            h.ms(0.5),
            h.ms(0.99),
            h.ms(0.999),
            h.max_ms(),
            h.mean_ms(),
        );
        println!("  closed   {} cleanly", tot.closed);
        println!("  failures {}", tot.failures.human());
        if tot.received == 0 && tot.publisher_copies > 0 {
            println!(
                "  (the publisher got its messages back but no subscriber did: \
                 plain echo, not a broadcast; does --path end in /fanout?)"
            );
        }
    }
    Ok(tot.exit_code(expected))
}

/// One load process: open its subscribers (child 0: and the publisher),
/// report, wait for `start`, run, report.
pub fn child(o: &Opts, f: &FanoutOpts) -> anyhow::Result<()> {
    fleet::child_init();
    rt::raise_nofile();
    let slice = o.child.context("not a child")?;
    let (o, f) = (Rc::new(o.clone()), f.clone());
    rt::block_on(o.driver, async move {
        let n = o.n;
        let (conns, mut open) = open_slice(o.clone(), slice.offset).await;
        let publisher = if slice.index == 0 {
            let src = o.source(slice.offset + n);
            match WsClient::open(src, o.target, o.tls(), &o.host, &o.path, &o.timeouts, o.h2).await
            {
                Ok(c) => Some(c),
                Err(e) => {
                    open.failures.add(&format!("publisher_{}", e.key()));
                    None
                }
            }
        } else {
            None
        };
        open.publisher = u64::from(publisher.is_some());
        fleet::send("open", &open);

        if fleet::command().as_deref() != Some("start") {
            return;
        }
        let start = Instant::now();
        let env = Rc::new(Env {
            end: start + f.run_limit(o.timeouts.io),
            run: std::os::unix::process::parent_id(),
            o: (*o).clone(),
            f,
            start,
            tally: RefCell::new(Tally::default()),
        });
        let mut tasks: Vec<_> = conns
            .borrow_mut()
            .drain(..)
            .flatten()
            .map(|c| monoio::spawn(subscribe(c, env.clone())))
            .collect();
        if let Some(p) = publisher {
            tasks.push(monoio::spawn(publish(p, env.clone())));
        }
        for task in tasks {
            task.await;
        }
        fleet::send("done", &env.tally.take());
    })?;
    Ok(())
}

/// Read deliveries until every message came, then close. Failures are
/// counted once per connection, as `deliver_*` or `close_*`.
async fn subscribe(c: WsClient, env: Rc<Env>) {
    read_all(c, env, true).await;
}

/// Send the messages on schedule, then read back its own copies and close.
async fn publish(mut c: WsClient, env: Rc<Env>) {
    let (f, io) = (env.f.clone(), env.o.timeouts.io);
    for k in 0..f.messages {
        let at = env.start + f.interval * (k + 1);
        let now = Instant::now();
        if now >= env.end {
            env.fail("publish_timeout".into());
            return;
        }
        if at > now {
            monoio::time::sleep(at - now).await;
        }
        let stamp = Stamp {
            run: env.run,
            seq: k,
            sent_ns: mono_ns(),
        };
        let payload = stamp.encode(f.size);
        if let Err(e) = bounded(Phase::Echo, io, c.send(ws::FIN | ws::OP_BINARY, &payload)).await {
            env.fail(format!("publish_{}", e.what));
            return;
        }
        env.tally.borrow_mut().published += 1;
    }
    read_all(c, env, false).await;
}

/// Read this run's messages on `c` until it has all of them (each wait
/// bounded), then close with the closing handshake.
async fn read_all(mut c: WsClient, env: Rc<Env>, subscriber: bool) {
    let who = if subscriber { "deliver" } else { "publisher" };
    let idle = env.f.idle(env.o.timeouts.io);
    let mut seen = Seen::new(env.f.messages);
    while !seen.all() {
        let f = match env.next(&mut c, idle).await {
            Ok(f) => f,
            Err(what) => {
                env.fail(format!("{who}_{what}"));
                return;
            }
        };
        let r = match f.first & 0x0f {
            ws::OP_PING => c.send(ws::FIN | ws::OP_PONG, &f.payload).await,
            ws::OP_PONG => Ok(()),
            ws::OP_CLOSE => Err(What::Closed),
            ws::OP_BINARY | ws::OP_TEXT if f.first & ws::FIN != 0 => {
                env.take(&f.payload, &mut seen, subscriber);
                Ok(())
            }
            _ => Err(What::Protocol),
        };
        if let Err(what) = r {
            env.fail(format!("{who}_{what}"));
            return;
        }
    }
    match bounded(Phase::Close, env.o.timeouts.io, c.close()).await {
        Ok(()) => env.tally.borrow_mut().closed += 1,
        Err(e) => env.fail(e.key()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip() {
        let s = Stamp {
            run: 4242,
            seq: 7,
            sent_ns: 123_456_789_012,
        };
        let p = s.encode(64);
        assert_eq!(p.len(), 64);
        assert_eq!(Stamp::decode(&p), Some(s));
        assert_eq!(s.encode(0).len(), HEADER, "never shorter than the header");
        assert_eq!(Stamp::decode(&p[..HEADER - 1]), None);
        assert_eq!(Stamp::decode(b"ringway-hold 0:1 and more bytes"), None);
    }

    #[test]
    fn seen_counts_each_message_once() {
        let mut s = Seen::new(130);
        assert!(!s.all());
        assert!(s.insert(0) && s.insert(64) && s.insert(129));
        assert!(!s.insert(64), "duplicate");
        assert!(!s.insert(130), "out of range");
        for k in 0..130 {
            s.insert(k);
        }
        assert!(s.all());
        assert!(Seen::new(0).all());
    }

    #[test]
    fn clock_is_monotonic_nanoseconds() {
        let a = mono_ns();
        std::thread::sleep(Duration::from_millis(2));
        let b = mono_ns();
        assert!(b - a >= 2_000_000, "{a} {b}");
    }

    #[test]
    fn options_and_bounds() {
        let (o, m) = crate::parse(
            "fanout",
            [
                "--target",
                "127.0.0.1:1",
                "--messages",
                "50",
                "--interval",
                "20ms",
                "--size",
                "32",
            ]
            .map(String::from)
            .to_vec(),
        )
        .unwrap();
        assert_eq!(o.n, 1000);
        let crate::Mode::Fanout(f) = m else {
            panic!("not fanout")
        };
        assert_eq!(
            (f.messages, f.interval, f.size),
            (50, Duration::from_millis(20), 32)
        );
        let io = Duration::from_secs(10);
        assert_eq!(f.idle(io), Duration::from_millis(10_020));
        assert_eq!(f.run_limit(io), Duration::from_millis(51 * 20 + 20_000));
        let d = FanoutOpts::default();
        assert_eq!((d.messages, d.interval), (100, Duration::from_millis(100)));
        for bad in ["8", "x", "999999999"] {
            assert!(
                crate::parse(
                    "fanout",
                    ["--target", "127.0.0.1:1", "--size", bad]
                        .map(String::from)
                        .to_vec()
                )
                .is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn children_merge() {
        let mut tot = Totals::default();
        for l in [
            r#"{"opened":2,"upgraded":2,"publisher":1,"failures":{},"hist":[]}"#,
            r#"{"opened":2,"upgraded":2,"publisher":0,"failures":{},"hist":[]}"#,
        ] {
            tot.add_open(&serde_json::from_str(l).unwrap());
        }
        let (mut a, mut b) = (Tally::default(), Tally::default());
        (1..=100).for_each(|v| a.hist.record_us(v));
        (101..=200).for_each(|v| b.hist.record_us(v));
        (a.received, a.published, a.publisher_copies, a.closed) = (100, 50, 50, 3);
        (b.received, b.foreign, b.closed) = (100, 4, 1);
        b.failures.add("deliver_timeout");
        for l in [a, b] {
            let line = serde_json::to_string(&l).unwrap();
            tot.add_done(&serde_json::from_str(&line).unwrap());
        }
        assert_eq!((tot.opened, tot.upgraded, tot.publishers), (4, 4, 1));
        assert_eq!((tot.received, tot.published, tot.foreign), (200, 50, 4));
        assert_eq!((tot.publisher_copies, tot.closed), (50, 4));
        assert_eq!((tot.hist.0.len(), tot.hist.max_ms()), (200, 0.2));
        assert_eq!(tot.exit_code(200), 1, "a failure");
        tot.failures = Counts::default();
        assert_eq!(tot.exit_code(200), 0);
        assert_eq!(tot.exit_code(201), 1, "one missing");
    }
}
