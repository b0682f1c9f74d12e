//! The SQLite file's own layout: its pages, and how many of them a step's
//! commit writes to the log.

use super::{PAGE_SIZE, SCHEMA_0_FOR_TESTS, SqliteStore};
use crate::store::{FlowStore, RunStatus, StepRecord, StepStatus};
use crate::testing::{H, run, step};
use paddock_journal::Entry;
use serde_json::json;
use std::path::Path;

fn page_size(path: &Path) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.pragma_query_value(None, "page_size", |r| r.get(0)).unwrap()
}

#[test]
fn a_new_file_has_pages_of_8_kib_and_a_file_made_before_keeps_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let new = dir.path().join("new.sqlite");
    drop(SqliteStore::open(&new).unwrap());
    assert_eq!(page_size(&new), 8192);
    let old = dir.path().join("old.sqlite");
    rusqlite::Connection::open(&old).unwrap().execute_batch(SCHEMA_0_FOR_TESTS).unwrap();
    assert_eq!(page_size(&old), 4096, "SQLite's default, as an older paddock made it");
    let store = SqliteStore::open(&old).unwrap();
    store.add_run(&run("r1", "acme", 1, RunStatus::Running)).unwrap();
    store.put_step("r1", H, &step("main/a", "1")).unwrap();
    assert_eq!(store.steps("r1").unwrap(), [step("main/a", "1")]);
    drop(store);
    assert_eq!(page_size(&old), 4096, "its records stay where they are");
}

/// A step of a sequence of the `echo` agent as the engine writes it:
/// started, then done with its output and a journal of two calls.
fn agent_step(i: usize, status: StepStatus) -> StepRecord {
    let output =
        json!({"input": "{}", "revision": 200 + i, "run": "01a24eed36ad77f726ba", "writer": "echo"}).to_string();
    let done = status == StepStatus::Done;
    StepRecord {
        seq: i as u64,
        version: Some("1.0.0+1a4d3cb95cb7".into()),
        status,
        input: Some("{}".into()),
        output: done.then(|| output.clone()),
        raw: done.then_some(output),
        started_ms: 1_796_620_498_606,
        ended_ms: done.then_some(1_796_620_498_607),
        host: Some("19502@2b1627524098.4026531836#7669b125533dd56e".into()),
        ..step(&format!("main/s{i}"), "")
    }
}

fn journal(i: usize) -> Vec<Entry> {
    let put =
        Entry { call: "blackboard.put".into(), request: json!(["echo/last", [123, 125]]), reply: json!({"Ok": i}) };
    let value = json!({"expires_at": null, "revision": i, "run": "01a24eed36ad77f726ba", "value": [123, 125],
        "writer": "echo", "written_at": 1_796_620_498_606u64});
    let get = Entry { call: "blackboard.get".into(), request: json!(["echo/last"]), reply: json!({"Ok": value}) };
    vec![put, get]
}

#[test]
fn a_sequence_step_writes_at_most_four_and_a_half_pages_of_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flows.sqlite");
    let store = SqliteStore::open(&path).unwrap();
    // A run of a flow of 100 steps, whose source makes its record 5.6 KB.
    let names: Vec<String> = (0..100).map(|i| format!("\"s{i}\"")).collect();
    let mut source =
        format!("[flow]\nname = \"seq\"\n[steps.main]\nkind = \"sequence\"\nsteps = [{}]\n", names.join(", "));
    (0..100).for_each(|i| source.push_str(&format!("[steps.s{i}]\nagent = \"echo\"\ninput = {{}}\n")));
    store.add_run(&crate::store::RunRecord { source, ..run("r1", "acme", 1, RunStatus::Running) }).unwrap();
    store.put_step("r1", H, &agent_step(0, StepStatus::Started)).unwrap();
    {
        // Every page written from here on stays in the log, to be counted.
        let conn = store.conn.lock();
        conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
    }
    // Each step's end in one commit with the next step's start, as a sequence writes them.
    for i in 0..100 {
        let done = [(agent_step(i, StepStatus::Done), journal(i))];
        store.put_steps("r1", H, &done, &[agent_step(i + 1, StepStatus::Started)]).unwrap();
    }
    let log = std::fs::metadata(dir.path().join("flows.sqlite-wal")).unwrap().len();
    // The log's header, then a header of 24 bytes before each page.
    let pages = (log - 32) / (PAGE_SIZE as u64 + 24);
    assert!(pages <= 450, "100 steps wrote {pages} pages of the log");
    assert_eq!(store.steps("r1").unwrap().len(), 101);
}

#[test]
fn a_full_log_is_copied_into_the_file_by_the_stores_thread_and_the_next_commit_starts_it_over() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flows.sqlite");
    let store = SqliteStore::open(&path).unwrap();
    store.add_run(&run("r1", "acme", 1, RunStatus::Running)).unwrap();
    let pages = || store.log.pages();
    // Steps as a sequence writes them, until the log holds more than a copy's worth of pages.
    let mut i = 0;
    while pages() < super::log::CHECKPOINT_FRAMES {
        let done = [(agent_step(i, StepStatus::Done), journal(i))];
        store.put_steps("r1", H, &done, &[agent_step(i + 1, StepStatus::Started)]).unwrap();
        i += 1;
        assert!(i < 5_000, "5,000 commits left the log at {} pages", pages());
    }
    let asked = std::time::Instant::now();
    while store.log.copies() == 0 {
        assert!(asked.elapsed() < std::time::Duration::from_secs(30), "no copy of the log after 30 s");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // The copy was the thread's (the commit that filled the log copies nothing
    // itself), and it left nothing of the log uncopied: the next commit writes
    // the log from its beginning.
    let done = [(agent_step(i, StepStatus::Done), journal(i))];
    store.put_steps("r1", H, &done, &[agent_step(i + 1, StepStatus::Started)]).unwrap();
    assert!(pages() <= 8, "the commit after the copy left the log at {} pages", pages());
    assert_eq!(store.steps("r1").unwrap().len(), i + 2);
    // Every step is in the file itself: a connection reading without the log finds them all.
    drop(store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let steps: i64 = conn.query_row("SELECT COUNT(*) FROM steps WHERE run = 'r1'", [], |r| r.get(0)).unwrap();
    assert_eq!(steps, i as i64 + 2);
}

#[test]
fn while_commits_go_on_the_log_is_copied_and_starts_over_before_a_commit_must_copy_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("flows.sqlite")).unwrap();
    // Runs of 100 steps, their commits back to back: about four log pages
    // each, so 2,500 of them write 10,000 pages, more than a log a commit
    // would copy itself (BEHIND_FRAMES).
    let (mut most, mut starts) = (0, 0);
    for i in 0..2_500 {
        let run_id = format!("r{}", i / 100);
        if i % 100 == 0 {
            store.add_run(&run(&run_id, "acme", 1, RunStatus::Running)).unwrap();
        }
        let before = store.log.pages();
        let done = [(agent_step(i % 100, StepStatus::Done), journal(i))];
        store.put_steps(&run_id, H, &done, &[agent_step(i % 100 + 1, StepStatus::Started)]).unwrap();
        let after = store.log.pages();
        most = most.max(after);
        starts += usize::from(after < before);
    }
    assert!(starts >= 1, "the log never started over (at most {most} pages)");
    assert!(
        most < super::log::BEHIND_FRAMES,
        "the log reached {most} pages, where a commit copies it itself; the thread's copies never caught up"
    );
    assert!(store.log.copies() >= 1);
}

#[test]
fn each_128_pages_a_commit_adds_to_the_log_are_written_out_by_the_stores_thread_before_any_copy() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("flows.sqlite")).unwrap();
    store.add_run(&run("r1", "acme", 1, RunStatus::Running)).unwrap();
    let mut i = 0;
    while store.log.pages() < 3 * super::log::FLUSH_FRAMES {
        let done = [(agent_step(i, StepStatus::Done), journal(i))];
        store.put_steps("r1", H, &done, &[agent_step(i + 1, StepStatus::Started)]).unwrap();
        i += 1;
    }
    let asked = std::time::Instant::now();
    while store.log.flushes() == 0 {
        assert!(asked.elapsed() < std::time::Duration::from_secs(30), "the log not written out after 30 s");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(store.log.copies(), 0, "{} pages is no log to copy yet", store.log.pages());
}
