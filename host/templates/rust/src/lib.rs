//! A Paddock agent in Rust: greets by name, counts visits on the blackboard,
//! and asks the "fast" route for a fun fact.
//!
//! Input (JSON object): "name" (default "world"); "spin": true loops until a
//! limit stops it; "allocate_mib": N holds N MiB while it works (to see the
//! memory cap); "tool": "server/tool" calls that tool of the operator's MCP
//! servers with "tool_args" (an object, default {}), once the manifest's
//! `capabilities.tools` asks for it. Output: {"greeting", "visits",
//! "fun_fact": {"text", "provider", "model"} or {"error"}, "language"}, and
//! "tool": {"text"} or {"error"} when one was called. `compensate` takes back
//! the visit.
//!
//! It is written with `paddock-sdk`, copied into `sdk/` next to `wit/` (the
//! contract the SDK binds), so the agent builds anywhere with crates.io alone.

use paddock_sdk::llm::{self, Chat};
use paddock_sdk::{Agent, blackboard, export_agent, log, tools};
use serde_json::{Map, Value, json};

const ROUTE: &str = "fast";
const MAX_ALLOCATE_MIB: u64 = 4096;

struct Greeter;

struct Input {
    name: String,
    spin: bool,
    allocate_mib: Option<u64>,
    /// The tool to call and its arguments.
    tool: Option<(String, Value)>,
}

impl Agent for Greeter {
    fn run(input: String) -> Result<String, String> {
        let input = parse_input(&input)?;
        let hog = input.allocate_mib.map(|mib| vec![1u8; (mib as usize) << 20]);
        if input.spin {
            log::warn("spinning until a limit stops me");
            #[allow(clippy::empty_loop)]
            loop {}
        }
        log::info(&format!("greeting {}", input.name));
        let visits = add_visits(&input.name, 1)?;
        let mut output = json!({
            "greeting": format!("Hello, {}!", input.name),
            "visits": visits,
            "fun_fact": fun_fact(&input.name),
            "language": "rust",
        });
        if let Some((name, args)) = &input.tool {
            output["tool"] = call_tool(name, args);
        }
        if let Some(hog) = hog {
            output["allocated_mib"] = json!(hog.len() >> 20);
        }
        Ok(output.to_string())
    }

    fn compensate(input: String) -> Result<(), String> {
        let input = parse_input(&input)?;
        let visits = add_visits(&input.name, -1)?;
        log::info(&format!("took back a visit of {}: {visits} left", input.name));
        Ok(())
    }
}

/// Reads the input by hand rather than with serde, so that its errors read the
/// same as the agents `paddock new` writes in other languages.
fn parse_input(text: &str) -> Result<Input, String> {
    let Ok(Value::Object(args)) = serde_json::from_str::<Value>(text) else {
        return Err("input must be a JSON object".to_string());
    };
    let name = match args.get("name") {
        None | Some(Value::Null) => "world".to_string(),
        Some(Value::String(name)) if !name.is_empty() => name.clone(),
        Some(_) => return Err("input.name must be a non-empty string".to_string()),
    };
    Ok(Input {
        name,
        spin: args.get("spin") == Some(&Value::Bool(true)),
        allocate_mib: allocate_mib(&args)?,
        tool: tool(&args)?,
    })
}

fn tool(args: &Map<String, Value>) -> Result<Option<(String, Value)>, String> {
    let name = match args.get("tool") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(name)) if !name.is_empty() => name.clone(),
        Some(_) => return Err("input.tool must be a tool name like \"server/tool\"".to_string()),
    };
    match args.get("tool_args") {
        None | Some(Value::Null) => Ok(Some((name, json!({})))),
        Some(args @ Value::Object(_)) => Ok(Some((name, args.clone()))),
        Some(_) => Err("input.tool_args must be a JSON object".to_string()),
    }
}

fn allocate_mib(args: &Map<String, Value>) -> Result<Option<u64>, String> {
    let invalid = || format!("input.allocate_mib must be a whole number from 0 to {MAX_ALLOCATE_MIB}");
    match args.get("allocate_mib") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(mib) if (0.0..=MAX_ALLOCATE_MIB as f64).contains(&mib) && mib.fract() == 0.0 => Ok(Some(mib as u64)),
            _ => Err(invalid()),
        },
        Some(_) => Err(invalid()),
    }
}

/// Adds `delta` to visits/<name> (never below 0) and returns the new count.
/// `update_json` compares and swaps, retrying when another run wrote first, so
/// no visit is lost.
fn add_visits(name: &str, delta: i64) -> Result<u64, String> {
    let (count, _revision) = blackboard::update_json(&format!("visits/{name}"), |count: Option<u64>| {
        count.unwrap_or(0).saturating_add_signed(delta)
    })
    .map_err(|e| e.to_string())?;
    Ok(count)
}

/// Asks the route; a failure becomes {"error": ...} so the greeting still works.
fn fun_fact(name: &str) -> Value {
    let question = format!("One fun fact about the name {name}, in one sentence.");
    match Chat::new(ROUTE).user(&question).max_tokens(60).send() {
        Ok(answer) => json!({ "text": answer.text, "provider": answer.provider, "model": answer.model }),
        Err(e) => {
            let why = llm::describe(&e);
            log::warn(&format!("no fun fact: {why}"));
            json!({ "error": why })
        }
    }
}

/// Calls a tool; a failure becomes {"error": ...} so the greeting still works.
fn call_tool(name: &str, args: &Value) -> Value {
    match tools::call(name, args) {
        Ok(output) => json!({ "text": output.text }),
        Err(e) => json!({ "error": tools::describe(&e) }),
    }
}

export_agent!(Greeter);
