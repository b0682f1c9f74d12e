//! The Anthropic-compatible door: `POST /v1/messages`, whole and streamed
//! (Anthropic's event names: `message_start`, `content_block_start`,
//! `content_block_delta`, `content_block_stop`, `message_delta`,
//! `message_stop`, and `error`), so Anthropic's SDKs reach the gateway. The
//! key may come as `x-api-key`, as those SDKs send it.
//!
//! `model` names a route the key's tenant may use (or pins one of its
//! targets as `ROUTE/TARGET`), as on the OpenAI door, and the call takes the
//! same gateway path, recorded as agent `paddock-api`; `agent:NAME` is
//! answered by an agent ([`ask`]).
//! Errors come in Anthropic's shape, `{"type": "error", "error": {"type",
//! "message"}}`: `not_found_error` 404, `permission_error` 403,
//! `rate_limit_error` 429 (a budget too), `invalid_request_error` 400,
//! `api_error` 503 and 504.

use super::auth::require;
use super::openai::agent::{PREFIX, ask};
use super::openai::{AGENT, RouteRefusal, pick};
use crate::gateway::LlmError;
use crate::gateway::types::{ChatRequest, Finish, Message, Role as Speaker, ToolCall, ToolSpec};
use crate::keys::{Caller, Role};
use crate::runtime::Runtime;
use axum::extract::{DefaultBodyLimit, Extension, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use std::convert::Infallible;
use std::sync::Arc;

pub(super) fn routes(runtime: Runtime) -> Router {
    let limit = usize::try_from(runtime.settings().caps.arg_bytes).unwrap_or(usize::MAX);
    Router::new().route("/v1/messages", post(messages)).layer(DefaultBodyLimit::max(limit)).with_state(runtime)
}

/// An error in Anthropic's shape.
fn refuse(status: StatusCode, kind: &str, message: impl std::fmt::Display) -> Response {
    let body = json!({ "type": "error", "error": { "type": kind, "message": message.to_string() } });
    (status, Json(body)).into_response()
}

fn invalid(message: impl std::fmt::Display) -> Response {
    refuse(StatusCode::BAD_REQUEST, "invalid_request_error", message)
}

/// What the gateway refused, as Anthropic says it: its status and error type.
fn kind_of(e: &LlmError) -> (StatusCode, &'static str) {
    match e {
        LlmError::Denied(_) => (StatusCode::FORBIDDEN, "permission_error"),
        LlmError::BudgetExceeded(_) | LlmError::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limit_error"),
        LlmError::InvalidRequest(_) | LlmError::ContentFiltered(_) => {
            (StatusCode::BAD_REQUEST, "invalid_request_error")
        }
        LlmError::Timeout(_) => (StatusCode::GATEWAY_TIMEOUT, "api_error"),
        LlmError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "api_error"),
    }
}

fn failed(e: &LlmError) -> Response {
    let (status, kind) = kind_of(e);
    let response = refuse(status, kind, e);
    match e {
        LlmError::RateLimited(after) => super::auth::retry_after(response, *after),
        _ => response,
    }
}

#[derive(Deserialize)]
struct MessagesBody {
    model: String,
    max_tokens: Option<u32>,
    messages: Vec<InMessage>,
    system: Option<Text>,
    #[serde(default)]
    tools: Vec<InTool>,
    #[serde(default)]
    stop_sequences: Vec<String>,
    temperature: Option<f32>,
    #[serde(default)]
    stream: bool,
    metadata: Option<Metadata>,
}

#[derive(Deserialize)]
struct Metadata {
    user_id: Option<String>,
}

#[derive(Deserialize)]
struct InMessage {
    role: String,
    content: Blocks,
}

/// A text, or text blocks.
#[derive(Deserialize)]
#[serde(untagged)]
enum Text {
    Plain(String),
    Blocks(Vec<Block>),
}

/// Content: a text, or blocks.
#[derive(Deserialize)]
#[serde(untagged)]
enum Blocks {
    Plain(String),
    Blocks(Vec<Block>),
}

#[derive(Deserialize)]
struct Block {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    id: String,
    #[serde(default)]
    name: String,
    input: Option<Value>,
    #[serde(default)]
    tool_use_id: String,
    content: Option<Text>,
}

#[derive(Deserialize)]
struct InTool {
    name: String,
    #[serde(default)]
    description: String,
    input_schema: Option<Value>,
}

/// The text of text blocks; `where_` names them in a refusal.
fn text_of(text: Text, where_: &str) -> Result<String, String> {
    match text {
        Text::Plain(text) => Ok(text),
        Text::Blocks(blocks) => {
            let mut out = String::new();
            for (i, b) in blocks.into_iter().enumerate() {
                if b.kind != "text" {
                    return Err(format!("{where_}[{i}].type: `{}`; only text blocks are read here", b.kind));
                }
                out.push_str(&b.text);
            }
            Ok(out)
        }
    }
}

/// The gateway's request for `body`, or why it cannot be one.
fn request(body: MessagesBody) -> Result<ChatRequest, String> {
    let max_tokens = body.max_tokens.ok_or("max_tokens: required")?;
    let mut messages = Vec::new();
    if let Some(system) = body.system {
        messages.push(Message::new(Speaker::System, text_of(system, "system")?));
    }
    for (i, m) in body.messages.into_iter().enumerate() {
        let role = match m.role.as_str() {
            "user" => Speaker::User,
            "assistant" => Speaker::Assistant,
            other => return Err(format!("messages[{i}].role: `{other}` is not user or assistant")),
        };
        let blocks = match m.content {
            Blocks::Plain(text) => {
                messages.push(Message::new(role, text));
                continue;
            }
            Blocks::Blocks(blocks) => blocks,
        };
        let mut said = Message::new(role, "");
        for (j, b) in blocks.into_iter().enumerate() {
            match (b.kind.as_str(), role) {
                ("text", _) => said.content.push_str(&b.text),
                ("tool_use", Speaker::Assistant) => said.tool_calls.push(ToolCall {
                    id: b.id,
                    name: b.name,
                    arguments: b.input.unwrap_or_else(|| json!({})).to_string(),
                }),
                ("tool_result", Speaker::User) => {
                    let content = match b.content {
                        Some(text) => text_of(text, &format!("messages[{i}].content[{j}].content"))?,
                        None => String::new(),
                    };
                    messages
                        .push(Message { tool_call_id: Some(b.tool_use_id), ..Message::new(Speaker::Tool, content) });
                }
                (kind, _) => {
                    return Err(format!(
                        "messages[{i}].content[{j}].type: `{kind}` is not read in a {} message",
                        m.role
                    ));
                }
            }
        }
        if !said.content.is_empty() || !said.tool_calls.is_empty() {
            messages.push(said);
        }
    }
    let tools = body
        .tools
        .into_iter()
        .map(|t| ToolSpec {
            name: t.name,
            description: t.description,
            parameters: t.input_schema.unwrap_or_else(|| json!({ "type": "object" })).to_string(),
        })
        .collect();
    Ok(ChatRequest {
        route: body.model,
        messages,
        tools,
        response_schema: None,
        max_tokens: Some(max_tokens),
        temperature: body.temperature,
        stop: body.stop_sequences,
        conversation: body.metadata.and_then(|m| m.user_id),
        target: None,
    })
}

fn stop_reason(finish: Finish) -> &'static str {
    match finish {
        Finish::Stop => "end_turn",
        Finish::Length => "max_tokens",
        Finish::ToolCalls => "tool_use",
        Finish::ContentFilter => "refusal",
    }
}

/// A tool call as a `tool_use` block.
fn tool_use(call: &ToolCall) -> Value {
    let input: Value = serde_json::from_str(&call.arguments).unwrap_or_else(|_| json!({}));
    json!({ "type": "tool_use", "id": call.id, "name": call.name, "input": input })
}

async fn messages(State(runtime): State<Runtime>, Extension(caller): Extension<Caller>, body: String) -> Response {
    if let Err(r) = require(&caller, Role::Run, "call models") {
        return r;
    }
    let text = body;
    let body: MessagesBody = match serde_json::from_str(&text) {
        Ok(body) => body,
        Err(e) => return invalid(format!("the body is not a messages request: {e}")),
    };
    let stream = body.stream;
    if let Some(name) = body.model.strip_prefix(PREFIX) {
        // The agent reads the chat as sent: only this path reads the body twice.
        let sent: Value = serde_json::from_str(&text).unwrap_or_default();
        let input = json!({ "messages": sent["messages"], "system": sent["system"] });
        return agent_answer(&runtime, &caller, name, input, stream).await;
    }
    let mut req = match request(body) {
        Ok(req) => req,
        Err(e) => return invalid(e),
    };
    // The answer names the model as asked: a route, or a pinned target of one.
    let model = std::mem::take(&mut req.route);
    match pick(&runtime, &caller, &model) {
        Ok(pick) => (req.route, req.target) = (pick.route, pick.target),
        Err(RouteRefusal::Unknown(m)) => return refuse(StatusCode::NOT_FOUND, "not_found_error", m),
        Err(RouteRefusal::NotGranted(m)) => return refuse(StatusCode::FORBIDDEN, "permission_error", m),
    }
    let who = crate::gateway::Caller { tenant: caller.tenant.clone(), agent: Arc::from(AGENT) };
    let id = format!("msg_{}", crate::runtime::new_run_id());
    if stream {
        return streamed(&runtime, who, req, (id, model)).await;
    }
    let done = match runtime.gateway().complete(&who, req).await {
        Ok(done) => done,
        Err(failure) => return failed(&failure.error),
    };
    let reply = &done.reply;
    let mut content: Vec<Value> = Vec::new();
    if !reply.text.is_empty() || reply.tool_calls.is_empty() {
        content.push(json!({ "type": "text", "text": reply.text }));
    }
    content.extend(reply.tool_calls.iter().map(tool_use));
    let body = json!({
        "id": id, "type": "message", "role": "assistant", "model": model, "content": content,
        "stop_reason": stop_reason(reply.finish), "stop_sequence": null,
        "usage": { "input_tokens": done.tokens.input, "output_tokens": done.tokens.output },
    });
    ([("x-paddock-attempts", done.attempts.to_string())], Json(body)).into_response()
}

/// One server-sent event of Anthropic's stream.
fn event(name: &str, data: Value) -> Result<Event, Infallible> {
    Ok(Event::default().event(name).data(data.to_string()))
}

/// A stream's first events: `message_start`, and the text block's start.
fn opening(id: &str, model: &str, input_tokens: u32) -> Vec<Result<Event, Infallible>> {
    vec![
        event(
            "message_start",
            json!({ "type": "message_start", "message": {
                "id": id, "type": "message", "role": "assistant", "model": model, "content": [],
                "stop_reason": null, "stop_sequence": null,
                "usage": { "input_tokens": input_tokens, "output_tokens": 0 },
            }}),
        ),
        event(
            "content_block_start",
            json!({ "type": "content_block_start", "index": 0, "content_block": { "type": "text", "text": "" } }),
        ),
    ]
}

/// `model = "agent:NAME"`: the agent's answer to `input` as a message, or
/// streamed whole in one text delta; its failures as Anthropic's errors.
async fn agent_answer(runtime: &Runtime, caller: &Caller, name: &str, input: Value, stream: bool) -> Response {
    let answered = match ask(runtime, caller, name, &input).await {
        Ok(answered) => answered,
        Err(no) => {
            let kind = match no.status {
                StatusCode::NOT_FOUND => "not_found_error",
                StatusCode::FORBIDDEN => "permission_error",
                StatusCode::BAD_REQUEST => "invalid_request_error",
                _ => "api_error",
            };
            return refuse(no.status, kind, no.message);
        }
    };
    let (id, model) = (format!("msg_{}", answered.run), format!("{PREFIX}{name}"));
    let version = [("x-paddock-version", answered.version)];
    if !stream {
        let body = json!({
            "id": id, "type": "message", "role": "assistant", "model": model,
            "content": [{ "type": "text", "text": answered.text }],
            "stop_reason": "end_turn", "stop_sequence": null, "usage": { "input_tokens": 0, "output_tokens": 0 },
        });
        return (version, Json(body)).into_response();
    }
    let mut events = opening(&id, &model, 0);
    let delta =
        json!({ "type": "content_block_delta", "index": 0, "delta": { "type": "text_delta", "text": answered.text } });
    events.push(event("content_block_delta", delta));
    events.push(event("content_block_stop", json!({ "type": "content_block_stop", "index": 0 })));
    let end = json!({ "type": "message_delta", "delta": { "stop_reason": "end_turn", "stop_sequence": null },
                      "usage": { "output_tokens": 0 } });
    events.push(event("message_delta", end));
    events.push(event("message_stop", json!({ "type": "message_stop" })));
    (version, Sse::new(futures_util::stream::iter(events))).into_response()
}

/// A streamed answer: `message_start` and the text block's start once the
/// first piece arrived (every failure before it could still fall back), a
/// delta a piece, the tool calls as blocks of their own, then
/// `message_delta` with the stop reason and usage, and `message_stop`. A
/// failure after the first piece ends the stream with an `error` event.
async fn streamed(
    runtime: &Runtime,
    who: crate::gateway::Caller,
    req: ChatRequest,
    (id, model): (String, String),
) -> Response {
    let input_tokens = req.estimated_input_tokens();
    let reply = match runtime.gateway().stream(&who, req).await {
        Ok(reply) => reply,
        Err(failure) => return failed(&failure.error),
    };
    let attempts = reply.attempts();
    let start = opening(&id, &model, input_tokens);
    /// Where the stream stands.
    enum Stage {
        Start(Vec<Result<Event, Infallible>>),
        Text,
        Done,
    }
    let events = futures_util::stream::unfold((reply, Stage::Start(start)), |(mut reply, stage)| async move {
        match stage {
            Stage::Start(first) => return Some((first, (reply, Stage::Text))),
            Stage::Done => return None,
            Stage::Text => {}
        }
        match reply.next_text().await {
            Some(Ok(text)) => {
                let delta = json!({ "type": "content_block_delta", "index": 0,
                                    "delta": { "type": "text_delta", "text": text } });
                Some((vec![event("content_block_delta", delta)], (reply, Stage::Text)))
            }
            Some(Err(e)) => {
                let (_, kind) = kind_of(&e);
                let error = json!({ "type": "error", "error": { "type": kind, "message": e.to_string() } });
                Some((vec![event("error", error)], (reply, Stage::Done)))
            }
            None => {
                let done = reply.completion()?;
                let mut end = vec![event("content_block_stop", json!({ "type": "content_block_stop", "index": 0 }))];
                for (i, call) in done.reply.tool_calls.iter().enumerate() {
                    let index = i + 1;
                    let mut block = tool_use(call);
                    block["input"] = json!({});
                    end.push(event(
                        "content_block_start",
                        json!({ "type": "content_block_start", "index": index, "content_block": block }),
                    ));
                    let delta = json!({ "type": "input_json_delta", "partial_json": call.arguments });
                    end.push(event(
                        "content_block_delta",
                        json!({ "type": "content_block_delta", "index": index, "delta": delta }),
                    ));
                    end.push(event("content_block_stop", json!({ "type": "content_block_stop", "index": index })));
                }
                end.push(event(
                    "message_delta",
                    json!({ "type": "message_delta",
                            "delta": { "stop_reason": stop_reason(done.reply.finish), "stop_sequence": null },
                            "usage": { "output_tokens": done.tokens.output } }),
                ));
                end.push(event("message_stop", json!({ "type": "message_stop" })));
                Some((end, (reply, Stage::Done)))
            }
        }
    });
    let events = futures_util::StreamExt::flat_map(events, futures_util::stream::iter);
    ([("x-paddock-attempts", attempts.to_string())], Sse::new(events)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: Value) -> Result<ChatRequest, String> {
        request(serde_json::from_value(body).unwrap())
    }

    #[test]
    fn a_messages_body_becomes_the_gateways_request_tool_results_as_tool_messages() {
        let req = parse(json!({
            "model": "fast", "max_tokens": 64, "stop_sequences": ["END"], "metadata": {"user_id": "u-1"},
            "system": [{"type": "text", "text": "be "}, {"type": "text", "text": "brief"}],
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": [{"type": "text", "text": "let me look"},
                    {"type": "tool_use", "id": "t1", "name": "lookup", "input": {"q": "x"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "42"},
                    {"type": "text", "text": "and?"}]}
            ],
            "tools": [{"name": "lookup", "input_schema": {"type": "object"}}]
        }))
        .unwrap();
        let roles: Vec<Speaker> = req.messages.iter().map(|m| m.role).collect();
        assert_eq!(roles, [Speaker::System, Speaker::User, Speaker::Assistant, Speaker::Tool, Speaker::User]);
        assert_eq!(req.messages[0].content, "be brief");
        let call = &req.messages[2].tool_calls[0];
        assert_eq!((call.id.as_str(), call.name.as_str(), call.arguments.as_str()), ("t1", "lookup", r#"{"q":"x"}"#));
        assert_eq!((req.messages[3].tool_call_id.as_deref(), req.messages[3].content.as_str()), (Some("t1"), "42"));
        assert_eq!(req.messages[4].content, "and?");
        assert_eq!(
            (req.max_tokens, req.stop.clone(), req.conversation.as_deref()),
            (Some(64), vec!["END".into()], Some("u-1"))
        );
    }

    #[test]
    fn what_the_messages_api_requires_or_this_door_cannot_read_is_refused_naming_the_field() {
        let ask = json!([{"role": "user", "content": "hi"}]);
        assert_eq!(parse(json!({"model": "fast", "messages": ask})).unwrap_err(), "max_tokens: required");
        assert_eq!(
            parse(json!({"model": "fast", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}))
                .unwrap_err(),
            "messages[0].role: `system` is not user or assistant"
        );
        assert_eq!(
            parse(json!({"model": "fast", "max_tokens": 5,
                         "messages": [{"role": "user", "content": [{"type": "image"}]}]}))
            .unwrap_err(),
            "messages[0].content[0].type: `image` is not read in a user message"
        );
    }
}
