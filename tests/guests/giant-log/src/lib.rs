//! Adversarial: logs one message of `input.bytes` bytes (default 10 MiB).
use paddock_sdk::{Agent, export_agent, log};

struct GiantLog;

impl Agent for GiantLog {
    fn run(input: String) -> Result<String, String> {
        let v: serde_json::Value = paddock_sdk::parse_input(&input)?;
        let bytes = v["bytes"].as_u64().unwrap_or(10 << 20) as usize;
        log::info(&"x".repeat(bytes));
        Ok("logged".into())
    }
}

export_agent!(GiantLog);
