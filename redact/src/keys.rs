//! Key rules and allowed keys: which field keys (and keys written in text, as in
//! `password=…`) name a secret.
//!
//! Keys and rule keys are compared in a normal form: ASCII lowercase, `-` as `_`, and
//! camelCase split with `_` (`accessToken` is `access_token`). A key matches a rule key
//! when it equals it or ends with it right after a non-alphanumeric character:
//! `db_password`, `user.password` and `X-Api-Key` match, `input_tokens` and
//! `token_count` do not.

use crate::action::RuleId;

/// Keys longer than this are normalised on the heap.
const STACK_KEY: usize = 128;
/// How far back from a `=` or `:` a key written in text is read.
const TEXT_KEY_MAX: usize = 128;
/// Quotes, backslashes and spaces skipped between a key in text and its `=` or `:`.
const TEXT_KEY_GAP: usize = 4;

/// How a key rule's value is delimited when the key is written in free text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ValueShape {
    /// Up to the next space or punctuation (`password=hunter2&…`).
    Word,
    /// The rest of the line (`Cookie: a=b; c=d`).
    Line,
    /// The rest of the line after an auth scheme word, which stays readable
    /// (`Authorization: Bearer …`).
    LineAfterScheme,
}

/// What a key is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyMatch {
    /// No rule.
    None,
    /// Exempt from all redaction.
    Allowed,
    /// The key rule's value is a secret.
    Rule(RuleId, ValueShape),
}

struct KeyEntry {
    key: Box<[u8]>,
    rule: RuleId,
    shape: ValueShape,
}

/// Every enabled key rule and allowed key, ready to match.
#[derive(Default)]
pub(crate) struct KeyMatcher {
    /// Longest key first, so `access_token` wins over `token`; ties keep insertion
    /// order (custom rules are added first, so they override built-ins).
    entries: Vec<KeyEntry>,
    allow: Vec<Box<[u8]>>,
    /// Rule keys lowercased with `_`, `-` removed, for the loose check of [`Self::loose_at`].
    loose: Vec<Box<[u8]>>,
    /// Some rule key has a byte that text keys cannot hold: the loose check gives up.
    loose_odd: bool,
    /// Last bytes of normalised rule and allowed keys.
    last: ByteSet,
    /// Last bytes of the loose keys.
    loose_last: ByteSet,
}

impl KeyMatcher {
    /// Adds a key rule.
    pub(crate) fn add_rule(&mut self, key: &str, rule: RuleId, shape: ValueShape) {
        let key = normalize(key.as_bytes());
        if let Some(&b) = key.last() {
            self.last.insert(b);
        }
        let loose: Box<[u8]> = key.iter().copied().filter(|b| *b != b'_').collect();
        self.loose_odd |= !loose.iter().all(|b| is_text_key_byte(*b));
        if let Some(&b) = loose.last() {
            self.loose_last.insert(b);
        }
        self.loose.push(loose);
        self.entries.push(KeyEntry { key, rule, shape });
        // Stable: equal lengths keep insertion order.
        self.entries.sort_by_key(|e| std::cmp::Reverse(e.key.len()));
    }

    /// Adds an allowed key.
    pub(crate) fn add_allowed(&mut self, key: &str) {
        let key = normalize(key.as_bytes());
        if let Some(&b) = key.last() {
            self.last.insert(b);
        }
        self.allow.push(key);
    }

    /// Whether any key rule exists.
    pub(crate) fn has_rules(&self) -> bool {
        !self.entries.is_empty()
    }

    /// What the field key `key` is.
    pub(crate) fn match_key(&self, key: &str) -> KeyMatch {
        self.match_bytes(key.as_bytes())
    }

    fn match_bytes(&self, key: &[u8]) -> KeyMatch {
        let Some(&last) = key.last() else {
            return KeyMatch::None;
        };
        if !self.last.contains(normal_byte(last)) {
            return KeyMatch::None;
        }
        if key.len() <= STACK_KEY {
            let mut buf = [0u8; 2 * STACK_KEY];
            let mut len = 0;
            for_each_normal(key, |b| {
                buf[len] = b;
                len += 1;
            });
            self.match_normal(&buf[..len])
        } else {
            self.match_normal(&normalize(key))
        }
    }

    fn match_normal(&self, key: &[u8]) -> KeyMatch {
        if self.allow.iter().any(|a| ends_with_word(key, a)) {
            return KeyMatch::Allowed;
        }
        match self.entries.iter().find(|e| ends_with_word(key, &e.key)) {
            Some(e) => KeyMatch::Rule(e.rule, e.shape),
            None => KeyMatch::None,
        }
    }

    /// What the key written in text just before the separator at `sep` (`=` or `:`) is.
    pub(crate) fn text_key_before(&self, s: &[u8], sep: usize) -> KeyMatch {
        let end = skip_gap_back(s, sep);
        match end.checked_sub(1).map(|i| s[i]) {
            Some(last) if self.last.contains(normal_byte(last)) => {}
            _ => return KeyMatch::None,
        }
        let mut start = end;
        while start > 0 && end - start < TEXT_KEY_MAX && is_text_key_byte(s[start - 1]) {
            start -= 1;
        }
        if start == end {
            return KeyMatch::None;
        }
        self.match_bytes(&s[start..end])
    }

    /// A cheap superset of [`Self::text_key_before`] finding a rule (allowed keys
    /// ignored), which also holds for JSON text, escapes and all: the key before `sep`,
    /// with `_` and `-` dropped and no word boundary required, ends with a rule key.
    pub(crate) fn loose_at(&self, s: &[u8], sep: usize) -> bool {
        if self.loose.is_empty() {
            return false;
        }
        let end = skip_gap_back(s, sep);
        let Some(&last) = end.checked_sub(1).and_then(|i| s.get(i)) else {
            return false;
        };
        if !self.loose_last.contains(last.to_ascii_lowercase()) {
            return false;
        }
        if self.loose_odd {
            return true;
        }
        // The key's tail, reversed, lowercased, without separators.
        let mut tail = [0u8; 64];
        let mut len = 0;
        let mut i = end;
        while i > 0 && len < tail.len() {
            let b = s[i - 1];
            i -= 1;
            match b {
                b'_' | b'-' => {}
                b if is_text_key_byte(b) => {
                    tail[len] = b.to_ascii_lowercase();
                    len += 1;
                }
                _ => break,
            }
        }
        let tail = &tail[..len];
        self.loose
            .iter()
            .any(|w| w.len() <= tail.len() && w.iter().rev().zip(tail).all(|(a, b)| a == b))
    }
}

/// Back from `sep` over at most [`TEXT_KEY_GAP`] quotes, backslashes and spaces.
fn skip_gap_back(s: &[u8], sep: usize) -> usize {
    let mut end = sep;
    while end > 0
        && sep - end < TEXT_KEY_GAP
        && matches!(s[end - 1], b'"' | b'\'' | b'\\' | b' ' | b'\t')
    {
        end -= 1;
    }
    end
}

/// Bytes a key written in text is made of.
pub(crate) fn is_text_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

/// `key` equals `word`, or ends with it right after a non-alphanumeric byte.
fn ends_with_word(key: &[u8], word: &[u8]) -> bool {
    key.ends_with(word)
        && (key.len() == word.len() || !key[key.len() - word.len() - 1].is_ascii_alphanumeric())
}

fn normal_byte(b: u8) -> u8 {
    if b == b'-' {
        b'_'
    } else {
        b.to_ascii_lowercase()
    }
}

/// Feeds the normal form of `key` to `push`.
fn for_each_normal(key: &[u8], mut push: impl FnMut(u8)) {
    for (i, &b) in key.iter().enumerate() {
        if b.is_ascii_uppercase() && i > 0 {
            let prev = key[i - 1];
            let next_lower = key.get(i + 1).is_some_and(u8::is_ascii_lowercase);
            if prev.is_ascii_lowercase()
                || prev.is_ascii_digit()
                || (prev.is_ascii_uppercase() && next_lower)
            {
                push(b'_');
            }
        }
        push(normal_byte(b));
    }
}

fn normalize(key: &[u8]) -> Box<[u8]> {
    let mut out = Vec::with_capacity(key.len() + 4);
    for_each_normal(key, |b| out.push(b));
    out.into_boxed_slice()
}

/// A set of bytes.
#[derive(Clone, Copy, Default)]
pub(crate) struct ByteSet([u64; 4]);

impl ByteSet {
    pub(crate) fn insert(&mut self, b: u8) {
        self.0[usize::from(b >> 6)] |= 1 << (b & 63);
    }

    pub(crate) fn contains(&self, b: u8) -> bool {
        self.0[usize::from(b >> 6)] & (1 << (b & 63)) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher() -> KeyMatcher {
        let mut m = KeyMatcher::default();
        for (i, k) in crate::names::KEY_RULES.iter().enumerate() {
            m.add_rule(k, i as RuleId, ValueShape::Word);
        }
        m.add_rule("set-cookie", 99, ValueShape::Line);
        m.add_allowed("page_token");
        m
    }

    fn rule(m: &KeyMatcher, key: &str) -> Option<RuleId> {
        match m.match_key(key) {
            KeyMatch::Rule(r, _) => Some(r),
            _ => None,
        }
    }

    #[test]
    fn secret_keys_match_at_word_ends() {
        let m = matcher();
        for key in [
            "password",
            "PASSWORD",
            "db_password",
            "user.password",
            "http.request.header.authorization",
            "X-Api-Key",
            "openai_api_key",
            "OpenAIApiKey",
            "accessToken",
            "clientSecret",
            "Set-Cookie",
            "--password",
            "user password",
            "privateKey",
        ] {
            assert!(rule(&m, key).is_some(), "{key}");
        }
        for key in [
            "input_tokens",
            "max_tokens",
            "gen_ai.usage.input_tokens",
            "token_count",
            "tokenizer",
            "passwordless",
            "mypassword",
            "secret_name",
            "cookies_enabled",
            "",
        ] {
            assert_eq!(rule(&m, key), None, "{key}");
        }
    }

    #[test]
    fn longest_rule_key_wins() {
        let m = matcher();
        let names = crate::names::KEY_RULES;
        let name = |key| names[rule(&m, key).unwrap() as usize];
        assert_eq!(name("oauth.access_token"), "access_token");
        assert_eq!(name("session_token"), "token");
        assert_eq!(name("x-api-key"), "api_key");
        assert_eq!(name("apikey"), "apikey");
    }

    #[test]
    fn allowed_keys_win() {
        let m = matcher();
        assert_eq!(m.match_key("page_token"), KeyMatch::Allowed);
        assert_eq!(m.match_key("nextPageToken"), KeyMatch::Allowed);
        assert!(rule(&m, "token").is_some());
    }

    #[test]
    fn keys_in_text() {
        let m = matcher();
        let at = |s: &str| s.find(['=', ':']).unwrap();
        for s in [
            "password=x",
            "\"password\": \"x\"",
            "\\\"password\\\":",
            "x-api-key: v",
            "a.token = 3",
        ] {
            assert!(
                matches!(m.text_key_before(s.as_bytes(), at(s)), KeyMatch::Rule(..)),
                "{s}"
            );
            assert!(m.loose_at(s.as_bytes(), at(s)), "{s}");
        }
        for s in ["https://x", "12:30", "max_tokens=5", "role: user"] {
            assert_eq!(
                m.text_key_before(s.as_bytes(), at(s)),
                KeyMatch::None,
                "{s}"
            );
        }
        assert!(!m.loose_at(b"role: user", 4));
        // Loose: no word boundary, so escapes glued to the key still trigger.
        assert!(m.loose_at(b"\\npassword=", 10));
        assert_eq!(m.text_key_before(b"page_token=abc", 10), KeyMatch::Allowed);
    }
}
