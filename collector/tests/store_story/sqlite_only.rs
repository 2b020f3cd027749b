//! What only the SQLite backend promises: private files, and databases made by earlier
//! versions (format 1 of the audit chain) that keep verifying after the upgrade.

use std::path::Path;

use logbook_collector::audit::{verify, Keys, VerifyOptions};
use logbook_collector::query::RecordFilter;
use logbook_collector::store::{open_reader, open_writer, StoreAddress, StoreOptions};
use logbook_proto::Level;

use crate::backend::sqlite::Sqlite;
use crate::backend::{Backend, Tamper};
use crate::{event, T0};

#[test]
fn new_databases_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new/sub/s.db");
    let mut store = open_writer(
        &StoreAddress::sqlite(&path),
        &StoreOptions {
            key_dir: Some(dir.path().join("keys")),
            ..StoreOptions::default()
        },
    )
    .unwrap();
    store.write(&[event(1, T0, Level::Info, "r")]).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&path.with_extension("db-wal")), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// `tests/fixtures/schema5`: a database made by logbook before the store contract
/// (schema version 5, chain format 1): audit records among ops records, a pruned
/// prefix with its signed anchor, two DSAR tombstones, checkpoints.
#[test]
fn databases_made_before_keep_verifying() {
    let b = Sqlite::new();
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/schema5"),
        b.dir(),
    );
    std::fs::rename(b.dir().join("logbook.db"), b.file()).unwrap();
    std::fs::rename(b.dir().join("logbook.checkpoints"), b.checkpoint_file()).unwrap();
    let e = open_reader(&b.address()).err().unwrap().to_string();
    assert!(
        e.contains("schema version 5") && e.contains("upgrade"),
        "{e}"
    );

    // Opening it for writing upgrades it; format 1 rows verify as they are.
    let mut store = b.writer(1000);
    let before = b.verify();
    assert!(before.ok(), "{:?}", before.problem);
    assert_eq!(
        (before.first_n, before.last_n, before.tombstoned),
        (10, 21, 2)
    );
    assert_eq!(before.anchor.map(|a| a.0), Some(9));
    // New rows (format 2) continue the same chain.
    let mut audit = event(9001, T0, Level::Info, "after");
    audit.category = Some("audit".into());
    store.write(&[audit]).unwrap();
    drop(store);
    let after = b.verify();
    assert!(after.ok(), "{:?}", after.problem);
    assert_eq!((after.last_n, after.checked), (22, 13));
    assert_eq!(
        b.reader()
            .count(&RecordFilter {
                run_id: Some("after".into()),
                ..Default::default()
            })
            .unwrap(),
        1
    );

    // An old row altered is still caught, by the old format's digest.
    let seq = b.record_seq(15);
    b.tamper(Tamper::EditMessage {
        seq,
        message: "rewritten".into(),
    });
    let p = b.verify().problem.unwrap();
    assert_eq!(p.n, Some(15), "{p}");
    assert!(p.what.contains("record was modified"), "{p}");
    // The keys in the fixture are the ones that signed it.
    let keys = Keys::load(&b.dir().join("keys")).unwrap();
    assert!(verify(
        b.reader().as_ref(),
        &VerifyOptions {
            chain_key: *keys.chain_key(),
            public: keys.public(),
            checkpoint_file: b.checkpoint_file(),
        },
    )
    .is_ok());
}
