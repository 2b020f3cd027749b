//! Exceptions in stored records, and the fingerprint that groups them.
//!
//! A record is an exception when it is:
//! - an OpenTelemetry `exception` event (a span event or a log record) or any record
//!   with `exception.type` or `exception.message` attributes (OTLP spans that ended in
//!   one carry them);
//! - a panic the layer's hook recorded (target `panic`);
//! - an ERROR event with an error field (`error`, `err`, `exception`), as the layer
//!   records a `dyn Error`: its message and its sources', and under `<field>.types`
//!   the types in its chain as their `Debug` forms name them (`NotFound`,
//!   `Os { .. }`).
//!
//! The fingerprint, in order of precedence:
//! 1. a custom one: the `fingerprint` (or `exception.fingerprint`,
//!    `logbook.fingerprint`) field, as given;
//! 2. with a stack trace (`exception.stacktrace`): the type plus the in-app frames as
//!    `module::function`, without line numbers, so a fix elsewhere in the file keeps the
//!    group (frames of the standard library and of dependencies are left out: Python's
//!    `site-packages`, Node's `node_modules`, `std::`/`core::`/`tokio::` …; when every
//!    frame is theirs, all frames count);
//! 3. a Rust error, which carries no stack: the callsite (target and the message with
//!    its variable parts replaced) plus the types in the error's source chain;
//! 4. else the type plus the message with numbers, ids, hex, UUIDs, IP addresses and
//!    quoted values replaced by placeholders.
//!
//! Each fingerprint starts with the algorithm's version (`1:`): a later algorithm makes
//! new fingerprints with its own prefix and looks up the groups earlier versions made
//! through [`Occurrence::earlier`], so a change never splits or merges stored groups.

use logbook_proto::{Kind, Level, Record, Value};
use sha2::{Digest, Sha256};

/// The version of the grouping algorithm; the prefix of every fingerprint it makes.
pub const FINGERPRINT_VERSION: u32 = 1;

/// The longest message kept with an occurrence, in bytes.
const MESSAGE_MAX: usize = 2_000;
/// The most frames a stack-trace fingerprint takes (the innermost).
const FRAMES_MAX: usize = 16;

/// How a group's fingerprint was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Basis {
    /// The application's own fingerprint field.
    Custom,
    /// Type and in-app stack frames.
    Stack,
    /// Callsite and the types in the error's source chain (Rust errors).
    Callsite,
    /// Type and normalised message.
    Message,
}

impl Basis {
    /// The word stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Custom => "custom",
            Self::Stack => "stack",
            Self::Callsite => "callsite",
            Self::Message => "message",
        }
    }
}

/// One exception seen in a record.
#[derive(Clone, Debug, PartialEq)]
pub struct Occurrence {
    /// `1:` and 32 hex digits.
    pub fingerprint: String,
    /// What the fingerprint was made from.
    pub basis: Basis,
    /// The exception's type: `exception.type`, the error's outermost type, `panic`,
    /// else `Error`.
    pub kind: String,
    /// The message as it was (bounded).
    pub message: String,
    /// Where it happened: the innermost in-app frame, the panic's file, or the event's
    /// target.
    pub culprit: String,
}

impl Occurrence {
    /// The exception `r` holds, if it is one.
    pub fn of(r: &Record) -> Option<Self> {
        let text = |k: &str| r.fields.get(k).map(value_text).filter(|s| !s.is_empty());
        let otel = (r.kind == Kind::Event && r.name == "exception")
            || r.fields.get("exception.type").is_some()
            || r.fields.get("exception.message").is_some();
        let panic = r.target == "panic" && r.kind == Kind::Event;
        let error_field = ["error", "err", "exception"]
            .into_iter()
            .find(|k| r.fields.get(k).is_some());
        let rust_error = !otel
            && !panic
            && r.kind == Kind::Event
            && r.level >= Level::Error
            && error_field.is_some();
        if !(otel || panic || rust_error) {
            return None;
        }
        let message = if rust_error {
            error_field.and_then(text)
        } else {
            text("exception.message")
        }
        .or_else(|| r.message.clone())
        .unwrap_or_else(|| r.name.to_string());
        let message = bounded(&message, MESSAGE_MAX);
        let chain_types: Vec<String> = error_field
            .and_then(|f| text(&format!("{f}.types")))
            .map(|t| {
                t.split([',', '<', ' '])
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let kind = text("exception.type")
            .or_else(|| text("error.type").filter(|t| t != "_OTHER"))
            .or_else(|| panic.then(|| "panic".to_owned()))
            .or_else(|| chain_types.first().cloned())
            .unwrap_or_else(|| "Error".to_owned());
        let frames = text("exception.stacktrace")
            .map(|s| stack_frames(&s))
            .unwrap_or_default();
        let custom = [
            "fingerprint",
            "exception.fingerprint",
            "logbook.fingerprint",
        ]
        .into_iter()
        .find_map(text);
        let location = text("code.location")
            .or_else(|| text("code.filepath"))
            .map(|l| strip_line(&l).to_owned());
        // Where, without a stack: the span that failed, or the event's target.
        let place = if r.kind == Kind::SpanEnd {
            r.name.to_string()
        } else {
            r.target.to_string()
        };
        let (basis, parts, culprit): (Basis, Vec<String>, String) = if let Some(custom) = custom {
            (Basis::Custom, vec![custom], String::new())
        } else if !frames.is_empty() {
            let in_app: Vec<&Frame> = frames.iter().filter(|f| f.in_app).collect();
            let chosen: Vec<&Frame> = if in_app.is_empty() {
                frames.iter().collect()
            } else {
                in_app
            };
            let names: Vec<String> = chosen
                .iter()
                .rev()
                .take(FRAMES_MAX)
                .map(|f| f.name.clone())
                .collect();
            let culprit = names.first().cloned().unwrap_or_default();
            let mut parts = vec![kind.clone()];
            parts.extend(names);
            (Basis::Stack, parts, culprit)
        } else if rust_error || panic {
            // The callsite: the target, the file of a panic, the message's template.
            let mut parts = vec![
                r.target.to_string(),
                location.clone().unwrap_or_default(),
                normalise(&message),
            ];
            parts.extend(chain_types.iter().cloned());
            let culprit = location.unwrap_or(place);
            (Basis::Callsite, parts, culprit)
        } else {
            let culprit = location.unwrap_or(place);
            (
                Basis::Message,
                vec![kind.clone(), normalise(&message)],
                culprit,
            )
        };
        Some(Self {
            fingerprint: fingerprint(FINGERPRINT_VERSION, &parts),
            basis,
            kind: bounded(&kind, 200),
            message,
            culprit: bounded(&culprit, 500),
        })
    }

    /// The fingerprints earlier versions of the algorithm gave this occurrence, newest
    /// first: where to look for its group when no group has the current one. None yet.
    pub fn earlier(&self) -> Vec<String> {
        Vec::new()
    }
}

/// `version:` and the first 16 bytes of the SHA-256 of the parts, each ended by a NUL.
fn fingerprint(version: u32, parts: &[String]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    let digest = h.finalize();
    let mut out = format!("{version}:");
    for b in &digest[..16] {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn value_text(v: &Value) -> String {
    match v {
        Value::Str(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `s` cut to at most `max` bytes at a character boundary.
fn bounded(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// `src/main.rs:42:7` → `src/main.rs`.
fn strip_line(location: &str) -> &str {
    let mut s = location;
    while let Some((head, tail)) = s.rsplit_once(':') {
        if !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit()) {
            s = head;
        } else {
            break;
        }
    }
    s
}

/// One frame of a stack trace.
#[derive(Debug, PartialEq)]
struct Frame {
    /// `module::function`.
    name: String,
    /// Whether it is the application's own code.
    in_app: bool,
}

/// The frames of a stack trace, outermost first as far as the format says, in the
/// formats of Python, Java and the JVM, JavaScript (V8 and Firefox), Go and Rust.
fn stack_frames(trace: &str) -> Vec<Frame> {
    let mut frames = Vec::new();
    let mut go_function: Option<String> = None;
    let mut python = false;
    for raw in trace.lines() {
        let line = raw.trim();
        if line.starts_with("Traceback (most recent call last)") {
            python = true;
            continue;
        }
        // Python: File "app/views.py", line 12, in handler
        if let Some(rest) = line.strip_prefix("File \"") {
            python = true;
            if let Some((path, tail)) = rest.split_once('"') {
                let function = tail.rsplit_once(" in ").map_or("?", |(_, f)| f.trim());
                let module = path
                    .trim_end_matches(".py")
                    .rsplit(['/', '\\'])
                    .next()
                    .unwrap_or(path);
                let library = path.contains("site-packages")
                    || path.contains("dist-packages")
                    || path.contains("/lib/python")
                    || path.starts_with('<');
                frames.push(Frame {
                    name: format!("{module}::{function}"),
                    in_app: !library,
                });
            }
            continue;
        }
        // Java, V8: at com.acme.Orders.place(Orders.java:42) / at place (/app/x.js:1:2)
        if let Some(rest) = line.strip_prefix("at ") {
            let rest = rest.strip_prefix("async ").unwrap_or(rest);
            let (function, location) = match rest.split_once(" (") {
                Some((f, loc)) => (f.trim(), loc.trim_end_matches(')')),
                None => {
                    // V8 without a name: the location alone; Java always has one.
                    if rest.contains('(') {
                        let (f, loc) = rest.split_once('(').unwrap_or((rest, ""));
                        (f.trim(), loc.trim_end_matches(')'))
                    } else if strip_line(rest).ends_with(".rs") {
                        // A Rust frame's location line: its function came before.
                        continue;
                    } else {
                        ("<anonymous>", rest)
                    }
                }
            };
            let file = strip_line(location);
            let jvm = file.ends_with(".java") || file.ends_with(".kt") || file.ends_with(".scala");
            let name = if jvm {
                function.to_owned()
            } else {
                let module = file
                    .rsplit(['/', '\\'])
                    .next()
                    .unwrap_or(file)
                    .split(['?', '#'])
                    .next()
                    .unwrap_or_default()
                    .trim_end_matches(".js")
                    .trim_end_matches(".mjs")
                    .trim_end_matches(".ts");
                format!("{module}::{function}")
            };
            let library = if jvm {
                ["java.", "javax.", "jdk.", "sun.", "kotlin.", "scala."]
                    .iter()
                    .any(|p| function.starts_with(p))
            } else {
                file.contains("node_modules") || file.starts_with("node:") || file.is_empty()
            };
            frames.push(Frame {
                name,
                in_app: !library,
            });
            continue;
        }
        // Firefox: place@https://app/x.js:1:2
        if let Some((function, location)) = line.split_once('@') {
            if location.contains(':') && !function.contains(' ') && !python {
                let file = strip_line(location);
                let module = file
                    .rsplit('/')
                    .next()
                    .unwrap_or(file)
                    .trim_end_matches(".js");
                frames.push(Frame {
                    name: format!(
                        "{module}::{}",
                        if function.is_empty() {
                            "<anonymous>"
                        } else {
                            function
                        }
                    ),
                    in_app: !file.contains("node_modules"),
                });
                continue;
            }
        }
        // Rust: "  12: my_app::orders::place::h0123456789abcdef" then "at src/x.rs:4:5".
        if let Some((n, function)) = line.split_once(": ") {
            if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) {
                let function = strip_rust_hash(function.trim());
                let library = [
                    "std::",
                    "core::",
                    "alloc::",
                    "tokio::",
                    "futures",
                    "<",
                    "__rust",
                    "rust_begin_unwind",
                    "hyper::",
                    "tower::",
                    "axum::",
                ]
                .iter()
                .any(|p| function.starts_with(p));
                frames.push(Frame {
                    name: function.to_owned(),
                    in_app: !library,
                });
                continue;
            }
        }
        // Go: "main.place(0xc000010000)" then "\t/app/main.go:12 +0x1d".
        if raw.starts_with('\t') || raw.starts_with("    ") {
            if let Some(function) = go_function.take() {
                let library = line.contains("/go/src/")
                    || line.contains("/pkg/mod/")
                    || line.contains("GOROOT");
                frames.push(Frame {
                    name: function,
                    in_app: !library,
                });
            }
            continue;
        }
        if line.ends_with(')') && line.contains('(') && !line.contains(' ') {
            let function = line.split('(').next().unwrap_or(line);
            if function.contains('.') {
                go_function = Some(function.to_owned());
            }
        }
    }
    // Python lists the outermost call first; the JVM, V8, Firefox, Go and Rust the
    // innermost: frames are kept outermost first.
    if !python {
        frames.reverse();
    }
    frames
}

/// `app::f::h0123456789abcdef` → `app::f`.
fn strip_rust_hash(f: &str) -> &str {
    match f.rsplit_once("::h") {
        Some((head, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            head
        }
        _ => f,
    }
}

/// `message` with its variable parts replaced by placeholders: quoted values
/// (`<str>`), UUIDs (`<uuid>`), IP addresses (`<ip>`), hex numbers and ids (`<hex>`),
/// numbers (`<n>`), e-mail addresses (`<email>`); runs of white space become one.
pub fn normalise(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for word in split_keeping_quotes(message) {
        if !out.is_empty() {
            out.push(' ');
        }
        match word {
            Piece::Quoted => out.push_str("<str>"),
            Piece::Word(w) => normalise_word(w, &mut out),
        }
    }
    out
}

enum Piece<'a> {
    Quoted,
    Word(&'a str),
}

/// Words split at white space, with quoted values (`'…'`, `"…"`, `` `…` ``) as one
/// piece each.
fn split_keeping_quotes(s: &str) -> Vec<Piece<'_>> {
    let mut pieces = Vec::new();
    let mut rest = s;
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            break;
        }
        let first = rest.chars().next().unwrap_or(' ');
        if matches!(first, '\'' | '"' | '`') {
            if let Some(end) = rest[1..].find(first) {
                pieces.push(Piece::Quoted);
                rest = &rest[end + 2..];
                continue;
            }
        }
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        pieces.push(Piece::Word(&rest[..end]));
        rest = &rest[end..];
    }
    pieces
}

/// One word: its leading and trailing punctuation kept, its core replaced when it is
/// a value.
fn normalise_word(word: &str, out: &mut String) {
    let is_edge = |c: char| {
        matches!(
            c,
            '(' | ')' | '[' | ']' | '{' | '}' | ',' | ';' | '<' | '>' | '='
        )
    };
    let core_start = word.find(|c: char| !is_edge(c)).unwrap_or(word.len());
    let core_end = word
        .rfind(|c: char| !is_edge(c) && c != '.' && c != ':')
        .map_or(core_start, |i| {
            i + word[i..].chars().next().map_or(1, char::len_utf8)
        });
    let (head, core, tail) = if core_start < core_end {
        (
            &word[..core_start],
            &word[core_start..core_end],
            &word[core_end..],
        )
    } else {
        (word, "", "")
    };
    out.push_str(head);
    // key=value: the key stays.
    if let Some((key, value)) = core.split_once('=') {
        if !key.is_empty() && !value.is_empty() {
            out.push_str(key);
            out.push('=');
            out.push_str(classify(value).unwrap_or(value));
            out.push_str(tail);
            return;
        }
    }
    match classify(core) {
        Some(p) => out.push_str(p),
        None => out.push_str(&replace_digit_runs(core)),
    }
    out.push_str(tail);
}

/// The placeholder for a word that is wholly a value.
fn classify(w: &str) -> Option<&'static str> {
    if w.is_empty() {
        return None;
    }
    if is_uuid(w) {
        return Some("<uuid>");
    }
    if is_ipv4(w) || is_ipv6(w) {
        return Some("<ip>");
    }
    if w.contains('@') && w.contains('.') && !w.starts_with('@') && !w.ends_with('@') {
        return Some("<email>");
    }
    let digits = w.bytes().filter(u8::is_ascii_digit).count();
    if let Some(hex) = w.strip_prefix("0x").or_else(|| w.strip_prefix("0X")) {
        if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Some("<hex>");
        }
    }
    let numeric = w
        .trim_start_matches(['-', '+'])
        .bytes()
        .all(|b| b.is_ascii_digit() || b == b'.' || b == b'_');
    if numeric && digits > 0 {
        return Some("<n>");
    }
    // Ids: long runs of hex with digits in them (hashes, object ids), or long tokens
    // mixing letters and digits.
    if w.len() >= 8 && digits > 0 && w.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Some("<hex>");
    }
    if w.len() >= 12
        && digits >= 2
        && w.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Some("<id>");
    }
    None
}

/// Digits inside a word (`user42`, `/orders/123/items`): each run becomes `<n>`.
fn replace_digit_runs(w: &str) -> String {
    let mut out = String::with_capacity(w.len());
    let mut in_digits = false;
    for segment in w.split_inclusive('/') {
        let (body, slash) = match segment.strip_suffix('/') {
            Some(b) => (b, "/"),
            None => (segment, ""),
        };
        if let Some(p) = classify(body).filter(|_| !body.is_empty() && w.contains('/')) {
            out.push_str(p);
            out.push_str(slash);
            continue;
        }
        let mut chars = body.chars().peekable();
        while let Some(c) = chars.next() {
            // A decimal point inside a number is part of it.
            if in_digits && c == '.' && chars.peek().is_some_and(char::is_ascii_digit) {
                continue;
            }
            if c.is_ascii_digit() {
                if !in_digits {
                    out.push_str("<n>");
                    in_digits = true;
                }
            } else {
                in_digits = false;
                out.push(c);
            }
        }
        in_digits = false;
        out.push_str(slash);
    }
    out
}

fn is_uuid(w: &str) -> bool {
    let b = w.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn is_ipv4(w: &str) -> bool {
    let w = w.split(':').next().unwrap_or(w);
    let parts: Vec<&str> = w.split('.').collect();
    parts.len() == 4
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
}

fn is_ipv6(w: &str) -> bool {
    let w = w.trim_start_matches('[').split(']').next().unwrap_or(w);
    w.matches(':').count() >= 2
        && w.bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        && w.bytes().any(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use logbook_proto::{InstanceId, RecordId, Timestamp};

    fn event(target: &'static str, level: Level, fields: &[(&'static str, &str)]) -> Record {
        let mut r = Record::new(
            RecordId::new(InstanceId::from_random(1), 1),
            Timestamp(1),
            Kind::Event,
            level,
            "event",
        );
        r.target = target.into();
        for (k, v) in fields {
            r.fields.set(*k, Value::Str((*v).into()));
        }
        r
    }

    #[test]
    fn messages_lose_their_variable_parts() {
        assert_eq!(
            normalise("user 42 not found at 10.0.0.7:5432 (id=7f3c9a2e-1b2c-4d5e-8f90-0123456789ab) 'bob'"),
            "user <n> not found at <ip> (id=<uuid>) <str>"
        );
        assert_eq!(
            normalise("GET /orders/123/items failed after 1.5s: 0xdeadbeef deadbeef12 \"x y\""),
            "GET /orders/<n>/items failed after <n>s: <hex> <hex> <str>"
        );
        assert_eq!(
            normalise("mail to a@b.com bounced"),
            "mail to <email> bounced"
        );
        assert_eq!(normalise("connection   refused"), "connection refused");
        assert_eq!(normalise("at ::1 and fe80::1"), "at <ip> and <ip>");
    }

    #[test]
    fn rust_errors_group_by_callsite_and_chain_types() {
        let a = event(
            "shop::orders",
            Level::Error,
            &[("error", "order 17 not found"), ("error.types", "NotFound")],
        );
        let b = event(
            "shop::orders",
            Level::Error,
            &[("error", "order 99 not found"), ("error.types", "NotFound")],
        );
        let other_type = event(
            "shop::orders",
            Level::Error,
            &[("error", "order 99 not found"), ("error.types", "Gone")],
        );
        let other_target = event(
            "shop::billing",
            Level::Error,
            &[("error", "order 99 not found")],
        );
        let (oa, ob) = (Occurrence::of(&a).unwrap(), Occurrence::of(&b).unwrap());
        assert_eq!(oa.basis, Basis::Callsite);
        assert_eq!(oa.fingerprint, ob.fingerprint);
        assert!(oa.fingerprint.starts_with("1:"));
        assert_eq!(oa.kind, "NotFound");
        assert_eq!(oa.message, "order 17 not found");
        assert_ne!(
            oa.fingerprint,
            Occurrence::of(&other_type).unwrap().fingerprint
        );
        assert_ne!(
            oa.fingerprint,
            Occurrence::of(&other_target).unwrap().fingerprint
        );
        // Not errors: a warning with an error field, an ERROR without one.
        assert!(Occurrence::of(&event("x", Level::Warn, &[("error", "e")])).is_none());
        assert!(Occurrence::of(&event("x", Level::Error, &[("detail", "e")])).is_none());
    }

    #[test]
    fn panics_group_by_file_and_message_template() {
        let p = |m: &str, at: &str| {
            Occurrence::of(&event(
                "panic",
                Level::Error,
                &[("exception.message", m), ("code.location", at)],
            ))
            .unwrap()
        };
        let a = p(
            "index out of bounds: the len is 3 but the index is 7",
            "src/main.rs:10:5",
        );
        let b = p(
            "index out of bounds: the len is 2 but the index is 9",
            "src/main.rs:12:5",
        );
        assert_eq!(a.kind, "panic");
        assert_eq!(a.culprit, "src/main.rs");
        assert_eq!(a.fingerprint, b.fingerprint);
        assert_ne!(
            a.fingerprint,
            p(
                "called `Option::unwrap()` on a `None` value",
                "src/main.rs:1"
            )
            .fingerprint
        );
    }

    #[test]
    fn stack_traces_group_by_in_app_frames_without_lines() {
        let py = |line: u32, msg: &str| {
            format!(
                "Traceback (most recent call last):\n  File \"/app/shop/views.py\", line {line}, in checkout\n    pay()\n  File \"/usr/lib/python3/site-packages/requests/api.py\", line 59, in request\n  File \"/app/shop/pay.py\", line 3, in pay\nValueError: {msg}"
            )
        };
        let occ = |trace: String, msg: &str| {
            let mut r = event(
                "otel",
                Level::Error,
                &[("exception.type", "ValueError"), ("exception.message", msg)],
            );
            r.fields.set("exception.stacktrace", Value::Str(trace));
            Occurrence::of(&r).unwrap()
        };
        let a = occ(py(10, "bad card 1234"), "bad card 1234");
        let b = occ(py(99, "card expired"), "card expired");
        assert_eq!(a.basis, Basis::Stack);
        assert_eq!(
            a.fingerprint, b.fingerprint,
            "line numbers and messages do not split a stack group"
        );
        assert_eq!(a.culprit, "pay::pay");
        let frames = stack_frames(&py(1, "x"));
        assert_eq!(
            frames,
            vec![
                Frame {
                    name: "views::checkout".into(),
                    in_app: true
                },
                Frame {
                    name: "api::request".into(),
                    in_app: false
                },
                Frame {
                    name: "pay::pay".into(),
                    in_app: true
                },
            ]
        );
        // V8: innermost first; node_modules left out.
        let js = "TypeError: x is undefined\n    at render (/app/src/view.js:10:3)\n    at Object.run (/app/node_modules/lib/index.js:1:1)\n    at main (/app/src/main.js:2:2)";
        let names: Vec<String> = stack_frames(js)
            .into_iter()
            .filter(|f| f.in_app)
            .map(|f| f.name)
            .collect();
        assert_eq!(names, ["main::main", "view::render"]);
        // Java.
        let java = "java.lang.IllegalStateException: boom\n\tat com.acme.Orders.place(Orders.java:42)\n\tat java.base/java.lang.Thread.run(Thread.java:1)";
        let frames = stack_frames(java);
        assert_eq!(frames.last().unwrap().name, "com.acme.Orders.place");
        // Rust backtrace: hashes stripped, std left out.
        let rust = "   0: std::panicking::begin_panic\n   1: shop::orders::place::h0123456789abcdef\n             at ./src/orders.rs:4:5\n   2: shop::main";
        let names: Vec<String> = stack_frames(rust)
            .into_iter()
            .filter(|f| f.in_app)
            .map(|f| f.name)
            .collect();
        assert_eq!(names, ["shop::main", "shop::orders::place"]);
    }

    #[test]
    fn a_custom_fingerprint_overrides() {
        let a = event(
            "x",
            Level::Error,
            &[("error", "a 1"), ("fingerprint", "checkout-timeouts")],
        );
        let b = event(
            "y",
            Level::Error,
            &[("error", "b 2"), ("fingerprint", "checkout-timeouts")],
        );
        let (a, b) = (Occurrence::of(&a).unwrap(), Occurrence::of(&b).unwrap());
        assert_eq!(a.basis, Basis::Custom);
        assert_eq!(a.fingerprint, b.fingerprint);
    }

    #[test]
    fn otel_exception_events_without_stacks_group_by_type_and_message() {
        let mut a = event(
            "",
            Level::Error,
            &[
                ("exception.type", "TimeoutError"),
                ("exception.message", "timed out after 30s"),
            ],
        );
        a.name = "exception".into();
        let mut b = a.clone();
        b.fields.set(
            "exception.message",
            Value::Str("timed out after 45s".into()),
        );
        let (oa, ob) = (Occurrence::of(&a).unwrap(), Occurrence::of(&b).unwrap());
        assert_eq!(oa.basis, Basis::Message);
        assert_eq!(oa.kind, "TimeoutError");
        assert_eq!(oa.fingerprint, ob.fingerprint);
    }
}
