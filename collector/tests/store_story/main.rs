//! One storage story, told through the store contract alone (`StoreWriter`,
//! `StoreReader`, and the retention, DSAR, cost and verify logic built on them), so a
//! second backend passes by running it: writes and dedup, every filter and keyset
//! paging, the record stream, runs (by run id and by trace) and their trees, the
//! commutative merge of run deltas, calls and cost, purge by age, count and rule,
//! archive and restore, DSAR export and delete, the audit chain, checkpoints, `verify`
//! and every tamper case.
//!
//! Each story is a function of a [`backend::Backend`]; `stories!` runs each against
//! every backend.

#![allow(clippy::unwrap_used, unreachable_pub)]

mod alerts;
mod audit;
mod backend;
mod calls;
mod exceptions;
mod metrics;
#[cfg(feature = "postgres")]
mod postgres_only;
mod records;
mod retention;
mod runs;
mod scope;
mod sqlite_only;

use std::sync::Arc;

use logbook_proto::{
    InstanceId, Kind, Level, Record, RecordId, Resource, Scope, ScopeKey, SpanId, Status,
    Timestamp, TraceId, Value,
};

/// 2026-11-21T20:00:00Z.
pub const T0: i64 = 1_795_291_200_000_000_000;
/// A day, in nanoseconds.
pub const DAY: i64 = 86_400_000_000_000;

/// The emitter of the story's records.
pub fn resource(service: &str) -> Arc<Resource> {
    Arc::new(Resource {
        service: service.into(),
        host: "h".into(),
        pid: 7,
    })
}

/// An INFO-or-other event `i` of `run` at `ts`, tenant acme.
pub fn event(i: u64, ts: i64, level: Level, run: &str) -> Record {
    let mut r = Record::new(
        RecordId::new(InstanceId::from_random(1), i),
        Timestamp(ts),
        Kind::Event,
        level,
        "e",
    );
    r.trace_id = TraceId::from_random(1, 1);
    r.scope = Arc::new(
        Scope::new()
            .with(ScopeKey::RunId, run)
            .with(ScopeKey::Tenant, "acme"),
    );
    r.resource = resource("story");
    r.message = Some(format!("message {i}"));
    r.fields.set("i", Value::U64(i));
    r
}

/// A span record of `trace`: `span` under `parent`, in `scope`.
#[allow(clippy::too_many_arguments)]
pub fn span(
    i: u64,
    kind: Kind,
    ts: i64,
    name: &'static str,
    trace: TraceId,
    span: u64,
    parent: Option<u64>,
    scope: Scope,
) -> Record {
    let mut r = Record::new(
        RecordId::new(InstanceId::from_random(1), i),
        Timestamp(ts),
        kind,
        Level::Info,
        name,
    );
    r.trace_id = trace;
    r.span_id = Some(SpanId::from_random(span));
    r.parent_span_id = parent.map(SpanId::from_random);
    r.scope = Arc::new(scope);
    r.resource = resource("story");
    if kind == Kind::SpanEnd {
        r.duration_ns = Some(5_000);
        r.status = Some(Status::Ok);
    }
    r
}

/// One fresh store of every backend, for property tests.
pub fn backends() -> Vec<Box<dyn backend::Backend>> {
    vec![Box::new(backend::sqlite::Sqlite::new())]
}

/// Runs each story against every backend: `stories!(backend_module::Type => a, b, …)`.
macro_rules! stories {
    ($($backend:ident: $ty:path => [$($story:ident),* $(,)?]),* $(,)?) => {
        $(
            mod $backend {
                $(
                    #[test]
                    #[allow(non_snake_case)]
                    fn $story() {
                        let b = <$ty>::new();
                        super::$story(&b);
                    }
                )*
            }
        )*
    };
}

use alerts::*;
use audit::*;
use calls::*;
use exceptions::*;
use metrics::*;
use records::*;
use retention::*;
use runs::*;
use scope::*;

stories! {
    sqlite: crate::backend::sqlite::Sqlite => [
        writes_filters_pages_and_counters,
        reopening_keeps_the_sequence_growing,
        latency_is_kept_including_the_last_commit,
        field_filters_match_every_value_type_exactly,
        the_stream_resumes_with_no_gap_and_no_duplicate,
        runs_and_their_trees,
        traces_without_run_ids_are_runs,
        calls_runs_and_cost_are_kept_at_ingest,
        genai_events_fold_into_their_calls,
        exception_groups_count_once_and_follow_their_state,
        span_metrics_roll_up_by_minute_and_hour,
        loops_states_and_history_are_kept,
        alert_rules_read_the_rollups,
        a_run_is_its_roots_even_when_other_processes_records_come_first,
        purge_by_age_archives_anchors_and_restores,
        purge_by_count_and_tenant_rule,
        dsar_export_and_delete_keep_the_chain_verifiable,
        an_untouched_chain_verifies_with_its_checkpoints,
        a_changed_payload_is_detected,
        an_edited_payload_is_detected,
        deleted_rows_are_detected,
        swapped_payloads_are_detected,
        swapped_chain_rows_are_detected,
        a_forged_chain_row_is_detected,
        a_forged_unchained_audit_record_is_detected,
        a_chain_recomputed_without_the_key_is_detected,
        a_truncated_tail_is_detected,
        an_older_copy_of_the_store_is_detected,
        an_edited_checkpoint_file_is_detected,
        a_tombstone_without_a_dsar_record_is_detected,
        a_dsar_record_from_a_client_vouches_for_nothing,
        a_dsar_record_cannot_vouch_for_itself,
        the_disk_budget_purges_ops_only_when_that_makes_room,
        a_scoped_reader_sees_only_its_tenant_and_no_shared_run,
    ],
}

#[cfg(feature = "postgres")]
stories! {
    postgres: crate::backend::postgres::Postgres => [
        writes_filters_pages_and_counters,
        reopening_keeps_the_sequence_growing,
        latency_is_kept_including_the_last_commit,
        field_filters_match_every_value_type_exactly,
        the_stream_resumes_with_no_gap_and_no_duplicate,
        runs_and_their_trees,
        traces_without_run_ids_are_runs,
        calls_runs_and_cost_are_kept_at_ingest,
        genai_events_fold_into_their_calls,
        exception_groups_count_once_and_follow_their_state,
        span_metrics_roll_up_by_minute_and_hour,
        loops_states_and_history_are_kept,
        alert_rules_read_the_rollups,
        a_run_is_its_roots_even_when_other_processes_records_come_first,
        purge_by_age_archives_anchors_and_restores,
        purge_by_count_and_tenant_rule,
        dsar_export_and_delete_keep_the_chain_verifiable,
        an_untouched_chain_verifies_with_its_checkpoints,
        a_changed_payload_is_detected,
        an_edited_payload_is_detected,
        deleted_rows_are_detected,
        swapped_payloads_are_detected,
        swapped_chain_rows_are_detected,
        a_forged_chain_row_is_detected,
        a_forged_unchained_audit_record_is_detected,
        a_chain_recomputed_without_the_key_is_detected,
        a_truncated_tail_is_detected,
        an_older_copy_of_the_store_is_detected,
        an_edited_checkpoint_file_is_detected,
        a_tombstone_without_a_dsar_record_is_detected,
        a_dsar_record_from_a_client_vouches_for_nothing,
        a_dsar_record_cannot_vouch_for_itself,
        // Not on PostgreSQL: space freed by deleting rows is reused by the database,
        // not given back, so the store's size does not fall below the budget; retention
        // by age there drops whole days' partitions instead (README, PostgreSQL).
        a_scoped_reader_sees_only_its_tenant_and_no_shared_run,
    ],
}
