//! The tunnel: after a 101, bytes flow both ways until either side closes
//! or neither sends a byte for `proxy_read_timeout` (RFC 6455 §4: once the
//! handshake is done the connection is the application's; the proxy only
//! relays).
//!
//! Cost model: each direction waits for readability with no buffer held
//! (an io_uring POLL_ADD or an epoll registration — no kernel thread), then
//! borrows a pooled buffer, relays what the socket holds with non-blocking
//! recv/send and gives the buffer back; a short read means the socket is
//! drained, so the next step is the wait, not a recv that says EAGAIN. A read that fills the whole buffer switches
//! that direction to splice(2) through a pooled pipe for the rest of the
//! burst, so large messages move without a user-space copy. Half-close is
//! passed on (shutdown(SHUT_WR) on the other side) and the other direction
//! finishes on its own. The idle timeout is the worker's last-activity
//! sweep (`idle.rs`): a store per burst, no timer per tunnel or message.
//! Rarely taken paths (waiting for a full peer, splice bursts) are boxed so
//! the tunnel's task stays small while it idles.

use std::cell::Cell;
use std::future::{poll_fn, Future};
use std::io;
use std::os::fd::AsRawFd;
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

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
    let key = worker.idle.register(idle_timeout);
    let up_bytes = Cell::new(0u64);
    let down_bytes = Cell::new(0u64);
    // The futures are pinned where they are built, so the task stores
    // each exactly once (moving them into a combinator would not).
    let mut a = pin!(pump(worker, client, upstream, key, &up_bytes, send_timeout));
    let mut b = pin!(pump(
        worker,
        upstream,
        client,
        key,
        &down_bytes,
        send_timeout
    ));
    let mut idle = pin!(worker.idle.expired(key));
    let (mut a_done, mut b_done) = (false, false);
    let end = poll_fn(|cx| {
        // Both directions run until each has seen its end of stream; the
        // first error ends the tunnel.
        for (fut, done) in [(a.as_mut(), &mut a_done), (b.as_mut(), &mut b_done)] {
            if !*done {
                match fut.poll(cx) {
                    Poll::Ready(Ok(())) => *done = true,
                    Poll::Ready(Err(_)) => return Poll::Ready(End::Error),
                    Poll::Pending => {}
                }
            }
        }
        if a_done && b_done {
            return Poll::Ready(End::Closed);
        }
        if idle.as_mut().poll(cx).is_ready() {
            return Poll::Ready(End::Idle);
        }
        Poll::Pending
    })
    .await;
    worker.idle.unregister(key);
    Stats {
        end,
        client_to_upstream: up_bytes.get(),
        upstream_to_client: down_bytes.get(),
    }
}

/// One direction, src → dst, until src's end of stream (then SHUT_WR dst).
async fn pump(
    worker: &Worker,
    src: &TcpStream,
    dst: &TcpStream,
    key: usize,
    bytes: &Cell<u64>,
    send_timeout: Duration,
) -> io::Result<()> {
    let (sfd, dfd) = (src.as_raw_fd(), dst.as_raw_fd());
    // Whether to wait for readability before the next recv. A recv that
    // did not fill the buffer took everything the socket held, so the next
    // one would only say EAGAIN: wait instead (both waits are level
    // checks, so bytes that arrived meanwhile end the wait at once).
    let mut wait = false;
    loop {
        if wait {
            sys::readable(src).await?;
        }
        let mut buf = worker.bufs.take();
        let n = match sys::recv(sfd, &mut buf) {
            Ok(n) => n,
            Err(e) if sys::would_block(&e) => {
                worker.bufs.give(buf);
                wait = true;
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
        worker.idle.touch(key);
        let full = n == buf.len();
        wait = !full;
        let r = sys::write_all(dst, &buf[..n], send_timeout).await;
        worker.bufs.give(buf);
        r?;
        bytes.set(bytes.get() + n as u64);
        if full && worker.splice {
            // The burst ends when the socket says EAGAIN (or at its end).
            if Box::pin(splice_burst(worker, src, dst, key, bytes, send_timeout)).await? {
                sys::shutdown_write(dfd);
                return Ok(());
            }
            wait = true;
        }
    }
}

/// Move a burst through a pooled pipe until the source has nothing more to
/// read right now. Returns true at the source's end of stream.
async fn splice_burst(
    worker: &Worker,
    src: &TcpStream,
    dst: &TcpStream,
    key: usize,
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
        worker.idle.touch(key);
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

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::sync::Arc;
    use std::time::Duration;

    use crate::access_log::Sink;
    use crate::runtime::worker::Worker;

    /// An idle tunnel's cost is mostly its task: keep the relay future
    /// small (no timer, no buffer, no boxed-away slow paths inline).
    #[test]
    fn tunnel_futures_stay_small() {
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap();
        rt.block_on(async {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let a = monoio::net::TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
            let cfg = ringway_config::parse_str(
                "[servers.s]\nlisten = \"127.0.0.1:0\"\n[servers.s.locations.\"/\"]\nreturn = { status = 200 }\n",
                std::path::Path::new("t.toml"),
            )
            .unwrap();
            let w = Worker::new(0, Arc::new(cfg), 10, Sink::Off);
            let s = Duration::from_secs(1);
            let c = Cell::new(0);
            let pump = std::mem::size_of_val(&super::pump(&w, &a, &a, 0, &c, s));
            let run = std::mem::size_of_val(&super::run(&w, &a, &a, s, s));
            assert!(pump <= 320, "pump future is {pump} bytes");
            assert!(run <= 1024, "tunnel future is {run} bytes");
        });
    }
}
