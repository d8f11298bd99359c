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
//! ```
//!
//! Exit status 0 when every connection did everything asked, 1 when some
//! failed (the report says which and how), 2 on a usage or setup error.
//! New modes (pingpong, stream, churn, fanout) add a module with a parent
//! and a child function and a line in [`Mode`].

mod fleet;
mod hold;

use std::net::{Ipv4Addr, SocketAddr};

use anyhow::{bail, Context};
use ringway_bench::cli::{parse_duration, parse_sources, Args};
use ringway_bench::client::Timeouts;
use ringway_bench::rt::Driver;

const USAGE: &str = "usage: ringway-load hold --target IP:PORT [--path /ws/] [--host H] [-n N] \
[--sources A-B,...] [--procs P] [--concurrency C] [--connect-timeout 5s] [--handshake-timeout 10s] \
[--io-timeout 10s] [--driver epoll|io_uring] [--json] [--hold 10s]";

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
    /// The source address of global connection number `i`.
    pub fn source(&self, i: usize) -> Option<Ipv4Addr> {
        (!self.sources.is_empty()).then(|| self.sources[i % self.sources.len()])
    }
}

/// A mode and its own options.
enum Mode {
    Hold(hold::HoldOpts),
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
    }
}

fn parse(mode_name: &str, argv: Vec<String>) -> anyhow::Result<(Opts, Mode)> {
    let mut mode = match mode_name {
        "hold" => Mode::Hold(hold::HoldOpts::default()),
        other => bail!("unknown mode {other:?}\n{USAGE}"),
    };
    let mut target = None;
    let mut host = None;
    let mut o = Opts {
        target: SocketAddr::from(([127, 0, 0, 1], 0)),
        host: String::new(),
        path: "/ws/".into(),
        n: 1000,
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
