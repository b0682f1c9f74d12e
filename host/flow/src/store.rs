//! Where runs keep their state: the run, each step's checkpoint, journals,
//! the dead-letter queue and approvals. In memory ([`super::memory`]: tests,
//! benchmarks) or in SQLite ([`super::sqlite`]), which several processes can
//! share: a `paddock approve` in one terminal answers a flow waiting in another.
//!
//! Every store counts the bytes it keeps per run and per tenant, refuses a
//! write that would pass [`FlowBounds`], lists in pages (never loading a
//! whole table), and forgets what [`Cutoffs`] say is old.

use crate::bells::Doorbells;
use paddock_core::ByteSize;
use paddock_journal::Entry;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

pub use super::memory::MemoryStore;

/// The key of [`FlowBounds::run_bytes`].
pub const RUN_BYTES_KEY: &str = "limits.max-run-bytes";
/// The key of [`FlowBounds::tenant_bytes`].
pub const TENANT_BYTES_KEY: &str = "limits.max-flow-bytes";

/// The most a store keeps: a write that would pass either is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowBounds {
    /// Bytes one run may keep: its record with its output, and its steps'
    /// checkpoints and journals.
    pub run_bytes: u64,
    /// Bytes one tenant may keep: its runs, dead letters and questions.
    pub tenant_bytes: u64,
    /// Whether `tenant_bytes` bounds every tenant together (no tenant is
    /// named in `[tenants]`, so callers naming new ones get no more room).
    pub shared: bool,
}

/// The key of the sum of every tenant in a store's per-tenant counts (no
/// tenant can be named `*`).
pub(crate) const ALL: &str = paddock_core::names::UNNAMED;

impl Default for FlowBounds {
    fn default() -> Self {
        FlowBounds { run_bytes: 64 << 20, tenant_bytes: 1 << 30, shared: false }
    }
}

impl FlowBounds {
    /// Whose bytes `tenant`'s writes are bounded by: its own, or every
    /// tenant's together ([`ALL`]) when the bound is shared.
    pub fn counted<'a>(&self, tenant: &'a str) -> &'a str {
        if self.shared { ALL } else { tenant }
    }

    /// `tenant "x"`, or who shares its bound with it, for messages.
    pub fn who(&self, tenant: &str) -> String {
        match self.shared {
            true => format!("tenant {tenant:?} and every other tenant not named in [tenants] together"),
            false => format!("tenant {tenant:?}"),
        }
    }

    /// Checks that `what`, adding `delta` bytes to run `run` (its bytes
    /// now) of `tenant` (the bytes [`counted`](Self::counted) for it now),
    /// stays within the bounds.
    pub(crate) fn check(
        &self,
        what: &(impl std::fmt::Display + ?Sized),
        run: Option<(&str, u64)>,
        tenant: (&str, u64),
        delta: u64,
    ) -> Result<(), String> {
        if let Some((run, now)) = run
            && now.saturating_add(delta) > self.run_bytes
        {
            return Err(format!(
                "flow store: {what} ({}) would take run {run} to {}, past {RUN_BYTES_KEY} ({})",
                ByteSize(delta),
                ByteSize(now.saturating_add(delta)),
                ByteSize(self.run_bytes)
            ));
        }
        let (tenant, now) = tenant;
        if now.saturating_add(delta) > self.tenant_bytes {
            return Err(format!(
                "flow store: {what} ({}) would take {} to {} of runs, dead letters and questions, \
                 past {TENANT_BYTES_KEY} ({}); finished runs are forgotten by [retention], or at once by `paddock gc`",
                ByteSize(delta),
                self.who(tenant),
                ByteSize(now.saturating_add(delta)),
                ByteSize(self.tenant_bytes)
            ));
        }
        Ok(())
    }
}

/// A page of runs, newest first.
#[derive(Clone, Debug, Default)]
pub struct RunQuery {
    /// Only this tenant's.
    pub tenant: Option<String>,
    /// Only runs of this flow.
    pub flow: Option<String>,
    /// Only runs standing so.
    pub status: Option<RunStatus>,
    /// The page after this run (the last of the previous page).
    pub after: Option<String>,
    /// The most runs on the page.
    pub limit: usize,
}

/// A page of dead letters or questions, oldest first.
#[derive(Clone, Debug, Default)]
pub struct Page {
    /// Only this tenant's.
    pub tenant: Option<String>,
    /// The page after this id (the last of the previous page).
    pub after: Option<String>,
    /// The most on the page.
    pub limit: usize,
}

/// A run as lists show it: without its spec, input and output.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunSummary {
    /// Its id.
    pub id: String,
    /// The flow's name.
    pub flow: String,
    /// Its tenant.
    pub tenant: String,
    /// How it stands.
    pub status: RunStatus,
    /// Why it failed.
    pub error: Option<String>,
    /// When it started (ms since 1970).
    pub created_ms: u64,
    /// When it last changed.
    pub updated_ms: u64,
    /// The bytes it keeps in the store.
    pub bytes: u64,
    /// The host process holding it (see [`crate::lease`]).
    pub owner: String,
    /// When its holder last renewed its lease (ms since 1970).
    pub heartbeat_ms: u64,
}

impl RunSummary {
    /// Why it runs nowhere though marked running, when that can be told at
    /// `now_ms` ([`crate::lease::interrupted`]); `None` for a finished run.
    pub fn interrupted(&self, now_ms: u64) -> Option<String> {
        (self.status == RunStatus::Running)
            .then(|| crate::lease::interrupted(&self.id, &self.owner, self.heartbeat_ms, now_ms))
            .flatten()
    }
}

/// What is old enough to forget (see `[retention]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cutoffs {
    /// Finished runs last changed before this (ms since 1970) go, with
    /// their steps and journals.
    pub runs_before_ms: u64,
    /// Past this many finished runs of a tenant, its oldest go.
    pub runs_per_tenant: u64,
    /// Questions answered or timed out before this go.
    pub approvals_before_ms: u64,
    /// Dead letters that landed before this go.
    pub dead_before_ms: u64,
}

/// What a pass of [`FlowStore::prune`] forgot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Pruned {
    /// Finished runs.
    pub runs: u64,
    /// Settled questions.
    pub approvals: u64,
    /// Dead letters.
    pub dead_letters: u64,
    /// The bytes they kept.
    pub bytes: u64,
}

/// Why the flow store failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The folder of the SQLite file cannot be made.
    #[error("cannot create {}: {reason}", dir.display())]
    CreateDir {
        /// The folder.
        dir: PathBuf,
        /// What the OS said.
        reason: String,
    },
    /// The SQLite file cannot be opened.
    #[error("cannot open {}: {reason}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// What SQLite said.
        reason: String,
    },
    /// The file's tables cannot be made (not a flow store, or damaged).
    #[error("{}: {reason}", path.display())]
    Schema {
        /// The file.
        path: PathBuf,
        /// What SQLite said.
        reason: String,
    },
    /// PostgreSQL refused, or its tables are newer than this paddock.
    #[error("flow store in PostgreSQL: {reason}")]
    Postgres {
        /// What went wrong.
        reason: String,
    },
    /// SQLite refused a setting.
    #[error("flow store: {reason}")]
    Sqlite {
        /// What SQLite said.
        reason: String,
    },
    /// An operation failed: what a [`FlowStore`] method reported (its
    /// methods report text).
    #[error("{0}")]
    Failed(String),
}

/// Why an approval was not answered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    /// No question has this id.
    #[error("no approval with id {0:?}")]
    NoApproval(String),
    /// Someone answered first.
    #[error("approval {id} is already answered: {given:?}")]
    Answered {
        /// The question.
        id: String,
        /// The answer given.
        given: String,
    },
    /// Its deadline passed.
    #[error("approval {0} timed out before it was answered")]
    TimedOut(String),
    /// The answer is not on offer.
    #[error("{option:?} is not an option of approval {id} (options: {})", options.join(", "))]
    NotAnOption {
        /// The question.
        id: String,
        /// The answer given.
        option: String,
        /// The answers on offer.
        options: Vec<String>,
    },
    /// The store failed.
    #[error("{0}")]
    Store(String),
}

/// How a run stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    /// Started and not finished (perhaps interrupted: see its owner).
    Running,
    /// Finished with an output.
    Succeeded,
    /// Finished with an error.
    Failed,
    /// Stopped by someone before it finished.
    Cancelled,
}

impl RunStatus {
    /// One word: `running`, `succeeded`, `failed` or `cancelled`.
    pub fn word(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }

    /// The status a word names (what [`RunStatus::word`] gives).
    pub fn parse(word: &str) -> Option<RunStatus> {
        [RunStatus::Running, RunStatus::Succeeded, RunStatus::Failed, RunStatus::Cancelled]
            .into_iter()
            .find(|s| s.word() == word)
    }

    /// How it stands, as a phrase: `is running`, `has succeeded`, `has failed`, `was cancelled`.
    pub fn phrase(self) -> &'static str {
        match self {
            RunStatus::Running => "is running",
            RunStatus::Succeeded => "has succeeded",
            RunStatus::Failed => "has failed",
            RunStatus::Cancelled => "was cancelled",
        }
    }
}

/// A run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Its id.
    pub id: String,
    /// The flow's name.
    pub flow: String,
    /// The file the spec came from.
    pub origin: String,
    /// The spec's TOML, as it was when the run started.
    pub source: String,
    /// The run's input (JSON).
    pub input: String,
    /// Its tenant.
    pub tenant: String,
    /// How it stands.
    pub status: RunStatus,
    /// Its output (JSON), once succeeded.
    pub output: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// The version of each agent it runs, fixed when it started.
    pub pins: BTreeMap<String, String>,
    /// The host process holding its lease ([`lease::this_process`](crate::lease::this_process));
    /// a record from before holders had ids has its pid here.
    #[serde(deserialize_with = "holder")]
    pub owner: String,
    /// When its holder last renewed the lease (ms since 1970).
    pub heartbeat_ms: u64,
    /// When it started (ms since 1970).
    pub created_ms: u64,
    /// When it last changed.
    pub updated_ms: u64,
}

/// A holder id, or the pid a record from before holders had ids keeps.
fn holder<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Holder {
        Id(String),
        Pid(u64),
    }
    Ok(match Holder::deserialize(d)? {
        Holder::Id(id) => id,
        Holder::Pid(pid) => pid.to_string(),
    })
}

/// How a step instance stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepStatus {
    /// An attempt started and has not finished (it reruns after a crash).
    Started,
    /// Finished with an output.
    Done,
    /// Finished with an error, retries exhausted.
    Failed,
    /// Failed, and its policy went on without it (`skip`, `dead_letter`).
    Skipped,
    /// A decision: which branch, which state, which approval question.
    Decided,
    /// A saga undid it.
    Compensated,
    /// A saga tried to undo it and could not.
    CompensationFailed,
}

/// One step instance's checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Its path in the run, e.g. `main/execute[2]/task`.
    pub path: String,
    /// The order it started in, across the run.
    pub seq: u64,
    /// Its kind.
    pub kind: String,
    /// The agent, for an agent step.
    pub agent: Option<String>,
    /// The agent's version id.
    pub version: Option<String>,
    /// How it stands.
    pub status: StepStatus,
    /// The attempt (1-based) it is at.
    pub attempt: u32,
    /// Its input as given to the agent.
    pub input: Option<String>,
    /// Its output (JSON), or a decision.
    pub output: Option<String>,
    /// The agent's output text, as returned.
    pub raw: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// When it started (ms since 1970).
    pub started_ms: u64,
    /// When it ended.
    pub ended_ms: Option<u64>,
    /// The host process that ran it (its holder id), when recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// A task that exhausted its retries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Its id.
    pub id: String,
    /// The run it came from.
    pub run: String,
    /// The flow.
    pub flow: String,
    /// The step instance's path.
    pub step: String,
    /// The agent.
    pub agent: String,
    /// The version that failed.
    pub version: String,
    /// The tenant.
    pub tenant: String,
    /// The input it failed on.
    pub input: String,
    /// The last error.
    pub error: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// The last attempt's host calls.
    pub journal: Vec<Entry>,
    /// When it landed (ms since 1970).
    pub created_ms: u64,
}

/// A question waiting for (or given) an answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRecord {
    /// Its id.
    pub id: String,
    /// The run asking.
    pub run: String,
    /// The tenant.
    pub tenant: String,
    /// Who asks: a step's path or an agent's name.
    pub asker: String,
    /// The question.
    pub question: String,
    /// The answers on offer.
    pub options: Vec<String>,
    /// When it was asked (ms since 1970).
    pub created_ms: u64,
    /// When it times out.
    pub deadline_ms: u64,
    /// The answer, once given.
    pub answer: Option<String>,
    /// Who answered.
    pub answered_by: Option<String>,
    /// When.
    pub answered_ms: Option<u64>,
}

impl ApprovalRecord {
    /// Whether it still waits for an answer at `now_ms`.
    pub fn waiting(&self, now_ms: u64) -> bool {
        self.answer.is_none() && now_ms < self.deadline_ms
    }
}

/// Where runs keep their state. Every method is a short transaction.
pub trait FlowStore: Send + Sync {
    /// What it keeps at most.
    fn bounds(&self) -> FlowBounds;
    /// Writes a run (inserting or replacing it). A record with an output is
    /// refused when it would pass the bounds; one without is always kept, so
    /// a run's failure is never lost. Refused ([`lease::lost`](crate::lease::lost))
    /// when a running run is stored under another holder than `run.owner`.
    fn put_run(&self, run: &RunRecord) -> Result<(), String>;
    /// Adds a run unless one with its id exists; `false` when one does.
    /// Refused when its tenant keeps its bound already.
    fn add_run(&self, run: &RunRecord) -> Result<bool, String>;
    /// A run by id.
    fn run(&self, id: &str) -> Result<Option<RunRecord>, String>;
    /// Asks the process running `run` to cancel it, on behalf of `by` (it
    /// looks at each heartbeat).
    fn request_cancel(&self, run: &str, by: &str) -> Result<(), String>;
    /// Who asked to cancel `run`, if anyone did.
    fn cancel_request(&self, run: &str) -> Result<Option<String>, String>;
    /// Takes a run over: writes `run` only if the stored one still has
    /// holder `owner` and `heartbeat_ms`, so two hosts resuming the same orphan at
    /// once cannot both win. `false` when another got there first.
    fn claim(&self, run: &RunRecord, owner: &str, heartbeat_ms: u64) -> Result<bool, String>;
    /// Renews `holder`'s lease of running run `run` to `heartbeat_ms`;
    /// `false` when the run is no longer running under that holder (another
    /// host claimed it, or it ended).
    fn renew(&self, run: &str, holder: &str, heartbeat_ms: u64) -> Result<bool, String>;
    /// A page of runs, newest first.
    fn runs(&self, query: &RunQuery) -> Result<Vec<RunSummary>, String>;
    /// Every run still running (or interrupted), oldest first.
    fn running(&self) -> Result<Vec<RunRecord>, String>;
    /// Writes a step's checkpoint (replacing the one at its path) for the
    /// run's holder `holder`; refused past the bounds, and when another
    /// holds the run.
    fn put_step(&self, run: &str, holder: &str, step: &StepRecord) -> Result<(), String>;
    /// A run's checkpoints, in the order they started.
    fn steps(&self, run: &str) -> Result<Vec<StepRecord>, String>;
    /// Keeps the journal of a step's attempt (replacing the previous
    /// attempt's) for the run's holder `holder`; refused past the bounds,
    /// and when another holds the run.
    fn put_journal(&self, run: &str, holder: &str, step: &str, attempt: u32, entries: &[Entry]) -> Result<(), String>;
    /// Keeps a finished attempt's journal and checkpoint together.
    fn finish_step(&self, run: &str, holder: &str, step: &StepRecord, journal: &[Entry]) -> Result<(), String> {
        self.put_journal(run, holder, &step.path, step.attempt, journal)?;
        self.put_step(run, holder, step)
    }
    /// Keeps finished attempts (each with its journal), then the checkpoints
    /// `next`, in one commit where the store can: how a step's start rides
    /// with the end of the step before it, and how the items of a fan-out
    /// starting and ending at once share a commit. Refused as a whole when
    /// any part is.
    fn put_steps(&self, run: &str, holder: &str, done: &[Finished], next: &[StepRecord]) -> Result<(), String> {
        for (step, journal) in done {
            self.finish_step(run, holder, step, journal)?;
        }
        next.iter().try_for_each(|step| self.put_step(run, holder, step))
    }
    /// Keeps finished attempts (as [`put_steps`](Self::put_steps)) and then
    /// the run's record (as [`put_run`](Self::put_run)), in one commit where
    /// the store can: how a run's last step ends with it.
    fn end_run(&self, run: &RunRecord, done: &[Finished]) -> Result<(), String> {
        if !done.is_empty() {
            self.put_steps(&run.id, &run.owner, done, &[])?;
        }
        self.put_run(run)
    }
    /// A step's journal and the attempt it is from.
    fn journal(&self, run: &str, step: &str) -> Result<Option<(u32, Vec<Entry>)>, String>;
    /// Adds or replaces a dead letter; refused past its tenant's bound.
    fn put_dead(&self, dead: &DeadLetter) -> Result<(), String>;
    /// A page of the dead-letter queue, oldest first.
    fn dead_letters(&self, page: &Page) -> Result<Vec<DeadLetter>, String>;
    /// A dead letter by id.
    fn dead(&self, id: &str) -> Result<Option<DeadLetter>, String>;
    /// Removes a dead letter; `false` when there was none.
    fn drop_dead(&self, id: &str) -> Result<bool, String>;
    /// Adds a question; refuses an id already taken, so no question ever
    /// replaces another, and refused past its tenant's bound.
    fn add_approval(&self, approval: &ApprovalRecord) -> Result<(), String>;
    /// A question by id.
    fn approval(&self, id: &str) -> Result<Option<ApprovalRecord>, String>;
    /// A page of questions, oldest first; with `waiting_at`, only those
    /// still waiting at that time (ms since 1970).
    fn approvals(&self, page: &Page, waiting_at: Option<u64>) -> Result<Vec<ApprovalRecord>, String>;
    /// Records `option` as the answer to `id`, unless it is answered, past
    /// its deadline at `now_ms`, or `option` is not on offer.
    fn answer(&self, id: &str, option: &str, by: &str, now_ms: u64) -> Result<ApprovalRecord, AnswerError>;
    /// The bytes `tenant` keeps: its runs, dead letters and questions.
    fn tenant_bytes(&self, tenant: &str) -> Result<u64, String>;
    /// Forgets finished runs, settled questions and dead letters older than
    /// `cutoffs` (never a running run).
    fn prune(&self, cutoffs: &Cutoffs) -> Result<Pruned, String>;
    /// The doorbells this store rings when any host (this one included)
    /// answers a question, asks for a cancel or adds a run's events; `None`
    /// when other hosts' writes ring nothing here, and waiters poll.
    fn bells(&self) -> Option<Arc<Doorbells>> {
        None
    }
    /// Whether runs' events are kept here for every host to stream
    /// ([`FlowStore::add_events`]); when not, only the host running a run has them.
    fn keeps_events(&self) -> bool {
        false
    }
    /// Appends `events` (JSON texts, in order) to run `run`'s, for its
    /// holder `holder`, numbering them on from the run's last; counted in
    /// the run's bytes. A run keeps its last [`KEEP_EVENTS`](crate::hub::KEEP_EVENTS).
    /// Refused past the bounds and when another holds the run.
    fn add_events(&self, run: &str, holder: &str, events: &[String]) -> Result<(), String> {
        let _ = (run, holder, events);
        Err("flow store: this store keeps no events".into())
    }
    /// Run `run`'s kept events numbered `from` on, at most `limit` of them,
    /// each with its number.
    fn events(&self, run: &str, from: u64, limit: usize) -> Result<Vec<(u64, String)>, String> {
        let _ = (run, from, limit);
        Ok(Vec::new())
    }
}

/// A finished attempt's checkpoint and journal, not yet written.
pub type Finished = (StepRecord, Vec<Entry>);
