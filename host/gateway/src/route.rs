//! A route at run time: its targets with their breakers, the provider
//! accounts they share, the order they are tried in, and conversation affinity.

use super::breaker::{Breaker, BreakerState, Ticket, Transition};
use super::headroom::Headroom;
use super::metrics::{Metrics, TargetLabels};
use super::providers::simulated::Simulated;
use super::providers::{Kind, Provider};
use super::settings::{Price, RouteSettings, Strategy, TargetPolicy};
use paddock_core::clock::Clock;
use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a 429 without Retry-After keeps a target aside.
pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(1);
/// Conversations remembered per route for affinity; the least recently
/// used go first when it is full.
const AFFINITY_CAPACITY: usize = 10_000;

/// What is known of one provider account (provider + model), shared by every
/// route that uses it: a 429 or thin headroom seen on one route holds for all.
#[derive(Debug, Default)]
pub struct Account {
    state: Mutex<AccountState>,
}

#[derive(Debug, Default)]
struct AccountState {
    cooldown_until: Option<Instant>,
    low_until: Option<Instant>,
    headroom: Option<Headroom>,
    latency_ms: Option<f64>,
}

impl Account {
    /// How long until a 429's Retry-After has passed, if it has not.
    pub fn cooling(&self, now: Instant) -> Option<Duration> {
        let until = self.state.lock().cooldown_until?;
        (until > now).then(|| until - now)
    }

    /// Remembers a 429.
    pub fn cool_down(&self, now: Instant, wait: Duration) {
        let mut s = self.state.lock();
        let until = now + wait;
        s.cooldown_until = Some(s.cooldown_until.map_or(until, |u| u.max(until)));
    }

    /// Whether the last headers showed headroom under `threshold`, still in force.
    pub fn throttled(&self, now: Instant) -> bool {
        self.state.lock().low_until.is_some_and(|u| u > now)
    }

    /// Takes in the headers of a response.
    pub fn observe(&self, headroom: Headroom, threshold: f64, now: Instant) {
        let mut s = self.state.lock();
        s.low_until = headroom.low_until(threshold, now);
        s.headroom = Some(headroom);
    }

    /// Folds an attempt's latency into the moving average.
    pub fn observe_latency(&self, latency: Duration) {
        let ms = latency.as_secs_f64() * 1000.0;
        let mut s = self.state.lock();
        s.latency_ms = Some(s.latency_ms.map_or(ms, |avg| avg * 0.8 + ms * 0.2));
    }

    /// The latency moving average, if any attempt finished.
    pub fn latency(&self) -> Option<Duration> {
        self.state.lock().latency_ms.map(|ms| Duration::from_secs_f64(ms / 1000.0))
    }

    /// The last headroom reading.
    pub fn headroom(&self) -> Option<Headroom> {
        self.state.lock().headroom
    }
}

/// One target of a route.
#[derive(Debug)]
pub struct RouteTarget {
    /// The route's name.
    pub route: Arc<str>,
    /// The provider.
    pub provider: Arc<Provider>,
    /// Its simulator, when the provider is simulated.
    pub simulated: Option<Arc<Simulated>>,
    /// The model.
    pub model: String,
    /// Thresholds.
    pub policy: TargetPolicy,
    /// Its price, when the table has one.
    pub price: Option<Price>,
    /// The account it shares with other routes.
    pub account: Arc<Account>,
    breaker: Mutex<Breaker>,
    label: String,
    /// Where its whole and its streamed chat calls go, parsed once: reqwest
    /// would parse the text on every attempt. `None` for a simulated
    /// provider, or a URL that does not parse (each call then reports it).
    chat_urls: [Option<reqwest::Url>; 2],
    /// Series of successful attempts, looked up once: the hot path then
    /// costs two atomic adds, not a label-set allocation and a map lookup.
    ok_attempts: Counter,
    ok_seconds: Histogram,
    /// Its last hour, for the console.
    pub hour: crate::hour::Hour,
}

impl RouteTarget {
    /// `provider/model`, as attempts are listed.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Where its chat calls go, whole or streamed, when parsed.
    pub fn chat_url(&self, stream: bool) -> Option<&reqwest::Url> {
        self.chat_urls[usize::from(stream)].as_ref()
    }

    /// Counts a successful attempt that took `latency`.
    pub fn count_ok(&self, latency: Duration) {
        self.ok_attempts.inc();
        self.ok_seconds.observe(latency.as_secs_f64());
        self.hour.attempt(true, latency);
    }

    /// Metric labels with `outcome`.
    pub fn labels(&self, outcome: &str) -> TargetLabels {
        TargetLabels {
            route: self.route.to_string(),
            provider: self.provider.name.clone(),
            model: self.model.clone(),
            outcome: outcome.to_string(),
        }
    }

    /// Asks the breaker for a ticket.
    pub fn admit(&self, now: Instant, metrics: &Metrics) -> Result<Ticket, Duration> {
        let mut changes = Vec::new();
        let result = self.breaker.lock().admit(now, &mut changes);
        self.report(&changes, metrics);
        result
    }

    /// Asks the breaker for a degraded-mode ticket, after it refused one;
    /// `Err` holds the fraction of its recent calls that succeeded.
    pub fn admit_degraded(&self, metrics: &Metrics) -> Result<Ticket, f64> {
        let ticket = self.breaker.lock().admit_degraded()?;
        metrics.degraded.get_or_create(&self.labels("admitted")).inc();
        Ok(ticket)
    }

    /// The fraction of the target's recent calls that succeeded, if any were made.
    pub fn recent_success(&self) -> Option<f64> {
        self.breaker.lock().recent_success()
    }

    /// Tells the breaker how an admitted call went.
    pub fn record(&self, ticket: Ticket, ok: bool, now: Instant, metrics: &Metrics) {
        let mut changes = Vec::new();
        self.breaker.lock().record(ticket, ok, now, &mut changes);
        self.report(&changes, metrics);
    }

    /// Hands a ticket back without a verdict.
    pub fn release(&self, ticket: Ticket) {
        self.breaker.lock().release(ticket);
    }

    /// The breaker's state.
    pub fn breaker_state(&self, now: Instant) -> BreakerState {
        self.breaker.lock().state(now)
    }

    /// The breaker's state, and how long it still refuses calls when open.
    pub fn breaker_snapshot(&self, now: Instant) -> (BreakerState, Option<Duration>) {
        let breaker = self.breaker.lock();
        (breaker.state(now), breaker.open_for(now))
    }

    fn report(&self, changes: &[Transition], metrics: &Metrics) {
        for change in changes {
            let (to, why) = match change {
                Transition::Opened(why) | Transition::Reopened(why) => ("open", why.as_str()),
                Transition::HalfOpened => ("half-open", "the open wait is over"),
                Transition::Closed => ("closed", "probes succeeded"),
            };
            tracing::warn!(route = %self.route, target = %self.label(), to, why, "circuit breaker");
            self.hour.transition(to, why);
            metrics.breaker_transitions.get_or_create(&self.labels(to)).inc();
        }
    }
}

/// A conversation, scoped to its tenant: two tenants' ids never collide.
type Conversation = (Arc<str>, String);

/// A route at run time.
#[derive(Debug)]
pub struct Route {
    /// Its name.
    pub name: Arc<str>,
    /// Its settings.
    pub settings: RouteSettings,
    /// Its targets, in configured order.
    pub targets: Vec<Arc<RouteTarget>>,
    affinity: Mutex<HashMap<Conversation, (usize, Instant)>>,
}

impl Route {
    /// Builds a route; `account` gives the shared account of a provider/model.
    pub fn new(
        name: &str,
        settings: RouteSettings,
        metrics: &Metrics,
        mut resolve: impl FnMut(&str, &str) -> (Arc<Provider>, Option<Arc<Simulated>>, Option<Price>, Arc<Account>),
    ) -> Route {
        let name: Arc<str> = Arc::from(name);
        let targets = settings
            .targets
            .iter()
            .map(|t| {
                let (provider, simulated, price, account) = resolve(&t.provider, &t.model);
                let labels = TargetLabels {
                    route: name.to_string(),
                    provider: provider.name.clone(),
                    model: t.model.clone(),
                    outcome: "ok".into(),
                };
                let chat_urls = [false, true].map(|stream| {
                    (provider.kind != Kind::Simulated)
                        .then(|| provider.chat_url(&t.model, stream).parse().ok())
                        .flatten()
                });
                Arc::new(RouteTarget {
                    label: format!("{}/{}", provider.name, t.model),
                    chat_urls,
                    ok_attempts: metrics.attempts.get_or_create(&labels).clone(),
                    ok_seconds: metrics.attempt_seconds.get_or_create(&labels).clone(),
                    hour: crate::hour::Hour::default(),
                    route: name.clone(),
                    provider,
                    simulated,
                    model: t.model.clone(),
                    policy: t.policy,
                    price,
                    account,
                    breaker: Mutex::new(Breaker::new(t.policy.breaker)),
                })
            })
            .collect();
        Route { name, settings, targets, affinity: Mutex::default() }
    }

    /// The route cut to its targets whose `provider/model`, or model, is
    /// `target`: the same breakers, accounts and policy, in the same order.
    pub fn pinned(&self, target: &str) -> Option<Route> {
        let targets: Vec<_> =
            self.targets.iter().filter(|t| t.label() == target || t.model == target).cloned().collect();
        (!targets.is_empty()).then(|| Route {
            name: self.name.clone(),
            settings: self.settings.clone(),
            targets,
            affinity: Mutex::default(),
        })
    }

    /// Why `target` pins none of the route's targets, naming them.
    pub fn no_target(&self, target: &str) -> String {
        let labels: Vec<&str> = self.targets.iter().map(|t| t.label()).collect();
        format!("route {:?} has no target {target:?} (its targets: {})", self.name, labels.join(", "))
    }

    /// The order to try targets in for one request: by strategy, the
    /// conversation's target first while its breaker is closed, and targets
    /// short of headroom moved to the end (tried only when the rest fail).
    pub fn order(
        &self,
        estimate_in: u32,
        estimate_out: u32,
        conversation: Option<(&Arc<str>, &str)>,
        clock: &dyn Clock,
        metrics: &Metrics,
    ) -> Vec<usize> {
        let now = clock.now();
        let mut order: Vec<usize> = (0..self.targets.len()).collect();
        match self.settings.strategy {
            Strategy::Priority => {}
            Strategy::Cheapest => {
                order.sort_by_key(|&i| self.targets[i].price.map_or(u64::MAX, |p| p.cost(estimate_in, estimate_out)))
            }
            Strategy::Fastest => order.sort_by_key(|&i| self.targets[i].account.latency().unwrap_or(Duration::ZERO)),
        }
        if self.settings.affinity
            && let Some(key) = conversation
            && let Some(&(sticky, _)) = self.affinity.lock().get(&(key.0.clone(), key.1.to_string()))
            && let Some(target) = self.targets.get(sticky)
            && target.breaker_state(now) == BreakerState::Closed
            && target.account.cooling(now).is_none()
        {
            order.retain(|&i| i != sticky);
            order.insert(0, sticky);
        }
        let (ready, thin): (Vec<usize>, Vec<usize>) =
            order.into_iter().partition(|&i| !self.targets[i].account.throttled(now));
        for &i in &thin {
            let t = &self.targets[i];
            tracing::info!(route = %self.name, target = %t.label(), "throttled: headroom below threshold, tried last");
            metrics.skips.get_or_create(&t.labels("throttled")).inc();
        }
        ready.into_iter().chain(thin).collect()
    }

    /// Remembers which target served a conversation.
    pub fn stick(&self, tenant: &Arc<str>, conversation: &str, target: usize, now: Instant) {
        if !self.settings.affinity {
            return;
        }
        let mut map = self.affinity.lock();
        if map.len() >= AFFINITY_CAPACITY && !map.contains_key(&(tenant.clone(), conversation.to_string())) {
            let oldest = map.iter().min_by_key(|(_, (_, at))| *at).map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                map.remove(&oldest);
            }
        }
        map.insert((tenant.clone(), conversation.to_string()), (target, now));
    }
}
