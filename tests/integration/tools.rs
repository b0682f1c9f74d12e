//! The host's MCP client (`[mcp.NAME]`, `paddock tools`) against real MCP
//! servers: `tests/fixtures/mcp/kit.py` over stdio (the official `mcp`
//! Python SDK), and a real `paddock serve`'s own `/mcp` over Streamable HTTP.

use crate::doors::python_has;
use crate::util::*;
use paddock::tools::{McpFile, McpServer, Servers, ToolError};
use serde_json::{Value, json};
use std::path::Path;

const KIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/mcp/kit.py");

/// `[mcp.kit]` running the fixture, with a 2 s timeout and 2 KiB results.
pub(crate) fn kit_section() -> String {
    format!(
        "[mcp.kit]\ncommand = [\"python3\", {KIT:?}]\npass-env = [\"PADDOCK_TOOLS_PASSED\"]\nenv = {{ SET_HERE = \"yes\" }}\n\
         timeout = \"2s\"\nmax-result-bytes = \"2KiB\"\n"
    )
}

fn mcp_server(name: &str, text: &str) -> McpServer {
    toml::from_str::<McpFile>(text).unwrap().server(name, Path::new("."), None).unwrap()
}

fn text_of(result: &rmcp::model::CallToolResult) -> String {
    result.content.iter().filter_map(|c| c.as_text()).map(|t| t.text.clone()).collect()
}

fn args(value: Value) -> serde_json::Map<String, Value> {
    value.as_object().cloned().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stdio_server_is_called_restarted_after_a_crash_timed_out_and_capped() {
    if !python_has("mcp") {
        return;
    }
    let section = kit_section();
    let kit = mcp_server("kit", section.strip_prefix("[mcp.kit]\n").unwrap());
    let servers = Servers::new([kit]);

    let echoed = servers.call("kit", "echo", args(json!({"text": "hi"}))).await.unwrap();
    assert_eq!((text_of(&echoed), echoed.is_error), ("hi".to_string(), Some(false)));

    // Nothing of the host's environment but what the section lets through.
    // SAFETY: set before the server starts again below; no other thread reads it.
    unsafe { std::env::set_var("PADDOCK_TOOLS_PASSED", "passed") };
    let crashed = servers.call("kit", "crash", args(json!({}))).await.unwrap_err();
    assert!(matches!(crashed, ToolError::Unavailable(_)), "{crashed:?}");
    let seen = servers.call("kit", "env", args(json!({"names": ["PADDOCK_TOOLS_PASSED", "SET_HERE", "CARGO"]}))).await;
    let seen: Value = serde_json::from_str(&text_of(&seen.unwrap())).unwrap();
    assert_eq!(
        seen,
        json!({"PADDOCK_TOOLS_PASSED": "passed", "SET_HERE": "yes", "CARGO": null}),
        "started again after the crash, with only the variables granted"
    );
    assert_eq!(servers.reconnects("kit"), 1);

    let failed = servers.call("kit", "fail", args(json!({"why": "no luck"}))).await.unwrap();
    assert_eq!(failed.is_error, Some(true), "a tool's own error is its result's, not the client's");
    assert!(text_of(&failed).starts_with("Error executing tool fail"), "{}", text_of(&failed));

    let slow = servers.call("kit", "sleep", args(json!({"seconds": 5}))).await.unwrap_err();
    assert_eq!(slow, ToolError::Timeout("kit/sleep got no answer within 2s (mcp.kit.timeout)".into()));
    let big = servers.call("kit", "big", args(json!({"n": 4000}))).await.unwrap_err();
    let ToolError::Failed(why) = big else { panic!("{big:?}") };
    assert!(
        why.starts_with("the result of kit/big is ") && why.ends_with("bytes, over mcp.kit.max-result-bytes (2048)")
    );
    assert_eq!(
        servers.call("nope", "echo", args(json!({}))).await.unwrap_err(),
        ToolError::Denied("no MCP server \"nope\" (configured: kit)".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paddock_tools_lists_every_servers_tools_and_says_which_server_is_unreachable() {
    if !python_has("mcp") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = format!("{}[mcp.gone]\ncommand = [\"/nonexistent/server\"]\n", kit_section());
    std::fs::write(dir.path().join("paddock.toml"), config).unwrap();
    let listed = TestCommand::new(dir.path(), &["tools", "list", "--json"]).run();
    assert_eq!(listed.code, 8, "a server cannot be reached: {}", listed.stderr);
    let rows: Vec<Value> = serde_json::from_str(&listed.stdout).unwrap();
    let tools: Vec<&str> = rows.iter().filter_map(|r| r["tool"].as_str()).collect();
    assert_eq!(tools, ["kit/echo", "kit/big", "kit/sleep", "kit/crash", "kit/fail", "kit/env"]);
    assert_eq!(rows[1]["description"], "Says back the text it is given");
    assert_eq!(
        rows[0],
        json!({"server": "gone", "error": "unavailable: MCP server gone: cannot start \"/nonexistent/server\": No such file or directory (os error 2)"})
    );

    let called = TestCommand::new(dir.path(), &["tools", "call", "kit/echo", "--args", r#"{"text": "yo"}"#]).run();
    assert_eq!(called.code, 0, "{}", called.stderr);
    let result: Value = serde_json::from_str(&called.stdout).unwrap();
    assert_eq!(result["content"][0]["text"], "yo");
    let unnamed = TestCommand::new(dir.path(), &["tools", "call", "echo"]).run();
    assert_eq!(
        (unnamed.code, unnamed.stderr.trim()),
        (2, "error: \"echo\": name a tool as server/tool (paddock tools list shows them)")
    );
}

/// A `paddock serve` whose `/mcp` offers the `echo` agent as a tool to
/// tenant `acme`, with a key of that tenant put in the variable `var` as an
/// `Authorization` value; its folder, the server, and the endpoint's URL.
pub(crate) fn serving_echo(var: &str) -> (tempfile::TempDir, Served, String) {
    let dir = tempfile::tempdir().unwrap();
    let cache = concat!(env!("CARGO_TARGET_TMPDIR"), "/code-cache");
    let config = format!(
        "[host]\nplugin-state = \"memory\"\nledger = \"memory\"\ncode-cache = {cache:?}\n[tenants.acme]\nagents = [\"echo\"]\n"
    );
    std::fs::write(dir.path().join("paddock.toml"), config).unwrap();
    plugin(&dir.path().join("plugins"), "echo", paddock_test_guests::guests::ECHO, "");
    let key = key(dir.path(), "acme", "run");
    let served = serve(dir.path(), &[]);
    // SAFETY: set before any server of the calling test connects; each test names its own variable.
    unsafe { std::env::set_var(var, format!("Bearer {key}")) };
    let url = format!("http://{}/mcp", served.address);
    (dir, served, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_server_is_reached_with_a_key_from_the_environment() {
    let (_dir, _served, url) = serving_echo("PADDOCK_TOOLS_TEST_KEY");
    let remote = mcp_server(
        "remote",
        &format!("url = {url:?}\nheader-env = {{ Authorization = \"PADDOCK_TOOLS_TEST_KEY\" }}\n"),
    );
    let keyless =
        mcp_server("keyless", &format!("url = {url:?}\nheader-env = {{ Authorization = \"PADDOCK_TOOLS_UNSET\" }}\n"));
    let servers = Servers::new([remote, keyless]);

    let tools: Vec<String> = servers.list("remote").await.unwrap().into_iter().map(|t| t.name.to_string()).collect();
    assert_eq!(tools, ["echo"]);
    let echoed = servers.call("remote", "echo", args(json!({"text": "over http"}))).await.unwrap();
    let structured = echoed.structured_content.unwrap();
    assert_eq!(structured["input"], r#"{"text":"over http"}"#);
    assert_eq!(
        servers.list("keyless").await.unwrap_err(),
        ToolError::Unavailable("MCP server keyless: header Authorization: PADDOCK_TOOLS_UNSET is not set".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_server_is_reached_with_a_key_from_the_secrets_file() {
    let (_served_dir, _served, url) = serving_echo("PADDOCK_TOOLS_SECRET_KEY");
    let key = std::env::var("PADDOCK_TOOLS_SECRET_KEY").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets.toml");
    std::fs::write(&secrets, format!("remote-mcp = {key:?}\n")).unwrap();
    std::fs::set_permissions(&secrets, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    std::fs::write(dir.path().join("paddock.toml"), config_naming("remote-mcp", &url)).unwrap();
    let called =
        TestCommand::new(dir.path(), &["tools", "call", "remote/echo", "--args", r#"{"text": "kept secret"}"#]).run();
    assert_eq!(called.code, 0, "{}", called.stderr);
    let result: Value = serde_json::from_str(&called.stdout).unwrap();
    assert_eq!(result["structuredContent"]["input"], r#"{"text":"kept secret"}"#);

    std::fs::write(dir.path().join("paddock.toml"), config_naming("gone", &url)).unwrap();
    let missing = TestCommand::new(dir.path(), &["tools", "list"]).run();
    assert_eq!(missing.code, 5, "{}", missing.stderr);
    assert!(
        missing.stderr.contains("mcp.remote.header-secrets.Authorization: the secrets file has no key \"gone\""),
        "{}",
        missing.stderr
    );
}

/// A config whose `[mcp.remote]` takes its key from secret `name`.
fn config_naming(name: &str, url: &str) -> String {
    format!(
        "[host]\nsecrets = \"secrets.toml\"\n[mcp.remote]\nurl = {url:?}\nheader-secrets = {{ Authorization = {name:?} }}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_made_on_a_front_thread_answers_other_threads_while_that_one_is_held() {
    if !python_has("mcp") {
        return;
    }
    let section = kit_section();
    let servers = Servers::new([mcp_server("kit", section.strip_prefix("[mcp.kit]\n").unwrap())]);
    // A front thread of this runtime, as `paddock serve` makes them: its own
    // single-threaded runtime, whose tasks run only while it is driven. The
    // first call, there, makes the session; then the thread is held.
    let shared = tokio::runtime::Handle::current();
    let (made, making) = tokio::sync::oneshot::channel();
    let front = std::thread::spawn({
        let servers = servers.clone();
        move || {
            paddock::core::front::enter(0, Some(shared));
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let first = runtime.block_on(servers.call("kit", "echo", args(json!({"text": "first"}))));
            let _ = made.send(first.map(|r| text_of(&r)));
            std::thread::sleep(std::time::Duration::from_secs(3));
        }
    });
    assert_eq!(making.await.unwrap(), Ok("first".to_string()));
    let second = servers.call("kit", "echo", args(json!({"text": "second"})));
    let answered = tokio::time::timeout(std::time::Duration::from_secs(2), second).await;
    let answered = answered.expect("answered while the thread that made the session is held");
    assert_eq!(text_of(&answered.unwrap()), "second");
    assert_eq!(servers.reconnects("kit"), 0, "one session served both");
    front.join().unwrap();
}
