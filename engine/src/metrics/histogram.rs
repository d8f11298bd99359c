//! Fixed-bucket histograms: the bucket bounds (constants, in seconds), the
//! per-series counts a worker keeps, and their merge. One type serves the
//! worker and the snapshot: a plain value (`Send`, `Clone`) whose bucket
//! counts are per bucket, not cumulative; the encoders accumulate them.

use std::time::Duration;

/// Upper bounds (seconds) for request and upstream connect latencies.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Upper bounds (seconds) for tunnel lifetimes: one second to one day.
pub const TUNNEL_BUCKETS: &[f64] = &[
    1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0, 43200.0, 86400.0,
];

#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// Upper bounds of the finite buckets, ascending (seconds).
    pub bounds: &'static [f64],
    /// Observations per bucket: `counts[i]` are those in
    /// `(bounds[i-1], bounds[i]]`; the last entry (index `bounds.len()`)
    /// holds those above every bound (+Inf).
    pub counts: Vec<u64>,
    /// Sum of the observations, in nanoseconds (u128: a day-long tunnel
    /// a million times over still fits).
    pub sum_ns: u128,
}

impl Histogram {
    /// Allocates once (the bucket counts); observing never does.
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum_ns: 0,
        }
    }

    pub fn observe(&mut self, d: Duration) {
        let secs = d.as_secs_f64();
        // The first bound >= the value (`le` is inclusive); none: +Inf.
        let i = self.bounds.partition_point(|&b| b < secs);
        self.counts[i] += 1;
        self.sum_ns += d.as_nanos();
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub fn sum_seconds(&self) -> f64 {
        self.sum_ns as f64 / 1e9
    }

    /// `(le, cumulative count)` for every bucket, +Inf last (`le = None`).
    pub fn cumulative(&self) -> impl Iterator<Item = (Option<f64>, u64)> + '_ {
        let mut acc = 0;
        self.counts.iter().enumerate().map(move |(i, c)| {
            acc += c;
            (self.bounds.get(i).copied(), acc)
        })
    }

    /// Adds `other`'s observations (both must have the same bounds).
    pub fn add(&mut self, other: &Histogram) {
        debug_assert_eq!(self.bounds, other.bounds, "merging unlike histograms");
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.sum_ns += other.sum_ns;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_ascending() {
        for b in [LATENCY_BUCKETS, TUNNEL_BUCKETS] {
            assert!(b.windows(2).all(|w| w[0] < w[1]));
        }
    }

    #[test]
    fn le_is_inclusive_and_overflow_goes_to_inf() {
        let mut h = Histogram::new(LATENCY_BUCKETS);
        h.observe(Duration::from_micros(500)); // exactly 0.0005: first bucket
        h.observe(Duration::from_micros(501)); // second
        h.observe(Duration::from_secs(11)); // +Inf
        h.observe(Duration::ZERO); // first
        assert_eq!(h.counts[0], 2);
        assert_eq!(h.counts[1], 1);
        assert_eq!(h.counts[LATENCY_BUCKETS.len()], 1);
        assert_eq!(h.count(), 4);
        assert_eq!(h.sum_ns, 500_000 + 501_000 + 11_000_000_000);
        let cum: Vec<_> = h.cumulative().collect();
        assert_eq!(cum.len(), LATENCY_BUCKETS.len() + 1);
        assert_eq!(cum[0], (Some(0.0005), 2));
        assert_eq!(cum[1], (Some(0.001), 3));
        assert_eq!(*cum.last().unwrap(), (None, 4));
    }

    #[test]
    fn add_sums_buckets_and_sum() {
        let mut a = Histogram::new(TUNNEL_BUCKETS);
        let mut b = Histogram::new(TUNNEL_BUCKETS);
        a.observe(Duration::from_secs(2));
        b.observe(Duration::from_secs(2));
        b.observe(Duration::from_secs(100_000));
        a.add(&b);
        assert_eq!(a.count(), 3);
        assert_eq!(a.counts[1], 2);
        assert_eq!(a.counts[TUNNEL_BUCKETS.len()], 1);
        assert_eq!(a.sum_seconds(), 100_004.0);
    }
}
