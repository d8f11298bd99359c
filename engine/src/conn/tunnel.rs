//! Phase `Tunnel`: after a 101 the connection leaves the request path for
//! a task of its own that keeps only what the relay needs (the two
//! streams, the guards, and the request line for the access log when one
//! is written), so an idle tunnel costs little. The client's bytes that
//! came behind the upgrade request are written upstream first; the tunnel
//! is logged once, when it ends.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use tracing::debug;

use super::finish::{log_request, RequestLine};
use super::{Conn, Routed};
use crate::access_log::{CloseReason, TunnelEnd};
use crate::proxy::frames::{Frames, Goodbye, FROM_CLIENT};
use crate::proxy::tunnel;
use crate::proxy::tunnel::End;
use crate::proxy::upgrade::TunnelPlan;
use crate::shared::{BusyGuard, ConnGuard, Shared};
use crate::transport::Transport;

/// The request line of a tunnel, kept for its log entry.
struct Logged {
    /// The client (`$remote_addr`).
    peer: SocketAddr,
    method: String,
    target: String,
    minor_version: u8,
    /// The client's side is an HTTP/2 stream (RFC 8441).
    http2: bool,
    /// The request headers the log format names (`$http_<name>`, and the
    /// referer and user agent of the built-in formats), lowercase names.
    headers: Vec<(String, Vec<u8>)>,
    /// The URI a rewrite changed the request to (`$uri`, `$args`).
    uri: Option<crate::vars::InternalUri>,
}

struct Tunnel<T: Transport> {
    shared: Rc<Shared>,
    client: T,
    /// The upgrade's upstream connection and timeouts (what a
    /// [`TunnelPlan`] leaves once its early bytes are written).
    upstream: crate::proxy::Connected,
    idle_timeout: std::time::Duration,
    send_timeout: std::time::Duration,
    /// A WebSocket tunnel's frame trackers (a drain closes between
    /// frames), until the relay takes them into its slot.
    frames: Option<Box<Frames>>,
    /// Boxed: most tunnels run without an access log.
    logged: Option<Box<Logged>>,
    started: Instant,
    /// Client bytes written upstream before the tunnel started (at most
    /// a head buffer, 1 MiB: u32 keeps the task in its size class).
    early_len: u32,
    /// Upstream bytes that went to the client with the 101.
    upstream_early: u32,
    /// The tunnel's series in this worker's metrics.
    series: crate::metrics::SeriesId,
    /// The `limit_conn` slot: a live tunnel counts as one connection.
    /// Boxed: most tunnels run without one, and the task stays small.
    _permit: Option<Box<crate::limit::ConnPermit>>,
    _busy: Option<BusyGuard>,
    _guard: ConnGuard,
}

impl<T: Transport + 'static> Conn<T> {
    pub(super) async fn into_tunnel(self, mut plan: TunnelPlan, mut r: Routed) {
        // Bytes the client sent behind its upgrade request go upstream
        // first, from this (short-lived) task, so the tunnel's own task
        // keeps no state for them.
        let early = std::mem::take(&mut plan.early);
        let early_len = u32::try_from(early.len()).unwrap_or(u32::MAX);
        if !early.is_empty() {
            if let Err(e) = plan
                .upstream
                .stream
                .write_all(&early, plan.send_timeout)
                .await
            {
                debug!(client = %self.peer, error = %e, "tunnel closed before it started");
                return;
            }
        }
        // The tracker sees them as the upstream did: a drain must know
        // where a frame they began ends.
        if let Some(f) = plan.frames.as_mut() {
            f.feed(FROM_CLIENT, &early);
        }
        drop(early);
        let logged = self.shared.access.enabled().then(|| {
            Box::new(Logged {
                peer: self.peer,
                method: r.req.method().to_string(),
                target: r.req.target().to_string(),
                minor_version: r.req.minor_version,
                http2: self.io.http2(),
                headers: self
                    .shared
                    .access
                    .format()
                    .headers()
                    .filter_map(|name| Some((name.to_string(), r.req.header(name)?.to_vec())))
                    .collect(),
                uri: r.uri.clone(),
            })
        });
        let server = &self.snap.config.servers[r.server].name;
        let addr = plan.upstream.addr.to_string();
        let upstream = plan.upstream.group_name().unwrap_or(&addr);
        let mut series = None;
        crate::metrics::with(|m| {
            let id = m.tunnel_opened(server, upstream, &addr);
            // The bytes that came with the request and its 101 are
            // relayed already; the relay's are read live by a scrape.
            m.tunnel_bytes(id, u64::from(early_len), u64::from(plan.upstream_early));
            series = Some(id);
        });
        let t = Tunnel {
            series: series.unwrap_or_default(),
            shared: self.shared,
            client: self.io,
            upstream: plan.upstream,
            idle_timeout: plan.idle_timeout,
            send_timeout: plan.send_timeout,
            frames: plan.frames,
            logged,
            started: r.started,
            early_len,
            upstream_early: plan.upstream_early,
            _permit: r.permit.take().map(Box::new),
            _busy: self.busy,
            _guard: self.guard,
        };
        drop(r);
        monoio::spawn(t.run());
    }
}

impl<T: Transport + 'static> Tunnel<T> {
    async fn goodbye(self, goodbye: Goodbye) {
        let up = &self.upstream.stream;
        say_goodbye(&self.client, up, goodbye, self.send_timeout).await;
    }

    // An async block, not an async fn: `self` is used where it was
    // captured (an async fn moves it into a local and keeps room for both:
    // a second `Tunnel`, with its TLS stream, per idle tunnel).
    #[allow(clippy::manual_async_fn)]
    fn run(mut self) -> impl std::future::Future<Output = ()> {
        async move {
            let frames = self.frames.take();
            let up = &self.upstream;
            let mut stats = tunnel::run(
                &self.shared.kit,
                &self.client,
                &up.stream,
                self.idle_timeout,
                self.send_timeout,
                frames,
                tunnel::Names {
                    series: self.series,
                    upstream: up.tag(),
                    id: up.tunnel_id(),
                },
            )
            .await;
            let close_reason = match stats.end {
                End::ClientClosed => CloseReason::Client,
                End::UpstreamClosed => CloseReason::Upstream,
                End::Idle => CloseReason::Idle,
                End::Drain { .. } => CloseReason::Drain,
                End::Error => CloseReason::Error,
            };
            // What the relay moved (a scrape saw it live until now; the early
            // bytes were counted at the start). No await since the relay
            // freed its slot: a scrape sees these bytes once.
            crate::metrics::with(|m| {
                m.tunnel_closed(
                    self.series,
                    close_reason,
                    stats.client_to_upstream,
                    stats.upstream_to_client,
                    self.started.elapsed(),
                )
            });
            stats.client_to_upstream += u64::from(self.early_len);
            stats.upstream_to_client += u64::from(self.upstream_early);
            let end = stats.end;
            debug!(
                upstream = %up.addr,
                end = ?stats.end,
                up_bytes = stats.client_to_upstream,
                down_bytes = stats.upstream_to_client,
                secs = self.started.elapsed().as_secs_f64(),
                "tunnel closed"
            );
            if let Some(l) = &self.logged {
                log_request(
                    &self.shared.access,
                    l.peer,
                    &RequestLine {
                        method: &l.method,
                        target: &l.target,
                        minor_version: l.minor_version,
                        http2: l.http2,
                        header: &|name| {
                            l.headers
                                .iter()
                                .find(|(n, _)| n == name)
                                .map(|(_, v)| v.as_slice())
                        },
                        uri: l.uri.as_ref().map(|u| u.path.as_str()),
                        args: l.uri.as_ref().and_then(|u| u.args.as_deref()),
                    },
                    101,
                    stats.upstream_to_client,
                    self.started,
                    Some(TunnelEnd {
                        close_reason,
                        bytes_from_client: stats.client_to_upstream,
                        bytes_to_client: stats.upstream_to_client,
                    }),
                    Some(&up.addr),
                );
            }
            // A drained tunnel says goodbye from a task of its own, which
            // takes the connections: this task keeps no room for it. One cut
            // past its drain's deadline is closed here, with no frame.
            match end {
                End::Drain(Goodbye::Cut) => {}
                End::Drain(goodbye) => {
                    monoio::spawn(self.goodbye(goodbye));
                }
                _ => {}
            }
        }
    }
}

/// How long a drained tunnel waits for each peer to answer its close
/// frame (or to close) before the connection is closed.
const DRAIN_CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The end of a drained tunnel (RFC 6455 §7.1.2, §7.4.1 code 1001):
/// between frames (`Goodbye::CloseFrames`, which only the frame trackers
/// make), a close frame to each side (masked to the upstream, as a
/// client's frames are); then each side's write is shut, and what either
/// sends back (its close frame) is read, bounded, so the close is a clean
/// FIN and not a reset that could destroy the close frame unread.
async fn say_goodbye<C: Transport, U: Transport>(
    client: &C,
    upstream: &U,
    goodbye: Goodbye,
    send_timeout: std::time::Duration,
) {
    let wait = send_timeout.min(DRAIN_CLOSE_WAIT);
    match goodbye {
        Goodbye::CloseFrames(at) => {
            let _ = client.write_all(&at.to_client(), wait).await;
            let _ = upstream.write_all(&at.to_upstream(), wait).await;
        }
        Goodbye::Shutdown => {}
        Goodbye::Cut => return,
    }
    client.shutdown_write(wait).await;
    upstream.shutdown_write(wait).await;
    let _ = monoio::join!(answer(client, wait), answer(upstream, wait));
}

/// Read (and drop) what a peer sends until it closes or `wait` passes.
async fn answer<T: Transport>(peer: &T, wait: std::time::Duration) {
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 512];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        match crate::transport::read_timeout(peer, &mut buf, left).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::Tunnel;
    use crate::proxy::Connected;

    /// An idle tunnel's cost is mostly its task (a tunnel task of 1,888
    /// bytes crossed an allocator size class and cost 400 bytes of RSS
    /// per idle tunnel on epoll). The relays a tunnel may not run are
    /// boxed (the splice relay, 880 bytes, only on the legacy driver;
    /// the buffered one only with TLS or HTTP/2), and so is the timer of
    /// a write that waits: what is left is the tunnel's own state.
    #[test]
    fn the_tunnel_task_stays_small() {
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap();
        rt.block_on(async {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            let a = monoio::net::TcpStream::connect(addr).await.unwrap();
            let b = monoio::net::TcpStream::connect(addr).await.unwrap();
            let cfg = std::sync::Arc::new(
                ringway_config::parse_str(
                    "[servers.s]\nlisten = \"127.0.0.1:0\"\n[servers.s.locations.\"/\"]\nreturn = { status = 200 }\n",
                    std::path::Path::new("t.toml"),
                )
                .unwrap(),
            );
            let shared = crate::runtime::worker::shared(0, cfg, Default::default(), Default::default(), 10, crate::access_log::Sink::Off, Default::default());
            let t = Tunnel {
                shared: shared.clone(),
                client: a,
                upstream: Connected::direct(crate::proxy::UpStream::Plain(b), addr.into()),
                idle_timeout: Duration::from_secs(1),
                send_timeout: Duration::from_secs(1),
                frames: Some(Box::default()),
                upstream_early: 0,
                logged: None,
                started: Instant::now(),
                early_len: 0,
                series: Default::default(),
                _permit: None,
                _busy: None,
                _guard: crate::shared::ConnGuard::new(&std::rc::Rc::new(crate::shared::Listen { shared: shared.clone(), label: "t".into(), http2_streams: false })),
            };
            let task = std::mem::size_of_val(&t.run());
            assert!(task <= 640, "the tunnel task is {task} bytes");
        });
    }
}
