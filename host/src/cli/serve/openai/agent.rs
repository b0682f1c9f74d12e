//! `model = "agent:NAME"`: a chat answered by a sandboxed agent the key's
//! tenant may run. The agent's input is `{"messages": [...]}` (the chat as
//! sent; on the Anthropic door `{"messages", "system"}`), its output the
//! assistant's message: a JSON string as its text,
//! anything else as it is. The run is the tenant's, under its limits,
//! budget and concurrency cap, as `POST /v1/agents/NAME/run`; a stream is
//! the whole answer in one chunk. The usage is zero: what the agent's own
//! model calls used is in the tenant's usage under the agent's name.

use super::chat::chunk;
use super::{now_secs, refuse};
use crate::keys::Caller;
use crate::runtime::Runtime;
use crate::sandbox::InvokeError;
use axum::Json;
use axum::http::StatusCode;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::convert::Infallible;

/// What a `model` naming an agent starts with.
pub(in super::super) const PREFIX: &str = "agent:";

/// The assistant's text for an agent's `output`.
fn content_of(output: &str) -> String {
    match serde_json::from_str::<Value>(output) {
        Ok(Value::String(text)) => text,
        _ => output.to_string(),
    }
}

/// An agent's answer to a chat.
pub(in super::super) struct Answered {
    /// The assistant's text.
    pub text: String,
    /// The run's id.
    pub run: String,
    /// The agent version that answered.
    pub version: String,
}

/// Why an agent gave no answer: the status, OpenAI's code, the message.
pub(in super::super) struct Unanswered {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl Unanswered {
    fn new(status: StatusCode, code: &'static str, message: impl std::fmt::Display) -> Self {
        Unanswered { status, code, message: message.to_string() }
    }
}

/// Runs agent `name` for `caller` on `input` (the chat), for every door: as
/// `POST /v1/agents/NAME/run` runs it, its output as the assistant's text.
pub(in super::super) async fn ask(
    runtime: &Runtime,
    caller: &Caller,
    name: &str,
    input: &Value,
) -> Result<Answered, Unanswered> {
    let (_, outcome) = super::super::run_for(runtime, caller, name, &input.to_string()).await.map_err(|no| {
        use super::super::NotRun;
        match no {
            NotRun::Missing(_) => {
                let message =
                    format!("no agent {name:?}; `model = \"agent:NAME\"` names a plugin (GET /v1/models lists them)");
                Unanswered::new(StatusCode::NOT_FOUND, "model_not_found", message)
            }
            NotRun::NotServing(m) => Unanswered::new(StatusCode::SERVICE_UNAVAILABLE, "not_serving", m),
            NotRun::Options(m) => Unanswered::new(StatusCode::BAD_REQUEST, "invalid_request", m),
            NotRun::Refused(m) => Unanswered::new(StatusCode::FORBIDDEN, "permission_denied", m),
            NotRun::Busy(m) => Unanswered::new(StatusCode::TOO_MANY_REQUESTS, "rate_limit_exceeded", m),
        }
    })?;
    match &outcome.result {
        Ok(output) => Ok(Answered {
            text: content_of(output),
            run: outcome.run.to_string(),
            version: outcome.version.to_string(),
        }),
        Err(e) => {
            let (status, code) = match e {
                InvokeError::Failed { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "agent_failed"),
                InvokeError::Limit { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "agent_limit"),
                InvokeError::Crashed { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "agent_crashed"),
                InvokeError::Start { .. } => (StatusCode::SERVICE_UNAVAILABLE, "agent_start"),
            };
            Err(Unanswered::new(status, code, e))
        }
    }
}

/// The chat completion (or its stream) of agent `name` on `messages`.
pub(super) async fn answer(
    runtime: &Runtime,
    caller: &Caller,
    name: &str,
    messages: Value,
    stream: bool,
    include_usage: bool,
) -> Response {
    let model = format!("{PREFIX}{name}");
    let answered = match ask(runtime, caller, name, &json!({ "messages": messages })).await {
        Ok(answered) => answered,
        Err(no) => {
            let kind = match no.status {
                StatusCode::NOT_FOUND | StatusCode::BAD_REQUEST => "invalid_request_error",
                StatusCode::FORBIDDEN => "permission_denied",
                _ => "api_error",
            };
            return refuse(no.status, kind, no.code, no.message);
        }
    };
    let text = answered.text;
    let (id, created) = (format!("chatcmpl-{}", answered.run), now_secs());
    let usage = json!({ "prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0 });
    let version = [("x-paddock-version", answered.version)];
    if !stream {
        let body = json!({
            "id": id, "object": "chat.completion", "created": created, "model": model,
            "choices": [{ "index": 0, "message": { "role": "assistant", "content": text }, "finish_reason": "stop", "logprobs": null }],
            "usage": usage,
        });
        return (version, Json(body)).into_response();
    }
    let mut events = vec![
        chunk(&id, created, &model, json!({ "role": "assistant", "content": text }), None).to_string(),
        chunk(&id, created, &model, json!({}), Some("stop")).to_string(),
    ];
    if include_usage {
        let mut last = chunk(&id, created, &model, json!({}), None);
        last["choices"] = json!([]);
        last["usage"] = usage;
        events.push(last.to_string());
    }
    events.push("[DONE]".into());
    let events =
        futures_util::stream::iter(events.into_iter().map(|data| Ok::<_, Infallible>(Event::default().data(data))));
    (version, Sse::new(events)).into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_agents_json_string_is_its_text_and_anything_else_is_kept_as_it_is() {
        assert_eq!(super::content_of(r#""hello""#), "hello");
        assert_eq!(super::content_of(r#"{"a": 1}"#), r#"{"a": 1}"#);
        assert_eq!(super::content_of("plain"), "plain");
    }
}
