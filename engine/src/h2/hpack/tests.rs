//! HPACK tests: every example of RFC 7541 Appendix C, hand-derived encoder
//! output, each error, the list-size limit (the HPACK bomb included), and
//! randomized round trips against a naive model of the dynamic table.

use super::encode::write_int;
use super::*;

type Field = (Vec<u8>, Vec<u8>, Flags);

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(Vec<u8>, Vec<u8>)> {
    list.iter()
        .map(|&(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}

fn decode(d: &mut Decoder, block: &[u8], max: usize) -> Result<(Vec<Field>, Decoded), HpackError> {
    let mut fields = Vec::new();
    let mut scratch = Vec::new();
    let out = d.decode(block, max, &mut scratch, |n, v, f| {
        fields.push((n.to_vec(), v.to_vec(), f))
    })?;
    assert_eq!(out.fields, fields.len());
    Ok((fields, out))
}

fn decode_ok(d: &mut Decoder, block: &[u8]) -> Vec<Field> {
    let (fields, out) = decode(d, block, usize::MAX).unwrap();
    assert!(!out.oversized);
    fields
}

fn without_flags(fields: &[Field]) -> Vec<(Vec<u8>, Vec<u8>)> {
    fields
        .iter()
        .map(|(n, v, _)| (n.clone(), v.clone()))
        .collect()
}

fn table(d: &Decoder) -> Vec<(Vec<u8>, Vec<u8>)> {
    (0..d.table_len())
        .map(|i| {
            let (n, v) = d.table_entry(i).unwrap();
            (n.to_vec(), v.to_vec())
        })
        .collect()
}

fn err(d: &mut Decoder, block: &[u8]) -> HpackError {
    decode(d, block, usize::MAX).unwrap_err()
}

fn encode(e: &mut Encoder, list: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    e.encode(
        list.iter().map(|&(n, v)| (n.as_bytes(), v.as_bytes())),
        &mut out,
    );
    out
}

// ---- §5.1 integers, Appendix C.1 ----

#[test]
fn c1_integers() {
    let mut out = Vec::new();
    // C.1.1: 10 on a 5-bit prefix (the top three bits belong to the caller).
    write_int(&mut out, 0xe0, 5, 10);
    assert_eq!(out, [0xea]);
    // C.1.2: 1337 on a 5-bit prefix.
    out.clear();
    write_int(&mut out, 0, 5, 1337);
    assert_eq!(out, [0x1f, 0x9a, 0x0a]);
    // C.1.3: 42 starting at a byte boundary (8-bit prefix).
    out.clear();
    write_int(&mut out, 0, 8, 42);
    assert_eq!(out, [0x2a]);

    let mut pos = 0;
    assert_eq!(decode::read_int(&[0xea], &mut pos, 5), Ok(10));
    pos = 0;
    assert_eq!(decode::read_int(&[0x1f, 0x9a, 0x0a], &mut pos, 5), Ok(1337));
    assert_eq!(pos, 3);
    pos = 0;
    assert_eq!(decode::read_int(&[0x2a], &mut pos, 8), Ok(42));
}

#[test]
fn integers_round_trip_at_every_prefix() {
    let values = [
        0usize,
        1,
        14,
        15,
        16,
        126,
        127,
        128,
        254,
        255,
        256,
        16_383,
        1 << 20,
        u32::MAX as usize,
    ];
    for prefix in 1..=8 {
        for &v in &values {
            let mut out = Vec::new();
            write_int(&mut out, 0, prefix, v);
            let mut pos = 0;
            assert_eq!(
                decode::read_int(&out, &mut pos, prefix),
                Ok(v),
                "{v} on {prefix}"
            );
            assert_eq!(pos, out.len());
        }
    }
}

#[test]
fn integer_limits() {
    let mut pos = 0;
    // u32::MAX on a 7-bit prefix: five continuation bytes, accepted.
    let mut max = Vec::new();
    write_int(&mut max, 0x80, 7, u32::MAX as usize);
    assert_eq!(max.len(), 6);
    assert_eq!(decode::read_int(&max, &mut pos, 7), Ok(u32::MAX as usize));
    // One more is past the limit.
    let mut over = Vec::new();
    write_int(&mut over, 0x80, 7, u32::MAX as usize + 1);
    pos = 0;
    assert_eq!(
        decode::read_int(&over, &mut pos, 7),
        Err(HpackError::IntegerOverflow)
    );
    // Zero-padded continuation: a sixth byte is refused whatever its value.
    pos = 0;
    let padded = [0xff, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00];
    assert_eq!(
        decode::read_int(&padded, &mut pos, 7),
        Err(HpackError::IntegerOverflow)
    );
    // Five bytes with a zero tail are fine.
    pos = 0;
    assert_eq!(
        decode::read_int(&[0xff, 0x80, 0x80, 0x80, 0x80, 0x00], &mut pos, 7),
        Ok(127)
    );
}

// ---- Appendix C.2: single representations ----

#[test]
fn c2_1_literal_with_indexing() {
    let mut d = Decoder::new(4096);
    let block = hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572");
    let fields = decode_ok(&mut d, &block);
    assert_eq!(
        without_flags(&fields),
        pairs(&[("custom-key", "custom-header")])
    );
    assert_eq!(table(&d), pairs(&[("custom-key", "custom-header")]));
    assert_eq!(d.table_size(), 55);
}

#[test]
fn c2_2_literal_without_indexing() {
    let mut d = Decoder::new(4096);
    let fields = decode_ok(&mut d, &hex("040c 2f73 616d 706c 652f 7061 7468"));
    assert_eq!(without_flags(&fields), pairs(&[(":path", "/sample/path")]));
    assert!(!fields[0].2.never_indexed);
    assert_eq!(d.table_len(), 0);
    assert_eq!(d.heap_bytes(), 0);
}

#[test]
fn c2_3_literal_never_indexed() {
    let mut d = Decoder::new(4096);
    let fields = decode_ok(&mut d, &hex("1008 7061 7373 776f 7264 0673 6563 7265 74"));
    assert_eq!(without_flags(&fields), pairs(&[("password", "secret")]));
    assert!(fields[0].2.never_indexed);
    assert_eq!(d.table_len(), 0);
}

#[test]
fn c2_4_indexed() {
    let mut d = Decoder::new(4096);
    let fields = decode_ok(&mut d, &hex("82"));
    assert_eq!(without_flags(&fields), pairs(&[(":method", "GET")]));
    assert_eq!(d.table_len(), 0);
}

// ---- Appendix C.3 to C.6: sequences on one connection ----

struct Step<'a> {
    block: &'a str,
    fields: &'a [(&'a str, &'a str)],
    table: &'a [(&'a str, &'a str)],
    size: usize,
}

fn run_steps(max: usize, steps: &[Step<'_>]) {
    let mut d = Decoder::new(max);
    for (i, s) in steps.iter().enumerate() {
        let fields = decode_ok(&mut d, &hex(s.block));
        assert_eq!(without_flags(&fields), pairs(s.fields), "step {}", i + 1);
        assert!(fields.iter().all(|f| !f.2.never_indexed));
        assert_eq!(table(&d), pairs(s.table), "table after step {}", i + 1);
        assert_eq!(d.table_size(), s.size, "size after step {}", i + 1);
    }
}

const REQ1: &[(&str, &str)] = &[
    (":method", "GET"),
    (":scheme", "http"),
    (":path", "/"),
    (":authority", "www.example.com"),
];
const REQ2: &[(&str, &str)] = &[
    (":method", "GET"),
    (":scheme", "http"),
    (":path", "/"),
    (":authority", "www.example.com"),
    ("cache-control", "no-cache"),
];
const REQ3: &[(&str, &str)] = &[
    (":method", "GET"),
    (":scheme", "https"),
    (":path", "/index.html"),
    (":authority", "www.example.com"),
    ("custom-key", "custom-value"),
];
const REQ_TABLE1: &[(&str, &str)] = &[(":authority", "www.example.com")];
const REQ_TABLE2: &[(&str, &str)] = &[
    ("cache-control", "no-cache"),
    (":authority", "www.example.com"),
];
const REQ_TABLE3: &[(&str, &str)] = &[
    ("custom-key", "custom-value"),
    ("cache-control", "no-cache"),
    (":authority", "www.example.com"),
];

#[test]
fn c3_requests_without_huffman() {
    run_steps(
        4096,
        &[
            Step {
                block: "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
                fields: REQ1,
                table: REQ_TABLE1,
                size: 57,
            },
            Step {
                block: "8286 84be 5808 6e6f 2d63 6163 6865",
                fields: REQ2,
                table: REQ_TABLE2,
                size: 110,
            },
            Step {
                block: "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
                fields: REQ3,
                table: REQ_TABLE3,
                size: 164,
            },
        ],
    );
}

#[test]
fn c4_requests_with_huffman() {
    run_steps(
        4096,
        &[
            Step {
                block: "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
                fields: REQ1,
                table: REQ_TABLE1,
                size: 57,
            },
            Step {
                block: "8286 84be 5886 a8eb 1064 9cbf",
                fields: REQ2,
                table: REQ_TABLE2,
                size: 110,
            },
            Step {
                block: "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
                fields: REQ3,
                table: REQ_TABLE3,
                size: 164,
            },
        ],
    );
}

const DATE1: &str = "Mon, 21 Oct 2013 20:13:21 GMT";
const DATE2: &str = "Mon, 21 Oct 2013 20:13:22 GMT";
const LOCATION: &str = "https://www.example.com";
const COOKIE: &str = "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1";

const RESP1: &[(&str, &str)] = &[
    (":status", "302"),
    ("cache-control", "private"),
    ("date", DATE1),
    ("location", LOCATION),
];
const RESP2: &[(&str, &str)] = &[
    (":status", "307"),
    ("cache-control", "private"),
    ("date", DATE1),
    ("location", LOCATION),
];
const RESP3: &[(&str, &str)] = &[
    (":status", "200"),
    ("cache-control", "private"),
    ("date", DATE2),
    ("location", LOCATION),
    ("content-encoding", "gzip"),
    ("set-cookie", COOKIE),
];
const RESP_TABLE1: &[(&str, &str)] = &[
    ("location", LOCATION),
    ("date", DATE1),
    ("cache-control", "private"),
    (":status", "302"),
];
const RESP_TABLE2: &[(&str, &str)] = &[
    (":status", "307"),
    ("location", LOCATION),
    ("date", DATE1),
    ("cache-control", "private"),
];
const RESP_TABLE3: &[(&str, &str)] = &[
    ("set-cookie", COOKIE),
    ("content-encoding", "gzip"),
    ("date", DATE2),
];

#[test]
fn c5_responses_without_huffman_with_eviction() {
    run_steps(
        256,
        &[
            Step {
                block: "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 \
                        4f63 7420 3230 3133 2032 303a 3133 3a32 3120 474d 546e 1768 \
                        7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
                fields: RESP1,
                table: RESP_TABLE1,
                size: 222,
            },
            Step {
                block: "4803 3330 37c1 c0bf",
                fields: RESP2,
                table: RESP_TABLE2,
                size: 222,
            },
            Step {
                block: "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a \
                        3133 3a32 3220 474d 54c0 5a04 677a 6970 7738 666f 6f3d 4153 \
                        444a 4b48 514b 425a 584f 5157 454f 5049 5541 5851 5745 4f49 \
                        553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e \
                        3d31",
                fields: RESP3,
                table: RESP_TABLE3,
                size: 215,
            },
        ],
    );
}

#[test]
fn c6_responses_with_huffman_with_eviction() {
    run_steps(
        256,
        &[
            Step {
                block: "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 \
                        9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 \
                        e9ae 82ae 43d3",
                fields: RESP1,
                table: RESP_TABLE1,
                size: 222,
            },
            Step {
                block: "4883 640e ffc1 c0bf",
                fields: RESP2,
                table: RESP_TABLE2,
                size: 222,
            },
            Step {
                block: "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d \
                        1bff c05a 839b d9ab 77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b \
                        3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed \
                        4ee5 b106 3d50 07",
                fields: RESP3,
                table: RESP_TABLE3,
                size: 215,
            },
        ],
    );
}

// ---- the encoder ----

#[test]
fn encoder_first_block_shrinks_the_peer_table_then_status_200_is_one_byte() {
    let mut e = Encoder::new();
    assert_eq!(encode(&mut e, &[(":status", "200")]), [0x20, 0x88]);
    assert_eq!(encode(&mut e, &[(":status", "200")]), [0x88]);
    assert!(encode(&mut e, &[]).is_empty());
    e.peer_table_size_changed();
    assert_eq!(encode(&mut e, &[(":status", "404")]), [0x20, 0x8d]);
    assert_eq!(encode(&mut e, &[(":status", "500")]), [0x8e]);
}

#[test]
fn encoder_bytes_derived_by_hand() {
    let mut e = Encoder::new();
    e.encode(std::iter::empty(), &mut Vec::new());
    // :status 302: name index 8 on a 4-bit prefix (0000 1000), value
    // Huffman "302" = 64 02 (C.6.1), 2 bytes < 3.
    assert_eq!(encode(&mut e, &[(":status", "302")]), hex("08 82 6402"));
    // cache-control (24): 0f then 24 - 15 = 9; "private" as in C.6.1.
    assert_eq!(
        encode(&mut e, &[("cache-control", "private")]),
        hex("0f09 85 aec3 771a 4b")
    );
    // date (33): 0f then 18; the date as in C.6.1.
    assert_eq!(
        encode(&mut e, &[("date", DATE1)]),
        hex("0f12 96 d07a be94 1054 d444 a820 0595 040b 8166 e082 a62d 1bff")
    );
    // A name not in the static table: 00, then name and value as in C.4.3.
    assert_eq!(
        encode(&mut e, &[("custom-key", "custom-value")]),
        hex("00 88 25a8 49e9 5ba9 7d7f 89 25a8 49e9 5bb8 e8b4 bf")
    );
    // set-cookie (55) is never indexed: 0001 1111, then 55 - 15 = 40.
    assert_eq!(
        encode(&mut e, &[("set-cookie", COOKIE)]),
        hex(
            "1f28 ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 \
             ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07"
        )
    );
    // "x" Huffman-coded is 7 bits, one byte: not shorter, so raw.
    assert_eq!(encode(&mut e, &[("x-a", "x")]), hex("00 03 782d61 01 78"));
    // An empty value: server with no value is static entry 54 (b6).
    assert_eq!(encode(&mut e, &[("server", "")]), [0xb6]);
    assert_eq!(encode(&mut e, &[("x-e", "")]), hex("00 03 782d65 00"));
    // A full static match that must stay never indexed: a literal with the
    // name's index; "200" Huffman is 00010 00000 00000 + 1 = 10 01.
    let mut out = Vec::new();
    e.encode_flagged(
        [(
            &b":status"[..],
            &b"200"[..],
            Flags {
                never_indexed: true,
            },
        )],
        &mut out,
    );
    assert_eq!(out, hex("18 82 1001"));
}

#[test]
fn encoder_output_decodes_back_for_appendix_c_lists() {
    let mut e = Encoder::new();
    let mut d = Decoder::new(4096);
    for list in [REQ1, REQ2, REQ3, RESP1, RESP2, RESP3] {
        let block = encode(&mut e, list);
        let fields = decode_ok(&mut d, &block);
        assert_eq!(without_flags(&fields), pairs(list));
        for (name, _, flags) in &fields {
            assert_eq!(flags.never_indexed, is_sensitive(name));
        }
        // The encoder never inserts: the peer's table stays empty.
        assert_eq!(d.table_len(), 0);
        assert_eq!(d.heap_bytes(), 0);
    }
}

// ---- errors ----

#[test]
fn index_errors() {
    let mut d = Decoder::new(4096);
    assert_eq!(err(&mut d, &[0x80]), HpackError::ZeroIndex);
    let mut d = Decoder::new(4096);
    assert_eq!(
        err(&mut d, &[0xbe]),
        HpackError::IndexOutOfRange { index: 62, len: 61 }
    );
    // A literal's name index past the tables.
    let mut d = Decoder::new(4096);
    assert_eq!(
        err(&mut d, &[0x7e, 0x00]),
        HpackError::IndexOutOfRange { index: 62, len: 61 }
    );
    let mut d = Decoder::new(4096);
    assert_eq!(
        err(&mut d, &hex("0f 30 00")),
        HpackError::IndexOutOfRange { index: 63, len: 61 }
    );
    // After one insertion, 62 is there and 63 is not.
    let mut d = Decoder::new(4096);
    assert_eq!(
        err(&mut d, &hex("4001 61 0162 be bf")),
        HpackError::IndexOutOfRange { index: 63, len: 62 }
    );
}

#[test]
fn integer_overflow_and_truncation_errors() {
    let mut d = Decoder::new(4096);
    assert_eq!(
        err(&mut d, &hex("ff 8080 8080 8001")),
        HpackError::IntegerOverflow
    );
    let mut d = Decoder::new(4096);
    assert_eq!(
        err(&mut d, &hex("ff ffff ffff 7f")),
        HpackError::IntegerOverflow
    );
    // A string length past u32.
    let mut d = Decoder::new(4096);
    assert_eq!(
        err(&mut d, &hex("04 7f ffff ffff 7f")),
        HpackError::IntegerOverflow
    );
    for block in ["ff", "ff80", "40", "400161", "04", "0f", "0f09"] {
        let mut d = Decoder::new(4096);
        assert_eq!(err(&mut d, &hex(block)), HpackError::Truncated, "{block}");
    }
}

#[test]
fn string_beyond_block() {
    let mut d = Decoder::new(4096);
    assert_eq!(
        err(&mut d, &hex("04 05 6162")),
        HpackError::StringBeyondBlock { len: 5, left: 2 }
    );
    let mut d = Decoder::new(4096);
    assert_eq!(
        err(&mut d, &hex("4001")),
        HpackError::StringBeyondBlock { len: 1, left: 0 }
    );
    let mut d = Decoder::new(4096);
    assert_eq!(
        err(&mut d, &hex("00 7f 8001")),
        HpackError::StringBeyondBlock { len: 255, left: 0 }
    );
}

#[test]
fn huffman_errors() {
    let mut d = Decoder::new(4096);
    assert_eq!(err(&mut d, &hex("04 84 ffff ffff")), HpackError::HuffmanEos);
    let mut d = Decoder::new(4096);
    assert_eq!(
        err(&mut d, &hex("04 81 ff")),
        HpackError::HuffmanPaddingTooLong
    );
    let mut d = Decoder::new(4096);
    assert_eq!(err(&mut d, &hex("04 81 00")), HpackError::HuffmanPadding);
    // In a literal name too.
    let mut d = Decoder::new(4096);
    assert_eq!(err(&mut d, &hex("00 81 00 00")), HpackError::HuffmanPadding);
}

#[test]
fn size_update_rules() {
    // Above the advertised maximum (4097 = 31 + 4066: e2 1f).
    let mut d = Decoder::new(4096);
    assert_eq!(
        err(&mut d, &hex("3f e21f")),
        HpackError::SizeUpdateTooLarge {
            size: 4097,
            max: 4096
        }
    );
    // Exactly the maximum, twice, then a field: fine.
    let mut d = Decoder::new(4096);
    let fields = decode_ok(&mut d, &hex("3fe11f 20 82"));
    assert_eq!(without_flags(&fields), pairs(&[(":method", "GET")]));
    // A third one.
    let mut d = Decoder::new(4096);
    assert_eq!(
        err(&mut d, &hex("20 20 20")),
        HpackError::TooManySizeUpdates
    );
    // After a field.
    let mut d = Decoder::new(4096);
    assert_eq!(err(&mut d, &hex("82 20")), HpackError::SizeUpdateNotAtStart);
    // Only at the start of each block: the next block may have one.
    let mut d = Decoder::new(4096);
    decode_ok(&mut d, &hex("20 82"));
    decode_ok(&mut d, &hex("20 82"));
}

#[test]
fn size_update_evicts() {
    let mut d = Decoder::new(4096);
    decode_ok(
        &mut d,
        &hex("8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d"),
    );
    assert_eq!(d.table_len(), 1);
    assert!(d.heap_bytes() > 0);
    // To 0 (clears and frees), back to 4096 (3f e1 1f) in one block.
    let fields = decode_ok(&mut d, &hex("20 3fe11f 82"));
    assert_eq!(fields.len(), 1);
    assert_eq!((d.table_len(), d.table_size(), d.heap_bytes()), (0, 0, 0));
    // The index the entry had is gone.
    assert_eq!(
        err(&mut d, &hex("be")),
        HpackError::IndexOutOfRange { index: 62, len: 61 }
    );
}

#[test]
fn lowered_setting_requires_a_size_update() {
    let mut d = Decoder::new(4096);
    d.set_max_table_size(100);
    assert_eq!(err(&mut d, &hex("82")), HpackError::SizeUpdateMissing);
    let mut d = Decoder::new(4096);
    d.set_max_table_size(100);
    assert_eq!(
        err(&mut d, &[]),
        HpackError::SizeUpdateMissing,
        "an empty block too"
    );
    let mut d = Decoder::new(4096);
    d.set_max_table_size(100);
    // 101 is too large now; 100 = 31 + 69 (3f 45) fits.
    assert_eq!(
        err(&mut d, &hex("3f 46")),
        HpackError::SizeUpdateTooLarge {
            size: 101,
            max: 100
        }
    );
    let mut d = Decoder::new(4096);
    d.set_max_table_size(100);
    decode_ok(&mut d, &hex("3f45 82"));
    decode_ok(&mut d, &hex("82"));
    // A raised setting needs no update, and allows a larger one.
    let mut d = Decoder::new(4096);
    d.set_max_table_size(8192);
    decode_ok(&mut d, &hex("82"));
    decode_ok(&mut d, &hex("3f e13f 82")); // 8192 = 31 + 8161 (e1 3f)
}

// ---- the header list size (RFC 9113 §6.5.2) ----

#[test]
fn list_size_limit_boundary() {
    // a: b is 1 + 1 + 32 = 34.
    let block = hex("00 0161 0162 00 0161 0162");
    let mut d = Decoder::new(4096);
    let (fields, out) = decode(&mut d, &block, 68).unwrap();
    assert_eq!((fields.len(), out.oversized, out.list_size), (2, false, 68));
    let (fields, out) = decode(&mut d, &block, 67).unwrap();
    assert_eq!((fields.len(), out.oversized, out.list_size), (1, true, 68));
    let (fields, out) = decode(&mut d, &block, 34).unwrap();
    assert_eq!((fields.len(), out.oversized), (1, true));
    let (fields, out) = decode(&mut d, &block, 33).unwrap();
    assert_eq!((fields.len(), out.oversized, out.fields), (0, true, 0));
    // Once past the limit, later small fields are not handed out either.
    let block = hex("00 0261 61 0162 00 0161 0162");
    let (fields, out) = decode(&mut d, &block, 34).unwrap();
    assert_eq!((fields.len(), out.oversized, out.list_size), (0, true, 69));
}

#[test]
fn oversized_block_still_updates_the_table() {
    let mut d = Decoder::new(4096);
    let block = hex("4001 61 0162 4001 63 0164");
    let (fields, out) = decode(&mut d, &block, 34).unwrap();
    assert!(out.oversized);
    assert_eq!(without_flags(&fields), pairs(&[("a", "b")]));
    assert_eq!(table(&d), pairs(&[("c", "d"), ("a", "b")]));
    // The next block (a new request) indexes what the dropped one added.
    let fields = decode_ok(&mut d, &hex("be bf"));
    assert_eq!(without_flags(&fields), pairs(&[("c", "d"), ("a", "b")]));
}

#[test]
fn hpack_bomb_costs_bounded_memory_and_work() {
    // One entry of 4 KiB (name "x", a 4000-byte value: 4033 with the
    // overhead) added once, then referenced by one byte (be) until the
    // block is 16 KiB: about 12,000 references, 48 MB of fields if each
    // were handed out.
    let mut block = vec![0x40, 0x01, b'x'];
    write_int(&mut block, 0x00, 7, 4000);
    block.extend(std::iter::repeat_n(b'v', 4000));
    let refs = 16 * 1024 - block.len();
    block.extend(std::iter::repeat_n(0xbe, refs));
    assert_eq!(block.len(), 16 * 1024);

    let mut d = Decoder::new(4096);
    let mut scratch = Vec::new();
    let mut calls = 0;
    let mut bytes = 0;
    let out = d
        .decode(&block, 16 * 1024, &mut scratch, |n, v, _| {
            calls += 1;
            bytes += n.len() + v.len();
        })
        .unwrap();
    assert!(out.oversized);
    // The first four fit in 16 KiB (4 * 4033 = 16132), the rest are counted
    // but never handed out.
    assert_eq!((calls, out.fields), (4, 4));
    assert!(bytes <= 16 * 1024);
    assert_eq!(out.list_size, (refs + 1) * 4033);
    // No Huffman string: the scratch buffer was never touched.
    assert_eq!(scratch.capacity(), 0);
    // The table holds the one entry, no more than its size in memory.
    assert_eq!((d.table_len(), d.table_size()), (1, 4033));
    assert!(d.heap_bytes() <= 2 * 4096, "{}", d.heap_bytes());

    // The same bomb with a Huffman-coded value ("v" is 7 bits: 3500 bytes).
    let mut block = vec![0x40, 0x01, b'x'];
    let mut coded = Vec::new();
    huffman::encode(&[b'v'; 4000], &mut coded);
    write_int(&mut block, 0x80, 7, coded.len());
    block.extend_from_slice(&coded);
    block.extend(std::iter::repeat_n(0xbe, 16 * 1024 - block.len()));
    let mut d = Decoder::new(4096);
    let out = d
        .decode(&block, 16 * 1024, &mut scratch, |_, _, _| calls += 1)
        .unwrap();
    assert!(out.oversized);
    assert_eq!(out.fields, 4);
    // Scratch holds at most 8/5 of the block's Huffman bytes.
    assert!(scratch.capacity() <= 8 * 16 * 1024 / 5);
}

#[test]
fn re_adding_a_large_dynamic_name_copies_nothing() {
    // A 4000-byte name added once, then "literal with indexing, name index
    // 62, empty value" (7e 00) until the block is 16 KiB: each of those
    // two-byte representations adds an entry with the 4000-byte name and
    // evicts the previous one. The name is shared, not copied.
    let mut block = vec![0x40];
    write_int(&mut block, 0, 7, 4000);
    block.extend(std::iter::repeat_n(b'n', 4000));
    block.push(0x00);
    while block.len() + 2 <= 16 * 1024 {
        block.extend([0x7e, 0x00]);
    }
    let mut d = Decoder::new(4096);
    let (fields, out) = decode(&mut d, &block, 16 * 1024).unwrap();
    assert!(out.oversized);
    assert_eq!(fields.len(), 4);
    assert_eq!(table(&d), [(vec![b'n'; 4000], Vec::new())]);
    assert!(d.heap_bytes() <= 4096 + 64, "{}", d.heap_bytes());
}

// ---- memory ----

#[test]
fn idle_memory() {
    // Printed for the record (cargo test -- --nocapture).
    println!(
        "size_of Decoder = {}, Encoder = {}",
        std::mem::size_of::<Decoder>(),
        std::mem::size_of::<Encoder>()
    );
    assert!(std::mem::size_of::<Decoder>() <= 128);
    assert_eq!(std::mem::size_of::<Encoder>(), 1);
    let d = Decoder::new(4096);
    assert_eq!(d.heap_bytes(), 0);
    // A 4096-byte table kept full by a browser-like peer holds about its
    // content: each request adds a few entries of 20 to 100 bytes.
    let mut d = Decoder::default();
    for i in 0..1000usize {
        let mut block = vec![0x82, 0x87];
        for j in 0..3 {
            block.push(0x40);
            let name = format!("x-header-{}", (i + j) % 7);
            let value = "v".repeat((i * 31 + j * 17) % 80);
            write_int(&mut block, 0, 7, name.len());
            block.extend_from_slice(name.as_bytes());
            write_int(&mut block, 0, 7, value.len());
            block.extend_from_slice(value.as_bytes());
        }
        decode_ok(&mut d, &block);
    }
    assert!(d.table_size() <= 4096);
    println!(
        "full table: size {} heap {}",
        d.table_size(),
        d.heap_bytes()
    );
    assert!(d.heap_bytes() <= 2 * 4096, "{}", d.heap_bytes());
}

// ---- randomized round trips ----

/// xorshift64: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    fn bytes(&mut self, max_len: usize) -> Vec<u8> {
        let len = self.below(max_len + 1);
        match self.below(3) {
            // Any byte at all: HPACK strings are opaque.
            0 => (0..len).map(|_| self.next() as u8).collect(),
            // Header-ish text (short Huffman codes).
            1 => (0..len)
                .map(|_| b"abcdefghijklmnopqrstuvwxyz0123456789-/=;., "[self.below(43)])
                .collect(),
            _ => (0..len).map(|_| b'a' + self.below(26) as u8).collect(),
        }
    }
    /// A field: often from the static table (name, or name and value).
    fn field(&mut self) -> (Vec<u8>, Vec<u8>) {
        let (n, v) = table::STATIC_TABLE[self.below(table::STATIC_LEN)];
        match self.below(4) {
            0 => (n.to_vec(), v.to_vec()),
            1 => (n.to_vec(), self.bytes(40)),
            _ => (self.bytes(20), self.bytes(120)),
        }
    }
}

#[test]
fn random_lists_round_trip_through_encoder_and_decoder() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..200 {
        let mut e = Encoder::new();
        let mut d = Decoder::new(4096);
        let mut scratch = Vec::new();
        for _ in 0..10 {
            let list: Vec<(Vec<u8>, Vec<u8>, Flags)> = (0..rng.below(20))
                .map(|_| {
                    let (n, v) = rng.field();
                    (
                        n,
                        v,
                        Flags {
                            never_indexed: rng.chance(20),
                        },
                    )
                })
                .collect();
            let mut block = Vec::new();
            e.encode_flagged(
                list.iter().map(|(n, v, f)| (&n[..], &v[..], *f)),
                &mut block,
            );
            let mut got = Vec::new();
            let out = d
                .decode(&block, usize::MAX, &mut scratch, |n, v, f| {
                    got.push((n.to_vec(), v.to_vec(), f))
                })
                .unwrap();
            assert_eq!(got, list);
            let size: usize = list.iter().map(|(n, v, _)| n.len() + v.len() + 32).sum();
            assert_eq!(out.list_size, size);
            assert_eq!(d.table_len(), 0);
        }
    }
}

/// A naive model of a decoding context: the table as a list, newest
/// first, evicted per §4.4 by recomputing its size.
struct Model {
    table: Vec<(Vec<u8>, Vec<u8>)>,
    max: usize,
}

impl Model {
    fn size(&self) -> usize {
        self.table.iter().map(|(n, v)| n.len() + v.len() + 32).sum()
    }
    fn evict_to(&mut self, max: usize) {
        while self.size() > max {
            self.table.pop();
        }
    }
    fn insert(&mut self, n: &[u8], v: &[u8]) {
        let size = n.len() + v.len() + 32;
        if size > self.max {
            self.table.clear();
            return;
        }
        self.evict_to(self.max - size);
        self.table.insert(0, (n.to_vec(), v.to_vec()));
    }
    fn get(&self, index: usize) -> (Vec<u8>, Vec<u8>) {
        if index <= table::STATIC_LEN {
            let (n, v) = table::STATIC_TABLE[index - 1];
            (n.to_vec(), v.to_vec())
        } else {
            self.table[index - table::STATIC_LEN - 1].clone()
        }
    }
}

fn write_str(rng: &mut Rng, out: &mut Vec<u8>, s: &[u8]) {
    if rng.chance(50) {
        let mut coded = Vec::new();
        huffman::encode(s, &mut coded);
        write_int(out, 0x80, 7, coded.len());
        out.extend_from_slice(&coded);
    } else {
        write_int(out, 0, 7, s.len());
        out.extend_from_slice(s);
    }
}

/// Random blocks using every representation, the dynamic table included
/// (which ringway's own encoder never uses), checked against [`Model`].
#[test]
fn random_blocks_with_indexing_match_a_model_of_the_table() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for round in 0..300 {
        let setting = [0, 64, 256, 1000, 4096][round % 5];
        let mut d = Decoder::new(setting);
        let mut model = Model {
            table: Vec::new(),
            max: setting,
        };
        let mut scratch = Vec::new();
        for _ in 0..8 {
            let mut block = Vec::new();
            for _ in 0..rng.below(3) {
                let size = rng.below(setting + 1);
                write_int(&mut block, 0x20, 5, size);
                model.max = size;
                model.evict_to(size);
            }
            let mut expect = Vec::new();
            for _ in 0..rng.below(30) {
                let count = table::STATIC_LEN + model.table.len();
                let field = match rng.below(5) {
                    0 => {
                        let index = 1 + rng.below(count);
                        write_int(&mut block, 0x80, 7, index);
                        let (n, v) = model.get(index);
                        (n, v, false)
                    }
                    kind => {
                        let (first, prefix) = match kind {
                            1 | 2 => (0x40, 6),
                            3 => (0x00, 4),
                            _ => (0x10, 4),
                        };
                        let name = if rng.chance(60) {
                            let index = 1 + rng.below(count);
                            write_int(&mut block, first, prefix, index);
                            model.get(index).0
                        } else {
                            let name = rng.bytes(30);
                            write_int(&mut block, first, prefix, 0);
                            write_str(&mut rng, &mut block, &name);
                            name
                        };
                        let long = rng.chance(10);
                        let value = rng.bytes(if long { 600 } else { 60 });
                        write_str(&mut rng, &mut block, &value);
                        if first == 0x40 {
                            model.insert(&name, &value);
                        }
                        (name, value, first == 0x10)
                    }
                };
                expect.push(field);
            }
            let mut got = Vec::new();
            d.decode(&block, usize::MAX, &mut scratch, |n, v, f| {
                got.push((n.to_vec(), v.to_vec(), f.never_indexed))
            })
            .unwrap();
            assert_eq!(got, expect);
            assert_eq!(table(&d), model.table);
            assert_eq!(d.table_size(), model.size());
            assert!(
                d.heap_bytes() <= 4 * setting.max(64),
                "{} for {setting}",
                d.heap_bytes()
            );
        }
    }
}

#[test]
fn truncating_any_valid_block_is_an_error_or_a_prefix() {
    // Cutting the C.6.3 block anywhere never panics, and what decodes is
    // a prefix of the list.
    let blocks = [
        "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 \
         2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
        "4883 640e ffc1 c0bf",
    ];
    let first = hex(blocks[0]);
    for cut in 0..=first.len() {
        let mut d = Decoder::new(256);
        let mut fields = Vec::new();
        let mut scratch = Vec::new();
        let _ = d.decode(&first[..cut], usize::MAX, &mut scratch, |n, v, _| {
            fields.push((n.to_vec(), v.to_vec()))
        });
        assert!(pairs(RESP1).starts_with(&fields));
    }
}
