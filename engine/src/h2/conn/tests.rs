//! The server connection driven frame by frame by a test client: frames
//! built with `frame.rs`'s writers and header blocks from the HPACK
//! encoder, every byte the connection writes back parsed with
//! `frame::parse` (and its header blocks decoded), events and frames
//! compared exactly. One test per rule of RFC 9113 §5, §6, §8 and RFC 8441,
//! one per denial-of-service class with its verdict and the state it
//! leaves, and an end-to-end exchange of 1 MiB each way.

use super::*;
use crate::h2::frame::{flags, frame_type, write_frame_header, MAX_FRAME_SIZE_LIMIT};
use crate::h2::hpack::{Decoder, Encoder};

type Pairs = Vec<(String, String)>;

/// An event, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Request {
        stream: u32,
        fields: Pairs,
        end: bool,
    },
    Trailers {
        stream: u32,
        fields: Pairs,
    },
    Data {
        stream: u32,
        data: Vec<u8>,
        end: bool,
    },
    Reset(u32, ErrorCode),
    StreamError(u32, ErrorCode),
    Refused(u32, Refusal),
    GoAway(u32, ErrorCode),
    Settings,
    Window(u32),
}

fn s(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Pseudo fields first (in `fields.rs`'s order), then the regular ones.
fn pairs(f: &Fields<'_>) -> Pairs {
    let mut out = Vec::new();
    for (name, v) in [
        (":method", f.method()),
        (":scheme", f.scheme()),
        (":authority", f.authority()),
        (":path", f.path()),
        (":protocol", f.protocol()),
    ] {
        if let Some(v) = v {
            out.push((name.to_string(), s(v)));
        }
    }
    for x in f.iter() {
        out.push((s(x.name), s(x.value)));
    }
    out
}

fn own(e: Event<'_>) -> Ev {
    match e {
        Event::Request {
            stream,
            fields,
            end_stream,
            ..
        } => Ev::Request {
            stream,
            fields: pairs(&fields),
            end: end_stream,
        },
        Event::Trailers { stream, fields } => Ev::Trailers {
            stream,
            fields: pairs(&fields),
        },
        Event::Data {
            stream,
            data,
            end_stream,
        } => Ev::Data {
            stream,
            data: data.to_vec(),
            end: end_stream,
        },
        Event::Reset { stream, code } => Ev::Reset(stream, code),
        Event::StreamError { stream, code, .. } => Ev::StreamError(stream, code),
        Event::Refused { stream, how, .. } => Ev::Refused(stream, how),
        Event::GoAway {
            last_stream, code, ..
        } => Ev::GoAway(last_stream, code),
        Event::SettingsChanged => Ev::Settings,
        Event::WindowOpened { stream } => Ev::Window(stream),
    }
}

/// A frame the server wrote, owned; header blocks decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Out {
    Settings(Vec<(Setting, u32)>),
    SettingsAck,
    PingAck([u8; 8]),
    WindowUpdate(u32, u32),
    Rst(u32, ErrorCode),
    GoAway(u32, ErrorCode),
    Headers {
        stream: u32,
        fields: Pairs,
        end: bool,
    },
    Data {
        stream: u32,
        data: Vec<u8>,
        end: bool,
    },
}

/// The test client: the connection under test, the client's HPACK
/// contexts, and a clock.
struct Peer {
    conn: Connection,
    scratch: Scratch,
    now: Instant,
    enc: Encoder,
    dec: Decoder,
}

/// In the order `pairs` lists them.
const GET: [(&str, &str); 4] = [
    (":method", "GET"),
    (":scheme", "https"),
    (":authority", "a.example"),
    (":path", "/"),
];

fn owned(list: &[(&str, &str)]) -> Pairs {
    list.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

impl Peer {
    /// A connection that has not seen the preface.
    fn new(cfg: H2Config) -> Peer {
        let now = Instant::now();
        Peer {
            conn: Connection::new(&cfg, now),
            scratch: Scratch::default(),
            now,
            enc: Encoder::new(),
            dec: Decoder::default(),
        }
    }

    /// Preface and SETTINGS exchanged both ways, output drained.
    fn ready(cfg: H2Config) -> Peer {
        Peer::ready_with(cfg, &[])
    }

    fn ready_with(cfg: H2Config, settings: &[(Setting, u32)]) -> Peer {
        let mut p = Peer::new(cfg);
        let mut bytes = PREFACE.to_vec();
        frame::write_settings(&mut bytes, settings);
        frame::write_settings_ack(&mut bytes);
        assert_eq!(p.feed(&bytes), vec![Ev::Settings]);
        let out = p.out();
        assert!(matches!(out[0], Out::Settings(_)), "{out:?}");
        assert_eq!(out.last(), Some(&Out::SettingsAck));
        p
    }

    /// Feeds `bytes`, which must all be consumed without a connection
    /// error.
    #[track_caller]
    fn feed(&mut self, bytes: &[u8]) -> Vec<Ev> {
        let (n, ev) = self.try_feed(bytes).expect("no connection error");
        assert_eq!(n, bytes.len(), "all consumed");
        ev
    }

    fn try_feed(&mut self, bytes: &[u8]) -> Result<(usize, Vec<Ev>), ConnError> {
        let mut ev = Vec::new();
        let n = self
            .conn
            .recv(self.now, bytes, &mut self.scratch, |e| ev.push(own(e)));
        self.conn.assert_invariants();
        Ok((n?, ev))
    }

    /// Feeds `bytes` and expects a connection error with `code`, and a
    /// GOAWAY with it as the last frame written.
    #[track_caller]
    fn expect_goaway(&mut self, bytes: &[u8], code: ErrorCode) -> Vec<Out> {
        match self.try_feed(bytes) {
            Err(ConnError::Protocol { code: c, .. }) => assert_eq!(c, code),
            other => panic!("expected a connection error {code}, got {other:?}"),
        }
        assert!(self.conn.is_closed());
        let out = self.out();
        match out.last() {
            Some(Out::GoAway(_, c)) => assert_eq!(*c, code),
            other => panic!("expected GOAWAY {code}, got {other:?}"),
        }
        out
    }

    /// Everything the connection queued, parsed; nothing left behind.
    fn out(&mut self) -> Vec<Out> {
        let mut bytes = Vec::new();
        self.conn.poll_transmit(&mut bytes);
        assert!(!self.conn.wants_write());
        assert_eq!(self.conn.pending.capacity(), 0, "the queue is freed");
        parse_out(&bytes, &mut self.dec)
    }

    fn headers(&mut self, stream: u32, list: &[(&str, &str)], end: bool) -> Vec<u8> {
        let mut block = Vec::new();
        self.enc.encode(
            list.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())),
            &mut block,
        );
        let mut out = Vec::new();
        frame::write_headers(&mut out, stream, &block, end, 16_384);
        out
    }

    fn get(&mut self, stream: u32) -> Vec<u8> {
        self.headers(stream, &GET, true)
    }

    fn post(&mut self, stream: u32, len: Option<usize>) -> Vec<u8> {
        let len = len.map(|n| n.to_string());
        let mut list = vec![
            (":method", "POST"),
            (":scheme", "https"),
            (":path", "/up"),
            (":authority", "a.example"),
        ];
        if let Some(len) = &len {
            list.push(("content-length", len));
        }
        self.headers(stream, &list, false)
    }

    /// Opens `stream` with a GET that ends the request and checks the
    /// event.
    #[track_caller]
    fn open_get(&mut self, stream: u32) {
        let bytes = self.get(stream);
        assert_eq!(
            self.feed(&bytes),
            vec![Ev::Request {
                stream,
                fields: owned(&GET),
                end: true
            }]
        );
    }

    /// Opens `stream` with a POST whose body is to come.
    #[track_caller]
    fn open_post(&mut self, stream: u32, len: Option<usize>) {
        let bytes = self.post(stream, len);
        let ev = self.feed(&bytes);
        assert!(
            matches!(ev[..], [Ev::Request { stream: s, end: false, .. }] if s == stream),
            "{ev:?}"
        );
    }

    /// Sends a whole response `:status 200` with `body`.
    fn respond(&mut self, stream: u32, body: &[u8]) {
        self.conn
            .send_headers(stream, [(&b":status"[..], &b"200"[..])], body.is_empty())
            .unwrap();
        if !body.is_empty() {
            let n = self.conn.send_data(stream, body, true, self.now).unwrap();
            assert_eq!(n, body.len());
        }
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
    }
}

/// Parses every frame in `bytes` (they must all parse, whole), decoding
/// header blocks with `dec`.
fn parse_out(mut bytes: &[u8], dec: &mut Decoder) -> Vec<Out> {
    let mut out = Vec::new();
    let mut block: Option<(u32, bool, Vec<u8>)> = None;
    while !bytes.is_empty() {
        let (f, n) = frame::parse(bytes, MAX_FRAME_SIZE_LIMIT)
            .expect("the server's frames parse")
            .expect("the server's frames are whole");
        bytes = &bytes[n..];
        let (stream, end, fragment, end_headers) = match f {
            Frame::Settings { ack: true, .. } => {
                out.push(Out::SettingsAck);
                continue;
            }
            Frame::Settings { settings, .. } => {
                out.push(Out::Settings(settings.iter().collect()));
                continue;
            }
            Frame::Ping { ack, data } => {
                assert!(ack, "ringway sends no PING of its own");
                out.push(Out::PingAck(data));
                continue;
            }
            Frame::WindowUpdate { stream, increment } => {
                out.push(Out::WindowUpdate(stream, increment));
                continue;
            }
            Frame::RstStream { stream, code } => {
                out.push(Out::Rst(stream, code));
                continue;
            }
            Frame::GoAway {
                last_stream, code, ..
            } => {
                out.push(Out::GoAway(last_stream, code));
                continue;
            }
            Frame::Data {
                stream,
                end_stream,
                data,
                flow_len,
            } => {
                assert_eq!(flow_len as usize, data.len(), "no padding");
                out.push(Out::Data {
                    stream,
                    data: data.to_vec(),
                    end: end_stream,
                });
                continue;
            }
            Frame::Headers {
                stream,
                end_stream,
                end_headers,
                fragment,
                ..
            } => {
                assert!(block.is_none());
                (stream, end_stream, fragment, end_headers)
            }
            Frame::Continuation {
                stream,
                end_headers,
                fragment,
            } => {
                let (s, e, _) = block.as_ref().expect("CONTINUATION after HEADERS");
                assert_eq!(*s, stream);
                (stream, *e, fragment, end_headers)
            }
            other => panic!("ringway sent {other:?}"),
        };
        let b = block.get_or_insert((stream, end, Vec::new()));
        b.2.extend_from_slice(fragment);
        if end_headers {
            let (stream, end, bytes) = block.take().unwrap();
            let mut fields = Vec::new();
            dec.decode(&bytes, usize::MAX, &mut Vec::new(), |n, v, _| {
                fields.push((s(n), s(v)))
            })
            .expect("ringway's header blocks decode");
            out.push(Out::Headers {
                stream,
                fields,
                end,
            });
        }
    }
    assert!(block.is_none(), "a header block left open");
    out
}

// ---- client frames ---------------------------------------------------------

fn raw(ty: u8, fl: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    write_frame_header(&mut v, ty, fl, stream, payload.len());
    v.extend_from_slice(payload);
    v
}

fn data(stream: u32, bytes: &[u8], end: bool) -> Vec<u8> {
    let mut v = Vec::new();
    frame::write_data(&mut v, stream, bytes, end);
    v
}

fn rst(stream: u32, code: ErrorCode) -> Vec<u8> {
    let mut v = Vec::new();
    frame::write_rst_stream(&mut v, stream, code);
    v
}

fn window_update(stream: u32, increment: u32) -> Vec<u8> {
    let mut v = Vec::new();
    frame::write_window_update(&mut v, stream, increment);
    v
}

fn ping(d: [u8; 8]) -> Vec<u8> {
    let mut v = Vec::new();
    frame::write_ping(&mut v, d, false);
    v
}

fn settings(params: &[(Setting, u32)]) -> Vec<u8> {
    let mut v = Vec::new();
    frame::write_settings(&mut v, params);
    v
}

fn priority(stream: u32, depends_on: u32) -> Vec<u8> {
    let mut p = depends_on.to_be_bytes().to_vec();
    p.push(15);
    raw(frame_type::PRIORITY, 0, stream, &p)
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// An HPACK integer with an N-bit prefix (RFC 7541 §5.1).
fn hpack_int(out: &mut Vec<u8>, first: u8, prefix: u32, value: usize) {
    let max = (1usize << prefix) - 1;
    if value < max {
        out.push(first | value as u8);
        return;
    }
    out.push(first | max as u8);
    let mut rest = value - max;
    while rest >= 0x80 {
        out.push((rest & 0x7f) as u8 | 0x80);
        rest >>= 7;
    }
    out.push(rest as u8);
}

// ---- §3.4: the preface and the first SETTINGS --------------------------------

#[test]
fn settings_exchanged_after_the_preface() {
    let mut p = Peer::new(H2Config::default());
    assert!(p.conn.wants_write(), "ringway's SETTINGS go first");
    assert_eq!(
        p.out(),
        vec![
            Out::Settings(vec![
                (Setting::MaxConcurrentStreams, 128),
                (Setting::MaxHeaderListSize, 32 * 1024),
            ]),
            Out::WindowUpdate(0, (1 << 20) - 65_535),
        ]
    );
    let mut bytes = PREFACE.to_vec();
    bytes.extend(settings(&[(Setting::InitialWindowSize, 1000)]));
    assert_eq!(p.feed(&bytes), vec![Ev::Settings]);
    assert_eq!(p.out(), vec![Out::SettingsAck]);
    assert_eq!(p.conn.peer_settings().initial_window_size, 1000);
    assert!(p.conn.awaiting_settings_ack());
    let mut ack = Vec::new();
    frame::write_settings_ack(&mut ack);
    assert_eq!(p.feed(&ack), vec![]);
    assert!(!p.conn.awaiting_settings_ack());
}

#[test]
fn settings_follow_the_config() {
    let cfg = H2Config {
        max_concurrent_streams: 10,
        initial_window_size: 1 << 20,
        connection_window_size: 65_535,
        max_frame_size: 1 << 20,
        header_table_size: 0,
        max_header_list_size: 8192,
        enable_connect_protocol: true,
        ..H2Config::default()
    };
    let mut p = Peer::new(cfg);
    assert_eq!(
        p.out(),
        vec![Out::Settings(vec![
            (Setting::MaxConcurrentStreams, 10),
            (Setting::InitialWindowSize, 1 << 20),
            (Setting::MaxFrameSize, 1 << 20),
            (Setting::HeaderTableSize, 0),
            (Setting::MaxHeaderListSize, 8192),
            (Setting::EnableConnectProtocol, 1),
        ])]
    );
    // Below the protocol's values, windows and frame sizes are raised.
    let small = H2Config {
        initial_window_size: 1,
        max_frame_size: 1,
        max_concurrent_streams: 0,
        ..H2Config::default()
    }
    .normalized();
    assert_eq!(small.initial_window_size, 65_535);
    assert_eq!(small.max_frame_size, 16_384);
    assert_eq!(small.max_concurrent_streams, 1);
}

#[test]
fn preface_arrives_byte_by_byte() {
    let mut p = Peer::new(H2Config::default());
    p.out();
    let mut bytes = PREFACE.to_vec();
    bytes.extend(settings(&[]));
    bytes.extend(p.get(1));
    let mut buf = Vec::new();
    let mut events = Vec::new();
    for &b in &bytes {
        buf.push(b);
        let (n, ev) = p.try_feed(&buf).unwrap();
        buf.drain(..n);
        events.extend(ev);
    }
    assert!(buf.is_empty());
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0], Ev::Settings);
    assert!(matches!(events[1], Ev::Request { stream: 1, .. }));
}

#[test]
fn http1_and_garbage_are_told_apart() {
    let mut p = Peer::new(H2Config::default());
    assert_eq!(
        p.try_feed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
        Err(ConnError::Http1)
    );
    assert!(!p.conn.wants_write(), "no SETTINGS to an HTTP/1 client");
    assert!(p.conn.is_closed());
    assert_eq!(p.try_feed(PREFACE), Err(ConnError::Http1), "stays failed");

    let mut p = Peer::new(H2Config::default());
    assert_eq!(p.try_feed(&[0x16, 0x03, 0x01]), Err(ConnError::BadPreface));
    let mut p = Peer::new(H2Config::default());
    assert_eq!(p.try_feed(&PREFACE[..10]), Ok((0, vec![])));
}

#[test]
fn first_frame_must_be_settings() {
    let mut p = Peer::new(H2Config::default());
    p.out();
    let bytes = cat(&[PREFACE, &ping([0; 8])]);
    p.expect_goaway(&bytes, ErrorCode::ProtocolError);

    let mut p = Peer::new(H2Config::default());
    p.out();
    let mut ack = PREFACE.to_vec();
    frame::write_settings_ack(&mut ack);
    p.expect_goaway(&ack, ErrorCode::ProtocolError);
}

// ---- a request and its response ------------------------------------------------

#[test]
fn get_and_its_response() {
    let mut p = Peer::ready(H2Config::default());
    p.open_get(1);
    assert_eq!(p.conn.open_streams(), 1);
    p.conn
        .send_headers(
            1,
            [
                (&b":status"[..], &b"200"[..]),
                (&b"content-type"[..], &b"text/plain"[..]),
            ],
            false,
        )
        .unwrap();
    assert_eq!(p.conn.send_data(1, b"hello", true, p.now), Ok(5));
    assert_eq!(
        p.out(),
        vec![
            Out::Headers {
                stream: 1,
                fields: owned(&[(":status", "200"), ("content-type", "text/plain")]),
                end: false
            },
            Out::Data {
                stream: 1,
                data: b"hello".to_vec(),
                end: true
            },
        ]
    );
    assert_eq!(p.conn.open_streams(), 0, "both sides ended");
    assert_eq!(
        p.conn.send_data(1, b"x", true, p.now),
        Err(SendError::UnknownStream)
    );
    assert_eq!(p.conn.send_capacity(1), 0);
}

#[test]
fn response_head_larger_than_a_frame_goes_in_continuation() {
    let mut p = Peer::ready(H2Config::default());
    p.open_get(1);
    let big = "v".repeat(40_000);
    p.conn
        .send_headers(
            1,
            [(&b":status"[..], &b"200"[..]), (b"x-big", big.as_bytes())],
            true,
        )
        .unwrap();
    let mut bytes = Vec::new();
    p.conn.poll_transmit(&mut bytes);
    let mut frames = Vec::new();
    let mut at = &bytes[..];
    while !at.is_empty() {
        let (f, n) = frame::parse(at, MAX_FRAME_SIZE_LIMIT).unwrap().unwrap();
        frames.push(f.frame_type());
        assert!(n - 9 <= 16_384);
        at = &at[n..];
    }
    assert_eq!(frames[0], frame_type::HEADERS);
    assert!(frames[1..].iter().all(|&t| t == frame_type::CONTINUATION));
    assert!(frames.len() >= 2);
    let out = parse_out(&bytes, &mut p.dec);
    assert_eq!(
        out,
        vec![Out::Headers {
            stream: 1,
            fields: vec![(":status".into(), "200".into()), ("x-big".into(), big)],
            end: true
        }]
    );
}

#[test]
fn send_errors() {
    let mut p = Peer::ready(H2Config::default());
    assert_eq!(
        p.conn.send_headers(1, [], false),
        Err(SendError::UnknownStream)
    );
    p.open_post(1, None);
    p.conn
        .send_headers(1, [(&b":status"[..], &b"200"[..])], true)
        .unwrap();
    assert_eq!(
        p.conn.send_data(1, b"x", false, p.now),
        Err(SendError::LocalClosed)
    );
    assert_eq!(p.conn.open_streams(), 1, "half-closed (local)");
    p.conn.goaway(ErrorCode::NoError);
    assert_eq!(
        p.conn.send_data(1, b"x", false, p.now),
        Err(SendError::ConnectionClosed)
    );
    assert!(p.conn.is_closed());
}

#[test]
fn request_body_and_trailers() {
    let mut p = Peer::ready(H2Config::default());
    p.open_post(1, None);
    let trailers = p.headers(1, &[("x-checksum", "abc")], true);
    let bytes = cat(&[&data(1, b"abc", false), &data(1, b"de", false), &trailers]);
    assert_eq!(
        p.feed(&bytes),
        vec![
            Ev::Data {
                stream: 1,
                data: b"abc".to_vec(),
                end: false
            },
            Ev::Data {
                stream: 1,
                data: b"de".to_vec(),
                end: false
            },
            Ev::Trailers {
                stream: 1,
                fields: owned(&[("x-checksum", "abc")])
            },
        ]
    );
    assert_eq!(
        p.conn.streams.get(1).unwrap().state,
        State::HalfClosedRemote
    );
}

#[test]
fn trailers_must_end_the_stream_and_carry_no_pseudo_fields() {
    let mut p = Peer::ready(H2Config::default());
    p.open_post(1, None);
    let bad = p.headers(1, &[("x", "y")], false);
    assert_eq!(
        p.feed(&bad),
        vec![Ev::StreamError(1, ErrorCode::ProtocolError)]
    );
    assert_eq!(p.out(), vec![Out::Rst(1, ErrorCode::ProtocolError)]);

    p.open_post(3, None);
    let bad = p.headers(3, &[(":path", "/")], true);
    assert_eq!(
        p.feed(&bad),
        vec![Ev::StreamError(3, ErrorCode::ProtocolError)]
    );
    assert_eq!(p.conn.open_streams(), 0);
}

// ---- §8.1.1: content-length ------------------------------------------------------

#[test]
fn content_length_against_data() {
    let mut p = Peer::ready(H2Config::default());
    // Exactly as declared.
    p.open_post(1, Some(3));
    let ev = p.feed(&data(1, b"abc", true));
    assert_eq!(
        ev,
        vec![Ev::Data {
            stream: 1,
            data: b"abc".to_vec(),
            end: true
        }]
    );
    // Shorter.
    p.open_post(3, Some(5));
    let bytes = cat(&[&data(3, b"ab", false), &data(3, b"c", true)]);
    let ev = p.feed(&bytes);
    assert_eq!(ev[1], Ev::StreamError(3, ErrorCode::ProtocolError));
    // Longer.
    p.open_post(5, Some(2));
    assert_eq!(
        p.feed(&data(5, b"abc", false)),
        vec![Ev::StreamError(5, ErrorCode::ProtocolError)]
    );
    // Declared but the request ends in its HEADERS.
    let list = [
        (":method", "POST"),
        (":scheme", "https"),
        (":path", "/"),
        ("content-length", "3"),
    ];
    let bytes = p.headers(7, &list, true);
    assert_eq!(
        p.feed(&bytes),
        vec![Ev::Refused(7, Refusal::Reset(ErrorCode::ProtocolError))]
    );
    assert_eq!(
        p.out(),
        vec![
            Out::Rst(3, ErrorCode::ProtocolError),
            Out::Rst(5, ErrorCode::ProtocolError),
            Out::Rst(7, ErrorCode::ProtocolError),
        ]
    );
    // Trailers before the declared length is in.
    p.open_post(9, Some(4));
    let trailers = p.headers(9, &[("x", "y")], true);
    let ev = p.feed(&cat(&[&data(9, b"ab", false), &trailers]));
    assert_eq!(ev[1], Ev::StreamError(9, ErrorCode::ProtocolError));
}

#[test]
fn malformed_request_is_refused_and_the_connection_lives() {
    let mut p = Peer::ready(H2Config::default());
    let bytes = p.headers(1, &[(":method", "GET"), (":path", "/")], true);
    assert_eq!(
        p.feed(&bytes),
        vec![Ev::Refused(1, Refusal::Reset(ErrorCode::ProtocolError))]
    );
    let bytes = p.headers(
        3,
        &[
            (":method", "GET"),
            (":scheme", "https"),
            (":path", "/"),
            ("connection", "keep-alive"),
        ],
        true,
    );
    assert_eq!(
        p.feed(&bytes),
        vec![Ev::Refused(3, Refusal::Reset(ErrorCode::ProtocolError))]
    );
    p.open_get(5);
}

// ---- §5.1, §5.1.1: stream states and ids -----------------------------------------

#[test]
fn stream_ids_are_odd_and_increasing() {
    let mut p = Peer::ready(H2Config::default());
    let bytes = p.get(2);
    p.expect_goaway(&bytes, ErrorCode::ProtocolError);

    let mut p = Peer::ready(H2Config::default());
    p.open_get(5);
    let bytes = p.get(3);
    let out = p.expect_goaway(&bytes, ErrorCode::ProtocolError);
    assert_eq!(out, vec![Out::GoAway(5, ErrorCode::ProtocolError)]);
}

#[test]
fn frames_on_idle_streams() {
    for bytes in [
        data(1, b"x", false),
        rst(1, ErrorCode::Cancel),
        window_update(1, 1),
        raw(frame_type::WINDOW_UPDATE, 0, 1, &[0; 4]),
        raw(frame_type::CONTINUATION, flags::END_HEADERS, 1, &[]),
        data(2, b"x", false),
    ] {
        let mut p = Peer::ready(H2Config::default());
        p.expect_goaway(&bytes, ErrorCode::ProtocolError);
    }
    // PRIORITY may name an idle stream.
    let mut p = Peer::ready(H2Config::default());
    assert_eq!(p.feed(&priority(9, 0)), vec![]);
    assert_eq!(p.out(), vec![]);
    p.open_get(9);
}

#[test]
fn frames_on_closed_streams() {
    let mut p = Peer::ready(H2Config::default());
    p.open_get(1);
    p.respond(1, b"");
    p.open_get(3);
    p.respond(3, b"");
    p.out();
    assert_eq!(p.conn.open_streams(), 0);
    // Ignored: WINDOW_UPDATE, RST_STREAM, PRIORITY.
    let bytes = cat(&[
        &window_update(1, 5),
        &rst(1, ErrorCode::Cancel),
        &priority(1, 0),
    ]);
    assert_eq!(p.feed(&bytes), vec![]);
    assert_eq!(p.out(), vec![]);
    // DATA: STREAM_CLOSED, once (then ringway has reset it and ignores
    // more).
    let bytes = cat(&[&data(1, b"x", false), &data(1, b"y", false)]);
    assert_eq!(p.feed(&bytes), vec![]);
    assert_eq!(p.out(), vec![Out::Rst(1, ErrorCode::StreamClosed)]);
    // HEADERS on a closed stream ends the connection.
    let bytes = p.get(3);
    p.expect_goaway(&bytes, ErrorCode::StreamClosed);
}

#[test]
fn data_after_end_stream_is_stream_closed() {
    let mut p = Peer::ready(H2Config::default());
    p.open_get(1);
    assert_eq!(
        p.feed(&data(1, b"x", false)),
        vec![Ev::StreamError(1, ErrorCode::StreamClosed)]
    );
    assert_eq!(p.out(), vec![Out::Rst(1, ErrorCode::StreamClosed)]);
    assert_eq!(p.conn.open_streams(), 0);
    // HEADERS on a half-closed (remote) stream too.
    p.open_get(3);
    let bytes = p.headers(3, &[("x", "y")], true);
    assert_eq!(
        p.feed(&bytes),
        vec![Ev::StreamError(3, ErrorCode::StreamClosed)]
    );
}

#[test]
fn frames_in_flight_after_a_reset_are_ignored() {
    let mut p = Peer::ready(H2Config::default());
    p.open_post(1, None);
    assert!(p.conn.reset(1, ErrorCode::Cancel));
    assert!(!p.conn.reset(1, ErrorCode::Cancel));
    assert_eq!(p.out(), vec![Out::Rst(1, ErrorCode::Cancel)]);
    // 40 frames of 16 KiB: more than half the connection window, all
    // credited back without the caller.
    let chunk = vec![7; 16_384];
    let mut bytes = Vec::new();
    for _ in 0..40 {
        bytes.extend(data(1, &chunk, false));
    }
    let trailers = p.headers(1, &[("x", "y")], true);
    bytes.extend(trailers);
    bytes.extend(window_update(1, 100));
    assert_eq!(p.feed(&bytes), vec![]);
    // Half the connection window (32 frames) goes back at once.
    assert_eq!(p.out(), vec![Out::WindowUpdate(0, 32 * 16_384)]);
    assert_eq!(p.conn.conn_released, 8 * 16_384);
    p.open_get(3);
}

#[test]
fn client_reset_ends_the_stream() {
    let mut p = Peer::ready(H2Config::default());
    p.open_post(1, None);
    p.feed(&data(1, &[1; 1000], false));
    assert_eq!(
        p.feed(&rst(1, ErrorCode::Cancel)),
        vec![Ev::Reset(1, ErrorCode::Cancel)]
    );
    assert_eq!(p.conn.open_streams(), 0);
    assert_eq!(p.conn.conn_released, 1000, "its bytes credited back");
    assert_eq!(
        p.conn.send_headers(1, [], true),
        Err(SendError::UnknownStream)
    );
    assert_eq!(p.out(), vec![]);
}

// ---- §4.3, §6.10: header block sequencing ------------------------------------------

#[test]
fn header_block_split_over_continuation() {
    let mut p = Peer::ready(H2Config::default());
    let mut block = Vec::new();
    p.enc.encode(
        GET.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())),
        &mut block,
    );
    let mut bytes = Vec::new();
    // Three bytes per frame: HEADERS then CONTINUATIONs.
    frame::write_headers(&mut bytes, 1, &block, true, 3);
    let ev = p.feed(&bytes);
    assert_eq!(
        ev,
        vec![Ev::Request {
            stream: 1,
            fields: owned(&GET),
            end: true
        }]
    );
    assert_eq!(p.conn.header_block.capacity(), 0, "freed once decoded");
}

#[test]
fn header_block_interrupted() {
    let mut p = Peer::ready(H2Config::default());
    let open = raw(frame_type::HEADERS, 0, 1, &[0x82]);
    let bytes = cat(&[&open, &ping([0; 8])]);
    p.expect_goaway(&bytes, ErrorCode::ProtocolError);

    let mut p = Peer::ready(H2Config::default());
    let other = raw(frame_type::CONTINUATION, flags::END_HEADERS, 3, &[]);
    p.expect_goaway(&cat(&[&open, &other]), ErrorCode::ProtocolError);

    // A stream error frame (WINDOW_UPDATE 0) inside a block.
    let mut p = Peer::ready(H2Config::default());
    p.open_post(1, None);
    let open = raw(frame_type::HEADERS, 0, 3, &[0x82]);
    let zero = raw(frame_type::WINDOW_UPDATE, 0, 1, &[0; 4]);
    p.expect_goaway(&cat(&[&open, &zero]), ErrorCode::ProtocolError);
}

#[test]
fn push_promise_from_a_client() {
    let mut p = Peer::ready(H2Config::default());
    p.open_post(1, None);
    let pp = raw(
        frame_type::PUSH_PROMISE,
        flags::END_HEADERS,
        1,
        &[0, 0, 0, 2, 0x82],
    );
    p.expect_goaway(&pp, ErrorCode::ProtocolError);
}

#[test]
fn bad_hpack_is_a_compression_error() {
    let mut p = Peer::ready(H2Config::default());
    // Index 0 (RFC 7541 §6.1).
    let bytes = raw(frame_type::HEADERS, flags::END_HEADERS, 1, &[0x80]);
    p.expect_goaway(&bytes, ErrorCode::CompressionError);
}

#[test]
fn lowered_table_size_holds_once_acknowledged() {
    let cfg = H2Config {
        header_table_size: 0,
        ..H2Config::default()
    };
    // Before the ack the client may still index into 4096 bytes.
    let mut p = Peer::new(cfg);
    p.out();
    let mut bytes = PREFACE.to_vec();
    bytes.extend(settings(&[]));
    p.feed(&bytes);
    let mut block = vec![0x82, 0x87, 0x84];
    block.push(0x40);
    hpack_int(&mut block, 0, 7, 1);
    block.push(b'x');
    hpack_int(&mut block, 0, 7, 1);
    block.push(b'y');
    let h = raw(
        frame_type::HEADERS,
        flags::END_HEADERS | flags::END_STREAM,
        1,
        &block,
    );
    assert_eq!(p.feed(&h).len(), 1);
    assert_eq!(p.conn.decoder.table_len(), 1);
    // Acknowledged: the next block must start with a size update.
    let mut ack = Vec::new();
    frame::write_settings_ack(&mut ack);
    p.feed(&ack);
    let h = raw(
        frame_type::HEADERS,
        flags::END_HEADERS | flags::END_STREAM,
        3,
        &[0x82, 0x87, 0x84],
    );
    p.expect_goaway(&h, ErrorCode::CompressionError);
}

// ---- §6.5, §6.7, §6.8: SETTINGS, PING, GOAWAY --------------------------------------

#[test]
fn ping_is_answered() {
    let mut p = Peer::ready(H2Config::default());
    let d = *b"12345678";
    assert_eq!(p.feed(&ping(d)), vec![]);
    assert_eq!(p.out(), vec![Out::PingAck(d)]);
    // A PING ack answers nothing.
    let mut ack = Vec::new();
    frame::write_ping(&mut ack, d, true);
    p.feed(&ack);
    assert_eq!(p.out(), vec![]);
}

#[test]
fn initial_window_size_moves_open_streams() {
    let mut p = Peer::ready(H2Config::default());
    p.open_get(1);
    assert_eq!(p.conn.send_capacity(1), 65_535);
    p.feed(&settings(&[(Setting::InitialWindowSize, 100)]));
    assert_eq!(p.conn.send_capacity(1), 100);
    p.conn
        .send_headers(1, [(&b":status"[..], &b"200"[..])], false)
        .unwrap();
    assert_eq!(p.conn.send_data(1, &[0; 60], false, p.now), Ok(60));
    // 40 left; lowered by 90 it goes to -50 (§6.9.2).
    p.feed(&settings(&[(Setting::InitialWindowSize, 10)]));
    assert_eq!(p.conn.streams.get(1).unwrap().send_window, -50);
    assert_eq!(p.conn.send_capacity(1), 0);
    assert_eq!(p.conn.send_data(1, &[0; 5], false, p.now), Ok(0));
    // Raised: the stream opens, and the caller hears of it.
    let ev = p.feed(&settings(&[
        (Setting::InitialWindowSize, 5000),
        (Setting::InitialWindowSize, 1000),
    ]));
    assert_eq!(ev, vec![Ev::Settings, Ev::Window(1)]);
    assert_eq!(p.conn.send_capacity(1), 940);
    let out = p.out();
    assert_eq!(out.iter().filter(|o| **o == Out::SettingsAck).count(), 3);
}

#[test]
fn initial_window_size_overflow() {
    let mut p = Peer::ready(H2Config::default());
    p.open_get(1);
    p.feed(&window_update(1, MAX_WINDOW_SIZE - 65_535));
    assert_eq!(
        p.conn.streams.get(1).unwrap().send_window,
        MAX_WINDOW_SIZE as i32
    );
    let bytes = settings(&[(Setting::InitialWindowSize, 65_536)]);
    p.expect_goaway(&bytes, ErrorCode::FlowControlError);
}

#[test]
fn goaway_from_the_client() {
    let mut p = Peer::ready(H2Config::default());
    p.open_get(1);
    let mut g = Vec::new();
    frame::write_goaway(&mut g, 0, ErrorCode::NoError, b"bye");
    assert_eq!(p.feed(&g), vec![Ev::GoAway(0, ErrorCode::NoError)]);
    assert!(!p.conn.is_closed(), "stream 1 still open");
    p.respond(1, b"done");
    assert!(p.conn.is_closed());
}

#[test]
fn graceful_shutdown_ignores_new_streams() {
    let mut p = Peer::ready(H2Config::default());
    p.open_post(1, None);
    p.conn.shutdown();
    p.conn.shutdown();
    assert_eq!(p.out(), vec![Out::GoAway(1, ErrorCode::NoError)]);
    let late = p.post(3, None);
    let bytes = cat(&[&late, &data(3, b"late", true), &data(1, b"body", true)]);
    assert_eq!(
        p.feed(&bytes),
        vec![Ev::Data {
            stream: 1,
            data: b"body".to_vec(),
            end: true
        }]
    );
    assert!(!p.conn.is_closed());
    p.respond(1, b"ok");
    assert!(p.conn.is_closed());
}

// ---- §6.9: flow control ----------------------------------------------------------------

#[test]
fn client_past_the_stream_window() {
    let mut p = Peer::ready(H2Config::default());
    p.open_post(1, None);
    let chunk = vec![0; 16_384];
    let mut bytes = Vec::new();
    for _ in 0..4 {
        bytes.extend(data(1, &chunk, false));
    }
    let ev = p.feed(&bytes);
    assert_eq!(ev.len(), 4);
    assert_eq!(ev[3], Ev::StreamError(1, ErrorCode::FlowControlError));
    assert_eq!(p.out(), vec![Out::Rst(1, ErrorCode::FlowControlError)]);
}

#[test]
fn client_past_the_connection_window() {
    let cfg = H2Config {
        initial_window_size: 1 << 20,
        connection_window_size: 65_535,
        ..H2Config::default()
    };
    let mut p = Peer::ready(cfg);
    p.open_post(1, None);
    p.open_post(3, None);
    let chunk = vec![0; 16_384];
    let bytes = cat(&[
        &data(1, &chunk, false),
        &data(3, &chunk, false),
        &data(1, &chunk, false),
        &data(3, &chunk, false),
    ]);
    p.expect_goaway(&bytes, ErrorCode::FlowControlError);
}

#[test]
fn window_update_overflow() {
    let mut p = Peer::ready(H2Config::default());
    p.open_get(1);
    assert_eq!(
        p.feed(&window_update(1, MAX_WINDOW_SIZE)),
        vec![Ev::StreamError(1, ErrorCode::FlowControlError)]
    );
    assert_eq!(p.out(), vec![Out::Rst(1, ErrorCode::FlowControlError)]);
    p.feed(&window_update(0, MAX_WINDOW_SIZE - (1 << 20)));
    p.expect_goaway(&window_update(0, 1 << 20), ErrorCode::FlowControlError);
}

#[test]
fn release_coalesces_window_updates() {
    let mut p = Peer::ready(H2Config::default());
    p.open_post(1, None);
    let chunk = vec![0; 16_384];
    p.feed(&cat(&[&data(1, &chunk, false), &data(1, &chunk, false)]));
    p.conn.release(1, 16_384);
    assert_eq!(p.out(), vec![], "under half the window");
    p.conn.release(1, 16_384);
    assert_eq!(p.out(), vec![Out::WindowUpdate(1, 32_768)]);
    p.conn.release(1, 1_000_000);
    assert_eq!(p.out(), vec![], "nothing more was received");
    // Padding is credited at once: 100 bytes of frame for 10 of data.
    let mut payload = vec![89];
    payload.extend_from_slice(&[1; 10]);
    payload.extend_from_slice(&[0; 89]);
    let padded = raw(frame_type::DATA, flags::PADDED, 1, &payload);
    assert_eq!(p.feed(&padded).len(), 1);
    let s = p.conn.streams.get(1).unwrap();
    assert_eq!(s.unreleased(65_535), 10);
    // Ended by the client: the connection window only.
    p.feed(&data(1, &chunk, true));
    p.conn.release(1, 16_384 + 10);
    assert_eq!(p.out(), vec![]);
    assert_eq!(p.conn.conn_released, 2 * 16_384 + 100 + 16_384);
}

#[test]
fn send_waits_for_the_window() {
    let mut p = Peer::ready_with(H2Config::default(), &[(Setting::InitialWindowSize, 10)]);
    p.open_get(1);
    p.conn
        .send_headers(1, [(&b":status"[..], &b"200"[..])], false)
        .unwrap();
    assert_eq!(p.conn.send_capacity(1), 10);
    assert_eq!(p.conn.send_data(1, b"0123456789abc", true, p.now), Ok(10));
    assert_eq!(p.conn.blocked_since(1), Some(p.now));
    let out = p.out();
    assert_eq!(
        out[1],
        Out::Data {
            stream: 1,
            data: b"0123456789".to_vec(),
            end: false
        }
    );
    // A connection-level update alone does not open the stream.
    assert_eq!(p.feed(&window_update(0, 100)), vec![]);
    assert_eq!(p.feed(&window_update(1, 3)), vec![Ev::Window(1)]);
    assert_eq!(p.feed(&window_update(1, 3)), vec![], "told once");
    p.advance(Duration::from_secs(1));
    assert_eq!(p.conn.send_data(1, b"abc", true, p.now), Ok(3));
    assert_eq!(p.conn.blocked_since(1), None);
    assert_eq!(p.conn.open_streams(), 0);
}

// ---- §5.1.2: concurrency ----------------------------------------------------------

#[test]
fn streams_over_the_limit_are_refused() {
    let cfg = H2Config {
        max_concurrent_streams: 2,
        ..H2Config::default()
    };
    let mut p = Peer::ready(cfg);
    p.open_post(1, None);
    p.open_post(3, None);
    let bytes = p.get(5);
    assert_eq!(
        p.feed(&bytes),
        vec![Ev::Refused(5, Refusal::Reset(ErrorCode::RefusedStream))]
    );
    assert_eq!(p.out(), vec![Out::Rst(5, ErrorCode::RefusedStream)]);
    assert_eq!(p.conn.open_streams(), 2);
    // Its body in flight is ignored; a slot freed takes the next.
    p.feed(&data(5, b"x", true));
    p.feed(&data(1, b"", true));
    p.respond(1, b"");
    p.open_get(7);
}

// ---- RFC 8441: WebSocket over HTTP/2 -------------------------------------------------

const WS: [(&str, &str); 6] = [
    (":method", "CONNECT"),
    (":protocol", "websocket"),
    (":scheme", "https"),
    (":path", "/chat"),
    (":authority", "a.example"),
    ("sec-websocket-version", "13"),
];

#[test]
fn extended_connect_when_enabled() {
    let cfg = H2Config {
        enable_connect_protocol: true,
        ..H2Config::default()
    };
    let mut p = Peer::ready(cfg);
    let bytes = p.headers(1, &WS, false);
    let ev = p.feed(&bytes);
    let Ev::Request {
        stream: 1,
        fields,
        end: false,
    } = &ev[0]
    else {
        panic!("{ev:?}");
    };
    assert!(fields.contains(&(":protocol".into(), "websocket".into())));
    p.conn
        .send_headers(1, [(&b":status"[..], &b"200"[..])], false)
        .unwrap();
    // The tunnel: DATA both ways, neither side ending.
    assert_eq!(p.conn.send_data(1, b"\x81\x02hi", false, p.now), Ok(4));
    let ev = p.feed(&data(1, b"\x81\x82abcdxy", false));
    assert_eq!(ev.len(), 1);
    let out = p.out();
    assert_eq!(out.len(), 2);
    assert_eq!(p.conn.open_streams(), 1);
}

#[test]
fn extended_connect_refused_when_not_advertised() {
    let mut p = Peer::ready(H2Config::default());
    let bytes = p.headers(1, &WS, false);
    assert_eq!(
        p.feed(&bytes),
        vec![Ev::Refused(1, Refusal::Reset(ErrorCode::ProtocolError))]
    );
    assert_eq!(p.out(), vec![Out::Rst(1, ErrorCode::ProtocolError)]);
    // The client's value of the setting changes nothing for a server.
    let mut p = Peer::ready_with(H2Config::default(), &[(Setting::EnableConnectProtocol, 1)]);
    let bytes = p.headers(1, &WS, false);
    assert_eq!(
        p.feed(&bytes),
        vec![Ev::Refused(1, Refusal::Reset(ErrorCode::ProtocolError))]
    );
}

// ---- end to end -------------------------------------------------------------------------

/// A 1 MiB upload with the client honouring ringway's windows and the
/// caller releasing as it "writes upstream", then a 1 MiB response with
/// ringway honouring the client's windows.
#[test]
fn one_mib_each_way() {
    const TOTAL: usize = 1 << 20;
    let body: Vec<u8> = (0..TOTAL).map(|i| (i * 7 + i / 251) as u8).collect();
    let mut p = Peer::ready(H2Config::default());
    p.open_post(1, Some(TOTAL));

    // Upload: the client's view of ringway's windows.
    let mut stream_w: i64 = 65_535;
    let mut conn_w: i64 = 1 << 20;
    let mut sent = 0;
    let mut got = Vec::with_capacity(TOTAL);
    let mut turns = 0;
    while sent < TOTAL {
        turns += 1;
        assert!(turns < 10_000);
        let n = 16_384.min(stream_w).min(conn_w).min((TOTAL - sent) as i64) as usize;
        assert!(n > 0, "the client is stuck at {sent}");
        let end = sent + n == TOTAL;
        let ev = p.feed(&data(1, &body[sent..sent + n], end));
        sent += n;
        stream_w -= n as i64;
        conn_w -= n as i64;
        for e in ev {
            let Ev::Data {
                stream: 1, data, ..
            } = e
            else {
                panic!("{e:?}");
            };
            got.extend_from_slice(&data);
            // Written upstream at once.
            p.conn.release(1, data.len());
        }
        for o in p.out() {
            match o {
                Out::WindowUpdate(0, inc) => conn_w += i64::from(inc),
                Out::WindowUpdate(1, inc) => stream_w += i64::from(inc),
                other => panic!("{other:?}"),
            }
        }
        assert!(stream_w <= 65_535 && conn_w <= 1 << 20);
    }
    assert!(got == body, "the upload arrived whole");

    // Download: ringway's view of the client's windows is the
    // connection's; the client reads everything and gives it back.
    p.conn
        .send_headers(1, [(&b":status"[..], &b"200"[..])], false)
        .unwrap();
    let mut off = 0;
    let mut down = Vec::with_capacity(TOTAL);
    let mut ended = false;
    let mut turns = 0;
    while !ended {
        turns += 1;
        assert!(turns < 10_000);
        let n = p.conn.send_data(1, &body[off..], true, p.now).unwrap();
        off += n;
        let mut read = 0;
        for o in p.out() {
            match o {
                Out::Headers { .. } => {}
                Out::Data {
                    stream: 1,
                    data,
                    end,
                } => {
                    assert!(data.len() <= 16_384);
                    read += data.len() as u32;
                    down.extend_from_slice(&data);
                    ended = end;
                }
                other => panic!("{other:?}"),
            }
        }
        if !ended {
            assert!(off < TOTAL);
            let wu = cat(&[&window_update(0, read), &window_update(1, read)]);
            assert_eq!(p.feed(&wu), vec![Ev::Window(1)]);
        }
    }
    assert_eq!(off, TOTAL);
    assert!(down == body, "the download arrived whole");
    assert_eq!(p.conn.open_streams(), 0);
    assert_eq!(p.conn.heap_bytes(), p.conn.decoder.heap_bytes());
}

// ---- memory -----------------------------------------------------------------------------

#[test]
fn idle_connection_holds_no_buffers() {
    let cfg = H2Config {
        enable_connect_protocol: true,
        ..H2Config::default()
    };
    let mut p = Peer::ready(cfg);
    assert_eq!(p.conn.heap_bytes(), 0, "nothing after the handshake");
    // A WebSocket stream left open, idle.
    let bytes = p.headers(1, &WS, false);
    p.feed(&bytes);
    p.conn
        .send_headers(1, [(&b":status"[..], &b"200"[..])], false)
        .unwrap();
    p.out();
    let heap = p.conn.heap_bytes();
    let stream = std::mem::size_of::<Stream>();
    println!(
        "size_of Connection {} B, a stream entry {} B, heap with one open stream {} B \
         (HPACK table {} B), Scratch after one request {} B (per worker)",
        std::mem::size_of::<Connection>(),
        stream,
        heap,
        p.conn.decoder.heap_bytes(),
        p.scratch.heap_bytes(),
    );
    assert_eq!(stream, 32);
    assert_eq!(heap, 4 * stream, "the map's first allocation only");
    assert!(std::mem::size_of::<Connection>() <= 400);
}

// ---- denial of service ----------------------------------------------------------------

/// Feeds `frame(i)` for i = 0.. until the connection ends; returns how
/// many went in, checking the verdict and that the state stays bounded.
#[track_caller]
fn flood(
    p: &mut Peer,
    max: usize,
    reason: &str,
    mut frame: impl FnMut(&mut Peer, u32) -> Vec<u8>,
) -> usize {
    for i in 0..max {
        let bytes = frame(p, i as u32);
        match p.try_feed(&bytes) {
            Ok(_) => {
                assert!(p.conn.open_streams() <= 128);
                assert!(p.conn.heap_bytes() < 64 * 1024, "{}", p.conn.heap_bytes());
                p.out();
            }
            Err(ConnError::Protocol { code, reason: r }) => {
                assert_eq!(code, ErrorCode::EnhanceYourCalm, "{r}");
                assert_eq!(r, reason);
                let out = p.out();
                assert!(matches!(
                    out.last(),
                    Some(Out::GoAway(_, ErrorCode::EnhanceYourCalm))
                ));
                return i;
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    panic!("no verdict after {max} frames");
}

#[test]
fn dos_rapid_reset() {
    let mut p = Peer::ready(H2Config::default());
    let n = flood(&mut p, 10_000, Cost::PeerReset.reason(), |p, i| {
        let id = 2 * i + 1;
        cat(&[&p.get(id), &rst(id, ErrorCode::Cancel)])
    });
    assert_eq!(n, 100, "the burst");
}

#[test]
fn dos_budget_refills() {
    // 10 resets a second for a minute is within the budget.
    let mut p = Peer::ready(H2Config::default());
    for i in 0..600u32 {
        let id = 2 * i + 1;
        let bytes = cat(&[&p.get(id), &rst(id, ErrorCode::Cancel)]);
        assert_eq!(p.feed(&bytes).len(), 2);
        p.advance(Duration::from_millis(100));
    }
    // Resetting after the response ended is free.
    p.open_post(1201, None);
    p.respond(1201, b"");
    assert_eq!(p.feed(&rst(1201, ErrorCode::Cancel)).len(), 1);
}

#[test]
fn dos_made_you_reset() {
    // Frames that make the server reset a stream, in turn.
    let mut p = Peer::ready(H2Config::default());
    let n = flood(&mut p, 10_000, Cost::StreamError.reason(), |p, i| {
        let id = 2 * i + 1;
        match i % 4 {
            0 => cat(&[&p.get(id), &raw(frame_type::WINDOW_UPDATE, 0, id, &[0; 4])]),
            1 => cat(&[&p.get(id), &data(id, b"x", false)]),
            2 => cat(&[&p.post(id, Some(1)), &data(id, b"xx", false)]),
            _ => cat(&[&p.get(id), &window_update(id, MAX_WINDOW_SIZE)]),
        }
    });
    assert_eq!(n, 100);
}

#[test]
fn dos_continuation_flood() {
    let mut p = Peer::ready(H2Config::default());
    let mut bytes = raw(frame_type::HEADERS, 0, 1, &[0x82; 16_384]);
    let mut frames = 1;
    // Bounded: the cap is 33 KiB.
    while frames < 100 {
        bytes.extend(raw(frame_type::CONTINUATION, 0, 1, &[0x82; 16_384]));
        frames += 1;
    }
    match p.try_feed(&bytes) {
        Err(ConnError::Protocol { code, reason }) => {
            assert_eq!(code, ErrorCode::EnhanceYourCalm);
            assert!(reason.contains("header block"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(p.conn.header_block.capacity(), 0);
    // Empty CONTINUATIONs cost budget instead.
    let mut p = Peer::ready(H2Config::default());
    let mut bytes = raw(frame_type::HEADERS, 0, 1, &[0x82]);
    for _ in 0..1000 {
        bytes.extend(raw(frame_type::CONTINUATION, 0, 1, &[]));
    }
    match p.try_feed(&bytes) {
        Err(ConnError::Protocol { reason, .. }) => assert_eq!(reason, Cost::EmptyFrame.reason()),
        other => panic!("{other:?}"),
    }
}

/// A block that inserts a 4000-byte field and refers to it 1000 times:
/// 4 MB of list from 5 KB of block.
fn hpack_bomb(stream_pseudo: bool) -> Vec<u8> {
    let mut block = Vec::new();
    if stream_pseudo {
        block.extend_from_slice(&[0x82, 0x87, 0x84]);
    }
    block.push(0x40);
    hpack_int(&mut block, 0, 7, 1);
    block.push(b'x');
    hpack_int(&mut block, 0, 7, 4000);
    block.extend(std::iter::repeat_n(b'v', 4000));
    block.extend(std::iter::repeat_n(0x80 | 62, 1000));
    block
}

#[test]
fn dos_hpack_bomb_answered_431() {
    let mut p = Peer::ready(H2Config::default());
    let block = hpack_bomb(true);
    let h = raw(frame_type::HEADERS, flags::END_HEADERS, 1, &block);
    assert_eq!(p.feed(&h), vec![Ev::Refused(1, Refusal::Status431)]);
    assert_eq!(
        p.out(),
        vec![
            Out::Headers {
                stream: 1,
                fields: owned(&[(":status", "431")]),
                end: true
            },
            Out::Rst(1, ErrorCode::NoError),
        ]
    );
    assert!(
        p.scratch.heap_bytes() < 3 * 32 * 1024,
        "{}",
        p.scratch.heap_bytes()
    );
    assert_eq!(p.conn.open_streams(), 0);
    // The table stayed in step: index 62 is the inserted field.
    let mut block = vec![0x82, 0x87, 0x84, 0x80 | 62];
    block.push(0x80 | 62);
    let h = raw(
        frame_type::HEADERS,
        flags::END_HEADERS | flags::END_STREAM,
        3,
        &block,
    );
    let ev = p.feed(&h);
    let Ev::Request { fields, .. } = &ev[0] else {
        panic!("{ev:?}")
    };
    assert_eq!(fields[3].1.len(), 4000);
    // Repeated, the bombs run out the budget.
    let n = flood(&mut p, 1000, Cost::Refused.reason(), |_, i| {
        let block = [0x82, 0x87, 0x84]
            .into_iter()
            .chain(std::iter::repeat_n(0x80 | 62, 9))
            .collect::<Vec<u8>>();
        raw(
            frame_type::HEADERS,
            flags::END_HEADERS | flags::END_STREAM,
            5 + 2 * i,
            &block,
        )
    });
    assert_eq!(n, 99);
}

#[test]
fn dos_settings_flood() {
    let mut p = Peer::ready(H2Config::default());
    let n = flood(
        &mut p,
        10_000,
        Cost::Settings.reason(),
        |_, _| settings(&[]),
    );
    assert_eq!(n, 100);
}

#[test]
fn dos_ping_flood() {
    let mut p = Peer::ready(H2Config::default());
    let n = flood(&mut p, 10_000, Cost::Ping.reason(), |_, i| {
        ping([i as u8; 8])
    });
    assert_eq!(n, 100);
}

#[test]
fn dos_empty_data_flood() {
    let mut p = Peer::ready(H2Config::default());
    p.open_post(1, None);
    let n = flood(&mut p, 10_000, Cost::EmptyFrame.reason(), |_, _| {
        data(1, b"", false)
    });
    assert_eq!(n, 100);
}

#[test]
fn dos_zero_length_headers_flood() {
    // Empty HEADERS fragments.
    let mut p = Peer::ready(H2Config::default());
    let n = flood(&mut p, 10_000, Cost::EmptyFrame.reason(), |_, i| {
        cat(&[
            &raw(frame_type::HEADERS, 0, 2 * i + 1, &[]),
            &raw(
                frame_type::CONTINUATION,
                flags::END_HEADERS,
                2 * i + 1,
                &[0x82, 0x87, 0x84],
            ),
        ])
    });
    assert_eq!(n, 100);
    // Fields with empty names and values: malformed, refused, budgeted.
    let mut p = Peer::ready(H2Config::default());
    let n = flood(&mut p, 10_000, Cost::Refused.reason(), |_, i| {
        let mut block = vec![0x82, 0x87, 0x84];
        for _ in 0..100 {
            block.extend_from_slice(&[0x00, 0x00, 0x00]);
        }
        raw(
            frame_type::HEADERS,
            flags::END_HEADERS | flags::END_STREAM,
            2 * i + 1,
            &block,
        )
    });
    assert_eq!(n, 100);
}

#[test]
fn dos_unread_control_frames_are_capped() {
    let cfg = H2Config {
        abuse_burst: 1_000_000,
        ..H2Config::default()
    };
    let mut p = Peer::ready(cfg);
    let mut bytes = Vec::new();
    for i in 0..10_000u32 {
        bytes.extend(ping(i.to_be_bytes().repeat(2).try_into().unwrap()));
    }
    let (n, _) = p.try_feed(&bytes).unwrap();
    assert!(n < bytes.len());
    assert!(p.conn.wants_write());
    assert!(p.conn.pending.len() <= 4096 + 17);
    let (again, _) = p.try_feed(&bytes[n..]).unwrap();
    assert_eq!(again, 0, "nothing more until the acks are taken");
    // Taken: it goes on.
    let acks = p.out().len();
    assert_eq!(acks * 17, n);
    let mut at = n;
    let mut turns = 0;
    while at < bytes.len() {
        turns += 1;
        assert!(turns < 100);
        at += p.try_feed(&bytes[at..]).unwrap().0;
        p.out();
    }
}

#[test]
fn dos_stream_id_exhaustion() {
    let mut p = Peer::ready(H2Config::default());
    p.open_get(MAX_STREAM_ID - 2);
    assert_eq!(p.out(), vec![]);
    p.open_get(MAX_STREAM_ID);
    assert_eq!(
        p.out(),
        vec![Out::GoAway(MAX_STREAM_ID, ErrorCode::NoError)]
    );
    p.respond(MAX_STREAM_ID - 2, b"");
    assert!(!p.conn.is_closed());
    p.respond(MAX_STREAM_ID, b"");
    assert!(p.conn.is_closed());
}

#[test]
fn dos_priority_on_itself() {
    let mut p = Peer::ready(H2Config::default());
    // A PRIORITY frame: the stream (idle here) is reset.
    assert_eq!(p.feed(&priority(3, 3)), vec![]);
    assert_eq!(p.out(), vec![Out::Rst(3, ErrorCode::ProtocolError)]);
    // On an even id, a stream that cannot exist: nothing to reset.
    assert_eq!(p.feed(&priority(4, 4)), vec![]);
    assert_eq!(p.out(), vec![]);
    // On an open stream.
    p.open_post(5, None);
    assert_eq!(
        p.feed(&priority(5, 5)),
        vec![Ev::StreamError(5, ErrorCode::ProtocolError)]
    );
    // In a HEADERS frame: decoded (the table stays in step), then refused.
    // (The test client's encoder set the table to 0 in its first block.)
    let mut block = Vec::new();
    hpack_int(&mut block, 0x20, 5, 4096);
    block.extend_from_slice(&[0x82, 0x87, 0x84, 0x40]);
    hpack_int(&mut block, 0, 7, 1);
    block.push(b'k');
    hpack_int(&mut block, 0, 7, 1);
    block.push(b'v');
    let mut payload = 7u32.to_be_bytes().to_vec();
    payload.push(0);
    payload.extend_from_slice(&block);
    let h = raw(
        frame_type::HEADERS,
        flags::END_HEADERS | flags::END_STREAM | flags::PRIORITY,
        7,
        &payload,
    );
    assert_eq!(
        p.feed(&h),
        vec![Ev::Refused(7, Refusal::Reset(ErrorCode::ProtocolError))]
    );
    assert_eq!(p.conn.decoder.table_len(), 1);
    // The connection lives on.
    p.open_get(9);
}

#[test]
fn dos_oversize_frame() {
    let mut p = Peer::ready(H2Config::default());
    p.open_post(1, None);
    // The header alone decides: no payload follows.
    let mut head = Vec::new();
    write_frame_header(&mut head, frame_type::DATA, 0, 1, 16_385);
    p.expect_goaway(&head, ErrorCode::FrameSizeError);
}

#[test]
fn dos_window_that_never_opens() {
    let mut p = Peer::ready_with(H2Config::default(), &[(Setting::InitialWindowSize, 0)]);
    p.open_get(1);
    p.conn
        .send_headers(1, [(&b":status"[..], &b"200"[..])], false)
        .unwrap();
    let start = p.now;
    let body = vec![0; 1 << 20];
    for _ in 0..100 {
        assert_eq!(p.conn.send_data(1, &body, true, p.now), Ok(0));
        p.advance(Duration::from_secs(1));
    }
    assert_eq!(p.conn.blocked_since(1), Some(start), "no progress since");
    assert!(p.conn.heap_bytes() < 1024, "holds nothing it was offered");
    assert_eq!(p.out().len(), 1, "the HEADERS only");
    // Some window: progress, and the clock restarts.
    assert_eq!(p.feed(&window_update(1, 10)), vec![Ev::Window(1)]);
    assert_eq!(p.conn.send_data(1, &body, true, p.now), Ok(10));
    assert_eq!(p.conn.blocked_since(1), Some(p.now));
    // The caller's send timeout fires: it resets the stream.
    assert!(p.conn.reset(1, ErrorCode::Cancel));
    assert_eq!(p.conn.heap_bytes(), p.conn.pending.capacity());
}
