//! `[retention]`: how long finished work is kept before the host forgets it
//! (a pass every `interval`, or at once with `paddock gc`), and
//! `limits.max-run-bytes` / `max-flow-bytes` / `max-question-bytes`: the
//! most the flow store keeps per run, per tenant, per question.

use paddock_core::Span;
use serde::Deserialize;
use std::time::Duration;

/// What is kept, and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Finished runs (succeeded, failed, cancelled), with their steps,
    /// journals and cancel requests, this long after they last changed.
    pub runs: Duration,
    /// At most this many finished runs per tenant; the oldest go first.
    pub runs_per_tenant: u64,
    /// Questions, this long after they were answered or timed out.
    pub approvals: Duration,
    /// Dead letters, this long after they landed.
    pub dead_letters: Duration,
    /// Per-day usage rows, this long (per-month rows are kept).
    pub usage: Duration,
    /// How often a serving host forgets what is older (0: never; `paddock gc` still does).
    pub interval: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        const DAY: u64 = 24 * 3600;
        Retention {
            runs: Duration::from_secs(7 * DAY),
            runs_per_tenant: 10_000,
            approvals: Duration::from_secs(7 * DAY),
            dead_letters: Duration::from_secs(30 * DAY),
            usage: Duration::from_secs(400 * DAY),
            interval: Duration::from_secs(600),
        }
    }
}

/// The most the flow store keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowLimits {
    /// Bytes per run: its record and output, its steps' checkpoints and journals.
    pub run_bytes: u64,
    /// Bytes per tenant: its runs, dead letters and questions.
    pub tenant_bytes: u64,
    /// Bytes of one question's text and options (`approval.ask`, approval steps).
    pub question_bytes: u64,
}

impl Default for FlowLimits {
    fn default() -> Self {
        FlowLimits { run_bytes: 64 << 20, tenant_bytes: 1 << 30, question_bytes: 64 << 10 }
    }
}

/// `[retention]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RetentionSection {
    runs: Option<Span>,
    runs_per_tenant: Option<u64>,
    approvals: Option<Span>,
    dead_letters: Option<Span>,
    usage: Option<Span>,
    interval: Option<Span>,
}

/// Validates `[retention]`: every age at least a minute (a shorter one
/// forgets runs still being read), `runs-per-tenant` at least 1, `usage` at
/// least a day.
pub(crate) fn retention(section: &RetentionSection) -> Result<Retention, String> {
    let d = Retention::default();
    let r = Retention {
        runs: section.runs.map_or(d.runs, |s| s.0),
        runs_per_tenant: section.runs_per_tenant.unwrap_or(d.runs_per_tenant),
        approvals: section.approvals.map_or(d.approvals, |s| s.0),
        dead_letters: section.dead_letters.map_or(d.dead_letters, |s| s.0),
        usage: section.usage.map_or(d.usage, |s| s.0),
        interval: section.interval.map_or(d.interval, |s| s.0),
    };
    for (key, age) in [("runs", r.runs), ("approvals", r.approvals), ("dead-letters", r.dead_letters)] {
        if age < Duration::from_secs(60) {
            return Err(format!("retention.{key} must be at least 1m, not {}", Span(age)));
        }
    }
    if r.usage < Duration::from_secs(24 * 3600) {
        return Err(format!("retention.usage must be at least 1day (usage is kept per day), not {}", Span(r.usage)));
    }
    if r.runs_per_tenant == 0 {
        return Err("retention.runs-per-tenant must be at least 1".to_string());
    }
    Ok(r)
}
