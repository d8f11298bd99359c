//! What one worker's connections share: the current configuration
//! snapshot, the per-core proxy kit, the access log, and the counters and
//! signals the worker drains by. Single-threaded (`Cell`, `RefCell`, `Rc`);
//! the runtime builds one per worker and hands connections an `Rc` to it.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use crate::access_log::AccessLog;
use crate::proxy::kit::Kit;
use crate::snapshot::Snapshot;
use crate::wake::{Flag, Notify};

pub struct Shared {
    pub id: usize,
    /// The snapshot new connections start with (live ones keep theirs).
    pub snapshot: RefCell<Rc<Snapshot>>,
    pub kit: Kit,
    pub access: AccessLog,
    /// Open client connections on this worker, and the most allowed.
    pub conns: Cell<usize>,
    pub max_conns: usize,
    /// Woken when a connection closes (accept waits on it at the limit)
    /// and when the last busy connection finishes during a drain.
    pub conn_closed: Notify,
    /// Connections in the middle of an exchange or tunnel (not idle
    /// keep-alive): what a graceful stop waits for.
    pub busy: Cell<usize>,
    /// Open HTTP/2 connections: a graceful stop also waits for them, so
    /// that each writes its GOAWAY (an idle one closes right after).
    pub h2_conns: Cell<usize>,
    pub shutting_down: Flag,
    /// The active health checker's verdicts (the process's): what each
    /// new snapshot's upstream groups read.
    pub verdicts: std::sync::Arc<crate::upstream::verdict::Verdicts>,
    /// The resolver's latest table of `resolve = true` servers' addresses.
    pub members: RefCell<std::sync::Arc<crate::upstream::resolver::Members>>,
    /// How many workers the process runs (set once at start).
    pub workers: Cell<usize>,
    /// During a binary upgrade: where tunnels go to be handed over.
    pub handoff: RefCell<Option<flume::Sender<crate::handoff::FromWorker>>>,
    /// Tunnels closed with 1001 since a binary upgrade began.
    pub drained_in_handoff: Cell<usize>,
    /// Accept loops running (a binary upgrade waits for them to end).
    pub accept_loops: Cell<usize>,
    /// Binary upgrade, the new process: every accept loop cancels its
    /// armed accept and arms a new one, which looks at the queue again.
    pub rearm: Notify,
}

impl Shared {
    pub fn snapshot(&self) -> Rc<Snapshot> {
        self.snapshot.borrow().clone()
    }

    /// Mark a connection busy until the guard drops.
    pub fn busy(self: &Rc<Self>) -> BusyGuard {
        self.busy.set(self.busy.get() + 1);
        BusyGuard(self.clone())
    }
}

pub struct BusyGuard(Rc<Shared>);

/// Counts an open HTTP/2 connection ([`Shared::h2_conns`]) until dropped.
pub struct H2ConnGuard(Rc<Shared>);

impl H2ConnGuard {
    pub fn new(w: &Rc<Shared>) -> Self {
        w.h2_conns.set(w.h2_conns.get() + 1);
        H2ConnGuard(w.clone())
    }
}

impl Drop for H2ConnGuard {
    fn drop(&mut self) {
        let w = &self.0;
        w.h2_conns.set(w.h2_conns.get() - 1);
        if w.h2_conns.get() == 0 && w.shutting_down.is_raised() {
            w.conn_closed.notify();
        }
    }
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        let w = &self.0;
        w.busy.set(w.busy.get() - 1);
        if w.busy.get() == 0 && w.shutting_down.is_raised() {
            w.conn_closed.notify();
        }
    }
}

/// One listen address of a worker: what its connections' guards share.
pub struct Listen {
    pub shared: Rc<Shared>,
    /// The address as configured (the metrics' `listen` label).
    pub label: Box<str>,
    /// The guards are HTTP/2 streams of a connection on this address:
    /// they count toward `max_connections` (each runs the request phases
    /// and may hold an upstream connection) but in the metrics as
    /// streams, not connections.
    pub http2_streams: bool,
}

/// Counts an open connection; wakes a paused accept loop when it closes.
/// (One pointer: the listen address's, shared by its connections.)
pub struct ConnGuard(Rc<Listen>);

impl ConnGuard {
    /// The listen address the connection counts under.
    pub fn listen(&self) -> &Rc<Listen> {
        &self.0
    }

    pub fn new(l: &Rc<Listen>) -> Self {
        crate::metrics::with(|m| {
            if l.http2_streams {
                m.stream_opened(&l.label)
            } else {
                m.conn_opened(&l.label)
            }
        });
        let w = &l.shared;
        w.conns.set(w.conns.get() + 1);
        ConnGuard(l.clone())
    }

    /// The listen address of this connection's HTTP/2 streams: their
    /// guards ([`ConnGuard::new`] on it) count toward `max_connections`
    /// as connections, and in the metrics as streams. One per HTTP/2
    /// connection.
    pub fn streams(&self) -> Rc<Listen> {
        Rc::new(Listen {
            shared: self.0.shared.clone(),
            label: self.0.label.clone(),
            http2_streams: true,
        })
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let w = &self.0.shared;
        w.conns.set(w.conns.get() - 1);
        crate::metrics::with(|m| {
            if self.0.http2_streams {
                m.stream_closed(&self.0.label)
            } else {
                m.conn_closed(&self.0.label)
            }
        });
        w.conn_closed.notify();
    }
}
