//! Triggers: run an agent whenever a key under a prefix changes, with the
//! change as its input — so agents react to each other without a conductor.
//!
//! Delivery is at least once. Each trigger keeps a cursor — the revision up to
//! which every change has been handled — in a namespace no tenant can name,
//! and moves it only past changes whose run has ended. A host that stops
//! mid-way delivers the changes after the cursor again when it starts.
//! Runs that fail are retried (three attempts in all, with backoff), then
//! logged and passed over; the dead-letter queue of the workflow engine will
//! take them.
//!
//! Loops stop: a trigger run's id carries its depth (`t3-…`), one more than
//! that of the run whose write started it (0 for any other writer), and a
//! change written at the trigger's `max-depth` starts nothing — an agent
//! writing under its own trigger's prefix, or two triggers feeding each
//! other, run `max-depth` times, not for ever.

use crate::runtime::{RunOptions, Runtime};
use paddock_blackboard::{Blackboard, BoardError, Change, Namespace, Writer};
use paddock_config::Trigger;
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

pub use paddock_core::names::SYSTEM_NAMESPACE;
/// Attempts per change before it is logged and passed over.
const ATTEMPTS: u32 = 3;

/// The input of a run for `change`: the trigger's configured fields and `change`.
pub fn input_for(trigger: &Trigger, change: &Change) -> String {
    let mut input = trigger.input.clone();
    input.insert(
        "change".into(),
        json!({
            "key": &*change.key,
            "value": change.value.as_ref().map(|v| String::from_utf8_lossy(v).into_owned()),
            "revision": change.revision,
            "writer": &*change.writer.agent,
            "run": &*change.writer.run,
            "deleted": change.value.is_none(),
        }),
    );
    serde_json::Value::Object(input).to_string()
}

/// Where a trigger's cursor is kept in the system namespace.
fn cursor_key(trigger: &Trigger) -> String {
    format!("triggers/{}/cursor", trigger.name)
}

/// Runs every trigger of `runtime` until the returned set is dropped or aborted.
pub fn start(runtime: &Runtime) -> JoinSet<()> {
    let mut set = JoinSet::new();
    for trigger in &runtime.settings().triggers {
        set.spawn(run_trigger(runtime.clone(), trigger.clone()));
    }
    set
}

async fn run_trigger(runtime: Runtime, trigger: Trigger) {
    let board: &Arc<Blackboard> = runtime.blackboard();
    let system = board.namespace(SYSTEM_NAMESPACE);
    let watched = board.namespace(&trigger.tenant);
    let mut cursor = read_cursor(&system, &trigger);
    tracing::info!(trigger = %trigger.name, tenant = %trigger.tenant, prefix = %trigger.prefix, cursor, "trigger started");
    let permits = Arc::new(Semaphore::new(trigger.concurrency.max(1)));
    let mut running = JoinSet::new();
    let mut pending = BTreeSet::new();
    let mut seen = cursor;
    loop {
        let changes = tokio::select! {
            changes = watched.watch(&trigger.prefix, seen, Duration::from_secs(30)) => changes,
            Some(done) = running.join_next(), if !running.is_empty() => {
                if let Ok(revision) = done {
                    pending.remove(&revision);
                    cursor = advance(&system, &trigger, &pending, seen, cursor);
                }
                continue;
            }
        };
        let changes = match changes {
            Ok(changes) => changes,
            Err(BoardError::Lagged { resume_after, .. }) => {
                tracing::error!(trigger = %trigger.name, after = seen, resume_after, "trigger fell behind the kept history; changes in between were not delivered");
                seen = resume_after;
                continue;
            }
            Err(e) => {
                tracing::error!(trigger = %trigger.name, error = %e, "trigger cannot read the board; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        for change in changes {
            seen = change.revision;
            if change.value.is_none() && !trigger.deletes {
                continue;
            }
            let depth = depth_of(&change.writer.run);
            if depth >= trigger.max_depth {
                tracing::error!(
                    trigger = %trigger.name, key = %change.key, revision = change.revision, run = %change.writer.run,
                    "trigger loop stopped: this change was written by the {depth}th trigger run in a row, the most allowed (triggers.max-depth = {})",
                    trigger.max_depth
                );
                continue;
            }
            let Ok(permit) = permits.clone().acquire_owned().await else { return };
            pending.insert(change.revision);
            let (runtime, trigger) = (runtime.clone(), trigger.clone());
            running.spawn(async move {
                deliver(&runtime, &trigger, &change).await;
                drop(permit);
                change.revision
            });
        }
        cursor = advance(&system, &trigger, &pending, seen, cursor);
    }
}

/// Moves the cursor to just below the oldest change still running (or to
/// everything seen), and stores it.
fn advance(system: &Namespace, trigger: &Trigger, pending: &BTreeSet<u64>, seen: u64, cursor: u64) -> u64 {
    let next = pending.first().map_or(seen, |oldest| oldest - 1);
    if next > cursor {
        let writer = Writer::new("paddock-triggers", format!("trigger/{}", trigger.name));
        if let Err(e) = system.put(&cursor_key(trigger), next.to_string().as_bytes(), &writer) {
            tracing::error!(trigger = %trigger.name, error = %e, "cannot store the trigger cursor");
            return cursor;
        }
        return next;
    }
    cursor
}

fn read_cursor(system: &Namespace, trigger: &Trigger) -> u64 {
    match system.get(&cursor_key(trigger)) {
        Ok(Some(entry)) => std::str::from_utf8(&entry.value).ok().and_then(|t| t.parse().ok()).unwrap_or(0),
        Ok(None) => 0,
        Err(e) => {
            tracing::error!(trigger = %trigger.name, error = %e, "cannot read the trigger cursor; starting from 0");
            0
        }
    }
}

/// The depth of the trigger run `run` (`t3-…` is 3); 0 for a run no trigger started.
fn depth_of(run: &str) -> u32 {
    run.strip_prefix('t').and_then(|rest| rest.split_once('-')).and_then(|(depth, _)| depth.parse().ok()).unwrap_or(0)
}

async fn deliver(runtime: &Runtime, trigger: &Trigger, change: &Change) {
    let input = input_for(trigger, change);
    let run = format!("t{}-{}", depth_of(&change.writer.run) + 1, crate::runtime::new_run_id());
    let options = RunOptions { tenant: Some(trigger.tenant.clone()), run: Some(run), ..Default::default() };
    for attempt in 1..=ATTEMPTS {
        let result = match runtime.load(&trigger.agent) {
            Ok(agent) => runtime.run(&agent, &input, &options).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let error = match result {
            Ok(outcome) => match outcome.result {
                Ok(_) => return,
                Err(e) => e.to_string(),
            },
            Err(e) => e,
        };
        tracing::warn!(trigger = %trigger.name, key = %change.key, revision = change.revision, attempt, %error, "trigger run failed");
        tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
    }
    tracing::error!(trigger = %trigger.name, key = %change.key, revision = change.revision, "trigger gave up on a change after {ATTEMPTS} attempts");
}
