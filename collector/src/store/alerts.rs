//! What the store keeps for alerts (see `crate::alerts`): repeated tool calls per run
//! (the loop detector's counts, written by the monitor with its cursor), each alert's
//! state, and the history of every firing and delivery attempt.

use std::collections::BTreeMap;

use logbook_proto::Timestamp;
use serde::Serialize;

/// A page's completed tool calls, by `(run, tool, hash of the canonical arguments)`.
pub type ToolRepeatDeltas = BTreeMap<(String, String, String), ToolRepeatDelta>;

/// A page's calls of one tool with one set of arguments in one run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ToolRepeatDelta {
    pub count: u64,
    pub first_ts: Timestamp,
    pub last_ts: Timestamp,
    /// The arguments, canonical JSON, cut to 1,000 bytes.
    pub arguments: String,
    pub service: String,
}

/// A tool called with the same arguments at least N times in a run still running.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LoopRow {
    pub run_id: String,
    pub tool: String,
    pub arguments: String,
    pub count: u64,
    pub first_ts: Timestamp,
    pub last_ts: Timestamp,
    pub service: String,
}

/// One alert (a rule and its labels) as the evaluator left it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct AlertState {
    pub rule: String,
    /// Its labels, as text (`run_id=…,tool=…`): what tells the rule's alerts apart.
    pub key: String,
    /// `pending` or `firing` (inactive alerts are not kept).
    pub state: String,
    /// Since when it has been in this state.
    pub since: Timestamp,
    /// When it was last sent.
    pub last_sent: Option<Timestamp>,
    pub labels: BTreeMap<String, String>,
    /// The value that made it fire (a count, a duration in ms).
    pub value: f64,
    pub summary: String,
}

/// A firing, a resolution or a test, and what its delivery came to.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct AlertEvent {
    pub ts: Timestamp,
    /// When the alert started firing (its `startsAt`; as `ts` when read back).
    #[serde(skip)]
    pub started: Timestamp,
    pub rule: String,
    pub key: String,
    /// `firing`, `resolved` or `test`.
    pub state: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
    pub summary: String,
    /// `sent`, `failed: …`, or `no channel`.
    pub delivery: String,
    /// Delivery attempts made.
    pub attempts: u32,
}
