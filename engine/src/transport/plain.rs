//! Plain TCP as a [`Transport`]: non-blocking syscalls (`sys`) after
//! readiness waits through monoio (an io_uring `POLL_ADD`, or epoll).
//! ringway's own syscalls do not update the legacy driver's cached
//! readiness, so a wait after a read that drained the socket (EAGAIN, or
//! fewer bytes than asked) first clears it ([`wait_drained`], vendor/monoio's
//! `clear_readable` patch) and then waits for the next epoll edge — no
//! poll(2) on either side. A wait that does not know whether the socket is
//! drained re-checks with poll(2) (`relaxed = false`).

use std::io;
use std::time::Duration;

use monoio::net::TcpStream;

use super::{Pending, Transport};
use crate::sys::{self, fd, would_block};

impl Transport for TcpStream {
    async fn read_append(&self, buf: &mut Vec<u8>, max_total: usize) -> io::Result<usize> {
        let room = max_total.saturating_sub(buf.len()).min(16 * 1024);
        if room == 0 {
            return Ok(0);
        }
        loop {
            if buf.is_empty() && buf.capacity() == 0 {
                // Wait before reserving: a connection waiting for its next
                // request holds no buffer.
                self.readable(false).await?;
            }
            match sys::recv_append(fd(self), buf, room) {
                Err(e) if would_block(&e) => {
                    if buf.is_empty() {
                        *buf = Vec::new();
                    }
                    wait_drained(self).await?;
                }
                other => return other,
            }
        }
    }

    async fn read_some(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match sys::recv(fd(self), buf) {
                Err(e) if would_block(&e) => wait_drained(self).await?,
                other => return other,
            }
        }
    }

    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        sys::recv(fd(self), buf)
    }

    async fn write_all(&self, mut data: &[u8], timeout: Duration) -> io::Result<()> {
        while !data.is_empty() {
            match sys::send(fd(self), data) {
                Ok(n) => data = &data[n..],
                // Boxed: the wait (a timer and a poll) is only allocated
                // while the peer is slow, keeping callers' futures small.
                Err(e) if would_block(&e) => Box::pin(wait_writable(self, timeout)).await?,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn pending(&self) -> Pending {
        sys::pending(fd(self))
    }

    async fn readable(&self) -> io::Result<()> {
        TcpStream::readable(self, false).await
    }

    async fn shutdown_write(&self, _timeout: Duration) {
        sys::shutdown_write(fd(self));
    }

    fn socket(&self) -> Option<&TcpStream> {
        Some(self)
    }
}

/// Wait for bytes after a read found the socket drained (EAGAIN or a
/// short read): forget the legacy driver's stale readiness and wait for the
/// next edge. On io_uring this is a `POLL_ADD`, as any wait.
pub async fn wait_drained(stream: &TcpStream) -> io::Result<()> {
    stream.clear_readable();
    stream.readable(true).await
}

/// Wait for writability at most `timeout`. The timer is boxed: a monoio
/// timeout holds a 640-byte `Sleep` (aligned to 128), and every future
/// that may write (a connection's, an HTTP/2 connection's driver, a
/// tunnel's) kept room for it inline for its whole life, though a write
/// waits only when the socket is full.
pub async fn wait_writable(stream: &TcpStream, timeout: Duration) -> io::Result<()> {
    match Box::pin(monoio::time::timeout(timeout, stream.writable(false))).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "send timed out")),
    }
}
