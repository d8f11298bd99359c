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
//!   churn      N workers (default 50) each loop connect, upgrade, one echo,
//!              close handshake (client closes after the server's FIN):
//!              handshakes/s and cycle latency over --duration
//!   fanout     N subscribers on the echo's broadcast path (--path ending in
//!              /fanout, echo run with --threads 1); one publisher sends
//!              --messages stamped messages every --interval: deliveries
//!              and send-to-receive latency
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
//! hold:
//!   --hold 10s                how long to hold after all are open
//! pingpong, stream (all start on the parent's word, once every process has
//! opened its connections; then --warmup, not counted, then --duration):
//!   --size 64 | 1m            payload bytes per message (64k, 1m suffixes;
//!                             default 64 for pingpong, 1m for stream)
//!   --warmup 1s               --duration 10s
//! stream:
//!   --window 4                messages in flight per connection
//! churn (starts on the parent's word once every process is ready):
//!   --warmup 0s               --duration 10s
//! fanout:
//!   --messages 100            --interval 100ms        --size 64 (bytes, >= 20)
//! ```
//!
//! Exit status 0 when every connection did everything asked, 1 when some
//! failed (the report says which and how), 2 on a usage or setup error.
//! New modes (pingpong, stream, churn, fanout) add a module with a parent
//! and a child function and a line in [`Mode`].

mod churn;
mod fanout;
mod fleet;
mod hold;
mod pingpong;
mod stream;

use std::net::{Ipv4Addr, SocketAddr};

use anyhow::{bail, Context};
use ringway_bench::cli::{parse_duration, parse_sources, Args};
use ringway_bench::client::Timeouts;
use ringway_bench::rt::Driver;

const USAGE: &str =
    "usage: ringway-load hold|pingpong|stream|churn|fanout --target IP:PORT [--path /ws/] [--host H] [-n N] \
[--sources A-B,...] [--procs P] [--concurrency C] [--connect-timeout 5s] [--handshake-timeout 10s] \
[--io-timeout 10s] [--driver epoll|io_uring] [--json] [--hold 10s]\n\
  pingpong: [--size 64] [--warmup 1s] [--duration 10s]\n\
  stream: [--size 1m] [--window 4] [--warmup 1s] [--duration 10s] (-n defaults to 1)\n\
  churn: [--warmup 0s] [--duration 10s] (-n workers, defaults to 50)\n\
  fanout: [--messages 100] [--interval 100ms] [--size 64] (--path must end in /fanout)";

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
}

/// A mode and its own options.
enum Mode {
    Hold(hold::HoldOpts),
    Churn(churn::ChurnOpts),
    Fanout(fanout::FanoutOpts),
    Pingpong(pingpong::PingpongOpts),
    Stream(stream::StreamOpts),
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
    let (opts, mode) = parse(&mode_name, mode_args.clone())?;
    match (mode, is_child) {
        (Mode::Hold(h), false) => hold::parent(&opts, &h, &mode_args),
        (Mode::Hold(h), true) => hold::child(&opts, &h).map(|()| 0),
        (Mode::Churn(c), false) => churn::parent(&opts, &c, &mode_args),
        (Mode::Churn(c), true) => churn::child(&opts, &c).map(|()| 0),
        (Mode::Fanout(f), false) => fanout::parent(&opts, &f, &mode_args),
        (Mode::Fanout(f), true) => fanout::child(&opts, &f).map(|()| 0),
        (Mode::Pingpong(p), false) => pingpong::parent(&opts, &p, &mode_args),
        (Mode::Pingpong(p), true) => pingpong::child(&opts, &p).map(|()| 0),
        (Mode::Stream(s), false) => stream::parent(&opts, &s, &mode_args),
        (Mode::Stream(s), true) => stream::child(&opts, &s).map(|()| 0),
    }
}

fn parse(mode_name: &str, argv: Vec<String>) -> anyhow::Result<(Opts, Mode)> {
    let mut mode = match mode_name {
        "hold" => Mode::Hold(hold::HoldOpts::default()),
        "churn" => Mode::Churn(churn::ChurnOpts::default()),
        "fanout" => Mode::Fanout(fanout::FanoutOpts::default()),
        "pingpong" => Mode::Pingpong(pingpong::PingpongOpts::default()),
        "stream" => Mode::Stream(stream::StreamOpts::default()),
        other => bail!("unknown mode {other:?}\n{USAGE}"),
    };
    let mut target = None;
    let mut host = None;
    let mut o = Opts {
        target: SocketAddr::from(([127, 0, 0, 1], 0)),
        host: String::new(),
        path: "/ws/".into(),
        // stream: one connection unless told otherwise; churn: 50 workers.
        n: if matches!(mode, Mode::Stream(_)) {
            1
        } else if matches!(mode, Mode::Churn(_)) {
            50
        } else {
            1000
        },
        sources: Vec::new(),
        procs: 4,
        concurrency: 64,
        timeouts: Timeouts::default(),
        driver: Driver::Epoll,
        json: false,
        child: None,
    };
    let mut args = Args::new(argv);
    while let Some(flag) = args.next_flag() {
        let f = flag.as_str();
        match f {
            "--target" => target = Some(args.value::<SocketAddr>(f)?),
            "--host" => host = Some(args.raw(f)?),
            "--path" => o.path = args.raw(f)?,
            "-n" => o.n = args.value(f)?,
            "--sources" => o.sources = args.with(f, parse_sources)?,
            "--procs" => o.procs = args.value::<usize>(f)?.max(1),
            "--concurrency" => o.concurrency = args.value::<usize>(f)?.max(1),
            "--connect-timeout" => o.timeouts.connect = args.with(f, parse_duration)?,
            "--handshake-timeout" => o.timeouts.handshake = args.with(f, parse_duration)?,
            "--io-timeout" => o.timeouts.io = args.with(f, parse_duration)?,
            "--driver" => o.driver = args.value(f)?,
            "--json" => o.json = true,
            "--child" => {
                let (index, offset, n) = (args.value(f)?, args.value(f)?, args.value(f)?);
                o.child = Some(fleet::Slice { index, offset, n });
            }
            _ => {
                let used = match &mut mode {
                    Mode::Hold(h) => h.flag(f, &mut args)?,
                    Mode::Churn(c) => c.flag(f, &mut args)?,
                    Mode::Fanout(x) => x.flag(f, &mut args)?,
                    Mode::Pingpong(p) => p.flag(f, &mut args)?,
                    Mode::Stream(s) => s.flag(f, &mut args)?,
                };
                if !used {
                    bail!("unknown argument {f:?}\n{USAGE}");
                }
            }
        }
    }
    o.target = target.context("--target IP:PORT is required")?;
    o.host = host.unwrap_or_else(|| o.target.to_string());
    if let Some(c) = o.child {
        o.n = c.n;
    }
    Ok((o, mode))
}
