//! The PostgreSQL backend: every tenant's board in one database that several
//! hosts share.
//!
//! Layout (`MIGRATIONS`; keys and tenants in the "C" collation, so keys sort
//! in byte order as in every backend):
//! - `board_tenants`: tenant → revision, keys, bytes, and the count and bytes
//!   of its kept changes; the `*` row sums what the tenants [`BoardLimits::shared`]
//!   hold (recounted from the tenants' rows when a host opens the board;
//!   moved after each write, see `PgTenant::transact`)
//! - `board_entries`: (tenant, key) → value, revision, agent, run, written and
//!   expiry times in milliseconds; indexed by expiry for the sweep
//! - `board_changes`: (tenant, revision) → key, value or none (a delete), agent, run
//!
//! A write is one transaction (`tx.rs`) that ends by `NOTIFY paddock_board,
//! '<revision> <tenant>'`; every host listens, so a watcher on any host is
//! woken by a write on any other and reads what changed from `board_changes`,
//! never from the notification: a missed one costs latency, not a change.

mod tx;

use super::latest::Latest;
use super::store::Answer;
use super::{Backend, BoardError, BoardLimits, Change, Entry, TenantStore, Write, Writer, from_unix_millis};
use crate::sql::{int, past, uint};
use paddock_core::names::UNNAMED;
use paddock_postgres::{Migration, Postgres, describe};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::watch;
use tx::{OwnedWrite, Refused, Tx};

/// The channel every host listens on for board writes.
const CHANNEL: &str = "paddock_board";

static MIGRATIONS: &[Migration] = &[Migration {
    name: "boards, entries and changes",
    sql: r#"
        CREATE TABLE board_tenants (
            tenant text COLLATE "C" PRIMARY KEY,
            revision bigint NOT NULL DEFAULT 0,
            keys bigint NOT NULL DEFAULT 0,
            bytes bigint NOT NULL DEFAULT 0,
            history_rows bigint NOT NULL DEFAULT 0,
            history_bytes bigint NOT NULL DEFAULT 0
        );
        INSERT INTO board_tenants (tenant) VALUES ('*');
        CREATE TABLE board_entries (
            tenant text COLLATE "C" NOT NULL,
            key text COLLATE "C" NOT NULL,
            value bytea NOT NULL,
            revision bigint NOT NULL,
            agent text NOT NULL,
            run text NOT NULL,
            written_ms bigint NOT NULL,
            expires_ms bigint,
            PRIMARY KEY (tenant, key)
        );
        CREATE INDEX board_entries_expiry ON board_entries (expires_ms, tenant) WHERE expires_ms IS NOT NULL;
        CREATE INDEX board_entries_tenant_expiry ON board_entries (tenant, expires_ms) WHERE expires_ms IS NOT NULL;
        CREATE TABLE board_changes (
            tenant text COLLATE "C" NOT NULL,
            revision bigint NOT NULL,
            key text COLLATE "C" NOT NULL,
            value bytea,
            agent text NOT NULL,
            run text NOT NULL,
            PRIMARY KEY (tenant, revision)
        );
    "#,
}];

/// A database failure, described.
pub(super) struct SqlError(String);

/// Boards kept in PostgreSQL, shared by every host on the database.
pub struct PostgresBackend {
    pg: Postgres,
    latest: Arc<Latest>,
    tenants: Mutex<HashMap<String, Arc<PgTenant>>>,
}

impl PostgresBackend {
    /// The board in `pg`'s database: its tables made or brought up to date,
    /// the shared quota's sum recounted, and writes of other hosts listened for.
    pub fn open(pg: Postgres) -> Result<Self, BoardError> {
        let failed = |e: String| BoardError::Storage(e);
        pg.migrate("blackboard", MIGRATIONS).map_err(failed)?;
        let shown = pg.shown().to_string();
        pg.run(move |mut c| async move {
            let fail = |e: tokio_postgres::Error| format!("PostgreSQL at {shown}: {}", describe(&e));
            let encoding: String = c.query_one("SHOW server_encoding", &[]).await.map_err(fail)?.get(0);
            if encoding != "UTF8" {
                return Err(format!(
                    "PostgreSQL at {shown}: the database's encoding is {encoding}; the blackboard needs UTF8 \
                     (CREATE DATABASE … ENCODING 'UTF8')"
                ));
            }
            let tx = c.transaction().await.map_err(fail)?;
            tx.execute(
                "UPDATE board_tenants SET (keys, bytes) = (SELECT coalesce(sum(keys), 0), coalesce(sum(bytes), 0)
                     FROM board_tenants WHERE tenant <> $1)
                 WHERE tenant = $1",
                &[&UNNAMED],
            )
            .await
            .map_err(fail)?;
            tx.commit().await.map_err(fail)
        })
        .map_err(failed)?;
        let latest = Arc::new(Latest::default());
        let told = latest.clone();
        pg.listen(CHANNEL, move |note| heard(&told, note));
        Ok(PostgresBackend { pg, latest, tenants: Mutex::default() })
    }
}

/// A write on some host (`"<revision> <tenant>"`), or `None` when the
/// listening connection (re)opened and writes may have been missed: every
/// watcher then looks again.
fn heard(latest: &Latest, note: Option<&str>) {
    match note.and_then(|n| n.split_once(' ')) {
        Some((revision, tenant)) => {
            if let Ok(revision) = revision.parse::<u64>() {
                latest.told(tenant, revision);
            }
        }
        None => latest.wake_all(),
    }
}

impl Backend for PostgresBackend {
    fn open(&self, tenant: &str, limits: BoardLimits) -> Arc<dyn TenantStore> {
        self.tenants
            .lock()
            .entry(tenant.to_string())
            .or_insert_with(|| {
                let latest = self.latest.sender(tenant);
                let tenant = PgTenant { pg: self.pg.clone(), tenant: tenant.into(), limits, latest };
                // A watcher's first look reads the store; this only saves it a wake-up.
                if let Ok(revision) = tenant.revision() {
                    tenant.told(revision);
                }
                Arc::new(tenant)
            })
            .clone()
    }

    fn expiring(&self, now_ms: u64) -> Result<Vec<String>, BoardError> {
        self.pg
            .run(move |c| async move {
                let rows = c
                    .query("SELECT DISTINCT tenant FROM board_entries WHERE expires_ms <= $1", &[&int(now_ms)])
                    .await
                    .map_err(|e| describe(&e))?;
                Ok(rows.iter().map(|r| r.get(0)).collect())
            })
            .map_err(BoardError::Storage)
    }
}

struct PgTenant {
    pg: Postgres,
    tenant: Arc<str>,
    limits: BoardLimits,
    latest: watch::Sender<u64>,
}

/// What one transaction did.
struct Done {
    answer: Result<u64, BoardError>,
    /// The revision after it, when it wrote.
    latest: Option<u64>,
    /// How far the `*` row is to move after the commit, when the tenant's quota is its own.
    moved: Option<(i64, i64)>,
}

/// A step of a write transaction.
enum Step {
    Write(OwnedWrite),
    Reap { key: String, revision: u64, now_ms: u64 },
    Sweep { now_ms: u64, limit: usize },
}

impl PgTenant {
    fn storage(&self, e: String) -> BoardError {
        BoardError::Storage(format!("PostgreSQL at {}: {e}", self.pg.shown()))
    }

    fn told(&self, revision: u64) {
        crate::latest::raise(&self.latest, revision);
    }

    /// Runs `step` in one transaction and commits whatever it changed — also
    /// when its answer is a refusal, so an expired entry removed on the way
    /// stays removed. Returns a revision, a count, or whether it removed.
    fn transact(&self, step: Step) -> Result<u64, BoardError> {
        let (tenant, limits) = (self.tenant.clone(), self.limits);
        let done = self.pg.run(move |mut client| async move {
            if let Step::Write(write) = &step {
                match tx::stale(&client, &tenant, write).await {
                    Ok(Some(conflict)) => return Ok(Done { answer: Err(conflict), latest: None, moved: None }),
                    Ok(None) => {}
                    Err(Refused::Db(SqlError(e))) => return Err(e),
                    Err(Refused::Rule(e)) => return Ok(Done { answer: Err(e), latest: None, moved: None }),
                }
            }
            let txn = client.transaction().await.map_err(|e| describe(&e))?;
            let done = match run_step(&txn, &tenant, &limits, step).await {
                Ok(done) => done,
                Err(SqlError(e)) => return Err(e),
            };
            match done.latest {
                Some(_) => txn.commit().await.map_err(|e| describe(&e))?,
                None => txn.rollback().await.map_err(|e| describe(&e))?,
            }
            if let Some((keys, bytes)) = done.moved {
                // The sum of every tenant, moved in a transaction of its own that
                // does not wait for the disk: the row is locked for microseconds,
                // so the writes of tenants with their own quotas never queue on it.
                // A move lost in a crash is made good by the recount at open.
                let statement = format!(
                    "BEGIN; SET LOCAL synchronous_commit TO OFF;
                     UPDATE board_tenants SET keys = keys + {keys}, bytes = bytes + {bytes} WHERE tenant = '{UNNAMED}';
                     COMMIT"
                );
                client.batch_execute(&statement).await.map_err(|e| describe(&e))?;
            }
            Ok(done)
        });
        let done = done.map_err(|e| self.storage(e))?;
        if let Some(latest) = done.latest {
            self.told(latest);
        }
        done.answer
    }
}

async fn run_step(
    txn: &paddock_postgres::Transaction<'_>,
    tenant: &str,
    limits: &BoardLimits,
    step: Step,
) -> Result<Done, SqlError> {
    let key = match &step {
        Step::Write(write) => Some(write.key.as_str()),
        Step::Reap { key, .. } => Some(key.as_str()),
        Step::Sweep { .. } => None,
    };
    let mut tx = match Tx::open(txn, tenant, limits, key).await {
        Ok(tx) => tx,
        Err(Refused::Db(e)) => return Err(e),
        Err(Refused::Rule(e)) => return Ok(Done { answer: Err(e), latest: None, moved: None }),
    };
    let before = tx.revision;
    let answer = match step {
        Step::Write(write) => write_step(&mut tx, &write).await,
        Step::Reap { key, revision, now_ms } => tx.remove_if_expired(&key, Some(revision), now_ms).await.map(u64::from),
        Step::Sweep { now_ms, limit } => tx.sweep(now_ms, limit).await.map(|n| n as u64),
    };
    let answer = match answer {
        Ok(answer) => Ok(answer),
        Err(Refused::Rule(e)) => Err(e),
        Err(Refused::Db(e)) => return Err(e),
    };
    let latest = tx.revision;
    if latest == before {
        return Ok(Done { answer, latest: None, moved: None });
    }
    match tx.finish().await {
        Ok(moved) => Ok(Done { answer, latest: Some(latest), moved }),
        Err(Refused::Db(e)) => Err(e),
        Err(Refused::Rule(e)) => Ok(Done { answer: Err(e), latest: None, moved: None }),
    }
}

async fn write_step(tx: &mut Tx<'_, '_>, write: &OwnedWrite) -> Result<u64, Refused> {
    tx.remove_if_expired(&write.key, None, write.at_ms).await?;
    match tx.apply(write).await {
        Err(Refused::Rule(BoardError::QuotaExceeded(e))) => {
            if tx.sweep(write.at_ms, super::expiry::SWEEP_BATCH).await? > 0 {
                tx.apply(write).await
            } else {
                Err(Refused::Rule(BoardError::QuotaExceeded(e)))
            }
        }
        answer => answer,
    }
}

impl TenantStore for PgTenant {
    fn get(&self, key: &str) -> Result<Option<Entry>, BoardError> {
        let (tenant, key) = (self.tenant.clone(), key.to_string());
        self.pg
            .run(move |c| async move {
                let sql = "SELECT value, revision, agent, run, written_ms, expires_ms FROM board_entries
                           WHERE tenant = $1 AND key = $2";
                let statement = c.prepare_cached(sql).await.map_err(|e| describe(&e))?;
                let row = c.query_opt(&statement, &[&&*tenant, &key]).await.map_err(|e| describe(&e))?;
                Ok(row.map(|r| Entry {
                    value: Arc::from(r.get::<_, &[u8]>(0)),
                    revision: uint(r.get(1)),
                    writer: Writer::new(r.get::<_, &str>(2), r.get::<_, &str>(3)),
                    written_at: from_unix_millis(uint(r.get(4))),
                    expires_at: r.get::<_, Option<i64>>(5).map(|at| from_unix_millis(uint(at))),
                }))
            })
            .map_err(|e| self.storage(e))
    }

    fn write(&self, write: &Write<'_>) -> Result<u64, BoardError> {
        self.transact(Step::Write(OwnedWrite::from(write)))
    }

    fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        now_ms: u64,
    ) -> Result<Vec<Arc<str>>, BoardError> {
        let tenant = self.tenant.clone();
        let (from, after, until) = (prefix.to_string(), start_after.unwrap_or("").to_string(), past(prefix));
        self.pg
            .run(move |c| async move {
                // Two statements, so the index scan stops where the prefix ends.
                let (sql, until) = match &until {
                    Some(until) => ("AND key < $5", until.as_str()),
                    None => ("AND $5 = ''", ""),
                };
                let sql = format!(
                    "SELECT key FROM board_entries WHERE tenant = $1 AND key >= $2 AND key > $3 {sql}
                     AND (expires_ms IS NULL OR expires_ms > $4) ORDER BY key LIMIT $6"
                );
                let statement = c.prepare_cached(&sql).await.map_err(|e| describe(&e))?;
                let rows = c
                    .query(&statement, &[&&*tenant, &from, &after, &int(now_ms), &until, &int(limit as u64)])
                    .await
                    .map_err(|e| describe(&e))?;
                Ok(rows.iter().map(|r| Arc::from(r.get::<_, &str>(0))).collect())
            })
            .map_err(|e| self.storage(e))
    }

    fn changes_after(&self, prefix: &str, after: u64, limit: usize, max_bytes: u64) -> Result<Vec<Change>, BoardError> {
        let tenant = self.tenant.clone();
        let (from, until) = (prefix.to_string(), past(prefix).unwrap_or_default());
        let answer =
            self.pg.run(move |c| async move { changes(&c, &tenant, (&from, &until), after, limit, max_bytes).await });
        answer.map_err(|e| self.storage(e))?
    }

    fn revision(&self) -> Result<u64, BoardError> {
        let tenant = self.tenant.clone();
        self.pg
            .run(move |c| async move {
                let statement = c
                    .prepare_cached("SELECT revision FROM board_tenants WHERE tenant = $1")
                    .await
                    .map_err(|e| describe(&e))?;
                let row = c.query_opt(&statement, &[&&*tenant]).await.map_err(|e| describe(&e))?;
                Ok(row.map_or(0, |r| uint(r.get(0))))
            })
            .map_err(|e| self.storage(e))
    }

    fn writes_block(&self) -> bool {
        true
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.latest.subscribe()
    }

    fn reap(&self, key: &str, revision: u64, now_ms: u64) -> Result<bool, BoardError> {
        self.transact(Step::Reap { key: key.to_string(), revision, now_ms }).map(|removed| removed > 0)
    }

    fn sweep(&self, now_ms: u64, limit: usize) -> Result<usize, BoardError> {
        self.transact(Step::Sweep { now_ms, limit }).map(|n| n as usize)
    }
}

/// [`TenantStore::changes_after`] in one read: the tenant's revision, its
/// oldest kept change, and the changes, cut in SQL at `limit` and (past the
/// first) at `max_bytes` so no bigger answer leaves the server.
async fn changes(
    c: &paddock_postgres::Client,
    tenant: &str,
    (from, until): (&str, &str),
    after: u64,
    limit: usize,
    max_bytes: u64,
) -> Result<Result<Vec<Change>, BoardError>, String> {
    let fail = |e: tokio_postgres::Error| describe(&e);
    let statement = c
        .prepare_cached(
            "SELECT t.revision, (SELECT min(revision) FROM board_changes WHERE tenant = $1)
             FROM board_tenants t WHERE t.tenant = $1",
        )
        .await
        .map_err(fail)?;
    let row = c.query_opt(&statement, &[&tenant]).await.map_err(fail)?;
    let (latest, oldest) = row.map_or((0, None), |r| (uint(r.get(0)), r.get::<_, Option<i64>>(1).map(uint)));
    if after >= latest {
        return Ok(Ok(Vec::new()));
    }
    if after + 1 < oldest.unwrap_or(latest + 1) {
        return Ok(Err(BoardError::Lagged { after, resume_after: latest }));
    }
    let statement = c
        .prepare_cached(
            "SELECT revision, key, value, agent, run FROM (
                 SELECT revision, key, value, agent, run,
                     row_number() OVER w AS n,
                     sum(octet_length(key) + coalesce(octet_length(value), 0)) OVER w AS upto
                 FROM board_changes
                 WHERE tenant = $1 AND revision > $2 AND key >= $3 AND ($4 = '' OR key < $4)
                 WINDOW w AS (ORDER BY revision)
                 ORDER BY revision LIMIT $5
             ) c WHERE n = 1 OR upto <= $6 ORDER BY revision",
        )
        .await
        .map_err(fail)?;
    let rows = c
        .query(&statement, &[&tenant, &int(after), &from, &until, &int(limit as u64), &int(max_bytes)])
        .await
        .map_err(fail)?;
    let mut answer = Answer::new(limit, max_bytes);
    for r in rows {
        let change = Change {
            key: Arc::from(r.get::<_, &str>(1)),
            value: r.get::<_, Option<&[u8]>>(2).map(Arc::from),
            revision: uint(r.get(0)),
            writer: Writer::new(r.get::<_, &str>(3), r.get::<_, &str>(4)),
        };
        if !answer.push(change) {
            break;
        }
    }
    Ok(Ok(answer.changes))
}

#[cfg(test)]
mod hosts;
