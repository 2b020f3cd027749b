//! Query strings: [`Params`] parses them (every parameter used or refused, none
//! ignored), and the `IntoParams` types describe them in the OpenAPI document; a test
//! keeps the two in step with the filters they stand for.

use super::{ApiError, DEFAULT_LIMIT, MAX_LIMIT};

/// The largest `limit` a request may ask for (it gets [`MAX_LIMIT`] at most).
pub(super) const MAX_LIMIT_ASKED: usize = 1_000_000;

/// The filters of `logbook query`: every list of records takes them.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub(super) struct RecordQuery {
    /// At or after: RFC 3339, or an age (30s, 15m, 2h, 7d).
    #[param(
        pattern = r"^(|([0-9]{1,9}(ms|s|m|h|d|w)|(19[7-9][0-9]|2[01][0-9][0-9])-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?(Z|[+-](0[0-9]|1[0-3]):[0-5][0-9])))$"
    )]
    since: Option<String>,
    /// Before: RFC 3339, or an age.
    #[param(
        pattern = r"^(|([0-9]{1,9}(ms|s|m|h|d|w)|(19[7-9][0-9]|2[01][0-9][0-9])-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?(Z|[+-](0[0-9]|1[0-3]):[0-5][0-9])))$"
    )]
    until: Option<String>,
    /// This level or more severe.
    #[param(pattern = "^(|(trace|debug|info|warn|error))$")]
    level: Option<String>,
    /// Run id.
    run: Option<String>,
    /// Trace id, 32 hex digits.
    #[param(pattern = "^(|[0-9a-f]{31}[1-9a-f])$")]
    trace: Option<String>,
    /// Tenant.
    tenant: Option<String>,
    /// Project.
    project: Option<String>,
    /// App.
    app: Option<String>,
    /// User id.
    user: Option<String>,
    /// Record kind.
    #[param(pattern = "^(|(event|span_start|span_end))$")]
    kind: Option<String>,
    /// Category (llm_call, tool_call, audit, …).
    category: Option<String>,
    /// Span or event name.
    name: Option<String>,
    /// Target, or a module below it.
    target: Option<String>,
    /// Full text: every word must occur in the message or a string field.
    text: Option<String>,
    /// `KEY=VALUE` on a field; repeat for more.
    #[param(pattern = "^(|[^=]+=.*)$")]
    field: Option<Vec<String>>,
    /// Spans that lasted at least this long: 250ms, 1.5s, 2m.
    #[param(pattern = r"^(|[0-9]{1,12}(\.[0-9]{1,9})?(ns|us|µs|ms|s|m|h))$")]
    min_duration: Option<String>,
    /// Spans that lasted at most this long.
    #[param(pattern = r"^(|[0-9]{1,12}(\.[0-9]{1,9})?(ns|us|µs|ms|s|m|h))$")]
    max_duration: Option<String>,
}

/// The filters of `logbook runs`.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub(super) struct RunQuery {
    /// Started at or after: RFC 3339, or an age.
    #[param(
        pattern = r"^(|([0-9]{1,9}(ms|s|m|h|d|w)|(19[7-9][0-9]|2[01][0-9][0-9])-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?(Z|[+-](0[0-9]|1[0-3]):[0-5][0-9])))$"
    )]
    since: Option<String>,
    /// Started before.
    #[param(
        pattern = r"^(|([0-9]{1,9}(ms|s|m|h|d|w)|(19[7-9][0-9]|2[01][0-9][0-9])-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?(Z|[+-](0[0-9]|1[0-3]):[0-5][0-9])))$"
    )]
    until: Option<String>,
    /// Tenant.
    tenant: Option<String>,
    /// User id.
    user: Option<String>,
    /// Service of the root span.
    service: Option<String>,
    /// Status.
    #[param(pattern = "^(|(running|ok|error))$")]
    status: Option<String>,
    /// Agent name.
    agent: Option<String>,
    /// Keyed by a run id (`run`) or a trace's (`trace`).
    #[param(pattern = "^(|(run|trace))$")]
    kind: Option<String>,
    /// Session id: the runs of one conversation.
    session: Option<String>,
    /// A model one of the run's LLM calls used.
    model: Option<String>,
    /// Text in the root span's name, the run id or the agent (any case).
    text: Option<String>,
    /// `KEY=VALUE` on a field of the root span; repeat for more.
    #[param(pattern = "^(|[^=]+=.*)$")]
    meta: Option<Vec<String>>,
    /// Runs at most (1000 at most; 100 by default).
    #[param(minimum = 1, maximum = 1000000)]
    limit: Option<u32>,
    /// The previous page's `next`.
    #[param(pattern = r"^(|[0-9]{1,18}\..+)$")]
    after: Option<String>,
}

/// The filters of `logbook calls` and `logbook cost`.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub(super) struct CallQuery {
    /// Started at or after: RFC 3339, or an age.
    #[param(
        pattern = r"^(|([0-9]{1,9}(ms|s|m|h|d|w)|(19[7-9][0-9]|2[01][0-9][0-9])-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?(Z|[+-](0[0-9]|1[0-3]):[0-5][0-9])))$"
    )]
    since: Option<String>,
    /// Started before.
    #[param(
        pattern = r"^(|([0-9]{1,9}(ms|s|m|h|d|w)|(19[7-9][0-9]|2[01][0-9][0-9])-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?(Z|[+-](0[0-9]|1[0-3]):[0-5][0-9])))$"
    )]
    until: Option<String>,
    /// Run (its key).
    run: Option<String>,
    /// Tenant.
    tenant: Option<String>,
    /// User id.
    user: Option<String>,
    /// App.
    app: Option<String>,
    /// Service.
    service: Option<String>,
    /// Status.
    #[param(pattern = "^(|(ok|error))$")]
    status: Option<String>,
    /// Model (LLM calls).
    model: Option<String>,
}

/// A page of a list.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub(super) struct PageQuery {
    /// Items at most (1000 at most; 100 by default).
    #[param(minimum = 1, maximum = 1000000)]
    limit: Option<u32>,
    /// The previous page's `next`.
    #[param(pattern = r"^(|[0-9]{1,18}\.[0-9]{1,18})$")]
    before: Option<String>,
}

/// A query string's parameters, in order, decoded.
#[derive(Debug, Default)]
pub struct Params(pub(crate) Vec<(String, String)>);

impl Params {
    /// The parameters of `query` (`a=1&b=2`).
    /// An empty value is no value (`since=&level=warn` is `level=warn`), as forms
    /// send their empty fields; but for a number (`limit=` is refused, as its
    /// documented type says).
    pub fn parse(query: Option<&str>) -> Self {
        Self(
            form_urlencoded::parse(query.unwrap_or("").as_bytes())
                .filter(|(k, v)| !v.is_empty() || k == "limit")
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// Removes and returns the value of `key` (400 if given twice).
    pub fn take(&mut self, key: &str) -> Result<Option<String>, ApiError> {
        let mut found = None;
        let mut twice = false;
        self.0.retain(|(k, v)| {
            if k != key {
                return true;
            }
            twice |= found.is_some();
            found = Some(v.clone());
            false
        });
        if twice {
            return Err(ApiError::bad_request(format!("{key} given twice")));
        }
        Ok(found)
    }

    /// The first value of `key` as given (empty when absent), left in place: what a
    /// page's form shows again.
    pub fn shown(&self, key: &str) -> String {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    /// Removes and returns the first value of `key`, which may be repeated.
    pub fn take_one(&mut self, key: &str) -> Option<String> {
        let i = self.0.iter().position(|(k, _)| k == key)?;
        Some(self.0.remove(i).1)
    }

    /// Removes and parses `key`.
    pub fn parse_value<T: std::str::FromStr>(&mut self, key: &str) -> Result<Option<T>, ApiError>
    where
        T::Err: std::fmt::Display,
    {
        self.take(key)?
            .map(|v| {
                v.parse()
                    .map_err(|e| ApiError::bad_request(format!("{key}: {e}")))
            })
            .transpose()
    }

    /// `limit`, at most [`MAX_LIMIT`] (default [`DEFAULT_LIMIT`]).
    pub fn limit(&mut self) -> Result<usize, ApiError> {
        let limit: usize = self.parse_value("limit")?.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT_ASKED).contains(&limit) {
            return Err(ApiError::bad_request(format!(
                "limit: must be 1 to {MAX_LIMIT_ASKED} (pages hold {MAX_LIMIT} at most)"
            )));
        }
        Ok(limit.min(MAX_LIMIT))
    }

    /// 400 naming the first parameter left, if any (none is ignored silently).
    pub fn finish(self, known: &[&str]) -> Result<(), ApiError> {
        match self.0.first() {
            Some((k, _)) => Err(ApiError::bad_request(format!(
                "unknown parameter {k:?} (known: {})",
                known.join(", ")
            ))),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use utoipa::IntoParams as _;

    use super::RecordQuery;
    use crate::query::RecordFilter;

    #[test]
    fn the_documented_record_filters_are_the_filters() {
        let documented: Vec<String> = RecordQuery::into_params(|| None)
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(documented, RecordFilter::KEYS);
    }
}
