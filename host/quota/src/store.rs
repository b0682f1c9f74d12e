//! The ledger file: an SQLite database of usage rows, one per scope and
//! window, and the writer thread that adds usage to it.
//!
//! The file holds *sums*, and every write adds a delta to them (`x = x +
//! excluded.x`), never a total read earlier: so several processes writing
//! the same file sum correctly, whatever order their transactions land in.

use super::UsageRow;
use super::calendar::{Day, Window};
use super::scope::Usage;
use parking_lot::{Condvar, Mutex};
use rusqlite::{Connection, OpenFlags, TransactionBehavior, params};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The version of the table layout below, kept in SQLite's `user_version`.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS usage (
        tenant TEXT NOT NULL,
        agent TEXT NOT NULL,           -- '' for the tenant's total
        period TEXT NOT NULL,          -- UTC day '2026-11-21' or month '2026-11'
        requests INTEGER NOT NULL,
        input_tokens INTEGER NOT NULL,
        output_tokens INTEGER NOT NULL,
        cost_micros INTEGER NOT NULL,
        refusals INTEGER NOT NULL,
        PRIMARY KEY (tenant, agent, period)
    ) WITHOUT ROWID;";

const ADD: &str = "
    INSERT INTO usage (tenant, agent, period, requests, input_tokens, output_tokens, cost_micros, refusals)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
    ON CONFLICT (tenant, agent, period) DO UPDATE SET
        requests = requests + excluded.requests,
        input_tokens = input_tokens + excluded.input_tokens,
        output_tokens = output_tokens + excluded.output_tokens,
        cost_micros = cost_micros + excluded.cost_micros,
        refusals = refusals + excluded.refusals";

const SELECT: &str =
    "SELECT tenant, agent, period, requests, input_tokens, output_tokens, cost_micros, refusals FROM usage";

/// How long a statement waits for another process's write transaction
/// before it fails. Writers hold the lock for one short batch, so a wait this
/// long means something is wrong, not busy.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the writer gathers usage before writing it: the most a `kill -9`
/// can lose, and the fewest transactions a busy host writes per second.
const BATCH_WINDOW: Duration = Duration::from_millis(10);

/// How long the writer waits after a failed write before trying again.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// A usage row's place: tenant, agent (`None` for the tenant's total), window.
type RowKey = (Arc<str>, Option<Arc<str>>, Window);

/// A usage row as stored.
pub(crate) type StoredRow = (String, Option<String>, String, Usage);

/// The ledger file cannot be opened, read or written.
#[derive(Debug, thiserror::Error)]
#[error("ledger {at}: {problem}")]
pub struct LedgerError {
    /// Where: `file PATH`, or `in PostgreSQL at USER@HOST:PORT/DB`.
    pub at: String,
    /// What is wrong with it.
    pub problem: LedgerProblem,
}

/// What is wrong with a ledger file. Each message is shown after the file's
/// name, and carries what it wraps in its text (so none is also a `source`).
#[derive(Debug, thiserror::Error)]
pub enum LedgerProblem {
    /// There is no file to read.
    #[error("no such file")]
    Missing,
    /// Its folder could not be created.
    #[error("cannot create {}: {error}", .dir.display())]
    CreateDir {
        /// The folder.
        dir: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// SQLite refused (not a database, locked past the wait, I/O).
    #[error("{0}")]
    Sqlite(rusqlite::Error),
    /// SQLite would not use write-ahead logging, which concurrent readers need.
    #[error("cannot use write-ahead logging (journal mode {0})")]
    NoWriteAheadLog(String),
    /// A newer paddock's layout.
    #[error("written by a newer paddock (layout {found}; this one knows up to {known})")]
    NewerLayout {
        /// The file's layout version.
        found: i64,
        /// The newest this build knows.
        known: i64,
    },
    /// An SQLite database holding other tables, which is not taken over.
    #[error("an SQLite database, but not a paddock ledger")]
    NotALedger,
    /// An SQLite database without the usage table (read-only opening).
    #[error("not a paddock ledger (no usage table)")]
    NoUsageTable,
    /// The writer thread could not be started.
    #[error("cannot start its writer thread: {0}")]
    WriterThread(std::io::Error),
    /// PostgreSQL refused or could not be reached.
    #[error("{0}")]
    Postgres(String),
    /// Recording usage failed; the writer retries it.
    #[error("cannot record usage: {0}")]
    Record(Arc<rusqlite::Error>),
}

impl LedgerError {
    fn new(path: &Path, problem: LedgerProblem) -> Self {
        LedgerError { at: format!("file {}", path.display()), problem }
    }

    /// A failure of the ledger in the PostgreSQL database `shown`.
    pub(crate) fn in_postgres(shown: &str, why: String) -> Self {
        LedgerError { at: format!("in PostgreSQL at {shown}"), problem: LedgerProblem::Postgres(why) }
    }
}

fn named(path: &Path) -> impl Fn(rusqlite::Error) -> LedgerError + '_ {
    move |e| LedgerError::new(path, LedgerProblem::Sqlite(e))
}

/// Opens (creating if need be) the ledger file at `path` for writing.
pub(crate) fn open(path: &Path) -> Result<Connection, LedgerError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|error| LedgerError::new(path, LedgerProblem::CreateDir { dir: parent.to_path_buf(), error }))?;
    }
    let err = named(path);
    let conn = Connection::open(path).map_err(&err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(&err)?;
    // WAL: readers (`paddock usage`) never block the writers, and a commit
    // appends to the log instead of rewriting pages. With synchronous=NORMAL
    // a commit is safe from a crash of the process (the log is in the OS's
    // hands), though not from a power cut between checkpoints.
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0)).map_err(&err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(LedgerError::new(path, LedgerProblem::NoWriteAheadLog(mode)));
    }
    conn.pragma_update(None, "synchronous", "NORMAL").map_err(&err)?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0)).map_err(&err)?;
    if version > SCHEMA_VERSION {
        return Err(LedgerError::new(path, LedgerProblem::NewerLayout { found: version, known: SCHEMA_VERSION }));
    }
    if version == 0 {
        let others: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name != 'usage'", [], |r| r.get(0))
            .map_err(&err)?;
        if others > 0 {
            return Err(LedgerError::new(path, LedgerProblem::NotALedger));
        }
        conn.execute_batch(&format!("BEGIN IMMEDIATE; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"))
            .map_err(&err)?;
    }
    Ok(conn)
}

/// Forgets the per-day rows of days before `day` in the file at `path`
/// (per-month rows stay); how many went.
pub(crate) fn forget_days(path: &Path, day: Day) -> Result<u64, LedgerError> {
    let conn = open(path)?;
    // Day rows are `YYYY-MM-DD`, month rows `YYYY-MM`: the length tells them
    // apart, and ISO dates sort as they compare.
    conn.execute("DELETE FROM usage WHERE length(period) = 10 AND period < ?1", params![day.to_string()])
        .map(|n| n as u64)
        .map_err(named(path))
}

/// The rows of `day` and of its month: what budgets must count after a restart.
pub(crate) fn load(conn: &Connection, path: &Path, day: Day) -> Result<Vec<StoredRow>, LedgerError> {
    let windows = [day.to_string(), day.month().to_string()];
    select(conn, &format!("{SELECT} WHERE period IN (?1, ?2)"), params![windows[0], windows[1]]).map_err(named(path))
}

/// Every row of the file at `path` (only `tenant`'s when given), opened read-only.
pub(crate) fn read(path: &Path, tenant: Option<&str>) -> Result<Vec<StoredRow>, LedgerError> {
    if !path.exists() {
        return Err(LedgerError::new(path, LedgerProblem::Missing));
    }
    let err = named(path);
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(&err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(&err)?;
    let order = "ORDER BY tenant, agent, period";
    match tenant {
        Some(t) => select(&conn, &format!("{SELECT} WHERE tenant = ?1 {order}"), params![t]),
        None => select(&conn, &format!("{SELECT} {order}"), params![]),
    }
    .map_err(|e| match e {
        rusqlite::Error::SqliteFailure(_, Some(ref m)) if m.starts_with("no such table") => {
            LedgerError::new(path, LedgerProblem::NoUsageTable)
        }
        e => err(e),
    })
}

fn select(conn: &Connection, sql: &str, params: &[&dyn rusqlite::ToSql]) -> rusqlite::Result<Vec<StoredRow>> {
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt.query_map(params, |r| {
        let agent: String = r.get(1)?;
        let count = |i| r.get::<_, i64>(i).map(|v| u64::try_from(v).unwrap_or(0));
        let usage = Usage {
            requests: count(3)?,
            input_tokens: count(4)?,
            output_tokens: count(5)?,
            cost_micros: count(6)?,
            refusals: count(7)?,
        };
        Ok((r.get(0)?, (!agent.is_empty()).then_some(agent), r.get(2)?, usage))
    })?;
    rows.collect()
}

/// Turns a stored row into what `paddock usage` shows.
pub(crate) fn usage_row((tenant, agent, window, u): StoredRow) -> UsageRow {
    UsageRow {
        tenant,
        agent,
        window,
        requests: u.requests,
        input_tokens: u.input_tokens,
        output_tokens: u.output_tokens,
        cost_micros: u.cost_micros,
        refusals: u.refusals,
    }
}

/// Adds `batch` to the file in one transaction.
fn write(conn: &mut Connection, batch: &HashMap<RowKey, Usage>) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut add = tx.prepare_cached(ADD)?;
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        for ((tenant, agent, window), u) in batch {
            add.execute(params![
                &**tenant,
                agent.as_deref().unwrap_or(""),
                window.to_string(),
                n(u.requests),
                n(u.input_tokens),
                n(u.output_tokens),
                n(u.cost_micros),
                n(u.refusals)
            ])?;
        }
    }
    tx.commit()
}

/// Usage waiting for the writer, and how far the writer has got.
#[derive(Default)]
struct Queue {
    /// Deltas not yet written, summed per row.
    pending: HashMap<RowKey, Usage>,
    /// How many additions were ever queued.
    queued: u64,
    /// How many of those are in the file.
    written: u64,
    /// How many writes were attempted, and the last one's error if it failed.
    attempts: u64,
    error: Option<Arc<rusqlite::Error>>,
    /// Someone waits in `flush`: write without gathering further.
    urgent: bool,
    /// The ledger is dropped: write what is left and end.
    stop: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    /// Wakes the writer.
    wake: Condvar,
    /// Wakes those waiting in `flush`.
    written: Condvar,
}

/// The thread that owns the file's connection and writes usage in batches,
/// so that no call ever waits for the disk.
pub(crate) struct Writer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    /// The file, for errors.
    path: PathBuf,
}

impl Writer {
    /// Starts the writer for `conn`, the file at `path`.
    pub(crate) fn start(conn: Connection, path: &Path) -> Result<Writer, LedgerError> {
        let shared = Arc::new(Shared { queue: Mutex::default(), wake: Condvar::new(), written: Condvar::new() });
        let (s, p) = (shared.clone(), path.to_path_buf());
        let thread = std::thread::Builder::new()
            .name("paddock-ledger".into())
            .spawn(move || run(conn, &p, &s))
            .map_err(|e| LedgerError::new(path, LedgerProblem::WriterThread(e)))?;
        Ok(Writer { shared, thread: Some(thread), path: path.to_path_buf() })
    }

    /// Queues `rows` to be added to the file.
    pub(crate) fn add(&self, rows: impl IntoIterator<Item = (RowKey, Usage)>) {
        let mut q = self.shared.queue.lock();
        let was_idle = q.pending.is_empty();
        for (key, usage) in rows {
            q.pending.entry(key).or_default().add(&usage);
        }
        q.queued += 1;
        if was_idle {
            self.shared.wake.notify_one();
        }
    }

    /// Returns once everything queued so far is in the file, or the error
    /// of a write that failed meanwhile.
    pub(crate) fn flush(&self) -> Result<(), LedgerError> {
        let mut q = self.shared.queue.lock();
        let (target, attempts) = (q.queued, q.attempts);
        while q.written < target {
            if q.attempts > attempts
                && let Some(e) = &q.error
            {
                return Err(LedgerError::new(&self.path, LedgerProblem::Record(e.clone())));
            }
            q.urgent = true;
            self.shared.wake.notify_one();
            self.shared.written.wait(&mut q);
        }
        Ok(())
    }
}

impl Drop for Writer {
    /// Writes what is left, then ends the thread.
    fn drop(&mut self) {
        self.shared.queue.lock().stop = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The writer thread: waits for usage, gathers it for a batch window (cut
/// short by `flush` or drop), writes it in one transaction.
fn run(mut conn: Connection, path: &Path, shared: &Shared) {
    let mut q = shared.queue.lock();
    loop {
        while q.pending.is_empty() && !q.stop {
            if q.written < q.queued {
                // Queued additions that summed to nothing already pending.
                q.written = q.queued;
                shared.written.notify_all();
            }
            shared.wake.wait(&mut q);
        }
        if q.pending.is_empty() {
            break;
        }
        let deadline = Instant::now() + if q.error.is_some() { RETRY_AFTER_FAILURE } else { BATCH_WINDOW };
        while !q.urgent && !q.stop && !shared.wake.wait_until(&mut q, deadline).timed_out() {}
        q.urgent = false;
        let batch = std::mem::take(&mut q.pending);
        let upto = q.queued;
        let stopping = q.stop;
        let result = parking_lot::MutexGuard::unlocked(&mut q, || write(&mut conn, &batch));
        q.attempts += 1;
        match result {
            Ok(()) => {
                q.written = upto;
                q.error = None;
            }
            Err(e) => {
                let e = Arc::new(e);
                let message = LedgerError::new(path, LedgerProblem::Record(e.clone()));
                tracing::warn!(rows = batch.len(), error = %message, "ledger write failed; will retry");
                q.error = Some(e);
                for (key, usage) in batch {
                    q.pending.entry(key).or_default().add(&usage);
                }
                if stopping {
                    tracing::error!(rows = q.pending.len(), file = %path.display(), "ledger closed with usage unwritten");
                    q.pending.clear();
                    shared.written.notify_all();
                    break;
                }
            }
        }
        shared.written.notify_all();
    }
}
