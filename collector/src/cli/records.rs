//! `logbook query`, `logbook tail` and `logbook export`.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use logbook_proto::{RecordId, Value};

use super::args::{formats, FilterArgs, Format};
use super::output;
use crate::audit::admin_record;
use crate::config::Config;
use crate::query::{Cursor, Page};
use crate::store::StoreReader;

/// Arguments of `logbook query`.
#[derive(Debug, Args)]
pub struct QueryArgs {
    #[command(flatten)]
    filter: FilterArgs,
    /// Records per page.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    limit: u32,
    /// Only records before this cursor (printed after a full page) or RFC 3339 time.
    #[arg(long, value_name = "CURSOR")]
    before: Option<Cursor>,
    /// Output format.
    #[arg(long, default_value = "table", value_parser = formats(Format::LISTING))]
    format: Format,
    /// Show quarantined records (refused by validation, e.g. a missing required scope
    /// field), newest first, with the reason, instead of stored ones.
    #[arg(long)]
    quarantine: bool,
}

impl QueryArgs {
    pub(crate) fn run(&self, store: &dyn StoreReader) -> anyhow::Result<()> {
        if self.quarantine {
            return self.quarantine(store);
        }
        let page = Page {
            limit: self.limit as usize,
            before: self.before,
        };
        let records = store.query(&self.filter.to_filter()?, &page)?;
        let stdout = io::stdout().lock();
        let mut out = output::for_format(self.format, BufWriter::new(stdout));
        for r in &records {
            out.write(r)?;
        }
        out.finish()?;
        if records.len() == page.limit {
            if let Some(last) = records.last() {
                eprintln!(
                    "next page: --before {}",
                    Cursor {
                        ts: last.ts,
                        seq: last.seq
                    }
                );
            }
        }
        Ok(())
    }
}

impl QueryArgs {
    fn quarantine(&self, store: &dyn StoreReader) -> anyhow::Result<()> {
        let rows = store.quarantined(self.limit as usize)?;
        let mut out = BufWriter::new(io::stdout().lock());
        match self.format {
            Format::Json => {
                serde_json::to_writer_pretty(&mut out, &rows)?;
                writeln!(out)?;
            }
            Format::Jsonl => {
                for r in &rows {
                    serde_json::to_writer(&mut out, r)?;
                    writeln!(out)?;
                }
            }
            Format::Table | Format::Csv | Format::Text => {
                if self.format == Format::Csv {
                    writeln!(out, "received,reason,service,name,record")?;
                }
                for r in &rows {
                    let text = |k: &str| r.record.get(k).and_then(|v| v.as_str()).unwrap_or("");
                    if self.format == Format::Csv {
                        let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
                        writeln!(
                            out,
                            "{},{},{},{},{}",
                            r.received,
                            quote(&r.reason),
                            quote(text("service")),
                            quote(text("name")),
                            quote(&r.record.to_string())
                        )?;
                    } else {
                        writeln!(
                            out,
                            "{}  {}  {} {}: {}",
                            r.received,
                            text("service"),
                            text("name"),
                            text("message"),
                            r.reason
                        )?;
                    }
                }
            }
        }
        out.flush()?;
        Ok(())
    }
}

/// Arguments of `logbook tail`.
#[derive(Debug, Args)]
pub struct TailArgs {
    #[command(flatten)]
    filter: FilterArgs,
    /// How many of the newest records to print first.
    #[arg(short = 'n', long, default_value_t = 10)]
    lines: usize,
    /// Print the newest records and exit instead of following.
    #[arg(long)]
    no_follow: bool,
    /// How often to look for new records, in milliseconds.
    #[arg(long, default_value_t = 250, value_name = "MS")]
    interval: u64,
    /// Output format: text lines, or JSON Lines.
    #[arg(long, default_value = "text", value_parser = formats(Format::TAIL))]
    format: Format,
}

impl TailArgs {
    pub(crate) fn run(&self, store: &dyn StoreReader) -> anyhow::Result<()> {
        let filter = self.filter.to_filter()?;
        // Everything stored up to now is "old"; only records after it are followed. A
        // commit landing between these two reads shows in the first page and would come
        // again after the cursor: remember the page's ids, to print each record once.
        let mut cursor = store.stream_end()?;
        let mut newest = store.query(
            &filter,
            &Page {
                limit: self.lines,
                before: None,
            },
        )?;
        newest.reverse();
        let mut printed: HashSet<RecordId> = newest.iter().map(|r| r.id).collect();
        let mut out = output::for_format(self.format, LineWriter(io::stdout()));
        for r in &newest {
            out.write(r)?;
        }
        out.finish()?;
        if self.no_follow {
            return Ok(());
        }
        loop {
            std::thread::sleep(Duration::from_millis(self.interval));
            loop {
                let page = store.stream_after(cursor, &filter, 1000)?;
                for item in &page.items {
                    if !printed.remove(&item.record.id) {
                        out.write(&item.record)?;
                    }
                }
                out.finish()?;
                let full = page.items.len() == 1000;
                cursor = page.cursor;
                if !full {
                    break;
                }
            }
        }
    }
}

/// Stdout, flushed at every `flush` so followers see lines as they come.
struct LineWriter(io::Stdout);

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// Arguments of `logbook export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    filter: FilterArgs,
    /// Output format.
    #[arg(long, default_value = "jsonl", value_parser = formats(Format::EXPORT))]
    format: Format,
    /// Write to this file instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
}

impl ExportArgs {
    pub(crate) fn run(&self, store: &dyn StoreReader, config: &Config) -> anyhow::Result<()> {
        // An export takes data out of the collector: audited, or not done.
        let mut audit_store = super::write_store(config)
            .context("cannot export: the export's audit record could not be written")?;
        let filter = self.filter.to_filter()?;
        let sink: Box<dyn Write> = match &self.output {
            Some(path) => Box::new(
                File::create(path).with_context(|| format!("creating {}", path.display()))?,
            ),
            None => Box::new(io::stdout().lock()),
        };
        let mut out = output::for_format(self.format, BufWriter::with_capacity(256 * 1024, sink));
        let n = store.scan(&filter, &mut |r| out.write(&r))?;
        out.finish()?;
        if let Some(path) = &self.output {
            eprintln!("exported {n} records to {}", path.display());
        }
        // With what and how much.
        let audit = admin_record(
            "export",
            format!("Exported {n} records."),
            vec![
                ("records", Value::U64(n)),
                (
                    "format",
                    Value::Str(format!("{:?}", self.format).to_lowercase()),
                ),
                ("filter", Value::Str(format!("{filter:?}"))),
                (
                    "destination",
                    Value::Str(
                        self.output
                            .as_ref()
                            .map_or_else(|| "stdout".to_owned(), |p| p.display().to_string()),
                    ),
                ),
            ],
        );
        audit_store
            .write(&[audit])
            .context("exported, but the export's audit record could not be written")?;
        Ok(())
    }
}
