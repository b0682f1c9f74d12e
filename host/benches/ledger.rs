//! What the budget ledger adds to an LLM call: one `reserve` + `commit`
//! pair, with every kind of budget set (day and month tokens and cost,
//! requests and tokens per minute) on the tenant and on the agent, so each
//! pair runs every check. Measured on one thread and on two racing for the
//! same tenant, against a memory ledger, an SQLite one and, when PostgreSQL is
//! installed, one in a throwaway local cluster (where every pair is two
//! transactions, as on every host of a fleet).
//!
//! The SQLite ledger's writer thread runs beside the callers and is not
//! waited for inside the timed loops (calls never wait for the disk); each
//! sample ends with a `flush`, outside the timing, so the file keeps up.
//! Throughput is in pairs per second over all threads.
//!
//! `cargo bench -p paddock --bench ledger`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use paddock::core::clock::SystemClock;
use paddock::gateway::types::Tokens;
use paddock::gateway::{CallRecord, Caller, Estimate, Quota};
use paddock::quota::{Budget, Budgets, Ledger, LedgerStore};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Every budget set, none ever reached.
const ROOMY: Budget = Budget {
    tokens_per_day: Some(u64::MAX / 4),
    tokens_per_month: Some(u64::MAX / 4),
    cost_micros_per_day: Some(u64::MAX / 4),
    cost_micros_per_month: Some(u64::MAX / 4),
    requests_per_minute: Some(u32::MAX),
    tokens_per_minute: Some(u64::MAX / 4),
};

const ESTIMATE: Estimate = Estimate { input_tokens: 120, output_tokens: 256, cost_micros: 900 };

fn open(store: &LedgerStore) -> Arc<Ledger> {
    let mut budgets = Budgets::default();
    budgets.tenants.insert("acme".into(), ROOMY);
    for agent in ["agent-0", "agent-1"] {
        budgets.agents.insert(("acme".into(), agent.into()), ROOMY);
    }
    Ledger::open(store, budgets, Arc::new(SystemClock)).unwrap()
}

/// `pairs` reserve + commit pairs as agent number `n`.
fn run(ledger: &Ledger, n: usize, pairs: u64) {
    let caller = Caller { tenant: "acme".into(), agent: format!("agent-{n}").into() };
    let record = CallRecord {
        tenant: caller.tenant.clone(),
        agent: caller.agent.clone(),
        route: "fast".into(),
        provider: "simulated".into(),
        model: "m".into(),
        attempts: 1,
        latency: Duration::from_millis(5),
        tokens: Tokens { input: 120, output: 200 },
        cost_micros: 800,
        outcome: "ok".into(),
        streamed: false,
    };
    for _ in 0..pairs {
        let reservation = ledger.reserve(&caller, "fast", ESTIMATE).unwrap();
        ledger.commit(reservation, &record);
    }
}

fn pairs(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut stores =
        vec![("memory", LedgerStore::Memory), ("sqlite", LedgerStore::Sqlite(dir.path().join("ledger.sqlite")))];
    // A throwaway local cluster (fsync off): what the two transactions of a call cost, not a disk.
    if let Some(url) = paddock_postgres::testing::database_url("ledger_bench") {
        stores.push(("postgres", LedgerStore::Postgres(paddock_postgres::Settings::new(&url))));
    }
    let mut group = c.benchmark_group("ledger");
    group.throughput(Throughput::Elements(1)).measurement_time(Duration::from_secs(4));
    for (label, store) in &stores {
        let ledger = open(store);
        for threads in [1, 2] {
            group.bench_function(format!("{label}/{threads}-thread"), |b| {
                b.iter_custom(|iters| {
                    let per_thread = iters.div_ceil(threads as u64);
                    let start = Instant::now();
                    std::thread::scope(|s| {
                        for n in 0..threads {
                            let ledger = &ledger;
                            s.spawn(move || run(ledger, n, per_thread));
                        }
                    });
                    let elapsed = start.elapsed();
                    ledger.flush().unwrap();
                    elapsed.mul_f64(iters as f64 / (per_thread * threads as u64) as f64)
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, pairs);
criterion_main!(benches);
