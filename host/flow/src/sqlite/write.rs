//! Writes that count bytes: each moves its run's and its tenant's bytes in
//! the same transaction, after checking the bounds.

use crate::store::{ALL, Finished, FlowBounds, RunRecord, StepRecord};
use paddock_journal::Entry;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub(super) fn db(e: rusqlite::Error) -> String {
    format!("flow store: {e}")
}

pub(super) fn to_json<T: Serialize>(v: &T) -> Result<String, String> {
    serde_json::to_string(v).map_err(|e| format!("flow store: {e}"))
}

pub(super) fn from_json<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    serde_json::from_str(text).map_err(|e| format!("flow store: a damaged record: {e}"))
}

pub(super) fn size(data: &str) -> u64 {
    data.len() as u64
}

/// The bytes stored for `key` in `table` (0 when there is no such row).
pub(super) fn size_in(c: &Connection, sql: &str, key: impl rusqlite::Params) -> Result<u64, String> {
    let n: Option<i64> =
        c.prepare_cached(sql).and_then(|mut s| s.query_row(key, |r| r.get(0)).optional()).map_err(db)?;
    Ok(n.unwrap_or(0).max(0) as u64)
}

/// Moves the bytes of `run` (when it is stored), of its tenant (or of
/// `tenant`) and of every tenant together ([`ALL`]) from `old` to `new`,
/// checking `bounds` first when it grows.
pub(super) fn charge(
    c: &Connection,
    bounds: Option<&FlowBounds>,
    what: &str,
    run: Option<&str>,
    tenant: Option<&str>,
    (old, new): (u64, u64),
) -> Result<(), String> {
    let stored: Option<(String, i64)> = match run {
        Some(run) => c
            .prepare_cached("SELECT tenant, bytes FROM runs WHERE id = ?1")
            .and_then(|mut s| s.query_row(params![run], |r| Ok((r.get(0)?, r.get(1)?))).optional())
            .map_err(db)?,
        None => None,
    };
    let tenant = tenant.or(stored.as_ref().map(|s| s.0.as_str())).unwrap_or_default();
    if let Some(bounds) = bounds
        && new > old
    {
        let now = size_in(c, "SELECT bytes FROM tenant_bytes WHERE tenant = ?1", params![bounds.counted(tenant)])?;
        let run = run.zip(stored.as_ref().map(|s| s.1.max(0) as u64));
        bounds.check(what, run, (tenant, now), new - old)?;
    }
    let delta = new as i64 - old as i64;
    if delta == 0 {
        return Ok(());
    }
    if let (Some(run), Some(_)) = (run, &stored) {
        c.prepare_cached("UPDATE runs SET bytes = MAX(0, bytes + ?2) WHERE id = ?1")
            .and_then(|mut s| s.execute(params![run, delta]))
            .map_err(db)?;
    }
    let mut add = c
        .prepare_cached(
            "INSERT INTO tenant_bytes (tenant, bytes) VALUES (?1, MAX(0, ?2))
             ON CONFLICT (tenant) DO UPDATE SET bytes = MAX(0, tenant_bytes.bytes + ?2)",
        )
        .map_err(db)?;
    for counted in [tenant, ALL] {
        add.execute(params![counted, delta]).map_err(db)?;
    }
    Ok(())
}

/// Writes `run`'s record, counting its size, checked against `bounds` when given.
/// Refuses a write by `holder` to `run` when another holds it.
pub(super) fn fence(c: &Connection, run: &str, holder: &str) -> Result<(), String> {
    let owner: Option<String> = c
        .prepare_cached("SELECT owner FROM runs WHERE id = ?1")
        .and_then(|mut s| s.query_row(params![run], |r| r.get(0)).optional())
        .map_err(db)?;
    match owner {
        Some(owner) if owner != holder => Err(crate::lease::lost(run, holder, &owner)),
        _ => Ok(()),
    }
}

pub(super) fn write_run(c: &Connection, bounds: Option<&FlowBounds>, run: &RunRecord) -> Result<(), String> {
    let data = to_json(run)?;
    let old = size_in(c, "SELECT size FROM runs WHERE id = ?1", params![run.id])?;
    let what = if run.output.is_some() { "the run's output".to_string() } else { format!("run {}", run.id) };
    charge(c, bounds, &what, Some(&run.id), Some(&run.tenant), (old, size(&data)))?;
    c.prepare_cached(
        "INSERT INTO runs (id, created, data, tenant, flow, status, updated, error, size, bytes, owner, heartbeat)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10, ?11)
         ON CONFLICT (id) DO UPDATE SET created = excluded.created, data = excluded.data, tenant = excluded.tenant,
            flow = excluded.flow, status = excluded.status, updated = excluded.updated, error = excluded.error,
            size = excluded.size, owner = excluded.owner, heartbeat = excluded.heartbeat",
    )
    .and_then(|mut s| {
        s.execute(params![
            run.id,
            run.created_ms as i64,
            data,
            run.tenant,
            run.flow,
            run.status.word(),
            run.updated_ms as i64,
            run.error,
            size(&data) as i64,
            run.owner,
            run.heartbeat_ms as i64
        ])
    })
    .map_err(db)
    .map(drop)
}

pub(super) fn write_step(c: &Connection, bounds: &FlowBounds, run: &str, step: &StepRecord) -> Result<(), String> {
    let data = to_json(step)?;
    let old = size_in(c, "SELECT size FROM steps WHERE run = ?1 AND path = ?2", params![run, step.path])?;
    let what = format!("the checkpoint of step {}", step.path);
    charge(c, Some(bounds), &what, Some(run), None, (old, size(&data)))?;
    c.prepare_cached("INSERT OR REPLACE INTO steps (run, path, seq, data, size) VALUES (?1, ?2, ?3, ?4, ?5)")
        .and_then(|mut s| s.execute(params![run, step.path, step.seq as i64, data, size(&data) as i64]))
        .map_err(db)
        .map(drop)
}

pub(super) fn write_journal(
    c: &Connection,
    bounds: &FlowBounds,
    run: &str,
    step: &str,
    attempt: u32,
    entries: &[Entry],
) -> Result<(), String> {
    let data = to_json(&entries)?;
    let old = size_in(c, "SELECT size FROM journals WHERE run = ?1 AND path = ?2", params![run, step])?;
    let what = format!("the journal of step {step}");
    charge(c, Some(bounds), &what, Some(run), None, (old, size(&data)))?;
    c.prepare_cached("INSERT OR REPLACE INTO journals (run, path, attempt, data, size) VALUES (?1, ?2, ?3, ?4, ?5)")
        .and_then(|mut s| s.execute(params![run, step, attempt, data, size(&data) as i64]))
        .map_err(db)
        .map(drop)
}

/// Writes finished attempts of `run`: each one's journal, then its checkpoint.
pub(super) fn write_done(c: &Connection, bounds: &FlowBounds, run: &str, done: &[Finished]) -> Result<(), String> {
    for (step, journal) in done {
        write_journal(c, bounds, run, &step.path, step.attempt, journal)?;
        write_step(c, bounds, run, step)?;
    }
    Ok(())
}
