//! A resent batch (same record ids) is stored once, on the same connection or a new one.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::{Collector, RawClient};
use logbook_proto::wire::{Ack, Batch, Frame};
use logbook_proto::{InstanceId, Record, Scope, ScopeKey};

fn records(instance: InstanceId, from: u64, n: u64) -> Vec<Record> {
    let scope = Arc::new(Scope::new().with(ScopeKey::RunId, "run-dedup"));
    let mut records = common::events(instance, from, n, "raw");
    for r in &mut records {
        r.scope = Arc::clone(&scope);
    }
    records
}

fn ack(c: &mut RawClient) -> Ack {
    match c.recv() {
        Some(Frame::Ack(a)) => a,
        other => panic!("expected an ack, got {other:?}"),
    }
}

#[test]
fn resent_batches_are_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(dir.path());
    let instance = InstanceId::from_random(99);
    let batch = Frame::Batch(Batch {
        seq: 1,
        records: records(instance, 1, 5),
    });

    let mut c = RawClient::handshake(&collector.socket, instance);
    c.send(&batch);
    assert_eq!(
        ack(&mut c),
        Ack {
            seq: 1,
            stored: 5,
            duplicates: 0
        }
    );
    c.send(&batch);
    assert_eq!(
        ack(&mut c),
        Ack {
            seq: 1,
            stored: 0,
            duplicates: 5
        },
        "same connection"
    );
    drop(c);

    let mut c = RawClient::handshake(&collector.socket, instance);
    c.send(&batch);
    assert_eq!(
        ack(&mut c),
        Ack {
            seq: 1,
            stored: 0,
            duplicates: 5
        },
        "after a reconnect"
    );
    // Half old, half new.
    c.send(&Frame::Batch(Batch {
        seq: 2,
        records: records(instance, 3, 6),
    }));
    assert_eq!(
        ack(&mut c),
        Ack {
            seq: 2,
            stored: 3,
            duplicates: 3
        }
    );

    let stored = collector.query(&["--run", "run-dedup", "--limit", "100"]);
    assert_eq!(stored.len(), 8);
    let mut ids: Vec<_> = stored.iter().map(|r| r.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 8);
    let runs = collector.cli(&["runs", "--format", "json"]);
    let runs: serde_json::Value = serde_json::from_slice(&runs.stdout).unwrap();
    assert_eq!(
        runs[0]["records"], 8,
        "duplicates are not counted in the run either"
    );
}
