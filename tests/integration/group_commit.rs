//! Group commit along a run: an agent step's end is written in the same
//! commit as the next checkpoint of its task (the next step's start), never
//! later than anything that depends on it, and a refused write fails the run
//! with the store's reason; the items of a fan-out starting and ending at
//! once share commits. Observed on the durable SQLite store through a
//! wrapper that logs every step write it passes on.

use crate::flows::{failed, go, ok};
use crate::util::*;
use paddock::flow::sqlite::SqliteStore;
use paddock::flow::store::{
    AnswerError, ApprovalRecord, Cutoffs, DeadLetter, Page, RunQuery, RunSummary, StepRecord, StepStatus,
};
use paddock::flow::{Finished, FlowBounds, FlowStore, Flows, Pruned, RunRecord};
use paddock::journal::Entry;
use paddock_test_guests::guests;
use parking_lot::Mutex;
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The SQLite store, logging each write of checkpoints as one line: the
/// finished steps it carries, then the checkpoints after them.
struct Logged {
    inner: SqliteStore,
    writes: Mutex<Vec<String>>,
    /// Each write's records of a fan-out's items (`PATH STATUS`).
    items: Mutex<Vec<Vec<String>>>,
    /// How long the next write of an item's record holds the store, as a
    /// slow disk would.
    hold: Mutex<Option<Duration>>,
}

fn status(s: &StepRecord) -> &'static str {
    match s.status {
        StepStatus::Started => "started",
        StepStatus::Done => "done",
        StepStatus::Failed => "failed",
        _ => "other",
    }
}

impl Logged {
    fn log(&self, done: &[Finished], next: &[StepRecord]) {
        let next: Vec<String> = next.iter().map(|s| format!("{} {}", s.path, status(s))).collect();
        self.log_line(done, if next.is_empty() { "-".to_string() } else { next.join(", ") });
    }

    fn log_line(&self, done: &[Finished], next: String) {
        let done: Vec<String> = done.iter().map(|(s, _)| format!("{} {}", s.path, status(s))).collect();
        let items: Vec<String> =
            done.iter().cloned().chain(next.split(", ").map(str::to_string)).filter(|r| r.contains('[')).collect();
        if !items.is_empty() {
            if let Some(hold) = self.hold.lock().take() {
                std::thread::sleep(hold);
            }
            self.items.lock().push(items);
        }
        self.writes.lock().push(format!("[{}] then {next}", done.join(", ")));
    }

    fn writes(&self) -> Vec<String> {
        std::mem::take(&mut *self.writes.lock())
    }
}

impl FlowStore for Logged {
    fn bounds(&self) -> FlowBounds {
        self.inner.bounds()
    }
    fn put_run(&self, run: &RunRecord) -> Result<(), String> {
        self.inner.put_run(run)
    }
    fn add_run(&self, run: &RunRecord) -> Result<bool, String> {
        self.inner.add_run(run)
    }
    fn run(&self, id: &str) -> Result<Option<RunRecord>, String> {
        self.inner.run(id)
    }
    fn request_cancel(&self, run: &str, by: &str) -> Result<(), String> {
        self.inner.request_cancel(run, by)
    }
    fn cancel_request(&self, run: &str) -> Result<Option<String>, String> {
        self.inner.cancel_request(run)
    }
    fn claim(&self, run: &RunRecord, owner: &str, heartbeat_ms: u64) -> Result<bool, String> {
        self.inner.claim(run, owner, heartbeat_ms)
    }
    fn renew(&self, run: &str, holder: &str, heartbeat_ms: u64) -> Result<bool, String> {
        self.inner.renew(run, holder, heartbeat_ms)
    }
    fn runs(&self, query: &RunQuery) -> Result<Vec<RunSummary>, String> {
        self.inner.runs(query)
    }
    fn running(&self) -> Result<Vec<RunRecord>, String> {
        self.inner.running()
    }
    fn put_step(&self, run: &str, holder: &str, step: &StepRecord) -> Result<(), String> {
        self.log(&[], std::slice::from_ref(step));
        self.inner.put_step(run, holder, step)
    }
    fn steps(&self, run: &str) -> Result<Vec<StepRecord>, String> {
        self.inner.steps(run)
    }
    fn put_journal(&self, run: &str, holder: &str, step: &str, attempt: u32, entries: &[Entry]) -> Result<(), String> {
        self.inner.put_journal(run, holder, step, attempt, entries)
    }
    fn finish_step(&self, run: &str, holder: &str, step: &StepRecord, journal: &[Entry]) -> Result<(), String> {
        self.log(&[(step.clone(), Vec::new())], &[]);
        self.inner.finish_step(run, holder, step, journal)
    }
    fn put_steps(&self, run: &str, holder: &str, done: &[Finished], next: &[StepRecord]) -> Result<(), String> {
        self.log(done, next);
        self.inner.put_steps(run, holder, done, next)
    }
    fn end_run(&self, run: &RunRecord, done: &[Finished]) -> Result<(), String> {
        self.log_line(done, format!("the run {}", run.status.word()));
        self.inner.end_run(run, done)
    }
    fn journal(&self, run: &str, step: &str) -> Result<Option<(u32, Vec<Entry>)>, String> {
        self.inner.journal(run, step)
    }
    fn put_dead(&self, dead: &DeadLetter) -> Result<(), String> {
        self.inner.put_dead(dead)
    }
    fn dead_letters(&self, page: &Page) -> Result<Vec<DeadLetter>, String> {
        self.inner.dead_letters(page)
    }
    fn dead(&self, id: &str) -> Result<Option<DeadLetter>, String> {
        self.inner.dead(id)
    }
    fn drop_dead(&self, id: &str) -> Result<bool, String> {
        self.inner.drop_dead(id)
    }
    fn add_approval(&self, approval: &ApprovalRecord) -> Result<(), String> {
        self.inner.add_approval(approval)
    }
    fn approval(&self, id: &str) -> Result<Option<ApprovalRecord>, String> {
        self.inner.approval(id)
    }
    fn approvals(&self, page: &Page, waiting_at: Option<u64>) -> Result<Vec<ApprovalRecord>, String> {
        self.inner.approvals(page, waiting_at)
    }
    fn answer(&self, id: &str, option: &str, by: &str, now_ms: u64) -> Result<ApprovalRecord, AnswerError> {
        self.inner.answer(id, option, by, now_ms)
    }
    fn tenant_bytes(&self, tenant: &str) -> Result<u64, String> {
        self.inner.tenant_bytes(tenant)
    }
    fn prune(&self, cutoffs: &Cutoffs) -> Result<Pruned, String> {
        self.inner.prune(cutoffs)
    }
}

fn host(dir: &Path, bounds: FlowBounds) -> (Flows, Arc<Logged>) {
    plugin(dir, "step", guests::FLOW_STEP, "");
    let inner = SqliteStore::open(&dir.join("flows.sqlite")).unwrap().with_bounds(bounds);
    let store = Arc::new(Logged { inner, writes: Mutex::default(), items: Mutex::default(), hold: Mutex::default() });
    (Flows::new(runtime_with_plugins(dir, ""), store.clone()), store)
}

const SEQUENCE: &str = r#"
[steps.main]
kind = "sequence"
steps = ["a", "b", "c"]
[steps.a]
agent = "step"
input = { name = "a", output = "{{input/a}}" }
[steps.b]
agent = "step"
input = { name = "b", output = "{{input/b}}" }
[steps.c]
agent = "step"
input = { name = "c", output = 3 }
"#;

#[tokio::test]
async fn a_steps_start_is_committed_with_the_end_of_the_step_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let (flows, store) = host(dir.path(), FlowBounds::default());
    let (report, _) = go(&flows, SEQUENCE, json!({"a": 1, "b": 2})).await;
    assert_eq!(ok(&report), &json!(3));
    assert_eq!(
        store.writes(),
        [
            "[] then main/a started",
            "[main/a done] then main/b started",
            "[main/b done] then main/c started",
            "[main/c done] then main done",
            "[] then the run succeeded",
        ],
        "one commit a step: each start carries the end before it"
    );
    let kept: Vec<(String, &str)> =
        flows.store().steps(&report.run).unwrap().iter().map(|s| (s.path.clone(), status(s))).collect();
    let done = |p: &str| (p.to_string(), "done");
    assert_eq!(kept, [done("main/a"), done("main/b"), done("main/c"), done("main")]);
    let (attempt, _) = flows.store().journal(&report.run, "main/c").unwrap().expect("the journal kept with its end");
    assert_eq!(attempt, 1);
}

#[tokio::test]
async fn a_finished_step_is_written_before_a_fan_outs_items_start_and_each_item_before_the_join() {
    let dir = tempfile::tempdir().unwrap();
    let (flows, store) = host(dir.path(), FlowBounds::default());
    let spec = r#"
[steps.main]
kind = "sequence"
steps = ["a", "fan"]
[steps.a]
agent = "step"
input = { name = "a", output = [1, 2] }
[steps.fan]
kind = "parallel"
for-each = "input"
do = "item"
max-concurrency = 1
[steps.item]
agent = "step"
input = { name = "item", output = "{{item}}" }
"#;
    let (report, _) = go(&flows, spec, json!({})).await;
    assert_eq!(ok(&report), &json!([1, 2]));
    let writes = store.writes();
    assert_eq!(
        writes,
        [
            "[] then main/a started",
            "[main/a done] then -",
            "[] then main/fan[0]/item started",
            "[main/fan[0]/item done] then -",
            "[] then main/fan[1]/item started",
            "[main/fan[1]/item done] then -",
            "[] then main/fan done",
            "[] then main done",
            "[] then the run succeeded",
        ],
        "a's end before the items run; each item's end before it counts as done"
    );
}

#[tokio::test]
async fn an_end_past_the_run_bound_fails_the_run_with_the_bound_and_the_step_after_it_never_starts() {
    let dir = tempfile::tempdir().unwrap();
    let bounds = FlowBounds { run_bytes: 8 * 1024, ..FlowBounds::default() };
    let (flows, store) = host(dir.path(), bounds);
    // b's input is short; its output (9,000 bytes, kept twice in its end) is not.
    let spec = SEQUENCE.replace(r#"output = "{{input/b}}""#, "pad = 9000");
    let (report, _) = go(&flows, &spec, json!({"a": 1})).await;
    let error = failed(&report);
    assert!(
        error.starts_with("main/c: flow store: the checkpoint of step main/b (")
            && error.contains(&format!("would take run {} to ", report.run)),
        "{error}"
    );
    assert_eq!(
        store.writes(),
        [
            "[] then main/a started",
            "[main/a done] then main/b started",
            "[main/b done] then main/c started",
            "[] then main failed",
            "[] then the run failed",
        ]
    );
    let kept: Vec<(String, &str)> =
        flows.store().steps(&report.run).unwrap().iter().map(|s| (s.path.clone(), status(s))).collect();
    let at = |p: &str, s| (p.to_string(), s);
    assert_eq!(
        kept,
        [at("main/a", "done"), at("main/b", "started"), at("main", "failed")],
        "b's end and c's start were refused together: c never ran"
    );
    assert_eq!(crate::flows::board(&flows, "runs/c"), serde_json::Value::Null, "c never ran");
}

#[tokio::test]
async fn a_runs_only_step_ends_in_the_commit_of_the_runs_end() {
    let dir = tempfile::tempdir().unwrap();
    let (flows, store) = host(dir.path(), FlowBounds::default());
    let (report, _) =
        go(&flows, "[steps.main]\nagent = \"step\"\ninput = { name = \"a\", output = 1 }\n", json!({})).await;
    assert_eq!(ok(&report), &json!(1));
    assert_eq!(store.writes(), ["[] then main started", "[main done] then the run succeeded"]);
    let kept = flows.store().steps(&report.run).unwrap();
    assert_eq!((kept.len(), kept[0].status), (1, StepStatus::Done));
    assert_eq!(flows.store().run(&report.run).unwrap().unwrap().status, paddock::flow::RunStatus::Succeeded);
}

#[tokio::test]
async fn a_last_end_past_the_run_bound_fails_the_run_and_its_record_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let bounds = FlowBounds { run_bytes: 8 * 1024, ..FlowBounds::default() };
    let (flows, store) = host(dir.path(), bounds);
    let spec = "[steps.main]\nagent = \"step\"\ninput = { name = \"a\", pad = 9000 }\n";
    let (report, _) = go(&flows, spec, json!({})).await;
    let error = failed(&report);
    assert!(
        error.starts_with("flow store: the checkpoint of step main (")
            && error.contains(&format!("would take run {} to ", report.run)),
        "{error}"
    );
    assert_eq!(
        store.writes(),
        ["[] then main started", "[main done] then the run succeeded", "[main done] then the run failed"],
        "the end is refused with the success, then with the failure; the failure alone is kept"
    );
    let run = flows.store().run(&report.run).unwrap().expect("the run's record is kept");
    assert_eq!((run.status, run.error.as_deref()), (paddock::flow::RunStatus::Failed, Some(error)));
    let kept = flows.store().steps(&report.run).unwrap();
    assert_eq!((kept.len(), kept[0].status), (1, StepStatus::Started));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_items_of_a_fan_out_starting_at_once_share_a_commit_and_each_items_records_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (flows, store) = host(dir.path(), FlowBounds::default());
    let spec = r#"
[steps.main]
kind = "parallel"
for-each = "input"
do = "item"
max-concurrency = 40
[steps.item]
agent = "step"
input = { name = "item", output = "{{item}}" }
"#;
    // The first item's start holds the store while the 39 others start.
    *store.hold.lock() = Some(Duration::from_millis(300));
    let items: Vec<u32> = (0..40).collect();
    let (report, _) = go(&flows, spec, json!(items)).await;
    assert_eq!(ok(&report), &json!(items));
    let commits = std::mem::take(&mut *store.items.lock());
    // The first commit is the first item's start, with any other that queued
    // before it was taken (a second, once, on a loaded machine).
    assert!(commits[0].iter().all(|r| r.ends_with(" started")), "{commits:?}");
    let starts = commits[1].iter().filter(|r| r.ends_with(" started")).count();
    assert_eq!(starts, 40 - commits[0].len(), "the starts that queued behind it went in one commit: {commits:?}");
    let mut records: Vec<String> = commits.iter().flatten().cloned().collect();
    records.sort();
    let mut expected: Vec<String> =
        (0..40).flat_map(|i| ["done", "started"].map(|s| format!("main[{i}]/item {s}"))).collect();
    expected.sort();
    assert_eq!(records, expected, "each item's start and end written once");
    assert!(commits.len() < 80, "{} commits for 40 items", commits.len());
    let kept = flows.store().steps(&report.run).unwrap();
    let items_done = kept.iter().filter(|s| s.path.contains('[') && s.status == StepStatus::Done).count();
    assert_eq!(items_done, 40);
    for i in 0..40 {
        let (attempt, _) = flows.store().journal(&report.run, &format!("main[{i}]/item")).unwrap().expect("kept");
        assert_eq!(attempt, 1);
    }
}
