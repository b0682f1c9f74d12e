//! Flows: every step kind and policy with real component agents (the
//! `flow-step` guest), budgets, dead letters, pinned versions, replay and
//! spec checks. Sagas and approvals are in `flows_sagas`, which shares the
//! helpers here.

use crate::util::*;
use paddock::flow::store::{Page, RunQuery};
use paddock::flow::{Event, Flow, Flows, MemoryStore, Report, RunStatus, Start};
use paddock_fake_provider::FakeProvider;
use paddock_test_guests::guests;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;

const HEAD: &str = "[flow]\nname = \"t\"\n";

pub(crate) fn host(dir: &Path, extra: &str) -> Flows {
    plugin(dir, "step", guests::FLOW_STEP, "[capabilities]\nroutes = [\"fast\"]\napprovals = true\n");
    Flows::new(runtime_with_plugins(dir, extra), Arc::new(MemoryStore::default()))
}

/// Runs `spec` (after the `[flow]` head) on `input`; returns the report and every event.
pub(crate) async fn go(flows: &Flows, spec: &str, input: Value) -> (Report, Vec<Event>) {
    let flow = Flow::parse(&format!("{HEAD}{spec}"), "t.toml").unwrap_or_else(|e| panic!("{e}"));
    start(flows, flow, "t.toml", input).await
}

/// Starts `flow` on `input`, collecting its events.
pub(crate) async fn start(flows: &Flows, flow: Flow, origin: &str, input: Value) -> (Report, Vec<Event>) {
    let seen = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let sink = seen.clone();
    let start = Start { events: Some(Arc::new(move |e| sink.lock().push(e))), ..Start::default() };
    let report = flows.start(flow, origin, input, start).await.unwrap_or_else(|e| panic!("{e}"));
    let events = std::mem::take(&mut *seen.lock());
    (report, events)
}

/// A page of every tenant's records, as many as a test makes.
pub(crate) fn every() -> Page {
    Page { tenant: None, after: None, limit: 1000 }
}

/// The first question asked, once one is.
pub(crate) async fn question(flows: &Flows) -> paddock::flow::store::ApprovalRecord {
    loop {
        if let Some(a) = flows.store().approvals(&every(), None).unwrap().pop() {
            return a;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

pub(crate) fn board(flows: &Flows, key: &str) -> Value {
    match flows.runtime().blackboard().namespace("default").lookup(key).unwrap() {
        paddock::blackboard::Lookup::Found(e) => serde_json::from_slice(&e.value).unwrap(),
        _ => Value::Null,
    }
}

pub(crate) fn ok(report: &Report) -> &Value {
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.error);
    report.output.as_ref().unwrap()
}

pub(crate) fn failed(report: &Report) -> &str {
    assert_eq!(report.status, RunStatus::Failed, "{:?}", report.output);
    report.error.as_deref().unwrap()
}

#[tokio::test]
async fn a_sequence_passes_each_output_to_the_next_step() {
    let dir = tempfile::tempdir().unwrap();
    let flows = host(dir.path(), "");
    let spec = r#"
[steps.main]
kind = "sequence"
steps = ["a", "b"]
[steps.a]
agent = "step"
input = { name = "a", output = { n = "{{input/n}}" } }
[steps.b]
agent = "step"
input = { name = "b", got = "{{input}}", plan = "{{steps.a/n}}" }
"#;
    let (report, _) = go(&flows, spec, json!({"n": 7})).await;
    let out = ok(&report);
    assert_eq!(out["input"], json!({"name": "b", "got": {"n": 7}, "plan": 7}));
    assert_eq!(out["step"], json!("main/b"));
    assert_eq!(out["key"], json!(format!("{}/main/b", report.run)));
    let steps = flows.store().steps(&report.run).unwrap();
    let paths: Vec<&str> = steps.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(paths, ["main/a", "main/b", "main"], "each step checkpointed, in the order it finished");
}

#[tokio::test]
async fn a_failing_attempt_is_retried_under_the_same_idempotency_key() {
    let dir = tempfile::tempdir().unwrap();
    let flows = host(dir.path(), "");
    let spec = r#"
[steps.main]
agent = "step"
input = { name = "r", fail_before_attempt = 3 }
retry = { attempts = 3, backoff = "1ms" }
"#;
    let (report, events) = go(&flows, spec, json!({})).await;
    let out = ok(&report);
    assert_eq!((out["attempt"].clone(), out["runs"].clone()), (json!(3), json!(3)));
    assert_eq!(out["key"], json!(format!("{}/main", report.run)));
    let retries: Vec<u32> = events
        .iter()
        .filter_map(|e| match e {
            Event::StepRetrying { attempt, error, .. } => {
                assert_eq!(error, &format!("agent \"step\" returned an error: r fails on attempt {attempt}"));
                Some(*attempt)
            }
            _ => None,
        })
        .collect();
    assert_eq!(retries, [1, 2]);
}

#[tokio::test]
async fn parallel_for_each_joins_all_outputs_in_item_order() {
    let dir = tempfile::tempdir().unwrap();
    let flows = host(dir.path(), "");
    let spec = r#"
[steps.main]
kind = "parallel"
for-each = "input/tasks"
do = "task"
[steps.task]
agent = "step"
input = { name = "{{item}}", wait_ms = "{{index}}", output = "done {{item}} #{{index}}" }
"#;
    let (report, _) = go(&flows, spec, json!({"tasks": ["x", "y", "z"]})).await;
    assert_eq!(ok(&report), &json!(["done x #0", "done y #1", "done z #2"]));
    assert_eq!((board(&flows, "runs/x"), board(&flows, "runs/z")), (json!(1), json!(1)));
}

#[tokio::test]
async fn parallel_any_takes_the_first_success_and_cancels_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let flows = host(dir.path(), "");
    let spec = r#"
[steps.main]
kind = "parallel"
steps = ["slow", "quick"]
join = "any"
[steps.slow]
agent = "step"
input = { name = "slow", wait_ms = 20000, output = "slow" }
[steps.quick]
agent = "step"
input = { name = "quick", output = "quick" }
"#;
    let started = std::time::Instant::now();
    let (report, _) = go(&flows, spec, json!({})).await;
    assert_eq!(ok(&report), &json!("quick"));
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "the slow branch was cancelled");
}

#[tokio::test]
async fn parallel_quorum_succeeds_with_enough_items_and_fails_once_it_cannot() {
    let dir = tempfile::tempdir().unwrap();
    let flows = host(dir.path(), "");
    let spec = r#"
[steps.main]
kind = "parallel"
for-each = "input"
do = "item"
join = "quorum"
quorum = 2
on-item-error = "skip"
[steps.item]
agent = "step"
input = { name = "{{item/n}}", fail = "{{item/fail}}", output = "{{item/n}}" }
"#;
    let (report, _) = go(&flows, spec, json!([{"n": "a"}, {"n": "b", "fail": "no"}, {"n": "c"}])).await;
    assert_eq!(ok(&report), &json!(["a", null, "c"]));
    // One of three fails: 3 can never succeed.
    let three = spec.replace("quorum = 2", "quorum = 3");
    let (report, _) = go(&flows, &three, json!([{"n": "a"}, {"n": "b", "fail": "no"}, {"n": "c"}])).await;
    assert_eq!(
        failed(&report),
        "main: 1 of 3 items failed, so 3 cannot succeed; first: main[1]/item: agent \"step\" returned an error: no"
    );
}

#[tokio::test]
async fn failed_items_follow_their_policy_skip_dead_letter_or_fail() {
    let dir = tempfile::tempdir().unwrap();
    let flows = host(dir.path(), "");
    let spec = |policy: &str| {
        format!(
            r#"
[steps.main]
kind = "parallel"
for-each = "input"
do = "item"
on-item-error = "{policy}"
[steps.item]
agent = "step"
input = {{ name = "{{{{item/name}}}}", fail_before_attempt = "{{{{item/until}}}}", output = "{{{{item/name}}}}" }}
"#
        )
    };
    let items = json!([{"name": "ok", "until": 0}, {"name": "bad", "until": 2}]);
    let (report, events) = go(&flows, &spec("skip"), items.clone()).await;
    assert_eq!(ok(&report), &json!(["ok", null]));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::StepSkipped { step, dead_letter: None, .. } if step == "main[1]/item"))
    );

    let (report, _) = go(&flows, &spec("fail"), items.clone()).await;
    assert_eq!(failed(&report), "main[1]/item: agent \"step\" returned an error: bad fails on attempt 1");

    let (report, _) = go(&flows, &spec("dead_letter"), items).await;
    assert_eq!(ok(&report), &json!(["ok", null]));
    let dead = flows.store().dead_letters(&every()).unwrap();
    assert_eq!(dead.len(), 1);
    let d = &dead[0];
    assert_eq!(
        (d.run.as_str(), d.step.as_str(), d.agent.as_str(), d.attempts),
        (report.run.as_str(), "main[1]/item", "step", 1)
    );
    assert_eq!(d.error, "agent \"step\" returned an error: bad fails on attempt 1");
    assert_eq!(
        serde_json::from_str::<Value>(&d.input).unwrap(),
        json!({"name": "bad", "fail_before_attempt": 2, "output": "bad"})
    );
    assert!(d.journal.iter().any(|e| e.call.starts_with("blackboard.")), "its journal holds its host calls");
    // Re-driven, it runs as attempt 2, which succeeds, and leaves the queue.
    assert_eq!(flows.retry_dead(&d.id).await.unwrap(), "\"bad\"");
    assert!(flows.store().dead_letters(&every()).unwrap().is_empty());
}

fn voters(answers: &[&str]) -> String {
    let names: Vec<String> = (0..answers.len()).map(|i| format!("\"v{i}\"")).collect();
    let mut spec = format!("[steps.main]\nkind = \"vote\"\nsteps = [{}]\nfield = \"/answer\"\n", names.join(", "));
    for (i, a) in answers.iter().enumerate() {
        spec.push_str(&format!(
            "[steps.v{i}]\nagent = \"step\"\ninput = {{ name = \"v{i}\", output = {{ answer = \"{a}\", by = \"v{i}\" }} }}\n"
        ));
    }
    spec
}

#[tokio::test]
async fn votes_pick_by_majority_by_weight_or_by_judge_and_ties_follow_the_tie_policy() {
    let dir = tempfile::tempdir().unwrap();
    let flows = host(dir.path(), "");
    let (report, events) = go(&flows, &voters(&["yes", "no", "no"]), json!({})).await;
    assert_eq!(ok(&report), &json!({"answer": "no", "by": "v1"}));
    assert!(events.iter().any(|e| matches!(e, Event::VoteCounted { tally, .. } if tally.get("\"no\"") == Some(&2))));

    let weighted = format!("{}\n", voters(&["yes", "no", "no"]))
        .replace("field = \"/answer\"", "field = \"/answer\"\nmethod = \"weighted\"\nweights = { v0 = 5 }");
    let (report, _) = go(&flows, &weighted, json!({})).await;
    assert_eq!(ok(&report)["answer"], json!("yes"));

    let (report, _) = go(&flows, &voters(&["yes", "no"]), json!({})).await;
    assert_eq!(failed(&report), "main: the vote tied between \"yes\" and \"no\" (1 each)");

    let first = voters(&["yes", "no"]).replace("field = \"/answer\"", "field = \"/answer\"\ntie = \"first\"");
    let (report, _) = go(&flows, &first, json!({})).await;
    assert_eq!(ok(&report)["answer"], json!("yes"));

    let judged = voters(&["yes", "no", "maybe"])
        .replace("field = \"/answer\"", "field = \"/answer\"\nmethod = \"judge\"\njudge = \"judge\"")
        + "[steps.judge]\nagent = \"step\"\ninput = { name = \"judge\", output = 2, seen = \"{{input/candidates}}\" }\n";
    let (report, _) = go(&flows, &judged, json!({})).await;
    assert_eq!(ok(&report)["answer"], json!("maybe"));
}

#[tokio::test]
async fn a_branch_takes_the_first_case_that_holds_on_outputs_or_the_blackboard() {
    let dir = tempfile::tempdir().unwrap();
    let flows = host(dir.path(), "");
    let spec = r#"
[steps.main]
kind = "sequence"
steps = ["score", "gate"]
[steps.score]
agent = "step"
input = { name = "score", output = { score = "{{input/score}}" } }
[steps.gate]
kind = "branch"
cases = [
  { when = "bb:flags/stop", then = "stopped" },
  { when = "steps.score/score >= 8", then = "ship" },
]
else = "rework"
[steps.ship]
agent = "step"
input = { name = "ship", output = "shipped" }
[steps.rework]
agent = "step"
input = { name = "rework", output = "reworked" }
[steps.stopped]
agent = "step"
input = { name = "stopped", output = "stopped" }
"#;
    let (report, events) = go(&flows, spec, json!({"score": 9})).await;
    assert_eq!(ok(&report), &json!("shipped"));
    assert!(events.iter().any(|e| matches!(e, Event::BranchTaken { step, to } if step == "main/gate" && to == "ship")));
    let (report, _) = go(&flows, spec, json!({"score": 3})).await;
    assert_eq!(ok(&report), &json!("reworked"));
    let ns = flows.runtime().blackboard().namespace("default");
    ns.put("flags/stop", b"true", &paddock::blackboard::Writer::new("paddock-cli", "cli")).unwrap();
    let (report, _) = go(&flows, spec, json!({"score": 9})).await;
    assert_eq!(ok(&report), &json!("stopped"));
}

#[tokio::test]
async fn a_run_keeps_the_agent_versions_it_started_with_across_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let flows = host(dir.path(), "");
    let spec = r#"
[steps.main]
kind = "sequence"
steps = ["before", "gate", "after"]
[steps.before]
agent = "step"
input = { name = "before" }
[steps.gate]
kind = "approval"
question = "go?"
options = ["go"]
timeout = "30s"
[steps.after]
agent = "step"
input = { name = "after" }
"#;
    let old = flows.runtime().load("step").unwrap().version.to_string();
    let running = {
        let flows = flows.clone();
        tokio::spawn(async move { go(&flows, spec, json!({})).await })
    };
    let question = question(&flows).await;
    // A new version goes live while the run waits.
    plugin(dir.path(), "step", guests::FLOW_STEP, "[capabilities]\nroutes = [\"fast\"]\napprovals = true\n");
    let manifest = dir.path().join("step/agent.toml");
    std::fs::write(&manifest, std::fs::read_to_string(&manifest).unwrap().replace("1.0.0", "10.0.0")).unwrap();
    flows.runtime().reload("step").await;
    let new = flows.runtime().load("step").unwrap().version.to_string();
    assert_ne!(old, new);
    flows.approvals().answer(&question.id, "go", "ada").unwrap();
    let (report, _) = running.await.unwrap();
    ok(&report);
    let versions: Vec<(String, String)> =
        flows.store().steps(&report.run).unwrap().into_iter().filter_map(|s| Some((s.path, s.version?))).collect();
    assert_eq!(versions, [("main/before".to_string(), old.clone()), ("main/after".to_string(), old)]);
}

#[tokio::test]
async fn a_machine_follows_its_guards_and_stops_at_its_transition_bound() {
    let dir = tempfile::tempdir().unwrap();
    let flows = host(dir.path(), "");
    let spec = |bound: u32| {
        format!(
            r#"
[steps.main]
kind = "machine"
initial = "draft"
max-transitions = {bound}
[steps.main.states.draft]
step = "write"
next = [{{ when = "steps.write/runs >= 3", to = "done" }}, {{ to = "draft" }}]
[steps.main.states.done]
[steps.write]
agent = "step"
input = {{ name = "write-{bound}" }}
"#
        )
    };
    let (report, events) = go(&flows, &spec(10), json!({})).await;
    assert_eq!(ok(&report)["runs"], json!(3));
    let moves: Vec<(String, String)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Transition { from, to, .. } => Some((from.clone(), to.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(moves.len(), 3);
    assert_eq!(moves[2], ("draft".to_string(), "done".to_string()));
    let (report, _) = go(&flows, &spec(1), json!({})).await;
    assert_eq!(failed(&report), "main: stopped after 1 transitions (steps.main.max-transitions), in state \"draft\"");
}

#[tokio::test]
async fn a_step_budget_refuses_llm_calls_once_spent() {
    let dir = tempfile::tempdir().unwrap();
    let flows = host(dir.path(), "");
    let spec = r#"
[steps.main]
kind = "sequence"
steps = ["first", "second"]
budget = { tokens = 1 }
[steps.first]
agent = "step"
input = { name = "first", llm = "fast" }
[steps.second]
agent = "step"
input = { name = "second", llm = "fast" }
"#;
    let (report, _) = go(&flows, spec, json!({})).await;
    let error = failed(&report);
    assert!(
        error.starts_with("main/second: agent \"step\" returned an error: budget exceeded: steps.main.budget has spent its tokens (steps.main.budget.tokens = 1): "),
        "{error}"
    );
}

#[tokio::test]
async fn replaying_a_run_gives_the_same_outputs_with_zero_provider_calls() {
    let fake = FakeProvider::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "{}[routes.fast]\nretries = 0\ntargets = [{{ provider = \"p\", model = \"m\" }}]\n",
        fake_provider("p", "openai", &fake)
    );
    let flows = host(dir.path(), &toml);
    let spec = r#"
[steps.main]
kind = "parallel"
for-each = "input"
do = "ask"
[steps.ask]
agent = "step"
input = { name = "{{item}}", llm = "fast" }
"#;
    let (report, _) = go(&flows, spec, json!(["p", "q"])).await;
    ok(&report);
    let calls = fake.request_count();
    assert_eq!(calls, 2);
    let replayed = flows.replay(&report.run, None).await.unwrap();
    assert_eq!(replayed.len(), 2);
    assert!(replayed.iter().all(|r| r.same && r.calls > 0), "{replayed:?}");
    assert_eq!(fake.request_count(), calls, "a replay calls no provider");
    assert_eq!(board(&flows, "runs/p"), json!(1), "a replay writes nothing");
    let one = flows.replay(&report.run, Some("main[1]/ask")).await.unwrap();
    assert_eq!(one.iter().map(|r| r.step.as_str()).collect::<Vec<_>>(), ["main[1]/ask"]);
}

#[test]
fn spec_errors_name_the_step_and_the_key() {
    let cases = [
        ("[steps.main]\nagent = \"a\"\njoin = \"all\"\n", "steps.main.join: unknown key for a agent step"),
        (
            "[steps.main]\nkind = \"parallel\"\nsteps = [\"a\"]\njoin = \"most\"\n[steps.a]\nagent = \"x\"\n",
            "steps.main.join: \"most\" is not all, any or quorum",
        ),
        ("[steps.main]\nkind = \"sequence\"\nsteps = [\"nope\"]\n", "steps.main.steps: no step named \"nope\""),
        ("[steps.main]\nkind = \"sequence\"\nsteps = [\"main\"]\n", "steps.main: contains itself (main → main)"),
        (
            "[steps.main]\nagent = \"a\"\n[steps.orphan]\nagent = \"b\"\n",
            "steps.orphan: never runs (it is not reachable from flow.start = \"main\")",
        ),
        (
            "[steps.main]\nkind = \"machine\"\ninitial = \"s\"\n[steps.main.states.s]\n",
            "steps.main.max-transitions: a machine needs a bound, e.g. max-transitions = 20",
        ),
        (
            "[steps.main]\nagent = \"a\"\ninput = \"{{steps.ghost/x}}\"\n",
            "steps.main.input: `steps.ghost` names no step",
        ),
        (
            "[steps.main]\nkind = \"approval\"\nquestion = \"q\"\noptions = [\"y\"]\ntimeout = \"1m\"\non-timeout = \"n\"\n",
            "steps.main.on-timeout: \"n\" is not one of the options [\"y\"]",
        ),
        (
            "[steps.main]\nagent = \"a\"\nretry = { attempts = 0 }\n",
            "steps.main.retry.attempts: 0 is not between 1 and 100",
        ),
        (
            "[steps.main]\nagent = \"a\"\nbudget = { usd = -1.0 }\n",
            "steps.main.budget.usd: -1.0 must be a positive amount of US dollars",
        ),
    ];
    for (spec, want) in cases {
        let e = Flow::parse(&format!("{HEAD}{spec}"), "f.toml").unwrap_err().to_string();
        assert!(e.starts_with(&format!("f.toml: {want}")), "got {e:?}, want {want:?}");
    }
}

#[tokio::test]
async fn a_flow_naming_an_unknown_agent_fails_before_starting_naming_the_step() {
    let dir = tempfile::tempdir().unwrap();
    let flows = host(dir.path(), "");
    let flow = Flow::parse(&format!("{HEAD}[steps.main]\nagent = \"plannr\"\n"), "f.toml").unwrap();
    let e = flows.start(flow, "f.toml", json!({}), Start::default()).await.unwrap_err();
    assert!(e.starts_with("f.toml: steps.main.agent: no plugin named \"plannr\""), "{e}");
    assert!(
        flows.store().runs(&RunQuery { limit: 10, ..RunQuery::default() }).unwrap().is_empty(),
        "nothing was started"
    );
}

#[tokio::test]
async fn steps_past_the_tenants_max_concurrent_wait_their_turn_past_their_timeout_and_every_one_finishes() {
    let dir = tempfile::tempdir().unwrap();
    plugin(dir.path(), "waiter", guests::FLOW_STEP, "");
    let tenants = "[tenants.default]\nagents = [\"waiter\"]\nbudget = { max-concurrent = 1 }\n";
    let flows = Flows::new(runtime_with_plugins(dir.path(), tenants), Arc::new(MemoryStore::default()));
    // One item at a time: the last waits three turns of 300 ms for its slot,
    // past the 500 ms an invocation of the step may take.
    let spec = r#"
[steps.main]
kind = "parallel"
for-each = "input"
do = "task"
[steps.task]
agent = "waiter"
timeout = "500ms"
input = { name = "{{item}}", wait_ms = 300, output = "done {{item}}" }
"#;
    let started = std::time::Instant::now();
    let (report, _) = go(&flows, spec, json!(["a", "b", "c", "d"])).await;
    assert_eq!(ok(&report), &json!(["done a", "done b", "done c", "done d"]));
    assert!(started.elapsed() >= std::time::Duration::from_millis(1200), "the items ran one at a time");
}

#[tokio::test]
async fn a_tenant_that_may_not_run_an_agent_is_refused_before_the_run_starts() {
    let dir = tempfile::tempdir().unwrap();
    let flows = host(dir.path(), "[tenants.a]\nagents = [\"other\"]\n");
    let flow = Flow::parse(&format!("{HEAD}[steps.main]\nagent = \"step\"\n"), "f.toml").unwrap();
    let start = Start { tenant: Some("a".into()), ..Start::default() };
    let e = flows.start(flow, "f.toml", json!({}), start).await.unwrap_err();
    assert!(e.starts_with("f.toml: steps.main.agent: denied: "), "{e}");
    assert!(
        flows.store().runs(&RunQuery { limit: 10, ..RunQuery::default() }).unwrap().is_empty(),
        "nothing was started"
    );
}

#[tokio::test]
async fn a_supervisor_s_callees_spend_its_step_budget() {
    let dir = tempfile::tempdir().unwrap();
    let flows = host(dir.path(), "");
    plugin(dir.path(), "boss", guests::CALLER, "[capabilities]\nagents = [\"step\"]\n");
    let spec = r#"
[steps.main]
kind = "sequence"
steps = ["first", "second"]
budget = { tokens = 1 }
[steps.first]
agent = "boss"
input = { agent = "step", input = { name = "w1", llm = "fast" } }
[steps.second]
agent = "boss"
input = { agent = "step", input = { name = "w2", llm = "fast" } }
"#;
    let (report, _) = go(&flows, spec, json!({})).await;
    let error = failed(&report);
    let want = "main/second: agent \"boss\" returned an error: failed: budget exceeded: steps.main.budget has spent its tokens (steps.main.budget.tokens = 1): ";
    assert!(error.starts_with(want), "{error}");
    assert_eq!((board(&flows, "runs/w1"), board(&flows, "runs/w2")), (json!(1), json!(1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_begun_here_is_never_an_orphan_to_this_host_before_or_while_it_executes() {
    let dir = tempfile::tempdir().unwrap();
    let flows = host(dir.path(), "");
    let spec = format!("{HEAD}[steps.main]\nagent = \"step\"\ninput = {{ name = \"a\", wait_first_ms = 300 }}\n");
    let started = flows.begin(Flow::parse(&spec, "t.toml").unwrap(), "t.toml", json!({}), Start::default()).unwrap();
    let id = started.run().to_string();
    assert_eq!(flows.store().run(&id).unwrap().unwrap().status, RunStatus::Running);
    // Begun, its task not started: a scan of this host must not take it over (it would run twice).
    assert_eq!(flows.orphans().unwrap().len(), 0);
    let running = tokio::spawn(started.finish());
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(flows.orphans().unwrap().len(), 0, "executing");
    assert_eq!(running.await.unwrap().unwrap().status, RunStatus::Succeeded);
}
