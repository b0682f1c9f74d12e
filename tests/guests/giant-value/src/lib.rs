//! Adversarial: writes a blackboard value of `input.bytes` bytes (default
//! 8 MiB) and a key of `input.key_bytes`, and reports what the host answered.
use paddock_sdk::{Agent, blackboard, export_agent};

struct GiantValue;

impl Agent for GiantValue {
    fn run(input: String) -> Result<String, String> {
        let v: serde_json::Value = paddock_sdk::parse_input(&input)?;
        let bytes = v["bytes"].as_u64().unwrap_or(8 << 20) as usize;
        let key = "k".repeat(v["key_bytes"].as_u64().unwrap_or(3) as usize);
        match blackboard::put(&key, &vec![7u8; bytes]) {
            Ok(revision) => Ok(format!("stored at revision {revision}")),
            Err(e) => Err(format!("{e:?}")),
        }
    }
}

export_agent!(GiantValue);
