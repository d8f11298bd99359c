//! `stream`: bulk throughput through the target. Each connection sends
//! binary messages of `--size` bytes back to back, keeping up to
//! `--window` of them in flight, while it reads their echoes on the other
//! half of the socket, so both directions stream at once. Run like
//! `pingpong` (aligned start, `--warmup` not counted, `--duration`
//! measured, closing handshake after); reports echoed payload MB/s
//! (10⁶ bytes), messages/s and per-message latency (from starting to send
//! a message to its whole echo, so it includes the wait behind the
//! messages ahead of it).
//!
//! The frames sent are built once per process (a few, each with its own
//! mask, taken in turn) and shared by its connections; echoes are checked
//! for opcode and length, and their payload is counted, not kept.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use lexopt::ValueExt;
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, Splitable};
use ringway_bench::client::{bounded, Failure, Phase, Transport, What, WsClient, MAX_FRAME};
use ringway_bench::report::r3;
use ringway_bench::ws;
use serde_json::json;

use crate::pingpong::{child_run, parent_run, Env, TimedOpts, Totals};
use crate::Opts;

/// Distinct pre-built frames per process (masks taken in turn).
const MASKS: usize = 4;
/// Largest read buffer a connection keeps.
const MAX_READ_BUF: usize = 256 << 10;
/// Smallest read buffer.
const MIN_READ_BUF: usize = 4 << 10;

/// `stream`'s options.
#[derive(Debug, Clone)]
pub struct StreamOpts(pub TimedOpts);

impl Default for StreamOpts {
    fn default() -> Self {
        Self(TimedOpts {
            size: 1 << 20,
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(10),
            window: 4,
        })
    }
}

impl StreamOpts {
    /// Take `--NAME` if it is ours.
    pub fn flag(&mut self, name: &str, p: &mut lexopt::Parser) -> Result<bool, lexopt::Error> {
        match name {
            "window" => self.0.window = p.value()?.parse::<usize>()?.clamp(1, 1024),
            _ => return self.0.flag(name, p),
        }
        Ok(true)
    }
}

/// Run the children, report. Returns the exit status.
pub fn parent(o: &Opts, s: &StreamOpts, argv: &[String]) -> anyhow::Result<i32> {
    let t = &s.0;
    let tot = parent_run(o, "stream", argv, t)?;
    let mb_per_sec = Totals::rate(tot.bytes, t.duration) / 1e6;
    let msgs_per_sec = Totals::rate(tot.messages, t.duration);
    if o.json {
        let own = json!({
            "window": t.window,
            "messages": tot.messages,
            "bytes": tot.bytes,
            "mb_per_sec": r3(mb_per_sec),
            "messages_per_sec": r3(msgs_per_sec),
        });
        println!(
            "{}",
            serde_json::to_string(&tot.report("stream", o, t, own))?
        );
    } else {
        let what = format!("{}-byte messages, {} in flight each", t.size, t.window);
        tot.head_human("stream", &what, o);
        println!(
            "  run      {:.1}s warmup + {:.1}s measured: {} messages echoed ({} bytes), \
             {mb_per_sec:.1} MB/s, {msgs_per_sec:.0} messages/s",
            t.warmup.as_secs_f64(),
            t.duration.as_secs_f64(),
            tot.messages,
            tot.bytes,
        );
        tot.tail_human();
    }
    Ok(tot.exit_code(o.n))
}

/// One load process.
pub fn child(o: &Opts, s: &StreamOpts) -> anyhow::Result<()> {
    let frames = Rc::new(frames(s.0.size, s.0.window.min(MASKS), seed()));
    child_run(o, &s.0, move |c, env| conn(c, env, frames.clone()))
}

/// `count` masked binary frames of `size` bytes, each with its own mask.
fn frames(size: usize, count: usize, mut rng: u32) -> Vec<Rc<Vec<u8>>> {
    let payload: Vec<u8> = (0..size).map(|i| i as u8).collect();
    (0..count.max(1))
        .map(|_| {
            rng = xorshift(rng);
            let mut out = Vec::with_capacity(size + 14);
            ws::write_frame(
                &mut out,
                ws::FIN | ws::OP_BINARY,
                &payload,
                Some(rng.to_ne_bytes()),
            );
            Rc::new(out)
        })
        .collect()
}

fn xorshift(mut x: u32) -> u32 {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    x
}

fn seed() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    (h.finish() as u32) | 1
}

/// What the writer and the reader of one connection share.
#[derive(Default)]
struct Shared {
    /// Start times of the messages sent and not yet echoed, oldest first.
    sent: VecDeque<Instant>,
    /// The window is over or a side failed: send nothing more.
    stop: bool,
    /// The first failure of either side.
    failure: Option<Failure>,
    /// Pong payloads owed to the server's pings.
    pongs: VecDeque<Vec<u8>>,
    /// The writer, waiting for room in the window.
    waker: Option<Waker>,
}

impl Shared {
    fn wake(&mut self) {
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    fn fail(&mut self, f: Failure) {
        self.failure.get_or_insert(f);
        self.stop = true;
        self.wake();
    }
}

/// What the writer does next.
enum Next {
    Data,
    Pong(Vec<u8>),
}

/// One connection's run: a writer and a reader on the two halves of the
/// socket until the window is over and every message sent has come back;
/// then the closing handshake.
async fn conn(c: WsClient, env: Rc<Env>, frames: Rc<Vec<Rc<Vec<u8>>>>) -> Result<(), Failure> {
    let (stream, rest) = c.into_parts();
    let mut reader = FrameReader::new(rest, read_buf_size(env.t.size));
    let (mut rh, mut wh) = stream.into_split();
    let shared = RefCell::new(Shared::default());
    monoio::join!(
        write_side(&mut wh, &shared, &env, &frames),
        read_side(&mut rh, &mut reader, &shared, &env)
    );
    if let Some(f) = shared.into_inner().failure {
        return Err(f);
    }
    let stream = rh.reunite(wh).map_err(|_| Failure {
        phase: Phase::Close,
        what: What::Other,
    })?;
    bounded(Phase::Close, env.o.timeouts.io, close(stream, &mut reader)).await
}

fn read_buf_size(size: usize) -> usize {
    (size + 14).clamp(MIN_READ_BUF, MAX_READ_BUF)
}

/// Send messages while the window has room, pongs first when owed.
async fn write_side<W: AsyncWriteRent>(
    w: &mut W,
    shared: &RefCell<Shared>,
    env: &Env,
    frames: &[Rc<Vec<u8>>],
) {
    let window = env.t.window;
    let mut k = 0usize;
    let mut mask = seed();
    loop {
        let next = poll_fn(|cx| {
            let mut s = shared.borrow_mut();
            if s.stop {
                Poll::Ready(None)
            } else if let Some(p) = s.pongs.pop_front() {
                Poll::Ready(Some(Next::Pong(p)))
            } else if s.sent.len() < window {
                s.sent.push_back(Instant::now());
                Poll::Ready(Some(Next::Data))
            } else {
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
        let buf = match next {
            None => return,
            Some(Next::Data) => {
                k += 1;
                frames[k % frames.len()].clone()
            }
            Some(Next::Pong(p)) => {
                mask = xorshift(mask);
                let mut out = Vec::with_capacity(p.len() + 6);
                ws::write_frame(
                    &mut out,
                    ws::FIN | ws::OP_PONG,
                    &p,
                    Some(mask.to_ne_bytes()),
                );
                Rc::new(out)
            }
        };
        let wrote = bounded(Phase::Echo, env.o.timeouts.io, async {
            let (r, _) = w.write_all(buf).await;
            r.map(|_| ()).map_err(What::from)
        })
        .await;
        if let Err(f) = wrote {
            shared.borrow_mut().fail(f);
            return;
        }
    }
}

/// Read echoes until the window is over and none is outstanding; the
/// first echo to complete after the window stops the writer.
async fn read_side<R: AsyncReadRent>(
    r: &mut R,
    reader: &mut FrameReader,
    shared: &RefCell<Shared>,
    env: &Env,
) {
    let size = env.t.size as u64;
    loop {
        {
            let s = shared.borrow();
            if s.failure.is_some() || (s.stop && s.sent.is_empty()) {
                return;
            }
        }
        let got = bounded(Phase::Echo, env.o.timeouts.io, reader.next(r)).await;
        let mut s = shared.borrow_mut();
        let f = match got {
            Ok(f) => f,
            Err(f) => return s.fail(f),
        };
        match f.first & 0x0f {
            ws::OP_PING => {
                s.pongs.push_back(f.control);
                s.wake();
            }
            ws::OP_PONG => {}
            ws::OP_CLOSE => {
                return s.fail(Failure {
                    phase: Phase::Echo,
                    what: What::Closed,
                })
            }
            _ if f.first == ws::FIN | ws::OP_BINARY && f.len == size => {
                let Some(sent) = s.sent.pop_front() else {
                    return s.fail(Failure {
                        phase: Phase::Echo,
                        what: What::Mismatch,
                    });
                };
                let now = Instant::now();
                env.record(sent, now, size);
                if env.window.over(now) {
                    s.stop = true;
                }
                s.wake();
            }
            _ => {
                return s.fail(Failure {
                    phase: Phase::Echo,
                    what: What::Mismatch,
                })
            }
        }
    }
}

/// Send close 1000 and wait for the server's close (§5.5.1).
async fn close(mut stream: Transport, reader: &mut FrameReader) -> Result<(), What> {
    let mut out = Vec::with_capacity(8);
    ws::write_frame(
        &mut out,
        ws::FIN | ws::OP_CLOSE,
        &ws::close_payload(1000),
        Some(seed().to_ne_bytes()),
    );
    let (r, _) = stream.write_all(out).await;
    r?;
    loop {
        if reader.next(&mut stream).await?.first & 0x0f == ws::OP_CLOSE {
            return Ok(());
        }
    }
}

/// A frame as the stream reader sees it: data payloads are counted and
/// dropped, control payloads kept.
#[derive(Debug, PartialEq, Eq)]
struct Got {
    first: u8,
    len: u64,
    control: Vec<u8>,
}

/// Reads frames from a socket through a bounded buffer, without keeping
/// data payloads (so a 1 MiB echo costs no 1 MiB buffer).
struct FrameReader {
    /// Unconsumed bytes are `buf[pos..]`.
    buf: Vec<u8>,
    pos: usize,
    cap: usize,
}

impl FrameReader {
    fn new(rest: Vec<u8>, cap: usize) -> Self {
        let mut buf = Vec::with_capacity(cap.max(rest.len()));
        buf.extend_from_slice(&rest);
        Self { buf, pos: 0, cap }
    }

    fn available(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Take the next whole frame from the buffer, or as much of a data
    /// payload as is there: `Ok(None)` means read more (and call again
    /// with `skip` still owed).
    fn take(&mut self, skip: &mut Option<(u8, u64, u64)>) -> Result<Option<Got>, What> {
        if let Some((first, len, left)) = skip {
            let n = (*left).min(self.available() as u64);
            self.pos += n as usize;
            *left -= n;
            if *left > 0 {
                return Ok(None);
            }
            let got = Got {
                first: *first,
                len: *len,
                control: Vec::new(),
            };
            *skip = None;
            return Ok(Some(got));
        }
        let Some(h) = ws::parse_header(&self.buf[self.pos..]) else {
            return Ok(None);
        };
        if h.mask.is_some() || h.frame_len().is_none_or(|l| l > MAX_FRAME) {
            return Err(What::Protocol);
        }
        if h.is_control() {
            if h.len > 125 || !h.fin() {
                return Err(What::Protocol);
            }
            let total = h.header_len + h.len as usize;
            if self.available() < total {
                return Ok(None);
            }
            let control = self.buf[self.pos + h.header_len..self.pos + total].to_vec();
            self.pos += total;
            return Ok(Some(Got {
                first: h.first,
                len: h.len,
                control,
            }));
        }
        self.pos += h.header_len;
        *skip = Some((h.first, h.len, h.len));
        self.take(skip)
    }

    /// Make room and read once more; EOF is an error.
    async fn fill<R: AsyncReadRent>(&mut self, r: &mut R) -> Result<(), What> {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > 0 && self.buf.capacity() - self.buf.len() < MIN_READ_BUF / 2 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        if self.buf.capacity() == self.buf.len() {
            self.buf.reserve(self.cap);
        }
        let len = self.buf.len();
        let buf = std::mem::take(&mut self.buf);
        let (res, slice) = r.read(buf.slice_mut(len..)).await;
        self.buf = slice.into_inner();
        match res? {
            0 => Err(What::Eof),
            _ => Ok(()),
        }
    }

    /// The next frame.
    async fn next<R: AsyncReadRent>(&mut self, r: &mut R) -> Result<Got, What> {
        let mut skip = None;
        loop {
            if let Some(got) = self.take(&mut skip)? {
                return Ok(got);
            }
            self.fill(r).await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed `bytes` to a reader in `chunk`-byte reads, as the socket would.
    fn frames_of(bytes: &[u8], chunk: usize) -> Result<Vec<Got>, What> {
        let mut r = FrameReader::new(Vec::new(), 64);
        let mut out = Vec::new();
        let mut skip = None;
        let mut fed = 0;
        loop {
            while let Some(g) = r.take(&mut skip)? {
                out.push(g);
            }
            if fed == bytes.len() {
                assert_eq!(r.available(), 0, "trailing bytes");
                return Ok(out);
            }
            if r.pos == r.buf.len() {
                r.buf.clear();
                r.pos = 0;
            }
            let n = chunk.min(bytes.len() - fed);
            r.buf.extend_from_slice(&bytes[fed..fed + n]);
            fed += n;
        }
    }

    #[test]
    fn reader_counts_data_keeps_control() {
        let mut b = Vec::new();
        ws::write_frame(&mut b, ws::FIN | ws::OP_BINARY, &[7; 1000], None);
        ws::write_frame(&mut b, ws::FIN | ws::OP_PING, b"hi", None);
        ws::write_frame(&mut b, ws::FIN | ws::OP_BINARY, &[1; 70000], None);
        ws::write_frame(&mut b, ws::FIN | ws::OP_BINARY, &[], None);
        for chunk in [1, 3, 13, 100, 4096, b.len()] {
            let got = frames_of(&b, chunk).unwrap();
            let summary: Vec<_> = got
                .iter()
                .map(|g| (g.first & 0x0f, g.len, g.control.clone()))
                .collect();
            assert_eq!(
                summary,
                [
                    (ws::OP_BINARY, 1000, vec![]),
                    (ws::OP_PING, 2, b"hi".to_vec()),
                    (ws::OP_BINARY, 70000, vec![]),
                    (ws::OP_BINARY, 0, vec![]),
                ],
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn reader_refuses_masked_and_oversized() {
        let mut masked = Vec::new();
        ws::write_frame(&mut masked, ws::FIN | ws::OP_TEXT, b"x", Some([1; 4]));
        assert_eq!(frames_of(&masked, 64).unwrap_err(), What::Protocol);
        let mut big = Vec::new();
        ws::write_header(&mut big, ws::FIN | ws::OP_BINARY, MAX_FRAME, None);
        assert_eq!(frames_of(&big, 64).unwrap_err(), What::Protocol);
        let mut long_ping = Vec::new();
        ws::write_frame(&mut long_ping, ws::FIN | ws::OP_PING, &[0; 126], None);
        assert_eq!(frames_of(&long_ping, 64).unwrap_err(), What::Protocol);
    }

    #[test]
    fn prebuilt_frames_unmask_to_the_payload() {
        let fs = frames(300, 4, 12345);
        assert_eq!(fs.len(), 4);
        let mut masks = Vec::new();
        for f in &fs {
            let mut f = f.to_vec();
            let h = ws::parse_header(&f).unwrap();
            assert_eq!((h.opcode(), h.len, h.fin()), (ws::OP_BINARY, 300, true));
            let m = h.mask.unwrap();
            masks.push(m);
            ws::apply_mask(&mut f[h.header_len..], m, 0);
            assert!(f[h.header_len..]
                .iter()
                .enumerate()
                .all(|(i, &b)| b == i as u8));
        }
        masks.dedup();
        assert_eq!(masks.len(), 4, "distinct masks");
        assert_eq!(read_buf_size(64), MIN_READ_BUF);
        assert_eq!(read_buf_size(1 << 20), MAX_READ_BUF);
    }
}
