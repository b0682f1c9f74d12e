//! Writes that count bytes, on PostgreSQL: as `sqlite/write.rs`, with the
//! rows a check reads locked first, so hosts writing at once stay within the
//! bounds.

use crate::store::{ALL, FlowBounds, RunRecord, StepRecord};
use paddock_postgres::Transaction;
use std::sync::LazyLock;
use tokio_postgres::types::ToSql;

pub(super) fn db(e: tokio_postgres::Error) -> String {
    format!("flow store: {}", paddock_postgres::describe(&e))
}

pub(super) fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(super) fn uint(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// The first column of the row `sql` finds, as a count of bytes (0 when none).
pub(super) async fn size_in(tx: &Transaction<'_>, sql: &str, args: &[&(dyn ToSql + Sync)]) -> Result<u64, String> {
    let statement = tx.prepare_cached(sql).await.map_err(db)?;
    Ok(tx.query_opt(&statement, args).await.map_err(db)?.map_or(0, |r| uint(r.get(0))))
}

/// Moves the bytes of `run` (when it is stored), of its tenant (or of
/// `tenant`) and of every tenant together ([`ALL`]) from `old` to `new`,
/// checking `bounds` first when it grows. The counted rows are locked
/// before they are read (the tenant's, then the sum's), so two hosts cannot
/// both pass a bound with room for one.
pub(super) async fn charge(
    tx: &Transaction<'_>,
    (bounds, shared): (Option<&FlowBounds>, bool),
    what: &(impl std::fmt::Display + ?Sized),
    run: Option<&str>,
    tenant: Option<&str>,
    (old, new): (u64, u64),
) -> Result<(), String> {
    let stored: Option<(String, u64)> = match run {
        Some(run) => {
            let statement = tx.prepare_cached("SELECT tenant, bytes FROM flow_runs WHERE id = $1").await.map_err(db)?;
            tx.query_opt(&statement, &[&run]).await.map_err(db)?.map(|r| (r.get(0), uint(r.get(1))))
        }
        None => None,
    };
    let tenant = tenant.or(stored.as_ref().map(|s| s.0.as_str())).unwrap_or_default();
    let lock = tx
        .prepare_cached(
            "INSERT INTO flow_tenant_bytes (tenant, bytes) VALUES ($1, 0)
             ON CONFLICT (tenant) DO UPDATE SET bytes = flow_tenant_bytes.bytes RETURNING bytes",
        )
        .await
        .map_err(db)?;
    // The tenant's row before the sum's, the order every write takes them in
    // (`charge_held` too), so two writes never wait for each other's.
    let own = uint(tx.query_one(&lock, &[&tenant]).await.map_err(db)?.get(0));
    let now = if shared { uint(tx.query_one(&lock, &[&ALL]).await.map_err(db)?.get(0)) } else { own };
    if let Some(bounds) = bounds
        && new > old
    {
        let run = run.zip(stored.as_ref().map(|s| s.1));
        bounds.check(what, run, (tenant, now), new - old)?;
    }
    let delta = new as i64 - old as i64;
    if delta == 0 {
        return Ok(());
    }
    if let (Some(run), Some(_)) = (run, &stored) {
        let statement = tx
            .prepare_cached("UPDATE flow_runs SET bytes = greatest(0, bytes + $2) WHERE id = $1")
            .await
            .map_err(db)?;
        tx.execute(&statement, &[&run, &delta]).await.map_err(db)?;
    }
    let add = tx
        .prepare_cached(
            "INSERT INTO flow_tenant_bytes (tenant, bytes) VALUES ($1, greatest(0, $2::bigint))
             ON CONFLICT (tenant) DO UPDATE SET bytes = greatest(0, flow_tenant_bytes.bytes + $2)",
        )
        .await
        .map_err(db)?;
    tx.execute(&add, &[&tenant, &delta]).await.map_err(db)?;
    if shared {
        tx.execute(&add, &[&ALL, &delta]).await.map_err(db)?;
    }
    Ok(())
}

/// The tail of a statement that moves the bytes of run `$1`, held by `$2`,
/// and of its tenant (and of every tenant, `$3`, when `$4`) by `delta` (a
/// `WITH d AS (SELECT ... AS delta)` before it). It is also the fence: it
/// moves nothing unless `$2` holds the run, or an item of it it claimed (a
/// fan-out's item runs on any host). Its row locks are the last a write
/// takes, so writes of one run's steps (a fan-out's items) queue only for a
/// statement and a commit, not for a whole transaction.
const MOVE: &str = "r AS (UPDATE flow_runs SET bytes = greatest(0, bytes + (SELECT delta FROM d))
            WHERE id = $1 AND (owner = $2 OR EXISTS (SELECT 1 FROM flow_work w
                WHERE w.run = $1 AND w.holder = $2 AND w.state = 'claimed'))
            RETURNING bytes, tenant),
      t AS (INSERT INTO flow_tenant_bytes (tenant, bytes) SELECT r.tenant, greatest(0, d.delta) FROM r, d
            ON CONFLICT (tenant) DO UPDATE SET bytes = greatest(0, flow_tenant_bytes.bytes + (SELECT delta FROM d))
            RETURNING bytes),
      a AS (UPDATE flow_tenant_bytes SET bytes = greatest(0, bytes + (SELECT delta FROM d))
            WHERE tenant = $3 AND $4 AND EXISTS (SELECT 1 FROM r) RETURNING bytes)
 SELECT r.bytes, r.tenant, (SELECT bytes FROM t), (SELECT bytes FROM a), (SELECT delta FROM d) FROM r";

/// Moves the bytes of `run`, held by `holder`, and of its tenant from `old`
/// to `new` in one statement ([`MOVE`]), then checks `bounds` when they grew
/// (a refusal rolls the transaction back).
pub(super) async fn charge_held(
    tx: &Transaction<'_>,
    (bounds, shared): (&FlowBounds, bool),
    what: &(impl std::fmt::Display + ?Sized),
    (run, holder): (&str, &str),
    (old, new): (u64, u64),
) -> Result<(), String> {
    static SQL: LazyLock<String> = LazyLock::new(|| format!("WITH d AS (SELECT $5::bigint AS delta), {MOVE}"));
    let delta = new as i64 - old as i64;
    let statement = tx.prepare_cached(&SQL).await.map_err(db)?;
    let row = tx.query_opt(&statement, &[&run, &holder, &ALL, &shared, &delta]).await.map_err(db)?;
    moved(tx, (bounds, shared), what, (run, holder), row).await
}

/// What a statement ending in [`MOVE`] found: refused when no holder's row
/// moved (the run is another host's now) or past `bounds` when it grew.
async fn moved(
    tx: &Transaction<'_>,
    (bounds, shared): (&FlowBounds, bool),
    what: &(impl std::fmt::Display + ?Sized),
    (run, holder): (&str, &str),
    row: Option<tokio_postgres::Row>,
) -> Result<(), String> {
    let Some(row) = row else {
        // Not moved: the run is another host's now, or there is no such run.
        return fence(tx, run, holder).await;
    };
    let delta: i64 = row.get(4);
    if delta <= 0 {
        return Ok(());
    }
    let before = |after: Option<i64>| uint(after.unwrap_or(0)).saturating_sub(delta as u64);
    let tenant: &str = row.get(1);
    let counted = if shared { row.get::<_, Option<i64>>(3) } else { row.get::<_, Option<i64>>(2) };
    bounds.check(what, Some((run, before(Some(row.get(0))))), (tenant, before(counted)), delta as u64)
}

/// Rings `key` ([`Doorbells`](crate::bells::Doorbells)) on every host
/// listening on the store's channel, when `tx` commits.
pub(super) async fn notify(tx: &Transaction<'_>, key: &str) -> Result<(), String> {
    let statement = tx.prepare_cached("SELECT pg_notify($1, $2)").await.map_err(db)?;
    tx.execute(&statement, &[&super::CHANNEL, &key]).await.map_err(db).map(drop)
}

/// Refuses a write by `holder` to `run` when another holds it; locks the
/// run's row, so one run's writes queue on every host.
pub(super) async fn fence(tx: &Transaction<'_>, run: &str, holder: &str) -> Result<(), String> {
    let statement = tx.prepare_cached("SELECT owner FROM flow_runs WHERE id = $1 FOR UPDATE").await.map_err(db)?;
    let owner: Option<String> = tx.query_opt(&statement, &[&run]).await.map_err(db)?.map(|r| r.get(0));
    match owner {
        Some(owner) if owner != holder => Err(crate::lease::lost(run, holder, &owner)),
        _ => Ok(()),
    }
}

/// Writes `run`'s record (as JSON `data`), counting its size, checked
/// against `bounds` when given.
pub(super) async fn write_run(
    tx: &Transaction<'_>,
    bounds: (Option<&FlowBounds>, bool),
    run: &RunRecord,
    data: &str,
) -> Result<(), String> {
    let old = size_in(tx, "SELECT size FROM flow_runs WHERE id = $1", &[&run.id]).await?;
    let what = if run.output.is_some() { "the run's output".to_string() } else { format!("run {}", run.id) };
    charge(tx, bounds, &what, Some(&run.id), Some(&run.tenant), (old, data.len() as u64)).await?;
    let statement = tx
        .prepare_cached(
            "INSERT INTO flow_runs (id, created, data, tenant, flow, status, updated, error, size, bytes, owner, heartbeat)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11)
             ON CONFLICT (id) DO UPDATE SET created = EXCLUDED.created, data = EXCLUDED.data,
                tenant = EXCLUDED.tenant, flow = EXCLUDED.flow, status = EXCLUDED.status, updated = EXCLUDED.updated,
                error = EXCLUDED.error, size = EXCLUDED.size, owner = EXCLUDED.owner, heartbeat = EXCLUDED.heartbeat",
        )
        .await
        .map_err(db)?;
    let values: [&(dyn ToSql + Sync); 11] = [
        &run.id,
        &int(run.created_ms),
        &data,
        &run.tenant,
        &run.flow,
        &run.status.word(),
        &int(run.updated_ms),
        &run.error,
        &int(data.len() as u64),
        &run.owner,
        &int(run.heartbeat_ms),
    ];
    tx.execute(&statement, &values).await.map_err(db).map(drop)
}

/// A statement writing a record of run `$1` to `table` (keyed by run and
/// path `$5`; its size `$6`, `col` `$7`, data `$8`) and moving the bytes
/// ([`MOVE`]) by what its size changed: one round trip a record.
fn record_sql(table: &str, col: &str) -> String {
    format!(
        "WITH old AS (SELECT size FROM {table} WHERE run = $1 AND path = $5),
              kept AS (INSERT INTO {table} (run, path, {col}, data, size) VALUES ($1, $5, $7, $8, $6)
                       ON CONFLICT (run, path) DO UPDATE SET {col} = EXCLUDED.{col}, data = EXCLUDED.data,
                          size = EXCLUDED.size),
              d AS (SELECT $6::bigint - coalesce((SELECT size FROM old), 0) AS delta),
              {MOVE}"
    )
}

/// Writes a record of `run` (held by `holder`) with [`record_sql`] and
/// checks what it moved.
async fn write_record(
    tx: &Transaction<'_>,
    (bounds, shared): (&FlowBounds, bool),
    (run, holder): (&str, &str),
    (sql, what): (&str, String),
    (path, n, data): (&str, i64, &str),
) -> Result<(), String> {
    let statement = tx.prepare_cached(sql).await.map_err(db)?;
    let size = int(data.len() as u64);
    let row = tx.query_opt(&statement, &[&run, &holder, &ALL, &shared, &path, &size, &n, &data]).await.map_err(db)?;
    moved(tx, (bounds, shared), &what, (run, holder), row).await
}

/// Writes `step`'s checkpoint of run `run` (held by `holder`), counting its size.
pub(super) async fn write_step(
    tx: &Transaction<'_>,
    bounds: (&FlowBounds, bool),
    held: (&str, &str),
    step: &StepRecord,
    data: &str,
) -> Result<(), String> {
    static SQL: LazyLock<String> = LazyLock::new(|| record_sql("flow_steps", "seq"));
    let what = format!("the checkpoint of step {}", step.path);
    write_record(tx, bounds, held, (&SQL, what), (&step.path, int(step.seq), data)).await
}

/// Writes the journal of `step` of run `run` (held by `holder`), counting its size.
pub(super) async fn write_journal(
    tx: &Transaction<'_>,
    bounds: (&FlowBounds, bool),
    (run, holder, step, attempt): (&str, &str, &str, u32),
    data: &str,
) -> Result<(), String> {
    static SQL: LazyLock<String> = LazyLock::new(|| record_sql("flow_journals", "attempt"));
    let what = format!("the journal of step {step}");
    write_record(tx, bounds, (run, holder), (&SQL, what), (step, i64::from(attempt), data)).await
}
