//! One clock read per timestamp: spans need a monotonic instant (for durations) and a
//! wall-clock time; the wall time is derived from the instant with an offset that the
//! worker refreshes every second, so clock adjustments never accumulate.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::LazyLock;
use std::time::Instant;

use logbook_proto::Timestamp;

/// The instant all offsets are measured from.
static BASE: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Wall-clock nanoseconds at `BASE`, as last measured.
static WALL_AT_BASE: AtomicI64 = AtomicI64::new(i64::MIN);

/// Measures the wall clock against the monotonic one again.
pub(crate) fn resync() {
    let base = *BASE;
    let wall = Timestamp::now().as_nanos();
    let mono = nanos_since(base, Instant::now());
    WALL_AT_BASE.store(wall - mono, Ordering::Relaxed);
}

fn nanos_since(base: Instant, t: Instant) -> i64 {
    i64::try_from(t.saturating_duration_since(base).as_nanos()).unwrap_or(i64::MAX)
}

/// The wall-clock time of the instant `t`.
pub(crate) fn wall(t: Instant) -> Timestamp {
    let mut at_base = WALL_AT_BASE.load(Ordering::Relaxed);
    if at_base == i64::MIN {
        resync();
        at_base = WALL_AT_BASE.load(Ordering::Relaxed);
    }
    Timestamp(at_base.saturating_add(nanos_since(*BASE, t)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_wall_time_matches_the_system_clock() {
        let derived = wall(Instant::now()).as_nanos();
        let direct = Timestamp::now().as_nanos();
        assert!(
            (direct - derived).abs() < 50_000_000,
            "{direct} vs {derived}"
        );
    }
}
