//! What a run reports as it goes: `paddock flow run` prints these as
//! readable lines, or one JSON object per line with `--json`.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Where a run's events go, called as they happen (on the run's tasks, so
/// it must be quick).
pub type Sink = Arc<dyn Fn(Event) + Send + Sync>;

/// One thing that happened in a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// A run started (or resumed).
    RunStarted {
        /// The run.
        run: String,
        /// The flow.
        flow: String,
        /// The tenant.
        tenant: String,
        /// Whether it continues an interrupted run.
        resumed: bool,
        /// The agent versions it runs.
        pins: BTreeMap<String, String>,
    },
    /// A step started.
    StepStarted {
        /// Its path.
        step: String,
        /// Its kind.
        kind: Cow<'static, str>,
        /// The agent, for an agent step.
        #[serde(skip_serializing_if = "Option::is_none")]
        agent: Option<String>,
        /// The attempt, for an agent step.
        #[serde(skip_serializing_if = "Option::is_none")]
        attempt: Option<u32>,
    },
    /// A step finished.
    StepFinished {
        /// Its path.
        step: String,
        /// Its kind.
        kind: Cow<'static, str>,
        /// How long it took, in milliseconds (to 0.1).
        ms: f64,
        /// Its output, cut to 200 characters.
        output: String,
    },
    /// A finished step was not run again: its checkpoint answered.
    StepReused {
        /// Its path.
        step: String,
    },
    /// An attempt failed and another follows.
    StepRetrying {
        /// Its path.
        step: String,
        /// The attempt that failed.
        attempt: u32,
        /// Why.
        error: String,
        /// The wait before the next attempt, in milliseconds.
        wait_ms: u64,
    },
    /// A step failed.
    StepFailed {
        /// Its path.
        step: String,
        /// Why.
        error: String,
    },
    /// A failed step was skipped by its policy.
    StepSkipped {
        /// Its path.
        step: String,
        /// Why it failed.
        error: String,
        /// The dead letter it became, if its policy is `dead_letter`.
        #[serde(skip_serializing_if = "Option::is_none")]
        dead_letter: Option<String>,
    },
    /// A branch chose.
    BranchTaken {
        /// The branch's path.
        step: String,
        /// The step it runs ("" when none: the input passes through).
        to: String,
    },
    /// A machine moved.
    Transition {
        /// The machine's path.
        step: String,
        /// The state it left.
        from: String,
        /// The state it entered.
        to: String,
        /// Transitions so far.
        n: u32,
    },
    /// A vote was counted.
    VoteCounted {
        /// The vote's path.
        step: String,
        /// The winning answer.
        winner: Value,
        /// Votes (or weight) per answer.
        tally: BTreeMap<String, u64>,
    },
    /// A step waits for a person.
    ApprovalWaiting {
        /// Its path.
        step: String,
        /// The approval's id (for `paddock approve ID OPTION`).
        id: String,
        /// The question.
        question: String,
        /// The options.
        options: Vec<String>,
        /// When it times out (ms since 1970).
        deadline_ms: u64,
    },
    /// A person answered (or the timeout chose).
    ApprovalAnswered {
        /// Its path.
        step: String,
        /// The approval's id.
        id: String,
        /// The answer.
        answer: String,
        /// Who answered ("timeout" when the deadline chose).
        by: String,
    },
    /// A saga undid a step.
    Compensated {
        /// The step undone.
        step: String,
    },
    /// A saga could not undo a step, and went on with the others.
    CompensationFailed {
        /// The step.
        step: String,
        /// Why.
        error: String,
    },
    /// The run finished.
    RunFinished {
        /// The run.
        run: String,
        /// `succeeded` or `failed`.
        status: Cow<'static, str>,
        /// Its output.
        #[serde(skip_serializing_if = "Option::is_none")]
        output: Option<Value>,
        /// Why it failed.
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// How long it took (this process), in milliseconds.
        ms: u64,
    },
}

/// Cuts `text` to `max` characters, marking the cut.
pub fn abbreviate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((i, _)) => format!("{}…", &text[..i]),
    }
}

impl Event {
    /// One readable line.
    pub fn line(&self) -> String {
        match self {
            Event::RunStarted { run, flow, tenant, resumed, pins } => {
                let agents: Vec<String> = pins.iter().map(|(a, v)| format!("{a} {v}")).collect();
                let verb = if *resumed { "resumed" } else { "started" };
                format!("run {run} {verb}: flow {flow}, tenant {tenant}; agents: {}", agents.join(", "))
            }
            Event::StepStarted { step, kind, agent, attempt } => match (agent, attempt) {
                (Some(a), Some(n)) if *n > 1 => format!("  ▸ {step}  ({a}, attempt {n})"),
                (Some(a), _) => format!("  ▸ {step}  ({a})"),
                _ => format!("  ▸ {step}  [{kind}]"),
            },
            Event::StepFinished { step, ms, output, .. } => format!("  ✓ {step}  {ms:.1} ms  → {output}"),
            Event::StepReused { step } => format!("  ↺ {step}  finished before; not run again"),
            Event::StepRetrying { step, attempt, error, wait_ms } => {
                format!("  ↻ {step}  attempt {attempt} failed: {error}; retrying in {wait_ms} ms")
            }
            Event::StepFailed { step, error } => format!("  ✗ {step}  {error}"),
            Event::StepSkipped { step, error, dead_letter } => match dead_letter {
                Some(id) => format!("  ⤳ {step}  dead-lettered as {id}: {error}"),
                None => format!("  ⤳ {step}  skipped: {error}"),
            },
            Event::BranchTaken { step, to } if to.is_empty() => {
                format!("  ⑂ {step}  no case holds; input passes through")
            }
            Event::BranchTaken { step, to } => format!("  ⑂ {step}  → {to}"),
            Event::Transition { step, from, to, n } => format!("  ⇢ {step}  {from} → {to}  (transition {n})"),
            Event::VoteCounted { step, winner, tally } => {
                let t: Vec<String> = tally.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                format!("  ☑ {step}  winner {}  ({})", abbreviate(&winner.to_string(), 80), t.join(", "))
            }
            Event::ApprovalWaiting { step, id, question, options, .. } => format!(
                "  ? {step}  waiting for approval {id}: {question} [{}]\n    answer with: paddock approve {id} <{}>",
                options.join(" | "),
                options.join("|")
            ),
            Event::ApprovalAnswered { step, id, answer, by } => {
                format!("  ! {step}  approval {id}: {answer} (by {by})")
            }
            Event::Compensated { step } => format!("  ⟲ {step}  compensated"),
            Event::CompensationFailed { step, error } => format!("  ⚠ {step}  compensation failed: {error}"),
            Event::RunFinished { run, status, error, ms, .. } => match error {
                Some(e) => format!("run {run} {status} after {ms} ms: {e}"),
                None => format!("run {run} {status} in {ms} ms"),
            },
        }
    }
}
