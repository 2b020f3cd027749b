//! Span metrics and log volume in SQLite (see `crate::store::metrics`): a page's
//! deltas merged into their rows (sketches merged here, in the monitor's
//! transaction), rows read for a range, old rows pruned.

use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};

use super::write::saturate;
use crate::monitor::sketch::Sketch;
use crate::store::metrics::{MetricsFilter, SpanDeltas, SpanKey, SpanRow, SpanStats, VolumeDeltas};
use crate::store::StoreError;

fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Merges a page's deltas into their rows.
pub(super) fn apply(
    conn: &Connection,
    spans: &SpanDeltas,
    volume: &VolumeDeltas,
) -> Result<(), StoreError> {
    let mut get = conn.prepare_cached(
        "SELECT count, errors, slow, sum_ns, sketch FROM span_metrics
          WHERE width = ? AND period = ? AND service = ? AND name = ? AND model = ?",
    )?;
    let mut put = conn.prepare_cached(
        "INSERT OR REPLACE INTO span_metrics
            (width, period, service, name, model, count, errors, slow, sum_ns, sketch)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )?;
    for ((width, period, key), delta) in spans {
        let mut stats = get
            .query_row(
                params![width, period, key.service, key.name, key.model],
                |r| {
                    Ok(SpanStats {
                        count: count(r.get(0)?),
                        errors: count(r.get(1)?),
                        slow: count(r.get(2)?),
                        sum_ns: count(r.get(3)?),
                        sketch: Sketch::decode(&r.get::<_, Vec<u8>>(4)?).unwrap_or_default(),
                    })
                },
            )
            .optional()?
            .unwrap_or_default();
        stats.merge(delta);
        put.execute(params![
            width,
            period,
            key.service,
            key.name,
            key.model,
            saturate(stats.count),
            saturate(stats.errors),
            saturate(stats.slow),
            saturate(stats.sum_ns),
            stats.sketch.encode(),
        ])?;
    }
    let mut add = conn.prepare_cached(
        "INSERT INTO log_volume (width, period, service, level, n) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (width, period, service, level) DO UPDATE SET n = n + excluded.n",
    )?;
    for ((width, period, service, level), n) in volume {
        add.execute(params![width, period, service, level, saturate(*n)])?;
    }
    Ok(())
}

/// The arguments of `f`'s width, range and service, for a `WHERE width = ? AND
/// period >= ? AND period < ?` already in `sql`; the service's clause added to it.
fn range(f: &MetricsFilter, sql: &mut String) -> Vec<SqlValue> {
    let mut args = vec![
        SqlValue::Integer(f.width()),
        SqlValue::Integer(f.first_period()),
        SqlValue::Integer(f.until.as_nanos()),
    ];
    if let Some(service) = &f.service {
        sql.push_str(" AND service = ?");
        args.push(SqlValue::Text(service.clone()));
    }
    args
}

/// The rows of `f`'s range (at its width), of its service and name prefix.
pub(super) fn span_rows(conn: &Connection, f: &MetricsFilter) -> Result<Vec<SpanRow>, StoreError> {
    let mut sql = String::from(
        "SELECT period, service, name, model, count, errors, slow, sum_ns, sketch FROM span_metrics
          WHERE width = ? AND period >= ? AND period < ?",
    );
    let mut args = range(f, &mut sql);
    if let Some(name) = &f.name {
        sql.push_str(" AND substr(name, 1, length(?)) = ?");
        args.push(SqlValue::Text(name.clone()));
        args.push(SqlValue::Text(name.clone()));
    }
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params_from_iter(args), |r| {
        Ok(SpanRow {
            period: r.get(0)?,
            key: SpanKey {
                service: r.get(1)?,
                name: r.get(2)?,
                model: r.get(3)?,
            },
            stats: SpanStats {
                count: count(r.get(4)?),
                errors: count(r.get(5)?),
                slow: count(r.get(6)?),
                sum_ns: count(r.get(7)?),
                sketch: Sketch::decode(&r.get::<_, Vec<u8>>(8)?).unwrap_or_default(),
            },
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Records by period and level (code) over `f`'s range, of its service.
pub(super) fn volume(
    conn: &Connection,
    f: &MetricsFilter,
) -> Result<Vec<(i64, u8, u64)>, StoreError> {
    let mut sql = String::from(
        "SELECT period, level, sum(n) FROM log_volume WHERE width = ? AND period >= ? AND period < ?",
    );
    let args = range(f, &mut sql);
    sql.push_str(" GROUP BY period, level ORDER BY period, level");
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params_from_iter(args), |r| {
        Ok((r.get(0)?, r.get::<_, u8>(1)?, count(r.get(2)?)))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Deletes minute rows before `minutes_before` and hour rows before `hours_before`.
pub(super) fn prune(
    conn: &Connection,
    minutes_before: i64,
    hours_before: i64,
) -> Result<u64, StoreError> {
    let mut n = 0;
    for table in ["span_metrics", "log_volume"] {
        n += conn.execute(
            &format!("DELETE FROM {table} WHERE (width = ?1 AND period < ?2) OR (width = ?3 AND period < ?4)"),
            params![
                crate::store::metrics::MINUTE_NS,
                minutes_before,
                crate::store::metrics::HOUR_NS,
                hours_before
            ],
        )?;
    }
    // Loops matter while their run runs: counts older than the minutes go too.
    n += conn.execute(
        "DELETE FROM tool_repeats WHERE last_ts < ?",
        [minutes_before],
    )?;
    Ok(n as u64)
}
