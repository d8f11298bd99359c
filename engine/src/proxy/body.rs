//! Relaying one message body from one socket to another as it arrives,
//! delimited by the message's one framing decision (RFC 9112 §6,
//! `http::framing`): a length, chunked, or until the sender closes. Bytes
//! that follow the body (a pipelined next request, or bytes an upstream
//! should not have sent) are handed back to the caller.
//!
//! A chunked body is decoded strictly and written again as canonical
//! chunks (`http::chunked`): the framing the receiver parses is
//! ringway's, never the sender's bytes.

use std::cell::Cell;
use std::io;
use std::time::Duration;

use monoio::net::TcpStream;

use crate::http::chunked::{self, ChunkedDecoder};
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
    /// Largest chunked body (payload bytes) relayed; 0: no limit.
    /// (A declared length is checked before relaying starts.)
    pub max: u64,
    /// Most bytes of chunked trailer fields accepted (they are dropped).
    pub max_trailer: usize,
    /// Set when the receiver had started to answer before the body's last
    /// bytes were written to it: it cannot have read the whole body, so
    /// its connection must not carry another request (nginx does the
    /// same). Checked once, before the last write.
    pub answered_early: Option<&'a Cell<bool>>,
}

impl Relay<'_> {
    /// Relay a body whose first bytes (possibly all of it, possibly more)
    /// are `early`. Returns the bytes after the body and the payload length.
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

    /// Write the body's last bytes, noting first whether the receiver has
    /// already answered.
    async fn write_last(&self, data: &[u8]) -> Result<(), BodyError> {
        if let Some(flag) = self.answered_early {
            if sys::pending(std::os::fd::AsRawFd::as_raw_fd(self.to)) != sys::Pending::Nothing {
                flag.set(true);
            }
        }
        self.write(data).await
    }

    async fn read(&self, buf: &mut [u8]) -> Result<usize, BodyError> {
        sys::read_some_timeout(self.from, buf, self.read_timeout)
            .await
            .map_err(BodyError::Read)
    }

    async fn length(&self, n: u64, early: &[u8]) -> Result<(Vec<u8>, u64), BodyError> {
        if n == 0 {
            return Ok((early.to_vec(), 0));
        }
        let first = (n.min(early.len() as u64)) as usize;
        let mut left = n - first as u64;
        if left == 0 {
            self.write_last(&early[..first]).await?;
            return Ok((early[first..].to_vec(), n));
        }
        self.write(&early[..first]).await?;
        let mut buf = self.pool.take();
        let res = async {
            while left > 0 {
                let want = (left.min(buf.len() as u64)) as usize;
                let got = self.read(&mut buf[..want]).await?;
                if got == 0 {
                    return Err(BodyError::Read(io::ErrorKind::UnexpectedEof.into()));
                }
                if got as u64 == left {
                    self.write_last(&buf[..got]).await?;
                } else {
                    self.write(&buf[..got]).await?;
                }
                left -= got as u64;
            }
            Ok(())
        }
        .await;
        self.pool.give(buf);
        res.map(|()| (Vec::new(), n))
    }

    async fn chunked(&self, early: &[u8]) -> Result<(Vec<u8>, u64), BodyError> {
        let mut dec = ChunkedDecoder::new(self.max_trailer);
        let mut out = Vec::new();
        let mut total = 0u64;
        if let Some(end) = self.reframe(&mut dec, early, &mut out, &mut total).await? {
            return Ok((early[end..].to_vec(), total));
        }
        let mut buf = self.pool.take();
        let res = async {
            loop {
                let got = self.read(&mut buf).await?;
                if got == 0 {
                    return Err(BodyError::Read(io::ErrorKind::UnexpectedEof.into()));
                }
                if let Some(end) = self
                    .reframe(&mut dec, &buf[..got], &mut out, &mut total)
                    .await?
                {
                    return Ok(buf[end..got].to_vec());
                }
            }
        }
        .await;
        self.pool.give(buf);
        res.map(|rest| (rest, total))
    }

    /// Decode one piece of a chunked body and write its payload as
    /// canonical chunks (and the last chunk, at the body's end).
    async fn reframe(
        &self,
        dec: &mut ChunkedDecoder,
        input: &[u8],
        out: &mut Vec<u8>,
        total: &mut u64,
    ) -> Result<Option<usize>, BodyError> {
        out.clear();
        let mut payload = 0u64;
        let end = dec
            .feed(input, |d| {
                payload += d.len() as u64;
                chunked::encode_chunk(out, d);
            })
            .map_err(|e| BodyError::Framing(e.0))?;
        *total += payload;
        if self.max > 0 && *total > self.max {
            return Err(BodyError::TooLarge);
        }
        if end.is_some() {
            out.extend_from_slice(chunked::LAST_CHUNK);
            self.write_last(out).await?;
        } else if !out.is_empty() {
            self.write(out).await?;
        }
        Ok(end)
    }

    /// Relay a chunked body decoded (for HTTP/1.0 clients, which end the
    /// body by the connection's close). Returns the bytes after the body
    /// and the payload length.
    pub async fn dechunked(&self, early: &[u8]) -> Result<(Vec<u8>, u64), BodyError> {
        let mut dec = ChunkedDecoder::new(self.max_trailer);
        let mut out = Vec::new();
        let done = dec
            .feed(early, |d| out.extend_from_slice(d))
            .map_err(|e| BodyError::Framing(e.0))?;
        self.write(&out).await?;
        let mut total = out.len() as u64;
        if let Some(end) = done {
            return Ok((early[end..].to_vec(), total));
        }
        let mut buf = self.pool.take();
        let res = async {
            loop {
                let got = self.read(&mut buf).await?;
                if got == 0 {
                    return Err(BodyError::Read(io::ErrorKind::UnexpectedEof.into()));
                }
                out.clear();
                let done = dec
                    .feed(&buf[..got], |d| out.extend_from_slice(d))
                    .map_err(|e| BodyError::Framing(e.0))?;
                self.write(&out).await?;
                total += out.len() as u64;
                if let Some(end) = done {
                    return Ok(buf[end..got].to_vec());
                }
            }
        }
        .await;
        self.pool.give(buf);
        res.map(|rest| (rest, total))
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
