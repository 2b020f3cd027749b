//! logbook's redaction engine: finds secrets and personal data in records and replaces
//! them before anything reaches disk. The collector runs it on every record; the layer
//! can run it in the application too.
//!
//! ```
//! use logbook_redact::{Config, Counts, Redactor};
//!
//! let config: Config = serde_json::from_str(r#"{
//!     "allow_keys": ["page_token"],
//!     "actions": {
//!         "email": "pseudonym",
//!         "credit_card": {"truncate": {"first": 0, "last": 4}},
//!         "password": "drop"
//!     },
//!     "rules": [
//!         {"name": "employee_id", "pattern": "EMP-[0-9]{6}"},
//!         {"name": "session_key", "keys": ["session_key", "x-session"], "action": "pseudonym"}
//!     ]
//! }"#)?;
//! let redactor = Redactor::new(&config, Some(b"the collector's pseudonym key"))?;
//!
//! let mut counts = Counts::new();
//! let text = "EMP-004211 paid with 4111 1111 1111 1111, receipt to ann@example.com";
//! let redacted = redactor.redact_text(text, &mut counts).expect("secrets found");
//! assert!(redacted.starts_with(
//!     "[REDACTED:employee_id] paid with [REDACTED:credit_card]…1111, receipt to [email:"
//! ));
//! assert_eq!(counts.iter().collect::<Vec<_>>(), [("credit_card", 1), ("email", 1), ("employee_id", 1)]);
//!
//! // Nothing to redact: no allocation, `None`.
//! assert_eq!(redactor.redact_text("GET /health 200 in 3ms", &mut counts), None);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Configuration
//!
//! [`Config`] is the `[redaction]` table of `logbook.toml` (every key optional; unknown
//! keys and unknown rule names are errors):
//!
//! ```toml
//! [redaction]
//! allow_keys = ["token_count", "page_token"]   # exempt from all redaction
//! disable = ["iban"]                           # built-in rules turned off
//!
//! [redaction.actions]                          # built-in rules' actions (default "mask")
//! email = "pseudonym"
//! credit_card = { truncate = { first = 0, last = 4 } }
//! password = "drop"
//!
//! [[redaction.rules]]                          # a custom value detector
//! name = "employee_id"
//! pattern = "EMP-[0-9]{6}"                     # Rust regex; a group named `secret`
//! action = "mask"                              # narrows the replacement to it
//!
//! [[redaction.rules]]                          # a custom key rule
//! name = "session_key"
//! keys = ["session_key", "x-session"]
//! action = "pseudonym"
//! ```
//!
//! # Rules
//!
//! **Key rules** replace a field's whole value (string, number, object…) when its key
//! names a secret: `password`, `passwd`, `secret`, `token`, `access_token`,
//! `refresh_token`, `api_key`, `apikey`, `client_secret`, `authorization`, `cookie`,
//! `set-cookie` (rule `set_cookie`), `private_key`, and custom `keys`. Keys compare
//! case-insensitively with `-` as `_` and camelCase split (`accessToken` is
//! `access_token`); a key matches when it equals the rule key or ends with it after a
//! non-alphanumeric character: `db_password`, `user.password`, `X-Api-Key`,
//! `http.request.header.authorization` match; `input_tokens`, `max_tokens`,
//! `token_count` do not. The longest matching rule key names the match. Key rules
//! apply at every depth of nested JSON (a [`Value::Json`](logbook_proto::Value) field,
//! or a string field holding a JSON object or array, which is parsed, redacted and
//! written back as compact JSON). Empty and null values are left alone.
//!
//! **Value detectors** scan the message, every string field, every string and member
//! name inside nested JSON (maps keyed by email are data), and integers for card
//! numbers. Top-level field keys come from callsites and are not scanned.
//!
//! | rule | matches |
//! |---|---|
//! | `credit_card` | 13–19 digits, contiguous or printed as cards are (4-4-4-4, 4-4-4-4-3, 4-6-5, 4-6-4…) with single spaces or dashes; Luhn-valid; first digit 2–6 (so nanosecond and millisecond timestamps are not cards); also integer fields and JSON numbers |
//! | `ssn` | `ddd-dd-dddd`, area not 000/666/9xx, group not 00, serial not 0000 |
//! | `email` | `local@domain.tld` |
//! | `iban` | registry country, check digits, BBAN (spaces every 4 allowed); mod-97 valid; the country's length |
//! | `jwt` | `eyJ….eyJ….sig` |
//! | `bearer` | the credential after `Bearer ` (the word stays) |
//! | `basic_auth` | the credential after `Basic ` when it decodes to `user:password` |
//! | `private_key` | a PEM `-----BEGIN … PRIVATE KEY-----` block through its END line, or to the end of the text if unterminated |
//! | `aws_access_key` | `AKIA`/`ASIA`/`ABIA`/`ACCA` + 16 capitals or digits |
//! | `github_token` | `ghp_`/`gho_`/`ghu_`/`ghs_`/`ghr_` + 36 or more letters or digits; `github_pat_…` |
//! | `openai_key` | `sk-…`/`sk-proj-…`, 20+ characters of `[A-Za-z0-9_-]` with a digit or capital |
//! | `anthropic_key` | `sk-ant-…` |
//! | `assigned_secret` | in text, the value assigned to a key-rule key: `password=hunter2`, `"api_key": "…"`, `token: …`; `Authorization: <scheme> <credential>` keeps the scheme; `Cookie:`/`Set-Cookie:` to the end of the line. Placeholders (`${X}`, `%s`, `***`, `null`), markers and code (`token = next_token()`, `password: &str`) are left alone |
//!
//! # Actions
//!
//! [`Action::Mask`] writes `[REDACTED:<rule>]`; [`Action::Pseudonym`] writes
//! `[<rule>:<16 hex>]` from HMAC-SHA256 with the key given to [`Redactor::new`];
//! [`Action::Truncate`] keeps the ends: `[REDACTED:<rule>]…1111`. Pseudonyms of
//! cards, IBANs and SSNs ignore spaces and dashes, and those of emails ignore case,
//! so one value written two ways joins. [`Action::Drop`]
//! removes the field or JSON member whose value a rule hit; in a message (or
//! [`Redactor::redact_text`]), which cannot lose a value, the match is masked instead.
//! [`Counts`] gets one per replacement, never the value.
//!
//! Redacting twice changes nothing: values already holding a marker are left alone,
//! so the collector may redact what a layer already redacted, pseudonyms included.
//!
//! # Precedence
//!
//! 1. `allow_keys`: the field or member is left whole.
//! 2. Key rules: the whole value is replaced; nothing inside it is scanned.
//! 3. Value detectors. Overlapping matches merge into one replacement covering their
//!    union (so no fragment survives), counted once, under the most specific rule, in
//!    this order: `private_key`; `jwt`; `aws_access_key`, `github_token`,
//!    `anthropic_key`, `openai_key`; `bearer`, `basic_auth`; custom patterns;
//!    `credit_card`; `iban`; `ssn`; `email`; `assigned_secret`. So
//!    `Authorization: Bearer <jwt>` becomes `Authorization: Bearer [REDACTED:jwt]`,
//!    counted as one `jwt`.
//!
//! The record's name, target, file, category and scope (ids) are not redacted.
//!
//! # Cost
//!
//! One pass over each string's bytes (the prefilter in `hints`) decides which
//! detectors could match; a string with no trigger costs that pass and nothing else,
//! allocates nothing and returns unchanged. Every detector is linear in its input.
#![warn(missing_docs)]

mod action;
mod assigned;
mod config;
mod counts;
mod detect;
mod digits;
mod error;
mod hints;
mod iban;
mod json;
mod keys;
pub mod names;
mod redactor;

pub use config::{Action, Config, RuleConfig};
pub use counts::Counts;
pub use error::Error;
pub use redactor::{Redactor, SECRET_GROUP};
