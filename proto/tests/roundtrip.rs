//! Property tests: every frame survives encode → decode unchanged, and no byte string
//! makes the decoder panic.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use logbook_proto::wire::{
    decode_frame, encode_frame, Ack, Batch, ErrorCode, ErrorFrame, Frame, Gap, Hello, RecordReject,
    Reject, Welcome, HEADER_LEN, PROTOCOL_VERSION,
};
use logbook_proto::{
    Fields, InstanceId, Json, Kind, Level, Record, RecordId, Resource, Scope, ScopeKey, SpanId,
    Status, Str, Timestamp, TraceId, Value,
};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

fn text() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z_.]{0,12}", any::<String>(), Just(String::new()),]
}

fn json() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<String>().prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            vec(("[a-z]{1,4}", inner), 0..4)
                .prop_map(|kv| serde_json::Value::Object(kv.into_iter().collect())),
        ]
    })
    .prop_map(|v| Json::from_serialize(&v).expect("serializable"))
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        text().prop_map(Value::Str),
        any::<i64>().prop_map(Value::I64),
        any::<u64>().prop_map(Value::U64),
        any::<u64>().prop_map(|b| Value::F64(f64::from_bits(b))),
        any::<bool>().prop_map(Value::Bool),
        json().prop_map(Value::Json),
    ]
}

fn scope() -> impl Strategy<Value = Scope> {
    vec(option::of("[ -~]{0,10}"), ScopeKey::COUNT).prop_map(|vals| {
        let mut s = Scope::new();
        for (k, v) in ScopeKey::ALL.iter().zip(vals) {
            s.set(*k, v);
        }
        s
    })
}

prop_compose! {
    fn record(resource: Arc<Resource>)(
        id in any::<[u8; 16]>(),
        ts in any::<i64>(),
        kind in prop::sample::select(Kind::ALL),
        level in prop::sample::select(Level::ALL),
        name in text(),
        target in text(),
        message in option::of(text()),
        trace in any::<[u8; 16]>(),
        span in option::of(any::<[u8; 8]>()),
        parent in option::of(any::<[u8; 8]>()),
        scope in scope(),
        file in option::of(text()),
        line in option::of(any::<u32>()),
        category in option::of(text()),
        status in option::of(prop::sample::select(Status::ALL)),
        times in (option::of(any::<u64>()), option::of(any::<u64>()), option::of(any::<u64>())),
        fields in vec(("[a-z_.]{1,16}", value()), 0..8),
    ) -> Record {
        let mut r = Record::new(RecordId(id), Timestamp(ts), kind, level, Str::Owned(name));
        r.target = Str::Owned(target);
        r.message = message;
        r.trace_id = TraceId(trace);
        r.span_id = span.map(SpanId);
        r.parent_span_id = parent.map(SpanId);
        r.scope = Arc::new(scope);
        r.resource = Arc::clone(&resource);
        r.file = file.map(Str::Owned);
        r.line = line;
        r.category = category.map(Str::Owned);
        r.status = status;
        (r.duration_ns, r.busy_ns, r.idle_ns) = times;
        r.fields = fields.into_iter().map(|(k, v)| (Str::Owned(k), v)).collect::<Fields>();
        r
    }
}

fn resource() -> Arc<Resource> {
    Arc::new(Resource {
        service: "svc".into(),
        host: "host".into(),
        pid: 42,
    })
}

fn round_trip(frame: &Frame) -> Frame {
    let mut bytes = Vec::new();
    encode_frame(frame, &mut bytes);
    let len = u32::from_le_bytes(bytes[..HEADER_LEN].try_into().unwrap()) as usize;
    assert_eq!(
        len,
        bytes.len() - HEADER_LEN,
        "length prefix covers the rest"
    );
    decode_frame(&bytes[HEADER_LEN..], &resource()).expect("decodes")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn batches_round_trip(records in vec(record(resource()), 0..6), seq in any::<u64>(), share in any::<bool>()) {
        let mut records = records;
        // Exercise the "same scope as previous record" encoding.
        if share && records.len() > 1 {
            let s = Arc::clone(&records[0].scope);
            for r in &mut records {
                r.scope = Arc::clone(&s);
            }
        }
        let frame = Frame::Batch(Batch { seq, records });
        prop_assert_eq!(round_trip(&frame), frame);
    }

    #[test]
    fn control_frames_round_trip(
        seq in any::<u64>(),
        n in any::<u32>(),
        d in any::<u32>(),
        dropped in any::<logbook_proto::PerLevel<u64>>(),
        reason in any::<String>(),
        token in option::of(any::<String>()),
        pid in any::<u32>(),
        host in any::<String>(),
        id in any::<[u8; 16]>(),
    ) {
        let frames = [
            Frame::Hello(Hello { version: PROTOCOL_VERSION, instance: InstanceId::from_random(seq), pid, service: reason.clone(), host, token }),
            Frame::Welcome(Welcome { version: PROTOCOL_VERSION, max_frame_bytes: n, server: reason.clone() }),
            Frame::Ack(Ack { seq, stored: n, duplicates: d }),
            Frame::Reject(Reject { seq, records: vec![RecordReject { index: n, id: RecordId(id), reason: reason.clone() }] }),
            Frame::Gap(Gap { dropped }),
            Frame::Error(ErrorFrame { code: ErrorCode::Unavailable, message: reason }),
        ];
        for f in frames {
            prop_assert_eq!(round_trip(&f), f);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..512)) {
        let _ = decode_frame(&bytes, &resource());
    }

    #[test]
    fn every_truncation_of_a_batch_is_an_error(records in vec(record(resource()), 1..3)) {
        let mut bytes = Vec::new();
        encode_frame(&Frame::Batch(Batch { seq: 1, records }), &mut bytes);
        let body = &bytes[HEADER_LEN..];
        for cut in 0..body.len() {
            prop_assert!(decode_frame(&body[..cut], &resource()).is_err(), "cut at {}", cut);
        }
    }

    #[test]
    fn corrupted_batches_never_panic(records in vec(record(resource()), 1..3), pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut bytes = Vec::new();
        encode_frame(&Frame::Batch(Batch { seq: 1, records }), &mut bytes);
        let i = HEADER_LEN + pos.index(bytes.len() - HEADER_LEN);
        bytes[i] = byte;
        let _ = decode_frame(&bytes[HEADER_LEN..], &resource());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Fields encoded ahead of time (as the layer does on the emitting thread) produce the
    /// same bytes as encoding the record whole.
    #[test]
    fn pre_encoded_fields_encode_identically(records in vec(record(resource()), 1..4), split in any::<prop::sample::Index>()) {
        use logbook_proto::wire::{BatchEncoder, EncodedFields};
        let mut whole = BatchEncoder::new(3);
        let mut parts = BatchEncoder::new(3);
        for r in &records {
            whole.push(r);
            // Split the fields over two buffers, as a span end does (initial + late).
            let at = split.index(r.fields.len() + 1);
            let (mut a, mut b) = (EncodedFields::new(), EncodedFields::new());
            for (i, (k, v)) in r.fields.iter().enumerate() {
                if i < at { a.push(k, v) } else { b.push(k, v) }
            }
            parts.push_parts(&r.head(), &[&a, &b]);
        }
        prop_assert_eq!(whole.finish(), parts.finish());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// A record encoded on its own decodes back, and copied into a batch (split anywhere,
    /// as a ring buffer hands it over) with its id set, decodes as part of the batch.
    #[test]
    fn standalone_records_round_trip_and_batch(r in record(resource()), split in any::<prop::sample::Index>(), id in any::<[u8; 16]>()) {
        use logbook_proto::wire::{decode_record, encode_record, BatchEncoder, EncodedFields};
        let mut fields = EncodedFields::new();
        for (k, v) in r.fields.iter() {
            fields.push(k, v);
        }
        let mut bytes = Vec::new();
        encode_record(&mut bytes, &r.head(), &[&fields]);
        prop_assert_eq!(decode_record(&bytes, &resource()).unwrap(), r.clone());

        let at = split.index(bytes.len() + 1);
        let mut enc = BatchEncoder::new(1);
        enc.push_encoded([&bytes[..at], &bytes[at..]], RecordId(id), usize::MAX).unwrap();
        enc.push(&r);
        let frame = enc.finish();
        let mut want = r.clone();
        want.id = RecordId(id);
        prop_assert_eq!(
            decode_frame(&frame[HEADER_LEN..], &resource()).unwrap(),
            Frame::Batch(Batch { seq: 1, records: vec![want, r] })
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Records encoded with cached callsite parts are byte for byte the same.
    #[test]
    fn cached_callsite_parts_encode_identically(r in record(resource())) {
        use logbook_proto::wire::{encode_record, encode_record_at, CallsiteBytes, EncodedFields};
        let mut fields = EncodedFields::new();
        for (k, v) in r.fields.iter() {
            fields.push(k, v);
        }
        let callsite = CallsiteBytes::new(&r.name, &r.target, r.file.as_deref(), r.line);
        let (mut plain, mut cached) = (Vec::new(), Vec::new());
        encode_record(&mut plain, &r.head(), &[&fields]);
        encode_record_at(&mut cached, &r.head(), &callsite, &[&fields]);
        prop_assert_eq!(plain, cached);
    }
}
