//! The runtime's Prometheus series: invocations by tenant, agent and
//! outcome, their durations, the fuel they burned and the limits they hit;
//! invocations running now; components compiled or mapped from the code
//! cache. Labels are bounded by the tenants that hold keys and the plugins
//! in the folder. Each tenant's last hour of invocations, a minute at a
//! time, is kept beside them for the console's overview.

use crate::plugins::cache::Compiled;
use paddock_core::minutes::{LastHour, PerMinute, now_ms};
use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

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

/// Labels of a limit hit.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabels {
    /// The tenant it ran for.
    pub tenant: String,
    /// The agent.
    pub agent: String,
    /// `fuel`, `memory`, `table-elements`, `timeout`, `stack`, `host-call` or `io`.
    pub limit: String,
}

/// Labels of a per-tenant series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TenantLabels {
    /// The tenant.
    pub tenant: String,
}

/// Labels of an agent's outbound HTTP request count.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// The tenant whose agent sent it.
    pub tenant: String,
    /// `2xx`...`5xx`, or why it got no response: `denied`,
    /// `request-too-large`, `response-too-large`, `timeout`, `dns`,
    /// `refused`, `failed`.
    pub outcome: String,
}

/// Labels of a code-cache series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    /// `hit` (mapped from the cache), `compiled`, or `baseline` (Winch's
    /// code serving while Cranelift compiles); `optimized` counts those
    /// background compiles when they end (compiled, or found in the cache).
    pub result: String,
}

/// A minute of a tenant's invocations.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Activity {
    /// Minutes since 1970 (UTC).
    pub minute: u64,
    /// Invocations that ended in it.
    pub invocations: u64,
    /// Of those, the ones that did not succeed.
    pub errors: u64,
    /// Of those, the ones stopped at a limit.
    pub limits: u64,
}

impl PerMinute for Activity {
    fn starting(minute: u64) -> Self {
        Activity { minute, ..Activity::default() }
    }
    fn minute(&self) -> u64 {
        self.minute
    }
}

/// A tenant's last hour of invocations and those running now.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TenantActivity {
    /// The tenant.
    pub tenant: String,
    /// Its invocations running now.
    pub in_flight: i64,
    /// The minutes with any invocation, oldest first.
    pub minutes: Vec<Activity>,
}

/// Counts a version's optimized code swapped in behind its baseline code.
pub(super) fn count_optimized(family: &Family<CacheLabels, Counter>) {
    family.get_or_create(&CacheLabels { result: "optimized".into() }).inc();
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
    /// Invocations stopped at a limit, by tenant, agent and limit.
    pub limits_hit: Family<LimitLabels, Counter>,
    /// Invocations running now, by tenant (agents' calls to agents included).
    pub in_flight: Family<TenantLabels, Gauge>,
    /// Components loaded: mapped from the code cache, or compiled.
    pub code_cache: Family<CacheLabels, Counter>,
    /// Agents' outbound HTTP requests by tenant and outcome (a replayed one is not counted).
    pub http_requests: Family<HttpLabels, Counter>,
    /// Each tenant's last hour of invocations, and its agents' series.
    activity: Mutex<std::collections::HashMap<String, TenantSeries>>,
    /// Invocations running now, of every tenant. The tenants' gauges
    /// change under this lock too, so a start compares counts of one moment:
    /// apart, a start of one tenant racing another's start or end of the
    /// same tenant read the total past its own count, and a tenant alone on
    /// the host counted as shared all the time it was busy.
    running_now: Arc<Mutex<i64>>,
    /// When an invocation last started while another tenant's ran, in
    /// milliseconds since the epoch (0: never).
    mixed_at: AtomicU64,
}

/// How long after two tenants last ran at once the host still counts as
/// shared ([`RuntimeMetrics::shared`]).
pub const SHARED_FOR_MS: u64 = 10_000;

/// What [`RuntimeMetrics::record`] counts for one tenant, found by name
/// without making a label.
#[derive(Default)]
struct TenantSeries {
    hour: LastHour<Activity>,
    agents: std::collections::HashMap<String, AgentSeries>,
}

/// One agent's series for one tenant: handles to the families' own, so an
/// invocation counts without making labels or hashing them again. The count
/// of successes is made by the first (no series at 0 before it).
struct AgentSeries {
    ok: Option<Counter>,
    seconds: Histogram,
    fuel: Counter,
}

impl Default for RuntimeMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("paddock");
        let m = RuntimeMetrics {
            invocations: Family::default(),
            invocation_seconds: Family::new_with_constructor(duration_histogram as fn() -> Histogram),
            fuel: Family::default(),
            limits_hit: Family::default(),
            in_flight: Family::default(),
            code_cache: Family::default(),
            http_requests: Family::default(),
            activity: Mutex::default(),
            running_now: Arc::default(),
            mixed_at: AtomicU64::new(0),
            registry: Registry::default(),
        };
        registry.register("invocations", "Invocations by tenant, agent and outcome", m.invocations.clone());
        registry.register("invocation_seconds", "Invocation wall-clock time", m.invocation_seconds.clone());
        registry.register("fuel_consumed", "Fuel burned by invocations", m.fuel.clone());
        registry.register("limits_hit", "Invocations stopped at a limit", m.limits_hit.clone());
        registry.register("invocations_in_flight", "Invocations running now", m.in_flight.clone());
        registry.register(
            "code_cache_loads",
            "Components mapped from the code cache or compiled",
            m.code_cache.clone(),
        );
        registry.register(
            "agent_http_requests",
            "Agents' outbound HTTP requests by tenant and outcome",
            m.http_requests.clone(),
        );
        RuntimeMetrics { registry, ..m }
    }
}

impl RuntimeMetrics {
    /// Counts one invocation.
    pub fn record(&self, tenant: &str, agent: &str, outcome: &str, seconds: f64, fuel: u64) {
        let count = |m: &mut Activity| {
            m.invocations += 1;
            m.errors += u64::from(outcome != "ok");
            m.limits += u64::from(outcome == "limit");
        };
        let mut activity = self.activity.lock();
        let series = match activity.get_mut(tenant) {
            Some(series) => series,
            None => activity.entry(tenant.to_string()).or_default(),
        };
        series.hour.count(now_ms(), count);
        let meters = match series.agents.get_mut(agent) {
            Some(meters) => meters,
            None => series.agents.entry(agent.to_string()).or_insert_with(|| self.series(tenant, agent)),
        };
        meters.seconds.observe(seconds);
        meters.fuel.inc_by(fuel);
        let labels = || OutcomeLabels { tenant: tenant.to_string(), agent: agent.to_string(), outcome: outcome.into() };
        if outcome == "ok" {
            meters.ok.get_or_insert_with(|| self.invocations.get_or_create(&labels()).clone()).inc();
        } else {
            self.invocations.get_or_create(&labels()).inc();
        }
    }

    /// Handles to `agent`'s series of time and fuel for `tenant`, made in the families.
    fn series(&self, tenant: &str, agent: &str) -> AgentSeries {
        let who = AgentLabels { tenant: tenant.to_string(), agent: agent.to_string() };
        AgentSeries {
            ok: None,
            seconds: self.invocation_seconds.get_or_create(&who).clone(),
            fuel: self.fuel.get_or_create(&who).clone(),
        }
    }

    /// The last hour of `tenant`'s invocations (every tenant's that ended any in it,
    /// by name, when `None`) and those running now.
    pub fn activity(&self, tenant: Option<&str>) -> Vec<TenantActivity> {
        let now = now_ms();
        let activity = self.activity.lock();
        let mut tenants: Vec<TenantActivity> = activity
            .iter()
            .filter(|(name, _)| tenant.is_none_or(|t| t == name.as_str()))
            .map(|(name, series)| TenantActivity {
                tenant: name.clone(),
                in_flight: self.in_flight.get_or_create(&TenantLabels { tenant: name.clone() }).get(),
                minutes: series.hour.view(now),
            })
            .collect();
        tenants.sort_by(|a, b| a.tenant.cmp(&b.tenant));
        tenants
    }

    /// Invocations running now, of every tenant.
    pub fn in_flight_total(&self) -> i64 {
        *self.running_now.lock()
    }

    /// Counts a limit hit.
    pub fn limit_hit(&self, tenant: &str, agent: &str, limit: &str) {
        let labels = LimitLabels { tenant: tenant.to_string(), agent: agent.to_string(), limit: limit.to_string() };
        self.limits_hit.get_or_create(&labels).inc();
    }

    /// Counts a component loaded: mapped from the code cache, compiled, or
    /// compiled by the baseline compiler.
    pub fn loaded(&self, compiled: Compiled) {
        let result = match compiled {
            Compiled::Cached => "hit",
            Compiled::Fresh => "compiled",
            Compiled::Baseline => "baseline",
        };
        self.code_cache.get_or_create(&CacheLabels { result: result.into() }).inc();
    }

    /// What counts the outbound HTTP requests of `tenant`'s agents, by outcome.
    pub fn http_counter(&self, tenant: &str) -> crate::caps::CountOutcome {
        let (family, tenant) = (self.http_requests.clone(), tenant.to_string());
        std::sync::Arc::new(move |outcome: &str| {
            family.get_or_create(&HttpLabels { tenant: tenant.clone(), outcome: outcome.to_string() }).inc();
        })
    }

    /// Counts an invocation of `tenant` as running until the guard drops.
    pub fn running(&self, tenant: &str) -> InFlight {
        let gauge = self.in_flight.get_or_create(&TenantLabels { tenant: tenant.to_string() }).clone();
        let beside = {
            let mut running = self.running_now.lock();
            let beside = gauge.inc();
            *running += 1;
            if *running - 1 > beside {
                self.mixed_at.store(now_ms(), Ordering::Relaxed);
            }
            beside
        };
        InFlight(gauge, self.running_now.clone(), beside)
    }

    /// Whether invocations of two tenants ran at once within the last
    /// [`SHARED_FOR_MS`]: whether a tenant's flood has anyone to be kept from.
    pub fn shared(&self) -> bool {
        self.shared_at(now_ms())
    }

    fn shared_at(&self, now: u64) -> bool {
        let mixed = self.mixed_at.load(Ordering::Relaxed);
        mixed != 0 && now.saturating_sub(mixed) < SHARED_FOR_MS
    }

    /// Appends the text exposition of every series to `out`, without the
    /// closing `# EOF` (the endpoint writes it once, after every registry).
    pub fn render_into(&self, out: &mut String) {
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode_registry(out, &self.registry);
    }
}

/// An invocation counted in `paddock_invocations_in_flight` while it lives,
/// with how many of its tenant's were running when it started.
pub struct InFlight(Gauge, Arc<Mutex<i64>>, i64);

impl InFlight {
    /// Its tenant's invocations running when it started.
    pub fn beside(&self) -> i64 {
        self.2
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut running = self.1.lock();
        self.0.dec();
        *running -= 1;
    }
}

impl std::fmt::Debug for RuntimeMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RuntimeMetrics")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_is_shared_from_when_two_tenants_run_at_once_until_ten_seconds_after() {
        let metrics = RuntimeMetrics::default();
        let alone: Vec<InFlight> = (0..4).map(|_| metrics.running("a")).collect();
        assert!(!metrics.shared(), "one tenant's invocations alone, however many");
        drop(alone);
        let a = metrics.running("a");
        assert!(!metrics.shared(), "a's invocations one after another");
        let b = metrics.running("b");
        assert_eq!((a.beside(), b.beside()), (0, 0));
        assert!(metrics.shared(), "b started while a ran");
        drop((a, b));
        let mixed = metrics.mixed_at.load(Ordering::Relaxed);
        assert!(metrics.shared_at(mixed + SHARED_FOR_MS - 1), "still shared just inside the window");
        assert!(!metrics.shared_at(mixed + SHARED_FOR_MS), "no longer shared once the window has passed");
    }

    #[test]
    fn each_invocation_counts_in_its_tenants_and_agents_series_whichever_came_first() {
        let metrics = RuntimeMetrics::default();
        metrics.record("a", "echo", "ok", 0.002, 10);
        metrics.record("a", "echo", "error", 0.004, 5);
        metrics.record("b", "echo", "ok", 0.001, 1);
        metrics.record("a", "echo", "ok", 0.003, 7);
        metrics.record("a", "hello", "limit", 0.5, 100);
        let mut text = String::new();
        metrics.render_into(&mut text);
        let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#') && !l.contains("_bucket")).collect();
        for expected in [
            r#"paddock_invocations_total{tenant="a",agent="echo",outcome="ok"} 2"#,
            r#"paddock_invocations_total{tenant="a",agent="echo",outcome="error"} 1"#,
            r#"paddock_invocations_total{tenant="b",agent="echo",outcome="ok"} 1"#,
            r#"paddock_invocations_total{tenant="a",agent="hello",outcome="limit"} 1"#,
            r#"paddock_fuel_consumed_total{tenant="a",agent="echo"} 22"#,
            r#"paddock_fuel_consumed_total{tenant="b",agent="echo"} 1"#,
            r#"paddock_fuel_consumed_total{tenant="a",agent="hello"} 100"#,
            r#"paddock_invocation_seconds_count{tenant="a",agent="echo"} 3"#,
            r#"paddock_invocation_seconds_sum{tenant="a",agent="echo"} 0.009000000000000001"#,
        ] {
            assert!(lines.contains(&expected), "{expected} in {lines:#?}");
        }
        assert_eq!(lines.iter().filter(|l| l.starts_with("paddock_invocations_total")).count(), 4, "{lines:#?}");
        let minutes = |t: &str| metrics.activity(Some(t))[0].minutes.iter().map(|m| m.invocations).sum::<u64>();
        assert_eq!((minutes("a"), minutes("b")), (4, 1));
    }

    #[test]
    fn one_tenants_invocations_starting_and_ending_at_once_on_many_threads_never_count_as_shared() {
        let metrics = RuntimeMetrics::default();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..20_000 {
                        drop(metrics.running("a"));
                    }
                });
            }
        });
        assert_eq!((metrics.shared(), metrics.in_flight_total()), (false, 0));
    }
}
