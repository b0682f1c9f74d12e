//! The step kinds: how each runs its children and joins their outputs.

use super::approvals::Waited;
use super::events::Event;
use super::expr::{Cond, Ref};
use super::run::{Ctx, Out, Scope, StepErr};
use super::spec::{ItemPolicy, Join, Kind, Method, State, Step, StepId, Tie};
use super::store::StepStatus;
use futures_util::future::BoxFuture;
use paddock_quota::run::RunBudget;
use paddock_runtime::caps::approval::Question;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

/// The most items one `for-each` runs.
pub const MAX_ITEMS: usize = 10_000;

/// Runs step `id` on `input` at `path`.
pub fn exec(ctx: Arc<Ctx>, id: StepId, input: Value, path: String, scope: Scope) -> BoxFuture<'static, Out> {
    Box::pin(async move {
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
            // An agent step's timeout is each attempt's invocation timeout.
            (Some(t), kind) if !matches!(kind, Kind::Agent { .. }) => match tokio::time::timeout(t, run).await {
                Ok(out) => out,
                Err(_) => Err(StepErr::new(
                    &path,
                    format!("did not finish within {} (steps.{}.timeout)", paddock_core::Span(t), step.name),
                )),
            },
            _ => run.await,
        }
    })
}

async fn run_kind(ctx: Arc<Ctx>, id: StepId, input: Value, path: String, scope: Scope) -> Out {
    let step = &ctx.flow.steps[id];
    let started = Instant::now();
    if !matches!(step.kind, Kind::Agent { .. }) {
        ctx.emit(|| Event::StepStarted { step: path.clone(), kind: step.kind.label(), agent: None, attempt: None });
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
    settle(&ctx, &path, step, out, started)
}

/// Checkpoints how a composite step ended: its output, or its failure
/// (unless the failure is recorded at its path already).
fn settle(ctx: &Ctx, path: &str, step: &Step, out: Out, started: Instant) -> Out {
    match out {
        Ok(v) => ctx.finish(path, step, &v, started),
        Err(e) => {
            if !ctx.checkpoint(path).is_some_and(|r| r.status == StepStatus::Failed) {
                let mut rec = ctx.rec(path, step.kind.label(), StepStatus::Failed);
                rec.error = Some(e.text());
                ctx.record(rec)?;
            }
            Err(e)
        }
    }
}

/// A `parallel` step's items: its branches, or its `do` step once per
/// element of its `for-each` array.
fn fan_out(
    ctx: &Ctx,
    step: &Step,
    branches: &[StepId],
    for_each: Option<&(Ref, StepId)>,
    input: &Value,
    path: &str,
    scope: &Scope,
) -> Result<Vec<Item>, StepErr> {
    let Some((r, each)) = for_each else {
        return Ok(branches
            .iter()
            .map(|&b| (b, input.clone(), format!("{path}/{}", ctx.flow.steps[b].name), None))
            .collect());
    };
    let list = ctx.lookup(r, input, scope).map_err(|e| StepErr::new(path, e))?;
    let Value::Array(list) = list else {
        return Err(StepErr::new(
            path,
            format!("steps.{}.for-each: expected an array, got {}", step.name, kind_of(&list)),
        ));
    };
    if list.len() > MAX_ITEMS {
        return Err(StepErr::new(
            path,
            format!("steps.{}.for-each: {} items, more than the {MAX_ITEMS} a fan-out may have", step.name, list.len()),
        ));
    }
    let name = &ctx.flow.steps[*each].name;
    Ok(list
        .into_iter()
        .enumerate()
        .map(|(i, v)| (*each, v.clone(), format!("{path}[{i}]/{name}"), Some((v, i))))
        .collect())
}

/// A `branch` step: takes the first case whose conditions all hold, else
/// its `else` step, else passes its input through. The choice is
/// checkpointed, so a resumed run takes the same branch.
///
/// The outer error ends the step without a checkpoint of its own; the
/// inner one is how the branch taken ended.
async fn branch(
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
            ctx.record(rec)?;
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
///
/// The outer error ends the step without a checkpoint of its own; the
/// inner one is how the step for the answer ended.
async fn approval(ctx: &Arc<Ctx>, step: &Step, input: Value, path: &str, inner: Scope) -> Result<Out, StepErr> {
    let Kind::Approval { timeout, on_timeout, next, .. } = &step.kind else {
        unreachable!("approval runs approval steps")
    };
    let decision = format!("{path}!");
    let id = match ctx.checkpoint(&decision) {
        Some(rec) => rec.output.unwrap_or_default(),
        None => ask(ctx, step, &input, path, &decision, &inner)?,
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
fn ask(ctx: &Ctx, step: &Step, input: &Value, path: &str, decision: &str, scope: &Scope) -> Result<String, StepErr> {
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
    ctx.record(rec)?;
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
///
/// The outer error ends the step without a checkpoint of its own; the
/// inner one is how the machine ended.
async fn machine(ctx: &Arc<Ctx>, step: &Step, input: Value, path: &str, inner: Scope) -> Result<Out, StepErr> {
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
        let Some(to) = transition(ctx, states, state, n, &value, path, &inner)? else {
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
fn transition(
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
        ctx.record(rec)?;
    }
    Ok(to)
}

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

/// A sequence that, when a step fails, undoes the finished ones in reverse:
/// every finished agent step under them, latest first. A compensation that
/// fails is reported and the others still run.
async fn saga(ctx: &Arc<Ctx>, children: &[StepId], input: Value, path: &str, scope: &Scope) -> Out {
    let mut value = input;
    let mut finished = Vec::new();
    for &c in children {
        let at = format!("{path}/{}", ctx.flow.steps[c].name);
        match exec(ctx.clone(), c, value.clone(), at.clone(), scope.clone()).await {
            Ok(v) => {
                value = v;
                finished.push(at);
            }
            Err(e) => {
                let mut undone = Vec::new();
                let mut failed = Vec::new();
                for child in finished.iter().rev() {
                    // Steps inside it: `child/...`, and for-each items `child[i]/...`.
                    let (inside, item) = (format!("{child}/"), format!("{child}["));
                    let mut leaves: Vec<_> = ctx
                        .checkpoints
                        .lock()
                        .values()
                        .filter(|r| {
                            r.kind == "agent"
                                && r.status == StepStatus::Done
                                && (r.path == *child || r.path.starts_with(&inside) || r.path.starts_with(&item))
                        })
                        .cloned()
                        .collect();
                    leaves.sort_by_key(|r| std::cmp::Reverse(r.seq));
                    for leaf in leaves {
                        if !compensates(ctx, &leaf.path) {
                            continue;
                        }
                        match ctx.compensate(&leaf).await {
                            Ok(()) => {
                                ctx.emit(|| Event::Compensated { step: leaf.path.clone() });
                                undone.push(leaf.path.clone());
                            }
                            Err(why) => {
                                ctx.emit(|| Event::CompensationFailed { step: leaf.path.clone(), error: why.clone() });
                                failed.push(format!("{}: {why}", leaf.path));
                            }
                        }
                    }
                }
                let mut message = format!("{}; compensated: {}", e.text(), list(&undone));
                if !failed.is_empty() {
                    message.push_str(&format!("; compensation failed: {}", failed.join("; ")));
                }
                return Err(StepErr { path: path.to_string(), message, leaf: None });
            }
        }
    }
    Ok(value)
}

/// Whether the agent step at `path` asks for compensation (`compensate = true`, the default).
fn compensates(ctx: &Ctx, path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    ctx.flow.step_named(name).is_none_or(|id| !matches!(ctx.flow.steps[id].kind, Kind::Agent { compensate: false, .. }))
}

fn list(items: &[String]) -> String {
    if items.is_empty() { "nothing".to_string() } else { items.join(", ") }
}

type Item = (StepId, Value, String, Option<(Value, usize)>);

async fn parallel(
    ctx: &Arc<Ctx>,
    items: Vec<Item>,
    join: Join,
    policy: ItemPolicy,
    max: usize,
    path: &str,
    scope: &Scope,
) -> Out {
    let total = items.len();
    let needed = match join {
        Join::All => total,
        Join::Any => 1.min(total),
        Join::Quorum(n) => n,
    };
    if needed > total {
        return Err(StepErr::new(path, format!("needs {needed} successes but has only {total} items")));
    }
    let permits = Arc::new(tokio::sync::Semaphore::new(max));
    let mut set = tokio::task::JoinSet::new();
    for (i, (id, input, at, item)) in items.into_iter().enumerate() {
        let (ctx, permits) = (ctx.clone(), permits.clone());
        // A direct agent item applies the item policy itself (and dead-letters with its journal).
        let s = Scope { item: item.or(scope.item.clone()), budget: scope.budget.clone(), policy: Some(policy) };
        set.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let out = exec(ctx, id, input, at.clone(), s).await;
            (i, at, out)
        });
    }
    let mut outputs = vec![Value::Null; total];
    let (mut ok, mut failed) = (0usize, 0usize);
    let mut first_error: Option<StepErr> = None;
    while let Some(joined) = set.join_next().await {
        let (i, at, out) = joined.map_err(|e| StepErr::new(path, format!("an item's task failed: {e}")))?;
        match out {
            Ok(v) => {
                // A skipped or dead-lettered agent item answers null.
                let skipped = ctx.checkpoint(&at).filter(|r| v.is_null() && r.status == StepStatus::Skipped);
                if let Some(rec) = skipped {
                    failed += 1;
                    first_error.get_or_insert_with(|| StepErr::new(&at, rec.error.unwrap_or_default()));
                } else {
                    ok += 1;
                }
                outputs[i] = v;
            }
            Err(e) => {
                failed += 1;
                match policy {
                    ItemPolicy::Fail if join == Join::All => {
                        set.abort_all();
                        return Err(e);
                    }
                    ItemPolicy::DeadLetter => {
                        let id = ctx.dead_letter(&e)?;
                        ctx.emit(|| Event::StepSkipped {
                            step: e.path.clone(),
                            error: e.message.clone(),
                            dead_letter: Some(id),
                        });
                    }
                    ItemPolicy::Skip => {
                        ctx.emit(|| Event::StepSkipped {
                            step: e.path.clone(),
                            error: e.message.clone(),
                            dead_letter: None,
                        });
                    }
                    ItemPolicy::Fail => {}
                }
                first_error.get_or_insert(e);
            }
        }
        if ok >= needed && join != Join::All {
            set.abort_all();
            return Ok(match join {
                Join::Any => outputs.into_iter().find(|v| !v.is_null()).unwrap_or(Value::Null),
                _ => Value::Array(outputs),
            });
        }
        if total - failed < needed && join != Join::All {
            set.abort_all();
            let why = first_error.map(|e| e.text()).unwrap_or_default();
            return Err(StepErr::new(
                path,
                format!("{failed} of {total} items failed, so {needed} cannot succeed; first: {why}"),
            ));
        }
    }
    Ok(Value::Array(outputs))
}

#[allow(clippy::too_many_arguments)]
async fn vote(
    ctx: &Arc<Ctx>,
    voters: &[StepId],
    method: &Method,
    field: &str,
    tie: Tie,
    judge: Option<StepId>,
    input: Value,
    path: &str,
    scope: &Scope,
) -> Out {
    let items: Vec<Item> =
        voters.iter().map(|&v| (v, input.clone(), format!("{path}/{}", ctx.flow.steps[v].name), None)).collect();
    let outputs = match parallel(ctx, items, Join::All, ItemPolicy::Skip, voters.len(), path, scope).await? {
        Value::Array(a) => a,
        _ => Vec::new(),
    };
    let ballots: Vec<(usize, Value)> = outputs
        .iter()
        .enumerate()
        .filter(|(_, o)| !o.is_null())
        .map(|(i, o)| (i, super::expr::point(o, field)))
        .collect();
    if ballots.is_empty() {
        return Err(StepErr::new(path, "every voter failed; nothing to count"));
    }
    let ask_judge = |candidates: Vec<usize>| {
        let ctx = ctx.clone();
        let outputs = outputs.clone();
        let judge = judge.unwrap_or_default();
        let at = format!("{path}/{}", ctx.flow.steps[judge].name);
        let voters: Vec<String> = candidates.iter().map(|&i| ctx.flow.steps[voters[i]].name.clone()).collect();
        async move {
            let offered: Vec<Value> = candidates.iter().map(|&i| outputs[i].clone()).collect();
            let pick = exec(
                ctx.clone(),
                judge,
                serde_json::json!({"candidates": offered, "voters": voters}),
                at.clone(),
                Scope::default(),
            )
            .await?;
            let index = pick.as_u64().or_else(|| pick.get("choice").and_then(Value::as_u64));
            match index.and_then(|i| candidates.get(i as usize)) {
                Some(&c) => Ok(c),
                None => Err(StepErr::new(
                    &at,
                    format!(
                        "the judge must answer a candidate's index (0 to {}), or {{\"choice\": N}}; it answered {pick}",
                        candidates.len() - 1
                    ),
                )),
            }
        }
    };
    let winner = if let Method::Judge(_) = method {
        ask_judge(ballots.iter().map(|b| b.0).collect()).await?
    } else {
        let mut tally: BTreeMap<String, (u64, usize)> = BTreeMap::new();
        for (i, answer) in &ballots {
            let weight = match method {
                Method::Weighted(w) => u64::from(*w.get(&ctx.flow.steps[voters[*i]].name).unwrap_or(&1)),
                _ => 1,
            };
            let e = tally.entry(answer.to_string()).or_insert((0, *i));
            e.0 += weight;
        }
        let best = tally.values().map(|v| v.0).max().unwrap_or(0);
        let mut tied: Vec<(String, usize)> =
            tally.iter().filter(|(_, v)| v.0 == best).map(|(k, v)| (k.clone(), v.1)).collect();
        tied.sort_by_key(|t| t.1);
        let counts: BTreeMap<String, u64> = tally.iter().map(|(k, v)| (k.clone(), v.0)).collect();
        let winner = if tied.len() == 1 {
            tied[0].1
        } else {
            match tie {
                Tie::First => tied[0].1,
                Tie::Judge => ask_judge(tied.iter().map(|t| t.1).collect()).await?,
                Tie::Fail => {
                    let names: Vec<&str> = tied.iter().map(|t| t.0.as_str()).collect();
                    return Err(StepErr::new(
                        path,
                        format!("the vote tied between {} ({best} each)", names.join(" and ")),
                    ));
                }
            }
        };
        let win = super::expr::point(&outputs[winner], field);
        ctx.emit(|| Event::VoteCounted { step: path.to_string(), winner: win, tally: counts });
        winner
    };
    Ok(outputs[winner].clone())
}
