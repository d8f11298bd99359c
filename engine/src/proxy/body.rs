//! Message bodies through the proxy, delimited by the message's one
//! framing decision (RFC 9112 §6, `http::framing`): a length, chunked, or
//! until the sender closes. Bytes that follow the body (a pipelined next
//! request, or bytes an upstream should not have sent) are kept apart for
//! the caller ([`BodyReader::rest`]).
//!
//! A [`BodyReader`] pulls the body from a transport piece by piece; a
//! chunked body is decoded strictly and handed out re-framed as canonical
//! chunks (`http::chunked`), or decoded for an HTTP/1.0 client, so the
//! framing the receiver parses is ringway's, never the sender's bytes.
//! [`relay`] writes the pieces to another transport as they come; the
//! buffering mode of `proxy::http` collects them first. The reader borrows
//! a pooled buffer only while it reads.

use std::cell::Cell;
use std::io;
use std::time::Duration;

use super::pool::BufPool;
use crate::http::chunked::{self, ChunkedDecoder};
use crate::http::BodyKind;
use crate::transport::{self, Pending, Transport};

#[derive(Debug)]
pub enum BodyError {
    /// Reading from the sender failed or timed out (or it closed early).
    Read(io::Error),
    /// Writing to the receiver failed or timed out.
    Write(io::Error),
    /// The chunked framing was broken.
    Framing(&'static str),
    /// The body grew past the `max` it was allowed.
    TooLarge,
}

enum State {
    Length { left: u64 },
    Chunked { dec: ChunkedDecoder, dechunk: bool },
    UntilClose,
    Done,
}

/// One piece of a body, as it goes to the receiver.
pub struct Step<'r> {
    pub data: &'r [u8],
    /// The body ends with this piece.
    pub last: bool,
}

/// What a body reader needs to know.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// The longest wait for the sender's next bytes.
    pub read_timeout: Duration,
    /// Largest payload relayed (0: no limit). A declared length is checked
    /// before relaying starts; this bounds chunked bodies.
    pub max: u64,
    /// Most bytes of chunked trailer fields accepted (they are dropped).
    pub max_trailer: usize,
}

pub struct BodyReader<'a, F: Transport> {
    from: &'a F,
    pool: &'a BufPool,
    lim: BodyLimits,
    state: State,
    /// Bytes already read with the head; consumed before any read.
    early: &'a [u8],
    early_used: bool,
    buf: Option<Box<[u8]>>,
    /// Re-framed output of the last chunked piece.
    out: Vec<u8>,
    total: u64,
    rest: Vec<u8>,
}

impl<F: Transport> Drop for BodyReader<'_, F> {
    fn drop(&mut self) {
        if let Some(b) = self.buf.take() {
            self.pool.give(b);
        }
    }
}

impl<'a, F: Transport> BodyReader<'a, F> {
    /// A reader of a `kind` body from `from`, whose first bytes (maybe all
    /// of it, maybe more) are `early`. `dechunk`: hand a chunked body out
    /// decoded (the receiver is an HTTP/1.0 client, delimited by close).
    pub fn new(
        from: &'a F,
        pool: &'a BufPool,
        kind: BodyKind,
        early: &'a [u8],
        lim: BodyLimits,
        dechunk: bool,
    ) -> Self {
        let (state, rest) = match kind {
            BodyKind::None | BodyKind::Length(0) => (State::Done, early.to_vec()),
            BodyKind::Length(n) => (State::Length { left: n }, Vec::new()),
            BodyKind::Chunked => (
                State::Chunked {
                    dec: ChunkedDecoder::new(lim.max_trailer),
                    dechunk,
                },
                Vec::new(),
            ),
            BodyKind::UntilClose => (State::UntilClose, Vec::new()),
        };
        BodyReader {
            from,
            pool,
            lim,
            state,
            early,
            early_used: false,
            buf: None,
            out: Vec::new(),
            total: 0,
            rest,
        }
    }

    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Payload bytes handed out so far.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The bytes that followed the body (once it is done).
    pub fn rest(&self) -> &[u8] {
        &self.rest
    }

    pub fn take_rest(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.rest)
    }

    /// The next piece from the bytes read with the head only: never waits.
    /// `None` when there are none left to take.
    pub fn next_early(&mut self) -> Result<Option<Step<'_>>, BodyError> {
        if self.is_done() {
            return Ok(Some(Step {
                data: &[],
                last: true,
            }));
        }
        let input = self.early;
        if self.early_used || input.is_empty() {
            self.early_used = true;
            return Ok(None);
        }
        self.early_used = true;
        let (lim, state, total, out, rest) = (
            &self.lim,
            &mut self.state,
            &mut self.total,
            &mut self.out,
            &mut self.rest,
        );
        process(state, lim, total, input, out, rest).map(Some)
    }

    /// The next piece of the body, reading as needed.
    pub async fn next(&mut self) -> Result<Step<'_>, BodyError> {
        if !self.early_used && !self.is_done() && !self.early.is_empty() {
            return Ok(self.next_early()?.expect("early bytes are there"));
        }
        self.early_used = true;
        if self.is_done() {
            return Ok(Step {
                data: &[],
                last: true,
            });
        }
        let pool = self.pool;
        let buf = self.buf.get_or_insert_with(|| pool.take());
        let got = transport::read_timeout(self.from, buf, self.lim.read_timeout)
            .await
            .map_err(BodyError::Read)?;
        if got == 0 {
            if let State::UntilClose = self.state {
                self.state = State::Done;
                return Ok(Step {
                    data: &[],
                    last: true,
                });
            }
            return Err(BodyError::Read(io::ErrorKind::UnexpectedEof.into()));
        }
        let input = &self.buf.as_ref().expect("filled above")[..got];
        process(
            &mut self.state,
            &self.lim,
            &mut self.total,
            input,
            &mut self.out,
            &mut self.rest,
        )
    }
}

/// Consume `input` (early bytes or one read): the piece it yields, from
/// `input` itself or re-framed into `out`.
fn process<'o>(
    state: &mut State,
    lim: &BodyLimits,
    total: &mut u64,
    input: &'o [u8],
    out: &'o mut Vec<u8>,
    rest: &mut Vec<u8>,
) -> Result<Step<'o>, BodyError> {
    let step = match state {
        State::Done => Step {
            data: &[],
            last: true,
        },
        State::Length { left } => {
            let n = (*left).min(input.len() as u64) as usize;
            *left -= n as u64;
            *total += n as u64;
            let last = *left == 0;
            if last {
                *rest = input[n..].to_vec();
                *state = State::Done;
            }
            Step {
                data: &input[..n],
                last,
            }
        }
        State::Chunked { dec, dechunk } => {
            out.clear();
            let mut payload = 0u64;
            let dechunk = *dechunk;
            let end = dec
                .feed(input, |d| {
                    payload += d.len() as u64;
                    if dechunk {
                        out.extend_from_slice(d);
                    } else {
                        chunked::encode_chunk(out, d);
                    }
                })
                .map_err(|e| BodyError::Framing(e.0))?;
            *total += payload;
            if let Some(end) = end {
                if !dechunk {
                    out.extend_from_slice(chunked::LAST_CHUNK);
                }
                *rest = input[end..].to_vec();
                *state = State::Done;
            }
            Step {
                data: out,
                last: end.is_some(),
            }
        }
        State::UntilClose => {
            *total += input.len() as u64;
            Step {
                data: input,
                last: false,
            }
        }
    };
    if lim.max > 0 && *total > lim.max {
        return Err(BodyError::TooLarge);
    }
    Ok(step)
}

/// Write the rest of `reader`'s body to `to` as it arrives. Returns the
/// payload length. `answered_early`, when given, is set when `to` had
/// started to answer before the body's last bytes were written: it cannot
/// have read the whole body, so its connection must not carry another
/// request (nginx does the same).
pub async fn relay<F: Transport, T: Transport>(
    reader: &mut BodyReader<'_, F>,
    to: &T,
    send_timeout: Duration,
    answered_early: Option<&Cell<bool>>,
) -> Result<u64, BodyError> {
    loop {
        let step = reader.next().await?;
        if step.last {
            if let Some(flag) = answered_early {
                if to.pending() != Pending::Nothing {
                    flag.set(true);
                }
            }
        }
        if !step.data.is_empty() {
            to.write_all(step.data, send_timeout)
                .await
                .map_err(BodyError::Write)?;
        }
        if step.last {
            return Ok(reader.total());
        }
    }
}
