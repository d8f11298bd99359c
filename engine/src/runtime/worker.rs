//! One worker: a pinned thread running its own monoio runtime, its own
//! listeners (SO_REUSEPORT), connections, pools and upstream cursors.
//! Nothing here is shared with other workers; the control thread talks to
//! it over a channel (new config snapshot, shutdown).
//!
//! A reload that changes the listen addresses comes in two steps:
//! `Control::Listen` hands the worker its sockets for the added addresses,
//! which it readies (registered with its driver) but does not accept on
//! yet, answering whether it could (prepare); `Control::Reload` then
//! switches the snapshot, starts accepting on them and stops accepting on
//! the removed ones (commit), or `Control::Unlisten` drops them (the
//! reload was refused).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use monoio::net::{TcpListener, UnixListener};
use ringway_config::Config;
use tracing::{debug, info, warn};

use crate::access_log::{AccessLog, Sink};
use crate::admission::LimitSet;
use crate::conn;
use crate::proxy::idle::DrainPlan;
use crate::proxy::kit::Kit;
use crate::proxy::tunnel::ring::{self, Choice, Relay};
use crate::shared::{ConnGuard, Listen, Shared};
use crate::snapshot::Snapshot;
use crate::sys;
use crate::tls::{self, Acceptor, TlsSet};
use crate::transport::Transport;
use crate::upstream::balance::Move;
use crate::upstream::resolver::Members;
use crate::upstream::Watched;
use crate::vars::Peer;

use super::proxy_header;
use super::DriverKind;
use crate::wake::{Flag, Notify};

/// Messages from the control thread.
pub enum Control {
    /// Reload, prepare: this worker's sockets for the listen addresses the
    /// new configuration adds, to ready (not to accept on yet); the answer
    /// says whether every one could be. Followed by `Reload` or
    /// `Unlisten`.
    Listen {
        listeners: Vec<(std::net::TcpListener, SocketAddr)>,
        ready: flume::Sender<Result<(), ListenError>>,
    },
    /// The reload was refused after `Listen`: close its sockets.
    Unlisten,
    /// Reload, commit: a new configuration for new connections (SIGHUP);
    /// live connections keep the snapshot they started with (and their
    /// TLS sessions).
    Reload(Reload),
    /// Stop accepting; let busy connections finish up to shutdown_timeout.
    Shutdown,
    /// SIGUSR1: reopen the access log file (after logrotate renamed it).
    ReopenLogs,
    /// A scrape: answer with this worker's counts.
    Metrics(flume::Sender<crate::metrics::WorkerSnapshot>),
    /// The resolver's new table of `resolve = true` servers' addresses.
    Members(Arc<Members>),
    /// Binary upgrade, the old process: stop accepting (the new process
    /// has the listeners), close keep-alive connections after their
    /// current answer, and hand every plain tunnel to `sink` at its next
    /// quiet moment; say `Settled` once none is left or after `settle`;
    /// stop once nothing is held.
    Handoff {
        sink: flume::Sender<crate::handoff::FromWorker>,
        settle: Duration,
    },
    /// Binary upgrade, the old process: the new process went away midway;
    /// accept and serve again (after `StopHandoff`, with the tunnels that
    /// came back).
    Resume,
    /// Binary upgrade, the old process: every tunnel this worker sent was
    /// taken or came back; it may stop (after `FromWorker::Leaving`).
    Leave,
    /// Binary upgrade, the old process: the new one takes no more
    /// tunnels; stop handing them over (those on their way come back as
    /// `Adopt`).
    StopHandoff,
    /// Binary upgrade, the new process: the old one accepts no more; arm
    /// every accept again (`Shared::rearm`).
    Rearm,
    /// Binary upgrade, the new process: tunnels the old one handed over,
    /// each with its sockets (client, upstream), to take on.
    Adopt(Vec<Adoptee>),
}

/// A tunnel handed over by an older process, for a worker to adopt.
pub struct Adoptee {
    pub record: Box<crate::handoff::TunnelRecord>,
    pub fds: [std::os::fd::OwnedFd; 2],
}

/// A new configuration, and the listen addresses it no longer has.
pub struct Reload {
    pub config: Arc<Config>,
    pub tls: Arc<TlsSet>,
    pub limits: Arc<LimitSet>,
    /// Stop accepting on these (as configured); the connections accepted
    /// on them carry on. The addresses added are the last `Listen`'s.
    pub removed: Vec<SocketAddr>,
    /// The resolver's table with the new configuration's names (none when
    /// it did not answer in time: the worker keeps its own).
    pub members: Option<Arc<Members>>,
}

/// A listening socket a worker could not take on (it must accept on it
/// with its own driver: epoll registers it).
#[derive(Debug, thiserror::Error)]
#[error("worker {worker} cannot accept on {addr}: {source}")]
pub struct ListenError {
    pub worker: usize,
    pub addr: SocketAddr,
    #[source]
    pub source: std::io::Error,
}

/// What a worker is started with.
pub struct WorkerInit {
    pub id: usize,
    pub config: Arc<Config>,
    pub tls: Arc<TlsSet>,
    pub limits: Arc<LimitSet>,
    /// Bound sockets with the configured address they serve.
    pub listeners: Vec<(std::net::TcpListener, SocketAddr)>,
    /// The unix listen sockets (shared by every worker), by path.
    pub unix_listeners: Vec<(std::os::unix::net::UnixListener, std::path::PathBuf)>,
    pub control: flume::Receiver<Control>,
    /// Sent this worker's id once its accept loops are spawned (the
    /// control thread then tells systemd READY=1), and dropped.
    pub started: flume::Sender<usize>,
    pub max_conns: usize,
    pub access_log: Sink,
    /// The active health checker's verdicts and the resolver's table.
    pub watched: Watched,
    /// How many workers the process runs (`rebalance` shares its rate).
    pub workers: usize,
}

/// A worker's shared state for `config`.
pub fn shared(
    id: usize,
    config: Arc<Config>,
    tls: Arc<TlsSet>,
    limits: Arc<LimitSet>,
    max_conns: usize,
    access_log: Sink,
    watched: Watched,
) -> Rc<Shared> {
    let Watched { verdicts, members } = watched;
    let rt = &config.runtime;
    let format = config.log.format.clone();
    let mut kit = Kit::new(rt.tunnel_buffer, rt.splice);
    kit.relay = ring_relay(id, rt);
    Rc::new(Shared {
        id,
        kit,
        snapshot: RefCell::new(Rc::new(Snapshot::new(
            config, tls, limits, None, &verdicts, &members,
        ))),
        verdicts,
        members: RefCell::new(members),
        workers: Cell::new(1),
        conns: Cell::new(0),
        max_conns,
        conn_closed: Notify::default(),
        busy: Cell::new(0),
        h2_conns: Cell::new(0),
        shutting_down: Flag::default(),
        access: AccessLog::new(access_log, format),
        handoff: RefCell::new(None),
        drained_in_handoff: Cell::new(0),
        accept_loops: Cell::new(0),
        rearm: Notify::default(),
    })
}

/// The ring relay for this worker, when it runs on io_uring with a kernel
/// that has what the relay needs; the syscall relay otherwise (logged).
fn ring_relay(id: usize, rt: &ringway_config::Runtime) -> Option<Rc<Relay>> {
    let choice = ring::choose(
        rt.tunnel_relay,
        monoio::ring::available(),
        crate::sys::uring::kernel_version(),
    );
    if let Choice::Syscall(why) = choice {
        info!(worker = id, relay = "syscall", why, "tunnel relay");
        return None;
    }
    let slots = relay_file_slots();
    match Relay::new(rt.relay_buffers, rt.tunnel_buffer, rt.splice, slots) {
        Ok(r) => {
            info!(
                worker = id,
                relay = "ring",
                buffers = rt.relay_buffers,
                "tunnel relay"
            );
            Some(r)
        }
        Err(e) => {
            let why = format!("cannot register the buffer ring: {e}");
            warn!(worker = id, relay = "syscall", why, "tunnel relay");
            None
        }
    }
}

/// Registered file slots for a worker's ring relay: two per tunnel, as
/// many as the open-file limit allows (the kernel caps a table there), at
/// most 2^16 (kernel memory: ~8 bytes each). Tunnels beyond them name
/// their sockets by descriptor.
fn relay_file_slots() -> u32 {
    crate::sys::nofile_limit().clamp(64, 1 << 16) as u32
}

/// A listening socket ready for this worker's driver: non-blocking for
/// epoll (io_uring accepts on blocking ones without a worker thread, as
/// monoio itself does), registered with the runtime.
fn adopt(l: std::net::TcpListener, driver: DriverKind) -> std::io::Result<TcpListener> {
    if driver == DriverKind::Epoll {
        l.set_nonblocking(true)?;
    }
    TcpListener::from_std(l)
}

/// One listen address this worker accepts on: its socket (shared with
/// the accept loop) and the flag that ends that loop.
struct Accepting {
    listener: Rc<TcpListener>,
    stop: Rc<Flag>,
}

impl Accepting {
    /// Accept on `listener` for the configured address `key`.
    fn start(worker: &Rc<Shared>, listener: TcpListener, key: SocketAddr) -> Accepting {
        Self::on(worker, Rc::new(listener), key)
    }

    /// Accept on the same socket again (its loop ended with a stop for a
    /// binary upgrade that then failed).
    fn again(&self, worker: &Rc<Shared>, key: SocketAddr) -> Accepting {
        Self::on(worker, self.listener.clone(), key)
    }

    fn on(worker: &Rc<Shared>, listener: Rc<TcpListener>, key: SocketAddr) -> Accepting {
        let stop = Rc::new(Flag::default());
        let listen = Rc::new(Listen {
            shared: worker.clone(),
            label: key.to_string().into_boxed_str(),
            http2_streams: false,
        });
        monoio::spawn(accept_loop(
            worker.clone(),
            listener.clone(),
            key,
            listen,
            stop.clone(),
        ));
        Accepting { listener, stop }
    }

    /// Stop listening now (`sys::stop_listening`: no connection reaches
    /// this socket once it returns) and end the accept loop, which closes
    /// the socket.
    fn stop(self, worker: usize, key: SocketAddr) {
        if let Err(e) = sys::stop_listening(sys::fd(&*self.listener)) {
            warn!(worker, addr = %key, error = %e, "cannot stop listening");
        }
        self.stop.raise();
    }
}

/// The worker's main future: accept loops plus the control channel.
pub async fn main(init: WorkerInit, driver: DriverKind) {
    let worker = shared(
        init.id,
        init.config.clone(),
        init.tls.clone(),
        init.limits.clone(),
        init.max_conns,
        init.access_log,
        init.watched.clone(),
    );
    worker.workers.set(init.workers.max(1));
    crate::metrics::install(init.id);

    // By address: one socket each, or several after a binary upgrade from
    // a process with more workers.
    let mut accepting: HashMap<SocketAddr, Vec<Accepting>> = HashMap::new();
    for (std_listener, key) in init.listeners {
        match adopt(std_listener, driver) {
            Ok(l) => {
                accepting
                    .entry(key)
                    .or_default()
                    .push(Accepting::start(&worker, l, key));
            }
            Err(e) => warn!(worker = init.id, addr = %key, error = %e, "cannot use listener"),
        }
    }
    // The unix listeners, kept to accept on them again after a binary
    // upgrade that failed midway.
    let mut unix_accepting: Vec<(Rc<UnixListener>, std::path::PathBuf)> = Vec::new();
    for (l, path) in init.unix_listeners {
        let adopted = if driver == DriverKind::Epoll {
            l.set_nonblocking(true)
                .and_then(|()| UnixListener::from_std(l))
        } else {
            UnixListener::from_std(l)
        };
        match adopted {
            Ok(l) => {
                let l = Rc::new(l);
                monoio::spawn(accept_unix_loop(worker.clone(), l.clone(), path.clone()));
                unix_accepting.push((l, path));
            }
            Err(e) => {
                warn!(worker = init.id, addr = %path.display(), error = %e, "cannot use unix listener")
            }
        }
    }
    // A reload's new listeners between `Listen` and `Reload`.
    let mut pending: Vec<(TcpListener, SocketAddr)> = Vec::new();
    let started = init.started;
    let _ = started.send(init.id);
    drop(started);

    if worker.access.enabled() {
        let w = worker.clone();
        monoio::spawn(async move {
            loop {
                monoio::time::sleep(Duration::from_secs(1)).await;
                w.access.flush();
            }
        });
    }

    // The idle sweep runs at a quarter of the shortest proxy_read_timeout
    // the configuration has (100 ms .. 1 s).
    let sweep_for = |c: &Config| {
        let shortest = c
            .servers
            .iter()
            .flat_map(|s| s.locations.iter().map(|l| l.proxy_read_timeout))
            .min()
            .unwrap_or(Duration::from_secs(60));
        crate::proxy::idle::sweep_period(shortest)
    };
    let period = Rc::new(Cell::new(sweep_for(&init.config)));
    {
        let (w, period) = (worker.clone(), period.clone());
        monoio::spawn(async move {
            loop {
                monoio::time::sleep(period.get()).await;
                sweep_tunnels(&w, Instant::now());
                rebalance_tunnels(&w, period.get());
            }
        });
    }

    // `on_down = "close"`: a server's mark-down reaches its tunnels within
    // DOWN_WATCH (the verdicts are atomics; a look is cheap).
    {
        let w = worker.clone();
        monoio::spawn(async move {
            loop {
                let watching = w
                    .snapshot()
                    .upstreams
                    .iter()
                    .any(|g| g.on_down == ringway_config::OnChange::Close);
                monoio::time::sleep(if watching {
                    DOWN_WATCH
                } else {
                    Duration::from_secs(1)
                })
                .await;
                close_down_servers(&w);
            }
        });
    }

    let mut shutdown_timeout = init.config.runtime.shutdown_timeout;
    let mut handoff = None;
    'serve: loop {
        while let Ok(msg) = init.control.recv_async().await {
            match msg {
                Control::Listen { listeners, ready } => {
                    pending.clear();
                    let mut answer = Ok(());
                    for (l, addr) in listeners {
                        match adopt(l, driver) {
                            Ok(l) => pending.push((l, addr)),
                            Err(source) => {
                                // The rest of `listeners` is closed with it.
                                answer = Err(ListenError {
                                    worker: worker.id,
                                    addr,
                                    source,
                                });
                                pending.clear();
                                break;
                            }
                        }
                    }
                    let _ = ready.send(answer);
                }
                Control::Unlisten => {
                    debug!(
                        worker = worker.id,
                        sockets = pending.len(),
                        "reload refused: closing its new listeners"
                    );
                    pending.clear();
                }
                Control::Reload(Reload {
                    config,
                    tls,
                    limits,
                    removed,
                    members,
                }) => {
                    shutdown_timeout = config.runtime.shutdown_timeout;
                    period.set(sweep_for(&config));
                    let before = worker.snapshot();
                    if before.config.log.access_log != config.log.access_log {
                        reopen_log(&worker, &config.log.access_log);
                    }
                    worker.access.set_format(config.log.format.clone());
                    // Tunnels started from now on belong to the new generation.
                    let kit = &worker.kit;
                    let generation = kit.idle.generation.get() + 1;
                    kit.idle.generation.set(generation);
                    if let Some(r) = &kit.relay {
                        r.generation.set(generation);
                    }
                    if let Some(after) = config.runtime.drain_old_tunnels_after {
                        let w = worker.clone();
                        let (spread, grace) =
                            (config.runtime.drain_spread, config.runtime.shutdown_timeout);
                        monoio::spawn(async move {
                            monoio::time::sleep(after).await;
                            // A tunnel still mid-frame `grace` after the last
                            // turn is closed without a close frame.
                            let start = Instant::now();
                            let plan = DrainPlan {
                                before: generation,
                                upstream: None,
                                start,
                                spread,
                                deadline: start + spread + grace,
                            };
                            drain_tunnels(&w, plan).await;
                        });
                    }
                    if let Some(m) = members {
                        *worker.members.borrow_mut() = m;
                    }
                    let members = worker.members.borrow().clone();
                    let next = Snapshot::new(
                        config,
                        tls,
                        limits,
                        Some(&before),
                        &worker.verdicts,
                        &members,
                    );
                    close_removed_servers(&worker, &before, &next);
                    *worker.snapshot.borrow_mut() = Rc::new(next);
                    // New connections on kept addresses get the new snapshot
                    // from here; removed addresses stop listening before the
                    // line below (what a reload's caller waits for); added
                    // ones have queued connections since `Listen`, accepted
                    // from here with the new snapshot.
                    for key in &removed {
                        for a in accepting.remove(key).unwrap_or_default() {
                            a.stop(worker.id, *key);
                        }
                    }
                    let added = pending.len();
                    for (l, key) in pending.drain(..) {
                        let started = vec![Accepting::start(&worker, l, key)];
                        for old in accepting.insert(key, started).unwrap_or_default() {
                            old.stop(worker.id, key);
                        }
                    }
                    info!(
                        worker = worker.id,
                        listeners_added = added,
                        listeners_removed = removed.len(),
                        "configuration reloaded"
                    );
                }
                Control::Metrics(reply) => answer_scrape(&worker, reply),
                Control::Members(members) => {
                    // The same configuration with the resolver's new members:
                    // groups rebuilt as a reload rebuilds them (state kept for
                    // members that stay), tunnels not a new generation.
                    let before = worker.snapshot();
                    let next = Snapshot::new(
                        before.config.clone(),
                        before.tls.clone(),
                        before.limits.clone(),
                        Some(&before),
                        &worker.verdicts,
                        &members,
                    );
                    close_removed_servers(&worker, &before, &next);
                    *worker.members.borrow_mut() = members;
                    *worker.snapshot.borrow_mut() = Rc::new(next);
                }
                Control::ReopenLogs => {
                    let setting = worker.snapshot().config.log.access_log.clone();
                    reopen_log(&worker, &setting);
                }
                Control::Shutdown => break,
                Control::Handoff { sink, settle } => {
                    handoff = Some((sink, settle));
                    break;
                }
                Control::Rearm => worker.rearm.notify(),
                Control::StopHandoff | Control::Leave | Control::Resume => {}
                Control::Adopt(tunnels) => adopt_all(&worker, tunnels, driver),
            }
        }
        if let Some((sink, settle)) = handoff.take() {
            match hand_over(&worker, sink, settle, &init.control, driver).await {
                Handed::All => {
                    worker.handoff.borrow_mut().take();
                    return;
                }
                // Stopped (TERM) while it still held something: a graceful
                // stop of what is left.
                Handed::Stop => {}
                // The new process went away midway: serve on.
                Handed::Resume => {
                    worker.handoff.borrow_mut().take();
                    worker.shutting_down.lower();
                    worker.kit.closing.set(false);
                    for (key, running) in accepting.iter_mut() {
                        let again: Vec<Accepting> =
                            running.iter().map(|a| a.again(&worker, *key)).collect();
                        *running = again;
                    }
                    for (l, path) in &unix_accepting {
                        monoio::spawn(accept_unix_loop(worker.clone(), l.clone(), path.clone()));
                    }
                    info!(worker = worker.id, "upgrade failed midway: accepting again");
                    continue 'serve;
                }
            }
        }
        break;
    }

    // Graceful stop: accept loops end (their listeners close), idle
    // keep-alive connections are left to close, busy ones get up to
    // shutdown_timeout.
    worker.shutting_down.raise();
    worker.kit.closing.set(true);
    let start = Instant::now();
    let mut deadline = start + shutdown_timeout;
    let plan = DrainPlan {
        before: u32::MAX,
        upstream: None,
        start,
        spread: worker.snapshot().config.runtime.drain_spread,
        deadline,
    };
    monoio::spawn({
        let w = worker.clone();
        async move { drain_tunnels(&w, plan).await }
    });
    info!(
        worker = worker.id,
        busy = worker.busy.get(),
        http2 = worker.h2_conns.get(),
        timeout = ?shutdown_timeout,
        "draining"
    );
    let mut cut = false;
    loop {
        let tunnels = live_tunnels(&worker);
        // HTTP/2 connections are waited for too: each sends its GOAWAY,
        // and an idle one closes right after.
        let idle = worker.busy.get() == 0 && worker.h2_conns.get() == 0;
        if idle || (cut && tunnels == 0) {
            break;
        }
        let now = Instant::now();
        if now >= deadline {
            if cut || tunnels == 0 {
                warn!(
                    worker = worker.id,
                    busy = worker.busy.get(),
                    "shutdown_timeout reached, closing remaining connections"
                );
                break;
            }
            // Tunnels still open at shutdown_timeout (a frame in flight
            // that never finished) end now, logged, without a close frame
            // inside the frame.
            let n = cut_tunnels(&worker, now);
            warn!(
                worker = worker.id,
                tunnels = n,
                "shutdown_timeout reached with tunnels mid-frame: closing them without close frames"
            );
            cut = true;
            deadline = now + CUT_WAIT;
            continue;
        }
        let _ = monoio::time::timeout(deadline - now, worker.conn_closed.notified()).await;
    }
    worker.handoff.borrow_mut().take();
    worker.access.flush();
    info!(worker = worker.id, "stopped");
}

/// Binary upgrade: take on `tunnels` (from an older process, or back
/// from a new one that stopped taking them), each counted on its
/// server's first listen address; logged once per batch.
fn adopt_all(worker: &Rc<Shared>, tunnels: Vec<Adoptee>, driver: DriverKind) {
    let (mut count, mut failed) = (0, 0);
    let snap = worker.snapshot();
    let mut listens: HashMap<String, Rc<Listen>> = HashMap::new();
    for t in tunnels {
        let listen = listens
            .entry(t.record.server.clone())
            .or_insert_with(|| {
                let label = snap
                    .config
                    .servers
                    .iter()
                    .find(|s| s.name == t.record.server)
                    .and_then(|s| s.listen.first())
                    .map_or_else(|| "adopted".to_string(), |a| a.to_string());
                Rc::new(Listen {
                    shared: worker.clone(),
                    label: label.into_boxed_str(),
                    http2_streams: false,
                })
            })
            .clone();
        match conn::adopt(
            worker,
            &listen,
            *t.record,
            t.fds,
            driver == DriverKind::Epoll,
        ) {
            Ok(()) => count += 1,
            Err(e) => {
                failed += 1;
                warn!(worker = worker.id, error = %e, "upgrade: cannot adopt a tunnel");
            }
        }
    }
    info!(
        worker = worker.id,
        count, failed, "upgrade: adopted tunnels"
    );
}

/// Answer a scrape with this worker's counts, with what the open tunnels
/// have moved so far (from both tunnel tables).
fn answer_scrape(worker: &Shared, reply: flume::Sender<crate::metrics::WorkerSnapshot>) {
    report_upstream_health(&worker.snapshot());
    let kit = &worker.kit;
    let snap = crate::metrics::local_snapshot_with(|add| {
        kit.idle.live_bytes(add);
        if let Some(r) = &kit.relay {
            r.live_bytes(add);
        }
    });
    if let Some(snap) = snap {
        let _ = reply.send(snap);
    }
}

/// Binary upgrade, the old process, once the new one serves: accept
/// loops end (the listeners live on in the new process), keep-alive
/// connections close after their current answer, plain tunnels go to
/// `sink` at their next quiet moment (and those that start meanwhile, on
/// a connection accepted just before the switch), in-flight requests and
/// TLS or HTTP/2 tunnels finish here — or, with
/// `drain_old_tunnels_after`, are drained with close 1001 after it.
/// Returns how it ended ([`Handed`]). Scrapes and log reopening are
/// still answered meanwhile.
async fn hand_over(
    worker: &Rc<Shared>,
    sink: flume::Sender<crate::handoff::FromWorker>,
    settle: Duration,
    control: &flume::Receiver<Control>,
    driver: DriverKind,
) -> Handed {
    *worker.handoff.borrow_mut() = Some(sink.clone());
    worker.shutting_down.raise();
    worker.kit.closing.set(true);
    let kit = &worker.kit;
    let marked = kit.idle.hand_over() + kit.relay.as_ref().map_or(0, |r| r.hand_over());
    info!(
        worker = worker.id,
        tunnels = marked,
        "upgrade: handing tunnels over"
    );
    let runtime = worker.snapshot().config.runtime.clone();
    if let Some(after) = runtime.drain_old_tunnels_after {
        let w = worker.clone();
        monoio::spawn(async move {
            monoio::time::sleep(after).await;
            let start = Instant::now();
            let plan = DrainPlan {
                before: u32::MAX,
                upstream: None,
                start,
                spread: runtime.drain_spread,
                deadline: start + runtime.drain_spread + runtime.shutdown_timeout,
            };
            drain_tunnels(&w, plan).await;
        });
    }
    let settle_by = Instant::now() + settle;
    let mut settled = false;
    let mut accepts_stopped = false;
    // The new process took no more: nothing is waited for any longer.
    let mut kept_here = false;
    let mut idle_since: Option<Instant> = None;
    // Asked the handoff thread whether it may stop (`Leaving`).
    let mut leaving = false;
    loop {
        // Every accept it had armed is cancelled and completed (a
        // connection one took is served here): the new process looks at
        // the queues again (`Control::Rearm`).
        if !accepts_stopped && worker.accept_loops.get() == 0 {
            let _ = sink.send(crate::handoff::FromWorker::AcceptStopped);
            accepts_stopped = true;
        }
        let plain = kit.idle.plain_live() + kit.relay.as_ref().map_or(0, |r| r.live());
        if !settled && (plain == 0 || kept_here || Instant::now() >= settle_by) {
            let held = live_tunnels(worker);
            let _ = sink.send(crate::handoff::FromWorker::Settled {
                worker: worker.id,
                held,
                drained: worker.drained_in_handoff.get(),
            });
            settled = true;
        }
        // Nothing in flight: connections open without a request (one
        // accepted as the listeners moved, a keep-alive one) get
        // HANDOFF_LINGER to send theirs, which is then answered here.
        if worker.busy.get() == 0 && worker.h2_conns.get() == 0 {
            let since = *idle_since.get_or_insert_with(Instant::now);
            if !leaving && (worker.conns.get() == 0 || since.elapsed() >= HANDOFF_LINGER) {
                // Its last tunnels may still be on their way: it stops
                // once the handoff thread says they were taken.
                let _ = sink.send(crate::handoff::FromWorker::Leaving { worker: worker.id });
                leaving = true;
            }
        } else {
            idle_since = None;
        }
        // Handed tunnels leave no wake-up of their own: look again soon
        // while some are on their way or connections linger, else when a
        // connection ends.
        let wait = if settled && idle_since.is_none() && accepts_stopped {
            Duration::from_secs(1)
        } else {
            HANDOFF_LOOK
        };
        let msg = monoio::select! {
            _ = monoio::time::sleep(wait) => None,
            _ = worker.conn_closed.notified() => None,
            m = control.recv_async() => Some(m),
        };
        match msg {
            None => {}
            Some(Ok(Control::Shutdown)) | Some(Err(_)) => return Handed::Stop,
            Some(Ok(Control::Resume)) => return Handed::Resume,
            Some(Ok(Control::Metrics(reply))) => answer_scrape(worker, reply),
            Some(Ok(Control::ReopenLogs)) => {
                let setting = worker.snapshot().config.log.access_log.clone();
                reopen_log(worker, &setting);
            }
            Some(Ok(Control::Leave)) => {
                if worker.busy.get() == 0 && worker.h2_conns.get() == 0 {
                    break;
                }
                // Tunnels came back meanwhile: it holds them.
                leaving = false;
            }
            Some(Ok(Control::StopHandoff)) => {
                kept_here = true;
                let kit = &worker.kit;
                kit.idle.stop_handing_over();
                if let Some(r) = &kit.relay {
                    r.stop_handing_over();
                }
            }
            // Tunnels the new process did not take: kept here.
            Some(Ok(Control::Adopt(tunnels))) => adopt_all(worker, tunnels, driver),
            // Nothing else is sent to a process that handed over.
            Some(Ok(_)) => {}
        }
    }
    worker.access.flush();
    info!(worker = worker.id, "stopped");
    Handed::All
}

/// How a worker's binary-upgrade handoff ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handed {
    /// It holds nothing more: it stops.
    All,
    /// A stop (TERM) came first: it drains what it still holds.
    Stop,
    /// The new process went away midway: it serves on.
    Resume,
}

/// How often a worker handing tunnels over looks whether any is left.
const HANDOFF_LOOK: Duration = Duration::from_millis(20);
/// How long a worker that handed everything over still answers a request
/// on a connection it holds (accepted as the listeners moved, or kept
/// alive) before it stops and closes them.
const HANDOFF_LINGER: Duration = Duration::from_millis(500);

/// How long the tunnels cut at shutdown_timeout get to end (and log)
/// before the worker stops anyway.
const CUT_WAIT: Duration = Duration::from_secs(1);

/// Tunnels this worker relays now.
fn live_tunnels(worker: &Shared) -> usize {
    worker.kit.idle.live() + worker.kit.relay.as_ref().map_or(0, |r| r.live())
}

/// End every tunnel still live at `now`, shutdown_timeout: each drains
/// with a deadline of now, so it closes at once — with close frames only
/// when both directions are between frames and quiet. Returns how many
/// there were.
fn cut_tunnels(worker: &Shared, now: Instant) -> usize {
    let plan = DrainPlan {
        before: u32::MAX,
        upstream: None,
        start: now,
        spread: Duration::ZERO,
        deadline: now,
    };
    schedule_drains(worker, plan);
    drains_due(worker, now);
    sweep_tunnels(worker, now);
    live_tunnels(worker)
}

/// Schedule `plan` in both of this worker's tunnel tables (the idle
/// sweep's and the ring relay's); returns how many tunnels it took.
fn schedule_drains(worker: &Shared, plan: DrainPlan) -> usize {
    let kit = &worker.kit;
    kit.idle.schedule_drain(plan) + kit.relay.as_ref().map_or(0, |r| r.schedule_drain(plan))
}

/// Start the drains whose turn has come in both tables; returns how many
/// still wait for theirs.
fn drains_due(worker: &Shared, now: Instant) -> usize {
    let kit = &worker.kit;
    kit.idle.drain_due(now) + kit.relay.as_ref().map_or(0, |r| r.drain_due(now))
}

/// Both tables' sweep: idle timeouts, send timeouts (ring) and drains
/// past their deadline.
fn sweep_tunnels(worker: &Shared, now: Instant) {
    let kit = &worker.kit;
    if kit.idle.live() > 0 {
        kit.idle.sweep(now);
    }
    if let Some(r) = kit.relay.as_ref().filter(|r| r.live() > 0) {
        r.sweep(now);
    }
}

/// Why an accept loop's wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Woke {
    /// The accept completed.
    Accepted,
    /// The worker stops (or this listener does): the accept was cancelled.
    Stopping,
    /// Binary upgrade (`Shared::rearm`): the accept was cancelled, to be
    /// armed again.
    Rearmed,
}

/// Accept (`accept` armed with a cancel handle) until a connection comes,
/// the worker or `stop` stops it, or a binary upgrade asks to re-arm.
/// The accept is cancelled, not dropped, and its end is awaited: an
/// io_uring accept can complete with a connection just as it is
/// cancelled, and a dropped one would leak that connection unanswered.
/// The listener may live on elsewhere (a binary upgrade hands it over),
/// so such a connection comes back with the result, to be served like
/// any other.
async fn accept_or_stop<T, F>(
    worker: &Shared,
    stop: Option<&Flag>,
    accept: impl FnOnce(monoio::io::CancelHandle) -> F,
) -> (std::io::Result<T>, Woke)
where
    F: std::future::Future<Output = std::io::Result<T>>,
{
    let canceller = monoio::io::Canceller::new();
    let mut accept = std::pin::pin!(accept(canceller.handle()));
    let stopped = async {
        match stop {
            Some(f) => f.wait().await,
            None => std::future::pending::<()>().await,
        }
    };
    let woke = monoio::select! {
        r = &mut accept => Ok(r),
        _ = worker.shutting_down.wait() => Err(Woke::Stopping),
        _ = stopped => Err(Woke::Stopping),
        _ = worker.rearm.notified() => Err(Woke::Rearmed),
    };
    match woke {
        Ok(r) => (r, Woke::Accepted),
        Err(why) => {
            let _ = canceller.cancel();
            (accept.await, why)
        }
    }
}

/// Counts a running accept loop in [`Shared::accept_loops`] until dropped.
struct AcceptLoop(Rc<Shared>);

impl AcceptLoop {
    fn new(worker: &Rc<Shared>) -> AcceptLoop {
        worker.accept_loops.set(worker.accept_loops.get() + 1);
        AcceptLoop(worker.clone())
    }
}

impl Drop for AcceptLoop {
    fn drop(&mut self) {
        let n = &self.0.accept_loops;
        n.set(n.get().saturating_sub(1));
    }
}

/// How long accept pauses after it fails (out of descriptors or memory).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// Accept failures are logged at most this often (with a count).
const ACCEPT_REPORT_EVERY: Duration = Duration::from_secs(1);

/// Close the tunnels `plan` takes, spread evenly over its `spread`, each
/// with WebSocket close frames 1001 at a frame boundary
/// (`proxy::tunnel`), or without any once its `deadline` passes with a
/// frame still in flight (the sweeps end those). One timer task for the
/// whole schedule, none per tunnel.
async fn drain_tunnels(worker: &Shared, plan: DrainPlan) {
    let n = schedule_drains(worker, plan);
    let spread = plan.spread;
    info!(worker = worker.id, tunnels = n, spread = ?spread, "draining tunnels (close 1001)");
    run_plan(worker, n, plan.start, spread).await;
}

/// How often a worker looks for servers marked down when a group closes
/// their tunnels (`on_down = "close"`).
const DOWN_WATCH: Duration = Duration::from_millis(100);

/// Why a server's tunnels are closed (`ringway_tunnels_moved_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moved {
    /// Its server was marked down (`on_down = "close"`).
    Down,
    /// A reload removed its server (`on_remove = "close"`).
    Removed,
}

impl Moved {
    pub fn label(self) -> &'static str {
        match self {
            Moved::Down => "down",
            Moved::Removed => "removed",
        }
    }
}

/// The watch's turn for `on_down = "close"`: the tunnels of each server
/// marked down since the last look (by the checker, or passively on this
/// worker) are closed, spread over `drain_spread`.
fn close_down_servers(worker: &Rc<Shared>) {
    let snap = worker.snapshot();
    for g in &snap.upstreams {
        for tag in g.take_downs() {
            let server = g
                .peers
                .iter()
                .find(|p| p.tag() == tag)
                .map(|p| p.key.clone());
            close_server_tunnels(
                worker,
                &g.name,
                server.as_deref().unwrap_or("?"),
                tag,
                Moved::Down,
            );
        }
    }
}

/// The sweep's turn for `rebalance`: each group's surplus tunnels on
/// crowded servers (this worker's), newest first, closed with 1001 over
/// the next `period`, within the group's rate.
fn rebalance_tunnels(worker: &Rc<Shared>, period: Duration) {
    let snap = worker.snapshot();
    if snap.upstreams.iter().all(|g| g.rebalance.is_none()) {
        return;
    }
    let kit = &worker.kit;
    let mut draining = HashMap::new();
    kit.idle.draining_by_tag(&mut draining);
    if let Some(r) = &kit.relay {
        r.draining_by_tag(&mut draining);
    }
    let workers = worker.workers.get();
    let grace = snap.config.runtime.shutdown_timeout;
    let now = Instant::now();
    for g in snap.upstreams.iter().filter(|g| g.rebalance.is_some()) {
        let leaving = |tag: u32| draining.get(&tag).copied().unwrap_or(0);
        for m in g.moves(now, &leaving, workers) {
            let plan = DrainPlan {
                before: u32::MAX,
                upstream: None,
                start: now,
                spread: period,
                deadline: now + period + grace,
            };
            let (tag, taken, what) = match m {
                Move::Newest { tag, n } => {
                    let plan = DrainPlan {
                        upstream: Some(tag),
                        ..plan
                    };
                    let n = n as usize;
                    let mut taken = kit
                        .relay
                        .as_ref()
                        .map_or(0, |r| r.schedule_newest(tag, n, plan));
                    taken += kit.idle.schedule_newest(tag, n - taken, plan);
                    (
                        tag,
                        taken,
                        "moving tunnels off a crowded server (close 1001)",
                    )
                }
                Move::These { tag, mut ids } => {
                    ids.sort_unstable();
                    let taken = kit
                        .relay
                        .as_ref()
                        .map_or(0, |r| r.schedule_ids(tag, &ids, plan))
                        + kit.idle.schedule_ids(tag, &ids, plan);
                    (
                        tag,
                        taken,
                        "moving tunnels whose key maps to another server now (close 1001)",
                    )
                }
            };
            crate::metrics::with(|m| m.tunnels_moved(&g.name, "rebalance", taken as u64));
            if taken == 0 {
                continue;
            }
            let server = g
                .peers
                .iter()
                .find(|p| p.tag() == tag)
                .map(|p| p.key.clone());
            info!(
                worker = worker.id,
                upstream = %g.name,
                server = server.as_deref().unwrap_or("?"),
                tunnels = taken,
                "{what}"
            );
            let w = worker.clone();
            monoio::spawn(async move { run_plan(&w, taken, now, period).await });
        }
    }
}

/// A reload's turn for `on_remove = "close"`: the tunnels of the servers
/// `before` has and `next` has not (in the same group, or with their
/// group) are closed, spread over `drain_spread`. The new group's setting
/// decides; a removed group's own.
fn close_removed_servers(worker: &Rc<Shared>, before: &Snapshot, next: &Snapshot) {
    for old in &before.upstreams {
        let new = next.upstream(&old.name);
        let on_remove = new.map_or(old.on_remove, |g| g.on_remove);
        if on_remove != ringway_config::OnChange::Close {
            continue;
        }
        for p in &old.peers {
            let stays = new.is_some_and(|g| g.peers.iter().any(|q| q.tag() == p.tag()));
            if !stays {
                close_server_tunnels(worker, &old.name, &p.key, p.tag(), Moved::Removed);
            }
        }
    }
}

/// Close the tunnels to the server tagged `tag` with close 1001, spread
/// over `drain_spread`, as a graceful stop closes them.
fn close_server_tunnels(worker: &Rc<Shared>, upstream: &str, server: &str, tag: u32, why: Moved) {
    let rt = &worker.snapshot().config.runtime;
    let start = Instant::now();
    let plan = DrainPlan {
        before: u32::MAX,
        upstream: Some(tag),
        start,
        spread: rt.drain_spread,
        deadline: start + rt.drain_spread + rt.shutdown_timeout,
    };
    let n = schedule_drains(worker, plan);
    crate::metrics::with(|m| m.tunnels_moved(upstream, why.label(), n as u64));
    if n == 0 {
        return;
    }
    let what = match why {
        Moved::Down => "closing tunnels of a server marked down (close 1001)",
        Moved::Removed => "closing tunnels of a removed server (close 1001)",
    };
    info!(worker = worker.id, upstream, server, tunnels = n, spread = ?plan.spread, "{what}");
    let w = worker.clone();
    monoio::spawn(async move { run_plan(&w, n, plan.start, plan.spread).await });
}

/// Start the turns of one plan's `n` drains as they come, until its last
/// turn (`start + spread`) has come — not until no drain at all waits on
/// the worker, so tasks of short plans do not outlive them beside a long
/// one.
async fn run_plan(worker: &Shared, n: usize, start: Instant, spread: Duration) {
    let tick = (spread / n.max(1) as u32).clamp(DRAIN_TICK_MIN, DRAIN_TICK_MAX);
    let last = start + spread;
    loop {
        let now = Instant::now();
        if drains_due(worker, now) == 0 || now >= last {
            return;
        }
        monoio::time::sleep(tick.min(last - now)).await;
    }
}

/// The drain schedule's timer resolution.
const DRAIN_TICK_MIN: Duration = Duration::from_millis(5);
const DRAIN_TICK_MAX: Duration = Duration::from_millis(100);

/// Passive health as this worker sees it, into its metrics (read at a
/// scrape, not kept up to date per failure).
fn report_upstream_health(snap: &Snapshot) {
    let now = Instant::now();
    crate::metrics::with(|m| {
        for g in &snap.upstreams {
            for (i, peer) in g.peers.iter().enumerate() {
                if let Some(addr) = g.addrs.get(i).and_then(|a| a.first()) {
                    m.upstream_state(&g.name, &addr.to_string(), peer.health.is_live(now));
                }
            }
        }
    });
}

/// Reopen the access log (SIGUSR1, or a reload that moved it); a
/// failure keeps the old destination and is logged.
fn reopen_log(worker: &Shared, setting: &ringway_config::AccessLog) {
    match worker.access.reopen(setting) {
        Ok(()) => info!(worker = worker.id, "access log reopened"),
        Err(e) => {
            warn!(worker = worker.id, error = %e, "cannot reopen the access log; writing to the old one")
        }
    }
}

/// Over max_connections: pause accepting (the kernel backlog holds new
/// clients) until a connection closes, the worker stops or `stopped`.
async fn wait_for_room(worker: &Shared, stopped: &dyn Fn() -> bool) {
    while worker.conns.get() >= worker.max_conns && !worker.shutting_down.is_raised() && !stopped()
    {
        let _ = monoio::time::timeout(Duration::from_secs(1), worker.conn_closed.notified()).await;
    }
}

/// Failed accepts of one listener (EMFILE/ENFILE/ENOBUFS/ENOMEM): each
/// backs off instead of spinning, and they are reported at most once per
/// [`ACCEPT_REPORT_EVERY`].
#[derive(Default)]
struct AcceptFailures {
    last_report: Option<Instant>,
    since: u64,
}

impl AcceptFailures {
    async fn back_off(&mut self, worker: usize, listen: &str, e: &std::io::Error) {
        self.since += 1;
        crate::metrics::with(|m| m.accept_error());
        let now = Instant::now();
        if self
            .last_report
            .is_none_or(|t| now.duration_since(t) >= ACCEPT_REPORT_EVERY)
        {
            warn!(worker, listen, error = %e, failures = self.since, "accept failed; backing off");
            self.last_report = Some(now);
            self.since = 0;
        }
        monoio::time::sleep(ACCEPT_BACKOFF).await;
    }
}

/// Accept on `listener` until the worker shuts down or a reload removes
/// its address (`stop`); the socket closes when the loop ends.
async fn accept_loop(
    worker: Rc<Shared>,
    listener: Rc<TcpListener>,
    key: SocketAddr,
    listen: Rc<Listen>,
    stop: Rc<Flag>,
) {
    let local = listener.local_addr().ok();
    let mut failed = AcceptFailures::default();
    let _running = AcceptLoop::new(&worker);
    loop {
        wait_for_room(&worker, &|| stop.is_raised()).await;
        if stop.is_raised() || worker.shutting_down.is_raised() {
            break;
        }
        let (accepted, woke) =
            accept_or_stop(&worker, Some(&stop), |c| listener.cancelable_accept(c)).await;
        let stopping = woke == Woke::Stopping;
        if woke != Woke::Accepted && accepted.is_err() {
            if stopping {
                break;
            }
            continue;
        }
        match accepted {
            Ok((stream, peer)) => {
                let guard = ConnGuard::new(&listen);
                let snapshot = worker.snapshot();
                let Some(group) = snapshot.groups.get(&key).cloned() else {
                    // Not reachable: a reload that removes this address
                    // stops this loop as it switches the snapshot.
                    continue;
                };
                if let Err(e) = sys::set_nonblocking(sys::fd(&stream)) {
                    warn!(client = %peer, error = %e, "cannot set non-blocking");
                    continue;
                }
                let _ = stream.set_nodelay(true);
                let local = stream
                    .local_addr()
                    .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
                let accepted = Accepted {
                    worker: worker.clone(),
                    snapshot,
                    group,
                    stream,
                    local,
                    guard,
                };
                if accepted.snapshot.config.proxy_protocol.contains(&key) {
                    monoio::spawn(serve_proxied(accepted, key, peer));
                } else {
                    spawn_serve(accepted, key, Peer::direct(peer));
                }
            }
            Err(e) => failed.back_off(worker.id, &key.to_string(), &e).await,
        }
        if stopping {
            break;
        }
    }
    debug!(worker = worker.id, addr = ?local, "listener closed");
}

/// Accept on a unix listener until the worker shuts down. Its clients
/// are local processes: each is served as a plain connection from
/// `127.0.0.1` port 0 (to access rules, `[real_ip]`, limits and logs),
/// arriving on `127.0.0.1` port 0; the socket is held as the engine's
/// stream type, as unix upstream connections are (`proxy::connect`).
async fn accept_unix_loop(
    worker: Rc<Shared>,
    listener: Rc<UnixListener>,
    path: std::path::PathBuf,
) {
    let key = path.clone();
    let label = format!("unix:{}", path.display());
    let listen = Rc::new(Listen {
        shared: worker.clone(),
        label: label.clone().into_boxed_str(),
        http2_streams: false,
    });
    let local = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut failed = AcceptFailures::default();
    let _running = AcceptLoop::new(&worker);
    loop {
        wait_for_room(&worker, &|| false).await;
        if worker.shutting_down.is_raised() {
            break;
        }
        let (accepted, woke) =
            accept_or_stop(&worker, None, |c| listener.cancelable_accept(c)).await;
        if woke != Woke::Accepted && accepted.is_err() {
            // Stopping: the loop ends at the top.
            continue;
        }
        match accepted {
            Ok((stream, _)) => {
                let guard = ConnGuard::new(&listen);
                let snapshot = worker.snapshot();
                let Some(group) = snapshot.unix_groups.get(&key).cloned() else {
                    continue;
                };
                let fd = sys::take_fd(stream);
                let stream = match sys::set_nonblocking(sys::fd(&fd))
                    .and_then(|()| monoio::net::TcpStream::from_std(std::net::TcpStream::from(fd)))
                {
                    Ok(s) => s,
                    Err(e) => {
                        warn!(listen = %label, error = %e, "cannot use an accepted connection");
                        continue;
                    }
                };
                let accepted = Accepted {
                    worker: worker.clone(),
                    snapshot,
                    group,
                    stream,
                    local,
                    guard,
                };
                spawn_plain(accepted, Peer::direct(local));
            }
            Err(e) => failed.back_off(worker.id, &label, &e).await,
        }
    }
    debug!(worker = worker.id, listen = %label, "unix listener closed");
}

/// An accepted connection on its way to `conn::serve`.
struct Accepted {
    worker: Rc<Shared>,
    snapshot: Rc<Snapshot>,
    group: Rc<crate::route::ServerGroup>,
    stream: monoio::net::TcpStream,
    local: SocketAddr,
    guard: ConnGuard,
}

/// Serve `a` in a task of its own: through the TLS handshake on a TLS
/// listen address, straight to the request path otherwise.
fn spawn_serve(a: Accepted, key: SocketAddr, peer: Peer) {
    match a.snapshot.tls.listeners.get(&key).cloned() {
        None => spawn_plain(a, peer),
        Some(acceptor) => {
            monoio::spawn(serve_tls(a, acceptor, peer));
        }
    }
}

/// A plain (not TLS) connection: HTTP/1.1, or h2c where a server offers it.
fn spawn_plain(a: Accepted, peer: Peer) {
    match h2c_offer(&a) {
        Some(offer) => {
            monoio::spawn(serve_h2c(a, peer, offer));
        }
        None => {
            monoio::spawn(conn::serve(
                a.worker, a.snapshot, a.group, a.stream, peer, a.local, a.guard,
            ));
        }
    }
}

/// What the default server of a plain address offers over HTTP/2 when
/// one of its servers has `http2 = "h2c"`.
fn h2c_offer(a: &Accepted) -> Option<crate::h2io::Offer> {
    let config = &a.snapshot.config;
    let h2c = a
        .group
        .servers
        .iter()
        .any(|&i| config.servers[i].http2 == ringway_config::Http2::H2c);
    h2c.then(|| crate::h2io::Offer::of(a.group.select(config, None)))
}

/// A plain connection where h2c is on: the first bytes decide. The
/// client preface (RFC 9113 §3.3, prior knowledge) goes to the HTTP/2
/// driver; anything else is HTTP/1.1, with those bytes as the start of
/// its first request. The wait for them is the header timeout.
async fn serve_h2c(a: Accepted, peer: Peer, offer: crate::h2io::Offer) {
    use crate::h2::frame::{check_preface, Preface, PREFACE};
    use crate::transport::Transport;
    let timeout = a
        .group
        .select(&a.snapshot.config, None)
        .client_header_timeout;
    let deadline = std::time::Instant::now() + timeout;
    let mut early = Vec::new();
    let h2 = loop {
        match check_preface(&early) {
            Preface::Complete => break true,
            Preface::Http1 | Preface::Invalid => break false,
            Preface::Partial => {}
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        // Boxed: the read's room is not kept by the task for the
        // connection's life.
        let read = monoio::time::timeout(left, a.stream.read_append(&mut early, PREFACE.len()));
        match Box::pin(read).await {
            Ok(Ok(n)) if n > 0 => {}
            // Closed or silent: HTTP/1.1 answers it as it would (408 or close).
            _ => break false,
        }
    };
    // Each protocol's future boxed on its own: the task then holds only
    // the one that runs (the HTTP/1.1 phases are more than twice the
    // HTTP/2 driver's size, and an idle HTTP/2 connection would carry
    // their room for its whole life).
    let run: std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> = if h2 {
        let cx = crate::h2io::Context {
            shared: a.worker,
            snap: a.snapshot,
            listen: a.group,
            addrs: peer,
            local: a.local,
            guard: a.guard,
        };
        Box::pin(crate::h2io::serve(
            cx,
            a.stream,
            early,
            crate::h2::request::Scheme::Http,
            offer,
        ))
    } else {
        Box::pin(conn::serve_buffered(
            a.worker, a.snapshot, a.group, a.stream, peer, a.local, a.guard, early,
        ))
    };
    run.await;
}

/// A connection on a `proxy_protocol` listen: only from a
/// `set_real_ip_from` address, and only with a valid PROXY header within
/// `proxy_protocol_timeout` (nginx closes such connections too); then the
/// usual path with the header's source as the client.
async fn serve_proxied(a: Accepted, key: SocketAddr, tcp: SocketAddr) {
    let real_ip = &a.snapshot.config.real_ip;
    if !real_ip
        .set_real_ip_from
        .iter()
        .any(|c| c.contains(tcp.ip()))
    {
        warn!(client = %tcp, listen = %key, "PROXY protocol connection from an address not in set_real_ip_from; closing");
        return;
    }
    let source = match proxy_header::read(&a.stream, real_ip.proxy_protocol_timeout).await {
        Ok(source) => source,
        Err(e) => {
            info!(client = %tcp, listen = %key, error = %e, "PROXY protocol header refused; closing");
            return;
        }
    };
    spawn_serve(
        a,
        key,
        Peer {
            tcp,
            proxy_protocol: source,
        },
    );
}

/// A connection on a TLS listen address: the handshake (bounded by
/// `handshake_timeout`), the per-server `min_version` of the server SNI
/// picks, then the same request path as plain TCP.
async fn serve_tls(a: Accepted, acceptor: Arc<Acceptor>, peer: Peer) {
    // The handshake's state (about 3 KiB) and the protocol's are each
    // boxed and the TLS stream moves into the latter: once the handshake
    // is done, this task holds a pointer (an idle wss tunnel or HTTP/2
    // connection held about 5 KiB more when the handshake was inline).
    let run = {
        let Accepted {
            worker,
            snapshot,
            group,
            stream,
            local,
            guard,
        } = a;
        let tls = match Box::pin(tls::accept(stream, &acceptor)).await {
            Ok(t) => {
                crate::metrics::with(|m| m.tls_handshake(true));
                t
            }
            Err(e) => {
                crate::metrics::with(|m| m.tls_handshake(false));
                info!(client = %peer.tcp, error = %e, "TLS handshake failed");
                return;
            }
        };
        drop(acceptor);
        match after_handshake(worker, snapshot, group, tls, peer, local, guard) {
            Some(run) => run,
            None => return,
        }
    };
    run.await;
}

/// The protocol a TLS connection speaks once its handshake is done
/// (ALPN `h2` or HTTP/1.1), boxed; `None` when the connection is to be
/// closed (below the server's `min_version`).
fn after_handshake(
    worker: Rc<Shared>,
    snapshot: Rc<Snapshot>,
    group: Rc<crate::route::ServerGroup>,
    tls: crate::tls::ServerTls,
    peer: Peer,
    local: SocketAddr,
    guard: ConnGuard,
) -> Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>> {
    let info = tls.tls_info().cloned().unwrap_or_default();
    let config = &snapshot.config;
    let server = &config.servers[group.select_index(config, info.server_name.as_deref())];
    if let Some(t) = &server.tls {
        if t.min_version == ringway_config::TlsVersion::V1_3 && info.protocol != "TLSv1.3" {
            info!(client = %peer.tcp, server = %server.name, protocol = info.protocol, "TLS version below the server's min_version; closing");
            return None;
        }
    }
    if tls.alpn_h2() {
        let offer = crate::h2io::Offer::of(server);
        let cx = crate::h2io::Context {
            shared: worker,
            snap: snapshot,
            listen: group,
            addrs: peer,
            local,
            guard,
        };
        let scheme = crate::h2::request::Scheme::Https;
        return Some(Box::pin(crate::h2io::serve(
            cx,
            tls,
            Vec::new(),
            scheme,
            offer,
        )));
    }
    Some(Box::pin(conn::serve(
        worker, snapshot, group, tls, peer, local, guard,
    )))
}
