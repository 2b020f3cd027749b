//! Flushing: the guard that delivers what is queued when it is dropped, and the
//! counters that say what happened to every record.

use std::fmt;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crate::shipper::Shipper;

/// What a flush achieved. Every record the layer captured is in exactly one of
/// `delivered`, `rejected`, `dropped` or `undelivered`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FlushReport {
    /// Whether everything queued before the flush was delivered within the deadline.
    pub complete: bool,
    /// How long the flush waited.
    pub waited: Duration,
    /// Records the collector acknowledged, since start.
    pub delivered: u64,
    /// Records the collector refused (see its reject reasons on stderr), since start.
    pub rejected: u64,
    /// Records dropped because the buffer was full, since start.
    pub dropped: u64,
    /// Records still queued or unacknowledged when the flush returned.
    pub undelivered: u64,
}

/// A snapshot of the layer's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Records the collector acknowledged.
    pub delivered: u64,
    /// Records the collector refused.
    pub rejected: u64,
    /// Records dropped (buffer full, re-entrant, undeliverable), all levels.
    pub dropped: u64,
    /// Dropped records by level: TRACE, DEBUG, INFO, WARN, ERROR.
    pub dropped_by_level: logbook_proto::PerLevel<u64>,
    /// Records queued or awaiting acknowledgement.
    pub pending: u64,
    /// Records sent again after the connection to the collector was lost before their
    /// acknowledgement (the collector stores each once: they are counted delivered
    /// once).
    pub resent: u64,
    /// Bytes of buffer in use (queued and unacknowledged records).
    pub buffered_bytes: usize,
    /// The buffer's limit in bytes.
    pub buffer_capacity: usize,
}

/// A handle to a layer's shipper: flush it or read its counters from anywhere.
#[derive(Clone)]
pub struct Handle {
    pub(crate) shipper: Arc<Shipper>,
}

impl Handle {
    /// Waits until every record captured before this call is delivered, or `timeout`.
    pub fn flush(&self, timeout: Duration) -> FlushReport {
        self.shipper.flush(timeout)
    }

    /// The layer's counters now.
    pub fn stats(&self) -> Stats {
        self.shipper.stats()
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("endpoint", &self.shipper.endpoint)
            .finish()
    }
}

/// Delivers what the layer has queued when dropped, waiting at most the flush timeout
/// (`with_flush_timeout`, default 5 s), and prints to stderr how many records it could
/// not deliver. Hold it in `main`:
///
/// ```no_run
/// # use tracing_subscriber::prelude::*;
/// let layer = logbook_layer::layer();
/// let _guard = layer.flush_guard();
/// tracing_subscriber::registry().with(layer).init();
/// ```
///
/// Dropping the guard does not stop the layer; records captured afterwards are still
/// shipped. For `std::process::exit` (which runs no destructors) call
/// [`crate::flush`] first; for panics see [`crate::install_panic_hook`].
#[must_use = "the guard flushes when dropped; bind it with `let _guard = …`"]
pub struct FlushGuard {
    pub(crate) handle: Handle,
}

impl FlushGuard {
    /// Flushes now, with the layer's flush timeout; the report says what was left.
    pub fn flush(&self) -> FlushReport {
        self.handle.flush(self.handle.shipper.flush_timeout)
    }

    /// The layer's counters now.
    pub fn stats(&self) -> Stats {
        self.handle.stats()
    }
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        let report = self.flush();
        report_undelivered(&self.handle.shipper, &report);
    }
}

impl fmt::Debug for FlushGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlushGuard")
            .field("endpoint", &self.handle.shipper.endpoint)
            .finish()
    }
}

fn report_undelivered(shipper: &Shipper, report: &FlushReport) {
    if report.undelivered > 0 {
        eprintln!(
            "logbook: {} records could not be delivered to {} within {:?} and are lost ({} delivered, {} dropped earlier)",
            report.undelivered, shipper.endpoint, shipper.flush_timeout, report.delivered, report.dropped
        );
    }
}

/// Every live shipper, for [`crate::flush`].
static SHIPPERS: Mutex<Vec<Weak<Shipper>>> = Mutex::new(Vec::new());

pub(crate) fn register(shipper: &Arc<Shipper>) {
    let mut all = SHIPPERS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    all.retain(|w| w.strong_count() > 0);
    all.push(Arc::downgrade(shipper));
}

/// Flushes every logbook layer in the process, waiting at most `timeout` for each;
/// reports what was left on stderr and returns the combined counts. Call it before
/// `std::process::exit`.
pub fn flush(timeout: Duration) -> FlushReport {
    let live: Vec<Arc<Shipper>> = SHIPPERS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .filter_map(Weak::upgrade)
        .collect();
    let mut total = FlushReport {
        complete: true,
        ..FlushReport::default()
    };
    for s in live {
        let r = s.flush(timeout);
        report_undelivered(&s, &r);
        total.complete &= r.complete;
        total.waited += r.waited;
        total.delivered += r.delivered;
        total.rejected += r.rejected;
        total.dropped += r.dropped;
        total.undelivered += r.undelivered;
    }
    total
}
