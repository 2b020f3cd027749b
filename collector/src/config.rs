//! The collector's configuration: defaults, then `logbook.toml`, then `LOGBOOK_*`
//! environment variables, then command-line flags. Unknown keys in the file are errors.
//!
//! Every layer is a TOML table; they are merged key by key and the result is
//! deserialized once, so the file, the environment and the flags accept exactly the
//! same keys and values.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use serde::{Deserialize, Deserializer};

use logbook_proto::ScopeKey;

use crate::audit::AuditRules;
use crate::cost::{Price, PriceTable};
use crate::retention::Retention;
use crate::store::{Durability, StoreAddress, StoreOptions};

/// Environment variable naming the configuration file.
pub const ENV_CONFIG: &str = "LOGBOOK_CONFIG";

/// The configuration file read from the working directory when no other is named.
pub const DEFAULT_CONFIG_FILE: &str = "logbook.toml";

/// A key's built-in value.
#[derive(Clone, Copy, Debug)]
pub enum DefaultValue {
    /// None (the help text says what that means).
    Unset,
    /// A number.
    Int(i64),
    /// A word or text.
    Text(&'static str),
    /// A list of words.
    List(&'static [&'static str]),
    /// A path computed from the environment (`$XDG_DATA_HOME`, …).
    Path(fn() -> PathBuf),
}

impl DefaultValue {
    /// As a TOML value, if set.
    pub fn value(self) -> Option<toml::Value> {
        Some(match self {
            Self::Unset => return None,
            Self::Int(n) => n.into(),
            Self::Text(t) => t.into(),
            Self::List(l) => toml::Value::Array(l.iter().map(|w| (*w).into()).collect()),
            Self::Path(p) => p().display().to_string().into(),
        })
    }
}

/// A configuration key: its name in `logbook.toml` (its environment variable is
/// `LOGBOOK_` followed by the name in upper case), what it means, its default.
#[derive(Clone, Copy, Debug)]
pub struct Key {
    /// The key.
    pub name: &'static str,
    /// What it means, one line.
    pub help: &'static str,
    /// Its built-in value.
    pub default: DefaultValue,
    /// For a number, the least and the greatest value allowed.
    pub bounds: Option<(i64, i64)>,
}

impl Key {
    /// The help text with the default, as `--help` and the docs show it.
    pub fn describe(&self) -> String {
        let default = match self.default {
            DefaultValue::Unset => {
                return match self.bounds {
                    Some((lo, hi)) => format!("{} [{lo} to {hi}]", self.help),
                    None => self.help.to_owned(),
                }
            }
            DefaultValue::Int(n) => n.to_string(),
            DefaultValue::Text(t) => t.to_owned(),
            DefaultValue::List(l) => format!("[{}]", l.join(", ")),
            DefaultValue::Path(p) => p().display().to_string(),
        };
        match self.bounds {
            Some((lo, hi)) => format!("{} [default: {default}; {lo} to {hi}]", self.help),
            None => format!("{} [default: {default}]", self.help),
        }
    }
}

/// Default of `http`.
pub const DEFAULT_HTTP: &str = "127.0.0.1:7070";

/// Default of `commit_max_records`.
pub const COMMIT_MAX_RECORDS: i64 = 20_000;
/// Default of `commit_interval_ms`.
pub const COMMIT_INTERVAL_MS: i64 = 5;
/// Default of `queue_records`.
pub const QUEUE_RECORDS: i64 = 50_000;
/// Default of `queue_bytes`.
pub const QUEUE_BYTES: i64 = 64 << 20;
/// Default of `read_budget_bytes`.
pub const READ_BUDGET_BYTES: i64 = 128 << 20;
/// Default of `max_connections`.
pub const MAX_CONNECTIONS: i64 = 256;
/// Default of `idle_timeout_secs`.
pub const IDLE_TIMEOUT_SECS: i64 = 300;
/// Default of `http_max_connections`.
pub const HTTP_MAX_CONNECTIONS: i64 = 512;
/// Default of `http_header_timeout_secs`.
pub const HTTP_HEADER_TIMEOUT_SECS: i64 = 10;
/// Default of `http_request_timeout_secs`.
pub const HTTP_REQUEST_TIMEOUT_SECS: i64 = 30;
/// Default of `frame_timeout_secs`.
pub const FRAME_TIMEOUT_SECS: i64 = 10;
/// Default of `max_batch_records`.
pub const MAX_BATCH_RECORDS: i64 = 10_000;
/// Default of `max_value_bytes`.
pub const MAX_VALUE_BYTES: i64 = 256 << 10;
/// Default of `max_record_bytes`.
pub const MAX_RECORD_BYTES: i64 = 2 << 20;

/// Every configuration key, with its help text and default: the one place defaults
/// are written.
pub const KEYS: &[Key] = &[
    Key {
        name: "db",
        help: "where records are stored: a SQLite database file (sqlite:PATH or a path), or PostgreSQL (postgres://user@host/db)",
        default: DefaultValue::Path(default_db_path),
        bounds: None,
    },
    Key {
        name: "socket",
        help: "Unix socket to listen on",
        default: DefaultValue::Path(logbook_proto::paths::default_socket_path),
        bounds: None,
    },
    Key {
        name: "socket_mode",
        help: "permissions of the socket file, octal",
        default: DefaultValue::Text("0600"),
        bounds: None,
    },
    Key {
        name: "http",
        help: "HTTP address to listen on (OTLP ingest), or \"off\"",
        default: DefaultValue::Text(DEFAULT_HTTP),
        bounds: None,
    },
    Key {
        name: "listen_tls",
        help: "TCP address for remote applications over TLS (the socket's protocol; a token required), e.g. 0.0.0.0:7071 [default: none]",
        default: DefaultValue::Unset,
        bounds: None,
    },
    Key {
        name: "tls_cert",
        help: "the TLS listener's certificate chain, PEM, leaf first [default: none]",
        default: DefaultValue::Unset,
        bounds: None,
    },
    Key {
        name: "tls_key",
        help: "the TLS listener's private key, PEM (PKCS#8, PKCS#1 or SEC1) [default: none]",
        default: DefaultValue::Unset,
        bounds: None,
    },
    Key {
        name: "max_frame_bytes",
        help: "largest frame accepted from a client, in bytes",
        default: DefaultValue::Int(logbook_proto::wire::DEFAULT_MAX_FRAME_BYTES as i64),
        bounds: Some((1 << 10, 1 << 30)),
    },
    Key {
        name: "commit_max_records",
        help: "group commit: most records per transaction",
        default: DefaultValue::Int(COMMIT_MAX_RECORDS),
        bounds: Some((1, 1_000_000)),
    },
    Key {
        name: "commit_interval_ms",
        help: "group commit: longest wait for more records before committing, in ms",
        default: DefaultValue::Int(COMMIT_INTERVAL_MS),
        bounds: Some((0, 60_000)),
    },
    Key {
        name: "queue_records",
        help: "most records received but not yet committed; beyond it connections stop reading and clients buffer",
        default: DefaultValue::Int(QUEUE_RECORDS),
        bounds: Some((1, 10_000_000)),
    },
    Key {
        name: "queue_bytes",
        help: "most bytes of memory records received but not yet committed take; beyond it connections stop reading",
        default: DefaultValue::Int(QUEUE_BYTES),
        bounds: Some((1 << 20, 1 << 40)),
    },
    Key {
        name: "read_budget_bytes",
        help: "most bytes of memory frames take while being read, decoded and waiting for the queue (17 times their size), and their answers, over all connections; at least max_frame_bytes",
        default: DefaultValue::Int(READ_BUDGET_BYTES),
        bounds: Some((1 << 10, 1 << 40)),
    },
    Key {
        name: "max_connections",
        help: "most client connections at once; more are refused with an error frame",
        default: DefaultValue::Int(MAX_CONNECTIONS),
        bounds: Some((1, 1 << 20)),
    },
    Key {
        name: "idle_timeout_secs",
        help: "a client silent this long after its hello is disconnected (it reconnects when it has records)",
        default: DefaultValue::Int(IDLE_TIMEOUT_SECS),
        bounds: Some((1, 7 * 86_400)),
    },
    Key {
        name: "frame_timeout_secs",
        help: "longest time to receive one frame once it has begun; a stalled client is disconnected",
        default: DefaultValue::Int(FRAME_TIMEOUT_SECS),
        bounds: Some((1, 3_600)),
    },
    Key {
        name: "http_max_connections",
        help: "most HTTP connections at once; more wait to be accepted",
        default: DefaultValue::Int(HTTP_MAX_CONNECTIONS),
        bounds: Some((1, 1 << 16)),
    },
    Key {
        name: "http_header_timeout_secs",
        help: "longest time an HTTP client may take to send a request's headers, and to start its next request on a kept-alive connection (then it is closed)",
        default: DefaultValue::Int(HTTP_HEADER_TIMEOUT_SECS),
        bounds: Some((1, 3_600)),
    },
    Key {
        name: "http_request_timeout_secs",
        help: "longest time an HTTP request may take, its body included (a live stream's events aside)",
        default: DefaultValue::Int(HTTP_REQUEST_TIMEOUT_SECS),
        bounds: Some((1, 3_600)),
    },
    Key {
        name: "max_batch_records",
        help: "most records in one batch; a larger batch is refused (at least the layer's 4096)",
        default: DefaultValue::Int(MAX_BATCH_RECORDS),
        bounds: Some((4096, 1_000_000)),
    },
    Key {
        name: "max_value_bytes",
        help: "longest field value or message, in bytes; longer ones are cut, with a marker, and counted",
        default: DefaultValue::Int(MAX_VALUE_BYTES),
        bounds: Some((1 << 10, 1 << 30)),
    },
    Key {
        name: "max_record_bytes",
        help: "largest record once its values are cut, in bytes, about as stored; larger ones are refused",
        default: DefaultValue::Int(MAX_RECORD_BYTES),
        bounds: Some((1 << 12, 1 << 30)),
    },
    Key {
        name: "max_db_size",
        help: "disk budget: the database's largest size (bytes, or e.g. \"10GiB\"); past it the oldest ops records are pruned, and ingest pauses if that is not enough [default: none]",
        default: DefaultValue::Unset,
        bounds: Some((1 << 20, i64::MAX)),
    },
    Key {
        name: "durability",
        help: "full (fsync every commit) or normal (fsync at checkpoints)",
        default: DefaultValue::Text("full"),
        bounds: None,
    },
    Key {
        name: "token",
        help: "shared secret clients must present in their hello [default: none]",
        default: DefaultValue::Unset,
        bounds: None,
    },
    Key {
        name: "log",
        help: "the collector's own log level: error, warn, info, debug, trace, off",
        default: DefaultValue::Text("info"),
        bounds: None,
    },
    Key {
        name: "required_scope",
        help: "scope fields every record must carry, e.g. [\"tenant\", \"env\"]; others are quarantined [default: none]",
        default: DefaultValue::Unset,
        bounds: None,
    },
    Key {
        name: "audit_categories",
        help: "categories whose records are audit records",
        default: DefaultValue::List(&[crate::audit::CATEGORY_AUDIT, crate::audit::CATEGORY_SECURITY]),
        bounds: None,
    },
    Key {
        name: "audit_targets",
        help: "targets (and their children) whose records are audit records [default: none]",
        default: DefaultValue::Unset,
        bounds: None,
    },
    Key {
        name: "key_dir",
        help: "directory of the chain, signing and pseudonym keys, made 0600 on first start [default: keys/ beside the database]",
        default: DefaultValue::Unset,
        bounds: None,
    },
    Key {
        name: "checkpoint_file",
        help: "where signed audit checkpoints are appended; copy it off the host [default: the database path with .checkpoints]",
        default: DefaultValue::Unset,
        bounds: None,
    },
    Key {
        name: "checkpoint_records",
        help: "a signed checkpoint after this many audit records",
        default: DefaultValue::Int(crate::store::defaults::CHECKPOINT_RECORDS as i64),
        bounds: Some((1, 1 << 40)),
    },
    Key {
        name: "checkpoint_interval_secs",
        help: "a signed checkpoint at least this often, also when idle, in seconds",
        default: DefaultValue::Int(crate::store::defaults::CHECKPOINT_INTERVAL_SECS as i64),
        bounds: Some((1, 366 * 86_400)),
    },
    Key {
        name: "redaction",
        help: "table: redaction rules, actions and allowed keys (see README) [default: built-in rules, mask]",
        default: DefaultValue::Unset,
        bounds: None,
    },
    Key {
        name: "retention",
        help: "table: retention policies by age and count (see README) [default: ops 30d, audit 365d]",
        default: DefaultValue::Unset,
        bounds: None,
    },
    Key {
        name: "forward",
        help: "array of tables: destinations that receive stored records as OTLP/HTTP (name, endpoint, filter, headers, batch, start, ca; see README) [default: none]",
        default: DefaultValue::Unset,
        bounds: None,
    },
    Key {
        name: "monitor",
        help: "on: derive exception groups, span metrics and log volume from what is stored; off: not on this collector (another of the fleet does)",
        default: DefaultValue::Text("on"),
        bounds: None,
    },
    Key {
        name: "alerts",
        help: "array of tables: alert rules (name, kind: loop | error_count | exception | latency | error_rate | cost | client_drops | no_data, threshold, window, service, span, quantile, min_count, budget, by, for, repeat, send_resolved, webhook, secret; see README) [default: none]",
        default: DefaultValue::Unset,
        bounds: None,
    },
    Key {
        name: "slow_spans",
        help: "array of tables: slow-span thresholds by span name (name: a pattern with *, threshold: 2s, 250ms) [default: requests 1s, database queries 500ms]",
        default: DefaultValue::Unset,
        bounds: None,
    },
    Key {
        name: "prices",
        help: "array of tables: model prices in USD per million tokens, added to or replacing the built-in table (see README)",
        default: DefaultValue::Unset,
        bounds: None,
    },
];

/// One `[[slow_spans]]` table: spans named like `name` are slow from `threshold` on.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SlowSpan {
    /// A span name, `*` matching any run of characters (`db.*`, `GET /search*`).
    pub name: String,
    /// A duration: `2s`, `250ms`, `1m`.
    pub threshold: String,
}

/// The key called `name`.
pub fn key(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name)
}

/// `name`'s help text with its default, for a flag that sets it (capitalised, as
/// clap's own help lines are).
pub fn key_help(name: &str) -> String {
    let text = key(name).map_or_else(String::new, Key::describe);
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// Every key with its help, for `logbook serve --help`: each key on a line, its help
/// under it, wrapped short enough that `--help` does not wrap it again.
pub fn keys_help() -> String {
    const WIDTH: usize = 76;
    const INDENT: &str = "      ";
    let mut s = String::from(
        "Configuration keys (logbook.toml, or LOGBOOK_<KEY> in the environment; flags override both):\n",
    );
    for k in KEYS {
        s.push_str(&format!("  {}\n", k.name));
        let mut line = String::from(INDENT);
        for word in k.describe().split(' ') {
            if line.len() + word.len() + 1 > WIDTH && !line.trim().is_empty() {
                s.push_str(line.trim_end());
                s.push('\n');
                line = String::from(INDENT);
            }
            line.push_str(word);
            line.push(' ');
        }
        s.push_str(line.trim_end());
        s.push('\n');
    }
    s
}

/// A secret that never appears in `Debug` output or logs.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct SensitiveString(String);

impl SensitiveString {
    /// The secret itself, for comparison.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SensitiveString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("**REDACTED**")
    }
}

impl From<String> for SensitiveString {
    fn from(s: String) -> Self {
        Self(s)
    }
}

/// The collector's settings. See [`KEYS`] for what each means.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where records are stored.
    #[serde(deserialize_with = "store_address")]
    pub db: StoreAddress,
    /// Unix socket to listen on.
    pub socket: PathBuf,
    /// Permissions of the socket file.
    #[serde(deserialize_with = "octal_mode")]
    pub socket_mode: u32,
    /// HTTP address to listen on; `None` when `"off"`.
    #[serde(deserialize_with = "http_address")]
    pub http: Option<std::net::SocketAddr>,
    /// TCP address of the TLS listener, if any.
    #[serde(default, deserialize_with = "tls_address")]
    pub listen_tls: Option<std::net::SocketAddr>,
    /// The TLS listener's certificate chain.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// The TLS listener's private key.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// Largest frame accepted from a client.
    pub max_frame_bytes: u32,
    /// Group commit: most records per transaction.
    pub commit_max_records: usize,
    /// Group commit: longest wait for more records, in milliseconds.
    pub commit_interval_ms: u64,
    /// Most records received but not yet committed (bounds the collector's memory).
    pub queue_records: usize,
    /// Most bytes of records received but not yet committed.
    pub queue_bytes: u64,
    /// Most bytes of frames being read or waiting for the queue.
    pub read_budget_bytes: u64,
    /// Most client connections at once.
    pub max_connections: usize,
    /// Idle clients are disconnected after this long, in seconds.
    pub idle_timeout_secs: u64,
    /// Longest time to receive one frame, in seconds.
    pub frame_timeout_secs: u64,
    /// Most HTTP connections at once.
    pub http_max_connections: usize,
    /// Longest time to receive an HTTP request's headers, in seconds.
    pub http_header_timeout_secs: u64,
    /// Longest time an HTTP request may take, in seconds.
    pub http_request_timeout_secs: u64,
    /// Most records in one batch.
    pub max_batch_records: usize,
    /// Longest field value or message.
    pub max_value_bytes: usize,
    /// Largest record.
    pub max_record_bytes: usize,
    /// The database's largest size, in bytes.
    #[serde(default, deserialize_with = "byte_size")]
    pub max_db_size: Option<u64>,
    /// fsync policy.
    pub durability: Durability,
    /// Shared secret clients must present.
    #[serde(default)]
    pub token: Option<SensitiveString>,
    /// The collector's own log level.
    pub log: String,
    /// Whether this collector runs the monitor (`on` or `off`).
    pub monitor: String,
    /// Scope fields every record must carry.
    #[serde(default)]
    pub required_scope: Vec<String>,
    /// Categories whose records are audit records.
    pub audit_categories: Vec<String>,
    /// Targets whose records are audit records.
    #[serde(default)]
    pub audit_targets: Vec<String>,
    /// Key directory.
    #[serde(default)]
    pub key_dir: Option<PathBuf>,
    /// Checkpoint file.
    #[serde(default)]
    pub checkpoint_file: Option<PathBuf>,
    /// A checkpoint after this many audit records.
    pub checkpoint_records: u64,
    /// A checkpoint at least this often, in seconds.
    pub checkpoint_interval_secs: u64,
    /// Redaction rules.
    #[serde(default)]
    pub redaction: toml::Table,
    /// Retention policies.
    #[serde(default)]
    pub retention: Retention,
    /// Model prices over the built-in table.
    #[serde(default)]
    pub prices: Vec<Price>,
    /// Forwarding destinations.
    #[serde(default)]
    pub forward: Vec<crate::forward::ForwardConfig>,
    /// Slow-span thresholds by span name, over the defaults.
    #[serde(default)]
    pub slow_spans: Vec<SlowSpan>,
    /// Alert rules.
    #[serde(default)]
    pub alerts: Vec<crate::alerts::AlertRule>,
    /// The configuration file read, if any.
    #[serde(skip)]
    pub file: Option<PathBuf>,
    /// Every setting in effect, as merged from the sources (see [`Config::settings`]).
    #[serde(skip)]
    merged: toml::Table,
}

/// Keys whose values are secrets: [`Config::settings`] says only whether they are set.
const SECRET_KEYS: &[&str] = &["token"];

impl Config {
    /// The key directory: configured, else `keys/` beside the database file (for
    /// PostgreSQL, beside the default database file: a fleet's collectors share one,
    /// so configure it).
    pub fn key_dir(&self) -> Option<PathBuf> {
        self.key_dir.clone().or_else(|| {
            Some(crate::audit::default_key_dir(
                self.db.file().unwrap_or(&default_db_path()),
            ))
        })
    }

    /// The checkpoint file: configured, else the database path with `.checkpoints`
    /// (for PostgreSQL, `postgres.checkpoints` beside the default database file).
    pub fn checkpoint_file(&self) -> Option<PathBuf> {
        self.checkpoint_file.clone().or_else(|| {
            Some(crate::audit::default_checkpoint_file(
                &self.db.file().map_or_else(
                    || default_db_path().with_file_name("postgres.db"),
                    Path::to_path_buf,
                ),
            ))
        })
    }

    /// The slow-span thresholds: the `[[slow_spans]]` rules in order, then the
    /// defaults.
    pub fn slow_rules(&self) -> anyhow::Result<crate::monitor::SlowRules> {
        let mut rules = crate::monitor::SlowRules::default();
        for r in &self.slow_spans {
            let ns = crate::query::parse_duration_ns(&r.threshold).ok_or_else(|| {
                anyhow::anyhow!(
                    "configuration: slow_spans: threshold {:?} of {:?} is not a duration such as 2s or 250ms",
                    r.threshold,
                    r.name
                )
            })?;
            if r.name.is_empty() {
                anyhow::bail!("configuration: slow_spans: a rule has an empty name");
            }
            rules.rules.push((r.name.clone(), ns));
        }
        Ok(rules)
    }

    /// The store options this configuration asks for.
    pub fn store_options(&self) -> StoreOptions {
        StoreOptions {
            durability: self.durability,
            key_dir: self.key_dir(),
            checkpoint_file: self.checkpoint_file(),
            checkpoint_records: self.checkpoint_records,
            checkpoint_interval: std::time::Duration::from_secs(self.checkpoint_interval_secs),
            audit: AuditRules {
                categories: self.audit_categories.clone(),
                targets: self.audit_targets.clone(),
            },
            prices: std::sync::Arc::new(self.price_table()),
        }
    }

    /// Every setting in effect, by key, as JSON, secrets as `"set"`, or with `key`
    /// (a server-side key) as `"set, keyed digest …"`: enough to tell that a secret
    /// changed, nothing to test a guess of it against without the key. What the
    /// configuration-load audit record keeps.
    pub fn settings(&self, key: Option<&[u8]>) -> serde_json::Map<String, serde_json::Value> {
        use hmac::{Hmac, Mac};
        let secret = |name: &str| match name {
            "token" => self.token.as_ref().map(SensitiveString::expose),
            _ => None,
        };
        self.merged
            .iter()
            .map(|(k, v)| {
                let keyed = key.zip(secret(k)).and_then(|(key, value)| {
                    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key).ok()?;
                    mac.update(b"logbook config secret v1\0");
                    mac.update(k.as_bytes());
                    mac.update(b"\0");
                    mac.update(value.as_bytes());
                    let digest = crate::audit::to_hex(&mac.finalize().into_bytes());
                    Some(serde_json::Value::String(format!(
                        "set, keyed digest {}",
                        &digest[..16]
                    )))
                });
                let v = keyed
                    .unwrap_or_else(|| serde_json::to_value(v).unwrap_or(serde_json::Value::Null));
                (k.clone(), v)
            })
            .collect()
    }

    /// What records and clients are held to.
    pub fn limits(&self) -> crate::pipeline::Limits {
        crate::pipeline::Limits {
            max_value_bytes: self.max_value_bytes,
            max_record_bytes: self.max_record_bytes,
            max_batch_records: self.max_batch_records,
            ..crate::pipeline::Limits::default()
        }
    }

    /// The built-in prices with the configured ones over them.
    pub fn price_table(&self) -> PriceTable {
        PriceTable::with_overrides(&self.prices)
    }

    /// The `[redaction]` table as the redaction engine's configuration.
    pub fn redaction_config(&self) -> anyhow::Result<logbook_redact::Config> {
        logbook_redact::Config::deserialize(toml::Value::Table(self.redaction.clone()))
            .map_err(|e| anyhow::anyhow!("configuration: redaction: {e}"))
    }

    /// The redactor of this configuration, keying pseudonyms with `pseudonym_key`.
    pub fn redactor(&self, pseudonym_key: &[u8]) -> anyhow::Result<logbook_redact::Redactor> {
        logbook_redact::Redactor::new(&self.redaction_config()?, Some(pseudonym_key))
            .map_err(|e| anyhow::anyhow!("configuration: redaction: {e}"))
    }

    /// The scope keys of `required_scope`.
    pub fn required_scope_keys(&self) -> anyhow::Result<Vec<ScopeKey>> {
        self.required_scope
            .iter()
            .map(|k| {
                ScopeKey::from_name(k).ok_or_else(|| {
                    anyhow::anyhow!(
                        "configuration: required_scope: `{k}` is not a scope field (one of {})",
                        ScopeKey::ALL
                            .iter()
                            .map(|k| k.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })
            })
            .collect()
    }
}

/// A size in bytes: an integer, or text such as `10GiB`, `500 MB`, `1g`.
fn byte_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Int(i64),
        Text(String),
    }
    match Size::deserialize(d)? {
        Size::Int(n) => u64::try_from(n)
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("invalid size {n}: negative"))),
        Size::Text(t) => parse_byte_size(&t).map(Some).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "invalid size {t:?}: expected bytes or a number with a unit such as 10GiB or 500MB"
            ))
        }),
    }
}

/// `10GiB`, `500 MB`, `1g`, `4096`: bytes (units are powers of 1024, however written).
pub fn parse_byte_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let at = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let n: u64 = t[..at].parse().ok()?;
    let shift = match t[at..].trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return None,
    };
    n.checked_mul(1 << shift)
}

fn store_address<'de, D: Deserializer<'de>>(d: D) -> Result<StoreAddress, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map_err(serde::de::Error::custom)
}

fn http_address<'de, D: Deserializer<'de>>(d: D) -> Result<Option<std::net::SocketAddr>, D::Error> {
    let s = String::deserialize(d)?;
    if s == "off" {
        return Ok(None);
    }
    s.parse().map(Some).map_err(|_| {
        serde::de::Error::custom(format!(
            "invalid http address {s:?}: expected IP:PORT such as 127.0.0.1:7070, or \"off\""
        ))
    })
}

fn tls_address<'de, D: Deserializer<'de>>(d: D) -> Result<Option<std::net::SocketAddr>, D::Error> {
    let s = String::deserialize(d)?;
    if s == "off" || s.is_empty() {
        return Ok(None);
    }
    s.parse().map(Some).map_err(|_| {
        serde::de::Error::custom(format!(
            "invalid listen_tls address {s:?}: expected IP:PORT such as 0.0.0.0:7071"
        ))
    })
}

fn octal_mode<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Mode {
        Int(u32),
        Text(String),
    }
    match Mode::deserialize(d)? {
        Mode::Int(m) if m <= 0o777 => Ok(m),
        Mode::Text(s) => u32::from_str_radix(s.trim_start_matches("0o"), 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .ok_or_else(|| {
                serde::de::Error::custom(format!("invalid mode {s:?}: expected octal such as 0600"))
            }),
        Mode::Int(m) => Err(serde::de::Error::custom(format!(
            "invalid mode {m}: above 0o777"
        ))),
    }
}

/// The default database: `$XDG_DATA_HOME/logbook/logbook.db`, else
/// `~/.local/share/logbook/logbook.db`, else `./logbook.db`.
pub fn default_db_path() -> PathBuf {
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(".local/share"))
        });
    match data {
        Some(d) => d.join("logbook").join("logbook.db"),
        None => PathBuf::from("logbook.db"),
    }
}

fn defaults() -> toml::Table {
    KEYS.iter()
        .filter_map(|k| Some((k.name.to_owned(), k.default.value()?)))
        .collect()
}

/// Parses an environment or flag value as a TOML value (so `100` is a number and
/// `true` a boolean), falling back to a string (so paths need no quotes).
fn scalar(text: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {text}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .filter(|v| !v.is_table())
        .unwrap_or_else(|| toml::Value::String(text.to_owned()))
}

/// Where the configuration comes from.
#[derive(Clone, Debug, Default)]
pub struct Sources {
    /// `--config`, else `LOGBOOK_CONFIG`, else `./logbook.toml` if it exists.
    pub file: Option<PathBuf>,
    /// Flag values by key, as given on the command line.
    pub flags: Vec<(&'static str, String)>,
}

impl Config {
    /// Loads the configuration from defaults, the file, the process environment and
    /// the flags in `sources`.
    pub fn load(sources: &Sources) -> anyhow::Result<Self> {
        Self::load_with_env(sources, |k| std::env::var(k).ok())
    }

    /// [`Config::load`] with an explicit environment.
    pub fn load_with_env(
        sources: &Sources,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Self> {
        let mut merged = defaults();
        let file = match &sources.file {
            Some(f) => Some(f.clone()),
            None => env(ENV_CONFIG)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .or_else(|| {
                    Path::new(DEFAULT_CONFIG_FILE)
                        .exists()
                        .then(|| PathBuf::from(DEFAULT_CONFIG_FILE))
                }),
        };
        if let Some(path) = &file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading config file {}", path.display()))?;
            let table: toml::Table =
                toml::from_str(&text).with_context(|| format!("config file {}", path.display()))?;
            for (k, v) in table {
                if key(&k).is_none() {
                    bail!(
                        "config file {}: unknown key `{k}` (known keys: {})",
                        path.display(),
                        key_list()
                    );
                }
                merged.insert(k, v);
            }
        }
        for k in KEYS {
            let var = format!("LOGBOOK_{}", k.name.to_ascii_uppercase());
            if let Some(v) = env(&var).filter(|v| !v.is_empty()) {
                merged.insert(k.name.to_owned(), scalar(&v));
            }
        }
        for (key, v) in &sources.flags {
            merged.insert((*key).to_owned(), scalar(v));
        }
        check_bounds(&merged)?;
        // What the settings say, secrets as `"set"`: never a secret in a `Debug` print
        // or a record.
        let mut kept = merged.clone();
        for k in SECRET_KEYS {
            if let Some(v) = kept.get_mut(*k) {
                *v = toml::Value::String("set".into());
            }
        }
        // A database URL's password is a secret too.
        if let Some(toml::Value::String(db)) = kept.get_mut("db") {
            *db = crate::store::redact_password(db);
        }
        // Forwarding headers carry API keys: their names are kept, not their values.
        if let Some(toml::Value::Array(forwards)) = kept.get_mut("forward") {
            for f in forwards {
                if let Some(toml::Value::Table(headers)) = f.get_mut("headers") {
                    for (_, v) in headers.iter_mut() {
                        *v = toml::Value::String("set".into());
                    }
                }
            }
        }
        // An alert webhook's HMAC key likewise.
        if let Some(toml::Value::Array(alerts)) = kept.get_mut("alerts") {
            for a in alerts {
                if let Some(secret) = a.get_mut("secret") {
                    *secret = toml::Value::String("set".into());
                }
            }
        }
        let mut config = Config::deserialize(toml::Value::Table(merged))
            .map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
        config.file = file;
        config.merged = kept;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> anyhow::Result<()> {
        if self.read_budget_bytes < u64::from(self.max_frame_bytes) {
            bail!(
                "configuration: read_budget_bytes ({}) must be at least max_frame_bytes ({})",
                self.read_budget_bytes,
                self.max_frame_bytes
            );
        }
        if let Some(size) = self.max_db_size {
            check_bound("max_db_size", i128::from(size))?;
            if matches!(self.db, StoreAddress::Postgres(_)) {
                bail!(
                    "configuration: max_db_size bounds a SQLite file; PostgreSQL reuses the space of deleted rows rather than giving it back, so bound it with retention by age (which drops whole days)"
                );
            }
        }
        match (self.listen_tls, &self.tls_cert, &self.tls_key) {
            (Some(_), Some(_), Some(_)) | (None, _, _) => {}
            (Some(addr), _, _) => bail!(
                "configuration: listen_tls = {addr} needs tls_cert and tls_key (PEM files: --tls-cert, --tls-key)"
            ),
        }
        if self
            .retention
            .interval
            .0
            .is_some_and(|i| i < std::time::Duration::from_secs(1))
        {
            bail!("configuration: retention.interval must be at least 1s (or \"forever\")");
        }
        self.required_scope_keys()?;
        let mut names = std::collections::BTreeSet::new();
        for f in &self.forward {
            f.check().context("configuration")?;
            if !names.insert(f.name.as_str()) {
                bail!(
                    "configuration: two [[forward]] destinations are named {:?}",
                    f.name
                );
            }
        }
        self.slow_rules()?;
        let mut alert_names = std::collections::BTreeSet::new();
        for a in &self.alerts {
            a.check().context("configuration")?;
            if !alert_names.insert(a.name.as_str()) {
                bail!("configuration: two [[alerts]] rules are named {:?}", a.name);
            }
        }
        if !["on", "off"].contains(&self.monitor.as_str()) {
            bail!(
                "configuration: monitor must be on or off (got {:?})",
                self.monitor
            );
        }
        // Rules compile (patterns, names) before anything starts.
        self.redactor(&[0; 32])?;
        if !["error", "warn", "info", "debug", "trace", "off"].contains(&self.log.as_str()) {
            bail!(
                "configuration: log must be one of error, warn, info, debug, trace, off (got {:?})",
                self.log
            );
        }
        Ok(())
    }
}

/// Every number in `table` within its key's bounds.
fn check_bounds(table: &toml::Table) -> anyhow::Result<()> {
    for (name, value) in table {
        if let toml::Value::Integer(n) = value {
            check_bound(name, i128::from(*n))?;
        }
    }
    Ok(())
}

/// `n` within the bounds of the key `name`: else one line naming the key and the range.
fn check_bound(name: &str, n: i128) -> anyhow::Result<()> {
    if let Some((lo, hi)) = key(name).and_then(|k| k.bounds) {
        if n < i128::from(lo) || n > i128::from(hi) {
            bail!("configuration: {name} = {n} is out of range: allowed {lo} to {hi}");
        }
    }
    Ok(())
}

fn key_list() -> String {
    KEYS.iter().map(|k| k.name).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(
        file: Option<&str>,
        env: &[(&str, &str)],
        flags: &[(&'static str, &str)],
    ) -> anyhow::Result<Config> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("logbook.toml");
        let sources = Sources {
            file: file.map(|text| {
                std::fs::write(&path, text).expect("write config");
                path.clone()
            }),
            flags: flags.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
        };
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::load_with_env(&sources, |k| {
            env.iter().find(|(ek, _)| ek == k).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn precedence_is_defaults_file_env_flags() {
        let c = load(None, &[], &[]).unwrap();
        assert_eq!(c.commit_max_records as i64, COMMIT_MAX_RECORDS);
        assert_eq!(c.socket_mode, 0o600);
        assert_eq!(c.durability, Durability::Full);

        let file =
            "db = \"/f.db\"\ncommit_max_records = 10\nsocket_mode = 0o640\ndurability = \"normal\"";
        let c = load(Some(file), &[], &[]).unwrap();
        assert_eq!(
            (c.db.to_string(), c.commit_max_records, c.socket_mode),
            ("/f.db".to_owned(), 10, 0o640)
        );

        let c = load(
            Some(file),
            &[
                ("LOGBOOK_DB", "/e.db"),
                ("LOGBOOK_COMMIT_MAX_RECORDS", "20"),
            ],
            &[],
        )
        .unwrap();
        assert_eq!(
            (c.db.to_string(), c.commit_max_records),
            ("/e.db".to_owned(), 20)
        );

        let c = load(
            Some(file),
            &[("LOGBOOK_DB", "/e.db")],
            &[("db", "/flag.db"), ("socket_mode", "0660")],
        )
        .unwrap();
        assert_eq!(
            (c.db.to_string(), c.socket_mode),
            ("/flag.db".to_owned(), 0o660)
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let e = load(Some("dbb = \"x\""), &[], &[]).unwrap_err().to_string();
        assert!(e.contains("unknown key `dbb`"), "{e}");
        let e = load(None, &[("LOGBOOK_COMMIT_MAX_RECORDS", "lots")], &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("commit_max_records"), "{e}");
        let e = load(None, &[], &[("durability", "sometimes")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("durability") || e.contains("variant"), "{e}");
        assert!(load(None, &[], &[("socket_mode", "999")]).is_err());
        let e = load(Some("queue_records = 4611686018427387904"), &[], &[])
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "configuration: queue_records = 4611686018427387904 is out of range: allowed 1 to 10000000"
        );
        let e = load(
            None,
            &[("LOGBOOK_COMMIT_INTERVAL_MS", "4611686018427387904")],
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("commit_interval_ms") && e.contains("0 to 60000"),
            "{e}"
        );
        let e = load(None, &[], &[("max_db_size", "1KiB")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_db_size = 1024 is out of range"), "{e}");
        let e = load(Some("[retention]\ninterval = \"0s\"\n"), &[], &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("retention.interval must be at least 1s"), "{e}");
        let e = load(None, &[], &[("max_db_size", "lots")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid size"), "{e}");
        let c = load(None, &[], &[("max_db_size", "10GiB")]).unwrap();
        assert_eq!(c.max_db_size, Some(10 << 30));
        let e = load(None, &[], &[("read_budget_bytes", "2048")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("at least max_frame_bytes"), "{e}");
        assert!(load(Some("not toml ["), &[], &[]).is_err());
    }

    #[test]
    fn token_is_redacted_in_debug() {
        let c = load(None, &[("LOGBOOK_TOKEN", "hunter2")], &[]).unwrap();
        assert_eq!(
            c.token.as_ref().map(SensitiveString::expose),
            Some("hunter2")
        );
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(c.settings(None)["token"], "set");
        let keyed = c.settings(Some(&[7; 32]))["token"].to_string();
        assert!(keyed.starts_with("\"set, keyed digest "), "{keyed}");
        let other = load(None, &[("LOGBOOK_TOKEN", "hunter3")], &[]).unwrap();
        assert_ne!(other.settings(Some(&[7; 32]))["token"].to_string(), keyed);
        assert!(!serde_json::to_string(&c.settings(Some(&[7; 32])))
            .unwrap()
            .contains("hunter2"));
    }
}
