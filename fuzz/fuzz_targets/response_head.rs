//! The response head parser, the framing decision and the response
//! rewriter: the head relayed to the client is one complete canonical
//! head whose framing reads back as the decision ringway relays by.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringway::http::response;
use ringway::http::rewrite;
use ringway::http::BodyKind;

fuzz_target!(|data: &[u8]| {
    let Ok(Some(resp)) = response::parse_bytes(data, 64, 8192) else {
        return;
    };
    assert!(resp.head_len <= data.len());
    for head_request in [false, true] {
        let Ok(framing) = resp.framing(head_request) else {
            continue;
        };
        if head_request
            || resp.status == 204
            || resp.status == 304
            || (100..200).contains(&resp.status)
        {
            assert_eq!(framing.body, BodyKind::None);
        }
        for keep_alive in [false, true] {
            for dechunk in [false, true] {
                let mut out = Vec::new();
                let add = [
                    rewrite::Added {
                        name: "X-Added".to_string(),
                        value: b"v".to_vec(),
                        always: false,
                    },
                    rewrite::Added {
                        name: "X-Always".to_string(),
                        value: b"w".to_vec(),
                        always: true,
                    },
                ];
                let hide: Vec<String> = ringway_config::DEFAULT_PROXY_HIDE
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
                // The fields `expires` replaces go whichever way the
                // bytes fall; the relayed head must stay one head.
                let replace: &[&str] = if data.len() % 2 == 0 {
                    rewrite::EXPIRES_FIELDS
                } else {
                    &[]
                };
                let relay = rewrite::Relay {
                    added: &add,
                    replace,
                    hide: if data.len() % 3 == 0 { &hide } else { &[] },
                    server_tokens: data.len() % 5 == 0,
                    redirect: &[("http://".to_string(), "/x/".to_string())],
                    gzip: None,
                };
                rewrite::response_head_for(&mut out, &resp, framing, keep_alive, dechunk, &relay);
                let again = match response::parse_bytes(&out, 256, out.len().max(1024)) {
                    Ok(Some(r)) => r,
                    other => panic!(
                        "relayed head does not parse: {other:?} {:?}",
                        String::from_utf8_lossy(&out)
                    ),
                };
                assert_eq!(again.head_len, out.len(), "one head, nothing after");
                assert_eq!(again.status, resp.status);
                let f2 = again
                    .framing(head_request)
                    .expect("relayed framing is unambiguous");
                if dechunk && framing.body == BodyKind::Chunked {
                    assert_eq!(f2.body, BodyKind::UntilClose);
                } else {
                    assert_eq!(f2.body, framing.body);
                }
                for (i, &b) in out.iter().enumerate() {
                    if b == b'\n' {
                        assert!(i > 0 && out[i - 1] == b'\r', "bare LF in relayed head");
                    }
                }
            }
        }
    }
});
