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
pub(super) fn record_filter(params: &mut Params) -> Result<RecordFilter, ApiError> {
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
    let (format, content_type) = match params.take("format")?.as_deref() {
        None | Some("jsonl") => (Format::Jsonl, "application/x-ndjson"),
        Some("csv") => (Format::Csv, "text/csv; charset=utf-8"),
        Some("text") => (Format::Text, "text/plain; charset=utf-8"),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "format: {other:?} is not one of jsonl, csv, text"
            )))
        }
    };
    params.finish(&["format", "…the filters of logbook query"])?;
    let (tx, rx) = mpsc::channel::<Result<Bytes, io::Error>>(EXPORT_CHUNKS);
    let reader = access.reader;
    let caller = access.caller.name.clone();
    let admission = cx.admission.clone();
    let described = format!("{filter:?}");
    tokio::task::spawn_blocking(move || {
        let mut out = for_format(format, Chunks::new(tx.clone()));
        let scanned = reader.scan(&filter, &mut |r| out.write(&r));
        let finished = out.finish();
        drop(out);
        let n = match (scanned, finished) {
            (Ok(n), Ok(())) => n,
            (Err(e), _) => {
                // The client went away, or the read failed: the body ends short.
                let _ = tx.blocking_send(Err(io::Error::other(e.to_string())));
                return;
            }
            (_, Err(e)) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        };
        let record = admin_record(
            "export",
            format!("Exported {n} records over HTTP."),
            vec![
                ("records", Value::U64(n)),
                ("format", Value::Str(format!("{format:?}").to_lowercase())),
                ("filter", Value::Str(described)),
                ("destination", Value::Str(format!("http: {caller}"))),
            ],
        );
        let handle = tokio::runtime::Handle::current();
        let _ = handle.block_on(admission.audit(record));
    });
    let mut response = Body::from_stream(ChannelStream(rx)).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(response)
}

/// The receiving end of a channel as a body stream.
pub(super) struct ChannelStream<T>(pub(super) mpsc::Receiver<T>);

impl<T> futures_core::Stream for ChannelStream<T> {
    type Item = T;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<T>> {
        self.0.poll_recv(cx)
    }
}

/// A writer that hands what it is given to a channel in chunks, waiting while the
/// channel is full (the client reads slowly): memory stays at a few chunks.
struct Chunks {
    tx: mpsc::Sender<Result<Bytes, io::Error>>,
    buf: Vec<u8>,
}

impl Chunks {
    fn new(tx: mpsc::Sender<Result<Bytes, io::Error>>) -> Self {
        Self {
            tx,
            buf: Vec::with_capacity(EXPORT_CHUNK_BYTES),
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
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
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
