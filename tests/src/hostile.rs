//! Generated hostile HTTP/1.1 input: request byte strings built from the
//! places where parsers disagree — line ends (bare LF, bare CR), framing
//! fields (repeated, conflicting, malformed, named in `Connection`),
//! chunked framing (bare line ends, extensions, trailers, wrong sizes),
//! upgrades with bytes behind them, odd targets, pipelining — each
//! carrying a smuggled request (`GET /SMUGGLED`) where a lenient reader
//! might find one. Deterministic from a seed (a small xorshift), so a
//! failing case is reproduced by its seed and index.

/// The target of every smuggled request the generator hides.
pub const SMUGGLED_TARGET: &str = "/SMUGGLED";

/// xorshift64*: small, deterministic, good enough to pick cases.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True with probability `pct`%.
    pub fn chance(&mut self, pct: u64) -> bool {
        self.next_u64() % 100 < pct
    }

    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

/// A line end: mostly CRLF, sometimes a bare LF or a bare CR.
fn eol(rng: &mut Rng) -> &'static str {
    if rng.chance(6) {
        "\n"
    } else if rng.chance(2) {
        "\r"
    } else {
        "\r\n"
    }
}

fn header(rng: &mut Rng, out: &mut String, line: &str) {
    out.push_str(line);
    out.push_str(eol(rng));
}

fn smuggled() -> String {
    format!("GET {SMUGGLED_TARGET} HTTP/1.1\r\nHost: x\r\n\r\n")
}

/// One hostile request (sometimes followed by a pipelined one). `prefix`
/// is the path prefix every target starts with (the location under test);
/// `n` makes targets unique.
pub fn request(rng: &mut Rng, prefix: &str, n: usize) -> Vec<u8> {
    let method = *rng.pick(&[
        "GET", "GET", "POST", "POST", "PUT", "HEAD", "DELETE", "PATCH",
    ]);
    let target = match rng.below(10) {
        0 => format!("{prefix}/{n}?q=1"),
        1 => format!("{prefix}/%2e%2e/{n}"),
        2 => format!("{prefix}//{n}"),
        3 => format!("{prefix}/./x/../{n}"),
        4 => format!("http://x{prefix}/{n}"),
        5 => format!("{prefix}/{n}#frag"),
        6 => format!("{prefix}/%61{n}"),
        _ => format!("{prefix}/{n}"),
    };
    let version = *rng.pick(&[
        "HTTP/1.1", "HTTP/1.1", "HTTP/1.1", "HTTP/1.1", "HTTP/1.0", "HTTP/1.2",
    ]);
    let mut out = format!("{method} {target} {version}{}", eol(rng));
    match rng.below(12) {
        0 => {}
        1 => {
            header(rng, &mut out, "Host: x");
            header(rng, &mut out, "Host: y");
        }
        2 => header(rng, &mut out, "Host : x"),
        _ => header(rng, &mut out, "Host: x"),
    }
    let s = smuggled();
    // The framing fields, and the body they announce.
    let body: String = match rng.below(14) {
        0 | 1 => String::new(),
        2 => {
            header(rng, &mut out, &format!("Content-Length: {}", s.len()));
            s.clone()
        }
        3 => {
            header(rng, &mut out, "Content-Length: 0");
            s.clone()
        }
        4 => {
            let n = s.len();
            header(rng, &mut out, &format!("Content-Length: {n}"));
            let second = if rng.chance(50) { n } else { 0 };
            header(rng, &mut out, &format!("Content-Length: {second}"));
            s.clone()
        }
        5 => {
            let v = *rng.pick(&["+5", "5 5", "0x5", "-1", "5,5", "", "99999999999999999999"]);
            header(rng, &mut out, &format!("Content-Length: {v}"));
            s.clone()
        }
        6 => {
            header(rng, &mut out, "Transfer-Encoding: chunked");
            header(rng, &mut out, &format!("Content-Length: {}", s.len()));
            format!("0\r\n\r\n{s}")
        }
        7 => {
            header(rng, &mut out, "Transfer-Encoding: chunked");
            let second = *rng.pick(&["Transfer-Encoding: identity", "Transfer-Encoding: chunked"]);
            header(rng, &mut out, second);
            format!("0\r\n\r\n{s}")
        }
        8 => {
            let v = *rng.pick(&[
                "gzip, chunked",
                "chunked, chunked",
                "identity",
                " chunked ",
                "xchunked",
                "chunked;q=1",
                "Chunked",
            ]);
            header(rng, &mut out, &format!("Transfer-Encoding: {v}"));
            format!("0\r\n\r\n{s}")
        }
        _ => {
            header(rng, &mut out, "Transfer-Encoding: chunked");
            chunked_body(rng)
        }
    };
    match rng.below(8) {
        0 => header(rng, &mut out, "Connection: Content-Length"),
        1 => header(rng, &mut out, "Connection: Transfer-Encoding"),
        2 => header(rng, &mut out, "Connection: close"),
        3 => header(rng, &mut out, "Connection: Host, X-Drop"),
        4 => {
            header(rng, &mut out, "Upgrade: websocket");
            header(rng, &mut out, "Connection: Upgrade");
            header(rng, &mut out, "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==");
            header(rng, &mut out, "Sec-WebSocket-Version: 13");
        }
        _ => {}
    }
    if rng.chance(15) {
        header(rng, &mut out, "Expect: 100-continue");
    }
    if rng.chance(10) {
        header(rng, &mut out, "X_Forwarded_For: 6.6.6.6");
    }
    if rng.chance(5) {
        // obs-fold: a continuation line.
        out.push_str("X-Fold: a");
        out.push_str(eol(rng));
        out.push_str(" folded");
        out.push_str(eol(rng));
    }
    out.push_str(eol(rng));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body.as_bytes());
    if rng.chance(30) {
        bytes.extend_from_slice(
            format!("GET {prefix}/pipelined-{n} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
        );
    }
    bytes
}

/// A chunked body with one perturbation (or none), followed by a
/// smuggled request.
fn chunked_body(rng: &mut Rng) -> String {
    let s = smuggled();
    let data = "hello world";
    match rng.below(12) {
        0 => format!("{:x}\r\n{data}\r\n0\r\n\r\n{s}", data.len()),
        1 => format!("{:x}\r\n{data}\r\n0\n\r\n{s}", data.len()),
        2 => format!("{:x}\r\n{data}\r\n0\r\nX-T: 1\n\r\n{s}", data.len()),
        3 => format!("{:x}\r\n{data}\r\n0\r\n\n{s}", data.len()),
        4 => format!("{:x}\n{data}\r\n0\r\n\r\n{s}", data.len()),
        5 => format!(
            "{:x};ext=\"a\"\r\n{data}\r\n0\r\nTrailer-A: 1\r\n\r\n{s}",
            data.len()
        ),
        6 => format!("{:x}\r\n{data}\n0\r\n\r\n{s}", data.len()),
        // A size that swallows the smuggled request, or falls short of it.
        7 => format!("{:x}\r\n{data}\r\n0\r\n\r\n{s}", data.len() + 3),
        8 => format!("{:x}\r\n{data}\r\n{s}0\r\n\r\n", data.len()),
        9 => format!("0{:x}\r\n{data}\r\n000\r\n\r\n{s}", data.len()),
        10 => format!("{:x}\r\n{data}\r\n0\r\n\r\r\n{s}", data.len()),
        _ => format!("{:x} \r\n{data}\r\n0 \r\n\r\n{s}", data.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_varied() {
        let a: Vec<Vec<u8>> = (0..50)
            .map(|i| request(&mut Rng::new(7 + i), "/d", i as usize))
            .collect();
        let b: Vec<Vec<u8>> = (0..50)
            .map(|i| request(&mut Rng::new(7 + i), "/d", i as usize))
            .collect();
        assert_eq!(a, b);
        let smuggling = a
            .iter()
            .filter(|r| String::from_utf8_lossy(r).contains(SMUGGLED_TARGET))
            .count();
        assert!(smuggling > 20, "{smuggling}");
    }
}
