//! The noisy neighbour: tenant B's latency while tenant A saturates the CPU.
//!
//! B runs a small CPU-bound job over and over, one at a time: the `spin`
//! guest stopped by its fuel after `B_FUEL` (a few milliseconds of one core),
//! a fresh instance each time. Its latency is measured twice:
//!
//! - `alone`: nothing else runs;
//! - `with A`: tenant A keeps `A_IN_FLIGHT` CPU-bound jobs in flight (`spin`
//!   stopped after `A_FUEL`, about 200 ms of one core each; a loop
//!   starts the next job as soon as one ends), after a warm-up in which A's
//!   jobs fill the host.
//!
//! Both with the fair scheduler on (`engine.cpu-slots` = the number of
//! CPUs) and off (`cpu-slots = 0`: every job is a tokio task that yields every
//! 10 M fuel, and B queues behind all of A's). The tokio runtime has one
//! worker per CPU, as `paddock` itself; B's loop runs on a worker too. The
//! target is p99 with A at most twice p99 alone, with the scheduler on.
//! A row also gives how many cores the process kept busy while B ran with
//! A: the scheduler must not leave CPU idle that A could use.
//!
//! `cargo bench -p paddock --bench noisy` (add `-- --quick`, or set
//! `PADDOCK_BENCH_QUICK=1`, for fewer samples). It prints a markdown table
//! and writes the same figures as JSON to `target/noisy-bench.json`, with
//! the load average before and after (the machine should be otherwise idle).
//! `PADDOCK_BENCH_B_PAUSE_MS=<ms>` makes B pause between jobs: a tenant whose
//! jobs are far apart starts each one without a slot, against A's.

use paddock::config::{Requested, Settings};
use paddock::runtime::{Agent, RunOptions, Runtime};
use paddock_test_guests::guests;
#[path = "common/cpu.rs"]
mod cpu;
#[path = "common/report.rs"]
mod report;

use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// B's job: about 4 ms of one core (`spin`'s loop goes through memory and
/// burns ~13 G fuel/s here, not the ~44 G/s of a register-only loop).
const B_FUEL: u64 = 50_000_000;
/// One of A's jobs: about 200 ms of one core.
const A_FUEL: u64 = 2_500_000_000;
/// A's jobs in flight.
const A_IN_FLIGHT: usize = 64;
/// How long A's jobs fill the host before B is measured.
const A_WARMUP: Duration = Duration::from_secs(1);
/// A's jobs queue for seconds behind each other; none may time out.
const A_TIMEOUT: Duration = Duration::from_secs(600);

/// One configuration measured.
struct Row {
    slots: usize,
    alone: Latency,
    with_a: Latency,
    /// CPU seconds per second while B ran with A, if the system says.
    busy_cores: Option<f64>,
}

/// B's latency over its samples.
struct Latency {
    samples: usize,
    p50: Duration,
    p99: Duration,
}

impl Latency {
    fn of(mut nanos: Vec<u64>) -> Latency {
        nanos.sort_unstable();
        let at = |q: f64| Duration::from_nanos(percentile(&nanos, q));
        Latency { samples: nanos.len(), p50: at(0.50), p99: at(0.99) }
    }
}

/// The nearest-rank percentile `q` of sorted `values` (0 when empty).
fn percentile(values: &[u64], q: f64) -> u64 {
    if values.is_empty() {
        return 0;
    }
    let rank = (q * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

fn options(tenant: &str, fuel: u64, timeout: Option<Duration>) -> RunOptions {
    RunOptions {
        tenant: Some(tenant.into()),
        overrides: Requested { fuel: Some(fuel), timeout, ..Requested::default() },
        ..RunOptions::default()
    }
}

/// One job of `spin`; panics unless it ran out of fuel, as meant.
async fn job(runtime: &Runtime, spin: &Agent, options: &RunOptions) {
    let outcome = runtime.run(spin, "{}", options).await.expect("options are valid");
    match outcome.result {
        Err(e) if e.to_string().contains("ran out of fuel") => {}
        other => panic!("spin should run out of fuel, got {other:?}"),
    }
}

/// B's jobs one after another, `pause` apart; their latencies in nanoseconds.
async fn b_loop(runtime: Runtime, spin: Arc<Agent>, samples: usize, pause: Duration) -> Vec<u64> {
    let options = options("b", B_FUEL, None);
    let mut nanos = Vec::with_capacity(samples);
    for _ in 0..samples {
        let began = Instant::now();
        job(&runtime, &spin, &options).await;
        nanos.push(began.elapsed().as_nanos() as u64);
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
    nanos
}

/// A host with `slots` CPU slots and room for every job in flight.
fn host(slots: usize) -> Runtime {
    // Usage in memory: no ledger file in the source tree, no disk writer beside the jobs.
    let toml = format!(
        "[host]\nledger = \"memory\"\nplugin-state = \"memory\"\ncode-cache = false\n[engine]\nmax-instances = {}\ncpu-slots = {slots}\n",
        A_IN_FLIGHT * 2
    );
    let settings = Settings::parse(&toml, Path::new("bench/paddock.toml")).expect("bench settings are valid");
    Runtime::new(settings).expect("the engine starts")
}

async fn measure(slots: usize, samples: usize, pause: Duration) -> Row {
    let runtime = host(slots);
    let spin = runtime.load(guests::SPIN).unwrap_or_else(|e| panic!("cannot load spin: {e}"));
    runtime.wait_optimized(std::time::Duration::from_secs(600));
    // Warm up: the first calls touch cold pool slots and code.
    tokio::spawn(b_loop(runtime.clone(), spin.clone(), 20, pause)).await.expect("B does not panic");
    let alone = tokio::spawn(b_loop(runtime.clone(), spin.clone(), samples, pause)).await.expect("B does not panic");

    let stop = Arc::new(AtomicBool::new(false));
    let a_loops: Vec<_> = (0..A_IN_FLIGHT)
        .map(|_| {
            let (runtime, spin, stop) = (runtime.clone(), spin.clone(), stop.clone());
            tokio::spawn(async move {
                let options = options("a", A_FUEL, Some(A_TIMEOUT));
                while !stop.load(Ordering::Relaxed) {
                    job(&runtime, &spin, &options).await;
                }
            })
        })
        .collect();
    tokio::time::sleep(A_WARMUP).await;
    let (began, cpu_before) = (Instant::now(), cpu::seconds(std::process::id()));
    let with_a = tokio::spawn(b_loop(runtime.clone(), spin.clone(), samples, pause)).await.expect("B does not panic");
    let busy_cores = cpu::seconds(std::process::id())
        .zip(cpu_before)
        .map(|(after, before)| (after - before) / began.elapsed().as_secs_f64());
    stop.store(true, Ordering::Relaxed);
    for a in &a_loops {
        a.abort();
    }
    for a in a_loops {
        let _ = a.await;
    }
    Row { slots, alone: Latency::of(alone), with_a: Latency::of(with_a), busy_cores }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

impl Row {
    fn ratio(&self) -> f64 {
        ms(self.with_a.p99) / ms(self.alone.p99).max(f64::MIN_POSITIVE)
    }

    fn scheduler(&self) -> String {
        if self.slots == 0 { "off".into() } else { format!("on, {} slots", self.slots) }
    }

    fn markdown(&self) -> String {
        format!(
            "| {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1}× | {} |",
            self.scheduler(),
            ms(self.alone.p50),
            ms(self.alone.p99),
            ms(self.with_a.p50),
            ms(self.with_a.p99),
            self.ratio(),
            self.busy_cores.map_or("?".into(), |c| format!("{c:.2}")),
        )
    }

    fn json(&self) -> Value {
        json!({
            "cpu_slots": self.slots,
            "samples": self.alone.samples.min(self.with_a.samples),
            "alone_p50_ms": round2(ms(self.alone.p50)),
            "alone_p99_ms": round2(ms(self.alone.p99)),
            "with_a_p50_ms": round2(ms(self.with_a.p50)),
            "with_a_p99_ms": round2(ms(self.with_a.p99)),
            "p99_ratio": round2(self.ratio()),
            "busy_cores_with_a": self.busy_cores.map(round2),
        })
    }
}

fn print_table(rows: &[Row], samples: usize, pause: Duration) {
    let apart = if pause.is_zero() { "back to back".to_string() } else { format!("{pause:?} apart") };
    println!(
        "B: {samples} sequential jobs of {B_FUEL} fuel, {apart}; A: {A_IN_FLIGHT} jobs of {A_FUEL} fuel in flight"
    );
    println!();
    println!(
        "| scheduler | B alone p50 ms | B alone p99 ms | B with A p50 ms | B with A p99 ms | p99 with A / alone | busy cores with A |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        println!("{}", row.markdown());
    }
}

/// The 1-minute load average, where the system reports one.
fn load_average() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// `target/noisy-bench.json`: `CARGO_TARGET_TMPDIR` is `target/tmp`.
fn write_json(rows: &[Row], samples: usize, pause: Duration, load: (Option<f64>, Option<f64>)) {
    let report = json!({
        "bench": "noisy",
        "cores": cores(),
        "b_fuel": B_FUEL,
        "a_fuel": A_FUEL,
        "a_in_flight": A_IN_FLIGHT,
        "samples": samples,
        "b_pause_ms": pause.as_millis() as u64,
        "load_average_before": load.0,
        "load_average_after": load.1,
        "rows": rows.iter().map(Row::json).collect::<Vec<_>>(),
    });
    report::write("noisy", &report);
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn main() {
    // Cargo passes `--bench`; other arguments are ignored.
    let quick =
        std::env::args().any(|a| a == "--quick") || std::env::var("PADDOCK_BENCH_QUICK").is_ok_and(|v| v == "1");
    let samples = if quick { 100 } else { 300 };
    let pause = std::env::var("PADDOCK_BENCH_B_PAUSE_MS").ok().filter(|v| !v.is_empty()).map_or(Duration::ZERO, |ms| {
        Duration::from_millis(ms.parse().unwrap_or_else(|_| panic!("PADDOCK_BENCH_B_PAUSE_MS={ms:?} is not a number")))
    });
    let load_before = load_average();
    if let Some(load) = load_before {
        eprintln!("load average: {load:.2} on {} cores", cores());
    }
    let tokio =
        tokio::runtime::Builder::new_multi_thread().worker_threads(cores()).enable_all().build().expect("tokio starts");
    let rows: Vec<Row> = [cores(), 0]
        .into_iter()
        .map(|slots| {
            let row = tokio.block_on(measure(slots, samples, pause));
            eprintln!("{}", row.markdown());
            row
        })
        .collect();
    let load_after = load_average();
    print_table(&rows, samples, pause);
    write_json(&rows, samples, pause, (load_before, load_after));
}
