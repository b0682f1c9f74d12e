//! Sagas and approvals: flows that undo their finished steps when a later
//! one fails (the flagship plan-execute-audit flow among them), and flows
//! that wait on a person.

use crate::flows::{board, failed, go, host, ok, question, start};
use crate::util::*;
use paddock::flow::{Event, Flow, Flows, MemoryStore, Report};
use paddock_test_guests::guests;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;

/// The steps a saga compensated, in order.
fn compensated(events: &[Event]) -> Vec<&str> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Compensated { step } => Some(step.as_str()),
            _ => None,
        })
        .collect()
}

const SAGA: &str = r#"
[steps.main]
kind = "saga"
steps = ["a", "b", "c"]
[steps.a]
agent = "step"
input = { name = "a" }
[steps.b]
agent = "step"
input = { name = "b", fail_compensate = "{{flow/b_undo}}" }
[steps.c]
agent = "step"
input = { name = "c", fail = "out of stock" }
"#;

#[tokio::test]
async fn a_saga_whose_third_step_fails_compensates_the_second_then_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let flows = host(dir.path(), "");
    let (report, events) = go(&flows, SAGA, json!({"b_undo": null})).await;
    assert_eq!(
        failed(&report),
        "main: main/c: agent \"step\" returned an error: out of stock; compensated: main/b, main/a"
    );
    assert_eq!(board(&flows, "compensations"), json!(["b", "a"]));
    let undone = compensated(&events);
    assert_eq!(undone, ["main/b", "main/a"]);
}

#[tokio::test]
async fn a_failing_compensation_is_reported_and_the_earlier_ones_still_run() {
    let dir = tempfile::tempdir().unwrap();
    let flows = host(dir.path(), "");
    let (report, _) = go(&flows, SAGA, json!({"b_undo": "refund refused"})).await;
    assert_eq!(
        failed(&report),
        "main: main/c: agent \"step\" returned an error: out of stock; compensated: main/a; \
         compensation failed: main/b: agent \"step\" returned an error: refund refused"
    );
    assert_eq!(board(&flows, "compensations"), json!(["a"]));
}

#[tokio::test]
async fn a_saga_compensates_every_item_of_a_finished_fan_out() {
    let dir = tempfile::tempdir().unwrap();
    let flows = host(dir.path(), "");
    let spec = r#"
[steps.main]
kind = "saga"
steps = ["fan", "last"]
[steps.fan]
kind = "parallel"
for-each = "flow/items"
do = "item"
max-concurrency = 1
[steps.item]
agent = "step"
input = { name = "{{item}}" }
[steps.last]
agent = "step"
input = { name = "last", fail = "no" }
"#;
    let (report, _) = go(&flows, spec, json!({"items": ["x", "y"]})).await;
    assert_eq!(
        failed(&report),
        "main: main/last: agent \"step\" returned an error: no; compensated: main/fan[1]/item, main/fan[0]/item"
    );
    assert_eq!(board(&flows, "compensations"), json!(["y", "x"]));
}

#[tokio::test]
async fn an_approval_waits_for_an_answer_and_runs_the_step_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let flows = host(dir.path(), "");
    let spec = r#"
[steps.main]
kind = "approval"
question = "Ship {{input/what}}?"
options = ["ship", "hold"]
timeout = "30s"
next = { ship = "publish" }
[steps.publish]
agent = "step"
input = { name = "publish", output = "published" }
"#;
    let running = {
        let flows = flows.clone();
        tokio::spawn(async move { go(&flows, spec, json!({"what": "v2"})).await })
    };
    let question = question(&flows).await;
    assert_eq!(
        (question.question.as_str(), question.options.clone()),
        ("Ship v2?", vec!["ship".to_string(), "hold".into()])
    );
    assert_eq!(
        flows.approvals().answer(&question.id, "later", "ada").unwrap_err().to_string(),
        format!("\"later\" is not an option of approval {} (options: ship, hold)", question.id)
    );
    flows.approvals().answer(&question.id, "ship", "ada").unwrap();
    let (report, events) = running.await.unwrap();
    assert_eq!(ok(&report), &json!("published"));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::ApprovalAnswered { answer, by, .. } if answer == "ship" && by == "ada"))
    );

    // Nobody answers: the timeout's option is taken, and with no step for it, it is the output.
    let timed = spec.replace("timeout = \"30s\"", "timeout = \"50ms\"\non-timeout = \"hold\"");
    let (report, _) = go(&flows, &timed, json!({"what": "v3"})).await;
    assert_eq!(ok(&report), &json!("hold"));
}

#[tokio::test]
async fn an_agent_asking_a_person_waits_for_the_answer_or_its_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let flows = host(dir.path(), "");
    let spec = |timeout_ms: u32| {
        format!(
            "[steps.main]\nagent = \"step\"\ninput = {{ name = \"asker\", ask = {{ question = \"Deploy?\", options = [\"yes\", \"no\"], timeout_ms = {timeout_ms} }} }}\n"
        )
    };
    let running = {
        let (flows, spec) = (flows.clone(), spec(30_000));
        tokio::spawn(async move { go(&flows, &spec, json!({})).await })
    };
    let question = question(&flows).await;
    assert_eq!((question.asker.as_str(), question.question.as_str()), ("step", "Deploy?"));
    flows.approvals().answer(&question.id, "no", "ada").unwrap();
    let (report, _) = running.await.unwrap();
    assert_eq!(ok(&report), &json!({"answer": "no"}));

    let (report, _) = go(&flows, &spec(50), json!({})).await;
    assert_eq!(failed(&report), "main: agent \"step\" returned an error: timeout");
}

/// A plugins folder with the flagship agents (their own manifests, pointing
/// at the components the test build made).
fn flagship(dir: &Path) -> Flows {
    flagship_with(dir, "")
}

/// [`flagship`] on a host configured by `config` too.
fn flagship_with(dir: &Path, config: &str) -> Flows {
    let built = Path::new(guests::HELLO).parent().unwrap();
    for name in ["planner", "executor", "auditor"] {
        let manifest =
            std::fs::read_to_string(Path::new(guests::ROOT).join("plugins").join(name).join("agent.toml")).unwrap();
        let component = link_component(&dir.join(name), &built.join(format!("{name}.wasm")));
        let manifest: String = manifest
            .lines()
            .map(|l| if l.starts_with("component =") { format!("component = {component:?}") } else { l.to_string() })
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(dir.join(name).join("agent.toml"), manifest).unwrap();
    }
    Flows::new(runtime_with_plugins(dir, config), Arc::new(MemoryStore::default()))
}

async fn flagship_run(flows: &Flows, input: Value) -> (Report, Vec<Event>) {
    let path = Path::new(guests::ROOT).join("examples/plan-execute-audit.toml");
    let flow = Flow::parse(&std::fs::read_to_string(&path).unwrap(), "plan-execute-audit.toml").unwrap();
    start(flows, flow, "plan-execute-audit.toml", input).await
}

#[tokio::test]
async fn the_flagship_flow_plans_executes_each_task_in_parallel_and_passes_its_audit_offline() {
    let dir = tempfile::tempdir().unwrap();
    let flows = flagship(dir.path());
    let (report, _) = flagship_run(&flows, json!({"goal": "write the launch note", "tasks": 4})).await;
    let out = ok(&report);
    assert_eq!((out["verdict"].clone(), out["checked"].clone()), (json!("pass"), json!(4)));
    let ns = flows.runtime().blackboard().namespace("default");
    assert_eq!(ns.list(&format!("results/{}/", report.run), 100).unwrap().len(), 4, "one result per task");
    let plan = board(&flows, &format!("plans/{}", report.run));
    assert_eq!((plan["source"].clone(), plan["tasks"].as_array().unwrap().len()), (json!("derived"), 4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_flagship_executors_ground_their_tasks_in_the_notes_tool_of_examples_paddock_toml() {
    if !crate::doors::python_has("mcp") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // examples/paddock.toml's [mcp.notes], its command run from examples/.
    let example = std::fs::read_to_string(Path::new(guests::ROOT).join("examples/paddock.toml")).unwrap();
    let section = &example[example.find("[mcp.notes]").unwrap()..];
    let server = Path::new(guests::ROOT).join("examples/mcp/notes.py");
    let config = section.replace("\"mcp/notes.py\"", &format!("{:?}", server.display().to_string()));
    let flows = flagship_with(dir.path(), &config);
    let (report, _) = flagship_run(&flows, json!({"goal": "write the launch note", "tasks": 3})).await;
    let out = ok(&report);
    assert_eq!(out["verdict"], "pass");
    let ns = flows.runtime().blackboard().namespace("default");
    let results = ns.list(&format!("results/{}/", report.run), 100).unwrap();
    assert_eq!(results.len(), 3);
    for key in results {
        let record: Value = serde_json::from_slice(&ns.get(&key).unwrap().unwrap().value).unwrap();
        let notes = record["notes"].as_array().unwrap_or_else(|| panic!("no notes in {record}"));
        assert!(
            notes.len() == 2 && notes[0].as_str().unwrap().starts_with("A launch note leads with"),
            "the note on the launch note comes first for every task: {record}"
        );
    }
    let mut metrics = String::new();
    flows.runtime().tools().metrics().render_into(&mut metrics);
    let ok_calls = "paddock_tool_calls_total{tenant=\"default\",server=\"notes\",outcome=\"ok\"} 3";
    assert!(metrics.contains(ok_calls), "{metrics}");
}

#[tokio::test]
async fn a_failed_flagship_audit_compensates_every_executor_then_the_planner() {
    let dir = tempfile::tempdir().unwrap();
    let flows = flagship(dir.path());
    let (report, events) = flagship_run(&flows, json!({"goal": "write the launch note", "min_words": 40})).await;
    let error = failed(&report);
    assert!(
        error.starts_with("main: main/audit: agent \"auditor\" returned an error: audit failed: task t1 has "),
        "{error}"
    );
    // Executors finish in any order and are undone latest first; the planner last.
    let (_, listed) = error.split_once("; compensated: ").unwrap();
    let mut listed: Vec<&str> = listed.split(", ").collect();
    assert_eq!(listed.pop(), Some("main/plan"));
    listed.sort();
    assert_eq!(
        listed,
        ["main/execute[0]/execute-task", "main/execute[1]/execute-task", "main/execute[2]/execute-task"]
    );
    let undone = compensated(&events);
    assert_eq!(undone.len(), 4);
    assert_eq!(undone[3], "main/plan", "the planner is undone last");
    let ns = flows.runtime().blackboard().namespace("default");
    assert!(ns.list(&format!("results/{}/", report.run), 100).unwrap().is_empty(), "every result was deleted");
    assert_eq!(board(&flows, &format!("plans/{}", report.run)), Value::Null, "the plan was deleted");
}
