//! Agents and a flow as MCP tools at `/mcp` of a real `paddock serve`, driven
//! by the official `mcp` Python client (`tests/fixtures/clients/mcp_tools.py`).

use crate::doors::python_has;
use crate::util::*;
use serde_json::{Value, json};

/// The manifest table that makes `echo` a described tool with a schema.
const ECHO_TOOL: &str = "[tool]\ndescription = \"says back what it is given\"\n\
    [tool.input-schema]\ntype = \"object\"\nrequired = [\"text\"]\nproperties = { text = { type = \"string\" } }\n";

/// Two steps of `step`, each finishing with a progress notification.
/// Its file is `pipeline.toml`, the name `serve.mcp-flows` gives it; its
/// spec calls it otherwise, which the tool's name does not follow.
const PIPELINE: &str = "[flow]\nname = \"two-steps\"\ndescription = \"two steps in a row\"\n\
    [steps.main]\nkind = \"sequence\"\nsteps = [\"a\", \"b\"]\n\
    [steps.a]\nagent = \"step\"\ninput = { name = \"a\", output = { who = \"{{input/who}}\" } }\n\
    [steps.b]\nagent = \"step\"\ninput = { name = \"b\", output = { greeted = \"{{steps.a/who}}\" } }\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_mcp_client_lists_only_its_tenants_agents_calls_them_and_is_refused_without_a_key() {
    if !python_has("mcp") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cache = concat!(env!("CARGO_TARGET_TMPDIR"), "/code-cache");
    let config = format!(
        "[host]\nplugin-state = \"memory\"\nledger = \"memory\"\ncode-cache = {cache:?}\n\
         [serve]\nmcp-flows = [\"pipeline\", \"absent\"]\n\
         [tenants.acme]\nagents = [\"echo\", \"step\"]\n"
    );
    std::fs::write(dir.path().join("paddock.toml"), config).unwrap();
    let plugins = dir.path().join("plugins");
    plugin(&plugins, "echo", paddock_test_guests::guests::ECHO, ECHO_TOOL);
    plugin(&plugins, "step", paddock_test_guests::guests::FLOW_STEP, "description = \"does what its input says\"\n");
    plugin(&plugins, "counter", paddock_test_guests::guests::COUNTER, "");
    std::fs::create_dir_all(dir.path().join("flows")).unwrap();
    std::fs::write(dir.path().join("flows/pipeline.toml"), PIPELINE).unwrap();
    let acme = key(dir.path(), "acme", "run");
    let served = serve(dir.path(), &[]);

    let script = format!("{}/../tests/fixtures/clients/mcp_tools.py", env!("CARGO_MANIFEST_DIR"));
    let url = format!("http://{}/mcp", served.address);
    let ran = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3").args([&script, &url, &acme]).output().unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&ran.stderr);
    let log = std::fs::read_to_string(served.dir.join(SERVE_LOG)).unwrap_or_default();
    assert!(ran.status.success(), "{stderr}\n{log}");
    let out: Value = serde_json::from_slice(&ran.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));

    for mode in ["auto", "legacy"] {
        let seen = &out[mode];
        assert_eq!(
            seen["tools"],
            json!({
                "echo": {
                    "description": "says back what it is given",
                    "input": {"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}},
                    "output": null,
                },
                "pipeline": {"description": "two steps in a row", "input": {"type": "object"}, "output": null},
                "step": {"description": "does what its input says", "input": {"type": "object"}, "output": null},
            }),
            "{mode}: tenant acme's agents and its flow, not counter, not the missing flow"
        );
        let echoed = &seen["echo"];
        assert_eq!(
            (echoed["error"].clone(), echoed["text"]["input"].clone()),
            (json!(false), json!(r#"{"text":"hi"}"#))
        );
        assert_eq!(echoed["structured"], echoed["text"], "{mode}: a JSON object answer is structured content too");
        assert_eq!(
            seen["failed"],
            json!({"error": true, "text": "agent \"step\" returned an error: no luck today"}),
            "{mode}"
        );
        assert_eq!(
            seen["said"],
            json!({"error": false, "text": "plain words", "structured": null}),
            "{mode}: a JSON string is the text"
        );
        assert_eq!(
            seen["hidden"],
            json!({"code": -32602, "message": "no tool \"counter\" (tools/list lists the ones this key may call)"}),
            "{mode}: an agent the tenant may not run is no tool of its"
        );
        let flow = &seen["flow"];
        assert_eq!((flow["error"].clone(), flow["structured"].clone()), (json!(false), json!({"greeted": "mcp"})));
        assert_eq!(
            flow["progress"],
            json!([[1.0, "step main/a finished"], [2.0, "step main/b finished"], [3.0, "step main finished"]]),
            "{mode}: one notification per finished step, in order"
        );
    }
    let refused = json!({"statuses": [401], "raised": "ExceptionGroup"});
    assert_eq!(
        out["refused"],
        json!({"none": refused, "wrong": refused}),
        "no key, no tools: one 401 and the client gives up"
    );
}
