//! W3C `baggage` (<https://www.w3.org/TR/baggage/>): the run's scope carried from one
//! process to the next.
//!
//! Only the scope keys that describe the work ([`PROPAGATED_SCOPE`]: the run, the
//! tenant, the user and the session) travel; the keys that describe a process or a unit
//! of its work (`env`, `project`, `app`, `surface`, `step_id`, `request_id`) stay with
//! the process that set them, in both directions.

use logbook_proto::ScopeKey;

/// The scope keys written to and read from `baggage`.
pub const PROPAGATED_SCOPE: &[ScopeKey] = &[
    ScopeKey::RunId,
    ScopeKey::Tenant,
    ScopeKey::UserId,
    ScopeKey::SessionId,
];

/// The most entries a `baggage` value may have (W3C: at least 64 must be accepted).
const MAX_MEMBERS: usize = 64;

/// The longest scope value taken from `baggage`, in bytes: longer ones are ignored
/// (the collector refuses scope values over 1,024 bytes, and with them the records).
pub(crate) const MAX_SCOPE_VALUE: usize = 256;

/// Whether `b` may appear unencoded in a baggage value (W3C `baggage-octet`), less the
/// characters encoded anyway so that values round trip (`%`, `=`).
fn plain_octet(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E)
        && b != b'%'
        && b != b'='
}

/// Appends `value` percent-encoded (UTF-8) for a baggage value.
pub(crate) fn encode_value(value: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in value.as_bytes() {
        if plain_octet(b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xF)]));
        }
    }
}

/// Decodes a percent-encoded baggage value; malformed escapes are kept as they are and
/// invalid UTF-8 is replaced.
pub(crate) fn decode_value(value: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let raw = value.as_bytes();
    if !raw.contains(&b'%') {
        return value.to_owned();
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' {
            if let (Some(hi), Some(lo)) = (
                raw.get(i + 1).copied().and_then(hex),
                raw.get(i + 2).copied().and_then(hex),
            ) {
                out.push((hi << 4) | lo);
                i += 3;
                continue;
            }
        }
        out.push(raw[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A `baggage` header value carrying `scope`'s propagated keys (others are left out).
pub(crate) fn encode<'a>(scope: impl IntoIterator<Item = (ScopeKey, &'a str)>) -> String {
    let mut out = String::new();
    for (key, value) in scope {
        if !PROPAGATED_SCOPE.contains(&key) {
            continue;
        }
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(key.as_str());
        out.push('=');
        encode_value(value, &mut out);
    }
    out
}

/// A parsed `baggage` value: the propagated scope it carries, and the other entries'
/// text (kept as it came, joined by `,`).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Parsed {
    pub(crate) scope: Vec<(ScopeKey, String)>,
    pub(crate) rest: String,
}

/// Parses a `baggage` header value. Entries are `key=value` with optional `;properties`
/// (ignored); whitespace around keys, values and separators is allowed. An entry
/// whose key is a propagated scope key and whose value is not empty and at most
/// [`MAX_SCOPE_VALUE`] bytes goes to `scope` (the last one wins); any other scope
/// entry is dropped, and other entries, well formed or not, are kept in `rest`.
pub(crate) fn parse(header: &str) -> Parsed {
    let mut parsed = Parsed::default();
    for member in header.split(',').take(MAX_MEMBERS) {
        let member = member.trim();
        if member.is_empty() {
            continue;
        }
        let value_and_props = member.split_once('=').and_then(|(key, rest)| {
            let key = ScopeKey::from_name(key.trim())?;
            PROPAGATED_SCOPE.contains(&key).then_some((key, rest))
        });
        match value_and_props {
            Some((key, rest)) => {
                let value = rest.split(';').next().unwrap_or_default().trim();
                let value = decode_value(value);
                if value.is_empty() || value.len() > MAX_SCOPE_VALUE {
                    continue;
                }
                parsed.scope.retain(|(k, _)| *k != key);
                parsed.scope.push((key, value));
            }
            None => {
                if !parsed.rest.is_empty() {
                    parsed.rest.push(',');
                }
                parsed.rest.push_str(member);
            }
        }
    }
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_through_percent_encoding() {
        for v in [
            "plain-run_42",
            "a,b;c=d%e",
            "spaces and \"quotes\" \\ back",
            "ünïcödé ✓",
            "line\nbreak\ttab\u{7f}",
            "%41 is not A",
            "",
        ] {
            let mut enc = String::new();
            encode_value(v, &mut enc);
            assert!(
                enc.bytes().all(|b| plain_octet(b) || b == b'%'),
                "{v:?} → {enc:?}"
            );
            assert!(!enc.contains([',', ';', '=', ' ']), "{enc:?}");
            assert_eq!(decode_value(&enc), v, "{enc:?}");
        }
    }

    #[test]
    fn scope_round_trips_and_only_propagated_keys_travel() {
        let header = encode([
            (ScopeKey::RunId, "r-1"),
            (ScopeKey::StepId, "s-1"),
            (ScopeKey::Tenant, "acme, inc; =100%"),
            (ScopeKey::Env, "prod"),
            (ScopeKey::UserId, "ü@x"),
            (ScopeKey::SessionId, "s 9"),
        ]);
        assert!(
            !header.contains("step_id") && !header.contains("env"),
            "{header}"
        );
        let parsed = parse(&header);
        assert_eq!(
            parsed.scope,
            vec![
                (ScopeKey::RunId, "r-1".to_owned()),
                (ScopeKey::Tenant, "acme, inc; =100%".to_owned()),
                (ScopeKey::UserId, "ü@x".to_owned()),
                (ScopeKey::SessionId, "s 9".to_owned()),
            ]
        );
        assert_eq!(parsed.rest, "");
    }

    #[test]
    fn parsing_tolerates_whitespace_properties_and_foreign_entries() {
        let parsed = parse(
            " userTier = gold , run_id = r%2D7 ;prop=1;flag, env=prod, tenant=, step_id=s, junk ,run_id=r-8",
        );
        assert_eq!(parsed.scope, vec![(ScopeKey::RunId, "r-8".to_owned())]);
        assert_eq!(parsed.rest, "userTier = gold,env=prod,step_id=s,junk");
        assert_eq!(parse("run_id=%zz%4").scope[0].1, "%zz%4");
        assert_eq!(parse(""), Parsed::default());
    }

    #[test]
    fn overlong_scope_values_are_ignored() {
        let long = "x".repeat(MAX_SCOPE_VALUE + 1);
        let p = parse(&format!("user_id={long},tenant=acme"));
        assert_eq!(p.scope, vec![(ScopeKey::Tenant, "acme".to_owned())]);
    }
}
