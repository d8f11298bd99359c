//! Upstream groups on one worker: balancing (`balance`), passive health
//! (`health`) and idle keep-alive connections (`pool`). Built from each config snapshot; state is per core, in
//! `Cell`s, with no locks.
//!
//! Active health is the process's: the checker thread (`checker`, with
//! the pure parts in `check`) writes each server's [`verdict::Verdict`],
//! which every worker's groups read at each pick. The resolver thread
//! (`resolver`, with the DNS messages in `dns`) keeps `resolve = true`
//! servers' addresses, each a member of its group.

pub mod balance;
pub mod check;
pub mod checker;
pub mod dns;
pub mod health;
pub mod pool;
pub mod resolver;
pub mod verdict;

pub use balance::{Group, Key, Peer, TunnelKey};

/// What a worker starts with from the process's upstream threads: the
/// checker's verdicts and the resolver's table.
#[derive(Default, Clone)]
pub struct Watched {
    pub verdicts: std::sync::Arc<verdict::Verdicts>,
    pub members: std::sync::Arc<resolver::Members>,
}
