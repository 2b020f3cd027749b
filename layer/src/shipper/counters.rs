//! The byte budget and the delivery counters shared by the emitting threads and the
//! worker. Emitting threads touch only `used` (and a drop counter when full).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use logbook_proto::{Level, PerLevel};

/// Atomic counters; every record ends in exactly one of delivered, rejected or dropped.
pub(crate) struct Counters {
    used: AtomicUsize,
    capacity: usize,
    dropped: PerLevel<AtomicU64>,
    delivered: AtomicU64,
    rejected: AtomicU64,
    /// Records sent again after a reconnect (the collector stores each once).
    resent: AtomicU64,
    /// Taken off the queue by the worker and not yet delivered, rejected or dropped.
    in_worker: AtomicU64,
}

impl Counters {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            used: AtomicUsize::new(0),
            capacity,
            dropped: Default::default(),
            delivered: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            resent: AtomicU64::new(0),
            in_worker: AtomicU64::new(0),
        }
    }

    /// Reserves `cost` bytes of buffer; fails (reserving nothing) if that would exceed
    /// the capacity. What is reserved never exceeds the capacity, not even for a
    /// moment (a reader of [`Counters::used`] never sees more), and a full buffer
    /// refuses with a read alone, without writing the shared counter.
    pub(crate) fn try_acquire(&self, cost: usize) -> bool {
        let mut cur = self.used.load(Ordering::Acquire);
        loop {
            let next = match cur.checked_add(cost) {
                Some(next) if next <= self.capacity => next,
                _ => return false,
            };
            match self
                .used
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return true,
                Err(actual) => cur = actual,
            }
        }
    }

    pub(crate) fn release(&self, cost: usize) {
        self.used.fetch_sub(cost, Ordering::AcqRel);
    }

    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// A record that never reached a ring (ring full, re-entrant, no ring to be had).
    pub(crate) fn drop_unqueued(&self, level: Level) {
        self.dropped[level.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn taken(&self, n: u64) {
        self.in_worker.fetch_add(n, Ordering::AcqRel);
    }

    /// Records counted as taken that went back to their ring.
    pub(crate) fn untaken(&self, n: u64) {
        self.in_worker.fetch_sub(n, Ordering::AcqRel);
    }

    /// Records the worker held that the collector stored (or already had).
    pub(crate) fn delivered(&self, n: u64, cost: usize) {
        self.delivered.fetch_add(n, Ordering::Relaxed);
        self.in_worker.fetch_sub(n, Ordering::AcqRel);
        self.release(cost);
    }

    /// Records the worker held that the collector refused.
    pub(crate) fn rejected(&self, n: u64) {
        self.rejected.fetch_add(n, Ordering::Relaxed);
        self.in_worker.fetch_sub(n, Ordering::AcqRel);
    }

    /// Records the worker held and gave up on, by level.
    pub(crate) fn abandoned(&self, levels: &LevelCounts, cost: usize) {
        let mut n = 0;
        for (i, c) in levels.iter().enumerate() {
            self.dropped[i].fetch_add(u64::from(*c), Ordering::Relaxed);
            n += u64::from(*c);
        }
        self.in_worker.fetch_sub(n, Ordering::AcqRel);
        self.release(cost);
    }

    pub(crate) fn dropped_by_level(&self) -> PerLevel<u64> {
        std::array::from_fn(|i| self.dropped[i].load(Ordering::Relaxed))
    }

    pub(crate) fn delivered_total(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    pub(crate) fn rejected_total(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    /// Unacknowledged records queued again after a reconnect.
    pub(crate) fn resent(&self, n: u64) {
        self.resent.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn resent_total(&self) -> u64 {
        self.resent.load(Ordering::Relaxed)
    }

    pub(crate) fn in_worker(&self) -> u64 {
        self.in_worker.load(Ordering::Acquire)
    }
}

/// Records per level in one batch.
pub(crate) type LevelCounts = PerLevel<u32>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_never_exceeds_capacity() {
        let c = Counters::new(100);
        assert!(c.try_acquire(60));
        assert!(!c.try_acquire(41));
        assert!(c.try_acquire(40));
        assert_eq!(c.used(), 100);
        c.release(60);
        assert!(c.try_acquire(50));
    }

    #[test]
    fn concurrent_acquires_stay_within_capacity() {
        let c = std::sync::Arc::new(Counters::new(10_000));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || (0..10_000).filter(|_| c.try_acquire(7)).count())
            })
            .collect();
        let granted: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(granted * 7, c.used());
        assert!(c.used() <= 10_000);
    }

    #[test]
    fn a_reader_never_sees_more_than_the_capacity() {
        let c = std::sync::Arc::new(Counters::new(1000));
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writers: Vec<_> = (0..2)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || {
                    for _ in 0..200_000 {
                        if c.try_acquire(600) {
                            c.release(600);
                        }
                    }
                })
            })
            .collect();
        let reader = {
            let (c, done) = (c.clone(), done.clone());
            std::thread::spawn(move || {
                let mut most = 0;
                while !done.load(Ordering::Relaxed) {
                    most = most.max(c.used());
                }
                most
            })
        };
        for w in writers {
            w.join().unwrap();
        }
        done.store(true, Ordering::Relaxed);
        assert!(reader.join().unwrap() <= 1000);
    }
}
