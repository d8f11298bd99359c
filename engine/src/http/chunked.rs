//! Chunked transfer coding (RFC 9112 §7.1): a strict decoder and the
//! canonical encoder ringway re-frames bodies with.
//!
//! ringway never relays chunked framing as it received it. The decoder
//! takes the payload out; the relay writes it again as `<hex>\r\n<data>\r\n`
//! chunks and one `0\r\n\r\n`, with no extensions and no trailer fields.
//! So the next hop sees framing that every parser reads the same way, and
//! a byte sequence that one parser would read as the end of the body and
//! another as data never crosses the proxy.
//!
//! The decoder is stricter than RFC 9112 §2.2 allows a recipient to be:
//! every line of the framing (chunk-size lines, the CRLF after chunk data,
//! trailer lines, the final empty line) must end in CRLF. A bare LF or a
//! bare CR anywhere in the framing is an error (→ 400 from a client, 502
//! from an upstream), because it is exactly where lenient and strict
//! parsers disagree. Chunk extensions are checked for control characters
//! and dropped; trailer fields are checked (a field name, a colon, a value
//! without control characters), bounded by `max_trailer` bytes, and
//! dropped, as nginx does.

use super::is_tchar;

/// Error: the chunked framing is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkError(pub &'static str);

/// The most hex digits a chunk size may have (15 digits keep it below
/// 2^60, far beyond any body ringway relays, and cannot overflow).
const MAX_SIZE_DIGITS: u8 = 15;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the hex chunk size; `digits` seen so far.
    Size {
        digits: u8,
    },
    /// Whitespace after the size (before `;` or CR).
    SizeWs,
    /// In chunk extensions, up to CR.
    Ext,
    /// Expecting LF after the size line's CR.
    SizeLf,
    /// In chunk data.
    Data,
    DataCr,
    DataLf,
    /// At the start of a trailer line (or the final CRLF).
    TrailerStart,
    /// In a trailer field name, up to the colon.
    TrailerName,
    /// In a trailer field value, up to CR.
    TrailerValue,
    TrailerLf,
    /// Expecting the LF of the terminating CRLF.
    EndLf,
    Done,
}

#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    /// Remaining data bytes of the current chunk, or the size being read.
    size: u64,
    /// Trailer bytes seen, and the most allowed.
    trailer: usize,
    max_trailer: usize,
}

impl ChunkedDecoder {
    /// A decoder that accepts at most `max_trailer` bytes of trailer
    /// fields (they are dropped, but must be bounded).
    pub fn new(max_trailer: usize) -> Self {
        Self {
            state: State::Size { digits: 0 },
            size: 0,
            trailer: 0,
            max_trailer,
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Feed the next bytes of the body, handing each run of payload bytes
    /// to `on_data` (never an empty one). Returns `Some(n)` when the body
    /// ends after `n` bytes of `data` (the rest belongs to the next
    /// message), `None` when all of `data` was consumed and more is needed.
    pub fn feed(
        &mut self,
        data: &[u8],
        mut on_data: impl FnMut(&[u8]),
    ) -> Result<Option<usize>, ChunkError> {
        let mut i = 0;
        while i < data.len() {
            let b = data[i];
            match self.state {
                State::Size { digits } => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        if digits >= MAX_SIZE_DIGITS {
                            return Err(ChunkError("chunk size too large"));
                        }
                        let v = (b as char).to_digit(16).unwrap_or(0) as u64;
                        self.size = self.size * 16 + v;
                        self.state = State::Size { digits: digits + 1 };
                    }
                    b';' if digits > 0 => self.state = State::Ext,
                    b' ' | b'\t' if digits > 0 => self.state = State::SizeWs,
                    b'\r' if digits > 0 => self.state = State::SizeLf,
                    b'\n' => return Err(ChunkError("bare LF in chunk size line")),
                    _ => return Err(ChunkError("bad chunk size")),
                },
                State::SizeWs => match b {
                    b' ' | b'\t' => {}
                    b';' => self.state = State::Ext,
                    b'\r' => self.state = State::SizeLf,
                    _ => return Err(ChunkError("bad chunk size line")),
                },
                State::Ext => match b {
                    b'\r' => self.state = State::SizeLf,
                    b'\n' => return Err(ChunkError("bare LF in chunk extension")),
                    b'\t' => {}
                    c if c < 0x20 || c == 0x7f => {
                        return Err(ChunkError("control character in chunk extension"))
                    }
                    _ => {}
                },
                State::SizeLf => {
                    if b != b'\n' {
                        return Err(ChunkError("bare CR in chunk size line"));
                    }
                    self.state = if self.size == 0 {
                        State::TrailerStart
                    } else {
                        State::Data
                    };
                }
                State::Data => {
                    let take = (self.size.min((data.len() - i) as u64)) as usize;
                    on_data(&data[i..i + take]);
                    self.size -= take as u64;
                    i += take;
                    if self.size == 0 {
                        self.state = State::DataCr;
                    }
                    continue;
                }
                State::DataCr => {
                    if b != b'\r' {
                        return Err(ChunkError("chunk data not followed by CRLF"));
                    }
                    self.state = State::DataLf;
                }
                State::DataLf => {
                    if b != b'\n' {
                        return Err(ChunkError("chunk data not followed by CRLF"));
                    }
                    self.size = 0;
                    self.state = State::Size { digits: 0 };
                }
                State::TrailerStart => match b {
                    b'\r' => self.state = State::EndLf,
                    b'\n' => return Err(ChunkError("bare LF after the last chunk")),
                    c if is_tchar(c) => {
                        self.count_trailer()?;
                        self.state = State::TrailerName;
                    }
                    _ => return Err(ChunkError("bad trailer field")),
                },
                State::TrailerName => {
                    self.count_trailer()?;
                    match b {
                        b':' => self.state = State::TrailerValue,
                        c if is_tchar(c) => {}
                        _ => return Err(ChunkError("bad trailer field name")),
                    }
                }
                State::TrailerValue => {
                    self.count_trailer()?;
                    match b {
                        b'\r' => self.state = State::TrailerLf,
                        b'\n' => return Err(ChunkError("bare LF in trailer field")),
                        b'\t' => {}
                        c if c < 0x20 || c == 0x7f => {
                            return Err(ChunkError("control character in trailer field"))
                        }
                        _ => {}
                    }
                }
                State::TrailerLf => {
                    if b != b'\n' {
                        return Err(ChunkError("bare CR in trailer field"));
                    }
                    self.state = State::TrailerStart;
                }
                State::EndLf => {
                    if b != b'\n' {
                        return Err(ChunkError("bare CR at the end of the chunked body"));
                    }
                    self.state = State::Done;
                    return Ok(Some(i + 1));
                }
                State::Done => return Ok(Some(i)),
            }
            i += 1;
        }
        Ok(if self.state == State::Done {
            Some(0)
        } else {
            None
        })
    }

    fn count_trailer(&mut self) -> Result<(), ChunkError> {
        self.trailer += 1;
        if self.trailer > self.max_trailer {
            return Err(ChunkError("trailer fields too large"));
        }
        Ok(())
    }
}

/// The last chunk and the empty trailer section.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Append `data` as one canonical chunk (nothing for empty `data`: an
/// empty chunk would end the body).
pub fn encode_chunk(out: &mut Vec<u8>, data: &[u8]) {
    use std::io::Write;
    if data.is_empty() {
        return;
    }
    let _ = write!(out, "{:x}\r\n", data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Decode `input` and append its payload to `out` re-framed as canonical
/// chunks, plus the last chunk when the body ends. Returns where the body
/// ended in `input`, as [`ChunkedDecoder::feed`].
pub fn reframe(
    dec: &mut ChunkedDecoder,
    input: &[u8],
    out: &mut Vec<u8>,
) -> Result<Option<usize>, ChunkError> {
    let end = dec.feed(input, |d| encode_chunk(out, d))?;
    if end.is_some() {
        out.extend_from_slice(LAST_CHUNK);
    }
    Ok(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(body: &[u8]) -> Result<(Vec<u8>, Option<usize>), ChunkError> {
        let mut d = ChunkedDecoder::new(1024);
        let mut out = Vec::new();
        let end = d.feed(body, |x| out.extend_from_slice(x))?;
        Ok((out, end))
    }

    #[test]
    fn finds_the_end_in_one_piece() {
        let body = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\n\r\nNEXT";
        let (data, end) = decode_all(body).unwrap();
        assert_eq!(end, Some(body.len() - 4));
        assert_eq!(data, b"Wikipedia");
    }

    #[test]
    fn finds_the_end_byte_by_byte() {
        let body = b"a\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n";
        let mut d = ChunkedDecoder::new(64);
        for (i, b) in body.iter().enumerate() {
            let r = d.feed(std::slice::from_ref(b), |_| {}).unwrap();
            if i + 1 == body.len() {
                assert_eq!(r, Some(1));
            } else {
                assert_eq!(r, None, "at byte {i}");
            }
        }
        assert!(d.is_done());
    }

    #[test]
    fn decodes_payload_across_pieces() {
        let body = b"4\r\nWiki\r\n5 ; a=\"b\"\r\npedia\r\n0\r\n\r\n";
        for split in 1..body.len() {
            let mut d = ChunkedDecoder::new(64);
            let mut out = Vec::new();
            assert_eq!(
                d.feed(&body[..split], |x| out.extend_from_slice(x))
                    .unwrap(),
                None
            );
            let end = d
                .feed(&body[split..], |x| out.extend_from_slice(x))
                .unwrap();
            assert_eq!(end, Some(body.len() - split));
            assert_eq!(out, b"Wikipedia", "split at {split}");
        }
    }

    #[test]
    fn rejects_broken_framing() {
        for bad in [
            &b"zz\r\n"[..],
            b"\r\n",
            b"2\r\nabX",
            b"1234567890abcdef0\r\n",
            b"-1\r\n",
            b"0x1\r\n",
            b"1 2\r\n",
        ] {
            assert!(
                decode_all(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    /// Class 1 of the smuggling issue: a bare LF (or CR) anywhere in the
    /// framing is refused, never passed on.
    #[test]
    fn bare_line_ends_are_refused() {
        for bad in [
            &b"3\nabc\r\n0\r\n\r\n"[..],
            b"3\r\nabc\n0\r\n\r\n",
            b"3\r\nabc\r\n0\n\r\n",
            b"3\r\nabc\r\n0\r\n\n",
            b"3\r\nabc\r\n0\r\n\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
            b"3\r\nabc\r\n0\r\nX: 1\n\r\n",
            b"3\r\nabc\r\n0\r\nX: 1\r\n\n",
            b"3;x\nabc\r\n0\r\n\r\n",
            b"3\rabc\r\n0\r\n\r\n",
            b"3\r\nabc\r\n0\r\nX: 1\rY\r\n\r\n",
            b"3\r\nabc\r\n0\r\n\rX",
            b"3;a\x00b\r\nabc\r\n0\r\n\r\n",
            b"3\r\nabc\r\n0\r\n: v\r\n\r\n",
            b"3\r\nabc\r\n0\r\nX Y: v\r\n\r\n",
        ] {
            assert!(
                decode_all(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn trailers_are_bounded() {
        let mut d = ChunkedDecoder::new(8);
        assert!(d.feed(b"0\r\nX-Long: 123456\r\n\r\n", |_| {}).is_err());
        let mut d = ChunkedDecoder::new(8);
        assert_eq!(d.feed(b"0\r\nX: 1\r\n\r\n", |_| {}).unwrap(), Some(11));
    }

    #[test]
    fn reframing_is_canonical() {
        let body = b"4;name=value\r\nWiki\r\n00005\r\npedia\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        let mut d = ChunkedDecoder::new(64);
        let mut out = Vec::new();
        let end = reframe(&mut d, body, &mut out).unwrap();
        assert_eq!(end, Some(body.len() - 4));
        assert_eq!(out, b"4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n".to_vec());
        // Piecewise: each piece's payload is one chunk; same payload.
        let mut d = ChunkedDecoder::new(64);
        let mut out = Vec::new();
        assert_eq!(reframe(&mut d, &body[..6], &mut out).unwrap(), None);
        assert!(out.is_empty());
        assert_eq!(reframe(&mut d, &body[6..16], &mut out).unwrap(), None);
        assert_eq!(out, b"2\r\nWi\r\n".to_vec());
        out.clear();
        assert_eq!(
            reframe(&mut d, &body[16..], &mut out).unwrap(),
            Some(body.len() - 16 - 4)
        );
        assert_eq!(out, b"2\r\nki\r\n5\r\npedia\r\n0\r\n\r\n".to_vec());
    }
}
