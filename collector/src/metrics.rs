//! What `/metrics` reports, in the OpenMetrics text format Prometheus scrapes: counts
//! kept in memory as things happen (records by transport and outcome, commits and
//! their latency, emit-to-commit latency, HTTP requests by route and status), and at
//! each scrape what the store keeps (its size, client-reported drops, redactions by
//! rule, what the limits did, the queue's depth).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::store::StoreStats;

/// A transport and what became of its records.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RecordLabels {
    transport: String,
    outcome: &'static str,
}

/// An HTTP route and the status answered.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Labeled {
    name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DestinationLabel {
    destination: String,
}

/// A forwarding destination's gauges.
#[derive(Clone, Default)]
struct Forwarding {
    sent: Family<DestinationLabel, Gauge>,
    behind: Family<DestinationLabel, Gauge>,
    refused: Family<DestinationLabel, Gauge>,
    failed: Family<DestinationLabel, Gauge>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SpanLabels {
    service: String,
    span: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SpanQuantile {
    service: String,
    span: String,
    quantile: &'static str,
}

/// The RED metrics of the busiest span names over the last five minutes.
#[derive(Clone, Default)]
struct Spans {
    count: Family<SpanLabels, Gauge>,
    errors: Family<SpanLabels, Gauge>,
    duration: Family<SpanQuantile, Gauge<f64, std::sync::atomic::AtomicU64>>,
}

/// Span names shown on `/metrics`, at most (the busiest).
pub const MAX_SPAN_SERIES: usize = 20;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LevelLabel {
    level: &'static str,
}

/// Route labels kept, at most: any more are counted as `other`.
const MAX_ROUTES: usize = 64;

/// The collector's metrics. One per collector, shared by admission, the writer and
/// the HTTP side.
pub struct Metrics {
    registry: Registry,
    records: Family<RecordLabels, Counter>,
    commits: Counter,
    commit_seconds: Histogram,
    emit_to_commit_seconds: Histogram,
    requests: Family<RequestLabels, Counter>,
    request_seconds: Family<RouteLabel, Histogram>,
    queue_records: Gauge,
    queue_capacity: Gauge,
    database_bytes: Gauge,
    stored_records: Gauge,
    dropped: Family<LevelLabel, Gauge>,
    redactions: Family<Labeled, Gauge>,
    limits: Family<Labeled, Gauge>,
    quarantined: Gauge,
    forwarding: Forwarding,
    spans: Spans,
    routes: std::sync::Mutex<std::collections::HashSet<String>>,
    /// The last commit failed (the store cannot be written).
    failing: AtomicBool,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("logbook");
        let records = Family::<RecordLabels, Counter>::default();
        registry.register(
            "records",
            "Records received from clients, by transport and outcome (received, stored, duplicate, refused)",
            records.clone(),
        );
        let commits = Counter::default();
        registry.register(
            "commits",
            "Transactions the writer committed",
            commits.clone(),
        );
        let commit_seconds = Histogram::new(exponential_buckets(0.000_25, 2.0, 16));
        registry.register(
            "commit_seconds",
            "How long each commit took",
            commit_seconds.clone(),
        );
        let emit_to_commit_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 18));
        registry.register(
            "emit_to_commit_seconds",
            "From a record's own time to its commit (records sent late, such as OTLP spans exported at their end, count from their start)",
            emit_to_commit_seconds.clone(),
        );
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route and status",
            requests.clone(),
        );
        let request_seconds = Family::<RouteLabel, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(0.000_5, 2.0, 16))) as fn() -> Histogram,
        );
        registry.register(
            "http_request_seconds",
            "How long HTTP requests took to answer (a stream: until its answer began), by route",
            request_seconds.clone(),
        );
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let g = Gauge::default();
            registry.register(name, help, g.clone());
            g
        };
        let queue_records = gauge(
            &mut registry,
            "queue_records",
            "Records waiting for the writer",
        );
        let queue_capacity = gauge(
            &mut registry,
            "queue_capacity_records",
            "Records the writer's queue holds at most",
        );
        let database_bytes = gauge(&mut registry, "database_bytes", "Bytes the store occupies");
        let stored_records = gauge(&mut registry, "stored_records", "Records in the store");
        let quarantined = gauge(
            &mut registry,
            "quarantined_records",
            "Records refused and kept in quarantine",
        );
        let dropped = Family::<LevelLabel, Gauge>::default();
        registry.register(
            "client_dropped_records",
            "Records clients reported dropping before sending (their totals), by level",
            dropped.clone(),
        );
        let redactions = Family::<Labeled, Gauge>::default();
        registry.register(
            "redactions",
            "Values the redaction rules replaced so far, by rule (name)",
            redactions.clone(),
        );
        let limits = Family::<Labeled, Gauge>::default();
        registry.register(
            "limit_events",
            "What the limits did so far (values cut, batches and connections refused, failed authentications), by name",
            limits.clone(),
        );
        let forwarding = Forwarding::default();
        for (name, help, family) in [
            (
                "forward_sent_records",
                "Records a forwarding destination accepted so far, by destination",
                &forwarding.sent,
            ),
            (
                "forward_behind_records",
                "Records committed after a forwarding destination's cursor (its lag), by destination",
                &forwarding.behind,
            ),
            (
                "forward_refused_records",
                "Records a forwarding destination refused as malformed (skipped), by destination",
                &forwarding.refused,
            ),
            (
                "forward_failed_requests",
                "Forwarding requests that failed and were retried, by destination",
                &forwarding.failed,
            ),
        ] {
            registry.register(name, help, family.clone());
        }
        let spans = Spans::default();
        registry.register(
            "span_count_5m",
            "Spans ended in the last five minutes, by service and span name (the busiest 20)",
            spans.count.clone(),
        );
        registry.register(
            "span_errors_5m",
            "Spans ended in error in the last five minutes, by service and span name (the busiest 20)",
            spans.errors.clone(),
        );
        registry.register(
            "span_duration_seconds_5m",
            "Span duration quantiles (0.5, 0.95, 0.99; within 1 %) over the last five minutes, by service and span name (the busiest 20)",
            spans.duration.clone(),
        );
        Self {
            registry,
            records,
            commits,
            commit_seconds,
            emit_to_commit_seconds,
            requests,
            request_seconds,
            queue_records,
            queue_capacity,
            database_bytes,
            stored_records,
            dropped,
            redactions,
            limits,
            quarantined,
            forwarding,
            spans,
            routes: std::sync::Mutex::default(),
            failing: AtomicBool::new(false),
        }
    }
}

impl Metrics {
    /// A batch from `transport` was committed: `received` records, of which `stored`
    /// were new, `duplicates` stored already, `refused` quarantined.
    pub fn batch(
        &self,
        transport: &str,
        received: u64,
        stored: u64,
        duplicates: u64,
        refused: u64,
    ) {
        for (outcome, n) in [
            ("received", received),
            ("stored", stored),
            ("duplicate", duplicates),
            ("refused", refused),
        ] {
            if n > 0 {
                self.records
                    .get_or_create(&RecordLabels {
                        transport: transport.to_owned(),
                        outcome,
                    })
                    .inc_by(n);
            }
        }
    }

    /// A commit took `took`.
    pub fn commit(&self, took: Duration) {
        self.commits.inc();
        self.commit_seconds.observe(took.as_secs_f64());
        self.failing.store(false, Ordering::Relaxed);
    }

    /// The writer's periodic upkeep succeeded.
    pub fn tick_ok(&self) {
        self.failing.store(false, Ordering::Relaxed);
    }

    /// A commit failed.
    pub fn commit_failed(&self) {
        self.failing.store(true, Ordering::Relaxed);
    }

    /// Whether the last commit failed.
    pub fn failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }

    /// A record emitted `age` before its commit.
    pub fn emit_to_commit(&self, age: Duration) {
        self.emit_to_commit_seconds.observe(age.as_secs_f64());
    }

    /// An HTTP request to `route` answered `status` after `took`.
    pub fn request(&self, route: &str, status: u16, took: Duration) {
        let route = {
            let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
            if routes.contains(route) || routes.len() < MAX_ROUTES {
                routes.insert(route.to_owned());
                route.to_owned()
            } else {
                "other".to_owned()
            }
        };
        self.request_seconds
            .get_or_create(&RouteLabel {
                route: route.clone(),
            })
            .observe(took.as_secs_f64());
        self.requests
            .get_or_create(&RequestLabels { route, status })
            .inc();
    }

    /// The metrics as OpenMetrics text, with the store's numbers and the queue's
    /// depth as they are now.
    pub fn render(
        &self,
        stats: Option<&StoreStats>,
        queue: (u64, u64),
        spans: Option<&[crate::store::metrics::SpanSummary]>,
    ) -> String {
        let gauge = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        if let Some(spans) = spans {
            let s = &self.spans;
            // Only the busiest now: names that fell out go.
            s.count.clear();
            s.errors.clear();
            s.duration.clear();
            for span in spans.iter().take(MAX_SPAN_SERIES) {
                let labels = SpanLabels {
                    service: span.key.service.clone(),
                    span: span.key.name.clone(),
                };
                s.count.get_or_create(&labels).set(gauge(span.count));
                s.errors.get_or_create(&labels).set(gauge(span.errors));
                for (quantile, v) in [
                    ("0.5", span.p50_ns),
                    ("0.95", span.p95_ns),
                    ("0.99", span.p99_ns),
                ] {
                    if let Some(ns) = v {
                        s.duration
                            .get_or_create(&SpanQuantile {
                                service: labels.service.clone(),
                                span: labels.span.clone(),
                                quantile,
                            })
                            .set(ns as f64 / 1e9);
                    }
                }
            }
        }
        self.queue_records.set(gauge(queue.0));
        self.queue_capacity.set(gauge(queue.1));
        if let Some(s) = stats {
            self.database_bytes.set(gauge(s.storage_bytes));
            self.stored_records.set(gauge(s.records));
            self.quarantined.set(gauge(s.quarantined));
            for (i, level) in ["trace", "debug", "info", "warn", "error"]
                .into_iter()
                .enumerate()
            {
                let n: u64 = s.client_drops.iter().map(|c| c.dropped[i]).sum();
                self.dropped
                    .get_or_create(&LevelLabel { level })
                    .set(gauge(n));
            }
            for (rule, n) in &s.redactions {
                self.redactions
                    .get_or_create(&Labeled { name: rule.clone() })
                    .set(gauge(*n));
            }
            for (what, n) in &s.limits {
                self.limits
                    .get_or_create(&Labeled { name: what.clone() })
                    .set(gauge(*n));
            }
            for f in &s.forwards {
                let d = DestinationLabel {
                    destination: f.name.clone(),
                };
                let fw = &self.forwarding;
                fw.sent.get_or_create(&d).set(gauge(f.sent));
                fw.behind.get_or_create(&d).set(gauge(f.behind));
                fw.refused.get_or_create(&d).set(gauge(f.refused));
                fw.failed.get_or_create(&d).set(gauge(f.failures));
            }
        }
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
