//! Versioned schemas: each store's migrations, applied in order on start, in
//! one transaction, under a lock every host takes, and never against a schema
//! newer than this build knows.

use crate::{Postgres, describe};

/// One step of a store's schema; its version is its place in the list, from 1.
#[derive(Clone, Copy, Debug)]
pub struct Migration {
    /// What it does, for the log.
    pub name: &'static str,
    /// The statements, run as one batch.
    pub sql: &'static str,
}

/// The advisory lock every host takes while it migrates ("paddock" in ASCII),
/// so two hosts starting at once apply each migration once.
const LOCK: i64 = 0x70_6164_646f_636b;

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS paddock_schema (
    store text PRIMARY KEY,
    version integer NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)";

impl Postgres {
    /// Brings `store`'s tables to the last of `migrations`, in one
    /// transaction; returns the version it found. Refuses a database whose
    /// `store` schema is newer than `migrations` knows, naming both versions.
    pub fn migrate(&self, store: &'static str, migrations: &'static [Migration]) -> Result<u32, String> {
        let shown = self.shown().to_string();
        self.run(move |mut client| async move {
            let fail = |e: tokio_postgres::Error| format!("PostgreSQL at {shown}: migrating {store}: {}", describe(&e));
            let tx = client.transaction().await.map_err(fail)?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK]).await.map_err(fail)?;
            tx.batch_execute(SCHEMA).await.map_err(fail)?;
            let found: i32 = tx
                .query_opt("SELECT version FROM paddock_schema WHERE store = $1", &[&store])
                .await
                .map_err(fail)?
                .map_or(0, |row| row.get(0));
            let known = migrations.len() as i32;
            if found > known {
                return Err(format!(
                    "PostgreSQL at {shown}: the {store} tables are at schema version {found}, newer than the \
                     {known} this paddock knows: run the paddock that made them, or a newer one"
                ));
            }
            for (version, migration) in migrations.iter().enumerate().skip(found as usize) {
                tracing::info!(store, version = version + 1, name = migration.name, "PostgreSQL schema migration");
                tx.batch_execute(migration.sql).await.map_err(fail)?;
            }
            if found < known {
                tx.execute(
                    "INSERT INTO paddock_schema (store, version) VALUES ($1, $2)
                     ON CONFLICT (store) DO UPDATE SET version = $2, applied_at = now()",
                    &[&store, &known],
                )
                .await
                .map_err(fail)?;
            }
            tx.commit().await.map_err(fail)?;
            Ok(found as u32)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    static FIRST: &[Migration] = &[Migration { name: "things", sql: "CREATE TABLE things (id integer PRIMARY KEY)" }];
    static SECOND: &[Migration] = &[
        Migration { name: "things", sql: "CREATE TABLE things (id integer PRIMARY KEY)" },
        Migration { name: "names", sql: "ALTER TABLE things ADD COLUMN name text NOT NULL DEFAULT 'x'" },
    ];

    #[test]
    fn migrations_apply_once_in_order_and_a_newer_schema_is_refused_naming_both_versions() {
        let Some(pg) = testing::database("migrations") else { return };
        assert_eq!(pg.migrate("things", FIRST).unwrap(), 0);
        assert_eq!(pg.migrate("things", FIRST).unwrap(), 1, "applied once");
        assert_eq!(pg.migrate("things", SECOND).unwrap(), 1);
        let name: String = pg
            .run(|c| async move {
                c.execute("INSERT INTO things (id) VALUES (1)", &[]).await.map_err(|e| describe(&e))?;
                Ok(c.query_one("SELECT name FROM things", &[]).await.map_err(|e| describe(&e))?.get(0))
            })
            .unwrap();
        assert_eq!(name, "x");
        let e = pg.migrate("things", FIRST).unwrap_err();
        assert!(
            e.ends_with(
                "the things tables are at schema version 2, newer than the 1 this paddock knows: run the paddock \
                 that made them, or a newer one"
            ),
            "{e}"
        );
    }

    #[test]
    fn hosts_migrating_at_once_apply_each_step_once() {
        let Some(pg) = testing::database("migrating_at_once") else { return };
        let found: Vec<u32> = std::thread::scope(|s| {
            let racers: Vec<_> = (0..4).map(|_| s.spawn(|| pg.migrate("things", SECOND).unwrap())).collect();
            racers.into_iter().map(|r| r.join().unwrap()).collect()
        });
        let mut sorted = found.clone();
        sorted.sort();
        assert_eq!(sorted, vec![0, 2, 2, 2], "one host migrated, the others found it done: {found:?}");
    }
}
