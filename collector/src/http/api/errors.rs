//! `errors`, `errors/{fingerprint}`: exception groups, as `logbook errors` lists and
//! shows them, and people's changes to them (resolve, ignore, reopen, note; admin
//! tokens; audited).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use logbook_proto::Timestamp;
use serde::{Deserialize, Serialize};

use super::{blocking, json, Access, ApiError, Params};
use crate::http::HttpContext;
use crate::query::TimeSpec;
use crate::store::{
    open_writer, ExceptionChange, ExceptionFilter, ExceptionGroup, ExceptionSort, ExceptionState,
};

/// The parameters of a groups list.
pub(crate) const ERROR_KEYS: &[&str] = &["state", "service", "search", "since", "sort", "limit"];

/// Groups matching the query string: `state` (comma-separated; default unresolved and
/// regressed; `all`), `service`, `search`, `since`, `sort` (recent, count, new),
/// `limit`.
pub(crate) fn error_filter(p: &mut Params) -> Result<ExceptionFilter, ApiError> {
    let states = match p.take("state")?.as_deref() {
        None | Some("") => vec![ExceptionState::Unresolved, ExceptionState::Regressed],
        Some("all") => Vec::new(),
        Some(list) => list
            .split(',')
            .map(|s| {
                ExceptionState::parse(s.trim()).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "state: {s:?} is not unresolved, regressed, resolved, ignored or all"
                    ))
                })
            })
            .collect::<Result<_, _>>()?,
    };
    let sort = match p.take("sort")?.as_deref() {
        None | Some("recent") => ExceptionSort::LastSeen,
        Some("count") => ExceptionSort::Count,
        Some("new") => ExceptionSort::FirstSeen,
        Some(s) => {
            return Err(ApiError::bad_request(format!(
                "sort: {s:?} is not recent, count or new"
            )))
        }
    };
    Ok(ExceptionFilter {
        states,
        service: p.take("service")?,
        text: p.take("search")?,
        since: p
            .parse_value::<TimeSpec>("since")?
            .map(|t| t.resolve(Timestamp::now())),
        sort,
        limit: p.limit()?,
        ..ExceptionFilter::default()
    })
}

/// Exception groups.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct ErrorList {
    /// The groups.
    #[schema(value_type = Vec<Object>)]
    groups: Vec<ExceptionGroup>,
}

/// Lists exception groups (grouped by fingerprint: type and in-app frames, callsite
/// and error types, or type and normalised message), unresolved and regressed by
/// default, most recently seen first.
#[utoipa::path(get, path = "/api/v1/errors", tag = "errors",
    params(("state" = Option<String>, Query, description = "comma-separated: unresolved, regressed, resolved, ignored; or all"),
        ("service" = Option<String>, Query), ("search" = Option<String>, Query, description = "in type, message or location"),
        ("since" = Option<String>, Query, description = "last seen since: an age (24h) or a time"),
        ("sort" = Option<String>, Query, description = "recent (default), count or new"),
        ("limit" = Option<usize>, Query)),
    responses((status = 200, body = ErrorList),
        (status = 400, body = super::ErrorBody), (status = 401, body = super::ErrorBody), (status = 403, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn list(access: Access, RawQuery(query): RawQuery) -> Result<Response, ApiError> {
    let mut p = Params::parse(query.as_deref());
    let filter = error_filter(&mut p)?;
    p.finish(ERROR_KEYS)?;
    let reader = access.reader;
    let groups = blocking(move || reader.exception_groups(&filter)).await?;
    Ok(json(&ErrorList { groups }))
}

/// The group a path names: a whole fingerprint, or a unique beginning of one.
fn find(reader: &dyn crate::store::StoreReader, given: &str) -> Result<String, ApiError> {
    crate::monitor::find_group(reader, given).map_err(|e| match e {
        FindError::Store(e) => ApiError::from(e),
        FindError::None => ApiError::not_found(format!("no exception group {given:?}")),
        FindError::Several => ApiError::bad_request(format!(
            "{given:?} names more than one exception group: give more of it"
        )),
    })
}

use crate::monitor::FindError;

/// One exception group: counts, users, services and versions, its hourly trend, tags,
/// notes and the ids of sample records.
#[utoipa::path(get, path = "/api/v1/errors/{fingerprint}", tag = "errors",
    params(("fingerprint" = String, Path, description = "the group's fingerprint, or a unique beginning of it")),
    responses((status = 200, body = Object),
        (status = 400, body = super::ErrorBody), (status = 404, body = super::ErrorBody),
        (status = 401, body = super::ErrorBody), (status = 403, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn one(access: Access, Path(given): Path<String>) -> Result<Response, ApiError> {
    let reader = access.reader;
    let detail = blocking(move || {
        let fp = match find(reader.as_ref(), &given) {
            Ok(fp) => fp,
            Err(e) => return Ok(Err(e)),
        };
        Ok(Ok(reader.exception_group(&fp)?))
    })
    .await??;
    match detail {
        Some(d) => Ok(json(&d)),
        None => Err(ApiError::not_found("no such exception group")),
    }
}

/// A change to a group.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ErrorChange {
    /// `resolve`, `ignore`, `reopen` or `note`.
    pub(crate) action: String,
    /// resolve: the version that fixes it.
    pub(crate) in_version: Option<String>,
    /// ignore: for how long (an age such as 24h or 7d).
    #[serde(rename = "for")]
    pub(crate) for_: Option<String>,
    /// ignore: until it occurs this many more times.
    pub(crate) more: Option<u64>,
    /// note: the text.
    pub(crate) text: Option<String>,
}

impl ErrorChange {
    /// The store's change, by `author`.
    pub(crate) fn to_change(&self, author: &str) -> Result<ExceptionChange, ApiError> {
        let none_but = |allowed: &[&str]| -> Result<(), ApiError> {
            let given = [
                ("in_version", self.in_version.is_some()),
                ("for", self.for_.is_some()),
                ("more", self.more.is_some()),
                ("text", self.text.is_some()),
            ];
            match given.iter().find(|(k, set)| *set && !allowed.contains(k)) {
                Some((k, _)) => Err(ApiError::bad_request(format!(
                    "{k} does not go with action {:?}",
                    self.action
                ))),
                None => Ok(()),
            }
        };
        Ok(match self.action.as_str() {
            "resolve" => {
                none_but(&["in_version"])?;
                ExceptionChange::Resolve {
                    in_version: self.in_version.clone().filter(|v| !v.trim().is_empty()),
                }
            }
            "ignore" => {
                none_but(&["for", "more"])?;
                let until = match self.for_.as_deref().filter(|s| !s.trim().is_empty()) {
                    Some(age) => {
                        let d = crate::query::parse_age(age).ok_or_else(|| {
                            ApiError::bad_request(format!(
                                "for: {age:?} is not an age such as 30m, 24h or 7d"
                            ))
                        })?;
                        Some(Timestamp(Timestamp::now().as_nanos().saturating_add(
                            i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
                        )))
                    }
                    None => None,
                };
                ExceptionChange::Ignore {
                    until,
                    more: self.more,
                }
            }
            "reopen" => {
                none_but(&[])?;
                ExceptionChange::Reopen
            }
            "note" => {
                none_but(&["text"])?;
                let text = self.text.clone().unwrap_or_default();
                if text.trim().is_empty() {
                    return Err(ApiError::bad_request("note: text is empty"));
                }
                if text.len() > 10_000 {
                    return Err(ApiError::bad_request("note: text is over 10,000 bytes"));
                }
                ExceptionChange::Note {
                    author: author.to_owned(),
                    text,
                }
            }
            a => {
                return Err(ApiError::bad_request(format!(
                    "action: {a:?} is not resolve, ignore, reopen or note"
                )))
            }
        })
    }
}

/// Applies a change to group `given` by `who` (audited): the group after it.
pub(crate) async fn apply_change(
    cx: &Arc<HttpContext>,
    reader: Arc<dyn crate::store::StoreReader>,
    given: String,
    change: ExceptionChange,
    who: String,
) -> Result<ExceptionGroup, ApiError> {
    let config = Arc::clone(&cx.config);
    blocking(move || {
        let fp = match find(reader.as_ref(), &given) {
            Ok(fp) => fp,
            Err(e) => return Ok(Err(e)),
        };
        let mut store = open_writer(&config.db, &config.store_options())?;
        let Some(group) = store.change_exception(&fp, &change)? else {
            return Ok(Err(ApiError::not_found(format!(
                "no exception group {given:?}"
            ))));
        };
        store.write(&[crate::monitor::change_record(&group, &change, &who)])?;
        Ok(Ok(group))
    })
    .await?
}

/// Changes a group: `{"action": "resolve", "in_version": "1.4.2"}`, `{"action":
/// "ignore", "for": "24h"}` or `{"action": "ignore", "more": 100}`, `{"action":
/// "reopen"}`, `{"action": "note", "text": "…"}`. Admin tokens. Audited.
#[utoipa::path(post, path = "/api/v1/errors/{fingerprint}", tag = "errors",
    params(("fingerprint" = String, Path, description = "the group's fingerprint, or a unique beginning of it")),
    request_body = ErrorChange,
    responses((status = 200, body = Object, description = "the group after the change"),
        (status = 400, body = super::ErrorBody), (status = 404, body = super::ErrorBody),
        (status = 401, body = super::ErrorBody), (status = 403, body = super::ErrorBody),
        (status = 415, body = super::ErrorBody), (status = 503, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn change(
    State(cx): State<Arc<HttpContext>>,
    access: Access,
    Path(given): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    super::admin::require_admin(&access, "changing an exception group")?;
    super::require_json(&headers, "a change")?;
    let c: ErrorChange = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid change: {e}")))?;
    let who = format!("api: {}", access.caller.name);
    let change = c.to_change(&access.caller.name)?;
    let group = apply_change(&cx, access.reader, given, change, who).await?;
    Ok(json(&group))
}
