//! `[providers.NAME]`: what serde reads, and its validation into a [`Provider`].

use super::keys::Keys;
use super::{SettingsError, class_named, fraction};
use crate::providers::simulated::SimSettings;
use crate::providers::{KeyHeader, Kind, Provider};
use paddock_core::Span;
use serde::Deserialize;
use std::time::Duration;

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

    /// The provider `name`, its key looked up in `keys`. Errors name the key
    /// under `providers.NAME`.
    pub(super) fn provider(self, name: &str, keys: &Keys<'_>) -> Result<Provider, SettingsError> {
        let at = format!("providers.{name}");
        let kind = Kind::parse(&self.kind).ok_or_else(|| {
            SettingsError::invalid(
                format!("{at}.kind"),
                format!("`{}` is not a provider kind; use openai, anthropic, gemini, ollama or simulated", self.kind),
            )
        })?;
        let key = keys.key(&at, self.api_key_env.as_deref(), self.api_key_secret.as_deref())?;
        let key_header = self.key_header(&at)?;
        let max_completion_tokens = self.max_completion_tokens(kind, &at)?;
        let base_url = self.base_url.as_deref().unwrap_or_else(|| kind.default_base_url());
        if kind != Kind::Simulated && !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(SettingsError::invalid(
                format!("{at}.base-url"),
                format!("`{base_url}` is not an http:// or https:// URL"),
            ));
        }
        Ok(Provider {
            name: name.to_string(),
            kind,
            base_url: base_url.trim_end_matches('/').to_string(),
            key,
            key_header,
            max_completion_tokens,
            simulated: self.simulated_settings(kind, &at)?,
            query: self.query,
        })
    }

    /// Which header carries the key.
    fn key_header(&self, at: &str) -> Result<KeyHeader, SettingsError> {
        match self.key_header.as_deref() {
            None | Some("authorization") => Ok(KeyHeader::Bearer),
            Some("api-key") => Ok(KeyHeader::ApiKey),
            Some(other) => Err(SettingsError::invalid(
                format!("{at}.key-header"),
                format!("`{other}` is not one of \"authorization\", \"api-key\""),
            )),
        }
    }

    /// Whether an OpenAI provider names the output limit `max_completion_tokens`.
    fn max_completion_tokens(&self, kind: Kind, at: &str) -> Result<bool, SettingsError> {
        match (kind, self.max_tokens_field.as_deref()) {
            (_, None) | (Kind::OpenAi, Some("max_tokens")) => Ok(false),
            (Kind::OpenAi, Some("max_completion_tokens")) => Ok(true),
            (Kind::OpenAi, Some(other)) => Err(SettingsError::invalid(
                format!("{at}.max-tokens-field"),
                format!("`{other}` is not one of \"max_tokens\", \"max_completion_tokens\""),
            )),
            (_, Some(_)) => Err(SettingsError::Rule {
                key: format!("{at}.max-tokens-field"),
                rule: "is for kind = \"openai\" only",
            }),
        }
    }

    /// How a simulated provider behaves; the keys for it are refused on any other kind.
    fn simulated_settings(&self, kind: Kind, at: &str) -> Result<SimSettings, SettingsError> {
        let mut simulated = SimSettings::default();
        if kind != Kind::Simulated {
            if self.seed.is_some() || self.latency.is_some() || self.failure_rate.is_some() || self.failures.is_some() {
                let why = "seed, latency and failure settings are for kind = \"simulated\" only";
                return Err(SettingsError::invalid(at, why));
            }
            return Ok(simulated);
        }
        simulated.seed = self.seed.unwrap_or(0);
        simulated.latency = self.latency.map_or(Duration::ZERO, |s| s.0);
        simulated.chunk_delay = self.chunk_delay.map_or(Duration::ZERO, |s| s.0);
        simulated.reply_tokens = self.reply_tokens.unwrap_or(simulated.reply_tokens);
        simulated.failure_rate = fraction(self.failure_rate, 0.0, at, "failure-rate")?;
        if let Some(names) = &self.failures {
            simulated.failures = names
                .iter()
                .map(|n| {
                    class_named(n).ok_or_else(|| {
                        SettingsError::invalid(format!("{at}.failures"), format!("`{n}` is not an error class"))
                    })
                })
                .collect::<Result<_, _>>()?;
        }
        Ok(simulated)
    }
}
