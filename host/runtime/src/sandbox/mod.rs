//! One invocation of one agent: a fresh `Store` from a cached pre-instance,
//! the limits applied to it, a WASI context that grants nothing by default,
//! and an error that names whatever limit ended it.

mod http;
mod limits;
mod output;
mod replayable;
mod sched;
pub mod threads;

pub use limits::{LimitHit, Limiter};
pub use sched::{CpuScheduler, CpuTicket};

use crate::caps::log::{LogRecord, Source};
use crate::caps::{AgentWorldPre, CallContext, Caps, HasCaps, Lent};
use output::Capture;
use paddock_config::{DirGrant, Limits, SizeCaps};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Engine, Store, Trap, UpdateDeadline};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// Fuel between two voluntary yields of a busy guest (~0.2 ms of a tight loop
/// here): short enough that a CPU-bound agent cannot hold a worker thread
/// from the others, long enough that yielding costs under 1%.
const FUEL_YIELD_INTERVAL: u64 = 10_000_000;

/// The store's data: WASI plus every capability's per-invocation state.
pub struct AgentState {
    wasi: WasiCtx,
    table: ResourceTable,
    http: wasmtime_wasi_http::WasiHttpCtx,
    http_hooks: http::HttpHooks,
    limiter: Limiter,
    caps: Caps,
    call: Arc<CallContext>,
    timed_out: bool,
}

impl WasiView for AgentState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl wasmtime_wasi_http::WasiHttpView for AgentState {
    fn http(&mut self) -> wasmtime_wasi_http::WasiHttpCtxView<'_> {
        wasmtime_wasi_http::WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.http_hooks }
    }
}

impl HasCaps for AgentState {
    fn caps(&mut self) -> &mut Caps {
        &mut self.caps
    }
}

/// The linker every agent is instantiated with: WASI 0.2 and each
/// `paddock:agent` interface.
pub fn linker(engine: &Engine) -> wasmtime::Result<Linker<AgentState>> {
    let mut linker: Linker<AgentState> = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    replayable::add_to_linker(&mut linker)?;
    Caps::add_to_linker(&mut linker)?;
    Ok(linker)
}

/// The linker of agents whose manifest asks for hosts (`capabilities.http`):
/// [`linker`]'s and `wasi:http` (each request checked by [`http::HttpHooks`]).
pub fn http_linker(engine: &Engine) -> wasmtime::Result<Linker<AgentState>> {
    let mut linker = linker(engine)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    Ok(linker)
}

/// Everything one invocation needs besides the component.
pub struct Invocation {
    /// The version of the agent that serves it.
    pub version: Arc<str>,
    /// The agent's name.
    pub agent: Arc<str>,
    /// The tenant it runs for.
    pub tenant: Arc<str>,
    /// The key its tenant's log volume is counted under: the tenant, or
    /// the one every tenant not named in `[tenants]` shares.
    pub counted: Arc<str>,
    /// The run it belongs to.
    pub run: Arc<str>,
    /// Its limits, already resolved against the ceiling.
    pub limits: Limits,
    /// Byte caps at the boundary.
    pub caps: SizeCaps,
    /// Most elements per table.
    pub table_elements: u64,
    /// Most core instances (and memories) per store.
    pub instances: usize,
    /// Most tables per store.
    pub tables: usize,
    /// Directories the operator granted.
    pub dirs: Vec<DirGrant>,
    /// What the host lends its capabilities.
    pub lent: Lent,
    /// Its place in the fair CPU scheduler, if one runs.
    pub cpu: Option<CpuTicket>,
    /// Records (or replays) its host calls, when its run keeps a journal.
    pub journal: Option<Arc<paddock_journal::Tape>>,
    /// The run's (or flow step's) budget, if one is set.
    pub budget: Option<Arc<paddock_quota::run::RunBudget>>,
    /// Environment variables it sees (`PADDOCK_RUN`, `PADDOCK_IDEMPOTENCY_KEY`...).
    pub env: Vec<(String, String)>,
    /// Calls the agent's `compensate` export instead of `run` (a saga
    /// undoing a step); its output is then empty.
    pub compensate: bool,
}

/// How an invocation failed.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// The agent ran and returned an error of its own.
    #[error("agent {agent:?} returned an error: {message}")]
    Failed {
        /// The agent.
        agent: Arc<str>,
        /// Its error text.
        message: String,
    },
    /// The agent hit a limit and was stopped.
    #[error("agent {agent:?} {limit}")]
    Limit {
        /// The agent.
        agent: Arc<str>,
        /// Which limit, with its value.
        limit: LimitHit,
    },
    /// The agent trapped for a reason other than a limit (a bug or a panic).
    #[error("agent {agent:?} crashed: {reason}")]
    Crashed {
        /// The agent.
        agent: Arc<str>,
        /// The trap.
        reason: String,
    },
    /// The agent could not be started (a grant could not be honoured, the
    /// host is at capacity).
    #[error("agent {agent:?} could not start: {reason}")]
    Start {
        /// The agent.
        agent: Arc<str>,
        /// Why.
        reason: String,
    },
}

/// What an invocation produced.
#[derive(Debug)]
pub struct Outcome {
    /// The run it belonged to.
    pub run: Arc<str>,
    /// The version of the agent that served it.
    pub version: Arc<str>,
    /// The agent's output, or why there is none.
    pub result: Result<String, InvokeError>,
    /// Everything it logged (including captured stdout and stderr).
    pub logs: Vec<LogRecord>,
    /// Fuel it burned.
    pub fuel_consumed: u64,
    /// Wall-clock time from store creation to the end.
    pub elapsed: Duration,
    /// Where that time went.
    pub phases: Phases,
}

/// The parts of an invocation's time: the sandbox's (making the instance,
/// tearing it down) and the call (the guest's own work and its host calls).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Phases {
    /// Instantiating the component in a fresh store.
    pub instantiate: Duration,
    /// The export's call: the guest's own work and the host calls it makes.
    pub call: Duration,
    /// Dropping the store: its memories and tables reset for the next invocation.
    pub teardown: Duration,
}

/// Runs `input` through a fresh instance of `pre`, on the engine that compiled it.
pub async fn invoke(pre: &AgentWorldPre<AgentState>, inv: Invocation, input: &str) -> Outcome {
    let started = Instant::now();
    let call = CallContext::with(
        inv.agent.clone(),
        (inv.tenant.clone(), inv.counted.clone()),
        inv.run.clone(),
        inv.caps,
        inv.journal.clone(),
        inv.budget.clone(),
    );
    let (agent, version) = (inv.agent.clone(), inv.version.clone());
    let finish = |result, fuel_consumed, phases| Outcome {
        run: call.run.clone(),
        version: version.clone(),
        result,
        logs: call.log.take(),
        fuel_consumed,
        elapsed: started.elapsed(),
        phases,
    };

    if input.len() as u64 > inv.caps.io_bytes {
        let limit = LimitHit::Io { what: "input", size: input.len() as u64, limit: inv.caps.io_bytes };
        return finish(Err(InvokeError::Limit { agent, limit }), 0, Phases::default());
    }
    let (stdout, stderr) = (Capture::new(call.clone(), Source::Stdout), Capture::new(call.clone(), Source::Stderr));
    let wasi = match wasi_context(&inv.dirs, &inv.env, &stdout, &stderr) {
        Ok(wasi) => wasi,
        Err(reason) => return finish(Err(InvokeError::Start { agent, reason }), 0, Phases::default()),
    };
    let limits = inv.limits;
    let mut store = match new_store(pre.engine(), &inv, &call, wasi) {
        Ok(store) => store,
        Err(reason) => return finish(Err(InvokeError::Start { agent, reason }), 0, Phases::default()),
    };
    let deadline = started + limits.timeout;
    // The ticket is shared by the epoch callback (each tick) and this
    // function (the fuel share before the start, the fuel after the end).
    let cpu = inv.cpu.map(|t| Arc::new(parking_lot::Mutex::new(t)));
    if let Err(reason) = wait_for_fuel_share(cpu.as_ref(), &inv.tenant, deadline).await {
        return finish(Err(InvokeError::Start { agent, reason }), 0, Phases::default());
    }
    arm_deadline(&mut store, deadline, limits.fuel, cpu.clone());

    // The epoch callback stops a guest that computes past its deadline; this
    // timeout stops one that waits past it inside a host call.
    let mut phases = Phases::default();
    let run = async {
        let instantiating = Instant::now();
        let instance = pre.instantiate_async(&mut store).await.map_err(|e| (e, true))?;
        phases.instantiate = instantiating.elapsed();
        let agent = instance.paddock_agent_agent();
        if inv.compensate {
            let undone = agent.call_compensate(&mut store, input).await.map_err(|e| (e, false))?;
            Ok(undone.map(|()| String::new()))
        } else {
            agent.call_run(&mut store, input).await.map_err(|e| (e, false))
        }
    };
    // The same deadline as the epoch callback's, which a wait for the fuel share has used up part of.
    let calling = Instant::now();
    let ran = tokio::time::timeout_at(deadline.into(), run).await;
    phases.call = calling.elapsed().saturating_sub(phases.instantiate);
    stdout.finish();
    stderr.finish();
    let fuel_consumed = limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0));
    if let Some(cpu) = &cpu {
        cpu.lock().settle(fuel_consumed);
    }
    let result = verdict(ran, &store, &limits, inv.caps.io_bytes, agent);
    let tearing_down = Instant::now();
    drop(store);
    phases.teardown = tearing_down.elapsed();
    finish(result, fuel_consumed, phases)
}

/// A store for one invocation: its state, memory and table limits, and fuel.
fn new_store(
    engine: &Engine,
    inv: &Invocation,
    call: &Arc<CallContext>,
    wasi: WasiCtx,
) -> Result<Store<AgentState>, String> {
    let http_hooks = http::HttpHooks {
        call: call.clone(),
        grants: inv.lent.grants.clone(),
        requested: inv.lent.requested.clone(),
        counted: inv.lent.count_http.clone(),
    };
    let state = AgentState {
        wasi,
        table: ResourceTable::new(),
        http: wasmtime_wasi_http::WasiHttpCtx::new(),
        http_hooks,
        limiter: Limiter::new(inv.limits.memory, inv.table_elements, inv.instances, inv.tables),
        caps: Caps::new(call, &inv.lent),
        call: call.clone(),
        timed_out: false,
    };
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limiter);
    store
        .set_fuel(inv.limits.fuel)
        .and_then(|()| store.fuel_async_yield_interval(Some(FUEL_YIELD_INTERVAL)))
        .map_err(|e| format!("{e:#}"))?;
    Ok(store)
}

/// Waits until the tenant is back within its fuel share, or refuses when
/// that is past the invocation's deadline.
async fn wait_for_fuel_share(
    cpu: Option<&Arc<parking_lot::Mutex<CpuTicket>>>,
    tenant: &str,
    deadline: Instant,
) -> Result<(), String> {
    let Some(until) = cpu.and_then(|c| c.lock().throttled_until(Instant::now())) else { return Ok(()) };
    if until >= deadline {
        let share = cpu.and_then(|c| c.lock().share()).unwrap_or_default();
        return Err(format!(
            "tenant {tenant:?} is over its fuel share (tenants.{tenant}.budget.fuel-per-minute = {share}) for {} more, past this invocation's timeout",
            paddock_core::Span(until.saturating_duration_since(Instant::now()))
        ));
    }
    tokio::time::sleep_until(until.into()).await;
    Ok(())
}

/// At each epoch tick: stops a guest past `deadline`, else lets the fair
/// scheduler charge its fuel and decide whether it yields its slot.
fn arm_deadline(
    store: &mut Store<AgentState>,
    deadline: Instant,
    fuel: u64,
    cpu: Option<Arc<parking_lot::Mutex<CpuTicket>>>,
) {
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |mut ctx| {
        let now = Instant::now();
        if now >= deadline {
            ctx.data_mut().timed_out = true;
            return Err(wasmtime::Error::msg("wall-clock deadline passed"));
        }
        // A whole tick computed on the caller's thread: go on on the guest threads.
        if threads::ask_to_move() {
            return Ok(UpdateDeadline::Yield(1));
        }
        Ok(match &cpu {
            Some(cpu) => cpu.lock().tick(now, fuel.saturating_sub(ctx.get_fuel().unwrap_or(0))),
            None => UpdateDeadline::Yield(1),
        })
    });
}

/// How the call of the agent's export ended: in time or not; then trapped
/// (while instantiating or not), or returned the agent's own result.
type Ran = Result<Result<Result<String, String>, (wasmtime::Error, bool)>, tokio::time::error::Elapsed>;

/// What a finished (or timed out) call of the agent's export comes to.
fn verdict(
    ran: Ran,
    store: &Store<AgentState>,
    limits: &Limits,
    io_bytes: u64,
    agent: Arc<str>,
) -> Result<String, InvokeError> {
    match ran {
        Err(_elapsed) => Err(InvokeError::Limit { agent, limit: LimitHit::Timeout(limits.timeout) }),
        Ok(Ok(Ok(output))) if output.len() as u64 > io_bytes => {
            let limit = LimitHit::Io { what: "output", size: output.len() as u64, limit: io_bytes };
            Err(InvokeError::Limit { agent, limit })
        }
        Ok(Ok(Ok(output))) => Ok(output),
        Ok(Ok(Err(message))) if message.len() as u64 > io_bytes => {
            let limit = LimitHit::Io { what: "error text", size: message.len() as u64, limit: io_bytes };
            Err(InvokeError::Limit { agent, limit })
        }
        // A guest that survives a refused allocation (JavaScript and C do)
        // and then gives up failed because of its memory limit: say so, the
        // same way as for a guest that died of it.
        Ok(Ok(Err(message))) => match &store.data().limiter.hit {
            Some(hit) => {
                tracing::debug!(agent = &*agent, "returned an error after hitting {hit}: {message}");
                Err(InvokeError::Limit { agent, limit: hit.clone() })
            }
            None => Err(InvokeError::Failed { agent, message }),
        },
        Ok(Err((error, instantiating))) => Err(classify(store, limits, agent, error, instantiating)),
    }
}

/// Names the limit behind a trap, or reports a crash.
fn classify(
    store: &Store<AgentState>,
    limits: &Limits,
    agent: Arc<str>,
    error: wasmtime::Error,
    instantiating: bool,
) -> InvokeError {
    let state = store.data();
    if let Some(v) = state.call.violation.get() {
        return InvokeError::Limit { agent, limit: LimitHit::HostCall(v.clone()) };
    }
    if let Some(divergence) = state.call.journal.as_ref().and_then(|j| j.divergence()) {
        return InvokeError::Crashed { agent, reason: divergence.to_string() };
    }
    if let Some(hit) = &state.limiter.hit {
        return InvokeError::Limit { agent, limit: hit.clone() };
    }
    if state.timed_out {
        return InvokeError::Limit { agent, limit: LimitHit::Timeout(limits.timeout) };
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => InvokeError::Limit { agent, limit: LimitHit::Fuel(limits.fuel) },
        Some(Trap::StackOverflow) => {
            InvokeError::Limit { agent, limit: LimitHit::Stack(crate::engine::MAX_WASM_STACK) }
        }
        Some(Trap::Interrupt) => InvokeError::Limit { agent, limit: LimitHit::Timeout(limits.timeout) },
        Some(trap) => {
            tracing::debug!(agent = &*agent, error = format!("{error:?}"), "agent trapped");
            let hint = match trap {
                Trap::MemoryOutOfBounds => " (in Rust and C guests often their own stack overrunning linear memory)",
                Trap::UnreachableCodeReached => " (a Rust guest panics or aborts this way; its stderr is in the log)",
                _ => "",
            };
            InvokeError::Crashed { agent, reason: format!("{trap}{hint}") }
        }
        None if instantiating => InvokeError::Start { agent, reason: format!("{error:#}{}", mappings_hint(&error)) },
        None => InvokeError::Crashed { agent, reason: format!("{error:#}") },
    }
}

/// What to do when the kernel refused an instance its memory mappings
/// (ENOMEM while instantiating): each running instance holds several (its
/// memories, tables and stack, each with its guard), and Linux allows a
/// process `vm.max_map_count` of them (65,530 by default), which 6,000 to
/// 10,000 waiting agents reach (measured) before `engine.max-instances` does.
fn mappings_hint(error: &wasmtime::Error) -> String {
    let refused = error.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().and_then(std::io::Error::raw_os_error) == Some(libc::ENOMEM)
            || cause.to_string().contains("os error 12")
    });
    if !refused {
        return String::new();
    }
    let limit = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .map_or("a limited number of".to_string(), |n| n.trim().to_string());
    format!(
        " (the kernel allows a process {limit} memory mappings, vm.max_map_count, and every running instance holds \
         several: raise it, e.g. sysctl vm.max_map_count=262144, or lower engine.max-instances)"
    )
}

/// A WASI context that grants nothing but clocks, random, captured output,
/// the host's `PADDOCK_*` variables and the directories the operator granted.
/// Network access is off by default in `WasiCtxBuilder`: no TCP, no UDP, no
/// name lookup.
fn wasi_context(
    dirs: &[DirGrant],
    env: &[(String, String)],
    stdout: &Capture,
    stderr: &Capture,
) -> Result<WasiCtx, String> {
    let mut builder = WasiCtxBuilder::new();
    builder.stdout(stdout.clone()).stderr(stderr.clone()).envs(env);
    for dir in dirs {
        let perms = if dir.write { FsPerms::ReadWrite } else { FsPerms::ReadOnly };
        builder
            .preopened_dir(&dir.host, &dir.guest, perms)
            .map_err(|e| format!("cannot open granted directory {} (for {}): {e:#}", dir.host.display(), dir.guest))?;
    }
    Ok(builder.build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_refused_its_mappings_names_vm_max_map_count() {
        let refused = wasmtime::Error::from(std::io::Error::from_raw_os_error(libc::ENOMEM)).context("instantiating");
        let hint = mappings_hint(&refused);
        assert!(hint.starts_with(" (the kernel allows a process "), "{hint}");
        assert!(
            hint.ends_with(
                " memory mappings, vm.max_map_count, and every running instance holds several: raise it, e.g. \
                 sysctl vm.max_map_count=262144, or lower engine.max-instances)"
            ),
            "{hint}"
        );
        assert_eq!(mappings_hint(&wasmtime::Error::msg("a trap")), "");
    }
}
