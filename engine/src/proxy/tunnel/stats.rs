//! What a tunnel reports when it ends (every relay's answer).

use crate::proxy::frames::Goodbye;

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
}

#[derive(Debug, Clone, Copy)]
pub struct Stats {
    pub end: End,
    pub client_to_upstream: u64,
    pub upstream_to_client: u64,
}
