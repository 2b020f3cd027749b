//! The command line as a user meets it: bad input gets one line and a non-zero exit;
//! the socket is private, stale sockets are replaced and live ones refused; SIGTERM
//! commits and acknowledges what was received; `tail` follows.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{cli, run_app, signal, Collector, RawClient, COLLECTOR};
use logbook_proto::wire::{Ack, Batch, Frame};
use logbook_proto::InstanceId;

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_input_gets_one_line_and_nonzero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.db");
    let out = cli(&["--db", missing.to_str().unwrap(), "runs"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("logbook: error: no logbook database at"),
        "{err}"
    );

    for args in [
        vec!["query", "--level", "loud"],
        vec!["query", "--since", "yesterday"],
        vec!["query", "--trace", "xyz"],
        vec!["query", "--field", "novalue"],
        vec!["query", "--before", "nope"],
        vec!["export", "--format", "xml"],
        vec!["frobnicate"],
    ] {
        let out = cli(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            stderr_of(&out).contains("error:"),
            "{args:?}: {}",
            stderr_of(&out)
        );
    }

    let not_db = dir.path().join("plain.txt");
    std::fs::write(&not_db, "hello").unwrap();
    let out = cli(&["--db", not_db.to_str().unwrap(), "stats"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr_of(&out).lines().count(), 1, "{}", stderr_of(&out));

    let config = dir.path().join("logbook.toml");
    std::fs::write(&config, "db = \"x.db\"\nsoket = \"typo\"\n").unwrap();
    let out = cli(&[
        "--config",
        config.to_str().unwrap(),
        "serve",
        "--print-config",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("unknown key `soket`"),
        "{}",
        stderr_of(&out)
    );

    let collector = Collector::start(dir.path());
    let out = collector.cli(&["run", "no-such-run"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr_of(&out).contains("no run \"no-such-run\""));
}

#[test]
fn socket_is_private_stale_replaced_live_refused() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("logbook.sock");
    // A socket file left behind by a crashed collector.
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    assert!(sock.exists());
    let collector = Collector::start(dir.path());
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(
        collector.log_text().contains("stale socket"),
        "{}",
        collector.log_text()
    );

    // A second collector on the same socket refuses to start.
    let db2 = dir.path().join("other.db");
    let out = Command::new(COLLECTOR)
        .args([
            "serve",
            "--no-http",
            "--socket",
            sock.to_str().unwrap(),
            "--db",
            db2.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("already listening"),
        "{}",
        stderr_of(&out)
    );

    // A regular file is never replaced.
    let file = dir.path().join("file.sock");
    std::fs::write(&file, "precious").unwrap();
    let out = Command::new(COLLECTOR)
        .args([
            "serve",
            "--no-http",
            "--socket",
            file.to_str().unwrap(),
            "--db",
            db2.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("is not a socket"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "precious");
}

#[test]
fn sigterm_commits_and_acknowledges_what_was_received() {
    let dir = tempfile::tempdir().unwrap();
    // A long group-commit wait, so the batch is still uncommitted when SIGTERM lands.
    let mut collector = Collector::start_with(
        dir.path(),
        &[
            "--commit-interval-ms",
            "1500",
            "--commit-max-records",
            "1000000",
        ],
    );
    let instance = InstanceId::from_random(77);
    let mut c = RawClient::handshake(&collector.socket, instance);
    let records = common::events(instance, 1, 50, "late");
    c.send(&Frame::Batch(Batch { seq: 1, records }));
    std::thread::sleep(Duration::from_millis(200));
    signal(collector.pid(), libc::SIGTERM);
    assert_eq!(
        c.recv(),
        Some(Frame::Ack(Ack {
            seq: 1,
            stored: 50,
            duplicates: 0
        })),
        "acked before exit"
    );
    assert!(collector.stop_after_signal().success());
    assert!(!collector.socket.exists(), "socket removed on exit");
    let out = collector.cli(&[
        "query", "--name", "late", "--format", "jsonl", "--limit", "100",
    ]);
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 50);
}

#[test]
fn tail_prints_the_newest_then_follows() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(dir.path());
    let ep = collector.endpoint();
    run_app(&["roundtrip", "run-old"], &[("LOGBOOK_ENDPOINT", &ep)]);

    let out = collector.cli(&["tail", "--no-follow", "-n", "3"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 3);

    let mut tail = Command::new(COLLECTOR)
        .args([
            "--db",
            collector.db.to_str().unwrap(),
            "tail",
            "-n",
            "0",
            "--interval",
            "50",
            "--level",
            "error",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = tail.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let done = line.contains("run-new");
            lines.push(line);
            if done {
                break;
            }
        }
        lines
    });
    std::thread::sleep(Duration::from_millis(300));
    run_app(&["roundtrip", "run-new"], &[("LOGBOOK_ENDPOINT", &ep)]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !reader.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = tail.kill();
    let _ = tail.wait();
    let lines = reader.join().unwrap();
    assert_eq!(lines.len(), 1, "only the new ERROR record: {lines:?}");
    assert!(
        lines[0].contains("ERROR")
            && lines[0].contains("it failed")
            && lines[0].contains("run_id=run-new"),
        "{lines:?}"
    );
}

#[test]
fn every_command_and_flag_has_help() {
    for cmd in ["serve", "runs", "run", "query", "tail", "export", "stats"] {
        let out = cli(&[cmd, "--help"]);
        assert!(out.status.success(), "{cmd}");
        let help = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<&str> = help.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let trimmed = line.trim_start();
            // Flags ("--x", "-x, --y"), not value lists ("- table: …").
            let is_flag = trimmed.starts_with("--")
                || trimmed
                    .as_bytes()
                    .get(1)
                    .is_some_and(u8::is_ascii_alphabetic)
                    && trimmed.starts_with('-');
            if !is_flag {
                continue;
            }
            // "  -o, --output <FILE>  Write to …", or the description on the next,
            // further-indented line when clap wraps.
            let same_line = trimmed
                .split_once("  ")
                .is_some_and(|(_, d)| !d.trim().is_empty());
            let indent = line.len() - trimmed.len();
            let next_line = lines.get(i + 1).is_some_and(|n| {
                let t = n.trim_start();
                !t.is_empty() && !t.starts_with('-') && n.len() - t.len() > indent
            });
            assert!(same_line || next_line, "{cmd}: {line:?} has no help text");
        }
    }
}
