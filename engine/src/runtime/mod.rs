//! The process: bind listeners, start one pinned worker per core, then
//! serve signals on the control thread (HUP reload, TERM/QUIT/INT drain),
//! telling systemd each step (`sys::notify`: READY, RELOADING, STOPPING).
//!
//! A reload is prepare, then commit. Prepare (`reload`) does everything
//! that can fail: load and check the file, build its TLS set, bind the
//! listen addresses it adds once per worker (`listener::bind`) and have
//! every worker ready its sockets (`prepare_listeners`). Any failure
//! refuses the reload with nothing changed: the new sockets are closed and
//! the running configuration stays. Commit (`Control::Reload`) cannot
//! fail: each worker switches its snapshot, starts accepting on the added
//! addresses and stops accepting on the removed ones. Kept addresses keep
//! their sockets.

pub mod listener;
pub mod proxy_header;
pub mod upgrade;
pub mod worker;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use ringway_config::{Config, DriverChoice, Workers};
use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};
use signal_hook::iterator::Signals;
use tracing::{debug, error, info, warn};

use listener::BoundAddr;
use worker::{Control, WorkerInit};

use std::os::fd::AsFd;

use crate::admission::LimitSet;
use crate::handoff;
use crate::sys::notify;
use crate::tls::TlsSet;

/// The driver a worker ended up with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverKind {
    IoUring,
    Epoll,
}

impl DriverKind {
    pub fn name(self) -> &'static str {
        match self {
            DriverKind::IoUring => "io_uring",
            DriverKind::Epoll => "epoll",
        }
    }
}

/// Errors that stop the process from starting.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot listen on unix:{}: {source}", path.display())]
    ListenUnix {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("driver = \"io_uring\" but io_uring is not available here (kernel too old, disabled by kernel.io_uring_disabled, or blocked by seccomp); use driver = \"auto\" or \"epoll\"")]
    NoIoUring,
    #[error("cannot start worker thread: {0}")]
    Thread(std::io::Error),
    #[error("cannot open the access log: {0}")]
    AccessLog(std::io::Error),
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("upgrade: {0}")]
    Upgrade(String),
}

pub fn worker_count(config: &Config) -> usize {
    match config.runtime.workers {
        Workers::Count(n) => n.max(1),
        Workers::Auto => thread::available_parallelism().map_or(1, |n| n.get()),
    }
}

/// Which driver workers will use, decided once for the process.
pub fn choose_driver(choice: DriverChoice) -> Result<DriverKind, StartError> {
    let uring = monoio::utils::detect_uring();
    match choice {
        DriverChoice::Epoll => Ok(DriverKind::Epoll),
        DriverChoice::IoUring if uring => Ok(DriverKind::IoUring),
        DriverChoice::IoUring => Err(StartError::NoIoUring),
        DriverChoice::Auto if uring => Ok(DriverKind::IoUring),
        DriverChoice::Auto => {
            info!("io_uring unavailable, falling back to epoll");
            Ok(DriverKind::Epoll)
        }
    }
}

/// Run until stopped by a signal. Returns after every worker has drained.
pub fn run(
    config: Arc<Config>,
    tls: Arc<TlsSet>,
    config_path: PathBuf,
    origin: upgrade::Origin,
) -> Result<(), StartError> {
    let workers = worker_count(&config);
    let driver = choose_driver(config.runtime.driver)?;
    // Signals first, so a TERM during start-up is not lost.
    let mut signals = Signals::new([SIGHUP, SIGTERM, SIGQUIT, SIGINT, SIGUSR1, SIGUSR2])
        .map_err(StartError::Signals)?;
    // Started by a binary upgrade: the old process's sockets.
    let (handoff_sock, inherited_tcp, mut inherited_unix, mut inherited_metrics) =
        match upgrade::inherit(config.runtime.upgrade_timeout) {
            Some(Ok(i)) => {
                info!(
                    listeners = i.tcp.len() + i.unix.len() + usize::from(i.metrics.is_some()),
                    "upgrade: took the old process's listening sockets"
                );
                (Some(i.sock), i.tcp, i.unix, i.metrics)
            }
            Some(Err(why)) => return Err(StartError::Upgrade(why)),
            None => (None, Vec::new(), Vec::new(), None),
        };

    reserve_descriptors(&config);
    let access_log =
        crate::access_log::Sink::open(&config.log.access_log).map_err(StartError::AccessLog)?;
    // Inherited sockets the configuration no longer has: they stop
    // listening once the upgrade is committed.
    let mut leftover = upgrade::Leftover::default();
    let metrics_at = config.metrics.as_ref().map(|m| m.listen);
    if let Some(old) = inherited_metrics.take_if(|(a, _)| Some(*a) != metrics_at) {
        leftover.tcp.push(old);
    }
    let listener::Bound {
        by_addr: mut listening,
        mut per_worker,
    } = if handoff_sock.is_some() {
        let (bound, left) = listener::bind_inherited(&config, workers, inherited_tcp)?;
        leftover.tcp.extend(left);
        bound
    } else {
        listener::bind_all(&config, workers)?
    };
    log_listening(&config, &listening);
    // Duplicates of every listening socket, for a binary upgrade to hand
    // over: (address as configured, socket).
    let mut kept_tcp: Vec<(SocketAddr, std::net::TcpListener)> = Vec::new();
    for (l, addr) in per_worker.iter().flatten() {
        kept_tcp.push((
            *addr,
            l.try_clone().map_err(|source| StartError::Listen {
                addr: *addr,
                source,
            })?,
        ));
    }
    let unix = listener::unix_paths(&config)
        .iter()
        .map(|p| match inherited_unix.iter().position(|(q, _)| q == p) {
            Some(k) => {
                let (path, l) = inherited_unix.swap_remove(k);
                listener::UnixBound::inherited(path, l)
            }
            None => listener::bind_unix(p),
        })
        .collect::<Result<Vec<_>, _>>()?;
    leftover.unix = inherited_unix;
    for u in &unix {
        for server in config
            .servers
            .iter()
            .filter(|s| s.listen_unix.contains(&u.path))
        {
            info!(server = %server.name, addr = %format!("unix:{}", u.path.display()), "listening");
        }
    }

    let mut limits = Arc::new(LimitSet::build(&config, None));
    // One health checker per process; its verdicts reach every worker's
    // groups through the registry.
    let verdicts = Arc::new(crate::upstream::verdict::Verdicts::default());
    // The configuration and resolved members the verdicts are kept for
    // (both change: a reload, a DNS answer).
    let watching = Arc::new(std::sync::Mutex::new((
        config.clone(),
        Arc::new(crate::upstream::resolver::Members::default()),
    )));
    // The control channels first: the resolver publishes to them.
    let channels: Vec<(flume::Sender<Control>, flume::Receiver<Control>)> =
        (0..workers).map(|_| flume::unbounded()).collect();
    let (resolver, members, checker) = {
        let senders: Vec<flume::Sender<Control>> = channels.iter().map(|c| c.0.clone()).collect();
        let to_checker = Arc::new(std::sync::Mutex::new(
            None::<Arc<crate::upstream::checker::Checker>>,
        ));
        let late = to_checker.clone();
        let (forget, known) = (verdicts.clone(), watching.clone());
        let publish: crate::upstream::resolver::Publish = Box::new(move |m| {
            if let Ok(mut w) = known.lock() {
                w.1 = m.clone();
                retain_verdicts(&forget, &w.0, &w.1);
            }
            for tx in &senders {
                let _ = tx.send(Control::Members(m.clone()));
            }
            if let Some(c) = late.lock().ok().and_then(|c| c.clone()) {
                c.set_members(m);
            }
        });
        // Names resolved before any worker takes a connection.
        let (resolver, members) =
            crate::upstream::resolver::Resolver::start(config.clone(), publish)
                .map_err(StartError::Thread)?;
        if let Ok(mut w) = watching.lock() {
            w.1 = members.clone();
        }
        let checker = Arc::new(
            crate::upstream::checker::Checker::start(
                config.clone(),
                members.clone(),
                verdicts.clone(),
            )
            .map_err(StartError::Thread)?,
        );
        if let Ok(mut c) = to_checker.lock() {
            *c = Some(checker.clone());
        }
        (resolver, members, checker)
    };
    // Signals and `ringway upgrade` requests, one queue.
    let (events_tx, events) = flume::unbounded::<upgrade::Event>();
    {
        let tx = events_tx.clone();
        thread::Builder::new()
            .name("ringway-signals".into())
            .spawn(move || {
                for sig in signals.forever() {
                    if tx.send(upgrade::Event::Signal(sig)).is_err() {
                        return;
                    }
                }
            })
            .map_err(StartError::Thread)?;
    }
    // Bound before the workers serve (a new process takes the name once
    // the old one let go of it).
    let control_wait = if handoff_sock.is_some() {
        upgrade::CONTROL_WAIT
    } else {
        Duration::ZERO
    };
    let events_back = events_tx.clone();
    let mut control = match upgrade::ControlSocket::start(
        &config_path,
        events_tx.clone(),
        control_wait,
    ) {
        Ok(c) => Some(c),
        Err(e) => {
            warn!(error = %e, "upgrade: no control socket; `ringway upgrade` cannot reach this process (SIGUSR2 still upgrades)");
            None
        }
    };
    drop(events_tx);

    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let per_worker_max = config.runtime.max_connections.div_ceil(workers).max(1);
    let mut senders = Vec::with_capacity(workers);
    let mut handles = Vec::with_capacity(workers);
    // Each worker sends its id once its accept loops are spawned, and drops
    // its sender either way (started, failed or panicked).
    let (started_tx, started_rx) = flume::unbounded();
    for (id, (tx, rx)) in channels.into_iter().enumerate() {
        senders.push(tx);
        let init = WorkerInit {
            id,
            config: config.clone(),
            tls: tls.clone(),
            limits: limits.clone(),
            listeners: std::mem::take(&mut per_worker[id]),
            unix_listeners: unix
                .iter()
                .map(|u| Ok((u.listener.try_clone()?, u.path.clone())))
                .collect::<std::io::Result<_>>()
                .map_err(|source| StartError::ListenUnix {
                    path: unix.first().map(|u| u.path.clone()).unwrap_or_default(),
                    source,
                })?,
            control: rx,
            started: started_tx.clone(),
            max_conns: per_worker_max,
            access_log: access_log.try_clone().map_err(StartError::AccessLog)?,
            workers,
            watched: crate::upstream::Watched {
                verdicts: verdicts.clone(),
                members: members.clone(),
            },
        };
        let core = if config.runtime.pin_cores && !cores.is_empty() {
            Some(cores[id % cores.len()])
        } else {
            None
        };
        let entries = 4096;
        let handle = thread::Builder::new()
            .name(format!("ringway-w{id}"))
            .spawn(move || {
                if let Some(core) = core {
                    core_affinity::set_for_current(core);
                }
                run_worker(init, driver, entries, core.map(|c| c.id));
            })
            .map_err(StartError::Thread)?;
        handles.push(handle);
    }

    // Ready once every worker has spawned its accept loops (or failed to
    // start: the iteration ends when the last sender is dropped).
    drop(started_tx);
    let serving = started_rx.iter().count();
    if serving < workers {
        warn!(serving, workers, "not every worker started");
    }

    let status = format!(
        "{serving} of {workers} workers serving, driver {}",
        driver.name()
    );
    info!(workers = serving, driver = driver.name(), "all workers up");
    // A new process adopts the old one's tunnels for a while; another
    // upgrade waits for the end of that.
    let adopting = Arc::new(std::sync::atomic::AtomicBool::new(false));
    match handoff_sock {
        // Started by an upgrade: the old process tells systemd (MAINPID)
        // once this one confirmed.
        Some(sock) => {
            if let Err(e) = upgrade::confirm(&sock) {
                warn!(error = %e, "upgrade: cannot confirm to the old process");
            }
            let to = senders.clone();
            adopting.store(true, std::sync::atomic::Ordering::SeqCst);
            let flag = adopting.clone();
            thread::Builder::new()
                .name("ringway-adopt".into())
                .spawn(move || {
                    upgrade::adopt(sock, to, leftover);
                    flag.store(false, std::sync::atomic::Ordering::SeqCst);
                })
                .map_err(StartError::Thread)?;
        }
        None => tell_systemd(&notify::ready(&status)),
    }

    let process = Arc::new(std::sync::Mutex::new(crate::metrics::Process {
        version: env!("CARGO_PKG_VERSION"),
        driver: driver.name(),
        workers,
        certificates: certificate_ends(&tls),
        start_time_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        ..Default::default()
    }));
    let mut kept_metrics = None;
    if let Some(m) = &config.metrics {
        let listener = match inherited_metrics.take() {
            Some((_, l)) => l,
            None => std::net::TcpListener::bind(m.listen).map_err(|source| StartError::Listen {
                addr: m.listen,
                source,
            })?,
        };
        kept_metrics = listener.try_clone().ok().map(|l| (m.listen, l));
        let addr = listener.local_addr().unwrap_or(m.listen);
        info!(addr = %addr, "metrics: serving GET /metrics and GET /status");
        let (senders, process, checker) = (senders.clone(), process.clone(), checker.clone());
        crate::metrics::serve(listener, move || {
            let snaps = scrape(&senders);
            let mut p = process.lock().map(|p| p.clone()).unwrap_or_default();
            p.checks = checker.rows();
            p.resources = crate::metrics::process::read()
                .map_err(|e| debug!(error = %e, "metrics: cannot read the process figures"))
                .ok();
            (snaps, p)
        });
    }
    let reloaded = |ok: bool| {
        if let Ok(mut p) = process.lock() {
            if ok {
                p.reloads_ok += 1;
            } else {
                p.reloads_failed += 1;
            }
        }
    };

    let mut handoff: Option<thread::JoinHandle<()>> = None;
    // After an upgrade: the new process's pid, while this one hands over.
    let mut handing_to: Option<u32> = None;

    let mut current = config;
    'signals: for event in events.iter() {
        if let Some(new_pid) = handing_to {
            // The new process serves; this one finishes what it holds.
            match event {
                upgrade::Event::HandoffOver => break 'signals,
                upgrade::Event::HandoffBroken => {
                    // The workers accept again (`Control::Resume`); this
                    // process is the service again.
                    error!(new_pid, "upgrade failed midway: the new process went away; this process serves again with every tunnel it still had");
                    tell_systemd(&format!(
                        "MAINPID={}\nREADY=1\nSTATUS=upgrade failed midway; {status}",
                        std::process::id()
                    ));
                    handing_to = None;
                    // Its handoff thread ends by itself once every worker
                    // let go of it.
                    handoff = None;
                    control = upgrade::ControlSocket::start(
                        &config_path,
                        events_back.clone(),
                        upgrade::CONTROL_WAIT,
                    )
                    .map_err(|e| warn!(error = %e, "upgrade: no control socket"))
                    .ok();
                }
                upgrade::Event::Signal(SIGTERM | SIGINT | SIGQUIT) => {
                    info!(
                        "graceful stop while handing over: draining what this process still holds"
                    );
                    for tx in &senders {
                        let _ = tx.send(Control::Shutdown);
                    }
                }
                upgrade::Event::Signal(SIGUSR1) => {
                    for tx in &senders {
                        let _ = tx.send(Control::ReopenLogs);
                    }
                }
                upgrade::Event::Signal(sig) => {
                    warn!(
                        signal = sig,
                        new_pid, "ignored: this process hands over to a new one; signal that one"
                    );
                }
                upgrade::Event::Upgrade { reply, .. } => {
                    let why =
                        format!("this process is handing over to process {new_pid}: ask that one");
                    upgrade::reply(reply, Err(&why));
                }
            }
            continue;
        }
        let (binary, reply) = match event {
            upgrade::Event::HandoffOver | upgrade::Event::HandoffBroken => continue,
            upgrade::Event::Signal(SIGUSR2) => {
                info!("SIGUSR2: binary upgrade");
                (None, None)
            }
            upgrade::Event::Upgrade { binary, reply } => (binary, reply),
            upgrade::Event::Signal(sig) => {
                match sig {
                    SIGUSR1 => {
                        info!("SIGUSR1: reopening the access log");
                        for tx in &senders {
                            let _ = tx.send(Control::ReopenLogs);
                        }
                    }
                    SIGHUP => {
                        info!(file = %config_path.display(), "SIGHUP: reloading configuration");
                        tell_systemd(&notify::reloading());
                        let outcome = match reload(&config_path, &current, &listening, &senders) {
                            Some(next) => {
                                // Commit: nothing from here on can fail.
                                for key in start_only_changes(&current, &next.config, workers) {
                                    warn!(
                                key,
                                "{key} changed: it is read at start only; restart to apply it"
                            );
                                }
                                limits = Arc::new(LimitSet::build(&next.config, Some(&limits)));
                                if let Ok(mut p) = process.lock() {
                                    p.certificates = certificate_ends(&next.tls);
                                }
                                reloaded(true);
                                for b in &next.removed {
                                    info!(addr = %b.actual, "listen address removed: no longer accepting on it");
                                }
                                log_listening(&next.config, &next.added);
                                listening.retain(|b| !next.removed.contains(b));
                                listening.extend_from_slice(&next.added);
                                kept_tcp.retain(|(a, _)| {
                                    !next.removed.iter().any(|b| b.configured == *a)
                                });
                                kept_tcp.extend(next.added_sockets);
                                current = next.config;
                                // New resolve = true names are resolved before the
                                // workers switch (bounded), so a reload never runs a
                                // group without the members it names.
                                let members = resolver.reconfigure(current.clone(), RESOLVE_WAIT);
                                // Servers gone from their groups are forgotten;
                                // the checker follows the new groups.
                                if let Ok(mut w) = watching.lock() {
                                    w.0 = current.clone();
                                    if let Some(m) = &members {
                                        w.1 = m.clone();
                                    }
                                    retain_verdicts(&verdicts, &w.0, &w.1);
                                }
                                if let Some(m) = &members {
                                    checker.set_members(m.clone());
                                }
                                checker.reconfigure(current.clone());
                                let removed: Vec<SocketAddr> =
                                    next.removed.iter().map(|b| b.configured).collect();
                                for tx in &senders {
                                    let _ = tx.send(Control::Reload(worker::Reload {
                                        config: current.clone(),
                                        tls: next.tls.clone(),
                                        limits: limits.clone(),
                                        removed: removed.clone(),
                                        members: members.clone(),
                                    }));
                                }
                                "configuration reloaded"
                            }
                            None => {
                                reloaded(false);
                                "reload refused, running the previous configuration"
                            }
                        };
                        tell_systemd(&notify::ready(&format!("{status}; {outcome}")));
                    }
                    _ => {
                        info!(signal = sig, "graceful stop: no new connections, draining");
                        tell_systemd(&format!("{}\nSTATUS=draining", notify::STOPPING));
                        for tx in &senders {
                            let _ = tx.send(Control::Shutdown);
                        }
                        break 'signals;
                    }
                }
                continue;
            }
        };
        // Binary upgrade: the new process gets the listening sockets and
        // confirms, or the upgrade fails with nothing changed here.
        if adopting.load(std::sync::atomic::Ordering::SeqCst) {
            let why = "this process is still adopting the tunnels of the last upgrade: try again once it logged `the old process handed everything over`";
            warn!("upgrade refused: {why}");
            upgrade::reply(reply, Err(why));
            continue;
        }
        let exe = binary.clone().unwrap_or_else(|| origin.exe.clone());
        info!(binary = %exe.display(), "upgrade: starting the new binary");
        let mut items = Vec::new();
        for (addr, l) in &kept_tcp {
            items.push((handoff::ListenerItem::Tcp { configured: *addr }, l.as_fd()));
        }
        for u in &unix {
            items.push((
                handoff::ListenerItem::Unix {
                    path: u.path.clone(),
                },
                u.listener.as_fd(),
            ));
        }
        if let Some((addr, l)) = &kept_metrics {
            items.push((handoff::ListenerItem::Metrics { addr: *addr }, l.as_fd()));
        }
        match upgrade::launch(
            &origin,
            binary.as_deref(),
            &upgrade::Sockets { items },
            current.runtime.upgrade_timeout,
        ) {
            Err(why) => {
                error!(why = %why, "upgrade failed, the running process keeps everything");
                upgrade::reply(reply, Err(&why));
                // The new process may have armed accepts on the shared
                // listeners before it went: a wake-up one of them took is
                // lost with it. Look at the queues again.
                for tx in &senders {
                    let _ = tx.send(Control::Rearm);
                }
            }
            Ok(new) => {
                info!(pid = new.pid, "upgrade: new process ready");
                tell_systemd(&format!(
                    "MAINPID={}\nREADY=1\nSTATUS=upgraded: process {} serves",
                    new.pid, new.pid
                ));
                if let Some(c) = control.take() {
                    c.stop();
                }
                let (tx, rx) = flume::unbounded();
                let mut asked = 0;
                for w in &senders {
                    let settle = current.runtime.shutdown_timeout;
                    if w.send(Control::Handoff {
                        sink: tx.clone(),
                        settle,
                    })
                    .is_ok()
                    {
                        asked += 1;
                    }
                }
                drop(tx);
                let old_pid = std::process::id();
                handing_to = Some(new.pid);
                let over = events_back.clone();
                let workers_back = senders.clone();
                handoff = Some(
                    thread::Builder::new()
                        .name("ringway-handoff".into())
                        .spawn(move || {
                            upgrade::forward(
                                new,
                                rx,
                                workers_back,
                                asked,
                                reply,
                                old_pid,
                                over.clone(),
                            );
                            let _ = over.send(upgrade::Event::HandoffOver);
                        })
                        .map_err(StartError::Thread)?,
                );
            }
        }
    }
    drop(current);
    for h in handles {
        if h.join().is_err() {
            warn!("a worker panicked");
        }
    }
    if let Some(h) = handoff {
        // Ends once every worker stopped (its channel closed).
        if h.join().is_err() {
            warn!("the handoff thread panicked");
        }
        // The unix socket files are the new process's now.
        info!("upgrade: old process exits");
        return Ok(());
    }
    if let Some(c) = control {
        c.stop();
    }
    // nginx removes its unix socket files when it stops; so does ringway.
    for u in &unix {
        u.remove_file();
    }
    info!("ringway stopped");
    Ok(())
}

/// Keep the verdicts (and tags) of the members `config` and `members`
/// make, forget the rest: servers a reload removed, addresses DNS no
/// longer gives (snapshots still holding one keep their copy).
fn retain_verdicts(
    verdicts: &crate::upstream::verdict::Verdicts,
    config: &Config,
    members: &crate::upstream::resolver::Members,
) {
    let keys: std::collections::HashSet<(String, String)> = config
        .upstreams
        .values()
        .flat_map(|u| {
            crate::upstream::resolver::members(u, members)
                .into_iter()
                .map(|m| (u.name.clone(), m.key))
        })
        .collect();
    verdicts.retain(|g, s| keys.contains(&(g.to_string(), s.to_string())));
}

/// How long a reload waits for the resolver to resolve the names it adds.
const RESOLVE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// How long a scrape waits for each worker's counts.
const SCRAPE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Every worker's counts: each is asked over its control channel and
/// answers from its own thread (a worker that does not answer within
/// [`SCRAPE_WAIT`] is left out of this scrape).
fn scrape(senders: &[flume::Sender<Control>]) -> Vec<crate::metrics::WorkerSnapshot> {
    let (tx, rx) = flume::unbounded();
    let asked = senders
        .iter()
        .filter(|s| s.send(Control::Metrics(tx.clone())).is_ok())
        .count();
    drop(tx);
    let deadline = std::time::Instant::now() + SCRAPE_WAIT;
    let mut out = Vec::with_capacity(asked);
    while out.len() < asked {
        match rx.recv_deadline(deadline) {
            Ok(s) => out.push(s),
            Err(_) => {
                warn!(
                    answered = out.len(),
                    asked, "a worker did not answer the scrape in time"
                );
                break;
            }
        }
    }
    out.sort_by_key(|s| s.worker);
    out
}

/// `(server, notAfter in Unix seconds)` of each configured certificate.
fn certificate_ends(tls: &TlsSet) -> Vec<(String, i64)> {
    tls.certificates
        .iter()
        .filter_map(|(server, end)| {
            let end = (*end)?;
            let secs = match end.duration_since(std::time::UNIX_EPOCH) {
                Ok(d) => d.as_secs() as i64,
                Err(e) => -(e.duration().as_secs() as i64),
            };
            Some((server.clone(), secs))
        })
        .collect()
}

/// `listening` for each server of `config` that listens on the address.
fn log_listening(config: &Config, addrs: &[BoundAddr]) {
    for b in addrs {
        for server in &config.servers {
            if server.listen.contains(&b.configured) {
                info!(server = %server.name, addr = %b.actual, "listening");
            }
        }
    }
}

/// A reload, prepared: what the workers switch to.
struct Prepared {
    config: Arc<Config>,
    tls: Arc<TlsSet>,
    /// Bound on every worker, ready, not accepted on yet.
    added: Vec<BoundAddr>,
    /// Duplicates of their sockets (what a binary upgrade hands over).
    added_sockets: Vec<(SocketAddr, std::net::TcpListener)>,
    /// Served now, gone from `config`.
    removed: Vec<BoundAddr>,
}

/// Reload, prepare: load and check the configuration file, build its TLS
/// set, then bind the listen addresses it adds on every worker — last, so
/// that nothing else can refuse the reload once sockets exist. `None`
/// (logged) when the reload is refused: the running configuration stays,
/// and no new socket is left open.
fn reload(
    config_path: &std::path::Path,
    current: &Config,
    listening: &[BoundAddr],
    senders: &[flume::Sender<Control>],
) -> Option<Prepared> {
    let new = match ringway_config::load(config_path) {
        Ok(new) => new,
        Err(e) => {
            error!(error = %e, "reload failed, keeping the running configuration");
            return None;
        }
    };
    let (mut refused, warned) = unsupported(&new, config_path);
    for w in warned {
        warn!("reload: {w}");
    }
    refused.extend(metrics_change(current, &new));
    if listener::unix_paths(current) != listener::unix_paths(&new) {
        refused.push(
            "the unix listen sockets changed: they are bound at start; restart to change them"
                .to_string(),
        );
    }
    if !refused.is_empty() {
        for e in refused {
            error!(file = %config_path.display(), "reload refused: {e}");
        }
        return None;
    }
    for w in &new.warnings {
        warn!("{w}");
    }
    let new = Arc::new(new);
    let new_tls = match TlsSet::build(&new, config_path) {
        Ok(t) => Arc::new(t),
        Err(e) => {
            error!(error = %e, "reload failed, keeping the running configuration");
            return None;
        }
    };
    for w in &new_tls.warnings {
        warn!("{w}");
    }
    let running: Vec<SocketAddr> = listening.iter().map(|b| b.configured).collect();
    let change = listener::Change::between(&running, &new);
    let (added, added_sockets) = if change.added.is_empty() {
        (Vec::new(), Vec::new())
    } else {
        match prepare_listeners(&change.added, senders) {
            Ok(added) => added,
            Err(e) => {
                error!(file = %config_path.display(), "reload refused, keeping the running configuration: {e}");
                return None;
            }
        }
    };
    let removed = listening
        .iter()
        .filter(|b| change.removed.contains(&b.configured))
        .copied()
        .collect();
    Some(Prepared {
        config: new,
        tls: new_tls,
        added,
        added_sockets,
        removed,
    })
}

/// Why a reload cannot apply `new`'s `[metrics]`, if it changes it: the
/// metrics listener is bound once, at start.
fn metrics_change(current: &Config, new: &Config) -> Option<String> {
    let listen = |c: &Config| c.metrics.as_ref().map(|m| m.listen);
    let show = |a: Option<SocketAddr>| a.map_or_else(|| "none".to_string(), |a| a.to_string());
    let (before, after) = (listen(current), listen(new));
    (before != after).then(|| {
        format!(
            "metrics.listen changed from {} to {}: the metrics listener is bound at start; restart to change it",
            show(before),
            show(after)
        )
    })
}

/// The keys `new` changes that are read once, at start, and that a reload
/// therefore leaves as they are: the worker threads (`workers` compared
/// with the `running` count, as `--workers` may override the file), their
/// driver and pinning, what each worker sized at start, and the log
/// filter.
fn start_only_changes(current: &Config, new: &Config, running: usize) -> Vec<&'static str> {
    let (a, b) = (&current.runtime, &new.runtime);
    [
        (worker_count(new) != running, "runtime.workers"),
        (a.pin_cores != b.pin_cores, "runtime.pin_cores"),
        (a.driver != b.driver, "runtime.driver"),
        (
            a.max_connections != b.max_connections,
            "runtime.max_connections",
        ),
        (a.tunnel_buffer != b.tunnel_buffer, "runtime.tunnel_buffer"),
        (a.splice != b.splice, "runtime.splice"),
        (a.tunnel_relay != b.tunnel_relay, "runtime.tunnel_relay"),
        (a.relay_buffers != b.relay_buffers, "runtime.relay_buffers"),
        (current.log.level != new.log.level, "log.level"),
    ]
    .into_iter()
    .filter_map(|(changed, key)| changed.then_some(key))
    .collect()
}

/// How long a reload waits for the workers to ready its new listeners.
const PREPARE_WAIT: Duration = Duration::from_secs(5);

/// Why a reload's new listen addresses cannot be served.
#[derive(Debug, thiserror::Error)]
enum PrepareError {
    /// A bind failed (the address is taken, or not this host's).
    #[error(transparent)]
    Bind(#[from] StartError),
    #[error(transparent)]
    Worker(#[from] worker::ListenError),
    #[error("{answered} of {asked} workers readied the new listeners within {wait:?}")]
    NoAnswer {
        answered: usize,
        asked: usize,
        wait: Duration,
    },
}

/// Bind `added` once per worker and hand each worker its sockets
/// (`Control::Listen`); `Ok` once every worker has them ready. On an
/// error every new socket is closed: those not handed over yet here, the
/// workers' by `Control::Unlisten`.
#[allow(clippy::type_complexity)]
fn prepare_listeners(
    added: &[SocketAddr],
    senders: &[flume::Sender<Control>],
) -> Result<(Vec<BoundAddr>, Vec<(SocketAddr, std::net::TcpListener)>), PrepareError> {
    let bound = listener::bind(added, senders.len())?;
    let mut kept = Vec::new();
    for (l, addr) in bound.per_worker.iter().flatten() {
        let dup = l.try_clone().map_err(|source| StartError::Listen {
            addr: *addr,
            source,
        })?;
        kept.push((*addr, dup));
    }
    let (tx, rx) = flume::unbounded();
    let mut asked = 0;
    for (s, listeners) in senders.iter().zip(bound.per_worker) {
        // A worker that has stopped gets none (they close with the message).
        let ready = tx.clone();
        if s.send(Control::Listen { listeners, ready }).is_ok() {
            asked += 1;
        }
    }
    drop(tx);
    let deadline = Instant::now() + PREPARE_WAIT;
    let mut answered = 0;
    let outcome = loop {
        if answered == asked {
            break Ok(());
        }
        match rx.recv_deadline(deadline) {
            Ok(Ok(())) => answered += 1,
            Ok(Err(e)) => break Err(PrepareError::Worker(e)),
            // The workers that did not answer have stopped: they serve
            // nothing, old or new.
            Err(flume::RecvTimeoutError::Disconnected) => break Ok(()),
            Err(flume::RecvTimeoutError::Timeout) => {
                break Err(PrepareError::NoAnswer {
                    answered,
                    asked,
                    wait: PREPARE_WAIT,
                })
            }
        }
    };
    match outcome {
        Ok(()) => Ok((bound.by_addr, kept)),
        Err(e) => {
            for s in senders {
                let _ = s.send(Control::Unlisten);
            }
            Err(e)
        }
    }
}

/// Tell systemd `state` when it asked to be told (`$NOTIFY_SOCKET`); a
/// failure is logged, never fatal.
fn tell_systemd(state: &str) {
    match notify::notify(state) {
        Ok(sent) => {
            if sent {
                tracing::debug!(state, "sd_notify");
            }
        }
        Err(e) => warn!(error = %e, state, "cannot notify systemd ($NOTIFY_SOCKET)"),
    }
}

fn run_worker(init: WorkerInit, driver: DriverKind, entries: u32, core: Option<usize>) {
    let id = init.id;
    match driver {
        DriverKind::IoUring => match uring_runtime(entries) {
            Ok((mut rt, task_run)) => {
                info!(worker = id, driver = %DriverKind::IoUring.name(), task_run, core = ?core, "worker started");
                rt.block_on(worker::main(init, DriverKind::IoUring));
                return;
            }
            Err(e) => {
                warn!(worker = id, error = %e, "io_uring runtime failed to start, falling back to epoll");
            }
        },
        DriverKind::Epoll => {}
    }
    match monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .with_entries(entries)
        .enable_timer()
        .build()
    {
        Ok(mut rt) => {
            info!(worker = id, driver = %DriverKind::Epoll.name(), core = ?core, "worker started");
            rt.block_on(worker::main(init, DriverKind::Epoll));
        }
        Err(e) => error!(worker = id, error = %e, "cannot start epoll runtime"),
    }
}

/// Raise the open-file limit and size the descriptor table for the
/// connections the config allows (2 descriptors each, client and upstream),
/// up to the limit and at most 2^17 slots (1 MiB of kernel memory), before
/// any worker thread exists. See `sys::reserve_fd_table`.
fn reserve_descriptors(config: &Config) {
    let limit = match crate::sys::raise_nofile_limit() {
        Ok(l) => l,
        Err(e) => {
            warn!(error = %e, "cannot read the open-file limit");
            return;
        }
    };
    let want = (config.runtime.max_connections as u64)
        .saturating_mul(2)
        .saturating_add(256);
    let slots = want.min(limit).min(1 << 17);
    match crate::sys::reserve_fd_table(slots) {
        Ok(n) => info!(
            open_file_limit = limit,
            reserved = n,
            "descriptor table sized"
        ),
        Err(e) => warn!(error = %e, slots, "cannot pre-size the descriptor table"),
    }
    if limit < want {
        info!(
            open_file_limit = limit,
            max_connections = config.runtime.max_connections,
            "the open-file limit, not max_connections, bounds proxied connections (2 descriptors each); raise it with ulimit -n or LimitNOFILE="
        );
    }
}

/// Applies one way of running completions to a ring builder.
type RingSetup = fn(&mut io_uring::Builder);

/// How the kernel tells a worker that an io_uring wait (a `POLL_ADD` on a
/// socket) has finished. By default it interrupts the running thread with
/// an IPI to run the completion at once; a proxy thread is almost always
/// running, so at load that is an interrupt per message. `DEFER_TASKRUN`
/// (Linux 6.1) keeps completions until the worker next waits for events,
/// and `COOP_TASKRUN` (5.19) runs them at its next syscall; either halves
/// proxy CPU per message (bench/TARGETS.md). Older kernels get the plain
/// ring.
const TASK_RUN_MODES: [(&str, RingSetup); 3] = [
    ("deferred", |b| {
        b.setup_single_issuer().setup_defer_taskrun();
    }),
    ("cooperative", |b| {
        b.setup_coop_taskrun();
    }),
    ("interrupt", |_| {}),
];

type UringRuntime = monoio::Runtime<monoio::time::TimeDriver<monoio::IoUringDriver>>;

/// An io_uring runtime with the first completion mode the kernel accepts,
/// and that mode's name.
fn uring_runtime(entries: u32) -> std::io::Result<(UringRuntime, &'static str)> {
    let mut last = None;
    for (name, setup) in TASK_RUN_MODES {
        let mut urb = io_uring::IoUring::builder();
        setup(&mut urb);
        match monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
            .with_entries(entries)
            .uring_builder(urb)
            .enable_timer()
            .build()
        {
            Ok(rt) => return Ok((rt, name)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no io_uring setup")))
}

/// Keys of the configuration contract this build parses but does not serve
/// yet: (refused, warned). Nothing is refused or warned about today (a key
/// whose absence would weaken what the configuration asks for, as TLS
/// would have, is refused; one that only adds to what is served is
/// warned about). HTTP/2 (`servers.NAME.http2`) was the last warned key.
/// Each reads as the configuration's own warnings do, `file:line: key:
/// what`, with `file` the configuration file.
pub fn unsupported(
    _config: &ringway_config::Config,
    _file: &std::path::Path,
) -> (Vec<String>, Vec<String>) {
    (Vec::new(), Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(metrics: &str) -> Config {
        let text = format!(
            "{metrics}[servers.a]\nlisten = [\"127.0.0.1:0\"]\n[servers.a.locations.\"/\"]\nreturn = {{ status = 204 }}\n"
        );
        ringway_config::parse_str(&text, Path::new("t.toml")).unwrap()
    }

    #[test]
    fn start_only_keys_are_named_when_a_reload_changes_them() {
        let with = |runtime: &str, log: &str| {
            config(&format!(
                "[runtime]\nworkers = 2\n{runtime}\n[log]\n{log}\n"
            ))
        };
        let running = with("", "");
        assert!(start_only_changes(&running, &with("", ""), 2).is_empty());
        // Keys a reload applies are not named.
        let applied = with(
            "shutdown_timeout = \"5s\"\ndrain_spread = \"1s\"\ndrain_old_tunnels_after = \"1m\"",
            "access_log = \"off\"\nlog_format = \"json\"",
        );
        assert!(start_only_changes(&running, &applied, 2).is_empty());
        let changed = config(
            "[runtime]\nworkers = 3\npin_cores = false\ndriver = \"epoll\"\nmax_connections = 7\ntunnel_buffer = \"4k\"\nsplice = false\ntunnel_relay = \"syscall\"\nrelay_buffers = 16\n[log]\nlevel = \"debug\"\n",
        );
        assert_eq!(
            start_only_changes(&running, &changed, 2),
            [
                "runtime.workers",
                "runtime.pin_cores",
                "runtime.driver",
                "runtime.max_connections",
                "runtime.tunnel_buffer",
                "runtime.splice",
                "runtime.tunnel_relay",
                "runtime.relay_buffers",
                "log.level",
            ]
        );
        // `workers` is compared with the count running (`--workers`).
        assert!(start_only_changes(&running, &with("", ""), 1) == ["runtime.workers"]);
    }

    #[test]
    fn a_reload_may_not_change_the_metrics_listener() {
        let on = |addr: &str| config(&format!("[metrics]\nlisten = \"{addr}\"\n"));
        let (a, b, none) = (on("127.0.0.1:9100"), on("127.0.0.1:9101"), config(""));
        assert_eq!(metrics_change(&a, &on("127.0.0.1:9100")), None);
        assert_eq!(metrics_change(&none, &config("")), None);
        assert_eq!(
            metrics_change(&a, &b).as_deref(),
            Some("metrics.listen changed from 127.0.0.1:9100 to 127.0.0.1:9101: the metrics listener is bound at start; restart to change it")
        );
        assert!(metrics_change(&a, &none)
            .unwrap()
            .starts_with("metrics.listen changed from 127.0.0.1:9100 to none:"));
        assert!(metrics_change(&none, &b)
            .unwrap()
            .starts_with("metrics.listen changed from none to 127.0.0.1:9101:"));
    }
}
