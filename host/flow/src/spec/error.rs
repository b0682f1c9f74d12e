//! Why a spec was refused: the file, the key and the reason.

/// Why a flow spec was refused. Each names the file; a wrong key is named
/// as `steps.NAME.KEY` (or `flow.KEY`), so the message points at the line
/// to fix: `flows/ship.toml: steps.execute.join: "most" is not all, any or quorum`.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The text is not TOML.
    #[error("{origin}: {error}")]
    Toml {
        /// The file.
        origin: String,
        /// What the TOML reader said (its text is the cause's, so it is
        /// not also given as a `source`).
        error: toml::de::Error,
    },
    /// A top-level table other than `[flow]` and `[steps]`.
    #[error("{origin}: unknown top-level key `{key}` (a flow has [flow] and [steps.NAME] tables)")]
    UnknownTable {
        /// The file.
        origin: String,
        /// The table's name.
        key: String,
    },
    /// A key is wrong, missing, or names nothing (including a step that
    /// contains itself or never runs, named by `steps.NAME`).
    #[error("{origin}: {key}: {reason}")]
    Invalid {
        /// The file.
        origin: String,
        /// The key: `flow.name`, `steps.execute.join`, `steps.vote.weights.a`, ...
        key: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl SpecError {
    /// The file the spec came from.
    pub fn origin(&self) -> &str {
        match self {
            SpecError::Toml { origin, .. }
            | SpecError::UnknownTable { origin, .. }
            | SpecError::Invalid { origin, .. } => origin,
        }
    }

    /// The key that is wrong, when one is.
    pub fn key(&self) -> Option<&str> {
        match self {
            SpecError::Toml { .. } => None,
            SpecError::UnknownTable { key, .. } | SpecError::Invalid { key, .. } => Some(key),
        }
    }
}

/// A wrong key found while reading, before the file is named.
#[derive(Debug)]
pub(super) struct Bad {
    key: String,
    reason: String,
}

/// The key `key` is wrong because of `reason`.
pub(super) fn bad(key: impl Into<String>, reason: impl Into<String>) -> Bad {
    Bad { key: key.into(), reason: reason.into() }
}

impl Bad {
    /// The error, naming the file `origin`.
    pub(super) fn within(self, origin: &str) -> SpecError {
        SpecError::Invalid { origin: origin.to_string(), key: self.key, reason: self.reason }
    }
}
