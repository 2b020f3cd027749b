//! Tamper evidence for the audit stream: which records are audit records, the keys
//! held outside the database, the keyed hash chain over audit rows, signed checkpoints
//! and anchors, and `verify`.
//!
//! What each key proves:
//!
//! - The **chain key** (`chain.key`, HMAC-SHA256) links every audit row to the one
//!   before it. Without it nobody can edit, insert, delete or reorder audit rows and
//!   recompute a chain that verifies: any such change shows at the first row touched.
//! - The **signing key** (`signing.key`, ed25519) signs checkpoints (the chain's length
//!   and head at a time) and anchors (where a prune left the chain). A copy of the
//!   checkpoint file kept off the host, checked with the public key (`signing.pub`),
//!   proves the chain had at least that many rows with that head; so truncating the
//!   tail, or putting back an older copy of the database, is detected too.
//! - The **pseudonym key** (`pseudonym.key`) keys the redaction pseudonyms, so equal
//!   secrets stay correlatable without being recoverable.
//!
//! The one window nothing detects: someone holding the chain key (root on the host)
//! can rewrite the rows appended after the last checkpoint that was copied off the
//! host. Export checkpoints often.

mod admin;
mod canonical;
mod chain;
mod checkpoint;
mod keys;
mod verify;

use logbook_proto::{Record, Value};

pub use admin::{admin_record, ADMIN_TARGET};
pub use canonical::{canonical_json, record_digest};
pub use chain::{chain_hash, ChainFormat, ChainRow, GENESIS};
pub use checkpoint::{
    default_checkpoint_file, read_checkpoint_file, Checkpoint, CheckpointKind, CheckpointLine,
    CheckpointPolicy,
};
pub use keys::{default_key_dir, random_bytes, Keys, PublicKey};
pub use verify::{
    verify, AuditSource, ChainedRecord, VerifyOptions, VerifyProblem, VerifyReport,
    DSAR_DELETE_NAME, TOMBSTONED_FIELD,
};

/// The field that makes a record an audit record (`audit = true`), or keeps it out
/// (`audit = false`).
pub const AUDIT_FIELD: &str = "audit";

/// A record's storage class: what retention keeps it for and whether it is chained.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum StorageClass {
    /// Ordinary records.
    #[default]
    Ops,
    /// Audit records: chained, append-only, kept longer.
    Audit,
}

impl StorageClass {
    /// `ops` or `audit`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ops => "ops",
            Self::Audit => "audit",
        }
    }
}

/// The category of audit records the collector writes about its own admin actions.
pub const CATEGORY_AUDIT: &str = "audit";
/// The other category whose records are audit records by default.
pub const CATEGORY_SECURITY: &str = "security";

/// Which records are audit records.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditRules {
    /// Categories whose records are audit records.
    pub categories: Vec<String>,
    /// Targets whose records are audit records: `billing` matches the target `billing`
    /// and every target below it (`billing::invoices`).
    pub targets: Vec<String>,
}

impl Default for AuditRules {
    fn default() -> Self {
        Self {
            categories: vec![CATEGORY_AUDIT.into(), CATEGORY_SECURITY.into()],
            targets: Vec::new(),
        }
    }
}

impl AuditRules {
    /// `r`'s storage class under these rules.
    pub fn class_of(&self, r: &Record) -> StorageClass {
        if self.is_audit(r) {
            StorageClass::Audit
        } else {
            StorageClass::Ops
        }
    }

    /// Whether `r` is an audit record: a field `audit = true`, a category in
    /// [`AuditRules::categories`], or a target matching [`AuditRules::targets`].
    pub fn is_audit(&self, r: &Record) -> bool {
        match r.fields.get(AUDIT_FIELD) {
            Some(Value::Bool(b)) => return *b,
            Some(Value::Str(s)) if s == "true" => return true,
            _ => {}
        }
        if r.category
            .as_deref()
            .is_some_and(|c| self.categories.iter().any(|a| a == c))
        {
            return true;
        }
        self.targets.iter().any(|t| {
            r.target
                .strip_prefix(t.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
        })
    }
}

/// Lowercase hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// Bytes from hex of exactly `N` bytes.
pub fn from_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let s = s.trim().as_bytes();
    if s.len() != 2 * N {
        return None;
    }
    let val = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; N];
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        *o = val(pair[0])? << 4 | val(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use logbook_proto::{InstanceId, Kind, Level, RecordId, Str, Timestamp};

    #[test]
    fn classifies_by_field_category_and_target() {
        let rules = AuditRules {
            targets: vec!["billing".into()],
            ..AuditRules::default()
        };
        let rec = |target: &'static str| {
            let mut r = Record::new(
                RecordId::new(InstanceId::from_random(1), 1),
                Timestamp(1),
                Kind::Event,
                Level::Info,
                "e",
            );
            r.target = Str::Borrowed(target);
            r
        };
        assert!(!rules.is_audit(&rec("app")));
        assert!(rules.is_audit(&rec("billing")));
        assert!(rules.is_audit(&rec("billing::invoices")));
        assert!(!rules.is_audit(&rec("billingx")));
        let mut r = rec("app");
        r.category = Some(Str::Borrowed("security"));
        assert!(rules.is_audit(&r));
        let mut r = rec("app");
        r.fields.set("audit", Value::Bool(true));
        assert!(rules.is_audit(&r));
        let mut r = rec("billing");
        r.fields.set("audit", Value::Bool(false));
        assert!(!rules.is_audit(&r), "an explicit audit = false wins");
    }

    #[test]
    fn hex_round_trips() {
        let b = [0u8, 1, 0xab, 0xff];
        assert_eq!(to_hex(&b), "0001abff");
        assert_eq!(from_hex::<4>("0001ABff"), Some(b));
        assert_eq!(from_hex::<4>("0001ab"), None);
        assert_eq!(from_hex::<4>("0001abzz"), None);
    }
}
