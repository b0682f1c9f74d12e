//! Prints `input.lines` lines (default 10,000) to stdout and one to stderr.
use paddock_sdk::{Agent, export_agent};

struct Chatty;

impl Agent for Chatty {
    fn run(input: String) -> Result<String, String> {
        let v: serde_json::Value = paddock_sdk::parse_input(&input)?;
        let lines = v["lines"].as_u64().unwrap_or(10_000);
        for i in 0..lines {
            println!("line {i}");
        }
        eprintln!("done printing");
        Ok(format!("printed {lines}"))
    }
}

export_agent!(Chatty);
