//! Ollama `/api/chat`: newline-delimited JSON, streaming unless told not to.

use super::{Decode, Frame, Framing, count, frame_json, function_tools, json_text, role_name, synthetic_call_id};
use crate::error::{ErrorClass, ProviderError, class_of_status, excerpt};
use crate::types::{ChatRequest, Finish, Piece, Reply, Tokens, ToolCall};
use serde_json::{Map, Value, json};

pub(super) fn body(model: &str, req: &ChatRequest, stream: bool) -> Value {
    let messages: Vec<Value> = req
        .messages
        .iter()
        .map(|m| {
            let role = role_name(m.role);
            let mut msg = json!({"role": role, "content": m.content});
            if !m.tool_calls.is_empty() {
                let calls: Vec<Value> = m
                    .tool_calls
                    .iter()
                    .map(|c| json!({"function": {"name": c.name, "arguments": json_text(&c.arguments)}}))
                    .collect();
                msg["tool_calls"] = calls.into();
            }
            msg
        })
        .collect();
    let mut b = Map::new();
    b.insert("model".into(), model.into());
    b.insert("messages".into(), messages.into());
    b.insert("stream".into(), stream.into());
    if !req.tools.is_empty() {
        b.insert("tools".into(), function_tools(req).into());
    }
    if let Some(schema) = &req.response_schema {
        b.insert("format".into(), json_text(schema));
    }
    let mut options = Map::new();
    if let Some(n) = req.max_tokens {
        options.insert("num_predict".into(), n.into());
    }
    if let Some(t) = req.temperature {
        options.insert("temperature".into(), f64::from(t).into());
    }
    if !req.stop.is_empty() {
        options.insert("stop".into(), req.stop.clone().into());
    }
    if !options.is_empty() {
        b.insert("options".into(), options.into());
    }
    Value::Object(b)
}

fn finish(json: &Value, calls: usize) -> Finish {
    match json["done_reason"].as_str() {
        _ if calls > 0 => Finish::ToolCalls,
        Some("length") => Finish::Length,
        _ => Finish::Stop,
    }
}

fn tokens(json: &Value) -> Tokens {
    Tokens { input: count(&json["prompt_eval_count"]), output: count(&json["eval_count"]) }
}

fn calls(message: &Value, n: &mut usize) -> Vec<ToolCall> {
    message["tool_calls"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            *n += 1;
            ToolCall {
                id: c["id"].as_str().map_or_else(|| synthetic_call_id(*n), str::to_string),
                name: c["function"]["name"].as_str().unwrap_or_default().to_string(),
                arguments: c["function"]["arguments"].to_string(),
            }
        })
        .collect()
}

pub(super) fn reply(json: &Value) -> Result<Reply, ProviderError> {
    if let Some(message) = json["error"].as_str() {
        return Err(ProviderError::new(ErrorClass::Server, message));
    }
    let message = &json["message"];
    if !message.is_object() {
        return Err(ProviderError::new(ErrorClass::Malformed, format!("no message in {}", excerpt(&json.to_string()))));
    }
    let mut n = 0;
    let tool_calls = calls(message, &mut n);
    Ok(Reply {
        text: message["content"].as_str().unwrap_or_default().to_string(),
        finish: finish(json, tool_calls.len()),
        tool_calls,
        tokens: Some(tokens(json)),
    })
}

/// Classifies `{"error": "..."}` by status, the only signal Ollama gives.
pub(super) fn error(status: u16, body: &str) -> ProviderError {
    let json: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let message = json["error"].as_str().map_or_else(|| excerpt(body), str::to_string);
    let class = match status {
        200 => ErrorClass::Server,
        404 => ErrorClass::InvalidRequest, // model not pulled
        // Ollama's cloud models answer 402 when credit or a spend limit runs out.
        402 if message.to_ascii_lowercase().contains("spend limit") => ErrorClass::SpendLimit,
        402 => ErrorClass::InsufficientQuota,
        400 if message.to_ascii_lowercase().contains("content filter") => ErrorClass::ContentFilter,
        _ => class_of_status(status),
    };
    ProviderError::new(class, message)
}

/// Decodes one JSON object per line up to `"done": true`.
#[derive(Default)]
pub(super) struct Decoder {
    calls: usize,
    done: bool,
}

impl Decode for Decoder {
    fn framing(&self) -> Framing {
        Framing::Ndjson
    }

    fn frame(&mut self, frame: Frame, out: &mut Vec<Piece>) -> Result<(), ProviderError> {
        let json = frame_json(&frame)?;
        if json["error"].is_string() {
            return Err(error(200, &frame.data));
        }
        let message = &json["message"];
        if let Some(text) = message["content"].as_str().filter(|t| !t.is_empty()) {
            out.push(Piece::Text(text.to_string()));
        }
        out.extend(calls(message, &mut self.calls).into_iter().map(Piece::ToolCall));
        if json["done"] == true {
            self.done = true;
            out.push(Piece::Tokens(tokens(&json)));
            out.push(Piece::Finish(finish(&json, self.calls)));
            out.push(Piece::Done);
        }
        Ok(())
    }

    fn end(&mut self, _out: &mut Vec<Piece>) -> Result<(), ProviderError> {
        if self.done {
            Ok(())
        } else {
            Err(ProviderError::new(ErrorClass::Malformed, "stream ended before `\"done\": true`"))
        }
    }
}
