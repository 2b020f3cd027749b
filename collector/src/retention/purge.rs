//! Purging by the retention policies: each policy step becomes a selection (its class,
//! tenant, app and category, older than its age or beyond its newest N, fixed at the
//! stream position where the purge began); the selected records are counted, archived
//! if asked, then deleted in short transactions; audit records only as a prefix of the
//! chain, leaving a signed anchor. The purge is itself audited.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use logbook_proto::{Timestamp, Value};

use super::archive::{write_archive, ArchiveReport};
use super::{PurgeSpec, StorageClass, BATCH};
use crate::audit::admin_record;
use crate::store::{Selection, StoreError, StoreWriter};

/// How a purge runs.
#[derive(Clone, Debug, Default)]
pub struct PurgeOptions {
    /// Count what would be deleted; delete nothing.
    pub dry_run: bool,
    /// Archive the records to this directory before deleting them.
    pub archive_dir: Option<PathBuf>,
    /// What asked for it, for the audit record (`schedule`, `cli`).
    pub origin: String,
    /// Set to stop between two deleting transactions (the collector is stopping): what
    /// was deleted so far is reported and audited.
    pub stop: Option<Arc<AtomicBool>>,
}

/// The origin of the scheduled purge: it writes no audit record when it deleted
/// nothing.
pub const ORIGIN_SCHEDULE: &str = "schedule";

/// Held while a purge runs.
static RUNNING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// What a purge deleted (or, dry, would delete).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PurgeReport {
    /// Nothing was deleted.
    pub dry_run: bool,
    /// Ops records.
    pub ops: u64,
    /// Audit records (a prefix of the chain).
    pub audit: u64,
    /// Runs left without records, removed from the runs view.
    pub runs: u64,
    /// The anchor the audit prune left: the last pruned chain row.
    pub anchor: Option<u64>,
    /// Where the archive went, if any.
    pub archive: Option<ArchiveReport>,
    /// Per policy step: its description and how many records it matched.
    pub steps: Vec<(String, u64)>,
    /// It was stopped before it finished ([`PurgeOptions::stop`]).
    pub interrupted: bool,
}

/// Applies retention specs: deletes what each selects (after archiving it, if asked),
/// in short transactions; then gives the freed space back and writes an audit record
/// of what was done.
pub fn purge(
    store: &mut dyn StoreWriter,
    specs: &[PurgeSpec],
    now: Timestamp,
    opts: &PurgeOptions,
) -> Result<PurgeReport, StoreError> {
    // One purge at a time in a process (the schedule's, the API's): two would
    // archive the same records twice.
    let _one = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
    // Records committed from now on are never touched by this purge.
    let up_to = store.reader().stream_end()?;
    let mut report = PurgeReport {
        dry_run: opts.dry_run,
        ..PurgeReport::default()
    };
    let mut selections = Vec::new();
    for spec in specs {
        let Some(selection) = selection(store, spec, now, up_to)? else {
            continue;
        };
        let n = store.count_selected(&selection)?;
        report.steps.push((describe(spec), n));
        match spec.class {
            StorageClass::Ops if opts.dry_run => report.ops += n,
            StorageClass::Audit if opts.dry_run => report.audit += n,
            _ => {}
        }
        if n > 0 {
            selections.push(selection);
        }
    }
    if opts.dry_run {
        return Ok(report);
    }
    if let Some(dir) = &opts.archive_dir {
        if !selections.is_empty() {
            report.archive = Some(write_archive(store, dir, now, &selections)?);
        }
    }
    let stopped = || {
        opts.stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed))
    };
    'purge: for selection in &selections {
        loop {
            if stopped() {
                report.interrupted = true;
                break 'purge;
            }
            let d = store.delete_selected(selection, BATCH)?;
            if d.records == 0 {
                break;
            }
            match selection.class {
                StorageClass::Ops => report.ops += d.records,
                StorageClass::Audit => report.audit += d.records,
            }
            report.runs += d.runs;
            report.anchor = d.anchor.or(report.anchor);
        }
    }
    if !report.interrupted {
        store.compact()?;
    }
    if report.ops + report.audit == 0 && opts.origin == ORIGIN_SCHEDULE {
        return Ok(report); // nothing done: no audit record every interval
    }
    let mut fields = vec![
        ("origin", Value::Str(opts.origin.clone())),
        ("deleted.ops", Value::U64(report.ops)),
        ("deleted.audit", Value::U64(report.audit)),
        ("deleted.runs", Value::U64(report.runs)),
        (
            "policies",
            Value::Str(
                report
                    .steps
                    .iter()
                    .map(|(d, n)| format!("{d}: {n}"))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
        ),
    ];
    if let Some(a) = report.anchor {
        fields.push(("anchor", Value::U64(a)));
    }
    if let Some(a) = &report.archive {
        fields.push(("archive", Value::Str(a.dir.display().to_string())));
    }
    if report.interrupted {
        fields.push(("interrupted", Value::Bool(true)));
    }
    let audit = admin_record(
        "purge",
        format!(
            "Retention purge deleted {} ops and {} audit records.",
            report.ops, report.audit
        ),
        fields,
    );
    store.write(&[audit])?;
    Ok(report)
}

/// What one spec deletes: its records older than its age or beyond its newest N; for
/// audit records, only those below the first chain row it keeps. `None` when the spec
/// has no limit.
fn selection(
    store: &mut dyn StoreWriter,
    spec: &PurgeSpec,
    now: Timestamp,
    up_to: crate::store::StreamCursor,
) -> Result<Option<Selection>, StoreError> {
    let mut selection = Selection {
        class: spec.class,
        matching: spec.selector.clone(),
        except: spec.except.clone(),
        up_to: Some(up_to),
        ..Selection::default()
    };
    if spec.class == StorageClass::Audit {
        // Counting the newest N and finding the edge consider every audit record.
        selection.chain_below = Some(u64::MAX);
    }
    let mut limited = false;
    if let Some(count) = spec.max_count {
        if let Some(edge) = store.nth_newest_selected(&selection, count)? {
            selection.at_or_before = Some(edge);
        }
        limited = true;
    }
    if let Some(age) = spec.max_age {
        let age = i64::try_from(age.as_nanos()).unwrap_or(i64::MAX);
        selection.older_than = Some(Timestamp(now.as_nanos().saturating_sub(age)));
        limited = true;
    }
    if !limited {
        return Ok(None);
    }
    if spec.max_age.is_none() && selection.at_or_before.is_none() {
        return Ok(None); // fewer than N: nothing beyond the newest N
    }
    if spec.class == StorageClass::Audit {
        // Only a prefix of the chain can go: up to the first row to keep.
        selection.chain_below = Some(
            store
                .first_unselected_chain_row(&selection)?
                .unwrap_or(u64::MAX),
        );
    }
    Ok(Some(selection))
}

/// A spec in words: `ops records tenant=acme older than 30d`.
pub fn describe(spec: &PurgeSpec) -> String {
    let mut s = format!("{} records", spec.class.as_str());
    for (k, v) in [
        ("tenant", &spec.selector.tenant),
        ("app", &spec.selector.app),
        ("category", &spec.selector.category),
    ] {
        if let Some(v) = v {
            s.push_str(&format!(" {k}={v}"));
        }
    }
    if !spec.except.is_empty() {
        s.push_str(&format!(
            " (not matched by {} other rules)",
            spec.except.len()
        ));
    }
    if let Some(a) = spec.max_age {
        s.push_str(&format!(" older than {}", human_age(a)));
    }
    if let Some(c) = spec.max_count {
        s.push_str(&format!(" beyond the newest {c}"));
    }
    s
}

fn human_age(d: Duration) -> String {
    let s = d.as_secs();
    if s.is_multiple_of(86_400) {
        format!("{}d", s / 86_400)
    } else if s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}
