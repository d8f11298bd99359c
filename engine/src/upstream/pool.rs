//! Idle upstream keep-alive connections of one group on one worker
//! (nginx's `keepalive N`): at most `capacity` are kept, most recently used
//! first; one idle longer than `idle_timeout`, or found closed by the
//! upstream (a non-blocking peek sees EOF, data or an error), is dropped
//! instead of reused.

use std::cell::RefCell;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use monoio::net::TcpStream;

struct Idle {
    peer: usize,
    stream: TcpStream,
    since: Instant,
}

pub struct Pool {
    capacity: usize,
    idle_timeout: Duration,
    idle: RefCell<Vec<Idle>>,
}

impl Pool {
    pub fn new(capacity: usize, idle_timeout: Duration) -> Self {
        Self {
            capacity,
            idle_timeout,
            idle: RefCell::new(Vec::new()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.capacity > 0
    }

    pub fn len(&self) -> usize {
        self.idle.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A live idle connection to `peer`, if there is one.
    pub fn take(&self, peer: usize, now: Instant) -> Option<TcpStream> {
        let mut idle = self.idle.borrow_mut();
        idle.retain(|c| now.saturating_duration_since(c.since) < self.idle_timeout);
        while let Some(pos) = idle.iter().rposition(|c| c.peer == peer) {
            let c = idle.remove(pos);
            if still_open(&c.stream) {
                return Some(c.stream);
            }
        }
        None
    }

    /// Keep a connection whose last exchange ended cleanly.
    pub fn put(&self, peer: usize, stream: TcpStream, now: Instant) {
        if self.capacity == 0 {
            return;
        }
        let mut idle = self.idle.borrow_mut();
        if idle.len() >= self.capacity {
            idle.remove(0);
        }
        idle.push(Idle {
            peer,
            stream,
            since: now,
        });
    }
}

/// An idle HTTP connection must have nothing to read: EOF means the
/// upstream closed it, bytes mean it is out of step, an error means reset.
fn still_open(s: &TcpStream) -> bool {
    crate::sys::pending(s.as_raw_fd()) == crate::sys::Pending::Nothing
}
