//! Monitoring's cost: the same flat-out emitter (a mix of log lines, database spans
//! and errors) into a collector with the monitor off and on, alternating, in one run;
//! and how long after ingest ended the monitor had read everything stored.

use std::path::Path;

use logbook_collector::store::{open_reader, StoreAddress};

use crate::sustained::{Emitter, MIX_ENV};
use crate::CollectorProcess;

/// Both sides' stored rates, per round.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct MonitorRun {
    pub(crate) seconds: f64,
    pub(crate) off_rps: Vec<f64>,
    pub(crate) on_rps: Vec<f64>,
    /// Records committed after the monitor's cursor when the emitter's last record was
    /// acknowledged.
    pub(crate) behind: Vec<u64>,
    /// Seconds from then until the monitor had read everything.
    pub(crate) caught_up_secs: Vec<f64>,
    pub(crate) stored: Vec<u64>,
}

pub(crate) fn run(dir: &Path, seconds: f64, rounds: usize) -> anyhow::Result<MonitorRun> {
    let mut r = MonitorRun {
        seconds,
        off_rps: Vec::new(),
        on_rps: Vec::new(),
        behind: Vec::new(),
        caught_up_secs: Vec::new(),
        stored: Vec::new(),
    };
    for round in 0..rounds {
        for mode in ["off", "on"] {
            let cdir = dir.join(format!("monitor-{mode}-{round}"));
            let _ = std::fs::remove_dir_all(&cdir);
            let collector = CollectorProcess::start(&cdir, &["--monitor", mode])?;
            let emitter = Emitter::start_with(&collector, 0.0, seconds, &[(MIX_ENV, "1")])?;
            let mut lag = None;
            let done = emitter.finish_then(&format!("monitor {mode}"), collector, 0, |db| {
                if mode == "on" {
                    lag = Some(catch_up_time(db)?);
                }
                Ok(())
            })?;
            eprintln!(
                "monitor {mode}, round {round}: {:.0} records/s {lag:?}",
                done.stored_rps
            );
            if let Some((behind, secs)) = lag {
                r.on_rps.push(done.stored_rps);
                r.stored.push(done.stored);
                r.behind.push(behind);
                r.caught_up_secs.push(secs);
            } else {
                r.off_rps.push(done.stored_rps);
            }
        }
    }
    Ok(r)
}

/// Records behind the monitor now, and the seconds until it has read them all.
fn catch_up_time(db: &Path) -> anyhow::Result<(u64, f64)> {
    let store = open_reader(&StoreAddress::sqlite(db))?;
    let start = std::time::Instant::now();
    let end = store.stream_end()?;
    let behind = |s: &dyn logbook_collector::store::StoreReader| -> anyhow::Result<u64> {
        let kept = s.monitor_cursor()?.map_or(0, |c| c.backend_position());
        Ok(end.backend_position().saturating_sub(kept))
    };
    let first = behind(store.as_ref())?;
    while behind(store.as_ref())? > 0 {
        if start.elapsed() > std::time::Duration::from_secs(300) {
            anyhow::bail!("the monitor did not catch up in 5 minutes");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Ok((first, start.elapsed().as_secs_f64()))
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

pub(crate) fn markdown(r: &MonitorRun) -> String {
    let (off, on) = (median(&r.off_rps), median(&r.on_rps));
    format!(
        "{} rounds of {:.0} s flat out, alternating; medians:\n\n\
         | collector | stored records/s | vs off |\n|---|---|---|\n\
         | monitor off | {off:.0} | 1.00x |\n\
         | monitor on (exceptions, span metrics, log volume) | {on:.0} | {:.2}x |\n\n\
         When the last record was acknowledged the monitor was {:?} records behind (of {:?} stored); it had read them all {:?} s later.\n",
        r.off_rps.len(),
        r.seconds,
        on / off.max(1.0),
        r.behind,
        r.stored,
        r.caught_up_secs.iter().map(|s| (s * 100.0).round() / 100.0).collect::<Vec<_>>(),
    )
}
