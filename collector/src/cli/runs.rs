//! `logbook runs` and `logbook run ID`.

use std::fmt::Write as _;
use std::io::{self, BufWriter, Write};

use anyhow::bail;
use clap::Args;
use logbook_proto::genai;
use logbook_proto::{Record, Timestamp, Value};

use super::args::{formats, Format};
use super::calls::usd;
use super::output::{clip, duration, inline_fields, render_value, short_value, to_seconds};
use crate::pipeline::{CATEGORY_LLM_CALL, CATEGORY_TOOL_CALL};
use crate::query::{RunFilter, TimeSpec};
use crate::store::{FoundRun, RunKind, RunSummary, StoreReader};
use crate::views::{RunTree, TreeItem};

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
    /// Only runs keyed this way: run (a run id) or trace (a trace whose spans set none).
    #[arg(long, value_parser = [RunKind::Run.as_str(), RunKind::Trace.as_str()])]
    kind: Option<String>,
    /// Only runs of this session (session_id): a conversation's turns.
    #[arg(long, value_name = "SESSION_ID")]
    session: Option<String>,
    /// Only runs that called this model.
    #[arg(long)]
    model: Option<String>,
    /// Only runs whose root span name, run id or agent contains this (any case).
    #[arg(long)]
    text: Option<String>,
    /// Only runs whose root span's field KEY equals VALUE (repeatable).
    #[arg(long = "meta", value_name = "KEY=VALUE", value_parser = super::args::parse_field)]
    meta: Vec<(String, String)>,
    /// At most this many runs.
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Output format.
    #[arg(long, default_value = "table", value_parser = formats(Format::RUNS))]
    format: Format,
}

impl RunsArgs {
    pub(crate) fn run(&self, store: &dyn StoreReader) -> anyhow::Result<()> {
        let now = Timestamp::now();
        let runs = store.runs(&RunFilter {
            kind: match self.kind.as_deref() {
                Some("trace") => Some(RunKind::Trace),
                Some(_) => Some(RunKind::Run),
                None => None,
            },
            since: self.since.map(|t| t.resolve(now)),
            until: self.until.map(|t| t.resolve(now)),
            tenant: self.tenant.clone(),
            user_id: self.user.clone(),
            service: self.service.clone(),
            status: self.status.clone(),
            agent: self.agent.clone(),
            session_id: self.session.clone(),
            model: self.model.clone(),
            text: self.text.clone(),
            root_fields: self.meta.clone(),
            after: None,
            unshared: false,
            limit: self.limit,
        })?;
        let mut out = BufWriter::new(io::stdout().lock());
        match self.format {
            Format::Json => {
                serde_json::to_writer_pretty(&mut out, &runs)?;
                writeln!(out)?;
            }
            Format::Jsonl => {
                for r in &runs {
                    serde_json::to_writer(&mut out, r)?;
                    writeln!(out)?;
                }
            }
            _ => {
                writeln!(
                    out,
                    "{:<36} {:<20} {:>9} {:<7} {:<14} {:<18} {:<12} {:>4} {:>5} {:>15} {:>10} {:>6}",
                    "RUN",
                    "STARTED",
                    "DURATION",
                    "STATUS",
                    "SERVICE",
                    "NAME",
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
                        clip(run_name(r), 18),
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

/// What the runs listing names a run by: its agent, else its root span, else (a trace
/// whose root has not arrived) nothing yet.
fn run_name(r: &RunSummary) -> &str {
    r.agent.as_deref().or(r.root_name.as_deref()).unwrap_or("-")
}

/// Arguments of `logbook run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The run id, or a trace id (32 hex digits): the trace's run, or the run it holds.
    id: String,
    /// Most records to read for the tree.
    #[arg(long, default_value_t = 100_000)]
    limit: usize,
    /// Show prompts, responses, tool arguments and results whole (they are cut to
    /// one line of 160 characters otherwise).
    #[arg(long)]
    full: bool,
    /// Output format: the span tree, or JSON (the run and its records).
    #[arg(long, default_value = "table", value_parser = formats(Format::RUNS))]
    format: Format,
}

impl RunArgs {
    pub(crate) fn run(&self, store: &dyn StoreReader) -> anyhow::Result<()> {
        let summary = find_run(store, &self.id)?;
        let records = store.run_records(&summary.run_id, self.limit)?;
        let mut out = BufWriter::new(io::stdout().lock());
        match self.format {
            Format::Json | Format::Jsonl => {
                let v = serde_json::json!({ "run": summary, "records": records });
                serde_json::to_writer_pretty(&mut out, &v)?;
                writeln!(out)?;
            }
            _ => {
                out.write_all(header(&summary).as_bytes())?;
                // A request that started an agent run is two runs of one trace: say so.
                let others = crate::store::related_runs(store, &summary)?;
                if !others.is_empty() {
                    let names: Vec<String> = others
                        .iter()
                        .map(|r| format!("{} {}", r.kind.as_str(), r.run_id))
                        .collect();
                    writeln!(
                        out,
                        "the same trace holds {} (logbook run <id> draws it)\n",
                        names.join(", ")
                    )?;
                }
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

/// The run `id` names: a run by its key, else the runs of a trace by its id (one of
/// them, when it holds exactly one).
fn find_run(store: &dyn StoreReader, id: &str) -> anyhow::Result<RunSummary> {
    match crate::store::find_run(store, id)? {
        FoundRun::One(run) => Ok(*run),
        FoundRun::Several(keys) => bail!(
            "trace {id} holds {} runs; name one: {}",
            keys.len(),
            keys.join(", ")
        ),
        FoundRun::None => {
            bail!("no run {id:?}: no run id or trace id matches it (see `logbook runs`)")
        }
    }
}

fn header(r: &RunSummary) -> String {
    let mut s = format!(
        "{} {}  {}  {}  started {}\n",
        r.kind.as_str(),
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

/// The run's records as an indented tree: spans with status and duration, events
/// under the span they happened in.
fn tree(records: &[Record], full: bool) -> String {
    let tree = RunTree::build(records);
    let mut out = String::new();
    let n = tree.roots.len();
    for (i, item) in tree.roots.iter().enumerate() {
        render(&tree, item, "", i + 1 == n, true, full, &mut out);
    }
    out
}

fn render(
    tree: &RunTree<'_>,
    item: &TreeItem<'_>,
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
        TreeItem::Event(r) => {
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
        TreeItem::Span(i) => {
            let node = tree.span(*i);
            let Some(r) = node.record() else { return };
            let _ = write!(out, "{}  {}", r.name, node.status_word());
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
                render(tree, c, &child_prefix, i + 1 == n, false, full, out);
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
        let k = k.strip_prefix(genai::PREFIX).unwrap_or(k);
        let _ = write!(s, "{k}={}", short_value(v, 60));
    }
    s
}
