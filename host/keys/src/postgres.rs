//! Keys in PostgreSQL (`[store] backend = "postgres"`): one set of keys for
//! every host of a fleet. A key made or revoked through any host (or
//! `paddock keys` in any folder naming the database) moves the generation,
//! which every serving host reads each refresh, so it works — or stops
//! working — on all of them within a second.

use crate::{KeyError, KeyRecord, KeyStore, Role};
use paddock_postgres::{Migration, Postgres, tokio_postgres};

static MIGRATIONS: &[Migration] = &[Migration {
    name: "keys and their generation",
    sql: "
        CREATE TABLE api_keys (
            id text PRIMARY KEY, tenant text NOT NULL, role text NOT NULL, name text,
            created_ms bigint NOT NULL, expires_ms bigint, revoked_ms bigint, hash bytea NOT NULL
        );
        CREATE TABLE api_key_generation (only_row boolean PRIMARY KEY CHECK (only_row), value bigint NOT NULL);
        INSERT INTO api_key_generation VALUES (true, 0);
    ",
}];

/// Keys in a PostgreSQL database.
pub struct PostgresKeys {
    pg: Postgres,
}

fn failed(e: tokio_postgres::Error) -> String {
    format!("keys: {}", paddock_postgres::describe(&e))
}

fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl PostgresKeys {
    /// The keys in the database `settings` name, through this process's pool for it.
    pub fn connect(settings: &paddock_postgres::Settings) -> Result<Self, KeyError> {
        PostgresKeys::open(Postgres::shared(settings).map_err(|e| KeyError::Store(format!("keys: {e}")))?)
    }

    /// The keys in `pg`'s database, their table made or brought up to date.
    pub fn open(pg: Postgres) -> Result<Self, KeyError> {
        pg.migrate("keys", MIGRATIONS).map_err(|e| KeyError::Store(format!("keys at {}: {e}", pg.shown())))?;
        Ok(PostgresKeys { pg })
    }

    fn store_error(&self) -> impl Fn(String) -> KeyError + '_ {
        move |e| KeyError::Store(format!("{e} (at {})", self.pg.shown()))
    }
}

impl KeyStore for PostgresKeys {
    fn insert(&self, key: &KeyRecord) -> Result<(), KeyError> {
        let key = key.clone();
        self.pg
            .run(move |mut c| async move {
                let tx = c.transaction().await.map_err(failed)?;
                tx.execute(
                    "INSERT INTO api_keys (id, tenant, role, name, created_ms, expires_ms, revoked_ms, hash)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    &[
                        &key.id,
                        &key.tenant,
                        &key.role.as_str(),
                        &key.name,
                        &int(key.created_ms),
                        &key.expires_ms.map(int),
                        &key.revoked_ms.map(int),
                        &&key.hash[..],
                    ],
                )
                .await
                .map_err(failed)?;
                tx.execute("UPDATE api_key_generation SET value = value + 1", &[]).await.map_err(failed)?;
                tx.commit().await.map_err(failed)
            })
            .map_err(self.store_error())
    }

    fn revoke(&self, id: &str, at_ms: u64) -> Result<bool, KeyError> {
        let id = id.to_string();
        self.pg
            .run(move |mut c| async move {
                let tx = c.transaction().await.map_err(failed)?;
                let changed = tx
                    .execute(
                        "UPDATE api_keys SET revoked_ms = $2 WHERE id = $1 AND revoked_ms IS NULL",
                        &[&id, &int(at_ms)],
                    )
                    .await
                    .map_err(failed)?;
                if changed > 0 {
                    tx.execute("UPDATE api_key_generation SET value = value + 1", &[]).await.map_err(failed)?;
                }
                tx.commit().await.map_err(failed)?;
                Ok(changed > 0)
            })
            .map_err(self.store_error())
    }

    fn all(&self) -> Result<Vec<KeyRecord>, KeyError> {
        let rows = self
            .pg
            .run(|c| async move {
                c.query(
                    "SELECT id, tenant, role, name, created_ms, expires_ms, revoked_ms, hash FROM api_keys
                     ORDER BY created_ms, id",
                    &[],
                )
                .await
                .map_err(failed)
            })
            .map_err(self.store_error())?;
        rows.iter()
            .map(|row| {
                let id: String = row.get(0);
                let role: &str = row.get(2);
                let role: Role =
                    role.parse().map_err(|_| KeyError::Store(format!("key {id}: unknown role {role:?}")))?;
                let hash: &[u8] = row.get(7);
                let hash = hash.try_into().map_err(|_| KeyError::Store(format!("key {id}: a hash not 32 bytes")))?;
                let ms = |v: Option<i64>| v.map(|t| t.max(0) as u64);
                Ok(KeyRecord {
                    tenant: row.get(1),
                    role,
                    name: row.get(3),
                    created_ms: row.get::<_, i64>(4).max(0) as u64,
                    expires_ms: ms(row.get(5)),
                    revoked_ms: ms(row.get(6)),
                    hash,
                    id,
                })
            })
            .collect()
    }

    fn generation(&self) -> Result<u64, KeyError> {
        self.pg
            .run(|c| async move {
                let statement = c.prepare_cached("SELECT value FROM api_key_generation").await.map_err(failed)?;
                let row = c.query_opt(&statement, &[]).await.map_err(failed)?;
                Ok(row.map_or(0, |r| r.get::<_, i64>(0).max(0) as u64))
            })
            .map_err(self.store_error())
    }
}
