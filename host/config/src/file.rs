//! `paddock.toml` as serde reads it: every section with unknown keys refused.
//! [`crate::Settings`] validates it into typed settings.

use crate::{plugins, serve, telemetry, tenants};
use paddock_core::{ByteSize, Span};
use paddock_gateway::settings::{PriceFile, ProviderFile, RouteFile};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct FileConfig {
    #[serde(default)]
    pub(crate) host: HostSection,
    #[serde(default)]
    pub(crate) limits: LimitsSection,
    #[serde(default)]
    pub(crate) ceiling: CeilingSection,
    #[serde(default)]
    pub(crate) engine: EngineSection,
    #[serde(default)]
    pub(crate) agents: BTreeMap<String, AgentSection>,
    #[serde(default)]
    pub(crate) blackboard: BlackboardSection,
    #[serde(default)]
    pub(crate) providers: BTreeMap<String, ProviderFile>,
    #[serde(default)]
    pub(crate) routes: BTreeMap<String, RouteFile>,
    #[serde(default)]
    pub(crate) prices: BTreeMap<String, PriceFile>,
    #[serde(default)]
    pub(crate) triggers: Vec<TriggerSection>,
    #[serde(default)]
    pub(crate) tenants: BTreeMap<String, tenants::TenantSection>,
    #[serde(default)]
    pub(crate) serve: serve::ServeSection,
    #[serde(default)]
    pub(crate) telemetry: telemetry::TelemetrySection,
    #[serde(default)]
    pub(crate) retention: crate::retention::RetentionSection,
    #[serde(default)]
    pub(crate) store: StoreSection,
    #[serde(default)]
    pub(crate) mcp: BTreeMap<String, paddock_tools::McpFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct StoreSection {
    pub(crate) backend: Option<String>,
    pub(crate) url: Option<String>,
    pub(crate) url_env: Option<String>,
    pub(crate) pool: Option<usize>,
    pub(crate) ca_file: Option<std::path::PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct TriggerSection {
    pub(crate) name: Option<String>,
    pub(crate) tenant: Option<String>,
    pub(crate) prefix: String,
    pub(crate) agent: String,
    pub(crate) concurrency: Option<usize>,
    pub(crate) max_depth: Option<u32>,
    #[serde(default)]
    pub(crate) deletes: bool,
    #[serde(default)]
    pub(crate) input: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct BlackboardSection {
    pub(crate) store: Option<String>,
    pub(crate) path: Option<PathBuf>,
    pub(crate) max_keys: Option<u64>,
    pub(crate) max_bytes: Option<ByteSize>,
    pub(crate) history: Option<usize>,
    pub(crate) history_bytes: Option<ByteSize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct HostSection {
    pub(crate) plugins: Option<PathBuf>,
    pub(crate) component_dirs: Option<Vec<PathBuf>>,
    pub(crate) data: Option<PathBuf>,
    pub(crate) ledger: Option<String>,
    pub(crate) flows: Option<String>,
    pub(crate) code_cache: Option<plugins::CodeCacheFile>,
    pub(crate) plugin_state: Option<String>,
    pub(crate) default_tenant: Option<String>,
    pub(crate) secrets: Option<PathBuf>,
    pub(crate) log_format: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct LimitsSection {
    pub(crate) fuel: Option<u64>,
    pub(crate) memory: Option<ByteSize>,
    pub(crate) timeout: Option<Span>,
    pub(crate) max_arg_bytes: Option<ByteSize>,
    pub(crate) max_log_bytes: Option<ByteSize>,
    pub(crate) max_log_total_bytes: Option<ByteSize>,
    pub(crate) log_bytes_per_second: Option<ByteSize>,
    pub(crate) max_key_bytes: Option<ByteSize>,
    pub(crate) max_value_bytes: Option<ByteSize>,
    pub(crate) max_output_bytes: Option<ByteSize>,
    pub(crate) max_io_bytes: Option<ByteSize>,
    pub(crate) max_http_request_bytes: Option<ByteSize>,
    pub(crate) max_http_response_bytes: Option<ByteSize>,
    pub(crate) http_timeout: Option<Span>,
    pub(crate) max_call_depth: Option<u32>,
    pub(crate) max_agent_calls: Option<u32>,
    pub(crate) max_run_bytes: Option<ByteSize>,
    pub(crate) max_flow_bytes: Option<ByteSize>,
    pub(crate) max_question_bytes: Option<ByteSize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct CeilingSection {
    pub(crate) fuel: Option<u64>,
    pub(crate) memory: Option<ByteSize>,
    pub(crate) timeout: Option<Span>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct EngineSection {
    pub(crate) pooling: Option<bool>,
    pub(crate) max_instances: Option<u32>,
    pub(crate) max_tables: Option<u32>,
    pub(crate) max_table_elements: Option<u32>,
    pub(crate) max_core_instances: Option<u32>,
    pub(crate) epoch_tick: Option<Span>,
    pub(crate) cpu_slots: Option<usize>,
    pub(crate) keep_resident: Option<ByteSize>,
    pub(crate) memory_reservation: Option<ByteSize>,
    pub(crate) compiler: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct AgentSection {
    #[serde(default)]
    pub(crate) dirs: Vec<DirSection>,
    #[serde(default)]
    pub(crate) settings: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct DirSection {
    pub(crate) host: PathBuf,
    pub(crate) guest: String,
    #[serde(default)]
    pub(crate) write: bool,
}
