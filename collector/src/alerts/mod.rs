//! Alerts: `[[alerts]]` rules evaluated on what the monitor keeps (the rollups, the
//! exception groups, the loop detector's counts; never the records table), each alert
//! (a rule and its labels) going inactive → pending → firing → resolved, and sent to
//! a webhook as Alertmanager's webhook payload (so teams that need routing, grouping
//! and silences forward it to Alertmanager), signed with an HMAC-SHA256 header and
//! retried with backoff; every firing and every delivery attempt kept in the store.
//!
//! Kinds:
//! - `loop`: an agent stuck in a loop: one tool called with the same arguments
//!   (compared as canonical JSON) `threshold` times (default 3) in one run that is
//!   still running; one alert per run, tool and arguments;
//! - `error_count`: ERROR records in the last `window` (default 5m) at least
//!   `threshold` (default 1), optionally of one `service`;
//! - `exception`: an exception group first seen, or regressed, in the last `window`
//!   (default 10m); one alert per group;
//! - `latency`: a latency quantile (`quantile`, default 0.95) of the spans named like
//!   `span` over the last `window` above `threshold` milliseconds; one alert per
//!   service and span name;
//! - `error_rate`: the share of those spans that ended in error above `threshold`
//!   percent (with at least `min_count` spans, default 10); one alert per service and
//!   span name;
//! - `cost`: what LLM calls cost over the last `window` (default 1d) above `budget`
//!   USD, per tenant (`by = "tenant"`, the default) or in all (`by = "total"`);
//! - `client_drops`: a client that reported at least `threshold` (default 1) records
//!   dropped, and reported within the last `window`; one alert per client;
//! - `no_data`: no record from `service` in the last `window`.
//!
//! One evaluator per store: with several collectors on one PostgreSQL, the one whose
//! monitor holds the lease (`StoreWriter::alert_lease`).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use logbook_proto::Timestamp;
use serde::Deserialize;

use crate::config::SensitiveString;
use crate::store::alerts::{AlertEvent, AlertState};
use crate::store::{ExceptionFilter, ExceptionState, StoreError, StoreReader};

/// One `[[alerts]]` table.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AlertRule {
    /// The alert's name (`alertname`).
    pub name: String,
    /// `loop`, `error_count` or `exception`.
    pub kind: String,
    /// The count that fires it (see the kinds).
    #[serde(default)]
    pub threshold: Option<u64>,
    /// latency, error_rate: the span names, `*` matching any run of characters
    /// [default: every span].
    #[serde(default)]
    pub span: Option<String>,
    /// latency: the quantile [default 0.95].
    #[serde(default)]
    pub quantile: Option<f64>,
    /// error_rate: the fewest spans in the window that make a rate [default 10].
    #[serde(default)]
    pub min_count: Option<u64>,
    /// cost: the budget, USD.
    #[serde(default)]
    pub budget: Option<f64>,
    /// cost: per `tenant` [default] or the `total`.
    #[serde(default)]
    pub by: Option<String>,
    /// The window counted over: `5m`, `1h`.
    #[serde(default)]
    pub window: Option<String>,
    /// Only this service's records.
    #[serde(default)]
    pub service: Option<String>,
    /// How long the condition holds before it fires (pending until then) [default 0s].
    #[serde(default, rename = "for")]
    pub for_: Option<String>,
    /// How often a firing alert is sent again [default: 1h].
    #[serde(default)]
    pub repeat: Option<String>,
    /// Also send when it resolves [default: true; false for `exception`].
    #[serde(default)]
    pub send_resolved: Option<bool>,
    /// Where it is sent: an `http://` or `https://` URL.
    #[serde(default)]
    pub webhook: Option<String>,
    /// The HMAC-SHA256 key of the `X-Logbook-Signature` header.
    #[serde(default)]
    pub secret: Option<SensitiveString>,
}

impl AlertRule {
    /// Checks the rule: its kind, durations and webhook.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.name.trim().is_empty() {
            anyhow::bail!("[[alerts]]: a rule has no name");
        }
        if !["loop", "error_count", "exception", "latency", "error_rate"]
            .contains(&self.kind.as_str())
        {
            anyhow::bail!(
                "[[alerts]] {:?}: kind {:?} is not loop, error_count, exception, latency or error_rate",
                self.name,
                self.kind
            );
        }
        if ["latency", "error_rate"].contains(&self.kind.as_str()) && self.threshold.is_none() {
            anyhow::bail!(
                "[[alerts]] {:?}: a {} rule needs a threshold ({})",
                self.name,
                self.kind,
                if self.kind == "latency" {
                    "milliseconds"
                } else {
                    "percent"
                }
            );
        }
        if let Some(q) = self.quantile {
            if !(0.0..=1.0).contains(&q) {
                anyhow::bail!(
                    "[[alerts]] {:?}: quantile {q} is not between 0 and 1",
                    self.name
                );
            }
        }
        for (what, v) in [
            ("window", &self.window),
            ("for", &self.for_),
            ("repeat", &self.repeat),
        ] {
            if let Some(v) = v {
                if crate::query::parse_age(v).is_none() && v != "0s" {
                    anyhow::bail!(
                        "[[alerts]] {:?}: {what} {v:?} is not a duration such as 30s, 5m or 1h",
                        self.name
                    );
                }
            }
        }
        if let Some(w) = &self.webhook {
            w.parse::<crate::forward::Endpoint>()
                .map_err(|e| anyhow::anyhow!("[[alerts]] {:?}: webhook: {e}", self.name))?;
        }
        Ok(())
    }

    fn duration(v: Option<&String>, default: Duration) -> Duration {
        v.and_then(|v| crate::query::parse_age(v))
            .unwrap_or(default)
    }

    fn window(&self) -> Duration {
        let default = match self.kind.as_str() {
            "exception" => 600,
            "cost" => 86_400,
            _ => 300,
        };
        Self::duration(self.window.as_ref(), Duration::from_secs(default))
    }

    fn pending_for(&self) -> Duration {
        Self::duration(self.for_.as_ref(), Duration::ZERO)
    }

    fn repeat_every(&self) -> Duration {
        Self::duration(self.repeat.as_ref(), Duration::from_secs(3600))
    }

    fn sends_resolved(&self) -> bool {
        self.send_resolved.unwrap_or(self.kind != "exception")
    }
}

/// A rule's condition holding for one set of labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    pub key: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
    pub summary: String,
}

/// What each rule sees now: reads of the monitor's tables only.
pub fn observe(
    reader: &dyn StoreReader,
    rule: &AlertRule,
    now: Timestamp,
) -> Result<Vec<Observation>, StoreError> {
    let ago = |d: Duration| now.saturating_sub(d);
    let mut out = Vec::new();
    match rule.kind.as_str() {
        "loop" => {
            let threshold = rule.threshold.unwrap_or(3).max(2);
            for l in reader.open_loops(threshold)? {
                if rule.service.as_ref().is_some_and(|s| *s != l.service) {
                    continue;
                }
                let labels = BTreeMap::from([
                    ("run_id".to_owned(), l.run_id.clone()),
                    ("tool".to_owned(), l.tool.clone()),
                    ("arguments".to_owned(), l.arguments.clone()),
                    ("service".to_owned(), l.service.clone()),
                ]);
                out.push(Observation {
                    key: format!(
                        "run_id={},tool={},arguments={}",
                        l.run_id, l.tool, l.arguments
                    ),
                    summary: format!(
                        "Run {} called {} with the same arguments {} times: {}",
                        l.run_id, l.tool, l.count, l.arguments
                    ),
                    labels,
                    value: l.count as f64,
                });
            }
        }
        "error_count" => {
            let f = crate::store::metrics::MetricsFilter {
                since: ago(rule.window()),
                until: now,
                service: rule.service.clone(),
                name: None,
            };
            let errors: u64 = reader
                .log_volume(&f)?
                .iter()
                .filter(|(p, l, _)| {
                    *l == logbook_proto::Level::Error.code()
                        && *p >= f.since.as_nanos() - crate::store::metrics::MINUTE_NS
                })
                .map(|(_, _, n)| n)
                .sum();
            if errors >= rule.threshold.unwrap_or(1) {
                let mut labels = BTreeMap::new();
                if let Some(s) = &rule.service {
                    labels.insert("service".to_owned(), s.clone());
                }
                out.push(Observation {
                    key: String::new(),
                    summary: format!(
                        "{errors} errors in the last {}",
                        rule.window
                            .as_deref()
                            .unwrap_or(if rule.kind == "exception" {
                                "10m"
                            } else {
                                "5m"
                            })
                    ),
                    labels,
                    value: errors as f64,
                });
            }
        }
        "exception" => {
            let since = ago(rule.window());
            for g in reader.exception_groups(&ExceptionFilter {
                states: vec![ExceptionState::Unresolved, ExceptionState::Regressed],
                service: rule.service.clone(),
                since: Some(since),
                limit: 200,
                ..ExceptionFilter::default()
            })? {
                let new = g.first_seen >= since;
                let regressed = g.status.state == ExceptionState::Regressed
                    && g.status.changed.is_some_and(|c| c >= since);
                if !(new || regressed) {
                    continue;
                }
                let labels = BTreeMap::from([
                    ("fingerprint".to_owned(), g.fingerprint.clone()),
                    ("type".to_owned(), g.kind.clone()),
                    (
                        "state".to_owned(),
                        if new { "new" } else { "regressed" }.to_owned(),
                    ),
                ]);
                out.push(Observation {
                    key: g.fingerprint.clone(),
                    summary: format!(
                        "{} exception: {}: {}",
                        if new { "New" } else { "Regressed" },
                        g.kind,
                        g.message
                    ),
                    labels,
                    value: g.count as f64,
                });
            }
        }
        "latency" | "error_rate" => {
            let f = crate::store::metrics::MetricsFilter {
                since: ago(rule.window()),
                until: now,
                service: rule.service.clone(),
                name: None,
            };
            let pattern = rule.span.as_deref().unwrap_or("*");
            let rows: Vec<_> = reader
                .span_rows(&f)?
                .into_iter()
                .filter(|r| crate::monitor::glob(pattern, &r.key.name))
                .collect();
            let threshold = rule.threshold.unwrap_or(0) as f64;
            for s in crate::store::metrics::summaries(&rows, &f, false) {
                let labels = BTreeMap::from([
                    ("service".to_owned(), s.key.service.clone()),
                    ("span".to_owned(), s.key.name.clone()),
                ]);
                let key = format!("service={},span={}", s.key.service, s.key.name);
                let window = rule.window.as_deref().unwrap_or("5m");
                if rule.kind == "latency" {
                    let q = rule.quantile.unwrap_or(0.95);
                    let stats = rows
                        .iter()
                        .filter(|r| r.key.service == s.key.service && r.key.name == s.key.name)
                        .fold(crate::store::metrics::SpanStats::default(), |mut acc, r| {
                            acc.merge(&r.stats);
                            acc
                        });
                    let Some(ns) = stats.sketch.quantile(q) else {
                        continue;
                    };
                    let ms = ns as f64 / 1e6;
                    if ms > threshold {
                        out.push(Observation {
                            key,
                            summary: format!(
                                "p{} of {} ({}) is {ms:.1} ms over the last {window} (threshold {threshold} ms)",
                                (q * 100.0).round(),
                                s.key.name,
                                s.key.service
                            ),
                            labels,
                            value: ms,
                        });
                    }
                } else {
                    let rate = s.error_rate * 100.0;
                    if s.count >= rule.min_count.unwrap_or(10) && rate > threshold {
                        out.push(Observation {
                            key,
                            summary: format!(
                                "{rate:.1} % of {} ({}) failed over the last {window} ({} of {}; threshold {threshold} %)",
                                s.key.name, s.key.service, s.errors, s.count
                            ),
                            labels,
                            value: rate,
                        });
                    }
                }
            }
        }
        "cost" => {
            let filter = crate::store::CallFilter {
                since: Some(ago(rule.window())),
                until: Some(now),
                service: rule.service.clone(),
                limit: 10_000,
                ..crate::store::CallFilter::default()
            };
            let budget = rule.budget.unwrap_or(f64::INFINITY);
            let total = rule.by.as_deref() == Some("total");
            let groups = reader.cost(crate::store::CostBy::Tenant, &filter)?;
            let spent: Vec<(String, f64)> = if total {
                vec![(
                    String::new(),
                    groups.iter().filter_map(|g| g.cost).sum::<f64>(),
                )]
            } else {
                groups
                    .iter()
                    .map(|g| (g.key.clone(), g.cost.unwrap_or(0.0)))
                    .collect()
            };
            for (tenant, usd) in spent {
                if usd > budget {
                    let mut labels = BTreeMap::new();
                    if !total {
                        labels.insert("tenant".to_owned(), tenant.clone());
                    }
                    out.push(Observation {
                        key: tenant.clone(),
                        summary: format!(
                            "{} spent ${usd:.2} on LLM calls in the last {} (budget ${budget:.2})",
                            if total {
                                "All tenants".to_owned()
                            } else {
                                format!("Tenant {tenant:?}")
                            },
                            rule.window.as_deref().unwrap_or("1d")
                        ),
                        labels,
                        value: usd,
                    });
                }
            }
        }
        "client_drops" => {
            let since = ago(rule.window());
            for c in reader.stats()?.client_drops {
                let dropped: u64 = c.dropped.iter().sum();
                if c.updated < since || dropped < rule.threshold.unwrap_or(1) {
                    continue;
                }
                if rule.service.as_ref().is_some_and(|s| *s != c.service) {
                    continue;
                }
                out.push(Observation {
                    key: c.instance.clone(),
                    summary: format!(
                        "{} (pid {} on {}) dropped {dropped} records",
                        c.service, c.pid, c.host
                    ),
                    labels: BTreeMap::from([
                        ("service".to_owned(), c.service.clone()),
                        ("host".to_owned(), c.host.clone()),
                        ("instance".to_owned(), c.instance.clone()),
                    ]),
                    value: dropped as f64,
                });
            }
        }
        "no_data" => {
            let f = crate::store::metrics::MetricsFilter {
                since: ago(rule.window()),
                until: now,
                service: rule.service.clone(),
                name: None,
            };
            let seen: u64 = reader
                .log_volume(&f)?
                .iter()
                .filter(|(p, _, _)| *p >= f.since.as_nanos() - crate::store::metrics::MINUTE_NS)
                .map(|(_, _, n)| n)
                .sum();
            if seen == 0 {
                let service = rule.service.clone().unwrap_or_default();
                out.push(Observation {
                    key: service.clone(),
                    summary: format!(
                        "No records from {service} in the last {}",
                        rule.window.as_deref().unwrap_or("5m")
                    ),
                    labels: BTreeMap::from([("service".to_owned(), service)]),
                    value: 0.0,
                });
            }
        }
        _ => {}
    }
    Ok(out)
}

/// Moves every alert on: the states to keep and the events to send.
pub fn step(
    rules: &[AlertRule],
    seen: &HashMap<String, Vec<Observation>>,
    previous: &[AlertState],
    now: Timestamp,
) -> (Vec<AlertState>, Vec<AlertEvent>) {
    let mut states = Vec::new();
    let mut events = Vec::new();
    let elapsed = |since: Timestamp| {
        Duration::from_nanos(u64::try_from(now.as_nanos() - since.as_nanos()).unwrap_or(0))
    };
    for rule in rules {
        let before: HashMap<&str, &AlertState> = previous
            .iter()
            .filter(|s| s.rule == rule.name)
            .map(|s| (s.key.as_str(), s))
            .collect();
        let current = seen.get(&rule.name).map_or(&[][..], Vec::as_slice);
        for o in current {
            let mut labels = o.labels.clone();
            labels.insert("alertname".to_owned(), rule.name.clone());
            let mut s = match before.get(o.key.as_str()) {
                Some(prev) => AlertState {
                    labels,
                    value: o.value,
                    summary: o.summary.clone(),
                    ..(*prev).clone()
                },
                None => AlertState {
                    rule: rule.name.clone(),
                    key: o.key.clone(),
                    state: "pending".to_owned(),
                    since: now,
                    last_sent: None,
                    labels,
                    value: o.value,
                    summary: o.summary.clone(),
                },
            };
            if s.state == "pending" && elapsed(s.since) >= rule.pending_for() {
                s.state = "firing".to_owned();
                s.since = now;
            }
            let due = s
                .last_sent
                .is_none_or(|t| elapsed(t) >= rule.repeat_every());
            if s.state == "firing" && due {
                s.last_sent = Some(now);
                events.push(event(&s, "firing", now));
            }
            states.push(s);
        }
        // Alerts whose condition no longer holds: resolved (and said so, if they fired).
        for (key, prev) in before {
            if current.iter().any(|o| o.key == key) {
                continue;
            }
            if prev.state == "firing" && rule.sends_resolved() {
                events.push(event(prev, "resolved", now));
            }
        }
    }
    (states, events)
}

fn event(s: &AlertState, state: &str, now: Timestamp) -> AlertEvent {
    AlertEvent {
        ts: now,
        started: s.since,
        rule: s.rule.clone(),
        key: s.key.clone(),
        state: state.to_owned(),
        labels: s.labels.clone(),
        value: s.value,
        summary: s.summary.clone(),
        delivery: String::new(),
        attempts: 0,
    }
}

/// An event as Alertmanager's webhook payload (version 4): one alert.
pub fn payload(e: &AlertEvent) -> serde_json::Value {
    let started = e.started;
    let resolved = e.state == "resolved";
    let labels = serde_json::to_value(&e.labels).unwrap_or_default();
    let alert = serde_json::json!({
        "status": if resolved { "resolved" } else { "firing" },
        "labels": labels,
        "annotations": {"summary": e.summary, "value": e.value.to_string()},
        "startsAt": started.to_rfc3339(),
        "endsAt": if resolved { e.ts.to_rfc3339() } else { "0001-01-01T00:00:00Z".to_owned() },
        "generatorURL": "",
        "fingerprint": fingerprint(&e.rule, &e.key),
    });
    serde_json::json!({
        "version": "4",
        "groupKey": format!("{{}}:{{alertname=\"{}\"}}", e.rule),
        "truncatedAlerts": 0,
        "status": if resolved { "resolved" } else { "firing" },
        "receiver": "logbook",
        "groupLabels": {"alertname": e.rule},
        "commonLabels": labels,
        "commonAnnotations": {"summary": e.summary},
        "externalURL": "",
        "alerts": [alert],
    })
}

/// An alert's identity as Alertmanager shows it: 16 hex digits.
fn fingerprint(rule: &str, key: &str) -> String {
    use sha2::Digest as _;
    let d = sha2::Sha256::digest(format!("{rule}\0{key}").as_bytes());
    d[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The `X-Logbook-Signature` of `body`: `sha256=` and the hex HMAC-SHA256 under
/// `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    use hmac::Mac as _;
    let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    format!(
        "sha256={}",
        tag.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

mod deliver;
pub use deliver::{deliver, evaluate, Evaluation};

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(kind: &str, for_: &str) -> AlertRule {
        AlertRule {
            name: "r".into(),
            kind: kind.into(),
            threshold: None,
            span: None,
            quantile: None,
            min_count: None,
            budget: None,
            by: None,
            window: None,
            service: None,
            for_: Some(for_.into()),
            repeat: Some("1h".into()),
            send_resolved: None,
            webhook: None,
            secret: None,
        }
    }

    fn seen(keys: &[&str]) -> HashMap<String, Vec<Observation>> {
        HashMap::from([(
            "r".to_owned(),
            keys.iter()
                .map(|k| Observation {
                    key: (*k).into(),
                    labels: BTreeMap::new(),
                    value: 1.0,
                    summary: String::new(),
                })
                .collect(),
        )])
    }

    #[test]
    fn alerts_go_pending_firing_resolved_and_repeat() {
        let rules = [rule("loop", "1m")];
        let t = |s: i64| Timestamp(s * 1_000_000_000);
        let (s1, e1) = step(&rules, &seen(&["a"]), &[], t(0));
        assert_eq!((s1[0].state.as_str(), e1.len()), ("pending", 0));
        let (s2, e2) = step(&rules, &seen(&["a"]), &s1, t(30));
        assert_eq!((s2[0].state.as_str(), e2.len()), ("pending", 0));
        let (s3, e3) = step(&rules, &seen(&["a"]), &s2, t(61));
        assert_eq!(s3[0].state, "firing");
        assert_eq!(e3.len(), 1);
        assert_eq!(e3[0].state, "firing");
        assert_eq!(e3[0].labels["alertname"], "r");
        // Still firing: not sent again before the repeat interval.
        let (s4, e4) = step(&rules, &seen(&["a"]), &s3, t(120));
        assert!(e4.is_empty());
        let (s5, e5) = step(&rules, &seen(&["a"]), &s4, t(61 + 3600));
        assert_eq!(e5.len(), 1, "repeated after an hour");
        // Gone: resolved, sent, forgotten.
        let (s6, e6) = step(&rules, &seen(&[]), &s5, t(4000));
        assert!(s6.is_empty());
        assert_eq!(e6[0].state, "resolved");
        // A pending alert that goes away was never sent.
        let (p, _) = step(&rules, &seen(&["b"]), &[], t(0));
        let (_, none) = step(&rules, &seen(&[]), &p, t(10));
        assert!(none.is_empty());
    }

    #[test]
    fn payloads_are_alertmanagers_and_signed() {
        let e = AlertEvent {
            ts: Timestamp(5_000_000_000),
            rule: "agent loop".into(),
            key: "k".into(),
            state: "firing".into(),
            labels: BTreeMap::from([("alertname".into(), "agent loop".into())]),
            value: 4.0,
            summary: "stuck".into(),
            ..AlertEvent::default()
        };
        let p = payload(&AlertEvent {
            started: Timestamp(1_000_000_000),
            ..e.clone()
        });
        assert_eq!(p["version"], "4");
        assert_eq!(p["status"], "firing");
        assert_eq!(p["alerts"][0]["labels"]["alertname"], "agent loop");
        assert_eq!(p["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
