//! Non-blocking connects, bounded by `proxy_connect_timeout`, identical on
//! both drivers: start the connect, wait for writability through monoio,
//! read SO_ERROR.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use monoio::net::TcpStream;
use socket2::{Domain, Protocol, Socket, Type};

use crate::error::{Error, Kind, Retry};
use crate::sys;

/// Try each address in order; the first that connects wins.
/// A failed connect may always go to the next server.
pub async fn connect_any(
    addrs: &[SocketAddr],
    timeout: Duration,
) -> Result<(TcpStream, SocketAddr), Error> {
    let mut last = Error::new(Kind::NoLiveUpstream);
    for &addr in addrs {
        match connect_one(addr, timeout).await {
            Ok(s) => return Ok((s, addr)),
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
    match monoio::time::timeout(timeout, stream.writable(false)).await {
        Ok(r) => r?,
        Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")),
    }
    if let Some(e) = sys::take_socket_error(sys::fd(&stream))? {
        return Err(e);
    }
    Ok(stream)
}
