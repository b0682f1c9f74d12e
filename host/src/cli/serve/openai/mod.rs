//! The OpenAI-compatible front door: `GET /v1/models`, `POST
//! /v1/chat/completions` (whole and streamed, tools, `response_format`,
//! `stream_options.include_usage`) and `POST /v1/embeddings` (floats or
//! base64), so the official SDKs and the frameworks built on them reach the
//! gateway with a Paddock API key as their key.
//!
//! `model` names a route the key's tenant may use, or `ROUTE/TARGET` the
//! route's targets whose `provider/model` (or model) is TARGET. A call takes the path an
//! agent's call takes — the tenant's grant, its budgets and the ledger, the
//! route's whole resilience policy, usage, metrics and traces — recorded for
//! the tenant as agent `paddock-api`. Errors come in OpenAI's shape, `{"error":
//! {"message", "type", "param", "code"}}`, with its statuses: an unknown route
//! 404 `model_not_found`, a route the tenant may not use 403, a budget 429
//! `insufficient_quota`, every target failing 503. `x-paddock-attempts` says
//! how many provider attempts the answer took.

pub(super) mod agent;
mod chat;

use super::auth::require;
use crate::gateway::LlmError;
use crate::gateway::types::{ChatRequest, Message, Role as Speaker};
use crate::keys::{Caller, Role};
use crate::runtime::Runtime;
use axum::extract::{DefaultBodyLimit, Extension, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// The agent name front-door calls are recorded under.
pub(super) const AGENT: &str = "paddock-api";

pub(super) fn routes(runtime: Runtime) -> Router {
    let limit = usize::try_from(runtime.settings().caps.arg_bytes).unwrap_or(usize::MAX);
    Router::new()
        .route("/v1/chat/completions", post(chat::chat))
        .route("/v1/models", get(models))
        .route("/v1/embeddings", post(embeddings))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(runtime)
}

/// An error in OpenAI's shape.
fn refuse(status: StatusCode, kind: &str, code: &str, message: impl std::fmt::Display) -> Response {
    let body = json!({ "error": { "message": message.to_string(), "type": kind, "param": null, "code": code } });
    (status, Json(body)).into_response()
}

fn invalid(message: impl std::fmt::Display) -> Response {
    refuse(StatusCode::BAD_REQUEST, "invalid_request_error", "invalid_request", message)
}

/// What the gateway refused, as OpenAI says it.
fn failed(e: &LlmError) -> Response {
    match e {
        LlmError::Denied(m) => refuse(StatusCode::FORBIDDEN, "permission_denied", "permission_denied", m),
        LlmError::BudgetExceeded(m) => {
            refuse(StatusCode::TOO_MANY_REQUESTS, "insufficient_quota", "insufficient_quota", m)
        }
        LlmError::RateLimited(after) => {
            let message = format!("every target of the route is rate limited; retry after {} ms", after.as_millis());
            let response = refuse(StatusCode::TOO_MANY_REQUESTS, "rate_limit_exceeded", "rate_limit_exceeded", message);
            super::auth::retry_after(response, *after)
        }
        LlmError::InvalidRequest(m) => invalid(m),
        LlmError::ContentFiltered(m) => refuse(StatusCode::BAD_REQUEST, "invalid_request_error", "content_filter", m),
        LlmError::Timeout(m) => refuse(StatusCode::GATEWAY_TIMEOUT, "timeout", "timeout", m),
        LlmError::Unavailable(m) => refuse(StatusCode::SERVICE_UNAVAILABLE, "api_error", "unavailable", m),
    }
}

/// The routes `caller`'s tenant may use, by name.
#[allow(clippy::result_large_err)] // the refusal is the answer, sent once
fn granted(runtime: &Runtime, caller: &Caller) -> Result<Vec<Arc<str>>, Response> {
    let policy = runtime
        .settings()
        .tenants
        .get(&caller.tenant)
        .map_err(|e| refuse(StatusCode::FORBIDDEN, "permission_denied", "permission_denied", e))?;
    let routes = runtime.gateway().routes();
    Ok(routes.iter().map(|r| r.name.clone()).filter(|name| policy.routes.allows(name)).collect())
}

async fn models(State(runtime): State<Runtime>, Extension(caller): Extension<Caller>) -> Response {
    if let Err(r) = require(&caller, Role::Run, "list models") {
        return r;
    }
    let routes = match granted(&runtime, &caller) {
        Ok(routes) => routes,
        Err(r) => return r,
    };
    // And the agents the tenant may run, as `agent:NAME`.
    let agents: Vec<String> = match runtime.settings().tenants.get(&caller.tenant) {
        Ok(policy) => runtime
            .plugins()
            .into_iter()
            .filter(|p| p.serving.is_some() && policy.check_agent(&p.name).is_ok())
            .map(|p| format!("{}{}", agent::PREFIX, p.name))
            .collect(),
        Err(_) => Vec::new(),
    };
    let names = routes.iter().map(|r| r.to_string()).chain(agents);
    let data: Vec<Value> =
        names.map(|id| json!({ "id": id, "object": "model", "created": 0, "owned_by": "paddock" })).collect();
    Json(json!({ "object": "list", "data": data })).into_response()
}

pub(super) fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[derive(Deserialize)]
struct EmbedBody {
    model: String,
    input: Input,
    encoding_format: Option<String>,
    dimensions: Option<u32>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Input {
    One(String),
    Many(Vec<String>),
}

/// Why `caller`'s tenant may not use a `model`.
pub(super) enum RouteRefusal {
    /// No route has the name, or the route no such target.
    Unknown(String),
    /// The tenant is not granted it (or is no tenant).
    NotGranted(String),
}

/// What a caller's `model` picks: a route, and the target it pins.
pub(super) struct Pick {
    pub route: String,
    pub target: Option<String>,
}

/// The route (and pinned target) `model` names, when `caller`'s tenant may
/// use it, for every door: `ROUTE`, or `ROUTE/TARGET` where TARGET is one of
/// its targets' `provider/model` or model.
pub(super) fn pick(runtime: &Runtime, caller: &Caller, model: &str) -> Result<Pick, RouteRefusal> {
    let tenant = &*caller.tenant;
    let policy = runtime.settings().tenants.get(tenant).map_err(|e| RouteRefusal::NotGranted(e.to_string()))?;
    let Some((route, target)) = runtime.gateway().find_route(model) else {
        return Err(RouteRefusal::Unknown(format!(
            "no route {model:?}; `model` names a route, or ROUTE/TARGET to pin one of its targets (GET /v1/models lists them)"
        )));
    };
    let name = &*route.name;
    if !policy.routes.allows(name) {
        return Err(RouteRefusal::NotGranted(format!(
            "tenant {tenant:?} may not use route {name:?} (tenants.{tenant}.routes)"
        )));
    }
    if let Some(target) = target
        && route.pinned(target).is_none()
    {
        return Err(RouteRefusal::Unknown(route.no_target(target)));
    }
    Ok(Pick { route: name.to_string(), target: target.map(String::from) })
}

/// [`pick`], refused in OpenAI's words: unknown 404, not granted 403.
#[allow(clippy::result_large_err)] // the refusal is the answer, sent once
fn picked(runtime: &Runtime, caller: &Caller, model: &str) -> Result<Pick, Response> {
    pick(runtime, caller, model).map_err(|refusal| match refusal {
        RouteRefusal::Unknown(m) => refuse(StatusCode::NOT_FOUND, "invalid_request_error", "model_not_found", m),
        RouteRefusal::NotGranted(m) => refuse(StatusCode::FORBIDDEN, "permission_denied", "permission_denied", m),
    })
}

async fn embeddings(State(runtime): State<Runtime>, Extension(caller): Extension<Caller>, body: String) -> Response {
    if let Err(r) = require(&caller, Role::Run, "call models") {
        return r;
    }
    let body: EmbedBody = match serde_json::from_str(&body) {
        Ok(body) => body,
        Err(e) => return invalid(format!("the body is not an embeddings request: {e}")),
    };
    let base64 = match body.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => return invalid(format!("encoding_format: `{other}` is not float or base64")),
    };
    if body.dimensions.is_some() {
        return invalid("dimensions: the route's model decides the dimensions");
    }
    let inputs = match body.input {
        Input::One(text) => vec![text],
        Input::Many(texts) if texts.is_empty() => return invalid("input: at least one text"),
        Input::Many(texts) => texts,
    };
    let pick = match picked(&runtime, &caller, &body.model) {
        Ok(pick) => pick,
        Err(r) => return r,
    };
    let who = crate::gateway::Caller { tenant: caller.tenant.clone(), agent: Arc::from(AGENT) };
    let vectors = match runtime.gateway().embed(&who, &pick.route, pick.target.as_deref(), &inputs).await {
        Ok(vectors) => vectors,
        Err(failure) => return failed(&failure.error),
    };
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let embedding = match base64 {
                true => {
                    use base64::Engine;
                    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                    json!(base64::engine::general_purpose::STANDARD.encode(bytes))
                }
                false => json!(v),
            };
            json!({ "object": "embedding", "index": i, "embedding": embedding })
        })
        .collect();
    // What the gateway counted for the call: an estimate from the inputs' size.
    let messages = inputs.iter().map(|t| Message::new(Speaker::User, t.clone())).collect();
    let tokens = ChatRequest { messages, ..ChatRequest::default() }.estimated_input_tokens();
    let usage = json!({ "prompt_tokens": tokens, "total_tokens": tokens });
    Json(json!({ "object": "list", "data": data, "model": body.model, "usage": usage })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_refusals_take_openais_statuses_and_codes() {
        let status = |e: LlmError| failed(&e).status();
        assert_eq!(status(LlmError::BudgetExceeded("b".into())), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(status(LlmError::Unavailable("u".into())), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(status(LlmError::Denied("d".into())), StatusCode::FORBIDDEN);
        assert_eq!(status(LlmError::Timeout("t".into())), StatusCode::GATEWAY_TIMEOUT);
        let limited = failed(&LlmError::RateLimited(std::time::Duration::from_millis(1500)));
        assert_eq!(
            (limited.status(), limited.headers().get("retry-after").and_then(|v| v.to_str().ok())),
            (StatusCode::TOO_MANY_REQUESTS, Some("2"))
        );
    }
}
