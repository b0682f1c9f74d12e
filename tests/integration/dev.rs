//! The author's loop: `paddock dev` rebuilds, reloads and re-runs an agent
//! written by `paddock new` when its source changes, and `paddock run` says
//! when the component it runs is older than its sources.
//!
//! Building needs the language's toolchain (see `languages.rs`): missing, the
//! test fails when CI is set and otherwise skips saying so.

use crate::languages::{cache_dir, toolchain_is_missing};
use crate::util::*;
use paddock::toolchain::Lang;
use paddock_test_guests::guests;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

/// A `paddock dev` process and the lines it writes, as they come.
struct Dev {
    child: Child,
    stdout: mpsc::Receiver<String>,
    stderr: std::sync::Arc<parking_lot::Mutex<String>>,
}

impl Dev {
    fn start(dir: &std::path::Path, args: &[&str]) -> Dev {
        let mut cmd = paddock_in(dir);
        cmd.arg("dev").args(args).env("PADDOCK_CACHE_DIR", cache_dir());
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start paddock dev");
        let (send, stdout) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || BufReader::new(out).lines().map_while(Result::ok).try_for_each(|l| send.send(l)));
        let stderr = std::sync::Arc::new(parking_lot::Mutex::new(String::new()));
        let (err, log) = (child.stderr.take().unwrap(), stderr.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                log.lock().push_str(&(line + "\n"));
            }
        });
        Dev { child, stdout, stderr }
    }

    /// The next line of output, waiting up to `limit`; `None` if none came
    /// or the process ended.
    fn next_output(&self, limit: Duration) -> Option<String> {
        self.stdout.recv_timeout(limit).ok()
    }

    fn stderr(&self) -> String {
        self.stderr.lock().clone()
    }

    /// Waits up to 30 s for `text` on stderr.
    fn wait_for_log(&self, text: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !self.stderr().contains(text) {
            assert!(std::time::Instant::now() < deadline, "no {text:?} in:\n{}", self.stderr());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `paddock new` in `lang`, `paddock dev` on it, then an edit of its greeting.
fn edit_is_picked_up(lang: Lang, source: &str) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("paddock.toml"), "[host]\nledger = \"memory\"\nplugin-state = \"memory\"\n")
        .unwrap();
    let made = TestCommand::new(dir.path(), &["new", "greeter", "--lang", lang.name()]).run();
    assert_eq!(made.code, 0, "{}", made.stderr);
    let dev = Dev::start(dir.path(), &["greeter", "--input", r#"{"name":"ada"}"#]);
    let Some(first) = dev.next_output(Duration::from_secs(600)) else {
        let stderr = dev.stderr();
        let built = Ran { code: 7, stdout: String::new(), stderr: stderr.clone() };
        if toolchain_is_missing(lang, &built) {
            return;
        }
        panic!("no output from paddock dev:\n{stderr}");
    };
    let first: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(first["greeting"], "Hello, ada!");
    dev.wait_for_log("[dev] watching greeter (");

    let file = dir.path().join("plugins/greeter").join(source);
    let text = std::fs::read_to_string(&file).unwrap();
    let edited = text.replacen("Hello, ", "Howdy, ", 1);
    assert_ne!(text, edited, "{source} greets with \"Hello, \"");
    std::fs::write(&file, edited).unwrap();
    let second =
        dev.next_output(Duration::from_secs(300)).unwrap_or_else(|| panic!("no new output:\n{}", dev.stderr()));
    let second: serde_json::Value = serde_json::from_str(&second).unwrap();
    assert_eq!((&second["greeting"], &second["visits"]), (&"Howdy, ada!".into(), &2.into()));
    // The swap is printed before the output, but stderr is read on a thread
    // of its own, so its line may arrive after the output's.
    dev.wait_for_log(" -> 0.1.0+");
    let log = dev.stderr();
    assert!(log.contains(&format!("[dev] greeter: {source} changed")), "{log}");
    let swapped = log.lines().filter(|l| l.starts_with("[dev] greeter: 0.1.0+") && l.contains(" -> 0.1.0+")).count();
    assert_eq!(swapped, 1, "{log}");
}

#[test]
fn dev_rebuilds_a_rust_agent_on_a_source_edit_and_prints_the_new_output() {
    edit_is_picked_up(Lang::Rust, "src/lib.rs");
}

#[test]
fn dev_rebuilds_a_python_agent_on_a_source_edit_and_prints_the_new_output() {
    edit_is_picked_up(Lang::Python, "app.py");
}

/// A build command that does nothing, and a component built an hour ago.
fn stale_plugin(dir: &std::path::Path) -> std::path::PathBuf {
    let folder = dir.join("plugins/echo");
    plugin(&dir.join("plugins"), "echo", guests::ECHO, "[build]\ncommand = \"true\"\n");
    let component = folder.join("agent.wasm");
    let copy = std::fs::read(&component).unwrap();
    std::fs::remove_file(&component).unwrap();
    std::fs::write(&component, copy).unwrap();
    let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options().write(true).open(&component).unwrap().set_modified(an_hour_ago).unwrap();
    folder
}

#[test]
fn a_run_of_a_component_older_than_its_sources_warns_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let folder = stale_plugin(dir.path());
    let fresh = TestCommand::new(dir.path(), &["run", "echo"]).run();
    assert_eq!(fresh.code, 0, "{}", fresh.stderr);
    assert!(!fresh.stderr.contains("warning"), "{}", fresh.stderr);

    std::fs::write(folder.join("echo.c"), "int main;").unwrap();
    let stale = TestCommand::new(dir.path(), &["run", "echo"]).run();
    assert_eq!(stale.code, 0, "{}", stale.stderr);
    assert!(
        stale.stderr.starts_with(
            "warning: echo: echo.c changed after agent.wasm was built; \
             `paddock run --build` or `paddock dev` builds it first\n"
        ),
        "{}",
        stale.stderr
    );
    let built = TestCommand::new(dir.path(), &["run", "echo", "--build"]).run();
    assert!(!built.stderr.contains("warning"), "{}", built.stderr);
}
