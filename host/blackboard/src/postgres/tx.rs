//! One tenant's write transaction on PostgreSQL: the same steps as the redb
//! backend's (`durable.rs`), each a statement.
//!
//! The tenant's row in `board_tenants` is locked first (by the upsert that
//! reads it), so one tenant's writes queue on every host and its revisions
//! stay consecutive; a write under the quota every unnamed tenant shares then
//! locks the `*` row. Writes of different named tenants never wait on each other.

use super::SqlError;
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
}

/// The statement `sql`, prepared once per connection.
async fn stmt(tx: &Transaction<'_>, sql: &str) -> Result<Statement, Refused> {
    Ok(tx.prepare_cached(sql).await?)
}

fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn uint(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl<'c, 't> Tx<'c, 't> {
    /// Locks the tenant's row (made when missing) and, for a shared quota, the `*` row.
    pub(super) async fn open(
        tx: &'t Transaction<'c>,
        tenant: &'t str,
        limits: &'t BoardLimits,
    ) -> Result<Tx<'c, 't>, Refused> {
        let row = tx
            .query_one(
                &stmt(
                    tx,
                    "INSERT INTO board_tenants (tenant) VALUES ($1)
                 ON CONFLICT (tenant) DO UPDATE SET tenant = EXCLUDED.tenant
                 RETURNING revision, keys, bytes, history_rows, history_bytes",
                )
                .await?,
                &[&tenant],
            )
            .await?;
        let all = match limits.shared {
            true => {
                let lock = stmt(tx, "SELECT keys, bytes FROM board_tenants WHERE tenant = $1 FOR UPDATE").await?;
                let all = tx.query_one(&lock, &[&UNNAMED]).await?;
                Some(Totals { keys: uint(all.get(0)), bytes: uint(all.get(1)) })
            }
            false => None,
        };
        Ok(Tx {
            tx,
            tenant,
            limits,
            revision: uint(row.get(0)),
            totals: Totals { keys: uint(row.get(1)), bytes: uint(row.get(2)) },
            opened: Totals { keys: uint(row.get(1)), bytes: uint(row.get(2)) },
            all,
            history_rows: uint(row.get(3)),
            history_bytes: uint(row.get(4)),
        })
    }

    async fn current(&self, key: &str) -> Result<Option<Current>, Refused> {
        let row = self
            .tx
            .query_opt(
&stmt(self.tx, "SELECT revision, octet_length(value), expires_ms FROM board_entries WHERE tenant = $1 AND key = $2").await?,
                &[&self.tenant, &key],
            )
            .await?;
        Ok(row.map(|r| Current {
            revision: uint(r.get(0)),
            len: usize::try_from(r.get::<_, i32>(1)).unwrap_or(0),
            expires_ms: r.get::<_, Option<i64>>(2).map(uint),
        }))
    }

    /// Plans and applies one write; nothing is changed when it is refused.
    pub(super) async fn apply(&mut self, write: &OwnedWrite) -> Result<u64, Refused> {
        let (tenant, limits) = (self.tenant, self.limits);
        let was = self.current(&write.key).await?.map(|c| (c.revision, c.len));
        let borrowed = write.borrowed();
        let totals = plan_write(tenant, limits, was, self.totals, &borrowed).map_err(Refused::Rule)?;
        let all = match self.all {
            Some(all) => Some(plan_shared(tenant, limits, was, all, &borrowed).map_err(Refused::Rule)?),
            None => None,
        };
        let revision = self.revision + 1;
        let (key, writer) = (write.key.as_str(), &write.writer);
        let (agent, run) = (&*writer.agent, &*writer.run);
        match &write.value {
            Some(value) => {
                self.tx
                    .execute(
&stmt(self.tx, "INSERT INTO board_entries (tenant, key, value, revision, agent, run, written_ms, expires_ms)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                         ON CONFLICT (tenant, key) DO UPDATE SET value = $3, revision = $4, agent = $5, run = $6,
                             written_ms = $7, expires_ms = $8").await?,
                        &[
                            &tenant,
                            &key,
                            value,
                            &int(revision),
                            &agent,
                            &run,
                            &int(write.at_ms),
                            &write.expires_ms.map(int),
                        ],
                    )
                    .await?;
            }
            None => {
                self.tx
                    .execute(
                        &stmt(self.tx, "DELETE FROM board_entries WHERE tenant = $1 AND key = $2").await?,
                        &[&tenant, &key],
                    )
                    .await?;
            }
        }
        if limits.history > 0 {
            self.tx
                .execute(
&stmt(self.tx, "INSERT INTO board_changes (tenant, revision, key, value, agent, run) VALUES ($1, $2, $3, $4, $5, $6)").await?,
                    &[&tenant, &int(revision), &key, &write.value, &agent, &run],
                )
                .await?;
            self.history_rows += 1;
            self.history_bytes += (key.len() + write.value.as_ref().map_or(0, Vec::len)) as u64;
            self.trim_history().await?;
        }
        self.revision = revision;
        self.totals = totals;
        self.all = all;
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

    /// Drops the oldest changes while more than `limits.history` are kept or
    /// they weigh more than `limits.history_bytes`, keeping the newest always.
    async fn trim_history(&mut self) -> Result<(), Refused> {
        while self.history_rows > 1
            && (self.history_rows > self.limits.history as u64 || self.history_bytes > self.limits.history_bytes)
        {
            let dropped = self
                .tx
                .query_opt(
                    &stmt(
                        self.tx,
                        "DELETE FROM board_changes WHERE tenant = $1 AND revision =
                         (SELECT min(revision) FROM board_changes WHERE tenant = $1)
                     RETURNING octet_length(key) + coalesce(octet_length(value), 0)",
                    )
                    .await?,
                    &[&self.tenant],
                )
                .await?;
            let Some(row) = dropped else {
                self.history_rows = 0;
                self.history_bytes = 0;
                break;
            };
            self.history_rows -= 1;
            self.history_bytes = self.history_bytes.saturating_sub(uint(row.get::<_, i32>(0).into()));
        }
        Ok(())
    }

    /// Stores the revision and totals and tells every host the new revision
    /// (delivered when the transaction commits). Returns how far the `*` row
    /// is still to move, as (keys, bytes), when this tenant's quota is its own.
    pub(super) async fn finish(self) -> Result<Option<(i64, i64)>, Refused> {
        let (tenant, t) = (self.tenant, self.totals);
        self.tx
            .execute(
&stmt(self.tx, "UPDATE board_tenants SET revision = $2, keys = $3, bytes = $4, history_rows = $5, history_bytes = $6
                 WHERE tenant = $1").await?,
                &[
                    &tenant,
                    &int(self.revision),
                    &int(t.keys),
                    &int(t.bytes),
                    &int(self.history_rows),
                    &int(self.history_bytes),
                ],
            )
            .await?;
        if let Some(all) = self.all {
            self.tx
                .execute(
                    &stmt(self.tx, "UPDATE board_tenants SET keys = $2, bytes = $3 WHERE tenant = $1").await?,
                    &[&UNNAMED, &int(all.keys), &int(all.bytes)],
                )
                .await?;
        }
        let note = format!("{} {tenant}", self.revision);
        self.tx.execute(&stmt(self.tx, "SELECT pg_notify($1, $2)").await?, &[&super::CHANNEL, &note]).await?;
        let moved = (int(t.keys) - int(self.opened.keys), int(t.bytes) - int(self.opened.bytes));
        Ok((self.all.is_none() && moved != (0, 0)).then_some(moved))
    }
}
