//! Retention policies: how long records are kept, by age and by count, per storage
//! class, tenant, app and category. Applied by `serve` on a schedule and by
//! `logbook purge` ([`super::purge`]).
//!
//! ```toml
//! [retention]
//! ops = "30d"              # default age limit of ops records ("forever" keeps them)
//! audit = "365d"           # and of audit records
//! ops_max_count = 50000000 # optional count limits, newest kept
//! interval = "1h"          # how often serve applies the policies
//! archive_dir = "/var/lib/logbook/archive"  # optional: archive before deleting
//!
//! [[retention.rules]]      # overrides for matching records (first match wins)
//! tenant = "acme"
//! category = "llm_call"
//! max_age = "7d"
//! max_count = 100000
//! ```

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::audit::StorageClass;
use crate::query::parse_age;

/// An age limit: `30d`, `12h`, …, or `forever` (no limit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxAge(pub Option<Duration>);

impl<'de> Deserialize<'de> for MaxAge {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s == "forever" {
            return Ok(Self(None));
        }
        parse_age(&s).map(|a| Self(Some(a))).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "invalid age {s:?}: expected e.g. 30d, 12h, 90m or forever"
            ))
        })
    }
}

/// The retention configuration.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retention {
    /// Age limit of ops records.
    pub ops: MaxAge,
    /// Age limit of audit records.
    pub audit: MaxAge,
    /// Count limit of ops records (the newest are kept).
    pub ops_max_count: Option<u64>,
    /// Count limit of audit records.
    pub audit_max_count: Option<u64>,
    /// How often `serve` applies the policies.
    pub interval: MaxAge,
    /// Archive deleted records here first (compressed JSON Lines per day and tenant).
    pub archive_dir: Option<PathBuf>,
    /// Overrides, first match wins.
    pub rules: Vec<RetentionRule>,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            ops: MaxAge(Some(Duration::from_secs(30 * 86_400))),
            audit: MaxAge(Some(Duration::from_secs(365 * 86_400))),
            ops_max_count: None,
            audit_max_count: None,
            interval: MaxAge(Some(Duration::from_secs(3600))),
            archive_dir: None,
            rules: Vec::new(),
        }
    }
}

/// A policy for the records it matches.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionRule {
    /// Storage class it applies to.
    #[serde(default)]
    pub class: StorageClass,
    /// Tenant equals.
    pub tenant: Option<String>,
    /// App equals.
    pub app: Option<String>,
    /// Category equals.
    pub category: Option<String>,
    /// Age limit [default: the class's].
    pub max_age: Option<MaxAge>,
    /// Count limit (newest kept).
    pub max_count: Option<u64>,
}

/// Which records one purge step deletes: those of `class` matching `selector` and
/// none of `except`, older than `max_age` or beyond the newest `max_count`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PurgeSpec {
    /// Storage class.
    pub class: StorageClass,
    /// Equalities on tenant, app, category (and user, for DSAR-like purges).
    pub selector: Selector,
    /// Records matching any of these belong to another spec.
    pub except: Vec<Selector>,
    /// Delete records older than this.
    pub max_age: Option<Duration>,
    /// Keep at most this many, the newest.
    pub max_count: Option<u64>,
}

/// Column equalities.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    /// Tenant equals.
    pub tenant: Option<String>,
    /// App equals.
    pub app: Option<String>,
    /// Category equals.
    pub category: Option<String>,
}

impl Retention {
    /// The purge steps these policies make: each rule, then each class's default for
    /// the records no rule of that class matched.
    pub fn specs(&self) -> Vec<PurgeSpec> {
        let mut out = Vec::new();
        for (i, rule) in self.rules.iter().enumerate() {
            let selector = Selector {
                tenant: rule.tenant.clone(),
                app: rule.app.clone(),
                category: rule.category.clone(),
            };
            // Earlier rules win: their records are not this rule's.
            let except = self.rules[..i]
                .iter()
                .filter(|r| r.class == rule.class)
                .map(RetentionRule::selector)
                .collect();
            let default_age = match rule.class {
                StorageClass::Ops => self.ops,
                StorageClass::Audit => self.audit,
            };
            out.push(PurgeSpec {
                class: rule.class,
                selector,
                except,
                max_age: rule.max_age.unwrap_or(default_age).0,
                max_count: rule.max_count,
            });
        }
        for (class, age, count) in [
            (StorageClass::Ops, self.ops, self.ops_max_count),
            (StorageClass::Audit, self.audit, self.audit_max_count),
        ] {
            out.push(PurgeSpec {
                class,
                selector: Selector::default(),
                except: self
                    .rules
                    .iter()
                    .filter(|r| r.class == class)
                    .map(RetentionRule::selector)
                    .collect(),
                max_age: age.0,
                max_count: count,
            });
        }
        out.retain(|s| s.max_age.is_some() || s.max_count.is_some());
        out
    }
}

impl RetentionRule {
    fn selector(&self) -> Selector {
        Selector {
            tenant: self.tenant.clone(),
            app: self.app.clone(),
            category: self.category.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_come_first_and_defaults_exclude_them() {
        let r: Retention = serde_json::from_value(serde_json::json!({
            "ops": "7d",
            "audit": "forever",
            "rules": [{"tenant": "acme", "max_age": "90d"}, {"class": "audit", "category": "billing", "max_count": 10}]
        }))
        .unwrap();
        let specs = r.specs();
        assert_eq!(specs.len(), 3, "{specs:?}");
        assert_eq!(specs[0].selector.tenant.as_deref(), Some("acme"));
        assert_eq!(specs[0].max_age, Some(Duration::from_secs(90 * 86_400)));
        assert_eq!(specs[1].class, StorageClass::Audit);
        assert_eq!((specs[1].max_age, specs[1].max_count), (None, Some(10)));
        assert_eq!(specs[2].class, StorageClass::Ops);
        assert_eq!(specs[2].except.len(), 1);
        assert_eq!(specs[2].max_age, Some(Duration::from_secs(7 * 86_400)));
        assert!(serde_json::from_value::<Retention>(serde_json::json!({"ops": "soon"})).is_err());
    }
}
