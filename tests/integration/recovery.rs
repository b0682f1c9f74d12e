//! Flows across processes. Crash recovery: `paddock flow run` killed with
//! SIGKILL in the middle of a run, then resumed by `paddock flow resume` or
//! by a starting `paddock serve`; counters on the durable blackboard prove no
//! finished step ran twice. Approvals: a run in one process answered from
//! another, by `paddock approve` or over `paddock serve`'s HTTP API.

use crate::util::*;
use paddock_test_guests::guests;
use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A process killed (SIGKILL) by its PID when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Three steps; the second waits a minute on its first attempt, so a test kills its host there.
pub(crate) const FLOW: &str = r#"
[flow]
name = "crash"
[steps.main]
kind = "sequence"
steps = ["first", "second", "third"]
[steps.first]
agent = "step"
input = { name = "first" }
[steps.second]
agent = "step"
input = { name = "second", wait_first_ms = 60000 }
[steps.third]
agent = "step"
input = { name = "third", output = "done" }
"#;

/// A folder with the `step` plugin, a durable blackboard and durable flows.
fn setup(dir: &Path) {
    setup_with(dir, "durable", FLOW);
}

/// A folder with the `step` plugin, a blackboard kept `board`, durable
/// flows and `crash.toml` holding `flow`.
fn setup_with(dir: &Path, board: &str, flow: &str) {
    plugin(&dir.join("plugins"), "step", guests::FLOW_STEP, "[limits]\ntimeout = \"120s\"\n");
    std::fs::write(
        dir.join("paddock.toml"),
        format!("[host]\nledger = \"memory\"\nplugin-state = \"memory\"\n[blackboard]\nstore = \"{board}\"\n"),
    )
    .unwrap();
    std::fs::write(dir.join("crash.toml"), flow).unwrap();
}

/// `paddock flow run crash.toml --json` with its second step started.
struct Running {
    child: Killed,
    run: String,
    /// Its events, one JSON object a line (read on, or it cannot write its last ones).
    events: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
    /// Its log, kept open for the same reason.
    _log: std::io::Lines<std::io::BufReader<std::process::ChildStderr>>,
}

/// Starts `paddock flow run crash.toml --json` and waits until the second
/// step has counted its run (its log line says so).
fn running(dir: &Path) -> Running {
    let child = paddock_in(dir)
        .args(["flow", "run", "crash.toml", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("paddock flow run starts");
    let mut child = Killed(child);
    let mut events = std::io::BufReader::new(child.0.stdout.take().unwrap()).lines();
    let started: serde_json::Value = serde_json::from_str(&events.next().unwrap().unwrap()).unwrap();
    assert_eq!(started["event"], "run-started");
    let run = started["run"].as_str().unwrap().to_string();
    let mut log = std::io::BufReader::new(child.0.stderr.take().unwrap()).lines();
    // "second counted run N on attempt 1": N counts earlier runs in the same folder.
    let second = |l: &String| l.contains("second counted run ") && l.contains(" on attempt 1");
    let counted = log.by_ref().map_while(Result::ok).any(|l| second(&l));
    assert!(counted, "the second step started");
    Running { child, run, events, _log: log }
}

/// The same, killed with SIGKILL once the second step has started; returns the run id.
fn run_and_kill(dir: &Path) -> String {
    let Running { child, run, .. } = running(dir);
    drop(child); // SIGKILL, then reaped
    run
}

/// `flow list --json`'s row of `run`, and the text line's status.
fn listed(dir: &Path, run: &str) -> (serde_json::Value, String) {
    let json = TestCommand::new(dir, &["flow", "list", "--json"]).run();
    assert_eq!(json.code, 0, "{}", json.stderr);
    let row =
        json.stdout.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()).find(|r| r["run"] == run);
    let text = TestCommand::new(dir, &["flow", "list"]).run();
    let line = text.stdout.lines().find(|l| l.starts_with(run)).unwrap_or_else(|| panic!("{}", text.stdout));
    let status = line.split_once(" default ").map(|(_, s)| s.trim().to_string()).unwrap_or_default();
    (row.unwrap_or_else(|| panic!("{run} is not listed: {}", json.stdout)), status)
}

#[test]
fn flow_list_tells_a_run_whose_process_died_as_interrupted_until_it_resumes() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let null = serde_json::Value::Null;
    let Running { child, run, .. } = running(dir.path());
    let (row, status) = listed(dir.path(), &run);
    assert_eq!((row["status"].as_str(), &row["interrupted"], status.as_str()), (Some("running"), &null, "running"));
    drop(child); // SIGKILL, then reaped
    let (row, status) = listed(dir.path(), &run);
    assert_eq!((row["status"].as_str(), status.as_str()), (Some("running"), "running, interrupted"), "{row}");
    let why = row["interrupted"].as_str().unwrap_or_default();
    let resume = format!(" is gone; a serving host resumes it, or `paddock flow resume {run}`");
    assert!(why.starts_with("its host ") && why.ends_with(&resume), "{row}");
    let resumed = TestCommand::new(dir.path(), &["flow", "resume", &run]).run();
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    let (row, status) = listed(dir.path(), &run);
    assert_eq!((row["status"].as_str(), &row["interrupted"], status.as_str()), (Some("succeeded"), &null, "succeeded"));
}

fn counter(dir: &Path, name: &str) -> String {
    let got = TestCommand::new(dir, &["bb", "get", &format!("runs/{name}")]).run();
    assert_eq!(got.code, 0, "{}", got.stderr);
    got.stdout.trim().to_string()
}

#[test]
fn a_run_killed_mid_step_resumes_and_no_finished_step_runs_twice() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let run = run_and_kill(dir.path());
    let status = TestCommand::new(dir.path(), &["flow", "status", &run, "--json"]).run();
    let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(status["run"]["status"], "running");
    // Marked running, but its process is gone: the status says so and how it resumes.
    let owner = status["run"]["owner"].as_str().unwrap();
    let why = format!("its host {owner} is gone; a serving host resumes it, or `paddock flow resume {run}`");
    assert_eq!(status["interrupted"], why.as_str());
    let text = TestCommand::new(dir.path(), &["flow", "status", &run]).run();
    assert!(
        text.stdout.starts_with(&format!("run {run}  flow crash  tenant default  running, interrupted: {why}\n")),
        "{}",
        text.stdout
    );
    let steps: Vec<(&str, &str)> = status["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["path"].as_str().unwrap(), s["status"].as_str().unwrap()))
        .collect();
    assert_eq!(steps, [("main/first", "done"), ("main/second", "started")]);

    // The interrupted step runs again, as attempt 2, which does not wait.
    let resumed = TestCommand::new(dir.path(), &["flow", "resume", &run]).run();
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert_eq!(resumed.stdout.trim(), "\"done\"");
    assert!(resumed.stderr.contains("↺ main/first  finished before; not run again"), "{}", resumed.stderr);
    assert_eq!(counter(dir.path(), "first"), "1", "the finished step did not run again");
    assert_eq!(counter(dir.path(), "second"), "2", "the interrupted step ran again");
    assert_eq!(counter(dir.path(), "third"), "1");
    let again = TestCommand::new(dir.path(), &["flow", "resume", &run]).run();
    assert_eq!(
        (again.code, again.stderr.trim()),
        (4, format!("error: run {run} has succeeded; only an unfinished run can be resumed").as_str())
    );
}

/// Sends `signal` (`STOP`, `CONT`) to process `pid`.
fn signal(pid: u32, signal: &str) {
    let sent = Command::new("kill").args([&format!("-{signal}"), &pid.to_string()]).status().unwrap();
    assert!(sent.success(), "kill -{signal} {pid}");
}

#[test]
fn a_host_paused_past_its_lease_loses_the_run_to_another_and_when_resumed_writes_nothing_to_it() {
    let dir = tempfile::tempdir().unwrap();
    // Each process its own board: the flow store alone says who ran what.
    setup_with(dir.path(), "memory", &FLOW.replace("wait_first_ms = 60000", "wait_first_ms = 3000"));
    let Running { mut child, run, events, _log: log } = running(dir.path());
    let pid = child.0.id();
    signal(pid, "STOP");
    let early = TestCommand::new(dir.path(), &["flow", "resume", &run]).run();
    assert_eq!(early.code, 4, "{}", early.stderr);
    assert!(
        early.stderr.starts_with(&format!("error: run {run} is held by host {pid}@"))
            && early.stderr.contains("(its lease was renewed "),
        "{}",
        early.stderr
    );
    // Past the lease (15 s), another process claims the run and finishes it.
    std::thread::sleep(Duration::from_secs(16));
    let resumed = TestCommand::new(dir.path(), &["flow", "resume", &run]).run();
    assert_eq!((resumed.code, resumed.stdout.trim()), (0, "\"done\""), "{}", resumed.stderr);
    assert!(resumed.stderr.contains("↺ main/first  finished before; not run again"), "{}", resumed.stderr);

    // The paused host wakes, its step's wait over: every write it tries is refused.
    signal(pid, "CONT");
    let said: Vec<String> = log.map_while(Result::ok).collect();
    let events: Vec<serde_json::Value> =
        events.map_while(Result::ok).filter_map(|l| serde_json::from_str(&l).ok()).collect();
    assert_ne!(child.0.wait().unwrap().code(), Some(0), "the paused host's run did not succeed");
    assert!(said.iter().any(|l| l.contains(": this host lost its lease and stops the run")), "{said:?}");
    let ran_third = |e: &&serde_json::Value| e["step"] == "main/third" || e["status"] == "succeeded";
    assert_eq!(events.iter().find(ran_third), None, "it ran no later step and did not end well");
    let status = TestCommand::new(dir.path(), &["flow", "status", &run, "--json"]).run();
    let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!((&status["run"]["status"], &status["run"]["output"]), (&"succeeded".into(), &"\"done\"".into()));
    let steps = step_attempts(&status);
    assert_eq!(steps, [("main/first", 1), ("main/second", 2), ("main/third", 1), ("main", 0)], "{status}");
    assert!(!status["run"]["owner"].as_str().unwrap().starts_with(&format!("{pid}@")), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_starting_host_resumes_interrupted_runs() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let run = run_and_kill(dir.path());
    let _serve = serve(dir.path(), &[]);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let status = TestCommand::new(dir.path(), &["flow", "status", &run, "--json"]).run();
        let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap_or_default();
        if status["run"]["status"] == "succeeded" {
            assert_eq!(status["run"]["output"], "\"done\"");
            break;
        }
        assert!(Instant::now() < deadline, "the run was not resumed: {status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(_serve);
    assert_eq!(counter(dir.path(), "first"), "1");
    assert_eq!(counter(dir.path(), "third"), "1");
}

#[test]
fn paddock_flow_cancel_stops_a_run_in_another_process_and_ends_an_orphan() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let Running { mut child, run, events, .. } = running(dir.path());
    let cancelled = TestCommand::new(dir.path(), &["flow", "cancel", &run, "--by", "ada"]).run();
    // The holder is the process's id: its pid, its machine, a nonce.
    let (pid, said) = (child.0.id(), cancelled.stdout.trim());
    assert_eq!(cancelled.code, 0, "{}", cancelled.stderr);
    assert!(
        said.starts_with(&format!("run {run} was cancelled (host {pid}@")) && said.ends_with(" stopped it)"),
        "{said}"
    );
    let last: serde_json::Value = serde_json::from_str(&events.map_while(Result::ok).last().unwrap()).unwrap();
    assert_eq!(
        (&last["event"], &last["status"], &last["error"]),
        (&"run-finished".into(), &"cancelled".into(), &"cancelled by ada".into())
    );
    assert_eq!(child.0.wait().unwrap().code(), Some(1));
    let status = TestCommand::new(dir.path(), &["flow", "status", &run, "--json"]).run();
    let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!((&status["run"]["status"], &status["run"]["error"]), (&"cancelled".into(), &"cancelled by ada".into()));
    let third = TestCommand::new(dir.path(), &["bb", "get", "runs/third"]).run();
    assert_eq!(third.stderr.trim(), "no key \"runs/third\" in tenant \"default\"", "the step after never ran");

    // A run whose process died is marked cancelled, and cannot be resumed.
    let orphan = run_and_kill(dir.path());
    let cancelled = TestCommand::new(dir.path(), &["flow", "cancel", &orphan, "--by", "ada"]).run();
    assert_eq!((cancelled.code, cancelled.stdout.trim()), (0, format!("run {orphan} was cancelled by ada").as_str()));
    let resumed = TestCommand::new(dir.path(), &["flow", "resume", &orphan]).run();
    assert_eq!(
        (resumed.code, resumed.stderr.trim()),
        (4, format!("error: run {orphan} was cancelled; only an unfinished run can be resumed").as_str())
    );
    let again = TestCommand::new(dir.path(), &["flow", "cancel", &orphan]).run();
    assert_eq!(
        (again.code, again.stderr.trim()),
        (2, format!("error: run {orphan} was cancelled; only an unfinished run can be cancelled").as_str())
    );
}

const ASKING: &str = r#"
[flow]
name = "asking"
[steps.main]
kind = "approval"
question = "Ship it?"
options = ["ship", "hold"]
timeout = "60s"
next = { ship = "ship" }
[steps.ship]
agent = "step"
input = { name = "ship", output = "shipped" }
"#;

/// Starts `paddock flow run asking.toml` and waits until its question is
/// listed by `paddock approvals list --json`; returns the process and the question.
fn asking(dir: &Path) -> (Killed, serde_json::Value) {
    std::fs::write(dir.join("asking.toml"), ASKING).unwrap();
    let child = Killed(
        paddock_in(dir)
            .args(["flow", "run", "asking.toml"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("paddock flow run starts"),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let listed = TestCommand::new(dir, &["approvals", "list", "--json"]).run();
        if let Some(line) = listed.stdout.lines().next() {
            return (child, serde_json::from_str(line).unwrap());
        }
        assert!(Instant::now() < deadline, "no question was asked: {}", listed.stderr);
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn finished(mut run: Killed) -> (i32, String) {
    let status = run.0.wait().unwrap();
    let mut out = String::new();
    std::io::Read::read_to_string(&mut run.0.stdout.take().unwrap(), &mut out).unwrap();
    (status.code().unwrap_or(-1), out.trim().to_string())
}

#[test]
fn a_question_asked_in_one_process_is_answered_by_paddock_approve_in_another() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let (run, question) = asking(dir.path());
    let id = question["id"].as_str().unwrap();
    assert_eq!(
        (question["question"].as_str(), question["options"].clone()),
        (Some("Ship it?"), serde_json::json!(["ship", "hold"]))
    );
    let wrong = TestCommand::new(dir.path(), &["approve", id, "later"]).run();
    assert_eq!(
        (wrong.code, wrong.stderr.trim()),
        (2, format!("error: \"later\" is not an option of approval {id} (options: ship, hold)").as_str())
    );
    let approved = TestCommand::new(dir.path(), &["approve", id, "ship", "--by", "ada"]).run();
    assert_eq!((approved.code, approved.stdout.trim()), (0, format!("approval {id}: ship (by ada)").as_str()));
    assert_eq!(finished(run), (0, "\"shipped\"".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paddock_serve_lists_and_answers_questions_over_http() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    // The board is durable and a host holds it: this test's run keeps it in memory.
    std::fs::write(dir.path().join("paddock.toml"), "[host]\nledger = \"memory\"\nplugin-state = \"memory\"\n")
        .unwrap();
    let token = key(dir.path(), "default", "operate");
    let serve = serve(dir.path(), &[]);
    let address = serve.address.clone();
    let (run, question) = asking(dir.path());
    let id = question["id"].as_str().unwrap();
    paddock::gateway::install_crypto();
    let client = reqwest::Client::new();
    let listed: serde_json::Value = client
        .get(format!("http://{address}/v1/approvals"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed[0]["id"], id);
    let missing = client
        .post(format!("http://{address}/v1/approvals/ap-nope"))
        .bearer_auth(&token)
        .body(r#"{"option":"ship"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status().as_u16(), 404);
    let answered = client
        .post(format!("http://{address}/v1/approvals/{id}"))
        .bearer_auth(&token)
        .body(r#"{"option":"ship","by":"ada"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(answered.status().as_u16(), 200);
    assert_eq!(finished(run), (0, "\"shipped\"".to_string()));
    drop(serve);
}

/// Each step's path and the attempt that settled it, from `flow status --json`.
pub(crate) fn step_attempts(status: &serde_json::Value) -> Vec<(&str, u64)> {
    let steps = status["steps"].as_array().unwrap().iter();
    steps.map(|s| (s["path"].as_str().unwrap(), s["attempt"].as_u64().unwrap())).collect()
}
