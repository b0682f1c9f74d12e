//! Tools for agents: the MCP servers the operator configures (`[mcp.NAME]`),
//! which only the host reaches. Agents will name a tool `server/tool`; what
//! a server needs to be reached — its command, URL, headers and keys — stays
//! here.
//!
//! A server is connected at its first use and kept: a stdio server is a
//! child process, an HTTP one a Streamable HTTP session. A server whose
//! process died, or whose connection closed, is connected again at the next
//! use (a call in flight when it died fails `unavailable`; it is not sent
//! again, as a tool may not be safe to call twice). Every call is bounded by
//! the server's `timeout`, and its result by `max-result-bytes`.

mod metrics;
mod output;
mod rates;
pub mod settings;
mod toolbox;

pub use metrics::ToolMetrics;
pub use output::Output;
pub use rates::Rates;
pub use toolbox::{Listed, Toolbox};

use rmcp::model::{CallToolRequestParams, CallToolResult, JsonObject, Tool};
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt};
pub use settings::{McpFile, McpServer, Transport};
use std::collections::{BTreeMap, HashMap};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a tool call gave no result.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ToolError {
    /// No such server or tool (or not granted).
    #[error("denied: {0}")]
    Denied(String),
    /// The server refused the arguments.
    #[error("invalid arguments: {0}")]
    InvalidArguments(String),
    /// The tool ran and failed, or its result broke a limit.
    #[error("failed: {0}")]
    Failed(String),
    /// No answer within the server's timeout.
    #[error("timeout: {0}")]
    Timeout(String),
    /// The server cannot be reached, or went away during the call.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

impl ToolError {
    /// Its kind, as the metrics and the WIT name it: `denied`, `invalid-arguments`...
    pub fn kind(&self) -> &'static str {
        match self {
            ToolError::Denied(_) => "denied",
            ToolError::InvalidArguments(_) => "invalid-arguments",
            ToolError::Failed(_) => "failed",
            ToolError::Timeout(_) => "timeout",
            ToolError::Unavailable(_) => "unavailable",
        }
    }
}

/// A connected server.
type Session = RunningService<RoleClient, ()>;

/// One configured server and its session, when connected.
struct Server {
    settings: McpServer,
    session: tokio::sync::Mutex<Option<Arc<Session>>>,
    /// Sessions started.
    sessions: AtomicU64,
}

/// The configured MCP servers.
#[derive(Clone, Default)]
pub struct Servers {
    servers: Arc<BTreeMap<String, Arc<Server>>>,
}

impl Servers {
    /// The servers of `[mcp.*]`; none is started yet.
    pub fn new(settings: impl IntoIterator<Item = McpServer>) -> Servers {
        let servers = settings.into_iter().map(|s| (s.name.clone(), Server::new(s))).collect();
        Servers { servers: Arc::new(servers) }
    }

    /// The servers of `settings`, keeping the session of each whose settings
    /// did not change (a reload of the config does not restart them).
    pub fn reload(&self, settings: impl IntoIterator<Item = McpServer>) -> Servers {
        let servers = settings
            .into_iter()
            .map(|s| match self.servers.get(&s.name).filter(|old| old.settings == s) {
                Some(kept) => (s.name, kept.clone()),
                None => (s.name.clone(), Server::new(s)),
            })
            .collect();
        Servers { servers: Arc::new(servers) }
    }

    /// The configured servers' names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.servers.keys().cloned().collect()
    }

    fn server(&self, name: &str) -> Result<&Arc<Server>, ToolError> {
        self.servers.get(name).ok_or_else(|| {
            let known = self.names();
            let known = if known.is_empty() { "none".to_string() } else { known.join(", ") };
            ToolError::Denied(format!("no MCP server {name:?} (configured: {known})"))
        })
    }

    /// The tools server `name` offers.
    pub async fn list(&self, name: &str) -> Result<Vec<Tool>, ToolError> {
        let server = self.server(name)?;
        let session = server.session().await?;
        let listed = tokio::time::timeout(server.settings.timeout, session.list_all_tools()).await;
        match listed {
            Ok(Ok(tools)) => Ok(tools),
            Ok(Err(e)) => Err(server.failure(e, &session).await),
            Err(_) => Err(server.timed_out("tools/list")),
        }
    }

    /// Calls `tool` of server `name` with `arguments`.
    pub async fn call(&self, name: &str, tool: &str, arguments: JsonObject) -> Result<CallToolResult, ToolError> {
        let server = self.server(name)?;
        let session = server.session().await?;
        let request = CallToolRequestParams::new(tool.to_string()).with_arguments(arguments);
        let limit = server.settings.timeout_of(tool);
        let result = match tokio::time::timeout(limit, session.call_tool(request)).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => return Err(server.failure(e, &session).await),
            Err(_) => return Err(server.tool_timed_out(tool)),
        };
        let size = serde_json::to_vec(&result).map_or(usize::MAX, |b| b.len()) as u64;
        if size > server.settings.max_result_bytes {
            return Err(ToolError::Failed(format!(
                "the result of {name}/{tool} is {size} bytes, over mcp.{name}.max-result-bytes ({})",
                server.settings.max_result_bytes
            )));
        }
        Ok(result)
    }

    /// How many times server `name` was connected again after its first session.
    pub fn reconnects(&self, name: &str) -> u64 {
        self.servers.get(name).map_or(0, |s| s.sessions.load(Ordering::Relaxed).saturating_sub(1))
    }
}

impl Server {
    /// A server not connected yet.
    fn new(settings: McpServer) -> Arc<Server> {
        Arc::new(Server { settings, session: Default::default(), sessions: AtomicU64::new(0) })
    }

    /// The live session, connecting (again) when there is none or it closed.
    async fn session(&self) -> Result<Arc<Session>, ToolError> {
        let mut slot = self.session.lock().await;
        if let Some(session) = slot.as_ref().filter(|s| !s.is_closed()) {
            return Ok(session.clone());
        }
        let name = &self.settings.name;
        // Made on the host's shared runtime, where its tasks and its child
        // process then live (made on a front thread, every call from the
        // other fronts would wait whenever that one is busy), and stopped
        // when this call is (its timeout, or its caller gone), child and all.
        let settings = self.settings.clone();
        let mut made = Abort(paddock_core::front::spawn_shared(async move { connect(&settings).await }));
        let connected = tokio::time::timeout(self.settings.connect_timeout, &mut made.0).await;
        let session = match connected {
            Ok(Ok(Ok(session))) => Arc::new(session),
            Ok(Ok(Err(why))) => return Err(ToolError::Unavailable(format!("MCP server {name}: {why}"))),
            Ok(Err(_)) => return Err(ToolError::Unavailable(format!("MCP server {name}: the host is stopping"))),
            Err(_) => {
                let within = paddock_core::Span(self.settings.connect_timeout);
                return Err(ToolError::Unavailable(format!("MCP server {name}: no handshake within {within}")));
            }
        };
        if self.sessions.fetch_add(1, Ordering::Relaxed) > 0 {
            tracing::warn!(server = %name, "MCP server connected again");
        }
        *slot = Some(session.clone());
        Ok(session)
    }

    /// What a failed request of `session` means for the caller. When the
    /// connection failed, the session is dropped: the next use connects
    /// again (the session may not know yet that its process died).
    async fn failure(&self, e: rmcp::ServiceError, session: &Arc<Session>) -> ToolError {
        let name = &self.settings.name;
        match e {
            rmcp::ServiceError::McpError(data) if data.code == rmcp::model::ErrorCode::INVALID_PARAMS => {
                ToolError::InvalidArguments(data.message.to_string())
            }
            rmcp::ServiceError::McpError(data) => ToolError::Failed(data.message.to_string()),
            rmcp::ServiceError::Timeout { .. } => self.timed_out("the request"),
            other => {
                let mut slot = self.session.lock().await;
                if slot.as_ref().is_some_and(|s| Arc::ptr_eq(s, session)) {
                    slot.take();
                }
                ToolError::Unavailable(format!("MCP server {name}: {other}"))
            }
        }
    }

    fn tool_timed_out(&self, tool: &str) -> ToolError {
        let name = &self.settings.name;
        let (limit, key) = match self.settings.tool_timeouts.get(tool) {
            Some(limit) => (*limit, format!("mcp.{name}.tool-timeouts.{tool}")),
            None => (self.settings.timeout, format!("mcp.{name}.timeout")),
        };
        ToolError::Timeout(format!("{name}/{tool} got no answer within {} ({key})", paddock_core::Span(limit)))
    }

    fn timed_out(&self, what: &str) -> ToolError {
        let (name, limit) = (&self.settings.name, paddock_core::Span(self.settings.timeout));
        ToolError::Timeout(format!("{what} got no answer within {limit} (mcp.{name}.timeout)"))
    }
}

/// rustls's ring provider, once, for HTTPS to servers (as the gateway's).
fn install_crypto() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Starts or reaches the server and does the handshake.
async fn connect(settings: &McpServer) -> Result<Session, String> {
    match &settings.transport {
        Transport::Stdio { command, dir, env, pass_env } => {
            let mut cmd = tokio::process::Command::new(&command[0]);
            cmd.args(&command[1..]).current_dir(dir).env_clear();
            let kept = ["PATH", "HOME", "LANG", "TMPDIR"].iter().map(|k| k.to_string());
            for key in kept.chain(pass_env.iter().cloned()) {
                if let Some(value) = std::env::var_os(&key) {
                    cmd.env(key, value);
                }
            }
            cmd.envs(env);
            // The child goes when its handle does (a restart, or the host stopping).
            cmd.kill_on_drop(true);
            let (transport, _) = TokioChildProcess::builder(cmd)
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("cannot start {:?}: {e}", command[0]))?;
            ().serve(transport).await.map_err(|e| e.to_string())
        }
        Transport::Http { url, headers, header_env, header_secrets } => {
            install_crypto();
            let mut sent = HashMap::new();
            let from_env = header_env.iter().map(|(header, var)| {
                let value = std::env::var(var).map_err(|_| format!("header {header}: {var} is not set"))?;
                Ok::<_, String>((header, value))
            });
            let from_secrets = header_secrets.iter().map(|(h, v)| Ok((h, v.0.clone())));
            for pair in headers.iter().map(|(h, v)| Ok((h, v.clone()))).chain(from_env).chain(from_secrets) {
                let (header, value) = pair?;
                let name = reqwest::header::HeaderName::from_bytes(header.as_bytes()).map_err(|e| e.to_string())?;
                let value = reqwest::header::HeaderValue::from_str(&value)
                    .map_err(|_| format!("header {header}: its value is not a header value"))?;
                sent.insert(name, value);
            }
            let config = StreamableHttpClientTransportConfig::with_uri(url.as_str()).custom_headers(sent);
            ().serve(StreamableHttpClientTransport::from_config(config)).await.map_err(|e| e.to_string())
        }
    }
}

/// A task stopped when its handle is dropped.
struct Abort<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for Abort<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(name: &str, command: &str) -> McpServer {
        let file: McpFile = toml::from_str(&format!("command = [{command:?}]")).unwrap();
        file.server(name, std::path::Path::new("."), None).unwrap()
    }

    #[test]
    fn a_reload_keeps_each_unchanged_server_and_replaces_a_changed_one() {
        let old = Servers::new([server("kit", "kit.py"), server("web", "web.py")]);
        let new = old.reload([server("kit", "kit.py"), server("web", "web-v2.py"), server("more", "more.py")]);
        assert!(Arc::ptr_eq(&old.servers["kit"], &new.servers["kit"]), "kit keeps its session");
        assert!(!Arc::ptr_eq(&old.servers["web"], &new.servers["web"]), "web changed, so it starts again");
        assert_eq!(new.names(), ["kit", "more", "web"]);
        assert_eq!(old.reload([]).names(), Vec::<String>::new(), "a removed server is gone");
    }
}
