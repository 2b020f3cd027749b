//! What a reader asks for: record filters, keyset pages, run filters and time specs.
//! Shared by the CLI and the store backends.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use logbook_proto::{Kind, Level, Timestamp, TraceId};
use thiserror::Error;

/// A time bound given as RFC 3339 or as an age (`15m`, `2h`, `7d`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeSpec {
    /// An absolute time.
    At(Timestamp),
    /// That long before now.
    Ago(Duration),
}

/// A time or duration argument that does not parse.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ParseTimeError {
    /// Neither a time nor an age.
    #[error("invalid time {0:?}: expected RFC 3339 (2026-11-21T20:00:00Z) or an age such as 30s, 15m, 2h, 7d")]
    Syntax(String),
    /// A time or an age too far away.
    #[error("{0}")]
    Range(String),
}

impl TimeSpec {
    /// The absolute time this spec names, relative to `now`.
    pub fn resolve(self, now: Timestamp) -> Timestamp {
        match self {
            Self::At(t) => t,
            Self::Ago(d) => now.saturating_sub(d),
        }
    }
}

impl FromStr for TimeSpec {
    type Err = ParseTimeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(d) = parse_age(s) {
            return Ok(Self::Ago(d));
        }
        // Digits and a unit that still did not parse: too many of them.
        let (digits, unit) = s
            .trim()
            .split_at(s.trim().find(|c: char| !c.is_ascii_digit()).unwrap_or(0));
        if !digits.is_empty() && ["ms", "s", "m", "h", "d", "w"].contains(&unit) {
            return Err(ParseTimeError::Range(format!(
                "age {s:?} is too large: its number does not fit in 64 bits"
            )));
        }
        Timestamp::parse_rfc3339(s)
            .map(Self::At)
            .map_err(|e| match e {
                logbook_proto::ParseTimestampError::Range(_) => {
                    ParseTimeError::Range(e.to_string())
                }
                logbook_proto::ParseTimestampError::Syntax(_) => {
                    ParseTimeError::Syntax(s.to_owned())
                }
            })
    }
}

/// `30s`, `15m`, `2h`, `7d`, `2w` (also `500ms`).
pub fn parse_age(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let secs = match unit {
        "ms" => return Some(Duration::from_millis(n)),
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return None,
    };
    Some(Duration::from_secs(n.checked_mul(secs)?))
}

/// Filters on records; every set filter must match. Each is backed by an index.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RecordFilter {
    /// At or after this time.
    pub since: Option<Timestamp>,
    /// Before this time.
    pub until: Option<Timestamp>,
    /// This level or more severe.
    pub min_level: Option<Level>,
    /// `run_id` equals.
    pub run_id: Option<String>,
    /// `trace_id` equals.
    pub trace_id: Option<TraceId>,
    /// `tenant` equals.
    pub tenant: Option<String>,
    /// `project` equals.
    pub project: Option<String>,
    /// `app` equals.
    pub app: Option<String>,
    /// `user_id` equals.
    pub user_id: Option<String>,
    /// `kind` equals.
    pub kind: Option<Kind>,
    /// `category` equals.
    pub category: Option<String>,
    /// `name` equals.
    pub name: Option<String>,
    /// `target` equals, or is a module below it (`app` matches `app::db`).
    pub target: Option<String>,
    /// Full-text match on the message and string field values (all words must occur).
    pub text: Option<String>,
    /// `fields.key` equals value (as text or number).
    pub fields: Vec<(String, String)>,
    /// Lasted at least this long (span ends only: the records with a duration).
    pub min_duration_ns: Option<u64>,
    /// Lasted at most this long (span ends only).
    pub max_duration_ns: Option<u64>,
}

/// A duration such as `250ms`, `1.5s`, `40us`, `2m`: nanoseconds.
pub fn parse_duration_ns(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let scale = match unit {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" => 60e9,
        "h" => 3600e9,
        _ => return None,
    };
    let ns = n * scale;
    (ns.is_finite() && ns >= 0.0 && ns < u64::MAX as f64).then_some(ns as u64)
}

/// A filter that cannot be used: one line saying why.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("{0}")]
pub struct FilterError(String);

impl RecordFilter {
    /// The keys [`RecordFilter::parse`] takes: `logbook query`'s flag names.
    pub const KEYS: &'static [&'static str] = &[
        "since",
        "until",
        "level",
        "run",
        "trace",
        "tenant",
        "project",
        "app",
        "user",
        "kind",
        "category",
        "name",
        "target",
        "text",
        "field",
        "min_duration",
        "max_duration",
    ];

    /// A filter from text pairs, as `logbook query`'s flags (`since=2h`, `level=warn`,
    /// `field=gen_ai.request.model=gpt-4o`, …) or an HTTP query string's parameters
    /// give it; ages are taken back from `now`. Every key but `field` at most once.
    pub fn parse<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
        now: Timestamp,
    ) -> Result<Self, FilterError> {
        let mut f = Self::default();
        let mut seen: Vec<&str> = Vec::new();
        for (key, value) in pairs {
            if key != "field" {
                if seen.contains(&key) {
                    return Err(FilterError(format!("{key} given twice")));
                }
                seen.push(key);
            }
            let bad = |e: &dyn fmt::Display| FilterError(format!("{key}: {e}"));
            let text = || Some(value.to_owned());
            match key {
                "since" => {
                    f.since = Some(value.parse::<TimeSpec>().map_err(|e| bad(&e))?.resolve(now))
                }
                "until" => {
                    f.until = Some(value.parse::<TimeSpec>().map_err(|e| bad(&e))?.resolve(now))
                }
                "level" => f.min_level = Some(value.parse().map_err(|e| bad(&e))?),
                "run" => f.run_id = text(),
                "trace" => f.trace_id = Some(value.parse().map_err(|e| bad(&e))?),
                "tenant" => f.tenant = text(),
                "project" => f.project = text(),
                "app" => f.app = text(),
                "user" => f.user_id = text(),
                "kind" => f.kind = Some(value.parse().map_err(|e| bad(&e))?),
                "category" => f.category = text(),
                "name" => f.name = text(),
                "target" => f.target = text(),
                "text" => f.text = text(),
                "min_duration" | "max_duration" => {
                    let ns = parse_duration_ns(value).ok_or_else(|| {
                        bad(&format!(
                            "{value:?} is not a duration such as 250ms, 1.5s, 2m"
                        ))
                    })?;
                    if key == "min_duration" {
                        f.min_duration_ns = Some(ns);
                    } else {
                        f.max_duration_ns = Some(ns);
                    }
                }
                "field" => match value.split_once('=') {
                    Some((k, v)) if !k.is_empty() => f.fields.push((k.to_owned(), v.to_owned())),
                    _ => return Err(bad(&format!("expected KEY=VALUE, got {value:?}"))),
                },
                _ => {
                    return Err(FilterError(format!(
                        "unknown filter {key:?} (known: {})",
                        Self::KEYS.join(", ")
                    )))
                }
            }
        }
        f.check()?;
        Ok(f)
    }

    /// Whether the filter can select anything as given: `until` not before `since`.
    pub fn check(&self) -> Result<(), FilterError> {
        if let (Some(min), Some(max)) = (self.min_duration_ns, self.max_duration_ns) {
            if max < min {
                return Err(FilterError(
                    "max_duration is below min_duration: nothing could match".into(),
                ));
            }
        }
        if let (Some(since), Some(until)) = (self.since, self.until) {
            if until < since {
                return Err(FilterError(format!(
                    "until ({until}) is before since ({since}): nothing could match"
                )));
            }
        }
        Ok(())
    }
}

/// The position of a record in `(ts, seq)` order: a keyset pagination cursor. Its text
/// form is `<ts nanoseconds>.<seq>`; `--before` also takes an RFC 3339 time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor {
    /// The record's time.
    pub ts: Timestamp,
    /// The record's store sequence number.
    pub seq: u64,
}

/// A cursor that does not parse.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error(
    "invalid cursor {0:?}: expected <ts_ns>.<seq> as printed after a page, or an RFC 3339 time"
)]
pub struct ParseCursorError(String);

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.ts.as_nanos(), self.seq)
    }
}

impl FromStr for Cursor {
    type Err = ParseCursorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some((ts, seq)) = s.split_once('.') {
            if let (Ok(ts), Ok(seq)) = (ts.parse::<i64>(), seq.parse::<u64>()) {
                return Ok(Self {
                    ts: Timestamp(ts),
                    seq,
                });
            }
        }
        // A bare time: everything strictly before it.
        Timestamp::parse_rfc3339(s)
            .map(|ts| Self { ts, seq: 0 })
            .map_err(|_| ParseCursorError(s.to_owned()))
    }
}

/// One page of records, newest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    /// At most this many records.
    pub limit: usize,
    /// Only records strictly before this position.
    pub before: Option<Cursor>,
}

impl Default for Page {
    fn default() -> Self {
        Self {
            limit: 100,
            before: None,
        }
    }
}

/// Filters on runs, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunFilter {
    /// Started at or after.
    pub since: Option<Timestamp>,
    /// Started before.
    pub until: Option<Timestamp>,
    /// `tenant` equals.
    pub tenant: Option<String>,
    /// `user_id` equals.
    pub user_id: Option<String>,
    /// `service` equals.
    pub service: Option<String>,
    /// `status` equals (running, ok, error).
    pub status: Option<String>,
    /// `agent` equals.
    pub agent: Option<String>,
    /// Only runs keyed this way (by run id, or a trace's).
    pub kind: Option<crate::store::RunKind>,
    /// `session_id` equals.
    pub session_id: Option<String>,
    /// One of the run's LLM calls used this model.
    pub model: Option<String>,
    /// The root span's name, the run id or the agent contains this (any case).
    pub text: Option<String>,
    /// The root span's field `key` equals `value` (as text or number), for each pair.
    pub root_fields: Vec<(String, String)>,
    /// Keyset: only runs after this one in the list's order (newer start first, then
    /// run id).
    pub after: Option<RunCursor>,
    /// Only runs whose records are all of one tenant and one user (what a scoped
    /// reader may see).
    pub unshared: bool,
    /// At most this many runs.
    pub limit: usize,
}

/// The position of a run in the runs list (start time descending, then run id): a
/// keyset cursor. Its text form is `<first ts nanoseconds>.<run id>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunCursor {
    /// The run's start.
    pub started: Timestamp,
    /// Its key.
    pub run_id: String,
}

impl fmt::Display for RunCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.started.as_nanos(), self.run_id)
    }
}

impl FromStr for RunCursor {
    type Err = ParseCursorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.split_once('.')
            .and_then(|(ts, id)| {
                Some(Self {
                    started: Timestamp(ts.parse().ok()?),
                    run_id: id.to_owned(),
                })
            })
            .ok_or_else(|| ParseCursorError(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_specs() {
        assert_eq!(
            "15m".parse::<TimeSpec>(),
            Ok(TimeSpec::Ago(Duration::from_secs(900)))
        );
        assert_eq!(
            "7d".parse::<TimeSpec>(),
            Ok(TimeSpec::Ago(Duration::from_secs(7 * 86_400)))
        );
        assert_eq!(
            "2026-11-21T20:00:00Z".parse::<TimeSpec>(),
            Ok(TimeSpec::At(Timestamp(1_795_291_200_000_000_000)))
        );
        assert!("yesterday".parse::<TimeSpec>().is_err());
        assert!("15x".parse::<TimeSpec>().is_err());
        let now = Timestamp::parse_rfc3339("2026-12-01T00:00:00Z").unwrap();
        let f = RecordFilter::parse(
            [
                ("since", "2h"),
                ("level", "warn"),
                ("field", "a=b=c"),
                ("field", "x=1"),
            ],
            now,
        )
        .unwrap();
        assert_eq!(f.min_level, Some(Level::Warn));
        assert_eq!(
            f.fields,
            vec![("a".into(), "b=c".into()), ("x".into(), "1".into())]
        );
        assert_eq!(f.since, Some(now.saturating_sub(Duration::from_secs(7200))));
        for (pairs, why) in [
            (vec![("since", "1h"), ("until", "2h")], "is before since"),
            (vec![("level", "loud")], "level:"),
            (vec![("sorted", "yes")], "unknown filter"),
            (vec![("name", "a"), ("name", "b")], "name given twice"),
            (vec![("field", "=v")], "expected KEY=VALUE"),
        ] {
            let e = RecordFilter::parse(pairs, now).unwrap_err().to_string();
            assert!(e.contains(why), "{e}");
        }
        let e = "9999-12-31T00:00:00Z"
            .parse::<TimeSpec>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("out of range") && e.contains("2262"), "{e}");
        let e = "99999999999999999999d"
            .parse::<TimeSpec>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("too large"), "{e}");
        let e = "15x".parse::<TimeSpec>().unwrap_err().to_string();
        assert!(e.contains("expected RFC 3339"), "{e}");
        assert_eq!(
            TimeSpec::Ago(Duration::from_secs(1)).resolve(Timestamp(5_000_000_000)),
            Timestamp(4_000_000_000)
        );
    }

    #[test]
    fn cursors_round_trip() {
        let c = Cursor {
            ts: Timestamp(1_795_291_200_000_000_123),
            seq: 42,
        };
        assert_eq!(c.to_string().parse::<Cursor>(), Ok(c));
        assert_eq!(
            "2026-11-21T20:00:00Z".parse::<Cursor>(),
            Ok(Cursor {
                ts: Timestamp(1_795_291_200_000_000_000),
                seq: 0
            })
        );
        assert!("nope".parse::<Cursor>().is_err());
    }
}
