//! What the store keeps of exceptions: groups by fingerprint (see
//! `crate::monitor::exception`), written by the monitor from the record stream with
//! its cursor in one transaction, and changed by people (resolve, ignore, reopen,
//! notes).

use std::collections::BTreeMap;

use logbook_proto::Timestamp;
use serde::Serialize;

use super::StreamCursor;

/// What a group's first message becomes when a DSAR deletion's subject was in it.
pub const FORGOTTEN: &str = "[removed by a data subject request]";

/// What the monitor derived from one page of the record stream: applied with the move
/// of its cursor from `from` to `to`, once (a store whose cursor is no longer at
/// `from` applies nothing: another collector took the page).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MonitorUpdate {
    /// The cursor kept before this page.
    pub from: StreamCursor,
    /// The cursor after it.
    pub to: StreamCursor,
    /// The page's exceptions, one delta per fingerprint.
    pub exceptions: Vec<ExceptionDelta>,
    /// The page's span metrics, by minute and by hour.
    pub spans: super::metrics::SpanDeltas,
    /// The page's records by level, by minute and by hour.
    pub volume: super::metrics::VolumeDeltas,
    /// The page's completed tool calls per run and arguments.
    pub tool_repeats: super::alerts::ToolRepeatDeltas,
}

/// A page's occurrences of one exception group.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExceptionDelta {
    /// The group's fingerprint.
    pub fingerprint: String,
    /// How it was made (`custom`, `stack`, `callsite`, `message`).
    pub basis: String,
    /// The exception's type.
    pub kind: String,
    /// The first occurrence's message.
    pub message: String,
    /// Where it happened.
    pub culprit: String,
    /// Occurrences.
    pub count: u64,
    /// The first occurrence's time and record id.
    pub first_ts: Timestamp,
    pub first_id: String,
    /// The last occurrence's.
    pub last_ts: Timestamp,
    pub last_id: String,
    /// The last occurrence's run and trace (hex).
    pub last_run: Option<String>,
    pub last_trace: Option<String>,
    /// Occurrences by hour (hours since the epoch).
    pub hours: BTreeMap<i64, u64>,
    /// Occurrences by service, service version and user.
    pub tags: BTreeMap<(TagKind, String), TagDelta>,
}

/// What an exception tag names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TagKind {
    /// The service.
    Service,
    /// The service's version (`service.version`).
    Version,
    /// The user.
    User,
}

impl TagKind {
    /// The word stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Service => "service",
            Self::Version => "version",
            Self::User => "user",
        }
    }

    /// The tag kind stored as `s`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "service" => Self::Service,
            "version" => Self::Version,
            "user" => Self::User,
            _ => return None,
        })
    }
}

/// A page's occurrences with one tag value.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TagDelta {
    pub count: u64,
    pub first_ts: Timestamp,
    pub last_ts: Timestamp,
}

/// Where a group stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExceptionState {
    /// New, or reopened.
    #[default]
    Unresolved,
    /// Marked fixed (perhaps in a version).
    Resolved,
    /// Not to be shown (perhaps until a time or a count).
    Ignored,
    /// Resolved, then seen again.
    Regressed,
}

impl ExceptionState {
    /// The word stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unresolved => "unresolved",
            Self::Resolved => "resolved",
            Self::Ignored => "ignored",
            Self::Regressed => "regressed",
        }
    }

    /// The state stored as `s`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "unresolved" => Self::Unresolved,
            "resolved" => Self::Resolved,
            "ignored" => Self::Ignored,
            "regressed" => Self::Regressed,
            _ => return None,
        })
    }
}

/// A group's state and what qualifies it: what the monitor's merge and people's
/// changes read and write.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ExceptionStatus {
    pub state: ExceptionState,
    /// Resolved in this version: occurrences from earlier versions do not regress it.
    pub resolved_in: Option<String>,
    /// When it was last resolved, ignored or reopened.
    pub changed: Option<Timestamp>,
    /// Ignored until this time …
    pub ignore_until: Option<Timestamp>,
    /// … or until its count reaches this.
    pub ignore_until_count: Option<u64>,
}

/// One exception group.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ExceptionGroup {
    pub fingerprint: String,
    pub basis: String,
    /// The exception's type.
    #[serde(rename = "type")]
    pub kind: String,
    /// The first occurrence's message.
    pub message: String,
    pub culprit: String,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub count: u64,
    /// Distinct users affected.
    pub users: u64,
    /// Services and versions it occurred in (the most frequent first, at most 20 each).
    pub services: Vec<String>,
    pub versions: Vec<String>,
    #[serde(flatten)]
    pub status: ExceptionStatus,
    /// The ids of the first and the last occurrence's records: samples.
    pub first_id: String,
    pub last_id: String,
    /// The last occurrence's run and trace.
    pub last_run: Option<String>,
    pub last_trace: Option<String>,
}

/// A group with its trend, tags and notes.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ExceptionDetail {
    #[serde(flatten)]
    pub group: ExceptionGroup,
    /// Occurrences by hour, oldest first: `(hour start, count)`.
    pub trend: Vec<(Timestamp, u64)>,
    /// Occurrences by service, version and user (users: the most frequent 100).
    pub tags: Vec<ExceptionTag>,
    /// Notes, oldest first.
    pub notes: Vec<ExceptionNote>,
}

/// Occurrences with one tag value.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExceptionTag {
    pub kind: TagKind,
    pub value: String,
    pub count: u64,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
}

/// A note on a group.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExceptionNote {
    pub ts: Timestamp,
    /// Who wrote it (the token's name, or `cli`).
    pub author: String,
    pub text: String,
}

/// Which groups to list.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExceptionFilter {
    /// Only groups whose fingerprint starts with this.
    pub fingerprint_prefix: Option<String>,
    /// Only groups in these states (all when empty).
    pub states: Vec<ExceptionState>,
    /// Only groups seen in this service.
    pub service: Option<String>,
    /// Only groups whose type, message or culprit contains this.
    pub text: Option<String>,
    /// Only groups last seen at or after this.
    pub since: Option<Timestamp>,
    /// Order: most recent (`last_seen`), most frequent (`count`), newest (`first_seen`).
    pub sort: ExceptionSort,
    pub limit: usize,
}

/// How groups are ordered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ExceptionSort {
    #[default]
    LastSeen,
    Count,
    FirstSeen,
}

/// A person's change to a group.
#[derive(Clone, Debug, PartialEq)]
pub enum ExceptionChange {
    /// Fixed; in this version, if given.
    Resolve { in_version: Option<String> },
    /// Not to be shown; until a time or until this many more occurrences, if given.
    Ignore {
        until: Option<Timestamp>,
        more: Option<u64>,
    },
    /// Back to unresolved.
    Reopen,
    /// A note.
    Note { author: String, text: String },
}

/// Occurrences merged into a group's status: a resolved group seen again (in its
/// resolved-in version or a later one, or at all when it names none) regresses; an
/// ignored one whose time or count has come is unresolved again.
pub fn merged_status(
    status: &ExceptionStatus,
    count_after: u64,
    delta: &ExceptionDelta,
) -> ExceptionStatus {
    let mut s = status.clone();
    let after_change = |ts: Timestamp| status.changed.is_none_or(|c| ts > c);
    match status.state {
        ExceptionState::Resolved => {
            let regressed = match &status.resolved_in {
                None => after_change(delta.last_ts),
                Some(fixed) => {
                    let versions: Vec<&(TagKind, String)> = delta
                        .tags
                        .keys()
                        .filter(|(k, _)| *k == TagKind::Version)
                        .collect();
                    // Without versions, any occurrence after the change counts.
                    (versions.is_empty() && after_change(delta.last_ts))
                        || versions.iter().any(|(_, v)| version_cmp(v, fixed).is_ge())
                }
            };
            if regressed {
                s.state = ExceptionState::Regressed;
                s.changed = Some(delta.last_ts);
            }
        }
        ExceptionState::Ignored => {
            let by_time = status.ignore_until.is_some_and(|t| delta.last_ts >= t);
            let by_count = status.ignore_until_count.is_some_and(|n| count_after >= n);
            if by_time || by_count {
                s.state = ExceptionState::Unresolved;
                s.ignore_until = None;
                s.ignore_until_count = None;
                s.changed = Some(delta.last_ts);
            }
        }
        ExceptionState::Unresolved | ExceptionState::Regressed => {}
    }
    s
}

/// A status after a person's change, the group's count being `count`.
pub fn changed_status(
    status: &ExceptionStatus,
    count: u64,
    change: &ExceptionChange,
    now: Timestamp,
) -> ExceptionStatus {
    let mut s = status.clone();
    match change {
        ExceptionChange::Resolve { in_version } => {
            s = ExceptionStatus {
                state: ExceptionState::Resolved,
                resolved_in: in_version.clone(),
                changed: Some(now),
                ..ExceptionStatus::default()
            };
        }
        ExceptionChange::Ignore { until, more } => {
            s = ExceptionStatus {
                state: ExceptionState::Ignored,
                ignore_until: *until,
                ignore_until_count: more.map(|m| count.saturating_add(m)),
                changed: Some(now),
                ..ExceptionStatus::default()
            };
        }
        ExceptionChange::Reopen => {
            s = ExceptionStatus {
                state: ExceptionState::Unresolved,
                changed: Some(now),
                ..ExceptionStatus::default()
            };
        }
        ExceptionChange::Note { .. } => {}
    }
    s
}

/// Versions in natural order: numeric parts compared as numbers (`1.10.0` after
/// `1.9.2`), the rest as text.
pub fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let parts = |s: &str| -> Vec<String> {
        s.trim_start_matches('v')
            .split(['.', '-', '+', '_'])
            .map(str::to_owned)
            .collect()
    };
    let (pa, pb) = (parts(a), parts(b));
    for (x, y) in pa.iter().zip(&pb) {
        let o = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            // A pre-release part sorts before a release: 1.0.0-rc1 < 1.0.0.
            _ => x.cmp(y),
        };
        if o.is_ne() {
            return o;
        }
    }
    pa.len().cmp(&pb.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delta(ts: i64, versions: &[&str]) -> ExceptionDelta {
        let mut d = ExceptionDelta {
            count: 1,
            first_ts: Timestamp(ts),
            last_ts: Timestamp(ts),
            ..ExceptionDelta::default()
        };
        for v in versions {
            d.tags
                .insert((TagKind::Version, (*v).into()), TagDelta::default());
        }
        d
    }

    #[test]
    fn resolved_groups_regress_only_from_the_fixed_version_on() {
        let resolved = changed_status(
            &ExceptionStatus::default(),
            5,
            &ExceptionChange::Resolve {
                in_version: Some("1.10.0".into()),
            },
            Timestamp(100),
        );
        assert_eq!(resolved.state, ExceptionState::Resolved);
        let old = merged_status(&resolved, 6, &delta(200, &["1.9.3"]));
        assert_eq!(
            old.state,
            ExceptionState::Resolved,
            "an old deploy still failing"
        );
        let new = merged_status(&resolved, 6, &delta(200, &["1.10.0"]));
        assert_eq!(new.state, ExceptionState::Regressed);
        assert_eq!(new.resolved_in.as_deref(), Some("1.10.0"));
        // Resolved in no version: any later occurrence regresses.
        let plain = changed_status(
            &ExceptionStatus::default(),
            5,
            &ExceptionChange::Resolve { in_version: None },
            Timestamp(100),
        );
        assert_eq!(
            merged_status(&plain, 6, &delta(50, &[])).state,
            ExceptionState::Resolved
        );
        assert_eq!(
            merged_status(&plain, 6, &delta(150, &[])).state,
            ExceptionState::Regressed
        );
    }

    #[test]
    fn ignored_groups_come_back_at_their_time_or_count() {
        let by_count = changed_status(
            &ExceptionStatus::default(),
            10,
            &ExceptionChange::Ignore {
                until: None,
                more: Some(5),
            },
            Timestamp(100),
        );
        assert_eq!(
            merged_status(&by_count, 14, &delta(200, &[])).state,
            ExceptionState::Ignored
        );
        assert_eq!(
            merged_status(&by_count, 15, &delta(200, &[])).state,
            ExceptionState::Unresolved
        );
        let by_time = changed_status(
            &ExceptionStatus::default(),
            10,
            &ExceptionChange::Ignore {
                until: Some(Timestamp(1_000)),
                more: None,
            },
            Timestamp(100),
        );
        assert_eq!(
            merged_status(&by_time, 11, &delta(999, &[])).state,
            ExceptionState::Ignored
        );
        assert_eq!(
            merged_status(&by_time, 11, &delta(1_000, &[])).state,
            ExceptionState::Unresolved
        );
    }

    #[test]
    fn versions_compare_naturally() {
        use std::cmp::Ordering::*;
        assert_eq!(version_cmp("1.10.0", "1.9.2"), Greater);
        assert_eq!(version_cmp("v2.0", "2.0"), Equal);
        assert_eq!(version_cmp("1.0.0", "1.0.0.1"), Less);
        assert_eq!(version_cmp("2026.12.01", "2026.11.30"), Greater);
    }
}
