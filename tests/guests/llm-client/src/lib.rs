//! Makes the LLM call its input describes and reports, as JSON, exactly what
//! the host answered: the response, the pieces of a stream, or the error.
//!
//! Input: `{"op": "complete"|"stream"|"embed", "route", "prompt", "max_tokens",
//! "conversation", "schema", "tools": [{name, description, parameters}],
//! "inputs": [..] (embed), "drop_after": n (stream), "repeat": n (complete)}`.
use paddock_sdk::llm::{self, Chat, Error, Response};
use paddock_sdk::{Agent, export_agent};
use serde_json::{Value, json};

struct LlmClient;

fn error(e: &Error) -> Value {
    let (kind, message) = match e {
        Error::Denied(m) => ("denied", m.clone()),
        Error::BudgetExceeded(m) => ("budget-exceeded", m.clone()),
        Error::RateLimited(ms) => ("rate-limited", ms.to_string()),
        Error::InvalidRequest(m) => ("invalid-request", m.clone()),
        Error::ContentFiltered(m) => ("content-filtered", m.clone()),
        Error::Timeout => ("timeout", String::new()),
        Error::Unavailable(m) => ("unavailable", m.clone()),
    };
    json!({ "kind": kind, "message": message })
}

fn response(r: &Response) -> Value {
    json!({
        "text": r.text,
        "provider": r.provider,
        "model": r.model,
        "usage": { "input": r.usage.input_tokens, "output": r.usage.output_tokens, "cost_micros": r.usage.cost_micros },
        "finish": r.finish_reason,
        "attempts": r.attempts,
        "tool_calls": r.tool_calls.iter().map(|c| json!({"id": c.id, "name": c.name, "arguments": c.arguments})).collect::<Vec<_>>(),
    })
}

fn chat(v: &Value) -> Chat {
    let mut chat = Chat::new(v["route"].as_str().unwrap_or("fast"));
    if let Some(system) = v["system"].as_str() {
        chat = chat.system(system);
    }
    chat = chat.user(v["prompt"].as_str().unwrap_or("hello"));
    if let Some(n) = v["max_tokens"].as_u64() {
        chat = chat.max_tokens(n as u32);
    }
    if let Some(c) = v["conversation"].as_str() {
        chat = chat.conversation(c);
    }
    if let Some(s) = v["schema"].as_str() {
        chat = chat.schema(s);
    }
    for t in v["tools"].as_array().into_iter().flatten() {
        chat = chat.tool(
            t["name"].as_str().unwrap_or_default(),
            t["description"].as_str().unwrap_or_default(),
            t["parameters"].as_str().unwrap_or("{}"),
        );
    }
    chat
}

impl Agent for LlmClient {
    fn run(input: String) -> Result<String, String> {
        let v: Value = paddock_sdk::parse_input(&input)?;
        let out = match v["op"].as_str().unwrap_or("complete") {
            "complete" => {
                let repeat = v["repeat"].as_u64().unwrap_or(1);
                let mut last = Value::Null;
                for _ in 0..repeat {
                    last = match chat(&v).send() {
                        Ok(r) => json!({ "ok": response(&r) }),
                        Err(e) => json!({ "error": error(&e) }),
                    };
                }
                last
            }
            "stream" => match chat(&v).stream() {
                Err(e) => json!({ "error": error(&e) }),
                Ok(stream) => {
                    let limit = v["drop_after"].as_u64().unwrap_or(u64::MAX);
                    let mut pieces = Vec::new();
                    let mut end = Value::Null;
                    while (pieces.len() as u64) < limit {
                        match stream.next() {
                            Some(Ok(piece)) => pieces.push(piece),
                            Some(Err(e)) => {
                                end = error(&e);
                                break;
                            }
                            None => break,
                        }
                    }
                    let usage = stream.usage().map(|u| json!({"input": u.input_tokens, "output": u.output_tokens, "cost_micros": u.cost_micros}));
                    let whole = stream.response().map(|r| response(&r));
                    json!({ "pieces": pieces, "end": end, "usage": usage, "response": whole })
                }
            },
            "embed" => {
                let inputs: Vec<String> =
                    v["inputs"].as_array().into_iter().flatten().filter_map(|s| s.as_str().map(String::from)).collect();
                match llm::embed(v["route"].as_str().unwrap_or("embed"), &inputs) {
                    Ok(vectors) => json!({ "ok": vectors }),
                    Err(e) => json!({ "error": error(&e) }),
                }
            }
            other => return Err(format!("unknown op {other:?}")),
        };
        Ok(out.to_string())
    }
}

export_agent!(LlmClient);
