//! Keys with a time to live.
//!
//! An entry written with a ttl reads as absent from the moment it expires;
//! the host then removes it with a real delete (a revision, a change by
//! [`Writer::expiry`](super::Writer::expiry)) so watchers and triggers see it
//! go and its room in the tenant's quota is freed. Removal happens in three
//! places, whichever comes first: a read or write that meets the entry, a
//! write refused for quota, and the sweeper, which walks each backend's
//! expiry index (ordered by expiry time) about once a second.

use super::{Blackboard, BoardError, unix_millis};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::task::JoinHandle;

/// The longest ttl. A key meant to live longer is better kept without one,
/// and a longer ttl is most often a unit mistake (seconds passed as
/// milliseconds); the bound also keeps expiry times far from overflow.
pub const MAX_TTL: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// How often the sweeper runs: an expired key that nobody touches is
/// removed (and its delete published) within about this long.
pub const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Most removals in one lock hold or transaction, so a sweep of many keys
/// lets writers in between batches.
pub(super) const SWEEP_BATCH: usize = 1000;

/// When an entry written at `now_ms` with `ttl` expires, or why the ttl is refused.
pub(super) fn expires_ms(key: &str, ttl: Duration, now_ms: u64) -> Result<u64, BoardError> {
    let refuse = |why: String| BoardError::InvalidTtl { key: key.to_string(), why };
    // Expiry is kept to the millisecond; a ttl shorter than that would expire as it is written.
    let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    if millis == 0 {
        return Err(refuse(format!("it must be at least 1ms, not {}", humantime::format_duration(ttl))));
    }
    if ttl > MAX_TTL {
        return Err(refuse(format!("{millis} ms is over the limit of {} ms (365 days)", MAX_TTL.as_millis())));
    }
    Ok(now_ms.saturating_add(millis))
}

impl Blackboard {
    /// Removes every entry expired at `now`, in every tenant, as deletes by
    /// [`Writer::expiry`](super::Writer::expiry); how many it removed. A
    /// tenant whose store fails is logged and skipped until the next sweep.
    /// With a durable store this waits on commits: call it off async workers.
    pub fn sweep_expired(&self, now: SystemTime) -> usize {
        let now_ms = unix_millis(now);
        let tenants = match self.backend.expiring(now_ms) {
            Ok(tenants) => tenants,
            Err(e) => {
                tracing::warn!(error = %e, "cannot find the tenants with expired blackboard keys");
                return 0;
            }
        };
        let mut removed = 0;
        for tenant in tenants {
            let ns = self.namespace(&tenant);
            loop {
                match ns.store.sweep(now_ms, SWEEP_BATCH) {
                    Ok(n) => {
                        removed += n;
                        if n < SWEEP_BATCH {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(tenant = %tenant, error = %e, "cannot remove expired blackboard keys");
                        break;
                    }
                }
            }
        }
        removed
    }
}

/// Starts a tokio task that calls [`Blackboard::sweep_expired`] `every` so
/// long (the host uses [`SWEEP_EVERY`]) on a blocking thread. It holds the board weakly and ends
/// once the board is dropped (or when the handle is aborted). Must be called
/// inside a tokio runtime.
pub fn spawn_sweeper(board: &Arc<Blackboard>, every: Duration) -> JoinHandle<()> {
    let board = Arc::downgrade(board);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(board) = board.upgrade() else { return };
            // A durable sweep commits (fsyncs), so it stays off the async workers.
            let swept = tokio::task::spawn_blocking(move || board.sweep_expired(board.now())).await;
            if let Ok(removed) = swept
                && removed > 0
            {
                tracing::debug!(removed, "removed expired blackboard keys");
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::{MS, test_clock, writer};

    #[tokio::test]
    async fn the_sweeper_removes_expired_keys_on_its_own_and_ends_with_its_board() {
        let clock = test_clock();
        let board = Arc::new(Blackboard::default().with_clock(clock.clone()));
        let ns = board.namespace("t");
        ns.put_expiring("k", b"", 10 * MS, &writer()).unwrap();
        let sweeper = spawn_sweeper(&board, Duration::from_millis(5));
        clock.advance(10 * MS);
        let mut removed = false;
        for _ in 0..200 {
            if ns.revision() == Ok(2) {
                removed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(removed, "the sweeper did not remove the expired key");
        drop((ns, board));
        tokio::time::timeout(Duration::from_secs(5), sweeper).await.unwrap().unwrap();
    }
}
