//! The host's tools, as agents reach them: the servers (swapped whole on a
//! reload, keeping unchanged servers' sessions), each tenant's rate, and the
//! metrics of every call.

use crate::{McpServer, Output, Rates, Servers, ToolError, ToolMetrics};
use arc_swap::ArcSwap;
use paddock_core::tools as names;
use rmcp::model::JsonObject;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The `server` label of a refused call naming no configured server.
const UNCONFIGURED: &str = "(none)";

/// A tool as an agent sees it in a listing.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Listed {
    /// `server/tool`.
    pub name: String,
    /// What it does, as its server describes it.
    pub description: String,
    /// The JSON Schema of its arguments, as text.
    pub input_schema: String,
}

/// The servers of `[mcp]`, the tenants' rates and the metrics.
pub struct Toolbox {
    servers: ArcSwap<Servers>,
    rates: Rates,
    metrics: ToolMetrics,
}

impl Toolbox {
    /// The servers of `settings`; none is started until a call needs it.
    pub fn new(settings: &[McpServer]) -> Toolbox {
        Toolbox {
            servers: ArcSwap::from_pointee(Servers::new(settings.iter().cloned())),
            rates: Rates::default(),
            metrics: ToolMetrics::default(),
        }
    }

    /// Serves `settings` from the next call on; a server whose settings did
    /// not change keeps its session, a removed one ends when its last call does.
    pub fn reload(&self, settings: &[McpServer]) {
        let next = self.servers.load().reload(settings.iter().cloned());
        self.servers.store(Arc::new(next));
    }

    /// The servers now.
    pub fn servers(&self) -> Arc<Servers> {
        self.servers.load_full()
    }

    /// The calls' metrics.
    pub fn metrics(&self) -> &ToolMetrics {
        &self.metrics
    }

    /// Counts a call of `tenant` under its rate, or says how long until one
    /// is allowed (and counts the refusal as `rate-limited`).
    pub fn admit(&self, tenant: &str, server: &str, per_minute: Option<u32>) -> Result<(), Duration> {
        self.rates.admit(tenant, per_minute).inspect_err(|_| self.metrics.count(tenant, server, "rate-limited"))
    }

    /// Counts a call refused before it reached its server (`denied`,
    /// `budget-exceeded`...). A server that is not configured is counted as
    /// `(none)`: an agent naming ever new servers must not grow the series.
    pub fn refused(&self, tenant: &str, server: &str, outcome: &str) {
        let configured = self.servers.load().servers.contains_key(server);
        self.metrics.count(tenant, if configured { server } else { UNCONFIGURED }, outcome);
    }

    /// Calls the tool `name` (`server/tool`) for `tenant`, counted and timed.
    pub async fn call(&self, tenant: &str, name: &str, arguments: JsonObject) -> Result<Output, ToolError> {
        let (server, tool) = names::split(name).map_err(|e| ToolError::Denied(e.to_string()))?;
        let started = Instant::now();
        let result = self.servers().call(server, tool, arguments).await.and_then(|r| Output::of(name, r));
        self.metrics.time(server, started.elapsed().as_secs_f64());
        self.metrics.count(tenant, server, result.as_ref().map_or_else(ToolError::kind, |_| "ok"));
        result
    }

    /// The tools `patterns` grant, from every configured server they name
    /// (one not configured has no tools), sorted by name; the first server
    /// that cannot list its tools fails the listing.
    pub async fn list(&self, patterns: &[String]) -> Result<Vec<Listed>, ToolError> {
        let servers = self.servers();
        let configured = servers.names();
        let mut named: Vec<String> = if patterns.iter().any(|p| p == names::ANY) {
            configured
        } else {
            let named = patterns.iter().filter_map(|p| names::server_of(p));
            named.filter(|s| configured.iter().any(|c| c == s)).map(str::to_string).collect()
        };
        named.sort();
        named.dedup();
        let mut listed = Vec::new();
        for server in named {
            for tool in servers.list(&server).await? {
                let name = format!("{server}/{}", tool.name);
                if patterns.iter().any(|p| names::matches(p, &name)) {
                    listed.push(Listed {
                        name,
                        description: tool.description.as_deref().unwrap_or_default().to_string(),
                        input_schema: serde_json::to_string(&tool.input_schema).unwrap_or_else(|_| "{}".into()),
                    });
                }
            }
        }
        listed.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(listed)
    }
}
