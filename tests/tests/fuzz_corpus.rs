//! The fuzz corpus (`fuzz/corpus/<target>/`) and every crash the fuzzers found
//! (`fuzz/artifacts/<target>/`), replayed through the same harness the fuzz targets
//! run (`fuzz/src/lib.rs`): each input must be handled without a panic.

#![allow(clippy::unwrap_used)]

#[allow(unreachable_pub)]
#[path = "../../fuzz/src/lib.rs"]
mod harness;

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut n = 0;
    for dir in ["corpus", "artifacts"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        let mut paths: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
        paths.sort();
        for path in paths {
            let bytes = std::fs::read(&path).unwrap();
            let result = std::panic::catch_unwind(|| run(&bytes));
            assert!(result.is_ok(), "{target}: {} panics", path.display());
            n += 1;
        }
    }
    n
}

#[test]
fn frame_corpus() {
    assert!(replay("frame", harness::frame) > 0);
}

#[test]
fn record_corpus() {
    assert!(replay("record", harness::record) > 0);
}

#[test]
fn config_corpus() {
    assert!(replay("config", harness::config) > 0);
}

#[test]
fn filter_corpus() {
    assert!(replay("filter", harness::filter) > 0);
}
