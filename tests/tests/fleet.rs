//! A fleet on PostgreSQL: three collectors on this machine write to one database,
//! fed by the example agents, the test application and the Python OpenTelemetry SDK;
//! the CLI (without a collector), the API and the web UI of any of them read all of it.
//! Uses the machine's PostgreSQL (`LOGBOOK_TEST_POSTGRES` names its server; scripts/test
//! starts it), a fresh database per test.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use common::{http_get, run_app, run_example, Collector};

const AGENT: &str = env!("CARGO_BIN_EXE_logbook-e2e-example-agent");

/// A fresh database on the test server, dropped with it.
struct Database {
    name: String,
}

fn admin_url() -> String {
    std::env::var("LOGBOOK_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

impl Database {
    fn new() -> Self {
        let name = format!(
            "logbook_fleet_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        );
        let mut c = postgres::Client::connect(&admin_url(), postgres::NoTls).unwrap();
        c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        Self { name }
    }

    fn url(&self) -> String {
        let admin = admin_url();
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        format!("{base}/{}", self.name)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&admin_url(), postgres::NoTls) {
            let _ = c.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                &[&self.name],
            );
            let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {}", self.name));
        }
    }
}

#[test]
fn three_collectors_write_to_one_postgres_and_each_reads_all_of_it() {
    let db = Database::new();
    let url = db.url();
    let keys = tempfile::tempdir().unwrap();
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    // One chain for the fleet: every collector signs with the same keys.
    let config = |i: usize| {
        format!(
            "key_dir = \"{}\"\ncheckpoint_file = \"{}\"\n",
            keys.path().join("keys").display(),
            dirs[i].path().join("fleet.checkpoints").display(),
        )
    };
    let collectors: Vec<Collector> = (0..3)
        .map(|i| {
            let http: &[&str] = if i == 1 {
                &[]
            } else {
                &["--http", "127.0.0.1:0"]
            };
            Collector::start_on(dirs[i].path(), &url, &config(i), http)
        })
        .collect();

    // The example agent through the first two, the test application through the
    // third, the Python SDK over OTLP/HTTP into the first.
    run_example(AGENT, &collectors[0]);
    run_example(AGENT, &collectors[1]);
    let report = run_app(
        &["burst", "300"],
        &[("LOGBOOK_ENDPOINT", &collectors[2].endpoint())],
    );
    assert_eq!(report.delivered, report.emitted);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/otel_agent.py");
    let py = Command::new(common::python())
        .arg(script)
        .arg("2")
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://{}", collectors[0].http_addr()),
        )
        .output()
        .unwrap();
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    let python_traces: BTreeSet<String> = String::from_utf8_lossy(&py.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(python_traces.len(), 2);

    // The CLI reads the fleet without any collector.
    let runs = |args: &[&str]| -> serde_json::Value {
        let out =
            common::cli(&[&["--db", url.as_str(), "runs", "--format", "json"], args].concat());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let all = runs(&["--limit", "1000"]);
    let all = all.as_array().unwrap();
    let agents = all.iter().filter(|r| r["agent"].is_string()).count();
    assert!(
        agents >= 6,
        "the example agent's runs of two collectors: {all:?}"
    );
    for t in &python_traces {
        assert!(
            all.iter()
                .any(|r| r["trace_id"].as_str() == Some(t.as_str())),
            "the Python agent's trace {t} is a run"
        );
    }
    let services: BTreeSet<String> = collectors[0]
        .query(&["--limit", "100000"])
        .into_iter()
        .map(|r| r.resource.service.clone())
        .collect();
    assert!(services.len() >= 3, "{services:?}");

    // The API of the third reads what the first stored; its UI shows the runs.
    let api = collectors[2].http_addr();
    let listed = http_get(api, "/api/v1/runs?limit=1000", None).json();
    let listed = listed["runs"]
        .as_array()
        .unwrap_or_else(|| panic!("{listed}"));
    assert_eq!(listed.len(), all.len());
    let page = http_get(api, "/runs", None);
    assert_eq!(page.status, 200);
    let first_python = python_traces.iter().next().unwrap();
    assert!(page.text().contains(&first_python[..8]) || page.text().contains("agent"));

    // The fleet's one audit chain verifies, from any of them.
    for (i, c) in collectors.iter().enumerate() {
        let config = dirs[i].path().join("logbook.toml");
        let v = common::cli(&[
            "--config",
            config.to_str().unwrap(),
            "--db",
            c.store.as_str(),
            "verify",
        ]);
        assert!(
            v.status.success(),
            "{}{}",
            String::from_utf8_lossy(&v.stdout),
            String::from_utf8_lossy(&v.stderr)
        );
    }
    drop(collectors);
}
