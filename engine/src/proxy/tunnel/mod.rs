//! The tunnel: after a 101, bytes flow both ways until either side closes
//! or neither sends a byte for `proxy_read_timeout` (RFC 6455 §4: once the
//! handshake is done the connection is the application's; the proxy only
//! relays).
//!
//! Two relays with the same semantics — half-close passed on
//! (`shutdown(SHUT_WR)` on the other side while the other direction
//! finishes on its own), the idle timeout of the worker's last-activity
//! sweep (`proxy::idle`: a store per burst, no timer per tunnel or
//! message), the send timeout on every wait for a slow peer, a buffer
//! borrowed from the per-core pool only while bytes move, and the bytes
//! counted in the tunnel's slot of a worker-local table (the idle
//! sweep's, or the ring relay's), where a scrape reads them while the
//! tunnel is open — no atomic, no call out, per burst:
//!
//! - `splice`: both sides are plain sockets. Readiness + non-blocking
//!   recv/send, and splice(2) through a pooled pipe for long bursts.
//! - `buffered`: either side is not a raw socket (a TLS stream): reads and
//!   writes go through the [`Transport`]s.

mod buffered;
pub mod ring;
mod splice;
mod stats;

pub use stats::{End, Handed, Names, Stats};

use std::future::{poll_fn, Future};
use std::io;
use std::pin::{pin, Pin};
use std::task::Poll;
use std::time::Duration;

use super::frames::Frames;
use super::idle::Wake;
use super::kit::Kit;
use crate::transport::Transport;

pub use buffered::run as run_buffered;

/// Relay between `client` and `upstream` until the tunnel ends: with
/// splice when both are plain sockets, through the transports otherwise.
/// `frames`: a WebSocket tunnel's trackers, fed with every byte relayed
/// before it started. `names`: the tunnel's metrics series, under which
/// a scrape reads its bytes while it is open (the relay's tunnel table
/// counts them; the totals come back in [`Stats`]), and its server's tag.
pub async fn run<C: Transport, U: Transport>(
    kit: &Kit,
    client: &C,
    upstream: &U,
    idle_timeout: Duration,
    send_timeout: Duration,
    frames: Option<Box<Frames>>,
    names: Names,
) -> Stats {
    match (client.socket(), upstream.socket()) {
        (Some(c), Some(u)) => match &kit.relay {
            Some(relay) => ring::run(relay, c, u, idle_timeout, send_timeout, frames, names).await,
            // Boxed (880 bytes): inline, every tunnel's task kept room
            // for it, the buffered ones (TLS, HTTP/2) too.
            None => {
                Box::pin(splice::run(
                    kit,
                    c,
                    u,
                    idle_timeout,
                    send_timeout,
                    frames,
                    names,
                ))
                .await
            }
        },
        // Boxed: a plain tunnel's task then keeps only a pointer's room
        // for the buffered relay it does not run.
        _ => {
            Box::pin(buffered::run(
                kit,
                client,
                upstream,
                idle_timeout,
                send_timeout,
                frames,
                names,
            ))
            .await
        }
    }
}

/// How long a WebSocket client whose closing handshake is over and whose
/// upstream ended has to end its own side before the relay ends it.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Run the two directions of a tunnel (each until its end of stream) and
/// its idle timeout; the first error ends it. The directions are built
/// here from `a` and `b` and pinned where they are built, so the task
/// stores each exactly once (a future passed in would be stored twice:
/// as the argument and inside this one).
async fn drive<A, B>(kit: &Kit, key: usize, a: impl FnOnce() -> A, b: impl FnOnce() -> B) -> End
where
    A: Future<Output = io::Result<()>>,
    B: Future<Output = io::Result<()>>,
{
    let mut a = pin!(a());
    let mut b = pin!(b());
    let mut idle = pin!(kit.idle.expired(key));
    let (mut a_done, mut b_done) = (false, false);
    let mut linger: Option<Pin<Box<monoio::time::Sleep>>> = None;
    // Whether `a` (the client's direction) reached its end first.
    let mut client_first = false;
    poll_fn(|cx| {
        if !a_done {
            match a.as_mut().poll(cx) {
                Poll::Ready(Ok(())) => {
                    a_done = true;
                    client_first |= !b_done;
                    // An ended direction does not hold a drain back.
                    kit.idle.waiting(key << 1, true);
                }
                Poll::Ready(Err(_)) => return Poll::Ready(End::Error),
                Poll::Pending => {}
            }
        }
        if !b_done {
            match b.as_mut().poll(cx) {
                Poll::Ready(Ok(())) => {
                    b_done = true;
                    kit.idle.waiting(key << 1 | 1, true);
                }
                Poll::Ready(Err(_)) => return Poll::Ready(End::Error),
                Poll::Pending => {}
            }
        }
        if a_done && b_done {
            // Who began the WebSocket closing handshake, when one passed;
            // else whose end of stream came first.
            let client_first = kit.idle.client_closed_first(key).unwrap_or(client_first);
            return Poll::Ready(if client_first {
                End::ClientClosed
            } else {
                End::UpstreamClosed
            });
        }
        if b_done && !a_done && kit.idle.saw_close(key, super::frames::FROM_CLIENT) {
            // The upstream ended its side after the client's close frame
            // passed: the closing handshake is over, and the client may
            // send nothing more (RFC 6455 §5.5.1). Browsers over HTTP/2
            // (RFC 8441) do not end their half of the stream then; waiting
            // for it would hold the stream (and its place among the
            // connection's concurrent streams) until the idle timeout.
            // After a grace for the clients that do, ending the relay
            // ends the client's half: a reset with NO_ERROR on a stream
            // (RFC 9113 §8.1), a close on a socket. Boxed: only tunnels
            // in this state pay for the timer.
            let grace = linger.get_or_insert_with(|| Box::pin(monoio::time::sleep(CLOSE_GRACE)));
            if grace.as_mut().poll(cx).is_ready() {
                let client_first = kit.idle.client_closed_first(key).unwrap_or(false);
                return Poll::Ready(if client_first {
                    End::ClientClosed
                } else {
                    End::UpstreamClosed
                });
            }
        }
        if let Poll::Ready(w) = idle.as_mut().poll(cx) {
            return Poll::Ready(match w {
                Wake::Idle => End::Idle,
                Wake::Drain(goodbye) => End::Drain(goodbye),
                Wake::Handoff => End::Handoff,
            });
        }
        Poll::Pending
    })
    .await
}
