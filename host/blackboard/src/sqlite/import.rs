//! Moving a board kept by redb (the first durable store) into a new SQLite
//! file, whole, inside the transaction that makes the file.

use crate::durable::{Record, RedbBackend};
use crate::sql::int;
use crate::unix_millis;
use paddock_core::names::UNNAMED;
use rusqlite::{Transaction, params};
use std::path::Path;

/// Copies every tenant, entry and kept change of the redb file at `redb`
/// into `tx`; says how many of each.
pub(super) fn from_redb(tx: &Transaction<'_>, redb: &Path) -> Result<String, String> {
    let from = RedbBackend::open(redb).map_err(|e| format!("importing {}: {e}", redb.display()))?;
    let (mut tenants, mut entries, mut changes) = (0u64, 0u64, 0u64);
    let sql = |e: rusqlite::Error| e.to_string();
    from.export(|record| {
        match record {
            Record::Tenant { tenant, revision, keys, bytes } => {
                tx.prepare_cached(
                    "INSERT INTO board_tenants (tenant, revision, keys, bytes) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (tenant) DO UPDATE SET revision = ?2, keys = ?3, bytes = ?4",
                )
                .and_then(|mut s| s.execute(params![tenant, int(revision), int(keys), int(bytes)]))
                .map_err(sql)?;
                tenants += 1;
            }
            Record::Entry { tenant, key, entry } => {
                tx.prepare_cached(
                    "INSERT INTO board_entries (tenant, key, value, revision, agent, run, written_ms, expires_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        tenant,
                        key,
                        &*entry.value,
                        int(entry.revision),
                        &*entry.writer.agent,
                        &*entry.writer.run,
                        int(unix_millis(entry.written_at)),
                        entry.expires_at.map(|at| int(unix_millis(at)))
                    ])
                })
                .map_err(sql)?;
                entries += 1;
            }
            Record::Change { tenant, change } => {
                tx.prepare_cached(
                    "INSERT INTO board_changes (tenant, revision, key, value, agent, run) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        tenant,
                        int(change.revision),
                        &*change.key,
                        change.value.as_deref(),
                        &*change.writer.agent,
                        &*change.writer.run
                    ])
                })
                .map_err(sql)?;
                changes += 1;
            }
        }
        Ok(())
    })?;
    // The kept changes' count and weight per tenant, and every tenant's sum.
    tx.execute_batch(&format!(
        "UPDATE board_tenants SET
             history_rows = (SELECT count(*) FROM board_changes c WHERE c.tenant = board_tenants.tenant),
             history_bytes = (SELECT coalesce(sum(length(CAST(key AS BLOB)) + coalesce(length(value), 0)), 0)
                              FROM board_changes c WHERE c.tenant = board_tenants.tenant);
         UPDATE board_tenants SET
             keys = (SELECT coalesce(sum(keys), 0) FROM board_tenants WHERE tenant <> '{UNNAMED}'),
             bytes = (SELECT coalesce(sum(bytes), 0) FROM board_tenants WHERE tenant <> '{UNNAMED}')
         WHERE tenant = '{UNNAMED}';"
    ))
    .map_err(sql)?;
    Ok(format!("{tenants} tenants, {entries} entries and {changes} kept changes"))
}
