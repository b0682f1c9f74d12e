//! The `[providers]`, `[routes]` and `[prices]` sections of `paddock.toml`,
//! read and validated into typed settings.

use super::breaker::BreakerSettings;
use super::error::ErrorClass;
use super::providers::simulated::SimSettings;
use super::providers::{KeyHeader, Kind, Provider, Secret};
use paddock_core::Span;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// How long a request may wait, in all, for rate-limited targets to come
/// back. Short enough that an agent is not left hanging on a long Retry-After
/// (it gets `rate-limited(ms)` and decides), long enough to ride out the
/// sub-second waits providers ask for under bursts.
const DEFAULT_RATE_LIMIT_WAIT: Duration = Duration::from_secs(2);

/// How a route orders its targets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Strategy {
    /// In the order written.
    #[default]
    Priority,
    /// Cheapest first, by the price table and the request's size.
    Cheapest,
    /// Fastest first, by observed latency (untried targets first).
    Fastest,
}

/// Thresholds of one target, from the target, else its route, else the defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TargetPolicy {
    /// Retries on this target after a retryable error, before failing over.
    pub retries: u32,
    /// The most one whole (not streamed) attempt may take.
    pub attempt_timeout: Duration,
    /// The most a streamed attempt may take to its first piece.
    pub first_token_timeout: Duration,
    /// The most a stream may pause between pieces.
    pub idle_timeout: Duration,
    /// Skip the target while its headers show less than this fraction of
    /// requests or tokens left (0 turns throttling off).
    pub throttle_below: f64,
    /// Its circuit breaker.
    pub breaker: BreakerSettings,
}

impl Default for TargetPolicy {
    fn default() -> Self {
        TargetPolicy {
            retries: 1,
            attempt_timeout: Duration::from_secs(60),
            first_token_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(30),
            throttle_below: 0.2,
            breaker: BreakerSettings::default(),
        }
    }
}

/// One target of a route.
#[derive(Clone, Debug, PartialEq)]
pub struct TargetSettings {
    /// The provider's name.
    pub provider: String,
    /// The model.
    pub model: String,
    /// Its thresholds.
    pub policy: TargetPolicy,
}

/// A named route.
#[derive(Clone, Debug, PartialEq)]
pub struct RouteSettings {
    /// How targets are ordered.
    pub strategy: Strategy,
    /// The chain.
    pub targets: Vec<TargetSettings>,
    /// Attempts per request, over all targets (the retry budget).
    pub max_attempts: u32,
    /// The deadline of a whole request, attempts and backoff included.
    pub timeout: Duration,
    /// First backoff before a retry; doubles per retry, with full jitter.
    pub backoff_base: Duration,
    /// The most one backoff may be.
    pub backoff_max: Duration,
    /// Keep a conversation on the target that served it while it is healthy.
    pub affinity: bool,
    /// When every target is rate limited, the longest a request waits for
    /// the soonest to come back before answering `rate-limited`.
    pub rate_limit_wait: Duration,
}

/// Price of a model in micro-dollars per million tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Price {
    /// Per million input tokens.
    pub input: u64,
    /// Per million output tokens.
    pub output: u64,
}

impl Price {
    /// The cost of `input` and `output` tokens in micro-dollars, rounded.
    pub fn cost(&self, input: u32, output: u32) -> u64 {
        let micro_millionths =
            u128::from(input) * u128::from(self.input) + u128::from(output) * u128::from(self.output);
        ((micro_millionths + 500_000) / 1_000_000).min(u128::from(u64::MAX)) as u64
    }
}

/// Providers, routes and prices, validated.
#[derive(Clone, Debug, Default)]
pub struct GatewaySettings {
    /// Providers by name.
    pub providers: BTreeMap<String, Provider>,
    /// Routes by name.
    pub routes: BTreeMap<String, RouteSettings>,
    /// Prices by `provider/model` or `model`.
    pub prices: BTreeMap<String, Price>,
    /// Whether these are the built-in simulated defaults (nothing configured).
    pub simulated_defaults: bool,
}

impl GatewaySettings {
    /// The price of `model` at `provider`: `provider/model` first, then `model`.
    pub fn price(&self, provider: &str, model: &str) -> Option<Price> {
        self.prices.get(&format!("{provider}/{model}")).or_else(|| self.prices.get(model)).copied()
    }
}

/// `[providers.NAME]`, as serde reads it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ProviderFile {
    kind: String,
    base_url: Option<String>,
    api_key_env: Option<String>,
    api_key_secret: Option<String>,
    key_header: Option<String>,
    query: Option<String>,
    max_tokens_field: Option<String>,
    // simulated only
    seed: Option<u64>,
    latency: Option<Span>,
    chunk_delay: Option<Span>,
    reply_tokens: Option<u32>,
    failure_rate: Option<f64>,
    failures: Option<Vec<String>>,
}

impl ProviderFile {
    /// The implicit `simulated` provider.
    pub fn simulated() -> Self {
        ProviderFile { kind: "simulated".into(), ..Default::default() }
    }
}

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
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct TargetFile {
    provider: String,
    model: String,
    #[serde(flatten)]
    policy: PolicyFile,
}

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

/// `[prices."MODEL"]`, as serde reads it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PriceFile {
    /// US dollars per million input tokens.
    input: f64,
    /// US dollars per million output tokens.
    output: f64,
}

/// The raw sections, as serde reads them.
#[derive(Debug, Default)]
pub struct GatewayFile {
    /// `[providers]`.
    pub providers: BTreeMap<String, ProviderFile>,
    /// `[routes]`.
    pub routes: BTreeMap<String, RouteFile>,
    /// `[prices]`.
    pub prices: BTreeMap<String, PriceFile>,
    /// `host.secrets`: a file of API keys, relative to the configuration file.
    pub secrets: Option<std::path::PathBuf>,
}

/// Where API keys come from: the environment, and the secrets file.
pub struct KeySource<'a> {
    /// Reads an environment variable.
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// The folder relative paths start from (the configuration file's).
    pub base: &'a Path,
}

impl GatewayFile {
    /// The settings of these sections, with API keys read from the process's
    /// environment. With no providers and no routes, the simulated provider
    /// and its routes `fast` and `smart` stand in, so the demo runs offline;
    /// a `simulated` provider is always there to route to.
    pub fn settings(self, base: &Path) -> Result<GatewaySettings, String> {
        if self.providers.is_empty() && self.routes.is_empty() {
            let mut defaults = GatewaySettings::simulated_defaults();
            let prices = GatewayFile { prices: self.prices, ..Default::default() };
            defaults.prices.extend(prices.validate(&KeySource { env: &|_| None, base })?.prices);
            return Ok(defaults);
        }
        let mut file = self;
        file.providers.entry("simulated".to_string()).or_insert_with(ProviderFile::simulated);
        file.validate(&KeySource { env: &|name| std::env::var(name).ok(), base })
    }

    /// Validates the sections. Errors name the key.
    pub fn validate(self, keys: &KeySource<'_>) -> Result<GatewaySettings, String> {
        let secrets = match &self.secrets {
            Some(path) => Some(read_secrets(&keys.base.join(path))?),
            None => None,
        };
        let mut providers = BTreeMap::new();
        for (name, p) in self.providers {
            let at = format!("providers.{name}");
            let kind = Kind::parse(&p.kind).ok_or_else(|| {
                format!(
                    "{at}.kind: `{}` is not a provider kind; use openai, anthropic, gemini, ollama or simulated",
                    p.kind
                )
            })?;
            let key = match (&p.api_key_env, &p.api_key_secret) {
                (Some(_), Some(_)) => return Err(format!("{at}: give api-key-env or api-key-secret, not both")),
                (Some(var), None) => Some(Secret::new(
                    (keys.env)(var)
                        .filter(|v| !v.is_empty())
                        .ok_or_else(|| format!("{at}.api-key-env: the environment variable {var} is not set"))?,
                )),
                (None, Some(secret)) => {
                    let secrets = secrets
                        .as_ref()
                        .ok_or_else(|| format!("{at}.api-key-secret: no secrets file is configured (host.secrets)"))?;
                    Some(Secret::new(
                        secrets
                            .get(secret)
                            .cloned()
                            .ok_or_else(|| format!("{at}.api-key-secret: the secrets file has no key {secret:?}"))?,
                    ))
                }
                (None, None) => None,
            };
            let key_header = match p.key_header.as_deref() {
                None | Some("authorization") => KeyHeader::Bearer,
                Some("api-key") => KeyHeader::ApiKey,
                Some(other) => {
                    return Err(format!("{at}.key-header: `{other}` is not one of \"authorization\", \"api-key\""));
                }
            };
            let max_completion_tokens = match (kind, p.max_tokens_field.as_deref()) {
                (_, None) | (Kind::OpenAi, Some("max_tokens")) => false,
                (Kind::OpenAi, Some("max_completion_tokens")) => true,
                (Kind::OpenAi, Some(other)) => {
                    return Err(format!(
                        "{at}.max-tokens-field: `{other}` is not one of \"max_tokens\", \"max_completion_tokens\""
                    ));
                }
                (_, Some(_)) => return Err(format!("{at}.max-tokens-field is for kind = \"openai\" only")),
            };
            let base_url = p.base_url.unwrap_or_else(|| kind.default_base_url().to_string());
            if kind != Kind::Simulated && !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
                return Err(format!("{at}.base-url: `{base_url}` is not an http:// or https:// URL"));
            }
            let mut simulated = SimSettings::default();
            if kind == Kind::Simulated {
                simulated.seed = p.seed.unwrap_or(0);
                simulated.latency = p.latency.map_or(Duration::ZERO, |s| s.0);
                simulated.chunk_delay = p.chunk_delay.map_or(Duration::ZERO, |s| s.0);
                simulated.reply_tokens = p.reply_tokens.unwrap_or(simulated.reply_tokens);
                simulated.failure_rate = fraction(p.failure_rate, 0.0, &format!("{at}.failure-rate"))?;
                if let Some(names) = p.failures {
                    simulated.failures = names
                        .iter()
                        .map(|n| class_named(n).ok_or_else(|| format!("{at}.failures: `{n}` is not an error class")))
                        .collect::<Result<_, _>>()?;
                }
            } else if p.seed.is_some() || p.latency.is_some() || p.failure_rate.is_some() || p.failures.is_some() {
                return Err(format!("{at}: seed, latency and failure settings are for kind = \"simulated\" only"));
            }
            let provider = Provider {
                name: name.clone(),
                kind,
                base_url: base_url.trim_end_matches('/').to_string(),
                key,
                key_header,
                query: p.query,
                max_completion_tokens,
                simulated,
            };
            providers.insert(name, provider);
        }

        let mut prices = BTreeMap::new();
        for (model, price) in self.prices {
            let micros = |usd: f64, which: &str| {
                if usd.is_finite() && usd >= 0.0 {
                    Ok((usd * 1_000_000.0).round() as u64)
                } else {
                    Err(format!("prices.\"{model}\".{which}: {usd} is not a price in US dollars per million tokens"))
                }
            };
            prices.insert(
                model.clone(),
                Price { input: micros(price.input, "input")?, output: micros(price.output, "output")? },
            );
        }

        let mut routes = BTreeMap::new();
        for (name, r) in self.routes {
            let at = format!("routes.{name}");
            let strategy = match r.strategy.as_deref() {
                None | Some("priority") => Strategy::Priority,
                Some("cheapest") => Strategy::Cheapest,
                Some("fastest") => Strategy::Fastest,
                Some(other) => {
                    return Err(format!(
                        "{at}.strategy: `{other}` is not one of \"priority\", \"cheapest\", \"fastest\""
                    ));
                }
            };
            if r.targets.is_empty() {
                return Err(format!("{at}.targets: a route needs at least one target"));
            }
            let route_policy = r.policy.apply(TargetPolicy::default(), &at)?;
            let mut targets = Vec::new();
            for (i, t) in r.targets.into_iter().enumerate() {
                let tat = format!("{at}.targets[{i}]");
                if !providers.contains_key(&t.provider) {
                    let known: Vec<&str> = providers.keys().map(String::as_str).collect();
                    return Err(format!(
                        "{tat}.provider: no provider named {:?} (configured: {})",
                        t.provider,
                        if known.is_empty() { "none".to_string() } else { known.join(", ") }
                    ));
                }
                if strategy == Strategy::Cheapest && GatewaySettings::price_in(&prices, &t.provider, &t.model).is_none()
                {
                    return Err(format!(
                        "{tat}: strategy \"cheapest\" needs a price for {}/{} in [prices]",
                        t.provider, t.model
                    ));
                }
                targets.push(TargetSettings {
                    provider: t.provider,
                    model: t.model,
                    policy: t.policy.apply(route_policy, &tat)?,
                });
            }
            let settings = RouteSettings {
                strategy,
                targets,
                max_attempts: r.max_attempts.unwrap_or(4),
                timeout: r.timeout.map_or(Duration::from_secs(120), |s| s.0),
                backoff_base: r.backoff_base.map_or(Duration::from_millis(250), |s| s.0),
                backoff_max: r.backoff_max.map_or(Duration::from_secs(8), |s| s.0),
                affinity: r.affinity.unwrap_or(true),
                rate_limit_wait: r.rate_limit_wait.map_or(DEFAULT_RATE_LIMIT_WAIT, |s| s.0),
            };
            if settings.max_attempts == 0 {
                return Err(format!("{at}.max-attempts must be at least 1"));
            }
            routes.insert(name, settings);
        }
        Ok(GatewaySettings { providers, routes, prices, simulated_defaults: false })
    }
}

impl GatewaySettings {
    fn price_in(prices: &BTreeMap<String, Price>, provider: &str, model: &str) -> Option<Price> {
        prices.get(&format!("{provider}/{model}")).or_else(|| prices.get(model)).copied()
    }

    /// What a host with nothing configured offers: a `simulated` provider and
    /// the routes `fast` and `smart` on it, so the demo runs offline.
    pub fn simulated_defaults() -> GatewaySettings {
        let provider = Provider {
            name: "simulated".into(),
            kind: Kind::Simulated,
            base_url: String::new(),
            key: None,
            key_header: KeyHeader::Bearer,
            query: None,
            max_completion_tokens: false,
            simulated: SimSettings::default(),
        };
        let route = |model: &str| RouteSettings {
            strategy: Strategy::Priority,
            targets: vec![TargetSettings {
                provider: "simulated".into(),
                model: model.into(),
                policy: TargetPolicy::default(),
            }],
            max_attempts: 4,
            timeout: Duration::from_secs(120),
            backoff_base: Duration::from_millis(250),
            backoff_max: Duration::from_secs(8),
            affinity: true,
            rate_limit_wait: DEFAULT_RATE_LIMIT_WAIT,
        };
        GatewaySettings {
            providers: BTreeMap::from([("simulated".to_string(), provider)]),
            routes: BTreeMap::from([
                ("fast".to_string(), route("sim-fast")),
                ("smart".to_string(), route("sim-smart")),
            ]),
            prices: BTreeMap::new(),
            simulated_defaults: true,
        }
    }
}

impl PolicyFile {
    fn apply(&self, base: TargetPolicy, at: &str) -> Result<TargetPolicy, String> {
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
                    return Err(format!("{at}.{key} must be greater than zero"));
                }
                *slot = d;
            }
        }
        p.throttle_below = fraction(self.throttle_below, p.throttle_below, &format!("{at}.throttle-below"))?;
        if let Some(b) = &self.breaker {
            let s = &mut p.breaker;
            s.failures = b.failures.unwrap_or(s.failures).max(1);
            s.failure_rate = fraction(b.failure_rate, s.failure_rate, &format!("{at}.breaker.failure-rate"))?;
            s.window = b.window.map_or(s.window, |x| x.0);
            s.min_calls = b.min_calls.unwrap_or(s.min_calls);
            s.open_for = b.open_for.map_or(s.open_for, |x| x.0);
            s.probes = b.probes.unwrap_or(s.probes).max(1);
            s.close_after = b.close_after.unwrap_or(s.close_after).max(1);
            s.probe_timeout = b.probe_timeout.map_or(s.probe_timeout, |x| x.0);
        }
        Ok(p)
    }
}

fn fraction(value: Option<f64>, default: f64, key: &str) -> Result<f64, String> {
    match value {
        None => Ok(default),
        Some(v) if (0.0..=1.0).contains(&v) => Ok(v),
        Some(v) => Err(format!("{key}: {v} is not a fraction between 0 and 1")),
    }
}

/// The error class named `name` (as in messages: "server-error", "rate-limited"…).
pub fn class_named(name: &str) -> Option<ErrorClass> {
    ErrorClass::ALL.into_iter().find(|c| c.as_str() == name)
}

/// Reads a secrets file: TOML of `name = "key"`. A file others may read is refused.
fn read_secrets(path: &Path) -> Result<BTreeMap<String, String>, String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("host.secrets: cannot read {shown}: {e}"))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).map(|m| m.permissions().mode()).unwrap_or(0);
        if mode & 0o077 != 0 {
            return Err(format!(
                "host.secrets: {shown} can be read by other users (mode {:o}); run `chmod 600 {shown}`",
                mode & 0o777
            ));
        }
    }
    // The error deliberately omits toml's excerpt of the line: it would print a key.
    toml::from_str::<BTreeMap<String, String>>(&text).map_err(|e| {
        format!(
            "host.secrets: {shown} is not a TOML table of name = \"key\" strings{}",
            match e.span() {
                Some(span) => format!(" (error at byte {})", span.start),
                None => String::new(),
            }
        )
    })
}

#[cfg(test)]
mod tests;
