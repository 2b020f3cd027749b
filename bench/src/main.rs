//! logbook's benchmarks. `cargo run --release -p logbook-bench -- all` runs every one
//! and prints the tables of BENCHMARKS.md; `--quick` runs each in seconds.

mod hot_path;
mod stats;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "logbook-bench",
    about = "logbook's benchmarks, side by side with the alternatives"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Nanoseconds per event on the emitting thread, against fmt-JSON, OpenTelemetry and a no-op layer.
    HotPath {
        /// A few seconds instead of minutes.
        #[arg(long)]
        quick: bool,
        /// Rounds (each runs every configuration once, interleaved).
        #[arg(long)]
        rounds: Option<usize>,
        /// Repetitions per child process.
        #[arg(long)]
        reps: Option<usize>,
        /// Records per repetition.
        #[arg(long)]
        iters: Option<u64>,
    },
    /// Internal: one measured child of `hot-path`.
    #[command(hide = true)]
    HotPathChild {
        #[arg(long, value_enum)]
        config: hot_path::Config,
        #[arg(long, value_enum)]
        scenario: hot_path::Scenario,
        #[arg(long)]
        iters: u64,
        #[arg(long)]
        reps: usize,
        #[arg(long)]
        socket: Option<PathBuf>,
        #[arg(long)]
        dir: PathBuf,
    },
    /// Internal: the collector (`logbook ARGS…`), run from this binary.
    #[command(hide = true)]
    Collector {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// A collector process for the benchmarks, stopped on drop.
pub(crate) struct CollectorProcess {
    child: Child,
    pub(crate) socket: PathBuf,
}

impl CollectorProcess {
    pub(crate) fn start(dir: &std::path::Path, extra: &[&str]) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let socket = dir.join("logbook.sock");
        let db = dir.join("logbook.db");
        let child = Command::new(std::env::current_exe()?)
            .args(["collector", "serve", "--log", "warn", "--socket"])
            .arg(&socket)
            .arg("--db")
            .arg(&db)
            .args(extra)
            .stdout(Stdio::null())
            .spawn()
            .context("starting the collector")?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            if Instant::now() > deadline {
                bail!("collector did not start");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Self { child, socket })
    }
}

impl Drop for CollectorProcess {
    fn drop(&mut self) {
        // SIGTERM: commit what was received and exit.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::HotPathChild {
            config,
            scenario,
            iters,
            reps,
            socket,
            dir,
        } => hot_path::child(config, scenario, iters, reps, socket.as_deref(), &dir),
        Cmd::Collector { args } => {
            use clap::Parser as _;
            let cli = logbook_collector::cli::Cli::parse_from(
                std::iter::once("logbook".to_owned()).chain(args),
            );
            cli.run()
        }
        Cmd::HotPath {
            quick,
            rounds,
            reps,
            iters,
        } => {
            let plan = hot_path::Plan {
                rounds: rounds.unwrap_or(if quick { 1 } else { 5 }),
                reps: reps.unwrap_or(if quick { 3 } else { 7 }),
                iters: iters.unwrap_or(if quick { 10_000 } else { 50_000 }),
            };
            let dir = hot_path::scratch_dir();
            let collector = CollectorProcess::start(&dir.join("collector"), &[])?;
            let results = hot_path::run(&plan, &collector.socket, &dir)?;
            drop(collector);
            let _ = std::fs::remove_dir_all(&dir);
            println!("{}", hot_path::markdown(&results));
            Ok(())
        }
    }
}
