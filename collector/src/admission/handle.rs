//! The collector's handle on admission: the intake, a queue bounded in records in front
//! of the writer thread, and the way back of each batch's outcome.

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
use crate::store::{ClientDrops, StoreWriter};

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
}

/// How much may wait for the writer.
#[derive(Clone, Copy, Debug)]
pub struct QueueLimits {
    /// Records received but not yet committed, at most; a larger batch takes all of it.
    pub records: usize,
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
        let thread = writer::spawn(store, rx, group, feed, runtime)?;
        let records = queue.records.clamp(1, Semaphore::MAX_PERMITS);
        let admission = Self {
            inner: Arc::new(Inner {
                intake,
                writer: tx,
                queue: Arc::new(Semaphore::new(records)),
                queue_records: records,
            }),
        };
        Ok((admission, WriterThread(thread)))
    }

    fn permits(&self, records: usize) -> u32 {
        u32::try_from(records.clamp(1, self.inner.queue_records)).unwrap_or(u32::MAX)
    }

    /// Admits `records` from `client`: the pipeline runs, refused records are kept in
    /// quarantine, and the batch is queued for the writer, waiting for queue space
    /// while the writer is behind (the transport stops reading; its client buffers).
    /// The returned [`Pending`] resolves once the batch is committed.
    pub async fn submit(
        &self,
        client: &Client,
        records: Vec<Record>,
    ) -> Result<Pending, AdmitError> {
        let admitted = self.inner.intake.admit(client, records);
        let permit = Arc::clone(&self.inner.queue)
            .acquire_many_owned(self.permits(admitted.records.len()))
            .await
            .map_err(|_| AdmitError::ShuttingDown)?;
        self.send(admitted, permit).await
    }

    /// [`Admission::submit`] that never waits: [`AdmitError::Busy`] at once when the
    /// queue is full (an HTTP client is told to retry).
    pub fn try_submit(&self, client: &Client, records: Vec<Record>) -> Result<Pending, AdmitError> {
        let admitted = self.inner.intake.admit(client, records);
        let permit = match Arc::clone(&self.inner.queue)
            .try_acquire_many_owned(self.permits(admitted.records.len()))
        {
            Ok(p) => p,
            Err(TryAcquireError::NoPermits) => return Err(AdmitError::Busy),
            Err(TryAcquireError::Closed) => return Err(AdmitError::ShuttingDown),
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
        permit: OwnedSemaphorePermit,
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

    /// Stores an audit record of the collector's own, with the next commit.
    pub async fn audit(&self, record: Record) -> Result<(), AdmitError> {
        self.request(Request::Audit(record)).await
    }

    /// Asks the writer for its periodic upkeep (checkpoints).
    pub(crate) async fn tick(&self) -> Result<(), AdmitError> {
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
