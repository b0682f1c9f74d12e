//! Waits on a blackboard watch for `input.wait_ms` (it blocks in a host call,
//! so only the host's own deadline can stop it early).
use paddock_sdk::{Agent, blackboard, export_agent};

struct Watcher;

impl Agent for Watcher {
    fn run(input: String) -> Result<String, String> {
        let v: serde_json::Value = paddock_sdk::parse_input(&input)?;
        let wait = v["wait_ms"].as_u64().unwrap_or(60_000) as u32;
        let changes = blackboard::watch("never/", 0, wait).map_err(|e| blackboard::describe(&e))?;
        Ok(format!("{} changes", changes.len()))
    }
}

export_agent!(Watcher);
