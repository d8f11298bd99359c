//! The `ringway` binary: command line, logging, then the runtime.
//!
//!     ringway -c ringway.toml              run in the foreground
//!     ringway -t -c ringway.toml           test the configuration
//!     ringway -c ringway.toml --workers 1  override [runtime].workers

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use ringway_config::Workers;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Args {
    config: PathBuf,
    test_only: bool,
    workers: Option<usize>,
}

const USAGE: &str = "usage: ringway [-t] -c FILE [--workers N]\n\
  -c, --config FILE   configuration file (default: ringway.toml)\n\
  -t, --test          check the configuration and exit\n\
  --workers N         override [runtime].workers\n\
  -V, --version       print the version";

fn parse_args() -> anyhow::Result<Option<Args>> {
    let mut args = Args {
        config: PathBuf::from("ringway.toml"),
        test_only: false,
        workers: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "-c" | "--config" => {
                args.config = it.next().context("-c needs a file")?.into();
            }
            "-t" | "--test" => args.test_only = true,
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
            "-V" | "--version" => {
                println!("ringway {}", env!("CARGO_PKG_VERSION"));
                return Ok(None);
            }
            other => bail!("unknown argument `{other}`\n{USAGE}"),
        }
    }
    Ok(Some(args))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(a)) => a,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ringway: {e:#}");
            return ExitCode::from(2);
        }
    };
    let config = match ringway_config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ringway: {e}");
            if args.test_only {
                eprintln!("ringway: configuration test failed");
            }
            return ExitCode::FAILURE;
        }
    };
    for w in &config.warnings {
        eprintln!("ringway: warning: {w}");
    }
    let (refused, warned) = ringway::runtime::unsupported(&config, &args.config);
    for w in &warned {
        eprintln!("ringway: warning: {w}");
    }
    if !refused.is_empty() {
        for e in &refused {
            eprintln!("ringway: {e}");
        }
        if args.test_only {
            eprintln!("ringway: configuration test failed");
        }
        return ExitCode::FAILURE;
    }
    let config = std::sync::Arc::new(config);
    let tls = match ringway::tls::TlsSet::build(&config, &args.config) {
        Ok(t) => std::sync::Arc::new(t),
        Err(e) => {
            eprintln!("ringway: {e}");
            if args.test_only {
                eprintln!("ringway: configuration test failed");
            }
            return ExitCode::FAILURE;
        }
    };
    for w in &tls.warnings {
        eprintln!("ringway: warning: {w}");
    }
    if args.test_only {
        println!(
            "ringway: configuration file {} test is successful",
            args.config.display()
        );
        println!("configuration ok");
        return ExitCode::SUCCESS;
    }
    let mut config = std::sync::Arc::unwrap_or_clone(config);
    if let Some(n) = args.workers {
        config.runtime.workers = Workers::Count(n);
    }
    init_logging(&config.log.level);
    match ringway::runtime::run(std::sync::Arc::new(config), tls, args.config) {
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
