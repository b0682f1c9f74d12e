//! Runs that lost their host: found by their lease, and taken over.
//!
//! A starting host resumes every orphan, and a serving host looks again every
//! [`SCAN_EVERY`]: so when hosts share a store (PostgreSQL, or one machine's
//! SQLite file), a run whose host died is finished by another within its lease
//! ([`lease::LEASE`], 15 s) and a scan, or at the next scan when its holder was
//! a process of this machine that is gone. Two hosts finding one orphan both
//! try; the claim (a compare-and-swap on the holder and its last renewal) lets
//! one through.

use crate::store::RunRecord;
use crate::{Flows, Report, StoreError, held_elsewhere, lease, now_ms};
use futures_util::FutureExt;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// How often a serving host looks for runs whose host is gone.
pub const SCAN_EVERY: Duration = Duration::from_secs(5);

/// How long a run this host could not take over is left before it tries
/// again (its pinned agent may be missing here: another host may have it).
const RETRY_AFTER: Duration = Duration::from_secs(60);

impl Flows {
    /// Unfinished runs no live host holds: their lease expired, or their
    /// holder is a process of this machine that is gone. A run this process
    /// holds is never one while its lease lasts, executing or not yet (begun,
    /// its task about to start).
    pub fn orphans(&self) -> Result<Vec<RunRecord>, StoreError> {
        let runs = self.store.running().map_err(StoreError::Failed)?;
        let live = self.live.lock();
        let held_here = |r: &RunRecord| r.owner == lease::this_process() && !lease::expired(r.heartbeat_ms, now_ms());
        Ok(runs.into_iter().filter(|r| !live.contains_key(&r.id) && !held_elsewhere(r) && !held_here(r)).collect())
    }

    /// Resumes every orphaned run in the background (what a starting host does).
    pub fn resume_orphans(&self) -> Result<Vec<JoinHandle<Result<Report, String>>>, StoreError> {
        Ok(self.orphans()?.into_iter().map(|run| self.take_over(run)).collect())
    }

    fn take_over(&self, run: RunRecord) -> JoinHandle<Result<Report, String>> {
        let this = self.clone();
        tracing::info!(run = %run.id, flow = %run.flow, holder = %run.owner, "resuming an interrupted run");
        tokio::spawn(async move {
            let report = this.resume(&run.id, None, false).await;
            match &report {
                Ok(r) => tracing::info!(run = %r.run, status = ?r.status, "resumed run finished"),
                Err(e) => tracing::warn!(run = %run.id, "cannot resume: {e}"),
            }
            report
        })
    }

    /// Looks for orphans every [`SCAN_EVERY`] and takes each over, until the
    /// task is aborted. A run this host is still taking over is not tried again,
    /// nor for [`RETRY_AFTER`] one it could not.
    pub fn spawn_failover(&self) -> JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut taking: HashMap<String, JoinHandle<Result<Report, String>>> = HashMap::new();
            let mut failed: HashMap<String, Instant> = HashMap::new();
            loop {
                tokio::time::sleep(SCAN_EVERY).await;
                let now = Instant::now();
                taking.retain(|id, task| {
                    if !task.is_finished() {
                        return true;
                    }
                    if let Some(Ok(Err(_))) = task.now_or_never() {
                        failed.insert(id.clone(), now + RETRY_AFTER);
                    }
                    false
                });
                failed.retain(|_, until| *until > now);
                let scan = this.clone();
                let orphans = match tokio::task::spawn_blocking(move || scan.orphans()).await {
                    Ok(Ok(orphans)) => orphans,
                    Ok(Err(e)) => {
                        tracing::warn!("cannot look for runs whose host is gone: {e}");
                        continue;
                    }
                    Err(_) => continue,
                };
                let fresh: Vec<RunRecord> = orphans
                    .into_iter()
                    .filter(|r| !taking.contains_key(&r.id) && !failed.contains_key(&r.id))
                    .collect();
                for run in fresh {
                    let id = run.id.clone();
                    taking.insert(id, this.take_over(run));
                }
            }
        })
    }
}
