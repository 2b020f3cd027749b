//! What to redact and how: the `[redaction]` table of `logbook.toml`, or built in code.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The redaction configuration. Every field may be left out: the default enables every
/// built-in rule with the [`Action::Mask`] action.
///
/// Unknown keys are refused, and so are names in [`disable`](Self::disable) and
/// [`actions`](Self::actions) that are not built-in rules (see [`names`](crate::names)).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Field keys exempt from all redaction: the value (and, for nested JSON, all it
    /// holds) is left as it is. Matched like key rules: case-insensitive, `-` as `_`,
    /// equal to the key or a suffix of it after a non-alphanumeric character (so
    /// `page_token` also allows `next_page_token`). In free text, `page_token=…` is
    /// left alone too. Checked before any key rule.
    pub allow_keys: Vec<String>,
    /// Built-in rules turned off, by name.
    pub disable: Vec<String>,
    /// The action of a built-in rule, by name; a rule not named here masks.
    pub actions: BTreeMap<String, Action>,
    /// Custom rules, matching keys, values or both.
    pub rules: Vec<RuleConfig>,
}

impl Config {
    /// Exempts fields with key `key` from redaction.
    pub fn with_allow_key(mut self, key: impl Into<String>) -> Self {
        self.allow_keys.push(key.into());
        self
    }

    /// Turns off the built-in rule `name`.
    pub fn with_disabled(mut self, name: impl Into<String>) -> Self {
        self.disable.push(name.into());
        self
    }

    /// Sets the action of the built-in rule `name`.
    pub fn with_action(mut self, name: impl Into<String>, action: Action) -> Self {
        self.actions.insert(name.into(), action);
        self
    }

    /// Adds a custom rule.
    pub fn with_rule(mut self, rule: RuleConfig) -> Self {
        self.rules.push(rule);
        self
    }
}

/// A custom rule: a key rule (`keys`), a value detector (`pattern`), or both under one
/// name.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// The rule's name, shown in markers and counts: ASCII letters, digits, `_` and
    /// `-`, and not a built-in name.
    pub name: String,
    /// Field keys whose whole value the rule replaces, matched like built-in key rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
    /// A regular expression (Rust `regex` syntax) for values to replace in text. If it
    /// has a capture group named `secret`, only that group is replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// What to do with a match.
    #[serde(default)]
    pub action: Action,
}

impl RuleConfig {
    /// A rule called `name` that matches nothing yet and masks.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            keys: Vec::new(),
            pattern: None,
            action: Action::Mask,
        }
    }

    /// Adds a key the rule matches.
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.keys.push(key.into());
        self
    }

    /// Sets the value pattern.
    pub fn with_pattern(mut self, pattern: impl Into<String>) -> Self {
        self.pattern = Some(pattern.into());
        self
    }

    /// Sets the action.
    pub fn with_action(mut self, action: Action) -> Self {
        self.action = action;
        self
    }
}

/// What a rule does with what it matched.
///
/// In configuration: `"mask"`, `"pseudonym"`, `"drop"` or
/// `{ truncate = { first = 0, last = 4 } }` (either bound may be left out: 0).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// Replace the match with `[REDACTED:<rule>]`.
    #[default]
    Mask,
    /// Replace the match with `[<rule>:<16 hex digits>]`, the start of
    /// HMAC-SHA256(pseudonym key, match): equal values give equal pseudonyms, so
    /// records can still be joined on them. Needs a pseudonym key.
    Pseudonym,
    /// Remove the field or JSON member (for a value detector: the one whose value
    /// holds the match). In a message, which cannot lose part of itself, the match is
    /// masked instead.
    Drop,
    /// Keep the first `first` and last `last` characters around
    /// `…[REDACTED:<rule>]…`; a match no longer than `first + last` is masked whole.
    Truncate {
        /// Characters kept at the start.
        #[serde(default)]
        first: usize,
        /// Characters kept at the end.
        #[serde(default)]
        last: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_parses_every_action_shape() {
        let c: Config = serde_json::from_str(
            r#"{
                "allow_keys": ["token_count"],
                "disable": ["email"],
                "actions": {
                    "jwt": "pseudonym",
                    "password": "drop",
                    "credit_card": {"truncate": {"first": 0, "last": 4}},
                    "iban": {"truncate": {"last": 2}}
                },
                "rules": [
                    {"name": "employee_id", "pattern": "EMP-[0-9]{6}"},
                    {"name": "session_key", "keys": ["session_key", "x-session"], "action": "pseudonym"}
                ]
            }"#,
        )
        .unwrap();
        assert_eq!(c.actions["password"], Action::Drop);
        assert_eq!(
            c.actions["credit_card"],
            Action::Truncate { first: 0, last: 4 }
        );
        assert_eq!(c.actions["iban"], Action::Truncate { first: 0, last: 2 });
        assert_eq!(c.rules[0].action, Action::Mask);
        assert_eq!(c.rules[1].keys, ["session_key", "x-session"]);
        let back: Config = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn config_refuses_unknown_keys() {
        assert!(serde_json::from_str::<Config>(r#"{"allow": []}"#).is_err());
        assert!(
            serde_json::from_str::<Config>(r#"{"rules": [{"name": "x", "keyz": []}]}"#).is_err()
        );
        assert!(serde_json::from_str::<Action>(r#""hide""#).is_err());
        assert!(serde_json::from_str::<Action>(r#"{"truncate": {"first": 1, "mid": 2}}"#).is_err());
    }

    #[test]
    fn empty_config_is_default() {
        assert_eq!(
            serde_json::from_str::<Config>("{}").unwrap(),
            Config::default()
        );
    }
}
