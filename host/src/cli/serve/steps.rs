//! A run's steps looked into: the journal of an agent step (every host call
//! it made, with the answer) and a replay of its agent steps against their
//! journals, with the first divergence of each; what the console's run page
//! shows and does.
//!
//! | route | role | what |
//! |---|---|---|
//! | `GET /v1/runs/{id}/journal?step=PATH` | run | `{"step","attempt","entries":[{"call","request","reply"}]}`; 404 without one |
//! | `POST /v1/runs/{id}/replay` | operate | body `{"step": PATH}` (optional): `{"steps":[{"step","agent","version","recorded_version","calls","same","divergence"}]}` |

use super::auth::require;
use super::error;
use super::flows::{run_of, unavailable};
use crate::flow::Flows;
use crate::keys::{Caller, Role};
use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

#[derive(serde::Deserialize)]
pub(super) struct StepQuery {
    step: String,
}

/// `GET /v1/runs/{id}/journal?step=PATH`.
pub(super) async fn journal(
    State(flows): State<Flows>,
    Path(id): Path<String>,
    Query(q): Query<StepQuery>,
    Extension(caller): Extension<Caller>,
) -> Response {
    if let Err(r) = run_of(&flows, &caller.tenant, &id) {
        return r;
    }
    let store = flows.store().clone();
    let (run, step) = (id.clone(), q.step.clone());
    match tokio::task::spawn_blocking(move || store.journal(&run, &step)).await {
        Ok(Ok(Some((attempt, entries)))) => {
            axum::Json(json!({ "step": q.step, "attempt": attempt, "entries": entries })).into_response()
        }
        Ok(Ok(None)) => {
            error(StatusCode::NOT_FOUND, "not-found", format!("step {:?} of run {id} has no journal", q.step))
        }
        Ok(Err(e)) => unavailable(e),
        Err(e) => unavailable(e),
    }
}

/// `POST /v1/runs/{id}/replay`: runs the run's agent steps (or one) again
/// against their journals in this host, calling nothing and writing nothing.
pub(super) async fn replay(
    State(flows): State<Flows>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
    body: String,
) -> Response {
    if let Err(r) = require(&caller, Role::Operate, "replay runs") {
        return r;
    }
    if let Err(r) = run_of(&flows, &caller.tenant, &id) {
        return r;
    }
    let step = match body.trim() {
        "" => None,
        text => match serde_json::from_str::<Value>(text) {
            Ok(v) => v["step"].as_str().map(str::to_string),
            Err(_) => return error(StatusCode::BAD_REQUEST, "invalid", "the body must be JSON: {\"step\": \"PATH\"}"),
        },
    };
    match flows.replay(&id, step.as_deref()).await {
        Ok(steps) => axum::Json(json!({ "steps": steps })).into_response(),
        Err(e) => error(StatusCode::CONFLICT, "invalid", e),
    }
}
