//! Exception groups in PostgreSQL (see `crate::store::exceptions`): the monitor's pages
//! applied with its cursor, people's changes, and the reads behind `logbook errors`.
//! The monitor's row is locked first in each page's transaction: collectors of a fleet
//! that read the same page apply it once (the others find the cursor moved), and the
//! groups' read-modify-write never interleaves with another page's.

use postgres::types::ToSql;
use postgres::{Client, GenericClient, Row};

use super::read::saturate;
use crate::store::exceptions::{
    changed_status, merged_status, ExceptionChange, ExceptionDetail, ExceptionFilter,
    ExceptionGroup, ExceptionNote, ExceptionSort, ExceptionState, ExceptionStatus, ExceptionTag,
    MonitorUpdate, TagKind, FORGOTTEN,
};
use crate::store::{StoreError, StreamCursor, Subject};
use logbook_proto::Timestamp;

/// The monitor's row in `monitor_state`.
const MONITOR: &str = "monitor";
const HOUR_NS: i64 = 3_600_000_000_000;

fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Where the monitor has come to, if it has started.
pub(super) fn monitor_cursor(
    c: &mut impl GenericClient,
) -> Result<Option<StreamCursor>, StoreError> {
    let row = c.query_opt(
        "SELECT cursor FROM monitor_state WHERE name = $1",
        &[&MONITOR],
    )?;
    Ok(row.map(|r| StreamCursor::from_backend(count(r.get(0)))))
}

/// Applies `u` and moves the cursor, if the cursor is still at `u.from`.
pub(super) fn apply(client: &mut Client, u: &MonitorUpdate) -> Result<bool, StoreError> {
    let mut tx = client.transaction()?;
    let now = Timestamp::now().as_nanos();
    // The row first, locked: the page's applier for the whole fleet.
    tx.execute(
        "INSERT INTO monitor_state (name, cursor, updated) VALUES ($1, 0, $2)
         ON CONFLICT (name) DO NOTHING",
        &[&MONITOR, &now],
    )?;
    let kept: i64 = tx
        .query_one(
            "SELECT cursor FROM monitor_state WHERE name = $1 FOR UPDATE",
            &[&MONITOR],
        )?
        .get(0);
    if count(kept) != u.from.backend_position() {
        return Ok(false);
    }
    let upsert_hour = tx.prepare(
        "INSERT INTO exception_hours (fingerprint, hour, n) VALUES ($1, $2, $3)
         ON CONFLICT (fingerprint, hour) DO UPDATE SET n = exception_hours.n + excluded.n",
    )?;
    let upsert_tag = tx.prepare(
        "INSERT INTO exception_tags AS t (fingerprint, kind, value, n, first_seen, last_seen)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (fingerprint, kind, value) DO UPDATE SET n = t.n + excluded.n,
            first_seen = LEAST(t.first_seen, excluded.first_seen),
            last_seen = GREATEST(t.last_seen, excluded.last_seen)",
    )?;
    for d in &u.exceptions {
        let current = status_of(&mut tx, &d.fingerprint, true)?;
        let (first_ts, last_ts) = (d.first_ts.as_nanos(), d.last_ts.as_nanos());
        match current {
            None => {
                tx.execute(
                    "INSERT INTO exception_groups (fingerprint, basis, kind, message, culprit,
                        first_seen, last_seen, count, first_id, last_id, last_run, last_trace,
                        state)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'unresolved')",
                    &[
                        &d.fingerprint,
                        &d.basis,
                        &d.kind,
                        &d.message,
                        &d.culprit,
                        &first_ts,
                        &last_ts,
                        &saturate(d.count),
                        &d.first_id,
                        &d.last_id,
                        &d.last_run,
                        &d.last_trace,
                    ],
                )?;
            }
            Some((n, status)) => {
                let after = n.saturating_add(d.count);
                let s = merged_status(&status, after, d);
                tx.execute(
                    "UPDATE exception_groups SET
                        first_seen = LEAST(first_seen, $2),
                        first_id = CASE WHEN $2 < first_seen THEN $3 ELSE first_id END,
                        last_run = CASE WHEN $4 >= last_seen THEN $6 ELSE last_run END,
                        last_trace = CASE WHEN $4 >= last_seen THEN $7 ELSE last_trace END,
                        last_id = CASE WHEN $4 >= last_seen THEN $5 ELSE last_id END,
                        last_seen = GREATEST(last_seen, $4),
                        count = $8,
                        state = $9, resolved_in = $10, changed = $11, ignore_until = $12,
                        ignore_until_count = $13
                      WHERE fingerprint = $1",
                    &[
                        &d.fingerprint,
                        &first_ts,
                        &d.first_id,
                        &last_ts,
                        &d.last_id,
                        &d.last_run,
                        &d.last_trace,
                        &saturate(after),
                        &s.state.as_str(),
                        &s.resolved_in,
                        &s.changed.map(Timestamp::as_nanos),
                        &s.ignore_until.map(Timestamp::as_nanos),
                        &s.ignore_until_count.map(saturate),
                    ],
                )?;
            }
        }
        for (hour, n) in &d.hours {
            tx.execute(&upsert_hour, &[&d.fingerprint, hour, &saturate(*n)])?;
        }
        for ((kind, value), t) in &d.tags {
            tx.execute(
                &upsert_tag,
                &[
                    &d.fingerprint,
                    &kind.as_str(),
                    value,
                    &saturate(t.count),
                    &t.first_ts.as_nanos(),
                    &t.last_ts.as_nanos(),
                ],
            )?;
        }
    }
    super::metrics::apply(&mut tx, &u.spans, &u.volume)?;
    super::alerts::apply(&mut tx, &u.tool_repeats)?;
    tx.execute(
        "UPDATE monitor_state SET cursor = $2, updated = $3 WHERE name = $1",
        &[&MONITOR, &saturate(u.to.backend_position()), &now],
    )?;
    tx.commit()?;
    Ok(true)
}

/// A group's count and status, its row locked when `lock`.
fn status_of(
    c: &mut impl GenericClient,
    fingerprint: &str,
    lock: bool,
) -> Result<Option<(u64, ExceptionStatus)>, StoreError> {
    let row = c.query_opt(
        &format!(
            "SELECT count, state, resolved_in, changed, ignore_until, ignore_until_count
               FROM exception_groups WHERE fingerprint = $1{}",
            if lock { " FOR UPDATE" } else { "" }
        ),
        &[&fingerprint],
    )?;
    row.map(|r| Ok((count(r.try_get(0)?), status_row(&r, 1)?)))
        .transpose()
}

/// The status in the five columns from `at`: state, resolved_in, changed,
/// ignore_until, ignore_until_count.
fn status_row(r: &Row, at: usize) -> Result<ExceptionStatus, StoreError> {
    let state: String = r.try_get(at)?;
    Ok(ExceptionStatus {
        state: ExceptionState::parse(&state).unwrap_or_default(),
        resolved_in: r.try_get(at + 1)?,
        changed: r.try_get::<_, Option<i64>>(at + 2)?.map(Timestamp),
        ignore_until: r.try_get::<_, Option<i64>>(at + 3)?.map(Timestamp),
        ignore_until_count: r.try_get::<_, Option<i64>>(at + 4)?.map(count),
    })
}

/// Applies a person's change; the group after it, `None` when there is no such group.
pub(super) fn change(
    client: &mut Client,
    fingerprint: &str,
    change: &ExceptionChange,
) -> Result<Option<ExceptionGroup>, StoreError> {
    let mut tx = client.transaction()?;
    let Some((n, status)) = status_of(&mut tx, fingerprint, true)? else {
        return Ok(None);
    };
    let now = Timestamp::now();
    if let ExceptionChange::Note { author, text } = change {
        tx.execute(
            "INSERT INTO exception_notes (fingerprint, ts, author, text) VALUES ($1, $2, $3, $4)",
            &[&fingerprint, &now.as_nanos(), author, text],
        )?;
    } else {
        let s = changed_status(&status, n, change, now);
        tx.execute(
            "UPDATE exception_groups SET state = $2, resolved_in = $3, changed = $4,
                ignore_until = $5, ignore_until_count = $6
              WHERE fingerprint = $1",
            &[
                &fingerprint,
                &s.state.as_str(),
                &s.resolved_in,
                &s.changed.map(Timestamp::as_nanos),
                &s.ignore_until.map(Timestamp::as_nanos),
                &s.ignore_until_count.map(saturate),
            ],
        )?;
    }
    let group = group(&mut tx, fingerprint)?;
    tx.commit()?;
    Ok(group)
}

const GROUP_COLUMNS: &str = "fingerprint, basis, kind, message, culprit, first_seen, last_seen,
    count, first_id, last_id, last_run, last_trace, state, resolved_in, changed,
    ignore_until, ignore_until_count,
    (SELECT count(*) FROM exception_tags t WHERE t.fingerprint = g.fingerprint AND t.kind = 'user') AS users";

fn group_row(r: &Row) -> Result<ExceptionGroup, StoreError> {
    let n = |i: usize| -> Result<u64, StoreError> { Ok(count(r.try_get(i)?)) };
    Ok(ExceptionGroup {
        fingerprint: r.try_get(0)?,
        basis: r.try_get(1)?,
        kind: r.try_get(2)?,
        message: r.try_get(3)?,
        culprit: r.try_get(4)?,
        first_seen: Timestamp(r.try_get(5)?),
        last_seen: Timestamp(r.try_get(6)?),
        count: n(7)?,
        first_id: r.try_get(8)?,
        last_id: r.try_get(9)?,
        last_run: r.try_get(10)?,
        last_trace: r.try_get(11)?,
        status: status_row(r, 12)?,
        users: n(17)?,
        services: Vec::new(),
        versions: Vec::new(),
    })
}

/// Fills a group's services and versions, the most frequent first.
fn with_tags(
    c: &mut impl GenericClient,
    mut g: ExceptionGroup,
) -> Result<ExceptionGroup, StoreError> {
    for row in c.query(
        "SELECT kind, value FROM exception_tags
          WHERE fingerprint = $1 AND kind IN ('service', 'version')
          ORDER BY n DESC, value LIMIT 40",
        &[&g.fingerprint],
    )? {
        let (kind, value): (String, String) = (row.try_get(0)?, row.try_get(1)?);
        let list = if kind == "service" {
            &mut g.services
        } else {
            &mut g.versions
        };
        if list.len() < 20 {
            list.push(value);
        }
    }
    Ok(g)
}

fn group(
    c: &mut impl GenericClient,
    fingerprint: &str,
) -> Result<Option<ExceptionGroup>, StoreError> {
    let row = c.query_opt(
        &format!("SELECT {GROUP_COLUMNS} FROM exception_groups g WHERE fingerprint = $1"),
        &[&fingerprint],
    )?;
    match row {
        Some(r) => {
            let g = group_row(&r)?;
            Ok(Some(with_tags(c, g)?))
        }
        None => Ok(None),
    }
}

/// Groups matching `f`.
pub(super) fn groups(
    c: &mut Client,
    f: &ExceptionFilter,
) -> Result<Vec<ExceptionGroup>, StoreError> {
    let mut sql = format!("SELECT {GROUP_COLUMNS} FROM exception_groups g WHERE true");
    let mut args: Vec<Box<dyn ToSql + Sync>> = Vec::new();
    let arg = |v: Box<dyn ToSql + Sync>, args: &mut Vec<Box<dyn ToSql + Sync>>| {
        args.push(v);
        format!("${}", args.len())
    };
    if let Some(prefix) = &f.fingerprint_prefix {
        let p = arg(Box::new(prefix.clone()), &mut args);
        sql.push_str(&format!(" AND left(fingerprint, length({p})) = {p}"));
    }
    if !f.states.is_empty() {
        let states: Vec<String> = f.states.iter().map(|s| s.as_str().to_owned()).collect();
        let p = arg(Box::new(states), &mut args);
        sql.push_str(&format!(" AND state = ANY({p}::text[])"));
    }
    if let Some(service) = &f.service {
        let p = arg(Box::new(service.clone()), &mut args);
        sql.push_str(&format!(
            " AND EXISTS (SELECT 1 FROM exception_tags t WHERE t.fingerprint = g.fingerprint
                           AND t.kind = 'service' AND t.value = {p})"
        ));
    }
    if let Some(text) = &f.text {
        let p = arg(Box::new(text.clone()), &mut args);
        sql.push_str(&format!(
            " AND strpos(lower(kind || ' ' || message || ' ' || culprit), lower({p})) > 0"
        ));
    }
    if let Some(since) = f.since {
        let p = arg(Box::new(since.as_nanos()), &mut args);
        sql.push_str(&format!(" AND last_seen >= {p}"));
    }
    sql.push_str(match f.sort {
        ExceptionSort::LastSeen => " ORDER BY g.last_seen DESC, g.fingerprint",
        ExceptionSort::Count => " ORDER BY g.count DESC, g.fingerprint",
        ExceptionSort::FirstSeen => " ORDER BY g.first_seen DESC, g.fingerprint",
    });
    sql.push_str(&format!(" LIMIT {}", f.limit.max(1)));
    let refs: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a.as_ref()).collect();
    let rows = c.query(&sql, &refs)?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let g = group_row(r)?;
        out.push(with_tags(c, g)?);
    }
    Ok(out)
}

/// One group with its trend (hours of the last 14 days it was seen in), tags and notes.
pub(super) fn detail(
    c: &mut Client,
    fingerprint: &str,
) -> Result<Option<ExceptionDetail>, StoreError> {
    let Some(group) = group(c, fingerprint)? else {
        return Ok(None);
    };
    let since = group.last_seen.as_nanos().div_euclid(HOUR_NS) - 14 * 24;
    let trend = c
        .query(
            "SELECT hour, n FROM exception_hours WHERE fingerprint = $1 AND hour >= $2 ORDER BY hour",
            &[&fingerprint, &since],
        )?
        .iter()
        .map(|r| {
            Ok((
                Timestamp(r.try_get::<_, i64>(0)?.saturating_mul(HOUR_NS)),
                count(r.try_get(1)?),
            ))
        })
        .collect::<Result<_, StoreError>>()?;
    let tags = c
        .query(
            "SELECT kind, value, n, first_seen, last_seen FROM (
                SELECT *, row_number() OVER (PARTITION BY kind ORDER BY n DESC, value) AS rank
                  FROM exception_tags WHERE fingerprint = $1) t
              WHERE rank <= 100 ORDER BY kind, n DESC, value",
            &[&fingerprint],
        )?
        .iter()
        .map(|r| {
            let kind: String = r.try_get(0)?;
            Ok(ExceptionTag {
                kind: TagKind::parse(&kind).unwrap_or(TagKind::Service),
                value: r.try_get(1)?,
                count: count(r.try_get(2)?),
                first_seen: Timestamp(r.try_get(3)?),
                last_seen: Timestamp(r.try_get(4)?),
            })
        })
        .collect::<Result<_, StoreError>>()?;
    let notes = c
        .query(
            "SELECT ts, author, text FROM exception_notes WHERE fingerprint = $1 ORDER BY ts, id",
            &[&fingerprint],
        )?
        .iter()
        .map(|r| {
            Ok(ExceptionNote {
                ts: Timestamp(r.try_get(0)?),
                author: r.try_get(1)?,
                text: r.try_get(2)?,
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(Some(ExceptionDetail {
        group,
        trend,
        tags,
        notes,
    }))
}

/// Takes a DSAR subject out of the groups: a user's tag rows, and first messages
/// that name the subject.
pub(super) fn forget(client: &mut Client, subject: &Subject) -> Result<u64, StoreError> {
    let mut tx = client.transaction()?;
    let mut changed = 0;
    if let Subject::User(user) = subject {
        changed += tx.execute(
            "DELETE FROM exception_tags WHERE kind = 'user' AND value = $1",
            &[user],
        )?;
    }
    changed += tx.execute(
        "UPDATE exception_groups SET message = $1 WHERE strpos(message, $2) > 0",
        &[&FORGOTTEN, &subject.value()],
    )?;
    // The loop detector's counts of runs the deletion took (their tool arguments).
    changed += tx.execute(
        "DELETE FROM tool_repeats WHERE NOT EXISTS
            (SELECT 1 FROM runs r WHERE r.run_id = tool_repeats.run_id)",
        &[],
    )?;
    tx.commit()?;
    Ok(changed)
}
