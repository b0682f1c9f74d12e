//! The name rules, once each: tenants, agents and blackboard key prefixes.

/// A name or key prefix that breaks its rule; the text states the rule.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Not 1 to 64 of `a-z 0-9 - _`.
    #[error("tenant name `{}` must be 1 to 64 of a-z, 0-9, '-' and '_'", .name.escape_debug())]
    Tenant {
        /// The name refused.
        name: String,
    },
    /// Not 1 to 64 of `a-z 0-9 - _` starting with a letter.
    #[error(
        "`{}` is not an agent name: use 1 to 64 of a-z, 0-9, '-' and '_', starting with a letter",
        .name.escape_debug()
    )]
    Agent {
        /// The name refused.
        name: String,
    },
    /// Longer than the longest key, or holding a control character.
    #[error("a key prefix has at most {max_bytes} bytes and no control characters")]
    KeyPrefix {
        /// The prefix refused.
        prefix: String,
        /// The longest key (`limits.max-key-bytes`).
        max_bytes: u64,
    },
}

/// The board namespace holding the host's own records (trigger cursors).
/// Tenant names are `a-z 0-9 - _`, so no tenant can name this one.
pub const SYSTEM_NAMESPACE: &str = "paddock.system";

/// The key under which every tenant `[tenants]` does not name is counted
/// when no tenant is configured: they share one set of bounds (instance
/// slots, requests, log volume, board and flow bytes), so naming more
/// tenants never buys more of the host. No tenant name can be `*`.
pub const UNNAMED: &str = "*";

/// Who [`UNNAMED`] stands for, in messages.
pub const UNNAMED_WHO: &str = "every tenant not named in [tenants]";

/// The key `tenant` is counted under: its own name, or [`UNNAMED`] when
/// `named` is false.
pub fn bounds_key(tenant: &str, named: bool) -> &str {
    if named { tenant } else { UNNAMED }
}

/// Whether `name` is 1 to 64 of `a-z 0-9 - _`.
fn is_word(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Checks a tenant name: 1 to 64 of `a-z 0-9 - _`.
pub fn validate_tenant(name: &str) -> Result<(), NameError> {
    if is_word(name) { Ok(()) } else { Err(NameError::Tenant { name: name.to_string() }) }
}

/// Checks an agent name: 1 to 64 of `a-z 0-9 - _`, starting with a letter.
pub fn validate_agent(name: &str) -> Result<(), NameError> {
    if is_word(name) && name.starts_with(|c: char| c.is_ascii_lowercase()) {
        Ok(())
    } else {
        Err(NameError::Agent { name: name.to_string() })
    }
}

/// Checks a blackboard key prefix of a grant, a request or a trigger: at most
/// `max_bytes` (the operator's `limits.max-key-bytes`, since a longer prefix
/// could match no key) and no control characters. `""` is every key.
pub fn validate_key_prefix(prefix: &str, max_bytes: u64) -> Result<(), NameError> {
    if prefix.len() as u64 > max_bytes || prefix.chars().any(char::is_control) {
        return Err(NameError::KeyPrefix { prefix: prefix.to_string(), max_bytes });
    }
    Ok(())
}

/// The one of `candidates` `name` was most likely meant to be: the nearest
/// by edit distance (a swap of two neighbours is one edit: `fsat` is one
/// from `fast`), within a third of its length (at least one edit), for a
/// "did you mean" in an error. `None` when none is that near.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let within = (name.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .filter(|c| *c != name)
        .map(|c| (strsim::osa_distance(name, c), c))
        .filter(|(distance, _)| *distance <= within)
        .min()
        .map(|(_, c)| c)
}

/// `; did you mean "X"?` for the nearest of `candidates` (see [`closest`]), else nothing.
pub fn did_you_mean<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    closest(name, candidates).map_or(String::new(), |c| format!("; did you mean {c:?}?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_closest_name_is_offered_only_when_it_is_near() {
        assert_eq!(closest("fsat", ["smart", "fast", "slow"]), Some("fast"));
        assert_eq!(closest("plannr", ["planner", "plan-b"]), Some("planner"));
        assert_eq!(closest("xyz", ["fast", "smart"]), None);
        assert_eq!(closest("fast", ["fast"]), None);
        assert_eq!(did_you_mean("gretter", ["greeter"]), "; did you mean \"greeter\"?");
        assert_eq!(did_you_mean("zzz", ["greeter"]), "");
    }

    #[test]
    fn tenant_names_are_lowercase_words_of_at_most_64_bytes() {
        assert_eq!(validate_tenant("acme-2_b"), Ok(()));
        assert_eq!(
            validate_tenant("").unwrap_err().to_string(),
            "tenant name `` must be 1 to 64 of a-z, 0-9, '-' and '_'"
        );
        assert!(validate_tenant(&"a".repeat(65)).is_err());
        assert!(validate_tenant("Acme").is_err());
    }

    #[test]
    fn tenant_names_are_restricted() {
        assert!(validate_tenant("acme-1").is_ok());
        assert!(validate_tenant("../x").is_err());
        assert!(validate_tenant("").is_err());
    }

    #[test]
    fn agent_names_start_with_a_letter() {
        assert_eq!(validate_agent("planner-2"), Ok(()));
        assert_eq!(
            validate_agent("2planner").unwrap_err().to_string(),
            "`2planner` is not an agent name: use 1 to 64 of a-z, 0-9, '-' and '_', starting with a letter"
        );
    }

    #[test]
    fn key_prefixes_follow_the_configured_key_size() {
        assert_eq!(validate_key_prefix(&"k".repeat(600), 1024), Ok(()));
        assert_eq!(
            validate_key_prefix(&"k".repeat(600), 512).unwrap_err().to_string(),
            "a key prefix has at most 512 bytes and no control characters"
        );
        assert!(validate_key_prefix("tasks/\n", 512).is_err());
        assert_eq!(validate_key_prefix("", 512), Ok(()));
    }
}
