//! The byte stream to an upstream: a plain socket, or TLS over one
//! (`proxy_pass https://`). Both are [`Transport`]s, so the exchange, the
//! body relay and the tunnel run over either; a plain one still offers its
//! socket, so plain tunnels keep the splice and ring relays.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use monoio::net::TcpStream;

use crate::tls::{ClientTls, Connector};
use crate::transport::{Pending, Transport};

pub enum UpStream {
    Plain(TcpStream),
    /// Boxed: rustls's state is large, and most upstreams are plain. With
    /// the settings it was made with: a pooled TLS connection is reused
    /// only under the same ones. (Kept here rather than beside the stream
    /// in `Connected`: the enum has room for it, so a plain tunnel's task
    /// does not grow.)
    Tls(Box<ClientTls>, Arc<Connector>),
}

impl UpStream {
    /// The TLS settings a TLS stream was made with.
    pub fn connector(&self) -> Option<&Arc<Connector>> {
        match self {
            UpStream::Plain(_) => None,
            UpStream::Tls(_, c) => Some(c),
        }
    }

    /// The socket under the stream.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            UpStream::Plain(s) => s,
            UpStream::Tls(t, _) => t.tcp(),
        }
    }
}

impl Transport for UpStream {
    async fn read_append(&self, buf: &mut Vec<u8>, max_total: usize) -> io::Result<usize> {
        match self {
            UpStream::Plain(s) => s.read_append(buf, max_total).await,
            UpStream::Tls(t, _) => Box::pin(t.read_append(buf, max_total)).await,
        }
    }

    async fn read_some(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            UpStream::Plain(s) => s.read_some(buf).await,
            UpStream::Tls(t, _) => Box::pin(t.read_some(buf)).await,
        }
    }

    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            UpStream::Plain(s) => s.try_read(buf),
            UpStream::Tls(t, _) => t.try_read(buf),
        }
    }

    async fn write_all(&self, data: &[u8], timeout: Duration) -> io::Result<()> {
        match self {
            UpStream::Plain(s) => s.write_all(data, timeout).await,
            UpStream::Tls(t, _) => Box::pin(t.write_all(data, timeout)).await,
        }
    }

    fn pending(&self) -> Pending {
        match self {
            UpStream::Plain(s) => s.pending(),
            UpStream::Tls(t, _) => t.pending(),
        }
    }

    async fn readable(&self) -> io::Result<()> {
        match self {
            UpStream::Plain(s) => Transport::readable(s).await,
            UpStream::Tls(t, _) => t.readable().await,
        }
    }

    async fn shutdown_write(&self, timeout: Duration) {
        match self {
            UpStream::Plain(s) => s.shutdown_write(timeout).await,
            UpStream::Tls(t, _) => Box::pin(t.shutdown_write(timeout)).await,
        }
    }

    fn socket(&self) -> Option<&TcpStream> {
        match self {
            UpStream::Plain(s) => Some(s),
            UpStream::Tls(..) => None,
        }
    }
}
