//! Ingest transports: they decode what clients send and hand it to admission
//! (`crate::admission`). The wire protocol of `proto/PROTOCOL.md` on the Unix socket
//! and on TCP with TLS (`tls`; a listener each, one task per connection, one
//! connection handler for both), and OTLP's messages as records (`otlp`, served over HTTP by
//! `crate::http`). Composed with the rest of the collector in `crate::serve`.

mod connection;
pub mod otlp;
mod socket;
mod tls;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use logbook_proto::wire::{encode_frame, ErrorCode, ErrorFrame, Frame};
use tokio::net::UnixListener;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::admission::auth::Authenticator;
use crate::admission::{limit, Admission};
use crate::log_limit::LogLimit;

pub use tls::TlsListener;

/// What bounds the socket's connections.
#[derive(Clone, Copy, Debug)]
pub struct SocketLimits {
    /// Largest frame accepted from a client.
    pub max_frame_bytes: u32,
    /// Most connections at once; more are refused with an error frame.
    pub max_connections: usize,
    /// A client silent this long after its hello is closed.
    pub idle_timeout: Duration,
    /// Longest time to receive one frame once its first byte came.
    pub frame_timeout: Duration,
    /// Most bytes of frames being read, or decoded and waiting for the admission
    /// queue, over all connections.
    pub read_budget_bytes: u64,
}

/// What every socket connection shares.
pub struct SocketContext {
    /// The way into the store.
    pub admission: Admission,
    /// The token check, and the count of failures.
    pub auth: Arc<Authenticator>,
    /// Its bounds.
    pub limits: SocketLimits,
    /// The read budget, in KiB: the part any frame may draw on …
    read_budget: Arc<Semaphore>,
    read_budget_kib: u32,
    /// … and the part kept for small frames, so that frames of ordinary size (a
    /// layer's batches are a few hundred KiB) are read while large ones, or clients
    /// stalled half-way through them, hold the rest.
    reserve: Arc<Semaphore>,
    reserve_kib: u32,
}

/// Frames up to this size may draw on the reserved part of the read budget (a layer's
/// batches close at 256 KiB).
pub const SMALL_FRAME: usize = 512 << 10;
/// The reserved part: this fraction of the read budget.
const RESERVE_DIVISOR: u64 = 4;

impl SocketContext {
    /// The context of connections admitted through `admission`, checked by `auth`,
    /// within `limits`.
    pub fn new(admission: Admission, auth: Arc<Authenticator>, limits: SocketLimits) -> Self {
        let kib = |bytes: u64| {
            u32::try_from(bytes >> 10)
                .unwrap_or(u32::MAX)
                .clamp(1, u32::try_from(Semaphore::MAX_PERMITS).unwrap_or(u32::MAX))
        };
        let reserve = kib(limits.read_budget_bytes / RESERVE_DIVISOR);
        let main = kib(limits.read_budget_bytes - limits.read_budget_bytes / RESERVE_DIVISOR);
        Self {
            admission,
            auth,
            limits,
            read_budget: Arc::new(Semaphore::new(main as usize)),
            read_budget_kib: main,
            reserve: Arc::new(Semaphore::new(reserve as usize)),
            reserve_kib: reserve,
        }
    }

    /// A frame of `len` bytes' share of the read budget, waiting while other frames
    /// hold it: its bytes, and the memory its records may take once decoded (up to
    /// [`DECODED_PER_BYTE`] times its size, less for a frame so large that this
    /// would pass the budget). A small frame takes from the reserve when the rest is
    /// held.
    async fn read_budget(&self, len: usize) -> Result<FrameBudget, ErrorFrame> {
        let want = len
            .saturating_mul(1 + DECODED_PER_BYTE)
            .saturating_add(DECODED_EXTRA);
        let kib = |bytes: usize| u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX);
        let main = Arc::clone(&self.read_budget);
        let (permit, of) = if len <= SMALL_FRAME {
            let k = kib(want).min(self.read_budget_kib);
            match main.try_acquire_many_owned(k) {
                Ok(p) => (Ok(p), k),
                Err(_) => {
                    let k = kib(want).min(self.reserve_kib);
                    let p = Arc::clone(&self.reserve).acquire_many_owned(k).await;
                    (p, k)
                }
            }
        } else {
            let k = kib(want).min(self.read_budget_kib);
            (main.acquire_many_owned(k).await, k)
        };
        let permit = permit.map_err(|_| ErrorFrame {
            code: ErrorCode::Unavailable,
            message: "collector is shutting down".into(),
        })?;
        let held = usize::try_from(of)
            .unwrap_or(usize::MAX)
            .saturating_mul(1024);
        Ok(FrameBudget {
            permit,
            // At least as much as the frame itself, for a frame larger than the budget.
            decoded: held.saturating_sub(len).max(len),
        })
    }
}

/// A frame's share of the read budget, held until its records are queued.
pub struct FrameBudget {
    permit: OwnedSemaphorePermit,
    /// The memory its records may take once decoded.
    pub decoded: usize,
}

impl FrameBudget {
    /// The part that covers the answer to a batch of `records` (a reject entry for
    /// each, at most), split off to be held until the answer is written.
    pub fn answer(&mut self, records: usize) -> Option<AnswerBudget> {
        let kib = records.saturating_mul(ANSWER_PER_RECORD).div_ceil(1024);
        let kib = kib.min(self.permit.num_permits().saturating_sub(1));
        self.permit
            .split(kib)
            .map(|permit| AnswerBudget { _permit: permit })
    }
}

/// What the answer to one record may take in memory: a reject entry with its reason.
const ANSWER_PER_RECORD: usize = 192;

/// The part of a frame's read budget that covers its answer.
pub struct AnswerBudget {
    _permit: OwnedSemaphorePermit,
}

/// A frame's records may take this many bytes of memory per byte of the frame once
/// decoded (records of small fields take several times their encoded size: a layer's
/// records about four to eight, one of only short boolean fields about eighteen), plus
/// [`DECODED_EXTRA`]; a frame that would take more is refused (`LimitExceeded`), and
/// its client told to send smaller batches.
pub const DECODED_PER_BYTE: usize = 16;
/// See [`DECODED_PER_BYTE`].
pub const DECODED_EXTRA: usize = 64 << 10;

/// Accept failures (out of file descriptors) are logged at most this often.
static ACCEPT_LOG: LogLimit = LogLimit::new(Duration::from_secs(10));
/// After a failed accept, the listener waits this long, doubling up to
/// [`ACCEPT_BACKOFF_MAX`] while accepts keep failing.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The bound Unix socket.
pub struct SocketListener {
    listener: UnixListener,
    path: PathBuf,
    inode: u64,
}

impl SocketListener {
    /// Binds `path` with permissions `mode`: a stale socket file is replaced, a live one
    /// (another collector) or any other file refused.
    pub fn bind(path: &Path, mode: u32) -> anyhow::Result<Self> {
        let (listener, inode) = socket::bind(path, mode)?;
        Ok(Self {
            listener,
            path: path.to_owned(),
            inode,
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accepts connections until `shutdown` turns true; then stops accepting, removes
    /// the socket file, and waits until every connection has been answered for what
    /// it sent (each stops reading, and its batches are committed and acknowledged).
    pub async fn run(self, cx: Arc<SocketContext>, shutdown: watch::Receiver<bool>) {
        let mut connections = accept_until(&self, &cx, shutdown).await;
        info!(
            connections = connections.len(),
            "Socket closed: answering what its connections sent."
        );
        drop(self.listener);
        socket::remove_if_ours(&self.path, self.inode);
        while connections.join_next().await.is_some() {}
    }
}

impl Accept for SocketListener {
    type Stream = tokio::net::UnixStream;

    async fn accept(&self) -> std::io::Result<Self::Stream> {
        self.listener.accept().await.map(|(stream, _)| stream)
    }

    fn refuse(&self, stream: Self::Stream, max: usize) {
        refuse(&stream, max);
    }

    fn handle(
        &self,
        stream: Self::Stream,
        cx: Arc<SocketContext>,
        shutdown: watch::Receiver<bool>,
    ) -> impl Future<Output = ()> + Send + 'static {
        connection::handle(stream, cx, shutdown)
    }
}

/// A listener of the wire protocol: the Unix socket, or TCP with TLS.
trait Accept: Sync {
    /// A connection accepted.
    type Stream: Send;
    /// The next connection.
    fn accept(&self) -> impl Future<Output = std::io::Result<Self::Stream>> + Send;
    /// Closes a connection over the cap, telling it why when it can.
    fn refuse(&self, stream: Self::Stream, max: usize);
    /// Serves one connection to its end.
    fn handle(
        &self,
        stream: Self::Stream,
        cx: Arc<SocketContext>,
        shutdown: watch::Receiver<bool>,
    ) -> impl Future<Output = ()> + Send + 'static;
}

/// Accepts connections of `listener`, each served in a task of its own, until
/// `shutdown` turns true; returns the connections still being served. Over
/// `max_connections`, connections are refused; a failed accept (out of file
/// descriptors) is retried later, later still while it lasts.
async fn accept_until<L: Accept>(
    listener: &L,
    cx: &Arc<SocketContext>,
    mut shutdown: watch::Receiver<bool>,
) -> JoinSet<()> {
    let mut connections = JoinSet::new();
    let mut backoff = ACCEPT_BACKOFF;
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok(stream) => {
                    backoff = ACCEPT_BACKOFF;
                    if connections.len() >= cx.limits.max_connections {
                        listener.refuse(stream, cx.limits.max_connections);
                        cx.admission.count(limit::CONNECTION_REFUSED, 1);
                        continue;
                    }
                    connections.spawn(listener.handle(stream, Arc::clone(cx), shutdown.clone()));
                }
                Err(error) => {
                    // E.g. out of file descriptors: keep serving the connections we
                    // have, and try again later, later still while it lasts.
                    if let Some(held) = ACCEPT_LOG.allow() {
                        warn!(%error, failed_since_last = held, "Failed to accept a connection.");
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections
}

/// Tells a connection over the cap why it is closed, without waiting for it: the frame
/// fits in a new socket's buffer, or is lost with the connection.
fn refuse(stream: &tokio::net::UnixStream, max: usize) {
    let mut bytes = Vec::new();
    encode_frame(
        &Frame::Error(ErrorFrame {
            code: ErrorCode::Unavailable,
            message: format!("too many connections (at most {max}): retry later"),
        }),
        &mut bytes,
    );
    let _ = stream.try_write(&bytes);
}
