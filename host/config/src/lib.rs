//! `paddock.toml`: read with unknown keys refused, then validated into typed
//! [`Settings`]. Every error names the file and the key.
//!
//! Each service owns its section's types (the gateway its `[providers]`,
//! `[routes]` and `[prices]`; the blackboard its `BoardLimits`; tenants their
//! policies); this crate reads the file and composes them.
//!
//! ```
//! use paddock_config::Settings;
//! use std::path::Path;
//!
//! let settings = Settings::parse("[limits]\nmemory = \"64MiB\"\n", Path::new("paddock.toml")).unwrap();
//! assert_eq!(settings.limits.memory, 64 << 20);
//! let err = Settings::parse("[limits]\nfule = 3\n", Path::new("paddock.toml")).unwrap_err();
//! let err = err.to_string();
//! assert!(err.starts_with("paddock.toml: TOML parse error at line 2"), "{err}");
//! assert!(err.contains("unknown field `fule`, expected one of `fuel`"), "{err}");
//! ```

#![warn(missing_docs)]

mod engine;
mod file;
#[cfg(test)]
mod fuzz;
mod limits;
mod locate;
mod plugins;
mod retention;
mod serve;
mod stores;
mod telemetry;
mod tenants;
#[cfg(test)]
mod tests;
mod triggers;

pub use engine::{Compiler, EngineSettings};
pub use locate::{DATA_DIR_VAR, nearest_file, user_data_dir};
pub use paddock_core::{ByteSize, DirGrant, Limits, Requested, SizeCaps, Span, show};
pub use plugins::{BookStore, PluginSettings};
pub use retention::{FlowLimits, Retention};
pub use serve::{
    ConnectionLimits, DEFAULT_LISTEN, NotLoopback, RequestLimits, ServeAuth, ServeSettings, TlsFiles, check_listen,
    parse_listen,
};
pub use stores::{BoardStore, DATABASE_URL_VAR, FlowsStore};
pub use telemetry::{DEFAULT_SERVICE_NAME, OtlpProtocol, TelemetrySettings};
pub use triggers::Trigger;

use file::FileConfig;
use paddock_blackboard::BoardLimits;
use paddock_gateway::GatewaySettings;
use paddock_gateway::settings::GatewayFile;
use paddock_quota::LedgerStore;
use paddock_tenants::Tenants;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The file name looked for in the current folder and the folders above it
/// when no `--config` is given ([`nearest_file`]).
pub const DEFAULT_FILE: &str = "paddock.toml";

/// A configuration file that could not be read or is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct ConfigError {
    /// The file at fault (or `<embedded defaults>`).
    pub file: String,
    /// What is wrong, naming the key.
    pub message: String,
}

/// What the operator grants one agent beyond the defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AgentPolicy {
    /// Directories preopened for it.
    pub dirs: Vec<DirGrant>,
    /// Its settings (`[agents.NAME.settings]`), read through the `settings` interface.
    pub settings: Arc<BTreeMap<String, String>>,
}

/// How the host writes its log (`host.log-format`, or `--log-format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// A line of text per event.
    #[default]
    Text,
    /// A JSON object per line: time, level, target, fields, and the fields of
    /// the span it happened in (the request id, tenant and key of an HTTP
    /// request).
    Json,
}

/// Validated settings of a host.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The file these came from, or `None` for the embedded defaults (whose
    /// data folder [`Settings::load`] puts in [`user_data_dir`]).
    pub source: Option<PathBuf>,
    /// Where plugins (folders with `agent.toml`) live.
    pub plugins_dir: PathBuf,
    /// The tenant used when an invocation names none.
    pub default_tenant: String,
    /// How the log is written.
    pub log_format: LogFormat,
    /// Limits applied when nothing lowers them.
    pub limits: Limits,
    /// The operator's maximum for each limit.
    pub ceiling: Limits,
    /// Byte caps at the sandbox boundary.
    pub caps: SizeCaps,
    /// How deep `agents.call` may nest.
    pub max_call_depth: u32,
    /// `agents.call`s one invocation may make, its callees' included.
    pub max_agent_calls: u32,
    /// The most the flow store keeps per run, tenant and question (`[limits]`).
    pub flow_limits: FlowLimits,
    /// How long finished work is kept (`[retention]`).
    pub retention: Retention,
    /// Engine shape.
    pub engine: EngineSettings,
    /// Per-agent grants, by agent name.
    pub agents: BTreeMap<String, Arc<AgentPolicy>>,
    /// Each tenant's blackboard limits.
    pub board: BoardLimits,
    /// Where the blackboard is kept.
    pub board_store: BoardStore,
    /// The PostgreSQL database of `[store] backend = "postgres"`, if any.
    pub postgres: Option<paddock_postgres::Settings>,
    /// LLM providers, routes and prices.
    pub gateway: GatewaySettings,
    /// Agents run when blackboard keys change.
    pub triggers: Vec<Trigger>,
    /// Each tenant's grants, ceilings and budgets.
    pub tenants: Tenants,
    /// Where usage and budgets are kept.
    pub ledger: LedgerStore,
    /// Where flow runs, checkpoints, journals, dead letters and approvals are kept.
    pub flows: FlowsStore,
    /// `host.data`: where the host keeps its files.
    pub data_dir: PathBuf,
    /// The compiled-code cache and accepted capabilities.
    pub plugins: PluginSettings,
    /// How `paddock serve` listens and answers.
    pub serve: ServeSettings,
    /// Where traces are exported (`[telemetry]`).
    pub telemetry: TelemetrySettings,
    /// The MCP servers the host reaches for agents' tools (`[mcp.NAME]`), by name.
    pub mcp: Vec<paddock_tools::McpServer>,
}

/// Whether loading the configuration needs every provider's API key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProviderKeys {
    /// A provider whose `api-key-env` is unset is an error: commands that
    /// call providers.
    Required,
    /// It has no key: commands that call no provider, so an operator can
    /// read the board or the usage without the keys in the environment.
    Optional,
}

impl Default for Settings {
    fn default() -> Self {
        Settings::from_file(FileConfig::default(), None, Path::new("."), ProviderKeys::Required)
            .expect("embedded defaults are valid")
    }
}

impl Settings {
    /// Loads `path`; with none, the nearest `paddock.toml` in the current
    /// folder or above it ([`nearest_file`]); with none there either, the
    /// embedded defaults keeping their files in [`user_data_dir`] (`.paddock`
    /// here only when the environment names no home at all).
    pub fn load(path: Option<&Path>) -> Result<Settings, ConfigError> {
        Settings::load_with(path, ProviderKeys::Required)
    }

    /// [`Settings::load`], needing the providers' API keys or not.
    pub fn load_with(path: Option<&Path>, keys: ProviderKeys) -> Result<Settings, ConfigError> {
        let here = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        let path = match path.map(Path::to_path_buf).or_else(|| nearest_file(&here)) {
            Some(p) => p,
            None => {
                let mut file = FileConfig::default();
                file.host.data = user_data_dir(|name| std::env::var_os(name));
                return Settings::from_file(file, None, Path::new("."), keys);
            }
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| ConfigError { file: path.display().to_string(), message: format!("cannot read: {e}") })?;
        Settings::parse_with(&text, &path, keys)
    }

    /// Parses configuration text that came from `path` (used for errors and
    /// to resolve relative paths).
    pub fn parse(text: &str, path: &Path) -> Result<Settings, ConfigError> {
        Settings::parse_with(text, path, ProviderKeys::Required)
    }

    /// [`Settings::parse`], needing the providers' API keys or not.
    pub fn parse_with(text: &str, path: &Path, keys: ProviderKeys) -> Result<Settings, ConfigError> {
        let file: FileConfig = toml::from_str(text).map_err(|e| ConfigError {
            file: path.display().to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let base = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        Settings::from_file(file, Some(path), base, keys)
    }

    fn from_file(
        file: FileConfig,
        path: Option<&Path>,
        base: &Path,
        keys: ProviderKeys,
    ) -> Result<Settings, ConfigError> {
        let name = path.map_or("<embedded defaults>".to_string(), |p| p.display().to_string());
        Settings::validate(file, path, base, keys).map_err(|message| ConfigError { file: name, message })
    }

    /// Each section in turn, each error naming its key.
    fn validate(file: FileConfig, path: Option<&Path>, base: &Path, keys: ProviderKeys) -> Result<Settings, String> {
        let (limits, ceiling, caps) = limits::limits(&file.limits, &file.ceiling)?;
        let engine = engine::engine(&file.engine, ceiling.memory)?;
        let data_dir = base.join(file.host.data.clone().unwrap_or_else(|| PathBuf::from(".paddock")));
        let stores = stores::stores(&file, &data_dir, base)?;
        let plugins = plugins::plugin_settings(&file.host, &data_dir, base, &stores.postgres)?;
        let serve = serve::serve_settings(file.serve, base)?;
        let telemetry = telemetry::telemetry(file.telemetry)?;
        let retention = retention::retention(&file.retention)?;
        let flow_limits = limits::flow_limits(&file.limits)?;
        let log_format = match file.host.log_format.as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => return Err(format!("host.log-format: `{other}` is not a format; use \"text\" or \"json\"")),
        };
        let default_tenant = file.host.default_tenant.unwrap_or_else(|| "default".to_string());
        paddock_core::names::validate_tenant(&default_tenant).map_err(|why| format!("host.default-tenant: {why}"))?;
        let agents = agent_policies(file.agents, base, &caps)?;
        let gateway = GatewayFile {
            providers: file.providers,
            routes: file.routes,
            prices: file.prices,
            secrets: file.host.secrets.clone(),
        }
        .settings_with(base, keys == ProviderKeys::Required)
        .map_err(|e| e.to_string())?;
        // Read again for the servers' headers (the gateway's settings own their copy).
        let secrets = match &file.host.secrets {
            Some(path) if file.mcp.values().any(paddock_tools::McpFile::uses_secrets) => {
                Some(paddock_gateway::read_secrets(&base.join(path)).map_err(|e| e.to_string())?)
            }
            _ => None,
        };
        let mcp: Vec<paddock_tools::McpServer> = file
            .mcp
            .into_iter()
            .map(|(name, server)| server.server(&name, base, secrets.as_ref()))
            .collect::<Result<_, _>>()?;
        let known = tenants::Known {
            routes: gateway.routes.keys().map(String::as_str).collect(),
            servers: mcp.iter().map(|s| s.name.as_str()).collect(),
            ceiling: &ceiling,
            base,
            key_bytes: caps.key_bytes,
        };
        let tenants = Tenants::new(tenants::policies(file.tenants, &known)?);
        let triggers = triggers::triggers(file.triggers, &default_tenant, &tenants, &caps)?;
        Ok(Settings {
            mcp,
            ledger: stores.ledger,
            flows: stores.flows,
            board_store: stores.board,
            postgres: stores.postgres,
            data_dir,
            plugins,
            serve,
            telemetry,
            tenants,
            triggers,
            gateway,
            source: path.map(Path::to_path_buf),
            plugins_dir: base.join(file.host.plugins.unwrap_or_else(|| PathBuf::from("plugins"))),
            default_tenant,
            log_format,
            limits,
            ceiling,
            caps,
            max_call_depth: file.limits.max_call_depth.unwrap_or(4),
            max_agent_calls: file.limits.max_agent_calls.unwrap_or(1000),
            flow_limits,
            retention,
            engine,
            agents,
            board: stores::board_limits(&file.blackboard, &caps),
        })
    }

    /// Where these settings came from, for messages.
    pub fn source_name(&self) -> String {
        self.source.as_ref().map_or("<embedded defaults>".to_string(), |p| p.display().to_string())
    }
}

/// Validates `[agents.NAME]`: directories lent to each agent, and its
/// settings (keys as long as a blackboard key, values as an argument).
fn agent_policies(
    sections: BTreeMap<String, file::AgentSection>,
    base: &Path,
    caps: &SizeCaps,
) -> Result<BTreeMap<String, Arc<AgentPolicy>>, String> {
    let mut agents = BTreeMap::new();
    for (agent, policy) in sections {
        let mut dirs = Vec::new();
        for (i, d) in policy.dirs.into_iter().enumerate() {
            if !d.guest.starts_with('/') {
                return Err(format!(
                    "agents.{agent}.dirs[{i}].guest must be an absolute path like \"/data\", not `{}`",
                    d.guest
                ));
            }
            dirs.push(DirGrant { host: base.join(d.host), guest: d.guest, write: d.write });
        }
        for (key, value) in &policy.settings {
            if key.is_empty() || key.len() as u64 > caps.key_bytes || key.chars().any(char::is_control) {
                return Err(format!(
                    "agents.{agent}.settings: a key is 1 to {} bytes with no control characters, not {key:?}",
                    caps.key_bytes
                ));
            }
            if value.len() as u64 > caps.arg_bytes {
                return Err(format!(
                    "agents.{agent}.settings.{key}: {} bytes is over limits.max-arg-bytes ({} bytes)",
                    value.len(),
                    caps.arg_bytes
                ));
            }
        }
        agents.insert(agent, Arc::new(AgentPolicy { dirs, settings: Arc::new(policy.settings) }));
    }
    Ok(agents)
}
