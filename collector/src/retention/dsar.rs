//! Data subject requests: export every record of a user or tenant, or delete them.
//! Deletion removes their ops and quarantined records and replaces the payload of
//! their audit records by tombstones; the DSAR's own audit record, written first,
//! lists the chain rows it tombstones (how many, never whom), so the chain verifies.

use std::io::Write;

use logbook_proto::{Json, Value};
use sha2::Sha256;

use super::{StorageClass, BATCH};
use crate::audit::{admin_record, to_hex, Keys, DSAR_DELETE_NAME, TOMBSTONED_FIELD};
use crate::query::RecordFilter;
use crate::store::{Selection, StoreError, StoreWriter, Subject};

/// What a DSAR deletion did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DsarReport {
    /// Ops records deleted.
    pub deleted: u64,
    /// Audit records whose payload was replaced by a tombstone.
    pub tombstoned: u64,
    /// Quarantined records deleted.
    pub quarantined: u64,
    /// Rows of the monitor's tables the subject was taken out of (exception groups'
    /// affected users and messages, tool-call counts of deleted runs).
    pub exception_groups: u64,
}

fn subject_filter(subject: &Subject) -> RecordFilter {
    match subject {
        Subject::User(u) => RecordFilter {
            user_id: Some(u.clone()),
            ..RecordFilter::default()
        },
        Subject::Tenant(t) => RecordFilter {
            tenant: Some(t.clone()),
            ..RecordFilter::default()
        },
    }
}

/// A keyed pseudonym of `value`: correlatable, not reversible.
fn pseudonym(keys: &Keys, value: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(keys.pseudonym_key())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(value.as_bytes());
    to_hex(&mac.finalize().into_bytes()[..8])
}

/// Writes every record of `subject` as JSON Lines to `out`, oldest first, and an audit
/// record of the export. Returns how many.
pub fn dsar_export(
    store: &mut dyn StoreWriter,
    subject: &Subject,
    out: &mut dyn Write,
) -> Result<u64, StoreError> {
    let n = store.reader().scan(&subject_filter(subject), &mut |r| {
        serde_json::to_writer(&mut *out, &r)?;
        out.write_all(b"\n")
    })?;
    out.flush().map_err(StoreError::Stopped)?;
    let audit = admin_record(
        "dsar_export",
        format!("Exported {n} records of a {} (DSAR).", subject.kind()),
        vec![
            ("subject.kind", Value::Str(subject.kind().into())),
            (
                "subject.pseudonym",
                Value::Str(pseudonym(store.keys(), subject.value())),
            ),
            ("records", Value::U64(n)),
        ],
    );
    store.write(&[audit])?;
    Ok(n)
}

/// Deletes `subject`'s ops and quarantined records and tombstones its audit records.
pub fn dsar_delete(
    store: &mut dyn StoreWriter,
    subject: &Subject,
) -> Result<DsarReport, StoreError> {
    // The audit rows to tombstone, as ranges of the chain.
    let rows = store.chain_rows_of(subject)?;
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    for n in &rows {
        match ranges.last_mut() {
            Some((_, b)) if *b + 1 == *n => *b = *n,
            _ => ranges.push((*n, *n)),
        }
    }
    let ops = Selection {
        class: StorageClass::Ops,
        subject: Some(subject.clone()),
        ..Selection::default()
    };
    let ops_count = store.count_selected(&ops)?;
    let ranges_json = Json::from_serialize(&ranges).map_err(|e| StoreError::Corrupt {
        seq: 0,
        message: e.to_string(),
    })?;
    let audit = admin_record(
        "dsar.delete",
        format!(
            "DSAR deletion for a {}: {ops_count} ops records deleted, {} audit records tombstoned.",
            subject.kind(),
            rows.len()
        ),
        vec![
            ("subject.kind", Value::Str(subject.kind().into())),
            (
                "subject.pseudonym",
                Value::Str(pseudonym(store.keys(), subject.value())),
            ),
            ("deleted.ops", Value::U64(ops_count)),
            ("tombstoned.audit", Value::U64(rows.len() as u64)),
            (TOMBSTONED_FIELD, Value::Json(ranges_json)),
        ],
    );
    debug_assert_eq!(audit.name, DSAR_DELETE_NAME);
    // First: if the process dies part-way, what was tombstoned is already recorded.
    store.write(&[audit])?;

    let mut report = DsarReport::default();
    loop {
        let d = store.delete_selected(&ops, BATCH)?;
        if d.records == 0 {
            break;
        }
        report.deleted += d.records;
    }
    for chunk in rows.chunks(BATCH) {
        report.tombstoned += store.tombstone(chunk, subject)?;
    }
    report.quarantined = store.delete_quarantined(subject)?;
    report.exception_groups = store.forget_in_exceptions(subject)?;
    store.compact()?;
    Ok(report)
}
