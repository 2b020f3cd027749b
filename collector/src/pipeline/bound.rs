//! Bounds on what one client may send, applied before anything else reads it: its
//! identity (service and host) and each record's values and size. An oversize value (an
//! image in a prompt) is cut with a visible marker and counted, so the record is kept;
//! an oversize identity or record is refused.

use logbook_proto::{Record, Resource, Value};

use super::Limits;

/// A client's identity longer than the limits: one line naming the part.
pub fn check_identity(resource: &Resource, limits: &Limits) -> Result<(), String> {
    for (what, value, max) in [
        ("service", &resource.service, limits.max_service_bytes),
        ("host", &resource.host, limits.max_host_bytes),
    ] {
        if value.len() > max {
            return Err(format!(
                "{what} name of {} bytes, more than the limit of {max} bytes",
                value.len()
            ));
        }
    }
    Ok(())
}

/// Cuts every field value and the message longer than `max` bytes (keeping the
/// first `max` bytes, at a character boundary, and saying how much was cut); returns
/// how many were cut. A cut JSON value becomes text: its cut form is no longer JSON.
pub fn cut_values(r: &mut Record, max: usize) -> u64 {
    let mut cut = 0;
    if let Some(m) = &mut r.message {
        if let Some(short) = cut_text(m, max) {
            *m = short;
            cut += 1;
        }
    }
    for (_, v) in r.fields.iter_mut() {
        let short = match v {
            Value::Str(s) => cut_text(s, max),
            Value::Json(j) => cut_text(j.as_str(), max),
            Value::I64(_) | Value::U64(_) | Value::F64(_) | Value::Bool(_) => None,
        };
        if let Some(short) = short {
            *v = Value::Str(short);
            cut += 1;
        }
    }
    cut
}

/// Replaces every NUL character in the record's text (its name, target, message, file,
/// category, scope, field keys and string values, inside JSON values too) with U+FFFD:
/// no store can keep one in text (PostgreSQL refuses it), and a record a store refuses
/// would fail the whole commit it is part of. Returns whether anything changed.
pub fn scrub_nul(r: &mut Record) -> bool {
    const NUL: char = '\0';
    const REPLACEMENT: &str = "\u{fffd}";
    let fix = |s: &str| s.replace(NUL, REPLACEMENT);
    let mut changed = false;
    if r.name.contains(NUL) {
        r.name = logbook_proto::Str::Owned(fix(&r.name));
        changed = true;
    }
    if r.target.contains(NUL) {
        r.target = logbook_proto::Str::Owned(fix(&r.target));
        changed = true;
    }
    for text in [&mut r.message].into_iter().flatten() {
        if text.contains(NUL) {
            *text = fix(text);
            changed = true;
        }
    }
    if r.file.as_ref().is_some_and(|f| f.contains(NUL)) {
        r.file = r.file.as_ref().map(|f| logbook_proto::Str::Owned(fix(f)));
        changed = true;
    }
    if r.category.as_ref().is_some_and(|c| c.contains(NUL)) {
        r.category = r
            .category
            .as_ref()
            .map(|c| logbook_proto::Str::Owned(fix(c)));
        changed = true;
    }
    if r.scope.iter().any(|(_, v)| v.contains(NUL)) {
        let mut scope = (*r.scope).clone();
        for key in logbook_proto::ScopeKey::ALL {
            if let Some(v) = scope.get(*key).filter(|v| v.contains(NUL)).map(fix) {
                scope.set(*key, Some(v));
            }
        }
        r.scope = std::sync::Arc::new(scope);
        changed = true;
    }
    let nul_in_json = |j: &logbook_proto::Json| j.as_str().contains("\\u0000");
    let keys = r.fields.iter().any(|(k, _)| k.contains(NUL));
    let values = r.fields.iter().any(|(_, v)| match v {
        Value::Str(s) => s.contains(NUL),
        Value::Json(j) => nul_in_json(j),
        _ => false,
    });
    if keys || values {
        let mut fields = logbook_proto::Fields::with_capacity(r.fields.len());
        for (k, v) in r.fields.iter() {
            let v = match v {
                Value::Str(s) if s.contains(NUL) => Value::Str(fix(s)),
                Value::Json(j) if nul_in_json(j) => {
                    let mut parsed = j.to_value();
                    scrub_json(&mut parsed);
                    Value::from_json(parsed)
                }
                other => other.clone(),
            };
            fields.set(fix(k), v);
        }
        r.fields = fields;
        changed = true;
    }
    changed
}

fn scrub_json(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) if s.contains('\0') => *s = s.replace('\0', "\u{fffd}"),
        serde_json::Value::Array(items) => items.iter_mut().for_each(scrub_json),
        serde_json::Value::Object(map) => {
            if map.keys().any(|k| k.contains('\0')) {
                let old = std::mem::take(map);
                for (k, mut v) in old {
                    scrub_json(&mut v);
                    map.insert(k.replace('\0', "\u{fffd}"), v);
                }
            } else {
                map.values_mut().for_each(scrub_json);
            }
        }
        _ => {}
    }
}

/// `text` cut to `max` bytes with a marker, or `None` if it fits.
fn cut_text(text: &str, max: usize) -> Option<String> {
    if text.len() <= max {
        return None;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Some(format!(
        "{}…[truncated {} bytes]",
        &text[..end],
        text.len() - end
    ))
}

/// About how many bytes `r` takes once stored: its text and its fields' keys and
/// values (numbers count eight bytes).
pub fn approx_size(r: &Record) -> usize {
    let text = r.name.len()
        + r.target.len()
        + r.message.as_ref().map_or(0, String::len)
        + r.file.as_ref().map_or(0, |f| f.len())
        + r.category.as_ref().map_or(0, |c| c.len())
        + r.scope.iter().map(|(_, v)| v.len()).sum::<usize>();
    let fields: usize = r
        .fields
        .iter()
        .map(|(k, v)| {
            k.len()
                + match v {
                    Value::Str(s) => s.len(),
                    Value::Json(j) => j.as_str().len(),
                    Value::I64(_) | Value::U64(_) | Value::F64(_) | Value::Bool(_) => 8,
                }
        })
        .sum();
    // Ids, times, codes.
    96 + text + fields
}

#[cfg(test)]
mod tests {
    use super::*;
    use logbook_proto::{Json, Kind, Level, RecordId, Timestamp};

    #[test]
    fn long_values_are_cut_at_a_character_boundary_with_a_marker() {
        let mut r = Record::new(
            RecordId([1; 16]),
            Timestamp::now(),
            Kind::Event,
            Level::Info,
            "e",
        );
        r.message = Some("é".repeat(10));
        r.fields.set("short", Value::Str("ok".into()));
        r.fields.set("long", Value::Str("x".repeat(100)));
        r.fields.set(
            "json",
            Value::Json(Json::parse(format!("[{}]", "1,".repeat(50) + "1")).unwrap()),
        );
        r.fields.set("n", Value::U64(7));
        assert_eq!(cut_values(&mut r, 9), 3);
        assert_eq!(r.message.as_deref(), Some("éééé…[truncated 12 bytes]"));
        assert_eq!(r.fields.get("short"), Some(&Value::Str("ok".into())));
        assert_eq!(
            r.fields.get("long"),
            Some(&Value::Str("xxxxxxxxx…[truncated 91 bytes]".into()))
        );
        assert!(matches!(r.fields.get("json"), Some(Value::Str(s)) if s.starts_with("[1,1,1,1,")));
        assert_eq!(r.fields.get("n"), Some(&Value::U64(7)));
        assert_eq!(cut_values(&mut r, 1000), 0);
    }

    #[test]
    fn identities_are_bounded() {
        let limits = Limits::default();
        let mut resource = Resource {
            service: "s".repeat(limits.max_service_bytes),
            host: "h".into(),
            pid: 1,
        };
        assert!(check_identity(&resource, &limits).is_ok());
        resource.service.push('s');
        let e = check_identity(&resource, &limits).unwrap_err();
        assert!(e.starts_with("service name of 257 bytes"), "{e}");
    }

    #[test]
    fn nul_characters_become_replacement_characters_everywhere() {
        use logbook_proto::{InstanceId, Json, Kind, Level, RecordId, Timestamp};
        let mut r = Record::new(
            RecordId::new(InstanceId::from_random(1), 1),
            Timestamp(1),
            Kind::Event,
            Level::Info,
            "na\0me",
        );
        r.message = Some("a\0b".into());
        r.fields.set("k\0", Value::Str("v\0".into()));
        r.fields.set(
            "j",
            Value::Json(Json::parse(r#"{"x":"\u0000","y\u0000":[1]}"#).unwrap()),
        );
        assert!(scrub_nul(&mut r));
        assert_eq!(&*r.name, "na\u{fffd}me");
        assert_eq!(r.message.as_deref(), Some("a\u{fffd}b"));
        assert_eq!(
            r.fields.get("k\u{fffd}"),
            Some(&Value::Str("v\u{fffd}".into()))
        );
        let j = r.fields.get("j").map(ToString::to_string).unwrap();
        assert!(!j.contains("\\u0000") && j.contains('\u{fffd}'), "{j}");
        assert!(!scrub_nul(&mut r), "nothing left to change");
    }
}
