//! The per-core kit the proxy phases work with: relay buffers, splice
//! pipes, the idle sweep of tunnels, and whether to splice. Each worker
//! owns one; nothing in it is shared across threads. The proxy gets this,
//! not the worker, so nothing below the runtime depends on it.

use std::rc::Rc;

use super::idle::IdleSweep;
use super::pool::{BufPool, PipePool};
use super::tunnel::ring::Relay;

/// Spare relay buffers a worker keeps.
const SPARE_BUFFERS: usize = 256;
/// Spare (empty) splice pipes a worker keeps.
const SPARE_PIPES: usize = 64;

pub struct Kit {
    /// Buffers borrowed per burst by tunnels and body relays.
    pub bufs: BufPool,
    /// Pipes borrowed per burst by spliced tunnels.
    pub pipes: PipePool,
    /// Idle timeouts of this worker's tunnels.
    pub idle: IdleSweep,
    /// `[runtime] splice`: large bursts on plain tunnels go through a pipe.
    pub splice: bool,
    /// The ring relay, on io_uring workers whose kernel has what it needs
    /// (`tunnel::ring::choose`); plain tunnels use `tunnel::splice` without.
    pub relay: Option<Rc<Relay>>,
    /// The last tunnel number given out ([`Kit::next_tunnel_id`]).
    tunnel_ids: std::cell::Cell<u32>,
    /// The worker stops (a graceful stop, or a binary upgrade handed its
    /// listeners over): an answer decided from now on closes its
    /// connection and says so (`Connection: close`), even for a request
    /// routed before.
    pub closing: std::cell::Cell<bool>,
}

impl Kit {
    pub fn new(buffer_size: usize, splice: bool) -> Kit {
        Kit {
            bufs: BufPool::new(buffer_size, SPARE_BUFFERS),
            pipes: PipePool::new(SPARE_PIPES),
            idle: IdleSweep::default(),
            splice,
            relay: None,
            tunnel_ids: std::cell::Cell::new(0),
            closing: std::cell::Cell::new(false),
        }
    }

    /// A number for a new tunnel, in the order tunnels start on this
    /// worker (never 0, which names none).
    pub fn next_tunnel_id(&self) -> u32 {
        let id = self.tunnel_ids.get().wrapping_add(1).max(1);
        self.tunnel_ids.set(id);
        id
    }
}
