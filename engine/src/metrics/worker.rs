//! The counting side: one [`Metrics`] per worker, single-threaded (one
//! `RefCell`, never borrowed across an await or a call out). Label strings
//! are interned per kind on first sight (one `Box<str>` and one series
//! slot, kept for the worker's life, as Prometheus keeps a series once
//! shown); after that an event costs a hash lookup or two and an index
//! into a `Vec`, and allocates nothing. Tunnels hold a [`SeriesId`] so
//! their close is a plain index. The bytes of open tunnels are not
//! counted here as they move: the relays keep them in their own
//! per-tunnel slots, and a scrape adds them to its snapshot
//! ([`Metrics::snapshot_with`]) — so a long tunnel's traffic shows while
//! it is open at no cost per message.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

use super::series::{
    ListenStats, MovedStats, ServerStats, TunnelLabels, TunnelStats, UpstreamLabels, UpstreamStats,
    WorkerSnapshot, ZoneStats,
};
use super::{status_class, CloseReason, LimitKind, UpgradeResult};

/// A tunnel's series (its server block, upstream and upstream server) in
/// the worker that opened it; only meaningful to that worker's
/// [`Metrics`].
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

/// A server block's tunnels to one upstream server.
struct TunnelSeries {
    /// Into `Inner::servers` (the block's close reasons and lifetimes).
    server: usize,
    /// Into `Inner::upstreams`.
    upstream: usize,
    /// Into `Inner::addrs`.
    addr: usize,
    stats: TunnelStats,
}

/// An upstream server's connects and health.
struct UpstreamSeries {
    upstream: usize,
    addr: usize,
    stats: UpstreamStats,
}

struct Inner {
    accept_errors: u64,
    tls_ok: u64,
    tls_failed: u64,
    listens: Table<ListenStats>,
    servers: Table<ServerStats>,
    zones: Table<ZoneStats>,
    moved: Table<MovedStats>,
    /// Upstream names (`upstream` labels): a group's name, or the
    /// address of a `proxy_pass` to an address.
    upstreams: Interner,
    /// Upstream server addresses (`upstream_addr` labels).
    addrs: Interner,
    /// `(server, upstream, addr)` ids → index into `tunnels`.
    tunnel_ids: HashMap<(u32, u32, u32), u32>,
    tunnels: Vec<TunnelSeries>,
    /// `(upstream, addr)` ids → index into `upstream_series`.
    upstream_ids: HashMap<(u32, u32), u32>,
    upstream_series: Vec<UpstreamSeries>,
}

impl Inner {
    fn tunnel(&mut self, server: &str, upstream: &str, addr: &str) -> usize {
        let s = self.servers.id(server);
        let (u, _) = self.upstreams.id(upstream);
        let (a, _) = self.addrs.id(addr);
        let key = (s as u32, u as u32, a as u32);
        if let Some(&i) = self.tunnel_ids.get(&key) {
            return i as usize;
        }
        let i = self.tunnels.len();
        self.tunnels.push(TunnelSeries {
            server: s,
            upstream: u,
            addr: a,
            stats: TunnelStats::default(),
        });
        self.tunnel_ids.insert(key, i as u32);
        i
    }

    fn upstream(&mut self, upstream: &str, addr: &str) -> &mut UpstreamStats {
        let (u, _) = self.upstreams.id(upstream);
        let (a, _) = self.addrs.id(addr);
        let key = (u as u32, a as u32);
        let i = match self.upstream_ids.get(&key) {
            Some(&i) => i as usize,
            None => {
                let i = self.upstream_series.len();
                self.upstream_series.push(UpstreamSeries {
                    upstream: u,
                    addr: a,
                    stats: UpstreamStats::default(),
                });
                self.upstream_ids.insert(key, i as u32);
                i
            }
        };
        &mut self.upstream_series[i].stats
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
                moved: Table::new(),
                upstreams: Interner::default(),
                addrs: Interner::default(),
                tunnel_ids: HashMap::new(),
                tunnels: Vec::new(),
                upstream_ids: HashMap::new(),
                upstream_series: Vec::new(),
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

    /// An HTTP/2 stream opened on a connection of `listen`.
    pub fn stream_opened(&self, listen: &str) {
        let mut m = self.inner.borrow_mut();
        let s = m.listens.get(listen);
        s.http2_streams += 1;
        s.http2_streams_active += 1;
    }

    /// That stream ended.
    pub fn stream_closed(&self, listen: &str) {
        let mut m = self.inner.borrow_mut();
        let s = m.listens.get(listen);
        s.http2_streams_active = s.http2_streams_active.saturating_sub(1);
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

    /// A tunnel started between a client of `server` (the server
    /// block's name) and the upstream server at `upstream_addr` of
    /// `upstream` (its group's name, or the address of a `proxy_pass` to
    /// an address): the active gauge +1. Keep the id for
    /// [`Metrics::tunnel_bytes`] and [`Metrics::tunnel_closed`], and
    /// report its bytes while it is open through
    /// [`Metrics::snapshot_with`].
    pub fn tunnel_opened(&self, server: &str, upstream: &str, upstream_addr: &str) -> SeriesId {
        let mut m = self.inner.borrow_mut();
        let i = m.tunnel(server, upstream, upstream_addr);
        let s = &mut m.tunnels[i].stats;
        s.opened += 1;
        s.active += 1;
        SeriesId(i as u32)
    }

    /// Bytes the tunnel `id` moved outside its relay (those that came
    /// with the upgrade request and its 101), counted as they are.
    pub fn tunnel_bytes(&self, id: SeriesId, client_to_upstream: u64, upstream_to_client: u64) {
        let mut m = self.inner.borrow_mut();
        let Some(t) = m.tunnels.get_mut(id.0 as usize) else {
            debug_assert!(false, "a SeriesId from another worker");
            return;
        };
        t.stats.bytes_client_to_upstream += client_to_upstream;
        t.stats.bytes_upstream_to_client += upstream_to_client;
    }

    /// The tunnel `id` ended: the active gauge −1, the bytes its relay
    /// moved each way (shown as live bytes by [`Metrics::snapshot_with`]
    /// until now, counted here once), its close reason and lifetime.
    pub fn tunnel_closed(
        &self,
        id: SeriesId,
        reason: CloseReason,
        client_to_upstream: u64,
        upstream_to_client: u64,
        duration: Duration,
    ) {
        let mut m = self.inner.borrow_mut();
        let Some(t) = m.tunnels.get_mut(id.0 as usize) else {
            debug_assert!(false, "a SeriesId from another worker");
            return;
        };
        let server = t.server;
        let s = &mut t.stats;
        s.active = s.active.saturating_sub(1);
        s.bytes_client_to_upstream += client_to_upstream;
        s.bytes_upstream_to_client += upstream_to_client;
        let st = &mut m.servers.stats[server];
        st.tunnels_closed[reason as usize] += 1;
        st.tunnel_duration.observe(duration);
    }

    /// The tunnel `id` was handed to a new process (binary upgrade): the
    /// active gauge −1 and the bytes its relay moved here; no close.
    pub fn tunnel_handed(&self, id: SeriesId, client_to_upstream: u64, upstream_to_client: u64) {
        let mut m = self.inner.borrow_mut();
        let Some(t) = m.tunnels.get_mut(id.0 as usize) else {
            debug_assert!(false, "a SeriesId from another worker");
            return;
        };
        let s = &mut t.stats;
        s.active = s.active.saturating_sub(1);
        s.bytes_client_to_upstream += client_to_upstream;
        s.bytes_upstream_to_client += upstream_to_client;
    }

    /// A connect to the upstream server at `upstream_addr` of `upstream`
    /// (as in [`Metrics::tunnel_opened`]): its latency, or a failure
    /// (refused, timed out, unreachable).
    pub fn upstream_connect(
        &self,
        upstream: &str,
        upstream_addr: &str,
        result: Result<Duration, ()>,
    ) {
        let mut m = self.inner.borrow_mut();
        let s = m.upstream(upstream, upstream_addr);
        match result {
            Ok(d) => s.connect_duration.observe(d),
            Err(()) => s.connect_failures += 1,
        }
    }

    /// Passive health of the upstream server at `upstream_addr` of the
    /// group `upstream` (every server starts up).
    /// `n` tunnels of `upstream` told to move (closed with 1001), for
    /// `reason` ("down" or "removed").
    pub fn tunnels_moved(&self, upstream: &str, reason: &str, n: u64) {
        if n == 0 {
            return;
        }
        let mut m = self.inner.borrow_mut();
        let s = m.moved.get(upstream);
        match reason {
            "down" => s.down += n,
            "rebalance" => s.rebalance += n,
            _ => s.removed += n,
        }
    }

    pub fn upstream_state(&self, upstream: &str, upstream_addr: &str, up: bool) {
        self.inner.borrow_mut().upstream(upstream, upstream_addr).up = up;
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
        self.snapshot_with(|_| {})
    }

    /// [`Metrics::snapshot`], with the bytes the open tunnels have moved
    /// so far: `live` calls its argument with each open tunnel's id and
    /// its relay's bytes each way (client to upstream, upstream to
    /// client). They are added to the snapshot only; the tunnel's close
    /// counts them ([`Metrics::tunnel_closed`]), so each byte is counted
    /// once and the counter never goes back.
    pub fn snapshot_with(
        &self,
        live: impl FnOnce(&mut dyn FnMut(SeriesId, u64, u64)),
    ) -> WorkerSnapshot {
        let mut tunnel_stats: Vec<TunnelStats> = {
            let m = self.inner.borrow();
            m.tunnels.iter().map(|t| t.stats.clone()).collect()
        };
        // Not borrowed while `live` runs (a call out).
        live(&mut |id, up, down| {
            if let Some(s) = tunnel_stats.get_mut(id.0 as usize) {
                s.bytes_client_to_upstream += up;
                s.bytes_upstream_to_client += down;
            }
        });
        let m = self.inner.borrow();
        let mut tunnels: Vec<(TunnelLabels, TunnelStats)> = m
            .tunnels
            .iter()
            .zip(tunnel_stats)
            .map(|(t, stats)| {
                let labels = TunnelLabels {
                    server: m.servers.names.name(t.server).to_owned(),
                    upstream: m.upstreams.name(t.upstream).to_owned(),
                    upstream_addr: m.addrs.name(t.addr).to_owned(),
                };
                (labels, stats)
            })
            .collect();
        tunnels.sort_by(|a, b| a.0.cmp(&b.0));
        let mut upstreams: Vec<(UpstreamLabels, UpstreamStats)> = m
            .upstream_series
            .iter()
            .map(|u| {
                let labels = UpstreamLabels {
                    upstream: m.upstreams.name(u.upstream).to_owned(),
                    upstream_addr: m.addrs.name(u.addr).to_owned(),
                };
                (labels, u.stats.clone())
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
            tunnels,
            upstreams,
            zones: m.zones.snapshot(),
            moved: m.moved.snapshot(),
        }
    }
}
