//! The canonical record: one shape for every span start, span end and event.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use thiserror::Error;

use crate::ids::{RecordId, SpanId, TraceId};

use crate::time::Timestamp;
use crate::value::{Fields, Str};

/// The version of the record shape, written as `schema_version`.
pub const SCHEMA_VERSION: u16 = 1;

/// A word that names no variant of an enumeration (`kind`, `level`, `status`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid {what} {got:?}: expected one of {expected}")]
pub struct ParseEnumError {
    what: &'static str,
    expected: &'static str,
    got: String,
}

macro_rules! word_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal, { $($(#[$vmeta:meta])* $variant:ident = $code:literal => $word:literal $(| $alias:literal)*),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
        #[repr(u8)]
        pub enum $name {
            $($(#[$vmeta])* $variant = $code),+
        }

        impl $name {
            /// Every variant, in code order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The contract word for this variant.
            pub const fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $word),+ }
            }

            /// The one-byte code used on the wire and in storage.
            pub const fn code(self) -> u8 {
                self as u8
            }

            /// The variant with this code.
            pub const fn from_code(code: u8) -> Option<Self> {
                match code { $($code => Some(Self::$variant),)+ _ => None }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = ParseEnumError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $(if s.eq_ignore_ascii_case($word) $(|| s.eq_ignore_ascii_case($alias))* {
                    return Ok(Self::$variant);
                })+
                Err(ParseEnumError {
                    what: $what,
                    expected: concat!($($word, " "),+),
                    got: s.to_owned(),
                })
            }
        }
    };
}

word_enum!(
    /// What a record marks.
    Kind, "kind", {
        /// A `tracing` event.
        Event = 1 => "event",
        /// A span was created.
        SpanStart = 2 => "span_start",
        /// A span was closed; carries its final fields and timings.
        SpanEnd = 3 => "span_end",
    }
);

word_enum!(
    /// Severity, ordered so that `Trace < Error`.
    Level, "level", {
        /// Finest detail.
        Trace = 1 => "TRACE",
        /// Debugging detail.
        Debug = 2 => "DEBUG",
        /// Normal operation.
        Info = 3 => "INFO",
        /// Something unexpected that was handled.
        Warn = 4 => "WARN" | "warning",
        /// A failure.
        Error = 5 => "ERROR",
    }
);

word_enum!(
    /// How a span ended.
    Status, "status", {
        /// The span completed without recording an error.
        Ok = 1 => "ok",
        /// The span recorded an error.
        Error = 2 => "error",
    }
);

impl Level {
    /// Number of levels: the length of every per-level count ([`PerLevel`]).
    pub const COUNT: usize = 5;

    /// Index `0..Level::COUNT`, for per-level counters.
    pub const fn index(self) -> usize {
        self as usize - 1
    }
}

/// One value per [`Level`], indexed by [`Level::index`] (TRACE first): drop counts,
/// record counts by level.
pub type PerLevel<T> = [T; Level::COUNT];

word_enum!(
    /// The scope fields: inherited from the nearest ancestor span that set them.
    ScopeKey, "scope field", {
        /// One agent run or job.
        RunId = 0 => "run_id",
        /// One step within a run.
        StepId = 1 => "step_id",
        /// The customer or organisation.
        Tenant = 2 => "tenant",
        /// Deployment environment (prod, staging, …).
        Env = 3 => "env",
        /// Project.
        Project = 4 => "project",
        /// Application.
        App = 5 => "app",
        /// Surface (api, web, worker, cli, …).
        Surface = 6 => "surface",
        /// End user.
        UserId = 7 => "user_id",
        /// User session.
        SessionId = 8 => "session_id",
        /// One inbound request.
        RequestId = 9 => "request_id",
    }
);

impl ScopeKey {
    /// Number of scope fields.
    pub const COUNT: usize = 10;

    /// The scope field called `name`, exactly.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.as_str() == name)
    }
}

/// The scope of a record: who and what it belongs to. Shared by reference between a
/// span and every record made under it.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Scope([Option<String>; ScopeKey::COUNT]);

impl Scope {
    /// An empty scope.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of `key`.
    pub fn get(&self, key: ScopeKey) -> Option<&str> {
        self.0[key as usize].as_deref()
    }

    /// Sets or clears `key`.
    pub fn set(&mut self, key: ScopeKey, value: Option<String>) {
        self.0[key as usize] = value;
    }

    /// Builder form of [`Scope::set`].
    pub fn with(mut self, key: ScopeKey, value: impl Into<String>) -> Self {
        self.set(key, Some(value.into()));
        self
    }

    /// Every field's value, in [`ScopeKey`] order (slot `k as usize` holds key `k`).
    pub fn slots(&self) -> &[Option<String>; ScopeKey::COUNT] {
        &self.0
    }

    /// Whether no field is set.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(Option::is_none)
    }

    /// The set fields, in [`ScopeKey`] order.
    pub fn iter(&self) -> impl Iterator<Item = (ScopeKey, &str)> {
        ScopeKey::ALL
            .iter()
            .zip(&self.0)
            .filter_map(|(k, v)| Some((*k, v.as_deref()?)))
    }

    /// `run_id`.
    pub fn run_id(&self) -> Option<&str> {
        self.get(ScopeKey::RunId)
    }
    /// `tenant`.
    pub fn tenant(&self) -> Option<&str> {
        self.get(ScopeKey::Tenant)
    }
    /// `user_id`.
    pub fn user_id(&self) -> Option<&str> {
        self.get(ScopeKey::UserId)
    }
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(k, v)| (k.as_str(), v)))
            .finish()
    }
}

/// Who emitted a record: sent once per connection in the hello, not per record.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Resource {
    /// Service name (`LOGBOOK_SERVICE`, else the executable's name).
    pub service: String,
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: u32,
}

/// How a record reached the collector: [`Origin::transport`]'s words.
pub mod transport {
    /// A client of the Unix socket.
    pub const SOCKET: &str = "socket";
    /// The application itself, in embedded mode.
    pub const EMBEDDED: &str = "embedded";
    /// An HTTP client (OTLP or the API).
    pub const HTTP: &str = "http";
    /// A client of the TLS listener (the socket's protocol over TCP).
    pub const TLS: &str = "tls";
    /// The collector itself: its own audit records.
    pub const COLLECTOR: &str = "collector";
}

/// Who delivered a record, as the collector saw it: set by the collector when it
/// admits the record, never taken from a client, and covered by the audit chain.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Origin {
    /// How it came: one of [`transport`]'s words.
    pub transport: String,
    /// The peer's user id (the socket's credentials).
    pub uid: Option<u32>,
    /// The peer's process id (the socket's credentials).
    pub pid: Option<u32>,
    /// The name of the token the client presented, when tokens are used.
    pub token: Option<String>,
}

impl Origin {
    /// An origin of `transport` with nothing more known.
    pub fn new(transport: &str) -> Self {
        Self {
            transport: transport.to_owned(),
            ..Self::default()
        }
    }

    /// Its JSON object, compact: `{"transport":"socket","uid":1000,"pid":42}` (absent
    /// parts omitted).
    pub fn to_json(&self) -> String {
        serde_json::to_string(&crate::json::OriginJson::from(self)).unwrap_or_default()
    }

    /// Parses [`Origin::to_json`]'s form.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str::<crate::json::OriginJson>(text).map(Self::from)
    }
}

/// One span start, span end or event. Its JSON form (see [`crate::json`]) is the
/// contract for export, the HTTP API and `--format jsonl`.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// Unique and idempotent: a resent record keeps its id and is stored once.
    pub id: RecordId,
    /// Assigned by the store: monotonic, the pagination tiebreaker. `0` until stored.
    pub seq: u64,
    /// When the event happened, or the span started (`span_start`) or closed (`span_end`).
    pub ts: Timestamp,
    /// Span start, span end or event.
    pub kind: Kind,
    /// Severity (for spans, the span's level).
    pub level: Level,
    /// Span name, or the event's callsite name.
    pub name: Str,
    /// Module path or explicit `target:`.
    pub target: Str,
    /// The event's message.
    pub message: Option<String>,
    /// Trace this record belongs to.
    pub trace_id: TraceId,
    /// For spans the span itself; for events the enclosing span, if any.
    pub span_id: Option<SpanId>,
    /// For spans, the parent span.
    pub parent_span_id: Option<SpanId>,
    /// Run, tenant, user, … inherited from ancestors.
    pub scope: Arc<Scope>,
    /// Service, host and pid of the emitter.
    pub resource: Arc<Resource>,
    /// Source file.
    pub file: Option<Str>,
    /// Source line.
    pub line: Option<u32>,
    /// What the record is about (run, step, llm_call, tool_call, log, error, …).
    pub category: Option<Str>,
    /// For span ends: ok or error.
    pub status: Option<Status>,
    /// For span ends: wall time from creation to close.
    pub duration_ns: Option<u64>,
    /// For span ends: time spent entered.
    pub busy_ns: Option<u64>,
    /// For span ends: time alive but not entered.
    pub idle_ns: Option<u64>,
    /// Every other field, typed.
    pub fields: Fields,
    /// Who delivered it to the collector (none before it was admitted).
    pub origin: Option<Arc<Origin>>,
}

impl Record {
    /// A record with the given identity and empty optional parts.
    pub fn new(
        id: RecordId,
        ts: Timestamp,
        kind: Kind,
        level: Level,
        name: impl Into<Str>,
    ) -> Self {
        Self {
            id,
            seq: 0,
            ts,
            kind,
            level,
            name: name.into(),
            target: Str::Borrowed(""),
            message: None,
            trace_id: TraceId::ZERO,
            span_id: None,
            parent_span_id: None,
            scope: Arc::default(),
            resource: Arc::default(),
            file: None,
            line: None,
            category: None,
            status: None,
            duration_ns: None,
            busy_ns: None,
            idle_ns: None,
            fields: Fields::new(),
            origin: None,
        }
    }

    /// Whether this record marks a failure: an ERROR event or a span that ended in error.
    pub fn is_error(&self) -> bool {
        self.level == Level::Error || self.status == Some(Status::Error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip() {
        for k in Kind::ALL {
            assert_eq!(k.as_str().parse::<Kind>(), Ok(*k));
            assert_eq!(Kind::from_code(k.code()), Some(*k));
        }
        for l in Level::ALL {
            assert_eq!(l.as_str().parse::<Level>(), Ok(*l));
            assert_eq!(l.as_str().to_lowercase().parse::<Level>(), Ok(*l));
        }
        assert_eq!("warning".parse::<Level>(), Ok(Level::Warn));
        assert!("loud".parse::<Level>().is_err());
        assert!(Level::Trace < Level::Error);
    }

    #[test]
    fn scope_iterates_set_fields_in_order() {
        let s = Scope::new()
            .with(ScopeKey::UserId, "u")
            .with(ScopeKey::RunId, "r");
        assert_eq!(
            s.iter().collect::<Vec<_>>(),
            [(ScopeKey::RunId, "r"), (ScopeKey::UserId, "u")]
        );
    }
}
