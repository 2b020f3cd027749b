//! Applications on other hosts: the wire protocol over TCP with TLS. The tests make
//! their own CA and certificates, start the real collector with `--listen-tls`, and
//! run the real test application with `LOGBOOK_ENDPOINT=tls://localhost:PORT`.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{app_command, parse_report, run_app, wait_timeout, Collector};
use logbook_proto::Value;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

/// A CA, a server certificate it signed for `localhost`, and a second CA
/// that signed nothing the server shows, as PEM files in a directory.
struct Pki {
    ca: PathBuf,
    other_ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn pki(dir: &Path) -> Pki {
    let issuer = ca("logbook test CA");
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "logbook collector");
    let cert = params.signed_by(&key, &issuer).unwrap();
    let p = Pki {
        ca: dir.join("ca.pem"),
        other_ca: dir.join("other-ca.pem"),
        cert: dir.join("collector.pem"),
        key: dir.join("collector.key"),
    };
    std::fs::write(&p.ca, issuer.pem()).unwrap();
    std::fs::write(&p.other_ca, ca("someone else's CA").pem()).unwrap();
    std::fs::write(&p.cert, cert.pem()).unwrap();
    std::fs::write(&p.key, key.serialize_pem()).unwrap();
    p
}

const TOKEN: &str = "remote-secret-7f3a";

/// A collector with a shared token and a TLS listener on `port` (0: any).
fn start(dir: &Path, pki: &Pki, port: u16) -> Collector {
    Collector::start_with_config(
        dir,
        &format!(
            "token = \"{TOKEN}\"\nlisten_tls = \"127.0.0.1:{port}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
            pki.cert.display(),
            pki.key.display()
        ),
    )
}

#[test]
fn an_app_on_another_host_sends_over_tls_with_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let collector = start(dir.path(), &pki, 0);
    let endpoint = format!("tls://localhost:{}", collector.tls_addr().port());

    let report = run_app(
        &["burst", "500"],
        &[
            ("LOGBOOK_ENDPOINT", &endpoint),
            ("LOGBOOK_TLS_CA", pki.ca.to_str().unwrap()),
            ("LOGBOOK_TOKEN", TOKEN),
            ("LOGBOOK_SERVICE", "remote-app"),
        ],
    );
    assert_eq!(
        (report.delivered, report.dropped, report.undelivered),
        (report.emitted, 0, 0),
        "{report:?}"
    );
    let out = collector.cli(&["query", "--limit", "10000", "--format", "jsonl"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["service"] == "remote-app")
        .collect();
    assert_eq!(rows.len() as u64, report.emitted);
    // Every record says it came over TLS, with which token.
    assert!(
        rows.iter()
            .all(|r| r["origin"]["transport"] == "tls" && r["origin"]["token"] == "shared token"),
        "{}",
        rows[0]
    );

    // An API token of the ingest role serves too; a viewer's does not.
    let created = collector.cli(&["token", "create", "--role", "ingest", "--name", "pods"]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let ingest = String::from_utf8(created.stdout).unwrap();
    let ingest = ingest
        .split_whitespace()
        .find(|w| w.starts_with("lbk_"))
        .unwrap()
        .to_owned();
    let report = run_app(
        &["burst", "50"],
        &[
            ("LOGBOOK_ENDPOINT", &endpoint),
            ("LOGBOOK_TLS_CA", pki.ca.to_str().unwrap()),
            ("LOGBOOK_TOKEN", &ingest),
            ("LOGBOOK_SERVICE", "pod-app"),
        ],
    );
    assert_eq!(report.delivered, report.emitted, "{report:?}");
    let pods = collector
        .query(&["--limit", "10000"])
        .into_iter()
        .filter(|r| r.resource.service == "pod-app")
        .count();
    assert_eq!(pods as u64, report.emitted);
}

#[test]
fn a_wrong_token_or_certificate_stores_nothing_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let collector = start(dir.path(), &pki, 0);
    let endpoint = format!("tls://localhost:{}", collector.tls_addr().port());
    let attempt = |service: &str, token: Option<&str>, ca: &Path, endpoint: &str| {
        let mut env = vec![
            ("LOGBOOK_ENDPOINT", endpoint.to_owned()),
            ("LOGBOOK_TLS_CA", ca.to_str().unwrap().to_owned()),
            ("LOGBOOK_SERVICE", service.to_owned()),
            ("LOGBOOK_FLUSH_TIMEOUT", "2s".to_owned()),
        ];
        if let Some(t) = token {
            env.push(("LOGBOOK_TOKEN", t.to_owned()));
        }
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let out = app_command(&["burst", "20"], &env).output().unwrap();
        assert!(out.status.success());
        (
            parse_report(&out.stdout),
            String::from_utf8(out.stderr).unwrap(),
        )
    };

    // No token, then a wrong one: refused at the hello.
    let (report, stderr) = attempt("tokenless", None, &pki.ca, &endpoint);
    assert_eq!(report.delivered, 0, "{report:?}");
    assert!(stderr.contains("missing or wrong token"), "{stderr}");
    let (report, stderr) = attempt("wrong", Some("not-the-token"), &pki.ca, &endpoint);
    assert_eq!(report.delivered, 0, "{report:?}");
    assert!(stderr.contains("missing or wrong token"), "{stderr}");

    // The right token to a server whose certificate the app's CA did not sign: the
    // app never sends it.
    let (report, stderr) = attempt("other-ca", Some(TOKEN), &pki.other_ca, &endpoint);
    assert_eq!(report.delivered, 0, "{report:?}");
    assert!(stderr.contains("certificate"), "{stderr}");
    // A name the certificate does not carry.
    let by_other_name = endpoint.replace("localhost", "127.0.0.1");
    let (report, stderr) = attempt("wrong-name", Some(TOKEN), &pki.ca, &by_other_name);
    assert_eq!(report.delivered, 0, "{report:?}");
    assert!(stderr.contains("certificate"), "{stderr}");

    let services: BTreeSet<String> = collector
        .query(&["--limit", "1000"])
        .into_iter()
        .map(|r| r.resource.service.clone())
        .collect();
    for s in ["tokenless", "wrong", "other-ca", "wrong-name"] {
        assert!(!services.contains(s), "{s} stored: {services:?}");
    }
    // The failures are in the trail, naming the peer's address, never what it sent.
    let failures = collector.query(&["--name", "logbook.auth_failures", "--limit", "10"]);
    assert!(!failures.is_empty(), "auth failures audited");
    let text = format!("{failures:?}");
    assert!(text.contains("127.0.0.1"), "{text}");
    assert!(!text.contains("not-the-token"), "{text}");
}

#[test]
fn a_collector_restart_loses_nothing_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    // A fixed port, so the app finds the collector again after its restart.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut collector = start(dir.path(), &pki, port);
    let endpoint = format!("tls://localhost:{port}");
    let count = 2000u64;
    let mut app = app_command(
        &["stream", "run-tls", &count.to_string(), "1000"],
        &[
            ("LOGBOOK_ENDPOINT", &endpoint),
            ("LOGBOOK_TLS_CA", pki.ca.to_str().unwrap()),
            ("LOGBOOK_TOKEN", TOKEN),
            ("LOGBOOK_FLUSH_TIMEOUT", "60s"),
        ],
    )
    .spawn()
    .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    // Stopped, then killed: what it read but did not acknowledge must be resent.
    common::signal(collector.pid(), libc::SIGSTOP);
    std::thread::sleep(Duration::from_millis(300));
    collector.kill();
    std::thread::sleep(Duration::from_millis(800));
    collector.restart();

    let status = wait_timeout(&mut app, Duration::from_secs(120));
    let mut stdout = Vec::new();
    std::io::Read::read_to_end(app.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    assert!(status.success());
    let report = parse_report(&stdout);
    assert_eq!(
        (report.delivered, report.dropped, report.undelivered),
        (count + 2, 0, 0),
        "{report:?}"
    );
    assert!(report.resent > 0, "batches were resent: {report:?}");
    let records = collector.query(&["--run", "run-tls", "--limit", "100000"]);
    assert_eq!(records.len() as u64, count + 2, "each record exactly once");
    let ticks: BTreeSet<u64> = records
        .iter()
        .filter_map(|r| match r.fields.get("n") {
            Some(Value::U64(n)) => Some(*n),
            Some(Value::I64(n)) => Some(*n as u64),
            _ => None,
        })
        .collect();
    assert_eq!(ticks.len() as u64, count);
}

#[test]
fn the_tls_listener_refuses_to_start_without_a_token_or_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let serve = |toml: &str| {
        let config = dir.path().join("bad.toml");
        std::fs::write(&config, toml).unwrap();
        common::cli(&[
            "--config",
            config.to_str().unwrap(),
            "serve",
            "--socket",
            dir.path().join("s.sock").to_str().unwrap(),
            "--db",
            dir.path().join("x.db").to_str().unwrap(),
            "--no-http",
        ])
    };
    let out = serve(&format!(
        "listen_tls = \"127.0.0.1:0\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
        pki.cert.display(),
        pki.key.display()
    ));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("listen_tls needs a token"), "{err}");

    let out = serve("token = \"t\"\nlisten_tls = \"127.0.0.1:0\"\n");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needs tls_cert and tls_key"), "{err}");

    let out = serve(&format!(
        "token = \"t\"\nlisten_tls = \"127.0.0.1:0\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
        pki.ca.display(),
        dir.path().join("missing.key").display()
    ));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing.key"), "{err}");
}
