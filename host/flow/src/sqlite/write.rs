//! Writes that count bytes: each moves its run's and its tenant's bytes in
//! the same transaction, after checking the bounds. A transaction's records
//! are tallied ([`Tally`]): each is checked with the counts the records
//! before it left, and the counts are written once, at the end.

use crate::store::{ALL, Finished, FlowBounds, RunRecord, RunStatus, StepRecord};
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

/// A run's bytes with its steps' and journals', as a column of `runs`: kept
/// beside its tenant's in `tenant_bytes` while it runs (a step's commit then
/// writes one page for both), in its own row once it has ended.
macro_rules! run_bytes {
    () => {
        "COALESCE((SELECT t.bytes FROM tenant_bytes t WHERE t.tenant = runs.tenant AND t.run = runs.id), runs.bytes)"
    };
}

/// [`run_bytes!`], for statements put together at run time.
pub(super) const RUN_BYTES: &str = run_bytes!();

/// A run's row as a transaction found it.
struct Stored {
    owner: String,
    tenant: String,
    /// Its bytes with its steps' and journals' ([`RUN_BYTES`]).
    bytes: u64,
    /// Its record's own size.
    size: u64,
    /// Whether it was running: where its bytes are kept.
    running: bool,
}

/// The bytes one transaction's writes move, for one run (when it is stored)
/// and one tenant (and every tenant together, [`ALL`]).
pub(super) struct Tally<'a> {
    run: Option<&'a str>,
    stored: Option<Stored>,
    tenant: String,
    /// What `tenant_bytes` held for the bounded tenant when first asked.
    counted: Option<u64>,
    /// The bytes added so far (negative when records shrank).
    delta: i64,
    /// Whether the run's record this transaction wrote is running.
    running: Option<bool>,
}

impl<'a> Tally<'a> {
    /// A tally for `tenant` alone (a dead letter, a question).
    pub(super) fn tenant(tenant: &str) -> Tally<'a> {
        Tally { run: None, stored: None, tenant: tenant.to_string(), counted: None, delta: 0, running: None }
    }

    /// A tally for run `run`, reading its row once; its tenant is the row's,
    /// else `tenant` (a run not stored yet).
    pub(super) fn run(c: &Connection, run: &'a str, tenant: Option<&str>) -> Result<Tally<'a>, String> {
        let stored = c
            .prepare_cached(concat!(
                "SELECT owner, tenant, ",
                run_bytes!(),
                ", size, status = 'running' FROM runs WHERE id = ?1"
            ))
            .and_then(|mut s| {
                s.query_row(params![run], |r| {
                    Ok(Stored {
                        owner: r.get(0)?,
                        tenant: r.get(1)?,
                        bytes: r.get::<_, i64>(2)?.max(0) as u64,
                        size: r.get::<_, i64>(3)?.max(0) as u64,
                        running: r.get(4)?,
                    })
                })
                .optional()
            })
            .map_err(db)?;
        let tenant = stored.as_ref().map(|s| s.tenant.as_str()).or(tenant).unwrap_or_default().to_string();
        Ok(Tally { run: Some(run), stored, tenant, counted: None, delta: 0, running: None })
    }

    /// Refuses a write by `holder` to the run when another holds it.
    pub(super) fn fence(&self, holder: &str) -> Result<(), String> {
        match (self.run, &self.stored) {
            (Some(run), Some(s)) if s.owner != holder => Err(crate::lease::lost(run, holder, &s.owner)),
            _ => Ok(()),
        }
    }

    /// Whether the run is stored.
    pub(super) fn stored(&self) -> bool {
        self.stored.is_some()
    }

    /// The size of the run's own record as stored (0 when it is not).
    fn run_size(&self) -> u64 {
        self.stored.as_ref().map_or(0, |s| s.size)
    }

    /// Counts `what` going from `old` to `new` bytes, checking `bounds`
    /// first when it grows.
    pub(super) fn add(
        &mut self,
        c: &Connection,
        bounds: Option<&FlowBounds>,
        what: &(impl std::fmt::Display + ?Sized),
        (old, new): (u64, u64),
    ) -> Result<(), String> {
        if let Some(bounds) = bounds
            && new > old
        {
            let counted = match self.counted {
                Some(n) => n,
                None => {
                    let sql = "SELECT bytes FROM tenant_bytes WHERE tenant = ?1 AND run = ''";
                    *self.counted.insert(size_in(c, sql, params![bounds.counted(&self.tenant)])?)
                }
            };
            let now = |n: u64| n.saturating_add_signed(self.delta);
            let run = self.run.zip(self.stored.as_ref().map(|s| now(s.bytes)));
            bounds.check(what, run, (&self.tenant, now(counted)), new - old)?;
        }
        self.delta += new as i64 - old as i64;
        Ok(())
    }

    /// Writes what was counted: the run's bytes, its tenant's and every tenant's.
    pub(super) fn write(self, c: &Connection) -> Result<(), String> {
        if let Some(run) = self.run {
            self.write_run_bytes(c, run)?;
        }
        if self.delta == 0 {
            return Ok(());
        }
        let mut add = c
            .prepare_cached(
                "INSERT INTO tenant_bytes (tenant, run, bytes) VALUES (?1, '', MAX(0, ?2))
                 ON CONFLICT (tenant, run) DO UPDATE SET bytes = MAX(0, tenant_bytes.bytes + ?2)",
            )
            .map_err(db)?;
        for counted in [self.tenant.as_str(), ALL] {
            add.execute(params![counted, self.delta]).map_err(db)?;
        }
        Ok(())
    }

    /// Keeps the run's bytes beside its tenant's while it runs, and moves
    /// them to its row when it ends (or back, when it runs again).
    fn write_run_bytes(&self, c: &Connection, run: &str) -> Result<(), String> {
        let was = self.stored.as_ref().map(|s| s.running);
        let Some(now) = self.running.or(was) else { return Ok(()) };
        if was == Some(now) && self.delta == 0 {
            return Ok(());
        }
        let bytes = self.stored.as_ref().map_or(0, |s| s.bytes).saturating_add_signed(self.delta) as i64;
        let exec = |sql: &str, args: &[&dyn rusqlite::ToSql]| {
            c.prepare_cached(sql).and_then(|mut s| s.execute(args)).map_err(db).map(drop)
        };
        let in_row = "UPDATE runs SET bytes = ?2 WHERE id = ?1";
        match (was, now) {
            (_, true) => exec(
                "INSERT INTO tenant_bytes (tenant, run, bytes) VALUES (?1, ?2, ?3)
                 ON CONFLICT (tenant, run) DO UPDATE SET bytes = excluded.bytes",
                params![self.tenant, run, bytes],
            ),
            // A record just made: its row counts its size.
            (None, false) => Ok(()),
            (Some(true), false) => {
                exec("DELETE FROM tenant_bytes WHERE tenant = ?1 AND run = ?2", params![self.tenant, run])?;
                exec(in_row, params![run, bytes])
            }
            (Some(false), false) => exec(in_row, params![run, bytes]),
        }
    }
}

/// Moves `tenant`'s bytes (and every tenant's) from `old` to `new`,
/// checking `bounds` first when it grows: a record of no run.
pub(super) fn charge(
    c: &Connection,
    bounds: Option<&FlowBounds>,
    what: &(impl std::fmt::Display + ?Sized),
    tenant: &str,
    sizes: (u64, u64),
) -> Result<(), String> {
    let mut tally = Tally::tenant(tenant);
    tally.add(c, bounds, what, sizes)?;
    tally.write(c)
}

/// Writes `run`'s record, counting its size, checked against `bounds` when given.
pub(super) fn write_run(
    c: &Connection,
    tally: &mut Tally<'_>,
    bounds: Option<&FlowBounds>,
    run: &RunRecord,
) -> Result<(), String> {
    let data = to_json(run)?;
    let what = if run.output.is_some() { "the run's output".to_string() } else { format!("run {}", run.id) };
    tally.add(c, bounds, &what, (tally.run_size(), size(&data)))?;
    tally.running = Some(run.status == RunStatus::Running);
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

pub(super) fn write_step(
    c: &Connection,
    tally: &mut Tally<'_>,
    bounds: &FlowBounds,
    run: &str,
    step: &StepRecord,
) -> Result<(), String> {
    write_step_row(c, tally, bounds, run, step, None)
}

pub(super) fn write_journal(
    c: &Connection,
    tally: &mut Tally<'_>,
    bounds: &FlowBounds,
    (run, step, attempt): (&str, &str, u32),
    entries: &[Entry],
) -> Result<(), String> {
    let data = to_json(&entries)?;
    let old = size_in(c, "SELECT journal_size FROM steps WHERE run = ?1 AND path = ?2", params![run, step])?;
    let what = format_args!("the journal of step {step}");
    tally.add(c, Some(bounds), &what, (old, size(&data)))?;
    c.prepare_cached(
        "INSERT INTO steps (run, path, attempt, journal, journal_size) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (run, path) DO UPDATE SET attempt = excluded.attempt, journal = excluded.journal,
            journal_size = excluded.journal_size",
    )
    .and_then(|mut s| s.execute(params![run, step, attempt, data, size(&data) as i64]))
    .map_err(db)
    .map(drop)
}

/// Writes a step's row: its checkpoint, and its journal when given (an
/// attempt that finished), in one statement. The journal is counted first,
/// as it is made first.
pub(super) fn write_step_row(
    c: &Connection,
    tally: &mut Tally<'_>,
    bounds: &FlowBounds,
    run: &str,
    step: &StepRecord,
    journal: Option<&[Entry]>,
) -> Result<(), String> {
    let data = to_json(step)?;
    let checkpoint = format_args!("the checkpoint of step {}", step.path);
    if journal.is_none() {
        // A step starting has no row yet, mostly: written in one statement,
        // then counted (a refusal rolls the transaction back, the row with it).
        let inserted = c
            .prepare_cached(
                "INSERT INTO steps (run, path, seq, data, size) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (run, path) DO NOTHING",
            )
            .and_then(|mut s| s.execute(params![run, step.path, step.seq as i64, data, size(&data) as i64]))
            .map_err(db)?;
        if inserted == 1 {
            return tally.add(c, Some(bounds), &checkpoint, (0, size(&data)));
        }
    }
    let (old, old_journal) = c
        .prepare_cached("SELECT size, journal_size FROM steps WHERE run = ?1 AND path = ?2")
        .and_then(|mut s| {
            s.query_row(params![run, step.path], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))).optional()
        })
        .map_err(db)?
        .map_or((0, 0), |(a, b)| (a.max(0) as u64, b.max(0) as u64));
    let Some(journal) = journal else {
        tally.add(c, Some(bounds), &checkpoint, (old, size(&data)))?;
        return c
            .prepare_cached(
                "INSERT INTO steps (run, path, seq, data, size) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (run, path) DO UPDATE SET seq = excluded.seq, data = excluded.data, size = excluded.size",
            )
            .and_then(|mut s| s.execute(params![run, step.path, step.seq as i64, data, size(&data) as i64]))
            .map_err(db)
            .map(drop);
    };
    let entries = to_json(&journal)?;
    tally.add(c, Some(bounds), &format_args!("the journal of step {}", step.path), (old_journal, size(&entries)))?;
    tally.add(c, Some(bounds), &checkpoint, (old, size(&data)))?;
    c.prepare_cached(
        "INSERT OR REPLACE INTO steps (run, path, seq, data, size, attempt, journal, journal_size)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .and_then(|mut s| {
        s.execute(params![
            run,
            step.path,
            step.seq as i64,
            data,
            size(&data) as i64,
            step.attempt,
            entries,
            size(&entries) as i64
        ])
    })
    .map_err(db)
    .map(drop)
}

/// Writes finished attempts of `run`: each one's journal with its checkpoint.
pub(super) fn write_done(
    c: &Connection,
    tally: &mut Tally<'_>,
    bounds: &FlowBounds,
    run: &str,
    done: &[Finished],
) -> Result<(), String> {
    for (step, journal) in done {
        write_step_row(c, tally, bounds, run, step, Some(journal))?;
    }
    Ok(())
}
