//! The PROXY protocol header (`real_ip::proxy_protocol`), read from the
//! first bytes any client of a `proxy_protocol` listener sends. Never a
//! panic; a header never claims more bytes than it was given nor more
//! than the longest header; "incomplete" only below the longest header
//! (below 107 bytes for v1); the header alone, or with more bytes after
//! it, reads the same, and every shorter prefix is incomplete; an error
//! stays the same error whatever bytes follow.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringway::real_ip::proxy_protocol::{parse, Parsed, MAX_HEADER_LEN, V1_MAX};

fuzz_target!(|data: &[u8]| {
    let whole = parse(data);
    match whole {
        Ok(Parsed::Header {
            consumed,
            source,
            destination,
        }) => {
            assert!(
                consumed > 0 && consumed <= data.len(),
                "consumed {consumed}"
            );
            assert!(consumed <= MAX_HEADER_LEN);
            assert_eq!(source.is_some(), destination.is_some());
            if let (Some(s), Some(d)) = (source, destination) {
                assert_eq!(s.is_ipv4(), d.is_ipv4(), "one family");
            }
            assert_eq!(
                parse(&data[..consumed]),
                whole,
                "bytes after the header matter"
            );
            let mut more = data.to_vec();
            more.extend_from_slice(b"\r\n\x00");
            assert_eq!(parse(&more), whole);
            for cut in [0, 1, consumed / 2, consumed - 1] {
                if cut < consumed {
                    assert_eq!(parse(&data[..cut]), Ok(Parsed::Incomplete), "cut {cut}");
                }
            }
        }
        Ok(Parsed::Incomplete) => {
            assert!(data.len() < MAX_HEADER_LEN);
            if data.first() == Some(&b'P') {
                assert!(data.len() < V1_MAX);
            }
        }
        Err(e) => {
            for tail in [&b"\r\n"[..], b" ", b"\0", b"1"] {
                let mut more = data.to_vec();
                more.extend_from_slice(tail);
                assert_eq!(parse(&more), Err(e), "more bytes undo an error");
            }
        }
    }
});
