//! `GET /api/v1/stream`: live tail as server-sent events, with the records filters.
//! Fed by the post-commit feed through a `Follower`, which reads the store from its
//! cursor whenever it missed something (it lagged, or another writer committed), so
//! what a stream sends has no gap and no duplicate. Each record event's `id` is the
//! stream cursor just after it: a client that reconnects with `Last-Event-ID` (or
//! `after=`) resumes exactly there. The first event, `ready`, carries the starting
//! cursor, so a reconnect before any record still resumes without a gap.
//!
//! Memory per stream is bounded: events go through a channel of [`QUEUE`] events; a
//! client that does not read for [`STALL`] is sent a final `end` event saying so and
//! closed (it resumes from its last id). A comment every [`HEARTBEAT`] keeps proxies
//! from closing an idle stream. When the collector stops, every stream gets a final
//! `end` event (`shutdown`) and closes.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};

use super::params::RecordQuery;
use super::records::record_filter;
use super::{Access, ApiError, Params};
use crate::http::HttpContext;
use crate::store::StreamCursor;

/// Events waiting for a client, at most.
const QUEUE: usize = 64;
/// How long a client may leave events unread before it is closed.
const STALL: Duration = Duration::from_secs(30);
/// How often an idle stream sends a comment.
const HEARTBEAT: Duration = Duration::from_secs(15);
/// Records read from the store at once.
const PAGE: usize = 500;

/// Live records as server-sent events.
#[utoipa::path(get, path = "/api/v1/stream", tag = "records",
    params(("Last-Event-ID" = Option<String>, Header, nullable = false, pattern = "^(|[0-9]{1,18})$", description = "resume after this event id"), ("after" = Option<String>, Query, pattern = "^(|[0-9]{1,18})$", description = "resume after this cursor (as Last-Event-ID)"), RecordQuery),
    responses((status = 200, description = "events: ready (the start cursor), record (id = cursor, data = record JSON), end (reason: shutdown, stalled)", content_type = "text/event-stream", body = SseEvent),
        (status = 400, body = super::ErrorBody), (status = 503, body = super::ErrorBody),
        (status = 401, body = super::ErrorBody), (status = 403, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn stream(
    State(cx): State<Arc<HttpContext>>,
    access: Access,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let mut params = Params::parse(query.as_deref());
    let filter = record_filter(&mut params)?;
    let after: Option<StreamCursor> = params.parse_value("after")?;
    params.finish(&["after", "…the filters of logbook query"])?;
    let resume = match headers.get("last-event-id") {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.parse::<StreamCursor>().ok())
                .ok_or_else(|| {
                    ApiError::bad_request("Last-Event-ID: not an event id of this stream")
                })?,
        ),
        None => after,
    };
    let permit = Arc::clone(&cx.streams).try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "too many live streams are open; try again later",
        )
    })?;
    let reader = Arc::clone(&access.reader);
    let start = match resume {
        Some(c) => c,
        None => super::blocking(move || reader.stream_end()).await?,
    };
    let mut follower = cx.feed.follow(access.reader, start);
    let (tx, rx) = mpsc::channel::<Bytes>(QUEUE);
    let (end_tx, end_rx) = oneshot::channel::<Bytes>();
    let mut stop = cx.shutdown.clone();
    tokio::spawn(async move {
        let _permit: OwnedSemaphorePermit = permit;
        let ready =
            format!("retry: 1000\nid: {start}\nevent: ready\ndata: {{\"cursor\":\"{start}\"}}\n\n");
        if tx.send(Bytes::from(ready)).await.is_err() {
            return;
        }
        let end = |reason: &str, message: &str| {
            Bytes::from(format!(
                "event: end\ndata: {}\n\n",
                serde_json::json!({"reason": reason, "message": message})
            ))
        };
        const SHUTDOWN: &str = "the collector is stopping; reconnect with Last-Event-ID to resume";
        const STALLED: &str =
            "the client fell too far behind; reconnect with Last-Event-ID to resume";
        loop {
            // The read in progress is kept across heartbeats: dropping it would throw
            // its work away.
            let next = follower.next(&filter, PAGE);
            tokio::pin!(next);
            let next = loop {
                tokio::select! {
                    page = &mut next => break page,
                    () = tokio::time::sleep(HEARTBEAT) => {
                        if send(&tx, Bytes::from_static(b": heartbeat\n\n"), &mut stop).await.is_err() {
                            let _ = end_tx.send(end(if *stop.borrow() { "shutdown" } else { "stalled" }, STALLED));
                            return;
                        }
                    }
                    () = stopping(&mut stop) => {
                        let _ = end_tx.send(end("shutdown", SHUTDOWN));
                        return;
                    }
                }
            };
            let page = match next {
                Ok(Some(page)) => page,
                Ok(None) => {
                    let _ = end_tx.send(end("shutdown", SHUTDOWN));
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "A live stream could not read the store.");
                    let _ = end_tx.send(end(
                        "error",
                        "reading the store failed; reconnect with Last-Event-ID to resume",
                    ));
                    return;
                }
            };
            for item in page.items {
                let data = serde_json::to_string(&item.record).unwrap_or_default();
                let event = format!("id: {}\nevent: record\ndata: {data}\n\n", item.cursor);
                match send(&tx, Bytes::from(event), &mut stop).await {
                    Ok(()) => {}
                    Err(Gone) if tx.is_closed() => return,
                    Err(Gone) if *stop.borrow() => {
                        let _ = end_tx.send(end("shutdown", SHUTDOWN));
                        return;
                    }
                    Err(Gone) => {
                        let _ = end_tx.send(end("stalled", STALLED));
                        return;
                    }
                }
            }
        }
    });
    let mut response = Body::from_stream(Events {
        rx,
        end: Some(end_rx),
        done: false,
    })
    .into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// One server-sent event, as a client's parser gives it.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(super) struct SseEvent {
    /// `ready`, `record` or `end`.
    event: Option<String>,
    /// The stream cursor after it (`ready`, `record`).
    id: Option<String>,
    /// JSON: `{"cursor"}` (ready), the record (record), `{"reason", "message"}` (end).
    data: String,
    /// How long a client waits before reconnecting, in milliseconds.
    retry: Option<u64>,
}

struct Gone;

/// Resolves once the collector is stopping.
async fn stopping(stop: &mut tokio::sync::watch::Receiver<bool>) {
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

/// Sends an event, waiting at most [`STALL`] for room, and not past the collector's
/// stop.
async fn send(
    tx: &mpsc::Sender<Bytes>,
    event: Bytes,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> Result<(), Gone> {
    tokio::select! {
        sent = tokio::time::timeout(STALL, tx.send(event)) => match sent {
            Ok(Ok(())) => Ok(()),
            _ => Err(Gone),
        },
        () = stopping(stop) => Err(Gone),
    }
}

/// The response body: the events, or, once the stream ends, its final event (events
/// still queued then are dropped: the client resumes after the last one it got).
struct Events {
    rx: mpsc::Receiver<Bytes>,
    end: Option<oneshot::Receiver<Bytes>>,
    done: bool,
}

impl futures_core::Stream for Events {
    type Item = Result<Bytes, std::convert::Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if let Some(end) = self.end.as_mut() {
            match Pin::new(end).poll(cx) {
                Poll::Ready(Ok(last)) => {
                    self.done = true;
                    return Poll::Ready(Some(Ok(last)));
                }
                Poll::Ready(Err(_)) => self.end = None,
                Poll::Pending => {}
            }
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(b)) => Poll::Ready(Some(Ok(b))),
            // The sender is gone: its final event, if any, comes through `end`.
            Poll::Ready(None) if self.end.is_some() => Poll::Pending,
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}
