//! Errors building a [`Redactor`](crate::Redactor) from a [`Config`](crate::Config).

use thiserror::Error;

/// Why a redaction configuration was refused. Every message is one line that names
/// the rule at fault.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// A custom rule's `pattern` is not a valid regular expression.
    #[error("redaction rule `{rule}`: invalid pattern: {reason}")]
    InvalidPattern {
        /// The rule's name.
        rule: String,
        /// The parser's complaint, on one line.
        reason: String,
        /// The full (multi-line) regex error.
        #[source]
        source: regex::Error,
    },
    /// A rule uses the `pseudonym` action but no pseudonym key was given.
    #[error(
        "redaction rule `{rule}`: action `pseudonym` needs a pseudonym key, and none was given"
    )]
    MissingPseudonymKey {
        /// The rule's name.
        rule: String,
    },
    /// The pseudonym key is empty.
    #[error("redaction rule `{rule}`: action `pseudonym` needs a pseudonym key, and the one given is empty")]
    EmptyPseudonymKey {
        /// The rule's name.
        rule: String,
    },
    /// `disable` or `actions` names a rule that is not built in.
    #[error("redaction rule `{rule}` (in `{setting}`): no built-in rule has this name")]
    UnknownRule {
        /// The name given.
        rule: String,
        /// `disable` or `actions`.
        setting: &'static str,
    },
    /// A custom rule is malformed.
    #[error("redaction rule `{rule}`: {problem}")]
    InvalidRule {
        /// The rule's name.
        rule: String,
        /// What is wrong with it.
        problem: &'static str,
    },
}

impl Error {
    pub(crate) fn invalid_pattern(rule: &str, source: regex::Error) -> Self {
        // regex's message spans several lines (pattern, caret, error): keep the last.
        let text = source.to_string();
        let reason = text
            .lines()
            .rev()
            .find_map(|l| l.trim().strip_prefix("error:"))
            .unwrap_or(text.lines().last().unwrap_or_default())
            .trim()
            .to_owned();
        Self::InvalidPattern {
            rule: rule.to_owned(),
            reason,
            source,
        }
    }
}
