//! A flow spec: TOML read into a tree of steps, checked as a whole, with
//! every error naming the step and the key (`steps.execute.join: ...`).
//!
//! The step kinds and their settings are in `kinds`; reading the TOML is
//! `read` (one step at a time) over `values` (one key at a time); `check`
//! looks at the whole tree once every step is read.

mod check;
mod error;
#[cfg(test)]
mod fuzz;
mod kinds;
mod read;
mod values;

pub use error::SpecError;
pub use kinds::{ItemPolicy, Join, Kind, Method, Retry, State, Tie};

use crate::expr::Template;
use paddock_config::Requested;
use paddock_quota::run::RunLimits;
use std::collections::BTreeMap;
use std::time::Duration;

/// A step's index in [`Flow::steps`].
pub type StepId = usize;

/// A checked flow.
#[derive(Debug)]
pub struct Flow {
    /// Its name (`flow.name`).
    pub name: String,
    /// `flow.description`.
    pub description: String,
    /// The step a run starts with (`flow.start`, default `main`).
    pub start: StepId,
    /// Every step, by id.
    pub steps: Vec<Step>,
    /// The budget of a whole run (`flow.budget`).
    pub budget: Option<RunLimits>,
    /// The TOML it was read from (kept with each run, so a resumed run
    /// follows the spec it started with).
    pub source: String,
}

/// One step.
#[derive(Debug)]
pub struct Step {
    /// Its name (the key under `[steps]`).
    pub name: String,
    /// What it does.
    pub kind: Kind,
    /// Its input; the default depends on where it runs.
    pub input: Option<Template>,
    /// How often an agent step is tried.
    pub retry: Retry,
    /// A deadline for the whole step (for an agent step: each attempt's timeout).
    pub timeout: Option<Duration>,
    /// Tokens and cost everything inside it may spend.
    pub budget: Option<RunLimits>,
    /// Limits for an agent step's invocations (bounded by the ceiling).
    pub limits: Requested,
    /// What a failure of this step does.
    pub on_error: ItemPolicy,
}

impl Flow {
    /// Reads and checks a flow from TOML text; `origin` names the file in errors.
    pub fn parse(source: &str, origin: &str) -> Result<Flow, SpecError> {
        let doc: toml::Table =
            toml::from_str(source).map_err(|error| SpecError::Toml { origin: origin.to_string(), error })?;
        if let Some(key) = doc.keys().find(|k| *k != "flow" && *k != "steps") {
            return Err(SpecError::UnknownTable { origin: origin.to_string(), key: key.clone() });
        }
        read::Reader::read(&doc, source).map_err(|e| e.within(origin))
    }

    /// Looks a step up by name.
    pub fn step_named(&self, name: &str) -> Option<StepId> {
        self.steps.iter().position(|s| s.name == name)
    }

    /// The agents it runs, each with the first step naming it.
    pub fn agents(&self) -> BTreeMap<&str, &str> {
        let mut out = BTreeMap::new();
        for s in &self.steps {
            if let Kind::Agent { agent, .. } = &s.kind {
                out.entry(agent.as_str()).or_insert(s.name.as_str());
            }
        }
        out
    }
}
