//! `tlshs`: what TLS handshakes cost a proxy. `-n` workers in all (split
//! over the load processes) each loop, until the window ends: TCP connect
//! from the next source address, TLS handshake (full, or with `--resume`
//! offering a session from the process's store), one plain HTTP/1.1 `GET`
//! of `--path` with `Connection: close`, read the answer until the server
//! closes (close_notify or FIN), check it is a whole `200`, close the
//! socket. The whole cycle is one handshake, timed and counted when it
//! completes inside the window; the handshake's own latency (connect start
//! to TLS established) is kept too, and how many handshakes the server
//! actually resumed (rustls's `HandshakeKind::Resumed`), and what was
//! negotiated (version, cipher suite, key exchange group).
//!
//! Runs like `churn` (its options, `ready`/`start`, aligned windows) and,
//! like it, leaves TIME_WAIT on the server's side: the server closes first
//! (it was asked to by `Connection: close`), the client after its EOF.

use std::cell::{Cell, RefCell};
use std::net::Ipv4Addr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::Context;
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use ringway_bench::client::{bounded, connect_from, Failure, Phase, What};
use ringway_bench::hist::Hist;
use ringway_bench::report::{r3, Counts};
use ringway_bench::rt;
use ringway_bench::tls::{Negotiated, TlsClient};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::fleet::{self, Fleet};
use crate::pingpong::Window;
use crate::Opts;

/// Slack added to every computed deadline.
const SLACK: Duration = Duration::from_secs(30);
/// How long children may take to exit after reporting.
const GRACE: Duration = Duration::from_secs(5);
/// Pause after a failed cycle, so a refusing target is not spun on.
const BACKOFF: Duration = Duration::from_millis(10);
/// Longest answer read.
const MAX_RESPONSE: usize = 64 << 10;

/// `tlshs`'s options: churn's (`--warmup`, `--duration`).
pub type TlshsOpts = crate::churn::ChurnOpts;

/// What a child's workers share.
struct Env {
    o: Opts,
    tls: TlsClient,
    window: Window,
    /// The request every cycle sends.
    request: Rc<[u8]>,
    /// Global connection index of the next cycle's source address.
    next_source: Cell<usize>,
    tally: RefCell<Tally>,
}

/// What a child counts; its `done` line, and merged, the parent's totals.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Tally {
    /// Cycles completed inside the window.
    handshakes: u64,
    /// Of those, handshakes the server resumed.
    resumed: u64,
    /// Cycles completed at any time.
    cycles: u64,
    failures: Counts,
    /// Whole cycles.
    hist: Hist,
    /// Connect start to TLS established.
    tls_hist: Hist,
    /// Parameters negotiated (`TLSv1_3 TLS13_AES_256_GCM_SHA384 X25519`),
    /// counted over the window's handshakes.
    negotiated: Counts,
}

impl Tally {
    fn add(&mut self, l: &Tally) {
        self.handshakes += l.handshakes;
        self.resumed += l.resumed;
        self.cycles += l.cycles;
        self.failures.merge(&l.failures);
        self.hist.merge(&l.hist);
        self.tls_hist.merge(&l.tls_hist);
        self.negotiated.merge(&l.negotiated);
    }

    fn per_sec(&self, d: Duration) -> f64 {
        if d.is_zero() {
            0.0
        } else {
            self.handshakes as f64 / d.as_secs_f64()
        }
    }

    /// Resumed handshakes per 100.
    fn resumed_pct(&self) -> f64 {
        if self.handshakes == 0 {
            0.0
        } else {
            100.0 * self.resumed as f64 / self.handshakes as f64
        }
    }
}

/// One completed cycle.
struct Cycle {
    /// Connect start to TLS established.
    tls: Duration,
    negotiated: Negotiated,
}

impl Env {
    fn source(&self) -> Option<Ipv4Addr> {
        let i = self.next_source.get();
        self.next_source.set(i.wrapping_add(1));
        self.o.source(i)
    }

    fn record(&self, began: Instant, done: Instant, c: &Cycle) {
        let mut t = self.tally.borrow_mut();
        t.cycles += 1;
        if self.window.measures(done) {
            t.handshakes += 1;
            t.resumed += u64::from(c.negotiated.resumed);
            t.hist.record(done.saturating_duration_since(began));
            t.tls_hist.record(c.tls);
            t.negotiated.add(&c.negotiated.params);
        }
    }
}

/// A child's `ready` line.
#[derive(Serialize, Deserialize)]
struct Ready {
    workers: usize,
}

/// `GET path` for `host`, asking the server to close after answering.
fn request(host: &str, path: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: ringway-load\r\n\
         Connection: close\r\n\r\n"
    )
    .into_bytes()
}

/// Check a whole answer, read to the server's close: a `200` whose body is
/// as long as its `Content-Length` says (when it says).
fn check_response(buf: &[u8]) -> Result<(), What> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut res = httparse::Response::new(&mut headers);
    let head = match res.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.is_empty() => return Err(What::Eof),
        _ => return Err(What::Protocol),
    };
    match res.code {
        Some(200) => {}
        Some(s) => return Err(What::Status(s)),
        None => return Err(What::Protocol),
    }
    let length = res
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"));
    if let Some(h) = length {
        let n: usize = std::str::from_utf8(h.value)
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .ok_or(What::Protocol)?;
        if buf.len() - head != n {
            return Err(What::Mismatch);
        }
    }
    Ok(())
}

/// Run the children, report. Returns the exit status.
pub fn parent(o: &Opts, c: &TlshsOpts, argv: &[String]) -> anyhow::Result<i32> {
    let (slices, _) = fleet::plan(o.n, o.procs, 0, "workers")?;
    let mut fleet = Fleet::spawn("tlshs", argv, &slices)?;
    fleet.collect::<Ready>("ready", Instant::now() + SLACK)?;
    fleet.broadcast("start")?;
    crate::pingpong::window_line(c.warmup, c.duration);
    let t = &o.timeouts;
    // After the window each worker finishes the cycle it is in: at most a
    // connect, a TLS handshake and a request.
    let after = t.connect + t.handshake + t.io;
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
    let resume = o.tls.as_ref().is_some_and(|t| t.resume);
    let (h, th) = (&tot.hist, &tot.tls_hist);
    if o.json {
        let r = json!({
            "mode": "tlshs",
            "target": o.target,
            "path": &o.path,
            "workers": o.n,
            "procs": slices.len(),
            "sources": o.sources.len(),
            "resume": resume,
            "warmup_secs": r3(c.warmup.as_secs_f64()),
            "duration_secs": r3(c.duration.as_secs_f64()),
            "handshakes": tot.handshakes,
            "handshakes_per_sec": r3(rate),
            "resumed": tot.resumed,
            "resumed_pct": r3(tot.resumed_pct()),
            "cycles_total": tot.cycles,
            "p50_ms": h.ms(0.5),
            "p99_ms": h.ms(0.99),
            "p999_ms": h.ms(0.999),
            "max_ms": h.max_ms(),
            "mean_ms": r3(h.mean_ms()),
            "tls_p50_ms": th.ms(0.5),
            "tls_p99_ms": th.ms(0.99),
            "negotiated": tot.negotiated,
            "errors": errors,
            "failures": tot.failures,
        });
        println!("{}", serde_json::to_string(&r)?);
    } else {
        let sources = o.sources_human();
        println!(
            "tlshs: {} workers against {}{} from {sources} in {} processes, {} handshakes",
            o.n,
            o.target,
            o.path,
            slices.len(),
            if resume { "resuming" } else { "full" },
        );
        println!(
            "  run      {:.1}s warmup + {:.1}s measured: {} handshakes, {rate:.0}/s, \
             {} resumed ({:.1}%) ({} cycles in all)",
            c.warmup.as_secs_f64(),
            c.duration.as_secs_f64(),
            tot.handshakes,
            tot.resumed,
            tot.resumed_pct(),
            tot.cycles,
        );
        println!(
            "  tls      connect+handshake p50 {:.3}ms p99 {:.3}ms",
            th.ms(0.5),
            th.ms(0.99)
        );
        println!(
            "  cycle    connect+handshake+request+close p50 {:.3}ms p99 {:.3}ms \
             p999 {:.3}ms max {:.3}ms mean {:.3}ms",
            h.ms(0.5),
            h.ms(0.99),
            h.ms(0.999),
            h.max_ms(),
            h.mean_ms(),
        );
        println!("  params   {}", tot.negotiated.human());
        println!("  failures {}", tot.failures.human());
    }
    Ok(i32::from(errors != 0 || tot.handshakes == 0))
}

/// One load process: report ready, wait for `start`, run its workers
/// through the window, report.
pub fn child(o: &Opts, c: &TlshsOpts) -> anyhow::Result<()> {
    fleet::child_init();
    rt::raise_nofile();
    let slice = o.child.context("not a child")?;
    let tls = o.tls().cloned().context("tlshs needs --tls-ca")?;
    let (o, c) = (o.clone(), c.clone());
    rt::block_on(o.driver, async move {
        fleet::send("ready", &Ready { workers: o.n });
        if fleet::command().as_deref() != Some("start") {
            return;
        }
        let env = Rc::new(Env {
            window: Window::after(Instant::now(), c.warmup, c.duration),
            request: request(&o.host, &o.path).into(),
            next_source: Cell::new(slice.offset),
            tally: RefCell::new(Tally::default()),
            tls,
            o,
        });
        let workers: Vec<_> = (0..env.o.n)
            .map(|_| monoio::spawn(worker(env.clone())))
            .collect();
        for w in workers {
            w.await;
        }
        fleet::send("done", &env.tally.take());
    })?;
    Ok(())
}

/// Cycle until the window is over.
async fn worker(env: Rc<Env>) {
    while !env.window.over(Instant::now()) {
        let began = Instant::now();
        match cycle(&env, env.source()).await {
            Ok(c) => env.record(began, Instant::now(), &c),
            Err(f) => {
                env.tally.borrow_mut().failures.add(&f.key());
                monoio::time::sleep(BACKOFF).await;
            }
        }
    }
}

/// One connection's life: connect, TLS handshake, request, the answer to
/// the server's close.
async fn cycle(env: &Env, src: Option<Ipv4Addr>) -> Result<Cycle, Failure> {
    let (o, t0) = (&env.o, Instant::now());
    let tcp = bounded(Phase::Connect, o.timeouts.connect, async {
        connect_from(src, o.target).await.map_err(What::from)
    })
    .await?;
    let mut s = bounded(Phase::Tls, o.timeouts.handshake, env.tls.connect(tcp)).await?;
    let tls = t0.elapsed();
    bounded(Phase::Request, o.timeouts.io, async {
        let (r, _) = s.write_all(env.request.to_vec()).await;
        r?;
        check_response(&read_to_close(&mut s).await?)
    })
    .await?;
    let negotiated = Negotiated::of(&s.into_parts().1);
    Ok(Cycle { tls, negotiated })
    // The socket closes here, after the server's.
}

/// Everything the server sends until it closes: close_notify, or a FIN
/// without one (a truncation attack in general, but the answer's length is
/// checked).
async fn read_to_close<R: AsyncReadRent>(s: &mut R) -> Result<Vec<u8>, What> {
    let mut buf = Vec::with_capacity(1024);
    loop {
        if buf.len() == buf.capacity() {
            if buf.len() >= MAX_RESPONSE {
                return Err(What::Protocol);
            }
            buf.reserve(buf.len());
        }
        let len = buf.len();
        let (r, slice) = s.read(buf.slice_mut(len..)).await;
        buf = slice.into_inner();
        match r.map_err(What::from) {
            Ok(0) | Err(What::Eof) => return Ok(buf),
            Ok(_) => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_and_defaults() {
        let t = ["--target", "127.0.0.1:1"];
        let e = crate::parse("tlshs", args(&t)).err().unwrap().to_string();
        assert!(e.contains("--tls-ca"), "{e}");
        let (o, m) = crate::parse(
            "tlshs",
            args(
                &[
                    &t[..],
                    &["--tls-ca", "ca.pem", "--resume", "--duration", "3s"],
                ]
                .concat(),
            ),
        )
        .unwrap();
        let crate::Mode::Tlshs(c) = m else {
            panic!("not tlshs")
        };
        assert_eq!((o.n, o.path.as_str()), (50, "/health"));
        assert_eq!(c.duration, Duration::from_secs(3));
        let tls = o.tls.unwrap();
        assert_eq!(tls.ca, std::path::PathBuf::from("ca.pem"));
        assert_eq!((tls.name, tls.resume), (None, true));
    }

    #[test]
    fn request_and_answers() {
        assert_eq!(
            request("localhost", "/health"),
            b"GET /health HTTP/1.1\r\nHost: localhost\r\nUser-Agent: ringway-load\r\n\
              Connection: close\r\n\r\n"
        );
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK";
        assert_eq!(check_response(ok), Ok(()));
        assert_eq!(check_response(&ok[..ok.len() - 1]), Err(What::Mismatch));
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nOK\r\n0\r\n\r\n";
        assert_eq!(check_response(chunked), Ok(()));
        let missing = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(check_response(missing), Err(What::Status(404)));
        assert_eq!(check_response(b""), Err(What::Eof));
        assert_eq!(check_response(b"HTTP/1.1 200 OK\r\n"), Err(What::Protocol));
        assert_eq!(check_response(b"nonsense\r\n\r\n"), Err(What::Protocol));
        let bad_len = b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n";
        assert_eq!(check_response(bad_len), Err(What::Protocol));
    }

    #[test]
    fn children_merge() {
        let (mut a, mut b) = (Tally::default(), Tally::default());
        (1..=100).for_each(|v| a.hist.record_us(v));
        (101..=300).for_each(|v| b.tls_hist.record_us(v));
        (a.handshakes, a.resumed, a.cycles) = (100, 90, 110);
        (b.handshakes, b.resumed, b.cycles) = (200, 180, 205);
        a.negotiated.add("TLSv1_3 TLS13_AES_256_GCM_SHA384 X25519");
        b.negotiated.add("TLSv1_3 TLS13_AES_256_GCM_SHA384 X25519");
        b.failures.add("tls_alert");
        let mut tot = Tally::default();
        for l in [a, b] {
            let line = serde_json::to_string(&l).unwrap();
            tot.add(&serde_json::from_str(&line).unwrap());
        }
        assert_eq!((tot.handshakes, tot.resumed, tot.cycles), (300, 270, 315));
        assert_eq!((tot.hist.0.len(), tot.tls_hist.0.len()), (100, 200));
        assert_eq!(tot.resumed_pct(), 90.0);
        assert_eq!(tot.negotiated.total(), 2);
        assert_eq!(tot.failures.0["tls_alert"], 1);
        assert_eq!(tot.per_sec(Duration::from_secs(3)), 100.0);
        assert_eq!(Tally::default().resumed_pct(), 0.0);
    }
}
