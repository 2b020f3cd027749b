//! The prefilter: one pass over a string's bytes that tells which detectors could
//! match, so that the common string (no secret) costs one loop and no regex search.
//!
//! Every hint is a superset of its detector: a detector whose hint is off cannot match.
//! The hints also hold for JSON text with its escapes (so a nested JSON value whose
//! text raises no hint needs no parsing): no trigger spans a quote or a backslash.

use crate::keys::KeyMatcher;

/// 13 or more digits in a run with single space or dash separators.
pub(crate) const CARD: u16 = 1 << 0;
/// 9 or more digits in three or more such groups, with a dash.
pub(crate) const SSN: u16 = 1 << 1;
/// Two capitals then two digits.
pub(crate) const IBAN: u16 = 1 << 2;
/// `@`.
pub(crate) const EMAIL: u16 = 1 << 3;
/// `eyJ`.
pub(crate) const JWT: u16 = 1 << 4;
/// `-----B`.
pub(crate) const PEM: u16 = 1 << 5;
/// `AKIA`, `ASIA`, `ABIA`, `ACCA`.
pub(crate) const AWS: u16 = 1 << 6;
/// `gh[pousr]_`, `github_pat_`.
pub(crate) const GITHUB: u16 = 1 << 7;
/// `sk-`.
pub(crate) const SK: u16 = 1 << 8;
/// `bearer`, any case.
pub(crate) const BEARER: u16 = 1 << 9;
/// `basic`, any case.
pub(crate) const BASIC: u16 = 1 << 10;
/// A `=` or `:` after something ending like a rule key (see [`KeyMatcher::loose_at`]).
pub(crate) const ASSIGN: u16 = 1 << 11;

/// Which detectors could match a string.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Hints(pub(crate) u16);

impl Hints {
    pub(crate) fn any(self) -> bool {
        self.0 != 0
    }

    pub(crate) fn has(self, bits: u16) -> bool {
        self.0 & bits != 0
    }
}

/// Scans `s` once.
pub(crate) fn scan(s: &[u8], keys: &KeyMatcher) -> Hints {
    let mut h = 0u16;
    let mut i = 0;
    while i < s.len() {
        // Most bytes start no trigger: skip them in a tight loop.
        if !TRIGGERS[usize::from(s[i])] {
            i += 1;
            continue;
        }
        let b = s[i];
        match b {
            b'0'..=b'9' => {
                i = digit_run(s, i, &mut h);
                continue;
            }
            b'@' => h |= EMAIL,
            b'J' if i >= 2 && s[i - 2] == b'e' && s[i - 1] == b'y' => h |= JWT,
            b'A' if matches!(s.get(i..i + 4), Some(b"AKIA" | b"ASIA" | b"ABIA" | b"ACCA")) => {
                h |= AWS;
            }
            b'_' if is_github_prefix(&s[..i]) => h |= GITHUB,
            b'-' if i >= 2 && &s[i - 2..i] == b"sk" => h |= SK,
            b'b' | b'B' => {
                if b == b'B' && i >= 5 && &s[i - 5..i] == b"-----" {
                    h |= PEM;
                } else if s
                    .get(i..i + 6)
                    .is_some_and(|w| w.eq_ignore_ascii_case(b"bearer"))
                {
                    h |= BEARER;
                } else if s
                    .get(i..i + 5)
                    .is_some_and(|w| w.eq_ignore_ascii_case(b"basic"))
                {
                    h |= BASIC;
                }
            }
            b'=' | b':' if h & ASSIGN == 0 && keys.loose_at(s, i) => h |= ASSIGN,
            _ => {}
        }
        i += 1;
    }
    Hints(h)
}

/// Bytes at which a trigger is checked.
static TRIGGERS: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = b'0';
    while c <= b'9' {
        t[c as usize] = true;
        c += 1;
    }
    let bytes = b"@JAbB_-=:";
    let mut i = 0;
    while i < bytes.len() {
        t[bytes[i] as usize] = true;
        i += 1;
    }
    t
};

fn is_github_prefix(before: &[u8]) -> bool {
    before.ends_with(b"github_pat")
        || (before.len() >= 3
            && before[before.len() - 3..before.len() - 1] == *b"gh"
            && matches!(before[before.len() - 1], b'p' | b'o' | b'u' | b's' | b'r'))
}

/// Consumes the digit run starting at `start` (digits with single space or dash
/// separators); returns the index after it.
fn digit_run(s: &[u8], start: usize, h: &mut u16) -> usize {
    if start >= 2
        && s[start - 2].is_ascii_uppercase()
        && s[start - 1].is_ascii_uppercase()
        && s.get(start + 1).is_some_and(u8::is_ascii_digit)
    {
        *h |= IBAN;
    }
    // A first group glued to a letter cannot start a card or SSN (see `digits`).
    let glued = start > 0 && (s[start - 1].is_ascii_alphanumeric() || s[start - 1] == b'_');
    let mut i = start;
    let mut digits = 0usize;
    let mut dash = false;
    let mut first_group = true;
    let mut groups = 0usize;
    loop {
        let group_start = i;
        while i < s.len() && s[i].is_ascii_digit() {
            i += 1;
        }
        if !(first_group && glued) {
            digits += i - group_start;
            groups += 1;
        }
        first_group = false;
        if i + 1 < s.len() && matches!(s[i], b' ' | b'-') && s[i + 1].is_ascii_digit() {
            dash |= s[i] == b'-';
            i += 1;
        } else {
            break;
        }
    }
    if digits >= 13 {
        *h |= CARD;
    }
    if digits >= 9 && dash && groups >= 3 {
        *h |= SSN;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::ValueShape;

    fn hints(s: &str) -> u16 {
        let mut keys = KeyMatcher::default();
        keys.add_rule("password", 0, ValueShape::Word);
        scan(s.as_bytes(), &keys).0
    }

    #[test]
    fn each_trigger_sets_its_hint() {
        assert_eq!(hints("card 4111 1111 1111 1111."), CARD);
        assert_eq!(hints("ssn 123-45-6789"), SSN);
        assert_eq!(hints("DE89 3704"), IBAN);
        assert_eq!(hints("a@b"), EMAIL);
        assert_eq!(hints("x eyJhb"), JWT);
        assert_eq!(hints("-----BEGIN"), PEM);
        assert_eq!(hints("AKIAXX"), AWS);
        assert_eq!(hints("ghp_x github_pat_"), GITHUB);
        assert_eq!(hints("sk-x"), SK);
        assert_eq!(hints("BeArEr"), BEARER);
        assert_eq!(hints("basic"), BASIC);
        assert_eq!(hints("db_password: x"), ASSIGN);
    }

    #[test]
    fn benign_text_sets_nothing() {
        assert_eq!(
            hints("2024-05-01T12:30:00Z INFO request done in 12ms, user_id=42 path=/v1/items"),
            0
        );
        assert_eq!(hints("123e4567-e89b-12d3-a456-426614174000"), 0);
    }
}
