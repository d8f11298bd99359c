//! The HTTP/1.1 response the request phases write to an HTTP/2 stream,
//! turned into what the stream sends: HEADERS and DATA, sans-I/O.
//!
//! The phases write a response as HTTP/1.1 bytes, in pieces of any size
//! (a head, a head and a body start, chunks split anywhere). The
//! [`ResponseWriter`] collects the head, parses it (`http::response`),
//! reads its framing (`http::framing`, HEAD-aware) and translates it
//! ([`response::from_response`]); the body is then counted
//! (Content-Length), de-chunked (chunked) or passed through (a body that
//! runs until close, or the tunnel after a 101 to an extended CONNECT).
//! 1xx interim heads (100 Continue) become HEADERS without END_STREAM and
//! the final head follows. The caller sends each [`Emit`] in order, with
//! flow control for DATA.

use super::request::FieldList;
use super::response::{self, Answers, Kind};
use crate::http::chunked::ChunkedDecoder;
use crate::http::response::{parse, Parse};
use crate::http::BodyKind;

/// The most header fields and bytes of a response head written by the
/// phases (they write ringway's own heads or relay an upstream's, which
/// the proxy already bounded).
const MAX_RESPONSE_HEADERS: usize = 256;
const MAX_RESPONSE_HEAD: usize = 64 * 1024;
/// Trailer bytes a chunked body may carry (dropped).
const MAX_TRAILER: usize = 16 * 1024;

/// What to send, in order.
#[derive(Debug, PartialEq, Eq)]
pub enum Emit {
    Headers { fields: FieldList, end_stream: bool },
    Data { payload: Vec<u8>, end_stream: bool },
}

/// Why the bytes written cannot be sent: the stream is reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsendable(pub &'static str);

#[derive(Debug)]
enum State {
    /// Collecting a head.
    Head(Vec<u8>),
    Length(u64),
    Chunked(ChunkedDecoder),
    /// A body until close, or a tunnel: ends with [`ResponseWriter::finish`].
    Open,
    /// The response ended (END_STREAM emitted).
    Done,
    Failed,
}

/// See the module header.
#[derive(Debug)]
pub struct ResponseWriter {
    state: State,
    head_request: bool,
    /// An extended CONNECT's protocol and the Sec-WebSocket-Key bytes sent
    /// upstream (RFC 8441).
    connect: Option<(Box<str>, [u8; 16])>,
}

impl ResponseWriter {
    pub fn new(head_request: bool, connect: Option<(Box<str>, [u8; 16])>) -> Self {
        ResponseWriter {
            state: State::Head(Vec::new()),
            head_request,
            connect,
        }
    }

    /// Whether END_STREAM was emitted.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Whether the response runs until the writer is finished (a body
    /// until close, or a tunnel).
    pub fn is_open(&self) -> bool {
        matches!(self.state, State::Open)
    }

    /// Take the next bytes the phases wrote; appends what to send to
    /// `out`. After an error the stream must be reset.
    pub fn write(&mut self, mut data: &[u8], out: &mut Vec<Emit>) -> Result<(), Unsendable> {
        let r = loop {
            match &mut self.state {
                State::Failed => break Err(Unsendable("the response already failed")),
                State::Done if data.is_empty() => break Ok(()),
                State::Done => break Err(Unsendable("bytes written after the response ended")),
                State::Head(head) => {
                    head.extend_from_slice(data);
                    let head = std::mem::take(head);
                    match self.head(head, out) {
                        Ok(None) => break Ok(()),
                        Ok(Some(rest)) => {
                            // The rest is body: feed it on (owned, as the
                            // head buffer it came from is gone).
                            return match self.write(&rest, out) {
                                Err(e) => {
                                    self.state = State::Failed;
                                    Err(e)
                                }
                                ok => ok,
                            };
                        }
                        Err(e) => break Err(e),
                    }
                }
                State::Length(left) => {
                    let n = (data.len() as u64).min(*left) as usize;
                    *left -= n as u64;
                    let end = *left == 0;
                    if n > 0 || end {
                        out.push(Emit::Data {
                            payload: data[..n].to_vec(),
                            end_stream: end,
                        });
                    }
                    if end {
                        self.state = State::Done;
                    }
                    data = &data[n..];
                    if data.is_empty() {
                        break Ok(());
                    }
                }
                State::Chunked(dec) => {
                    let mut payload = Vec::new();
                    match dec.feed(data, |d| payload.extend_from_slice(d)) {
                        Err(e) => break Err(Unsendable(e.0)),
                        Ok(None) => {
                            if !payload.is_empty() {
                                out.push(Emit::Data {
                                    payload,
                                    end_stream: false,
                                });
                            }
                            break Ok(());
                        }
                        Ok(Some(n)) => {
                            out.push(Emit::Data {
                                payload,
                                end_stream: true,
                            });
                            self.state = State::Done;
                            data = &data[n..];
                        }
                    }
                }
                State::Open => {
                    if !data.is_empty() {
                        out.push(Emit::Data {
                            payload: data.to_vec(),
                            end_stream: false,
                        });
                    }
                    break Ok(());
                }
            }
        };
        if r.is_err() {
            self.state = State::Failed;
        }
        r
    }

    /// A complete head: emit its HEADERS; `Some(rest)` (the bytes after
    /// it) when it was complete, `None` when more is needed.
    fn head(&mut self, head: Vec<u8>, out: &mut Vec<Emit>) -> Result<Option<Vec<u8>>, Unsendable> {
        let resp = match parse(head, MAX_RESPONSE_HEADERS, MAX_RESPONSE_HEAD) {
            Ok(Parse::Complete(r)) => r,
            Ok(Parse::Partial(buf)) => {
                self.state = State::Head(buf);
                return Ok(None);
            }
            Err(_) => return Err(Unsendable("the response head written is not HTTP/1.1")),
        };
        // `parse` bounds only a head still incomplete: without this, a head
        // over the bound written in one piece passed where the same head
        // written in pieces failed.
        if resp.head_len > MAX_RESPONSE_HEAD {
            return Err(Unsendable("the response head written is too large"));
        }
        let framing = resp
            .framing(self.head_request)
            .map_err(|_| Unsendable("the response's framing is unusable"))?;
        let (content_length, next) = if resp.status == 101 {
            (None, State::Open)
        } else {
            match framing.body {
                BodyKind::None => (framing.declared_length, State::Done),
                BodyKind::Length(0) => (Some(0), State::Done),
                BodyKind::Length(n) => (Some(n), State::Length(n)),
                BodyKind::Chunked => (None, State::Chunked(ChunkedDecoder::new(MAX_TRAILER))),
                BodyKind::UntilClose => (None, State::Open),
            }
        };
        let answers = match &self.connect {
            Some((protocol, key)) => Answers::Connect { protocol, key },
            None => Answers::Request,
        };
        let t =
            response::from_response(&resp, answers, content_length).map_err(|e| Unsendable(e.0))?;
        let rest = resp.early().to_vec();
        if t.kind == Kind::Interim {
            out.push(Emit::Headers {
                fields: t.fields,
                end_stream: false,
            });
            self.state = State::Head(Vec::new());
            return Ok(Some(rest));
        }
        let end_stream = matches!(next, State::Done);
        out.push(Emit::Headers {
            fields: t.fields,
            end_stream,
        });
        self.state = next;
        Ok(Some(rest))
    }

    /// The phases are done with the stream (a half-close, or the end):
    /// the END_STREAM of a body until close or a tunnel; `None` when the
    /// response already ended, or cannot end well (the caller resets).
    pub fn finish(&mut self) -> Option<Emit> {
        match self.state {
            State::Open => {
                self.state = State::Done;
                Some(Emit::Data {
                    payload: Vec::new(),
                    end_stream: true,
                })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(e: &Emit) -> Vec<(String, String)> {
        match e {
            Emit::Headers { fields, .. } => fields
                .iter()
                .map(|(n, v)| {
                    (
                        String::from_utf8_lossy(n).into_owned(),
                        String::from_utf8_lossy(v).into_owned(),
                    )
                })
                .collect(),
            Emit::Data { .. } => panic!("not HEADERS: {e:?}"),
        }
    }

    fn data(payload: &[u8], end_stream: bool) -> Emit {
        Emit::Data {
            payload: payload.to_vec(),
            end_stream,
        }
    }

    /// A response as sent: the final head's fields, the body, and whether
    /// the stream ended.
    type Sent = (Vec<(String, String)>, Vec<u8>, bool);

    /// Every way of cutting `bytes` in two gives the same emits, once
    /// merged (DATA payloads joined).
    fn all_splits(w: impl Fn() -> ResponseWriter, bytes: &[u8]) -> Sent {
        let mut first: Option<Sent> = None;
        for cut in 0..=bytes.len() {
            let mut wr = w();
            let mut out = Vec::new();
            wr.write(&bytes[..cut], &mut out).unwrap();
            wr.write(&bytes[cut..], &mut out).unwrap();
            let mut head = None;
            let mut body = Vec::new();
            let mut ended = false;
            for e in &out {
                assert!(!ended, "nothing after END_STREAM: {out:?}");
                match e {
                    Emit::Headers { end_stream, .. } => {
                        assert!(head.is_none(), "one final head: {out:?}");
                        head = Some(fields(e));
                        ended = *end_stream;
                    }
                    Emit::Data {
                        payload,
                        end_stream,
                    } => {
                        body.extend_from_slice(payload);
                        ended = *end_stream;
                    }
                }
            }
            let got = (head.expect("a head"), body, ended);
            match &first {
                None => first = Some(got),
                Some(f) => assert_eq!(f, &got, "cut at {cut}"),
            }
        }
        first.unwrap()
    }

    #[test]
    fn length_body_ends_with_its_last_byte() {
        let bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\nX-A: b\r\n\r\nhello";
        let (head, body, ended) = all_splits(|| ResponseWriter::new(false, None), bytes);
        assert_eq!(
            head,
            [(":status", "200"), ("x-a", "b"), ("content-length", "5")]
                .map(|(n, v)| (n.to_string(), v.to_string()))
        );
        assert_eq!(body, b"hello");
        assert!(ended);
    }

    #[test]
    fn chunked_body_is_dechunked_and_ends_with_the_last_chunk() {
        let bytes = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1;x=y\r\n!\r\n0\r\nT: v\r\n\r\n";
        let (head, body, ended) = all_splits(|| ResponseWriter::new(false, None), bytes);
        assert_eq!(head, [(":status".to_string(), "200".to_string())]);
        assert_eq!(body, b"hello!");
        assert!(ended);
    }

    #[test]
    fn no_body_ends_on_the_headers() {
        for (head_request, bytes) in [
            (true, &b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n"[..]),
            (false, b"HTTP/1.1 204 No Content\r\n\r\n"),
            (
                false,
                b"HTTP/1.1 304 Not Modified\r\nContent-Length: 12\r\n\r\n",
            ),
            (false, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        ] {
            let mut w = ResponseWriter::new(head_request, None);
            let mut out = Vec::new();
            w.write(bytes, &mut out).unwrap();
            assert_eq!(out.len(), 1, "{out:?}");
            assert!(matches!(
                out[0],
                Emit::Headers {
                    end_stream: true,
                    ..
                }
            ));
            assert!(w.is_done());
            // HEAD and 304 keep the declared length (RFC 9110 §8.6).
            let cl = fields(&out[0])
                .into_iter()
                .find(|(n, _)| n == "content-length")
                .map(|(_, v)| v);
            let expect =
                (head_request || bytes.starts_with(b"HTTP/1.1 304")).then(|| "12".to_string());
            let expect = if bytes.ends_with(b"Content-Length: 0\r\n\r\n") {
                Some("0".to_string())
            } else {
                expect
            };
            assert_eq!(cl, expect, "{}", String::from_utf8_lossy(bytes));
            assert_eq!(
                w.write(b"x", &mut out),
                Err(Unsendable("bytes written after the response ended"))
            );
        }
    }

    #[test]
    fn interim_100_then_the_final_response() {
        let mut w = ResponseWriter::new(false, None);
        let mut out = Vec::new();
        w.write(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
            &mut out,
        )
        .unwrap();
        assert_eq!(out.len(), 3, "{out:?}");
        assert!(matches!(
            out[0],
            Emit::Headers {
                end_stream: false,
                ..
            }
        ));
        assert_eq!(
            fields(&out[0]),
            [(":status".to_string(), "100".to_string())]
        );
        assert_eq!(
            fields(&out[1])[0],
            (":status".to_string(), "201".to_string())
        );
        assert_eq!(out[2], data(b"ok", true));
    }

    #[test]
    fn until_close_runs_until_finish() {
        let mut w = ResponseWriter::new(false, None);
        let mut out = Vec::new();
        w.write(b"HTTP/1.1 200 OK\r\n\r\nab", &mut out).unwrap();
        w.write(b"cd", &mut out).unwrap();
        assert!(w.is_open());
        assert_eq!(w.finish(), Some(data(b"", true)));
        assert_eq!(w.finish(), None);
        assert!(matches!(
            out[0],
            Emit::Headers {
                end_stream: false,
                ..
            }
        ));
        assert_eq!(&out[1..], [data(b"ab", false), data(b"cd", false)]);
    }

    #[test]
    fn a_101_opens_the_tunnel_of_an_extended_connect_only() {
        let key = [7u8; 16];
        let accept = crate::h2::websocket::accept(&crate::h2::websocket::key(&key));
        let head = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
            String::from_utf8_lossy(&accept)
        );
        let mut w = ResponseWriter::new(false, Some(("websocket".into(), key)));
        let mut out = Vec::new();
        let mut bytes = head.clone().into_bytes();
        bytes.extend_from_slice(b"\x81\x02hi");
        w.write(&bytes, &mut out).unwrap();
        assert_eq!(
            fields(&out[0]),
            [(":status".to_string(), "200".to_string())]
        );
        assert!(matches!(
            out[0],
            Emit::Headers {
                end_stream: false,
                ..
            }
        ));
        assert_eq!(out[1], data(b"\x81\x02hi", false));
        assert!(w.is_open());

        // The same 101 to a plain request, or with another key, is refused.
        let mut w = ResponseWriter::new(false, None);
        assert!(w.write(head.as_bytes(), &mut Vec::new()).is_err());
        let mut w = ResponseWriter::new(false, Some(("websocket".into(), [8u8; 16])));
        assert!(w.write(head.as_bytes(), &mut Vec::new()).is_err());
        assert_eq!(w.finish(), None, "a failed response is reset, not ended");
    }

    #[test]
    fn bad_heads_and_bodies_fail() {
        for bytes in [
            &b"NOT HTTP\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        ] {
            let mut w = ResponseWriter::new(false, None);
            let mut out = Vec::new();
            assert!(
                w.write(bytes, &mut out).is_err(),
                "{}",
                String::from_utf8_lossy(bytes)
            );
            assert!(w.write(b"", &mut out).is_err(), "failed stays failed");
            assert!(!w.is_done());
        }
    }

    #[test]
    fn a_head_over_the_bound_fails_whole_or_in_pieces() {
        let mut bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n".to_vec();
        while bytes.len() <= MAX_RESPONSE_HEAD {
            // Few fields, long values: the bound on bytes, not on fields.
            bytes.extend_from_slice(b"X-Pad: ");
            bytes.extend_from_slice(&[b'p'; 1000]);
            bytes.extend_from_slice(b"\r\n");
        }
        bytes.extend_from_slice(b"\r\n");
        let mut whole = ResponseWriter::new(false, None);
        assert!(
            whole.write(&bytes, &mut Vec::new()).is_err(),
            "in one piece"
        );
        let mut pieces = ResponseWriter::new(false, None);
        let failed = bytes
            .chunks(4096)
            .any(|c| pieces.write(c, &mut Vec::new()).is_err());
        assert!(failed, "in pieces");
    }
}
