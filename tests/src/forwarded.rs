//! The check behind the differential test and the soak: what ringway
//! forwarded to a recording backend parses — strictly and leniently —
//! into the same requests, and into no more of them than ringway logged.

use std::collections::BTreeMap;
use std::path::Path;

use crate::http1::{parse_all, Mode, Parsed};
use crate::recorder::ConnRecord;

/// A request as counted: (method, origin-form target).
pub type Key = (String, String);

/// (method, target) of each access-log line, counted; targets in
/// absolute-form are counted in origin-form (what goes upstream), and the
/// targets in `skip` are left out.
pub fn logged_requests(path: &Path, skip: &[&str]) -> BTreeMap<Key, usize> {
    logged_requests_where(path, skip, |_| false).0
}

/// `logged_requests`, except that lines whose target `lump` accepts are
/// only counted, in the second value (a long soak logs millions of
/// distinct REST targets). Reads the file line by line.
pub fn logged_requests_where(
    path: &Path,
    skip: &[&str],
    lump: impl Fn(&str) -> bool,
) -> (BTreeMap<Key, usize>, usize) {
    use std::io::BufRead;
    let mut out = BTreeMap::new();
    let mut lumped = 0;
    let Ok(f) = std::fs::File::open(path) else {
        return (out, 0);
    };
    for line in std::io::BufReader::new(f).lines() {
        let Ok(line) = line else { continue };
        let Some(start) = line.find('"') else {
            continue;
        };
        let rest = &line[start + 1..];
        let Some(end) = rest.find('"') else { continue };
        let mut parts = rest[..end].split(' ');
        let (Some(m), Some(t)) = (parts.next(), parts.next()) else {
            continue;
        };
        if skip.contains(&t) {
            continue;
        }
        let t = match t.strip_prefix("http://") {
            Some(rest) => rest.find('/').map_or("/", |i| &rest[i..]),
            None => t,
        };
        if lump(t) {
            lumped += 1;
            continue;
        }
        *out.entry((m.to_string(), t.to_string())).or_insert(0) += 1;
    }
    (out, lumped)
}

fn key(p: &Parsed) -> Key {
    (p.method.clone(), p.target.clone())
}

/// What the backend's connections held.
#[derive(Debug, Default, Clone, Copy)]
pub struct Summary {
    pub connections: usize,
    /// Complete requests found (strict parse).
    pub forwarded: usize,
}

/// Check every connection's bytes (up to a protocol switch): valid strict
/// HTTP/1.1, both parsers agree on requests and bodies, at most one request
/// per connection when `one_per_connection`, and for every (method,
/// target) no more requests than `logged`.
pub fn check(
    conns: &[ConnRecord],
    logged: &BTreeMap<Key, usize>,
    one_per_connection: bool,
) -> Result<Summary, String> {
    let mut seen: [BTreeMap<Key, usize>; 2] = Default::default();
    let mut summary = Summary {
        connections: conns.len(),
        forwarded: 0,
    };
    for c in conns {
        let http = &c.raw[..c.raw.len() - c.after_switch.len()];
        let show = || format!("{:?}", String::from_utf8_lossy(http));
        let (strict, _, strict_err) = parse_all(http, Mode::Strict);
        let (lenient, _, lenient_err) = parse_all(http, Mode::Lenient);
        if let Some(e) = strict_err.or(lenient_err) {
            return Err(format!("forwarded bytes do not parse ({e}): {}", show()));
        }
        let (sk, lk): (Vec<Key>, Vec<Key>) = (
            strict.iter().map(key).collect(),
            lenient.iter().map(key).collect(),
        );
        if sk != lk {
            return Err(format!(
                "the parsers disagree ({sk:?} vs {lk:?}): {}",
                show()
            ));
        }
        if strict.iter().zip(&lenient).any(|(a, b)| a.body != b.body) {
            return Err(format!("the parsers read different bodies: {}", show()));
        }
        if one_per_connection && strict.len() > 1 {
            return Err(format!(
                "two requests on one Connection: close connection: {}",
                show()
            ));
        }
        summary.forwarded += strict.len();
        for (i, list) in [&strict, &lenient].into_iter().enumerate() {
            for p in list {
                *seen[i].entry(key(p)).or_insert(0) += 1;
            }
        }
    }
    for (seen, mode) in seen.iter().zip(["strict", "lenient"]) {
        for (k, n) in seen {
            let l = logged.get(k).copied().unwrap_or(0);
            if *n > l {
                return Err(format!(
                    "{mode}: the backend got {n} x {k:?}, ringway logged {l}"
                ));
            }
        }
    }
    Ok(summary)
}
