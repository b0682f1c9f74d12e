//! The gateway bench's table and JSON: each run beside `direct` at its concurrency.

use super::{Phases, Run, Way, report};
use serde_json::{Value, json};
use std::time::Duration;

/// A run with its difference from `direct` at the same concurrency.
pub struct Row<'a> {
    run: &'a Run,
    direct: &'a Run,
}

impl Row<'_> {
    fn added(&self, pick: fn(&Run) -> Duration) -> f64 {
        micros(pick(self.run)) - micros(pick(self.direct))
    }

    /// Extra machine time per call: 1 / throughput over `direct`'s.
    fn added_per_call(&self) -> f64 {
        1e6 / self.run.per_second - 1e6 / self.direct.per_second
    }

    fn markdown(&self) -> String {
        let r = self.run;
        let cpu = r.server_cpu.map_or("—".to_string(), |c| format!("{:.1}", micros(c)));
        format!(
            "| {} | {} | {:.0} | {:.1} | {:.1} | {:+.1} | {:+.1} | {:+.1} | {cpu} |",
            r.way.name(),
            r.concurrency,
            r.per_second,
            micros(r.p50),
            micros(r.p99),
            self.added(|r| r.p50),
            self.added(|r| r.p99),
            self.added_per_call(),
        )
    }

    fn json(&self) -> Value {
        let r = self.run;
        json!({
            "path": r.way.name(),
            "concurrency": r.concurrency,
            "calls": r.calls,
            "calls_per_s": r.per_second.round(),
            "p50_us": round1(micros(r.p50)),
            "p99_us": round1(micros(r.p99)),
            "added_p50_us": round1(self.added(|r| r.p50)),
            "added_p99_us": round1(self.added(|r| r.p99)),
            "added_us_per_call": round1(self.added_per_call()),
            "server_cpu_us_per_call": r.server_cpu.map(|c| round1(micros(c))),
        })
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Pairs each run with the `direct` run at its concurrency.
pub fn rows(runs: &[Run]) -> Vec<Row<'_>> {
    runs.iter()
        .map(|run| {
            let direct = runs
                .iter()
                .find(|d| d.way == Way::Direct && d.concurrency == run.concurrency)
                .expect("direct runs first at every concurrency");
            Row { run, direct }
        })
        .collect()
}

pub fn print_table(rows: &[Row]) {
    println!("| path | C | calls/s | p50 µs | p99 µs | +p50 µs | +p99 µs | +µs/call | server CPU µs/call |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        println!("{}", row.markdown());
    }
}

/// `target/gateway-bench.json`: `CARGO_TARGET_TMPDIR` is `target/tmp`.
pub fn write_json(rows: &[Row], phases: Phases) {
    let report = json!({
        "bench": "gateway",
        "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "warmup_s": phases.warmup.as_secs_f64(),
        "measure_s": phases.measure.as_secs_f64(),
        "rounds": phases.rounds,
        "rows": rows.iter().map(Row::json).collect::<Vec<_>>(),
    });
    report::write("gateway", &report);
}
