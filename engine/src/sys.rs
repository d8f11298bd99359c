//! Readiness-driven socket I/O shared by both drivers.
//!
//! ringway waits for readiness through monoio (an io_uring `POLL_ADD`, or
//! epoll on the legacy driver) and then moves bytes with plain non-blocking
//! syscalls on the worker thread. Waiting costs no buffer and no kernel
//! thread, which is what makes an idle tunnel cheap: an in-flight io_uring
//! `recv` would pin a buffer per direction, and an `IORING_OP_SPLICE` on a
//! socket is punted to an io-wq worker thread that sits blocked for as long
//! as the tunnel is idle.
//!
//! Every call here is non-blocking (`MSG_DONTWAIT`, `SPLICE_F_NONBLOCK`, and
//! the sockets are switched to `O_NONBLOCK` when a connection starts).

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use monoio::net::TcpStream;

/// Put a socket into non-blocking mode (idempotent).
pub fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own; no memory is passed.
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
pub fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: buf is a valid writable region of buf.len() bytes.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
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
pub fn pending(fd: RawFd) -> Pending {
    let mut b = [0u8; 1];
    loop {
        // SAFETY: a one-byte peek into a local buffer.
        let n = unsafe {
            libc::recv(
                fd,
                b.as_mut_ptr().cast(),
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        return match n {
            0 => Pending::Eof,
            n if n > 0 => Pending::Data,
            _ => match io::Error::last_os_error().kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => Pending::Nothing,
                _ => Pending::Error,
            },
        };
    }
}

/// One non-blocking `send` (never raises SIGPIPE).
pub fn send(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    loop {
        // SAFETY: buf is a valid readable region of buf.len() bytes.
        let n = unsafe {
            libc::send(
                fd,
                buf.as_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if n >= 0 {
            return Ok(n as usize);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Non-blocking `splice(2)` of up to `len` bytes from `from` to `to`; one of
/// them must be a pipe. `Ok(0)` from a socket is end of stream.
pub fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    loop {
        // SAFETY: plain descriptors, null offsets (both are streams).
        let n = unsafe {
            libc::splice(
                from,
                std::ptr::null_mut(),
                to,
                std::ptr::null_mut(),
                len,
                libc::SPLICE_F_NONBLOCK | libc::SPLICE_F_MOVE,
            )
        };
        if n >= 0 {
            return Ok(n as usize);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// `shutdown(fd, SHUT_WR)`: pass a half-close on. Errors (peer already gone)
/// are not interesting to the caller.
pub fn shutdown_write(fd: RawFd) {
    // SAFETY: plain descriptor.
    unsafe {
        libc::shutdown(fd, libc::SHUT_WR);
    }
}

/// A non-blocking pipe pair (read end, write end), close-on-exec.
pub fn pipe() -> io::Result<(RawFd, RawFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: fds is a valid array of two ints.
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((fds[0], fds[1]))
}

/// Raise the soft open-file limit to the hard one (nginx needs
/// `worker_rlimit_nofile` for this; a proxy holding thousands of tunnels
/// always wants it). Returns the soft limit in force afterwards.
pub fn raise_nofile_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: lim is a valid rlimit to fill / read.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Err(io::Error::last_os_error());
        }
        if lim.rlim_cur < lim.rlim_max {
            let want = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    Ok(lim.rlim_cur)
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
    // SAFETY: dup2 of our stdin-or-/dev/null descriptor onto a slot we
    // close again at once; no other thread exists yet to race for it.
    unsafe {
        let src = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        if src < 0 {
            return Err(io::Error::last_os_error());
        }
        let r = libc::dup2(src, top);
        let err = io::Error::last_os_error();
        libc::close(src);
        if r < 0 {
            return Err(err);
        }
        libc::close(top);
    }
    Ok(slots)
}

pub fn close(fd: RawFd) {
    // SAFETY: the caller owns fd and never uses it again.
    unsafe {
        libc::close(fd);
    }
}

fn is_would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

/// Wait until `stream` is readable. On the legacy driver `relaxed = false`
/// re-checks with poll(2), because our own syscalls do not update monoio's
/// cached readiness.
#[inline]
pub async fn readable(stream: &TcpStream) -> io::Result<()> {
    stream.readable(false).await
}

#[inline]
pub async fn writable(stream: &TcpStream) -> io::Result<()> {
    stream.writable(false).await
}

/// Read some bytes, waiting for readiness as needed. `Ok(0)` is end of stream.
pub async fn read_some(stream: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    let fd = stream.as_raw_fd();
    loop {
        match recv(fd, buf) {
            Err(e) if is_would_block(&e) => readable(stream).await?,
            other => return other,
        }
    }
}

/// Read some bytes, appending to `buf` (growing it by at most `max_total -
/// buf.len()`). `Ok(0)` is end of stream or a full buffer; callers check
/// `buf.len() == max_total` to tell them apart. Waits for readiness before
/// reserving room, so a connection waiting for its next request holds no
/// buffer.
pub async fn read_append(
    stream: &TcpStream,
    buf: &mut Vec<u8>,
    max_total: usize,
) -> io::Result<usize> {
    let room = max_total.saturating_sub(buf.len()).min(16 * 1024);
    if room == 0 {
        return Ok(0);
    }
    let fd = stream.as_raw_fd();
    loop {
        if buf.is_empty() && buf.capacity() == 0 {
            readable(stream).await?;
        }
        buf.reserve(room);
        let spare = &mut buf.spare_capacity_mut()[..room];
        // SAFETY: recv writes at most spare.len() bytes into the spare
        // capacity; exactly n of them are initialised when it returns n.
        let n = unsafe {
            libc::recv(
                fd,
                spare.as_mut_ptr().cast(),
                spare.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n >= 0 {
            // SAFETY: see above.
            unsafe { buf.set_len(buf.len() + n as usize) };
            return Ok(n as usize);
        }
        let err = io::Error::last_os_error();
        match err.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => {
                if buf.is_empty() {
                    *buf = Vec::new();
                }
                readable(stream).await?;
            }
            _ => return Err(err),
        }
    }
}

/// The pending error of a socket (SO_ERROR), e.g. after a non-blocking
/// connect completes.
pub fn take_socket_error(fd: RawFd) -> io::Result<Option<io::Error>> {
    let mut err: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: err/len are valid for getsockopt's int option.
    let r = unsafe {
        libc::getsockopt(
            fd,
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

/// Write all of `data`, waiting for writability as needed; each wait for
/// writability is bounded by `timeout` (nginx's send timeout semantics:
/// between two successful writes).
pub async fn write_all(stream: &TcpStream, mut data: &[u8], timeout: Duration) -> io::Result<()> {
    let fd = stream.as_raw_fd();
    while !data.is_empty() {
        match send(fd, data) {
            Ok(n) => data = &data[n..],
            // Boxed: the wait (a timer and a poll) is only allocated
            // while the peer is slow, keeping callers' futures small.
            Err(e) if is_would_block(&e) => Box::pin(wait_writable(stream, timeout)).await?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Wait for writability at most `timeout`.
pub async fn wait_writable(stream: &TcpStream, timeout: Duration) -> io::Result<()> {
    match monoio::time::timeout(timeout, writable(stream)).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "send timed out")),
    }
}

/// Read some bytes, waiting at most `timeout` for them.
pub async fn read_some_timeout(
    stream: &TcpStream,
    buf: &mut [u8],
    timeout: Duration,
) -> io::Result<usize> {
    let fd = stream.as_raw_fd();
    match recv(fd, buf) {
        Err(e) if is_would_block(&e) => {}
        other => return other,
    }
    match monoio::time::timeout(timeout, read_some(stream, buf)).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "read timed out")),
    }
}

pub fn would_block(e: &io::Error) -> bool {
    is_would_block(e)
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
}
