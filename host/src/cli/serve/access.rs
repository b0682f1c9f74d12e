//! One line per HTTP request, and the request id that ties it to the lines of
//! everything the request caused (its invocation, its LLM calls).
//!
//! A request may name itself with `x-request-id` (1 to 128 visible ASCII
//! characters); otherwise the host makes one. Either way the answer carries
//! it back, and every line logged while the request is served carries it in
//! its `http` span, with the tenant and key id once the key is checked.
//!
//! When traces are exported, that span is the root of the request's spans
//! here, and a child of the caller's span when the request carries a
//! `traceparent`; the answer carries the request span's own `traceparent`.

use crate::keys::Caller;
use crate::runtime::duration_histogram;
use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

/// The header that names a request.
pub const REQUEST_ID: &str = "x-request-id";

/// Labels of an HTTP request count: the route as declared (never the raw
/// path, so callers cannot grow the series), method, status and tenant
/// (empty when no key was accepted).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    route: String,
    method: String,
    status: u16,
    tenant: String,
}

/// Labels of a request duration.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    route: String,
}

/// The HTTP series of a serving host.
pub struct HttpMetrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    seconds: Family<RouteLabels, Histogram, fn() -> Histogram>,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("paddock_http");
        let requests = Family::<RequestLabels, Counter>::default();
        let seconds = Family::new_with_constructor(duration_histogram as fn() -> Histogram);
        registry.register("requests", "HTTP requests by route, method, status and tenant", requests.clone());
        registry.register("request_seconds", "HTTP request time by route", seconds.clone());
        HttpMetrics { registry, requests, seconds }
    }
}

impl HttpMetrics {
    /// Appends the series to `out`, without the closing `# EOF`.
    pub fn render_into(&self, out: &mut String) {
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode_registry(out, &self.registry);
    }
}

/// The middleware: the span, the answer's header, the access line, the
/// request's series.
pub async fn log(State(metrics): State<Arc<HttpMetrics>>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |m| m.as_str()).to_string();
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
    // A caller's W3C `traceparent` makes this request part of its trace.
    super::super::telemetry::adopt(&span, request.headers(), method.as_str(), &route);
    let started = Instant::now();
    let traced = span.clone();
    async move {
        let mut response = next.run(request).await;
        let status = response.status().as_u16();
        super::super::telemetry::answered(&traced, status);
        super::super::telemetry::inject(&traced, response.headers_mut());
        let ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1e3;
        tracing::info!(target: "paddock::http", %method, path = %path, status, ms, "request");
        let tenant = response.extensions().get::<Caller>().map(|c| c.tenant.to_string()).unwrap_or_default();
        let labels = RequestLabels { route: route.clone(), method: method.to_string(), status, tenant };
        metrics.requests.get_or_create(&labels).inc();
        metrics.seconds.get_or_create(&RouteLabels { route }).observe(ms / 1e3);
        if let Ok(value) = HeaderValue::from_str(&id) {
            response.headers_mut().insert(REQUEST_ID, value);
        }
        response
    }
    .instrument(span)
    .await
}
