//! The tunnel relay for pairs where either side is not a raw socket (a TLS
//! stream): each direction waits for its source to be readable with no
//! buffer held, borrows a pooled buffer, moves what the source has now
//! through the transports, and gives the buffer back before it waits
//! again. So an idle buffered tunnel holds the transports' own state and
//! no relay buffer; memory stays bounded by one pooled buffer per moving
//! direction, and a receiver that stops reading stops the sender (the
//! write waits, bounded by the send timeout, before the next read).

use std::io;
use std::time::Duration;

use super::{drive, Stats};
use crate::proxy::frames::Frames;
use crate::proxy::kit::Kit;
use crate::sys::would_block;
use crate::transport::Transport;

/// Mirrors `splice::run` line for line: a shared helper taking the pumps
/// as a closure made the plain tunnel's task 32 bytes larger, across the
/// allocator size class `conn::tunnel`'s test guards.
pub async fn run<A: Transport, B: Transport>(
    kit: &Kit,
    client: &A,
    upstream: &B,
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
        false,
    );
    let end = drive(
        kit,
        key,
        || pump(kit, client, upstream, key << 1, send_timeout),
        || pump(kit, upstream, client, key << 1 | 1, send_timeout),
    )
    .await;
    let [client_to_upstream, upstream_to_client] = kit.idle.unregister(key);
    Stats {
        end,
        client_to_upstream,
        upstream_to_client,
        handed: None,
    }
}

/// One direction, src → dst, until src's end of stream (then pass the
/// half-close on).
async fn pump<S: Transport, D: Transport>(
    kit: &Kit,
    src: &S,
    dst: &D,
    slot: usize,
    send_timeout: Duration,
) -> io::Result<()> {
    loop {
        // All read is written: a drain may close the tunnel here.
        kit.idle.waiting(slot, true);
        src.readable().await?;
        kit.idle.waiting(slot, false);
        let mut buf = kit.bufs.take();
        let res = burst(kit, src, dst, slot, send_timeout, &mut buf).await;
        kit.bufs.give(buf);
        if res? {
            dst.shutdown_write(send_timeout).await;
            return Ok(());
        }
    }
}

/// Move what `src` has now; true at its end of stream.
async fn burst<S: Transport, D: Transport>(
    kit: &Kit,
    src: &S,
    dst: &D,
    slot: usize,
    send_timeout: Duration,
    buf: &mut [u8],
) -> io::Result<bool> {
    loop {
        let n = match src.try_read(buf) {
            Ok(0) => return Ok(true),
            Ok(n) => n,
            Err(e) if would_block(&e) => return Ok(false),
            Err(e) => return Err(e),
        };
        kit.idle.touch(slot >> 1);
        dst.write_all(&buf[..n], send_timeout).await?;
        kit.idle.written(slot, &buf[..n]);
        if n < buf.len() {
            // Drained: wait for readability rather than a read that says
            // EAGAIN.
            return Ok(false);
        }
    }
}
