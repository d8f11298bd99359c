//! Idle upstream keep-alive connections of one group on one worker
//! (nginx's `keepalive N`): at most `capacity` are kept, most recently used
//! first; one idle longer than `idle_timeout`, or found closed by the
//! upstream (a non-blocking peek sees EOF, data or an error), is dropped
//! instead of reused.
//!
//! Connections are keyed by their server's address as written, so a
//! reload that keeps a group keeps its pool (`Group::new` shares it): the
//! connections of servers still listed stay, the others are closed. A
//! group that a reload removes is retired: its idle connections are
//! closed at once, and a connection that finishes its exchange later is
//! closed instead of parked.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::proxy::UpStream;
use crate::sys::{self, Pending};
use crate::tls::Connector;

struct Idle {
    server: Rc<str>,
    stream: UpStream,
    since: Instant,
}

/// A pooled connection serves a request with the same TLS settings: both
/// plain, or both TLS with the same client configuration and name (a
/// connection made without verification never serves a location that
/// verifies).
fn same_tls(a: Option<&Arc<Connector>>, b: Option<&Arc<Connector>>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => Arc::ptr_eq(&a.config, &b.config) && a.name == b.name,
        _ => false,
    }
}

pub struct Pool {
    capacity: Cell<usize>,
    idle_timeout: Cell<Duration>,
    retired: Cell<bool>,
    /// The servers of the group as configured now: a connection to any
    /// other (an exchange started before a reload removed its server) is
    /// closed instead of parked.
    servers: RefCell<Vec<Rc<str>>>,
    idle: RefCell<Vec<Idle>>,
}

impl Pool {
    pub fn new(capacity: usize, idle_timeout: Duration, servers: Vec<Rc<str>>) -> Self {
        Self {
            capacity: Cell::new(capacity),
            idle_timeout: Cell::new(idle_timeout),
            retired: Cell::new(false),
            servers: RefCell::new(servers),
            idle: RefCell::new(Vec::new()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.capacity.get() > 0 && !self.retired.get()
    }

    pub fn len(&self) -> usize {
        self.idle.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A live idle connection to `server` made with `tls`, if there is one.
    pub fn take(
        &self,
        server: &str,
        tls: Option<&Arc<Connector>>,
        now: Instant,
    ) -> Option<UpStream> {
        let timeout = self.idle_timeout.get();
        let mut idle = self.idle.borrow_mut();
        idle.retain(|c| now.saturating_duration_since(c.since) < timeout);
        while let Some(pos) = idle
            .iter()
            .rposition(|c| *c.server == *server && same_tls(c.stream.connector(), tls))
        {
            let c = idle.remove(pos);
            if still_open(&c.stream) {
                return Some(c.stream);
            }
        }
        None
    }

    /// Keep a connection whose last exchange ended cleanly.
    pub fn put(&self, server: Rc<str>, stream: UpStream, now: Instant) {
        if !self.enabled() || !self.servers.borrow().contains(&server) {
            return;
        }
        let mut idle = self.idle.borrow_mut();
        while idle.len() >= self.capacity.get() {
            idle.remove(0);
        }
        idle.push(Idle {
            server,
            stream,
            since: now,
        });
    }

    /// A reload keeping the group: new `keepalive` / `keepalive_timeout`
    /// and server list; idle connections to servers no longer listed are
    /// closed.
    pub fn reconfigure(&self, capacity: usize, idle_timeout: Duration, servers: Vec<Rc<str>>) {
        self.capacity.set(capacity);
        self.idle_timeout.set(idle_timeout);
        let mut idle = self.idle.borrow_mut();
        idle.retain(|c| servers.contains(&c.server));
        let excess = idle.len().saturating_sub(capacity);
        idle.drain(..excess);
        *self.servers.borrow_mut() = servers;
    }

    /// The group is gone from the configuration: close what idles, and
    /// park nothing from now on.
    pub fn retire(&self) {
        self.retired.set(true);
        self.idle.borrow_mut().clear();
    }
}

/// An idle HTTP connection must have nothing to read: EOF means the
/// upstream closed it, bytes mean it is out of step, an error means reset.
/// (For TLS, any record waiting — a close_notify — counts as out of step.)
fn still_open(s: &UpStream) -> bool {
    sys::pending(sys::fd(s.tcp())) == Pending::Nothing
}
