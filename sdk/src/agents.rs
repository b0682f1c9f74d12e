//! Calling other agents (the supervisor pattern).

/// Runs the agent named `agent` with `input` and returns its output. The
/// agent must be listed in this agent's manifest under `capabilities.agents`.
/// Errors start with their kind: `denied:`, `failed:`, `limit:`, `crashed:`.
pub fn call(agent: &str, input: &str) -> Result<String, String> {
    crate::bindings::paddock::agent::agents::call(agent, input)
}
