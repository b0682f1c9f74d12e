//! Tiered compilation, the default (`engine.compiler = "tiered"`): a new
//! version serves at once from Winch's code, Cranelift's is swapped in under
//! the same version when the background compile ends, and both are kept in
//! the code cache, so a restart maps the optimized code.

use crate::util::{output_json, run, settings_in};
use paddock::plugins::cache::Compiled;
use paddock::runtime::{RunOptions, Runtime};
use paddock_test_guests::{guests, variant};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A host on `dir` with `extra` settings, whose plugins folder holds `echo`
/// and `watcher` ([`plugins_in`]), and whose code cache is its own.
fn host(dir: &Path, extra: &str) -> Runtime {
    plugins_in(dir);
    let toml = format!(
        "[host]\nplugins = {:?}\ncode-cache = {:?}\n{extra}",
        dir.join("plugins").display().to_string(),
        dir.join("code").display().to_string()
    );
    Runtime::new(settings_in(dir, &toml)).expect("engine starts")
}

/// `dir/plugins` holding `echo` and `watcher`, builds of them no other test compiles.
fn plugins_in(dir: &Path) {
    for (name, guest) in [("echo", guests::ECHO), ("watcher", guests::WATCHER)] {
        let folder = dir.join("plugins").join(name);
        if folder.exists() {
            continue;
        }
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join("agent.wasm"), variant(&std::fs::read(guest).unwrap(), 0x7133)).unwrap();
        let manifest = format!("name = {name:?}\nversion = \"1.0.0\"\ncomponent = \"agent.wasm\"\n");
        std::fs::write(folder.join("agent.toml"), manifest).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_version_serves_winchs_code_at_once_and_cranelifts_under_the_same_version_when_ready() {
    let dir = tempfile::tempdir().unwrap();
    let rt = host(dir.path(), "");
    let agent = rt.load("echo").unwrap();
    assert_eq!(agent.compiled(), Compiled::Baseline);
    let serving = rt.plugins().into_iter().find_map(|p| p.serving).unwrap();
    assert_eq!((serving.version.as_str(), serving.compiled), (&*agent.version, Compiled::Baseline));
    let first = run(&rt, "echo", r#"{"n":1}"#).await;
    assert_eq!(output_json(&first)["input"], r#"{"n":1}"#);

    assert!(rt.wait_optimized(Duration::from_secs(120)), "the optimized code was compiled within 120 s");
    assert_eq!(agent.compiled(), Compiled::Fresh);
    // The same version, in place: no reload, no new id.
    let now = rt.load("echo").unwrap();
    assert!(Arc::ptr_eq(&agent, &now));
    let serving = rt.plugins().into_iter().find_map(|p| p.serving).unwrap();
    assert_eq!(
        (serving.version.as_str(), serving.compiled, serving.invocations),
        (&*agent.version, Compiled::Fresh, 1)
    );
    let second = run(&rt, "echo", r#"{"n":2}"#).await;
    assert_eq!(output_json(&second)["input"], r#"{"n":2}"#);
    assert_eq!(rt.code_cache().unwrap().compiles(), 1);

    // Both codes are kept, each under its engine's folder.
    let artifact = format!("{}.cwasm", agent.hash.hex());
    let mut engines = 0;
    for folder in std::fs::read_dir(dir.path().join("code")).unwrap() {
        let files: Vec<String> = std::fs::read_dir(folder.unwrap().path())
            .unwrap()
            .map(|f| f.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(files.contains(&artifact), "{files:?}");
        engines += 1;
    }
    assert_eq!(engines, 2);

    // A restart maps the optimized code: nothing to compile, nothing to wait for.
    drop(rt);
    let warm = host(dir.path(), "");
    let agent = warm.load("echo").unwrap();
    assert_eq!(agent.compiled(), Compiled::Cached);
    assert!(warm.wait_optimized(Duration::ZERO));
    assert_eq!((warm.code_cache().unwrap().compiles(), warm.code_cache().unwrap().hits()), (0, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invocation_begun_on_winchs_code_ends_on_it_after_cranelifts_is_swapped_in() {
    let dir = tempfile::tempdir().unwrap();
    let rt = host(dir.path(), "");
    let agent = rt.load("watcher").unwrap();
    assert_eq!(agent.compiled(), Compiled::Baseline);
    let running = {
        let (rt, agent) = (rt.clone(), agent.clone());
        tokio::spawn(async move { rt.run(&agent, r#"{"wait_ms":5000}"#, &RunOptions::default()).await })
    };
    while agent.invocations() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(rt.wait_optimized(Duration::from_secs(4)), "the optimized code was compiled within 4 s");
    assert_eq!(agent.compiled(), Compiled::Fresh);
    assert!(!running.is_finished(), "the invocation still runs on Winch's code");
    let finished = running.await.unwrap().unwrap();
    assert_eq!(finished.result.unwrap(), "0 changes");
    let after = run(&rt, "watcher", r#"{"wait_ms":0}"#).await;
    assert_eq!(after.result.unwrap(), "0 changes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_told_one_compiler_uses_only_that_one() {
    for compiler in ["cranelift", "winch"] {
        let dir = tempfile::tempdir().unwrap();
        let rt = host(dir.path(), &format!("[engine]\ncompiler = {compiler:?}\nmax-instances = 32\n"));
        let agent = rt.load("echo").unwrap();
        assert_eq!(agent.compiled(), Compiled::Fresh, "{compiler}");
        assert!(rt.wait_optimized(Duration::ZERO), "{compiler}");
        assert_eq!(std::fs::read_dir(dir.path().join("code")).unwrap().count(), 1, "{compiler}: one engine's code");
    }
}

/// The files under `dir` this process maps.
#[cfg(target_os = "linux")]
fn mapped_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let dir = dir.canonicalize().unwrap();
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let mut files: Vec<_> =
        maps.lines().filter_map(|l| l.find('/').map(|at| Path::new(&l[at..]).to_path_buf())).collect();
    files.retain(|f| f.starts_with(&dir));
    files.sort();
    files.dedup();
    files
}

/// Code compiled now serves from the file the code cache stores it in, as it
/// would after a restart (its pages the kernel's page cache, not the
/// host's memory), whichever compiler made it; Winch's code, which the
/// optimized code replaces, is not mapped.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_compiled_now_serves_from_the_file_it_is_stored_in() {
    for compiler in ["tiered", "cranelift"] {
        let dir = tempfile::tempdir().unwrap();
        let rt = host(dir.path(), &format!("[engine]\ncompiler = {compiler:?}\nmax-instances = 32\n"));
        let agent = rt.load("echo").unwrap();
        assert!(rt.wait_optimized(Duration::from_secs(120)), "{compiler}: optimized within 120 s");
        assert_eq!(agent.compiled(), Compiled::Fresh, "{compiler}");
        let stored = rt.code_cache().unwrap().dir().join(format!("{}.cwasm", agent.hash.hex()));
        assert_eq!(mapped_under(dir.path()), [stored.canonicalize().unwrap()], "{compiler}");
        let ran = run(&rt, "echo", r#"{"n":1}"#).await;
        assert_eq!(output_json(&ran)["input"], r#"{"n":1}"#, "{compiler}");
        assert_eq!(rt.code_cache().unwrap().compiles(), 1, "{compiler}");
    }
}

/// Without a code cache, code compiled on a scratch engine is copied into
/// the serving engine, and serves, whichever compiler made it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_code_cache_code_compiled_apart_is_copied_in_and_serves() {
    for compiler in ["tiered", "cranelift"] {
        let dir = tempfile::tempdir().unwrap();
        plugins_in(dir.path());
        let toml = format!(
            "[host]\nplugins = {:?}\ncode-cache = false\n[engine]\ncompiler = {compiler:?}\nmax-instances = 32\n",
            dir.path().join("plugins").display().to_string()
        );
        let rt = Runtime::new(settings_in(dir.path(), &toml)).expect("engine starts");
        assert!(rt.code_cache().is_none(), "{compiler}");
        let agent = rt.load("echo").unwrap();
        assert!(rt.wait_optimized(Duration::from_secs(120)), "{compiler}: optimized within 120 s");
        assert_eq!(agent.compiled(), Compiled::Fresh, "{compiler}");
        let ran = run(&rt, "echo", r#"{"n":1}"#).await;
        assert_eq!(output_json(&ran)["input"], r#"{"n":1}"#, "{compiler}");
        assert!(!dir.path().join("code").exists(), "{compiler}: nothing stored");
    }
}

/// Each engine's folder of the code cache in `dir/code`, with the artifacts in it.
fn cached(dir: &Path) -> Vec<Vec<String>> {
    let Ok(folders) = std::fs::read_dir(dir.join("code")) else { return Vec::new() };
    folders
        .map(|folder| {
            let files = std::fs::read_dir(folder.unwrap().path()).unwrap();
            files.map(|f| f.unwrap().file_name().to_string_lossy().into_owned()).collect()
        })
        .collect()
}

/// `paddock run` serves once and ends: it compiles no optimized code, and
/// before it exits (after its output) stores the baseline code it compiled,
/// which the next `paddock run` maps instead of compiling again.
#[test]
fn a_one_shot_run_stores_its_baseline_code_for_the_next_and_compiles_no_optimized_code() {
    let dir = tempfile::tempdir().unwrap();
    drop(host(dir.path(), ""));
    let toml = "[host]\nplugins = \"plugins\"\ncode-cache = \"code\"\n";
    std::fs::write(dir.path().join("paddock.toml"), toml).unwrap();
    let component = std::fs::read(dir.path().join("plugins/echo/agent.wasm")).unwrap();
    let artifact = format!("{}.cwasm", blake3::hash(&component).to_hex());
    let first = crate::util::TestCommand::new(dir.path(), &["run", "echo", "--input", "{\"n\":1}"]).run();
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(cached(dir.path()), [vec![artifact.clone()]], "one engine's code: Winch's");
    let stored = |dir: &Path| {
        let folder = std::fs::read_dir(dir.join("code")).unwrap().next().unwrap().unwrap().path();
        std::fs::metadata(folder.join(&artifact)).unwrap().modified().unwrap()
    };
    let when = stored(dir.path());
    let again = crate::util::TestCommand::new(dir.path(), &["run", "echo", "--input", "{\"n\":2}"]).run();
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(cached(dir.path()).len(), 1, "nothing optimized");
    assert_eq!(stored(dir.path()), when, "mapped, not compiled and stored again");
}
