//! The WebSocket opening handshake's key and accept values (RFC 6455
//! §4.1, §4.2.2, §1.3), for bootstrapping WebSockets over HTTP/2 (RFC 8441
//! §5): an HTTP/2 client sends no `Sec-WebSocket-Key`, so ringway makes
//! one up for the HTTP/1.1 upstream and checks the upstream's
//! `Sec-WebSocket-Accept` against it before it tells the client the tunnel
//! is open.
//!
//! `Sec-WebSocket-Key` is 16 random bytes in base64 (RFC 4648 §4, with
//! padding); `Sec-WebSocket-Accept` is base64(SHA-1(key ‖ GUID)), SHA-1 as
//! FIPS 180-4 §6.1 defines it. Both are written here so the engine needs no
//! crate for them: SHA-1 serves only this handshake check (RFC 6455 uses it
//! for no security property; it proves the server read this handshake).

/// The GUID RFC 6455 §1.3 appends to the key.
pub const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The `Sec-WebSocket-Version` ringway speaks (RFC 6455 §4.1).
pub const VERSION: &[u8] = b"13";

/// A `Sec-WebSocket-Key` value: the caller's 16 random bytes in base64.
pub fn key(random: &[u8; 16]) -> [u8; 24] {
    let mut out = [0; 24];
    base64(random, &mut out);
    out
}

/// The `Sec-WebSocket-Accept` value a server answers to `key` (the base64
/// text sent as `Sec-WebSocket-Key`).
pub fn accept(key: &[u8]) -> [u8; 28] {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(GUID);
    let mut out = [0; 28];
    base64(&sha.finish(), &mut out);
    out
}

/// 16 random bytes for a `Sec-WebSocket-Key` (RFC 6455 §4.1: a nonce,
/// not a secret): SipHash under std's per-process random keys (each
/// `RandomState` takes the next of them).
pub fn random16() -> [u8; 16] {
    let mut out = [0u8; 16];
    for half in out.chunks_mut(8) {
        half.copy_from_slice(&random_u64().to_le_bytes());
    }
    out
}

/// A random number from std's per-process random SipHash keys (health
/// check jitter, WebSocket keys): unpredictable enough for spreading and
/// nonces, not for secrets.
pub fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::Instant::now().elapsed().as_nanos());
    h.finish()
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Base64 of `input` with padding (RFC 4648 §4) into `out`, which holds
/// exactly `4 * ceil(len / 3)` bytes.
fn base64(input: &[u8], out: &mut [u8]) {
    debug_assert_eq!(out.len(), input.len().div_ceil(3) * 4);
    for (chunk, dst) in input.chunks(3).zip(out.chunks_mut(4)) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for (i, d) in dst.iter_mut().enumerate() {
            *d = if i <= chunk.len() {
                ALPHABET[(n >> (18 - 6 * i) & 63) as usize]
            } else {
                b'='
            };
        }
    }
}

/// SHA-1 (FIPS 180-4 §6.1), streaming.
struct Sha1 {
    h: [u32; 5],
    block: [u8; 64],
    filled: usize,
    /// Message length in bytes so far.
    len: u64,
}

impl Sha1 {
    fn new() -> Self {
        Sha1 {
            h: [
                0x6745_2301,
                0xEFCD_AB89,
                0x98BA_DCFE,
                0x1032_5476,
                0xC3D2_E1F0,
            ],
            block: [0; 64],
            filled: 0,
            len: 0,
        }
    }

    fn update(&mut self, mut data: &[u8]) {
        self.len = self.len.wrapping_add(data.len() as u64);
        while !data.is_empty() {
            let take = (64 - self.filled).min(data.len());
            self.block[self.filled..self.filled + take].copy_from_slice(&data[..take]);
            self.filled += take;
            data = &data[take..];
            if self.filled == 64 {
                let block = self.block;
                self.compress(&block);
                self.filled = 0;
            }
        }
    }

    fn finish(mut self) -> [u8; 20] {
        // §5.1.1: a 1 bit, zeros to 56 mod 64 bytes, the length in bits.
        let bits = self.len.wrapping_mul(8);
        self.update(&[0x80]);
        while self.filled != 56 {
            self.update(&[0]);
        }
        self.update(&bits.to_be_bytes());
        let mut out = [0; 20];
        for (d, h) in out.chunks_mut(4).zip(self.h) {
            d.copy_from_slice(&h.to_be_bytes());
        }
        out
    }

    fn compress(&mut self, block: &[u8; 64]) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for t in 16..80 {
            w[t] = (w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = self.h;
        for (t, &wt) in w.iter().enumerate() {
            let (f, k) = match t {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let temp = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(wt);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = temp;
        }
        for (h, v) in self.h.iter_mut().zip([a, b, c, d, e]) {
            *h = h.wrapping_add(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha1_hex(parts: &[&[u8]]) -> String {
        let mut s = Sha1::new();
        for p in parts {
            s.update(p);
        }
        s.finish().iter().map(|b| format!("{b:02x}")).collect()
    }

    fn b64(input: &[u8]) -> String {
        let mut out = vec![0; input.len().div_ceil(3) * 4];
        base64(input, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn sha1_known_answers() {
        // FIPS 180-4 examples and the usual edge lengths.
        assert_eq!(sha1_hex(&[b""]), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(
            sha1_hex(&[b"abc"]),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            sha1_hex(&[b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"]),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
        );
        assert_eq!(
            sha1_hex(&[b"The quick brown fox ", b"jumps over the lazy dog"]),
            "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12"
        );
        let million = vec![b'a'; 1_000_000];
        assert_eq!(
            sha1_hex(&[&million[..333_333], &million[333_333..]]),
            "34aa973cd4c4daa4f61eeb2bdbad27316534016f"
        );
    }

    #[test]
    fn base64_vectors() {
        // RFC 4648 §10.
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(b64(i.as_bytes()), o);
        }
        assert_eq!(b64(&[0xfb, 0xff, 0xbf]), "+/+/");
    }

    #[test]
    fn rfc6455_handshake_example() {
        // RFC 6455 §1.3: the nonce "the sample nonce".
        let k = key(b"the sample nonce");
        assert_eq!(&k, b"dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(&accept(&k), b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }
}
