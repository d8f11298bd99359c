//! Request paths as nginx sees them: percent-decoded, dot segments resolved
//! (RFC 3986 §5.2.4), repeated slashes merged (nginx's `merge_slashes on`).
//!
//! Locations are matched on this normalised path, never on the bytes the
//! client sent, so `/p/%61dmin/`, `/p/x/../admin/` and `/p//admin/` all
//! reach the location of `/p/admin/` (and whatever it denies). A path that
//! climbs above `/`, has a bad escape, or decodes to NUL or to bytes that
//! are not UTF-8 is refused (400): nginx refuses the first three too, and
//! ringway's locations are UTF-8 text, so a path that is not cannot be
//! matched the way a backend would read it.
//!
//! What is forwarded follows nginx: without a URI part in `proxy_pass` the
//! target goes upstream as the client sent it; with one, the matched prefix
//! of the normalised path is replaced and the rest re-escaped with
//! [`escape_uri`] (nginx's `NGX_ESCAPE_URI`), so the upstream sees the path
//! ringway routed.

use std::borrow::Cow;

/// Why a path cannot be normalised (→ 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// `%` not followed by two hex digits.
    BadEscape,
    /// Decodes to a NUL byte.
    Nul,
    /// Decodes to bytes that are not UTF-8.
    NotUtf8,
    /// `..` above the root.
    AboveRoot,
    /// Does not start with `/`.
    NotAbsolute,
}

impl PathError {
    pub fn reason(self) -> &'static str {
        match self {
            PathError::BadEscape => "bad percent-escape in path",
            PathError::Nul => "NUL in path",
            PathError::NotUtf8 => "path is not UTF-8",
            PathError::AboveRoot => "path climbs above the root",
            PathError::NotAbsolute => "path does not start with /",
        }
    }
}

/// Whether `path` needs the slow path: an escape, a dot segment or a
/// repeated slash may be in it.
fn needs_work(path: &str) -> bool {
    let b = path.as_bytes();
    b.contains(&b'%') || b.windows(2).any(|w| w == b"/." || w == b"//")
}

/// The normalised form of an origin-form path (no query). Borrows when
/// the path is already normal.
pub fn normalize(path: &str) -> Result<Cow<'_, str>, PathError> {
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if path.contains('\0') {
        return Err(PathError::Nul);
    }
    if !needs_work(path) {
        return Ok(Cow::Borrowed(path));
    }
    let bytes = path.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = bytes.get(i + 1).and_then(|&c| hex(c));
            let lo = bytes.get(i + 2).and_then(|&c| hex(c));
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err(PathError::BadEscape);
            };
            decoded.push(hi << 4 | lo);
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    if decoded.contains(&0) {
        return Err(PathError::Nul);
    }
    let text = String::from_utf8(decoded).map_err(|_| PathError::NotUtf8)?;
    resolve(&text).map(|c| Cow::Owned(c.into_owned()))
}

/// Resolve dot segments and merge slashes in an already decoded path
/// (`try_files` candidates and fallbacks are decoded URIs, as nginx's
/// `$uri`: they are not percent-decoded a second time).
pub fn resolve(text: &str) -> Result<Cow<'_, str>, PathError> {
    if !text.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if text.contains('\0') {
        return Err(PathError::Nul);
    }
    if !text.as_bytes().windows(2).any(|w| w == b"/." || w == b"//") {
        return Ok(Cow::Borrowed(text));
    }
    let trailing = text.ends_with('/') || text.ends_with("/.") || text.ends_with("/..");
    let mut segs: Vec<&str> = Vec::new();
    for seg in text.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segs.pop().ok_or(PathError::AboveRoot)?;
            }
            s => segs.push(s),
        }
    }
    let mut s = String::with_capacity(text.len());
    for seg in &segs {
        s.push('/');
        s.push_str(seg);
    }
    if s.is_empty() || trailing {
        s.push('/');
    }
    Ok(Cow::Owned(s))
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Append `decoded` to `out` escaped as nginx's `ngx_escape_uri(...,
/// NGX_ESCAPE_URI)` does for a proxied URI: controls, space, `#`, `%`, `?`,
/// DEL and every non-ASCII byte become `%XX`; everything else is kept.
pub fn escape_uri(out: &mut String, decoded: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in decoded.as_bytes() {
        if b <= 0x20 || b >= 0x7f || matches!(b, b'#' | b'%' | b'?') {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        } else {
            out.push(b as char);
        }
    }
}

/// Append a query made by ringway (a `try_files` fallback's `?args`,
/// rendered from variables such as the decoded `$uri`) escaped so that it
/// stays one query of one request line: controls, space, `#`, DEL and
/// every non-ASCII byte become `%XX` (nginx's `NGX_ESCAPE_ARGS` set,
/// which keeps `%`, `&`, `=`, `?`, `/`).
pub fn escape_args(out: &mut String, args: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in args.as_bytes() {
        if b <= 0x20 || b >= 0x7f || b == b'#' {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        } else {
            out.push(b as char);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_args_stay_one_query() {
        let mut s = String::new();
        escape_args(&mut s, "q=/a b\r\nX: 1#f&r=é%2F");
        assert_eq!(s, "q=/a%20b%0D%0AX:%201%23f&r=%C3%A9%2F");
    }

    fn n(p: &str) -> Result<String, PathError> {
        normalize(p).map(Cow::into_owned)
    }

    #[test]
    fn normal_paths_are_borrowed() {
        assert!(matches!(
            normalize("/a/b.c/d"),
            Ok(Cow::Borrowed("/a/b.c/d"))
        ));
        assert!(matches!(normalize("/"), Ok(Cow::Borrowed("/"))));
    }

    #[test]
    fn normalizing_paths() {
        assert_eq!(n("/a/b/../c").unwrap(), "/a/c");
        assert_eq!(n("/a//b/./c/").unwrap(), "/a/b/c/");
        assert_eq!(n("/%61pp/x%20y").unwrap(), "/app/x y");
        assert_eq!(n("/a/..").unwrap(), "/");
        assert_eq!(n("/a/.").unwrap(), "/a/");
        assert_eq!(n("//").unwrap(), "/");
        assert_eq!(n("/%2e%2e/etc/passwd"), Err(PathError::AboveRoot));
        assert_eq!(n("/.."), Err(PathError::AboveRoot));
        assert_eq!(n("/a/%2E%2E/%2e%2e/x"), Err(PathError::AboveRoot));
        assert_eq!(n("/a%00b"), Err(PathError::Nul));
        assert_eq!(n("/a%zz"), Err(PathError::BadEscape));
        assert_eq!(n("/a%2"), Err(PathError::BadEscape));
        assert_eq!(n("/a%ff"), Err(PathError::NotUtf8));
        assert_eq!(n("a"), Err(PathError::NotAbsolute));
        assert_eq!(n("/p\0s"), Err(PathError::Nul));
        assert_eq!(n("/caf%C3%A9").unwrap(), "/café");
    }

    /// Class 6 of the smuggling issue: every spelling of /p/admin/ lands
    /// on /p/admin/.
    #[test]
    fn bypass_spellings_normalise_to_the_same_path() {
        for p in [
            "/p/%61dmin/",
            "/p/x/../admin/",
            "/p//admin/",
            "/p/./admin/",
            "/p/admin/.",
            "/p/x%2f..%2fadmin/",
            "/p/%2e/admin/",
            "//p///admin//",
        ] {
            assert_eq!(n(p).unwrap(), "/p/admin/", "{p}");
        }
    }

    #[test]
    fn resolving_does_not_decode_again() {
        assert_eq!(resolve("/a/%61/../b").unwrap(), "/a/b");
        assert_eq!(resolve("/%2561").unwrap(), "/%2561");
        assert_eq!(resolve("/a/../.."), Err(PathError::AboveRoot));
        assert_eq!(resolve("x"), Err(PathError::NotAbsolute));
    }

    #[test]
    fn escaping_as_nginx() {
        let mut s = String::new();
        escape_uri(&mut s, "a b%61?#/c\"'<>{}|^`\u{7f}é\t");
        assert_eq!(s, "a%20b%2561%3F%23/c\"'<>{}|^`%7F%C3%A9%09");
    }
}
