//! A well-behaved agent: logs, writes its input to the blackboard, reads it back.
use paddock_sdk::{Agent, blackboard, export_agent, log};

struct Echo;

impl Agent for Echo {
    fn run(input: String) -> Result<String, String> {
        log::info(&format!("echo {} bytes", input.len()));
        let revision = blackboard::put("echo/last", input.as_bytes()).map_err(|e| blackboard::describe(&e))?;
        let entry = blackboard::get("echo/last").map_err(|e| blackboard::describe(&e))?.ok_or("echo/last vanished")?;
        let value = String::from_utf8(entry.value).map_err(|e| e.to_string())?;
        let out = serde_json::json!({ "input": value, "revision": revision, "writer": entry.writer, "run": entry.run });
        Ok(out.to_string())
    }
}

export_agent!(Echo);
