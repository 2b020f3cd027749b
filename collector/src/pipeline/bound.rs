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
}
