//! Adversarial: runs each host call its input lists, with whatever key,
//! prefix, route or agent the test chose, and reports every answer as
//! `{"ok": ...}` or `{"err": "..."}` — so a test can prove what the host
//! refuses and how it says so.
use paddock_sdk::{Agent, agents, blackboard, export_agent, llm};
use serde_json::{Value, json};

struct Prober;

fn answer<T: Into<Value>>(result: Result<T, String>) -> Value {
    match result {
        Ok(v) => json!({ "ok": v.into() }),
        Err(e) => json!({ "err": e }),
    }
}

fn step(op: &Value) -> Value {
    let text = |k: &str| op[k].as_str().unwrap_or_default().to_string();
    let bb = |e: blackboard::Error| blackboard::describe(&e);
    match op["op"].as_str().unwrap_or_default() {
        "get" => answer(
            blackboard::get(&text("key"))
                .map(|e| e.map_or(Value::Null, |e| json!(String::from_utf8_lossy(&e.value))))
                .map_err(bb),
        ),
        "put" => answer(blackboard::put(&text("key"), text("value").as_bytes()).map_err(bb)),
        "delete" => answer(blackboard::delete(&text("key")).map_err(bb)),
        "list" => answer(blackboard::list(&text("prefix")).map_err(bb)),
        "watch" => answer(
            blackboard::watch(&text("prefix"), op["after"].as_u64().unwrap_or(0), 20)
                .map(|changes| changes.into_iter().map(|c| c.key).collect::<Vec<_>>())
                .map_err(bb),
        ),
        "call" => answer(agents::call(&text("agent"), "{}")),
        "llm" => answer(
            llm::Chat::new(&text("route"))
                .user("hello")
                .max_tokens(op["max_tokens"].as_u64().unwrap_or(16) as u32)
                .send()
                .map(|r| r.text)
                .map_err(|e| llm::describe(&e)),
        ),
        other => json!({ "err": format!("unknown op {other:?}") }),
    }
}

impl Agent for Prober {
    fn run(input: String) -> Result<String, String> {
        let v: Value = paddock_sdk::parse_input(&input)?;
        let ops = v["ops"].as_array().ok_or("input.ops must be a list")?;
        Ok(Value::Array(ops.iter().map(step).collect()).to_string())
    }
}

export_agent!(Prober);
