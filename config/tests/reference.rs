//! docs/CONFIG.md, the configuration reference, against the parser.
//!
//! - Every key of [`ringway_config::keys::KEYS`] has a row in a key table
//!   of the reference (a table whose header's first cell is `key`; the
//!   row's first cell is the key's full path in backticks), and every row
//!   names a key of KEYS, once, in KEYS' order.
//! - Every ```toml block of the reference is a configuration the parser
//!   accepts (upstream host names stand for 127.0.0.1, no lookup). A
//!   block fenced ```toml fragment is deliberately partial: it may be
//!   refused, but not for its shape — not for TOML syntax, a value of the
//!   wrong kind, or a key the parser does not know.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use ringway_config::keys::KEYS;
use ringway_config::{parse_str_with, ErrorKind, Resolve};

fn reference_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/CONFIG.md")
}

fn reference() -> String {
    let path = reference_path();
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The cells of a Markdown table row (`| a | b |`), split on `|` that is
/// not escaped as `\|`; `None` for a line that is not a row.
fn cells(line: &str) -> Option<Vec<String>> {
    let inner = line.trim().strip_prefix('|')?;
    let mut out = Vec::new();
    let mut cell = String::new();
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                cell.push('|');
                chars.next();
            }
            '|' => out.push(std::mem::take(&mut cell).trim().to_string()),
            _ => cell.push(c),
        }
    }
    if !cell.trim().is_empty() {
        out.push(cell.trim().to_string());
    }
    Some(out)
}

/// `` `x` `` → `x`.
fn code(cell: &str) -> Option<&str> {
    cell.strip_prefix('`')?.strip_suffix('`')
}

fn is_separator(cells: &[String]) -> bool {
    !cells.is_empty()
        && cells
            .iter()
            .all(|c| !c.is_empty() && c.chars().all(|ch| matches!(ch, '-' | ':')))
}

/// What the reference's tables say: the keys of its key tables, in order,
/// with their lines; and the problems found on the way (a key-table row
/// whose first cell is not a backticked path, a key-like path in a table
/// that is not a key table).
struct Rows {
    keys: Vec<(String, usize)>,
    problems: Vec<String>,
}

/// Whether `s` reads like a key path (so that one written into the wrong
/// table is not silently skipped).
fn looks_like_key(s: &str) -> bool {
    const TOP: [&str; 8] = [
        "runtime",
        "log",
        "metrics",
        "real_ip",
        "limit_req_zones",
        "limit_conn_zones",
        "upstreams",
        "servers",
    ];
    let first = s.split(['.', '[']).next().unwrap_or("");
    TOP.contains(&first) && !s.contains(' ')
}

fn rows(text: &str) -> Rows {
    let mut keys = Vec::new();
    let mut problems = Vec::new();
    // Some(is a key table) while inside a table.
    let mut table: Option<bool> = None;
    let mut in_fence = false;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            table = None;
            continue;
        }
        if in_fence {
            continue;
        }
        let Some(row) = cells(line) else {
            table = None;
            continue;
        };
        let Some(is_key_table) = table else {
            // A header row starts the table.
            table = Some(row.first().is_some_and(|c| c == "key"));
            continue;
        };
        if is_separator(&row) {
            continue;
        }
        let first = row.first().map(String::as_str).unwrap_or("");
        match (is_key_table, code(first)) {
            (true, Some(key)) => keys.push((key.to_string(), n)),
            (true, None) => problems.push(format!(
                "docs/CONFIG.md:{n}: a key table's row must begin with the key's full path in backticks, found `{first}`"
            )),
            (false, Some(c)) if looks_like_key(c) => problems.push(format!(
                "docs/CONFIG.md:{n}: `{c}` reads like a key but is in a table whose header does not begin with `key`"
            )),
            _ => {}
        }
    }
    Rows { keys, problems }
}

#[test]
fn every_accepted_key_is_documented_and_every_documented_key_is_accepted() {
    let text = reference();
    let Rows { keys, problems } = rows(&text);
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    let accepted: BTreeSet<&str> = KEYS.iter().copied().collect();
    let mut lines: HashMap<&str, Vec<usize>> = HashMap::new();
    for (k, n) in &keys {
        lines.entry(k.as_str()).or_default().push(*n);
    }
    let missing: Vec<&str> = KEYS
        .iter()
        .copied()
        .filter(|k| !lines.contains_key(k))
        .collect();
    let unknown: Vec<String> = keys
        .iter()
        .filter(|(k, _)| !accepted.contains(k.as_str()))
        .map(|(k, n)| format!("  docs/CONFIG.md:{n}: `{k}`"))
        .collect();
    let mut twice: Vec<String> = lines
        .iter()
        .filter(|(_, ns)| ns.len() > 1)
        .map(|(k, ns)| format!("  `{k}` on lines {ns:?}"))
        .collect();
    twice.sort();

    let mut report = Vec::new();
    if !missing.is_empty() {
        report.push(format!(
            "keys the parser accepts (config/src/keys.rs) with no row in docs/CONFIG.md:\n  {}",
            missing.join("\n  ")
        ));
    }
    if !unknown.is_empty() {
        report.push(format!(
            "rows in docs/CONFIG.md for keys the parser does not accept (not in config/src/keys.rs):\n{}",
            unknown.join("\n")
        ));
    }
    if !twice.is_empty() {
        report.push(format!(
            "keys documented more than once in docs/CONFIG.md:\n{}",
            twice.join("\n")
        ));
    }
    assert!(report.is_empty(), "{}", report.join("\n\n"));

    // Same set, once each: then the same order (keys.rs promises it).
    let documented: Vec<&str> = keys.iter().map(|(k, _)| k.as_str()).collect();
    if let Some(i) = (0..KEYS.len()).find(|&i| documented[i] != KEYS[i]) {
        panic!(
            "docs/CONFIG.md documents the keys in another order than config/src/keys.rs: \
             row {} (docs/CONFIG.md:{}) is `{}`, keys.rs has `{}` there",
            i + 1,
            keys[i].1,
            documented[i],
            KEYS[i]
        );
    }
}

/// A fenced code block: its info string, first line and text.
struct Block {
    info: String,
    line: usize,
    text: String,
}

fn blocks(text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<Block> = None;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        match (&mut open, t.strip_prefix("```")) {
            (None, Some(info)) => {
                open = Some(Block {
                    info: info.trim().to_string(),
                    line: i + 2,
                    text: String::new(),
                })
            }
            (Some(_), Some(_)) => out.extend(open.take()),
            (Some(b), None) => {
                b.text.push_str(line);
                b.text.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "docs/CONFIG.md ends inside a code block");
    out
}

/// A refusal for what a block is made of rather than what it says: TOML
/// syntax, a value of the wrong kind, or a key the parser does not know
/// (serde's "unknown field"; validation's unknown key of a `limit_req` /
/// `limit_conn` table or of a listen entry).
fn shape_error(kind: &ErrorKind) -> bool {
    match kind {
        ErrorKind::Syntax(_) => true,
        ErrorKind::Invalid(m) => m.contains("unknown key") || m.contains("unknown listen option"),
        _ => false,
    }
}

#[test]
fn every_toml_example_is_accepted() {
    let text = reference();
    let mut failures = Vec::new();
    let mut checked = 0;
    for b in blocks(&text) {
        let mut words = b.info.split_whitespace();
        if words.next() != Some("toml") {
            continue;
        }
        let fragment = match words.next() {
            None => false,
            Some("fragment") => true,
            Some(other) => {
                failures.push(format!(
                    "docs/CONFIG.md:{}: unknown code block tag `{other}` (```toml or ```toml fragment)",
                    b.line - 1
                ));
                continue;
            }
        };
        checked += 1;
        // Blank lines in front, so that errors name lines of the reference.
        let at_its_line = format!("{}{}", "\n".repeat(b.line - 1), b.text);
        match parse_str_with(&at_its_line, Path::new("docs/CONFIG.md"), Resolve::Loopback) {
            Ok(_) => {}
            Err(e) if fragment && !shape_error(&e.kind) => {}
            Err(e) if fragment => failures.push(format!("fragment: {e}")),
            Err(e) => failures.push(format!("{e}")),
        }
    }
    assert!(checked > 0, "docs/CONFIG.md has no ```toml block");
    assert!(
        failures.is_empty(),
        "toml examples in docs/CONFIG.md the parser refuses:\n{}",
        failures.join("\n")
    );
}

/// The test's own reading of Markdown, on a small table and blocks.
#[test]
fn the_reading_of_tables_and_blocks() {
    let md = "\
| key | type |
|---|---|
| `runtime.workers` | int |
| `a\\|b` | escaped |

| variable | value |
|---|---|
| `$host` | the host |
| `servers.NAME.bogus` | misplaced |

| key | x |
|---|---|
| runtime.splice | no backticks |

```toml fragment
| `not.a.row` | inside a block |
```
";
    let r = rows(md);
    assert_eq!(
        r.keys,
        vec![("runtime.workers".to_string(), 3), ("a|b".to_string(), 4)]
    );
    assert_eq!(r.problems.len(), 2, "{:?}", r.problems);
    assert!(r.problems[0].contains(":9:") && r.problems[0].contains("servers.NAME.bogus"));
    assert!(r.problems[1].contains(":13:"));
    let b = blocks(md);
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].info, "toml fragment");
    assert_eq!(b[0].line, 16);
    assert!(shape_error(&ErrorKind::Syntax("unknown field `x`".into())));
    assert!(!shape_error(&ErrorKind::Invalid(
        "no server is configured".into()
    )));
}
