//! The HTTP/2 driver: the I/O around the sans-I/O [`h2::conn::Connection`].
//!
//! One task per client connection ([`serve`]) owns the socket transport
//! and the connection state machine. It reads, feeds
//! [`Connection::recv`], writes what [`Connection::poll_transmit`] gives,
//! and hands each stream's events to that stream's state. Each request
//! stream runs in a task of its own through the same phases as an
//! HTTP/1.1 connection (`conn::serve`), over an [`H2Stream`] transport:
//!
//! - reading an `H2Stream` yields the HTTP/1.1 request head that
//!   [`request::to_http1`] writes, then the body (DATA as it comes,
//!   chunked when no content-length was declared), then end of stream;
//!   body bytes are released to the connection (WINDOW_UPDATE) only once
//!   the stream's reader took them, so the flow-control windows bound
//!   what is held;
//! - writing an `H2Stream` takes the HTTP/1.1 response the phases write:
//!   [`crate::h2::writer::ResponseWriter`] (sans-I/O) parses and
//!   translates the head into HEADERS and the body into DATA (de-chunked
//!   when chunked); DATA goes with flow control — a write that the windows
//!   cannot take waits for [`Event::WindowOpened`] (bounded by the phase's
//!   send timeout). A response the phases leave unfinished is reset.
//!
//! Single-threaded: the connection and the stream states are shared with
//! `Rc`/`RefCell` and woken with `wake::Notify`. A stream never calls the
//! connection while `recv` runs (the driver holds it only inside its own
//! synchronous sections).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use monoio::net::TcpStream;
use tracing::{debug, info};

use crate::h2::conn::{Connection, Event, H2Config};
use crate::h2::fields::Scratch;
use crate::h2::frame::ErrorCode;
use crate::h2::request::{self, Body, Scheme};
use crate::h2::writer::{Emit, ResponseWriter};
use crate::http::BodyKind;
use crate::route::ServerGroup;
use crate::shared::{ConnGuard, Shared};
use crate::snapshot::Snapshot;
use crate::transport::{Pending, TlsInfo, Transport};
use crate::vars::Peer;
use crate::wake::Notify;

/// Bytes read from the socket per read (and the most a partial frame
/// beyond it may take with the frame size ringway advertises).
const READ_CHUNK: usize = 16 * 1024;

thread_local! {
    /// The decoded fields of the header block being read, per worker: the
    /// connection's `recv` fills it and every event is done with it
    /// before `recv` returns, so no connection holds one.
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// The most DATA bytes a connection's streams queue for the socket: a
/// stream offers no more while the queue holds this much (the driver
/// writes it, then wakes them). A client's flow-control windows say what
/// it may receive, not how fast it reads; this bounds what waits for a
/// slow socket to one queue per connection (plus the write in progress),
/// whatever windows the client grants.
const QUEUE_BUDGET: usize = 64 * 1024;

/// What the driver and the stream tasks of one connection share.
struct Shared2 {
    conn: RefCell<Connection>,
    streams: RefCell<HashMap<u32, Rc<StreamState>>>,
    /// Raised by a stream after it queued frames (or released bytes):
    /// the driver writes them.
    wake: Notify,
    /// Raised by the driver after each write of the queue: streams waiting
    /// for room in it ([`QUEUE_BUDGET`]) go on.
    drained: Notify,
    /// The socket's TLS details, copied to each stream.
    tls: Option<TlsInfo>,
}

/// One request stream, as the driver and its task see it.
struct StreamState {
    id: u32,
    /// HTTP/1.1 bytes not yet read by the stream's task: the head, then
    /// body bytes (framed as chunks when `chunked`).
    inbox: RefCell<Vec<u8>>,
    /// DATA bytes in `inbox` not yet released to the connection.
    unreleased: Cell<usize>,
    chunked: bool,
    /// The request ended (END_STREAM or trailers).
    eof: Cell<bool>,
    /// The stream is gone (reset by either side, or the connection ended).
    reset: Cell<bool>,
    readable: Notify,
    /// The send window opened.
    window: Notify,
}

/// A request stream as a [`Transport`] (see the module header).
pub struct H2Stream {
    c: Rc<Shared2>,
    s: Rc<StreamState>,
    /// The response written, as HEADERS and DATA to send.
    writer: RefCell<ResponseWriter>,
    /// END_STREAM went into the connection.
    ended: Cell<bool>,
}

/// Wait for `f` at most `timeout`.
async fn return_on_timeout(
    timeout: Duration,
    f: impl std::future::Future<Output = ()>,
    why: &'static str,
) -> io::Result<()> {
    monoio::time::timeout(timeout, f)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, why))
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionReset, "HTTP/2 stream reset")
}

fn bad(why: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why)
}

impl H2Stream {
    /// Take up to `max` bytes from the inbox into `put`; releases the
    /// body bytes to the connection once the inbox is empty.
    fn take(&self, max: usize, put: impl FnOnce(&[u8])) -> usize {
        let mut inbox = self.s.inbox.borrow_mut();
        let n = inbox.len().min(max);
        put(&inbox[..n]);
        inbox.drain(..n);
        if inbox.is_empty() {
            *inbox = Vec::new();
            let released = self.s.unreleased.replace(0);
            if released > 0 {
                self.c.conn.borrow_mut().release(self.s.id, released);
                self.c.wake.notify();
            }
        }
        n
    }

    /// Wait until the inbox has bytes, the request ended, or the stream
    /// is gone.
    async fn wait_readable(&self) -> io::Result<()> {
        loop {
            let notified = self.s.readable.notified();
            if !self.s.inbox.borrow().is_empty() || self.s.eof.get() {
                return Ok(());
            }
            if self.s.reset.get() {
                return Err(gone());
            }
            notified.await;
        }
    }

    /// Send `data` as DATA (ending the stream after it when `end`),
    /// waiting for the windows and for room in the connection's queue
    /// ([`QUEUE_BUDGET`]) as needed, each wait at most `timeout`.
    async fn send_data(&self, mut data: &[u8], end: bool, timeout: Duration) -> io::Result<()> {
        loop {
            if self.s.reset.get() {
                return Err(gone());
            }
            let window = self.s.window.notified();
            let drained = self.c.drained.notified();
            let room = {
                let conn = self.c.conn.borrow();
                QUEUE_BUDGET.saturating_sub(conn.queued())
            };
            // An empty DATA (END_STREAM alone) always fits.
            let offered = data.len().min(room);
            let whole = offered == data.len();
            if whole || offered > 0 {
                let n = self
                    .c
                    .conn
                    .borrow_mut()
                    .send_data(self.s.id, &data[..offered], end && whole, Instant::now())
                    .map_err(|_| gone())?;
                self.c.wake.notify();
                data = &data[n..];
                if n == offered && whole {
                    return Ok(());
                }
                if n < offered {
                    // Short of the windows: wait for a WINDOW_UPDATE.
                    return_on_timeout(timeout, window, "HTTP/2 send window stayed closed").await?;
                    continue;
                }
            }
            // The queue is full: wait for the driver to write it.
            return_on_timeout(timeout, drained, "HTTP/2 connection queue stayed full").await?;
        }
    }

    /// Hand the phases' bytes to the writer and send what it makes, in
    /// order; DATA waits for the windows.
    async fn write_response(&self, data: &[u8], timeout: Duration) -> io::Result<()> {
        let mut emits = Vec::new();
        self.writer
            .borrow_mut()
            .write(data, &mut emits)
            .map_err(|e| bad(e.0))?;
        self.send(emits, timeout).await
    }

    async fn send(&self, emits: Vec<Emit>, timeout: Duration) -> io::Result<()> {
        for e in emits {
            match e {
                Emit::Headers { fields, end_stream } => {
                    self.c
                        .conn
                        .borrow_mut()
                        .send_headers(self.s.id, fields.iter(), end_stream)
                        .map_err(|_| gone())?;
                    self.c.wake.notify();
                    if end_stream {
                        self.ended.set(true);
                    }
                }
                Emit::Data {
                    payload,
                    end_stream,
                } => {
                    self.send_data(&payload, end_stream, timeout).await?;
                    if end_stream {
                        self.ended.set(true);
                    }
                }
            }
        }
        Ok(())
    }
}

impl Transport for H2Stream {
    async fn read_append(&self, buf: &mut Vec<u8>, max_total: usize) -> io::Result<usize> {
        self.wait_readable().await?;
        let room = max_total.saturating_sub(buf.len());
        Ok(self.take(room, |b| buf.extend_from_slice(b)))
    }

    async fn read_some(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.wait_readable().await?;
        Ok(self.take(buf.len(), |b| buf[..b.len()].copy_from_slice(b)))
    }

    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        if self.s.inbox.borrow().is_empty() {
            if self.s.eof.get() {
                return Ok(0);
            }
            if self.s.reset.get() {
                return Err(gone());
            }
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(self.take(buf.len(), |b| buf[..b.len()].copy_from_slice(b)))
    }

    async fn write_all(&self, data: &[u8], timeout: Duration) -> io::Result<()> {
        // Boxed: the write's state exists only while a write runs; inline,
        // its room (about 1.5 KiB) is held by every idle tunnel's relay.
        Box::pin(self.write_response(data, timeout)).await
    }

    fn pending(&self) -> Pending {
        if !self.s.inbox.borrow().is_empty() {
            Pending::Data
        } else if self.s.eof.get() {
            Pending::Eof
        } else if self.s.reset.get() {
            Pending::Error
        } else {
            Pending::Nothing
        }
    }

    async fn readable(&self) -> io::Result<()> {
        self.wait_readable().await
    }

    async fn shutdown_write(&self, timeout: Duration) {
        let end = self.writer.borrow_mut().finish();
        if let Some(end) = end {
            let _ = Box::pin(self.send(vec![end], timeout)).await;
        }
    }

    fn socket(&self) -> Option<&TcpStream> {
        None
    }

    fn tls_info(&self) -> Option<&TlsInfo> {
        self.c.tls.as_ref()
    }

    fn http2(&self) -> bool {
        true
    }

    async fn stream_reset(&self) {
        loop {
            let notified = self.s.readable.notified();
            if self.s.reset.get() {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for H2Stream {
    fn drop(&mut self) {
        let mut conn = self.c.conn.borrow_mut();
        if !self.ended.get() {
            // The phases are done without having ended the response: a
            // body until close ends here; anything else (an error, a send
            // that timed out) is reset so the client knows.
            let end = self.writer.borrow_mut().finish();
            let ended =
                end.is_some() && conn.send_data(self.s.id, &[], true, Instant::now()).is_ok();
            if !ended {
                conn.reset(self.s.id, ErrorCode::InternalError);
            }
        }
        if !self.s.eof.get() {
            // The response is complete and the request body is not wanted
            // any more (RFC 9113 §8.1).
            conn.reset(self.s.id, ErrorCode::NoError);
        }
        self.c.streams.borrow_mut().remove(&self.s.id);
        self.c.wake.notify();
    }
}

/// What the driver does after `recv` returns (the connection cannot be
/// called from inside its events).
enum Action {
    Start(Rc<StreamState>, bool, Option<(Box<str>, [u8; 16])>),
    Reset(u32, ErrorCode),
    /// A refusal answered through the phases' error answer (and logged):
    /// the stream, whether it is a HEAD, the status, why, and an HTTP/1.1
    /// head standing for the request in the access log.
    Answer(Rc<StreamState>, bool, u16, &'static str, Vec<u8>),
}

/// Everything a stream task needs to run `conn::serve`.
pub struct Context {
    pub shared: Rc<Shared>,
    pub snap: Rc<Snapshot>,
    pub listen: Rc<ServerGroup>,
    pub addrs: Peer,
    pub local: SocketAddr,
    pub guard: ConnGuard,
}

/// What a connection's SETTINGS offer, from the server that picks them
/// (the address's default server for h2c, the one SNI picks with TLS).
#[derive(Debug, Clone, Copy)]
pub struct Offer {
    /// `http2_max_concurrent_streams`.
    pub max_concurrent_streams: u32,
    /// SETTINGS_ENABLE_CONNECT_PROTOCOL:
    /// `ringway_config::Server::offers_websocket_over_http2`.
    pub websocket: bool,
    /// SETTINGS_MAX_HEADER_LIST_SIZE: `client_header_buffer_size`, the
    /// bound of an HTTP/1.1 request head (nginx bounds both protocols'
    /// headers with `large_client_header_buffers`).
    pub max_header_list_size: u32,
}

impl Offer {
    pub fn of(server: &ringway_config::Server) -> Offer {
        Offer {
            max_concurrent_streams: server.http2_max_concurrent_streams,
            websocket: server.offers_websocket_over_http2(),
            max_header_list_size: u32::try_from(server.client_header_buffer_size)
                .unwrap_or(u32::MAX),
        }
    }
}

/// Serve one HTTP/2 connection over `io` (after TLS ALPN `h2`, or the
/// h2c preface): `early` holds bytes already read from it. An async
/// block, not an async fn: an async fn keeps room for its moved arguments
/// twice (a second TLS stream per connection).
#[allow(clippy::manual_async_fn)]
pub fn serve<T: Transport + 'static>(
    cx: Context,
    io: T,
    early: Vec<u8>,
    scheme: Scheme,
    offer: Offer,
) -> impl std::future::Future<Output = ()> {
    // An async block, not an async fn: its captures are used in place
    // (an async fn moves its arguments into locals and keeps room for
    // both, a second TlsStream per connection).
    async move {
        let config = H2Config {
            max_concurrent_streams: offer.max_concurrent_streams,
            enable_connect_protocol: offer.websocket,
            max_header_list_size: offer.max_header_list_size,
            scheme,
            ..H2Config::default()
        };
        let send_timeout = {
            let config = &cx.snap.config;
            cx.listen.select(config, None).send_timeout
        };
        let (idle_timeout, header_timeout) = {
            let config = &cx.snap.config;
            let server = cx.listen.select(config, None);
            (server.keepalive_timeout, server.client_header_timeout)
        };
        // Since when the client owes its preface and first SETTINGS, or the
        // rest of a header block (`Connection::awaiting_headers`).
        let mut headers_since: Option<Instant> = None;
        // Counted until the connection ends: a graceful stop waits for it.
        let _counted = crate::shared::H2ConnGuard::new(&cx.shared);
        let c = Rc::new(Shared2 {
            conn: RefCell::new(Connection::new(&config, Instant::now())),
            streams: RefCell::new(HashMap::new()),
            wake: Notify::default(),
            drained: Notify::default(),
            tls: io.tls_info().cloned(),
        });
        let mut input = early;
        let mut out = Vec::new();
        // The streams' guards: connections for max_connections, streams in
        // the metrics.
        let streams_listen = cx.guard.streams();
        let mut read_eof = false;
        // The wait for the client's bytes outlives the wakes by streams: a
        // dropped wait is, on io_uring, a cancel, and the next one a new
        // poll — twice per wake, several wakes per proxied response.
        let mut readable = std::pin::pin!(io.readable());
        loop {
            // The worker began its stop: GOAWAY(NO_ERROR, the last stream
            // seen) once; streams above it are ignored, the open ones finish,
            // then the connection closes (`is_closed`).
            if cx.shared.shutting_down.is_raised() {
                c.conn.borrow_mut().shutdown();
            }
            // Feed what was read.
            let mut actions = Vec::new();
            let mut progress = false;
            if !input.is_empty() {
                let result = SCRATCH.with(|scratch| {
                    let mut conn = c.conn.borrow_mut();
                    let streams = &c.streams;
                    conn.recv(Instant::now(), &input, &mut scratch.borrow_mut(), |e| {
                        on_event(e, streams, cx.addrs.tcp, &mut actions)
                    })
                });
                match result {
                    Ok(n) => {
                        input.drain(..n);
                        progress = n > 0;
                        if input.is_empty() {
                            // An idle connection holds no read buffer.
                            input = Vec::new();
                        }
                    }
                    Err(e) => {
                        debug!(client = %cx.addrs.tcp, error = %e, "HTTP/2 connection error");
                        input.clear();
                    }
                }
            }
            for a in actions {
                match a {
                    Action::Start(s, head_request, connect) => {
                        let stream = H2Stream {
                            c: c.clone(),
                            s,
                            writer: RefCell::new(ResponseWriter::new(head_request, connect)),
                            ended: Cell::new(false),
                        };
                        monoio::spawn(crate::conn::serve(
                            cx.shared.clone(),
                            cx.snap.clone(),
                            cx.listen.clone(),
                            stream,
                            cx.addrs,
                            cx.local,
                            crate::shared::ConnGuard::new(&streams_listen),
                        ));
                    }
                    Action::Answer(s, head_request, status, why, line) => {
                        let stream = H2Stream {
                            c: c.clone(),
                            s,
                            writer: RefCell::new(ResponseWriter::new(head_request, None)),
                            ended: Cell::new(false),
                        };
                        monoio::spawn(crate::conn::serve_refused(
                            cx.shared.clone(),
                            cx.snap.clone(),
                            cx.listen.clone(),
                            stream,
                            cx.addrs,
                            cx.local,
                            crate::shared::ConnGuard::new(&streams_listen),
                            (status, why, line),
                        ));
                    }
                    Action::Reset(id, code) => {
                        c.conn.borrow_mut().reset(id, code);
                    }
                }
            }
            // Write what is queued.
            c.conn.borrow_mut().poll_transmit(&mut out);
            if !out.is_empty() {
                if io.write_all(&out, send_timeout).await.is_err() {
                    break;
                }
                out = Vec::new();
                c.drained.notify();
            }
            {
                let conn = c.conn.borrow();
                if conn.is_closed() && !conn.wants_write() {
                    break;
                }
            }
            if read_eof {
                // The client closed its side (or the idle timeout sent
                // GOAWAY with no stream open): nobody will read a response
                // or send a WINDOW_UPDATE, so every stream still running is
                // gone (HTTP/2 has no half-closed connection).
                for s in c.streams.borrow().values() {
                    s.reset.set(true);
                    s.readable.notify();
                    s.window.notify();
                }
                if c.streams.borrow().is_empty() {
                    break;
                }
                c.wake.notified().await;
                continue;
            }
            if progress && !input.is_empty() {
                // recv stopped for its control-frame bound: go on with the
                // rest now that the queue was written.
                continue;
            }
            // Wait for the client or a stream.
            let notified = c.wake.notified();
            if c.conn.borrow().wants_write() {
                continue;
            }
            let idle = c.streams.borrow().is_empty();
            let stopping = cx.shared.shutting_down.is_raised();
            headers_since = match (c.conn.borrow().awaiting_headers(), headers_since) {
                (false, _) => None,
                (true, None) => Some(Instant::now()),
                (true, since) => since,
            };
            let header_left = headers_since
                .map(|t| (t + header_timeout).saturating_duration_since(Instant::now()));
            // One timer, the earlier of the header timeout (true) and the
            // idle timeout (false), on the heap and only while armed: a
            // monoio Sleep is 640 bytes, which every connection's driver
            // held inline while it waited, timer or not (a connection
            // carrying a WebSocket has none).
            let timer = match header_left {
                Some(h) if !idle || h <= idle_timeout => Some((h, true)),
                _ if idle => Some((idle_timeout, false)),
                _ => None,
            };
            let expired = async {
                match timer {
                    Some((after, _)) => Box::pin(monoio::time::sleep(after)).await,
                    None => std::future::pending::<()>().await,
                }
            };
            // A frame larger than ringway allows cannot be pending: recv
            // refused it. Past this, wait for the streams to drain instead.
            let room = input.len() < READ_CHUNK * 64;
            let mut ready = false;
            monoio::select! {
                r = &mut readable, if room => match r {
                    Ok(()) => ready = true,
                    Err(_) => read_eof = true,
                },
                _ = notified => {}
                _ = cx.shared.shutting_down.wait(), if !stopping => {}
                _ = expired => {
                    if timer.is_some_and(|t| t.1) {
                        // The preface's SETTINGS or a header block did not
                        // come whole within client_header_timeout: close.
                        info!(client = %cx.addrs.tcp, timeout = ?header_timeout, "HTTP/2 header timeout: closing");
                        c.conn.borrow_mut().goaway(ErrorCode::NoError);
                    } else {
                        c.conn.borrow_mut().shutdown();
                    }
                    read_eof = true;
                }
            }
            if ready {
                read_eof = read_ready(&io, &mut readable, || io.readable(), &mut input).await;
            }
        }
        // The connection is over: every stream still running is gone.
        for s in c.streams.borrow().values() {
            s.reset.set(true);
            s.readable.notify();
            s.window.notify();
        }
    }
}

/// The client's socket became readable (`readable` completed): read
/// what it has onto `input` without waiting, and arm `readable` again.
/// True at the end of the client's stream or an error.
async fn read_ready<T: Transport, F: std::future::Future<Output = io::Result<()>>>(
    io: &T,
    readable: &mut std::pin::Pin<&mut F>,
    rearm: impl Fn() -> F,
    input: &mut Vec<u8>,
) -> bool {
    // Bounded: each turn reads bytes (and ends) or finds the socket ready
    // again right after it was found empty.
    for _ in 0..8 {
        let start = input.len();
        input.resize(start + READ_CHUNK, 0);
        let got = io.try_read(&mut input[start..]);
        input.truncate(start + *got.as_ref().unwrap_or(&0));
        readable.set(rearm());
        match got {
            Ok(0) => return true,
            Ok(_) => return false,
            Err(e) if crate::sys::would_block(&e) => {
                if input.is_empty() {
                    // An idle connection holds no read buffer.
                    *input = Vec::new();
                }
                // Start the wait now, before any other await: after an
                // empty read the legacy driver's wait forgets the cached
                // readiness, which must not include an edge seen since.
                let now =
                    std::future::poll_fn(|cx| std::task::Poll::Ready(readable.as_mut().poll(cx)))
                        .await;
                match now {
                    std::task::Poll::Pending => return false,
                    std::task::Poll::Ready(Ok(())) => continue,
                    std::task::Poll::Ready(Err(_)) => return true,
                }
            }
            Err(_) => return true,
        }
    }
    readable.set(rearm());
    false
}

/// One event of `recv`, applied to the stream states.
fn on_event(
    e: Event<'_>,
    streams: &RefCell<HashMap<u32, Rc<StreamState>>>,
    client: SocketAddr,
    actions: &mut Vec<Action>,
) {
    match e {
        Event::Request {
            stream,
            end_stream,
            checked,
            fields,
        } => {
            // The connection ran the request check (`request::Builder`)
            // as the block decoded.
            let head = match checked {
                Ok(h) => h,
                Err(r) if r.status().is_some() => {
                    // Answered: through the phases' error answer, with
                    // an access-log line for `METHOD PATH` (host: the
                    // authority; no line when these do not parse as an
                    // HTTP/1.1 head).
                    let method = fields.method().unwrap_or(b"-");
                    let path = fields.path().unwrap_or(b"-");
                    let mut line = Vec::with_capacity(method.len() + path.len() + 16);
                    line.extend_from_slice(method);
                    line.push(b' ');
                    line.extend_from_slice(path);
                    line.extend_from_slice(b" HTTP/1.1\r\nhost: ");
                    line.extend_from_slice(fields.authority().unwrap_or(b"-"));
                    line.extend_from_slice(b"\r\n\r\n");
                    let s = Rc::new(StreamState {
                        id: stream,
                        inbox: RefCell::new(Vec::new()),
                        unreleased: Cell::new(0),
                        chunked: false,
                        eof: Cell::new(end_stream),
                        reset: Cell::new(false),
                        readable: Notify::default(),
                        window: Notify::default(),
                    });
                    streams.borrow_mut().insert(stream, s.clone());
                    let status = r.status().unwrap_or(400);
                    actions.push(Action::Answer(
                        s,
                        method == b"HEAD",
                        status,
                        r.reason(),
                        line,
                    ));
                    return;
                }
                Err(r) => {
                    let code = r.error_code().unwrap_or(ErrorCode::ProtocolError);
                    info!(%client, stream, code = ?code, reason = r.reason(), "HTTP/2 request refused: stream reset");
                    actions.push(Action::Reset(stream, code));
                    return;
                }
            };
            let body = if end_stream { Body::Empty } else { Body::Data };
            let mut inbox = Vec::new();
            let key = crate::h2::websocket::random16();
            let kind = request::to_http1(&head, body, &key, &mut inbox);
            let connect = head.protocol().map(|p| (Box::from(p), key));
            let s = Rc::new(StreamState {
                id: stream,
                inbox: RefCell::new(inbox),
                unreleased: Cell::new(0),
                chunked: kind == BodyKind::Chunked,
                eof: Cell::new(end_stream),
                reset: Cell::new(false),
                readable: Notify::default(),
                window: Notify::default(),
            });
            streams.borrow_mut().insert(stream, s.clone());
            actions.push(Action::Start(s, head.method() == "HEAD", connect));
        }
        Event::Data {
            stream,
            data,
            end_stream,
        } => {
            let Some(s) = streams.borrow().get(&stream).cloned() else {
                return;
            };
            let mut inbox = s.inbox.borrow_mut();
            if s.chunked {
                if !data.is_empty() {
                    request::write_chunk(data, &mut inbox);
                }
                if end_stream {
                    request::write_last_chunk(&mut inbox);
                }
            } else {
                inbox.extend_from_slice(data);
            }
            s.unreleased.set(s.unreleased.get() + data.len());
            if end_stream {
                s.eof.set(true);
            }
            s.readable.notify();
        }
        Event::Trailers { stream, .. } => {
            if let Some(s) = streams.borrow().get(&stream) {
                if s.chunked {
                    request::write_last_chunk(&mut s.inbox.borrow_mut());
                }
                s.eof.set(true);
                s.readable.notify();
            }
        }
        Event::Refused {
            stream,
            how,
            reason,
        } => {
            // Turned away by the connection before any Request event.
            info!(%client, stream, how = ?how, reason, "HTTP/2 request refused");
        }
        Event::StreamError {
            stream,
            code,
            reason,
        } => {
            info!(%client, stream, code = ?code, reason, "HTTP/2 stream reset for the client's error");
            if let Some(s) = streams.borrow().get(&stream) {
                s.reset.set(true);
                s.readable.notify();
                s.window.notify();
            }
        }
        Event::Reset { stream, .. } => {
            if let Some(s) = streams.borrow().get(&stream) {
                s.reset.set(true);
                s.readable.notify();
                s.window.notify();
            }
        }
        Event::WindowOpened { stream } => {
            if let Some(s) = streams.borrow().get(&stream) {
                s.window.notify();
            }
        }
        Event::GoAway { .. } | Event::SettingsChanged => {}
    }
}
