//! Single-threaded wake-up primitives for one worker (no locks, no atomics).

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::task::{Poll, Waker};

/// Wakes every waiter each time `notify` is called. Waiters re-check their
/// own condition after waking (a generation counter avoids lost wake-ups).
#[derive(Default)]
pub struct Notify {
    generation: Cell<u64>,
    waiters: RefCell<Vec<Waker>>,
}

impl Notify {
    pub fn notify(&self) {
        self.generation.set(self.generation.get() + 1);
        for w in self.waiters.borrow_mut().drain(..) {
            w.wake();
        }
    }

    /// Completes after the next `notify`.
    pub async fn notified(&self) {
        let start = self.generation.get();
        poll_fn(|cx| {
            if self.generation.get() != start {
                return Poll::Ready(());
            }
            let mut waiters = self.waiters.borrow_mut();
            if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
                waiters.push(cx.waker().clone());
            }
            Poll::Pending
        })
        .await
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

    pub async fn wait(&self) {
        while !self.raised.get() {
            self.notify.notified().await;
        }
    }
}
