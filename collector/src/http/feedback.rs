//! Feedback on a run or an LLM call: a label, a score, a note. Stored as a record of
//! the run (an INFO event named `feedback`, category `feedback`, its fields
//! `feedback.label`, `feedback.score`, `feedback.note`, `feedback.by`) inside the span
//! it is about, so it is shown with the run, found by the records filters
//! (`category=feedback&field=feedback.score=1`) and exported with the run's records;
//! the same record the layer's `genai::feedback` sends. Through the admission path
//! like any record, then audited. The API (`POST /api/v1/feedback`) and the run page
//! both write through [`give`].

use std::sync::Arc;

use logbook_proto::genai::logbook as keys;
use logbook_proto::{
    transport, InstanceId, Kind, Level, Origin, Record, RecordId, Resource, Scope, ScopeKey,
    SpanId, Str, Timestamp, TraceId, Value,
};

use super::api::{blocking, ApiError};
use super::HttpContext;
use crate::admission::auth::Caller;
use crate::audit::{admin_record, random_bytes};
use crate::pipeline::CATEGORY_FEEDBACK;
use crate::store::{find_run, FoundRun, RunKind, StoreReader};

/// Longest label, in characters.
pub const MAX_LABEL: usize = 100;
/// Longest note, in characters.
pub const MAX_NOTE: usize = 4000;

/// What is given.
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Feedback {
    /// The run (its run id, or a trace id).
    pub run: String,
    /// The span it is about (16 hex digits: an LLM call's); the run's root without it.
    #[schema(pattern = "^(|[0-9a-f]{16})$")]
    pub span_id: Option<String>,
    /// A label: `good`, `wrong answer`, … (100 characters at most).
    pub label: Option<String>,
    /// A score: any finite number (1/0, 1 to 5, …).
    pub score: Option<f64>,
    /// A note (4000 characters at most).
    pub note: Option<String>,
}

/// Stores `f` from `caller`, reading the run through `reader` (the caller's view);
/// the new record's id once it is committed.
pub async fn give(
    cx: &Arc<HttpContext>,
    caller: &Caller,
    reader: Arc<dyn StoreReader>,
    f: Feedback,
) -> Result<RecordId, ApiError> {
    let label = f
        .label
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty());
    let note = f
        .note
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty());
    if label.is_none() && f.score.is_none() && note.is_none() {
        return Err(ApiError::bad_request(
            "feedback needs a label, a score or a note",
        ));
    }
    if label
        .as_ref()
        .is_some_and(|l| l.chars().count() > MAX_LABEL)
    {
        return Err(ApiError::bad_request(format!(
            "label: at most {MAX_LABEL} characters"
        )));
    }
    if note.as_ref().is_some_and(|n| n.chars().count() > MAX_NOTE) {
        return Err(ApiError::bad_request(format!(
            "note: at most {MAX_NOTE} characters"
        )));
    }
    if f.score.is_some_and(|s| !s.is_finite()) {
        return Err(ApiError::bad_request("score: a finite number"));
    }
    let span =
        match f.span_id.as_deref().filter(|s| !s.is_empty()) {
            Some(s) => Some(s.parse::<SpanId>().map_err(|_| {
                ApiError::bad_request(format!("span_id: {s:?} is not 16 hex digits"))
            })?),
            None => None,
        };
    let key = f.run.clone();
    let (run, span) = blocking(move || {
        let run = match find_run(reader.as_ref(), &key)? {
            FoundRun::One(run) => *run,
            _ => return Ok(None),
        };
        // The span it is about must be the run's; without one, the run's first span.
        let outline = reader.run_outline(&run.run_id, 100_000)?;
        let span = match span {
            Some(s) => outline.iter().any(|r| r.span_id == Some(s)).then_some(s),
            None => outline.iter().find_map(|r| r.span_id),
        };
        Ok(Some((run, span)))
    })
    .await?
    .ok_or_else(|| ApiError::not_found(format!("no run {:?} (that this token may see)", f.run)))?;
    let Some(span_id) = span else {
        return Err(ApiError::bad_request(
            "span_id: not a span of this run (or the run has no span yet)",
        ));
    };
    let random = random_bytes().map_err(ApiError::from)?;
    let word = |i: usize| u64::from_be_bytes(random[i..i + 8].try_into().unwrap_or_default());
    let mut r = Record::new(
        RecordId(TraceId::from_random(word(0), word(8)).0),
        Timestamp::now(),
        Kind::Event,
        Level::Info,
        Str::Borrowed("feedback"),
    );
    // (Targets under `logbook` are the collector's own, audit records.)
    r.target = Str::Borrowed("feedback");
    let mut summary = Vec::new();
    if let Some(l) = &label {
        summary.push(l.clone());
    }
    if let Some(s) = f.score {
        summary.push(format!("score {s}"));
    }
    r.message = Some(
        format!("feedback: {}", summary.join(", "))
            .trim_end_matches(": ")
            .to_owned(),
    );
    r.trace_id = run
        .trace_id
        .unwrap_or(TraceId::from_random(word(16), word(24)));
    r.span_id = Some(span_id);
    r.category = Some(Str::Borrowed(CATEGORY_FEEDBACK));
    let mut scope = Scope::new();
    if run.kind == RunKind::Run {
        scope.set(ScopeKey::RunId, Some(run.run_id.clone()));
    }
    scope.set(ScopeKey::Tenant, run.tenant.clone());
    scope.set(ScopeKey::UserId, run.user_id.clone());
    scope.set(ScopeKey::SessionId, run.session_id.clone());
    scope.set(ScopeKey::App, run.app.clone());
    scope.set(ScopeKey::Project, run.project.clone());
    scope.set(ScopeKey::Env, run.env.clone());
    r.scope = Arc::new(scope);
    if let Some(l) = &label {
        r.fields.set(keys::FEEDBACK_LABEL, Value::Str(l.clone()));
    }
    if let Some(s) = f.score {
        r.fields.set(keys::FEEDBACK_SCORE, Value::F64(s));
    }
    if let Some(n) = &note {
        r.fields.set(keys::FEEDBACK_NOTE, Value::Str(n.clone()));
    }
    r.fields
        .set(keys::FEEDBACK_BY, Value::Str(caller.name.clone()));
    let id = r.id;
    let resource = Resource {
        service: "logbook".into(),
        host: std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_default(),
        pid: std::process::id(),
    };
    let mut origin = Origin::new(transport::HTTP);
    if !caller.is_anonymous() {
        origin.token = Some(caller.name.clone());
    }
    let client = cx
        .admission
        .intake()
        .client(
            InstanceId::from_random(word(0) ^ word(24)),
            resource,
            origin,
        )
        .map_err(ApiError::bad_request)?;
    let unavailable = |e: crate::admission::AdmitError| {
        ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e.to_string(),
        )
    };
    let outcome = cx
        .admission
        .submit(&client, vec![r])
        .await
        .map_err(unavailable)?
        .await
        .map_err(unavailable)?;
    if let Some(refused) = outcome.refused.first() {
        return Err(ApiError::bad_request(format!(
            "the feedback was refused: {}",
            refused.reason
        )));
    }
    let audit = admin_record(
        "feedback",
        format!("{} gave feedback on run {}.", caller.name, run.run_id),
        vec![
            ("run", Value::Str(run.run_id.clone())),
            ("span_id", Value::Str(span_id.to_string())),
            ("record", Value::Str(id.to_string())),
            ("by", Value::Str(caller.name.clone())),
        ],
    );
    let _ = cx.admission.audit(audit).await;
    Ok(id)
}
