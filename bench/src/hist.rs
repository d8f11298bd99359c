//! A mergeable latency histogram in microseconds: 32 linear sub-buckets per
//! power of two (about 3% resolution), exact count, sum and max. Children of
//! the load generator send theirs to the parent as one text token
//! ([`Hist::encode`]), and the parent merges them before taking quantiles.

use std::time::Duration;

const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;
const BUCKETS: usize = (SUB as usize) * (64 - SUB_BITS as usize + 1);

/// Latency histogram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hist {
    counts: Vec<u64>,
    count: u64,
    sum: u64,
    max: u64,
}

impl Default for Hist {
    fn default() -> Self {
        Self::new()
    }
}

fn index(v: u64) -> usize {
    if v < SUB {
        return v as usize;
    }
    let msb = 63 - v.leading_zeros();
    let shift = msb - SUB_BITS;
    let mant = v >> shift; // in SUB..2*SUB
    (SUB as usize) * (shift as usize + 1) + (mant - SUB) as usize
}

/// The largest value that lands in bucket `i`.
fn upper(i: usize) -> u64 {
    let sub = SUB as usize;
    if i < sub {
        return i as u64;
    }
    let shift = (i / sub - 1) as u32;
    let mant = SUB + (i % sub) as u64;
    let top = (u128::from(mant + 1) << shift) - 1;
    u64::try_from(top).unwrap_or(u64::MAX)
}

impl Hist {
    /// An empty histogram.
    pub fn new() -> Self {
        Self {
            counts: vec![0; BUCKETS],
            count: 0,
            sum: 0,
            max: 0,
        }
    }

    /// Record one value in microseconds.
    pub fn record_us(&mut self, us: u64) {
        self.counts[index(us)] += 1;
        self.count += 1;
        self.sum = self.sum.saturating_add(us);
        self.max = self.max.max(us);
    }

    /// Record one duration.
    pub fn record(&mut self, d: Duration) {
        self.record_us(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Largest value, exact.
    pub fn max_us(&self) -> u64 {
        self.max
    }

    /// Mean, exact.
    pub fn mean_us(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum as f64 / self.count as f64
        }
    }

    /// The value at quantile `q` (0..=1), as the top of its bucket (never
    /// above the exact max); 0 when empty.
    pub fn quantile_us(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return upper(i).min(self.max);
            }
        }
        self.max
    }

    /// Add another histogram into this one.
    pub fn merge(&mut self, other: &Hist) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.count += other.count;
        self.sum = self.sum.saturating_add(other.sum);
        self.max = self.max.max(other.max);
    }

    /// One whitespace-free token: `count/sum/max/i:c,i:c,...`.
    pub fn encode(&self) -> String {
        let mut s = format!("{}/{}/{}/", self.count, self.sum, self.max);
        let mut first = true;
        for (i, &c) in self.counts.iter().enumerate().filter(|(_, &c)| c > 0) {
            if !first {
                s.push(',');
            }
            first = false;
            s.push_str(&format!("{i}:{c}"));
        }
        s
    }

    /// The inverse of [`Hist::encode`].
    pub fn decode(s: &str) -> Option<Hist> {
        let mut parts = s.splitn(4, '/');
        let mut h = Hist::new();
        h.count = parts.next()?.parse().ok()?;
        h.sum = parts.next()?.parse().ok()?;
        h.max = parts.next()?.parse().ok()?;
        for pair in parts.next()?.split(',').filter(|p| !p.is_empty()) {
            let (i, c) = pair.split_once(':')?;
            *h.counts.get_mut(i.parse::<usize>().ok()?)? = c.parse().ok()?;
        }
        Some(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_in_order() {
        let mut last = 0;
        for v in (0..5000).chain([u64::MAX / 3, u64::MAX - 1, u64::MAX]) {
            let i = index(v);
            assert!(i >= last && i < BUCKETS, "{v}");
            assert!(upper(i) >= v, "{v} above the top of its bucket");
            if v >= SUB {
                // Within ~3%.
                assert!((upper(i) - v) as f64 <= v as f64 / SUB as f64, "{v}");
            }
            last = i;
        }
    }

    #[test]
    fn quantiles_merge_and_round_trip() {
        let mut a = Hist::new();
        let mut b = Hist::new();
        for v in 1..=500 {
            a.record_us(v);
        }
        for v in 501..=1000 {
            b.record_us(v);
        }
        a.merge(&b);
        assert_eq!(a.count(), 1000);
        assert_eq!(a.max_us(), 1000);
        assert!((a.mean_us() - 500.5).abs() < 1e-9);
        let p50 = a.quantile_us(0.5);
        assert!((500..=520).contains(&p50), "{p50}");
        assert_eq!(a.quantile_us(1.0), 1000);
        let back = Hist::decode(&a.encode()).unwrap();
        assert_eq!(back, a);
        assert_eq!(Hist::decode(&Hist::new().encode()).unwrap(), Hist::new());
        assert!(Hist::decode("1/2").is_none());
    }
}
