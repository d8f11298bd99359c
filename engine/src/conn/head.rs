//! Phase `ReadHead`: read until one complete request head is in, parse it
//! once. Head limits and timeouts come from the listen address's default
//! server, as in nginx (the Host is not known before the head is read).
//!
//! The first byte of a request must come within `client_header_timeout`
//! (on a new connection) or `keepalive_timeout` (between requests); once
//! bytes arrive, the whole head must follow within `client_header_timeout`
//! (408). A connection that closes between requests just closes.

use std::time::{Duration, Instant};

use tracing::debug;

use super::{Conn, Done, Next, Phase};
use crate::error::{Error, Kind};
use crate::http::request::{self, Parse};
use crate::transport::Transport;

impl<T: Transport> Conn<T> {
    pub(super) async fn read_head(&mut self) -> Phase {
        let (max_headers, max_len, line_max, header_timeout, keepalive_timeout) = {
            let config = &self.snap.config;
            let s = self.listen.select(config, None);
            (
                s.max_headers,
                s.client_header_buffer_size,
                s.header_line_max,
                s.client_header_timeout,
                s.keepalive_timeout,
            )
        };
        let started = Instant::now();
        let fail = |kind: Kind| {
            Phase::Finish(Box::new(Done {
                server: None,
                req: None,
                started,
                status: kind.status(),
                body_bytes: 0,
                error: Some(Error::new(kind)),
                next: Next::Close,
                upstream: None,
                location: None,
                error_page: false,
                uri: None,
            }))
        };
        let first_wait = if self.first || !self.buf.is_empty() {
            header_timeout
        } else {
            keepalive_timeout
        };
        let mut deadline = started + first_wait;
        let mut buf = std::mem::take(&mut self.buf);
        loop {
            if !buf.is_empty() {
                match request::parse(buf, max_headers, max_len) {
                    Ok(Parse::Complete(req)) => {
                        let over =
                            line_max.and_then(|(n, size)| request::fits_buffers(&req, n, size));
                        if let Some(e) = over {
                            return fail(Kind::from(e));
                        }
                        self.first = false;
                        return Phase::Route(req);
                    }
                    Ok(Parse::Partial(b)) => buf = b,
                    Err(e) => return fail(Kind::from(e)),
                }
            }
            let was_empty = buf.is_empty();
            let left = deadline.saturating_duration_since(Instant::now());
            match read_some(&self.io, &mut buf, max_len, left).await {
                Read::Bytes => {
                    if was_empty {
                        deadline = Instant::now() + header_timeout;
                    }
                }
                Read::Timeout if buf.is_empty() && !self.first => return Phase::Close,
                Read::Timeout => return fail(Kind::HeaderTimeout),
                Read::Closed if buf.is_empty() => return Phase::Close,
                Read::Closed => {
                    debug!(client = %self.peer, "client closed mid-request");
                    return Phase::Close;
                }
            }
        }
    }
}

enum Read {
    Bytes,
    Timeout,
    /// End of stream, a reset, or a full buffer that still is no head.
    Closed,
}

async fn read_some<T: Transport>(io: &T, buf: &mut Vec<u8>, max: usize, left: Duration) -> Read {
    if left.is_zero() {
        return Read::Timeout;
    }
    match monoio::time::timeout(left, io.read_append(buf, max)).await {
        Err(_) => Read::Timeout,
        Ok(Err(_)) | Ok(Ok(0)) => Read::Closed,
        Ok(Ok(_)) => Read::Bytes,
    }
}
