//! Property tests: a secret of every kind, planted at a random place in a random record
//! (message, string field, nested JSON at random depth, JSON inside a string field),
//! never survives redaction, and its rule is counted.

#![allow(clippy::unwrap_used)]

use std::sync::LazyLock;

use logbook_proto::{InstanceId, Json, Kind, Level, Record, RecordId, Timestamp, Value};
use logbook_redact::{names, Counts, Redactor};
use proptest::collection::vec;
use proptest::prelude::*;
use serde_json::json;

static REDACTOR: LazyLock<Redactor> = LazyLock::new(Redactor::builtin);

/// Text to plant, the substrings that must be gone afterwards, and the rule to count.
#[derive(Clone, Debug)]
struct Planted {
    text: String,
    secrets: Vec<String>,
    rule: &'static str,
}

impl Planted {
    fn new(text: impl Into<String>, secret: impl Into<String>, rule: &'static str) -> Self {
        Self {
            text: text.into(),
            secrets: vec![secret.into()],
            rule,
        }
    }

    fn same(text: String, rule: &'static str) -> Self {
        Self::new(text.clone(), text, rule)
    }
}

/// Where a secret goes.
#[derive(Clone, Debug)]
enum Place {
    Message,
    Field,
    /// Inside a `Value::Json` field, this many containers deep (at least 1).
    Json(usize),
    /// Inside JSON text held by a string field.
    JsonInString(usize),
    /// As a member name inside a `Value::Json` field (maps keyed by user data).
    JsonKey(usize),
}

fn place() -> impl Strategy<Value = Place> {
    prop_oneof![
        Just(Place::Message),
        Just(Place::Field),
        (1..6usize).prop_map(Place::Json),
        (1..6usize).prop_map(Place::JsonInString),
        (1..6usize).prop_map(Place::JsonKey),
    ]
}

fn words() -> impl Strategy<Value = String> {
    vec("[a-z]{1,8}", 0..8).prop_map(|w| w.join(" "))
}

fn luhn_complete(payload: &[u8]) -> Vec<u8> {
    let sum: u32 = payload
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(*d);
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    let mut out = payload.to_vec();
    out.push(((10 - sum % 10) % 10) as u8);
    out
}

fn card() -> impl Strategy<Value = Planted> {
    (2..7u8, vec(0..10u8, 14), 0..3usize).prop_map(|(first, rest, style)| {
        let mut payload = vec![first];
        payload.extend(rest);
        let digits: String = luhn_complete(&payload)
            .iter()
            .map(|d| char::from(b'0' + d))
            .collect();
        let groups: Vec<&str> = (0..4).map(|i| &digits[i * 4..i * 4 + 4]).collect();
        let text = match style {
            0 => digits,
            1 => groups.join(" "),
            _ => groups.join("-"),
        };
        Planted::same(text, names::CREDIT_CARD)
    })
}

fn ssn() -> impl Strategy<Value = Planted> {
    (
        (1..900u32).prop_filter("666", |a| *a != 666),
        1..100u32,
        1..10_000u32,
    )
        .prop_map(|(a, g, s)| Planted::same(format!("{a:03}-{g:02}-{s:04}"), names::SSN))
}

fn iban() -> impl Strategy<Value = Planted> {
    let country = prop_oneof![
        Just(("DE", 18)),
        Just(("GB", 18)),
        Just(("FR", 23)),
        Just(("NL", 14)),
        Just(("BE", 12))
    ];
    (country, "[0-9A-Z]{30}", any::<bool>()).prop_map(|((cc, bban_len), pool, spaced)| {
        let bban = &pool[..bban_len];
        // Check digits: 98 - (BBAN + country + "00") mod 97.
        let mut rem = 0u32;
        for c in format!("{bban}{cc}00").bytes() {
            let v = if c.is_ascii_digit() {
                u32::from(c - b'0')
            } else {
                u32::from(c - b'A') + 10
            };
            rem = if v >= 10 {
                (rem * 100 + v) % 97
            } else {
                (rem * 10 + v) % 97
            };
        }
        let compact = format!("{cc}{:02}{bban}", 98 - rem);
        let text = if spaced {
            compact
                .as_bytes()
                .chunks(4)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        } else {
            compact
        };
        Planted::same(text, names::IBAN)
    })
}

fn b64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(A[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn detector_secret() -> impl Strategy<Value = Planted> {
    prop_oneof![
        card(),
        ssn(),
        iban(),
        "[a-z]{1,10}(\\.[a-z]{1,8})?@[a-z]{2,10}\\.(com|org|io|de)"
            .prop_map(|e| Planted::same(e, names::EMAIL)),
        (
            "[A-Za-z0-9_-]{8,30}",
            "[A-Za-z0-9_-]{8,60}",
            "[A-Za-z0-9_-]{20,43}"
        )
            .prop_map(|(h, p, s)| Planted::same(format!("eyJ{h}.eyJ{p}.{s}"), names::JWT)),
        "[A-Za-z0-9]{20,40}".prop_map(|t| Planted::new(format!("Bearer {t}"), t, names::BEARER)),
        ("[a-z]{3,8}", "[A-Za-z0-9!#]{6,14}").prop_map(|(u, p)| {
            let cred = b64(format!("{u}:{p}").as_bytes());
            Planted::new(format!("Basic {cred}"), cred, names::BASIC_AUTH)
        }),
        (vec("[A-Za-z0-9+/]{16,64}", 1..5), any::<bool>()).prop_map(|(lines, terminated)| {
            let mut text = format!("-----BEGIN RSA PRIVATE KEY-----\n{}", lines.join("\n"));
            if terminated {
                text.push_str("\n-----END RSA PRIVATE KEY-----");
            }
            Planted {
                text,
                secrets: lines,
                rule: names::PRIVATE_KEY,
            }
        }),
        ("(AKIA|ASIA|ABIA|ACCA)", "[A-Z0-9]{16}")
            .prop_map(|(p, k)| Planted::same(format!("{p}{k}"), names::AWS_ACCESS_KEY)),
        ("gh[pousr]_", "[A-Za-z0-9]{36,40}")
            .prop_map(|(p, k)| Planted::same(format!("{p}{k}"), names::GITHUB_TOKEN)),
        "[A-Za-z0-9_]{30,60}"
            .prop_map(|k| Planted::same(format!("github_pat_{k}"), names::GITHUB_TOKEN)),
        ("(sk-|sk-proj-)", "[A-Za-z0-9]{20,48}")
            .prop_map(|(p, k)| Planted::same(format!("{p}T3{k}"), names::OPENAI_KEY)),
        "[A-Za-z0-9_-]{40,90}"
            .prop_map(|k| Planted::same(format!("sk-ant-api03-{k}AA"), names::ANTHROPIC_KEY)),
        assigned(),
    ]
}

fn assigned() -> impl Strategy<Value = Planted> {
    let key = prop_oneof![
        Just("password"),
        Just("passwd"),
        Just("secret"),
        Just("api_key"),
        Just("token"),
        Just("db_password"),
        Just("client_secret"),
        Just("X-Api-Key"),
        Just("accessToken"),
    ];
    let value = "[A-Za-z0-9][A-Za-z0-9!#^+~]{5,15}";
    let plain = (key, value, 0..5usize).prop_map(|(k, v, style)| {
        let text = match style {
            0 => format!("{k}={v}"),
            1 => format!("{k}: {v}"),
            2 => format!("{k} = '{v}'"),
            3 => format!("\"{k}\": \"{v}\""),
            _ => format!("https://api.example.com/cb?{k}={v}&x=1"),
        };
        Planted::new(text, v, names::ASSIGNED_SECRET)
    });
    let cookie = ("(Cookie|Set-Cookie|cookie)", "[A-Za-z0-9]{10,20}").prop_map(|(h, v)| {
        Planted::new(
            format!("{h}: sid={v}; theme=dark"),
            v,
            names::ASSIGNED_SECRET,
        )
    });
    let header = "[A-Za-z0-9]{10,30}"
        .prop_map(|v| Planted::new(format!("Authorization: {v}"), v, names::ASSIGNED_SECRET));
    prop_oneof![3 => plain, 1 => cookie, 1 => header]
}

fn record() -> Record {
    let mut r = Record::new(
        RecordId::new(InstanceId::from_random(7), 1),
        Timestamp::from_system_time(std::time::UNIX_EPOCH),
        Kind::Event,
        Level::Info,
        "checkout",
    );
    r.message = Some("benign message".into());
    r.fields.set("status", Value::I64(200));
    r.fields.set("path", "/v1/items".into());
    r
}

/// Wraps `inner` in `depth` containers, alternating objects and arrays as `shape` says.
fn nest(inner: serde_json::Value, depth: usize, shape: u32) -> serde_json::Value {
    (0..depth).fold(inner, |v, i| {
        if shape >> i & 1 == 0 {
            json!({"role": "user", format!("k{i}"): v, "n": i})
        } else {
            json!([i, v, "x"])
        }
    })
}

/// A record holding `text` at `place`.
fn record_with_text(text: &str, place: &Place, shape: u32) -> Record {
    let mut r = record();
    match place {
        Place::Message => r.message = Some(text.to_owned()),
        Place::Field => r.fields.set("detail", text.into()),
        Place::Json(d) => {
            let v = nest(json!(text), *d, shape);
            r.fields
                .set("payload", Value::Json(Json::from_serialize(&v).unwrap()));
        }
        Place::JsonKey(d) => {
            let v = nest(json!({ text: 1 }), *d - 1, shape);
            r.fields
                .set("by_user", Value::Json(Json::from_serialize(&v).unwrap()));
        }
        Place::JsonInString(d) => {
            let v = nest(json!(text), *d, shape);
            r.fields.set(
                "gen_ai.input.messages",
                serde_json::to_string(&v).unwrap().into(),
            );
        }
    }
    r
}

fn check(mut r: Record, secrets: &[String], rule: &str) -> Result<(), TestCaseError> {
    let before = serde_json::to_string(&r).unwrap();
    for s in secrets {
        prop_assert!(before.contains(s.as_str()), "test bug: {s} not planted");
    }
    let mut counts = Counts::new();
    REDACTOR.redact_record(&mut r, &mut counts);
    let after = serde_json::to_string(&r).unwrap();
    for s in secrets {
        prop_assert!(!after.contains(s.as_str()), "{s:?} survived in {after}");
    }
    prop_assert!(
        counts.get(rule) >= 1,
        "{rule} not counted: {counts:?} for {after}"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn planted_detector_secrets_never_survive(
        planted in detector_secret(),
        place in place(),
        before in words(),
        after in words(),
        shape in any::<u32>(),
    ) {
        let text = format!("{before} {} {after}", planted.text);
        check(record_with_text(&text, &place, shape), &planted.secrets, planted.rule)?;
    }

    #[test]
    fn secret_keys_never_survive(
        rule in proptest::sample::select(names::KEY_RULES),
        variant in 0..5usize,
        value in "[A-Za-z0-9]{12,24}",
        number in 100_000_000_000u64..u64::MAX,
        kind in 0..3usize,
        place in place(),
        shape in any::<u32>(),
    ) {
        let key = match variant {
            0 => rule.to_owned(),
            1 => format!("db_{rule}"),
            2 => format!("app.{rule}"),
            3 => rule.to_uppercase(),
            _ => rule.replace('_', "-"),
        };
        let number_text = number.to_string();
        let (v, secret) = match kind {
            0 => (json!(value), value.clone()),
            1 => (json!(number), number_text),
            _ => (json!({"nested": value, "more": [1, 2]}), value.clone()),
        };
        let mut r = record();
        let expect = match place {
            Place::Message => {
                // As text, a key's value is found by `assigned_secret`.
                r.message = Some(format!("login {key}={value} ok"));
                names::ASSIGNED_SECRET
            }
            Place::Field => {
                r.fields.set(key.clone(), Value::from_json(v));
                rule
            }
            Place::Json(d) => {
                let j = nest(json!({ key.clone(): v, "other": "x" }), d - 1, shape);
                r.fields.set("payload", Value::Json(Json::from_serialize(&j).unwrap()));
                rule
            }
            Place::JsonInString(d) | Place::JsonKey(d) => {
                let j = nest(json!({ key.clone(): v, "other": "x" }), d - 1, shape);
                r.fields.set("gen_ai.output.messages", serde_json::to_string(&j).unwrap().into());
                rule
            }
        };
        let secret = if matches!(place, Place::Message) { value } else { secret };
        check(r, &[secret], expect)?;
    }
}
