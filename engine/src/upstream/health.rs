//! Passive health per peer and per worker, as nginx's `max_fails` /
//! `fail_timeout`: `max_fails` failures within `fail_timeout` mark the peer
//! down for `fail_timeout`; after that it is tried again, and one success
//! clears its record. `max_fails = 0` disables the accounting.

use std::cell::Cell;
use std::time::{Duration, Instant};

pub struct Health {
    max_fails: Cell<u32>,
    fail_timeout: Cell<Duration>,
    fails: Cell<u32>,
    /// When the current run of failures started.
    first_fail: Cell<Option<Instant>>,
    down_until: Cell<Option<Instant>>,
    /// The end of the last mark-down (kept after a success clears the
    /// record): where `slow_start` ramps from.
    last_down_end: Cell<Option<Instant>>,
    /// How many times this worker marked the peer down (`on_down`).
    mark_downs: Cell<u32>,
}

impl Health {
    pub fn new(max_fails: u32, fail_timeout: Duration) -> Self {
        Self {
            max_fails: Cell::new(max_fails),
            fail_timeout: Cell::new(fail_timeout),
            fails: Cell::new(0),
            first_fail: Cell::new(None),
            down_until: Cell::new(None),
            last_down_end: Cell::new(None),
            mark_downs: Cell::new(0),
        }
    }

    /// New parameters (a reload) for the same server's record.
    pub fn reconfigure(&self, max_fails: u32, fail_timeout: Duration) {
        self.max_fails.set(max_fails);
        self.fail_timeout.set(fail_timeout);
        if max_fails == 0 {
            self.success();
        }
    }

    pub fn is_live(&self, now: Instant) -> bool {
        self.down_until.get().is_none_or(|t| now >= t)
    }

    /// Record a failure; returns true when this one marks the peer down.
    pub fn failure(&self, now: Instant) -> bool {
        let (max_fails, fail_timeout) = (self.max_fails.get(), self.fail_timeout.get());
        if max_fails == 0 {
            return false;
        }
        let window_open = self
            .first_fail
            .get()
            .is_some_and(|t| now.duration_since(t) < fail_timeout);
        if !window_open {
            self.first_fail.set(Some(now));
            self.fails.set(0);
        }
        self.fails.set(self.fails.get() + 1);
        if self.fails.get() >= max_fails {
            self.down_until.set(Some(now + fail_timeout));
            self.last_down_end.set(Some(now + fail_timeout));
            self.mark_downs.set(self.mark_downs.get().wrapping_add(1));
            self.fails.set(0);
            self.first_fail.set(None);
            return true;
        }
        false
    }

    /// When the last mark-down ended (or ends), if there was one.
    pub fn last_down_end(&self) -> Option<Instant> {
        self.last_down_end.get()
    }

    /// How many times this worker has marked the peer down.
    pub fn mark_downs(&self) -> u32 {
        self.mark_downs.get()
    }

    /// A usable response: the record is cleared, and a mark-down still
    /// running ends now (so a `slow_start` ramp starts here, not when
    /// the mark-down would have ended).
    pub fn success(&self) {
        let now = Instant::now();
        if self.last_down_end.get().is_some_and(|t| t > now) {
            self.last_down_end.set(Some(now));
        }
        self.fails.set(0);
        self.first_fail.set(None);
        self.down_until.set(None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_fails_within_the_window() {
        let h = Health::new(3, Duration::from_secs(10));
        let t = Instant::now();
        assert!(!h.failure(t));
        assert!(!h.failure(t + Duration::from_secs(1)));
        assert!(h.is_live(t + Duration::from_secs(2)));
        assert!(h.failure(t + Duration::from_secs(2)));
        assert!(!h.is_live(t + Duration::from_secs(3)));
        assert!(h.is_live(t + Duration::from_secs(12)));
    }

    #[test]
    fn old_failures_expire() {
        let h = Health::new(2, Duration::from_secs(10));
        let t = Instant::now();
        h.failure(t);
        assert!(
            !h.failure(t + Duration::from_secs(11)),
            "first failure is out of the window"
        );
        assert!(h.is_live(t + Duration::from_secs(11)));
    }

    #[test]
    fn success_clears_and_zero_disables() {
        let h = Health::new(1, Duration::from_secs(10));
        let t = Instant::now();
        assert!(h.failure(t));
        h.success();
        assert!(h.is_live(t));
        let off = Health::new(0, Duration::from_secs(10));
        assert!(!off.failure(t));
        assert!(off.is_live(t));
    }
}
