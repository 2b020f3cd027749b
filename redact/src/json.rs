//! Nested JSON: a tree that keeps member order, and the walk that redacts it.

use std::borrow::Cow;
use std::fmt;

use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Number;

use crate::action::{is_marked, RuleId};
use crate::config::Action;
use crate::counts::Counts;
use crate::keys::KeyMatch;
use crate::redactor::{Outcome, Redactor};

/// A JSON value whose objects keep their members in document order (the proto keeps
/// nested JSON exactly as written; a redacted copy should differ only where redacted).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Node {
    Null,
    Bool(bool),
    Num(Number),
    Str(String),
    Arr(Vec<Node>),
    Obj(Vec<(String, Node)>),
}

/// What redacting a node did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    None,
    Changed,
    /// Remove the node from its parent.
    Drop,
}

impl Redactor {
    /// Redacts `node` in place. `depth` counts JSON documents parsed out of strings.
    pub(crate) fn redact_node(&self, node: &mut Node, depth: u8, counts: &mut Counts) -> Change {
        match node {
            Node::Str(s) => match self.redact_str(s, false, depth, counts) {
                Outcome::Keep => Change::None,
                Outcome::Replace(new) => {
                    *s = new;
                    Change::Changed
                }
                Outcome::Drop => Change::Drop,
            },
            Node::Num(n) => match n.as_u64().map(|v| self.redact_card_number(v, counts)) {
                Some(Outcome::Replace(new)) => {
                    *node = Node::Str(new);
                    Change::Changed
                }
                Some(Outcome::Drop) => Change::Drop,
                _ => Change::None,
            },
            Node::Arr(items) => {
                let mut changed = false;
                items.retain_mut(|item| match self.redact_node(item, depth, counts) {
                    Change::None => true,
                    Change::Changed => {
                        changed = true;
                        true
                    }
                    Change::Drop => {
                        changed = true;
                        false
                    }
                });
                if changed {
                    Change::Changed
                } else {
                    Change::None
                }
            }
            Node::Obj(members) => {
                let mut changed = false;
                members.retain_mut(|(key, value)| {
                    let change = match self.keys.match_key(key) {
                        KeyMatch::Allowed => Change::None,
                        KeyMatch::Rule(rule, _) => self.key_rule_on_node(rule, value, counts),
                        KeyMatch::None => match self.redact_member_name(key, counts) {
                            Change::Drop => Change::Drop,
                            named => match self.redact_node(value, depth, counts) {
                                Change::None => named,
                                other => other,
                            },
                        },
                    };
                    changed |= change != Change::None;
                    change != Change::Drop
                });
                if changed {
                    Change::Changed
                } else {
                    Change::None
                }
            }
            Node::Null | Node::Bool(_) => Change::None,
        }
    }

    /// Scans a member name with the value detectors: maps keyed by email address or
    /// card number are data, not schema. (Top-level field keys come from callsites
    /// and are not scanned.)
    fn redact_member_name(&self, key: &mut String, counts: &mut Counts) -> Change {
        match self.redact_str(key, false, u8::MAX, counts) {
            Outcome::Keep => Change::None,
            Outcome::Replace(new) => {
                *key = new;
                Change::Changed
            }
            Outcome::Drop => Change::Drop,
        }
    }

    /// Replaces a JSON member's whole value by key rule `rule`.
    fn key_rule_on_node(&self, rule: RuleId, value: &mut Node, counts: &mut Counts) -> Change {
        let (text, truncatable): (Cow<'_, str>, bool) = match value {
            Node::Null => return Change::None,
            Node::Str(s) if s.is_empty() || is_marked(s) => return Change::None,
            Node::Str(s) => (Cow::Borrowed(s.as_str()), true),
            Node::Num(n) => (Cow::Owned(n.to_string()), true),
            Node::Bool(b) => (Cow::Owned(b.to_string()), true),
            Node::Arr(_) | Node::Obj(_) => (Cow::Owned(value.to_json()), false),
        };
        self.table.count(rule, counts);
        if self.table.action(rule) == Action::Drop {
            return Change::Drop;
        }
        let new = self.table.replacement(rule, &text, truncatable);
        *value = Node::Str(new);
        Change::Changed
    }
}

impl Node {
    /// Compact JSON text.
    pub(crate) fn to_json(&self) -> String {
        // Serializing a tree of strings, numbers and containers cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl Serialize for Node {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Node::Null => s.serialize_unit(),
            Node::Bool(b) => s.serialize_bool(*b),
            Node::Num(n) => n.serialize(s),
            Node::Str(v) => s.serialize_str(v),
            Node::Arr(items) => s.collect_seq(items),
            Node::Obj(members) => s.collect_map(members.iter().map(|(k, v)| (k, v))),
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Num(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Num(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
        Ok(Number::from_f64(v).map_or(Node::Null, Node::Num))
    }

    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Str(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(Node::Str(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Arr(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut members = Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
        while let Some(member) = map.next_entry::<String, Node>()? {
            members.push(member);
        }
        Ok(Node::Obj(members))
    }
}

/// Whether `s` could be a JSON object or array (checked before trying to parse it).
pub(crate) fn looks_like_json(s: &str) -> bool {
    let t = s.trim_ascii();
    matches!(
        (t.as_bytes().first(), t.as_bytes().last()),
        (Some(b'{'), Some(b'}')) | (Some(b'['), Some(b']'))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_round_trip_in_order() {
        let text = r#"{"z":1,"a":[true,null,-2,1.5,"s"],"m":{"y":{},"b":[]}}"#;
        let node: Node = serde_json::from_str(text).unwrap();
        assert_eq!(node.to_json(), text);
    }

    #[test]
    fn json_shapes() {
        assert!(looks_like_json(" {\"a\":1} "));
        assert!(looks_like_json("[1]"));
        assert!(!looks_like_json("[INFO] done"));
        assert!(!looks_like_json("{"));
    }
}
