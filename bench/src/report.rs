//! Result plumbing for the load generator: counters by kind (failures),
//! the `word key=value ...` lines children send their parent, and a tiny
//! JSON object writer for `--json` (one line, keys in insertion order).

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Counts by kind, e.g. failures: `connect_timeout` → 3.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts(pub BTreeMap<String, u64>);

impl Counts {
    /// Add one to `kind`.
    pub fn add(&mut self, kind: &str) {
        *self.0.entry(kind.to_string()).or_default() += 1;
    }

    /// Add every count of `other`.
    pub fn merge(&mut self, other: &Counts) {
        for (k, v) in &other.0 {
            *self.0.entry(k.clone()).or_default() += v;
        }
    }

    /// Sum of all counts.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// `kind=n kind=n` (empty when none), for human output.
    pub fn human(&self) -> String {
        if self.0.is_empty() {
            return "none".into();
        }
        let v: Vec<String> = self.0.iter().map(|(k, v)| format!("{k}={v}")).collect();
        v.join(" ")
    }

    /// As a JSON object.
    pub fn json(&self) -> String {
        let mut o = JsonObject::new();
        for (k, v) in &self.0 {
            o.num(k, *v);
        }
        o.finish()
    }
}

/// One line of the child → parent protocol: a word then `key=value`
/// fields; keys starting with `fail.` are failure counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Line {
    /// The first word ("open", "done", ...).
    pub word: String,
    /// The fields, sorted by key.
    pub fields: BTreeMap<String, String>,
}

impl Line {
    /// Start a line.
    pub fn new(word: &str) -> Self {
        Self {
            word: word.to_string(),
            fields: BTreeMap::new(),
        }
    }

    /// Add a field (values must hold no whitespace).
    pub fn field(mut self, key: &str, value: impl ToString) -> Self {
        self.fields.insert(key.to_string(), value.to_string());
        self
    }

    /// Add failure counts as `fail.KIND=N`.
    pub fn failures(mut self, c: &Counts) -> Self {
        for (k, v) in &c.0 {
            self.fields.insert(format!("fail.{k}"), v.to_string());
        }
        self
    }

    /// Render without the trailing newline.
    pub fn render(&self) -> String {
        let mut s = self.word.clone();
        for (k, v) in &self.fields {
            let _ = write!(s, " {k}={v}");
        }
        s
    }

    /// Parse a rendered line.
    pub fn parse(s: &str) -> Option<Line> {
        let mut words = s.split_whitespace();
        let mut line = Line::new(words.next()?);
        for w in words {
            let (k, v) = w.split_once('=')?;
            line.fields.insert(k.to_string(), v.to_string());
        }
        Some(line)
    }

    /// A numeric field, 0 when absent or bad.
    pub fn num(&self, key: &str) -> u64 {
        self.fields
            .get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// A float field, 0 when absent or bad.
    pub fn float(&self, key: &str) -> f64 {
        self.fields
            .get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }

    /// The `fail.*` fields as counts.
    pub fn failure_counts(&self) -> Counts {
        let mut c = Counts::default();
        for (k, v) in &self.fields {
            if let (Some(kind), Ok(n)) = (k.strip_prefix("fail."), v.parse::<u64>()) {
                *c.0.entry(kind.to_string()).or_default() += n;
            }
        }
        c
    }

    /// The latency histogram a child sent in its `hist` field, if any.
    pub fn hist(&self) -> Option<crate::hist::Hist> {
        self.fields
            .get("hist")
            .and_then(|s| crate::hist::Hist::decode(s))
    }
}

/// Builds one JSON object.
#[derive(Debug, Default)]
pub struct JsonObject {
    s: String,
}

impl JsonObject {
    /// An empty object.
    pub fn new() -> Self {
        Self::default()
    }

    fn key(&mut self, k: &str) {
        self.s.push(if self.s.is_empty() { '{' } else { ',' });
        self.s.push_str(&json_string(k));
        self.s.push(':');
    }

    /// A string member.
    pub fn str(&mut self, k: &str, v: &str) -> &mut Self {
        self.key(k);
        self.s.push_str(&json_string(v));
        self
    }

    /// An integer member.
    pub fn num(&mut self, k: &str, v: u64) -> &mut Self {
        self.key(k);
        let _ = write!(self.s, "{v}");
        self
    }

    /// A float member (finite; three decimals).
    pub fn float(&mut self, k: &str, v: f64) -> &mut Self {
        self.key(k);
        let v = if v.is_finite() { v } else { 0.0 };
        let _ = write!(self.s, "{v:.3}");
        self
    }

    /// A member whose value is already JSON.
    pub fn raw(&mut self, k: &str, json: &str) -> &mut Self {
        self.key(k);
        self.s.push_str(json);
        self
    }

    /// The object's text.
    pub fn finish(&self) -> String {
        if self.s.is_empty() {
            "{}".into()
        } else {
            format!("{}}}", self.s)
        }
    }
}

/// A JSON string literal.
pub fn json_string(v: &str) -> String {
    let mut s = String::with_capacity(v.len() + 2);
    s.push('"');
    for c in v.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(s, "\\u{:04x}", c as u32);
            }
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip() {
        let mut f = Counts::default();
        f.add("connect_timeout");
        f.add("connect_timeout");
        f.add("handshake_status_502");
        let l = Line::new("open").field("upgraded", 7).failures(&f);
        let back = Line::parse(&l.render()).unwrap();
        assert_eq!(back, l);
        assert_eq!(back.num("upgraded"), 7);
        assert_eq!(back.failure_counts(), f);
        assert_eq!(f.total(), 3);
        assert!(Line::parse("open novalue").is_none());
    }

    #[test]
    fn json_object() {
        let mut o = JsonObject::new();
        o.str("mode", "hold \"x\"\n").num("n", 3).float("secs", 1.5);
        o.raw("fail", &Counts::default().json());
        assert_eq!(
            o.finish(),
            r#"{"mode":"hold \"x\"\u000a","n":3,"secs":1.500,"fail":{}}"#
        );
    }
}
