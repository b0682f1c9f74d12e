//! One run being executed: its checkpoints, the agents it is pinned to, and
//! agent steps (attempts, retries, journals, failure policies).
//!
//! The engine is a deterministic walk of the spec: every step instance has a
//! path (`main/execute[2]/task`), and before running one the walk looks for
//! its checkpoint. A finished one answers from it, so after a crash the walk
//! goes straight to the first unfinished step; a step found `started` was
//! interrupted and runs again, under the same idempotency key.

use super::approvals::{ApprovalService, now_ms};
use super::events::{Event, abbreviate};
use super::expr::{Ref, Root, point};
use super::lease;
use super::spec::{Flow, ItemPolicy, Kind, Step};
use super::store::{DeadLetter, FlowStore, StepRecord, StepStatus};
pub use super::work::Leaf;
use super::work::WorkQueue;
use paddock_blackboard::Lookup;
use paddock_journal::{Entry, Tape};
use paddock_quota::run::RunBudget;
use paddock_runtime::{Agent, RunError, RunOptions, Runtime};
use parking_lot::Mutex;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Why a step failed.
#[derive(Clone, Debug)]
pub struct StepErr {
    /// The path of the step that failed first.
    pub path: String,
    /// What went wrong.
    pub message: String,
    /// The agent step that exhausted its retries, for a dead letter.
    pub leaf: Option<Box<Leaf>>,
}

impl StepErr {
    pub(super) fn new(path: &str, message: impl Into<String>) -> StepErr {
        StepErr { path: path.to_string(), message: message.into(), leaf: None }
    }

    /// `path: message`.
    pub fn text(&self) -> String {
        format!("{}: {}", self.path, self.message)
    }
}

/// What a step's output is, or why there is none.
pub type Out = Result<Value, StepErr>;

/// Where a step runs: the item it works on and the budget around it.
#[derive(Clone, Default)]
pub struct Scope {
    /// The `for-each` item and its index.
    pub item: Option<(Value, usize)>,
    /// The budget everything inside spends.
    pub budget: Option<Arc<RunBudget>>,
    /// The failure policy a `parallel` gives its items.
    pub policy: Option<ItemPolicy>,
    /// An item this host's workers claimed from the shared queue: it waits
    /// for a slot under its tenant's cap only up to its timeout, so one
    /// tenant's items at its cap never hold the workers every tenant's share.
    pub claimed: bool,
}

/// A run being executed.
pub struct Ctx {
    pub(super) runtime: Runtime,
    pub(super) store: Arc<dyn FlowStore>,
    pub(super) approvals: Arc<ApprovalService>,
    pub(super) flow: Arc<Flow>,
    pub(super) run: Arc<str>,
    pub(super) tenant: String,
    pub(super) input: Arc<Value>,
    pub(super) agents: HashMap<String, Arc<Agent>>,
    pub(super) checkpoints: Mutex<HashMap<String, StepRecord>>,
    pub(super) outputs: Mutex<HashMap<String, Value>>,
    pub(super) seq: AtomicU64,
    pub(super) events: Option<super::events::Sink>,
    /// Where fan-outs' items are published for every host, when shared.
    pub(super) work: Option<Arc<dyn WorkQueue>>,
    /// The writer of the run's events to a store shared by hosts.
    pub(super) outbox: Option<Arc<super::shared::Outbox>>,
    /// Whether the run's fan-outs claim their own published items (no
    /// worker of this process does).
    pub(super) claims: bool,
    /// The run's checkpoint writes from tasks at once, in shared commits.
    pub(super) gather: Arc<super::gather::Gather>,
}

impl Ctx {
    pub(super) fn emit(&self, event: impl FnOnce() -> Event) {
        if let Some(sink) = &self.events {
            sink(event());
        }
    }

    /// The checkpoint at `path`, if any.
    pub(super) fn checkpoint(&self, path: &str) -> Option<StepRecord> {
        self.checkpoints.lock().get(path).cloned()
    }

    /// A context of the same run for one fan-out item run on this host: its
    /// checkpoints numbered from `seq`, none of the run's others kept.
    pub(super) fn for_item(&self, seq: u64) -> Ctx {
        Ctx {
            runtime: self.runtime.clone(),
            store: self.store.clone(),
            approvals: self.approvals.clone(),
            flow: self.flow.clone(),
            run: self.run.clone(),
            tenant: self.tenant.clone(),
            input: self.input.clone(),
            agents: self.agents.clone(),
            checkpoints: Mutex::default(),
            outputs: Mutex::default(),
            seq: AtomicU64::new(seq),
            events: self.events.clone(),
            work: None,
            outbox: self.outbox.clone(),
            claims: false,
            gather: self.gather.clone(),
        }
    }

    /// Takes in the checkpoint of an item another task or host ran.
    pub(super) fn adopt(&self, rec: StepRecord) {
        self.checkpoints.lock().insert(rec.path.clone(), rec);
    }

    pub(super) fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    /// A fresh record for `path`.
    pub(super) fn rec(&self, path: &str, kind: &str, status: StepStatus) -> StepRecord {
        StepRecord {
            path: path.to_string(),
            seq: self.next_seq(),
            kind: kind.to_string(),
            agent: None,
            version: None,
            status,
            attempt: 0,
            input: None,
            output: None,
            raw: None,
            error: None,
            started_ms: now_ms(),
            ended_ms: None,
            host: Some(lease::this_process().to_string()),
        }
    }

    /// Records a composite step's output.
    pub(super) async fn finish(&self, path: &str, step: &Step, output: &Value, started: Instant) -> Out {
        let mut rec = self.rec(path, step.kind.label(), StepStatus::Done);
        rec.output = Some(output.to_string());
        rec.ended_ms = Some(now_ms());
        self.record(rec).await?;
        self.outputs.lock().insert(step.name.clone(), output.clone());
        self.emit(|| Event::StepFinished {
            step: path.to_string(),
            kind: step.kind.label().into(),
            ms: millis(started),
            output: abbreviate(&output.to_string(), 200),
        });
        Ok(output.clone())
    }

    /// What a finished step's checkpoint says, if it has one.
    pub(super) fn reuse(&self, path: &str, step: &Step) -> Option<Out> {
        let rec = self.checkpoint(path)?;
        let out = match rec.status {
            StepStatus::Done | StepStatus::Skipped | StepStatus::Compensated | StepStatus::CompensationFailed => {
                Ok(rec.output.as_deref().and_then(|o| serde_json::from_str(o).ok()).unwrap_or(Value::Null))
            }
            StepStatus::Failed => Err(StepErr::new(path, rec.error.unwrap_or_default())),
            StepStatus::Started | StepStatus::Decided => return None,
        };
        if let Ok(v) = &out {
            self.outputs.lock().insert(step.name.clone(), v.clone());
        }
        self.emit(|| Event::StepReused { step: path.to_string() });
        Some(out)
    }

    /// Resolves a reference, `input` being `input`.
    pub(super) fn lookup(&self, r: &Ref, input: &Value, scope: &Scope) -> Result<Value, String> {
        let base = match &r.root {
            Root::Input => input.clone(),
            Root::Flow => (*self.input).clone(),
            Root::Item => scope.item.as_ref().map(|i| i.0.clone()).ok_or("`item` is only defined inside for-each")?,
            Root::Index => {
                scope.item.as_ref().map(|i| Value::from(i.1)).ok_or("`index` is only defined inside for-each")?
            }
            Root::Run => Value::String(self.run.to_string()),
            Root::Step(name) => self.outputs.lock().get(name).cloned().unwrap_or(Value::Null),
            Root::Board(key) => match self.runtime.blackboard().namespace(&self.tenant).lookup(key) {
                Ok(Lookup::Found(e)) => serde_json::from_slice(&e.value)
                    .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&e.value).into_owned())),
                Ok(_) => Value::Null,
                Err(e) => return Err(format!("bb:{key}: {e}")),
            },
        };
        Ok(point(&base, &r.pointer))
    }

    /// A step's input: its template rendered, or `default`.
    pub(super) fn input_of(&self, step: &Step, default: Value, scope: &Scope, path: &str) -> Result<Value, StepErr> {
        match &step.input {
            None => Ok(default),
            Some(t) => t
                .render(&|r| self.lookup(r, &default, scope))
                .map_err(|e| StepErr::new(path, format!("steps.{}.input: {e}", step.name))),
        }
    }

    fn env(&self, path: &str, attempt: u32, key_suffix: &str) -> Vec<(String, String)> {
        step_env(&self.run, &self.flow.name, path, attempt, key_suffix)
    }

    /// Runs an agent step: attempts with backoff, each checkpointed as
    /// started before it runs, its journal kept, its end recorded.
    pub(super) async fn agent_step(&self, step: &Step, input: Value, path: &str, scope: &Scope) -> Out {
        let Kind::Agent { agent: name, .. } = &step.kind else { unreachable!("agent_step runs agent steps") };
        let agent = self
            .agents
            .get(name)
            .cloned()
            .ok_or_else(|| StepErr::new(path, format!("agent {name:?} is not pinned")))?;
        let text = match &input {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        // An interrupted attempt counts: the rerun is the next attempt.
        let before = self.checkpoint(path).filter(|r| r.status == StepStatus::Started).map_or(0, |r| r.attempt);
        let last = step.retry.attempts.max(before + 1);
        let started = Instant::now();
        let mut attempt = before;
        let (message, rec) = loop {
            attempt += 1;
            let Attempt { mut rec, journal, result, retryable } =
                self.attempt(step, &agent, &text, path, attempt, scope).await?;
            match result {
                Ok(raw) => return self.succeed(step, rec, raw, journal, started),
                Err(e) if retryable && attempt < last => {
                    let wait = backoff(step, attempt);
                    self.emit(|| Event::StepRetrying {
                        step: path.to_string(),
                        attempt,
                        error: e.clone(),
                        wait_ms: wait.as_millis() as u64,
                    });
                    tokio::time::sleep(wait).await;
                }
                Err(e) => {
                    rec.error = Some(e.clone());
                    break (e, rec);
                }
            }
        };
        let leaf = Leaf { agent: name.clone(), version: agent.version.to_string(), input: text, attempts: attempt };
        let err = StepErr { path: path.to_string(), message, leaf: Some(Box::new(leaf)) };
        self.give_up(step, err, rec, scope).await
    }

    /// One attempt of an agent step: checkpointed as started, run, its
    /// journal kept when it failed (a success keeps it with its checkpoint).
    async fn attempt(
        &self,
        step: &Step,
        agent: &Arc<Agent>,
        text: &str,
        path: &str,
        attempt: u32,
        scope: &Scope,
    ) -> Result<Attempt, StepErr> {
        let Kind::Agent { agent: name, .. } = &step.kind else { unreachable!("attempt runs agent steps") };
        let mut rec = self.rec(path, "agent", StepStatus::Started);
        rec.agent = Some(name.clone());
        rec.version = Some(agent.version.to_string());
        rec.attempt = attempt;
        rec.input = Some(text.to_string());
        self.record(rec.clone()).await?;
        self.emit(|| Event::StepStarted {
            step: path.to_string(),
            kind: "agent".into(),
            agent: Some(name.clone()),
            attempt: Some(attempt),
        });
        let tape = Tape::recording();
        let mut overrides = step.limits;
        overrides.timeout = step.timeout;
        let options = RunOptions {
            tenant: Some(self.tenant.clone()),
            run: Some(self.run.to_string()),
            overrides,
            journal: Some(tape.clone()),
            budget: scope.budget.clone(),
            env: self.env(path, attempt, ""),
            // A step waits its turn for a slot however long the queue: the run
            // is durable, and starting more runs than the tenant's cap lets run
            // at once must not fail them (its runs' bytes bound how many wait).
            slot_wait: (!scope.claimed).then_some(std::time::Duration::MAX),
            ..RunOptions::default()
        };
        let (result, retryable) = match self.runtime.run(agent, text, &options).await {
            Ok(outcome) => (outcome.result.map_err(|e| e.to_string()), true),
            Err(e @ (RunError::Load(_) | RunError::Options(_) | RunError::Refused(_) | RunError::Busy(_))) => {
                (Err(e.to_string()), false)
            }
        };
        rec.ended_ms = Some(now_ms());
        let journal = tape.entries();
        if result.is_err() {
            self.store
                .put_journal(&self.run, lease::this_process(), path, attempt, &journal)
                .map_err(|e| StepErr::new(path, e))?;
        }
        Ok(Attempt { rec, journal, result, retryable })
    }

    /// Records an agent step's success: its checkpoint and journal kept
    /// together (written with the task's next checkpoint), then its output.
    fn succeed(&self, step: &Step, mut rec: StepRecord, raw: String, journal: Vec<Entry>, started: Instant) -> Out {
        let output = serde_json::from_str(&raw).unwrap_or_else(|_| Value::String(raw.clone()));
        rec.status = StepStatus::Done;
        rec.output = Some(output.to_string());
        rec.raw = Some(raw);
        let path = rec.path.clone();
        self.keep_finished(&rec, journal)?;
        self.checkpoints.lock().insert(path.clone(), rec);
        self.outputs.lock().insert(step.name.clone(), output.clone());
        self.emit(|| Event::StepFinished {
            step: path,
            kind: "agent".into(),
            ms: millis(started),
            output: abbreviate(&output.to_string(), 200),
        });
        Ok(output)
    }

    /// An agent step out of attempts: fails, or (per its item's or its own
    /// policy) is skipped or dead-lettered and answers `null`.
    async fn give_up(&self, step: &Step, err: StepErr, mut rec: StepRecord, scope: &Scope) -> Out {
        let path = err.path.clone();
        match scope.policy.unwrap_or(step.on_error) {
            ItemPolicy::Fail => {
                rec.status = StepStatus::Failed;
                self.record(rec).await?;
                self.emit(|| Event::StepFailed { step: path, error: err.message.clone() });
                Err(err)
            }
            policy => {
                rec.status = StepStatus::Skipped;
                rec.output = Some("null".into());
                self.record(rec).await?;
                let dead = if policy == ItemPolicy::DeadLetter { Some(self.dead_letter(&err)?) } else { None };
                self.emit(|| Event::StepSkipped { step: path, error: err.message.clone(), dead_letter: dead });
                Ok(Value::Null)
            }
        }
    }

    /// Puts a failed task in the dead-letter queue; returns its id.
    pub(super) fn dead_letter(&self, err: &StepErr) -> Result<String, StepErr> {
        let leaf = err.leaf.as_deref().cloned().unwrap_or(Leaf {
            agent: String::new(),
            version: String::new(),
            input: String::new(),
            attempts: 0,
        });
        let journal = self.store.journal(&self.run, &err.path).ok().flatten().map(|j| j.1).unwrap_or_default();
        // One dead letter per step instance: a resumed run that meets the
        // same failure again replaces it rather than adding a second.
        let id = format!("dl-{}", &blake3::hash(format!("{}/{}", self.run, err.path).as_bytes()).to_hex()[..12]);
        let dead = DeadLetter {
            id: id.clone(),
            run: self.run.to_string(),
            flow: self.flow.name.clone(),
            step: err.path.clone(),
            agent: leaf.agent,
            version: leaf.version,
            tenant: self.tenant.clone(),
            input: leaf.input,
            error: err.message.clone(),
            attempts: leaf.attempts,
            journal,
            created_ms: now_ms(),
        };
        self.store.put_dead(&dead).map_err(|e| StepErr::new(&err.path, e))?;
        Ok(id)
    }

    /// Calls the `compensate` export of the agent step at `rec`'s path;
    /// records the result, so a resumed saga does not undo it twice.
    pub(super) async fn compensate(&self, rec: &StepRecord) -> Result<(), String> {
        let undo = format!("{}~undo", rec.path);
        if let Some(done) = self.checkpoint(&undo) {
            return match done.status {
                StepStatus::Compensated => Ok(()),
                _ => Err(done.error.unwrap_or_default()),
            };
        }
        let name = rec.agent.clone().unwrap_or_default();
        let agent = self.agents.get(&name).cloned().ok_or_else(|| format!("agent {name:?} is not pinned"))?;
        let options = RunOptions {
            tenant: Some(self.tenant.clone()),
            run: Some(self.run.to_string()),
            env: self.env(&rec.path, 1, "~undo"),
            compensate: true,
            ..RunOptions::default()
        };
        let input = rec.input.clone().unwrap_or_default();
        let result = match self.runtime.run(&agent, &input, &options).await {
            Ok(outcome) => outcome.result.map(drop).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let mut done = self.rec(&undo, "compensate", StepStatus::Compensated);
        done.agent = Some(name);
        done.ended_ms = Some(now_ms());
        if let Err(e) = &result {
            done.status = StepStatus::CompensationFailed;
            done.error = Some(e.clone());
        }
        self.record(done).await.map_err(|e| e.text())?;
        result
    }
}

/// How one attempt of an agent step went.
struct Attempt {
    /// Its checkpoint, `started` until the caller records its end.
    rec: StepRecord,
    /// The host calls it made.
    journal: Vec<Entry>,
    /// The agent's output text, or why there is none.
    result: Result<String, String>,
    /// Whether another attempt may go differently (not for an agent that
    /// does not load, bad options, or a refusal).
    retryable: bool,
}

/// What a flow step's agent sees: `PADDOCK_RUN`, `PADDOCK_FLOW`,
/// `PADDOCK_STEP`, `PADDOCK_ATTEMPT` and `PADDOCK_IDEMPOTENCY_KEY`
/// (`<run>/<path>`, the same for every attempt of the step instance).
pub(super) fn step_env(run: &str, flow: &str, path: &str, attempt: u32, key_suffix: &str) -> Vec<(String, String)> {
    vec![
        ("PADDOCK_RUN".into(), run.to_string()),
        ("PADDOCK_FLOW".into(), flow.to_string()),
        ("PADDOCK_STEP".into(), path.to_string()),
        ("PADDOCK_ATTEMPT".into(), attempt.to_string()),
        ("PADDOCK_IDEMPOTENCY_KEY".into(), format!("{run}/{path}{key_suffix}")),
    ]
}

/// Milliseconds since `started`, to 0.1.
pub(super) fn millis(started: Instant) -> f64 {
    (started.elapsed().as_secs_f64() * 10_000.0).round() / 10.0
}

/// Full-jitter exponential backoff before attempt `attempt + 1`.
fn backoff(step: &Step, attempt: u32) -> Duration {
    let ceiling = step.retry.backoff.saturating_mul(1 << (attempt - 1).min(20)).min(step.retry.max_backoff);
    ceiling.mul_f64(fastrand::f64())
}
