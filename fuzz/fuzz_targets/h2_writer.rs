//! The HTTP/2 response writer (`h2::writer::ResponseWriter`): the HTTP/1.1
//! response the phases write, turned into HEADERS and DATA.
//!
//! The bytes are written in pieces cut at points the input chooses (or one
//! byte at a time), and the emits are checked against a model built from
//! the engine's own HTTP/1.1 reading of the whole response at once
//! (`http::response::parse`, its framing, `ChunkedDecoder`,
//! `h2::response::from_response` for the fields):
//! - never a panic; after an error every write fails, emits nothing, and
//!   `finish` ends nothing;
//! - HEADERS (interim ones without END_STREAM) come before any DATA; at
//!   most one emit has END_STREAM and nothing follows it; an empty DATA
//!   only carries END_STREAM;
//! - the HEADERS are the model's, and the DATA payloads joined are exactly
//!   the body the HTTP/1.1 framing delivers (Content-Length bytes, the
//!   de-chunked payload, everything after a body-until-close head or a
//!   tunnel's 101); on failure, a prefix of what the framing delivered
//!   before the error; a declared content-length equals the DATA sent
//!   (except HEAD and 304, which declare the representation's length);
//! - the response ends (END_STREAM) exactly when the model's does, or is
//!   open until `finish` exactly when the model's is; bytes after the end
//!   are an error;
//! - the same merged emits and outcome whatever the cut points.
//!
//! Input: a flags byte (bit 0: a HEAD request; bit 1: an extended CONNECT
//! with key bytes [0x42; 16]; bit 2: its protocol is `foo`, not
//! `websocket`; bit 3: call `finish` after the last write; bit 4: write one
//! byte at a time), three cut points (u16, little-endian, modulo the
//! length + 1), then the response bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringway::h2::request::FieldList;
use ringway::h2::response::{from_response, Answers, Kind};
use ringway::h2::writer::{Emit, ResponseWriter};
use ringway::http::chunked::ChunkedDecoder;
use ringway::http::response::parse_bytes;
use ringway::http::BodyKind;

/// The writer's bounds (`h2::writer`, private there).
const MAX_RESPONSE_HEADERS: usize = 256;
const MAX_RESPONSE_HEAD: usize = 64 * 1024;
const MAX_TRAILER: usize = 16 * 1024;
const KEY: [u8; 16] = [0x42; 16];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// END_STREAM sent (on the HEADERS or the last DATA).
    Ended,
    /// A body until close or a tunnel: ends with `finish`.
    Open,
    /// More bytes are needed (a head, a counted or chunked body).
    Incomplete,
    /// The bytes are unsendable.
    Failed,
}

/// What the response, read as HTTP/1.1 all at once, sends.
#[derive(Debug)]
struct Model {
    /// Each HEADERS: the fields and END_STREAM.
    heads: Vec<(FieldList, bool)>,
    /// The body the framing delivers (before the error, on failure).
    body: Vec<u8>,
    end: End,
    /// The final head's status.
    status: Option<u16>,
}

fn model(bytes: &[u8], head_request: bool, answers: Answers<'_>) -> Model {
    let mut m = Model {
        heads: Vec::new(),
        body: Vec::new(),
        end: End::Incomplete,
        status: None,
    };
    let mut pos = 0;
    // Each round reads a head (interim ones loop); bounded by the input.
    loop {
        let resp = match parse_bytes(&bytes[pos..], MAX_RESPONSE_HEADERS, MAX_RESPONSE_HEAD) {
            Err(_) => {
                m.end = End::Failed;
                return m;
            }
            Ok(None) => return m,
            Ok(Some(r)) => r,
        };
        // A head over the bound is refused however it arrives.
        if resp.head_len > MAX_RESPONSE_HEAD {
            m.end = End::Failed;
            return m;
        }
        let Ok(framing) = resp.framing(head_request) else {
            m.end = End::Failed;
            return m;
        };
        let body = if resp.status == 101 {
            None
        } else {
            Some(framing.body)
        };
        let content_length = match body {
            Some(BodyKind::None) => framing.declared_length,
            Some(BodyKind::Length(n)) => Some(n),
            _ => None,
        };
        let Ok(t) = from_response(&resp, answers, content_length) else {
            m.end = End::Failed;
            return m;
        };
        let rest = &bytes[pos + resp.head_len..];
        if t.kind == Kind::Interim {
            assert!((100..200).contains(&resp.status));
            m.heads.push((t.fields, false));
            pos += resp.head_len;
            continue;
        }
        m.status = Some(resp.status);
        let ends_on_head = matches!(body, Some(BodyKind::None | BodyKind::Length(0)));
        m.heads.push((t.fields, ends_on_head));
        if ends_on_head {
            m.end = if rest.is_empty() {
                End::Ended
            } else {
                End::Failed
            };
            return m;
        }
        match body {
            None | Some(BodyKind::UntilClose) => {
                m.body = rest.to_vec();
                m.end = End::Open;
            }
            Some(BodyKind::Length(n)) => {
                let take = (rest.len() as u64).min(n) as usize;
                m.body = rest[..take].to_vec();
                m.end = match (rest.len() as u64).cmp(&n) {
                    std::cmp::Ordering::Less => End::Incomplete,
                    std::cmp::Ordering::Equal => End::Ended,
                    std::cmp::Ordering::Greater => End::Failed,
                };
            }
            Some(BodyKind::Chunked) => {
                let mut dec = ChunkedDecoder::new(MAX_TRAILER);
                let mut payload = Vec::new();
                m.end = match dec.feed(rest, |d| payload.extend_from_slice(d)) {
                    Err(_) => End::Failed,
                    Ok(None) => End::Incomplete,
                    Ok(Some(n)) if n == rest.len() => End::Ended,
                    Ok(Some(_)) => End::Failed,
                };
                m.body = payload;
            }
            Some(BodyKind::None) => {
                unreachable!("framing: {:?}", framing)
            }
        }
        return m;
    }
}

/// What a writer sent, merged: the HEADERS, the DATA joined, the outcome.
#[derive(Debug, PartialEq, Eq)]
struct Sent {
    heads: Vec<(FieldList, bool)>,
    body: Vec<u8>,
    end: End,
}

fn run(
    pieces: &[&[u8]],
    head_request: bool,
    connect: Option<(Box<str>, [u8; 16])>,
    finish: bool,
) -> Sent {
    let mut w = ResponseWriter::new(head_request, connect);
    let mut out = Vec::new();
    let mut failed = false;
    for piece in pieces {
        let before = out.len();
        let r = w.write(piece, &mut out);
        if failed {
            assert!(r.is_err(), "a failed writer took more bytes");
            assert_eq!(out.len(), before, "a failed writer emitted");
        }
        failed |= r.is_err();
    }
    if failed {
        for more in [&b""[..], b"x"] {
            let before = out.len();
            assert!(
                w.write(more, &mut out).is_err(),
                "failed does not stay failed"
            );
            assert_eq!(out.len(), before);
        }
        assert!(!w.is_done() && !w.is_open());
        assert_eq!(w.finish(), None, "a failed response is reset, not ended");
    }
    let open = w.is_open();
    let done = w.is_done();
    assert!(!(open && done));
    if finish && !failed {
        let f = w.finish();
        assert_eq!(f.is_some(), open, "finish ends exactly an open response");
        out.extend(f);
        assert!(!w.is_open());
        assert_eq!(w.finish(), None, "finish ends once");
    }

    // The emits' order.
    let mut sent = Sent {
        heads: Vec::new(),
        body: Vec::new(),
        end: End::Incomplete,
    };
    let mut ended = false;
    let mut final_head = false;
    for e in &out {
        assert!(!ended, "an emit after END_STREAM: {out:?}");
        match e {
            Emit::Headers { fields, end_stream } => {
                assert!(
                    sent.body.is_empty() && !final_head,
                    "HEADERS after the final head or DATA: {out:?}"
                );
                let status = fields.iter().next().expect(":status");
                assert_eq!(status.0, b":status");
                // Interim heads (1xx) never end the stream.
                let interim = status.1[0] == b'1';
                assert!(!(interim && *end_stream));
                final_head = !interim;
                ended = *end_stream;
                sent.heads.push((fields.clone(), *end_stream));
            }
            Emit::Data {
                payload,
                end_stream,
            } => {
                assert!(final_head, "DATA before the final HEADERS: {out:?}");
                assert!(
                    !payload.is_empty() || *end_stream,
                    "an empty DATA without END_STREAM"
                );
                sent.body.extend_from_slice(payload);
                ended = *end_stream;
            }
        }
    }
    // (A response that ended and then got more bytes failed after its
    // END_STREAM: the caller resets the stream.)
    if !failed {
        assert_eq!(ended, done || (finish && open), "END_STREAM iff done");
    }
    sent.end = if failed {
        End::Failed
    } else if ended {
        End::Ended
    } else if open {
        End::Open
    } else {
        End::Incomplete
    };
    sent
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 7 {
        return;
    }
    let flags = data[0];
    let bytes = &data[7..];
    let head_request = flags & 1 != 0;
    let protocol = if flags & 4 != 0 { "foo" } else { "websocket" };
    let connect = (flags & 2 != 0).then(|| (Box::<str>::from(protocol), KEY));
    let answers = match &connect {
        Some((p, k)) => Answers::Connect {
            protocol: p,
            key: k,
        },
        None => Answers::Request,
    };
    let finish = flags & 8 != 0;
    let m = model(bytes, head_request, answers);

    let mut cuts: Vec<usize> = data[1..7]
        .chunks(2)
        .map(|c| usize::from(u16::from_le_bytes([c[0], c[1]])) % (bytes.len() + 1))
        .collect();
    cuts.sort_unstable();
    let mut pieces: Vec<&[u8]> = Vec::new();
    if flags & 16 != 0 {
        pieces.extend(bytes.chunks(1));
    } else {
        let mut at = 0;
        for c in cuts {
            pieces.push(&bytes[at..c]);
            at = c;
        }
        pieces.push(&bytes[at..]);
    }
    let cut = run(&pieces, head_request, connect.clone(), finish);
    let whole = run(&[bytes], head_request, connect, finish);

    // The model's reading, whatever the cuts.
    for sent in [&cut, &whole] {
        assert_eq!(
            sent.heads, m.heads,
            "HEADERS differ from the HTTP/1.1 reading"
        );
        match m.end {
            End::Failed => {
                assert_eq!(sent.end, End::Failed, "{m:?}");
                assert!(
                    m.body.starts_with(&sent.body),
                    "DATA that is not body: {m:?} {sent:?}"
                );
            }
            End::Open if finish => {
                assert_eq!(sent.end, End::Ended);
                assert_eq!(sent.body, m.body);
            }
            end => {
                assert_eq!(sent.end, end, "{m:?}");
                assert_eq!(sent.body, m.body);
            }
        }
    }
    if m.end != End::Failed {
        assert_eq!(cut, whole, "the cut points change the output");
    }

    // A declared length is the DATA sent (HEAD and 304 declare the
    // representation's).
    if m.end == End::Ended && !head_request && m.status != Some(304) {
        let (fields, _) = m.heads.last().expect("a final head");
        for (n, v) in fields.iter() {
            if n == b"content-length" {
                assert_eq!(v, m.body.len().to_string().as_bytes());
            }
        }
    }
});
