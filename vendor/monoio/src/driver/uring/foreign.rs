//! ringway patch: let code outside the crate queue its own SQEs into the
//! runtime's ring (flushed with the runtime's next `io_uring_enter`) and
//! receive their completions, including several per SQE (multishot
//! operations, which monoio's one-completion-per-op model has no room
//! for). Completions whose `user_data` carries [`TAG`] are collected here
//! and one waker is woken; the public face is `crate::ring`.

use std::task::Waker;

use io_uring::cqueue;

/// The `user_data` bit that marks an SQE as foreign. monoio's own ops use
/// slab indices (small numbers) and a few reserved values near `u64::MAX`.
pub const TAG: u64 = 1 << 62;

/// One completion: `user_data`, the result (`-errno` on failure) and flags.
#[derive(Debug, Clone, Copy)]
pub struct Completion {
    /// The SQE's `user_data`, [`TAG`] included.
    pub user_data: u64,
    /// The result: bytes, or `-errno`.
    pub result: i32,
    /// `IORING_CQE_F_*` flags (buffer id, more, ...).
    pub flags: u32,
}

#[derive(Default)]
pub(crate) struct Foreign {
    pub(crate) done: Vec<Completion>,
    pub(crate) waker: Option<Waker>,
}

impl Foreign {
    #[inline]
    pub(crate) fn complete(&mut self, cqe: &cqueue::Entry) {
        self.done.push(Completion {
            user_data: cqe.user_data(),
            result: cqe.result(),
            flags: cqe.flags(),
        });
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }
}
