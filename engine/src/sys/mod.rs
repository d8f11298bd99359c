//! Thin syscall wrappers: the engine's one module with `unsafe` code.
//!
//! ringway waits for readiness through monoio (an io_uring `POLL_ADD`, or
//! epoll on the legacy driver) and then moves bytes with plain non-blocking
//! syscalls on the worker thread (`transport`, `proxy::tunnel`). Waiting
//! costs no buffer and no kernel thread, which is what makes an idle
//! tunnel cheap: an in-flight io_uring `recv` would pin a buffer per
//! direction, and an `IORING_OP_SPLICE` on a socket is punted to an io-wq
//! worker thread that sits blocked for as long as the tunnel is idle.
//!
//! Every call takes a `BorrowedFd` (the caller owns the descriptor and
//! keeps it open for the call) and is non-blocking (`MSG_DONTWAIT`,
//! `SPLICE_F_NONBLOCK`, and sockets are `O_NONBLOCK`). Descriptors this
//! module creates come back as `OwnedFd`.
#![allow(unsafe_code)]

pub mod fdpass;
pub mod notify;
pub mod uring;

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Borrow the descriptor of a value that owns one (a monoio socket, which
/// implements `AsRawFd` but not `AsFd`).
#[inline]
pub fn fd<T: AsRawFd>(owner: &T) -> BorrowedFd<'_> {
    // SAFETY: `owner` owns this descriptor and keeps it open for as long as
    // it is borrowed, which is all the returned lifetime allows.
    unsafe { BorrowedFd::borrow_raw(owner.as_raw_fd()) }
}

/// Take the descriptor out of `owner` (which then no longer closes it).
pub fn take_fd<T: std::os::fd::IntoRawFd>(owner: T) -> OwnedFd {
    // SAFETY: `into_raw_fd` hands over the open descriptor it owned; no
    // one else closes it.
    unsafe { OwnedFd::from_raw_fd(owner.into_raw_fd()) }
}

/// Borrow a raw descriptor that its owner (a tunnel's task) keeps open for
/// as long as the borrow is used: the ring relay stores its tunnels'
/// descriptors as numbers and releases a tunnel only before its task,
/// which owns the sockets, goes on to close them.
#[inline]
pub fn borrow_raw(fd: RawFd) -> BorrowedFd<'static> {
    // SAFETY: see above; the relay uses the borrow only while the tunnel
    // is registered, and the tunnel's task outlives the registration.
    unsafe { BorrowedFd::borrow_raw(fd) }
}

fn retry_eintr(mut call: impl FnMut() -> isize) -> io::Result<usize> {
    loop {
        let n = call();
        if n >= 0 {
            return Ok(n as usize);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

pub fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

/// Put a socket into non-blocking mode (idempotent).
pub fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    let fd = fd.as_raw_fd();
    // SAFETY: fcntl on a live descriptor; no memory is passed.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 {
            return Err(io::Error::last_os_error());
        }
        if flags & libc::O_NONBLOCK == 0
            && libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0
        {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// One non-blocking `recv`. `Ok(0)` is end of stream.
pub fn recv(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    retry_eintr(|| {
        // SAFETY: buf is a valid writable region of buf.len() bytes.
        unsafe {
            libc::recv(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        }
    })
}

/// One non-blocking `recv` with `MSG_PEEK`: the bytes stay in the socket.
pub fn peek(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    retry_eintr(|| {
        // SAFETY: buf is a valid writable region of buf.len() bytes.
        unsafe {
            libc::recv(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT | libc::MSG_PEEK,
            )
        }
    })
}

/// One non-blocking `recv` of at most `room` bytes into `buf`'s spare
/// capacity (reserved here), appended to its contents.
pub fn recv_append(fd: BorrowedFd<'_>, buf: &mut Vec<u8>, room: usize) -> io::Result<usize> {
    buf.reserve(room);
    let spare = &mut buf.spare_capacity_mut()[..room];
    let n = retry_eintr(|| {
        // SAFETY: recv writes at most spare.len() bytes into the spare
        // capacity, which is valid for writes of that many bytes.
        unsafe {
            libc::recv(
                fd.as_raw_fd(),
                spare.as_mut_ptr().cast(),
                spare.len(),
                libc::MSG_DONTWAIT,
            )
        }
    })?;
    // SAFETY: the kernel initialised exactly n bytes of the spare capacity.
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}

/// One non-blocking `send` (never raises SIGPIPE).
pub fn send(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    retry_eintr(|| {
        // SAFETY: buf is a valid readable region of buf.len() bytes.
        unsafe {
            libc::send(
                fd.as_raw_fd(),
                buf.as_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        }
    })
}

/// One `write(2)` (files, the access log).
pub fn write(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    retry_eintr(|| {
        // SAFETY: buf is a valid readable region of buf.len() bytes.
        unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) }
    })
}

/// What a socket holds for reading right now, without taking it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pending {
    /// Nothing yet (the read would block).
    Nothing,
    /// At least one byte.
    Data,
    /// End of stream: the peer closed (or half-closed) its side.
    Eof,
    /// The socket has an error (reset).
    Error,
}

/// Peek at a socket (`MSG_PEEK | MSG_DONTWAIT`, one byte): whether bytes,
/// an end of stream or an error are waiting.
pub fn pending(fd: BorrowedFd<'_>) -> Pending {
    let mut b = [0u8; 1];
    let r = retry_eintr(|| {
        // SAFETY: a one-byte peek into a local buffer.
        unsafe {
            libc::recv(
                fd.as_raw_fd(),
                b.as_mut_ptr().cast(),
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        }
    });
    match r {
        Ok(0) => Pending::Eof,
        Ok(_) => Pending::Data,
        Err(e) if would_block(&e) => Pending::Nothing,
        Err(_) => Pending::Error,
    }
}

/// Non-blocking `splice(2)` of up to `len` bytes from `from` to `to`; one of
/// them must be a pipe. `Ok(0)` from a socket is end of stream.
pub fn splice(from: BorrowedFd<'_>, to: BorrowedFd<'_>, len: usize) -> io::Result<usize> {
    retry_eintr(|| {
        // SAFETY: plain descriptors, null offsets (both are streams).
        unsafe {
            libc::splice(
                from.as_raw_fd(),
                std::ptr::null_mut(),
                to.as_raw_fd(),
                std::ptr::null_mut(),
                len,
                libc::SPLICE_F_NONBLOCK | libc::SPLICE_F_MOVE,
            )
        }
    })
}

/// `sendfile(2)` of up to `len` bytes of `file` from `*offset` to `out`,
/// advancing `*offset`. `Ok(0)`: the file ended early.
pub fn sendfile(
    out: BorrowedFd<'_>,
    file: BorrowedFd<'_>,
    offset: &mut u64,
    len: usize,
) -> io::Result<usize> {
    let mut off = *offset as libc::off_t;
    let n = retry_eintr(|| {
        // SAFETY: valid descriptors; `off` is a local the kernel updates.
        unsafe { libc::sendfile(out.as_raw_fd(), file.as_raw_fd(), &mut off, len) }
    })?;
    *offset = off as u64;
    Ok(n)
}

/// `shutdown(fd, SHUT_WR)`: pass a half-close on. Errors (peer already gone)
/// are not interesting to the caller.
pub fn shutdown_write(fd: BorrowedFd<'_>) {
    // SAFETY: plain descriptor, no memory passed.
    unsafe {
        libc::shutdown(fd.as_raw_fd(), libc::SHUT_WR);
    }
}

/// `shutdown(fd, SHUT_RD)` on a listening socket: Linux stops listening at
/// once (the socket leaves its SO_REUSEPORT group, so new connections go
/// to the group's other sockets or are refused; those still in its accept
/// queue are reset; a pending accept fails with `EINVAL`). The descriptor
/// stays open for its owner to close.
pub fn stop_listening(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: plain descriptor, no memory passed.
    if unsafe { libc::shutdown(fd.as_raw_fd(), libc::SHUT_RD) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The user id of the process at the other end of a unix socket
/// (SO_PEERCRED).
pub fn peer_uid(fd: BorrowedFd<'_>) -> io::Result<u32> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` is a live ucred and `len` its size; the kernel
    // writes at most `len` bytes into it.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(cred.uid)
}

/// This process's effective user id.
pub fn euid() -> u32 {
    // SAFETY: geteuid cannot fail and touches no memory.
    unsafe { libc::geteuid() }
}

/// A non-blocking pipe pair (read end, write end), close-on-exec.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: fds is a valid array of two ints.
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 returned two new descriptors that nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// The pending error of a socket (SO_ERROR), clearing it.
pub fn take_socket_error(fd: BorrowedFd<'_>) -> io::Result<Option<io::Error>> {
    let mut err: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: err and len are valid locals of the sizes given.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut err as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((err != 0).then(|| io::Error::from_raw_os_error(err)))
}

/// Raise the soft open-file limit to the hard one (nginx needs
/// `worker_rlimit_nofile` for this; a proxy holding thousands of tunnels
/// always wants it). Returns the soft limit in force afterwards.
pub fn raise_nofile_limit() -> io::Result<u64> {
    let mut lim = nofile_rlimit()?;
    if lim.rlim_cur < lim.rlim_max {
        let want = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: want is a valid rlimit to read.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) } == 0 {
            lim.rlim_cur = lim.rlim_max;
        }
    }
    Ok(lim.rlim_cur)
}

/// The soft open-file limit (1024 if it cannot be read).
pub fn nofile_limit() -> u64 {
    nofile_rlimit().map_or(1024, |l| l.rlim_cur)
}

fn nofile_rlimit() -> io::Result<libc::rlimit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: lim is a valid rlimit to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(lim)
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`): the unit of the
/// times in /proc/PID/stat.
pub fn clock_ticks() -> io::Result<u64> {
    sysconf(libc::_SC_CLK_TCK)
}

/// The page size in bytes (`sysconf(_SC_PAGESIZE)`): the unit of the
/// resident set in /proc/PID/stat.
pub fn page_size() -> io::Result<u64> {
    sysconf(libc::_SC_PAGESIZE)
}

fn sysconf(name: libc::c_int) -> io::Result<u64> {
    // SAFETY: sysconf reads a configuration value; no memory is passed.
    let v = unsafe { libc::sysconf(name) };
    if v <= 0 {
        return Err(io::Error::other(format!("sysconf({name}) gave {v}")));
    }
    Ok(v as u64)
}

/// Grow this process's descriptor table to hold `slots` descriptors now,
/// while the process has one thread. The kernel grows the table by
/// doubling as descriptors are opened, and once several threads share it
/// every growth waits for an RCU grace period (`expand_fdtable` calls
/// `synchronize_rcu`): the worker stalls for milliseconds in whichever
/// `accept` or `socket` crossed the size, during a connection storm. The
/// table never shrinks, so one dup2 to the highest slot and a close is
/// enough. Costs 8 bytes of kernel memory per slot. Returns the slots
/// reserved (0 when `slots` is too small to matter).
pub fn reserve_fd_table(slots: u64) -> io::Result<u64> {
    // The kernel starts with 64 slots; the first growths are cheap.
    if slots <= 1024 {
        return Ok(0);
    }
    let top = RawFd::try_from(slots - 1).unwrap_or(RawFd::MAX);
    let null = std::fs::File::open("/dev/null")?;
    // SAFETY: dup2 of a descriptor we own onto a slot no one uses (no other
    // thread exists yet to race for it); the new descriptor is owned by the
    // OwnedFd at once and closed when it drops.
    let r = unsafe { libc::dup2(null.as_raw_fd(), top) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: dup2 returned `top`, a new descriptor nothing else owns.
    drop(unsafe { OwnedFd::from_raw_fd(r) });
    Ok(slots)
}

#[cfg(test)]
mod tests {
    fn fd_slots() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("FDSize:")).unwrap();
        line["FDSize:".len()..].trim().parse().unwrap()
    }

    #[test]
    fn descriptor_table_is_sized_up_front() {
        let limit = super::raise_nofile_limit().unwrap();
        let want = limit.min(8192);
        if want <= 1024 {
            // A hard limit this low leaves nothing worth reserving.
            assert_eq!(super::reserve_fd_table(want).unwrap(), 0);
            return;
        }
        assert_eq!(super::reserve_fd_table(want).unwrap(), want);
        assert!(fd_slots() >= want, "FDSize {} < {want}", fd_slots());
        // The slot used to grow the table is closed again.
        // SAFETY: fcntl F_GETFD on a descriptor number only queries it.
        assert_eq!(unsafe { libc::fcntl((want - 1) as i32, libc::F_GETFD) }, -1);
        assert_eq!(super::reserve_fd_table(64).unwrap(), 0);
    }

    #[test]
    fn pending_tells_data_eof_and_nothing() {
        use super::{fd, pending, recv, send, Pending};
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert_eq!(pending(fd(&b)), Pending::Nothing);
        assert_eq!(send(fd(&a), b"hi").unwrap(), 2);
        assert_eq!(pending(fd(&b)), Pending::Data);
        let mut buf = [0u8; 8];
        assert_eq!(recv(fd(&b), &mut buf).unwrap(), 2);
        drop(a);
        assert_eq!(pending(fd(&b)), Pending::Eof);
        let (r, w) = super::pipe().unwrap();
        use std::os::fd::AsFd;
        assert_eq!(super::write(w.as_fd(), b"x").unwrap(), 1);
        drop((r, w));
    }
}
