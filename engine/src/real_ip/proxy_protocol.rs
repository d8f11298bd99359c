//! The PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1
//! and 2) that an L4 balancer writes before the client's first byte: the
//! client's address and port, and the address it connected to. Pure: the
//! caller reads bytes and calls [`parse`] on all it has so far; nothing
//! here does I/O.
//!
//! What is read:
//! - v1 (§2.1): `PROXY TCP4|TCP6 <src> <dst> <sport> <dport>\r\n`, single
//!   spaces, addresses of the declared family (IPv4 dotted quads without
//!   leading zeros, IPv6 text), ports 0-65535 in decimal without sign or
//!   leading zero, CRLF, at most [`V1_MAX`] bytes with the CRLF.
//!   `PROXY UNKNOWN` is followed by CRLF or by a space and anything up to
//!   the first CRLF (the spec says to ignore it); it carries no address.
//! - v2 (§2.2): the 12-byte signature, version 2, command LOCAL (no
//!   address: the connection's own endpoints stand) or PROXY, then the
//!   family/transport byte and the length of what follows. Addresses are
//!   returned for INET and INET6 over STREAM; UNSPEC, UNIX and DGRAM give
//!   none (nginx does the same: it takes the header and keeps the
//!   connection's address). TLVs after the address block are skipped
//!   unread; the length must cover the address block and may not exceed
//!   [`MAX_V2_PAYLOAD`].
//!
//! Anything else is an error, and an error comes as soon as the first byte
//! that cannot begin or continue a valid header is in the buffer: a plain
//! `GET / HTTP/1.1` sent to a `proxy_protocol` listener is refused on its
//! first byte, not after a read timeout. [`Parsed::Incomplete`] means the
//! bytes so far are a valid beginning (for an address or port still being
//! received: made of the right characters, and for IPv4 and ports within
//! range; the whole field is checked once its terminator arrives), and
//! it only ever comes for fewer than [`MAX_HEADER_LEN`] bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The longest v1 header, CRLF included (spec §2.1).
pub const V1_MAX: usize = 107;
/// The v2 signature, the first 12 bytes of every v2 header.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The fixed part of a v2 header: signature, version/command,
/// family/transport, 16-bit length.
pub const V2_HEADER_LEN: usize = 16;
/// The most bytes ringway accepts after the fixed v2 part (address block
/// and TLVs). Balancers send tens of bytes (AWS NLB's VPC endpoint TLV,
/// Azure's link id); the protocol allows 65,535.
pub const MAX_V2_PAYLOAD: usize = 4096;
/// The longest v2 header ringway accepts.
pub const MAX_V2_LEN: usize = V2_HEADER_LEN + MAX_V2_PAYLOAD;
/// The longest header of either version: a read buffer of this size
/// always ends in a [`Parsed::Header`] or an error.
pub const MAX_HEADER_LEN: usize = if MAX_V2_LEN > V1_MAX {
    MAX_V2_LEN
} else {
    V1_MAX
};

const V1_PREFIX: &[u8] = b"PROXY ";
const V2_VERSION: u8 = 2;
const CMD_LOCAL: u8 = 0;
const CMD_PROXY: u8 = 1;
const AF_UNSPEC: u8 = 0;
const AF_INET: u8 = 1;
const AF_INET6: u8 = 2;
const AF_UNIX: u8 = 3;
const TRANSPORT_STREAM: u8 = 1;
const TRANSPORT_MAX: u8 = 2; // DGRAM
const INET_BLOCK: usize = 12;
const INET6_BLOCK: usize = 36;
const UNIX_BLOCK: usize = 216;
/// "255.255.255.255"
const V4_TEXT_MAX: usize = 15;
/// "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"
const V6_TEXT_MAX: usize = 45;
const PORT_TEXT_MAX: usize = 5;

/// What the bytes so far hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// A valid beginning of a header; read more and call again.
    Incomplete,
    /// A whole header in the first `consumed` bytes; what follows is the
    /// client's stream. The addresses are `None` for v1 `UNKNOWN`, a v2
    /// LOCAL command, and v2 families or transports other than
    /// INET/INET6 over STREAM: then the connection's own endpoints stand.
    Header {
        consumed: usize,
        source: Option<SocketAddr>,
        destination: Option<SocketAddr>,
    },
}

/// Why the bytes are not a PROXY protocol header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProxyProtocolError {
    /// Byte `at` can begin neither `PROXY ` nor the v2 signature.
    #[error(
        "not a PROXY protocol header (byte {at} fits neither \"PROXY \" nor the v2 signature)"
    )]
    NotProxyProtocol { at: usize },
    /// A v1 header with a bad part (`protocol`, `source address`, ...).
    #[error("bad PROXY v1 header: {field}")]
    V1Malformed { field: &'static str },
    /// No CRLF within the first [`V1_MAX`] bytes.
    #[error("PROXY v1 header longer than {} bytes", V1_MAX)]
    V1TooLong,
    /// A v2 version other than 2.
    #[error("PROXY v2 header with version {0}")]
    V2Version(u8),
    /// A v2 command other than LOCAL (0) and PROXY (1).
    #[error("PROXY v2 header with command {0}")]
    V2Command(u8),
    /// A v2 PROXY command whose family (above 3) or transport (above 2)
    /// is unassigned.
    #[error("PROXY v2 header with family/transport byte 0x{0:02x}")]
    V2Family(u8),
    /// A v2 length beyond [`MAX_V2_PAYLOAD`].
    #[error("PROXY v2 header announces {len} bytes, more than {}", MAX_V2_PAYLOAD)]
    V2TooLong { len: usize },
    /// A v2 length too short for its family's address block.
    #[error("PROXY v2 header of {len} bytes cannot hold a {need}-byte address block")]
    V2ShortAddresses { len: usize, need: usize },
}

/// Parse the PROXY protocol header at the start of `buf` (v1 or v2,
/// whichever the first byte says).
pub fn parse(buf: &[u8]) -> Result<Parsed, ProxyProtocolError> {
    match buf.first() {
        None => Ok(Parsed::Incomplete),
        Some(b'P') => v1(buf),
        Some(b'\r') => v2(buf),
        Some(_) => Err(ProxyProtocolError::NotProxyProtocol { at: 0 }),
    }
}

/// Why a step of the v1 reader stopped.
enum Stop {
    Incomplete,
    Bad(ProxyProtocolError),
}

impl From<ProxyProtocolError> for Stop {
    fn from(e: ProxyProtocolError) -> Stop {
        Stop::Bad(e)
    }
}

fn malformed(field: &'static str) -> Stop {
    Stop::Bad(ProxyProtocolError::V1Malformed { field })
}

fn v1(buf: &[u8]) -> Result<Parsed, ProxyProtocolError> {
    let line = &buf[..buf.len().min(V1_MAX)];
    match v1_line(line) {
        Ok(parsed) => Ok(parsed),
        Err(Stop::Bad(e)) => Err(e),
        Err(Stop::Incomplete) if buf.len() >= V1_MAX => Err(ProxyProtocolError::V1TooLong),
        Err(Stop::Incomplete) => Ok(Parsed::Incomplete),
    }
}

/// A cursor over the (at most [`V1_MAX`]) bytes of a v1 line.
struct Line<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Line<'a> {
    fn rest(&self) -> &'a [u8] {
        &self.bytes[self.pos..]
    }

    /// Exactly `lit` next: a byte that differs fails at once, a short
    /// buffer that agrees so far is incomplete.
    fn literal(&mut self, lit: &[u8], field: &'static str) -> Result<(), Stop> {
        let rest = self.rest();
        let n = rest.len().min(lit.len());
        if rest[..n] != lit[..n] {
            return Err(malformed(field));
        }
        if n < lit.len() {
            return Err(Stop::Incomplete);
        }
        self.pos += lit.len();
        Ok(())
    }

    /// A non-empty field of at most `max` bytes up to `end` (consumed
    /// too). While `end` has not arrived, the bytes so far must pass
    /// `partial`.
    fn field(
        &mut self,
        end: u8,
        max: usize,
        partial: fn(&[u8]) -> bool,
        field: &'static str,
    ) -> Result<&'a [u8], Stop> {
        let rest = self.rest();
        let window = &rest[..rest.len().min(max + 1)];
        match window.iter().position(|&b| b == end) {
            Some(0) => Err(malformed(field)),
            Some(i) => {
                self.pos += i + 1;
                Ok(&rest[..i])
            }
            None if window.len() > max || !partial(window) => Err(malformed(field)),
            None => Err(Stop::Incomplete),
        }
    }
}

fn v1_line(bytes: &[u8]) -> Result<Parsed, Stop> {
    if let Some(at) = bytes
        .iter()
        .zip(V1_PREFIX)
        .position(|(&b, &want)| b != want)
    {
        return Err(ProxyProtocolError::NotProxyProtocol { at }.into());
    }
    if bytes.len() < V1_PREFIX.len() {
        return Err(Stop::Incomplete);
    }
    let mut line = Line {
        bytes,
        pos: V1_PREFIX.len(),
    };
    let proto = protocol(line.rest())?;
    let six = match proto {
        b"UNKNOWN" => {
            line.pos += proto.len();
            return unknown_tail(&line);
        }
        b"TCP4 " => false,
        _ => true,
    };
    line.pos += proto.len();
    let (addr_max, addr_partial): (usize, fn(&[u8]) -> bool) = if six {
        (V6_TEXT_MAX, v6_partial)
    } else {
        (V4_TEXT_MAX, v4_partial)
    };
    let src = line.field(b' ', addr_max, addr_partial, "source address")?;
    let src = address(src, six).ok_or(malformed("source address"))?;
    let dst = line.field(b' ', addr_max, addr_partial, "destination address")?;
    let dst = address(dst, six).ok_or(malformed("destination address"))?;
    let sport = line.field(b' ', PORT_TEXT_MAX, port_partial, "source port")?;
    let sport = port(sport).ok_or(malformed("source port"))?;
    let dport = line.field(b'\r', PORT_TEXT_MAX, port_partial, "destination port")?;
    let dport = port(dport).ok_or(malformed("destination port"))?;
    line.literal(b"\n", "line ending")?;
    Ok(Parsed::Header {
        consumed: line.pos,
        source: Some(SocketAddr::new(src, sport)),
        destination: Some(SocketAddr::new(dst, dport)),
    })
}

/// Which of `TCP4 `, `TCP6 `, `UNKNOWN` starts `rest`.
fn protocol(rest: &[u8]) -> Result<&'static [u8], Stop> {
    const PROTOCOLS: [&[u8]; 3] = [b"TCP4 ", b"TCP6 ", b"UNKNOWN"];
    let mut could_be = false;
    for p in PROTOCOLS {
        if rest.starts_with(p) {
            return Ok(p);
        }
        could_be |= p.starts_with(rest);
    }
    Err(if could_be {
        Stop::Incomplete
    } else {
        malformed("protocol")
    })
}

/// After `PROXY UNKNOWN`: CRLF, or a space and anything up to the first
/// CRLF (ignored, as the spec says). A lone CR or LF is refused.
fn unknown_tail(line: &Line<'_>) -> Result<Parsed, Stop> {
    let rest = line.rest();
    let tail = match rest.first() {
        None => return Err(Stop::Incomplete),
        Some(b'\r') => rest,
        Some(b' ') => &rest[1..],
        Some(b'\n') => return Err(malformed("line ending")),
        Some(_) => return Err(malformed("protocol")),
    };
    let before_tail = line.pos + (rest.len() - tail.len());
    match tail.iter().position(|&b| b == b'\r' || b == b'\n') {
        None => Err(Stop::Incomplete),
        Some(i) if tail[i] == b'\n' => Err(malformed("line ending")),
        Some(i) => match tail.get(i + 1) {
            None => Err(Stop::Incomplete),
            Some(b'\n') => Ok(Parsed::Header {
                consumed: before_tail + i + 2,
                source: None,
                destination: None,
            }),
            Some(_) => Err(malformed("line ending")),
        },
    }
}

fn address(text: &[u8], six: bool) -> Option<IpAddr> {
    let text = std::str::from_utf8(text).ok()?;
    if six {
        text.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
    } else {
        // std refuses leading zeros in an octet, as the spec does.
        text.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
    }
}

fn port(text: &[u8]) -> Option<u16> {
    if text.is_empty() || !port_partial(text) {
        return None;
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// A decimal number so far: digits, no leading zero, at most `max`.
fn number_prefix(text: &[u8], max: u32) -> bool {
    if !text.iter().all(u8::is_ascii_digit) || (text.len() > 1 && text[0] == b'0') {
        return false;
    }
    let mut n: u32 = 0;
    for &d in text {
        n = n * 10 + u32::from(d - b'0');
        if n > max {
            return false;
        }
    }
    true
}

fn port_partial(text: &[u8]) -> bool {
    text.len() <= PORT_TEXT_MAX && number_prefix(text, u32::from(u16::MAX))
}

/// The beginning of a dotted quad: up to four octets, each (the last one
/// so far) a number 0-255 without a leading zero, the finished ones
/// non-empty.
fn v4_partial(text: &[u8]) -> bool {
    let parts: Vec<&[u8]> = text.split(|&b| b == b'.').collect();
    let Some((last, done)) = parts.split_last() else {
        return true;
    };
    parts.len() <= 4
        && done
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && number_prefix(p, 255))
        && last.len() <= 3
        && number_prefix(last, 255)
}

/// The beginning of IPv6 text: hex digits, colons, and dots (an embedded
/// IPv4 tail).
fn v6_partial(text: &[u8]) -> bool {
    text.iter()
        .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
}

fn v2(buf: &[u8]) -> Result<Parsed, ProxyProtocolError> {
    if let Some(at) = buf
        .iter()
        .zip(&V2_SIGNATURE)
        .position(|(&b, &want)| b != want)
    {
        return Err(ProxyProtocolError::NotProxyProtocol { at });
    }
    let Some(&ver_cmd) = buf.get(V2_SIGNATURE.len()) else {
        return Ok(Parsed::Incomplete);
    };
    if ver_cmd >> 4 != V2_VERSION {
        return Err(ProxyProtocolError::V2Version(ver_cmd >> 4));
    }
    let command = ver_cmd & 0x0f;
    if command != CMD_LOCAL && command != CMD_PROXY {
        return Err(ProxyProtocolError::V2Command(command));
    }
    let Some(&fam) = buf.get(13) else {
        return Ok(Parsed::Incomplete);
    };
    let (family, transport) = (fam >> 4, fam & 0x0f);
    // LOCAL: "the family is ignored" (spec §2.2).
    if command == CMD_PROXY && (family > AF_UNIX || transport > TRANSPORT_MAX) {
        return Err(ProxyProtocolError::V2Family(fam));
    }
    if buf.len() < V2_HEADER_LEN {
        return Ok(Parsed::Incomplete);
    }
    let len = usize::from(be16(buf, 14));
    if len > MAX_V2_PAYLOAD {
        return Err(ProxyProtocolError::V2TooLong { len });
    }
    let need = match (command, family) {
        (CMD_LOCAL, _) | (_, AF_UNSPEC) => 0,
        (_, AF_INET) => INET_BLOCK,
        (_, AF_INET6) => INET6_BLOCK,
        _ => UNIX_BLOCK,
    };
    if len < need {
        return Err(ProxyProtocolError::V2ShortAddresses { len, need });
    }
    let consumed = V2_HEADER_LEN + len;
    if buf.len() < consumed {
        return Ok(Parsed::Incomplete);
    }
    let block = &buf[V2_HEADER_LEN..consumed];
    let (source, destination) = match (command, family, transport) {
        (CMD_PROXY, AF_INET, TRANSPORT_STREAM) => {
            let ip = |at: usize| {
                let mut a = [0u8; 4];
                a.copy_from_slice(&block[at..at + 4]);
                IpAddr::from(a)
            };
            (
                Some(SocketAddr::new(ip(0), be16(block, 8))),
                Some(SocketAddr::new(ip(4), be16(block, 10))),
            )
        }
        (CMD_PROXY, AF_INET6, TRANSPORT_STREAM) => {
            let ip = |at: usize| {
                let mut a = [0u8; 16];
                a.copy_from_slice(&block[at..at + 16]);
                IpAddr::from(a)
            };
            (
                Some(SocketAddr::new(ip(0), be16(block, 32))),
                Some(SocketAddr::new(ip(16), be16(block, 34))),
            )
        }
        _ => (None, None),
    };
    Ok(Parsed::Header {
        consumed,
        source,
        destination,
    })
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> Option<SocketAddr> {
        Some(s.parse().unwrap())
    }

    fn header(consumed: usize, src: &str, dst: &str) -> Result<Parsed, ProxyProtocolError> {
        Ok(Parsed::Header {
            consumed,
            source: sa(src),
            destination: sa(dst),
        })
    }

    fn no_address(consumed: usize) -> Result<Parsed, ProxyProtocolError> {
        Ok(Parsed::Header {
            consumed,
            source: None,
            destination: None,
        })
    }

    /// Every proper prefix of a whole header asks for more bytes.
    fn assert_prefixes_incomplete(whole: &[u8]) {
        for cut in 0..whole.len() {
            assert_eq!(
                parse(&whole[..cut]),
                Ok(Parsed::Incomplete),
                "{:?} cut at {cut}",
                String::from_utf8_lossy(whole)
            );
        }
    }

    /// Once some prefix is an error, every longer one is the same error.
    fn assert_error_sticks(input: &[u8]) -> ProxyProtocolError {
        let mut first = None;
        for cut in 0..=input.len() {
            match (parse(&input[..cut]), first) {
                (Err(e), None) => first = Some(e),
                (r, Some(e)) => assert_eq!(
                    r,
                    Err(e),
                    "{:?} cut at {cut}",
                    String::from_utf8_lossy(input)
                ),
                (Ok(Parsed::Incomplete), None) => {}
                (r, None) => panic!("{:?} parsed: {r:?}", String::from_utf8_lossy(input)),
            }
        }
        first.unwrap_or_else(|| panic!("{:?} never failed", String::from_utf8_lossy(input)))
    }

    // ---- v1 ----

    #[test]
    fn v1_tcp4_and_tcp6() {
        let line = b"PROXY TCP4 192.168.0.1 10.0.0.2 56324 443\r\n";
        let mut stream = line.to_vec();
        stream.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(
            parse(&stream),
            header(line.len(), "192.168.0.1:56324", "10.0.0.2:443")
        );
        assert_prefixes_incomplete(line);

        let line = b"PROXY TCP6 2001:db8::1 ::1 65535 0\r\n";
        assert_eq!(
            parse(line),
            header(line.len(), "[2001:db8::1]:65535", "[::1]:0")
        );
        assert_prefixes_incomplete(line);

        let line = b"PROXY TCP6 ::ffff:1.2.3.4 FE80::A 1 2\r\n";
        assert_eq!(
            parse(line),
            header(line.len(), "[::ffff:1.2.3.4]:1", "[fe80::a]:2")
        );
        assert_prefixes_incomplete(line);

        let line = b"PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n";
        assert_eq!(
            parse(line),
            header(line.len(), "0.0.0.0:0", "255.255.255.255:65535")
        );
    }

    #[test]
    fn v1_longest_tcp6_line_fits() {
        let a = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
        let line = format!("PROXY TCP6 {a} {a} 65535 65535\r\n");
        assert_eq!(line.len(), 104);
        assert_eq!(
            parse(line.as_bytes()),
            header(104, &format!("[{a}]:65535"), &format!("[{a}]:65535"))
        );
        assert_prefixes_incomplete(line.as_bytes());
    }

    #[test]
    fn v1_unknown() {
        let line = b"PROXY UNKNOWN\r\n";
        assert_eq!(parse(b"PROXY UNKNOWN\r\nGET /"), no_address(line.len()));
        assert_prefixes_incomplete(line);

        let line = b"PROXY UNKNOWN ffff:f::1 ::2 1 2\r\n";
        assert_eq!(parse(line), no_address(line.len()));
        assert_prefixes_incomplete(line);

        // Whatever follows UNKNOWN and a space is ignored up to the CRLF.
        let line = b"PROXY UNKNOWN whatever \t junk\r\n";
        assert_eq!(parse(line), no_address(line.len()));

        // The longest UNKNOWN line ends exactly at V1_MAX.
        let mut line = b"PROXY UNKNOWN ".to_vec();
        line.resize(V1_MAX - 2, b'x');
        line.extend_from_slice(b"\r\n");
        assert_eq!(parse(&line), no_address(V1_MAX));
        assert_prefixes_incomplete(&line);
    }

    #[test]
    fn v1_too_long() {
        let mut line = b"PROXY UNKNOWN ".to_vec();
        line.resize(V1_MAX - 1, b'x');
        assert_eq!(parse(&line), Ok(Parsed::Incomplete));
        line.push(b'\r');
        assert_eq!(parse(&line), Err(ProxyProtocolError::V1TooLong));
        line.push(b'\n');
        assert_eq!(parse(&line), Err(ProxyProtocolError::V1TooLong));
    }

    #[test]
    fn v1_malformed_shapes() {
        use ProxyProtocolError::V1Malformed;
        let bad = |field: &'static str| V1Malformed { field };
        let cases: &[(&[u8], ProxyProtocolError)] = &[
            (b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", bad("protocol")),
            (b"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", bad("protocol")),
            (b"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n", bad("protocol")),
            (b"PROXY TCP4\r\n", bad("protocol")),
            (b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", bad("protocol")),
            (b"PROXY UNKNOWNX\r\n", bad("protocol")),
            (b"PROXY UNKNOWN\n", bad("line ending")),
            (b"PROXY UNKNOWN\rX", bad("line ending")),
            (b"PROXY UNKNOWN a\nb\r\n", bad("line ending")),
            (b"PROXY UNKNOWN a\rb\r\n", bad("line ending")),
            (
                b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",
                bad("source address"),
            ),
            (
                b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
                bad("destination address"),
            ),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8  1 2\r\n", bad("source port")),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1  2\r\n",
                bad("destination port"),
            ),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
                bad("destination port"),
            ),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", bad("destination port")),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n", bad("line ending")),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", bad("line ending")),
            (
                b"PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n",
                bad("source address"),
            ),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", bad("source port")),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8\r\n",
                bad("destination address"),
            ),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
                bad("destination port"),
            ),
            (b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n", bad("source address")),
            (
                b"PROXY TCP4 1.2.3.4 ::1 1 2\r\n",
                bad("destination address"),
            ),
            (b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", bad("source address")),
            (
                b"PROXY TCP6 ::1 1.2.3.4 1 2\r\n",
                bad("destination address"),
            ),
            (b"PROXY TCP6 ::1::2 ::1 1 2\r\n", bad("source address")),
            (
                b"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n",
                bad("source address"),
            ),
            (b"PROXY TCP6 [::1] ::1 1 2\r\n", bad("source address")),
            (
                b"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n",
                bad("source address"),
            ),
            (
                b"PROXY TCP4 1.2.3.04 5.6.7.8 1 2\r\n",
                bad("source address"),
            ),
            (b"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", bad("source address")),
            (
                b"PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n",
                bad("source address"),
            ),
            (b"PROXY TCP4 1..3.4 5.6.7.8 1 2\r\n", bad("source address")),
            (
                b"PROXY TCP4 1.2.3.4. 5.6.7.8 1 2\r\n",
                bad("source address"),
            ),
            (
                b"PROXY TCP4 localhost 5.6.7.8 1 2\r\n",
                bad("source address"),
            ),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
                bad("source port"),
            ),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n",
                bad("destination port"),
            ),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n", bad("source port")),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", bad("source port")),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", bad("source port")),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 00 2\r\n", bad("source port")),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1 0x2\r\n",
                bad("destination port"),
            ),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2a\r\n",
                bad("destination port"),
            ),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 000001 2\r\n",
                bad("source port"),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(
                assert_error_sticks(input),
                *want,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn v1_fails_on_the_first_bad_byte() {
        use ProxyProtocolError::{NotProxyProtocol, V1Malformed};
        let not = |at| Err(NotProxyProtocol { at });
        assert_eq!(parse(b"G"), not(0));
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), not(0));
        assert_eq!(parse(b"PO"), not(1));
        assert_eq!(parse(b"POST / HTTP/1.1\r\n"), not(1));
        assert_eq!(parse(b"PROXY\r\n"), not(5));
        assert_eq!(parse(b"PROXYX"), not(5));
        assert_eq!(parse(b"\x16\x03\x01"), not(0));
        let bad = |field| Err(V1Malformed { field });
        assert_eq!(parse(b"PROXY X"), bad("protocol"));
        assert_eq!(parse(b"PROXY TCP4 1.2.3.4x"), bad("source address"));
        assert_eq!(parse(b"PROXY TCP4 1.2.3.400"), bad("source address"));
        assert_eq!(parse(b"PROXY TCP4 1.2.3.40"), Ok(Parsed::Incomplete));
        assert_eq!(parse(b"PROXY TCP4 01"), bad("source address"));
        assert_eq!(parse(b"PROXY TCP4 1.2.3.4.5"), bad("source address"));
        assert_eq!(parse(b"PROXY TCP4 1234567890123456"), bad("source address"));
        assert_eq!(parse(b"PROXY TCP6 ::g"), bad("source address"));
        assert_eq!(
            parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 0"),
            Ok(Parsed::Incomplete)
        );
        assert_eq!(parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 00"), bad("source port"));
        assert_eq!(
            parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 65536"),
            bad("source port")
        );
        assert_eq!(
            parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 6553"),
            Ok(Parsed::Incomplete)
        );
        assert_eq!(
            parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"),
            bad("destination port")
        );
    }

    // ---- v2 ----

    fn v2_header(ver_cmd: u8, fam: u8, payload: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.push(ver_cmd);
        h.push(fam);
        h.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        h.extend_from_slice(payload);
        h
    }

    const INET: [u8; 12] = [192, 168, 0, 1, 10, 0, 0, 2, 0xdc, 0x04, 0x01, 0xbb];

    fn inet6() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        b.extend_from_slice(&"::ffff:10.0.0.2".parse::<Ipv6Addr>().unwrap().octets());
        b.extend_from_slice(&[0xdc, 0x04, 0x01, 0xbb]);
        b
    }

    #[test]
    fn v2_ipv4() {
        let h = v2_header(0x21, 0x11, &INET);
        assert_eq!(h.len(), 28);
        let mut stream = h.clone();
        stream.extend_from_slice(b"GET / HTTP/1.1\r\n");
        assert_eq!(
            parse(&stream),
            header(28, "192.168.0.1:56324", "10.0.0.2:443")
        );
        assert_prefixes_incomplete(&h);
    }

    #[test]
    fn v2_ipv6() {
        let h = v2_header(0x21, 0x21, &inet6());
        assert_eq!(h.len(), 52);
        assert_eq!(
            parse(&h),
            header(52, "[2001:db8::1]:56324", "[::ffff:10.0.0.2]:443")
        );
        assert_prefixes_incomplete(&h);
    }

    #[test]
    fn v2_local() {
        // The health check form: LOCAL, UNSPEC, nothing after.
        let h = v2_header(0x20, 0x00, &[]);
        assert_eq!(parse(&h), no_address(16));
        assert_prefixes_incomplete(&h);
        // LOCAL with an address block: skipped, the family ignored.
        let h = v2_header(0x20, 0x11, &INET);
        assert_eq!(parse(&h), no_address(28));
        let h = v2_header(0x20, 0xff, &[1, 2, 3]);
        assert_eq!(parse(&h), no_address(19));
    }

    #[test]
    fn v2_tlvs_are_skipped() {
        let mut payload = INET.to_vec();
        payload.extend_from_slice(&[0x01, 0x00, 0x02, b'h', b'2']); // ALPN
        payload.extend_from_slice(&[0x04, 0x00, 0x03, 0, 0, 0]); // NOOP
        payload.extend_from_slice(&[0xea, 0x00, 0x05, b'v', b'p', b'c', b'-', b'1']); // AWS
        let h = v2_header(0x21, 0x11, &payload);
        let mut stream = h.clone();
        stream.extend_from_slice(b"\x16\x03\x01");
        assert_eq!(
            parse(&stream),
            header(h.len(), "192.168.0.1:56324", "10.0.0.2:443")
        );
        assert_prefixes_incomplete(&h);
        // TLVs are not read: a broken one does not matter.
        let mut payload = inet6();
        payload.extend_from_slice(&[0x20, 0xff, 0xff]);
        let h = v2_header(0x21, 0x21, &payload);
        assert_eq!(
            parse(&h),
            header(h.len(), "[2001:db8::1]:56324", "[::ffff:10.0.0.2]:443")
        );
    }

    #[test]
    fn v2_without_usable_addresses() {
        // UNSPEC family, DGRAM and UNSPEC transports, UNIX: taken, no address.
        assert_eq!(parse(&v2_header(0x21, 0x00, &[])), no_address(16));
        assert_eq!(parse(&v2_header(0x21, 0x12, &INET)), no_address(28));
        assert_eq!(parse(&v2_header(0x21, 0x10, &INET)), no_address(28));
        assert_eq!(parse(&v2_header(0x21, 0x22, &inet6())), no_address(52));
        assert_eq!(parse(&v2_header(0x21, 0x31, &[0; 216])), no_address(232));
        assert_eq!(parse(&v2_header(0x21, 0x32, &[0; 216])), no_address(232));
    }

    #[test]
    fn v2_bad_signature_fails_at_the_differing_byte() {
        let h = v2_header(0x21, 0x11, &INET);
        for i in 0..V2_SIGNATURE.len() {
            let mut bad = h.clone();
            bad[i] ^= 0x40;
            let want = Err(ProxyProtocolError::NotProxyProtocol { at: i });
            assert_eq!(parse(&bad[..=i]), want, "byte {i}");
            assert_eq!(parse(&bad), want, "byte {i}");
            for cut in 0..i {
                assert_eq!(parse(&bad[..cut]), Ok(Parsed::Incomplete));
            }
        }
        // The v1 text is not a v2 header and vice versa.
        assert_eq!(
            parse(b"\r\nGET"),
            Err(ProxyProtocolError::NotProxyProtocol { at: 2 })
        );
    }

    #[test]
    fn v2_bad_version_and_command() {
        for v in [0x0, 0x1, 0x3, 0xf] {
            let h = v2_header(v << 4 | 1, 0x11, &INET);
            assert_eq!(parse(&h[..13]), Err(ProxyProtocolError::V2Version(v)));
            assert_eq!(parse(&h), Err(ProxyProtocolError::V2Version(v)));
        }
        for c in 2..=0xf {
            let h = v2_header(0x20 | c, 0x11, &INET);
            assert_eq!(parse(&h[..13]), Err(ProxyProtocolError::V2Command(c)));
            assert_eq!(parse(&h), Err(ProxyProtocolError::V2Command(c)));
        }
    }

    #[test]
    fn v2_unassigned_family_or_transport() {
        for fam in [0x41, 0xf1, 0x13, 0x1f, 0x03] {
            let h = v2_header(0x21, fam, &INET);
            assert_eq!(parse(&h[..14]), Err(ProxyProtocolError::V2Family(fam)));
            assert_eq!(parse(&h), Err(ProxyProtocolError::V2Family(fam)));
        }
    }

    #[test]
    fn v2_length_bounds() {
        // Beyond the limit: refused as soon as the length is read.
        let mut h = v2_header(0x21, 0x11, &INET);
        h[14..16].copy_from_slice(&((MAX_V2_PAYLOAD + 1) as u16).to_be_bytes());
        let want = Err(ProxyProtocolError::V2TooLong {
            len: MAX_V2_PAYLOAD + 1,
        });
        assert_eq!(parse(&h[..16]), want);
        assert_eq!(parse(&h), want);
        h[14..16].copy_from_slice(&u16::MAX.to_be_bytes());
        assert_eq!(
            parse(&h[..16]),
            Err(ProxyProtocolError::V2TooLong { len: 65535 })
        );
        // At the limit: read.
        let mut payload = INET.to_vec();
        payload.resize(MAX_V2_PAYLOAD, 0);
        let h = v2_header(0x21, 0x11, &payload);
        assert_eq!(h.len(), MAX_V2_LEN);
        assert_eq!(parse(&h[..MAX_V2_LEN - 1]), Ok(Parsed::Incomplete));
        assert_eq!(
            parse(&h),
            header(MAX_V2_LEN, "192.168.0.1:56324", "10.0.0.2:443")
        );
        // Too short for the address block.
        for (fam, need) in [(0x11, 12), (0x12, 12), (0x21, 36), (0x31, 216)] {
            let h = v2_header(0x21, fam, &[0; 11]);
            let want = Err(ProxyProtocolError::V2ShortAddresses { len: 11, need });
            assert_eq!(parse(&h[..16]), want);
            assert_eq!(parse(&h), want);
        }
        let h = v2_header(0x21, 0x21, &INET);
        assert_eq!(
            parse(&h),
            Err(ProxyProtocolError::V2ShortAddresses { len: 12, need: 36 })
        );
    }

    #[test]
    fn incomplete_only_below_the_longest_header() {
        assert_eq!(MAX_HEADER_LEN, MAX_V2_LEN);
        const { assert!(MAX_HEADER_LEN >= V1_MAX) };
        assert_eq!(parse(&[]), Ok(Parsed::Incomplete));
    }
}
