//! What `[retention]` says to forget: finished runs with their steps and
//! journals, settled questions, dead letters (`prune`), and the versions runs
//! pinned once no unfinished run needs them (`forget_versions`) — by
//! `paddock gc`, and by a serving host every `retention.interval`.

use crate::{FlowStore, Flows, Pruned, now_ms, store};
use std::time::Duration;

impl Flows {
    /// Forgets what `[retention]` says is old (see [`prune`]), counting it
    /// in the hub's metrics.
    pub fn gc(&self) -> Result<Pruned, String> {
        let pruned = prune(self.store.as_ref(), &self.runtime.settings().retention, now_ms())?;
        self.hub.as_ref().inspect(|h| h.metrics().pruned(&pruned));
        Ok(pruned)
    }

    /// Forgets kept versions no run needs any more (see [`forget_versions`]).
    pub fn forget_versions(&self) -> Result<u64, String> {
        forget_versions(self.store.as_ref(), self.runtime.versions(), &self.runtime.settings().retention)
    }
}

/// Forgets from `store` what `retention` says is old at `now_ms`: finished
/// runs with their steps and journals, settled questions, dead letters.
pub fn prune(store: &dyn FlowStore, retention: &paddock_config::Retention, now_ms: u64) -> Result<Pruned, String> {
    let before = |age: Duration| now_ms.saturating_sub(age.as_millis() as u64);
    store.prune(&store::Cutoffs {
        runs_before_ms: before(retention.runs),
        runs_per_tenant: retention.runs_per_tenant,
        approvals_before_ms: before(retention.approvals),
        dead_before_ms: before(retention.dead_letters),
    })
}

/// Forgets the versions runs pinned (see `paddock_runtime::plugins::versions`)
/// last pinned longer than `retention.runs` ago that no unfinished run in
/// `store` still needs; how many.
pub fn forget_versions(
    store: &dyn FlowStore,
    versions: &paddock_runtime::plugins::Versions,
    retention: &paddock_config::Retention,
) -> Result<u64, String> {
    if !versions.keeps() {
        return Ok(0);
    }
    let pinned: std::collections::HashSet<(String, String)> =
        store.running()?.into_iter().flat_map(|run| run.pins).collect();
    let before = std::time::SystemTime::now().checked_sub(retention.runs).unwrap_or(std::time::UNIX_EPOCH);
    versions.forget(before, &pinned)
}
