//! Settings changed while the host runs (`POST /v1/admin/reload`, SIGHUP).
//!
//! What a run reads once at its start — tenants and their grants, budgets,
//! ceilings and default limits, agent policies, size caps, the call depth —,
//! the gateway's routes and providers, and the MCP servers (a server whose
//! settings did not change keeps its session) are swapped, each whole: a run
//! or an LLM call already going finishes on the settings it started with,
//! the next one sees the new ones. What the host built its machinery from at
//! start (the engine, the stores, the folders, the listener, triggers, the
//! log) keeps its old value, and the answer names it as needing a restart,
//! so an operator is never led to think a change took effect when it did not.

use super::{Runtime, budgets, fuel_shares};
use paddock_config::Settings;
use paddock_gateway::RoutesChanged;
use std::path::PathBuf;
use std::sync::Arc;

/// What a reload did.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Reconfigured {
    /// The file read, or `None` for the embedded defaults.
    pub source: Option<PathBuf>,
    /// The sections that changed and now apply.
    pub applied: Vec<&'static str>,
    /// The sections that changed but keep their old value until a restart.
    pub restart_needed: Vec<&'static str>,
    /// What happened to each route.
    pub routes: RoutesChanged,
}

impl Runtime {
    /// Serves `new` from the next run and the next LLM call on, but for the
    /// parts that need a restart, which keep their current value (see the
    /// module docs). `new` was validated when it was read, so this cannot fail.
    pub fn reconfigure(&self, new: Settings) -> Reconfigured {
        let old = self.inner.settings.load_full();
        let mut next = new;
        let mut applied = Vec::new();
        let mut restart_needed = Vec::new();
        // Applied: read per run or per call.
        for (name, changed) in [
            ("providers and routes", old.gateway != next.gateway),
            ("tenants", old.tenants != next.tenants),
            ("limits", old.limits != next.limits || old.ceiling != next.ceiling),
            ("agents", old.agents != next.agents),
            ("caps", old.caps != next.caps),
            ("limits.max-call-depth", old.max_call_depth != next.max_call_depth),
            ("limits.max-agent-calls", old.max_agent_calls != next.max_agent_calls),
            ("host.default-tenant", old.default_tenant != next.default_tenant),
            ("mcp", old.mcp != next.mcp),
        ] {
            if changed {
                applied.push(name);
            }
        }
        // Kept until a restart: the host was built from them.
        macro_rules! keep {
            ($($field:ident => $name:literal),* $(,)?) => {$(
                if old.$field != next.$field {
                    restart_needed.push($name);
                    next.$field = old.$field.clone();
                }
            )*};
        }
        keep!(
            engine => "engine",
            plugins_dir => "host.plugins",
            data_dir => "host.data",
            plugins => "host.code-cache",
            board => "blackboard limits",
            board_store => "blackboard store",
            ledger => "host.ledger",
            flows => "flows store",
            flow_limits => "flow store limits",
            serve => "serve",
            triggers => "triggers",
            log_format => "host.log-format",
            telemetry => "telemetry",
        );
        // The stores and the HTTP limits were opened knowing whether unnamed
        // tenants share one set of bounds; the policies themselves apply.
        if old.tenants.configured() != next.tenants.configured() {
            restart_needed.push("whether [tenants] names any tenant (unnamed tenants share one set of bounds)");
        }
        // The gateway first: a tenant may only be granted a route that exists.
        let routes = self.inner.gateway.reload(&next.gateway);
        if let Some(ledger) = &self.inner.ledger {
            ledger.set_budgets(budgets(&next.tenants));
        }
        self.inner.cpu.set_shares(fuel_shares(&next.tenants));
        if old.mcp != next.mcp {
            self.inner.tools.reload(&next.mcp);
        }
        let source = next.source.clone();
        self.inner.settings.store(Arc::new(next));
        tracing::info!(
            target: "paddock::reload",
            source = %source.as_ref().map_or("embedded defaults".into(), |p| p.display().to_string()),
            applied = ?applied,
            restart_needed = ?restart_needed,
            "settings reloaded"
        );
        Reconfigured { source, applied, restart_needed, routes }
    }
}
