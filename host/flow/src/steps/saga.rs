//! `saga`: a sequence that undoes its finished steps when one fails.

use super::exec;
use crate::events::Event;
use crate::run::{Ctx, Out, Scope, StepErr};
use crate::spec::{Kind, StepId};
use crate::store::StepStatus;
use serde_json::Value;
use std::sync::Arc;

/// A sequence that, when a step fails, undoes the finished ones in reverse:
/// every finished agent step under them, latest first. A compensation that
/// fails is reported and the others still run.
pub(super) async fn saga(ctx: &Arc<Ctx>, children: &[StepId], input: Value, path: &str, scope: &Scope) -> Out {
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
