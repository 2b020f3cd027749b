//! A mergeable latency sketch with a relative error bound (the DDSketch idea: values
//! counted in buckets whose bounds grow geometrically).
//!
//! A value `v` (nanoseconds, at least 1) falls in bucket `ceil(log_γ v)` with
//! `γ = (1 + α) / (1 - α)`; a quantile is answered by its bucket's midpoint
//! `2γ^i / (γ + 1)`, which is within a factor `1 ± α` of every value in the bucket.
//! With `α = 1 %`, any quantile read from a sketch is within 1 % of the value of that
//! rank among the values counted. Merging two sketches adds their bucket counts, so a
//! merge is exact: an hour merged from sixty minutes is the sketch the hour's values
//! would have made, and carries the same 1 % bound. Values span 1 ns to years in
//! about 2,200 buckets; a span name's minute of real latencies fills a few dozen.
//!
//! Encoded for storage as `(bucket delta, count)` pairs in LEB128 varints, sorted by
//! bucket.

use std::collections::BTreeMap;

/// The relative accuracy: every quantile is within this share of the true value.
pub const RELATIVE_ACCURACY: f64 = 0.01;

/// `γ` for [`RELATIVE_ACCURACY`].
fn gamma() -> f64 {
    (1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY)
}

/// Counts of values by bucket.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sketch {
    buckets: BTreeMap<i32, u64>,
    count: u64,
}

impl Sketch {
    /// An empty sketch.
    pub fn new() -> Self {
        Self::default()
    }

    /// The bucket of `v` (values under 1 count as 1).
    fn bucket(v: u64) -> i32 {
        let v = v.max(1) as f64;
        (v.ln() / gamma().ln()).ceil() as i32
    }

    /// Counts `v`.
    pub fn add(&mut self, v: u64) {
        *self.buckets.entry(Self::bucket(v)).or_default() += 1;
        self.count += 1;
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Self) {
        for (b, n) in &other.buckets {
            *self.buckets.entry(*b).or_default() += n;
        }
        self.count += other.count;
    }

    /// Values counted.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The value at quantile `q` (0..=1), within [`RELATIVE_ACCURACY`]; `None` when
    /// empty.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let q = q.clamp(0.0, 1.0);
        // The rank of the value asked for, 0-based, as a lower quantile.
        let rank = (q * (self.count - 1) as f64).floor() as u64;
        let mut seen = 0u64;
        for (b, n) in &self.buckets {
            seen += n;
            if seen > rank {
                let g = gamma();
                let mid = 2.0 * g.powi(*b) / (g + 1.0);
                return Some(mid.round().max(1.0) as u64);
            }
        }
        None
    }

    /// The sketch as bytes: `(bucket delta, count)` varint pairs.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.buckets.len() * 3);
        let mut last = 0i64;
        for (b, n) in &self.buckets {
            let b = i64::from(*b);
            put_varint(&mut out, zigzag(b - last));
            put_varint(&mut out, *n);
            last = b;
        }
        out
    }

    /// A sketch from [`Sketch::encode`]'s bytes; `None` if they are not one.
    pub fn decode(mut bytes: &[u8]) -> Option<Self> {
        let mut s = Self::new();
        let mut last = 0i64;
        while !bytes.is_empty() {
            let delta = unzigzag(take_varint(&mut bytes)?);
            let n = take_varint(&mut bytes)?;
            last = last.checked_add(delta)?;
            let b = i32::try_from(last).ok()?;
            *s.buckets.entry(b).or_default() += n;
            s.count = s.count.checked_add(n)?;
        }
        Some(s)
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn take_varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = bytes.split_first()?;
        *bytes = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exact value of rank `floor(q (n - 1))` of sorted `values`.
    fn exact(values: &mut [u64], q: f64) -> u64 {
        values.sort_unstable();
        values[(q * (values.len() - 1) as f64).floor() as usize]
    }

    fn within(got: u64, want: u64) -> bool {
        (got as f64 - want as f64).abs() <= RELATIVE_ACCURACY * want as f64 + 1.0
    }

    #[test]
    fn quantiles_are_within_the_bound_and_merges_are_exact() {
        // A skewed latency mix: fast hits, slow misses, a long tail.
        let mut seed = 0x1234_5678_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let values: Vec<u64> = (0..60_000)
            .map(|i| match i % 10 {
                0..=6 => 200_000 + next() % 800_000,
                7 | 8 => 20_000_000 + next() % 80_000_000,
                _ => 1_000_000_000 + next() % 30_000_000_000,
            })
            .collect();
        // Sixty "minutes" of a thousand values each, merged into an "hour".
        let mut hour = Sketch::new();
        for minute in values.chunks(1000) {
            let mut m = Sketch::new();
            minute.iter().for_each(|v| m.add(*v));
            let m = Sketch::decode(&m.encode()).unwrap();
            hour.merge(&m);
        }
        let mut direct = Sketch::new();
        values.iter().for_each(|v| direct.add(*v));
        assert_eq!(
            hour, direct,
            "merging minutes gives the hour's sketch exactly"
        );
        let mut sorted = values.clone();
        for q in [0.0, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0] {
            let got = hour.quantile(q).unwrap();
            let want = exact(&mut sorted, q);
            assert!(within(got, want), "q{q}: {got} vs {want}");
        }
        assert!(hour.encode().len() < 4_000, "{} bytes", hour.encode().len());
        assert_eq!(Sketch::new().quantile(0.5), None);
    }

    #[test]
    fn bad_bytes_are_refused() {
        assert_eq!(Sketch::decode(&[0x80]), None);
        assert_eq!(Sketch::decode(&[]), Some(Sketch::new()));
    }
}
