//! nginx's configuration language, read as `ngx_conf_read_token` reads it:
//! a word ends only at whitespace, `;` or `{` (a `}` closes a block only
//! where a word could start); `"` and `'` quote a
//! word (a closing quote must be followed by whitespace, `;`, `{` or
//! `)`); `\` escapes the next character (`\t`, `\r`, `\n` are control
//! characters, `\"`, `\'` and `\\` the character itself, any other pair
//! is kept as written); `#` starts a comment only where a word could
//! start; after `$`, a `{` belongs to the word (`${var}`).

/// What ended a directive's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// `;`
    Semicolon,
    /// `{`: a block follows.
    Block,
    /// `}`: the enclosing block ends (no words before it).
    Close,
    /// The end of the file (no words before it).
    Eof,
}

/// One directive's words (empty for `Close`/`Eof`), what ended them and
/// the line its first word is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub words: Vec<String>,
    pub end: End,
    pub line: usize,
}

/// A tokenizer error: the line and what nginx would say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenError {
    pub line: usize,
    pub message: String,
}

pub struct Tokenizer<'a> {
    text: &'a [u8],
    pos: usize,
    line: usize,
}

impl<'a> Tokenizer<'a> {
    pub fn new(text: &'a str) -> Tokenizer<'a> {
        Tokenizer {
            text: text.as_bytes(),
            pos: 0,
            line: 1,
        }
    }

    fn err<T>(&self, message: String) -> Result<T, TokenError> {
        Err(TokenError {
            line: self.line,
            message,
        })
    }

    /// The next statement.
    pub fn next_statement(&mut self) -> Result<Statement, TokenError> {
        let mut words: Vec<String> = Vec::new();
        let mut first_line = self.line;
        loop {
            // Between words: whitespace, comments, or an ending.
            let Some(&ch) = self.text.get(self.pos) else {
                if !words.is_empty() {
                    return self.err("unexpected end of file, expecting \";\" or \"}\"".into());
                }
                return Ok(Statement {
                    words,
                    end: End::Eof,
                    line: self.line,
                });
            };
            match ch {
                b'\n' => {
                    self.line += 1;
                    self.pos += 1;
                }
                b' ' | b'\t' | b'\r' => self.pos += 1,
                b'#' => {
                    while self.text.get(self.pos).is_some_and(|&c| c != b'\n') {
                        self.pos += 1;
                    }
                }
                b';' => {
                    self.pos += 1;
                    if words.is_empty() {
                        return self.err("unexpected \";\"".into());
                    }
                    return Ok(Statement {
                        words,
                        end: End::Semicolon,
                        line: first_line,
                    });
                }
                b'{' => {
                    self.pos += 1;
                    if words.is_empty() {
                        return self.err("unexpected \"{\"".into());
                    }
                    return Ok(Statement {
                        words,
                        end: End::Block,
                        line: first_line,
                    });
                }
                b'}' => {
                    self.pos += 1;
                    if !words.is_empty() {
                        return self.err("unexpected \"}\"".into());
                    }
                    return Ok(Statement {
                        words,
                        end: End::Close,
                        line: self.line,
                    });
                }
                _ => {
                    if words.is_empty() {
                        first_line = self.line;
                    }
                    words.push(self.word()?);
                }
            }
        }
    }

    /// A word at `pos` (not whitespace, not `;{}#`).
    fn word(&mut self) -> Result<String, TokenError> {
        let quote = match self.text[self.pos] {
            q @ (b'"' | b'\'') => {
                self.pos += 1;
                Some(q)
            }
            _ => None,
        };
        let start_line = self.line;
        let mut raw: Vec<u8> = Vec::new();
        let mut variable = false;
        loop {
            let Some(&ch) = self.text.get(self.pos) else {
                if quote.is_some() {
                    self.line = start_line;
                    return self.err("unexpected end of file in a quoted string".into());
                }
                break;
            };
            if ch == b'\\' {
                // The pair is kept; unescaped below.
                raw.push(ch);
                if let Some(&next) = self.text.get(self.pos + 1) {
                    if next == b'\n' {
                        self.line += 1;
                    }
                    raw.push(next);
                    self.pos += 2;
                } else {
                    self.pos += 1;
                }
                variable = false;
                continue;
            }
            match quote {
                Some(q) if ch == q => {
                    self.pos += 1;
                    // nginx: a quoted word is followed by a space, `;`,
                    // `{` or `)`.
                    match self.text.get(self.pos) {
                        None | Some(b' ' | b'\t' | b'\r' | b'\n' | b';' | b'{' | b')') => {}
                        Some(&c) => {
                            return self.err(format!("unexpected \"{}\"", c as char));
                        }
                    }
                    break;
                }
                Some(_) => {
                    if ch == b'\n' {
                        self.line += 1;
                    }
                    raw.push(ch);
                    self.pos += 1;
                }
                None => {
                    // A `}` inside a word is part of it (nginx); only
                    // where a word could start does it close a block.
                    if matches!(ch, b' ' | b'\t' | b'\r' | b'\n' | b';') {
                        break;
                    }
                    if ch == b'{' {
                        if variable {
                            // `${var}`: the brace belongs to the word.
                            raw.push(ch);
                            self.pos += 1;
                            variable = false;
                            continue;
                        }
                        break;
                    }
                    variable = ch == b'$';
                    raw.push(ch);
                    self.pos += 1;
                }
            }
        }
        let text = String::from_utf8(unescape(&raw)).map_err(|_| TokenError {
            line: start_line,
            message: "a word that is not UTF-8".into(),
        })?;
        Ok(text)
    }
}

/// nginx's unescaping of a word: `\"`, `\'`, `\\` → the character;
/// `\t`, `\r`, `\n` → the control character; any other pair as written.
fn unescape(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'\\' && i + 1 < raw.len() {
            match raw[i + 1] {
                c @ (b'"' | b'\'' | b'\\') => {
                    out.push(c);
                    i += 2;
                    continue;
                }
                b't' => {
                    out.push(b'\t');
                    i += 2;
                    continue;
                }
                b'r' => {
                    out.push(b'\r');
                    i += 2;
                    continue;
                }
                b'n' => {
                    out.push(b'\n');
                    i += 2;
                    continue;
                }
                _ => {}
            }
        }
        out.push(raw[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(text: &str) -> Result<Vec<(Vec<String>, End, usize)>, TokenError> {
        let mut t = Tokenizer::new(text);
        let mut out = Vec::new();
        loop {
            let s = t.next_statement()?;
            let end = s.end;
            out.push((s.words, s.end, s.line));
            if end == End::Eof {
                return Ok(out);
            }
        }
    }

    fn words(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn words_end_only_at_whitespace_and_punctuation() {
        let got = all("server {\n\tlisten 80;#c\n  return 200 \"a b\";\n}\n").unwrap();
        assert_eq!(
            got,
            vec![
                (words(&["server"]), End::Block, 1),
                (words(&["listen", "80"]), End::Semicolon, 2),
                (words(&["return", "200", "a b"]), End::Semicolon, 3),
                (vec![], End::Close, 4),
                (vec![], End::Eof, 5),
            ]
        );
        // `#` inside a word is part of it; `a"b` and `a}b` are one word
        // too; a `}` where a word could start, with words pending, is not.
        let got = all("add_header X a#b;\nx a\"b a}b;").unwrap();
        assert_eq!(got[0].0, words(&["add_header", "X", "a#b"]));
        assert_eq!(got[1].0, words(&["x", "a\"b", "a}b"]));
        assert_eq!(all("return 204 }").unwrap_err().message, "unexpected \"}\"");
    }

    #[test]
    fn quotes_escapes_and_variables_in_braces() {
        let got = all(r#"a 'it''s' "q\"uote" "t\tab" '\d+' ${host}x "${a}";"#);
        // A closing quote followed by a quote is refused, as nginx does.
        assert_eq!(got.unwrap_err().message, "unexpected \"'\"");
        let got = all(r#"a "q\"uote" "t\tab" '\d+' ${host}x "${a}" b\ c;"#).unwrap();
        assert_eq!(
            got[0].0,
            words(&["a", "q\"uote", "t\tab", "\\d+", "${host}x", "${a}", "b\\ c"])
        );
        // A location regex with braces needs quotes; unquoted the brace
        // opens a block.
        let got = all("location ~ \"^/a{2}\" { }").unwrap();
        assert_eq!(got[0].0, words(&["location", "~", "^/a{2}"]));
        assert_eq!(got[0].1, End::Block);
        // `if ($a = "b")`: a quote may be followed by `)`.
        let got = all("if ($a = \"b\") { }").unwrap();
        assert_eq!(got[0].0, words(&["if", "($a", "=", "b", ")"]));
    }

    #[test]
    fn errors_name_their_line() {
        let e = all("a;\n\n;").unwrap_err();
        assert_eq!((e.line, e.message.as_str()), (3, "unexpected \";\""));
        let e = all("a {\n b c").unwrap_err();
        assert_eq!(e.line, 2);
        let e = all("a \"open;\n").unwrap_err();
        assert!(e.message.contains("quoted string"));
        // A templated file: `{{` opens a block with no words.
        let e = all("server_name {{ host }};").unwrap_err();
        assert_eq!(e.message, "unexpected \"{\"");
    }
}
