//! `logbook errors`: exception groups (see `crate::monitor::exception`): list them,
//! show one, resolve, ignore, reopen, or add a note. Every change is audited.
//!
//! Groups are kept by the running collector. Without one (an offline copy, or before
//! the first `serve`), the command first brings them up to date from the stored
//! records, as the collector would.

use std::io::{self, BufWriter, Write};

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use logbook_proto::Timestamp;

use super::output::{clip, to_seconds};
use super::write_store;
use crate::config::Config;
use crate::monitor::FindError;
use crate::query::TimeSpec;
use crate::store::{
    claim, open_reader, ExceptionChange, ExceptionFilter, ExceptionSort, ExceptionState,
    StoreReader,
};

/// Arguments of `logbook errors`.
#[derive(Debug, Args)]
pub struct ErrorsArgs {
    #[command(subcommand)]
    command: Option<ErrorsCommand>,
    #[command(flatten)]
    list: ListArgs,
}

#[derive(Debug, Args)]
struct ListArgs {
    /// Only groups in these states (comma-separated: unresolved, regressed, resolved,
    /// ignored) [default: unresolved,regressed].
    #[arg(long, value_delimiter = ',', value_parser = ["unresolved", "regressed", "resolved", "ignored"])]
    state: Vec<String>,
    /// Groups in every state.
    #[arg(long, conflicts_with = "state")]
    all: bool,
    /// Only groups seen in this service.
    #[arg(long)]
    service: Option<String>,
    /// Only groups whose type, message or location contains this text.
    #[arg(long)]
    search: Option<String>,
    /// Only groups seen since then (an age such as 24h, or a time).
    #[arg(long, value_name = "TIME")]
    since: Option<TimeSpec>,
    /// Order: recent (last seen), count, new (first seen).
    #[arg(long, default_value = "recent", value_parser = ["recent", "count", "new"])]
    sort: String,
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// As JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum ErrorsCommand {
    /// One group: counts, users, services, versions, its hourly trend, where it
    /// happened, sample records and their run and trace, notes.
    Show {
        /// The group's fingerprint, or a unique beginning of it (as the list shows).
        group: String,
        #[arg(long)]
        json: bool,
    },
    /// Mark a group fixed; it regresses when it occurs again (in --in-version or a
    /// later one, if given).
    Resolve {
        group: String,
        /// The version that fixes it: occurrences from older versions (still
        /// deployed) do not regress it.
        #[arg(long, value_name = "VERSION")]
        in_version: Option<String>,
    },
    /// Hide a group; for a while (--for), or until it occurs N more times (--more).
    Ignore {
        group: String,
        /// For how long (e.g. 24h, 7d).
        #[arg(long = "for", value_name = "AGE", value_parser = parse_age)]
        for_: Option<std::time::Duration>,
        /// Until it occurs this many more times.
        #[arg(long, value_name = "N")]
        more: Option<u64>,
    },
    /// Back to unresolved.
    Reopen { group: String },
    /// Add a note to a group.
    Note { group: String, text: String },
}

fn parse_age(s: &str) -> Result<std::time::Duration, String> {
    crate::query::parse_age(s).ok_or_else(|| format!("{s:?} is not an age such as 30m, 24h or 7d"))
}

impl ErrorsArgs {
    pub(crate) fn run(&self, config: &Config) -> anyhow::Result<()> {
        let reader =
            open_reader(&config.db).with_context(|| format!("opening database {}", config.db))?;
        catch_up(config, reader.as_ref());
        let now = Timestamp::now();
        match &self.command {
            None => list(reader.as_ref(), &self.list, now),
            Some(ErrorsCommand::Show { group, json }) => {
                let fp = find(reader.as_ref(), group)?;
                show(reader.as_ref(), &fp, *json)
            }
            Some(ErrorsCommand::Resolve { group, in_version }) => change(
                config,
                reader.as_ref(),
                group,
                ExceptionChange::Resolve {
                    in_version: in_version.clone(),
                },
            ),
            Some(ErrorsCommand::Ignore { group, for_, more }) => change(
                config,
                reader.as_ref(),
                group,
                ExceptionChange::Ignore {
                    until: for_
                        .map(|d| Timestamp(now.as_nanos().saturating_add(d.as_nanos() as i64))),
                    more: *more,
                },
            ),
            Some(ErrorsCommand::Reopen { group }) => {
                change(config, reader.as_ref(), group, ExceptionChange::Reopen)
            }
            Some(ErrorsCommand::Note { group, text }) => change(
                config,
                reader.as_ref(),
                group,
                ExceptionChange::Note {
                    author: "cli".into(),
                    text: text.clone(),
                },
            ),
        }
    }
}

/// Brings the groups up to date when no collector is serving the store (a running
/// one keeps them). Best effort: a store this user cannot write is read as it is.
pub(crate) fn catch_up(config: &Config, reader: &dyn StoreReader) {
    let Ok(held) = claim(&config.db) else {
        return;
    };
    let result = config.slow_rules().and_then(|slow| {
        let w = write_store(config)?;
        Ok(crate::monitor::catch_up(reader, w, &slow)?)
    });
    drop(held);
    if let Err(e) = result {
        eprintln!("logbook: warning: exception groups may be behind the records: {e:#}");
    }
}

/// The fingerprint a user's argument names.
pub(crate) fn find(reader: &dyn StoreReader, given: &str) -> anyhow::Result<String> {
    crate::monitor::find_group(reader, given).map_err(|e| match e {
        FindError::Store(e) => anyhow::Error::from(e),
        FindError::None => {
            anyhow::anyhow!("no exception group {given:?} (see logbook errors --all)")
        }
        FindError::Several => {
            anyhow::anyhow!("{given:?} names more than one exception group: give more of it")
        }
    })
}

fn list(reader: &dyn StoreReader, a: &ListArgs, now: Timestamp) -> anyhow::Result<()> {
    let states = if a.all {
        Vec::new()
    } else if a.state.is_empty() {
        vec![ExceptionState::Unresolved, ExceptionState::Regressed]
    } else {
        a.state
            .iter()
            .filter_map(|s| ExceptionState::parse(s))
            .collect()
    };
    let groups = reader.exception_groups(&ExceptionFilter {
        states,
        service: a.service.clone(),
        text: a.search.clone(),
        since: a.since.map(|t| t.resolve(now)),
        sort: match a.sort.as_str() {
            "count" => ExceptionSort::Count,
            "new" => ExceptionSort::FirstSeen,
            _ => ExceptionSort::LastSeen,
        },
        limit: a.limit,
        ..ExceptionFilter::default()
    })?;
    let mut out = BufWriter::new(io::stdout().lock());
    if a.json {
        serde_json::to_writer_pretty(&mut out, &groups)?;
        writeln!(out)?;
        return Ok(out.flush()?);
    }
    writeln!(
        out,
        "{:<12} {:<10} {:>7} {:>5} {:<20} {:<20} EXCEPTION",
        "GROUP", "STATE", "COUNT", "USERS", "LAST SEEN", "SERVICE"
    )?;
    for g in &groups {
        writeln!(
            out,
            "{:<12} {:<10} {:>7} {:>5} {:<20} {:<20} {}",
            short(&g.fingerprint),
            g.status.state.as_str(),
            g.count,
            g.users,
            to_seconds(g.last_seen),
            clip(&g.services.join(","), 20),
            clip(&format!("{}: {}", g.kind, one_line(&g.message)), 100),
        )?;
    }
    if groups.is_empty() {
        writeln!(out, "(no exception groups)")?;
    }
    Ok(out.flush()?)
}

use crate::monitor::short;

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn show(reader: &dyn StoreReader, fingerprint: &str, json: bool) -> anyhow::Result<()> {
    let Some(d) = reader.exception_group(fingerprint)? else {
        bail!("no exception group {fingerprint:?}");
    };
    let mut out = BufWriter::new(io::stdout().lock());
    if json {
        serde_json::to_writer_pretty(&mut out, &d)?;
        writeln!(out)?;
        return Ok(out.flush()?);
    }
    let g = &d.group;
    writeln!(out, "{}: {}", g.kind, g.message)?;
    writeln!(out)?;
    writeln!(out, "group        {} (by {})", g.fingerprint, g.basis)?;
    writeln!(out, "state        {}", crate::monitor::state_line(g))?;
    writeln!(
        out,
        "where        {}",
        if g.culprit.is_empty() {
            "-"
        } else {
            &g.culprit
        }
    )?;
    writeln!(out, "count        {}", g.count)?;
    writeln!(out, "users        {}", g.users)?;
    writeln!(out, "first seen   {}", to_seconds(g.first_seen))?;
    writeln!(out, "last seen    {}", to_seconds(g.last_seen))?;
    writeln!(out, "services     {}", dash(&g.services.join(", ")))?;
    writeln!(out, "versions     {}", dash(&g.versions.join(", ")))?;
    if let Some(run) = &g.last_run {
        writeln!(out, "last run     {run}   (logbook run {run})")?;
    }
    if let Some(trace) = &g.last_trace {
        writeln!(out, "last trace   {trace}")?;
    }
    for (which, id) in [("first", &g.first_id), ("last", &g.last_id)] {
        let record = id.parse().ok().and_then(|id| reader.get(id).ok().flatten());
        match record {
            Some(r) => {
                let mut line = String::new();
                super::output::text_line(&r, &mut line);
                writeln!(out, "{which:<12} {}", clip(line.trim_end(), 200))?;
            }
            None => writeln!(out, "{which:<12} record {id} (no longer stored)")?,
        }
        if g.first_id == g.last_id {
            break;
        }
    }
    if !d.trend.is_empty() {
        writeln!(out)?;
        writeln!(out, "by hour (last 14 days it occurred in):")?;
        let max = d.trend.iter().map(|(_, n)| *n).max().unwrap_or(1).max(1);
        for (hour, n) in d.trend.iter().rev().take(24).rev() {
            let bar = "#".repeat(((n * 40).div_ceil(max)) as usize);
            writeln!(out, "  {}  {:>7}  {bar}", &to_seconds(*hour)[..16], n)?;
        }
    }
    if !d.tags.is_empty() {
        writeln!(out)?;
        for t in &d.tags {
            writeln!(
                out,
                "  {:<8} {:<40} {:>7}  last {}",
                t.kind.as_str(),
                clip(&t.value, 40),
                t.count,
                to_seconds(t.last_seen)
            )?;
        }
    }
    if !d.notes.is_empty() {
        writeln!(out)?;
        writeln!(out, "notes:")?;
        for n in &d.notes {
            writeln!(out, "  {} {}: {}", to_seconds(n.ts), n.author, n.text)?;
        }
    }
    Ok(out.flush()?)
}

fn dash(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}

fn change(
    config: &Config,
    reader: &dyn StoreReader,
    given: &str,
    change: ExceptionChange,
) -> anyhow::Result<()> {
    let fp = find(reader, given)?;
    let mut store = write_store(config)?;
    let Some(group) = store.change_exception(&fp, &change)? else {
        bail!("no exception group {given:?}");
    };
    store.write(&[crate::monitor::change_record(&group, &change, "cli")])?;
    println!(
        "{} {}",
        short(&group.fingerprint),
        crate::monitor::state_line(&group)
    );
    Ok(())
}
