//! The HTTP/2 server connection (RFC 9113) as a sans-I/O state machine:
//! the caller feeds the bytes it read and the current time, takes events
//! and the bytes to send. No socket, task or timer inside, so it is tested
//! frame by frame and fuzzed as a whole connection; the `conn/` phases own
//! the I/O and run each stream as a request. The shape follows
//! python-hyper/h2's `H2Connection` (events out of `receive_data`) and
//! quinn-proto's `Connection` (`poll_transmit`).
//!
//! # API
//!
//! - [`Connection::new`] with an [`H2Config`]; it queues ringway's SETTINGS
//!   (§3.4: the server's preface may go before the client's arrives) and a
//!   connection WINDOW_UPDATE up to [`H2Config::connection_window_size`].
//! - [`Connection::recv`]`(now, input, scratch, events)` reads whole frames
//!   from `input` and returns how many bytes it consumed (the caller keeps
//!   the rest, a partial frame, for the next call). [`Event`]s borrow from
//!   `input` (DATA) and from the per-worker [`Scratch`] (decoded fields).
//!   The connection cannot be called from inside `events`: note what to
//!   do, act after `recv` returns.
//! - [`Connection::send_headers`], [`Connection::send_data`] (takes at most
//!   what the windows allow, see [`Connection::send_capacity`]; the caller
//!   offers the rest again on [`Event::WindowOpened`]),
//!   [`Connection::reset`], [`Connection::release`] (request body bytes the
//!   caller is done with: WINDOW_UPDATEs, coalesced),
//!   [`Connection::shutdown`] (graceful GOAWAY), [`Connection::goaway`].
//! - [`Connection::poll_transmit`] appends every queued frame to the
//!   caller's buffer; [`Connection::wants_write`], [`Connection::is_closed`],
//!   [`Connection::open_streams`], [`Connection::blocked_since`].
//!
//! # What comes from where
//!
//! - §3.4: the preface, checked first; an HTTP/1.x request is told apart
//!   ([`ConnError::Http1`]) so the caller can answer it; the client's first
//!   frame must be SETTINGS.
//! - §4.3, §6.10: header block sequencing — after HEADERS without
//!   END_HEADERS only CONTINUATION on that stream; every block goes
//!   through HPACK (even one about to be refused, to keep the table in
//!   step); a COMPRESSION_ERROR ends the connection.
//! - §5.1, §5.1.1: stream states (idle, open, half-closed, closed), odd and
//!   increasing client ids; frames on idle streams are connection
//!   PROTOCOL_ERRORs (PRIORITY excepted); on closed streams see below.
//! - §5.1.2: past `max_concurrent_streams` a new stream is refused with
//!   REFUSED_STREAM.
//! - §5.4: connection errors queue GOAWAY with the highest stream id seen
//!   and end the connection; stream errors queue RST_STREAM.
//! - §6.5: SETTINGS are acknowledged at once; ringway's own apply when the
//!   client acknowledges them (the HPACK table size when lowered);
//!   SETTINGS_INITIAL_WINDOW_SIZE moves every open stream's send window
//!   (§6.9.2), an overflow is a FLOW_CONTROL_ERROR. A frame's parameters
//!   are read in one pass and the window moved once, by the last value.
//! - §6.7 PING is answered; §6.8 GOAWAY from the client is reported.
//! - §6.9: flow control both ways (below).
//! - §8.1, §8.1.1, §8.2, §8.3: malformed requests (the one request
//!   check, `request::Builder`, fed by `fields.rs` as the block decodes)
//!   and DATA against content-length are stream PROTOCOL_ERRORs; the
//!   check's other verdict (a head, or a refusal to answer: 400, 405, 421)
//!   goes out with [`Event::Request`]; trailers must end the
//!   stream; §8.4: PUSH_PROMISE from a client is a connection error.
//! - RFC 8441: SETTINGS_ENABLE_CONNECT_PROTOCOL is advertised only when
//!   [`H2Config::enable_connect_protocol`] is set; an extended CONNECT
//!   (`:protocol`) otherwise is a malformed request, refused with
//!   RST_STREAM PROTOCOL_ERROR (§3, §4: the client must not send it). The
//!   client's own value of the setting means nothing to a server.
//!
//! # Frames on closed streams (§5.1)
//!
//! The map holds only open and half-closed streams; the last
//! 16 closed ids (`stream.rs`) are remembered with whether ringway reset
//! them. After ringway resets a stream (an error, a refusal, the caller's
//! [`Connection::reset`]) whatever the client had in flight is ignored:
//! DATA still counts against, and is credited back to, the connection
//! window; HEADERS are still decoded. Otherwise DATA on a closed stream is
//! a stream error STREAM_CLOSED, HEADERS on a recently closed stream a
//! connection error STREAM_CLOSED and on an older id a connection
//! PROTOCOL_ERROR (§5.1.1: a lower id than one already used);
//! WINDOW_UPDATE, RST_STREAM and PRIORITY are ignored. After ringway's
//! GOAWAY, frames on streams above its last id are ignored (§6.8).
//!
//! # Flow control and memory
//!
//! Receiving: each stream's window is [`H2Config::initial_window_size`]
//! (at least 65 535, the protocol's initial value, so there is no window
//! to honour before the client acknowledges ringway's SETTINGS), the
//! connection's [`H2Config::connection_window_size`]. Bytes count against
//! both until the caller [`Connection::release`]s them — when it has
//! written them upstream — so the windows are the only bound on what the
//! caller must hold for a slow upstream: at most `initial_window_size`
//! per stream and `connection_window_size` in all; a slow upstream stalls
//! its own stream, and only when enough streams are stalled to fill the
//! connection window, the others. Per-stream throughput is at most a
//! window per round trip: the defaults (64 KiB per stream, 1 MiB per
//! connection) match nginx's 64 KiB body preread and hold at most 1 MiB of
//! request bodies per connection; raise `initial_window_size` for large
//! uploads over long round trips. WINDOW_UPDATEs are coalesced: sent when
//! at least half a window has been released; none for a stream the client
//! has ended. Padding, and DATA the caller never sees (on a stream ringway
//! reset), are credited back at once; when a stream closes, what the
//! caller had not released is credited back to the connection (release
//! then does nothing for it).
//!
//! Sending: [`Connection::send_data`] writes at most min(stream window,
//! connection window) bytes as DATA frames of the client's
//! SETTINGS_MAX_FRAME_SIZE at most; a window overflow from WINDOW_UPDATE
//! is a FLOW_CONTROL_ERROR (stream or connection, §6.9.1).
//!
//! Idle cost: no buffer is held between calls. Frames to send go into one
//! `Vec` that [`Connection::poll_transmit`] hands over and frees; a header
//! block split over CONTINUATION frames is gathered into a `Vec` only
//! while it arrives (a block in one frame is decoded from `input`);
//! decoded fields go into the caller's per-worker [`Scratch`]. What stays
//! is the stream map (32 bytes per open stream, freed when the last one
//! closes) and the HPACK decoder's dynamic table (what the client put in
//! it, up to `header_table_size`).
//!
//! # Denial of service
//!
//! One budget per connection, a token bucket of [`H2Config::abuse_burst`]
//! tokens refilled at [`H2Config::abuse_refill_per_sec`]: each of these
//! costs a token, and when none is left the connection ends with GOAWAY
//! ENHANCE_YOUR_CALM.
//! - a stream the client resets before the response ended (rapid reset,
//!   CVE-2023-44487);
//! - a stream ringway resets because of what the client sent — WINDOW_UPDATE
//!   0, DATA on a half-closed or closed stream, content-length mismatch,
//!   window overflow, a malformed request or trailers, a self-dependent
//!   priority — (MadeYouReset, CVE-2025-8671), and a refused stream
//!   (REFUSED_STREAM once the client has acknowledged the limit, a 431);
//! - an empty DATA without END_STREAM, an empty HEADERS or CONTINUATION
//!   fragment without END_HEADERS (CVE-2019-9518, -9516);
//! - every SETTINGS after the first, an unexpected SETTINGS ack
//!   (CVE-2019-9515), every PING (CVE-2019-9512), every GOAWAY after the
//!   first.
//!
//! And, beside the budget:
//! - a header block is gathered up to `max_header_list_size` +
//!   [`HEADER_BLOCK_MARGIN`] bytes (an HPACK encoding is never longer than
//!   the list it encodes, §6.5.2's 32 bytes per field pay for the length
//!   prefixes); past it the connection ends with ENHANCE_YOUR_CALM
//!   (CONTINUATION flood, CVE-2024-27316 and kin): the decoder needs the
//!   whole block, and without it the HPACK table is lost anyway;
//! - a decoded list above `max_header_list_size` (an HPACK bomb) is not
//!   handed out: the request is answered 431 by the connection itself
//!   (and reset with NO_ERROR if its body was still coming, §8.1); trailers
//!   that large reset the stream with PROTOCOL_ERROR;
//! - control frames queued since the last [`Connection::poll_transmit`]
//!   are capped at [`H2Config::max_queued_control`] bytes: past it `recv`
//!   stops consuming (and [`Connection::wants_write`] is true) until the
//!   caller takes them, so a client that sends PINGs or SETTINGS but
//!   reads nothing meets TCP backpressure instead of growing a queue;
//! - a client stream id at 2^31-1 (no more ids) gets a graceful GOAWAY;
//! - oversize frames are FRAME_SIZE_ERRORs before their payload is read
//!   (`frame.rs`); the read buffer needs `max_frame_size` + 9 bytes.
//! - a zero window that never opens: [`Connection::send_data`] takes
//!   nothing more, so the connection holds only what it was given;
//!   [`Connection::blocked_since`] says since when the stream has made no
//!   progress, for the caller's send timeout.
//!
//! # What the I/O layer must do
//!
//! - Read into a buffer of at least `max_frame_size` + 9 bytes, call
//!   `recv`, keep the unconsumed tail. When `recv` consumed less than it
//!   was given and [`Connection::wants_write`] is true, write first.
//! - After each `recv` or send call, [`Connection::poll_transmit`] and
//!   write it all; do not read more while output is unwritten (backpressure
//!   to a client that does not read); close once written when
//!   [`Connection::is_closed`].
//! - Copy or forward a [`Event::Data`] payload inside the callback (it
//!   borrows `input`), and [`Connection::release`] it once written
//!   upstream; drop a stream's state on [`Event::Reset`] and
//!   [`Event::StreamError`] (the stream is gone).
//! - Timers are the caller's: the preface and first SETTINGS (handshake
//!   timeout), SETTINGS acknowledgement ([`Connection::awaiting_settings_ack`],
//!   SETTINGS_TIMEOUT), idle connection (no open stream), per-stream
//!   response and send timeouts ([`Connection::blocked_since`]), and the
//!   drain after [`Connection::shutdown`].

use std::time::{Duration, Instant};

use super::request::Scheme;

use super::fields::{Checked, Collector, Fields, Kind, Scratch};
use super::frame::{
    self, ErrorCode, Frame, FrameError, FrameHeader, Preface, Setting, Settings, MAX_WINDOW_SIZE,
    PREFACE,
};
use super::hpack::{Decoder, Encoder};
use super::stream::{Closed, Recent, State, Stream, Streams, NO_LENGTH, WANTS_WINDOW};

/// SETTINGS_MAX_CONCURRENT_STREAMS ringway advertises (nginx's
/// `http2_max_concurrent_streams`).
pub const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 128;
/// SETTINGS_INITIAL_WINDOW_SIZE ringway advertises: the protocol's own
/// (nginx's `http2_body_preread_size` is 64 KiB). See the module header.
pub const DEFAULT_INITIAL_WINDOW_SIZE: u32 = 65_535;
/// The connection's receive window (§6.9.2: raised by a WINDOW_UPDATE on
/// stream 0 after the SETTINGS).
pub const DEFAULT_CONNECTION_WINDOW_SIZE: u32 = 1 << 20;
/// SETTINGS_MAX_FRAME_SIZE ringway advertises (the protocol's minimum).
pub const DEFAULT_MAX_FRAME_SIZE: u32 = frame::DEFAULT_MAX_FRAME_SIZE;
/// SETTINGS_HEADER_TABLE_SIZE ringway advertises.
pub const DEFAULT_HEADER_TABLE_SIZE: u32 = 4096;
/// SETTINGS_MAX_HEADER_LIST_SIZE ringway advertises and enforces (nginx's
/// `large_client_header_buffers` is 4 × 8 KiB).
pub const DEFAULT_MAX_HEADER_LIST_SIZE: u32 = 32 * 1024;
/// The abuse budget's size: costly events allowed in a burst.
pub const DEFAULT_ABUSE_BURST: u32 = 100;
/// The abuse budget's refill: costly events allowed per second sustained.
pub const DEFAULT_ABUSE_REFILL_PER_SEC: u32 = 10;
/// Bytes of control frames (acks, RST_STREAM, WINDOW_UPDATE) queued since
/// the last [`Connection::poll_transmit`] past which `recv` stops.
pub const DEFAULT_MAX_QUEUED_CONTROL: u32 = 4096;
/// How much longer than `max_header_list_size` a header block split over
/// CONTINUATION frames may be (size updates, unusual encodings).
pub const HEADER_BLOCK_MARGIN: usize = 1024;

/// The highest stream id (§5.1.1).
pub const MAX_STREAM_ID: u32 = 0x7fff_ffff;

/// The protocol's initial window and table size (§6.5.2, §6.9.2).
const PROTOCOL_WINDOW: u32 = 65_535;
const PROTOCOL_TABLE_SIZE: u32 = 4096;

/// ringway's HTTP/2 settings and limits for one connection. Timeouts are
/// the caller's (module header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct H2Config {
    /// SETTINGS_MAX_CONCURRENT_STREAMS (at least 1).
    pub max_concurrent_streams: u32,
    /// SETTINGS_INITIAL_WINDOW_SIZE: each stream's receive window
    /// (65 535 ..= 2^31-1).
    pub initial_window_size: u32,
    /// The connection's receive window (65 535 ..= 2^31-1).
    pub connection_window_size: u32,
    /// SETTINGS_MAX_FRAME_SIZE (16 384 ..= 2^24-1).
    pub max_frame_size: u32,
    /// SETTINGS_HEADER_TABLE_SIZE: the HPACK decoder's table.
    pub header_table_size: u32,
    /// SETTINGS_MAX_HEADER_LIST_SIZE, enforced (431 past it).
    pub max_header_list_size: u32,
    /// Advertise SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441: WebSocket
    /// over HTTP/2) and accept extended CONNECT.
    pub enable_connect_protocol: bool,
    /// The connection's scheme (`https` over TLS), for the request check
    /// (`:scheme` must match it).
    pub scheme: Scheme,
    /// The abuse budget (module header): tokens in a burst (1 ..= 10^6).
    pub abuse_burst: u32,
    /// The abuse budget's refill, tokens per second.
    pub abuse_refill_per_sec: u32,
    /// Control bytes queued before `recv` waits for `poll_transmit`
    /// (at least 256).
    pub max_queued_control: u32,
}

impl Default for H2Config {
    fn default() -> Self {
        H2Config {
            max_concurrent_streams: DEFAULT_MAX_CONCURRENT_STREAMS,
            initial_window_size: DEFAULT_INITIAL_WINDOW_SIZE,
            connection_window_size: DEFAULT_CONNECTION_WINDOW_SIZE,
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            header_table_size: DEFAULT_HEADER_TABLE_SIZE,
            max_header_list_size: DEFAULT_MAX_HEADER_LIST_SIZE,
            enable_connect_protocol: false,
            scheme: Scheme::Http,
            abuse_burst: DEFAULT_ABUSE_BURST,
            abuse_refill_per_sec: DEFAULT_ABUSE_REFILL_PER_SEC,
            max_queued_control: DEFAULT_MAX_QUEUED_CONTROL,
        }
    }
}

impl H2Config {
    /// The values brought into their allowed ranges (see each field).
    pub fn normalized(&self) -> H2Config {
        H2Config {
            max_concurrent_streams: self.max_concurrent_streams.max(1),
            initial_window_size: self
                .initial_window_size
                .clamp(PROTOCOL_WINDOW, MAX_WINDOW_SIZE),
            connection_window_size: self
                .connection_window_size
                .clamp(PROTOCOL_WINDOW, MAX_WINDOW_SIZE),
            max_frame_size: self
                .max_frame_size
                .clamp(frame::DEFAULT_MAX_FRAME_SIZE, frame::MAX_FRAME_SIZE_LIMIT),
            header_table_size: self.header_table_size.min(1 << 30),
            max_header_list_size: self.max_header_list_size,
            enable_connect_protocol: self.enable_connect_protocol,
            scheme: self.scheme,
            abuse_burst: self.abuse_burst.clamp(1, 1_000_000),
            abuse_refill_per_sec: self.abuse_refill_per_sec.min(1_000_000),
            max_queued_control: self.max_queued_control.max(256),
        }
    }
}

/// What the client's SETTINGS said (§6.5.2), defaults until then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerSettings {
    pub header_table_size: u32,
    pub enable_push: bool,
    pub max_concurrent_streams: Option<u32>,
    pub initial_window_size: u32,
    pub max_frame_size: u32,
    /// Advisory (§6.5.2): the caller may keep response heads under it.
    pub max_header_list_size: Option<u32>,
    /// Meaningless from a client (RFC 8441 §3); kept for logs.
    pub enable_connect_protocol: bool,
}

impl Default for PeerSettings {
    fn default() -> Self {
        PeerSettings {
            header_table_size: PROTOCOL_TABLE_SIZE,
            enable_push: true,
            max_concurrent_streams: None,
            initial_window_size: PROTOCOL_WINDOW,
            max_frame_size: frame::DEFAULT_MAX_FRAME_SIZE,
            max_header_list_size: None,
            enable_connect_protocol: false,
        }
    }
}

/// How a new stream was turned away before the caller saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// RST_STREAM with this code.
    Reset(ErrorCode),
    /// Answered `431 Request Header Fields Too Large` by the connection
    /// (RFC 9113 §10.5.1), then reset with NO_ERROR if the request had
    /// more to send.
    Status431,
}

/// What [`Connection::recv`] reports. Each borrows from `recv`'s `input`
/// or `scratch`, for the length of the callback.
#[derive(Debug)]
pub enum Event<'a> {
    /// A new request on `stream` (now open, or half-closed when
    /// `end_stream`: no body), with the verdict of the one request check
    /// (`request::Builder`, fed as the block decodes): the head to serve,
    /// or a refusal to answer (a malformed request never gets here: the
    /// connection refuses it, `Event::Refused`).
    Request {
        stream: u32,
        fields: Fields<'a>,
        end_stream: bool,
        checked: Checked,
    },
    /// The request's trailer section; it ends the stream's request.
    Trailers { stream: u32, fields: Fields<'a> },
    /// Request body bytes (padding removed); release them with
    /// [`Connection::release`] once written on.
    Data {
        stream: u32,
        data: &'a [u8],
        end_stream: bool,
    },
    /// The client reset `stream` (RST_STREAM): it is gone.
    Reset { stream: u32, code: ErrorCode },
    /// ringway reset `stream` because of what the client sent (§5.4.2):
    /// it is gone. For logs.
    StreamError {
        stream: u32,
        code: ErrorCode,
        reason: &'static str,
    },
    /// A new stream turned away before any [`Event::Request`]. For logs.
    Refused {
        stream: u32,
        how: Refusal,
        reason: &'static str,
    },
    /// The client sent GOAWAY (§6.8): it is going away (`last_stream`
    /// names server-initiated streams, of which ringway has none).
    GoAway {
        last_stream: u32,
        code: ErrorCode,
        debug: &'a [u8],
    },
    /// The client's SETTINGS were applied and acknowledged
    /// ([`Connection::peer_settings`]).
    SettingsChanged,
    /// `stream`'s send window opened after a [`Connection::send_data`]
    /// that fell short: offer the rest again.
    WindowOpened { stream: u32 },
}

/// Why the connection ends (after the caller writes what
/// [`Connection::poll_transmit`] gives: a GOAWAY for
/// [`ConnError::Protocol`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConnError {
    /// The first bytes are an HTTP/1.x request, not the preface (the
    /// caller may answer it, e.g. 505 or 400, then close). Nothing is
    /// queued.
    #[error("an HTTP/1.x request where the HTTP/2 preface was expected")]
    Http1,
    /// The first bytes are neither the preface nor HTTP/1.x: close.
    #[error("not the HTTP/2 connection preface")]
    BadPreface,
    /// A connection error (§5.4.1): GOAWAY with `code` is queued.
    #[error("HTTP/2 connection error {code}: {reason}")]
    Protocol {
        code: ErrorCode,
        reason: &'static str,
    },
}

/// Why a send call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("the HTTP/2 connection is closed")]
    ConnectionClosed,
    #[error("no such open HTTP/2 stream")]
    UnknownStream,
    #[error("the response on this HTTP/2 stream has ended")]
    LocalClosed,
}

/// What costs a token of the abuse budget (module header).
#[derive(Debug, Clone, Copy)]
enum Cost {
    PeerReset,
    StreamError,
    Refused,
    EmptyFrame,
    Settings,
    Ping,
    GoAway,
}

impl Cost {
    /// The GOAWAY reason when the budget runs out on this.
    fn reason(self) -> &'static str {
        match self {
            Cost::PeerReset => "too many streams reset by the client (rapid reset)",
            Cost::StreamError => "too many streams reset for the client's errors",
            Cost::Refused => "too many streams refused",
            Cost::EmptyFrame => "too many empty frames",
            Cost::Settings => "too many SETTINGS frames",
            Cost::Ping => "too many PING frames",
            Cost::GoAway => "too many GOAWAY frames",
        }
    }
}

/// Where the connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the client's 24-byte preface.
    Preface,
    /// Preface read; the first frame must be SETTINGS.
    FirstSettings,
    /// Frames.
    Frames,
}

/// A header block being gathered from HEADERS and CONTINUATION frames.
#[derive(Debug, Clone, Copy)]
struct Continuation {
    stream: u32,
    end_stream: bool,
    self_dependent: bool,
}

/// How a stream id stands (§5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// In the map: open or half-closed.
    Live,
    /// Above the last id of ringway's GOAWAY: ignored (§6.8).
    Ignored,
    /// Never used: above the highest id seen, or an even (server) id.
    Idle,
    /// At or below the highest id seen and not live; how it closed when
    /// it is among the recent.
    Closed(Option<Closed>),
}

/// One HTTP/2 server connection. See the module header.
#[derive(Debug)]
pub struct Connection {
    cfg: H2Config,
    phase: Phase,
    failed: Option<ConnError>,
    /// `now` at [`Connection::new`]: times are kept as milliseconds since.
    epoch: Instant,
    decoder: Decoder,
    encoder: Encoder,
    streams: Streams,
    recent: Recent,
    /// Frames to send, handed over (and freed) by `poll_transmit`.
    pending: Vec<u8>,
    /// A header block split over CONTINUATION frames, while it arrives.
    header_block: Vec<u8>,
    continuation: Option<Continuation>,
    /// The highest client stream id seen (§5.1.1).
    max_seen: u32,
    /// ringway sent GOAWAY with this last stream id.
    goaway_last: Option<u32>,
    peer_goaway: bool,
    /// ringway's SETTINGS were acknowledged.
    settings_acked: bool,
    peer: PeerSettings,
    conn_send_window: i32,
    conn_recv_window: u32,
    /// Released bytes no connection WINDOW_UPDATE has announced yet.
    conn_released: u32,
    /// The abuse budget in thousandths of a token, and when it was last
    /// refilled (ms since `epoch`).
    budget: u32,
    budget_at: u32,
    /// Control frame bytes queued since the last `poll_transmit`.
    control_queued: u32,
}

impl Connection {
    /// A connection whose client has yet to send its preface; ringway's
    /// SETTINGS (and the connection WINDOW_UPDATE) are queued.
    pub fn new(config: &H2Config, now: Instant) -> Connection {
        let cfg = config.normalized();
        let mut decoder = Decoder::new(cfg.header_table_size.max(PROTOCOL_TABLE_SIZE) as usize);
        if cfg.header_table_size > PROTOCOL_TABLE_SIZE {
            // A larger table only lets the client's size updates ask for
            // more: allowed from the start.
            decoder.set_max_table_size(cfg.header_table_size as usize);
        }
        let mut c = Connection {
            cfg,
            phase: Phase::Preface,
            failed: None,
            epoch: now,
            decoder,
            encoder: Encoder::new(),
            streams: Streams::default(),
            recent: Recent::default(),
            pending: Vec::new(),
            header_block: Vec::new(),
            continuation: None,
            max_seen: 0,
            goaway_last: None,
            peer_goaway: false,
            settings_acked: false,
            peer: PeerSettings::default(),
            conn_send_window: PROTOCOL_WINDOW as i32,
            conn_recv_window: cfg.connection_window_size,
            conn_released: 0,
            budget: cfg.abuse_burst * 1000,
            budget_at: 0,
            control_queued: 0,
        };
        let mut params = [(Setting::MaxConcurrentStreams, cfg.max_concurrent_streams); 6];
        let mut n = 1;
        let mut add = |s: Setting, v: u32| {
            params[n] = (s, v);
            n += 1;
        };
        if cfg.initial_window_size != PROTOCOL_WINDOW {
            add(Setting::InitialWindowSize, cfg.initial_window_size);
        }
        if cfg.max_frame_size != frame::DEFAULT_MAX_FRAME_SIZE {
            add(Setting::MaxFrameSize, cfg.max_frame_size);
        }
        if cfg.header_table_size != PROTOCOL_TABLE_SIZE {
            add(Setting::HeaderTableSize, cfg.header_table_size);
        }
        add(Setting::MaxHeaderListSize, cfg.max_header_list_size);
        if cfg.enable_connect_protocol {
            add(Setting::EnableConnectProtocol, 1);
        }
        frame::write_settings(&mut c.pending, &params[..n]);
        if cfg.connection_window_size > PROTOCOL_WINDOW {
            frame::write_window_update(
                &mut c.pending,
                0,
                cfg.connection_window_size - PROTOCOL_WINDOW,
            );
        }
        c
    }

    /// The configuration in force (normalized).
    pub fn config(&self) -> &H2Config {
        &self.cfg
    }

    /// The client's settings so far.
    pub fn peer_settings(&self) -> PeerSettings {
        self.peer
    }

    /// ringway's SETTINGS are not acknowledged yet (for the caller's
    /// SETTINGS_TIMEOUT, §6.5.3).
    pub fn awaiting_settings_ack(&self) -> bool {
        !self.settings_acked && self.failed.is_none()
    }

    /// The client owes the rest of a header exchange: its preface and
    /// first SETTINGS, or the CONTINUATION frames of a header block (for
    /// the caller's header timeout).
    pub fn awaiting_headers(&self) -> bool {
        self.failed.is_none() && (self.phase != Phase::Frames || self.continuation.is_some())
    }

    /// Open and half-closed streams (at most `max_concurrent_streams`).
    pub fn open_streams(&self) -> usize {
        self.streams.len()
    }

    /// The highest client stream id seen.
    pub fn last_stream(&self) -> u32 {
        self.max_seen
    }

    /// Frames are queued for [`Connection::poll_transmit`].
    pub fn wants_write(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Bytes queued for [`Connection::poll_transmit`]: the caller bounds
    /// the DATA it offers by them (a client's windows may be up to 2^31-1
    /// bytes; what waits for a slow socket must not be).
    pub fn queued(&self) -> usize {
        self.pending.len()
    }

    /// Nothing more will happen: a connection error, or a GOAWAY either
    /// way and no stream left. Write what `poll_transmit` gives, then
    /// close.
    pub fn is_closed(&self) -> bool {
        self.failed.is_some()
            || ((self.goaway_last.is_some() || self.peer_goaway)
                && self.streams.is_empty()
                && self.continuation.is_none())
    }

    /// Heap bytes this connection holds (the HPACK table, the stream map,
    /// queued output, a header block being gathered).
    pub fn heap_bytes(&self) -> usize {
        self.decoder.heap_bytes()
            + self.streams.heap_bytes()
            + self.pending.capacity()
            + self.header_block.capacity()
    }

    /// Checks the connection's bookkeeping, panicking where it is off: for
    /// tests and the fuzz target. The open streams are within
    /// `max_concurrent_streams` and in id order; every byte taken from the
    /// connection's receive window is either credited back or held by an
    /// open stream the caller has not released it from; a gathered header
    /// block is within its cap.
    pub fn assert_invariants(&self) {
        let cfg = &self.cfg;
        assert!(self.streams.len() <= cfg.max_concurrent_streams as usize);
        let mut prev = 0;
        let mut held = 0u64;
        for s in self.streams.iter() {
            assert!(s.id > prev && s.id & 1 == 1 && s.id <= self.max_seen);
            prev = s.id;
            assert!(
                u64::from(s.recv_window) + u64::from(s.released)
                    <= u64::from(cfg.initial_window_size)
            );
            held += u64::from(s.unreleased(cfg.initial_window_size));
        }
        if self.failed.is_none() {
            let out = u64::from(cfg.connection_window_size)
                - u64::from(self.conn_recv_window)
                - u64::from(self.conn_released);
            assert_eq!(out, held, "connection window bytes unaccounted for");
        }
        assert!(self.header_block.len() <= cfg.max_header_list_size as usize + HEADER_BLOCK_MARGIN);
        assert!(self.conn_send_window <= MAX_WINDOW_SIZE as i32);
    }

    /// Appends every queued frame to `out` and keeps nothing: an empty
    /// `out` too small for them is swapped for the connection's buffer
    /// instead of copied into.
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) {
        self.control_queued = 0;
        if self.pending.is_empty() {
            return;
        }
        if out.is_empty() && out.capacity() < self.pending.len() {
            std::mem::swap(out, &mut self.pending);
        } else {
            out.extend_from_slice(&self.pending);
        }
        self.pending = Vec::new();
    }

    /// Milliseconds since the connection's start, saturating.
    fn ms(&self, now: Instant) -> u32 {
        let ms = now.saturating_duration_since(self.epoch).as_millis();
        ms.min(u128::from(u32::MAX - 1)) as u32
    }

    /// Reads whole frames from `input`; returns the bytes consumed. Stops
    /// at an incomplete frame, or when [`H2Config::max_queued_control`]
    /// bytes of control frames wait for [`Connection::poll_transmit`].
    /// `now` drives the abuse budget and [`Connection::blocked_since`].
    /// After an `Err` the connection is over (`is_closed`); every later
    /// call returns the same error.
    pub fn recv(
        &mut self,
        now: Instant,
        input: &[u8],
        scratch: &mut Scratch,
        mut events: impl FnMut(Event<'_>),
    ) -> Result<usize, ConnError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let now_ms = self.ms(now);
        let mut pos = 0;
        if self.phase == Phase::Preface {
            match frame::check_preface(input) {
                Preface::Partial => return Ok(0),
                Preface::Complete => {
                    pos = PREFACE.len();
                    self.phase = Phase::FirstSettings;
                }
                Preface::Http1 => return Err(self.fail_preface(ConnError::Http1)),
                Preface::Invalid => return Err(self.fail_preface(ConnError::BadPreface)),
            }
        }
        // Bounded by `input`: each turn consumes a whole frame or returns.
        loop {
            if self.control_queued >= self.cfg.max_queued_control {
                return Ok(pos);
            }
            let rest = &input[pos..];
            match frame::parse(rest, self.cfg.max_frame_size) {
                Ok(None) => return Ok(pos),
                Ok(Some((frame, n))) => {
                    self.on_frame(now_ms, frame, scratch, &mut events)?;
                    pos += n;
                }
                Err(FrameError::Connection { code, reason }) => {
                    return Err(self.fail(code, reason));
                }
                Err(FrameError::Stream {
                    stream,
                    code,
                    consumed,
                    reason,
                }) => {
                    let ty = FrameHeader::parse(rest).map_or(0, |h| h.ty);
                    self.on_frame_stream_error(now_ms, ty, stream, code, reason, &mut events)?;
                    pos += consumed;
                }
            }
        }
    }

    // ---- receiving -------------------------------------------------------

    fn on_frame(
        &mut self,
        now_ms: u32,
        frame: Frame<'_>,
        scratch: &mut Scratch,
        events: &mut impl FnMut(Event<'_>),
    ) -> Result<(), ConnError> {
        if self.phase == Phase::FirstSettings
            && !matches!(frame, Frame::Settings { ack: false, .. })
        {
            return Err(self.fail(
                ErrorCode::ProtocolError,
                "the first frame is not SETTINGS (RFC 9113 §3.4)",
            ));
        }
        match (self.continuation, &frame) {
            (Some(c), Frame::Continuation { stream, .. }) if *stream == c.stream => {}
            (Some(_), _) => {
                return Err(self.fail(
                    ErrorCode::ProtocolError,
                    "a frame inside a header block (RFC 9113 §6.10)",
                ))
            }
            (None, Frame::Continuation { .. }) => {
                return Err(self.fail(
                    ErrorCode::ProtocolError,
                    "CONTINUATION without a header block (RFC 9113 §6.10)",
                ))
            }
            (None, _) => {}
        }
        match frame {
            Frame::Data {
                stream,
                end_stream,
                data,
                flow_len,
            } => self.on_data(now_ms, stream, end_stream, data, flow_len, events),
            Frame::Headers {
                stream,
                end_stream,
                end_headers,
                priority,
                fragment,
            } => {
                let self_dependent = priority.is_some_and(|p| p.depends_on_itself(stream));
                self.on_headers(
                    now_ms,
                    Continuation {
                        stream,
                        end_stream,
                        self_dependent,
                    },
                    end_headers,
                    fragment,
                    scratch,
                    events,
                )
            }
            Frame::Continuation {
                end_headers,
                fragment,
                ..
            } => self.on_continuation(now_ms, end_headers, fragment, scratch, events),
            // Priority signals are read and ignored (§5.3.2).
            Frame::Priority { .. } | Frame::Unknown { .. } => Ok(()),
            Frame::RstStream { stream, code } => self.on_rst_stream(now_ms, stream, code, events),
            Frame::Settings { ack, settings } => self.on_settings(now_ms, ack, settings, events),
            Frame::PushPromise { .. } => Err(self.fail(
                ErrorCode::ProtocolError,
                "PUSH_PROMISE from a client (RFC 9113 §8.4)",
            )),
            Frame::Ping { ack, data } => {
                if !ack {
                    self.charge(now_ms, Cost::Ping)?;
                    frame::write_ping(&mut self.pending, data, true);
                    self.control_queued += 17;
                }
                Ok(())
            }
            Frame::GoAway {
                last_stream,
                code,
                debug,
            } => {
                if self.peer_goaway {
                    self.charge(now_ms, Cost::GoAway)?;
                }
                self.peer_goaway = true;
                events(Event::GoAway {
                    last_stream,
                    code,
                    debug,
                });
                Ok(())
            }
            Frame::WindowUpdate { stream, increment } => {
                self.on_window_update(now_ms, stream, increment, events)
            }
        }
    }

    /// A frame `parse` found to be a stream error (PRIORITY's length or
    /// self-dependency, WINDOW_UPDATE of 0): how it counts depends on the
    /// stream's state.
    fn on_frame_stream_error(
        &mut self,
        now_ms: u32,
        ty: u8,
        stream: u32,
        code: ErrorCode,
        reason: &'static str,
        events: &mut impl FnMut(Event<'_>),
    ) -> Result<(), ConnError> {
        if self.phase == Phase::FirstSettings {
            return Err(self.fail(
                ErrorCode::ProtocolError,
                "the first frame is not SETTINGS (RFC 9113 §3.4)",
            ));
        }
        if self.continuation.is_some() {
            return Err(self.fail(
                ErrorCode::ProtocolError,
                "a frame inside a header block (RFC 9113 §6.10)",
            ));
        }
        match self.classify(stream) {
            Class::Idle if ty != frame::frame_type::PRIORITY => Err(self.fail(
                ErrorCode::ProtocolError,
                "WINDOW_UPDATE on an idle stream (RFC 9113 §5.1)",
            )),
            // PRIORITY may name an idle stream; its error still resets a
            // client's (an even id is a stream ringway never opens).
            Class::Idle if stream & 1 == 0 => Ok(()),
            Class::Idle | Class::Live => self.stream_error(now_ms, stream, code, reason, events),
            Class::Ignored | Class::Closed(_) => Ok(()),
        }
    }

    /// How `id` stands (§5.1). Client ids are odd (§5.1.1).
    fn classify(&self, id: u32) -> Class {
        if self.streams.get(id).is_some() {
            return Class::Live;
        }
        if id & 1 == 1 && self.goaway_last.is_some_and(|last| id > last) {
            return Class::Ignored;
        }
        if id & 1 == 0 || id > self.max_seen {
            return Class::Idle;
        }
        Class::Closed(self.recent.find(id))
    }

    fn on_data(
        &mut self,
        now_ms: u32,
        id: u32,
        end_stream: bool,
        data: &[u8],
        flow_len: u32,
        events: &mut impl FnMut(Event<'_>),
    ) -> Result<(), ConnError> {
        // §6.9: the connection's window counts every DATA, whatever the
        // stream's state.
        if flow_len > self.conn_recv_window {
            return Err(self.fail(
                ErrorCode::FlowControlError,
                "DATA beyond the connection window (RFC 9113 §6.9.1)",
            ));
        }
        self.conn_recv_window -= flow_len;
        match self.classify(id) {
            Class::Live => {}
            Class::Idle => {
                return Err(self.fail(
                    ErrorCode::ProtocolError,
                    "DATA on an idle stream (RFC 9113 §5.1)",
                ))
            }
            Class::Ignored | Class::Closed(Some(Closed::ResetByUs)) => {
                self.release_conn(flow_len);
                return Ok(());
            }
            Class::Closed(_) => {
                self.release_conn(flow_len);
                return self.stream_error(
                    now_ms,
                    id,
                    ErrorCode::StreamClosed,
                    "DATA on a closed stream (RFC 9113 §5.1)",
                    events,
                );
            }
        }
        let Some(s) = self.streams.get_mut(id) else {
            return Ok(());
        };
        if !s.remote_open() {
            self.release_conn(flow_len);
            return self.stream_error(
                now_ms,
                id,
                ErrorCode::StreamClosed,
                "DATA after END_STREAM (RFC 9113 §5.1)",
                events,
            );
        }
        if flow_len > s.recv_window {
            self.release_conn(flow_len);
            return self.stream_error(
                now_ms,
                id,
                ErrorCode::FlowControlError,
                "DATA beyond the stream window (RFC 9113 §6.9.1)",
                events,
            );
        }
        // From here the bytes are in the stream's account: closing it
        // credits them back to the connection.
        s.recv_window -= flow_len;
        let len = data.len() as u64;
        if s.remaining != NO_LENGTH {
            if len > s.remaining {
                return self.stream_error(
                    now_ms,
                    id,
                    ErrorCode::ProtocolError,
                    "DATA longer than content-length (RFC 9113 §8.1.1)",
                    events,
                );
            }
            s.remaining -= len;
            if end_stream && s.remaining != 0 {
                return self.stream_error(
                    now_ms,
                    id,
                    ErrorCode::ProtocolError,
                    "DATA shorter than content-length (RFC 9113 §8.1.1)",
                    events,
                );
            }
        }
        let padding = flow_len - data.len() as u32;
        if padding > 0 {
            self.release(id, padding as usize);
        }
        if data.is_empty() && !end_stream {
            self.charge(now_ms, Cost::EmptyFrame)?;
        }
        events(Event::Data {
            stream: id,
            data,
            end_stream,
        });
        if end_stream {
            self.end_remote(id);
        }
        Ok(())
    }

    fn on_headers(
        &mut self,
        now_ms: u32,
        head: Continuation,
        end_headers: bool,
        fragment: &[u8],
        scratch: &mut Scratch,
        events: &mut impl FnMut(Event<'_>),
    ) -> Result<(), ConnError> {
        if head.stream & 1 == 0 {
            return Err(self.fail(
                ErrorCode::ProtocolError,
                "HEADERS on an even stream id (RFC 9113 §5.1.1)",
            ));
        }
        if end_headers {
            return self.on_header_block(now_ms, head, fragment, scratch, events);
        }
        if fragment.is_empty() {
            self.charge(now_ms, Cost::EmptyFrame)?;
        }
        self.gather(fragment)?;
        self.continuation = Some(head);
        Ok(())
    }

    fn on_continuation(
        &mut self,
        now_ms: u32,
        end_headers: bool,
        fragment: &[u8],
        scratch: &mut Scratch,
        events: &mut impl FnMut(Event<'_>),
    ) -> Result<(), ConnError> {
        let Some(head) = self.continuation else {
            return Ok(());
        };
        if fragment.is_empty() && !end_headers {
            self.charge(now_ms, Cost::EmptyFrame)?;
        }
        self.gather(fragment)?;
        if !end_headers {
            return Ok(());
        }
        self.continuation = None;
        // The block's buffer is freed once decoded.
        let block = std::mem::take(&mut self.header_block);
        self.on_header_block(now_ms, head, &block, scratch, events)
    }

    /// Adds a fragment to the block being gathered, up to its cap.
    fn gather(&mut self, fragment: &[u8]) -> Result<(), ConnError> {
        let cap = self.cfg.max_header_list_size as usize + HEADER_BLOCK_MARGIN;
        if self.header_block.len() + fragment.len() > cap {
            return Err(self.fail(
                ErrorCode::EnhanceYourCalm,
                "header block longer than SETTINGS_MAX_HEADER_LIST_SIZE allows",
            ));
        }
        self.header_block.extend_from_slice(fragment);
        Ok(())
    }

    /// A whole header block for `head.stream`.
    fn on_header_block(
        &mut self,
        now_ms: u32,
        head: Continuation,
        block: &[u8],
        scratch: &mut Scratch,
        events: &mut impl FnMut(Event<'_>),
    ) -> Result<(), ConnError> {
        match self.classify(head.stream) {
            Class::Live => self.on_trailers(now_ms, head, block, scratch, events),
            Class::Idle => self.on_request(now_ms, head, block, scratch, events),
            Class::Ignored | Class::Closed(Some(Closed::ResetByUs)) => {
                let _ = self.decode(block, Kind::Discard, scratch)?;
                Ok(())
            }
            Class::Closed(Some(Closed::Other)) => Err(self.fail(
                ErrorCode::StreamClosed,
                "HEADERS on a closed stream (RFC 9113 §5.1)",
            )),
            Class::Closed(None) => Err(self.fail(
                ErrorCode::ProtocolError,
                "HEADERS on a stream id below one already used (RFC 9113 §5.1.1)",
            )),
        }
    }

    /// Decodes a block into `scratch`: whether the list went past
    /// `max_header_list_size`, and the fields or why they are malformed.
    /// An HPACK error is a connection COMPRESSION_ERROR (§4.3).
    #[allow(clippy::type_complexity)]
    fn decode<'s>(
        &mut self,
        block: &[u8],
        kind: Kind,
        scratch: &'s mut Scratch,
    ) -> Result<(bool, Result<(Fields<'s>, Option<Checked>), &'static str>), ConnError> {
        let (huffman, mut collector) = Collector::new(kind, scratch);
        let limit = self.cfg.max_header_list_size as usize;
        match self
            .decoder
            .decode(block, limit, huffman, |n, v, f| collector.field(n, v, f))
        {
            Ok(out) => Ok((out.oversized, collector.finish())),
            Err(_) => Err(self.fail(
                ErrorCode::CompressionError,
                "HPACK decoding failed (RFC 7541)",
            )),
        }
    }

    /// A header block opening stream `head.stream`.
    fn on_request(
        &mut self,
        now_ms: u32,
        head: Continuation,
        block: &[u8],
        scratch: &mut Scratch,
        events: &mut impl FnMut(Event<'_>),
    ) -> Result<(), ConnError> {
        let id = head.stream;
        self.max_seen = id;
        let kind = Kind::Request {
            connect_protocol: self.cfg.enable_connect_protocol,
            scheme: self.cfg.scheme,
            end_stream: head.end_stream,
        };
        let (oversized, fields) = self.decode(block, kind, scratch)?;
        if oversized {
            return self.refuse_431(now_ms, id, head.end_stream, events);
        }
        let refuse = |code, reason| Err((code, reason));
        let checked = match fields {
            _ if head.self_dependent => refuse(
                ErrorCode::ProtocolError,
                "stream depends on itself (RFC 9113 §5.3.1)",
            ),
            Err(why) => refuse(ErrorCode::ProtocolError, why),
            Ok(_) if self.streams.len() >= self.cfg.max_concurrent_streams as usize => refuse(
                ErrorCode::RefusedStream,
                "over SETTINGS_MAX_CONCURRENT_STREAMS (RFC 9113 §5.1.2)",
            ),
            Ok(f) => Ok(f),
        };
        let (fields, verdict) = match checked {
            Ok(f) => f,
            Err((code, reason)) => {
                frame::write_rst_stream(&mut self.pending, id, code);
                self.control_queued += 13;
                self.recent.push(id, Closed::ResetByUs);
                events(Event::Refused {
                    stream: id,
                    how: Refusal::Reset(code),
                    reason,
                });
                // A client may open more streams than the limit before it
                // has read ringway's SETTINGS.
                if code != ErrorCode::RefusedStream || self.settings_acked {
                    self.charge(now_ms, Cost::Refused)?;
                }
                return Ok(());
            }
        };
        let mut stream = Stream::new(
            id,
            head.end_stream,
            self.peer.initial_window_size as i32,
            self.cfg.initial_window_size,
        );
        stream.remaining = fields.content_length().unwrap_or(NO_LENGTH);
        self.streams.push(stream);
        events(Event::Request {
            stream: id,
            fields,
            end_stream: head.end_stream,
            checked: verdict.expect("a request block has a verdict"),
        });
        if id == MAX_STREAM_ID {
            // No id is left for another stream: tell the client to open a
            // new connection.
            self.shutdown();
        }
        Ok(())
    }

    /// Answers a request whose header list is too large with 431, itself.
    fn refuse_431(
        &mut self,
        now_ms: u32,
        id: u32,
        end_stream: bool,
        events: &mut impl FnMut(Event<'_>),
    ) -> Result<(), ConnError> {
        self.write_header_block(id, [(&b":status"[..], &b"431"[..])], true);
        if !end_stream {
            // §8.1: the response is complete; the request need not be.
            frame::write_rst_stream(&mut self.pending, id, ErrorCode::NoError);
            self.control_queued += 13;
        }
        self.recent.push(id, Closed::ResetByUs);
        events(Event::Refused {
            stream: id,
            how: Refusal::Status431,
            reason: "header list larger than SETTINGS_MAX_HEADER_LIST_SIZE",
        });
        self.charge(now_ms, Cost::Refused)
    }

    /// A header block on a live stream: trailers (§8.1).
    fn on_trailers(
        &mut self,
        now_ms: u32,
        head: Continuation,
        block: &[u8],
        scratch: &mut Scratch,
        events: &mut impl FnMut(Event<'_>),
    ) -> Result<(), ConnError> {
        let id = head.stream;
        let (oversized, fields) = self.decode(block, Kind::Trailers, scratch)?;
        let Some(s) = self.streams.get(id) else {
            return Ok(());
        };
        let error = |code, reason| Err((code, reason));
        let checked = match fields {
            _ if !s.remote_open() => error(
                ErrorCode::StreamClosed,
                "HEADERS after END_STREAM (RFC 9113 §5.1)",
            ),
            _ if head.self_dependent => error(
                ErrorCode::ProtocolError,
                "stream depends on itself (RFC 9113 §5.3.1)",
            ),
            _ if !head.end_stream => error(
                ErrorCode::ProtocolError,
                "a second HEADERS without END_STREAM (RFC 9113 §8.1)",
            ),
            _ if oversized => error(
                ErrorCode::ProtocolError,
                "trailers larger than SETTINGS_MAX_HEADER_LIST_SIZE",
            ),
            Err(why) => error(ErrorCode::ProtocolError, why),
            Ok(_) if s.remaining != NO_LENGTH && s.remaining != 0 => error(
                ErrorCode::ProtocolError,
                "DATA shorter than content-length (RFC 9113 §8.1.1)",
            ),
            Ok((f, _)) => Ok(f),
        };
        match checked {
            Ok(fields) => {
                events(Event::Trailers { stream: id, fields });
                self.end_remote(id);
                Ok(())
            }
            Err((code, reason)) => self.stream_error(now_ms, id, code, reason, events),
        }
    }

    fn on_rst_stream(
        &mut self,
        now_ms: u32,
        id: u32,
        code: ErrorCode,
        events: &mut impl FnMut(Event<'_>),
    ) -> Result<(), ConnError> {
        match self.classify(id) {
            Class::Idle => Err(self.fail(
                ErrorCode::ProtocolError,
                "RST_STREAM on an idle stream (RFC 9113 §6.4)",
            )),
            Class::Live => {
                let Some(s) = self.close_stream(id, Closed::Other) else {
                    return Ok(());
                };
                events(Event::Reset { stream: id, code });
                // A reset before the response ended is the rapid-reset
                // pattern; after it, an ordinary cancel of the upload.
                if s.local_open() {
                    self.charge(now_ms, Cost::PeerReset)?;
                }
                Ok(())
            }
            Class::Ignored | Class::Closed(_) => Ok(()),
        }
    }

    fn on_settings(
        &mut self,
        now_ms: u32,
        ack: bool,
        settings: Settings<'_>,
        events: &mut impl FnMut(Event<'_>),
    ) -> Result<(), ConnError> {
        if ack {
            if self.settings_acked {
                return self.charge(now_ms, Cost::Settings);
            }
            self.settings_acked = true;
            if self.cfg.header_table_size < PROTOCOL_TABLE_SIZE {
                // §6.5.3: a lowered table size holds once acknowledged;
                // the client's next block starts with a size update.
                self.decoder
                    .set_max_table_size(self.cfg.header_table_size as usize);
            }
            return Ok(());
        }
        if self.phase == Phase::FirstSettings {
            self.phase = Phase::Frames;
        } else {
            self.charge(now_ms, Cost::Settings)?;
        }
        let mut window = None;
        let mut table = false;
        // Bounded by the frame's parameters.
        for (setting, value) in settings.iter() {
            match setting {
                Setting::HeaderTableSize => {
                    self.peer.header_table_size = value;
                    table = true;
                }
                Setting::EnablePush => self.peer.enable_push = value == 1,
                Setting::MaxConcurrentStreams => self.peer.max_concurrent_streams = Some(value),
                Setting::InitialWindowSize => window = Some(value),
                Setting::MaxFrameSize => self.peer.max_frame_size = value,
                Setting::MaxHeaderListSize => self.peer.max_header_list_size = Some(value),
                Setting::EnableConnectProtocol => self.peer.enable_connect_protocol = value == 1,
                Setting::Unknown(_) => {}
            }
        }
        let mut opened = false;
        if let Some(value) = window {
            // §6.9.2: every stream's send window moves by the difference.
            let delta = i64::from(value) - i64::from(self.peer.initial_window_size);
            self.peer.initial_window_size = value;
            let overflow = self
                .streams
                .iter()
                .any(|s| i64::from(s.send_window) + delta > i64::from(MAX_WINDOW_SIZE));
            if overflow {
                return Err(self.fail(
                    ErrorCode::FlowControlError,
                    "SETTINGS_INITIAL_WINDOW_SIZE takes a window above 2^31-1 (RFC 9113 §6.9.2)",
                ));
            }
            for s in self.streams.iter_mut() {
                s.send_window = (i64::from(s.send_window) + delta) as i32;
            }
            opened = delta > 0;
        }
        if table {
            self.encoder.peer_table_size_changed();
        }
        frame::write_settings_ack(&mut self.pending);
        self.control_queued += 9;
        events(Event::SettingsChanged);
        if opened {
            self.wake_blocked(events);
        }
        Ok(())
    }

    fn on_window_update(
        &mut self,
        now_ms: u32,
        id: u32,
        increment: u32,
        events: &mut impl FnMut(Event<'_>),
    ) -> Result<(), ConnError> {
        if id == 0 {
            let w = i64::from(self.conn_send_window) + i64::from(increment);
            if w > i64::from(MAX_WINDOW_SIZE) {
                return Err(self.fail(
                    ErrorCode::FlowControlError,
                    "connection window above 2^31-1 (RFC 9113 §6.9.1)",
                ));
            }
            self.conn_send_window = w as i32;
            self.wake_blocked(events);
            return Ok(());
        }
        match self.classify(id) {
            Class::Idle => {
                return Err(self.fail(
                    ErrorCode::ProtocolError,
                    "WINDOW_UPDATE on an idle stream (RFC 9113 §5.1)",
                ))
            }
            Class::Live => {}
            Class::Ignored | Class::Closed(_) => return Ok(()),
        }
        let conn = self.conn_send_window;
        let Some(s) = self.streams.get_mut(id) else {
            return Ok(());
        };
        let w = i64::from(s.send_window) + i64::from(increment);
        if w > i64::from(MAX_WINDOW_SIZE) {
            return self.stream_error(
                now_ms,
                id,
                ErrorCode::FlowControlError,
                "stream window above 2^31-1 (RFC 9113 §6.9.1)",
                events,
            );
        }
        s.send_window = w as i32;
        if s.has(WANTS_WINDOW) && s.send_window.min(conn) > 0 {
            s.flags &= !WANTS_WINDOW;
            events(Event::WindowOpened { stream: id });
        }
        Ok(())
    }

    /// [`Event::WindowOpened`] for every stream waiting that can send now.
    fn wake_blocked(&mut self, events: &mut impl FnMut(Event<'_>)) {
        let conn = self.conn_send_window;
        if conn <= 0 {
            return;
        }
        for s in self.streams.iter_mut() {
            if s.has(WANTS_WINDOW) && s.send_window > 0 {
                s.flags &= !WANTS_WINDOW;
                events(Event::WindowOpened { stream: s.id });
            }
        }
    }

    // ---- stream life -------------------------------------------------------

    /// ringway resets `id` for something the client sent (§5.4.2).
    fn stream_error(
        &mut self,
        now_ms: u32,
        id: u32,
        code: ErrorCode,
        reason: &'static str,
        events: &mut impl FnMut(Event<'_>),
    ) -> Result<(), ConnError> {
        frame::write_rst_stream(&mut self.pending, id, code);
        self.control_queued += 13;
        if self.close_stream(id, Closed::ResetByUs).is_some() {
            events(Event::StreamError {
                stream: id,
                code,
                reason,
            });
        } else {
            self.recent.mark_reset(id);
        }
        self.charge(now_ms, Cost::StreamError)
    }

    /// Takes `id` out of the map, crediting what the caller had not
    /// released back to the connection window.
    fn close_stream(&mut self, id: u32, how: Closed) -> Option<Stream> {
        let s = self.streams.remove(id)?;
        self.recent.push(id, how);
        self.release_conn(s.unreleased(self.cfg.initial_window_size));
        Some(s)
    }

    /// The client ended its side of `id`.
    fn end_remote(&mut self, id: u32) {
        let Some(s) = self.streams.get_mut(id) else {
            return;
        };
        match s.state {
            State::Open => s.state = State::HalfClosedRemote,
            State::HalfClosedLocal => {
                self.close_stream(id, Closed::Other);
            }
            State::HalfClosedRemote => {}
        }
    }

    /// ringway ended its side of `id`.
    fn end_local(&mut self, id: u32) {
        let Some(s) = self.streams.get_mut(id) else {
            return;
        };
        s.flags &= !WANTS_WINDOW;
        s.blocked_since = 0;
        match s.state {
            State::Open => s.state = State::HalfClosedLocal,
            State::HalfClosedRemote => {
                self.close_stream(id, Closed::Other);
            }
            State::HalfClosedLocal => {}
        }
    }

    // ---- flow control (receiving) -----------------------------------------

    /// The caller is done with `n` bytes of `stream`'s request body (it
    /// wrote them upstream): the client may send that much more. A stream
    /// WINDOW_UPDATE goes once half its window is released (none once the
    /// client ended the stream), a connection one once half the
    /// connection's is. More than was received and not yet released, or a
    /// closed stream, counts for nothing.
    pub fn release(&mut self, stream: u32, n: usize) {
        if self.failed.is_some() {
            return;
        }
        let initial = self.cfg.initial_window_size;
        let Some(s) = self.streams.get_mut(stream) else {
            return;
        };
        let n = u32::try_from(n)
            .unwrap_or(u32::MAX)
            .min(s.unreleased(initial));
        if n == 0 {
            return;
        }
        s.released += n;
        if s.remote_open() && s.released >= initial / 2 {
            frame::write_window_update(&mut self.pending, stream, s.released);
            self.control_queued += 13;
            s.recv_window += s.released;
            s.released = 0;
        }
        self.release_conn(n);
    }

    /// Credits `n` bytes back to the connection's receive window.
    fn release_conn(&mut self, n: u32) {
        if n == 0 || self.failed.is_some() {
            return;
        }
        self.conn_released += n;
        if self.conn_released >= self.cfg.connection_window_size / 2 {
            frame::write_window_update(&mut self.pending, 0, self.conn_released);
            self.control_queued += 13;
            self.conn_recv_window += self.conn_released;
            self.conn_released = 0;
        }
    }

    // ---- sending -------------------------------------------------------------

    fn sendable(&self, stream: u32) -> Result<&Stream, SendError> {
        if self.failed.is_some() {
            return Err(SendError::ConnectionClosed);
        }
        let s = self.streams.get(stream).ok_or(SendError::UnknownStream)?;
        if !s.local_open() {
            return Err(SendError::LocalClosed);
        }
        Ok(s)
    }

    /// Sends a header section on `stream`: the response head (an
    /// informational 1xx first if need be) or, with `end_stream` after
    /// DATA, trailers. Names lowercase, pseudo fields first (§8.3.2, the
    /// caller's to get right); HPACK-encoded and split into CONTINUATION
    /// frames by the client's SETTINGS_MAX_FRAME_SIZE.
    pub fn send_headers<'f, I>(
        &mut self,
        stream: u32,
        fields: I,
        end_stream: bool,
    ) -> Result<(), SendError>
    where
        I: IntoIterator<Item = (&'f [u8], &'f [u8])>,
    {
        self.sendable(stream)?;
        self.write_header_block(stream, fields, end_stream);
        if end_stream {
            self.end_local(stream);
        }
        Ok(())
    }

    /// Encodes a block straight into the queue behind a frame header
    /// filled in afterwards; a block longer than one frame is moved out
    /// and split (HEADERS + CONTINUATION).
    fn write_header_block<'f, I>(&mut self, stream: u32, fields: I, end_stream: bool)
    where
        I: IntoIterator<Item = (&'f [u8], &'f [u8])>,
    {
        let start = self.pending.len();
        self.pending.extend_from_slice(&[0; frame::HEADER_LEN]);
        self.encoder.encode(fields, &mut self.pending);
        let len = self.pending.len() - start - frame::HEADER_LEN;
        let max = self.peer.max_frame_size;
        if len <= max as usize {
            let mut flags = frame::flags::END_HEADERS;
            if end_stream {
                flags |= frame::flags::END_STREAM;
            }
            let mut head = &mut self.pending[start..start + frame::HEADER_LEN];
            frame::write_frame_header(&mut head, frame::frame_type::HEADERS, flags, stream, len);
        } else {
            let block = self.pending.split_off(start + frame::HEADER_LEN);
            self.pending.truncate(start);
            frame::write_headers(&mut self.pending, stream, &block, end_stream, max);
        }
    }

    /// What [`Connection::send_data`] would take on `stream` now: the
    /// smaller of its window and the connection's (0 for a stream not
    /// open for sending).
    pub fn send_capacity(&self, stream: u32) -> usize {
        match self.sendable(stream) {
            Ok(s) => s.send_window.min(self.conn_send_window).max(0) as usize,
            Err(_) => 0,
        }
    }

    /// Sends up to [`Connection::send_capacity`] bytes of `data` on
    /// `stream` as DATA frames; END_STREAM goes with the last byte only
    /// when all of `data` was taken (an empty `data` with `end_stream`
    /// always goes). Returns the bytes taken: when fewer than offered the
    /// stream waits for [`Event::WindowOpened`], and
    /// [`Connection::blocked_since`] says since when it has made no
    /// progress (`now`).
    pub fn send_data(
        &mut self,
        stream: u32,
        data: &[u8],
        end_stream: bool,
        now: Instant,
    ) -> Result<usize, SendError> {
        let now_ms = self.ms(now);
        let capacity = self.send_capacity(stream);
        self.sendable(stream)?;
        let n = data.len().min(capacity);
        let all = n == data.len();
        let max = self.peer.max_frame_size as usize;
        let chunks = data[..n].chunks(max);
        let last = chunks.len();
        // Bounded by what the caller offered.
        for (i, chunk) in chunks.enumerate() {
            let end = end_stream && all && i + 1 == last;
            frame::write_data(&mut self.pending, stream, chunk, end);
        }
        if data.is_empty() && end_stream {
            frame::write_data(&mut self.pending, stream, &[], true);
        }
        self.conn_send_window -= n as i32;
        if let Some(s) = self.streams.get_mut(stream) {
            s.send_window -= n as i32;
            if all {
                s.flags &= !WANTS_WINDOW;
                s.blocked_since = 0;
            } else {
                s.flags |= WANTS_WINDOW;
                if n > 0 || s.blocked_since == 0 {
                    s.blocked_since = now_ms + 1;
                }
            }
        }
        if all && end_stream {
            self.end_local(stream);
        }
        Ok(n)
    }

    /// Since when `stream` has waited on the window without progress (the
    /// last [`Connection::send_data`] that fell short and took nothing
    /// more since): for the caller's send timeout. `None` when it is not
    /// waiting.
    pub fn blocked_since(&self, stream: u32) -> Option<Instant> {
        let s = self.streams.get(stream)?;
        (s.blocked_since != 0)
            .then(|| self.epoch + Duration::from_millis(u64::from(s.blocked_since - 1)))
    }

    /// Resets `stream` (RST_STREAM with `code`): the caller gave up on it
    /// (e.g. CANCEL when the upstream failed mid-response, NO_ERROR to
    /// stop an upload after a complete response). Frames the client had
    /// in flight are ignored. False when the stream was not open.
    pub fn reset(&mut self, stream: u32, code: ErrorCode) -> bool {
        if self.failed.is_some() || self.close_stream(stream, Closed::ResetByUs).is_none() {
            return false;
        }
        frame::write_rst_stream(&mut self.pending, stream, code);
        true
    }

    /// Graceful shutdown (§6.8): GOAWAY NO_ERROR with the highest stream
    /// id seen; streams above it are ignored, open ones finish, and the
    /// connection is closed when the last one ends. Once only.
    pub fn shutdown(&mut self) {
        if self.failed.is_some() || self.goaway_last.is_some() {
            return;
        }
        frame::write_goaway(&mut self.pending, self.max_seen, ErrorCode::NoError, b"");
        self.goaway_last = Some(self.max_seen);
    }

    /// Ends the connection now with GOAWAY `code` (e.g. INTERNAL_ERROR,
    /// or NO_ERROR to close an idle connection).
    pub fn goaway(&mut self, code: ErrorCode) {
        self.fail(code, "closed by ringway");
    }

    // ---- the end -------------------------------------------------------------

    /// A connection error (§5.4.1): GOAWAY with the highest stream id
    /// seen (no higher than an earlier GOAWAY's), then nothing more.
    fn fail(&mut self, code: ErrorCode, reason: &'static str) -> ConnError {
        if let Some(e) = self.failed {
            return e;
        }
        let last = self
            .goaway_last
            .map_or(self.max_seen, |l| l.min(self.max_seen));
        frame::write_goaway(&mut self.pending, last, code, reason.as_bytes());
        self.goaway_last = Some(last);
        self.continuation = None;
        self.header_block = Vec::new();
        self.streams = Streams::default();
        let e = ConnError::Protocol { code, reason };
        self.failed = Some(e);
        e
    }

    /// Not HTTP/2 at all: nothing is sent, not even ringway's SETTINGS.
    fn fail_preface(&mut self, e: ConnError) -> ConnError {
        self.pending = Vec::new();
        self.failed = Some(e);
        e
    }

    /// Takes one token from the abuse budget, refilled for the time since
    /// the last; none left is ENHANCE_YOUR_CALM.
    fn charge(&mut self, now_ms: u32, cost: Cost) -> Result<(), ConnError> {
        let elapsed = u64::from(now_ms.saturating_sub(self.budget_at));
        self.budget_at = self.budget_at.max(now_ms);
        let cap = u64::from(self.cfg.abuse_burst) * 1000;
        let tokens =
            (u64::from(self.budget) + elapsed * u64::from(self.cfg.abuse_refill_per_sec)).min(cap);
        if tokens < 1000 {
            self.budget = tokens as u32;
            return Err(self.fail(ErrorCode::EnhanceYourCalm, cost.reason()));
        }
        self.budget = (tokens - 1000) as u32;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
