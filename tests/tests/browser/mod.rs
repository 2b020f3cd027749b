//! A real browser for the web UI's tests: Debian's `chromium`, headless, driven through
//! `chromedriver` over the W3C WebDriver protocol (JSON over HTTP, written by hand like
//! the other tests' requests). `scripts/test` installs both when they are missing; a
//! test that finds neither fails with the command that installs them.

#![allow(clippy::unwrap_used, dead_code, unreachable_pub)]

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// One request to chromedriver, its answer read by its length (chromedriver keeps
/// the connection open whatever the request says).
fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
) -> std::io::Result<(u16, Vec<u8>)> {
    use std::io::{BufRead as _, BufReader, Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut length = 0usize;
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut out = vec![0; length];
    reader.read_exact(&mut out)?;
    Ok((status, out))
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn find(names: &[&str]) -> Option<PathBuf> {
    names
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .or_else(|| {
            names.iter().find_map(|n| {
                let out = Command::new("which").arg(n).output().ok()?;
                let path = String::from_utf8(out.stdout).ok()?.trim().to_owned();
                (!path.is_empty()).then(|| PathBuf::from(path))
            })
        })
}

/// A headless Chromium session.
pub struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
    /// Where downloads land.
    pub downloads: PathBuf,
    _profile: tempfile::TempDir,
}

/// An element of the page.
#[derive(Clone, Debug)]
pub struct Element(String);

impl Browser {
    /// Starts chromedriver and a browser with a fresh profile, `width` × `height`.
    pub fn start(downloads: &Path, width: u32, height: u32) -> Self {
        let chromium = find(&["/usr/bin/chromium", "chromium"]).expect(
            "chromium is not installed: apt-get install -y chromium chromium-driver (scripts/test does this)",
        );
        let driver_exe = find(&["/usr/bin/chromedriver", "chromedriver"]).expect(
            "chromedriver is not installed: apt-get install -y chromium-driver (scripts/test does this)",
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(driver_exe)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok((200, body)) = request(addr, "GET", "/status", b"") {
                let v: Value = serde_json::from_slice(&body).unwrap_or_default();
                if v["value"]["ready"] == json!(true) {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = tempfile::tempdir().unwrap();
        let mut b = Self {
            driver,
            addr,
            session: String::new(),
            downloads: downloads.to_owned(),
            _profile: profile,
        };
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage",
                    format!("--user-data-dir={}", b._profile.path().display()),
                    format!("--window-size={width},{height}")],
                "prefs": {"download.default_directory": downloads, "download.prompt_for_download": false}
            }
        }}});
        let v = b.call("POST", "/session", Some(caps));
        b.session = v["value"]["sessionId"].as_str().unwrap().to_owned();
        b.call(
            "POST",
            &format!("/session/{}/timeouts", b.session),
            Some(json!({"script": 30_000, "pageLoad": 30_000, "implicit": 0})),
        );
        b
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let body = body
            .map(|b| serde_json::to_vec(&b).unwrap())
            .unwrap_or_default();
        let (status, body) = request(self.addr, method, path, &body)
            .unwrap_or_else(|e| panic!("chromedriver {method} {path}: {e}"));
        let v: Value = serde_json::from_slice(&body).unwrap_or_else(|e| {
            panic!(
                "chromedriver {method} {path}: {e}: {}",
                String::from_utf8_lossy(&body)
            )
        });
        assert!(
            status == 200,
            "chromedriver {method} {path}: {status} {}",
            v["value"]["message"].as_str().unwrap_or_default()
        );
        v
    }

    fn s(&self, tail: &str) -> String {
        format!("/session/{}{tail}", self.session)
    }

    /// Opens `url` and waits for it to load.
    pub fn go(&self, url: &str) {
        self.call("POST", &self.s("/url"), Some(json!({ "url": url })));
    }

    /// The page's URL.
    pub fn url(&self) -> String {
        self.call("GET", &self.s("/url"), None)["value"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns its value.
    pub fn run(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            &self.s("/execute/sync"),
            Some(json!({"script": script, "args": args})),
        )["value"]
            .clone()
    }

    /// Runs `script`, which calls `arguments[arguments.length - 1]` with its result.
    pub fn run_async(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            &self.s("/execute/async"),
            Some(json!({"script": script, "args": args})),
        )["value"]
            .clone()
    }

    /// The elements matching `css`.
    pub fn all(&self, css: &str) -> Vec<Element> {
        self.call(
            "POST",
            &self.s("/elements"),
            Some(json!({"using": "css selector", "value": css})),
        )["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| Element(e[ELEMENT].as_str().unwrap().to_owned()))
            .collect()
    }

    /// The first element matching `css`, waiting up to 10 s for one.
    pub fn find(&self, css: &str) -> Element {
        self.wait_for(css, Duration::from_secs(10))
            .unwrap_or_else(|| panic!("no element {css:?} on {}", self.url()))
    }

    /// The first element matching `css` once there is one, within `timeout`.
    pub fn wait_for(&self, css: &str, timeout: Duration) -> Option<Element> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.all(css).into_iter().next() {
                return Some(e);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until `script` (a function body) returns true.
    pub fn wait_until(&self, what: &str, script: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.run(script, json!([])) != json!(true) {
            if Instant::now() > deadline {
                let text = self.run(
                    "return document.body ? document.body.innerText.slice(0, 2000) : ''",
                    json!([]),
                );
                panic!(
                    "timed out waiting for {what} on {}: the page says {text}",
                    self.url()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Clicks `e`.
    pub fn click(&self, e: &Element) {
        self.call(
            "POST",
            &self.s(&format!("/element/{}/click", e.0)),
            Some(json!({})),
        );
    }

    /// Types `text` into `e` (WebDriver key codes for special keys: Enter is `\u{E007}`).
    pub fn type_into(&self, e: &Element, text: &str) {
        self.call(
            "POST",
            &self.s(&format!("/element/{}/value", e.0)),
            Some(json!({ "text": text })),
        );
    }

    /// Clears a text input.
    pub fn clear(&self, e: &Element) {
        self.call(
            "POST",
            &self.s(&format!("/element/{}/clear", e.0)),
            Some(json!({})),
        );
    }

    /// `e`'s text as rendered.
    pub fn text(&self, e: &Element) -> String {
        self.call("GET", &self.s(&format!("/element/{}/text", e.0)), None)["value"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Presses keys on whatever has focus (WebDriver key codes: Tab `\u{E004}`, Enter
    /// `\u{E007}`, arrows down `\u{E015}` and right `\u{E014}`).
    pub fn keys(&self, keys: &str) {
        let actions: Vec<Value> = keys
            .chars()
            .flat_map(|c| {
                let k = c.to_string();
                [
                    json!({"type": "keyDown", "value": k}),
                    json!({"type": "keyUp", "value": k}),
                ]
            })
            .collect();
        self.call(
            "POST",
            &self.s("/actions"),
            Some(json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]})),
        );
    }

    /// Saves a screenshot of the viewport as PNG at `path`.
    pub fn screenshot(&self, path: &Path) {
        let b64 = self.call("GET", &self.s("/screenshot"), None)["value"]
            .as_str()
            .unwrap()
            .to_owned();
        std::fs::write(path, base64_decode(&b64)).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = request(self.addr, "DELETE", &self.s(""), b"");
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Standard base64, as WebDriver sends screenshots.
fn base64_decode(s: &str) -> Vec<u8> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for v in s.bytes().filter_map(value) {
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}
