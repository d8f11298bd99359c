//! `ringway-load`: the load generator. One binary, one subcommand per mode;
//! the parent process spreads the connections over P child processes of
//! itself (so none nears the open-file limit and several cores can work)
//! and over several 127.0.0.x source addresses (so none runs out of
//! ephemeral ports), then merges what the children report.
//!
//! ```text
//! ringway-load MODE --target IP:PORT [common options] [mode options]
//!
//! modes:
//!   hold       open N WebSocket connections, print `holding N`, keep them
//!              idle for --hold, then check every one still echoes; close
//!   pingpong   N connections each send a binary message, wait for its echo,
//!              send the next: round trips/s and latency over --duration
//!   stream     N connections (default 1) each keep --window messages of
//!              --size in flight, reading echoes as they come: MB/s
//!   lowrate    N connections each send one message every --interval on
//!              their own timer and wait for its echo: messages/s against
//!              the offered rate, latency
//!   churn      N workers (default 50) each loop connect, upgrade, one echo,
//!              close handshake (client closes after the server's FIN):
//!              handshakes/s and cycle latency over --duration
//!   fanout     N subscribers on the echo's broadcast path (--path ending in
//!              /fanout, echo run with --threads 1); one publisher sends
//!              --messages stamped messages every --interval: deliveries
//!              and send-to-receive latency
//!   tlshs      N workers (default 50) each loop connect, TLS handshake, one
//!              plain HTTP GET of --path (default /health) with
//!              `Connection: close`, read the answer to the server's close:
//!              TLS handshakes/s, how many resumed, latency (needs --tls-ca)
//!
//! common options:
//!   --target IP:PORT          where to connect (required)
//!   --path /ws/               request path            --host H   Host header
//!   -n 1000                   connections in all
//!   --sources A-B[,C...]      IPv4 source addresses, round-robin
//!   --procs 4                 load processes          --concurrency 64 (per process)
//!   --connect-timeout 5s      --handshake-timeout 10s --io-timeout 10s
//!   --driver epoll|io_uring   the children's monoio driver (default epoll)
//!   --json                    the result as one JSON line (last line of stdout)
//!   --tls-ca FILE             connect over TLS, trusting the CA certificates
//!                             in FILE (PEM); every mode
//!   --tls-name NAME           the name the certificate must hold, sent as SNI
//!                             when a DNS name (default: the target's IP)
//!   --resume                  TLS: offer the sessions of earlier handshakes
//!                             (each load process keeps its own store; TLS 1.3
//!                             tickets); without it every handshake is full
//!   --h2                      WebSocket over HTTP/2 (RFC 8441): every
//!                             connection is an HTTP/2 connection (prior
//!                             knowledge, or ALPN h2 over TLS) with one
//!                             extended-CONNECT stream (hold, pingpong,
//!                             lowrate)
//! hold:
//!   --hold 10s                how long to hold after all are open
//!   --echo-first              echo one message on each connection as it
//!                             opens, before the hold (a tunnel that has
//!                             carried a message, not a fresh one)
//! pingpong, stream, lowrate (all start on the parent's word, once every
//! process has opened its connections; then --warmup, not counted, then
//! --duration):
//!   --size 64 | 1m            payload bytes per message (64k, 1m suffixes;
//!                             default 64 for pingpong and lowrate, 1m for
//!                             stream)
//!   --warmup 1s               --duration 10s
//! stream:
//!   --window 4                messages in flight per connection
//! lowrate:
//!   --interval 10ms           time between one connection's messages
//! churn, tlshs (start on the parent's word once every process is ready):
//!   --warmup 0s               --duration 10s
//! fanout:
//!   --messages 100            --interval 100ms        --size 64 (bytes, >= 20)
//! ```
//!
//! Exit status 0 when every connection did everything asked, 1 when some
//! failed (the report says which and how), 2 on a usage or setup error.
//! New modes (pingpong, stream, lowrate, churn, fanout, tlshs) add a module
//! with a parent and a child function and a line in [`Mode`].

mod churn;
mod fanout;
mod fleet;
mod hold;
mod lowrate;
mod pingpong;
mod stream;
mod tlshs;

use std::net::{Ipv4Addr, SocketAddr};

use anyhow::{anyhow, bail, Context};
use lexopt::prelude::*;
use ringway_bench::cli::{parse_duration, parse_sources};
use ringway_bench::client::Timeouts;
use ringway_bench::rt::Driver;
use ringway_bench::tls::{TlsArgs, TlsClient};

const USAGE: &str =
    "usage: ringway-load hold|pingpong|stream|lowrate|churn|fanout|tlshs --target IP:PORT [--path /ws/] [--host H] [-n N] \
[--sources A-B,...] [--procs P] [--concurrency C] [--connect-timeout 5s] [--handshake-timeout 10s] \
[--io-timeout 10s] [--driver epoll|io_uring] [--json] [--tls-ca FILE [--tls-name NAME] [--resume]] [--h2]\n\
  hold: [--hold 10s] [--echo-first]\n\
  pingpong: [--size 64] [--warmup 1s] [--duration 10s]\n\
  stream: [--size 1m] [--window 4] [--warmup 1s] [--duration 10s] (-n defaults to 1)\n\
  lowrate: [--size 64] [--interval 10ms] [--warmup 1s] [--duration 10s]\n\
  churn: [--warmup 0s] [--duration 10s] (-n workers, defaults to 50)\n\
  fanout: [--messages 100] [--interval 100ms] [--size 64] (--path must end in /fanout)\n\
  tlshs: --tls-ca FILE [--resume] [--warmup 0s] [--duration 10s] (-n workers, defaults to 50; --path defaults to /health)";

/// Options every mode shares.
#[derive(Debug, Clone)]
pub struct Opts {
    /// Where to connect.
    pub target: SocketAddr,
    /// `Host` header; the target by default.
    pub host: String,
    /// Request path.
    pub path: String,
    /// Connections in all (in a child: its own).
    pub n: usize,
    /// Source addresses; empty means the kernel's choice.
    pub sources: Vec<Ipv4Addr>,
    /// Load processes.
    pub procs: usize,
    /// Connections in flight per process while opening or verifying.
    pub concurrency: usize,
    /// Per-phase timeouts.
    pub timeouts: Timeouts,
    /// The children's runtime.
    pub driver: Driver,
    /// One JSON line instead of text.
    pub json: bool,
    /// TLS as asked on the command line; none: plain TCP.
    pub tls: Option<TlsArgs>,
    /// The TLS client built from `tls` (see [`Opts::build_tls`]).
    pub tls_client: Option<TlsClient>,
    /// WebSocket over HTTP/2 (RFC 8441): each connection an HTTP/2
    /// connection of its own with one extended-CONNECT stream.
    pub h2: bool,
    /// Set in a child: its slice.
    pub child: Option<fleet::Slice>,
}

impl Opts {
    /// The sources, for a human-readable report.
    pub fn sources_human(&self) -> String {
        match self.sources.len() {
            0 => "the default source".to_string(),
            n => format!("{n} source addresses"),
        }
    }

    /// The source address of global connection number `i`.
    pub fn source(&self, i: usize) -> Option<Ipv4Addr> {
        (!self.sources.is_empty()).then(|| self.sources[i % self.sources.len()])
    }

    /// Read the CA file and build this process's TLS client, when asked
    /// for TLS (the parent too, so a bad file fails before any child runs).
    pub fn build_tls(&mut self) -> anyhow::Result<()> {
        if let Some(args) = &self.tls {
            let c = TlsClient::new(args, self.target.ip()).map_err(|e| anyhow!(e))?;
            self.tls_client = Some(c);
        }
        Ok(())
    }

    /// The TLS client; none for plain TCP.
    pub fn tls(&self) -> Option<&TlsClient> {
        self.tls_client.as_ref()
    }
}

/// A mode and its own options.
enum Mode {
    Hold(hold::HoldOpts),
    Churn(churn::ChurnOpts),
    Fanout(fanout::FanoutOpts),
    Lowrate(lowrate::LowrateOpts),
    Pingpong(pingpong::PingpongOpts),
    Stream(stream::StreamOpts),
    Tlshs(tlshs::TlshsOpts),
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let code = match run(argv) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ringway-load: {e:#}");
            2
        }
    };
    std::process::exit(code);
}

fn run(argv: Vec<String>) -> anyhow::Result<i32> {
    let (is_child, rest) = match argv.first().map(String::as_str) {
        Some("__child") => (true, &argv[1..]),
        Some("-h" | "--help") | None => {
            println!("{USAGE}");
            return Ok(if argv.is_empty() { 2 } else { 0 });
        }
        _ => (false, &argv[..]),
    };
    let mode_name = rest.first().cloned().unwrap_or_default();
    let mode_args = rest[1..].to_vec();
    let (mut opts, mode) = parse(&mode_name, mode_args.clone())?;
    opts.build_tls()?;
    match (mode, is_child) {
        (Mode::Hold(h), false) => hold::parent(&opts, &h, &mode_args),
        (Mode::Hold(h), true) => hold::child(&opts, &h).map(|()| 0),
        (Mode::Churn(c), false) => churn::parent(&opts, &c, &mode_args),
        (Mode::Churn(c), true) => churn::child(&opts, &c).map(|()| 0),
        (Mode::Fanout(f), false) => fanout::parent(&opts, &f, &mode_args),
        (Mode::Fanout(f), true) => fanout::child(&opts, &f).map(|()| 0),
        (Mode::Lowrate(l), false) => lowrate::parent(&opts, &l, &mode_args),
        (Mode::Lowrate(l), true) => lowrate::child(&opts, &l).map(|()| 0),
        (Mode::Pingpong(p), false) => pingpong::parent(&opts, &p, &mode_args),
        (Mode::Pingpong(p), true) => pingpong::child(&opts, &p).map(|()| 0),
        (Mode::Stream(s), false) => stream::parent(&opts, &s, &mode_args),
        (Mode::Stream(s), true) => stream::child(&opts, &s).map(|()| 0),
        (Mode::Tlshs(t), false) => tlshs::parent(&opts, &t, &mode_args),
        (Mode::Tlshs(t), true) => tlshs::child(&opts, &t).map(|()| 0),
    }
}

fn parse(mode_name: &str, argv: Vec<String>) -> anyhow::Result<(Opts, Mode)> {
    let mut mode = match mode_name {
        "hold" => Mode::Hold(hold::HoldOpts::default()),
        "churn" => Mode::Churn(churn::ChurnOpts::default()),
        "fanout" => Mode::Fanout(fanout::FanoutOpts::default()),
        "lowrate" => Mode::Lowrate(lowrate::LowrateOpts::default()),
        "pingpong" => Mode::Pingpong(pingpong::PingpongOpts::default()),
        "stream" => Mode::Stream(stream::StreamOpts::default()),
        "tlshs" => Mode::Tlshs(tlshs::TlshsOpts::default()),
        other => bail!("unknown mode {other:?}\n{USAGE}"),
    };
    let mut target = None;
    let mut host = None;
    let (mut tls_ca, mut tls_name, mut resume) = (None, None, false);
    let mut o = Opts {
        target: SocketAddr::from(([127, 0, 0, 1], 0)),
        host: String::new(),
        path: if matches!(mode, Mode::Tlshs(_)) {
            "/health".into()
        } else {
            "/ws/".into()
        },
        // stream: one connection unless told otherwise; churn and tlshs:
        // 50 workers.
        n: match mode {
            Mode::Stream(_) => 1,
            Mode::Churn(_) | Mode::Tlshs(_) => 50,
            _ => 1000,
        },
        sources: Vec::new(),
        procs: 4,
        concurrency: 64,
        timeouts: Timeouts::default(),
        driver: Driver::Epoll,
        json: false,
        tls: None,
        tls_client: None,
        h2: false,
        child: None,
    };
    let mut p = lexopt::Parser::from_args(argv);
    let mut flags = || -> Result<(), lexopt::Error> {
        while let Some(arg) = p.next()? {
            match arg {
                Long("target") => target = Some(p.value()?.parse::<SocketAddr>()?),
                Long("host") => host = Some(p.value()?.string()?),
                Long("path") => o.path = p.value()?.string()?,
                Short('n') => o.n = p.value()?.parse()?,
                Long("sources") => o.sources = p.value()?.parse_with(parse_sources)?,
                Long("procs") => o.procs = p.value()?.parse::<usize>()?.max(1),
                Long("concurrency") => o.concurrency = p.value()?.parse::<usize>()?.max(1),
                Long("connect-timeout") => {
                    o.timeouts.connect = p.value()?.parse_with(parse_duration)?
                }
                Long("handshake-timeout") => {
                    o.timeouts.handshake = p.value()?.parse_with(parse_duration)?
                }
                Long("io-timeout") => o.timeouts.io = p.value()?.parse_with(parse_duration)?,
                Long("driver") => o.driver = p.value()?.parse()?,
                Long("json") => o.json = true,
                Long("tls-ca") => tls_ca = Some(p.value()?.into()),
                Long("tls-name") => tls_name = Some(p.value()?.string()?),
                Long("resume") => resume = true,
                Long("h2") => o.h2 = true,
                Long("child") => {
                    let (index, offset, n) = (
                        p.value()?.parse()?,
                        p.value()?.parse()?,
                        p.value()?.parse()?,
                    );
                    o.child = Some(fleet::Slice { index, offset, n });
                }
                Long(name) => {
                    let name = name.to_string();
                    let used = match &mut mode {
                        Mode::Hold(h) => h.flag(&name, &mut p)?,
                        Mode::Churn(c) => c.flag(&name, &mut p)?,
                        Mode::Fanout(f) => f.flag(&name, &mut p)?,
                        Mode::Lowrate(l) => l.flag(&name, &mut p)?,
                        Mode::Pingpong(x) => x.0.flag(&name, &mut p)?,
                        Mode::Stream(x) => x.flag(&name, &mut p)?,
                        Mode::Tlshs(t) => t.flag(&name, &mut p)?,
                    };
                    if !used {
                        return Err(format!("invalid option '--{name}'").into());
                    }
                }
                arg => return Err(arg.unexpected()),
            }
        }
        Ok(())
    };
    flags().map_err(|e| anyhow!("{e}\n{USAGE}"))?;
    o.target = target.context("--target IP:PORT is required")?;
    o.host = host.unwrap_or_else(|| o.target.to_string());
    o.tls = match (tls_ca, tls_name, resume) {
        (Some(ca), name, resume) => Some(TlsArgs {
            ca,
            name,
            resume,
            h2: o.h2,
        }),
        (None, None, false) if matches!(mode, Mode::Tlshs(_)) => {
            bail!("tlshs measures TLS handshakes: give --tls-ca FILE\n{USAGE}")
        }
        (None, None, false) => None,
        (None, ..) => bail!("--tls-name and --resume need --tls-ca FILE\n{USAGE}"),
    };
    if o.h2 && !matches!(mode, Mode::Hold(_) | Mode::Pingpong(_) | Mode::Lowrate(_)) {
        bail!("--h2 is for hold, pingpong and lowrate\n{USAGE}");
    }
    if let Some(c) = o.child {
        o.n = c.n;
    }
    Ok((o, mode))
}

#[cfg(test)]
mod tests {
    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn common_flags() {
        let (o, m) = crate::parse(
            "hold",
            args(&[
                "--target",
                "127.0.0.1:9",
                "-n",
                "8",
                "--sources",
                "127.0.0.2-127.0.0.3",
                "--procs",
                "0",
                "--io-timeout",
                "500ms",
                "--driver",
                "io_uring",
                "--hold=3s",
                "--json",
                "--child",
                "1",
                "4",
                "3",
            ]),
        )
        .unwrap();
        let crate::Mode::Hold(h) = m else {
            panic!("not hold")
        };
        assert_eq!(h.hold, std::time::Duration::from_secs(3));
        assert_eq!((o.host.as_str(), o.path.as_str()), ("127.0.0.1:9", "/ws/"));
        assert_eq!((o.n, o.procs, o.sources.len(), o.json), (3, 1, 2, true));
        assert_eq!(o.timeouts.io, std::time::Duration::from_millis(500));
        assert_eq!(o.driver, crate::Driver::IoUring);
        let c = o.child.unwrap();
        assert_eq!((c.index, c.offset, c.n), (1, 4, 3));

        let t = ["--target", "127.0.0.1:9"];
        assert!(
            crate::parse("hold", args(&["-n", "8"])).is_err(),
            "no target"
        );
        assert!(crate::parse("hold", args(&[&t[..], &["--window", "2"]].concat())).is_err());
        assert!(crate::parse("stream", args(&[&t[..], &["--window", "2"]].concat())).is_ok());
        assert!(crate::parse("hold", args(&[&t[..], &["extra"]].concat())).is_err());
        assert!(crate::parse("hold", args(&[&t[..], &["-n"]].concat())).is_err());
        assert!(crate::parse("nope", args(&t)).is_err());
    }

    #[test]
    fn tls_flags() {
        let t = ["--target", "127.0.0.1:9"];
        let (o, _) = crate::parse("pingpong", args(&t)).unwrap();
        assert!(o.tls.is_none() && o.tls().is_none());
        let (mut o, _) = crate::parse(
            "hold",
            args(
                &[
                    &t[..],
                    &["--tls-ca", "/nowhere/ca.pem", "--tls-name", "localhost"],
                ]
                .concat(),
            ),
        )
        .unwrap();
        let tls = o.tls.clone().unwrap();
        assert_eq!(tls.ca, std::path::PathBuf::from("/nowhere/ca.pem"));
        assert_eq!(
            (tls.name.as_deref(), tls.resume),
            (Some("localhost"), false)
        );
        let e = o.build_tls().unwrap_err().to_string();
        assert!(e.starts_with("--tls-ca /nowhere/ca.pem: "), "{e}");
        for lone in [&["--tls-name", "localhost"][..], &["--resume"]] {
            let e = crate::parse("stream", args(&[&t[..], lone].concat()));
            assert!(e.err().unwrap().to_string().contains("need --tls-ca"));
        }
        let ca = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/ca.pem");
        let (mut o, _) = crate::parse(
            "churn",
            args(&[&t[..], &["--tls-ca", ca, "--resume"]].concat()),
        )
        .unwrap();
        o.build_tls().unwrap();
        assert!(o.tls().is_some());
    }
}
