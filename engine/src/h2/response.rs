//! An HTTP/1.1 response head, as ringway wrote or relayed it, turned into
//! the field list of an HTTP/2 HEADERS frame (RFC 9113 §8.1, §8.2, §8.3.2),
//! and the upstream's 101 to a WebSocket-over-HTTP/2 request checked and
//! turned into the `200` that opens the tunnel (RFC 8441 §4, §5).
//!
//! What changes on the way:
//! - `:status` comes first (§8.3); names are lowercased (§8.2.1) and values
//!   lose any whitespace at their ends (§8.2.1 forbids it);
//! - connection-specific fields go (§8.2.2): `Connection` and every field
//!   it names, `Keep-Alive`, `Proxy-Connection`, `Transfer-Encoding`,
//!   `Upgrade`, `TE`, and `Trailer` (ringway sends no trailers: chunked
//!   bodies are re-framed without them) — `http::is_hop_by_hop`, the same
//!   rule as the HTTP/1.1 relay;
//! - `Content-Length` is never copied: it is written from the caller's
//!   `content_length`, the length it will really send in DATA (or, for
//!   HEAD and 304, the length the response declares, which §8.1.1 lets a
//!   response without content carry), and never on a 1xx or a 204 (RFC
//!   9110 §8.6) nor on the 2xx that opens a tunnel (RFC 9110 §9.3.6);
//! - 1xx other than 101 are interim responses: HEADERS without END_STREAM,
//!   the final response follows (§8.1). HTTP/2 has no 101 (§8.6): a 101 to
//!   an ordinary request is a bad response (502).
//!
//! For an extended CONNECT (RFC 8441), sent upstream as an HTTP/1.1
//! upgrade by `h2::request::to_http1`, the upstream's 101 must switch to
//! exactly the protocol asked for (`http::upgrade::switched_to`), say
//! `Connection: upgrade` (RFC 9110 §7.8), and for WebSocket carry the one
//! `Sec-WebSocket-Accept` that answers ringway's key (RFC 6455 §4.1, item
//! 4 of the client's checks): anything else is 502. A good 101 becomes
//! `:status 200` with the upstream's other end-to-end fields
//! (`sec-websocket-protocol` and `sec-websocket-extensions` among them);
//! the stream is then a tunnel. Any other final answer goes back as a
//! normal response and the stream ends after its body — except a 2xx: to a
//! CONNECT, 2xx means the tunnel is open (RFC 9110 §9.3.6), and it is not,
//! so that is a 502 too.

use super::request::FieldList;
use super::websocket;
use crate::http::response::Response;
use crate::http::upgrade::{self, Switched};
use crate::http::{header_eq, is_hop_by_hop, is_tchar, tokens, trim};

/// What the response answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answers<'a> {
    /// An ordinary request.
    Request,
    /// An extended CONNECT for `protocol` (`Head::protocol`), sent upstream
    /// as an upgrade with `key` as the Sec-WebSocket-Key's random bytes
    /// (the ones given to `to_http1`).
    Connect {
        protocol: &'a str,
        key: &'a [u8; 16],
    },
}

/// Which HEADERS frame the fields make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A 1xx other than 101: the final response follows.
    Interim,
    /// The final response: DATA with its body follows, if any, then the
    /// stream ends.
    Final,
    /// `:status 200` to an extended CONNECT: DATA frames now carry the
    /// tunnel's bytes both ways.
    Tunnel,
}

/// An HTTP/2 response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Translated {
    pub kind: Kind,
    /// `:status` first, then the regular fields, names lowercase: ready
    /// for the HPACK encoder.
    pub fields: FieldList,
}

/// A response that cannot be relayed: answer 502 instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadGateway(pub &'static str);

/// Translate a parsed HTTP/1.1 response head (see [`to_h2`]).
pub fn from_response(
    resp: &Response,
    answers: Answers<'_>,
    content_length: Option<u64>,
) -> Result<Translated, BadGateway> {
    let fields: Vec<(&[u8], &[u8])> = resp.headers().collect();
    to_h2(resp.status, &fields, answers, content_length)
}

/// The HTTP/2 fields for a response with `status` and `fields` (as
/// written in HTTP/1.1, in order), answering `answers`. `content_length`
/// is what to declare: the body length the caller will send in DATA (or
/// the declared length of a HEAD or 304 response); `None` declares none.
pub fn to_h2(
    status: u16,
    fields: &[(&[u8], &[u8])],
    answers: Answers<'_>,
    content_length: Option<u64>,
) -> Result<Translated, BadGateway> {
    if !(100..=599).contains(&status) {
        return Err(BadGateway("invalid status code"));
    }
    for &(name, value) in fields {
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return Err(BadGateway("invalid field name"));
        }
        if value.iter().any(|&b| matches!(b, 0 | b'\r' | b'\n')) {
            return Err(BadGateway("NUL, CR or LF in a field value"));
        }
    }
    let named = |name: &'static str| {
        fields
            .iter()
            .filter(move |(n, _)| header_eq(n, name))
            .map(|&(_, v)| v)
    };
    let kind = match (status, answers) {
        (101, Answers::Request) => {
            return Err(BadGateway("101 to a request that asked for no upgrade"))
        }
        (101, Answers::Connect { protocol, key }) => {
            check_switch(protocol, key, named("upgrade"), named("connection"), || {
                named("sec-websocket-accept")
            })?;
            Kind::Tunnel
        }
        (100..=199, _) => Kind::Interim,
        (200..=299, Answers::Connect { .. }) => {
            return Err(BadGateway("a 2xx to an upgrade: the tunnel did not open"))
        }
        _ => Kind::Final,
    };

    let mut out = FieldList::new();
    let code = if kind == Kind::Tunnel { 200 } else { status };
    out.push(b":status", &status_text(code));
    for &(name, value) in fields {
        if is_hop_by_hop(name, named("connection"))
            || header_eq(name, "content-length")
            || header_eq(name, "transfer-encoding")
            || (kind == Kind::Tunnel && header_eq(name, "sec-websocket-accept"))
        {
            continue;
        }
        out.push_lowercase(name, trim(value));
    }
    if let (Kind::Final, Some(n)) = (kind, content_length) {
        if status != 204 {
            out.push(b"content-length", n.to_string().as_bytes());
        }
    }
    Ok(Translated { kind, fields: out })
}

/// Whether a 101 is the switch asked for: to `protocol` alone, with
/// `Connection: upgrade`, and for WebSocket with the accept value that
/// answers `key`.
fn check_switch<'a, A>(
    protocol: &str,
    key: &[u8; 16],
    upgrades: impl Iterator<Item = &'a [u8]>,
    mut connection: impl Iterator<Item = &'a [u8]>,
    accepts: impl Fn() -> A,
) -> Result<(), BadGateway>
where
    A: Iterator<Item = &'a [u8]>,
{
    let websocket = protocol.eq_ignore_ascii_case("websocket");
    // What `to_http1` sent as `Upgrade`.
    let forwarded = if websocket { "websocket" } else { protocol };
    let Some(switched) = upgrade::switched_to(upgrades, forwarded.as_bytes()) else {
        return Err(BadGateway("101 to a protocol that was not asked for"));
    };
    if !connection.any(|v| tokens(v).any(|t| header_eq(t, "upgrade"))) {
        return Err(BadGateway("101 without Connection: upgrade"));
    }
    if websocket {
        if switched != Switched::WebSocket {
            return Err(BadGateway("101 to a protocol that was not asked for"));
        }
        let expected = websocket::accept(&websocket::key(key));
        let mut accepts = accepts();
        match (accepts.next(), accepts.next()) {
            (Some(v), None) if trim(v) == expected => {}
            _ => return Err(BadGateway("bad Sec-WebSocket-Accept")),
        }
    }
    Ok(())
}

/// A status code's three digits.
fn status_text(code: u16) -> [u8; 3] {
    [
        b'0' + (code / 100 % 10) as u8,
        b'0' + (code / 10 % 10) as u8,
        b'0' + (code % 10) as u8,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::response::parse_bytes;

    type Owned = Vec<(String, String)>;

    fn fields(t: &Translated) -> Owned {
        t.fields
            .iter()
            .map(|(n, v)| {
                (
                    String::from_utf8_lossy(n).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect()
    }

    fn h2(
        status: u16,
        f: &[(&str, &str)],
        answers: Answers<'_>,
        cl: Option<u64>,
    ) -> Result<Translated, BadGateway> {
        let f: Vec<(&[u8], &[u8])> = f
            .iter()
            .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
            .collect();
        to_h2(status, &f, answers, cl)
    }

    fn pairs(list: &[(&str, &str)]) -> Owned {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    const KEY: &[u8; 16] = b"the sample nonce";
    const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
    const WS: Answers<'static> = Answers::Connect {
        protocol: "websocket",
        key: KEY,
    };

    #[test]
    fn status_first_and_names_lowercase() {
        let t = h2(
            404,
            &[
                ("Content-Type", "text/plain"),
                ("X-Thing", " a b "),
                ("Set-Cookie", "a=1"),
                ("set-cookie", "b=2"),
            ],
            Answers::Request,
            Some(9),
        )
        .unwrap();
        assert_eq!(t.kind, Kind::Final);
        assert_eq!(
            fields(&t),
            pairs(&[
                (":status", "404"),
                ("content-type", "text/plain"),
                ("x-thing", "a b"),
                ("set-cookie", "a=1"),
                ("set-cookie", "b=2"),
                ("content-length", "9"),
            ])
        );
    }

    #[test]
    fn connection_specific_fields_are_dropped() {
        let t = h2(
            200,
            &[
                ("Connection", "keep-alive, X-Hop"),
                ("X-Hop", "1"),
                ("x-kept", "1"),
                ("Keep-Alive", "timeout=5"),
                ("Proxy-Connection", "keep-alive"),
                ("Transfer-Encoding", "chunked"),
                ("Upgrade", "h2c"),
                ("TE", "trailers"),
                ("Trailer", "x-sum"),
                ("connection", "close"),
            ],
            Answers::Request,
            None,
        )
        .unwrap();
        assert_eq!(fields(&t), pairs(&[(":status", "200"), ("x-kept", "1")]));
    }

    #[test]
    fn content_length_is_the_callers() {
        // The upstream's is never copied, whatever it says.
        let up = [("Content-Length", "100")];
        let t = h2(200, &up, Answers::Request, Some(5)).unwrap();
        assert_eq!(
            fields(&t),
            pairs(&[(":status", "200"), ("content-length", "5")])
        );
        let t = h2(200, &up, Answers::Request, None).unwrap();
        assert_eq!(fields(&t), pairs(&[(":status", "200")]));
        // HEAD / 304: the declared length, as the caller says.
        let t = h2(304, &up, Answers::Request, Some(100)).unwrap();
        assert_eq!(
            fields(&t),
            pairs(&[(":status", "304"), ("content-length", "100")])
        );
        // Never on 204 or 1xx (RFC 9110 §8.6).
        let t = h2(204, &up, Answers::Request, Some(0)).unwrap();
        assert_eq!(fields(&t), pairs(&[(":status", "204")]));
        let t = h2(100, &[], Answers::Request, Some(0)).unwrap();
        assert_eq!(fields(&t), pairs(&[(":status", "100")]));
    }

    #[test]
    fn interim_responses() {
        let t = h2(
            103,
            &[("Link", "</s.css>; rel=preload")],
            Answers::Request,
            None,
        )
        .unwrap();
        assert_eq!(t.kind, Kind::Interim);
        assert_eq!(
            fields(&t),
            pairs(&[(":status", "103"), ("link", "</s.css>; rel=preload")])
        );
        assert_eq!(h2(100, &[], WS, None).unwrap().kind, Kind::Interim);
    }

    #[test]
    fn no_101_in_http2() {
        let up = [
            ("Upgrade", "websocket"),
            ("Connection", "upgrade"),
            ("Sec-WebSocket-Accept", ACCEPT),
        ];
        assert!(h2(101, &up, Answers::Request, None).is_err());
    }

    #[test]
    fn a_websocket_101_opens_the_tunnel() {
        let up = [
            ("Upgrade", "websocket"),
            ("Connection", "upgrade"),
            ("Sec-WebSocket-Accept", ACCEPT),
            ("Sec-WebSocket-Protocol", "chat"),
            ("Sec-WebSocket-Extensions", "permessage-deflate"),
            ("Set-Cookie", "s=1"),
            ("Content-Length", "0"),
        ];
        let t = h2(101, &up, WS, Some(0)).unwrap();
        assert_eq!(t.kind, Kind::Tunnel);
        assert_eq!(
            fields(&t),
            pairs(&[
                (":status", "200"),
                ("sec-websocket-protocol", "chat"),
                ("sec-websocket-extensions", "permessage-deflate"),
                ("set-cookie", "s=1"),
            ])
        );
        // The client's spelling of :protocol does not matter; the server's
        // Upgrade is compared without regard to case.
        let ws = Answers::Connect {
            protocol: "WebSocket",
            key: KEY,
        };
        let up = [
            ("Upgrade", "WebSocket"),
            ("Connection", "Upgrade, keep-alive"),
            ("Sec-WebSocket-Accept", ACCEPT),
        ];
        assert_eq!(h2(101, &up, ws, None).unwrap().kind, Kind::Tunnel);
    }

    #[test]
    fn a_bad_accept_is_502() {
        let other = websocket::accept(&websocket::key(&[0; 16]));
        let other = std::str::from_utf8(&other).unwrap();
        for accepts in [
            vec![],
            vec![other],
            vec![ACCEPT, ACCEPT],
            vec![""],
            vec!["s3pPLMBiTxaQ9kYGzzhZRbK+xOo"],
        ] {
            let mut up = vec![("Upgrade", "websocket"), ("Connection", "upgrade")];
            up.extend(accepts.iter().map(|a| ("Sec-WebSocket-Accept", *a)));
            assert_eq!(
                h2(101, &up, WS, None),
                Err(BadGateway("bad Sec-WebSocket-Accept")),
                "{accepts:?}"
            );
        }
    }

    #[test]
    fn a_101_must_be_the_switch_asked_for() {
        let acc = ("Sec-WebSocket-Accept", ACCEPT);
        for up in [
            vec![("Connection", "upgrade"), acc],
            vec![("Upgrade", "h2c"), ("Connection", "upgrade"), acc],
            vec![
                ("Upgrade", "websocket, h2c"),
                ("Connection", "upgrade"),
                acc,
            ],
            vec![("Upgrade", "websocket"), acc],
            vec![("Upgrade", "websocket"), ("Connection", "keep-alive"), acc],
        ] {
            assert!(h2(101, &up, WS, None).is_err(), "{up:?}");
        }
        let foo = Answers::Connect {
            protocol: "foo/2",
            key: KEY,
        };
        let ok = [("Upgrade", "foo/2"), ("Connection", "upgrade")];
        assert_eq!(h2(101, &ok, foo, None).unwrap().kind, Kind::Tunnel);
        let ok = [("Upgrade", "foo"), ("Connection", "upgrade")];
        assert_eq!(h2(101, &ok, foo, None).unwrap().kind, Kind::Tunnel);
        for bad in ["foo/3", "websocket", "bar"] {
            let up = [("Upgrade", bad), ("Connection", "upgrade")];
            assert!(h2(101, &up, foo, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn other_answers_to_a_connect() {
        // Refusals go back as they are; the stream ends after the body.
        for status in [301, 400, 403, 404, 426, 500, 503] {
            let t = h2(status, &[("Sec-WebSocket-Version", "13")], WS, Some(3)).unwrap();
            assert_eq!(t.kind, Kind::Final, "{status}");
            assert_eq!(fields(&t)[0].1, status.to_string());
        }
        // A 2xx would tell the client the tunnel is open.
        for status in [200, 204, 206] {
            assert!(h2(status, &[], WS, None).is_err(), "{status}");
        }
    }

    #[test]
    fn what_cannot_be_relayed_is_502() {
        assert!(h2(99, &[], Answers::Request, None).is_err());
        assert!(h2(600, &[], Answers::Request, None).is_err());
        assert!(h2(200, &[("x", "a\r\nb")], Answers::Request, None).is_err());
        assert!(h2(200, &[("x", "a\0")], Answers::Request, None).is_err());
        assert!(h2(200, &[("x y", "1")], Answers::Request, None).is_err());
        assert!(h2(200, &[("", "1")], Answers::Request, None).is_err());
    }

    #[test]
    fn from_a_parsed_response() {
        let raw = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Accept: {ACCEPT}\r\nServer: up\r\n\r\n"
        );
        let resp = parse_bytes(raw.as_bytes(), 64, 4096).unwrap().unwrap();
        let t = from_response(&resp, WS, None).unwrap();
        assert_eq!(t.kind, Kind::Tunnel);
        assert_eq!(fields(&t), pairs(&[(":status", "200"), ("server", "up")]));
        let raw = "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 4\r\nConnection: keep-alive\r\n\r\nbody";
        let resp = parse_bytes(raw.as_bytes(), 64, 4096).unwrap().unwrap();
        let t = from_response(&resp, Answers::Request, Some(4)).unwrap();
        assert_eq!(
            fields(&t),
            pairs(&[
                (":status", "200"),
                ("content-type", "text/html"),
                ("content-length", "4")
            ])
        );
    }
}
