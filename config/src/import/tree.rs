//! An nginx configuration as a tree of directives, `include` resolved as
//! nginx resolves it: a relative path from the prefix (the main file's
//! directory unless `--prefix` names one), a pattern (`*`, `?`, `[...]`)
//! expanded in sorted order, a missing file named without a pattern an
//! error (a pattern that matches nothing is not), an include cycle an
//! error.

use std::path::{Path, PathBuf};

use super::token::{End, Tokenizer};

/// One directive, where it was written, and its block if it has one.
#[derive(Debug, Clone)]
pub struct Directive {
    pub name: String,
    pub args: Vec<String>,
    pub file: PathBuf,
    pub line: usize,
    pub block: Option<Vec<Directive>>,
}

impl Directive {
    /// `file:line`, for comments and messages.
    pub fn at(&self) -> String {
        format!("{}:{}", self.file.display(), self.line)
    }
}

/// Why a configuration could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadError {
    pub file: PathBuf,
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
        }
    }
}

/// Read `main` and everything it includes.
pub fn read(main: &Path, prefix: &Path) -> Result<Vec<Directive>, ReadError> {
    let mut stack = Vec::new();
    read_file(main, prefix, &mut stack)
}

fn read_file(
    file: &Path,
    prefix: &Path,
    stack: &mut Vec<PathBuf>,
) -> Result<Vec<Directive>, ReadError> {
    let err = |line, message: String| ReadError {
        file: file.to_path_buf(),
        line,
        message,
    };
    let canon = file.canonicalize().unwrap_or_else(|_| file.to_path_buf());
    if stack.contains(&canon) {
        return Err(err(
            0,
            "included again from itself (an include cycle)".into(),
        ));
    }
    let text = std::fs::read(file).map_err(|e| err(0, format!("cannot read: {e}")))?;
    let text = String::from_utf8(text).map_err(|_| err(0, "not UTF-8".into()))?;
    stack.push(canon);
    let mut t = Tokenizer::new(&text);
    let out = block(&mut t, file, prefix, stack, 0);
    stack.pop();
    out
}

/// The directives up to the end of the block (`depth` > 0) or the file.
fn block(
    t: &mut Tokenizer<'_>,
    file: &Path,
    prefix: &Path,
    stack: &mut Vec<PathBuf>,
    depth: usize,
) -> Result<Vec<Directive>, ReadError> {
    let err = |line, message: String| ReadError {
        file: file.to_path_buf(),
        line,
        message,
    };
    let mut out = Vec::new();
    loop {
        let s = t.next_statement().map_err(|e| err(e.line, e.message))?;
        match s.end {
            End::Eof if depth > 0 => {
                return Err(err(
                    s.line,
                    "unexpected end of file, expecting \"}\"".into(),
                ))
            }
            End::Eof => return Ok(out),
            End::Close if depth == 0 => return Err(err(s.line, "unexpected \"}\"".into())),
            End::Close => return Ok(out),
            End::Semicolon | End::Block => {
                let mut words = s.words.into_iter();
                let name = words.next().unwrap_or_default();
                let args: Vec<String> = words.collect();
                if name == "include" && s.end == End::Semicolon {
                    let [pattern] = &args[..] else {
                        return Err(err(s.line, "include takes one file or pattern".into()));
                    };
                    for f in expand(pattern, prefix).map_err(|m| err(s.line, m))? {
                        out.extend(read_file(&f, prefix, stack)?);
                    }
                    continue;
                }
                let inner = if s.end == End::Block {
                    Some(block(t, file, prefix, stack, depth + 1)?)
                } else {
                    None
                };
                out.push(Directive {
                    name,
                    args,
                    file: file.to_path_buf(),
                    line: s.line,
                    block: inner,
                });
            }
        }
    }
}

/// The files an `include` names, sorted.
fn expand(pattern: &str, prefix: &Path) -> Result<Vec<PathBuf>, String> {
    let path = if Path::new(pattern).is_absolute() {
        PathBuf::from(pattern)
    } else {
        prefix.join(pattern)
    };
    let wild = |s: &str| s.contains(['*', '?', '[']);
    if !wild(pattern) {
        if !path.exists() {
            return Err(format!(
                "include {pattern}: no such file ({})",
                path.display()
            ));
        }
        return Ok(vec![path]);
    }
    // Expand component by component.
    let mut found = vec![PathBuf::from(if path.is_absolute() { "/" } else { "" })];
    for comp in path.components().skip(usize::from(path.is_absolute())) {
        let part = comp.as_os_str().to_string_lossy().into_owned();
        let mut next = Vec::new();
        for base in &found {
            if !wild(&part) {
                next.push(base.join(&part));
                continue;
            }
            let Ok(entries) = std::fs::read_dir(if base.as_os_str().is_empty() {
                Path::new(".")
            } else {
                base
            }) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.') && glob_match(&part, n))
                .collect();
            names.sort();
            next.extend(names.into_iter().map(|n| base.join(n)));
        }
        found = next;
    }
    Ok(found.into_iter().filter(|p| p.is_file()).collect())
}

/// glob(3)'s matching of one path component: `*`, `?`, `[abc]`, `[a-z]`,
/// `[!x]`.
fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    fn go(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len()).any(|i| go(&p[1..], &n[i..])),
            Some('?') => !n.is_empty() && go(&p[1..], &n[1..]),
            Some('[') => {
                let Some(close) = p.iter().skip(2).position(|&c| c == ']').map(|i| i + 2) else {
                    return n.first() == Some(&'[') && go(&p[1..], &n[1..]);
                };
                let Some(&c) = n.first() else { return false };
                let set = &p[1..close];
                let (negate, set) = match set.first() {
                    Some('!' | '^') => (true, &set[1..]),
                    _ => (false, set),
                };
                let mut hit = false;
                let mut i = 0;
                while i < set.len() {
                    if i + 2 < set.len() && set[i + 1] == '-' {
                        hit |= set[i] <= c && c <= set[i + 2];
                        i += 3;
                    } else {
                        hit |= set[i] == c;
                        i += 1;
                    }
                }
                hit != negate && go(&p[close + 1..], &n[1..])
            }
            Some(&c) => n.first() == Some(&c) && go(&p[1..], &n[1..]),
        }
    }
    go(&p, &n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ringway-import-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn globs() {
        assert!(glob_match("*.conf", "a.conf"));
        assert!(!glob_match("*.conf", "a.confx"));
        assert!(glob_match("site-?.conf", "site-1.conf"));
        assert!(glob_match("[a-c]*", "bx"));
        assert!(!glob_match("[!a-c]*", "bx"));
        assert!(glob_match("*", ""));
    }

    #[test]
    fn includes_sorted_relative_to_the_prefix() {
        let d = dir("inc");
        std::fs::create_dir_all(d.join("conf.d")).unwrap();
        std::fs::write(d.join("nginx.conf"), "http {\n include conf.d/*.conf;\n}\n").unwrap();
        std::fs::write(d.join("conf.d/b.conf"), "server { listen 2; }").unwrap();
        std::fs::write(d.join("conf.d/a.conf"), "\n\nserver { listen 1; }").unwrap();
        std::fs::write(d.join("conf.d/skip.txt"), "nonsense {").unwrap();
        let t = read(&d.join("nginx.conf"), &d).unwrap();
        let servers = t[0].block.as_ref().unwrap();
        assert_eq!(servers.len(), 2);
        assert_eq!(servers[0].block.as_ref().unwrap()[0].args, ["1"]);
        assert!(servers[0].at().ends_with("conf.d/a.conf:3"));
        assert_eq!(servers[1].block.as_ref().unwrap()[0].args, ["2"]);
        // A pattern that matches nothing is fine; a named file is not.
        std::fs::write(d.join("x.conf"), "include none/*.conf;").unwrap();
        assert!(read(&d.join("x.conf"), &d).unwrap().is_empty());
        std::fs::write(d.join("y.conf"), "\ninclude missing.conf;").unwrap();
        let e = read(&d.join("y.conf"), &d).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("no such file"), "{e}");
        // A cycle.
        std::fs::write(d.join("c1.conf"), "include c2.conf;").unwrap();
        std::fs::write(d.join("c2.conf"), "include c1.conf;").unwrap();
        let e = read(&d.join("c1.conf"), &d).unwrap_err();
        assert!(e.message.contains("cycle"), "{e}");
        // Blocks must close.
        std::fs::write(d.join("open.conf"), "http {\n server {\n").unwrap();
        let e = read(&d.join("open.conf"), &d).unwrap_err();
        assert!(e.message.contains("expecting \"}\""), "{e}");
    }
}
