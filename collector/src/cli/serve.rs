//! `logbook serve`.

use std::path::PathBuf;

use clap::Args;

use super::Cli;
use crate::config::{key_help, Config};
use crate::store::Durability;

/// Arguments of `logbook serve`. Each overrides the same key of the configuration file
/// and of its `LOGBOOK_*` environment variable; `--help` lists every key.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Unix socket to listen on.
    #[arg(long, value_name = "PATH", help = key_help("socket"))]
    socket: Option<PathBuf>,
    /// Permissions of the socket file, octal.
    #[arg(long, value_name = "MODE", help = key_help("socket_mode"))]
    socket_mode: Option<String>,
    /// HTTP address to listen on.
    #[arg(long, value_name = "ADDR", help = key_help("http"))]
    http: Option<String>,
    /// No HTTP listener (the same as `--http off`).
    #[arg(long, conflicts_with = "http")]
    no_http: bool,
    /// TCP address for remote applications over TLS.
    #[arg(long, value_name = "ADDR", help = key_help("listen_tls"))]
    listen_tls: Option<String>,
    /// The TLS listener's certificate chain, PEM.
    #[arg(long, value_name = "PATH", help = key_help("tls_cert"))]
    tls_cert: Option<PathBuf>,
    /// The TLS listener's private key, PEM.
    #[arg(long, value_name = "PATH", help = key_help("tls_key"))]
    tls_key: Option<PathBuf>,
    /// Largest frame accepted from a client, in bytes.
    #[arg(long, value_name = "BYTES", help = key_help("max_frame_bytes"))]
    max_frame_bytes: Option<u32>,
    /// Group commit: most records per transaction.
    #[arg(long, value_name = "N", help = key_help("commit_max_records"))]
    commit_max_records: Option<usize>,
    /// Group commit: longest wait for more records before committing, in ms.
    #[arg(long, value_name = "MS", help = key_help("commit_interval_ms"))]
    commit_interval_ms: Option<u64>,
    /// Most records received but not yet committed.
    #[arg(long, value_name = "N", help = key_help("queue_records"))]
    queue_records: Option<usize>,
    /// full: fsync every commit; normal: fsync at checkpoints.
    #[arg(long, value_name = "MODE", help = key_help("durability"))]
    durability: Option<Durability>,
    /// The collector's own log level.
    #[arg(long, value_name = "LEVEL", help = key_help("log"))]
    log: Option<String>,
    /// Whether this collector derives exception groups, span metrics and log volume.
    #[arg(long, value_name = "on|off", help = key_help("monitor"))]
    monitor: Option<String>,
    /// Print the effective configuration and exit.
    #[arg(long)]
    print_config: bool,
}

impl ServeArgs {
    fn flags(&self) -> Vec<(&'static str, String)> {
        let mut f = Vec::new();
        let mut put = |key: &'static str, v: Option<String>| {
            debug_assert!(crate::config::key(key).is_some());
            if let Some(v) = v {
                f.push((key, v));
            }
        };
        put(
            "socket",
            self.socket.as_ref().map(|p| p.display().to_string()),
        );
        put("socket_mode", self.socket_mode.clone());
        put(
            "http",
            if self.no_http {
                Some("off".into())
            } else {
                self.http.clone()
            },
        );
        put("listen_tls", self.listen_tls.clone());
        put(
            "tls_cert",
            self.tls_cert.as_ref().map(|p| p.display().to_string()),
        );
        put(
            "tls_key",
            self.tls_key.as_ref().map(|p| p.display().to_string()),
        );
        put(
            "max_frame_bytes",
            self.max_frame_bytes.map(|v| v.to_string()),
        );
        put(
            "commit_max_records",
            self.commit_max_records.map(|v| v.to_string()),
        );
        put(
            "commit_interval_ms",
            self.commit_interval_ms.map(|v| v.to_string()),
        );
        put("queue_records", self.queue_records.map(|v| v.to_string()));
        put("durability", self.durability.map(|d| d.as_str().to_owned()));
        put("log", self.log.clone());
        put("monitor", self.monitor.clone());
        f
    }

    pub(crate) fn run(&self, cli: &Cli) -> anyhow::Result<()> {
        let config = Config::load(&cli.sources(self.flags()))?;
        if self.print_config {
            // Every setting in effect, secrets only as "set": what the config-load
            // audit record keeps.
            println!("{}", serde_json::to_string_pretty(&config.settings(None))?);
            return Ok(());
        }
        init_logging(&config.log);
        crate::serve::run(config)
    }
}

/// The collector logs its lifecycle to stderr; it never ingests its own traces.
fn init_logging(level: &str) {
    let level = level
        .parse::<tracing::level_filters::LevelFilter>()
        .unwrap_or(tracing::level_filters::LevelFilter::INFO);
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}
