//! Benchmark: reads the key `bench` `input.n` times and returns how long the
//! reads took, in nanoseconds, timed inside the guest (WASI monotonic clock)
//! so instantiation is not counted.
use paddock_sdk::{Agent, blackboard, export_agent};
use std::time::Instant;

struct BenchGet;

impl Agent for BenchGet {
    fn run(input: String) -> Result<String, String> {
        let v: serde_json::Value = paddock_sdk::parse_input(&input)?;
        let n = v["n"].as_u64().unwrap_or(1000);
        blackboard::put("bench", b"0123456789abcdef").map_err(|e| blackboard::describe(&e))?;
        let started = Instant::now();
        let mut found = 0u64;
        for _ in 0..n {
            if blackboard::get("bench").map_err(|e| blackboard::describe(&e))?.is_some() {
                found += 1;
            }
        }
        let nanos = started.elapsed().as_nanos();
        Ok(serde_json::json!({ "found": found, "nanos": nanos as u64 }).to_string())
    }
}

export_agent!(BenchGet);
