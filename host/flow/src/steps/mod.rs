//! The step kinds: how each runs its children and joins their outputs.
//!
//! `exec` runs any step: it answers from a checkpoint, renders the input,
//! applies the step's budget and timeout, and hands the kind to its own
//! function: `sequence` here, `saga`, `parallel` (and `vote` over it), and
//! the steps that decide once and checkpoint the decision (`decisions`:
//! branch, approval, machine).

mod decisions;
mod parallel;
mod saga;
mod spread;
mod vote;

use super::events::Event;
use super::run::{Ctx, Out, Scope, StepErr};
use super::spec::{Kind, Step, StepId};
use super::store::StepStatus;
use decisions::{approval, branch, machine};
use futures_util::future::BoxFuture;
use paddock_core::TRACE_TARGET;
use paddock_quota::run::RunBudget;
use parallel::{fan_out, parallel};
use saga::saga;
use serde_json::Value;
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;
use vote::vote;

/// The most items one `for-each` runs.
pub const MAX_ITEMS: usize = 10_000;

/// Runs step `id` on `input` at `path`, in a `flow.step` span (a child of
/// the span current here: the run's, or its parent step's).
pub fn exec(ctx: Arc<Ctx>, id: StepId, input: Value, path: String, scope: Scope) -> BoxFuture<'static, Out> {
    let step = &ctx.flow.steps[id];
    let span = tracing::info_span!(
        target: TRACE_TARGET,
        "flow.step",
        step = %step.name,
        kind = step.kind.label(),
        path = %path,
        outcome = tracing::field::Empty,
    );
    Box::pin(
        async move {
            let out = exec_step(ctx, id, input, path, scope).await;
            tracing::Span::current().record("outcome", if out.is_ok() { "ok" } else { "failed" });
            out
        }
        .instrument(span),
    )
}

async fn exec_step(ctx: Arc<Ctx>, id: StepId, input: Value, path: String, scope: Scope) -> Out {
    let step = &ctx.flow.steps[id];
    if let Some(out) = ctx.reuse(&path, step) {
        return out;
    }
    let input = ctx.input_of(step, input, &scope, &path)?;
    let mut scope = scope;
    if let Some(limits) = step.budget {
        scope.budget = Some(RunBudget::new(format!("steps.{}.budget", step.name), limits, scope.budget.clone()));
    }
    let run = run_kind(ctx.clone(), id, input, path.clone(), scope);
    match (step.timeout, &step.kind) {
        // An agent step's timeout is each attempt's invocation timeout; an
        // approval's is how long it waits for an answer, after which its
        // `on-timeout` option is taken, which a timer of the same length
        // around it would race (and, on a busy host, win).
        (Some(t), kind) if !matches!(kind, Kind::Agent { .. } | Kind::Approval { .. }) => {
            match tokio::time::timeout(t, run).await {
                Ok(out) => out,
                Err(_) => Err(StepErr::new(
                    &path,
                    format!("did not finish within {} (steps.{}.timeout)", paddock_core::Span(t), step.name),
                )),
            }
        }
        _ => run.await,
    }
}

async fn run_kind(ctx: Arc<Ctx>, id: StepId, input: Value, path: String, scope: Scope) -> Out {
    let step = &ctx.flow.steps[id];
    let started = Instant::now();
    if !matches!(step.kind, Kind::Agent { .. }) {
        ctx.emit(|| Event::StepStarted {
            step: path.clone(),
            kind: step.kind.label().into(),
            agent: None,
            attempt: None,
        });
    }
    let inner = Scope { policy: None, ..scope.clone() };
    // An error met before a step's children ran (`?` here) ends it without
    // a checkpoint of its own; how its children ended is settled below.
    let out = match &step.kind {
        Kind::Agent { .. } => return ctx.agent_step(step, input, &path, &scope).await,
        Kind::Sequence(children) => sequence(&ctx, children, input, &path, &inner).await,
        Kind::Saga(children) => saga(&ctx, children, input, &path, &inner).await,
        Kind::Parallel { branches, for_each, join, on_item_error, max_concurrency } => {
            let items = fan_out(&ctx, step, branches, for_each.as_ref(), &input, &path, &scope)?;
            parallel(&ctx, items, *join, *on_item_error, *max_concurrency, &path, &inner).await
        }
        Kind::Vote { voters, method, field, tie, judge } => {
            vote(&ctx, voters, method, field, *tie, *judge, input, &path, &inner).await
        }
        Kind::Branch { cases, otherwise } => branch(&ctx, cases, *otherwise, input, &path, inner).await?,
        Kind::Approval { .. } => approval(&ctx, step, input, &path, inner).await?,
        Kind::Machine { .. } => machine(&ctx, step, input, &path, inner).await?,
    };
    settle(&ctx, &path, step, out, started).await
}

/// Checkpoints how a composite step ended: its output, or its failure
/// (unless the failure is recorded at its path already).
async fn settle(ctx: &Ctx, path: &str, step: &Step, out: Out, started: Instant) -> Out {
    match out {
        Ok(v) => ctx.finish(path, step, &v, started).await,
        Err(e) => {
            if !ctx.checkpoint(path).is_some_and(|r| r.status == StepStatus::Failed) {
                let mut rec = ctx.rec(path, step.kind.label(), StepStatus::Failed);
                rec.error = Some(e.text());
                ctx.record(rec).await?;
            }
            Err(e)
        }
    }
}

/// A JSON value's type, as a message names it.
fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

async fn sequence(ctx: &Arc<Ctx>, children: &[StepId], input: Value, path: &str, scope: &Scope) -> Out {
    let mut value = input;
    for &c in children {
        let at = format!("{path}/{}", ctx.flow.steps[c].name);
        value = exec(ctx.clone(), c, value, at, scope.clone()).await?;
    }
    Ok(value)
}
