//! The SQLite file's own layout: its pages, and how many of them a step's
//! commit writes to the log.

use super::schema::{MIGRATE_TO_1, MIGRATE_TO_2, MIGRATE_TO_3, MIGRATE_TO_4, MIGRATE_TO_5};
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

/// Empties the store's log and leaves every page written from here on in
/// it, to be counted: no copy into the file, by the store's thread or SQLite.
fn keep_every_page_in_the_log(store: &SqliteStore) {
    let conn = store.conn.lock();
    conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
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
    keep_every_page_in_the_log(&store);
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

/// The pages the log holds, by number, from each frame's header (the log's
/// header is 32 bytes; a frame is a header of 24 bytes, the page number
/// first, then the page).
fn logged_pages(wal: &Path) -> std::collections::BTreeSet<u32> {
    let log = std::fs::read(wal).unwrap();
    log[32..].chunks(PAGE_SIZE as usize + 24).map(|f| u32::from_be_bytes(f[..4].try_into().unwrap())).collect()
}

#[test]
fn a_step_of_a_running_run_logs_no_page_of_the_runs_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flows.sqlite");
    let store = SqliteStore::open(&path).unwrap();
    for id in ["r1", "r2", "r3"] {
        store.add_run(&run(id, "acme", 1, RunStatus::Running)).unwrap();
        store.put_step(id, H, &agent_step(0, StepStatus::Started)).unwrap();
    }
    keep_every_page_in_the_log(&store);
    for i in 0..20 {
        let done = [(agent_step(i, StepStatus::Done), journal(i))];
        store.put_steps("r2", H, &done, &[agent_step(i + 1, StepStatus::Started)]).unwrap();
    }
    let logged = logged_pages(&dir.path().join("flows.sqlite-wal"));
    let conn = store.conn.lock();
    let pages_of = |table: &str| -> std::collections::BTreeSet<u32> {
        conn.prepare("SELECT pageno FROM dbstat WHERE name IN (SELECT name FROM sqlite_schema WHERE tbl_name = ?1)")
            .unwrap()
            .query_map([table], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let (runs, counts) = (pages_of("runs"), pages_of("tenant_bytes"));
    assert_eq!(counts.len(), 1, "the tenant's bytes and its running runs' share a page");
    assert!(logged.is_superset(&counts), "the steps moved the counts: {logged:?}");
    assert_eq!(logged.intersection(&runs).count(), 0, "pages of runs {runs:?} in the log {logged:?}");
    let bytes: i64 =
        conn.query_row(&format!("SELECT {} FROM runs WHERE id = 'r2'", super::RUN_BYTES), [], |r| r.get(0)).unwrap();
    drop(conn);
    assert_eq!(
        store
            .runs(&crate::store::RunQuery { limit: 10, ..Default::default() })
            .unwrap()
            .iter()
            .find(|r| r.id == "r2")
            .unwrap()
            .bytes,
        bytes as u64
    );
}

#[test]
fn a_running_runs_bytes_move_to_its_row_when_it_ends_and_a_file_of_layout_5_keeps_them_beside_its_tenants() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v5.sqlite");
    {
        // A file as paddock's layout 5 left it: each run's bytes in its row.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(SCHEMA_0_FOR_TESTS).unwrap();
        for step in [MIGRATE_TO_1, MIGRATE_TO_2, MIGRATE_TO_3, MIGRATE_TO_4, MIGRATE_TO_5] {
            conn.execute_batch(step).unwrap();
        }
        conn.pragma_update(None, "user_version", 5).unwrap();
        let row = "INSERT INTO runs (id, created, data, tenant, flow, status, size, bytes, owner)
                   VALUES (?1, 1, ?2, 'acme', 'f', ?3, ?4, ?5, ?6)";
        for (id, status, bytes) in [("r1", RunStatus::Running, 1000), ("r2", RunStatus::Succeeded, 300)] {
            let data = serde_json::to_string(&run(id, "acme", 1, status)).unwrap();
            let size = data.len() as i64;
            conn.execute(row, rusqlite::params![id, data, status.word(), size, bytes, H]).unwrap();
        }
        conn.execute_batch("INSERT INTO tenant_bytes (tenant, bytes) VALUES ('acme', 1300), ('*', 1300)").unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    let counts = |store: &SqliteStore| -> Vec<(String, String, i64)> {
        let conn = store.conn.lock();
        let mut stmt = conn.prepare("SELECT tenant, run, bytes FROM tenant_bytes ORDER BY tenant, run").unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().map(Result::unwrap).collect()
    };
    let in_row = |store: &SqliteStore, id: &str| -> i64 {
        store.conn.lock().query_row("SELECT bytes FROM runs WHERE id = ?1", [id], |r| r.get(0)).unwrap()
    };
    let listed = |store: &SqliteStore| -> Vec<(String, u64)> {
        let runs = store.runs(&crate::store::RunQuery { limit: 10, ..Default::default() }).unwrap();
        let mut runs: Vec<_> = runs.into_iter().map(|r| (r.id, r.bytes)).collect();
        runs.sort();
        runs
    };
    let count = |t: &str, r: &str, b: i64| (t.to_string(), r.to_string(), b);
    assert_eq!(counts(&store), [count("*", "", 1300), count("acme", "", 1300), count("acme", "r1", 1000)]);
    assert_eq!(listed(&store), [("r1".to_string(), 1000), ("r2".to_string(), 300)]);
    // A step is counted beside the tenant; the run's row is left as it was.
    let step = agent_step(0, StepStatus::Started);
    let size = serde_json::to_string(&step).unwrap().len() as i64;
    store.put_step("r1", H, &step).unwrap();
    assert_eq!(counts(&store)[2], count("acme", "r1", 1000 + size));
    assert_eq!(in_row(&store, "r1"), 1000);
    assert_eq!(store.tenant_bytes("acme").unwrap(), 1300 + size as u64);
    assert_eq!(listed(&store)[0], ("r1".to_string(), 1000 + size as u64));
    // Ended, its bytes are in its row again, and pruning it frees them all.
    let mut ended = run("r1", "acme", 1, RunStatus::Succeeded);
    ended.updated_ms = 2;
    let grew = serde_json::to_string(&ended).unwrap().len() as i64
        - serde_json::to_string(&run("r1", "acme", 1, RunStatus::Running)).unwrap().len() as i64;
    store.put_run(&ended).unwrap();
    assert_eq!(counts(&store), [count("*", "", 1300 + size + grew), count("acme", "", 1300 + size + grew)]);
    assert_eq!(in_row(&store, "r1"), 1000 + size + grew);
    let cut =
        crate::store::Cutoffs { runs_before_ms: 100, runs_per_tenant: 100, approvals_before_ms: 0, dead_before_ms: 0 };
    assert_eq!(store.prune(&cut).unwrap().runs, 2);
    assert_eq!(store.tenant_bytes("acme").unwrap(), 0);
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
