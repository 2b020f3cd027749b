//! Span metrics and log volume in PostgreSQL (see `crate::store::metrics`): a page's
//! deltas merged into their rows (sketches merged here, in the monitor's transaction,
//! which holds the monitor's row: one page at a time across the fleet), rows read for
//! a range, old rows pruned.

use postgres::types::ToSql;
use postgres::{Client, GenericClient, Transaction};

use super::read::saturate;
use crate::monitor::sketch::Sketch;
use crate::store::metrics::{MetricsFilter, SpanDeltas, SpanKey, SpanRow, SpanStats, VolumeDeltas};
use crate::store::StoreError;

fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Merges a page's deltas into their rows.
pub(super) fn apply(
    tx: &mut Transaction<'_>,
    spans: &SpanDeltas,
    volume: &VolumeDeltas,
) -> Result<(), StoreError> {
    if !spans.is_empty() {
        let get = tx.prepare(
            "SELECT count, errors, slow, sum_ns, sketch FROM span_metrics
              WHERE width = $1 AND period = $2 AND service = $3 AND name = $4 AND model = $5",
        )?;
        let put = tx.prepare(
            "INSERT INTO span_metrics
                (width, period, service, name, model, count, errors, slow, sum_ns, sketch)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (width, period, service, name, model) DO UPDATE SET
                count = excluded.count, errors = excluded.errors, slow = excluded.slow,
                sum_ns = excluded.sum_ns, sketch = excluded.sketch",
        )?;
        for ((width, period, key), delta) in spans {
            let mut stats =
                match tx.query_opt(&get, &[width, period, &key.service, &key.name, &key.model])? {
                    Some(r) => SpanStats {
                        count: count(r.try_get(0)?),
                        errors: count(r.try_get(1)?),
                        slow: count(r.try_get(2)?),
                        sum_ns: count(r.try_get(3)?),
                        sketch: Sketch::decode(&r.try_get::<_, Vec<u8>>(4)?).unwrap_or_default(),
                    },
                    None => SpanStats::default(),
                };
            stats.merge(delta);
            tx.execute(
                &put,
                &[
                    width,
                    period,
                    &key.service,
                    &key.name,
                    &key.model,
                    &saturate(stats.count),
                    &saturate(stats.errors),
                    &saturate(stats.slow),
                    &saturate(stats.sum_ns),
                    &stats.sketch.encode(),
                ],
            )?;
        }
    }
    if !volume.is_empty() {
        let add = tx.prepare(
            "INSERT INTO log_volume AS v (width, period, service, level, n) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (width, period, service, level) DO UPDATE SET n = v.n + excluded.n",
        )?;
        for ((width, period, service, level), n) in volume {
            tx.execute(
                &add,
                &[width, period, service, &i64::from(*level), &saturate(*n)],
            )?;
        }
    }
    Ok(())
}

/// The rows of `f`'s range (at its width), of its service and name prefix.
pub(super) fn span_rows(c: &mut Client, f: &MetricsFilter) -> Result<Vec<SpanRow>, StoreError> {
    let mut sql = String::from(
        "SELECT period, service, name, model, count, errors, slow, sum_ns, sketch FROM span_metrics
          WHERE width = $1 AND period >= $2 AND period < $3",
    );
    let (width, first, until) = (f.width(), f.first_period(), f.until.as_nanos());
    let mut args: Vec<&(dyn ToSql + Sync)> = vec![&width, &first, &until];
    if let Some(service) = &f.service {
        args.push(service);
        sql.push_str(&format!(" AND service = ${}", args.len()));
    }
    if let Some(name) = &f.name {
        args.push(name);
        sql.push_str(&format!(" AND left(name, length(${0})) = ${0}", args.len()));
    }
    c.query(&sql, &args)?
        .iter()
        .map(|r| {
            Ok(SpanRow {
                period: r.try_get(0)?,
                key: SpanKey {
                    service: r.try_get(1)?,
                    name: r.try_get(2)?,
                    model: r.try_get(3)?,
                },
                stats: SpanStats {
                    count: count(r.try_get(4)?),
                    errors: count(r.try_get(5)?),
                    slow: count(r.try_get(6)?),
                    sum_ns: count(r.try_get(7)?),
                    sketch: Sketch::decode(&r.try_get::<_, Vec<u8>>(8)?).unwrap_or_default(),
                },
            })
        })
        .collect()
}

/// Records by period and level (code) over `f`'s range, of its service.
pub(super) fn volume(c: &mut Client, f: &MetricsFilter) -> Result<Vec<(i64, u8, u64)>, StoreError> {
    let mut sql = String::from(
        "SELECT period, level, sum(n)::bigint FROM log_volume WHERE width = $1 AND period >= $2 AND period < $3",
    );
    let (width, first, until) = (f.width(), f.first_period(), f.until.as_nanos());
    let mut args: Vec<&(dyn ToSql + Sync)> = vec![&width, &first, &until];
    if let Some(service) = &f.service {
        args.push(service);
        sql.push_str(&format!(" AND service = ${}", args.len()));
    }
    sql.push_str(" GROUP BY period, level ORDER BY period, level");
    c.query(&sql, &args)?
        .iter()
        .map(|r| {
            Ok((
                r.try_get(0)?,
                u8::try_from(r.try_get::<_, i64>(1)?).unwrap_or(0),
                count(r.try_get(2)?),
            ))
        })
        .collect()
}

/// Deletes minute rows before `minutes_before` and hour rows before `hours_before`.
pub(super) fn prune(
    c: &mut impl GenericClient,
    minutes_before: i64,
    hours_before: i64,
) -> Result<u64, StoreError> {
    let mut n = 0;
    for table in ["span_metrics", "log_volume"] {
        n += c.execute(
            &format!("DELETE FROM {table} WHERE (width = $1 AND period < $2) OR (width = $3 AND period < $4)"),
            &[
                &crate::store::metrics::MINUTE_NS,
                &minutes_before,
                &crate::store::metrics::HOUR_NS,
                &hours_before,
            ],
        )?;
    }
    // Loops matter while their run runs: counts older than the minutes go too.
    n += c.execute(
        "DELETE FROM tool_repeats WHERE last_ts < $1",
        &[&minutes_before],
    )?;
    Ok(n)
}
