//! The chunked decoder and re-framer. For any input: feeding it whole or
//! in two pieces gives the same result; when a body ends, what ringway
//! re-emits is canonical (`<hex, no leading zero>\r\n<data>\r\n`… then
//! `0\r\n\r\n`, nothing else), decodes back to the same payload, and ends
//! exactly where it says.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringway::http::chunked::{reframe, ChunkedDecoder};

fn decode(input: &[u8], split: usize) -> (Result<Option<usize>, ()>, Vec<u8>, Vec<u8>) {
    let mut dec = ChunkedDecoder::new(256);
    let mut payload = Vec::new();
    let mut out = Vec::new();
    let split = split.min(input.len());
    let mut r = dec
        .feed(&input[..split], |d| payload.extend_from_slice(d))
        .map_err(|_| ());
    if let Ok(None) = r {
        r = dec
            .feed(&input[split..], |d| payload.extend_from_slice(d))
            .map(|e| e.map(|n| n + split))
            .map_err(|_| ());
    }
    let mut dec2 = ChunkedDecoder::new(256);
    let _ = reframe(&mut dec2, input, &mut out);
    (r, payload, out)
}

/// An independent reading of canonical chunked framing.
fn canonical(out: &[u8]) -> Vec<u8> {
    let mut rest = out;
    let mut payload = Vec::new();
    loop {
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk line");
        let size_text = std::str::from_utf8(&rest[..line_end]).unwrap();
        assert!(
            !size_text.is_empty()
                && size_text
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert!(
            size_text == "0" || !size_text.starts_with('0'),
            "leading zero: {size_text}"
        );
        let size = usize::from_str_radix(size_text, 16).unwrap();
        rest = &rest[line_end + 2..];
        if size == 0 {
            assert_eq!(rest, b"\r\n", "only the final CRLF after the last chunk");
            return payload;
        }
        payload.extend_from_slice(&rest[..size]);
        assert_eq!(&rest[size..size + 2], b"\r\n");
        rest = &rest[size + 2..];
    }
}

fuzz_target!(|data: &[u8]| {
    let (split, input) = match data.split_first() {
        Some((&s, rest)) => (s as usize, rest),
        None => return,
    };
    let (whole, payload, out) = decode(input, input.len());
    let (pieces, payload2, _) = decode(input, split);
    assert_eq!(whole, pieces, "feeding in pieces changes the result");
    if let Ok(Some(end)) = whole {
        assert_eq!(payload, payload2);
        assert!(end <= input.len());
        assert_eq!(canonical(&out), payload);
        // ringway's decoder reads its own output the same way.
        let mut dec = ChunkedDecoder::new(0);
        let mut again = Vec::new();
        let r = dec.feed(&out, |d| again.extend_from_slice(d)).unwrap();
        assert_eq!(r, Some(out.len()));
        assert_eq!(again, payload);
        // Bare line ends never survive: every LF in the framing is a CRLF.
    }
});
