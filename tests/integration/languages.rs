//! Agents in four languages — Rust, Python, JavaScript, C — each written by
//! `paddock new`, built by `paddock build` and put through the same
//! behaviour: input → blackboard write → llm call on the simulated provider →
//! output, the errors each one must handle, then the fuel and memory limits.
//!
//! Building needs each language's toolchain, which `.ci/run` installs. When
//! one is missing, its test fails if the environment variable CI is set, and
//! otherwise passes after saying loudly that it skipped.

use crate::util::*;
use paddock::config::{Requested, Settings};
use paddock::gateway::Caller;
use paddock::gateway::types::{ChatRequest, Message, Role};
use paddock::plugins::cache::Compiled;
use paddock::runtime::{RunOptions, Runtime};
use paddock::sandbox::{InvokeError, Outcome};
use paddock::toolchain::Lang;
use paddock_test_guests::guests;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Tenants that grant everything (but of the tools, `kit/echo` alone), no
/// LLM route, and only `notes/` of the board.
const TENANTS: &str = r#"
[tenants.open]
agents = ["*"]
routes = ["*"]
tools = ["kit/echo"]
[tenants.no-routes]
agents = ["*"]
[tenants.notes-only]
agents = ["*"]
routes = ["*"]
blackboard = { read = ["notes/"], write = ["notes/"] }
"#;

/// An agent written by `paddock new` and built, in a folder of its own.
struct Built {
    dir: tempfile::TempDir,
    name: String,
}

impl Built {
    /// A host for its plugins folder, configured by the `paddock.toml` beside
    /// it, which `paddock run` in that folder reads too: the same engine
    /// settings, so both find what the other compiled in the code cache.
    fn host(&self) -> Runtime {
        let settings = Settings::load(Some(&self.dir.path().join("paddock.toml")));
        Runtime::new(settings.unwrap_or_else(|e| panic!("test settings are valid: {e}"))).expect("engine starts")
    }
}

/// Settings for a test folder: few instances, state in memory, and a code
/// cache of its own (Python and JavaScript builds are not reproducible, so a
/// cache shared between test runs would only grow).
fn write_settings(dir: &Path) {
    let toml = format!(
        "[engine]\nmax-instances = 32\n[host]\nplugins = {:?}\ncode-cache = {:?}\nledger = \"memory\"\nplugin-state = \"memory\"\n{TENANTS}{}",
        dir.join("plugins"),
        dir.join("code-cache"),
        crate::tools::kit_section(),
    );
    std::fs::write(dir.join("paddock.toml"), toml).unwrap();
}

/// Where Rust agents built by these tests share their compiled crates: in
/// this workspace's target folder, which keeps them from one test run to the
/// next, rather than in the user's cache.
pub(crate) fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("paddock-cache")
}

/// `paddock` with `args` in `dir`, with `path` as PATH when given.
pub(crate) fn paddock(dir: &Path, args: &[&str], path: Option<&Path>) -> Ran {
    let mut cmd = paddock_in(dir);
    cmd.args(args);
    cmd.env("PADDOCK_CACHE_DIR", cache_dir());
    if let Some(path) = path {
        cmd.env("PATH", path);
    }
    let out = cmd.output().expect("run paddock");
    Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Writes and builds `agent-<lang>`; `None` when the toolchain is missing outside CI.
fn build(lang: Lang) -> Option<Built> {
    let dir = tempfile::tempdir().unwrap();
    write_settings(dir.path());
    let name = format!("agent-{}", lang.name());
    let made = paddock(dir.path(), &["new", &name, "--lang", lang.name()], None);
    assert_eq!(made.code, 0, "{}", made.stderr);
    // The author asks for the MCP server's tools, where the manifest shows how.
    let manifest = dir.path().join("plugins").join(&name).join("agent.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let asking = text.replacen("tools = []", "tools = [\"kit/*\"]", 1);
    assert_ne!(text, asking, "the manifest written has a tools line");
    std::fs::write(&manifest, asking).unwrap();
    let built = paddock(dir.path(), &["build", &name], None);
    if toolchain_is_missing(lang, &built) {
        return None;
    }
    assert_eq!(built.code, 0, "{}", built.stderr);
    assert!(built.stdout.starts_with(&format!("built {name} 0.1.0 -> ")), "{}", built.stdout);
    // The case `paddock new` writes replays against the agent it wrote.
    let tested = paddock(dir.path(), &["test", &name, "--tenant", "open"], None);
    assert_eq!(tested.code, 0, "{}\n{}", tested.stdout, tested.stderr);
    assert!(tested.stdout.starts_with(&format!("ok      {name}/ada  (3 host calls, ")), "{}", tested.stdout);
    Some(Built { dir, name })
}

/// Whether `built` failed for want of `lang`'s toolchain: a failure when CI
/// is set, and otherwise said loudly, for the caller to skip its test.
pub(crate) fn toolchain_is_missing(lang: Lang, built: &Ran) -> bool {
    if built.code == 0 || !built.stderr.contains("; install it with: ") {
        return false;
    }
    let why = format!("the {} toolchain is missing:\n{}", lang.name(), built.stderr);
    assert!(std::env::var_os("CI").is_none(), "CI is set, so this is a failure: {why}");
    // Straight to stderr: the test harness captures eprintln! of passing tests.
    let rule = "!".repeat(78);
    let loud = format!("\n{rule}\nSKIPPED the {} agent test (CI is not set): {why}{rule}\n", lang.name());
    let _ = std::io::Write::write_all(&mut std::io::stderr(), loud.as_bytes());
    true
}

fn options(tenant: &str, fuel: Option<u64>, memory_mib: Option<u64>) -> RunOptions {
    RunOptions {
        tenant: Some(tenant.to_string()),
        overrides: Requested { fuel, memory: memory_mib.map(|m| m << 20), timeout: None },
        ..RunOptions::default()
    }
}

/// What the simulated provider answers the agent's question about `name`,
/// asked through the host's own gateway.
async fn fun_fact(rt: &Runtime, agent: &str, name: &str) -> Value {
    let request = ChatRequest {
        route: "fast".into(),
        messages: vec![Message::new(Role::User, format!("One fun fact about the name {name}, in one sentence."))],
        max_tokens: Some(60),
        ..Default::default()
    };
    let caller = Caller { tenant: Arc::from("open"), agent: Arc::from(agent) };
    let answer = rt.gateway().complete(&caller, request).await.unwrap_or_else(|e| panic!("the simulated route: {e:?}"));
    assert!(answer.reply.text.starts_with("[simulated] "), "{}", answer.reply.text);
    json!({ "text": answer.reply.text, "provider": answer.provider, "model": answer.model })
}

fn language(lang: Lang) -> &'static str {
    match lang {
        Lang::Rust => "rust",
        Lang::Python => "python",
        Lang::Js => "javascript",
        Lang::C => "c",
    }
}

fn logged(outcome: &Outcome, message: &str) -> bool {
    outcome.logs.iter().any(|r| r.message == message)
}

/// The behaviour every language's agent must show, exactly.
async fn behaves_like_every_other_language(lang: Lang) {
    let Some(built) = tokio::task::spawn_blocking(move || build(lang)).await.unwrap() else { return };
    let name = built.name.as_str();
    let rt = built.host();
    let agent = rt.load(name).unwrap_or_else(|e| panic!("load {name}: {e}"));
    let run = |input: &'static str, options: RunOptions| {
        let (rt, agent) = (rt.clone(), agent.clone());
        async move { rt.run(&agent, input, &options).await.expect("options are valid") }
    };
    let open = || options("open", None, None);

    // Input → blackboard write → llm call → output.
    let fact = fun_fact(&rt, name, "ada").await;
    let first = run(r#"{"name":"ada"}"#, open()).await;
    assert_eq!(output_json(&first), greeting(&fact, lang, 1));
    assert!(logged(&first, "greeting ada"), "{:?}", first.logs);
    let stored = rt.blackboard().namespace("open").get("visits/ada").unwrap().unwrap();
    assert_eq!((&*stored.value, &*stored.writer.agent, &*stored.writer.run), (&b"1"[..], name, &*first.run));
    assert_eq!(output_json(&run(r#"{"name":"ada"}"#, open()).await), greeting(&fact, lang, 2));
    assert_eq!(output_json(&run("{}", open()).await)["greeting"], "Hello, world!");

    // An LLM error is the agent's to handle: the greeting still comes, with the reason.
    let denied = run(r#"{"name":"ada"}"#, options("no-routes", None, None)).await;
    let why = format!(
        "denied: route \"fast\" is not granted to agent \"{name}\" by tenant \"no-routes\": not in tenants.no-routes.routes = []"
    );
    assert_eq!(
        output_json(&denied),
        json!({ "greeting": "Hello, ada!", "visits": 1, "fun_fact": { "error": why }, "language": language(lang) })
    );
    assert!(logged(&denied, &format!("no fun fact: {why}")), "{:?}", denied.logs);

    // A tool of the operator's MCP server, as far as the tenant grants it.
    if crate::doors::python_has("mcp") {
        // The server starts at its first use, a Python process importing the
        // MCP SDK: seconds on a busy machine, which are not the agent's to wait
        // within its 5 s.
        rt.tools().list(&["kit/*".to_string()]).await.expect("the kit server starts");
        let echoed = run(r#"{"name":"bob","tool":"kit/echo","tool_args":{"text":"hi from a tool"}}"#, open()).await;
        assert_eq!(output_json(&echoed)["tool"], json!({ "text": "hi from a tool" }));
        let refused = run(r#"{"name":"bob","tool":"kit/env"}"#, open()).await;
        let why = format!(
            "denied: tool \"kit/env\" is not granted to agent \"{name}\" by tenant \"open\": tenants.open.tools = [kit/echo] grants only kit/echo of it"
        );
        assert_eq!(output_json(&refused)["tool"], json!({ "error": why }));
        let bad = run(r#"{"name":"bob","tool":"kit/echo","tool_args":[1]}"#, open()).await;
        assert_eq!(
            error_text(&bad),
            format!("agent \"{name}\" returned an error: input.tool_args must be a JSON object")
        );
    }

    // A blackboard error and bad input end the run with the agent's own error.
    let refused = run(r#"{"name":"ada"}"#, options("notes-only", None, None)).await;
    assert_eq!(
        error_text(&refused),
        format!(
            "agent \"{name}\" returned an error: blackboard: denied: blackboard read of \"visits/ada\" is not granted to agent \"{name}\" for tenant \"notes-only\" (granted: read [\"notes/\"])"
        )
    );
    for (input, message) in [
        ("[1]", "input must be a JSON object"),
        (r#"{"name":""}"#, "input.name must be a non-empty string"),
        (r#"{"allocate_mib":1.5}"#, "input.allocate_mib must be a whole number from 0 to 4096"),
    ] {
        let outcome = run(input, open()).await;
        assert!(matches!(outcome.result, Err(InvokeError::Failed { .. })), "{input}: {:?}", outcome.result);
        assert_eq!(error_text(&outcome), format!("agent \"{name}\" returned an error: {message}"), "{input}");
    }

    // A count that is not JSON, read through the SDK's JSON helper.
    let writer = paddock::blackboard::Writer::new("test", "setup");
    rt.blackboard().namespace("open").put("visits/zed", b"many", &writer).unwrap();
    let garbled = run(r#"{"name":"zed"}"#, open()).await;
    assert_eq!(error_text(&garbled), format!("agent \"{name}\" returned an error: {}", not_a_count(lang)));

    // Fuel: a loop in any language is stopped, naming the limit.
    let spun = run(r#"{"spin":true}"#, options("open", Some(50_000_000), None)).await;
    assert_eq!(error_text(&spun), format!("agent \"{name}\" ran out of fuel (limit 50000000)"));
    assert!(logged(&spun, "spinning until a limit stops me"), "{:?}", spun.logs);

    // Memory: what fits under the cap works; what does not never gets the memory.
    let small = run(r#"{"allocate_mib":8}"#, options("open", None, Some(32))).await;
    assert_eq!(output_json(&small)["allocated_mib"], 8);
    let big = run(r#"{"allocate_mib":64}"#, options("open", None, Some(32))).await;
    // Rust and Python die of the failed allocation; JavaScript and C survive
    // it and return an error. Either way the host names the cap.
    let expected = format!("agent \"{name}\" exceeded its memory limit (32 MiB)");
    assert_eq!(error_text(&big), expected);

    // The same host still serves the agent, and its state is intact.
    assert_eq!(output_json(&run(r#"{"name":"ada"}"#, open()).await), greeting(&fact, lang, 3));

    // Another host finds the optimized code in the cache.
    assert!(rt.wait_optimized(Duration::from_secs(300)), "the optimized code was compiled within 300 s");
    drop(rt);
    let again = built.host().load(name).unwrap();
    assert_eq!(again.compiled(), Compiled::Cached);

    // And so does `paddock run`, the last step of `paddock new`'s instructions.
    let dir = built.dir.path().to_path_buf();
    let owned = name.to_string();
    let ran = tokio::task::spawn_blocking(move || {
        paddock(&dir, &["run", &owned, "--tenant", "open", "--input", r#"{"name":"ada"}"#], None)
    })
    .await
    .unwrap();
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let printed: Value = serde_json::from_str(ran.stdout.trim()).unwrap();
    assert_eq!(printed, greeting(&fact, lang, 1));
    assert!(ran.stderr.contains("greeting ada"), "the agent's log goes to stderr: {}", ran.stderr);
}

/// What an agent says when `visits/zed` holds `many`, which is not JSON: the
/// agents written with an SDK (Rust, Python, JavaScript) read the count through
/// its JSON helper, whose error names the key in the same words in each, with
/// its language's decoder's reason; C reads the count by hand.
fn not_a_count(lang: Lang) -> String {
    let not_json = "blackboard key \"visits/zed\" does not hold the expected JSON: ";
    match lang {
        Lang::Rust => format!("{not_json}expected value at line 1 column 1"),
        Lang::Python => format!("{not_json}Expecting value: line 1 column 1 (char 0)"),
        Lang::Js => format!("{not_json}JSON.parse: unexpected character at line 1 column 1 of the JSON data"),
        Lang::C => "blackboard: visits/zed does not hold a count".to_string(),
    }
}

/// The output for ada's `visits`-th visit.
fn greeting(fact: &Value, lang: Lang, visits: u64) -> Value {
    json!({ "greeting": "Hello, ada!", "visits": visits, "fun_fact": fact, "language": language(lang) })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_agent_from_paddock_new_behaves_like_every_other_language() {
    behaves_like_every_other_language(Lang::Rust).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_agent_from_paddock_new_behaves_like_every_other_language() {
    behaves_like_every_other_language(Lang::Python).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn javascript_agent_from_paddock_new_behaves_like_every_other_language() {
    behaves_like_every_other_language(Lang::Js).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c_agent_from_paddock_new_behaves_like_every_other_language() {
    behaves_like_every_other_language(Lang::C).await;
}

#[test]
fn a_second_rust_agent_compiles_only_itself_and_its_sdk() {
    let dir = tempfile::tempdir().unwrap();
    let mut compiled = Vec::new();
    for name in ["first-rust", "second-rust"] {
        assert_eq!(paddock(dir.path(), &["new", name, "--lang", "rust"], None).code, 0);
        let folder = dir.path().join("plugins").join(name);
        let manifest = std::fs::read_to_string(folder.join("Cargo.toml")).unwrap();
        assert!(manifest.contains("paddock-sdk = { path = \"sdk\" }"), "{manifest}");
        assert!(folder.join("sdk/src/lib.rs").is_file() && folder.join("wit/world.wit").is_file());
        let built = paddock(dir.path(), &["build", name], None);
        if toolchain_is_missing(Lang::Rust, &built) {
            return;
        }
        assert_eq!(built.code, 0, "{}", built.stderr);
        assert!(built.stdout.starts_with(&format!("built {name} 0.1.0 -> ")), "{}", built.stdout);
        assert!(folder.join("build/agent.wasm").is_file(), "{}", built.stdout);
        // cargo's own output, which `paddock build` passes on to stderr.
        let crates: Vec<String> = built
            .stderr
            .lines()
            .filter_map(|line| line.trim_start().strip_prefix("Compiling "))
            .map(|rest| rest.split(' ').next().unwrap_or_default().to_string())
            .collect();
        compiled.push(crates);
    }
    // The first may have found the crates already compiled by an earlier run;
    // the second surely does: wit-bindgen, syn and serde are not built again.
    assert_eq!(compiled[1], ["paddock-sdk", "second-rust"], "the first compiled {:?}", compiled[0]);
    let shared = cache_dir().join("target/wasm32-wasip2/release");
    assert!(shared.join("second_rust.wasm").is_file(), "cargo built in {}", shared.display());
    assert!(!dir.path().join("plugins/second-rust/target").exists(), "no target folder of its own");
}

/// Every file of a folder, relative to it, leaving out build output.
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            let skip = path
                .file_name()
                .is_some_and(|n| ["build", "target", ".paddock", "__pycache__"].contains(&&*n.to_string_lossy()));
            match path.is_dir() {
                true if !skip => pending.push(path),
                true => {}
                false => files.push(path.strip_prefix(dir).unwrap().to_path_buf()),
            }
        }
    }
    files.sort();
    files
}

#[test]
fn the_examples_are_what_paddock_new_writes() {
    let dir = tempfile::tempdir().unwrap();
    for (example, lang) in [("hello-py", "python"), ("hello-js", "js"), ("hello-c", "c")] {
        let fresh = dir.path().join(example);
        let made = paddock(dir.path(), &["new", example, "--lang", lang, "--dir", fresh.to_str().unwrap()], None);
        assert_eq!(made.code, 0, "{}", made.stderr);
        let committed = Path::new(guests::ROOT).join("plugins").join(example);
        let files = files_in(&fresh);
        assert_eq!(files_in(&committed), files, "plugins/{example} has other files than `paddock new` writes");
        for file in files {
            let (want, have) =
                (std::fs::read(fresh.join(&file)).unwrap(), std::fs::read(committed.join(&file)).unwrap());
            assert!(want == have, "plugins/{example}/{} differs from what `paddock new` writes", file.display());
        }
    }
}

#[test]
fn a_missing_toolchain_is_named_with_the_command_that_installs_it() {
    let dir = tempfile::tempdir().unwrap();
    // A PATH with a shell and nothing else (`paddock build` puts its own folder first).
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink("/bin/sh", bin.join("sh")).unwrap();
    let cases = [
        (
            Lang::Rust,
            "cargo (Rust) is not installed (not on PATH); install it with: rustup (https://rustup.rs), then rustup target add wasm32-wasip2",
        ),
        (
            Lang::Python,
            "componentize-py is not installed (not on PATH); install it with: pip install componentize-py==0.25.1",
        ),
        (
            Lang::Js,
            "Node.js (node), which componentize-js runs on, is not installed; install it with: apt-get install nodejs npm (Node.js 18 or later)",
        ),
        (Lang::C, "clang is not installed (not on PATH); install it with: apt-get install clang lld"),
    ];
    for (lang, problem) in cases {
        let name = format!("bare-{}", lang.name());
        assert_eq!(paddock(dir.path(), &["new", &name, "--lang", lang.name()], None).code, 0);
        let built = paddock(dir.path(), &["build", &name], Some(&bin));
        assert_eq!(built.code, 7, "{}", built.stderr);
        assert_eq!(
            built.stderr,
            format!(
                "error: {name}: {problem}\nerror: {name}: not built: its build command (./plugins/{name}/agent.toml) needs the tools above\n"
            )
        );
        assert_eq!(built.stdout, "");
    }
}

#[test]
fn paddock_new_refuses_a_bad_name_and_a_folder_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let bad = paddock(dir.path(), &["new", "Bad Name", "--lang", "c"], None);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.starts_with("error: `Bad Name` is not an agent name"), "{}", bad.stderr);
    assert_eq!(paddock(dir.path(), &["new", "taken", "--lang", "c"], None).code, 0);
    let again = paddock(dir.path(), &["new", "taken", "--lang", "python"], None);
    assert_eq!(again.code, 2);
    assert_eq!(again.stderr, "error: ./plugins/taken already exists and is not empty: choose another name or --dir\n");
    let unknown = paddock(dir.path(), &["new", "x", "--lang", "cobol"], None);
    assert_eq!(unknown.code, 2);
    assert!(unknown.stderr.contains("possible values: rust, python, js, c"), "{}", unknown.stderr);
}
