//! Deleting records: retention purges (optionally archiving first), DSAR deletion
//! and export, and restoring archives. Deletes run in short transactions so ingest
//! keeps flowing; audit rows change only here, holding the `audit_unlock` row of
//! `meta` for the length of a transaction, and the chain stays verifiable (a signed
//! anchor where a prune cut it, tombstones recorded by a DSAR audit record).

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufRead, BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use logbook_proto::{Json, Record, Timestamp, Value};
use rusqlite::types::Value as SqlValue;
use rusqlite::{params_from_iter, Connection, OptionalExtension, TransactionBehavior};
use sha2::{Digest, Sha256};

use super::calls;
use super::read::{record_from_row, COLUMNS};
use super::SqliteStore;
use crate::audit::{
    admin_record, to_hex, Checkpoint, CheckpointKind, DSAR_DELETE_NAME, TOMBSTONED_FIELD,
};
use crate::retention::{PurgeSpec, Selector, StorageClass};
use crate::store::{Store, StoreError};

/// Rows deleted per transaction: a transaction holds the write lock for tens of
/// milliseconds, so a collector writing beside the purge waits no longer than that.
const BATCH: usize = 200;

/// Spaces a purge's transactions so that a collector writing beside it comes first.
/// The other writer waits for the lock while a transaction holds it; after each one the
/// purge pauses, long enough for a waiting writer to take the lock, and
/// [`YIELD_FACTOR`] times as long as the transaction took whenever another connection
/// committed since the last pause (ingest is flowing).
struct Pacer {
    data_version: i64,
    since: std::time::Instant,
}

impl Pacer {
    fn new(conn: &Connection) -> Result<Self, StoreError> {
        Ok(Self {
            data_version: conn.query_row("PRAGMA data_version", [], |r| r.get(0))?,
            since: std::time::Instant::now(),
        })
    }

    /// Called after each commit.
    fn pause(&mut self, conn: &Connection) -> Result<(), StoreError> {
        // Changes only when another connection commits.
        let version: i64 = conn.query_row("PRAGMA data_version", [], |r| r.get(0))?;
        let shared = version != self.data_version;
        self.data_version = version;
        let held = self.since.elapsed();
        let min = std::time::Duration::from_millis(2);
        std::thread::sleep(if shared {
            (held * YIELD_FACTOR).max(min)
        } else {
            min
        });
        self.since = std::time::Instant::now();
        Ok(())
    }
}

/// While others write, a purge pauses this many times as long as its last transaction
/// held the lock: it takes at most a quarter of the writing time.
const YIELD_FACTOR: u32 = 3;

/// How a purge runs.
#[derive(Clone, Debug, Default)]
pub struct PurgeOptions {
    /// Count what would be deleted; delete nothing.
    pub dry_run: bool,
    /// Archive the records to this directory before deleting them.
    pub archive_dir: Option<PathBuf>,
    /// What asked for it, for the audit record (`schedule`, `cli`).
    pub origin: String,
}

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
}

/// An archive written before deletion.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ArchiveReport {
    /// The archive's directory (holds `manifest.json`).
    pub dir: PathBuf,
    /// Files, with their record counts and SHA-256.
    pub files: Vec<ArchiveFile>,
}

/// One compressed JSON Lines file of an archive: one day, one tenant.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ArchiveFile {
    /// Path relative to the archive's directory.
    pub path: String,
    /// Records in it.
    pub records: u64,
    /// SHA-256 of the file, hex.
    pub sha256: String,
}

/// Whose data a DSAR request is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    /// A user id.
    User(String),
    /// A tenant.
    Tenant(String),
}

impl Subject {
    fn column(&self) -> &'static str {
        match self {
            Self::User(_) => "user_id",
            Self::Tenant(_) => "tenant",
        }
    }

    fn value(&self) -> &str {
        match self {
            Self::User(v) | Self::Tenant(v) => v,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::User(_) => "user",
            Self::Tenant(_) => "tenant",
        }
    }
}

/// What a DSAR deletion did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DsarReport {
    /// Ops records deleted.
    pub deleted: u64,
    /// Audit records whose payload was replaced by a tombstone.
    pub tombstoned: u64,
    /// Quarantined records deleted.
    pub quarantined: u64,
}

/// A `WHERE` condition with its parameters.
#[derive(Clone, Debug, Default)]
struct Cond {
    sql: String,
    params: Vec<SqlValue>,
}

impl Cond {
    fn and(&mut self, sql: &str, params: impl IntoIterator<Item = SqlValue>) {
        if !self.sql.is_empty() {
            self.sql.push_str(" AND ");
        }
        self.sql.push_str(sql);
        self.params.extend(params);
    }
}

fn selector_sql(s: &Selector) -> Option<(String, Vec<SqlValue>)> {
    let mut parts = Vec::new();
    let mut params = Vec::new();
    for (col, v) in [
        ("tenant", &s.tenant),
        ("app", &s.app),
        ("category", &s.category),
    ] {
        if let Some(v) = v {
            parts.push(format!("{col} IS ?"));
            params.push(SqlValue::Text(v.clone()));
        }
    }
    (!parts.is_empty()).then(|| (parts.join(" AND "), params))
}

fn describe(spec: &PurgeSpec) -> String {
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

fn human_age(d: std::time::Duration) -> String {
    let s = d.as_secs();
    if s % 86_400 == 0 {
        format!("{}d", s / 86_400)
    } else if s % 3600 == 0 {
        format!("{}h", s / 3600)
    } else if s % 60 == 0 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

impl SqliteStore {
    fn unlock(conn: &Connection) -> Result<(), StoreError> {
        conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('audit_unlock', 1)",
            [],
        )?;
        Ok(())
    }

    fn relock(conn: &Connection) -> Result<(), StoreError> {
        conn.execute("DELETE FROM meta WHERE key = 'audit_unlock'", [])?;
        Ok(())
    }

    /// The records one spec deletes, as a condition on `records`, fixed at `max_seq`.
    fn spec_cond(
        &self,
        spec: &PurgeSpec,
        now: Timestamp,
        max_seq: i64,
    ) -> Result<Option<Cond>, StoreError> {
        let mut base = Cond::default();
        base.and("class = ?", [SqlValue::Integer(spec.class.code())]);
        base.and("seq <= ?", [SqlValue::Integer(max_seq)]);
        if let Some((sql, params)) = selector_sql(&spec.selector) {
            base.and(&format!("({sql})"), params);
        }
        for e in &spec.except {
            if let Some((sql, params)) = selector_sql(e) {
                base.and(&format!("NOT ({sql})"), params);
            }
        }
        let mut limits = Vec::new();
        let mut limit_params = Vec::new();
        if let Some(age) = spec.max_age {
            let cutoff = now.as_nanos().saturating_sub(age.as_nanos() as i64);
            limits.push("ts < ?".to_owned());
            limit_params.push(SqlValue::Integer(cutoff));
        }
        if let Some(count) = spec.max_count {
            let sql = format!(
                "SELECT ts, seq FROM records WHERE {} ORDER BY ts DESC, seq DESC LIMIT 1 OFFSET ?",
                base.sql
            );
            let mut params = base.params.clone();
            params.push(SqlValue::Integer(count.min(i64::MAX as u64) as i64));
            let edge: Option<(i64, i64)> = self
                .conn
                .query_row(&sql, params_from_iter(params), |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()?;
            if let Some((ts, seq)) = edge {
                limits.push("(ts < ? OR (ts = ? AND seq <= ?))".to_owned());
                limit_params.extend([
                    SqlValue::Integer(ts),
                    SqlValue::Integer(ts),
                    SqlValue::Integer(seq),
                ]);
            }
        }
        if limits.is_empty() {
            return Ok(None);
        }
        base.and(&format!("({})", limits.join(" OR ")), limit_params);
        if spec.class == StorageClass::Audit {
            // Only a prefix of the chain can go: up to the first row to keep.
            let keep: Option<i64> = self
                .conn
                .query_row(
                    &format!(
                        "SELECT c.n FROM audit_chain c JOIN records r ON r.seq = c.record_seq
                         WHERE NOT (r.seq IN (SELECT seq FROM records WHERE {}))
                         ORDER BY c.n LIMIT 1",
                        base.sql
                    ),
                    params_from_iter(base.params.clone()),
                    |r| r.get(0),
                )
                .optional()?;
            let mut prefix = Cond::default();
            match keep {
                Some(n) => prefix.and(
                    "seq IN (SELECT record_seq FROM audit_chain WHERE n < ?)",
                    [SqlValue::Integer(n)],
                ),
                None => prefix.and("seq IN (SELECT record_seq FROM audit_chain)", []),
            }
            prefix.and(&format!("({})", base.sql), base.params);
            return Ok(Some(prefix));
        }
        Ok(Some(base))
    }

    /// Applies retention specs: deletes what each matches (after archiving it, if
    /// asked), in short transactions, keeping counters, the runs view and the audit
    /// chain consistent; then gives the freed pages back to the file system and writes
    /// an audit record of what was done.
    pub fn purge(
        &mut self,
        specs: &[PurgeSpec],
        now: Timestamp,
        opts: &PurgeOptions,
    ) -> Result<PurgeReport, StoreError> {
        let max_seq: i64 =
            self.conn
                .query_row("SELECT coalesce(max(seq), 0) FROM records", [], |r| {
                    r.get(0)
                })?;
        let mut report = PurgeReport {
            dry_run: opts.dry_run,
            ..PurgeReport::default()
        };
        let mut conds = Vec::new();
        for spec in specs {
            let Some(cond) = self.spec_cond(spec, now, max_seq)? else {
                continue;
            };
            let n: i64 = self.conn.query_row(
                &format!("SELECT count(*) FROM records WHERE {}", cond.sql),
                params_from_iter(cond.params.clone()),
                |r| r.get(0),
            )?;
            report.steps.push((describe(spec), n as u64));
            if n > 0 {
                conds.push((spec.class, cond));
            }
        }
        if opts.dry_run {
            for ((_, n), spec) in report.steps.iter().zip(specs) {
                match spec.class {
                    StorageClass::Ops => report.ops += n,
                    StorageClass::Audit => report.audit += n,
                }
            }
            return Ok(report);
        }
        if let Some(dir) = &opts.archive_dir {
            if !conds.is_empty() {
                report.archive = Some(self.archive(dir, now, &conds)?);
            }
        }
        for (class, cond) in &conds {
            let (deleted, runs, anchor) = self.delete_where(cond, *class == StorageClass::Audit)?;
            match class {
                StorageClass::Ops => report.ops += deleted,
                StorageClass::Audit => report.audit += deleted,
            }
            report.runs += runs;
            report.anchor = anchor.or(report.anchor);
        }
        self.vacuum()?;
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
        if report.ops + report.audit == 0 && opts.origin == "schedule" {
            return Ok(report); // nothing done: no audit record every interval
        }
        let audit = admin_record(
            "purge",
            format!(
                "Retention purge deleted {} ops and {} audit records.",
                report.ops, report.audit
            ),
            fields,
        );
        self.write(&[audit], &[])?;
        Ok(report)
    }

    /// Deletes every record matching `cond`, `BATCH` per transaction. Returns records
    /// deleted, runs removed, and the anchor left if audit rows went.
    fn delete_where(
        &mut self,
        cond: &Cond,
        audit: bool,
    ) -> Result<(u64, u64, Option<u64>), StoreError> {
        let (mut deleted, mut runs_removed, mut anchor) = (0u64, 0u64, None);
        let select = format!(
            "SELECT seq, kind, level, run_id FROM records WHERE {} LIMIT {BATCH}",
            cond.sql
        );
        let mut pacer = Pacer::new(&self.conn)?;
        loop {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            let rows: Vec<(i64, i64, i64, Option<String>)> = tx
                .prepare(&select)?
                .query_map(params_from_iter(cond.params.clone()), |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })?
                .collect::<Result<_, _>>()?;
            if rows.is_empty() {
                break;
            }
            if audit {
                Self::unlock(&tx)?;
                let seqs: Vec<String> = rows.iter().map(|r| r.0.to_string()).collect();
                let (n, chain): (i64, Vec<u8>) = tx.query_row(
                    &format!(
                        "SELECT n, chain_hash FROM audit_chain WHERE record_seq IN ({})
                         ORDER BY n DESC LIMIT 1",
                        seqs.join(",")
                    ),
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
                let pruned = tx.execute("DELETE FROM audit_chain WHERE n <= ?1", [n])?;
                let trust = self.trust.as_ref().ok_or_else(super::read_only)?;
                let chain: [u8; 32] =
                    chain
                        .as_slice()
                        .try_into()
                        .map_err(|_| StoreError::Corrupt {
                            seq: n,
                            message: "audit chain hash is not 32 bytes".into(),
                        })?;
                Checkpoint::sign(
                    &trust.keys,
                    CheckpointKind::Anchor,
                    n as u64,
                    chain,
                    pruned as u64,
                )
                .save(&tx, &trust.policy.file)?;
                anchor = Some(n as u64);
            }
            let mut counts: HashMap<(i64, i64), i64> = HashMap::new();
            let mut runs: HashMap<String, i64> = HashMap::new();
            let mut call_runs = Vec::new();
            {
                let mut del = tx.prepare_cached("DELETE FROM records WHERE seq = ?1")?;
                let mut fts = tx.prepare_cached("DELETE FROM records_fts WHERE rowid = ?1")?;
                for (seq, kind, level, run) in &rows {
                    del.execute([seq])?;
                    fts.execute([seq])?;
                    call_runs.extend(calls::forget(&tx, *seq)?);
                    *counts.entry((*kind, *level)).or_default() += 1;
                    if let Some(run) = run {
                        *runs.entry(run.clone()).or_default() += 1;
                    }
                }
            }
            for ((kind, level), n) in counts {
                tx.execute(
                    "UPDATE record_counts SET n = max(n - ?3, 0) WHERE kind = ?1 AND level = ?2",
                    [kind, level, n],
                )?;
            }
            for (run, n) in runs {
                tx.execute(
                    "UPDATE runs SET record_count = record_count - ?2 WHERE run_id = ?1",
                    rusqlite::params![run, n],
                )?;
                runs_removed += tx.execute(
                    "DELETE FROM runs WHERE run_id = ?1 AND record_count <= 0",
                    [&run],
                )? as u64;
            }
            // Runs that lost calls but not all their records: their call totals again.
            call_runs.sort_unstable();
            call_runs.dedup();
            for run in &call_runs {
                tx.execute(calls::REFRESH_RUN, [run])?;
            }
            if audit {
                Self::relock(&tx)?;
            }
            tx.commit()?;
            deleted += rows.len() as u64;
            pacer.pause(&self.conn)?;
        }
        Ok((deleted, runs_removed, anchor))
    }

    /// Gives free pages back to the file system, a slice at a time.
    fn vacuum(&self) -> Result<(), StoreError> {
        let mode: i64 = self
            .conn
            .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))?;
        if mode != 2 {
            return Ok(()); // made before incremental vacuum was the default
        }
        let mut pacer = Pacer::new(&self.conn)?;
        let mut before = i64::MAX;
        loop {
            let free: i64 = self
                .conn
                .query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
            if free == 0 || free >= before {
                return Ok(());
            }
            before = free;
            // 256 pages (1 MiB) a transaction, as moving pages holds the write lock;
            // stepped to the end, as each step frees one page (`execute_batch` and
            // `query_row` step once).
            let mut stmt = self.conn.prepare_cached("PRAGMA incremental_vacuum(256)")?;
            let mut rows = stmt.query([])?;
            while rows.next()?.is_some() {}
            pacer.pause(&self.conn)?;
        }
    }

    /// Writes every record matching `conds` to compressed JSON Lines files, one per
    /// day and tenant, under a new directory of `dir`, with a manifest. Files are
    /// synced before anything is deleted.
    fn archive(
        &self,
        dir: &Path,
        now: Timestamp,
        conds: &[(StorageClass, Cond)],
    ) -> Result<ArchiveReport, StoreError> {
        let io = |context: String| move |source| StoreError::Io { context, source };
        let stamp = now.to_string().replace([':', '.'], "");
        let root = dir.join(format!("purge-{stamp}"));
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&root)
            .map_err(io(format!("creating {}", root.display())))?;
        let mut files: HashMap<String, (GzEncoder<BufWriter<File>>, u64)> = HashMap::new();
        let mut done: Vec<(String, u64)> = Vec::new();
        let mut day = String::new();
        for (_, cond) in conds {
            let sql = format!(
                "SELECT {COLUMNS} FROM records WHERE {} ORDER BY ts, seq",
                cond.sql
            );
            let mut stmt = self.conn.prepare(&sql)?;
            let mut rows = stmt.query(params_from_iter(cond.params.clone()))?;
            while let Some(row) = rows.next()? {
                let r = record_from_row(row)?;
                let ts = r.ts.to_string();
                let this_day = &ts[..10];
                if this_day != day {
                    // Days come in order: close the previous day's files.
                    for (path, (gz, n)) in files.drain() {
                        finish(gz).map_err(io(format!("writing {path}")))?;
                        done.push((path, n));
                    }
                    day = this_day.to_owned();
                }
                let tenant = r.scope.tenant().map_or("_none".to_owned(), file_name);
                let rel = format!("{day}/{tenant}.jsonl.gz");
                let entry = match files.entry(rel.clone()) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(v) => {
                        let path = root.join(&rel);
                        if let Some(parent) = path.parent() {
                            fs::create_dir_all(parent)
                                .map_err(io(format!("creating {}", parent.display())))?;
                        }
                        // A later policy step may add to a day already closed: a new
                        // gzip member appended to the file is still one valid file.
                        let f = fs::OpenOptions::new()
                            .create(true)
                            .append(true)
                            .mode(0o600)
                            .open(&path)
                            .map_err(io(format!("creating {}", path.display())))?;
                        v.insert((GzEncoder::new(BufWriter::new(f), Compression::default()), 0))
                    }
                };
                serde_json::to_writer(&mut entry.0, &r)
                    .map_err(|e| io(format!("writing {rel}"))(e.into()))?;
                entry
                    .0
                    .write_all(b"\n")
                    .map_err(io(format!("writing {rel}")))?;
                entry.1 += 1;
            }
            for (path, (gz, n)) in files.drain() {
                finish(gz).map_err(io(format!("writing {path}")))?;
                done.push((path, n));
            }
            day.clear();
        }
        let mut totals: HashMap<String, u64> = HashMap::new();
        for (path, n) in done {
            *totals.entry(path).or_default() += n;
        }
        let mut report = ArchiveReport {
            dir: root.clone(),
            files: Vec::new(),
        };
        let mut paths: Vec<_> = totals.into_iter().collect();
        paths.sort();
        for (path, records) in paths {
            let bytes = fs::read(root.join(&path)).map_err(io(format!("reading back {path}")))?;
            report.files.push(ArchiveFile {
                path,
                records,
                sha256: to_hex(&Sha256::digest(&bytes)),
            });
        }
        let manifest = root.join("manifest.json");
        let text = serde_json::to_string_pretty(&report).unwrap_or_default();
        let mut f = fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(0o600)
            .open(&manifest)
            .map_err(io(format!("creating {}", manifest.display())))?;
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(io(format!("writing {}", manifest.display())))?;
        Ok(report)
    }

    /// Brings back the records of an archive file (`*.jsonl.gz`) or of every file a
    /// `manifest.json` lists, checking counts and SHA-256 against the manifest.
    /// Records already stored (same id) are skipped. Returns (read, newly stored).
    pub fn restore_archive(&mut self, path: &Path) -> Result<(u64, u64), StoreError> {
        let io = |context: String| move |source| StoreError::Io { context, source };
        let invalid = |context: String| StoreError::Io {
            context,
            source: io::Error::from(io::ErrorKind::InvalidData),
        };
        let (root, wanted): (PathBuf, Vec<ArchiveFile>) =
            if path.file_name().is_some_and(|n| n == "manifest.json") {
                let text =
                    fs::read_to_string(path).map_err(io(format!("reading {}", path.display())))?;
                let m: ArchiveReport = serde_json::from_str(&text)
                    .map_err(|e| invalid(format!("{}: {e}", path.display())))?;
                (path.parent().unwrap_or(Path::new(".")).to_owned(), m.files)
            } else {
                // A single file: its manifest is two levels up (archive/day/file).
                let root = path
                    .parent()
                    .and_then(Path::parent)
                    .unwrap_or(Path::new("."))
                    .to_owned();
                let listed = fs::read_to_string(root.join("manifest.json"))
                    .ok()
                    .and_then(|t| serde_json::from_str::<ArchiveReport>(&t).ok())
                    .and_then(|m| m.files.into_iter().find(|f| root.join(&f.path) == path));
                match listed {
                    Some(f) => (root, vec![f]),
                    None => (
                        PathBuf::new(),
                        vec![ArchiveFile {
                            path: path.display().to_string(),
                            records: 0,
                            sha256: String::new(),
                        }],
                    ),
                }
            };
        let (mut read, mut stored) = (0u64, 0u64);
        for f in &wanted {
            let file = root.join(&f.path);
            let bytes = fs::read(&file).map_err(io(format!("reading {}", file.display())))?;
            if !f.sha256.is_empty() && to_hex(&Sha256::digest(&bytes)) != f.sha256 {
                return Err(invalid(format!(
                    "{}: SHA-256 differs from the manifest's (the file was altered)",
                    file.display()
                )));
            }
            let mut batch = Vec::with_capacity(BATCH);
            let mut in_file = 0u64;
            for (i, line) in io::BufReader::new(MultiGzDecoder::new(&bytes[..]))
                .lines()
                .enumerate()
            {
                let line = line.map_err(io(format!("reading {}", file.display())))?;
                if line.trim().is_empty() {
                    continue;
                }
                let r: Record = serde_json::from_str(&line)
                    .map_err(|e| invalid(format!("{} line {}: {e}", file.display(), i + 1)))?;
                batch.push(r);
                in_file += 1;
                if batch.len() == BATCH {
                    stored += self.write(&batch, &[])?.iter().filter(|s| **s).count() as u64;
                    batch.clear();
                }
            }
            stored += self.write(&batch, &[])?.iter().filter(|s| **s).count() as u64;
            if f.records != 0 && f.records != in_file {
                return Err(invalid(format!(
                    "{}: {in_file} records, the manifest says {}",
                    file.display(),
                    f.records
                )));
            }
            read += in_file;
        }
        let audit = admin_record(
            "archive_restore",
            format!(
                "Restored {stored} records ({read} read) from {}.",
                path.display()
            ),
            vec![
                ("archive", Value::Str(path.display().to_string())),
                ("records.read", Value::U64(read)),
                ("records.restored", Value::U64(stored)),
            ],
        );
        self.write(&[audit], &[])?;
        Ok((read, stored))
    }

    /// Writes every record of `subject` (and its quarantined records) as JSON Lines to
    /// `out`, and an audit record of the export. Returns how many.
    pub fn dsar_export(
        &mut self,
        subject: &Subject,
        out: &mut dyn Write,
    ) -> Result<u64, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM records WHERE {} = ?1 ORDER BY ts, seq",
            subject.column()
        );
        let mut n = 0u64;
        {
            let mut stmt = self.conn.prepare(&sql)?;
            let mut rows = stmt.query([subject.value()])?;
            while let Some(row) = rows.next()? {
                let r = record_from_row(row)?;
                serde_json::to_writer(&mut *out, &r).map_err(|e| StoreError::Stopped(e.into()))?;
                out.write_all(b"\n").map_err(StoreError::Stopped)?;
                n += 1;
            }
        }
        out.flush().map_err(StoreError::Stopped)?;
        let audit = admin_record(
            "dsar_export",
            format!("Exported {n} records of a {} (DSAR).", subject.kind()),
            vec![
                ("subject.kind", Value::Str(subject.kind().into())),
                (
                    "subject.pseudonym",
                    Value::Str(self.pseudonym(subject.value())),
                ),
                ("records", Value::U64(n)),
            ],
        );
        self.write(&[audit], &[])?;
        Ok(n)
    }

    /// A keyed pseudonym of `value`: correlatable, not reversible.
    fn pseudonym(&self, value: &str) -> String {
        use hmac::{Hmac, Mac};
        let Some(trust) = &self.trust else {
            return String::new();
        };
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(trust.keys.pseudonym_key())
            .unwrap_or_else(|_| unreachable!());
        mac.update(value.as_bytes());
        to_hex(&mac.finalize().into_bytes()[..8])
    }

    /// Deletes `subject`'s ops and quarantined records and replaces the payload of its
    /// audit records by tombstones (the chain stays verifiable: the DSAR audit record,
    /// written first, lists the rows it tombstones).
    pub fn dsar_delete(&mut self, subject: &Subject) -> Result<DsarReport, StoreError> {
        let col = subject.column();
        // The audit rows to tombstone, as ranges of the chain.
        let ns: Vec<i64> = self
            .conn
            .prepare(&format!(
                "SELECT c.n FROM audit_chain c JOIN records r ON r.seq = c.record_seq
                 WHERE r.{col} = ?1 AND c.tombstone = 0 ORDER BY c.n"
            ))?
            .query_map([subject.value()], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let mut ranges: Vec<(i64, i64)> = Vec::new();
        for n in &ns {
            match ranges.last_mut() {
                Some((_, b)) if *b + 1 == *n => *b = *n,
                _ => ranges.push((*n, *n)),
            }
        }
        let ops: i64 = self.conn.query_row(
            &format!("SELECT count(*) FROM records WHERE {col} = ?1 AND class = 0"),
            [subject.value()],
            |r| r.get(0),
        )?;
        let ranges_json = serde_json::to_string(&ranges).unwrap_or_else(|_| "[]".into());
        let audit = admin_record(
            "dsar.delete",
            format!(
                "DSAR deletion for a {}: {ops} ops records deleted, {} audit records tombstoned.",
                subject.kind(),
                ns.len()
            ),
            vec![
                ("subject.kind", Value::Str(subject.kind().into())),
                (
                    "subject.pseudonym",
                    Value::Str(self.pseudonym(subject.value())),
                ),
                ("deleted.ops", Value::U64(ops as u64)),
                ("tombstoned.audit", Value::U64(ns.len() as u64)),
                (
                    TOMBSTONED_FIELD,
                    Value::Json(Json::parse(ranges_json).map_err(|e| StoreError::Corrupt {
                        seq: 0,
                        message: e.to_string(),
                    })?),
                ),
            ],
        );
        debug_assert_eq!(audit.name, DSAR_DELETE_NAME);
        self.write(&[audit], &[])?;

        let mut report = DsarReport::default();
        let cond = Cond {
            sql: format!("{col} = ? AND class = 0"),
            params: vec![SqlValue::Text(subject.value().to_owned())],
        };
        report.deleted = self.delete_where(&cond, false)?.0;
        for chunk in ns.chunks(BATCH) {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            Self::unlock(&tx)?;
            for n in chunk {
                let seq: i64 = tx.query_row(
                    "SELECT record_seq FROM audit_chain WHERE n = ?1",
                    [n],
                    |r| r.get(0),
                )?;
                tx.execute(
                    "UPDATE records SET message = NULL, fields = '{\"tombstone\":true}',
                            user_id = NULL, session_id = NULL, request_id = NULL,
                            tenant = CASE WHEN ?2 = 'tenant' THEN NULL ELSE tenant END
                     WHERE seq = ?1",
                    rusqlite::params![seq, subject.kind()],
                )?;
                tx.execute("DELETE FROM records_fts WHERE rowid = ?1", [seq])?;
                if let Some(run) = calls::forget(&tx, seq)? {
                    tx.execute(calls::REFRESH_RUN, [run])?;
                }
                tx.execute("UPDATE audit_chain SET tombstone = 1 WHERE n = ?1", [n])?;
            }
            Self::relock(&tx)?;
            tx.commit()?;
            report.tombstoned += chunk.len() as u64;
        }
        let q_col = match subject {
            Subject::User(_) => "$.user_id",
            Subject::Tenant(_) => "$.tenant",
        };
        report.quarantined = self.conn.execute(
            "DELETE FROM quarantine WHERE json_extract(record, ?1) = ?2",
            rusqlite::params![q_col, subject.value()],
        )? as u64;
        self.vacuum()?;
        Ok(report)
    }
}

fn finish(gz: GzEncoder<BufWriter<File>>) -> io::Result<()> {
    let buf = gz.finish()?;
    let f = buf.into_inner().map_err(|e| e.into_error())?;
    f.sync_all()
}

/// A tenant name made safe as a file name.
fn file_name(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}
