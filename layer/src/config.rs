//! The builder: options in code, defaults from `LOGBOOK_*` environment variables.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use logbook_proto::wire::{Hello, PROTOCOL_VERSION};
use logbook_proto::{InstanceId, Resource, Scope, ScopeKey};
use thiserror::Error;

use crate::guard;
use crate::layer::LogbookLayer;
use crate::rng;
use crate::shipper::transport::Target;
use crate::shipper::{Backoff, Counters, Identity, NullSink, Shipper, Sink, SocketSink};

/// `LOGBOOK_ENDPOINT`: where records go.
pub const ENV_ENDPOINT: &str = "LOGBOOK_ENDPOINT";
/// `LOGBOOK_SOCKET`: the collector's socket path, used when `LOGBOOK_ENDPOINT` is unset
/// (the collector reads the same variable).
pub const ENV_SOCKET: &str = "LOGBOOK_SOCKET";
/// `LOGBOOK_SERVICE`: the service name (default: the executable's name).
pub const ENV_SERVICE: &str = "LOGBOOK_SERVICE";
/// `LOGBOOK_BUFFER`: the buffer limit, e.g. `64MiB` (default).
pub const ENV_BUFFER: &str = "LOGBOOK_BUFFER";
/// `LOGBOOK_FLUSH_TIMEOUT`: how long a flush waits, e.g. `5s` (default).
pub const ENV_FLUSH_TIMEOUT: &str = "LOGBOOK_FLUSH_TIMEOUT";
/// `LOGBOOK_TOKEN`: the collector's shared secret, if it requires one (a `tls://`
/// endpoint always does: the shared token or an API token that may send records).
pub const ENV_TOKEN: &str = "LOGBOOK_TOKEN";
/// `LOGBOOK_TLS_CA`: the CA certificates (PEM) a `tls://` collector's certificate is
/// checked against (default: the system's roots).
pub const ENV_TLS_CA: &str = "LOGBOOK_TLS_CA";
/// `builtin`: redact every record with the built-in rules before it leaves the process
/// (see [`Builder::with_redaction`]).
pub const ENV_REDACTION: &str = "LOGBOOK_REDACTION";
/// Prefix of the default-scope variables: `LOGBOOK_TENANT`, `LOGBOOK_ENV`,
/// `LOGBOOK_PROJECT`, `LOGBOOK_APP`, `LOGBOOK_SURFACE`, … (any scope field, uppercased).
pub const ENV_SCOPE_PREFIX: &str = "LOGBOOK_";

/// Where the layer sends records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// A collector's Unix socket: `unix:/run/user/1000/logbook.sock`.
    Unix(PathBuf),
    /// In-process storage in a SQLite file (cargo feature `embedded`): `sqlite:/var/lib/app/logbook.db`.
    Sqlite(PathBuf),
    /// A collector on another host, over TLS (cargo feature `tls`):
    /// `tls://collector.internal:7071`. Its certificate must name `host`.
    Tls {
        /// Its host name (or IP address), as its certificate names it.
        host: String,
        /// Its TLS listener's port.
        port: u16,
    },
}

impl Default for Endpoint {
    /// The collector's default socket: `$XDG_RUNTIME_DIR/logbook.sock`, else a per-user
    /// directory under the temp dir.
    fn default() -> Self {
        Self::Unix(logbook_proto::paths::default_socket_path())
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unix(p) => write!(f, "unix:{}", p.display()),
            Self::Sqlite(p) => write!(f, "sqlite:{}", p.display()),
            Self::Tls { host, port } if host.contains(':') => write!(f, "tls://[{host}]:{port}"),
            Self::Tls { host, port } => write!(f, "tls://{host}:{port}"),
        }
    }
}

impl FromStr for Endpoint {
    type Err = BuildError;
    fn from_str(s: &str) -> Result<Self, BuildError> {
        let bad = || BuildError::Endpoint(s.to_owned());
        if let Some(rest) = s.strip_prefix("tls://") {
            // host:port, or [v6]:port.
            let rest = rest.strip_suffix('/').unwrap_or(rest);
            let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
            let host = host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(host);
            let port: u16 = port.parse().map_err(|_| bad())?;
            if host.is_empty() || port == 0 || host.contains(['/', '@']) {
                return Err(bad());
            }
            return Ok(Self::Tls {
                host: host.to_owned(),
                port,
            });
        }
        let (scheme, path) = s.split_once(':').ok_or_else(bad)?;
        if path.is_empty() {
            return Err(bad());
        }
        match scheme {
            "unix" => Ok(Self::Unix(path.into())),
            "sqlite" => Ok(Self::Sqlite(path.into())),
            _ => Err(bad()),
        }
    }
}

/// The layer could not be set up.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum BuildError {
    /// An endpoint that is none of `unix:PATH`, `sqlite:PATH`, `tls://HOST:PORT`.
    #[error(
        "invalid endpoint {0:?}: expected unix:/path/to/logbook.sock, tls://host:7071 or sqlite:/path/to/logbook.db"
    )]
    Endpoint(String),
    /// `tls://` endpoint in a build without the `tls` feature.
    #[error("endpoint {0} needs logbook-layer's `tls` cargo feature")]
    TlsNotCompiled(String),
    /// The TLS client could not be set up (its CA bundle, its host name).
    #[error("cannot connect to {endpoint} over TLS: {message}")]
    Tls {
        /// The endpoint.
        endpoint: String,
        /// Why.
        message: String,
    },
    /// An environment variable with a value that does not parse.
    #[error(transparent)]
    Env(#[from] EnvError),
    /// `sqlite:` endpoint in a build without the `embedded` feature.
    #[error("endpoint {0} needs logbook-layer's `embedded` cargo feature")]
    EmbeddedNotCompiled(String),
    /// The embedded store could not be opened.
    #[error("cannot open embedded store {path}: {message}")]
    Embedded {
        /// The database path.
        path: String,
        /// Why.
        message: String,
    },
    /// The worker thread could not be started.
    #[error("cannot start the logbook worker thread: {0}")]
    Thread(#[source] std::io::Error),
    /// A service name longer than collectors accept.
    #[error("service name of {0} bytes: at most {MAX_SERVICE_BYTES} bytes")]
    ServiceTooLong(usize),
}

/// The longest service name collectors accept by default, in bytes.
pub(crate) const MAX_SERVICE_BYTES: usize = 256;

/// A `LOGBOOK_*` environment variable with a value that does not parse.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("invalid {var}={value:?}: expected {expected}")]
pub struct EnvError {
    /// The variable.
    pub var: &'static str,
    /// Its value.
    pub value: String,
    /// What was expected.
    pub expected: &'static str,
}

/// Configures a [`LogbookLayer`]. [`crate::builder`] starts from the defaults and the
/// `LOGBOOK_*` environment variables; `with_*` calls override both. Its `Debug` form
/// never shows the token.
#[derive(Clone)]
#[must_use]
pub struct Builder {
    endpoint: Endpoint,
    service: String,
    scope: Scope,
    buffer_bytes: usize,
    max_field_bytes: usize,
    flush_timeout: Duration,
    reconnect_min: Duration,
    reconnect_max: Duration,
    token: Option<String>,
    tls_ca: Option<PathBuf>,
    redactor: Option<Arc<logbook_redact::Redactor>>,
    env_error: Option<EnvError>,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("endpoint", &self.endpoint)
            .field("service", &self.service)
            .field("scope", &self.scope)
            .field("buffer_bytes", &self.buffer_bytes)
            .field("max_field_bytes", &self.max_field_bytes)
            .field("flush_timeout", &self.flush_timeout)
            .field("reconnect_min", &self.reconnect_min)
            .field("reconnect_max", &self.reconnect_max)
            .field("token", &self.token.as_ref().map(|_| "**REDACTED**"))
            .field("tls_ca", &self.tls_ca)
            .field("redactor", &self.redactor)
            .field("env_error", &self.env_error)
            .finish()
    }
}

impl Default for Builder {
    /// Defaults only, ignoring the environment.
    fn default() -> Self {
        Self {
            endpoint: Endpoint::default(),
            service: default_service(),
            scope: Scope::new(),
            buffer_bytes: 64 << 20,
            max_field_bytes: 256 << 10,
            flush_timeout: Duration::from_secs(5),
            reconnect_min: Duration::from_millis(50),
            reconnect_max: Duration::from_secs(2),
            token: None,
            tls_ca: None,
            redactor: None,
            env_error: None,
        }
    }
}

impl Builder {
    /// Defaults, then the `LOGBOOK_*` environment variables. A variable that does not
    /// parse makes [`Builder::try_build`] fail (and [`Builder::build`] say so).
    pub fn from_env() -> Self {
        let mut b = Self::default();
        if let Err(e) = b.apply_env(|k| std::env::var(k).ok()) {
            b.env_error = Some(e);
        }
        b
    }

    fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), EnvError> {
        if let Some(v) = var(ENV_ENDPOINT).filter(|v| !v.is_empty()) {
            self.endpoint = v.parse().map_err(|_| EnvError {
                var: ENV_ENDPOINT,
                value: v.clone(),
                expected:
                    "unix:/path/to/logbook.sock, tls://host:7071 or sqlite:/path/to/logbook.db",
            })?;
        } else if let Some(v) = var(ENV_SOCKET).filter(|v| !v.is_empty()) {
            self.endpoint = Endpoint::Unix(v.into());
        }
        if let Some(v) = var(ENV_SERVICE).filter(|v| !v.is_empty()) {
            self.service = v;
        }
        if let Some(v) = var(ENV_BUFFER) {
            self.buffer_bytes = parse_bytes(&v).ok_or(EnvError {
                var: ENV_BUFFER,
                value: v,
                expected: "a size such as 64MiB, 512KiB or 1048576",
            })?;
        }
        if let Some(v) = var(ENV_FLUSH_TIMEOUT) {
            self.flush_timeout = parse_duration(&v).ok_or(EnvError {
                var: ENV_FLUSH_TIMEOUT,
                value: v,
                expected: "a duration such as 500ms, 5s or 1m",
            })?;
        }
        if let Some(v) = var(ENV_TOKEN).filter(|v| !v.is_empty()) {
            self.token = Some(v);
        }
        if let Some(v) = var(ENV_TLS_CA).filter(|v| !v.is_empty()) {
            self.tls_ca = Some(v.into());
        }
        match var(ENV_REDACTION).as_deref() {
            None | Some("" | "off") => {}
            Some("builtin" | "on") => {
                self.redactor = Some(Arc::new(logbook_redact::Redactor::builtin()));
            }
            Some(v) => {
                return Err(EnvError {
                    var: ENV_REDACTION,
                    value: v.to_owned(),
                    expected: "builtin (redact with the built-in rules before sending) or off",
                })
            }
        }
        for key in ScopeKey::ALL {
            let name = format!("{ENV_SCOPE_PREFIX}{}", key.as_str().to_ascii_uppercase());
            if let Some(v) = var(&name).filter(|v| !v.is_empty()) {
                self.scope.set(*key, Some(v));
            }
        }
        Ok(())
    }

    /// Where records go (default: `LOGBOOK_ENDPOINT`, else the collector's default socket).
    pub fn with_endpoint(mut self, endpoint: Endpoint) -> Self {
        self.endpoint = endpoint;
        self
    }

    /// Sends records to the collector listening on this Unix socket.
    pub fn with_socket(self, path: impl Into<PathBuf>) -> Self {
        self.with_endpoint(Endpoint::Unix(path.into()))
    }

    /// Checks a `tls://` collector's certificate against the CA certificates in this
    /// PEM file rather than the system's roots (default: `LOGBOOK_TLS_CA`).
    pub fn with_tls_ca(mut self, path: impl Into<PathBuf>) -> Self {
        self.tls_ca = Some(path.into());
        self
    }

    /// Stores records in-process in this SQLite file (cargo feature `embedded`).
    pub fn with_sqlite(self, path: impl Into<PathBuf>) -> Self {
        self.with_endpoint(Endpoint::Sqlite(path.into()))
    }

    /// The service name on every record (default: `LOGBOOK_SERVICE`, else the executable's name).
    pub fn with_service(mut self, service: impl Into<String>) -> Self {
        self.service = service.into();
        self
    }

    /// A default scope field for records outside any span that sets it, e.g.
    /// `with_scope(ScopeKey::Env, "prod")` (default: `LOGBOOK_ENV`, …).
    pub fn with_scope(mut self, key: ScopeKey, value: impl Into<String>) -> Self {
        self.scope.set(key, Some(value.into()));
        self
    }

    /// Shorthand for `with_scope(ScopeKey::Tenant, ..)`.
    pub fn with_tenant(self, tenant: impl Into<String>) -> Self {
        self.with_scope(ScopeKey::Tenant, tenant)
    }

    /// Shorthand for `with_scope(ScopeKey::Env, ..)`.
    pub fn with_env(self, env: impl Into<String>) -> Self {
        self.with_scope(ScopeKey::Env, env)
    }

    /// Shorthand for `with_scope(ScopeKey::Project, ..)`.
    pub fn with_project(self, project: impl Into<String>) -> Self {
        self.with_scope(ScopeKey::Project, project)
    }

    /// Shorthand for `with_scope(ScopeKey::App, ..)`.
    pub fn with_app(self, app: impl Into<String>) -> Self {
        self.with_scope(ScopeKey::App, app)
    }

    /// The most memory, in bytes, that queued and unacknowledged records may hold; past
    /// it new records are dropped and counted (default 64 MiB, `LOGBOOK_BUFFER`).
    pub fn with_buffer_bytes(mut self, bytes: usize) -> Self {
        self.buffer_bytes = bytes;
        self
    }

    /// Longer string values are cut to this many bytes, with a marker (default 256 KiB).
    pub fn with_max_field_bytes(mut self, bytes: usize) -> Self {
        self.max_field_bytes = bytes.max(16);
        self
    }

    /// How long the flush guard (and the worker at exit) waits for delivery
    /// (default 5 s, `LOGBOOK_FLUSH_TIMEOUT`).
    pub fn with_flush_timeout(mut self, timeout: Duration) -> Self {
        self.flush_timeout = timeout;
        self
    }

    /// Reconnect delays: from `min`, doubling, never above `max` (default 50 ms to 2 s).
    pub fn with_reconnect_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.reconnect_min = min;
        self.reconnect_max = max;
        self
    }

    /// Redacts every record on the worker thread, before it leaves the process, with
    /// `redactor` (e.g. `logbook_redact::Redactor::builtin()`, the collector's default
    /// rules). The emitting thread pays nothing for it; the collector redacts again
    /// (already-redacted values are left as they are).
    pub fn with_redaction(mut self, redactor: logbook_redact::Redactor) -> Self {
        self.redactor = Some(Arc::new(redactor));
        self
    }

    /// The shared secret the collector requires (default: `LOGBOOK_TOKEN`).
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Builds the layer, or says why it cannot be built.
    pub fn try_build(self) -> Result<LogbookLayer, BuildError> {
        if let Some(e) = self.env_error {
            return Err(e.into());
        }
        if self.service.len() > MAX_SERVICE_BYTES {
            return Err(BuildError::ServiceTooLong(self.service.len()));
        }
        let counters = Arc::new(Counters::new(self.buffer_bytes));
        let identity = Identity {
            instance: InstanceId::from_random(rng::next_u64()),
            resource: Arc::new(Resource {
                service: self.service.clone(),
                host: host_name(),
                pid: std::process::id(),
            }),
            redactor: self.redactor.clone(),
        };
        let hello = Hello {
            version: PROTOCOL_VERSION,
            instance: identity.instance,
            pid: identity.resource.pid,
            service: identity.resource.service.clone(),
            host: identity.resource.host.clone(),
            token: self.token.clone(),
        };
        let sink: Box<dyn Sink> = match &self.endpoint {
            Endpoint::Unix(path) => Box::new(SocketSink::new(
                Target::Unix(path.clone()),
                hello,
                Arc::clone(&counters),
                Backoff::new(self.reconnect_min, self.reconnect_max),
            )),
            #[cfg(feature = "tls")]
            Endpoint::Tls { host, port } => {
                let remote = crate::shipper::transport::tls::Remote::new(
                    host,
                    *port,
                    self.tls_ca.as_deref(),
                )
                .map_err(|message| BuildError::Tls {
                    endpoint: self.endpoint.to_string(),
                    message,
                })?;
                Box::new(SocketSink::new(
                    Target::Tls(remote),
                    hello,
                    Arc::clone(&counters),
                    Backoff::new(self.reconnect_min, self.reconnect_max),
                ))
            }
            #[cfg(not(feature = "tls"))]
            Endpoint::Tls { .. } => {
                return Err(BuildError::TlsNotCompiled(self.endpoint.to_string()))
            }
            #[cfg(feature = "embedded")]
            Endpoint::Sqlite(path) => Box::new(
                crate::shipper::EmbeddedSink::open(path, &identity, Arc::clone(&counters))
                    .map_err(|e| BuildError::Embedded {
                        path: path.display().to_string(),
                        message: e.to_string(),
                    })?,
            ),
            #[cfg(not(feature = "embedded"))]
            Endpoint::Sqlite(_) => {
                return Err(BuildError::EmbeddedNotCompiled(self.endpoint.to_string()))
            }
        };
        self.spawn(sink, counters, identity)
    }

    fn spawn(
        self,
        sink: Box<dyn Sink>,
        counters: Arc<Counters>,
        identity: Identity,
    ) -> Result<LogbookLayer, BuildError> {
        let shipper = Shipper::spawn(
            sink,
            counters,
            identity,
            self.flush_timeout,
            self.endpoint.to_string(),
        )
        .map_err(BuildError::Thread)?;
        guard::register(&shipper);
        Ok(LogbookLayer::new(
            shipper,
            Arc::new(self.scope),
            self.max_field_bytes,
        ))
    }

    /// Builds the layer. If it cannot be built, prints the reason to stderr once and
    /// returns a layer that counts every record as dropped, so the application runs on.
    pub fn build(self) -> LogbookLayer {
        let fallback = self.clone();
        match self.try_build() {
            Ok(layer) => layer,
            Err(e) => {
                eprintln!("logbook: {e}; records will be dropped");
                let counters = Arc::new(Counters::new(fallback.buffer_bytes));
                let identity = Identity {
                    instance: InstanceId::from_random(rng::next_u64()),
                    resource: Arc::new(Resource::default()),
                    redactor: None,
                };
                let sink = Box::new(NullSink {
                    counters: Arc::clone(&counters),
                });
                fallback
                    .spawn(sink, counters, identity)
                    .unwrap_or_else(|e| panic!("logbook: {e}"))
            }
        }
    }
}

fn default_service() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "unknown".into())
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty() && s.len() <= 255)
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// `64MiB`, `512KiB`, `1GiB`, `64M`, `1048576`.
pub(crate) fn parse_bytes(s: &str) -> Option<usize> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: usize = num.parse().ok()?;
    let mult: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// `500ms`, `5s`, `1m`, or bare seconds.
pub(crate) fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    Some(match unit.trim() {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.checked_mul(60)?),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        assert_eq!(
            "unix:/tmp/x.sock".parse::<Endpoint>().unwrap(),
            Endpoint::Unix("/tmp/x.sock".into())
        );
        assert_eq!(
            "sqlite:/tmp/x.db".parse::<Endpoint>().unwrap(),
            Endpoint::Sqlite("/tmp/x.db".into())
        );
        assert_eq!(
            "tls://collector.internal:7071".parse::<Endpoint>().unwrap(),
            Endpoint::Tls {
                host: "collector.internal".into(),
                port: 7071
            }
        );
        let v6 = "tls://[::1]:7071".parse::<Endpoint>().unwrap();
        assert_eq!(
            v6,
            Endpoint::Tls {
                host: "::1".into(),
                port: 7071
            }
        );
        assert_eq!(v6.to_string(), "tls://[::1]:7071");
        for bad in [
            "/tmp/x.sock",
            "tcp:1.2.3.4",
            "unix:",
            "",
            "tls://host",
            "tls://:7071",
            "tls://h:0",
            "tls://u@h:1",
            "tls://h:99999",
        ] {
            assert!(bad.parse::<Endpoint>().is_err(), "{bad}");
        }
    }

    #[test]
    fn env_sets_scope_service_and_limits() {
        let env = |k: &str| {
            match k {
                "LOGBOOK_ENDPOINT" => Some("unix:/tmp/e.sock"),
                "LOGBOOK_SERVICE" => Some("svc"),
                "LOGBOOK_TENANT" => Some("acme"),
                "LOGBOOK_ENV" => Some("prod"),
                "LOGBOOK_BUFFER" => Some("8MiB"),
                "LOGBOOK_FLUSH_TIMEOUT" => Some("250ms"),
                _ => None,
            }
            .map(str::to_owned)
        };
        let mut b = Builder::default();
        b.apply_env(env).unwrap();
        assert_eq!(b.endpoint, Endpoint::Unix("/tmp/e.sock".into()));
        assert_eq!(b.service, "svc");
        assert_eq!(b.scope.tenant(), Some("acme"));
        assert_eq!(b.scope.get(ScopeKey::Env), Some("prod"));
        assert_eq!(b.buffer_bytes, 8 << 20);
        assert_eq!(b.flush_timeout, Duration::from_millis(250));
    }

    #[test]
    fn collector_socket_variable_is_a_fallback() {
        let mut b = Builder::default();
        b.apply_env(|k| (k == "LOGBOOK_SOCKET").then(|| "/run/x.sock".to_owned()))
            .unwrap();
        assert_eq!(b.endpoint, Endpoint::Unix("/run/x.sock".into()));
        let mut b = Builder::default();
        b.apply_env(|k| match k {
            "LOGBOOK_SOCKET" => Some("/run/x.sock".to_owned()),
            "LOGBOOK_ENDPOINT" => Some("sqlite:/a.db".to_owned()),
            _ => None,
        })
        .unwrap();
        assert_eq!(
            b.endpoint,
            Endpoint::Sqlite("/a.db".into()),
            "the endpoint wins"
        );
    }

    #[test]
    fn debug_never_shows_the_token() {
        let mut b = Builder::default();
        b.apply_env(|k| (k == "LOGBOOK_TOKEN").then(|| "hunter2-secret".to_owned()))
            .unwrap();
        assert_eq!(b.token.as_deref(), Some("hunter2-secret"));
        let shown = format!("{b:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("**REDACTED**"), "{shown}");
    }

    #[test]
    fn bad_env_is_an_error() {
        let mut b = Builder::default();
        let err = b
            .apply_env(|k| (k == "LOGBOOK_BUFFER").then(|| "lots".to_owned()))
            .unwrap_err();
        assert!(err.to_string().contains("LOGBOOK_BUFFER"), "{err}");
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_bytes("64MiB"), Some(64 << 20));
        assert_eq!(parse_bytes("512k"), Some(512 << 10));
        assert_eq!(parse_bytes("100"), Some(100));
        assert_eq!(parse_bytes("1.5G"), None);
        assert_eq!(parse_duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("x"), None);
    }
}
