//! One tenant's write transaction on PostgreSQL: the same steps as the redb
//! backend's (`durable.rs`), each a statement.
//!
//! The tenant's row in `board_tenants` is locked first (by the upsert that
//! reads it), so one tenant's writes queue on every host and its revisions
//! stay consecutive; a write under the quota every unnamed tenant shares then
//! locks the `*` row. Writes of different named tenants never wait on each other.

use super::SqlError;
use crate::sql::{int, uint};
use crate::{BoardError, BoardLimits, Totals, Write, Writer, plan_shared, plan_write};
use paddock_core::names::UNNAMED;
use paddock_postgres::Transaction;
use tokio_postgres::Statement;

/// A write the transaction owns (the store's call waits on another thread).
pub(super) struct OwnedWrite {
    pub key: String,
    pub expected: Option<u64>,
    pub value: Option<Vec<u8>>,
    pub writer: Writer,
    pub at_ms: u64,
    pub expires_ms: Option<u64>,
}

impl OwnedWrite {
    pub(super) fn from(write: &Write<'_>) -> Self {
        OwnedWrite {
            key: write.key.to_string(),
            expected: write.expected,
            value: write.value.map(<[u8]>::to_vec),
            writer: write.writer.clone(),
            at_ms: write.at_ms,
            expires_ms: write.expires_ms,
        }
    }

    fn expiry(key: &str, at_ms: u64) -> Self {
        OwnedWrite {
            key: key.to_string(),
            expected: None,
            value: None,
            writer: Writer::expiry(),
            at_ms,
            expires_ms: None,
        }
    }

    fn borrowed(&self) -> Write<'_> {
        Write {
            key: &self.key,
            expected: self.expected,
            value: self.value.as_deref(),
            writer: &self.writer,
            at_ms: self.at_ms,
            expires_ms: self.expires_ms,
        }
    }
}

/// Why a step stopped: a rule the write broke (kept in the answer), or the database.
pub(super) enum Refused {
    Rule(BoardError),
    Db(SqlError),
}

impl From<SqlError> for Refused {
    fn from(e: SqlError) -> Self {
        Refused::Db(e)
    }
}

impl From<tokio_postgres::Error> for Refused {
    fn from(e: tokio_postgres::Error) -> Self {
        Refused::Db(SqlError(paddock_postgres::describe(&e)))
    }
}

/// A key's current revision, value length and expiry.
#[derive(Clone, Copy)]
struct Current {
    revision: u64,
    len: usize,
    expires_ms: Option<u64>,
}

/// A compare-and-swap that a read outside any lock already shows to fail:
/// its key was written since (or removed) — a key's revision only grows, so
/// it fails under the lock too. Contended swaps are refused without queueing
/// on the tenant's row. An expired entry is left to the write, which removes it.
pub(super) async fn stale(
    client: &paddock_postgres::Client,
    tenant: &str,
    write: &OwnedWrite,
) -> Result<Option<BoardError>, Refused> {
    let Some(expected) = write.expected else { return Ok(None) };
    let row = client.query_opt(&client.prepare_cached(CURRENT).await?, &[&tenant, &write.key]).await?;
    let revision = match row.map(current) {
        Some(c) if c.expires_ms.is_some_and(|at| at <= write.at_ms) => return Ok(None),
        Some(c) => c.revision,
        None => 0,
    };
    Ok((revision != expected).then_some(BoardError::Conflict { current: revision }))
}

/// One tenant inside a write transaction, with its revision and totals as
/// they stand in it.
pub(super) struct Tx<'c, 't> {
    tx: &'t Transaction<'c>,
    tenant: &'t str,
    limits: &'t BoardLimits,
    pub(super) revision: u64,
    totals: Totals,
    /// The totals when the transaction began.
    opened: Totals,
    /// Every tenant's together, when the tenant's quota is shared.
    all: Option<Totals>,
    history_rows: u64,
    history_bytes: u64,
    /// A key's state as this transaction last read or wrote it, so a write
    /// reads its key once (in the round trip that takes the lock).
    known: Option<(String, Option<Current>)>,
}

/// Removes a tenant's oldest change, returning its weight.
const DROP_OLDEST: &str = "DELETE FROM board_changes WHERE tenant = $1 AND revision =
     (SELECT min(revision) FROM board_changes WHERE tenant = $1)
     RETURNING octet_length(key) + coalesce(octet_length(value), 0)";

/// A key's revision, value length and expiry.
const CURRENT: &str =
    "SELECT revision, octet_length(value), expires_ms FROM board_entries WHERE tenant = $1 AND key = $2";

/// The statement `sql`, prepared once per connection.
async fn stmt(tx: &Transaction<'_>, sql: &str) -> Result<Statement, Refused> {
    Ok(tx.prepare_cached(sql).await?)
}

/// A row of [`CURRENT`].
fn current(row: tokio_postgres::Row) -> Current {
    Current {
        revision: uint(row.get(0)),
        len: usize::try_from(row.get::<_, i32>(1)).unwrap_or(0),
        expires_ms: row.get::<_, Option<i64>>(2).map(uint),
    }
}

impl<'c, 't> Tx<'c, 't> {
    /// Locks the tenant's row (made when missing) and, for a shared quota,
    /// the `*` row, and reads `key`: one round trip, the statements sent
    /// together and run in order, so the key is read after the lock is held.
    pub(super) async fn open(
        tx: &'t Transaction<'c>,
        tenant: &'t str,
        limits: &'t BoardLimits,
        key: Option<&str>,
    ) -> Result<Tx<'c, 't>, Refused> {
        let upsert = stmt(
            tx,
            "INSERT INTO board_tenants (tenant) VALUES ($1)
             ON CONFLICT (tenant) DO UPDATE SET tenant = EXCLUDED.tenant
             RETURNING revision, keys, bytes, history_rows, history_bytes",
        )
        .await?;
        let lock = stmt(tx, "SELECT keys, bytes FROM board_tenants WHERE tenant = $1 FOR UPDATE").await?;
        let read = stmt(tx, CURRENT).await?;
        let all = async {
            match limits.shared {
                true => tx.query_one(&lock, &[&UNNAMED]).await.map(Some),
                false => Ok(None),
            }
        };
        let current = async {
            match key {
                Some(key) => tx.query_opt(&read, &[&tenant, &key]).await.map(|row| Some((key, row.map(current)))),
                None => Ok(None),
            }
        };
        let locked = async { tx.query_one(&upsert, &[&tenant]).await };
        let (row, all, known) = tokio::try_join!(locked, all, current)?;
        Ok(Tx {
            tx,
            tenant,
            limits,
            revision: uint(row.get(0)),
            totals: Totals { keys: uint(row.get(1)), bytes: uint(row.get(2)) },
            opened: Totals { keys: uint(row.get(1)), bytes: uint(row.get(2)) },
            all: all.map(|all| Totals { keys: uint(all.get(0)), bytes: uint(all.get(1)) }),
            history_rows: uint(row.get(3)),
            history_bytes: uint(row.get(4)),
            known: known.map(|(key, current)| (key.to_string(), current)),
        })
    }

    async fn current(&self, key: &str) -> Result<Option<Current>, Refused> {
        if let Some((known, current)) = &self.known
            && known == key
        {
            return Ok(*current);
        }
        let row = self.tx.query_opt(&stmt(self.tx, CURRENT).await?, &[&self.tenant, &key]).await?;
        Ok(row.map(current))
    }

    /// Plans and applies one write; nothing is changed when it is refused.
    /// The entry, its change and the oldest change it pushes out of the
    /// history are one round trip.
    pub(super) async fn apply(&mut self, write: &OwnedWrite) -> Result<u64, Refused> {
        let (tenant, limits) = (self.tenant, self.limits);
        let was = self.current(&write.key).await?;
        let borrowed = write.borrowed();
        let sized = was.map(|c| (c.revision, c.len));
        let totals = plan_write(tenant, limits, sized, self.totals, &borrowed).map_err(Refused::Rule)?;
        let all = match self.all {
            Some(all) => Some(plan_shared(tenant, limits, sized, all, &borrowed).map_err(Refused::Rule)?),
            None => None,
        };
        let revision = self.revision + 1;
        let (key, writer) = (write.key.as_str(), &write.writer);
        let (agent, run) = (&*writer.agent, &*writer.run);
        let (at, expires, rev) = (int(write.at_ms), write.expires_ms.map(int), int(revision));
        let upsert = stmt(
            self.tx,
            "INSERT INTO board_entries (tenant, key, value, revision, agent, run, written_ms, expires_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (tenant, key) DO UPDATE SET value = $3, revision = $4, agent = $5, run = $6,
                 written_ms = $7, expires_ms = $8",
        )
        .await?;
        let delete = stmt(self.tx, "DELETE FROM board_entries WHERE tenant = $1 AND key = $2").await?;
        let entry = async {
            match &write.value {
                Some(value) => {
                    self.tx.execute(&upsert, &[&tenant, &key, value, &rev, &agent, &run, &at, &expires]).await
                }
                None => self.tx.execute(&delete, &[&tenant, &key]).await,
            }
        };
        let kept = limits.history > 0;
        if kept {
            self.history_rows += 1;
            self.history_bytes += (key.len() + write.value.as_ref().map_or(0, Vec::len)) as u64;
        }
        let record = stmt(
            self.tx,
            "INSERT INTO board_changes (tenant, revision, key, value, agent, run) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .await?;
        let change = async {
            match kept {
                true => self.tx.execute(&record, &[&tenant, &rev, &key, &write.value, &agent, &run]).await,
                false => Ok(0),
            }
        };
        let drop_oldest = stmt(self.tx, DROP_OLDEST).await?;
        let trim = async {
            match kept && self.over_history() {
                true => self.tx.query_opt(&drop_oldest, &[&self.tenant]).await,
                false => Ok(None),
            }
        };
        let (_, _, dropped) = tokio::try_join!(entry, change, trim)?;
        if let Some(row) = dropped {
            self.dropped(Some(row));
        }
        self.trim_history().await?;
        self.revision = revision;
        self.totals = totals;
        self.all = all;
        let now = write.value.as_ref().map(|v| Current { revision, len: v.len(), expires_ms: write.expires_ms });
        self.known = Some((write.key.clone(), now));
        Ok(revision)
    }

    /// Removes `key` if it has expired at `now_ms` (and, when given, still
    /// has `revision`); whether it did.
    pub(super) async fn remove_if_expired(
        &mut self,
        key: &str,
        revision: Option<u64>,
        now_ms: u64,
    ) -> Result<bool, Refused> {
        let current = self.current(key).await?;
        let due = current
            .is_some_and(|c| c.expires_ms.is_some_and(|at| at <= now_ms) && revision.is_none_or(|r| r == c.revision));
        if due {
            self.apply(&OwnedWrite::expiry(key, now_ms)).await?;
        }
        Ok(due)
    }

    /// Removes up to `limit` entries expired at `now_ms`, soonest first.
    pub(super) async fn sweep(&mut self, now_ms: u64, limit: usize) -> Result<usize, Refused> {
        let due = self
            .tx
            .query(
&stmt(self.tx, "SELECT key FROM board_entries WHERE tenant = $1 AND expires_ms <= $2 ORDER BY expires_ms, key LIMIT $3").await?,
                &[&self.tenant, &int(now_ms), &int(limit as u64)],
            )
            .await?;
        let mut removed = 0;
        for row in due {
            let key: String = row.get(0);
            if self.remove_if_expired(&key, None, now_ms).await? {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Whether more changes are kept than `limits.history`, or heavier than
    /// `limits.history_bytes`; the newest is kept always.
    fn over_history(&self) -> bool {
        self.history_rows > 1
            && (self.history_rows > self.limits.history as u64 || self.history_bytes > self.limits.history_bytes)
    }

    /// Counts the change [`DROP_OLDEST`] removed (the row it returned), or
    /// that none was left.
    fn dropped(&mut self, row: Option<tokio_postgres::Row>) {
        match row {
            Some(row) => {
                self.history_rows -= 1;
                self.history_bytes = self.history_bytes.saturating_sub(uint(row.get::<_, i32>(0).into()));
            }
            None => (self.history_rows, self.history_bytes) = (0, 0),
        }
    }

    /// Drops the oldest changes while the history is over its limits.
    async fn trim_history(&mut self) -> Result<(), Refused> {
        while self.over_history() {
            let dropped = self.tx.query_opt(&stmt(self.tx, DROP_OLDEST).await?, &[&self.tenant]).await?;
            self.dropped(dropped);
        }
        Ok(())
    }

    /// Stores the revision and totals and tells every host the new revision
    /// (delivered when the transaction commits). Returns how far the `*` row
    /// is still to move, as (keys, bytes), when this tenant's quota is its own.
    pub(super) async fn finish(self) -> Result<Option<(i64, i64)>, Refused> {
        let (tenant, t) = (self.tenant, self.totals);
        let store = stmt(
            self.tx,
            "UPDATE board_tenants SET revision = $2, keys = $3, bytes = $4, history_rows = $5, history_bytes = $6
             WHERE tenant = $1",
        )
        .await?;
        let (revision, keys, bytes) = (int(self.revision), int(t.keys), int(t.bytes));
        let (rows, weight) = (int(self.history_rows), int(self.history_bytes));
        let shared = stmt(self.tx, "UPDATE board_tenants SET keys = $2, bytes = $3 WHERE tenant = $1").await?;
        let all = async {
            match self.all {
                Some(all) => self.tx.execute(&shared, &[&UNNAMED, &int(all.keys), &int(all.bytes)]).await,
                None => Ok(0),
            }
        };
        let notify = stmt(self.tx, "SELECT pg_notify($1, $2)").await?;
        let note = format!("{} {tenant}", self.revision);
        let stored = async { self.tx.execute(&store, &[&tenant, &revision, &keys, &bytes, &rows, &weight]).await };
        let told = async { self.tx.execute(&notify, &[&super::CHANNEL, &note]).await };
        tokio::try_join!(stored, all, told)?;
        let moved = (int(t.keys) - int(self.opened.keys), int(t.bytes) - int(self.opened.bytes));
        Ok((self.all.is_none() && moved != (0, 0)).then_some(moved))
    }
}
