//! Work items: the agent items of a fan-out, published by the host holding
//! the run so that every host sharing the store may run some of them.
//!
//! The holder publishes a fan-out's items (their inputs rendered) as one
//! group with its `max-concurrency`; any host claims ready items, never
//! more at once in a group than its bound, and holds each by a lease it
//! renews ([`ITEM_LEASE`]); an item whose lease ran out is claimed again.
//! The host that ran an item writes its checkpoint (its writes fenced by
//! its claim) and then its end; the holder collects the ends and joins the
//! fan-out as if it had run every item itself.

use super::store::StepRecord;
use std::time::Duration;

/// How long a claim on an item lasts unrenewed.
pub const ITEM_LEASE: Duration = Duration::from_secs(15);
/// How often the host running an item renews its claim.
pub const ITEM_RENEW: Duration = Duration::from_secs(2);
/// The largest rendered input an item may have to be published; a larger
/// one runs on the holder.
pub const MAX_ITEM_INPUT: usize = 1 << 20;

/// An item to run.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkItem {
    /// The run.
    pub run: String,
    /// The item's path (`main/each[3]/task`).
    pub path: String,
    /// The fan-out it belongs to (the parallel step's path).
    pub group: String,
    /// The name of the item's agent step.
    pub step: String,
    /// Its input, rendered (JSON).
    pub input: String,
    /// The `for-each` item and its index (JSON `[item, index]`), if any.
    pub item: Option<String>,
    /// What a failure does: `fail`, `skip` or `dead_letter`.
    pub policy: String,
    /// Its checkpoint when claimed (an interrupted attempt), if any.
    pub checkpoint: Option<StepRecord>,
    /// Where its checkpoints go in the run's order of steps.
    pub seq: u64,
}

/// How an item ended.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum WorkEnd {
    /// Its checkpoint says how (done, or skipped by its policy).
    Settled,
    /// It failed, and the fan-out decides what that does.
    Failed {
        /// Why.
        message: String,
        /// The agent step that ran out of attempts.
        leaf: Option<Leaf>,
    },
}

/// Where work items wait: a store every host shares.
pub trait WorkQueue: Send + Sync {
    /// Publishes `items` of fan-out `group` of run `run`, run at most `max`
    /// at once across hosts; an item published already keeps its state.
    fn publish(&self, run: &str, group: &str, max: usize, items: &[WorkItem]) -> Result<(), String>;
    /// Claims for `holder` up to `limit` items ready (or whose claim ran out
    /// at `now_ms`) — of run `run` only when given, of no run in `skip` —
    /// within each group's bound.
    fn claim_items(
        &self,
        holder: &str,
        now_ms: u64,
        limit: usize,
        run: Option<&str>,
        skip: &[String],
    ) -> Result<Vec<WorkItem>, String>;
    /// Renews `holder`'s claim on an item to `now_ms` + [`ITEM_LEASE`];
    /// `false` when it is no longer held by `holder` (withdrawn, claimed by
    /// another) or its run no longer runs.
    fn renew_item(&self, run: &str, path: &str, holder: &str, now_ms: u64) -> Result<bool, String>;
    /// Records how an item `holder` ran ended; `false` when it no longer held it.
    fn end_item(&self, run: &str, path: &str, holder: &str, end: &WorkEnd) -> Result<bool, String>;
    /// The ended items of fan-out `group`, each with its checkpoint, taken
    /// off the queue.
    fn take_ended(&self, run: &str, group: &str) -> Result<Vec<(String, WorkEnd, Option<StepRecord>)>, String>;
    /// Withdraws what is left of fan-out `group` (its join needs no more):
    /// ready items are dropped, and claims on the others fail at their next renewal.
    fn withdraw(&self, run: &str, group: &str) -> Result<(), String>;
}

/// An agent step that exhausted its retries.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Leaf {
    /// Its agent.
    pub agent: String,
    /// The version that failed.
    pub version: String,
    /// Its input.
    pub input: String,
    /// Attempts made.
    pub attempts: u32,
}
