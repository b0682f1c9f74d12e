//! The flow engine's overhead per step: a flow of 100 no-op agent steps (a
//! sequence) and a 1,000-way fan-out (parallel for-each), against the same
//! invocations made directly with `Runtime::run`. The difference per step is
//! what the engine adds: checkpoints before and after, the journal, input
//! rendering, output parsing, events. On the memory store (the goal is ≤ 100
//! µs a step), on the durable SQLite store and, when PostgreSQL is installed,
//! on a database of a throwaway local cluster.
//!
//! `cargo bench -p paddock --bench flows` (figures also in `target/flows-bench.json`);
//! `PADDOCK_BENCH_STORES=sqlite` measures only the stores it lists (memory,
//! sqlite, postgres, postgres-queue), and `PADDOCK_BENCH_SHAPES=sequence` only
//! the shapes it lists (sequence, fanout), for a profile of one;
//! `PADDOCK_BENCH_ROUNDS=20` runs 20 rounds of each (7 unless set). A step's or
//! an item's figure is the mean over the rounds, so it carries its share of
//! the SQLite log's copies into the file; the sequence's median round is
//! printed beside it.
//! `PADDOCK_BENCH_ENGINE` is the TOML of the `[engine]` table (and tables after
//! it) in place of `max-instances = 1100`: under valgrind, which cannot reserve
//! that pool, the sequence alone with `compiler = "cranelift"`, `max-instances
//! = 8`, `memory-reservation = "64MiB"` and `[ceiling]` `memory = "32MiB"`.

#[path = "common/report.rs"]
mod report;

use paddock::config::Settings;
use paddock::flow::{Flow, FlowStore, Flows, MemoryStore, RunStatus, Start};
use paddock::runtime::{RunOptions, Runtime};
use paddock_test_guests::guests;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

// The allocator the `paddock` binary runs on, so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Rounds of each shape: `PADDOCK_BENCH_ROUNDS`, else 7. A round of the
/// sequence is 100 steps, so a store's log fills and is copied into its file
/// once every few rounds: the mean counts those copies, the median round may not.
fn rounds() -> usize {
    std::env::var("PADDOCK_BENCH_ROUNDS").ok().and_then(|r| r.parse().ok()).filter(|&n| n > 0).unwrap_or(7)
}

fn sequence(n: usize) -> String {
    let names: Vec<String> = (0..n).map(|i| format!("\"s{i}\"")).collect();
    let mut spec =
        format!("[flow]\nname = \"seq\"\n[steps.main]\nkind = \"sequence\"\nsteps = [{}]\n", names.join(", "));
    for i in 0..n {
        spec.push_str(&format!("[steps.s{i}]\nagent = \"noop\"\ninput = {{}}\n"));
    }
    spec
}

const FANOUT: &str = "[flow]\nname = \"fan\"\n[steps.main]\nkind = \"parallel\"\nfor-each = \"input\"\ndo = \"item\"\nmax-concurrency = 1000\n[steps.item]\nagent = \"noop\"\n";

/// CPU time this process has used, every thread's, user and system.
fn cpu() -> Duration {
    // SAFETY: getrusage only writes the struct it is handed.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, &mut usage), 0);
        usage
    };
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

fn mean(xs: &[Duration]) -> Duration {
    xs.iter().sum::<Duration>() / xs.len().max(1) as u32
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

/// Direct invocations, the baseline: 100 one after another; 1,000 at once
/// (when the fan-out is measured). Each one's median time.
async fn direct(rt: &Runtime, agent: &Arc<paddock::runtime::Agent>, fanout: bool) -> (Duration, Duration) {
    let mut direct_seq = Vec::new();
    let mut direct_fan = Vec::new();
    for _ in 0..rounds() {
        let t = Instant::now();
        for _ in 0..100 {
            rt.run(agent, "{}", &RunOptions::default()).await.unwrap().result.unwrap();
        }
        direct_seq.push(t.elapsed() / 100);
        if !fanout {
            continue;
        }
        let t = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..1000 {
            let (rt, agent) = (rt.clone(), agent.clone());
            set.spawn(async move { rt.run(&agent, "{}", &RunOptions::default()).await.unwrap().result.unwrap() });
        }
        while set.join_next().await.is_some() {}
        direct_fan.push(t.elapsed() / 1000);
    }
    let base_seq = median(direct_seq);
    if !fanout {
        println!("direct invocation: {base_seq:?} each in a row");
        return (base_seq, Duration::ZERO);
    }
    let base_fan = median(direct_fan);
    println!("direct invocation: {base_seq:?} each in a row; {base_fan:?} each, 1000 at once");
    (base_seq, base_fan)
}

type Times = (Vec<Duration>, Vec<Duration>, Vec<Duration>);

/// A store's line and figures from its times (a sequence's step and its
/// CPU, a fan-out's item) against the direct invocations' `base`.
fn summary(
    label: &str,
    (seq, seq_cpu, fan): Times,
    (base_seq, base_fan): (Duration, Duration),
) -> (String, serde_json::Map<String, serde_json::Value>) {
    let over = |a: Duration, b: Duration| a.saturating_sub(b).as_secs_f64() * 1e6;
    let mut figures = serde_json::Map::new();
    let mut line = format!("{label} store:");
    if !seq.is_empty() {
        let (seq_mean, seq_cpu) = (mean(&seq), mean(&seq_cpu));
        let seq_median = median(seq);
        line.push_str(&format!(
            " 100-step sequence {seq_mean:.1?} a step, {:.1} µs of CPU (engine overhead {:.1} µs; median round {seq_median:.1?});",
            seq_cpu.as_secs_f64() * 1e6,
            over(seq_mean, base_seq)
        ));
        figures.insert("sequence_step_us".into(), json!(seq_mean.as_secs_f64() * 1e6));
        figures.insert("sequence_step_median_us".into(), json!(seq_median.as_secs_f64() * 1e6));
        figures.insert("sequence_step_cpu_us".into(), json!(seq_cpu.as_secs_f64() * 1e6));
        figures.insert("sequence_overhead_us".into(), json!(over(seq_mean, base_seq)));
    }
    if !fan.is_empty() {
        let fan = mean(&fan);
        line.push_str(&format!(" 1,000-way fan-out {fan:?} an item (overhead {:.1} µs)", over(fan, base_fan)));
        figures.insert("fanout_item_us".into(), json!(fan.as_secs_f64() * 1e6));
        figures.insert("fanout_overhead_us".into(), json!(over(fan, base_fan)));
    }
    (line, figures)
}

fn main() {
    paddock::cli::on_mimalloc();
    let tokio = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("plugins/noop");
    std::fs::create_dir_all(&plugin).unwrap();
    std::fs::write(
        plugin.join("agent.toml"),
        format!("name = \"noop\"\nversion = \"1.0.0\"\ncomponent = {:?}\n", guests::ECHO),
    )
    .unwrap();
    let toml = format!(
        "[host]\nplugins = {:?}\ncomponent-dirs = [{:?}]\nledger = \"memory\"\nplugin-state = \"memory\"\ncode-cache = false\n\
         flows = \"memory\"\n[engine]\n{}\n",
        dir.path().join("plugins").display().to_string(),
        // The test guests' build folder holds the component the plugin names.
        std::path::Path::new(guests::ECHO).parent().expect("a component has a folder"),
        std::env::var("PADDOCK_BENCH_ENGINE").unwrap_or_else(|_| "max-instances = 1100".into()),
    );
    let settings = Settings::parse(&toml, &dir.path().join("paddock.toml")).unwrap();
    let mut report = serde_json::Map::new();
    let only = std::env::var("PADDOCK_BENCH_STORES").ok();
    let wanted = |label: &str| only.as_deref().is_none_or(|o| o.split(',').any(|w| w.trim() == label));
    let shapes = std::env::var("PADDOCK_BENCH_SHAPES").ok();
    let shape = |label: &str| shapes.as_deref().is_none_or(|o| o.split(',').any(|w| w.trim() == label));
    let (run_sequence, run_fanout) = (shape("sequence"), shape("fanout"));
    tokio.block_on(async {
        let rt = Runtime::new(settings).unwrap();
        let agent = rt.load("noop").unwrap();
        rt.wait_optimized(std::time::Duration::from_secs(600));
        type Queue = Option<Arc<dyn paddock::flow::work::WorkQueue>>;
        let mut stores: Vec<(&str, Arc<dyn FlowStore>, Queue)> = vec![
            ("memory", Arc::new(MemoryStore::default()), None),
            (
                "sqlite",
                Arc::new(paddock::flow::sqlite::SqliteStore::open(&dir.path().join("flows.sqlite")).unwrap()),
                None,
            ),
        ];
        // A throwaway local cluster (fsync off, as the tests make it): the cost of the round trips. The
        // fan-out's items run in the process, or go through the work queue every host claims from (this
        // host alone claiming them, as `paddock flow run` does).
        let pg = (wanted("postgres") || wanted("postgres-queue"))
            .then(|| paddock_postgres::testing::database("flows_bench"));
        if let Some(pg) = pg.flatten() {
            let store = Arc::new(paddock::flow::postgres::PostgresStore::open(pg).unwrap());
            stores.push(("postgres", store.clone(), None));
            stores.push(("postgres-queue", store.clone(), Some(store)));
        }
        let (base_seq, base_fan) = direct(&rt, &agent, run_fanout).await;
        let mut direct_us = json!({"sequence": base_seq.as_secs_f64() * 1e6});
        if run_fanout {
            // Measured only with the fan-out: no figure for a baseline skipped.
            direct_us["fanout"] = json!(base_fan.as_secs_f64() * 1e6);
        }
        report.insert("direct_us".into(), direct_us);
        for (label, store, queue) in stores.into_iter().filter(|s| wanted(s.0)) {
            let flows = match queue {
                Some(queue) => Flows::new(rt.clone(), store).with_work_queue(queue),
                None => Flows::new(rt.clone(), store),
            };
            let (mut seq, mut seq_cpu) = (Vec::new(), Vec::new());
            let mut fan = Vec::new();
            let items: Vec<u32> = (0..1000).collect();
            for _ in 0..rounds() {
                if run_sequence {
                    let flow = Flow::parse(&sequence(100), "seq.toml").unwrap();
                    let (t, used) = (Instant::now(), cpu());
                    let r = flows.start(flow, "seq.toml", json!({}), Start::default()).await.unwrap();
                    assert_eq!(r.status, RunStatus::Succeeded, "{:?}", r.error);
                    seq.push(t.elapsed() / 100);
                    seq_cpu.push((cpu() - used) / 100);
                }
                if !run_fanout {
                    continue;
                }
                let flow = Flow::parse(FANOUT, "fan.toml").unwrap();
                let t = Instant::now();
                let r = flows.start(flow, "fan.toml", json!(items), Start::default()).await.unwrap();
                assert_eq!(r.status, RunStatus::Succeeded, "{:?}", r.error);
                fan.push(t.elapsed() / 1000);
            }
            let (line, figures) = summary(label, (seq, seq_cpu, fan), (base_seq, base_fan));
            println!("{line}");
            report.insert(label.into(), serde_json::Value::Object(figures));
        }
    });
    report::write("flows", &serde_json::Value::Object(report));
}
