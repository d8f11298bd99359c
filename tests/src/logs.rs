//! ringway's log as tests read it: the `key=value` fields of a line, the
//! lines with a message (and given fields), and a bounded wait for the
//! `n`-th of them (health checks marking servers, DNS member changes,
//! tunnels being moved).

use std::thread;
use std::time::{Duration, Instant};

use crate::Ringway;

/// A `key=value` field of a log line (the value up to the next space,
/// quotes trimmed).
pub fn field(line: &str, key: &str) -> Option<String> {
    let pat = format!(" {key}=");
    let start = line.find(&pat)? + pat.len();
    let rest = &line[start..];
    let end = rest.find(' ').unwrap_or(rest.len());
    Some(rest[..end].trim_matches('"').to_string())
}

/// The log lines containing `needle` whose fields include `fields`, in
/// order.
pub fn lines_with(rw: &Ringway, needle: &str, fields: &[(&str, &str)]) -> Vec<String> {
    rw.logs()
        .lines()
        .filter(|l| {
            l.contains(needle)
                && fields
                    .iter()
                    .all(|(k, v)| field(l, k).as_deref() == Some(*v))
        })
        .map(str::to_string)
        .collect()
}

/// Wait (bounded by `timeout`) until at least `n` lines are
/// [`lines_with`] `needle` and `fields`; those lines.
pub fn wait_lines(
    rw: &Ringway,
    needle: &str,
    fields: &[(&str, &str)],
    n: usize,
    timeout: Duration,
) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let lines = lines_with(rw, needle, fields);
        if lines.len() >= n {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "no line {n} saying {needle:?} with {fields:?} within {timeout:?}; log:\n{}",
            rw.logs()
        );
        // Pacing for a poll of the log with a deadline.
        thread::sleep(Duration::from_millis(20));
    }
}
