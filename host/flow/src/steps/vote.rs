//! `vote`: voters run at once; the answer with most votes (or weight) wins,
//! or a judge step picks; a tie follows the step's tie policy.

use super::exec;
use super::parallel::{Item, parallel};
use crate::events::Event;
use crate::run::{Ctx, Out, Scope, StepErr};
use crate::spec::{ItemPolicy, Join, Method, StepId, Tie};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

#[allow(clippy::too_many_arguments)]
pub(super) async fn vote(
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
        .map(|(i, o)| (i, crate::expr::point(o, field)))
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
        let win = crate::expr::point(&outputs[winner], field);
        ctx.emit(|| Event::VoteCounted { step: path.to_string(), winner: win, tally: counts });
        winner
    };
    Ok(outputs[winner].clone())
}
