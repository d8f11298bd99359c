//! Descriptors across a unix socket (SCM_RIGHTS) for the binary upgrade's
//! handoff (`handoff`): a SOCK_SEQPACKET pair, one message per packet
//! with its descriptors beside it, and the descriptor flags the handoff
//! needs.
//!
//! Unlike the rest of `sys`, these calls block: the handoff socket is
//! blocking and is driven from threads of its own, never from a worker's
//! event loop. Every descriptor made here is close-on-exec (received ones
//! too, `MSG_CMSG_CLOEXEC`); [`set_cloexec`] clears it on the one end a
//! new process inherits.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use crate::handoff::MAX_FDS;

/// The socket buffers asked for on each end of a handoff pair (the
/// kernel caps them at `net.core.{w,r}mem_max`).
const SOCKET_BUFFER: libc::c_int = 4 << 20;

/// A connected SOCK_SEQPACKET unix socket pair, close-on-exec, blocking,
/// with send and receive buffers of 4 MiB asked for (a failure to get
/// them is ignored).
pub fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [-1 as libc::c_int; 2];
    // SAFETY: socketpair writes two descriptors into the 2-int array.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: socketpair succeeded: both are open descriptors we now own.
    let pair = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    for fd in [&pair.0, &pair.1] {
        for opt in [libc::SO_SNDBUF, libc::SO_RCVBUF] {
            let _ = setsockopt(fd.as_raw_fd(), opt, &SOCKET_BUFFER);
        }
    }
    Ok(pair)
}

/// A SOL_SOCKET option.
fn setsockopt<T>(fd: RawFd, opt: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` points at a live T of the size passed; the kernel
    // only reads it.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            opt,
            (value as *const T).cast(),
            mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// A control message buffer of at least `len` bytes, aligned for
/// `cmsghdr` (a `Vec<u64>`: 8-byte alignment, as `cmsghdr`'s `size_t`
/// needs).
fn cmsg_buffer(len: usize) -> Vec<u64> {
    vec![0u64; len.div_ceil(mem::size_of::<u64>())]
}

/// `CMSG_SPACE` for `n` descriptors.
fn space_for(n: usize) -> usize {
    // SAFETY: CMSG_SPACE is arithmetic; n <= MAX_FDS keeps it in u32.
    unsafe { libc::CMSG_SPACE((n * mem::size_of::<libc::c_int>()) as u32) as usize }
}

/// Send `bytes` as one packet with `fds` beside it (SCM_RIGHTS; none
/// when `fds` is empty): blocks until it is sent, retries on EINTR, and
/// raises no SIGPIPE (`MSG_NOSIGNAL`: a closed peer is `EPIPE`). More
/// than [`MAX_FDS`] descriptors is an `InvalidInput` error and sends
/// nothing. A packet is sent whole or not at all (a short send is an
/// error). The packet should not be empty: an empty one without
/// descriptors reads as the end of the stream ([`recv_with_fds`]).
pub fn send_with_fds(sock: BorrowedFd<'_>, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    if fds.len() > MAX_FDS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} descriptors in one message (at most {MAX_FDS})",
                fds.len()
            ),
        ));
    }
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    let space = if fds.is_empty() {
        0
    } else {
        space_for(fds.len())
    };
    let mut control = cmsg_buffer(space);
    // SAFETY: an all-zero msghdr is valid (null pointers, zero lengths).
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        let data_len = fds.len() * mem::size_of::<libc::c_int>();
        // SAFETY: the control buffer is `space` bytes, aligned, and
        // msg_controllen says so: CMSG_FIRSTHDR returns its start (not
        // null, as space >= CMSG_SPACE(data_len) > 0), and CMSG_DATA
        // points inside it with room for `data_len` bytes.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(data_len as u32) as _;
            let data = libc::CMSG_DATA(cmsg).cast::<libc::c_int>();
            for (i, fd) in fds.iter().enumerate() {
                data.add(i).write_unaligned(fd.as_raw_fd());
            }
        }
    }
    let sent = super::retry_eintr(|| {
        // SAFETY: msg points at the iovec (over `bytes`) and the control
        // buffer, all alive for the call; the kernel only reads them.
        unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) }
    })?;
    if sent != bytes.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            format!(
                "short send on the handoff socket: {sent} of {} bytes",
                bytes.len()
            ),
        ));
    }
    Ok(())
}

/// Receive one packet into `buf`, and the descriptors beside it
/// (close-on-exec): `Ok(Some((len, fds)))`, or `Ok(None)` at the end of
/// the stream (the peer closed; nothing and no descriptor came). Blocks
/// (up to the timeout of [`set_recv_timeout`], if one is set) and
/// retries on EINTR.
///
/// A packet larger than `buf` (MSG_TRUNC) or descriptors that did not all
/// arrive (MSG_CTRUNC: more than [`MAX_FDS`], or the descriptor limit
/// reached) is an `InvalidData` error — the handoff failed — and every
/// descriptor that did arrive is closed.
pub fn recv_with_fds(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
) -> io::Result<Option<(usize, Vec<OwnedFd>)>> {
    recv_with_room(sock, buf, MAX_FDS)
}

/// [`recv_with_fds`] with control room for `room` descriptors.
fn recv_with_room(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    room: usize,
) -> io::Result<Option<(usize, Vec<OwnedFd>)>> {
    let space = space_for(room);
    let mut control = cmsg_buffer(space);
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: an all-zero msghdr is valid (null pointers, zero lengths).
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    let n = super::retry_eintr(|| {
        // The kernel rewrites these on each call.
        msg.msg_controllen = space as _;
        msg.msg_flags = 0;
        // SAFETY: msg points at the iovec (over `buf`) and the control
        // buffer of `space` bytes, both alive and writable for the call.
        unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) }
    })?;
    let mut fds = Vec::new();
    // SAFETY: recvmsg filled the control buffer and set msg_controllen to
    // what it wrote; CMSG_FIRSTHDR/NXTHDR stay within it, and each
    // SCM_RIGHTS message holds (cmsg_len - CMSG_LEN(0)) / sizeof(int)
    // descriptors the kernel just installed for us (ours to own and
    // close), read unaligned.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let len = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                let count = len / mem::size_of::<libc::c_int>();
                let data = libc::CMSG_DATA(cmsg).cast::<libc::c_int>();
                for i in 0..count {
                    fds.push(OwnedFd::from_raw_fd(data.add(i).read_unaligned()));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    let truncated = msg.msg_flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC);
    if truncated != 0 {
        let arrived = fds.len();
        drop(fds);
        let what = match (
            truncated & libc::MSG_TRUNC != 0,
            truncated & libc::MSG_CTRUNC != 0,
        ) {
            (true, true) => "message and descriptors truncated (MSG_TRUNC, MSG_CTRUNC)",
            (true, false) => "message truncated (MSG_TRUNC)",
            _ => "descriptors truncated (MSG_CTRUNC)",
        };
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "handoff {what}: buffer {} bytes, room for {room} descriptors; \
                 closed the {arrived} that arrived",
                buf.len()
            ),
        ));
    }
    if n == 0 && fds.is_empty() {
        return Ok(None);
    }
    Ok(Some((n, fds)))
}

/// Set (or with `None` clear) the socket's receive timeout (SO_RCVTIMEO).
/// A receive that times out fails with `io::ErrorKind::WouldBlock` (the
/// kernel's EAGAIN), not `TimedOut`. A zero duration is an
/// `InvalidInput` error (to the kernel it would mean no timeout).
pub fn set_recv_timeout(sock: BorrowedFd<'_>, t: Option<Duration>) -> io::Result<()> {
    let tv = match t {
        None => libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        },
        Some(d) if d.is_zero() => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a zero receive timeout",
            ))
        }
        Some(d) => {
            let mut tv = libc::timeval {
                tv_sec: libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX),
                tv_usec: libc::suseconds_t::from(d.subsec_micros()),
            };
            if tv.tv_sec == 0 && tv.tv_usec == 0 {
                tv.tv_usec = 1; // under a microsecond: the least there is
            }
            tv
        }
    };
    setsockopt(sock.as_raw_fd(), libc::SO_RCVTIMEO, &tv)
}

/// A duplicate of `fd`, close-on-exec, numbered 3 or above (never one of
/// the standard streams).
pub fn dup_cloexec(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    // SAFETY: fcntl on a live descriptor; no memory is passed.
    let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: F_DUPFD_CLOEXEC made a new descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Set or clear `fd`'s close-on-exec flag (cleared on the handoff end a
/// new process inherits).
pub fn set_cloexec(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    let fd = fd.as_raw_fd();
    // SAFETY: fcntl on a live descriptor; no memory is passed.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags < 0 {
            return Err(io::Error::last_os_error());
        }
        let want = if on {
            flags | libc::FD_CLOEXEC
        } else {
            flags & !libc::FD_CLOEXEC
        };
        if want != flags && libc::fcntl(fd, libc::F_SETFD, want) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// How long a send may block (SO_SNDTIMEO): a timed out send fails with
/// `WouldBlock`.
pub fn set_send_timeout(sock: BorrowedFd<'_>, t: Duration) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: libc::time_t::try_from(t.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_usec: libc::suseconds_t::from(t.subsec_micros()),
    };
    setsockopt(sock.as_raw_fd(), libc::SO_SNDTIMEO, &tv)
}

/// Have `cmd`'s process inherit `fd` and no other descriptor above
/// stderr: between fork and exec, every descriptor from 3 up is marked
/// close-on-exec (`close_range(CLOSE_RANGE_CLOEXEC)`, Linux 5.11; on an
/// older kernel one `fcntl` per descriptor up to the open-file limit) —
/// some are made without the flag (monoio's io_uring accept), and a
/// client socket the new process inherited by accident would outlive its
/// connection there — then the flag is cleared on `fd` alone.
pub fn inherit_in(cmd: &mut std::process::Command, fd: std::os::fd::RawFd) {
    use std::os::unix::process::CommandExt;
    let limit = crate::sys::nofile_limit().min(i32::MAX as u64) as i32;
    // SAFETY: between fork and exec only close_range and fcntl run
    // (async-signal-safe), on descriptors of the child's own table.
    unsafe {
        cmd.pre_exec(move || {
            let r = libc::syscall(
                libc::SYS_close_range,
                3u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            );
            if r != 0 {
                for other in 3..limit {
                    let flags = libc::fcntl(other, libc::F_GETFD);
                    if flags >= 0 && flags & libc::FD_CLOEXEC == 0 {
                        libc::fcntl(other, libc::F_SETFD, flags | libc::FD_CLOEXEC);
                    }
                }
            }
            set_cloexec(BorrowedFd::borrow_raw(fd), false)
        });
    }
}

/// Take ownership of descriptor `fd`, which the process that started
/// this one passed to it (by number, in the environment): `None` when it
/// is not open.
pub fn take_inherited(fd: std::os::fd::RawFd) -> Option<OwnedFd> {
    // SAFETY: F_GETFD only reads the descriptor's flags.
    if fd < 0 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return None;
    }
    // SAFETY: the descriptor is open, and the starting process passed it
    // to this one for this use alone: nothing else here owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::time::Instant;

    /// A pipe, both ends close-on-exec: (read, write).
    fn pipe() -> (OwnedFd, OwnedFd) {
        let mut fds = [-1; 2];
        // SAFETY: pipe2 writes two descriptors into the array.
        let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
        assert_eq!(rc, 0, "{}", io::Error::last_os_error());
        // SAFETY: both are new descriptors we own.
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
    }

    fn write_all(fd: BorrowedFd<'_>, b: &[u8]) {
        // SAFETY: write from a live slice.
        let n = unsafe { libc::write(fd.as_raw_fd(), b.as_ptr().cast(), b.len()) };
        assert_eq!(n, b.len() as isize, "{}", io::Error::last_os_error());
    }

    /// A read of up to `buf.len()` bytes: Ok(0) at EOF.
    fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: read into a live, writable slice.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    fn cloexec(fd: BorrowedFd<'_>) -> bool {
        // SAFETY: fcntl on a live descriptor.
        let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
        assert!(flags >= 0);
        flags & libc::FD_CLOEXEC != 0
    }

    /// No write end of the pipe is open anywhere: its read end (made
    /// non-blocking) reads EOF. A process another test forks may hold a
    /// copy for a moment before its exec, so this waits a little.
    fn no_writer_left(read_end: BorrowedFd<'_>) -> bool {
        crate::sys::set_nonblocking(read_end).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut b = [0u8; 64];
        loop {
            match read(read_end, &mut b) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("{e}"),
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn one_descriptor_crosses() {
        let (a, b) = seqpacket_pair().unwrap();
        assert!(cloexec(a.as_fd()) && cloexec(b.as_fd()));
        let (r, w) = pipe();
        send_with_fds(a.as_fd(), b"listener", &[w.as_fd()]).unwrap();
        let mut buf = [0u8; 64];
        let (n, fds) = recv_with_fds(b.as_fd(), &mut buf).unwrap().unwrap();
        assert_eq!(&buf[..n], b"listener");
        assert_eq!(fds.len(), 1);
        assert_ne!(fds[0].as_raw_fd(), w.as_raw_fd());
        assert!(cloexec(fds[0].as_fd()));
        write_all(fds[0].as_fd(), b"via the copy");
        let mut got = [0u8; 32];
        let k = read(r.as_fd(), &mut got).unwrap();
        assert_eq!(&got[..k], b"via the copy");
        drop((w, fds));
        assert!(no_writer_left(r.as_fd()));
    }

    #[test]
    fn packets_keep_their_boundaries() {
        let (a, b) = seqpacket_pair().unwrap();
        let sent: [&[u8]; 4] = [b"a", b"bc", &[7u8; 100_000], b"def"];
        for p in sent {
            send_with_fds(a.as_fd(), p, &[]).unwrap();
        }
        let mut buf = vec![0u8; 200_000];
        for p in sent {
            let (n, fds) = recv_with_fds(b.as_fd(), &mut buf).unwrap().unwrap();
            assert_eq!(&buf[..n], p);
            assert!(fds.is_empty());
        }
    }

    #[test]
    fn the_most_descriptors_cross_and_one_more_is_refused() {
        let (a, b) = seqpacket_pair().unwrap();
        let (r, w) = pipe();
        let many = vec![w.as_fd(); MAX_FDS];
        send_with_fds(a.as_fd(), b"tunnels", &many).unwrap();
        let mut buf = [0u8; 16];
        let (n, fds) = recv_with_fds(b.as_fd(), &mut buf).unwrap().unwrap();
        assert_eq!(&buf[..n], b"tunnels");
        assert_eq!(fds.len(), MAX_FDS);
        let mut numbers: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
        numbers.sort_unstable();
        numbers.dedup();
        assert_eq!(numbers.len(), MAX_FDS, "distinct descriptors");
        for fd in &fds {
            assert!(cloexec(fd.as_fd()));
            write_all(fd.as_fd(), b"x");
        }
        let mut got = vec![0u8; 2 * MAX_FDS];
        let mut total = 0;
        while total < MAX_FDS {
            total += read(r.as_fd(), &mut got[total..]).unwrap();
        }
        assert_eq!(total, MAX_FDS);

        let too_many = vec![w.as_fd(); MAX_FDS + 1];
        let e = send_with_fds(a.as_fd(), b"x", &too_many).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        // Nothing went out.
        set_recv_timeout(b.as_fd(), Some(Duration::from_millis(50))).unwrap();
        let e = recv_with_fds(b.as_fd(), &mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        drop((w, fds));
        assert!(no_writer_left(r.as_fd()));
    }

    #[test]
    fn end_of_stream_is_none() {
        let (a, b) = seqpacket_pair().unwrap();
        send_with_fds(a.as_fd(), b"last", &[]).unwrap();
        drop(a);
        let mut buf = [0u8; 16];
        let (n, _) = recv_with_fds(b.as_fd(), &mut buf).unwrap().unwrap();
        assert_eq!(&buf[..n], b"last");
        assert!(recv_with_fds(b.as_fd(), &mut buf).unwrap().is_none());
        // And a send to a closed peer is EPIPE, not a SIGPIPE.
        let (a, b) = seqpacket_pair().unwrap();
        drop(b);
        let e = send_with_fds(a.as_fd(), b"x", &[]).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EPIPE));
    }

    #[test]
    fn a_truncated_packet_fails_and_closes_its_descriptors() {
        let (a, b) = seqpacket_pair().unwrap();
        let (r, w) = pipe();
        send_with_fds(a.as_fd(), &[1u8; 100], &[w.as_fd(), w.as_fd(), w.as_fd()]).unwrap();
        drop(w);
        let mut small = [0u8; 10];
        let e = recv_with_fds(b.as_fd(), &mut small).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("MSG_TRUNC"), "{e}");
        assert!(e.to_string().contains("closed the 3"), "{e}");
        // Every copy of the write end is gone: none leaked.
        assert!(no_writer_left(r.as_fd()));
        // The socket goes on with the next packet.
        send_with_fds(a.as_fd(), b"next", &[]).unwrap();
        let (n, _) = recv_with_fds(b.as_fd(), &mut small).unwrap().unwrap();
        assert_eq!(&small[..n], b"next");
    }

    #[test]
    fn truncated_descriptors_fail_and_close_those_that_came() {
        let (a, b) = seqpacket_pair().unwrap();
        let (r, w) = pipe();
        send_with_fds(a.as_fd(), b"three", &[w.as_fd(), w.as_fd(), w.as_fd()]).unwrap();
        drop(w);
        let mut buf = [0u8; 16];
        let e = recv_with_room(b.as_fd(), &mut buf, 1).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("MSG_CTRUNC"), "{e}");
        assert!(no_writer_left(r.as_fd()));
    }

    #[test]
    fn a_receive_times_out() {
        let (_a, b) = seqpacket_pair().unwrap();
        set_recv_timeout(b.as_fd(), Some(Duration::from_millis(100))).unwrap();
        let start = Instant::now();
        let e = recv_with_fds(b.as_fd(), &mut [0u8; 8]).unwrap_err();
        let took = start.elapsed();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        assert!(took >= Duration::from_millis(90), "{took:?}");
        assert!(took < Duration::from_secs(5), "{took:?}");
        set_recv_timeout(b.as_fd(), None).unwrap();
        let e = set_recv_timeout(b.as_fd(), Some(Duration::ZERO)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn dup_and_cloexec() {
        let (r, w) = pipe();
        let d = dup_cloexec(w.as_fd()).unwrap();
        assert!(d.as_raw_fd() >= 3 && d.as_raw_fd() != w.as_raw_fd());
        assert!(cloexec(d.as_fd()));
        set_cloexec(d.as_fd(), false).unwrap();
        assert!(!cloexec(d.as_fd()));
        set_cloexec(d.as_fd(), true).unwrap();
        assert!(cloexec(d.as_fd()));
        write_all(d.as_fd(), b"d");
        let mut got = [0u8; 1];
        assert_eq!(read(r.as_fd(), &mut got).unwrap(), 1);
    }
}
