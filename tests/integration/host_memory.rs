//! The serving host's own memory: what a compile used is handed back to the
//! system once compiling is done, and nothing of the compiler is kept for
//! the next compile, so an idle host does not keep the peak of its last one.

use crate::util::*;
use std::fmt::Write;
use std::path::Path;
use std::time::{Duration, Instant};

/// An agent that answers `{}` and carries `functions` functions it never
/// calls, each a chain of `steps` multiplications: a component whose compile
/// takes many times the memory its code keeps.
fn bulky_agent(functions: u32, steps: u32) -> Vec<u8> {
    let mut wat = String::from(
        r#"(module
  (memory (export "memory") 1)
  (data (i32.const 1024) "{}")
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 4096))
  (func (export "paddock:agent/agent@0.1.0#run") (param i32 i32) (result i32)
    (i32.store8 (i32.const 2064) (i32.const 0))
    (i32.store (i32.const 2068) (i32.const 1024))
    (i32.store (i32.const 2072) (i32.const 2))
    (i32.const 2064))
  (func (export "paddock:agent/agent@0.1.0#compensate") (param i32 i32) (result i32)
    (i32.store8 (i32.const 2064) (i32.const 0))
    (i32.const 2064))
"#,
    );
    for f in 0..functions {
        wat.push_str("  (func (param i64) (result i64) local.get 0");
        for s in 0..steps {
            write!(wat, " i64.const {} i64.mul local.get 0 i64.xor", (f * steps + s) | 1).unwrap();
        }
        wat.push_str(")\n");
    }
    wat.push(')');
    agent_component(wat::parse_str(&wat).expect("the WAT parses"))
}

/// A field of `/proc/PID/status` in KiB (`VmHWM`, `VmRSS`, `RssAnon`).
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find_map(|l| l.strip_prefix(field)?.strip_prefix(':'));
    let kib = line.and_then(|l| l.trim().strip_suffix(" kB")?.parse().ok());
    kib.unwrap_or_else(|| panic!("/proc/{pid}/status has no {field}:\n{status}"))
}

/// Waits until the host's log in `dir` says `said`, at most `limit`.
fn until_logged(dir: &Path, said: &str, limit: Duration) {
    let start = Instant::now();
    while start.elapsed() < limit {
        if std::fs::read_to_string(dir.join(SERVE_LOG)).is_ok_and(|log| log.contains(said)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = std::fs::read_to_string(dir.join(SERVE_LOG)).unwrap_or_default();
    panic!("the host did not say {said:?} within {limit:?}:\n{log}");
}

/// A `paddock serve` with no plugin, in a folder of its own (`engine`: the
/// TOML of its `[engine]` table), given `agent` by hot reload: once its log
/// says `said`, asserts that the anonymous memory it holds over what it held
/// before comes down, within 10 s, to at most `1 / share` of the peak of its
/// memory over what it held before.
fn holds_at_most_a_share_of_the_compiles_peak(engine: &str, agent: &[u8], said: &str, share: u64) {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::write(
        dir.path().join("paddock.toml"),
        format!(
            "[host]\nledger = \"memory\"\nplugin-state = \"memory\"\ncode-cache = {:?}\n[engine]\n{engine}\n\
             [serve]\nauth = \"none\"\n",
            dir.path().join("code").display().to_string()
        ),
    )
    .unwrap();
    let served = serve(dir.path(), &[]);
    let pid = served.child.id();
    let (rss_before, anon_before) = (status_kib(pid, "VmRSS"), status_kib(pid, "RssAnon"));
    let folder = plugins.join("bulky");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("agent.wasm"), agent).unwrap();
    std::fs::write(folder.join("agent.toml"), "name = \"bulky\"\nversion = \"1.0.0\"\ncomponent = \"agent.wasm\"\n")
        .unwrap();
    until_logged(dir.path(), said, Duration::from_secs(120));
    let peak = status_kib(pid, "VmHWM") - rss_before;
    assert!(peak > 32 * 1024, "compiling took only {peak} KiB: too little to tell what is kept");
    let waited = Instant::now();
    let mut held = status_kib(pid, "RssAnon").saturating_sub(anon_before);
    while held > peak / share && waited.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
        held = status_kib(pid, "RssAnon").saturating_sub(anon_before);
    }
    assert!(
        held <= peak / share,
        "idle after compiling, the host holds {held} KiB more than before, of a peak of {peak} KiB more"
    );
}

/// A compile's memory is most of its peak: the host holding more than half
/// of it, idle after the compile, has kept what the compile freed (measured:
/// a sixth held; five sixths without the hand-back). The default tiered
/// host: Winch's code first, then Cranelift's in the background.
#[cfg(target_os = "linux")]
#[test]
fn an_idle_host_hands_back_the_memory_its_compiles_used() {
    holds_at_most_a_share_of_the_compiles_peak("", &bulky_agent(2_000, 100), "optimized code serving", 2);
}

/// wasmtime's compilers keep, for the next compile, a context for each
/// thread that compiled, holding the buffers of the largest function it
/// compiled. Compiled on a scratch engine, dropped with them, the code of
/// two functions of 20,000 steps each leaves the host holding 1.0–1.4 MiB
/// of a peak of 83–96 MiB on an idle machine, and up to 17 MiB (a fifth)
/// with both cores busy, as beside other tests: what the allocator keeps
/// then depends on how the compile's work fell across threads. With the
/// contexts kept it holds 37–43 MiB (44–50% of the peak), idle or busy
/// (measured with the compile moved back onto the serving engine). A third
/// lies between the two.
#[cfg(target_os = "linux")]
#[test]
fn a_host_keeps_nothing_of_the_compiler_once_the_code_is_compiled() {
    let cranelift = "compiler = \"cranelift\"";
    holds_at_most_a_share_of_the_compiles_peak(cranelift, &bulky_agent(2, 20_000), "new version serving", 3);
}
