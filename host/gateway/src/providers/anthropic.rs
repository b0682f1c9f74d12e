//! Anthropic Messages: named SSE events, errors that may arrive as an
//! `error` event after a 200, 529 when overloaded.
//!
//! Structured output has no native switch here, so a response schema becomes
//! a single forced tool whose input is the reply; its JSON is the answer text.

use super::{Decode, Frame, Framing, count, frame_json, json_text};
use crate::error::{ErrorClass, ProviderError, class_of_status, excerpt};
use crate::types::{ChatRequest, Finish, Piece, Reply, Role, Tokens, ToolCall};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// The forced tool that carries a structured reply.
const REPLY_TOOL: &str = "structured_reply";
/// Anthropic requires `max_tokens`; this is used when the agent gives none.
const DEFAULT_MAX_TOKENS: u32 = 4096;

pub(super) fn body(model: &str, req: &ChatRequest, stream: bool) -> Value {
    let system: Vec<&str> =
        req.messages.iter().filter(|m| m.role == Role::System).map(|m| m.content.as_str()).collect();
    let messages: Vec<Value> = req
        .messages
        .iter()
        .filter(|m| m.role != Role::System)
        .map(|m| match m.role {
            Role::Tool => json!({"role": "user", "content": [{
                "type": "tool_result",
                "tool_use_id": m.tool_call_id.clone().unwrap_or_default(),
                "content": m.content,
            }]}),
            Role::Assistant if !m.tool_calls.is_empty() => {
                let mut blocks = Vec::new();
                if !m.content.is_empty() {
                    blocks.push(json!({"type": "text", "text": m.content}));
                }
                for c in &m.tool_calls {
                    blocks.push(
                        json!({"type": "tool_use", "id": c.id, "name": c.name, "input": json_text(&c.arguments)}),
                    );
                }
                json!({"role": "assistant", "content": blocks})
            }
            Role::Assistant => json!({"role": "assistant", "content": m.content}),
            _ => json!({"role": "user", "content": m.content}),
        })
        .collect();
    let mut b = Map::new();
    b.insert("model".into(), model.into());
    b.insert("max_tokens".into(), req.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS).into());
    b.insert("messages".into(), messages.into());
    if !system.is_empty() {
        b.insert("system".into(), system.join("\n\n").into());
    }
    let mut tools: Vec<Value> = req
        .tools
        .iter()
        .map(|t| json!({"name": t.name, "description": t.description, "input_schema": json_text(&t.parameters)}))
        .collect();
    if let Some(schema) = &req.response_schema {
        tools.push(json!({
            "name": REPLY_TOOL,
            "description": "Give the reply in this structure.",
            "input_schema": json_text(schema),
        }));
        b.insert("tool_choice".into(), json!({"type": "tool", "name": REPLY_TOOL}));
    }
    if !tools.is_empty() {
        b.insert("tools".into(), tools.into());
    }
    if let Some(t) = req.temperature {
        b.insert("temperature".into(), f64::from(t).into());
    }
    if !req.stop.is_empty() {
        b.insert("stop_sequences".into(), req.stop.clone().into());
    }
    if stream {
        b.insert("stream".into(), true.into());
    }
    Value::Object(b)
}

fn finish(reason: &str) -> Finish {
    match reason {
        "max_tokens" => Finish::Length,
        "tool_use" => Finish::ToolCalls,
        "refusal" => Finish::ContentFilter,
        _ => Finish::Stop,
    }
}

pub(super) fn reply(json: &Value) -> Result<Reply, ProviderError> {
    if json["type"] == "error" {
        return Err(error(500, &json.to_string()));
    }
    let Some(blocks) = json["content"].as_array() else {
        return Err(ProviderError::new(ErrorClass::Malformed, format!("no content in {}", excerpt(&json.to_string()))));
    };
    let mut reply = Reply::default();
    for block in blocks {
        match block["type"].as_str() {
            Some("text") => reply.text.push_str(block["text"].as_str().unwrap_or_default()),
            Some("tool_use") if block["name"] == REPLY_TOOL => reply.text.push_str(&block["input"].to_string()),
            Some("tool_use") => reply.tool_calls.push(ToolCall {
                id: block["id"].as_str().unwrap_or_default().to_string(),
                name: block["name"].as_str().unwrap_or_default().to_string(),
                arguments: block["input"].to_string(),
            }),
            _ => {}
        }
    }
    let stop = json["stop_reason"].as_str().unwrap_or("end_turn");
    reply.finish = if reply.tool_calls.is_empty() && stop == "tool_use" { Finish::Stop } else { finish(stop) };
    let usage = &json["usage"];
    if usage.is_object() {
        reply.tokens = Some(Tokens { input: count(&usage["input_tokens"]), output: count(&usage["output_tokens"]) });
    }
    Ok(reply)
}

/// Classifies `{"type": "error", "error": {"type", "message"}}`.
pub(super) fn error(status: u16, body: &str) -> ProviderError {
    let json: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let kind = json["error"]["type"].as_str().unwrap_or_default();
    let message = json["error"]["message"].as_str().map_or_else(|| excerpt(body), str::to_string);
    let lower = message.to_ascii_lowercase();
    let class = match kind {
        _ if status == 503 || status == 529 => ErrorClass::Overloaded,
        "rate_limit_error" => ErrorClass::RateLimited,
        "overloaded_error" => ErrorClass::Overloaded,
        "api_error" => ErrorClass::Server,
        "authentication_error" | "permission_error" => ErrorClass::Auth,
        "billing_error" if lower.contains("spend") || lower.contains("limit") => ErrorClass::SpendLimit,
        "billing_error" => ErrorClass::InsufficientQuota,
        "invalid_request_error" if lower.contains("credit balance") => ErrorClass::InsufficientQuota,
        "invalid_request_error" if lower.contains("usage limits") || lower.contains("spend limit") => {
            ErrorClass::SpendLimit
        }
        "invalid_request_error" if lower.contains("content policy") || lower.contains("content filter") => {
            ErrorClass::ContentFilter
        }
        "invalid_request_error" | "request_too_large" | "not_found_error" => ErrorClass::InvalidRequest,
        _ if status == 200 => ErrorClass::Server,
        _ => class_of_status(status),
    };
    ProviderError::new(class, message)
}

/// Decodes `message_start` … `message_stop`.
#[derive(Default)]
pub(super) struct Decoder {
    tokens: Tokens,
    /// Content blocks in progress, by index: a tool call or the structured reply.
    calls: BTreeMap<u64, ToolCall>,
    done: bool,
}

impl Decode for Decoder {
    fn framing(&self) -> Framing {
        Framing::Sse
    }

    fn frame(&mut self, frame: Frame, out: &mut Vec<Piece>) -> Result<(), ProviderError> {
        let event = frame_json(&frame)?;
        let kind = if frame.event.is_empty() { event["type"].as_str().unwrap_or_default() } else { &frame.event };
        match kind {
            "message_start" => {
                let usage = &event["message"]["usage"];
                self.tokens = Tokens { input: count(&usage["input_tokens"]), output: count(&usage["output_tokens"]) };
                out.push(Piece::Tokens(self.tokens));
            }
            "content_block_start" => {
                let block = &event["content_block"];
                if block["type"] == "tool_use" {
                    self.calls.insert(
                        event["index"].as_u64().unwrap_or(0),
                        ToolCall {
                            id: block["id"].as_str().unwrap_or_default().to_string(),
                            name: block["name"].as_str().unwrap_or_default().to_string(),
                            arguments: String::new(),
                        },
                    );
                }
            }
            "content_block_delta" => {
                let delta = &event["delta"];
                match delta["type"].as_str() {
                    Some("text_delta") => {
                        let text = delta["text"].as_str().unwrap_or_default();
                        if !text.is_empty() {
                            out.push(Piece::Text(text.to_string()));
                        }
                    }
                    Some("input_json_delta") => {
                        let part = delta["partial_json"].as_str().unwrap_or_default();
                        match self.calls.get_mut(&event["index"].as_u64().unwrap_or(0)) {
                            Some(call) if call.name == REPLY_TOOL => out.push(Piece::Text(part.to_string())),
                            Some(call) => call.arguments.push_str(part),
                            None => {}
                        }
                    }
                    _ => {}
                }
            }
            "content_block_stop" => {
                if let Some(mut call) = self.calls.remove(&event["index"].as_u64().unwrap_or(0))
                    && call.name != REPLY_TOOL
                {
                    if call.arguments.is_empty() {
                        call.arguments = "{}".into();
                    }
                    out.push(Piece::ToolCall(call));
                }
            }
            "message_delta" => {
                let usage = &event["usage"];
                // Output tokens here are a running total; input tokens appear
                // only in newer versions of the API.
                if usage.is_object() {
                    self.tokens.output = count(&usage["output_tokens"]);
                    if usage["input_tokens"].is_u64() {
                        self.tokens.input = count(&usage["input_tokens"]);
                    }
                    out.push(Piece::Tokens(self.tokens));
                }
                if let Some(reason) = event["delta"]["stop_reason"].as_str() {
                    out.push(Piece::Finish(finish(reason)));
                }
            }
            "message_stop" => {
                self.done = true;
                out.push(Piece::Done);
            }
            "error" => return Err(error(200, &frame.data)),
            _ => {} // ping, and event types added later
        }
        Ok(())
    }

    fn end(&mut self, _out: &mut Vec<Piece>) -> Result<(), ProviderError> {
        if self.done {
            Ok(())
        } else {
            Err(ProviderError::new(ErrorClass::Malformed, "stream ended before `message_stop`"))
        }
    }
}
