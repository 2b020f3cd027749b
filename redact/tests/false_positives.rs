//! False-positive measurement: realistic benign text (code, ids, hashes, timestamps,
//! prose, URLs, versions, numbers, paths, log lines, JSON), generated from a fixed
//! seed, redacted with the built-in rules. Prints the rate of strings changed, per
//! category and per rule (`cargo test -p logbook-redact --test false_positives -- --nocapture`).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use logbook_proto::{Fields, Value};
use logbook_redact::{Counts, Redactor};

const STRINGS: usize = 20_000;
/// The bound asserted on the share of strings changed.
const MAX_RATE: f64 = 0.01;

/// SplitMix64: a seeded, dependency-free generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }

    fn hex(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b"0123456789abcdef"[self.below(16) as usize]))
            .collect()
    }

    /// `n` digits, plus up to `extra - 1` more.
    fn digits_up(&mut self, n: usize, extra: u64) -> String {
        let n = n + self.below(extra) as usize;
        self.digits(n)
    }

    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }
}

const WORDS: &[&str] = &[
    "the",
    "request",
    "failed",
    "because",
    "upstream",
    "service",
    "returned",
    "an",
    "error",
    "retrying",
    "after",
    "backoff",
    "user",
    "opened",
    "settings",
    "page",
    "cache",
    "miss",
    "for",
    "key",
    "model",
    "generated",
    "tokens",
    "in",
    "response",
    "stream",
    "closed",
    "connection",
    "reset",
    "by",
    "peer",
    "scheduled",
    "job",
    "completed",
    "successfully",
    "queue",
    "depth",
    "is",
    "high",
    "password",
    "reset",
    "email",
    "sent",
    "token",
    "refreshed",
    "secret",
    "rotation",
    "started",
    "basic",
    "plan",
    "bearer",
    "of",
    "news",
    "authorization",
    "denied",
    "cookie",
    "consent",
    "banner",
    "shown",
    "api",
    "rate",
    "limited",
    "budget",
];
const IDENTS: &[&str] = &[
    "config",
    "request",
    "result",
    "items",
    "buf",
    "reader",
    "handle",
    "state",
    "count",
    "max_tokens",
    "input_tokens",
    "token_count",
    "page_size",
    "retries",
    "timeout_ms",
    "user_id",
    "session",
    "client",
    "value",
    "path",
    "name",
    "index",
];
const TYPES: &[&str] = &[
    "String",
    "&str",
    "u64",
    "Vec<u8>",
    "Option<String>",
    "bool",
    "Result<(), Error>",
];
const HOSTS: &[&str] = &[
    "api.example.com",
    "docs.rs",
    "github.com",
    "localhost:8080",
    "10.0.3.7:9000",
    "cdn.example.org",
];
const TLDS_PATH: &[&str] = &[
    "v1/items",
    "search",
    "users/42/orders",
    "static/app.js",
    "rust-lang/rust/issues/1234",
];

fn sentence(r: &mut Rng) -> String {
    let n = 4 + r.below(14) as usize;
    let mut s: Vec<&str> = (0..n).map(|_| r.pick(WORDS)).collect();
    if r.below(4) == 0 {
        // Secret words in prose, as logs use them.
        s.push(r.pick(&[
            "Bearer scheme",
            "Basic plan",
            "token expired",
            "password reset requested",
            "secret rotated",
            "Authorization header missing",
            "cookie jar",
            "api_key not set",
        ]));
    }
    let mut out = s.join(" ");
    out.push('.');
    out
}

fn uuid(r: &mut Rng) -> String {
    let h = r.hex(32);
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..]
    )
}

fn timestamp(r: &mut Rng) -> String {
    format!(
        "20{:02}-{:02}-{:02}T{:02}:{:02}:{:02}.{}{}",
        r.below(30),
        1 + r.below(12),
        1 + r.below(28),
        r.below(24),
        r.below(60),
        r.below(60),
        r.digits_up(3, 7),
        r.pick(&["Z", "+02:00", "-07:00", "+05:30"]),
    )
}

fn code(r: &mut Rng) -> String {
    let (a, b, t) = (r.pick(IDENTS), r.pick(IDENTS), r.pick(TYPES));
    match r.below(16) {
        0 => format!("let {a} = {b}.get(\"{a}\").unwrap_or_default();"),
        1 => format!("pub fn new({a}: {t}, token: &str) -> Result<Self, Error> {{"),
        2 => "let token = lexer.next_token()?;".to_owned(),
        3 => format!("if password.is_empty() {{ return Err(Error::Empty(\"{a}\")); }}"),
        4 => format!("def {a}(self, api_key: str, {b}: int = 3) -> None:"),
        5 => format!("        self.{a} = {b}"),
        6 => "password = getpass.getpass(\"Password: \")".to_owned(),
        7 => "token = os.environ[\"GITHUB_TOKEN\"]".to_owned(),
        8 => format!("for {a} in range({}):", r.below(100)),
        9 => format!(
            "    client = OpenAI(api_key=api_key, timeout={})",
            r.below(60)
        ),
        10 => "use std::collections::HashMap;".to_owned(),
        11 => format!("{a}.insert(\"max_tokens\", {});", r.below(4096)),
        12 => format!("const SECRET_HEADER: &str = \"x-{a}\";"),
        13 => "headers = {\"Authorization\": f\"Bearer {token}\"}".to_owned(),
        14 => format!("assert_eq!({a}.len(), {});", r.below(10)),
        _ => format!("    return {a}.{b}(secret=self.secret)"),
    }
}

fn url(r: &mut Rng) -> String {
    format!(
        "https://{}/{}?{}={}&page={}",
        r.pick(HOSTS),
        r.pick(TLDS_PATH),
        r.pick(&["q", "sort", "page_size", "lang", "ref", "utm_source"]),
        r.pick(WORDS),
        r.below(50)
    )
}

fn number(r: &mut Rng) -> String {
    match r.below(8) {
        0 => format!("took {}ms", r.below(100_000)),
        1 => format!("size={} bytes", r.below(1 << 40)),
        2 => format!("ts_ns=17{}", r.digits(17)),
        3 => format!("epoch_ms=17{}", r.digits(11)),
        4 => format!("snowflake 1{}", r.digits_up(17, 2)),
        5 => format!("ratio {}.{}", r.below(100), r.digits_up(1, 16)),
        6 => format!("sizes: 512 1024 2048 4096 8192 {}", r.below(70000)),
        _ => format!(
            "order #{} total {}.{:02} EUR",
            r.digits_up(6, 5),
            r.below(10000),
            r.below(100)
        ),
    }
}

fn path(r: &mut Rng) -> String {
    match r.below(4) {
        0 => format!(
            "/usr/local/lib/python3.{}/site-packages/{}/{}.py:{}",
            r.below(13),
            r.pick(IDENTS),
            r.pick(IDENTS),
            r.below(2000)
        ),
        1 => format!(
            "src/{}/{}.rs:{}:{}",
            r.pick(IDENTS),
            r.pick(IDENTS),
            r.below(900),
            r.below(80)
        ),
        2 => format!(
            "C:\\Users\\{}\\AppData\\Local\\{}.log",
            r.pick(IDENTS),
            r.pick(IDENTS)
        ),
        _ => format!(
            "/var/log/{}/{}-{}.log.gz",
            r.pick(IDENTS),
            r.pick(IDENTS),
            r.below(31)
        ),
    }
}

fn log_line(r: &mut Rng) -> String {
    format!(
        "{} {} {}: {} {} status={} latency={}ms user_id={} request_id={} input_tokens={} max_tokens={} token_count={}",
        timestamp(r),
        r.pick(&["INFO", "WARN", "DEBUG", "ERROR"]),
        r.pick(&["http", "db", "worker", "llm"]),
        r.pick(&["GET", "POST", "PUT"]),
        r.pick(TLDS_PATH),
        r.pick(&["200", "201", "404", "500"]),
        r.below(5000),
        r.below(1_000_000),
        uuid(r),
        r.below(100_000),
        r.below(8192),
        r.below(8192),
    )
}

fn json_text(r: &mut Rng) -> String {
    format!(
        "{{\"model\":\"{}\",\"max_tokens\":{},\"usage\":{{\"input_tokens\":{},\"output_tokens\":{}}},\"id\":\"{}\",\"created\":{},\"messages\":[{{\"role\":\"user\",\"content\":\"{}\"}}]}}",
        r.pick(&["gpt-4o", "claude-sonnet-4", "llama-3.1-70b"]),
        r.below(8192),
        r.below(100_000),
        r.below(8192),
        uuid(r),
        1_700_000_000 + r.below(100_000_000),
        sentence(r),
    )
}

fn infra(r: &mut Rng) -> String {
    match r.below(6) {
        0 => format!(
            "pod {}-{}-{} on node ip-10-0-{}-{}",
            r.pick(IDENTS).replace('_', "-"),
            r.hex(9),
            r.hex(5),
            r.below(256),
            r.below(256)
        ),
        1 => format!(
            "listening on [fe80::{}:{}:{}]:{} and 192.168.{}.{}:{}",
            r.hex(4),
            r.hex(4),
            r.hex(4),
            r.below(65536),
            r.below(256),
            r.below(256),
            r.below(65536)
        ),
        2 => format!(
            "mac {}:{}:{}:{}:{}:{}",
            r.hex(2),
            r.hex(2),
            r.hex(2),
            r.hex(2),
            r.hex(2),
            r.hex(2)
        ),
        3 => format!("image ghcr.io/acme/{}@sha256:{}", r.pick(IDENTS), r.hex(64)),
        4 => {
            const CROCKFORD: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
            let ulid: String = (0..26)
                .map(|_| char::from(CROCKFORD[r.below(32) as usize]))
                .collect();
            format!("event_id={ulid}")
        }
        _ => format!(
            "duration={}h{}m{}s cpu={}m mem={}Mi",
            r.below(48),
            r.below(60),
            r.below(60),
            r.below(4000),
            r.below(16000)
        ),
    }
}

fn base64_blob(r: &mut Rng) -> String {
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let n = 16 + r.below(80) as usize;
    let blob: String = (0..n)
        .map(|_| char::from(B64[r.below(64) as usize]))
        .collect();
    format!(
        "{}={blob}==",
        r.pick(&["etag", "payload", "data", "nonce", "checksum"])
    )
}

type Generator = fn(&mut Rng) -> String;

const CATEGORIES: &[(&str, Generator)] = &[
    ("code", code),
    ("uuid", |r| format!("request_id={}", uuid(r))),
    ("sha1", |r| format!("commit {} (HEAD -> main)", r.hex(40))),
    ("sha256", |r| format!("digest sha256:{}", r.hex(64))),
    ("timestamp", timestamp),
    ("prose", sentence),
    ("url", url),
    ("version", |r| {
        let (a, b, c) = (r.below(5), r.below(90), r.below(20));
        match r.below(3) {
            0 => format!(
                "rustc 1.{b}.{c} ({} 20{:02}-0{}-1{})",
                r.hex(9),
                r.below(30),
                1 + r.below(9),
                r.below(10)
            ),
            1 => format!("requests=={a}.{b}.{c} urllib3>={a}.{c}"),
            _ => format!("v{a}.{b}.{c}-rc.{c}+build.{}", r.hex(7)),
        }
    }),
    ("number", number),
    ("path", path),
    ("log", log_line),
    ("json", json_text),
    ("infra", infra),
    ("base64", base64_blob),
];

#[test]
fn benign_text_is_rarely_changed() {
    let redactor = Redactor::builtin();
    // Another sample: REDACT_FP_SEED=<u64>.
    let seed = std::env::var("REDACT_FP_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_f1ab_b00c);
    let mut rng = Rng(seed);
    let mut by_category: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut by_rule: BTreeMap<String, usize> = BTreeMap::new();
    let mut changed = 0;
    let mut examples = Vec::new();
    for i in 0..STRINGS {
        let (category, generate) = CATEGORIES[i % CATEGORIES.len()];
        let text = generate(&mut rng);
        // As a message, and as a string field (which also parses JSON text).
        let mut counts = Counts::new();
        let as_text = redactor.redact_text(&text, &mut counts);
        let mut fields = Fields::new();
        fields.set("detail", Value::Str(text.clone()));
        redactor.redact_fields(&mut fields, &mut counts);
        let as_field_changed = fields.get("detail") != Some(&Value::Str(text.clone()));
        let entry = by_category.entry(category).or_default();
        entry.0 += 1;
        if as_text.is_some() || as_field_changed {
            changed += 1;
            entry.1 += 1;
            for (rule, _) in counts.iter() {
                *by_rule.entry(rule.to_owned()).or_default() += 1;
            }
            if examples.len() < 10 {
                examples.push(format!("{text}\n    -> {}", as_text.unwrap_or_default()));
            }
        }
    }
    let rate = changed as f64 / STRINGS as f64;
    println!(
        "false positives: {changed} of {STRINGS} strings changed ({:.3}%)",
        rate * 100.0
    );
    for (category, (n, c)) in &by_category {
        println!(
            "  {category:<10} {c:>4} of {n:>5} ({:.3}%)",
            *c as f64 * 100.0 / *n as f64
        );
    }
    for (rule, c) in &by_rule {
        println!(
            "  rule {rule:<16} {c:>4} ({:.3}%)",
            *c as f64 * 100.0 / STRINGS as f64
        );
    }
    for e in &examples {
        println!("  e.g. {e}");
    }
    assert!(
        rate < MAX_RATE,
        "false-positive rate {rate} is at or above {MAX_RATE}"
    );
}
