//! Configuration errors: each names the file, the line and the dotted key,
//! and says what is wrong with the value.

use std::fmt;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based; `None` when the error is not about one place in the file.
    pub line: Option<usize>,
    /// The dotted TOML path, e.g. `servers.ws.locations."/ws/".proxy_read_timeout`.
    pub key: String,
    pub kind: ErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    #[error("cannot read the file: {0}")]
    Read(String),
    #[error("{0}")]
    Syntax(String),
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

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(
                f,
                "{}:{}: {}: {}",
                self.file.display(),
                line,
                self.key,
                self.kind
            ),
            None => write!(f, "{}: {}: {}", self.file.display(), self.key, self.kind),
        }
    }
}

impl std::error::Error for ConfigError {}
