//! The keys of the record's JSON form (the contract of SPEC §3), in contract order.
//! Scope keys are [`crate::ScopeKey`]'s words.

/// `schema_version`
pub const SCHEMA_VERSION: &str = "schema_version";
/// `id`
pub const ID: &str = "id";
/// `seq`
pub const SEQ: &str = "seq";
/// `ts`
pub const TS: &str = "ts";
/// `kind`
pub const KIND: &str = "kind";
/// `level`
pub const LEVEL: &str = "level";
/// `name`
pub const NAME: &str = "name";
/// `target`
pub const TARGET: &str = "target";
/// `message`
pub const MESSAGE: &str = "message";
/// `trace_id`
pub const TRACE_ID: &str = "trace_id";
/// `span_id`
pub const SPAN_ID: &str = "span_id";
/// `parent_span_id`
pub const PARENT_SPAN_ID: &str = "parent_span_id";
/// `service`
pub const SERVICE: &str = "service";
/// `host`
pub const HOST: &str = "host";
/// `pid`
pub const PID: &str = "pid";
/// `file`
pub const FILE: &str = "file";
/// `line`
pub const LINE: &str = "line";
/// `category`
pub const CATEGORY: &str = "category";
/// `status`
pub const STATUS: &str = "status";
/// `duration_ns`
pub const DURATION_NS: &str = "duration_ns";
/// `busy_ns`
pub const BUSY_NS: &str = "busy_ns";
/// `idle_ns`
pub const IDLE_NS: &str = "idle_ns";
/// `fields`
pub const FIELDS: &str = "fields";
/// `origin`: who delivered the record (set by the collector).
pub const ORIGIN: &str = "origin";

/// Every top-level column of the flat (CSV) form, in contract order, with `fields`
/// and `origin` last as JSON text.
pub const COLUMNS: &[&str] = &[
    SCHEMA_VERSION,
    ID,
    SEQ,
    TS,
    KIND,
    LEVEL,
    NAME,
    TARGET,
    MESSAGE,
    TRACE_ID,
    SPAN_ID,
    PARENT_SPAN_ID,
    "run_id",
    "step_id",
    "tenant",
    "env",
    "project",
    "app",
    "surface",
    "user_id",
    "session_id",
    "request_id",
    SERVICE,
    HOST,
    PID,
    FILE,
    LINE,
    CATEGORY,
    STATUS,
    DURATION_NS,
    BUSY_NS,
    IDLE_NS,
    FIELDS,
    ORIGIN,
];
