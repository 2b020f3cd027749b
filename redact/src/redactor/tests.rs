use logbook_proto::{InstanceId, Kind, Level, RecordId, Timestamp};

use super::*;
use crate::config::RuleConfig;

const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
const KEY: &[u8] = b"test pseudonym key";

fn record() -> Record {
    Record::new(
        RecordId::new(InstanceId::from_random(1), 1),
        Timestamp::from_system_time(std::time::UNIX_EPOCH),
        Kind::Event,
        Level::Info,
        "test",
    )
}

fn text(r: &Redactor, s: &str) -> (String, Counts) {
    let mut c = Counts::new();
    let out = r.redact_text(s, &mut c).unwrap_or_else(|| s.to_owned());
    (out, c)
}

fn json(s: &str) -> Value {
    Value::Json(Json::parse(s).unwrap())
}

#[test]
fn redactor_is_send_sync() {
    fn check<T: Send + Sync + 'static>() {}
    check::<Redactor>();
}

#[test]
fn nothing_to_redact_is_none() {
    let r = Redactor::builtin();
    let mut c = Counts::new();
    for s in [
        "",
        "GET /v1/items 200 12ms",
        "user_id=42 max_tokens=1000",
        "2024-05-01T12:00:00Z",
    ] {
        assert_eq!(r.redact_text(s, &mut c), None, "{s}");
    }
    assert!(c.is_empty());
}

#[test]
fn message_and_fields_are_redacted() {
    let r = Redactor::builtin();
    let mut rec = record();
    rec.message = Some("login by ann@example.com with password=hunter2".into());
    rec.fields.set("db_password", "pw".into());
    rec.fields.set("X-Api-Key", Value::I64(12345));
    rec.fields.set("card", Value::U64(4111111111111111));
    rec.fields.set("note", "card 4111-1111-1111-1111".into());
    rec.fields.set("input_tokens", Value::I64(532));
    rec.fields.set("page", "2".into());
    let mut c = Counts::new();
    r.redact_record(&mut rec, &mut c);
    assert_eq!(
        rec.message.as_deref(),
        Some("login by [REDACTED:email] with password=[REDACTED:assigned_secret]")
    );
    let get = |k| rec.fields.get(k).cloned();
    assert_eq!(get("db_password"), Some("[REDACTED:password]".into()));
    assert_eq!(get("X-Api-Key"), Some("[REDACTED:api_key]".into()));
    assert_eq!(get("card"), Some("[REDACTED:credit_card]".into()));
    assert_eq!(get("note"), Some("card [REDACTED:credit_card]".into()));
    assert_eq!(get("input_tokens"), Some(Value::I64(532)));
    assert_eq!(
        c.iter().collect::<Vec<_>>(),
        [
            ("api_key", 1),
            ("assigned_secret", 1),
            ("credit_card", 2),
            ("email", 1),
            ("password", 1)
        ]
    );
}

#[test]
fn key_rules_reach_into_nested_json() {
    let r = Redactor::builtin();
    let mut f = Fields::new();
    f.set(
        "request",
        json(r#"{"headers":{"Authorization":"Bearer abc","accept":"*/*"},"auth":{"client_secret":{"v":1}},"n":[{"token":7}],"token_count":3}"#),
    );
    f.set(
        "gen_ai.input.messages",
        "[{\"role\":\"user\",\"content\":\"mail me at bob@example.org\"},{\"role\":\"tool\",\"content\":\"{\\\"api_key\\\":\\\"k1\\\"}\"}]".into(),
    );
    let mut c = Counts::new();
    r.redact_fields(&mut f, &mut c);
    assert_eq!(
        f.get("request").unwrap().to_string(),
        r#"{"headers":{"Authorization":"[REDACTED:authorization]","accept":"*/*"},"auth":{"client_secret":"[REDACTED:client_secret]"},"n":[{"token":"[REDACTED:token]"}],"token_count":3}"#
    );
    assert_eq!(
        f.get("gen_ai.input.messages").unwrap().as_str().unwrap(),
        r#"[{"role":"user","content":"mail me at [REDACTED:email]"},{"role":"tool","content":"{\"api_key\":\"[REDACTED:api_key]\"}"}]"#
    );
    assert_eq!(c.total(), 5);
}

#[test]
fn benign_json_is_untouched() {
    let r = Redactor::builtin();
    let mut f = Fields::new();
    let raw = r#"{"model":"gpt-4o", "usage": {"input_tokens": 10, "max_tokens": 100}}"#;
    f.set("j", json(raw));
    let mut c = Counts::new();
    r.redact_fields(&mut f, &mut c);
    assert_eq!(f.get("j").unwrap().to_string(), raw, "not re-serialized");
    assert!(c.is_empty());
}

#[test]
fn jwt_after_bearer_counts_once_as_jwt() {
    let r = Redactor::builtin();
    let (out, c) = text(&r, &format!("Authorization: Bearer {JWT}"));
    assert_eq!(out, "Authorization: Bearer [REDACTED:jwt]");
    assert_eq!(c.iter().collect::<Vec<_>>(), [("jwt", 1)]);
    let (out, c) = text(&r, "authorization: Bearer abcdef123456");
    assert_eq!(out, "authorization: Bearer [REDACTED:bearer]");
    assert_eq!(c.iter().collect::<Vec<_>>(), [("bearer", 1)]);
    let (out, _) = text(&r, "Cookie: sid=abc; theme=dark\nnext line");
    assert_eq!(out, "Cookie: [REDACTED:assigned_secret]\nnext line");
}

#[test]
fn overlapping_matches_leave_no_fragment() {
    let r = Redactor::builtin();
    // An assigned value that holds a JWT: the union is masked, named after the JWT.
    let (out, c) = text(&r, &format!("token=x{JWT}y end"));
    assert_eq!(out, "token=[REDACTED:jwt] end");
    assert_eq!(c.total(), 1);
}

#[test]
fn actions_apply() {
    let config = Config::default()
        .with_action(names::EMAIL, Action::Pseudonym)
        .with_action(names::CREDIT_CARD, Action::Truncate { first: 0, last: 4 })
        .with_action(names::PASSWORD, Action::Drop)
        .with_action(names::SSN, Action::Drop);
    let r = Redactor::new(&config, Some(KEY)).unwrap();
    let (a, _) = text(&r, "to ann@example.com");
    let (b, _) = text(&r, "from ann@example.com!");
    assert_eq!(a.len(), "to [email:0123456789abcdef]".len());
    assert_eq!(a[3..], b[5..b.len() - 1]);
    assert_eq!(
        text(&r, "4111 1111 1111 1111").0,
        "[REDACTED:credit_card]…1111"
    );
    // Drop: in a message, masked; in a field, the field goes.
    assert_eq!(text(&r, "ssn 123-45-6789").0, "ssn [REDACTED:ssn]");
    let mut f = Fields::new();
    f.set("password", "x".into());
    f.set("who", "ssn 123-45-6789".into());
    f.set(
        "j",
        json(r#"{"a":{"password":"p","keep":1},"b":["ok","ssn 123-45-6789"]}"#),
    );
    f.set("stay", "ok".into());
    let mut c = Counts::new();
    r.redact_fields(&mut f, &mut c);
    assert_eq!(f.iter().map(|(k, _)| k).collect::<Vec<_>>(), ["j", "stay"]);
    assert_eq!(
        f.get("j").unwrap().to_string(),
        r#"{"a":{"keep":1},"b":["ok"]}"#
    );
    assert_eq!(c.get("password"), 2);
    assert_eq!(c.get("ssn"), 2);
}

#[test]
fn allow_keys_exempt_everything_below() {
    let config = Config::default()
        .with_allow_key("page_token")
        .with_allow_key("debug");
    let r = Redactor::new(&config, None).unwrap();
    let mut f = Fields::new();
    f.set("next_page_token", "abc".into());
    f.set("debug", json(r#"{"password":"x","mail":"a@b.io"}"#));
    f.set("token", "abc".into());
    let mut c = Counts::new();
    r.redact_fields(&mut f, &mut c);
    assert_eq!(f.get("next_page_token"), Some(&"abc".into()));
    assert_eq!(f.get("token"), Some(&"[REDACTED:token]".into()));
    assert_eq!(c.total(), 1);
    assert_eq!(text(&r, "page_token=abc").1.total(), 0);
}

#[test]
fn custom_rules() {
    let config = Config::default()
        .with_disabled(names::EMAIL)
        .with_rule(RuleConfig::new("employee_id").with_pattern("EMP-[0-9]{6}"))
        .with_rule(RuleConfig::new("order_pin").with_pattern(r"pin (?P<secret>[0-9]{4})\b"))
        .with_rule(
            RuleConfig::new("session_key")
                .with_key("session_key")
                .with_key("x-session")
                .with_action(Action::Pseudonym),
        );
    let r = Redactor::new(&config, Some(KEY)).unwrap();
    assert!(!r.rule_names().any(|n| n == names::EMAIL));
    assert!(r.rule_names().any(|n| n == "employee_id"));
    assert_eq!(
        text(&r, "EMP-123456 a@b.io pin 1234").0,
        "[REDACTED:employee_id] a@b.io pin [REDACTED:order_pin]"
    );
    let mut f = Fields::new();
    f.set("X-Session", "s1".into());
    let mut c = Counts::new();
    r.redact_fields(&mut f, &mut c);
    let v = f.get("X-Session").unwrap().as_str().unwrap().to_owned();
    assert!(v.starts_with("[session_key:"), "{v}");
    // Text assignment uses custom keys too.
    assert_eq!(
        text(&r, "session_key=abc1").0,
        "session_key=[REDACTED:assigned_secret]"
    );
}

#[test]
fn redacting_twice_changes_nothing() {
    let config = Config::default()
        .with_action(names::EMAIL, Action::Pseudonym)
        .with_action(names::TOKEN, Action::Pseudonym)
        .with_action(names::CREDIT_CARD, Action::Truncate { first: 4, last: 4 });
    let r = Redactor::new(&config, Some(KEY)).unwrap();
    let mut rec = record();
    rec.message = Some(format!("a@b.io 4111111111111111 password=x Bearer {JWT}"));
    rec.fields.set("token", "t".into());
    rec.fields
        .set("j", json(r#"{"password":"p","m":"c@d.io"}"#));
    let mut c = Counts::new();
    r.redact_record(&mut rec, &mut c);
    let once = rec.clone();
    let mut c2 = Counts::new();
    r.redact_record(&mut rec, &mut c2);
    assert_eq!(rec, once);
    assert!(c2.is_empty(), "{c2:?}");
}

#[test]
fn config_errors_are_one_line() {
    let bad = [
        (
            Config::default().with_disabled("emial"),
            "redaction rule `emial` (in `disable`): no built-in rule has this name",
        ),
        (
            Config::default().with_action("x", Action::Mask),
            "redaction rule `x` (in `actions`): no built-in rule has this name",
        ),
        (
            Config::default().with_rule(RuleConfig::new("r").with_pattern("EMP-[0-9")),
            "redaction rule `r`: invalid pattern: unclosed character class",
        ),
        (
            Config::default().with_rule(RuleConfig::new("r")),
            "redaction rule `r`: the rule has neither `keys` nor `pattern`",
        ),
        (
            Config::default().with_rule(RuleConfig::new("email").with_key("k")),
            "redaction rule `email`: a built-in rule has this name (use `actions` to change it)",
        ),
        (
            Config::default().with_rule(RuleConfig::new("a b").with_key("k")),
            "redaction rule `a b`: a name is ASCII letters, digits, `_` and `-`",
        ),
        (
            Config::default().with_action(names::JWT, Action::Pseudonym),
            "redaction rule `jwt`: action `pseudonym` needs a pseudonym key, and none was given",
        ),
    ];
    for (config, msg) in bad {
        let err = Redactor::new(&config, None).unwrap_err().to_string();
        assert_eq!(err, msg);
    }
    let config = Config::default().with_action(names::JWT, Action::Pseudonym);
    assert!(matches!(
        Redactor::new(&config, Some(b"")),
        Err(Error::EmptyPseudonymKey { .. })
    ));
}

#[test]
fn debug_hides_the_key() {
    let config = Config::default().with_action(names::JWT, Action::Pseudonym);
    let r = Redactor::new(&config, Some(KEY)).unwrap();
    let dbg = format!("{r:?}");
    assert!(
        dbg.contains("**REDACTED**") && !dbg.contains("test pseudonym"),
        "{dbg}"
    );
}

#[test]
fn non_ascii_text_around_matches() {
    let r = Redactor::builtin();
    assert_eq!(
        text(&r, "héllo ünïcode ann@example.com — ok 日本").0,
        "héllo ünïcode [REDACTED:email] — ok 日本"
    );
    assert_eq!(
        text(&r, "password=пароль1 x").0,
        "password=[REDACTED:assigned_secret] x"
    );
}

#[test]
fn member_names_are_scanned_in_nested_json() {
    let r = Redactor::builtin();
    let mut f = Fields::new();
    f.set("by_user", json(r#"{"ann@example.com":{"n":1},"bob":2}"#));
    let mut c = Counts::new();
    r.redact_fields(&mut f, &mut c);
    assert_eq!(
        f.get("by_user").unwrap().to_string(),
        r#"{"[REDACTED:email]":{"n":1},"bob":2}"#
    );
    assert_eq!(c.get(names::EMAIL), 1);
}
