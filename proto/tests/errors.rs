//! Each kind of bad input gets its own typed error.

#![allow(clippy::unwrap_used)]

use std::io::Cursor;
use std::sync::Arc;

use logbook_proto::wire::{
    decode_frame, encode_frame, read_frame, Batch, DecodeError, ErrorCode, Frame, FrameType, Hello,
    ReadFrameError, HEADER_LEN, HELLO_MAGIC,
};
use logbook_proto::{InstanceId, Kind, Level, Record, RecordId, Timestamp};

fn hello_body(version: u16) -> Vec<u8> {
    let mut b = vec![FrameType::Hello as u8];
    b.extend_from_slice(&HELLO_MAGIC);
    b.extend_from_slice(&version.to_le_bytes());
    b.extend_from_slice(&[1; 8]);
    b.extend_from_slice(&7u32.to_le_bytes());
    b.extend_from_slice(&[0, 0, 0]);
    b
}

#[test]
fn unknown_version_is_typed() {
    assert!(matches!(
        decode_frame(&hello_body(1), &Arc::default()),
        Ok(Frame::Hello(_))
    ));
    let err = decode_frame(&hello_body(99), &Arc::default()).unwrap_err();
    assert_eq!(
        err,
        DecodeError::UnknownVersion {
            version: 99,
            supported: 1
        }
    );
    assert_eq!(err.error_code(), ErrorCode::UnsupportedVersion);
}

#[test]
fn bad_magic_is_typed() {
    let mut b = hello_body(1);
    b[1..5].copy_from_slice(b"GET ");
    assert_eq!(
        decode_frame(&b, &Arc::default()),
        Err(DecodeError::BadMagic)
    );
}

#[test]
fn invalid_utf8_is_typed() {
    let mut b = hello_body(1);
    // service: length 2, bytes 0xff 0xfe
    let at = b.len() - 3;
    b.truncate(at);
    b.extend_from_slice(&[2, 0xff, 0xfe, 0, 0]);
    assert_eq!(
        decode_frame(&b, &Arc::default()),
        Err(DecodeError::InvalidUtf8 { context: "service" })
    );
}

#[test]
fn unknown_frame_type_and_trailing_bytes() {
    assert_eq!(
        decode_frame(&[0x7f], &Arc::default()),
        Err(DecodeError::UnknownFrameType(0x7f))
    );
    let mut b = hello_body(1);
    b.push(0);
    assert_eq!(
        decode_frame(&b, &Arc::default()),
        Err(DecodeError::TrailingBytes(1))
    );
}

#[test]
fn oversized_frame_refused_from_stream_without_reading_body() {
    let mut stream = Vec::new();
    stream.extend_from_slice(&(64u32 * 1024 * 1024).to_le_bytes());
    stream.push(FrameType::Batch as u8);
    let mut buf = Vec::new();
    let err = read_frame(&mut Cursor::new(stream), 1024 * 1024, &mut buf).unwrap_err();
    assert!(
        matches!(
            err,
            ReadFrameError::Decode(DecodeError::FrameTooLarge { max: 1_048_576, .. })
        ),
        "{err:?}"
    );
    assert_eq!(buf.capacity(), 0, "nothing allocated for the body");
}

#[test]
fn stream_reader_sees_clean_end_and_truncation() {
    let mut frame = Vec::new();
    let hello = Frame::Hello(Hello {
        version: 1,
        instance: InstanceId::from_random(1),
        pid: 1,
        service: "s".into(),
        host: "h".into(),
        token: None,
    });
    encode_frame(&hello, &mut frame);
    let mut buf = Vec::new();
    let mut c = Cursor::new(frame.clone());
    assert!(read_frame(&mut c, 1024, &mut buf).unwrap());
    assert_eq!(decode_frame(&buf, &Arc::default()).unwrap(), hello);
    assert!(!read_frame(&mut c, 1024, &mut buf).unwrap(), "clean end");
    let mut cut = Cursor::new(frame[..frame.len() - 1].to_vec());
    assert!(matches!(
        read_frame(&mut cut, 1024, &mut buf),
        Err(ReadFrameError::Io(_))
    ));
}

#[test]
fn record_count_beyond_frame_is_refused() {
    let mut b = vec![FrameType::Batch as u8];
    b.extend_from_slice(&1u64.to_le_bytes());
    b.extend_from_slice(&u32::MAX.to_le_bytes());
    let err = decode_frame(&b, &Arc::default()).unwrap_err();
    assert!(
        matches!(err, DecodeError::CountTooLarge { what: "record", .. }),
        "{err:?}"
    );
}

#[test]
fn invalid_json_field_is_typed() {
    let mut r = Record::new(
        RecordId::new(InstanceId::from_random(1), 1),
        Timestamp(1),
        Kind::Event,
        Level::Info,
        "e",
    );
    r.fields.set(
        "j",
        logbook_proto::Value::Json(logbook_proto::Json::parse("[1]").unwrap()),
    );
    let mut bytes = Vec::new();
    encode_frame(
        &Frame::Batch(Batch {
            seq: 1,
            records: vec![r],
        }),
        &mut bytes,
    );
    // Replace the JSON text "[1]" with "[1," — same length, invalid.
    let pos = bytes.windows(3).rposition(|w| w == b"[1]").unwrap();
    bytes[pos + 2] = b',';
    let err = decode_frame(&bytes[HEADER_LEN..], &Arc::default()).unwrap_err();
    assert!(
        matches!(&err, DecodeError::InvalidJson { key, .. } if key == "j"),
        "{err:?}"
    );
}

#[test]
fn bounded_push_leaves_batch_intact() {
    use logbook_proto::wire::BatchEncoder;
    let mk = |n: u64, msg: &str| {
        let mut r = Record::new(
            RecordId::new(InstanceId::from_random(1), n),
            Timestamp(1),
            Kind::Event,
            Level::Info,
            "e",
        );
        r.message = Some(msg.to_owned());
        r
    };
    let mut enc = BatchEncoder::new(9);
    enc.push_bounded(&mk(1, "small"), 200).unwrap();
    let before = enc.frame_bytes();
    let err = enc.push_bounded(&mk(2, &"x".repeat(500)), 200).unwrap_err();
    assert!(err.bytes > 500);
    assert_eq!(enc.frame_bytes(), before);
    enc.push_bounded(&mk(3, "also small"), 200).unwrap();
    let bytes = enc.finish();
    match decode_frame(&bytes[HEADER_LEN..], &Arc::default()).unwrap() {
        Frame::Batch(b) => {
            assert_eq!(b.seq, 9);
            assert_eq!(
                b.records.iter().map(|r| r.id.0[15]).collect::<Vec<_>>(),
                [1, 3]
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn too_many_fields_is_refused_before_reading_them() {
    let mut r = Record::new(
        RecordId::new(InstanceId::from_random(1), 1),
        Timestamp(1),
        Kind::Event,
        Level::Info,
        "e",
    );
    for i in 0..1025 {
        r.fields
            .push_unique(format!("f{i}"), logbook_proto::Value::Bool(true));
    }
    let mut bytes = Vec::new();
    encode_frame(
        &Frame::Batch(Batch {
            seq: 1,
            records: vec![r],
        }),
        &mut bytes,
    );
    let err = decode_frame(&bytes[HEADER_LEN..], &Arc::default()).unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::TooManyFields {
                count: 1025,
                max: 1024,
                ..
            }
        ),
        "{err:?}"
    );
}
