//! What one invocation costs: a fresh store from the cached pre-instance plus
//! `run` of the `hello` plugin; one guest→host blackboard `get`, `put` and
//! compare-and-swap; and the blackboard service on its own.
//!
//! `cargo bench -p paddock --bench invoke` (or `-- blackboard/` for the board only)

use criterion::{Criterion, criterion_group, criterion_main};
use paddock::blackboard::{Blackboard, BoardLimits, RedbBackend, Writer};
use paddock::config::Settings;
use paddock::runtime::{RunOptions, Runtime};
use paddock_test_guests::guests;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn runtime(pooling: bool) -> Runtime {
    // Usage in memory: the ledger's disk writer is measured by the ledger bench.
    let toml = format!(
        "[host]\nledger = \"memory\"\nplugin-state = \"memory\"\ncode-cache = false\n[engine]\npooling = {pooling}\nmax-instances = 64\n"
    );
    Runtime::new(Settings::parse(&toml, Path::new("bench/paddock.toml")).unwrap()).unwrap()
}

fn invoke(c: &mut Criterion) {
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let mut group = c.benchmark_group("invoke");
    for (label, pooling) in [("hello_pooling", true), ("hello_on_demand", false)] {
        let rt = runtime(pooling);
        let agent = rt.load(guests::HELLO).unwrap();
        let options = RunOptions::default();
        group.bench_function(label, |b| {
            b.to_async(&tokio).iter(|| async {
                let outcome = rt.run(&agent, r#"{"name":"ada"}"#, &options).await.unwrap();
                assert!(outcome.result.is_ok());
            })
        });
    }
    let rt = runtime(true);
    let echo = rt.load(guests::ECHO).unwrap();
    group.bench_function("echo_pooling", |b| {
        b.to_async(&tokio).iter(|| async { rt.run(&echo, "{}", &RunOptions::default()).await.unwrap().result.unwrap() })
    });
    group.finish();
}

fn guest_ops(c: &mut Criterion) {
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let rt = runtime(true);
    let agent = rt.load(guests::BENCH_BOARD).unwrap();
    for op in ["get", "put", "cas"] {
        c.bench_function(&format!("blackboard/guest_{op}"), |b| {
            // The guest times its own loop of `iters` calls, so the clock sees only the calls.
            b.iter_custom(|iters| {
                let input = format!(r#"{{"op":"{op}","n":{iters}}}"#);
                let outcome = tokio.block_on(rt.run(&agent, &input, &RunOptions::default())).unwrap();
                let out: serde_json::Value = serde_json::from_str(&outcome.result.unwrap()).unwrap();
                assert_eq!(out["done"].as_u64(), Some(iters));
                Duration::from_nanos(out["nanos"].as_u64().unwrap())
            })
        });
    }
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
    let backend = RedbBackend::open(&dir.path().join("bench.redb")).unwrap();
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
