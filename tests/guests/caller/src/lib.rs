//! Calls `input.agent` with `input.input` and returns what it answered.
use paddock_sdk::{Agent, agents, export_agent};

struct Caller;

impl Agent for Caller {
    fn run(input: String) -> Result<String, String> {
        let v: serde_json::Value = paddock_sdk::parse_input(&input)?;
        let agent = v["agent"].as_str().ok_or("input.agent missing")?;
        let inner = v["input"].to_string();
        agents::call(agent, &inner)
    }
}

export_agent!(Caller);
