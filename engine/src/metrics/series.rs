//! The statistics kept per label value (a listen address, a server
//! block, a server block's tunnels to an upstream server, an upstream
//! server, a limit zone), one worker's snapshot of them, and
//! the merge of many workers' snapshots into process totals. Plain values:
//! `Send`, `Clone`, no shared state.

use std::collections::BTreeMap;

use super::histogram::{Histogram, LATENCY_BUCKETS, TUNNEL_BUCKETS};

/// Client connections on one listen address.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListenStats {
    pub accepted: u64,
    /// Open now (a gauge).
    pub active: u64,
    /// HTTP/2 streams opened on this address's connections (each runs
    /// the request phases as a connection of its own, but is counted
    /// here, not as a connection).
    pub http2_streams: u64,
    /// HTTP/2 streams open now (a gauge).
    pub http2_streams_active: u64,
}

/// HTTP and WebSocket traffic of one server block.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerStats {
    /// Requests by status class, index [`super::status_class`].
    pub requests: [u64; 5],
    pub request_duration: Histogram,
    /// Upgrades by [`super::UpgradeResult`], in `ALL` order.
    pub upgrades: [u64; 3],
    /// Tunnel closes by [`super::CloseReason`], in `ALL` order.
    pub tunnels_closed: [u64; 5],
    pub tunnel_duration: Histogram,
}

impl Default for ServerStats {
    fn default() -> Self {
        Self {
            requests: [0; 5],
            request_duration: Histogram::new(LATENCY_BUCKETS),
            upgrades: [0; 3],
            tunnels_closed: [0; 5],
            tunnel_duration: Histogram::new(TUNNEL_BUCKETS),
        }
    }
}

impl ServerStats {
    pub fn add(&mut self, o: &ServerStats) {
        add_all(&mut self.requests, &o.requests);
        self.request_duration.add(&o.request_duration);
        add_all(&mut self.upgrades, &o.upgrades);
        add_all(&mut self.tunnels_closed, &o.tunnels_closed);
        self.tunnel_duration.add(&o.tunnel_duration);
    }
}

/// The tunnels of one server block to one upstream server.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TunnelStats {
    pub opened: u64,
    /// Open now (a gauge).
    pub active: u64,
    /// Bytes relayed each way: by closed tunnels, plus (in a scrape's
    /// snapshot) what the open ones have moved so far.
    pub bytes_client_to_upstream: u64,
    pub bytes_upstream_to_client: u64,
}

impl TunnelStats {
    pub fn add(&mut self, o: &TunnelStats) {
        self.opened += o.opened;
        self.active += o.active;
        self.bytes_client_to_upstream += o.bytes_client_to_upstream;
        self.bytes_upstream_to_client += o.bytes_upstream_to_client;
    }
}

/// One upstream server's connects and passive health (a series exists
/// once a connect or a health report was seen).
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamStats {
    pub connect_failures: u64,
    /// Latency of the successful connects.
    pub connect_duration: Histogram,
    /// Passive health: up unless marked down (merged: up unless some
    /// worker marks it down).
    pub up: bool,
}

impl Default for UpstreamStats {
    fn default() -> Self {
        Self {
            connect_failures: 0,
            connect_duration: Histogram::new(LATENCY_BUCKETS),
            up: true,
        }
    }
}

impl UpstreamStats {
    pub fn add(&mut self, o: &UpstreamStats) {
        self.connect_failures += o.connect_failures;
        self.connect_duration.add(&o.connect_duration);
        self.up &= o.up;
    }
}

/// The labels of a tunnel series: each name one meaning, as in every
/// family that has it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TunnelLabels {
    /// The server block (`[servers.NAME]`) the client came to.
    pub server: String,
    /// The upstream group (`[upstreams.NAME]`), or the address of a
    /// `proxy_pass` to an address.
    pub upstream: String,
    /// The upstream server's address (`ip:port`).
    pub upstream_addr: String,
}

/// The labels of an upstream server's connect and health series.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UpstreamLabels {
    /// As [`TunnelLabels::upstream`].
    pub upstream: String,
    /// As [`TunnelLabels::upstream_addr`].
    pub upstream_addr: String,
}

/// One limit zone's refusals and delays.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ZoneStats {
    pub rejected_req: u64,
    pub rejected_conn: u64,
    pub delayed: u64,
}

impl ZoneStats {
    pub fn add(&mut self, o: &ZoneStats) {
        self.rejected_req += o.rejected_req;
        self.rejected_conn += o.rejected_conn;
        self.delayed += o.delayed;
    }
}

/// Tunnels a worker closed so their clients move to other servers, by
/// reason (`ringway_tunnels_moved_total`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MovedStats {
    /// Their server was marked down (`on_down = "close"`).
    pub down: u64,
    /// A reload or DNS removed their server (`on_remove = "close"`).
    pub removed: u64,
    /// Their server held more than its share (`rebalance`).
    pub rebalance: u64,
}

impl MovedStats {
    pub fn add(&mut self, o: &MovedStats) {
        self.down += o.down;
        self.removed += o.removed;
        self.rebalance += o.rebalance;
    }
}

/// One server's active health checks (the checker thread's, not a
/// worker's): its state and its checks' results and durations.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckStats {
    pub upstream: String,
    /// The server as written in its group.
    pub server: String,
    pub up: bool,
    pub passes: u64,
    pub fails: u64,
    pub duration: Histogram,
}

/// One worker's counts at one moment, labels as text, each list sorted by
/// its labels. A plain value that crosses threads.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerSnapshot {
    /// The worker's index (in a [`merge`]: [`WorkerSnapshot::MERGED`]).
    pub worker: usize,
    pub accept_errors: u64,
    pub tls_handshakes_ok: u64,
    pub tls_handshakes_failed: u64,
    /// By listen address text.
    pub listens: Vec<(String, ListenStats)>,
    /// By server name.
    pub servers: Vec<(String, ServerStats)>,
    /// By server block, upstream and upstream server address.
    pub tunnels: Vec<(TunnelLabels, TunnelStats)>,
    /// By upstream and upstream server address.
    pub upstreams: Vec<(UpstreamLabels, UpstreamStats)>,
    /// By limit zone name.
    pub zones: Vec<(String, ZoneStats)>,
    /// By upstream group name.
    pub moved: Vec<(String, MovedStats)>,
}

impl WorkerSnapshot {
    /// The `worker` of a merge of several workers.
    pub const MERGED: usize = usize::MAX;

    pub fn empty(worker: usize) -> Self {
        Self {
            worker,
            accept_errors: 0,
            tls_handshakes_ok: 0,
            tls_handshakes_failed: 0,
            listens: Vec::new(),
            servers: Vec::new(),
            tunnels: Vec::new(),
            upstreams: Vec::new(),
            zones: Vec::new(),
            moved: Vec::new(),
        }
    }
}

/// The process totals: counters, gauges and histograms summed by label,
/// the upstream `up` gauge up unless some worker marks it down.
pub fn merge(workers: &[WorkerSnapshot]) -> WorkerSnapshot {
    let mut out = WorkerSnapshot::empty(WorkerSnapshot::MERGED);
    let mut listens: BTreeMap<&str, ListenStats> = BTreeMap::new();
    let mut servers: BTreeMap<&str, ServerStats> = BTreeMap::new();
    let mut tunnels: BTreeMap<&TunnelLabels, TunnelStats> = BTreeMap::new();
    let mut upstreams: BTreeMap<&UpstreamLabels, UpstreamStats> = BTreeMap::new();
    let mut zones: BTreeMap<&str, ZoneStats> = BTreeMap::new();
    let mut moved: BTreeMap<&str, MovedStats> = BTreeMap::new();
    for w in workers {
        out.accept_errors += w.accept_errors;
        out.tls_handshakes_ok += w.tls_handshakes_ok;
        out.tls_handshakes_failed += w.tls_handshakes_failed;
        for (k, s) in &w.listens {
            let t = listens.entry(k).or_default();
            t.accepted += s.accepted;
            t.active += s.active;
            t.http2_streams += s.http2_streams;
            t.http2_streams_active += s.http2_streams_active;
        }
        for (k, s) in &w.servers {
            servers.entry(k).or_default().add(s);
        }
        for (k, s) in &w.tunnels {
            tunnels.entry(k).or_default().add(s);
        }
        for (k, s) in &w.upstreams {
            upstreams.entry(k).or_default().add(s);
        }
        for (k, s) in &w.zones {
            zones.entry(k).or_default().add(s);
        }
        for (k, s) in &w.moved {
            moved.entry(k).or_default().add(s);
        }
    }
    out.listens = listens.into_iter().map(|(k, s)| (k.into(), s)).collect();
    out.servers = servers.into_iter().map(|(k, s)| (k.into(), s)).collect();
    out.tunnels = tunnels.into_iter().map(|(k, s)| (k.clone(), s)).collect();
    out.upstreams = upstreams.into_iter().map(|(k, s)| (k.clone(), s)).collect();
    out.zones = zones.into_iter().map(|(k, s)| (k.into(), s)).collect();
    out.moved = moved.into_iter().map(|(k, s)| (k.into(), s)).collect();
    out
}

fn add_all<const N: usize>(a: &mut [u64; N], b: &[u64; N]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
}
