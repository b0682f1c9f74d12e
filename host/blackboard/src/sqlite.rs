//! The durable backend: SQLite in WAL mode, one file for every tenant's
//! board (`<host.data>/blackboard.sqlite`), which any number of processes on
//! the machine open at once — a serving host, `paddock run`, `paddock bb`.
//!
//! SQLite rather than redb (the board's first durable store): a redb file is
//! held by one process, so a second `paddock` on the data folder could not
//! open the board. SQLite lets every process read while one writes, and
//! queues writers across processes on the file's lock. `synchronous = FULL`:
//! every acknowledged write is on the disk, as it was with redb. A file left
//! by redb (`blackboard.redb` beside this one) is imported when this one is
//! first made, and renamed `blackboard.redb.imported`.
//!
//! Layout — the PostgreSQL backend's (`postgres.rs`), keys compared byte by
//! byte (SQLite's `BINARY` collation):
//! - `board_tenants`: tenant → revision, keys, bytes, and the count and bytes
//!   of its kept changes; the `*` row sums every tenant's keys and bytes
//! - `board_entries`: (tenant, key) → value, revision, agent, run, written and
//!   expiry times in milliseconds; indexed by expiry for the sweep
//! - `board_changes`: (tenant, revision) → key, value or none (a delete), agent, run
//!
//! A write is one `BEGIN IMMEDIATE` transaction (`sqlite/tx.rs`), so one
//! tenant's revisions stay consecutive whichever process writes. Watchers in
//! this process are told at once; writes of other processes are seen within
//! [`LOOK_EVERY`], when `PRAGMA data_version` says the file changed, by reading
//! the revisions of the tenants watched here.

mod group;
mod import;
mod tx;

use super::latest::Latest;
use super::store::Answer;
use super::{Backend, BoardError, BoardLimits, Change, Entry, TenantStore, Write, Writer, from_unix_millis};
use crate::sql::{int, uint};
use parking_lot::Mutex;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::watch;
use tx::{Refused, Tx};

/// How often a process looks for writes other processes made, while
/// someone here watches.
pub const LOOK_EVERY: Duration = Duration::from_millis(25);

/// The layout's version, in `user_version`; a newer file is refused.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS board_tenants (
        tenant TEXT PRIMARY KEY,
        revision INTEGER NOT NULL DEFAULT 0,
        keys INTEGER NOT NULL DEFAULT 0,
        bytes INTEGER NOT NULL DEFAULT 0,
        history_rows INTEGER NOT NULL DEFAULT 0,
        history_bytes INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    INSERT OR IGNORE INTO board_tenants (tenant) VALUES ('*');
    CREATE TABLE IF NOT EXISTS board_entries (
        tenant TEXT NOT NULL,
        key TEXT NOT NULL,
        value BLOB NOT NULL,
        revision INTEGER NOT NULL,
        agent TEXT NOT NULL,
        run TEXT NOT NULL,
        written_ms INTEGER NOT NULL,
        expires_ms INTEGER,
        PRIMARY KEY (tenant, key)
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS board_entries_expiry ON board_entries (tenant, expires_ms, key)
        WHERE expires_ms IS NOT NULL;
    CREATE TABLE IF NOT EXISTS board_changes (
        tenant TEXT NOT NULL,
        key TEXT NOT NULL,
        revision INTEGER NOT NULL,
        value BLOB,
        agent TEXT NOT NULL,
        run TEXT NOT NULL,
        PRIMARY KEY (tenant, revision)
    ) WITHOUT ROWID;
";

/// Boards kept in a SQLite file that every process on the machine may open.
pub struct SqliteBackend {
    shared: Arc<Shared>,
    tenants: Mutex<HashMap<String, Arc<SqliteTenant>>>,
}

/// What the backend's tenants share.
struct Shared {
    path: PathBuf,
    /// The connection every write of this process goes through, sharing
    /// commits when writers come at once ([`group`]).
    write: group::Committer,
    read: Mutex<Connection>,
    /// Each watched tenant's newest revision as this process knows it.
    latest: Latest,
    /// Whether the thread looking for other processes' writes runs.
    looking: std::sync::Once,
}

impl Shared {
    fn fail(&self, e: impl std::fmt::Display) -> BoardError {
        BoardError::Storage(format!("{}: {e}", self.path.display()))
    }
}

fn connect(path: &Path) -> Result<Connection, String> {
    let conn = Connection::open_with_flags(path, OpenFlags::default()).map_err(|e| e.to_string())?;
    conn.busy_timeout(Duration::from_secs(10)).map_err(|e| e.to_string())?;
    conn.pragma_update(None, "journal_mode", "WAL").map_err(|e| not_sqlite(path, e))?;
    conn.pragma_update(None, "synchronous", "FULL").map_err(|e| e.to_string())?;
    Ok(conn)
}

/// Says what a file that is not SQLite most likely is.
fn not_sqlite(path: &Path, e: rusqlite::Error) -> String {
    let redb = std::fs::read(path).is_ok_and(|b| b.starts_with(b"redb"));
    match redb {
        true => "a redb board file from before the board was kept in SQLite; point blackboard.path at a new \
                 file (e.g. blackboard.sqlite beside it, with the redb file named blackboard.redb) and it is imported"
            .to_string(),
        false => e.to_string(),
    }
}

impl SqliteBackend {
    /// Opens (or creates) the board file at `path`, creating its folder;
    /// a file not set up yet takes in the redb board beside it
    /// (`<stem>.redb`), if any, in the transaction that sets it up — so an
    /// import that fails leaves it to be tried again at the next open.
    pub fn open(path: &Path) -> Result<Self, BoardError> {
        let named = |e: String| BoardError::Storage(format!("{}: {e}", path.display()));
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| named(format!("cannot create {}: {e}", dir.display())))?;
        }
        let mut write = connect(path).map_err(named)?;
        let tx = write.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| named(e.to_string()))?;
        let version: i64 =
            tx.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(|e| named(e.to_string()))?;
        if version > SCHEMA_VERSION {
            return Err(named(format!(
                "its layout is version {version}, made by a newer paddock (this one reads up to {SCHEMA_VERSION})"
            )));
        }
        // A file never set up (new, or left by an import that failed and
        // rolled back) takes in the redb board beside it.
        let fresh = version == 0;
        tx.execute_batch(SCHEMA).map_err(|e| named(e.to_string()))?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION).map_err(|e| named(e.to_string()))?;
        let redb = path.with_extension("redb");
        let imported = match fresh && redb.is_file() {
            true => Some(import::from_redb(&tx, &redb).map_err(named)?),
            false => None,
        };
        tx.commit().map_err(|e| named(e.to_string()))?;
        if let Some(count) = imported {
            let done = redb.with_extension("redb.imported");
            std::fs::rename(&redb, &done).map_err(|e| named(format!("{}: {e}", redb.display())))?;
            tracing::info!("blackboard: imported {count} from {} (now {})", redb.display(), done.display());
        }
        let read = connect(path).map_err(named)?;
        let shared = Shared {
            path: path.to_path_buf(),
            write: group::Committer::new(write),
            read: Mutex::new(read),
            latest: Latest::default(),
            looking: std::sync::Once::new(),
        };
        Ok(SqliteBackend { shared: Arc::new(shared), tenants: Mutex::default() })
    }
}

/// Looks every [`LOOK_EVERY`] whether another connection changed the file,
/// and tells the watched tenants their revisions; ends with the backend.
fn look_for_other_writes(shared: Weak<Shared>, path: PathBuf) {
    let Ok(conn) = connect(&path) else { return };
    let version = |c: &Connection| c.pragma_query_value(None, "data_version", |r| r.get::<_, i64>(0)).ok();
    let mut seen = version(&conn);
    loop {
        std::thread::sleep(LOOK_EVERY);
        let Some(shared) = shared.upgrade() else { return };
        let now = version(&conn);
        if now == seen {
            continue;
        }
        seen = now;
        let tenants = shared.latest.tenants();
        let Ok(mut statement) = conn.prepare_cached("SELECT revision FROM board_tenants WHERE tenant = ?1") else {
            continue;
        };
        for tenant in tenants {
            if let Ok(Some(revision)) = statement.query_row([&tenant], |r| r.get::<_, i64>(0)).optional() {
                shared.latest.told(&tenant, uint(revision));
            }
        }
    }
}

impl Backend for SqliteBackend {
    fn open(&self, tenant: &str, limits: BoardLimits) -> Arc<dyn TenantStore> {
        self.tenants
            .lock()
            .entry(tenant.to_string())
            .or_insert_with(|| {
                let latest = self.shared.latest.sender(tenant);
                let tenant = SqliteTenant { shared: self.shared.clone(), tenant: tenant.into(), limits, latest };
                if let Ok(revision) = tenant.revision() {
                    tenant.shared.latest.told(&tenant.tenant, revision);
                }
                Arc::new(tenant)
            })
            .clone()
    }

    fn expiring(&self, now_ms: u64) -> Result<Vec<String>, BoardError> {
        let conn = self.shared.read.lock();
        let mut statement = conn
            .prepare_cached("SELECT DISTINCT tenant FROM board_entries WHERE expires_ms <= ?1")
            .map_err(|e| self.shared.fail(e))?;
        let rows = statement.query_map([int(now_ms)], |r| r.get(0)).map_err(|e| self.shared.fail(e))?;
        rows.collect::<Result<Vec<String>, _>>().map_err(|e| self.shared.fail(e))
    }
}

struct SqliteTenant {
    shared: Arc<Shared>,
    tenant: Arc<str>,
    limits: BoardLimits,
    latest: watch::Sender<u64>,
}

/// A step of a write transaction.
enum Step<'a> {
    Write(&'a Write<'a>),
    Reap { key: &'a str, revision: u64, now_ms: u64 },
    Sweep { now_ms: u64, limit: usize },
}

impl SqliteTenant {
    /// Runs `step` in one transaction and commits whatever it changed — also
    /// when its answer is a refusal, so an expired entry removed on the way
    /// stays removed. Returns a revision, a count, or whether it removed.
    fn transact(&self, step: Step<'_>) -> Result<u64, BoardError> {
        let written = self.shared.write.write(|conn| {
            let mut tx = Tx::open(conn, &self.tenant, &self.limits)?;
            let before = tx.revision;
            let answer = match step {
                Step::Write(write) => write_step(&mut tx, write),
                Step::Reap { key, revision, now_ms } => {
                    tx.remove_if_expired(key, Some(revision), now_ms).map(u64::from)
                }
                Step::Sweep { now_ms, limit } => tx.sweep(now_ms, limit).map(|n| n as u64),
            };
            let answer = match answer {
                Ok(answer) => Ok(answer),
                Err(Refused::Rule(e)) => Err(e),
                Err(Refused::Db(e)) => return Err(e),
            };
            let changed = (tx.revision != before).then_some(tx.revision);
            if changed.is_some() {
                tx.finish()?;
            }
            Ok((answer, changed))
        });
        match written {
            Ok((answer, latest)) => {
                if let Some(latest) = latest {
                    self.shared.latest.told(&self.tenant, latest);
                }
                answer
            }
            Err(group::Failed::Work(e)) => Err(self.shared.fail(e)),
            Err(group::Failed::Commit(e)) => Err(self.shared.fail(e)),
        }
    }
}

fn write_step(tx: &mut Tx<'_>, write: &Write<'_>) -> Result<u64, Refused> {
    tx.remove_if_expired(write.key, None, write.at_ms)?;
    match tx.apply(write) {
        Err(Refused::Rule(BoardError::QuotaExceeded(e))) => {
            if tx.sweep(write.at_ms, super::expiry::SWEEP_BATCH)? > 0 {
                tx.apply(write)
            } else {
                Err(Refused::Rule(BoardError::QuotaExceeded(e)))
            }
        }
        answer => answer,
    }
}

impl TenantStore for SqliteTenant {
    fn get(&self, key: &str) -> Result<Option<Entry>, BoardError> {
        let conn = self.shared.read.lock();
        let mut statement = conn
            .prepare_cached(
                "SELECT value, revision, agent, run, written_ms, expires_ms FROM board_entries
                 WHERE tenant = ?1 AND key = ?2",
            )
            .map_err(|e| self.shared.fail(e))?;
        statement
            .query_row(params![&*self.tenant, key], |r| {
                Ok(Entry {
                    value: Arc::from(r.get_ref(0)?.as_blob()?),
                    revision: uint(r.get(1)?),
                    writer: Writer::new(r.get_ref(2)?.as_str()?, r.get_ref(3)?.as_str()?),
                    written_at: from_unix_millis(uint(r.get(4)?)),
                    expires_at: r.get::<_, Option<i64>>(5)?.map(|at| from_unix_millis(uint(at))),
                })
            })
            .optional()
            .map_err(|e| self.shared.fail(e))
    }

    fn write(&self, write: &Write<'_>) -> Result<u64, BoardError> {
        self.transact(Step::Write(write))
    }

    fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        now_ms: u64,
    ) -> Result<Vec<Arc<str>>, BoardError> {
        let until = crate::sql::past(prefix);
        let sql = match until {
            Some(_) => "AND key < ?5",
            None => "AND ?5 = ''",
        };
        let sql = format!(
            "SELECT key FROM board_entries WHERE tenant = ?1 AND key >= ?2 AND key > ?3 {sql}
             AND (expires_ms IS NULL OR expires_ms > ?4) ORDER BY key LIMIT ?6"
        );
        let conn = self.shared.read.lock();
        let mut statement = conn.prepare_cached(&sql).map_err(|e| self.shared.fail(e))?;
        let after = start_after.unwrap_or("");
        let until = until.unwrap_or_default();
        let rows = statement
            .query_map(params![&*self.tenant, prefix, after, int(now_ms), until, int(limit as u64)], |r| {
                Ok(Arc::from(r.get_ref(0)?.as_str()?))
            })
            .map_err(|e| self.shared.fail(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.shared.fail(e))
    }

    fn changes_after(&self, prefix: &str, after: u64, limit: usize, max_bytes: u64) -> Result<Vec<Change>, BoardError> {
        let conn = self.shared.read.lock();
        // One read transaction: the revision, the oldest change and the changes agree.
        let txn = conn.unchecked_transaction().map_err(|e| self.shared.fail(e))?;
        let (latest, oldest): (i64, Option<i64>) = txn
            .prepare_cached(
                "SELECT (SELECT revision FROM board_tenants WHERE tenant = ?1),
                        (SELECT min(revision) FROM board_changes WHERE tenant = ?1)",
            )
            .and_then(|mut s| {
                s.query_row([&*self.tenant], |r| Ok((r.get::<_, Option<i64>>(0)?.unwrap_or(0), r.get(1)?)))
            })
            .map_err(|e| self.shared.fail(e))?;
        let latest = uint(latest);
        if after >= latest {
            return Ok(Vec::new());
        }
        if after + 1 < oldest.map_or(latest + 1, uint) {
            return Err(BoardError::Lagged { after, resume_after: latest });
        }
        let until = crate::sql::past(prefix).unwrap_or_default();
        let mut statement = txn
            .prepare_cached(
                "SELECT revision, key, value, agent, run FROM board_changes
                 WHERE tenant = ?1 AND revision > ?2 AND key >= ?3 AND (?4 = '' OR key < ?4)
                 ORDER BY revision",
            )
            .map_err(|e| self.shared.fail(e))?;
        let mut rows =
            statement.query(params![&*self.tenant, int(after), prefix, until]).map_err(|e| self.shared.fail(e))?;
        // Read one row at a time and bounded as it goes.
        let mut answer = Answer::new(limit, max_bytes);
        while let Some(r) = rows.next().map_err(|e| self.shared.fail(e))? {
            let read = || -> rusqlite::Result<Change> {
                Ok(Change {
                    key: Arc::from(r.get_ref(1)?.as_str()?),
                    value: r.get_ref(2)?.as_blob_or_null()?.map(Arc::from),
                    revision: uint(r.get(0)?),
                    writer: Writer::new(r.get_ref(3)?.as_str()?, r.get_ref(4)?.as_str()?),
                })
            };
            if !answer.push(read().map_err(|e| self.shared.fail(e))?) {
                break;
            }
        }
        Ok(answer.changes)
    }

    fn revision(&self) -> Result<u64, BoardError> {
        let conn = self.shared.read.lock();
        let mut statement = conn
            .prepare_cached("SELECT revision FROM board_tenants WHERE tenant = ?1")
            .map_err(|e| self.shared.fail(e))?;
        let revision = statement.query_row([&*self.tenant], |r| r.get::<_, i64>(0)).optional();
        revision.map(|r| r.map_or(0, uint)).map_err(|e| self.shared.fail(e))
    }

    fn writes_block(&self) -> bool {
        true
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        let shared = &self.shared;
        shared.looking.call_once(|| {
            let (weak, path) = (Arc::downgrade(shared), shared.path.clone());
            let started = std::thread::Builder::new()
                .name("paddock-board-look".into())
                .spawn(move || look_for_other_writes(weak, path));
            if let Err(e) = started {
                tracing::warn!("blackboard: cannot start looking for other processes' writes: {e}");
            }
        });
        self.latest.subscribe()
    }

    fn reap(&self, key: &str, revision: u64, now_ms: u64) -> Result<bool, BoardError> {
        self.transact(Step::Reap { key, revision, now_ms }).map(|removed| removed > 0)
    }

    fn sweep(&self, now_ms: u64, limit: usize) -> Result<usize, BoardError> {
        self.transact(Step::Sweep { now_ms, limit }).map(|n| n as usize)
    }
}

#[cfg(test)]
mod tests;
