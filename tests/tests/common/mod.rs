//! Helpers for end-to-end tests: start the real collector binary on a temp dir, run the
//! real CLI, run an instrumented app, and speak the wire protocol by hand.

#![allow(clippy::unwrap_used, dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use logbook_proto::wire::{decode_frame, encode_frame, read_frame, Frame, Hello, PROTOCOL_VERSION};
use logbook_proto::{InstanceId, Record, Resource};

/// The collector binary under test.
pub const COLLECTOR: &str = env!("CARGO_BIN_EXE_logbook-e2e-collector");
/// The instrumented test application.
pub const APP: &str = env!("CARGO_BIN_EXE_logbook-e2e-app");

/// A running `logbook serve` on a socket and database in `dir`.
pub struct Collector {
    child: Option<Child>,
    /// Its socket.
    pub socket: PathBuf,
    /// Its database (its file; see `store` for where it stores).
    pub db: PathBuf,
    /// Where it stores, as `--db` takes it: the file, or a `postgres://` URL.
    pub store: String,
    /// Its stderr, captured to a file.
    pub log: PathBuf,
    extra: Vec<String>,
    /// Where the log of the current process starts.
    log_from: usize,
}

impl Collector {
    /// Starts a collector with its socket and database in `dir` and waits until it accepts.
    pub fn start(dir: &Path) -> Self {
        Self::start_with(dir, &[])
    }

    /// Like [`Collector::start`], with extra `serve` flags.
    pub fn start_with(dir: &Path, extra: &[&str]) -> Self {
        let db = dir.join("logbook.db");
        let mut c = Self {
            child: None,
            socket: dir.join("logbook.sock"),
            store: db.display().to_string(),
            db,
            log: dir.join("collector.log"),
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            log_from: 0,
        };
        c.restart();
        c
    }

    /// A collector storing at `store` (a `postgres://` URL), with its socket and
    /// configuration `toml` in `dir`, and `extra` flags.
    pub fn start_on(dir: &Path, store: &str, toml: &str, extra: &[&str]) -> Self {
        let config = dir.join("logbook.toml");
        std::fs::write(&config, toml).unwrap();
        let db = dir.join("logbook.db");
        let mut c = Self {
            child: None,
            socket: dir.join("logbook.sock"),
            db,
            store: store.to_owned(),
            log: dir.join("collector.log"),
            extra: ["--config", config.to_str().unwrap()]
                .iter()
                .chain(extra)
                .map(|s| (*s).to_owned())
                .collect(),
            log_from: 0,
        };
        c.restart();
        c
    }

    /// Like [`Collector::start`], with `toml` as its configuration file.
    pub fn start_with_config(dir: &Path, toml: &str) -> Self {
        let config = dir.join("logbook.toml");
        std::fs::write(&config, toml).unwrap();
        Self::start_with(dir, &["--config", config.to_str().unwrap()])
    }

    /// Starts the collector again (after [`Collector::kill`] or [`Collector::stop`]).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        self.log_from = self.log_text().len();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(COLLECTOR)
            .arg("serve")
            .arg("--socket")
            .arg(&self.socket)
            .arg("--db")
            .arg(&self.store)
            .args(&self.extra)
            .env_remove("LOGBOOK_CONFIG")
            // Tests run at once: HTTP only where a test asks for it (`--http`).
            .env("LOGBOOK_HTTP", "off")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while UnixStream::connect(&self.socket).is_err() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("collector exited with {status}: {}", self.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "collector did not start: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // The HTTP listener binds after the socket's: wait for it too, when asked for.
        if self.extra.iter().any(|a| a == "--http") {
            while !self.log_text()[self.log_from..].contains("HTTP listening") {
                assert!(
                    Instant::now() < deadline,
                    "HTTP did not start: {}",
                    self.log_text()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Sends SIGTERM and waits for exit.
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        signal(child.id(), libc::SIGTERM);
        wait_timeout(&mut child, Duration::from_secs(30))
    }

    /// Waits for a collector that was already sent a signal to exit.
    pub fn stop_after_signal(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        wait_timeout(&mut child, Duration::from_secs(30))
    }

    /// Sends SIGKILL (a crash) and waits.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    /// Its stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The address of its HTTP listener (started with `--http`), from its log.
    pub fn http_addr(&self) -> std::net::SocketAddr {
        self.logged_addr("HTTP listening", "http=")
    }

    /// The address of its TLS listener (started with `--listen-tls`), from its log.
    pub fn tls_addr(&self) -> std::net::SocketAddr {
        self.logged_addr("TLS listening", "tls=")
    }

    /// The address after `key` on the log line saying `what`, from this process's log.
    fn logged_addr(&self, what: &str, key: &str) -> std::net::SocketAddr {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            // This process's lines only: a restarted collector listens elsewhere.
            let log = self
                .log_text()
                .get(self.log_from..)
                .unwrap_or_default()
                .to_owned();
            if let Some(addr) = log
                .lines()
                .filter(|l| l.contains(what))
                .find_map(|l| l.split(key).nth(1))
                .and_then(|a| a.split_whitespace().next())
            {
                return addr.parse().unwrap();
            }
            assert!(Instant::now() < deadline, "no {what:?} in the log: {log}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs a CLI command against this collector's database.
    pub fn cli(&self, args: &[&str]) -> Output {
        cli(&[&["--db", self.store.as_str()], args].concat())
    }

    /// `logbook query --format jsonl` with `args`, parsed.
    pub fn query(&self, args: &[&str]) -> Vec<Record> {
        let out = self.cli(&[&["query", "--format", "jsonl"], args].concat());
        assert!(
            out.status.success(),
            "query failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        parse_jsonl(&out.stdout)
    }

    /// The `unix:` endpoint for apps.
    pub fn endpoint(&self) -> String {
        format!("unix:{}", self.socket.display())
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs an example program `exe` against `collector`, as a user runs it; its stdout.
pub fn run_example(exe: &str, collector: &Collector) -> String {
    let out = program(exe, &[], &[("LOGBOOK_ENDPOINT", &collector.endpoint())])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{exe}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Sends `sig` to `pid`.
#[allow(unsafe_code)]
pub fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    let rc = unsafe { libc::kill(pid as i32, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig})");
}

/// Waits for `child`, killing it after `timeout`.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("process {} did not exit within {timeout:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs the `logbook` CLI with `args` (no config file, no LOGBOOK_* environment).
pub fn cli(args: &[&str]) -> Output {
    let mut cmd = Command::new(COLLECTOR);
    cmd.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("LOGBOOK_") {
            cmd.env_remove(k);
        }
    }
    // Tests run at once: a `serve` here listens on no TCP port.
    cmd.env("LOGBOOK_HTTP", "off");
    cmd.output().unwrap()
}

/// Parses JSON Lines of records.
pub fn parse_jsonl(bytes: &[u8]) -> Vec<Record> {
    std::str::from_utf8(bytes)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// What the test app prints on its last line: the layer's counters after flushing.
#[derive(Debug, serde::Deserialize, PartialEq, Eq)]
pub struct AppReport {
    /// Records the app emitted (events and span starts/ends it created).
    pub emitted: u64,
    /// Acknowledged by the collector.
    pub delivered: u64,
    /// Dropped by the layer (buffer full), all levels.
    pub dropped: u64,
    /// Refused by the collector.
    pub rejected: u64,
    /// Still pending when the flush deadline passed.
    pub undelivered: u64,
    /// Sent again after a reconnect.
    #[serde(default)]
    pub resent: u64,
    /// `pressure`: the slowest single `info!` call, in microseconds.
    #[serde(default)]
    pub max_emit_us: u64,
    /// `pressure`: the most buffer bytes seen in use.
    #[serde(default)]
    pub max_buffered: usize,
    /// The buffer's limit in bytes.
    #[serde(default)]
    pub capacity: usize,
}

/// Runs the test app with `args` and environment `env` and returns its report.
pub fn run_app(args: &[&str], env: &[(&str, &str)]) -> AppReport {
    let out = app_command(args, env).output().unwrap();
    assert!(
        out.status.success(),
        "app failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_report(&out.stdout)
}

/// The test app as a command, ready to spawn.
pub fn app_command(args: &[&str], env: &[(&str, &str)]) -> Command {
    program(APP, args, env)
}

/// `exe` with `args`, piped output, no LOGBOOK_* variables of the test's own
/// environment and `env` instead.
pub fn program(exe: &str, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(exe);
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, _) in std::env::vars() {
        if k.starts_with("LOGBOOK_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied());
    cmd
}

/// The services that sent `records`.
pub fn services(records: &[Record]) -> std::collections::BTreeSet<&str> {
    records
        .iter()
        .map(|r| r.resource.service.as_str())
        .collect()
}

/// The report on the app's last stdout line.
pub fn parse_report(stdout: &[u8]) -> AppReport {
    let text = String::from_utf8_lossy(stdout);
    let last = text
        .lines()
        .last()
        .unwrap_or_else(|| panic!("no report in {text:?}"));
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {last}"))
}

/// `n` valid INFO events named `name`, with ids `from..from + n` of `instance` and
/// messages `record {i}`: what a raw client sends.
pub fn events(instance: InstanceId, from: u64, n: u64, name: &str) -> Vec<Record> {
    use logbook_proto::{Kind, Level, RecordId, Timestamp, TraceId};
    (from..from + n)
        .map(|i| {
            let mut r = Record::new(
                RecordId::new(instance, i),
                Timestamp::now(),
                Kind::Event,
                Level::Info,
                logbook_proto::Str::Owned(name.to_owned()),
            );
            r.trace_id = TraceId::from_random(u64::from_be_bytes(instance.0), i);
            r.message = Some(format!("record {i}"));
            r
        })
        .collect()
}

/// A protocol client written by hand, for sending exactly the bytes a test wants.
pub struct RawClient {
    /// The connection.
    pub stream: UnixStream,
    buf: Vec<u8>,
}

impl RawClient {
    /// Connects without saying anything.
    pub fn connect(socket: &Path) -> Self {
        let stream = UnixStream::connect(socket).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        Self {
            stream,
            buf: Vec::new(),
        }
    }

    /// Connects and completes the handshake as `instance`.
    pub fn handshake(socket: &Path, instance: InstanceId) -> Self {
        Self::handshake_as(socket, instance, "raw-client", None)
    }

    /// Connects and completes the handshake as `instance` of `service`, with `token`.
    pub fn handshake_as(
        socket: &Path,
        instance: InstanceId,
        service: &str,
        token: Option<&str>,
    ) -> Self {
        let mut c = Self::connect(socket);
        c.send(&Self::hello(instance, service, token));
        match c.recv() {
            Some(Frame::Welcome(_)) => c,
            other => panic!("expected welcome, got {other:?}"),
        }
    }

    /// A hello frame.
    pub fn hello(instance: InstanceId, service: &str, token: Option<&str>) -> Frame {
        Frame::Hello(Hello {
            version: PROTOCOL_VERSION,
            instance,
            pid: std::process::id(),
            service: service.into(),
            host: "test".into(),
            token: token.map(str::to_owned),
        })
    }

    /// Sends one frame.
    pub fn send(&mut self, frame: &Frame) {
        let mut bytes = Vec::new();
        encode_frame(frame, &mut bytes);
        self.send_bytes(&bytes);
    }

    /// Gives up a send blocked for `timeout`.
    pub fn set_write_timeout(&mut self, timeout: Duration) {
        self.stream.set_write_timeout(Some(timeout)).unwrap();
    }

    /// Sends one frame, or says why it could not.
    pub fn try_send(&mut self, frame: &Frame) -> std::io::Result<()> {
        let mut bytes = Vec::new();
        encode_frame(frame, &mut bytes);
        self.stream.write_all(&bytes)
    }

    /// Sends raw bytes.
    pub fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// The next frame, or `None` when the connection closed or failed (for probing a
    /// collector that may refuse).
    pub fn try_recv(&mut self) -> Option<Frame> {
        match read_frame(&mut self.stream, 1 << 26, &mut self.buf) {
            Ok(true) => decode_frame(&self.buf, &Arc::new(Resource::default())).ok(),
            Ok(false) | Err(_) => None,
        }
    }

    /// The next frame, or `None` when the collector closed the connection.
    pub fn recv(&mut self) -> Option<Frame> {
        match read_frame(&mut self.stream, 1 << 26, &mut self.buf) {
            Ok(true) => Some(decode_frame(&self.buf, &Arc::new(Resource::default())).unwrap()),
            Ok(false) => None,
            Err(e) => panic!("reading from collector: {e}"),
        }
    }
}

/// Fills a database (creating it) with `n` event records whose timestamps repeat:
/// `distinct_ts` different times, so many records share each one.
pub fn fill_db(db: &Path, n: u64, distinct_ts: u64) {
    use logbook_collector::store::{open_writer, Durability, StoreAddress, StoreOptions};
    use logbook_proto::{Kind, Level, RecordId, Scope, ScopeKey, Timestamp, TraceId, Value};
    let mut store = open_writer(
        &StoreAddress::sqlite(db),
        &StoreOptions::with_durability(Durability::Normal),
    )
    .unwrap();
    let instance = InstanceId::from_random(4242);
    let base = Timestamp::now().as_nanos() - 3_600_000_000_000;
    let scopes: Vec<Arc<logbook_proto::Scope>> = (0..4)
        .map(|t| {
            Arc::new(
                Scope::new()
                    .with(ScopeKey::Tenant, format!("t{t}"))
                    .with(ScopeKey::RunId, format!("fill-{t}")),
            )
        })
        .collect();
    let resource = Arc::new(Resource {
        service: "filler".into(),
        host: "h".into(),
        pid: 1,
    });
    let mut batch = Vec::with_capacity(10_000);
    for i in 0..n {
        let mut r = Record::new(
            RecordId::new(instance, i + 1),
            Timestamp(base + (i % distinct_ts) as i64 * 1_000),
            Kind::Event,
            if i % 10 == 0 {
                Level::Warn
            } else {
                Level::Info
            },
            "fill",
        );
        r.target = "filler::work".into();
        r.message = Some(format!("record number {i}"));
        r.trace_id = TraceId::from_random(i, 1);
        r.scope = Arc::clone(&scopes[(i % 4) as usize]);
        r.resource = Arc::clone(&resource);
        r.fields.set("i", Value::U64(i));
        r.fields.set("label", Value::Str(format!("item, \"{i}\"")));
        batch.push(r);
        if batch.len() == 10_000 {
            store.write(&batch).unwrap();
            batch.clear();
        }
    }
    store.write(&batch).unwrap();
}

/// Runs `cmd` to completion and returns its status, stdout, stderr and peak resident
/// memory in KiB (from the kernel's accounting of the child).
// The child is reaped by wait4 below, which also reports its peak memory.
#[allow(unsafe_code, clippy::zombie_processes)]
pub fn run_measured(mut cmd: Command) -> (ExitStatus, Vec<u8>, Vec<u8>, i64) {
    use std::os::unix::process::ExitStatusExt;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        stdout.read_to_end(&mut b).unwrap();
        b
    });
    let mut err = Vec::new();
    stderr.read_to_end(&mut err).unwrap();
    let out = out_reader.join().unwrap();
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 writes into it and the status for our child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32);
    (ExitStatus::from_raw(status), out, err, usage.ru_maxrss)
}

/// An HTTP response: status, headers (names lower case), body.
#[derive(Debug)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The headers.
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked).
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{e}: status {} body {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `POST path` to `addr` over HTTP/1.1 with `headers` and `body`, written by hand on a
/// TCP stream (as any client in any language would send it).
pub fn http_post(
    addr: std::net::SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    http_request(addr, "POST", path, headers, body)
}

/// `GET path` from `addr`, with a bearer `token` if any.
pub fn http_get(addr: std::net::SocketAddr, path: &str, token: Option<&str>) -> HttpResponse {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| ("Authorization", a))
        .into_iter()
        .collect();
    http_request(addr, "GET", path, &headers, b"")
}

/// A request of `method` over HTTP/1.1, written by hand.
pub fn http_request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    try_http_request(addr, method, path, headers, body).unwrap()
}

/// [`http_request`], or why it got no complete answer (refused, cut off).
pub fn try_http_request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<HttpResponse> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes())?;
    // A server may answer (413) and close before reading a large body: then its answer
    // is what counts.
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no complete response head"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
    {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let end = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let size = usize::from_str_radix(std::str::from_utf8(&rest[..end]).unwrap().trim(), 16)
                .unwrap();
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[end + 2..end + 2 + size]);
            rest = &rest[end + 2 + size + 2..];
        }
        body = out;
    }
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

/// An OTLP/JSON request: `runs` agent runs of `tenant`, each a root span with an LLM
/// call under it, `age` before now.
pub fn agent_runs(tenant: &str, runs: u32, age: Duration, seed: u32) -> Vec<u8> {
    let now = logbook_proto::Timestamp::now().as_nanos() - age.as_nanos() as i64;
    let spans: Vec<serde_json::Value> = (0..runs)
        .flat_map(|i| {
            let trace = format!("{:08x}{:024x}", seed, i + 1);
            let start = now - 5_000_000_000 + i64::from(i) * 1_000_000;
            let attr = |k: &str, v: serde_json::Value| serde_json::json!({"key": k, "value": v});
            let s = |v: &str| serde_json::json!({ "stringValue": v });
            vec![
                serde_json::json!({"traceId": trace, "spanId": format!("{:016x}", 0xa000 + i), "name": "invoke_agent",
                    "startTimeUnixNano": start.to_string(), "endTimeUnixNano": (start + 900_000_000).to_string(),
                    "attributes": [attr("gen_ai.agent.name", s("researcher")), attr("gen_ai.operation.name", s("invoke_agent")),
                                   attr("tenant", s(tenant)), attr("user.id", s(&format!("{tenant}-user")))],
                    "status": {"code": 1}}),
                serde_json::json!({"traceId": trace, "spanId": format!("{:016x}", 0xb000 + i), "parentSpanId": format!("{:016x}", 0xa000 + i),
                    "name": "chat gpt-4o-mini",
                    "startTimeUnixNano": (start + 100_000_000).to_string(), "endTimeUnixNano": (start + 600_000_000).to_string(),
                    "attributes": [attr("gen_ai.operation.name", s("chat")), attr("gen_ai.request.model", s("gpt-4o-mini")),
                                   attr("gen_ai.provider.name", s("openai")),
                                   attr("gen_ai.usage.input_tokens", serde_json::json!({"intValue": "1000"})),
                                   attr("gen_ai.usage.output_tokens", serde_json::json!({"intValue": "100"})),
                                   attr("gen_ai.input.messages", s(&format!(r#"[{{"role":"user","parts":[{{"type":"text","content":"question of {tenant}"}}]}}]"#))),
                                   attr("tenant", s(tenant)), attr("user.id", s(&format!("{tenant}-user")))],
                    "status": {"code": 1}}),
            ]
        })
        .collect();
    let body = serde_json::json!({"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": format!("{tenant}-svc")}}]},
        "scopeSpans": [{"scope": {"name": "test"}, "spans": spans}]}]});
    serde_json::to_vec(&body).unwrap()
}

/// The venv's Python with the OpenTelemetry SDK: `LOGBOOK_TEST_PYTHON` (set by
/// `scripts/test`), else `target/py/bin/python`.
#[allow(dead_code)]
pub fn python() -> PathBuf {
    let path = std::env::var_os("LOGBOOK_TEST_PYTHON").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/py/bin/python"),
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "no Python with the OpenTelemetry SDK at {}: run scripts/test, which installs it",
        path.display()
    );
    path
}
