//! Metrics: what a worker counts, how the counts leave it, and how they are
//! shown. Each worker keeps a [`Metrics`] in its shared state — plain
//! counters and fixed-bucket histograms behind one `RefCell`, label strings
//! interned once, no atomics, locks or `Arc` on the counting path, and no
//! allocation once a label has been seen. The metrics endpoint asks every
//! worker for a [`WorkerSnapshot`] (a plain `Send` value), [`merge`]s them
//! and encodes them: Prometheus text exposition format 0.0.4 at
//! `GET /metrics` ([`encode_prometheus`]) and JSON at `GET /status`
//! ([`encode_json`]), served by a small blocking thread ([`serve`]).
//!
//! Submodules: `histogram` (bucket bounds and counts), `series` (the
//! per-label statistics, the snapshot and its merge), `worker` (the
//! per-worker counting side), `process` (the standard `process_*`
//! figures, read from /proc), `encode` (both encoders), `serve` (the
//! listener thread).

mod encode;
mod histogram;
pub mod process;
mod series;
mod serve;
mod worker;

pub use encode::{encode_json, encode_prometheus, PROMETHEUS_CONTENT_TYPE};
pub use histogram::{Histogram, LATENCY_BUCKETS, TUNNEL_BUCKETS};
pub use process::Resources;
pub use series::{
    merge, CheckStats, ListenStats, MovedStats, ServerStats, TunnelLabels, TunnelStats,
    UpstreamLabels, UpstreamStats, WorkerSnapshot, ZoneStats,
};
pub use serve::{serve, HEAD_TIMEOUT, MAX_HEAD, WRITE_TIMEOUT};
pub use worker::{Metrics, SeriesId};

/// What the process as a whole reports beside the workers' counts; the
/// control thread fills it in for each scrape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Process {
    pub version: &'static str,
    /// The I/O driver in use: "io_uring" or "epoll".
    pub driver: &'static str,
    pub workers: usize,
    pub reloads_ok: u64,
    pub reloads_failed: u64,
    /// `(server, not_after)` per configured certificate, `not_after` in
    /// Unix seconds.
    pub certificates: Vec<(String, i64)>,
    pub start_time_unix: u64,
    /// Each actively checked server (the checker thread's figures).
    pub checks: Vec<CheckStats>,
    /// The process's CPU, memory and descriptors, read from /proc for
    /// each scrape (`process_*`); none where /proc could not be read.
    pub resources: Option<Resources>,
}

/// How a WebSocket upgrade ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpgradeResult {
    /// The upstream answered 101 and the tunnel started.
    Switched,
    /// The upstream answered, but not 101.
    Refused,
    /// An error before any answer: connect failure, a limit, a timeout.
    Failed,
}

impl UpgradeResult {
    /// In declaration order: `result as usize` indexes it.
    pub const ALL: [UpgradeResult; 3] = [Self::Switched, Self::Refused, Self::Failed];

    pub fn label(self) -> &'static str {
        match self {
            Self::Switched => "switched",
            Self::Refused => "refused",
            Self::Failed => "failed",
        }
    }
}

/// Why a tunnel ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client closed (or half-closed and the upstream followed).
    Client,
    /// The upstream closed.
    Upstream,
    /// Nothing moved for the idle timeout (`proxy_read_timeout`).
    Idle,
    /// A graceful stop ended it at `shutdown_timeout`.
    Drain,
    /// A read or write error on either side.
    Error,
}

impl CloseReason {
    /// In declaration order: `reason as usize` indexes it.
    pub const ALL: [CloseReason; 5] = [
        Self::Client,
        Self::Upstream,
        Self::Idle,
        Self::Drain,
        Self::Error,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Upstream => "upstream",
            Self::Idle => "idle",
            Self::Drain => "drain",
            Self::Error => "error",
        }
    }
}

/// Which limit turned a client away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    /// A request-rate limit (`limit_req`).
    Req,
    /// A concurrent-connection limit (`limit_conn`).
    Conn,
}

impl LimitKind {
    pub fn label(self) -> &'static str {
        match self {
            Self::Req => "req",
            Self::Conn => "conn",
        }
    }
}

/// The status classes requests are counted by, index = `status / 100 - 1`.
pub const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The class index of a status code; codes outside 100..=599 go to the
/// nearest class.
pub fn status_class(status: u16) -> usize {
    (status / 100).clamp(1, 5) as usize - 1
}

#[cfg(test)]
mod tests;

thread_local! {
    /// This worker thread's counts (thread-per-core: the thread is the
    /// worker). Installed once by the worker; absent elsewhere (unit
    /// tests, the control thread), where counting is a no-op.
    static LOCAL: std::cell::OnceCell<Metrics> = const { std::cell::OnceCell::new() };
}

/// Make `Metrics::new(worker)` this thread's counts (once per worker).
pub fn install(worker: usize) {
    LOCAL.with(|m| {
        let _ = m.set(Metrics::new(worker));
    });
}

/// Count on this worker's metrics (nothing when none is installed).
#[inline]
pub fn with(f: impl FnOnce(&Metrics)) {
    LOCAL.with(|m| {
        if let Some(m) = m.get() {
            f(m)
        }
    });
}

/// This worker's snapshot (none when none is installed).
pub fn local_snapshot() -> Option<WorkerSnapshot> {
    LOCAL.with(|m| m.get().map(Metrics::snapshot))
}

/// This worker's snapshot with its open tunnels' bytes so far
/// ([`Metrics::snapshot_with`]); none when none is installed.
pub fn local_snapshot_with(
    live: impl FnOnce(&mut dyn FnMut(SeriesId, u64, u64)),
) -> Option<WorkerSnapshot> {
    LOCAL.with(|m| m.get().map(|m| m.snapshot_with(live)))
}
