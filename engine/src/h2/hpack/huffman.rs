//! The static Huffman code of RFC 7541 Appendix B, kept as data (the table
//! below is transcribed from the RFC: code aligned to the least significant
//! bit, and its length in bits), and the two directions over it (§5.2).
//!
//! The code is canonical (the RFC says so in Appendix B, and the tests check
//! it against the transcribed codes): codes of one length are consecutive in
//! symbol order, and the first code of length L+1 is one past the last code
//! of length L, shifted left. So decoding needs no tree: a 32-bit window of
//! the input, left-aligned, is compared against one limit per length, and
//! the symbol is found by its offset from the first code of that length.
//! Those per-length tables are computed from the transcribed table at
//! compile time.

use super::HpackError;

/// The end-of-string symbol: its code is 30 one bits; a string that
/// contains it is an error (§5.2).
pub(super) const EOS: usize = 256;

/// Shortest and longest code lengths in the table.
const MIN_LEN: usize = 5;
const MAX_LEN: usize = 30;

/// RFC 7541 Appendix B: `(code aligned to LSB, length in bits)`, indexed
/// by symbol; 256 is EOS.
#[rustfmt::skip]
pub(super) const CODES: [(u32, u8); 257] = [
    // 0..=31: control bytes
    (0x1ff8, 13), (0x7fffd8, 23), (0xfffffe2, 28), (0xfffffe3, 28),
    (0xfffffe4, 28), (0xfffffe5, 28), (0xfffffe6, 28), (0xfffffe7, 28),
    (0xfffffe8, 28), (0xffffea, 24), (0x3ffffffc, 30), (0xfffffe9, 28),
    (0xfffffea, 28), (0x3ffffffd, 30), (0xfffffeb, 28), (0xfffffec, 28),
    (0xfffffed, 28), (0xfffffee, 28), (0xfffffef, 28), (0xffffff0, 28),
    (0xffffff1, 28), (0xffffff2, 28), (0x3ffffffe, 30), (0xffffff3, 28),
    (0xffffff4, 28), (0xffffff5, 28), (0xffffff6, 28), (0xffffff7, 28),
    (0xffffff8, 28), (0xffffff9, 28), (0xffffffa, 28), (0xffffffb, 28),
    // 32..=47: ' ' ! " # $ % & ' ( ) * + , - . /
    (0x14, 6), (0x3f8, 10), (0x3f9, 10), (0xffa, 12),
    (0x1ff9, 13), (0x15, 6), (0xf8, 8), (0x7fa, 11),
    (0x3fa, 10), (0x3fb, 10), (0xf9, 8), (0x7fb, 11),
    (0xfa, 8), (0x16, 6), (0x17, 6), (0x18, 6),
    // 48..=63: 0-9 : ; < = > ?
    (0x0, 5), (0x1, 5), (0x2, 5), (0x19, 6),
    (0x1a, 6), (0x1b, 6), (0x1c, 6), (0x1d, 6),
    (0x1e, 6), (0x1f, 6), (0x5c, 7), (0xfb, 8),
    (0x7ffc, 15), (0x20, 6), (0xffb, 12), (0x3fc, 10),
    // 64..=79: @ A-O
    (0x1ffa, 13), (0x21, 6), (0x5d, 7), (0x5e, 7),
    (0x5f, 7), (0x60, 7), (0x61, 7), (0x62, 7),
    (0x63, 7), (0x64, 7), (0x65, 7), (0x66, 7),
    (0x67, 7), (0x68, 7), (0x69, 7), (0x6a, 7),
    // 80..=95: P-Z [ \ ] ^ _
    (0x6b, 7), (0x6c, 7), (0x6d, 7), (0x6e, 7),
    (0x6f, 7), (0x70, 7), (0x71, 7), (0x72, 7),
    (0xfc, 8), (0x73, 7), (0xfd, 8), (0x1ffb, 13),
    (0x7fff0, 19), (0x1ffc, 13), (0x3ffc, 14), (0x22, 6),
    // 96..=111: ` a-o
    (0x7ffd, 15), (0x3, 5), (0x23, 6), (0x4, 5),
    (0x24, 6), (0x5, 5), (0x25, 6), (0x26, 6),
    (0x27, 6), (0x6, 5), (0x74, 7), (0x75, 7),
    (0x28, 6), (0x29, 6), (0x2a, 6), (0x7, 5),
    // 112..=127: p-z { | } ~ DEL
    (0x2b, 6), (0x76, 7), (0x2c, 6), (0x8, 5),
    (0x9, 5), (0x2d, 6), (0x77, 7), (0x78, 7),
    (0x79, 7), (0x7a, 7), (0x7b, 7), (0x7ffe, 15),
    (0x7fc, 11), (0x3ffd, 14), (0x1ffd, 13), (0xffffffc, 28),
    // 128..=143
    (0xfffe6, 20), (0x3fffd2, 22), (0xfffe7, 20), (0xfffe8, 20),
    (0x3fffd3, 22), (0x3fffd4, 22), (0x3fffd5, 22), (0x7fffd9, 23),
    (0x3fffd6, 22), (0x7fffda, 23), (0x7fffdb, 23), (0x7fffdc, 23),
    (0x7fffdd, 23), (0x7fffde, 23), (0xffffeb, 24), (0x7fffdf, 23),
    // 144..=159
    (0xffffec, 24), (0xffffed, 24), (0x3fffd7, 22), (0x7fffe0, 23),
    (0xffffee, 24), (0x7fffe1, 23), (0x7fffe2, 23), (0x7fffe3, 23),
    (0x7fffe4, 23), (0x1fffdc, 21), (0x3fffd8, 22), (0x7fffe5, 23),
    (0x3fffd9, 22), (0x7fffe6, 23), (0x7fffe7, 23), (0xffffef, 24),
    // 160..=175
    (0x3fffda, 22), (0x1fffdd, 21), (0xfffe9, 20), (0x3fffdb, 22),
    (0x3fffdc, 22), (0x7fffe8, 23), (0x7fffe9, 23), (0x1fffde, 21),
    (0x7fffea, 23), (0x3fffdd, 22), (0x3fffde, 22), (0xfffff0, 24),
    (0x1fffdf, 21), (0x3fffdf, 22), (0x7fffeb, 23), (0x7fffec, 23),
    // 176..=191
    (0x1fffe0, 21), (0x1fffe1, 21), (0x3fffe0, 22), (0x1fffe2, 21),
    (0x7fffed, 23), (0x3fffe1, 22), (0x7fffee, 23), (0x7fffef, 23),
    (0xfffea, 20), (0x3fffe2, 22), (0x3fffe3, 22), (0x3fffe4, 22),
    (0x7ffff0, 23), (0x3fffe5, 22), (0x3fffe6, 22), (0x7ffff1, 23),
    // 192..=207
    (0x3ffffe0, 26), (0x3ffffe1, 26), (0xfffeb, 20), (0x7fff1, 19),
    (0x3fffe7, 22), (0x7ffff2, 23), (0x3fffe8, 22), (0x1ffffec, 25),
    (0x3ffffe2, 26), (0x3ffffe3, 26), (0x3ffffe4, 26), (0x7ffffde, 27),
    (0x7ffffdf, 27), (0x3ffffe5, 26), (0xfffff1, 24), (0x1ffffed, 25),
    // 208..=223
    (0x7fff2, 19), (0x1fffe3, 21), (0x3ffffe6, 26), (0x7ffffe0, 27),
    (0x7ffffe1, 27), (0x3ffffe7, 26), (0x7ffffe2, 27), (0xfffff2, 24),
    (0x1fffe4, 21), (0x1fffe5, 21), (0x3ffffe8, 26), (0x3ffffe9, 26),
    (0xffffffd, 28), (0x7ffffe3, 27), (0x7ffffe4, 27), (0x7ffffe5, 27),
    // 224..=239
    (0xfffec, 20), (0xfffff3, 24), (0xfffed, 20), (0x1fffe6, 21),
    (0x3fffe9, 22), (0x1fffe7, 21), (0x1fffe8, 21), (0x7ffff3, 23),
    (0x3fffea, 22), (0x3fffeb, 22), (0x1ffffee, 25), (0x1ffffef, 25),
    (0xfffff4, 24), (0xfffff5, 24), (0x3ffffea, 26), (0x7ffff4, 23),
    // 240..=255
    (0x3ffffeb, 26), (0x7ffffe6, 27), (0x3ffffec, 26), (0x3ffffed, 26),
    (0x7ffffe7, 27), (0x7ffffe8, 27), (0x7ffffe9, 27), (0x7ffffea, 27),
    (0x7ffffeb, 27), (0xffffffe, 28), (0x7ffffec, 27), (0x7ffffed, 27),
    (0x7ffffee, 27), (0x7ffffef, 27), (0x7fffff0, 27), (0x3ffffee, 26),
    // 256: EOS
    (0x3fffffff, 30),
];

/// The decoding tables, derived from [`CODES`] at compile time.
struct Canonical {
    /// Per length L: one past the last code of length ≤ L, left-aligned in
    /// 32 bits (so a window below it holds a code of length ≤ L). u64:
    /// the last one is exactly 2^32 when the code is complete.
    limit: [u64; MAX_LEN + 1],
    /// Per length L: the first code of that length (LSB-aligned).
    first: [u32; MAX_LEN + 1],
    /// Per length L: where its symbols start in `symbols`.
    offset: [u16; MAX_LEN + 1],
    /// Symbols ordered by (length, symbol).
    symbols: [u16; 257],
}

const fn canonical() -> Canonical {
    let mut t = Canonical {
        limit: [0; MAX_LEN + 1],
        first: [0; MAX_LEN + 1],
        offset: [0; MAX_LEN + 1],
        symbols: [0; 257],
    };
    let mut n = 0usize;
    let mut next_code: u32 = 0;
    let mut len = 1;
    while len <= MAX_LEN {
        next_code <<= 1;
        t.first[len] = next_code;
        t.offset[len] = n as u16;
        let mut sym = 0;
        while sym < CODES.len() {
            if CODES[sym].1 as usize == len {
                t.symbols[n] = sym as u16;
                n += 1;
                next_code += 1;
            }
            sym += 1;
        }
        t.limit[len] = (next_code as u64) << (32 - len);
        len += 1;
    }
    t
}

static CANON: Canonical = canonical();

/// The symbol whose code starts `window` (the next 32 bits of input,
/// left-aligned), and that code's length.
#[inline]
fn lookup(window: u32) -> (usize, u32) {
    let w = u64::from(window);
    let mut len = MIN_LEN;
    // Bounded: 26 lengths. The code is complete (Kraft equality, tested),
    // so limit[MAX_LEN] == 2^32 and every window stops the scan.
    while len < MAX_LEN && w >= CANON.limit[len] {
        len += 1;
    }
    let code = window >> (32 - len);
    let i = CANON.offset[len] as usize + (code - CANON.first[len]) as usize;
    (CANON.symbols[i] as usize, len as u32)
}

/// The length in bytes of `s` Huffman-encoded.
pub(super) fn encoded_len(s: &[u8]) -> usize {
    let bits: usize = s.iter().map(|&b| CODES[b as usize].1 as usize).sum();
    bits.div_ceil(8)
}

/// Appends `s` Huffman-encoded to `out`, padded with the most significant
/// bits of EOS (ones) to a whole byte (§5.2).
pub(super) fn encode(s: &[u8], out: &mut Vec<u8>) {
    out.reserve(encoded_len(s));
    let mut acc: u64 = 0;
    let mut nbits: u32 = 0;
    for &b in s {
        let (code, len) = CODES[b as usize];
        // nbits < 8 here and len <= 30: the bits that matter fit in 64.
        acc = (acc << len) | u64::from(code);
        nbits += u32::from(len);
        while nbits >= 8 {
            nbits -= 8;
            out.push((acc >> nbits) as u8);
        }
    }
    if nbits > 0 {
        out.push(((acc << (8 - nbits)) as u8) | (0xff >> nbits));
    }
}

/// Appends the Huffman decoding of `input` to `out`. Errors per §5.2: the
/// EOS symbol in the string, padding longer than 7 bits, or padding that
/// is not the most significant bits of EOS (all ones).
pub(super) fn decode(input: &[u8], out: &mut Vec<u8>) -> Result<(), HpackError> {
    // Every code is at least 5 bits long.
    out.reserve(input.len() * 8 / MIN_LEN);
    // `acc` holds `nbits` unread bits, left-aligned.
    let mut acc: u64 = 0;
    let mut nbits: u32 = 0;
    let mut bytes = input.iter();
    // Bounded by the input: each turn consumes at least 5 bits or ends.
    loop {
        while nbits <= 56 {
            match bytes.next() {
                Some(&b) => {
                    acc |= u64::from(b) << (56 - nbits);
                    nbits += 8;
                }
                None => break,
            }
        }
        if nbits == 0 {
            return Ok(());
        }
        // Bits past the end read as ones, as padding would be.
        let window = ((acc | u64::MAX.checked_shr(nbits).unwrap_or(0)) >> 32) as u32;
        let (sym, len) = lookup(window);
        if len > nbits {
            // Only at the end of the input (otherwise nbits > 56): what is
            // left is not a whole code, so it must be padding.
            let rest = acc >> (64 - nbits);
            if rest != (1u64 << nbits) - 1 {
                return Err(HpackError::HuffmanPadding);
            }
            if nbits > 7 {
                return Err(HpackError::HuffmanPaddingTooLong);
            }
            return Ok(());
        }
        if sym == EOS {
            return Err(HpackError::HuffmanEos);
        }
        out.push(sym as u8);
        acc <<= len;
        nbits -= len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn dec(input: &[u8]) -> Result<Vec<u8>, HpackError> {
        let mut out = Vec::new();
        decode(input, &mut out).map(|()| out)
    }

    fn enc(s: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode(s, &mut out);
        assert_eq!(out.len(), encoded_len(s));
        out
    }

    #[test]
    fn lengths_are_in_range_and_codes_fit_them() {
        for (sym, &(code, len)) in CODES.iter().enumerate() {
            let len = len as usize;
            assert!((MIN_LEN..=MAX_LEN).contains(&len), "symbol {sym}");
            assert!(
                u64::from(code) < 1u64 << len,
                "symbol {sym}: code wider than {len}"
            );
        }
        assert_eq!(CODES[EOS], (0x3fff_ffff, 30), "EOS is 30 ones");
    }

    #[test]
    fn kraft_equality_the_code_is_complete() {
        // Sum of 2^-len == 1, scaled by 2^30.
        let sum: u64 = CODES.iter().map(|&(_, len)| 1u64 << (30 - len)).sum();
        assert_eq!(sum, 1u64 << 30);
    }

    #[test]
    fn the_transcribed_codes_are_the_canonical_code_of_their_lengths() {
        // Rebuild the canonical code from the lengths alone and compare
        // every transcribed code with it: a typo in a code or a length
        // breaks this (and the prefix property with it).
        let mut count = [0u32; MAX_LEN + 1];
        for &(_, len) in &CODES {
            count[len as usize] += 1;
        }
        let mut next = [0u32; MAX_LEN + 2];
        let mut code = 0u32;
        for len in 1..=MAX_LEN {
            code = (code + count[len - 1]) << 1;
            next[len] = code;
        }
        for (sym, &(c, len)) in CODES.iter().enumerate() {
            assert_eq!(c, next[len as usize], "symbol {sym}");
            next[len as usize] += 1;
        }
        assert_eq!(CANON.limit[MAX_LEN], 1u64 << 32);
    }

    #[test]
    fn no_code_is_a_prefix_of_another() {
        for (a, &(ca, la)) in CODES.iter().enumerate() {
            for (b, &(cb, lb)) in CODES.iter().enumerate() {
                if a != b && la <= lb {
                    assert_ne!(cb >> (lb - la), ca, "{a} is a prefix of {b}");
                }
            }
        }
    }

    #[test]
    fn every_symbol_round_trips_alone_and_in_context() {
        for b in 0..=255u8 {
            let e = enc(&[b]);
            assert_eq!(dec(&e).unwrap(), [b], "symbol {b}");
            let s = [b'a', b, b'Z', b, b];
            assert_eq!(dec(&enc(&s)).unwrap(), s, "symbol {b}");
        }
        let all: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
        assert_eq!(dec(&enc(&all)).unwrap(), all);
    }

    #[test]
    fn lookup_finds_every_code() {
        for (sym, &(code, len)) in CODES.iter().enumerate() {
            let window = (code << (32 - len)) | (u32::MAX >> len);
            assert_eq!(lookup(window), (sym, u32::from(len)));
            assert_eq!(lookup(code << (32 - len)), (sym, u32::from(len)));
        }
    }

    #[test]
    fn appendix_c_strings() {
        // C.4.1, C.4.2, C.4.3, C.6.1, C.6.2, C.6.3.
        let cases: &[(&str, &[u8])] = &[
            ("f1e3 c2e5 f23a 6ba0 ab90 f4ff", b"www.example.com"),
            ("a8eb 1064 9cbf", b"no-cache"),
            ("25a8 49e9 5ba9 7d7f", b"custom-key"),
            ("25a8 49e9 5bb8 e8b4 bf", b"custom-value"),
            ("6402", b"302"),
            ("aec3 771a 4b", b"private"),
            (
                "d07a be94 1054 d444 a820 0595 040b 8166 e082 a62d 1bff",
                b"Mon, 21 Oct 2013 20:13:21 GMT",
            ),
            (
                "9d29 ad17 1863 c78f 0b97 c8e9 ae82 ae43 d3",
                b"https://www.example.com",
            ),
            ("640e ff", b"307"),
            (
                "d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff",
                b"Mon, 21 Oct 2013 20:13:22 GMT",
            ),
            ("9bd9 ab", b"gzip"),
            (
                "94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 \
                 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07",
                b"foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1",
            ),
        ];
        for &(h, s) in cases {
            assert_eq!(enc(s), hex(h), "{}", String::from_utf8_lossy(s));
            assert_eq!(dec(&hex(h)).unwrap(), s);
        }
    }

    #[test]
    fn empty_string() {
        assert_eq!(enc(b""), b"");
        assert_eq!(dec(b"").unwrap(), b"");
    }

    #[test]
    fn padding_rules() {
        // "0" is 00000: padded with three ones it is 0x07.
        assert_eq!(dec(&[0x07]).unwrap(), b"0");
        // Five "0" (25 bits) and seven ones of padding: the longest allowed.
        assert_eq!(dec(&[0, 0, 0, 0x7f]).unwrap(), b"00000");
        // Padding of zeros, or mixed: not the most significant bits of EOS.
        assert_eq!(dec(&[0x00]), Err(HpackError::HuffmanPadding));
        assert_eq!(dec(&[0x04]), Err(HpackError::HuffmanPadding));
        assert_eq!(dec(&[0x06]), Err(HpackError::HuffmanPadding));
        // A byte of ones: 8 bits of padding.
        assert_eq!(dec(&[0xff]), Err(HpackError::HuffmanPaddingTooLong));
        // "0" then 11 ones: 11 bits of padding.
        assert_eq!(dec(&[0x07, 0xff]), Err(HpackError::HuffmanPaddingTooLong));
        // "0" then 27 ones: still padding (EOS needs 30), too long.
        assert_eq!(
            dec(&[0x07, 0xff, 0xff, 0xff]),
            Err(HpackError::HuffmanPaddingTooLong)
        );
        // The whole EOS (30 ones) and two more ones: EOS in the string.
        assert_eq!(dec(&[0xff, 0xff, 0xff, 0xff]), Err(HpackError::HuffmanEos));
        // EOS followed by a symbol.
        assert_eq!(
            dec(&[0xff, 0xff, 0xff, 0xfc, 0x00]),
            Err(HpackError::HuffmanEos)
        );
    }
}
