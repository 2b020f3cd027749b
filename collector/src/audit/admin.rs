//! Audit records the collector writes about its own admin actions.

use std::sync::Arc;

use logbook_proto::{
    transport, Fields, Kind, Level, Origin, Record, RecordId, Resource, Str, Timestamp, TraceId,
    Value,
};

use super::CATEGORY_AUDIT;

/// The target of the collector's own audit records.
pub const ADMIN_TARGET: &str = "logbook::admin";

fn random_u64s() -> [u64; 4] {
    let b = super::keys::random_bytes().unwrap_or_else(|_| {
        // No /dev/urandom: time and pid still make a unique id for this purpose.
        let mut b = [0u8; 32];
        b[..16].copy_from_slice(&Timestamp::now().as_nanos().to_be_bytes().repeat(2));
        b[16..20].copy_from_slice(&std::process::id().to_be_bytes());
        b
    });
    let word = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[i * 8..i * 8 + 8]);
        u64::from_be_bytes(w)
    };
    [word(0), word(1), word(2), word(3)]
}

/// Who is acting: the OS user and process.
fn actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    format!("{user} (pid {})", std::process::id())
}

/// An audit record of an admin action: an INFO event named `logbook.<action>` in the
/// category `audit`, with the acting user and process and `fields` (counts, filters:
/// never the data acted on).
pub fn admin_record(action: &str, message: String, fields: Vec<(&str, Value)>) -> Record {
    let [a, b, c, d] = random_u64s();
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&a.to_be_bytes());
    id[8..].copy_from_slice(&(b | 1).to_be_bytes());
    let mut r = Record::new(
        RecordId(id),
        Timestamp::now(),
        Kind::Event,
        Level::Info,
        Str::Owned(format!("logbook.{action}")),
    );
    r.target = Str::Borrowed(ADMIN_TARGET);
    r.message = Some(message);
    r.trace_id = TraceId::from_random(c, d);
    r.category = Some(Str::Borrowed(CATEGORY_AUDIT));
    r.resource = Arc::new(Resource {
        service: "logbook".into(),
        host: std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_default(),
        pid: std::process::id(),
    });
    r.origin = Some(Arc::new(Origin {
        pid: Some(std::process::id()),
        ..Origin::new(transport::COLLECTOR)
    }));
    let mut f = Fields::with_capacity(fields.len() + 2);
    f.set("action", Value::Str(action.to_owned()));
    f.set("actor", Value::Str(actor()));
    for (k, v) in fields {
        f.set(k.to_owned(), v);
    }
    r.fields = f;
    r
}
