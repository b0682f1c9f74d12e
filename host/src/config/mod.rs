//! `paddock.toml`: read with unknown keys refused, then validated into typed
//! [`Settings`]. Every error names the file and the key.

mod limits;
mod plugins;
mod tenants;
mod units;

pub use limits::{Limits, Requested, SizeCaps};
pub use plugins::{DEFAULT_LISTEN, PluginSettings, check_listen};
pub use units::{ByteSize, Span};

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The file name looked for in the working directory when no `--config` is given.
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

/// How the wasmtime engine is shaped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineSettings {
    /// Use the pooling instance allocator (fast instantiation, fixed capacity).
    pub pooling: bool,
    /// Invocations that may run at once (pooling slots).
    pub max_instances: u32,
    /// Tables per invocation.
    pub max_tables: u32,
    /// Elements per table.
    pub max_table_elements: u32,
    /// Core instances per component instance.
    pub max_core_instances: u32,
    /// How often the wall-clock deadline is checked and busy guests yield.
    pub epoch_tick: Duration,
    /// Guests that may compute at once, shared fairly between tenants
    /// (default: the number of CPUs; 0 turns fair scheduling off).
    pub cpu_slots: usize,
}

/// A host directory the operator lends to an agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirGrant {
    /// Directory on the host.
    pub host: PathBuf,
    /// Where the agent sees it, e.g. `/data`.
    pub guest: String,
    /// Whether the agent may create, change and delete files in it.
    pub write: bool,
}

impl DirGrant {
    /// Parses the command-line form `HOST[::GUEST]` (guest defaults to `/data`).
    pub fn parse(text: &str, write: bool) -> Result<Self, String> {
        let (host, guest) = match text.split_once("::") {
            Some((h, g)) => (h, g),
            None => (text, "/data"),
        };
        if host.is_empty() || guest.is_empty() {
            return Err(format!("`{text}` is not HOST[::GUEST]"));
        }
        Ok(DirGrant { host: PathBuf::from(host), guest: guest.to_string(), write })
    }
}

/// What the operator grants one agent beyond the defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AgentPolicy {
    /// Directories preopened for it.
    pub dirs: Vec<DirGrant>,
}

/// Validated settings of a host.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The file these came from, or `None` for the embedded defaults.
    pub source: Option<PathBuf>,
    /// Where plugins (folders with `agent.toml`) live.
    pub plugins_dir: PathBuf,
    /// The tenant used when an invocation names none.
    pub default_tenant: String,
    /// Limits applied when nothing lowers them.
    pub limits: Limits,
    /// The operator's maximum for each limit.
    pub ceiling: Limits,
    /// Byte caps at the sandbox boundary.
    pub caps: SizeCaps,
    /// How deep `agents.call` may nest.
    pub max_call_depth: u32,
    /// Engine shape.
    pub engine: EngineSettings,
    /// Per-agent grants, by agent name.
    pub agents: BTreeMap<String, AgentPolicy>,
    /// Each tenant's blackboard limits.
    pub board: crate::blackboard::BoardLimits,
    /// Where the blackboard is kept.
    pub board_store: BoardStore,
    /// LLM providers, routes and prices.
    pub gateway: crate::gateway::GatewaySettings,
    /// Agents run when blackboard keys change.
    pub triggers: Vec<crate::triggers::Trigger>,
    /// Each tenant's grants, ceilings and budgets.
    pub tenants: crate::tenants::Tenants,
    /// Where usage and budgets are kept.
    pub ledger: crate::quota::LedgerStore,
    /// Where flow runs, checkpoints, journals, dead letters and approvals
    /// are kept: `None` in memory, else this SQLite file.
    pub flows: Option<PathBuf>,
    /// `host.data`: where the host keeps its files.
    pub data_dir: PathBuf,
    /// The compiled-code cache, accepted capabilities, and `paddock serve`.
    pub plugins: PluginSettings,
}

/// Where the blackboard is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BoardStore {
    /// In memory: fast, gone when the process ends.
    Memory,
    /// In a redb file that survives restarts and crashes (one process at a time).
    Durable(PathBuf),
}

impl Default for Settings {
    fn default() -> Self {
        Settings::from_file(FileConfig::default(), None, Path::new(".")).expect("embedded defaults are valid")
    }
}

impl Settings {
    /// Loads `path`, or `./paddock.toml` when present, or the embedded defaults.
    pub fn load(path: Option<&Path>) -> Result<Settings, ConfigError> {
        let path = match path {
            Some(p) => p.to_path_buf(),
            None if Path::new(DEFAULT_FILE).is_file() => PathBuf::from(DEFAULT_FILE),
            None => return Ok(Settings::default()),
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| ConfigError { file: path.display().to_string(), message: format!("cannot read: {e}") })?;
        Settings::parse(&text, &path)
    }

    /// Parses configuration text that came from `path` (used for errors and
    /// to resolve relative paths).
    pub fn parse(text: &str, path: &Path) -> Result<Settings, ConfigError> {
        let file: FileConfig = toml::from_str(text).map_err(|e| ConfigError {
            file: path.display().to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let base = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        Settings::from_file(file, Some(path), base)
    }

    fn from_file(file: FileConfig, path: Option<&Path>, base: &Path) -> Result<Settings, ConfigError> {
        let name = path.map_or("<embedded defaults>".to_string(), |p| p.display().to_string());
        let fail = |message: String| ConfigError { file: name.clone(), message };

        let ceiling = Limits {
            fuel: file.ceiling.fuel.unwrap_or(1_000_000_000_000),
            memory: file.ceiling.memory.map_or(1 << 30, |b| b.0),
            timeout: file.ceiling.timeout.map_or(Duration::from_secs(600), |s| s.0),
        };
        let limits = Limits {
            fuel: file.limits.fuel.unwrap_or(10_000_000_000.min(ceiling.fuel)),
            memory: file.limits.memory.map_or((128 << 20).min(ceiling.memory), |b| b.0),
            timeout: file.limits.timeout.map_or(Duration::from_secs(30).min(ceiling.timeout), |s| s.0),
        };
        for (key, value, max) in [
            ("fuel", limits.fuel, ceiling.fuel),
            ("memory", limits.memory, ceiling.memory),
            ("timeout", limits.timeout.as_millis() as u64, ceiling.timeout.as_millis() as u64),
        ] {
            if value == 0 {
                return Err(fail(format!("limits.{key} must be greater than zero")));
            }
            if value > max {
                return Err(fail(format!(
                    "limits.{key} ({}) is above ceiling.{key} ({}); raise the ceiling or lower the default",
                    show(key, value),
                    show(key, max)
                )));
            }
        }
        // The pooling allocator reserves address space for the largest memory
        // up front, so the memory ceiling must fit a wasm32 address space.
        if ceiling.memory > 4 << 30 {
            return Err(fail(format!(
                "ceiling.memory ({}) is above 4 GiB, the most a 32-bit wasm memory can hold",
                ByteSize(ceiling.memory)
            )));
        }

        let l = &file.limits;
        let caps = SizeCaps {
            arg_bytes: l.max_arg_bytes.map_or(1 << 20, |b| b.0),
            log_bytes: l.max_log_bytes.map_or(64 << 10, |b| b.0),
            log_total_bytes: l.max_log_total_bytes.map_or(1 << 20, |b| b.0),
            key_bytes: l.max_key_bytes.map_or(512, |b| b.0),
            value_bytes: l.max_value_bytes.map_or(1 << 20, |b| b.0),
            output_bytes: l.max_output_bytes.map_or(64 << 10, |b| b.0),
            io_bytes: l.max_io_bytes.map_or(4 << 20, |b| b.0),
        };
        for (key, value) in [
            ("max-arg-bytes", caps.arg_bytes),
            ("max-log-bytes", caps.log_bytes),
            ("max-key-bytes", caps.key_bytes),
            ("max-value-bytes", caps.value_bytes),
            ("max-io-bytes", caps.io_bytes),
        ] {
            if value == 0 {
                return Err(fail(format!("limits.{key} must be greater than zero")));
            }
        }

        let e = &file.engine;
        let engine = EngineSettings {
            pooling: e.pooling.unwrap_or(true),
            max_instances: e.max_instances.unwrap_or(1000),
            max_tables: e.max_tables.unwrap_or(16),
            max_table_elements: e.max_table_elements.unwrap_or(100_000),
            max_core_instances: e.max_core_instances.unwrap_or(32),
            epoch_tick: e.epoch_tick.map_or(Duration::from_millis(10), |s| s.0),
            cpu_slots: e
                .cpu_slots
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get)),
        };
        if engine.max_instances == 0 {
            return Err(fail("engine.max-instances must be greater than zero".into()));
        }
        if engine.epoch_tick < Duration::from_millis(1) || engine.epoch_tick > Duration::from_secs(1) {
            return Err(fail(format!("engine.epoch-tick ({}) must be between 1ms and 1s", Span(engine.epoch_tick))));
        }

        let data_dir = base.join(file.host.data.clone().unwrap_or_else(|| PathBuf::from(".paddock")));
        let ledger = match file.host.ledger.as_deref().unwrap_or("durable") {
            "memory" => crate::quota::LedgerStore::Memory,
            "durable" => crate::quota::LedgerStore::Sqlite(data_dir.join("ledger.sqlite")),
            other => return Err(fail(format!("host.ledger: `{other}` is not a store; use \"durable\" or \"memory\""))),
        };
        let flows = match file.host.flows.as_deref().unwrap_or("durable") {
            "memory" => None,
            "durable" => Some(data_dir.join("flows.sqlite")),
            other => return Err(fail(format!("host.flows: `{other}` is not a store; use \"durable\" or \"memory\""))),
        };

        let plugins = plugins::plugin_settings(
            file.host.code_cache,
            file.host.plugin_state.as_deref(),
            file.serve,
            &data_dir,
            base,
        )
        .map_err(fail)?;

        let default_tenant = file.host.default_tenant.unwrap_or_else(|| "default".to_string());
        crate::blackboard::validate_tenant(&default_tenant)
            .map_err(|why| fail(format!("host.default-tenant: {why}")))?;

        let mut agents = BTreeMap::new();
        for (agent, policy) in file.agents {
            let mut dirs = Vec::new();
            for (i, d) in policy.dirs.into_iter().enumerate() {
                if !d.guest.starts_with('/') {
                    return Err(fail(format!(
                        "agents.{agent}.dirs[{i}].guest must be an absolute path like \"/data\", not `{}`",
                        d.guest
                    )));
                }
                dirs.push(DirGrant { host: base.join(d.host), guest: d.guest, write: d.write });
            }
            agents.insert(agent, AgentPolicy { dirs });
        }

        let gateway = gateway_settings(
            crate::gateway::settings::GatewayFile {
                providers: file.providers,
                routes: file.routes,
                prices: file.prices,
                secrets: file.host.secrets,
            },
            base,
        )
        .map_err(fail)?;

        let known =
            tenants::Known { routes: gateway.routes.keys().map(String::as_str).collect(), ceiling: &ceiling, base };
        let tenants = crate::tenants::Tenants::new(tenants::policies(file.tenants, &known).map_err(fail)?);

        let mut triggers = Vec::new();
        for (i, t) in file.triggers.into_iter().enumerate() {
            let at = format!("triggers[{i}]");
            let tenant = t.tenant.unwrap_or_else(|| default_tenant.clone());
            crate::blackboard::validate_tenant(&tenant).map_err(|why| fail(format!("{at}.tenant: {why}")))?;
            let policy = tenants.get(&tenant).map_err(|why| fail(format!("{at}.tenant: {why}")))?;
            if t.agent.is_empty() {
                return Err(fail(format!("{at}.agent must name an agent")));
            }
            policy.check_agent(&t.agent).map_err(|why| fail(format!("{at}.agent: {why}")))?;
            if t.prefix.len() as u64 > caps.key_bytes || t.prefix.chars().any(char::is_control) {
                return Err(fail(format!("{at}.prefix must be a key prefix of at most {} bytes", caps.key_bytes)));
            }
            let concurrency = t.concurrency.unwrap_or(1);
            if concurrency == 0 {
                return Err(fail(format!("{at}.concurrency must be at least 1")));
            }
            let name = t.name.unwrap_or_else(|| format!("{}-{i}", t.agent));
            if triggers.iter().any(|x: &crate::triggers::Trigger| x.name == name) {
                return Err(fail(format!("{at}.name: another trigger is named {name:?}")));
            }
            triggers.push(crate::triggers::Trigger {
                name,
                tenant,
                prefix: t.prefix,
                agent: t.agent,
                concurrency,
                deletes: t.deletes,
                input: t.input,
            });
        }

        Ok(Settings {
            ledger,
            flows,
            data_dir: data_dir.clone(),
            plugins,
            tenants,
            triggers,
            gateway,
            source: path.map(Path::to_path_buf),
            plugins_dir: base.join(file.host.plugins.unwrap_or_else(|| PathBuf::from("plugins"))),
            default_tenant,
            limits,
            ceiling,
            caps,
            max_call_depth: file.limits.max_call_depth.unwrap_or(4),
            engine,
            agents,
            board: crate::blackboard::BoardLimits {
                key_bytes: caps.key_bytes,
                value_bytes: caps.value_bytes,
                max_keys: file.blackboard.max_keys.unwrap_or(100_000),
                max_bytes: file.blackboard.max_bytes.map_or(256 << 20, |b| b.0),
                history: file.blackboard.history.unwrap_or(4096),
                per_tenant: false,
            },
            board_store: match file.blackboard.store.as_deref().unwrap_or("memory") {
                "memory" => BoardStore::Memory,
                "durable" => BoardStore::Durable(
                    file.blackboard.path.map_or_else(|| data_dir.join("blackboard.redb"), |p| base.join(p)),
                ),
                other => {
                    return Err(fail(format!(
                        "blackboard.store: `{other}` is not a store; use \"memory\" or \"durable\""
                    )));
                }
            },
        })
    }

    /// Where these settings came from, for messages.
    pub fn source_name(&self) -> String {
        self.source.as_ref().map_or("<embedded defaults>".to_string(), |p| p.display().to_string())
    }
}

/// Providers, routes and prices. With none configured, the simulated
/// provider and its routes `fast` and `smart` stand in, so the demo runs
/// offline; a `simulated` provider is always there to route to.
fn gateway_settings(
    file: crate::gateway::settings::GatewayFile,
    base: &Path,
) -> Result<crate::gateway::GatewaySettings, String> {
    use crate::gateway::GatewaySettings;
    if file.providers.is_empty() && file.routes.is_empty() {
        let mut defaults = GatewaySettings::simulated_defaults();
        for (model, price) in file.prices {
            defaults.prices.extend(
                crate::gateway::settings::GatewayFile { prices: [(model, price)].into(), ..Default::default() }
                    .validate(&crate::gateway::settings::KeySource { env: &|_| None, base })?
                    .prices,
            );
        }
        return Ok(defaults);
    }
    let mut file = file;
    file.providers.entry("simulated".to_string()).or_insert_with(crate::gateway::settings::ProviderFile::simulated);
    file.validate(&crate::gateway::settings::KeySource { env: &|name| std::env::var(name).ok(), base })
}

/// Renders a limit value in the unit its key uses.
pub fn show(key: &str, value: u64) -> String {
    match key {
        "memory" => ByteSize(value).to_string(),
        "timeout" => Span(Duration::from_millis(value)).to_string(),
        _ => value.to_string(),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileConfig {
    #[serde(default)]
    host: HostSection,
    #[serde(default)]
    limits: LimitsSection,
    #[serde(default)]
    ceiling: CeilingSection,
    #[serde(default)]
    engine: EngineSection,
    #[serde(default)]
    agents: BTreeMap<String, AgentSection>,
    #[serde(default)]
    blackboard: BlackboardSection,
    #[serde(default)]
    providers: BTreeMap<String, crate::gateway::settings::ProviderFile>,
    #[serde(default)]
    routes: BTreeMap<String, crate::gateway::settings::RouteFile>,
    #[serde(default)]
    prices: BTreeMap<String, crate::gateway::settings::PriceFile>,
    #[serde(default)]
    triggers: Vec<TriggerSection>,
    #[serde(default)]
    tenants: BTreeMap<String, tenants::TenantSection>,
    #[serde(default)]
    serve: plugins::ServeSection,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct TriggerSection {
    name: Option<String>,
    tenant: Option<String>,
    prefix: String,
    agent: String,
    concurrency: Option<usize>,
    #[serde(default)]
    deletes: bool,
    #[serde(default)]
    input: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct BlackboardSection {
    store: Option<String>,
    path: Option<PathBuf>,
    max_keys: Option<u64>,
    max_bytes: Option<ByteSize>,
    history: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct HostSection {
    plugins: Option<PathBuf>,
    data: Option<PathBuf>,
    ledger: Option<String>,
    flows: Option<String>,
    code_cache: Option<plugins::CodeCacheFile>,
    plugin_state: Option<String>,
    default_tenant: Option<String>,
    secrets: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct LimitsSection {
    fuel: Option<u64>,
    memory: Option<ByteSize>,
    timeout: Option<Span>,
    max_arg_bytes: Option<ByteSize>,
    max_log_bytes: Option<ByteSize>,
    max_log_total_bytes: Option<ByteSize>,
    max_key_bytes: Option<ByteSize>,
    max_value_bytes: Option<ByteSize>,
    max_output_bytes: Option<ByteSize>,
    max_io_bytes: Option<ByteSize>,
    max_call_depth: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct CeilingSection {
    fuel: Option<u64>,
    memory: Option<ByteSize>,
    timeout: Option<Span>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct EngineSection {
    pooling: Option<bool>,
    max_instances: Option<u32>,
    max_tables: Option<u32>,
    max_table_elements: Option<u32>,
    max_core_instances: Option<u32>,
    epoch_tick: Option<Span>,
    cpu_slots: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct AgentSection {
    #[serde(default)]
    dirs: Vec<DirSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct DirSection {
    host: PathBuf,
    guest: String,
    #[serde(default)]
    write: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Settings, ConfigError> {
        Settings::parse(text, Path::new("conf/paddock.toml"))
    }

    #[test]
    fn embedded_defaults_are_within_their_ceiling() {
        let s = Settings::default();
        assert_eq!(s.limits.fuel, 10_000_000_000);
        assert_eq!(s.limits.memory, 128 << 20);
        assert_eq!(s.limits.timeout, Duration::from_secs(30));
        assert_eq!(s.source_name(), "<embedded defaults>");
    }

    #[test]
    fn unknown_key_is_refused_naming_file_and_key() {
        let err = parse("[limits]\nfule = 3\n").unwrap_err();
        assert_eq!(err.file, "conf/paddock.toml");
        assert!(err.message.contains("unknown field `fule`"), "{}", err.message);
        assert!(err.message.contains("line 2"), "{}", err.message);
    }

    #[test]
    fn default_above_ceiling_is_refused_naming_both_keys() {
        let err = parse("[limits]\nmemory = \"2GiB\"\n[ceiling]\nmemory = \"1GiB\"\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "conf/paddock.toml: limits.memory (2 GiB) is above ceiling.memory (1 GiB); raise the ceiling or lower the default"
        );
    }

    #[test]
    fn bad_size_value_names_the_value() {
        let err = parse("[limits]\nmemory = \"lots\"\n").unwrap_err();
        assert!(err.message.contains("`lots` is not a size"), "{}", err.message);
    }

    #[test]
    fn paths_resolve_against_the_config_folder() {
        let s =
            parse("[host]\nplugins = \"agents\"\n[agents.reader]\ndirs = [{ host = \"data\", guest = \"/data\" }]\n")
                .unwrap();
        assert_eq!(s.plugins_dir, Path::new("conf/agents"));
        assert_eq!(s.agents["reader"].dirs[0].host, Path::new("conf/data"));
        assert!(!s.agents["reader"].dirs[0].write);
    }

    #[test]
    fn relative_guest_path_is_refused() {
        let err = parse("[agents.reader]\ndirs = [{ host = \"data\", guest = \"data\" }]\n").unwrap_err();
        assert_eq!(err.message, "agents.reader.dirs[0].guest must be an absolute path like \"/data\", not `data`");
    }

    #[test]
    fn manifest_requests_are_cut_to_the_ceiling_with_a_note() {
        let s = Settings::default();
        let req = Requested { fuel: Some(u64::MAX), memory: Some(1 << 20), timeout: None };
        let (limits, notes) = s.limits.with_request(&s.ceiling, &req);
        assert_eq!((limits.fuel, limits.memory, limits.timeout), (s.ceiling.fuel, 1 << 20, s.limits.timeout));
        assert_eq!(notes.len(), 1);
        assert!(
            notes[0].starts_with("limits.fuel (18446744073709551615) is above the operator's ceiling.fuel"),
            "{}",
            notes[0]
        );
    }

    #[test]
    fn command_line_over_the_ceiling_is_an_error() {
        let s = Settings::default();
        let req = Requested { memory: Some(2 << 30), ..Default::default() };
        assert_eq!(
            s.limits.with_overrides(&s.ceiling, &req).unwrap_err(),
            "--memory 2 GiB is above ceiling.memory (1 GiB)"
        );
    }

    #[test]
    fn blackboard_store_is_memory_unless_durable_is_asked_for() {
        assert_eq!(Settings::default().board_store, BoardStore::Memory);
        let s = parse("[blackboard]\nstore = \"durable\"\n").unwrap();
        assert_eq!(s.board_store, BoardStore::Durable(PathBuf::from("conf/.paddock/blackboard.redb")));
        let err = parse("[blackboard]\nstore = \"redis\"\n").unwrap_err();
        assert_eq!(err.message, "blackboard.store: `redis` is not a store; use \"memory\" or \"durable\"");
    }

    #[test]
    fn nothing_configured_means_the_simulated_routes_fast_and_smart() {
        let s = Settings::default();
        assert!(s.gateway.simulated_defaults);
        assert_eq!(s.gateway.routes.keys().collect::<Vec<_>>(), ["fast", "smart"]);
    }

    #[test]
    fn provider_and_route_errors_name_the_key() {
        let cases = [
            (
                "[providers.x]\nkind = \"bedrock\"\n",
                "providers.x.kind: `bedrock` is not a provider kind; use openai, anthropic, gemini, ollama or simulated",
            ),
            (
                "[providers.x]\nkind = \"openai\"\napi-key-env = \"PADDOCK_TEST_UNSET_KEY\"\n",
                "providers.x.api-key-env: the environment variable PADDOCK_TEST_UNSET_KEY is not set",
            ),
            (
                "[providers.x]\nkind = \"openai\"\napi-key-secret = \"k\"\n",
                "providers.x.api-key-secret: no secrets file is configured (host.secrets)",
            ),
            (
                "[providers.x]\nkind = \"openai\"\nbase-url = \"api.openai.com\"\n",
                "providers.x.base-url: `api.openai.com` is not an http:// or https:// URL",
            ),
            (
                "[routes.fast]\ntargets = [{ provider = \"nope\", model = \"m\" }]\n",
                "routes.fast.targets[0].provider: no provider named \"nope\" (configured: simulated)",
            ),
            (
                "[routes.fast]\nstrategy = \"cheapest\"\ntargets = [{ provider = \"simulated\", model = \"m\" }]\n",
                "routes.fast.targets[0]: strategy \"cheapest\" needs a price for simulated/m in [prices]",
            ),
            ("[routes.fast]\ntargets = []\n", "routes.fast.targets: a route needs at least one target"),
            (
                "[routes.fast]\nthrottle-below = 2.0\ntargets = [{ provider = \"simulated\", model = \"m\" }]\n",
                "routes.fast.throttle-below: 2 is not a fraction between 0 and 1",
            ),
        ];
        for (text, message) in cases {
            assert_eq!(parse(text).unwrap_err().message, message, "{text}");
        }
    }

    #[test]
    fn route_and_target_thresholds_layer_over_the_defaults() {
        let s = parse(
            "[routes.r]\nretries = 3\nbreaker = { failures = 5 }\ntargets = [\n  { provider = \"simulated\", model = \"a\" },\n  { provider = \"simulated\", model = \"b\", retries = 0, breaker = { open-for = \"5s\" } },\n]\n",
        )
        .unwrap();
        let r = &s.gateway.routes["r"];
        assert_eq!((r.targets[0].policy.retries, r.targets[0].policy.breaker.failures), (3, 5));
        assert_eq!((r.targets[1].policy.retries, r.targets[1].policy.breaker.open_for), (0, Duration::from_secs(5)));
        assert_eq!(r.targets[1].policy.breaker.failures, 5, "breaker keys layer one by one");
        assert!(!s.gateway.simulated_defaults);
    }

    #[test]
    fn a_secrets_file_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let secrets = dir.path().join("secrets.toml");
        std::fs::write(&secrets, "k = \"sk-1\"\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o644)).unwrap();
            let text = "[host]\nsecrets = \"secrets.toml\"\n[providers.x]\nkind = \"openai\"\napi-key-secret = \"k\"\n";
            let err = Settings::parse(text, &dir.path().join("paddock.toml")).unwrap_err();
            assert!(err.message.contains("can be read by other users (mode 644); run `chmod 600"), "{}", err.message);
            assert!(!err.message.contains("sk-1"));
        }
    }

    #[test]
    fn dir_grant_parses_host_and_guest() {
        let g = DirGrant::parse("./in::/input", false).unwrap();
        assert_eq!(g.host, Path::new("./in"));
        assert_eq!(g.guest, "/input");
        assert_eq!(DirGrant::parse("./in", true).unwrap().guest, "/data");
    }
}
