//! Relaying one message body from one socket to another as it arrives,
//! delimited by its framing (RFC 9112 §6): a length, chunked (scanned, not
//! re-encoded), or until the sender closes. Bytes that follow the body
//! (a pipelined next request) are handed back to the caller.

use std::io;
use std::time::Duration;

use monoio::net::TcpStream;

use crate::http::chunked::ChunkedScanner;
use crate::http::BodyKind;
use crate::pool::BufPool;
use crate::sys;

#[derive(Debug)]
pub enum BodyError {
    /// Reading from the sender failed or timed out (or it closed early).
    Read(io::Error),
    /// Writing to the receiver failed or timed out.
    Write(io::Error),
    /// The chunked framing was broken.
    Framing(&'static str),
    /// A chunked body grew past the `max` it was allowed.
    TooLarge,
}

pub struct Relay<'a> {
    pub from: &'a TcpStream,
    pub to: &'a TcpStream,
    pub read_timeout: Duration,
    pub send_timeout: Duration,
    pub pool: &'a BufPool,
    /// Largest chunked body (bytes on the wire) relayed; 0: no limit.
    /// (A declared length is checked before relaying starts.)
    pub max: u64,
}

impl Relay<'_> {
    /// Relay a body whose first bytes (possibly all of it, possibly more)
    /// are `early`. Returns the bytes after the body and the body length.
    pub async fn body(&self, kind: BodyKind, early: &[u8]) -> Result<(Vec<u8>, u64), BodyError> {
        match kind {
            BodyKind::None => Ok((early.to_vec(), 0)),
            BodyKind::Length(n) => self.length(n, early).await,
            BodyKind::Chunked => self.chunked(early).await,
            BodyKind::UntilClose => self.until_close(early).await,
        }
    }

    async fn write(&self, data: &[u8]) -> Result<(), BodyError> {
        sys::write_all(self.to, data, self.send_timeout)
            .await
            .map_err(BodyError::Write)
    }

    async fn read(&self, buf: &mut [u8]) -> Result<usize, BodyError> {
        sys::read_some_timeout(self.from, buf, self.read_timeout)
            .await
            .map_err(BodyError::Read)
    }

    async fn length(&self, n: u64, early: &[u8]) -> Result<(Vec<u8>, u64), BodyError> {
        let first = (n.min(early.len() as u64)) as usize;
        self.write(&early[..first]).await?;
        let mut left = n - first as u64;
        if left == 0 {
            return Ok((early[first..].to_vec(), n));
        }
        let mut buf = self.pool.take();
        let res = async {
            while left > 0 {
                let want = (left.min(buf.len() as u64)) as usize;
                let got = self.read(&mut buf[..want]).await?;
                if got == 0 {
                    return Err(BodyError::Read(io::ErrorKind::UnexpectedEof.into()));
                }
                self.write(&buf[..got]).await?;
                left -= got as u64;
            }
            Ok(())
        }
        .await;
        self.pool.give(buf);
        res.map(|()| (Vec::new(), n))
    }

    async fn chunked(&self, early: &[u8]) -> Result<(Vec<u8>, u64), BodyError> {
        let mut scan = ChunkedScanner::new();
        let mut total = 0u64;
        if let Some(end) = scan.feed(early).map_err(|e| BodyError::Framing(e.0))? {
            if self.max > 0 && end as u64 > self.max {
                return Err(BodyError::TooLarge);
            }
            self.write(&early[..end]).await?;
            return Ok((early[end..].to_vec(), end as u64));
        }
        total += early.len() as u64;
        if self.max > 0 && total > self.max {
            return Err(BodyError::TooLarge);
        }
        self.write(early).await?;
        let mut buf = self.pool.take();
        let res = async {
            loop {
                let got = self.read(&mut buf).await?;
                if got == 0 {
                    return Err(BodyError::Read(io::ErrorKind::UnexpectedEof.into()));
                }
                match scan
                    .feed(&buf[..got])
                    .map_err(|e| BodyError::Framing(e.0))?
                {
                    Some(end) => {
                        total += end as u64;
                        if self.max > 0 && total > self.max {
                            return Err(BodyError::TooLarge);
                        }
                        self.write(&buf[..end]).await?;
                        return Ok(buf[end..got].to_vec());
                    }
                    None => {
                        total += got as u64;
                        if self.max > 0 && total > self.max {
                            return Err(BodyError::TooLarge);
                        }
                        self.write(&buf[..got]).await?;
                    }
                }
            }
        }
        .await;
        self.pool.give(buf);
        res.map(|rest| (rest, total))
    }

    /// Relay a chunked body decoded (for HTTP/1.0 clients, which end the
    /// body by the connection's close). Returns the payload length.
    pub async fn dechunked(&self, early: &[u8]) -> Result<u64, BodyError> {
        let mut scan = ChunkedScanner::new();
        let mut out = Vec::new();
        let mut total = 0u64;
        let done = scan
            .feed_with(early, |d| out.extend_from_slice(d))
            .map_err(|e| BodyError::Framing(e.0))?;
        self.write(&out).await?;
        total += out.len() as u64;
        if done.is_some() {
            return Ok(total);
        }
        let mut buf = self.pool.take();
        let res = async {
            loop {
                let got = self.read(&mut buf).await?;
                if got == 0 {
                    return Err(BodyError::Read(io::ErrorKind::UnexpectedEof.into()));
                }
                out.clear();
                let done = scan
                    .feed_with(&buf[..got], |d| out.extend_from_slice(d))
                    .map_err(|e| BodyError::Framing(e.0))?;
                self.write(&out).await?;
                total += out.len() as u64;
                if done.is_some() {
                    return Ok(());
                }
            }
        }
        .await;
        self.pool.give(buf);
        res.map(|()| total)
    }

    async fn until_close(&self, early: &[u8]) -> Result<(Vec<u8>, u64), BodyError> {
        self.write(early).await?;
        let mut total = early.len() as u64;
        let mut buf = self.pool.take();
        let res = async {
            loop {
                let got = self.read(&mut buf).await?;
                if got == 0 {
                    return Ok(());
                }
                self.write(&buf[..got]).await?;
                total += got as u64;
            }
        }
        .await;
        self.pool.give(buf);
        res.map(|()| (Vec::new(), total))
    }
}
