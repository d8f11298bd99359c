//! Configuration errors: each names the file, the line (and, for TOML
//! syntax, the column) and the full dotted key, and says what is wrong.

use std::fmt;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based; `None` when the error is not about one place in the file.
    pub line: Option<usize>,
    /// 1-based, in characters; set for TOML syntax errors, where the line
    /// alone does not say where the parser stopped.
    pub column: Option<usize>,
    /// The full dotted TOML path, e.g.
    /// `servers.ws.locations."/ws/".proxy_read_timeout` (array elements as
    /// `servers[0]`), or `(file)` / `(syntax)` when no key is involved.
    pub key: String,
    pub kind: ErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    #[error("cannot read the file: {0}")]
    Read(String),
    #[error("{0}")]
    Syntax(String),
    /// A key the table does not take. `expected` lists the keys it does
    /// take (as the parser knows them); `suggestion` is the one closest to
    /// what was written, when one is close; `elsewhere` is the place (a
    /// path pattern from [`crate::keys::KEYS`]) where a key of this name
    /// belongs, when it belongs somewhere else.
    #[error("{}", unknown_key(suggestion.as_deref(), elsewhere.as_deref(), expected))]
    UnknownKey {
        suggestion: Option<String>,
        elsewhere: Option<String>,
        expected: Vec<String>,
    },
    /// An nginx directive ringway does not plan to carry
    /// ([`crate::keys::NOT_PLANNED`]).
    #[error("`{name}` is not planned in ringway: {why}")]
    NotPlanned { name: String, why: &'static str },
    /// A key or table written twice (TOML forbids it).
    #[error("{} twice{}", if *table { "table defined" } else { "key set" }, first_line.map(|l| format!(" (first on line {l})")).unwrap_or_default())]
    Duplicate {
        table: bool,
        first_line: Option<usize>,
    },
    #[error("bad duration `{value}` (use a number with a unit: 500ms, 10s, 5m, 1h; a bare number is seconds)")]
    BadDuration { value: String },
    #[error("bad size `{value}` (use bytes or a number with k, m or g)")]
    BadSize { value: String },
    #[error("bad address `{value}`: {reason}")]
    BadAddress { value: String, reason: String },
    #[error("proxy_pass to undefined upstream `{name}`")]
    UndefinedUpstream { name: String },
    #[error("{addr} with server_name `{name}` is already used by server `{other}`")]
    DuplicateListen {
        addr: String,
        name: String,
        other: String,
    },
    #[error("tls needs `{which}`")]
    MissingTlsFile { which: &'static str },
    #[error("invalid regular expression: {0}")]
    InvalidRegex(String),
    #[error("unknown variable `${name}`")]
    UnknownVariable { name: String },
    #[error("expected {expected}, found `{found}`")]
    Type {
        expected: &'static str,
        found: String,
    },
    #[error("{0}")]
    Invalid(String),
}

fn unknown_key(suggestion: Option<&str>, elsewhere: Option<&str>, expected: &[String]) -> String {
    if let Some(s) = suggestion {
        return format!("unknown key; did you mean `{s}`?");
    }
    match elsewhere {
        Some(place) => format!("unknown key here (it belongs in {place})"),
        None if expected.is_empty() => "unknown key".to_string(),
        None => format!("unknown key (valid here: {})", expected.join(", ")),
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, "{line}:")?;
            if let Some(column) = self.column {
                write!(f, "{column}:")?;
            }
        }
        write!(f, " {}: {}", self.key, self.kind)
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(line: Option<usize>, column: Option<usize>, kind: ErrorKind) -> String {
        ConfigError {
            file: "/r.toml".into(),
            line,
            column,
            key: "servers.a.x".into(),
            kind,
        }
        .to_string()
    }

    #[test]
    fn the_place_comes_first() {
        let syntax = ErrorKind::Syntax("invalid array; expected `]`".into());
        assert_eq!(
            at(Some(3), Some(12), syntax.clone()),
            "/r.toml:3:12: servers.a.x: invalid array; expected `]`"
        );
        assert_eq!(
            at(Some(3), None, syntax.clone()),
            "/r.toml:3: servers.a.x: invalid array; expected `]`"
        );
        assert_eq!(
            at(None, None, syntax),
            "/r.toml: servers.a.x: invalid array; expected `]`"
        );
    }

    #[test]
    fn unknown_keys_and_duplicates_read_as_sentences() {
        let unknown = |suggestion: Option<&str>, elsewhere: Option<&str>, expected: &[&str]| {
            ErrorKind::UnknownKey {
                suggestion: suggestion.map(str::to_string),
                elsewhere: elsewhere.map(str::to_string),
                expected: expected.iter().map(|s| s.to_string()).collect(),
            }
            .to_string()
        };
        assert_eq!(
            unknown(Some("addr"), None, &["addr", "weight"]),
            "unknown key; did you mean `addr`?"
        );
        assert_eq!(
            unknown(None, None, &["addr", "weight"]),
            "unknown key (valid here: addr, weight)"
        );
        assert_eq!(
            unknown(None, Some("servers.NAME"), &["addr"]),
            "unknown key here (it belongs in servers.NAME)"
        );
        assert_eq!(unknown(None, None, &[]), "unknown key");
        let dup = |table, first_line| ErrorKind::Duplicate { table, first_line }.to_string();
        assert_eq!(dup(true, Some(1)), "table defined twice (first on line 1)");
        assert_eq!(dup(false, Some(2)), "key set twice (first on line 2)");
        assert_eq!(dup(false, None), "key set twice");
    }
}
