//! The durable backend: one redb file for every tenant's board.
//!
//! Why redb rather than SQLite: it is pure Rust (no C toolchain in the build),
//! its tables are typed, ordered B-trees — exactly the key-range and
//! revision-range scans a board needs, with no SQL layer to go through — and a
//! commit is durable (fsync) by default while readers see a consistent snapshot
//! without blocking the writer. SQLite would bring a mature WAL and ad-hoc
//! queries, neither of which the board needs.
//!
//! Layout (all keys start with the tenant, so tenants never share a key):
//! - `entries`: (tenant, key) → revision, written-at, expires-at, agent, run, value
//! - `history`: (tenant, revision) → key, agent, run, value or deletion
//! - `expiry`:  (tenant, expires-at millis, key) → (), for entries with a ttl
//! - `totals`:  tenant → (revision, keys, bytes), and `*` → (0, keys, bytes)
//!   of every tenant together (the quota unnamed tenants share)
//! - `meta`:    "format" → the record format (see `codec.rs`)
//!
//! A write updates them in one transaction, so after a crash the board is
//! exactly as of the last acknowledged write.

mod codec;

use super::expiry::SWEEP_BATCH;
use super::store::Answer;
use super::{
    Backend, BoardError, BoardLimits, Change, Entry, TenantStore, Totals, Write, Writer, plan_shared, plan_write,
};
use codec::{Stored, decode_change, decode_entry, encode_change, encode_entry};
use parking_lot::Mutex;
use redb::{Database, ReadableDatabase, ReadableTable, Table, TableDefinition, WriteTransaction};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::watch;

const ENTRIES: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("entries");
const HISTORY: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("history");
const EXPIRY: TableDefinition<(&str, u64, &str), ()> = TableDefinition::new("expiry");
const TOTALS: TableDefinition<&str, (u64, u64, u64)> = TableDefinition::new("totals");
/// The row of `totals` summing every tenant's keys and bytes (no tenant can be named `*`).
const ALL: &str = paddock_core::names::UNNAMED;
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Bytes of each tenant's `history` records; a tenant missing here (a file
/// from before it was kept) is counted from its history when first written.
const HISTORY_BYTES: TableDefinition<&str, u64> = TableDefinition::new("history_bytes");

/// Boards kept in a redb file; every acknowledged write survives a crash.
pub struct RedbBackend {
    db: Arc<Database>,
    tenants: Mutex<HashMap<String, Arc<RedbTenant>>>,
}

impl RedbBackend {
    /// Opens (or creates) the board file at `path`, creating its folder, and
    /// brings records of an older format up to date.
    pub fn open(path: &Path) -> Result<Self, BoardError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| BoardError::Storage(format!("cannot create {}: {e}", dir.display())))?;
        }
        let named = |e: String| BoardError::Storage(format!("{}: {e}", path.display()));
        let db = Database::create(path).map_err(|e| named(e.to_string()))?;
        // Create the tables up front so readers never meet a missing one.
        let txn = db.begin_write().map_err(storage)?;
        {
            let mut entries = txn.open_table(ENTRIES).map_err(storage)?;
            let mut history = txn.open_table(HISTORY).map_err(storage)?;
            txn.open_table(EXPIRY).map_err(storage)?;
            let mut totals = txn.open_table(TOTALS).map_err(storage)?;
            if totals.get(ALL).map_err(storage)?.is_none() {
                // A file from before the sum of all tenants was kept.
                let mut all = (0, 0, 0);
                for row in totals.iter().map_err(storage)? {
                    let (_, keys, bytes) = row.map_err(storage)?.1.value();
                    all = (0, all.1 + keys, all.2 + bytes);
                }
                totals.insert(ALL, all).map_err(storage)?;
            }
            txn.open_table(HISTORY_BYTES).map_err(storage)?;
            let mut meta = txn.open_table(META).map_err(storage)?;
            let format = meta.get("format").map_err(storage)?.map(|g| g.value());
            match format {
                Some(codec::FORMAT) => {}
                // A file from before the format was recorded holds format-1 records.
                None => {
                    codec::upgrade_from_1(&mut entries, &mut history).map_err(|e| named(e.to_string()))?;
                    meta.insert("format", codec::FORMAT).map_err(storage)?;
                }
                Some(other) => {
                    return Err(named(format!(
                        "a board of record format {other}, newer than this paddock reads ({})",
                        codec::FORMAT
                    )));
                }
            }
        }
        txn.commit().map_err(storage)?;
        Ok(RedbBackend { db: Arc::new(db), tenants: Mutex::default() })
    }
}

/// One record of a redb board, as [`RedbBackend::export`] reads it.
pub(crate) enum Record<'a> {
    /// A tenant's revision, keys and bytes (not the `*` row).
    Tenant { tenant: &'a str, revision: u64, keys: u64, bytes: u64 },
    /// An entry.
    Entry { tenant: &'a str, key: &'a str, entry: Entry },
    /// A kept change.
    Change { tenant: &'a str, change: Change },
}

impl RedbBackend {
    /// Reads every record of the file into `each`, in one read transaction.
    pub(crate) fn export(&self, mut each: impl FnMut(Record<'_>) -> Result<(), String>) -> Result<(), String> {
        let fail = |e: BoardError| e.to_string();
        let txn = self.db.begin_read().map_err(|e| fail(storage(e)))?;
        let totals = txn.open_table(TOTALS).map_err(|e| fail(storage(e)))?;
        for row in totals.iter().map_err(|e| fail(storage(e)))? {
            let (tenant, value) = row.map_err(|e| fail(storage(e)))?;
            let (revision, keys, bytes) = value.value();
            if tenant.value() != ALL {
                each(Record::Tenant { tenant: tenant.value(), revision, keys, bytes })?;
            }
        }
        let entries = txn.open_table(ENTRIES).map_err(|e| fail(storage(e)))?;
        for row in entries.iter().map_err(|e| fail(storage(e)))? {
            let (k, v) = row.map_err(|e| fail(storage(e)))?;
            let (tenant, key) = k.value();
            let entry = decode_entry(v.value()).ok_or_else(|| fail(corrupt("entry", tenant)))?.to_entry();
            each(Record::Entry { tenant, key, entry })?;
        }
        let history = txn.open_table(HISTORY).map_err(|e| fail(storage(e)))?;
        for row in history.iter().map_err(|e| fail(storage(e)))? {
            let (k, v) = row.map_err(|e| fail(storage(e)))?;
            let (tenant, revision) = k.value();
            let change = decode_change(revision, v.value()).ok_or_else(|| fail(corrupt("history", tenant)))?;
            each(Record::Change { tenant, change })?;
        }
        Ok(())
    }
}

impl Backend for RedbBackend {
    fn open(&self, tenant: &str, limits: BoardLimits) -> Arc<dyn TenantStore> {
        self.tenants
            .lock()
            .entry(tenant.to_string())
            .or_insert_with(|| {
                Arc::new(RedbTenant {
                    db: self.db.clone(),
                    tenant: tenant.to_string(),
                    limits,
                    latest: watch::Sender::new(0),
                })
            })
            .clone()
    }

    fn expiring(&self, now_ms: u64) -> Result<Vec<String>, BoardError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let table = txn.open_table(EXPIRY).map_err(storage)?;
        // Skip from tenant to tenant: each one's first row is its soonest expiry,
        // and `tenant + "\0"` is the smallest name after it.
        let mut tenants = Vec::new();
        let mut from = String::new();
        loop {
            let Some(row) = table.range((from.as_str(), 0, "")..).map_err(storage)?.next() else { break };
            let (row, _) = row.map_err(storage)?;
            let (tenant, at, _) = row.value();
            if at <= now_ms {
                tenants.push(tenant.to_string());
            }
            from = format!("{tenant}\0");
        }
        Ok(tenants)
    }
}

struct RedbTenant {
    db: Arc<Database>,
    tenant: String,
    limits: BoardLimits,
    latest: watch::Sender<u64>,
}

fn storage(e: impl Into<redb::Error>) -> BoardError {
    BoardError::Storage(e.into().to_string())
}

fn corrupt(what: &str, tenant: &str) -> BoardError {
    BoardError::Storage(format!("a corrupt {what} record of tenant \"{tenant}\""))
}

/// A failure inside a transaction: refused by the rules, or by the database.
enum Refused {
    Rule(BoardError),
    Db(redb::Error),
}

impl<E: Into<redb::Error>> From<E> for Refused {
    fn from(e: E) -> Self {
        Refused::Db(e.into())
    }
}

/// A key's current revision, value length and expiry.
#[derive(Clone, Copy)]
struct Current {
    revision: u64,
    len: usize,
    expires_ms: Option<u64>,
}

impl Current {
    fn is_expired(&self, now_ms: u64) -> bool {
        self.expires_ms.is_some_and(|at| at <= now_ms)
    }
}

/// One tenant's tables inside a write transaction, with its revision and
/// totals as they stand in it.
struct Tx<'t> {
    tenant: &'t str,
    limits: &'t BoardLimits,
    entries: Table<'t, (&'static str, &'static str), &'static [u8]>,
    history: Table<'t, (&'static str, u64), &'static [u8]>,
    expiry: Table<'t, (&'static str, u64, &'static str), ()>,
    totals_table: Table<'t, &'static str, (u64, u64, u64)>,
    history_bytes_table: Table<'t, &'static str, u64>,
    revision: u64,
    totals: Totals,
    /// What every tenant holds together.
    all: Totals,
    /// Bytes of the tenant's history records.
    history_bytes: u64,
}

impl<'t> Tx<'t> {
    fn open(txn: &'t WriteTransaction, tenant: &'t str, limits: &'t BoardLimits) -> Result<Self, Refused> {
        let totals_table = txn.open_table(TOTALS)?;
        let (revision, keys, bytes) = totals_table.get(tenant)?.map_or((0, 0, 0), |g| g.value());
        let (_, all_keys, all_bytes) = totals_table.get(ALL)?.map_or((0, 0, 0), |g| g.value());
        let history: Table<'t, (&'static str, u64), &'static [u8]> = txn.open_table(HISTORY)?;
        let history_bytes_table = txn.open_table(HISTORY_BYTES)?;
        let history_bytes = match history_bytes_table.get(tenant)?.map(|g| g.value()) {
            Some(bytes) => bytes,
            None => {
                let mut sum = 0;
                for row in history.range((tenant, 0)..=(tenant, u64::MAX))? {
                    sum += row?.1.value().len() as u64;
                }
                sum
            }
        };
        Ok(Tx {
            tenant,
            limits,
            entries: txn.open_table(ENTRIES)?,
            history,
            expiry: txn.open_table(EXPIRY)?,
            totals_table,
            history_bytes_table,
            revision,
            totals: Totals { keys, bytes },
            all: Totals { keys: all_keys, bytes: all_bytes },
            history_bytes,
        })
    }

    fn current(&self, key: &str) -> Result<Option<Current>, Refused> {
        let Some(guard) = self.entries.get((self.tenant, key))? else { return Ok(None) };
        let stored = decode_entry(guard.value()).ok_or_else(|| Refused::Rule(corrupt("entry", self.tenant)))?;
        Ok(Some(Current { revision: stored.revision, len: stored.value.len(), expires_ms: stored.expires_ms }))
    }

    /// Plans and applies one write; nothing is changed when it is refused.
    fn apply(&mut self, write: &Write<'_>) -> Result<u64, Refused> {
        let (tenant, key) = (self.tenant, write.key);
        let current = self.current(key)?;
        let was = current.map(|c| (c.revision, c.len));
        let totals = plan_write(tenant, self.limits, was, self.totals, write).map_err(Refused::Rule)?;
        let all = match self.limits.shared {
            true => plan_shared(tenant, self.limits, was, self.all, write).map_err(Refused::Rule)?,
            false => totals.moved(self.totals, self.all),
        };
        let revision = self.revision + 1;
        if let Some(at) = current.and_then(|c| c.expires_ms) {
            self.expiry.remove((tenant, at, key))?;
        }
        match write.value {
            Some(v) => {
                self.entries.insert((tenant, key), encode_entry(revision, write, v).as_slice())?;
                if let Some(at) = write.expires_ms {
                    self.expiry.insert((tenant, at, key), ())?;
                }
            }
            None => {
                self.entries.remove((tenant, key))?;
            }
        }
        if self.limits.history > 0 {
            let record = encode_change(key, write.writer, write.value);
            self.history.insert((tenant, revision), record.as_slice())?;
            self.history_bytes += record.len() as u64;
            self.trim_history(revision)?;
        }
        self.revision = revision;
        self.totals = totals;
        self.all = all;
        Ok(revision)
    }

    /// Removes `key` if it has expired at `now_ms` (and, when given, still has
    /// `revision`); whether it did.
    fn remove_if_expired(&mut self, key: &str, revision: Option<u64>, now_ms: u64) -> Result<bool, Refused> {
        let due = self.current(key)?.is_some_and(|c| c.is_expired(now_ms) && revision.is_none_or(|r| r == c.revision));
        if due {
            self.apply(&Write::expiry(key, &Writer::expiry(), now_ms))?;
        }
        Ok(due)
    }

    /// Removes up to `limit` entries expired at `now_ms`, soonest first.
    fn sweep(&mut self, now_ms: u64, limit: usize) -> Result<usize, Refused> {
        let tenant = self.tenant;
        let mut due: Vec<(u64, String)> = Vec::new();
        for row in self.expiry.range((tenant, 0, "")..(tenant, now_ms.saturating_add(1), ""))?.take(limit) {
            let (row, _) = row?;
            let (_, at, key) = row.value();
            due.push((at, key.to_string()));
        }
        let mut removed = 0;
        for (at, key) in due {
            if self.remove_if_expired(&key, None, now_ms)? {
                removed += 1;
            } else {
                // An index row without its entry; never expected, but it must not stop the sweep.
                self.expiry.remove((tenant, at, key.as_str()))?;
            }
        }
        Ok(removed)
    }

    /// Drops the oldest history records while more than `limits.history`
    /// are kept or they weigh more than `limits.history_bytes`, keeping the
    /// newest (`revision`) always.
    fn trim_history(&mut self, revision: u64) -> Result<(), Refused> {
        let tenant = self.tenant;
        loop {
            let oldest = match self.history.range((tenant, 0)..=(tenant, u64::MAX))?.next() {
                Some(row) => {
                    let (k, v) = row?;
                    (k.value().1, v.value().len() as u64)
                }
                None => return Ok(()),
            };
            let kept = revision - oldest.0 + 1;
            let over = kept > self.limits.history as u64 || self.history_bytes > self.limits.history_bytes;
            if !over || kept == 1 {
                return Ok(());
            }
            self.history.remove((tenant, oldest.0))?;
            self.history_bytes -= oldest.1;
        }
    }

    /// Stores the revision and totals; the tables are closed for the commit.
    fn finish(mut self) -> Result<(), Refused> {
        self.totals_table.insert(self.tenant, (self.revision, self.totals.keys, self.totals.bytes))?;
        self.totals_table.insert(ALL, (0, self.all.keys, self.all.bytes))?;
        self.history_bytes_table.insert(self.tenant, self.history_bytes)?;
        Ok(())
    }
}

impl RedbTenant {
    /// Runs `body` in a write transaction and commits whatever it changed —
    /// also when its answer is a refusal, so an expired entry removed on the
    /// way stays removed — then tells watchers. Nothing changed: no commit.
    fn transact<T>(&self, body: impl FnOnce(&mut Tx<'_>) -> Result<T, Refused>) -> Result<T, BoardError> {
        let attempt = || -> Result<(Result<T, BoardError>, Option<u64>), Refused> {
            let txn = self.db.begin_write()?;
            let mut tx = Tx::open(&txn, &self.tenant, &self.limits)?;
            let before = tx.revision;
            let answer = match body(&mut tx) {
                Ok(answer) => Ok(answer),
                Err(Refused::Rule(e)) => Err(e),
                Err(db) => return Err(db),
            };
            let latest = tx.revision;
            if latest == before {
                return Ok((answer, None));
            }
            tx.finish()?;
            txn.commit()?;
            Ok((answer, Some(latest)))
        };
        match attempt() {
            Ok((answer, latest)) => {
                if let Some(latest) = latest {
                    self.latest.send_replace(latest);
                }
                answer
            }
            Err(Refused::Rule(e)) => Err(e),
            Err(Refused::Db(e)) => Err(BoardError::Storage(e.to_string())),
        }
    }
}

impl TenantStore for RedbTenant {
    fn get(&self, key: &str) -> Result<Option<Entry>, BoardError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let table = txn.open_table(ENTRIES).map_err(storage)?;
        let Some(guard) = table.get((self.tenant.as_str(), key)).map_err(storage)? else { return Ok(None) };
        let stored: Stored<'_> = decode_entry(guard.value()).ok_or_else(|| corrupt("entry", &self.tenant))?;
        Ok(Some(stored.to_entry()))
    }

    fn write(&self, write: &Write<'_>) -> Result<u64, BoardError> {
        self.transact(|tx| {
            tx.remove_if_expired(write.key, None, write.at_ms)?;
            match tx.apply(write) {
                Err(Refused::Rule(BoardError::QuotaExceeded(_))) if tx.sweep(write.at_ms, SWEEP_BATCH)? > 0 => {
                    tx.apply(write)
                }
                answer => answer,
            }
        })
    }

    fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        now_ms: u64,
    ) -> Result<Vec<Arc<str>>, BoardError> {
        let tenant = self.tenant.as_str();
        let txn = self.db.begin_read().map_err(storage)?;
        let table = txn.open_table(ENTRIES).map_err(storage)?;
        let start = match start_after {
            Some(after) if after >= prefix => after,
            _ => prefix,
        };
        let mut keys = Vec::new();
        for item in table.range((tenant, start)..).map_err(storage)? {
            let (k, v) = item.map_err(storage)?;
            let (t, key) = k.value();
            if t != tenant || !key.starts_with(prefix) || keys.len() == limit {
                break;
            }
            let expired = decode_entry(v.value()).ok_or_else(|| corrupt("entry", tenant))?.is_expired(now_ms);
            if Some(key) == start_after || expired {
                continue;
            }
            keys.push(Arc::from(key));
        }
        Ok(keys)
    }

    fn changes_after(&self, prefix: &str, after: u64, limit: usize, max_bytes: u64) -> Result<Vec<Change>, BoardError> {
        let tenant = self.tenant.as_str();
        let txn = self.db.begin_read().map_err(storage)?;
        let totals = txn.open_table(TOTALS).map_err(storage)?;
        let latest = totals.get(tenant).map_err(storage)?.map_or(0, |g| g.value().0);
        if after >= latest {
            return Ok(Vec::new());
        }
        let history = txn.open_table(HISTORY).map_err(storage)?;
        let oldest = match history.range((tenant, 0)..=(tenant, u64::MAX)).map_err(storage)?.next() {
            Some(item) => item.map_err(storage)?.0.value().1,
            None => latest + 1,
        };
        if after + 1 < oldest {
            return Err(BoardError::Lagged { after, resume_after: latest });
        }
        // Decoded one at a time and bounded as it goes: the answer is never
        // built past `limit` changes or `max_bytes`.
        let mut answer = Answer::new(limit, max_bytes);
        for item in history.range((tenant, after + 1)..=(tenant, u64::MAX)).map_err(storage)? {
            let (k, v) = item.map_err(storage)?;
            let change = decode_change(k.value().1, v.value()).ok_or_else(|| corrupt("history", tenant))?;
            if change.key.starts_with(prefix) && !answer.push(change) {
                break;
            }
        }
        Ok(answer.changes)
    }

    fn revision(&self) -> Result<u64, BoardError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let totals = txn.open_table(TOTALS).map_err(storage)?;
        Ok(totals.get(self.tenant.as_str()).map_err(storage)?.map_or(0, |g| g.value().0))
    }

    fn writes_block(&self) -> bool {
        true
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.latest.subscribe()
    }

    fn reap(&self, key: &str, revision: u64, now_ms: u64) -> Result<bool, BoardError> {
        self.transact(|tx| tx.remove_if_expired(key, Some(revision), now_ms))
    }

    fn sweep(&self, now_ms: u64, limit: usize) -> Result<usize, BoardError> {
        self.transact(|tx| tx.sweep(now_ms, limit))
    }
}
