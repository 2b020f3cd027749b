//! The rules' names and actions, and the replacement text each action writes.

use std::fmt::Write as _;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::Action;
use crate::counts::Counts;
use crate::names;

/// A rule's index in its [`RuleTable`].
pub(crate) type RuleId = u16;

type HmacSha256 = Hmac<Sha256>;

/// Opens a mask marker: `[REDACTED:<rule>]`.
pub(crate) const MASK_OPEN: &str = "[REDACTED:";
/// Hex digits of a pseudonym.
const PSEUDONYM_HEX: usize = 16;
/// Between the kept ends of a truncated value and its marker.
const ELLIPSIS: char = '…';

struct RuleInfo {
    name: Arc<str>,
    action: Action,
    canon: Canon,
}

/// How a match is normalised before its pseudonym is computed, so that one value
/// written two ways (`4111 1111 1111 1111`, `4111111111111111`, an integer field)
/// gets one pseudonym.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Canon {
    /// As matched.
    Exact,
    /// Without spaces and dashes, uppercase (cards, IBANs, SSNs).
    Compact,
    /// ASCII lowercase (emails).
    Lowercase,
}

impl Canon {
    fn apply<'a>(self, s: &'a str) -> std::borrow::Cow<'a, str> {
        match self {
            Canon::Exact => s.into(),
            Canon::Compact => s
                .chars()
                .filter(|c| *c != ' ' && *c != '-')
                .map(|c| c.to_ascii_uppercase())
                .collect::<String>()
                .into(),
            Canon::Lowercase => s.to_ascii_lowercase().into(),
        }
    }
}

/// Every enabled rule, by [`RuleId`].
pub(crate) struct RuleTable {
    rules: Vec<RuleInfo>,
    hmac: Option<HmacSha256>,
}

impl RuleTable {
    pub(crate) fn new(pseudonym_key: Option<&[u8]>) -> Self {
        let hmac = pseudonym_key
            .filter(|k| !k.is_empty())
            .and_then(|k| HmacSha256::new_from_slice(k).ok());
        Self {
            rules: Vec::new(),
            hmac,
        }
    }

    pub(crate) fn has_key(&self) -> bool {
        self.hmac.is_some()
    }

    pub(crate) fn push(&mut self, name: &str, action: Action) -> RuleId {
        let id = RuleId::try_from(self.rules.len()).unwrap_or(RuleId::MAX);
        let canon = match name {
            names::CREDIT_CARD | names::IBAN | names::SSN => Canon::Compact,
            names::EMAIL => Canon::Lowercase,
            _ => Canon::Exact,
        };
        self.rules.push(RuleInfo {
            name: name.into(),
            action,
            canon,
        });
        id
    }

    pub(crate) fn find(&self, name: &str) -> Option<RuleId> {
        let i = self.rules.iter().position(|r| &*r.name == name)?;
        RuleId::try_from(i).ok()
    }

    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| &*r.name)
    }

    pub(crate) fn action(&self, id: RuleId) -> Action {
        self.rules[usize::from(id)].action
    }

    pub(crate) fn count(&self, id: RuleId, counts: &mut Counts) {
        counts.add(&self.rules[usize::from(id)].name);
    }

    /// Appends the replacement of `matched` by rule `id`. `Drop` writes a mask: the
    /// caller drops the value where it can. `truncatable` is false for JSON objects
    /// and arrays, whose text halves would mean nothing: they are masked whole.
    pub(crate) fn write(&self, id: RuleId, matched: &str, truncatable: bool, out: &mut String) {
        let rule = &self.rules[usize::from(id)];
        match rule.action {
            Action::Pseudonym => match &self.hmac {
                Some(mac) => {
                    let mut mac = mac.clone();
                    mac.update(rule.canon.apply(matched).as_bytes());
                    let digest = mac.finalize().into_bytes();
                    out.push('[');
                    out.push_str(&rule.name);
                    out.push(':');
                    for b in &digest[..PSEUDONYM_HEX / 2] {
                        let _ = write!(out, "{b:02x}");
                    }
                    out.push(']');
                }
                // Refused at build time; masking is the safe reading.
                None => push_mask(out, &rule.name),
            },
            Action::Truncate { first, last } if truncatable => {
                truncate(matched, first, last, &rule.name, out);
            }
            Action::Mask | Action::Drop | Action::Truncate { .. } => push_mask(out, &rule.name),
        }
    }

    /// The replacement of `matched` by rule `id`, as a new string.
    pub(crate) fn replacement(&self, id: RuleId, matched: &str, truncatable: bool) -> String {
        let mut out = String::with_capacity(MASK_OPEN.len() + 24);
        self.write(id, matched, truncatable, &mut out);
        out
    }
}

fn push_mask(out: &mut String, rule: &str) {
    out.push_str(MASK_OPEN);
    out.push_str(rule);
    out.push(']');
}

fn truncate(s: &str, first: usize, last: usize, rule: &str, out: &mut String) {
    let chars = s.chars().count();
    if chars <= first.saturating_add(last) {
        push_mask(out, rule);
        return;
    }
    let head_end = s.char_indices().nth(first).map_or(s.len(), |(i, _)| i);
    let tail_start = s
        .char_indices()
        .nth(chars - last)
        .map_or(s.len(), |(i, _)| i);
    out.push_str(&s[..head_end]);
    if first > 0 {
        out.push(ELLIPSIS);
    }
    push_mask(out, rule);
    if last > 0 {
        out.push(ELLIPSIS);
    }
    out.push_str(&s[tail_start..]);
}

/// Whether `s` already holds a marker this crate wrote (a mask, a truncation or a
/// pseudonym), so that redacting twice changes nothing: a layer redacts, then the
/// collector redacts again, and pseudonyms must survive.
pub(crate) fn is_marked(s: &str) -> bool {
    s.contains(MASK_OPEN) || is_pseudonym(s)
}

/// `[<rule>:<16 hex>]`.
fn is_pseudonym(s: &str) -> bool {
    let Some(inner) = s.strip_prefix('[').and_then(|s| s.strip_suffix(']')) else {
        return false;
    };
    let Some((name, hex)) = inner.split_once(':') else {
        return false;
    };
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        && hex.len() == PSEUDONYM_HEX
        && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(action: Action) -> (RuleTable, RuleId) {
        let mut t = RuleTable::new(Some(b"k"));
        let id = t.push("card", action);
        (t, id)
    }

    #[test]
    fn actions_write_their_markers() {
        let (t, id) = table(Action::Mask);
        assert_eq!(t.replacement(id, "4111", true), "[REDACTED:card]");
        let (t, id) = table(Action::Truncate { first: 2, last: 4 });
        assert_eq!(
            t.replacement(id, "4111 1111 1111 1234", true),
            "41…[REDACTED:card]…1234"
        );
        assert_eq!(t.replacement(id, "411123", true), "[REDACTED:card]");
        assert_eq!(
            t.replacement(id, "{\"a\":1234567}", false),
            "[REDACTED:card]"
        );
        let (t, id) = table(Action::Truncate { first: 0, last: 2 });
        assert_eq!(t.replacement(id, "héllo wörld", true), "[REDACTED:card]…ld");
        let (t, id) = table(Action::Truncate { first: 2, last: 0 });
        assert_eq!(t.replacement(id, "héllo", true), "hé…[REDACTED:card]");
    }

    #[test]
    fn pseudonyms_are_keyed_and_stable() {
        let (t, id) = table(Action::Pseudonym);
        let a = t.replacement(id, "ann@example.com", true);
        assert_eq!(a, t.replacement(id, "ann@example.com", true));
        assert_ne!(a, t.replacement(id, "bob@example.com", true));
        assert!(is_pseudonym(&a), "{a}");
        let mut other = RuleTable::new(Some(b"other key"));
        let id2 = other.push("card", Action::Pseudonym);
        assert_ne!(a, other.replacement(id2, "ann@example.com", true));
    }

    #[test]
    fn pseudonyms_ignore_formatting() {
        let mut t = RuleTable::new(Some(b"k"));
        let card = t.push(names::CREDIT_CARD, Action::Pseudonym);
        let email = t.push(names::EMAIL, Action::Pseudonym);
        assert_eq!(
            t.replacement(card, "4111 1111 1111 1111", true),
            t.replacement(card, "4111111111111111", true)
        );
        assert_eq!(
            t.replacement(email, "Ann@Example.com", true),
            t.replacement(email, "ann@example.com", true)
        );
    }

    #[test]
    fn markers_are_recognised() {
        assert!(is_marked("[REDACTED:password]"));
        assert!(is_marked("ab…[REDACTED:password]…yz"));
        assert!(is_marked("[email:0123456789abcdef]"));
        assert!(!is_marked("[email:0123456789abcdeg]"));
        assert!(!is_marked("[1, 2, 3]"));
    }
}
