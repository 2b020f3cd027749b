//! `records`, `records/{id}` and `export`: the filters of `logbook query` as query
//! parameters (`since`, `until`, `level`, `run`, `trace`, `tenant`, `project`, `app`,
//! `user`, `kind`, `category`, `name`, `target`, `text`, `field=KEY=VALUE` repeated).

use std::io::{self, Write};

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use logbook_proto::{Record, RecordId, Timestamp, Value};
use serde::Serialize;
use tokio::sync::mpsc;

use super::params::{PageQuery, RecordQuery};
use super::{blocking, json, Access, ApiError, Params};
use crate::audit::admin_record;
use crate::cli::args::Format;
use crate::cli::output::for_format;
use crate::http::HttpContext;
use crate::query::{Cursor, Page, RecordFilter};
use std::sync::Arc;

/// A page of records, newest first.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct RecordPage {
    /// Records in the record contract's JSON form (proto/PROTOCOL.md), newest first.
    #[schema(value_type = Vec<Object>)]
    pub(super) records: Vec<Record>,
    /// Pass as `before` for the next page; absent on the last page.
    pub(super) next: Option<String>,
}

/// The record filters of a query string (the rest of `params` is left in it).
pub(crate) fn record_filter(params: &mut Params) -> Result<RecordFilter, ApiError> {
    let mut pairs = Vec::new();
    let mut rest = Vec::new();
    for (k, v) in std::mem::take(&mut params.0) {
        if RecordFilter::KEYS.contains(&k.as_str()) {
            pairs.push((k, v));
        } else {
            rest.push((k, v));
        }
    }
    params.0 = rest;
    RecordFilter::parse(
        pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        Timestamp::now(),
    )
    .map_err(|e| ApiError::bad_request(e.to_string()))
}

/// Known parameters of `records`.
const LIST_KEYS: &[&str] = &["limit", "before", "…the filters of logbook query"];

/// Records matching the filters, newest first.
#[utoipa::path(get, path = "/api/v1/records", tag = "records",
    params(RecordQuery, PageQuery),
    responses((status = 200, body = RecordPage), (status = 400, body = super::ErrorBody),
        (status = 401, body = super::ErrorBody), (status = 403, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn list(access: Access, RawQuery(query): RawQuery) -> Result<Response, ApiError> {
    let mut params = Params::parse(query.as_deref());
    let filter = record_filter(&mut params)?;
    let limit = params.limit()?;
    let before: Option<Cursor> = params.parse_value("before")?;
    params.finish(LIST_KEYS)?;
    let reader = access.reader;
    let records = blocking(move || reader.query(&filter, &Page { limit, before })).await?;
    let next = (records.len() == limit)
        .then(|| {
            records.last().map(|r| {
                Cursor {
                    ts: r.ts,
                    seq: r.seq,
                }
                .to_string()
            })
        })
        .flatten();
    Ok(json(&RecordPage { records, next }))
}

/// One record by its id (32 hex digits).
#[utoipa::path(get, path = "/api/v1/records/{id}", tag = "records",
    params(("id" = String, Path, pattern = "^(|[0-9a-f]{31}[1-9a-f])$", description = "record id, 32 hex digits")),
    responses((status = 200, description = "the record (record contract JSON)", body = Object),
        (status = 404, body = super::ErrorBody),
        (status = 400, body = super::ErrorBody), (status = 401, body = super::ErrorBody), (status = 403, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn one(access: Access, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id: RecordId = id.parse().map_err(|_| {
        ApiError::bad_request(format!("invalid record id {id:?}: expected 32 hex digits"))
    })?;
    let reader = access.reader;
    match blocking(move || reader.get(id)).await? {
        Some(r) => Ok(json(&r)),
        None => Err(ApiError::not_found(format!("no record {id}"))),
    }
}

/// Chunks an export hands to the response at once, at most.
const EXPORT_CHUNKS: usize = 4;
/// Bytes gathered before a chunk is handed on.
const EXPORT_CHUNK_BYTES: usize = 64 << 10;

/// Every record matching the filters, oldest first, as JSON Lines, CSV or text,
/// streamed in constant memory. Audited (who, how many, which filter).
#[utoipa::path(get, path = "/api/v1/export", tag = "records",
    params(("format" = Option<String>, Query, pattern = "^(|(jsonl|csv|text))$", description = "jsonl (default), csv, text"), RecordQuery),
    responses((status = 200, description = "the records, streamed, oldest first", content(
            (String = "application/x-ndjson"), (String = "text/csv; charset=utf-8"), (String = "text/plain; charset=utf-8"))),
        (status = 400, body = super::ErrorBody),
        (status = 401, body = super::ErrorBody), (status = 403, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn export(
    State(cx): State<Arc<HttpContext>>,
    access: Access,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let mut params = Params::parse(query.as_deref());
    let filter = record_filter(&mut params)?;
    let (format, content_type, ext) = match params.take("format")?.as_deref() {
        None | Some("jsonl") => (Format::Jsonl, "application/x-ndjson", "jsonl"),
        Some("csv") => (Format::Csv, "text/csv; charset=utf-8", "csv"),
        Some("text") => (Format::Text, "text/plain; charset=utf-8", "log"),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "format: {other:?} is not one of jsonl, csv, text"
            )))
        }
    };
    params.finish(&["format", "…the filters of logbook query"])?;
    let permit = Arc::clone(&cx.exports).try_acquire_owned().map_err(|_| {
        ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "too many exports are running; try again later",
        )
    })?;
    let (tx, rx) = mpsc::channel::<Result<Bytes, io::Error>>(EXPORT_CHUNKS);
    let reader = access.reader;
    let who = format!(
        "http: {}{}",
        access.caller.name,
        match (
            &access.caller.visibility.tenant,
            &access.caller.visibility.user_id
        ) {
            (None, None) => String::new(),
            (t, u) => format!(" (scoped to tenant {t:?}, user {u:?})"),
        }
    );
    let admission = cx.admission.clone();
    let described = format!("{filter:?}");
    let stop = cx.shutdown.clone();
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let mut out = for_format(format, Chunks::new(tx.clone(), stop, runtime.clone()));
        let mut sent = 0u64;
        let scanned = reader.scan(&filter, &mut |r| {
            out.write(&r)?;
            sent += 1;
            Ok(())
        });
        let finished = out.finish();
        drop(out);
        let failure = match (scanned, finished) {
            (Ok(_), Ok(())) => None,
            (Err(e), _) => Some(e.to_string()),
            (_, Err(e)) => Some(e.to_string()),
        };
        if let Some(why) = &failure {
            // The client went away, read too slowly, or the read failed: the body
            // ends short, and the trail says how much left.
            let _ = runtime.block_on(tx.send(Err(io::Error::other(why.clone()))));
        }
        let record = admin_record(
            "export",
            match &failure {
                None => format!("Exported {sent} records over HTTP."),
                Some(_) => format!("An export over HTTP ended early, after {sent} records."),
            },
            vec![
                ("records", Value::U64(sent)),
                ("completed", Value::Bool(failure.is_none())),
                ("format", Value::Str(format!("{format:?}").to_lowercase())),
                ("filter", Value::Str(described)),
                ("destination", Value::Str(who)),
            ],
        );
        let _ = runtime.block_on(admission.audit(record));
    });
    let mut response = Body::from_stream(ChannelStream(rx)).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // A browser saves it under a name that says what it is and when.
    let stamp = crate::cli::output::to_seconds(Timestamp::now()).replace([':', '-'], "");
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"logbook-records-{stamp}.{ext}\""
    )) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

/// The receiving end of a channel as a body stream.
struct ChannelStream<T>(mpsc::Receiver<T>);

impl<T> futures_core::Stream for ChannelStream<T> {
    type Item = T;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<T>> {
        self.0.poll_recv(cx)
    }
}

/// How long an export waits for its client to take a chunk before it gives up.
const EXPORT_STALL: std::time::Duration = std::time::Duration::from_secs(30);

/// A writer that hands what it is given to a channel in chunks, waiting while the
/// channel is full (the client reads slowly): memory stays at a few chunks. It gives
/// up when the client takes nothing for [`EXPORT_STALL`], or the collector stops.
struct Chunks {
    tx: mpsc::Sender<Result<Bytes, io::Error>>,
    buf: Vec<u8>,
    stop: tokio::sync::watch::Receiver<bool>,
    runtime: tokio::runtime::Handle,
}

impl Chunks {
    fn new(
        tx: mpsc::Sender<Result<Bytes, io::Error>>,
        stop: tokio::sync::watch::Receiver<bool>,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        Self {
            tx,
            buf: Vec::with_capacity(EXPORT_CHUNK_BYTES),
            stop,
            runtime,
        }
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(EXPORT_CHUNK_BYTES),
        ));
        let (tx, stop) = (&self.tx, &mut self.stop);
        self.runtime.block_on(async {
            tokio::select! {
                sent = tokio::time::timeout(EXPORT_STALL, tx.send(Ok(chunk))) => match sent {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(_)) => Err(io::Error::new(io::ErrorKind::BrokenPipe, "the client went away")),
                    Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "the client stopped reading")),
                },
                _ = stop.wait_for(|stopping| *stopping) => {
                    Err(io::Error::other("the collector is stopping"))
                }
            }
        })
    }
}

impl Write for Chunks {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= EXPORT_CHUNK_BYTES {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}
