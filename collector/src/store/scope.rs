//! What a caller may see, enforced where every read passes: [`scoped`] wraps a reader
//! so that each of its reads only ever returns, counts or sums what the caller's
//! [`Visibility`] allows. A viewer token scoped to a tenant (and/or a user) reads
//! through such a reader, and nothing else: lists, details by id (a record of another
//! tenant does not exist for it), the stream, runs, calls, cost and stats alike. The
//! HTTP handlers never see an unscoped reader for a scoped caller, so a handler that
//! forgets a filter cannot leak.

use std::io;
use std::sync::Arc;

use logbook_proto::{Level, Record, RecordId, ScopeKey, Timestamp, TraceId};

use super::latency::Histogram;
use super::{
    ApiToken, CallFilter, CostBy, CostGroup, ExceptionDetail, ExceptionFilter, ExceptionGroup,
    ForwardState, LlmCall, QuarantineRow, RunSummary, SeriesPoint, SessionSummary, StoreError,
    StoreReader, StoreStats, StreamCursor, StreamPage, ToolCall,
};
use crate::audit::AuditSource;
use crate::query::{Page, RecordFilter, RunFilter};

/// The records a caller may see: those of its tenant and/or user; everything when
/// neither is set.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Visibility {
    /// Only records whose `tenant` is this.
    pub tenant: Option<String>,
    /// Only records whose `user_id` is this.
    pub user_id: Option<String>,
}

impl Visibility {
    /// Everything.
    pub const ALL: Self = Self {
        tenant: None,
        user_id: None,
    };

    /// Whether nothing is hidden.
    pub fn is_all(&self) -> bool {
        self.tenant.is_none() && self.user_id.is_none()
    }

    /// Whether a row of this tenant and user is visible.
    pub fn sees(&self, tenant: Option<&str>, user_id: Option<&str>) -> bool {
        let ok = |mine: &Option<String>, theirs: Option<&str>| {
            mine.as_deref().is_none_or(|m| theirs == Some(m))
        };
        ok(&self.tenant, tenant) && ok(&self.user_id, user_id)
    }

    fn sees_record(&self, r: &Record) -> bool {
        self.sees(r.scope.get(ScopeKey::Tenant), r.scope.get(ScopeKey::UserId))
    }

    /// A run is visible when it is its tenant's (or user's) alone: a shared run's
    /// totals would tell of another's records.
    fn sees_run(&self, r: &RunSummary) -> bool {
        !r.shared && self.sees(r.tenant.as_deref(), r.user_id.as_deref())
    }

    /// The filters `tenant` and `user` narrowed to this visibility; `None` when they
    /// ask for something outside it (nothing can match).
    fn narrow(&self, tenant: &mut Option<String>, user_id: &mut Option<String>) -> Option<()> {
        for (mine, wanted) in [(&self.tenant, tenant), (&self.user_id, user_id)] {
            match (mine, wanted.as_deref()) {
                (None, _) => {}
                (Some(m), Some(w)) if m != w => return None,
                (Some(m), _) => *wanted = Some(m.clone()),
            }
        }
        Some(())
    }

    fn records(&self, f: &RecordFilter) -> Option<RecordFilter> {
        let mut f = f.clone();
        self.narrow(&mut f.tenant, &mut f.user_id)?;
        Some(f)
    }

    fn runs(&self, f: &RunFilter) -> Option<RunFilter> {
        let mut f = f.clone();
        self.narrow(&mut f.tenant, &mut f.user_id)?;
        f.unshared = true;
        Some(f)
    }

    fn calls(&self, f: &CallFilter) -> Option<CallFilter> {
        let mut f = f.clone();
        self.narrow(&mut f.tenant, &mut f.user_id)?;
        Some(f)
    }
}

/// `reader` as `visibility` allows: `reader` itself when it allows everything.
pub fn scoped(reader: Arc<dyn StoreReader>, visibility: Visibility) -> Arc<dyn StoreReader> {
    if visibility.is_all() {
        reader
    } else {
        Arc::new(Scoped {
            inner: reader,
            vis: visibility,
        })
    }
}

/// A reader that shows only what its visibility allows.
struct Scoped {
    inner: Arc<dyn StoreReader>,
    vis: Visibility,
}

/// What a scoped reader does not show at all: the store's operations and its trail.
fn not_visible(what: &str) -> StoreError {
    StoreError::NotPermitted(format!("{what} is not visible to a scoped reader"))
}

impl StoreReader for Scoped {
    fn query(&self, filter: &RecordFilter, page: &Page) -> Result<Vec<Record>, StoreError> {
        match self.vis.records(filter) {
            Some(f) => self.inner.query(&f, page),
            None => Ok(Vec::new()),
        }
    }

    fn count(&self, filter: &RecordFilter) -> Result<u64, StoreError> {
        match self.vis.records(filter) {
            Some(f) => self.inner.count(&f),
            None => Ok(0),
        }
    }

    fn top_values(
        &self,
        filter: &RecordFilter,
        key: &str,
        sample: usize,
        limit: usize,
    ) -> Result<(Vec<(String, u64)>, u64), StoreError> {
        match self.vis.records(filter) {
            Some(f) => self.inner.top_values(&f, key, sample, limit),
            None => Ok((Vec::new(), 0)),
        }
    }

    fn scan(
        &self,
        filter: &RecordFilter,
        visit: &mut dyn FnMut(Record) -> io::Result<()>,
    ) -> Result<u64, StoreError> {
        match self.vis.records(filter) {
            Some(f) => self.inner.scan(&f, visit),
            None => Ok(0),
        }
    }

    fn get(&self, id: RecordId) -> Result<Option<Record>, StoreError> {
        Ok(self.inner.get(id)?.filter(|r| self.vis.sees_record(r)))
    }

    fn stream_end(&self) -> Result<StreamCursor, StoreError> {
        self.inner.stream_end()
    }

    fn stream_after(
        &self,
        cursor: StreamCursor,
        filter: &RecordFilter,
        limit: usize,
    ) -> Result<StreamPage, StoreError> {
        match self.vis.records(filter) {
            Some(f) => self.inner.stream_after(cursor, &f, limit),
            None => Ok(StreamPage {
                items: Vec::new(),
                cursor,
            }),
        }
    }

    fn runs(&self, filter: &RunFilter) -> Result<Vec<RunSummary>, StoreError> {
        match self.vis.runs(filter) {
            Some(f) => self.inner.runs(&f),
            None => Ok(Vec::new()),
        }
    }

    fn count_runs(&self, filter: &RunFilter) -> Result<u64, StoreError> {
        match self.vis.runs(filter) {
            Some(f) => self.inner.count_runs(&f),
            None => Ok(0),
        }
    }

    fn run(&self, key: &str) -> Result<Option<RunSummary>, StoreError> {
        Ok(self.inner.run(key)?.filter(|r| self.vis.sees_run(r)))
    }

    fn runs_of_trace(&self, trace: TraceId) -> Result<Vec<RunSummary>, StoreError> {
        let mut runs = self.inner.runs_of_trace(trace)?;
        runs.retain(|r| self.vis.sees_run(r));
        Ok(runs)
    }

    fn run_records(&self, key: &str, limit: usize) -> Result<Vec<Record>, StoreError> {
        if self.run(key)?.is_none() {
            return Ok(Vec::new());
        }
        let mut records = self.inner.run_records(key, limit)?;
        records.retain(|r| self.vis.sees_record(r));
        Ok(records)
    }

    fn record_series(
        &self,
        filter: &RecordFilter,
        bucket_ns: i64,
    ) -> Result<Vec<SeriesPoint>, StoreError> {
        match self.vis.records(filter) {
            Some(f) => self.inner.record_series(&f, bucket_ns),
            None => Ok(Vec::new()),
        }
    }

    fn run_series(
        &self,
        filter: &RunFilter,
        bucket_ns: i64,
    ) -> Result<Vec<SeriesPoint>, StoreError> {
        match self.vis.runs(filter) {
            Some(f) => self.inner.run_series(&f, bucket_ns),
            None => Ok(Vec::new()),
        }
    }

    fn call_series(
        &self,
        filter: &CallFilter,
        bucket_ns: i64,
    ) -> Result<Vec<SeriesPoint>, StoreError> {
        match self.vis.calls(filter) {
            Some(f) => self.inner.call_series(&f, bucket_ns),
            None => Ok(Vec::new()),
        }
    }

    fn sessions(
        &self,
        filter: &RunFilter,
        after: Option<&(Timestamp, String)>,
    ) -> Result<Vec<SessionSummary>, StoreError> {
        match self.vis.runs(filter) {
            Some(f) => self.inner.sessions(&f, after),
            None => Ok(Vec::new()),
        }
    }

    fn run_outline(&self, key: &str, limit: usize) -> Result<Vec<Record>, StoreError> {
        if self.run(key)?.is_none() {
            return Ok(Vec::new());
        }
        let mut records = self.inner.run_outline(key, limit)?;
        records.retain(|r| self.vis.sees_record(r));
        Ok(records)
    }

    fn llm_calls(&self, filter: &CallFilter) -> Result<Vec<LlmCall>, StoreError> {
        match self.vis.calls(filter) {
            Some(f) => self.inner.llm_calls(&f),
            None => Ok(Vec::new()),
        }
    }

    fn tool_calls(&self, filter: &CallFilter) -> Result<Vec<ToolCall>, StoreError> {
        match self.vis.calls(filter) {
            Some(f) => self.inner.tool_calls(&f),
            None => Ok(Vec::new()),
        }
    }

    fn cost(&self, by: CostBy, filter: &CallFilter) -> Result<Vec<CostGroup>, StoreError> {
        match self.vis.calls(filter) {
            Some(f) => self.inner.cost(by, &f),
            None => Ok(Vec::new()),
        }
    }

    fn costs(
        &self,
        bys: &[CostBy],
        filter: &CallFilter,
    ) -> Result<Vec<Vec<CostGroup>>, StoreError> {
        match self.vis.calls(filter) {
            Some(f) => self.inner.costs(bys, &f),
            None => Ok(bys.iter().map(|_| Vec::new()).collect()),
        }
    }

    /// The visible records counted by level and kind, the visible runs, and the
    /// visible time range; nothing about the store itself (its size, its clients, its
    /// trail, what its limits and rules did), which is everyone's.
    fn stats(&self) -> Result<StoreStats, StoreError> {
        let Some(f) = self.vis.records(&RecordFilter::default()) else {
            return Ok(StoreStats::default());
        };
        let mut s = StoreStats {
            storage: "scoped: only the records this token may read are counted".into(),
            ..StoreStats::default()
        };
        // Counts at or above each level, then differences.
        let mut at_least = [0u64; 5];
        for (i, level) in Level::ALL.iter().enumerate() {
            at_least[i] = self.inner.count(&RecordFilter {
                min_level: Some((*level).max(f.min_level.unwrap_or(Level::Trace))),
                ..f.clone()
            })?;
        }
        for i in 0..5 {
            // Each count is its own read: records arriving between two of them must
            // not make a difference negative.
            s.by_level[i] = at_least[i].saturating_sub(at_least.get(i + 1).copied().unwrap_or(0));
        }
        s.records = at_least[0];
        for (i, kind) in [
            logbook_proto::Kind::Event,
            logbook_proto::Kind::SpanStart,
            logbook_proto::Kind::SpanEnd,
        ]
        .into_iter()
        .enumerate()
        {
            s.by_kind[i] = if f.kind.is_some_and(|k| k != kind) {
                0
            } else {
                self.inner.count(&RecordFilter {
                    kind: Some(kind),
                    ..f.clone()
                })?
            };
        }
        s.runs = self.count_runs(&RunFilter {
            since: f.since,
            until: f.until,
            ..RunFilter::default()
        })?;
        s.newest = (self.inner.query(
            &f,
            &Page {
                limit: 1,
                before: None,
            },
        )?)
        .first()
        .map(|r| r.ts);
        s.oldest = self.oldest(&f)?;
        Ok(s)
    }

    fn quarantined(&self, _limit: usize) -> Result<Vec<QuarantineRow>, StoreError> {
        Err(not_visible("the quarantine"))
    }

    fn latency(&self, _since: Timestamp) -> Result<Histogram, StoreError> {
        Ok(Histogram::default())
    }

    fn with_audit_snapshot(
        &self,
        _f: &mut dyn FnMut(&mut dyn AuditSource) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        Err(not_visible("the audit trail"))
    }

    fn tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        Err(not_visible("the token list"))
    }

    fn forward_state(&self, _name: &str) -> Result<Option<ForwardState>, StoreError> {
        Err(not_visible("forwarding"))
    }

    fn monitor_cursor(&self) -> Result<Option<StreamCursor>, StoreError> {
        Err(not_visible("the monitor"))
    }

    // Groups gather every tenant's occurrences: a scoped viewer sees none of them.
    fn exception_groups(
        &self,
        _filter: &ExceptionFilter,
    ) -> Result<Vec<ExceptionGroup>, StoreError> {
        Err(not_visible("exception groups"))
    }

    fn exception_group(&self, _fingerprint: &str) -> Result<Option<ExceptionDetail>, StoreError> {
        Err(not_visible("exception groups"))
    }

    // Metrics gather every tenant's spans.
    fn span_rows(
        &self,
        _filter: &super::metrics::MetricsFilter,
    ) -> Result<Vec<super::metrics::SpanRow>, StoreError> {
        Err(not_visible("span metrics"))
    }

    fn log_volume(
        &self,
        _filter: &super::metrics::MetricsFilter,
    ) -> Result<Vec<(i64, u8, u64)>, StoreError> {
        Err(not_visible("log volume"))
    }

    fn open_loops(&self, _threshold: u64) -> Result<Vec<super::alerts::LoopRow>, StoreError> {
        Err(not_visible("alerts"))
    }

    fn alert_states(&self) -> Result<Vec<super::alerts::AlertState>, StoreError> {
        Err(not_visible("alerts"))
    }

    fn alert_events(&self, _limit: usize) -> Result<Vec<super::alerts::AlertEvent>, StoreError> {
        Err(not_visible("alerts"))
    }

    fn token(&self, _id: &str) -> Result<Option<ApiToken>, StoreError> {
        Err(not_visible("a token"))
    }
}

impl Scoped {
    /// The oldest visible record's time: the first one a scan, oldest first, meets.
    fn oldest(&self, f: &RecordFilter) -> Result<Option<Timestamp>, StoreError> {
        let mut first = None;
        let stop = self.inner.scan(f, &mut |r| {
            first = Some(r.ts);
            Err(io::Error::other("found"))
        });
        match stop {
            Ok(_) | Err(StoreError::Stopped(_)) => Ok(first),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn narrowing_never_widens() {
        let v = Visibility {
            tenant: Some("acme".into()),
            user_id: None,
        };
        let f = v.records(&RecordFilter::default()).unwrap();
        assert_eq!(f.tenant.as_deref(), Some("acme"));
        assert!(v
            .records(&RecordFilter {
                tenant: Some("other".into()),
                ..RecordFilter::default()
            })
            .is_none());
        let f = v
            .records(&RecordFilter {
                user_id: Some("u1".into()),
                ..RecordFilter::default()
            })
            .unwrap();
        assert_eq!(
            (f.tenant.as_deref(), f.user_id.as_deref()),
            (Some("acme"), Some("u1"))
        );
        assert!(v.sees(Some("acme"), None));
        assert!(!v.sees(None, None));
        assert!(!v.sees(Some("other"), Some("u1")));
        assert!(Visibility::ALL.sees(None, None));
    }
}
