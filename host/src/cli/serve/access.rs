//! One line per HTTP request, and the request id that ties it to the lines of
//! everything the request caused (its invocation, its LLM calls).
//!
//! A request may name itself with `x-request-id` (1 to 128 visible ASCII
//! characters); otherwise the host makes one. Either way the answer carries
//! it back, and every line logged while the request is served carries it in
//! its `http` span, with the tenant and key id once the key is checked.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use std::time::Instant;
use tracing::Instrument;

/// The header that names a request.
pub const REQUEST_ID: &str = "x-request-id";

/// The middleware: the span, the answer's header, the access line.
pub async fn log(request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| (1..=128).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| format!("{:016x}", fastrand::u64(..)), String::from);
    let (method, path) = (request.method().clone(), request.uri().path().to_string());
    let span = tracing::info_span!(
        "http",
        request_id = %id,
        tenant = tracing::field::Empty,
        key = tracing::field::Empty,
    );
    let started = Instant::now();
    async move {
        let mut response = next.run(request).await;
        let status = response.status().as_u16();
        let ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1e3;
        tracing::info!(target: "paddock::http", %method, path = %path, status, ms, "request");
        if let Ok(value) = HeaderValue::from_str(&id) {
            response.headers_mut().insert(REQUEST_ID, value);
        }
        response
    }
    .instrument(span)
    .await
}
