//! `logbook runs` and `logbook run ID`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, BufWriter, Write};

use anyhow::bail;
use clap::{Args, ValueEnum};
use logbook_proto::genai;
use logbook_proto::{Kind, Record, SpanId, Status, Timestamp, Value};

use super::calls::usd;
use super::output::{clip, duration, inline_fields, render_value, short_value};
use crate::pipeline::{CATEGORY_LLM_CALL, CATEGORY_TOOL_CALL};
use crate::query::{RunFilter, TimeSpec};
use crate::store::{RunSummary, Store};

/// Output formats for runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
enum RunFormat {
    /// Aligned columns (for `run`: the span tree).
    #[default]
    Table,
    /// JSON.
    Json,
    /// One JSON object per line.
    Jsonl,
}

/// Arguments of `logbook runs`.
#[derive(Debug, Args)]
pub struct RunsArgs {
    /// Only runs started at or after this time: RFC 3339 or an age (15m, 2h, 7d).
    #[arg(long, value_name = "TIME")]
    since: Option<TimeSpec>,
    /// Only runs started before this time.
    #[arg(long, value_name = "TIME")]
    until: Option<TimeSpec>,
    /// Only runs of this tenant.
    #[arg(long)]
    tenant: Option<String>,
    /// Only runs of this user (user_id).
    #[arg(long, value_name = "USER_ID")]
    user: Option<String>,
    /// Only runs of this service.
    #[arg(long)]
    service: Option<String>,
    /// Only runs with this status: running, ok, error.
    #[arg(long, value_parser = ["running", "ok", "error"])]
    status: Option<String>,
    /// Only runs of this agent (gen_ai.agent.name).
    #[arg(long)]
    agent: Option<String>,
    /// At most this many runs.
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: RunFormat,
}

impl RunsArgs {
    pub(crate) fn run(&self, store: &dyn Store) -> anyhow::Result<()> {
        let now = Timestamp::now();
        let runs = store.runs(&RunFilter {
            since: self.since.map(|t| t.resolve(now)),
            until: self.until.map(|t| t.resolve(now)),
            tenant: self.tenant.clone(),
            user_id: self.user.clone(),
            service: self.service.clone(),
            status: self.status.clone(),
            agent: self.agent.clone(),
            limit: self.limit,
        })?;
        let mut out = BufWriter::new(io::stdout().lock());
        match self.format {
            RunFormat::Json => {
                serde_json::to_writer_pretty(&mut out, &runs)?;
                writeln!(out)?;
            }
            RunFormat::Jsonl => {
                for r in &runs {
                    serde_json::to_writer(&mut out, r)?;
                    writeln!(out)?;
                }
            }
            RunFormat::Table => {
                writeln!(
                    out,
                    "{:<36} {:<20} {:>9} {:<7} {:<14} {:<18} {:<12} {:>4} {:>5} {:>15} {:>10} {:>6}",
                    "RUN",
                    "STARTED",
                    "DURATION",
                    "STATUS",
                    "SERVICE",
                    "AGENT",
                    "USER",
                    "LLM",
                    "TOOLS",
                    "TOKENS IN/OUT",
                    "COST",
                    "ERRORS"
                )?;
                for r in &runs {
                    writeln!(
                        out,
                        "{:<36} {:<20} {:>9} {:<7} {:<14} {:<18} {:<12} {:>4} {:>5} {:>15} {:>10} {:>6}",
                        r.run_id,
                        to_seconds(r.started),
                        r.duration_ns.map(duration).unwrap_or_else(|| "-".into()),
                        r.status,
                        clip(r.service.as_deref().unwrap_or("-"), 14),
                        clip(r.agent.as_deref().or(r.root_name.as_deref()).unwrap_or("-"), 18),
                        clip(r.user_id.as_deref().unwrap_or("-"), 12),
                        r.llm_calls,
                        r.tool_calls,
                        format!("{}/{}", r.input_tokens, r.output_tokens),
                        usd(r.cost),
                        r.errors
                    )?;
                }
            }
        }
        out.flush()?;
        Ok(())
    }
}

/// Arguments of `logbook run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The run id.
    id: String,
    /// Most records to read for the tree.
    #[arg(long, default_value_t = 100_000)]
    limit: usize,
    /// Show prompts, responses, tool arguments and results whole (they are cut to
    /// one line of 160 characters otherwise).
    #[arg(long)]
    full: bool,
    /// Output format: the span tree, or JSON (the run and its records).
    #[arg(long, value_enum, default_value_t)]
    format: RunFormat,
}

impl RunArgs {
    pub(crate) fn run(&self, store: &dyn Store) -> anyhow::Result<()> {
        let Some(summary) = store.run(&self.id)? else {
            bail!("no run {:?} (see `logbook runs`)", self.id);
        };
        let records = store.run_records(&self.id, self.limit)?;
        let mut out = BufWriter::new(io::stdout().lock());
        match self.format {
            RunFormat::Json | RunFormat::Jsonl => {
                let v = serde_json::json!({ "run": summary, "records": records });
                serde_json::to_writer_pretty(&mut out, &v)?;
                writeln!(out)?;
            }
            RunFormat::Table => {
                out.write_all(header(&summary).as_bytes())?;
                out.write_all(tree(&records, self.full).as_bytes())?;
                if records.len() == self.limit {
                    writeln!(out, "… showing the first {} records (--limit)", self.limit)?;
                }
            }
        }
        out.flush()?;
        Ok(())
    }
}

/// `2026-11-21T20:00:00Z`: a time to the second.
fn to_seconds(t: Timestamp) -> String {
    let s = t.to_rfc3339();
    match s.get(..19) {
        Some(head) => format!("{head}Z"),
        None => s,
    }
}

fn header(r: &RunSummary) -> String {
    let mut s = format!(
        "run {}  {}  {}  started {}\n",
        r.run_id,
        r.status,
        r.duration_ns.map(duration).unwrap_or_else(|| "-".into()),
        r.started
    );
    let mut scope = Vec::new();
    for (k, v) in [
        ("service", &r.service),
        ("tenant", &r.tenant),
        ("env", &r.env),
        ("project", &r.project),
        ("app", &r.app),
        ("user", &r.user_id),
        ("session", &r.session_id),
    ] {
        if let Some(v) = v {
            scope.push(format!("{k}={v}"));
        }
    }
    let _ = writeln!(s, "{}", scope.join(" "));
    let _ = writeln!(
        s,
        "trace {}  records {}  spans {}  errors {}",
        r.trace_id.map(|t| t.to_hex()).unwrap_or_else(|| "-".into()),
        r.records,
        r.spans,
        r.errors
    );
    if r.llm_calls + r.tool_calls > 0 || r.agent.is_some() {
        let _ = writeln!(
            s,
            "agent {}  LLM calls {}  tool calls {}  tokens in {} (cache read {}) out {}  cost {}{}",
            r.agent.as_deref().unwrap_or("-"),
            r.llm_calls,
            r.tool_calls,
            r.input_tokens,
            r.cache_read_tokens,
            r.output_tokens,
            usd(r.cost),
            r.provider_cost
                .map(|c| format!(" (provider reported {})", usd(Some(c))))
                .unwrap_or_default(),
        );
        if !r.models.is_empty() {
            let _ = writeln!(s, "models {}", r.models.join(", "));
        }
    }
    s.push('\n');
    s
}

/// A span's start and end records and what happened inside it.
#[derive(Default)]
struct Node<'a> {
    start: Option<&'a Record>,
    end: Option<&'a Record>,
    children: Vec<Item<'a>>,
}

enum Item<'a> {
    Span(SpanId),
    Event(&'a Record),
}

impl<'a> Node<'a> {
    fn record(&self) -> Option<&'a Record> {
        self.end.or(self.start)
    }
    fn ts(&self) -> Timestamp {
        self.start.or(self.end).map_or(Timestamp(0), |r| r.ts)
    }
}

/// The run's records as an indented tree: spans with status and duration, events
/// under the span they happened in.
fn tree(records: &[Record], full: bool) -> String {
    let mut nodes: HashMap<SpanId, Node<'_>> = HashMap::new();
    for r in records {
        if let (Kind::SpanStart | Kind::SpanEnd, Some(id)) = (r.kind, r.span_id) {
            let n = nodes.entry(id).or_default();
            if r.kind == Kind::SpanStart {
                n.start = Some(r);
            } else {
                n.end = Some(r);
            }
        }
    }
    let mut roots: Vec<Item<'_>> = Vec::new();
    let ids: Vec<SpanId> = nodes.keys().copied().collect();
    for id in ids {
        let parent = nodes[&id]
            .record()
            .and_then(|r| r.parent_span_id)
            .filter(|p| nodes.contains_key(p));
        match parent {
            Some(p) => nodes
                .get_mut(&p)
                .expect("checked")
                .children
                .push(Item::Span(id)),
            None => roots.push(Item::Span(id)),
        }
    }
    for r in records.iter().filter(|r| r.kind == Kind::Event) {
        match r.span_id.and_then(|s| nodes.get_mut(&s)) {
            Some(n) => n.children.push(Item::Event(r)),
            None => roots.push(Item::Event(r)),
        }
    }
    let ts = |nodes: &HashMap<SpanId, Node<'_>>, item: &Item<'_>| match item {
        Item::Span(id) => nodes[id].ts(),
        Item::Event(r) => r.ts,
    };
    let mut keys: Vec<SpanId> = nodes.keys().copied().collect();
    keys.sort_unstable();
    for id in keys {
        let mut children = std::mem::take(&mut nodes.get_mut(&id).expect("exists").children);
        children.sort_by_key(|c| ts(&nodes, c));
        nodes.get_mut(&id).expect("exists").children = children;
    }
    roots.sort_by_key(|c| ts(&nodes, c));
    let mut out = String::new();
    let n = roots.len();
    for (i, item) in roots.iter().enumerate() {
        render(&nodes, item, "", i + 1 == n, true, full, &mut out);
    }
    out
}

fn render(
    nodes: &HashMap<SpanId, Node<'_>>,
    item: &Item<'_>,
    prefix: &str,
    last: bool,
    top: bool,
    full: bool,
    out: &mut String,
) {
    let (branch, more) = match (top, last) {
        (true, _) => ("", ""),
        (false, true) => ("└─ ", "   "),
        (false, false) => ("├─ ", "│  "),
    };
    out.push_str(prefix);
    out.push_str(branch);
    match item {
        Item::Event(r) => {
            let _ = write!(
                out,
                "{} {}",
                r.level,
                r.message.as_deref().unwrap_or(&r.name)
            );
            let fields = inline_fields(r, 120);
            if !fields.is_empty() {
                let _ = write!(out, "  {fields}");
            }
            out.push('\n');
        }
        Item::Span(id) => {
            let node = &nodes[id];
            let Some(r) = node.record() else { return };
            let status = match node.end {
                Some(e) => e.status.unwrap_or(Status::Ok).as_str(),
                None => "running",
            };
            let _ = write!(out, "{}  {}", r.name, status);
            if let Some(d) = node.end.and_then(|e| e.duration_ns) {
                let _ = write!(out, "  {}", duration(d));
            }
            let details = call_details(r);
            let fields = if details.is_empty() {
                inline_fields(r, 120)
            } else {
                call_summary(r)
            };
            if !fields.is_empty() {
                let _ = write!(out, "  {fields}");
            }
            out.push('\n');
            let child_prefix = format!("{prefix}{more}");
            let n = node.children.len();
            let bar = if n > 0 { "│  " } else { "   " };
            for (label, value) in details {
                let text = render_value(value, full);
                let mut lines = text.lines();
                let first = lines.next().unwrap_or_default();
                let _ = writeln!(out, "{child_prefix}{bar}{label}: {first}");
                for line in lines {
                    let _ = writeln!(out, "{child_prefix}{bar}  {line}");
                }
            }
            for (i, c) in node.children.iter().enumerate() {
                render(nodes, c, &child_prefix, i + 1 == n, false, full, out);
            }
        }
    }
}

/// The parts of an LLM or tool call shown on their own lines: prompt and response,
/// arguments and result.
fn call_details(r: &Record) -> Vec<(&'static str, &Value)> {
    let keys: &[(&str, &'static str)] = match r.category.as_deref() {
        Some(CATEGORY_LLM_CALL) => &[
            (genai::SYSTEM_INSTRUCTIONS, "system"),
            (genai::INPUT_MESSAGES, "prompt"),
            (genai::OUTPUT_MESSAGES, "response"),
        ],
        Some(CATEGORY_TOOL_CALL) => &[
            (genai::TOOL_CALL_ARGUMENTS, "arguments"),
            (genai::TOOL_CALL_RESULT, "result"),
        ],
        _ => &[],
    };
    keys.iter()
        .filter_map(|(k, label)| r.fields.get(k).map(|v| (*label, v)))
        .collect()
}

/// An LLM or tool call's other fields, inline, with the GenAI prefix dropped.
fn call_summary(r: &Record) -> String {
    let mut s = String::new();
    for (k, v) in r.fields.iter() {
        if matches!(
            k,
            genai::SYSTEM_INSTRUCTIONS
                | genai::INPUT_MESSAGES
                | genai::OUTPUT_MESSAGES
                | genai::TOOL_CALL_ARGUMENTS
                | genai::TOOL_CALL_RESULT
                | genai::OPERATION_NAME
        ) {
            continue;
        }
        if !s.is_empty() {
            s.push(' ');
        }
        let k = k.strip_prefix("gen_ai.").unwrap_or(k);
        let _ = write!(s, "{k}={}", short_value(v, 60));
    }
    s
}
