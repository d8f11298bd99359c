//! The engine's one error type: what went wrong ([`Kind`]), on which side
//! ([`Side`]), whether the request may be passed to the next upstream
//! server ([`Retry`]), and the I/O error behind it. The status ringway
//! answers with comes from one function, [`Kind::status`]; the phases
//! never pick statuses themselves.
//!
//! Statuses follow nginx: a client that sent a bad head is 400 (414/431
//! when it is too large, 408 when too slow), a client that went away is
//! logged as 499, an upstream that refused, reset, closed early or sent a
//! bad response is 502 (no live upstream too), one that timed out is 504;
//! 503 is for limits.

use std::fmt;
use std::io;

/// Whose fault it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The client: a bad or slow request, or it went away.
    Client,
    /// The upstream: refused, reset, slow, or a bad response.
    Upstream,
    /// The configuration (nothing to answer with).
    Config,
    /// ringway itself.
    Internal,
}

/// Whether the request may go to the next upstream server after this
/// failure (nginx's `proxy_next_upstream error timeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Decided by the failure: a failed connect may always go on; a
    /// failure after the request was sent only for an idempotent method.
    Decided(bool),
    /// Only because the connection was a reused (pooled) one that the
    /// upstream had closed: retry the same server on a new connection.
    ReusedOnly,
}

/// What went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A malformed request (head or body framing).
    BadRequest(&'static str),
    /// The request head did not arrive in time.
    HeaderTimeout,
    /// The request body stalled.
    BodyTimeout,
    /// The request body is larger than `client_max_body_size`.
    BodyTooLarge,
    /// The request line does not fit the head buffer.
    UriTooLong,
    /// The header section does not fit, or has too many fields.
    HeadersTooLarge,
    /// A transfer coding ringway does not implement.
    NotImplemented(&'static str),
    /// Not HTTP/1.0 or 1.1.
    Version,
    /// No location matches the path.
    NoLocation,
    /// The client closed, reset, or stopped reading.
    ClientGone,
    /// Connecting to the upstream failed (refused, unreachable).
    ConnectFailed,
    /// Connecting to the upstream timed out.
    ConnectTimeout,
    /// The upstream closed before its response was complete.
    UpstreamClosed,
    /// The upstream connection failed (reset, other errors).
    UpstreamIo,
    /// The upstream did not send, or did not take, bytes in time.
    UpstreamTimeout,
    /// The upstream's response head is malformed, too large or ambiguous.
    BadResponse(&'static str),
    /// Every server of the group is down or already tried.
    NoLiveUpstream,
    /// Over a `limit_req` / `limit_conn` limit: the status to answer
    /// (`limit_req_status` / `limit_conn_status`, 503 by default).
    OverLimit(u16),
    /// Refused by the location's `access` rules (403).
    Forbidden,
    /// ringway could not go on (a misrouted fallback, say).
    Internal(&'static str),
    /// An HTTP/2 request the request check refused with an answer (400,
    /// 405, 421, or the connection's 431), and why.
    Refused(u16, &'static str),
}

impl Kind {
    /// The status ringway answers (or logs, for 499) for this failure.
    pub fn status(self) -> u16 {
        match self {
            Kind::BadRequest(_) => 400,
            Kind::Forbidden => 403,
            Kind::NoLocation => 404,
            Kind::HeaderTimeout | Kind::BodyTimeout => 408,
            Kind::BodyTooLarge => 413,
            Kind::UriTooLong => 414,
            Kind::HeadersTooLarge => 431,
            Kind::ClientGone => 499,
            Kind::Internal(_) => 500,
            Kind::NotImplemented(_) => 501,
            Kind::ConnectFailed
            | Kind::UpstreamClosed
            | Kind::UpstreamIo
            | Kind::BadResponse(_)
            | Kind::NoLiveUpstream => 502,
            Kind::OverLimit(status) | Kind::Refused(status, _) => status,
            Kind::ConnectTimeout | Kind::UpstreamTimeout => 504,
            Kind::Version => 505,
        }
    }

    /// The side a kind belongs to when nothing says otherwise.
    pub fn side(self) -> Side {
        match self {
            Kind::BadRequest(_)
            | Kind::HeaderTimeout
            | Kind::BodyTimeout
            | Kind::BodyTooLarge
            | Kind::UriTooLong
            | Kind::HeadersTooLarge
            | Kind::NotImplemented(_)
            | Kind::Version
            | Kind::NoLocation
            | Kind::ClientGone
            | Kind::OverLimit(_)
            | Kind::Forbidden
            | Kind::Refused(..) => Side::Client,
            Kind::ConnectFailed
            | Kind::ConnectTimeout
            | Kind::UpstreamClosed
            | Kind::UpstreamIo
            | Kind::UpstreamTimeout
            | Kind::BadResponse(_)
            | Kind::NoLiveUpstream => Side::Upstream,
            Kind::Internal(_) => Side::Internal,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Kind::BadRequest(why)
            | Kind::NotImplemented(why)
            | Kind::BadResponse(why)
            | Kind::Internal(why)
            | Kind::Refused(_, why) => why,
            Kind::HeaderTimeout => "request head timed out",
            Kind::BodyTimeout => "request body timed out",
            Kind::BodyTooLarge => "request body larger than client_max_body_size",
            Kind::UriTooLong => "request line too long",
            Kind::HeadersTooLarge => "request header section too large",
            Kind::Version => "unsupported HTTP version",
            Kind::NoLocation => "no location matches",
            Kind::ClientGone => "client went away",
            Kind::ConnectFailed => "upstream connect failed",
            Kind::ConnectTimeout => "upstream connect timed out",
            Kind::UpstreamClosed => "upstream closed early",
            Kind::UpstreamIo => "upstream connection failed",
            Kind::UpstreamTimeout => "upstream timed out",
            Kind::NoLiveUpstream => "no live upstream",
            Kind::OverLimit(_) => "over a limit",
            Kind::Forbidden => "access forbidden by rule",
        }
    }
}

/// A failure of one request.
#[derive(Debug)]
pub struct Error {
    pub kind: Kind,
    pub side: Side,
    pub retry: Retry,
    source: Option<io::Error>,
}

impl Error {
    pub fn new(kind: Kind) -> Error {
        Error {
            kind,
            side: kind.side(),
            retry: Retry::Decided(false),
            source: None,
        }
    }

    pub fn with_source(mut self, e: io::Error) -> Error {
        self.source = Some(e);
        self
    }

    pub fn with_retry(mut self, retry: Retry) -> Error {
        self.retry = retry;
        self
    }

    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    /// An I/O failure talking to the upstream: a timeout is 504, an early
    /// end of stream "closed", anything else an I/O failure (502).
    pub fn upstream_io(e: io::Error) -> Error {
        let kind = match e.kind() {
            io::ErrorKind::TimedOut => Kind::UpstreamTimeout,
            io::ErrorKind::UnexpectedEof => Kind::UpstreamClosed,
            _ => Kind::UpstreamIo,
        };
        Error::new(kind).with_source(e)
    }

    /// An I/O failure talking to the client.
    pub fn client_io(e: io::Error) -> Error {
        Error::new(Kind::ClientGone).with_source(e)
    }

    /// Whether the client can still be told (it did not go away).
    pub fn answerable(&self) -> bool {
        self.kind != Kind::ClientGone
    }
}

impl From<Kind> for Error {
    fn from(kind: Kind) -> Error {
        Error::new(kind)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.describe())?;
        if let Some(e) = &self.source {
            write!(f, ": {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}

impl From<crate::http::HeadError> for Kind {
    fn from(e: crate::http::HeadError) -> Kind {
        use crate::http::HeadError;
        match e {
            HeadError::Malformed(why) => Kind::BadRequest(why),
            HeadError::UriTooLong => Kind::UriTooLong,
            HeadError::HeadersTooLarge | HeadError::TooManyHeaders => Kind::HeadersTooLarge,
            HeadError::NotImplemented(why) => Kind::NotImplemented(why),
            HeadError::Version => Kind::Version,
        }
    }
}

impl From<crate::http::response::BadResponse> for Kind {
    fn from(e: crate::http::response::BadResponse) -> Kind {
        match e {
            crate::http::response::BadResponse::TooLarge => {
                Kind::BadResponse("response head too large")
            }
            crate::http::response::BadResponse::Malformed(why) => Kind::BadResponse(why),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn statuses_come_from_one_place() {
        let cases = [
            (Kind::BadRequest("x"), 400, Side::Client),
            (Kind::NoLocation, 404, Side::Client),
            (Kind::HeaderTimeout, 408, Side::Client),
            (Kind::BodyTooLarge, 413, Side::Client),
            (Kind::UriTooLong, 414, Side::Client),
            (Kind::HeadersTooLarge, 431, Side::Client),
            (Kind::ClientGone, 499, Side::Client),
            (Kind::NoLiveUpstream, 502, Side::Upstream),
            (Kind::ConnectFailed, 502, Side::Upstream),
            (Kind::OverLimit(503), 503, Side::Client),
            (Kind::Refused(421, "x"), 421, Side::Client),
            (Kind::Refused(405, "x"), 405, Side::Client),
            (Kind::UpstreamTimeout, 504, Side::Upstream),
            (Kind::ConnectTimeout, 504, Side::Upstream),
        ];
        for (kind, status, side) in cases {
            let e = Error::new(kind);
            assert_eq!((e.status(), e.side), (status, side), "{kind:?}");
        }
    }

    #[test]
    fn io_errors_map_and_keep_their_source() {
        let e = Error::upstream_io(io::ErrorKind::TimedOut.into());
        assert_eq!(e.kind, Kind::UpstreamTimeout);
        let e = Error::upstream_io(io::Error::from_raw_os_error(libc::ECONNRESET));
        assert_eq!(e.status(), 502);
        assert!(e.source().is_some());
        assert!(e.to_string().starts_with("upstream connection failed: "));
        let e = Error::client_io(io::ErrorKind::BrokenPipe.into());
        assert!(!e.answerable());
        assert_eq!(Error::new(Kind::ConnectFailed).retry, Retry::Decided(false));
    }
}
