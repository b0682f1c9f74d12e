//! Flows on several `paddock serve` processes sharing one PostgreSQL
//! database: a run whose host dies or pauses finished by another, answers
//! and cancels given through one host heard by the host running the run,
//! its events streamed from any host, and a fan-out's items run on every host.

use crate::many_hosts::{cli, host_folder, next_event};
use crate::util::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

/// A host folder on the database at `url` with the `step` plugin and `crash.toml`.
fn flow_folder(dir: &Path, url: &str) {
    plugin(&dir.join("plugins"), "step", paddock_test_guests::guests::FLOW_STEP, "[limits]\ntimeout = \"120s\"\n");
    let config =
        format!("[host]\nplugin-state = \"memory\"\n[store]\nbackend = \"postgres\"\nurl = {url:?}\npool = 4\n");
    std::fs::write(dir.join("paddock.toml"), config).unwrap();
    std::fs::write(dir.join("crash.toml"), crate::recovery::FLOW).unwrap();
}

/// [`flow_folder`] with the plugin state (and so the versions runs pin) in
/// the database, and the `step` plugin at `version`.
fn flow_folder_keeping_versions(dir: &Path, url: &str, version: &str) {
    flow_folder(dir, url);
    let manifest = dir.join("plugins/step/agent.toml");
    let text =
        std::fs::read_to_string(&manifest).unwrap().replace("version = \"1.0.0\"", &format!("version = {version:?}"));
    std::fs::write(&manifest, text).unwrap();
    let config = std::fs::read_to_string(dir.join("paddock.toml")).unwrap().replace("plugin-state = \"memory\"\n", "");
    std::fs::write(dir.join("paddock.toml"), config).unwrap();
}

type Log = std::io::Lines<std::io::BufReader<std::process::ChildStderr>>;

/// Host A: `paddock flow run crash.toml` in `dir`, once its second step
/// has started; the process, the run's id, and the rest of its log.
fn crash_run_started(dir: &Path) -> (std::process::Child, String, Log) {
    use std::io::BufRead;
    let mut a = paddock_in(dir)
        .args(["flow", "run", "crash.toml", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut events = std::io::BufReader::new(a.stdout.take().unwrap()).lines();
    let started: Value = serde_json::from_str(&events.next().unwrap().unwrap()).unwrap();
    let run = started["run"].as_str().unwrap().to_string();
    let mut log = std::io::BufReader::new(a.stderr.take().unwrap()).lines();
    let second_started = log.by_ref().map_while(Result::ok).any(|l| l.contains("second counted run 1 on attempt 1"));
    assert!(second_started, "host A started the second step");
    (a, run, log)
}

/// Waits until host `b` (in `b_dir`) has finished `run`, then checks that
/// it holds it, that only the interrupted step ran twice (its checkpoints
/// and the counters on the shared board), and returns the run's record.
async fn finished_by(b: &Served, b_dir: &Path, run: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        let ran = cli(b_dir, &["flow", "status", run, "--json"]).await;
        let status: Value = serde_json::from_str(&ran.stdout).unwrap_or_default();
        if status["run"]["status"] == "succeeded" {
            break status;
        }
        assert!(tokio::time::Instant::now() < deadline, "host B did not finish the run: {status} {}", ran.stderr);
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(status["run"]["output"], "\"done\"");
    assert!(status["run"]["owner"].as_str().unwrap().starts_with(&format!("{}@", b.child.id())), "{status}");
    let steps = crate::recovery::step_attempts(&status);
    assert_eq!(steps, [("main/first", 1), ("main/second", 2), ("main/third", 1), ("main", 0)], "{status}");
    // The counters on the shared board: each finished step ran once, the interrupted one twice.
    for (step, runs) in [("first", "1"), ("second", "2"), ("third", "1")] {
        let got = cli(b_dir, &["bb", "get", &format!("runs/{step}")]).await;
        assert_eq!((got.code, got.stdout.trim()), (0, runs), "runs/{step}: {}", got.stderr);
    }
    status["run"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_host_is_killed_is_finished_by_another_and_no_finished_step_runs_twice() {
    let Some(url) = paddock_postgres::testing::database_url("hosts_failover") else { return };
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    flow_folder(a_dir.path(), &url);
    flow_folder(b_dir.path(), &url);
    let b = serve(b_dir.path(), &[]);
    // Host A is killed (SIGKILL, by its PID) in the second step; host B finds
    // the run orphaned at its next scan and finishes it.
    let (mut a, run, _) = crash_run_started(a_dir.path());
    a.kill().unwrap();
    a.wait().unwrap();
    finished_by(&b, b_dir.path(), &run).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_resumes_on_its_pinned_version_on_a_host_whose_plugins_folder_never_had_it() {
    let Some(url) = paddock_postgres::testing::database_url("hosts_pinned") else { return };
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    flow_folder_keeping_versions(a_dir.path(), &url, "1.0.0");
    flow_folder_keeping_versions(b_dir.path(), &url, "2.0.0");
    let b = serve(b_dir.path(), &[]);
    let (mut a, run, _) = crash_run_started(a_dir.path());
    a.kill().unwrap();
    a.wait().unwrap();
    // Host B serves step 2.0.0, and finishes the run on 1.0.0, from the database.
    let finished = finished_by(&b, b_dir.path(), &run).await;
    let pinned = finished["pins"]["step"].as_str().unwrap().to_string();
    assert!(pinned.starts_with("1.0.0+"), "{finished}");
    let kept = b_dir.path().join(".paddock/versions/step").join(&pinned);
    let manifest = std::fs::read_to_string(kept.join("agent.toml")).unwrap();
    assert!(
        manifest.contains("version = \"1.0.0\"") && manifest.contains("component = \"component.wasm\""),
        "{manifest}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_paused_past_its_lease_loses_the_run_to_another_and_once_resumed_writes_nothing_to_it() {
    let Some(url) = paddock_postgres::testing::database_url("hosts_paused") else { return };
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    flow_folder(a_dir.path(), &url);
    flow_folder(b_dir.path(), &url);
    let b = serve(b_dir.path(), &[]);
    // Host A is paused (SIGSTOP) in the second step: alive, but renewing nothing.
    let (mut a, run, log) = crash_run_started(a_dir.path());
    signal(a.id(), "-STOP");
    let taken = finished_by(&b, b_dir.path(), &run).await;

    // Resumed, host A finds its lease gone, stops the run and writes nothing to it.
    signal(a.id(), "-CONT");
    let exited = tokio::task::spawn_blocking(move || a.wait().unwrap()).await.unwrap();
    let log: Vec<String> = log.map_while(Result::ok).collect();
    assert!(!exited.success(), "host A reports that it did not finish the run: {log:?}");
    let lost = format!("this host lost run {run}: another host claimed its lease; stopping it");
    assert!(log.iter().any(|l| l.contains(&lost)), "{log:?}");
    let ran = cli(b_dir.path(), &["flow", "status", &run, "--json"]).await;
    let after: Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(after["run"], taken, "the run is as host B left it");
    let got = cli(b_dir.path(), &["bb", "get", "runs/third"]).await;
    assert_eq!(got.stdout.trim(), "1", "host A ran no further step");
}

/// A flow asking one question.
const ASK: &str = "[flow]\nname = \"ask\"\n[steps.main]\nkind = \"approval\"\nquestion = \"Ship it?\"\n\
                   options = [\"ship\", \"hold\"]\ntimeout = \"60s\"\n";

/// A flow whose first step waits a minute.
const SLOW: &str = "[flow]\nname = \"slow\"\n[steps.main]\nkind = \"sequence\"\nsteps = [\"wait\", \"after\"]\n\
                    [steps.wait]\nagent = \"step\"\ninput = { name = \"wait\", wait_ms = 60000 }\n\
                    [steps.after]\nagent = \"step\"\ninput = { name = \"after\" }\n";

/// Three hosts on the database at `url`, the first with the `step` plugin
/// and the flows `ask` and `slow`; each with its `operate` key.
fn three_hosts(url: &str) -> Vec<(tempfile::TempDir, Served, String)> {
    (0..3)
        .map(|n| {
            let dir = tempfile::tempdir().unwrap();
            let key = host_folder(dir.path(), url);
            if n == 0 {
                plugin(&dir.path().join("plugins"), "step", paddock_test_guests::guests::FLOW_STEP, "");
                std::fs::create_dir_all(dir.path().join("flows")).unwrap();
                std::fs::write(dir.path().join("flows/ask.toml"), ASK).unwrap();
                std::fs::write(dir.path().join("flows/slow.toml"), SLOW).unwrap();
            }
            let served = serve(dir.path(), &[]);
            (dir, served, key)
        })
        .collect()
}

/// Opens the event stream of `run` on `host`, after event `after` when given.
async fn follow(host: &Served, key: &str, run: &str, after: Option<&str>) -> reqwest::Response {
    let mut request =
        reqwest::Client::new().get(format!("http://{}/v1/runs/{run}/events", host.address)).bearer_auth(key);
    if let Some(after) = after {
        request = request.header("last-event-id", after);
    }
    let stream = request.send().await.unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_answered_through_one_host_wakes_the_run_on_another_while_a_third_streams_its_events() {
    let Some(url) = paddock_postgres::testing::database_url("hosts_approval") else { return };
    let hosts = three_hosts(&url);
    let [(_, a, a_key), (_, b, b_key), (_, c, c_key)] = &hosts[..] else { unreachable!() };
    let (status, started) = call(a, Method::POST, "/v1/flows/ask/runs", a_key, "").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let run = started["run"].as_str().unwrap().to_string();

    // Host B streams the run host A executes.
    let (mut stream, mut text) = (follow(b, b_key, &run, None).await, String::new());
    let mut seen = Vec::new();
    let question = loop {
        let (event, id) = next_event(&mut stream, &mut text).await;
        seen.push((event["event"].as_str().unwrap().to_string(), id));
        if event["event"] == "approval-waiting" {
            break event["id"].as_str().unwrap().to_string();
        }
    };
    // Answered through host C: host A's step wakes on the store's notification (its poll is 5 s).
    let (status, answered) =
        call(c, Method::POST, &format!("/v1/approvals/{question}"), c_key, r#"{"option": "ship", "by": "eve"}"#).await;
    assert_eq!((status, &answered["answer"]), (StatusCode::OK, &json!("ship")), "{answered}");
    let asked = std::time::Instant::now();
    let (event, id) = next_event(&mut stream, &mut text).await;
    let woke = asked.elapsed();
    assert_eq!(
        (&event["event"], &event["answer"], &event["by"]),
        (&json!("approval-answered"), &json!("ship"), &json!("eve"))
    );
    eprintln!("an answer through host C reached host A's step and host B's stream in {woke:?}");
    assert!(woke < Duration::from_secs(1), "woken by the notification, not a poll: {woke:?}");
    seen.push(("approval-answered".into(), id));
    loop {
        let (event, id) = next_event(&mut stream, &mut text).await;
        seen.push((event["event"].as_str().unwrap().to_string(), id));
        if event["event"] == "run-finished" {
            assert_eq!((&event["status"], &event["output"]), (&json!("succeeded"), &json!("ship")), "{event}");
            break;
        }
    }
    let ids: Vec<String> = seen.iter().map(|(_, id)| id.clone()).collect();
    let numbered: Vec<String> = (0..seen.len()).map(|n| n.to_string()).collect();
    assert_eq!(ids, numbered, "every event once, in order: {seen:?}");

    // A client reconnecting to host C after the second event reads the rest, numbered alike.
    let (mut again, mut text) = (follow(c, c_key, &run, Some("1")).await, String::new());
    for (kind, id) in &seen[2..] {
        let (event, n) = next_event(&mut again, &mut text).await;
        assert_eq!((event["event"].as_str().unwrap(), n.as_str()), (kind.as_str(), id.as_str()));
    }
    assert!(again.chunk().await.unwrap().is_none(), "the stream ends with the run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_asked_through_one_host_stops_the_run_another_executes_at_once() {
    let Some(url) = paddock_postgres::testing::database_url("hosts_cancel") else { return };
    let hosts = three_hosts(&url);
    let [(_, a, a_key), _, (_, c, c_key)] = &hosts[..] else { unreachable!() };
    let (status, started) = call(a, Method::POST, "/v1/flows/slow/runs", a_key, "").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let run = started["run"].as_str().unwrap().to_string();
    let (mut stream, mut text) = (follow(c, c_key, &run, None).await, String::new());
    while next_event(&mut stream, &mut text).await.0["event"] != "step-started" {}

    // Host C asks; host A hears it from the store at once (its lease renewal, every 2 s, would be later).
    let asked = std::time::Instant::now();
    let (status, cancelled) = call(c, Method::POST, &format!("/v1/runs/{run}/cancel"), c_key, r#"{"by": "ops"}"#).await;
    let took = asked.elapsed();
    assert_eq!((status, &cancelled["status"]), (StatusCode::OK, &json!("cancelled")), "{cancelled}");
    eprintln!("a cancel through host C stopped the run on host A in {took:?}");
    assert!(took < Duration::from_millis(1_500), "stopped on the notification: {took:?}");
    let (status, shown) = call(c, Method::GET, &format!("/v1/runs/{run}"), c_key, "").await;
    assert_eq!((status, &shown["error"]), (StatusCode::OK, &json!("cancelled by ops")), "{shown}");
}

/// A fan-out of one I/O-bound agent item per element of its input.
const SPREAD: &str = "[flow]\nname = \"spread\"\n[steps.main]\nkind = \"parallel\"\nfor-each = \"input\"\ndo = \"item\"\n\
                      [steps.item]\nagent = \"step\"\ninput = { name = \"item\", wait_ms = 300, output = \"{{item}}\" }\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_out_started_on_one_host_runs_its_items_on_every_host_each_once() {
    let Some(url) = paddock_postgres::testing::database_url("hosts_spread") else { return };
    let hosts: Vec<(tempfile::TempDir, Served, String)> = (0..3)
        .map(|_| {
            let dir = tempfile::tempdir().unwrap();
            let key = host_folder(dir.path(), &url);
            // Four items at once per host (half of its instances).
            let config = std::fs::read_to_string(dir.path().join("paddock.toml")).unwrap();
            std::fs::write(dir.path().join("paddock.toml"), format!("{config}[engine]\nmax-instances = 8\n")).unwrap();
            plugin(&dir.path().join("plugins"), "step", paddock_test_guests::guests::FLOW_STEP, "");
            std::fs::create_dir_all(dir.path().join("flows")).unwrap();
            std::fs::write(dir.path().join("flows/spread.toml"), SPREAD).unwrap();
            let served = serve(dir.path(), &[]);
            (dir, served, key)
        })
        .collect();
    let [(_, a, a_key), (b_dir, b, b_key), _] = &hosts[..] else { unreachable!() };
    let items: Vec<u64> = (0..48).collect();
    let (status, started) = call(a, Method::POST, "/v1/flows/spread/runs", a_key, &json!(items).to_string()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let run = started["run"].as_str().unwrap().to_string();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let shown = loop {
        let (_, shown) = call(b, Method::GET, &format!("/v1/runs/{run}"), b_key, "").await;
        if shown["status"] != "running" {
            break shown;
        }
        assert!(tokio::time::Instant::now() < deadline, "the fan-out did not end: {shown}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(shown["status"], "succeeded", "{shown}");
    assert_eq!(shown["output"], json!(items), "every item's output, in item order");

    // Each item ran once, and every host ran some.
    let mut per_host: std::collections::BTreeMap<String, usize> = Default::default();
    let item_steps: Vec<&Value> =
        shown["steps"].as_array().unwrap().iter().filter(|s| s["path"].as_str().unwrap().ends_with("/item")).collect();
    assert_eq!(item_steps.len(), items.len(), "one checkpoint per item");
    for step in item_steps {
        assert_eq!((&step["status"], &step["attempt"]), (&json!("done"), &json!(1)), "{step}");
        let pid = step["host"].as_str().unwrap().split('@').next().unwrap().to_string();
        *per_host.entry(pid).or_default() += 1;
    }
    let pids: std::collections::BTreeSet<String> = hosts.iter().map(|(_, s, _)| s.child.id().to_string()).collect();
    assert_eq!(per_host.keys().cloned().collect::<std::collections::BTreeSet<_>>(), pids, "{per_host:?}");
    eprintln!("items per host: {per_host:?}");
    let counted = cli(b_dir.path(), &["bb", "get", "runs/item"]).await;
    assert_eq!(counted.stdout.trim(), "48", "each item's agent ran once: {}", counted.stderr);
    // The fan-out leaves nothing on the queue.
    let pg = paddock_postgres::Postgres::connect(&paddock_postgres::Settings::new(&url)).unwrap();
    let left = pg
        .run(|c| async move {
            let row = c
                .query_one("SELECT (SELECT count(*) FROM flow_work), (SELECT count(*) FROM flow_work_groups)", &[])
                .await
                .map_err(|e| paddock_postgres::describe(&e))?;
            Ok((row.get::<_, i64>(0), row.get::<_, i64>(1)))
        })
        .unwrap();
    assert_eq!(left, (0, 0), "items and groups left on the queue");
}

/// A fan-out whose failed items go to the dead-letter queue.
const FAN: &str = "[flow]\nname = \"fan\"\n[steps.main]\nkind = \"parallel\"\nfor-each = \"input\"\ndo = \"item\"\n\
                   on-item-error = \"dead_letter\"\n[steps.item]\nagent = \"step\"\ninput = \"{{item}}\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_out_run_by_the_cli_with_no_host_serving_claims_its_own_items_and_keeps_their_policy() {
    let Some(url) = paddock_postgres::testing::database_url("hosts_cli_fan") else { return };
    let dir = tempfile::tempdir().unwrap();
    flow_folder(dir.path(), &url);
    std::fs::write(dir.path().join("fan.toml"), FAN).unwrap();
    let input = r#"[{"name": "a", "output": "A"}, {"name": "b", "fail": "b fails"}, {"name": "c", "output": "C"}]"#;
    let ran = cli(dir.path(), &["flow", "run", "fan.toml", "--input", input, "--json"]).await;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let finished: Value = serde_json::from_str(ran.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(
        (&finished["status"], &finished["output"]),
        (&json!("succeeded"), &json!(["A", null, "C"])),
        "{}\n{}",
        ran.stdout,
        ran.stderr
    );
    let skipped: Vec<Value> = ran
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["event"] == "step-skipped")
        .collect();
    assert_eq!(skipped.len(), 1, "{}", ran.stdout);
    assert_eq!(
        (&skipped[0]["step"], &skipped[0]["error"]),
        (&json!("main[1]/item"), &json!("agent \"step\" returned an error: b fails"))
    );
    let dead = cli(dir.path(), &["dlq", "list", "--json"]).await;
    let dead: Vec<Value> = dead.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(dead.len(), 1, "one dead letter: {dead:?}");
    assert_eq!((&dead[0]["step"], &dead[0]["error"]), (&skipped[0]["step"], &skipped[0]["error"]));
}
