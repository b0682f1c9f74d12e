//! What one invocation costs: a fresh store from the cached pre-instance plus
//! `run` of the `hello` plugin, also recording its journal and replaying it;
//! one guest→host blackboard `get`, `put` and compare-and-swap, and a `get`
//! recorded and replayed; and the blackboard service on its own.
//!
//! `cargo bench -p paddock --bench invoke` (or `-- blackboard/` for the board only).
//! `PADDOCK_BENCH_ENGINE` is TOML added to the runtimes' `[engine]` table (and
//! tables after it): under valgrind, which cannot reserve the pool's default
//! address space, `memory-reservation = "64MiB"` with `[ceiling]` `memory =
//! "32MiB"`, and `compiler = "cranelift"` so no background compile is counted.

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use paddock::blackboard::{Blackboard, BoardLimits, SqliteBackend, Writer};
use paddock::config::Settings;
use paddock::journal::{Entry, Tape};
use paddock::runtime::{RunOptions, Runtime};
use paddock_test_guests::guests;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

// The allocator the `paddock` binary runs on, so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn runtime(pooling: bool) -> Runtime {
    // As the binary does, with its allocator.
    paddock::cli::on_mimalloc();
    // Usage in memory: the ledger's disk writer is measured by the ledger bench.
    let extra = std::env::var("PADDOCK_BENCH_ENGINE").unwrap_or_default();
    let toml = format!(
        "[host]\nledger = \"memory\"\nplugin-state = \"memory\"\ncode-cache = false\n[engine]\npooling = {pooling}\nmax-instances = 64\n{extra}\n"
    );
    Runtime::new(Settings::parse(&toml, Path::new("bench/paddock.toml")).unwrap()).unwrap()
}

/// Loads `spec`, and waits for its optimized code (a tiered host serves
/// Winch's first), so the figures are those of the code a host keeps serving.
fn optimized(rt: &Runtime, spec: &str) -> Arc<paddock::runtime::Agent> {
    let agent = rt.load(spec).unwrap();
    assert!(rt.wait_optimized(Duration::from_secs(600)), "optimized within 600 s");
    agent
}

fn invoke(c: &mut Criterion) {
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let mut group = c.benchmark_group("invoke");
    for (label, pooling) in [("hello_pooling", true), ("hello_on_demand", false)] {
        let rt = runtime(pooling);
        let agent = optimized(&rt, guests::HELLO);
        let options = RunOptions::default();
        group.bench_function(label, |b| {
            b.to_async(&tokio).iter(|| async {
                let outcome = rt.run(&agent, r#"{"name":"ada"}"#, &options).await.unwrap();
                assert!(outcome.result.is_ok());
            })
        });
    }
    // hello makes five journaled calls: two gets, a compare-and-swap, a put, an LLM call.
    let rt = runtime(true);
    let agent = optimized(&rt, guests::HELLO);
    let run = |journal: Arc<Tape>| {
        let options = RunOptions { journal: Some(journal), ..Default::default() };
        let (rt, agent) = (&rt, &agent);
        async move { assert!(rt.run(agent, r#"{"name":"ada"}"#, &options).await.unwrap().result.is_ok()) }
    };
    group.bench_function("hello_recording", |b| b.to_async(&tokio).iter(|| run(Tape::recording())));
    let tape = Tape::recording();
    tokio.block_on(run(tape.clone()));
    let entries = tape.entries();
    // The journal's copy for each replay is made outside the timing.
    group.bench_function("hello_replaying", |b| {
        b.to_async(&tokio).iter_batched(|| Tape::replaying(entries.clone()), run, BatchSize::SmallInput)
    });

    let echo = optimized(&rt, guests::ECHO);
    group.bench_function("echo_pooling", |b| {
        b.to_async(&tokio).iter(|| async { rt.run(&echo, "{}", &RunOptions::default()).await.unwrap().result.unwrap() })
    });
    group.finish();
}

fn guest_ops(c: &mut Criterion) {
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let rt = runtime(true);
    let agent = optimized(&rt, guests::BENCH_BOARD);
    // Runs `n` ops in one invocation; the guest times its own loop, so the clock sees only the calls.
    let timed = |op: &str, n: u64, journal: Option<Arc<Tape>>| {
        let input = format!(r#"{{"op":"{op}","n":{n}}}"#);
        let options = RunOptions { journal, ..Default::default() };
        let outcome = tokio.block_on(rt.run(&agent, &input, &options)).unwrap();
        let out: serde_json::Value = serde_json::from_str(&outcome.result.unwrap()).unwrap();
        assert_eq!(out["done"].as_u64(), Some(n));
        Duration::from_nanos(out["nanos"].as_u64().unwrap())
    };
    for op in ["get", "put", "cas"] {
        c.bench_function(&format!("blackboard/guest_{op}"), |b| b.iter_custom(|iters| timed(op, iters, None)));
    }
    // Journaled gets, in invocations of at most 10 000 so the journal stays under its cap.
    const BATCH: u64 = 10_000;
    let batches = |iters: u64, mut run: Box<dyn FnMut(u64) -> Duration + '_>| {
        (0..iters.div_ceil(BATCH)).map(|i| run(BATCH.min(iters - i * BATCH))).sum::<Duration>()
    };
    c.bench_function("blackboard/guest_get_recording", |b| {
        b.iter_custom(|iters| batches(iters, Box::new(|n| timed("get", n, Some(Tape::recording())))))
    });
    // A replay serves the guest's clock from the journal too, so its loop is
    // timed from the host: the whole invocation, instantiation included
    // (about 5 ns per get at 10 000 gets).
    let mut recorded: HashMap<u64, Vec<Entry>> = HashMap::new();
    c.bench_function("blackboard/guest_get_replaying", |b| {
        b.iter_custom(|iters| {
            batches(
                iters,
                Box::new(|n| {
                    let entries = recorded.entry(n).or_insert_with(|| {
                        let tape = Tape::recording();
                        timed("get", n, Some(tape.clone()));
                        tape.entries()
                    });
                    let options = RunOptions { journal: Some(Tape::replaying(entries.clone())), ..Default::default() };
                    let input = format!(r#"{{"op":"get","n":{n}}}"#);
                    let started = Instant::now();
                    let outcome = tokio.block_on(rt.run(&agent, &input, &options)).unwrap();
                    let elapsed = started.elapsed();
                    assert!(outcome.result.is_ok());
                    elapsed
                }),
            )
        })
    });
}

fn host_get(c: &mut Criterion) {
    let board = Blackboard::default();
    let ns = board.namespace("bench");
    let writer = Writer::new("bench", "bench");
    for i in 0..10_000 {
        ns.put(&format!("key/{i}"), b"0123456789abcdef", &writer).unwrap();
    }
    c.bench_function("blackboard/host_get", |b| b.iter(|| ns.get(std::hint::black_box("key/5000")).unwrap()));
    c.bench_function("blackboard/host_put", |b| b.iter(|| ns.put("key/5000", b"0123456789abcdef", &writer).unwrap()));
    c.bench_function("blackboard/host_cas", |b| {
        b.iter(|| {
            let current = ns.get("key/5000").unwrap().map_or(0, |e| e.revision);
            ns.compare_and_swap("key/5000", current, b"0123456789abcdef", &writer).unwrap()
        })
    });
}

fn durable(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let backend = SqliteBackend::open(&dir.path().join("bench.sqlite")).unwrap();
    let board = Blackboard::with_backend(BoardLimits::default(), Arc::new(backend));
    let ns = board.namespace("bench");
    let writer = Writer::new("bench", "bench");
    for i in 0..1_000 {
        ns.put(&format!("key/{i}"), b"0123456789abcdef", &writer).unwrap();
    }
    c.bench_function("blackboard/durable_get", |b| b.iter(|| ns.get(std::hint::black_box("key/500")).unwrap()));
    // Each put is one committed (fsynced) transaction.
    c.bench_function("blackboard/durable_put", |b| b.iter(|| ns.put("key/500", b"0123456789abcdef", &writer).unwrap()));
}

criterion_group!(benches, invoke, guest_ops, host_get, durable);
criterion_main!(benches);
