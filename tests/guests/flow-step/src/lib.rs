//! A flow step for the workflow tests. Its input says what to do: `name`
//! (its label), `wait_ms` (wait on the blackboard, burning no fuel;
//! `wait_first_ms` only on attempt 1), `fail` (an error text),
//! `fail_before_attempt` (fail while the attempt is lower), `ask`
//! (`{question, options, timeout_ms}`: ask a person), `llm` (a route to
//! ask), `output` (what to return; else a summary). Every run increments the
//! blackboard counter `runs/<name>` and logs it; `compensate` appends
//! `<name>` to the JSON array at `compensations` (or fails with
//! `fail_compensate`).
use paddock_sdk::{Agent, blackboard, export_agent, llm};
use serde_json::{Value, json};

struct Step;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_default()
}

/// Applies `f` to the JSON value at `key` with a compare-and-swap loop.
fn update(key: &str, f: impl Fn(Option<Value>) -> Value) -> Result<Value, String> {
    loop {
        let (current, revision) = match blackboard::get_json::<Value>(key).map_err(|e| e.to_string())? {
            Some((v, rev)) => (Some(v), rev),
            None => (None, 0),
        };
        let next = f(current);
        let bytes = serde_json::to_vec(&next).map_err(|e| e.to_string())?;
        match blackboard::compare_and_swap(key, revision, &bytes) {
            Ok(_) => return Ok(next),
            Err(blackboard::Error::Conflict(_)) => continue,
            Err(e) => return Err(blackboard::describe(&e)),
        }
    }
}

impl Agent for Step {
    fn run(input: String) -> Result<String, String> {
        let v: Value = serde_json::from_str(&input).unwrap_or(Value::String(input.clone()));
        let name = v["name"].as_str().unwrap_or("step").to_string();
        let count = update(&format!("runs/{name}"), |c| json!(c.and_then(|c| c.as_u64()).unwrap_or(0) + 1))?;
        let attempt: u64 = env("PADDOCK_ATTEMPT").parse().unwrap_or(1);
        paddock_sdk::log::info(&format!("{name} counted run {count} on attempt {attempt}"));
        let wait = v["wait_ms"].as_u64().or(v["wait_first_ms"].as_u64().filter(|_| attempt == 1));
        if let Some(ms) = wait {
            // Nobody writes this prefix: the watch waits out its timeout.
            let _ = blackboard::watch("quiet/", u64::MAX - 1, ms as u32);
        }
        if let Some(n) = v["fail_before_attempt"].as_u64()
            && attempt < n
        {
            return Err(format!("{name} fails on attempt {attempt}"));
        }
        if let Some(why) = v["fail"].as_str() {
            return Err(why.to_string());
        }
        if let Some(q) = v.get("ask") {
            let options: Vec<&str> = q["options"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            let timeout = q["timeout_ms"].as_u64().unwrap_or(10_000) as u32;
            let answer = paddock_sdk::approval::ask(q["question"].as_str().unwrap_or("?"), &options, timeout)?;
            return Ok(json!({ "answer": answer }).to_string());
        }
        let text = match v["llm"].as_str() {
            Some(route) => {
                let answer = llm::Chat::new(route).user(&format!("step {name}")).send();
                Some(answer.map(|r| r.text).map_err(|e| llm::describe(&e))?)
            }
            None => None,
        };
        // An output `pad` bytes long from a short input: what amplifies storage.
        if let Some(n) = v["pad"].as_u64() {
            return Ok(json!({ "name": name, "pad": "x".repeat(n as usize) }).to_string());
        }
        if let Some(out) = v.get("output") {
            return Ok(out.to_string());
        }
        Ok(json!({
            "name": name,
            "runs": count,
            "attempt": attempt,
            "key": env("PADDOCK_IDEMPOTENCY_KEY"),
            "step": env("PADDOCK_STEP"),
            "input": v,
            "llm": text,
        })
        .to_string())
    }

    fn compensate(input: String) -> Result<(), String> {
        let v: Value = serde_json::from_str(&input).unwrap_or(Value::Null);
        let name = v["name"].as_str().unwrap_or("step").to_string();
        if let Some(why) = v["fail_compensate"].as_str() {
            return Err(why.to_string());
        }
        update("compensations", |c| {
            let mut list = c.and_then(|c| c.as_array().cloned()).unwrap_or_default();
            list.push(json!(name));
            Value::Array(list)
        })
        .map(drop)
    }
}

export_agent!(Step);
