//! Traces over OTLP/HTTP: the one place that knows OpenTelemetry.
//!
//! The crates below emit plain `tracing` spans (`invoke`, `llm`,
//! `llm.attempt`, `blackboard`, `agents.call`, `flow.run`, `flow.step`, all
//! on [`TRACE_TARGET`]); here they become OpenTelemetry spans, batched on
//! tokio and posted to the collector `[telemetry]` or the standard
//! `OTEL_EXPORTER_OTLP_*` variables name. Without either, no exporter or
//! layer exists and those spans are disabled at their call sites.
//!
//! The HTTP span of `paddock serve` takes its parent from the request's W3C
//! `traceparent` ([`adopt`]) and returns its own ([`inject`]); provider
//! requests carry the `traceparent` of their attempt's span.

use crate::config::{DEFAULT_SERVICE_NAME, OtlpProtocol, TelemetrySettings};
use crate::core::TRACE_TARGET;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tracing::Subscriber;
use tracing_opentelemetry::{OpenTelemetryLayer, OpenTelemetrySpanExt};
use tracing_subscriber::registry::LookupSpan;

/// The variables that turn export on when `[telemetry]` names no endpoint
/// (the exporter reads them itself, the traces one first).
const ENDPOINT_VARIABLES: [&str; 2] = ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"];

/// How long one export may take before it is given up.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long shutting down may wait for the last batch to be sent.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether this process exports traces: until an exporter starts, the HTTP
/// span has no trace context to take or give, and a request pays nothing
/// for one.
static EXPORTING: AtomicBool = AtomicBool::new(false);

fn exporting() -> bool {
    EXPORTING.load(Ordering::Acquire)
}

/// A process's trace exporter. [`Telemetry::shutdown`] sends what is queued;
/// a process that ends without it loses the spans of its last seconds.
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Telemetry {
    /// Starts the exporter when `settings` or the environment name a
    /// collector: `Ok(None)` when neither does. Must run inside a tokio
    /// runtime, whose workers send the batches.
    pub fn start(settings: &TelemetrySettings) -> Result<Option<Telemetry>, String> {
        let from_env = ENDPOINT_VARIABLES.iter().any(|v| std::env::var(v).is_ok_and(|e| !e.trim().is_empty()));
        if settings.endpoint.is_none() && !from_env {
            return Ok(None);
        }
        crate::gateway::install_crypto();
        // The gateway's reqwest (0.13), asynchronous on tokio: no second HTTP client is compiled.
        let client = reqwest::Client::builder().timeout(EXPORT_TIMEOUT).build().map_err(|e| e.to_string())?;
        let mut exporter = opentelemetry_otlp::SpanExporter::builder().with_http().with_http_client(client);
        if let Some(url) = settings.traces_url() {
            exporter = exporter.with_endpoint(url);
        }
        if let Some(protocol) = settings.protocol {
            exporter = exporter.with_protocol(match protocol {
                OtlpProtocol::HttpProtobuf => opentelemetry_otlp::Protocol::HttpBinary,
                OtlpProtocol::HttpJson => opentelemetry_otlp::Protocol::HttpJson,
            });
        }
        let exporter = exporter.build().map_err(|e| e.to_string())?;
        let mut resource = opentelemetry_sdk::Resource::builder();
        // Else the resource's own detector reads OTEL_SERVICE_NAME.
        if settings.service_name.is_some() || std::env::var_os("OTEL_SERVICE_NAME").is_none() {
            resource = resource
                .with_service_name(settings.service_name.clone().unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_string()));
        }
        let provider = SdkTracerProvider::builder()
            .with_span_processor(BatchSpanProcessor::builder(exporter, opentelemetry_sdk::runtime::Tokio).build())
            .with_resource(resource.build())
            // A caller's traceparent decides; a trace started here is kept at the ratio.
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(settings.sample_ratio))))
            .build();
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        crate::gateway::set_trace_headers(|headers| inject(&tracing::Span::current(), headers));
        EXPORTING.store(true, Ordering::Release);
        Ok(Some(Telemetry { provider }))
    }

    /// The layer that turns Paddock's spans (and the events in them) of level
    /// info and above into OpenTelemetry spans; other crates' are left out.
    pub fn layer<S>(&self) -> impl tracing_subscriber::Layer<S> + use<S>
    where
        S: Subscriber + for<'span> LookupSpan<'span>,
    {
        use tracing_subscriber::Layer;
        let tracer: SdkTracer = self.provider.tracer("paddock");
        let only_ours = tracing_subscriber::filter::filter_fn(|meta| {
            meta.target().starts_with("paddock") && *meta.level() <= tracing::Level::INFO
        })
        // Without the hint no record is too verbose to ask this filter about.
        .with_max_level_hint(tracing::level_filters::LevelFilter::INFO);
        OpenTelemetryLayer::new(tracer).with_threads(false).with_filter(only_ours)
    }

    /// Sends the spans still queued and stops the exporter. Blocks: call it
    /// outside the async runtime, which must still be running.
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT) {
            eprintln!("warning: traces: the last spans may not have been sent: {e}");
        }
    }
}

/// Whether a log (fmt) layer shows this span or event: spans made for traces
/// alone are not, so every log line keeps its request's `http` span.
pub fn logged(meta: &tracing::Metadata<'_>) -> bool {
    !(meta.is_span() && meta.target() == TRACE_TARGET)
}

/// Makes the context in a request's `traceparent` (W3C Trace Context) the
/// parent of `span`, and tells a trace backend what the request was.
/// Without an exporter it does nothing.
pub fn adopt(span: &tracing::Span, headers: &HeaderMap, method: &str, route: &str) {
    if !exporting() {
        return;
    }
    let parent = opentelemetry::global::get_text_map_propagator(|p| p.extract(&Headers(headers)));
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
    span.set_attribute("http.request.method", method.to_string());
    span.set_attribute("http.route", route.to_string());
}

/// Records the status of the request `span` served.
pub fn answered(span: &tracing::Span, status: u16) {
    if !exporting() {
        return;
    }
    span.set_attribute("http.response.status_code", i64::from(status));
}

/// Writes `span`'s context (`traceparent`) into `headers`, when it is part of
/// an exported trace.
pub fn inject(span: &tracing::Span, headers: &mut HeaderMap) {
    if !exporting() {
        return;
    }
    let context = span.context();
    if !context.span().span_context().is_valid() {
        return;
    }
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&context, &mut HeadersMut(headers)));
}

struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

struct HeadersMut<'a>(&'a mut HeaderMap);

impl Injector for HeadersMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(key.as_bytes()), HeaderValue::from_str(&value)) {
            self.0.insert(name, value);
        }
    }
}
