//! The memory of HTTP ingest requests being read and decoded, over all of them
//! (`budget_bytes`, 64 MiB by default): a request takes its body's bytes and
//! [`DECODED_PER_BYTE`] times the bytes it decompresses to (the protobuf or JSON
//! message, then the records made of it) before it holds them, and gives them back
//! once its records are queued for the writer (the queue then bounds them). A request
//! waits for its body's share; what decompression needs beyond it is taken only if
//! free at once: one that would wait while holding some is answered 503 instead (the
//! client retries), so requests never wait on each other.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Memory a request's message and records may take per byte of its (decompressed)
/// body: a protobuf message of short attributes takes about ten times its size once
/// decoded, the records made of it as much again as layer records take.
pub const DECODED_PER_BYTE: usize = 16;
/// Taken by every request besides its bytes.
pub const REQUEST_EXTRA: usize = 64 << 10;

/// The budget, in KiB.
#[derive(Debug)]
pub struct HttpBudget {
    kib: Arc<Semaphore>,
    total_kib: usize,
}

/// A request's share of the budget.
#[derive(Debug)]
pub struct Share {
    permit: OwnedSemaphorePermit,
}

/// Why a share could not grow.
#[derive(Debug, PartialEq, Eq)]
pub enum Short {
    /// More than the whole budget: the request is too large for it.
    TooLarge {
        /// Bytes the request would take.
        need: usize,
        /// The whole budget.
        budget: usize,
    },
    /// Held by other requests now: retry.
    Busy,
}

fn kib(bytes: usize) -> usize {
    bytes.div_ceil(1024)
}

impl HttpBudget {
    /// A budget of `bytes`.
    pub fn new(bytes: u64) -> Self {
        let total_kib = usize::try_from(bytes >> 10)
            .unwrap_or(usize::MAX)
            .clamp(1, Semaphore::MAX_PERMITS);
        Self {
            kib: Arc::new(Semaphore::new(total_kib)),
            total_kib,
        }
    }

    /// The memory of a request of `wire` bytes that decompresses to `decoded` bytes.
    pub fn need(wire: usize, decoded: usize) -> usize {
        decoded
            .saturating_mul(DECODED_PER_BYTE)
            .saturating_add(wire)
            .saturating_add(REQUEST_EXTRA)
    }

    /// The share of `bytes` (at most the whole budget), waiting while other requests
    /// hold it; `None` once the collector stops.
    pub async fn take(&self, bytes: usize) -> Option<Share> {
        let n = kib(bytes).clamp(1, self.total_kib);
        let permit = Arc::clone(&self.kib)
            .acquire_many_owned(u32::try_from(n).unwrap_or(u32::MAX))
            .await
            .ok()?;
        Some(Share { permit })
    }

    /// Grows `share` to `bytes` if that much is free now.
    pub fn grow(&self, share: &mut Share, bytes: usize) -> Result<(), Short> {
        let want = kib(bytes);
        if want > self.total_kib {
            return Err(Short::TooLarge {
                need: bytes,
                budget: self.total_kib << 10,
            });
        }
        let more = want.saturating_sub(share.permit.num_permits());
        if more == 0 {
            return Ok(());
        }
        let extra = Arc::clone(&self.kib)
            .try_acquire_many_owned(u32::try_from(more).unwrap_or(u32::MAX))
            .map_err(|_| Short::Busy)?;
        share.permit.merge(extra);
        Ok(())
    }

    /// The most a request's body may decompress to within the whole budget.
    pub fn max_decoded(&self, wire: usize) -> usize {
        ((self.total_kib << 10).saturating_sub(wire + REQUEST_EXTRA)) / DECODED_PER_BYTE
    }
}

impl Share {
    /// The bytes it holds.
    pub fn bytes(&self) -> usize {
        self.permit.num_permits() << 10
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn shares_grow_only_when_free_and_never_past_the_budget() {
        let b = HttpBudget::new(4 << 20);
        let mut a = b.take(1 << 20).await.unwrap();
        assert_eq!(a.bytes(), 1 << 20);
        b.grow(&mut a, 3 << 20).unwrap();
        let mut c = b.take(512 << 10).await.unwrap();
        assert_eq!(b.grow(&mut c, 2 << 20), Err(Short::Busy));
        assert!(matches!(
            b.grow(&mut c, 5 << 20),
            Err(Short::TooLarge { .. })
        ));
        drop(a);
        b.grow(&mut c, 2 << 20).unwrap();
        assert_eq!(c.bytes(), 2 << 20);
    }
}
