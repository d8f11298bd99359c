//! HTTP/2 frames (RFC 9113 §4 and §6) as pure functions on bytes: the
//! client connection preface (§3.4), [`parse`] for one frame at a time out
//! of a read buffer, and writers for every frame a server sends. No I/O and
//! no state: the connection state machine above (streams §5.1, flow control
//! §5.2, settings §6.5.3, GOAWAY §6.8) feeds bytes in and writes frames out.
//!
//! What [`parse`] checks is what a frame's own bytes show (§4.1, §4.2, §6):
//! the length against `SETTINGS_MAX_FRAME_SIZE`, which frame types need a
//! stream and which must be on stream 0, fixed lengths, padding, the
//! settings' values (§6.5.2, RFC 8441 §3), a zero window increment (§6.9)
//! and a PRIORITY frame that depends on its own stream (§5.3.1). Each error
//! says whether it ends the connection (§5.4.1: GOAWAY with the code) or
//! only the stream (§5.4.2: RST_STREAM), with the HTTP/2 error code (§7).
//! Checks that need only the header are made from the 9-byte header alone,
//! so an oversized or misplaced frame is refused before its payload
//! arrives.
//!
//! Left to the connection, which alone knows the state:
//! - the preface is followed by a SETTINGS frame (§3.4); stream states
//!   (§5.1): a frame on an idle or closed stream, a new stream with an even
//!   or a lower id (§5.1.1), RST_STREAM on an idle stream;
//!   a [`FrameError::Stream`] names a stream whose state the connection
//!   still applies (on an idle stream it is a connection error, on a closed
//!   one it may be ignored);
//! - header block sequencing (§4.3, §6.10): after HEADERS or PUSH_PROMISE
//!   without END_HEADERS only CONTINUATION on the same stream may follow;
//!   a limit on the whole block's size (CONTINUATION floods);
//! - a HEADERS frame whose priority names its own stream (§5.3.1) is
//!   returned as a frame, not an error: its field block must still go
//!   through HPACK to keep the decoder's table in step (§4.3), so the
//!   connection decodes it and then resets the stream
//!   ([`Priority::depends_on_itself`]);
//! - PUSH_PROMISE is parsed but a server must refuse it (§8.4: connection
//!   PROTOCOL_ERROR); unknown frame types are returned to be ignored (§5.5)
//!   unless they interrupt a header block;
//! - flow-control arithmetic (§6.9.1: windows above 2^31-1, §6.9.2: a new
//!   INITIAL_WINDOW_SIZE applied to open streams), settings acknowledgement
//!   and their effect (§6.5.3), ENABLE_CONNECT_PROTOCOL never going from 1
//!   back to 0 (RFC 8441 §3), GOAWAY's last stream id.
//!
//! Frames are parsed only whole (a DATA frame's payload is in the buffer),
//! so the read buffer needs room for the largest frame ringway advertises
//! in its `SETTINGS_MAX_FRAME_SIZE` plus [`HEADER_LEN`].

use bytes::BufMut;
use std::fmt;

/// The client connection preface (§3.4): this string, then a SETTINGS frame.
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Every frame starts with a 9-byte header (§4.1).
pub const HEADER_LEN: usize = 9;

/// `SETTINGS_MAX_FRAME_SIZE` until the peer says otherwise, and its lowest
/// allowed value (§6.5.2).
pub const DEFAULT_MAX_FRAME_SIZE: u32 = 16_384;

/// The highest allowed `SETTINGS_MAX_FRAME_SIZE` (2^24-1, §6.5.2): no frame
/// is longer.
pub const MAX_FRAME_SIZE_LIMIT: u32 = 16_777_215;

/// The largest flow-control window and window increment (2^31-1, §6.9.1).
pub const MAX_WINDOW_SIZE: u32 = 0x7fff_ffff;

/// Stream ids and the window increment are 31 bits behind a reserved bit
/// that receivers ignore (§4.1, §6.9).
const U31_MASK: u32 = 0x7fff_ffff;

/// Frame type codes (§6, §11.2).
pub mod frame_type {
    pub const DATA: u8 = 0x0;
    pub const HEADERS: u8 = 0x1;
    pub const PRIORITY: u8 = 0x2;
    pub const RST_STREAM: u8 = 0x3;
    pub const SETTINGS: u8 = 0x4;
    pub const PUSH_PROMISE: u8 = 0x5;
    pub const PING: u8 = 0x6;
    pub const GOAWAY: u8 = 0x7;
    pub const WINDOW_UPDATE: u8 = 0x8;
    pub const CONTINUATION: u8 = 0x9;
}

/// Frame flags (§6). A flag a frame type does not define is ignored (§4.1).
pub mod flags {
    /// DATA, HEADERS.
    pub const END_STREAM: u8 = 0x1;
    /// SETTINGS, PING.
    pub const ACK: u8 = 0x1;
    /// HEADERS, PUSH_PROMISE, CONTINUATION.
    pub const END_HEADERS: u8 = 0x4;
    /// DATA, HEADERS, PUSH_PROMISE.
    pub const PADDED: u8 = 0x8;
    /// HEADERS.
    pub const PRIORITY: u8 = 0x20;
}

/// How the first bytes of a connection compare with [`PREFACE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preface {
    /// Every byte so far matches; more are needed (also for no bytes).
    Partial,
    /// The 24 bytes of the preface are there (what follows is frames).
    Complete,
    /// A byte differs, and the bytes so far begin like an HTTP/1.x request
    /// line: a method token (RFC 9110 §5.6.2), then a space or nothing yet.
    /// More bytes may still make it [`Preface::Invalid`].
    Http1,
    /// A byte differs and these bytes cannot begin an HTTP/1.x request (a
    /// TLS record on a cleartext port, binary garbage): close.
    Invalid,
}

/// Compares `buf`, the first bytes a client sent, with the connection
/// preface, deciding as soon as a byte differs. Looks at no more than
/// `buf` (up to its first non-token byte once it differs).
pub fn check_preface(buf: &[u8]) -> Preface {
    let n = buf.len().min(PREFACE.len());
    if buf[..n] == PREFACE[..n] {
        return if n == PREFACE.len() {
            Preface::Complete
        } else {
            Preface::Partial
        };
    }
    match buf.iter().position(|&b| !is_tchar(b)) {
        None => Preface::Http1,
        Some(i) if i > 0 && buf[i] == b' ' => Preface::Http1,
        Some(_) => Preface::Invalid,
    }
}

/// A token character (RFC 9110 §5.6.2), what a method is made of.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The 9-byte frame header (§4.1), the reserved bit of the stream id
/// dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// The payload's length (24 bits), padding included.
    pub len: u32,
    pub ty: u8,
    pub flags: u8,
    pub stream: u32,
}

impl FrameHeader {
    /// The header at the start of `buf`, or `None` below 9 bytes.
    pub fn parse(buf: &[u8]) -> Option<FrameHeader> {
        let h: &[u8; HEADER_LEN] = buf.get(..HEADER_LEN)?.try_into().ok()?;
        Some(FrameHeader {
            len: u32::from_be_bytes([0, h[0], h[1], h[2]]),
            ty: h[3],
            flags: h[4],
            stream: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & U31_MASK,
        })
    }

    fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// HTTP/2 error codes (§7). A code this build does not know is kept as
/// its value ([`ErrorCode::Unknown`]) and, as §7 asks, treated like no
/// other code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    NoError,
    ProtocolError,
    InternalError,
    FlowControlError,
    SettingsTimeout,
    StreamClosed,
    FrameSizeError,
    RefusedStream,
    Cancel,
    CompressionError,
    ConnectError,
    EnhanceYourCalm,
    InadequateSecurity,
    Http11Required,
    /// Any other value ([`ErrorCode::from_u32`] never gives a known one
    /// here).
    Unknown(u32),
}

impl ErrorCode {
    pub fn from_u32(code: u32) -> ErrorCode {
        match code {
            0x0 => ErrorCode::NoError,
            0x1 => ErrorCode::ProtocolError,
            0x2 => ErrorCode::InternalError,
            0x3 => ErrorCode::FlowControlError,
            0x4 => ErrorCode::SettingsTimeout,
            0x5 => ErrorCode::StreamClosed,
            0x6 => ErrorCode::FrameSizeError,
            0x7 => ErrorCode::RefusedStream,
            0x8 => ErrorCode::Cancel,
            0x9 => ErrorCode::CompressionError,
            0xa => ErrorCode::ConnectError,
            0xb => ErrorCode::EnhanceYourCalm,
            0xc => ErrorCode::InadequateSecurity,
            0xd => ErrorCode::Http11Required,
            other => ErrorCode::Unknown(other),
        }
    }

    pub fn to_u32(self) -> u32 {
        match self {
            ErrorCode::NoError => 0x0,
            ErrorCode::ProtocolError => 0x1,
            ErrorCode::InternalError => 0x2,
            ErrorCode::FlowControlError => 0x3,
            ErrorCode::SettingsTimeout => 0x4,
            ErrorCode::StreamClosed => 0x5,
            ErrorCode::FrameSizeError => 0x6,
            ErrorCode::RefusedStream => 0x7,
            ErrorCode::Cancel => 0x8,
            ErrorCode::CompressionError => 0x9,
            ErrorCode::ConnectError => 0xa,
            ErrorCode::EnhanceYourCalm => 0xb,
            ErrorCode::InadequateSecurity => 0xc,
            ErrorCode::Http11Required => 0xd,
            ErrorCode::Unknown(code) => code,
        }
    }
}

impl From<u32> for ErrorCode {
    fn from(code: u32) -> ErrorCode {
        ErrorCode::from_u32(code)
    }
}

impl From<ErrorCode> for u32 {
    fn from(code: ErrorCode) -> u32 {
        code.to_u32()
    }
}

/// The RFC's name (`PROTOCOL_ERROR`), or `0x…` for an unknown code.
impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            ErrorCode::NoError => "NO_ERROR",
            ErrorCode::ProtocolError => "PROTOCOL_ERROR",
            ErrorCode::InternalError => "INTERNAL_ERROR",
            ErrorCode::FlowControlError => "FLOW_CONTROL_ERROR",
            ErrorCode::SettingsTimeout => "SETTINGS_TIMEOUT",
            ErrorCode::StreamClosed => "STREAM_CLOSED",
            ErrorCode::FrameSizeError => "FRAME_SIZE_ERROR",
            ErrorCode::RefusedStream => "REFUSED_STREAM",
            ErrorCode::Cancel => "CANCEL",
            ErrorCode::CompressionError => "COMPRESSION_ERROR",
            ErrorCode::ConnectError => "CONNECT_ERROR",
            ErrorCode::EnhanceYourCalm => "ENHANCE_YOUR_CALM",
            ErrorCode::InadequateSecurity => "INADEQUATE_SECURITY",
            ErrorCode::Http11Required => "HTTP_1_1_REQUIRED",
            ErrorCode::Unknown(code) => return write!(f, "{code:#x}"),
        };
        f.write_str(name)
    }
}

/// A frame the peer may not send as it is (§5.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The connection ends (§5.4.1): GOAWAY with `code`, then close. Nothing
    /// after the frame's header can be read as frames.
    #[error("HTTP/2 connection error {code}: {reason}")]
    Connection {
        code: ErrorCode,
        reason: &'static str,
    },
    /// Only `stream` ends (§5.4.2): RST_STREAM with `code`, subject to the
    /// stream's state (see the module header). The frame is whole in the
    /// buffer and `consumed` bytes long: skip them and parse on.
    #[error("HTTP/2 stream {stream} error {code}: {reason}")]
    Stream {
        stream: u32,
        code: ErrorCode,
        consumed: usize,
        reason: &'static str,
    },
}

impl FrameError {
    pub fn code(&self) -> ErrorCode {
        match *self {
            FrameError::Connection { code, .. } | FrameError::Stream { code, .. } => code,
        }
    }

    /// The stream a stream error ends; `None` for a connection error.
    pub fn stream(&self) -> Option<u32> {
        match *self {
            FrameError::Connection { .. } => None,
            FrameError::Stream { stream, .. } => Some(stream),
        }
    }

    pub fn is_connection(&self) -> bool {
        matches!(self, FrameError::Connection { .. })
    }

    /// What it says, for logs and GOAWAY's debug data.
    pub fn reason(&self) -> &'static str {
        match *self {
            FrameError::Connection { reason, .. } | FrameError::Stream { reason, .. } => reason,
        }
    }
}

fn connection(code: ErrorCode, reason: &'static str) -> FrameError {
    FrameError::Connection { code, reason }
}

/// A setting's identifier (§6.5.2, RFC 8441 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Setting {
    HeaderTableSize,
    EnablePush,
    MaxConcurrentStreams,
    InitialWindowSize,
    MaxFrameSize,
    MaxHeaderListSize,
    /// `SETTINGS_ENABLE_CONNECT_PROTOCOL` (0x8, RFC 8441 §3): extended
    /// CONNECT, WebSocket over HTTP/2.
    EnableConnectProtocol,
    /// Any other id: ignored (§6.5.2). [`Setting::from_id`] never gives a
    /// known one here.
    Unknown(u16),
}

impl Setting {
    pub fn from_id(id: u16) -> Setting {
        match id {
            0x1 => Setting::HeaderTableSize,
            0x2 => Setting::EnablePush,
            0x3 => Setting::MaxConcurrentStreams,
            0x4 => Setting::InitialWindowSize,
            0x5 => Setting::MaxFrameSize,
            0x6 => Setting::MaxHeaderListSize,
            0x8 => Setting::EnableConnectProtocol,
            other => Setting::Unknown(other),
        }
    }

    pub fn id(self) -> u16 {
        match self {
            Setting::HeaderTableSize => 0x1,
            Setting::EnablePush => 0x2,
            Setting::MaxConcurrentStreams => 0x3,
            Setting::InitialWindowSize => 0x4,
            Setting::MaxFrameSize => 0x5,
            Setting::MaxHeaderListSize => 0x6,
            Setting::EnableConnectProtocol => 0x8,
            Setting::Unknown(id) => id,
        }
    }

    /// Whether `value` is allowed for this setting (§6.5.2; RFC 8441 §3),
    /// else the connection error's code.
    pub fn check(self, value: u32) -> Result<(), ErrorCode> {
        let ok = match self {
            Setting::EnablePush | Setting::EnableConnectProtocol => value <= 1,
            Setting::InitialWindowSize => {
                if value > MAX_WINDOW_SIZE {
                    return Err(ErrorCode::FlowControlError);
                }
                true
            }
            Setting::MaxFrameSize => {
                (DEFAULT_MAX_FRAME_SIZE..=MAX_FRAME_SIZE_LIMIT).contains(&value)
            }
            Setting::HeaderTableSize
            | Setting::MaxConcurrentStreams
            | Setting::MaxHeaderListSize
            | Setting::Unknown(_) => true,
        };
        if ok {
            Ok(())
        } else {
            Err(ErrorCode::ProtocolError)
        }
    }
}

/// A SETTINGS frame's parameters, in the order sent (a later value for the
/// same setting replaces an earlier one, §6.5). Every value has passed
/// [`Setting::check`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Settings<'a> {
    /// A multiple of 6 bytes: id (16) and value (32) each.
    raw: &'a [u8],
}

impl<'a> Settings<'a> {
    pub fn iter(&self) -> SettingsIter<'a> {
        SettingsIter {
            chunks: self.raw.chunks_exact(6),
        }
    }

    /// The number of parameters.
    pub fn len(&self) -> usize {
        self.raw.len() / 6
    }

    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }
}

impl fmt::Debug for Settings<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> IntoIterator for Settings<'a> {
    type Item = (Setting, u32);
    type IntoIter = SettingsIter<'a>;
    fn into_iter(self) -> SettingsIter<'a> {
        self.iter()
    }
}

/// The parameters of a [`Settings`], each `(setting, value)`.
#[derive(Debug, Clone)]
pub struct SettingsIter<'a> {
    chunks: std::slice::ChunksExact<'a, u8>,
}

impl Iterator for SettingsIter<'_> {
    type Item = (Setting, u32);

    fn next(&mut self) -> Option<(Setting, u32)> {
        self.chunks.next().map(setting_at)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.chunks.size_hint()
    }
}

impl ExactSizeIterator for SettingsIter<'_> {}

/// One 6-byte parameter.
fn setting_at(p: &[u8]) -> (Setting, u32) {
    (
        Setting::from_id(u16::from_be_bytes([p[0], p[1]])),
        u32::from_be_bytes([p[2], p[3], p[4], p[5]]),
    )
}

/// A priority signal (§5.3, deprecated by RFC 9113 §5.3.2; ringway reads it
/// and otherwise ignores it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Priority {
    pub exclusive: bool,
    /// The stream depended on (31 bits).
    pub dependency: u32,
    /// The wire value: the weight is this plus one (1..=256).
    pub weight: u8,
}

impl Priority {
    /// From the 5 bytes of a PRIORITY frame or a HEADERS frame's fields.
    fn read(p: &[u8]) -> Priority {
        let word = u32::from_be_bytes([p[0], p[1], p[2], p[3]]);
        Priority {
            exclusive: word & !U31_MASK != 0,
            dependency: word & U31_MASK,
            weight: p[4],
        }
    }

    /// A stream cannot depend on itself (§5.3.1): a stream error
    /// PROTOCOL_ERROR on `stream`.
    pub fn depends_on_itself(&self, stream: u32) -> bool {
        self.dependency == stream
    }
}

/// One frame, its payload slices borrowed from the buffer [`parse`] read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// §6.1. `data` without padding; `flow_len` is the whole payload's
    /// length (Pad Length and padding included), what flow control counts.
    Data {
        stream: u32,
        end_stream: bool,
        data: &'a [u8],
        flow_len: u32,
    },
    /// §6.2. `fragment` without padding. A `priority` that depends on
    /// `stream` is for the connection to refuse (module header).
    Headers {
        stream: u32,
        end_stream: bool,
        end_headers: bool,
        priority: Option<Priority>,
        fragment: &'a [u8],
    },
    /// §6.3.
    Priority { stream: u32, priority: Priority },
    /// §6.4.
    RstStream { stream: u32, code: ErrorCode },
    /// §6.5. With `ack`, `settings` is empty.
    Settings { ack: bool, settings: Settings<'a> },
    /// §6.6: a client never sends it (§8.4); `fragment` without padding.
    PushPromise {
        stream: u32,
        promised: u32,
        end_headers: bool,
        fragment: &'a [u8],
    },
    /// §6.7.
    Ping { ack: bool, data: [u8; 8] },
    /// §6.8.
    GoAway {
        last_stream: u32,
        code: ErrorCode,
        debug: &'a [u8],
    },
    /// §6.9. `increment` is 1..=2^31-1 (a zero one is an error); stream 0
    /// is the connection's window.
    WindowUpdate { stream: u32, increment: u32 },
    /// §6.10.
    Continuation {
        stream: u32,
        end_headers: bool,
        fragment: &'a [u8],
    },
    /// A type this build does not know: ignored (§4.1, §5.5), except that
    /// it may not interrupt a header block.
    Unknown {
        ty: u8,
        flags: u8,
        stream: u32,
        payload: &'a [u8],
    },
}

impl Frame<'_> {
    /// The frame's stream id (0 for the connection-level frames).
    pub fn stream(&self) -> u32 {
        match *self {
            Frame::Data { stream, .. }
            | Frame::Headers { stream, .. }
            | Frame::Priority { stream, .. }
            | Frame::RstStream { stream, .. }
            | Frame::PushPromise { stream, .. }
            | Frame::WindowUpdate { stream, .. }
            | Frame::Continuation { stream, .. }
            | Frame::Unknown { stream, .. } => stream,
            Frame::Settings { .. } | Frame::Ping { .. } | Frame::GoAway { .. } => 0,
        }
    }

    /// The frame's type code ([`frame_type`]).
    pub fn frame_type(&self) -> u8 {
        match *self {
            Frame::Data { .. } => frame_type::DATA,
            Frame::Headers { .. } => frame_type::HEADERS,
            Frame::Priority { .. } => frame_type::PRIORITY,
            Frame::RstStream { .. } => frame_type::RST_STREAM,
            Frame::Settings { .. } => frame_type::SETTINGS,
            Frame::PushPromise { .. } => frame_type::PUSH_PROMISE,
            Frame::Ping { .. } => frame_type::PING,
            Frame::GoAway { .. } => frame_type::GOAWAY,
            Frame::WindowUpdate { .. } => frame_type::WINDOW_UPDATE,
            Frame::Continuation { .. } => frame_type::CONTINUATION,
            Frame::Unknown { ty, .. } => ty,
        }
    }
}

/// Reads the frame at the start of `buf`.
///
/// `Ok(None)`: `buf` does not hold the whole frame yet (read more, keeping
/// these bytes). `Ok(Some((frame, n)))`: the frame, and the `n` bytes it
/// took (header and payload). `Err`: see [`FrameError`]; an error the
/// header shows (a length above `max_frame_size`, the wrong stream for the
/// type, a wrong fixed length) comes as soon as the 9 header bytes are in.
/// `max_frame_size` is the `SETTINGS_MAX_FRAME_SIZE` ringway advertised.
pub fn parse(buf: &[u8], max_frame_size: u32) -> Result<Option<(Frame<'_>, usize)>, FrameError> {
    let Some(head) = FrameHeader::parse(buf) else {
        return Ok(None);
    };
    check_header(&head, max_frame_size)?;
    let total = HEADER_LEN + head.len as usize;
    let Some(payload) = buf.get(HEADER_LEN..total) else {
        return Ok(None);
    };
    Ok(Some((parse_payload(&head, payload, total)?, total)))
}

/// What the header alone shows (§4.2, §6).
fn check_header(head: &FrameHeader, max_frame_size: u32) -> Result<(), FrameError> {
    use frame_type::*;
    use ErrorCode::{FrameSizeError, ProtocolError};
    if head.len > max_frame_size {
        return Err(connection(
            FrameSizeError,
            "frame longer than SETTINGS_MAX_FRAME_SIZE",
        ));
    }
    let len = head.len;
    match head.ty {
        DATA | HEADERS | PRIORITY | RST_STREAM | PUSH_PROMISE | CONTINUATION
            if head.stream == 0 =>
        {
            return Err(connection(ProtocolError, "frame type needs a stream"));
        }
        SETTINGS | PING | GOAWAY if head.stream != 0 => {
            return Err(connection(ProtocolError, "frame type is for stream 0 only"));
        }
        _ => {}
    }
    let padded = usize::from(head.has(flags::PADDED));
    let err = match head.ty {
        DATA if (len as usize) < padded => "DATA too short for its Pad Length",
        HEADERS if (len as usize) < padded + 5 * usize::from(head.has(flags::PRIORITY)) => {
            "HEADERS too short for its Pad Length and priority"
        }
        PUSH_PROMISE if (len as usize) < padded + 4 => "PUSH_PROMISE too short",
        RST_STREAM if len != 4 => "RST_STREAM length is not 4",
        SETTINGS if head.has(flags::ACK) && len != 0 => "SETTINGS ACK with a payload",
        // Not a whole number of parameters (`is_multiple_of` needs Rust 1.87,
        // above the workspace's rust-version).
        SETTINGS if len / 6 * 6 != len => "SETTINGS length is not a multiple of 6",
        PING if len != 8 => "PING length is not 8",
        GOAWAY if len < 8 => "GOAWAY shorter than 8",
        WINDOW_UPDATE if len != 4 => "WINDOW_UPDATE length is not 4",
        _ => return Ok(()),
    };
    Err(connection(FrameSizeError, err))
}

/// The frame from its whole payload; `check_header` has passed.
fn parse_payload<'a>(
    head: &FrameHeader,
    payload: &'a [u8],
    total: usize,
) -> Result<Frame<'a>, FrameError> {
    let stream = head.stream;
    let stream_error = |code: ErrorCode, reason: &'static str| FrameError::Stream {
        stream,
        code,
        consumed: total,
        reason,
    };
    let frame = match head.ty {
        frame_type::DATA => {
            let (pad, body) = split_pad_length(head, payload);
            Frame::Data {
                stream,
                end_stream: head.has(flags::END_STREAM),
                data: strip_padding(body, pad)?,
                flow_len: head.len,
            }
        }
        frame_type::HEADERS => {
            let (pad, mut body) = split_pad_length(head, payload);
            let mut priority = None;
            if head.has(flags::PRIORITY) {
                let (fields, rest) = body.split_at(5);
                priority = Some(Priority::read(fields));
                body = rest;
            }
            Frame::Headers {
                stream,
                end_stream: head.has(flags::END_STREAM),
                end_headers: head.has(flags::END_HEADERS),
                priority,
                fragment: strip_padding(body, pad)?,
            }
        }
        frame_type::PRIORITY => {
            if payload.len() != 5 {
                return Err(stream_error(
                    ErrorCode::FrameSizeError,
                    "PRIORITY length is not 5",
                ));
            }
            let priority = Priority::read(payload);
            if priority.depends_on_itself(stream) {
                return Err(stream_error(
                    ErrorCode::ProtocolError,
                    "stream depends on itself",
                ));
            }
            Frame::Priority { stream, priority }
        }
        frame_type::RST_STREAM => Frame::RstStream {
            stream,
            code: ErrorCode::from_u32(be_u32(payload)),
        },
        frame_type::SETTINGS => {
            let settings = Settings { raw: payload };
            for (setting, value) in settings.iter() {
                if let Err(code) = setting.check(value) {
                    let reason = match setting {
                        Setting::EnablePush => "SETTINGS_ENABLE_PUSH not 0 or 1",
                        Setting::InitialWindowSize => "SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1",
                        Setting::MaxFrameSize => "SETTINGS_MAX_FRAME_SIZE out of range",
                        Setting::EnableConnectProtocol => {
                            "SETTINGS_ENABLE_CONNECT_PROTOCOL not 0 or 1"
                        }
                        _ => "SETTINGS value out of range",
                    };
                    return Err(connection(code, reason));
                }
            }
            Frame::Settings {
                ack: head.has(flags::ACK),
                settings,
            }
        }
        frame_type::PUSH_PROMISE => {
            let (pad, body) = split_pad_length(head, payload);
            let (promised, body) = body.split_at(4);
            Frame::PushPromise {
                stream,
                promised: be_u32(promised) & U31_MASK,
                end_headers: head.has(flags::END_HEADERS),
                fragment: strip_padding(body, pad)?,
            }
        }
        frame_type::PING => {
            let mut data = [0; 8];
            data.copy_from_slice(payload);
            Frame::Ping {
                ack: head.has(flags::ACK),
                data,
            }
        }
        frame_type::GOAWAY => {
            let (fields, debug) = payload.split_at(8);
            Frame::GoAway {
                last_stream: be_u32(fields) & U31_MASK,
                code: ErrorCode::from_u32(be_u32(&fields[4..])),
                debug,
            }
        }
        frame_type::WINDOW_UPDATE => {
            let increment = be_u32(payload) & U31_MASK;
            if increment == 0 {
                let reason = "WINDOW_UPDATE increment of 0";
                return Err(if stream == 0 {
                    connection(ErrorCode::ProtocolError, reason)
                } else {
                    stream_error(ErrorCode::ProtocolError, reason)
                });
            }
            Frame::WindowUpdate { stream, increment }
        }
        frame_type::CONTINUATION => Frame::Continuation {
            stream,
            end_headers: head.has(flags::END_HEADERS),
            fragment: payload,
        },
        ty => Frame::Unknown {
            ty,
            flags: head.flags,
            stream,
            payload,
        },
    };
    Ok(frame)
}

/// The Pad Length (0 without PADDED) and the payload after it; the header
/// check made sure the byte is there.
fn split_pad_length<'a>(head: &FrameHeader, payload: &'a [u8]) -> (usize, &'a [u8]) {
    match payload.split_first() {
        Some((&pad, rest)) if head.has(flags::PADDED) => (usize::from(pad), rest),
        _ => (0, payload),
    }
}

/// `body` less its last `pad` bytes. Padding as long as the whole payload or
/// longer, i.e. longer than what follows the fixed fields, is a connection
/// PROTOCOL_ERROR (§6.1, §6.2, §6.6). Padding bytes are not checked to be
/// zero (§6.1 does not oblige it).
fn strip_padding(body: &[u8], pad: usize) -> Result<&[u8], FrameError> {
    match body.len().checked_sub(pad) {
        Some(keep) => Ok(&body[..keep]),
        None => Err(connection(
            ErrorCode::ProtocolError,
            "padding longer than the payload",
        )),
    }
}

/// The first 4 bytes of `b`, big-endian (the caller checked the length).
fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

// ---------------------------------------------------------------------------
// Writing. Each function appends one or more whole frames to `out` (a
// `Vec<u8>` or a `BytesMut`) and allocates nothing else. Stream ids and
// increments are written with the reserved bit clear.
// ---------------------------------------------------------------------------

/// Appends a frame header. The payload (`len` bytes) is the caller's to
/// append after it.
///
/// # Panics
/// If `len` is above [`MAX_FRAME_SIZE_LIMIT`] (the caller chunks by the
/// peer's `SETTINGS_MAX_FRAME_SIZE`, which is never more).
pub fn write_frame_header<B: BufMut>(out: &mut B, ty: u8, flags: u8, stream: u32, len: usize) {
    assert!(
        len <= MAX_FRAME_SIZE_LIMIT as usize,
        "HTTP/2 frame payload of {len} bytes"
    );
    let len = (len as u32).to_be_bytes();
    out.put_slice(&[len[1], len[2], len[3], ty, flags]);
    out.put_u32(stream & U31_MASK);
}

/// The header of a DATA frame carrying `len` bytes, unpadded, so the
/// payload can be copied or spliced after it. The caller keeps `len` within
/// the peer's max frame size and the stream's and connection's windows.
pub fn write_data_header<B: BufMut>(out: &mut B, stream: u32, len: usize, end_stream: bool) {
    let f = if end_stream { flags::END_STREAM } else { 0 };
    write_frame_header(out, frame_type::DATA, f, stream, len);
}

/// A DATA frame (unpadded).
pub fn write_data<B: BufMut>(out: &mut B, stream: u32, data: &[u8], end_stream: bool) {
    write_data_header(out, stream, data.len(), end_stream);
    out.put_slice(data);
}

/// A whole field block `block` as HEADERS followed by as many CONTINUATION
/// frames as the peer's `max_frame_size` needs (§4.3: nothing else may go
/// between them), END_HEADERS on the last. `max_frame_size` is taken as at
/// least 1 and at most [`MAX_FRAME_SIZE_LIMIT`].
pub fn write_headers<B: BufMut>(
    out: &mut B,
    stream: u32,
    block: &[u8],
    end_stream: bool,
    max_frame_size: u32,
) {
    let max = max_frame_size.clamp(1, MAX_FRAME_SIZE_LIMIT) as usize;
    let (first, rest) = block.split_at(block.len().min(max));
    write_headers_frame(out, stream, first, end_stream, rest.is_empty());
    let chunks = rest.chunks(max);
    let last = chunks.len();
    for (i, chunk) in chunks.enumerate() {
        write_continuation(out, stream, chunk, i + 1 == last);
    }
}

/// One HEADERS frame (unpadded, no priority) carrying `fragment`.
pub fn write_headers_frame<B: BufMut>(
    out: &mut B,
    stream: u32,
    fragment: &[u8],
    end_stream: bool,
    end_headers: bool,
) {
    let mut f = 0;
    if end_stream {
        f |= flags::END_STREAM;
    }
    if end_headers {
        f |= flags::END_HEADERS;
    }
    write_frame_header(out, frame_type::HEADERS, f, stream, fragment.len());
    out.put_slice(fragment);
}

/// One CONTINUATION frame carrying `fragment`.
pub fn write_continuation<B: BufMut>(out: &mut B, stream: u32, fragment: &[u8], end_headers: bool) {
    let f = if end_headers { flags::END_HEADERS } else { 0 };
    write_frame_header(out, frame_type::CONTINUATION, f, stream, fragment.len());
    out.put_slice(fragment);
}

/// A SETTINGS frame with `params` in order (the caller sends only valid
/// values, [`Setting::check`]).
pub fn write_settings<B: BufMut>(out: &mut B, params: &[(Setting, u32)]) {
    write_frame_header(out, frame_type::SETTINGS, 0, 0, params.len() * 6);
    for &(setting, value) in params {
        debug_assert!(setting.check(value).is_ok(), "{setting:?} = {value}");
        out.put_u16(setting.id());
        out.put_u32(value);
    }
}

/// The empty SETTINGS frame with ACK (§6.5.3).
pub fn write_settings_ack<B: BufMut>(out: &mut B) {
    write_frame_header(out, frame_type::SETTINGS, flags::ACK, 0, 0);
}

/// A PING frame; with `ack`, the answer to a peer's PING carrying its
/// `data` (§6.7).
pub fn write_ping<B: BufMut>(out: &mut B, data: [u8; 8], ack: bool) {
    let f = if ack { flags::ACK } else { 0 };
    write_frame_header(out, frame_type::PING, f, 0, 8);
    out.put_slice(&data);
}

/// A GOAWAY frame (§6.8).
///
/// # Panics
/// If `debug` is longer than a frame can be (keep it short: the peer's max
/// frame size is at least 16384 and the debug data is for logs).
pub fn write_goaway<B: BufMut>(out: &mut B, last_stream: u32, code: ErrorCode, debug: &[u8]) {
    write_frame_header(out, frame_type::GOAWAY, 0, 0, 8 + debug.len());
    out.put_u32(last_stream & U31_MASK);
    out.put_u32(code.to_u32());
    out.put_slice(debug);
}

/// A RST_STREAM frame (§6.4).
pub fn write_rst_stream<B: BufMut>(out: &mut B, stream: u32, code: ErrorCode) {
    write_frame_header(out, frame_type::RST_STREAM, 0, stream, 4);
    out.put_u32(code.to_u32());
}

/// A WINDOW_UPDATE frame (§6.9); stream 0 for the connection's window.
/// `increment` must be 1..=2^31-1.
pub fn write_window_update<B: BufMut>(out: &mut B, stream: u32, increment: u32) {
    debug_assert!((1..=MAX_WINDOW_SIZE).contains(&increment));
    write_frame_header(out, frame_type::WINDOW_UPDATE, 0, stream, 4);
    out.put_u32(increment & U31_MASK);
}

#[cfg(test)]
mod tests {
    use super::*;
    use ErrorCode::*;

    /// A frame built by hand: header then payload.
    fn raw(ty: u8, fl: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut v = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, ty, fl];
        v.extend_from_slice(&stream.to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    fn one(buf: &[u8]) -> Frame<'_> {
        let (frame, n) = parse(buf, DEFAULT_MAX_FRAME_SIZE)
            .expect("valid frame")
            .expect("whole frame");
        assert_eq!(n, buf.len(), "consumes exactly the frame");
        frame
    }

    fn err(buf: &[u8]) -> FrameError {
        parse(buf, DEFAULT_MAX_FRAME_SIZE).expect_err("an error")
    }

    /// The error is a connection error with `code`.
    #[track_caller]
    fn assert_conn(buf: &[u8], code: ErrorCode) {
        let e = err(buf);
        assert!(e.is_connection(), "{e:?}");
        assert_eq!(e.code(), code, "{e:?}");
        assert_eq!(e.stream(), None);
    }

    /// The error is a stream error on `stream` with `code`, consuming the
    /// whole frame.
    #[track_caller]
    fn assert_stream(buf: &[u8], stream: u32, code: ErrorCode) {
        let e = err(buf);
        assert_eq!(
            e,
            FrameError::Stream {
                stream,
                code,
                consumed: buf.len(),
                reason: e.reason()
            }
        );
    }

    #[test]
    fn preface_checked_byte_by_byte() {
        assert_eq!(check_preface(b""), Preface::Partial);
        for n in 1..PREFACE.len() {
            assert_eq!(check_preface(&PREFACE[..n]), Preface::Partial, "{n}");
        }
        assert_eq!(check_preface(PREFACE), Preface::Complete);
        let mut more = PREFACE.to_vec();
        more.extend_from_slice(&raw(frame_type::SETTINGS, 0, 0, &[]));
        assert_eq!(check_preface(&more), Preface::Complete);
        // A wrong byte anywhere is seen at once.
        for i in 0..PREFACE.len() {
            let mut bad = PREFACE[..=i].to_vec();
            bad[i] ^= 0x80;
            assert_ne!(check_preface(&bad), Preface::Partial, "{i}");
            assert_ne!(check_preface(&bad), Preface::Complete, "{i}");
        }
    }

    #[test]
    fn preface_mismatch_tells_http1_from_garbage() {
        assert_eq!(check_preface(b"G"), Preface::Http1);
        assert_eq!(check_preface(b"GET"), Preface::Http1);
        assert_eq!(check_preface(b"GET / HTTP/1.1\r\n"), Preface::Http1);
        assert_eq!(check_preface(b"PRI * HTTP/1.1\r\n"), Preface::Http1);
        assert_eq!(check_preface(b"OPTIONS * HTTP/1.1\r\n"), Preface::Http1);
        // A TLS ClientHello on a cleartext port, a leading space, a
        // control byte inside the method.
        assert_eq!(check_preface(&[0x16, 0x03, 0x01]), Preface::Invalid);
        assert_eq!(check_preface(b" GET"), Preface::Invalid);
        assert_eq!(check_preface(b"GE\0T"), Preface::Invalid);
        // Only the start is looked at: a method and a space are HTTP/1's to
        // judge, even a preface gone wrong late.
        assert_eq!(check_preface(b"PRI * HTTP/2.0\r\n\r\nXX"), Preface::Http1);
        assert_eq!(check_preface(b"PRI\r\n"), Preface::Invalid);
    }

    #[test]
    fn header_ignores_the_reserved_bit() {
        let buf = raw(frame_type::PING, 0, 0x8000_0000, &[0; 8]);
        let head = FrameHeader::parse(&buf).unwrap();
        assert_eq!(head.stream, 0);
        assert!(matches!(one(&buf), Frame::Ping { .. }));
        let buf = raw(frame_type::DATA, 0, 0x8000_0003, b"x");
        assert_eq!(one(&buf).stream(), 3);
        assert_eq!(FrameHeader::parse(&buf[..8]), None);
    }

    #[test]
    fn data_plain_and_padded() {
        let buf = raw(frame_type::DATA, flags::END_STREAM, 1, b"hello");
        assert_eq!(
            one(&buf),
            Frame::Data {
                stream: 1,
                end_stream: true,
                data: b"hello",
                flow_len: 5
            }
        );
        // Pad Length 3, "hi", 3 bytes of padding: flow control counts 6.
        let buf = raw(frame_type::DATA, flags::PADDED, 3, b"\x03hi\0\0\0");
        assert_eq!(
            one(&buf),
            Frame::Data {
                stream: 3,
                end_stream: false,
                data: b"hi",
                flow_len: 6
            }
        );
        // All padding: allowed (§6.1), no data.
        let buf = raw(frame_type::DATA, flags::PADDED, 3, b"\x02\0\0");
        assert!(matches!(
            one(&buf),
            Frame::Data {
                data: b"",
                flow_len: 3,
                ..
            }
        ));
        // Empty DATA.
        let buf = raw(frame_type::DATA, flags::END_STREAM, 5, b"");
        assert!(matches!(
            one(&buf),
            Frame::Data {
                data: b"",
                end_stream: true,
                ..
            }
        ));
    }

    #[test]
    fn data_round_trips() {
        let mut out = Vec::new();
        write_data(&mut out, 7, b"payload", false);
        assert_eq!(out, raw(frame_type::DATA, 0, 7, b"payload"));
        assert_eq!(
            one(&out),
            Frame::Data {
                stream: 7,
                end_stream: false,
                data: b"payload",
                flow_len: 7
            }
        );
        // The header alone, then the payload written separately.
        let mut out = bytes::BytesMut::new();
        write_data_header(&mut out, 9, 3, true);
        assert_eq!(out.len(), HEADER_LEN);
        out.extend_from_slice(b"abc");
        assert_eq!(
            one(&out),
            Frame::Data {
                stream: 9,
                end_stream: true,
                data: b"abc",
                flow_len: 3
            }
        );
    }

    #[test]
    fn headers_with_padding_and_priority() {
        // PADDED + PRIORITY + END_HEADERS + END_STREAM: Pad Length 2,
        // exclusive dependency on 3, weight 15, fragment "abc", padding.
        let payload = b"\x02\x80\x00\x00\x03\x0fabc\0\0";
        let fl = flags::PADDED | flags::PRIORITY | flags::END_HEADERS | flags::END_STREAM;
        let buf = raw(frame_type::HEADERS, fl, 5, payload);
        assert_eq!(
            one(&buf),
            Frame::Headers {
                stream: 5,
                end_stream: true,
                end_headers: true,
                priority: Some(Priority {
                    exclusive: true,
                    dependency: 3,
                    weight: 15
                }),
                fragment: b"abc",
            }
        );
        // Priority alone.
        let buf = raw(frame_type::HEADERS, flags::PRIORITY, 1, b"\0\0\0\0\x10x");
        assert_eq!(
            one(&buf),
            Frame::Headers {
                stream: 1,
                end_stream: false,
                end_headers: false,
                priority: Some(Priority {
                    exclusive: false,
                    dependency: 0,
                    weight: 16
                }),
                fragment: b"x",
            }
        );
        // Flags HEADERS does not define are ignored (§4.1).
        let buf = raw(
            frame_type::HEADERS,
            0x40 | 0x02 | flags::END_HEADERS,
            1,
            b"y",
        );
        assert!(matches!(
            one(&buf),
            Frame::Headers {
                end_headers: true,
                end_stream: false,
                priority: None,
                fragment: b"y",
                ..
            }
        ));
    }

    #[test]
    fn headers_depending_on_itself_is_left_to_the_connection() {
        // Its field block must still reach HPACK: the frame comes back, and
        // the priority says it is a stream error.
        let buf = raw(
            frame_type::HEADERS,
            flags::PRIORITY | flags::END_HEADERS,
            3,
            b"\0\0\0\x03\x00\x82",
        );
        match one(&buf) {
            Frame::Headers {
                stream: 3,
                priority: Some(p),
                fragment: b"\x82",
                ..
            } => assert!(p.depends_on_itself(3)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn headers_round_trip() {
        let mut out = Vec::new();
        write_headers(&mut out, 1, b"\x82\x86\x84", true, DEFAULT_MAX_FRAME_SIZE);
        assert_eq!(
            out,
            raw(
                frame_type::HEADERS,
                flags::END_STREAM | flags::END_HEADERS,
                1,
                b"\x82\x86\x84"
            )
        );
        assert_eq!(
            one(&out),
            Frame::Headers {
                stream: 1,
                end_stream: true,
                end_headers: true,
                priority: None,
                fragment: b"\x82\x86\x84"
            }
        );
        let mut out = Vec::new();
        write_headers_frame(&mut out, 3, b"ab", false, false);
        assert!(matches!(
            one(&out),
            Frame::Headers {
                stream: 3,
                end_stream: false,
                end_headers: false,
                fragment: b"ab",
                ..
            }
        ));
        // An empty block is one HEADERS frame.
        let mut out = Vec::new();
        write_headers(&mut out, 5, b"", false, 1);
        assert_eq!(out, raw(frame_type::HEADERS, flags::END_HEADERS, 5, b""));
    }

    #[test]
    fn continuation_round_trips() {
        let buf = raw(frame_type::CONTINUATION, flags::END_HEADERS, 1, b"more");
        let frame = Frame::Continuation {
            stream: 1,
            end_headers: true,
            fragment: b"more",
        };
        assert_eq!(one(&buf), frame);
        let mut out = Vec::new();
        write_continuation(&mut out, 1, b"more", true);
        assert_eq!(out, buf);
        let buf = raw(frame_type::CONTINUATION, 0, 1, b"");
        assert!(matches!(
            one(&buf),
            Frame::Continuation {
                end_headers: false,
                fragment: b"",
                ..
            }
        ));
    }

    #[test]
    fn priority_frame() {
        let buf = raw(frame_type::PRIORITY, 0, 5, b"\x00\x00\x00\x03\xff");
        assert_eq!(
            one(&buf),
            Frame::Priority {
                stream: 5,
                priority: Priority {
                    exclusive: false,
                    dependency: 3,
                    weight: 255
                }
            }
        );
    }

    #[test]
    fn rst_stream_round_trips() {
        let buf = raw(frame_type::RST_STREAM, 0, 3, &8u32.to_be_bytes());
        assert_eq!(
            one(&buf),
            Frame::RstStream {
                stream: 3,
                code: Cancel
            }
        );
        let mut out = Vec::new();
        write_rst_stream(&mut out, 3, Cancel);
        assert_eq!(out, buf);
        // An unknown code is kept.
        let buf = raw(frame_type::RST_STREAM, 0, 3, &0x1234u32.to_be_bytes());
        assert_eq!(
            one(&buf),
            Frame::RstStream {
                stream: 3,
                code: Unknown(0x1234)
            }
        );
    }

    #[test]
    fn settings_round_trip() {
        let params = [
            (Setting::HeaderTableSize, 4096),
            (Setting::EnablePush, 0),
            (Setting::MaxConcurrentStreams, 100),
            (Setting::InitialWindowSize, MAX_WINDOW_SIZE),
            (Setting::MaxFrameSize, MAX_FRAME_SIZE_LIMIT),
            (Setting::MaxHeaderListSize, 65536),
            (Setting::EnableConnectProtocol, 1),
            (Setting::Unknown(0x7f7f), 0xffff_ffff),
        ];
        let mut out = Vec::new();
        write_settings(&mut out, &params);
        assert_eq!(out.len(), HEADER_LEN + 6 * params.len());
        match one(&out) {
            Frame::Settings {
                ack: false,
                settings,
            } => {
                assert_eq!(settings.len(), params.len());
                assert!(!settings.is_empty());
                assert_eq!(settings.iter().len(), params.len());
                assert_eq!(settings.iter().collect::<Vec<_>>(), params);
            }
            other => panic!("{other:?}"),
        }
        // Ids by hand: 0x8 is RFC 8441's, 0x7 nobody's.
        let buf = raw(
            frame_type::SETTINGS,
            0,
            0,
            b"\x00\x08\x00\x00\x00\x01\x00\x07\x00\x00\x00\x09",
        );
        let Frame::Settings { settings, .. } = one(&buf) else {
            panic!()
        };
        assert_eq!(
            settings.into_iter().collect::<Vec<_>>(),
            [
                (Setting::EnableConnectProtocol, 1),
                (Setting::Unknown(7), 9)
            ]
        );
        // Empty SETTINGS and the ACK.
        let buf = raw(frame_type::SETTINGS, 0, 0, b"");
        assert!(
            matches!(one(&buf), Frame::Settings { ack: false, settings } if settings.is_empty())
        );
        let mut out = Vec::new();
        write_settings_ack(&mut out);
        assert_eq!(out, raw(frame_type::SETTINGS, flags::ACK, 0, b""));
        assert!(
            matches!(one(&out), Frame::Settings { ack: true, settings } if settings.is_empty())
        );
    }

    #[test]
    fn setting_ids_and_values() {
        for id in 0..=u16::MAX {
            assert_eq!(Setting::from_id(id).id(), id);
        }
        assert_eq!(Setting::from_id(4), Setting::InitialWindowSize);
        assert_eq!(Setting::from_id(8), Setting::EnableConnectProtocol);
        assert_eq!(Setting::from_id(7), Setting::Unknown(7));
        assert_eq!(Setting::HeaderTableSize.check(u32::MAX), Ok(()));
        assert_eq!(Setting::MaxConcurrentStreams.check(0), Ok(()));
        assert_eq!(Setting::MaxHeaderListSize.check(u32::MAX), Ok(()));
        assert_eq!(Setting::Unknown(0x99).check(u32::MAX), Ok(()));
        assert_eq!(Setting::EnablePush.check(1), Ok(()));
        assert_eq!(Setting::EnablePush.check(2), Err(ProtocolError));
        assert_eq!(Setting::EnableConnectProtocol.check(0), Ok(()));
        assert_eq!(Setting::EnableConnectProtocol.check(2), Err(ProtocolError));
        assert_eq!(Setting::InitialWindowSize.check(MAX_WINDOW_SIZE), Ok(()));
        assert_eq!(
            Setting::InitialWindowSize.check(MAX_WINDOW_SIZE + 1),
            Err(FlowControlError)
        );
        assert_eq!(Setting::MaxFrameSize.check(16_383), Err(ProtocolError));
        assert_eq!(Setting::MaxFrameSize.check(16_384), Ok(()));
        assert_eq!(Setting::MaxFrameSize.check(16_777_215), Ok(()));
        assert_eq!(Setting::MaxFrameSize.check(16_777_216), Err(ProtocolError));
    }

    #[test]
    fn settings_values_rejected_in_the_frame() {
        let setting = |id: u16, value: u32| {
            let mut p = id.to_be_bytes().to_vec();
            p.extend_from_slice(&value.to_be_bytes());
            raw(frame_type::SETTINGS, 0, 0, &p)
        };
        assert_conn(&setting(0x2, 2), ProtocolError);
        assert_conn(&setting(0x4, 0x8000_0000), FlowControlError);
        assert_conn(&setting(0x5, 16_383), ProtocolError);
        assert_conn(&setting(0x5, 16_777_216), ProtocolError);
        assert_conn(&setting(0x8, 2), ProtocolError);
        // Unknown ids with any value pass.
        assert!(matches!(
            one(&setting(0xff, u32::MAX)),
            Frame::Settings { .. }
        ));
        // A bad value after good ones still fails the frame.
        let mut p = b"\x00\x03\x00\x00\x00\x64".to_vec();
        p.extend_from_slice(b"\x00\x02\x00\x00\x00\x05");
        assert_conn(&raw(frame_type::SETTINGS, 0, 0, &p), ProtocolError);
    }

    #[test]
    fn push_promise_is_surfaced() {
        let buf = raw(
            frame_type::PUSH_PROMISE,
            flags::END_HEADERS,
            1,
            b"\x80\x00\x00\x02\x82",
        );
        assert_eq!(
            one(&buf),
            Frame::PushPromise {
                stream: 1,
                promised: 2,
                end_headers: true,
                fragment: b"\x82"
            }
        );
        let buf = raw(
            frame_type::PUSH_PROMISE,
            flags::PADDED,
            1,
            b"\x01\x00\x00\x00\x04ab\0",
        );
        assert_eq!(
            one(&buf),
            Frame::PushPromise {
                stream: 1,
                promised: 4,
                end_headers: false,
                fragment: b"ab"
            }
        );
    }

    #[test]
    fn ping_round_trips() {
        let data = *b"12345678";
        let buf = raw(frame_type::PING, 0, 0, &data);
        assert_eq!(one(&buf), Frame::Ping { ack: false, data });
        let mut out = Vec::new();
        write_ping(&mut out, data, true);
        assert_eq!(out, raw(frame_type::PING, flags::ACK, 0, &data));
        assert_eq!(one(&out), Frame::Ping { ack: true, data });
        let mut out = Vec::new();
        write_ping(&mut out, data, false);
        assert_eq!(out, buf);
    }

    #[test]
    fn goaway_round_trips() {
        let mut out = Vec::new();
        write_goaway(&mut out, 7, EnhanceYourCalm, b"too many resets");
        assert_eq!(
            one(&out),
            Frame::GoAway {
                last_stream: 7,
                code: EnhanceYourCalm,
                debug: b"too many resets"
            }
        );
        let buf = raw(
            frame_type::GOAWAY,
            0,
            0,
            b"\x80\x00\x00\x01\x00\x00\x00\x00",
        );
        assert_eq!(
            one(&buf),
            Frame::GoAway {
                last_stream: 1,
                code: NoError,
                debug: b""
            }
        );
    }

    #[test]
    fn window_update_round_trips() {
        let mut out = Vec::new();
        write_window_update(&mut out, 0, MAX_WINDOW_SIZE);
        assert_eq!(
            one(&out),
            Frame::WindowUpdate {
                stream: 0,
                increment: MAX_WINDOW_SIZE
            }
        );
        let mut out = Vec::new();
        write_window_update(&mut out, 3, 1);
        assert_eq!(out, raw(frame_type::WINDOW_UPDATE, 0, 3, b"\0\0\0\x01"));
        assert_eq!(
            one(&out),
            Frame::WindowUpdate {
                stream: 3,
                increment: 1
            }
        );
        // The increment's reserved bit is ignored.
        let buf = raw(frame_type::WINDOW_UPDATE, 0, 3, b"\x80\x00\x01\x00");
        assert_eq!(
            one(&buf),
            Frame::WindowUpdate {
                stream: 3,
                increment: 256
            }
        );
    }

    #[test]
    fn unknown_frame_types_are_returned() {
        let buf = raw(0x10, 0xff, 0, b"anything");
        assert_eq!(
            one(&buf),
            Frame::Unknown {
                ty: 0x10,
                flags: 0xff,
                stream: 0,
                payload: b"anything"
            }
        );
        let buf = raw(0xff, 0, 9, b"");
        assert_eq!(one(&buf).frame_type(), 0xff);
        assert_eq!(one(&buf).stream(), 9);
    }

    #[test]
    fn frames_that_need_a_stream_refuse_stream_0() {
        use frame_type::*;
        let cases: [(u8, u8, &[u8]); 6] = [
            (DATA, 0, b"x"),
            (HEADERS, flags::END_HEADERS, b"x"),
            (PRIORITY, 0, b"\0\0\0\x01\0"),
            (RST_STREAM, 0, b"\0\0\0\0"),
            (CONTINUATION, flags::END_HEADERS, b"x"),
            (PUSH_PROMISE, flags::END_HEADERS, b"\0\0\0\x02"),
        ];
        for (ty, fl, payload) in cases {
            assert_conn(&raw(ty, fl, 0, payload), ProtocolError);
            // From the header alone.
            assert_conn(&raw(ty, fl, 0, payload)[..HEADER_LEN], ProtocolError);
        }
    }

    #[test]
    fn connection_frames_refuse_a_stream() {
        use frame_type::*;
        assert_conn(&raw(SETTINGS, 0, 1, b""), ProtocolError);
        assert_conn(&raw(SETTINGS, flags::ACK, 1, b""), ProtocolError);
        assert_conn(&raw(PING, 0, 1, &[0; 8]), ProtocolError);
        assert_conn(&raw(GOAWAY, 0, 3, &[0; 8]), ProtocolError);
        // WINDOW_UPDATE and unknown types go either way.
        assert!(matches!(
            one(&raw(WINDOW_UPDATE, 0, 0, b"\0\0\0\x01")),
            Frame::WindowUpdate { .. }
        ));
        assert!(matches!(one(&raw(0x20, 0, 0, b"")), Frame::Unknown { .. }));
        assert!(matches!(one(&raw(0x20, 0, 1, b"")), Frame::Unknown { .. }));
    }

    #[test]
    fn fixed_lengths() {
        use frame_type::*;
        assert_conn(&raw(SETTINGS, 0, 0, &[0; 5]), FrameSizeError);
        assert_conn(&raw(SETTINGS, 0, 0, &[0; 7]), FrameSizeError);
        assert_conn(&raw(SETTINGS, flags::ACK, 0, &[0; 6]), FrameSizeError);
        assert_conn(&raw(PING, 0, 0, &[0; 7]), FrameSizeError);
        assert_conn(&raw(PING, flags::ACK, 0, &[0; 9]), FrameSizeError);
        assert_conn(&raw(WINDOW_UPDATE, 0, 0, &[0, 0, 1]), FrameSizeError);
        assert_conn(&raw(WINDOW_UPDATE, 0, 1, &[0, 0, 0, 1, 0]), FrameSizeError);
        assert_conn(&raw(RST_STREAM, 0, 1, &[0; 3]), FrameSizeError);
        assert_conn(&raw(RST_STREAM, 0, 1, &[0; 5]), FrameSizeError);
        assert_conn(&raw(GOAWAY, 0, 0, &[0; 7]), FrameSizeError);
        // Each of these from the header alone, before the payload.
        assert_conn(&raw(SETTINGS, 0, 0, &[0; 7])[..HEADER_LEN], FrameSizeError);
        assert_conn(&raw(PING, 0, 0, &[0; 7])[..HEADER_LEN], FrameSizeError);
        assert_conn(
            &raw(WINDOW_UPDATE, 0, 1, &[0; 5])[..HEADER_LEN],
            FrameSizeError,
        );
        assert_conn(
            &raw(RST_STREAM, 0, 1, &[0; 5])[..HEADER_LEN],
            FrameSizeError,
        );
        // Too short for the fields the flags announce.
        assert_conn(&raw(DATA, flags::PADDED, 1, b""), FrameSizeError);
        assert_conn(&raw(HEADERS, flags::PRIORITY, 1, &[0; 4]), FrameSizeError);
        assert_conn(
            &raw(HEADERS, flags::PRIORITY | flags::PADDED, 1, &[0; 5]),
            FrameSizeError,
        );
        assert_conn(&raw(HEADERS, flags::PADDED, 1, b""), FrameSizeError);
        assert_conn(&raw(PUSH_PROMISE, 0, 1, &[0; 3]), FrameSizeError);
        assert_conn(
            &raw(PUSH_PROMISE, flags::PADDED, 1, &[0; 4]),
            FrameSizeError,
        );
    }

    #[test]
    fn priority_length_is_a_stream_error() {
        let buf = raw(frame_type::PRIORITY, 0, 5, &[0; 4]);
        assert_stream(&buf, 5, FrameSizeError);
        let buf = raw(frame_type::PRIORITY, 0, 7, &[0; 6]);
        assert_stream(&buf, 7, FrameSizeError);
        // Only once the whole frame is in: the connection skips it.
        assert_eq!(
            parse(&buf[..buf.len() - 1], DEFAULT_MAX_FRAME_SIZE),
            Ok(None)
        );
    }

    #[test]
    fn priority_on_itself_is_a_stream_error() {
        let buf = raw(frame_type::PRIORITY, 0, 3, b"\x80\x00\x00\x03\x10");
        assert_stream(&buf, 3, ProtocolError);
        let buf = raw(frame_type::PRIORITY, 0, 3, b"\x00\x00\x00\x03\x10");
        assert_stream(&buf, 3, ProtocolError);
    }

    #[test]
    fn window_update_of_zero() {
        // On a stream: that stream; on stream 0: the connection (§6.9).
        let buf = raw(frame_type::WINDOW_UPDATE, 0, 5, b"\0\0\0\0");
        assert_stream(&buf, 5, ProtocolError);
        // Only the reserved bit set is still zero.
        let buf = raw(frame_type::WINDOW_UPDATE, 0, 5, b"\x80\0\0\0");
        assert_stream(&buf, 5, ProtocolError);
        assert_conn(
            &raw(frame_type::WINDOW_UPDATE, 0, 0, b"\0\0\0\0"),
            ProtocolError,
        );
    }

    #[test]
    fn padding_as_long_as_the_payload() {
        use frame_type::*;
        // DATA: payload of 3 (Pad Length + 2): padding 2 is fine, 3 is not.
        assert!(matches!(
            one(&raw(DATA, flags::PADDED, 1, b"\x02\0\0")),
            Frame::Data { .. }
        ));
        assert_conn(&raw(DATA, flags::PADDED, 1, b"\x03\0\0"), ProtocolError);
        assert_conn(&raw(DATA, flags::PADDED, 1, b"\xff\0\0"), ProtocolError);
        // HEADERS: what follows the Pad Length and priority fields.
        let p = b"\x01\0\0\0\0\x10\0";
        assert!(matches!(
            one(&raw(HEADERS, flags::PADDED | flags::PRIORITY, 1, p)),
            Frame::Headers { fragment: b"", .. }
        ));
        let p = b"\x02\0\0\0\0\x10\0";
        assert_conn(
            &raw(HEADERS, flags::PADDED | flags::PRIORITY, 1, p),
            ProtocolError,
        );
        assert_conn(&raw(HEADERS, flags::PADDED, 1, b"\x02a"), ProtocolError);
        // PUSH_PROMISE: what follows the promised stream id.
        assert_conn(
            &raw(PUSH_PROMISE, flags::PADDED, 1, b"\x01\0\0\0\x02"),
            ProtocolError,
        );
    }

    #[test]
    fn oversize_refused_from_the_header() {
        let buf = raw(frame_type::DATA, 0, 1, &[0; 100]);
        for max in [0, 1, 50, 99] {
            let e = parse(&buf[..HEADER_LEN], max).unwrap_err();
            assert!(e.is_connection());
            assert_eq!(e.code(), FrameSizeError);
            assert_eq!(parse(&buf, max), Err(e));
        }
        assert!(parse(&buf, 100).unwrap().is_some());
        assert_eq!(parse(&buf[..HEADER_LEN], 100), Ok(None));
        // The largest length the header can say.
        let head = [0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 1];
        assert_eq!(parse(&head, MAX_FRAME_SIZE_LIMIT), Ok(None));
        assert_eq!(
            parse(&head, DEFAULT_MAX_FRAME_SIZE).unwrap_err().code(),
            FrameSizeError
        );
        // Oversize comes before any other check.
        let buf = raw(frame_type::SETTINGS, 0, 1, &[0; 7]);
        assert_eq!(parse(&buf, 6).unwrap_err().code(), FrameSizeError);
    }

    /// A buffer of many frames, one of each kind the connection reads.
    fn sequence() -> Vec<u8> {
        let mut out = Vec::new();
        write_settings(
            &mut out,
            &[
                (Setting::MaxConcurrentStreams, 100),
                (Setting::EnableConnectProtocol, 1),
            ],
        );
        write_window_update(&mut out, 0, 1 << 20);
        out.extend(raw(
            frame_type::HEADERS,
            flags::PADDED | flags::PRIORITY,
            1,
            b"\x01\0\0\0\0\x0f\x82\x86\0",
        ));
        write_continuation(&mut out, 1, b"\x84", true);
        out.extend(raw(frame_type::DATA, flags::PADDED, 1, b"\x02hello\0\0"));
        write_data(&mut out, 1, b"", true);
        out.extend(raw(frame_type::PRIORITY, 0, 3, b"\0\0\0\x01\x07"));
        write_ping(&mut out, *b"pingpong", false);
        write_settings_ack(&mut out);
        write_rst_stream(&mut out, 1, Cancel);
        out.extend(raw(0x42, 0, 0, b"ext"));
        write_goaway(&mut out, 1, NoError, b"bye");
        out
    }

    /// Every frame in `buf`, with its end offset; panics on an error.
    fn parse_all(mut buf: &[u8]) -> (Vec<(Frame<'_>, usize)>, usize) {
        let mut frames = Vec::new();
        let mut at = 0;
        while let Some((frame, n)) = parse(buf, DEFAULT_MAX_FRAME_SIZE).unwrap() {
            at += n;
            frames.push((frame, at));
            buf = &buf[n..];
        }
        (frames, at)
    }

    #[test]
    fn incomplete_at_every_split_point() {
        let all = sequence();
        let (whole, end) = parse_all(&all);
        assert_eq!(end, all.len());
        assert_eq!(whole.len(), 12);
        // Every prefix parses to the frames wholly inside it, then Ok(None):
        // a reader that stops at any byte and resumes gets the same frames.
        for cut in 0..=all.len() {
            let (frames, at) = parse_all(&all[..cut]);
            let expected: Vec<_> = whole.iter().filter(|(_, e)| *e <= cut).cloned().collect();
            assert_eq!(frames, expected, "cut {cut}");
            let (rest, _) = parse_all(&all[at..]);
            assert_eq!(rest.len() + frames.len(), whole.len(), "cut {cut}");
            for ((a, _), (b, _)) in rest.iter().zip(&whole[frames.len()..]) {
                assert_eq!(a, b, "cut {cut}");
            }
        }
    }

    #[test]
    fn header_block_split_by_max_frame_size() {
        let block: Vec<u8> = (0..40_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for max in [
            1,
            2,
            7,
            100,
            16_384,
            20_000,
            39_999,
            40_000,
            40_001,
            MAX_FRAME_SIZE_LIMIT,
            u32::MAX,
            0,
        ] {
            let len = if max > 100 { block.len() } else { 300 };
            let block = &block[..len];
            let mut out = Vec::new();
            write_headers(&mut out, 3, block, true, max);
            let mut rest = &out[..];
            let mut again = Vec::new();
            let mut frames = 0;
            let mut ended = false;
            while !rest.is_empty() {
                let (frame, n) = parse(rest, MAX_FRAME_SIZE_LIMIT).unwrap().unwrap();
                assert!(!ended, "a frame after END_HEADERS");
                let (fragment, end_headers) = match frame {
                    Frame::Headers {
                        stream: 3,
                        end_stream: true,
                        end_headers,
                        priority: None,
                        fragment,
                    } => {
                        assert_eq!(frames, 0, "HEADERS first only");
                        (fragment, end_headers)
                    }
                    Frame::Continuation {
                        stream: 3,
                        end_headers,
                        fragment,
                    } => {
                        assert!(frames > 0);
                        (fragment, end_headers)
                    }
                    other => panic!("{other:?}"),
                };
                assert!(fragment.len() <= max.clamp(1, MAX_FRAME_SIZE_LIMIT) as usize);
                assert!(!fragment.is_empty());
                again.extend_from_slice(fragment);
                ended = end_headers;
                frames += 1;
                rest = &rest[n..];
            }
            assert!(ended, "max {max}");
            assert_eq!(again, block, "max {max}");
            let per = max.clamp(1, MAX_FRAME_SIZE_LIMIT) as usize;
            assert_eq!(frames, len.div_ceil(per), "max {max}");
        }
    }

    #[test]
    fn error_codes() {
        for code in 0..=0xdu32 {
            let e = ErrorCode::from_u32(code);
            assert!(!matches!(e, Unknown(_)), "{code}");
            assert_eq!(e.to_u32(), code);
            assert_eq!(u32::from(ErrorCode::from(code)), code);
        }
        assert_eq!(ErrorCode::from_u32(0xe), Unknown(0xe));
        assert_eq!(Unknown(0xdead).to_u32(), 0xdead);
        assert_eq!(Http11Required.to_u32(), 0xd);
        assert_eq!(FlowControlError.to_string(), "FLOW_CONTROL_ERROR");
        assert_eq!(Http11Required.to_string(), "HTTP_1_1_REQUIRED");
        assert_eq!(Unknown(0xdead).to_string(), "0xdead");
        let e = err(&raw(frame_type::PING, 0, 1, &[0; 8]));
        assert_eq!(
            e.to_string(),
            format!("HTTP/2 connection error PROTOCOL_ERROR: {}", e.reason())
        );
    }

    #[test]
    fn writers_clear_the_reserved_bit() {
        let mut out = Vec::new();
        write_rst_stream(&mut out, 0x8000_0005, NoError);
        assert_eq!(&out[5..9], &[0, 0, 0, 5]);
        let mut out = Vec::new();
        write_goaway(&mut out, u32::MAX, NoError, b"");
        assert_eq!(&out[9..13], &[0x7f, 0xff, 0xff, 0xff]);
    }
}
