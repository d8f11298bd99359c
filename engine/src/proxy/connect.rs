//! Non-blocking connects, bounded by `proxy_connect_timeout`, identical on
//! both drivers: start the connect, wait for writability through monoio,
//! read SO_ERROR.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use monoio::net::TcpStream;
use socket2::{Domain, Protocol, Socket, Type};

use super::UpStream;
use ringway_config::UpstreamAddr;

use crate::error::{Error, Kind, Retry};
use crate::sys;
use crate::tls::Connector;

/// Try each address in order; the first that connects (and, with `tls`,
/// completes its TLS handshake) wins. A failed connect may always go to
/// the next server.
pub async fn connect_any(
    addrs: &[UpstreamAddr],
    tls: Option<&Arc<Connector>>,
    timeout: Duration,
) -> Result<(UpStream, UpstreamAddr), Error> {
    let mut last = Error::new(Kind::NoLiveUpstream);
    for addr in addrs {
        let started = Instant::now();
        let connected = match addr {
            UpstreamAddr::Inet(a) => connect_one(*a, timeout).await,
            UpstreamAddr::Unix(p) => connect_unix(p, timeout).await,
        };
        match connected {
            Ok(s) => match tls {
                None => return Ok((UpStream::Plain(s), addr.clone())),
                Some(c) => {
                    let left = timeout.saturating_sub(started.elapsed());
                    // Boxed: a plain connection's future (held by every
                    // request's task) keeps no room for a TLS handshake.
                    match Box::pin(crate::tls::connect(s, c, left)).await {
                        Ok(t) => return Ok((UpStream::Tls(Box::new(t), c.clone()), addr.clone())),
                        Err(e) => {
                            tracing::warn!(upstream = %addr, error = %e, "upstream TLS handshake failed");
                            let kind = if e.kind() == io::ErrorKind::TimedOut {
                                Kind::ConnectTimeout
                            } else {
                                Kind::ConnectFailed
                            };
                            last = Error::new(kind).with_source(e);
                        }
                    }
                }
            },
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                tracing::warn!(upstream = %addr, "upstream connect timed out");
                last = Error::new(Kind::ConnectTimeout).with_source(e);
            }
            Err(e) => {
                tracing::warn!(upstream = %addr, error = %e, "upstream connect failed");
                last = Error::new(Kind::ConnectFailed).with_source(e);
            }
        }
    }
    Err(last.with_retry(Retry::Decided(true)))
}

pub async fn connect_one(addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let s = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.nonblocking().cloexec(),
        Some(Protocol::TCP),
    )?;
    s.set_nodelay(true)?;
    match s.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    let stream = TcpStream::from_std(s.into())?;
    connected(stream, timeout).await
}

/// A non-blocking connect to a unix stream socket (`unix:/path`). The
/// connected socket is held in monoio's `TcpStream`, the engine's handle
/// for a connected stream socket: ringway drives it with its own
/// send/recv/splice on the descriptor and monoio's readiness waits, which
/// an AF_UNIX stream socket takes exactly as a TCP one does; the
/// TCP-only calls (`TCP_NODELAY`, `peer_addr`) are never made on it.
pub async fn connect_unix(path: &Path, timeout: Duration) -> io::Result<TcpStream> {
    let s = Socket::new(Domain::UNIX, Type::STREAM.nonblocking().cloexec(), None)?;
    match s.connect(&socket2::SockAddr::unix(path)?) {
        Ok(()) => {}
        // A full listen backlog: EAGAIN on a unix socket (EINPROGRESS
        // does not happen there); wait for writability as over TCP.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINPROGRESS | libc::EAGAIN)) => {}
        Err(e) => return Err(e),
    }
    let fd: std::os::fd::OwnedFd = s.into();
    let stream = TcpStream::from_std(std::net::TcpStream::from(fd))?;
    connected(stream, timeout).await
}

/// The end of a non-blocking connect: writable within `timeout`, and no
/// error pending on the socket.
async fn connected(stream: TcpStream, timeout: Duration) -> io::Result<TcpStream> {
    match monoio::time::timeout(timeout, stream.writable(false)).await {
        Ok(r) => r?,
        Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")),
    }
    if let Some(e) = sys::take_socket_error(sys::fd(&stream))? {
        return Err(e);
    }
    Ok(stream)
}
