//! The held log: one write a commit, every commit in the files when it
//! returns (a copy of them taken then holds it), a refused write failing
//! only its own commit.

use super::{NAME, register};
use parking_lot::Mutex;
use rusqlite::{Connection, OpenFlags, params};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

/// Writes that reached each log, by path.
static WRITES: LazyLock<Mutex<HashMap<String, u64>>> = LazyLock::new(Default::default);

/// Paths under which every write to a log is refused.
static REFUSED: LazyLock<Mutex<Vec<String>>> = LazyLock::new(Default::default);

/// Counts a write to the log at `path`; false when it is to be refused.
pub(super) fn wrote(path: &str) -> bool {
    if REFUSED.lock().iter().any(|dir| path.starts_with(dir.as_str())) {
        return false;
    }
    *WRITES.lock().entry(path.to_string()).or_default() += 1;
    true
}

fn writes(log: &Path) -> u64 {
    WRITES.lock().get(log.to_str().unwrap()).copied().unwrap_or(0)
}

fn log_of(db: &Path) -> PathBuf {
    PathBuf::from(format!("{}-wal", db.display()))
}

/// A connection through the VFS, set as the flow store sets its own.
fn open(path: &Path) -> Connection {
    register().unwrap();
    let c = Connection::open_with_flags_and_vfs(path, OpenFlags::default(), NAME).unwrap();
    c.execute_batch(
        "PRAGMA page_size = 8192; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
         CREATE TABLE IF NOT EXISTS a (k INTEGER PRIMARY KEY, v BLOB);
         CREATE TABLE IF NOT EXISTS b (k INTEGER PRIMARY KEY, v BLOB);",
    )
    .unwrap();
    c
}

/// The rows of both tables and their bytes, as `c` reads them.
fn contents(c: &Connection) -> (i64, i64) {
    c.query_row(
        "SELECT (SELECT count(*) FROM a) + (SELECT count(*) FROM b),
                (SELECT COALESCE(sum(length(v)), 0) FROM a) + (SELECT COALESCE(sum(length(v)), 0) FROM b)",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap()
}

/// What a copy of the database and its log, taken now, holds once SQLite
/// has recovered it (checking each frame's checksum), read without the VFS.
fn copied(db: &Path, to: &Path) -> (i64, i64) {
    std::fs::create_dir_all(to).unwrap();
    let copy = to.join("copy.sqlite");
    for (from, into) in [(db.to_path_buf(), copy.clone()), (log_of(db), log_of(&copy))] {
        std::fs::copy(from, into).unwrap();
    }
    let c = Connection::open(&copy).unwrap();
    let check: String = c.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(check, "ok");
    let seen = contents(&c);
    drop(c);
    std::fs::remove_dir_all(to).unwrap();
    seen
}

#[test]
fn a_commits_log_frames_reach_the_file_in_one_write() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("one.sqlite");
    let c = open(&db);
    c.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
    // The first commit of a log also writes and syncs its header.
    c.execute("INSERT INTO a (k, v) VALUES (0, zeroblob(10))", []).unwrap();
    let log = log_of(&db);
    for k in 1..=20 {
        let (count, len) = (writes(&log), std::fs::metadata(&log).unwrap().len());
        // A row of each table, each large enough for a page of its own.
        c.execute_batch(&format!(
            "BEGIN; INSERT INTO a (k, v) VALUES ({k}, zeroblob(5000)); INSERT INTO b (k, v) VALUES ({k}, zeroblob(5000)); COMMIT;"
        ))
        .unwrap();
        let frames = (std::fs::metadata(&log).unwrap().len() - len) / (8192 + 24);
        assert!(frames >= 2, "commit {k} wrote {frames} frames");
        assert_eq!(writes(&log) - count, 1, "commit {k} of {frames} frames");
    }
    assert_eq!(contents(&c), (41, 10 + 40 * 5000));
}

#[test]
fn every_commit_is_in_the_files_when_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("held.sqlite");
    let c = open(&db);
    // Copied into the file and started over every 100 pages; a transaction
    // larger than 2 pages of cache spills frames before its commit, and
    // writes some of them again (SQLite then rewrites their checksums).
    c.execute_batch("PRAGMA wal_autocheckpoint = 100; PRAGMA cache_size = 2;").unwrap();
    let reader = Connection::open(&db).unwrap();
    let mut expected = (0, 0);
    for round in 0..6_i64 {
        // One small row.
        c.execute("INSERT INTO b (k, v) VALUES (?1, zeroblob(100))", params![round]).unwrap();
        expected = (expected.0 + 1, expected.1 + 100);
        assert_eq!(contents(&reader), expected, "round {round}, a small commit");
        assert_eq!(copied(&db, &dir.path().join("copy")), expected, "round {round}, a small commit");
        // 60 rows of 4 KB (more than the 128 KiB held at once), then each
        // written again larger, in one transaction.
        c.execute_batch("BEGIN").unwrap();
        for i in 0..60 {
            c.execute("INSERT INTO a (k, v) VALUES (?1, zeroblob(4000))", params![round * 1000 + i]).unwrap();
        }
        c.execute("UPDATE a SET v = zeroblob(4100) WHERE k >= ?1 AND k < ?2", params![round * 1000, round * 1000 + 60])
            .unwrap();
        c.execute_batch("COMMIT").unwrap();
        expected = (expected.0 + 60, expected.1 + 60 * 4100);
        assert_eq!(contents(&reader), expected, "round {round}, a large commit");
        assert_eq!(copied(&db, &dir.path().join("copy")), expected, "round {round}, a large commit");
    }
    assert_eq!(contents(&c), expected);
}

#[test]
fn a_refused_log_write_fails_its_commit_and_keeps_what_was_committed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("refused.sqlite");
    let c = open(&db);
    c.execute("INSERT INTO a (k, v) VALUES (1, zeroblob(5000))", []).unwrap();
    let refusing = dir.path().to_str().unwrap().to_string();
    REFUSED.lock().push(refusing.clone());
    let refused = c.execute_batch(
        "BEGIN; INSERT INTO a (k, v) VALUES (2, zeroblob(5000)); INSERT INTO b (k, v) VALUES (2, zeroblob(5000)); COMMIT;",
    );
    REFUSED.lock().retain(|dir| *dir != refusing);
    let err = refused.unwrap_err();
    assert_eq!(err.sqlite_error_code(), Some(rusqlite::ErrorCode::SystemIoFailure), "{err}");
    // Whatever SQLite left of the transaction is rolled back.
    if !c.is_autocommit() {
        c.execute_batch("ROLLBACK").unwrap();
    }
    assert_eq!(contents(&c), (1, 5000));
    assert_eq!(copied(&db, &dir.path().join("copy")), (1, 5000));
    c.execute("INSERT INTO b (k, v) VALUES (3, zeroblob(10))", []).unwrap();
    assert_eq!(contents(&c), (2, 5010));
    assert_eq!(contents(&Connection::open(&db).unwrap()), (2, 5010));
    assert_eq!(copied(&db, &dir.path().join("copy")), (2, 5010));
}
