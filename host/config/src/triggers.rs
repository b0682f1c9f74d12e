//! `[[triggers]]`: agents run when blackboard keys under a prefix change.

use crate::file::TriggerSection;
use paddock_core::SizeCaps;
use paddock_tenants::Tenants;

/// A configured trigger.
#[derive(Clone, Debug, PartialEq)]
pub struct Trigger {
    /// Its name (cursor key, logs).
    pub name: String,
    /// The tenant whose board it watches, and that its runs are for.
    pub tenant: String,
    /// Keys under this prefix fire it.
    pub prefix: String,
    /// The agent it runs.
    pub agent: String,
    /// Runs at once, at most.
    pub concurrency: usize,
    /// Whether deletions fire it too.
    pub deletes: bool,
    /// Fields added to every input, beside `change`.
    pub input: serde_json::Map<String, serde_json::Value>,
    /// How many trigger runs may follow one another, each started by a
    /// change the one before wrote (`max-depth`): a loop stops there.
    pub max_depth: u32,
}

/// Validates every `[[triggers]]` entry against the tenants and the key size.
pub(crate) fn triggers(
    sections: Vec<TriggerSection>,
    default_tenant: &str,
    tenants: &Tenants,
    caps: &SizeCaps,
) -> Result<Vec<Trigger>, String> {
    let mut triggers: Vec<Trigger> = Vec::new();
    for (i, t) in sections.into_iter().enumerate() {
        let at = format!("triggers[{i}]");
        let tenant = t.tenant.unwrap_or_else(|| default_tenant.to_string());
        paddock_core::names::validate_tenant(&tenant).map_err(|why| format!("{at}.tenant: {why}"))?;
        let policy = tenants.get(&tenant).map_err(|why| format!("{at}.tenant: {why}"))?;
        if t.agent.is_empty() {
            return Err(format!("{at}.agent must name an agent"));
        }
        policy.check_agent(&t.agent).map_err(|why| format!("{at}.agent: {why}"))?;
        paddock_core::names::validate_key_prefix(&t.prefix, caps.key_bytes)
            .map_err(|why| format!("{at}.prefix: {why}"))?;
        let concurrency = t.concurrency.unwrap_or(1);
        if concurrency == 0 {
            return Err(format!("{at}.concurrency must be at least 1"));
        }
        let max_depth = t.max_depth.unwrap_or(8);
        if max_depth == 0 {
            return Err(format!("{at}.max-depth must be at least 1"));
        }
        let name = t.name.unwrap_or_else(|| format!("{}-{i}", t.agent));
        if triggers.iter().any(|x| x.name == name) {
            return Err(format!("{at}.name: another trigger is named {name:?}"));
        }
        triggers.push(Trigger {
            name,
            tenant,
            prefix: t.prefix,
            agent: t.agent,
            concurrency,
            deletes: t.deletes,
            input: t.input,
            max_depth,
        });
    }
    Ok(triggers)
}
