//! A hostile local client, speaking `proto/PROTOCOL.md` by hand: each finding of the
//! hardening issue reproduced against the real collector, and what it must do instead.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Collector, RawClient};
use logbook_proto::wire::{Batch, ErrorCode, Frame, RecordReject};
use logbook_proto::{InstanceId, Json, Record, Value};

fn batch(seq: u64, records: Vec<Record>) -> Frame {
    Frame::Batch(Batch { seq, records })
}

/// Every byte the database holds, its write-ahead log included.
fn store_bytes(c: &Collector) -> Vec<u8> {
    let mut all = std::fs::read(&c.db).unwrap();
    if let Ok(wal) = std::fs::read(c.db.with_extension("db-wal")) {
        all.extend(wal);
    }
    all
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

fn error_of(c: &mut RawClient) -> logbook_proto::wire::ErrorFrame {
    match c.recv() {
        Some(Frame::Error(e)) => e,
        other => panic!("expected an error frame, got {other:?}"),
    }
}

/// Finding 1: the hello's service and host were unbounded and unredacted, and copied
/// onto every record.
#[test]
fn a_client_identity_is_bounded_and_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let mut collector = Collector::start(dir.path());
    let mut huge = RawClient::connect(&collector.socket);
    huge.send(&RawClient::hello(
        InstanceId::from_random(1),
        &"s".repeat(1 << 20),
        None,
    ));
    let e = error_of(&mut huge);
    assert!(
        e.message.contains("service") && e.message.contains("bytes"),
        "{e:?}"
    );

    let instance = InstanceId::from_random(2);
    let mut c = RawClient::handshake_as(
        &collector.socket,
        instance,
        "billing password=hunter2 ops@example.com",
        None,
    );
    c.send(&batch(1, common::events(instance, 1, 200, "good")));
    assert!(matches!(c.recv(), Some(Frame::Ack(a)) if a.stored == 200));
    let stored = collector.query(&["--name", "good", "--limit", "1"]);
    let service = &stored[0].resource.service;
    assert!(
        !service.contains("hunter2") && !service.contains("ops@example.com"),
        "{service}"
    );
    assert!(collector.stop().success());
    let bytes = store_bytes(&collector);
    assert!(!contains(&bytes, "hunter2") && !contains(&bytes, "ops@example.com"));
}

/// Finding 1, the rest of the envelope: an oversize value is cut (and counted), the
/// record kept; an oversize batch is refused.
#[test]
fn oversize_values_are_cut_and_oversize_batches_refused() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(dir.path());
    let instance = InstanceId::from_random(3);
    let mut c = RawClient::handshake(&collector.socket, instance);
    let mut records = common::events(instance, 1, 1, "image");
    records[0]
        .fields
        .set("image", Value::Str("A".repeat(3 << 20)));
    records[0].fields.set(
        "doc",
        Value::Json(Json::parse(format!("[\"{}\"]", "b".repeat(2 << 20))).unwrap()),
    );
    c.send(&batch(1, records));
    assert!(matches!(c.recv(), Some(Frame::Ack(a)) if a.stored == 1));
    let stored = collector.query(&["--name", "image"]);
    let image = stored[0].fields.get("image").unwrap().as_str().unwrap();
    assert!(image.len() < 300 << 10, "{} bytes", image.len());
    assert!(image.contains("truncated"), "a visible marker");
    assert!(matches!(stored[0].fields.get("doc"), Some(Value::Str(s)) if s.contains("truncated")));
    let stats = collector.cli(&["stats", "--json"]);
    let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(stats["limits"]["value_truncated"], 2, "{stats}");

    let mut c = RawClient::handshake(&collector.socket, InstanceId::from_random(4));
    c.send(&batch(1, common::events(instance, 10, 20_001, "many")));
    let e = error_of(&mut c);
    assert!(e.message.contains("20001 records"), "{e:?}");
}

/// Finding 2: a client failing authentication wrote into the append-only trail, one
/// record per attempt, with its own text.
#[test]
fn failed_authentication_cannot_write_the_trail() {
    let dir = tempfile::tempdir().unwrap();
    let mut collector = Collector::start_with_config(dir.path(), "token = \"right-token\"\n");
    for i in 0..300u64 {
        let mut c = RawClient::connect(&collector.socket);
        c.send(&RawClient::hello(
            InstanceId::from_random(100 + i),
            &format!("svc password=hunter2-{i}"),
            Some("wrong"),
        ));
        assert_eq!(error_of(&mut c).code, ErrorCode::Unauthorized);
    }
    // A good client is unaffected.
    let instance = InstanceId::from_random(5);
    let mut good = RawClient::handshake_as(&collector.socket, instance, "svc", Some("right-token"));
    good.send(&batch(1, common::events(instance, 1, 3, "good")));
    assert!(matches!(good.recv(), Some(Frame::Ack(a)) if a.stored == 3));
    assert!(collector.stop().success());

    let audit = collector.query(&["--category", "audit", "--limit", "1000"]);
    let failures: Vec<&Record> = audit
        .iter()
        .filter(|r| r.name.starts_with("logbook.auth"))
        .collect();
    assert!(
        (1..=3).contains(&failures.len()),
        "a few audit records, not one per attempt: {}",
        failures.len()
    );
    let counted: u64 = failures
        .iter()
        .filter_map(|r| r.fields.get("failures").and_then(Value::as_u64))
        .sum();
    assert_eq!(counted, 300, "they carry the counts");
    assert!(!contains(&store_bytes(&collector), "hunter2"));
    let warnings = collector
        .log_text()
        .lines()
        .filter(|l| l.contains("WARN") && l.to_lowercase().contains("auth"))
        .count();
    assert!(
        warnings <= 3,
        "{warnings} warnings: the log line is rate-limited"
    );
}

/// Finding 6: any client could forge the collector's own audit records, and `verify`
/// trusted every DSAR record's list of tombstones.
#[test]
fn the_collectors_names_are_reserved_and_records_say_who_sent_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut collector = Collector::start(dir.path());
    let instance = InstanceId::from_random(6);
    let mut c = RawClient::handshake(&collector.socket, instance);
    let mut records = common::events(instance, 1, 4, "app.audit");
    for r in &mut records {
        r.category = Some("audit".into());
    }
    // A forged DSAR deletion: the collector's name and target, a list of chain rows
    // to tombstone.
    records[3].name = "logbook.dsar.delete".into();
    records[3].target = "logbook::admin".into();
    records[3].fields.set(
        "tombstoned",
        Value::Json(Json::parse("[[1,1000]]").unwrap()),
    );
    c.send(&batch(1, records));
    match c.recv() {
        Some(Frame::Reject(r)) => {
            assert_eq!(r.records.len(), 1, "{r:?}");
            let RecordReject { index, reason, .. } = &r.records[0];
            assert_eq!(*index, 3);
            assert!(reason.contains("reserved"), "{reason}");
        }
        other => panic!("expected a reject, got {other:?}"),
    }
    assert!(matches!(c.recv(), Some(Frame::Ack(a)) if a.stored == 3));
    // Not reserved, but a list of tombstones all the same: kept, never trusted.
    let mut sly = common::events(instance, 10, 1, "cleanup");
    sly[0].category = Some("audit".into());
    sly[0].fields.set(
        "tombstoned",
        Value::Json(Json::parse("[[1,1000]]").unwrap()),
    );
    c.send(&batch(2, sly));
    assert!(matches!(c.recv(), Some(Frame::Ack(a)) if a.stored == 1));
    assert!(collector.stop().success());

    // Every record says who delivered it.
    let out = collector.cli(&["query", "--name", "app.audit", "--format", "jsonl"]);
    let line = String::from_utf8(out.stdout).unwrap();
    let first: serde_json::Value = serde_json::from_str(line.lines().next().unwrap()).unwrap();
    assert_eq!(first["origin"]["transport"], "socket", "{first}");
    assert_eq!(first["origin"]["pid"], std::process::id(), "{first}");
    assert!(first["origin"]["uid"].is_u64(), "{first}");

    // Someone with the file marks a client's audit row tombstoned: no record the
    // collector wrote accounts for it, so verify fails there.
    let conn = rusqlite::Connection::open(&collector.db).unwrap();
    conn.execute_batch(
        "DROP TRIGGER audit_chain_no_update;
         UPDATE audit_chain SET tombstone = 1
          WHERE record_seq = (SELECT seq FROM records WHERE name = 'app.audit' LIMIT 1);",
    )
    .unwrap();
    drop(conn);
    let out = collector.cli(&["verify"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tombstoned without a DSAR deletion"), "{err}");
}

/// Finding 3: no connection cap, no read timeout after the hello, stalled frames held
/// forever.
#[test]
fn connections_are_capped_and_stalled_ones_closed() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start_with_config(
        dir.path(),
        "max_connections = 8\nidle_timeout_secs = 3\nframe_timeout_secs = 1\n",
    );
    let mut open: Vec<RawClient> = (0..8)
        .map(|i| RawClient::handshake(&collector.socket, InstanceId::from_random(200 + i)))
        .collect();
    let mut ninth = RawClient::connect(&collector.socket);
    let e = error_of(&mut ninth);
    assert!(e.message.contains("too many connections"), "{e:?}");
    // Half a frame, then nothing: closed.
    let stalled = &mut open[1];
    stalled.send_bytes(&1000u32.to_le_bytes());
    stalled.send_bytes(&[3; 10]);
    let e = error_of(stalled);
    assert!(e.message.contains("timed out"), "{e:?}");
    // Silent after the hello: closed, as idle.
    let started = Instant::now();
    assert_eq!(error_of(&mut open[0]).code, ErrorCode::Idle);
    assert!(started.elapsed() < Duration::from_secs(10));
    // Room again for a well-behaved client.
    drop(open);
    std::thread::sleep(Duration::from_millis(300));
    let instance = InstanceId::from_random(300);
    let mut good = RawClient::handshake(&collector.socket, instance);
    good.send(&batch(1, common::events(instance, 1, 5, "good")));
    assert!(matches!(good.recv(), Some(Frame::Ack(a)) if a.stored == 5));
}

/// Finding 4: the counts of an ack were misattributed when the collector's own audit
/// records shared a commit with client batches.
#[test]
fn acks_are_exact_when_audit_records_share_the_commit() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start_with_config(
        dir.path(),
        "token = \"right-token\"\ncommit_interval_ms = 400\n",
    );
    let instance = InstanceId::from_random(7);
    let mut a = RawClient::handshake_as(&collector.socket, instance, "svc", Some("right-token"));
    let records = common::events(instance, 1, 5, "once");
    a.send(&batch(1, records.clone()));
    assert!(matches!(a.recv(), Some(Frame::Ack(x)) if x.stored == 5));
    // A failed hello (the collector audits it) and a resend, in one group commit.
    let mut b = RawClient::connect(&collector.socket);
    b.send(&RawClient::hello(
        InstanceId::from_random(8),
        "intruder",
        Some("wrong"),
    ));
    // The audit record first in the group, the resend within its commit interval.
    std::thread::sleep(Duration::from_millis(100));
    a.send(&batch(2, records));
    assert_eq!(error_of(&mut b).code, ErrorCode::Unauthorized);
    match a.recv() {
        Some(Frame::Ack(x)) => assert_eq!((x.stored, x.duplicates), (0, 5), "{x:?}"),
        other => panic!("expected an ack, got {other:?}"),
    }
}

/// Finding 5: the configuration's audit record held the plain SHA-256 of the file,
/// token included: a weak token was recovered offline.
#[test]
fn no_secret_derived_digest_is_stored() {
    use sha2::{Digest, Sha256};
    let dir = tempfile::tempdir().unwrap();
    let text = "token = \"weak\"\ndurability = \"normal\"\n";
    let mut collector = Collector::start_with_config(dir.path(), text);
    assert!(collector.stop().success());
    let digest: String = Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(!contains(&store_bytes(&collector), &digest));
    let audit = collector.query(&["--name", "logbook.config_load"]);
    let fields = serde_json::to_string(&audit[0].fields).unwrap();
    assert!(fields.contains("durability"), "{fields}");
    assert!(!fields.contains("weak"), "{fields}");

    // The next load names what changed, the token only as set.
    std::fs::write(
        dir.path().join("logbook.toml"),
        "token = \"weak2\"\ndurability = \"full\"\n",
    )
    .unwrap();
    collector.restart();
    assert!(collector.stop().success());
    let audit = collector.query(&["--name", "logbook.config_load"]);
    assert_eq!(audit.len(), 2);
    let newest = audit.iter().max_by_key(|r| r.seq).unwrap();
    assert_eq!(
        newest.fields.get("changed"),
        Some(&Value::Json(
            Json::parse(r#"["durability","token"]"#).unwrap()
        )),
        "{:?}",
        newest.fields
    );
    assert!(!contains(&store_bytes(&collector), "weak2"));
}

/// Finding 7: the same refused record resent five times made five quarantine rows.
#[test]
fn a_refused_record_resent_is_quarantined_once() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start_with_config(dir.path(), "required_scope = [\"tenant\"]\n");
    let instance = InstanceId::from_random(9);
    let mut c = RawClient::handshake(&collector.socket, instance);
    let records = common::events(instance, 1, 2, "unscoped");
    for seq in 1..=5 {
        c.send(&batch(seq, records.clone()));
        assert!(matches!(c.recv(), Some(Frame::Reject(r)) if r.records.len() == 2));
        assert!(matches!(c.recv(), Some(Frame::Ack(a)) if a.stored == 0));
    }
    let stats = collector.cli(&["stats", "--json"]);
    let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(stats["quarantined"], 2, "{stats}");
}

/// Finding 3, the worst case: with the default settings, whatever local clients do
/// (every connection the cap allows, frames as large as allowed, of values larger
/// than allowed; frames of tiny fields that take many times their size once decoded;
/// batches refused whole, whose answers are as long as they are; frames stalled
/// half-way holding the read budget; clients that never read their acks), the
/// collector stays under 512 MiB.
#[test]
fn memory_stays_bounded_under_the_worst_case() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start_with(dir.path(), &["--http", "127.0.0.1:0"]);
    let http = collector.http_addr();
    let pid = collector.pid();
    let max_frame = logbook_proto::wire::DEFAULT_MAX_FRAME_BYTES as usize;
    // Writers: frames of the largest size, each value over the limit (cut: copied).
    let value = "v".repeat(300 << 10);
    let per_frame = (max_frame / (value.len() + 200) - 1) as u64;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Four writers of the largest frames of values over the limit, and four of 256 KiB
    // frames of small fields (booleans with three-letter keys), each taking about
    // fourteen times its size once decoded, just within what a frame may take.
    let mut small = logbook_proto::Fields::with_capacity(200);
    for k in 0..200 {
        small.push_unique(format!("k{k:02x}"), Value::Bool(true));
    }
    for w in 0..8u64 {
        let (socket, value, stop) = (collector.socket.clone(), value.clone(), stop.clone());
        let small = small.clone();
        std::thread::spawn(move || {
            let instance = InstanceId::from_random(1000 + w);
            let mut c = RawClient::handshake(&socket, instance);
            // Long enough to wait for a share of the read budget.
            c.set_write_timeout(Duration::from_secs(20));
            let mut seq = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                seq += 1;
                let records = if w < 4 {
                    let mut records = common::events(instance, seq * 1000, per_frame, "big");
                    for r in &mut records {
                        r.fields.set("payload", Value::Str(value.clone()));
                    }
                    records
                } else {
                    let mut records = common::events(instance, seq * 1000, 240, "small");
                    for r in &mut records {
                        r.fields = small.clone();
                    }
                    records
                };
                // Half of the writers read their acks; the others let them pile up.
                if c.try_send(&batch(seq, records)).is_err()
                    || (w % 2 == 0 && !matches!(c.recv(), Some(Frame::Ack(_))))
                {
                    break;
                }
            }
        });
    }
    // Two writers of frames of tiny fields (1,000 booleans a record, each three bytes
    // on the wire and dozens in memory), of 1 MiB and of the largest size: refused
    // (`LimitExceeded`), they reconnect and send again.
    let dense_sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    for w in 0..2u64 {
        let (socket, stop, sent) = (collector.socket.clone(), stop.clone(), dense_sent.clone());
        std::thread::spawn(move || {
            let instance = InstanceId::from_random(1100 + w);
            let n = if w == 0 { 150 } else { 2500 };
            // One-letter keys, repeated (the last of each wins): three bytes a field.
            let mut fields = logbook_proto::Fields::with_capacity(1000);
            for k in 0..1000u32 {
                let key = char::from_u32(32 + k % 95).unwrap().to_string();
                fields.push_unique(key, Value::Bool(true));
            }
            let mut records = common::events(instance, 1, n, "dense");
            for r in &mut records {
                r.fields = fields.clone();
            }
            let frame = batch(1, records);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // Connections closed a moment ago may still count against the cap.
                let mut c = RawClient::connect(&socket);
                c.send(&RawClient::hello(instance, "dense", None));
                if !matches!(c.recv(), Some(Frame::Welcome(_))) {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
                c.set_write_timeout(Duration::from_secs(2));
                if c.try_send(&frame).is_err() {
                    continue;
                }
                match c.recv() {
                    Some(Frame::Error(e)) if e.code == ErrorCode::LimitExceeded => {
                        sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    other => panic!("a frame of tiny fields: {other:?}"),
                }
            }
        });
    }
    // Two writers of batches refused whole (10,000 records under a reserved name), whose
    // answers (a reject entry each) they never read.
    for w in 0..2u64 {
        let (socket, stop) = (collector.socket.clone(), stop.clone());
        std::thread::spawn(move || {
            let instance = InstanceId::from_random(1200 + w);
            let mut c = RawClient::handshake(&socket, instance);
            c.set_write_timeout(Duration::from_secs(2));
            let mut seq = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                seq += 1;
                let records = common::events(instance, seq * 10_000, 10_000, "logbook.forged");
                if c.try_send(&batch(seq, records)).is_err() {
                    break;
                }
            }
        });
    }
    // Eight HTTP clients posting OTLP requests of spans of tiny attributes (a few bytes
    // each on the wire, dozens decoded), of about 1 MiB, over and over.
    let http_answers = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let request = {
        use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
        use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
        use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
        use prost::Message as _;
        let attributes: Vec<KeyValue> = (0..200)
            .map(|k| KeyValue {
                key: format!("{k:x}"),
                value: Some(AnyValue {
                    value: Some(any_value::Value::BoolValue(true)),
                }),
                ..Default::default()
            })
            .collect();
        let spans = (0..450u32)
            .map(|i| Span {
                trace_id: vec![7; 16],
                span_id: (u64::from(i) + 1).to_be_bytes().to_vec(),
                name: "s".into(),
                attributes: attributes.clone(),
                ..Default::default()
            })
            .collect();
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec()
    };
    let request = std::sync::Arc::new(request);
    for _ in 0..8 {
        let (stop, answers, request) = (stop.clone(), http_answers.clone(), request.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = common::http_post(
                    http,
                    "/v1/traces",
                    &[("Content-Type", "application/x-protobuf")],
                    &request,
                );
                answers.lock().unwrap().push(r.status);
            }
        });
    }
    std::thread::sleep(Duration::from_secs(2));
    // Stallers: the rest of the connections the cap allows, each half-way through a
    // frame of the largest size, holding as much of the read budget as they can.
    let mut stalled = Vec::new();
    for i in 0..236u64 {
        // The hellos of new connections are read whatever frames others hold.
        let mut c = RawClient::handshake(&collector.socket, InstanceId::from_random(2000 + i));
        c.send_bytes(&(max_frame as u32 - 1).to_le_bytes());
        c.send_bytes(&[3u8; 64 << 10]);
        stalled.push(c);
    }
    let started = Instant::now();
    let mut peak = 0;
    while started.elapsed() < Duration::from_secs(10) {
        peak = peak.max(vm_hwm_kib(pid));
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    peak = peak.max(vm_hwm_kib(pid));
    drop(stalled);
    eprintln!(
        "collector peak RSS under the worst case: {} MiB",
        peak >> 10
    );
    assert!(peak < 512 << 10, "peak RSS {} MiB", peak >> 10);
    assert!(dense_sent.load(std::sync::atomic::Ordering::Relaxed) > 0);
    let answers = http_answers.lock().unwrap().clone();
    eprintln!(
        "HTTP answers: {} ok, {} busy, {} too large",
        answers.iter().filter(|s| **s == 200).count(),
        answers.iter().filter(|s| **s == 503).count(),
        answers.iter().filter(|s| **s == 413).count()
    );
    assert!(
        answers.iter().all(|s| [200, 503, 413].contains(s)),
        "{answers:?}"
    );
    // And it still serves.
    let instance = InstanceId::from_random(3000);
    let mut good = RawClient::handshake(&collector.socket, instance);
    good.send(&batch(1, common::events(instance, 1, 3, "after")));
    let started = Instant::now();
    assert!(matches!(good.recv(), Some(Frame::Ack(a)) if a.stored == 3));
    eprintln!("a new client's ack after the load: {:?}", started.elapsed());
}

/// The peak resident set of process `pid`, in KiB.
fn vm_hwm_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Deliver 5: a disk budget. Past it the oldest ops records are purged; while the
/// store is still at it, batches are not acknowledged (the client keeps and resends
/// them) and ingest resumes once space is freed.
#[test]
fn a_disk_budget_bounds_the_store_and_ingest_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let mut collector = Collector::start_with_config(dir.path(), "max_db_size = \"4MiB\"\n");
    let instance = InstanceId::from_random(11);
    let mut c = RawClient::handshake(&collector.socket, instance);
    let value = "x".repeat(8 << 10);
    let (batches, per_batch) = (60u64, 20u64);
    let mut refused = 0;
    let deadline = Instant::now() + Duration::from_secs(180);
    for seq in 1..=batches {
        let mut records = common::events(instance, seq * 100, per_batch, &format!("b{seq}"));
        for r in &mut records {
            r.fields.set("payload", Value::Str(value.clone()));
        }
        loop {
            assert!(Instant::now() < deadline, "ingest did not resume");
            c.send(&batch(seq, records.clone()));
            match c.recv() {
                Some(Frame::Ack(a)) => {
                    assert_eq!(u64::from(a.stored + a.duplicates), per_batch);
                    break;
                }
                Some(Frame::Error(e)) => {
                    assert_eq!(e.code, ErrorCode::Unavailable, "{e:?}");
                    assert!(e.message.contains("disk budget"), "{e:?}");
                    refused += 1;
                    std::thread::sleep(Duration::from_millis(300));
                    c = RawClient::handshake(&collector.socket, instance);
                }
                other => panic!("expected an ack, got {other:?}"),
            }
        }
    }
    assert!(refused > 0, "the budget was reached at least once");
    assert!(collector.stop().success());
    // The newest records are all there; the oldest were purged, and it says so.
    assert_eq!(
        collector.query(&["--name", &format!("b{batches}")]).len() as u64,
        per_batch
    );
    assert!(collector.query(&["--name", "b1"]).is_empty());
    let purges = collector.query(&["--name", "logbook.purge"]);
    assert!(
        purges
            .iter()
            .any(|r| r.fields.get("origin") == Some(&Value::Str("disk_budget".into()))),
        "{purges:?}"
    );
    let conn = rusqlite::Connection::open(&collector.db).unwrap();
    let used: i64 = conn
        .query_row(
            "SELECT (SELECT page_count FROM pragma_page_count()) - (SELECT freelist_count FROM pragma_freelist_count())",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let page: i64 = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .unwrap();
    assert!(used * page <= 4 << 20, "{} bytes used", used * page);
}
