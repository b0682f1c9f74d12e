//! The control API under `/_fake/`, so that another process can drive the
//! binary the way a test drives [`crate::FakeProvider`].

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::de::DeserializeOwned;

use crate::behavior::{Behavior, Chaos, RateLimitHeaders};
use crate::state::Shared;

pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/script", post(script))
        .route("/default", put(default))
        .route("/chaos", put(chaos))
        .route("/rate-limit", put(rate_limit))
        .route("/requests", get(requests))
        .route("/request-count", get(request_count))
        .route("/clear", post(clear))
}

/// Parses a JSON body and applies it: 204, or 400 naming the endpoint and the problem.
fn apply<T: DeserializeOwned>(endpoint: &str, body: &[u8], apply: impl FnOnce(T)) -> Response {
    match serde_json::from_slice(body) {
        Ok(value) => {
            apply(value);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, format!("invalid body for {endpoint}: {e}")).into_response(),
    }
}

async fn script(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    apply("POST /_fake/script (a JSON array of behaviors)", &body, |behaviors: Vec<Behavior>| shared.push(behaviors))
}

async fn default(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    apply("PUT /_fake/default (a behavior)", &body, |behavior| shared.set_default(behavior))
}

async fn chaos(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    apply("PUT /_fake/chaos (chaos settings or null)", &body, |chaos: Option<Chaos>| shared.set_chaos(chaos))
}

async fn rate_limit(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    apply("PUT /_fake/rate-limit (rate-limit headers or null)", &body, |limits: Option<RateLimitHeaders>| {
        shared.set_rate_limit(limits)
    })
}

async fn requests(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(shared.log.snapshot()).into_response()
}

async fn request_count(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(serde_json::json!({ "count": shared.request_count() })).into_response()
}

async fn clear(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.clear();
    StatusCode::NO_CONTENT
}
