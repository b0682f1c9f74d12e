//! Where keys live. [`KeyStore`] is what the keyring needs of a store: add,
//! revoke, read all, and a generation that changes with every write, so a
//! serving host notices another process's revocation by reading one number.
//! [`SqliteKeys`] keeps them in `<host.data>/keys.db`, shared by the serving
//! host and the CLI; a fleet's shared store implements the same trait.

use crate::{KeyError, KeyRecord, Role};
use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, params};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A place keys are kept.
pub trait KeyStore: Send + Sync {
    /// Adds `key`.
    fn insert(&self, key: &KeyRecord) -> Result<(), KeyError>;
    /// Marks key `id` revoked at `at_ms`; false when there is no such key or
    /// it was revoked already.
    fn revoke(&self, id: &str, at_ms: u64) -> Result<bool, KeyError>;
    /// Every key, revoked and expired ones too, oldest first.
    fn all(&self) -> Result<Vec<KeyRecord>, KeyError>;
    /// A number that changes whenever a key is added or revoked.
    fn generation(&self) -> Result<u64, KeyError>;
}

/// Keys in memory, for tests and for hosts that take keys from nowhere else.
#[derive(Default)]
pub struct MemoryKeys {
    state: Mutex<(Vec<KeyRecord>, u64)>,
}

impl KeyStore for MemoryKeys {
    fn insert(&self, key: &KeyRecord) -> Result<(), KeyError> {
        let mut state = self.state.lock();
        if state.0.iter().any(|k| k.id == key.id) {
            return Err(KeyError::Store(format!("key {} exists already", key.id)));
        }
        state.0.push(key.clone());
        state.1 += 1;
        Ok(())
    }

    fn revoke(&self, id: &str, at_ms: u64) -> Result<bool, KeyError> {
        let mut state = self.state.lock();
        let Some(key) = state.0.iter_mut().find(|k| k.id == id && k.revoked_ms.is_none()) else { return Ok(false) };
        key.revoked_ms = Some(at_ms);
        state.1 += 1;
        Ok(true)
    }

    fn all(&self) -> Result<Vec<KeyRecord>, KeyError> {
        Ok(self.state.lock().0.clone())
    }

    fn generation(&self) -> Result<u64, KeyError> {
        Ok(self.state.lock().1)
    }
}

/// How long a write waits for another process's transaction.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Keys in a SQLite file (WAL), which the serving host and every CLI process
/// open at once.
pub struct SqliteKeys {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl SqliteKeys {
    /// Opens (creating) the key file at `path`.
    pub fn open(path: &Path) -> Result<Self, KeyError> {
        let err = |e: rusqlite::Error| KeyError::Store(format!("{}: {e}", path.display()));
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(err)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS keys (
                 id TEXT PRIMARY KEY, tenant TEXT NOT NULL, role TEXT NOT NULL, name TEXT,
                 created_ms INTEGER NOT NULL, expires_ms INTEGER, revoked_ms INTEGER, hash BLOB NOT NULL);
             CREATE TABLE IF NOT EXISTS generation (only INTEGER PRIMARY KEY CHECK (only = 0), value INTEGER NOT NULL);
             INSERT OR IGNORE INTO generation VALUES (0, 0);",
        )
        .map_err(err)?;
        Ok(SqliteKeys { path: path.to_path_buf(), conn: Mutex::new(conn) })
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> KeyError + '_ {
        move |e| KeyError::Store(format!("{}: {e}", self.path.display()))
    }
}

impl KeyStore for SqliteKeys {
    fn insert(&self, key: &KeyRecord) -> Result<(), KeyError> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction().map_err(self.err())?;
        tx.execute(
            "INSERT INTO keys (id, tenant, role, name, created_ms, expires_ms, revoked_ms, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                key.id,
                key.tenant,
                key.role.as_str(),
                key.name,
                key.created_ms as i64,
                key.expires_ms.map(|t| t as i64),
                key.revoked_ms.map(|t| t as i64),
                &key.hash[..]
            ],
        )
        .map_err(self.err())?;
        tx.execute("UPDATE generation SET value = value + 1", []).map_err(self.err())?;
        tx.commit().map_err(self.err())
    }

    fn revoke(&self, id: &str, at_ms: u64) -> Result<bool, KeyError> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction().map_err(self.err())?;
        let changed = tx
            .execute("UPDATE keys SET revoked_ms = ?2 WHERE id = ?1 AND revoked_ms IS NULL", params![id, at_ms as i64])
            .map_err(self.err())?;
        if changed > 0 {
            tx.execute("UPDATE generation SET value = value + 1", []).map_err(self.err())?;
        }
        tx.commit().map_err(self.err())?;
        Ok(changed > 0)
    }

    fn all(&self) -> Result<Vec<KeyRecord>, KeyError> {
        let conn = self.conn.lock();
        let mut query = conn
            .prepare(
                "SELECT id, tenant, role, name, created_ms, expires_ms, revoked_ms, hash FROM keys
                 ORDER BY created_ms, id",
            )
            .map_err(self.err())?;
        let rows = query
            .query_map([], |row| {
                let role: String = row.get(2)?;
                let hash: Vec<u8> = row.get(7)?;
                Ok((role, hash, row_record(row)?))
            })
            .map_err(self.err())?;
        let mut keys = Vec::new();
        for row in rows {
            let (role, hash, mut key) = row.map_err(self.err())?;
            key.role = role.parse().map_err(|_| KeyError::Store(format!("key {}: unknown role {role:?}", key.id)))?;
            key.hash = hash.try_into().map_err(|_| KeyError::Store(format!("key {}: a hash not 32 bytes", key.id)))?;
            keys.push(key);
        }
        Ok(keys)
    }

    fn generation(&self) -> Result<u64, KeyError> {
        let conn = self.conn.lock();
        let value: Option<i64> =
            conn.query_row("SELECT value FROM generation", [], |row| row.get(0)).optional().map_err(self.err())?;
        Ok(value.unwrap_or(0) as u64)
    }
}

/// The columns of a row but its role and hash, which the caller checks.
fn row_record(row: &rusqlite::Row<'_>) -> rusqlite::Result<KeyRecord> {
    Ok(KeyRecord {
        id: row.get(0)?,
        tenant: row.get(1)?,
        role: Role::Run,
        name: row.get(3)?,
        created_ms: row.get::<_, i64>(4)? as u64,
        expires_ms: row.get::<_, Option<i64>>(5)?.map(|t| t as u64),
        revoked_ms: row.get::<_, Option<i64>>(6)?.map(|t| t as u64),
        hash: [0; 32],
    })
}
