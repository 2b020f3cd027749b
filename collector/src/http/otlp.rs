//! OTLP/HTTP ingest, as `opentelemetry-proto`'s `docs/specification.md` says:
//! `POST /v1/traces` and `/v1/logs`, in protobuf or JSON (answered in the request's
//! content type), gzip or deflate. 200 only once every record is committed, with
//! `partial_success` counting those refused (kept in quarantine) or left out; 400 with
//! a `google.rpc.Status` for what does not decode; 503 with `Retry-After` at once when
//! the writer's queue is full (a request never waits for queue space).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use logbook_proto::{transport, Origin};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;

use super::budget::{HttpBudget, Share, Short};
use super::{HttpContext, Refused};
use crate::admission::auth::Caller;
use crate::admission::{AdmitError, Pending};
use crate::ingest::otlp::{self, Mapped};

/// `google.rpc.Status`, for error bodies (`google/rpc/status.proto`; its `details`
/// are never sent).
#[derive(Clone, PartialEq, Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// `google.rpc.Code` values used here.
const INVALID_ARGUMENT: i32 = 3;
const UNAVAILABLE: i32 = 14;
const UNAUTHENTICATED: i32 = 16;
const PERMISSION_DENIED: i32 = 7;

/// A request's (and so its answer's) encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Protobuf,
    Json,
}

impl Format {
    fn of(headers: &HeaderMap) -> Option<Self> {
        let ct = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
        let essence = ct.split(';').next()?.trim().to_ascii_lowercase();
        match essence.as_str() {
            "application/x-protobuf" | "application/protobuf" => Some(Self::Protobuf),
            "application/json" => Some(Self::Json),
            _ => None,
        }
    }

    fn content_type(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Self::Protobuf => "application/x-protobuf",
            Self::Json => "application/json",
        })
    }

    fn decode<M: Message + Default + serde::de::DeserializeOwned>(
        self,
        body: &[u8],
    ) -> Result<M, String> {
        match self {
            Self::Protobuf => {
                M::decode(body).map_err(|e| format!("not an OTLP protobuf message: {e}"))
            }
            Self::Json => serde_json::from_slice(body).map_err(|e| format!("not OTLP JSON: {e}")),
        }
    }

    /// A successful answer: `message` encoded, or in JSON `json`.
    fn ok<M: Message>(self, message: &M, json: serde_json::Value) -> Response {
        let body = match self {
            Self::Protobuf => message.encode_to_vec(),
            Self::Json => json.to_string().into_bytes(),
        };
        ([(header::CONTENT_TYPE, self.content_type())], body).into_response()
    }

    fn error(self, status: StatusCode, code: i32, message: String) -> Response {
        let body = match self {
            Self::Protobuf => RpcStatus { code, message }.encode_to_vec(),
            Self::Json => serde_json::json!({ "code": code, "message": message })
                .to_string()
                .into_bytes(),
        };
        let mut r = (status, [(header::CONTENT_TYPE, self.content_type())], body).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        r
    }
}

fn unsupported() -> Response {
    (
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "Content-Type must be application/x-protobuf or application/json\n",
    )
        .into_response()
}

/// What became of a request's records.
struct Admitted {
    /// Refused by validation (kept in quarantine) or left out by the mapping.
    rejected: u64,
    /// Why, for the first of them.
    why: Option<String>,
}

/// Admits every batch of `mapped` without waiting for queue space, gives back the
/// request's `share` of the budget once they are queued (the queue bounds them then),
/// and waits for their commits.
async fn admit(
    cx: &HttpContext,
    caller: &Caller,
    mapped: Mapped,
    share: Share,
) -> Result<Admitted, AdmitError> {
    let mut origin = Origin::new(transport::HTTP);
    if !caller.is_anonymous() {
        origin.token = Some(caller.name.clone());
    }
    let mut rejected = mapped.invalid;
    let mut why = mapped.first_invalid;
    let mut pending: Vec<Pending> = Vec::with_capacity(mapped.batches.len());
    for b in mapped.batches {
        if b.records.is_empty() {
            continue;
        }
        let n = b.records.len() as u64;
        let client = match cx
            .admission
            .intake()
            .client(b.instance, b.resource, origin.clone())
        {
            Ok(c) => c,
            Err(e) => {
                rejected += n;
                why.get_or_insert(e);
                continue;
            }
        };
        // A resource's records in batches the admission path takes (an OTLP request
        // may carry more spans than a socket batch may).
        let max = cx.admission.intake().limits().max_batch_records.max(1);
        let mut records = b.records;
        while !records.is_empty() {
            let rest = records.split_off(records.len().min(max));
            pending.push(cx.admission.try_submit(&client, records)?);
            records = rest;
        }
    }
    drop(share);
    for p in pending {
        let outcome = p.await?;
        if let Some(first) = outcome.refused.first() {
            why.get_or_insert_with(|| first.reason.to_string());
        }
        rejected += outcome.refused.len() as u64;
    }
    Ok(Admitted { rejected, why })
}

fn admit_error(format: Format, e: &AdmitError) -> Response {
    match e {
        AdmitError::TooLarge(m) => {
            format.error(StatusCode::PAYLOAD_TOO_LARGE, INVALID_ARGUMENT, m.clone())
        }
        AdmitError::ShuttingDown
        | AdmitError::Busy
        | AdmitError::Store(_)
        | AdmitError::Full { .. } => {
            format.error(StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE, e.to_string())
        }
    }
}

/// One OTLP signal: its request, how it becomes records, its answer.
trait Signal: 'static {
    type Request: Message + Default + serde::de::DeserializeOwned + Send + 'static;
    type Response: Message;
    /// The JSON name of the partial success's count.
    const REJECTED: &'static str;
    fn map(request: Self::Request) -> Mapped;
    fn response(partial: Option<(i64, String)>) -> Self::Response;
}

struct Traces;

impl Signal for Traces {
    type Request = ExportTraceServiceRequest;
    type Response = ExportTraceServiceResponse;
    const REJECTED: &'static str = "rejectedSpans";
    fn map(request: Self::Request) -> Mapped {
        otlp::traces(request)
    }
    fn response(partial: Option<(i64, String)>) -> Self::Response {
        ExportTraceServiceResponse {
            partial_success: partial.map(|(n, m)| ExportTracePartialSuccess {
                rejected_spans: n,
                error_message: m,
            }),
        }
    }
}

struct Logs;

impl Signal for Logs {
    type Request = ExportLogsServiceRequest;
    type Response = ExportLogsServiceResponse;
    const REJECTED: &'static str = "rejectedLogRecords";
    fn map(request: Self::Request) -> Mapped {
        otlp::logs(request)
    }
    fn response(partial: Option<(i64, String)>) -> Self::Response {
        ExportLogsServiceResponse {
            partial_success: partial.map(|(n, m)| ExportLogsPartialSuccess {
                rejected_log_records: n,
                error_message: m,
            }),
        }
    }
}

/// How a body is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    Identity,
    Gzip,
    Deflate,
}

impl Encoding {
    fn of(headers: &HeaderMap) -> Result<Self, String> {
        match headers
            .get(header::CONTENT_ENCODING)
            .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase())
            .as_deref()
        {
            None | Some("" | "identity") => Ok(Self::Identity),
            Some("gzip" | "x-gzip") => Ok(Self::Gzip),
            Some("deflate") => Ok(Self::Deflate),
            Some(other) => Err(format!(
                "Content-Encoding {other:?} is not supported: gzip, deflate or none"
            )),
        }
    }
}

/// Why a body could not be read.
enum BodyError {
    /// Larger than a limit (413).
    TooLarge(String),
    /// The budget is held by other requests (503).
    Busy,
    /// Not valid for its encoding (400).
    Bad(String),
    /// The collector is stopping (503).
    Stopping,
}

/// Reads the body within the limits, taking its share of the budget before holding
/// it: its bytes (by `Content-Length`, else the largest allowed), and for a body not
/// compressed what its decoded message and records will take.
async fn read_body(
    cx: &HttpContext,
    headers: &HeaderMap,
    encoding: Encoding,
    body: Body,
) -> Result<(Bytes, Share), BodyError> {
    let limits = &cx.limits;
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if let Some(n) = length.filter(|n| *n > limits.max_body_bytes) {
        return Err(BodyError::TooLarge(format!(
            "body of {n} bytes, more than the limit of {} bytes",
            limits.max_body_bytes
        )));
    }
    let wire = length.unwrap_or(limits.max_body_bytes);
    // A body not compressed is its own decompressed bytes.
    let first = match encoding {
        Encoding::Identity => HttpBudget::need(0, wire),
        Encoding::Gzip | Encoding::Deflate => HttpBudget::need(wire, 0),
    };
    let mut share = cx.budget.take(first).await.ok_or(BodyError::Stopping)?;
    let bytes = axum::body::to_bytes(body, limits.max_body_bytes)
        .await
        .map_err(|e| {
            BodyError::TooLarge(format!(
                "body over the limit of {} bytes ({e})",
                limits.max_body_bytes
            ))
        })?;
    if encoding == Encoding::Identity {
        cx.budget
            .grow(&mut share, HttpBudget::need(0, bytes.len()))
            .map_err(|s| short(s, limits.max_decoded_bytes))?;
    }
    Ok((bytes, share))
}

/// The body decompressed, growing `share` by what the decompressed bytes will take
/// (without waiting: [`BodyError::Busy`] if it is not free). CPU work: called off the
/// async workers.
fn decompress(
    cx: &HttpContext,
    encoding: Encoding,
    bytes: Bytes,
    share: &mut Share,
) -> Result<Vec<u8>, BodyError> {
    if encoding == Encoding::Identity {
        return Ok(bytes.to_vec());
    }
    let max = cx
        .limits
        .max_decoded_bytes
        .min(cx.budget.max_decoded(bytes.len()));
    use std::io::Read as _;
    let mut reader: Box<dyn std::io::Read + Send> = match encoding {
        Encoding::Gzip => Box::new(flate2::read::GzDecoder::new(&bytes[..])),
        Encoding::Deflate | Encoding::Identity => {
            Box::new(flate2::read::ZlibDecoder::new(&bytes[..]))
        }
    };
    let mut out: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        let n = reader
            .read(&mut chunk)
            .map_err(|e| BodyError::Bad(format!("body does not decompress: {e}")))?;
        if n == 0 {
            break;
        }
        if out.len() + n > max {
            return Err(BodyError::TooLarge(format!(
                "body over {max} bytes once decompressed (the limit for a request)"
            )));
        }
        cx.budget
            .grow(share, HttpBudget::need(bytes.len(), out.len() + n))
            .map_err(|s| short(s, max))?;
        out.extend_from_slice(&chunk[..n]);
    }
    Ok(out)
}

fn short(s: Short, max: usize) -> BodyError {
    match s {
        Short::Busy => BodyError::Busy,
        Short::TooLarge { need, budget } => BodyError::TooLarge(format!(
            "request would take {need} bytes of memory decoded, more than the budget of {budget} (at most about {max} bytes decompressed)"
        )),
    }
}

/// Decodes, admits and answers one export request of signal `S` from `peer`.
async fn export<S: Signal>(
    cx: Arc<HttpContext>,
    peer: SocketAddr,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(format) = Format::of(&headers) else {
        return unsupported();
    };
    let caller = match cx.caller(&headers) {
        Ok(caller) => caller,
        Err(Refused::Unauthenticated) => {
            // Nothing the client sent reaches the trail: only its address.
            cx.auth.failed(&peer.ip().to_string()).await;
            return format.error(
                StatusCode::UNAUTHORIZED,
                UNAUTHENTICATED,
                "missing or wrong token (Authorization: Bearer …)".into(),
            );
        }
        Err(Refused::NotLocal) => {
            return format.error(
                StatusCode::FORBIDDEN,
                PERMISSION_DENIED,
                "without a token only local clients are served, and this request names another host or comes from a web page".into(),
            );
        }
    };
    if !caller.may_ingest() {
        return format.error(
            StatusCode::FORBIDDEN,
            PERMISSION_DENIED,
            format!(
                "the token {:?} may not send records (role {}; use an ingest or admin token)",
                caller.name,
                caller.role.as_str()
            ),
        );
    }
    let encoding = match Encoding::of(&headers) {
        Ok(e) => e,
        Err(m) => return format.error(StatusCode::UNSUPPORTED_MEDIA_TYPE, INVALID_ARGUMENT, m),
    };
    let decoded = match read_body(&cx, &headers, encoding, body).await {
        // Decompressing, decoding and mapping are CPU work: off the async workers, so
        // that a large request does not hold up the socket's clients.
        Ok((bytes, mut share)) => {
            let cx = Arc::clone(&cx);
            tokio::task::spawn_blocking(move || {
                let body = decompress(&cx, encoding, bytes, &mut share)?;
                let request: S::Request = format.decode(&body).map_err(BodyError::Bad)?;
                drop(body);
                Ok((S::map(request), share))
            })
            .await
            .unwrap_or(Err(BodyError::Stopping))
        }
        Err(e) => Err(e),
    };
    let (mapped, share) = match decoded {
        Ok(d) => d,
        Err(BodyError::TooLarge(m)) => {
            return format.error(StatusCode::PAYLOAD_TOO_LARGE, INVALID_ARGUMENT, m)
        }
        Err(BodyError::Bad(m)) => {
            return format.error(StatusCode::BAD_REQUEST, INVALID_ARGUMENT, m)
        }
        Err(BodyError::Busy) => {
            return format.error(
                StatusCode::SERVICE_UNAVAILABLE,
                UNAVAILABLE,
                "the collector is busy decoding other requests: retry shortly".into(),
            )
        }
        Err(BodyError::Stopping) => {
            return format.error(
                StatusCode::SERVICE_UNAVAILABLE,
                UNAVAILABLE,
                "collector is shutting down".into(),
            )
        }
    };
    match admit(&cx, &caller, mapped, share).await {
        Ok(a) => {
            let partial = (a.rejected > 0).then(|| {
                (
                    i64::try_from(a.rejected).unwrap_or(i64::MAX),
                    a.why.unwrap_or_default(),
                )
            });
            // `{}` when all was stored, never `"partialSuccess": null`; 64-bit counts
            // as strings, as proto3 JSON has them.
            let json = match &partial {
                Some((n, m)) => serde_json::json!({ "partialSuccess": {
                    S::REJECTED: n.to_string(),
                    "errorMessage": m,
                }}),
                None => serde_json::json!({}),
            };
            format.ok(&S::response(partial), json)
        }
        Err(e) => admit_error(format, &e),
    }
}

/// `POST /v1/traces`.
pub(super) async fn traces(
    State(cx): State<Arc<HttpContext>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    export::<Traces>(cx, peer, headers, body).await
}

/// `POST /v1/logs`.
pub(super) async fn logs(
    State(cx): State<Arc<HttpContext>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    export::<Logs>(cx, peer, headers, body).await
}
