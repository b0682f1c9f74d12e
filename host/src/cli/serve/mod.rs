//! `paddock serve`: keep the host up, reload plugins as their files change,
//! run triggers, and answer invocations over HTTP.
//!
//! Every route but `/v1/health` needs an API key ([`auth`]); the tenant a
//! request acts for is its key's.
//!
//! | method and path | role | what |
//! |---|---|---|
//! | `POST /v1/agents/{name}/run` | run | body = the input (JSON text) |
//! | `GET /v1/plugins` | run | what `paddock plugins list --json` shows |
//! | `GET /v1/health` | none | `{"status":"ok"}` |
//! | `POST /mcp` | run | MCP (Streamable HTTP): the tenant's agents as tools ([`mcp`]) |
//! | `GET /metrics` | admin | OpenMetrics text: the gateway's `paddock_llm_*`, the runtime's invocations, the HTTP requests |
//!
//! Flows, runs and approvals: [`flows`]; dead letters and questions:
//! [`dead`]. The blackboard: [`board`]. Usage, providers, tenants and plugin
//! approvals: [`operate`]. Reloading the settings: [`admin`].

mod access;
pub mod admin;
mod anthropic;
pub mod auth;
pub mod board;
mod console;
mod dead;
mod flows;
mod fronts;
#[cfg(test)]
mod fuzz;
mod in_flight;
mod listen;
mod mcp;
mod openai;
mod operate;
mod steps;

use super::{EXIT_CONFIG, EXIT_CRASH, EXIT_LOAD, EXIT_USAGE, fail};
use crate::config::{ServeAuth, Settings, Span};
use crate::keys::{Caller, Role};
use crate::plugins::LoadError;
use crate::runtime::{Reload, RunError, RunOptions, Runtime};
use crate::sandbox::InvokeError;
use auth::Auth;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// The file in `host.data` that tells other commands where the host serves.
pub const SERVE_FILE: &str = "serve.json";

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on, IP:PORT or localhost:PORT [default: serve.listen, 127.0.0.1:7700]; port 0 picks one
    #[arg(long, value_name = "ADDR", value_parser = crate::config::parse_listen)]
    listen: Option<SocketAddr>,
    /// How long file changes settle before a reload [default: serve.debounce, 50ms]
    #[arg(long, value_name = "DURATION", value_parser = Span::parse)]
    debounce: Option<Span>,
    /// The folder of flow specs `POST /v1/flows/NAME/runs` starts [default: serve.flows, flows]
    #[arg(long, value_name = "DIR")]
    flows: Option<PathBuf>,
}

pub async fn serve(mut settings: Settings, args: ServeArgs) -> u8 {
    if let Some(dir) = args.flows {
        settings.serve.flows = dir;
    }
    let listen = args.listen.unwrap_or(settings.serve.listen);
    if let Err(why) = crate::config::check_listen(&listen, settings.serve.auth) {
        return fail(EXIT_USAGE, format!("--listen: {why}"));
    }
    let debounce = args.debounce.map_or(settings.serve.debounce, |s| s.0);
    let data = settings.data_dir.clone();
    if let Err(e) = std::fs::create_dir_all(&data) {
        return fail(EXIT_CONFIG, format!("host.data: cannot create {}: {e}", data.display()));
    }
    // One host per data folder: the lock lasts as long as this process.
    let _lock = match lock_data(&data) {
        Ok(lock) => lock,
        Err(message) => return fail(EXIT_USAGE, message),
    };
    let (auth, local) = match authentication(&settings) {
        Ok(a) => a,
        Err(e) => return fail(EXIT_CONFIG, e),
    };
    let runtime = match Runtime::new(settings) {
        Ok(r) => r,
        Err(e) => return fail(EXIT_CRASH, format!("cannot start the host: {e:#}")),
    };
    check_os_limits(&runtime);
    let tenants = runtime.clone();
    auth.count_tenants_by(move |tenant| tenants.settings().tenants.bounds_key(tenant) == tenant);
    let watch = match runtime.watch(debounce).await {
        Ok(w) => w,
        Err(e) => return fail(EXIT_LOAD, e),
    };
    report_plugins(&runtime, &watch);
    let _triggers = crate::triggers::start(&runtime);
    // Runs interrupted by a crash continue here, at their first unfinished step.
    let flows = match crate::flow::Flows::open(runtime.clone()) {
        Ok(f) => f.with_hub(),
        Err(e) => return fail(EXIT_CONFIG, e),
    };
    let _retention = super::gc::spawn_retention(&flows);
    // On a shared store, this host runs its share of every host's fan-outs
    // (its own runs' items too).
    let _workers = flows.spawn_workers((runtime.settings().engine.max_instances / 2) as usize);
    match flows.resume_orphans() {
        Ok(resumed) if !resumed.is_empty() => eprintln!("resuming {} interrupted flow runs", resumed.len()),
        Ok(_) => {}
        Err(e) => eprintln!("error: cannot look for interrupted flow runs: {e}"),
    }
    // And later, those of hosts that die while this one serves.
    let _failover = flows.spawn_failover();

    let tls = match runtime.settings().serve.tls.as_ref().map(listen::Tls::load).transpose() {
        Ok(tls) => tls,
        Err(e) => return fail(EXIT_CONFIG, e),
    };
    let _tls_reload = tls.as_ref().map(listen::Tls::spawn_reload);
    // Connections are served on threads of their own (`fronts`).
    let threads = fronts::default_count(&runtime.settings());
    // Each front builds its provider client as it starts, not in its first request.
    let gateway = runtime.gateway().clone();
    let fronts = match fronts::Fronts::start(threads, Arc::new(move || gateway.prepare_thread())) {
        Ok(f) => f,
        Err(e) => return fail(EXIT_CRASH, format!("serve.threads: cannot start {threads} threads: {e}")),
    };
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => return fail(EXIT_USAGE, format!("cannot listen on {listen}: {e}")),
    };
    let address = listener.local_addr().unwrap_or(listen);
    let marker = data.join(SERVE_FILE);
    let scheme = listen::scheme(&tls);
    let record = serde_json::json!({
        "pid": std::process::id(), "address": address.to_string(), "scheme": scheme, "token": local,
    });
    if let Err(e) = write_private(&marker, &record.to_string()) {
        tracing::warn!("cannot write {}: {e}", marker.display());
    }
    println!("serving on {scheme}://{address}");
    let limits = runtime.settings().serve.connections;
    let _upkeep = auth.spawn_upkeep();
    let _hangup = admin::spawn_hangup(runtime.clone());
    let drain = runtime.settings().serve.drain;
    let routes = routes(runtime, flows, auth, tls.is_some());
    listen::serve(listener, &fronts, routes, tls, limits, shutdown(), drain).await;
    drop(watch);
    remove_marker(&marker);
    0
}

/// Every route: all but health and the console's page and sign-in behind
/// the key check; `tls` when the host serves HTTPS (the console's cookie is then `Secure`).
fn routes(runtime: Runtime, flows: crate::flow::Flows, auth: Auth, tls: bool) -> Router {
    let console = auth.console(tls);
    let limit = runtime.settings().caps.io_bytes.try_into().unwrap_or(usize::MAX);
    let http = Arc::new(access::HttpMetrics::default());
    let hub = flows.hub().cloned();
    let operate = operate::routes(runtime.clone());
    let board = board::routes(runtime.clone());
    let mcp = mcp::service(runtime.clone(), flows.clone());
    Router::new()
        .route("/v1/agents/{name}/run", post(run))
        .route("/v1/plugins", get(plugins))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(limit))
        .layer(Extension(http.clone()))
        .layer(Extension(hub))
        .with_state(runtime.clone())
        .merge(flows::routes(flows, limit))
        .merge(admin::routes(runtime.clone()))
        .merge(operate)
        .merge(board)
        .merge(openai::routes(runtime.clone()))
        .merge(anthropic::routes(runtime))
        .route_service("/mcp", mcp)
        .merge(Router::new().route("/console/whoami", get(console::whoami)).with_state(console.clone()))
        .route_layer(axum::middleware::from_fn_with_state(auth, auth::authenticate))
        .merge(console::routes(console))
        // Load balancers' probes carry no key; the answer tells nothing.
        .route("/v1/health", get(|| async { axum::Json(serde_json::json!({ "status": "ok" })) }))
        .fallback(unrouted)
        .layer(axum::middleware::from_fn_with_state(http, access::log))
}

/// A path no route has (`/v1/approvals/` with no id): 404 with the API's
/// error body, where axum's own answer has an empty one.
async fn unrouted(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    error(StatusCode::NOT_FOUND, "not-found", format!("no route {method} {}", uri.path()))
}

/// Prints what loaded at start, then each reload as it happens.
fn report_plugins(runtime: &Runtime, watch: &crate::runtime::Watch) {
    for status in runtime.plugins() {
        match (&status.serving, &status.held, &status.last_error) {
            (Some(v), _, _) => eprintln!("loaded {} {} ({})", status.name, v.version, v.compiled.describe()),
            (None, Some(h), _) => {
                eprintln!("held {} {}: asks for {}", status.name, h.version.version, h.asks.join(", "))
            }
            // A broken manifest's message begins with its file, which is its name here.
            (None, None, Some(e)) if e.message.starts_with(&status.name) => eprintln!("error: {}", e.message),
            (None, None, Some(e)) => eprintln!("error: {}: {}", status.name, e.message),
            (None, None, None) => {}
        }
    }
    let mut events = watch.events();
    tokio::spawn(async move {
        while let Ok((name, reload)) = events.recv().await {
            match reload {
                Reload::Swapped { from, to } => {
                    eprintln!("reloaded {name}: {} -> {to}", from.as_deref().unwrap_or("none"))
                }
                Reload::Held { version, asks } => eprintln!(
                    "held {name} {version}: asks for {}; approve with `paddock plugins approve {name} {version}`",
                    asks.join(", ")
                ),
                Reload::Failed(message) => eprintln!("error: {name}: {message} (the serving version is kept)"),
                Reload::Removed => eprintln!("removed {name}"),
                Reload::Unchanged => {}
            }
        }
    });
}

/// How the host knows its callers, and the key of this machine's CLI (an
/// admin key of the default tenant that lives only in this process and in
/// `serve.json`, which only the data folder's owner may read).
fn authentication(settings: &Settings) -> Result<(Auth, Option<String>), String> {
    if settings.serve.auth == ServeAuth::None {
        return Ok((Auth::open(&settings.default_tenant, settings.serve.requests), None));
    }
    let ring = super::keys::open(settings).map_err(|e| e.to_string())?;
    if ring.working() == 0 {
        eprintln!(
            "note: no API keys yet, so every request but /v1/health is refused (401); make one with `paddock keys create --tenant NAME --role run`"
        );
    }
    let local = ring.ephemeral(&settings.default_tenant, Role::Admin, "local-cli").map_err(|e| e.to_string())?;
    Ok((Auth::keys(Arc::new(ring), settings.serve.requests), Some(local)))
}

/// The file in `host.data` whose lock says a host serves the folder.
const LOCK_FILE: &str = "serve.lock";

/// Takes the data folder for this process, or says who holds it.
fn lock_data(data: &std::path::Path) -> Result<std::fs::File, String> {
    let path = data.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            let who = serving(data).map_or_else(
                || "another paddock serve".to_string(),
                |s| format!("paddock serve (pid {}, {}://{})", s.pid, s.scheme, s.address),
            );
            Err(format!(
                "{who} already serves the data folder {}; stop it, or give this host another host.data",
                data.display()
            ))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(format!("cannot lock {}: {e}", path.display())),
    }
}

/// Writes `text` to `path`, readable and writable by its owner alone.
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    options.open(path)?.write_all(text.as_bytes())
}

/// A host serving a data folder: where, and the key its CLI uses.
pub struct Serving {
    /// Its process id.
    pub pid: u64,
    /// `127.0.0.1:PORT`.
    pub address: String,
    /// `http` or `https`.
    pub scheme: String,
    /// The bearer token for it, when it checks keys.
    pub token: Option<String>,
}

impl Serving {
    /// A client for it. Over TLS to a loopback address it takes the
    /// certificate unchecked (no one else is on that wire, and the
    /// certificate names the public host, not 127.0.0.1); to any other
    /// address it checks it, so the CLI's admin key never goes to an
    /// impostor.
    pub fn client(&self) -> Result<reqwest::Client, String> {
        self.client_timed(Some(std::time::Duration::from_secs(5)))
    }

    /// The same, with requests cut after `timeout` (never, for `None`);
    /// connecting always times out after 5 s.
    pub fn client_timed(&self, timeout: Option<std::time::Duration>) -> Result<reqwest::Client, String> {
        crate::gateway::install_crypto();
        let loopback = self.address.parse::<SocketAddr>().is_ok_and(|a| a.ip().is_loopback());
        let mut builder = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(5))
            .danger_accept_invalid_certs(self.scheme == "https" && loopback);
        if let Some(timeout) = timeout {
            builder = builder.timeout(timeout);
        }
        builder.build().map_err(|e| e.to_string())
    }

    /// A client request to `path` on it, with its key.
    pub fn request(&self, client: &reqwest::Client, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = client.request(method, format!("{}://{}{path}", self.scheme, self.address));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }
}

/// The host serving from `data`, if one is running.
pub fn serving(data: &std::path::Path) -> Option<Serving> {
    let text = std::fs::read_to_string(data.join(SERVE_FILE)).ok()?;
    let record: serde_json::Value = serde_json::from_str(&text).ok()?;
    let pid = record["pid"].as_u64()?;
    // A record left by a host that died is ignored.
    if !PathBuf::from(format!("/proc/{pid}")).exists() {
        return None;
    }
    // A host listening on every address is reached through loopback.
    let mut address: SocketAddr = record["address"].as_str()?.parse().ok()?;
    if address.ip().is_unspecified() {
        address.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let scheme = record["scheme"].as_str().unwrap_or("http").to_string();
    let token = record["token"].as_str().map(String::from);
    Some(Serving { pid, address: address.to_string(), scheme, token })
}

fn remove_marker(marker: &std::path::Path) {
    let ours = std::fs::read_to_string(marker)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .is_some_and(|r| r["pid"].as_u64() == Some(u64::from(std::process::id())));
    if ours {
        let _ = std::fs::remove_file(marker);
    }
}

/// Completes at the first Ctrl-C or SIGTERM; a second one ends the process
/// at once (exit code 130) instead of waiting out the drain.
async fn shutdown() {
    stop_signal().await;
    tokio::spawn(async {
        stop_signal().await;
        eprintln!("stopping at once: a second signal");
        std::process::exit(130);
    });
}

pub(super) async fn stop_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

/// The error body every route answers with.
pub fn error(status: StatusCode, kind: &str, message: impl std::fmt::Display) -> Response {
    let body = serde_json::json!({ "error": { "kind": kind, "message": message.to_string() } });
    (status, axum::Json(body)).into_response()
}

/// 429 for a run whose tenant (or agent) stayed at its `max-concurrent`
/// for as long as the run could wait: a slot may free in a second.
fn busy(message: String) -> Response {
    auth::retry_after(error(StatusCode::TOO_MANY_REQUESTS, "busy", message), std::time::Duration::from_secs(1))
}

/// Why an agent a caller named did not run.
enum NotRun {
    /// No plugin has the name (or it is not a name).
    Missing(String),
    /// It is there but does not load.
    NotServing(String),
    /// The run's options are wrong.
    Options(String),
    /// The tenant's policy refused it (not granted).
    Refused(String),
    /// A concurrency cap stayed full for as long as it could wait.
    Busy(String),
}

/// Runs the plugin `name` of the plugins folder for `caller`'s tenant on
/// `input`, for every door: only a name, since a path would let a caller load
/// any file.
async fn run_for(
    runtime: &Runtime,
    caller: &Caller,
    name: &str,
    input: &str,
) -> Result<(Arc<crate::runtime::Agent>, crate::sandbox::Outcome), NotRun> {
    // An agent the tenant may not run is answered as one that is not there:
    // a caller learns nothing of other tenants' agents, nor of the folder.
    // `run` checks the tenant's policy itself, so only a failure asks again.
    let missing = || NotRun::Missing(unknown_agent(runtime, caller, name));
    if name.is_empty() || name.contains(['/', '\\', '.']) {
        return Err(missing());
    }
    let agent = match runtime.load_off_thread(name).await {
        Ok(agent) => agent,
        Err(LoadError::NoPlugin { .. }) => return Err(missing()),
        Err(_) if !may_run(runtime, caller, name) => return Err(missing()),
        Err(e) => return Err(NotRun::NotServing(e.to_string())),
    };
    let options = RunOptions { tenant: Some(caller.tenant.to_string()), ..RunOptions::default() };
    match runtime.run(&agent, input, &options).await {
        Ok(outcome) => Ok((agent, outcome)),
        Err(_) if !may_run(runtime, caller, name) => Err(missing()),
        Err(RunError::Load(e)) => Err(NotRun::NotServing(e.to_string())),
        Err(RunError::Options(m)) => Err(NotRun::Options(m)),
        Err(RunError::Refused(m)) => Err(NotRun::Refused(m)),
        Err(RunError::Busy(m)) => Err(NotRun::Busy(m)),
    }
}

/// Whether `caller`'s tenant may run the agent `name`.
fn may_run(runtime: &Runtime, caller: &Caller, name: &str) -> bool {
    runtime.settings().tenants.get(&caller.tenant).is_ok_and(|policy| policy.check_agent(name).is_ok())
}

/// The answer for an agent `caller` cannot run because, for its tenant, it
/// is not there: with the nearest name of those serving that it may run, if
/// one is near.
fn unknown_agent(runtime: &Runtime, caller: &Caller, name: &str) -> String {
    let plugins = runtime.plugins();
    let serving = plugins.iter().filter(|p| p.serving.is_some()).map(|p| p.name.as_str());
    let runnable = serving.filter(|n| may_run(runtime, caller, n));
    format!(
        "no agent named {name:?} for tenant {:?}{}",
        caller.tenant,
        crate::core::names::did_you_mean(name, runnable)
    )
}

async fn run(
    State(runtime): State<Runtime>,
    Path(name): Path<String>,
    Extension(caller): Extension<Caller>,
    input: String,
) -> Response {
    // Checked, not kept: the agent is handed the text.
    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&input) {
        return error(StatusCode::BAD_REQUEST, "bad-request", format!("the input is not valid JSON: {e}"));
    }
    let (agent, outcome) = match run_for(&runtime, &caller, &name, &input).await {
        Ok(ran) => ran,
        Err(NotRun::Missing(m)) => return error(StatusCode::NOT_FOUND, "not-found", m),
        Err(NotRun::NotServing(m)) => return error(StatusCode::SERVICE_UNAVAILABLE, "not-serving", m),
        Err(NotRun::Options(m)) => return error(StatusCode::BAD_REQUEST, "bad-request", m),
        Err(NotRun::Refused(m)) => return error(StatusCode::FORBIDDEN, "denied", m),
        Err(NotRun::Busy(m)) => return busy(m),
    };
    let (status, output, err) = match &outcome.result {
        Ok(output) => (StatusCode::OK, Some(output.as_str()), None),
        Err(e @ InvokeError::Failed { .. }) => (StatusCode::UNPROCESSABLE_ENTITY, None, Some(("failed", e))),
        Err(e @ InvokeError::Limit { .. }) => (StatusCode::UNPROCESSABLE_ENTITY, None, Some(("limit", e))),
        Err(e @ InvokeError::Crashed { .. }) => (StatusCode::INTERNAL_SERVER_ERROR, None, Some(("crashed", e))),
        Err(e @ InvokeError::Start { .. }) => (StatusCode::SERVICE_UNAVAILABLE, None, Some(("start", e))),
    };
    // An output that is JSON is given as JSON, as the agent wrote it, not
    // as a string of it: no client has to parse the answer twice. Text
    // stays a string.
    let output = output.map(|text| serde_json::from_str(text).map_or(Output::Text(text), Output::Json));
    let error = err.map(|(kind, e)| Failure { kind, message: e.to_string() });
    let body = Ran {
        agent: &agent.name,
        elapsed_us: outcome.elapsed.as_micros() as u64,
        error,
        fuel_consumed: outcome.fuel_consumed,
        output,
        run: &outcome.run,
        version: &outcome.version,
    };
    (status, [("x-paddock-version", outcome.version.to_string())], axum::Json(body)).into_response()
}

/// The answer to `POST /v1/agents/NAME/run`, its keys in the alphabetical
/// order they had when it was built as a JSON value.
#[derive(serde::Serialize)]
struct Ran<'a> {
    agent: &'a str,
    elapsed_us: u64,
    error: Option<Failure>,
    fuel_consumed: u64,
    output: Option<Output<'a>>,
    run: &'a str,
    version: &'a str,
}

#[derive(serde::Serialize)]
struct Failure {
    kind: &'static str,
    message: String,
}

#[derive(serde::Serialize)]
#[serde(untagged)]
enum Output<'a> {
    Json(&'a serde_json::value::RawValue),
    Text(&'a str),
}

/// The plugins: every one for an admin key, those its tenant may run for the others.
async fn plugins(State(runtime): State<Runtime>, Extension(caller): Extension<Caller>) -> Response {
    let mut plugins = runtime.plugins();
    if !caller.role.allows(Role::Admin) {
        plugins.retain(|p| may_run(&runtime, &caller, &p.name));
    }
    axum::Json(plugins).into_response()
}

async fn metrics(
    State(runtime): State<Runtime>,
    Extension(caller): Extension<Caller>,
    Extension(http): Extension<Arc<access::HttpMetrics>>,
    Extension(hub): Extension<Option<Arc<crate::flow::hub::Hub>>>,
) -> Response {
    if let Err(r) = auth::require(&caller, Role::Admin, "read the host's metrics") {
        return r;
    }
    let mut text = String::new();
    runtime.gateway().render_metrics(&mut text);
    runtime.metrics().render_into(&mut text);
    runtime.tools().metrics().render_into(&mut text);
    runtime.blackboard().metrics().render_into(&mut text);
    if let Some(hub) = hub {
        hub.metrics().render_into(&mut text);
    }
    http.render_into(&mut text);
    text.push_str("# EOF\n");
    ([("content-type", "application/openmetrics-text; version=1.0.0; charset=utf-8")], text).into_response()
}

/// Raises this process's limit on open files as far as it may, and warns,
/// naming the knobs, when that or the kernel's mappings fall short of what
/// the settings may hold at once.
fn check_os_limits(runtime: &Runtime) {
    use crate::runtime::engine::os;
    let settings = runtime.settings();
    let (instances, connections) = (settings.engine.max_instances, settings.serve.connections.max_connections);
    match os::raise_open_files() {
        Ok(files) => {
            if let Some(warning) = os::open_files_warning(files, instances, connections) {
                tracing::warn!("{warning}");
            }
        }
        Err(e) => tracing::warn!("cannot read this process's limit on open files: {e}"),
    }
    if let Some(warning) = os::max_map_count().and_then(|maps| os::map_count_warning(maps, instances)) {
        tracing::warn!("{warning}");
    }
}
