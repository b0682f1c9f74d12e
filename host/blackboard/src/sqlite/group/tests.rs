use super::{Committer, Failed, MAX_BATCH};
use rusqlite::{Connection, params};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// A committer on a fresh file with one table, and the file's path (for a
/// second connection, as another process would open it).
fn committer() -> (Arc<Committer>, tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.sqlite");
    let conn = Connection::open(&path).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.execute_batch("CREATE TABLE rows (n INTEGER PRIMARY KEY)").unwrap();
    (Arc::new(Committer::new(conn)), dir, path)
}

/// The rows another connection sees: what is committed.
fn committed(path: &std::path::Path) -> Vec<i64> {
    let other = Connection::open(path).unwrap();
    let mut stmt = other.prepare("SELECT n FROM rows ORDER BY n").unwrap();
    stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
}

fn insert(c: &Connection, n: i64) -> Result<(), String> {
    c.execute("INSERT INTO rows (n) VALUES (?1)", params![n]).map(drop).map_err(|e| e.to_string())
}

type Outcome = std::thread::Result<Result<(), Failed<String>>>;

/// Starts `work(n)` as a writer on a thread of its own for each `n`, while
/// the test holds the connection, so they all queue; then lets them in.
fn queued(
    committer: &Arc<Committer>,
    writers: std::ops::Range<i64>,
    work: impl Fn(&Connection, i64) -> Result<(), String> + Send + Copy + 'static,
) -> Vec<Outcome> {
    let held = committer.held.lock();
    let count = writers.clone().count();
    let threads: Vec<_> = writers
        .map(|n| {
            let committer = committer.clone();
            std::thread::spawn(move || committer.write(|c| work(c, n)))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while committer.waiting.load(Ordering::SeqCst) < count {
        assert!(Instant::now() < deadline, "the writers never queued");
        std::thread::sleep(Duration::from_millis(1));
    }
    drop(held);
    threads.into_iter().map(|t| t.join()).collect()
}

fn all_ok(outcomes: Vec<Outcome>) -> bool {
    outcomes.into_iter().all(|o| matches!(o, Ok(Ok(()))))
}

#[test]
fn a_writer_alone_commits_its_own_transaction_each_time() {
    let (committer, _dir, path) = committer();
    for n in 0..3 {
        committer.write(|c| insert(c, n)).unwrap();
        assert_eq!(committed(&path).len() as i64, n + 1, "write {n} is committed when it returns");
    }
    assert_eq!(committer.commits(), 3);
}

#[test]
fn writers_waiting_while_one_writes_share_one_commit() {
    let (committer, _dir, path) = committer();
    assert!(all_ok(queued(&committer, 0..8, insert)));
    assert_eq!(committed(&path), (0..8).collect::<Vec<_>>());
    assert_eq!(committer.commits(), 1);
}

#[test]
fn a_batch_commits_at_max_batch_writers_and_the_rest_commit_together_after() {
    let (committer, _dir, path) = committer();
    let extra = 8;
    assert!(all_ok(queued(&committer, 0..(MAX_BATCH as i64 + extra), insert)));
    assert_eq!(committed(&path).len(), MAX_BATCH + extra as usize);
    assert_eq!(committer.commits(), 2);
}

#[test]
fn a_writer_that_fails_in_a_batch_undoes_its_own_writes_and_the_others_commit() {
    let (committer, _dir, path) = committer();
    let outcomes = queued(&committer, 0..6, |c, n| {
        insert(c, n)?;
        if n == 3 { Err(format!("writer {n} refused")) } else { insert(c, 100 + n) }
    });
    let errors: Vec<String> = outcomes
        .into_iter()
        .filter_map(|o| match o.unwrap() {
            Err(Failed::Work(e)) => Some(e),
            _ => None,
        })
        .collect();
    assert_eq!(errors, ["writer 3 refused"]);
    assert_eq!(committed(&path), [0, 1, 2, 4, 5, 100, 101, 102, 104, 105]);
    assert_eq!(committer.commits(), 1);
}

#[test]
fn a_writer_that_panics_in_a_batch_undoes_its_own_writes_and_the_others_commit() {
    let (committer, _dir, path) = committer();
    let outcomes = queued(&committer, 0..4, |c, n| {
        insert(c, n)?;
        assert_ne!(n, 2, "writer 2 panics after its insert");
        Ok(())
    });
    assert_eq!(outcomes.iter().filter(|o| o.is_err()).count(), 1);
    assert_eq!(committed(&path), [0, 1, 3]);
    // The connection goes on serving, with no transaction left open.
    committer.write(|c| insert(c, 9)).unwrap();
    assert_eq!(committed(&path), [0, 1, 3, 9]);
}

#[test]
fn a_writer_returns_only_once_the_commit_holding_its_work_is_made() {
    let (committer, _dir, path) = committer();
    // A writer that counted itself waiting and comes late: the one below
    // leaves its transaction open for it and waits for its commit.
    committer.waiting.fetch_add(1, Ordering::SeqCst);
    let first = {
        let committer = committer.clone();
        std::thread::spawn(move || committer.write(|c| insert(c, 7)))
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while committer.held.lock().open.is_none() {
        assert!(Instant::now() < deadline, "the writer never left its batch open");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(committed(&path), Vec::<i64>::new(), "not committed while left open");
    assert!(!first.is_finished(), "the writer waits for the commit");
    // The late writer comes: it joins, finds nobody waiting, and commits both.
    committer.waiting.fetch_sub(1, Ordering::SeqCst);
    committer.write(|c| insert(c, 8)).unwrap();
    assert!(matches!(first.join().unwrap(), Ok(())));
    assert_eq!(committed(&path), [7, 8]);
    assert_eq!(committer.commits(), 1);
}
