//! `paddock_board_ops_total{tenant,op}`: every operation on a tenant's board,
//! whoever made it (agents, the HTTP API, the CLI, triggers).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// Labels of an operation count.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabels {
    /// The tenant whose board it was.
    pub tenant: String,
    /// `read`, `put`, `compare-and-swap`, `delete`, `list` or `changes`
    /// (history and watch).
    pub op: String,
}

/// The board's series.
pub struct BoardMetrics {
    registry: Registry,
    ops: Family<OpLabels, Counter>,
}

impl Default for BoardMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("paddock_board");
        let ops = Family::default();
        registry.register("ops", "Blackboard operations by tenant and kind", Clone::clone(&ops));
        BoardMetrics { registry, ops }
    }
}

impl BoardMetrics {
    /// The counters of `tenant`'s operations, looked up once per namespace.
    pub(crate) fn of(&self, tenant: &str) -> OpCounters {
        let op = |op: &str| self.ops.get_or_create(&OpLabels { tenant: tenant.to_string(), op: op.into() }).clone();
        OpCounters {
            read: op("read"),
            put: op("put"),
            swap: op("compare-and-swap"),
            delete: op("delete"),
            list: op("list"),
            changes: op("changes"),
        }
    }

    /// Appends the text exposition to `out`, without the closing `# EOF`.
    pub fn render_into(&self, out: &mut String) {
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode_registry(out, &self.registry);
    }
}

impl std::fmt::Debug for BoardMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BoardMetrics")
    }
}

/// One tenant's operation counters: an increment is one atomic add.
#[derive(Clone, Debug, Default)]
pub(crate) struct OpCounters {
    pub(crate) read: Counter,
    pub(crate) put: Counter,
    pub(crate) swap: Counter,
    pub(crate) delete: Counter,
    pub(crate) list: Counter,
    pub(crate) changes: Counter,
}
