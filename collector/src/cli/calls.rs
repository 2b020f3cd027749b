//! `logbook calls` and `logbook cost`: the LLM and tool call views.

use std::io::{self, BufWriter, Write};

use anyhow::bail;
use clap::{Args, Subcommand, ValueEnum};
use logbook_proto::{Json, Timestamp, Value};
use serde::Serialize;

use super::args::{formats, Format};
use super::output::{clip, csv_cell, duration, render_value};
use crate::config::Config;
use crate::query::{Cursor, TimeSpec};
use crate::store::{open_reader, CallCommon, CallFilter, CostBy, CostGroup, StoreReader};

/// Which calls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
enum Kind {
    /// Model calls.
    #[default]
    Llm,
    /// Tool calls.
    Tool,
}

/// Filters shared by `calls` and `cost`.
#[derive(Clone, Debug, Default, Args)]
struct CallFilterArgs {
    /// Only calls started at or after this time: RFC 3339 or an age (15m, 2h, 7d).
    #[arg(long, value_name = "TIME")]
    since: Option<TimeSpec>,
    /// Only calls started before this time.
    #[arg(long, value_name = "TIME")]
    until: Option<TimeSpec>,
    /// Only calls of this run.
    #[arg(long, value_name = "RUN_ID")]
    run: Option<String>,
    /// Only calls of this tenant.
    #[arg(long)]
    tenant: Option<String>,
    /// Only calls of this user (user_id).
    #[arg(long, value_name = "USER_ID")]
    user: Option<String>,
    /// Only calls of this app.
    #[arg(long)]
    app: Option<String>,
    /// Only calls from this service.
    #[arg(long)]
    service: Option<String>,
    /// Only calls with this status.
    #[arg(long, value_parser = ["ok", "error"])]
    status: Option<String>,
}

impl CallFilterArgs {
    fn to_filter(&self, name: Option<String>, limit: usize) -> CallFilter {
        let now = Timestamp::now();
        CallFilter {
            since: self.since.map(|t| t.resolve(now)),
            until: self.until.map(|t| t.resolve(now)),
            run_id: self.run.clone(),
            tenant: self.tenant.clone(),
            user_id: self.user.clone(),
            app: self.app.clone(),
            service: self.service.clone(),
            status: self.status.clone(),
            name,
            before: None,
            limit,
        }
    }
}

/// Arguments of `logbook calls`.
#[derive(Debug, Args)]
pub struct CallsArgs {
    /// LLM calls or tool calls.
    #[arg(long, value_enum, default_value_t)]
    kind: Kind,
    /// Only calls of this model (--kind llm) or tool (--kind tool).
    #[arg(long, value_name = "MODEL")]
    model: Option<String>,
    /// Only calls of this tool (same as --model with --kind tool).
    #[arg(long, value_name = "TOOL")]
    tool: Option<String>,
    #[command(flatten)]
    filter: CallFilterArgs,
    /// At most this many calls.
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Only calls that started before this cursor (printed on stderr after a full
    /// page) or RFC 3339 time.
    #[arg(long, value_name = "CURSOR")]
    before: Option<Cursor>,
    /// Output format.
    #[arg(long, default_value = "table", value_parser = formats(Format::LISTING))]
    format: Format,
}

/// Writes rows as a JSON array, JSON lines or CSV; `None` for a table.
fn write_structured<T: Serialize>(
    out: &mut impl Write,
    format: Format,
    rows: &[T],
    csv: impl Fn(&T) -> Vec<String>,
    header: &[&str],
) -> anyhow::Result<bool> {
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, rows)?;
            writeln!(out)?;
        }
        Format::Jsonl => {
            for r in rows {
                serde_json::to_writer(&mut *out, r)?;
                writeln!(out)?;
            }
        }
        Format::Csv => {
            writeln!(out, "{}", header.join(","))?;
            let mut line = String::new();
            for r in rows {
                line.clear();
                for (i, v) in csv(r).iter().enumerate() {
                    if i > 0 {
                        line.push(',');
                    }
                    csv_cell(&mut line, v);
                }
                writeln!(out, "{line}")?;
            }
        }
        Format::Table | Format::Text => return Ok(false),
    }
    Ok(true)
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// USD with enough digits for a cent's fraction.
pub(crate) fn usd(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v != 0.0 && v.abs() < 0.01 => format!("${v:.5}"),
        Some(v) => format!("${v:.4}"),
    }
}

/// A stored value as it is: text, or compact JSON.
fn compact(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A stored JSON value on one line, messages as `[role] text`, clipped to `max`.
fn one_line(v: Option<&serde_json::Value>, max: usize) -> String {
    let Some(v) = v else {
        return "-".into();
    };
    let value = match v {
        serde_json::Value::String(s) => Value::Str(s.clone()),
        other => {
            Json::from_serialize(other).map_or_else(|_| Value::Str(other.to_string()), Value::Json)
        }
    };
    clip(&render_value(&value, false), max).into_owned()
}

/// The cursor after the last of a full page of calls.
fn next_page<'a>(
    calls: impl ExactSizeIterator<Item = &'a CallCommon>,
    limit: usize,
) -> Option<Cursor> {
    if calls.len() != limit {
        return None;
    }
    calls.last().map(CallCommon::cursor)
}

impl CallsArgs {
    pub(crate) fn run(&self, store: &dyn StoreReader) -> anyhow::Result<()> {
        if self.tool.is_some() && self.kind == Kind::Llm && self.model.is_some() {
            bail!("--model and --tool: give one (with --kind tool, --tool names the tool)");
        }
        let name = self.tool.clone().or_else(|| self.model.clone());
        let kind = if self.tool.is_some() {
            Kind::Tool
        } else {
            self.kind
        };
        let mut f = self.filter.to_filter(name, self.limit);
        f.before = self.before;
        // The next page starts after the last call shown, when the page was full.
        let next;
        let mut out = BufWriter::new(io::stdout().lock());
        match kind {
            Kind::Llm => {
                let rows = store.llm_calls(&f)?;
                next = next_page(rows.iter().map(|c| &c.call), self.limit);
                let structured = write_structured(
                    &mut out,
                    self.format,
                    &rows,
                    |c| {
                        vec![
                            c.call.started.to_rfc3339(),
                            c.call.seq.to_string(),
                            opt(c.call.run_id.as_ref()),
                            opt(c.provider.as_ref()),
                            opt(c.model.as_ref()),
                            opt(c.input_tokens),
                            opt(c.output_tokens),
                            opt(c.cache_read_tokens),
                            opt(c.cost),
                            opt(c.provider_cost),
                            opt(c.call.duration_ns),
                            c.call.status.clone(),
                            opt(c.call.error.as_ref()),
                        ]
                    },
                    &[
                        "started",
                        "seq",
                        "run_id",
                        "provider",
                        "model",
                        "input_tokens",
                        "output_tokens",
                        "cache_read_tokens",
                        "cost",
                        "provider_cost",
                        "duration_ns",
                        "status",
                        "error",
                    ],
                )?;
                if !structured {
                    writeln!(
                        out,
                        "{:<27} {:<36} {:<24} {:>8} {:>7} {:>7} {:>10} {:>9} {:<6} RESPONSE",
                        "STARTED",
                        "RUN",
                        "MODEL",
                        "IN",
                        "OUT",
                        "CACHED",
                        "COST",
                        "DURATION",
                        "STATUS"
                    )?;
                    for c in &rows {
                        let response = match &c.call.error {
                            Some(e) => format!("error: {e}"),
                            None => one_line(c.output_messages.as_ref(), 60),
                        };
                        writeln!(
                            out,
                            "{:<27} {:<36} {:<24} {:>8} {:>7} {:>7} {:>10} {:>9} {:<6} {}",
                            c.call.started.to_rfc3339(),
                            clip(c.call.run_id.as_deref().unwrap_or("-"), 36),
                            clip(c.model.as_deref().unwrap_or("-"), 24),
                            opt(c.input_tokens),
                            opt(c.output_tokens),
                            opt(c.cache_read_tokens),
                            usd(c.cost),
                            c.call
                                .duration_ns
                                .map(duration)
                                .unwrap_or_else(|| "-".into()),
                            c.call.status,
                            response
                        )?;
                    }
                }
            }
            Kind::Tool => {
                let rows = store.tool_calls(&f)?;
                next = next_page(rows.iter().map(|c| &c.call), self.limit);
                let structured = write_structured(
                    &mut out,
                    self.format,
                    &rows,
                    |c| {
                        vec![
                            c.call.started.to_rfc3339(),
                            c.call.seq.to_string(),
                            opt(c.call.run_id.as_ref()),
                            opt(c.tool_name.as_ref()),
                            opt(c.call_id.as_ref()),
                            opt(c.arguments.as_ref().map(compact)),
                            opt(c.result.as_ref().map(compact)),
                            opt(c.call.duration_ns),
                            c.call.status.clone(),
                            opt(c.call.error.as_ref()),
                        ]
                    },
                    &[
                        "started",
                        "seq",
                        "run_id",
                        "tool",
                        "call_id",
                        "arguments",
                        "result",
                        "duration_ns",
                        "status",
                        "error",
                    ],
                )?;
                if !structured {
                    writeln!(
                        out,
                        "{:<27} {:<36} {:<20} {:>9} {:<6} {:<40} RESULT",
                        "STARTED", "RUN", "TOOL", "DURATION", "STATUS", "ARGUMENTS"
                    )?;
                    for c in &rows {
                        let result = match &c.call.error {
                            Some(e) => format!("error: {e}"),
                            None => one_line(c.result.as_ref(), 50),
                        };
                        writeln!(
                            out,
                            "{:<27} {:<36} {:<20} {:>9} {:<6} {:<40} {}",
                            c.call.started.to_rfc3339(),
                            clip(c.call.run_id.as_deref().unwrap_or("-"), 36),
                            clip(c.tool_name.as_deref().unwrap_or("-"), 20),
                            c.call
                                .duration_ns
                                .map(duration)
                                .unwrap_or_else(|| "-".into()),
                            c.call.status,
                            one_line(c.arguments.as_ref(), 40),
                            result
                        )?;
                    }
                }
            }
        }
        out.flush()?;
        if let Some(cursor) = next {
            eprintln!("next page: --before {cursor}");
        }
        Ok(())
    }
}

/// Arguments of `logbook cost`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct CostArgs {
    #[command(subcommand)]
    command: Option<CostCommand>,
    /// Group LLM calls by this.
    #[arg(long, value_enum, default_value_t)]
    by: CostBy,
    /// Only these models (with any --by).
    #[arg(long, value_name = "MODEL")]
    model: Option<String>,
    #[command(flatten)]
    filter: CallFilterArgs,
    /// At most this many groups.
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// Output format.
    #[arg(long, default_value = "table", value_parser = formats(Format::LISTING))]
    format: Format,
}

/// `logbook cost` subcommands.
#[derive(Debug, Subcommand)]
enum CostCommand {
    /// Compute every stored LLM call's cost again from the current price table (after
    /// changing `[[prices]]` in logbook.toml), and the runs' totals. Audited. Restart
    /// `logbook serve` too: it prices new calls with the table it started with.
    Recompute,
    /// Print the price table in effect: built-in prices and those of logbook.toml.
    Prices {
        /// Output format.
        #[arg(long, default_value = "table", value_parser = formats(Format::LISTING))]
        format: Format,
    },
}

impl CostArgs {
    pub(crate) fn run(&self, config: &Config) -> anyhow::Result<()> {
        match &self.command {
            Some(CostCommand::Recompute) => {
                let prices = config.price_table();
                let mut store = super::write_store(config)?;
                let changed = crate::views::recompute_cost(store.as_mut(), &prices)?;
                println!("recomputed: the cost of {changed} LLM calls changed");
                Ok(())
            }
            Some(CostCommand::Prices { format }) => prices(config, *format),
            None => self.report(open_reader(&config.db)?.as_ref()),
        }
    }

    fn report(&self, store: &dyn StoreReader) -> anyhow::Result<()> {
        let f = self.filter.to_filter(self.model.clone(), self.limit);
        let groups = store.cost(self.by, &f)?;
        let mut out = BufWriter::new(io::stdout().lock());
        let label = format!("{:?}", self.by).to_uppercase();
        let structured = write_structured(
            &mut out,
            self.format,
            &groups,
            |g| {
                vec![
                    g.key.clone(),
                    g.calls.to_string(),
                    g.input_tokens.to_string(),
                    g.output_tokens.to_string(),
                    g.cache_read_tokens.to_string(),
                    opt(g.cost),
                    opt(g.provider_cost),
                    g.unpriced_calls.to_string(),
                ]
            },
            &[
                "key",
                "calls",
                "input_tokens",
                "output_tokens",
                "cache_read_tokens",
                "cost",
                "provider_cost",
                "unpriced_calls",
            ],
        )?;
        if !structured {
            writeln!(
                out,
                "{:<36} {:>7} {:>12} {:>12} {:>12} {:>12} {:>14} {:>8}",
                label,
                "CALLS",
                "INPUT",
                "OUTPUT",
                "CACHE READ",
                "COST",
                "PROVIDER COST",
                "UNPRICED"
            )?;
            let row = |out: &mut BufWriter<_>, label: &str, g: &CostGroup| {
                writeln!(
                    out,
                    "{:<36} {:>7} {:>12} {:>12} {:>12} {:>12} {:>14} {:>8}",
                    clip(label, 36),
                    g.calls,
                    g.input_tokens,
                    g.output_tokens,
                    g.cache_read_tokens,
                    usd(g.cost),
                    usd(g.provider_cost),
                    g.unpriced_calls
                )
            };
            for g in &groups {
                row(&mut out, &g.key, g)?;
            }
            // Of every matching call, not only the groups shown.
            let total = store.cost(CostBy::All, &f)?.pop().unwrap_or_default();
            row(&mut out, "TOTAL", &total)?;
            if groups.len() == self.limit {
                writeln!(
                    out,
                    "… the first {} groups (--limit); the total is of all",
                    self.limit
                )?;
            }
            if total.unpriced_calls > 0 {
                writeln!(
                    out,
                    "{} calls have no price for their model: add it under [[prices]] in logbook.toml, then `logbook cost recompute`",
                    total.unpriced_calls
                )?;
            }
        }
        out.flush()?;
        Ok(())
    }
}

fn prices(config: &Config, format: Format) -> anyhow::Result<()> {
    let table = config.price_table();
    let entries = table.entries();
    let mut out = BufWriter::new(io::stdout().lock());
    let structured = write_structured(
        &mut out,
        format,
        entries,
        |p| {
            vec![
                p.model.clone(),
                opt(p.provider.as_ref()),
                p.effective.to_string(),
                p.input.to_string(),
                p.output.to_string(),
                opt(p.cache_read),
            ]
        },
        &[
            "model",
            "provider",
            "effective",
            "input",
            "output",
            "cache_read",
        ],
    )?;
    if !structured {
        writeln!(
            out,
            "{:<28} {:<12} {:<10} {:>9} {:>9} {:>10}   (USD per million tokens)",
            "MODEL", "PROVIDER", "EFFECTIVE", "INPUT", "OUTPUT", "CACHE READ"
        )?;
        for p in entries {
            writeln!(
                out,
                "{:<28} {:<12} {:<10} {:>9} {:>9} {:>10}",
                p.model,
                p.provider.as_deref().unwrap_or("-"),
                p.effective.to_string(),
                p.input,
                p.output,
                p.cache_read.map_or_else(|| "-".into(), |c| c.to_string()),
            )?;
        }
    }
    out.flush()?;
    Ok(())
}
