//! The SNI name in a ClientHello, read from the first bytes a client sends
//! (RFC 8446 §4.1.2, RFC 6066 §3) — no I/O, so it is tested on byte
//! fixtures and fuzzed. rustls picks the certificate from the same
//! message; this copy of the name is for `$ssl_server_name` and for the
//! per-server `min_version` check (rustls's unbuffered connection does not
//! expose the name it saw).
//!
//! Only a ClientHello that fits in the first record is read (every
//! client's does: a few hundred bytes to ~2 KiB with post-quantum key
//! shares, against 16 KiB records); otherwise the name is unknown and
//! rustls alone decides.

/// What the bytes so far say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hello {
    /// Not enough bytes yet for the first record.
    NeedMore,
    /// A ClientHello; the SNI host name when it has one (lowercase).
    Parsed(Option<String>),
    /// Not a ClientHello ringway can read (rustls will judge it).
    Unknown,
}

const CONTENT_HANDSHAKE: u8 = 22;
const HANDSHAKE_CLIENT_HELLO: u8 = 1;
const EXT_SERVER_NAME: u16 = 0;
const NAME_TYPE_HOST: u8 = 0;

/// Read the SNI name from the start of a TLS stream.
pub fn server_name(bytes: &[u8]) -> Hello {
    if bytes.len() < 5 {
        return Hello::NeedMore;
    }
    if bytes[0] != CONTENT_HANDSHAKE || bytes[1] != 3 {
        return Hello::Unknown;
    }
    let len = u16::from_be_bytes([bytes[3], bytes[4]]) as usize;
    if bytes.len() < 5 + len {
        return Hello::NeedMore;
    }
    match parse_hello(&bytes[5..5 + len]) {
        Some(name) => Hello::Parsed(name),
        None => Hello::Unknown,
    }
}

/// A cursor over big-endian TLS fields; every read is bounds-checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    fn u24(&mut self) -> Option<usize> {
        self.take(3)
            .map(|b| (b[0] as usize) << 16 | (b[1] as usize) << 8 | b[2] as usize)
    }

    /// A vector with a `width`-byte length prefix.
    fn vec(&mut self, width: usize) -> Option<Reader<'a>> {
        let n = match width {
            1 => self.u8()? as usize,
            2 => self.u16()? as usize,
            _ => self.u24()?,
        };
        self.take(n).map(Reader)
    }
}

/// `Some(name)` for a whole ClientHello in `record`; `None` when it is not
/// one (or does not fit in this record).
fn parse_hello(record: &[u8]) -> Option<Option<String>> {
    let mut r = Reader(record);
    if r.u8()? != HANDSHAKE_CLIENT_HELLO {
        return None;
    }
    let mut body = r.vec(3)?;
    body.take(2 + 32)?; // legacy_version, random
    body.vec(1)?; // legacy_session_id
    body.vec(2)?; // cipher_suites
    body.vec(1)?; // legacy_compression_methods
    if body.0.is_empty() {
        return Some(None); // no extensions at all
    }
    let mut exts = body.vec(2)?;
    while !exts.0.is_empty() {
        let kind = exts.u16()?;
        let mut data = exts.vec(2)?;
        if kind != EXT_SERVER_NAME {
            continue;
        }
        let mut list = data.vec(2)?;
        while !list.0.is_empty() {
            let name_type = list.u8()?;
            let name = list.vec(2)?.0;
            if name_type == NAME_TYPE_HOST {
                let name = std::str::from_utf8(name).ok()?;
                return Some(Some(name.to_ascii_lowercase()));
            }
        }
        return Some(None);
    }
    Some(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ClientHello record with the given extensions block.
    fn hello(extensions: &[u8]) -> Vec<u8> {
        let mut body = vec![3, 3];
        body.extend_from_slice(&[7; 32]); // random
        body.extend_from_slice(&[0]); // session id
        body.extend_from_slice(&[0, 2, 0x13, 0x01]); // one suite
        body.extend_from_slice(&[1, 0]); // null compression
        body.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
        body.extend_from_slice(extensions);
        let mut hs = vec![HANDSHAKE_CLIENT_HELLO];
        hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        hs.extend_from_slice(&body);
        let mut rec = vec![CONTENT_HANDSHAKE, 3, 1];
        rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
        rec.extend_from_slice(&hs);
        rec
    }

    fn sni(name: &str) -> Vec<u8> {
        let mut entry = vec![NAME_TYPE_HOST];
        entry.extend_from_slice(&(name.len() as u16).to_be_bytes());
        entry.extend_from_slice(name.as_bytes());
        let mut list = (entry.len() as u16).to_be_bytes().to_vec();
        list.extend_from_slice(&entry);
        let mut ext = EXT_SERVER_NAME.to_be_bytes().to_vec();
        ext.extend_from_slice(&(list.len() as u16).to_be_bytes());
        ext.extend_from_slice(&list);
        ext
    }

    #[test]
    fn finds_the_name_among_extensions() {
        let mut exts = vec![0, 10, 0, 4, 0, 2, 0, 0x1d]; // supported_groups
        exts.extend_from_slice(&sni("App.Example.COM"));
        let rec = hello(&exts);
        assert_eq!(
            server_name(&rec),
            Hello::Parsed(Some("app.example.com".into()))
        );
    }

    #[test]
    fn no_sni_and_no_extensions() {
        assert_eq!(server_name(&hello(&[0, 10, 0, 0])), Hello::Parsed(None));
        let mut rec = hello(&[]);
        // Drop the empty extensions block entirely (pre-TLS 1.2 style).
        let n = rec.len();
        rec.truncate(n - 2);
        rec[3..5].copy_from_slice(&((n - 7) as u16).to_be_bytes());
        rec[6..9].copy_from_slice(&((n - 11) as u32).to_be_bytes()[1..]);
        assert_eq!(server_name(&rec), Hello::Parsed(None));
    }

    #[test]
    fn waits_for_the_whole_record() {
        let rec = hello(&sni("a.test"));
        for cut in 0..rec.len() {
            assert_eq!(server_name(&rec[..cut]), Hello::NeedMore, "cut {cut}");
        }
    }

    #[test]
    fn other_bytes_are_unknown_never_a_panic() {
        assert_eq!(server_name(b"GET / HTTP/1.1\r\n\r\n"), Hello::Unknown);
        assert_eq!(server_name(&[22, 3, 1, 0, 1, 2]), Hello::Unknown);
        let rec = hello(&sni("a.test"));
        // Every truncation of the inner lengths, and every byte flipped.
        for i in 5..rec.len() {
            let mut bad = rec.clone();
            bad[i] ^= 0xff;
            let _ = server_name(&bad);
        }
        let mut lying = hello(&sni("a.test"));
        let n = lying.len();
        lying[n - 8] = 0xff; // name length past the end
        assert_eq!(server_name(&lying), Hello::Unknown);
    }
}
