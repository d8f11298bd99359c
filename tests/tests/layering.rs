//! The engine's modules depend on each other without cycles: no module
//! imports a module that imports it back, directly or around a longer
//! loop. Each source file is a module (`proxy/body.rs` is
//! `proxy::body`, `proxy/mod.rs` is `proxy`); a module depends on another
//! when its code names it through `crate::…` or `super::…` (in `use`
//! lines and in paths in code alike). Naming one's own submodule (a
//! parent re-exporting a child) does not count; everything else does.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read engine/src") {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `proxy/body.rs` → ["proxy", "body"]; `proxy/mod.rs` → ["proxy"];
/// `lib.rs` → [].
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap();
    let mut parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" {
        parts.push(stem.to_string());
    }
    parts
}

/// The code of a file without comments and string literals (roughly:
/// enough that paths in docs and strings are not read as dependencies).
fn code_only(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let line = match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        };
        let mut in_str = false;
        let mut prev = ' ';
        for ch in line.chars() {
            if ch == '"' && prev != '\\' {
                in_str = !in_str;
            } else if !in_str {
                out.push(ch);
            }
            prev = ch;
        }
        out.push('\n');
    }
    out
}

/// Every `crate::a::b…` / `super::…` path in `code`, as module segments
/// relative to the crate root (`module` is the file's own module).
fn paths(code: &str, module: &[String], is_mod_file: bool) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut i = 0;
    while i < bytes.len() {
        let starts_word = i == 0 || !ident(bytes[i - 1]);
        let rest = &code[i..];
        let base: Option<(Vec<String>, usize)> = if starts_word && rest.starts_with("crate::") {
            Some((Vec::new(), "crate::".len()))
        } else if starts_word && rest.starts_with("super::") {
            // In `x/mod.rs`, super is x's parent; in `x/y.rs`, it is x.
            let mut m = module.to_vec();
            if is_mod_file || !m.is_empty() {
                m.pop();
            }
            Some((m, "super::".len()))
        } else {
            None
        };
        let Some((mut path, skip)) = base else {
            i += 1;
            continue;
        };
        let mut j = i + skip;
        loop {
            let start = j;
            while j < bytes.len() && ident(bytes[j]) {
                j += 1;
            }
            if start == j {
                break;
            }
            path.push(code[start..j].to_string());
            if code[j..].starts_with("::") {
                j += 2;
            } else {
                break;
            }
        }
        out.push(path);
        i = j.max(i + 1);
    }
    out
}

#[test]
fn engine_modules_have_no_import_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../engine/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(&src, f)).collect();
    // Resolve a path to the longest module it names.
    let resolve = |p: &[String]| -> Option<Vec<String>> {
        (1..=p.len())
            .rev()
            .map(|n| p[..n].to_vec())
            .find(|m| modules.contains(m))
    };
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for f in &files {
        let m = module_of(&src, f);
        let is_mod = f.file_name().is_some_and(|n| n == "mod.rs");
        let code = code_only(&std::fs::read_to_string(f).unwrap());
        for p in paths(&code, &m, is_mod) {
            let Some(target) = resolve(&p) else { continue };
            // A module naming itself or one of its own submodules.
            if target.starts_with(&m) {
                continue;
            }
            edges.entry(m.clone()).or_default().insert(target);
        }
    }
    assert!(
        edges.values().map(BTreeSet::len).sum::<usize>() > 30,
        "too few dependencies found: the scan is broken"
    );
    // Depth-first search for a cycle.
    fn visit(
        m: &Vec<String>,
        edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        state: &mut BTreeMap<Vec<String>, u8>,
        stack: &mut Vec<Vec<String>>,
    ) -> Option<Vec<Vec<String>>> {
        match state.get(m) {
            Some(2) => return None,
            Some(1) => {
                let at = stack.iter().position(|s| s == m).unwrap();
                let mut cycle = stack[at..].to_vec();
                cycle.push(m.clone());
                return Some(cycle);
            }
            _ => {}
        }
        state.insert(m.clone(), 1);
        stack.push(m.clone());
        for next in edges.get(m).into_iter().flatten() {
            if let Some(c) = visit(next, edges, state, stack) {
                return Some(c);
            }
        }
        stack.pop();
        state.insert(m.clone(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for m in &modules {
        if let Some(cycle) = visit(m, &edges, &mut state, &mut Vec::new()) {
            let names: Vec<String> = cycle.iter().map(|m| m.join("::")).collect();
            panic!("import cycle: {}", names.join(" -> "));
        }
    }
}

#[test]
fn the_scan_reads_paths_as_modules() {
    let code = code_only("use crate::proxy::kit::Kit; // crate::runtime\nlet s = \"crate::conn\"; super::body::relay();");
    let m = vec!["proxy".to_string(), "http".to_string()];
    let found = paths(&code, &m, false);
    assert_eq!(
        found,
        vec![
            vec!["proxy".to_string(), "kit".to_string(), "Kit".to_string()],
            vec!["proxy".to_string(), "body".to_string(), "relay".to_string()],
        ]
    );
}

/// README's layout section names every engine module directory and every
/// top-level directory of the repository, so it cannot fall behind a new
/// one.
#[test]
fn readme_layout_names_every_directory() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let start = readme
        .find("## Layout\n")
        .expect("README has a Layout section");
    let layout = &readme[start..];
    let layout = &layout[..layout[1..].find("\n## ").map_or(layout.len(), |i| i + 1)];
    let mut missing = Vec::new();
    for e in std::fs::read_dir(root.join("engine/src")).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            let name = format!("{}/", p.file_name().unwrap().to_string_lossy());
            if !layout.contains(&format!("  {name}")) && !layout.contains(&format!(", {name}")) {
                missing.push(format!("engine/src/{name}"));
            }
        }
    }
    for e in std::fs::read_dir(root).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        // Hidden directories (.git, .ci) and build output are not layout.
        if !p.is_dir() || name.starts_with('.') || name == "target" {
            continue;
        }
        if !layout.contains(&format!("\n    {name}/")) {
            missing.push(format!("{name}/"));
        }
    }
    assert!(
        missing.is_empty(),
        "README.md's Layout section does not name {missing:?}"
    );
}

/// A heading's anchor as GitHub makes it: lowercase, punctuation dropped,
/// spaces as hyphens.
fn anchor_of(heading: &str) -> String {
    heading
        .trim()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

/// Every relative link in the project's Markdown leads somewhere: the
/// file exists and an `#anchor` names a heading of it.
#[test]
fn markdown_links_lead_somewhere() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut broken = Vec::new();
    for doc in [
        "README.md",
        "docs/CONFIG.md",
        "examples/README.md",
        "engine/src/conn/LIFECYCLE.md",
        "bench/TARGETS.md",
    ] {
        let path = root.join(doc);
        let text = std::fs::read_to_string(&path).unwrap();
        let mut rest = text.as_str();
        while let Some(at) = rest.find("](") {
            rest = &rest[at + 2..];
            let Some(end) = rest.find(')') else { break };
            let target = &rest[..end];
            if target.contains("://") || target.starts_with("mailto:") || target.contains(' ') {
                continue;
            }
            let (file, anchor) = target.split_once('#').unwrap_or((target, ""));
            let linked = if file.is_empty() {
                path.clone()
            } else {
                path.parent().unwrap().join(file)
            };
            if !linked.exists() {
                broken.push(format!("{doc}: {target} (no such file)"));
                continue;
            }
            if !anchor.is_empty() {
                let body = std::fs::read_to_string(&linked).unwrap_or_default();
                let found = body
                    .lines()
                    .filter_map(|l| l.strip_prefix('#'))
                    .map(|h| anchor_of(h.trim_start_matches('#')))
                    .any(|a| a == anchor);
                if !found {
                    broken.push(format!("{doc}: {target} (no such heading)"));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}
