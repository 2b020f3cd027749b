//! `logbook serve`.

use std::path::PathBuf;

use clap::Args;

use super::Cli;
use crate::config::{Config, KEYS};
use crate::store::Durability;

/// Arguments of `logbook serve`. Each overrides the same key of the configuration file
/// and of its `LOGBOOK_*` environment variable.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Unix socket to listen on [default: $XDG_RUNTIME_DIR/logbook.sock, else a per-user
    /// directory under the temp dir; env LOGBOOK_SOCKET].
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Permissions of the socket file, octal [default: 0600; env LOGBOOK_SOCKET_MODE].
    #[arg(long, value_name = "MODE")]
    socket_mode: Option<String>,
    /// Largest frame accepted from a client, in bytes [default: 16777216].
    #[arg(long, value_name = "BYTES")]
    max_frame_bytes: Option<u32>,
    /// Group commit: most records per transaction [default: 20000].
    #[arg(long, value_name = "N")]
    commit_max_records: Option<usize>,
    /// Group commit: longest wait for more records before committing, in ms [default: 5].
    #[arg(long, value_name = "MS")]
    commit_interval_ms: Option<u64>,
    /// Most records received but not yet committed; beyond it connections stop reading
    /// and clients buffer [default: 50000].
    #[arg(long, value_name = "N")]
    queue_records: Option<usize>,
    /// full: fsync every commit; normal: fsync at checkpoints [default: full].
    #[arg(long, value_name = "MODE")]
    durability: Option<Durability>,
    /// The collector's own log level: error, warn, info, debug, trace [default: info].
    #[arg(long, value_name = "LEVEL")]
    log: Option<String>,
    /// Print the effective configuration and exit.
    #[arg(long)]
    print_config: bool,
}

impl ServeArgs {
    fn flags(&self) -> Vec<(&'static str, String)> {
        let mut f = Vec::new();
        let mut put = |key: &'static str, v: Option<String>| {
            debug_assert!(KEYS.iter().any(|(k, _)| *k == key));
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
        put(
            "durability",
            self.durability.map(|d| match d {
                Durability::Full => "full".to_owned(),
                Durability::Normal => "normal".to_owned(),
            }),
        );
        put("log", self.log.clone());
        f
    }

    pub(crate) fn run(&self, cli: &Cli) -> anyhow::Result<()> {
        let config = Config::load(&cli.sources(self.flags()))?;
        if self.print_config {
            println!("{config:#?}");
            return Ok(());
        }
        init_logging(&config.log);
        crate::ingest::run(config)
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
