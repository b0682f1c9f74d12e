//! `agents.call`: granted targets only, a depth limit, no cycles, and the
//! callee runs in the caller's tenant. Ungranted or unconfigured
//! capabilities answer truthfully.

use crate::util::*;
use paddock::runtime::RunOptions;
use paddock_test_guests::guests;

fn call(agent: &str, input: serde_json::Value) -> String {
    serde_json::json!({ "agent": agent, "input": input }).to_string()
}

#[tokio::test]
async fn calling_an_agent_not_in_the_manifest_is_denied_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    plugin(dir.path(), "boss", guests::CALLER, "[capabilities]\nagents = [\"helper\"]\n");
    plugin(dir.path(), "echoer", guests::ECHO, "");
    let rt = runtime_with_plugins(dir.path(), "");
    let outcome = run(&rt, "boss", &call("echoer", "hi".into())).await;
    assert_eq!(
        error_text(&outcome),
        "agent \"boss\" returned an error: denied: calling agent \"echoer\" is not granted to agent \"boss\" (its manifest's capabilities.agents: helper)"
    );
}

#[tokio::test]
async fn a_granted_call_runs_the_callee_in_the_callers_tenant() {
    let dir = tempfile::tempdir().unwrap();
    plugin(dir.path(), "boss", guests::CALLER, "[capabilities]\nagents = [\"echoer\"]\n");
    plugin(dir.path(), "echoer", guests::ECHO, "");
    let rt = runtime_with_plugins(dir.path(), "");
    let options = RunOptions { tenant: Some("acme".into()), ..Default::default() };
    let out = output_json(&run_with(&rt, "boss", &call("echoer", "hi".into()), &options).await);
    assert_eq!((out["input"].as_str(), out["writer"].as_str()), (Some("\"hi\""), Some("echoer")));
    let entry = rt.blackboard().namespace("acme").get("echo/last").unwrap().unwrap();
    assert_eq!((&*entry.value, &*entry.writer.agent), (&b"\"hi\""[..], "echoer"));
    assert_eq!(rt.blackboard().namespace("default").get("echo/last").unwrap(), None);
}

#[tokio::test]
async fn a_call_cycle_is_denied_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    plugin(dir.path(), "ping", guests::CALLER, "[capabilities]\nagents = [\"pong\"]\n");
    plugin(dir.path(), "pong", guests::CALLER, "[capabilities]\nagents = [\"ping\"]\n");
    let rt = runtime_with_plugins(dir.path(), "");
    let outcome = run(&rt, "ping", &call("pong", serde_json::json!({ "agent": "ping", "input": {} }))).await;
    assert_eq!(
        error_text(&outcome),
        "agent \"ping\" returned an error: failed: denied: calling \"ping\" would make a cycle: ping → pong → ping"
    );
}

#[tokio::test]
async fn calls_nest_only_to_the_depth_limit() {
    let dir = tempfile::tempdir().unwrap();
    for (name, next) in [("a", "b"), ("b", "c"), ("c", "d"), ("d", "e")] {
        plugin(dir.path(), name, guests::CALLER, &format!("[capabilities]\nagents = [{next:?}]\n"));
    }
    plugin(dir.path(), "e", guests::ECHO, "");
    let input = call(
        "b",
        serde_json::json!({ "agent": "c", "input": { "agent": "d", "input": { "agent": "e", "input": "deep" } } }),
    );

    let deep_enough = runtime_with_plugins(dir.path(), "[limits]\nmax-call-depth = 4\n");
    let out = output_json(&run(&deep_enough, "a", &input).await);
    assert_eq!(out["writer"], "e");

    let shallow = runtime_with_plugins(dir.path(), "[limits]\nmax-call-depth = 2\n");
    assert_eq!(
        error_text(&run(&shallow, "a", &input).await),
        "agent \"a\" returned an error: failed: failed: denied: call depth limit of 2 reached (limits.max-call-depth): a → b → c → d"
    );
}

#[tokio::test]
async fn a_callee_hitting_a_limit_is_reported_to_the_caller_as_a_limit() {
    let dir = tempfile::tempdir().unwrap();
    plugin(dir.path(), "boss", guests::CALLER, "[capabilities]\nagents = [\"looper\"]\n");
    plugin(dir.path(), "looper", guests::SPIN, "[limits]\nfuel = 1000000\n");
    let rt = runtime_with_plugins(dir.path(), "");
    let outcome = run(&rt, "boss", &call("looper", serde_json::json!({}))).await;
    assert_eq!(
        error_text(&outcome),
        "agent \"boss\" returned an error: limit: agent \"looper\" ran out of fuel (limit 1000000)"
    );
}

#[tokio::test]
async fn calls_in_one_invocation_stop_at_max_agent_calls_callees_calls_included() {
    let dir = tempfile::tempdir().unwrap();
    plugin(dir.path(), "boss", guests::CALLER, "[capabilities]\nagents = [\"looper\"]\n");
    plugin(dir.path(), "looper", guests::PROBER, "[capabilities]\nagents = [\"echoer\"]\n");
    plugin(dir.path(), "echoer", guests::ECHO, "");
    let rt = runtime_with_plugins(dir.path(), "[limits]\nmax-agent-calls = 5\n");
    let calls =
        |n: usize| serde_json::json!({ "ops": vec![serde_json::json!({ "op": "call", "agent": "echoer" }); n] });
    let denied =
        "denied: 5 agents.call made in this invocation and its callees, the most allowed (limits.max-agent-calls = 5)";
    // Alone, the looper makes its first 5 calls and is refused the other 995.
    let out = output_json(&run(&rt, "looper", &calls(1000).to_string()).await);
    let answers = out.as_array().unwrap();
    assert_eq!(answers.iter().filter(|a| a["ok"].is_string()).count(), 5);
    assert!(answers[5..].iter().all(|a| a["err"] == denied), "{:?}", &answers[5]);
    // Called by boss, whose call to it counts: 4 left for its own.
    let out = output_json(&run(&rt, "boss", &call("looper", calls(6))).await);
    let answers = out.as_array().unwrap_or_else(|| panic!("{out}"));
    assert_eq!(answers.iter().filter(|a| a["ok"].is_string()).count(), 4, "{out}");
    assert_eq!(answers[4]["err"], denied);
}
