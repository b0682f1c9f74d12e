//! The blackboard's operations on each backend: a put, a get and a
//! compare-and-swap of a 100-byte value, and puts from 16 threads at once
//! (criterion), and on PostgreSQL the
//! latency of a watch across hosts: a write through one board (one host's
//! pool) until a watcher on another board (another host's pool, woken by
//! `NOTIFY`) has it, 300 times, as p50 / p99 / max.
//!
//! The PostgreSQL server is a throwaway local cluster with fsync off (the
//! tests' own), so the figures are the round trips and the engine's work,
//! not a disk. `cargo bench -p paddock --bench board`

use criterion::{Criterion, criterion_group, criterion_main};
use paddock::blackboard::{Blackboard, BoardLimits, PostgresBackend, RedbBackend, SqliteBackend, Writer};
use std::sync::Arc;
use std::time::{Duration, Instant};

const VALUE: [u8; 100] = [b'x'; 100];
/// How many threads write at once in `put_N_threads`.
const WRITERS: usize = 16;

fn boards(dir: &std::path::Path) -> Vec<(&'static str, Blackboard)> {
    let limits = BoardLimits { max_keys: u64::MAX, max_bytes: u64::MAX, ..BoardLimits::default() };
    let mut boards = vec![
        ("memory", Blackboard::new(limits)),
        ("redb", Blackboard::with_backend(limits, Arc::new(RedbBackend::open(&dir.join("board.redb")).unwrap()))),
        (
            "sqlite",
            Blackboard::with_backend(limits, Arc::new(SqliteBackend::open(&dir.join("sqlite-board.sqlite")).unwrap())),
        ),
    ];
    if let Some(pg) = paddock_postgres::testing::database("board_bench") {
        boards.push(("postgres", Blackboard::with_backend(limits, Arc::new(PostgresBackend::open(pg).unwrap()))));
    }
    boards
}

fn operations(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let writer = Writer::new("bench", "run");
    let mut group = c.benchmark_group("board");
    group.measurement_time(Duration::from_secs(4));
    for (label, board) in boards(dir.path()) {
        let ns = board.namespace("acme");
        let mut n = 0u64;
        group.bench_function(format!("{label}/put"), |b| {
            b.iter(|| {
                n += 1;
                ns.put(&format!("k/{}", n % 1000), &VALUE, &writer).unwrap()
            })
        });
        // Writers at once (agents on blocking threads): the time per put of
        // all of them together. On SQLite they share commits and their fsync.
        group.bench_function(format!("{label}/put_{WRITERS}_threads"), |b| {
            b.iter_custom(|iters| {
                let each = iters.div_ceil(WRITERS as u64);
                let start = Instant::now();
                std::thread::scope(|s| {
                    for t in 0..WRITERS {
                        let (ns, writer) = (&ns, &writer);
                        s.spawn(move || {
                            for i in 0..each {
                                ns.put(&format!("w{t}/{}", i % 100), &VALUE, writer).unwrap();
                            }
                        });
                    }
                });
                start.elapsed().mul_f64(iters as f64 / (each * WRITERS as u64) as f64)
            })
        });
        group.bench_function(format!("{label}/get"), |b| b.iter(|| ns.get("k/1").unwrap().unwrap()));
        group.bench_function(format!("{label}/cas"), |b| {
            b.iter(|| {
                let now = ns.get("counter").unwrap().map_or(0, |e| e.revision);
                ns.compare_and_swap("counter", now, &VALUE, &writer).unwrap()
            })
        });
    }
    group.finish();
    watch_across_hosts();
}

/// p50, p99 and max of a write on one host reaching a watcher on another.
fn watch_across_hosts() {
    let Some(url) = paddock_postgres::testing::database_url("board_bench_watch") else { return };
    let host = || {
        let pg = paddock_postgres::Postgres::connect(&paddock_postgres::Settings::new(&url)).unwrap();
        Arc::new(Blackboard::with_backend(BoardLimits::default(), Arc::new(PostgresBackend::open(pg).unwrap())))
    };
    let (a, b) = (host(), host());
    let tokio = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let writer = Writer::new("bench", "run");
    let mut took: Vec<Duration> = tokio.block_on(async {
        let (watcher, written) = (a.namespace("acme"), b.namespace("acme"));
        let mut took = Vec::new();
        for i in 0..300u64 {
            let after = watcher.revision().unwrap();
            let watching = {
                let watcher = watcher.clone();
                tokio::spawn(async move { watcher.watch("jobs/", after, Duration::from_secs(10)).await })
            };
            tokio::time::sleep(Duration::from_millis(5)).await;
            let start = Instant::now();
            let written = written.clone();
            let writer = writer.clone();
            tokio::task::spawn_blocking(move || written.put(&format!("jobs/{i}"), &VALUE, &writer).unwrap())
                .await
                .unwrap();
            let changes = watching.await.unwrap().unwrap();
            assert!(!changes.is_empty(), "the watcher was woken");
            took.push(start.elapsed());
        }
        took
    });
    took.sort();
    let at = |q: f64| took[((took.len() as f64 * q) as usize).min(took.len() - 1)];
    println!(
        "board/postgres/watch across hosts (write on B until the watcher on A has it, 300 times): p50 {:?}, p99 {:?}, max {:?}",
        at(0.5),
        at(0.99),
        took[took.len() - 1]
    );
}

criterion_group!(benches, operations);
criterion_main!(benches);
