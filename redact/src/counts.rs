//! Per-rule replacement counts.

use std::collections::BTreeMap;
use std::sync::Arc;

/// How many values each rule replaced: one per replacement (a masked span, a replaced
/// or dropped field). Never holds the values themselves.
///
/// Counting allocates only the first time a rule is hit; [`Counts::clear`] keeps the
/// rule slots, so a `Counts` reused per batch stops allocating.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts(BTreeMap<Arc<str>, u64>);

impl Counts {
    /// No counts.
    pub fn new() -> Self {
        Self::default()
    }

    /// The count of `rule` (0 if it never hit).
    pub fn get(&self, rule: &str) -> u64 {
        self.0.get(rule).copied().unwrap_or(0)
    }

    /// The sum over all rules.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// Rules with a non-zero count, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> {
        self.0
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| (&**k, *n))
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &Counts) {
        for (rule, n) in &other.0 {
            if *n > 0 {
                *self.slot(rule) += n;
            }
        }
    }

    /// Whether no rule has a count.
    pub fn is_empty(&self) -> bool {
        self.0.values().all(|n| *n == 0)
    }

    /// Resets every count to zero.
    pub fn clear(&mut self) {
        self.0.values_mut().for_each(|n| *n = 0);
    }

    pub(crate) fn add(&mut self, rule: &Arc<str>) {
        *self.slot(rule) += 1;
    }

    fn slot(&mut self, rule: &Arc<str>) -> &mut u64 {
        self.0.entry(Arc::clone(rule)).or_insert(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_merge_and_clear() {
        let (a, b): (Arc<str>, Arc<str>) = ("email".into(), "jwt".into());
        let mut x = Counts::new();
        assert!(x.is_empty());
        x.add(&a);
        x.add(&a);
        let mut y = Counts::new();
        y.add(&b);
        y.merge(&x);
        assert_eq!(y.iter().collect::<Vec<_>>(), [("email", 2), ("jwt", 1)]);
        assert_eq!(y.total(), 3);
        y.clear();
        assert!(y.is_empty());
        assert_eq!(y.iter().count(), 0);
        assert_eq!(y.get("email"), 0);
    }
}
