//! Keyset pagination through the CLI stays stable when thousands of records share a
//! timestamp: every record appears exactly once, in (ts, seq) order.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;

use common::{cli, fill_db, parse_jsonl};
use logbook_proto::Record;

fn pages(db: &str, limit: usize, extra: &[&str]) -> Vec<Record> {
    let mut all = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let limit_s = limit.to_string();
        let mut args = vec![
            "--db", db, "query", "--format", "jsonl", "--limit", &limit_s,
        ];
        args.extend_from_slice(extra);
        if let Some(b) = &before {
            args.extend_from_slice(&["--before", b]);
        }
        let out = cli(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let page = parse_jsonl(&out.stdout);
        let stderr = String::from_utf8(out.stderr).unwrap();
        all.extend(page.iter().cloned());
        match stderr
            .lines()
            .find_map(|l| l.strip_prefix("next page: --before "))
        {
            Some(cursor) => {
                assert_eq!(page.len(), limit, "a cursor only after a full page");
                before = Some(cursor.to_owned());
            }
            None => {
                assert!(page.len() < limit || page.is_empty() || all.len() % limit == 0);
                return all;
            }
        }
    }
}

#[test]
fn pages_over_shared_timestamps_return_each_record_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    fill_db(&db, 10_000, 7);
    let db = db.to_str().unwrap();

    let all = pages(db, 137, &[]);
    assert_eq!(all.len(), 10_000);
    let ids: HashSet<_> = all.iter().map(|r| r.id).collect();
    assert_eq!(ids.len(), 10_000, "no record twice");
    for w in all.windows(2) {
        assert!(
            (w[0].ts, w[0].seq) > (w[1].ts, w[1].seq),
            "newest first, strictly"
        );
    }

    // With a filter the pages walk its index and stay exact too.
    let acme = pages(db, 500, &["--tenant", "t1", "--level", "warn"]);
    let want = all
        .iter()
        .filter(|r| r.scope.tenant() == Some("t1") && r.level >= logbook_proto::Level::Warn)
        .count();
    assert_eq!(acme.len(), want);
    assert_eq!(
        acme.iter().map(|r| r.id).collect::<HashSet<_>>().len(),
        want
    );
}
