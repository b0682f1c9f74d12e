//! What a running gateway knows of each route target, read without changing
//! it: for an operator asking a serving host why a route fails over.

use crate::Gateway;
use crate::metrics::{StateLabels, TargetOnly};

/// One route target's live state.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TargetState {
    /// The route.
    pub route: String,
    /// The provider.
    pub provider: String,
    /// Its kind.
    pub kind: &'static str,
    /// The model.
    pub model: String,
    /// `closed`, `open` or `half-open`.
    pub breaker: &'static str,
    /// How long an open breaker still refuses calls, in milliseconds.
    pub breaker_open_ms: Option<u64>,
    /// How long the account (provider + model) still waits out a 429's
    /// Retry-After, in milliseconds.
    pub cooling_ms: Option<u64>,
    /// The lowest fraction of requests or tokens left at the last response
    /// that said, if any did.
    pub headroom: Option<f64>,
    /// Whether that headroom is under the target's `throttle-below`, so the
    /// target goes last.
    pub throttled: bool,
    /// The moving average of its attempts' latency, once one finished.
    pub latency_ms: Option<f64>,
    /// The fraction of its last 20 calls that succeeded, once one ended:
    /// what degraded mode weighs when every breaker of the route refuses.
    pub recent_success: Option<f64>,
}

/// A route target's last hour.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TargetHour {
    /// The route.
    pub route: String,
    /// The provider.
    pub provider: String,
    /// The model.
    pub model: String,
    /// Its breaker now.
    pub breaker: &'static str,
    /// Its minutes and breaker transitions.
    #[serde(flatten)]
    pub hour: crate::hour::HourView,
}

impl Gateway {
    /// Every route target's last hour, in the order of [`Gateway::snapshot`].
    pub fn hours(&self) -> Vec<TargetHour> {
        let now = self.inner.clock.now();
        let routes = self.routes();
        let targets = routes.iter().flat_map(|r| r.targets.iter());
        targets
            .map(|t| TargetHour {
                route: t.route.to_string(),
                provider: t.provider.name.clone(),
                model: t.model.clone(),
                breaker: t.breaker_snapshot(now).0.as_str(),
                hour: t.hour.view(),
            })
            .collect()
    }

    /// Every route target's state now, sorted by route then in the route's order.
    pub fn snapshot(&self) -> Vec<TargetState> {
        let now = self.inner.clock.now();
        let routes = self.routes();
        let millis = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        routes
            .iter()
            .flat_map(|r| r.targets.iter())
            .map(|target| {
                let (breaker, open_for) = target.breaker_snapshot(now);
                TargetState {
                    route: target.route.to_string(),
                    provider: target.provider.name.clone(),
                    kind: target.provider.kind.as_str(),
                    model: target.model.clone(),
                    breaker: breaker.as_str(),
                    breaker_open_ms: open_for.map(millis),
                    cooling_ms: target.account.cooling(now).map(millis),
                    headroom: target.account.headroom().map(|h| h.fraction()),
                    throttled: target.account.throttled(now),
                    latency_ms: target.account.latency().map(|l| l.as_secs_f64() * 1000.0),
                    recent_success: target.recent_success(),
                }
            })
            .collect()
    }
}

impl Gateway {
    /// Appends the text exposition of the gateway's series to `out` (no
    /// `# EOF`), with each target's breaker state, cool-down and headroom
    /// from [`Gateway::snapshot`].
    pub fn render_metrics(&self, out: &mut String) {
        let m = &self.inner.metrics;
        // Removed routes and targets leave no stale gauges.
        m.breaker_state.clear();
        m.cooldown_seconds.clear();
        m.headroom_ratio.clear();
        for t in self.snapshot() {
            for state in ["closed", "open", "half-open"] {
                let labels = StateLabels {
                    route: t.route.clone(),
                    provider: t.provider.clone(),
                    model: t.model.clone(),
                    state: state.to_string(),
                };
                m.breaker_state.get_or_create(&labels).set(i64::from(state == t.breaker));
            }
            let target = TargetOnly { route: t.route, provider: t.provider, model: t.model };
            m.cooldown_seconds.get_or_create(&target).set(t.cooling_ms.unwrap_or(0) as f64 / 1000.0);
            if let Some(room) = t.headroom {
                m.headroom_ratio.get_or_create(&target).set(room);
            }
        }
        m.render_into(out);
    }
}
