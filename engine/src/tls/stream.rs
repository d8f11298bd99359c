//! A TLS connection as a [`Transport`]: rustls's unbuffered API driven
//! over a non-blocking socket, for a client's wss/https connection
//! (server side) and an https upstream (client side).
//!
//! Why not monoio-rustls: its stream keeps a 16 KiB read and a 16 KiB
//! write buffer for the connection's whole life (plus rustls's own
//! buffered-connection queues), so 8,000 idle wss tunnels would hold
//! ~260 MB of buffers. Here ringway owns every buffer and frees each one
//! the moment it is empty: `incoming` (received records not yet
//! processed — at most a partial record between bursts), `plain`
//! (decrypted bytes the reader has not taken; usually none, as records
//! are decrypted straight into the reader's buffer when they fit) and
//! `out` (records not yet sent). An idle TLS tunnel holds rustls's state
//! and its socket, nothing else.
//!
//! Everything is readiness-driven like the plain transport: read what the
//! socket has, process whole records, wait for readability only when the
//! socket is drained. Both directions of a tunnel share one stream
//! (single-threaded; the `RefCell` is never held across an await), and
//! every byte to send goes through the one `out` queue, so handshake
//! messages produced while reading (a KeyUpdate answer, session tickets)
//! and records produced while writing never interleave mid-record.
//!
//! kTLS would plug in here (rustls's `dangerous_into_kernel_connection`
//! after the handshake); this machine's kernel has no `CONFIG_TLS`.

use std::cell::{Cell, RefCell};
use std::io;
use std::ops::Deref;
use std::time::Duration;

use monoio::net::TcpStream;
use rustls::client::{ClientConnectionData, UnbufferedClientConnection};
use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, UnbufferedStatus};
use rustls::CommonState;

use super::client_hello::{self, Hello};
use crate::sys::{self, fd, would_block, Pending};
use crate::transport::{wait_drained, wait_writable, TlsInfo, Transport};

/// Bytes read from the socket at a time: one whole record of the largest
/// size (16 KiB plaintext + header and AEAD overhead).
const READ_ROOM: usize = 16 * 1024 + 256;

/// Plaintext encrypted per round of `write_all`: the records for it are
/// sent before more is encrypted, so a slow peer holds at most this much.
const WRITE_CHUNK: usize = 64 * 1024;

/// A rustls unbuffered connection, server or client.
pub trait Side {
    type Data;
    fn process<'c, 'i>(
        &'c mut self,
        incoming: &'i mut [u8],
    ) -> UnbufferedStatus<'c, 'i, Self::Data>;
    fn common(&self) -> &CommonState;
}

impl Side for UnbufferedServerConnection {
    type Data = ServerConnectionData;
    fn process<'c, 'i>(
        &'c mut self,
        incoming: &'i mut [u8],
    ) -> UnbufferedStatus<'c, 'i, ServerConnectionData> {
        self.process_tls_records(incoming)
    }
    fn common(&self) -> &CommonState {
        self.deref()
    }
}

impl Side for UnbufferedClientConnection {
    type Data = ClientConnectionData;
    fn process<'c, 'i>(
        &'c mut self,
        incoming: &'i mut [u8],
    ) -> UnbufferedStatus<'c, 'i, ClientConnectionData> {
        self.process_tls_records(incoming)
    }
    fn common(&self) -> &CommonState {
        self.deref()
    }
}

/// What the connection should do with the `WriteTraffic` state.
enum Want<'a> {
    Nothing,
    Write(&'a [u8]),
    Close,
}

/// Where processing stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Progress {
    /// Handshake done; no whole record left in `incoming`.
    Ready,
    /// The handshake needs more bytes from the peer.
    Handshaking,
    /// Both sides sent close_notify.
    Closed,
}

struct Inner<C> {
    conn: C,
    incoming: Vec<u8>,
    plain: Vec<u8>,
    plain_at: usize,
    out: Vec<u8>,
    out_at: usize,
    /// close_notify or end of stream seen: reads return 0 once `plain` is
    /// taken.
    eof: bool,
    /// A fatal TLS error: every later call fails.
    failed: bool,
    /// close_notify was queued: no more writes.
    closed_write: bool,
    /// Some bytes went to the peer already.
    sent_any: bool,
}

/// A fatal `decode_error` alert record, unencrypted.
const ALERT_DECODE_ERROR: [u8; 7] = [21, 3, 3, 0, 2, 2, 50];

pub(super) fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// Append what `f` writes to `out`, growing the room to what it asks for.
fn append(
    out: &mut Vec<u8>,
    guess: usize,
    mut f: impl FnMut(&mut [u8]) -> Result<usize, Option<usize>>,
) -> io::Result<()> {
    let start = out.len();
    let mut room = guess;
    loop {
        out.resize(start + room, 0);
        match f(&mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                return Ok(());
            }
            Err(Some(required)) if required > room => room = required,
            Err(_) => {
                out.truncate(start);
                return Err(io::Error::other("TLS record encoding failed"));
            }
        }
    }
}

fn encode_err(e: EncodeError) -> Option<usize> {
    match e {
        EncodeError::InsufficientSize(s) => Some(s.required_size),
        _ => None,
    }
}

fn encrypt_err(e: EncryptError) -> Option<usize> {
    match e {
        EncryptError::InsufficientSize(s) => Some(s.required_size),
        _ => None,
    }
}

impl<C: Side> Inner<C> {
    /// Process every whole record in `incoming`: application data into
    /// `dst` (what does not fit goes to `plain`), handshake output to
    /// `out`; and do `want` once the connection allows it. Returns where
    /// it stopped and how many bytes went into `dst`.
    fn pump(&mut self, mut want: Want<'_>, dst: &mut [u8]) -> io::Result<(Progress, usize)> {
        let mut copied = 0;
        loop {
            let Inner {
                conn,
                incoming,
                plain,
                out,
                eof,
                closed_write,
                ..
            } = self;
            let status = conn.process(incoming);
            let discard = status.discard;
            let mut stop = None;
            match status.state {
                Err(e) => {
                    incoming.drain(..discard);
                    self.fail();
                    return Err(tls_error(e));
                }
                Ok(ConnectionState::ReadTraffic(mut r)) => {
                    while let Some(rec) = r.next_record() {
                        let rec = rec.map_err(tls_error)?;
                        let n = rec.payload.len().min(dst.len() - copied);
                        dst[copied..copied + n].copy_from_slice(&rec.payload[..n]);
                        copied += n;
                        plain.extend_from_slice(&rec.payload[n..]);
                    }
                }
                Ok(ConnectionState::EncodeTlsData(mut e)) => {
                    append(out, 1024, |b| e.encode(b).map_err(encode_err))?;
                }
                Ok(ConnectionState::TransmitTlsData(t)) => {
                    // The bytes wait in `out`, sent in order by the next
                    // flush.
                    t.done();
                }
                Ok(ConnectionState::WriteTraffic(mut w)) => {
                    match std::mem::replace(&mut want, Want::Nothing) {
                        Want::Nothing => stop = Some(Progress::Ready),
                        Want::Write(data) => {
                            let guess = data.len() + (data.len() / 16384 + 1) * 64;
                            append(out, guess, |b| w.encrypt(data, b).map_err(encrypt_err))?;
                        }
                        Want::Close => {
                            *closed_write = true;
                            append(out, 64, |b| w.queue_close_notify(b).map_err(encrypt_err))?;
                        }
                    }
                }
                Ok(ConnectionState::BlockedHandshake) => stop = Some(Progress::Handshaking),
                Ok(ConnectionState::PeerClosed) => *eof = true,
                Ok(ConnectionState::Closed) => {
                    *eof = true;
                    stop = Some(Progress::Closed);
                }
                // Early data (not enabled) and states a later rustls adds.
                Ok(_) => {
                    incoming.drain(..discard);
                    return Err(io::Error::other("unexpected TLS connection state"));
                }
            }
            incoming.drain(..discard);
            if let Some(p) = stop {
                if !matches!(want, Want::Nothing) {
                    return Err(io::Error::new(
                        io::ErrorKind::BrokenPipe,
                        "TLS connection cannot send",
                    ));
                }
                if self.incoming.is_empty() {
                    self.incoming = Vec::new();
                }
                return Ok((p, copied));
            }
        }
    }

    /// After a fatal error: move the alert rustls queued into `out` (sent
    /// best-effort by the caller), and refuse everything after. rustls
    /// hands queued records out before it looks at input again, and it is
    /// asked only while it has one queued: processing the input again
    /// after a fatal error would meet the same error a second time.
    fn fail(&mut self) {
        self.failed = true;
        let before = self.out.len();
        for _ in 0..4 {
            if !self.conn.common().wants_write() {
                break;
            }
            let Inner {
                conn,
                out,
                incoming,
                ..
            } = self;
            match conn.process(incoming).state {
                Ok(ConnectionState::EncodeTlsData(mut e)) => {
                    if append(out, 64, |b| e.encode(b).map_err(encode_err)).is_err() {
                        break;
                    }
                }
                _ => break,
            }
        }
        // Some malformed first flights (a ClientHello whose length is
        // absurd) end without an alert from rustls: before anything was
        // sent, answer with a plaintext decode_error (RFC 8446 §6.2).
        if self.out.len() == before && !self.sent_any && self.conn.common().is_handshaking() {
            self.out.extend_from_slice(&ALERT_DECODE_ERROR);
        }
    }

    /// Copy decrypted bytes already here into `dst`.
    fn take_plain(&mut self, dst: &mut [u8]) -> usize {
        let have = &self.plain[self.plain_at..];
        let n = have.len().min(dst.len());
        dst[..n].copy_from_slice(&have[..n]);
        self.plain_at += n;
        if self.plain_at == self.plain.len() {
            self.plain = Vec::new();
            self.plain_at = 0;
        }
        n
    }

    fn has_plain(&self) -> bool {
        self.plain_at < self.plain.len()
    }

    /// A whole record waits in `incoming`.
    fn has_record(&self) -> bool {
        let b = &self.incoming;
        b.len() >= 5 && b.len() >= 5 + u16::from_be_bytes([b[3], b[4]]) as usize
    }

    /// Send what `out` holds without waiting: true when it is all sent.
    fn send_out(&mut self, sock: &TcpStream) -> io::Result<bool> {
        while self.out_at < self.out.len() {
            match sys::send(fd(sock), &self.out[self.out_at..]) {
                Ok(n) => {
                    self.out_at += n;
                    self.sent_any = true;
                }
                Err(e) if would_block(&e) => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        self.out = Vec::new();
        self.out_at = 0;
        Ok(true)
    }
}

/// A TLS connection over a socket (see the module header).
pub struct TlsStream<C: Side> {
    tcp: TcpStream,
    inner: RefCell<Inner<C>>,
    /// The last read met EAGAIN and its caller is about to wait (every
    /// caller waits at once, with no await between): that wait needs no
    /// recheck.
    drained: Cell<bool>,
    info: Option<TlsInfo>,
}

/// What a read found.
enum Got {
    Bytes(usize),
    End,
}

impl<C: Side> TlsStream<C> {
    pub fn new(tcp: TcpStream, conn: C) -> Self {
        TlsStream {
            tcp,
            inner: RefCell::new(Inner {
                conn,
                incoming: Vec::new(),
                plain: Vec::new(),
                plain_at: 0,
                out: Vec::new(),
                out_at: 0,
                eof: false,
                failed: false,
                closed_write: false,
                sent_any: false,
            }),
            drained: Cell::new(false),
            info: None,
        }
    }

    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// Bytes of buffer this stream holds now (all three queues' capacity):
    /// zero for an idle connection.
    pub fn held(&self) -> usize {
        let i = self.inner.borrow();
        i.incoming.capacity() + i.plain.capacity() + i.out.capacity()
    }

    /// Run the handshake to its end (the caller bounds it in time). With
    /// `read_sni`, the SNI name of the ClientHello is read on the way and
    /// returned. A failure sends rustls's alert, best effort.
    pub async fn handshake(&mut self, read_sni: bool) -> io::Result<Option<String>> {
        let mut sni = None;
        let mut hello_seen = !read_sni;
        loop {
            let progress = {
                let mut i = self.inner.borrow_mut();
                if !hello_seen {
                    match client_hello::server_name(&i.incoming) {
                        Hello::NeedMore => {}
                        Hello::Parsed(name) => (sni, hello_seen) = (name, true),
                        Hello::Unknown => hello_seen = true,
                    }
                }
                i.pump(Want::Nothing, &mut [])
            };
            let progress = match progress {
                Ok((p, _)) => p,
                Err(e) => {
                    let _ = self.inner.borrow_mut().send_out(&self.tcp);
                    return Err(e);
                }
            };
            self.flush(Duration::from_secs(3600)).await?;
            match progress {
                Progress::Ready => return Ok(sni),
                Progress::Closed => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "closed during the TLS handshake",
                    ))
                }
                Progress::Handshaking => self.fill().await?,
            }
        }
    }

    /// Read more bytes into `incoming`, waiting for them.
    async fn fill(&self) -> io::Result<()> {
        loop {
            let r = {
                let mut i = self.inner.borrow_mut();
                sys::recv_append(fd(&self.tcp), &mut i.incoming, READ_ROOM)
            };
            match r {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "closed during the TLS handshake",
                    ))
                }
                Ok(_) => return Ok(()),
                Err(e) if would_block(&e) => wait_drained(&self.tcp).await?,
                Err(e) => return Err(e),
            }
        }
    }

    pub fn set_info(&mut self, info: TlsInfo) {
        self.info = Some(info);
    }

    /// Whether ALPN settled on `h2` (RFC 9113 §3.2).
    pub fn alpn_h2(&self) -> bool {
        self.inner.borrow().conn.common().alpn_protocol() == Some(b"h2".as_slice())
    }

    /// The negotiated protocol version, as nginx's `$ssl_protocol` names it.
    pub fn protocol(&self) -> &'static str {
        match self.inner.borrow().conn.common().protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
            _ => "",
        }
    }

    /// Send all of `out`, waiting at most `timeout` between progress.
    async fn flush(&self, timeout: Duration) -> io::Result<()> {
        loop {
            if self.inner.borrow_mut().send_out(&self.tcp)? {
                return Ok(());
            }
            wait_writable(&self.tcp, timeout).await?;
        }
    }

    /// Decrypted bytes into `dst` without waiting: from `plain`, from
    /// whole records already received, then from the socket. With an
    /// empty `dst` it stops once some bytes wait in `plain`.
    fn read_now(&self, dst: &mut [u8]) -> io::Result<Got> {
        let mut i = self.inner.borrow_mut();
        if i.failed {
            return Err(io::Error::other("TLS connection failed"));
        }
        loop {
            let n = i.take_plain(dst);
            if n > 0 || (dst.is_empty() && i.has_plain()) {
                return Ok(Got::Bytes(n));
            }
            if i.eof {
                return Ok(Got::End);
            }
            let (progress, n) = match i.pump(Want::Nothing, dst) {
                Ok(r) => r,
                Err(e) => {
                    let _ = i.send_out(&self.tcp);
                    return Err(e);
                }
            };
            // Handshake messages produced by reading (a KeyUpdate answer)
            // go out now; what the socket cannot take waits for the next
            // write or read.
            i.send_out(&self.tcp)?;
            if n > 0 || (dst.is_empty() && i.has_plain()) {
                return Ok(Got::Bytes(n));
            }
            if i.has_plain() {
                continue;
            }
            if progress == Progress::Closed || i.eof {
                i.eof = true;
                return Ok(Got::End);
            }
            match sys::recv_append(fd(&self.tcp), &mut i.incoming, READ_ROOM) {
                Ok(0) => {
                    // End of stream without close_notify: an end all the
                    // same (nginx too), and a partial record is dropped.
                    i.eof = true;
                    i.incoming = Vec::new();
                }
                // A short read drained the socket too, but the caller may
                // await (a write to a slow peer) before its next wait, and
                // an edge the driver sees meanwhile must not be cleared:
                // only EAGAIN, after which the caller waits at once, marks
                // the socket drained.
                Ok(_) => self.drained.set(false),
                Err(e) => {
                    if would_block(&e) {
                        self.drained.set(true);
                        if i.incoming.is_empty() {
                            i.incoming = Vec::new();
                        }
                    }
                    return Err(e);
                }
            }
        }
    }

    /// Bytes or an end wait to be read without touching the socket.
    fn buffered(&self) -> bool {
        let i = self.inner.borrow();
        i.has_plain() || i.eof || i.failed || i.has_record()
    }

    /// Wait for the socket to have bytes.
    /// A wait right after a read met EAGAIN clears the legacy driver's
    /// stale readiness and waits for the next edge; any other wait (and a
    /// second wait with no read between, which must not clear the edge the
    /// first one saw) re-checks with poll(2) when readiness is cached.
    async fn wait_input(&self) -> io::Result<()> {
        if self.drained.replace(false) {
            wait_drained(&self.tcp).await
        } else {
            self.tcp.readable(false).await
        }
    }
}

/// Closing says so: a close_notify goes out with the socket's close (best
/// effort, without waiting — as nginx's `SSL_shutdown` on close), so the
/// peer can tell a complete response or tunnel end from a truncation.
impl<C: Side> Drop for TlsStream<C> {
    fn drop(&mut self) {
        let i = self.inner.get_mut();
        if i.failed || i.closed_write || i.conn.common().is_handshaking() {
            return;
        }
        if i.pump(Want::Close, &mut []).is_ok() {
            let _ = i.send_out(&self.tcp);
        }
    }
}

impl<C: Side> Transport for TlsStream<C> {
    async fn read_append(&self, buf: &mut Vec<u8>, max_total: usize) -> io::Result<usize> {
        let room = max_total.saturating_sub(buf.len()).min(16 * 1024);
        if room == 0 {
            return Ok(0);
        }
        loop {
            if buf.is_empty() && buf.capacity() == 0 && !self.buffered() {
                // Wait before reserving: a connection waiting for its next
                // request holds no buffer.
                self.wait_input().await?;
            }
            let start = buf.len();
            buf.resize(start + room, 0);
            match self.read_now(&mut buf[start..]) {
                Ok(Got::Bytes(n)) => {
                    buf.truncate(start + n);
                    return Ok(n);
                }
                Ok(Got::End) => {
                    buf.truncate(start);
                    return Ok(0);
                }
                Err(e) if would_block(&e) => {
                    buf.truncate(start);
                    if buf.is_empty() {
                        *buf = Vec::new();
                    }
                    self.wait_input().await?;
                }
                Err(e) => {
                    buf.truncate(start);
                    return Err(e);
                }
            }
        }
    }

    async fn read_some(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.try_read(buf) {
                Err(e) if would_block(&e) => self.wait_input().await?,
                other => return other,
            }
        }
    }

    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        match self.read_now(buf)? {
            Got::Bytes(n) => Ok(n),
            Got::End => Ok(0),
        }
    }

    async fn write_all(&self, data: &[u8], timeout: Duration) -> io::Result<()> {
        for chunk in data.chunks(WRITE_CHUNK) {
            {
                let mut i = self.inner.borrow_mut();
                if i.failed || i.closed_write {
                    return Err(io::Error::new(
                        io::ErrorKind::BrokenPipe,
                        "TLS connection closed",
                    ));
                }
                if let Err(e) = i.pump(Want::Write(chunk), &mut []) {
                    let _ = i.send_out(&self.tcp);
                    return Err(e);
                }
            }
            self.flush(timeout).await?;
        }
        Ok(())
    }

    fn pending(&self) -> Pending {
        if self.inner.borrow().has_plain() {
            return Pending::Data;
        }
        let p = match self.read_now(&mut []) {
            Ok(Got::Bytes(_)) => Pending::Data,
            Ok(Got::End) => Pending::Eof,
            Err(e) if would_block(&e) => Pending::Nothing,
            Err(_) => Pending::Error,
        };
        // A look, not a read before a wait: the caller may await other
        // things first.
        self.drained.set(false);
        p
    }

    async fn readable(&self) -> io::Result<()> {
        if self.buffered() {
            return Ok(());
        }
        self.wait_input().await
    }

    async fn shutdown_write(&self, timeout: Duration) {
        {
            let mut i = self.inner.borrow_mut();
            if i.failed || i.closed_write {
                return;
            }
            if i.pump(Want::Close, &mut []).is_err() {
                return;
            }
        }
        if self.flush(timeout).await.is_ok() {
            sys::shutdown_write(fd(&self.tcp));
        }
    }

    fn socket(&self) -> Option<&TcpStream> {
        None
    }

    fn tls_info(&self) -> Option<&TlsInfo> {
        self.info.as_ref()
    }
}
