//! Which protocol switch a location lets through (RFC 9110 §7.8).
//!
//! A request's `Upgrade` lists protocols (`name` or `name/version`,
//! comma-separated, in every `Upgrade` field it has); a location's
//! `upgrade` key names the ones it forwards. [`select`] keeps the offered
//! protocols the location allows — in the client's order and spelling —
//! as the `Upgrade` value sent upstream; none kept means the request goes
//! upstream as a plain request, without `Upgrade`, which is what a server
//! that does not implement the upgrade would make of it. A 101 may switch
//! only to a protocol that was forwarded ([`switched_to`]; by name, and by
//! version where both name one): anything else
//! is a bad response, since a tunnel to a protocol ringway did not allow
//! (h2c above all: HTTP/2 requests straight to the backend) would carry
//! traffic no location routed.

use super::{is_tchar, token_eq, tokens};

/// A protocol element: `name` or `name/version`, both tokens.
fn parse(p: &[u8]) -> Option<(&[u8], Option<&[u8]>)> {
    let token = |t: &[u8]| !t.is_empty() && t.iter().all(|&b| is_tchar(b));
    match p.iter().position(|&b| b == b'/') {
        Some(i) if token(&p[..i]) && token(&p[i + 1..]) => Some((&p[..i], Some(&p[i + 1..]))),
        None if token(p) => Some((p, None)),
        _ => None,
    }
}

/// Whether protocol element `p` is one of `allowed` (entries `name` or
/// `name/version`): the same protocol, or any version of an entry that
/// names no version; case-insensitive.
pub fn allows<'a>(allowed: impl IntoIterator<Item = &'a [u8]>, p: &[u8]) -> bool {
    let Some((name, _)) = parse(p) else {
        return false;
    };
    allowed
        .into_iter()
        .any(|a| token_eq(p, a) || (!a.contains(&b'/') && token_eq(name, a)))
}

/// The `Upgrade` value to forward for the offered `values` (every
/// `Upgrade` field of the request): the protocols `allowed` lets through,
/// joined by ", "; empty when there are none.
pub fn select<'a>(values: impl IntoIterator<Item = &'a [u8]>, allowed: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in values.into_iter().flat_map(tokens) {
        if allows(allowed.iter().map(String::as_bytes), p) {
            if !out.is_empty() {
                out.extend_from_slice(b", ");
            }
            out.extend_from_slice(p);
        }
    }
    out
}

/// What a 101 switched to, given its `Upgrade` fields (`switched`) and
/// the `Upgrade` value that was forwarded: `None` when they name nothing,
/// or a protocol that was not offered (a bad response), else whether the
/// connection is now WebSocket (RFC 6455: `websocket` alone).
pub fn switched_to<'a>(
    switched: impl IntoIterator<Item = &'a [u8]>,
    forwarded: &[u8],
) -> Option<Switched> {
    let mut n = 0;
    let mut websocket = false;
    for p in switched.into_iter().flat_map(tokens) {
        if !tokens(forwarded).any(|f| same_protocol(f, p)) {
            return None;
        }
        n += 1;
        websocket = parse(p).is_some_and(|(name, _)| token_eq(name, b"websocket"));
    }
    match n {
        0 => None,
        1 if websocket => Some(Switched::WebSocket),
        _ => Some(Switched::Other),
    }
}

/// Whether a 101's protocol `p` is the forwarded `offered` one: the same
/// name, and the same version where both name one (a server may answer
/// `websocket` to `websocket/13`). Only what the location allowed was
/// forwarded, so matching a name here admits nothing it refused.
fn same_protocol(offered: &[u8], p: &[u8]) -> bool {
    match (parse(offered), parse(p)) {
        (Some((a, va)), Some((b, vb))) => {
            token_eq(a, b)
                && (va.is_none() || vb.is_none() || va.zip(vb).is_some_and(|(x, y)| token_eq(x, y)))
        }
        _ => false,
    }
}

/// The protocol a connection switched to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switched {
    /// WebSocket: frames are tracked, a drain closes between them.
    WebSocket,
    /// Any other protocol a location allowed: relayed blind.
    Other,
}

/// Whether the forwarded `Upgrade` value offers h2c (its `HTTP2-Settings`
/// field then goes along, RFC 7540 §3.2.1).
pub fn offers_h2c(forwarded: &[u8]) -> bool {
    tokens(forwarded).any(|p| parse(p).is_some_and(|(name, _)| token_eq(name, b"h2c")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn sel(values: &[&str], list: &[&str]) -> String {
        let v: Vec<&[u8]> = values.iter().map(|v| v.as_bytes()).collect();
        String::from_utf8(select(v, &allowed(list))).unwrap()
    }

    #[test]
    fn only_allowed_protocols_are_forwarded() {
        let ws = &["websocket"];
        assert_eq!(sel(&["websocket"], ws), "websocket");
        assert_eq!(sel(&["WebSocket"], ws), "WebSocket", "client's spelling");
        assert_eq!(sel(&["h2c"], ws), "");
        assert_eq!(sel(&["H2C"], ws), "");
        assert_eq!(sel(&["websocket, h2c"], ws), "websocket");
        assert_eq!(sel(&["h2c, websocket"], ws), "websocket");
        assert_eq!(sel(&["h2c", "websocket"], ws), "websocket", "every field");
        assert_eq!(
            sel(&[" , websocket ,, "], ws),
            "websocket",
            "empty elements"
        );
        assert_eq!(sel(&["\twebsocket\t"], ws), "websocket");
        assert_eq!(sel(&["websocket/13"], ws), "websocket/13", "any version");
        assert_eq!(sel(&["websockets"], ws), "");
        assert_eq!(sel(&["websocket/"], ws), "", "an empty version");
        assert_eq!(
            sel(&["websocket/1 3"], ws),
            "",
            "a version that is no token"
        );
        assert_eq!(sel(&["web socket"], ws), "");
        assert_eq!(sel(&["websocket"], &[]), "", "upgrade = []");
        assert_eq!(sel(&["h2c, websocket"], &["h2c"]), "h2c");
        assert_eq!(
            sel(&["websocket, foo/2, foo/3"], &["websocket", "foo/2"]),
            "websocket, foo/2",
            "a versioned entry allows that version only"
        );
    }

    #[test]
    fn a_101_may_switch_only_to_what_was_forwarded() {
        assert_eq!(
            switched_to([&b"websocket"[..]], b"websocket"),
            Some(Switched::WebSocket)
        );
        assert_eq!(
            switched_to([&b"WebSocket"[..]], b"websocket"),
            Some(Switched::WebSocket)
        );
        assert_eq!(switched_to([&b"h2c"[..]], b"websocket"), None);
        assert_eq!(switched_to([&b"other"[..]], b"websocket"), None);
        assert_eq!(switched_to([&b"websocket, h2c"[..]], b"websocket"), None);
        assert_eq!(switched_to([&b""[..]], b"websocket"), None);
        assert_eq!(switched_to([], b"websocket"), None, "no Upgrade field");
        assert_eq!(
            switched_to([&b"websocket"[..], b"h2c"], b"websocket"),
            None,
            "every field counts"
        );
        assert_eq!(switched_to([&b" , "[..]], b"websocket"), None);
        assert_eq!(switched_to([&b"h2c"[..]], b"h2c"), Some(Switched::Other));
        assert_eq!(
            switched_to([&b"websocket"[..]], b"h2c, websocket"),
            Some(Switched::WebSocket)
        );
        assert_eq!(switched_to([&b"foo/3"[..]], b"foo/2"), None);
        assert_eq!(
            switched_to([&b"websocket"[..]], b"websocket/13"),
            Some(Switched::WebSocket),
            "a 101 may leave the version out"
        );
        assert_eq!(
            switched_to([&b"WebSocket/13"[..]], b"websocket/13"),
            Some(Switched::WebSocket)
        );
        assert_eq!(
            switched_to([&b"websocket/"[..]], b"websocket"),
            None,
            "not a protocol"
        );
        assert_eq!(switched_to([&b"foo/2"[..]], b"foo"), Some(Switched::Other));
    }

    #[test]
    fn h2c_settings_go_only_with_an_h2c_upgrade() {
        assert!(offers_h2c(b"h2c"));
        assert!(offers_h2c(b"websocket, H2C"));
        assert!(!offers_h2c(b"websocket"));
        assert!(!offers_h2c(b"h2"));
    }
}
