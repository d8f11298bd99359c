//! The tunnel relay between two plain sockets.
//!
//! Cost model: each direction waits for readability with no buffer held
//! (an io_uring POLL_ADD or an epoll registration — no kernel thread), then
//! borrows a pooled buffer, relays what the socket holds with non-blocking
//! recv/send and gives the buffer back; a short read means the socket is
//! drained, so the next step is the wait, not a recv that says EAGAIN. A
//! read that fills the whole buffer switches that direction to splice(2)
//! through a pooled pipe for the rest of the burst, so large messages move
//! without a user-space copy. Rarely taken paths (waiting for a full peer,
//! splice bursts) are boxed so the tunnel's task stays small while it
//! idles.
//!
//! Both sockets must be `O_NONBLOCK` (the accept loop and upstream
//! connects make them so): `SPLICE_F_NONBLOCK` covers the pipe only, and a
//! splice into a blocking socket would block the worker.

use std::io;
use std::time::Duration;

use monoio::net::TcpStream;

use super::{count, drive, Counter, Stats};
use crate::proxy::kit::Kit;
use crate::sys::{self, fd};
use crate::transport::{wait_drained, wait_writable, Transport};

/// Pipe capacity moved per splice call (the default pipe size).
const SPLICE_CHUNK: usize = 64 * 1024;

pub async fn run(
    kit: &Kit,
    client: &TcpStream,
    upstream: &TcpStream,
    idle_timeout: Duration,
    send_timeout: Duration,
) -> Stats {
    let key = kit.idle.register(idle_timeout);
    let up_bytes = Counter::new(0);
    let down_bytes = Counter::new(0);
    let end = drive(
        kit,
        key,
        || pump(kit, client, upstream, key, &up_bytes, send_timeout),
        || pump(kit, upstream, client, key, &down_bytes, send_timeout),
    )
    .await;
    kit.idle.unregister(key);
    Stats {
        end,
        client_to_upstream: up_bytes.get(),
        upstream_to_client: down_bytes.get(),
    }
}

/// One direction, src → dst, until src's end of stream (then SHUT_WR dst).
async fn pump(
    kit: &Kit,
    src: &TcpStream,
    dst: &TcpStream,
    key: usize,
    bytes: &Counter,
    send_timeout: Duration,
) -> io::Result<()> {
    // Whether to wait for readability before the next recv. A recv that
    // did not fill the buffer took everything the socket held, so the next
    // one would only say EAGAIN: wait instead (both waits are level
    // checks, so bytes that arrived meanwhile end the wait at once).
    let mut wait = false;
    loop {
        if wait {
            wait_drained(src).await?;
        }
        let mut buf = kit.bufs.take();
        let n = match sys::recv(fd(src), &mut buf) {
            Ok(n) => n,
            Err(e) if sys::would_block(&e) => {
                kit.bufs.give(buf);
                wait = true;
                continue;
            }
            Err(e) => {
                kit.bufs.give(buf);
                return Err(e);
            }
        };
        if n == 0 {
            kit.bufs.give(buf);
            sys::shutdown_write(fd(dst));
            return Ok(());
        }
        kit.idle.touch(key);
        let full = n == buf.len();
        wait = !full;
        let r = dst.write_all(&buf[..n], send_timeout).await;
        kit.bufs.give(buf);
        r?;
        count(bytes, n);
        if full && kit.splice {
            // The burst ends when the socket says EAGAIN (or at its end).
            if Box::pin(splice_burst(kit, src, dst, key, bytes, send_timeout)).await? {
                sys::shutdown_write(fd(dst));
                return Ok(());
            }
            wait = true;
        }
    }
}

/// Move a burst through a pooled pipe until the source has nothing more to
/// read right now. Returns true at the source's end of stream.
async fn splice_burst(
    kit: &Kit,
    src: &TcpStream,
    dst: &TcpStream,
    key: usize,
    bytes: &Counter,
    send_timeout: Duration,
) -> io::Result<bool> {
    let pipe = kit.pipes.take()?;
    loop {
        // The pipe is empty here, so EAGAIN means the socket is drained.
        let mut in_pipe = match sys::splice(fd(src), pipe.write_end(), SPLICE_CHUNK) {
            Ok(0) => {
                kit.pipes.give(pipe);
                return Ok(true);
            }
            Ok(n) => n,
            Err(e) if sys::would_block(&e) => {
                kit.pipes.give(pipe);
                return Ok(false);
            }
            // A pipe that may hold bytes is dropped, not pooled.
            Err(e) => return Err(e),
        };
        kit.idle.touch(key);
        count(bytes, in_pipe);
        while in_pipe > 0 {
            match sys::splice(pipe.read_end(), fd(dst), in_pipe) {
                Ok(n) => in_pipe -= n,
                Err(e) if sys::would_block(&e) => wait_writable(dst, send_timeout).await?,
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::proxy::kit::Kit;

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
            let a = monoio::net::TcpStream::connect(l.local_addr().unwrap())
                .await
                .unwrap();
            let kit = Kit::new(16 * 1024, true);
            let s = Duration::from_secs(1);
            let c = super::Counter::new(0);
            let pump = std::mem::size_of_val(&super::pump(&kit, &a, &a, 0, &c, s));
            let run = std::mem::size_of_val(&super::run(&kit, &a, &a, s, s));
            let dispatch = std::mem::size_of_val(&crate::proxy::tunnel::run(&kit, &a, &a, s, s));
            eprintln!("tunnel futures: pump {pump} B, splice run {run} B, dispatch {dispatch} B");
            assert!(pump <= 320, "pump future is {pump} bytes");
            assert!(run <= 1024, "tunnel future is {run} bytes");
            assert!(
                dispatch <= 1024,
                "dispatching tunnel future is {dispatch} bytes"
            );
        });
    }
}
