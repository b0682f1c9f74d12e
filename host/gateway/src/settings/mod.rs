//! The `[providers]`, `[routes]` and `[prices]` sections of `paddock.toml`,
//! read and validated into typed settings.

mod error;
mod keys;
mod providers;
mod routes;
#[cfg(test)]
mod tests;

pub use error::SettingsError;
pub use keys::{KeySource, read_secrets};
pub use providers::ProviderFile;
pub use routes::RouteFile;

use super::breaker::BreakerSettings;
use super::error::ErrorClass;
use super::providers::simulated::SimSettings;
use super::providers::{KeyHeader, Kind, Provider};
use keys::Keys;
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
#[derive(Clone, Debug, Default, PartialEq)]
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
        GatewaySettings::price_in(&self.prices, provider, model)
    }
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

impl PriceFile {
    /// The price of `model` in micro-dollars.
    fn price(&self, model: &str) -> Result<Price, SettingsError> {
        let micros = |usd: f64, which: &str| {
            if usd.is_finite() && usd >= 0.0 {
                Ok((usd * 1_000_000.0).round() as u64)
            } else {
                Err(SettingsError::invalid(
                    format!("prices.\"{model}\".{which}"),
                    format!("{usd} is not a price in US dollars per million tokens"),
                ))
            }
        };
        Ok(Price { input: micros(self.input, "input")?, output: micros(self.output, "output")? })
    }
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

impl GatewayFile {
    /// The settings of these sections, with API keys read from the process's
    /// environment. With no providers and no routes, the simulated provider
    /// and its routes `fast` and `smart` stand in, so the demo runs offline;
    /// a `simulated` provider is always there to route to.
    pub fn settings(self, base: &Path) -> Result<GatewaySettings, SettingsError> {
        self.settings_with(base, true)
    }

    /// The same; with `keys_required` false, a provider whose `api-key-env`
    /// is unset has no key instead of being an error (for commands that call
    /// no provider).
    pub fn settings_with(self, base: &Path, keys_required: bool) -> Result<GatewaySettings, SettingsError> {
        if self.providers.is_empty() && self.routes.is_empty() {
            let mut defaults = GatewaySettings::simulated_defaults();
            let prices = GatewayFile { prices: self.prices, ..Default::default() };
            defaults.prices.extend(prices.validate(&KeySource { env: &|_| None, base, required: true })?.prices);
            return Ok(defaults);
        }
        let mut file = self;
        file.providers.entry("simulated".to_string()).or_insert_with(ProviderFile::simulated);
        file.validate(&KeySource { env: &|name| std::env::var(name).ok(), base, required: keys_required })
    }

    /// Validates the sections: providers, then prices, then the routes that
    /// name both. Errors name the key.
    pub fn validate(self, keys: &KeySource<'_>) -> Result<GatewaySettings, SettingsError> {
        let keys = Keys::open(keys, self.secrets.as_deref())?;
        let mut providers = BTreeMap::new();
        for (name, file) in self.providers {
            let provider = file.provider(&name, &keys)?;
            providers.insert(name, provider);
        }
        let mut prices = BTreeMap::new();
        for (model, file) in self.prices {
            let price = file.price(&model)?;
            prices.insert(model, price);
        }
        let mut routes = BTreeMap::new();
        for (name, file) in self.routes {
            let route = file.route(&name, &providers, &prices)?;
            routes.insert(name, route);
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

/// `value` of the key `name` under `at`, when it is a fraction between 0 and
/// 1; `default` when there is none.
fn fraction(value: Option<f64>, default: f64, at: &str, name: &str) -> Result<f64, SettingsError> {
    match value {
        None => Ok(default),
        Some(v) if (0.0..=1.0).contains(&v) => Ok(v),
        Some(v) => {
            Err(SettingsError::invalid(format!("{at}.{name}"), format!("{v} is not a fraction between 0 and 1")))
        }
    }
}

/// The error class named `name` (as in messages: "server-error", "rate-limited"…).
pub fn class_named(name: &str) -> Option<ErrorClass> {
    ErrorClass::ALL.into_iter().find(|c| c.as_str() == name)
}
