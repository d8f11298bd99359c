//! The counting side: one [`Metrics`] per worker, single-threaded (one
//! `RefCell`, never borrowed across an await or a call out). Label strings
//! are interned per kind on first sight (one `Box<str>` and one series
//! slot, kept for the worker's life, as Prometheus keeps a series once
//! shown); after that an event costs a hash lookup or two and an index
//! into a `Vec`, and allocates nothing. Tunnels hold a [`SeriesId`] so
//! their close is a plain index.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

use super::series::{ListenStats, ServerStats, UpstreamStats, WorkerSnapshot, ZoneStats};
use super::{status_class, CloseReason, LimitKind, UpgradeResult};

/// A tunnel's series (its server/upstream pair) in the worker that opened
/// it; only meaningful to that worker's [`Metrics`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeriesId(u32);

/// Label text → a dense id, and back.
#[derive(Default)]
struct Interner {
    ids: HashMap<Box<str>, u32>,
    names: Vec<Box<str>>,
}

impl Interner {
    /// The id of `s`; a new one is `names.len() - 1` (the caller pushes
    /// the matching series).
    fn id(&mut self, s: &str) -> (usize, bool) {
        if let Some(&id) = self.ids.get(s) {
            return (id as usize, false);
        }
        let id = self.names.len();
        self.names.push(s.into());
        self.ids.insert(s.into(), id as u32);
        (id, true)
    }

    fn name(&self, id: usize) -> &str {
        &self.names[id]
    }
}

/// One kind of labelled series: interned label text, the stats by id.
struct Table<T> {
    names: Interner,
    stats: Vec<T>,
}

impl<T: Default> Table<T> {
    fn new() -> Self {
        Self {
            names: Interner::default(),
            stats: Vec::new(),
        }
    }

    fn id(&mut self, s: &str) -> usize {
        let (id, new) = self.names.id(s);
        if new {
            self.stats.push(T::default());
        }
        id
    }

    fn get(&mut self, s: &str) -> &mut T {
        let id = self.id(s);
        &mut self.stats[id]
    }

    fn snapshot(&self) -> Vec<(String, T)>
    where
        T: Clone,
    {
        let mut v: Vec<(String, T)> = (0..self.stats.len())
            .map(|i| (self.names.name(i).to_owned(), self.stats[i].clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

struct Pair {
    /// Into `Inner::pair_servers`.
    server: usize,
    upstream: usize,
    /// The server block's stats (into `servers`) of a tunnel's pair, for
    /// its close reason and lifetime.
    server_stats: Option<usize>,
    stats: UpstreamStats,
}

struct Inner {
    accept_errors: u64,
    tls_ok: u64,
    tls_failed: u64,
    listens: Table<ListenStats>,
    servers: Table<ServerStats>,
    zones: Table<ZoneStats>,
    /// Upstream address text (the stats live in `pairs`).
    upstreams: Interner,
    /// The first label of a pair: a server block for a tunnel, the
    /// upstream server's address for a connect or health report. Not
    /// `servers`, where it would show as a server block with no traffic.
    pair_servers: Interner,
    /// `(server id, upstream id)` → index into `pairs`.
    pair_ids: HashMap<(u32, u32), u32>,
    pairs: Vec<Pair>,
}

impl Inner {
    fn pair(&mut self, server: &str, upstream: &str) -> usize {
        let (s, _) = self.pair_servers.id(server);
        let (u, _) = self.upstreams.id(upstream);
        let key = (s as u32, u as u32);
        if let Some(&i) = self.pair_ids.get(&key) {
            return i as usize;
        }
        let i = self.pairs.len();
        self.pairs.push(Pair {
            server: s,
            upstream: u,
            server_stats: None,
            stats: UpstreamStats::default(),
        });
        self.pair_ids.insert(key, i as u32);
        i
    }
}

/// One worker's counts. `!Send` by design: it lives in the worker's
/// shared state and is read out through [`Metrics::snapshot`].
pub struct Metrics {
    worker: usize,
    inner: RefCell<Inner>,
}

impl Metrics {
    pub fn new(worker: usize) -> Self {
        Self {
            worker,
            inner: RefCell::new(Inner {
                accept_errors: 0,
                tls_ok: 0,
                tls_failed: 0,
                listens: Table::new(),
                servers: Table::new(),
                zones: Table::new(),
                upstreams: Interner::default(),
                pair_servers: Interner::default(),
                pair_ids: HashMap::new(),
                pairs: Vec::new(),
            }),
        }
    }

    pub fn worker(&self) -> usize {
        self.worker
    }

    /// A client connection accepted on `listen` (the listen address as
    /// configured): accepted +1, active +1.
    pub fn conn_opened(&self, listen: &str) {
        let mut m = self.inner.borrow_mut();
        let s = m.listens.get(listen);
        s.accepted += 1;
        s.active += 1;
    }

    /// That connection closed: active −1.
    pub fn conn_closed(&self, listen: &str) {
        let mut m = self.inner.borrow_mut();
        let s = m.listens.get(listen);
        s.active = s.active.saturating_sub(1);
    }

    /// accept(2) failed (EMFILE, ENFILE, ENOBUFS, ...).
    pub fn accept_error(&self) {
        self.inner.borrow_mut().accept_errors += 1;
    }

    /// A request answered (by ringway or an upstream) with `status`, after
    /// `duration` from its head to the end of the answer. Counted by
    /// class; a code outside 100..=599 goes to the nearest class.
    pub fn http_request(&self, server: &str, status: u16, duration: Duration) {
        let mut m = self.inner.borrow_mut();
        let s = m.servers.get(server);
        s.requests[status_class(status)] += 1;
        s.request_duration.observe(duration);
    }

    pub fn upgrade(&self, server: &str, result: UpgradeResult) {
        let mut m = self.inner.borrow_mut();
        m.servers.get(server).upgrades[result as usize] += 1;
    }

    /// A tunnel started between a client of `server` and `upstream` (the
    /// peer's address text): the active gauge +1. Keep the id for
    /// [`Metrics::tunnel_closed`].
    pub fn tunnel_opened(&self, server: &str, upstream: &str) -> SeriesId {
        let mut m = self.inner.borrow_mut();
        let st = m.servers.id(server);
        let i = m.pair(server, upstream);
        m.pairs[i].server_stats = Some(st);
        let s = &mut m.pairs[i].stats;
        s.tunnels_opened += 1;
        s.tunnels_active += 1;
        SeriesId(i as u32)
    }

    /// The tunnel `id` ended: the active gauge −1, its bytes each way, its
    /// close reason and lifetime.
    pub fn tunnel_closed(
        &self,
        id: SeriesId,
        reason: CloseReason,
        client_to_upstream: u64,
        upstream_to_client: u64,
        duration: Duration,
    ) {
        let mut m = self.inner.borrow_mut();
        let Some(p) = m.pairs.get_mut(id.0 as usize) else {
            debug_assert!(false, "a SeriesId from another worker");
            return;
        };
        let s = &mut p.stats;
        s.tunnels_active = s.tunnels_active.saturating_sub(1);
        s.bytes_client_to_upstream += client_to_upstream;
        s.bytes_upstream_to_client += upstream_to_client;
        if let Some(server) = p.server_stats {
            let st = &mut m.servers.stats[server];
            st.tunnels_closed[reason as usize] += 1;
            st.tunnel_duration.observe(duration);
        }
    }

    /// A connect to `upstream` for `server`: its latency, or a failure
    /// (refused, timed out, unreachable).
    pub fn upstream_connect(&self, upstream: &str, server: &str, result: Result<Duration, ()>) {
        let mut m = self.inner.borrow_mut();
        let i = m.pair(server, upstream);
        let s = &mut m.pairs[i].stats;
        s.connect_seen = true;
        match result {
            Ok(d) => s.connect_duration.observe(d),
            Err(()) => s.connect_failures += 1,
        }
    }

    /// Passive health changed for `upstream` as `server` uses it (every
    /// pair starts up).
    pub fn upstream_state(&self, upstream: &str, server: &str, up: bool) {
        let mut m = self.inner.borrow_mut();
        let i = m.pair(server, upstream);
        let s = &mut m.pairs[i].stats;
        s.connect_seen = true;
        s.up = up;
    }

    pub fn tls_handshake(&self, ok: bool) {
        let mut m = self.inner.borrow_mut();
        if ok {
            m.tls_ok += 1;
        } else {
            m.tls_failed += 1;
        }
    }

    /// A limit in `zone` turned a request or connection away.
    pub fn limit_rejected(&self, zone: &str, kind: LimitKind) {
        let mut m = self.inner.borrow_mut();
        let z = m.zones.get(zone);
        match kind {
            LimitKind::Req => z.rejected_req += 1,
            LimitKind::Conn => z.rejected_conn += 1,
        }
    }

    /// A request-rate limit in `zone` delayed a request (burst).
    pub fn limit_delayed(&self, zone: &str) {
        self.inner.borrow_mut().zones.get(zone).delayed += 1;
    }

    /// Everything counted so far, as a plain value for another thread.
    pub fn snapshot(&self) -> WorkerSnapshot {
        let m = self.inner.borrow();
        let mut upstreams: Vec<((String, String), UpstreamStats)> = m
            .pairs
            .iter()
            .map(|p| {
                let server = m.pair_servers.name(p.server).to_owned();
                let upstream = m.upstreams.name(p.upstream).to_owned();
                ((server, upstream), p.stats.clone())
            })
            .collect();
        upstreams.sort_by(|a, b| a.0.cmp(&b.0));
        WorkerSnapshot {
            worker: self.worker,
            accept_errors: m.accept_errors,
            tls_handshakes_ok: m.tls_ok,
            tls_handshakes_failed: m.tls_failed,
            listens: m.listens.snapshot(),
            servers: m.servers.snapshot(),
            upstreams,
            zones: m.zones.snapshot(),
        }
    }
}
