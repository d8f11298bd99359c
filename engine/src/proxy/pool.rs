//! Per-worker pools of relay buffers and splice pipes.
//!
//! A tunnel borrows a buffer (or a pipe) only while bytes are moving and
//! gives it back before it waits again, so an idle tunnel holds neither:
//! its cost is two sockets and a small task. The pools keep a bounded number
//! of spares so that a busy worker does not allocate on every message.
//! Single-threaded by construction (`RefCell`, no locks).

use std::cell::RefCell;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::sys;

/// Free relay buffers of one size.
pub struct BufPool {
    size: usize,
    max_spare: usize,
    free: RefCell<Vec<Box<[u8]>>>,
}

impl BufPool {
    pub fn new(size: usize, max_spare: usize) -> Self {
        Self {
            size,
            max_spare,
            free: RefCell::new(Vec::new()),
        }
    }

    pub fn take(&self) -> Box<[u8]> {
        self.free
            .borrow_mut()
            .pop()
            .unwrap_or_else(|| vec![0u8; self.size].into_boxed_slice())
    }

    pub fn give(&self, buf: Box<[u8]>) {
        let mut free = self.free.borrow_mut();
        if free.len() < self.max_spare && buf.len() == self.size {
            free.push(buf);
        }
    }

    pub fn size(&self) -> usize {
        self.size
    }
}

/// A pipe pair used as the kernel-side buffer for splice(2); both ends are
/// closed when it drops.
pub struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl Pipe {
    pub fn read_end(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }

    pub fn write_end(&self) -> BorrowedFd<'_> {
        self.write.as_fd()
    }
}

/// Free, empty pipes. A pipe goes back only when it holds no bytes.
pub struct PipePool {
    max_spare: usize,
    free: RefCell<Vec<Pipe>>,
}

impl PipePool {
    pub fn new(max_spare: usize) -> Self {
        Self {
            max_spare,
            free: RefCell::new(Vec::new()),
        }
    }

    pub fn take(&self) -> std::io::Result<Pipe> {
        if let Some(p) = self.free.borrow_mut().pop() {
            return Ok(p);
        }
        let (read, write) = sys::pipe()?;
        Ok(Pipe { read, write })
    }

    /// Return an empty pipe; a pipe that may still hold bytes must be
    /// dropped instead.
    pub fn give(&self, pipe: Pipe) {
        let mut free = self.free.borrow_mut();
        if free.len() < self.max_spare {
            free.push(pipe);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_up_to_the_spare_limit() {
        let pool = BufPool::new(1024, 1);
        let a = pool.take();
        let b = pool.take();
        let pa = a.as_ptr();
        pool.give(a);
        pool.give(b); // over the spare limit: dropped
        assert_eq!(pool.free.borrow().len(), 1);
        let again = pool.take();
        assert_eq!(again.as_ptr(), pa);
    }

    #[test]
    fn pipes_round_trip() {
        let pool = PipePool::new(4);
        use std::os::fd::AsRawFd;
        let p = pool.take().unwrap();
        let (r, w) = (p.read.as_raw_fd(), p.write.as_raw_fd());
        pool.give(p);
        let q = pool.take().unwrap();
        assert_eq!((q.read.as_raw_fd(), q.write.as_raw_fd()), (r, w));
    }
}
