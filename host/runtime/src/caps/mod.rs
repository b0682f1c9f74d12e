//! The host side of each WIT interface: thin glue from the `Host` traits that
//! `bindgen!` generates to the services, and nothing else.
//!
//! Each interface is a folder holding its per-invocation state (a type that
//! implements [`Capability`]: built from what the host [`Lent`] the
//! invocation, checking grants, journaling each call), a
//! [`HasData`](wasmtime::component::HasData) marker and its `impl Host`. The
//! list in [`capabilities!`] below is the only other place that names it: the
//! sandbox builds every invocation's [`Caps`] and links every interface from
//! that list. All of them share one [`CallContext`]: who is calling, the size
//! caps, the log, the journal.

pub mod agents;
pub mod approval;
pub mod blackboard;
pub mod llm;
pub mod log;
pub mod settings;
pub mod tools;

use paddock_blackboard::Namespace;
use paddock_config::AgentPolicy;
use paddock_core::{Capabilities, SizeCaps};
use paddock_gateway::Gateway;
use paddock_tenants::Grants;
use std::sync::{Arc, OnceLock};
use wasmtime::component::Linker;

/// The interfaces of `paddock:agent` the world imports, read from `wit/` by
/// the build script, so no list of them is kept by hand.
pub const WORLD_IMPORTS: &[&str] = include!(concat!(env!("OUT_DIR"), "/world_imports.rs"));

/// Every function of those interfaces, read from `wit/` by the build script:
/// its interface, its name, and whether it is a method of a resource.
pub const WORLD_FUNCTIONS: &[(&str, &str, bool)] = include!(concat!(env!("OUT_DIR"), "/world_functions.rs"));

/// Runs one host call inside `span` (made by its capability, with the call's
/// subject: a key, an agent), a child of the invocation's `invoke` span, and
/// records how it ended: `ok`, `error` (an error the guest is answered with)
/// or `trap`. Such spans are for traces alone ([`paddock_core::TRACE_TARGET`]);
/// with no exporter they are disabled and cost a check.
pub(crate) async fn traced<T, E>(
    span: tracing::Span,
    call: impl Future<Output = wasmtime::Result<Result<T, E>>>,
) -> wasmtime::Result<Result<T, E>> {
    use tracing::Instrument;
    async {
        let result = call.await;
        let outcome = match &result {
            Ok(Ok(_)) => "ok",
            Ok(Err(_)) => "error",
            Err(_) => "trap",
        };
        tracing::Span::current().record("outcome", outcome);
        result
    }
    .instrument(span)
    .await
}

/// One WIT interface's per-invocation state: how it is built and linked.
pub trait Capability: Sized + Send + 'static {
    /// The interface's name in `paddock:agent` (`"blackboard"`).
    const INTERFACE: &'static str;

    /// The state of one invocation, from who calls and what the host lends it.
    fn new(call: &Arc<CallContext>, lent: &Lent) -> Self;

    /// Adds the interface to `linker`, reaching this state through `get`.
    fn add_to_linker<T: Send + 'static>(linker: &mut Linker<T>, get: fn(&mut T) -> &mut Self) -> wasmtime::Result<()>;
}

/// What the host lends one invocation's capabilities: the app-wide services
/// and what the invocation may do with them.
pub struct Lent {
    /// The tenant's blackboard.
    pub board: Arc<Namespace>,
    /// What its manifest asked for and its tenant granted.
    pub grants: Arc<Grants>,
    /// What its manifest asked for.
    pub requested: Arc<Capabilities>,
    /// What the operator configured for this agent (`[agents.NAME]`).
    pub policy: Arc<AgentPolicy>,
    /// Its callers, outermost first, ending with itself.
    pub chain: Vec<Arc<str>>,
    /// How far its `agents.call`s may reach.
    pub call_bounds: agents::CallBounds,
    /// Who runs the agents it calls.
    pub dispatch: Option<Arc<dyn agents::Dispatch>>,
    /// The LLM gateway, if the host has one.
    pub gateway: Option<Gateway>,
    /// Where its approval questions go, if this host keeps approvals.
    pub approvals: Option<Arc<dyn approval::Approvals>>,
    /// The MCP servers' tools, if the host has them.
    pub tools: Option<Arc<paddock_tools::Toolbox>>,
    /// Its tenant's tool calls per minute.
    pub tool_rate: Option<u32>,
    /// Counts one of its outbound HTTP requests by outcome, if anything counts them.
    pub count_http: Option<CountOutcome>,
}

/// Counts one event by its outcome (a metric's labels already chosen).
pub type CountOutcome = Arc<dyn Fn(&str) + Send + Sync>;

/// A store's data that holds the capabilities' state.
pub trait HasCaps: Send + 'static {
    /// The capabilities' state of this invocation.
    fn caps(&mut self) -> &mut Caps;
}

/// Declares the capabilities: a field of [`Caps`] each, built and linked in
/// the order given.
macro_rules! capabilities {
    ($($field:ident: $state:ty),* $(,)?) => {
        /// The per-invocation state of every capability.
        pub struct Caps {
            $(
                #[doc = concat!("`paddock:agent/", stringify!($field), "`.")]
                pub $field: $state,
            )*
        }

        impl Caps {
            /// Every capability's state for one invocation.
            pub fn new(call: &Arc<CallContext>, lent: &Lent) -> Self {
                Caps { $($field: <$state as Capability>::new(call, lent),)* }
            }

            /// Links every capability's interface.
            pub fn add_to_linker<T: HasCaps>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
                $(<$state as Capability>::add_to_linker(linker, |t: &mut T| &mut t.caps().$field)?;)*
                Ok(())
            }
        }

        /// The interfaces the capabilities implement, in the order linked.
        pub const IMPLEMENTED: &[&str] = &[$(<$state as Capability>::INTERFACE),*];
    };
}

capabilities! {
    log: log::LogCtx,
    blackboard: blackboard::BoardCtx,
    llm: llm::LlmCtx,
    agents: agents::AgentsCtx,
    approval: approval::ApprovalCtx,
    settings: settings::SettingsCtx,
    tools: tools::ToolsCtx,
}

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
        Self::with(agent, (tenant.clone(), tenant), run, caps, None, None)
    }

    /// A context that also journals its host calls and spends `budget`;
    /// `counted` is the key its tenant's log volume is counted under.
    pub fn with(
        agent: Arc<str>,
        (tenant, counted): (Arc<str>, Arc<str>),
        run: Arc<str>,
        caps: SizeCaps,
        journal: Option<Arc<paddock_journal::Tape>>,
        budget: Option<Arc<paddock_quota::run::RunBudget>>,
    ) -> Arc<Self> {
        let log = log::AgentLog::new(agent.clone(), (tenant.clone(), counted), caps.log_total_bytes, caps.log_rate);
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    /// Host calls with nothing for a replay to answer, so not journaled.
    const NOT_JOURNALED: &[(&str, &str)] = &[("log", "log")];

    /// The label of every `journal::through` and `through_sync` call in the
    /// folder of `interface`: the first string literal after the call.
    fn journal_labels(interface: &str) -> BTreeSet<String> {
        let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/caps").join(interface);
        let mut labels = BTreeSet::new();
        for entry in std::fs::read_dir(&folder).unwrap_or_else(|e| panic!("{}: {e}", folder.display())) {
            let source = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            for (at, _) in source.match_indices("journal::through") {
                let rest = &source[at..];
                let open = rest.find('"').expect("a label after journal::through");
                let close = rest[open + 1..].find('"').expect("a closed label");
                labels.insert(rest[open + 1..open + 1 + close].to_string());
            }
        }
        labels
    }

    #[test]
    fn every_host_call_the_world_imports_goes_through_the_journal() {
        let mut unjournaled = Vec::new();
        let mut labels_with_no_function = Vec::new();
        for interface in super::WORLD_IMPORTS {
            let labels = journal_labels(interface);
            let functions: Vec<_> = super::WORLD_FUNCTIONS.iter().filter(|(i, ..)| i == interface).collect();
            // A free function's label is "interface.function"; a method's is
            // "interface.resource.method", the resource as the host names it.
            let labelled = |label: &str, &&(_, function, method): &&(&str, &str, bool)| {
                let parts: Vec<_> = label.split('.').collect();
                match (method, parts.as_slice()) {
                    (false, [i, f]) => i == interface && *f == function,
                    (true, [i, _, f]) => i == interface && *f == function,
                    _ => false,
                }
            };
            for function in &functions {
                let exempt = NOT_JOURNALED.contains(&(function.0, function.1));
                if !exempt && !labels.iter().any(|l| labelled(l, function)) {
                    unjournaled.push(format!("{}.{}", function.0, function.1));
                }
            }
            labels_with_no_function
                .extend(labels.iter().filter(|l| !functions.iter().any(|f| labelled(l, f))).cloned());
        }
        assert_eq!(unjournaled, Vec::<String>::new(), "host calls that skip the journal");
        assert_eq!(labels_with_no_function, Vec::<String>::new(), "journal labels that name no WIT function");
        assert!(super::WORLD_FUNCTIONS.contains(&("llm", "next", true)), "{:?}", super::WORLD_FUNCTIONS);
    }

    #[test]
    fn every_interface_the_world_imports_has_a_capability_and_no_other() {
        let mut world = super::WORLD_IMPORTS.to_vec();
        let mut implemented = super::IMPLEMENTED.to_vec();
        world.sort_unstable();
        implemented.sort_unstable();
        assert_eq!(implemented, world);
        assert!(world.contains(&"settings") && world.contains(&"llm"), "{world:?}");
    }
}
