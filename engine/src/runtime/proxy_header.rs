//! The PROXY protocol header at the start of a connection on a
//! `proxy_protocol` listen (HAProxy's v1 text and v2 binary forms; the
//! parser is `real_ip::proxy_protocol`, pure).
//!
//! The header is read with `MSG_PEEK` and then consumed exactly, so what
//! follows it (a TLS ClientHello, a request head) is still in the socket
//! for the TLS handshake or the request reader — as nginx does for TLS.
//! A header split across TCP segments (rare: balancers write it in one
//! send) is peeked again after [`SPLIT_RETRY`], until `timeout`.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use monoio::net::TcpStream;

use crate::real_ip::proxy_protocol::{self, Parsed};
use crate::sys::{self, fd, would_block};

/// The longest header read (v2 with its bounded body).
const MAX_HEADER: usize = proxy_protocol::MAX_HEADER_LEN;
/// How long to wait before peeking again at a partial header.
const SPLIT_RETRY: Duration = Duration::from_millis(5);

#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    #[error("no PROXY protocol header within {0:?}")]
    Timeout(Duration),
    #[error("connection closed before the PROXY protocol header ended")]
    Closed,
    #[error("bad PROXY protocol header: {0}")]
    Bad(String),
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Read and consume the header. `Ok(Some(source))` for a proxied
/// connection's client address; `Ok(None)` when the header carries none
/// (v2 LOCAL — a balancer's health check — or v1 UNKNOWN).
pub async fn read(
    stream: &TcpStream,
    timeout: Duration,
) -> Result<Option<SocketAddr>, HeaderError> {
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; MAX_HEADER];
    let mut seen = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(HeaderError::Timeout(timeout));
        }
        if seen == 0 {
            match monoio::time::timeout(left, stream.readable(false)).await {
                Ok(r) => r?,
                Err(_) => return Err(HeaderError::Timeout(timeout)),
            }
        } else {
            monoio::time::sleep(SPLIT_RETRY.min(left)).await;
        }
        let n = match sys::peek(fd(stream), &mut buf) {
            Ok(0) => return Err(HeaderError::Closed),
            Ok(n) => n,
            Err(e) if would_block(&e) => continue,
            Err(e) => return Err(e.into()),
        };
        match proxy_protocol::parse(&buf[..n]) {
            Ok(Parsed::Incomplete) if n == buf.len() => {
                return Err(HeaderError::Bad("header too long".into()))
            }
            Ok(Parsed::Incomplete) => seen = n,
            Ok(Parsed::Header {
                consumed, source, ..
            }) => {
                consume(stream, consumed)?;
                return Ok(source);
            }
            Err(e) => return Err(HeaderError::Bad(e.to_string())),
        }
    }
}

/// Take `len` bytes that a peek has shown are in the socket.
fn consume(stream: &TcpStream, len: usize) -> io::Result<()> {
    let mut scratch = [0u8; 256];
    let mut left = len;
    while left > 0 {
        let want = left.min(scratch.len());
        match sys::recv(fd(stream), &mut scratch[..want])? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => left -= n,
        }
    }
    Ok(())
}
