//! Archives: the records a purge is about to delete, written first as compressed JSON
//! Lines (the record contract), one file per UTC day and tenant under a new directory
//! `purge-<time>/`, with a `manifest.json` listing every file's record count and
//! SHA-256. Files are synced before anything is deleted. Restoring checks each file
//! against the manifest and stores its records again (those already stored are
//! skipped, by id).

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufRead, BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use logbook_proto::{Record, Timestamp, Value};
use sha2::{Digest, Sha256};

use super::BATCH;
use crate::audit::{admin_record, to_hex};
use crate::store::{Selection, StoreError, StoreWriter};

/// The manifest's file name.
pub const MANIFEST: &str = "manifest.json";

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

type Open = HashMap<String, (GzEncoder<BufWriter<File>>, u64)>;

/// Writes every record `selections` select to a new directory under `dir`.
pub(super) fn write_archive(
    store: &mut dyn StoreWriter,
    dir: &Path,
    now: Timestamp,
    selections: &[Selection],
) -> Result<ArchiveReport, StoreError> {
    let io = StoreError::io;
    let stamp = now.to_string().replace([':', '.'], "");
    let root = dir.join(format!("purge-{stamp}"));
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&root)
        .map_err(io(format!("creating {}", root.display())))?;
    let mut files: Open = HashMap::new();
    let mut done: Vec<(String, u64)> = Vec::new();
    let mut day = String::new();
    for selection in selections {
        store
            .scan_selected(selection, &mut |r| {
                let ts = r.ts.to_string();
                let this_day = &ts[..10];
                if this_day != day {
                    // Days come in order: close the previous day's files.
                    close_all(&mut files, &mut done)?;
                    day = this_day.to_owned();
                }
                let tenant = r.scope.tenant().map_or("_none".to_owned(), file_name);
                let rel = format!("{day}/{tenant}.jsonl.gz");
                let entry = match files.entry(rel.clone()) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(v) => {
                        let path = root.join(&rel);
                        if let Some(parent) = path.parent() {
                            fs::create_dir_all(parent)?;
                        }
                        // A later policy step may add to a day already closed: a new gzip
                        // member appended to the file is still one valid file.
                        let f = fs::OpenOptions::new()
                            .create(true)
                            .append(true)
                            .mode(0o600)
                            .open(&path)?;
                        v.insert((GzEncoder::new(BufWriter::new(f), Compression::default()), 0))
                    }
                };
                serde_json::to_writer(&mut entry.0, &r)?;
                entry.0.write_all(b"\n")?;
                entry.1 += 1;
                Ok(())
            })
            .map_err(|e| match e {
                // The visitor's own file errors, with the archive named.
                StoreError::Stopped(source) => StoreError::Io {
                    context: format!("writing archive {}", root.display()),
                    source,
                },
                other => other,
            })?;
        close_all(&mut files, &mut done).map_err(io(format!("writing {}", root.display())))?;
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
    let manifest = root.join(MANIFEST);
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

fn close_all(files: &mut Open, done: &mut Vec<(String, u64)>) -> io::Result<()> {
    for (path, (gz, n)) in files.drain() {
        let buf = gz.finish()?;
        let f = buf.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        done.push((path, n));
    }
    Ok(())
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

/// Brings back the records of an archive file (`*.jsonl.gz`) or of every file a
/// `manifest.json` lists, checking counts and SHA-256 against the manifest. Records
/// already stored (same id) are skipped. Audited. Returns (read, newly stored).
pub fn restore_archive(store: &mut dyn StoreWriter, path: &Path) -> Result<(u64, u64), StoreError> {
    let io = StoreError::io;
    let (root, wanted): (PathBuf, Vec<ArchiveFile>) =
        if path.file_name().is_some_and(|n| n == MANIFEST) {
            let text =
                fs::read_to_string(path).map_err(io(format!("reading {}", path.display())))?;
            let m: ArchiveReport = serde_json::from_str(&text)
                .map_err(|e| StoreError::invalid_data(format!("{}: {e}", path.display())))?;
            (path.parent().unwrap_or(Path::new(".")).to_owned(), m.files)
        } else {
            // A single file: its manifest is two levels up (archive/day/file).
            let root = path
                .parent()
                .and_then(Path::parent)
                .unwrap_or(Path::new("."))
                .to_owned();
            let listed = fs::read_to_string(root.join(MANIFEST))
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
    let (mut read, mut stored, mut skipped) = (0u64, 0u64, 0u64);
    for f in &wanted {
        let file = root.join(&f.path);
        let bytes = fs::read(&file).map_err(io(format!("reading {}", file.display())))?;
        if !f.sha256.is_empty() && to_hex(&Sha256::digest(&bytes)) != f.sha256 {
            return Err(StoreError::invalid_data(format!(
                "{}: SHA-256 differs from the manifest's (the file was altered)",
                file.display()
            )));
        }
        let mut batch = Vec::with_capacity(BATCH);
        let mut in_file = 0u64;
        let new = |written: Vec<bool>| written.iter().filter(|s| **s).count() as u64;
        for (i, line) in io::BufReader::new(MultiGzDecoder::new(&bytes[..]))
            .lines()
            .enumerate()
        {
            let line = line.map_err(io(format!("reading {}", file.display())))?;
            if line.trim().is_empty() {
                continue;
            }
            let r: Record = serde_json::from_str(&line).map_err(|e| {
                StoreError::invalid_data(format!("{} line {}: {e}", file.display(), i + 1))
            })?;
            in_file += 1;
            // The collector's own records stay in the trail they were written to: a
            // file claiming to hold one is not let in as the collector's.
            if crate::pipeline::reserved(&r).is_some() {
                skipped += 1;
                continue;
            }
            batch.push(r);
            if batch.len() == BATCH {
                stored += new(store.write(&batch)?);
                batch.clear();
            }
        }
        stored += new(store.write(&batch)?);
        if f.records != 0 && f.records != in_file {
            return Err(StoreError::invalid_data(format!(
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
            ("records.skipped", Value::U64(skipped)),
        ],
    );
    store.write(&[audit])?;
    Ok((read, stored))
}
