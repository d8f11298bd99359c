//! The HTTP/2 server connection (`h2::conn`) as a whole: a client's bytes
//! in, with a caller that answers every request, releases what it reads
//! and now and then sends, resets or shuts down. Never a panic; every
//! byte the connection writes parses as whole frames whose header blocks
//! decode; its bookkeeping holds (`Connection::assert_invariants`: open
//! streams within the limit, every byte of the receive window accounted
//! for); it holds no more memory than its limits allow; `recv` consumes
//! no more than it is given, and after an error stays failed.
//!
//! The first byte picks a configuration and the mode:
//! - even: the rest are raw bytes after a valid preface and SETTINGS,
//!   fed in pieces whose size the second byte picks;
//! - odd: the rest are operations, each a byte and its arguments, that
//!   build frames with `frame.rs`'s writers and HPACK-encoded requests, or
//!   act as the caller (send, release, reset, shut down, let time pass).
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use ringway::h2::conn::{ConnError, Connection, Event, H2Config};
use ringway::h2::fields::Scratch;
use ringway::h2::frame::{self, ErrorCode, Frame, Setting, MAX_FRAME_SIZE_LIMIT, PREFACE};
use ringway::h2::hpack::{Decoder, Encoder};

fn config(pick: u8) -> H2Config {
    match pick & 3 {
        0 => H2Config::default(),
        1 => H2Config {
            max_concurrent_streams: 2,
            connection_window_size: 65_535,
            max_header_list_size: 256,
            abuse_burst: 5,
            abuse_refill_per_sec: 1,
            max_queued_control: 256,
            header_table_size: 0,
            ..H2Config::default()
        },
        2 => H2Config {
            enable_connect_protocol: true,
            initial_window_size: 1 << 20,
            connection_window_size: 1 << 24,
            ..H2Config::default()
        },
        _ => H2Config {
            max_frame_size: 1 << 20,
            header_table_size: 65_536,
            abuse_burst: 1_000_000,
            ..H2Config::default()
        },
    }
}

/// The test client's side: the connection, the caller's state, and the
/// client's decoder for the server's header blocks.
struct Harness {
    conn: Connection,
    scratch: Scratch,
    now: Instant,
    dec: Decoder,
    /// Streams the caller knows (a Request event, not yet gone).
    known: Vec<u32>,
    /// Bytes the caller read and will release.
    to_release: Vec<(u32, usize)>,
    failed: Option<ConnError>,
    max_streams: usize,
    /// What `heap_bytes` may be after `poll_transmit`.
    heap_limit: usize,
}

impl Harness {
    fn new(cfg: H2Config) -> Harness {
        let now = Instant::now();
        let cfg = cfg.normalized();
        let block_cap = cfg.max_header_list_size as usize + 1024;
        let table = cfg.header_table_size.max(4096) as usize;
        Harness {
            conn: Connection::new(&cfg, now),
            scratch: Scratch::default(),
            now,
            dec: Decoder::new(4096),
            known: Vec::new(),
            to_release: Vec::new(),
            failed: None,
            max_streams: cfg.max_concurrent_streams as usize,
            heap_limit: 5 * table
                + 1024
                + 2 * block_cap
                + 2 * 32 * cfg.max_concurrent_streams as usize
                + 64,
        }
    }

    /// Feeds `buf`, returning what was consumed; acts on the events as a
    /// caller would.
    fn feed(&mut self, buf: &[u8]) -> usize {
        let mut requests = Vec::new();
        let mut gone = Vec::new();
        let mut reads = Vec::new();
        let result = self
            .conn
            .recv(self.now, buf, &mut self.scratch, |e| match e {
                Event::Request { stream, fields, .. } => {
                    // Every field is readable; the pseudo ones are there.
                    assert!(fields.method().is_some());
                    for f in fields.iter() {
                        assert!(!f.name.is_empty() && !f.name.starts_with(b":"));
                    }
                    requests.push(stream);
                }
                Event::Trailers { fields, .. } => assert!(fields.method().is_none()),
                Event::Data { stream, data, .. } => reads.push((stream, data.len())),
                Event::Reset { stream, .. } | Event::StreamError { stream, .. } => {
                    gone.push(stream)
                }
                Event::Refused { .. }
                | Event::GoAway { .. }
                | Event::SettingsChanged
                | Event::WindowOpened { .. } => {}
            });
        self.conn.assert_invariants();
        assert!(self.conn.open_streams() <= self.max_streams);
        for s in &requests {
            assert!(!self.known.contains(s), "stream {s} opened twice");
        }
        self.known.extend(requests);
        self.known.retain(|s| !gone.contains(s));
        self.to_release.extend(reads);
        match result {
            Ok(n) => {
                assert!(self.failed.is_none(), "recv after an error succeeded");
                assert!(n <= buf.len());
                n
            }
            Err(e) => {
                if let Some(prev) = self.failed {
                    assert_eq!(prev, e, "the same error every time");
                }
                self.failed = Some(e);
                assert!(self.conn.is_closed());
                0
            }
        }
    }

    /// Takes the output and checks it.
    fn drain(&mut self) {
        let mut out = Vec::new();
        self.conn.poll_transmit(&mut out);
        assert!(!self.conn.wants_write());
        assert!(
            self.conn.heap_bytes() <= self.heap_limit,
            "{} bytes held",
            self.conn.heap_bytes()
        );
        check_frames(&out, &mut self.dec);
    }

    /// The caller answers the requests it knows and releases what it read.
    fn act(&mut self, step: u8) {
        for (s, n) in std::mem::take(&mut self.to_release) {
            self.conn.release(s, n);
        }
        let known = std::mem::take(&mut self.known);
        for &s in &known {
            if step & 1 == 0 {
                let _ = self
                    .conn
                    .send_headers(s, [(&b":status"[..], &b"200"[..])], false);
                let _ = self.conn.send_data(s, b"hello", step & 2 == 0, self.now);
            }
        }
        self.known = known;
        self.conn.assert_invariants();
    }
}

/// Every frame whole and parseable; header blocks contiguous and
/// decodable; nothing a server may not send.
fn check_frames(mut out: &[u8], dec: &mut Decoder) {
    let mut block: Option<(u32, Vec<u8>)> = None;
    while !out.is_empty() {
        let (f, n) = match frame::parse(out, MAX_FRAME_SIZE_LIMIT) {
            Ok(Some(x)) => x,
            other => panic!("ringway wrote a bad frame: {other:?}"),
        };
        out = &out[n..];
        let (stream, fragment, end_headers) = match f {
            Frame::Headers {
                stream,
                fragment,
                end_headers,
                ..
            } => {
                assert!(block.is_none(), "HEADERS inside a header block");
                (stream, fragment, end_headers)
            }
            Frame::Continuation {
                stream,
                fragment,
                end_headers,
            } => {
                let (s, _) = block.as_ref().expect("CONTINUATION after HEADERS");
                assert_eq!(*s, stream);
                (stream, fragment, end_headers)
            }
            Frame::PushPromise { .. } | Frame::Priority { .. } | Frame::Unknown { .. } => {
                panic!("ringway wrote {f:?}")
            }
            Frame::Ping { ack, .. } => {
                assert!(ack);
                assert!(block.is_none());
                continue;
            }
            Frame::Data { stream, .. } | Frame::RstStream { stream, .. } => {
                assert!(stream & 1 == 1);
                assert!(block.is_none());
                continue;
            }
            _ => {
                assert!(block.is_none());
                continue;
            }
        };
        let b = block.get_or_insert((stream, Vec::new()));
        b.1.extend_from_slice(fragment);
        if end_headers {
            let (_, bytes) = block.take().unwrap();
            dec.decode(&bytes, usize::MAX, &mut Vec::new(), |_, _, _| {})
                .expect("ringway's header blocks decode");
        }
    }
    assert!(block.is_none(), "a header block left open");
}

/// A cursor over the operations' bytes.
struct Ops<'a>(&'a [u8]);

impl Ops<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }
}

const REQUESTS: [&[(&str, &str)]; 5] = [
    &[
        (":method", "GET"),
        (":scheme", "https"),
        (":path", "/"),
        (":authority", "a"),
    ],
    &[
        (":method", "POST"),
        (":scheme", "https"),
        (":path", "/up"),
        ("content-length", "5"),
    ],
    &[
        (":method", "CONNECT"),
        (":protocol", "websocket"),
        (":scheme", "https"),
        (":path", "/ws"),
        (":authority", "a"),
    ],
    &[(":method", "CONNECT"), (":authority", "a:443")],
    &[(":method", "GET"), (":path", "/"), ("Bad", "x")],
];

fn run_ops(h: &mut Harness, mut ops: Ops<'_>) {
    let mut enc = Encoder::new();
    let mut wire = PREFACE.to_vec();
    frame::write_settings(&mut wire, &[]);
    let mut next = 1u32;
    // Bounded by the input: every turn takes at least one byte.
    while !ops.0.is_empty() {
        let op = ops.byte();
        let pick = |b: u8, next: u32| 1 + 2 * (u32::from(b) % (next / 2 + 2));
        match op % 20 {
            0 | 1 => {
                let which = ops.byte();
                let fl = ops.byte();
                let id = if fl & 0x80 != 0 {
                    pick(ops.byte(), next)
                } else {
                    next
                };
                next = next.max(id + 2);
                let list = REQUESTS[usize::from(which) % REQUESTS.len()];
                let mut block = Vec::new();
                enc.encode(
                    list.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())),
                    &mut block,
                );
                let max = if fl & 2 != 0 { 3 } else { 16_384 };
                frame::write_headers(&mut wire, id, &block, fl & 1 != 0, max);
            }
            2 => {
                let id = pick(ops.byte(), next);
                let len = usize::from(ops.byte()) * 64;
                let fl = ops.byte();
                let payload = vec![b'd'; len];
                frame::write_data(&mut wire, id, &payload, fl & 1 != 0);
            }
            3 => {
                let id = pick(ops.byte(), next);
                frame::write_rst_stream(&mut wire, id, ErrorCode::from_u32(u32::from(ops.byte())));
            }
            4 => {
                let id = if ops.byte() & 1 == 0 {
                    0
                } else {
                    pick(ops.byte(), next)
                };
                let inc = ops.u32() & 0x7fff_ffff;
                if inc == 0 {
                    frame::write_frame_header(
                        &mut wire,
                        frame::frame_type::WINDOW_UPDATE,
                        0,
                        id,
                        4,
                    );
                    wire.extend_from_slice(&[0; 4]);
                } else {
                    frame::write_window_update(&mut wire, id, inc);
                }
            }
            5 => {
                let setting = Setting::from_id(u16::from(ops.byte() % 9));
                let value = ops.u32();
                if setting.check(value).is_ok() {
                    frame::write_settings(&mut wire, &[(setting, value)]);
                }
            }
            6 => frame::write_ping(&mut wire, [ops.byte(); 8], false),
            7 => {
                let id = pick(ops.byte(), next);
                let dep = pick(ops.byte(), next);
                frame::write_frame_header(&mut wire, frame::frame_type::PRIORITY, 0, id, 5);
                wire.extend_from_slice(&dep.to_be_bytes());
                wire.push(ops.byte());
            }
            8 => {
                let id = pick(ops.byte(), next);
                let len = usize::from(ops.byte() % 32);
                let frag: Vec<u8> = (0..len).map(|_| ops.byte()).collect();
                frame::write_continuation(&mut wire, id, &frag, ops.byte() & 1 != 0);
            }
            9 => frame::write_goaway(&mut wire, ops.u32() & 0x7fff_ffff, ErrorCode::NoError, b""),
            10 => {
                let id = pick(ops.byte(), next);
                let mut block = Vec::new();
                enc.encode([(&b"x-trailer"[..], &b"1"[..])], &mut block);
                frame::write_headers(&mut wire, id, &block, ops.byte() & 1 != 0, 16_384);
            }
            11 => {
                let ty = ops.byte() % 12;
                let fl = ops.byte();
                let id = if ops.byte() & 1 == 0 {
                    0
                } else {
                    pick(ops.byte(), next)
                };
                let len = usize::from(ops.byte() % 40);
                let payload: Vec<u8> = (0..len).map(|_| ops.byte()).collect();
                frame::write_frame_header(&mut wire, ty, fl, id, len);
                wire.extend_from_slice(&payload);
            }
            12 => frame::write_settings_ack(&mut wire),
            13 => {
                let id = pick(ops.byte(), next);
                let fl = ops.byte();
                // Now and then larger than a frame: HEADERS + CONTINUATION.
                let big = if fl & 2 != 0 { 20_000 } else { 100 };
                let _ = h.conn.send_headers(
                    id,
                    [
                        (&b":status"[..], &b"204"[..]),
                        (b"x-big", &vec![b'b'; big][..]),
                    ],
                    fl & 1 != 0,
                );
            }
            14 => {
                let id = pick(ops.byte(), next);
                let len = usize::from(ops.byte()) * 256;
                let body = vec![b'r'; len];
                let cap = h.conn.send_capacity(id);
                if let Ok(n) = h.conn.send_data(id, &body, ops.byte() & 1 != 0, h.now) {
                    assert_eq!(n, len.min(cap));
                }
            }
            15 => {
                let id = pick(ops.byte(), next);
                h.conn.reset(id, ErrorCode::Cancel);
                h.known.retain(|&s| s != id);
            }
            16 => {
                let id = pick(ops.byte(), next);
                h.conn.release(id, usize::from(ops.byte()) * 256);
            }
            17 => match ops.byte() % 8 {
                0 => h.conn.shutdown(),
                1 => h.conn.goaway(ErrorCode::InternalError),
                _ => {}
            },
            18 => h.now += Duration::from_millis(u64::from(ops.byte()) * 100),
            _ => h.act(ops.byte()),
        }
        h.conn.assert_invariants();
        let n = h.feed(&wire);
        wire.drain(..n);
        h.drain();
        if h.failed.is_some() {
            // One more call: the same error.
            h.feed(&wire);
            return;
        }
    }
}

fn run_bytes(h: &mut Harness, piece: u8, rest: &[u8]) {
    let mut input = PREFACE.to_vec();
    frame::write_settings(&mut input, &[]);
    input.extend_from_slice(rest);
    let piece = if piece == 0 {
        input.len()
    } else {
        usize::from(piece)
    };
    let mut buf = Vec::new();
    let mut at = 0;
    let mut step = 0u8;
    // Bounded: every turn takes a piece of the input, or consumes some of
    // the buffer, or ends.
    loop {
        let take = piece.min(input.len() - at);
        buf.extend_from_slice(&input[at..at + take]);
        at += take;
        let n = h.feed(&buf);
        buf.drain(..n);
        h.drain();
        h.act(step);
        step = step.wrapping_add(1);
        h.now += Duration::from_millis(7);
        if h.failed.is_some() || (at == input.len() && n == 0) {
            break;
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let [mode, piece, rest @ ..] = data else {
        return;
    };
    let mut h = Harness::new(config(mode >> 1));
    h.drain();
    if mode & 1 == 0 {
        run_bytes(&mut h, *piece, rest);
    } else {
        run_ops(&mut h, Ops(&data[1..]));
    }
});
