//! The step kinds and their settings, as a checked spec holds them.

use super::StepId;
use crate::expr::{Cond, Ref, Template};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// Retries of an agent step: full-jitter exponential backoff.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Retry {
    /// Attempts in all (1 = no retry).
    pub attempts: u32,
    /// The first backoff's ceiling.
    pub backoff: Duration,
    /// The largest backoff.
    pub max_backoff: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry { attempts: 1, backoff: Duration::from_millis(200), max_backoff: Duration::from_secs(10) }
    }
}

/// How `parallel` joins its items.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Join {
    /// Every item must finish (failures per the item policy).
    All,
    /// The first success wins; the others are cancelled.
    Any,
    /// This many successes win; the others are cancelled.
    Quorum(usize),
}

/// What a failed item (or step) does.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ItemPolicy {
    /// Fail the step around it.
    Fail,
    /// Give `null` and go on.
    Skip,
    /// Put it in the dead-letter queue, give `null` and go on.
    DeadLetter,
}

/// How a vote is decided.
#[derive(Clone, Debug, PartialEq)]
pub enum Method {
    /// The answer most voters gave.
    Majority,
    /// The answer with the most weight (`weights`, default 1 per voter).
    Weighted(HashMap<String, u32>),
    /// A judge step picks among the candidates.
    Judge(StepId),
}

/// What a tied vote does.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Tie {
    /// The step fails, naming the tied answers.
    Fail,
    /// The tied answer of the earliest voter wins.
    First,
    /// The judge step picks among the tied answers.
    Judge,
}

/// A state of a `machine`.
#[derive(Debug)]
pub struct State {
    /// Its name.
    pub name: String,
    /// The step run on entering it.
    pub step: Option<StepId>,
    /// Transitions, tried in order: a guard (none = always) and the next state.
    pub next: Vec<(Option<Cond>, usize)>,
}

/// What a step does.
#[derive(Debug)]
pub enum Kind {
    /// Runs an agent.
    Agent {
        /// The agent's name.
        agent: String,
        /// Whether a saga calls its `compensate` export.
        compensate: bool,
    },
    /// Runs steps one after another; each gets the previous one's output.
    Sequence(Vec<StepId>),
    /// A sequence that compensates its finished steps in reverse when one fails.
    Saga(Vec<StepId>),
    /// Runs branches (or one step per item) at once.
    Parallel {
        /// Fixed branches, or none with `for_each`.
        branches: Vec<StepId>,
        /// An array reference and the step run for each of its items.
        for_each: Option<(Ref, StepId)>,
        /// How it joins.
        join: Join,
        /// What a failed item does.
        on_item_error: ItemPolicy,
        /// Most items running at once.
        max_concurrency: usize,
    },
    /// Voters run at once; one answer wins.
    Vote {
        /// The voting steps.
        voters: Vec<StepId>,
        /// How the winner is found.
        method: Method,
        /// What is compared: a JSON pointer into each output (`""` = all of it).
        field: String,
        /// What a tie does.
        tie: Tie,
        /// The judge step, for `method = "judge"` or `tie = "judge"`.
        judge: Option<StepId>,
    },
    /// The first case whose condition holds runs.
    Branch {
        /// Conditions (all must hold) and their steps.
        cases: Vec<(Vec<Cond>, StepId)>,
        /// The step when no case holds; without one the input passes through.
        otherwise: Option<StepId>,
    },
    /// Asks a person.
    Approval {
        /// The question.
        question: Template,
        /// The answers on offer.
        options: Vec<String>,
        /// How long to wait.
        timeout: Duration,
        /// The answer taken when nobody answers in time; none = the step fails.
        on_timeout: Option<String>,
        /// A step per answer.
        next: BTreeMap<String, StepId>,
    },
    /// A state machine.
    Machine {
        /// Its states; the first is the initial one.
        states: Vec<State>,
        /// Most transitions in one run of it.
        max_transitions: u32,
    },
}

impl Kind {
    /// Its name in the spec.
    pub fn label(&self) -> &'static str {
        match self {
            Kind::Agent { .. } => "agent",
            Kind::Sequence(_) => "sequence",
            Kind::Saga(_) => "saga",
            Kind::Parallel { .. } => "parallel",
            Kind::Vote { .. } => "vote",
            Kind::Branch { .. } => "branch",
            Kind::Approval { .. } => "approval",
            Kind::Machine { .. } => "machine",
        }
    }

    /// The steps it runs directly.
    pub fn children(&self) -> Vec<StepId> {
        match self {
            Kind::Agent { .. } => Vec::new(),
            Kind::Sequence(s) | Kind::Saga(s) => s.clone(),
            Kind::Parallel { branches, for_each, .. } => {
                branches.iter().copied().chain(for_each.as_ref().map(|f| f.1)).collect()
            }
            Kind::Vote { voters, judge, .. } => voters.iter().copied().chain(*judge).collect(),
            Kind::Branch { cases, otherwise } => cases.iter().map(|c| c.1).chain(*otherwise).collect(),
            Kind::Approval { next, .. } => next.values().copied().collect(),
            Kind::Machine { states, .. } => states.iter().filter_map(|s| s.step).collect(),
        }
    }
}
