//! HPACK decoding (`h2::hpack`): arbitrary bytes as a sequence of header
//! blocks on one connection. Never a panic; the dynamic table never passes
//! its maximum and its memory stays a small multiple of it; the fields
//! handed out never pass the list limit, and when the list is not
//! oversized they are the whole list; and every decoded list, encoded by
//! ringway's encoder (flags kept), decodes back to the same list.
//!
//! Input: one byte chooses the table size ringway advertises and the list
//! limit; then blocks, each after a length byte (0xff: the rest of the
//! input; 0xfe: not a block, the next byte lowers or raises the setting).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringway::h2::hpack::{Decoder, Encoder, Flags};

type Field = (Vec<u8>, Vec<u8>, Flags);

fuzz_target!(|data: &[u8]| {
    let Some((&config, mut rest)) = data.split_first() else {
        return;
    };
    let mut setting = [0, 64, 256, 4096][usize::from(config & 3)];
    let limit = [64, 1024, 16 * 1024, usize::MAX][usize::from(config >> 2 & 3)];
    let mut dec = Decoder::new(setting);
    let mut enc = Encoder::new();
    let mut check = Decoder::new(4096);
    let mut scratch = Vec::new();
    let mut largest = setting;
    while let Some((&len, tail)) = rest.split_first() {
        if len == 0xfe {
            let Some((&s, tail)) = tail.split_first() else {
                return;
            };
            setting = usize::from(s) * 32;
            largest = largest.max(setting);
            dec.set_max_table_size(setting);
            rest = tail;
            continue;
        }
        let len = if len == 0xff {
            tail.len()
        } else {
            usize::from(len).min(tail.len())
        };
        let (block, tail) = tail.split_at(len);
        rest = tail;

        let mut fields: Vec<Field> = Vec::new();
        let out = match dec.decode(block, limit, &mut scratch, |n, v, f| {
            fields.push((n.to_vec(), v.to_vec(), f))
        }) {
            Ok(out) => out,
            // A COMPRESSION_ERROR ends the connection.
            Err(_) => return,
        };
        assert!(dec.table_size() <= largest);
        assert!(
            dec.heap_bytes() <= 5 * largest + 1024,
            "table of {} holds {} bytes",
            largest,
            dec.heap_bytes()
        );
        assert_eq!(out.fields, fields.len());
        let handed: usize = fields.iter().map(|(n, v, _)| n.len() + v.len() + 32).sum();
        assert!(handed <= limit);
        assert!(handed <= out.list_size);
        assert_eq!(out.oversized, out.list_size > limit);
        if !out.oversized {
            assert_eq!(handed, out.list_size);
        }

        // ringway's encoder reads back the same way, flags included.
        let mut encoded = Vec::new();
        enc.encode_flagged(
            fields.iter().map(|(n, v, f)| (&n[..], &v[..], *f)),
            &mut encoded,
        );
        let mut again: Vec<Field> = Vec::new();
        check
            .decode(&encoded, usize::MAX, &mut scratch, |n, v, f| {
                again.push((n.to_vec(), v.to_vec(), f))
            })
            .expect("ringway's own encoding decodes");
        assert_eq!(again, fields);
        assert_eq!(check.table_len(), 0, "the encoder never indexes");
    }
});
