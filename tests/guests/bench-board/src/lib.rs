//! Benchmark: runs `input.n` blackboard operations of kind `input.op`
//! (`get`, `put` or `cas`) on one 16-byte value and returns how long they
//! took, in nanoseconds, timed inside the guest (WASI monotonic clock) so
//! instantiation is not counted. `cas` swaps on the revision the previous
//! swap returned, so each op is one compare-and-swap and no get.
use paddock_sdk::{Agent, blackboard, export_agent};
use std::time::Instant;

const VALUE: &[u8] = b"0123456789abcdef";

struct BenchBoard;

impl Agent for BenchBoard {
    fn run(input: String) -> Result<String, String> {
        let v: serde_json::Value = paddock_sdk::parse_input(&input)?;
        let n = v["n"].as_u64().unwrap_or(1000);
        let op = v["op"].as_str().unwrap_or("get");
        let describe = |e: blackboard::Error| blackboard::describe(&e);
        let mut revision = blackboard::put("bench", VALUE).map_err(describe)?;
        let started = Instant::now();
        let mut done = 0u64;
        for _ in 0..n {
            let ok = match op {
                "get" => blackboard::get("bench").map_err(describe)?.is_some(),
                "put" => {
                    revision = blackboard::put("bench", VALUE).map_err(describe)?;
                    true
                }
                "cas" => {
                    revision = blackboard::compare_and_swap("bench", revision, VALUE).map_err(describe)?;
                    true
                }
                other => return Err(format!("unknown op {other:?} (get, put or cas)")),
            };
            done += u64::from(ok);
        }
        let nanos = started.elapsed().as_nanos();
        Ok(serde_json::json!({ "done": done, "nanos": nanos as u64, "revision": revision }).to_string())
    }
}

export_agent!(BenchBoard);
