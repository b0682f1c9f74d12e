//! This host's share of the fan-outs of every host: items claimed from the
//! shared queue ([`WorkQueue`]) while they wait, run with the run's pinned
//! agents, their claim renewed while they run, their ends recorded.
//!
//! An item runs as it would on the run's holder: its agent step's attempts,
//! retries, journal, checkpoint and dead letter, written under this host's
//! claim (the store fences them by it). A host whose agents are not at the
//! run's pinned versions leaves the run's items to others for a minute.

use super::bells::{Bell, rung};
use super::run::{Ctx, Scope};
use super::spec::{Flow, ItemPolicy};
use super::store::{RunStatus, StepStatus};
use super::work::{ITEM_RENEW, WorkEnd, WorkItem, WorkQueue};
use super::{Flows, lease, now_ms};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

/// How long a host leaves the items of a run it cannot run.
const LEAVE: Duration = Duration::from_secs(60);
/// How often an idle worker looks for items with no ring.
const LOOK_AGAIN: Duration = Duration::from_secs(5);
/// The most runs whose agents a worker keeps loaded.
const KEEP_RUNS: usize = 256;
/// The most items a host claims at once, so that hosts woken together share them.
pub(crate) const CLAIM_BATCH: usize = 8;

/// Runs claimed `item` with the run's context `ctx` and records how it
/// ended; an item whose claim is lost (withdrawn, taken over, its run
/// ended) stops and records nothing.
pub(crate) async fn run_item(ctx: Arc<Ctx>, queue: Arc<dyn WorkQueue>, item: WorkItem) {
    let span = tracing::info_span!(target: paddock_core::TRACE_TARGET, "flow.step", step = %item.step, kind = "agent", path = %item.path);
    let end = tokio::select! {
        end = execute(&ctx, &item).instrument(span) => end,
        why = keep_claim(queue.clone(), &item) => {
            tracing::warn!(run = %item.run, "this host lost item {} of run {}: {why}; stopping it", item.path, item.run);
            return;
        }
    };
    // Its events reach the store before its end, which other hosts act on.
    if let Some(outbox) = &ctx.outbox {
        outbox.flush().await;
    }
    let (run, path) = (item.run.clone(), item.path.clone());
    let ended = tokio::task::spawn_blocking(move || queue.end_item(&run, &path, lease::this_process(), &end))
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
    match ended {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!(run = %item.run, "item {} of run {} was no longer this host's when it ended", item.path, item.run)
        }
        Err(e) => tracing::warn!(run = %item.run, "cannot record the end of item {}: {e}", item.path),
    }
}

/// Runs the item's agent step (or finds it settled already).
async fn execute(ctx: &Ctx, item: &WorkItem) -> WorkEnd {
    let Some(step) = ctx.flow.steps.iter().find(|s| s.name == item.step) else {
        return WorkEnd::Failed { message: format!("the flow has no step named {:?}", item.step), leaf: None };
    };
    if let Some(rec) = item.checkpoint.clone() {
        // Settled by a host that died before recording the end.
        if !matches!(rec.status, StepStatus::Started | StepStatus::Decided) {
            return WorkEnd::Settled;
        }
        ctx.adopt(rec);
    }
    let input: Value = serde_json::from_str(&item.input).unwrap_or(Value::Null);
    let each = item.item.as_deref().and_then(|t| serde_json::from_str::<(Value, usize)>(t).ok());
    let policy = match item.policy.as_str() {
        "skip" => ItemPolicy::Skip,
        "dead_letter" => ItemPolicy::DeadLetter,
        _ => ItemPolicy::Fail,
    };
    let scope = Scope { item: each, budget: None, policy: Some(policy), claimed: true };
    let lane = crate::lane::Lane::default();
    let out = lane.scope(ctx.agent_step(step, input, &item.path, &scope)).await;
    match lane.close(ctx, out).await {
        Ok(_) => WorkEnd::Settled,
        Err(e) => WorkEnd::Failed { message: e.message, leaf: e.leaf.map(|l| *l) },
    }
}

/// Renews the claim on `item` every [`ITEM_RENEW`]; returns why when it is lost.
async fn keep_claim(queue: Arc<dyn WorkQueue>, item: &WorkItem) -> String {
    let mut renewed = Instant::now();
    loop {
        tokio::time::sleep(ITEM_RENEW).await;
        let (q, run, path) = (queue.clone(), item.run.clone(), item.path.clone());
        let held = tokio::task::spawn_blocking(move || q.renew_item(&run, &path, lease::this_process(), now_ms()))
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
        match held {
            Ok(true) => renewed = Instant::now(),
            Ok(false) => return "it was withdrawn, claimed by another host, or its run ended".into(),
            Err(e) if renewed.elapsed() >= super::work::ITEM_LEASE => {
                return format!("its claim could not be renewed: {e}");
            }
            Err(e) => tracing::warn!(run = %item.run, "cannot renew the claim on item {}: {e}", item.path),
        }
    }
}

impl Flows {
    /// The engine publishing its fan-outs' agent items to `queue`, for every
    /// host sharing it (what [`Flows::open`] does on a shared store).
    pub fn with_work_queue(mut self, queue: Arc<dyn WorkQueue>) -> Flows {
        self.work = Some(queue);
        self
    }

    /// Claims and runs items of every host's fan-outs, at most `slots` at
    /// once, until the host stops; `None` when the store is not shared.
    pub fn spawn_workers(&self, slots: usize) -> Option<tokio::task::JoinHandle<()>> {
        let queue = self.work.clone()?;
        let flows = self.clone();
        let slots = slots.max(1);
        self.workers.store(true, std::sync::atomic::Ordering::Relaxed);
        Some(tokio::spawn(async move {
            let bell: Option<Bell> = flows.store.bells().map(|b| b.bell("work".into()));
            let mut running = tokio::task::JoinSet::new();
            let mut left: HashMap<String, Instant> = HashMap::new();
            loop {
                let next = bell.as_ref().map(Bell::next);
                left.retain(|_, until| *until > Instant::now());
                let room = (slots - running.len()).min(CLAIM_BATCH);
                if room > 0 {
                    let (q, skip) = (queue.clone(), left.keys().cloned().collect::<Vec<_>>());
                    let claimed = tokio::task::spawn_blocking(move || {
                        q.claim_items(lease::this_process(), now_ms(), room, None, &skip)
                    })
                    .await
                    .unwrap_or_else(|e| Err(e.to_string()));
                    let claimed = claimed.unwrap_or_else(|e| {
                        tracing::warn!("cannot claim fan-out items: {e}");
                        Vec::new()
                    });
                    let more = claimed.len() == room;
                    for item in claimed {
                        match flows.item_ctx(&item) {
                            Ok(ctx) => drop(running.spawn(run_item(ctx, queue.clone(), item))),
                            Err(e) => {
                                // Its claim runs out and another host takes it.
                                tracing::warn!(run = %item.run, "leaving the items of run {} to other hosts: {e}", item.run);
                                left.insert(item.run, Instant::now() + LEAVE);
                            }
                        }
                    }
                    // A full batch: more may be waiting.
                    if more && running.len() < slots {
                        continue;
                    }
                }
                tokio::select! {
                    () = rung(next) => {}
                    Some(_) = running.join_next() => {}
                    () = tokio::time::sleep(LOOK_AGAIN) => {}
                }
            }
        }))
    }

    /// A context to run `item` in: the run's own when it executes here,
    /// else one made from the run's record with its pinned agents.
    fn item_ctx(&self, item: &WorkItem) -> Result<Arc<Ctx>, String> {
        if let Some(ctx) = self.executing.lock().get(&item.run).and_then(std::sync::Weak::upgrade) {
            return Ok(ctx);
        }
        let template = self.guests.lock().get(&item.run).cloned();
        let template = match template {
            Some(t) => t,
            None => {
                let t = self.run_template(&item.run)?;
                let mut guests = self.guests.lock();
                if guests.len() >= KEEP_RUNS {
                    guests.clear();
                }
                guests.insert(item.run.clone(), t.clone());
                t
            }
        };
        Ok(Arc::new(template.for_item(item.seq)))
    }

    /// What every item of run `run` run here shares: its flow, tenant and
    /// agents at their pinned versions.
    fn run_template(&self, run: &str) -> Result<Arc<Ctx>, String> {
        let record = self.store.run(run)?.ok_or_else(|| format!("no run with id {run:?}"))?;
        if record.status != RunStatus::Running {
            return Err(format!("run {run} {}", record.status.phrase()));
        }
        let flow = Flow::parse(&record.source, &record.origin).map_err(|e| e.to_string())?;
        let mut agents = HashMap::new();
        for (name, pinned) in &record.pins {
            agents.insert(name.clone(), self.runtime.load_pinned(name, pinned)?);
        }
        // The steps this host runs count in its metrics, as its own runs' do.
        let counted = self.hub.as_ref().map(|hub| hub.counting(&record.tenant, &flow.name, None));
        Ok(Arc::new(self.ctx_of(flow, &record, agents, counted)))
    }
}
