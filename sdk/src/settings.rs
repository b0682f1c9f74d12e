//! The operator's settings of this agent (`[agents.NAME.settings]` in
//! `paddock.toml`): plain configuration changed without rebuilding the agent.
//!
//! ```no_run
//! let style = paddock_sdk::settings::get("style").unwrap_or_else(|| "plain".to_string());
//! let limit: u32 = paddock_sdk::settings::parse("max-items").unwrap_or(Ok(10)).unwrap_or(10);
//! ```

use crate::bindings::paddock::agent::settings;

/// The value of `key`, or `None` when the operator set none.
pub fn get(key: &str) -> Option<String> {
    settings::get(key)
}

/// The value of `key` parsed as `T` (a number, a flag...), `None` when unset,
/// and an error naming the key when it does not parse.
pub fn parse<T: std::str::FromStr>(key: &str) -> Option<Result<T, String>> {
    get(key).map(|text| text.parse().map_err(|_| format!("setting {key:?} = {text:?} is not a valid value")))
}

/// Every setting of this agent as (key, value), sorted by key.
pub fn all() -> Vec<(String, String)> {
    settings::get_all()
}
