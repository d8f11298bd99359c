//! Result plumbing for the load generator: counters by kind (failures),
//! merged across load processes and carried in their JSON lines, and the
//! rounding of the floats the results print.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Counts by kind, e.g. failures: `connect_timeout` → 3.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
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
}

/// `v` rounded to three decimals, as the JSON results print their floats.
pub fn r3(v: f64) -> f64 {
    if v.is_finite() {
        (v * 1000.0).round() / 1000.0
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_merge_and_serialise_as_a_map() {
        let mut f = Counts::default();
        f.add("connect_timeout");
        f.add("connect_timeout");
        f.add("handshake_status_502");
        let mut g = Counts::default();
        g.merge(&f);
        g.add("echo_timeout");
        assert_eq!((f.total(), g.total()), (3, 4));
        let json = serde_json::to_string(&f).unwrap();
        assert_eq!(json, r#"{"connect_timeout":2,"handshake_status_502":1}"#);
        assert_eq!(serde_json::from_str::<Counts>(&json).unwrap(), f);
        assert_eq!(f.human(), "connect_timeout=2 handshake_status_502=1");
        assert_eq!(Counts::default().human(), "none");
        assert_eq!((r3(1.23456), r3(f64::NAN)), (1.235, 0.0));
    }
}
