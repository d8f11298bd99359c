//! Binary upgrade (`ringway upgrade`, SIGUSR2): the running process
//! starts the new binary and hands it, over a unix socket with
//! SCM_RIGHTS, its listening sockets and then every plain tunnel, each
//! at a quiet moment with a versioned [`TunnelRecord`] of its state.
//!
//! - `wire`: the messages of the handoff socket and the record, as bytes
//!   (pure: encoded and decoded here, unit-tested and fuzzed).
//! - `old`: the side of the running process.
//! - `new`: the side of the new process.

pub mod wire;

use std::net::SocketAddr;

/// The version of [`TunnelRecord`] this build writes. A new binary says
/// which versions it reads (`Message::Hello`); one that cannot read this
/// one refuses the upgrade and the old process keeps everything.
pub const RECORD_VERSION: u16 = 1;

/// The most descriptors one message carries (the kernel's SCM_MAX_FD).
pub const MAX_FDS: usize = 253;

/// The environment variable that tells a new process the descriptor of
/// its handoff socket.
pub const ENV_FD: &str = "RINGWAY_UPGRADE_FD";

/// A listening socket as it crosses to the new process (its descriptor
/// travels beside it, in the same order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenerItem {
    /// A TCP listen address, keyed by the address as configured (port 0
    /// stays 0), one socket per old worker.
    Tcp { configured: SocketAddr },
    /// A unix listen socket, by path.
    Unix { path: std::path::PathBuf },
    /// The metrics listener.
    Metrics { addr: SocketAddr },
}

/// A tunnel's balancing key, for a group that rebalances by key
/// (`upstream::TunnelKey`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRecord {
    Ip(std::net::IpAddr),
    Ring(u64),
}

/// The request line and what the access log format names of a tunnel's
/// request, for the line it is logged with when it ends.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogRecord {
    pub peer: Option<SocketAddr>,
    pub method: String,
    pub target: String,
    pub minor_version: u8,
    /// Request headers the log format names (lowercase name, value).
    pub headers: Vec<(String, Vec<u8>)>,
    /// The URI a rewrite changed the request to: path and args.
    pub uri: Option<(String, Option<String>)>,
}

/// One plain tunnel's state as it crosses to the new process. Its two
/// sockets (client, upstream) travel beside it as descriptors.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TunnelRecord {
    /// `[servers.NAME]`.
    pub server: String,
    /// The client's address (`$remote_addr`).
    pub peer: Option<SocketAddr>,
    /// The upstream group, when the tunnel goes to a group member.
    pub group: Option<String>,
    /// The upstream server's address as logged (`$upstream_addr`).
    pub upstream_addr: String,
    /// The group member's key (`servers[].addr` as configured), to count
    /// the tunnel on it in the new process.
    pub member: Option<String>,
    pub balance_key: Option<KeyRecord>,
    pub idle_timeout_ms: u64,
    pub send_timeout_ms: u64,
    /// Time since the tunnel last moved a byte (its idle timeout goes on
    /// from there).
    pub idle_for_ms: u64,
    /// Time since its request began (`$request_time`).
    pub age_ms: u64,
    /// Bytes relayed so far: client to upstream, upstream to client.
    pub bytes: [u64; 2],
    /// A WebSocket tunnel's frame trackers (`Frames::to_bytes`).
    pub frames: Option<Vec<u8>>,
    /// Bytes read from each direction's source that were not written to
    /// its destination yet (a recv that completed while the handoff
    /// cancelled it): the new process writes them first. Index 0: from
    /// the client.
    pub carry: [Vec<u8>; 2],
    /// The `limit_conn` slot it holds: zone name and key.
    pub limit_conn: Option<(String, Vec<u8>)>,
    /// For its access log line, when the old process logs.
    pub log: Option<LogRecord>,
}

/// Messages of the handoff socket (SOCK_SEQPACKET: one message, one
/// packet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// New → old, once its configuration loaded: its pid and the record
    /// versions it reads (inclusive).
    Hello { pid: u32, versions: (u16, u16) },
    /// Old → new: listening sockets, the descriptors beside them in the
    /// same order; `last` on the final one.
    Listeners {
        items: Vec<ListenerItem>,
        last: bool,
    },
    /// New → old: every worker serves; the old process may stop
    /// accepting and hand over its tunnels.
    Ready,
    /// New → old: it cannot go on (why).
    Refuse { why: String },
    /// Old → new: tunnels, two descriptors each (client, upstream).
    Tunnels {
        version: u16,
        records: Vec<TunnelRecord>,
    },
    /// Old → new: no more tunnels will come.
    Done { handed: u64 },
    /// New → old: the last `Tunnels` message was taken (its records read,
    /// its descriptors in hand, before any worker relays them). Until it
    /// comes the old process keeps its copies of the sockets: if the new
    /// process is gone instead, the old one takes those tunnels back.
    Adopted { count: u64 },
    /// Old → new: the old process accepts no more (every accept it had
    /// armed is cancelled and completed). The new one arms its accepts
    /// again: with io_uring, a connection whose wake-up went to an old
    /// accept as it was cancelled waits in the queue until an accept
    /// looks again.
    Rearm,
}

/// What a worker of the old process sends its handoff thread.
pub enum FromWorker {
    /// A tunnel, ended at a quiet moment, with its two sockets (client,
    /// upstream): duplicates, so the worker closes its own as usual.
    Tunnel {
        /// The worker it comes from (it goes back there if the new
        /// process does not take it).
        worker: usize,
        record: Box<TunnelRecord>,
        fds: [std::os::fd::OwnedFd; 2],
    },
    /// The worker holds nothing more and would stop: it waits for
    /// `Control::Leave` (every tunnel it sent was taken or came back).
    Leaving { worker: usize },
    /// The worker's accept loops have all ended.
    AcceptStopped,
    /// The worker has no plain tunnel left to hand over (or stopped
    /// waiting for the last ones): what it still holds.
    Settled {
        worker: usize,
        /// Tunnels it still holds (TLS, HTTP/2, not yet quiet).
        held: usize,
        /// Tunnels it closed with 1001 since the upgrade began.
        drained: usize,
    },
}
