//! A Paddock agent in Rust: greets by name, counts visits on the blackboard,
//! and asks the "fast" route for a fun fact.
//!
//! Input (JSON object): "name" (default "world"); "spin": true loops until a
//! limit stops it; "allocate_mib": N holds N MiB while it works (to see the
//! memory cap). Output: {"greeting", "visits", "fun_fact": {"text",
//! "provider", "model"} or {"error"}, "language"}. `compensate` takes back
//! the visit.
//!
//! The bindings come from `wit/` (the contract, copied into this folder) through
//! `wit-bindgen`, so the agent builds anywhere with crates.io alone.

wit_bindgen::generate!({ path: "wit", world: "agent-world" });

use exports::paddock::agent::agent::Guest;
use paddock::agent::blackboard;
use paddock::agent::llm;
use paddock::agent::log::{Level, log};
use serde_json::{Map, Value, json};

const ROUTE: &str = "fast";
/// A compare-and-swap loses only to another writer of the same key; give up
/// after this many losses in a row rather than loop for ever.
const MAX_CONFLICTS: usize = 10;
const MAX_ALLOCATE_MIB: u64 = 4096;

struct Agent;

struct Input {
    name: String,
    spin: bool,
    allocate_mib: Option<u64>,
}

impl Guest for Agent {
    fn run(input: String) -> Result<String, String> {
        let input = parse_input(&input)?;
        let hog = input.allocate_mib.map(|mib| vec![1u8; (mib as usize) << 20]);
        if input.spin {
            log(Level::Warn, "spinning until a limit stops me");
            #[allow(clippy::empty_loop)]
            loop {}
        }
        log(Level::Info, &format!("greeting {}", input.name));
        let visits = add_visits(&input.name, 1)?;
        let mut output = json!({
            "greeting": format!("Hello, {}!", input.name),
            "visits": visits,
            "fun_fact": fun_fact(&input.name),
            "language": "rust",
        });
        if let Some(hog) = hog {
            output["allocated_mib"] = json!(hog.len() >> 20);
        }
        Ok(output.to_string())
    }

    fn compensate(input: String) -> Result<(), String> {
        let input = parse_input(&input)?;
        let visits = add_visits(&input.name, -1)?;
        log(Level::Info, &format!("took back a visit of {}: {visits} left", input.name));
        Ok(())
    }
}

fn parse_input(text: &str) -> Result<Input, String> {
    let Ok(Value::Object(args)) = serde_json::from_str::<Value>(text) else {
        return Err("input must be a JSON object".to_string());
    };
    let name = match args.get("name") {
        None | Some(Value::Null) => "world".to_string(),
        Some(Value::String(name)) if !name.is_empty() => name.clone(),
        Some(_) => return Err("input.name must be a non-empty string".to_string()),
    };
    Ok(Input { name, spin: args.get("spin") == Some(&Value::Bool(true)), allocate_mib: allocate_mib(&args)? })
}

fn allocate_mib(args: &Map<String, Value>) -> Result<Option<u64>, String> {
    match args.get("allocate_mib") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(mib) if (0.0..=MAX_ALLOCATE_MIB as f64).contains(&mib) && mib.fract() == 0.0 => Ok(Some(mib as u64)),
            _ => Err(format!("input.allocate_mib must be a whole number from 0 to {MAX_ALLOCATE_MIB}")),
        },
        Some(_) => Err(format!("input.allocate_mib must be a whole number from 0 to {MAX_ALLOCATE_MIB}")),
    }
}

/// Adds `delta` to visits/<name> (never below 0) and returns the new count.
fn add_visits(name: &str, delta: i64) -> Result<u64, String> {
    let key = format!("visits/{name}");
    for _ in 0..MAX_CONFLICTS {
        let entry = blackboard::get(&key).map_err(|e| format!("blackboard: {}", describe_board_error(&e)))?;
        let (count, revision) = match entry {
            None => (0, 0),
            Some(entry) => {
                let count = std::str::from_utf8(&entry.value)
                    .ok()
                    .filter(|text| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|text| text.parse::<u64>().ok())
                    .ok_or_else(|| format!("blackboard: {key} does not hold a count"))?;
                (count, entry.revision)
            }
        };
        let count = count.saturating_add_signed(delta);
        match blackboard::compare_and_swap(&key, revision, count.to_string().as_bytes()) {
            Ok(_) => return Ok(count),
            Err(blackboard::Error::Conflict(_)) => continue,
            Err(e) => return Err(format!("blackboard: {}", describe_board_error(&e))),
        }
    }
    Err(format!("blackboard: {key} changed {MAX_CONFLICTS} times in a row; giving up"))
}

/// Asks the route; a failure becomes {"error": ...} so the greeting still works.
fn fun_fact(name: &str) -> Value {
    let request = llm::Request {
        route: ROUTE.to_string(),
        messages: vec![llm::Message {
            role: llm::Role::User,
            content: format!("One fun fact about the name {name}, in one sentence."),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }],
        tools: Vec::new(),
        response_schema: None,
        max_tokens: Some(60),
        temperature: None,
        stop: Vec::new(),
        conversation: None,
    };
    match llm::complete(&request) {
        Ok(answer) => json!({ "text": answer.text, "provider": answer.provider, "model": answer.model }),
        Err(e) => {
            let why = describe_llm_error(&e);
            log(Level::Warn, &format!("no fun fact: {why}"));
            json!({ "error": why })
        }
    }
}

fn describe_llm_error(e: &llm::Error) -> String {
    match e {
        llm::Error::Denied(why) => format!("denied: {why}"),
        llm::Error::BudgetExceeded(why) => format!("budget exceeded: {why}"),
        llm::Error::RateLimited(ms) => format!("rate limited: retry after {ms} ms"),
        llm::Error::InvalidRequest(why) => format!("invalid request: {why}"),
        llm::Error::ContentFiltered(why) => format!("content filtered: {why}"),
        llm::Error::Timeout => "timed out".to_string(),
        llm::Error::Unavailable(why) => format!("unavailable: {why}"),
    }
}

fn describe_board_error(e: &blackboard::Error) -> String {
    match e {
        blackboard::Error::Denied(why) => format!("denied: {why}"),
        blackboard::Error::Conflict(revision) => format!("conflict: now at revision {revision}"),
        blackboard::Error::TooLarge(limit) => format!("too large: the limit is {limit} bytes"),
        blackboard::Error::QuotaExceeded(why) => format!("quota exceeded: {why}"),
        blackboard::Error::Lagged(revision) => format!("lagged: resume after revision {revision}"),
        blackboard::Error::Unavailable(why) => format!("unavailable: {why}"),
    }
}

export!(Agent);
