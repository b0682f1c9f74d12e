//! The durable flow store: SQLite in WAL mode at `<host.data>/flows.sqlite`.
//!
//! SQLite rather than redb because other processes must read and write it
//! while a run goes on: `paddock approve`, `paddock dlq`, `paddock flow
//! status`. Records are kept as JSON, keyed by what they are looked up by; a
//! step's checkpoint and its journal share the step's row, so a step's end
//! writes one row. `synchronous = NORMAL`: a commit survives the
//! process being killed (the WAL is in the OS's cache); a power cut may lose
//! the last commits, whose steps then run again under the same idempotency key.
//!
//! Beside each record, the columns lists and pruning read (tenant, status,
//! times) and its size. `tenant_bytes` keeps each tenant's bytes and, beside
//! them, each of its running runs' (its record with its steps' and
//! journals'), which the run's row takes back when it ends: a write moves
//! both in its transaction, after checking the bounds, and a step's commit
//! writes one page for them, not the run's row with its record.
//!
//! The connection a store writes through uses a VFS of its own ([`vfs`]),
//! SQLite's default with a commit's log frames handed to the kernel in one
//! write; the log thread's own connection, which only copies the log into
//! the file, uses SQLite's default.

use super::approvals::{apply_answer, taken};
use super::store::{
    ALL, AnswerError, ApprovalRecord, Cutoffs, DeadLetter, Finished, FlowBounds, FlowStore, Page, Pruned, RunQuery,
    RunRecord, RunStatus, RunSummary, StepRecord, StoreError,
};
mod log;
mod schema;
mod vfs;
mod write;

use paddock_journal::Entry;
use parking_lot::Mutex;
use rusqlite::types::Value as Sql;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params, params_from_iter};
use schema::{
    MIGRATE_TO_1, MIGRATE_TO_2, MIGRATE_TO_3, MIGRATE_TO_4, MIGRATE_TO_5, MIGRATE_TO_6, SCHEMA_0, SCHEMA_VERSION,
};
use serde::de::DeserializeOwned;
use std::path::Path;
use std::sync::Arc;
use write::{
    RUN_BYTES, Tally, charge, db, from_json, size, size_in, to_json, write_done, write_journal, write_run, write_step,
    write_step_row,
};

/// The page size of a new file. A step's row (its checkpoint and journal,
/// about 700 bytes for a small agent) grows when the step ends; on pages of
/// 4 KiB, five rows to a page, nearly every other end split or rebalanced
/// pages of the steps' tree (5.4 pages of the log a step's commit, 4.2 on
/// pages of 8 KiB).
const PAGE_SIZE: i64 = 8192;

/// A flow store in a SQLite file.
pub struct SqliteStore {
    /// Shared with the thread that copies its log ([`log`]).
    conn: Arc<Mutex<Connection>>,
    bounds: FlowBounds,
    #[cfg_attr(not(test), allow(dead_code))]
    log: Arc<log::Log>,
}

/// How many records a pass of `prune` forgets per transaction, so a host
/// sharing the file waits for one short transaction at most.
const PRUNE_BATCH: i64 = 500;

/// `WHERE` clauses joined, with their arguments.
#[derive(Default)]
struct Filter {
    clauses: Vec<&'static str>,
    args: Vec<Sql>,
}

impl Filter {
    fn and(&mut self, clause: &'static str, arg: impl Into<Sql>) {
        self.clauses.push(clause);
        self.args.push(arg.into());
    }

    /// `clause` with several arguments.
    fn and_all(&mut self, clause: &'static str, args: impl IntoIterator<Item = Sql>) {
        self.clauses.push(clause);
        self.args.extend(args);
    }

    /// The arguments of a cursor's subquery (`id = ? AND (? IS NULL OR
    /// tenant = ?)`): a cursor names a record of the page's own tenant only.
    fn cursor(after: &str, tenant: Option<&String>) -> [Sql; 3] {
        let tenant = tenant.map_or(Sql::Null, |t| Sql::Text(t.clone()));
        [Sql::Text(after.to_string()), tenant.clone(), tenant]
    }

    fn sql(&self) -> String {
        if self.clauses.is_empty() { String::new() } else { format!("WHERE {}", self.clauses.join(" AND ")) }
    }

    /// The clauses of `page` over a table ordered oldest first by `(created, id)`.
    fn page(page: &Page, table: &'static str) -> Filter {
        let mut f = Filter::default();
        if let Some(t) = &page.tenant {
            f.and("tenant = ?", t.clone());
        }
        if let Some(after) = &page.after {
            let clause = match table {
                "dead" => "(created, id) > (SELECT created, id FROM dead WHERE id = ? AND (? IS NULL OR tenant = ?))",
                _ => "(created, id) > (SELECT created, id FROM approvals WHERE id = ? AND (? IS NULL OR tenant = ?))",
            };
            f.and_all(clause, Filter::cursor(after, page.tenant.as_ref()));
        }
        f
    }
}

/// An open transaction, rolled back when dropped.
struct Open<'c>(&'c Connection);

impl Drop for Open<'_> {
    fn drop(&mut self) {
        let _ = self.0.execute_batch("ROLLBACK");
    }
}

fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl SqliteStore {
    /// Opens (creating, or bringing an older file's layout up) the store at
    /// `path`, keeping at most the default [`FlowBounds`].
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::CreateDir { dir: dir.to_path_buf(), reason: e.to_string() })?;
        }
        let setting = |e: rusqlite::Error| StoreError::Sqlite { reason: e.to_string() };
        vfs::register().map_err(|reason| StoreError::Sqlite { reason })?;
        // A commit's log frames in one write ([`vfs`]).
        let mut conn = Connection::open_with_flags_and_vfs(path, OpenFlags::default(), vfs::NAME)
            .map_err(|e| StoreError::Open { path: path.to_path_buf(), reason: e.to_string() })?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(setting)?;
        // Every statement a write makes stays prepared (the default keeps 16).
        conn.set_prepared_statement_cache_capacity(64);
        // Before the file has a first page; a file made before keeps its own.
        conn.pragma_update(None, "page_size", PAGE_SIZE).map_err(setting)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(setting)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(setting)?;
        let schema = |e: rusqlite::Error| StoreError::Schema { path: path.to_path_buf(), reason: e.to_string() };
        // One writer brings the layout up; another process opening the file
        // meanwhile waits, then finds it done.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(schema)?;
        let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(schema)?;
        if version == 0 {
            // A new file, or one of the first layout (whose tables stay as they are).
            tx.execute_batch(SCHEMA_0).map_err(schema)?;
        }
        if version > SCHEMA_VERSION {
            return Err(StoreError::Schema {
                path: path.to_path_buf(),
                reason: format!(
                    "its layout is version {version}, made by a newer paddock (this one reads up to {SCHEMA_VERSION})"
                ),
            });
        }
        if version < 1 {
            tx.execute_batch(MIGRATE_TO_1).map_err(schema)?;
        }
        if version < 2 {
            tx.execute_batch(MIGRATE_TO_2).map_err(schema)?;
        }
        if version < 3 {
            tx.execute_batch(MIGRATE_TO_3).map_err(schema)?;
        }
        if version < 4 {
            tx.execute_batch(MIGRATE_TO_4).map_err(schema)?;
        }
        if version < 5 {
            tx.execute_batch(MIGRATE_TO_5).map_err(schema)?;
        }
        if version < 6 {
            tx.execute_batch(MIGRATE_TO_6).map_err(schema)?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION).map_err(schema)?;
        }
        // A file from before the sum of every tenant was kept.
        tx.execute(
            "INSERT OR IGNORE INTO tenant_bytes (tenant, run, bytes)
             SELECT ?1, '', COALESCE(SUM(bytes), 0) FROM tenant_bytes WHERE tenant <> ?1 AND run = ''",
            params![ALL],
        )
        .map_err(schema)?;
        tx.commit().map_err(schema)?;
        let conn = Arc::new(Mutex::new(conn));
        let log = log::copy_behind_writers(&conn, path.to_path_buf()).map_err(setting)?;
        Ok(SqliteStore { conn, bounds: FlowBounds::default(), log })
    }

    /// The store keeping at most `bounds`.
    pub fn with_bounds(mut self, bounds: FlowBounds) -> SqliteStore {
        self.bounds = bounds;
        self
    }

    fn all<T: DeserializeOwned>(&self, sql: &str, args: impl rusqlite::Params) -> Result<Vec<T>, String> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare_cached(sql).map_err(db)?;
        let rows = stmt.query_map(args, |r| r.get::<_, String>(0)).map_err(db)?;
        rows.map(|r| r.map_err(db).and_then(|t| from_json(&t))).collect()
    }

    fn one<T: DeserializeOwned>(&self, sql: &str, args: impl rusqlite::Params) -> Result<Option<T>, String> {
        let conn = self.conn.lock();
        let text: Option<String> = conn.query_row(sql, args, |r| r.get(0)).optional().map_err(db)?;
        text.map(|t| from_json(&t)).transpose()
    }

    /// Runs `work` in an immediate transaction (no other writer between its
    /// reads and its writes) and commits what it did when it succeeds.
    /// `BEGIN` and `COMMIT` stay prepared, where a rusqlite transaction
    /// parses them again each time.
    fn write<T>(&self, work: impl FnOnce(&Connection) -> Result<T, String>) -> Result<T, String> {
        let conn = self.conn.lock();
        let run = |sql: &str| conn.prepare_cached(sql).and_then(|mut s| s.execute([])).map_err(db);
        run("BEGIN IMMEDIATE")?;
        // Rolled back unless committed: on an error, and on a panic in `work`.
        let open = Open(&conn);
        let out = work(&conn)?;
        run("COMMIT")?;
        std::mem::forget(open);
        Ok(out)
    }

    /// Forgets up to [`PRUNE_BATCH`] of the rows `select` names (id, tenant,
    /// bytes) with `forget`; how many, and their bytes.
    fn prune_batch(
        &self,
        select: &str,
        args: &[Sql],
        forget: impl Fn(&Connection, &str) -> rusqlite::Result<usize>,
    ) -> Result<(u64, u64), String> {
        self.write(|c| {
            let rows: Vec<(String, String, i64)> = c
                .prepare_cached(select)
                .and_then(|mut s| {
                    s.query_map(params_from_iter(args), |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect()
                })
                .map_err(db)?;
            let mut bytes = 0;
            for (id, tenant, size) in &rows {
                forget(c, id).map_err(db)?;
                charge(c, None, "", tenant, (size.max(&0).unsigned_abs(), 0))?;
                bytes += size.max(&0).unsigned_abs();
            }
            Ok((rows.len() as u64, bytes))
        })
    }

    /// Forgets every row `select` names, a batch per transaction.
    fn prune_all(
        &self,
        select: &str,
        args: &[Sql],
        forget: impl Fn(&Connection, &str) -> rusqlite::Result<usize> + Copy,
    ) -> Result<(u64, u64), String> {
        let (mut count, mut bytes) = (0, 0);
        let args: Vec<Sql> = args.iter().cloned().chain([Sql::Integer(PRUNE_BATCH)]).collect();
        loop {
            let (n, b) = self.prune_batch(select, &args, forget)?;
            (count, bytes) = (count + n, bytes + b);
            if n < PRUNE_BATCH as u64 {
                return Ok((count, bytes));
            }
        }
    }
}

fn forget_run(c: &Connection, id: &str) -> rusqlite::Result<usize> {
    for sql in ["DELETE FROM steps WHERE run = ?1", "DELETE FROM cancels WHERE run = ?1"] {
        c.prepare_cached(sql)?.execute(params![id])?;
    }
    c.prepare_cached("DELETE FROM runs WHERE id = ?1")?.execute(params![id])
}

fn summary(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunSummary> {
    let status: String = r.get(3)?;
    Ok(RunSummary {
        id: r.get(0)?,
        flow: r.get(1)?,
        tenant: r.get(2)?,
        status: RunStatus::parse(&status).unwrap_or(RunStatus::Failed),
        error: r.get(4)?,
        created_ms: r.get::<_, i64>(5)?.max(0) as u64,
        updated_ms: r.get::<_, i64>(6)?.max(0) as u64,
        bytes: r.get::<_, i64>(7)?.max(0) as u64,
        owner: r.get(8)?,
        heartbeat_ms: r.get::<_, i64>(9)?.max(0) as u64,
    })
}

impl FlowStore for SqliteStore {
    fn bounds(&self) -> FlowBounds {
        self.bounds
    }

    fn put_run(&self, run: &RunRecord) -> Result<(), String> {
        self.write(|c| {
            let mut tally = Tally::run(c, &run.id, Some(&run.tenant))?;
            tally.fence(&run.owner)?;
            // Only an output can make a record large; one without is always kept.
            write_run(c, &mut tally, run.output.is_some().then_some(&self.bounds), run)?;
            tally.write(c)
        })
    }

    fn add_run(&self, run: &RunRecord) -> Result<bool, String> {
        self.write(|c| {
            let mut tally = Tally::run(c, &run.id, Some(&run.tenant))?;
            if tally.stored() {
                return Ok(false);
            }
            write_run(c, &mut tally, Some(&self.bounds), run)?;
            tally.write(c).map(|()| true)
        })
    }

    fn run(&self, id: &str) -> Result<Option<RunRecord>, String> {
        self.one("SELECT data FROM runs WHERE id = ?1", params![id])
    }

    fn request_cancel(&self, run: &str, by: &str) -> Result<(), String> {
        self.write(|c| {
            c.execute("INSERT OR REPLACE INTO cancels (run, by) VALUES (?1, ?2)", params![run, by]).map_err(db)
        })
        .map(drop)
    }

    fn cancel_request(&self, run: &str) -> Result<Option<String>, String> {
        let conn = self.conn.lock();
        conn.query_row("SELECT by FROM cancels WHERE run = ?1", params![run], |r| r.get(0)).optional().map_err(db)
    }

    fn claim(&self, run: &RunRecord, owner: &str, heartbeat_ms: u64) -> Result<bool, String> {
        self.write(|c| {
            let held = "SELECT 1 FROM runs WHERE id = ?1 AND owner = ?2 AND heartbeat = ?3";
            if size_in(c, held, params![run.id, owner, heartbeat_ms as i64])? != 1 {
                return Ok(false);
            }
            let mut tally = Tally::run(c, &run.id, Some(&run.tenant))?;
            write_run(c, &mut tally, run.output.is_some().then_some(&self.bounds), run)?;
            tally.write(c).map(|()| true)
        })
    }

    fn renew(&self, run: &str, holder: &str, heartbeat_ms: u64) -> Result<bool, String> {
        self.write(|c| {
            c.prepare_cached(
                "UPDATE runs SET heartbeat = ?3, data = json_set(data, '$.heartbeat_ms', ?3)
                 WHERE id = ?1 AND owner = ?2 AND status = 'running'",
            )
            .and_then(|mut s| s.execute(params![run, holder, heartbeat_ms as i64]))
            .map(|changed| changed == 1)
            .map_err(db)
        })
    }

    fn runs(&self, q: &RunQuery) -> Result<Vec<RunSummary>, String> {
        let mut f = Filter::default();
        if let Some(t) = &q.tenant {
            f.and("tenant = ?", t.clone());
        }
        if let Some(flow) = &q.flow {
            f.and("flow = ?", flow.clone());
        }
        if let Some(s) = q.status {
            f.and("status = ?", s.word().to_string());
        }
        if let Some(after) = &q.after {
            let clause = "(created, id) < (SELECT created, id FROM runs WHERE id = ? AND (? IS NULL OR tenant = ?))";
            f.and_all(clause, Filter::cursor(after, q.tenant.as_ref()));
        }
        f.args.push(Sql::Integer(limit(q.limit)));
        let sql = format!(
            "SELECT id, flow, tenant, status, error, created, updated, {RUN_BYTES}, owner, heartbeat FROM runs {} \
             ORDER BY created DESC, id DESC LIMIT ?",
            f.sql()
        );
        let conn = self.conn.lock();
        let mut stmt = conn.prepare_cached(&sql).map_err(db)?;
        let rows = stmt.query_map(params_from_iter(&f.args), summary).map_err(db)?;
        rows.map(|r| r.map_err(db)).collect()
    }

    fn running(&self) -> Result<Vec<RunRecord>, String> {
        self.all("SELECT data FROM runs WHERE status = 'running' ORDER BY created, id", [])
    }

    fn put_step(&self, run: &str, holder: &str, step: &StepRecord) -> Result<(), String> {
        self.write(|c| {
            let mut tally = Tally::run(c, run, None)?;
            tally.fence(holder)?;
            write_step(c, &mut tally, &self.bounds, run, step)?;
            tally.write(c)
        })
    }

    fn steps(&self, run: &str) -> Result<Vec<StepRecord>, String> {
        self.all("SELECT data FROM steps WHERE run = ?1 AND data IS NOT NULL ORDER BY seq", params![run])
    }

    fn put_journal(&self, run: &str, holder: &str, step: &str, attempt: u32, entries: &[Entry]) -> Result<(), String> {
        self.write(|c| {
            let mut tally = Tally::run(c, run, None)?;
            tally.fence(holder)?;
            write_journal(c, &mut tally, &self.bounds, (run, step, attempt), entries)?;
            tally.write(c)
        })
    }

    fn finish_step(&self, run: &str, holder: &str, step: &StepRecord, journal: &[Entry]) -> Result<(), String> {
        self.write(|c| {
            let mut tally = Tally::run(c, run, None)?;
            tally.fence(holder)?;
            write_step_row(c, &mut tally, &self.bounds, run, step, Some(journal))?;
            tally.write(c)
        })
    }

    fn put_steps(&self, run: &str, holder: &str, done: &[Finished], next: &[StepRecord]) -> Result<(), String> {
        self.write(|c| {
            let mut tally = Tally::run(c, run, None)?;
            tally.fence(holder)?;
            write_done(c, &mut tally, &self.bounds, run, done)?;
            for step in next {
                write_step(c, &mut tally, &self.bounds, run, step)?;
            }
            tally.write(c)
        })
    }

    fn end_run(&self, run: &RunRecord, done: &[Finished]) -> Result<(), String> {
        self.write(|c| {
            let mut tally = Tally::run(c, &run.id, Some(&run.tenant))?;
            tally.fence(&run.owner)?;
            write_done(c, &mut tally, &self.bounds, &run.id, done)?;
            write_run(c, &mut tally, run.output.is_some().then_some(&self.bounds), run)?;
            tally.write(c)
        })
    }

    fn journal(&self, run: &str, step: &str) -> Result<Option<(u32, Vec<Entry>)>, String> {
        let conn = self.conn.lock();
        let row: Option<(u32, String)> = conn
            .query_row(
                "SELECT attempt, journal FROM steps WHERE run = ?1 AND path = ?2 AND journal IS NOT NULL",
                params![run, step],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(db)?;
        row.map(|(a, t)| Ok((a, from_json(&t)?))).transpose()
    }

    fn put_dead(&self, dead: &DeadLetter) -> Result<(), String> {
        let data = to_json(dead)?;
        self.write(|c| {
            let old = size_in(c, "SELECT size FROM dead WHERE id = ?1", params![dead.id])?;
            let what = format!("dead letter {}", dead.id);
            charge(c, Some(&self.bounds), &what, &dead.tenant, (old, size(&data)))?;
            c.prepare_cached(
                "INSERT OR REPLACE INTO dead (id, created, data, tenant, size) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut s| {
                s.execute(params![dead.id, dead.created_ms as i64, data, dead.tenant, size(&data) as i64])
            })
            .map_err(db)
            .map(drop)
        })
    }

    fn dead_letters(&self, page: &Page) -> Result<Vec<DeadLetter>, String> {
        let mut f = Filter::page(page, "dead");
        f.args.push(Sql::Integer(limit(page.limit)));
        self.all(&format!("SELECT data FROM dead {} ORDER BY created, id LIMIT ?", f.sql()), params_from_iter(&f.args))
    }

    fn dead(&self, id: &str) -> Result<Option<DeadLetter>, String> {
        self.one("SELECT data FROM dead WHERE id = ?1", params![id])
    }

    fn drop_dead(&self, id: &str) -> Result<bool, String> {
        let select = "SELECT id, tenant, size FROM dead WHERE id = ?";
        let forget = |c: &Connection, id: &str| c.execute("DELETE FROM dead WHERE id = ?1", params![id]);
        self.prune_batch(select, &[Sql::Text(id.to_string())], forget).map(|(n, _)| n > 0)
    }

    fn add_approval(&self, a: &ApprovalRecord) -> Result<(), String> {
        let data = to_json(a)?;
        self.write(|c| {
            if size_in(c, "SELECT 1 FROM approvals WHERE id = ?1", params![a.id])? == 1 {
                return Err(taken(&a.id));
            }
            let what = format!("approval {}", a.id);
            charge(c, Some(&self.bounds), &what, &a.tenant, (0, size(&data)))?;
            c.execute(
                "INSERT INTO approvals (id, created, data, tenant, size, answered, settles)
                 VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6)",
                params![
                    a.id,
                    a.created_ms as i64,
                    data,
                    a.tenant,
                    size(&data) as i64,
                    a.deadline_ms.min(i64::MAX as u64) as i64
                ],
            )
            .map_err(db)
            .map(drop)
        })
    }

    fn approval(&self, id: &str) -> Result<Option<ApprovalRecord>, String> {
        self.one("SELECT data FROM approvals WHERE id = ?1", params![id])
    }

    fn approvals(&self, page: &Page, waiting_at: Option<u64>) -> Result<Vec<ApprovalRecord>, String> {
        let mut f = Filter::page(page, "approvals");
        if let Some(now) = waiting_at {
            f.and("answered = 0 AND settles > ?", Sql::Integer(now.min(i64::MAX as u64) as i64));
        }
        f.args.push(Sql::Integer(limit(page.limit)));
        let sql = format!("SELECT data FROM approvals {} ORDER BY created, id LIMIT ?", f.sql());
        self.all(&sql, params_from_iter(&f.args))
    }

    fn answer(&self, id: &str, option: &str, by: &str, now_ms: u64) -> Result<ApprovalRecord, AnswerError> {
        let store = |e: rusqlite::Error| AnswerError::Store(db(e));
        let mut conn = self.conn.lock();
        // An immediate transaction: two people answering at once cannot both win.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(store)?;
        let text: Option<String> = tx
            .query_row("SELECT data FROM approvals WHERE id = ?1", params![id], |r| r.get(0))
            .optional()
            .map_err(store)?;
        let text = text.ok_or_else(|| AnswerError::NoApproval(id.to_string()))?;
        let mut a: ApprovalRecord = from_json(&text).map_err(AnswerError::Store)?;
        apply_answer(&mut a, option, by, now_ms)?;
        let data = to_json(&a).map_err(AnswerError::Store)?;
        charge(&tx, None, "", &a.tenant, (size(&text), size(&data))).map_err(AnswerError::Store)?;
        tx.execute(
            "UPDATE approvals SET data = ?2, size = ?3, answered = 1, settles = ?4 WHERE id = ?1",
            params![id, data, size(&data) as i64, now_ms.min(i64::MAX as u64) as i64],
        )
        .map_err(store)?;
        tx.commit().map_err(store)?;
        Ok(a)
    }

    fn tenant_bytes(&self, tenant: &str) -> Result<u64, String> {
        size_in(&self.conn.lock(), "SELECT bytes FROM tenant_bytes WHERE tenant = ?1 AND run = ''", params![tenant])
    }

    fn prune(&self, cut: &Cutoffs) -> Result<Pruned, String> {
        let ms = |t: u64| Sql::Integer(t.min(i64::MAX as u64) as i64);
        let old_runs = "SELECT id, tenant, bytes FROM runs WHERE status != 'running' AND updated < ? LIMIT ?";
        let (runs, run_bytes) = self.prune_all(old_runs, &[ms(cut.runs_before_ms)], forget_run)?;
        let extra_runs = "SELECT id, tenant, bytes FROM (SELECT id, tenant, bytes,
                ROW_NUMBER() OVER (PARTITION BY tenant ORDER BY created DESC, id DESC) AS n
                FROM runs WHERE status != 'running') WHERE n > ? LIMIT ?";
        let (more, more_bytes) = self.prune_all(extra_runs, &[ms(cut.runs_per_tenant)], forget_run)?;
        let forget_approval = |c: &Connection, id: &str| c.execute("DELETE FROM approvals WHERE id = ?1", params![id]);
        let settled = "SELECT id, tenant, size FROM approvals WHERE settles < ? LIMIT ?";
        let (approvals, approval_bytes) = self.prune_all(settled, &[ms(cut.approvals_before_ms)], forget_approval)?;
        let forget_dead = |c: &Connection, id: &str| c.execute("DELETE FROM dead WHERE id = ?1", params![id]);
        let old_dead = "SELECT id, tenant, size FROM dead WHERE created < ? LIMIT ?";
        let (dead_letters, dead_bytes) = self.prune_all(old_dead, &[ms(cut.dead_before_ms)], forget_dead)?;
        Ok(Pruned {
            runs: runs + more,
            approvals,
            dead_letters,
            bytes: run_bytes + more_bytes + approval_bytes + dead_bytes,
        })
    }
}

/// The first layout, for the test that brings such a file up.
#[cfg(test)]
pub(crate) const SCHEMA_0_FOR_TESTS: &str = SCHEMA_0;

#[cfg(test)]
mod tests;
