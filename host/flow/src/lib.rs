//! Workflows: a TOML spec of steps (agent, sequence, parallel, vote, branch,
//! saga, approval, machine) run durably — every step checkpointed before the
//! next starts, interrupted runs resumed where they stopped, every agent
//! step's host calls journaled for replay, failed tasks kept in a
//! dead-letter queue, and questions for people waited on without a thread.

pub mod approvals;
pub mod bells;
mod cancel;
pub mod events;
pub mod expr;
mod failover;
mod gather;
mod hold;
pub mod hub;
mod lane;
pub mod lease;
mod memory;
pub mod metrics;
mod off_thread;
pub mod postgres;
mod replay;
mod retention;
mod run;
pub mod shared;
pub mod spec;
pub mod sqlite;
mod steps;
pub mod store;
#[cfg(test)]
mod store_tests;
#[cfg(test)]
mod testing;
pub mod work;
mod worker;

pub use approvals::{ApprovalService, now_ms};
pub use cancel::{Cancel, CancelError, cancel};
pub use events::Event;
pub use replay::{RecordedStep, Replayed};
pub use retention::{forget_versions, prune};
pub use run::StepErr;
pub use spec::{Flow, SpecError};
pub use store::{
    AnswerError, Finished, FlowBounds, FlowStore, MemoryStore, Pruned, RunRecord, RunStatus, StepRecord, StepStatus,
    StoreError,
};

use paddock_quota::run::RunBudget;
use paddock_runtime::{Agent, RunOptions, Runtime, new_run_id};
use parking_lot::Mutex;
use run::{Ctx, Scope};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;
use tracing::Instrument;

/// The flow engine of one host.
#[derive(Clone)]
pub struct Flows {
    runtime: Runtime,
    store: Arc<dyn FlowStore>,
    approvals: Arc<ApprovalService>,
    /// The runs executing in this process, each with its cancel signal.
    live: Arc<Mutex<HashMap<String, tokio::sync::watch::Sender<Option<String>>>>>,
    hub: Option<Arc<hub::Hub>>,
    /// The writer of runs' events, when the store keeps them for every host.
    outbox: Arc<std::sync::OnceLock<Option<Arc<shared::Outbox>>>>,
    /// Where fan-outs' items are published for every host, when the store is shared.
    work: Option<Arc<dyn work::WorkQueue>>,
    /// The runs executing here, for this host's workers claiming their items.
    executing: Arc<Mutex<HashMap<String, std::sync::Weak<Ctx>>>>,
    /// What items of runs held elsewhere share, per run.
    guests: Arc<Mutex<HashMap<String, Arc<Ctx>>>>,
    /// Whether this process's workers claim items ([`Flows::spawn_workers`]);
    /// when not, a fan-out's holder claims its own.
    workers: Arc<std::sync::atomic::AtomicBool>,
}

/// Why a run did not start. Nothing was written.
#[derive(Debug, PartialEq)]
pub enum StartError {
    /// An agent the flow names does not load.
    Load(String),
    /// The tenant may not run an agent the flow names, or is not a tenant.
    Denied(String),
    /// A run with the id asked for exists.
    Exists(String),
    /// The tenant keeps as many bytes as `limits.max-flow-bytes` allows.
    Full(String),
    /// The store failed.
    Store(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Load(m)
            | StartError::Denied(m)
            | StartError::Exists(m)
            | StartError::Full(m)
            | StartError::Store(m) => f.write_str(m),
        }
    }
}

impl From<StartError> for String {
    fn from(e: StartError) -> String {
        e.to_string()
    }
}

/// The flow store `at` names, keeping at most `bounds`.
pub fn open_store(at: &paddock_config::FlowsStore, bounds: FlowBounds) -> Result<Arc<dyn FlowStore>, StoreError> {
    open_stores(at, bounds).map(|(store, _)| store)
}

/// The flow store `at` names, and its work queue when hosts share it.
type Stores = (Arc<dyn FlowStore>, Option<Arc<dyn work::WorkQueue>>);

fn open_stores(at: &paddock_config::FlowsStore, bounds: FlowBounds) -> Result<Stores, StoreError> {
    use paddock_config::FlowsStore;
    Ok(match at {
        FlowsStore::Memory => (Arc::new(MemoryStore::with_bounds(bounds)), None),
        FlowsStore::Sqlite(path) => (Arc::new(sqlite::SqliteStore::open(path)?.with_bounds(bounds)), None),
        FlowsStore::Postgres(database) => {
            let pg = paddock_postgres::Postgres::shared(database).map_err(|reason| StoreError::Postgres { reason })?;
            let store = Arc::new(postgres::PostgresStore::open(pg)?.with_bounds(bounds));
            (store.clone(), Some(store))
        }
    })
}

/// The flow store the settings name (`host.flows`) does not open.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("host.flows: {0}")]
pub struct OpenError(pub StoreError);

/// A run that is recorded and ready: [`Started::finish`] runs it.
pub struct Started {
    flows: Flows,
    ctx: Arc<Ctx>,
    record: RunRecord,
    /// Whether it continues an interrupted run.
    resumed: bool,
}

impl Started {
    /// The run's id.
    pub fn run(&self) -> &str {
        &self.record.id
    }

    /// The run as it was recorded.
    pub fn record(&self) -> &RunRecord {
        &self.record
    }

    /// Runs it to the end.
    pub async fn finish(self) -> Result<Report, String> {
        self.flows.execute(self.ctx, self.record, self.resumed).await
    }
}

/// Options of a new run.
#[derive(Default)]
pub struct Start {
    /// The tenant; the configured default when `None`.
    pub tenant: Option<String>,
    /// The run's id; a new one when `None`.
    pub run: Option<String>,
    /// Where progress goes.
    pub events: Option<events::Sink>,
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// The run.
    pub run: String,
    /// `Succeeded` or `Failed`.
    pub status: RunStatus,
    /// The output, when it succeeded.
    pub output: Option<Value>,
    /// The error, when it failed.
    pub error: Option<String>,
}

impl Flows {
    /// The engine over `store`; agents' approval questions go to its approvals.
    pub fn new(runtime: Runtime, store: Arc<dyn FlowStore>) -> Flows {
        let approvals = ApprovalService::new(store.clone(), runtime.settings().flow_limits.question_bytes);
        runtime.set_approvals(Arc::new(approvals::AgentQuestions(approvals.clone())));
        Flows {
            runtime,
            store,
            approvals,
            live: Arc::default(),
            hub: None,
            outbox: Arc::default(),
            work: None,
            executing: Arc::default(),
            guests: Arc::default(),
            workers: Arc::default(),
        }
    }

    /// The engine keeping the live events of its runs for subscribers (what
    /// `paddock serve` streams).
    pub fn with_hub(mut self) -> Flows {
        self.hub = Some(Arc::default());
        self
    }

    /// The live events of its runs, when kept.
    pub fn hub(&self) -> Option<&Arc<hub::Hub>> {
        self.hub.as_ref()
    }

    /// The engine over the store the settings name (`host.flows`), kept
    /// within `limits.max-run-bytes` and `limits.max-flow-bytes`.
    pub fn open(runtime: Runtime) -> Result<Flows, OpenError> {
        let limits = runtime.settings().flow_limits;
        // With no tenant named, every tenant shares one bound.
        let shared = !runtime.settings().tenants.configured();
        let bounds = FlowBounds { run_bytes: limits.run_bytes, tenant_bytes: limits.tenant_bytes, shared };
        let (store, work) = open_stores(&runtime.settings().flows, bounds).map_err(OpenError)?;
        let mut flows = Flows::new(runtime, store);
        flows.work = work;
        Ok(flows)
    }

    /// Its store.
    pub fn store(&self) -> &Arc<dyn FlowStore> {
        &self.store
    }

    /// Its approvals.
    pub fn approvals(&self) -> &Arc<ApprovalService> {
        &self.approvals
    }

    /// The host it runs on.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Starts a run of `flow` on `input` and runs it to the end.
    pub async fn start(&self, flow: Flow, origin: &str, input: Value, start: Start) -> Result<Report, String> {
        self.begin(flow, origin, input, start)?.finish().await
    }

    /// Checks a run of `flow` on `input` (agents load, the tenant may run
    /// them, the id is free) and records it; nothing has run yet.
    pub fn begin(&self, flow: Flow, origin: &str, input: Value, start: Start) -> Result<Started, StartError> {
        let tenant = start.tenant.unwrap_or_else(|| self.runtime.settings().default_tenant.clone());
        paddock_core::names::validate_tenant(&tenant).map_err(|e| StartError::Denied(e.to_string()))?;
        // A tenant that may not run one of the agents is refused before
        // anything loads or starts.
        let policy = self.runtime.settings().tenants.get(&tenant).map_err(|e| StartError::Denied(e.to_string()))?;
        for (name, step) in flow.agents() {
            policy.check_agent(name).map_err(|e| StartError::Denied(format!("{origin}: steps.{step}.agent: {e}")))?;
        }
        let mut agents = HashMap::new();
        let mut pins = std::collections::BTreeMap::new();
        for (name, step) in flow.agents() {
            let agent =
                self.runtime.load(name).map_err(|e| StartError::Load(format!("{origin}: steps.{step}.agent: {e}")))?;
            // Kept so the run can resume on this version anywhere; a run
            // that cannot be kept still runs here.
            if let Err(e) = self.runtime.keep_version(&agent) {
                tracing::warn!(agent = name, version = &*agent.version, "cannot keep the version a run pins: {e}");
            }
            pins.insert(name.to_string(), agent.version.to_string());
            agents.insert(name.to_string(), agent);
        }
        let id = start.run.unwrap_or_else(|| new_run_id().to_string());
        let now = now_ms();
        let record = RunRecord {
            id: id.clone(),
            flow: flow.name.clone(),
            origin: origin.to_string(),
            source: flow.source.clone(),
            input: input.to_string(),
            tenant: tenant.clone(),
            status: RunStatus::Running,
            output: None,
            error: None,
            pins,
            owner: lease::this_process().to_string(),
            heartbeat_ms: now,
            created_ms: now,
            updated_ms: now,
        };
        self.room_for(&record)?;
        // Added only if the id is free, so two starts under one id cannot both run.
        if !self.store.add_run(&record).map_err(StartError::Store)? {
            return Err(StartError::Exists(format!("a run with id {id:?} already exists")));
        }
        let ctx = self.context(flow, record.clone(), agents, Vec::new(), start.events);
        Ok(Started { flows: self.clone(), ctx, record, resumed: false })
    }

    /// Refuses a run whose record alone would take its tenant past
    /// `limits.max-flow-bytes` (the store checks each write again).
    fn room_for(&self, record: &RunRecord) -> Result<(), StartError> {
        let bounds = self.store.bounds();
        let kept = self.store.tenant_bytes(bounds.counted(&record.tenant)).map_err(StartError::Store)?;
        let size = serde_json::to_vec(record).map_or(0, |b| b.len() as u64);
        let limit = bounds.tenant_bytes;
        if kept.saturating_add(size) <= limit {
            return Ok(());
        }
        Err(StartError::Full(format!(
            "{} keep{} {} of runs, dead letters and questions, and this run's record ({}) would pass \
             limits.max-flow-bytes ({}); finished runs are forgotten by [retention], or at once by `paddock gc`",
            bounds.who(&record.tenant),
            if bounds.shared { "" } else { "s" },
            paddock_core::ByteSize(kept),
            paddock_core::ByteSize(size),
            paddock_core::ByteSize(limit)
        )))
    }

    /// Continues an interrupted run at its first unfinished step. With
    /// `repin`, agents whose version changed meanwhile run their new version.
    pub async fn resume(&self, id: &str, events: Option<events::Sink>, repin: bool) -> Result<Report, String> {
        self.begin_resume(id, events, repin)?.finish().await
    }

    /// Checks that run `id` may be resumed here and claims it for this
    /// process; [`Started::finish`] then runs it from its first unfinished step.
    pub fn begin_resume(&self, id: &str, events: Option<events::Sink>, repin: bool) -> Result<Started, String> {
        let mut record = self.store.run(id)?.ok_or_else(|| format!("no run with id {id:?}"))?;
        if record.status != RunStatus::Running {
            return Err(format!("run {id} {}; only an unfinished run can be resumed", record.status.phrase()));
        }
        if self.live.lock().contains_key(id) {
            return Err(format!("run {id} is running in this process"));
        }
        if held_elsewhere(&record) {
            return Err(format!(
                "run {id} is held by host {} (its lease was renewed {} ms ago)",
                record.owner,
                now_ms().saturating_sub(record.heartbeat_ms)
            ));
        }
        let flow = Flow::parse(&record.source, &record.origin).map_err(|e| e.to_string())?;
        let mut agents = HashMap::new();
        for (name, pinned) in record.pins.clone() {
            let step = flow.agents().get(name.as_str()).map(|s| s.to_string()).unwrap_or_default();
            let agent = match repin {
                false => self.runtime.load_pinned(&name, &pinned).map_err(|e| {
                    format!(
                        "steps.{step}.agent: {e}; resume with --repin to finish run {id} on the version served here"
                    )
                })?,
                true => {
                    let agent = self.runtime.load(&name).map_err(|e| format!("steps.{step}.agent: {e}"))?;
                    record.pins.insert(name.clone(), agent.version.to_string());
                    agent
                }
            };
            agents.insert(name, agent);
        }
        let (was, beat) = (record.owner.clone(), record.heartbeat_ms);
        record.owner = lease::this_process().to_string();
        record.heartbeat_ms = now_ms();
        if !self.store.claim(&record, &was, beat)? {
            return Err(format!("run {id} was taken over by another host while resuming"));
        }
        let steps = self.store.steps(id)?;
        let ctx = self.context(flow, record.clone(), agents, steps, events);
        Ok(Started { flows: self.clone(), ctx, record, resumed: true })
    }

    /// Cancels run `id` on behalf of `by`. A run executing here stops at
    /// once; one another process runs stops at that process's next
    /// heartbeat; an orphan is marked cancelled. Agents running are stopped,
    /// nothing more starts, and no compensation runs.
    pub fn cancel(&self, id: &str, by: &str) -> Result<Cancel, CancelError> {
        if let Some(signal) = self.live.lock().get(id) {
            signal.send_replace(Some(by.to_string()));
            return Ok(Cancel::Stopping);
        }
        // Begun here and not executing yet: it reads the request as it starts.
        if let Some(r) = self.store.run(id).map_err(CancelError::Store)?
            && r.status == RunStatus::Running
            && r.owner == lease::this_process()
            && !lease::expired(r.heartbeat_ms, now_ms())
        {
            self.store.request_cancel(id, by).map_err(CancelError::Store)?;
            return Ok(Cancel::Stopping);
        }
        cancel(self.store.as_ref(), id, by)
    }

    /// Runs a dead letter's task again (same input and idempotency key);
    /// on success it leaves the queue and its output is returned.
    pub async fn retry_dead(&self, id: &str) -> Result<String, String> {
        let mut dead = self.store.dead(id)?.ok_or_else(|| format!("no dead letter with id {id:?}"))?;
        let agent: Arc<Agent> = self.runtime.load(&dead.agent).map_err(|e| e.to_string())?;
        let attempt = dead.attempts + 1;
        let tape = paddock_journal::Tape::recording();
        let options = RunOptions {
            tenant: Some(dead.tenant.clone()),
            run: Some(dead.run.clone()),
            journal: Some(tape.clone()),
            env: run::step_env(&dead.run, &dead.flow, &dead.step, attempt, ""),
            ..RunOptions::default()
        };
        let result = match self.runtime.run(&agent, &dead.input, &options).await {
            Ok(outcome) => outcome.result.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match result {
            Ok(output) => {
                self.store.drop_dead(id)?;
                Ok(output)
            }
            Err(e) => {
                dead.attempts = attempt;
                dead.error = e.clone();
                dead.version = agent.version.to_string();
                dead.journal = tape.entries();
                self.store.put_dead(&dead)?;
                Err(e)
            }
        }
    }

    fn context(
        &self,
        flow: Flow,
        record: RunRecord,
        agents: HashMap<String, Arc<Agent>>,
        steps: Vec<StepRecord>,
        events: Option<events::Sink>,
    ) -> Arc<Ctx> {
        let seq = steps.iter().map(|s| s.seq + 1).max().unwrap_or(0);
        let events = match &self.hub {
            // A store shared by hosts keeps the events; the hub only counts them.
            Some(hub) if self.store.keeps_events() => Some(hub.counting(&record.tenant, &flow.name, events)),
            Some(hub) => Some(hub.sink(&record.id, events)),
            None => events,
        };
        Arc::new(Ctx {
            checkpoints: Mutex::new(steps.into_iter().map(|s| (s.path.clone(), s)).collect()),
            seq: AtomicU64::new(seq),
            work: self.work.clone(),
            claims: !self.workers.load(std::sync::atomic::Ordering::Relaxed),
            ..self.ctx_of(flow, &record, agents, events)
        })
    }

    /// A context for run `record` of `flow` with `agents`, its events going
    /// to `then` and to the store when it keeps them; no checkpoints yet,
    /// publishing no work.
    fn ctx_of(
        &self,
        flow: Flow,
        record: &RunRecord,
        agents: HashMap<String, Arc<Agent>>,
        then: Option<events::Sink>,
    ) -> Ctx {
        let outbox = self.outbox();
        let events = match &outbox {
            Some(outbox) => Some(outbox.sink(&record.id, then)),
            None => then,
        };
        Ctx {
            runtime: self.runtime.clone(),
            store: self.store.clone(),
            approvals: self.approvals.clone(),
            flow: Arc::new(flow),
            run: Arc::from(record.id.as_str()),
            tenant: record.tenant.clone(),
            input: Arc::new(serde_json::from_str(&record.input).unwrap_or(Value::Null)),
            agents,
            checkpoints: Mutex::default(),
            outputs: Mutex::default(),
            seq: AtomicU64::new(0),
            events,
            work: None,
            outbox,
            claims: false,
            gather: Arc::default(),
        }
    }

    async fn execute(&self, ctx: Arc<Ctx>, record: RunRecord, resumed: bool) -> Result<Report, String> {
        let started = Instant::now();
        let (signal, mut cancelled) = tokio::sync::watch::channel(None::<String>);
        self.live.lock().insert(record.id.clone(), signal.clone());
        self.executing.lock().insert(record.id.clone(), Arc::downgrade(&ctx));
        // Asked to cancel before it executed (or while its process was gone).
        match self.store.cancel_request(&record.id) {
            Ok(Some(by)) => drop(signal.send_replace(Some(by))),
            Ok(None) => {}
            Err(e) => tracing::warn!(run = %record.id, "cannot look for a cancel request: {e}"),
        }
        let beat = tokio::spawn(hold::keep_lease(self.store.clone(), record.id.clone(), signal));
        let mut r = record;
        let (id, pins, tenant) = (r.id.clone(), r.pins.clone(), r.tenant.clone());
        ctx.emit(|| Event::RunStarted { run: id.clone(), flow: ctx.flow.name.clone(), tenant, resumed, pins });
        let budget = ctx.flow.budget.map(|b| RunBudget::new("flow.budget", b, None));
        let start_name = ctx.flow.steps[ctx.flow.start].name.clone();
        // Its steps' spans are made inside it.
        let span = tracing::info_span!(
            target: paddock_core::TRACE_TARGET,
            "flow.run",
            flow = %ctx.flow.name,
            run = %id,
            resumed,
        );
        let walk = {
            let _run = span.enter();
            steps::exec(
                ctx.clone(),
                ctx.flow.start,
                (*ctx.input).clone(),
                start_name,
                Scope { budget, ..Scope::default() },
            )
        }
        .instrument(span.clone());
        let lane = lane::Lane::default();
        // A cancel drops the walk: its agents stop, its fan-outs' tasks are aborted.
        let out = tokio::select! {
            out = lane.scope(walk) => Ok(out),
            by = cancelled.wait_for(Option::is_some) => Err(by.ok().and_then(|b| b.clone()).unwrap_or_default()),
        };
        // The ends still in the lane (a cancel's too) are written with the run's.
        let done = lane.take();
        beat.abort();
        let report = {
            r.updated_ms = now_ms();
            match &out {
                Ok(Ok(v)) => {
                    r.status = RunStatus::Succeeded;
                    r.output = Some(v.to_string());
                }
                Ok(Err(e)) => {
                    r.status = RunStatus::Failed;
                    r.error = Some(e.text());
                }
                Err(by) => {
                    r.status = RunStatus::Cancelled;
                    r.error = Some(format!("cancelled by {by}"));
                }
            }
            let mut stored = self.store.end_run(&r, &done);
            // An output (or a last step's end) past the bounds is not kept: the
            // run fails with why, and its record is kept in any case.
            if let Err(e) = &stored {
                if r.status == RunStatus::Succeeded {
                    (r.status, r.output, r.error) = (RunStatus::Failed, None, Some(e.clone()));
                    stored = self.store.end_run(&r, &done);
                }
                if stored.is_err() && !done.is_empty() {
                    stored = self.store.put_run(&r);
                }
            }
            self.live.lock().remove(&id);
            self.executing.lock().remove(&id);
            if let (Err(_), Some(hub)) = (&stored, &self.hub) {
                hub.close(&id);
            }
            stored?;
            let output = out.ok().and_then(Result::ok).filter(|_| r.status == RunStatus::Succeeded);
            Report { run: id.clone(), status: r.status, output, error: r.error.clone() }
        };
        ctx.emit(|| Event::RunFinished {
            run: id,
            status: report.status.word().into(),
            output: report.output.clone(),
            error: report.error.clone(),
            ms: started.elapsed().as_millis() as u64,
        });
        Ok(report)
    }
}

/// Whether another host holds `run`: its lease is not expired and its
/// holder is not known to be gone.
pub(crate) fn held_elsewhere(run: &RunRecord) -> bool {
    run.owner != lease::this_process() && !lease::expired(run.heartbeat_ms, now_ms()) && !lease::gone(&run.owner)
}
