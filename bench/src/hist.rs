//! Latency histograms: an [`hdrhistogram`] in microseconds with three
//! significant digits (0.1% resolution), and its form on the wire. Load
//! children send theirs to the parent inside a JSON line as the recorded
//! buckets, `[[value, count], ...]`, and the parent merges them before
//! taking quantiles.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// A latency histogram in microseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "Vec<(u64, u64)>", into = "Vec<(u64, u64)>")]
pub struct Hist(pub Histogram<u64>);

impl Default for Hist {
    fn default() -> Self {
        // Auto-resizing: any u64 records.
        Self(Histogram::new(3).expect("3 significant digits are valid"))
    }
}

impl Hist {
    /// Record one value in microseconds.
    pub fn record_us(&mut self, us: u64) {
        self.record_n(us, 1);
    }

    /// Record `n` values `us`, growing the range as needed (clamped only
    /// past what the histogram can ever track).
    fn record_n(&mut self, us: u64, n: u64) {
        if self.0.record_n(us, n).is_err() {
            self.0.saturating_record_n(us, n);
        }
    }

    /// Record one duration.
    pub fn record(&mut self, d: Duration) {
        self.record_us(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    }

    /// Add another histogram into this one.
    pub fn merge(&mut self, other: &Hist) {
        self.0.add(&other.0).expect("auto-resizing histograms add");
    }

    /// The value at quantile `q` (0..=1), in milliseconds; 0 when empty.
    pub fn ms(&self, q: f64) -> f64 {
        self.0.value_at_quantile(q) as f64 / 1000.0
    }

    /// The largest value, in milliseconds.
    pub fn max_ms(&self) -> f64 {
        self.0.max() as f64 / 1000.0
    }

    /// The mean, in milliseconds.
    pub fn mean_ms(&self) -> f64 {
        self.0.mean() / 1000.0
    }
}

impl From<Hist> for Vec<(u64, u64)> {
    fn from(h: Hist) -> Self {
        h.0.iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect()
    }
}

impl From<Vec<(u64, u64)>> for Hist {
    fn from(buckets: Vec<(u64, u64)>) -> Self {
        let mut h = Hist::default();
        for (v, n) in buckets {
            h.record_n(v, n);
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_merge_and_round_trip() {
        let (mut a, mut b) = (Hist::default(), Hist::default());
        (1..=500).for_each(|v| a.record_us(v));
        (501..=1000).for_each(|v| b.record_us(v));
        a.merge(&b);
        assert_eq!(a.0.len(), 1000);
        assert_eq!(a.max_ms(), 1.0);
        assert!((a.mean_ms() - 0.5005).abs() < 1e-3);
        assert_eq!(a.ms(0.5), 0.5);
        assert_eq!(a.ms(0.99), 0.99);
        assert_eq!(a.ms(1.0), 1.0);
        a.record(Duration::from_secs(3600));
        assert!((a.max_ms() / 3_600_000.0 - 1.0).abs() < 1e-3);
        let mut huge = Hist::default();
        huge.record_us(u64::MAX);
        assert_eq!(huge.0.len(), 1);
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<Hist>(&json).unwrap(), a);
        assert_eq!(serde_json::to_string(&Hist::default()).unwrap(), "[]");
        assert_eq!(Hist::default().ms(0.5), 0.0);
        assert!(serde_json::from_str::<Hist>("[1,2]").is_err());
    }
}
