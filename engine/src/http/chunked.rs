//! A scanner that finds where a chunked body ends (RFC 9112 §7.1) without
//! decoding it, so the body can be relayed byte for byte as it streams.

/// Error: the chunked framing is broken (→ 400 from a client, 502 from an
/// upstream).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkError(pub &'static str);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the hex chunk size; `digits` seen so far.
    Size {
        digits: u8,
    },
    /// In chunk extensions, up to CR.
    Ext,
    /// Expecting LF after the size line.
    SizeLf,
    /// In chunk data.
    Data,
    DataCr,
    DataLf,
    /// At the start of a trailer line (or the final CRLF).
    TrailerStart,
    /// Inside a trailer field line.
    Trailer,
    TrailerLf,
    /// Expecting the LF of the terminating CRLF.
    EndLf,
    Done,
}

#[derive(Debug, Clone)]
pub struct ChunkedScanner {
    state: State,
    /// Remaining data bytes of the current chunk, or the size being read.
    size: u64,
}

impl Default for ChunkedScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedScanner {
    pub fn new() -> Self {
        Self {
            state: State::Size { digits: 0 },
            size: 0,
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Feed the next bytes of the body. Returns `Some(n)` when the body ends
    /// after `n` bytes of `data` (the rest belongs to the next message), or
    /// `None` when all of `data` is body and more is needed.
    pub fn feed(&mut self, data: &[u8]) -> Result<Option<usize>, ChunkError> {
        self.feed_with(data, |_| {})
    }

    /// Like `feed`, also handing each run of decoded payload bytes to
    /// `on_data` (for a client that cannot take chunked: HTTP/1.0).
    pub fn feed_with(
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
                        if digits >= 15 {
                            return Err(ChunkError("chunk size too large"));
                        }
                        let v = (b as char).to_digit(16).unwrap_or(0) as u64;
                        self.size = self.size * 16 + v;
                        self.state = State::Size { digits: digits + 1 };
                    }
                    b';' | b' ' | b'\t' if digits > 0 => self.state = State::Ext,
                    b'\r' if digits > 0 => self.state = State::SizeLf,
                    _ => return Err(ChunkError("bad chunk size")),
                },
                State::Ext => {
                    if b == b'\r' {
                        self.state = State::SizeLf;
                    } else if b == b'\n' {
                        return Err(ChunkError("bare LF in chunk extension"));
                    }
                }
                State::SizeLf => {
                    if b != b'\n' {
                        return Err(ChunkError("expected LF after chunk size"));
                    }
                    self.state = if self.size == 0 {
                        State::TrailerStart
                    } else {
                        State::Data
                    };
                }
                State::Data => {
                    let take = (self.size as usize).min(data.len() - i);
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
                        return Err(ChunkError("expected CRLF after chunk data"));
                    }
                    self.state = State::DataLf;
                }
                State::DataLf => {
                    if b != b'\n' {
                        return Err(ChunkError("expected CRLF after chunk data"));
                    }
                    self.size = 0;
                    self.state = State::Size { digits: 0 };
                }
                State::TrailerStart => {
                    self.state = if b == b'\r' {
                        State::EndLf
                    } else {
                        State::Trailer
                    };
                }
                State::Trailer => {
                    if b == b'\r' {
                        self.state = State::TrailerLf;
                    }
                }
                State::TrailerLf => {
                    if b != b'\n' {
                        return Err(ChunkError("bad trailer line"));
                    }
                    self.state = State::TrailerStart;
                }
                State::EndLf => {
                    if b != b'\n' {
                        return Err(ChunkError("bad end of chunked body"));
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_end_in_one_piece() {
        let body = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\n\r\nNEXT";
        let mut s = ChunkedScanner::new();
        assert_eq!(s.feed(body).unwrap(), Some(body.len() - 4));
        assert!(s.is_done());
    }

    #[test]
    fn finds_the_end_byte_by_byte() {
        let body = b"a\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n";
        let mut s = ChunkedScanner::new();
        for (i, b) in body.iter().enumerate() {
            let r = s.feed(std::slice::from_ref(b)).unwrap();
            if i + 1 == body.len() {
                assert_eq!(r, Some(1));
            } else {
                assert_eq!(r, None, "at byte {i}");
            }
        }
    }

    #[test]
    fn decodes_payload_across_pieces() {
        let body = b"4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n";
        for split in 1..body.len() {
            let mut s = ChunkedScanner::new();
            let mut out = Vec::new();
            assert_eq!(
                s.feed_with(&body[..split], |d| out.extend_from_slice(d))
                    .unwrap(),
                None
            );
            let end = s
                .feed_with(&body[split..], |d| out.extend_from_slice(d))
                .unwrap();
            assert_eq!(end, Some(body.len() - split));
            assert_eq!(out, b"Wikipedia", "split at {split}");
        }
    }

    #[test]
    fn rejects_broken_framing() {
        assert!(ChunkedScanner::new().feed(b"zz\r\n").is_err());
        assert!(ChunkedScanner::new().feed(b"\r\n").is_err());
        assert!(ChunkedScanner::new().feed(b"2\r\nabX").is_err());
        assert!(ChunkedScanner::new()
            .feed(b"1234567890abcdef0\r\n")
            .is_err());
    }
}
