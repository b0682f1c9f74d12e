//! The flow runs and steps a serving host executes, by tenant and flow:
//! `paddock_flow_runs_total{tenant,flow,status}`,
//! `paddock_flow_steps_total{tenant,flow,outcome}` and
//! `paddock_flow_step_seconds{tenant,flow,kind}`, counted from the events
//! the [`Hub`](super::hub::Hub) keeps; `paddock_flow_pruned_total{what}` and
//! `paddock_flow_pruned_bytes_total`, what retention forgot.

use super::events::Event;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of a run count.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RunLabels {
    /// The tenant.
    pub tenant: String,
    /// The flow's name.
    pub flow: String,
    /// `started`, `resumed`, `succeeded` or `failed`.
    pub status: String,
}

/// Labels of a step count.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StepLabels {
    /// The tenant.
    pub tenant: String,
    /// The flow's name.
    pub flow: String,
    /// `finished`, `failed`, `retried`, `skipped`, `reused` or `compensated`.
    pub outcome: String,
}

/// Labels of a step duration.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// The tenant.
    pub tenant: String,
    /// The flow's name.
    pub flow: String,
    /// The step's kind (`agent`, `sequence`, `parallel`…).
    pub kind: String,
}

/// Labels of what retention forgot.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PrunedLabels {
    /// `runs`, `approvals` or `dead-letters`.
    pub what: &'static str,
}

/// Buckets from 1 ms to ~9 h: a step may wait for a person.
fn step_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 3.0, 17))
}

/// The flow series.
pub struct FlowMetrics {
    registry: Registry,
    runs: Family<RunLabels, Counter>,
    steps: Family<StepLabels, Counter>,
    step_seconds: Family<KindLabels, Histogram, fn() -> Histogram>,
    pruned: Family<PrunedLabels, Counter>,
    pruned_bytes: Counter,
}

impl Default for FlowMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("paddock_flow");
        let m = FlowMetrics {
            runs: Family::default(),
            steps: Family::default(),
            step_seconds: Family::new_with_constructor(step_histogram as fn() -> Histogram),
            pruned: Family::default(),
            pruned_bytes: Counter::default(),
            registry: Registry::default(),
        };
        registry.register("runs", "Flow runs started, resumed and finished", m.runs.clone());
        registry.register("steps", "Flow steps by outcome", m.steps.clone());
        registry.register("step_seconds", "Time of finished steps by kind", m.step_seconds.clone());
        registry.register("pruned", "Finished runs, settled questions and dead letters forgotten", m.pruned.clone());
        registry.register("pruned_bytes", "Bytes of the flow store forgotten by retention", m.pruned_bytes.clone());
        FlowMetrics { registry, ..m }
    }
}

impl FlowMetrics {
    /// Counts `event` of a run of `flow` for `tenant`.
    pub(crate) fn observe(&self, tenant: &str, flow: &str, event: &Event) {
        let run = |status: &str| RunLabels { tenant: tenant.into(), flow: flow.into(), status: status.into() };
        let step = |outcome: &str| StepLabels { tenant: tenant.into(), flow: flow.into(), outcome: outcome.into() };
        match event {
            Event::RunStarted { resumed, .. } => {
                self.runs.get_or_create(&run(if *resumed { "resumed" } else { "started" })).inc();
            }
            Event::RunFinished { status, .. } => {
                self.runs.get_or_create(&run(status)).inc();
            }
            Event::StepFinished { kind, ms, .. } => {
                self.count_step(step("finished"));
                let labels = KindLabels { tenant: tenant.into(), flow: flow.into(), kind: kind.to_string() };
                self.step_seconds.get_or_create(&labels).observe(ms / 1000.0);
            }
            Event::StepFailed { .. } => self.count_step(step("failed")),
            Event::StepRetrying { .. } => self.count_step(step("retried")),
            Event::StepSkipped { .. } => self.count_step(step("skipped")),
            Event::StepReused { .. } => self.count_step(step("reused")),
            Event::Compensated { .. } => self.count_step(step("compensated")),
            _ => {}
        }
    }

    /// Counts what a pass of retention forgot.
    pub(crate) fn pruned(&self, p: &super::Pruned) {
        for (what, n) in [("runs", p.runs), ("approvals", p.approvals), ("dead-letters", p.dead_letters)] {
            self.pruned.get_or_create(&PrunedLabels { what }).inc_by(n);
        }
        self.pruned_bytes.inc_by(p.bytes);
    }

    fn count_step(&self, labels: StepLabels) {
        self.steps.get_or_create(&labels).inc();
    }

    /// Appends the text exposition to `out`, without the closing `# EOF`.
    pub fn render_into(&self, out: &mut String) {
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode_registry(out, &self.registry);
    }
}

impl std::fmt::Debug for FlowMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FlowMetrics")
    }
}
