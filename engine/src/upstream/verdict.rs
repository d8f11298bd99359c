//! What the active health checker says of each upstream server, shared
//! by the checker thread (which writes it) and every worker (which reads
//! it at each pick): one [`Verdict`] per server of a group, two atomics
//! read with `Relaxed` loads — no lock, no message on the request path.
//!
//! A verdict also names its server process-wide ([`Verdict::tag`]): a
//! tunnel remembers the tag of the server it runs to, so "close the
//! tunnels of this server" (`on_down`, `on_remove`) finds them in each
//! worker's tunnel tables without keeping a name per tunnel.
//!
//! The registry ([`Verdicts`]) is locked only when a configuration is
//! built (start, reload): a server that stays in its group keeps its
//! verdict and tag.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

/// The tag of no server (a `proxy_pass` to an address).
pub const NO_TAG: u32 = 0;

#[derive(Debug)]
pub struct Verdict {
    /// The server's process-wide tag (never [`NO_TAG`] for a registered one).
    pub tag: u32,
    up: AtomicBool,
    /// Bumped each time the checker marks the server down: a worker that
    /// saw another value closes the server's tunnels (`on_down`).
    downs: AtomicU32,
    /// Bumped each time the checker marks it up again (`slow_start`).
    ups: AtomicU32,
}

impl Verdict {
    pub fn new(tag: u32) -> Self {
        Verdict {
            tag,
            up: AtomicBool::new(true),
            downs: AtomicU32::new(0),
            ups: AtomicU32::new(0),
        }
    }

    #[inline]
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// The checker's word: returns true when it changed.
    pub fn set_up(&self, up: bool) -> bool {
        let was = self.up.swap(up, Ordering::Relaxed);
        if was && !up {
            self.downs.fetch_add(1, Ordering::Relaxed);
        }
        if !was && up {
            self.ups.fetch_add(1, Ordering::Relaxed);
        }
        was != up
    }

    /// How many times the checker has marked the server up again.
    pub fn ups(&self) -> u32 {
        self.ups.load(Ordering::Relaxed)
    }

    /// How many times the checker has marked the server down.
    pub fn downs(&self) -> u32 {
        self.downs.load(Ordering::Relaxed)
    }
}

/// Every group's servers' verdicts, by (group, server as written).
#[derive(Default)]
pub struct Verdicts {
    inner: Mutex<Registry>,
}

#[derive(Default)]
struct Registry {
    by_server: HashMap<(String, String), Arc<Verdict>>,
    last_tag: u32,
}

impl Verdicts {
    /// The verdict of `server` in `group`: the one it had, or a new one
    /// (up) with a new tag.
    pub fn get(&self, group: &str, server: &str) -> Arc<Verdict> {
        let mut r = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = r.by_server.get(&(group.to_string(), server.to_string())) {
            return v.clone();
        }
        r.last_tag = r.last_tag.wrapping_add(1).max(1);
        let v = Arc::new(Verdict::new(r.last_tag));
        r.by_server
            .insert((group.to_string(), server.to_string()), v.clone());
        v
    }

    /// Forget the servers `keep` says no to (those a reload removed); the
    /// snapshots still holding them keep their copies.
    pub fn retain(&self, keep: impl Fn(&str, &str) -> bool) {
        let mut r = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        r.by_server.retain(|(g, s), _| keep(g, s));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_keeps_its_verdict_and_tag() {
        let v = Verdicts::default();
        let a = v.get("chat", "10.0.0.1:80");
        let b = v.get("chat", "10.0.0.2:80");
        let other_group = v.get("api", "10.0.0.1:80");
        assert_ne!(a.tag, NO_TAG);
        assert_ne!(a.tag, b.tag);
        assert_ne!(a.tag, other_group.tag, "tags are per group and server");
        assert!(a.set_up(false));
        let again = v.get("chat", "10.0.0.1:80");
        assert!(Arc::ptr_eq(&a, &again));
        assert!(!again.is_up());
        v.retain(|g, _| g == "api");
        let fresh = v.get("chat", "10.0.0.1:80");
        assert!(
            fresh.is_up() && fresh.tag != a.tag,
            "a removed server comes back new"
        );
    }

    #[test]
    fn downs_count_each_mark_down() {
        let v = Verdict::new(1);
        assert!(!v.set_up(true), "already up");
        assert!(v.set_up(false));
        assert!(!v.set_up(false));
        assert_eq!(v.downs(), 1);
        assert!(v.set_up(true));
        assert!(v.set_up(false));
        assert_eq!(v.downs(), 2);
    }
}
