//! The worker's io_uring as the ring relay (`proxy::tunnel::ring`) uses it:
//! a provided buffer ring, and the SQEs the relay queues into the
//! runtime's own ring (vendor/monoio's `ring` patch), flushed with the
//! runtime's next `io_uring_enter`.
//!
//! Contract of every SQE function here: the descriptor stays open, and a
//! send's bytes stay where they are, until the SQE's last completion has
//! been taken. The relay keeps both by counting its SQEs in flight per
//! tunnel and never releasing a tunnel (whose task owns the sockets) or
//! the buffer ring (which lives as long as the worker) before that count
//! is zero.
#![allow(unsafe_code)]

use std::cell::Cell;
use std::io;
use std::os::fd::RawFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

use monoio::ring::io_uring::{opcode, squeue, types};

pub use monoio::ring::{Completion, TAG};

/// The bytes of `struct io_uring_buf` (addr u64, len u32, bid u16, resv u16).
const ENTRY: usize = 16;
/// Byte offset of the ring's tail: it overlays the first entry's `resv`.
const TAIL_OFFSET: usize = 14;

/// An anonymous private mapping (page-aligned, zeroed, touched lazily).
struct Map {
    ptr: NonNull<u8>,
    len: usize,
}

impl Map {
    fn new(len: usize) -> io::Result<Map> {
        // SAFETY: a fresh anonymous mapping; no existing memory is named.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Map {
            ptr: NonNull::new(p.cast()).expect("mmap returned null"),
            len,
        })
    }
}

impl Drop for Map {
    fn drop(&mut self) {
        // SAFETY: our own mapping, unmapped once.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// A provided buffer ring registered with the current io_uring runtime:
/// `count` buffers of `size` bytes that the kernel picks from as bytes
/// arrive for a buffer-selecting recv, and that go back with
/// [`BufRing::give_back`]. Buffer memory is touched only when used, so a
/// worker whose tunnels idle holds no buffer.
pub struct BufRing {
    ring: Map,
    bufs: Map,
    size: usize,
    mask: u16,
    tail: Cell<u16>,
    group: u16,
}

impl BufRing {
    /// Map and register `count` (a power of two, ≤ 32768) buffers of
    /// `size` bytes as buffer group `group` of the current thread's ring.
    pub fn register(group: u16, count: u16, size: usize) -> io::Result<BufRing> {
        assert!(count.is_power_of_two() && count <= 1 << 15);
        let ring = Map::new((count as usize * ENTRY).max(4096))?;
        let bufs = Map::new(count as usize * size)?;
        let r = BufRing {
            ring,
            bufs,
            size,
            mask: count - 1,
            tail: Cell::new(0),
            group,
        };
        for bid in 0..count {
            r.put(bid);
        }
        r.publish();
        let addr = r.ring.ptr.as_ptr() as u64;
        monoio::ring::with_submitter(|s| {
            // SAFETY: the ring memory is a page-aligned mapping of `count`
            // entries that lives as long as this value, which unregisters
            // it before unmapping (Drop).
            unsafe { s.register_buf_ring(addr, count, group) }
        })
        .unwrap_or_else(|| {
            Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "not an io_uring runtime",
            ))
        })?;
        Ok(r)
    }

    pub fn group(&self) -> u16 {
        self.group
    }

    pub fn buffer_size(&self) -> usize {
        self.size
    }

    fn buf_ptr(&self, bid: u16) -> *mut u8 {
        let bid = (bid & self.mask) as usize;
        // SAFETY: bid ≤ mask < count, inside the buffers' mapping.
        unsafe { self.bufs.ptr.as_ptr().add(bid * self.size) }
    }

    /// Write buffer `bid` into the ring slot at the tail (not yet visible).
    fn put(&self, bid: u16) {
        let t = self.tail.get();
        let slot = (t & self.mask) as usize;
        // SAFETY: slot < count entries of the ring mapping; the kernel
        // reads only slots below the published tail, and this one is not.
        unsafe {
            let e = self.ring.ptr.as_ptr().add(slot * ENTRY);
            (e as *mut u64).write(self.buf_ptr(bid) as u64);
            (e.add(8) as *mut u32).write(self.size as u32);
            (e.add(12) as *mut u16).write(bid);
        }
        self.tail.set(t.wrapping_add(1));
    }

    /// Make the entries written so far visible to the kernel.
    fn publish(&self) {
        // SAFETY: the tail is a naturally aligned u16 inside the mapping,
        // shared with the kernel, which reads it with acquire ordering.
        unsafe {
            let tail = &*(self.ring.ptr.as_ptr().add(TAIL_OFFSET) as *const AtomicU16);
            tail.store(self.tail.get(), Ordering::Release);
        }
    }

    /// The first `len` bytes of buffer `bid`, as a completion filled them.
    pub fn bytes(&self, bid: u16, len: usize) -> &[u8] {
        let len = len.min(self.size);
        // SAFETY: inside the buffer's own region; the kernel finished
        // writing it before posting the completion that named it, and it
        // is not in the ring (not writable by the kernel) until given back.
        unsafe { std::slice::from_raw_parts(self.buf_ptr(bid), len) }
    }

    /// Hand buffer `bid` back to the kernel.
    pub fn give_back(&self, bid: u16) {
        self.put(bid);
        self.publish();
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        let _ = monoio::ring::with_submitter(|s| s.unregister_buf_ring(self.group));
    }
}

/// A socket as an SQE names it: its descriptor, or its slot in the ring's
/// registered file table ([`FileTable`]), which spares the kernel a file
/// lookup and a reference count per SQE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sock {
    Fd(RawFd),
    Fixed(u32),
}

/// Build an SQE on a [`Sock`]: `on!(sock, |t| opcode::X::new(t, ..))`.
macro_rules! on {
    ($sock:expr, |$t:ident| $e:expr) => {
        match $sock {
            Sock::Fd(fd) => {
                let $t = types::Fd(fd);
                $e
            }
            Sock::Fixed(i) => {
                let $t = types::Fixed(i);
                $e
            }
        }
    };
}

/// The ring's registered file table: `slots` entries, empty at first
/// (Linux 5.19 sparse registration), filled and emptied per tunnel with
/// one `io_uring_register` each. A filled slot holds its own reference to
/// the socket, so it must be emptied for the socket to close.
pub struct FileTable {
    slots: u32,
}

impl FileTable {
    pub fn register(slots: u32) -> io::Result<FileTable> {
        monoio::ring::with_submitter(|s| s.register_files_sparse(slots))
            .unwrap_or_else(|| Err(io::Error::new(io::ErrorKind::Unsupported, "not io_uring")))?;
        Ok(FileTable { slots })
    }

    pub fn slots(&self) -> u32 {
        self.slots
    }

    /// Put `fds` in the slots from `at`.
    pub fn set(&self, at: u32, fds: &[RawFd]) -> io::Result<()> {
        match monoio::ring::with_submitter(|s| s.register_files_update(at, fds)) {
            Some(Ok(n)) if n == fds.len() => Ok(()),
            Some(Ok(_)) => {
                self.clear(at, fds.len());
                Err(io::Error::other("file table update was partial"))
            }
            Some(Err(e)) => Err(e),
            None => Err(io::Error::new(io::ErrorKind::Unsupported, "not io_uring")),
        }
    }

    /// Empty `n` slots from `at`, dropping their references.
    pub fn clear(&self, at: u32, n: usize) {
        let none = [-1 as RawFd; 4];
        let _ = monoio::ring::with_submitter(|s| s.register_files_update(at, &none[..n.min(4)]));
    }
}

impl Drop for FileTable {
    fn drop(&mut self) {
        let _ = monoio::ring::with_submitter(|s| s.unregister_files());
    }
}

fn push(e: squeue::Entry) -> io::Result<()> {
    // SAFETY: the module contract (descriptor and bytes outlive the SQE's
    // last completion), kept by the relay; every entry carries TAG.
    unsafe { monoio::ring::push(&e) }
}

/// One recv on `fd` into a buffer picked from `group` when bytes arrive.
/// `IORING_RECVSEND_POLL_FIRST` (5.19): the caller knows the socket is
/// drained, so the kernel arms its poll without trying a recv first.
pub fn recv_select(sock: Sock, group: u16, user_data: u64) -> io::Result<()> {
    let e = on!(sock, |t| opcode::Recv::new(t, std::ptr::null_mut(), 0)
        .buf_group(group)
        .build())
    .flags(squeue::Flags::BUFFER_SELECT)
    .user_data(user_data);
    // SAFETY: an SQE is the 64-byte `io_uring_sqe`, whose u16 `ioprio`
    // sits at byte 2 (after `opcode` and `flags`); io-uring 0.6's Recv has
    // no setter for it. Entry is a repr(C) wrapper of the sqe.
    let e = unsafe {
        let mut raw: [u8; 64] = std::mem::transmute(e);
        raw[2..4].copy_from_slice(&(IORING_RECVSEND_POLL_FIRST as u16).to_ne_bytes());
        std::mem::transmute::<[u8; 64], squeue::Entry>(raw)
    };
    push(e)
}

/// `IORING_RECVSEND_POLL_FIRST`.
const IORING_RECVSEND_POLL_FIRST: u32 = 1;

/// A send of `len` bytes of buffer `bid` from `offset` (never raises
/// SIGPIPE; retried by the kernel until all is sent or an error).
pub fn send(
    sock: Sock,
    ring: &BufRing,
    bid: u16,
    offset: usize,
    len: usize,
    user_data: u64,
) -> io::Result<()> {
    let bytes = &ring.bytes(bid, offset + len)[offset..];
    let (ptr, n) = (bytes.as_ptr(), bytes.len() as u32);
    push(
        on!(sock, |t| opcode::Send::new(t, ptr, n)
            .flags(libc::MSG_NOSIGNAL | libc::MSG_WAITALL)
            .build())
        .user_data(user_data),
    )
}

/// Wait (one shot) for `fd` to be writable.
pub fn poll_writable(sock: Sock, user_data: u64) -> io::Result<()> {
    push(
        on!(sock, |t| opcode::PollAdd::new(t, libc::POLLOUT as u32)
            .build())
        .user_data(user_data),
    )
}

/// Cancel every request on `sock` in this ring (Linux 5.19).
pub fn cancel_all(sock: Sock, user_data: u64) -> io::Result<()> {
    let b = on!(sock, |t| types::CancelBuilder::fd(t).all());
    push(opcode::AsyncCancel2::new(b).build().user_data(user_data))
}

/// The buffer a completion picked, if any.
pub fn completion_buffer(flags: u32) -> Option<u16> {
    monoio::ring::io_uring::cqueue::buffer_select(flags)
}

/// The running kernel's (major, minor) version, from uname(2).
pub fn kernel_version() -> Option<(u32, u32)> {
    // SAFETY: utsname is plain data, filled by uname.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: u is a valid utsname to fill.
    if unsafe { libc::uname(&mut u) } != 0 {
        return None;
    }
    let release: Vec<u8> = u
        .release
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    parse_kernel_version(&String::from_utf8_lossy(&release))
}

/// "6.1.0-13-amd64" → (6, 1).
pub fn parse_kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut it = release.split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    #[test]
    fn kernel_versions_parse() {
        use super::parse_kernel_version as p;
        assert_eq!(p("6.18.44-fc-v669"), Some((6, 18)));
        assert_eq!(p("5.14.0-427.13.1.el9_4.x86_64"), Some((5, 14)));
        assert_eq!(p("6.0"), Some((6, 0)));
        assert_eq!(p("garbage"), None);
        assert!(super::kernel_version().is_some());
    }
}
