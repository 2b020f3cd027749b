//! Emit-to-commit latency: for every record stored, the time from its timestamp (when
//! it was emitted) to the end of the commit that stored it, kept as a log-linear
//! histogram per minute.

use std::collections::BTreeMap;

/// Histogram buckets: four per power of two of microseconds, from 1 µs to about 2^32 µs.
pub const BUCKETS: usize = 128;

/// The bucket of a latency in nanoseconds.
pub fn bucket(ns: i64) -> usize {
    let us = (ns / 1000).max(1) as u64;
    let log2 = 63 - us.leading_zeros() as usize;
    let quarter = if log2 >= 2 {
        ((us >> (log2 - 2)) & 3) as usize
    } else {
        us as usize & 3
    };
    (log2 * 4 + quarter).min(BUCKETS - 1)
}

/// The upper bound of a bucket, in microseconds (what a percentile is reported as).
pub fn upper_bound_us(bucket: usize) -> f64 {
    let (log2, quarter) = (bucket / 4, bucket % 4);
    if log2 < 2 {
        // Below 4 µs a bucket is one microsecond: 1, 2 or 3.
        return (quarter.max(1) + 1) as f64;
    }
    ((4 + quarter as u64 + 1) << (log2 - 2)) as f64
}

/// Counts per bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Histogram(pub [u64; BUCKETS]);

impl Default for Histogram {
    fn default() -> Self {
        Self([0; BUCKETS])
    }
}

impl Histogram {
    /// Adds one latency.
    pub fn record(&mut self, ns: i64) {
        self.0[bucket(ns)] += 1;
    }

    /// Adds another histogram's counts.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a += b;
        }
    }

    /// Latencies counted.
    pub fn count(&self) -> u64 {
        self.0.iter().sum()
    }

    /// The `p`th percentile (0–100) in milliseconds, as the upper bound of its bucket.
    pub fn percentile_ms(&self, p: f64) -> Option<f64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let rank = ((p / 100.0) * n as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in self.0.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(upper_bound_us(i) / 1000.0);
            }
        }
        None
    }

    /// Little-endian bytes, for storage.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.iter().flat_map(|c| c.to_le_bytes()).collect()
    }

    /// From stored bytes (shorter input leaves the rest zero).
    pub fn from_bytes(b: &[u8]) -> Self {
        let mut h = Self::default();
        for (slot, chunk) in h.0.iter_mut().zip(b.chunks_exact(8)) {
            *slot = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        }
        h
    }
}

/// Histograms by minute, waiting to be written.
pub(crate) type PendingLatency = BTreeMap<i64, Histogram>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_grow_log_linearly_and_bound_their_values() {
        for ns in [
            500,
            1_000,
            1_500,
            7_000,
            1_000_000,
            33_000_000,
            100_000_000,
            5_000_000_000,
        ] {
            let b = bucket(ns);
            let upper = upper_bound_us(b) * 1000.0;
            assert!(
                upper >= ns as f64,
                "{ns} ns in bucket {b} with upper bound {upper}"
            );
            // A quarter power of two wide; below 4 µs, a microsecond.
            assert!(
                upper <= (ns as f64 * 1.26).max(4000.0),
                "{ns} ns: bound {upper} too loose"
            );
        }
        assert!(bucket(1_000_000) < bucket(2_000_000));
    }

    #[test]
    fn percentiles() {
        let mut h = Histogram::default();
        for ms in 1..=100 {
            h.record(ms * 1_000_000);
        }
        let p50 = h.percentile_ms(50.0).unwrap();
        let p99 = h.percentile_ms(99.0).unwrap();
        assert!((50.0..=63.0).contains(&p50), "{p50}");
        assert!((99.0..=125.0).contains(&p99), "{p99}");
        assert_eq!(Histogram::from_bytes(&h.to_bytes()), h);
    }
}
