//! Writing records and tables: JSON, JSON Lines, CSV, text and aligned columns. Every
//! writer streams: one record in, one record out.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::{self, Write};

use logbook_proto::{keys, Kind, Record, ScopeKey, Status, Timestamp, Value};

use super::args::Format;

/// A time to the second, as tables show it: `2026-11-21T20:00:00Z`.
pub(crate) fn to_seconds(t: Timestamp) -> String {
    let s = t.to_rfc3339();
    match s.get(..19) {
        Some(head) => format!("{head}Z"),
        None => s,
    }
}

/// Writes records one at a time.
pub(crate) trait RecordWriter {
    fn write(&mut self, r: &Record) -> io::Result<()>;
    fn finish(&mut self) -> io::Result<()>;
}

/// A writer of records in `format`.
pub(crate) fn for_format<'a, W: Write + 'a>(format: Format, out: W) -> Box<dyn RecordWriter + 'a> {
    match format {
        Format::Table => Box::new(Table { out, header: false }),
        Format::Json => Box::new(JsonArray { out, first: true }),
        Format::Jsonl => Box::new(JsonLines { out }),
        Format::Csv => Box::new(Csv {
            out,
            header: false,
            line: String::new(),
        }),
        Format::Text => Box::new(Text {
            out,
            line: String::new(),
        }),
    }
}

struct JsonLines<W> {
    out: W,
}

impl<W: Write> RecordWriter for JsonLines<W> {
    fn write(&mut self, r: &Record) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, r)?;
        self.out.write_all(b"\n")
    }
    fn finish(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

struct JsonArray<W> {
    out: W,
    first: bool,
}

impl<W: Write> RecordWriter for JsonArray<W> {
    fn write(&mut self, r: &Record) -> io::Result<()> {
        self.out
            .write_all(if self.first { b"[\n  " } else { b",\n  " })?;
        self.first = false;
        serde_json::to_writer(&mut self.out, r)?;
        Ok(())
    }
    fn finish(&mut self) -> io::Result<()> {
        self.out
            .write_all(if self.first { b"[]\n" } else { b"\n]\n" })?;
        self.out.flush()
    }
}

struct Csv<W> {
    out: W,
    header: bool,
    line: String,
}

/// Appends one CSV cell, quoted when it holds a comma, quote or line break (RFC 4180).
pub(crate) fn csv_cell(line: &mut String, v: &str) {
    if v.contains([',', '"', '\n', '\r']) {
        line.push('"');
        line.push_str(&v.replace('"', "\"\""));
        line.push('"');
    } else {
        line.push_str(v);
    }
}

/// The record's values in [`keys::COLUMNS`] order, as text (empty for null).
fn flat_values(r: &Record) -> Vec<Cow<'_, str>> {
    fn opt(v: Option<&str>) -> Cow<'_, str> {
        Cow::Borrowed(v.unwrap_or(""))
    }
    let num = |v: Option<u64>| v.map_or(Cow::Borrowed(""), |n| Cow::Owned(n.to_string()));
    let mut v = vec![
        Cow::Owned(logbook_proto::SCHEMA_VERSION.to_string()),
        Cow::Owned(r.id.to_hex()),
        Cow::Owned(r.seq.to_string()),
        Cow::Owned(r.ts.to_rfc3339()),
        Cow::Borrowed(r.kind.as_str()),
        Cow::Borrowed(r.level.as_str()),
        Cow::Borrowed(r.name.as_ref()),
        Cow::Borrowed(r.target.as_ref()),
        opt(r.message.as_deref()),
        Cow::Owned(r.trace_id.to_hex()),
        r.span_id
            .map_or(Cow::Borrowed(""), |s| Cow::Owned(s.to_hex())),
        r.parent_span_id
            .map_or(Cow::Borrowed(""), |s| Cow::Owned(s.to_hex())),
    ];
    v.extend(ScopeKey::ALL.iter().map(|k| opt(r.scope.get(*k))));
    v.extend([
        Cow::Borrowed(r.resource.service.as_str()),
        Cow::Borrowed(r.resource.host.as_str()),
        Cow::Owned(r.resource.pid.to_string()),
        opt(r.file.as_deref()),
        num(r.line.map(u64::from)),
        opt(r.category.as_deref()),
        Cow::Borrowed(r.status.map_or("", Status::as_str)),
        num(r.duration_ns),
        num(r.busy_ns),
        num(r.idle_ns),
        Cow::Owned(serde_json::to_string(&r.fields).unwrap_or_default()),
        r.origin
            .as_deref()
            .map_or(Cow::Borrowed(""), |o| Cow::Owned(o.to_json())),
    ]);
    debug_assert_eq!(v.len(), keys::COLUMNS.len());
    v
}

impl<W: Write> RecordWriter for Csv<W> {
    fn write(&mut self, r: &Record) -> io::Result<()> {
        self.line.clear();
        if !self.header {
            self.line.push_str(&keys::COLUMNS.join(","));
            self.line.push_str("\r\n");
            self.header = true;
        }
        for (i, cell) in flat_values(r).iter().enumerate() {
            if i > 0 {
                self.line.push(',');
            }
            csv_cell(&mut self.line, cell);
        }
        self.line.push_str("\r\n");
        self.out.write_all(self.line.as_bytes())
    }
    fn finish(&mut self) -> io::Result<()> {
        if !self.header {
            self.out.write_all(keys::COLUMNS.join(",").as_bytes())?;
            self.out.write_all(b"\r\n")?;
        }
        self.out.flush()
    }
}

/// One line per record, like a log file:
/// `2026-11-21T20:00:00.123456Z  INFO agent::llm: message k=v {run_id=… trace=…}`.
struct Text<W> {
    out: W,
    line: String,
}

pub(crate) fn text_line(r: &Record, line: &mut String) {
    let _ = write!(line, "{} {:>5} {}: ", r.ts, r.level.as_str(), r.target);
    match r.kind {
        Kind::Event => line.push_str(r.message.as_deref().unwrap_or(&r.name)),
        Kind::SpanStart => {
            let _ = write!(line, "→ {}", r.name);
        }
        Kind::SpanEnd => {
            let _ = write!(
                line,
                "← {} {} {}",
                r.name,
                r.status.map_or("", Status::as_str),
                r.duration_ns.map(duration).unwrap_or_default()
            );
        }
    }
    for (k, v) in r.fields.iter() {
        let _ = write!(line, " {k}={}", short_value(v, 200));
    }
    line.push_str(" {");
    let mut first = true;
    for (k, v) in r.scope.iter() {
        let _ = write!(line, "{}{k}={v}", if first { "" } else { " " });
        first = false;
    }
    let _ = write!(
        line,
        "{}trace={}}}",
        if first { "" } else { " " },
        r.trace_id
    );
}

impl<W: Write> RecordWriter for Text<W> {
    fn write(&mut self, r: &Record) -> io::Result<()> {
        self.line.clear();
        text_line(r, &mut self.line);
        self.line.push('\n');
        self.out.write_all(self.line.as_bytes())
    }
    fn finish(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Aligned columns: time, level, kind, name, message (or span status and duration),
/// run, fields.
struct Table<W> {
    out: W,
    header: bool,
}

impl<W: Write> RecordWriter for Table<W> {
    fn write(&mut self, r: &Record) -> io::Result<()> {
        if !self.header {
            writeln!(
                self.out,
                "{:<27} {:<5} {:<5} {:<24} {:<40} {:<16} FIELDS",
                "TIME", "LEVEL", "KIND", "NAME", "MESSAGE", "RUN"
            )?;
            self.header = true;
        }
        let kind = match r.kind {
            Kind::Event => "event",
            Kind::SpanStart => "start",
            Kind::SpanEnd => "end",
        };
        let message = match r.kind {
            Kind::SpanEnd => format!(
                "{} {}",
                r.status.map_or("", Status::as_str),
                r.duration_ns.map(duration).unwrap_or_default()
            ),
            _ => r.message.clone().unwrap_or_default(),
        };
        writeln!(
            self.out,
            "{:<27} {:<5} {:<5} {:<24} {:<40} {:<16} {}",
            r.ts.to_rfc3339(),
            r.level.as_str(),
            kind,
            clip(&r.name, 24),
            clip(&one_line(&message), 40),
            clip(r.scope.run_id().unwrap_or("-"), 16),
            inline_fields(r, 60)
        )
    }
    fn finish(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// `key=value …`, each value cut to `max` characters.
pub(crate) fn inline_fields(r: &Record, max: usize) -> String {
    let mut s = String::new();
    for (k, v) in r.fields.iter() {
        if !s.is_empty() {
            s.push(' ');
        }
        let _ = write!(s, "{k}={}", short_value(v, max));
    }
    s
}

/// A value on one line, strings quoted only when they contain spaces, cut to `max`.
pub(crate) fn short_value(v: &Value, max: usize) -> String {
    let text = match v {
        Value::Str(s) if s.contains(char::is_whitespace) || s.is_empty() => format!("{s:?}"),
        other => other.to_string(),
    };
    clip(&one_line(&text), max).into_owned()
}

fn one_line(s: &str) -> Cow<'_, str> {
    if s.contains(['\n', '\r']) {
        Cow::Owned(s.replace(['\n', '\r'], " "))
    } else {
        Cow::Borrowed(s)
    }
}

/// `s` cut to `max` characters, ending in `…` when cut.
pub(crate) fn clip(s: &str, max: usize) -> Cow<'_, str> {
    match s.char_indices().nth(max) {
        None => Cow::Borrowed(s),
        Some(_) => {
            let end = s
                .char_indices()
                .nth(max.saturating_sub(1))
                .map_or(s.len(), |(i, _)| i);
            Cow::Owned(format!("{}…", &s[..end]))
        }
    }
}

/// A duration in the most readable unit: `850ns`, `12.3µs`, `45.6ms`, `1.234s`, `2m03s`.
pub(crate) fn duration(ns: u64) -> String {
    match ns {
        0..=999 => format!("{ns}ns"),
        1_000..=999_999 => format!("{:.1}µs", ns as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.1}ms", ns as f64 / 1e6),
        1_000_000_000..=59_999_999_999 => format!("{:.3}s", ns as f64 / 1e9),
        _ => format!("{}m{:02}s", ns / 60_000_000_000, ns / 1_000_000_000 % 60),
    }
}

/// Messages as `[role] text` lines; other JSON compact (or pretty with `full`); one
/// line of 160 characters unless `full`.
pub(crate) fn render_value(v: &Value, full: bool) -> String {
    let json = match v {
        Value::Json(j) => Some(j.to_value()),
        Value::Str(s) => serde_json::from_str::<serde_json::Value>(s)
            .ok()
            .filter(|j| j.is_array() || j.is_object()),
        _ => None,
    };
    let text = match json {
        Some(j) => match messages(&j) {
            Some(lines) => lines.join(if full { "\n" } else { " │ " }),
            None if full => serde_json::to_string_pretty(&j).unwrap_or_default(),
            None => j.to_string(),
        },
        None => match v {
            Value::Str(s) => s.clone(),
            other => other.to_string(),
        },
    };
    if full {
        text
    } else {
        let flat: String = text
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        clip(&flat, 160).into_owned()
    }
}

/// GenAI messages (`[{"role": …, "content": …}]` or `[{"role": …, "parts": [{"type":
/// "text", "content": …}]}]`) as `[role] text`; `None` for other JSON.
fn messages(j: &serde_json::Value) -> Option<Vec<String>> {
    let list = j.as_array()?;
    let mut out = Vec::with_capacity(list.len());
    for m in list {
        let role = m.get("role")?.as_str()?;
        let text = match (m.get("content"), m.get("parts")) {
            (Some(serde_json::Value::String(c)), _) => c.clone(),
            (_, Some(serde_json::Value::Array(parts))) => parts
                .iter()
                .map(
                    |p| match (p.get("content"), p.get("type").and_then(|t| t.as_str())) {
                        (Some(serde_json::Value::String(c)), _) => c.clone(),
                        (_, Some("tool_call")) => format!(
                            "tool call {}({})",
                            p.get("name").and_then(|n| n.as_str()).unwrap_or("?"),
                            p.get("arguments")
                                .map(|a| a.to_string())
                                .unwrap_or_default()
                        ),
                        _ => p.to_string(),
                    },
                )
                .collect::<Vec<_>>()
                .join(" "),
            (Some(other), _) => other.to_string(),
            (None, _) => m
                .get("tool_calls")
                .map(|t| format!("tool calls {t}"))
                .unwrap_or_default(),
        };
        out.push(format!("[{role}] {text}"));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(duration(850), "850ns");
        assert_eq!(duration(12_300), "12.3µs");
        assert_eq!(duration(45_600_000), "45.6ms");
        assert_eq!(duration(1_234_000_000), "1.234s");
        assert_eq!(duration(123_000_000_000), "2m03s");
    }

    #[test]
    fn clip_counts_characters() {
        assert_eq!(clip("héllo", 10), "héllo");
        assert_eq!(clip("héllo wörld", 5), "héll…");
    }

    #[test]
    fn csv_quotes_when_needed() {
        let mut s = String::new();
        csv_cell(&mut s, "plain");
        s.push(',');
        csv_cell(&mut s, "a,\"b\"\nc");
        assert_eq!(s, "plain,\"a,\"\"b\"\"\nc\"");
    }
}
