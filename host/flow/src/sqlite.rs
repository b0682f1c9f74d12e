//! The durable flow store: SQLite in WAL mode at `<host.data>/flows.sqlite`.
//!
//! SQLite rather than redb because other processes must read and write it
//! while a run goes on: `paddock approve`, `paddock dlq`, `paddock flow
//! status`. Records are kept as JSON in one column per table, keyed by what
//! they are looked up by. `synchronous = NORMAL`: a commit survives the
//! process being killed (the WAL is in the OS's cache); a power cut may lose
//! the last commits, whose steps then run again under the same idempotency key.

use super::store::{
    AnswerError, ApprovalRecord, DeadLetter, FlowStore, RunRecord, StepRecord, StoreError, apply_answer, taken,
};
use paddock_journal::Entry;
use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::Path;

/// A flow store in a SQLite file.
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (id TEXT PRIMARY KEY, created INTEGER NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS steps (run TEXT NOT NULL, path TEXT NOT NULL, seq INTEGER NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (run, path));
CREATE TABLE IF NOT EXISTS journals (run TEXT NOT NULL, path TEXT NOT NULL, attempt INTEGER NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (run, path));
CREATE TABLE IF NOT EXISTS dead (id TEXT PRIMARY KEY, created INTEGER NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS approvals (id TEXT PRIMARY KEY, created INTEGER NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cancels (run TEXT PRIMARY KEY, by TEXT NOT NULL);
";

fn db(e: rusqlite::Error) -> String {
    format!("flow store: {e}")
}

fn to_json<T: Serialize>(v: &T) -> Result<String, String> {
    serde_json::to_string(v).map_err(|e| format!("flow store: {e}"))
}

fn from_json<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    serde_json::from_str(text).map_err(|e| format!("flow store: a damaged record: {e}"))
}

impl SqliteStore {
    /// Opens (creating) the store at `path`.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::CreateDir { dir: dir.to_path_buf(), reason: e.to_string() })?;
        }
        let conn =
            Connection::open(path).map_err(|e| StoreError::Open { path: path.to_path_buf(), reason: e.to_string() })?;
        let setting = |e: rusqlite::Error| StoreError::Sqlite { reason: e.to_string() };
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(setting)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(setting)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(setting)?;
        conn.execute_batch(SCHEMA)
            .map_err(|e| StoreError::Schema { path: path.to_path_buf(), reason: e.to_string() })?;
        Ok(SqliteStore { conn: Mutex::new(conn) })
    }

    fn all<T: DeserializeOwned>(&self, sql: &str, args: impl rusqlite::Params) -> Result<Vec<T>, String> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare_cached(sql).map_err(db)?;
        let rows = stmt.query_map(args, |r| r.get::<_, String>(0)).map_err(db)?;
        rows.map(|r| r.map_err(db).and_then(|t| from_json(&t))).collect()
    }

    fn one<T: DeserializeOwned>(&self, sql: &str, args: impl rusqlite::Params) -> Result<Option<T>, String> {
        let conn = self.conn.lock();
        let text: Option<String> = conn.query_row(sql, args, |r| r.get(0)).optional().map_err(db)?;
        text.map(|t| from_json(&t)).transpose()
    }

    fn exec(&self, sql: &str, args: impl rusqlite::Params) -> Result<usize, String> {
        self.conn.lock().prepare_cached(sql).and_then(|mut s| s.execute(args)).map_err(db)
    }
}

impl FlowStore for SqliteStore {
    fn put_run(&self, run: &RunRecord) -> Result<(), String> {
        let data = to_json(run)?;
        self.exec(
            "INSERT OR REPLACE INTO runs (id, created, data) VALUES (?1, ?2, ?3)",
            params![run.id, run.created_ms as i64, data],
        )
        .map(drop)
    }

    fn add_run(&self, run: &RunRecord) -> Result<bool, String> {
        let data = to_json(run)?;
        self.exec(
            "INSERT OR IGNORE INTO runs (id, created, data) VALUES (?1, ?2, ?3)",
            params![run.id, run.created_ms as i64, data],
        )
        .map(|added| added == 1)
    }

    fn run(&self, id: &str) -> Result<Option<RunRecord>, String> {
        self.one("SELECT data FROM runs WHERE id = ?1", params![id])
    }

    fn request_cancel(&self, run: &str, by: &str) -> Result<(), String> {
        self.exec("INSERT OR REPLACE INTO cancels (run, by) VALUES (?1, ?2)", params![run, by]).map(drop)
    }

    fn cancel_request(&self, run: &str) -> Result<Option<String>, String> {
        let conn = self.conn.lock();
        conn.query_row("SELECT by FROM cancels WHERE run = ?1", params![run], |r| r.get(0)).optional().map_err(db)
    }

    fn claim(&self, run: &RunRecord, owner: u32, heartbeat_ms: u64) -> Result<bool, String> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(db)?;
        let text: Option<String> = tx
            .query_row("SELECT data FROM runs WHERE id = ?1", params![run.id], |r| r.get(0))
            .optional()
            .map_err(db)?;
        let Some(text) = text else { return Ok(false) };
        let stored: RunRecord = from_json(&text)?;
        if stored.owner != owner || stored.heartbeat_ms != heartbeat_ms {
            return Ok(false);
        }
        tx.execute("UPDATE runs SET data = ?2 WHERE id = ?1", params![run.id, to_json(run)?]).map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(true)
    }

    fn runs(&self) -> Result<Vec<RunRecord>, String> {
        self.all("SELECT data FROM runs ORDER BY created DESC, id DESC", [])
    }

    fn put_step(&self, run: &str, step: &StepRecord) -> Result<(), String> {
        let data = to_json(step)?;
        self.exec(
            "INSERT OR REPLACE INTO steps (run, path, seq, data) VALUES (?1, ?2, ?3, ?4)",
            params![run, step.path, step.seq as i64, data],
        )
        .map(drop)
    }

    fn steps(&self, run: &str) -> Result<Vec<StepRecord>, String> {
        self.all("SELECT data FROM steps WHERE run = ?1 ORDER BY seq", params![run])
    }

    fn put_journal(&self, run: &str, step: &str, attempt: u32, entries: &[Entry]) -> Result<(), String> {
        let data = to_json(&entries)?;
        self.exec(
            "INSERT OR REPLACE INTO journals (run, path, attempt, data) VALUES (?1, ?2, ?3, ?4)",
            params![run, step, attempt, data],
        )
        .map(drop)
    }

    fn finish_step(&self, run: &str, step: &StepRecord, journal: &[Entry]) -> Result<(), String> {
        let (entries, data) = (to_json(&journal)?, to_json(step)?);
        let mut conn = self.conn.lock();
        let tx = conn.transaction().map_err(db)?;
        tx.prepare_cached("INSERT OR REPLACE INTO journals (run, path, attempt, data) VALUES (?1, ?2, ?3, ?4)")
            .and_then(|mut s| s.execute(params![run, step.path, step.attempt, entries]))
            .map_err(db)?;
        tx.prepare_cached("INSERT OR REPLACE INTO steps (run, path, seq, data) VALUES (?1, ?2, ?3, ?4)")
            .and_then(|mut s| s.execute(params![run, step.path, step.seq as i64, data]))
            .map_err(db)?;
        tx.commit().map_err(db)
    }

    fn journal(&self, run: &str, step: &str) -> Result<Option<(u32, Vec<Entry>)>, String> {
        let conn = self.conn.lock();
        let row: Option<(u32, String)> = conn
            .query_row("SELECT attempt, data FROM journals WHERE run = ?1 AND path = ?2", params![run, step], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
            .map_err(db)?;
        row.map(|(a, t)| Ok((a, from_json(&t)?))).transpose()
    }

    fn put_dead(&self, dead: &DeadLetter) -> Result<(), String> {
        let data = to_json(dead)?;
        self.exec(
            "INSERT OR REPLACE INTO dead (id, created, data) VALUES (?1, ?2, ?3)",
            params![dead.id, dead.created_ms as i64, data],
        )
        .map(drop)
    }

    fn dead_letters(&self) -> Result<Vec<DeadLetter>, String> {
        self.all("SELECT data FROM dead ORDER BY created, id", [])
    }

    fn dead(&self, id: &str) -> Result<Option<DeadLetter>, String> {
        self.one("SELECT data FROM dead WHERE id = ?1", params![id])
    }

    fn drop_dead(&self, id: &str) -> Result<bool, String> {
        self.exec("DELETE FROM dead WHERE id = ?1", params![id]).map(|n| n > 0)
    }

    fn add_approval(&self, a: &ApprovalRecord) -> Result<(), String> {
        let data = to_json(a)?;
        let added = self.exec(
            "INSERT OR IGNORE INTO approvals (id, created, data) VALUES (?1, ?2, ?3)",
            params![a.id, a.created_ms as i64, data],
        )?;
        if added == 0 { Err(taken(&a.id)) } else { Ok(()) }
    }

    fn approval(&self, id: &str) -> Result<Option<ApprovalRecord>, String> {
        self.one("SELECT data FROM approvals WHERE id = ?1", params![id])
    }

    fn approvals(&self) -> Result<Vec<ApprovalRecord>, String> {
        self.all("SELECT data FROM approvals ORDER BY created, id", [])
    }

    fn answer(&self, id: &str, option: &str, by: &str, now_ms: u64) -> Result<ApprovalRecord, AnswerError> {
        let store = |e: rusqlite::Error| AnswerError::Store(db(e));
        let mut conn = self.conn.lock();
        // An immediate transaction: two people answering at once cannot both win.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(store)?;
        let text: Option<String> = tx
            .query_row("SELECT data FROM approvals WHERE id = ?1", params![id], |r| r.get(0))
            .optional()
            .map_err(store)?;
        let text = text.ok_or_else(|| AnswerError::NoApproval(id.to_string()))?;
        let mut a: ApprovalRecord = from_json(&text).map_err(AnswerError::Store)?;
        apply_answer(&mut a, option, by, now_ms)?;
        let data = to_json(&a).map_err(AnswerError::Store)?;
        tx.execute("UPDATE approvals SET data = ?2 WHERE id = ?1", params![id, data]).map_err(store)?;
        tx.commit().map_err(store)?;
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    fn question(id: &str, text: &str) -> ApprovalRecord {
        ApprovalRecord {
            id: id.into(),
            run: "r".into(),
            tenant: "default".into(),
            asker: "step".into(),
            question: text.into(),
            options: vec!["yes".into(), "no".into()],
            created_ms: 1,
            deadline_ms: u64::MAX,
            answer: None,
            answered_by: None,
            answered_ms: None,
        }
    }

    fn an_approval_id_is_never_reused_and_is_found_by_id(store: &dyn FlowStore) {
        store.add_approval(&question("ap-1", "first")).unwrap();
        assert_eq!(
            store.add_approval(&question("ap-1", "second")).unwrap_err(),
            "flow store: approval id \"ap-1\" is already taken"
        );
        assert_eq!(store.approval("ap-1").unwrap().unwrap().question, "first");
        assert_eq!(store.approval("ap-2").unwrap(), None);
        store.answer("ap-1", "yes", "ada", 5).unwrap();
        let answered = store.approval("ap-1").unwrap().unwrap();
        assert_eq!((answered.answer.as_deref(), answered.answered_by.as_deref()), (Some("yes"), Some("ada")));
    }

    #[test]
    fn both_stores_refuse_a_taken_approval_id_and_find_questions_by_id() {
        an_approval_id_is_never_reused_and_is_found_by_id(&MemoryStore::default());
        let dir = tempfile::tempdir().unwrap();
        an_approval_id_is_never_reused_and_is_found_by_id(&SqliteStore::open(&dir.path().join("f.sqlite")).unwrap());
    }
}
