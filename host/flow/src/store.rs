//! Where runs keep their state: the run, each step's checkpoint, journals,
//! the dead-letter queue and approvals. In memory (tests, benchmarks) or in
//! SQLite ([`super::sqlite`]), which several processes can share: a
//! `paddock approve` in one terminal answers a flow waiting in another.

use paddock_journal::Entry;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

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
    /// The process running it.
    pub owner: u32,
    /// When its owner last said it was alive (ms since 1970).
    pub heartbeat_ms: u64,
    /// When it started (ms since 1970).
    pub created_ms: u64,
    /// When it last changed.
    pub updated_ms: u64,
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
    /// Writes a run (inserting or replacing it).
    fn put_run(&self, run: &RunRecord) -> Result<(), String>;
    /// Adds a run unless one with its id exists; `false` when one does.
    fn add_run(&self, run: &RunRecord) -> Result<bool, String>;
    /// A run by id.
    fn run(&self, id: &str) -> Result<Option<RunRecord>, String>;
    /// Asks the process running `run` to cancel it, on behalf of `by` (it
    /// looks at each heartbeat).
    fn request_cancel(&self, run: &str, by: &str) -> Result<(), String>;
    /// Who asked to cancel `run`, if anyone did.
    fn cancel_request(&self, run: &str) -> Result<Option<String>, String>;
    /// Takes a run over: writes `run` only if the stored one still has
    /// `owner` and `heartbeat_ms`, so two hosts resuming the same orphan at
    /// once cannot both win. `false` when another got there first.
    fn claim(&self, run: &RunRecord, owner: u32, heartbeat_ms: u64) -> Result<bool, String>;
    /// Every run, newest first.
    fn runs(&self) -> Result<Vec<RunRecord>, String>;
    /// Writes a step's checkpoint (replacing the one at its path).
    fn put_step(&self, run: &str, step: &StepRecord) -> Result<(), String>;
    /// A run's checkpoints, in the order they started.
    fn steps(&self, run: &str) -> Result<Vec<StepRecord>, String>;
    /// Keeps the journal of a step's attempt (replacing the previous attempt's).
    fn put_journal(&self, run: &str, step: &str, attempt: u32, entries: &[Entry]) -> Result<(), String>;
    /// Keeps a finished attempt's journal and checkpoint together.
    fn finish_step(&self, run: &str, step: &StepRecord, journal: &[Entry]) -> Result<(), String> {
        self.put_journal(run, &step.path, step.attempt, journal)?;
        self.put_step(run, step)
    }
    /// A step's journal and the attempt it is from.
    fn journal(&self, run: &str, step: &str) -> Result<Option<(u32, Vec<Entry>)>, String>;
    /// Adds or replaces a dead letter.
    fn put_dead(&self, dead: &DeadLetter) -> Result<(), String>;
    /// The dead-letter queue, oldest first.
    fn dead_letters(&self) -> Result<Vec<DeadLetter>, String>;
    /// A dead letter by id.
    fn dead(&self, id: &str) -> Result<Option<DeadLetter>, String>;
    /// Removes a dead letter; `false` when there was none.
    fn drop_dead(&self, id: &str) -> Result<bool, String>;
    /// Adds a question; refuses an id already taken, so no question ever
    /// replaces another.
    fn add_approval(&self, approval: &ApprovalRecord) -> Result<(), String>;
    /// A question by id.
    fn approval(&self, id: &str) -> Result<Option<ApprovalRecord>, String>;
    /// Questions, oldest first.
    fn approvals(&self) -> Result<Vec<ApprovalRecord>, String>;
    /// Records `option` as the answer to `id`, unless it is answered, past
    /// its deadline at `now_ms`, or `option` is not on offer.
    fn answer(&self, id: &str, option: &str, by: &str, now_ms: u64) -> Result<ApprovalRecord, AnswerError>;
}

/// The error for a question id that is already in use.
pub(super) fn taken(id: &str) -> String {
    format!("flow store: approval id {id:?} is already taken")
}

/// Checks an answer against its question, then records it.
pub(super) fn apply_answer(a: &mut ApprovalRecord, option: &str, by: &str, now_ms: u64) -> Result<(), AnswerError> {
    if let Some(given) = &a.answer {
        return Err(AnswerError::Answered { id: a.id.clone(), given: given.clone() });
    }
    if now_ms >= a.deadline_ms {
        return Err(AnswerError::TimedOut(a.id.clone()));
    }
    if !a.options.iter().any(|o| o == option) {
        return Err(AnswerError::NotAnOption {
            id: a.id.clone(),
            option: option.to_string(),
            options: a.options.clone(),
        });
    }
    a.answer = Some(option.to_string());
    a.answered_by = Some(by.to_string());
    a.answered_ms = Some(now_ms);
    Ok(())
}

/// A store that lives as long as the process (tests, benchmarks, `host.flows = "memory"`).
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Memory>,
}

#[derive(Default)]
struct Memory {
    runs: HashMap<String, RunRecord>,
    steps: HashMap<String, HashMap<String, StepRecord>>,
    journals: HashMap<(String, String), (u32, Vec<Entry>)>,
    dead: BTreeMap<String, DeadLetter>,
    approvals: BTreeMap<String, ApprovalRecord>,
    cancels: HashMap<String, String>,
}

impl FlowStore for MemoryStore {
    fn put_run(&self, run: &RunRecord) -> Result<(), String> {
        self.inner.lock().runs.insert(run.id.clone(), run.clone());
        Ok(())
    }

    fn add_run(&self, run: &RunRecord) -> Result<bool, String> {
        match self.inner.lock().runs.entry(run.id.clone()) {
            std::collections::hash_map::Entry::Occupied(_) => Ok(false),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(run.clone());
                Ok(true)
            }
        }
    }

    fn run(&self, id: &str) -> Result<Option<RunRecord>, String> {
        Ok(self.inner.lock().runs.get(id).cloned())
    }

    fn request_cancel(&self, run: &str, by: &str) -> Result<(), String> {
        self.inner.lock().cancels.insert(run.to_string(), by.to_string());
        Ok(())
    }

    fn cancel_request(&self, run: &str) -> Result<Option<String>, String> {
        Ok(self.inner.lock().cancels.get(run).cloned())
    }

    fn claim(&self, run: &RunRecord, owner: u32, heartbeat_ms: u64) -> Result<bool, String> {
        let mut inner = self.inner.lock();
        match inner.runs.get_mut(&run.id) {
            Some(r) if r.owner == owner && r.heartbeat_ms == heartbeat_ms => {
                r.clone_from(run);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn runs(&self) -> Result<Vec<RunRecord>, String> {
        let mut runs: Vec<RunRecord> = self.inner.lock().runs.values().cloned().collect();
        runs.sort_by(|a, b| b.created_ms.cmp(&a.created_ms).then(b.id.cmp(&a.id)));
        Ok(runs)
    }

    fn put_step(&self, run: &str, step: &StepRecord) -> Result<(), String> {
        let mut inner = self.inner.lock();
        let steps = inner.steps.entry(run.to_string()).or_default();
        match steps.get_mut(&step.path) {
            Some(existing) => existing.clone_from(step),
            None => {
                steps.insert(step.path.clone(), step.clone());
            }
        }
        Ok(())
    }

    fn steps(&self, run: &str) -> Result<Vec<StepRecord>, String> {
        let mut steps: Vec<StepRecord> =
            self.inner.lock().steps.get(run).map(|s| s.values().cloned().collect()).unwrap_or_default();
        steps.sort_by_key(|s| s.seq);
        Ok(steps)
    }

    fn put_journal(&self, run: &str, step: &str, attempt: u32, entries: &[Entry]) -> Result<(), String> {
        self.inner.lock().journals.insert((run.to_string(), step.to_string()), (attempt, entries.to_vec()));
        Ok(())
    }

    fn journal(&self, run: &str, step: &str) -> Result<Option<(u32, Vec<Entry>)>, String> {
        Ok(self.inner.lock().journals.get(&(run.to_string(), step.to_string())).cloned())
    }

    fn put_dead(&self, dead: &DeadLetter) -> Result<(), String> {
        self.inner.lock().dead.insert(dead.id.clone(), dead.clone());
        Ok(())
    }

    fn dead_letters(&self) -> Result<Vec<DeadLetter>, String> {
        let mut all: Vec<DeadLetter> = self.inner.lock().dead.values().cloned().collect();
        all.sort_by(|a, b| a.created_ms.cmp(&b.created_ms).then(a.id.cmp(&b.id)));
        Ok(all)
    }

    fn dead(&self, id: &str) -> Result<Option<DeadLetter>, String> {
        Ok(self.inner.lock().dead.get(id).cloned())
    }

    fn drop_dead(&self, id: &str) -> Result<bool, String> {
        Ok(self.inner.lock().dead.remove(id).is_some())
    }

    fn add_approval(&self, approval: &ApprovalRecord) -> Result<(), String> {
        match self.inner.lock().approvals.entry(approval.id.clone()) {
            std::collections::btree_map::Entry::Occupied(_) => Err(taken(&approval.id)),
            std::collections::btree_map::Entry::Vacant(slot) => {
                slot.insert(approval.clone());
                Ok(())
            }
        }
    }

    fn approval(&self, id: &str) -> Result<Option<ApprovalRecord>, String> {
        Ok(self.inner.lock().approvals.get(id).cloned())
    }

    fn approvals(&self) -> Result<Vec<ApprovalRecord>, String> {
        let mut all: Vec<ApprovalRecord> = self.inner.lock().approvals.values().cloned().collect();
        all.sort_by(|a, b| a.created_ms.cmp(&b.created_ms).then(a.id.cmp(&b.id)));
        Ok(all)
    }

    fn answer(&self, id: &str, option: &str, by: &str, now_ms: u64) -> Result<ApprovalRecord, AnswerError> {
        let mut inner = self.inner.lock();
        let a = inner.approvals.get_mut(id).ok_or_else(|| AnswerError::NoApproval(id.to_string()))?;
        apply_answer(a, option, by, now_ms)?;
        Ok(a.clone())
    }
}
