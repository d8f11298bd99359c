//! RFC 6455 framing, just enough for a load generator and an echo backend:
//! frame headers (§5.2), masking (§5.3), and the echo step the backend runs
//! on its read buffer. Pure functions on bytes, no I/O.

/// Continuation frame (§5.2).
pub const OP_CONT: u8 = 0x0;
/// Text frame.
pub const OP_TEXT: u8 = 0x1;
/// Binary frame.
pub const OP_BINARY: u8 = 0x2;
/// Close frame (§5.5.1).
pub const OP_CLOSE: u8 = 0x8;
/// Ping (§5.5.2).
pub const OP_PING: u8 = 0x9;
/// Pong (§5.5.3).
pub const OP_PONG: u8 = 0xA;
/// The FIN bit of the first header byte.
pub const FIN: u8 = 0x80;

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The first byte: FIN, RSV1-3, opcode.
    pub first: u8,
    /// Payload length.
    pub len: u64,
    /// The masking key, present on client-to-server frames.
    pub mask: Option<[u8; 4]>,
    /// Bytes the header itself takes (2 to 14).
    pub header_len: usize,
}

impl Header {
    /// The opcode (low four bits of the first byte).
    pub fn opcode(&self) -> u8 {
        self.first & 0x0f
    }

    /// Whether FIN is set.
    pub fn fin(&self) -> bool {
        self.first & FIN != 0
    }

    /// Control frames are opcodes 0x8-0xF (§5.5).
    pub fn is_control(&self) -> bool {
        self.opcode() & 0x8 != 0
    }

    /// Header plus payload, or `None` if it cannot fit in memory.
    pub fn frame_len(&self) -> Option<usize> {
        usize::try_from(self.len).ok()?.checked_add(self.header_len)
    }
}

/// Parse a frame header at the start of `b`; `None` while incomplete.
pub fn parse_header(b: &[u8]) -> Option<Header> {
    if b.len() < 2 {
        return None;
    }
    let masked = b[1] & 0x80 != 0;
    let (len, mut at) = match b[1] & 0x7f {
        126 => {
            let l = b.get(2..4)?;
            (u64::from(u16::from_be_bytes([l[0], l[1]])), 4)
        }
        127 => {
            let mut l = [0u8; 8];
            l.copy_from_slice(b.get(2..10)?);
            (u64::from_be_bytes(l), 10)
        }
        n => (u64::from(n), 2),
    };
    let mask = if masked {
        let m = b.get(at..at + 4)?;
        at += 4;
        Some([m[0], m[1], m[2], m[3]])
    } else {
        None
    };
    Some(Header {
        first: b[0],
        len,
        mask,
        header_len: at,
    })
}

/// Append a frame header with the shortest length encoding (§5.2).
pub fn write_header(out: &mut Vec<u8>, first: u8, len: usize, mask: Option<[u8; 4]>) {
    out.push(first);
    let m = if mask.is_some() { 0x80 } else { 0 };
    if len < 126 {
        out.push(m | len as u8);
    } else if let Ok(l) = u16::try_from(len) {
        out.push(m | 126);
        out.extend_from_slice(&l.to_be_bytes());
    } else {
        out.push(m | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    if let Some(k) = mask {
        out.extend_from_slice(&k);
    }
}

/// XOR `data` with the mask, `offset` being the position of `data[0]` in
/// the payload (§5.3).
pub fn apply_mask(data: &mut [u8], mask: [u8; 4], offset: usize) {
    for (i, b) in data.iter_mut().enumerate() {
        *b ^= mask[(offset + i) & 3];
    }
}

/// Append a complete frame; masked when `mask` is given (clients must mask).
pub fn write_frame(out: &mut Vec<u8>, first: u8, payload: &[u8], mask: Option<[u8; 4]>) {
    write_header(out, first, payload.len(), mask);
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(m) = mask {
        apply_mask(&mut out[start..], m, 0);
    }
}

/// The payload of a close frame with a status code (§5.5.1, §7.4).
pub fn close_payload(code: u16) -> [u8; 2] {
    code.to_be_bytes()
}

/// What one pass of the echo over a read buffer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EchoStep {
    /// Bytes of the input taken by complete frames.
    pub consumed: usize,
    /// A close frame was seen and answered; stop reading.
    pub closed: bool,
}

/// Why the echo gave up on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EchoError {
    /// A client frame without a mask (§5.1: the server must close).
    Unmasked,
    /// A frame longer than the configured limit.
    TooLarge,
}

/// Echo every complete frame at the start of `input` into `out`, unmasked:
/// data and continuation frames keep their first byte (so fragmented
/// messages come back fragmented the same way), ping becomes pong, pong is
/// dropped, close is echoed and ends the pass. Unmasks `input` in place.
pub fn echo_step(
    input: &mut [u8],
    out: &mut Vec<u8>,
    max_frame: usize,
) -> Result<EchoStep, EchoError> {
    let mut at = 0;
    while let Some(h) = parse_header(&input[at..]) {
        let total = match h.frame_len() {
            Some(t) if t <= max_frame => t,
            _ => return Err(EchoError::TooLarge),
        };
        if input.len() - at < total {
            break;
        }
        let mask = h.mask.ok_or(EchoError::Unmasked)?;
        let payload = &mut input[at + h.header_len..at + total];
        apply_mask(payload, mask, 0);
        at += total;
        let first = match h.opcode() {
            OP_PONG => continue,
            OP_PING => FIN | OP_PONG,
            _ => h.first,
        };
        write_header(out, first, payload.len(), None);
        out.extend_from_slice(payload);
        if h.opcode() == OP_CLOSE {
            return Ok(EchoStep {
                consumed: at,
                closed: true,
            });
        }
    }
    Ok(EchoStep {
        consumed: at,
        closed: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_all_length_encodings() {
        for len in [0usize, 5, 125, 126, 65535, 65536, 1 << 20] {
            for mask in [None, Some([1, 2, 3, 4])] {
                let mut out = Vec::new();
                write_header(&mut out, FIN | OP_BINARY, len, mask);
                let h = parse_header(&out).unwrap();
                assert_eq!(h.len, len as u64);
                assert_eq!(h.opcode(), OP_BINARY);
                assert!(h.fin());
                assert_eq!(h.mask, mask);
                assert_eq!(h.header_len, out.len());
                assert!(parse_header(&out[..out.len() - 1]).is_none());
            }
        }
    }

    #[test]
    fn rfc6455_examples() {
        // §5.7: a single-frame unmasked text message "Hello".
        let h = parse_header(&[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]).unwrap();
        assert_eq!(
            (h.opcode(), h.len, h.header_len, h.mask),
            (OP_TEXT, 5, 2, None)
        );
        // §5.7: a single-frame masked text message "Hello".
        let mut f = vec![
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let h = parse_header(&f).unwrap();
        apply_mask(&mut f[6..], h.mask.unwrap(), 0);
        assert_eq!(&f[6..], b"Hello");
        // The same frame built by us.
        let mut out = Vec::new();
        write_frame(&mut out, 0x81, b"Hello", Some([0x37, 0xfa, 0x21, 0x3d]));
        assert_eq!(
            out,
            [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
        );
    }

    #[test]
    fn mask_offset_continues_the_key() {
        let mut whole = b"abcdefgh".to_vec();
        apply_mask(&mut whole, [1, 2, 3, 4], 0);
        let mut parts = b"abcdefgh".to_vec();
        let (a, b) = parts.split_at_mut(3);
        apply_mask(a, [1, 2, 3, 4], 0);
        apply_mask(b, [1, 2, 3, 4], 3);
        assert_eq!(whole, parts);
    }

    #[test]
    fn echo_answers_data_ping_and_close() {
        let mut input = Vec::new();
        write_frame(&mut input, FIN | OP_TEXT, b"hi", Some([9, 8, 7, 6]));
        write_frame(&mut input, OP_BINARY, b"frag", Some([1, 1, 1, 1]));
        write_frame(&mut input, FIN | OP_CONT, b"ment", Some([2, 2, 2, 2]));
        write_frame(&mut input, FIN | OP_PING, b"p", Some([3, 3, 3, 3]));
        write_frame(&mut input, FIN | OP_PONG, b"ignored", Some([4, 4, 4, 4]));
        write_frame(
            &mut input,
            FIN | OP_CLOSE,
            &close_payload(1000),
            Some([5, 5, 5, 5]),
        );
        write_frame(
            &mut input,
            FIN | OP_TEXT,
            b"after close",
            Some([6, 6, 6, 6]),
        );
        let mut out = Vec::new();
        let step = echo_step(&mut input, &mut out, 1 << 20).unwrap();
        assert!(step.closed);
        let mut want = Vec::new();
        write_frame(&mut want, FIN | OP_TEXT, b"hi", None);
        write_frame(&mut want, OP_BINARY, b"frag", None);
        write_frame(&mut want, FIN | OP_CONT, b"ment", None);
        write_frame(&mut want, FIN | OP_PONG, b"p", None);
        write_frame(&mut want, FIN | OP_CLOSE, &[0x03, 0xe8], None);
        assert_eq!(out, want);
        assert!(step.consumed < input.len(), "stops after the close frame");
    }

    #[test]
    fn echo_waits_for_a_whole_frame_and_rejects_bad_ones() {
        let mut input = Vec::new();
        write_frame(&mut input, FIN | OP_TEXT, b"hello", Some([1, 2, 3, 4]));
        let mut out = Vec::new();
        let step = echo_step(&mut input[..8], &mut out, 1 << 20).unwrap();
        assert_eq!(
            step,
            EchoStep {
                consumed: 0,
                closed: false
            }
        );
        assert!(out.is_empty());

        let mut unmasked = Vec::new();
        write_frame(&mut unmasked, FIN | OP_TEXT, b"x", None);
        assert_eq!(
            echo_step(&mut unmasked, &mut out, 1 << 20),
            Err(EchoError::Unmasked)
        );

        let mut big = Vec::new();
        write_header(&mut big, FIN | OP_BINARY, 1 << 30, Some([0; 4]));
        assert_eq!(
            echo_step(&mut big, &mut out, 1 << 20),
            Err(EchoError::TooLarge)
        );
    }
}
