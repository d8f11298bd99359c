//! Single-threaded wake-ups for one worker (no locks, no atomics): a
//! `Notify` that wakes every waiter (a connection closed, the last busy
//! connection finished) and a `Flag` raised once (shutdown; lowered
//! again only when a binary upgrade fails midway).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// Wakes every waiter each time `notify` is called. Waiters re-check their
/// own condition after waking (a generation counter avoids lost wake-ups).
/// A waiter that is dropped before it fires (e.g. the losing branch of a
/// `select!`) takes its waker out again, so the list holds only live
/// waiters however often a loop starts a fresh wait.
#[derive(Default)]
pub struct Notify {
    generation: Cell<u64>,
    next_key: Cell<u64>,
    waiters: RefCell<Vec<(u64, Waker)>>,
}

impl Notify {
    pub fn notify(&self) {
        self.generation.set(self.generation.get() + 1);
        let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
        for (_, w) in waiters {
            w.wake();
        }
    }

    /// Completes after the next `notify`.
    pub fn notified(&self) -> Notified<'_> {
        Notified {
            notify: self,
            start: self.generation.get(),
            key: None,
        }
    }

    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.waiters.borrow().len()
    }
}

/// The future of [`Notify::notified`].
pub struct Notified<'a> {
    notify: &'a Notify,
    start: u64,
    /// Our entry in the waiter list, once registered.
    key: Option<u64>,
}

impl Future for Notified<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let n = self.notify;
        if n.generation.get() != self.start {
            self.key = None; // notify() emptied the list
            return Poll::Ready(());
        }
        let mut waiters = n.waiters.borrow_mut();
        match self
            .key
            .and_then(|k| waiters.iter_mut().find(|(key, _)| *key == k))
        {
            Some((_, w)) => {
                if !w.will_wake(cx.waker()) {
                    *w = cx.waker().clone();
                }
            }
            None => {
                let k = n.next_key.get();
                n.next_key.set(k + 1);
                waiters.push((k, cx.waker().clone()));
                drop(waiters);
                self.key = Some(k);
            }
        }
        Poll::Pending
    }
}

impl Drop for Notified<'_> {
    fn drop(&mut self) {
        if let Some(k) = self.key {
            self.notify
                .waiters
                .borrow_mut()
                .retain(|(key, _)| *key != k);
        }
    }
}

/// A flag that, once raised, stays raised; waiters wake when it is raised.
#[derive(Default)]
pub struct Flag {
    raised: Cell<bool>,
    notify: Notify,
}

impl Flag {
    pub fn raise(&self) {
        if !self.raised.replace(true) {
            self.notify.notify();
        }
    }

    pub fn is_raised(&self) -> bool {
        self.raised.get()
    }

    /// Lower it again (a binary upgrade that failed midway: the worker
    /// serves on). Waiters that woke have gone; new ones wait anew.
    pub fn lower(&self) {
        self.raised.set(false);
    }

    pub async fn wait(&self) {
        while !self.raised.get() {
            self.notify.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use super::{Flag, Notify};

    fn poll_once(f: std::pin::Pin<&mut impl Future<Output = ()>>) -> Poll<()> {
        f.poll(&mut Context::from_waker(Waker::noop()))
    }

    /// A loop that starts a fresh wait each turn and drops it (an accept
    /// loop's `select!`) must not grow the waiter list.
    #[test]
    fn dropped_waits_leave_no_waker_behind() {
        let n = Notify::default();
        for _ in 0..1000 {
            let mut w = pin!(n.notified());
            assert!(poll_once(w.as_mut()).is_pending());
            assert!(poll_once(w.as_mut()).is_pending());
        }
        assert_eq!(n.waiting(), 0);
        let mut a = pin!(n.notified());
        let mut b = pin!(n.notified());
        assert!(poll_once(a.as_mut()).is_pending());
        assert!(poll_once(b.as_mut()).is_pending());
        assert_eq!(n.waiting(), 2);
        n.notify();
        assert_eq!(n.waiting(), 0);
        assert!(poll_once(a.as_mut()).is_ready());
        assert!(poll_once(b.as_mut()).is_ready());
    }

    #[test]
    fn a_wait_started_before_notify_completes() {
        let n = Notify::default();
        let mut w = pin!(n.notified());
        n.notify();
        assert!(poll_once(w.as_mut()).is_ready());
        let f = Flag::default();
        let mut w = pin!(f.wait());
        assert!(poll_once(w.as_mut()).is_pending());
        f.raise();
        assert!(f.is_raised());
        assert!(poll_once(w.as_mut()).is_ready());
    }
}
