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

use super::{drive, Stats};
use crate::proxy::frames::Frames;
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
    frames: Option<Box<Frames>>,
    names: super::Names,
) -> Stats {
    // The slot counts the bytes (`IdleSweep::written`, `skipped`).
    let key = kit.idle.register(
        idle_timeout,
        frames,
        names.series,
        names.upstream,
        names.id,
        true,
    );
    kit.idle.backdate(key, names.idle_for);
    let end = drive(
        kit,
        key,
        || pump(kit, client, upstream, key << 1, send_timeout),
        || pump(kit, upstream, client, key << 1 | 1, send_timeout),
    )
    .await;
    let handed = (end == super::End::Handoff).then(|| Box::new(kit.idle.handed(key)));
    let [client_to_upstream, upstream_to_client] = kit.idle.unregister(key);
    Stats {
        end,
        client_to_upstream,
        upstream_to_client,
        handed,
    }
}

/// One direction (`slot`: the tunnel's idle-sweep key times two, plus
/// the direction, 0 from the client), src → dst, until src's end of stream (then SHUT_WR dst).
async fn pump(
    kit: &Kit,
    src: &TcpStream,
    dst: &TcpStream,
    slot: usize,
    send_timeout: Duration,
) -> io::Result<()> {
    // Whether to wait for readability before the next recv. A recv that
    // did not fill the buffer took everything the socket held, so the next
    // one would only say EAGAIN: wait instead (both waits are level
    // checks, so bytes that arrived meanwhile end the wait at once).
    let mut wait = false;
    loop {
        if wait {
            // All read is written: a drain may close the tunnel here.
            kit.idle.waiting(slot, true);
            wait_drained(src).await?;
            kit.idle.waiting(slot, false);
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
        kit.idle.touch(slot >> 1);
        let full = n == buf.len();
        wait = !full;
        let r = dst.write_all(&buf[..n], send_timeout).await;
        if r.is_ok() {
            kit.idle.written(slot, &buf[..n]);
        }
        kit.bufs.give(buf);
        r?;
        if full && kit.splice {
            // The burst ends when the socket says EAGAIN, at its end, or
            // where a frame header is due (headers pass through recv).
            match Box::pin(splice_burst(kit, src, dst, slot, send_timeout)).await? {
                Burst::End => {
                    sys::shutdown_write(fd(dst));
                    return Ok(());
                }
                Burst::Drained => wait = true,
                Burst::Header => wait = false,
            }
        }
    }
}

/// How a splice burst ended.
enum Burst {
    /// The source's end of stream.
    End,
    /// The source has nothing more right now.
    Drained,
    /// A WebSocket frame ended: its next header is read with recv.
    Header,
}

/// Move a burst through a pooled pipe until the source has nothing more to
/// read right now, or (a tracked WebSocket tunnel) the current frame's
/// payload has passed.
async fn splice_burst(
    kit: &Kit,
    src: &TcpStream,
    dst: &TcpStream,
    slot: usize,
    send_timeout: Duration,
) -> io::Result<Burst> {
    let pipe = kit.pipes.take()?;
    loop {
        let room = kit.idle.payload_left(slot).min(SPLICE_CHUNK as u64) as usize;
        if room == 0 {
            kit.pipes.give(pipe);
            return Ok(Burst::Header);
        }
        // The pipe is empty here, so EAGAIN means the socket is drained.
        let mut in_pipe = match sys::splice(fd(src), pipe.write_end(), room) {
            Ok(0) => {
                kit.pipes.give(pipe);
                return Ok(Burst::End);
            }
            Ok(n) => n,
            Err(e) if sys::would_block(&e) => {
                kit.pipes.give(pipe);
                return Ok(Burst::Drained);
            }
            // A pipe that may hold bytes is dropped, not pooled.
            Err(e) => return Err(e),
        };
        kit.idle.touch(slot >> 1);
        kit.idle.skipped(slot, in_pipe as u64);
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
            let id = crate::proxy::tunnel::Names::default();
            let pump = std::mem::size_of_val(&super::pump(&kit, &a, &a, 0, s));
            let run =
                std::mem::size_of_val(&super::run(&kit, &a, &a, s, s, Some(Box::default()), id));
            let dispatch = std::mem::size_of_val(&crate::proxy::tunnel::run(
                &kit,
                &a,
                &a,
                s,
                s,
                Some(Box::default()),
                id,
            ));
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
