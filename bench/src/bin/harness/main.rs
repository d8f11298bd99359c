//! `ringway-harness`: the side-by-side benchmark. For each scenario it
//! runs the same load against the echo backend directly (the ceiling),
//! through nginx (and, where its buffer sizes matter, through nginx with
//! larger ones: `nginx tuned`), and through ringway on io_uring and on
//! epoll — fresh processes each time, targets alternating round by round —
//! and measures the load's own numbers plus the proxy's CPU seconds (user
//! and system), RSS, descriptors and io_uring worker threads from /proc.
//! With `--syscalls`, a separate pass after the timed rounds runs the echo
//! scenarios (pingpong, lowrate) once more per proxy under `strace -c` and
//! counts system calls per relayed message; those runs are never timed. The
//! TLS scenarios (`tls-handshake`, `tls-resume`, `wss-pingpong`,
//! `wss-stream`, `wss-hold`) run the client side over TLS to the proxy
//! (not `direct`), with a certificate the `openssl` CLI makes per run. It
//! writes a markdown report (tables with ratios to nginx and nginx tuned,
//! the exact commands) and an SVG chart.
//!
//! The HTTP/2 scenarios (`--h2` runs just them and merges their sections
//! into an existing report): `h2-return`, `h2-proxy`, `h2-static` (h2load
//! over TLS with ALPN h2 against nginx `listen ... ssl http2` and ringway
//! `http2 = true`), the same three in h2c (`h2c-*`), `h2ws-pingpong` and
//! `h2ws-hold` (RFC 8441 WebSockets from `ringway-load --h2`, against
//! HAProxy and ringway: nginx has no RFC 8441), and `h1wss-hold`, the
//! HTTP/1.1 twin of `h2ws-hold` for comparison.
//!
//! ```text
//! ringway-harness [--quick] [--h2] [--scenarios pingpong,lowrate,stream,churn,hold,fanout,http,
//!                  tls-handshake,tls-resume,wss-pingpong,wss-stream,wss-hold,h2-return,
//!                  h2-proxy,h2-static,h2c-return,h2c-proxy,h2c-static,h2ws-pingpong,
//!                  h2ws-hold,h1wss-hold]
//!                 [--targets direct,nginx,nginx-tuned,haproxy,ringway-io_uring,ringway-epoll]
//!                 [--syscalls] [--rounds N] [--workers N] [--merge] [--out FILE.md]
//!                 [--chart FILE.svg]
//! ```
//!
//! `scripts/bench.sh` builds everything, installs nginx, wrk and strace
//! when missing, and runs this. Proxies run on the last `--workers` CPUs,
//! the backend and the load generator on the others.

mod procs;
mod report;
mod scenarios;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{anyhow, Context};
use lexopt::prelude::*;
use report::{Bar, Sample};
use scenarios::{Pass, Scenario, Setup, Target};

const USAGE: &str = "usage: ringway-harness [--quick] [--h2] [--scenarios LIST] [--targets LIST] \
[--syscalls] [--rounds N] [--workers N] [--merge] [--out FILE.md] [--chart FILE.svg]
  scenarios: pingpong,lowrate,stream,churn,hold,fanout,http,tls-handshake,tls-resume,
             wss-pingpong,wss-stream,wss-hold,h2-return,h2-proxy,h2-static,h2c-return,
             h2c-proxy,h2c-static,h2ws-pingpong,h2ws-hold,h1wss-hold (default: all; with
             --quick all but tls-resume, wss-pingpong, wss-stream and of the HTTP/2 ones all
             but h2-proxy, h2ws-pingpong and h2ws-hold; http needs wrk, h2-* and h2c-* h2load,
             the TLS ones openssl)
  targets:   direct,nginx,nginx-tuned,haproxy,ringway-io_uring,ringway-epoll (default: all;
             nginx and haproxy when installed; nginx-tuned only in pingpong, lowrate and
             stream; haproxy only in h2ws-* and h1wss-hold)
  --h2       the HTTP/2 scenarios only (unless --scenarios), merged into the report
             (--merge)
  --merge    replace (or add) this run's scenario sections in the existing --out file,
             each marked with this command, and leave the rest and the chart alone
  --syscalls after the timed rounds of pingpong and lowrate, one more run per proxy
             (not nginx-tuned) under strace -c: system calls per relayed message";

struct Opts {
    quick: bool,
    merge: bool,
    h2: bool,
    syscalls: bool,
    /// Empty: [`Scenario::defaults`].
    scenarios: Vec<String>,
    targets: Vec<Target>,
    rounds: usize,
    workers: usize,
    out: PathBuf,
    chart: PathBuf,
}

fn parse() -> anyhow::Result<Opts> {
    let mut o = Opts {
        quick: false,
        merge: false,
        h2: false,
        syscalls: false,
        scenarios: Vec::new(),
        targets: Target::ALL.to_vec(),
        rounds: 0,
        workers: 1,
        out: PathBuf::new(),
        chart: PathBuf::new(),
    };
    let mut p = lexopt::Parser::from_env();
    let mut flags = || -> Result<(), lexopt::Error> {
        while let Some(arg) = p.next()? {
            match arg {
                Long("quick") => o.quick = true,
                Long("merge") => o.merge = true,
                Long("h2") => o.h2 = true,
                Long("syscalls") => o.syscalls = true,
                Long("scenarios") => {
                    o.scenarios = p
                        .value()?
                        .string()?
                        .split(',')
                        .map(str::to_string)
                        .collect();
                    for s in &o.scenarios {
                        if !Scenario::NAMES.contains(&s.as_str()) {
                            return Err(format!("unknown scenario {s:?}").into());
                        }
                    }
                }
                Long("targets") => {
                    o.targets = (p.value()?.string()?.split(','))
                        .map(|t| Target::parse(t).ok_or(format!("unknown target {t:?}")))
                        .collect::<Result<_, _>>()?;
                }
                Long("rounds") => o.rounds = p.value()?.parse()?,
                Long("workers") => o.workers = p.value()?.parse::<usize>()?.max(1),
                Long("out") => o.out = p.value()?.into(),
                Long("chart") => o.chart = p.value()?.into(),
                Short('h') | Long("help") => {
                    println!("{USAGE}");
                    std::process::exit(0);
                }
                arg => return Err(arg.unexpected()),
            }
        }
        Ok(())
    };
    flags().map_err(|e| anyhow!("{e}\n{USAGE}"))?;
    if o.h2 {
        o.merge = true;
        if o.scenarios.is_empty() {
            o.scenarios = (Scenario::defaults(o.quick).into_iter())
                .filter(|n| Scenario::HTTP2.contains(n))
                .map(str::to_string)
                .collect();
        }
    }
    if o.scenarios.is_empty() {
        o.scenarios = (Scenario::defaults(o.quick).into_iter())
            .map(str::to_string)
            .collect();
    }
    if o.rounds == 0 {
        o.rounds = if o.quick { 1 } else { 2 };
    }
    if o.out.as_os_str().is_empty() {
        o.out = if o.quick {
            "target/bench-quick/RESULTS.md".into()
        } else {
            "bench/RESULTS.md".into()
        };
    }
    if o.chart.as_os_str().is_empty() {
        o.chart = o.out.with_file_name("chart.svg");
    }
    Ok(o)
}

fn main() {
    match run() {
        Ok(0) => {}
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("ringway-harness: {e:#}");
            std::process::exit(2);
        }
    }
}

fn run() -> anyhow::Result<i32> {
    let o = parse()?;
    let started = Instant::now();
    let mut setup = Setup::new(o.quick, o.workers)?;
    let mut targets = o.targets.clone();
    if !setup.has_nginx {
        eprintln!("nginx is not installed: running without it (scripts/bench.sh installs it)");
        targets.retain(|t| !matches!(t, Target::Nginx | Target::NginxTuned));
    }
    if !setup.has_haproxy && targets.contains(&Target::Haproxy) {
        eprintln!("haproxy is not installed: running without it (scripts/bench.sh installs it)");
        targets.retain(|t| *t != Target::Haproxy);
    }
    if o.syscalls && !setup.has_strace {
        eprintln!("strace is not installed: no system call counts (scripts/bench.sh installs it)");
    }
    eprintln!(
        "cpus: proxy {:?}, backend + load {:?}; {} round(s); {}",
        setup.proxy_cpus,
        setup.load_cpus,
        o.rounds,
        if o.quick { "quick" } else { "full" }
    );

    let mut sections = Vec::new();
    let mut bars = Vec::new();
    let mut failed = 0;
    for name in &o.scenarios {
        let sc = Scenario::new(name, o.quick);
        if sc.needs_wrk && !setup.has_wrk {
            eprintln!("{name}: wrk is not installed; skipped");
            sections.push(format!("## {name}\n\nSkipped: wrk is not installed.\n"));
            continue;
        }
        if sc.needs_h2load && !setup.has_h2load {
            eprintln!("{name}: h2load is not installed; skipped");
            sections.push(format!(
                "## {name}\n\nSkipped: h2load (nghttp2-client) is not installed.\n"
            ));
            continue;
        }
        if sc.tls && !setup.has_openssl {
            eprintln!("{name}: openssl is not installed (no certificate); skipped");
            sections.push(format!(
                "## {name}\n\nSkipped: openssl is not installed (no certificate).\n"
            ));
            continue;
        }
        let mut per_target: Vec<(Target, Vec<Sample>)> = (targets.iter())
            .filter(|t| sc.runs(**t))
            .map(|t| (*t, Vec::new()))
            .collect();
        for round in 0..o.rounds {
            // Alternate: each round starts with the next target.
            let n = per_target.len();
            for k in 0..n {
                let i = (k + round) % n;
                let t = per_target[i].0;
                eprint!("{name} round {} {} ... ", round + 1, t.label());
                if let Some(s) = attempt(&mut setup, &sc, t, Pass::Timed, &mut failed) {
                    per_target[i].1.push(s);
                }
            }
        }
        let medians: Vec<(String, Sample)> = per_target
            .iter()
            .map(|(t, s)| (t.label().to_string(), report::median(s)))
            .collect();
        let nginx = medians.iter().find(|(n, _)| n == "nginx").map(|(_, s)| s);
        let head = &sc.metrics[0];
        for (label, s) in &medians {
            if !label.starts_with("ringway") {
                continue;
            }
            if let Some(v) = report::advantage(
                head,
                s.get(&head.key).copied(),
                nginx.and_then(|n| n.get(&head.key).copied()),
            ) {
                bars.push(Bar {
                    label: format!("{name}: {} ({label})", head.label),
                    value: v,
                });
            }
        }
        let alone = if o.merge {
            format!(
                "_From a run of these sections alone, not the run the header describes: \
                 `{}`, {}, median of {} round(s)._\n\n",
                std::env::args().collect::<Vec<_>>().join(" "),
                setup.versions(),
                o.rounds
            )
        } else {
            String::new()
        };
        let mut section = format!(
            "## {name}\n\n{alone}{}\n\nLoad: `{}`\n\n{}",
            sc.about,
            sc.load_command("ADDR"),
            report::table(&sc.metrics, &medians)
        );
        if o.syscalls && sc.syscalls {
            section.push_str(&syscalls_section(&mut setup, &sc, &targets, &mut failed));
        }
        sections.push(section);
    }

    let cmdline = std::env::args().collect::<Vec<_>>().join(" ");
    if let Some(dir) = o.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if o.merge {
        let doc = std::fs::read_to_string(&o.out).unwrap_or_default();
        let doc = if doc.is_empty() {
            setup.document(&cmdline, o.rounds, &[], started.elapsed(), &o.chart)
        } else {
            doc
        };
        let md = report::merge_sections(&doc, &sections);
        std::fs::write(&o.out, md).with_context(|| format!("write {}", o.out.display()))?;
        eprintln!(
            "merged {} section(s) into {} in {:.0} s",
            sections.len(),
            o.out.display(),
            started.elapsed().as_secs_f64()
        );
        return Ok(if failed > 0 { 1 } else { 0 });
    }
    let md = setup.document(&cmdline, o.rounds, &sections, started.elapsed(), &o.chart);
    std::fs::write(&o.out, md).with_context(|| format!("write {}", o.out.display()))?;
    std::fs::write(
        &o.chart,
        report::svg(
            "ringway vs nginx, one worker each (× better than nginx)",
            &bars,
        ),
    )?;
    eprintln!(
        "wrote {} and {} in {:.0} s",
        o.out.display(),
        o.chart.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(if failed > 0 { 1 } else { 0 })
}

/// One run, its progress line, and its failures counted into `failed`.
fn attempt(
    setup: &mut Setup,
    sc: &Scenario,
    t: Target,
    pass: Pass,
    failed: &mut usize,
) -> Option<Sample> {
    match setup.run(sc, t, pass) {
        Ok(s) => {
            eprintln!("{}", sc.summary(&s));
            if s.get("errors").copied().unwrap_or(0.0) > 0.0 {
                *failed += 1;
            }
            Some(s)
        }
        Err(e) => {
            eprintln!("failed: {e:#}");
            *failed += 1;
            None
        }
    }
}

/// The strace pass of one scenario, after its timed rounds: one run per
/// proxy among `targets` (`nginx tuned` left out: buffer sizes do not
/// change a 64-byte message's calls), as a markdown subsection.
fn syscalls_section(
    setup: &mut Setup,
    sc: &Scenario,
    targets: &[Target],
    failed: &mut usize,
) -> String {
    let head = "\n### system calls per relayed message\n\n";
    if !setup.has_strace {
        return format!("{head}Skipped: strace is not installed.\n");
    }
    let mut traced: Vec<(String, Sample)> = Vec::new();
    for &t in targets {
        if matches!(t, Target::Direct | Target::NginxTuned) || !sc.runs(t) {
            continue;
        }
        eprint!("{} syscalls {} ... ", sc.name, t.label());
        if let Some(s) = attempt(setup, sc, t, Pass::Syscalls, failed) {
            traced.push((t.label().to_string(), s));
        }
    }
    let relayed: Vec<String> = (traced.iter())
        .map(|(t, s)| format!("{t} {}", report::num(s.get("relayed").copied(), 0)))
        .collect();
    format!(
        "{head}A separate run per proxy after the timed ones, never mixed with them: \
         `strace -c -f -p PID` attached to every thread of the proxy's workers from the \
         load's warmup to the end of its measured window ({}), calls divided by the \
         messages relayed while attached (each echo crosses the proxy twice; the count \
         of the window scaled to the time traced, so good to a few per cent). strace runs \
         on the proxy's CPU and stops the proxy on every call, so these runs are far \
         slower than the timed ones; only the counts mean anything, and calls that batch \
         (`epoll_wait`, `io_uring_enter`) batch differently at that pace. Operations \
         submitted through `io_uring_enter` are not system calls of their own and do not \
         show. Messages relayed while traced: {}.\n\n{}",
        scenarios::TRACE_WINDOW,
        relayed.join(", "),
        report::table(&report::syscall_metrics(&traced), &traced)
    )
}
