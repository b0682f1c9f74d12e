//! One durable agent step, end to end, at fixed rates: a one-step flow run
//! on the durable stores (flows, blackboard and ledger in SQLite, as a host
//! runs by default) whose agent is the one `paddock new` makes in Rust,
//! Python and JavaScript. Each run is a fresh sandbox, a blackboard
//! compare-and-swap, one LLM call through the gateway to a fake OpenAI
//! provider on 127.0.0.1, the journal of those host calls, and the run's
//! checkpoints (its start, the step's start, the step's end with its
//! journal, the run's end).
//!
//! For each language, 16 closed loops find the saturation; then each rate (a
//! percentage of it: `PADDOCK_BENCH_RATES`, default 25,50,75) is sent in an
//! open loop (`common/openloop.rs`) for `PADDOCK_BENCH_SECONDS` (default 3)
//! after half a second of warm-up, and the run's latency is reported at
//! p50, p99 and p99.9. The fake and the host share the machine's cores.
//!
//! `cargo bench -p paddock --bench step [-- LANG...]` (figures also in
//! `target/step-bench.json`); `PADDOCK_BENCH_MEMORY=1` keeps flows, board and
//! ledger in memory instead, to see what durability costs. A language whose toolchain is missing is
//! reported and left out (`.ci/run` installs them all).

#[path = "common/cli.rs"]
mod cli;
#[path = "common/openloop.rs"]
mod openloop;
#[path = "common/report.rs"]
mod report;

use cli::paddock;
use openloop::{AtRate, drive, numbers, saturation, us};
use paddock::config::Settings;
use paddock::flow::sqlite::SqliteStore;
use paddock::flow::{Flow, FlowStore, Flows, MemoryStore, RunStatus, Start};
use paddock::runtime::Runtime;
use paddock::toolchain::Lang;
use paddock_fake_provider::FakeProvider;
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

// The allocator the `paddock` binary runs on, so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const WARMUP: Duration = Duration::from_millis(500);
const LOOPS: usize = 16;

/// Whether flows, board and ledger are kept in memory (`PADDOCK_BENCH_MEMORY=1`).
fn in_memory() -> bool {
    std::env::var("PADDOCK_BENCH_MEMORY").is_ok_and(|v| v == "1")
}

/// A host in `dir` on the durable stores (or all in memory), its route
/// `fast` going to the fake at `fake`.
fn host(dir: &Path, fake: &str) -> Runtime {
    let stores = match in_memory() {
        true => "ledger = \"memory\"\n[blackboard]\nstore = \"memory\"\n",
        false => "[blackboard]\nstore = \"durable\"\n",
    };
    let toml = format!(
        "[host]\nplugins = \"plugins\"\n{stores}\
         [providers.fake]\nkind = \"openai\"\nbase-url = \"{fake}/v1\"\n\
         [routes.fast]\ntargets = [{{ provider = \"fake\", model = \"m\" }}]\n"
    );
    Runtime::new(Settings::parse(&toml, &dir.join("paddock.toml")).expect("bench settings are valid"))
        .expect("the engine starts")
}

/// A call: one run of the one-step flow, under a name of its own (so the
/// blackboard writes do not race each other); whether it succeeded.
fn one_run(flows: Flows, agent: String) -> impl Fn() -> std::pin::Pin<Box<dyn Future<Output = bool> + Send>> + Clone {
    let n = Arc::new(AtomicU64::new(0));
    move || {
        let spec = format!("[flow]\nname = \"step\"\n[steps.main]\nagent = {agent:?}\n");
        let flow = Flow::parse(&spec, "step.toml").expect("the flow is valid");
        let input = json!({ "name": format!("u{}", n.fetch_add(1, Ordering::Relaxed)) });
        let flows = flows.clone();
        Box::pin(async move {
            match flows.start(flow, "step.toml", input, Start::default()).await {
                Ok(r) if r.status == RunStatus::Succeeded => {
                    r.output.is_some_and(|o| o["fun_fact"]["text"].is_string() && o["visits"] == 1)
                }
                _ => false,
            }
        })
    }
}

fn measure(lang: Lang, tokio: &tokio::runtime::Runtime, fake: &str) -> Result<serde_json::Value, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let name = format!("step-{}", lang.name());
    paddock(dir.path(), &["new", &name, "--lang", lang.name()])?;
    paddock(dir.path(), &["build", &name])?;
    let rt = host(dir.path(), fake);
    rt.load(&name).map_err(|e| e.to_string())?;
    rt.wait_optimized(std::time::Duration::from_secs(600));
    let store: Arc<dyn FlowStore> = match in_memory() {
        true => Arc::new(MemoryStore::default()),
        false => Arc::new(SqliteStore::open(&dir.path().join(".paddock/flows.sqlite")).map_err(|e| e.to_string())?),
    };
    let flows = Flows::new(rt.clone(), store);
    let call = one_run(flows, name.clone());
    if !tokio.block_on(call()) {
        return Err("the first run did not succeed".into());
    }
    let saturated = {
        let call = call.clone();
        tokio.block_on(saturation(LOOPS, WARMUP, Duration::from_secs(2), call))
    };
    println!("step/{:<6} saturation ({LOOPS} closed loops): {saturated:.0} runs/s", lang.name());
    let seconds = Duration::from_secs_f64(numbers("PADDOCK_BENCH_SECONDS", &[3.0])[0]);
    let mut rates = serde_json::Map::new();
    for pct in numbers("PADDOCK_BENCH_RATES", &[25.0, 50.0, 75.0]) {
        let at: AtRate = drive(tokio.handle(), saturated * pct / 100.0, WARMUP, seconds, call.clone());
        println!(
            "| {} | {pct:.0}% | {:.0} / {:.0} | {:.0} | {:.0} | {:.0} |{}",
            lang.name(),
            at.asked,
            at.sent,
            us(at.p50),
            us(at.p99),
            us(at.p999),
            if at.failed > 0 || at.overloaded {
                format!(" failed {}, overloaded {}", at.failed, at.overloaded)
            } else {
                String::new()
            }
        );
        rates.insert(format!("{pct:.0}%"), at.json());
    }
    Ok(json!({ "saturation_per_s": saturated, "rates": rates }))
}

fn main() {
    paddock::cli::on_mimalloc();
    // `cargo bench` passes `--bench`; anything else names languages.
    let asked: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let tokio =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio starts");
    let fake = tokio.block_on(FakeProvider::start()).expect("the fake provider starts");
    let mut report = serde_json::Map::new();
    println!("| agent | rate | asked / sent runs/s | p50 µs | p99 µs | p99.9 µs |\n|---|---|---|---|---|---|");
    for lang in [Lang::Rust, Lang::Python, Lang::Js] {
        if !asked.is_empty() && !asked.iter().any(|a| a == lang.name()) {
            continue;
        }
        match measure(lang, &tokio, &fake.url()) {
            Ok(figures) => {
                report.insert(lang.name().to_string(), figures);
            }
            Err(why) => println!("step/{}: skipped: {}", lang.name(), why.trim_end()),
        }
    }
    tokio.block_on(fake.shutdown());
    report::write("step", &serde_json::Value::Object(report));
}
