//! `$variable` templates: parsed once at load, rendered per request by the
//! engine. "$name" and "${name}" are variables; a "$" not followed by a name
//! is literal.

use crate::model::{Part, Template, Var};

/// Parse a template; `Err(name)` for an unknown variable.
pub fn parse(s: &str) -> Result<Template, String> {
    parse_with(s, &|_| false)
}

/// Parse a template where `named(name)` says which other names are
/// variables the configuration makes (`set`, named captures).
pub fn parse_with(s: &str, named: &dyn Fn(&str) -> bool) -> Result<Template, String> {
    let parts = scan(s, |n| {
        variable(n).or_else(|| named(n).then(|| Var::Named(n.to_string())))
    })?
    .into_iter()
    .map(|p| match p {
        Piece::Literal(l) => Part::Literal(l),
        Piece::Var(v) => Part::Var(v),
    })
    .collect();
    Ok(Template { parts })
}

/// A piece of a string with `$variables`.
pub(crate) enum Piece<V> {
    Literal(String),
    Var(V),
}

/// Split `s` into literal text and variables, each name looked up with
/// `var` ("$name" or "${name}"; a "$" not followed by a name is literal);
/// `Err(name)` for a name `var` does not know or an unclosed "${". Shared
/// by templates and `log_format`.
pub(crate) fn scan<V>(s: &str, var: impl Fn(&str) -> Option<V>) -> Result<Vec<Piece<V>>, String> {
    let mut parts = Vec::new();
    let mut lit = String::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'$' {
            let ch = s[i..].chars().next().unwrap_or('\0');
            lit.push(ch);
            i += ch.len_utf8();
            continue;
        }
        let (name, next) = if b.get(i + 1) == Some(&b'{') {
            match s[i + 2..].find('}') {
                Some(end) => (&s[i + 2..i + 2 + end], i + 3 + end),
                None => return Err(s[i + 1..].to_string()),
            }
        } else {
            let end = s[i + 1..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(s.len(), |e| i + 1 + e);
            (&s[i + 1..end], end)
        };
        if name.is_empty() && next == i + 1 {
            lit.push('$');
            i += 1;
            continue;
        }
        let v = var(name).ok_or_else(|| name.to_string())?;
        if !lit.is_empty() {
            parts.push(Piece::Literal(std::mem::take(&mut lit)));
        }
        parts.push(Piece::Var(v));
        i = next;
    }
    if !lit.is_empty() {
        parts.push(Piece::Literal(lit));
    }
    Ok(parts)
}

/// A built-in variable by its name.
pub(crate) fn variable(name: &str) -> Option<Var> {
    Some(match name {
        "host" => Var::Host,
        "remote_addr" => Var::RemoteAddr,
        "remote_port" => Var::RemotePort,
        "server_addr" => Var::ServerAddr,
        "server_port" => Var::ServerPort,
        "server_name" => Var::ServerName,
        "scheme" => Var::Scheme,
        "https" => Var::Https,
        "ssl_protocol" => Var::SslProtocol,
        "ssl_server_name" => Var::SslServerName,
        "binary_remote_addr" => Var::BinaryRemoteAddr,
        "proxy_protocol_addr" => Var::ProxyProtocolAddr,
        "realip_remote_addr" => Var::RealIpRemoteAddr,
        "request_uri" => Var::RequestUri,
        "uri" | "document_uri" => Var::Uri,
        "args" | "query_string" => Var::Args,
        "is_args" => Var::IsArgs,
        "1" | "2" | "3" | "4" | "5" | "6" | "7" | "8" | "9" => {
            Var::Capture(name.as_bytes()[0] - b'0')
        }
        "request_method" => Var::RequestMethod,
        "proxy_host" => Var::ProxyHost,
        "proxy_add_x_forwarded_for" => Var::ProxyAddXForwardedFor,
        "connection_upgrade" => Var::ConnectionUpgrade,
        "http_upgrade" => Var::Http("upgrade".into()),
        _ => {
            let name_ok = |n: &str| {
                !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            };
            if let Some(h) = name.strip_prefix("http_").filter(|n| name_ok(n)) {
                Var::Http(h.to_ascii_lowercase().replace('_', "-"))
            } else if let Some(c) = name.strip_prefix("cookie_").filter(|n| name_ok(n)) {
                Var::Cookie(c.to_string())
            } else if let Some(a) = name.strip_prefix("arg_").filter(|n| name_ok(n)) {
                Var::Arg(a.to_string())
            } else {
                return None;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_and_literals() {
        let t = parse("https://${host}$request_uri?x=$arg_room&c=$cookie_sid $ end$").unwrap();
        assert_eq!(
            t.parts,
            vec![
                Part::Literal("https://".into()),
                Part::Var(Var::Host),
                Part::Var(Var::RequestUri),
                Part::Literal("?x=".into()),
                Part::Var(Var::Arg("room".into())),
                Part::Literal("&c=".into()),
                Part::Var(Var::Cookie("sid".into())),
                Part::Literal(" $ end$".into()),
            ]
        );
        assert_eq!(
            parse("$http_X_Token").unwrap().parts,
            vec![Part::Var(Var::Http("x-token".into()))]
        );
        assert_eq!(parse("").unwrap().parts, vec![]);
    }

    #[test]
    fn unknown_variables() {
        assert_eq!(parse("$nope").unwrap_err(), "nope");
        assert_eq!(parse("${host").unwrap_err(), "{host");
        assert_eq!(parse("$http_").unwrap_err(), "http_");
    }
}
