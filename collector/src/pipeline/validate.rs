//! Record validation: structural rules every stored record satisfies.

use logbook_proto::{Kind, Record, Timestamp};

/// Bounds on what a record may hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest name, target, category or scope value, in bytes.
    pub max_label_bytes: usize,
    /// Most fields per record.
    pub max_fields: usize,
    /// Longest field key, in bytes.
    pub max_key_bytes: usize,
    /// How far in the future a timestamp may be (clock skew), in nanoseconds.
    pub max_future_ns: i64,
    /// Longest field value or message, in bytes: longer ones are cut, with a marker.
    pub max_value_bytes: usize,
    /// Largest record (after cutting values), in bytes, about as stored.
    pub max_record_bytes: usize,
    /// Most records in one batch.
    pub max_batch_records: usize,
    /// Longest service name a client may give, in bytes.
    pub max_service_bytes: usize,
    /// Longest host name a client may give, in bytes.
    pub max_host_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_label_bytes: 1024,
            max_fields: 1024,
            max_key_bytes: 256,
            max_future_ns: 24 * 3600 * 1_000_000_000,
            max_value_bytes: 256 << 10,
            max_record_bytes: 2 << 20,
            max_batch_records: 10_000,
            max_service_bytes: 256,
            max_host_bytes: 256,
        }
    }
}

/// The earliest timestamp accepted: 2000-01-01T00:00:00Z.
const EARLIEST_NS: i64 = 946_684_800 * 1_000_000_000;

/// What of `r` lies in the collector's own namespace: names beginning `logbook.` and
/// the targets `logbook` and `logbook::…` (its audit records'). No client may send
/// them, so that a record there is the collector's.
pub fn reserved(r: &Record) -> Option<&'static str> {
    if r.name.starts_with(RESERVED_NAME_PREFIX) {
        return Some("the name prefix `logbook.`");
    }
    let target = r.target.as_ref();
    if target == RESERVED_TARGET
        || target
            .strip_prefix(RESERVED_TARGET)
            .is_some_and(|rest| rest.starts_with("::"))
    {
        return Some("the target `logbook`");
    }
    None
}

/// Names of the collector's own records begin with this.
pub const RESERVED_NAME_PREFIX: &str = "logbook.";
/// The collector's own records have this target, or one below it.
pub const RESERVED_TARGET: &str = "logbook";

/// `Ok` if `r` may be stored, else a one-line reason.
pub fn validate(r: &Record, limits: &Limits) -> Result<(), String> {
    if !r.id.is_valid() {
        return Err("id is all zeroes".into());
    }
    if !r.trace_id.is_valid() {
        return Err("trace_id is all zeroes".into());
    }
    if r.name.is_empty() {
        return Err("name is empty".into());
    }
    if let Some(what) = reserved(r) {
        return Err(format!(
            "{what} is reserved for the collector's own records"
        ));
    }
    let latest = Timestamp::now()
        .as_nanos()
        .saturating_add(limits.max_future_ns);
    if r.ts.as_nanos() < EARLIEST_NS || r.ts.as_nanos() > latest {
        return Err(format!(
            "timestamp {} is out of range (2000-01-01 to one day from now)",
            r.ts
        ));
    }
    if r.kind != Kind::Event && r.span_id.is_none() {
        return Err(format!("{} without span_id", r.kind));
    }
    // Stores keep times as signed 64-bit integers: what does not fit could not be read
    // back as it was written (and an audit record's digest covers what was written).
    for (what, v) in [
        ("duration_ns", r.duration_ns),
        ("busy_ns", r.busy_ns),
        ("idle_ns", r.idle_ns),
    ] {
        if v.is_some_and(|v| i64::try_from(v).is_err()) {
            return Err(format!("{what} above {}", i64::MAX));
        }
    }
    for (what, v) in [
        ("name", Some(r.name.as_ref())),
        ("target", Some(r.target.as_ref())),
        ("category", r.category.as_deref()),
        ("file", r.file.as_deref()),
    ] {
        if v.is_some_and(|v| v.len() > limits.max_label_bytes) {
            return Err(format!(
                "{what} longer than {} bytes",
                limits.max_label_bytes
            ));
        }
    }
    for (key, v) in r.scope.iter() {
        if v.len() > limits.max_label_bytes {
            return Err(format!(
                "{key} longer than {} bytes",
                limits.max_label_bytes
            ));
        }
    }
    if r.fields.len() > limits.max_fields {
        return Err(format!(
            "{} fields, more than the limit of {}",
            r.fields.len(),
            limits.max_fields
        ));
    }
    for (k, _) in r.fields.iter() {
        if k.is_empty() {
            return Err("a field has an empty name".into());
        }
        if k.len() > limits.max_key_bytes {
            return Err(format!(
                "field name longer than {} bytes",
                limits.max_key_bytes
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use logbook_proto::{InstanceId, Level, RecordId, SpanId, TraceId, Value};

    fn ok_record() -> Record {
        let mut r = Record::new(
            RecordId::new(InstanceId::from_random(1), 1),
            Timestamp::now(),
            Kind::Event,
            Level::Info,
            "e",
        );
        r.trace_id = TraceId::from_random(1, 2);
        r
    }

    #[test]
    fn accepts_a_plain_event() {
        assert_eq!(validate(&ok_record(), &Limits::default()), Ok(()));
    }

    #[test]
    fn refuses_each_broken_part() {
        let l = Limits::default();
        let mut r = ok_record();
        r.name = "".into();
        assert_eq!(validate(&r, &l), Err("name is empty".into()));

        let mut r = ok_record();
        r.ts = Timestamp(0);
        assert!(validate(&r, &l).unwrap_err().contains("out of range"));

        let mut r = ok_record();
        r.kind = Kind::SpanStart;
        assert_eq!(validate(&r, &l), Err("span_start without span_id".into()));
        r.span_id = Some(SpanId::from_random(1));
        assert_eq!(validate(&r, &l), Ok(()));

        let mut r = ok_record();
        r.fields.set("", Value::I64(1));
        assert!(validate(&r, &l).is_err());

        let mut r = ok_record();
        r.trace_id = TraceId::ZERO;
        assert!(validate(&r, &l).is_err());

        let mut r = ok_record();
        r.duration_ns = Some(u64::MAX);
        assert!(validate(&r, &l).unwrap_err().contains("duration_ns above"));
        r.duration_ns = Some(i64::MAX as u64);
        assert_eq!(validate(&r, &l), Ok(()));
    }

    #[test]
    fn refuses_the_collectors_namespace() {
        let l = Limits::default();
        for (name, target) in [
            ("logbook.dsar.delete", "app"),
            ("e", "logbook::admin"),
            ("e", "logbook"),
            ("e", "logbook::admin::x"),
        ] {
            let mut r = ok_record();
            r.name = name.into();
            r.target = target.into();
            let e = validate(&r, &l).unwrap_err();
            assert!(e.contains("reserved"), "{name} {target}: {e}");
        }
        for (name, target) in [
            ("logbook", "app"),
            ("e", "logbook_layer::x"),
            ("e", "logbooks"),
        ] {
            let mut r = ok_record();
            r.name = name.into();
            r.target = target.into();
            assert_eq!(validate(&r, &l), Ok(()), "{name} {target}");
        }
    }
}
