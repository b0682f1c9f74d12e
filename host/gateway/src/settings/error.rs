//! Why the gateway's sections of the configuration were refused.

use std::fmt;
use std::path::PathBuf;

/// Why `[providers]`, `[routes]`, `[prices]` or `host.secrets` was refused.
/// Every error names the key at fault, in the words users see. The variants
/// past the first two say what is missing from the host rather than wrong in
/// the file: a variable, the secrets file, or a key in it.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The value at `key` is not allowed; `why` says what is wrong.
    #[error("{key}: {why}")]
    Invalid {
        /// Where the value is (`routes.fast.strategy`).
        key: String,
        /// What is wrong with it, and what would do instead.
        why: String,
    },
    /// The key breaks a rule of its own (`routes.fast.max-attempts must be at least 1`).
    #[error("{key} {rule}")]
    Rule {
        /// The key.
        key: String,
        /// The rule, worded to follow the key.
        rule: &'static str,
    },
    /// The environment variable a provider takes its key from is not set (or empty).
    #[error("{key}: the environment variable {variable} is not set")]
    UnsetVariable {
        /// `providers.NAME.api-key-env`.
        key: String,
        /// The variable.
        variable: String,
    },
    /// A provider takes its key from a secrets file, and none is configured.
    #[error("{key}: no secrets file is configured (host.secrets)")]
    NoSecretsFile {
        /// `providers.NAME.api-key-secret`.
        key: String,
    },
    /// The secrets file has no entry of the name a provider gives.
    #[error("{key}: the secrets file has no key {name:?}")]
    NoSuchSecret {
        /// `providers.NAME.api-key-secret`.
        key: String,
        /// The entry asked for.
        name: String,
    },
    /// The secrets file cannot be read.
    #[error("host.secrets: cannot read {}: {error}", path.display())]
    SecretsUnreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The secrets file can be read by other users: keys would leak.
    #[error("host.secrets: {} can be read by other users (mode {mode:o}); run `chmod 600 {}`", path.display(), path.display())]
    SecretsExposed {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The secrets file is not a TOML table of strings. Where the TOML is
    /// wrong is given as a byte offset, never as the line: it would print a key.
    #[error("host.secrets: {} is not a TOML table of name = \"key\" strings{}", path.display(), AtByte(*byte))]
    SecretsMalformed {
        /// The file.
        path: PathBuf,
        /// Where the first error is, when toml says.
        byte: Option<usize>,
    },
}

impl SettingsError {
    /// The value at `key` is not allowed, for the reason `why`.
    pub(super) fn invalid(key: impl Into<String>, why: impl Into<String>) -> Self {
        SettingsError::Invalid { key: key.into(), why: why.into() }
    }

    /// The key at fault (`host.secrets` for the secrets file's own errors).
    pub fn key(&self) -> &str {
        match self {
            SettingsError::Invalid { key, .. }
            | SettingsError::Rule { key, .. }
            | SettingsError::UnsetVariable { key, .. }
            | SettingsError::NoSecretsFile { key }
            | SettingsError::NoSuchSecret { key, .. } => key,
            SettingsError::SecretsUnreadable { .. }
            | SettingsError::SecretsExposed { .. }
            | SettingsError::SecretsMalformed { .. } => "host.secrets",
        }
    }
}

/// ` (error at byte N)`, or nothing when the offset is not known.
struct AtByte(Option<usize>);

impl fmt::Display for AtByte {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(byte) => write!(f, " (error at byte {byte})"),
            None => Ok(()),
        }
    }
}
