//! What each fuzz target does with its input. Every function must return, for any
//! input, without panicking; what else must hold is asserted inside. Compiled into the
//! fuzz targets (`fuzz_targets/`) and into the main workspace's corpus replay test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use logbook_collector::config::{Config, Sources};
use logbook_collector::pipeline::Pipeline;
use logbook_collector::query::{Page, RecordFilter};
use logbook_collector::store::{open_writer, StoreAddress, StoreOptions, StoreReader};
use logbook_proto::wire::{
    decode_frame, decode_frame_within, decode_record, encode_frame, frame_len, HEADER_LEN,
};
use logbook_proto::{Record, Resource, Timestamp};

fn resource() -> Arc<Resource> {
    static R: OnceLock<Arc<Resource>> = OnceLock::new();
    Arc::clone(R.get_or_init(|| {
        Arc::new(Resource {
            service: "fuzz".into(),
            host: "h".into(),
            pid: 1,
        })
    }))
}

/// A frame as the collector reads it: its header against the default limit, then its
/// body. What decodes encodes again, and that decodes too.
pub fn frame(data: &[u8]) {
    if data.len() < HEADER_LEN {
        return;
    }
    let header: [u8; HEADER_LEN] = data[..HEADER_LEN].try_into().unwrap();
    let Ok(len) = frame_len(header, logbook_proto::wire::DEFAULT_MAX_FRAME_BYTES) else {
        return;
    };
    let body = &data[HEADER_LEN..];
    let body = &body[..len.min(body.len())];
    // Within a memory allowance (as the collector decodes) it decodes the same, or not
    // at all.
    let allowance = body.len() * 16 + (64 << 10);
    let unlimited = decode_frame(body, &resource());
    if let Ok(f) = decode_frame_within(body, &resource(), allowance) {
        // Compared encoded (a NaN is not equal to itself).
        let u = unlimited
            .as_ref()
            .expect("decodes within an allowance, not without");
        let (mut a, mut b) = (Vec::new(), Vec::new());
        encode_frame(&f, &mut a);
        encode_frame(u, &mut b);
        assert!(a == b, "a frame decodes differently within an allowance");
    }
    if let Ok(f) = unlimited {
        let mut again = Vec::new();
        encode_frame(&f, &mut again);
        decode_frame(&again[HEADER_LEN..], &resource()).expect("a decoded frame re-encodes");
    }
}

/// A record as admission takes it: decoded, then bounded, redacted and validated;
/// what passes has a canonical encoding and a JSON form that reads back.
pub fn record(data: &[u8]) {
    let Ok(r) = decode_record(data, &resource()) else {
        return;
    };
    let (ok, _refused) = pipeline().process(vec![r]);
    for r in ok {
        let _ = logbook_collector::audit::canonical_json(
            &r,
            1,
            logbook_collector::audit::StorageClass::Audit,
            true,
        );
        let json = serde_json::to_string(&r).expect("a record serializes");
        let back: Record = serde_json::from_str(&json).expect("its JSON reads back");
        assert_eq!(back.id, r.id);
    }
}

fn pipeline() -> &'static Pipeline {
    static P: OnceLock<Pipeline> = OnceLock::new();
    P.get_or_init(Pipeline::default)
}

/// A configuration file as `logbook serve --config` loads it: accepted or refused with
/// an error, never a panic.
pub fn config(data: &[u8]) {
    let path = scratch().join(format!("config-{:?}.toml", std::thread::current().id()));
    std::fs::write(&path, data).unwrap();
    let sources = Sources {
        file: Some(path),
        flags: Vec::new(),
    };
    let _ = Config::load_with_env(&sources, |_| None);
}

/// A record filter as text pairs (`since=2h&level=warn&field=k=v`, as an HTTP query
/// string gives them): parsed, and if it parses, run against a real SQLite store, which
/// must answer.
pub fn filter(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let pairs = text
        .split('&')
        .map(|p| p.split_once('=').unwrap_or((p, "")));
    let Ok(f) = RecordFilter::parse(pairs, Timestamp::now()) else {
        return;
    };
    let page = Page {
        limit: 5,
        before: None,
    };
    if let Err(e) = store().query(&f, &page) {
        panic!("a parsed filter fails in the store: {f:?}: {e}");
    }
    if let Err(e) = store().count(&f) {
        panic!("a parsed filter fails to count: {f:?}: {e}");
    }
}

/// A directory for this process's scratch files.
fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("logbook-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}

/// A store of a few records, for the filter target.
fn store() -> &'static Arc<dyn StoreReader> {
    static STORE: OnceLock<Arc<dyn StoreReader>> = OnceLock::new();
    STORE.get_or_init(|| {
        let address = StoreAddress::Sqlite(scratch().join("filter.db"));
        let _ = std::fs::remove_file(scratch().join("filter.db"));
        let mut w = open_writer(&address, &StoreOptions::default()).unwrap();
        let mut records = Vec::new();
        for i in 1..=20u64 {
            let mut r = Record::new(
                logbook_proto::RecordId::new(logbook_proto::InstanceId::from_random(7), i),
                Timestamp::now(),
                logbook_proto::Kind::Event,
                logbook_proto::Level::ALL[(i % 5) as usize],
                if i % 2 == 0 { "even" } else { "odd" },
            );
            r.trace_id = logbook_proto::TraceId::from_random(i, 1);
            r.message = Some(format!("message {i} with words"));
            r.fields.set(
                "gen_ai.request.model",
                logbook_proto::Value::Str("m".into()),
            );
            r.fields.set("n", logbook_proto::Value::U64(i));
            records.push(r);
        }
        let (ok, _) = Pipeline::default().process(records);
        w.write(&ok).unwrap();
        w.reader()
    })
}
