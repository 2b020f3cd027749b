//! Golden byte fixtures: the encoding of these frames must never change within a
//! protocol version. Regenerate deliberately with `LOGBOOK_BLESS=1 cargo test -p
//! logbook-proto --test golden` and bump `PROTOCOL_VERSION` when it does.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;

use logbook_proto::wire::{
    decode_frame, encode_frame, Ack, Batch, ErrorCode, ErrorFrame, Frame, Gap, Hello, RecordReject,
    Reject, Welcome, HEADER_LEN, PROTOCOL_VERSION,
};
use logbook_proto::{
    InstanceId, Json, Kind, Level, Record, RecordId, Resource, Scope, ScopeKey, SpanId, Status,
    Timestamp, TraceId, Value,
};

const INSTANCE: InstanceId = InstanceId([0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]);

fn resource() -> Arc<Resource> {
    Arc::new(Resource {
        service: "agent".into(),
        host: "box".into(),
        pid: 4242,
    })
}

fn batch() -> Batch {
    let scope = Arc::new(
        Scope::new()
            .with(ScopeKey::RunId, "run-1")
            .with(ScopeKey::Tenant, "acme")
            .with(ScopeKey::UserId, "u-7"),
    );
    let trace = TraceId([0xab; 16]);
    let span = SpanId([0xcd; 8]);

    let mut start = Record::new(
        RecordId::new(INSTANCE, 1),
        Timestamp(1_795_291_200_000_000_000),
        Kind::SpanStart,
        Level::Info,
        "llm.call",
    );
    start.target = "agent::llm".into();
    start.trace_id = trace;
    start.span_id = Some(span);
    start.parent_span_id = Some(SpanId([0x01; 8]));
    start.scope = Arc::clone(&scope);
    start.resource = resource();
    start.file = Some("src/llm.rs".into());
    start.line = Some(40);
    start
        .fields
        .set("gen_ai.request.model", Value::Str("fake-1".into()));

    let mut event = Record::new(
        RecordId::new(INSTANCE, 2),
        Timestamp(1_795_291_200_000_500_000),
        Kind::Event,
        Level::Warn,
        "event src/llm.rs:44",
    );
    event.target = "agent::llm".into();
    event.message = Some("retrying".into());
    event.trace_id = trace;
    event.span_id = Some(span);
    event.scope = Arc::clone(&scope);
    event.resource = resource();
    event.fields.set("attempt", Value::I64(-2));
    event.fields.set("backoff", Value::F64(0.25));
    event.fields.set("ok", Value::Bool(false));

    let mut end = Record::new(
        RecordId::new(INSTANCE, 3),
        Timestamp(1_795_291_200_001_000_000),
        Kind::SpanEnd,
        Level::Info,
        "llm.call",
    );
    end.target = "agent::llm".into();
    end.trace_id = trace;
    end.span_id = Some(span);
    end.parent_span_id = Some(SpanId([0x01; 8]));
    end.scope = scope;
    end.resource = resource();
    end.category = Some("llm_call".into());
    end.status = Some(Status::Error);
    end.duration_ns = Some(1_000_000);
    end.busy_ns = Some(800_000);
    end.idle_ns = Some(200_000);
    end.fields
        .set("gen_ai.request.model", Value::Str("fake-1".into()));
    end.fields.set("gen_ai.usage.input_tokens", Value::U64(12));
    end.fields.set(
        "gen_ai.input.messages",
        Value::Json(Json::parse(r#"[{"role":"user","content":"hi"}]"#).unwrap()),
    );

    Batch {
        seq: 7,
        records: vec![start, event, end],
    }
}

fn fixtures() -> Vec<(&'static str, Frame)> {
    vec![
        (
            "hello",
            Frame::Hello(Hello {
                version: PROTOCOL_VERSION,
                instance: INSTANCE,
                pid: 4242,
                service: "agent".into(),
                host: "box".into(),
                token: Some("s3cret".into()),
            }),
        ),
        (
            "welcome",
            Frame::Welcome(Welcome {
                version: PROTOCOL_VERSION,
                max_frame_bytes: 16 << 20,
                server: "logbook 0.1.0".into(),
            }),
        ),
        ("batch", Frame::Batch(batch())),
        (
            "ack",
            Frame::Ack(Ack {
                seq: 7,
                stored: 2,
                duplicates: 1,
            }),
        ),
        (
            "reject",
            Frame::Reject(Reject {
                seq: 7,
                records: vec![RecordReject {
                    index: 1,
                    id: RecordId::new(INSTANCE, 2),
                    reason: "missing required scope field tenant".into(),
                }],
            }),
        ),
        (
            "gap",
            Frame::Gap(Gap {
                dropped: [0, 1, 2, 3, 4],
            }),
        ),
        (
            "error",
            Frame::Error(ErrorFrame {
                code: ErrorCode::FrameTooLarge,
                message: "frame of 20000000 bytes exceeds the limit of 16777216 bytes".into(),
            }),
        ),
    ]
}

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("{name}.bin"))
}

#[test]
fn encodings_match_golden_bytes() {
    let bless = std::env::var_os("LOGBOOK_BLESS").is_some();
    for (name, frame) in fixtures() {
        let mut bytes = Vec::new();
        encode_frame(&frame, &mut bytes);
        let path = fixture_path(name);
        if bless {
            std::fs::write(&path, &bytes).unwrap();
            continue;
        }
        let golden = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            bytes, golden,
            "encoding of {name} changed; see the note at the top of this file"
        );
        let decoded = decode_frame(&golden[HEADER_LEN..], &resource()).unwrap();
        assert_eq!(decoded, frame, "decoding of {name}");
    }
}

#[test]
fn scope_is_sent_once_per_run_of_equal_scopes() {
    let mut bytes = Vec::new();
    encode_frame(&Frame::Batch(batch()), &mut bytes);
    let occurrences = bytes.windows(5).filter(|w| w == b"run-1").count();
    assert_eq!(occurrences, 1);
}
