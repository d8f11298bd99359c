//! nginx's gzip filter, on bytes: whether a request takes gzip, whether a
//! response is compressed, and the streaming encoder that turns body
//! pieces into chunks of a `Transfer-Encoding: chunked` body — memory per
//! response is the encoder's window and what one piece compresses to,
//! never the whole body.

use std::io::Write;

use flate2::write::GzEncoder;
use flate2::Compression;
use ringway_config::Gzip;

use super::request::Request;
use super::{header_eq, tokens, trim};

/// Whether the client takes a gzip body: `gzip` is on, the request is
/// HTTP/1.1 or HTTP/2 (nginx's `gzip_http_version 1.1`), its
/// `Accept-Encoding` names gzip with a non-zero weight, its User-Agent
/// matches no `gzip_disable`, and — when it came through a proxy (`Via`)
/// — `gzip_proxied` says `any` or a request condition (`auth`) holds;
/// the response conditions are [`response_takes`]'s.
pub fn client_takes(req: &Request, g: &Gzip, http2: bool) -> bool {
    g.on && takes_encoding(req, g, http2)
}

/// [`client_takes`] whether `gzip` is on or not (`gzip_static` serves
/// FILE.gz with `gzip` off, as nginx).
pub fn takes_encoding(req: &Request, g: &Gzip, http2: bool) -> bool {
    if (req.minor_version < 1 && !http2) || req.method() == "HEAD" {
        return false;
    }
    let accepts = req
        .headers_named("accept-encoding")
        .flat_map(tokens)
        .any(|t| {
            let mut parts = t.split(|&b| b == b';');
            let coding = trim(parts.next().unwrap_or_default());
            let zero = parts.any(|p| {
                let p = trim(p);
                p.len() >= 2
                    && p[..2].eq_ignore_ascii_case(b"q=")
                    && p[2..].iter().all(|&b| b == b'0' || b == b'.')
            });
            (header_eq(coding, "gzip") || header_eq(coding, "x-gzip")) && !zero
        });
    if !accepts {
        return false;
    }
    if let Some(ua) = req.header("user-agent") {
        let ua = String::from_utf8_lossy(ua);
        if g.disable.iter().any(|re| re.is_match(&ua)) {
            return false;
        }
    }
    true
}

/// Whether a response is compressed: status 200, 403 or 404 (nginx's),
/// no `Content-Encoding` yet, a `Content-Type` in `gzip_types`, a declared
/// length (if any) of at least `gzip_min_length`, no `Cache-Control:
/// no-transform` (RFC 9111 §5.2.2.6; nginx ignores it, ringway does not),
/// and for a request that came through a proxy (`via`), `gzip_proxied`'s
/// conditions.
pub fn response_takes<'a>(
    status: u16,
    header: impl Fn(&str) -> Option<&'a [u8]>,
    declared: Option<u64>,
    g: &Gzip,
    via: bool,
    auth: bool,
) -> bool {
    if !matches!(status, 200 | 403 | 404) || header("content-encoding").is_some() {
        return false;
    }
    if declared.is_some_and(|n| n < g.min_length) {
        return false;
    }
    let cache_control = header("cache-control")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let has = |d: &str| tokens(&cache_control).any(|t| t.starts_with(d.as_bytes()));
    if has("no-transform") {
        return false;
    }
    let ct = header("content-type").unwrap_or_default();
    let essence = trim(ct.split(|&b| b == b';').next().unwrap_or_default()).to_ascii_lowercase();
    let typed = g
        .types
        .iter()
        .any(|t| t == "*" || t.as_bytes() == essence.as_slice());
    if !typed {
        return false;
    }
    if !via {
        return true;
    }
    g.proxied.iter().any(|p| match p.as_str() {
        "any" => true,
        "expired" => header("expires").is_some(),
        "no-cache" => has("no-cache"),
        "no-store" => has("no-store"),
        "private" => has("private"),
        "no_last_modified" => header("last-modified").is_none(),
        "no_etag" => header("etag").is_none(),
        "auth" => auth,
        _ => false,
    })
}

/// The entity tag of a compressed answer: a strong tag made weak (the
/// bytes are not the ones it was made for); a weak one stays.
pub fn weak_etag(tag: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(tag.len() + 2);
    if tag.starts_with(b"\"") {
        out.extend_from_slice(b"W/");
    }
    out.extend_from_slice(tag);
    out
}

/// A gzip stream written as HTTP/1.1 chunks.
pub struct Chunked {
    enc: GzEncoder<Vec<u8>>,
}

impl Chunked {
    pub fn new(level: u32) -> Chunked {
        Chunked {
            enc: GzEncoder::new(Vec::new(), Compression::new(level)),
        }
    }

    /// Compress `data`; append whatever compressed output is ready to
    /// `out` as one chunk (nothing when the encoder holds it back).
    pub fn push(&mut self, data: &[u8], out: &mut Vec<u8>) {
        // Writing into a Vec cannot fail.
        let _ = self.enc.write_all(data);
        chunk(out, self.enc.get_mut());
    }

    /// The end of the body: the rest of the stream and the last chunk.
    pub fn finish(self, out: &mut Vec<u8>) {
        let mut rest = self.enc.finish().unwrap_or_default();
        chunk(out, &mut rest);
        out.extend_from_slice(b"0\r\n\r\n");
    }
}

fn chunk(out: &mut Vec<u8>, data: &mut Vec<u8>) {
    if data.is_empty() {
        return;
    }
    out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
    out.append(data);
    out.extend_from_slice(b"\r\n");
}

/// A whole body compressed at once (small bodies: `return`).
pub fn compress(data: &[u8], level: u32) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::new(level));
    let _ = enc.write_all(data);
    enc.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::chunked::ChunkedDecoder;
    use flate2::read::GzDecoder;
    use std::io::Read;

    fn gz(on: bool) -> Gzip {
        Gzip {
            on,
            types: vec!["text/html".into(), "application/json".into()],
            ..Gzip::nginx_default()
        }
    }

    fn req(raw: &str) -> Request {
        crate::http::request::parse_bytes(raw.as_bytes(), 32, 8192)
            .unwrap()
            .unwrap()
    }

    #[test]
    fn which_requests_take_gzip() {
        let g = gz(true);
        let takes = |raw: &str| client_takes(&req(raw), &g, false);
        assert!(takes(
            "GET / HTTP/1.1\r\nHost: a\r\nAccept-Encoding: gzip, deflate, br\r\n\r\n"
        ));
        assert!(takes(
            "GET / HTTP/1.1\r\nHost: a\r\nAccept-Encoding: br;q=1, GZIP;q=0.5\r\n\r\n"
        ));
        assert!(!takes(
            "GET / HTTP/1.1\r\nHost: a\r\nAccept-Encoding: gzip;q=0\r\n\r\n"
        ));
        assert!(!takes(
            "GET / HTTP/1.1\r\nHost: a\r\nAccept-Encoding: br\r\n\r\n"
        ));
        assert!(!takes("GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert!(!takes("GET / HTTP/1.0\r\nAccept-Encoding: gzip\r\n\r\n"));
        assert!(!takes(
            "HEAD / HTTP/1.1\r\nHost: a\r\nAccept-Encoding: gzip\r\n\r\n"
        ));
        assert!(!client_takes(
            &req("GET / HTTP/1.1\r\nHost: a\r\nAccept-Encoding: gzip\r\n\r\n"),
            &gz(false),
            false
        ));
    }

    #[test]
    fn which_responses_are_compressed() {
        let g = gz(true);
        let fields = |list: &'static [(&'static str, &'static str)]| {
            move |n: &str| {
                list.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(n))
                    .map(|(_, v)| v.as_bytes())
            }
        };
        let html = fields(&[("Content-Type", "text/html; charset=utf-8")]);
        assert!(response_takes(200, html, Some(100), &g, false, false));
        assert!(response_takes(404, html, None, &g, false, false));
        assert!(!response_takes(206, html, Some(100), &g, false, false));
        assert!(!response_takes(200, html, Some(19), &g, false, false));
        let png = fields(&[("Content-Type", "image/png")]);
        assert!(!response_takes(200, png, None, &g, false, false));
        let done = fields(&[("Content-Type", "text/html"), ("Content-Encoding", "br")]);
        assert!(!response_takes(200, done, None, &g, false, false));
        let keep = fields(&[
            ("Content-Type", "text/html"),
            ("Cache-Control", "public, no-transform"),
        ]);
        assert!(!response_takes(200, keep, None, &g, false, false));
        // Through a proxy: off by default; `any` or a condition that holds.
        assert!(!response_takes(200, html, None, &g, true, false));
        let any = Gzip {
            proxied: vec!["any".into()],
            ..g.clone()
        };
        assert!(response_takes(200, html, None, &any, true, false));
        let no_etag = Gzip {
            proxied: vec!["no_etag".into()],
            ..g.clone()
        };
        assert!(response_takes(200, html, None, &no_etag, true, false));
    }

    #[test]
    fn a_strong_tag_is_made_weak() {
        assert_eq!(weak_etag(b"\"5f-1a\""), b"W/\"5f-1a\"");
        assert_eq!(weak_etag(b"W/\"5f-1a\""), b"W/\"5f-1a\"");
    }

    #[test]
    fn chunks_decode_to_the_body() {
        let body: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let mut enc = Chunked::new(1);
        let mut wire = Vec::new();
        for piece in body.chunks(16 * 1024) {
            enc.push(piece, &mut wire);
        }
        enc.finish(&mut wire);
        let mut dec = ChunkedDecoder::new(1024);
        let mut gzipped = Vec::new();
        let end = dec.feed(&wire, |d| gzipped.extend_from_slice(d)).unwrap();
        assert_eq!(end, Some(wire.len()), "one whole chunked body");
        let mut plain = Vec::new();
        GzDecoder::new(&gzipped[..])
            .read_to_end(&mut plain)
            .unwrap();
        assert_eq!(plain, body);
        let mut one = Vec::new();
        GzDecoder::new(&compress(b"hello", 6)[..])
            .read_to_end(&mut one)
            .unwrap();
        assert_eq!(one, b"hello");
    }
}
