//! Google Gemini `generateContent` and `streamGenerateContent?alt=sse`.
//!
//! Gemini names tool results by function name, not by call id, and its calls
//! carry no ids: ids are made up (`call_N`) and mapped back through the
//! conversation. A Gemini stream has no end marker; it is complete when a
//! candidate carried a `finishReason`.

use super::{Decode, Frame, Framing, count, frame_json, json_text, synthetic_call_id};
use crate::error::{ErrorClass, ProviderError, class_of_status, excerpt};
use crate::types::{ChatRequest, Finish, Piece, Reply, Role, Tokens, ToolCall};
use serde_json::{Map, Value, json};
use std::collections::HashMap;

pub(super) fn path(model: &str, stream: bool) -> String {
    let method = if stream { "streamGenerateContent" } else { "generateContent" };
    format!("/v1beta/models/{model}:{method}")
}

pub(super) fn body(req: &ChatRequest) -> Value {
    let names: HashMap<&str, &str> =
        req.messages.iter().flat_map(|m| m.tool_calls.iter()).map(|c| (c.id.as_str(), c.name.as_str())).collect();
    let system: Vec<Value> =
        req.messages.iter().filter(|m| m.role == Role::System).map(|m| json!({"text": m.content})).collect();
    let contents: Vec<Value> = req
        .messages
        .iter()
        .filter(|m| m.role != Role::System)
        .map(|m| match m.role {
            Role::Tool => {
                let id = m.tool_call_id.as_deref().unwrap_or_default();
                let name = names.get(id).copied().unwrap_or(id);
                let result = serde_json::from_str::<Value>(&m.content)
                    .ok()
                    .filter(Value::is_object)
                    .unwrap_or_else(|| json!({"result": m.content}));
                json!({"role": "user", "parts": [{"functionResponse": {"name": name, "response": result}}]})
            }
            Role::Assistant => {
                let mut parts = Vec::new();
                if !m.content.is_empty() {
                    parts.push(json!({"text": m.content}));
                }
                for c in &m.tool_calls {
                    parts.push(json!({"functionCall": {"name": c.name, "args": json_text(&c.arguments)}}));
                }
                json!({"role": "model", "parts": parts})
            }
            _ => json!({"role": "user", "parts": [{"text": m.content}]}),
        })
        .collect();
    let mut b = Map::new();
    b.insert("contents".into(), contents.into());
    if !system.is_empty() {
        b.insert("systemInstruction".into(), json!({ "parts": system }));
    }
    if !req.tools.is_empty() {
        let decls: Vec<Value> = req
            .tools
            .iter()
            .map(|t| json!({"name": t.name, "description": t.description, "parameters": json_text(&t.parameters)}))
            .collect();
        b.insert("tools".into(), json!([{ "functionDeclarations": decls }]));
    }
    let mut config = serde_json::Map::new();
    if let Some(n) = req.max_tokens {
        config.insert("maxOutputTokens".into(), n.into());
    }
    if let Some(t) = req.temperature {
        config.insert("temperature".into(), f64::from(t).into());
    }
    if !req.stop.is_empty() {
        config.insert("stopSequences".into(), req.stop.clone().into());
    }
    if let Some(schema) = &req.response_schema {
        config.insert("responseMimeType".into(), "application/json".into());
        config.insert("responseJsonSchema".into(), json_text(schema));
    }
    if !config.is_empty() {
        b.insert("generationConfig".into(), config.into());
    }
    Value::Object(b)
}

pub(super) fn embed_body(model: &str, inputs: &[String]) -> Value {
    let requests: Vec<Value> = inputs
        .iter()
        .map(|text| json!({"model": format!("models/{model}"), "content": {"parts": [{"text": text}]}}))
        .collect();
    json!({ "requests": requests })
}

fn finish(reason: &str) -> Finish {
    match reason {
        "MAX_TOKENS" => Finish::Length,
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" => Finish::ContentFilter,
        _ => Finish::Stop,
    }
}

fn tokens(json: &Value) -> Option<Tokens> {
    let usage = &json["usageMetadata"];
    usage.is_object().then(|| Tokens {
        input: count(&usage["promptTokenCount"]),
        output: count(&usage["candidatesTokenCount"]).saturating_add(count(&usage["thoughtsTokenCount"])),
    })
}

/// A refused prompt, or a candidate stopped for safety with nothing said.
fn blocked(json: &Value, said_something: bool) -> Option<ProviderError> {
    if let Some(reason) = json["promptFeedback"]["blockReason"].as_str() {
        return Some(ProviderError::new(ErrorClass::ContentFilter, format!("prompt blocked: {reason}")));
    }
    let reason = json["candidates"][0]["finishReason"].as_str()?;
    (finish(reason) == Finish::ContentFilter && !said_something)
        .then(|| ProviderError::new(ErrorClass::ContentFilter, format!("answer blocked: {reason}")))
}

/// A candidate's parts as pieces (text, tool calls), thoughts left out.
fn parts(json: &Value, calls: &mut usize) -> Vec<Piece> {
    let mut out = Vec::new();
    for part in json["candidates"][0]["content"]["parts"].as_array().into_iter().flatten() {
        if let Some(t) = part["text"].as_str() {
            if part["thought"] != true {
                out.push(Piece::Text(t.to_string()));
            }
        } else if part["functionCall"].is_object() {
            *calls += 1;
            let f = &part["functionCall"];
            out.push(Piece::ToolCall(ToolCall {
                id: f["id"].as_str().map_or_else(|| synthetic_call_id(*calls), str::to_string),
                name: f["name"].as_str().unwrap_or_default().to_string(),
                arguments: f["args"].to_string(),
            }));
        }
    }
    out
}

pub(super) fn reply(json: &Value) -> Result<Reply, ProviderError> {
    if json["error"].is_object() {
        return Err(error(500, &json.to_string()));
    }
    let mut reply = Reply::default();
    let mut text = String::new();
    let mut calls = Vec::new();
    let pieces = parts(json, &mut 0);
    let any = !pieces.is_empty();
    for piece in pieces {
        match piece {
            Piece::Text(t) => text.push_str(&t),
            Piece::ToolCall(c) => calls.push(c),
            _ => {}
        }
    }
    if let Some(e) = blocked(json, any) {
        return Err(e);
    }
    if !json["candidates"].is_array() {
        return Err(ProviderError::new(
            ErrorClass::Malformed,
            format!("no candidates in {}", excerpt(&json.to_string())),
        ));
    }
    reply.text = text;
    reply.finish = match json["candidates"][0]["finishReason"].as_str() {
        _ if !calls.is_empty() => Finish::ToolCalls,
        Some(reason) => finish(reason),
        None => Finish::Stop,
    };
    reply.tool_calls = calls;
    reply.tokens = tokens(json);
    Ok(reply)
}

/// Classifies `{"error": {"code", "status", "message", "details"}}`.
pub(super) fn error(status: u16, body: &str) -> ProviderError {
    let json: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let err = &json["error"];
    let message = err["message"].as_str().map_or_else(|| excerpt(body), str::to_string);
    let details = err["details"].as_array().map(Vec::as_slice).unwrap_or_default();
    let per_day = details.iter().flat_map(|d| d["violations"].as_array().into_iter().flatten()).any(|v| {
        v["quotaId"].as_str().is_some_and(|q| q.contains("PerDay"))
            || v["quotaMetric"].as_str().is_some_and(|q| q.contains("per_day"))
    });
    let retry_delay = details
        .iter()
        .find(|d| d["@type"].as_str().is_some_and(|t| t.ends_with("google.rpc.RetryInfo")))
        .and_then(|d| d["retryDelay"].as_str())
        .and_then(|d| d.strip_suffix('s'))
        .and_then(|secs| secs.parse::<f64>().ok())
        .map(crate::headroom::provider_wait);
    // A bad key is a 400 INVALID_ARGUMENT whose ErrorInfo says API_KEY_INVALID.
    let bad_key = details.iter().any(|d| d["reason"].as_str().is_some_and(|r| r.starts_with("API_KEY")))
        || message.contains("API key not valid");
    let class = match err["status"].as_str().unwrap_or_default() {
        _ if bad_key => ErrorClass::Auth,
        "RESOURCE_EXHAUSTED" if per_day => ErrorClass::DailyQuota,
        "RESOURCE_EXHAUSTED" if message.to_ascii_lowercase().contains("spending cap") => ErrorClass::SpendLimit,
        "RESOURCE_EXHAUSTED" => ErrorClass::RateLimited,
        "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "NOT_FOUND" | "OUT_OF_RANGE" => ErrorClass::InvalidRequest,
        "PERMISSION_DENIED" | "UNAUTHENTICATED" => ErrorClass::Auth,
        "UNAVAILABLE" => ErrorClass::Overloaded,
        "DEADLINE_EXCEEDED" => ErrorClass::Timeout,
        "INTERNAL" | "UNKNOWN" => ErrorClass::Server,
        _ if status == 200 => ErrorClass::Server,
        _ => class_of_status(status),
    };
    let mut error = ProviderError::new(class, message);
    error.retry_after = retry_delay;
    error
}

/// Decodes SSE events, each a partial `GenerateContentResponse`.
#[derive(Default)]
pub(super) struct Decoder {
    calls: usize,
    said_something: bool,
    finished: bool,
}

impl Decode for Decoder {
    fn framing(&self) -> Framing {
        Framing::Sse
    }

    fn frame(&mut self, frame: Frame, out: &mut Vec<Piece>) -> Result<(), ProviderError> {
        let json = frame_json(&frame)?;
        if json["error"].is_object() {
            return Err(error(200, &frame.data));
        }
        let pieces: Vec<Piece> = parts(&json, &mut self.calls)
            .into_iter()
            .filter(|p| !matches!(p, Piece::Text(t) if t.is_empty()))
            .collect();
        self.said_something |= !pieces.is_empty();
        if let Some(e) = blocked(&json, self.said_something) {
            return Err(e);
        }
        out.extend(pieces);
        // Usage metadata is cumulative in every event: the last one wins.
        if let Some(t) = tokens(&json) {
            out.push(Piece::Tokens(t));
        }
        if let Some(reason) = json["candidates"][0]["finishReason"].as_str() {
            self.finished = true;
            out.push(Piece::Finish(if self.calls > 0 { Finish::ToolCalls } else { finish(reason) }));
        }
        Ok(())
    }

    fn end(&mut self, out: &mut Vec<Piece>) -> Result<(), ProviderError> {
        if !self.finished {
            return Err(ProviderError::new(ErrorClass::Malformed, "stream ended before a `finishReason`"));
        }
        out.push(Piece::Done);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::headroom::MAX_PROVIDER_WAIT;

    #[test]
    fn a_retry_delay_too_long_for_a_duration_is_capped_at_a_day_not_a_panic() {
        // Found by fuzzing: Duration::from_secs_f64 panicked on this body, as an answer or a stream event.
        let body = r#"{"error":{"status":"RESOURCE_EXHAUSTED","message":"slow down","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"1e300s"}]}}"#;
        assert_eq!(error(429, body).retry_after, Some(MAX_PROVIDER_WAIT));
        let event = Frame { event: String::new(), data: body.to_string() };
        let refused = Decoder::default().frame(event, &mut Vec::new()).unwrap_err();
        assert_eq!((refused.class, refused.retry_after), (ErrorClass::RateLimited, Some(MAX_PROVIDER_WAIT)));
    }

    #[test]
    fn token_counts_past_u32_saturate_not_panic() {
        // Found by fuzzing: candidatesTokenCount + thoughtsTokenCount overflowed a u32.
        let data = r#"{"candidates":[{"finishReason":"STOP"}],"usageMetadata":{"candidatesTokenCount":4294967295,"thoughtsTokenCount":1}}"#;
        let mut pieces = Vec::new();
        Decoder::default().frame(Frame { event: String::new(), data: data.to_string() }, &mut pieces).unwrap();
        assert_eq!(pieces, [Piece::Tokens(Tokens { input: 0, output: u32::MAX }), Piece::Finish(Finish::Stop)]);
    }
}
