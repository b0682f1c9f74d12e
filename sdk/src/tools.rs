//! Tools of the operator's MCP servers, named `server/tool`: the ones this
//! agent's manifest asks for (`capabilities.tools`) and its tenant grants.
//!
//! ```no_run
//! use paddock_sdk::tools;
//! use serde_json::json;
//!
//! let found = tools::call("github/search_issues", &json!({ "query": "is:open label:bug" }))
//!     .map_err(|e| tools::describe(&e))?;
//! // The tool's text, or its structured content read into a type:
//! let text = found.text.clone();
//! let hits: serde_json::Value = tools::structured(&found).map_err(|e| e.to_string())?;
//! # Ok::<(), String>(())
//! ```

use crate::bindings::paddock::agent::tools as raw;
use crate::llm;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use raw::{Error, Output, Tool};

/// Says what a tool error means, in words.
pub fn describe(e: &Error) -> String {
    match e {
        Error::Denied(why) => format!("denied: {why}"),
        Error::InvalidArguments(why) => format!("invalid arguments: {why}"),
        Error::Failed(why) => format!("failed: {why}"),
        Error::Timeout(why) => format!("timed out: {why}"),
        Error::Unavailable(why) => format!("unavailable: {why}"),
        Error::BudgetExceeded(why) => format!("budget exceeded: {why}"),
        Error::RateLimited(ms) => format!("rate limited: retry after {ms} ms"),
    }
}

/// The tools this agent may call, sorted by name.
pub fn available() -> Result<Vec<Tool>, Error> {
    raw::available()
}

/// Calls `name` (`server/tool`) with `arguments`, serialized as a JSON object.
pub fn call(name: &str, arguments: &impl Serialize) -> Result<Output, Error> {
    let arguments = serde_json::to_string(arguments)
        .map_err(|e| Error::InvalidArguments(format!("the arguments of {name} do not serialize: {e}")))?;
    raw::call(name, &arguments)
}

/// An output's structured content read as `T`, or its text read as JSON
/// when the tool gave no structured content.
pub fn structured<T: DeserializeOwned>(output: &Output) -> Result<T, serde_json::Error> {
    serde_json::from_str(output.structured.as_deref().unwrap_or(&output.text))
}

/// The tools offered to a model through [`llm::Chat`]: each named
/// `server__tool`, since providers allow no `/` in a function's name
/// ([`from_llm_name`] turns the model's choice back).
pub fn for_llm(tools: &[Tool]) -> Vec<llm::Tool> {
    tools
        .iter()
        .map(|t| llm::Tool {
            name: t.name.replacen('/', "__", 1),
            description: t.description.clone(),
            parameters: t.input_schema.clone(),
        })
        .collect()
}

/// The tool a model named (`server__tool`), as [`call`] takes it (`server/tool`).
pub fn from_llm_name(name: &str) -> String {
    name.replacen("__", "/", 1)
}
