//! Every rule of `h2::request` on its own, the [`HOSTILE`] fixtures, and
//! the round trip: whatever is accepted, written as HTTP/1.1 and read by
//! ringway's own parser, is the same request, field for field.

use super::*;
use crate::http::request::{self, MAX_HEADERS_LIMIT};

type Owned = Vec<(Vec<u8>, Vec<u8>)>;

const BASE: &[(&str, &str)] = &[
    (":method", "GET"),
    (":scheme", "https"),
    (":authority", "a.example"),
    (":path", "/"),
];

fn check(fields: &[(&[u8], &[u8])], end_stream: bool) -> Result<Head, Reject> {
    validate(fields.iter().copied(), end_stream, Scheme::Https, true)
}

/// BASE with `extra` regular fields.
fn with(extra: &[(&str, &[u8])]) -> Result<Head, Reject> {
    let mut f: Vec<(&[u8], &[u8])> = BASE
        .iter()
        .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
        .collect();
    f.extend(extra.iter().map(|(n, v)| (n.as_bytes(), *v)));
    check(&f, true)
}

/// Only pseudo-headers (and fields) as given.
fn raw(fields: &[(&str, &str)], end_stream: bool) -> Result<Head, Reject> {
    let f: Vec<(&[u8], &[u8])> = fields
        .iter()
        .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
        .collect();
    check(&f, end_stream)
}

fn is_malformed(r: Result<Head, Reject>) -> bool {
    matches!(r, Err(Reject::Malformed(_)))
}

fn status(r: Result<Head, Reject>) -> Option<u16> {
    r.err().and_then(Reject::status)
}

/// `head` as HTTP/1.1 through ringway's parser: the same method, target,
/// fields (exactly: Host, the fields, ringway's own framing or upgrade
/// lines, nothing else) and framing.
fn round_trip(head: &Head, body: Body) -> Vec<u8> {
    let key = [0x5a; 16];
    let mut out = Vec::new();
    let kind = to_http1(head, body, &key, &mut out);
    let req = match request::parse_bytes(&out, MAX_HEADERS_LIMIT, out.len() + 1) {
        Ok(Some(r)) => r,
        other => panic!("{other:?} for {:?}", String::from_utf8_lossy(&out)),
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
    let mut want: Owned = vec![(b"Host".to_vec(), head.authority().as_bytes().to_vec())];
    want.extend(head.fields().map(|(n, v)| (n.to_vec(), v.to_vec())));
    let mut add = |n: &str, v: &[u8]| want.push((n.as_bytes().to_vec(), v.to_vec()));
    match head.protocol() {
        Some(_) if head.is_websocket() => {
            add("Upgrade", b"websocket");
            add("Connection", b"upgrade");
            add("Sec-WebSocket-Version", b"13");
            add("Sec-WebSocket-Key", &websocket::key(&key));
        }
        Some(p) => {
            add("Upgrade", p.as_bytes());
            add("Connection", b"upgrade");
        }
        None => match kind {
            BodyKind::Length(n) => add("Content-Length", n.to_string().as_bytes()),
            BodyKind::Chunked => add("Transfer-Encoding", b"chunked"),
            BodyKind::None | BodyKind::UntilClose => {}
        },
    }
    let got: Owned = req
        .headers()
        .map(|(n, v)| (n.to_vec(), v.to_vec()))
        .collect();
    assert_eq!(got, want, "{:?}", String::from_utf8_lossy(&out));
    out
}

fn bodies(head: &Head) -> [Body; 3] {
    [
        Body::Empty,
        Body::Data,
        Body::Length(head.content_length.unwrap_or(3)),
    ]
}

#[test]
fn hostile_fixtures_come_out_as_expected() {
    for case in HOSTILE {
        let r = check(case.fields, case.end_stream);
        let got = match &r {
            Ok(_) => Expect::Accept,
            Err(Reject::Malformed(_)) => Expect::Malformed,
            Err(Reject::Answer { status, .. }) => Expect::Answer(*status),
        };
        assert_eq!(got, case.expect, "{}: {r:?}", case.name);
        if let Ok(head) = r {
            for body in bodies(&head) {
                round_trip(&head, body);
            }
        }
    }
}

#[test]
fn reject_says_what_to_do() {
    let m = Reject::Malformed("x");
    assert_eq!(m.error_code(), Some(ErrorCode::ProtocolError));
    assert_eq!(m.status(), None);
    let a = answer(405, "y");
    assert_eq!(
        (a.error_code(), a.status(), a.reason()),
        (None, Some(405), "y")
    );
}

#[test]
fn a_plain_get_becomes_http1() {
    let head = with(&[("accept", b"*/*"), ("x-a", b"1")]).unwrap();
    assert_eq!(
        (head.method(), head.scheme(), head.authority(), head.path()),
        ("GET", Scheme::Https, "a.example", "/")
    );
    assert_eq!(head.protocol(), None);
    let out = round_trip(&head, head.body());
    assert_eq!(
        out,
        b"GET / HTTP/1.1\r\nHost: a.example\r\naccept: */*\r\nx-a: 1\r\n\r\n"
    );
}

#[test]
fn cr_lf_nul_are_refused_in_every_field() {
    for bad in [&b"a\r\nb"[..], b"a\nb", b"a\rb", b"a\0b", b"\r\n", b"\0"] {
        assert!(is_malformed(with(&[("x", bad)])), "{bad:?}");
        for pseudo in [":method", ":scheme", ":authority", ":path"] {
            let f: Vec<(&[u8], &[u8])> = BASE
                .iter()
                .map(|(n, v)| (n.as_bytes(), if *n == pseudo { bad } else { v.as_bytes() }))
                .collect();
            assert!(is_malformed(check(&f, true)), "{pseudo} {bad:?}");
        }
        let mut name = b"x-".to_vec();
        name.extend_from_slice(bad);
        let f: Vec<(&[u8], &[u8])> = BASE
            .iter()
            .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
            .chain([(&name[..], &b"1"[..])])
            .collect();
        assert!(is_malformed(check(&f, true)), "name {bad:?}");
    }
}

#[test]
fn whitespace_around_values_is_malformed() {
    for bad in [&b" a"[..], b"a ", b"\ta", b"a\t", b" ", b"\t"] {
        assert!(is_malformed(with(&[("x", bad)])), "{bad:?}");
    }
    assert!(is_malformed(raw(
        &[(":method", "GET "), (":scheme", "https"), (":path", "/")],
        true
    )));
    // Inside a value they are fine, and so is an empty value.
    let head = with(&[("x", b"a b\tc"), ("y", b"")]).unwrap();
    round_trip(&head, Body::Empty);
}

#[test]
fn other_control_characters_are_answered_400() {
    for bad in [&b"a\x01"[..], b"\x08", b"a\x0bb", b"\x1f", b"\x7f"] {
        assert_eq!(status(with(&[("x", bad)])), Some(400), "{bad:?}");
    }
    // obs-text goes through (RFC 9110 §5.5), as on the HTTP/1.1 side.
    let head = with(&[("x", b"caf\xc3\xa9 \xff")]).unwrap();
    round_trip(&head, Body::Empty);
}

#[test]
fn names_are_lowercase_tokens() {
    for bad in [
        "X-Foo",
        "x-fOo",
        "Content-Length",
        "Host",
        "x:y",
        "x y",
        "",
        "x(y)",
        "x\"",
        "x,y",
        "é",
    ] {
        assert!(is_malformed(with(&[(bad, b"1")])), "{bad:?}");
    }
    let head = with(&[("x_y", b"1"), ("!#$%&'*+-.^_`|~09az", b"2")]).unwrap();
    round_trip(&head, Body::Empty);
}

#[test]
fn transfer_encoding_in_any_form_is_malformed() {
    for v in [
        &b"chunked"[..],
        b"identity",
        b"gzip, chunked",
        b"",
        b"Chunked",
    ] {
        assert!(is_malformed(with(&[("transfer-encoding", v)])), "{v:?}");
        // Uppercase is malformed before it is a name.
        assert!(is_malformed(with(&[("Transfer-Encoding", v)])), "{v:?}");
    }
}

#[test]
fn connection_specific_fields_are_malformed() {
    for name in ["connection", "keep-alive", "proxy-connection", "upgrade"] {
        assert!(is_malformed(with(&[(name, b"x")])), "{name}");
    }
}

#[test]
fn te_may_only_be_trailers() {
    for bad in [&b"gzip"[..], b"trailers, gzip", b"", b"chunked"] {
        assert!(is_malformed(with(&[("te", bad)])), "{bad:?}");
    }
    for ok in [&b"trailers"[..], b"Trailers"] {
        let head = with(&[("te", ok)]).unwrap();
        assert_eq!(head.fields().count(), 0, "te is not forwarded");
    }
}

#[test]
fn pseudo_header_rules() {
    // Unknown ones, :status among them.
    assert!(with(&[]).is_ok());
    let f = |extra: (&str, &str)| {
        let mut v = BASE.to_vec();
        v.insert(1, extra);
        raw(&v, true)
    };
    assert!(is_malformed(f((":status", "200"))));
    assert!(is_malformed(f((":foo", "x"))));
    assert!(is_malformed(f((":", "x"))));
    // Repeated, each of them.
    for (n, v) in BASE {
        assert!(is_malformed(f((n, v))), "repeated {n}");
    }
    // After a regular field.
    let mut v = BASE.to_vec();
    v.insert(2, ("x", "1"));
    assert!(is_malformed(raw(&v, true)));
    // :protocol is unknown unless advertised.
    let ws = [
        (&b":method"[..], &b"CONNECT"[..]),
        (b":scheme", b"https"),
        (b":authority", b"a"),
        (b":path", b"/"),
        (b":protocol", b"websocket"),
    ];
    assert!(validate(ws, false, Scheme::Https, true).is_ok());
    assert!(is_malformed(validate(ws, false, Scheme::Https, false)));
}

#[test]
fn method_scheme_and_path_are_required() {
    for missing in [":method", ":scheme", ":path"] {
        let v: Vec<_> = BASE
            .iter()
            .copied()
            .filter(|(n, _)| *n != missing)
            .collect();
        assert!(is_malformed(raw(&v, true)), "{missing}");
    }
    assert!(is_malformed(raw(
        &[(":method", "GE T"), (":scheme", "https"), (":path", "/")],
        true
    )));
}

#[test]
fn path_rules() {
    let p = |path: &str, method: &str| {
        raw(
            &[
                (":method", method),
                (":scheme", "https"),
                (":authority", "a"),
                (":path", path),
            ],
            true,
        )
    };
    assert!(is_malformed(p("", "GET")));
    assert!(is_malformed(p("x", "GET")));
    assert!(is_malformed(p("http://a/", "GET")));
    assert!(is_malformed(p("*", "GET")));
    // OPTIONS * is well formed, and answered 400 as on the HTTP/1.1 side.
    assert_eq!(status(p("*", "OPTIONS")), Some(400));
    for bad in [
        "/a b",
        "/a#b",
        "/../x",
        "/%00",
        "/%zz",
        "/caf\u{e9}",
        "/a\x7f",
    ] {
        assert_eq!(status(p(bad, "GET")), Some(400), "{bad:?}");
    }
    for good in ["/", "/a/b?c=d&e", "/a/../b", "/%61", "/?q=/../"] {
        let head = p(good, "GET").unwrap();
        round_trip(&head, Body::Empty);
    }
}

#[test]
fn authority_and_host() {
    let hosts = |auth: Option<&str>, hosts: &[&str]| {
        let mut v: Vec<(&str, &str)> =
            vec![(":method", "GET"), (":scheme", "https"), (":path", "/")];
        if let Some(a) = auth {
            v.push((":authority", a));
        }
        v.extend(hosts.iter().map(|h| ("host", *h)));
        raw(&v, true)
    };
    // Agreeing: ASCII case and the scheme's default port aside.
    for h in ["a.example", "A.EXAMPLE", "a.example:443"] {
        let head = hosts(Some("a.example"), &[h]).unwrap();
        assert_eq!(head.authority(), "a.example");
        assert_eq!(head.fields().count(), 0, "host is not forwarded twice");
        round_trip(&head, Body::Empty);
    }
    assert!(hosts(Some("a.example:443"), &["a.example"]).is_ok());
    // Disagreeing: another host, another port, http's port on https.
    for h in [
        "b.example",
        "a.example:8443",
        "a.example:80",
        "a.example.",
        "a.example:",
    ] {
        assert!(is_malformed(hosts(Some("a.example"), &[h])), "{h}");
    }
    assert!(is_malformed(hosts(
        Some("a.example"),
        &["a.example", "b.example"]
    )));
    assert_eq!(
        status(hosts(Some("a.example"), &["a.example", "a.example"])),
        Some(400)
    );
    // host alone stands in for :authority; two of them are 400.
    let head = hosts(None, &["h.example:8080"]).unwrap();
    assert_eq!(head.authority(), "h.example:8080");
    round_trip(&head, Body::Empty);
    assert_eq!(status(hosts(None, &["a", "b"])), Some(400));
    assert_eq!(status(hosts(None, &[])), Some(400));
    // Userinfo is malformed; what the HTTP/1.1 side refuses in Host is 400.
    assert!(is_malformed(hosts(Some("u:p@a.example"), &[])));
    assert!(is_malformed(hosts(None, &["u@a.example"])));
    for bad in ["", "a/b", "a\\b", "a..b", "a b", "caf\u{e9}"] {
        assert_eq!(status(hosts(Some(bad), &[])), Some(400), "{bad:?}");
    }
    // On http the default port is 80.
    let v = [
        (&b":method"[..], &b"GET"[..]),
        (b":scheme", b"http"),
        (b":authority", b"a"),
        (b":path", b"/"),
        (b"host", b"a:80"),
    ];
    assert!(validate(v, true, Scheme::Http, false).is_ok());
}

#[test]
fn content_length_rules() {
    let post = |cls: &[&str], end_stream: bool| {
        let mut v = vec![
            (":method", "POST"),
            (":scheme", "https"),
            (":authority", "a"),
            (":path", "/"),
        ];
        v.extend(cls.iter().map(|c| ("content-length", *c)));
        raw(&v, end_stream)
    };
    for bad in [
        "",
        "x",
        "5x",
        "-1",
        "+1",
        "1.0",
        "5, 5",
        "0x10",
        "99999999999999999999",
    ] {
        assert!(is_malformed(post(&[bad], false)), "{bad:?}");
    }
    assert!(is_malformed(post(&["5", "6"], false)));
    // Equal duplicates: ringway refuses them, as on the HTTP/1.1 side.
    assert_eq!(status(post(&["5", "5"], false)), Some(400));
    // END_STREAM on HEADERS: only 0 can be true.
    assert!(is_malformed(post(&["5"], true)));
    let head = post(&["0"], true).unwrap();
    assert_eq!(head.content_length, Some(0));
    let head = post(&["12"], false).unwrap();
    assert_eq!(head.content_length, Some(12));
    assert_eq!(head.fields().count(), 0, "written by ringway, not copied");
    let out = round_trip(&head, Body::Data);
    assert!(out.ends_with(b"Content-Length: 12\r\n\r\n"));
}

#[test]
fn data_is_held_to_content_length() {
    let head = raw(
        &[
            (":method", "POST"),
            (":scheme", "https"),
            (":authority", "a"),
            (":path", "/"),
            ("content-length", "4"),
        ],
        false,
    )
    .unwrap();
    assert!(head.check_data(3, false).is_ok());
    assert!(head.check_data(4, true).is_ok());
    assert!(matches!(
        head.check_data(3, true),
        Err(Reject::Malformed(_))
    ));
    assert!(matches!(
        head.check_data(5, false),
        Err(Reject::Malformed(_))
    ));
    let head = with(&[]).unwrap();
    assert!(head.check_data(1 << 40, true).is_ok(), "no length declared");
}

#[test]
fn framing_written_for_http1() {
    let h = |method: &str, cl: Option<&str>, end_stream: bool| {
        let mut v = vec![
            (":method", method),
            (":scheme", "https"),
            (":authority", "a"),
            (":path", "/"),
        ];
        v.extend(cl.map(|c| ("content-length", c)));
        raw(&v, end_stream).unwrap()
    };
    let kind = |head: &Head, body: Body| {
        let mut out = Vec::new();
        to_http1(head, body, &[0; 16], &mut out)
    };
    // END_STREAM: no body; said so for the methods that usually have one.
    assert_eq!(kind(&h("GET", None, true), Body::Empty), BodyKind::None);
    assert_eq!(kind(&h("HEAD", None, true), Body::Empty), BodyKind::None);
    for m in ["POST", "PUT", "PATCH"] {
        assert_eq!(
            kind(&h(m, None, true), Body::Empty),
            BodyKind::Length(0),
            "{m}"
        );
    }
    // DATA of unknown length: chunked; a declared length: that.
    assert_eq!(kind(&h("POST", None, false), Body::Data), BodyKind::Chunked);
    assert_eq!(kind(&h("GET", None, false), Body::Data), BodyKind::Chunked);
    assert_eq!(
        kind(&h("POST", Some("7"), false), Body::Data),
        BodyKind::Length(7)
    );
    assert_eq!(
        kind(&h("GET", Some("0"), true), Body::Empty),
        BodyKind::Length(0)
    );
    // The caller buffered it all.
    assert_eq!(
        kind(&h("POST", None, false), Body::Length(9)),
        BodyKind::Length(9)
    );
    assert_eq!(
        kind(&h("POST", Some("9"), false), Body::Length(9)),
        BodyKind::Length(9)
    );
    assert_eq!(h("POST", None, true).body(), Body::Empty);
    assert_eq!(h("POST", None, false).body(), Body::Data);
    for head in [
        h("POST", None, false),
        h("PUT", Some("3"), false),
        h("DELETE", None, true),
    ] {
        for body in bodies(&head) {
            round_trip(&head, body);
        }
    }
}

#[test]
fn chunks() {
    let mut out = Vec::new();
    write_chunk(b"hello", &mut out);
    write_chunk(b"", &mut out);
    write_chunk(&[b'x'; 17], &mut out);
    write_last_chunk(&mut out);
    let mut want = b"5\r\nhello\r\n11\r\n".to_vec();
    want.extend_from_slice(&[b'x'; 17]);
    want.extend_from_slice(b"\r\n0\r\n\r\n");
    assert_eq!(out, want);
}

#[test]
fn cookies_are_joined() {
    let head = with(&[
        ("cookie", b"a=1"),
        ("x", b"y"),
        ("cookie", b""),
        ("cookie", b"b=2; c=3"),
    ])
    .unwrap();
    let f: Owned = head
        .fields()
        .map(|(n, v)| (n.to_vec(), v.to_vec()))
        .collect();
    assert_eq!(
        f,
        vec![
            (b"x".to_vec(), b"y".to_vec()),
            (b"cookie".to_vec(), b"a=1; b=2; c=3".to_vec())
        ]
    );
    round_trip(&head, Body::Empty);
    let head = with(&[("cookie", b"")]).unwrap();
    assert_eq!(head.fields().count(), 0);
}

#[test]
fn plain_connect_is_405() {
    let r = raw(
        &[(":method", "CONNECT"), (":authority", "b.example:443")],
        false,
    );
    assert_eq!(status(r), Some(405));
    // §8.5: with :scheme or :path, or without :authority, malformed.
    assert!(is_malformed(raw(
        &[
            (":method", "CONNECT"),
            (":authority", "b:443"),
            (":path", "/")
        ],
        false
    )));
    assert!(is_malformed(raw(
        &[
            (":method", "CONNECT"),
            (":authority", "b:443"),
            (":scheme", "https")
        ],
        false
    )));
    assert!(is_malformed(raw(&[(":method", "CONNECT")], false)));
}

fn connect(protocol: &str, extra: &[(&str, &str)], end_stream: bool) -> Result<Head, Reject> {
    let mut v = vec![
        (":method", "CONNECT"),
        (":protocol", protocol),
        (":scheme", "https"),
        (":path", "/chat?room=1"),
        (":authority", "ws.example"),
    ];
    v.extend_from_slice(extra);
    raw(&v, end_stream)
}

#[test]
fn extended_connect_becomes_a_websocket_upgrade() {
    let head = connect(
        "websocket",
        &[
            ("sec-websocket-version", "13"),
            ("sec-websocket-protocol", "chat, superchat"),
            ("sec-websocket-extensions", "permessage-deflate"),
            ("sec-websocket-key", "client's own"),
            ("origin", "https://ws.example"),
        ],
        false,
    )
    .unwrap();
    assert!(head.is_tunnel() && head.is_websocket());
    assert_eq!(
        (head.method(), head.protocol()),
        ("CONNECT", Some("websocket"))
    );
    let mut out = Vec::new();
    let kind = to_http1(&head, head.body(), b"the sample nonce", &mut out);
    assert_eq!(kind, BodyKind::None);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "GET /chat?room=1 HTTP/1.1\r\nHost: ws.example\r\n\
         sec-websocket-protocol: chat, superchat\r\n\
         sec-websocket-extensions: permessage-deflate\r\n\
         origin: https://ws.example\r\n\
         Upgrade: websocket\r\nConnection: upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    round_trip(&head, Body::Data);
    assert!(connect("WebSocket", &[], false).unwrap().is_websocket());
}

#[test]
fn extended_connect_for_another_protocol() {
    let head = connect("foo/2", &[("x", "1")], false).unwrap();
    assert!(head.is_tunnel() && !head.is_websocket());
    let out = round_trip(&head, Body::Data);
    assert_eq!(
        out,
        b"GET /chat?room=1 HTTP/1.1\r\nHost: ws.example\r\nx: 1\r\nUpgrade: foo/2\r\nConnection: upgrade\r\n\r\n"
    );
    // Not websocket: its fields are the client's own business.
    let head = connect(
        "h2c",
        &[("sec-websocket-key", "k"), ("http2-settings", "AAA")],
        false,
    )
    .unwrap();
    assert_eq!(head.fields().count(), 2);
    round_trip(&head, Body::Data);
}

#[test]
fn extended_connect_rules() {
    // RFC 8441 §4: :scheme, :path and :authority are required.
    for missing in [":scheme", ":path", ":authority"] {
        let v: Vec<(&str, &str)> = [
            (":method", "CONNECT"),
            (":protocol", "websocket"),
            (":scheme", "https"),
            (":path", "/"),
            (":authority", "a"),
        ]
        .into_iter()
        .filter(|(n, _)| *n != missing)
        .chain([("host", "a")])
        .collect();
        assert!(is_malformed(raw(&v, false)), "{missing}");
    }
    // :protocol on another method.
    for m in ["GET", "POST", "connect"] {
        let v = [
            (":method", m),
            (":protocol", "websocket"),
            (":scheme", "https"),
            (":path", "/"),
            (":authority", "a"),
        ];
        assert!(is_malformed(raw(&v, false)), "{m}");
    }
    // One protocol, never a list: "websocket, h2c" would upgrade to h2c.
    for bad in [
        "websocket, h2c",
        "",
        "web socket",
        "websocket/",
        "/13",
        "a/b/c",
    ] {
        assert_eq!(status(connect(bad, &[], false)), Some(400), "{bad:?}");
    }
    assert_eq!(
        status(connect("websocket", &[("content-length", "0")], false)),
        Some(400)
    );
    assert_eq!(status(connect("websocket", &[], true)), Some(400));
    assert_eq!(
        status(connect(
            "websocket",
            &[("sec-websocket-version", "8")],
            false
        )),
        Some(400)
    );
    assert_eq!(
        status(connect(
            "websocket",
            &[
                ("sec-websocket-version", "13"),
                ("sec-websocket-version", "8")
            ],
            false
        )),
        Some(400)
    );
}

#[test]
fn scheme_rules() {
    let s = |scheme: &str, conn: Scheme| {
        let v = [
            (&b":method"[..], &b"GET"[..]),
            (b":scheme", scheme.as_bytes()),
            (b":authority", b"a"),
            (b":path", b"/"),
        ];
        validate(v, true, conn, false)
    };
    assert_eq!(s("https", Scheme::Https).unwrap().scheme(), Scheme::Https);
    assert_eq!(s("http", Scheme::Http).unwrap().scheme(), Scheme::Http);
    assert!(s("HTTPS", Scheme::Https).is_ok());
    assert_eq!(status(s("http", Scheme::Https)), Some(421));
    assert_eq!(status(s("https", Scheme::Http)), Some(421));
    for bad in ["ftp", "", "wss", "https2"] {
        assert_eq!(status(s(bad, Scheme::Https)), Some(400), "{bad:?}");
    }
}

#[test]
fn malformed_wins_over_refused() {
    // A 400-worthy field first, a malformed one after: malformed.
    assert!(is_malformed(with(&[
        ("x", b"\x01"),
        ("connection", b"close")
    ])));
    assert!(is_malformed(with(&[("x", b"\x01"), ("X", b"1")])));
    // The builder gives the same answers as validate.
    let mut b = Builder::new(Scheme::Https, true);
    for (n, v) in BASE {
        b.field(n.as_bytes(), v.as_bytes());
    }
    b.field(b"x", b"1");
    assert_eq!(b.finish(true), with(&[("x", b"1")]));
}

/// xorshift64*: deterministic cases, reproduced by their seed and index.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, pct: u64) -> bool {
        self.next() % 100 < pct
    }

    fn pick(&mut self, xs: &[&'static [u8]]) -> &'static [u8] {
        xs[self.below(xs.len())]
    }

    /// A few bytes from the places parsers disagree.
    fn hostile_bytes(&mut self) -> Vec<u8> {
        const ALPHABET: &[u8] = b"aZ09:; \t\r\n\0\x01\x7f\x80\xff,=/@#?%-_.*\"()";
        (0..self.below(7))
            .map(|_| ALPHABET[self.below(ALPHABET.len())])
            .collect()
    }
}

/// Pools of (usual, hostile) choices: each pick is a usual one mostly.
type Pool = (&'static [&'static [u8]], &'static [&'static [u8]]);

const METHODS: Pool = (
    &[b"GET", b"POST", b"PUT", b"HEAD", b"PATCH", b"DELETE"],
    &[b"CONNECT", b"OPTIONS", b"get", b"GE T", b"G\r\nET", b""],
);
const SCHEMES: Pool = (&[b"https"], &[b"http", b"HTTPS", b"ftp", b""]);
const AUTHORITIES: Pool = (
    &[
        b"a.example",
        b"A.Example:443",
        b"[::1]:443",
        b"a.example:8443",
    ],
    &[
        b"u@a",
        b"a/b",
        b"a..b",
        b"",
        b"a\r\nb",
        b"caf\xc3\xa9",
        b"a b",
        b"a.example\r\nHost: evil",
    ],
);
const PATHS: Pool = (
    &[b"/", b"/x?y=1", b"/a/../b", b"/%2e%2e/x", b"/a?b=/../c"],
    &[
        b"*",
        b"x",
        b"",
        b"/a b",
        b"/a#f",
        b"/a\r\nHost: evil",
        b"/\x7f",
        b"/caf\xc3\xa9",
        b"/%00",
        b"/a?b c",
        b"/ HTTP/1.1\r\n\r\nGET /SMUGGLED",
        b"/../x",
    ],
);
const PROTOCOLS: Pool = (
    &[b"websocket", b"WebSocket", b"foo/2", b"h2c"],
    &[b"websocket, h2c", b"", b"web socket", b"websocket/"],
);
const NAMES: Pool = (
    &[
        b"x",
        b"x-a",
        b"accept",
        b"cookie",
        b"cookie",
        b"x_u",
        b"te",
        b"content-length",
        b"host",
        b"sec-websocket-protocol",
        b"sec-websocket-version",
        b"sec-websocket-key",
        b"expect",
        b"http2-settings",
        b"content-type",
    ],
    &[
        b"transfer-encoding",
        b"connection",
        b"upgrade",
        b"keep-alive",
        b"proxy-connection",
        b"X-Up",
        b"x:y",
        b"x y",
        b"",
        b"x\r\ny",
        b"x\0",
        b":status",
        b":path",
        b":authority",
        b":protocol",
    ],
);
const VALUES: Pool = (
    &[
        b"",
        b"1",
        b"0",
        b"5",
        b"trailers",
        b"a=1",
        b"a b",
        b"a\tb",
        b"caf\xc3\xa9",
        b"13",
        b"websocket",
        b"a.example",
        b"A.EXAMPLE:443",
        b"100-continue",
        b"x, y;q=0.5",
    ],
    &[
        b"chunked",
        b" a",
        b"a ",
        b"a\r\nX-Injected: 1",
        b"a\nb",
        b"a\rb",
        b"\0",
        b"\x01",
        b"\x7f",
        b"8",
        b"close",
        b"5, 5",
        b"b.example",
        b"\r\n\r\nGET /SMUGGLED HTTP/1.1\r\nHost: x\r\n\r\n",
        b"0\r\n\r\nGET /SMUGGLED HTTP/1.1",
    ],
);

impl Rng {
    fn choose(&mut self, (usual, hostile): Pool, hostile_pct: u64) -> Vec<u8> {
        if self.chance(hostile_pct) {
            if self.chance(20) {
                return self.hostile_bytes();
            }
            self.pick(hostile).to_vec()
        } else {
            self.pick(usual).to_vec()
        }
    }
}

fn generate(rng: &mut Rng) -> Owned {
    // Some cases are hostile everywhere, most in a field or two.
    let hostile = if rng.chance(20) { 30 } else { 4 };
    let mut fields: Owned = Vec::new();
    let pseudo: [(&[u8], Pool, u64); 5] = [
        (b":method", METHODS, 98),
        (b":scheme", SCHEMES, 97),
        (b":authority", AUTHORITIES, 90),
        (b":path", PATHS, 97),
        (b":protocol", PROTOCOLS, 10),
    ];
    let mut connect = false;
    for (name, pool, pct) in pseudo {
        if name == b":protocol" && connect {
            // Mostly an extended CONNECT when the method says CONNECT.
            fields.push((name.to_vec(), rng.choose(pool, hostile)));
            continue;
        }
        if rng.chance(pct) {
            let value = if name == b":method" && rng.chance(8) {
                connect = true;
                b"CONNECT".to_vec()
            } else {
                rng.choose(pool, hostile)
            };
            fields.push((name.to_vec(), value));
            if rng.chance(2) {
                fields.push((name.to_vec(), rng.choose(pool, hostile)));
            }
        }
    }
    if rng.chance(3) && fields.len() > 1 {
        let (i, j) = (rng.below(fields.len()), rng.below(fields.len()));
        fields.swap(i, j);
    }
    for _ in 0..rng.below(6) {
        let name = rng.choose(NAMES, hostile);
        let value = rng.choose(VALUES, hostile);
        fields.push((name, value));
    }
    if rng.chance(2) {
        let at = rng.below(fields.len() + 1);
        fields.insert(at, (b":path".to_vec(), b"/other".to_vec()));
    }
    fields
}

/// Anything that passes validation yields exactly the fields given, no
/// more: no byte a client chooses adds a header line, a second framing or
/// an upgrade, and everything with a CR, LF or NUL anywhere is malformed.
#[test]
fn hostile_lists_round_trip_or_are_refused() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut accepted, mut tunnels, mut malformed, mut answered) = (0, 0, 0, 0);
    for i in 0..30_000 {
        let fields = generate(&mut rng);
        let end_stream = rng.chance(50);
        let scheme = if rng.chance(95) {
            Scheme::Https
        } else {
            Scheme::Http
        };
        let connect_protocol = rng.chance(90);
        let r = validate(
            fields.iter().map(|(n, v)| (&n[..], &v[..])),
            end_stream,
            scheme,
            connect_protocol,
        );
        let dangerous = fields
            .iter()
            .any(|(n, v)| n.iter().chain(v).any(|b| matches!(b, b'\r' | b'\n' | 0)));
        match r {
            Ok(head) => {
                assert!(!dangerous, "case {i}: {fields:?}");
                accepted += 1;
                tunnels += usize::from(head.is_tunnel());
                for body in bodies(&head) {
                    round_trip(&head, body);
                }
            }
            Err(Reject::Malformed(_)) => malformed += 1,
            Err(Reject::Answer { .. }) => {
                assert!(
                    !dangerous,
                    "case {i}: a CR, LF or NUL is malformed: {fields:?}"
                );
                answered += 1;
            }
        }
    }
    eprintln!(
        "{accepted} accepted ({tunnels} tunnels), {malformed} malformed, {answered} answered"
    );
    assert!(accepted > 3000, "{accepted} accepted");
    assert!(tunnels > 100, "{tunnels} tunnels");
    assert!(
        malformed > 1000 && answered > 1000,
        "{malformed} {answered}"
    );
}
