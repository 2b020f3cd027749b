//! The engine: built once from a [`Config`], then shared by every thread.

use std::borrow::Cow;
use std::fmt;

use logbook_proto::{Fields, Json, Record, Value};
use regex::{Regex, RegexSet};

use crate::action::{is_marked, RuleId, RuleTable};
use crate::config::{Action, Config};
use crate::counts::Counts;
use crate::detect::{self, Detector, Span, CUSTOM_RANK, PATTERNS};
use crate::error::Error;
use crate::hints::{self, Hints};
use crate::json::{looks_like_json, Change, Node};
use crate::keys::{KeyMatch, KeyMatcher, ValueShape};
use crate::{assigned, digits, names};

/// How many JSON documents inside strings inside JSON documents are parsed; deeper
/// ones are scanned as text.
const MAX_NESTED_JSON: u8 = 4;

/// The name of the capture group a custom pattern may use to replace only part of
/// its match.
pub const SECRET_GROUP: &str = "secret";

/// What redacting one value did.
pub(crate) enum Outcome<T = String> {
    Keep,
    Replace(T),
    /// Remove the field or member that holds the value.
    Drop,
}

struct CustomPattern {
    rule: RuleId,
    regex: Regex,
    /// The `secret` capture group, if the pattern has one.
    group: Option<usize>,
}

/// The redaction engine. Immutable once built, `Send + Sync`, meant to be shared in an
/// `Arc`. See the [crate docs](crate) for the rules, actions and precedence.
pub struct Redactor {
    pub(crate) table: RuleTable,
    pub(crate) keys: KeyMatcher,
    /// The rule of each enabled built-in detector, by [`Detector::index`].
    detectors: [Option<RuleId>; Detector::ALL.len()],
    /// Hints worth computing: those of enabled detectors, and [`hints::ASSIGN`] when
    /// key rules exist (it finds them in JSON text too).
    hint_mask: u16,
    custom: Vec<CustomPattern>,
    custom_set: Option<RegexSet>,
}

impl Redactor {
    /// Builds the engine. `pseudonym_key` keys the HMAC of the `pseudonym` action; a
    /// configuration that uses `pseudonym` without a (non-empty) key is refused.
    pub fn new(config: &Config, pseudonym_key: Option<&[u8]>) -> Result<Self, Error> {
        for (setting, list) in [
            ("disable", config.disable.iter().collect::<Vec<_>>()),
            ("actions", config.actions.keys().collect()),
        ] {
            if let Some(bad) = list.into_iter().find(|n| !names::is_builtin(n)) {
                return Err(Error::UnknownRule {
                    rule: bad.clone(),
                    setting,
                });
            }
        }
        let mut table = RuleTable::new(pseudonym_key);
        let mut keys = KeyMatcher::default();
        for name in names::all() {
            if !config.disable.iter().any(|d| d == name) {
                table.push(name, config.actions.get(name).copied().unwrap_or_default());
            }
        }
        let (custom, custom_set) = custom_rules(config, &mut table, &mut keys)?;
        // Built-in key rules after custom ones: on equal keys the custom rule wins.
        for key in names::KEY_RULES {
            if let Some(id) = table.find(key) {
                let shape = match *key {
                    names::AUTHORIZATION => ValueShape::LineAfterScheme,
                    names::COOKIE | names::SET_COOKIE => ValueShape::Line,
                    _ => ValueShape::Word,
                };
                keys.add_rule(key, id, shape);
            }
        }
        for key in &config.allow_keys {
            keys.add_allowed(key);
        }
        let detectors = Detector::ALL.map(|d| table.find(d.name()));
        let mut hint_mask = if keys.has_rules() { hints::ASSIGN } else { 0 };
        for d in Detector::ALL {
            if detectors[d.index()].is_some() {
                hint_mask |= hint_of(d);
            }
        }
        if let Some(rule) = table
            .names()
            .zip(0..)
            .find_map(|(name, id)| (table.action(id) == Action::Pseudonym).then(|| name.to_owned()))
        {
            match pseudonym_key {
                None => return Err(Error::MissingPseudonymKey { rule }),
                Some([]) => return Err(Error::EmptyPseudonymKey { rule }),
                Some(_) if !table.has_key() => return Err(Error::EmptyPseudonymKey { rule }),
                Some(_) => {}
            }
        }
        Ok(Self {
            table,
            keys,
            detectors,
            hint_mask,
            custom,
            custom_set,
        })
    }

    /// Every built-in rule, masking; no pseudonym key.
    pub fn builtin() -> Self {
        Self::new(&Config::default(), None).expect("the default configuration is valid")
    }

    /// The enabled rules, built-in then custom.
    pub fn rule_names(&self) -> impl Iterator<Item = &str> {
        self.table.names()
    }

    /// Redacts a record in place: its message and every field. The name, target, file,
    /// category and scope (ids) are left alone.
    pub fn redact_record(&self, record: &mut Record, counts: &mut Counts) {
        if let Some(message) = &record.message {
            if let Some(new) = self.redact_text(message, counts) {
                record.message = Some(new);
            }
        }
        self.redact_fields(&mut record.fields, counts);
    }

    /// Redacts fields in place, removing those a `drop` action hit.
    pub fn redact_fields(&self, fields: &mut Fields, counts: &mut Counts) {
        let mut dropped: Vec<String> = Vec::new();
        for (key, value) in fields.iter_mut() {
            if self.redact_field(key, value, counts) {
                dropped.push(key.to_owned());
            }
        }
        if !dropped.is_empty() {
            fields.retain(|k, _| !dropped.iter().any(|d| d == k));
        }
    }

    /// Redacts free text (a message): the new text, or `None` when nothing matched
    /// (nothing is allocated then). A `drop` action masks here, as text cannot lose
    /// a value.
    pub fn redact_text(&self, text: &str, counts: &mut Counts) -> Option<String> {
        match self.redact_str(text, true, 0, counts) {
            Outcome::Replace(new) => Some(new),
            Outcome::Keep | Outcome::Drop => None,
        }
    }

    /// Redacts one field; true when it must be dropped.
    fn redact_field(&self, key: &str, value: &mut Value, counts: &mut Counts) -> bool {
        let outcome = match self.keys.match_key(key) {
            KeyMatch::Allowed => return false,
            KeyMatch::Rule(rule, _) => self.key_rule_on_value(rule, value, counts),
            KeyMatch::None => match value {
                Value::Str(s) => match self.redact_str(s, false, 0, counts) {
                    Outcome::Replace(new) => Outcome::Replace(Value::Str(new)),
                    Outcome::Keep => Outcome::Keep,
                    Outcome::Drop => Outcome::Drop,
                },
                Value::I64(v) => match u64::try_from(*v) {
                    Ok(v) => self.redact_card_number(v, counts).map(Value::Str),
                    Err(_) => Outcome::Keep,
                },
                Value::U64(v) => self.redact_card_number(*v, counts).map(Value::Str),
                Value::Json(j) => self.redact_json(j, counts),
                Value::F64(_) | Value::Bool(_) => Outcome::Keep,
            },
        };
        match outcome {
            Outcome::Keep => false,
            Outcome::Replace(new) => {
                *value = new;
                false
            }
            Outcome::Drop => true,
        }
    }

    /// A key rule replaces a field's whole value, whatever its type.
    fn key_rule_on_value(
        &self,
        rule: RuleId,
        value: &Value,
        counts: &mut Counts,
    ) -> Outcome<Value> {
        let (text, truncatable): (Cow<'_, str>, bool) = match value {
            Value::Str(s) if s.is_empty() || is_marked(s) => return Outcome::Keep,
            Value::Str(s) => (Cow::Borrowed(s), true),
            Value::Json(j) if j.as_str() == "null" => return Outcome::Keep,
            Value::Json(j) => (Cow::Borrowed(j.as_str()), false),
            other => (Cow::Owned(other.to_string()), true),
        };
        self.table.count(rule, counts);
        if self.table.action(rule) == Action::Drop {
            return Outcome::Drop;
        }
        Outcome::Replace(Value::Str(self.table.replacement(rule, &text, truncatable)))
    }

    /// A nested JSON field: parsed only when its text raises a hint.
    fn redact_json(&self, json: &Json, counts: &mut Counts) -> Outcome<Value> {
        let raw = json.as_str();
        let custom =
            self.custom_set.is_some() && (raw.contains('\\') || self.custom_may_match(raw));
        // `\u` escapes could hide a trigger from the hints.
        if !self.hints(raw).any() && !custom && !raw.contains("\\u") {
            return Outcome::Keep;
        }
        let Ok(mut node) = serde_json::from_str::<Node>(raw) else {
            // Deeper than the parser allows: redact it as text.
            return self
                .redact_str(raw, false, MAX_NESTED_JSON, counts)
                .map(Value::Str);
        };
        match self.redact_node(&mut node, 0, counts) {
            Change::None => Outcome::Keep,
            Change::Changed => match Json::from_serialize(&node) {
                Ok(j) => Outcome::Replace(Value::Json(j)),
                Err(_) => Outcome::Replace(Value::Str(node.to_json())),
            },
            Change::Drop => Outcome::Drop,
        }
    }

    /// An integer field or JSON number that is a card number.
    pub(crate) fn redact_card_number(&self, v: u64, counts: &mut Counts) -> Outcome {
        let Some(rule) = self.detectors[Detector::CreditCard.index()] else {
            return Outcome::Keep;
        };
        if !digits::is_card_number(v) {
            return Outcome::Keep;
        }
        self.table.count(rule, counts);
        if self.table.action(rule) == Action::Drop {
            return Outcome::Drop;
        }
        Outcome::Replace(self.table.replacement(rule, &v.to_string(), true))
    }

    /// Redacts a string: a JSON document inside it structurally, else as text.
    /// `in_message`: a `drop` masks instead (see [`Self::redact_text`]).
    pub(crate) fn redact_str(
        &self,
        s: &str,
        in_message: bool,
        depth: u8,
        counts: &mut Counts,
    ) -> Outcome {
        let hints = self.hints(s);
        let custom = self.custom_may_match(s);
        if !hints.any() && !custom {
            return Outcome::Keep;
        }
        if depth < MAX_NESTED_JSON && looks_like_json(s) {
            if let Ok(mut node) = serde_json::from_str::<Node>(s) {
                return match self.redact_node(&mut node, depth + 1, counts) {
                    Change::None => Outcome::Keep,
                    Change::Changed | Change::Drop => Outcome::Replace(node.to_json()),
                };
            }
        }
        let mut spans = Vec::new();
        self.find_spans(s, hints, custom, &mut spans);
        if spans.is_empty() {
            return Outcome::Keep;
        }
        detect::merge(&mut spans);
        let mut drop = false;
        for span in &spans {
            self.table.count(span.rule, counts);
            drop |= self.table.action(span.rule) == Action::Drop;
        }
        if drop && !in_message {
            return Outcome::Drop;
        }
        Outcome::Replace(self.render(s, &spans))
    }

    fn hints(&self, s: &str) -> Hints {
        Hints(hints::scan(s.as_bytes(), &self.keys).0 & self.hint_mask)
    }

    fn custom_may_match(&self, s: &str) -> bool {
        self.custom_set.as_ref().is_some_and(|set| set.is_match(s))
    }

    /// Every match in `s`, unmerged.
    fn find_spans(&self, s: &str, h: Hints, custom: bool, out: &mut Vec<Span>) {
        {
            let mut emit = |d: Detector, start: usize, end: usize| {
                if let Some(rule) = self.detectors[d.index()] {
                    out.push(Span {
                        start,
                        end,
                        rule,
                        rank: d.rank(),
                    });
                }
            };
            let p = &*PATTERNS;
            if h.has(hints::PEM) {
                detect::private_keys(s, &mut emit);
            }
            if h.has(hints::JWT) {
                p.jwt(s, &mut emit);
            }
            if h.has(hints::AWS) {
                p.aws(s, &mut emit);
            }
            if h.has(hints::GITHUB) {
                p.github(s, &mut emit);
            }
            if h.has(hints::SK) {
                p.sk(s, &mut emit);
            }
            if h.has(hints::BEARER) {
                p.bearer(s, &mut emit);
            }
            if h.has(hints::BASIC) {
                p.basic(s, &mut emit);
            }
            if h.has(hints::CARD | hints::SSN) {
                digits::find(
                    s.as_bytes(),
                    h.has(hints::CARD),
                    h.has(hints::SSN),
                    &mut emit,
                );
            }
            if h.has(hints::IBAN) {
                p.iban(s, &mut emit);
            }
            if h.has(hints::EMAIL) {
                p.email(s, &mut emit);
            }
            if h.has(hints::ASSIGN) && self.detectors[Detector::AssignedSecret.index()].is_some() {
                assigned::find(s, &self.keys, &mut emit);
            }
        }
        if custom {
            for c in &self.custom {
                let mut push = |m: regex::Match<'_>| {
                    out.push(Span {
                        start: m.start(),
                        end: m.end(),
                        rule: c.rule,
                        rank: CUSTOM_RANK,
                    });
                };
                match c.group {
                    Some(g) => c
                        .regex
                        .captures_iter(s)
                        .filter_map(|caps| caps.get(g))
                        .for_each(&mut push),
                    None => c.regex.find_iter(s).for_each(&mut push),
                }
            }
        }
    }

    /// `s` with each (merged, sorted) span replaced.
    fn render(&self, s: &str, spans: &[Span]) -> String {
        let mut out = String::with_capacity(s.len() + 24 * spans.len());
        let mut at = 0;
        for span in spans {
            let start = floor_char(s, span.start).max(at);
            let end = ceil_char(s, span.end).max(start);
            out.push_str(&s[at..start]);
            self.table.write(span.rule, &s[start..end], true, &mut out);
            at = end;
        }
        out.push_str(&s[at..]);
        out
    }
}

impl<T> Outcome<T> {
    fn map<U>(self, f: impl FnOnce(T) -> U) -> Outcome<U> {
        match self {
            Outcome::Keep => Outcome::Keep,
            Outcome::Replace(t) => Outcome::Replace(f(t)),
            Outcome::Drop => Outcome::Drop,
        }
    }
}

impl Default for Redactor {
    fn default() -> Self {
        Self::builtin()
    }
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("rules", &self.rule_names().collect::<Vec<_>>())
            .field(
                "pseudonym_key",
                &self.table.has_key().then_some("**REDACTED**"),
            )
            .finish_non_exhaustive()
    }
}

/// The prefilter bit of a detector.
fn hint_of(d: Detector) -> u16 {
    match d {
        Detector::PrivateKey => hints::PEM,
        Detector::Jwt => hints::JWT,
        Detector::AwsAccessKey => hints::AWS,
        Detector::GithubToken => hints::GITHUB,
        Detector::AnthropicKey | Detector::OpenaiKey => hints::SK,
        Detector::Bearer => hints::BEARER,
        Detector::BasicAuth => hints::BASIC,
        Detector::CreditCard => hints::CARD,
        Detector::Iban => hints::IBAN,
        Detector::Ssn => hints::SSN,
        Detector::Email => hints::EMAIL,
        Detector::AssignedSecret => hints::ASSIGN,
    }
}

/// Validates and compiles the custom rules; adds their keys to `keys`.
fn custom_rules(
    config: &Config,
    table: &mut RuleTable,
    keys: &mut KeyMatcher,
) -> Result<(Vec<CustomPattern>, Option<RegexSet>), Error> {
    let mut patterns = Vec::new();
    for rc in &config.rules {
        let name = rc.name.as_str();
        let invalid = |problem| Error::InvalidRule {
            rule: name.to_owned(),
            problem,
        };
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(invalid("a name is ASCII letters, digits, `_` and `-`"));
        }
        if names::is_builtin(name) {
            return Err(invalid(
                "a built-in rule has this name (use `actions` to change it)",
            ));
        }
        if table.find(name).is_some() {
            return Err(invalid("another custom rule has this name"));
        }
        if rc.keys.is_empty() && rc.pattern.is_none() {
            return Err(invalid("the rule has neither `keys` nor `pattern`"));
        }
        if rc.keys.iter().any(String::is_empty) || rc.pattern.as_deref() == Some("") {
            return Err(invalid("a key or pattern is empty"));
        }
        let id = table.push(name, rc.action);
        for key in &rc.keys {
            keys.add_rule(key, id, ValueShape::Word);
        }
        if let Some(p) = &rc.pattern {
            let regex = Regex::new(p).map_err(|e| Error::invalid_pattern(name, e))?;
            let group = regex.capture_names().position(|n| n == Some(SECRET_GROUP));
            patterns.push(CustomPattern {
                rule: id,
                regex,
                group,
            });
        }
    }
    let set = if patterns.is_empty() {
        None
    } else {
        let set = RegexSet::new(patterns.iter().map(|p| p.regex.as_str()));
        Some(set.map_err(|e| {
            let last = config.rules.iter().rev().find(|r| r.pattern.is_some());
            Error::invalid_pattern(last.map_or("", |r| &r.name), e)
        })?)
    };
    Ok((patterns, set))
}

fn floor_char(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_char(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests;
