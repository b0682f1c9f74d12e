//! The record of every call once it ends: its metrics, a tracing event, and
//! the commit of its budget reservation, made exactly once.

use super::metrics::RouteLabels;
use super::quota::{CallRecord, Caller, Quota, Reservation};
use super::route::{Route, RouteTarget};
use super::types::Tokens;
use super::{AttemptOutcome, Failure, Inner, count_attempts};
use paddock_core::TRACE_TARGET;
use std::sync::Arc;
use std::time::Instant;
use tracing::field::Empty;

/// The span of one gateway call (`complete`, `stream`, `embed`) on `route`:
/// a child of the invocation's span, the parent of its attempts. [`Inner::record`]
/// fills in the target that answered (or was tried last), the tokens, the
/// cost and the outcome.
pub(super) fn call_span(call: &'static str, route: &str) -> tracing::Span {
    tracing::info_span!(
        target: TRACE_TARGET,
        "llm",
        call,
        route,
        provider = Empty,
        model = Empty,
        attempts = Empty,
        input_tokens = Empty,
        output_tokens = Empty,
        cost_micros = Empty,
        outcome = Empty,
        streamed = Empty,
    )
}

/// The span of one attempt on `target` (the `attempt`th of its call); the
/// attempt loop records its outcome, [`attempt_usage`] its tokens and cost.
pub(super) fn attempt_span(target: &RouteTarget, attempt: u32) -> tracing::Span {
    tracing::info_span!(
        target: TRACE_TARGET,
        "llm.attempt",
        route = %target.route,
        provider = %target.provider.name,
        model = %target.model,
        attempt = i64::from(attempt),
        input_tokens = Empty,
        output_tokens = Empty,
        cost_micros = Empty,
        outcome = Empty,
    )
}

/// Records what an answered attempt used on the attempt's span (the one
/// current inside the attempt).
pub(super) fn attempt_usage(target: &RouteTarget, tokens: Tokens) {
    let cost = target.price.map_or(0, |p| p.cost(tokens.input, tokens.output));
    record_usage(&tracing::Span::current(), tokens, cost);
}

/// Tokens and cost on `span`, as signed numbers: `tracing-opentelemetry`
/// exports an unsigned field as text, a signed one as an OTLP integer.
fn record_usage(span: &tracing::Span, tokens: Tokens, cost: u64) {
    span.record("input_tokens", i64::from(tokens.input));
    span.record("output_tokens", i64::from(tokens.output));
    span.record("cost_micros", i64::try_from(cost).unwrap_or(i64::MAX));
}

impl Inner {
    /// Records a call that failed, and hands its failure back.
    pub(super) fn record_failure(
        &self,
        caller: &Caller,
        route: &Route,
        started: Instant,
        failure: Failure,
        streamed: bool,
        reservation: Reserved,
    ) -> Failure {
        let attempts = count_attempts(&failure.trail);
        let kind = failure.error.kind();
        // The record names the target tried last; it billed nothing.
        let last = failure
            .trail
            .iter()
            .rev()
            .find(|a| !matches!(a.outcome, AttemptOutcome::Skipped(_)))
            .and_then(|a| route.targets.iter().find(|t| t.label() == a.target));
        self.record(
            caller,
            route,
            last.map(|t| &**t),
            attempts,
            started,
            Tokens::default(),
            kind,
            streamed,
            reservation,
        );
        failure
    }

    /// Records a finished call: metrics, a tracing event, the fields of the
    /// current (`llm`) span, and the budget commit.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn record(
        &self,
        caller: &Caller,
        route: &Route,
        target: Option<&RouteTarget>,
        attempts: u32,
        started: Instant,
        tokens: Tokens,
        outcome: &str,
        streamed: bool,
        mut reservation: Reserved,
    ) {
        let latency = started.elapsed();
        let cost = target.and_then(|t| t.price).map_or(0, |p| p.cost(tokens.input, tokens.output));
        let route_labels = RouteLabels { route: route.name.to_string(), outcome: outcome.to_string() };
        self.metrics.calls.get_or_create(&route_labels).inc();
        self.metrics.call_seconds.get_or_create(&route_labels).observe(latency.as_secs_f64());
        if let Some(t) = target {
            self.metrics.input_tokens.get_or_create(&t.labels("ok")).inc_by(tokens.input.into());
            self.metrics.output_tokens.get_or_create(&t.labels("ok")).inc_by(tokens.output.into());
            self.metrics.cost_micros.get_or_create(&t.labels("ok")).inc_by(cost);
        }
        let record = CallRecord {
            tenant: caller.tenant.clone(),
            agent: caller.agent.clone(),
            route: route.name.clone(),
            provider: target.map_or_else(String::new, |t| t.provider.name.clone()),
            model: target.map_or_else(String::new, |t| t.model.clone()),
            attempts,
            latency,
            tokens,
            cost_micros: cost,
            outcome: outcome.to_string(),
            streamed,
        };
        let span = tracing::Span::current();
        span.record("provider", &*record.provider);
        span.record("model", &*record.model);
        span.record("attempts", i64::from(attempts));
        record_usage(&span, tokens, cost);
        span.record("outcome", outcome);
        span.record("streamed", streamed);
        tracing::info!(
            tenant = %record.tenant, agent = %record.agent, route = %record.route, provider = %record.provider,
            model = %record.model, attempts, latency_ms = latency.as_millis() as u64, input_tokens = tokens.input,
            output_tokens = tokens.output, cost_micros = cost, outcome, streamed, "llm call"
        );
        if let Some(r) = reservation.reservation.take() {
            self.quota.commit(r, &record);
        }
    }
}

/// A budget reservation committed exactly once: by [`Inner::record`] when the
/// call ends, or — when the call's future is dropped first (its invocation
/// timed out or ended) — on drop, as a `cancelled` call with no usage, so an
/// abandoned call never keeps budget reserved. (What a provider may bill for
/// an answer nobody waited for is not known to the host.)
pub(super) struct Reserved {
    quota: Arc<dyn Quota>,
    caller: Caller,
    route: Arc<str>,
    started: Instant,
    reservation: Option<Reservation>,
}

impl Reserved {
    pub(super) fn new(quota: Arc<dyn Quota>, caller: &Caller, route: Arc<str>, reservation: Reservation) -> Self {
        Reserved { quota, caller: caller.clone(), route, started: Instant::now(), reservation: Some(reservation) }
    }
}

impl Drop for Reserved {
    fn drop(&mut self) {
        let Some(reservation) = self.reservation.take() else { return };
        let record = CallRecord {
            tenant: self.caller.tenant.clone(),
            agent: self.caller.agent.clone(),
            route: self.route.clone(),
            provider: String::new(),
            model: String::new(),
            attempts: 0,
            latency: self.started.elapsed(),
            tokens: Tokens::default(),
            cost_micros: 0,
            outcome: "cancelled".into(),
            streamed: false,
        };
        tracing::info!(tenant = %record.tenant, agent = %record.agent, route = %record.route, "llm call abandoned by its caller");
        self.quota.commit(reservation, &record);
    }
}
