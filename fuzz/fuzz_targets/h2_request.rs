//! The HTTP/2 request head check and its HTTP/1.1 translation
//! (`h2::request`), and the response translation (`h2::response`).
//!
//! For every field list `validate` accepts: the list has no CR, LF or NUL
//! anywhere; `to_http1` writes one complete HTTP/1.1 head (for each way
//! the body can follow) that ringway's own parser accepts whole, with the
//! same method, target and framing, and exactly the fields of the head —
//! Host, the fields, ringway's framing or upgrade lines, nothing more —
//! so no client byte adds a line or changes the framing. Every list,
//! read as an upstream response's fields, translates to HTTP/2 fields
//! that RFC 9113 §8.2 allows, or is refused. Never a panic.
//!
//! Input: one flags byte (bit 0: END_STREAM, bit 1: an https connection,
//! bit 2: ENABLE_CONNECT_PROTOCOL advertised, bits 3-4: how the body
//! follows, bits 5-7: a response status), then fields, each a name and a
//! value, each a length byte and that many bytes — or, for a length byte
//! of 0xc0 and up, an entry of a table of likely names and values.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringway::h2::request::{to_http1, validate, Body, Scheme};
use ringway::h2::response::{to_h2, Answers, Kind};
use ringway::http::request::{parse_bytes, MAX_HEADERS_LIMIT};
use ringway::http::BodyKind;

const KNOWN: &[&[u8]] = &[
    b":method",
    b":scheme",
    b":authority",
    b":path",
    b":protocol",
    b":status",
    b"GET",
    b"POST",
    b"CONNECT",
    b"OPTIONS",
    b"https",
    b"http",
    b"a.example",
    b"a.example:443",
    b"/",
    b"/a?b",
    b"*",
    b"websocket",
    b"host",
    b"content-length",
    b"transfer-encoding",
    b"connection",
    b"upgrade",
    b"te",
    b"trailers",
    b"cookie",
    b"keep-alive",
    b"proxy-connection",
    b"sec-websocket-key",
    b"sec-websocket-version",
    b"sec-websocket-accept",
    b"13",
    b"0",
    b"5",
    b"chunked",
    b"x",
    b"\r\n",
    b"\r\nx: y\r\n\r\nGET /SMUGGLED HTTP/1.1\r\n",
];

struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn part(&mut self) -> Option<&'a [u8]> {
        let (&len, rest) = self.0.split_first()?;
        if len >= 0xc0 {
            self.0 = rest;
            return Some(KNOWN[usize::from(len - 0xc0) % KNOWN.len()]);
        }
        let len = usize::from(len).min(rest.len());
        let (part, rest) = rest.split_at(len);
        self.0 = rest;
        Some(part)
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mut input = Input(rest);
    let mut fields: Vec<(&[u8], &[u8])> = Vec::new();
    while fields.len() < 200 {
        let (Some(n), Some(v)) = (input.part(), input.part()) else {
            break;
        };
        fields.push((n, v));
    }
    let end_stream = flags & 1 != 0;
    let scheme = if flags & 2 != 0 {
        Scheme::Https
    } else {
        Scheme::Http
    };
    let connect_protocol = flags & 4 != 0;
    check_response(flags, &fields);

    let Ok(head) = validate(fields.iter().copied(), end_stream, scheme, connect_protocol) else {
        return;
    };
    assert!(
        fields.iter().all(|(n, v)| !n
            .iter()
            .chain(v.iter())
            .any(|b| matches!(b, b'\r' | b'\n' | 0))),
        "accepted a CR, LF or NUL"
    );
    let body = match flags >> 3 & 3 {
        0 => head.body(),
        1 => Body::Empty,
        2 => Body::Data,
        _ => Body::Length(head.content_length.unwrap_or(7)),
    };
    let key = [0x42; 16];
    let mut out = Vec::new();
    let kind = to_http1(&head, body, &key, &mut out);
    let req = match parse_bytes(&out, MAX_HEADERS_LIMIT, out.len() + 1) {
        Ok(Some(r)) => r,
        other => panic!(
            "translation does not parse: {other:?} {:?}",
            String::from_utf8_lossy(&out)
        ),
    };
    assert_eq!(req.head_len, out.len(), "one head, nothing after it");
    let method = if head.is_tunnel() {
        "GET"
    } else {
        head.method()
    };
    assert_eq!(req.method(), method);
    assert_eq!(req.target(), head.path());
    assert_eq!(req.body, kind);
    assert_eq!(req.is_upgrade(), head.is_tunnel());
    if head.is_tunnel() {
        assert_eq!(kind, BodyKind::None);
    }

    // Exactly: Host, the head's fields, then ringway's own lines.
    let mut got = req.headers();
    assert_eq!(
        got.next(),
        Some((&b"Host"[..], head.authority().as_bytes()))
    );
    for want in head.fields() {
        assert_eq!(got.next(), Some(want));
    }
    let own: Vec<(&[u8], &[u8])> = got.collect();
    let names: Vec<&[u8]> = own.iter().map(|(n, _)| *n).collect();
    match (head.protocol(), kind) {
        (Some(_), _) if head.is_websocket() => assert_eq!(
            names,
            [
                &b"Upgrade"[..],
                b"Connection",
                b"Sec-WebSocket-Version",
                b"Sec-WebSocket-Key"
            ]
        ),
        (Some(p), _) => assert_eq!(
            own,
            [(&b"Upgrade"[..], p.as_bytes()), (b"Connection", b"upgrade")]
        ),
        (None, BodyKind::Length(_)) => assert_eq!(names, [&b"Content-Length"[..]]),
        (None, BodyKind::Chunked) => {
            assert_eq!(own, [(&b"Transfer-Encoding"[..], &b"chunked"[..])])
        }
        (None, _) => assert!(own.is_empty()),
    }
});

/// The list as an upstream response's fields: refused, or HTTP/2 fields
/// that §8.2 allows, `:status` first, framing only ringway's own.
fn check_response(flags: u8, fields: &[(&[u8], &[u8])]) {
    let status = [200, 101, 100, 204, 304, 404, 103, 599][usize::from(flags >> 5)];
    let key = [0x42; 16];
    for answers in [
        Answers::Request,
        Answers::Connect {
            protocol: "websocket",
            key: &key,
        },
    ] {
        let Ok(t) = to_h2(status, fields, answers, Some(3)) else {
            continue;
        };
        let mut it = t.fields.iter();
        let (name, code) = it.next().expect(":status");
        assert_eq!(name, b":status");
        let code = std::str::from_utf8(code).unwrap();
        if t.kind == Kind::Tunnel {
            assert_eq!(code, "200");
        } else {
            assert_eq!(code, status.to_string());
        }
        let mut lengths = 0;
        for (n, v) in it {
            assert!(!n.is_empty() && !n.starts_with(b":"));
            assert!(n
                .iter()
                .all(|b| !b.is_ascii_uppercase() && b.is_ascii_graphic() && *b != b':'));
            assert!(!v.iter().any(|b| matches!(b, b'\r' | b'\n' | 0)));
            assert!(!matches!(v.first(), Some(b' ' | b'\t')));
            assert!(!matches!(v.last(), Some(b' ' | b'\t')));
            assert!(!matches!(
                n,
                b"connection"
                    | b"keep-alive"
                    | b"proxy-connection"
                    | b"transfer-encoding"
                    | b"upgrade"
                    | b"te"
            ));
            if n == b"content-length" {
                assert_eq!(v, b"3");
                lengths += 1;
            }
        }
        assert!(lengths <= 1);
    }
}
