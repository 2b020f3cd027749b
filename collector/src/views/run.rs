//! What a run is, and what records add to it.
//!
//! A run is a unit of work: the records sharing a `run_id`; or, for records that carry
//! none but belong to a span tree, the records of one trace, keyed by the trace id
//! ([`run_key`]). A record's run is a function of the record alone, so it never
//! depends on what arrived before it.
//!
//! Its **root** names it and, once it ends, decides its status and duration: for a
//! `run_id` run the span that introduced the id (category `run`), for a trace's run a
//! span without a parent. When several qualify (one run started in two places, or a
//! trace whose true root never arrives and whose spans are joined from elsewhere), the
//! root is the one of highest rank (no parent over a parent), then lowest span id.
//! Until a root arrives the run has none: it is listed as `running`, its records form
//! its tree all the same.
//!
//! Records are added as [`RunDelta`]s whose merge is commutative, associative and,
//! with records stored once by id, idempotent: any order, any split into batches, any
//! repetition of records gives the same run. Every "pick one" value is either the
//! root's (chosen as above) or the least of those seen; counts and tokens add up;
//! costs add up in whole nano-dollars; models form a set. Several collectors can
//! therefore feed one run, each merging its deltas in the database.

use std::cmp::Ordering;
use std::collections::HashMap;

use logbook_proto::genai::AGENT_NAME;
use logbook_proto::{Kind, Record, ScopeKey, SpanId, Status, TraceId};

use super::call::{CallRow, CallTotals};
use crate::pipeline::CATEGORY_RUN;
use crate::store::RunKind;

/// A run's key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RunKey<'a> {
    /// A `run_id`.
    Run(&'a str),
    /// The trace of records that carry no `run_id`.
    Trace(TraceId),
}

impl RunKey<'_> {
    /// What the key is.
    pub fn kind(&self) -> RunKind {
        match self {
            Self::Run(_) => RunKind::Run,
            Self::Trace(_) => RunKind::Trace,
        }
    }

    /// The key as stored: the run id, or the trace id in lowercase hex.
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Self::Run(id) => std::borrow::Cow::Borrowed(id),
            Self::Trace(t) => std::borrow::Cow::Owned(t.to_hex()),
        }
    }
}

/// The run `r` belongs to: its `run_id`; else, if it is part of a span tree (a span, or
/// an event inside one), its trace; else none (an event outside every span).
pub fn run_key(r: &Record) -> Option<RunKey<'_>> {
    if let Some(id) = r.scope.get(ScopeKey::RunId) {
        return Some(RunKey::Run(id));
    }
    r.span_id.map(|_| RunKey::Trace(r.trace_id))
}

/// The run key of a stored record from its parts (for backends that read them as
/// columns): the run id, else the trace's hex when the record has a span.
pub fn run_key_text(run_id: Option<&str>, trace_id: &TraceId, has_span: bool) -> Option<String> {
    match run_id {
        Some(id) => Some(id.to_owned()),
        None => has_span.then(|| trace_id.to_hex()),
    }
}

/// Rank of a run's root span with no parent.
pub const RANK_TOP: u8 = 2;
/// Rank of a root span whose parent is elsewhere (a run started inside another).
pub const RANK_NESTED: u8 = 1;

/// How strongly `r` (a span record) claims to be the root of its run `key`; `None` if
/// it is not a root.
fn root_rank(r: &Record, key: &RunKey<'_>) -> Option<u8> {
    if r.kind == Kind::Event {
        return None;
    }
    let parentless = r.parent_span_id.is_none();
    match key {
        RunKey::Run(_) if r.category.as_deref() == Some(CATEGORY_RUN) => {
            Some(if parentless { RANK_TOP } else { RANK_NESTED })
        }
        RunKey::Trace(_) if parentless => Some(RANK_TOP),
        _ => None,
    }
}

/// A run's root span, as far as seen.
#[derive(Clone, Debug, PartialEq)]
pub struct Root<'a> {
    /// See [`RANK_TOP`].
    pub rank: u8,
    /// The span.
    pub span_id: SpanId,
    /// Its name.
    pub name: &'a str,
    /// Its trace.
    pub trace_id: TraceId,
    /// Its service.
    pub service: &'a str,
    /// Its `gen_ai.agent.name`.
    pub agent: Option<&'a str>,
    /// How it ended, once its end is seen.
    pub status: Option<Status>,
    /// Its duration, once its end is seen.
    pub duration_ns: Option<u64>,
}

impl<'a> Root<'a> {
    fn of(r: &'a Record, rank: u8) -> Option<Self> {
        Some(Self {
            rank,
            span_id: r.span_id?,
            name: &r.name,
            trace_id: r.trace_id,
            service: &r.resource.service,
            agent: r.fields.get(AGENT_NAME).and_then(|v| v.as_str()),
            status: (r.kind == Kind::SpanEnd).then(|| r.status.unwrap_or(Status::Ok)),
            duration_ns: (r.kind == Kind::SpanEnd).then_some(r.duration_ns).flatten(),
        })
    }

    /// Higher rank first, then the lower span id.
    fn precedence(&self, other: &Self) -> Ordering {
        other
            .rank
            .cmp(&self.rank)
            .then(self.span_id.0.cmp(&other.span_id.0))
    }

    /// Merges another root: the one that takes precedence wins; records of the same span
    /// (its start and its end) combine, in either order: the least text, an error
    /// over an ok over still running, the longer duration.
    fn merge(&mut self, other: Self) {
        match self.precedence(&other) {
            Ordering::Greater => *self = other,
            Ordering::Less => {}
            Ordering::Equal => {
                self.name = min_str(self.name, other.name);
                self.trace_id = self.trace_id.min(other.trace_id);
                self.service = min_str(self.service, other.service);
                self.agent = least(self.agent, other.agent);
                self.status = match (self.status, other.status) {
                    (Some(Status::Error), _) | (_, Some(Status::Error)) => Some(Status::Error),
                    (a, b) => a.or(b),
                };
                self.duration_ns = match (self.duration_ns, other.duration_ns) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
            }
        }
    }

    /// `running` until the root's end is seen, then `ok` or `error`.
    pub fn status_word(&self) -> &'static str {
        self.status.map_or(STATUS_RUNNING, Status::as_str)
    }
}

/// A run's status before its root ends.
pub const STATUS_RUNNING: &str = "running";

/// The scope fields a run keeps, in this order.
pub const RUN_SCOPE: [ScopeKey; 6] = [
    ScopeKey::Tenant,
    ScopeKey::Env,
    ScopeKey::Project,
    ScopeKey::App,
    ScopeKey::UserId,
    ScopeKey::SessionId,
];

/// The lesser of two texts; the same text (records of one span share their scope and
/// resource) without comparing it.
fn min_str<'a>(a: &'a str, b: &'a str) -> &'a str {
    if std::ptr::eq(a, b) {
        a
    } else {
        a.min(b)
    }
}

/// The least of two optional texts: what "pick one" merges to when no root decides.
fn least<'a>(a: Option<&'a str>, b: Option<&'a str>) -> Option<&'a str> {
    match (a, b) {
        (Some(a), Some(b)) => Some(min_str(a, b)),
        (a, b) => a.or(b),
    }
}

/// The greatest of two optional texts.
fn greatest<'a>(a: Option<&'a str>, b: Option<&'a str>) -> Option<&'a str> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b > a { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// What a set of records adds to one run.
#[derive(Clone, Debug, PartialEq)]
pub struct RunDelta<'a> {
    /// The run.
    pub key: RunKey<'a>,
    /// Earliest record time.
    pub first_ts: i64,
    /// Latest record time.
    pub last_ts: i64,
    /// Records.
    pub records: u64,
    /// ERROR events and failed spans.
    pub errors: u64,
    /// Span ends.
    pub spans: u64,
    /// The root, if among these records.
    pub root: Option<Root<'a>>,
    /// The least trace id seen (the run's trace until a root says otherwise).
    pub trace_id: TraceId,
    /// The least service seen.
    pub service: &'a str,
    /// The least `gen_ai.agent.name` seen.
    pub agent: Option<&'a str>,
    /// The least value seen of each of [`RUN_SCOPE`].
    pub scope: [Option<&'a str>; 6],
    /// The greatest tenant and user seen: a run whose least and greatest differ holds
    /// records of several tenants or users (it is shared, and no scoped reader sees
    /// it, since its totals are not any one tenant's).
    pub scope_max: [Option<&'a str>; 2],
    /// What the calls among these records add.
    pub calls: CallTotals,
}

impl<'a> RunDelta<'a> {
    /// The delta of one record, `call` being the call it ends (if any).
    pub fn of(r: &'a Record, key: RunKey<'a>, call: Option<&CallRow<'_>>) -> Self {
        let mut calls = CallTotals::default();
        if let Some(c) = call {
            calls.add_call(c);
        }
        let mut scope = [None; 6];
        for (slot, k) in scope.iter_mut().zip(RUN_SCOPE) {
            *slot = r.scope.get(k);
        }
        let scope_max = [scope[0], scope[4]];
        Self {
            root: root_rank(r, &key).and_then(|rank| Root::of(r, rank)),
            key,
            first_ts: r.ts.as_nanos(),
            last_ts: r.ts.as_nanos(),
            records: 1,
            errors: u64::from(r.is_error()),
            spans: u64::from(r.kind == Kind::SpanEnd),
            trace_id: r.trace_id,
            service: &r.resource.service,
            agent: r.fields.get(AGENT_NAME).and_then(|v| v.as_str()),
            scope,
            scope_max,
            calls,
        }
    }

    /// Adds another delta of the same run. Commutative and associative.
    pub fn merge(&mut self, other: Self) {
        debug_assert_eq!(self.key, other.key);
        self.first_ts = self.first_ts.min(other.first_ts);
        self.last_ts = self.last_ts.max(other.last_ts);
        self.records = self.records.saturating_add(other.records);
        self.errors = self.errors.saturating_add(other.errors);
        self.spans = self.spans.saturating_add(other.spans);
        self.root = match (self.root.take(), other.root) {
            (Some(mut a), Some(b)) => {
                a.merge(b);
                Some(a)
            }
            (a, b) => a.or(b),
        };
        self.trace_id = self.trace_id.min(other.trace_id);
        self.service = min_str(self.service, other.service);
        self.agent = least(self.agent, other.agent);
        for (a, b) in self.scope.iter_mut().zip(other.scope) {
            *a = least(*a, b);
        }
        for (a, b) in self.scope_max.iter_mut().zip(other.scope_max) {
            *a = greatest(*a, b);
        }
        if !other.calls.is_empty() {
            self.calls.merge(&other.calls);
        }
    }

    /// The run's trace: its root's, else the least seen.
    pub fn effective_trace(&self) -> TraceId {
        self.root.as_ref().map_or(self.trace_id, |r| r.trace_id)
    }
}

/// The deltas `records` add to their runs (records outside every run add nothing).
/// Pure: the write path of every backend stores what this returns.
pub fn derive<'a>(
    records: impl IntoIterator<Item = (&'a Record, Option<&'a CallRow<'a>>)>,
) -> HashMap<RunKey<'a>, RunDelta<'a>> {
    let mut runs: HashMap<RunKey<'a>, RunDelta<'a>> = HashMap::new();
    for (r, call) in records {
        let Some(key) = run_key(r) else { continue };
        let delta = RunDelta::of(r, key, call);
        match runs.get_mut(&key) {
            Some(d) => d.merge(delta),
            None => {
                runs.insert(key, delta);
            }
        }
    }
    runs
}
