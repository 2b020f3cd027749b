//! An event emitted from inside the layer's own work (here, a field's `Debug` impl)
//! must neither recurse nor deadlock. Two mechanisms stop it: tracing-core refuses
//! nested dispatch on a thread whenever any scoped dispatcher exists (the worker
//! installs one, `NoSubscriber`), and before that the layer's own guard drops and
//! counts it. Which of the two fires depends on whether the worker has started, so
//! the count is at most one. A global default subscriber (as `init()` installs) is
//! the case that matters; it can be set once per process, hence this test binary.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use logbook_proto::Value;
use tracing::info;
use tracing_subscriber::prelude::*;

mod common;

struct Noisy;

impl std::fmt::Debug for Noisy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        info!("from inside Debug");
        f.write_str("noisy")
    }
}

#[test]
fn event_emitted_while_the_layer_works_is_dropped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peer.sock");
    let got = common::peer(&path);
    let layer = logbook_layer::builder()
        .with_socket(&path)
        .try_build()
        .unwrap();
    let handle = layer.handle();
    tracing_subscriber::registry().with(layer).init();

    info!(value = ?Noisy, "outer");

    let report = handle.flush(Duration::from_secs(10));
    assert!(report.complete);
    let records = got.lock().unwrap().clone();
    assert_eq!(records.len(), 1, "{records:#?}");
    assert_eq!(
        records[0].fields.get("value"),
        Some(&Value::Str("noisy".into()))
    );
    let dropped = handle.stats().dropped_by_level;
    assert!(
        dropped == [0; logbook_proto::Level::COUNT] || dropped == [0, 0, 1, 0, 0],
        "{dropped:?}"
    );
}
