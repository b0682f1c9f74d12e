//! Refusals of a tenant's policy: a tenant that is not configured, an agent
//! it may not run, a blackboard key outside an agent's grants. Each names the
//! tenant and the agent as fields, for callers that act on them, and the
//! policy key in its text, for people.

/// Why a tenant's policy refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// Tenants are configured, and this is not one of them.
    #[error("denied: no tenant named {tenant:?} (configured: {})", .configured.join(", "))]
    UnknownTenant {
        /// The tenant asked for.
        tenant: String,
        /// The configured tenants, by name.
        configured: Vec<String>,
    },
    /// The tenant may not run the agent.
    #[error("denied: agent {agent:?} is not granted to tenant {tenant:?} ({key} = [{granted}])")]
    Agent {
        /// The agent.
        agent: String,
        /// The tenant.
        tenant: String,
        /// The policy key that grants agents, e.g. `tenants.acme.agents`.
        key: String,
        /// What that key grants, as the config writes it.
        granted: String,
    },
    /// A blackboard access outside the agent's granted prefixes.
    #[error(
        "blackboard {kind} of {} is not granted to agent {agent:?} for tenant {tenant:?} (granted: {kind} {granted:?})",
        what(.key, *.prefix)
    )]
    Board {
        /// `read` or `write`.
        kind: &'static str,
        /// The key, or the prefix listed or watched.
        key: String,
        /// Whether `key` is a prefix (a list or a watch).
        prefix: bool,
        /// The agent.
        agent: String,
        /// The tenant.
        tenant: String,
        /// The prefixes granted for `kind`.
        granted: Vec<String>,
    },
}

/// `"k"` for a key, `prefix "p/"` for a prefix.
fn what(key: &str, prefix: bool) -> String {
    if prefix { format!("prefix {key:?}") } else { format!("{key:?}") }
}
