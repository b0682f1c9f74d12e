//! Helpers: hosts with test settings, plugin folders, and the real binary.

use paddock::config::Settings;
use paddock::core::clock::ManualClock;
use paddock::gateway::types::{ChatRequest, Message, Role};
use paddock::runtime::{RunOptions, Runtime};
use paddock::sandbox::{InvokeError, Outcome};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

/// Settings from `toml` (as if read from `<dir>/paddock.toml`), with a small
/// pooling allocator so many tests can hold hosts at once.
pub fn settings_in(dir: &Path, toml: &str) -> Settings {
    let mut text =
        if toml.contains("[engine]") { toml.to_string() } else { format!("[engine]\nmax-instances = 32\n{toml}") };
    // Usage, accepted capabilities, approvals and flow runs are kept in memory, and
    // compiled code in one cache shared by the tests, unless a test says otherwise.
    let cache = format!("code-cache = {:?}", concat!(env!("CARGO_TARGET_TMPDIR"), "/code-cache"));
    for (key, line) in [
        ("ledger =", "ledger = \"memory\""),
        ("plugin-state =", "plugin-state = \"memory\""),
        ("flows =", "flows = \"memory\""),
        ("code-cache =", &cache),
    ] {
        if !text.contains(key) {
            text = match text.contains("[host]\n") {
                true => text.replacen("[host]\n", &format!("[host]\n{line}\n"), 1),
                false => format!("[host]\n{line}\n{text}"),
            };
        }
    }
    Settings::parse(&text, &dir.join("paddock.toml")).unwrap_or_else(|e| panic!("test settings are valid: {e}"))
}

/// A host with `toml` settings and no plugins folder.
pub fn runtime(toml: &str) -> Runtime {
    Runtime::new(settings_in(Path::new("/nonexistent"), toml)).expect("engine starts")
}

/// A host whose plugins folder is `dir`.
pub fn runtime_with_plugins(dir: &Path, toml: &str) -> Runtime {
    let toml = format!("[host]\nplugins = {:?}\n{toml}", dir.display().to_string());
    Runtime::new(settings_in(dir, &toml)).expect("engine starts")
}

/// Writes `<dir>/<name>/agent.toml` for the component `wasm` (a built one
/// linked into the folder, where a plugin's component must be; one to be
/// built named as given), with `extra` appended.
pub fn plugin(dir: &Path, name: &str, wasm: &str, extra: &str) -> PathBuf {
    let folder = dir.join(name);
    std::fs::create_dir_all(&folder).unwrap();
    let built = Path::new(wasm).is_absolute() && Path::new(wasm).is_file();
    let component = if built { link_component(&folder, Path::new(wasm)) } else { wasm };
    let manifest = folder.join("agent.toml");
    std::fs::write(&manifest, format!("name = {name:?}\nversion = \"1.0.0\"\ncomponent = {component:?}\n{extra}"))
        .unwrap();
    manifest
}

/// Puts the component `wasm` into `folder` as `agent.wasm` (a hard link,
/// else a copy), and returns that name.
pub fn link_component(folder: &Path, wasm: &Path) -> &'static str {
    std::fs::create_dir_all(folder).unwrap();
    let to = folder.join("agent.wasm");
    let _ = std::fs::remove_file(&to);
    if std::fs::hard_link(wasm, &to).is_err() {
        std::fs::copy(wasm, &to).unwrap_or_else(|e| panic!("copy {} to {}: {e}", wasm.display(), to.display()));
    }
    "agent.wasm"
}

/// Loads `spec` and runs it once with `input` and `options`.
pub async fn run_with(rt: &Runtime, spec: &str, input: &str, options: &RunOptions) -> Outcome {
    let agent = rt.load(spec).unwrap_or_else(|e| panic!("load {spec}: {e}"));
    rt.run(&agent, input, options).await.expect("options are valid")
}

/// Loads `spec` and runs it once with `input` in the default tenant.
pub async fn run(rt: &Runtime, spec: &str, input: &str) -> Outcome {
    run_with(rt, spec, input, &RunOptions::default()).await
}

/// The core module `core` (exporting `cabi_realloc` and the agent's
/// functions by their canonical names) as a component of `agent-world`.
pub fn agent_component(mut core: Vec<u8>) -> Vec<u8> {
    let mut resolve = wit_parser::Resolve::new();
    let wit = Path::new(paddock_test_guests::guests::ROOT).join("wit");
    let (package, _) = resolve.push_dir(&wit).expect("wit/ parses");
    let world = resolve.select_world(&[package], Some("agent-world")).expect("wit/ has agent-world");
    wit_component::embed_component_metadata(&mut core, &resolve, world, wit_component::StringEncoding::UTF8)
        .expect("the component type embeds");
    wit_component::ComponentEncoder::default()
        .module(&core)
        .and_then(|e| e.validate(true).encode())
        .expect("the module is a component of agent-world")
}

/// The error's display text; panics when the invocation succeeded.
pub fn error_text(outcome: &Outcome) -> String {
    match &outcome.result {
        Ok(output) => panic!("expected an error, got output {output}"),
        Err(e) => e.to_string(),
    }
}

/// Asserts the invocation succeeded and parses its output as JSON.
pub fn output_json(outcome: &Outcome) -> serde_json::Value {
    match &outcome.result {
        Ok(output) => serde_json::from_str(output).unwrap_or_else(|e| panic!("output {output} is not JSON: {e}")),
        Err(e) => panic!("expected output, got error: {e}"),
    }
}

/// Whether the error is a limit hit.
pub fn is_limit(outcome: &Outcome) -> bool {
    matches!(outcome.result, Err(InvokeError::Limit { .. }))
}

/// The data folder, in the test's folder, of the binary run where it finds
/// no `paddock.toml` (given as `PADDOCK_DATA_DIR`): no test writes into the
/// real `~/.local/share/paddock`, and a test mixing the binary with hosts in
/// its own process (whose settings read as if from `<dir>/paddock.toml`, so
/// keep their files in `<dir>/.paddock`) has one data folder.
pub const DATA_DIR: &str = ".paddock";

/// The real `paddock` binary to run in `dir`: no log filter from the
/// environment, and `<dir>/`[`DATA_DIR`] as its data folder when it finds no
/// configuration.
pub fn paddock_in(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_paddock"));
    cmd.current_dir(dir).env_remove("PADDOCK_LOG").env_remove("RUST_LOG");
    cmd.env(paddock::config::DATA_DIR_VAR, dir.join(DATA_DIR));
    cmd
}

/// The real `paddock` binary, run in a folder of its own.
pub struct TestCommand {
    cmd: Command,
}

/// What the binary did.
pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl TestCommand {
    /// `paddock` with `args`, run in `dir`.
    pub fn new(dir: &Path, args: &[&str]) -> Self {
        let mut cmd = paddock_in(dir);
        cmd.args(args);
        TestCommand { cmd }
    }

    /// With `name` set to `value` in its environment, or removed when `None`.
    pub fn env(mut self, name: &str, value: Option<&Path>) -> Self {
        match value {
            Some(value) => self.cmd.env(name, value),
            None => self.cmd.env_remove(name),
        };
        self
    }

    /// Runs it to completion.
    pub fn run(mut self) -> Ran {
        let Output { status, stdout, stderr } = self.cmd.output().expect("run paddock");
        Ran {
            code: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }
}

/// A gateway for the `[providers]`/`[routes]` of `toml`, on a clock the test moves.
pub fn gateway(toml: &str) -> (paddock::gateway::Gateway, Arc<ManualClock>) {
    gateway_with_quota(toml, Arc::new(paddock::gateway::Unmetered))
}

/// The same, with budgets from `quota`.
pub fn gateway_with_quota(
    toml: &str,
    quota: Arc<dyn paddock::gateway::Quota>,
) -> (paddock::gateway::Gateway, Arc<ManualClock>) {
    let settings = Settings::parse(toml, Path::new("/nonexistent/paddock.toml"))
        .unwrap_or_else(|e| panic!("test settings are valid: {e}"));
    let clock = ManualClock::new();
    let gateway = paddock::gateway::Gateway::with(&settings.gateway, clock.clone(), quota).expect("gateway starts");
    (gateway, clock)
}

/// A one-message request on `route`.
pub fn ask(route: &str, prompt: &str) -> ChatRequest {
    ChatRequest { route: route.into(), messages: vec![Message::new(Role::User, prompt)], ..Default::default() }
}

/// The caller used by gateway tests.
pub fn caller() -> paddock::gateway::Caller {
    paddock::gateway::Caller { tenant: Arc::from("acme"), agent: Arc::from("tester") }
}

/// `[providers.NAME]` for a fake server speaking `kind`.
pub fn fake_provider(name: &str, kind: &str, fake: &paddock_fake_provider::FakeProvider) -> String {
    let base = match kind {
        "openai" => format!("{}/v1", fake.url()),
        _ => fake.url(),
    };
    format!("[providers.{name}]\nkind = {kind:?}\nbase-url = {base:?}\n")
}

/// A gateway for `toml` on the real clock.
pub fn live_gateway(toml: &str) -> paddock::gateway::Gateway {
    let settings = Settings::parse(toml, Path::new("/nonexistent/paddock.toml"))
        .unwrap_or_else(|e| panic!("test settings are valid: {e}"));
    paddock::gateway::Gateway::new(&settings.gateway).expect("gateway starts")
}

/// A `paddock serve` process, killed by its PID when dropped.
pub struct Served {
    pub child: std::process::Child,
    /// Where it listens (`127.0.0.1:PORT`).
    pub address: String,
    /// The folder it serves from.
    pub dir: PathBuf,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where [`serve`] puts the host's stderr, in its folder.
pub const SERVE_LOG: &str = "serve.stderr";

/// Starts `paddock serve` in `dir` on a port the OS picks, with `args`, and
/// waits until it listens. Its stderr goes to `<dir>/serve.stderr`.
pub fn serve(dir: &Path, args: &[&str]) -> Served {
    use std::io::BufRead;
    let mut child = paddock_in(dir)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(dir.join(SERVE_LOG)).expect("a log file in the test's folder"))
        .spawn()
        .expect("paddock serve starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut served = Served { child, address: String::new(), dir: dir.to_path_buf() };
    let mut line = String::new();
    std::io::BufReader::new(stdout).read_line(&mut line).expect("paddock serve prints its address");
    let line = line.trim();
    let address = line
        .strip_prefix("serving on http://")
        .or_else(|| line.strip_prefix("serving on https://"))
        .unwrap_or_else(|| panic!("paddock serve: {line:?}"));
    served.address = address.to_string();
    served
}

/// A new API key of `tenant` with `role`, made by `paddock keys create` in
/// `dir` (the host's data folder is the one its `paddock.toml` names).
pub fn key(dir: &Path, tenant: &str, role: &str) -> String {
    let made = TestCommand::new(dir, &["keys", "create", "--tenant", tenant, "--role", role]).run();
    assert_eq!(made.code, 0, "paddock keys create: {}", made.stderr);
    made.stdout.trim().to_string()
}

/// Sends `signal` (`-TERM`, `-HUP`…) to the process `pid`, by its id, never by name.
pub fn signal(pid: u32, signal: &str) {
    let sent = std::process::Command::new("kill").args([signal, &pid.to_string()]).status().unwrap();
    assert!(sent.success(), "kill {signal} {pid}");
}

/// `method path` with `token` and `body`: the status and the JSON body (null when not JSON).
pub async fn call(
    served: &Served,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: &str,
) -> (reqwest::StatusCode, serde_json::Value) {
    let response = reqwest::Client::new()
        .request(method, format!("http://{}{path}", served.address))
        .bearer_auth(token)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
}
