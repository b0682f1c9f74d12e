//! The command line beside a host that serves the data folder and holds its
//! durable blackboard: `flow run` runs in that host, `replay` needs no board,
//! and questions are listed and answered from other processes while it waits.

use crate::util::*;
use paddock_test_guests::guests;
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

const COUNT: &str = r#"
[flow]
name = "count"
[steps.main]
agent = "step"
input = { name = "main", output = "counted for {{input/who}}" }
"#;

const SHIP: &str = r#"
[flow]
name = "ship"
[steps.main]
kind = "approval"
question = "Ship {{input/what}}?"
options = ["ship", "hold"]
timeout = "60s"
next = { ship = "publish" }
[steps.publish]
agent = "step"
input = { name = "publish", output = "published" }
"#;

/// A host folder with the `step` plugin, a durable board and durable flows.
fn setup(dir: &Path) {
    setup_keeping(dir, "memory");
}

/// [`setup`] with `host.plugin-state` (and so the versions runs pin) kept `plugin_state`.
fn setup_keeping(dir: &Path, plugin_state: &str) {
    plugin(&dir.join("plugins"), "step", guests::FLOW_STEP, "");
    let cache = concat!(env!("CARGO_TARGET_TMPDIR"), "/code-cache");
    let config = format!(
        "[host]\nledger = \"memory\"\nplugin-state = {plugin_state:?}\ncode-cache = {cache:?}\n[blackboard]\nstore = \"durable\"\n"
    );
    std::fs::write(dir.join("paddock.toml"), config).unwrap();
    std::fs::write(dir.join("count.toml"), COUNT).unwrap();
    std::fs::write(dir.join("ship.toml"), SHIP).unwrap();
}

#[test]
fn flow_run_beside_a_host_holding_a_durable_board_runs_in_that_host() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let served = serve(dir.path(), &[]);
    for n in 1..=2 {
        let ran = TestCommand::new(dir.path(), &["flow", "run", "count.toml", "--input", r#"{"who":"ada"}"#]).run();
        assert_eq!(ran.code, 0, "run {n}: {}", ran.stderr);
        assert_eq!(ran.stdout, "\"counted for ada\"\n");
        assert!(ran.stderr.contains(": flow count, tenant default; agents: step "), "{}", ran.stderr);
    }
    // The host ran both steps on its board: the step's counter says 2.
    let log = std::fs::read_to_string(dir.path().join(SERVE_LOG)).unwrap();
    assert!(log.contains("main counted run 2 on attempt 1"), "{log}");
    let json = TestCommand::new(dir.path(), &["flow", "run", "count.toml", "--json"]).run();
    assert_eq!(json.code, 0, "{}", json.stderr);
    let events: Vec<Value> = json.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(kinds, ["run-started", "step-started", "step-finished", "run-finished"]);
    assert_eq!(events[3]["status"], "succeeded");
    // A replay calls nothing and needs no board: it works beside the host too.
    let run = events[0]["run"].as_str().unwrap();
    let replayed = TestCommand::new(dir.path(), &["replay", run]).run();
    assert_eq!(replayed.code, 0, "{}", replayed.stderr);
    assert!(replayed.stdout.starts_with("same      main  (step "), "{}", replayed.stdout);
    // A spec that does not validate is refused here, before the host is asked.
    let spec = "[flow]\nname = \"bad\"\n[steps.main]\nagent = \"step\"\ncolour = \"red\"\n";
    std::fs::write(dir.path().join("bad.toml"), spec).unwrap();
    let bad = TestCommand::new(dir.path(), &["flow", "run", "bad.toml"]).run();
    assert_eq!(bad.code, 5, "{}", bad.stderr);
    assert!(bad.stderr.contains("colour"), "{}", bad.stderr);
    drop(served);
}

#[test]
fn a_question_of_a_run_in_the_host_is_listed_and_answered_from_other_processes() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let _served = serve(dir.path(), &[]);
    let waiting = paddock_in(dir.path())
        .args(["flow", "run", "ship.toml", "--input", r#"{"what":"v2"}"#])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let since = Instant::now();
    let question = loop {
        let listed = TestCommand::new(dir.path(), &["approvals", "list", "--json"]).run();
        assert_eq!(listed.code, 0, "{}", listed.stderr);
        // One question a line.
        if let Some(q) = listed.stdout.lines().next().map(|l| serde_json::from_str::<Value>(l).unwrap()) {
            break q;
        }
        assert!(since.elapsed() < Duration::from_secs(20), "no question within 20 s: {}", listed.stdout);
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(question["question"], "Ship v2?");
    let id = question["id"].as_str().unwrap();
    let answered = TestCommand::new(dir.path(), &["approve", id, "ship", "--by", "ada"]).run();
    assert_eq!(answered.code, 0, "{}", answered.stderr);
    let done = waiting.wait_with_output().unwrap();
    assert_eq!(done.status.code(), Some(0), "{}", String::from_utf8_lossy(&done.stderr));
    assert_eq!(String::from_utf8_lossy(&done.stdout), "\"published\"\n");
}

/// Starts `slow.toml` through the host serving `dir`, kills that host (by
/// its PID) while the step runs, and moves the `step` plugin on to 1.0.1;
/// returns the unfinished run's id.
fn run_killed_then_plugin_moved_on(dir: &Path) -> String {
    let slow = "[flow]\nname = \"slow\"\n[steps.main]\nagent = \"step\"\ninput = { name = \"main\", wait_first_ms = 5000, output = \"done\" }\n";
    std::fs::write(dir.join("slow.toml"), slow).unwrap();
    let first = serve(dir, &[]);
    let mut waiting = paddock_in(dir)
        .args(["flow", "run", "slow.toml"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Once the step is running, the host dies with the run unfinished.
    let since = Instant::now();
    let run = loop {
        let listed = TestCommand::new(dir, &["flow", "list", "--json"]).run();
        let row = listed.stdout.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).next();
        if let Some(row) = row.filter(|r| r["status"] == "running") {
            break row["run"].as_str().unwrap().to_string();
        }
        assert!(since.elapsed() < Duration::from_secs(20), "no running run within 20 s: {}", listed.stdout);
        std::thread::sleep(Duration::from_millis(100));
    };
    std::thread::sleep(Duration::from_millis(300));
    signal(first.child.id(), "-KILL");
    drop(first);
    let _ = waiting.wait();
    let manifest = dir.join("plugins/step/agent.toml");
    let text = std::fs::read_to_string(&manifest).unwrap().replace("version = \"1.0.0\"", "version = \"1.0.1\"");
    std::fs::write(&manifest, text).unwrap();
    run
}

#[test]
fn flow_resume_beside_a_host_finishes_a_run_its_restart_could_not_resume_on_a_new_version() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let run = run_killed_then_plugin_moved_on(dir.path());
    // With the plugin state in memory no version is kept: the restarted host will not finish the run on 1.0.1 unasked.
    let _second = serve(dir.path(), &[]);
    let refused = TestCommand::new(dir.path(), &["flow", "resume", &run]).run();
    assert_eq!(refused.code, 4, "{}", refused.stderr);
    assert!(refused.stderr.contains("resume with --repin"), "{}", refused.stderr);
    assert!(refused.stderr.contains("keeps no version"), "{}", refused.stderr);
    let resumed = TestCommand::new(dir.path(), &["flow", "resume", &run, "--repin"]).run();
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert_eq!(resumed.stdout, "\"done\"\n");
    assert!(resumed.stderr.contains(&format!("run {run} resumed: flow slow")), "{}", resumed.stderr);
}

#[test]
fn a_restarted_host_finishes_a_run_on_the_kept_version_it_was_pinned_to_after_the_plugin_moved_on() {
    let dir = tempfile::tempdir().unwrap();
    setup_keeping(dir.path(), "durable");
    let run = run_killed_then_plugin_moved_on(dir.path());
    let _second = serve(dir.path(), &[]);
    let since = Instant::now();
    let status = loop {
        let shown = TestCommand::new(dir.path(), &["flow", "status", &run, "--json"]).run();
        let status: Value = serde_json::from_str(&shown.stdout).unwrap_or_default();
        if status["run"]["status"] != "running" {
            break status;
        }
        assert!(since.elapsed() < Duration::from_secs(30), "the run is not finished within 30 s: {}", shown.stdout);
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        (&status["run"]["status"], &status["run"]["output"]),
        (&Value::from("succeeded"), &Value::from("\"done\""))
    );
    assert!(status["run"]["pins"]["step"].as_str().unwrap().starts_with("1.0.0+"), "{status}");
}

#[test]
fn a_kept_version_asking_for_more_than_was_accepted_since_waits_for_an_approval_then_finishes_its_run() {
    let dir = tempfile::tempdir().unwrap();
    setup_keeping(dir.path(), "durable");
    // Step 1.0.0 asks for route r, which the tenant does not grant in advance.
    plugin(&dir.path().join("plugins"), "step", guests::FLOW_STEP, "[capabilities]\nroutes = [\"r\"]\n");
    let config = std::fs::read_to_string(dir.path().join("paddock.toml")).unwrap();
    std::fs::write(dir.path().join("paddock.toml"), config + "[tenants.default]\nagents = [\"step\"]\n").unwrap();
    let run = run_killed_then_plugin_moved_on(dir.path());
    // 1.0.1 asks for nothing and goes live, so what was accepted since is nothing.
    let manifest = dir.path().join("plugins/step/agent.toml");
    let text = std::fs::read_to_string(&manifest).unwrap().replace("[capabilities]\nroutes = [\"r\"]\n", "");
    std::fs::write(&manifest, text).unwrap();
    let _second = serve(dir.path(), &[]);

    let status = |dir: &Path| -> Value {
        let shown = TestCommand::new(dir, &["flow", "status", &run, "--json"]).run();
        serde_json::from_str(&shown.stdout).unwrap_or_default()
    };
    let pinned = status(dir.path())["run"]["pins"]["step"].as_str().unwrap().to_string();
    assert!(pinned.starts_with("1.0.0+"), "{pinned}");
    let refused = TestCommand::new(dir.path(), &["flow", "resume", &run]).run();
    assert_eq!(refused.code, 4, "{}", refused.stderr);
    let asks = format!(
        "version {pinned} the run is pinned to asks for route \"r\", beyond what was accepted since; \
         approve it with `paddock plugins approve step {pinned}`"
    );
    assert!(refused.stderr.contains(&asks), "{}", refused.stderr);
    assert_eq!(status(dir.path())["run"]["status"], "running");

    let approved = TestCommand::new(dir.path(), &["plugins", "approve", "step", &pinned]).run();
    assert_eq!(approved.code, 0, "{}", approved.stderr);
    // The host's next look for orphans finishes the run on the approved version.
    let since = Instant::now();
    let finished = loop {
        let now = status(dir.path());
        if now["run"]["status"] != "running" {
            break now;
        }
        assert!(since.elapsed() < Duration::from_secs(30), "the run is not finished within 30 s: {now}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        (&finished["run"]["status"], &finished["run"]["pins"]["step"]),
        (&Value::from("succeeded"), &Value::from(pinned))
    );
}
