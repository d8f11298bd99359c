//! One worker: a pinned thread running its own monoio runtime, its own
//! listeners (SO_REUSEPORT), connections, pools and upstream cursors.
//! Nothing here is shared with other workers; the control thread talks to
//! it over a channel (new config snapshot, shutdown).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use monoio::net::TcpListener;
use ringway_config::Config;
use tracing::{debug, info, warn};

use crate::access_log::{AccessLog, Sink};
use crate::conn;
use crate::idle::IdleSweep;
use crate::local::{Flag, Notify};
use crate::pool::{BufPool, PipePool};
use crate::route::ServerGroup;
use crate::upstream;

/// Messages from the control thread.
pub enum Control {
    /// A new configuration for new connections (SIGHUP); live connections
    /// keep the snapshot they started with.
    Reload(Arc<Config>),
    /// Stop accepting; let busy connections finish up to shutdown_timeout.
    Shutdown,
}

/// The configuration one connection runs with, plus what the worker derives
/// from it.
pub struct Snapshot {
    pub config: Arc<Config>,
    /// Servers per configured listen address.
    pub groups: HashMap<SocketAddr, Rc<ServerGroup>>,
    /// This worker's balancing and health state per upstream group.
    pub upstreams: HashMap<String, Rc<upstream::Group>>,
}

impl Snapshot {
    pub fn new(config: Arc<Config>) -> Self {
        let mut groups: HashMap<SocketAddr, ServerGroup> = HashMap::new();
        for (i, server) in config.servers.iter().enumerate() {
            for addr in &server.listen {
                groups
                    .entry(*addr)
                    .or_insert_with(|| ServerGroup {
                        servers: Vec::new(),
                    })
                    .servers
                    .push(i);
            }
        }
        let upstreams = config
            .upstreams
            .iter()
            .map(|(name, up)| (name.clone(), Rc::new(upstream::Group::new(up))))
            .collect();
        Snapshot {
            groups: groups.into_iter().map(|(k, v)| (k, Rc::new(v))).collect(),
            upstreams,
            config,
        }
    }
}

/// Per-worker state shared by its connections (`Rc`, single thread).
pub struct Worker {
    pub id: usize,
    pub snapshot: RefCell<Rc<Snapshot>>,
    pub bufs: BufPool,
    pub pipes: PipePool,
    pub splice: bool,
    /// Open client connections on this worker.
    pub conns: Cell<usize>,
    pub max_conns: usize,
    /// Woken when a connection closes (accept waits on it at the limit).
    pub conn_closed: Notify,
    /// Connections in the middle of an exchange or tunnel (not idle
    /// keep-alive): what a graceful stop waits for.
    pub busy: Cell<usize>,
    pub shutting_down: Flag,
    pub access: AccessLog,
    /// Idle timeouts of this worker's tunnels.
    pub idle: IdleSweep,
}

impl Worker {
    pub fn snapshot(&self) -> Rc<Snapshot> {
        self.snapshot.borrow().clone()
    }

    /// Mark this connection busy until the guard drops.
    pub fn busy(self: &Rc<Self>) -> BusyGuard {
        self.busy.set(self.busy.get() + 1);
        BusyGuard(self.clone())
    }
}

pub struct BusyGuard(Rc<Worker>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        let w = &self.0;
        w.busy.set(w.busy.get() - 1);
        if w.busy.get() == 0 && w.shutting_down.is_raised() {
            w.conn_closed.notify();
        }
    }
}

/// Counts an open connection; wakes a paused accept loop when it closes.
pub struct ConnGuard(Rc<Worker>);

impl ConnGuard {
    pub fn new(w: &Rc<Worker>) -> Self {
        w.conns.set(w.conns.get() + 1);
        ConnGuard(w.clone())
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let w = &self.0;
        w.conns.set(w.conns.get() - 1);
        w.conn_closed.notify();
    }
}

/// What a worker is started with.
pub struct WorkerInit {
    pub id: usize,
    pub config: Arc<Config>,
    /// Bound sockets with the configured address they serve.
    pub listeners: Vec<(std::net::TcpListener, SocketAddr)>,
    pub control: flume::Receiver<Control>,
    pub max_conns: usize,
    pub access_log: Sink,
}

impl Worker {
    pub fn new(id: usize, config: Arc<Config>, max_conns: usize, access_log: Sink) -> Rc<Worker> {
        let rt = &config.runtime;
        Rc::new(Worker {
            id,
            bufs: BufPool::new(rt.tunnel_buffer, 256),
            pipes: PipePool::new(64),
            splice: rt.splice,
            snapshot: RefCell::new(Rc::new(Snapshot::new(config))),
            conns: Cell::new(0),
            max_conns,
            conn_closed: Notify::default(),
            busy: Cell::new(0),
            shutting_down: Flag::default(),
            access: AccessLog::new(access_log),
            idle: IdleSweep::default(),
        })
    }
}

/// The worker's main future: accept loops plus the control channel.
pub async fn main(init: WorkerInit) {
    let worker = Worker::new(
        init.id,
        init.config.clone(),
        init.max_conns,
        init.access_log,
    );

    for (std_listener, key) in init.listeners {
        let listener = match TcpListener::from_std(std_listener) {
            Ok(l) => l,
            Err(e) => {
                warn!(worker = init.id, error = %e, "cannot use listener");
                continue;
            }
        };
        monoio::spawn(accept_loop(worker.clone(), listener, key));
    }

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
        crate::idle::sweep_period(shortest)
    };
    let period = Rc::new(Cell::new(sweep_for(&init.config)));
    {
        let (w, period) = (worker.clone(), period.clone());
        monoio::spawn(async move {
            loop {
                monoio::time::sleep(period.get()).await;
                if w.idle.live() > 0 {
                    w.idle.sweep(Instant::now());
                }
            }
        });
    }

    let mut shutdown_timeout = init.config.runtime.shutdown_timeout;
    while let Ok(msg) = init.control.recv_async().await {
        match msg {
            Control::Reload(config) => {
                shutdown_timeout = config.runtime.shutdown_timeout;
                period.set(sweep_for(&config));
                *worker.snapshot.borrow_mut() = Rc::new(Snapshot::new(config));
                info!(worker = worker.id, "configuration reloaded");
            }
            Control::Shutdown => break,
        }
    }

    // Graceful stop: accept loops end (their listeners close), idle
    // keep-alive connections are left to close, busy ones get up to
    // shutdown_timeout.
    worker.shutting_down.raise();
    let deadline = Instant::now() + shutdown_timeout;
    info!(
        worker = worker.id,
        busy = worker.busy.get(),
        timeout = ?shutdown_timeout,
        "draining"
    );
    while worker.busy.get() > 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            warn!(
                worker = worker.id,
                busy = worker.busy.get(),
                "shutdown_timeout reached, closing remaining connections"
            );
            break;
        }
        let _ = monoio::time::timeout(left, worker.conn_closed.notified()).await;
    }
    worker.access.flush();
    info!(worker = worker.id, "stopped");
}

async fn accept_loop(worker: Rc<Worker>, listener: TcpListener, key: SocketAddr) {
    let local = listener.local_addr().ok();
    loop {
        while worker.conns.get() >= worker.max_conns && !worker.shutting_down.is_raised() {
            // Over max_connections: pause accepting (the kernel backlog
            // holds new clients) until a connection closes.
            let _ =
                monoio::time::timeout(Duration::from_secs(1), worker.conn_closed.notified()).await;
        }
        let accepted = monoio::select! {
            r = listener.accept() => r,
            _ = worker.shutting_down.wait() => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                let guard = ConnGuard::new(&worker);
                let snapshot = worker.snapshot();
                let Some(group) = snapshot.groups.get(&key).cloned() else {
                    // Not reachable: reloads keep the listen set.
                    continue;
                };
                monoio::spawn(conn::serve(
                    worker.clone(),
                    snapshot,
                    group,
                    stream,
                    peer,
                    guard,
                ));
            }
            Err(e) => {
                // EMFILE/ENFILE/ENOBUFS: back off briefly instead of spinning.
                warn!(worker = worker.id, error = %e, "accept failed");
                monoio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    debug!(worker = worker.id, addr = ?local, "listener closed");
}
