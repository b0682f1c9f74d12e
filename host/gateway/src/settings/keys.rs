//! API keys: from the environment, or from the secrets file (`host.secrets`).

use crate::providers::Secret;
use std::collections::BTreeMap;
use std::path::Path;

/// Where API keys come from: the environment, and the secrets file.
pub struct KeySource<'a> {
    /// Reads an environment variable.
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// The folder relative paths start from (the configuration file's).
    pub base: &'a Path,
}

/// The keys providers may name: the environment's, and the secrets file's.
pub(super) struct Keys<'a> {
    source: &'a KeySource<'a>,
    secrets: Option<BTreeMap<String, String>>,
}

impl<'a> Keys<'a> {
    /// Reads the secrets file at `secrets` (relative to the configuration's
    /// folder), when one is configured, whether or not a provider uses it.
    pub(super) fn open(source: &'a KeySource<'a>, secrets: Option<&Path>) -> Result<Self, String> {
        let secrets = match secrets {
            Some(path) => Some(read_secrets(&source.base.join(path))?),
            None => None,
        };
        Ok(Keys { source, secrets })
    }

    /// The key of the provider at `at`: from the variable `env`, or the
    /// secrets file's entry `secret` (at most one of them), or none.
    pub(super) fn key(&self, at: &str, env: Option<&str>, secret: Option<&str>) -> Result<Option<Secret>, String> {
        let key = match (env, secret) {
            (Some(_), Some(_)) => return Err(format!("{at}: give api-key-env or api-key-secret, not both")),
            (Some(var), None) => (self.source.env)(var)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("{at}.api-key-env: the environment variable {var} is not set"))?,
            (None, Some(secret)) => self
                .secrets
                .as_ref()
                .ok_or_else(|| format!("{at}.api-key-secret: no secrets file is configured (host.secrets)"))?
                .get(secret)
                .cloned()
                .ok_or_else(|| format!("{at}.api-key-secret: the secrets file has no key {secret:?}"))?,
            (None, None) => return Ok(None),
        };
        Ok(Some(Secret::new(key)))
    }
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
