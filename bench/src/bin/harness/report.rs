//! Turning samples into bench/RESULTS.md and the SVG chart: medians over
//! rounds, ratios to nginx (and to tuned nginx where it ran), a markdown
//! table per scenario and one of system calls per message. Pure.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Whether a bigger number is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Higher,
    Lower,
}

/// One row of a scenario's table.
#[derive(Debug, Clone)]
pub struct Metric {
    /// The key in a sample.
    pub key: String,
    /// What the table calls it.
    pub label: String,
    pub better: Better,
    /// Digits after the point.
    pub digits: usize,
}

/// Numbers from one run of one target.
pub type Sample = BTreeMap<String, f64>;

/// The median of each key over samples (keys missing in some are taken
/// over the samples that have them).
pub fn median(samples: &[Sample]) -> Sample {
    let mut keys: Vec<&String> = samples.iter().flat_map(|s| s.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut out = Sample::new();
    for k in keys {
        let mut v: Vec<f64> = samples.iter().filter_map(|s| s.get(k).copied()).collect();
        v.sort_by(f64::total_cmp);
        if !v.is_empty() {
            let m = if v.len() % 2 == 1 {
                v[v.len() / 2]
            } else {
                (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
            };
            out.insert(k.clone(), m);
        }
    }
    out
}

/// `ours` against `nginx` as printed: ratio ours / nginx.
pub fn ratio(ours: Option<f64>, nginx: Option<f64>) -> Option<f64> {
    match (ours, nginx) {
        (Some(a), Some(b)) if b > 0.0 && a.is_finite() => Some(a / b),
        _ => None,
    }
}

/// How many times better ours is than nginx (>1: better), whatever the
/// direction of the metric; for the chart.
pub fn advantage(m: &Metric, ours: Option<f64>, nginx: Option<f64>) -> Option<f64> {
    let r = ratio(ours, nginx)?;
    match m.better {
        Better::Higher => Some(r),
        Better::Lower if r > 0.0 => Some(1.0 / r),
        Better::Lower => None,
    }
}

/// A table cell: `digits` after the point, thousands grouped when whole
/// and large, "–" for none.
pub fn num(v: Option<f64>, digits: usize) -> String {
    match v {
        None => "–".into(),
        Some(x) if x.abs() >= 10_000.0 && digits == 0 => group(x.round() as i64),
        Some(x) => format!("{x:.digits$}"),
    }
}

/// 1234567 → "1,234,567".
fn group(n: i64) -> String {
    let s = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// The targets ringway is divided by, and their ratio columns' heads.
const REFERENCES: [(&str, &str); 3] = [
    ("nginx", "÷ nginx"),
    ("nginx tuned", "÷ tuned"),
    ("haproxy", "÷ haproxy"),
];

/// `doc` with each of `sections` (markdown, each starting `## NAME\n`)
/// in place of the section of the same name (from its heading to the
/// next `## ` heading), or appended when it has none.
pub fn merge_sections(doc: &str, sections: &[String]) -> String {
    let mut out = doc.to_string();
    for sec in sections {
        let head = sec.lines().next().unwrap_or_default();
        let body = if sec.ends_with('\n') {
            sec.clone()
        } else {
            format!("{sec}\n")
        };
        let at = if out.starts_with(&format!("{head}\n")) {
            Some(0)
        } else {
            out.find(&format!("\n{head}\n")).map(|i| i + 1)
        };
        match at {
            Some(start) => {
                let end = out[start + head.len()..]
                    .find("\n## ")
                    .map_or(out.len(), |i| start + head.len() + i + 1);
                out.replace_range(start..end, &format!("{body}\n"));
            }
            None => {
                if !out.ends_with("\n\n") {
                    out.push_str(if out.ends_with('\n') { "\n" } else { "\n\n" });
                }
                out.push_str(&body);
                out.push('\n');
            }
        }
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

/// A markdown table: one row per metric, one column per target, and after
/// each ringway target a ratio column for each reference (nginx, nginx
/// tuned) among the targets.
pub fn table(metrics: &[Metric], targets: &[(String, Sample)]) -> String {
    let refs: Vec<(&str, &Sample)> = (REFERENCES.iter())
        .filter_map(|(name, head)| {
            let (_, s) = targets.iter().find(|(n, _)| n == name)?;
            Some((*head, s))
        })
        .collect();
    let mut head = String::from("| metric |");
    let mut rule = String::from("|---|");
    for (name, _) in targets {
        let _ = write!(head, " {name} |");
        rule.push_str("---:|");
        if name.starts_with("ringway") {
            for (r, _) in &refs {
                let _ = write!(head, " {r} |");
                rule.push_str("---:|");
            }
        }
    }
    let mut out = format!("{head}\n{rule}\n");
    for m in metrics {
        let arrow = match m.better {
            Better::Higher => "↑",
            Better::Lower => "↓",
        };
        let _ = write!(out, "| {} {arrow} |", m.label);
        for (name, s) in targets {
            let v = s.get(&m.key).copied();
            let _ = write!(out, " {} |", num(v, m.digits));
            if name.starts_with("ringway") {
                for (_, n) in &refs {
                    let r = ratio(v, n.get(&m.key).copied());
                    let _ = write!(out, " {} |", num(r, 2));
                }
            }
        }
        out.push('\n');
    }
    out
}

/// Where a traced run's per-message system call counts live in a sample:
/// `syscall_NAME` (`syscall_total` for all of them).
pub const SYSCALL: &str = "syscall_";

/// The rows of the system call table: every `syscall_*` key of any
/// sample, the most frequent first (by its largest count over the
/// samples), `total` last.
pub fn syscall_metrics(targets: &[(String, Sample)]) -> Vec<Metric> {
    let mut rows: Vec<(String, f64)> = Vec::new();
    for (_, s) in targets {
        for (k, v) in s.range(SYSCALL.to_string()..) {
            let Some(name) = k.strip_prefix(SYSCALL) else {
                break;
            };
            match rows.iter_mut().find(|(n, _)| n == name) {
                Some((_, top)) => *top = top.max(*v),
                None => rows.push((name.to_string(), *v)),
            }
        }
    }
    rows.sort_by(|a, b| {
        (a.0 == "total")
            .cmp(&(b.0 == "total"))
            .then(b.1.total_cmp(&a.1))
    });
    (rows.into_iter())
        .map(|(name, _)| Metric {
            key: format!("{SYSCALL}{name}"),
            label: format!("`{name}`"),
            better: Better::Lower,
            digits: 3,
        })
        .collect()
}

/// One bar of the chart.
#[derive(Debug, Clone)]
pub struct Bar {
    pub label: String,
    /// Times better than nginx.
    pub value: f64,
}

/// A horizontal bar chart of advantages over nginx, with the 1.0 line.
pub fn svg(title: &str, bars: &[Bar]) -> String {
    let (w, left, row, top) = (760.0, 300.0, 26.0, 46.0);
    let h = top + row * bars.len() as f64 + 40.0;
    let max = bars
        .iter()
        .map(|b| b.value)
        .fold(2.0_f64, f64::max)
        .min(20.0);
    let scale = (w - left - 60.0) / max;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         font-family=\"sans-serif\" font-size=\"13\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"10\" y=\"22\" font-size=\"15\" font-weight=\"bold\">{}</text>\n",
        esc(title)
    );
    for (i, b) in bars.iter().enumerate() {
        let y = top + row * i as f64;
        let len = (b.value.min(max) * scale).max(1.0);
        let color = if b.value >= 1.0 { "#2a7d4f" } else { "#b5452f" };
        let _ = writeln!(
            s,
            "<text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"end\">{}</text>\
             <rect x=\"{left}\" y=\"{:.0}\" width=\"{len:.1}\" height=\"{:.0}\" fill=\"{color}\"/>\
             <text x=\"{:.1}\" y=\"{:.0}\">{:.2}×</text>",
            left - 8.0,
            y + 17.0,
            esc(&b.label),
            y + 4.0,
            row - 8.0,
            left + len + 6.0,
            y + 17.0,
            b.value
        );
    }
    let x1 = left + scale;
    let _ = write!(
        s,
        "<line x1=\"{x1:.1}\" y1=\"{:.0}\" x2=\"{x1:.1}\" y2=\"{:.0}\" stroke=\"black\" \
         stroke-dasharray=\"4 3\"/>\n<text x=\"{x1:.1}\" y=\"{:.0}\" text-anchor=\"middle\">\
         1× = nginx (right of it: ringway better)</text>\n</svg>\n",
        top - 6.0,
        h - 30.0,
        h - 12.0
    );
    s
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The numeric top-level members of a one-line JSON object (nested
/// objects, strings and anything that is not an object are skipped).
pub fn json_numbers(line: &str) -> Sample {
    let members: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(line).unwrap_or_default();
    (members.into_iter())
        .filter_map(|(k, v)| Some((k, v.as_f64()?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_merge_in_place_or_at_the_end() {
        let doc = "# R\n\nhead\n\n## a\n\nold a\n\n## b\n\nold b\n";
        let out = merge_sections(doc, &["## b\n\nnew b\n".into(), "## c\n\nnew c\n".into()]);
        assert_eq!(
            out,
            "# R\n\nhead\n\n## a\n\nold a\n\n## b\n\nnew b\n\n## c\n\nnew c\n"
        );
        let out = merge_sections(&out, &["## a\n\nnew a".into()]);
        assert_eq!(
            out,
            "# R\n\nhead\n\n## a\n\nnew a\n\n## b\n\nnew b\n\n## c\n\nnew c\n"
        );
        // A heading that only starts like another is not it; subsections
        // (###) stay inside their section.
        let doc = "## ab\n\nx\n\n### sub\n\ny\n";
        assert_eq!(
            merge_sections(doc, &["## ab\n\nz\n".into()]),
            "## ab\n\nz\n"
        );
        assert_eq!(
            merge_sections(doc, &["## a\n\nz\n".into()]),
            "## ab\n\nx\n\n### sub\n\ny\n\n## a\n\nz\n"
        );
    }

    #[test]
    fn medians_odd_even_and_missing() {
        let s =
            |v: &[(&str, f64)]| -> Sample { v.iter().map(|(k, x)| (k.to_string(), *x)).collect() };
        let m = median(&[
            s(&[("a", 3.0), ("b", 1.0)]),
            s(&[("a", 1.0)]),
            s(&[("a", 2.0), ("b", 5.0)]),
        ]);
        assert_eq!(m["a"], 2.0);
        assert_eq!(m["b"], 3.0);
    }

    #[test]
    fn ratios_and_advantage() {
        let hi = Metric {
            key: "rps".into(),
            label: "rps".into(),
            better: Better::Higher,
            digits: 0,
        };
        let lo = Metric {
            better: Better::Lower,
            ..hi.clone()
        };
        assert_eq!(ratio(Some(130.0), Some(100.0)), Some(1.3));
        assert_eq!(ratio(Some(1.0), Some(0.0)), None);
        assert_eq!(advantage(&hi, Some(130.0), Some(100.0)), Some(1.3));
        assert_eq!(advantage(&lo, Some(50.0), Some(100.0)), Some(2.0));
    }

    #[test]
    fn table_has_ratio_columns() {
        let m = [Metric {
            key: "rps".into(),
            label: "round trips/s".into(),
            better: Better::Higher,
            digits: 0,
        }];
        let t = table(
            &m,
            &[
                ("direct".into(), [("rps".to_string(), 200_000.0)].into()),
                ("nginx".into(), [("rps".to_string(), 100_000.0)].into()),
                (
                    "ringway io_uring".into(),
                    [("rps".to_string(), 130_000.0)].into(),
                ),
            ],
        );
        assert!(
            t.contains("| metric | direct | nginx | ringway io_uring | ÷ nginx |"),
            "{t}"
        );
        assert!(
            t.contains("| round trips/s ↑ | 200,000 | 100,000 | 130,000 | 1.30 |"),
            "{t}"
        );

        let t = table(
            &m,
            &[
                ("nginx".into(), [("rps".to_string(), 100_000.0)].into()),
                ("nginx tuned".into(), [("rps".to_string(), 80_000.0)].into()),
                ("ringway epoll".into(), Sample::new()),
                (
                    "ringway io_uring".into(),
                    [("rps".into(), 120_000.0)].into(),
                ),
            ],
        );
        let rows: Vec<&str> = t.lines().collect();
        assert_eq!(
            rows[0],
            "| metric | nginx | nginx tuned | ringway epoll | ÷ nginx | ÷ tuned | \
             ringway io_uring | ÷ nginx | ÷ tuned |"
        );
        assert_eq!(rows[1], "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        assert_eq!(
            rows[2],
            "| round trips/s ↑ | 100,000 | 80,000 | – | – | – | 120,000 | 1.20 | 1.50 |"
        );
    }

    #[test]
    fn syscall_rows_most_frequent_first_total_last() {
        let s = |v: &[(&str, f64)]| -> Sample {
            v.iter()
                .map(|(k, x)| (format!("{SYSCALL}{k}"), *x))
                .chain([("p99_ms".to_string(), 1.0)])
                .collect()
        };
        let rows = syscall_metrics(&[
            (
                "nginx".into(),
                s(&[("epoll_wait", 0.01), ("recvfrom", 1.0), ("total", 2.02)]),
            ),
            (
                "ringway io_uring".into(),
                s(&[("io_uring_enter", 0.5), ("sendto", 1.5), ("total", 2.0)]),
            ),
        ]);
        let keys: Vec<&str> = rows.iter().map(|m| m.label.as_str()).collect();
        assert_eq!(
            keys,
            [
                "`sendto`",
                "`recvfrom`",
                "`io_uring_enter`",
                "`epoll_wait`",
                "`total`"
            ]
        );
        assert_eq!(rows[0].key, "syscall_sendto");
    }

    #[test]
    fn flat_json_numbers() {
        let j =
            r#"{"mode":"hold","opened":8000,"open_p99_ms":48.127,"failures":{"x":1},"alive":7999}"#;
        let n = json_numbers(j);
        assert_eq!(n["opened"], 8000.0);
        assert_eq!(n["open_p99_ms"], 48.127);
        assert_eq!(n["alive"], 7999.0);
        assert!(!n.contains_key("x") && !n.contains_key("mode"));
        assert!(json_numbers("holding 3").is_empty());
    }

    #[test]
    fn chart_is_svg_with_a_bar_each() {
        let s = svg(
            "t",
            &[
                Bar {
                    label: "a <b>".into(),
                    value: 1.5,
                },
                Bar {
                    label: "c".into(),
                    value: 0.8,
                },
            ],
        );
        assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"));
        assert_eq!(s.matches("<rect").count(), 3);
        assert!(s.contains("a &lt;b&gt;") && s.contains("1.50×") && s.contains("0.80×"));
    }
}
