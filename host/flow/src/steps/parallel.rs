//! `parallel`: branches, or one item per element of an array, run at once
//! under a concurrency bound, joined by `all`, `any` or a quorum.

use super::spread::Spread;
use super::{MAX_ITEMS, exec, kind_of};
use crate::events::Event;
use crate::expr::Ref;
use crate::lane::Lane;
use crate::run::{Ctx, Out, Scope, StepErr};
use crate::spec::{ItemPolicy, Join, Step, StepId};
use crate::store::StepStatus;
use serde_json::Value;
use std::sync::Arc;
use tracing::Instrument;

/// A `parallel` step's items: its branches, or its `do` step once per
/// element of its `for-each` array.
pub(super) fn fan_out(
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

/// An item to run: its step, input, path and `for-each` item.
pub(super) type Item = (StepId, Value, String, Option<(Value, usize)>);

pub(super) async fn parallel(
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
    ctx.write_lane().await?;
    // On a store shared by hosts, agent items are published for every host to claim.
    let (_spread, mut published) = match Spread::publish(ctx, &items, policy, max, path, scope)? {
        Some((spread, published)) => (Some(spread), published),
        None => (None, Default::default()),
    };
    let permits = Arc::new(tokio::sync::Semaphore::new(max));
    let mut set = tokio::task::JoinSet::new();
    for (i, (id, input, at, item)) in items.into_iter().enumerate() {
        if let Some(ended) = published.remove(&at) {
            set.spawn(async move {
                let out = ended.await.unwrap_or_else(|_| Err(StepErr::new(&at, "the item was withdrawn")));
                (i, at, out)
            });
            continue;
        }
        let (ctx, permits) = (ctx.clone(), permits.clone());
        // A direct agent item applies the item policy itself (and dead-letters with its journal).
        let s = Scope { item: item.or(scope.item.clone()), policy: Some(policy), ..scope.clone() };
        // A task of its own: its step's span is made a child of this one's by hand.
        set.spawn(
            async move {
                let _permit = permits.acquire_owned().await;
                // The item's own lane, written before the item counts as done.
                let lane = Lane::default();
                let out = lane.scope(exec(ctx.clone(), id, input, at.clone(), s)).await;
                (i, at, lane.close(&ctx, out).await)
            }
            .in_current_span(),
        );
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
