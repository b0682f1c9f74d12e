//! `POST /v1/chat/completions`: a chat body mapped onto the gateway's
//! request, answered whole or as a stream of `chat.completion.chunk` events.

use super::super::auth::require;
use super::{AGENT, failed, invalid, now_secs, picked};
use crate::gateway::Completion;
use crate::gateway::types::{ChatRequest, Finish, Message, Role as Speaker, ToolCall, ToolSpec};
use crate::keys::{Caller, Role};
use crate::runtime::Runtime;
use axum::Json;
use axum::extract::{Extension, State};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use std::convert::Infallible;
use std::sync::Arc;

#[derive(Deserialize)]
struct ChatBody {
    model: String,
    messages: Vec<InMessage>,
    #[serde(default)]
    tools: Vec<InTool>,
    response_format: Option<ResponseFormat>,
    max_tokens: Option<u32>,
    max_completion_tokens: Option<u32>,
    temperature: Option<f32>,
    stop: Option<Stop>,
    #[serde(default)]
    stream: bool,
    stream_options: Option<StreamOptions>,
    n: Option<u32>,
    user: Option<String>,
}

#[derive(Deserialize)]
struct InMessage {
    role: String,
    content: Option<Content>,
    #[serde(default)]
    tool_calls: Vec<InToolCall>,
    tool_call_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Deserialize)]
struct Part {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: String,
}

#[derive(Deserialize)]
struct InToolCall {
    id: String,
    function: InCall,
}

#[derive(Deserialize)]
struct InCall {
    name: String,
    #[serde(default)]
    arguments: String,
}

#[derive(Deserialize)]
struct InTool {
    #[serde(rename = "type")]
    kind: String,
    function: InFunction,
}

#[derive(Deserialize)]
struct InFunction {
    name: String,
    #[serde(default)]
    description: String,
    parameters: Option<Value>,
}

#[derive(Deserialize)]
struct ResponseFormat {
    #[serde(rename = "type")]
    kind: String,
    json_schema: Option<JsonSchema>,
}

#[derive(Deserialize)]
struct JsonSchema {
    schema: Option<Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

/// The gateway's request for `body`, or why it cannot be one (`messages[2].role: …`).
fn request(body: ChatBody) -> Result<ChatRequest, String> {
    if body.n.is_some_and(|n| n != 1) {
        return Err("n: only one choice is made (n = 1)".into());
    }
    let mut messages = Vec::with_capacity(body.messages.len());
    for (i, m) in body.messages.into_iter().enumerate() {
        let role = match m.role.as_str() {
            "system" | "developer" => Speaker::System,
            "user" => Speaker::User,
            "assistant" => Speaker::Assistant,
            "tool" => Speaker::Tool,
            other => {
                return Err(format!("messages[{i}].role: `{other}` is not system, developer, user, assistant or tool"));
            }
        };
        let content = match m.content {
            None => String::new(),
            Some(Content::Text(text)) => text,
            Some(Content::Parts(parts)) => {
                let mut text = String::new();
                for (j, part) in parts.into_iter().enumerate() {
                    if part.kind != "text" {
                        return Err(format!(
                            "messages[{i}].content[{j}].type: `{}`; only text parts are read",
                            part.kind
                        ));
                    }
                    text.push_str(&part.text);
                }
                text
            }
        };
        let tool_calls = m
            .tool_calls
            .into_iter()
            .map(|c| ToolCall { id: c.id, name: c.function.name, arguments: c.function.arguments })
            .collect();
        messages.push(Message { role, content, tool_calls, tool_call_id: m.tool_call_id });
    }
    let mut tools = Vec::with_capacity(body.tools.len());
    for (i, t) in body.tools.into_iter().enumerate() {
        if t.kind != "function" {
            return Err(format!("tools[{i}].type: `{}`; only function tools are offered", t.kind));
        }
        let parameters = t.function.parameters.unwrap_or_else(|| json!({ "type": "object" }));
        tools.push(ToolSpec {
            name: t.function.name,
            description: t.function.description,
            parameters: parameters.to_string(),
        });
    }
    let response_schema = match body.response_format {
        None => None,
        Some(f) => match f.kind.as_str() {
            "text" => None,
            "json_object" => Some(json!({ "type": "object" }).to_string()),
            "json_schema" => match f.json_schema.and_then(|s| s.schema) {
                Some(schema) => Some(schema.to_string()),
                None => return Err("response_format.json_schema.schema: missing".into()),
            },
            other => return Err(format!("response_format.type: `{other}` is not text, json_object or json_schema")),
        },
    };
    Ok(ChatRequest {
        route: body.model,
        messages,
        tools,
        response_schema,
        max_tokens: body.max_completion_tokens.or(body.max_tokens),
        temperature: body.temperature,
        stop: match body.stop {
            None => Vec::new(),
            Some(Stop::One(s)) => vec![s],
            Some(Stop::Many(v)) => v,
        },
        conversation: body.user,
        target: None,
    })
}

/// One `chat.completion.chunk` of answer `id`.
pub(super) fn chunk(id: &str, created: u64, model: &str, delta: Value, finish: Option<&str>) -> Value {
    json!({
        "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
        "choices": [{ "index": 0, "delta": delta, "finish_reason": finish, "logprobs": null }],
    })
}

fn finish_reason(finish: Finish) -> &'static str {
    match finish {
        Finish::Stop => "stop",
        Finish::Length => "length",
        Finish::ToolCalls => "tool_calls",
        Finish::ContentFilter => "content_filter",
    }
}

fn tool_calls(calls: &[ToolCall], indexed: bool) -> Vec<Value> {
    calls
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut call =
                json!({ "id": c.id, "type": "function", "function": { "name": c.name, "arguments": c.arguments } });
            if indexed {
                call["index"] = json!(i);
            }
            call
        })
        .collect()
}

fn usage(c: &Completion) -> Value {
    let (input, output) = (c.tokens.input, c.tokens.output);
    json!({ "prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output })
}

pub(super) async fn chat(
    State(runtime): State<Runtime>,
    Extension(caller): Extension<Caller>,
    body: String,
) -> Response {
    if let Err(r) = require(&caller, Role::Run, "call models") {
        return r;
    }
    let text = body;
    let body: ChatBody = match serde_json::from_str(&text) {
        Ok(body) => body,
        Err(e) => return invalid(format!("the body is not a chat completion request: {e}")),
    };
    let (stream, include_usage) = (body.stream, body.stream_options.as_ref().is_some_and(|o| o.include_usage));
    if let Some(name) = body.model.strip_prefix(super::agent::PREFIX) {
        // The agent reads the chat as sent: only this path reads the body twice.
        let sent: Value = serde_json::from_str(&text).unwrap_or_default();
        let messages = sent.get("messages").cloned().unwrap_or(Value::Null);
        return super::agent::answer(&runtime, &caller, name, messages, stream, include_usage).await;
    }
    let mut req = match request(body) {
        Ok(req) => req,
        Err(e) => return invalid(e),
    };
    // The answer names the model as asked: a route, or a pinned target of one.
    let model = std::mem::take(&mut req.route);
    match picked(&runtime, &caller, &model) {
        Ok(pick) => (req.route, req.target) = (pick.route, pick.target),
        Err(r) => return r,
    }
    let who = crate::gateway::Caller { tenant: caller.tenant.clone(), agent: Arc::from(AGENT) };
    let id = format!("chatcmpl-{}", crate::runtime::new_run_id());
    if stream {
        return streamed(&runtime, who, req, (id, model), include_usage).await;
    }
    let done = match runtime.gateway().complete(&who, req).await {
        Ok(done) => done,
        Err(failure) => return failed(&failure.error),
    };
    let reply = &done.reply;
    let content = if reply.text.is_empty() && !reply.tool_calls.is_empty() { Value::Null } else { json!(reply.text) };
    let mut message = json!({ "role": "assistant", "content": content });
    if !reply.tool_calls.is_empty() {
        message["tool_calls"] = json!(tool_calls(&reply.tool_calls, false));
    }
    let body = json!({
        "id": id, "object": "chat.completion", "created": now_secs(), "model": model,
        "choices": [{ "index": 0, "message": message, "finish_reason": finish_reason(reply.finish), "logprobs": null }],
        "usage": usage(&done),
    });
    ([("x-paddock-attempts", done.attempts.to_string())], Json(body)).into_response()
}

/// A streamed answer: the first chunk once the first piece arrived (every
/// failure before it could still fall back), then a chunk a piece, the
/// tool calls, the finish, the usage when asked, and `[DONE]`. A failure
/// after the first piece ends the stream with an error event.
async fn streamed(
    runtime: &Runtime,
    who: crate::gateway::Caller,
    req: ChatRequest,
    (id, model): (String, String),
    include_usage: bool,
) -> Response {
    let reply = match runtime.gateway().stream(&who, req).await {
        Ok(reply) => reply,
        Err(failure) => return failed(&failure.error),
    };
    let attempts = reply.attempts();
    let created = now_secs();
    let chunk = move |delta: Value, finish: Option<&str>| chunk(&id, created, &model, delta, finish);
    enum Stage {
        Start,
        Text,
        Done,
    }
    let state = (reply, Stage::Start, chunk);
    let events = futures_util::stream::unfold(state, move |(mut reply, stage, chunk)| async move {
        let data = match stage {
            Stage::Start => {
                let first = chunk(json!({ "role": "assistant", "content": "" }), None);
                return Some((vec![first.to_string()], (reply, Stage::Text, chunk)));
            }
            Stage::Done => return None,
            Stage::Text => match reply.next_text().await {
                Some(Ok(text)) => vec![chunk(json!({ "content": text }), None).to_string()],
                Some(Err(e)) => {
                    let error = json!({ "error": { "message": e.to_string(), "type": "api_error", "param": null, "code": e.kind() } });
                    vec![error.to_string()]
                }
                None => {
                    let mut end = Vec::new();
                    if let Some(done) = reply.completion() {
                        if !done.reply.tool_calls.is_empty() {
                            let calls = tool_calls(&done.reply.tool_calls, true);
                            end.push(chunk(json!({ "tool_calls": calls }), None).to_string());
                        }
                        end.push(chunk(json!({}), Some(finish_reason(done.reply.finish))).to_string());
                        if include_usage {
                            let mut last = chunk(json!({}), None);
                            last["choices"] = json!([]);
                            last["usage"] = usage(&done);
                            end.push(last.to_string());
                        }
                    }
                    end.push("[DONE]".to_string());
                    return Some((end, (reply, Stage::Done, chunk)));
                }
            },
        };
        let next = if data.first().is_some_and(|d| d.starts_with("{\"error\"")) { Stage::Done } else { Stage::Text };
        Some((data, (reply, next, chunk)))
    });
    let events = futures_util::StreamExt::flat_map(events, |batch| {
        futures_util::stream::iter(batch.into_iter().map(|data| Ok::<_, Infallible>(Event::default().data(data))))
    });
    ([("x-paddock-attempts", attempts.to_string())], Sse::new(events)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: Value) -> Result<ChatRequest, String> {
        request(serde_json::from_value(body).unwrap())
    }

    #[test]
    fn a_chat_body_becomes_the_gateways_request() {
        let req = parse(json!({
            "model": "fast", "user": "u-1", "max_tokens": 9, "max_completion_tokens": 7, "stop": "END",
            "messages": [
                {"role": "developer", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "hel"}, {"type": "text", "text": "lo"}]},
                {"role": "assistant", "content": null,
                 "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "42"}
            ],
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "array"}}}
        }))
        .unwrap();
        assert_eq!((req.route.as_str(), req.max_tokens, req.stop.clone()), ("fast", Some(7), vec!["END".to_string()]));
        assert_eq!(req.conversation.as_deref(), Some("u-1"));
        let roles: Vec<Speaker> = req.messages.iter().map(|m| m.role).collect();
        assert_eq!(roles, [Speaker::System, Speaker::User, Speaker::Assistant, Speaker::Tool]);
        assert_eq!(req.messages[1].content, "hello");
        assert_eq!(req.messages[2].tool_calls[0].name, "f");
        assert_eq!(req.messages[3].tool_call_id.as_deref(), Some("c1"));
        assert_eq!(req.tools[0].parameters, r#"{"type":"object"}"#, "a function without parameters takes an object");
        assert_eq!(req.response_schema.as_deref(), Some(r#"{"type":"array"}"#));
    }

    #[test]
    fn what_the_gateway_cannot_honour_is_refused_naming_the_field() {
        let user = json!([{"role": "user", "content": "hi"}]);
        let refused = |extra: Value| {
            let mut body = json!({"model": "fast", "messages": user});
            body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            parse(body).unwrap_err()
        };
        assert_eq!(refused(json!({"n": 2})), "n: only one choice is made (n = 1)");
        assert_eq!(
            refused(json!({"messages": [{"role": "robot", "content": "x"}]})),
            "messages[0].role: `robot` is not system, developer, user, assistant or tool"
        );
        assert_eq!(
            refused(json!({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})),
            "messages[0].content[0].type: `image_url`; only text parts are read"
        );
        assert_eq!(
            refused(json!({"tools": [{"type": "web_search", "function": {"name": "w"}}]})),
            "tools[0].type: `web_search`; only function tools are offered"
        );
        assert_eq!(
            refused(json!({"response_format": {"type": "xml"}})),
            "response_format.type: `xml` is not text, json_object or json_schema"
        );
        assert_eq!(
            refused(json!({"response_format": {"type": "json_schema"}})),
            "response_format.json_schema.schema: missing"
        );
    }
}
