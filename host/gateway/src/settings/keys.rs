//! API keys: from the environment, or from the secrets file (`host.secrets`).

use super::SettingsError;
use crate::providers::Secret;
use std::collections::BTreeMap;
use std::path::Path;

/// Where API keys come from: the environment, and the secrets file.
pub struct KeySource<'a> {
    /// Reads an environment variable.
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// The folder relative paths start from (the configuration file's).
    pub base: &'a Path,
    /// Whether a variable `api-key-env` names must be set. A command that
    /// calls no provider loads the configuration without: an unset one then
    /// leaves its provider without a key.
    pub required: bool,
}

/// The keys providers may name: the environment's, and the secrets file's.
pub(super) struct Keys<'a> {
    source: &'a KeySource<'a>,
    secrets: Option<BTreeMap<String, String>>,
}

impl<'a> Keys<'a> {
    /// Reads the secrets file at `secrets` (relative to the configuration's
    /// folder), when one is configured, whether or not a provider uses it.
    pub(super) fn open(source: &'a KeySource<'a>, secrets: Option<&Path>) -> Result<Self, SettingsError> {
        let secrets = match secrets {
            Some(path) => Some(read_secrets(&source.base.join(path))?),
            None => None,
        };
        Ok(Keys { source, secrets })
    }

    /// The key of the provider at `at`: from the variable `env`, or the
    /// secrets file's entry `secret` (at most one of them), or none.
    pub(super) fn key(
        &self,
        at: &str,
        env: Option<&str>,
        secret: Option<&str>,
    ) -> Result<Option<Secret>, SettingsError> {
        let key = match (env, secret) {
            (Some(_), Some(_)) => {
                return Err(SettingsError::invalid(at, "give api-key-env or api-key-secret, not both"));
            }
            (Some(var), None) => match (self.source.env)(var).filter(|v| !v.is_empty()) {
                Some(key) => key,
                None if !self.source.required => return Ok(None),
                None => {
                    return Err(SettingsError::UnsetVariable {
                        key: format!("{at}.api-key-env"),
                        variable: var.to_string(),
                    });
                }
            },
            (None, Some(secret)) => self
                .secrets
                .as_ref()
                .ok_or_else(|| SettingsError::NoSecretsFile { key: format!("{at}.api-key-secret") })?
                .get(secret)
                .cloned()
                .ok_or_else(|| SettingsError::NoSuchSecret {
                    key: format!("{at}.api-key-secret"),
                    name: secret.to_string(),
                })?,
            (None, None) => return Ok(None),
        };
        Ok(Some(Secret::new(key)))
    }
}

/// Reads a secrets file: TOML of `name = "key"`. A file others may read is refused.
pub fn read_secrets(path: &Path) -> Result<BTreeMap<String, String>, SettingsError> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| SettingsError::SecretsUnreadable { path: path.to_path_buf(), error })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).map(|m| m.permissions().mode()).unwrap_or(0);
        if mode & 0o077 != 0 {
            return Err(SettingsError::SecretsExposed { path: path.to_path_buf(), mode: mode & 0o777 });
        }
    }
    // The error deliberately omits toml's excerpt of the line: it would print a key.
    toml::from_str::<BTreeMap<String, String>>(&text).map_err(|e| SettingsError::SecretsMalformed {
        path: path.to_path_buf(),
        byte: e.span().map(|span| span.start),
    })
}
