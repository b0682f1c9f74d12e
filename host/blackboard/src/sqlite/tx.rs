//! One tenant's write transaction in the SQLite file: the same steps as the
//! other backends', each a statement. The transaction is `BEGIN IMMEDIATE`,
//! so it holds the file's write lock from its first read: no other process
//! writes between what it reads and what it writes.

use crate::sql::{int, uint};
use crate::{BoardError, BoardLimits, Totals, Write, Writer, plan_shared, plan_write};
use paddock_core::names::UNNAMED;
use rusqlite::{Connection, OptionalExtension, params};

/// Why a step stopped: a rule the write broke (kept in the answer), or the database.
pub(super) enum Refused {
    Rule(BoardError),
    Db(rusqlite::Error),
}

impl From<rusqlite::Error> for Refused {
    fn from(e: rusqlite::Error) -> Self {
        Refused::Db(e)
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
pub(super) struct Tx<'c> {
    tx: &'c Connection,
    tenant: &'c str,
    limits: &'c BoardLimits,
    pub(super) revision: u64,
    totals: Totals,
    /// Every tenant's together.
    all: Totals,
    history_rows: u64,
    history_bytes: u64,
}

impl<'c> Tx<'c> {
    /// Reads the tenant's row (made when missing) and the `*` row.
    pub(super) fn open(tx: &'c Connection, tenant: &'c str, limits: &'c BoardLimits) -> rusqlite::Result<Self> {
        tx.prepare_cached("INSERT OR IGNORE INTO board_tenants (tenant) VALUES (?1)")?.execute([tenant])?;
        let mut read = tx.prepare_cached(
            "SELECT revision, keys, bytes, history_rows, history_bytes FROM board_tenants WHERE tenant = ?1",
        )?;
        let mut row = |t: &str| {
            read.query_row([t], |r| Ok([r.get::<_, i64>(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?].map(uint)))
        };
        let [revision, keys, bytes, history_rows, history_bytes] = row(tenant)?;
        let [_, all_keys, all_bytes, _, _] = row(UNNAMED)?;
        Ok(Tx {
            tx,
            tenant,
            limits,
            revision,
            totals: Totals { keys, bytes },
            all: Totals { keys: all_keys, bytes: all_bytes },
            history_rows,
            history_bytes,
        })
    }

    fn current(&self, key: &str) -> Result<Option<Current>, Refused> {
        let mut read = self.tx.prepare_cached(
            "SELECT revision, length(value), expires_ms FROM board_entries WHERE tenant = ?1 AND key = ?2",
        )?;
        let current = read
            .query_row(params![self.tenant, key], |r| {
                Ok(Current {
                    revision: uint(r.get(0)?),
                    len: usize::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                    expires_ms: r.get::<_, Option<i64>>(2)?.map(uint),
                })
            })
            .optional()?;
        Ok(current)
    }

    /// Plans and applies one write; nothing is changed when it is refused.
    pub(super) fn apply(&mut self, write: &Write<'_>) -> Result<u64, Refused> {
        let (tenant, limits, key) = (self.tenant, self.limits, write.key);
        let was = self.current(key)?.map(|c| (c.revision, c.len));
        let totals = plan_write(tenant, limits, was, self.totals, write).map_err(Refused::Rule)?;
        let all = match limits.shared {
            true => plan_shared(tenant, limits, was, self.all, write).map_err(Refused::Rule)?,
            false => totals.moved(self.totals, self.all),
        };
        let revision = self.revision + 1;
        let (agent, run) = (&*write.writer.agent, &*write.writer.run);
        match write.value {
            Some(value) => {
                self.tx
                    .prepare_cached(
                        "INSERT INTO board_entries (tenant, key, value, revision, agent, run, written_ms, expires_ms)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                         ON CONFLICT (tenant, key) DO UPDATE SET value = ?3, revision = ?4, agent = ?5, run = ?6,
                             written_ms = ?7, expires_ms = ?8",
                    )?
                    .execute(params![
                        tenant,
                        key,
                        value,
                        int(revision),
                        agent,
                        run,
                        int(write.at_ms),
                        write.expires_ms.map(int)
                    ])?;
            }
            None => {
                self.tx
                    .prepare_cached("DELETE FROM board_entries WHERE tenant = ?1 AND key = ?2")?
                    .execute(params![tenant, key])?;
            }
        }
        if limits.history > 0 {
            self.tx
                .prepare_cached(
                    "INSERT INTO board_changes (tenant, revision, key, value, agent, run) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![tenant, int(revision), key, write.value, agent, run])?;
            self.history_rows += 1;
            self.history_bytes += (key.len() + write.value.map_or(0, <[u8]>::len)) as u64;
            self.trim_history()?;
        }
        self.revision = revision;
        self.totals = totals;
        self.all = all;
        Ok(revision)
    }

    /// Removes `key` if it has expired at `now_ms` (and, when given, still
    /// has `revision`); whether it did.
    pub(super) fn remove_if_expired(&mut self, key: &str, revision: Option<u64>, now_ms: u64) -> Result<bool, Refused> {
        let current = self.current(key)?;
        let due = current
            .is_some_and(|c| c.expires_ms.is_some_and(|at| at <= now_ms) && revision.is_none_or(|r| r == c.revision));
        if due {
            self.apply(&Write::expiry(key, &Writer::expiry(), now_ms))?;
        }
        Ok(due)
    }

    /// Removes up to `limit` entries expired at `now_ms`, soonest first.
    pub(super) fn sweep(&mut self, now_ms: u64, limit: usize) -> Result<usize, Refused> {
        let due: Vec<String> = {
            let mut read = self.tx.prepare_cached(
                "SELECT key FROM board_entries WHERE tenant = ?1 AND expires_ms <= ?2 ORDER BY expires_ms, key LIMIT ?3",
            )?;
            let rows = read.query_map(params![self.tenant, int(now_ms), int(limit as u64)], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        let mut removed = 0;
        for key in due {
            if self.remove_if_expired(&key, None, now_ms)? {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Drops the oldest changes while more than `limits.history` are kept or
    /// they weigh more than `limits.history_bytes`, keeping the newest always.
    fn trim_history(&mut self) -> Result<(), Refused> {
        while self.history_rows > 1
            && (self.history_rows > self.limits.history as u64 || self.history_bytes > self.limits.history_bytes)
        {
            let dropped: Option<i64> = self
                .tx
                .prepare_cached(
                    "DELETE FROM board_changes WHERE tenant = ?1 AND revision =
                         (SELECT min(revision) FROM board_changes WHERE tenant = ?1)
                     RETURNING length(CAST(key AS BLOB)) + coalesce(length(value), 0)",
                )?
                .query_row([self.tenant], |r| r.get(0))
                .optional()?;
            let Some(weight) = dropped else {
                (self.history_rows, self.history_bytes) = (0, 0);
                break;
            };
            self.history_rows -= 1;
            self.history_bytes = self.history_bytes.saturating_sub(uint(weight));
        }
        Ok(())
    }

    /// Stores the tenant's revision and totals, and every tenant's.
    pub(super) fn finish(self) -> rusqlite::Result<()> {
        let t = self.totals;
        self.tx
            .prepare_cached(
                "UPDATE board_tenants SET revision = ?2, keys = ?3, bytes = ?4, history_rows = ?5, history_bytes = ?6
                 WHERE tenant = ?1",
            )?
            .execute(params![
                self.tenant,
                int(self.revision),
                int(t.keys),
                int(t.bytes),
                int(self.history_rows),
                int(self.history_bytes)
            ])?;
        self.tx
            .prepare_cached("UPDATE board_tenants SET keys = ?2, bytes = ?3 WHERE tenant = ?1")?
            .execute(params![UNNAMED, int(self.all.keys), int(self.all.bytes)])?;
        Ok(())
    }
}
