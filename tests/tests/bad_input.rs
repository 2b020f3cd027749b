//! Malformed and oversized frames get an error frame and close only their own
//! connection; a well-behaved client keeps working and nothing acknowledged is lost.

#![allow(clippy::unwrap_used)]

mod common;

use common::{run_app, Collector, RawClient};
use logbook_proto::wire::{encode_frame, Ack, Batch, ErrorCode, Frame, FrameType, HELLO_MAGIC};
use logbook_proto::{InstanceId, Record, Timestamp};

fn good_records(instance: InstanceId, from: u64, n: u64) -> Vec<Record> {
    common::events(instance, from, n, "good")
}

fn expect_error(c: &mut RawClient, code: ErrorCode) -> String {
    match c.recv() {
        Some(Frame::Error(e)) => {
            assert_eq!(e.code, code, "{e:?}");
            assert!(
                c.recv().is_none(),
                "connection closed after the error frame"
            );
            e.message
        }
        other => panic!("expected error {code:?}, got {other:?}"),
    }
}

fn hello_bytes(version: u16) -> Vec<u8> {
    let mut body = vec![FrameType::Hello as u8];
    body.extend_from_slice(&HELLO_MAGIC);
    body.extend_from_slice(&version.to_le_bytes());
    body.extend_from_slice(&[3; 8]);
    body.extend_from_slice(&1u32.to_le_bytes());
    body.extend_from_slice(&[1, b's', 1, b'h', 0]);
    let mut out = (body.len() as u32).to_le_bytes().to_vec();
    out.extend(body);
    out
}

#[test]
fn bad_frames_close_only_their_connection() {
    let dir = tempfile::tempdir().unwrap();
    let mut collector = Collector::start(dir.path());
    let good_instance = InstanceId::from_random(1);
    let mut good = RawClient::handshake(&collector.socket, good_instance);
    good.send(&Frame::Batch(Batch {
        seq: 1,
        records: good_records(good_instance, 1, 3),
    }));
    assert!(matches!(
        good.recv(),
        Some(Frame::Ack(Ack { stored: 3, .. }))
    ));

    // Garbage after a valid hello: an unknown frame type.
    let mut c = RawClient::handshake(&collector.socket, InstanceId::from_random(2));
    c.send_bytes(&[5, 0, 0, 0, 0x42, 1, 2, 3, 4]);
    assert!(expect_error(&mut c, ErrorCode::Malformed).contains("unknown frame type"));

    // A length prefix far above the limit: refused before reading the body.
    let mut c = RawClient::handshake(&collector.socket, InstanceId::from_random(3));
    c.send_bytes(&(1u32 << 30).to_le_bytes());
    assert!(expect_error(&mut c, ErrorCode::FrameTooLarge).contains("exceeds the limit"));

    // Not our protocol at all.
    let mut c = RawClient::connect(&collector.socket);
    c.send_bytes(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_error(&mut c, ErrorCode::FrameTooLarge);

    // A hello with a bad magic, and one from the future.
    let mut c = RawClient::connect(&collector.socket);
    let mut bad_magic = hello_bytes(1);
    bad_magic[5] = b'X';
    c.send_bytes(&bad_magic);
    assert!(expect_error(&mut c, ErrorCode::Malformed).contains("magic"));
    let mut c = RawClient::connect(&collector.socket);
    c.send_bytes(&hello_bytes(9));
    assert!(expect_error(&mut c, ErrorCode::UnsupportedVersion).contains("version 9"));

    // A batch before any hello.
    let mut c = RawClient::connect(&collector.socket);
    c.send(&Frame::Batch(Batch {
        seq: 1,
        records: good_records(InstanceId::from_random(4), 1, 1),
    }));
    expect_error(&mut c, ErrorCode::ProtocolViolation);

    // Invalid UTF-8 inside a record of an otherwise well-formed batch.
    let instance = InstanceId::from_random(5);
    let mut c = RawClient::handshake(&collector.socket, instance);
    let mut bytes = Vec::new();
    let mut r = good_records(instance, 1, 1).remove(0);
    r.name = "ZZZZ".into();
    encode_frame(
        &Frame::Batch(Batch {
            seq: 1,
            records: vec![r],
        }),
        &mut bytes,
    );
    let at = bytes.windows(4).position(|w| w == b"ZZZZ").unwrap();
    bytes[at] = 0xff;
    c.send_bytes(&bytes);
    assert!(expect_error(&mut c, ErrorCode::Malformed).contains("UTF-8"));

    // A frame cut short by a disconnect.
    let mut c = RawClient::handshake(&collector.socket, InstanceId::from_random(6));
    let mut bytes = Vec::new();
    encode_frame(
        &Frame::Batch(Batch {
            seq: 1,
            records: good_records(InstanceId::from_random(6), 1, 2),
        }),
        &mut bytes,
    );
    c.send_bytes(&bytes[..bytes.len() / 2]);
    drop(c);

    // Records that fail validation are rejected one by one; the rest is stored.
    let instance = InstanceId::from_random(7);
    let mut c = RawClient::handshake(&collector.socket, instance);
    let mut records = good_records(instance, 1, 3);
    records[1].ts = Timestamp(1);
    c.send(&Frame::Batch(Batch { seq: 4, records }));
    match c.recv() {
        Some(Frame::Reject(rej)) => {
            assert_eq!(rej.seq, 4);
            assert_eq!(rej.records.len(), 1);
            assert_eq!(rej.records[0].index, 1);
            assert!(
                rej.records[0].reason.contains("timestamp"),
                "{:?}",
                rej.records[0]
            );
        }
        other => panic!("expected a reject, got {other:?}"),
    }
    assert_eq!(
        c.recv(),
        Some(Frame::Ack(Ack {
            seq: 4,
            stored: 2,
            duplicates: 0
        }))
    );

    // The well-behaved connection was never disturbed.
    good.send(&Frame::Batch(Batch {
        seq: 2,
        records: good_records(good_instance, 4, 2),
    }));
    assert_eq!(
        good.recv(),
        Some(Frame::Ack(Ack {
            seq: 2,
            stored: 2,
            duplicates: 0
        }))
    );
    // And a real application still gets through.
    let report = run_app(
        &["roundtrip", "run-after-abuse"],
        &[("LOGBOOK_ENDPOINT", &collector.endpoint())],
    );
    assert_eq!(report.delivered, report.emitted);

    assert!(collector.is_running());
    assert_eq!(
        collector.query(&["--name", "good", "--limit", "100"]).len(),
        7
    );
    assert_eq!(
        collector
            .query(&["--run", "run-after-abuse", "--limit", "100"])
            .len() as u64,
        report.emitted
    );
}

#[test]
fn acks_for_earlier_batches_come_before_the_error_frame() {
    let dir = tempfile::tempdir().unwrap();
    // A long group-commit wait: the bad frame is read long before the good batch commits.
    let collector = Collector::start_with(
        dir.path(),
        &[
            "--commit-interval-ms",
            "300",
            "--commit-max-records",
            "100000",
        ],
    );
    let instance = InstanceId::from_random(11);
    let mut c = RawClient::handshake(&collector.socket, instance);
    let mut bytes = Vec::new();
    encode_frame(
        &Frame::Batch(Batch {
            seq: 1,
            records: good_records(instance, 1, 4),
        }),
        &mut bytes,
    );
    bytes.extend_from_slice(&[5, 0, 0, 0, 0x42, 0, 0, 0, 0]);
    c.send_bytes(&bytes);
    assert_eq!(
        c.recv(),
        Some(Frame::Ack(Ack {
            seq: 1,
            stored: 4,
            duplicates: 0
        })),
        "the good batch is acknowledged first"
    );
    expect_error(&mut c, ErrorCode::Malformed);
}
