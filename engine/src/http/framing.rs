//! One framing decision per message, shared by the request and the
//! response path (RFC 9112 §6).
//!
//! A message's body is delimited by exactly one of: nothing, a
//! `Content-Length`, or `Transfer-Encoding: chunked` (responses also: the
//! connection's close). ringway decides once, from the head it parsed, and
//! then:
//!
//! - never copies the sender's framing fields (`Content-Length`,
//!   `Transfer-Encoding`) to the next hop: it writes its own from the
//!   decision ([`write`]), so no other header (a `Connection` naming one of
//!   them, say) can make the next hop see a different framing;
//! - relays the body by that decision alone (`proxy::body`), re-encoding
//!   chunked bodies canonically.
//!
//! Anything ambiguous is refused rather than guessed: a repeated
//! `Content-Length` or `Transfer-Encoding` field (even with equal values),
//! both at once, a coding other than exactly `chunked`, or chunked in an
//! HTTP/1.0 message (RFC 9112 §6.1: "MUST treat the message as if the
//! framing is faulty"). From a client that is 400 (501 for an unknown
//! coding, as nginx); from an upstream, 502.

use super::{header_eq, parse_content_length, trim, BodyKind};

/// The framing fields of one head, checked for ambiguity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fields {
    None,
    Length(u64),
    Chunked,
    /// A `Transfer-Encoding` other than exactly "chunked".
    OtherCoding,
}

/// Why a head's framing is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FramingError {
    /// Ambiguous or malformed framing fields (400 / 502).
    Bad(&'static str),
    /// A transfer coding ringway does not implement (501 / 502).
    Coding,
}

impl FramingError {
    pub fn reason(self) -> &'static str {
        match self {
            FramingError::Bad(why) => why,
            FramingError::Coding => "unsupported Transfer-Encoding",
        }
    }
}

/// Whether `name` is a framing field (never copied between hops).
pub fn is_framing(name: &[u8]) -> bool {
    header_eq(name, "content-length") || header_eq(name, "transfer-encoding")
}

fn fields<'h>(
    headers: impl IntoIterator<Item = (&'h [u8], &'h [u8])>,
) -> Result<Fields, FramingError> {
    let mut cl: Option<u64> = None;
    let mut te: Option<&[u8]> = None;
    for (name, value) in headers {
        if header_eq(name, "content-length") {
            if cl.is_some() {
                return Err(FramingError::Bad("repeated Content-Length"));
            }
            cl = Some(parse_content_length(value).ok_or(FramingError::Bad("bad Content-Length"))?);
        } else if header_eq(name, "transfer-encoding") {
            if te.is_some() {
                return Err(FramingError::Bad("repeated Transfer-Encoding"));
            }
            te = Some(value);
        }
    }
    match (te, cl) {
        (Some(_), Some(_)) => Err(FramingError::Bad(
            "both Transfer-Encoding and Content-Length",
        )),
        (Some(v), None) if header_eq(trim(v), "chunked") => Ok(Fields::Chunked),
        (Some(_), None) => Ok(Fields::OtherCoding),
        (None, Some(n)) => Ok(Fields::Length(n)),
        (None, None) => Ok(Fields::None),
    }
}

/// A request's body framing (RFC 9112 §6.3 rules 3–6, strictly).
/// `Content-Length: 0` is `Length(0)`: the next hop is told so too.
pub fn request<'h>(
    headers: impl IntoIterator<Item = (&'h [u8], &'h [u8])>,
    minor_version: u8,
) -> Result<BodyKind, FramingError> {
    match fields(headers)? {
        Fields::None => Ok(BodyKind::None),
        Fields::Length(n) => Ok(BodyKind::Length(n)),
        Fields::Chunked if minor_version == 0 => Err(FramingError::Bad(
            "Transfer-Encoding in an HTTP/1.0 request",
        )),
        Fields::Chunked => Ok(BodyKind::Chunked),
        Fields::OtherCoding => Err(FramingError::Coding),
    }
}

/// A response's framing: how its body is delimited, and the
/// `Content-Length` it declares where it has no body by rule (the length
/// of the representation, for HEAD and 304: RFC 9110 §8.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseFraming {
    pub body: BodyKind,
    pub declared_length: Option<u64>,
}

/// A response's body framing (RFC 9112 §6.3 rules 1–2, 4–8). The framing
/// fields are checked even where the status or method means no body, so a
/// response that would be read differently by another parser is refused.
pub fn response<'h>(
    status: u16,
    headers: impl IntoIterator<Item = (&'h [u8], &'h [u8])>,
    minor_version: u8,
    head_request: bool,
) -> Result<ResponseFraming, FramingError> {
    let f = fields(headers)?;
    let no_body = head_request || (100..200).contains(&status) || status == 204 || status == 304;
    if no_body {
        let declared = match f {
            Fields::Length(n) if head_request || status == 304 => Some(n),
            _ => None,
        };
        return Ok(ResponseFraming {
            body: BodyKind::None,
            declared_length: declared,
        });
    }
    let body = match f {
        Fields::None => BodyKind::UntilClose,
        Fields::Length(n) => BodyKind::Length(n),
        Fields::Chunked if minor_version == 0 => {
            return Err(FramingError::Bad(
                "Transfer-Encoding in an HTTP/1.0 response",
            ))
        }
        Fields::Chunked => BodyKind::Chunked,
        Fields::OtherCoding => return Err(FramingError::Coding),
    };
    Ok(ResponseFraming {
        body,
        declared_length: None,
    })
}

/// Write the framing field for `kind` (nothing for `None`/`UntilClose`).
pub fn write(out: &mut Vec<u8>, kind: BodyKind) {
    match kind {
        BodyKind::Length(n) => write_length(out, n),
        BodyKind::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        BodyKind::None | BodyKind::UntilClose => {}
    }
}

pub fn write_length(out: &mut Vec<u8>, n: u64) {
    use std::io::Write;
    let _ = write!(out, "Content-Length: {n}\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h<'a>(pairs: &[(&'a str, &'a str)]) -> Vec<(&'a [u8], &'a [u8])> {
        pairs
            .iter()
            .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
            .collect()
    }

    #[test]
    fn request_framing() {
        assert_eq!(request(h(&[]), 1), Ok(BodyKind::None));
        assert_eq!(
            request(h(&[("Content-Length", "0")]), 1),
            Ok(BodyKind::Length(0))
        );
        assert_eq!(
            request(h(&[("content-length", " 12 ")]), 0),
            Ok(BodyKind::Length(12))
        );
        assert_eq!(
            request(h(&[("Transfer-Encoding", "Chunked")]), 1),
            Ok(BodyKind::Chunked)
        );
    }

    #[test]
    fn ambiguous_requests_are_refused() {
        let bad = |pairs: &[(&str, &str)], minor| request(h(pairs), minor).unwrap_err();
        assert_eq!(
            bad(
                &[
                    ("Transfer-Encoding", "chunked"),
                    ("Transfer-Encoding", "identity")
                ],
                1
            ),
            FramingError::Bad("repeated Transfer-Encoding")
        );
        assert_eq!(
            bad(
                &[
                    ("Transfer-Encoding", "chunked"),
                    ("Transfer-Encoding", "chunked")
                ],
                1
            ),
            FramingError::Bad("repeated Transfer-Encoding")
        );
        assert_eq!(
            bad(&[("Content-Length", "3"), ("Content-Length", "3")], 1),
            FramingError::Bad("repeated Content-Length")
        );
        assert_eq!(
            bad(
                &[("Content-Length", "3"), ("Transfer-Encoding", "chunked")],
                1
            ),
            FramingError::Bad("both Transfer-Encoding and Content-Length")
        );
        assert_eq!(
            bad(&[("Transfer-Encoding", "gzip, chunked")], 1),
            FramingError::Coding
        );
        assert_eq!(
            bad(&[("Transfer-Encoding", "chunked, chunked")], 1),
            FramingError::Coding
        );
        assert_eq!(
            bad(&[("Transfer-Encoding", "identity")], 1),
            FramingError::Coding
        );
        assert!(matches!(
            bad(&[("Transfer-Encoding", "chunked")], 0),
            FramingError::Bad(_)
        ));
        for v in ["-1", "1,2", "+3", "0x3", "", "3 3"] {
            assert_eq!(
                bad(&[("Content-Length", v)], 1),
                FramingError::Bad("bad Content-Length"),
                "{v:?}"
            );
        }
    }

    #[test]
    fn response_framing() {
        let r = |status, pairs: &[(&str, &str)], head| response(status, h(pairs), 1, head);
        assert_eq!(r(200, &[], false).unwrap().body, BodyKind::UntilClose);
        assert_eq!(
            r(200, &[("Content-Length", "5")], false).unwrap().body,
            BodyKind::Length(5)
        );
        assert_eq!(
            r(200, &[("Transfer-Encoding", "chunked")], false)
                .unwrap()
                .body,
            BodyKind::Chunked
        );
        let head = r(200, &[("Content-Length", "5")], true).unwrap();
        assert_eq!(head.body, BodyKind::None);
        assert_eq!(head.declared_length, Some(5));
        assert_eq!(
            r(304, &[("Content-Length", "5")], false)
                .unwrap()
                .declared_length,
            Some(5)
        );
        let nc = r(204, &[("Content-Length", "5")], false).unwrap();
        assert_eq!((nc.body, nc.declared_length), (BodyKind::None, None));
        assert_eq!(r(101, &[], false).unwrap().body, BodyKind::None);
        // Ambiguity is refused even where the body is empty by rule.
        assert!(r(
            200,
            &[("Content-Length", "1"), ("Content-Length", "1")],
            true
        )
        .is_err());
        assert!(r(
            200,
            &[("Transfer-Encoding", "chunked"), ("Content-Length", "3")],
            false
        )
        .is_err());
        assert_eq!(
            r(200, &[("Transfer-Encoding", "gzip")], false).unwrap_err(),
            FramingError::Coding
        );
        assert!(response(200, h(&[("Transfer-Encoding", "chunked")]), 0, false).is_err());
    }

    #[test]
    fn written_framing() {
        let mut out = Vec::new();
        write(&mut out, BodyKind::Length(0));
        write(&mut out, BodyKind::Chunked);
        write(&mut out, BodyKind::None);
        write(&mut out, BodyKind::UntilClose);
        assert_eq!(
            out,
            b"Content-Length: 0\r\nTransfer-Encoding: chunked\r\n".to_vec()
        );
        assert!(is_framing(b"Content-LENGTH") && is_framing(b"transfer-encoding"));
        assert!(!is_framing(b"content-type"));
    }
}
