//! The post-commit feed: after each commit the writer publishes what it committed on a
//! bounded broadcast. Publishing never waits: a subscriber that falls behind by more
//! than the feed holds is told it lagged (and reads the rest from the store, from the
//! last stream position it saw), so a slow reader never slows ingest. Live tail,
//! server-sent events and alert evaluation (the HTTP and monitoring issues) will
//! subscribe here; today `Follower` is its reader.
//!
//! Every message carries the stream positions before and after its commit. A
//! subscriber that sees a message whose `from` is not where it stands missed records
//! another writer committed (an admin command beside the collector) and reads them
//! from the store too. Small commits carry their records; large ones only their
//! positions, so the feed's memory stays bounded in records as well as in messages.

use std::sync::Arc;

use tokio::sync::broadcast;

use super::commit::Committed;
use crate::query::RecordFilter;
use crate::store::{StoreError, StoreReader, StreamCursor, StreamItem, StreamPage};

/// Commits the feed holds for a subscriber that has not read them yet.
pub const CAPACITY: usize = 256;

/// A commit carries its records on the feed up to this many, and up to
/// [`INLINE_BYTES`] (more: read them from the store). With [`CAPACITY`], a lagging
/// subscriber holds at most that much per message it has not read.
pub const INLINE_RECORDS: usize = 1024;
/// See [`INLINE_RECORDS`]: the records' bytes, about as stored.
pub const INLINE_BYTES: usize = 128 << 10;

/// One commit, as published.
#[derive(Debug)]
pub struct Commit {
    /// The stream position before the commit.
    pub from: StreamCursor,
    /// The stream position after it.
    pub to: StreamCursor,
    /// Its new records with their positions, when there were at most
    /// [`INLINE_RECORDS`]; otherwise read `from..to` from the store.
    pub items: Option<Vec<StreamItem>>,
}

/// The publishing side: owned by the writer.
#[derive(Clone, Debug)]
pub struct Feed {
    tx: broadcast::Sender<Arc<Commit>>,
}

impl Default for Feed {
    fn default() -> Self {
        Self::new(CAPACITY)
    }
}

impl Feed {
    /// A feed holding up to `capacity` commits per subscriber.
    pub fn new(capacity: usize) -> Self {
        Self {
            tx: broadcast::channel(capacity.max(1)).0,
        }
    }

    /// Publishes a commit; never waits, and costs nothing without subscribers.
    pub fn publish(&self, committed: Committed) {
        if self.tx.receiver_count() == 0 || committed.to == committed.from {
            return;
        }
        let (from, to) = (committed.from, committed.to);
        let inline = committed.records.len() <= INLINE_RECORDS
            && committed
                .records
                .iter()
                .map(crate::pipeline::approx_size)
                .sum::<usize>()
                <= INLINE_BYTES;
        let items = inline.then(|| committed.into_items());
        // Err only when every subscriber left meanwhile.
        let _ = self.tx.send(Arc::new(Commit { from, to, items }));
    }

    /// A subscription to commits from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Commit>> {
        self.tx.subscribe()
    }

    /// A follower of the record stream from `cursor`, reading what the feed does not
    /// carry (or what it missed) from `store`.
    pub fn follow(&self, store: Arc<dyn StoreReader>, cursor: StreamCursor) -> Follower {
        Follower {
            rx: self.subscribe(),
            store,
            cursor,
        }
    }
}

/// How often a waiting follower reads the store again although no commit was announced.
const OTHER_WRITERS: std::time::Duration = std::time::Duration::from_secs(1);

/// Follows the record stream: each call returns the records committed after the last
/// it returned (matching a filter), waiting for a commit when there are none. Reads
/// come from the store, so a filter means there exactly what it means to every reader;
/// the feed wakes the follower and tells it whether it lagged, which costs it nothing
/// more than a bigger read.
pub struct Follower {
    rx: broadcast::Receiver<Arc<Commit>>,
    store: Arc<dyn StoreReader>,
    cursor: StreamCursor,
}

impl Follower {
    /// Where the follower stands: resume here to miss nothing and repeat nothing.
    pub fn cursor(&self) -> StreamCursor {
        self.cursor
    }

    /// The next records after the cursor matching `filter`, at most `limit`; waits for
    /// a commit while there are none. `None` once the feed has closed (the collector
    /// is stopping) and nothing is left to read.
    pub async fn next(
        &mut self,
        filter: &RecordFilter,
        limit: usize,
    ) -> Result<Option<StreamPage>, StoreError> {
        loop {
            let (store, cursor, f) = (Arc::clone(&self.store), self.cursor, filter.clone());
            let page = tokio::task::spawn_blocking(move || store.stream_after(cursor, &f, limit))
                .await
                .map_err(|e| StoreError::Stopped(std::io::Error::other(e)))??;
            self.cursor = page.cursor;
            if !page.items.is_empty() {
                return Ok(Some(page));
            }
            // Nothing after the cursor: wait for the next commit, or a second: other
            // writers (another collector on the same PostgreSQL, an admin command
            // restoring an archive) commit without this feed hearing of it. A lag only
            // means commits are waiting, which the next read returns.
            match tokio::time::timeout(OTHER_WRITERS, self.rx.recv()).await {
                Ok(Ok(_) | Err(broadcast::error::RecvError::Lagged(_))) | Err(_) => {}
                Ok(Err(broadcast::error::RecvError::Closed)) => return Ok(None),
            }
        }
    }
}
