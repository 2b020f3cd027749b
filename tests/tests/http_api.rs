//! The read API under `/api/v1`, tokens and their scope, the live stream, `/readyz`
//! and `/metrics`, against the real collector over real HTTP, with requests written by
//! hand on TCP streams as any client sends them.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeSet, HashSet};
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{agent_runs, http_get, http_post, http_request, Collector};
use logbook_proto::Timestamp;
use serde_json::{json, Value};

fn start(dir: &std::path::Path) -> (Collector, SocketAddr) {
    let c = Collector::start_with(dir, &["--http", "127.0.0.1:0"]);
    let addr = c.http_addr();
    (c, addr)
}

/// `n` log records of `tenant`, numbered from `from`.
fn logs(tenant: &str, from: u32, n: u32) -> Vec<u8> {
    let now = Timestamp::now().as_nanos();
    let records: Vec<Value> = (from..from + n)
        .map(|i| {
            json!({"timeUnixNano": (now + i64::from(i)).to_string(), "severityNumber": 9,
                "body": {"stringValue": format!("line {i}")},
                "attributes": [{"key": "tenant", "value": {"stringValue": tenant}}, {"key": "n", "value": {"intValue": i.to_string()}}]})
        })
        .collect();
    serde_json::to_vec(&json!({"resourceLogs": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "logger"}}]},
        "scopeLogs": [{"scope": {"name": "t"}, "logRecords": records}]}]}))
    .unwrap()
}

fn post_otlp(addr: SocketAddr, path: &str, body: &[u8], token: Option<&str>) -> u16 {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("Authorization", a));
    }
    let r = http_post(addr, path, &headers, body);
    assert!(r.status != 200 || r.text() == "{}", "{}", r.text());
    r.status
}

fn token(c: &Collector, args: &[&str]) -> String {
    let out = c.cli(&[&["token", "create"], args].concat());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(text.starts_with("lbk_"), "{text}");
    text
}

fn get_json(addr: SocketAddr, path: &str, token: &str) -> Value {
    let r = http_get(addr, path, Some(token));
    assert_eq!(r.status, 200, "GET {path}: {}", r.text());
    r.json()
}

#[test]
fn a_viewer_sees_only_its_tenant_on_every_route() {
    let dir = tempfile::tempdir().unwrap();
    let (c, addr) = start(dir.path());
    assert_eq!(
        post_otlp(
            addr,
            "/v1/traces",
            &agent_runs("acme", 3, Duration::ZERO, 1),
            None
        ),
        200
    );
    assert_eq!(
        post_otlp(
            addr,
            "/v1/traces",
            &agent_runs("globex", 2, Duration::ZERO, 2),
            None
        ),
        200
    );
    let viewer = token(&c, &["--role", "viewer", "--tenant", "acme"]);
    let admin = token(&c, &["--role", "admin", "--name", "ops"]);
    let ingest = token(&c, &["--role", "ingest"]);
    // A token made while the collector runs counts within a second.
    std::thread::sleep(Duration::from_millis(1200));

    // Without a token, with a wrong one, with one that may only send.
    let r = http_get(addr, "/api/v1/records", None);
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "unauthenticated");
    assert!(r.header("www-authenticate").is_some());
    assert_eq!(
        http_get(addr, "/api/v1/records", Some("lbk_nope_x")).status,
        401
    );
    let r = http_get(addr, "/api/v1/records", Some(&ingest));
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(
        post_otlp(
            addr,
            "/v1/traces",
            &agent_runs("acme", 1, Duration::ZERO, 3),
            Some(&viewer)
        ),
        403
    );
    assert_eq!(
        post_otlp(
            addr,
            "/v1/traces",
            &agent_runs("acme", 1, Duration::ZERO, 3),
            Some(&ingest)
        ),
        200
    );

    // What the admin sees: both tenants; one of globex's records and runs.
    let all = get_json(addr, "/api/v1/records?tenant=globex&limit=1000", &admin);
    let globex_record = all["records"][0]["id"].as_str().unwrap().to_owned();
    let runs = get_json(addr, "/api/v1/runs?tenant=globex", &admin);
    assert_eq!(runs["runs"].as_array().unwrap().len(), 2);
    let globex_run = runs["runs"][0]["run_id"].as_str().unwrap().to_owned();
    let acme_records = get_json(addr, "/api/v1/records?tenant=acme&limit=1000", &admin)["records"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(acme_records, 8, "four runs of two spans");

    // Every GET route the document lists, as the viewer: nothing of globex anywhere;
    // globex's record and run do not exist for it (404, not 403).
    let doc = http_get(addr, "/api/v1/openapi.json", None).json();
    let mut walked = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if item.get("get").is_none() || path.ends_with("openapi.json") {
            continue;
        }
        walked.insert(path.clone());
        let url = path
            .replace("/records/{id}", &format!("/records/{globex_record}"))
            .replace("/runs/{id}", &format!("/runs/{globex_run}"));
        let r = if path.ends_with("/stream") {
            sse_for(
                addr,
                &format!("{url}?after=0"),
                &viewer,
                Duration::from_millis(1500),
            )
        } else {
            http_get(addr, &url, Some(&viewer))
        };
        let text = r.text();
        assert!(!text.contains("globex"), "{path} leaked: {text}");
        match path.as_str() {
            // Exception groups and span metrics gather every tenant's records: none
            // for a scoped viewer.
            "/api/v1/audit/verify"
            | "/api/v1/errors"
            | "/api/v1/errors/{fingerprint}"
            | "/api/v1/metrics" => {
                assert_eq!(r.status, 403, "{path}: {text}")
            }
            p if p.contains('{') => assert_eq!(r.status, 404, "{path}: {text}"),
            _ => {
                assert_eq!(r.status, 200, "{path}: {text}");
                assert!(
                    text.contains("acme") || path.ends_with("/stats") || path.ends_with("/cost"),
                    "{path}: {text}"
                );
            }
        }
    }
    assert_eq!(walked.len(), 13, "{walked:?}");

    // Lists, counts and sums are the viewer's own.
    let mine = get_json(addr, "/api/v1/records?limit=1000", &viewer);
    assert_eq!(mine["records"].as_array().unwrap().len(), acme_records);
    assert!(
        get_json(addr, "/api/v1/records?tenant=globex", &viewer)["records"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let stats = get_json(addr, "/api/v1/stats", &viewer);
    assert_eq!(stats["records"], acme_records);
    assert_eq!(stats["runs"], 4);
    let cost = get_json(addr, "/api/v1/cost?by=tenant", &viewer);
    assert_eq!(cost["groups"].as_array().unwrap().len(), 1);
    assert_eq!(cost["groups"][0]["key"], "acme");
    assert_eq!(cost["groups"][0]["calls"], 4);
    let export = http_get(addr, "/api/v1/export?format=jsonl", Some(&viewer));
    assert_eq!(export.status, 200);
    assert_eq!(export.text().lines().count(), acme_records);
    // The admin's own detail views work.
    let run = get_json(addr, &format!("/api/v1/runs/{globex_run}"), &admin);
    assert_eq!(run["run"]["tenant"], "globex");
    assert_eq!(run["records"].as_array().unwrap().len(), 2);
    let tree = &run["tree"];
    let root = tree["roots"][0]["span"].as_u64().unwrap() as usize;
    assert_eq!(tree["spans"][root]["name"], "invoke_agent");
    assert_eq!(tree["spans"][root]["children"].as_array().unwrap().len(), 1);
    let one = get_json(addr, &format!("/api/v1/records/{globex_record}"), &admin);
    assert_eq!(one["id"], globex_record.as_str());

    // The ingest token's name is on what it sent.
    let sent = get_json(addr, "/api/v1/records?tenant=acme&limit=1000", &admin);
    let by_ingest = sent["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["origin"].to_string().contains("ingest"))
        .count();
    assert_eq!(by_ingest, 2, "{sent}");

    // Revoked: refused within a second.
    let out = c.cli(&["token", "revoke", "viewer tenant=acme"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(http_get(addr, "/api/v1/records", Some(&viewer)).status, 401);
    let list = c.cli(&["token", "list", "--json"]);
    let list: Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 3);
    assert!(!String::from_utf8_lossy(&c.cli(&["token", "list"]).stdout).contains("lbk_"));
    // Creating and revoking tokens is in the audit trail.
    let trail = c.query(&["--category", "audit", "--name", "logbook.token_create"]);
    assert_eq!(trail.len(), 3);
    assert_eq!(
        c.query(&["--category", "audit", "--name", "logbook.token_revoke"])
            .len(),
        1
    );
}

#[test]
fn pages_follow_their_cursors_to_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let (_c, addr) = start(dir.path());
    assert_eq!(
        post_otlp(
            addr,
            "/v1/traces",
            &agent_runs("acme", 7, Duration::ZERO, 1),
            None
        ),
        200
    );
    let walk = |first: &str, key: &str, cursor: &str, id: &str| -> Vec<String> {
        let mut seen = Vec::new();
        let mut url = first.to_owned();
        loop {
            let page = http_get(addr, &url, None).json();
            for item in page[key].as_array().unwrap() {
                seen.push(item[id].to_string());
            }
            match page["next"].as_str() {
                Some(next) => url = format!("{first}&{cursor}={next}"),
                None => return seen,
            }
        }
    };
    let records = walk(
        "/api/v1/records?limit=3&tenant=acme",
        "records",
        "before",
        "id",
    );
    assert_eq!(records.len(), 14);
    assert_eq!(records.iter().collect::<HashSet<_>>().len(), 14);
    let runs = walk("/api/v1/runs?limit=2", "runs", "after", "run_id");
    assert_eq!(runs.len(), 7);
    assert_eq!(runs.iter().collect::<HashSet<_>>().len(), 7);
    let calls = walk("/api/v1/calls?limit=3", "calls", "before", "span_id");
    assert_eq!(calls.len(), 7);
    assert_eq!(calls.iter().collect::<HashSet<_>>().len(), 7);
    // Compressed when the client asks.
    let gz = http_request(
        addr,
        "GET",
        "/api/v1/records?limit=1000",
        &[("Accept-Encoding", "gzip")],
        b"",
    );
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    let mut plain = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz.body[..]), &mut plain)
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&plain).unwrap()["records"]
            .as_array()
            .unwrap()
            .len(),
        15
    );
    // Limits are capped, filters are checked, nothing unknown is ignored.
    for (url, status) in [
        ("/api/v1/records?limit=0", 400),
        ("/api/v1/records?level=loud", 400),
        ("/api/v1/records?sort=asc", 400),
        ("/api/v1/records?since=1h&until=2h", 400),
        ("/api/v1/records?level=", 200),
        ("/api/v1/records?limit=100000", 200),
        ("/api/v1/records/zz", 400),
        ("/api/v1/records/0123456789abcdef0123456789abcdef", 404),
        ("/api/v1/runs/nope", 404),
        ("/api/v1/cost?by=planet", 400),
        ("/api/v1/export?format=xml", 400),
        ("/api/v1/nothing", 404),
    ] {
        let r = http_get(addr, url, None);
        assert_eq!(r.status, status, "{url}: {}", r.text());
        if status != 200 {
            assert!(r.json()["error"]["message"].as_str().is_some(), "{url}");
        }
    }
}

/// A server-sent events client on a raw TCP stream.
struct Sse {
    reader: BufReader<TcpStream>,
    pending: String,
}

#[derive(Debug, Default, Clone)]
struct Event {
    event: String,
    id: Option<String>,
    data: String,
}

impl Sse {
    fn open(addr: SocketAddr, path: &str, token: Option<&str>, last_id: Option<&str>) -> Self {
        let mut stream = TcpStream::connect(addr).unwrap();
        let mut req =
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n");
        if let Some(t) = token {
            req.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        if let Some(id) = last_id {
            req.push_str(&format!("Last-Event-ID: {id}\r\n"));
        }
        req.push_str("\r\n");
        stream.write_all(req.as_bytes()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut reader = BufReader::new(stream);
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        assert!(status.contains(" 200 "), "{status}");
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
        }
        Self {
            reader,
            pending: String::new(),
        }
    }

    /// The next event (comments skipped); `None` when the stream ends.
    fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(end) = self.pending.find("\n\n") {
                let raw: String = self.pending.drain(..end + 2).collect();
                let mut e = Event::default();
                for line in raw.lines() {
                    if let Some((k, v)) = line.split_once(": ") {
                        match k {
                            "event" => e.event = v.to_owned(),
                            "id" => e.id = Some(v.to_owned()),
                            "data" => e.data = v.to_owned(),
                            _ => {}
                        }
                    }
                }
                if e.event.is_empty() {
                    continue;
                }
                return Some(e);
            }
            // One chunk of the chunked body.
            let mut size = String::new();
            if self.reader.read_line(&mut size).ok()? == 0 {
                return None;
            }
            let size = usize::from_str_radix(size.trim(), 16).ok()?;
            if size == 0 {
                return None;
            }
            let mut chunk = vec![0; size + 2];
            self.reader.read_exact(&mut chunk).ok()?;
            self.pending
                .push_str(std::str::from_utf8(&chunk[..size]).unwrap());
        }
    }
}

/// What a stream sends within `wait`, as a response.
fn sse_for(addr: SocketAddr, path: &str, token: &str, wait: Duration) -> common::HttpResponse {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\r\n"
    )
    .unwrap();
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    common::HttpResponse {
        status,
        headers: Vec::new(),
        body: text
            .split_once("\r\n\r\n")
            .map(|x| x.1)
            .unwrap_or("")
            .into(),
    }
}

#[test]
fn the_live_stream_resumes_after_a_drop_with_no_gap_and_no_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let (c, addr) = start(dir.path());
    let mut first = Sse::open(addr, "/api/v1/stream?tenant=acme", None, None);
    let ready = first.next().unwrap();
    assert_eq!(ready.event, "ready");
    // Records of another tenant are not sent to this stream.
    assert_eq!(
        post_otlp(addr, "/v1/logs", &logs("globex", 0, 50), None),
        200
    );
    let mut seen: Vec<String> = Vec::new();
    let mut last_id = ready.id.clone();
    let mut sent = 0;
    for batch in 0..4 {
        assert_eq!(
            post_otlp(addr, "/v1/logs", &logs("acme", batch * 25, 25), None),
            200
        );
        sent += 25;
    }
    // Read part of it, then drop the connection.
    while seen.len() < 60 {
        let e = first.next().unwrap();
        assert_eq!(e.event, "record", "{e:?}");
        let r: Value = serde_json::from_str(&e.data).unwrap();
        assert_eq!(r["tenant"], "acme");
        seen.push(r["id"].as_str().unwrap().to_owned());
        last_id = e.id;
    }
    drop(first);
    for batch in 4..8 {
        assert_eq!(
            post_otlp(addr, "/v1/logs", &logs("acme", batch * 25, 25), None),
            200
        );
        sent += 25;
    }
    let mut second = Sse::open(addr, "/api/v1/stream?tenant=acme", None, last_id.as_deref());
    assert_eq!(second.next().unwrap().event, "ready");
    while seen.len() < sent {
        let e = second.next().unwrap();
        assert_eq!(e.event, "record", "{e:?}");
        let r: Value = serde_json::from_str(&e.data).unwrap();
        seen.push(r["id"].as_str().unwrap().to_owned());
    }
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), sent, "a record came twice");
    let stored: HashSet<String> = c
        .query(&["--tenant", "acme", "--limit", "1000"])
        .iter()
        .map(|r| r.id.to_string())
        .collect();
    assert_eq!(stored, seen.into_iter().collect::<HashSet<_>>());
}

#[test]
fn sigterm_ends_every_stream_with_a_final_event() {
    let dir = tempfile::tempdir().unwrap();
    let (mut c, addr) = start(dir.path());
    let mut streams: Vec<Sse> = (0..3)
        .map(|_| Sse::open(addr, "/api/v1/stream", None, None))
        .collect();
    for s in &mut streams {
        assert_eq!(s.next().unwrap().event, "ready");
    }
    let stopped = Instant::now();
    let status = c.stop();
    assert!(status.success(), "{status:?}");
    assert!(stopped.elapsed() < Duration::from_secs(10));
    for s in &mut streams {
        let e = s.next().unwrap();
        assert_eq!(e.event, "end");
        assert!(e.data.contains("shutdown"), "{e:?}");
        assert!(s.next().is_none());
    }
}

#[test]
fn purge_over_http_is_for_admins_returns_what_it_deleted_and_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    let (c, addr) = start(dir.path());
    let old = Duration::from_secs(40 * 86_400);
    assert_eq!(
        post_otlp(addr, "/v1/traces", &agent_runs("acme", 3, old, 1), None),
        200
    );
    assert_eq!(
        post_otlp(
            addr,
            "/v1/traces",
            &agent_runs("acme", 2, Duration::ZERO, 2),
            None
        ),
        200
    );
    let admin = token(&c, &["--role", "admin"]);
    let viewer = token(&c, &["--role", "viewer"]);
    std::thread::sleep(Duration::from_millis(1200));
    let purge = |token: &str, body: &str| {
        let auth = format!("Bearer {token}");
        http_request(
            addr,
            "POST",
            "/api/v1/purge",
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            body.as_bytes(),
        )
    };
    assert_eq!(purge(&viewer, r#"{"older_than":"30d"}"#).status, 403);
    // Only as JSON, said so: a web page cannot post it across origins unasked.
    let auth = format!("Bearer {admin}");
    let plain = http_request(
        addr,
        "POST",
        "/api/v1/purge",
        &[("Authorization", &auth), ("Content-Type", "text/plain")],
        br#"{"older_than":"30d","dry_run":false}"#,
    );
    assert_eq!(plain.status, 415, "{}", plain.text());
    assert_eq!(purge(&admin, r#"{"older_than":"soon"}"#).status, 400);
    assert_eq!(purge(&admin, r#"{"older":"30d"}"#).status, 400);
    let dry = purge(&admin, r#"{"older_than":"30d"}"#);
    assert_eq!(dry.status, 200, "{}", dry.text());
    let dry = dry.json();
    assert_eq!(
        (dry["dry_run"].as_bool(), dry["ops"].as_u64()),
        (Some(true), Some(6))
    );
    assert_eq!(
        get_json(addr, "/api/v1/runs", &admin)["runs"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    let done = purge(&admin, r#"{"older_than":"30d","dry_run":false}"#).json();
    assert_eq!(
        (done["dry_run"].as_bool(), done["ops"].as_u64()),
        (Some(false), Some(6))
    );
    assert_eq!(done["runs"], 3);
    assert_eq!(
        get_json(addr, "/api/v1/runs", &admin)["runs"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let trail = c.query(&["--category", "audit", "--name", "logbook.purge"]);
    assert!(
        trail
            .iter()
            .any(|r| format!("{:?}", r.fields).contains("api: ")),
        "{trail:?}"
    );
    let verify = get_json(addr, "/api/v1/audit/verify", &admin);
    assert_eq!(verify["ok"], true, "{verify}");
}

#[test]
fn readiness_and_metrics_say_what_the_collector_did() {
    let dir = tempfile::tempdir().unwrap();
    let (_c, addr) = start(dir.path());
    let r = http_get(addr, "/readyz", None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["ready"], true);
    assert_eq!(http_get(addr, "/healthz", None).status, 200);
    // The same request twice: the retry is stored once.
    let body = logs("acme", 0, 30);
    assert_eq!(post_otlp(addr, "/v1/logs", &body, None), 200);
    assert_eq!(post_otlp(addr, "/v1/logs", &body, None), 200);
    assert_eq!(http_get(addr, "/api/v1/records/zz", None).status, 400);
    let r = http_get(addr, "/metrics", None);
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = r.text();
    for line in [
        "logbook_records_total{transport=\"http\",outcome=\"received\"} 60",
        "logbook_records_total{transport=\"http\",outcome=\"stored\"} 30",
        "logbook_records_total{transport=\"http\",outcome=\"duplicate\"} 30",
        "logbook_http_requests_total{route=\"/v1/logs\",status=\"200\"} 2",
        "logbook_http_requests_total{route=\"/api/v1/records/{id}\",status=\"400\"} 1",
        "logbook_queue_capacity_records ",
        "logbook_database_bytes ",
        "logbook_commit_seconds_count ",
        "logbook_emit_to_commit_seconds_bucket",
        "# EOF",
    ] {
        assert!(text.contains(line), "no {line:?} in\n{text}");
    }
}

#[test]
fn slow_clients_are_cut_off_and_cannot_hold_every_connection() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("logbook.toml");
    std::fs::write(
        &config,
        "http_max_connections = 2\nhttp_header_timeout_secs = 1\n",
    )
    .unwrap();
    let c = Collector::start_with(
        dir.path(),
        &[
            "--config",
            config.to_str().unwrap(),
            "--http",
            "127.0.0.1:0",
        ],
    );
    let addr = c.http_addr();
    // Two clients take every connection, each with half a request, and stall.
    let mut slow: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(b"GET /healthz HTTP/1.1\r\nHo").unwrap();
            s
        })
        .collect();
    // A third is still answered: the stalled ones are closed at the header timeout.
    let r = http_get(addr, "/healthz", None);
    assert_eq!(r.status, 200, "{}", r.text());
    for s in &mut slow {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut rest = Vec::new();
        let end = s.read_to_end(&mut rest);
        assert!(end.is_ok(), "a stalled client was not cut off: {end:?}");
    }
    // So is a kept-alive connection that asks nothing more.
    let mut idle = TcpStream::connect(addr).unwrap();
    write!(idle, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut all = Vec::new();
    assert!(idle.read_to_end(&mut all).is_ok());
    assert!(String::from_utf8_lossy(&all).starts_with("HTTP/1.1 200"));
}

#[test]
fn restarting_the_collector_while_a_client_sends_loses_nothing_it_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    // A fixed port, so the sender finds the collector again after each restart.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut c = Collector::start_with(dir.path(), &["--http", &addr.to_string()]);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sender = {
        let done = std::sync::Arc::clone(&done);
        std::thread::spawn(move || {
            let mut acknowledged = Vec::new();
            let mut attempts = 0u32;
            let mut i = 0u32;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                attempts += 1;
                let body = logs("acme", i * 20, 20);
                let answer = common::try_http_request(
                    addr,
                    "POST",
                    "/v1/logs",
                    &[("Content-Type", "application/json")],
                    &body,
                );
                // Refused connections, cut answers and 503s happen while it restarts;
                // only a 200 says the records are stored.
                if answer.ok().map(|a| a.status) == Some(200) {
                    acknowledged.push(i);
                }
                i += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            (acknowledged, attempts)
        })
    };
    let wait_for = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while http_get(addr, "/api/v1/records?limit=1000", None).json()["records"]
            .as_array()
            .map_or(0, Vec::len)
            < n
        {
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_for(100);
    // A clean restart, then a crash.
    assert!(c.stop().success());
    c.restart();
    wait_for(400);
    c.kill();
    c.restart();
    wait_for(700);
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let (acknowledged, attempts) = sender.join().unwrap();
    assert!(
        acknowledged.len() > 30,
        "{} of {attempts}",
        acknowledged.len()
    );
    let stored: HashSet<String> = c
        .query(&["--name", "log", "--limit", "100000"])
        .into_iter()
        .filter_map(|r| r.message)
        .collect();
    for i in &acknowledged {
        for n in i * 20..i * 20 + 20 {
            assert!(
                stored.contains(&format!("line {n}")),
                "request {i} was acknowledged but line {n} is not stored"
            );
        }
    }
}

#[test]
fn without_tokens_only_local_clients_are_served_and_never_off_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let (_c, addr) = start(dir.path());
    let get = |headers: &[(&str, &str)]| http_request(addr, "GET", "/api/v1/runs", headers, b"");
    assert_eq!(get(&[]).status, 200);
    assert_eq!(get(&[("Origin", &format!("http://{addr}"))]).status, 200);
    assert_eq!(get(&[("Origin", "http://localhost:3000")]).status, 200);
    // A web page elsewhere, through the operator's browser; or a name that resolves
    // to this machine (DNS rebinding).
    let r = get(&[("Origin", "https://evil.example")]);
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(get(&[("Origin", "null")]).status, 403);
    assert_eq!(get(&[("Sec-Fetch-Site", "cross-site")]).status, 403);
    assert_eq!(get(&[("Sec-Fetch-Site", "same-origin")]).status, 200);
    let mut raw = TcpStream::connect(addr).unwrap();
    write!(
        raw,
        "GET /api/v1/runs HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    raw.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert_eq!(
        post_otlp(addr, "/v1/logs", &logs("acme", 0, 1), None),
        200,
        "a local exporter needs no token"
    );

    // Listening beyond loopback needs a token; once every token is revoked, no
    // request is served without one.
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let wide = format!("0.0.0.0:{port}");
    let db = dir.path().join("logbook.db");
    let refused = common::cli(&[
        "serve",
        "--db",
        db.to_str().unwrap(),
        "--socket",
        dir.path().join("s.sock").to_str().unwrap(),
        "--http",
        &wide,
    ]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("not a loopback address"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let created = common::cli(&[
        "--db",
        db.to_str().unwrap(),
        "token",
        "create",
        "--role",
        "admin",
    ]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let c = Collector::start_with(dir.path(), &["--http", &wide]);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    c.http_addr();
    assert_eq!(http_get(addr, "/api/v1/runs", None).status, 401);
    let out = c.cli(&["token", "revoke", "admin"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(http_get(addr, "/api/v1/runs", None).status, 401);
    assert_eq!(post_otlp(addr, "/v1/logs", &logs("acme", 0, 1), None), 401);
}

#[test]
fn genai_events_sent_as_log_records_land_on_their_llm_call() {
    let dir = tempfile::tempdir().unwrap();
    let (_c, addr) = start(dir.path());
    let now = Timestamp::now().as_nanos();
    let span = |trace: &str, with_messages: bool| {
        let mut attributes = vec![
            json!({"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}}),
            json!({"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}}),
        ];
        if with_messages {
            attributes.push(json!({"key": "gen_ai.input.messages", "value": {"stringValue": "[{\"role\":\"user\",\"content\":\"from the attributes\"}]"}}));
        }
        serde_json::to_vec(&json!({"resourceSpans": [{"resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "events"}}]},
            "scopeSpans": [{"spans": [{"traceId": trace, "spanId": "00000000000000aa", "name": "chat gpt-4o",
                "startTimeUnixNano": (now - 1_000_000).to_string(), "endTimeUnixNano": now.to_string(),
                "attributes": attributes}]}]}]}))
        .unwrap()
    };
    let events = |trace: &str| {
        let event = |name: &str, body: Value, t: i64| {
            json!({"timeUnixNano": t.to_string(), "eventName": name, "traceId": trace,
                "spanId": "00000000000000aa", "body": body,
                "attributes": [{"key": "gen_ai.system", "value": {"stringValue": "openai"}}]})
        };
        serde_json::to_vec(&json!({"resourceLogs": [{"resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "events"}}]},
            "scopeLogs": [{"logRecords": [
                event("gen_ai.user.message", json!({"kvlistValue": {"values": [
                    {"key": "content", "value": {"stringValue": "what is the time?"}}]}}), now - 900_000),
                event("gen_ai.choice", json!({"kvlistValue": {"values": [
                    {"key": "index", "value": {"intValue": "0"}},
                    {"key": "finish_reason", "value": {"stringValue": "stop"}},
                    {"key": "message", "value": {"kvlistValue": {"values": [
                        {"key": "content", "value": {"stringValue": "noon"}}]}}}]}}), now - 100_000),
            ]}]}]}))
        .unwrap()
    };
    // Events after their span, and before it; and a span whose attributes hold its
    // prompt already.
    let (after, before, own) = (
        "0000000000000000000000000000a001",
        "0000000000000000000000000000a002",
        "0000000000000000000000000000a003",
    );
    assert_eq!(
        post_otlp(addr, "/v1/traces", &span(after, false), None),
        200
    );
    assert_eq!(post_otlp(addr, "/v1/logs", &events(after), None), 200);
    assert_eq!(post_otlp(addr, "/v1/logs", &events(before), None), 200);
    assert_eq!(
        post_otlp(addr, "/v1/traces", &span(before, false), None),
        200
    );
    assert_eq!(post_otlp(addr, "/v1/traces", &span(own, true), None), 200);
    assert_eq!(post_otlp(addr, "/v1/logs", &events(own), None), 200);
    let calls = http_get(addr, "/api/v1/calls", None).json();
    let calls = calls["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 3);
    for trace in [after, before] {
        let call = calls.iter().find(|c| c["trace_id"] == trace).unwrap();
        assert_eq!(
            call["input_messages"],
            json!([{"role": "user", "content": "what is the time?"}]),
            "{call}"
        );
        assert_eq!(
            call["output_messages"],
            json!([{"role": "assistant", "index": 0, "finish_reason": "stop", "content": "noon"}]),
            "{call}"
        );
    }
    let call = calls.iter().find(|c| c["trace_id"] == own).unwrap();
    assert_eq!(
        call["input_messages"],
        json!([{"role": "user", "content": "from the attributes"}]),
        "the attributes win: {call}"
    );
    assert_eq!(call["output_messages"][0]["content"], "noon", "{call}");
}
