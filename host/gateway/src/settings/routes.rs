//! `[routes.NAME]`: what serde reads, and its validation into
//! [`RouteSettings`]: the strategy, the targets, and the thresholds each
//! target takes from its own keys, else its route's, else the defaults.

use super::{DEFAULT_RATE_LIMIT_WAIT, GatewaySettings, Price, RouteSettings, Strategy, TargetPolicy, TargetSettings};
use super::{SettingsError, fraction};
use crate::providers::Provider;
use paddock_core::Span;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// `[routes.NAME]`, as serde reads it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RouteFile {
    strategy: Option<String>,
    targets: Vec<TargetFile>,
    max_attempts: Option<u32>,
    timeout: Option<Span>,
    backoff_base: Option<Span>,
    backoff_max: Option<Span>,
    affinity: Option<bool>,
    rate_limit_wait: Option<Span>,
    #[serde(flatten)]
    policy: PolicyFile,
}

/// One of `targets = [...]`, as serde reads it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct TargetFile {
    provider: String,
    model: String,
    #[serde(flatten)]
    policy: PolicyFile,
}

/// The thresholds a route or a target may set, as serde reads them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct PolicyFile {
    retries: Option<u32>,
    attempt_timeout: Option<Span>,
    first_token_timeout: Option<Span>,
    idle_timeout: Option<Span>,
    throttle_below: Option<f64>,
    breaker: Option<BreakerFile>,
}

/// `breaker = { ... }`, as serde reads it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct BreakerFile {
    failures: Option<u32>,
    failure_rate: Option<f64>,
    window: Option<Span>,
    min_calls: Option<u32>,
    open_for: Option<Span>,
    probes: Option<u32>,
    close_after: Option<u32>,
    probe_timeout: Option<Span>,
    panic_min_success: Option<f64>,
}

impl RouteFile {
    /// The route `name` over `providers`, priced by `prices`. Errors name the
    /// key under `routes.NAME`.
    pub(super) fn route(
        self,
        name: &str,
        providers: &BTreeMap<String, Provider>,
        prices: &BTreeMap<String, Price>,
    ) -> Result<RouteSettings, SettingsError> {
        let at = format!("routes.{name}");
        let strategy = match self.strategy.as_deref() {
            None | Some("priority") => Strategy::Priority,
            Some("cheapest") => Strategy::Cheapest,
            Some("fastest") => Strategy::Fastest,
            Some(other) => {
                return Err(SettingsError::invalid(
                    format!("{at}.strategy"),
                    format!("`{other}` is not one of \"priority\", \"cheapest\", \"fastest\""),
                ));
            }
        };
        if self.targets.is_empty() {
            return Err(SettingsError::invalid(format!("{at}.targets"), "a route needs at least one target"));
        }
        let route_policy = self.policy.apply(TargetPolicy::default(), &at)?;
        let mut targets = Vec::with_capacity(self.targets.len());
        for (i, target) in self.targets.into_iter().enumerate() {
            targets.push(target.target(&format!("{at}.targets[{i}]"), strategy, route_policy, providers, prices)?);
        }
        let max_attempts = self.max_attempts.unwrap_or(4);
        if max_attempts == 0 {
            return Err(SettingsError::Rule { key: format!("{at}.max-attempts"), rule: "must be at least 1" });
        }
        Ok(RouteSettings {
            strategy,
            targets,
            max_attempts,
            timeout: self.timeout.map_or(Duration::from_secs(120), |s| s.0),
            backoff_base: self.backoff_base.map_or(Duration::from_millis(250), |s| s.0),
            backoff_max: self.backoff_max.map_or(Duration::from_secs(8), |s| s.0),
            affinity: self.affinity.unwrap_or(true),
            rate_limit_wait: self.rate_limit_wait.map_or(DEFAULT_RATE_LIMIT_WAIT, |s| s.0),
        })
    }
}

impl TargetFile {
    /// The target at `at`: its provider must exist, and have a price when
    /// the route picks the cheapest; its thresholds start from `route_policy`.
    fn target(
        self,
        at: &str,
        strategy: Strategy,
        route_policy: TargetPolicy,
        providers: &BTreeMap<String, Provider>,
        prices: &BTreeMap<String, Price>,
    ) -> Result<TargetSettings, SettingsError> {
        if !providers.contains_key(&self.provider) {
            let known: Vec<&str> = providers.keys().map(String::as_str).collect();
            return Err(SettingsError::invalid(
                format!("{at}.provider"),
                format!(
                    "no provider named {:?} (configured: {})",
                    self.provider,
                    if known.is_empty() { "none".to_string() } else { known.join(", ") }
                ),
            ));
        }
        if strategy == Strategy::Cheapest && GatewaySettings::price_in(prices, &self.provider, &self.model).is_none() {
            return Err(SettingsError::invalid(
                at,
                format!("strategy \"cheapest\" needs a price for {}/{} in [prices]", self.provider, self.model),
            ));
        }
        let policy = self.policy.apply(route_policy, at)?;
        Ok(TargetSettings { provider: self.provider, model: self.model, policy })
    }
}

impl PolicyFile {
    /// `base` with the thresholds these keys (at `at`) set.
    fn apply(&self, base: TargetPolicy, at: &str) -> Result<TargetPolicy, SettingsError> {
        let mut p = base;
        if let Some(n) = self.retries {
            p.retries = n;
        }
        for (value, slot, key) in [
            (self.attempt_timeout, &mut p.attempt_timeout, "attempt-timeout"),
            (self.first_token_timeout, &mut p.first_token_timeout, "first-token-timeout"),
            (self.idle_timeout, &mut p.idle_timeout, "idle-timeout"),
        ] {
            if let Some(Span(d)) = value {
                if d.is_zero() {
                    return Err(SettingsError::Rule { key: format!("{at}.{key}"), rule: "must be greater than zero" });
                }
                *slot = d;
            }
        }
        p.throttle_below = fraction(self.throttle_below, p.throttle_below, at, "throttle-below")?;
        if let Some(b) = &self.breaker {
            let s = &mut p.breaker;
            s.failures = b.failures.unwrap_or(s.failures).max(1);
            s.failure_rate = fraction(b.failure_rate, s.failure_rate, at, "breaker.failure-rate")?;
            s.window = b.window.map_or(s.window, |x| x.0);
            s.min_calls = b.min_calls.unwrap_or(s.min_calls);
            s.open_for = b.open_for.map_or(s.open_for, |x| x.0);
            s.probes = b.probes.unwrap_or(s.probes).max(1);
            s.close_after = b.close_after.unwrap_or(s.close_after).max(1);
            s.probe_timeout = b.probe_timeout.map_or(s.probe_timeout, |x| x.0);
            s.panic_min_success = fraction(b.panic_min_success, s.panic_min_success, at, "breaker.panic-min-success")?;
        }
        Ok(p)
    }
}
