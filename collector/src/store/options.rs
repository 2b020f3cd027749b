//! How a store is opened for writing, whatever the backend: durability, where the
//! audit keys and checkpoints live and how often checkpoints are signed, which records
//! are audit records, and the prices calls are costed with.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;

use crate::audit::AuditRules;
use crate::cost::PriceTable;

/// How hard a commit works to survive a crash.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Every commit reaches the disk before it is acknowledged (SQLite: `fsync` on
    /// every commit): an acknowledged record survives power loss.
    #[default]
    Full,
    /// Commits reach the disk at checkpoints only: an acknowledged record survives a
    /// crash of the collector but possibly not of the machine. Faster.
    Normal,
}

impl Durability {
    /// `full` or `normal`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Normal => "normal",
        }
    }
}

/// A durability word that is neither `full` nor `normal`.
#[derive(Debug, Error)]
#[error("invalid durability {0:?}: expected full or normal")]
pub struct ParseDurabilityError(String);

impl FromStr for Durability {
    type Err = ParseDurabilityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "full" => Ok(Self::Full),
            "normal" => Ok(Self::Normal),
            _ => Err(ParseDurabilityError(s.to_owned())),
        }
    }
}

/// The defaults of the settings below; the configuration's defaults are these.
pub mod defaults {
    /// A checkpoint after this many audit records.
    pub const CHECKPOINT_RECORDS: u64 = 1000;
    /// A checkpoint at least this often, in seconds.
    pub const CHECKPOINT_INTERVAL_SECS: u64 = 60;
}

/// How a store is opened for writing.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// How hard a commit works to survive a crash.
    pub durability: Durability,
    /// Where the chain, signing and pseudonym keys live (made on first open)
    /// [default: a `keys` directory beside the database].
    pub key_dir: Option<PathBuf>,
    /// Where signed checkpoints are appended [default: the database path with the
    /// extension `.checkpoints`].
    pub checkpoint_file: Option<PathBuf>,
    /// A checkpoint after this many audit records.
    pub checkpoint_records: u64,
    /// A checkpoint at least this often, also when idle.
    pub checkpoint_interval: Duration,
    /// Which records are audit records.
    pub audit: AuditRules,
    /// Prices for the cost of LLM calls.
    pub prices: Arc<PriceTable>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            durability: Durability::Full,
            key_dir: None,
            checkpoint_file: None,
            checkpoint_records: defaults::CHECKPOINT_RECORDS,
            checkpoint_interval: Duration::from_secs(defaults::CHECKPOINT_INTERVAL_SECS),
            audit: AuditRules::default(),
            prices: Arc::new(PriceTable::builtin()),
        }
    }
}

impl StoreOptions {
    /// Defaults with `durability`.
    pub fn with_durability(durability: Durability) -> Self {
        Self {
            durability,
            ..Self::default()
        }
    }
}
