//! What the SQLite file adds to the conformance suite: reopening, a second
//! process on the file, the redb board it takes in, files it refuses.

use super::*;
use crate::conformance::{MS, expiry, summary, test_clock};
use crate::{Blackboard, RedbBackend};

fn writer() -> Writer {
    Writer::new("tester", "run-1")
}

fn board_at(path: &Path) -> Blackboard {
    Blackboard::with_backend(BoardLimits::default(), Arc::new(SqliteBackend::open(path).unwrap()))
}

#[test]
fn the_durable_board_survives_a_reopen_and_keeps_counting() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data/board.sqlite");
    {
        let board = board_at(&path);
        let ns = board.namespace("t");
        ns.put("a", b"1", &writer()).unwrap();
        ns.put("b", b"2", &writer()).unwrap();
        ns.delete("b", &writer()).unwrap();
    }
    let board = board_at(&path);
    let ns = board.namespace("t");
    assert_eq!(&*ns.get("a").unwrap().unwrap().value, b"1");
    assert_eq!(ns.get("b"), Ok(None));
    assert_eq!(ns.changes_after("", 0).unwrap().len(), 3);
    assert_eq!(ns.put("c", b"3", &writer()), Ok(4));
}

#[test]
fn ttls_survive_a_reopen_and_are_swept_in_tenants_not_opened_since() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("board.sqlite");
    let clock = test_clock();
    {
        let board = board_at(&path).with_clock(clock.clone());
        board.namespace("t").put_expiring("k", b"", 10 * MS, &writer()).unwrap();
    }
    clock.advance(10 * MS);
    let board = board_at(&path).with_clock(clock.clone());
    assert_eq!(board.sweep_expired(board.now()), 1);
    assert_eq!(summary(&board.namespace("t").changes_after("", 1).unwrap()), [expiry(2, "k")]);
}

#[test]
fn two_processes_on_one_file_write_in_one_revision_order_and_each_wakes_the_others_watchers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("board.sqlite");
    // Two backends on one file are two processes as SQLite sees them: two sets of connections.
    let (serve, cli) = (board_at(&path), board_at(&path));
    let (here, there) = (serve.namespace("t"), cli.namespace("t"));
    assert_eq!(here.put("a", b"1", &writer()), Ok(1));
    assert_eq!(there.put("b", b"2", &writer()), Ok(2));
    assert_eq!(there.compare_and_swap("a", 1, b"3", &writer()), Ok(3));
    assert_eq!(here.compare_and_swap("a", 1, b"4", &writer()), Err(BoardError::Conflict { current: 3 }));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_time().build().unwrap();
    runtime.block_on(async {
        let watcher = {
            let here = here.clone();
            tokio::spawn(async move { here.watch("", 3, LOOK_EVERY * 40).await })
        };
        tokio::time::sleep(LOOK_EVERY * 2).await;
        assert_eq!(there.put("d", b"5", &writer()), Ok(4));
        let heard = watcher.await.unwrap().unwrap();
        assert_eq!(summary(&heard), [(4, "d".into(), Some(b"5".to_vec()), "tester".into(), "run-1".into())]);
    });
    let seen: Vec<u64> = here.changes_after("", 0).unwrap().iter().map(|c| c.revision).collect();
    assert_eq!(seen, [1, 2, 3, 4]);
}

#[test]
fn a_redb_board_beside_a_new_file_is_taken_in_whole_and_renamed() {
    let dir = tempfile::tempdir().unwrap();
    let clock = test_clock();
    {
        let old = Blackboard::with_backend(
            BoardLimits::default(),
            Arc::new(RedbBackend::open(&dir.path().join("blackboard.redb")).unwrap()),
        )
        .with_clock(clock.clone());
        let ns = old.namespace("acme");
        ns.put("a", "ä".as_bytes(), &Writer::new("planner", "run-7")).unwrap();
        ns.put_expiring("b", b"2", 60_000 * MS, &writer()).unwrap();
        ns.delete("a", &writer()).unwrap();
        ns.put("c", b"", &writer()).unwrap();
        old.namespace("globex").put("x", b"y", &writer()).unwrap();
    }
    let board = board_at(&dir.path().join("blackboard.sqlite")).with_clock(clock.clone());
    assert!(!dir.path().join("blackboard.redb").exists());
    assert!(dir.path().join("blackboard.redb.imported").is_file());
    let ns = board.namespace("acme");
    assert_eq!(ns.list("", 10).unwrap(), ["b", "c"].map(Arc::<str>::from));
    let b = ns.get("b").unwrap().unwrap();
    assert_eq!((b.revision, b.expires_at), (2, Some(board.now() + 60_000 * MS)));
    let history = summary(&ns.changes_after("", 0).unwrap());
    assert_eq!(history.len(), 4);
    assert_eq!(history[0], (1, "a".into(), Some("ä".as_bytes().to_vec()), "planner".into(), "run-7".into()));
    assert_eq!(ns.put("d", b"4", &writer()), Ok(5), "revisions go on from the imported ones");
    assert_eq!(board.namespace("globex").get("x").unwrap().unwrap().revision, 1);
}

#[test]
fn a_redb_file_where_the_sqlite_board_should_be_is_refused_saying_what_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blackboard.redb");
    drop(RedbBackend::open(&path).unwrap());
    let Err(BoardError::Storage(why)) = SqliteBackend::open(&path) else { panic!("a redb file opened as SQLite") };
    assert!(why.starts_with(&format!("{}: a redb board file from before", path.display())), "{why}");
}

#[test]
fn a_board_file_of_a_newer_layout_is_refused_naming_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("board.sqlite");
    drop(SqliteBackend::open(&path).unwrap());
    rusqlite::Connection::open(&path).unwrap().pragma_update(None, "user_version", 9).unwrap();
    let Err(BoardError::Storage(why)) = SqliteBackend::open(&path) else { panic!("a newer layout opened") };
    assert_eq!(
        why,
        format!("{}: its layout is version 9, made by a newer paddock (this one reads up to 1)", path.display())
    );
}

#[test]
fn an_import_that_fails_is_tried_again_at_the_next_open_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let redb = dir.path().join("blackboard.redb");
    let held = Blackboard::with_backend(BoardLimits::default(), Arc::new(RedbBackend::open(&redb).unwrap()));
    held.namespace("acme").put("k", b"v", &writer()).unwrap();
    // Another holder of the redb file: this open cannot read it, and says why.
    let Err(BoardError::Storage(why)) = SqliteBackend::open(&dir.path().join("blackboard.sqlite")) else {
        panic!("opened while the redb board is held")
    };
    assert!(why.contains("importing") && why.contains("Database already open"), "{why}");
    drop(held);
    let board = board_at(&dir.path().join("blackboard.sqlite"));
    assert_eq!(&*board.namespace("acme").get("k").unwrap().unwrap().value, b"v");
    assert!(dir.path().join("blackboard.redb.imported").is_file());
}

#[test]
fn writes_from_many_threads_at_once_each_get_a_revision_of_their_own_and_all_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("board.sqlite");
    let board = board_at(&path);
    let (threads, each) = (16, 20);
    let writers: Vec<_> = (0..threads)
        .map(|t| {
            let ns = board.namespace("t");
            std::thread::spawn(move || {
                (0..each)
                    .map(|i| ns.put(&format!("k{t}/{i}"), format!("{t}.{i}").as_bytes(), &writer()).unwrap())
                    .collect::<Vec<u64>>()
            })
        })
        .collect();
    let mut revisions: Vec<u64> = writers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    revisions.sort();
    assert_eq!(revisions, (1..=threads * each).collect::<Vec<u64>>(), "each write its own revision, none lost");
    // Another process's view: every write committed, the counts with them.
    let other = board_at(&path);
    let ns = other.namespace("t");
    assert_eq!(ns.changes_after("", 0).unwrap().len() as u64, threads * each);
    assert_eq!(&*ns.get("k15/19").unwrap().unwrap().value, b"15.19");
    assert_eq!(ns.put("after", b"", &writer()), Ok(threads * each + 1));
}
