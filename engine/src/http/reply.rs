//! Responses ringway writes itself: `return` locations and the error
//! answers (400/404/408/413/414/431/502/503/504).

/// The reason phrase for a status ringway may send.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        414 => "URI Too Long",
        416 => "Range Not Satisfiable",
        421 => "Misdirected Request",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// A complete response with a body. `extra` is pre-formatted header lines.
#[allow(clippy::too_many_arguments)]
pub fn full(
    out: &mut Vec<u8>,
    status: u16,
    extra: &[(&str, &[u8])],
    server_tokens: bool,
    content_type: &str,
    body: &[u8],
    head_only: bool,
    keep_alive: bool,
) {
    use std::io::Write;
    let _ = write!(out, "HTTP/1.1 {} {}\r\n", status, reason(status));
    out.extend_from_slice(super::rewrite::server_field(server_tokens));
    super::date::push_date(out);
    for (n, v) in extra {
        super::rewrite::push_header(out, n, v);
    }
    if !body.is_empty() || status >= 200 && status != 204 && status != 304 {
        let _ = write!(
            out,
            "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
            body.len()
        );
    }
    out.extend_from_slice(if keep_alive {
        b"Connection: keep-alive\r\n\r\n"
    } else {
        b"Connection: close\r\n\r\n"
    });
    if !head_only {
        out.extend_from_slice(body);
    }
}

/// An error answer with a short plain-text body; always closes.
pub fn error(out: &mut Vec<u8>, status: u16) {
    let body = format!("{} {}\n", status, reason(status));
    full(
        out,
        status,
        &[],
        false,
        "text/plain",
        body.as_bytes(),
        false,
        false,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_answers_are_complete() {
        let mut out = Vec::new();
        error(&mut out, 502);
        let s = String::from_utf8(out).unwrap();
        assert!(s.starts_with("HTTP/1.1 502 Bad Gateway\r\n"));
        assert!(s.contains("Content-Length: 16\r\n"));
        assert!(s.ends_with("\r\n\r\n502 Bad Gateway\n"));
    }

    #[test]
    fn head_only_keeps_length() {
        let mut out = Vec::new();
        full(&mut out, 200, &[], false, "text/plain", b"OK", true, true);
        let s = String::from_utf8(out).unwrap();
        assert!(s.contains("Content-Length: 2\r\n"));
        assert!(s.ends_with("keep-alive\r\n\r\n"));
    }
}
