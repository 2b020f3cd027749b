//! `stats`, `audit/verify` and `purge`.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use logbook_proto::Timestamp;
use serde::Deserialize;

use super::{blocking, json, Access, ApiError};
use crate::audit::{verify as verify_chain, Keys, VerifyOptions};
use crate::http::HttpContext;
use crate::query::parse_age;
use crate::retention::{purge as run_purge, PurgeOptions, PurgeSpec, Selector, StorageClass};
use crate::store::open_writer;

/// Store-wide numbers, as `logbook stats` prints them. For a scoped viewer: its own
/// records, by level and kind, its runs and its time range only.
#[utoipa::path(get, path = "/api/v1/stats", tag = "admin",
    responses((status = 200, description = "the numbers of logbook stats --json", body = Object),
        (status = 400, body = super::ErrorBody), (status = 401, body = super::ErrorBody), (status = 403, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn stats(access: Access) -> Result<Response, ApiError> {
    let reader = access.reader;
    let stats = blocking(move || reader.stats()).await?;
    Ok(json(&stats))
}

pub(super) fn require_admin(access: &Access, what: &str) -> Result<(), ApiError> {
    if access.caller.is_admin() {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "{what} needs an admin token; {:?} is a {} token",
            access.caller.name,
            access.caller.role.as_str()
        )))
    }
}

/// Checks the audit chain and its signed checkpoints, as `logbook verify`. Admin only.
#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "admin",
    responses((status = 200, description = "the report of logbook verify --json; `ok` says whether the chain is intact", body = Object),
        (status = 403, body = super::ErrorBody),
        (status = 400, body = super::ErrorBody), (status = 401, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn verify(
    State(cx): State<Arc<HttpContext>>,
    access: Access,
) -> Result<Response, ApiError> {
    require_admin(&access, "verify")?;
    let report = verify_report(&cx, access.reader).await?;
    let mut body = serde_json::to_value(&report).unwrap_or_default();
    body["ok"] = serde_json::Value::Bool(report.ok());
    Ok(json(&body))
}

/// `logbook verify`'s report: the API's and the audit page's.
pub(crate) async fn verify_report(
    cx: &Arc<HttpContext>,
    reader: Arc<dyn crate::store::StoreReader>,
) -> Result<crate::audit::VerifyReport, ApiError> {
    let config = Arc::clone(&cx.config);
    blocking(move || {
        let key_dir = config
            .key_dir()
            .ok_or_else(|| crate::store::StoreError::invalid_data("no key_dir configured"))?;
        let keys = Keys::load(&key_dir)?;
        let checkpoint_file = config.checkpoint_file().ok_or_else(|| {
            crate::store::StoreError::invalid_data("no checkpoint_file configured")
        })?;
        verify_chain(
            reader.as_ref(),
            &VerifyOptions {
                chain_key: *keys.chain_key(),
                public: keys.public(),
                checkpoint_file,
            },
        )
    })
    .await
}

/// What to purge.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PurgeRequest {
    /// Delete records older than this age (`30d`, `12h`); without it, apply the
    /// configured retention policies.
    pub(crate) older_than: Option<String>,
    /// Only this tenant's records (with `older_than`).
    pub(crate) tenant: Option<String>,
    /// Only this app's records (with `older_than`).
    pub(crate) app: Option<String>,
    /// Only this category (with `older_than`).
    pub(crate) category: Option<String>,
    /// `ops` (default) or `audit` (a prefix of the chain, leaving a signed anchor).
    pub(crate) class: Option<String>,
    /// Count what would be deleted; delete nothing. Default true: deleting takes
    /// `"dry_run": false`.
    pub(crate) dry_run: Option<bool>,
}

/// Deletes records older than an age (or as the retention policies say), archiving
/// them first when an archive directory is configured; returns what it deleted (or
/// would delete). Audited. Admin only.
#[utoipa::path(post, path = "/api/v1/purge", tag = "admin",
    request_body = PurgeRequest,
    responses((status = 200, description = "the report of logbook purge --json", body = Object),
        (status = 400, body = super::ErrorBody), (status = 403, body = super::ErrorBody),
        (status = 401, body = super::ErrorBody), (status = 415, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn purge(
    State(cx): State<Arc<HttpContext>>,
    access: Access,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    require_admin(&access, "purge")?;
    super::require_json(&headers, "a purge request")?;
    let request: PurgeRequest = if body.is_empty() {
        return Err(ApiError::bad_request(
            "the body is a JSON object: {\"older_than\": \"30d\", \"dry_run\": true}",
        ));
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid purge request: {e}")))?
    };
    let report = execute_purge(&cx, &format!("api: {}", access.caller.name), &request).await?;
    Ok(json(&report))
}

/// Runs a purge for `who` (an admin, as its audit record names it: `api: NAME`,
/// `web: NAME`): the API's and the maintenance page's.
pub(crate) async fn execute_purge(
    cx: &Arc<HttpContext>,
    who: &str,
    request: &PurgeRequest,
) -> Result<crate::retention::PurgeReport, ApiError> {
    let config = Arc::clone(&cx.config);
    let specs = match &request.older_than {
        Some(age) => {
            let age = parse_age(age).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "older_than: invalid age {age:?}: expected e.g. 30d, 12h, 90m"
                ))
            })?;
            let class = match request.class.as_deref() {
                None | Some("ops") => StorageClass::Ops,
                Some("audit") => StorageClass::Audit,
                Some(c) => {
                    return Err(ApiError::bad_request(format!(
                        "class: {c:?} is not ops or audit"
                    )))
                }
            };
            vec![PurgeSpec {
                class,
                selector: Selector {
                    tenant: request.tenant.clone(),
                    app: request.app.clone(),
                    category: request.category.clone(),
                },
                except: Vec::new(),
                max_age: Some(age),
                max_count: None,
            }]
        }
        None => {
            if request.tenant.is_some() || request.app.is_some() || request.category.is_some() {
                return Err(ApiError::bad_request(
                    "tenant, app and category narrow older_than: give older_than too",
                ));
            }
            let specs = config.retention.specs();
            if specs.is_empty() {
                return Err(ApiError::bad_request(
                    "no retention policies are configured: give older_than",
                ));
            }
            specs
        }
    };
    let dry_run = request.dry_run.unwrap_or(true);
    let origin = who.to_owned();
    // Stopped between two deleting transactions when the collector stops (what was
    // deleted so far is reported and audited).
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (stop, mut shutdown) = (Arc::clone(&stop), cx.shutdown.clone());
        tokio::spawn(async move {
            let _ = shutdown.wait_for(|s| *s).await;
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        })
    };
    let report = blocking(move || {
        let mut store = open_writer(&config.db, &config.store_options())?;
        run_purge(
            store.as_mut(),
            &specs,
            Timestamp::now(),
            &PurgeOptions {
                dry_run,
                archive_dir: config.retention.archive_dir.clone(),
                origin,
                stop: Some(stop),
            },
        )
    })
    .await;
    watcher.abort();
    report
}
