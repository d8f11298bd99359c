//! The client side of a benchmark WebSocket connection on monoio: connect
//! from a chosen source address (so many loopback sources share the load of
//! ephemeral ports), optionally over TLS ([`Transport`]), upgrade (§4.1),
//! send masked frames (§5.3), read whole frames, close (§5.5.1, §7.1.2).
//! Every wait is bounded by the caller's [`Timeouts`]; every failure is a
//! [`Failure`] whose [`Failure::key`] names the phase and the kind, e.g.
//! `connect_timeout`, `tls_bad_certificate` or `handshake_status_502`.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, Split};
use monoio::net::TcpStream;
use monoio::BufResult;
use monoio_rustls::ClientTlsStream;

use crate::handshake::{self, HandshakeError};
use crate::tls::TlsClient;
use crate::{h2, ws};

/// Longest frame the client accepts from a server.
pub const MAX_FRAME: usize = 16 << 20;

/// How long each phase may take.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// TCP connect.
    pub connect: Duration,
    /// Upgrade request to verified 101.
    pub handshake: Duration,
    /// One message round trip, or the close handshake.
    pub io: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            handshake: Duration::from_secs(10),
            io: Duration::from_secs(10),
        }
    }
}

/// Which step of a connection's life failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// TCP connect.
    Connect,
    /// The TLS handshake.
    Tls,
    /// The upgrade.
    Handshake,
    /// A plain HTTP request and its response.
    Request,
    /// A message and its echo.
    Echo,
    /// The close handshake.
    Close,
}

/// What went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum What {
    /// The phase's timeout passed.
    Timeout,
    /// ECONNREFUSED.
    Refused,
    /// ECONNRESET or EPIPE.
    Reset,
    /// The peer closed the TCP connection.
    Eof,
    /// EADDRNOTAVAIL: no ephemeral port left for this source address.
    AddrUnavailable,
    /// EMFILE or ENFILE.
    NoFiles,
    /// The server answered the upgrade with this status.
    Status(u16),
    /// Any other handshake refusal.
    Handshake(HandshakeError),
    /// A frame the client cannot accept (masked, too large, bad close).
    Protocol,
    /// TLS failed: `bad_certificate` (the client refused the server's),
    /// `alert` (the server sent one), `tls_error` (anything else, e.g. a
    /// record that does not decrypt).
    Tls(&'static str),
    /// The echo did not match what was sent.
    Mismatch,
    /// The server sent a close frame instead of the echo.
    Closed,
    /// Another OS error.
    Errno(i32),
    /// Another I/O error without an errno.
    Other,
}

impl From<io::Error> for What {
    fn from(e: io::Error) -> Self {
        match e.raw_os_error() {
            Some(libc::ECONNREFUSED) => What::Refused,
            Some(libc::ECONNRESET | libc::EPIPE) => What::Reset,
            Some(libc::EADDRNOTAVAIL) => What::AddrUnavailable,
            Some(libc::EMFILE | libc::ENFILE) => What::NoFiles,
            Some(libc::ETIMEDOUT) => What::Timeout,
            Some(n) => What::Errno(n),
            None if e.kind() == io::ErrorKind::UnexpectedEof => What::Eof,
            // monoio-rustls's wrapping of a rustls error.
            None if e.kind() == io::ErrorKind::InvalidData => {
                match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                    Some(e) => crate::tls::what(e),
                    None => What::Tls("tls_error"),
                }
            }
            None => What::Other,
        }
    }
}

impl fmt::Display for What {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            What::Timeout => f.write_str("timeout"),
            What::Refused => f.write_str("refused"),
            What::Reset => f.write_str("reset"),
            What::Eof => f.write_str("eof"),
            What::AddrUnavailable => f.write_str("addr_unavailable"),
            What::NoFiles => f.write_str("no_files"),
            What::Status(s) => write!(f, "status_{s}"),
            What::Handshake(HandshakeError::Malformed) => f.write_str("malformed"),
            What::Handshake(HandshakeError::TooLarge) => f.write_str("head_too_large"),
            What::Handshake(HandshakeError::Status(s)) => write!(f, "status_{s}"),
            What::Handshake(HandshakeError::NotWebSocket) => f.write_str("not_websocket"),
            What::Handshake(HandshakeError::BadAccept) => f.write_str("bad_accept"),
            What::Protocol => f.write_str("protocol"),
            What::Tls(why) => f.write_str(why),
            What::Mismatch => f.write_str("mismatch"),
            What::Closed => f.write_str("closed"),
            What::Errno(n) => write!(f, "errno_{n}"),
            What::Other => f.write_str("other"),
        }
    }
}

/// A failed step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// Where.
    pub phase: Phase,
    /// What.
    pub what: What,
}

impl Failure {
    /// `phase_what`, the key failures are counted under.
    pub fn key(&self) -> String {
        let phase = match self.phase {
            Phase::Connect => "connect",
            Phase::Tls => "tls",
            Phase::Handshake => "handshake",
            Phase::Request => "request",
            Phase::Echo => "echo",
            Phase::Close => "close",
        };
        format!("{phase}_{}", self.what)
    }
}

/// Run `f` for at most `limit`; a timeout or error fails `phase`.
pub async fn bounded<T, F>(phase: Phase, limit: Duration, f: F) -> Result<T, Failure>
where
    F: Future<Output = Result<T, What>>,
{
    match monoio::time::timeout(limit, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(what)) => Err(Failure { phase, what }),
        Err(_) => Err(Failure {
            phase,
            what: What::Timeout,
        }),
    }
}

/// A TCP connection to `target`, from `src` (port chosen at connect time,
/// IP_BIND_ADDRESS_NO_PORT, so a source's ports are shared across targets).
pub async fn connect_from(src: Option<Ipv4Addr>, target: SocketAddr) -> io::Result<TcpStream> {
    let domain = socket2::Domain::for_address(target);
    let sock = socket2::Socket::new(domain, socket2::Type::STREAM.nonblocking(), None)?;
    sock.set_nodelay(true)?;
    if let Some(ip) = src {
        let on: libc::c_int = 1;
        // SAFETY: setsockopt reads `on` for its size; the fd is ours.
        // Failure is harmless (the port is then chosen at bind).
        unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        sock.bind(&SocketAddr::new(IpAddr::V4(ip), 0).into())?;
    }
    match sock.connect(&target.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    let stream = TcpStream::from_std(sock.into())?;
    stream.writable(false).await?;
    // SAFETY: the fd stays open while `stream` lives, i.e. for this borrow.
    let fd = unsafe { BorrowedFd::borrow_raw(stream.as_raw_fd()) };
    if let Some(e) = socket2::SockRef::from(&fd).take_error()? {
        return Err(e);
    }
    Ok(stream)
}

/// A client connection's byte stream: plain TCP, or TLS over it. A match
/// per call is all the plain path pays; the TLS stream is boxed so the
/// plain one stays small.
pub enum Transport {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS (rustls over monoio-rustls) over TCP.
    Tls(Box<ClientTlsStream<TcpStream>>),
}

impl Transport {
    /// Connect from `src` to `target`, then the TLS handshake when `tls`
    /// is given, each under its timeout (`t.handshake` for TLS's).
    pub async fn open(
        src: Option<Ipv4Addr>,
        target: SocketAddr,
        tls: Option<&TlsClient>,
        t: &Timeouts,
    ) -> Result<Self, Failure> {
        let tcp = bounded(Phase::Connect, t.connect, async {
            connect_from(src, target).await.map_err(What::from)
        })
        .await?;
        match tls {
            None => Ok(Transport::Plain(tcp)),
            Some(tls) => {
                let s = bounded(Phase::Tls, t.handshake, tls.connect(tcp)).await?;
                Ok(Transport::Tls(Box::new(s)))
            }
        }
    }
}

impl AsyncReadRent for Transport {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            Transport::Plain(s) => s.read(buf).await,
            Transport::Tls(s) => s.read(buf).await,
        }
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            Transport::Plain(s) => s.readv(buf).await,
            Transport::Tls(s) => s.readv(buf).await,
        }
    }
}

impl AsyncWriteRent for Transport {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            Transport::Plain(s) => s.write(buf).await,
            Transport::Tls(s) => s.write(buf).await,
        }
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            Transport::Plain(s) => s.writev(buf).await,
            Transport::Tls(s) => s.writev(buf).await,
        }
    }

    async fn flush(&mut self) -> io::Result<()> {
        match self {
            Transport::Plain(s) => s.flush().await,
            Transport::Tls(s) => s.flush().await,
        }
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            Transport::Plain(s) => s.shutdown().await,
            Transport::Tls(s) => s.shutdown().await,
        }
    }
}

// SAFETY: both streams may be read on one half while written on the other
// (monoio's TcpStream and monoio-rustls's stream are `Split` themselves);
// the halves live on one thread.
unsafe impl Split for Transport {}

/// One frame as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// FIN, RSV and opcode.
    pub first: u8,
    /// The payload.
    pub payload: Vec<u8>,
}

/// An upgraded client connection: an HTTP/1.1 upgrade (RFC 6455 §4), or
/// one WebSocket stream of its own HTTP/2 connection (RFC 8441).
pub struct WsClient {
    stream: Transport,
    /// WebSocket bytes read and not yet taken as frames.
    rbuf: Vec<u8>,
    rng: u32,
    /// The HTTP/2 layer, when the WebSocket is an RFC 8441 stream.
    h2: Option<Box<H2Layer>>,
}

/// The stream the client opens its WebSocket on (its first).
const H2_STREAM: u32 = 1;

/// An RFC 8441 WebSocket's HTTP/2 connection: the frames read and not yet
/// taken apart, flow control both ways, what the server said so far.
#[derive(Debug)]
struct H2Layer {
    /// Bytes read, not yet whole frames.
    raw: Vec<u8>,
    /// What the client may still send, connection and stream (§6.9).
    send_conn: i64,
    send_stream: i64,
    /// The server's SETTINGS_INITIAL_WINDOW_SIZE.
    peer_initial: i64,
    /// DATA bytes received since the last WINDOW_UPDATE.
    unacked: u32,
    /// The server's first SETTINGS came.
    settings: bool,
    /// It advertised SETTINGS_ENABLE_CONNECT_PROTOCOL = 1.
    connect_protocol: bool,
    /// A field block still waiting for CONTINUATION.
    partial: Option<Vec<u8>>,
    /// The response's field block, once whole.
    response: Option<Vec<u8>>,
    /// The server ended the stream (END_STREAM or RST_STREAM).
    ended: bool,
    /// It was RST_STREAM.
    reset: bool,
    /// Control frames to write (ACKs, WINDOW_UPDATEs).
    out: Vec<u8>,
}

impl H2Layer {
    fn new() -> Self {
        Self {
            raw: Vec::new(),
            send_conn: h2::DEFAULT_WINDOW,
            send_stream: h2::DEFAULT_WINDOW,
            peer_initial: h2::DEFAULT_WINDOW,
            unacked: 0,
            settings: false,
            connect_protocol: false,
            partial: None,
            response: None,
            ended: false,
            reset: false,
            out: Vec::new(),
        }
    }

    /// Take every whole frame of `raw` apart: the stream's DATA onto
    /// `ws`, SETTINGS, PING, WINDOW_UPDATE and the response headers into
    /// the state, answers into `out`.
    fn absorb(&mut self, ws: &mut Vec<u8>) -> Result<(), What> {
        let mut at = 0;
        while let Some(h) = h2::parse_head(&self.raw[at..]) {
            if h.len > MAX_FRAME {
                return Err(What::Protocol);
            }
            let end = at + h2::HEAD_LEN + h.len;
            if self.raw.len() < end {
                break;
            }
            let payload = &self.raw[at + h2::HEAD_LEN..end];
            match h.kind {
                h2::DATA => {
                    let r = h2::unpadded(&h, payload).ok_or(What::Protocol)?;
                    if h.stream == H2_STREAM {
                        ws.extend_from_slice(&payload[r]);
                        self.ended |= h.flags & h2::END_STREAM != 0;
                    }
                    self.unacked += h.len as u32;
                    if self.unacked >= h2::CLIENT_WINDOW / 2 {
                        h2::window_update(&mut self.out, 0, self.unacked);
                        h2::window_update(&mut self.out, H2_STREAM, self.unacked);
                        self.unacked = 0;
                    }
                }
                h2::HEADERS | h2::CONTINUATION if h.stream == H2_STREAM => {
                    let block = if h.kind == h2::HEADERS {
                        self.ended |= h.flags & h2::END_STREAM != 0;
                        let r = h2::unpadded(&h, payload).ok_or(What::Protocol)?;
                        payload[r].to_vec()
                    } else {
                        let mut b = self.partial.take().ok_or(What::Protocol)?;
                        b.extend_from_slice(payload);
                        b
                    };
                    if h.flags & h2::END_HEADERS == 0 {
                        self.partial = Some(block);
                    } else if self.response.is_none() {
                        self.response = Some(block);
                    }
                }
                h2::SETTINGS if h.flags & h2::ACK == 0 => {
                    for (id, v) in h2::settings(payload) {
                        match id {
                            h2::SETTINGS_INITIAL_WINDOW_SIZE => {
                                self.send_stream += i64::from(v) - self.peer_initial;
                                self.peer_initial = i64::from(v);
                            }
                            h2::SETTINGS_ENABLE_CONNECT_PROTOCOL => {
                                self.connect_protocol = v == 1;
                            }
                            _ => {}
                        }
                    }
                    self.settings = true;
                    h2::frame(&mut self.out, h2::SETTINGS, h2::ACK, 0, &[]);
                }
                h2::PING if h.flags & h2::ACK == 0 => {
                    h2::frame(&mut self.out, h2::PING, h2::ACK, 0, payload);
                }
                h2::WINDOW_UPDATE if payload.len() == 4 => {
                    let inc = i64::from(
                        u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]])
                            & 0x7fff_ffff,
                    );
                    match h.stream {
                        0 => self.send_conn += inc,
                        H2_STREAM => self.send_stream += inc,
                        _ => {}
                    }
                }
                // What came before it on the stream is still read.
                h2::RST_STREAM if h.stream == H2_STREAM => (self.ended, self.reset) = (true, true),
                h2::GOAWAY if payload.len() >= 8 => {
                    let last = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]])
                        & 0x7fff_ffff;
                    if last < H2_STREAM || payload[4..8] != [0; 4] {
                        return Err(What::Closed);
                    }
                }
                _ => {}
            }
            at = end;
        }
        self.raw.drain(..at);
        if self.raw.is_empty() {
            // Hold nothing while idle.
            self.raw = Vec::new();
        }
        Ok(())
    }
}

impl WsClient {
    /// Connect from `src` (over TLS when `tls` is given) and upgrade, each
    /// step under its timeout: an HTTP/1.1 upgrade, or with `h2` an
    /// HTTP/2 connection (prior knowledge in plain, ALPN `h2` with TLS)
    /// and an RFC 8441 extended CONNECT on its first stream.
    pub async fn open(
        src: Option<Ipv4Addr>,
        target: SocketAddr,
        tls: Option<&TlsClient>,
        host: &str,
        path: &str,
        t: &Timeouts,
        h2: bool,
    ) -> Result<Self, Failure> {
        let stream = Transport::open(src, target, tls, t).await?;
        let mut c = WsClient {
            stream,
            rbuf: Vec::new(),
            rng: seed(),
            h2: None,
        };
        if h2 {
            let scheme = if tls.is_some() { "https" } else { "http" };
            bounded(
                Phase::Handshake,
                t.handshake,
                c.connect_h2(scheme, host, path),
            )
            .await?;
        } else {
            bounded(Phase::Handshake, t.handshake, c.upgrade(host, path)).await?;
        }
        Ok(c)
    }

    /// RFC 8441 §4–5: the preface and SETTINGS; the server's SETTINGS
    /// must enable the CONNECT protocol; then the extended CONNECT, whose
    /// answer must be 200.
    async fn connect_h2(&mut self, scheme: &str, host: &str, path: &str) -> Result<(), What> {
        self.h2 = Some(Box::new(H2Layer::new()));
        let (r, _) = self.stream.write_all(h2::client_start()).await;
        r?;
        while !self.h2.as_ref().expect("set above").settings {
            self.read_h2().await?;
        }
        if !self.h2.as_ref().expect("set above").connect_protocol {
            return Err(What::Handshake(HandshakeError::NotWebSocket));
        }
        let (r, _) = (self.stream)
            .write_all(h2::connect(H2_STREAM, scheme, host, path))
            .await;
        r?;
        let block = loop {
            let l = self.h2.as_mut().expect("set above");
            if let Some(b) = l.response.take() {
                break b;
            }
            if l.ended {
                return Err(What::Eof);
            }
            self.read_h2().await?;
        };
        match h2::status(&block) {
            Some(200) => Ok(()),
            Some(s) => Err(What::Status(s)),
            None => Err(What::Handshake(HandshakeError::Malformed)),
        }
    }

    /// One read of the HTTP/2 connection: its frames taken apart (the
    /// stream's DATA onto `rbuf`), the answers they call for written.
    async fn read_h2(&mut self) -> Result<(), What> {
        let l = self.h2.as_mut().expect("an HTTP/2 WebSocket");
        let mut raw = std::mem::take(&mut l.raw);
        if raw.capacity() - raw.len() < 4096 {
            raw.reserve(16 << 10);
        }
        let len = raw.len();
        let (r, slice) = self.stream.read(raw.slice_mut(len..)).await;
        let l = self.h2.as_mut().expect("an HTTP/2 WebSocket");
        l.raw = slice.into_inner();
        if r? == 0 {
            return Err(What::Eof);
        }
        l.absorb(&mut self.rbuf)?;
        if !l.out.is_empty() {
            let out = std::mem::take(&mut l.out);
            let (r, _) = self.stream.write_all(out).await;
            r?;
        }
        Ok(())
    }

    async fn upgrade(&mut self, host: &str, path: &str) -> Result<(), What> {
        let key = handshake::new_key();
        let (r, _) = self
            .stream
            .write_all(handshake::client_request(host, path, &key))
            .await;
        r?;
        self.rbuf = Vec::with_capacity(1024);
        loop {
            match handshake::check_response(&self.rbuf, &key) {
                Ok(Some(n)) => {
                    self.rbuf.drain(..n);
                    // Hold nothing while idle.
                    self.rbuf.shrink_to_fit();
                    return Ok(());
                }
                Ok(None) => self.read_more().await?,
                Err(HandshakeError::Status(s)) => return Err(What::Status(s)),
                Err(e) => return Err(What::Handshake(e)),
            }
        }
    }

    async fn read_more(&mut self) -> Result<(), What> {
        if let Some(l) = &self.h2 {
            if l.ended {
                return Err(if l.reset { What::Reset } else { What::Eof });
            }
            return self.read_h2().await;
        }
        if self.rbuf.capacity() - self.rbuf.len() < 512 {
            self.rbuf.reserve(self.rbuf.capacity().max(1024));
        }
        let len = self.rbuf.len();
        let buf = std::mem::take(&mut self.rbuf);
        let (r, slice) = self.stream.read(buf.slice_mut(len..)).await;
        self.rbuf = slice.into_inner();
        match r? {
            0 => Err(What::Eof),
            _ => Ok(()),
        }
    }

    fn next_mask(&mut self) -> [u8; 4] {
        // xorshift32: masks need not be secret here, only present (§5.3).
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.rng = x;
        x.to_ne_bytes()
    }

    /// Send one masked frame.
    pub async fn send(&mut self, first: u8, payload: &[u8]) -> Result<(), What> {
        let mut out = Vec::with_capacity(payload.len() + 14);
        let mask = self.next_mask();
        ws::write_frame(&mut out, first, payload, Some(mask));
        if self.h2.is_some() {
            return self.send_h2(&out).await;
        }
        let (r, _) = self.stream.write_all(out).await;
        r?;
        Ok(())
    }

    /// `bytes` as DATA on the WebSocket's stream, within the server's
    /// windows (reading its WINDOW_UPDATEs while they are shut).
    async fn send_h2(&mut self, bytes: &[u8]) -> Result<(), What> {
        let mut out = Vec::with_capacity(bytes.len() + h2::HEAD_LEN);
        for chunk in bytes.chunks(h2::MAX_DATA) {
            let need = chunk.len() as i64;
            loop {
                let l = self.h2.as_mut().expect("an HTTP/2 WebSocket");
                if l.send_conn >= need && l.send_stream >= need {
                    l.send_conn -= need;
                    l.send_stream -= need;
                    break;
                }
                if !out.is_empty() {
                    let (r, _) = self.stream.write_all(std::mem::take(&mut out)).await;
                    r?;
                }
                self.read_h2().await?;
            }
            h2::frame(&mut out, h2::DATA, 0, H2_STREAM, chunk);
        }
        let (r, _) = self.stream.write_all(out).await;
        r?;
        Ok(())
    }

    /// Read one whole frame (servers must not mask, §5.1).
    pub async fn recv(&mut self) -> Result<Frame, What> {
        loop {
            if let Some(h) = ws::parse_header(&self.rbuf) {
                let total = match h.frame_len() {
                    Some(t) if t <= MAX_FRAME && h.mask.is_none() => t,
                    _ => return Err(What::Protocol),
                };
                if self.rbuf.len() >= total {
                    let payload = self.rbuf[h.header_len..total].to_vec();
                    self.rbuf.drain(..total);
                    if self.rbuf.is_empty() {
                        self.rbuf = Vec::new();
                    }
                    return Ok(Frame {
                        first: h.first,
                        payload,
                    });
                }
            }
            self.read_more().await?;
        }
    }

    /// Send `msg` as one text frame and check the echo (pings from the
    /// server are answered; pongs skipped).
    pub async fn echo(&mut self, msg: &[u8]) -> Result<(), What> {
        self.send(ws::FIN | ws::OP_TEXT, msg).await?;
        loop {
            let f = self.recv().await?;
            match f.first & 0x0f {
                ws::OP_PING => self.send(ws::FIN | ws::OP_PONG, &f.payload).await?,
                ws::OP_PONG => {}
                ws::OP_CLOSE => return Err(What::Closed),
                _ if f.first == ws::FIN | ws::OP_TEXT && f.payload == msg => return Ok(()),
                _ => return Err(What::Mismatch),
            }
        }
    }

    /// The upgraded stream and any bytes already read past the 101, for a
    /// mode that drives the connection itself (e.g. reading and writing at
    /// once on the two halves of the stream).
    pub fn into_parts(self) -> (Transport, Vec<u8>) {
        (self.stream, self.rbuf)
    }

    /// The closing handshake: send close 1000, wait for the server's close
    /// (§5.5.1), then drop the connection.
    pub async fn close(mut self) -> Result<(), What> {
        self.send(ws::FIN | ws::OP_CLOSE, &ws::close_payload(1000))
            .await?;
        loop {
            let f = self.recv().await?;
            if f.first & 0x0f == ws::OP_CLOSE {
                return Ok(());
            }
        }
    }
}

fn seed() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x5eed);
    (h.finish() as u32) | 1
}

/// Run `f(i)` for every `i` in `0..n`, at most `concurrency` at a time, on
/// the current monoio runtime.
pub async fn for_each_bounded<F, Fut>(n: usize, concurrency: usize, f: F)
where
    F: Fn(usize) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let f = std::rc::Rc::new(f);
    let next = std::rc::Rc::new(std::cell::Cell::new(0usize));
    let workers: Vec<_> = (0..concurrency.clamp(1, n.max(1)))
        .map(|_| {
            let (f, next) = (f.clone(), next.clone());
            monoio::spawn(async move {
                loop {
                    let i = next.get();
                    if i >= n {
                        break;
                    }
                    next.set(i + 1);
                    f(i).await;
                }
            })
        })
        .collect();
    for w in workers {
        w.await;
    }
}
