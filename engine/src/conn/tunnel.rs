//! Phase `Tunnel`: after a 101 the connection leaves the request path for
//! a task of its own that keeps only what the relay needs (the two
//! streams, the guards, and the request line for the access log when one
//! is written), so an idle tunnel costs little. The client's bytes that
//! came behind the upgrade request are written upstream first; the tunnel
//! is logged once, when it ends.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use tracing::{debug, warn};

use super::finish::{log_request, RequestLine};
use super::{Conn, Routed};
use crate::access_log::{CloseReason, TunnelEnd};
use crate::handoff::{FromWorker, KeyRecord, LogRecord, TunnelRecord};
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

/// What an adopted tunnel (binary upgrade) brought from the process it
/// came from.
struct Prior {
    /// Bytes relayed there: client to upstream, upstream to client.
    bytes: [u64; 2],
    /// Idle there since (its idle timeout goes on from there).
    idle_for: std::time::Duration,
}

struct Tunnel<T: Transport> {
    shared: Rc<Shared>,
    /// `[servers.NAME]`, for a binary upgrade's record.
    server: Rc<str>,
    /// Boxed: only adopted tunnels have one.
    prior: Option<Box<Prior>>,
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
            server: server.as_str().into(),
            prior: None,
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
                    idle_for: self
                        .prior
                        .as_ref()
                        .map_or(std::time::Duration::ZERO, |p| p.idle_for),
                },
            )
            .await;
            if stats.end == End::Handoff {
                self.hand_off(stats);
                return;
            }
            let close_reason = match stats.end {
                End::ClientClosed => CloseReason::Client,
                End::UpstreamClosed => CloseReason::Upstream,
                End::Idle => CloseReason::Idle,
                End::Drain { .. } => CloseReason::Drain,
                End::Error | End::Handoff => CloseReason::Error,
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
            if let Some(p) = &self.prior {
                stats.client_to_upstream += p.bytes[0];
                stats.upstream_to_client += p.bytes[1];
            }
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
            if matches!(end, End::Drain(_)) && self.shared.handoff.borrow().is_some() {
                let d = &self.shared.drained_in_handoff;
                d.set(d.get() + 1);
            }
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

impl<T: Transport + 'static> Tunnel<T> {
    /// Binary upgrade: the relay ended the tunnel at a quiet moment; its
    /// sockets (duplicated: this task closes its own as usual) and its
    /// record go to the handoff thread, which passes them to the new
    /// process. It is logged there, once, when it ends.
    fn hand_off(self, stats: tunnel::Stats) {
        let handed = stats.handed.unwrap_or_default();
        crate::metrics::with(|m| {
            m.tunnel_handed(
                self.series,
                stats.client_to_upstream,
                stats.upstream_to_client,
            )
        });
        let prior = self.prior.as_ref().map_or([0, 0], |p| p.bytes);
        let up = &self.upstream;
        let names = up.member_names();
        let record = TunnelRecord {
            server: self.server.to_string(),
            peer: self.logged.as_ref().map(|l| l.peer),
            group: names.map(|n| n.0.to_string()),
            upstream_addr: up.addr.to_string(),
            member: names.map(|n| n.1.to_string()),
            balance_key: names.and_then(|n| n.2).map(|k| match k {
                crate::upstream::TunnelKey::Ip(ip) => KeyRecord::Ip(ip),
                crate::upstream::TunnelKey::Ring(h) => KeyRecord::Ring(h),
            }),
            idle_timeout_ms: millis(self.idle_timeout),
            send_timeout_ms: millis(self.send_timeout),
            idle_for_ms: millis(handed.idle_for),
            age_ms: millis(self.started.elapsed()),
            bytes: [
                prior[0] + stats.client_to_upstream + u64::from(self.early_len),
                prior[1] + stats.upstream_to_client + u64::from(self.upstream_early),
            ],
            frames: handed.frames.map(|f| f.to_bytes().to_vec()),
            carry: handed.carry,
            limit_conn: self._permit.as_ref().and_then(|p| {
                let (zone, key) = p.held_as();
                (!key.is_empty()).then(|| (zone.to_string(), key.to_vec()))
            }),
            log: self.logged.as_ref().map(|l| LogRecord {
                peer: Some(l.peer),
                method: l.method.clone(),
                target: l.target.clone(),
                minor_version: l.minor_version,
                headers: l.headers.clone(),
                uri: l.uri.as_ref().map(|u| (u.path.clone(), u.args.clone())),
            }),
        };
        let fds = match (self.client.socket(), up.stream.socket()) {
            (Some(c), Some(u)) => crate::sys::fdpass::dup_cloexec(crate::sys::fd(c))
                .and_then(|c| Ok([c, crate::sys::fdpass::dup_cloexec(crate::sys::fd(u))?])),
            _ => Err(std::io::Error::other("not a plain tunnel")),
        };
        let fds = match fds {
            Ok(fds) => fds,
            Err(e) => {
                warn!(error = %e, upstream = %up.addr, "upgrade: cannot duplicate a tunnel's sockets; it is closed");
                return;
            }
        };
        let sink = self.shared.handoff.borrow().clone();
        let unsent = match sink {
            Some(tx) => match tx.send(FromWorker::Tunnel {
                worker: self.shared.id,
                record: Box::new(record),
                fds,
            }) {
                Ok(()) => None,
                Err(flume::SendError(FromWorker::Tunnel { record, fds, .. })) => {
                    Some((*record, fds))
                }
                Err(_) => None,
            },
            None => Some((record, fds)),
        };
        // The handoff stopped meanwhile (the new process went away): the
        // tunnel stays here, taken on again as the new process would.
        if let Some((record, fds)) = unsent {
            let epoll = !monoio::ring::available();
            if let Err(e) = adopt(&self.shared, self._guard.listen(), record, fds, epoll) {
                warn!(error = %e, "upgrade: a tunnel could not be kept and is closed");
            }
        }
    }
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Binary upgrade, the new process: take a tunnel the old one handed over
/// (its record and its two sockets) into this worker as if it had
/// accepted it — counted on its server and upstream member, in its
/// `limit_conn` slot, idle-timed from where it was — and relay it until
/// it ends, when it is logged once. Bytes a cancelled receive brought in
/// go out first (fed to the frame trackers as they go).
pub fn adopt(
    shared: &Rc<Shared>,
    listen: &Rc<crate::shared::Listen>,
    record: TunnelRecord,
    fds: [std::os::fd::OwnedFd; 2],
    epoll: bool,
) -> std::io::Result<()> {
    use crate::proxy::{Connected, UpStream};
    let [c, u] = fds;
    let (c, u) = (std::net::TcpStream::from(c), std::net::TcpStream::from(u));
    if epoll {
        c.set_nonblocking(true)?;
        u.set_nonblocking(true)?;
    }
    let client = monoio::net::TcpStream::from_std(c)?;
    let stream = UpStream::Plain(monoio::net::TcpStream::from_std(u)?);
    let addr: ringway_config::UpstreamAddr = match record.upstream_addr.parse() {
        Ok(a) => ringway_config::UpstreamAddr::Inet(a),
        Err(_) => ringway_config::UpstreamAddr::Inet(std::net::SocketAddr::from(([0, 0, 0, 0], 0))),
    };
    let snap = shared.snapshot();
    let member = record.group.as_deref().and_then(|g| {
        let group = snap.upstreams.iter().find(|x| x.name == g)?;
        let key = record.member.as_deref()?;
        let i = group.peers.iter().position(|p| &*p.key == key)?;
        Some((group.clone(), i))
    });
    let mut upstream = match &member {
        Some((g, i)) => Connected::adopted(stream, addr, g, *i),
        None => Connected::direct(stream, addr),
    };
    let key = record.balance_key.map(|k| match k {
        KeyRecord::Ip(ip) => crate::upstream::TunnelKey::Ip(ip),
        KeyRecord::Ring(h) => crate::upstream::TunnelKey::Ring(h),
    });
    upstream.tunnel_started(shared.kit.next_tunnel_id(), key);
    let permit = record.limit_conn.as_ref().and_then(|(zone, key)| {
        let z = snap.limits.conn.iter().find(|z| z.name() == zone)?;
        // Adopted whatever the zone's limit now: it was admitted.
        z.acquire(key, u32::MAX).ok()
    });
    let group_label = record
        .group
        .clone()
        .unwrap_or_else(|| record.upstream_addr.clone());
    let mut series = None;
    crate::metrics::with(|m| {
        series = Some(m.tunnel_opened(&record.server, &group_label, &record.upstream_addr));
    });
    let logged = match (&record.log, shared.access.enabled()) {
        (Some(l), true) => Some(Box::new(Logged {
            peer: l
                .peer
                .unwrap_or_else(|| std::net::SocketAddr::from(([0, 0, 0, 0], 0))),
            method: l.method.clone(),
            target: l.target.clone(),
            minor_version: l.minor_version,
            http2: false,
            headers: l.headers.clone(),
            uri: l
                .uri
                .clone()
                .map(|(path, args)| crate::vars::InternalUri { path, args }),
        })),
        _ => None,
    };
    let mut frames = record
        .frames
        .as_deref()
        .and_then(crate::proxy::frames::Frames::from_bytes)
        .map(Box::new);
    if record.frames.is_some() && frames.is_none() {
        warn!(server = %record.server, "upgrade: an adopted tunnel's frame state is unreadable; it is relayed untracked");
    }
    let now = Instant::now();
    let t = Tunnel {
        series: series.unwrap_or_default(),
        server: record.server.as_str().into(),
        prior: Some(Box::new(Prior {
            bytes: record.bytes,
            idle_for: std::time::Duration::from_millis(record.idle_for_ms),
        })),
        shared: shared.clone(),
        client,
        upstream,
        idle_timeout: std::time::Duration::from_millis(record.idle_timeout_ms),
        send_timeout: std::time::Duration::from_millis(record.send_timeout_ms),
        frames: None,
        logged,
        started: now
            .checked_sub(std::time::Duration::from_millis(record.age_ms))
            .unwrap_or(now),
        early_len: 0,
        upstream_early: 0,
        _permit: permit.map(Box::new),
        _busy: Some(shared.busy()),
        _guard: ConnGuard::new(listen),
    };
    let [to_upstream, to_client] = record.carry;
    monoio::spawn(async move {
        let mut t = t;
        // What a cancelled receive brought in goes on first, each way.
        for (bytes, dir) in [(to_upstream, FROM_CLIENT), (to_client, FROM_CLIENT ^ 1)] {
            if bytes.is_empty() {
                continue;
            }
            let r = if dir == FROM_CLIENT {
                t.upstream.stream.write_all(&bytes, t.send_timeout).await
            } else {
                t.client.write_all(&bytes, t.send_timeout).await
            };
            if let Err(e) = r {
                debug!(error = %e, "adopted tunnel closed before it started");
                return;
            }
            if let Some(f) = frames.as_mut() {
                f.feed(dir, &bytes);
            }
            if let Some(p) = t.prior.as_mut() {
                p.bytes[dir] += bytes.len() as u64;
            }
        }
        t.frames = frames;
        t.run().await
    });
    Ok(())
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
                server: "s".into(),
                prior: None,
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
