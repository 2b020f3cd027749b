//! Property-based testing of the read API: schemathesis (from PyPI, in the venv
//! `scripts/test` makes) generates requests from `/api/v1/openapi.json`, valid and
//! invalid, against a real collector holding agent runs, and checks every answer:
//! no 5xx, every status, content type, header and body as the document says, and
//! what violates the schema refused. Not checked: that every schema-valid request is
//! accepted (a purge's `tenant` without `older_than`, `type=llm` with `tool`: rules
//! across parameters that OpenAPI cannot state). The live stream never ends by
//! itself, so it is left to `http_api.rs`, which reads it as a client does.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{agent_runs, http_post, Collector};

fn schemathesis() -> PathBuf {
    let python = std::env::var_os("LOGBOOK_TEST_PYTHON").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/py/bin/python"),
        PathBuf::from,
    );
    let st = python.with_file_name("schemathesis");
    assert!(
        st.exists(),
        "no schemathesis at {}: run scripts/test, which installs it",
        st.display()
    );
    st
}

#[test]
fn the_api_keeps_to_its_openapi_document() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::start_with(dir.path(), &["--http", "127.0.0.1:0"]);
    let addr = c.http_addr();
    for (tenant, seed) in [("acme", 1), ("globex", 2)] {
        let r = http_post(
            addr,
            "/v1/traces",
            &[("Content-Type", "application/json")],
            &agent_runs(tenant, 3, Duration::ZERO, seed),
        );
        assert_eq!(r.status, 200);
    }
    let out = c.cli(&["token", "create", "--role", "admin"]);
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    // The collector reads its tokens again within a second; from then on, a request
    // without one is refused (schemathesis checks that too).
    std::thread::sleep(Duration::from_millis(1200));
    let out = Command::new(schemathesis())
        .args([
            "run",
            &format!("http://{addr}/api/v1/openapi.json"),
            "--header",
            &format!("Authorization: Bearer {token}"),
            "--exclude-checks",
            "positive_data_acceptance",
            "--exclude-path",
            "/api/v1/stream",
            "--max-examples",
            "40",
            "--seed",
            "20261202",
            "--request-timeout",
            "20",
            "--workers",
            "2",
        ])
        .env("SCHEMATHESIS_HOOKS", "")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("Tested: 15"), "{report}");
}
