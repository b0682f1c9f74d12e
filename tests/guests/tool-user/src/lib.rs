//! Lists the tools it may call (when its input says `"list": true`) and
//! makes the calls its input names, in order: `{"name": "kit/echo", "args":
//! {...}}`, or `"raw": "text"` to send arguments as they are. Each answer is
//! `{"text", "structured"}` or `{"error": kind, "why": text}`; with
//! `"timed": true` each also has `"ns"`, the call's time seen from the guest
//! (for the tools bench).
use paddock_sdk::bindings::paddock::agent::tools as raw;
use paddock_sdk::tools::{self, Error};
use paddock_sdk::{Agent, export_agent};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
struct Input {
    #[serde(default)]
    list: bool,
    #[serde(default)]
    calls: Vec<Call>,
    #[serde(default)]
    timed: bool,
}

#[derive(Deserialize)]
struct Call {
    name: String,
    #[serde(default)]
    args: Option<Value>,
    #[serde(default)]
    raw: Option<String>,
}

fn error(e: Error) -> Value {
    let (kind, why) = match e {
        Error::Denied(why) => ("denied", json!(why)),
        Error::InvalidArguments(why) => ("invalid-arguments", json!(why)),
        Error::Failed(why) => ("failed", json!(why)),
        Error::Timeout(why) => ("timeout", json!(why)),
        Error::Unavailable(why) => ("unavailable", json!(why)),
        Error::BudgetExceeded(why) => ("budget-exceeded", json!(why)),
        Error::RateLimited(ms) => ("rate-limited", json!(ms > 0)),
    };
    json!({ "error": kind, "why": why })
}

struct ToolUser;

impl Agent for ToolUser {
    fn run(input: String) -> Result<String, String> {
        let input: Input = paddock_sdk::parse_input(&input)?;
        let mut out = json!({});
        if input.list {
            out["tools"] = match tools::available() {
                Ok(found) => json!(found.iter().map(|t| json!([t.name, t.description])).collect::<Vec<_>>()),
                Err(e) => error(e),
            };
        }
        let answers: Vec<Value> = input
            .calls
            .iter()
            .map(|c| {
                let started = std::time::Instant::now();
                let called = match &c.raw {
                    Some(text) => raw::call(&c.name, text),
                    None => tools::call(&c.name, c.args.as_ref().unwrap_or(&json!({}))),
                };
                let ns = started.elapsed().as_nanos() as u64;
                let mut answer = match called {
                    Ok(o) => json!({ "text": o.text, "structured": o.structured }),
                    Err(e) => error(e),
                };
                if input.timed {
                    answer["ns"] = json!(ns);
                }
                answer
            })
            .collect();
        out["calls"] = json!(answers);
        Ok(out.to_string())
    }
}

export_agent!(ToolUser);
