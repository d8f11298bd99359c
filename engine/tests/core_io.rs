//! In-process tests of the core I/O on both drivers (monoio's `test_all`
//! runs each on io_uring and on the legacy epoll driver): the tunnel
//! relays (splice and buffered), the body relay, and upstream connects —
//! no ringway binary needed. The ends ringway does not own are plain
//! blocking std sockets driven from threads, so a test controls them
//! exactly (half-close, reset, not reading).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener};
use std::rc::Rc;
use std::thread;
use std::time::{Duration, Instant};

use ringway::error::Kind;
use ringway::http::BodyKind;
use ringway::proxy::body::{self, BodyError, BodyLimits, BodyReader};
use ringway::proxy::kit::Kit;
use ringway::proxy::tunnel::{self, End, Stats};
use ringway::proxy::{self, HeadLimits, OwnedKey, Target};

mod common;
use common::{join, pair, spawn_peer};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Relay {
    Splice,
    Buffered,
    /// Multishot recv and SQE sends on the worker's ring: io_uring on
    /// Linux 6.0+ only (skipped elsewhere).
    Ring,
}

const RELAYS: [Relay; 3] = [Relay::Splice, Relay::Buffered, Relay::Ring];

/// The ring relay, where this runtime and kernel have it.
fn ring_relay() -> Option<Rc<ringway::proxy::tunnel::ring::Relay>> {
    ring_available().then(|| {
        ringway::proxy::tunnel::ring::Relay::new(64, 16 * 1024, true, 256).expect("buffer ring")
    })
}

/// Whether this runtime and kernel have the ring relay (a worker would
/// choose it).
fn ring_available() -> bool {
    let choice = ringway::proxy::tunnel::ring::choose(
        ringway_config::TunnelRelay::Auto,
        monoio::ring::available(),
        ringway::sys::uring::kernel_version(),
    );
    choice == ringway::proxy::tunnel::ring::Choice::Ring
}

/// A tunnel between two fresh socket pairs: returns the test's two ends
/// (client, upstream) and runs `peers` on them in a thread while the
/// tunnel runs here. The sweep of idle timeouts runs as the worker's does.
async fn tunnel_case<R: Send + 'static>(
    relay: Relay,
    idle: Duration,
    send: Duration,
    peers: impl FnOnce(std::net::TcpStream, std::net::TcpStream) -> R + Send + 'static,
) -> (Stats, R) {
    let mut kit = Kit::new(16 * 1024, true);
    if relay == Relay::Ring {
        kit.relay = ring_relay();
    }
    let kit = Rc::new(kit);
    let (client, b) = pair();
    let (upstream, c) = pair();
    let t = spawn_peer(move || peers(client, upstream));
    let sweep = {
        // Weak: the sweep ends with the case (a dropped monoio JoinHandle
        // does not stop its task), so the case's relay is dropped too.
        let kit = Rc::downgrade(&kit);
        monoio::spawn(async move {
            loop {
                monoio::time::sleep(Duration::from_millis(20)).await;
                let Some(kit) = kit.upgrade() else { return };
                kit.idle.sweep(Instant::now());
                if let Some(r) = &kit.relay {
                    r.sweep(Instant::now());
                }
            }
        })
    };
    let run = async {
        match relay {
            Relay::Splice | Relay::Ring => {
                tunnel::run(&kit, &b, &c, idle, send, None, Default::default()).await
            }
            Relay::Buffered => {
                tunnel::run_buffered(&kit, &b, &c, idle, send, None, Default::default()).await
            }
        }
    };
    let t0 = Instant::now();
    let stats = monoio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("tunnel ended in time");
    eprintln!("tunnel {relay:?} ran {:?}: {stats:?}", t0.elapsed());
    drop((b, c));
    drop(sweep);
    (stats, join(t).await)
}

/// The relays this runtime has (the ring relay on io_uring, Linux 6.0+).
fn relays() -> impl Iterator<Item = Relay> {
    let ring = ring_available();
    RELAYS
        .into_iter()
        .filter(move |r| *r != Relay::Ring || ring)
}

fn read_to_end(s: &mut std::net::TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read to end");
    out
}

#[monoio::test_all(timer_enabled = true)]
async fn tunnel_relays_both_ways_and_passes_half_close() {
    for relay in relays() {
        let (stats, ()) = tunnel_case(
            relay,
            Duration::from_secs(10),
            Duration::from_secs(10),
            |mut c, mut u| {
                c.write_all(b"ping").unwrap();
                let mut b = [0u8; 4];
                u.read_exact(&mut b).unwrap();
                assert_eq!(&b, b"ping");
                // The client half-closes: the upstream sees the end of its
                // stream and can still answer.
                c.shutdown(Shutdown::Write).unwrap();
                let mut rest = Vec::new();
                u.read_to_end(&mut rest).unwrap();
                assert!(rest.is_empty());
                u.write_all(b"pong after half-close").unwrap();
                u.shutdown(Shutdown::Write).unwrap();
                assert_eq!(read_to_end(&mut c), b"pong after half-close");
            },
        )
        .await;
        assert_eq!(stats.end, End::ClientClosed, "{relay:?}");
        assert_eq!(
            (stats.client_to_upstream, stats.upstream_to_client),
            (4, 21),
            "{relay:?}"
        );
    }
}

#[monoio::test_all(timer_enabled = true)]
async fn tunnel_half_close_from_the_upstream() {
    for relay in relays() {
        let (stats, ()) = tunnel_case(
            relay,
            Duration::from_secs(10),
            Duration::from_secs(10),
            |mut c, mut u| {
                u.write_all(b"bye").unwrap();
                u.shutdown(Shutdown::Write).unwrap();
                assert_eq!(read_to_end(&mut c), b"bye");
                c.write_all(b"late").unwrap();
                c.shutdown(Shutdown::Write).unwrap();
                assert_eq!(read_to_end(&mut u), b"late");
            },
        )
        .await;
        assert_eq!(stats.end, End::UpstreamClosed, "{relay:?}");
    }
}

#[monoio::test_all(timer_enabled = true)]
async fn tunnel_idle_timeout() {
    for relay in relays() {
        let started = Instant::now();
        let (stats, ()) = tunnel_case(
            relay,
            Duration::from_millis(200),
            Duration::from_secs(10),
            |mut c, mut u| {
                // Nothing is sent; the tunnel closes both sides.
                assert!(read_to_end(&mut c).is_empty());
                assert!(read_to_end(&mut u).is_empty());
            },
        )
        .await;
        assert_eq!(stats.end, End::Idle, "{relay:?}");
        assert!(started.elapsed() >= Duration::from_millis(200));
    }
}

#[monoio::test_all(timer_enabled = true)]
async fn tunnel_moves_a_long_burst_intact() {
    // 4 MiB through 16 KiB buffers: full reads switch the splice relay to
    // splice(2); the buffered relay moves it buffer by buffer.
    let data: Vec<u8> = (0..4u32 << 20).map(|i| (i * 7 % 251) as u8).collect();
    for relay in relays() {
        let d = data.clone();
        let (stats, got) = tunnel_case(
            relay,
            Duration::from_secs(10),
            Duration::from_secs(10),
            move |mut c, mut u| {
                let w = thread::spawn(move || {
                    u.write_all(&d).unwrap();
                    u.shutdown(Shutdown::Write).unwrap();
                    u
                });
                let got = read_to_end(&mut c);
                c.shutdown(Shutdown::Write).unwrap();
                drop(w.join().unwrap());
                got
            },
        )
        .await;
        assert!(
            got == data,
            "{relay:?}: {} bytes, corrupted or short",
            got.len()
        );
        assert_eq!(stats.upstream_to_client, data.len() as u64);
    }
}

#[monoio::test_all(timer_enabled = true)]
async fn tunnel_peer_reset_ends_it() {
    for relay in relays() {
        let (stats, ()) = tunnel_case(
            relay,
            Duration::from_secs(10),
            Duration::from_secs(10),
            |c, u| {
                // A close with unread bytes pending sends a reset.
                let mut u = u;
                let mut c2 = c.try_clone().unwrap();
                c2.write_all(b"unread").unwrap();
                let mut b = [0u8; 6];
                u.read_exact(&mut b).unwrap();
                socket2::SockRef::from(&u)
                    .set_linger(Some(Duration::ZERO))
                    .unwrap();
                drop(u);
                let _ = read_to_end(&mut c2);
                drop(c);
            },
        )
        .await;
        assert!(
            matches!(
                stats.end,
                End::Error | End::ClientClosed | End::UpstreamClosed
            ),
            "{relay:?}: {:?}",
            stats.end
        );
    }
}

#[monoio::test_all(timer_enabled = true)]
async fn tunnel_send_timeout_on_a_client_that_stops_reading() {
    for relay in relays() {
        let started = Instant::now();
        let (stats, ()) = tunnel_case(
            relay,
            Duration::from_secs(30),
            Duration::from_millis(300),
            |c, mut u| {
                // The client reads nothing; the upstream sends until the
                // tunnel gives up on the client and closes.
                u.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
                let chunk = vec![b'x'; 1 << 20];
                for _ in 0..256 {
                    if u.write_all(&chunk).is_err() {
                        break;
                    }
                }
                drop(c);
            },
        )
        .await;
        assert_eq!(stats.end, End::Error, "{relay:?}: {stats:?}");
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{relay:?}: {:?} {stats:?}",
            started.elapsed()
        );
    }
}

/// Relay a body of `kind` sent by a peer in `pieces`, to a peer that reads
/// all; returns (relay result, rest, what the receiver got).
async fn body_case(
    kind: BodyKind,
    early: &[u8],
    pieces: Vec<Vec<u8>>,
    close_after: bool,
) -> (Result<u64, BodyError>, Vec<u8>, Vec<u8>) {
    let kit = Kit::new(16 * 1024, true);
    let (mut sender, from) = pair();
    let (mut receiver, to) = pair();
    let w = spawn_peer(move || {
        for p in pieces {
            sender.write_all(&p).unwrap();
            thread::sleep(Duration::from_millis(5));
        }
        if close_after {
            sender.shutdown(Shutdown::Write).unwrap();
        }
        sender
    });
    let r = spawn_peer(move || read_to_end(&mut receiver));
    let lim = BodyLimits {
        read_timeout: Duration::from_secs(5),
        max: 0,
        max_trailer: 1024,
    };
    let mut reader = BodyReader::new(&from, &kit.bufs, kind, early, lim, false);
    let res = body::relay(&mut reader, &to, Duration::from_secs(5), None).await;
    let rest = reader.take_rest();
    drop(reader);
    drop(to);
    drop(join(w).await);
    (res, rest, join(r).await)
}

#[monoio::test_all(timer_enabled = true)]
async fn body_relay_by_length() {
    let (res, rest, got) = body_case(
        BodyKind::Length(10),
        b"0123",
        vec![b"456".to_vec(), b"789NEXT".to_vec()],
        false,
    )
    .await;
    assert_eq!(res.unwrap(), 10);
    assert_eq!(got, b"0123456789");
    assert_eq!(rest, b"NEXT", "bytes after the body are handed back");
}

#[monoio::test_all(timer_enabled = true)]
async fn body_relay_chunked_is_reframed() {
    let (res, rest, got) = body_case(
        BodyKind::Chunked,
        b"4;ext=1\r\nWi",
        vec![
            b"ki\r\n0005\r\npe".to_vec(),
            b"dia\r\n0\r\nTrailer: x\r\n\r\nNEXT".to_vec(),
        ],
        false,
    )
    .await;
    assert_eq!(res.unwrap(), 9);
    assert_eq!(
        got,
        b"2\r\nWi\r\n2\r\nki\r\n2\r\npe\r\n3\r\ndia\r\n0\r\n\r\n"
    );
    assert_eq!(rest, b"NEXT");
    // A bare LF in the framing stops the relay.
    let (res, _, _) = body_case(
        BodyKind::Chunked,
        b"",
        vec![b"3\r\nabc\r\n0\n\r\n".to_vec()],
        false,
    )
    .await;
    assert!(matches!(res, Err(BodyError::Framing(_))), "{res:?}");
}

#[monoio::test_all(timer_enabled = true)]
async fn body_relay_until_close() {
    let (res, rest, got) = body_case(
        BodyKind::UntilClose,
        b"first ",
        vec![b"second ".to_vec(), b"third".to_vec()],
        true,
    )
    .await;
    assert_eq!(res.unwrap(), 18);
    assert_eq!(got, b"first second third");
    assert!(rest.is_empty());
    // A length body cut short is an error, not a short success.
    let (res, _, _) = body_case(BodyKind::Length(100), b"", vec![b"short".to_vec()], true).await;
    assert!(matches!(res, Err(BodyError::Read(_))), "{res:?}");
}

fn refused_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

#[monoio::test_all(timer_enabled = true)]
async fn connect_refused_and_timed_out() {
    let e = proxy::connect::connect_any(&[refused_addr().into()], None, Duration::from_secs(2))
        .await
        .map(|_| ())
        .expect_err("refused");
    assert_eq!((e.kind, e.status()), (Kind::ConnectFailed, 502));
    // A listener whose accept queue is full drops SYNs: the connect hangs
    // until the timeout (skipped where the kernel does not behave so).
    let l = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    l.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    l.listen(0).unwrap();
    let addr = l.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    let mut full = false;
    for _ in 0..8 {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
            Ok(s) => fillers.push(s),
            Err(_) => {
                full = true;
                break;
            }
        }
    }
    if full {
        let started = Instant::now();
        let e = proxy::connect::connect_any(&[addr.into()], None, Duration::from_millis(300))
            .await
            .map(|_| ())
            .expect_err("timed out");
        assert_eq!((e.kind, e.status()), (Kind::ConnectTimeout, 504));
        assert!(started.elapsed() >= Duration::from_millis(300));
    }
}

#[monoio::test_all(timer_enabled = true)]
async fn connect_retries_the_next_server() {
    // One server answers; the other refuses. Whichever round robin picks
    // first, the request is answered by the live one, and the refusing
    // one is marked down.
    let live = TcpListener::bind("127.0.0.1:0").unwrap();
    let live_addr = live.local_addr().unwrap();
    let answering = spawn_peer(move || {
        let (mut s, _) = live.accept().unwrap();
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf).unwrap();
        s.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap();
    });
    let dead = refused_addr();
    let text = format!(
        "[upstreams.u]\nservers = [{{ addr = \"{dead}\" }}, {{ addr = \"{live_addr}\" }}]\nkeepalive = 0\n[servers.s]\nlisten = \"127.0.0.1:0\"\n[servers.s.locations.\"/\"]\nproxy_pass = \"http://u\"\n"
    );
    let config = ringway_config::parse_str(&text, std::path::Path::new("t.toml")).unwrap();
    let group = Rc::new(ringway::upstream::Group::new(
        &config.upstreams["u"],
        None,
        None,
        &Default::default(),
    ));
    let target = Target::Group {
        group: group.clone(),
        key: OwnedKey::None,
    };
    let lim = HeadLimits {
        max_len: 4096,
        max_headers: 16,
        read_timeout: Duration::from_secs(5),
    };
    // Two picks: whichever comes first, the answer comes from the live one.
    let a = proxy::exchange_head(
        &target,
        None,
        b"GET / HTTP/1.1\r\nHost: u\r\n\r\n",
        true,
        &ringway_config::NextUpstream::nginx_default(),
        Duration::from_secs(2),
        Duration::from_secs(2),
        lim,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(a.head.resp.status, 204);
    assert_eq!(a.up.addr, live_addr.into());
    join(answering).await;
    let dead_peer = &group.peers[0];
    if dead_peer.health.is_live(Instant::now()) {
        // Round robin picked the live server first; the dead one was not
        // tried, so it is not marked.
        return;
    }
    assert!(
        !dead_peer.health.is_live(Instant::now()),
        "the refusing server is marked down"
    );
}

/// The ring relay's backpressure: a client that stops reading stops the
/// upstream direction (no recv is armed while a buffer waits behind the
/// one being sent) with at most two buffers out of the ring, and they all
/// go back when the tunnel ends.
#[monoio::test_all(timer_enabled = true)]
async fn ring_relay_holds_few_buffers_for_a_client_that_stops_reading() {
    let Some(relay) = ring_relay() else {
        eprintln!("no ring relay on this runtime/kernel: skipped");
        return;
    };
    let mut kit = Kit::new(16 * 1024, true);
    kit.relay = Some(relay.clone());
    let (client, b) = pair();
    let (upstream, c) = pair();
    // The upstream writes until its writes block for a second: the
    // client's receive buffer, the proxy's queue and the upstream's send
    // buffer are full.
    let t = spawn_peer(move || {
        let mut u = upstream;
        u.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
        let chunk = vec![b'x'; 64 * 1024];
        let mut sent = 0usize;
        while sent < 256 << 20 && u.write_all(&chunk).is_ok() {
            sent += chunk.len();
        }
        (client, u, sent)
    });
    let run = tunnel::run(
        &kit,
        &b,
        &c,
        Duration::from_secs(30),
        Duration::from_secs(30),
        None,
        Default::default(),
    );
    let mut run = std::pin::pin!(run);
    let (client, upstream, sent) = monoio::select! {
        _ = &mut run => panic!("tunnel ended"),
        r = join(t) => r,
    };
    let out = relay.buffers_out();
    eprintln!("upstream blocked after {sent} bytes; {out} buffers out of the ring");
    assert!(sent < 256 << 20, "the upstream never blocked");
    assert!(
        out <= ringway::proxy::tunnel::ring::MAX_OUT_PER_DIRECTION,
        "{out} buffers out"
    );
    drop((client, upstream));
    let stats = monoio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("tunnel ended in time");
    assert_ne!(stats.end, End::Idle);
    assert_eq!(relay.buffers_out(), 0);
}

/// More moving directions than the ring has buffers: recvs that find the
/// ring empty (ENOBUFS) wait for buffers to come back and go on; every
/// byte of every tunnel arrives, in order.
#[monoio::test_all(timer_enabled = true)]
async fn ring_relay_shares_a_small_buffer_ring() {
    if !ring_available() {
        eprintln!("no ring relay on this runtime/kernel: skipped");
        return;
    }
    let relay =
        ringway::proxy::tunnel::ring::Relay::new(16, 16 * 1024, false, 256).expect("buffer ring");
    let mut kit = Kit::new(16 * 1024, false);
    kit.relay = Some(relay.clone());
    let kit = Rc::new(kit);
    const TUNNELS: usize = 12;
    let data: Rc<Vec<u8>> = Rc::new((0..1u32 << 20).map(|i| (i * 13 % 251) as u8).collect());
    let mut peers = Vec::new();
    let mut tunnels = Vec::new();
    for _ in 0..TUNNELS {
        let (mut client, b) = pair();
        let (mut upstream, c) = pair();
        let d = data.to_vec();
        // Both directions at once: the upstream streams 1 MiB down while
        // the client streams it up; each side reads what the other sent.
        peers.push(spawn_peer(move || {
            let d2 = d.clone();
            let mut u2 = upstream.try_clone().unwrap();
            let w = thread::spawn(move || {
                u2.write_all(&d2).unwrap();
                u2.shutdown(Shutdown::Write).unwrap();
            });
            let mut c2 = client.try_clone().unwrap();
            let d3 = d.clone();
            let w2 = thread::spawn(move || {
                c2.write_all(&d3).unwrap();
                c2.shutdown(Shutdown::Write).unwrap();
            });
            let down = read_to_end(&mut client);
            let up = read_to_end(&mut upstream);
            w.join().unwrap();
            w2.join().unwrap();
            (down == d, up == d)
        }));
        let kit = kit.clone();
        tunnels.push(monoio::spawn(async move {
            let s = Duration::from_secs(20);
            tunnel::run(&kit, &b, &c, s, s, None, Default::default()).await
        }));
    }
    for (t, p) in tunnels.into_iter().zip(peers) {
        let stats = monoio::time::timeout(Duration::from_secs(30), t)
            .await
            .expect("tunnel ended in time");
        assert!(matches!(stats.end, End::ClientClosed | End::UpstreamClosed));
        assert_eq!(
            (stats.client_to_upstream, stats.upstream_to_client),
            (data.len() as u64, data.len() as u64)
        );
        assert_eq!(join(p).await, (true, true), "a tunnel's bytes differ");
    }
    assert_eq!(relay.buffers_out(), 0);
}
