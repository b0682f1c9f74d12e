//! The runtime's Prometheus series: invocations by tenant, agent and
//! outcome, their durations and the fuel they burned. Labels are bounded by
//! the tenants that hold keys and the plugins in the folder.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of a per-agent series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AgentLabels {
    /// The tenant it ran for.
    pub tenant: String,
    /// The agent.
    pub agent: String,
}

/// Labels of an invocation count.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// The tenant it ran for.
    pub tenant: String,
    /// The agent.
    pub agent: String,
    /// `ok`, `failed`, `limit`, `crashed` or `start`.
    pub outcome: String,
}

/// Buckets for a duration from 0.1 ms to ~6.5 s: an invocation, an HTTP
/// request.
pub fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 17))
}

/// The runtime's metrics.
pub struct RuntimeMetrics {
    registry: Registry,
    /// Invocations by tenant, agent and outcome.
    pub invocations: Family<OutcomeLabels, Counter>,
    /// Invocation wall-clock time by tenant and agent.
    pub invocation_seconds: Family<AgentLabels, Histogram, fn() -> Histogram>,
    /// Fuel burned by tenant and agent.
    pub fuel: Family<AgentLabels, Counter>,
}

impl Default for RuntimeMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("paddock");
        let m = RuntimeMetrics {
            invocations: Family::default(),
            invocation_seconds: Family::new_with_constructor(duration_histogram as fn() -> Histogram),
            fuel: Family::default(),
            registry: Registry::default(),
        };
        registry.register("invocations", "Invocations by tenant, agent and outcome", m.invocations.clone());
        registry.register("invocation_seconds", "Invocation wall-clock time", m.invocation_seconds.clone());
        registry.register("fuel_consumed", "Fuel burned by invocations", m.fuel.clone());
        RuntimeMetrics { registry, ..m }
    }
}

impl RuntimeMetrics {
    /// Counts one invocation.
    pub fn record(&self, tenant: &str, agent: &str, outcome: &str, seconds: f64, fuel: u64) {
        let who = AgentLabels { tenant: tenant.to_string(), agent: agent.to_string() };
        let labels =
            OutcomeLabels { tenant: who.tenant.clone(), agent: who.agent.clone(), outcome: outcome.to_string() };
        self.invocations.get_or_create(&labels).inc();
        self.invocation_seconds.get_or_create(&who).observe(seconds);
        self.fuel.get_or_create(&who).inc_by(fuel);
    }

    /// Appends the text exposition of every series to `out`, without the
    /// closing `# EOF` (the endpoint writes it once, after every registry).
    pub fn render_into(&self, out: &mut String) {
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode_registry(out, &self.registry);
    }
}

impl std::fmt::Debug for RuntimeMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RuntimeMetrics")
    }
}
