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
//! - `entries`: (tenant, key) → revision, written-at, writer, value
//! - `history`: (tenant, revision) → key, writer, value or deletion
//! - `totals`:  tenant → (revision, keys, bytes)
//!
//! A write updates all three in one transaction, so after a crash the board is
//! exactly as of the last acknowledged write.

use super::{Backend, BoardError, BoardLimits, Change, Entry, TenantStore, Totals, Write, plan_write};
use parking_lot::Mutex;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

const ENTRIES: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("entries");
const HISTORY: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("history");
const TOTALS: TableDefinition<&str, (u64, u64, u64)> = TableDefinition::new("totals");

/// Boards kept in a redb file; every acknowledged write survives a crash.
pub struct RedbBackend {
    db: Arc<Database>,
    tenants: Mutex<HashMap<String, Arc<RedbTenant>>>,
}

impl RedbBackend {
    /// Opens (or creates) the board file at `path`, creating its folder.
    pub fn open(path: &Path) -> Result<Self, BoardError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| BoardError::Storage(format!("cannot create {}: {e}", dir.display())))?;
        }
        let db = Database::create(path).map_err(|e| BoardError::Storage(format!("{}: {e}", path.display())))?;
        // Create the tables up front so readers never meet a missing one.
        let txn = db.begin_write().map_err(storage)?;
        txn.open_table(ENTRIES).map_err(storage)?;
        txn.open_table(HISTORY).map_err(storage)?;
        txn.open_table(TOTALS).map_err(storage)?;
        txn.commit().map_err(storage)?;
        Ok(RedbBackend { db: Arc::new(db), tenants: Mutex::default() })
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

/// A write's failure: refused by the rules, or by the database.
enum Refused {
    Rule(BoardError),
    Db(redb::Error),
}

impl<E: Into<redb::Error>> From<E> for Refused {
    fn from(e: E) -> Self {
        Refused::Db(e.into())
    }
}

fn encode_entry(revision: u64, writer: &str, value: &[u8]) -> Vec<u8> {
    let millis = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let mut out = Vec::with_capacity(20 + writer.len() + value.len());
    out.extend_from_slice(&revision.to_le_bytes());
    out.extend_from_slice(&millis.to_le_bytes());
    out.extend_from_slice(&(writer.len() as u32).to_le_bytes());
    out.extend_from_slice(writer.as_bytes());
    out.extend_from_slice(value);
    out
}

/// (revision, written-at millis, writer, value) of an encoded entry.
fn decode_entry(bytes: &[u8]) -> Option<(u64, u64, &str, &[u8])> {
    let revision = u64::from_le_bytes(bytes.get(0..8)?.try_into().ok()?);
    let millis = u64::from_le_bytes(bytes.get(8..16)?.try_into().ok()?);
    let len = u32::from_le_bytes(bytes.get(16..20)?.try_into().ok()?) as usize;
    let writer = std::str::from_utf8(bytes.get(20..20 + len)?).ok()?;
    Some((revision, millis, writer, bytes.get(20 + len..)?))
}

fn encode_change(key: &str, writer: &str, value: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + key.len() + writer.len() + value.map_or(0, <[u8]>::len));
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(&(writer.len() as u32).to_le_bytes());
    out.extend_from_slice(writer.as_bytes());
    match value {
        Some(v) => {
            out.push(1);
            out.extend_from_slice(v);
        }
        None => out.push(0),
    }
    out
}

fn decode_change(revision: u64, bytes: &[u8]) -> Option<Change> {
    let klen = u32::from_le_bytes(bytes.get(0..4)?.try_into().ok()?) as usize;
    let key = std::str::from_utf8(bytes.get(4..4 + klen)?).ok()?;
    let rest = bytes.get(4 + klen..)?;
    let wlen = u32::from_le_bytes(rest.get(0..4)?.try_into().ok()?) as usize;
    let writer = std::str::from_utf8(rest.get(4..4 + wlen)?).ok()?;
    let value = match rest.get(4 + wlen)? {
        1 => Some(Arc::from(rest.get(5 + wlen..)?)),
        _ => None,
    };
    Some(Change { key: Arc::from(key), value, revision, writer: Arc::from(writer) })
}

fn corrupt(what: &str, tenant: &str) -> BoardError {
    BoardError::Storage(format!("a corrupt {what} record of tenant \"{tenant}\""))
}

impl TenantStore for RedbTenant {
    fn get(&self, key: &str) -> Result<Option<Entry>, BoardError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let table = txn.open_table(ENTRIES).map_err(storage)?;
        let Some(guard) = table.get((self.tenant.as_str(), key)).map_err(storage)? else { return Ok(None) };
        let (revision, millis, writer, value) =
            decode_entry(guard.value()).ok_or_else(|| corrupt("entry", &self.tenant))?;
        Ok(Some(Entry {
            value: Arc::from(value),
            revision,
            writer: Arc::from(writer),
            written_at: UNIX_EPOCH + Duration::from_millis(millis),
        }))
    }

    fn write(&self, write: &Write<'_>) -> Result<u64, BoardError> {
        let tenant = self.tenant.as_str();
        let attempt = || -> Result<u64, Refused> {
            let txn = self.db.begin_write()?;
            let revision;
            {
                let mut entries = txn.open_table(ENTRIES)?;
                let mut history = txn.open_table(HISTORY)?;
                let mut totals = txn.open_table(TOTALS)?;
                let (last, keys, bytes) = totals.get(tenant)?.map_or((0, 0, 0), |g| g.value());
                let current = match entries.get((tenant, write.key))? {
                    Some(g) => {
                        let (rev, _, _, value) =
                            decode_entry(g.value()).ok_or(Refused::Rule(corrupt("entry", tenant)))?;
                        Some((rev, value.len()))
                    }
                    None => None,
                };
                let after =
                    plan_write(tenant, &self.limits, current, Totals { keys, bytes }, write).map_err(Refused::Rule)?;
                revision = last + 1;
                match write.value {
                    Some(v) => {
                        entries.insert((tenant, write.key), encode_entry(revision, write.writer, v).as_slice())?;
                    }
                    None => {
                        entries.remove((tenant, write.key))?;
                    }
                }
                let kept = self.limits.history as u64;
                if kept > 0 {
                    history
                        .insert((tenant, revision), encode_change(write.key, write.writer, write.value).as_slice())?;
                    if revision > kept {
                        history.remove((tenant, revision - kept))?;
                    }
                }
                totals.insert(tenant, (revision, after.keys, after.bytes))?;
            }
            txn.commit()?;
            Ok(revision)
        };
        match attempt() {
            Ok(revision) => {
                self.latest.send_replace(revision);
                Ok(revision)
            }
            Err(Refused::Rule(e)) => Err(e),
            Err(Refused::Db(e)) => Err(BoardError::Storage(e.to_string())),
        }
    }

    fn list(&self, prefix: &str, start_after: Option<&str>, limit: usize) -> Result<Vec<Arc<str>>, BoardError> {
        let tenant = self.tenant.as_str();
        let txn = self.db.begin_read().map_err(storage)?;
        let table = txn.open_table(ENTRIES).map_err(storage)?;
        let start = match start_after {
            Some(after) if after >= prefix => after,
            _ => prefix,
        };
        let mut keys = Vec::new();
        for item in table.range((tenant, start)..).map_err(storage)? {
            let (k, _) = item.map_err(storage)?;
            let (t, key) = k.value();
            if t != tenant || !key.starts_with(prefix) || keys.len() == limit {
                break;
            }
            if Some(key) == start_after {
                continue;
            }
            keys.push(Arc::from(key));
        }
        Ok(keys)
    }

    fn changes_after(&self, prefix: &str, after: u64, limit: usize) -> Result<Vec<Change>, BoardError> {
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
        let mut changes = Vec::new();
        for item in history.range((tenant, after + 1)..=(tenant, u64::MAX)).map_err(storage)? {
            let (k, v) = item.map_err(storage)?;
            let change = decode_change(k.value().1, v.value()).ok_or_else(|| corrupt("history", tenant))?;
            if change.key.starts_with(prefix) {
                changes.push(change);
                if changes.len() == limit {
                    break;
                }
            }
        }
        Ok(changes)
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
}
