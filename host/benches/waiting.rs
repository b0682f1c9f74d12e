//! Many agents waiting at once: N invocations of the `llm-client` guest
//! started together, each asking a simulated provider whose answer takes 2 s,
//! so all N are alive at the same moment, each in its own instance, parked in
//! a host call. Every one must answer. The process's peak resident memory
//! (`VmHWM`) over its memory before they started, divided by N, is what one
//! waiting agent costs.
//!
//! `cargo bench -p paddock --bench waiting` (N = 20,000; `PADDOCK_BENCH_AGENTS=N`
//! for another). Past 10,000 the pool's memories reserve 256 MiB each rather
//! than 4 GiB (`engine.memory-reservation`; `PADDOCK_BENCH_RESERVATION` sets
//! another). One N per process, since the peak only rises. Figures also go
//! to `target/waiting-bench.json`.

#[path = "common/report.rs"]
mod report;

use paddock::config::Settings;
use paddock::runtime::{RunOptions, Runtime};
use paddock_test_guests::guests;
use std::path::Path;
use std::time::{Duration, Instant};

// The allocator the `paddock` binary runs on, so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How long the simulated provider takes to answer.
const LATENCY: Duration = Duration::from_secs(2);

/// A `/proc/self/status` field in KiB (`VmRSS`, `VmHWM`).
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux has /proc/self/status");
    let line = status.lines().find(|l| l.starts_with(field)).unwrap_or_else(|| panic!("no {field} in status"));
    line.split_whitespace().nth(1).and_then(|kib| kib.parse().ok()).expect("a number of kB")
}

fn host(dir: &Path, agents: u32) -> Runtime {
    let plugin = dir.join("plugins/client");
    std::fs::create_dir_all(&plugin).expect("a temporary folder is writable");
    let manifest = format!(
        "name = \"client\"\nversion = \"1.0.0\"\ncomponent = {:?}\n[limits]\ntimeout = \"30s\"\n[capabilities]\nroutes = [\"slow\"]\n",
        guests::LLM_CLIENT
    );
    std::fs::write(plugin.join("agent.toml"), manifest).expect("a temporary folder is writable");
    // Slots for every agent. Each slot reserves address space for two
    // memories, 4 GiB each by default: past ~11,000 slots that is more than
    // a 47-bit address space holds, so a bigger pool reserves less a memory.
    let reservation = std::env::var("PADDOCK_BENCH_RESERVATION")
        .ok()
        .or_else(|| (agents > 10_000).then(|| "256MiB".to_string()))
        .map_or(String::new(), |r| format!("memory-reservation = {r:?}\n"));
    let toml = format!(
        "[engine]\nmax-instances = {agents}\n{reservation}[ceiling]\nmemory = \"64MiB\"\n[limits]\nmemory = \"64MiB\"\n\
         [host]\nplugins = {:?}\ncomponent-dirs = [{:?}]\nledger = \"memory\"\nplugin-state = \"memory\"\ncode-cache = false\n\
         [providers.slow]\nkind = \"simulated\"\nlatency = \"{}ms\"\n\
         [routes.slow]\ntargets = [{{ provider = \"slow\", model = \"m\" }}]\n",
        dir.join("plugins").display().to_string(),
        Path::new(guests::LLM_CLIENT).parent().expect("a component has a folder"),
        LATENCY.as_millis(),
    );
    Runtime::new(Settings::parse(&toml, &dir.join("paddock.toml")).expect("bench settings are valid"))
        .expect("the engine starts")
}

fn main() {
    paddock::cli::on_mimalloc();
    let agents: u32 = std::env::var("PADDOCK_BENCH_AGENTS").ok().and_then(|n| n.parse().ok()).unwrap_or(20_000);
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    let dir = tempfile::tempdir().expect("a temporary folder");
    let rt = host(dir.path(), agents);
    let agent = rt.load("client").expect("the llm-client guest loads");
    rt.wait_optimized(std::time::Duration::from_secs(600));
    let input = r#"{"op":"complete","route":"slow","prompt":"wait with me","max_tokens":8}"#;
    // One run first, so what is made once (the route, the code) is in the baseline.
    let first = tokio.block_on(rt.run(&agent, input, &RunOptions::default())).expect("options are valid");
    first.result.expect("one agent answers");
    let before = status_kib("VmRSS:");

    let started = Instant::now();
    let outcomes = tokio.block_on(async {
        let runs = (0..agents).map(|_| {
            let (rt, agent) = (rt.clone(), agent.clone());
            tokio::spawn(async move { rt.run(&agent, input, &RunOptions::default()).await })
        });
        futures_util::future::join_all(runs.collect::<Vec<_>>()).await
    });
    let took = started.elapsed();
    let peak = status_kib("VmHWM:");
    let mut answered = 0u32;
    let mut first_failure = None;
    for outcome in outcomes {
        match outcome.expect("no invocation panics").map(|o| o.result) {
            Ok(Ok(_)) => answered += 1,
            Ok(Err(e)) => first_failure = first_failure.or(Some(e.to_string())),
            Err(e) => first_failure = first_failure.or(Some(e.to_string())),
        }
    }
    let per_agent = (peak.saturating_sub(before)) as f64 / f64::from(agents);
    println!(
        "waiting/{agents}: {answered} of {agents} answered in {:.2} s (each waited {} s); peak RSS {:.2} GiB \
         ({:.0} MiB before they started): {per_agent:.0} KiB a waiting agent",
        took.as_secs_f64(),
        LATENCY.as_secs(),
        peak as f64 / (1 << 20) as f64,
        before as f64 / 1024.0,
    );
    if let Some(why) = &first_failure {
        println!("waiting/{agents}: the first failure: {why}");
    }
    report::write(
        "waiting",
        &serde_json::json!({
            "agents": agents,
            "answered": answered,
            "seconds": took.as_secs_f64(),
            "peak_rss_kib": peak,
            "rss_before_kib": before,
            "kib_per_waiting_agent": per_agent,
        }),
    );
}
