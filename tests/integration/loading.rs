//! Each way a component can fail to load has its own message.

use crate::util::*;
use paddock::plugins::LoadError;
use paddock_test_guests::guests;
use std::path::Path;

fn load_error(rt: &paddock::runtime::Runtime, spec: &str) -> LoadError {
    match rt.load(spec) {
        Ok(_) => panic!("{spec} loaded"),
        Err(e) => e,
    }
}

#[test]
fn missing_component_file_is_named() {
    let rt = runtime("");
    let err = load_error(&rt, "/nowhere/agent.wasm");
    assert!(matches!(err, LoadError::Missing { .. }));
    assert_eq!(err.to_string(), "/nowhere/agent.wasm: no such file");
}

#[test]
fn bytes_that_are_not_webassembly_are_refused() {
    let rt = runtime("");
    let path = format!("{}/not-wasm.wasm", guests::FIXTURES);
    let err = load_error(&rt, &path);
    assert_eq!(
        err.to_string(),
        format!("{path}: not a WebAssembly file (it is text; a component starts with the bytes \\0asm)")
    );
}

#[test]
fn an_empty_file_is_not_webassembly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.wasm");
    std::fs::write(&path, b"").unwrap();
    let err = load_error(&runtime(""), path.to_str().unwrap());
    assert_eq!(err.to_string(), format!("{}: not a WebAssembly file (the file is empty)", path.display()));
}

#[test]
fn core_module_is_refused_as_not_a_component() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("core.wasm");
    std::fs::write(&path, b"\0asm\x01\0\0\0").unwrap();
    let err = load_error(&runtime(""), path.to_str().unwrap());
    assert!(matches!(err, LoadError::CoreModule { .. }));
    assert_eq!(
        err.to_string(),
        format!(
            "{}: a core WebAssembly module, not a component; build for wasm32-wasip2 or wrap it with `wasm-tools component new`",
            path.display()
        )
    );
    let wat = format!("{}/core-module.wat", guests::FIXTURES);
    assert!(matches!(load_error(&runtime(""), &wat), LoadError::CoreModule { .. }));
}

#[test]
fn component_of_another_world_names_the_missing_export_and_the_unexpected_import() {
    let path = format!("{}/other-world.wat", guests::FIXTURES);
    let err = load_error(&runtime(""), &path);
    assert_eq!(
        err.to_string(),
        format!(
            "{path}: does not fit world paddock:agent/agent-world@0.1.0: missing export `paddock:agent/agent@0.1.0` (it exports nothing); \
             unexpected import `foo:bar/baz` (this host provides paddock:agent/{{llm,blackboard,log,agents,approval,settings,tools}}@0.1 and WASI 0.2 only)"
        )
    );
}

#[test]
fn truncated_component_is_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.wasm");
    let bytes = std::fs::read(guests::ECHO).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = load_error(&runtime(""), path.to_str().unwrap());
    assert!(matches!(err, LoadError::Invalid { .. }), "{err}");
    assert!(err.to_string().starts_with(&format!("{}: invalid component: ", path.display())), "{err}");
}

#[test]
fn manifest_with_an_unknown_key_names_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = plugin(dir.path(), "typo", guests::ECHO, "[limits]\nfule = 5\n");
    let err = load_error(&runtime_with_plugins(dir.path(), ""), "typo");
    let text = err.to_string();
    assert!(text.starts_with(&format!("{}: TOML parse error at line 5", manifest.display())), "{text}");
    assert!(text.contains("unknown field `fule`, expected one of `fuel`, `memory`, `timeout`"), "{text}");
}

#[test]
fn unknown_plugin_lists_the_plugins_found() {
    let dir = tempfile::tempdir().unwrap();
    plugin(dir.path(), "alpha", guests::ECHO, "");
    plugin(dir.path(), "beta", guests::ECHO, "");
    let err = load_error(&runtime_with_plugins(dir.path(), ""), "gamma");
    assert_eq!(err.to_string(), format!("no plugin named \"gamma\" in {} (found: alpha, beta)", dir.path().display()));
}

#[test]
fn plugin_built_nowhere_says_how_to_build_it() {
    let dir = tempfile::tempdir().unwrap();
    plugin(dir.path(), "unbuilt", "target/unbuilt.wasm", "");
    let err = load_error(&runtime_with_plugins(dir.path(), ""), "unbuilt");
    let component = dir.path().join("unbuilt/target/unbuilt.wasm");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: no such file (build it first: `paddock build` or `paddock run unbuilt --build`)",
            component.display()
        )
    );
}

#[test]
fn inspect_lists_imports_and_exports_and_judges_the_fit() {
    let rt = runtime("");
    let report = rt.inspect(Path::new(guests::ECHO)).unwrap();
    assert!(report.misfit.is_none(), "{:?}", report.misfit);
    assert_eq!(report.exports, ["paddock:agent/agent@0.1.0"]);
    assert!(report.imports.iter().any(|i| i.name == "paddock:agent/blackboard@0.1.0" && i.provided));
    assert!(report.imports.iter().all(|i| i.provided));
    let other = rt.inspect(Path::new(&format!("{}/other-world.wat", guests::FIXTURES))).unwrap();
    assert_eq!(other.imports.len(), 1);
    assert!(!other.imports[0].provided);
    assert!(other.misfit.unwrap().starts_with("missing export"));
}

/// `load_off_thread`, as `paddock serve` loads an agent a request names:
/// a load that compiles runs on a blocking thread, so the caller's thread
/// (a front thread, serving other connections) goes on with its other tasks
/// meanwhile; once the version serves it is answered at once.
/// A task on the test's thread counting each millisecond it gets: a load
/// made on this thread would stop the count for as long as it compiles.
struct Ticker {
    ticks: std::sync::Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Ticker {
    async fn start() -> Ticker {
        let ticks = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let task = tokio::spawn({
            let ticks = ticks.clone();
            async move {
                loop {
                    ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
            }
        });
        tokio::task::yield_now().await;
        Ticker { ticks, task }
    }

    /// Runs `work`, asserting the thread ran its other task at least five
    /// times meanwhile.
    async fn goes_on_during<T>(&self, what: &str, work: impl std::future::Future<Output = T>) -> T {
        let before = self.ticks.load(std::sync::atomic::Ordering::Relaxed);
        let started = std::time::Instant::now();
        let done = work.await;
        let (took, ticked) = (started.elapsed(), self.ticks.load(std::sync::atomic::Ordering::Relaxed) - before);
        assert!(ticked >= 5, "the thread ran its other task {ticked} times in the {took:?} {what} took");
        done
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The rest of a `[host]` table for a load that compiles, and compiles slowly.
const COMPILING: &str = "code-cache = false\n[engine]\ncompiler = \"cranelift\"\nmax-instances = 4\n";

#[tokio::test]
async fn a_load_that_compiles_leaves_the_callers_thread_to_its_other_tasks() {
    let rt = runtime(&format!("[host]\n{COMPILING}"));
    let ticker = Ticker::start().await;
    let agent = ticker.goes_on_during("the load", rt.load_off_thread(guests::HELLO)).await.unwrap();
    let again = rt.load_off_thread(guests::HELLO).await.unwrap();
    assert!(std::sync::Arc::ptr_eq(&agent, &again), "the loaded version is the one answered next");
    let missing = rt.load_off_thread("/nowhere/agent.wasm").await.err().map(|e| e.to_string());
    assert_eq!(missing.as_deref(), Some("/nowhere/agent.wasm: no such file"));
}

#[tokio::test]
async fn a_flow_begun_from_an_async_thread_compiles_its_agents_while_the_thread_goes_on() {
    use paddock::flow::{Flow, Flows, MemoryStore, RunStatus, Start};
    let dir = tempfile::tempdir().unwrap();
    plugin(dir.path(), "greeter", guests::HELLO, "");
    let rt = runtime_with_plugins(dir.path(), COMPILING);
    let flows = Flows::new(rt.clone(), std::sync::Arc::new(MemoryStore::default()));
    let spec = "[flow]\nname = \"f\"\n[steps.main]\nkind = \"sequence\"\nsteps = [\"greet\"]\n\
                [steps.greet]\nagent = \"greeter\"\ninput = { name = \"Ada\" }\n";
    let flow = Flow::parse(spec, "f.toml").unwrap();
    let ticker = Ticker::start().await;
    let begin = flows.begin_off_thread(flow, "f.toml", serde_json::json!({}), Start::default());
    let started = ticker.goes_on_during("beginning the run", begin).await.unwrap();
    assert!(rt.serving_now("greeter").is_some(), "the run's agent is loaded once it has begun");
    let report = started.finish().await.unwrap();
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.error);
    assert_eq!(report.output.unwrap()["greeting"], "Hello, Ada!");
}

#[tokio::test]
async fn an_agent_calling_one_not_loaded_yet_leaves_its_callers_thread_to_its_other_tasks() {
    let dir = tempfile::tempdir().unwrap();
    plugin(dir.path(), "boss", guests::CALLER, "[capabilities]\nagents = [\"greeter\"]\n");
    plugin(dir.path(), "greeter", guests::HELLO, "");
    let rt = runtime_with_plugins(dir.path(), COMPILING);
    rt.load("boss").unwrap();
    let ticker = Ticker::start().await;
    let input = serde_json::json!({ "agent": "greeter", "input": { "name": "Ada" } }).to_string();
    let outcome = ticker.goes_on_during("the call", run(&rt, "boss", &input)).await;
    assert_eq!(output_json(&outcome)["greeting"], "Hello, Ada!", "the callee's answer, through the caller");
    assert!(rt.serving_now("greeter").is_some(), "the callee was loaded by the call");
}
