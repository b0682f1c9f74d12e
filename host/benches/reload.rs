//! Hot reload: how long from writing a new component to the new version
//! serving, and how long a host takes to start with 50 plugins, with the
//! compiled-code cache cold and warm.
//!
//! `cargo bench -p paddock --bench reload`; figures also go to `target/reload-bench.json`.
//! `PADDOCK_BENCH_COMPILER=cranelift` or `winch` sets `engine.compiler` (default: tiered).

#[path = "common/report.rs"]
mod report;

use paddock::config::Settings;
use paddock::plugins::Manifest;
use paddock::plugins::cache::ContentHash;
use paddock::runtime::{Reload, Runtime};
use paddock_test_guests::{guests, variant};
use std::path::Path;
use std::time::{Duration, Instant};

const REPLACEMENTS: u32 = 40;
const PLUGINS: u32 = 50;

/// The `[engine]` line `PADDOCK_BENCH_COMPILER` asks for (none: the default, tiered).
fn compiler() -> String {
    std::env::var("PADDOCK_BENCH_COMPILER")
        .ok()
        .filter(|c| !c.is_empty())
        .map_or(String::new(), |c| format!("[engine]\ncompiler = {c:?}\n"))
}

fn host(dir: &Path, cache: &Path) -> Runtime {
    let toml = format!(
        "[host]\nledger = \"memory\"\nplugin-state = \"memory\"\nplugins = {:?}\ncode-cache = {:?}\n{}",
        dir.join("plugins").display().to_string(),
        cache.display().to_string(),
        compiler()
    );
    Runtime::new(Settings::parse(&toml, &dir.join("paddock.toml")).expect("bench settings are valid"))
        .expect("the engine starts")
}

fn write_plugin(plugins: &Path, name: &str, wasm: &[u8]) {
    let folder = plugins.join(name);
    std::fs::create_dir_all(&folder).expect("a temporary folder is writable");
    std::fs::write(folder.join("agent.wasm"), wasm).expect("a temporary folder is writable");
    let manifest = format!("name = {name:?}\nversion = \"1.0.0\"\ncomponent = \"agent.wasm\"\n");
    std::fs::write(folder.join("agent.toml"), manifest).expect("a temporary folder is writable");
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Writes a new build of `hello` in place, `REPLACEMENTS` times, and times
/// each until the host reports the new version serving.
async fn write_to_serving(debounce: Duration) -> Vec<Duration> {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let base = std::fs::read(guests::HELLO).expect("hello is built");
    write_plugin(&dir.path().join("plugins"), "hello", &base);
    let manifest = Manifest::load(&dir.path().join("plugins/hello/agent.toml")).expect("the manifest parses");
    let rt = host(dir.path(), &dir.path().join("code"));
    let watch = rt.watch(debounce).await.expect("the plugins folder is watched");
    let mut events = watch.events();
    let mut took = Vec::new();
    for n in 1..=REPLACEMENTS {
        let wasm = variant(&base, n);
        let expected = manifest.version_id(&ContentHash::of(&wasm));
        let started = Instant::now();
        std::fs::write(dir.path().join("plugins/hello/agent.wasm"), &wasm).expect("writable");
        loop {
            match events.recv().await.expect("events flow") {
                (_, Reload::Swapped { to, .. }) if *to == *expected => break,
                _ => {}
            }
        }
        took.push(started.elapsed());
        assert_eq!(*rt.load("hello").expect("serving").version, *expected);
        // Let the folder settle, so each write is a burst of its own.
        tokio::time::sleep(debounce * 2).await;
    }
    took.sort();
    took
}

/// Starts a host over `PLUGINS` distinct plugins and loads them all: how
/// long until every one serves, and (on a tiered host) until every one
/// serves optimized code.
async fn start(dir: &Path, cache: &Path) -> (Duration, Duration) {
    let started = Instant::now();
    let rt = host(dir, cache);
    let loaded = rt.sync().await;
    let took = started.elapsed();
    assert_eq!(loaded.len(), PLUGINS as usize, "every plugin loaded");
    assert!(rt.wait_optimized(Duration::from_secs(600)), "optimized within 600 s");
    (took, started.elapsed())
}

fn main() {
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    let mut report = serde_json::Map::new();
    for debounce_ms in [100u64, 50, 20] {
        let took = tokio.block_on(write_to_serving(Duration::from_millis(debounce_ms)));
        let (p50, p99) = (percentile(&took, 0.5), percentile(&took, 0.99));
        println!(
            "reload/write_to_serving debounce {debounce_ms} ms: p50 {:.1} ms, p99 {:.1} ms ({REPLACEMENTS} replacements of hello, {} KB)",
            ms(p50),
            ms(p99),
            std::fs::metadata(guests::HELLO).map_or(0, |m| m.len() / 1024)
        );
        report.insert(
            format!("write_to_serving_debounce_{debounce_ms}ms"),
            serde_json::json!({ "p50_ms": ms(p50), "p99_ms": ms(p99), "replacements": REPLACEMENTS }),
        );
    }

    let dir = tempfile::tempdir().expect("a temporary folder");
    let base = std::fs::read(guests::HELLO).expect("hello is built");
    for n in 0..PLUGINS {
        write_plugin(&dir.path().join("plugins"), &format!("p{n:02}"), &variant(&base, 1000 + n));
    }
    let (mut cold, mut optimized, mut warm) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..3 {
        let cache = dir.path().join(format!("code-{round}"));
        let (serving, all_optimized) = tokio.block_on(start(dir.path(), &cache));
        cold.push(serving);
        optimized.push(all_optimized);
        for _ in 0..3 {
            warm.push(tokio.block_on(start(dir.path(), &cache)).0);
        }
    }
    cold.sort();
    optimized.sort();
    warm.sort();
    let (cold, optimized, warm) = (percentile(&cold, 0.5), percentile(&optimized, 0.5), percentile(&warm, 0.5));
    println!(
        "reload/start_{PLUGINS}_plugins: cold cache {:.0} ms (all optimized after {:.0} ms), warm cache {:.1} ms (median; {:.1}x)",
        ms(cold),
        ms(optimized),
        ms(warm),
        cold.as_secs_f64() / warm.as_secs_f64()
    );
    report.insert(
        format!("start_{PLUGINS}_plugins"),
        serde_json::json!({ "cold_ms": ms(cold), "optimized_ms": ms(optimized), "warm_ms": ms(warm) }),
    );
    report::write("reload", &serde_json::Value::Object(report));
}
