//! `logbook alerts`: the rules configured, the alerts pending or firing, the history
//! of firings and deliveries; `alerts test RULE` sends a test alert through a rule's
//! webhook (recorded in the history).

use std::io::{self, BufWriter, Write};

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use logbook_proto::Timestamp;

use super::output::{clip, to_seconds};
use crate::config::Config;
use crate::store::alerts::AlertEvent;
use crate::store::open_reader;

/// Arguments of `logbook alerts`.
#[derive(Debug, Args)]
pub struct AlertsArgs {
    #[command(subcommand)]
    command: Option<AlertsCommand>,
    /// History entries shown.
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// As JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum AlertsCommand {
    /// Send a test alert through RULE's webhook, and record it in the history.
    Test { rule: String },
}

impl AlertsArgs {
    pub(crate) fn run(&self, config: &Config) -> anyhow::Result<()> {
        if let Some(AlertsCommand::Test { rule }) = &self.command {
            return test(config, rule);
        }
        let reader =
            open_reader(&config.db).with_context(|| format!("opening database {}", config.db))?;
        let states = reader.alert_states()?;
        let events = reader.alert_events(self.limit)?;
        let mut out = BufWriter::new(io::stdout().lock());
        if self.json {
            serde_json::to_writer_pretty(
                &mut out,
                &serde_json::json!({"rules": config.alerts.iter().map(|r| serde_json::json!({
                    "name": r.name, "kind": r.kind, "threshold": r.threshold, "window": r.window,
                    "webhook": r.webhook.is_some()})).collect::<Vec<_>>(),
                    "active": states, "history": events}),
            )?;
            writeln!(out)?;
            return Ok(out.flush()?);
        }
        writeln!(out, "rules:")?;
        for r in &config.alerts {
            writeln!(
                out,
                "  {:<24} {:<12} threshold {:<6} window {:<6} {}",
                r.name,
                r.kind,
                r.threshold.map_or_else(|| "-".into(), |t| t.to_string()),
                r.window.as_deref().unwrap_or("-"),
                if r.webhook.is_some() {
                    "webhook"
                } else {
                    "no channel"
                }
            )?;
        }
        if config.alerts.is_empty() {
            writeln!(out, "  (none: add [[alerts]] tables to logbook.toml)")?;
        }
        writeln!(out, "\nactive:")?;
        for s in &states {
            writeln!(
                out,
                "  {:<8} {:<24} since {}  {}",
                s.state,
                s.rule,
                to_seconds(s.since),
                clip(&s.summary, 100)
            )?;
        }
        if states.is_empty() {
            writeln!(out, "  (none)")?;
        }
        writeln!(out, "\nhistory (newest first):")?;
        for e in &events {
            writeln!(
                out,
                "  {} {:<8} {:<24} {:<12} x{} {}",
                to_seconds(e.ts),
                e.state,
                e.rule,
                clip(&e.delivery, 40),
                e.attempts,
                clip(&e.summary, 80)
            )?;
        }
        if events.is_empty() {
            writeln!(out, "  (none)")?;
        }
        Ok(out.flush()?)
    }
}

/// Sends a test event through `name`'s webhook and records it.
fn test(config: &Config, name: &str) -> anyhow::Result<()> {
    let Some(rule) = config.alerts.iter().find(|r| r.name == name) else {
        bail!("no [[alerts]] rule is named {name:?}");
    };
    let now = Timestamp::now();
    let mut e = AlertEvent {
        ts: now,
        started: now,
        rule: rule.name.clone(),
        key: "test".into(),
        state: "test".into(),
        labels: [
            ("alertname".to_owned(), rule.name.clone()),
            ("test".to_owned(), "true".to_owned()),
        ]
        .into_iter()
        .collect(),
        value: 0.0,
        summary: format!(
            "A test of the alert {:?} from logbook alerts test.",
            rule.name
        ),
        delivery: String::new(),
        attempts: 0,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(crate::alerts::deliver(rule, &mut e));
    let mut store = super::write_store(config)?;
    let states = store.reader().alert_states()?;
    store.save_alerts(&states, std::slice::from_ref(&e))?;
    println!(
        "{}: {} after {} attempt(s)",
        rule.name, e.delivery, e.attempts
    );
    if e.delivery != "sent" {
        bail!("the test alert was not delivered: {}", e.delivery);
    }
    Ok(())
}
