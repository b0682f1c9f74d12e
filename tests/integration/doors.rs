//! The OpenAI- and Anthropic-compatible doors of a real `paddock serve`,
//! driven by the official `openai` and `anthropic` Python clients
//! (`tests/fixtures/clients/*_door.py`) with fake providers behind it.

use crate::util::*;
use paddock_fake_provider::{Behavior, FakeProvider, FakeToolCall, Fault, Finish, Reply};
use serde_json::{Value, json};
use std::path::Path;

/// Whether `python3` can import `module`; under `CI=true` its absence fails.
pub(crate) fn python_has(module: &str) -> bool {
    let found = std::process::Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        let why = format!("the Python package `{module}` is missing: `python3 -m pip install {module}`");
        assert!(std::env::var("CI").map_or(true, |v| v != "true"), "{why}");
        eprintln!("skipped: {why}");
    }
    found
}

/// A host folder: routes `r`, `tools`, `failover` (its first target always
/// failing) and `other`; tenant `acme` may use all but `other`, tenant
/// `broke` has a day's budget of one token.
fn setup(dir: &Path, good: &FakeProvider, tooling: &FakeProvider, bad: &FakeProvider) {
    let providers = [("good", good), ("tooling", tooling), ("bad", bad)]
        .iter()
        .map(|(name, fake)| fake_provider(name, "openai", fake))
        .collect::<String>();
    let cache = concat!(env!("CARGO_TARGET_TMPDIR"), "/code-cache");
    let config = format!(
        "[host]\nplugin-state = \"memory\"\nledger = \"memory\"\ncode-cache = {cache:?}\n{providers}\
         [routes.r]\ntargets = [{{ provider = \"good\", model = \"m-1\" }}]\n\
         [routes.tools]\ntargets = [{{ provider = \"tooling\", model = \"m-2\" }}]\n\
         [routes.failover]\nretries = 0\ntargets = [{{ provider = \"bad\", model = \"m-0\" }}, {{ provider = \"good\", model = \"m-1\" }}]\n\
         [routes.other]\ntargets = [{{ provider = \"good\", model = \"m-1\" }}]\n\
         [tenants.acme]\nroutes = [\"r\", \"tools\", \"failover\"]\nagents = [\"echo\"]\n\
         [tenants.broke]\nroutes = [\"r\"]\n[tenants.broke.budget]\ntokens-per-day = 1\n"
    );
    std::fs::write(dir.join("paddock.toml"), config).unwrap();
    plugin(&dir.join("plugins"), "echo", paddock_test_guests::guests::ECHO, "");
    plugin(&dir.join("plugins"), "counter", paddock_test_guests::guests::COUNTER, "");
}

/// A serving host on [`setup`]'s folder, its fake providers and keys.
struct Door {
    served: Served,
    _dir: tempfile::TempDir,
    acme: String,
    broke: String,
    operate: String,
    _fakes: [FakeProvider; 3],
}

async fn door() -> Door {
    let (good, tooling, bad) = (
        FakeProvider::start().await.unwrap(),
        FakeProvider::start().await.unwrap(),
        FakeProvider::start().await.unwrap(),
    );
    let lookup = FakeToolCall { id: None, name: "lookup".into(), arguments: r#"{"q": "paddock"}"#.into() };
    tooling.set_default(Behavior::Reply(Reply {
        tool_calls: vec![lookup],
        finish: Finish::ToolCalls,
        ..Reply::default()
    }));
    bad.set_default(Behavior::Fault(Fault::Status { code: 500 }));
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path(), &good, &tooling, &bad);
    paddock::gateway::install_crypto();
    let (acme, broke) = (key(dir.path(), "acme", "run"), key(dir.path(), "broke", "run"));
    let operate = key(dir.path(), "acme", "operate");
    let served = serve(dir.path(), &[]);
    Door { served, _dir: dir, acme, broke, operate, _fakes: [good, tooling, bad] }
}

/// Runs `tests/fixtures/clients/SCRIPT` against `door`; what it printed.
async fn drive(door: &Door, script: &str) -> Value {
    let script = format!("{}/../tests/fixtures/clients/{script}", env!("CARGO_MANIFEST_DIR"));
    let (base, acme, broke) = (format!("http://{}", door.served.address), door.acme.clone(), door.broke.clone());
    let ran = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3").args([&script, &base, &acme, &broke]).output().unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&ran.stderr);
    assert!(ran.status.success(), "{stderr}");
    serde_json::from_slice(&ran.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"))
}

/// The requests of tenant acme's day row for agent `paddock-api`.
async fn door_requests(door: &Door) -> Value {
    let (status, usage) = call(&door.served, reqwest::Method::GET, "/v1/usage", &door.operate, "").await;
    assert_eq!(status, reqwest::StatusCode::OK, "{usage}");
    let rows = usage["rows"].as_array().unwrap();
    let day = rows.iter().find(|r| r["agent"] == "paddock-api" && r["window"].as_str().is_some_and(|w| w.len() == 10));
    day.map_or(Value::Null, |d| d["requests"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_openai_client_completes_streams_calls_tools_and_reads_refusals_through_paddock() {
    if !python_has("openai") {
        return;
    }
    let door = door().await;
    let out = drive(&door, "openai_door.py").await;

    assert_eq!(
        out["models"],
        json!(["agent:echo", "failover", "r", "tools"]),
        "the routes and agents tenant acme may use"
    );
    let asked = json!([{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}]);
    let input = json!({"messages": asked});
    assert_eq!(
        out["agent"],
        json!({"input": input, "model": "agent:echo", "streamed": input}),
        "the chat is the agent's input"
    );
    let text = "fake reply to: hello there";
    assert_eq!(out["whole"]["text"], text);
    assert_eq!((&out["whole"]["finish"], &out["whole"]["object"]), (&json!("stop"), &json!("chat.completion")));
    let usage = out["whole"]["usage"].as_array().unwrap();
    assert!(usage[2].as_u64().unwrap() > 0 && usage[2] == usage[0].as_u64().unwrap() + usage[1].as_u64().unwrap());
    assert_eq!((&out["stream"]["text"], &out["stream"]["finish"]), (&json!(text), &json!(["stop"])));
    assert_eq!(out["stream"]["usage"], usage[2], "include_usage: the last chunk carries the usage");
    assert_eq!(out["tool"], json!({"name": "lookup", "arguments": {"q": "paddock"}, "finish": "tool_calls"}));
    assert_eq!(out["stream_tool"], json!(["lookup"]));
    assert_eq!(out["failover_stream"], json!({"attempts": "2", "text": text}), "failed over before the first chunk");
    let embed = &out["embed"];
    assert_eq!(
        (&embed["count"], &embed["same"]),
        (&json!(2), &json!(true)),
        "base64 (the client's default) and floats agree"
    );
    assert!(embed["dims"].as_u64().unwrap() > 0 && embed["usage"].as_u64().unwrap() > 0, "{embed}");
    assert_eq!(out["failover"], json!({"attempts": "2", "text": text}), "the first target failed, the second answered");

    assert_eq!(
        out["pinned"],
        json!({"attempts": "1", "model": "failover/good/m-1", "text": text}),
        "a pinned target alone is tried"
    );

    let refused = |name: &str| out[name].as_array().cloned().unwrap_or_default();
    assert_eq!(refused("pinned_bad")[..3], [json!("InternalServerError"), json!(503), json!("unavailable")]);
    let pinned_missing = refused("pinned_missing");
    assert_eq!(pinned_missing[..3], [json!("NotFoundError"), json!(404), json!("model_not_found")]);
    let why = r#"route "failover" has no target "m-9" (its targets: bad/m-0, good/m-1)"#;
    assert!(pinned_missing[3].as_str().unwrap().contains(why), "{pinned_missing:?}");
    let missing = refused("missing");
    assert_eq!(
        (&missing[0], &missing[1], &missing[2]),
        (&json!("NotFoundError"), &json!(404), &json!("model_not_found"))
    );
    let denied = refused("denied");
    assert_eq!((&denied[0], &denied[1]), (&json!("PermissionDeniedError"), &json!(403)));
    assert!(denied[3].as_str().unwrap().contains(r#"tenant "acme" may not use route "other""#), "{denied:?}");
    // An agent the tenant may not run is answered as one that is not there.
    let agent_denied = refused("agent_denied");
    assert_eq!(
        (&agent_denied[0], &agent_denied[1], &agent_denied[2]),
        (&json!("NotFoundError"), &json!(404), &json!("model_not_found")),
        "{agent_denied:?}"
    );
    let budget = refused("budget");
    assert_eq!(
        (&budget[0], &budget[1], &budget[2]),
        (&json!("RateLimitError"), &json!(429), &json!("insufficient_quota"))
    );
    assert_eq!(refused("no_key")[..2], [json!("AuthenticationError"), json!(401)]);

    // Usage: the tenant's calls through the door, as agent `paddock-api` (refusals before a route is chosen never reach it).
    assert_eq!(
        door_requests(&door).await,
        json!(10),
        "whole, stream, two tool calls, two embeddings, two failovers, two pinned (one failing)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_anthropic_client_sends_messages_streams_calls_tools_and_reads_refusals_through_paddock() {
    if !python_has("anthropic") {
        return;
    }
    let door = door().await;
    let out = drive(&door, "anthropic_door.py").await;
    let text = "fake reply to: hello there";
    assert_eq!(out["whole"], json!({"text": text, "stop": "end_turn", "type": "message", "usage": true}));
    assert_eq!(out["stream"], json!({"text": text, "stop": "end_turn", "usage": true}));
    assert_eq!(out["tool"], json!({"name": "lookup", "input": {"q": "paddock"}, "stop": "tool_use"}));
    assert_eq!(out["stream_tool"], json!([["lookup", {"q": "paddock"}]]));
    assert_eq!(out["follow"], text, "a tool_use and its tool_result read as a conversation");
    assert_eq!(out["failover"], json!({"attempts": "2", "text": text}));
    assert_eq!(out["pinned"], json!({"attempts": "1", "model": "failover/m-1"}), "pinned by model alone");
    let chat = json!([{"role": "user", "content": "hello there"}]);
    assert_eq!(
        out["agent"],
        json!({
            "input": {"messages": chat, "system": "be brief"}, "model": "agent:echo", "stop": "end_turn",
            "streamed": {"messages": chat, "system": null}, "stream_stop": "end_turn",
        }),
        "the messages and system as sent are the agent's input"
    );
    assert_eq!(out["agent_denied"], json!(["NotFoundError", 404, "not_found_error"]), "answered as absent");
    assert_eq!(out["missing"], json!(["NotFoundError", 404, "not_found_error"]));
    assert_eq!(out["denied"], json!(["PermissionDeniedError", 403, "permission_error"]));
    assert_eq!(out["budget"], json!(["RateLimitError", 429, "rate_limit_error"]));
    assert_eq!((&out["no_key"][0], &out["no_key"][1]), (&json!("AuthenticationError"), &json!(401)));
    assert_eq!(
        door_requests(&door).await,
        json!(7),
        "whole, stream, two tool calls, the follow-up, the failover, the pinned one"
    );
}
