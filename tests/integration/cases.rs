//! `paddock test` on recorded cases: a real run kept with `paddock run
//! --record` or `paddock record` replays with the provider stopped, and a
//! changed agent fails naming its first divergence.

use crate::util::*;
use paddock_fake_provider::{Behavior, FakeProvider, Reply};
use paddock_test_guests::guests;
use serde_json::{Value, json};
use std::path::Path;

/// `prober` asks the route `r`, to `fake`, and uses the board.
fn host(dir: &Path, fake: &FakeProvider) {
    plugin(&dir.join("plugins"), "prober", guests::PROBER, "[capabilities]\nroutes = [\"r\"]\n");
    let config = format!(
        "{}[routes.r]\nretries = 0\ntargets = [{{ provider = \"p\", model = \"m-1\" }}]\n",
        fake_provider("p", "openai", fake)
    );
    std::fs::write(dir.join("paddock.toml"), config).unwrap();
}

const OPS: &str =
    r#"{"ops":[{"op":"put","key":"notes/a","value":"hello"},{"op":"llm","route":"r"},{"op":"get","key":"notes/a"}]}"#;

/// A host in `dir` whose prober ran once for real on [`OPS`], the provider
/// answering "recorded answer", kept as the case `first`.
async fn recorded_first(dir: &Path) -> (FakeProvider, Ran) {
    let fake = FakeProvider::start().await.unwrap();
    host(dir, &fake);
    fake.push(Behavior::Reply(Reply { text: Some("recorded answer".into()), ..Default::default() }));
    let ran = TestCommand::new(dir, &["run", "prober", "--input", OPS, "--record", "first"]).run();
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    (fake, ran)
}

fn calls(case: &Value) -> Vec<&str> {
    case["journal"].as_array().unwrap().iter().map(|e| e["call"].as_str().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_run_passes_with_the_provider_stopped_and_a_changed_agent_fails_at_its_first_divergence() {
    let dir = tempfile::tempdir().unwrap();
    let (fake, ran) = recorded_first(dir.path()).await;
    assert_eq!(ran.stdout, "[{\"ok\":1},{\"ok\":\"recorded answer\"},{\"ok\":\"hello\"}]\n");
    let file = dir.path().join("plugins/prober/tests/first.json");
    assert!(ran.stderr.contains("recorded ./plugins/prober/tests/first.json (3 host calls)"), "{}", ran.stderr);
    let case: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(calls(&case), ["blackboard.put", "llm.complete", "blackboard.get"]);
    assert_eq!(case["output"], json!([{"ok": 1}, {"ok": "recorded answer"}, {"ok": "hello"}]));
    assert_eq!(case["input"], serde_json::from_str::<Value>(OPS).unwrap());
    let again = TestCommand::new(dir.path(), &["run", "prober", "--input", OPS, "--record", "first"]).run();
    assert_eq!(again.code, 2);
    assert!(
        again.stderr.ends_with("first.json exists: choose another name, or --force to replace it\n"),
        "{}",
        again.stderr
    );

    drop(fake);
    let tested = TestCommand::new(dir.path(), &["test", "prober"]).run();
    assert_eq!(tested.code, 0, "{}\n{}", tested.stdout, tested.stderr);
    let lines: Vec<&str> = tested.stdout.lines().collect();
    assert!(lines[0].starts_with("ok      prober/first  (3 host calls, "), "{}", tested.stdout);
    assert_eq!(lines[1..], ["1 case: 1 passed, 0 failed"]);

    // The same folder with another component: its first call is another one.
    link_component(&dir.path().join("plugins/prober"), Path::new(guests::ECHO));
    let changed = TestCommand::new(dir.path(), &["test", "prober"]).run();
    assert_eq!(changed.code, 1, "{}", changed.stderr);
    let lines: Vec<&str> = changed.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", changed.stdout);
    assert!(
        lines[0].starts_with(
            "FAILED  prober/first  replay diverged at call #1: the agent called blackboard.put(\"echo/last\",[123,34,"
        ) && lines[0].ends_with(",…) but the journal has blackboard.put(\"notes/a\",[104,101,108,108,111])"),
        "{}",
        changed.stdout
    );
    assert_eq!(lines[1..], ["        | INFO  echo 108 bytes", "1 case: 0 passed, 1 failed"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_whose_output_no_longer_matches_names_the_pointer_and_the_agents_log() {
    let dir = tempfile::tempdir().unwrap();
    let (_fake, _) = recorded_first(dir.path()).await;
    let file = dir.path().join("plugins/prober/tests/first.json");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace(r#"{"ok":"hello"}]"#, r#"{"ok":"bye"}]"#)).unwrap();
    // An assertion-only case checks only what it names.
    let mut only: Value = serde_json::from_str(&text).unwrap();
    only.as_object_mut().unwrap().remove("output");
    only["assert"] = json!({"/1/ok": "recorded answer"});
    std::fs::write(dir.path().join("plugins/prober/tests/only-the-answer.json"), only.to_string()).unwrap();

    let tested = TestCommand::new(dir.path(), &["test"]).run();
    assert_eq!(tested.code, 1, "{}", tested.stderr);
    let lines: Vec<&str> = tested.stdout.lines().collect();
    assert_eq!(lines[0], r#"FAILED  prober/first  output /2/ok: expected "bye", got "hello""#);
    assert!(lines[1].starts_with("ok      prober/only-the-answer  (3 host calls, "), "{}", tested.stdout);
    assert_eq!(lines[2..], ["2 cases: 1 passed, 1 failed"]);

    let json = TestCommand::new(dir.path(), &["test", "prober", "--case", "only", "--json"]).run();
    assert_eq!(json.code, 0, "{}", json.stderr);
    let verdict: Value = serde_json::from_str(json.stdout.trim()).unwrap();
    assert_eq!((verdict["case"].as_str(), verdict["passed"].as_bool()), (Some("only-the-answer"), Some(true)));
}

#[test]
fn a_folder_without_cases_says_how_to_record_one() {
    let dir = tempfile::tempdir().unwrap();
    plugin(&dir.path().join("plugins"), "echo", guests::ECHO, "");
    let tested = TestCommand::new(dir.path(), &["test"]).run();
    assert_eq!(tested.code, 2);
    assert_eq!(
        tested.stderr,
        "error: no cases to run in echo: an agent keeps them in tests/NAME.json; record one with \
         `paddock run NAME --input JSON --record CASE` or `paddock record RUN --into NAME/CASE`\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_step_recorded_as_a_case_replays_with_its_run_and_step() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeProvider::start().await.unwrap();
    host(dir.path(), &fake);
    fake.push(Behavior::Reply(Reply { text: Some("from the flow".into()), ..Default::default() }));
    std::fs::write(dir.path().join("probe.toml"), "[flow]\nname = \"probe\"\n[steps.main]\nagent = \"prober\"\n")
        .unwrap();
    let flow = TestCommand::new(dir.path(), &["flow", "run", "probe.toml", "--input", OPS, "--json"]).run();
    assert_eq!(flow.code, 0, "{}", flow.stderr);
    let run = flow
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find_map(|e| e["run"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("no run id in {}", flow.stdout));

    let wrong = TestCommand::new(dir.path(), &["record", &run, "--step", "other", "--into", "x"]).run();
    assert_eq!(wrong.code, 2);
    assert_eq!(wrong.stderr, format!("error: run {run} has no finished agent step at \"other\"; it has main\n"));
    let kept = TestCommand::new(dir.path(), &["record", &run, "--into", "from-flow"]).run();
    assert_eq!(kept.code, 0, "{}", kept.stderr);
    let case: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("plugins/prober/tests/from-flow.json")).unwrap())
            .unwrap();
    assert_eq!(case["run"], run.as_str());
    assert_eq!(case["env"]["PADDOCK_STEP"], "main");
    assert_eq!(case["tenant"], "default");
    assert_eq!(calls(&case), ["blackboard.put", "llm.complete", "blackboard.get"]);

    drop(fake);
    let tested = TestCommand::new(dir.path(), &["test", "prober"]).run();
    assert_eq!(tested.code, 0, "{}\n{}", tested.stdout, tested.stderr);
    assert!(tested.stdout.starts_with("ok      prober/from-flow  (3 host calls, "), "{}", tested.stdout);
}
