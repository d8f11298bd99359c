//! Just enough HTTP/2 (RFC 9113) for a load client of WebSocket over
//! HTTP/2 (RFC 8441): the client preface and its SETTINGS, an extended
//! CONNECT as one HEADERS frame of literal HPACK fields (RFC 7541 §6.2.2,
//! no Huffman, no indexing, so no dynamic table to keep), DATA and
//! WINDOW_UPDATE frames, frame headers, and the `:status` of a response
//! block. Pure functions on bytes, no I/O; [`crate::client::WsClient`]
//! drives them.

/// DATA.
pub const DATA: u8 = 0x0;
/// HEADERS.
pub const HEADERS: u8 = 0x1;
/// RST_STREAM.
pub const RST_STREAM: u8 = 0x3;
/// SETTINGS.
pub const SETTINGS: u8 = 0x4;
/// PING.
pub const PING: u8 = 0x6;
/// GOAWAY.
pub const GOAWAY: u8 = 0x7;
/// WINDOW_UPDATE.
pub const WINDOW_UPDATE: u8 = 0x8;
/// CONTINUATION.
pub const CONTINUATION: u8 = 0x9;

/// END_STREAM (DATA, HEADERS).
pub const END_STREAM: u8 = 0x1;
/// ACK (SETTINGS, PING).
pub const ACK: u8 = 0x1;
/// END_HEADERS (HEADERS, CONTINUATION).
pub const END_HEADERS: u8 = 0x4;
/// PADDED (DATA, HEADERS).
pub const PADDED: u8 = 0x8;
/// PRIORITY (HEADERS).
pub const PRIORITY: u8 = 0x20;

/// SETTINGS_INITIAL_WINDOW_SIZE.
pub const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;
/// SETTINGS_ENABLE_PUSH.
pub const SETTINGS_ENABLE_PUSH: u16 = 0x2;
/// SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441 §3).
pub const SETTINGS_ENABLE_CONNECT_PROTOCOL: u16 = 0x8;

/// The window the client gives each stream (SETTINGS_INITIAL_WINDOW_SIZE)
/// and, with one WINDOW_UPDATE after the preface, the connection: 1 MiB,
/// topped up once half of it is used.
pub const CLIENT_WINDOW: u32 = 1 << 20;
/// A peer's windows before its SETTINGS say otherwise (§6.9.2).
pub const DEFAULT_WINDOW: i64 = 65_535;
/// The largest DATA payload a peer must accept before its SETTINGS
/// (SETTINGS_MAX_FRAME_SIZE's initial value); the client never sends more.
pub const MAX_DATA: usize = 16_384;

/// The client connection preface (§3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A frame header (§4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Payload length.
    pub len: usize,
    /// Type.
    pub kind: u8,
    /// Flags.
    pub flags: u8,
    /// Stream identifier (reserved bit cleared).
    pub stream: u32,
}

/// Bytes of a frame header.
pub const HEAD_LEN: usize = 9;

/// The frame header at the start of `b`; `None` while incomplete.
pub fn parse_head(b: &[u8]) -> Option<Head> {
    let h = b.get(..HEAD_LEN)?;
    Some(Head {
        len: usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]),
        kind: h[3],
        flags: h[4],
        stream: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff,
    })
}

/// Append a frame header and `payload`.
pub fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = payload.len() as u32;
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
}

/// Append a WINDOW_UPDATE of `inc` for `stream` (0: the connection).
pub fn window_update(out: &mut Vec<u8>, stream: u32, inc: u32) {
    frame(out, WINDOW_UPDATE, 0, stream, &inc.to_be_bytes());
}

/// The preface, the client's SETTINGS (no push, [`CLIENT_WINDOW`] per
/// stream) and the connection's WINDOW_UPDATE up to [`CLIENT_WINDOW`].
pub fn client_start() -> Vec<u8> {
    let mut out = PREFACE.to_vec();
    let mut s = Vec::new();
    for (id, v) in [
        (SETTINGS_ENABLE_PUSH, 0u32),
        (SETTINGS_INITIAL_WINDOW_SIZE, CLIENT_WINDOW),
    ] {
        s.extend_from_slice(&id.to_be_bytes());
        s.extend_from_slice(&v.to_be_bytes());
    }
    frame(&mut out, SETTINGS, 0, 0, &s);
    window_update(&mut out, 0, CLIENT_WINDOW - DEFAULT_WINDOW as u32);
    out
}

/// An HPACK integer with an `n`-bit prefix whose upper bits are `first`
/// (RFC 7541 §5.1).
fn hpack_int(out: &mut Vec<u8>, first: u8, n: u32, mut v: usize) {
    let max = (1usize << n) - 1;
    if v < max {
        out.push(first | v as u8);
        return;
    }
    out.push(first | max as u8);
    v -= max;
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
}

/// A literal field without indexing, new name, neither string Huffman
/// coded (RFC 7541 §6.2.2).
pub fn literal(out: &mut Vec<u8>, name: &str, value: &str) {
    out.push(0x00);
    hpack_int(out, 0, 7, name.len());
    out.extend_from_slice(name.as_bytes());
    hpack_int(out, 0, 7, value.len());
    out.extend_from_slice(value.as_bytes());
}

/// The field block of an RFC 8441 extended CONNECT for a WebSocket.
pub fn connect_block(scheme: &str, authority: &str, path: &str) -> Vec<u8> {
    let mut b = Vec::new();
    for (n, v) in [
        (":method", "CONNECT"),
        (":protocol", "websocket"),
        (":scheme", scheme),
        (":path", path),
        (":authority", authority),
        ("sec-websocket-version", "13"),
    ] {
        literal(&mut b, n, v);
    }
    b
}

/// The HEADERS frame of an extended CONNECT on `stream` (END_HEADERS, the
/// stream left open for the tunnel's DATA).
pub fn connect(stream: u32, scheme: &str, authority: &str, path: &str) -> Vec<u8> {
    let mut out = Vec::new();
    frame(
        &mut out,
        HEADERS,
        END_HEADERS,
        stream,
        &connect_block(scheme, authority, path),
    );
    out
}

/// The payload of a DATA or HEADERS frame without its padding (and, for
/// HEADERS, its priority fields); `None` when malformed.
pub fn unpadded(h: &Head, payload: &[u8]) -> Option<std::ops::Range<usize>> {
    let mut start = 0;
    let mut end = payload.len();
    if h.flags & PADDED != 0 && (h.kind == DATA || h.kind == HEADERS) {
        let pad = usize::from(*payload.first()?);
        start = 1;
        end = end.checked_sub(pad)?;
    }
    if h.kind == HEADERS && h.flags & PRIORITY != 0 {
        start += 5;
    }
    (start <= end).then_some(start..end)
}

/// An HPACK integer with an `n`-bit prefix at the start of `b`: (value,
/// bytes used).
fn read_int(b: &[u8], n: u32) -> Option<(usize, usize)> {
    let max = (1usize << n) - 1;
    let mut v = usize::from(*b.first()?) & max;
    if v < max {
        return Some((v, 1));
    }
    for (i, &c) in b.iter().enumerate().skip(1).take(4) {
        v += usize::from(c & 0x7f) << (7 * (i - 1));
        if c & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

/// The Huffman codes of the digits (RFC 7541 Appendix B): (code, bits).
const HUFFMAN_DIGITS: [(u32, u32); 10] = [
    (0x0, 5),
    (0x1, 5),
    (0x2, 5),
    (0x19, 6),
    (0x1a, 6),
    (0x1b, 6),
    (0x1c, 6),
    (0x1d, 6),
    (0x1e, 6),
    (0x1f, 6),
];

/// A Huffman-coded string of digits (what a `:status` value is), padded
/// with ones; `None` for anything else.
fn huffman_digits(b: &[u8]) -> Option<String> {
    let bits: Vec<bool> = b
        .iter()
        .flat_map(|&c| (0..8).rev().map(move |i| c >> i & 1 == 1))
        .collect();
    let mut out = String::new();
    let mut at = 0;
    'next: while at < bits.len() {
        for (d, &(code, n)) in HUFFMAN_DIGITS.iter().enumerate() {
            let n = n as usize;
            if at + n > bits.len() {
                continue;
            }
            let v = bits[at..at + n]
                .iter()
                .fold(0u32, |v, &b| v << 1 | u32::from(b));
            if v == code {
                out.push(char::from(b'0' + d as u8));
                at += n;
                continue 'next;
            }
        }
        // Padding: fewer than 8 bits, all ones (§5.2).
        return (bits.len() - at < 8 && bits[at..].iter().all(|b| *b)).then_some(out);
    }
    Some(out)
}

/// The `:status` of a response field block, which must come first
/// (RFC 9113 §8.3): an indexed static entry (8–14) or a literal whose name
/// is static entry 8, its value plain or Huffman-coded digits. Dynamic
/// table size updates before it are skipped. `None` when it cannot tell.
pub fn status(block: &[u8]) -> Option<u16> {
    let mut b = block;
    // Dynamic table size updates (001xxxxx).
    while b.first().is_some_and(|c| c & 0xe0 == 0x20) {
        let (_, used) = read_int(b, 5)?;
        b = &b[used..];
    }
    let first = *b.first()?;
    if first & 0x80 != 0 {
        let (idx, _) = read_int(b, 7)?;
        return [200, 204, 206, 304, 400, 404, 500]
            .get(idx.checked_sub(8)?)
            .copied();
    }
    // Literal with incremental indexing (01, 6-bit index), without
    // indexing (0000, 4 bits) or never indexed (0001, 4 bits).
    let (idx, used) = if first & 0xc0 == 0x40 {
        read_int(b, 6)?
    } else {
        read_int(b, 4)?
    };
    if !(8..=14).contains(&idx) {
        return None;
    }
    let b = &b[used..];
    let huffman = b.first()? & 0x80 != 0;
    let (len, used) = read_int(b, 7)?;
    let v = b.get(used..used + len)?;
    let text = if huffman {
        huffman_digits(v)?
    } else {
        std::str::from_utf8(v).ok()?.to_string()
    };
    text.parse().ok()
}

/// A SETTINGS payload's (identifier, value) pairs.
pub fn settings(payload: &[u8]) -> impl Iterator<Item = (u16, u32)> + '_ {
    payload.chunks_exact(6).map(|c| {
        (
            u16::from_be_bytes([c[0], c[1]]),
            u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let mut out = Vec::new();
        frame(&mut out, DATA, END_STREAM, 3, b"hello");
        assert_eq!(out[..HEAD_LEN], [0, 0, 5, 0, 1, 0, 0, 0, 3]);
        let h = parse_head(&out).unwrap();
        assert_eq!(
            h,
            Head {
                len: 5,
                kind: DATA,
                flags: END_STREAM,
                stream: 3
            }
        );
        assert!(parse_head(&out[..8]).is_none());
        let mut w = Vec::new();
        window_update(&mut w, 0, 1 << 20);
        assert_eq!(w, [0, 0, 4, 8, 0, 0, 0, 0, 0, 0, 0x10, 0, 0]);
    }

    #[test]
    fn client_start_is_preface_settings_and_window() {
        let b = client_start();
        assert!(b.starts_with(PREFACE));
        let s = parse_head(&b[PREFACE.len()..]).unwrap();
        assert_eq!((s.kind, s.flags, s.stream, s.len), (SETTINGS, 0, 0, 12));
        let at = PREFACE.len() + HEAD_LEN;
        let got: Vec<_> = settings(&b[at..at + 12]).collect();
        assert_eq!(got, [(2, 0), (4, CLIENT_WINDOW)]);
        let w = parse_head(&b[at + 12..]).unwrap();
        assert_eq!((w.kind, w.stream, w.len), (WINDOW_UPDATE, 0, 4));
        assert_eq!(b.len(), at + 12 + HEAD_LEN + 4);
    }

    #[test]
    fn connect_fields_are_plain_literals() {
        let b = connect_block("https", "localhost", "/ws/");
        // 0x00, name length, name, value length, value.
        assert_eq!(&b[..9], b"\x00\x07:method");
        assert_eq!(&b[9..17], b"\x07CONNECT");
        let text = String::from_utf8_lossy(&b);
        for f in [
            ":protocol",
            "websocket",
            ":path",
            "/ws/",
            "sec-websocket-version",
        ] {
            assert!(text.contains(f), "{f}");
        }
        let mut long = Vec::new();
        literal(&mut long, "x", &"a".repeat(300));
        // 127 in the prefix, then 300 - 127 = 173 = 0xad → 0x2d | 0x80, 0x01.
        assert_eq!(&long[..6], &[0, 1, b'x', 0x7f, 0xad, 0x01]);
        let f = connect(1, "http", "a", "/");
        let h = parse_head(&f).unwrap();
        assert_eq!((h.kind, h.flags, h.stream), (HEADERS, END_HEADERS, 1));
    }

    #[test]
    fn statuses() {
        assert_eq!(status(&[0x88]), Some(200));
        assert_eq!(status(&[0x8d]), Some(404));
        assert_eq!(
            status(&[0x3f, 0xe1, 0x1f, 0x88]),
            Some(200),
            "size update first"
        );
        assert_eq!(status(&[0x08, 0x03, b'2', b'0', b'0']), Some(200));
        assert_eq!(status(&[0x48, 0x03, b'5', b'0', b'3']), Some(503));
        // "200" Huffman-coded: 00010 00000 00000 + 1 bit of padding.
        assert_eq!(status(&[0x48, 0x82, 0x10, 0x01]), Some(200));
        // "101": 00001 00000 00001 + padding.
        assert_eq!(status(&[0x08, 0x82, 0x08, 0x03]), Some(101));
        assert_eq!(status(&[0x82]), None, ":method GET is no status");
        assert_eq!(status(&[0x01, 0x01, b'x']), None);
        assert_eq!(status(&[]), None);
    }

    #[test]
    fn padding_and_priority_are_skipped() {
        let h = Head {
            len: 8,
            kind: DATA,
            flags: PADDED,
            stream: 1,
        };
        assert_eq!(
            unpadded(&h, &[2, b'a', b'b', b'c', b'd', b'e', 0, 0]),
            Some(1..6)
        );
        assert_eq!(unpadded(&h, &[9, 0]), None);
        let h = Head {
            kind: HEADERS,
            flags: PRIORITY,
            ..h
        };
        assert_eq!(unpadded(&h, &[0, 0, 0, 0, 0, 0x88]), Some(5..6));
    }
}
