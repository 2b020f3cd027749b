//! The canonical encoding of an audit record: what the chain hashes, whatever stores
//! it (formats 2 and 3 of the chain; format 1 hashed SQLite's row and is verified by
//! that backend alone). Format 3 adds the record's `origin`; format 2 has no such key.
//!
//! The record as one JSON object, UTF-8, no whitespace:
//!
//! - every key of the record contract (SPEC §3) except `schema_version`, plus `class`
//!   (`ops` or `audit`) and `seq`, always present (absent values are `null`; `origin`
//!   with all four of its keys), keys sorted by their bytes, at every depth (`fields`,
//!   `origin` and nested JSON included);
//! - `ts` as integer nanoseconds since the Unix epoch; ids as lowercase hex; `kind`,
//!   `level`, `status` as their contract words;
//! - numbers by value, not by type: an integer (or a float with an integral value of
//!   magnitude below 2^53) in decimal; any other finite float as `f:` and the 16 hex
//!   digits of its IEEE 754 bits (not JSON, so it can be confused with nothing else,
//!   and independent of any library's float printing); a field float that is not
//!   finite as the text JSON stores it (`"NaN"`);
//! - strings in double quotes, escaping `"` and `\` with a backslash and every control
//!   character below U+0020 as `\u00XX`, nothing else.
//!
//! So a store may keep fields as text or as a JSON type, reorder object keys, or read
//! `2.0` back as `2`, and the digest of what it returns is still the digest of what
//! was written; and the encoding depends on no crate's version. The digest is SHA-256
//! over `logbook-audit-record v2\n` (or `v3`) and the encoding.

use std::fmt::Write as _;

use logbook_proto::{keys, Record, ScopeKey, Value};
use sha2::{Digest, Sha256};

use super::{ChainFormat, StorageClass};

/// Integers and integral floats below this magnitude are written as integers.
const EXACT_INTEGER: f64 = 9_007_199_254_740_992.0; // 2^53

/// The SHA-256 of `r`'s canonical encoding in `format`, stored as `seq` in `class`;
/// `None` for a format that is not a canonical encoding.
pub fn record_digest(
    r: &Record,
    seq: u64,
    class: StorageClass,
    format: ChainFormat,
) -> Option<[u8; 32]> {
    let (prefix, origin): (&[u8], bool) = match format {
        ChainFormat::SqliteRow => return None,
        ChainFormat::Canonical => (b"logbook-audit-record v2\n", false),
        ChainFormat::CanonicalWithOrigin => (b"logbook-audit-record v3\n", true),
    };
    let mut h = Sha256::new();
    h.update(prefix);
    h.update(canonical_json(r, seq, class, origin).as_bytes());
    Some(h.finalize().into())
}

/// The canonical JSON of `r` stored as `seq` in `class`, with its origin if `origin`
/// (see the module docs).
pub fn canonical_json(r: &Record, seq: u64, class: StorageClass, origin: bool) -> String {
    let hex = |b: &[u8]| super::to_hex(b);
    let mut entries: Vec<(&str, Canon)> = vec![
        (keys::BUSY_NS, opt_int(r.busy_ns)),
        (keys::CATEGORY, opt_str(r.category.as_deref())),
        ("class", Canon::Str(class.as_str().into())),
        (keys::DURATION_NS, opt_int(r.duration_ns)),
        (keys::FIELDS, fields(r)),
        (keys::FILE, opt_str(r.file.as_deref())),
        (keys::HOST, Canon::Str(r.resource.host.clone())),
        (keys::ID, Canon::Str(hex(&r.id.0))),
        (keys::IDLE_NS, opt_int(r.idle_ns)),
        (keys::KIND, Canon::Str(r.kind.as_str().into())),
        (keys::LEVEL, Canon::Str(r.level.as_str().into())),
        (keys::LINE, opt_int(r.line.map(u64::from))),
        (keys::MESSAGE, opt_str(r.message.as_deref())),
        (keys::NAME, Canon::Str(r.name.to_string())),
        (
            keys::ORIGIN,
            r.origin.as_deref().map_or(Canon::Null, origin_object),
        ),
        (
            keys::PARENT_SPAN_ID,
            opt_str(r.parent_span_id.map(|s| hex(&s.0)).as_deref()),
        ),
        (keys::PID, Canon::Int(i128::from(r.resource.pid))),
        (keys::SEQ, Canon::Int(i128::from(seq))),
        (keys::SERVICE, Canon::Str(r.resource.service.clone())),
        (
            keys::SPAN_ID,
            opt_str(r.span_id.map(|s| hex(&s.0)).as_deref()),
        ),
        (keys::STATUS, opt_str(r.status.map(|s| s.as_str()))),
        (keys::TARGET, Canon::Str(r.target.to_string())),
        (keys::TRACE_ID, Canon::Str(hex(&r.trace_id.0))),
        (keys::TS, Canon::Int(i128::from(r.ts.as_nanos()))),
    ];
    for k in ScopeKey::ALL {
        entries.push((k.as_str(), opt_str(r.scope.get(*k))));
    }
    if !origin {
        entries.retain(|(k, _)| *k != keys::ORIGIN);
    }
    let object = Canon::Object(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
    );
    let mut out = String::with_capacity(512);
    object.write(&mut out);
    out
}

/// A JSON value in canonical form.
enum Canon {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Array(Vec<Canon>),
    /// Sorted when written.
    Object(Vec<(String, Canon)>),
}

fn origin_object(o: &logbook_proto::Origin) -> Canon {
    Canon::Object(vec![
        ("transport".into(), Canon::Str(o.transport.clone())),
        ("uid".into(), opt_int(o.uid.map(u64::from))),
        ("pid".into(), opt_int(o.pid.map(u64::from))),
        ("token".into(), opt_str(o.token.as_deref())),
    ])
}

fn opt_str(v: Option<&str>) -> Canon {
    v.map_or(Canon::Null, |s| Canon::Str(s.to_owned()))
}

fn opt_int(v: Option<u64>) -> Canon {
    v.map_or(Canon::Null, |n| Canon::Int(i128::from(n)))
}

fn float(f: f64) -> Canon {
    if f.fract() == 0.0 && f.abs() < EXACT_INTEGER {
        // Exact: |f| < 2^53 is an integer that fits.
        Canon::Int(f as i128)
    } else {
        Canon::Float(f)
    }
}

fn fields(r: &Record) -> Canon {
    Canon::Object(
        r.fields
            .iter()
            .map(|(k, v)| (k.to_owned(), value(v)))
            .collect(),
    )
}

fn value(v: &Value) -> Canon {
    match v {
        Value::Str(s) => Canon::Str(s.clone()),
        Value::I64(n) => Canon::Int(i128::from(*n)),
        Value::U64(n) => Canon::Int(i128::from(*n)),
        // Stored as text (JSON has no NaN or infinities): hashed as that text.
        Value::F64(f) if !f.is_finite() => Canon::Str(f.to_string()),
        Value::F64(f) => float(*f),
        Value::Bool(b) => Canon::Bool(*b),
        Value::Json(j) => json(&j.to_value()),
    }
}

fn json(v: &serde_json::Value) -> Canon {
    use serde_json::Value as J;
    match v {
        J::Null => Canon::Null,
        J::Bool(b) => Canon::Bool(*b),
        J::Number(n) => {
            if let Some(i) = n.as_i64() {
                Canon::Int(i128::from(i))
            } else if let Some(u) = n.as_u64() {
                Canon::Int(i128::from(u))
            } else {
                n.as_f64().map_or(Canon::Null, float)
            }
        }
        J::String(s) => Canon::Str(s.clone()),
        J::Array(a) => Canon::Array(a.iter().map(json).collect()),
        J::Object(m) => Canon::Object(m.iter().map(|(k, v)| (k.clone(), json(v))).collect()),
    }
}

impl Canon {
    fn write(&self, out: &mut String) {
        match self {
            Self::Null => out.push_str("null"),
            Self::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Self::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Self::Float(f) => {
                let _ = write!(out, "f:{:016x}", f.to_bits());
            }
            Self::Str(s) => string(s, out),
            Self::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
            Self::Object(entries) => {
                let mut sorted: Vec<&(String, Canon)> = entries.iter().collect();
                sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
                out.push('{');
                for (i, (k, v)) in sorted.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    string(k, out);
                    out.push(':');
                    v.write(out);
                }
                out.push('}');
            }
        }
    }
}

fn string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use logbook_proto::{
        Fields, InstanceId, Json, Kind, Level, RecordId, Resource, Scope, Status, Timestamp,
        TraceId,
    };

    use super::*;

    fn record() -> Record {
        let mut r = Record::new(
            RecordId::new(InstanceId::from_random(1), 7),
            Timestamp(1_795_291_200_000_000_123),
            Kind::SpanEnd,
            Level::Warn,
            "payment",
        );
        r.target = "bank::pay".into();
        r.trace_id = TraceId::from_random(2, 3);
        r.scope = Arc::new(Scope::new().with(ScopeKey::Tenant, "acme"));
        r.resource = Arc::new(Resource {
            service: "bank".into(),
            host: "h".into(),
            pid: 9,
        });
        r.status = Some(Status::Error);
        r.duration_ns = Some(5);
        r.fields.set("z", Value::F64(2.0));
        r.fields.set("a", Value::F64(0.1));
        r.fields.set("nan", Value::F64(f64::NAN));
        r.fields.set(
            "nested",
            Value::Json(Json::parse(r#"{"b":[1,2.50,{"y":1e300,"x":"é\n"}],"a":null}"#).unwrap()),
        );
        r
    }

    #[test]
    fn keys_are_sorted_and_numbers_are_by_value() {
        let text = canonical_json(&record(), 42, StorageClass::Audit, true);
        assert!(
            text.starts_with(r#"{"app":null,"busy_ns":null,"category":null,"class":"audit","#),
            "{text}"
        );
        assert!(
            text.contains(r#""fields":{"a":f:3fb999999999999a,"nan":"NaN","nested":{"a":null,"b":[1,f:4004000000000000,{"x":"é\u000a","y":f:7e37e43c8800759c}]},"z":2}"#),
            "{text}"
        );
        assert!(text.contains(r#""seq":42,"#), "{text}");
        assert!(text.contains(r#""ts":1795291200000000123,"#), "{text}");
        assert!(text.contains(r#""level":"WARN","#), "{text}");
        assert!(text.ends_with(r#""user_id":null}"#), "{text}");
        assert!(
            text.contains(r#""name":"payment","origin":null,"#),
            "{text}"
        );
        let without = canonical_json(&record(), 42, StorageClass::Audit, false);
        assert!(!without.contains("origin"), "{without}");
    }

    /// What a store that reorders JSON keys and normalises numbers gives back.
    fn as_a_json_store_returns_it(r: &Record) -> Record {
        let mut back = r.clone();
        let mut reordered = Fields::new();
        let mut keys: Vec<(&str, &Value)> = r.fields.iter().collect();
        keys.reverse();
        for (k, v) in keys {
            let v = match v {
                Value::F64(f) if f.fract() == 0.0 => Value::I64(*f as i64),
                Value::F64(f) if !f.is_finite() => Value::Str(f.to_string()),
                Value::Json(_) => Value::Json(
                    Json::parse(r#"{"a": null, "b": [1.0, 2.5, {"y": 1e+300, "x": "\u00e9\n"}]}"#)
                        .unwrap(),
                ),
                other => other.clone(),
            };
            reordered.set(k.to_owned(), v);
        }
        back.fields = reordered;
        back
    }

    #[test]
    fn the_digest_survives_a_store_that_reorders_keys() {
        let r = record();
        let d = record_digest(&r, 42, StorageClass::Audit, ChainFormat::CURRENT).unwrap();
        assert_eq!(
            record_digest(
                &as_a_json_store_returns_it(&r),
                42,
                StorageClass::Audit,
                ChainFormat::CURRENT
            )
            .unwrap(),
            d
        );
        // And changes with anything that matters.
        assert_ne!(
            record_digest(&r, 43, StorageClass::Audit, ChainFormat::CURRENT).unwrap(),
            d
        );
        assert_ne!(
            record_digest(&r, 42, StorageClass::Ops, ChainFormat::CURRENT).unwrap(),
            d
        );
        let mut m = r.clone();
        m.fields.set("a", Value::F64(0.2));
        assert_ne!(
            record_digest(&m, 42, StorageClass::Audit, ChainFormat::CURRENT).unwrap(),
            d
        );
        let mut m = r.clone();
        m.fields.set("z", Value::Str("2".into()));
        assert_ne!(
            record_digest(&m, 42, StorageClass::Audit, ChainFormat::CURRENT).unwrap(),
            d,
            "text is not a number"
        );
        let mut m = r;
        m.message = Some(String::new());
        assert_ne!(
            record_digest(&m, 42, StorageClass::Audit, ChainFormat::CURRENT).unwrap(),
            d,
            "empty is not null"
        );
    }

    /// Formats 2 and 3 are contracts with every stored chain: these digests never
    /// change.
    #[test]
    fn the_encoding_is_stable() {
        let mut r = record();
        r.message = Some("quote \" backslash \\ tab \t".into());
        let digest = |r: &Record, format| {
            crate::audit::to_hex(&record_digest(r, 42, StorageClass::Audit, format).unwrap())
        };
        assert_eq!(
            digest(&r, ChainFormat::Canonical),
            "93b1c3688ae7ddd87f1a16d9e63e9b78448e5724b39d6d64433d47b7d55601b3"
        );
        r.origin = Some(std::sync::Arc::new(logbook_proto::Origin {
            uid: Some(1000),
            pid: Some(4242),
            ..logbook_proto::Origin::new(logbook_proto::transport::SOCKET)
        }));
        assert_eq!(
            digest(&r, ChainFormat::Canonical),
            "93b1c3688ae7ddd87f1a16d9e63e9b78448e5724b39d6d64433d47b7d55601b3",
            "format 2 has no origin"
        );
        assert!(canonical_json(&r, 42, StorageClass::Audit, true)
            .contains(r#""origin":{"pid":4242,"token":null,"transport":"socket","uid":1000},"#));
        assert_eq!(
            digest(&r, ChainFormat::CanonicalWithOrigin),
            "0618559d1188184ebe0bbd675ba06f8f0f9d866da9b71c5bf89e34635d300bf1"
        );
        assert!(record_digest(&r, 42, StorageClass::Audit, ChainFormat::SqliteRow).is_none());
    }
}
