//! One client connection: handshake, then batches in, through admission, and
//! acknowledgements out, in the order the batches came.

use std::sync::Arc;
use std::time::Duration;

use logbook_proto::wire::{
    decode_frame, decode_frame_within, encode_frame, frame_len, Ack, ErrorCode, ErrorFrame, Frame,
    Hello, RecordReject, Reject, Welcome, HEADER_LEN, PROTOCOL_VERSION,
};
use logbook_proto::{transport, Origin, Resource};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

use super::{AnswerBudget, FrameBudget, SocketContext};
use crate::admission::{limit, AdmitError, Outcome, Pending};
use crate::log_limit::LogLimit;
use crate::store::{ClientDrops, ClientInfo};

/// How long a new connection may take to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// After an error frame, how long to keep reading (and discarding) before closing.
const LINGER: Duration = Duration::from_secs(1);
/// A client that reads none of its acknowledgements for this long is dropped, so it
/// cannot hold up a shutdown.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// A connection's frame buffer larger than this after a frame is given back, so that
/// idle connections do not each keep their largest frame's memory.
const KEEP_BUFFER: usize = 64 << 10;

/// Closing a connection on an error is logged at most this often.
static CLOSE_LOG: LogLimit = LogLimit::new(Duration::from_secs(10));

/// What the connection sends its peer, in order: a frame; a batch's answer once it is
/// committed; or a last error frame before closing.
enum Outgoing {
    Frame(Frame),
    Batch {
        seq: u64,
        outcome: Pending,
        /// The part of the frame's read budget that covers its answer, held until the
        /// answer is written, so that answers a client does not read stay bounded.
        _answer: Option<AnswerBudget>,
    },
    Fatal(ErrorFrame),
}

/// Batches read from one connection whose answers are not yet written: reading stops
/// there until the client reads its answers. High, so that it never binds before the
/// admission queue does (a layer sends many small batches under load, and each waits
/// for its commit here): what the answers hold is bounded by the read budget, each
/// holding its share of it.
const MAX_UNANSWERED: usize = 4096;

/// Who is at the other end of a connection, and what it must show to send records.
pub(super) struct Peer {
    /// Stamped on every record it sends.
    pub origin: Origin,
    /// How authentication failures name it in the trail (never anything it said).
    pub name: String,
    /// Whether its hello must carry a token that may send records, whatever the
    /// collector is configured with (a network listener), or only the shared token
    /// when one is configured (the socket, guarded by its file mode).
    pub token_required: bool,
}

/// A Unix socket client.
pub(super) async fn handle(
    stream: UnixStream,
    cx: Arc<SocketContext>,
    shutdown: watch::Receiver<bool>,
) {
    // Who is at the other end, as the kernel says: stamped on every record.
    let cred = stream.peer_cred().ok();
    let origin = Origin {
        uid: cred.map(|c| c.uid()),
        pid: cred
            .and_then(|c| c.pid())
            .and_then(|p| u32::try_from(p).ok()),
        ..Origin::new(transport::SOCKET)
    };
    let name = origin
        .uid
        .map_or_else(|| "unknown uid".to_owned(), |u| format!("uid {u}"));
    let (rd, wr) = stream.into_split();
    serve(
        rd,
        wr,
        Peer {
            origin,
            name,
            token_required: false,
        },
        cx,
        shutdown,
    )
    .await;
}

/// One client connection over any byte stream, split into its halves: the wire
/// protocol from the hello to the last acknowledgement.
pub(super) async fn serve<R, W>(
    mut rd: R,
    wr: W,
    peer: Peer,
    cx: Arc<SocketContext>,
    shutdown: watch::Receiver<bool>,
) where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send + 'static,
{
    // Each batch's records wait in the admission queue (bounded in records and bytes);
    // here only its pending answer, whose memory stays drawn from the read budget.
    let (out, out_rx) = mpsc::channel(MAX_UNANSWERED);
    let sender = tokio::spawn(write_frames(wr, out_rx));
    let failed = match read_loop(&mut rd, &cx, peer, &out, shutdown).await {
        Ok(()) => false,
        Err(error) => {
            match error.code {
                ErrorCode::Idle => {
                    debug!("Closing an idle client connection.");
                }
                // Counted, and logged once a window, by authentication.
                ErrorCode::Unauthorized => {}
                _ => {
                    if let Some(held) = CLOSE_LOG.allow() {
                        warn!(
                            code = ?error.code,
                            error = %error.message,
                            more_since_last = held,
                            "Closing a client connection."
                        );
                    }
                }
            }
            // After the answers of every batch read before the error, so the client can
            // tell which batch the error is about.
            let _ = out.send(Outgoing::Fatal(error)).await;
            true
        }
    };
    // The sender finishes once every batch read from this connection is answered.
    drop(out);
    let _ = sender.await;
    if failed {
        // Closing with unread input makes the kernel reset the connection, and the peer
        // may lose the error frame: read (and discard) until it hangs up, briefly.
        let _ = tokio::time::timeout(LINGER, async {
            let mut scratch = [0u8; 8192];
            while matches!(rd.read(&mut scratch).await, Ok(n) if n > 0) {}
        })
        .await;
    }
}

async fn write_frames<W: AsyncWrite + Unpin>(mut wr: W, mut rx: mpsc::Receiver<Outgoing>) {
    let mut buf = Vec::new();
    while let Some(msg) = rx.recv().await {
        buf.clear();
        let fatal = match msg {
            Outgoing::Frame(f) => {
                encode_frame(&f, &mut buf);
                false
            }
            Outgoing::Batch { seq, outcome, .. } => match outcome.await {
                Ok(outcome) => {
                    answer(seq, &outcome, &mut buf);
                    false
                }
                Err(e) => {
                    encode_frame(&Frame::Error(admit_error(&e)), &mut buf);
                    true
                }
            },
            Outgoing::Fatal(e) => {
                encode_frame(&Frame::Error(e), &mut buf);
                true
            }
        };
        match tokio::time::timeout(WRITE_TIMEOUT, wr.write_all(&buf)).await {
            Ok(Ok(())) if !fatal => {}
            Ok(_) => break,
            Err(_) => {
                if let Some(held) = CLOSE_LOG.allow() {
                    warn!(
                        more_since_last = held,
                        "Dropping a client that has not read its acknowledgements for 30 s."
                    );
                }
                break;
            }
        }
    }
    let _ = wr.shutdown().await;
}

/// A committed batch's answer: a reject frame for its refused records (already kept in
/// quarantine), then its acknowledgement.
fn answer(seq: u64, outcome: &Outcome, buf: &mut Vec<u8>) {
    if !outcome.refused.is_empty() {
        let records = outcome
            .refused
            .iter()
            .map(|r| RecordReject {
                index: r.index,
                id: r.id,
                reason: r.reason.to_string(),
            })
            .collect();
        encode_frame(&Frame::Reject(Reject { seq, records }), buf);
    }
    encode_frame(
        &Frame::Ack(Ack {
            seq,
            stored: outcome.stored,
            duplicates: outcome.duplicates,
        }),
        buf,
    );
}

fn admit_error(e: &AdmitError) -> ErrorFrame {
    ErrorFrame {
        code: match e {
            AdmitError::TooLarge(_) => ErrorCode::LimitExceeded,
            AdmitError::ShuttingDown
            | AdmitError::Busy
            | AdmitError::Store(_)
            | AdmitError::Full { .. } => ErrorCode::Unavailable,
        },
        message: e.to_string(),
    }
}

/// A frame read, holding its share of the read budget until it is dropped.
struct Read {
    budget: Option<FrameBudget>,
}

/// The largest hello: its service and host are 256 bytes at most, its token is a
/// secret of sensible length. A hello is read outside the read budget, so that a new
/// connection never waits behind frames other clients hold.
const MAX_HELLO_BYTES: usize = 64 << 10;

/// How long the connection waits for what.
#[derive(Clone, Copy)]
enum Wait {
    /// The hello, from the connection's start (its caller bounds the whole of it by
    /// [`HELLO_TIMEOUT`]).
    Hello,
    /// The next frame: a silent client is closed after `idle_timeout`.
    Next,
}

/// Reads one frame body into `buf`; `Ok(None)` at a clean end of stream. Waits for the
/// frame's first byte as `wait` says; the rest of the header must come within
/// `frame_timeout`; then the frame's size is taken from the global read budget
/// (waiting, without reading, while other frames hold it) and the body must come
/// within `frame_timeout` more. Memory grows with the bytes that actually arrive,
/// never with what the length prefix claims.
async fn read_frame<R: AsyncRead + Unpin>(
    rd: &mut R,
    cx: &SocketContext,
    wait: Wait,
    buf: &mut Vec<u8>,
) -> Result<Option<Read>, ErrorFrame> {
    let mut header = [0u8; HEADER_LEN];
    let first = rd.read(&mut header[..1]);
    let first = match wait {
        // The caller bounds the whole hello.
        Wait::Hello => first.await,
        Wait::Next => tokio::time::timeout(cx.limits.idle_timeout, first)
            .await
            .map_err(|_| ErrorFrame {
                code: ErrorCode::Idle,
                message: format!(
                    "no frame for {} s: closing; reconnect when there is something to send",
                    cx.limits.idle_timeout.as_secs()
                ),
            })?,
    };
    match first {
        Ok(0) => return Ok(None),
        Ok(_) => {}
        Err(e) => return Err(io_error(&e)),
    }
    let timed_out = |got: usize, of: Option<usize>| ErrorFrame {
        code: ErrorCode::ProtocolViolation,
        message: format!(
            "timed out: {got} bytes of a frame{} in {} s",
            of.map_or_else(String::new, |n| format!(" of {n}")),
            cx.limits.frame_timeout.as_secs()
        ),
    };
    tokio::time::timeout(cx.limits.frame_timeout, rd.read_exact(&mut header[1..]))
        .await
        .map_err(|_| timed_out(1, None))?
        .map_err(|e| io_error(&e))?;
    let len = frame_len(header, cx.limits.max_frame_bytes).map_err(|e| ErrorFrame {
        code: e.error_code(),
        message: e.to_string(),
    })?;
    let budget = match wait {
        Wait::Hello if len > MAX_HELLO_BYTES => {
            return Err(ErrorFrame {
                code: ErrorCode::LimitExceeded,
                message: format!(
                    "hello of {len} bytes, more than the limit of {MAX_HELLO_BYTES} bytes (service and host names are at most 256 bytes each)"
                ),
            })
        }
        Wait::Hello => None,
        Wait::Next => Some(cx.read_budget(len).await?),
    };
    // The body's time starts once its budget is there.
    buf.clear();
    let mut body = rd.take(len as u64);
    let got = match tokio::time::timeout(cx.limits.frame_timeout, body.read_to_end(buf)).await {
        Ok(got) => got.map_err(|e| io_error(&e))?,
        Err(_) => return Err(timed_out(HEADER_LEN + buf.len(), Some(len))),
    };
    if got < len {
        return Err(ErrorFrame {
            code: ErrorCode::Malformed,
            message: format!("truncated frame: connection ended after {got} of {len} bytes"),
        });
    }
    Ok(Some(Read { budget }))
}

fn io_error(e: &std::io::Error) -> ErrorFrame {
    ErrorFrame {
        code: ErrorCode::Malformed,
        message: format!("reading frame: {e}"),
    }
}

async fn handshake<R: AsyncRead + Unpin>(
    rd: &mut R,
    cx: &SocketContext,
    peer: Peer,
    buf: &mut Vec<u8>,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<Option<ClientInfo>, ErrorFrame> {
    // The whole hello within its time, however slowly its bytes come.
    let hello = tokio::time::timeout(HELLO_TIMEOUT, read_frame(rd, cx, Wait::Hello, buf));
    let read = tokio::select! {
        biased;
        _ = shutdown.changed() => return Ok(None),
        r = hello => r.map_err(|_| ErrorFrame {
            code: ErrorCode::ProtocolViolation,
            message: format!("no complete hello within {} s", HELLO_TIMEOUT.as_secs()),
        })??,
    };
    if read.is_none() {
        return Ok(None);
    }
    let hello: Hello = match decode_frame(buf, &Arc::new(Resource::default())) {
        Ok(Frame::Hello(h)) => h,
        Ok(other) => {
            return Err(ErrorFrame {
                code: ErrorCode::ProtocolViolation,
                message: format!("expected a hello, got a {:?} frame", other.frame_type()),
            })
        }
        Err(e) => {
            return Err(ErrorFrame {
                code: e.error_code(),
                message: e.to_string(),
            })
        }
    };
    let mut origin = peer.origin;
    let allowed = if peer.token_required {
        match cx.auth.authenticate(hello.token.as_deref(), false) {
            Some(caller) if caller.may_ingest() => {
                origin.token = Some(caller.name);
                true
            }
            _ => false,
        }
    } else {
        cx.auth.check(hello.token.as_deref())
    };
    if !allowed {
        // Nothing the client said reaches the trail: only the peer as the collector
        // saw it (its uid, as the kernel says; its address).
        cx.auth.failed(&peer.name).await;
        return Err(ErrorFrame {
            code: ErrorCode::Unauthorized,
            message: "missing or wrong token".into(),
        });
    }
    let resource = Resource {
        service: hello.service,
        host: hello.host,
        pid: hello.pid,
    };
    match cx
        .admission
        .intake()
        .client(hello.instance, resource, origin)
    {
        Ok(client) => Ok(Some(client)),
        Err(why) => {
            cx.admission.count(limit::IDENTITY_REFUSED, 1);
            Err(ErrorFrame {
                code: ErrorCode::LimitExceeded,
                message: why,
            })
        }
    }
}

async fn read_loop<R: AsyncRead + Unpin>(
    rd: &mut R,
    cx: &SocketContext,
    peer: Peer,
    out: &mpsc::Sender<Outgoing>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ErrorFrame> {
    let mut buf = Vec::new();
    let Some(client) = handshake(rd, cx, peer, &mut buf, &mut shutdown).await? else {
        return Ok(());
    };
    debug!(service = %client.resource.service, pid = client.resource.pid, "Client connected.");
    let _ = out
        .send(Outgoing::Frame(Frame::Welcome(Welcome {
            version: PROTOCOL_VERSION,
            max_frame_bytes: cx.limits.max_frame_bytes,
            server: concat!("logbook ", env!("CARGO_PKG_VERSION")).into(),
        })))
        .await;
    loop {
        if buf.capacity() > KEEP_BUFFER {
            buf = Vec::new();
        }
        let read = tokio::select! {
            biased;
            _ = shutdown.changed() => return Ok(()),
            r = read_frame(rd, cx, Wait::Next, &mut buf) => r?,
        };
        // The frame's budget is held until its batch is queued for the writer (or
        // the frame is done with); the part that covers its answer, until that is
        // written.
        let Some(Read { mut budget }) = read else {
            return Ok(());
        };
        let decoded = budget.as_ref().map_or(usize::MAX, |b| b.decoded);
        match decode_frame_within(&buf, &client.resource, decoded) {
            Ok(Frame::Batch(batch)) => {
                let answer = budget.as_mut().and_then(|b| b.answer(batch.records.len()));
                // Waits while the writer is behind: this connection stops reading and
                // its client buffers.
                let outcome = cx
                    .admission
                    .submit(&client, batch.records)
                    .await
                    .map_err(|e| admit_error(&e))?;
                drop(budget);
                // The sender is gone (the client read none of its answers): stop
                // reading what it sends; its batches are committed, not answered.
                if out
                    .send(Outgoing::Batch {
                        seq: batch.seq,
                        outcome,
                        _answer: answer,
                    })
                    .await
                    .is_err()
                {
                    return Ok(());
                }
            }
            Ok(Frame::Gap(gap)) => {
                let drops = ClientDrops {
                    client: client.clone(),
                    dropped: gap.dropped,
                };
                cx.admission
                    .report_drops(drops)
                    .await
                    .map_err(|e| admit_error(&e))?;
            }
            Ok(other) => {
                return Err(ErrorFrame {
                    code: ErrorCode::ProtocolViolation,
                    message: format!("unexpected {:?} frame from a client", other.frame_type()),
                })
            }
            Err(e) => {
                return Err(ErrorFrame {
                    code: e.error_code(),
                    message: e.to_string(),
                })
            }
        }
    }
}
