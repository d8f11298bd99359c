//! The TLS parsers that read bytes no one has authenticated yet: the SNI
//! name in a client's first record (`tls::client_hello`) and a
//! certificate's notAfter (`tls::cert::not_after`). Never a panic; a
//! parsed name is lowercase; a record cut short asks for more bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringway::tls::cert;
use ringway::tls::client_hello::{server_name, Hello};

fuzz_target!(|data: &[u8]| {
    let _ = cert::not_after(data);
    let whole = server_name(data);
    if let Hello::Parsed(Some(name)) = &whole {
        assert_eq!(*name, name.to_ascii_lowercase());
    }
    if data.len() >= 5 && data[0] == 22 && data[1] == 3 {
        let end = 5 + u16::from_be_bytes([data[3], data[4]]) as usize;
        if data.len() >= end {
            for cut in [0, 4, end / 2, end.saturating_sub(1)] {
                if cut < end {
                    assert_eq!(server_name(&data[..cut]), Hello::NeedMore);
                }
            }
            assert_eq!(
                server_name(&data[..end]),
                whole,
                "bytes after the record do not matter"
            );
        }
    }
});
