//! The request head parser and the upstream head rewriter.
//!
//! For every head ringway accepts, the head it would send upstream must be
//! one complete, canonical HTTP/1.1 request head (httparse reads exactly
//! all of it), carry exactly the framing field of ringway's one framing
//! decision, parse back to the same method and framing, and — with a URI
//! part in proxy_pass — name the path ringway routed. An upgrade carries
//! only the protocols allowed (websocket and h2c here), a plain request
//! neither `Upgrade` nor `HTTP2-Settings`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringway::http::path;
use ringway::http::request;
use ringway::http::rewrite::{self, UpstreamConn};
use ringway::http::BodyKind;
use ringway::vars::VarCtx;
use ringway_config::{Part, Template, Var};

fn tpl(v: Var) -> Template {
    Template {
        parts: vec![Part::Var(v)],
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(Some(req)) = request::parse_bytes(data, 64, 8192) else {
        return;
    };
    assert!(req.head_len <= data.len());
    assert_eq!(req.early(), &data[req.head_len..]);
    assert!(req.norm_path().starts_with('/'));
    assert_eq!(
        path::resolve(req.norm_path()).unwrap(),
        req.norm_path(),
        "normalisation is idempotent"
    );
    let set = vec![
        (
            "X-Forwarded-For".to_string(),
            tpl(Var::ProxyAddXForwardedFor),
        ),
        ("X-Real-IP".to_string(), tpl(Var::RemoteAddr)),
        ("X-PP".to_string(), tpl(Var::ProxyProtocolAddr)),
        ("X-Peer".to_string(), tpl(Var::RealIpRemoteAddr)),
        ("X-Host".to_string(), tpl(Var::Host)),
        ("X-Uri".to_string(), tpl(Var::Uri)),
        ("X-Cookie".to_string(), tpl(Var::Http("cookie".into()))),
    ];
    let vars = VarCtx {
        req: &req,
        remote: "192.0.2.1:1234".parse().unwrap(),
        peer: ringway::vars::Peer {
            tcp: "10.0.0.9:4321".parse().unwrap(),
            proxy_protocol: Some("192.0.2.1:1234".parse().unwrap()),
        },
        local: "127.0.0.1:80".parse().unwrap(),
        server_name: "s",
        tls: None,
        proxy_host: "backend:8080",
        captures: &[],
        uri: None,
        named: &[],
    };
    for (prefix, proxy_uri) in [(Some("/"), Some("/x/")), (Some("/"), None), (None, None)] {
        let uri = rewrite::upstream_uri(&req, prefix, proxy_uri, None);
        // A try_files fallback that builds its query from the decoded
        // path: still one request-target, nothing a request line breaks on.
        let changed = rewrite::InternalUri {
            path: req.norm_path().to_string(),
            args: Some(format!("from={}", req.norm_path())),
        };
        let made = rewrite::upstream_uri(&req, prefix, proxy_uri, Some(&changed));
        assert!(made.starts_with('/'), "{made:?}");
        assert!(
            !made.bytes().any(|b| b <= 0x20 || b >= 0x7f),
            "a fallback's URI holds a byte a request line cannot: {made:?}"
        );
        assert!(uri.starts_with('/'), "{uri:?}");
        if proxy_uri.is_some() {
            let up_path = uri.split('?').next().unwrap();
            let routed = format!("/x/{}", &req.norm_path()[1..]);
            assert_eq!(path::normalize(up_path).unwrap(), routed.as_str());
        }
        let allowed = [String::from("websocket"), String::from("h2c")];
        let upgrade = ringway::http::upgrade::select(req.headers_named("upgrade"), &allowed);
        // The engine forwards an upgrade only when one is allowed.
        let conns = [
            (!upgrade.is_empty()).then_some(UpstreamConn::Upgrade(&upgrade)),
            Some(UpstreamConn::Close),
            Some(UpstreamConn::KeepAlive),
        ];
        for conn in conns.into_iter().flatten() {
            for underscores in [false, true] {
                let mut out = Vec::new();
                rewrite::request_head(&mut out, &req, &uri, &set, &vars, conn, underscores);
                check_forwarded(&out, &req, &uri, conn);
            }
        }
    }
});

fn check_forwarded(out: &[u8], req: &request::Request, uri: &str, conn: UpstreamConn<'_>) {
    let mut headers = [httparse::EMPTY_HEADER; 256];
    let mut parsed = httparse::Request::new(&mut headers);
    match parsed.parse(out) {
        Ok(httparse::Status::Complete(n)) => assert_eq!(n, out.len(), "one head, nothing after"),
        other => panic!(
            "forwarded head does not parse: {other:?} {:?}",
            String::from_utf8_lossy(out)
        ),
    }
    assert_eq!(parsed.method, Some(req.method()));
    assert_eq!(parsed.path, Some(uri));
    // Canonical line ends: every LF is part of a CRLF.
    for (i, &b) in out.iter().enumerate() {
        if b == b'\n' {
            assert!(i > 0 && out[i - 1] == b'\r', "bare LF in forwarded head");
        }
        if b == b'\r' {
            assert_eq!(out.get(i + 1), Some(&b'\n'), "bare CR in forwarded head");
        }
    }
    let named = |n: &str| {
        parsed
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(n))
            .count()
    };
    assert!(named("host") <= 1);
    // The upgrade forwarded is the one decided (only allowed protocols),
    // and a plain request carries none of it.
    let value = |n: &str| {
        parsed
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(n))
            .map(|h| h.value)
    };
    match conn {
        UpstreamConn::Upgrade(p) => {
            assert_eq!(named("upgrade"), 1);
            assert_eq!(value("upgrade"), Some(p));
            assert!(ringway::http::tokens(p)
                .all(|t| { ringway::http::upgrade::allows([&b"websocket"[..], b"h2c"], t) }));
            assert!(named("http2-settings") <= 1);
        }
        _ => {
            assert_eq!(named("upgrade"), 0, "an Upgrade on a plain request");
            assert_eq!(named("http2-settings"), 0);
        }
    }
    let (cl, te) = (named("content-length"), named("transfer-encoding"));
    match req.body {
        BodyKind::Length(_) => assert_eq!((cl, te), (1, 0)),
        BodyKind::Chunked => assert_eq!((cl, te), (0, 1)),
        BodyKind::None | BodyKind::UntilClose => assert_eq!((cl, te), (0, 0)),
    }
    // Round trip: ringway's own parser reads the same framing back.
    if let Ok(Some(again)) = request::parse_bytes(out, 256, out.len().max(1024)) {
        assert_eq!(again.body, req.body);
        assert_eq!(again.method(), req.method());
    }
}
