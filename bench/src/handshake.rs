//! The RFC 6455 opening handshake (§4): the client's upgrade request, the
//! server's reading of it and its 101 answer, and the client's check of that
//! answer (status, `Upgrade`, `Sec-WebSocket-Accept`). Pure functions on
//! bytes; the accept key comes from tungstenite's `derive_accept_key`.

/// Longest request or response head either side accepts.
pub const MAX_HEAD: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;

/// Why a handshake head was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// Not HTTP/1.x, or a broken header line.
    #[error("malformed head")]
    Malformed,
    /// The head did not end within [`MAX_HEAD`] bytes.
    #[error("head larger than {MAX_HEAD} bytes")]
    TooLarge,
    /// The server answered something other than 101.
    #[error("status {0}")]
    Status(u16),
    /// 101 without `Upgrade: websocket`.
    #[error("101 without Upgrade: websocket")]
    NotWebSocket,
    /// `Sec-WebSocket-Accept` missing or not derived from our key (§4.1).
    #[error("wrong Sec-WebSocket-Accept")]
    BadAccept,
}

/// A fresh random `Sec-WebSocket-Key` (16 random bytes, base64; §4.1).
pub fn new_key() -> String {
    tungstenite::handshake::client::generate_key()
}

/// `Sec-WebSocket-Accept` for a key (§4.2.2 step 5.4).
pub fn accept_key(key: &[u8]) -> String {
    tungstenite::handshake::derive_accept_key(key)
}

/// The client's upgrade request (§4.1).
pub fn client_request(host: &str, path: &str, key: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes()
}

/// What the server needs from a request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The request target.
    pub path: String,
    /// `Sec-WebSocket-Key`, when the request is a WebSocket upgrade
    /// (`Upgrade: websocket` and a key present).
    pub ws_key: Option<String>,
    /// Length of the head including the blank line.
    pub head_len: usize,
    /// The client keeps the connection open after this request
    /// (HTTP/1.1 without `Connection: close`, or 1.0 with keep-alive).
    pub keep_alive: bool,
    /// `Content-Length` of the request body (0 when absent).
    pub content_length: u64,
}

/// Parse a request head at the start of `buf`; `Ok(None)` while incomplete.
pub fn parse_request(buf: &[u8]) -> Result<Option<Request>, HandshakeError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
            return Err(HandshakeError::TooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(HandshakeError::Malformed),
    };
    let upgrade = header(req.headers, "upgrade").is_some_and(|v| has_token(v, "websocket"));
    let key = header(req.headers, "sec-websocket-key")
        .and_then(|v| std::str::from_utf8(v).ok())
        .map(|k| k.trim().to_string());
    let conn = header(req.headers, "connection");
    let keep_alive = if req.version == Some(1) {
        !conn.is_some_and(|v| has_token(v, "close"))
    } else {
        conn.is_some_and(|v| has_token(v, "keep-alive"))
    };
    let content_length = header(req.headers, "content-length")
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    Ok(Some(Request {
        path: req.path.unwrap_or("/").to_string(),
        ws_key: if upgrade { key } else { None },
        head_len,
        keep_alive,
        content_length,
    }))
}

/// The server's 101 answer for a key (§4.2.2).
pub fn server_response(key: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        accept_key(key.as_bytes())
    )
    .into_bytes()
}

/// Check the server's answer at the start of `buf` against the key we sent
/// (§4.1, "the client MUST validate the server's response"). `Ok(None)`
/// while incomplete, `Ok(Some(head_len))` once upgraded.
pub fn check_response(buf: &[u8], key: &str) -> Result<Option<usize>, HandshakeError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
            return Err(HandshakeError::TooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(HandshakeError::Malformed),
    };
    match resp.code {
        Some(101) => {}
        Some(code) => return Err(HandshakeError::Status(code)),
        None => return Err(HandshakeError::Malformed),
    }
    if !header(resp.headers, "upgrade").is_some_and(|v| has_token(v, "websocket")) {
        return Err(HandshakeError::NotWebSocket);
    }
    let want = accept_key(key.as_bytes());
    match header(resp.headers, "sec-websocket-accept") {
        Some(v) if v.trim_ascii() == want.as_bytes() => Ok(Some(head_len)),
        _ => Err(HandshakeError::BadAccept),
    }
}

fn header<'a>(headers: &[httparse::Header<'a>], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

/// Whether a comma-separated header value holds `token` (case-insensitive).
fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    #[test]
    fn accept_key_from_rfc6455() {
        // §1.3.
        assert_eq!(accept_key(KEY.as_bytes()), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn server_reads_the_client_request() {
        let req = client_request("127.0.0.1:80", "/ws/chat", KEY);
        assert_eq!(parse_request(&req[..req.len() - 1]), Ok(None));
        let mut with_frame = req.clone();
        with_frame.extend_from_slice(&[0x81, 0x80, 0, 0, 0, 0]);
        let r = parse_request(&with_frame).unwrap().unwrap();
        assert_eq!(r.path, "/ws/chat");
        assert_eq!(r.ws_key.as_deref(), Some(KEY));
        assert_eq!(r.head_len, req.len());
    }

    #[test]
    fn plain_requests_are_no_upgrade() {
        let r = parse_request(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(r.ws_key, None);
        let r = parse_request(b"GET / HTTP/1.1\r\nUpgrade: h2c\r\nSec-WebSocket-Key: k\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(r.ws_key, None);
        assert_eq!(
            parse_request(b"\x16\x03\x01 junk\r\n\r\n"),
            Err(HandshakeError::Malformed)
        );
        let long = [b"GET / HTTP/1.1\r\nX: ".as_slice(), &[b'a'; MAX_HEAD]].concat();
        assert_eq!(parse_request(&long), Err(HandshakeError::TooLarge));
    }

    #[test]
    fn client_checks_the_answer() {
        let ok = server_response(KEY);
        assert_eq!(check_response(&ok[..10], KEY), Ok(None));
        assert_eq!(check_response(&ok, KEY), Ok(Some(ok.len())));
        assert_eq!(
            check_response(&ok, "AAAAAAAAAAAAAAAAAAAAAA=="),
            Err(HandshakeError::BadAccept)
        );
        assert_eq!(
            check_response(
                b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n",
                KEY
            ),
            Err(HandshakeError::Status(502))
        );
        assert_eq!(
            check_response(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n",
                KEY
            ),
            Err(HandshakeError::NotWebSocket)
        );
        // nginx spells it in lower case and may add headers; tokens are lists.
        let nginx = format!(
            "HTTP/1.1 101 Switching Protocols\r\nServer: nginx\r\nupgrade: WebSocket\r\n\
             connection: upgrade\r\nsec-websocket-accept: {}\r\n\r\n",
            accept_key(KEY.as_bytes())
        );
        assert!(check_response(nginx.as_bytes(), KEY).unwrap().is_some());
    }
}
