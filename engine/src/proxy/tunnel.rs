//! The tunnel: after a 101, bytes flow both ways until either side closes
//! or neither sends a byte for `proxy_read_timeout` (RFC 6455 §4: once the
//! handshake is done the connection is the application's; the proxy only
//! relays).
//!
//! Cost model: each direction waits for readability with no buffer held
//! (an io_uring POLL_ADD or an epoll registration — no kernel thread), then
//! borrows a pooled buffer, drains the socket with non-blocking recv/send
//! and gives the buffer back. A read that fills the whole buffer switches
//! that direction to splice(2) through a pooled pipe for the rest of the
//! burst, so large messages move without a user-space copy. Half-close is
//! passed on (shutdown(SHUT_WR) on the other side) and the other direction
//! finishes on its own. The idle timeout is one timer per tunnel, re-armed
//! only when it fires before the deadline (not once per message).

use std::cell::Cell;
use std::future::{poll_fn, Future};
use std::io;
use std::os::fd::AsRawFd;
use std::pin::pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use monoio::net::TcpStream;

use crate::runtime::worker::Worker;
use crate::sys;

/// How a tunnel ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Both sides closed (each half-close passed on).
    Closed,
    /// No byte either way for the idle timeout.
    Idle,
    /// A socket error (reset, send timeout).
    Error,
}

#[derive(Debug, Clone, Copy)]
pub struct Stats {
    pub end: End,
    pub client_to_upstream: u64,
    pub upstream_to_client: u64,
}

/// Pipe capacity moved per splice call (the default pipe size).
const SPLICE_CHUNK: usize = 64 * 1024;

pub async fn run(
    worker: &Worker,
    client: &TcpStream,
    upstream: &TcpStream,
    idle_timeout: Duration,
    send_timeout: Duration,
) -> Stats {
    let last = Cell::new(Instant::now());
    let up_bytes = Cell::new(0u64);
    let down_bytes = Cell::new(0u64);
    let a = pump(worker, client, upstream, &last, &up_bytes, send_timeout);
    let b = pump(worker, upstream, client, &last, &down_bytes, send_timeout);
    let relay = both(a, b);
    let idle = async {
        loop {
            let deadline = last.get() + idle_timeout;
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            monoio::time::sleep(deadline - now).await;
        }
    };
    let end = monoio::select! {
        r = relay => if r.is_ok() { End::Closed } else { End::Error },
        _ = idle => End::Idle,
    };
    Stats {
        end,
        client_to_upstream: up_bytes.get(),
        upstream_to_client: down_bytes.get(),
    }
}

/// Run both directions; finish when both finish, or at the first error.
async fn both(
    a: impl Future<Output = io::Result<()>>,
    b: impl Future<Output = io::Result<()>>,
) -> io::Result<()> {
    let mut a = pin!(a);
    let mut b = pin!(b);
    let (mut a_done, mut b_done) = (false, false);
    poll_fn(|cx| {
        if !a_done {
            if let Poll::Ready(r) = a.as_mut().poll(cx) {
                r?;
                a_done = true;
            }
        }
        if !b_done {
            if let Poll::Ready(r) = b.as_mut().poll(cx) {
                r?;
                b_done = true;
            }
        }
        if a_done && b_done {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    })
    .await
}

/// One direction, src → dst, until src's end of stream (then SHUT_WR dst).
async fn pump(
    worker: &Worker,
    src: &TcpStream,
    dst: &TcpStream,
    last: &Cell<Instant>,
    bytes: &Cell<u64>,
    send_timeout: Duration,
) -> io::Result<()> {
    let (sfd, dfd) = (src.as_raw_fd(), dst.as_raw_fd());
    loop {
        let mut buf = worker.bufs.take();
        let n = match sys::recv(sfd, &mut buf) {
            Ok(n) => n,
            Err(e) if sys::would_block(&e) => {
                worker.bufs.give(buf);
                sys::readable(src).await?;
                continue;
            }
            Err(e) => {
                worker.bufs.give(buf);
                return Err(e);
            }
        };
        if n == 0 {
            worker.bufs.give(buf);
            sys::shutdown_write(dfd);
            return Ok(());
        }
        last.set(Instant::now());
        let full = n == buf.len();
        let r = sys::write_all(dst, &buf[..n], send_timeout).await;
        worker.bufs.give(buf);
        r?;
        bytes.set(bytes.get() + n as u64);
        if full
            && worker.splice
            && splice_burst(worker, src, dst, last, bytes, send_timeout).await?
        {
            sys::shutdown_write(dfd);
            return Ok(());
        }
    }
}

/// Move a burst through a pooled pipe until the source has nothing more to
/// read right now. Returns true at the source's end of stream.
async fn splice_burst(
    worker: &Worker,
    src: &TcpStream,
    dst: &TcpStream,
    last: &Cell<Instant>,
    bytes: &Cell<u64>,
    send_timeout: Duration,
) -> io::Result<bool> {
    let (sfd, dfd) = (src.as_raw_fd(), dst.as_raw_fd());
    let pipe = worker.pipes.take()?;
    loop {
        // The pipe is empty here, so EAGAIN means the socket is drained.
        let mut in_pipe = match sys::splice(sfd, pipe.write, SPLICE_CHUNK) {
            Ok(0) => {
                worker.pipes.give(pipe);
                return Ok(true);
            }
            Ok(n) => n,
            Err(e) if sys::would_block(&e) => {
                worker.pipes.give(pipe);
                return Ok(false);
            }
            // A pipe that may hold bytes is dropped, not pooled.
            Err(e) => return Err(e),
        };
        last.set(Instant::now());
        bytes.set(bytes.get() + in_pipe as u64);
        while in_pipe > 0 {
            match sys::splice(pipe.read, dfd, in_pipe) {
                Ok(n) => in_pipe -= n,
                Err(e) if sys::would_block(&e) => sys::wait_writable(dst, send_timeout).await?,
                Err(e) => return Err(e),
            }
        }
    }
}
