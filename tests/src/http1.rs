//! Two independent HTTP/1.1 request parsers over the bytes a backend
//! received, used to check what ringway forwards:
//!
//! - [`Mode::Strict`]: RFC 9112 to the letter — CRLF line ends, one
//!   framing field, `chunked` exactly, canonical chunk lines.
//! - [`Mode::Lenient`]: the way permissive servers read (RFC 9112 §2.2
//!   allows bare LF; many accept more): LF ends a line, leading empty
//!   lines are skipped, `Transfer-Encoding` containing "chunked" wins over
//!   `Content-Length`, the first `Content-Length` counts, chunk lines end at
//!   LF.
//!
//! Written from the RFC, not from ringway's code, so a bug in ringway's
//! parser is not repeated here. A byte stream that parses into different
//! requests under the two modes is exactly what a proxy must never send.

/// One parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Parsed {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// "METHOD target", as an access log line carries it.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.target)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Strict,
    Lenient,
}

/// Why bytes do not parse (in the given mode).
pub type Error = String;

/// Parse one request at the start of `buf`: `Ok(None)` when more bytes
/// are needed, else the request and the bytes it took.
pub fn parse_one(buf: &[u8], mode: Mode) -> Result<Option<(Parsed, usize)>, Error> {
    let mut cur = Cursor { buf, pos: 0, mode };
    if mode == Mode::Lenient {
        // Robustness: empty lines before a request line are skipped.
        while cur.rest().starts_with(b"\r\n") || cur.rest().starts_with(b"\n") {
            cur.pos += if cur.rest()[0] == b'\r' { 2 } else { 1 };
        }
    }
    let Some(line) = cur.line()? else {
        return Ok(None);
    };
    let (method, target) = request_line(line, mode)?;
    let mut headers = Vec::new();
    loop {
        let Some(line) = cur.line()? else {
            return Ok(None);
        };
        if line.is_empty() {
            break;
        }
        headers.push(header_line(line, mode)?);
    }
    let body = match framing(&headers, mode)? {
        Framing::None => Vec::new(),
        Framing::Length(n) => {
            if cur.rest().len() < n {
                return Ok(None);
            }
            let b = cur.rest()[..n].to_vec();
            cur.pos += n;
            b
        }
        Framing::Chunked => match chunked(&mut cur)? {
            Some(b) => b,
            None => return Ok(None),
        },
    };
    Ok(Some((
        Parsed {
            method,
            target,
            headers,
            body,
        },
        cur.pos,
    )))
}

/// Parse every complete request in `buf`. Returns them, the bytes left
/// over (an incomplete request, or none), and the error that stopped the
/// parse, if one did.
pub fn parse_all(buf: &[u8], mode: Mode) -> (Vec<Parsed>, usize, Option<Error>) {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        match parse_one(&buf[pos..], mode) {
            Ok(Some((p, n))) => {
                out.push(p);
                pos += n;
            }
            Ok(None) => return (out, buf.len() - pos, None),
            Err(e) => return (out, buf.len() - pos, Some(e)),
        }
    }
    (out, 0, None)
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    mode: Mode,
}

impl<'a> Cursor<'a> {
    fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    /// The next line without its line end, or `None` if it is not complete.
    fn line(&mut self) -> Result<Option<&'a [u8]>, Error> {
        let rest = self.rest();
        match self.mode {
            Mode::Strict => {
                let Some(i) = rest.iter().position(|&b| b == b'\n') else {
                    return Ok(None);
                };
                if i == 0 || rest[i - 1] != b'\r' {
                    return Err("bare LF".into());
                }
                let line = &rest[..i - 1];
                if line.contains(&b'\r') {
                    return Err("bare CR".into());
                }
                self.pos += i + 1;
                Ok(Some(line))
            }
            Mode::Lenient => {
                let Some(i) = rest.iter().position(|&b| b == b'\n') else {
                    return Ok(None);
                };
                let line = &rest[..i];
                self.pos += i + 1;
                Ok(Some(line.strip_suffix(b"\r").unwrap_or(line)))
            }
        }
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn request_line(line: &[u8], mode: Mode) -> Result<(String, String), Error> {
    let text = String::from_utf8_lossy(line);
    let parts: Vec<&str> = match mode {
        Mode::Strict => text.split(' ').collect(),
        Mode::Lenient => text.split_whitespace().collect(),
    };
    let [method, target, version] = parts.as_slice() else {
        return Err(format!("bad request line {text:?}"));
    };
    if method.is_empty() || !method.bytes().all(is_tchar) {
        return Err(format!("bad method {method:?}"));
    }
    let version_ok = match mode {
        Mode::Strict => *version == "HTTP/1.1" || *version == "HTTP/1.0",
        Mode::Lenient => version.starts_with("HTTP/"),
    };
    if !version_ok || target.is_empty() {
        return Err(format!("bad request line {text:?}"));
    }
    Ok((method.to_string(), target.to_string()))
}

fn header_line(line: &[u8], mode: Mode) -> Result<(String, String), Error> {
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return Err(format!(
            "header line without a colon: {:?}",
            String::from_utf8_lossy(line)
        ));
    };
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    let name = match mode {
        Mode::Strict => {
            if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
                return Err(format!(
                    "bad field name {:?}",
                    String::from_utf8_lossy(name)
                ));
            }
            name
        }
        Mode::Lenient => name.trim_ascii(),
    };
    if mode == Mode::Strict && value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err("control character in a field value".into());
    }
    Ok((
        String::from_utf8_lossy(name).into_owned(),
        String::from_utf8_lossy(value.trim_ascii()).into_owned(),
    ))
}

enum Framing {
    None,
    Length(usize),
    Chunked,
}

fn framing(headers: &[(String, String)], mode: Mode) -> Result<Framing, Error> {
    fn named<'h>(
        headers: &'h [(String, String)],
        n: &'static str,
    ) -> impl Iterator<Item = &'h str> {
        headers
            .iter()
            .filter(move |(h, _)| h.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.as_str())
    }
    match mode {
        Mode::Strict => {
            let te: Vec<&str> = named(headers, "transfer-encoding").collect();
            let cl: Vec<&str> = named(headers, "content-length").collect();
            match (te.as_slice(), cl.as_slice()) {
                ([], []) => Ok(Framing::None),
                ([], [n]) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => n
                    .parse()
                    .map(Framing::Length)
                    .map_err(|_| "bad Content-Length".into()),
                ([t], []) if t.eq_ignore_ascii_case("chunked") => Ok(Framing::Chunked),
                _ => Err("ambiguous framing".into()),
            }
        }
        Mode::Lenient => {
            if named(headers, "transfer-encoding")
                .any(|v| v.to_ascii_lowercase().contains("chunked"))
            {
                return Ok(Framing::Chunked);
            }
            match named(headers, "content-length").next() {
                None => Ok(Framing::None),
                Some(v) => {
                    let digits: String = v.chars().take_while(char::is_ascii_digit).collect();
                    digits
                        .parse()
                        .map(Framing::Length)
                        .map_err(|_| "bad Content-Length".into())
                }
            }
        }
    }
}

/// A chunked body: `Ok(None)` if incomplete.
fn chunked(cur: &mut Cursor<'_>) -> Result<Option<Vec<u8>>, Error> {
    let mut body = Vec::new();
    loop {
        let Some(line) = cur.line()? else {
            return Ok(None);
        };
        let size_text: &[u8] = match cur.mode {
            Mode::Strict => {
                let end = line.iter().position(|&b| b == b';').unwrap_or(line.len());
                &line[..end]
            }
            Mode::Lenient => {
                let end = line
                    .iter()
                    .position(|&b| !b.is_ascii_hexdigit())
                    .unwrap_or(line.len());
                &line[..end]
            }
        };
        let text = std::str::from_utf8(size_text).map_err(|_| "bad chunk size")?;
        let size =
            usize::from_str_radix(text, 16).map_err(|_| format!("bad chunk size {text:?}"))?;
        if size == 0 {
            // Trailer fields, then an empty line.
            loop {
                let Some(line) = cur.line()? else {
                    return Ok(None);
                };
                if line.is_empty() {
                    return Ok(Some(body));
                }
                header_line(line, cur.mode)?;
            }
        }
        if cur.rest().len() < size {
            return Ok(None);
        }
        body.extend_from_slice(&cur.rest()[..size]);
        cur.pos += size;
        let Some(end) = cur.line()? else {
            return Ok(None);
        };
        if !end.is_empty() {
            return Err("chunk data not followed by a line end".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_modes_read_canonical_requests_alike() {
        let raw = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nxyz\r\n0\r\n\r\n";
        for mode in [Mode::Strict, Mode::Lenient] {
            let (reqs, left, err) = parse_all(raw, mode);
            assert_eq!((left, err), (0, None), "{mode:?}");
            assert_eq!(reqs.len(), 2);
            assert_eq!(reqs[0].line(), "POST /a");
            assert_eq!(reqs[0].body, b"abc");
            assert_eq!(reqs[1].body, b"xyz");
        }
    }

    #[test]
    fn the_modes_disagree_where_smuggling_lives() {
        // A bare LF ends the chunked body early for the lenient reader.
        let raw = b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
        let (lenient, _, _) = parse_all(raw, Mode::Lenient);
        assert!(
            lenient.iter().any(|r| r.target == "/smuggled"),
            "{lenient:?}"
        );
        let (strict, _, err) = parse_all(raw, Mode::Strict);
        assert!(strict.is_empty() && err.is_some());
        // TE beats CL for the lenient reader.
        let raw = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        assert_eq!(parse_all(raw, Mode::Lenient).0.len(), 1);
        assert!(parse_all(raw, Mode::Strict).2.is_some());
        assert!(parse_one(b"GET / HTTP/1.1\r\nHost: x\r\n", Mode::Strict)
            .unwrap()
            .is_none());
    }
}
