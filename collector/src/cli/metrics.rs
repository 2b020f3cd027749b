//! `logbook metrics`: throughput, error rate and latency percentiles per service and
//! span name (and per model for LLM calls), slow spans, and log volume by level, from
//! the monitor's minute and hour rows (`crate::store::metrics`).

use std::io::{self, BufWriter, Write};

use anyhow::Context as _;
use clap::Args;
use logbook_proto::{Level, Timestamp};

use super::output::{clip, duration, to_seconds};
use crate::config::Config;
use crate::query::TimeSpec;
use crate::store::metrics::{series, summaries, MetricsFilter};
use crate::store::open_reader;

/// Arguments of `logbook metrics`.
#[derive(Debug, Args)]
pub struct MetricsArgs {
    /// From then (an age such as 1h or 7d, or a time) [default: 1h].
    #[arg(long, value_name = "TIME")]
    since: Option<TimeSpec>,
    /// Until then [default: now].
    #[arg(long, value_name = "TIME")]
    until: Option<TimeSpec>,
    /// Only this service's spans.
    #[arg(long)]
    service: Option<String>,
    /// Only span names starting with this.
    #[arg(long)]
    name: Option<String>,
    /// One row per model of LLM calls.
    #[arg(long)]
    by_model: bool,
    /// The selected spans period by period (minutes up to 6 hours, else hours).
    #[arg(long, conflicts_with = "volume")]
    series: bool,
    /// Records by level, period by period.
    #[arg(long)]
    volume: bool,
    #[arg(long, default_value_t = 30)]
    limit: usize,
    /// As JSON.
    #[arg(long)]
    json: bool,
}

impl MetricsArgs {
    pub(crate) fn run(&self, config: &Config) -> anyhow::Result<()> {
        let reader =
            open_reader(&config.db).with_context(|| format!("opening database {}", config.db))?;
        super::errors::catch_up(config, reader.as_ref());
        let now = Timestamp::now();
        let since = self.since.map_or(
            now.saturating_sub(std::time::Duration::from_secs(3600)),
            |t| t.resolve(now),
        );
        let until = self.until.map_or(now, |t| t.resolve(now));
        if until <= since {
            anyhow::bail!("--until must be after --since");
        }
        let f = MetricsFilter {
            since,
            until,
            service: self.service.clone(),
            name: self.name.clone(),
        };
        let mut out = BufWriter::new(io::stdout().lock());
        if self.volume {
            let rows = reader.log_volume(&f)?;
            if self.json {
                let json: Vec<_> = rows
                    .iter()
                    .map(|(t, l, n)| {
                        serde_json::json!({
                            "t": Timestamp(*t),
                            "level": Level::from_code(*l).map(|l| l.as_str()),
                            "count": n,
                        })
                    })
                    .collect();
                serde_json::to_writer_pretty(&mut out, &json)?;
                writeln!(out)?;
                return Ok(out.flush()?);
            }
            writeln!(
                out,
                "{:<20} {:>9} {:>9} {:>9} {:>9} {:>9}",
                "PERIOD", "ERROR", "WARN", "INFO", "DEBUG", "TRACE"
            )?;
            let mut periods: std::collections::BTreeMap<i64, [u64; 5]> = Default::default();
            for (t, l, n) in rows {
                let i = match Level::from_code(l) {
                    Some(Level::Error) => 0,
                    Some(Level::Warn) => 1,
                    Some(Level::Info) => 2,
                    Some(Level::Debug) => 3,
                    _ => 4,
                };
                periods.entry(t).or_default()[i] += n;
            }
            for (t, c) in periods {
                writeln!(
                    out,
                    "{:<20} {:>9} {:>9} {:>9} {:>9} {:>9}",
                    to_seconds(Timestamp(t)),
                    c[0],
                    c[1],
                    c[2],
                    c[3],
                    c[4]
                )?;
            }
            return Ok(out.flush()?);
        }
        let rows = reader.span_rows(&f)?;
        let ms = |ns: Option<u64>| ns.map_or_else(|| "-".to_owned(), duration);
        if self.series {
            let points = series(&rows);
            if self.json {
                serde_json::to_writer_pretty(&mut out, &points)?;
                writeln!(out)?;
                return Ok(out.flush()?);
            }
            writeln!(
                out,
                "{:<20} {:>8} {:>7} {:>10} {:>10} {:>10}",
                "PERIOD", "SPANS", "ERRORS", "P50", "P95", "P99"
            )?;
            for p in points {
                writeln!(
                    out,
                    "{:<20} {:>8} {:>7} {:>10} {:>10} {:>10}",
                    to_seconds(p.t),
                    p.count,
                    p.errors,
                    ms(p.p50_ns),
                    ms(p.p95_ns),
                    ms(p.p99_ns)
                )?;
            }
            return Ok(out.flush()?);
        }
        let mut all = summaries(&rows, &f, self.by_model);
        all.truncate(self.limit);
        if self.json {
            serde_json::to_writer_pretty(&mut out, &all)?;
            writeln!(out)?;
            return Ok(out.flush()?);
        }
        writeln!(
            out,
            "{:<18} {:<34} {:<18} {:>8} {:>8} {:>6} {:>5} {:>9} {:>9} {:>9}",
            "SERVICE", "SPAN", "MODEL", "COUNT", "PER SEC", "ERR%", "SLOW", "P50", "P95", "P99"
        )?;
        for s in &all {
            writeln!(
                out,
                "{:<18} {:<34} {:<18} {:>8} {:>8.2} {:>6.1} {:>5} {:>9} {:>9} {:>9}",
                clip(&s.key.service, 18),
                clip(&s.key.name, 34),
                clip(
                    if s.key.model.is_empty() {
                        "-"
                    } else {
                        &s.key.model
                    },
                    18
                ),
                s.count,
                s.rate,
                s.error_rate * 100.0,
                s.slow,
                ms(s.p50_ns),
                ms(s.p95_ns),
                ms(s.p99_ns)
            )?;
        }
        if all.is_empty() {
            writeln!(
                out,
                "(no spans between {} and {})",
                to_seconds(since),
                to_seconds(until)
            )?;
        }
        Ok(out.flush()?)
    }
}
