//! Where in the file: byte offsets → lines, columns and full key paths,
//! and the TOML parser's and serde's errors turned into [`ConfigError`]s
//! that name the full dotted path (`servers.ws.locations."/ws/".root`),
//! with the closest valid key suggested for a misspelt one.
//!
//! Paths come from a `toml_edit` document of the same text, which keeps
//! the span of every key and value: the deepest key or value whose span
//! holds an error's offset is the key the error is about.

use std::ops::Range;
use std::path::Path;

use toml_edit::{ImDocument, Item, Key, Table, TableLike, Value};

use crate::error::{ConfigError, ErrorKind};

/// One step of a key path: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// A table key as a path segment: bare when TOML allows it bare
/// (`A-Za-z0-9_-`), else quoted (`"/ws/"`).
pub fn quote_key(name: &str) -> String {
    if !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        name.to_string()
    } else {
        format!("{name:?}")
    }
}

/// `servers.ws.locations."/ws/".root`, `upstreams.u.servers[1].addr`.
pub(crate) fn render(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(&quote_key(k));
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// The 1-based line of a byte offset.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The byte offset where the line holding `offset` starts.
fn line_start(text: &str, offset: usize) -> usize {
    let end = floor_char(text, offset);
    text[..end].rfind('\n').map_or(0, |i| i + 1)
}

/// The 1-based column, in characters, of a byte offset.
pub(crate) fn column_of(text: &str, offset: usize) -> usize {
    let end = floor_char(text, offset);
    text[line_start(text, end)..end].chars().count() + 1
}

fn floor_char(text: &str, offset: usize) -> usize {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    end
}

fn holds(span: Option<Range<usize>>, pos: usize) -> bool {
    span.is_some_and(|s| s.start <= pos && pos < s.end.max(s.start + 1))
}

/// The path of the deepest key or value whose span holds `pos` (empty
/// when none does).
pub(crate) fn path_at(root: &Table, pos: usize) -> Vec<Seg> {
    let mut path = Vec::new();
    if !find_in(root, pos, &mut path) {
        path.clear();
    }
    path
}

fn find_in(t: &dyn TableLike, pos: usize, path: &mut Vec<Seg>) -> bool {
    for (name, _) in t.iter() {
        let Some((key, item)) = t.get_key_value(name) else {
            continue;
        };
        path.push(Seg::Key(name.to_string()));
        if holds(key.span(), pos) || find_item(item, pos, path) {
            return true;
        }
        path.pop();
    }
    false
}

fn find_item(item: &Item, pos: usize, path: &mut Vec<Seg>) -> bool {
    match item {
        Item::None => false,
        Item::Value(v) => find_value(v, pos, path),
        // Children first: a table's span holds its keys' spans.
        Item::Table(t) => find_in(t, pos, path) || holds(t.span(), pos),
        Item::ArrayOfTables(a) => {
            for (i, t) in a.iter().enumerate() {
                path.push(Seg::Index(i));
                if find_in(t, pos, path) || holds(t.span(), pos) {
                    return true;
                }
                path.pop();
            }
            false
        }
    }
}

fn find_value(v: &Value, pos: usize, path: &mut Vec<Seg>) -> bool {
    match v {
        Value::InlineTable(t) => find_in(t, pos, path) || holds(t.span(), pos),
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                path.push(Seg::Index(i));
                if find_value(x, pos, path) {
                    return true;
                }
                path.pop();
            }
            holds(a.span(), pos)
        }
        other => holds(other.span(), pos),
    }
}

/// The span where `path` is first defined in `root`: a table's header, or
/// the key.
fn span_of(root: &Table, path: &[Seg]) -> Option<Range<usize>> {
    enum Node<'a> {
        Table(&'a Table),
        Item(&'a Item),
        Value(&'a Value),
    }
    let mut node = Node::Table(root);
    let mut span = None;
    for seg in path {
        let (next, key_span) = match (seg, node) {
            (Seg::Key(name), Node::Table(t)) => {
                let (k, i) = t.get_key_value(name)?;
                (Node::Item(i), k.span())
            }
            (Seg::Key(name), Node::Item(i)) => {
                let (k, i) = i.as_table_like()?.get_key_value(name)?;
                (Node::Item(i), k.span())
            }
            (Seg::Key(name), Node::Value(v)) => {
                let (k, i) = v.as_inline_table()?.get_key_value(name)?;
                (Node::Item(i), k.span())
            }
            (Seg::Index(n), Node::Item(Item::ArrayOfTables(a))) => {
                let t = a.get(*n)?;
                (Node::Table(t), t.span())
            }
            (Seg::Index(n), Node::Item(Item::Value(Value::Array(a))))
            | (Seg::Index(n), Node::Value(Value::Array(a))) => {
                let v = a.get(*n)?;
                (Node::Value(v), v.span())
            }
            _ => return None,
        };
        span = match &next {
            Node::Item(Item::Table(t)) if !t.is_implicit() && t.span().is_some() => t.span(),
            _ => key_span,
        };
        node = next;
    }
    span
}

/// The path of the last `[table]` or `[[array]]` header in `root`: the
/// table that a key written after the document's end belongs to.
fn current_table(root: &Table) -> Vec<Seg> {
    fn walk(t: &Table, path: &mut Vec<Seg>, best: &mut (usize, Vec<Seg>)) {
        for (name, item) in t.iter() {
            path.push(Seg::Key(name.to_string()));
            match item {
                Item::Table(sub) => {
                    if let (false, false, Some(s)) =
                        (sub.is_implicit(), sub.is_dotted(), sub.span())
                    {
                        if s.start >= best.0 {
                            *best = (s.start, path.clone());
                        }
                    }
                    walk(sub, path, best);
                }
                Item::ArrayOfTables(a) => {
                    for (i, sub) in a.iter().enumerate() {
                        path.push(Seg::Index(i));
                        if let Some(s) = sub.span() {
                            if s.start >= best.0 {
                                *best = (s.start, path.clone());
                            }
                        }
                        walk(sub, path, best);
                        path.pop();
                    }
                }
                _ => {}
            }
            path.pop();
        }
    }
    let mut best = (0, Vec::new());
    walk(root, &mut Vec::new(), &mut best);
    best.1
}

/// The byte index of a key/value line's `=` (outside quoted keys).
fn key_end(line: &str) -> Option<usize> {
    let mut quote = None;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (Some('"'), '\\') if !escaped => {
                escaped = true;
                continue;
            }
            (Some(q), c) if c == q && !escaped => quote = None,
            (None, '"' | '\'') => quote = Some(c),
            (None, '=') => return Some(i),
            (None, '#') => return None,
            _ => {}
        }
        escaped = false;
    }
    None
}

/// The full path of the key/value statement on the line holding `pos`,
/// when the line starts one (not a header, not the inside of a multi-line
/// value): the last header before it, and the key before its `=`.
fn statement_path(text: &str, pos: usize) -> Option<Vec<Seg>> {
    let ls = line_start(text, pos);
    let line = text[ls..].lines().next().unwrap_or("");
    if line.trim_start().starts_with('[') {
        return None;
    }
    let before = ImDocument::parse(&text[..ls]).ok()?;
    let eq = key_end(line)?;
    let keys = Key::parse(line[..eq].trim()).ok()?;
    let mut path = current_table(before.as_table());
    path.extend(keys.iter().map(|k| Seg::Key(k.get().to_string())));
    Some(path)
}

/// The path a header line (`[servers.ws]`, `[[upstreams.u.servers]]`)
/// opens.
fn header_path(line: &str) -> Option<Vec<Seg>> {
    let doc = ImDocument::parse(line).ok()?;
    let path = current_table(doc.as_table());
    (!path.is_empty()).then_some(path)
}

/// The brackets (`[`, `{`) still open at the end of `text`, outside
/// strings and comments.
fn open_brackets(text: &str) -> Vec<char> {
    let b = text.as_bytes();
    let mut open = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let rest = &b[i..];
        if rest.starts_with(b"\"\"\"") || rest.starts_with(b"'''") {
            let delim = &rest[..3];
            let literal = delim[0] == b'\'';
            i += 3;
            while i < b.len() && !b[i..].starts_with(delim) {
                i += if !literal && b[i] == b'\\' { 2 } else { 1 };
            }
            i += 3;
            continue;
        }
        match b[i] {
            q @ (b'"' | b'\'') => {
                i += 1;
                while i < b.len() && b[i] != q && b[i] != b'\n' {
                    i += if q == b'"' && b[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            c @ (b'[' | b'{') => open.push(c as char),
            b']' | b'}' => {
                open.pop();
            }
            _ => {}
        }
        i += 1;
    }
    open
}

/// The path of the inline table whose `{` is at `brace`: the text up to it
/// with the table emptied and every open bracket closed is a document
/// whose value at `brace` is that table.
fn inline_table_path(text: &str, brace: usize) -> Option<Vec<Seg>> {
    let mut doc = text[..brace].to_string();
    doc.push_str("{}");
    for c in open_brackets(&text[..brace]).iter().rev() {
        doc.push(if *c == '[' { ']' } else { '}' });
    }
    let parsed = ImDocument::parse(doc.as_str()).ok()?;
    let path = path_at(parsed.as_table(), brace);
    (!path.is_empty()).then_some(path)
}

/// The first `` `quoted` `` word of a message.
fn first_quoted(msg: &str) -> Option<&str> {
    let start = msg.find('`')? + 1;
    let len = msg[start..].find('`')?;
    Some(&msg[start..start + len])
}

/// Every `` `quoted` `` word of a message.
fn all_quoted(mut msg: &str) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(word) = first_quoted(msg) {
        out.push(word.to_string());
        let at = msg.find('`').expect("found") + word.len() + 2;
        msg = &msg[at..];
    }
    out
}

/// toml_edit's message on one line: its lines joined with "; ".
fn one_line(msg: &str) -> String {
    msg.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// A TOML syntax error (the file does not parse): the line and column
/// where the parser stopped, the key of the statement when the line
/// starts one, and toml's reason on one line. A key or table written
/// twice is named whole, with the line of its first definition.
pub(crate) fn syntax_error(text: &str, file: &Path, e: &toml_edit::TomlError) -> ConfigError {
    let pos = floor_char(text, e.span().map_or(text.len(), |s| s.start));
    let msg = e.message();
    let (key, kind) = match msg.contains("duplicate key `") {
        true => duplicate(text, pos, msg),
        false => (
            statement_path(text, pos).map(|p| render(&p)),
            ErrorKind::Syntax(one_line(msg)),
        ),
    };
    ConfigError {
        file: file.to_path_buf(),
        line: Some(line_of(text, pos)),
        column: Some(column_of(text, pos)),
        key: key.unwrap_or_else(|| "(syntax)".into()),
        kind,
    }
}

/// The full path of a duplicate at `pos` and where it was first defined.
/// toml_edit points at the start of the second header or key/value line,
/// or just inside the `{` of an inline table that repeats a key.
fn duplicate(text: &str, pos: usize, msg: &str) -> (Option<String>, ErrorKind) {
    let ls = line_start(text, pos);
    let line = text[ls..].lines().next().unwrap_or("");
    let before = ImDocument::parse(&text[..ls]).ok();
    let first_line = |path: &[Seg]| {
        let doc = before.as_ref()?;
        span_of(doc.as_table(), path).map(|s| line_of(text, s.start))
    };
    let brace = text[..pos].ends_with('{').then(|| pos - 1);
    let (path, table, first) = if line.trim_start().starts_with('[') {
        let path = header_path(line);
        let first = path.as_deref().and_then(first_line);
        (path, true, first)
    } else if let Some(brace) = brace {
        // Inline tables are one line (TOML 1.0): the first is on this one.
        let mut path = inline_table_path(text, brace);
        if let (Some(p), Some(name)) = (&mut path, first_quoted(msg)) {
            p.push(Seg::Key(name.to_string()));
        }
        (path, false, Some(line_of(text, brace)))
    } else {
        let path = statement_path(text, pos);
        let first = path.as_deref().and_then(first_line);
        (path, false, first)
    };
    match path {
        Some(p) => (
            Some(render(&p)),
            ErrorKind::Duplicate {
                table,
                first_line: first,
            },
        ),
        None => (None, ErrorKind::Syntax(one_line(msg))),
    }
}

/// An error from deserializing the parsed document (unknown key, wrong
/// type), named by the full path of the key it points at.
pub(crate) fn serde_error(
    text: &str,
    file: &Path,
    doc: &ImDocument<&str>,
    e: &toml::de::Error,
) -> ConfigError {
    let pos = e.span().map(|s| s.start.min(text.len()));
    let mut path = pos.map_or_else(Vec::new, |p| path_at(doc.as_table(), p));
    let msg = e.message().trim();
    let kind = if let Some(rest) = msg.strip_prefix("unknown field `") {
        let (name, expected) = rest.split_once('`').unwrap_or((rest, ""));
        if path.last() != Some(&Seg::Key(name.to_string())) {
            path.push(Seg::Key(name.to_string()));
        }
        unknown_key(name, all_quoted(expected))
    } else if let Some(name) = msg
        .strip_prefix("missing field `")
        .and_then(|r| r.split_once('`'))
        .map(|(n, _)| n)
    {
        path.push(Seg::Key(name.to_string()));
        ErrorKind::Invalid("missing (this table needs it)".into())
    } else {
        ErrorKind::Invalid(plain_types(msg))
    };
    ConfigError {
        file: file.to_path_buf(),
        line: pos.map(|p| line_of(text, p)),
        column: None,
        key: if path.is_empty() {
            "(file)".into()
        } else {
            render(&path)
        },
        kind,
    }
}

/// serde's type names as a TOML file calls them.
fn plain_types(msg: &str) -> String {
    let mut out = msg
        .replace("a borrowed string", "a string")
        .replace("a sequence", "an array")
        .replace("a map", "a table");
    while let Some(at) = out.find("struct Raw") {
        let end = out[at + 7..]
            .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .map_or(out.len(), |n| at + 7 + n);
        out.replace_range(at..end, "a table");
    }
    out
}

/// The error for a key `name` that a table does not take, given the keys
/// it does take.
pub(crate) fn unknown_key<S: AsRef<str>>(name: &str, expected: Vec<S>) -> ErrorKind {
    if let Some(why) = crate::keys::not_planned(name) {
        return ErrorKind::NotPlanned {
            name: name.to_string(),
            why,
        };
    }
    let expected: Vec<String> = expected.iter().map(|s| s.as_ref().to_string()).collect();
    let suggestion = suggest(name, &expected).map(str::to_string);
    let elsewhere = match suggestion {
        Some(_) => None,
        None => {
            let places = crate::keys::places_of(name);
            (!places.is_empty()).then(|| places.join(" or "))
        }
    };
    ErrorKind::UnknownKey {
        suggestion,
        elsewhere,
        expected,
    }
}

/// The candidate closest to `name` (ignoring case, `-` for `_`), when it
/// is within a third of the length in edits (at least 1, at most 3):
/// a typo, not a different word.
pub(crate) fn suggest<'a>(name: &str, candidates: &'a [String]) -> Option<&'a str> {
    let norm = |s: &str| -> Vec<char> {
        s.chars()
            .map(|c| {
                if c == '-' {
                    '_'
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect()
    };
    let typed = norm(name);
    candidates
        .iter()
        .filter_map(|c| {
            let cand = norm(c);
            let limit = (typed.len().max(cand.len()) / 3).clamp(1, 3);
            let d = distance(&typed, &cand);
            (d <= limit).then_some((d, c.as_str()))
        })
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// Edit distance with adjacent transpositions (optimal string alignment).
fn distance(a: &[char], b: &[char]) -> usize {
    let mut prev2 = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                cur[j] = cur[j].min(prev2[j - 2] + 1);
            }
        }
        std::mem::swap(&mut prev2, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        crate::parse_str(text, Path::new("/etc/ringway/ringway.toml"))
            .unwrap_err()
            .to_string()
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    const SERVER: &str = "[servers.ws]\nlisten = \"127.0.0.1:0\"\n";

    #[test]
    fn a_close_name_is_suggested() {
        let loc = names(&["proxy_pass", "proxy_read_timeout", "proxy_send_timeout"]);
        assert_eq!(
            suggest("proxy_read_timout", &loc),
            Some("proxy_read_timeout")
        );
        assert_eq!(suggest("proxy-pass", &loc), Some("proxy_pass"));
        assert_eq!(suggest("Proxy_Pass", &loc), Some("proxy_pass"));
        let zone = names(&["zone", "burst", "nodelay", "delay"]);
        assert_eq!(suggest("burts", &zone), Some("burst"), "a transposition");
        assert_eq!(suggest("nodelya", &zone), Some("nodelay"));
        let top = names(&["runtime", "upstreams", "servers"]);
        assert_eq!(suggest("upstream", &top), Some("upstreams"));
        assert_eq!(suggest("server", &top), Some("servers"));
    }

    #[test]
    fn a_far_off_name_is_not() {
        let zone = names(&["zone", "burst", "nodelay", "delay"]);
        for far in ["max", "rate", "bogus", "z", "", "zonezone"] {
            assert_eq!(suggest(far, &zone), None, "{far}");
        }
        let server = names(&["listen", "server_name", "tls"]);
        assert_eq!(suggest("listen_backlog", &server), None);
        assert_eq!(suggest("ssl", &server), None, "two edits in three letters");
        assert_eq!(suggest("anything", &[]), None);
    }

    #[test]
    fn edit_distance() {
        let d = |a: &str, b: &str| {
            distance(
                &a.chars().collect::<Vec<_>>(),
                &b.chars().collect::<Vec<_>>(),
            )
        };
        assert_eq!(d("", ""), 0);
        assert_eq!(d("abc", ""), 3);
        assert_eq!(d("", "ab"), 2);
        assert_eq!(d("kitten", "sitting"), 3);
        assert_eq!(d("ab", "ba"), 1);
        assert_eq!(d("timout", "timeout"), 1);
        assert_eq!(
            d("ca", "abc"),
            3,
            "optimal string alignment, not full Damerau"
        );
    }

    #[test]
    fn misspelt_keys_name_their_full_path_and_the_closest_key() {
        let e = err(&format!(
            "{SERVER}[servers.ws.locations.\"/ws/\"]\nproxy_pass = \"http://127.0.0.1:1\"\n\n\nproxy_read_timout = \"5s\"\n"
        ));
        assert_eq!(
            e,
            "/etc/ringway/ringway.toml:7: servers.ws.locations.\"/ws/\".proxy_read_timout: unknown key; did you mean `proxy_read_timeout`?"
        );
        let e = err("[upstream.u]\nservers = [{ addr = \"127.0.0.1:1\" }]\n");
        assert_eq!(
            e,
            "/etc/ringway/ringway.toml:1: upstream: unknown key; did you mean `upstreams`?"
        );
        let e = err(&format!(
            "{SERVER}[servers.ws.location.\"/\"]\nroot = \"/\"\n"
        ));
        assert!(
            e.ends_with(":3: servers.ws.location: unknown key; did you mean `locations`?"),
            "{e}"
        );
        let e = err(&format!(
            "{SERVER}[servers.ws.locations.\"/\"]\nreturn = {{ status = 301, urll = \"/x\" }}\n"
        ));
        assert!(
            e.ends_with(
                ":4: servers.ws.locations.\"/\".return.urll: unknown key; did you mean `url`?"
            ),
            "{e}"
        );
        let e = err(&format!(
            "{SERVER}tls = {{ cert = \"/c\", kye = \"/k\" }}\n"
        ));
        assert!(
            e.ends_with(":3: servers.ws.tls.kye: unknown key; did you mean `key`?"),
            "{e}"
        );
    }

    #[test]
    fn unknown_keys_in_arrays_are_named_by_index() {
        let e = err("[upstreams.u]\nservers = [\n  { addr = \"127.0.0.1:1\" },\n  { addr = \"127.0.0.1:2\", wieght = 2 },\n]\n");
        assert_eq!(
            e,
            "/etc/ringway/ringway.toml:4: upstreams.u.servers[1].wieght: unknown key; did you mean `weight`?"
        );
    }

    #[test]
    fn hand_checked_tables_name_and_suggest_too() {
        let e = err("[servers.ws]\nlisten = [\"127.0.0.1:1\", { addr = \"127.0.0.1:0\", proxy_protocl = true }]\n");
        assert_eq!(
            e,
            "/etc/ringway/ringway.toml:2: servers.ws.listen[1].proxy_protocl: unknown key; did you mean `proxy_protocol`?"
        );
        let e = err("[servers.ws]\nlisten = { addr = \"127.0.0.1:0\", adr = \"x\" }\n");
        assert!(
            e.ends_with(":2: servers.ws.listen.adr: unknown key; did you mean `addr`?"),
            "{e}"
        );
        let e = err(&format!(
            "[limit_req_zones.z]\nkey = \"$remote_addr\"\nrate = \"1r/s\"\n{SERVER}\
             [servers.ws.locations.\"/\"]\nreturn = {{ status = 200 }}\nlimit_req = {{ zone = \"z\", burts = 5 }}\n"
        ));
        assert!(
            e.ends_with(":8: servers.ws.locations.\"/\".limit_req.burts: unknown key; did you mean `burst`?"),
            "{e}"
        );
        // Refused before the zone is looked up.
        let e = err(&format!(
            "{SERVER}limit_req = {{ zone = \"nope\", nodely = true }}\n"
        ));
        assert!(
            e.ends_with(":3: servers.ws.limit_req.nodely: unknown key; did you mean `nodelay`?"),
            "{e}"
        );
        let e = err(&format!(
            "{SERVER}limit_conn = {{ zone = \"c\", mx = 5 }}\n"
        ));
        assert!(
            e.ends_with(":3: servers.ws.limit_conn.mx: unknown key; did you mean `max`?"),
            "{e}"
        );
        let e = err(&format!(
            "{SERVER}limit_conn = {{ zone = \"c\", bogus = 5 }}\n"
        ));
        assert!(
            e.ends_with(":3: servers.ws.limit_conn.bogus: unknown key (valid here: zone, max)"),
            "{e}"
        );
        let e = err(&format!(
            "{SERVER}limit_conn = {{ zone = \"c\", rate = 5 }}\n"
        ));
        assert!(
            e.ends_with(":3: servers.ws.limit_conn.rate: unknown key here (it belongs in limit_req_zones.NAME or upstreams.NAME.rebalance)"),
            "{e}"
        );
    }

    #[test]
    fn a_far_off_key_lists_the_valid_ones_or_where_it_belongs() {
        let e = err("[runtime]\nworkerz_count = 2\n");
        assert!(e.ends_with(":2: runtime.workerz_count: unknown key (valid here: workers, pin_cores, driver, max_connections, shutdown_timeout, tunnel_buffer, splice, tunnel_relay, relay_buffers, drain_spread, drain_old_tunnels_after, resolver, resolver_valid, upgrade_timeout)"), "{e}");
        let e = err(&format!("{SERVER}proxy_read_timeout = \"5s\"\n"));
        assert!(
            e.ends_with(":3: servers.ws.proxy_read_timeout: unknown key here (it belongs in servers.NAME.locations.MATCH)"),
            "{e}"
        );
        let e = err(&format!(
            "{SERVER}[servers.ws.locations.\"/\"]\nroot = \"/\"\nworkers = 2\n"
        ));
        assert!(
            e.ends_with(".workers: unknown key here (it belongs in runtime)"),
            "{e}"
        );
    }

    #[test]
    fn wrong_types_name_the_full_path_in_toml_words() {
        let e = err(&format!("{SERVER}[servers.ws.locations]\n\"/x\" = 5\n"));
        assert!(
            e.ends_with(
                ":4: servers.ws.locations.\"/x\": invalid type: integer `5`, expected a table"
            ),
            "{e}"
        );
        let e = err("[upstreams.u]\nservers = \"127.0.0.1:1\"\n");
        assert!(
            e.ends_with(
                ":2: upstreams.u.servers: invalid type: string \"127.0.0.1:1\", expected an array"
            ),
            "{e}"
        );
        let e = err(&format!(
            "{SERVER}[servers.ws.locations.\"/\"]\nproxy_set_header = 5\n"
        ));
        assert!(
            e.ends_with(":4: servers.ws.locations.\"/\".proxy_set_header: invalid type: integer `5`, expected a table"),
            "{e}"
        );
    }

    /// Tables written as dotted keys, as `[[...]]` array headers, or known
    /// only from their sub-tables read as any other table, and errors
    /// inside them name the line and the whole key.
    #[test]
    fn every_way_toml_writes_a_table_is_read() {
        let c = crate::parse_str_with(
            "servers.ws.listen = [\"127.0.0.1:1\"]\nservers.ws.locations.\"/\".proxy_pass = \"http://u\"\n\
             [[upstreams.u.servers]]\naddr = \"127.0.0.1:2\"\n[[upstreams.u.servers]]\naddr = \"127.0.0.1:3\"\nweight = 2\n\
             [servers.app.locations.\"/\"]\nreturn.status = 204\n[servers.app]\nlisten = \"127.0.0.1:4\"\n",
            Path::new("/etc/ringway/ringway.toml"),
            crate::Resolve::Loopback,
        )
        .unwrap();
        assert_eq!(c.upstreams["u"].servers.len(), 2);
        assert_eq!(c.upstreams["u"].servers[1].weight, 2);
        assert_eq!(c.servers.len(), 2);
        let e = err(&format!("{SERVER}tls.cert = \"/c\"\ntls.key = 5\n"));
        assert!(
            e.starts_with("/etc/ringway/ringway.toml:4: servers.ws.tls.key: "),
            "{e}"
        );
        let e = err("[[upstreams.u.servers]]\naddr = \"127.0.0.1:1\"\n[[upstreams.u.servers]]\nwieght = 2\n");
        assert!(
            e.starts_with("/etc/ringway/ringway.toml:4: upstreams.u.servers[1].wieght: unknown key; did you mean `weight`?"),
            "{e}"
        );
        let e = err("[servers.ws.locations.\"/\"]\nreturn = { status = 200 }\n");
        assert!(
            e.contains("servers.ws.listen") && e.contains("a server needs listen"),
            "{e}"
        );
    }

    #[test]
    fn syntax_errors_carry_line_and_column() {
        let e = err(&format!(
            "{SERVER}[servers.ws.locations.\"/\"]\nproxy_read_timeout = 5s\n"
        ));
        assert_eq!(
            e,
            "/etc/ringway/ringway.toml:4:23: servers.ws.locations.\"/\".proxy_read_timeout: expected newline, `#`"
        );
        // One line: toml's snippet is left out.
        let e = err("[servers.ws\nlisten = 1\n");
        assert_eq!(
            e,
            "/etc/ringway/ringway.toml:1:12: (syntax): invalid table header; expected `.`, `]`"
        );
        // Columns count characters, not bytes.
        let e = err("[servers.\"é\"]\nlisten = é\n");
        assert!(
            e.starts_with("/etc/ringway/ringway.toml:2:10: servers.\"é\".listen: "),
            "{e}"
        );
        // Inside a multi-line value the statement is not guessed.
        let e = err(&format!("{SERVER}server_name = [\n  \"a\"\n  \"b\"]\n"));
        assert!(
            e.starts_with("/etc/ringway/ringway.toml:5:3: (syntax): invalid array"),
            "{e}"
        );
        let e = err("x = [");
        assert_eq!(
            e,
            "/etc/ringway/ringway.toml:1:6: x: invalid array; expected `]`"
        );
    }

    #[test]
    fn duplicates_are_named_whole_with_their_first_line() {
        let e = err("[servers.ws]\nlisten = \"127.0.0.1:0\"\n# again\nlisten = \"127.0.0.1:1\"\n");
        assert_eq!(
            e,
            "/etc/ringway/ringway.toml:4:1: servers.ws.listen: key set twice (first on line 2)"
        );
        let e = err("[servers.ws]\nlisten = \"127.0.0.1:0\"\n[servers.ws.locations.\"/\"]\nroot = \"/\"\n[servers.\"ws\"]\n");
        assert_eq!(
            e,
            "/etc/ringway/ringway.toml:5:1: servers.ws: table defined twice (first on line 1)"
        );
        let e = err("[servers.ws.locations.\"/a/\"]\nroot = \"/\"\n[servers.ws]\nlisten = \"127.0.0.1:0\"\n[servers.ws.locations.\"/a/\"]\n");
        assert_eq!(
            e,
            "/etc/ringway/ringway.toml:5:1: servers.ws.locations.\"/a/\": table defined twice (first on line 1)"
        );
        let e =
            err("[servers.ws]\nlisten = \"127.0.0.1:0\"\ntls.cert = \"/c\"\n  tls.cert = \"/d\"\n");
        assert!(
            e.starts_with("/etc/ringway/ringway.toml:4:3: servers.ws.tls.cert: key set twice (first on line 3)"),
            "{e}"
        );
        let e = err("[upstreams.u]\nservers = [\n  { addr = \"127.0.0.1:1\" },\n  { addr = \"a\", weight = 1, addr = \"b\" },\n]\n");
        assert!(
            e.starts_with("/etc/ringway/ringway.toml:4:4: upstreams.u.servers[1].addr: key set twice (first on line 4)"),
            "{e}"
        );
    }

    #[test]
    fn a_span_maps_to_the_deepest_key() {
        let text = "[servers.ws]\nlisten = [\"a\", { addr = \"b\" }]\n[servers.ws.locations.\"/x/\"]\nroot = \"/\"\n";
        let doc = ImDocument::parse(text).unwrap();
        let at = |needle: &str| render(&path_at(doc.as_table(), text.find(needle).unwrap()));
        assert_eq!(at("\"a\""), "servers.ws.listen[0]");
        assert_eq!(at("addr"), "servers.ws.listen[1].addr");
        assert_eq!(at("\"b\""), "servers.ws.listen[1].addr");
        assert_eq!(at("root"), "servers.ws.locations.\"/x/\".root");
        assert_eq!(at("[servers.ws.loc"), "servers.ws.locations.\"/x/\"");
        assert_eq!(render(&path_at(doc.as_table(), text.len() + 5)), "");
    }
}
