//! Idle timeouts for tunnels: a coarse last-activity sweep per worker.
//!
//! A tunnel registers once and records activity with `touch` (a flag set
//! in its slot — no clock read per burst); a sweep task wakes every
//! `period`, stamps the tunnels that were active since the last sweep with
//! the sweep's own clock read, and marks expired and wakes those idle for
//! longer than their timeout. So a timeout fires up to one period late (a
//! quarter of the shortest timeout, at most 1 s). No timer is armed per
//! tunnel or per message, and an idle tunnel costs one slot here (~48
//! bytes) instead of a timer entry in its own task.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

struct Entry {
    /// The sweep that last saw activity (or the registration).
    last: Instant,
    /// Touched since the last sweep.
    active: bool,
    timeout: Duration,
    expired: bool,
    waker: Option<Waker>,
}

#[derive(Default)]
pub struct IdleSweep {
    slots: RefCell<Vec<Option<Entry>>>,
    free: RefCell<Vec<usize>>,
    live: Cell<usize>,
}

impl IdleSweep {
    pub fn register(&self, timeout: Duration) -> usize {
        let e = Entry {
            last: Instant::now(),
            active: false,
            timeout,
            expired: false,
            waker: None,
        };
        self.live.set(self.live.get() + 1);
        let mut slots = self.slots.borrow_mut();
        match self.free.borrow_mut().pop() {
            Some(i) => {
                slots[i] = Some(e);
                i
            }
            None => {
                slots.push(Some(e));
                slots.len() - 1
            }
        }
    }

    pub fn unregister(&self, key: usize) {
        let mut slots = self.slots.borrow_mut();
        if let Some(slot) = slots.get_mut(key) {
            if slot.take().is_some() {
                self.free.borrow_mut().push(key);
                self.live.set(self.live.get() - 1);
            }
        }
    }

    /// Record activity (seen by the next sweep).
    #[inline]
    pub fn touch(&self, key: usize) {
        if let Some(Some(e)) = self.slots.borrow_mut().get_mut(key) {
            e.active = true;
        }
    }

    pub fn live(&self) -> usize {
        self.live.get()
    }

    /// Completes when the sweep finds this entry idle past its timeout.
    pub async fn expired(&self, key: usize) {
        poll_fn(|cx| {
            let mut slots = self.slots.borrow_mut();
            match slots.get_mut(key) {
                Some(Some(e)) if e.expired => Poll::Ready(()),
                Some(Some(e)) => {
                    if !e.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                        e.waker = Some(cx.waker().clone());
                    }
                    Poll::Pending
                }
                _ => Poll::Ready(()),
            }
        })
        .await
    }

    /// Mark and wake every entry idle past its timeout at `now`.
    pub fn sweep(&self, now: Instant) -> usize {
        let mut woken = Vec::new();
        {
            let mut slots = self.slots.borrow_mut();
            for e in slots.iter_mut().flatten() {
                if std::mem::take(&mut e.active) {
                    e.last = now;
                } else if !e.expired && now.saturating_duration_since(e.last) >= e.timeout {
                    e.expired = true;
                    if let Some(w) = e.waker.take() {
                        woken.push(w);
                    }
                }
            }
        }
        let n = woken.len();
        for w in woken {
            w.wake();
        }
        n
    }
}

/// How often to sweep for timeouts as short as `shortest`: a quarter of it,
/// between 100 ms and 1 s (so a 3600 s timeout fires within a second of
/// its deadline, a 1 s one within 250 ms).
pub fn sweep_period(shortest: Duration) -> Duration {
    (shortest / 4).clamp(Duration::from_millis(100), Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_only_after_the_timeout_and_touch_resets() {
        let s = IdleSweep::default();
        let a = s.register(Duration::from_secs(10));
        let b = s.register(Duration::from_secs(1));
        let t0 = Instant::now();
        assert_eq!(s.sweep(t0 + Duration::from_millis(500)), 0);
        s.touch(b);
        assert_eq!(s.live(), 2);
        // b was active before the sweep at +1.5 s: stamped, not expired.
        s.sweep(t0 + Duration::from_millis(1500));
        assert!(!s.slots.borrow()[b].as_ref().unwrap().expired);
        // Idle for a second after that stamp: b expires, a (10 s) not.
        s.sweep(t0 + Duration::from_millis(2600));
        let slots = s.slots.borrow();
        assert!(slots[b].as_ref().unwrap().expired);
        assert!(!slots[a].as_ref().unwrap().expired);
    }

    #[test]
    fn slots_are_reused() {
        let s = IdleSweep::default();
        let a = s.register(Duration::from_secs(1));
        s.unregister(a);
        s.unregister(a);
        assert_eq!(s.live(), 0);
        assert_eq!(s.register(Duration::from_secs(1)), a);
    }

    #[test]
    fn sweep_periods() {
        assert_eq!(
            sweep_period(Duration::from_secs(3600)),
            Duration::from_secs(1)
        );
        assert_eq!(
            sweep_period(Duration::from_secs(1)),
            Duration::from_millis(250)
        );
        assert_eq!(
            sweep_period(Duration::from_millis(100)),
            Duration::from_millis(100)
        );
    }
}
