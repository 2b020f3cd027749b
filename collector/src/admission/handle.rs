//! The collector's handle on admission: the intake, a queue bounded in records and in
//! bytes in front of the writer thread, and the way back of each batch's outcome.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use logbook_proto::Record;
use thiserror::Error;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore, TryAcquireError};

use super::feed::Feed;
use super::writer::{self, GroupCommit, Request};
use super::{Client, Intake, Outcome};
use crate::metrics::Metrics;
use crate::store::{ClientDrops, ForwardState, StoreWriter};

/// Why a batch was not committed. Nothing of it was stored; the client may resend it.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum AdmitError {
    /// The collector is stopping.
    #[error("collector is shutting down")]
    ShuttingDown,
    /// The queue in front of the writer is full (only from
    /// [`Admission::try_submit`], which never waits).
    #[error("the collector is busy: its write queue is full; retry shortly")]
    Busy,
    /// The commit failed.
    #[error("cannot store records right now: {0}")]
    Store(String),
    /// The batch breaks a limit as a whole (too many records): it would fail again.
    #[error("{0}")]
    TooLarge(String),
    /// The store is at its disk budget: nothing is stored until retention frees space.
    #[error(
        "the database is at its disk budget ({used} bytes used, max_db_size {max}): retry later"
    )]
    Full {
        /// Bytes in use.
        used: u64,
        /// The budget.
        max: u64,
    },
}

/// How much may wait for the writer.
#[derive(Clone, Copy, Debug)]
pub struct QueueLimits {
    /// Records received but not yet committed, at most; a larger batch takes all of it.
    pub records: usize,
    /// Their bytes, about as stored, at most; a larger batch takes all of it.
    pub bytes: u64,
    /// Requests waiting for the writer, at most.
    pub requests: usize,
}

/// The way into the store for every transport. Cheap to clone.
#[derive(Clone)]
pub struct Admission {
    inner: Arc<Inner>,
}

struct Inner {
    intake: Intake,
    writer: mpsc::Sender<Request>,
    queue: Arc<Semaphore>,
    queue_records: usize,
    /// The queue's bytes, in KiB.
    queue_kib: Arc<Semaphore>,
    queue_kib_total: usize,
    /// What the limits did outside any batch, not yet sent to the writer.
    counts: std::sync::Mutex<Vec<(&'static str, u64)>>,
    metrics: Arc<Metrics>,
}

/// A batch's share of the queue: returned when it is dropped, once the batch is
/// committed.
pub(crate) struct QueueShare {
    _records: OwnedSemaphorePermit,
    _kib: OwnedSemaphorePermit,
}

/// A batch queued for the writer: resolves to its outcome once committed.
pub struct Pending(oneshot::Receiver<Result<Outcome, AdmitError>>);

impl Future for Pending {
    type Output = Result<Outcome, AdmitError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(AdmitError::ShuttingDown)))
    }
}

/// The writer thread: it stops once every [`Admission`] is dropped and what they
/// queued is committed.
pub struct WriterThread(std::thread::JoinHandle<u64>);

impl WriterThread {
    /// Whether the thread has ended (it should not, while admission is open).
    pub fn is_finished(&self) -> bool {
        self.0.is_finished()
    }

    /// Waits for the writer to finish; returns the records it stored.
    pub fn join(self) -> std::thread::Result<u64> {
        self.0.join()
    }
}

impl Admission {
    /// Starts the writer thread on `store` (group commits as `group` says, publishing
    /// each on `feed`) and returns the way into it through `intake`, with at most
    /// `queue` waiting for it. `runtime` times the writer's waits.
    pub fn start(
        intake: Intake,
        store: Box<dyn StoreWriter>,
        queue: QueueLimits,
        group: GroupCommit,
        feed: Feed,
        runtime: tokio::runtime::Handle,
    ) -> std::io::Result<(Self, WriterThread)> {
        let (tx, rx) = mpsc::channel(queue.requests.max(1));
        let metrics = Arc::new(Metrics::default());
        let thread = writer::spawn(store, rx, group, feed, Arc::clone(&metrics), runtime)?;
        let records = queue.records.clamp(1, Semaphore::MAX_PERMITS);
        let kib = usize::try_from(queue.bytes >> 10)
            .unwrap_or(usize::MAX)
            .clamp(1, Semaphore::MAX_PERMITS);
        let admission = Self {
            inner: Arc::new(Inner {
                intake,
                writer: tx,
                queue: Arc::new(Semaphore::new(records)),
                queue_records: records,
                queue_kib: Arc::new(Semaphore::new(kib)),
                queue_kib_total: kib,
                counts: std::sync::Mutex::default(),
                metrics,
            }),
        };
        Ok((admission, WriterThread(thread)))
    }

    /// The intake: its limits, and the client identities it makes.
    pub fn intake(&self) -> &Intake {
        &self.inner.intake
    }

    /// The collector's metrics (`/metrics`).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// Records waiting for the writer, and how many the queue holds at most.
    pub fn queue_depth(&self) -> (u64, u64) {
        let total = self.inner.queue_records;
        let free = self.inner.queue.available_permits().min(total);
        ((total - free) as u64, total as u64)
    }

    /// Whether the writer is there to take batches.
    pub fn is_open(&self) -> bool {
        !self.inner.writer.is_closed()
    }

    /// The queue permits a batch takes: its records (refused ones too, which wait in
    /// the queue for their quarantine rows), and their memory in KiB.
    fn permits(&self, admitted: &super::Admitted) -> (u32, u32) {
        let records = (admitted.records.len() + admitted.quarantined.len())
            .clamp(1, self.inner.queue_records);
        let kib = usize::try_from(admitted.bytes.div_ceil(1024))
            .unwrap_or(usize::MAX)
            .clamp(1, self.inner.queue_kib_total);
        (
            u32::try_from(records).unwrap_or(u32::MAX),
            u32::try_from(kib).unwrap_or(u32::MAX),
        )
    }

    /// Admits `records` from `client`: a batch over the limits is refused whole; else
    /// the pipeline runs, refused records are kept in quarantine, and the batch is
    /// queued for the writer, waiting for queue space while the writer is behind (the
    /// transport stops reading; its client buffers). The returned [`Pending`] resolves
    /// once the batch is committed.
    pub async fn submit(
        &self,
        client: &Client,
        records: Vec<Record>,
    ) -> Result<Pending, AdmitError> {
        let admitted = self.intake_batch(client, records).await?;
        let (records, kib) = self.permits(&admitted);
        let closed = |_| AdmitError::ShuttingDown;
        let share = QueueShare {
            _records: Arc::clone(&self.inner.queue)
                .acquire_many_owned(records)
                .await
                .map_err(closed)?,
            _kib: Arc::clone(&self.inner.queue_kib)
                .acquire_many_owned(kib)
                .await
                .map_err(closed)?,
        };
        self.send(admitted, share).await
    }

    /// Checks a batch's size and runs it through the intake.
    async fn intake_batch(
        &self,
        client: &Client,
        records: Vec<Record>,
    ) -> Result<super::Admitted, AdmitError> {
        if let Err(why) = self.inner.intake.check_batch(records.len()) {
            self.count(super::limit::BATCH_REFUSED, 1);
            return Err(AdmitError::TooLarge(why));
        }
        Ok(self.inner.intake.admit(client, records))
    }

    /// [`Admission::submit`] that never waits: [`AdmitError::Busy`] at once when the
    /// queue is full (an HTTP client is told to retry).
    pub fn try_submit(&self, client: &Client, records: Vec<Record>) -> Result<Pending, AdmitError> {
        if let Err(why) = self.inner.intake.check_batch(records.len()) {
            self.count(super::limit::BATCH_REFUSED, 1);
            return Err(AdmitError::TooLarge(why));
        }
        let admitted = self.inner.intake.admit(client, records);
        let (records, kib) = self.permits(&admitted);
        let take = |sem: &Arc<Semaphore>, n| match Arc::clone(sem).try_acquire_many_owned(n) {
            Ok(p) => Ok(p),
            Err(TryAcquireError::NoPermits) => Err(AdmitError::Busy),
            Err(TryAcquireError::Closed) => Err(AdmitError::ShuttingDown),
        };
        let permit = QueueShare {
            _records: take(&self.inner.queue, records)?,
            _kib: take(&self.inner.queue_kib, kib)?,
        };
        let (reply, outcome) = oneshot::channel();
        match self.inner.writer.try_send(Request::Admit {
            admitted,
            reply,
            permit,
        }) {
            Ok(()) => Ok(Pending(outcome)),
            Err(mpsc::error::TrySendError::Full(_)) => Err(AdmitError::Busy),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(AdmitError::ShuttingDown),
        }
    }

    async fn send(
        &self,
        admitted: super::Admitted,
        permit: QueueShare,
    ) -> Result<Pending, AdmitError> {
        let (reply, outcome) = oneshot::channel();
        self.inner
            .writer
            .send(Request::Admit {
                admitted,
                reply,
                permit,
            })
            .await
            .map_err(|_| AdmitError::ShuttingDown)?;
        Ok(Pending(outcome))
    }

    /// Records a client's running totals of dropped records.
    pub async fn report_drops(&self, drops: ClientDrops) -> Result<(), AdmitError> {
        self.request(Request::Drops(drops)).await
    }

    /// Keeps a forwarding destination's progress, with the next commit.
    pub async fn keep_forward_state(&self, state: ForwardState) -> Result<(), AdmitError> {
        self.request(Request::Forward(state)).await
    }

    /// Stores an audit record of the collector's own, with the next commit.
    pub async fn audit(&self, record: Record) -> Result<(), AdmitError> {
        self.request(Request::Audit(record)).await
    }

    /// Counts what a limit did outside any batch (a refused connection): kept in
    /// memory, never waiting, and stored with the next tick.
    pub fn count(&self, what: &'static str, n: u64) {
        let mut counts = self.inner.counts.lock().unwrap_or_else(|e| e.into_inner());
        match counts.iter_mut().find(|(w, _)| *w == what) {
            Some((_, total)) => *total = total.saturating_add(n),
            None => counts.push((what, n)),
        }
    }

    /// Asks the writer for its periodic upkeep (checkpoints), and stores the counts of
    /// [`Admission::count`] so far (also called once more at shutdown).
    pub(crate) async fn tick(&self) -> Result<(), AdmitError> {
        let counts =
            std::mem::take(&mut *self.inner.counts.lock().unwrap_or_else(|e| e.into_inner()));
        for (what, n) in counts {
            self.request(Request::Count(what, n)).await?;
        }
        self.request(Request::Tick).await
    }

    async fn request(&self, r: Request) -> Result<(), AdmitError> {
        self.inner
            .writer
            .send(r)
            .await
            .map_err(|_| AdmitError::ShuttingDown)
    }
}
