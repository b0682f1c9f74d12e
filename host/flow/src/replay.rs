//! `paddock replay`: each recorded agent step of a run is run again against
//! its journal — every LLM answer, blackboard read, clock reading and random
//! number comes from the journal, nothing is called and nothing is written —
//! and its output compared with the recorded one.

use super::Flows;
use super::store::StepStatus;
use paddock_journal::Tape;
use paddock_runtime::RunOptions;
use serde::Serialize;

/// What replaying one step found.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Replayed {
    /// The step's path.
    pub step: String,
    /// Its agent.
    pub agent: String,
    /// The version that was recorded.
    pub recorded_version: String,
    /// The version replayed (the one in the plugins folder now).
    pub version: String,
    /// Host calls in its journal.
    pub calls: usize,
    /// Whether it did what was recorded: the same calls and the same output.
    pub same: bool,
    /// The first difference, when not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub divergence: Option<String>,
}

impl Flows {
    /// Replays the agent steps of `run` (only `step` when given), in the
    /// order they ran.
    pub async fn replay(&self, run: &str, step: Option<&str>) -> Result<Vec<Replayed>, String> {
        let record = self.store.run(run)?.ok_or_else(|| format!("no run with id {run:?}"))?;
        let steps: Vec<_> = self
            .store
            .steps(run)?
            .into_iter()
            .filter(|s| {
                s.kind == "agent" && matches!(s.status, StepStatus::Done | StepStatus::Failed | StepStatus::Skipped)
            })
            .filter(|s| step.is_none_or(|p| s.path == p))
            .collect();
        if steps.is_empty() {
            return Err(match step {
                Some(p) => format!("run {run} has no finished agent step at {p:?}"),
                None => format!("run {run} has no finished agent step to replay"),
            });
        }
        let mut out = Vec::new();
        for s in steps {
            let name = s.agent.clone().unwrap_or_default();
            let (attempt, entries) = self
                .store
                .journal(run, &s.path)?
                .ok_or_else(|| format!("step {} of run {run} has no journal", s.path))?;
            let agent = self.runtime.load(&name).map_err(|e| format!("step {}: {e}", s.path))?;
            let calls = entries.iter().filter(|e| e.call != paddock_journal::TRUNCATED).count();
            let tape = Tape::replaying(entries);
            let options = RunOptions {
                tenant: Some(record.tenant.clone()),
                run: Some(run.to_string()),
                journal: Some(tape.clone()),
                env: super::run::step_env(run, &record.flow, &s.path, attempt, ""),
                ..RunOptions::default()
            };
            let result = match self.runtime.run(&agent, s.input.as_deref().unwrap_or_default(), &options).await {
                Ok(outcome) => outcome.result.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            let divergence = match tape.finish() {
                Some(d) => Some(d.to_string()),
                None => match (&result, s.status) {
                    (Ok(o), StepStatus::Done) if Some(o) == s.raw.as_ref() => None,
                    (Ok(o), StepStatus::Done) => Some(format!(
                        "the output differs: recorded {}, replayed {}",
                        super::events::abbreviate(s.raw.as_deref().unwrap_or_default(), 200),
                        super::events::abbreviate(o, 200)
                    )),
                    (Err(e), StepStatus::Failed | StepStatus::Skipped) if Some(e) == s.error.as_ref() => None,
                    (Err(e), _) => Some(format!(
                        "the result differs: recorded {}, replayed the error {e}",
                        s.raw.as_deref().or(s.error.as_deref()).unwrap_or_default()
                    )),
                    (Ok(o), _) => Some(format!(
                        "the result differs: recorded the error {}, replayed {o}",
                        s.error.as_deref().unwrap_or_default()
                    )),
                },
            };
            out.push(Replayed {
                step: s.path.clone(),
                agent: name,
                recorded_version: s.version.clone().unwrap_or_default(),
                version: agent.version.to_string(),
                calls,
                same: divergence.is_none(),
                divergence,
            });
        }
        Ok(out)
    }
}

/// A finished agent step, as `paddock record` keeps it as a test case.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedStep {
    /// The step's path.
    pub step: String,
    /// Its agent.
    pub agent: String,
    /// The run's tenant.
    pub tenant: String,
    /// The agent's input text.
    pub input: String,
    /// The variables the step saw (`PADDOCK_RUN`, `PADDOCK_STEP`...).
    pub env: Vec<(String, String)>,
    /// Its journal.
    pub journal: Vec<paddock_journal::Entry>,
    /// Its output text, or its error.
    pub result: Result<String, String>,
}

impl Flows {
    /// The finished agent step of `run` at `step`; with no `step`, the
    /// run's only agent step (an error lists them when there are several).
    pub fn recorded_step(&self, run: &str, step: Option<&str>) -> Result<RecordedStep, String> {
        let record = self.store.run(run)?.ok_or_else(|| format!("no run with id {run:?}"))?;
        let finished: Vec<_> = self
            .store
            .steps(run)?
            .into_iter()
            .filter(|s| {
                s.kind == "agent" && matches!(s.status, StepStatus::Done | StepStatus::Failed | StepStatus::Skipped)
            })
            .collect();
        let paths = || finished.iter().map(|s| s.path.as_str()).collect::<Vec<_>>().join(", ");
        let chosen = match step {
            Some(p) => finished.iter().find(|s| s.path == p).ok_or_else(|| match finished.is_empty() {
                true => format!("run {run} has no finished agent step"),
                false => format!("run {run} has no finished agent step at {p:?}; it has {}", paths()),
            })?,
            None => match finished.as_slice() {
                [only] => only,
                [] => return Err(format!("run {run} has no finished agent step")),
                _ => {
                    return Err(format!(
                        "run {run} has {} agent steps; name one with --step: {}",
                        finished.len(),
                        paths()
                    ));
                }
            },
        };
        let (attempt, journal) = self
            .store
            .journal(run, &chosen.path)?
            .ok_or_else(|| format!("step {} of run {run} has no journal", chosen.path))?;
        let result = match (chosen.status, &chosen.raw, &chosen.error) {
            (StepStatus::Done, Some(raw), _) => Ok(raw.clone()),
            (_, _, Some(error)) => Err(error.clone()),
            _ => return Err(format!("step {} of run {run} kept neither its output nor its error", chosen.path)),
        };
        Ok(RecordedStep {
            step: chosen.path.clone(),
            agent: chosen.agent.clone().unwrap_or_default(),
            tenant: record.tenant,
            input: chosen.input.clone().unwrap_or_default(),
            env: super::run::step_env(run, &record.flow, &chosen.path, attempt, ""),
            journal,
            result,
        })
    }
}
