//! `assigned_secret`: a value assigned to a secret-looking key in free text
//! (`password=hunter2`, `"api_key": "…"`, `Authorization: Bearer …`, `Cookie: a=b`).
//!
//! Only the value is replaced, so the line stays readable. The keys are those of the
//! enabled key rules, matched as field keys are (`db_password=` counts, `max_tokens=`
//! does not); allowed keys are left alone.

use crate::action::is_marked;
use crate::detect::Detector;
use crate::keys::{KeyMatch, KeyMatcher, ValueShape};

/// Values that name no secret: placeholders and literals.
const LITERALS: &[&str] = &["null", "none", "nil", "true", "false", "undefined"];

/// Type names after `key:` in code (`token: &str`, `password: String`).
const TYPE_NAMES: &[&str] = &[
    "str",
    "string",
    "bool",
    "int",
    "float",
    "bytes",
    "usize",
    "isize",
    "u8",
    "u16",
    "u32",
    "u64",
    "u128",
    "i8",
    "i16",
    "i32",
    "i64",
    "i128",
    "f32",
    "f64",
    "option",
    "optional",
    "vec",
    "box",
    "arc",
    "secret",
    "secretstring",
    "any",
    "dict",
    "list",
    "text",
    "varchar",
];

/// HTTP authentication schemes, kept readable before the credential.
const AUTH_SCHEMES: &[&str] = &[
    "bearer",
    "basic",
    "digest",
    "token",
    "negotiate",
    "ntlm",
    "oauth",
    "apikey",
    "dpop",
    "hoba",
    "mutual",
    "mac",
    "sharedkey",
    "aws4-hmac-sha256",
    "splunk",
    "sso-key",
];

/// Variables that start member accesses in code.
const RECEIVERS: &[&str] = &[
    "self",
    "this",
    "cls",
    "config",
    "cfg",
    "conf",
    "settings",
    "os",
    "env",
    "args",
    "opts",
    "options",
    "params",
    "request",
    "req",
    "ctx",
    "context",
    "creds",
    "credentials",
    "auth",
    "process",
    "secrets",
    "vars",
];

/// Emits every assigned secret value in `s`.
pub(crate) fn find(s: &str, keys: &KeyMatcher, emit: &mut impl FnMut(Detector, usize, usize)) {
    let b = s.as_bytes();
    let mut i = 0;
    while let Some(off) = b[i..].iter().position(|&c| c == b'=' || c == b':') {
        let sep = i + off;
        match value_after(b, sep, keys) {
            Some((start, end)) => {
                emit(Detector::AssignedSecret, start, end);
                // Past the value: a long line is read once, not once per separator.
                i = end.max(sep + 1);
            }
            None => i = sep + 1,
        }
    }
}

/// The value assigned at separator `sep`, if its key is a rule key.
fn value_after(b: &[u8], sep: usize, keys: &KeyMatcher) -> Option<(usize, usize)> {
    let KeyMatch::Rule(_, shape) = keys.text_key_before(b, sep) else {
        return None;
    };
    let mut p = sep + 1;
    match (b[sep], b.get(p)) {
        (b'=', Some(b'=')) | (b':', Some(b':')) => return None,
        (b'=', Some(b'>')) | (b':', Some(b'=')) => p += 1,
        _ => {}
    }
    while p < b.len() && matches!(b[p], b' ' | b'\t') {
        p += 1;
    }
    if p >= b.len() {
        return None;
    }
    let (start, end, quoted) = match quote_at(b, p) {
        Some((quote, open_len)) => {
            let start = p + open_len;
            (start, closing_quote(b, start, quote, open_len == 2), true)
        }
        None => {
            let end = match shape {
                ValueShape::Word => word_end(b, p),
                ValueShape::Line | ValueShape::LineAfterScheme => trim_end(b, p, line_end(b, p)),
            };
            (p, end, false)
        }
    };
    let start = match shape {
        ValueShape::LineAfterScheme => after_scheme(b, start, end),
        _ => start,
    };
    plausible(b, start, end, quoted || shape != ValueShape::Word, keys).then_some((start, end))
}

/// A quote opening a value at `p`: `"`, `'`, or an escaped `\"` (a JSON document
/// logged as a string); its quote byte and length.
fn quote_at(b: &[u8], p: usize) -> Option<(u8, usize)> {
    match b[p] {
        q @ (b'"' | b'\'') => Some((q, 1)),
        b'\\' => match b.get(p + 1) {
            Some(&q @ (b'"' | b'\'')) => Some((q, 2)),
            _ => None,
        },
        _ => None,
    }
}

/// Where the quoted value starting at `start` ends: its closing quote, else the end
/// of the line.
fn closing_quote(b: &[u8], start: usize, quote: u8, escaped: bool) -> usize {
    let mut i = start;
    while i < b.len() {
        match b[i] {
            b'\n' | b'\r' => return i,
            b'\\' if escaped && b.get(i + 1) == Some(&quote) => return i,
            c if c == quote && !escaped => return i,
            _ => {}
        }
        i += 1;
    }
    b.len()
}

/// The end of an unquoted word value.
fn word_end(b: &[u8], p: usize) -> usize {
    b[p..]
        .iter()
        .position(|c| c.is_ascii_whitespace() || b"&,;\"'<>()[]{}\\`|".contains(c))
        .map_or(b.len(), |i| p + i)
}

fn line_end(b: &[u8], p: usize) -> usize {
    b[p..]
        .iter()
        .position(|c| matches!(c, b'\n' | b'\r'))
        .map_or(b.len(), |i| p + i)
}

fn trim_end(b: &[u8], start: usize, mut end: usize) -> usize {
    while end > start && b[end - 1].is_ascii_whitespace() {
        end -= 1;
    }
    end
}

/// Past an auth scheme word (`Bearer `, `Basic `, `token `) when a credential follows.
/// Only known schemes: `Authorization: s3cret more` must not keep `s3cret`.
fn after_scheme(b: &[u8], start: usize, end: usize) -> usize {
    let word = b[start..end]
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'-')
        .count();
    let mut p = start + word;
    if p >= end
        || b[p] != b' '
        || !AUTH_SCHEMES
            .iter()
            .any(|s| s.as_bytes().eq_ignore_ascii_case(&b[start..p]))
    {
        return start;
    }
    while p < end && b[p] == b' ' {
        p += 1;
    }
    if p < end {
        p
    } else {
        start
    }
}

/// Whether `b[start..end]` looks like a secret rather than punctuation, a placeholder,
/// a literal, a marker this crate wrote, a Python f-string, or (for a bare word) code: `token = lexer.next()`,
/// `password: &str`, `api_key=api_key`, `secret = self.secret`.
fn plausible(b: &[u8], start: usize, end: usize, delimited: bool, keys: &KeyMatcher) -> bool {
    let Ok(v) = std::str::from_utf8(&b[start..end]) else {
        return false;
    };
    if !v.bytes().any(|c| c.is_ascii_alphanumeric())
        || is_marked(v)
        || v.bytes().all(|c| c == b'*')
        || v.starts_with(['$', '%'])
        || v.starts_with("f\"")
        || v.starts_with("f'")
        || LITERALS.iter().any(|l| v.eq_ignore_ascii_case(l))
    {
        return false;
    }
    if delimited {
        return true;
    }
    let code = v.starts_with('&')
        || b.get(end) == Some(&b'(')
        || TYPE_NAMES.iter().any(|t| v.eq_ignore_ascii_case(t))
        || matches!(keys.match_key(v), KeyMatch::Rule(..))
        || is_member_access(v, keys);
    !code
}

/// `self.token`, `config.api_key`, `os.environ`: an expression reading a variable.
fn is_member_access(v: &str, keys: &KeyMatcher) -> bool {
    let Some((receiver, member)) = v.split_once('.') else {
        return false;
    };
    let identifier = |part: &str| {
        let mut b = part.bytes();
        b.next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
            && b.all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.')
    };
    identifier(receiver)
        && identifier(member)
        && (RECEIVERS.contains(&receiver) || matches!(keys.match_key(member), KeyMatch::Rule(..)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::RuleId;

    fn keys() -> KeyMatcher {
        let mut k = KeyMatcher::default();
        for (i, name) in crate::names::KEY_RULES.iter().enumerate() {
            let shape = match *name {
                crate::names::AUTHORIZATION => ValueShape::LineAfterScheme,
                crate::names::COOKIE | crate::names::SET_COOKIE => ValueShape::Line,
                _ => ValueShape::Word,
            };
            k.add_rule(name, i as RuleId, shape);
        }
        k.add_allowed("page_token");
        k
    }

    fn values(s: &str) -> Vec<&str> {
        let mut out = Vec::new();
        find(s, &keys(), &mut |_, a, b| out.push(&s[a..b]));
        out
    }

    #[test]
    fn values_after_secret_keys() {
        assert_eq!(values("login password=hunter2&user=bob"), ["hunter2"]);
        assert_eq!(values("secret: \"a b c\" done"), ["a b c"]);
        assert_eq!(values("{\"api_key\": \"k-123\", \"n\": 1}"), ["k-123"]);
        assert_eq!(values("{\\\"token\\\":\\\"t0k\\\"}"), ["t0k"]);
        assert_eq!(values("--db-password=s3cr3t --verbose"), ["s3cr3t"]);
        assert_eq!(values("Authorization: Bearer abc.def\nnext"), ["abc.def"]);
        assert_eq!(
            values("authorization: Basic dXNlcjpwYXNz"),
            ["dXNlcjpwYXNz"]
        );
        assert_eq!(values("Cookie: a=b; c=d  \r\nHost: x"), ["a=b; c=d"]);
        assert_eq!(values("Set-Cookie: sid=1; Path=/"), ["sid=1; Path=/"]);
        assert_eq!(values("GET /cb?code=1&access_token=xyz&x=2"), ["xyz"]);
        assert_eq!(values("token => abc"), ["abc"]);
        assert_eq!(values("Authorization: s3cret more"), ["s3cret more"]);
    }

    #[test]
    fn not_secrets() {
        for s in [
            "max_tokens=100",
            "token_count: 5",
            "page_token=abc",
            "if password == stored",
            "use token::Token;",
            "password=",
            "password: ********",
            "password=[REDACTED:password]",
            "password=<redacted>",
            "password=${DB_PASSWORD}",
            "password=%s",
            "secret: null",
            "let token = lexer.next_token()?;",
            "fn new(token: &str, password: String)",
            "def login(password: str) -> bool:",
            "self.password = self.password",
            "connect(api_key=api_key)",
            "token = get_token()",
        ] {
            assert!(values(s).is_empty(), "{s}: {:?}", values(s));
        }
    }
}
