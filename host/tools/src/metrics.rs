//! `paddock_tool_calls_total` by tenant, server and outcome, and
//! `paddock_tool_call_seconds` by server. Labels are bounded by the tenants
//! configured and the servers of `[mcp]`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of a call count.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// The tenant whose agent called.
    pub tenant: String,
    /// The MCP server.
    pub server: String,
    /// `ok`, `denied`, `invalid-arguments`, `failed`, `timeout`,
    /// `unavailable`, `rate-limited` or `budget-exceeded`.
    pub outcome: String,
}

/// Labels of a call duration.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServerLabels {
    /// The MCP server.
    pub server: String,
}

/// The tool calls' metrics.
pub struct ToolMetrics {
    registry: Registry,
    calls: Family<CallLabels, Counter>,
    seconds: Family<ServerLabels, Histogram, fn() -> Histogram>,
}

impl Default for ToolMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("paddock_tool");
        let calls = Family::<CallLabels, Counter>::default();
        // 50 µs to ~13 s: a local stdio tool to a slow remote one.
        let seconds: Family<ServerLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.00005, 2.0, 19)));
        registry.register("calls", "Tool calls by tenant, server and outcome", calls.clone());
        registry.register("call_seconds", "Tool call time by server, the host's part included", seconds.clone());
        ToolMetrics { registry, calls, seconds }
    }
}

impl ToolMetrics {
    /// Counts a call of `tenant` to `server` that ended as `outcome`.
    pub fn count(&self, tenant: &str, server: &str, outcome: &str) {
        let labels = CallLabels { tenant: tenant.into(), server: server.into(), outcome: outcome.into() };
        self.calls.get_or_create(&labels).inc();
    }

    /// Records how long a call to `server` took.
    pub fn time(&self, server: &str, seconds: f64) {
        self.seconds.get_or_create(&ServerLabels { server: server.into() }).observe(seconds);
    }

    /// Appends the series in OpenMetrics text, without `# EOF`.
    pub fn render_into(&self, out: &mut String) {
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode_registry(out, &self.registry);
    }
}
