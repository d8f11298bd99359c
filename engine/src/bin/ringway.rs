//! The `ringway` binary: command line, logging, then the runtime.
//!
//!     ringway -c ringway.toml              run in the foreground
//!     ringway -t -c ringway.toml           test the configuration
//!     ringway -T -c ringway.toml           test it and print it, defaults filled in
//!     ringway -c ringway.toml --workers 1  override [runtime].workers
//!     ringway -v                           the version, commit and build profile
//!     ringway upgrade [-c FILE] [--binary PATH]
//!                                          hand everything to a new binary
//!     ringway import [-o OUT] [--strict] [--prefix DIR] nginx.conf
//!                                          convert an nginx configuration

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use ringway_config::Workers;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What the command line asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Run,
    /// `-t`: test the configuration.
    Test,
    /// `-T`: test it, then print it with every default filled in.
    TestAndDump,
}

struct Args {
    config: PathBuf,
    mode: Mode,
    workers: Option<usize>,
}

/// `ringway -h`. A plain literal, not `\`-continued lines, which would eat
/// the options' indentation.
const USAGE: &str = "usage: ringway [-t | -T] [-c FILE] [--workers N]
       ringway upgrade [-c FILE] [--binary PATH]
       ringway import [-o OUT.toml] [--strict] [--prefix DIR] nginx.conf
       ringway -v | -h

options:
  -c, --config FILE   configuration file (default: ringway.toml)
  -t, --test          test the configuration and exit
  -T, --test-dump     test the configuration, print it with every default
                      filled in (as TOML ringway accepts) and exit
  --workers N         override [runtime].workers
  -v, -V, --version   print the version, commit and build profile and exit
  -h, --help          print this help and exit
  upgrade             start the new binary (--binary PATH, default: the one
                      running) in place of the ringway running with -c FILE:
                      it takes the listening sockets and every plain tunnel
                      (SIGUSR2 does the same); prints what was handed over,
                      drained and still held; exit 1 if it failed (the
                      running process then keeps everything)
  import NGINX.CONF   write an nginx configuration as ringway.toml (to -o
                      FILE, else stdout); what cannot be carried over is
                      listed on stderr as `file:line: directive: why` and
                      commented in the output
  -o FILE             (import) where to write
  --strict            (import) any loss is an error: exit 1, nothing written
  --prefix DIR        (import) where relative includes start (default: the
                      nginx file's directory)
  import's exit status: 0 written, 1 losses with --strict, 2 unreadable
                      input or bad arguments, 3 written but the output does
                      not pass -t (why on stderr)";

/// `ringway --version`: `ringway 0.1.0 (commit 3da3435, release)`.
fn version() -> String {
    format!(
        "ringway {} (commit {}, {})",
        env!("CARGO_PKG_VERSION"),
        env!("RINGWAY_COMMIT"),
        env!("RINGWAY_PROFILE")
    )
}

fn parse_args() -> anyhow::Result<Option<Args>> {
    let mut args = Args {
        config: PathBuf::from("ringway.toml"),
        mode: Mode::Run,
        workers: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "-c" | "--config" => {
                args.config = it.next().context("-c needs a file")?.into();
            }
            "-t" | "--test" => {
                if args.mode != Mode::TestAndDump {
                    args.mode = Mode::Test;
                }
            }
            "-T" | "--test-dump" => args.mode = Mode::TestAndDump,
            "--workers" => {
                let n: usize = it
                    .next()
                    .context("--workers needs a number")?
                    .parse()
                    .context("--workers needs a number")?;
                if n == 0 {
                    bail!("--workers must be at least 1");
                }
                args.workers = Some(n);
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            "-v" | "-V" | "--version" => {
                println!("{}", version());
                return Ok(None);
            }
            other => bail!("unknown argument `{other}`"),
        }
    }
    Ok(Some(args))
}

/// `ringway upgrade [-c FILE] [--binary PATH]`: ask the ringway running
/// with FILE to start the new binary and hand it everything; print its
/// report. Exit status: 0 upgraded, 1 the upgrade failed (the running
/// process keeps everything), 2 bad arguments.
fn upgrade(args: &[String]) -> ExitCode {
    let mut config = PathBuf::from("ringway.toml");
    let mut binary: Option<PathBuf> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let value = match a.as_str() {
            "-c" | "--config" | "--binary" => it.next(),
            other => {
                eprintln!("ringway: upgrade: unknown argument `{other}`\n{USAGE}");
                return ExitCode::from(2);
            }
        };
        let Some(value) = value else {
            eprintln!("ringway: upgrade: {a} needs a value\n{USAGE}");
            return ExitCode::from(2);
        };
        if a == "--binary" {
            binary = Some(value.into());
        } else {
            config = value.into();
        }
    }
    match ringway::runtime::upgrade::request(&config, binary.as_deref(), UPGRADE_WAIT) {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(why) => {
            eprintln!("ringway: upgrade failed: {why}");
            ExitCode::FAILURE
        }
    }
}

/// How long `ringway upgrade` waits for the running process's report.
const UPGRADE_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

/// `ringway import ...`: the exit status.
fn import(args: &[String]) -> ExitCode {
    let mut out: Option<PathBuf> = None;
    let mut strict = false;
    let mut prefix: Option<PathBuf> = None;
    let mut input: Option<PathBuf> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-o" | "--output" | "--prefix" => {
                let Some(v) = it.next() else {
                    eprintln!("ringway import: {a} needs a path\n{USAGE}");
                    return ExitCode::from(2);
                };
                if a == "--prefix" {
                    prefix = Some(v.into());
                } else {
                    out = Some(v.into());
                }
            }
            "--strict" => strict = true,
            other if other.starts_with('-') => {
                eprintln!("ringway import: unknown argument `{other}`\n{USAGE}");
                return ExitCode::from(2);
            }
            file if input.is_none() => input = Some(file.into()),
            other => {
                eprintln!("ringway import: one nginx.conf only (also got `{other}`)\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let Some(input) = input else {
        eprintln!("ringway import: which nginx.conf?\n{USAGE}");
        return ExitCode::from(2);
    };
    let imported = match ringway_config::import::import(&input, prefix.as_deref()) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("ringway import: {e}");
            return ExitCode::from(2);
        }
    };
    for l in &imported.losses {
        eprintln!("{l}");
    }
    if !imported.ignored.is_empty() {
        let mut names: Vec<&str> = imported.ignored.iter().map(|(n, _)| n.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        eprintln!("ignored (no effect in ringway): {}", names.join(", "));
    }
    if strict && !imported.losses.is_empty() {
        eprintln!(
            "ringway import: --strict: {} directive(s) could not be carried over; nothing written",
            imported.losses.len()
        );
        return ExitCode::from(1);
    }
    let written = match &out {
        Some(path) => std::fs::write(path, &imported.toml)
            .with_context(|| format!("cannot write {}", path.display())),
        None => std::io::stdout()
            .write_all(imported.toml.as_bytes())
            .context("cannot write to stdout"),
    };
    if let Err(e) = written {
        eprintln!("ringway import: {e:#}");
        return ExitCode::from(2);
    }
    // The output as `ringway -t` reads it (names resolved to loopback:
    // the hosts of the nginx file need not resolve here).
    let shown = out.clone().unwrap_or_else(|| PathBuf::from("<stdout>"));
    if let Err(e) =
        ringway_config::parse_str_with(&imported.toml, &shown, ringway_config::Resolve::Loopback)
    {
        eprintln!("ringway import: the output does not pass ringway -t: {e}");
        return ExitCode::from(3);
    }
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    // The binary and arguments an upgrade starts again, read before
    // anything can replace the file.
    let origin = ringway::runtime::upgrade::Origin::current();
    let all: Vec<String> = std::env::args().skip(1).collect();
    if all.first().map(String::as_str) == Some("import") {
        return import(&all[1..]);
    }
    if all.first().map(String::as_str) == Some("upgrade") {
        return upgrade(&all[1..]);
    }
    let args = match parse_args() {
        Ok(Some(a)) => a,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            // Every mistake on the command line gets the usage with it.
            eprintln!("ringway: {e:#}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let testing = args.mode != Mode::Run;
    let mut config = match ringway_config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ringway: {e}");
            if testing {
                eprintln!("ringway: configuration test failed");
            }
            return ExitCode::FAILURE;
        }
    };
    for w in &config.warnings {
        eprintln!("ringway: warning: {w}");
    }
    // Before the checks, so -T shows it and they see what will run.
    if let Some(n) = args.workers {
        config.runtime.workers = Workers::Count(n);
    }
    let (refused, warned) = ringway::runtime::unsupported(&config, &args.config);
    for w in &warned {
        eprintln!("ringway: warning: {w}");
    }
    if !refused.is_empty() {
        for e in &refused {
            eprintln!("ringway: {e}");
        }
        if testing {
            eprintln!("ringway: configuration test failed");
        }
        return ExitCode::FAILURE;
    }
    let config = std::sync::Arc::new(config);
    let tls = match ringway::tls::TlsSet::build(&config, &args.config) {
        Ok(t) => std::sync::Arc::new(t),
        Err(e) => {
            eprintln!("ringway: {e}");
            if testing {
                eprintln!("ringway: configuration test failed");
            }
            return ExitCode::FAILURE;
        }
    };
    for w in &tls.warnings {
        eprintln!("ringway: warning: {w}");
    }
    match args.mode {
        Mode::Run => {}
        // One line on stdout (nginx says "syntax is ok" and "test is
        // successful"); warnings went to stderr.
        Mode::Test => {
            println!(
                "ringway: configuration file {} test is successful",
                args.config.display()
            );
            return ExitCode::SUCCESS;
        }
        // stdout is the configuration alone, so it can be saved and used;
        // the verdict goes to stderr, as nginx's -T does.
        Mode::TestAndDump => {
            let text = format!(
                "# configuration file {}, every default filled in (ringway -T)\n\n{}",
                args.config.display(),
                ringway_config::render(&config)
            );
            // Not print!: a closed pipe (`ringway -T | head`) is an error
            // to report, not a panic.
            if let Err(e) = std::io::stdout().lock().write_all(text.as_bytes()) {
                eprintln!("ringway: cannot write the configuration to stdout: {e}");
                return ExitCode::FAILURE;
            }
            eprintln!(
                "ringway: configuration file {} test is successful",
                args.config.display()
            );
            return ExitCode::SUCCESS;
        }
    }
    init_logging(&config.log.level);
    match ringway::runtime::run(config, tls, args.config, origin) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("ringway: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RINGWAY_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}
