//! Counters and latency histograms of the gateway, in a Prometheus registry
//! ready to be served by a metrics endpoint.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of a per-target series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetLabels {
    /// Route name.
    pub route: String,
    /// Provider name.
    pub provider: String,
    /// Model.
    pub model: String,
    /// What happened (`ok`, an error class, a breaker state, a skip reason).
    pub outcome: String,
}

/// Labels of a per-route series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// Route name.
    pub route: String,
    /// What happened.
    pub outcome: String,
}

/// Labels of a per-caller series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallerLabels {
    /// The tenant.
    pub tenant: String,
    /// The agent.
    pub agent: String,
}

/// Labels of a target's state.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    /// Route name.
    pub route: String,
    /// Provider name.
    pub provider: String,
    /// Model.
    pub model: String,
    /// `closed`, `open` or `half-open`.
    pub state: String,
}

/// Labels of a target, for its gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetOnly {
    /// Route name.
    pub route: String,
    /// Provider name.
    pub provider: String,
    /// Model.
    pub model: String,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms to ~16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// The gateway's metrics.
pub struct Metrics {
    registry: Registry,
    /// Provider attempts by target and outcome.
    pub attempts: Family<TargetLabels, Counter>,
    /// Attempt latency by target (outcome `ok` or `error`).
    pub attempt_seconds: Family<TargetLabels, Histogram, fn() -> Histogram>,
    /// Targets passed over, by reason (`cooling-down`, `circuit-open`, `throttled`).
    pub skips: Family<TargetLabels, Counter>,
    /// Attempts let through a refusing breaker in degraded mode, by target.
    pub degraded: Family<TargetLabels, Counter>,
    /// Breaker transitions by the state entered.
    pub breaker_transitions: Family<TargetLabels, Counter>,
    /// Calls by route and final outcome (`ok`, `denied`, `budget-exceeded`…).
    pub calls: Family<RouteLabels, Counter>,
    /// Whole-call latency by route.
    pub call_seconds: Family<RouteLabels, Histogram, fn() -> Histogram>,
    /// Input tokens by target.
    pub input_tokens: Family<TargetLabels, Counter>,
    /// Output tokens by target.
    pub output_tokens: Family<TargetLabels, Counter>,
    /// Cost by target, in micro-dollars.
    pub cost_micros: Family<TargetLabels, Counter>,
    /// Calls a budget refused, by tenant and agent.
    pub budget_refusals: Family<CallerLabels, Counter>,
    /// 1 for each target's breaker state now, 0 for the others (set when rendered).
    pub breaker_state: Family<StateLabels, Gauge>,
    /// Seconds until a target's 429 cool-down ends (set when rendered).
    pub cooldown_seconds: Family<TargetOnly, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// The lowest fraction of requests or tokens a provider said were left (set when rendered).
    pub headroom_ratio: Family<TargetOnly, Gauge<f64, std::sync::atomic::AtomicU64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("paddock_llm");
        let m = Metrics {
            attempts: Family::default(),
            attempt_seconds: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            skips: Family::default(),
            degraded: Family::default(),
            breaker_transitions: Family::default(),
            calls: Family::default(),
            call_seconds: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            input_tokens: Family::default(),
            output_tokens: Family::default(),
            cost_micros: Family::default(),
            budget_refusals: Family::default(),
            breaker_state: Family::default(),
            cooldown_seconds: Family::default(),
            headroom_ratio: Family::default(),
            registry: Registry::default(),
        };
        registry.register("attempts", "Provider attempts by target and outcome", m.attempts.clone());
        registry.register("attempt_seconds", "Provider attempt latency", m.attempt_seconds.clone());
        registry.register("skips", "Targets passed over, by reason", m.skips.clone());
        registry.register(
            "degraded_attempts",
            "Attempts let through a refusing breaker because no target of the route would admit",
            m.degraded.clone(),
        );
        registry.register("breaker_transitions", "Circuit breaker transitions", m.breaker_transitions.clone());
        registry.register("calls", "Calls by route and outcome", m.calls.clone());
        registry.register("call_seconds", "Whole-call latency by route", m.call_seconds.clone());
        registry.register("input_tokens", "Input tokens by target", m.input_tokens.clone());
        registry.register("output_tokens", "Output tokens by target", m.output_tokens.clone());
        registry.register("cost_micros", "Cost by target in micro-dollars", m.cost_micros.clone());
        registry.register(
            "budget_refusals",
            "Calls refused by a budget, by tenant and agent",
            m.budget_refusals.clone(),
        );
        registry.register("breaker_state", "1 for each target's circuit breaker state now", m.breaker_state.clone());
        registry.register(
            "cooldown_seconds",
            "Seconds until a target's 429 cool-down ends",
            m.cooldown_seconds.clone(),
        );
        registry.register("headroom_ratio", "Lowest fraction of a target's rate limits left", m.headroom_ratio.clone());
        Metrics { registry, ..m }
    }
}

impl Metrics {
    /// The Prometheus text exposition of every series.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Appends the text exposition of every series to `out`, without the
    /// closing `# EOF`, for an endpoint that serves several registries.
    pub fn render_into(&self, out: &mut String) {
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode_registry(out, &self.registry);
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}
