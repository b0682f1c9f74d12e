//! The host in one value: engine, linker, plugins and services. Loads agents
//! by name or path and runs invocations; also runs the agents one agent calls.

use crate::caps::Lent;
use crate::caps::agents::{CallBounds, CallerScope, Dispatch};
use crate::caps::approval::Approvals;
use crate::engine::{self, EpochTicker};
use crate::plugins::book::Book;
use crate::plugins::cache::CodeCache;
use crate::plugins::load::{self, Inspection, LoadError};
use crate::plugins::{Registry, Versions};
use crate::sandbox::{self, AgentState, CpuScheduler, Invocation, InvokeError, Outcome};
use arc_swap::ArcSwap;
use paddock_blackboard::{Blackboard, BoardLimits, PostgresBackend, SqliteBackend};
use paddock_config::{BoardStore, Compiler, DirGrant, Limits, Requested, Settings};
use paddock_core::TRACE_TARGET;
use paddock_core::clock::SystemClock;
use paddock_core::names::validate_tenant;
use paddock_gateway::Gateway;
use paddock_quota::run::RunBudget;
use paddock_quota::{Budgets, Ledger};

mod agent;
mod guests;
mod live;
mod metrics;
mod reconfigure;
mod tiers;
mod watch;

pub use agent::{Agent, Code};
pub use live::{ErrorStatus, HeldStatus, PluginStatus, Reload, VersionStatus};
pub use metrics::{Activity, RuntimeMetrics, TenantActivity, duration_histogram};
use paddock_tenants::{Admission, Grants, TenantCeiling, Tenants};
pub use reconfigure::Reconfigured;
use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use tracing::Instrument;
use wasmtime::Engine;
use wasmtime::component::Linker;
pub use watch::Watch;

/// Opens the blackboard `settings` name: in memory, the durable file, or PostgreSQL.
/// With no tenant named in `[tenants]`, every tenant holds `[blackboard]`'s
/// quota together (beside each its own); a named tenant has its own only.
pub fn open_blackboard(settings: &Settings) -> Result<Blackboard, String> {
    let unnamed = BoardLimits { shared: !settings.tenants.configured(), ..settings.board };
    let board = match &settings.board_store {
        BoardStore::Memory => Blackboard::new(unnamed),
        BoardStore::Durable(path) => {
            let backend = SqliteBackend::open(path).map_err(|e| format!("blackboard.path: {e}"))?;
            Blackboard::with_backend(unnamed, Arc::new(backend))
        }
        BoardStore::Postgres(database) => {
            let pg = paddock_postgres::Postgres::shared(database).map_err(|e| format!("blackboard: {e}"))?;
            let backend = PostgresBackend::open(pg).map_err(|e| format!("blackboard: {e}"))?;
            Blackboard::with_backend(unnamed, Arc::new(backend))
        }
    };
    // A tenant's policy may only lower the host's board limits.
    let mut tenant_limits: HashMap<String, BoardLimits> = settings
        .tenants
        .iter()
        .map(|p| {
            let mut limits = settings.board;
            limits.per_tenant = p.board_max_keys.is_some() || p.board_max_bytes.is_some();
            limits.max_keys = p.board_max_keys.map_or(limits.max_keys, |k| k.min(limits.max_keys));
            limits.max_bytes = p.board_max_bytes.map_or(limits.max_bytes, |b| b.min(limits.max_bytes));
            (p.name.clone(), limits)
        })
        .collect();
    // The host's own cursors are never refused for what tenants hold.
    tenant_limits.insert(paddock_core::names::SYSTEM_NAMESPACE.to_string(), settings.board);
    Ok(board.with_tenant_limits(tenant_limits))
}

/// A new run id: 12 hex digits of milliseconds since 1970, then 8 random
/// ones, so ids sort by start time and do not collide in practice.
pub fn new_run_id() -> Arc<str> {
    let millis = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    run_id(millis as u64, fastrand::u32(..))
}

/// The id of a run started at `millis` with `random`: [`new_run_id`]'s
/// digits, written without `format!` (every invocation makes one).
fn run_id(millis: u64, random: u32) -> Arc<str> {
    let id = (u128::from(millis & 0xffff_ffff_ffff) << 32) | u128::from(random);
    let mut digits = [0u8; 20];
    for (i, digit) in digits.iter_mut().rev().enumerate() {
        *digit = b"0123456789abcdef"[((id >> (4 * i)) & 0xf) as usize];
    }
    Arc::from(std::str::from_utf8(&digits).expect("hex digits are ASCII"))
}

/// Options of one invocation.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// The tenant; the configured default when `None`.
    pub tenant: Option<String>,
    /// The run this invocation belongs to; a new id when `None`.
    pub run: Option<String>,
    /// Limits set by the operator for this run (bounded by the ceiling).
    pub overrides: Requested,
    /// Directories granted for this run, besides the configured ones.
    pub dirs: Vec<DirGrant>,
    /// Records (or replays) the invocation's host calls.
    pub journal: Option<Arc<paddock_journal::Tape>>,
    /// The budget its LLM calls (and those of the agents it calls) spend.
    pub budget: Option<Arc<RunBudget>>,
    /// Environment variables the agent sees.
    pub env: Vec<(String, String)>,
    /// Calls `compensate` instead of `run` (a saga undoing a step).
    pub compensate: bool,
    /// How long it may wait for a slot under its tenant's and agent's
    /// `max-concurrent`: its timeout when `None`, as long as it takes for
    /// [`Duration::MAX`](std::time::Duration::MAX).
    pub slot_wait: Option<std::time::Duration>,
}

/// Why a run could not even start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The agent could not be loaded.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The options are wrong (a limit above the ceiling, a bad tenant name).
    #[error("{0}")]
    Options(String),
    /// The tenant's policy refused the run: no such tenant, an agent it may
    /// not run. The text names the rule.
    #[error("{0}")]
    Refused(String),
    /// A concurrency cap of its tenant or agent stayed full for as long as
    /// it could wait. The text names the cap and its key.
    #[error("{0}")]
    Busy(String),
}

/// Who an invocation runs for: its tenant, its run, and its callers
/// (outermost first, ending with itself).
struct Scope {
    tenant: Arc<str>,
    run: Arc<str>,
    chain: Vec<Arc<str>>,
    journal: Option<Arc<paddock_journal::Tape>>,
    budget: Option<Arc<RunBudget>>,
    env: Vec<(String, String)>,
    compensate: bool,
    /// `agents.call`s made in the call tree this invocation is part of.
    made: Arc<std::sync::atomic::AtomicU32>,
}

/// The host.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    /// Swapped whole by [`Runtime::reconfigure`]; a run reads it once.
    settings: ArcSwap<Settings>,
    engine: Engine,
    linker: Linker<AgentState>,
    /// The linker with `wasi:http`, for agents whose manifest asks for hosts.
    http_linker: Linker<AgentState>,
    registry: Registry,
    board: Arc<Blackboard>,
    gateway: Gateway,
    ledger: Option<Arc<Ledger>>,
    admission: Admission,
    live: live::Live,
    cache: Option<Arc<CodeCache>>,
    /// Winch's engine and the background compiles, on a tiered host.
    tiers: Option<tiers::Tiers>,
    book: Book,
    /// Versions runs are pinned to, kept for resuming anywhere.
    versions: Versions,
    /// Kept versions loaded here (not serving), by (name, version).
    pinned: parking_lot::Mutex<HashMap<(String, String), Arc<Agent>>>,
    cpu: Arc<CpuScheduler>,
    approvals: std::sync::OnceLock<Arc<dyn Approvals>>,
    tools: Arc<paddock_tools::Toolbox>,
    metrics: RuntimeMetrics,
    /// A one-shot host (`paddock run`): no version held, none recorded as accepted.
    one_shot: std::sync::atomic::AtomicBool,
    _ticker: EpochTicker,
}

impl Runtime {
    /// Builds a host from `settings`.
    pub fn new(settings: Settings) -> wasmtime::Result<Runtime> {
        tracing::debug!(config = %settings.source_name(), data = %settings.data_dir.display(), "settings");
        let board = open_blackboard(&settings).map_err(wasmtime::Error::msg)?;
        let engine = engine::build(&settings.engine, &settings.ceiling)?;
        let linker = sandbox::linker(&engine)?;
        let http_linker = sandbox::http_linker(&engine)?;
        let ticker = EpochTicker::start(&engine, settings.engine.epoch_tick)
            .map_err(|e| wasmtime::format_err!("cannot start the epoch thread: {e}"))?;
        let board = Arc::new(board);
        // Expired keys read as absent anyway; the sweeper also removes the ones
        // nobody touches, freeing quota and telling watchers. It needs a tokio
        // runtime, and stops when the board is dropped.
        if tokio::runtime::Handle::try_current().is_ok() {
            paddock_blackboard::spawn_sweeper(&board, paddock_blackboard::SWEEP_EVERY);
        }
        let ledger = Ledger::open(&settings.ledger, budgets(&settings.tenants), Arc::new(SystemClock))
            .map_err(|e| wasmtime::format_err!("host.ledger: {e}"))?;
        let gateway =
            Gateway::with(&settings.gateway, Arc::new(SystemClock), ledger.clone()).map_err(wasmtime::Error::msg)?;
        let book =
            Book::open_at(&settings.plugins.book).map_err(|e| wasmtime::format_err!("host.plugin-state: {e}"))?;
        let versions = Versions::open_at(&settings.plugins.book, &settings.data_dir)
            .map_err(|e| wasmtime::format_err!("host.plugin-state: {e}"))?;
        let metrics = RuntimeMetrics::default();
        let cache = settings.plugins.code_cache.as_ref().map(|dir| Arc::new(CodeCache::new(dir, &engine)));
        let tiers = match settings.engine.compiler {
            Compiler::Tiered => Some(tiers::Tiers::start(
                &settings,
                tiers::Optimizer {
                    engine: engine.clone(),
                    linker: linker.clone(),
                    http_linker: http_linker.clone(),
                    cache: cache.clone(),
                    loads: metrics.code_cache.clone(),
                },
            )?),
            Compiler::Cranelift | Compiler::Winch => None,
        };
        let inner = Inner {
            gateway,
            ledger: Some(ledger),
            admission: Admission::with_share(settings.engine.max_instances / 2),
            registry: Registry::of(&settings),
            board,
            live: live::Live::default(),
            cache,
            tiers,
            book,
            versions,
            pinned: Default::default(),
            cpu: CpuScheduler::new(
                settings.engine.cpu_slots,
                settings.engine.epoch_tick,
                fuel_shares(&settings.tenants),
            ),
            approvals: std::sync::OnceLock::new(),
            tools: Arc::new(paddock_tools::Toolbox::new(&settings.mcp)),
            metrics,
            one_shot: std::sync::atomic::AtomicBool::new(false),
            settings: ArcSwap::from_pointee(settings),
            engine,
            linker,
            http_linker,
            _ticker: ticker,
        };
        Ok(Runtime { inner: Arc::new(inner) })
    }

    /// The settings it runs with now.
    pub fn settings(&self) -> Arc<Settings> {
        self.inner.settings.load_full()
    }

    /// The blackboard of every tenant.
    pub fn blackboard(&self) -> &Arc<Blackboard> {
        &self.inner.board
    }

    /// The LLM gateway.
    pub fn gateway(&self) -> &Gateway {
        &self.inner.gateway
    }

    /// The MCP servers' tools agents call, their rates and metrics.
    pub fn tools(&self) -> &Arc<paddock_tools::Toolbox> {
        &self.inner.tools
    }

    /// Invocations by tenant, agent and outcome, their durations and fuel.
    pub fn metrics(&self) -> &RuntimeMetrics {
        &self.inner.metrics
    }

    /// Sends the approval questions of agents to `service` (the flow store's);
    /// without one they are refused. The first service set stays.
    pub fn set_approvals(&self, service: Arc<dyn Approvals>) {
        let _ = self.inner.approvals.set(service);
    }

    /// The budget ledger.
    pub fn ledger(&self) -> Option<&Arc<Ledger>> {
        self.inner.ledger.as_ref()
    }

    /// The plugins folder.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// The compiled-code cache, unless it is off.
    pub fn code_cache(&self) -> Option<&CodeCache> {
        self.inner.cache.as_deref()
    }

    /// Makes this a one-shot host, as `paddock run` is: a version asking for
    /// more than the one last accepted runs, with a warning naming what a
    /// serving host would hold it for, and nothing is recorded as accepted.
    /// Holds stop what lands in a folder a host serves from going live
    /// unseen; a one-shot run is the operator's own act, in plain sight.
    /// Nor is optimized code compiled in the background for a version
    /// loaded on baseline code: the process ends before it could serve it;
    /// the baseline code is stored in the cache ([`Runtime::wait_background`]).
    pub fn set_one_shot(&self) {
        self.inner.one_shot.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    fn one_shot(&self) -> bool {
        self.inner.one_shot.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Waits, at most `timeout`, for what this host queued in the background
    /// to end; whether it did. On a one-shot host (`set_one_shot`) that is
    /// storing the baseline code it compiled in the code cache, so that the
    /// next process maps it instead of compiling again.
    pub fn wait_background(&self, timeout: std::time::Duration) -> bool {
        self.wait_optimized(timeout)
    }

    /// Waits until the optimized code of every version serving baseline code
    /// is compiled and swapped in (or failed), at most `timeout`; whether it
    /// is. At once `true` on a host that is not tiered.
    pub fn wait_optimized(&self, timeout: std::time::Duration) -> bool {
        self.inner.tiers.as_ref().is_none_or(|t| t.wait(timeout))
    }

    /// Inspects a file: imports, exports, and whether it fits the world.
    pub fn inspect(&self, path: &Path) -> Result<Inspection, LoadError> {
        load::inspect(&self.inner.engine, &self.inner.linker, path)
    }

    /// Runs `agent` once with `input`: checks the tenant's policy, waits for
    /// admission under its concurrency caps, then invokes.
    pub async fn run(&self, agent: &Agent, input: &str, options: &RunOptions) -> Result<Outcome, RunError> {
        let s = self.inner.settings.load_full();
        let tenant = options.tenant.clone().unwrap_or_else(|| s.default_tenant.clone());
        validate_tenant(&tenant).map_err(|e| RunError::Options(e.to_string()))?;
        let policy = s.tenants.get(&tenant).map_err(|e| RunError::Refused(e.to_string()))?;
        policy.check_agent(&agent.name).map_err(|e| RunError::Refused(e.to_string()))?;
        let ceiling = policy.ceiling.apply(&s.ceiling);
        let limits =
            agent.limits_under(&s).capped(&ceiling).with_overrides(&ceiling, &options.overrides).map_err(|e| {
                RunError::Options(if policy.ceiling == TenantCeiling::default() {
                    e.to_string()
                } else {
                    format!("{e} (lowered by tenants.{}.ceiling)", policy.name)
                })
            })?;
        let grants = agent.grants(&policy);
        let mut dirs = self.operator_dirs(&agent.name, &grants);
        dirs.extend(options.dirs.iter().cloned());
        let _admitted = self
            .inner
            .admission
            .admit(&policy, &agent.name, options.slot_wait.unwrap_or(limits.timeout))
            .await
            .map_err(|e| RunError::Busy(e.to_string()))?;
        let run = options.run.as_deref().map_or_else(new_run_id, Arc::from);
        let env = run_env(&options.env, &run);
        let tenant: Arc<str> = Arc::from(tenant);
        let scope = Scope {
            tenant: tenant.clone(),
            run,
            chain: vec![agent.name.clone()],
            journal: options.journal.clone(),
            budget: options.budget.clone(),
            env,
            compensate: options.compensate,
            made: Arc::default(),
        };
        let outcome = self.invoke(agent, input, scope, limits, dirs, &grants).await;
        if let Err(InvokeError::Limit { limit, .. }) = &outcome.result {
            self.inner.metrics.limit_hit(&tenant, &agent.name, limit.name());
        }
        let result = outcome_name(&outcome);
        let seconds = outcome.elapsed.as_secs_f64();
        self.inner.metrics.record(&tenant, &agent.name, result, seconds, outcome.fuel_consumed);
        tracing::info!(
            target: "paddock::invoke",
            agent = &*agent.name,
            version = &*outcome.version,
            tenant = &*tenant,
            run = &*outcome.run,
            outcome = result,
            fuel = outcome.fuel_consumed,
            ms = (outcome.elapsed.as_secs_f64() * 1e6).round() / 1e3,
            "invocation"
        );
        Ok(outcome)
    }

    /// The directories an invocation gets: the operator's `[agents.NAME]`
    /// grants and the tenant's directories the agent asked for.
    fn operator_dirs(&self, agent: &str, grants: &Grants) -> Vec<DirGrant> {
        let mut dirs = self.inner.settings.load().agents.get(agent).map(|p| p.dirs.clone()).unwrap_or_default();
        dirs.extend(grants.dirs.iter().cloned());
        dirs
    }

    fn invoke(
        &self,
        agent: &Agent,
        input: &str,
        scope: Scope,
        limits: Limits,
        dirs: Vec<DirGrant>,
        grants: &Arc<Grants>,
    ) -> impl Future<Output = Outcome> + Send + 'static {
        let s = self.inner.settings.load();
        let Scope { tenant, run, chain, journal, budget, env, compensate, made } = scope;
        agent.invocations.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let lent = Lent {
            board: self.inner.board.namespace(&tenant),
            grants: grants.clone(),
            requested: agent.requested.clone(),
            policy: s.agents.get(&*agent.name).cloned().unwrap_or_default(),
            chain,
            call_bounds: CallBounds { max_depth: s.max_call_depth, max_calls: s.max_agent_calls, made },
            dispatch: Some(Arc::new(self.clone()) as Arc<dyn Dispatch>),
            gateway: Some(self.inner.gateway.clone()),
            approvals: self.inner.approvals.get().cloned(),
            tools: Some(self.inner.tools.clone()),
            // Looked up only for an agent that asks for tools: every invocation comes here.
            tool_rate: (!agent.requested.tools.is_empty())
                .then(|| s.tenants.get(&tenant).ok().and_then(|p| p.tool_calls_per_minute))
                .flatten(),
            // Only an agent that asks for hosts can send a request.
            count_http: (!agent.requested.http.is_empty()).then(|| self.inner.metrics.http_counter(&tenant)),
        };
        let invocation = Invocation {
            agent: agent.name.clone(),
            version: agent.version.clone(),
            cpu: self.inner.cpu.ticket(tenant.clone()),
            counted: match s.tenants.bounds_key(&tenant) {
                paddock_core::names::UNNAMED => paddock_core::names::UNNAMED.into(),
                _ => tenant.clone(),
            },
            tenant,
            run,
            limits,
            caps: s.caps,
            table_elements: s.engine.max_table_elements.into(),
            instances: s.engine.max_core_instances as usize,
            tables: s.engine.max_tables as usize,
            dirs,
            lent,
            journal,
            budget,
            env,
            compensate,
        };
        let (code, input) = (agent.code(), input.to_string());
        // Its parent is the span current here: the HTTP request, a flow step,
        // or the `agents.call` of the agent that called this one.
        let span = tracing::info_span!(
            target: TRACE_TARGET,
            "invoke",
            tenant = %invocation.tenant,
            agent = %invocation.agent,
            version = %invocation.version,
            run = %invocation.run,
            depth = invocation.lent.chain.len() as i64,
            outcome = tracing::field::Empty,
            fuel = tracing::field::Empty,
        );
        // Counted in `paddock_invocations_in_flight` until it ends.
        let running = self.inner.metrics.running(&invocation.tenant);
        // A tenant alone on the host starts where it was asked: it has nobody
        // to be kept from, and a hand-over costs it CPU on every request.
        let busy = running.beside() >= guests::busy() && self.inner.metrics.shared();
        let work = async move {
            let outcome = sandbox::invoke(&code.pre, invocation, &input).await;
            drop(running);
            let span = tracing::Span::current();
            span.record("outcome", outcome_name(&outcome));
            // Signed: `tracing-opentelemetry` exports an unsigned field as text.
            span.record("fuel", i64::try_from(outcome.fuel_consumed).unwrap_or(i64::MAX));
            outcome
        }
        .instrument(span);
        // On the guest threads, so the host's own threads stay free for requests.
        guests::run(work, busy)
    }
}

impl Dispatch for Runtime {
    fn call(
        &self,
        caller: CallerScope,
        agent: String,
        input: String,
    ) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send + 'static>> {
        let runtime = self.clone();
        let CallerScope { tenant, run, chain, budget, made } = caller;
        Box::pin(async move {
            let s = runtime.inner.settings.load_full();
            let policy = s.tenants.get(&tenant).map_err(|e| e.to_string())?;
            policy.check_agent(&agent).map_err(|e| e.to_string())?;
            // Off the caller's thread: a first load may compile, and the caller may be on a front thread.
            let callee = runtime
                .load_off_thread(&agent)
                .await
                .map_err(|e| format!("denied: cannot load agent {agent:?}: {e}"))?;
            let _admitted =
                runtime.inner.admission.admit_callee(&policy, &agent).map_err(|e| format!("denied: {e}"))?;
            let grants = callee.grants(&policy);
            let dirs = runtime.operator_dirs(&agent, &grants);
            let limits = callee.limits_under(&s).capped(&policy.ceiling.apply(&s.ceiling));
            let mut chain = chain;
            chain.push(callee.name.clone());
            let env = run_env(&[], &run);
            let scope = Scope { tenant, run, chain, journal: None, budget, env, compensate: false, made };
            let outcome = runtime.invoke(&callee, &input, scope, limits, dirs, &grants).await;
            outcome.result.map_err(|e| match e {
                InvokeError::Failed { message, .. } => format!("failed: {message}"),
                InvokeError::Limit { .. } => format!("limit: {e}"),
                InvokeError::Crashed { .. } => format!("crashed: {e}"),
                InvokeError::Start { .. } => format!("denied: {e}"),
            })
        })
    }
}

/// How an invocation ended, as its log line, metrics and span name it.
fn outcome_name(outcome: &Outcome) -> &'static str {
    match &outcome.result {
        Ok(_) => "ok",
        Err(InvokeError::Failed { .. }) => "failed",
        Err(InvokeError::Limit { .. }) => "limit",
        Err(InvokeError::Crashed { .. }) => "crashed",
        Err(InvokeError::Start { .. }) => "start",
    }
}

/// The variables an invocation sees: `PADDOCK_RUN` and
/// `PADDOCK_IDEMPOTENCY_KEY` (the run id, unless a flow gave its own), and
/// whatever a flow adds (`PADDOCK_FLOW`, `PADDOCK_STEP`, `PADDOCK_ATTEMPT`).
fn run_env(given: &[(String, String)], run: &str) -> Vec<(String, String)> {
    let mut env = given.to_vec();
    for name in ["PADDOCK_RUN", "PADDOCK_IDEMPOTENCY_KEY"] {
        if !env.iter().any(|(k, _)| k == name) {
            env.push((name.to_string(), run.to_string()));
        }
    }
    env
}

/// Each configured tenant's fuel per minute, for the CPU scheduler.
fn fuel_shares(tenants: &Tenants) -> HashMap<String, u64> {
    tenants.iter().filter_map(|p| Some((p.name.clone(), p.fuel_per_minute?))).collect()
}

/// The ledger's budgets: every configured tenant's, and its agents'.
fn budgets(tenants: &Tenants) -> Budgets {
    let mut budgets = Budgets::default();
    for policy in tenants.iter() {
        budgets.tenants.insert(policy.name.clone(), policy.budget);
        for (agent, b) in &policy.agent_budgets {
            budgets.agents.insert((policy.name.clone(), agent.clone()), b.budget);
        }
    }
    budgets
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_run_id_is_12_hex_digits_of_its_milliseconds_then_8_of_its_random_number() {
        for (millis, random) in [(0, 0), (1_765_000_000_123, 0xdead_beef), (u64::MAX, u32::MAX), (0xabc, 7)] {
            let written = format!("{:012x}{:08x}", millis & 0xffff_ffff_ffff, random);
            assert_eq!(&*super::run_id(millis, random), written.as_str());
        }
        assert_eq!(&*super::run_id(1_765_000_000_123, 0xdead_beef), "019af232b27bdeadbeef");
    }
}
