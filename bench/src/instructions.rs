//! Instructions per iteration on the emitting thread, counted by callgrind: unlike
//! times, repeatable on a shared machine (the same binary and inputs give the same
//! count whatever else runs), so a change to the hot path shows to the percent.
//!
//! Each (configuration, scenario) runs as the `hot-path` child under
//! `valgrind --tool=callgrind --separate-threads=yes`, collecting only inside the
//! scenario's loop (`--toggle-collect`), and the main thread's total is divided by the
//! iterations it ran (a warm-up pass and the repetitions). The socket configuration
//! sends to a collector running natively beside it.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};
use clap::ValueEnum;

use crate::hot_path::{Config, Scenario};
use crate::CollectorProcess;

/// Repetitions after the warm-up pass, as in `hot-path`.
const REPS: usize = 2;

/// The configurations counted: logbook's sinks, the floor and the JSON formatter.
const CONFIGS: [Config; 4] = [
    Config::Noop,
    Config::FmtJson,
    Config::LogbookSocket,
    Config::LogbookEmbedded,
];

/// One count.
#[derive(Debug, serde::Serialize)]
pub(crate) struct Count {
    pub(crate) scenario: Scenario,
    pub(crate) config: Config,
    pub(crate) instructions: u64,
    pub(crate) iterations: u64,
}

impl Count {
    pub(crate) fn per_iteration(&self) -> f64 {
        self.instructions as f64 / self.iterations as f64
    }
}

/// Counts every configuration and scenario with `iters` iterations per repetition
/// (lifecycles a fifth of them).
pub(crate) fn run(dir: &Path, iters: u64) -> anyhow::Result<Vec<Count>> {
    let valgrind = Command::new("valgrind").arg("--version").output();
    if !valgrind.is_ok_and(|o| o.status.success()) {
        bail!("valgrind is not installed (apt-get install valgrind)");
    }
    std::fs::create_dir_all(dir)?;
    let collector = CollectorProcess::start(&dir.join("collector"), &[])?;
    let exe = std::env::current_exe()?;
    let mut out = Vec::new();
    for scenario in Scenario::ALL {
        let n = match scenario {
            Scenario::Lifecycle => (iters / 5).max(1),
            _ => iters,
        };
        for config in CONFIGS {
            let name = config.to_possible_value().context("a value")?;
            let child_dir = dir.join(format!("{}-{:?}", name.get_name(), scenario));
            std::fs::create_dir_all(&child_dir)?;
            let cg = child_dir.join("callgrind.out");
            let status = Command::new("valgrind")
                .args([
                    "--tool=callgrind",
                    "--separate-threads=yes",
                    "--toggle-collect=*run_scenario*",
                ])
                .arg(format!("--callgrind-out-file={}", cg.display()))
                .arg(&exe)
                .args(["hot-path-child", "--config", name.get_name(), "--scenario"])
                .arg(scenario.to_possible_value().context("a value")?.get_name())
                .args([
                    "--iters",
                    &n.to_string(),
                    "--reps",
                    &REPS.to_string(),
                    "--socket",
                ])
                .arg(&collector.socket)
                .arg("--dir")
                .arg(&child_dir)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()?;
            if !status.success() {
                bail!("callgrind of {config:?} {scenario:?} failed: {status}");
            }
            out.push(Count {
                scenario,
                config,
                instructions: main_thread_total(&cg)?,
                iterations: n * (1 + REPS as u64),
            });
        }
    }
    Ok(out)
}

/// The instructions callgrind counted on the main thread (its file ends in `-01`).
fn main_thread_total(base: &Path) -> anyhow::Result<u64> {
    let dir = base.parent().unwrap_or(Path::new("."));
    let stem = base
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_owned();
    let file: PathBuf = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&stem) && n.ends_with("-01"))
        })
        .context("no callgrind output for the main thread")?;
    let text = std::fs::read_to_string(&file)?;
    text.lines()
        .find_map(|l| {
            l.strip_prefix("summary: ")
                .or_else(|| l.strip_prefix("totals: "))
        })
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("no total in the callgrind output")
}

/// The table: instructions per iteration, and logbook's as a share of fmt JSON's.
pub(crate) fn markdown(counts: &[Count]) -> String {
    let mut s = String::from(
        "| scenario | configuration | instructions per iteration | share of fmt JSON + non_blocking |\n|---|---|---|---|\n",
    );
    for c in counts {
        let fmt = counts
            .iter()
            .find(|f| f.scenario == c.scenario && f.config == Config::FmtJson)
            .map(Count::per_iteration);
        s.push_str(&format!(
            "| {} | {} | {:.0} | {} |\n",
            c.scenario.label(),
            c.config.label(),
            c.per_iteration(),
            fmt.map_or_else(|| "-".into(), |f| format!("{:.3}", c.per_iteration() / f)),
        ));
    }
    s
}
