//! Arguments shared by the reading commands.

use clap::{Args, ValueEnum};
use logbook_proto::{Kind, Level, Timestamp, TraceId};

use crate::query::{RecordFilter, TimeSpec};

/// The common record filters of `query`, `tail` and `export`.
#[derive(Clone, Debug, Default, Args)]
pub(crate) struct FilterArgs {
    /// Only records at or after this time: RFC 3339 (2026-11-21T20:00:00Z) or an age (30s, 15m, 2h, 7d).
    #[arg(long, value_name = "TIME")]
    pub(crate) since: Option<TimeSpec>,
    /// Only records before this time: RFC 3339 or an age.
    #[arg(long, value_name = "TIME")]
    pub(crate) until: Option<TimeSpec>,
    /// Only this level or more severe: trace, debug, info, warn, error.
    #[arg(long, value_name = "LEVEL")]
    pub(crate) level: Option<Level>,
    /// Only records of this run.
    #[arg(long, value_name = "RUN_ID")]
    pub(crate) run: Option<String>,
    /// Only records of this trace (32 hex digits).
    #[arg(long, value_name = "TRACE_ID")]
    pub(crate) trace: Option<TraceId>,
    /// Only records of this tenant.
    #[arg(long)]
    pub(crate) tenant: Option<String>,
    /// Only records of this project.
    #[arg(long)]
    pub(crate) project: Option<String>,
    /// Only records of this app.
    #[arg(long)]
    pub(crate) app: Option<String>,
    /// Only records of this user (user_id).
    #[arg(long, value_name = "USER_ID")]
    pub(crate) user: Option<String>,
    /// Only records of this kind: event, span_start, span_end.
    #[arg(long)]
    pub(crate) kind: Option<Kind>,
    /// Only records of this category: run, step, llm_call, tool_call, agent, log, error, span, ….
    #[arg(long)]
    pub(crate) category: Option<String>,
    /// Only spans or events with this name.
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// Only records with this target or a module below it (`app` matches `app::db`).
    #[arg(long)]
    pub(crate) target: Option<String>,
    /// Only records whose message or string fields contain all these words.
    #[arg(long)]
    pub(crate) text: Option<String>,
    /// Only records whose field KEY equals VALUE, e.g. --field gen_ai.request.model=gpt-4o (repeatable).
    #[arg(long = "field", value_name = "KEY=VALUE", value_parser = parse_field)]
    pub(crate) fields: Vec<(String, String)>,
    /// Only spans that lasted at least this long: 250ms, 1.5s, 2m (span ends only).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) min_duration: Option<u64>,
    /// Only spans that lasted at most this long (span ends only).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) max_duration: Option<u64>,
}

fn parse_duration(s: &str) -> Result<u64, String> {
    crate::query::parse_duration_ns(s)
        .ok_or_else(|| format!("expected a duration such as 250ms, 1.5s, 2m, got {s:?}"))
}

pub(crate) fn parse_field(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

impl FilterArgs {
    /// The filter, or why it cannot select anything (`--until` before `--since`).
    pub(crate) fn to_filter(&self) -> anyhow::Result<RecordFilter> {
        let now = Timestamp::now();
        let f = RecordFilter {
            since: self.since.map(|t| t.resolve(now)),
            until: self.until.map(|t| t.resolve(now)),
            min_level: self.level,
            run_id: self.run.clone(),
            trace_id: self.trace,
            tenant: self.tenant.clone(),
            project: self.project.clone(),
            app: self.app.clone(),
            user_id: self.user.clone(),
            kind: self.kind,
            category: self.category.clone(),
            name: self.name.clone(),
            target: self.target.clone(),
            text: self.text.clone(),
            fields: self.fields.clone(),
            min_duration_ns: self.min_duration,
            max_duration_ns: self.max_duration,
        };
        f.check().map_err(|e| {
            anyhow::anyhow!(
                "--{}",
                e.to_string()
                    .replace(" since (", " --since (")
                    .replace("is below min_duration", "is below --min-duration")
            )
        })?;
        Ok(f)
    }
}

/// Output formats. Each command takes the ones that make sense for it ([`formats`]);
/// `--help` lists them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// Aligned columns for people (for `run`: the span tree).
    #[default]
    Table,
    /// One JSON document.
    Json,
    /// One JSON object per line (for records: the record contract).
    Jsonl,
    /// Comma-separated values with a header row.
    Csv,
    /// One line per record, like a log file.
    Text,
}

impl Format {
    /// Record listings: `query`.
    pub(crate) const LISTING: &'static [Self] = &[Self::Table, Self::Json, Self::Jsonl, Self::Csv];
    /// Streams of records: `export`.
    pub(crate) const EXPORT: &'static [Self] = &[Self::Jsonl, Self::Csv, Self::Text];
    /// Following records: `tail`.
    pub(crate) const TAIL: &'static [Self] = &[Self::Text, Self::Jsonl];
    /// Runs and span trees: `runs`, `run`.
    pub(crate) const RUNS: &'static [Self] = &[Self::Table, Self::Json, Self::Jsonl];
}

/// A parser of `--format` that accepts only `allowed`.
pub(crate) fn formats(
    allowed: &'static [Format],
) -> impl clap::builder::TypedValueParser<Value = Format> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(
        allowed.iter().filter_map(ValueEnum::to_possible_value),
    )
    .try_map(|word: String| Format::from_str(&word, false).map_err(std::io::Error::other))
}
