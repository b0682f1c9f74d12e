//! Agents in four languages, from `paddock new` to a running agent: component
//! size, build time (a clean folder, and again after an edit), first load
//! (compile and store in the code cache; the median of five, each with an
//! empty code cache), cached load (a new host mapping the
//! stored code), on a tiered host (the default) the time until the optimized
//! code serves, and instantiate + run (the agent of `paddock new`: a
//! blackboard compare-and-swap and a call to the simulated provider), split
//! into the sandbox's part (instantiating, and tearing down: the slot's
//! memories and tables reset) and the call (the guest's own work and its
//! host calls).
//!
//! `cargo bench -p paddock --bench languages [-- LANG...]`; figures also go to
//! `target/languages-bench.json`.
//! `PADDOCK_BENCH_COMPILER=cranelift` or `winch` sets `engine.compiler` (default: tiered). A language whose
//! toolchain is missing is reported and left out (`.ci/run` installs them all).

#[path = "common/cli.rs"]
mod cli;
#[path = "common/report.rs"]
mod report;

use cli::paddock;
use paddock::config::Settings;
use paddock::runtime::{RunOptions, Runtime};
use paddock::toolchain::Lang;
use std::path::Path;
use std::time::{Duration, Instant};

// The allocator the `paddock` binary runs on, so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Invocations timed per language, after `WARMUP` untimed ones.
const RUNS: usize = 300;
const WARMUP: usize = 20;
/// Hosts started to time a cached load.
const CACHED_LOADS: usize = 5;
/// First loads timed: on the host every later figure comes from, then each
/// on a one-shot host with an empty code cache of its own (no optimizing
/// compile queued behind it; its baseline code stored before the next).
const FIRST_LOADS: usize = 5;

/// The `[engine]` line `PADDOCK_BENCH_COMPILER` asks for (none: the default, tiered).
fn compiler() -> String {
    std::env::var("PADDOCK_BENCH_COMPILER")
        .ok()
        .filter(|c| !c.is_empty())
        .map_or(String::new(), |c| format!("[engine]\ncompiler = {c:?}\n"))
}

/// A host of the plugins in `dir`, its code cache in `dir`'s folder `code`.
fn host(dir: &Path, code: &str) -> Runtime {
    let toml = format!(
        "[host]\nledger = \"memory\"\nplugin-state = \"memory\"\nplugins = {:?}\ncode-cache = {:?}\n{}",
        dir.join("plugins").display().to_string(),
        dir.join(code).display().to_string(),
        compiler()
    );
    Runtime::new(Settings::parse(&toml, &dir.join("paddock.toml")).expect("bench settings are valid"))
        .expect("the engine starts")
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn median(mut times: Vec<Duration>) -> Duration {
    percentile(&mut times, 50)
}

/// The `p`th percentile of `times` (sorted here).
fn percentile(times: &mut [Duration], p: usize) -> Duration {
    times.sort();
    times[times.len() * p / 100]
}

fn main_source(lang: Lang) -> &'static str {
    match lang {
        Lang::Rust => "src/lib.rs",
        Lang::Python => "app.py",
        Lang::Js => "app.js",
        Lang::C => "src/agent.c",
    }
}

fn measure(lang: Lang, tokio: &tokio::runtime::Runtime) -> Result<serde_json::Value, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let name = format!("bench-{}", lang.name());
    paddock(dir.path(), &["new", &name, "--lang", lang.name()])?;
    let clean_build = paddock(dir.path(), &["build", &name])?;
    // An edit: the main source changes (a comment), so every toolchain rebuilds.
    let source = dir.path().join("plugins").join(&name).join(main_source(lang));
    let mut text = std::fs::read_to_string(&source).map_err(|e| e.to_string())?;
    text.push_str(if lang == Lang::Python { "\n# edited\n" } else { "\n// edited\n" });
    std::fs::write(&source, text).map_err(|e| e.to_string())?;
    let rebuild = paddock(dir.path(), &["build", &name])?;

    tokio.block_on(async {
        let rt = host(dir.path(), "code");
        let started = Instant::now();
        let agent = rt.load(&name).map_err(|e| e.to_string())?;
        let mut first_loads = vec![started.elapsed()];
        // Every later figure is the optimized code's.
        rt.wait_optimized(Duration::from_secs(600));
        let optimized = started.elapsed();
        let size = std::fs::metadata(&agent.component).map_err(|e| e.to_string())?.len();
        for i in 1..FIRST_LOADS {
            let fresh = host(dir.path(), &format!("code-{i}"));
            fresh.set_one_shot();
            let started = Instant::now();
            fresh.load(&name).map_err(|e| e.to_string())?;
            first_loads.push(started.elapsed());
            fresh.wait_background(Duration::from_secs(600));
        }
        let first_each: Vec<f64> = first_loads.iter().map(|d| ms(*d)).collect();
        let (first_min, first_max) = first_each.iter().fold((f64::MAX, 0.0_f64), |(l, h), &t| (l.min(t), h.max(t)));

        let mut cached = Vec::new();
        for _ in 0..CACHED_LOADS {
            let again = host(dir.path(), "code");
            let started = Instant::now();
            again.load(&name).map_err(|e| e.to_string())?;
            cached.push(started.elapsed());
        }

        let options = RunOptions::default();
        let (mut runs, mut sandbox, mut calls) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..WARMUP + RUNS {
            let started = Instant::now();
            let outcome = rt.run(&agent, r#"{"name":"ada"}"#, &options).await.map_err(|e| e.to_string())?;
            let took = started.elapsed();
            outcome.result.map_err(|e| e.to_string())?;
            if i >= WARMUP {
                runs.push(took);
                sandbox.push(outcome.phases.instantiate + outcome.phases.teardown);
                calls.push(outcome.phases.call);
            }
        }
        let (run, p99) = (percentile(&mut runs, 50), percentile(&mut runs, 99));
        let (sandbox, sandbox_p99) = (percentile(&mut sandbox, 50), percentile(&mut sandbox, 99));
        let (call, call_p99) = (percentile(&mut calls, 50), percentile(&mut calls, 99));
        let cached = median(cached);
        let first_median = ms(median(first_loads));
        println!(
            "languages/{:<6} size {:>8.1} KiB | build {:>5.1} s, after an edit {:>5.1} s | first load {:>7.1} ms ({:.1}–{:.1} ms, {FIRST_LOADS} loads; optimized {:>7.1} ms), cached {:>5.1} ms | instantiate + run p50 {:>8.1} µs, p99 {:>8.1} µs",
            lang.name(),
            size as f64 / 1024.0,
            clean_build.as_secs_f64(),
            rebuild.as_secs_f64(),
            first_median,
            first_min,
            first_max,
            ms(optimized),
            ms(cached),
            us(run),
            us(p99),
        );
        println!(
            "languages/{:<6} of which the sandbox (instantiate + teardown) p50 {:>8.1} µs, p99 {:>8.1} µs | the call (guest and host calls) p50 {:>8.1} µs, p99 {:>8.1} µs",
            lang.name(),
            us(sandbox),
            us(sandbox_p99),
            us(call),
            us(call_p99),
        );
        Ok(serde_json::json!({
            "component_bytes": size,
            "build_s": clean_build.as_secs_f64(),
            "rebuild_after_edit_s": rebuild.as_secs_f64(),
            "first_load_ms": first_median,
            "first_loads_ms": first_each,
            "optimized_after_ms": ms(optimized),
            "cached_load_ms": ms(cached),
            "run_p50_us": us(run),
            "run_p99_us": us(p99),
            "sandbox_p50_us": us(sandbox),
            "sandbox_p99_us": us(sandbox_p99),
            "call_p50_us": us(call),
            "call_p99_us": us(call_p99),
        }))
    })
}

fn main() {
    paddock::cli::on_mimalloc();
    // `cargo bench` passes `--bench`; anything else names languages.
    let asked: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    let mut report = serde_json::Map::new();
    for lang in Lang::ALL {
        if !asked.is_empty() && !asked.iter().any(|a| a == lang.name()) {
            continue;
        }
        match measure(lang, &tokio) {
            Ok(figures) => {
                report.insert(lang.name().to_string(), figures);
            }
            Err(why) => println!("languages/{}: skipped: {}", lang.name(), why.trim_end()),
        }
    }
    report::write("languages", &serde_json::Value::Object(report));
}
