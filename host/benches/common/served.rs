//! `paddock serve` processes for benches: the release binary in a folder of
//! its own with the test guests as plugins, killed by its PID when dropped.
//! [`Served`] routes `r` to a fake provider, with the `llm-client` guest as
//! plugin `client`, its connection limits raised and its request limits off,
//! past what a bench sends.

// Each bench includes this file and uses a part of it.
#![allow(dead_code)]

use paddock_test_guests::guests;
use std::io::BufRead;
use std::process::{Child, Command, Stdio};

/// A host routing to a fake provider, with the API key its requests carry.
pub struct Served {
    /// The process, its URL and folder.
    pub host: Host,
    /// The API key its requests carry; `None` with `serve.auth = "none"`.
    pub token: Option<String>,
}

impl Served {
    /// A host routing `r` (model `m`) to the OpenAI-style fake at `fake_url`,
    /// checking API keys (a `run` key of tenant `bench` is made) unless `keys` is false.
    pub fn start(fake_url: &str, keys: bool) -> Served {
        let routes = "[capabilities]\nroutes = [\"r\"]\n";
        let auth = if keys { "keys" } else { "none" };
        let dir = Host::prepare(&[("client", guests::LLM_CLIENT, routes)], &[], |component_dirs| {
            format!(
                "[host]\nledger = \"memory\"\nplugin-state = \"memory\"\nflows = \"memory\"\ndefault-tenant = \"bench\"\n\
                 {component_dirs}\
                 [engine]\nmax-instances = 1000\n\
                 [providers.fake]\nkind = \"openai\"\nbase-url = \"{fake_url}/v1\"\n\
                 [routes.r]\ntargets = [{{ provider = \"fake\", model = \"m\" }}]\n\
                 [serve]\nauth = {auth:?}\nmax-connections = 4096\nmax-connections-per-source = 4096\n\
                 requests-per-key = 0\nrequests-per-tenant = 0\nconcurrent-per-key = 0\nconcurrent-per-tenant = 0\n{}",
                serve_threads()
            )
        });
        let token = keys.then(|| {
            let made = Command::new(env!("CARGO_BIN_EXE_paddock"))
                .current_dir(dir.path())
                .args(["keys", "create", "--tenant", "bench", "--role", "run"])
                .output()
                .expect("paddock keys create runs");
            assert!(made.status.success(), "paddock keys create: {}", String::from_utf8_lossy(&made.stderr));
            String::from_utf8_lossy(&made.stdout).trim().to_string()
        });
        Served { host: Host::spawn(dir), token }
    }
}

/// `serve.threads = N` when `PADDOCK_BENCH_SERVE_THREADS=N` (to hold two
/// settings side by side in one build; `0` serves connections on the shared
/// runtime), else nothing: the default.
pub fn serve_threads() -> String {
    std::env::var("PADDOCK_BENCH_SERVE_THREADS").map_or_else(|_| String::new(), |n| format!("threads = {n}\n"))
}

/// Writes a plugin folder under `<dir>/plugins` for each `(name, component,
/// more manifest)`; the `host.component-dirs` line that lets the test guests'
/// build folder hold their components.
pub fn plugins(dir: &std::path::Path, plugins: &[(&str, &str, &str)]) -> String {
    for (name, wasm, extra) in plugins {
        let folder = dir.join("plugins").join(name);
        std::fs::create_dir_all(&folder).expect("a temporary folder is writable");
        let manifest = format!("name = {name:?}\nversion = \"1.0.0\"\ncomponent = {wasm:?}\n{extra}");
        std::fs::write(folder.join("agent.toml"), manifest).expect("a temporary folder is writable");
    }
    let built = std::path::Path::new(guests::ECHO).parent().expect("a component has a folder");
    format!("component-dirs = [{built:?}]\n")
}

/// A `paddock serve` in a folder of its own, killed by its PID when dropped.
pub struct Host {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The folder it serves from.
    pub dir: tempfile::TempDir,
}

impl Host {
    /// Writes `plugins` (see [`plugins`]), each of `files` (a path in the
    /// folder and its text) and the `paddock.toml` that `config` makes of the
    /// `host.component-dirs` line, then starts the host.
    pub fn start(
        plugins_of: &[(&str, &str, &str)],
        files: &[(&str, &str)],
        config: impl FnOnce(&str) -> String,
    ) -> Host {
        Host::spawn(Host::prepare(plugins_of, files, config))
    }

    /// A folder with what [`Host::start`] writes, not yet served.
    pub fn prepare(
        plugins_of: &[(&str, &str, &str)],
        files: &[(&str, &str)],
        config: impl FnOnce(&str) -> String,
    ) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let component_dirs = plugins(dir.path(), plugins_of);
        for (path, text) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().expect("a file has a folder"))
                .expect("a temporary folder is writable");
            std::fs::write(path, text).expect("a temporary folder is writable");
        }
        std::fs::write(dir.path().join("paddock.toml"), config(&component_dirs))
            .expect("a temporary folder is writable");
        dir
    }

    /// Serves `dir` on a port the OS picks, once it listens and its plugins
    /// serve their optimized code (a tiered host starts on Winch's and
    /// compiles Cranelift's behind it), so a bench measures the code the
    /// host keeps serving.
    pub fn spawn(dir: tempfile::TempDir) -> Host {
        let (child, url) = serve(dir.path());
        optimized(dir.path());
        Host { child, url, dir }
    }

    /// The process's id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until no plugin of the host serving `dir` serves baseline code,
/// asking it through `paddock plugins list --json`.
fn optimized(dir: &std::path::Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    loop {
        let listed = Command::new(env!("CARGO_BIN_EXE_paddock"))
            .current_dir(dir)
            .args(["plugins", "list", "--json"])
            .output()
            .expect("paddock plugins list runs");
        let text = String::from_utf8_lossy(&listed.stdout);
        assert!(text.starts_with('['), "paddock plugins list --json: {}", String::from_utf8_lossy(&listed.stderr));
        if !text.contains(r#""compiled":"baseline""#) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "the host's plugins were not optimized within 600 s: {text}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Starts `paddock serve` in `dir` on a port the OS picks; the process and
/// its `http://127.0.0.1:PORT`, once it listens.
fn serve(dir: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_paddock"))
        .current_dir(dir)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove("PADDOCK_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("paddock serve starts");
    let mut line = String::new();
    let stdout = child.stdout.take().expect("piped stdout");
    std::io::BufReader::new(stdout).read_line(&mut line).expect("paddock serve prints its address");
    let address = line.trim().strip_prefix("serving on ").unwrap_or_else(|| panic!("paddock serve: {line:?}"));
    (child, address.to_string())
}
