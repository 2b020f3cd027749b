//! The smaller points of the hardening issue, each as a user meets it: configuration
//! bounds, one collector per database, a read-only database, audited exports, time
//! arguments, and signals before the socket exists.

#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::{Duration, Instant};

use common::{cli, Collector, RawClient};
use logbook_proto::wire::{Batch, Frame};
use logbook_proto::InstanceId;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn numeric_options_are_bounded_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    let sock = dir.path().join("x.sock");
    for (key, value, range) in [
        ("queue_records", "4611686018427387904", "1 to 10000000"),
        ("commit_interval_ms", "4611686018427387904", "0 to 60000"),
        ("max_connections", "0", "1 to 1048576"),
    ] {
        let config = dir.path().join("bad.toml");
        std::fs::write(&config, format!("{key} = {value}\n")).unwrap();
        let out = cli(&[
            "serve",
            "--db",
            db.to_str().unwrap(),
            "--socket",
            sock.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(1));
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(key) && err.contains(range), "{err}");
        assert!(!sock.exists(), "nothing was bound");
    }
}

#[test]
fn a_second_collector_on_the_same_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = Collector::start(dir.path());
    let out = cli(&[
        "serve",
        "--db",
        first.db.to_str().unwrap(),
        "--socket",
        dir.path().join("other.sock").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("another collector") && err.contains(&first.pid().to_string()),
        "{err}"
    );
    assert!(first.stop().success());
    // Once it is gone, the next one starts.
    first.restart();
    assert!(first.stop().success());
}

/// Read commands on a database its user cannot write beside (a read-only directory or
/// mount: SQLite cannot make the write-ahead log's shared-memory file there). As root,
/// who writes anywhere, the commands run as `nobody` on a database it may only read.
#[test]
fn read_commands_work_on_a_read_only_database_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let mut collector = Collector::start(&data);
    let instance = InstanceId::from_random(1);
    let mut c = RawClient::handshake(&collector.socket, instance);
    c.send(&Frame::Batch(Batch {
        seq: 1,
        records: common::events(instance, 1, 5, "ro"),
    }));
    assert!(matches!(c.recv(), Some(Frame::Ack(a)) if a.stored == 5));
    assert!(collector.stop().success());
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    let mode = |path: &std::path::Path, mode| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            mode(&path, 0o644);
        }
    }
    mode(dir.path(), 0o755);
    mode(&data, 0o555);
    let run = |args: &[&str]| {
        let mut cmd = if root {
            let mut cmd = std::process::Command::new("setpriv");
            cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(common::COLLECTOR);
            cmd
        } else {
            std::process::Command::new(common::COLLECTOR)
        };
        cmd.args(["--db", collector.db.to_str().unwrap()])
            .args(args)
            .output()
            .unwrap()
    };
    let query = run(&["query", "--format", "jsonl"]);
    let stats = run(&["stats"]);
    let export = run(&["export"]);
    mode(&data, 0o700);
    assert!(query.status.success(), "{}", stderr(&query));
    assert_eq!(
        String::from_utf8_lossy(&query.stdout)
            .lines()
            .filter(|l| l.contains("\"ro\""))
            .count(),
        5
    );
    assert!(stats.status.success(), "{}", stderr(&stats));
    // An export cannot be audited there, so it is not done.
    assert_eq!(export.status.code(), Some(1));
    assert!(export.stdout.is_empty());
    assert!(
        stderr(&export).contains("audit record"),
        "{}",
        stderr(&export)
    );
}

#[test]
fn time_arguments_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let mut collector = Collector::start(dir.path());
    assert!(collector.stop().success());
    let out = collector.cli(&["query", "--since", "9999-12-31T00:00:00Z"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("out of range") && err.contains("2262"),
        "{err}"
    );
    let out = collector.cli(&["query", "--since", "1h", "--until", "2h"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("--until") && err.contains("before --since"),
        "{err}"
    );
}

/// Signal handlers exist before the socket does: a SIGTERM while the collector is
/// still opening its database (held by another writer) ends it cleanly, never by the
/// signal, and leaves no socket behind.
#[test]
fn a_signal_before_the_socket_exists_stops_it_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut collector = Collector::start(dir.path());
    assert!(collector.stop().success());
    let holder = rusqlite::Connection::open(&collector.db).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let mut child = std::process::Command::new(common::COLLECTOR)
        .args(["serve", "--no-http", "--db", collector.db.to_str().unwrap()])
        .args(["--socket", collector.socket.to_str().unwrap()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until it is up and waiting on the database (it has logged nothing yet).
    std::thread::sleep(Duration::from_millis(800));
    assert!(!collector.socket.exists());
    common::signal(child.id(), libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(200));
    holder.execute_batch("COMMIT").unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(started.elapsed() < Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.code().is_some(), "ended by the signal: {status:?}");
    assert!(status.success(), "{status:?}");
    assert!(!collector.socket.exists());
}

/// Out of file descriptors, the accept loop backs off and logs once per interval
/// (it logged twenty lines a second), keeps serving the connections it has, and
/// accepts again once descriptors are free.
#[test]
fn out_of_file_descriptors_the_accept_loop_backs_off() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("logbook.sock");
    let log = dir.path().join("collector.log");
    let mut child = std::process::Command::new("prlimit")
        .arg("--nofile=48:48")
        .arg(common::COLLECTOR)
        .args(["serve", "--no-http", "--socket", socket.to_str().unwrap()])
        .args(["--db", dir.path().join("logbook.db").to_str().unwrap()])
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        assert!(started.elapsed() < Duration::from_secs(20), "did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let instance = InstanceId::from_random(1);
    let mut kept = RawClient::handshake(&socket, instance);
    // More connections than descriptors: the kernel queues them, accept fails.
    let flood: Vec<RawClient> = (0..80).map(|_| RawClient::connect(&socket)).collect();
    std::thread::sleep(Duration::from_secs(3));
    let failures = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .filter(|l| l.contains("Failed to accept"))
        .count();
    assert!((1..=2).contains(&failures), "{failures} lines in 3 s");
    // The connection it has is served all along.
    kept.send(&Frame::Batch(Batch {
        seq: 1,
        records: common::events(instance, 1, 3, "kept"),
    }));
    assert!(matches!(kept.recv(), Some(Frame::Ack(a)) if a.stored == 3));
    drop(flood);
    drop(kept);
    // Descriptors free again: a new client is accepted (within the backoff's second).
    let deadline = Instant::now() + Duration::from_secs(20);
    let instance = InstanceId::from_random(2);
    let mut fresh = loop {
        let mut c = RawClient::connect(&socket);
        let sent = c.try_send(&RawClient::hello(instance, "fresh", None));
        match sent.ok().and_then(|()| c.try_recv()) {
            Some(Frame::Welcome(_)) => break c,
            _ => {
                assert!(Instant::now() < deadline, "never accepted again");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    };
    fresh.send(&Frame::Batch(Batch {
        seq: 1,
        records: common::events(instance, 1, 2, "fresh"),
    }));
    assert!(matches!(fresh.recv(), Some(Frame::Ack(a)) if a.stored == 2));
    common::signal(child.id(), libc::SIGTERM);
    assert!(common::wait_timeout(&mut child, Duration::from_secs(30)).success());
}
