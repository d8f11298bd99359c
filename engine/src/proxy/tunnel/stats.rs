//! What a tunnel reports when it ends (every relay's answer).

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
    /// A drain ended it with both directions idle: between WebSocket
    /// frames (`close_frames`: the tunnel's owner sends each side a close
    /// frame 1001), or untracked.
    Drain { close_frames: bool },
}

#[derive(Debug, Clone, Copy)]
pub struct Stats {
    pub end: End,
    pub client_to_upstream: u64,
    pub upstream_to_client: u64,
}
