//! Reads what a replay must serve from the journal besides host calls: the
//! wall clock, the monotonic clock and random numbers, straight from WASI
//! and through the standard library, and returns them as JSON.
//!
//! Input: `{"op": "read"}`, or `{"op": "flood", "key": k, "n": n}` to read
//! the blackboard key `k` `n` times (returning how many reads found it).
use paddock_sdk::{Agent, blackboard, export_agent};
use serde_json::{Value, json};
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

// The few WASI functions read here, declared as the subsets of their
// interfaces this guest imports.
wit_bindgen::generate!({
    inline: r"
        package paddock-test:readings;
        world readings {
            import wasi:clocks/wall-clock@0.2.3;
            import wasi:clocks/monotonic-clock@0.2.3;
            import wasi:random/random@0.2.3;
            import wasi:random/insecure@0.2.3;
            import wasi:random/insecure-seed@0.2.3;
        }
        package wasi:clocks@0.2.3 {
            interface wall-clock {
                record datetime { seconds: u64, nanoseconds: u32 }
                now: func() -> datetime;
            }
            interface monotonic-clock {
                type instant = u64;
                now: func() -> instant;
            }
        }
        package wasi:random@0.2.3 {
            interface random {
                get-random-bytes: func(len: u64) -> list<u8>;
                get-random-u64: func() -> u64;
            }
            interface insecure {
                get-insecure-random-bytes: func(len: u64) -> list<u8>;
                get-insecure-random-u64: func() -> u64;
            }
            interface insecure-seed {
                insecure-seed: func() -> tuple<u64, u64>;
            }
        }
    ",
    world: "paddock-test:readings/readings",
    generate_all,
});

use wasi::clocks::{monotonic_clock, wall_clock};
use wasi::random::{insecure, insecure_seed, random};

struct Readings;

fn read() -> Value {
    let wall = wall_clock::now();
    let started = Instant::now();
    let std_wall = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    json!({
        "wall": [wall.seconds, wall.nanoseconds],
        "monotonic": [monotonic_clock::now(), monotonic_clock::now()],
        "std_wall_nanos": std_wall,
        "std_elapsed_nanos": started.elapsed().as_nanos() as u64,
        "random": random::get_random_bytes(16),
        "random_u64": random::get_random_u64(),
        "insecure": insecure::get_insecure_random_bytes(8),
        "insecure_u64": insecure::get_insecure_random_u64(),
        "seed": insecure_seed::insecure_seed(),
        "std_hash": RandomState::new().hash_one("paddock"),
    })
}

impl Agent for Readings {
    fn run(input: String) -> Result<String, String> {
        let v: Value = paddock_sdk::parse_input(&input)?;
        let out = match v["op"].as_str().unwrap_or("read") {
            "read" => read(),
            "flood" => {
                let key = v["key"].as_str().unwrap_or("flood");
                let mut found = 0u64;
                for _ in 0..v["n"].as_u64().unwrap_or(1) {
                    let entry = blackboard::get(key).map_err(|e| blackboard::describe(&e))?;
                    found += u64::from(entry.is_some());
                }
                json!({ "found": found })
            }
            other => return Err(format!("unknown op {other:?} (read or flood)")),
        };
        Ok(out.to_string())
    }
}

export_agent!(Readings);
