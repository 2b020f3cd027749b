//! The built-in value detectors, their precedence, and how overlapping matches merge.
//!
//! Patterns are ASCII-only (`(?-u)`) so that the regex engine's DFA handles every
//! haystack, and each detector runs only when its [hint](crate::hints) is set.

use std::sync::LazyLock;

use regex::Regex;

use crate::names;

/// A built-in value detector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Detector {
    PrivateKey,
    Jwt,
    AwsAccessKey,
    GithubToken,
    AnthropicKey,
    OpenaiKey,
    Bearer,
    BasicAuth,
    CreditCard,
    Iban,
    Ssn,
    Email,
    AssignedSecret,
}

/// The precedence of custom patterns: after the credential formats, before the
/// personal-data detectors.
pub(crate) const CUSTOM_RANK: u8 = 4;

impl Detector {
    pub(crate) const ALL: [Detector; 13] = [
        Self::PrivateKey,
        Self::Jwt,
        Self::AwsAccessKey,
        Self::GithubToken,
        Self::AnthropicKey,
        Self::OpenaiKey,
        Self::Bearer,
        Self::BasicAuth,
        Self::CreditCard,
        Self::Iban,
        Self::Ssn,
        Self::Email,
        Self::AssignedSecret,
    ];

    pub(crate) const fn name(self) -> &'static str {
        match self {
            Self::PrivateKey => names::PRIVATE_KEY,
            Self::Jwt => names::JWT,
            Self::AwsAccessKey => names::AWS_ACCESS_KEY,
            Self::GithubToken => names::GITHUB_TOKEN,
            Self::AnthropicKey => names::ANTHROPIC_KEY,
            Self::OpenaiKey => names::OPENAI_KEY,
            Self::Bearer => names::BEARER,
            Self::BasicAuth => names::BASIC_AUTH,
            Self::CreditCard => names::CREDIT_CARD,
            Self::Iban => names::IBAN,
            Self::Ssn => names::SSN,
            Self::Email => names::EMAIL,
            Self::AssignedSecret => names::ASSIGNED_SECRET,
        }
    }

    /// Lower wins when matches overlap: the most specific format names the merged
    /// match (a JWT after `Bearer ` is a `jwt`; `Authorization: Bearer x` is `bearer`).
    pub(crate) const fn rank(self) -> u8 {
        match self {
            Self::PrivateKey => 0,
            Self::Jwt => 1,
            Self::AwsAccessKey | Self::GithubToken | Self::AnthropicKey | Self::OpenaiKey => 2,
            Self::Bearer | Self::BasicAuth => 3,
            Self::CreditCard => 5,
            Self::Iban => 6,
            Self::Ssn => 7,
            Self::Email => 8,
            Self::AssignedSecret => 9,
        }
    }

    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

/// A match to replace: `start..end` of the text, by rule `rule`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) rule: crate::action::RuleId,
    pub(crate) rank: u8,
}

/// Sorts `spans` and merges overlapping ones into their union, named by the highest
/// precedence among them, so no fragment of a secret is left between two matches.
pub(crate) fn merge(spans: &mut Vec<Span>) {
    spans.retain(|s| s.start < s.end);
    spans.sort_unstable_by_key(|s| (s.start, s.rank));
    let mut out = 0;
    for i in 0..spans.len() {
        let s = spans[i];
        if out > 0 && s.start < spans[out - 1].end {
            let last = &mut spans[out - 1];
            last.end = last.end.max(s.end);
            if s.rank < last.rank {
                last.rule = s.rule;
                last.rank = s.rank;
            }
        } else {
            spans[out] = s;
            out += 1;
        }
    }
    spans.truncate(out);
}

/// The compiled built-in patterns, shared by every `Redactor`.
pub(crate) struct Patterns {
    pub(crate) jwt: Regex,
    pub(crate) aws: Regex,
    pub(crate) github: Regex,
    /// `sk-…` keys: Anthropic's start `sk-ant-`, the rest are OpenAI's.
    pub(crate) sk: Regex,
    pub(crate) bearer: Regex,
    pub(crate) basic: Regex,
    pub(crate) iban: Regex,
    pub(crate) email: Regex,
}

pub(crate) static PATTERNS: LazyLock<Patterns> = LazyLock::new(|| Patterns {
    jwt: builtin(r"(?-u)eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"),
    aws: builtin(r"(?-u)\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b"),
    github: builtin(r"(?-u)\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})"),
    sk: builtin(r"(?-u)\bsk-[A-Za-z0-9_-]{20,}"),
    bearer: builtin(r"(?i-u)\bbearer[ \t]+([A-Za-z0-9._~+/-]+=*)"),
    basic: builtin(r"(?i-u)\bbasic[ \t]+([A-Za-z0-9+/]+={0,2})"),
    iban: builtin(r"(?-u)\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b"),
    email: builtin(
        r"(?-u)\b[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,24}\b",
    ),
});

fn builtin(pattern: &str) -> Regex {
    // Constant patterns, compiled by every test run.
    Regex::new(pattern).expect("built-in pattern compiles")
}

impl Patterns {
    pub(crate) fn jwt(&self, s: &str, emit: &mut impl FnMut(Detector, usize, usize)) {
        for m in self.jwt.find_iter(s) {
            emit(Detector::Jwt, m.start(), m.end());
        }
    }

    pub(crate) fn aws(&self, s: &str, emit: &mut impl FnMut(Detector, usize, usize)) {
        for m in self.aws.find_iter(s) {
            emit(Detector::AwsAccessKey, m.start(), m.end());
        }
    }

    pub(crate) fn github(&self, s: &str, emit: &mut impl FnMut(Detector, usize, usize)) {
        for m in self.github.find_iter(s) {
            emit(Detector::GithubToken, m.start(), m.end());
        }
    }

    pub(crate) fn sk(&self, s: &str, emit: &mut impl FnMut(Detector, usize, usize)) {
        for m in self.sk.find_iter(s) {
            let key = m.as_str();
            // Random keys mix in digits or capitals; kebab-case words do not.
            if !key[3..]
                .bytes()
                .any(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
            {
                continue;
            }
            let d = if key.starts_with("sk-ant-") {
                Detector::AnthropicKey
            } else {
                Detector::OpenaiKey
            };
            emit(d, m.start(), m.end());
        }
    }

    /// The credential after `Bearer`, which stays readable. Prose (`Bearer
    /// authentication`) is told apart by length and character mix.
    pub(crate) fn bearer(&self, s: &str, emit: &mut impl FnMut(Detector, usize, usize)) {
        for c in self.bearer.captures_iter(s) {
            let Some(m) = c.get(1) else { continue };
            // A trailing dot ends the sentence, not the token.
            let t = m.as_str().trim_end_matches('.').as_bytes();
            let mixed = t
                .iter()
                .any(|b| b.is_ascii_digit() || b"._~+/-=".contains(b));
            if t.len() >= 20 || (t.len() >= 8 && mixed) {
                emit(Detector::Bearer, m.start(), m.start() + t.len());
            }
        }
    }

    /// The credential after `Basic`, if it decodes to `user:password`.
    pub(crate) fn basic(&self, s: &str, emit: &mut impl FnMut(Detector, usize, usize)) {
        for c in self.basic.captures_iter(s) {
            let Some(m) = c.get(1) else { continue };
            if base64_has_colon(m.as_str().as_bytes()) {
                emit(Detector::BasicAuth, m.start(), m.end());
            }
        }
    }

    pub(crate) fn iban(&self, s: &str, emit: &mut impl FnMut(Detector, usize, usize)) {
        for m in self.iban.find_iter(s) {
            if let Some(len) = crate::iban::valid_prefix(m.as_str()) {
                emit(Detector::Iban, m.start(), m.start() + len);
            }
        }
    }

    pub(crate) fn email(&self, s: &str, emit: &mut impl FnMut(Detector, usize, usize)) {
        for m in self.email.find_iter(s) {
            emit(Detector::Email, m.start(), m.end());
        }
    }
}

/// A PEM private key block from `-----BEGIN … PRIVATE KEY …-----` through its END line,
/// or to the end of `s` when it has none (a truncated log line still hides the key).
pub(crate) fn private_keys(s: &str, emit: &mut impl FnMut(Detector, usize, usize)) {
    const BEGIN: &str = "-----BEGIN ";
    const END: &str = "-----END ";
    const DASHES: &str = "-----";
    let mut from = 0;
    while let Some(off) = s[from..].find(BEGIN) {
        let start = from + off;
        let label_start = start + BEGIN.len();
        let rest = &s.as_bytes()[label_start..];
        let label_len = rest
            .iter()
            .take(64)
            .take_while(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || **b == b' ')
            .count();
        let label = &rest[..label_len];
        let is_private = label.windows(11).any(|w| w == b"PRIVATE KEY");
        if !is_private || !rest[label_len..].starts_with(DASHES.as_bytes()) {
            from = label_start;
            continue;
        }
        let body = label_start + label_len + DASHES.len();
        let end = match s[body..].find(END) {
            Some(e) => {
                let footer = body + e + END.len();
                let line_end = s[footer..]
                    .find(['\n', '\r'])
                    .map_or(s.len(), |i| footer + i);
                s[footer..line_end]
                    .find(DASHES)
                    .map_or(line_end, |i| footer + i + DASHES.len())
            }
            None => s.len(),
        };
        emit(Detector::PrivateKey, start, end);
        from = end;
    }
}

/// Whether standard base64 `text` decodes to bytes holding a `:`.
fn base64_has_colon(text: &[u8]) -> bool {
    let data = text
        .strip_suffix(b"==")
        .or(text.strip_suffix(b"="))
        .unwrap_or(text);
    if data.len() < 4 || data.len() % 4 == 1 {
        return false;
    }
    let mut acc = 0u32;
    let mut bits = 0;
    for &c in data {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return false,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            if (acc >> bits) & 0xff == u32::from(b':') {
                return true;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(
        f: impl Fn(&Patterns, &str, &mut dyn FnMut(Detector, usize, usize)),
        s: &str,
    ) -> Vec<String> {
        let mut out = Vec::new();
        f(&PATTERNS, s, &mut |_, a, b| out.push(s[a..b].to_owned()));
        out
    }

    macro_rules! detector {
        ($method:ident) => {
            |p: &Patterns, s: &str, e: &mut dyn FnMut(Detector, usize, usize)| {
                p.$method(s, &mut |d, a, b| e(d, a, b))
            }
        };
    }

    const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";

    #[test]
    fn patterns_compile() {
        LazyLock::force(&PATTERNS);
    }

    #[test]
    fn jwt_valid_and_invalid() {
        assert_eq!(found(detector!(jwt), &format!("t={JWT};")), [JWT]);
        assert!(found(detector!(jwt), "eyJhbGciOiJI.notjwt.x").is_empty());
    }

    #[test]
    fn cloud_and_vendor_keys() {
        assert_eq!(
            found(detector!(aws), "key AKIAIOSFODNN7EXAMPLE."),
            ["AKIAIOSFODNN7EXAMPLE"]
        );
        assert!(found(detector!(aws), "AKIAIOSFODNN7EXAMPLEX").is_empty());
        assert!(found(detector!(aws), "AKIAIOSFODNN7").is_empty());
        let gh = format!("ghp_{}", "a1B2".repeat(9));
        assert_eq!(found(detector!(github), &format!("{gh} x")), [gh.as_str()]);
        assert!(found(detector!(github), &gh[..30]).is_empty());
        let pat = format!("github_pat_{}", "11ABCDEFG_".repeat(4));
        assert_eq!(found(detector!(github), &pat), [pat.as_str()]);
        let mut kinds = Vec::new();
        let s = "a sk-proj-Ab3dEf6hIj9kLm2nOp5q b sk-ant-api03-Xy7zAb3dEf6hIj9kLm2n c sk-learn-model-selection-tools";
        PATTERNS.sk(s, &mut |d, a, b| kinds.push((d, &s[a..b])));
        assert_eq!(
            kinds,
            [
                (Detector::OpenaiKey, "sk-proj-Ab3dEf6hIj9kLm2nOp5q"),
                (Detector::AnthropicKey, "sk-ant-api03-Xy7zAb3dEf6hIj9kLm2n")
            ]
        );
        assert!(found(detector!(sk), "task-Ab3dEf6hIj9kLm2nOp5q").is_empty());
    }

    #[test]
    fn auth_schemes_keep_the_word() {
        assert_eq!(
            found(detector!(bearer), "Authorization: Bearer abc.def-123"),
            ["abc.def-123"]
        );
        assert_eq!(found(detector!(bearer), &format!("bearer {JWT}")), [JWT]);
        assert!(found(detector!(bearer), "uses Bearer authentication").is_empty());
        assert!(found(detector!(bearer), "Bearer realm=x").is_empty());
        assert!(found(detector!(bearer), "stream bearer successfully.").is_empty());
        assert_eq!(
            found(detector!(bearer), "Bearer abc.def-123."),
            ["abc.def-123"]
        );
        // "dXNlcjpwYXNz" is "user:pass".
        assert_eq!(
            found(detector!(basic), "BASIC dXNlcjpwYXNz"),
            ["dXNlcjpwYXNz"]
        );
        assert!(found(detector!(basic), "Basic usage").is_empty());
        assert!(found(detector!(basic), "basic authentication").is_empty());
    }

    #[test]
    fn emails() {
        assert_eq!(
            found(
                detector!(email),
                "to ann.lee+x@mail.example.co.uk, bob@ex.io."
            ),
            ["ann.lee+x@mail.example.co.uk", "bob@ex.io"]
        );
        for s in [
            "@types/node@18.0.0",
            "pkg@1.2.3",
            "image@sha256:abc",
            "a@b",
            "@mention",
        ] {
            assert!(found(detector!(email), s).is_empty(), "{s}");
        }
    }

    #[test]
    fn private_key_blocks() {
        let block = "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nAAAA\n-----END RSA PRIVATE KEY-----";
        let mut out = Vec::new();
        let s = format!("key: {block}\nnext");
        private_keys(&s, &mut |_, a, b| out.push(s[a..b].to_owned()));
        assert_eq!(out, [block]);
        out.clear();
        let s = "x -----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk";
        private_keys(s, &mut |_, a, b| out.push(s[a..b].to_owned()));
        assert_eq!(out, [&s[2..]], "unterminated: to the end");
        out.clear();
        let s = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----";
        private_keys(s, &mut |_, a, b| out.push(s[a..b].to_owned()));
        assert!(out.is_empty());
    }

    #[test]
    fn merge_takes_union_and_precedence() {
        let s = |start, end, rank| Span {
            start,
            end,
            rule: u16::from(rank),
            rank,
        };
        let mut v = vec![
            s(10, 20, 9),
            s(0, 5, 8),
            s(12, 25, 1),
            s(30, 30, 0),
            s(25, 27, 3),
        ];
        merge(&mut v);
        assert_eq!(v, [s(0, 5, 8), s(10, 25, 1), s(25, 27, 3)]);
    }

    #[test]
    fn base64_colon() {
        assert!(base64_has_colon(b"dXNlcjpwYXNz"));
        assert!(base64_has_colon(b"YTpi")); // a:b
        assert!(!base64_has_colon(b"dXNlcnBhc3M=")); // userpass
    }
}
