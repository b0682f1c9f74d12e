//! Dead letters and questions over HTTP: listed, shown, retried or dropped,
//! answered; each scoped to the caller's tenant (see [`super::flows`]).

// Handlers answer early with a ready response: the `Err` of their helpers.
#![allow(clippy::result_large_err)]

use super::auth::require;
use super::error;
use super::flows::{encode, list_limit, paged, unavailable};
use crate::flow::store::{DeadLetter, Page};
use crate::flow::{Flows, now_ms};
use crate::keys::{Caller, Role};
use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// Dead letter `id`, if the tenant may see it.
fn dead_of(flows: &Flows, tenant: &str, id: &str) -> Result<DeadLetter, Response> {
    match flows.store().dead(id) {
        Ok(Some(d)) if d.tenant == tenant => Ok(d),
        Ok(_) => Err(error(StatusCode::NOT_FOUND, "not-found", format!("no dead letter with id {id:?}"))),
        Err(e) => Err(unavailable(e)),
    }
}

#[derive(serde::Deserialize)]
pub(super) struct PageQuery {
    limit: Option<usize>,
    after: Option<String>,
}

impl PageQuery {
    fn page(&self, tenant: &str) -> Page {
        Page { tenant: Some(tenant.to_string()), after: self.after.clone(), limit: list_limit(self.limit) }
    }
}

/// A page of the caller's tenant's dead letters, oldest first (`limit`, `after`).
pub(super) async fn list_dead(
    State(flows): State<Flows>,
    Query(q): Query<PageQuery>,
    Extension(caller): Extension<Caller>,
) -> Response {
    let page_of = q.page(&caller.tenant);
    let (limit, store) = (page_of.limit, flows.store().clone());
    let row = |d: &DeadLetter| {
        json!({"id": d.id, "run": d.run, "flow": d.flow, "step": d.step, "agent": d.agent,
            "attempts": d.attempts, "error": d.error, "created_ms": d.created_ms})
    };
    let next = |after: &str| format!("/v1/dlq?limit={limit}&after={}", encode(after));
    paged(limit, move || store.dead_letters(&page_of), |d| &d.id, row, next).await
}

pub(super) async fn show_dead(
    State(flows): State<Flows>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
) -> Response {
    match dead_of(&flows, &caller.tenant, &id) {
        Ok(d) => axum::Json(d).into_response(),
        Err(r) => r,
    }
}

pub(super) async fn retry_dead(
    State(flows): State<Flows>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
) -> Response {
    if let Err(r) = require(&caller, Role::Operate, "retry dead letters") {
        return r;
    }
    if let Err(r) = dead_of(&flows, &caller.tenant, &id) {
        return r;
    }
    match flows.retry_dead(&id).await {
        Ok(output) => {
            let output = serde_json::from_str::<Value>(&output).unwrap_or(Value::String(output));
            axum::Json(json!({ "id": id, "output": output })).into_response()
        }
        Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, "failed", format!("dead letter {id}: {e}")),
    }
}

pub(super) async fn drop_dead(
    State(flows): State<Flows>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
) -> Response {
    if let Err(r) = require(&caller, Role::Operate, "drop dead letters") {
        return r;
    }
    if let Err(r) = dead_of(&flows, &caller.tenant, &id) {
        return r;
    }
    match flows.store().drop_dead(&id) {
        Ok(_) => axum::Json(json!({ "dropped": id })).into_response(),
        Err(e) => unavailable(e),
    }
}

/// A page of the caller's tenant's questions waiting for an answer, oldest
/// first (`limit`, `after`).
pub(super) async fn approvals(
    State(flows): State<Flows>,
    Query(q): Query<PageQuery>,
    Extension(caller): Extension<Caller>,
) -> Response {
    let page_of = q.page(&caller.tenant);
    let (limit, store) = (page_of.limit, flows.store().clone());
    let next = |after: &str| format!("/v1/approvals?limit={limit}&after={}", encode(after));
    let read = move || store.approvals(&page_of, Some(now_ms()));
    paged(limit, read, |a| &a.id, |a| json!(a), next).await
}

/// Answers a question: body `{"option": "ship", "by": "ada"}`.
pub(super) async fn answer(
    State(flows): State<Flows>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
    body: String,
) -> Response {
    if let Err(r) = require(&caller, Role::Operate, "answer approvals") {
        return r;
    }
    let tenant = caller.tenant.to_string();
    let Ok(v) = serde_json::from_str::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "invalid", "the body must be JSON: {\"option\": \"...\"}");
    };
    let Some(option) = v["option"].as_str() else {
        return error(StatusCode::BAD_REQUEST, "invalid", "the body needs \"option\"");
    };
    match flows.store().approval(&id) {
        Ok(Some(a)) if a.tenant == tenant => {}
        Ok(_) => return error(StatusCode::NOT_FOUND, "not-found", format!("no approval with id {id:?}")),
        Err(e) => return unavailable(e),
    }
    match flows.approvals().answer(&id, option, v["by"].as_str().unwrap_or("http")) {
        Ok(a) => axum::Json(a).into_response(),
        Err(e @ crate::flow::AnswerError::NoApproval(_)) => error(StatusCode::NOT_FOUND, "not-found", e),
        Err(e) => error(StatusCode::CONFLICT, "invalid", e),
    }
}
