//! The `tools` capability: agents list and call the tools of real MCP
//! servers (`tests/fixtures/mcp/kit.py` over stdio, a `paddock serve`'s
//! `/mcp` over Streamable HTTP) as far as their grants reach, under the
//! servers' timeouts and result caps, the tenant's rate and the run's
//! budget; a replay answers from the journal with the server gone.

use crate::doors::python_has;
use crate::tools::{kit_section, serving_echo};
use crate::util::*;
use paddock::journal::Tape;
use paddock::quota::run::{RunBudget, RunLimits};
use paddock::runtime::{RunOptions, Runtime};
use paddock_test_guests::guests;
use serde_json::{Value, json};
use std::path::Path;

const GRANTED: &str = "[\"kit/echo\", \"kit/big\", \"kit/sleep\", \"kit/crash\", \"kit/fail\"]";

/// A host whose tenant `acme` runs `tooluser` (asking for `kit/*`) and
/// `plain` (asking for nothing), and grants five of kit's six tools.
fn host(dir: &Path, kit: &str, tenant_extra: &str) -> Runtime {
    plugin(dir, "tooluser", guests::TOOL_USER, "[capabilities]\ntools = [\"kit/*\"]\n");
    plugin(dir, "plain", guests::TOOL_USER, "");
    let config =
        format!("{kit}[tenants.acme]\nagents = [\"tooluser\", \"plain\"]\ntools = {GRANTED}\n{tenant_extra}\n");
    runtime_with_plugins(dir, &config)
}

/// `[mcp.kit]` with `kit/sleep` limited to 500 ms.
fn kit() -> String {
    format!("{}tool-timeouts = {{ sleep = \"500ms\" }}\n", kit_section())
}

fn acme() -> RunOptions {
    RunOptions { tenant: Some("acme".into()), ..Default::default() }
}

async fn ask(rt: &Runtime, agent: &str, input: Value, options: &RunOptions) -> Value {
    output_json(&run_with(rt, agent, &input.to_string(), options).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_lists_only_its_granted_tools_and_each_refusal_names_its_rule() {
    if !python_has("mcp") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let rt = host(dir.path(), &kit(), "");
    let calls = json!([
        {"name": "kit/echo", "args": {"text": "hi"}},
        {"name": "kit/env", "args": {"names": ["HOME"]}},
        {"name": "kit/fail", "args": {"why": "no luck"}},
        {"name": "kit/echo", "raw": "[1]"},
        {"name": "kit/echo", "raw": "{"},
        {"name": "echo"},
        {"name": "gone/x"},
    ]);
    let out = ask(&rt, "tooluser", json!({"list": true, "calls": calls}), &acme()).await;
    assert_eq!(
        out["tools"],
        json!([
            ["kit/big", "Answers n bytes of x"],
            ["kit/crash", "Ends the server's process at once"],
            ["kit/echo", "Says back the text it is given"],
            ["kit/fail", "Raises an error"],
            ["kit/sleep", "Sleeps for the given seconds, then answers"],
        ]),
        "kit/env is kit's too, but its tenant does not grant it"
    );
    let answers = out["calls"].as_array().unwrap();
    assert_eq!(answers[0]["text"], "hi");
    assert_eq!(
        answers[1],
        json!({"error": "denied", "why": format!(
            "tool \"kit/env\" is not granted to agent \"tooluser\" by tenant \"acme\": tenants.acme.tools = \
             [kit/echo, kit/big, kit/sleep, kit/crash, kit/fail] grants only kit/echo, kit/big, kit/sleep, kit/crash, kit/fail of it"
        )})
    );
    assert_eq!(answers[2], json!({"error": "failed", "why": "kit/fail: Error executing tool fail"}));
    assert_eq!(
        answers[3],
        json!({"error": "invalid-arguments", "why": "the arguments of kit/echo are an array, not a JSON object"})
    );
    assert_eq!(answers[4]["error"], "invalid-arguments");
    assert!(answers[4]["why"].as_str().unwrap().starts_with("the arguments of kit/echo are not JSON: "));
    assert_eq!(answers[5]["error"], "denied");
    assert!(answers[5]["why"].as_str().unwrap().starts_with("`echo` is not a tool name: use \"server/tool\""));
    assert_eq!(
        answers[6],
        json!({"error": "denied", "why": "tool \"gone/x\" is not granted to agent \"tooluser\" (its manifest's capabilities.tools: kit/*)"})
    );

    let plain =
        ask(&rt, "plain", json!({"list": true, "calls": [{"name": "kit/echo", "args": {"text": "hi"}}]}), &acme())
            .await;
    assert_eq!(
        plain,
        json!({"tools": [], "calls": [{"error": "denied", "why": "tool \"kit/echo\" is not granted to agent \"plain\" (its manifest's capabilities.tools: none)"}]}),
        "an agent that asks for no tool sees none"
    );
    let mut metrics = String::new();
    rt.tools().metrics().render_into(&mut metrics);
    for line in [
        "paddock_tool_calls_total{tenant=\"acme\",server=\"kit\",outcome=\"ok\"} 1",
        "paddock_tool_calls_total{tenant=\"acme\",server=\"kit\",outcome=\"denied\"} 2",
        "paddock_tool_calls_total{tenant=\"acme\",server=\"kit\",outcome=\"failed\"} 1",
        "paddock_tool_calls_total{tenant=\"acme\",server=\"kit\",outcome=\"invalid-arguments\"} 2",
        "paddock_tool_calls_total{tenant=\"acme\",server=\"(none)\",outcome=\"denied\"} 2",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_server_is_started_again_a_hung_tool_times_out_and_a_big_result_is_refused() {
    if !python_has("mcp") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let rt = host(dir.path(), &kit(), "");
    let calls = json!([
        {"name": "kit/crash"},
        {"name": "kit/echo", "args": {"text": "back"}},
        {"name": "kit/sleep", "args": {"seconds": 5}},
        {"name": "kit/big", "args": {"n": 4000}},
        {"name": "kit/big", "args": {"n": 10}},
    ]);
    let out = ask(&rt, "tooluser", json!({"calls": calls}), &acme()).await;
    let answers = out["calls"].as_array().unwrap();
    assert_eq!(answers[0]["error"], "unavailable", "{}", answers[0]);
    assert!(answers[0]["why"].as_str().unwrap().starts_with("MCP server kit: "), "{}", answers[0]);
    assert_eq!(answers[1]["text"], "back", "the call after the crash started the server again");
    assert_eq!(rt.tools().servers().reconnects("kit"), 1);
    assert_eq!(
        answers[2],
        json!({"error": "timeout", "why": "kit/sleep got no answer within 500ms (mcp.kit.tool-timeouts.sleep)"})
    );
    assert_eq!(answers[3]["error"], "failed");
    let why = answers[3]["why"].as_str().unwrap();
    assert!(
        why.starts_with("the result of kit/big is ") && why.ends_with(" bytes, over mcp.kit.max-result-bytes (2048)"),
        "{why}"
    );
    assert_eq!(answers[4]["text"], "x".repeat(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_past_the_tenants_rate_or_the_runs_budget_are_refused_before_the_server() {
    if !python_has("mcp") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let rt = host(dir.path(), &kit(), "budget = { tool-calls-per-minute = 3 }\n");
    let echo = json!({"name": "kit/echo", "args": {"text": "hi"}});
    let budget = RunBudget::new("steps.act.budget", RunLimits { tool_calls: Some(1), ..RunLimits::default() }, None);
    let options = RunOptions { budget: Some(budget.clone()), ..acme() };
    let out = ask(&rt, "tooluser", json!({"calls": [echo, echo]}), &options).await;
    assert_eq!(
        out["calls"],
        json!([{"text": "hi", "structured": out["calls"][0]["structured"]},
               {"error": "budget-exceeded", "why": "steps.act.budget has spent its tool calls (steps.act.budget.tool-calls = 1)"}])
    );
    assert_eq!(budget.tool_calls(), 1);
    // The rate counted the call the budget refused: 2 of 3 are gone.
    let out = ask(&rt, "tooluser", json!({"calls": [echo, echo]}), &acme()).await;
    assert_eq!(out["calls"][0]["text"], "hi");
    assert_eq!(out["calls"][1], json!({"error": "rate-limited", "why": true}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_answers_every_tool_call_from_the_journal_with_the_server_gone() {
    if !python_has("mcp") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let input = json!({"list": true, "calls": [{"name": "kit/echo", "args": {"text": "kept"}}, {"name": "kit/env"}]});
    let recording = Tape::recording();
    let options = RunOptions { journal: Some(recording.clone()), ..acme() };
    let recorded = ask(&host(dir.path(), &kit(), ""), "tooluser", input.clone(), &options).await;
    assert_eq!(recorded["calls"][0]["text"], "kept");
    let entries = recording.entries();
    let calls: Vec<&str> = entries.iter().map(|e| e.call.as_str()).filter(|c| c.starts_with("tools.")).collect();
    assert_eq!(calls, ["tools.available", "tools.call", "tools.call"]);

    let gone = host(dir.path(), "[mcp.kit]\ncommand = [\"/nonexistent/kit\"]\n", "");
    let options = RunOptions { journal: Some(Tape::replaying(entries)), ..acme() };
    assert_eq!(ask(&gone, "tooluser", input.clone(), &options).await, recorded, "answered from the journal");
    let live = ask(&gone, "tooluser", input, &acme()).await;
    assert_eq!(
        live["tools"],
        json!({"error": "unavailable", "why": "MCP server kit: cannot start \"/nonexistent/kit\": No such file or directory (os error 2)"}),
        "the server really is gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_calls_a_tool_of_a_streamable_http_server() {
    let (_served_dir, _served, url) = serving_echo("PADDOCK_AGENT_TOOLS_KEY");
    let dir = tempfile::tempdir().unwrap();
    plugin(dir.path(), "tooluser", guests::TOOL_USER, "[capabilities]\ntools = [\"remote/echo\"]\n");
    let remote =
        format!("[mcp.remote]\nurl = {url:?}\nheader-env = {{ Authorization = \"PADDOCK_AGENT_TOOLS_KEY\" }}\n");
    let rt = runtime_with_plugins(dir.path(), &remote);
    let input = json!({"list": true, "calls": [{"name": "remote/echo", "args": {"text": "over http"}}]});
    let out = ask(&rt, "tooluser", input, &RunOptions::default()).await;
    assert_eq!(out["tools"][0][0], "remote/echo");
    let structured: Value = serde_json::from_str(out["calls"][0]["structured"].as_str().unwrap()).unwrap();
    assert_eq!(structured["input"], r#"{"text":"over http"}"#);
}
