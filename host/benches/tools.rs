//! What a tool call through the host adds to the same MCP call made
//! directly: an agent (`tool-user`) calling `bench/echo` through
//! `paddock:agent/tools`, each call timed inside the guest, beside the rmcp
//! client calling the same server, over stdio and over Streamable HTTP.
//! Calls are sequential, one at a time, as an agent makes them.
//!
//! The server is this bench's own, in Rust (an echo tool), so the figures are
//! the host's and not a slow server's. It is this bench binary run again as
//! a process of its own: on stdio (`PADDOCK_BENCH_MCP_SERVER=stdio`), or over
//! Streamable HTTP on 127.0.0.1, stateless with JSON answers as `paddock
//! serve`'s `/mcp` (`PADDOCK_BENCH_MCP_SERVER=http`, stopped by its PID).
//!
//! `cargo bench -p paddock --bench tools`; `PADDOCK_BENCH_CALLS` (default
//! 2000 per row) sets the sample. Goal: at most 50 µs added at p50.

#[path = "common/report.rs"]
mod report;

use paddock::config::Settings;
use paddock::runtime::{RunOptions, Runtime};
use paddock_test_guests::guests;
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ContentBlock, Implementation, JsonObject, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{RequestContext, RunningService};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ErrorData, RoleClient, RoleServer, ServerHandler, ServiceExt};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Calls before the timed ones, per row.
const WARMUP: usize = 200;
/// Calls one invocation of the agent makes.
const PER_INVOCATION: usize = 500;

/// The bench's MCP server: one tool, `echo`, answering its `text`.
#[derive(Clone)]
struct Echo;

impl ServerHandler for Echo {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("bench", "0.1.0"))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let schema = json!({"type": "object", "properties": {"text": {"type": "string"}}});
        let Value::Object(schema) = schema else { unreachable!("an object") };
        Ok(ListToolsResult::with_all_items(vec![Tool::new("echo", "Says back its text", Arc::new(schema))]))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::CallToolResponse, ErrorData> {
        let text = request.arguments.as_ref().and_then(|a| a.get("text")).and_then(Value::as_str).unwrap_or("");
        Ok(CallToolResult::success(vec![ContentBlock::text(text.to_string())]).into())
    }
}

/// Serves [`Echo`] on this process's stdin and stdout until the client goes.
fn serve_stdio() {
    let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    tokio.block_on(async {
        let running = Echo.serve(rmcp::transport::stdio()).await.expect("the client's handshake");
        let _ = running.waiting().await;
    });
}

/// Serves [`Echo`] over Streamable HTTP on 127.0.0.1 (stateless, JSON
/// answers, as `paddock serve`'s `/mcp`), printing its URL first.
fn serve_http() {
    let tokio = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    tokio.block_on(async {
        let config = StreamableHttpServerConfig::default().with_legacy_session_mode(false).with_json_response(true);
        let service = StreamableHttpService::new(|| Ok(Echo), Arc::new(NeverSessionManager::default()), config);
        let router = axum::Router::new().nest_service("/mcp", service);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("http://{}/mcp", listener.local_addr().unwrap());
        axum::serve(listener, router).await.unwrap();
    });
}

/// The HTTP server's process, stopped by its PID when dropped.
struct HttpServer(std::process::Child, String);

impl HttpServer {
    fn start() -> HttpServer {
        use std::io::BufRead;
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .env("PADDOCK_BENCH_MCP_SERVER", "http")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        HttpServer(child, line.trim().to_string())
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// How the client reaches the server, as `[mcp.bench]` and as rmcp does.
#[derive(Clone)]
enum Way {
    Stdio,
    Http(String),
}

impl Way {
    fn name(&self) -> &'static str {
        match self {
            Way::Stdio => "stdio",
            Way::Http(_) => "http",
        }
    }

    fn section(&self) -> String {
        match self {
            Way::Stdio => {
                let exe = std::env::current_exe().unwrap();
                format!(
                    "[mcp.bench]\ncommand = [{:?}]\nenv = {{ PADDOCK_BENCH_MCP_SERVER = \"stdio\" }}\n",
                    exe.display().to_string()
                )
            }
            Way::Http(url) => format!("[mcp.bench]\nurl = {url:?}\n"),
        }
    }

    async fn connect(&self) -> RunningService<RoleClient, ()> {
        match self {
            Way::Stdio => {
                let mut cmd = tokio::process::Command::new(std::env::current_exe().unwrap());
                cmd.env("PADDOCK_BENCH_MCP_SERVER", "stdio").kill_on_drop(true);
                ().serve(TokioChildProcess::new(cmd).unwrap()).await.unwrap()
            }
            Way::Http(url) => ().serve(StreamableHttpClientTransport::from_uri(url.as_str())).await.unwrap(),
        }
    }
}

fn arguments() -> JsonObject {
    let Value::Object(args) = json!({"text": "hello"}) else { unreachable!("an object") };
    args
}

/// `calls` sequential calls made directly with rmcp's client, after a warm-up.
async fn direct(way: &Way, calls: usize) -> Vec<Duration> {
    let client = way.connect().await;
    let call = || CallToolRequestParams::new("echo").with_arguments(arguments());
    for _ in 0..WARMUP {
        client.call_tool(call()).await.unwrap();
    }
    let mut times = Vec::with_capacity(calls);
    for _ in 0..calls {
        let started = Instant::now();
        let result = client.call_tool(call()).await.unwrap();
        times.push(started.elapsed());
        assert_eq!(result.content[0].as_text().unwrap().text, "hello");
    }
    times
}

/// `calls` sequential calls the agent makes through the host, as it timed them.
async fn through_host(way: &Way, calls: usize) -> Vec<Duration> {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("plugins/tooluser");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::copy(guests::TOOL_USER, folder.join("agent.wasm")).unwrap();
    let manifest = "name = \"tooluser\"\nversion = \"1.0.0\"\ncomponent = \"agent.wasm\"\n[capabilities]\ntools = [\"bench/echo\"]\n";
    std::fs::write(folder.join("agent.toml"), manifest).unwrap();
    let toml = format!(
        "[host]\nplugins = \"plugins\"\nledger = \"memory\"\nplugin-state = \"memory\"\ncode-cache = false\n{}",
        way.section()
    );
    let settings = Settings::parse(&toml, &dir.path().join("paddock.toml")).unwrap();
    let rt = Runtime::new(settings).unwrap();
    let agent = rt.load("tooluser").unwrap();
    rt.wait_optimized(std::time::Duration::from_secs(600));
    let call = json!({"name": "bench/echo", "args": {"text": "hello"}});
    let mut times = Vec::with_capacity(calls);
    let mut left = WARMUP + calls;
    while left > 0 {
        let n = left.min(PER_INVOCATION);
        left -= n;
        let input = json!({"timed": true, "calls": vec![call.clone(); n]}).to_string();
        let outcome = rt.run(&agent, &input, &RunOptions::default()).await.unwrap();
        let output: Value = serde_json::from_str(outcome.result.as_ref().unwrap()).unwrap();
        for answer in output["calls"].as_array().unwrap() {
            assert_eq!(answer["text"], "hello", "{answer}");
            times.push(Duration::from_nanos(answer["ns"].as_u64().unwrap()));
        }
    }
    times.drain(..WARMUP);
    times
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn micros(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e7).round() / 10.0
}

fn main() {
    match std::env::var("PADDOCK_BENCH_MCP_SERVER").as_deref() {
        Ok("stdio") => return serve_stdio(),
        Ok("http") => return serve_http(),
        _ => {}
    }
    // `cargo bench` passes `--bench`; a filter may follow.
    let calls: usize = std::env::var("PADDOCK_BENCH_CALLS").ok().and_then(|n| n.parse().ok()).unwrap_or(2000);
    let tokio = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut rows = Vec::new();
    println!(
        "{:<6} {:>12} {:>12} {:>12} {:>12} {:>12} {:>12}",
        "way", "direct p50", "host p50", "added p50", "direct p99", "host p99", "added p99"
    );
    let server = HttpServer::start();
    for way in [Way::Stdio, Way::Http(server.1.clone())] {
        let mut direct = tokio.block_on(direct(&way, calls));
        let mut host = tokio.block_on(through_host(&way, calls));
        direct.sort();
        host.sort();
        let (d50, h50, d99, h99) =
            (quantile(&direct, 0.5), quantile(&host, 0.5), quantile(&direct, 0.99), quantile(&host, 0.99));
        let added = |h: Duration, d: Duration| micros(h) - micros(d);
        println!(
            "{:<6} {:>10} µs {:>9} µs {:>9.1} µs {:>9} µs {:>9} µs {:>9.1} µs",
            way.name(),
            micros(d50),
            micros(h50),
            added(h50, d50),
            micros(d99),
            micros(h99),
            added(h99, d99)
        );
        rows.push(json!({
            "way": way.name(), "calls": calls,
            "direct_us": { "p50": micros(d50), "p99": micros(d99) },
            "host_us": { "p50": micros(h50), "p99": micros(h99) },
            "added_us": { "p50": added(h50, d50), "p99": added(h99, d99) },
        }));
    }
    report::write("tools", &json!({ "rows": rows, "goal_added_p50_us": 50 }));
}
