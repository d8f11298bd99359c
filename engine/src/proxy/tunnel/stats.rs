//! What a tunnel reports when it ends (every relay's answer).

use crate::proxy::frames::Goodbye;
pub use crate::proxy::idle::Handed;

/// How a tunnel ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Both sides closed (each half-close passed on), the client first.
    ClientClosed,
    /// Both sides closed, the upstream first.
    UpstreamClosed,
    /// No byte either way for the idle timeout.
    Idle,
    /// A socket error (reset, send timeout).
    Error,
    /// A drain ended it: how its owner says goodbye (close frames 1001
    /// at a frame boundary, a plain shutdown, or a cut past the drain's
    /// deadline).
    Drain(Goodbye),
    /// Handed to a new process (binary upgrade) at a quiet moment: its
    /// owner passes the sockets on with [`Stats::handed`].
    Handoff,
}

#[derive(Debug)]
pub struct Stats {
    pub end: End,
    pub client_to_upstream: u64,
    pub upstream_to_client: u64,
    /// With [`End::Handoff`]: what the relay knew of the tunnel.
    pub handed: Option<Box<Handed>>,
}

/// What a tunnel's slot in its relay's table names: its metrics series
/// (a scrape reads its bytes under it) and the tag of the upstream server
/// it runs to (`upstream::verdict`; a drain of that server finds it).
#[derive(Debug, Clone, Copy, Default)]
pub struct Names {
    pub series: crate::metrics::SeriesId,
    pub upstream: u32,
    /// The tunnel's number on its worker, in the order tunnels started
    /// (`rebalance` moves the newest first, or the ones it names).
    pub id: u32,
    /// An adopted tunnel (binary upgrade) had been idle this long in the
    /// process it came from: its idle timeout goes on from there.
    pub idle_for: std::time::Duration,
}
