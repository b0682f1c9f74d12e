//! OpenAI chat completions (and every server that copies the format).

use super::{Decode, Frame, Framing, count, count_of, frame_json, function_tools, json_text, role_name};
use crate::error::{ErrorClass, ProviderError, class_of_status, excerpt};
use crate::types::{ChatRequest, Finish, Piece, Reply, Tokens, ToolCall};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

pub(super) fn body(model: &str, req: &ChatRequest, stream: bool, max_completion_tokens: bool) -> Value {
    let messages: Vec<Value> = req
        .messages
        .iter()
        .map(|m| {
            let mut msg = Map::new();
            let role = role_name(m.role);
            msg.insert("role".into(), role.into());
            msg.insert("content".into(), m.content.clone().into());
            if !m.tool_calls.is_empty() {
                let calls: Vec<Value> = m
                    .tool_calls
                    .iter()
                    .map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}))
                    .collect();
                msg.insert("tool_calls".into(), calls.into());
            }
            if let Some(id) = &m.tool_call_id {
                msg.insert("tool_call_id".into(), id.clone().into());
            }
            Value::Object(msg)
        })
        .collect();
    let mut b = Map::new();
    b.insert("model".into(), model.into());
    b.insert("messages".into(), messages.into());
    if !req.tools.is_empty() {
        b.insert("tools".into(), function_tools(req).into());
    }
    if let Some(schema) = &req.response_schema {
        b.insert(
            "response_format".into(),
            json!({"type": "json_schema", "json_schema": {"name": "reply", "schema": json_text(schema), "strict": true}}),
        );
    }
    if let Some(n) = req.max_tokens {
        let field = if max_completion_tokens { "max_completion_tokens" } else { "max_tokens" };
        b.insert(field.into(), n.into());
    }
    if let Some(t) = req.temperature {
        b.insert("temperature".into(), f64::from(t).into());
    }
    if !req.stop.is_empty() {
        b.insert("stop".into(), req.stop.clone().into());
    }
    if stream {
        b.insert("stream".into(), true.into());
        // Without this, a stream carries no usage at all.
        b.insert("stream_options".into(), json!({"include_usage": true}));
    }
    Value::Object(b)
}

fn finish(reason: &str) -> Finish {
    match reason {
        "length" => Finish::Length,
        "tool_calls" | "function_call" => Finish::ToolCalls,
        "content_filter" => Finish::ContentFilter,
        _ => Finish::Stop,
    }
}

fn tokens(usage: &Value) -> Option<Tokens> {
    usage
        .is_object()
        .then(|| Tokens { input: count(&usage["prompt_tokens"]), output: count(&usage["completion_tokens"]) })
}

pub(super) fn reply(json: &Value) -> Result<Reply, ProviderError> {
    if json.get("error").is_some_and(|e| !e.is_null()) {
        return Err(error(500, &json.to_string()));
    }
    let choice = &json["choices"][0];
    let message = &choice["message"];
    if !message.is_object() {
        return Err(ProviderError::new(
            ErrorClass::Malformed,
            format!("no choices[0].message in {}", excerpt(&json.to_string())),
        ));
    }
    let tool_calls = message["tool_calls"]
        .as_array()
        .map(|calls| {
            calls
                .iter()
                .map(|c| ToolCall {
                    id: c["id"].as_str().unwrap_or_default().to_string(),
                    name: c["function"]["name"].as_str().unwrap_or_default().to_string(),
                    arguments: c["function"]["arguments"].as_str().unwrap_or("{}").to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Reply {
        text: message["content"].as_str().unwrap_or_default().to_string(),
        tool_calls,
        finish: finish(choice["finish_reason"].as_str().unwrap_or("stop")),
        tokens: tokens(&json["usage"]),
    })
}

/// An answer read from its bytes without building a JSON value: the shape
/// OpenAI and the servers copying it send, each field read of the type
/// [`reply`] reads it as, other fields skipped. Anything else — an error, no choice, a field of
/// another type, a key twice — is `None`, for [`reply`] to read as a value.
pub(super) fn plain_reply(body: &[u8]) -> Option<Reply> {
    let Obj(answer) = serde_json::from_slice::<Obj<Answer>>(body).ok()?;
    if answer.error.is_some() {
        return None;
    }
    let Obj(choice) = answer.choices.into_iter().next()?;
    let Obj(message) = choice.message;
    let tool_calls = message.tool_calls.unwrap_or_default().into_iter().map(|Obj(call)| {
        let (name, arguments) = call.function.map_or((None, None), |Obj(f)| (f.name, f.arguments));
        ToolCall {
            id: call.id.unwrap_or_default(),
            name: name.unwrap_or_default(),
            arguments: arguments.unwrap_or_else(|| "{}".into()),
        }
    });
    Some(Reply {
        text: message.content.unwrap_or_default(),
        tool_calls: tool_calls.collect(),
        finish: finish(choice.finish_reason.as_deref().unwrap_or("stop")),
        tokens: answer
            .usage
            .map(|Obj(u)| Tokens { input: count_of(u.prompt_tokens), output: count_of(u.completion_tokens) }),
    })
}

#[derive(serde::Deserialize)]
struct Answer {
    #[serde(default)]
    error: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    choices: Vec<Obj<Choice>>,
    #[serde(default)]
    usage: Option<Obj<Usage>>,
}

#[derive(serde::Deserialize)]
struct Choice {
    message: Obj<Message>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(serde::Deserialize)]
struct Message {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<Obj<Call>>>,
}

#[derive(serde::Deserialize)]
struct Call {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<Obj<Function>>,
}

#[derive(serde::Deserialize)]
struct Function {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

#[derive(serde::Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
}

/// `T` read from a JSON object only: serde reads a struct from an array
/// too, by position, where [`reply`] finds no field in one.
struct Obj<T>(T);

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for Obj<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Fields<T>(std::marker::PhantomData<T>);
        impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for Fields<T> {
            type Value = T;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_map(Fields(std::marker::PhantomData)).map(Obj)
    }
}

/// Classifies an OpenAI error body (`{"error": {"type", "code", "message"}}`).
pub(super) fn error(status: u16, body: &str) -> ProviderError {
    let json: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let err = &json["error"];
    let kind = err["type"].as_str().unwrap_or_default();
    let code = err["code"].as_str().unwrap_or_default();
    let message = err["message"].as_str().map_or_else(|| excerpt(body), str::to_string);
    let lower = message.to_ascii_lowercase();
    let class = if kind == "insufficient_quota" || code == "insufficient_quota" {
        if lower.contains("hard limit") || lower.contains("spend") || lower.contains("budget") {
            ErrorClass::SpendLimit
        } else {
            ErrorClass::InsufficientQuota
        }
    } else if code == "content_filter" || code == "content_policy_violation" || kind == "content_filter" {
        ErrorClass::ContentFilter
    } else if code == "invalid_api_key" || kind == "authentication_error" {
        ErrorClass::Auth
    } else if lower.contains("per day") || code == "daily_limit_exceeded" {
        ErrorClass::DailyQuota
    } else if status == 200 {
        // An error event inside a stream that began well.
        ErrorClass::Server
    } else {
        class_of_status(status)
    };
    ProviderError::new(class, message)
}

/// Decodes `data: {chunk}` events up to `data: [DONE]`.
#[derive(Default)]
pub(super) struct Decoder {
    /// Tool calls being streamed, by index: id, name, argument fragments.
    calls: BTreeMap<u64, ToolCall>,
    done: bool,
}

impl Decode for Decoder {
    fn framing(&self) -> Framing {
        Framing::Sse
    }

    fn frame(&mut self, frame: Frame, out: &mut Vec<Piece>) -> Result<(), ProviderError> {
        if frame.data.trim() == "[DONE]" {
            self.flush_calls(out);
            self.done = true;
            out.push(Piece::Done);
            return Ok(());
        }
        let chunk = frame_json(&frame)?;
        if chunk.get("error").is_some_and(|e| !e.is_null()) {
            return Err(error(200, &frame.data));
        }
        if let Some(tokens) = tokens(&chunk["usage"]) {
            out.push(Piece::Tokens(tokens));
        }
        let Some(choice) = chunk["choices"].get(0) else { return Ok(()) };
        let delta = &choice["delta"];
        if let Some(text) = delta["content"].as_str().filter(|t| !t.is_empty()) {
            out.push(Piece::Text(text.to_string()));
        }
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            let entry = self.calls.entry(call["index"].as_u64().unwrap_or(0)).or_default();
            if let Some(id) = call["id"].as_str() {
                entry.id = id.to_string();
            }
            if let Some(name) = call["function"]["name"].as_str() {
                entry.name.push_str(name);
            }
            if let Some(args) = call["function"]["arguments"].as_str() {
                entry.arguments.push_str(args);
            }
        }
        if let Some(reason) = choice["finish_reason"].as_str() {
            self.flush_calls(out);
            out.push(Piece::Finish(finish(reason)));
        }
        Ok(())
    }

    fn end(&mut self, _out: &mut Vec<Piece>) -> Result<(), ProviderError> {
        if self.done {
            Ok(())
        } else {
            Err(ProviderError::new(ErrorClass::Malformed, "stream ended before `data: [DONE]`"))
        }
    }
}

impl Decoder {
    fn flush_calls(&mut self, out: &mut Vec<Piece>) {
        for (_, call) in std::mem::take(&mut self.calls) {
            out.push(Piece::ToolCall(call));
        }
    }
}
