//! The steps that decide once and checkpoint the decision (at `PATH!`), so
//! a resumed run goes the same way: `branch`, `approval` and `machine`.
//!
//! Each of the three returns `Result<Out, StepErr>`: the outer error (a
//! reference that cannot be read, a store that fails, an unanswered
//! question) ends the step without a checkpoint of its own, as it always
//! has; the inner `Out` is how the step ended, which the caller checkpoints.

use super::exec;
use crate::approvals::Waited;
use crate::events::Event;
use crate::expr::Cond;
use crate::run::{Ctx, Out, Scope, StepErr};
use crate::spec::{Kind, State, Step, StepId};
use crate::store::StepStatus;
use paddock_runtime::caps::approval::Question;
use serde_json::Value;
use std::sync::Arc;

/// A `branch` step: takes the first case whose conditions all hold, else
/// its `else` step, else passes its input through. The choice is
/// checkpointed, so a resumed run takes the same branch.
pub(super) async fn branch(
    ctx: &Arc<Ctx>,
    cases: &[(Vec<Cond>, StepId)],
    otherwise: Option<StepId>,
    input: Value,
    path: &str,
    inner: Scope,
) -> Result<Out, StepErr> {
    let decision = format!("{path}!");
    let chosen = match ctx.checkpoint(&decision) {
        Some(rec) => rec.output.unwrap_or_default(),
        None => {
            let chosen = choose(ctx, cases, otherwise, &input, path, &inner)?;
            let mut rec = ctx.rec(&decision, "branch", StepStatus::Decided);
            rec.output = Some(chosen.clone());
            ctx.record(rec).await?;
            chosen
        }
    };
    ctx.emit(|| Event::BranchTaken { step: path.to_string(), to: chosen.clone() });
    Ok(match ctx.flow.step_named(&chosen) {
        Some(next) if !chosen.is_empty() => exec(ctx.clone(), next, input, format!("{path}/{chosen}"), inner).await,
        _ => Ok(input),
    })
}

/// The name of the step a branch takes (`""` for none). Every condition of
/// a case is looked up, so a reference that cannot be read fails the step
/// even when an earlier condition already does not hold.
fn choose(
    ctx: &Ctx,
    cases: &[(Vec<Cond>, StepId)],
    otherwise: Option<StepId>,
    input: &Value,
    path: &str,
    scope: &Scope,
) -> Result<String, StepErr> {
    for (conds, then) in cases {
        let mut all = true;
        for c in conds {
            let v = ctx.lookup(c.reference(), input, scope).map_err(|e| StepErr::new(path, e))?;
            all &= c.holds(&v);
        }
        if all {
            return Ok(ctx.flow.steps[*then].name.clone());
        }
    }
    Ok(otherwise.map(|o| ctx.flow.steps[o].name.clone()).unwrap_or_default())
}

/// An `approval` step: asks once (the question's id is checkpointed), waits
/// for an answer or the timeout, then runs the step for the answer, or
/// gives the answer itself.
pub(super) async fn approval(
    ctx: &Arc<Ctx>,
    step: &Step,
    input: Value,
    path: &str,
    inner: Scope,
) -> Result<Out, StepErr> {
    let Kind::Approval { timeout, on_timeout, next, .. } = &step.kind else {
        unreachable!("approval runs approval steps")
    };
    let decision = format!("{path}!");
    let id = match ctx.checkpoint(&decision) {
        Some(rec) => rec.output.unwrap_or_default(),
        None => ask(ctx, step, &input, path, &decision, &inner).await?,
    };
    let (answer, by) = match ctx.approvals.wait(&id).await.map_err(|e| StepErr::new(path, e))? {
        Waited::Answered(a) => (a.answer.unwrap_or_default(), a.answered_by.unwrap_or_default()),
        Waited::TimedOut(_) => match on_timeout {
            Some(o) => (o.clone(), "timeout".to_string()),
            None => {
                return Err(StepErr::new(
                    path,
                    format!(
                        "approval {id} was not answered within {} (steps.{}.timeout)",
                        paddock_core::Span(*timeout),
                        step.name
                    ),
                ));
            }
        },
    };
    ctx.emit(|| Event::ApprovalAnswered { step: path.to_string(), id: id.clone(), answer: answer.clone(), by });
    Ok(match next.get(&answer) {
        Some(&n) => exec(ctx.clone(), n, input, format!("{path}/{}", ctx.flow.steps[n].name), inner).await,
        None => Ok(Value::String(answer)),
    })
}

/// Puts an approval step's question to people and checkpoints its id as
/// the step's `decision`; returns the id.
async fn ask(
    ctx: &Ctx,
    step: &Step,
    input: &Value,
    path: &str,
    decision: &str,
    scope: &Scope,
) -> Result<String, StepErr> {
    let Kind::Approval { question, options, timeout, .. } = &step.kind else {
        unreachable!("ask asks for approval steps")
    };
    let text = question
        .render(&|r| ctx.lookup(r, input, scope))
        .map_err(|e| StepErr::new(path, format!("steps.{}.question: {e}", step.name)))?;
    let text = match text {
        Value::String(s) => s,
        other => other.to_string(),
    };
    let q = Question {
        tenant: Arc::from(ctx.tenant.as_str()),
        run: ctx.run.clone(),
        asker: path.to_string(),
        text,
        options: options.clone(),
        timeout: *timeout,
    };
    let a = ctx.approvals.create(&q).map_err(|e| StepErr::new(path, e.to_string()))?;
    let mut rec = ctx.rec(decision, "approval", StepStatus::Decided);
    rec.output = Some(a.id.clone());
    ctx.record(rec).await?;
    ctx.emit(|| Event::ApprovalWaiting {
        step: path.to_string(),
        id: a.id.clone(),
        question: a.question.clone(),
        options: a.options.clone(),
        deadline_ms: a.deadline_ms,
    });
    Ok(a.id)
}

/// A `machine` step: runs each state's step on the value so far, then
/// moves to the first transition whose guard holds, until a state has no
/// transitions (its value is the output) or `max-transitions` is passed.
pub(super) async fn machine(
    ctx: &Arc<Ctx>,
    step: &Step,
    input: Value,
    path: &str,
    inner: Scope,
) -> Result<Out, StepErr> {
    let Kind::Machine { states, max_transitions } = &step.kind else { unreachable!("machine runs machine steps") };
    let mut state = 0;
    let mut value = input;
    let mut n: u32 = 0;
    loop {
        let st = &states[state];
        if let Some(s) = st.step {
            let at = format!("{path}@{n}.{}/{}", st.name, ctx.flow.steps[s].name);
            value = exec(ctx.clone(), s, value, at, inner.clone()).await?;
        }
        if st.next.is_empty() {
            return Ok(Ok(value));
        }
        let Some(to) = transition(ctx, states, state, n, &value, path, &inner).await? else {
            return Ok(Err(StepErr::new(
                path,
                format!("no transition out of state {:?} holds (after {n} transitions)", st.name),
            )));
        };
        n += 1;
        if n > *max_transitions {
            return Ok(Err(StepErr::new(
                path,
                format!(
                    "stopped after {max_transitions} transitions (steps.{}.max-transitions), in state {:?}",
                    step.name, st.name
                ),
            )));
        }
        ctx.emit(|| Event::Transition {
            step: path.to_string(),
            from: st.name.clone(),
            to: states[to].name.clone(),
            n,
        });
        state = to;
    }
}

/// Where a machine goes from `states[state]` after `n` transitions: the
/// first transition whose guard holds on `value`, checkpointed, so a
/// resumed run moves the same way; `None` when no guard holds.
async fn transition(
    ctx: &Ctx,
    states: &[State],
    state: usize,
    n: u32,
    value: &Value,
    path: &str,
    scope: &Scope,
) -> Result<Option<usize>, StepErr> {
    let decision = format!("{path}@{n}!");
    if let Some(rec) = ctx.checkpoint(&decision) {
        return Ok(rec.output.and_then(|o| states.iter().position(|s| s.name == o)));
    }
    let mut to = None;
    for (guard, target) in &states[state].next {
        let holds = match guard {
            None => true,
            Some(c) => c.holds(&ctx.lookup(c.reference(), value, scope).map_err(|e| StepErr::new(path, e))?),
        };
        if holds {
            to = Some(*target);
            break;
        }
    }
    if let Some(t) = to {
        let mut rec = ctx.rec(&decision, "machine", StepStatus::Decided);
        rec.output = Some(states[t].name.clone());
        ctx.record(rec).await?;
    }
    Ok(to)
}
