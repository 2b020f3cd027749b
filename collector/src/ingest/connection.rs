//! One client connection: handshake, then batches in, through admission, and
//! acknowledgements out, in the order the batches came.

use std::sync::Arc;
use std::time::Duration;

use logbook_proto::wire::{
    decode_frame, encode_frame, frame_len, Ack, ErrorCode, ErrorFrame, Frame, Hello, RecordReject,
    Reject, Welcome, HEADER_LEN, PROTOCOL_VERSION,
};
use logbook_proto::{Resource, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

use super::SocketContext;
use crate::admission::{AdmitError, Outcome, Pending};
use crate::store::{ClientDrops, ClientInfo};

/// How long a new connection may take to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// After an error frame, how long to keep reading (and discarding) before closing.
const LINGER: Duration = Duration::from_secs(1);
/// A client that reads none of its acknowledgements for this long is dropped, so it
/// cannot hold up a shutdown.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// What the connection sends its peer, in order: a frame; a batch's answer once it is
/// committed; or a last error frame before closing.
enum Outgoing {
    Frame(Frame),
    Batch { seq: u64, outcome: Pending },
    Fatal(ErrorFrame),
}

pub(super) async fn handle(
    stream: UnixStream,
    cx: Arc<SocketContext>,
    shutdown: watch::Receiver<bool>,
) {
    let (mut rd, wr) = stream.into_split();
    // Unbounded in messages, bounded in what they hold: each batch's records wait in
    // the admission queue (bounded in records), only its pending outcome here.
    let (out, out_rx) = mpsc::unbounded_channel();
    let sender = tokio::spawn(write_frames(wr, out_rx));
    let failed = match read_loop(&mut rd, &cx, &out, shutdown).await {
        Ok(()) => false,
        Err(error) => {
            warn!(code = ?error.code, error = %error.message, "Closing a client connection.");
            // After the answers of every batch read before the error, so the client can
            // tell which batch the error is about.
            let _ = out.send(Outgoing::Fatal(error));
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

async fn write_frames(mut wr: OwnedWriteHalf, mut rx: mpsc::UnboundedReceiver<Outgoing>) {
    let mut buf = Vec::new();
    while let Some(msg) = rx.recv().await {
        buf.clear();
        let fatal = match msg {
            Outgoing::Frame(f) => {
                encode_frame(&f, &mut buf);
                false
            }
            Outgoing::Batch { seq, outcome } => match outcome.await {
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
                warn!("Dropping a client that has not read its acknowledgements for 30 s.");
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
        code: ErrorCode::Unavailable,
        message: e.to_string(),
    }
}

/// Reads one frame body; `Ok(None)` at a clean end of stream. Memory grows with the
/// bytes that actually arrive, never with what the length prefix claims.
async fn read_frame(
    rd: &mut OwnedReadHalf,
    max: u32,
    buf: &mut Vec<u8>,
) -> Result<Option<()>, ErrorFrame> {
    let mut header = [0u8; HEADER_LEN];
    match rd.read(&mut header[..1]).await {
        Ok(0) => return Ok(None),
        Ok(_) => {}
        Err(e) => return Err(io_error(&e)),
    }
    rd.read_exact(&mut header[1..])
        .await
        .map_err(|e| io_error(&e))?;
    let len = frame_len(header, max).map_err(|e| ErrorFrame {
        code: e.error_code(),
        message: e.to_string(),
    })?;
    buf.clear();
    let got = rd
        .take(len as u64)
        .read_to_end(buf)
        .await
        .map_err(|e| io_error(&e))?;
    if got < len {
        return Err(ErrorFrame {
            code: ErrorCode::Malformed,
            message: format!("truncated frame: connection ended after {got} of {len} bytes"),
        });
    }
    Ok(Some(()))
}

fn io_error(e: &std::io::Error) -> ErrorFrame {
    ErrorFrame {
        code: ErrorCode::Malformed,
        message: format!("reading frame: {e}"),
    }
}

async fn handshake(
    rd: &mut OwnedReadHalf,
    cx: &SocketContext,
    buf: &mut Vec<u8>,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<Option<Hello>, ErrorFrame> {
    let read = tokio::select! {
        biased;
        _ = shutdown.changed() => return Ok(None),
        r = tokio::time::timeout(HELLO_TIMEOUT, read_frame(rd, cx.max_frame_bytes, buf)) => r,
    };
    let read = read.map_err(|_| ErrorFrame {
        code: ErrorCode::ProtocolViolation,
        message: "no hello within 10 s".into(),
    })?;
    if read?.is_none() {
        return Ok(None);
    }
    let hello = match decode_frame(buf, &Arc::new(Resource::default())) {
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
    if let Some(token) = &cx.token {
        if !hello
            .token
            .as_deref()
            .is_some_and(|t| constant_time_eq(t.as_bytes(), token.expose().as_bytes()))
        {
            let audit = crate::audit::admin_record(
                "auth_failure",
                format!(
                    "A client ({} on {}, pid {}) presented a missing or wrong token.",
                    hello.service, hello.host, hello.pid
                ),
                vec![
                    ("client.service", Value::Str(hello.service.clone())),
                    ("client.host", Value::Str(hello.host.clone())),
                    ("client.pid", Value::I64(i64::from(hello.pid))),
                ],
            );
            let _ = cx.admission.audit(audit).await;
            return Err(ErrorFrame {
                code: ErrorCode::Unauthorized,
                message: "missing or wrong token".into(),
            });
        }
    }
    Ok(Some(hello))
}

async fn read_loop(
    rd: &mut OwnedReadHalf,
    cx: &SocketContext,
    out: &mpsc::UnboundedSender<Outgoing>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ErrorFrame> {
    let mut buf = Vec::new();
    let Some(hello) = handshake(rd, cx, &mut buf, &mut shutdown).await? else {
        return Ok(());
    };
    let client = ClientInfo {
        instance: hello.instance,
        resource: Arc::new(Resource {
            service: hello.service,
            host: hello.host,
            pid: hello.pid,
        }),
    };
    debug!(service = %client.resource.service, pid = client.resource.pid, "Client connected.");
    let _ = out.send(Outgoing::Frame(Frame::Welcome(Welcome {
        version: PROTOCOL_VERSION,
        max_frame_bytes: cx.max_frame_bytes,
        server: concat!("logbook ", env!("CARGO_PKG_VERSION")).into(),
    })));
    loop {
        let read = tokio::select! {
            biased;
            _ = shutdown.changed() => return Ok(()),
            r = read_frame(rd, cx.max_frame_bytes, &mut buf) => r?,
        };
        if read.is_none() {
            return Ok(());
        }
        match decode_frame(&buf, &client.resource) {
            Ok(Frame::Batch(batch)) => {
                // Waits while the writer is behind: this connection stops reading and
                // its client buffers.
                let outcome = cx
                    .admission
                    .submit(&client, batch.records)
                    .await
                    .map_err(|e| admit_error(&e))?;
                let _ = out.send(Outgoing::Batch {
                    seq: batch.seq,
                    outcome,
                });
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

/// Compares secrets in time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
