//! Adversarial: unbounded recursion on the wasm stack (no frame lives in
//! linear memory, so only the host's stack limit can stop it).
use paddock_sdk::{Agent, export_agent};

fn deeper(depth: u64) -> u64 {
    if std::hint::black_box(depth) == u64::MAX {
        return 0;
    }
    std::hint::black_box(deeper(depth + 1)) + 1
}

struct Recursion;

impl Agent for Recursion {
    fn run(_input: String) -> Result<String, String> {
        Ok(deeper(0).to_string())
    }
}

export_agent!(Recursion);
