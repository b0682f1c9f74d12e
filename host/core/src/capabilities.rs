//! What an agent's manifest asks the host for. Tenants grant a subset of it;
//! the sandbox and every capability read it.

use serde::{Deserialize, Serialize};

/// Host capabilities an agent asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Capabilities {
    /// LLM routes it will use.
    #[serde(default)]
    pub routes: Vec<String>,
    /// Agents it will call through `agents.call`.
    #[serde(default)]
    pub agents: Vec<String>,
    /// Whether it asks people questions through `approval.ask`.
    #[serde(default)]
    pub approvals: bool,
    /// The blackboard prefixes it reads and writes; absent = its tenant's whole board.
    #[serde(default)]
    pub blackboard: Option<BoardRequest>,
    /// Directories it expects, by the path it sees (e.g. "/data").
    #[serde(default)]
    pub dirs: Vec<String>,
    /// Tools it will call through `tools.call`: `server/tool` or `server/*`
    /// ([`crate::tools`]).
    #[serde(default)]
    pub tools: Vec<String>,
    /// Hosts it sends HTTP requests to through `wasi:http` ([`crate::hosts`]
    /// patterns); asking for none, it sees no `wasi:http` at all.
    #[serde(default)]
    pub http: Vec<String>,
}

/// Blackboard access an agent asks for, as key prefixes ("" = every key).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BoardRequest {
    /// Prefixes it reads (get, list, watch).
    #[serde(default)]
    pub read: Vec<String>,
    /// Prefixes it writes (put, compare-and-swap, delete); writing implies reading.
    #[serde(default)]
    pub write: Vec<String>,
}

impl Capabilities {
    /// The blackboard access asked for: what the manifest says, or the whole
    /// board of its tenant when it says nothing (the board is the tenant's own
    /// shared space; the tenant's policy can narrow it).
    pub fn board(&self) -> BoardRequest {
        self.blackboard
            .clone()
            .unwrap_or_else(|| BoardRequest { read: vec![String::new()], write: vec![String::new()] })
    }
}
