//! Increments the blackboard counter `input.key` `input.times` times, each
//! with a compare-and-swap loop, and returns how many conflicts it retried.
use paddock_sdk::{Agent, blackboard, export_agent};

struct Counter;

impl Agent for Counter {
    fn run(input: String) -> Result<String, String> {
        let v: serde_json::Value = paddock_sdk::parse_input(&input)?;
        let key = v["key"].as_str().unwrap_or("counter");
        let times = v["times"].as_u64().unwrap_or(1);
        let mut conflicts = 0u64;
        for _ in 0..times {
            loop {
                let (current, revision) = match blackboard::get_json::<u64>(key).map_err(|e| e.to_string())? {
                    Some((n, rev)) => (n, rev),
                    None => (0, 0),
                };
                let next = serde_json::to_vec(&(current + 1)).map_err(|e| e.to_string())?;
                match blackboard::compare_and_swap(key, revision, &next) {
                    Ok(_) => break,
                    Err(blackboard::Error::Conflict(_)) => conflicts += 1,
                    Err(e) => return Err(blackboard::describe(&e)),
                }
            }
        }
        Ok(serde_json::json!({ "conflicts": conflicts }).to_string())
    }
}

export_agent!(Counter);
