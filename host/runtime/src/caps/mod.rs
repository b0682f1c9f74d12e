//! The host side of each WIT interface: thin glue from the `Host` traits that
//! `bindgen!` generates to the services, and nothing else.
//!
//! Each interface is a folder holding a per-invocation context struct, a
//! [`HasData`](wasmtime::component::HasData) marker and its `impl Host`. All of
//! them share one [`CallContext`]: who is calling and the size caps.

pub mod agents;
pub mod approval;
pub mod blackboard;
pub mod llm;
pub mod log;

use paddock_core::SizeCaps;
use std::sync::{Arc, OnceLock};

/// What `bindgen!` generates for `paddock:agent/agent-world`.
#[allow(missing_docs)]
mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "agent-world",
        // Every import may wait (a provider, a watch, an approval) without holding
        // a thread, and may trap when a hostile guest passes an oversized argument.
        imports: { default: async | trappable },
        exports: { default: async },
        // The journal keeps each call's arguments and answer as JSON.
        additional_derives: [serde::Serialize, serde::Deserialize],
        with: {
            "paddock:agent/llm.completion-stream": super::llm::CompletionStream,
        },
    });
}

pub use bindings::{AgentWorld, AgentWorldPre};

/// The generated types of `paddock:agent`, by interface.
pub use bindings::paddock::agent as wit;

/// A host call that broke a size cap; it ends the invocation.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{what} of {size} bytes is over {key} ({limit} bytes)")]
pub struct Violation {
    /// What was too large, e.g. "log message".
    pub what: &'static str,
    /// Its size in bytes.
    pub size: u64,
    /// The limit in bytes.
    pub limit: u64,
    /// The configuration key that sets the limit.
    pub key: &'static str,
}

/// Who is calling, shared by every capability of one invocation.
#[derive(Debug)]
pub struct CallContext {
    /// The agent's name.
    pub agent: Arc<str>,
    /// The tenant the invocation runs for.
    pub tenant: Arc<str>,
    /// The run it belongs to: one id for a top-level invocation and every
    /// agent it calls (recorded as provenance of its blackboard writes).
    pub run: Arc<str>,
    /// Byte caps on arguments.
    pub caps: SizeCaps,
    /// Records the first size cap broken, for the invocation's error.
    pub violation: OnceLock<Violation>,
    /// Where the agent's log records go.
    pub log: log::AgentLog,
    /// Records (or replays) every host call, when the run keeps a journal.
    pub journal: Option<Arc<paddock_journal::Tape>>,
    /// The budget of the run (or flow step) it belongs to, if one is set.
    pub budget: Option<Arc<paddock_quota::run::RunBudget>>,
}

impl CallContext {
    /// A context for `agent` in `tenant`, part of `run`.
    pub fn new(agent: Arc<str>, tenant: Arc<str>, run: Arc<str>, caps: SizeCaps) -> Arc<Self> {
        Self::with(agent, tenant, run, caps, None, None)
    }

    /// A context that also journals its host calls and spends `budget`.
    pub fn with(
        agent: Arc<str>,
        tenant: Arc<str>,
        run: Arc<str>,
        caps: SizeCaps,
        journal: Option<Arc<paddock_journal::Tape>>,
        budget: Option<Arc<paddock_quota::run::RunBudget>>,
    ) -> Arc<Self> {
        let log = log::AgentLog::new(agent.clone(), tenant.clone(), caps.log_total_bytes);
        Arc::new(CallContext { agent, tenant, run, caps, violation: OnceLock::new(), log, journal, budget })
    }

    /// Traps the invocation when `size` is over `limit`, recording why.
    pub fn check_size(&self, what: &'static str, size: usize, limit: u64, key: &'static str) -> wasmtime::Result<()> {
        let size = size as u64;
        if size <= limit {
            return Ok(());
        }
        let violation = Violation { what, size, limit, key };
        let message = violation.to_string();
        let _ = self.violation.set(violation);
        Err(wasmtime::Error::msg(message))
    }
}
