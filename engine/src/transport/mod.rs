//! The transport seam: the byte stream a connection's request path runs
//! over — plain TCP (`plain`), or TLS (`crate::tls::TlsStream`, on either
//! side: a client's wss/https connection, or an https upstream); an HTTP/2
//! stream plugs in the same way. The request path (`conn`, `proxy::body`,
//! `static_files`, the buffered tunnel relay) runs unchanged over them.
//!
//! Everything is readiness-driven and non-blocking: a read waits for
//! readability first and only then touches a buffer, so a connection that
//! waits holds no buffer. Methods take `&self` because the two directions
//! of a tunnel use one transport at once (single-threaded: interior
//! mutability is the implementation's, with no locks).
//!
//! A transport whose bytes are the bytes on a socket says so with
//! [`Transport::socket`]; the tunnel then relays with readiness + splice
//! on the raw descriptors, and static files go out with sendfile(2).

mod plain;

pub use plain::{wait_drained, wait_writable};

use std::future::Future;
use std::io;
use std::time::Duration;

use monoio::net::TcpStream;

pub use crate::sys::Pending;

pub trait Transport {
    /// Read some bytes appended to `buf`, growing it to at most
    /// `max_total`; waits for readability first. `Ok(0)` is end of stream
    /// or a full buffer (callers compare `buf.len()` with `max_total`).
    fn read_append(
        &self,
        buf: &mut Vec<u8>,
        max_total: usize,
    ) -> impl Future<Output = io::Result<usize>>;

    /// Read some bytes into `buf`, waiting for readability as needed.
    /// `Ok(0)` is end of stream.
    fn read_some(&self, buf: &mut [u8]) -> impl Future<Output = io::Result<usize>>;

    /// Read what is there now without waiting (`WouldBlock` if nothing).
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize>;

    /// Write all of `data`; each wait for writability is bounded by
    /// `timeout` (nginx's send timeout: between two successful writes).
    fn write_all(&self, data: &[u8], timeout: Duration) -> impl Future<Output = io::Result<()>>;

    /// What is waiting to be read, without taking it.
    fn pending(&self) -> Pending;

    /// Wait until something (bytes, end of stream, an error) can be read.
    fn readable(&self) -> impl Future<Output = io::Result<()>>;

    /// Pass a half-close on: no more bytes will be written (TLS first
    /// sends its close_notify, waiting at most `timeout` for room).
    fn shutdown_write(&self, timeout: Duration) -> impl Future<Output = ()>;

    /// The socket, when this stream's bytes are the socket's bytes.
    fn socket(&self) -> Option<&TcpStream>;

    /// What the TLS handshake settled, on a TLS stream.
    fn tls_info(&self) -> Option<&TlsInfo> {
        None
    }

    /// Whether this is an HTTP/2 stream (`$server_protocol` HTTP/2.0).
    fn http2(&self) -> bool {
        false
    }

    /// HTTP/2: resolves once the stream is reset (by the client, or
    /// because its connection ended), the only way an HTTP/2 client
    /// leaves a request it has sent whole. Never resolves elsewhere.
    fn stream_reset(&self) -> impl Future<Output = ()> {
        std::future::pending()
    }
}

/// What a client's TLS handshake settled, for `$scheme`, `$https`,
/// `$ssl_protocol` and `$ssl_server_name`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsInfo {
    /// "TLSv1.3" or "TLSv1.2".
    pub protocol: &'static str,
    /// The SNI name the client sent (lowercase).
    pub server_name: Option<Box<str>>,
}

/// Read some bytes, waiting at most `timeout` for them. Reads what is
/// already there without arming a timer.
pub async fn read_timeout<T: Transport>(
    t: &T,
    buf: &mut [u8],
    timeout: Duration,
) -> io::Result<usize> {
    match t.try_read(buf) {
        Err(e) if crate::sys::would_block(&e) => {}
        other => return other,
    }
    match monoio::time::timeout(timeout, t.read_some(buf)).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "read timed out")),
    }
}
