//! A fan-out spread over hosts: its agent items published as work items
//! (their inputs rendered here), claimed by this host — up to the step's
//! `max-concurrency`, so a run with no other host still finishes — and by
//! every other host's workers; their ends collected here, woken by the
//! store's `work RUN` ring, and handed to the join as each item's output.
//!
//! Spread only on a store shared by hosts, and never under a budget (a
//! `RunBudget` lives in the holder's memory; an item elsewhere could not
//! spend from it).

use super::parallel::Item;
use crate::bells::{Bell, rung};
use crate::lease;
use crate::run::{Ctx, Out, Scope, StepErr};
use crate::spec::{ItemPolicy, Kind};
use crate::store::StepStatus;
use crate::work::{MAX_ITEM_INPUT, WorkEnd, WorkItem, WorkQueue};
use parking_lot::Mutex;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// How often the holder looks for ended items and items to claim with no ring.
const LOOK_AGAIN: Duration = Duration::from_secs(1);
/// How long the holder lets ends gather after a ring before it collects them.
const GATHER: Duration = Duration::from_millis(2);

/// Each published item's path, with where its output comes from.
pub(super) type Published = HashMap<String, oneshot::Receiver<Out>>;

/// A fan-out's published items, being collected.
pub(super) struct Spread {
    /// Claims this run's items and collects every item's end.
    driver: tokio::task::JoinHandle<()>,
    queue: Arc<dyn WorkQueue>,
    run: Arc<str>,
    group: String,
}

impl Spread {
    /// Publishes the agent items of `items` (at `path`, joined under
    /// `policy`, `max` at once), when the run may spread; `None` when
    /// every item runs here.
    pub(super) fn publish(
        ctx: &Arc<Ctx>,
        items: &[Item],
        policy: ItemPolicy,
        max: usize,
        path: &str,
        scope: &Scope,
    ) -> Result<Option<(Spread, Published)>, StepErr> {
        let Some(queue) = ctx.work.clone() else { return Ok(None) };
        if scope.budget.is_some() {
            return Ok(None);
        }
        let mut work = Vec::new();
        for (id, input, at, item) in items {
            let step = &ctx.flow.steps[*id];
            let settled = ctx.checkpoint(at).is_some_and(|r| r.status != StepStatus::Started);
            if !matches!(step.kind, Kind::Agent { .. }) || settled {
                continue;
            }
            let item_scope = Scope {
                item: item.clone().or(scope.item.clone()),
                budget: None,
                policy: Some(policy),
                ..scope.clone()
            };
            // An input that does not render fails where the item runs: here.
            let Ok(rendered) = ctx.input_of(step, input.clone(), &item_scope, at) else { continue };
            let rendered = rendered.to_string();
            if rendered.len() > MAX_ITEM_INPUT {
                continue;
            }
            work.push(WorkItem {
                run: ctx.run.to_string(),
                path: at.clone(),
                group: path.to_string(),
                step: step.name.clone(),
                input: rendered,
                item: item_scope.item.as_ref().map(|(v, i)| serde_json::json!([v, i]).to_string()),
                policy: policy_word(policy).to_string(),
                checkpoint: None,
                seq: ctx.next_seq(),
            });
        }
        if work.is_empty() {
            return Ok(None);
        }
        queue.publish(&ctx.run, path, max, &work).map_err(|e| StepErr::new(path, e))?;
        let mut receivers = HashMap::new();
        let mut senders = HashMap::new();
        for w in &work {
            let (tx, rx) = oneshot::channel();
            senders.insert(w.path.clone(), tx);
            receivers.insert(w.path.clone(), rx);
        }
        let waiting = Arc::new(Mutex::new(senders));
        let driver = tokio::spawn(drive(ctx.clone(), queue.clone(), path.to_string(), max, waiting));
        let spread = Spread { driver, queue, run: ctx.run.clone(), group: path.to_string() };
        Ok(Some((spread, receivers)))
    }
}

impl Drop for Spread {
    /// A join that needs no more (or a run stopped) withdraws what is left;
    /// a fan-out whose items all ended leaves nothing behind either.
    fn drop(&mut self) {
        self.driver.abort();
        if let Err(e) = self.queue.withdraw(&self.run, &self.group) {
            tracing::warn!(run = %self.run, "cannot withdraw the items left of {}: {e}", self.group);
        }
    }
}

/// The words a work item keeps its policy as.
pub(crate) fn policy_word(policy: ItemPolicy) -> &'static str {
    match policy {
        ItemPolicy::Fail => "fail",
        ItemPolicy::Skip => "skip",
        ItemPolicy::DeadLetter => "dead_letter",
    }
}

/// Claims and runs this run's items here (at most `max` at once), and
/// collects every item's end, until none is waiting.
async fn drive(
    ctx: Arc<Ctx>,
    queue: Arc<dyn WorkQueue>,
    group: String,
    max: usize,
    waiting: Arc<Mutex<HashMap<String, oneshot::Sender<Out>>>>,
) {
    let bells = ctx.store.bells();
    let ended_bell: Option<Bell> = bells.as_ref().map(|b| b.bell(format!("work {}", ctx.run)));
    let work_bell: Option<Bell> = bells.as_ref().map(|b| b.bell("work".into()));
    let mut running = tokio::task::JoinSet::new();
    loop {
        let (ended, work) = (ended_bell.as_ref().map(Bell::next), work_bell.as_ref().map(Bell::next));
        let room = max.saturating_sub(running.len()).min(crate::worker::CLAIM_BATCH);
        let mut more = false;
        if room > 0 && ctx.claims {
            let (q, run) = (queue.clone(), ctx.run.clone());
            let claimed = tokio::task::spawn_blocking(move || {
                q.claim_items(lease::this_process(), crate::now_ms(), room, Some(&run), &[])
            })
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
            match claimed {
                Ok(items) => {
                    more = items.len() == room;
                    for item in items {
                        running.spawn(crate::worker::run_item(ctx.clone(), queue.clone(), item));
                    }
                }
                Err(e) => tracing::warn!(run = %ctx.run, "cannot claim items of {group}: {e}"),
            }
        }
        let (q, run, at) = (queue.clone(), ctx.run.clone(), group.clone());
        match tokio::task::spawn_blocking(move || q.take_ended(&run, &at)).await.unwrap_or_else(|e| Err(e.to_string()))
        {
            Ok(ends) => {
                for (path, end, checkpoint) in ends {
                    let out = outcome(&ctx, &path, end, checkpoint);
                    if let Some(tx) = waiting.lock().remove(&path) {
                        let _ = tx.send(out);
                    }
                }
            }
            Err(e) => tracing::warn!(run = %ctx.run, "cannot collect the items of {group}: {e}"),
        }
        if waiting.lock().is_empty() {
            return;
        }
        // A full batch claimed: more may be waiting.
        if more && running.len() < max {
            continue;
        }
        tokio::select! {
            () = rung(ended) => {}
            () = rung(work) => {}
            Some(_) = running.join_next() => {}
            () = tokio::time::sleep(LOOK_AGAIN) => {}
        }
        // Items end together (a batch claimed at once): collected in one go.
        tokio::time::sleep(GATHER).await;
    }
}

/// What an item's end means to the join: its checkpoint's output, or its error.
fn outcome(ctx: &Ctx, path: &str, end: WorkEnd, checkpoint: Option<crate::store::StepRecord>) -> Out {
    match (end, checkpoint) {
        (WorkEnd::Failed { message, leaf }, _) => {
            Err(StepErr { path: path.to_string(), message, leaf: leaf.map(Box::new) })
        }
        (WorkEnd::Settled, Some(rec)) => match rec.status {
            StepStatus::Failed => Err(StepErr::new(path, rec.error.clone().unwrap_or_default())),
            _ => {
                let output = rec.output.as_deref().and_then(|o| serde_json::from_str(o).ok()).unwrap_or(Value::Null);
                ctx.adopt(rec);
                Ok(output)
            }
        },
        (WorkEnd::Settled, None) => Err(StepErr::new(path, "the item ended with no checkpoint")),
    }
}
