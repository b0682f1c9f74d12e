//! `hello`: greets by name, counts visits on the blackboard, and asks the
//! "fast" route for a fun fact — reporting truthfully when there is no such route.

use paddock_sdk::llm::{self, Chat};
use paddock_sdk::{Agent, blackboard, export_agent, log};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
struct Input {
    name: String,
}

struct Hello;

impl Agent for Hello {
    fn run(input: String) -> Result<String, String> {
        let Input { name } = paddock_sdk::parse_input(&input)?;
        if name.trim().is_empty() {
            return Err("input.name must not be empty".to_string());
        }
        log::info(&format!("greeting {name}"));

        // Compare-and-swap increment: concurrent greetings never lose a visit.
        let (visits, _) = blackboard::update_json(&format!("visits/{name}"), |n: Option<u64>| n.unwrap_or(0) + 1)
            .map_err(|e| e.to_string())?;
        let revision = blackboard::put_json("last-greeted", &name).map_err(|e| e.to_string())?;
        let (last, _): (String, u64) = blackboard::get_json("last-greeted")
            .map_err(|e| e.to_string())?
            .ok_or("last-greeted vanished right after it was written")?;

        let fact = match Chat::new("fast")
            .user(&format!("One fun fact about the name {name}, in one sentence."))
            .max_tokens(60)
            .send()
        {
            Ok(answer) => json!({ "text": answer.text, "provider": answer.provider, "model": answer.model }),
            Err(e) => {
                log::warn(&format!("no fun fact: {}", llm::describe(&e)));
                json!({ "error": llm::describe(&e) })
            }
        };

        Ok(json!({
            "greeting": format!("Hello, {name}!"),
            "visits": visits,
            "last_greeted": last,
            "revision": revision,
            "fun_fact": fact,
        })
        .to_string())
    }
}

export_agent!(Hello);
