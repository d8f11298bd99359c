//! ringway patch: the worker's io_uring, for SQEs the crate does not build.
//!
//! A caller on the runtime's thread queues SQEs with [`push`] (their
//! `user_data` must carry [`TAG`]); they are flushed with the runtime's
//! next `io_uring_enter` (its park, which also waits), so sends and
//! re-arms queued during one turn of the loop cost one system call
//! together. Their completions — several for a multishot SQE — are
//! collected as they are reaped and taken with [`poll_completions`].
//! [`with_submitter`] gives the ring's submitter for registrations
//! (provided buffer rings). All of it is `None`/`Err` on the legacy
//! driver.

use std::{
    io,
    task::{Context, Poll},
};

pub use io_uring;

use crate::driver::{Inner, CURRENT};
pub use crate::driver::uring::foreign::{Completion, TAG};

fn with_inner<R>(f: impl FnOnce(&mut crate::driver::uring::UringInner) -> R) -> Option<R> {
    if !CURRENT.is_set() {
        return None;
    }
    CURRENT.with(|inner| match inner {
        Inner::Uring(this) => Some(f(unsafe { &mut *this.get() })),
        #[allow(unreachable_patterns)]
        _ => None,
    })
}

/// Whether the current thread runs an io_uring runtime.
pub fn available() -> bool {
    with_inner(|_| ()).is_some()
}

/// Run `f` with the ring's submitter (to register a provided buffer ring,
/// probe opcodes, ...). `None` outside an io_uring runtime.
pub fn with_submitter<R>(f: impl FnOnce(&io_uring::Submitter<'_>) -> R) -> Option<R> {
    with_inner(|inner| f(&inner.uring.submitter()))
}

/// Queue `entry` for the next `io_uring_enter` (submitting what is queued
/// now if the queue is full).
///
/// # Safety
/// As `io_uring::SubmissionQueue::push`: every buffer and descriptor the
/// entry names must stay valid until its last completion has been taken.
/// Its `user_data` must carry [`TAG`].
pub unsafe fn push(entry: &io_uring::squeue::Entry) -> io::Result<()> {
    debug_assert!(entry.get_user_data() & TAG != 0);
    with_inner(|inner| {
        if inner.uring.submission().is_full() {
            inner.submit()?;
        }
        let mut sq = inner.uring.submission();
        sq.push(entry)
            .map_err(|_| io::Error::new(io::ErrorKind::Other, "submission queue full"))
    })
    .unwrap_or_else(|| Err(io::Error::new(io::ErrorKind::Unsupported, "not an io_uring runtime")))
}

/// Move the completions collected so far into `out` (appending). Pending,
/// with `cx`'s waker kept, when there are none.
pub fn poll_completions(cx: &mut Context<'_>, out: &mut Vec<Completion>) -> Poll<io::Result<()>> {
    match with_inner(|inner| {
        if inner.foreign.done.is_empty() {
            let w = &mut inner.foreign.waker;
            if !w.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *w = Some(cx.waker().clone());
            }
            false
        } else {
            out.append(&mut inner.foreign.done);
            true
        }
    }) {
        Some(true) => Poll::Ready(Ok(())),
        Some(false) => Poll::Pending,
        None => Poll::Ready(Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "not an io_uring runtime",
        ))),
    }
}
