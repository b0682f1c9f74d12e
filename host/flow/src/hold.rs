//! Holding a run while it executes here: its lease renewed every
//! [`lease::RENEW`], and a cancel asked from another process heard — at once
//! when the store rings (a store shared by hosts), else at the next renewal.

use super::approvals::now_ms;
use super::bells::{Bell, rung};
use super::lease;
use super::store::FlowStore;
use std::sync::Arc;
use tokio::sync::watch;

/// Who stops a run whose lease this host lost, in its cancel signal.
const LOST_LEASE: &str = "the loss of its lease";

/// Renews this host's lease of run `id` and listens for a cancel, until
/// aborted. A lease another host has claimed, or one not renewed for
/// [`lease::LEASE`] (the store out of reach), stops the run through
/// `signal`: another host may hold it now. So does a cancel request.
pub(crate) async fn keep_lease(store: Arc<dyn FlowStore>, id: String, signal: watch::Sender<Option<String>>) {
    let holder = lease::this_process();
    let bell = store.bells().map(|bells| bells.bell(format!("cancel {id}")));
    let mut renewed = now_ms();
    let mut renewal = tokio::time::Instant::now() + lease::RENEW;
    loop {
        let ring = bell.as_ref().map(Bell::next);
        let asked = tokio::select! {
            () = tokio::time::sleep_until(renewal) => false,
            () = rung(ring) => true,
        };
        if !asked {
            renewal += lease::RENEW;
            let now = now_ms();
            let lost = match store.renew(&id, holder, now) {
                Ok(true) => {
                    renewed = now;
                    None
                }
                Ok(false) => Some("another host claimed its lease".to_string()),
                Err(e) if lease::expired(renewed, now) => Some(format!("its lease could not be renewed: {e}")),
                Err(e) => {
                    tracing::warn!(run = %id, "cannot renew the lease: {e}");
                    None
                }
            };
            if let Some(why) = lost {
                tracing::warn!(run = %id, "this host lost run {id}: {why}; stopping it");
                signal.send_replace(Some(format!("{LOST_LEASE} ({why})")));
                return;
            }
        }
        // Another process asked to cancel the run.
        match store.cancel_request(&id) {
            Ok(Some(by)) => drop(signal.send_replace(Some(by))),
            Ok(None) => {}
            Err(e) => tracing::warn!(run = %id, "cannot look for a cancel request: {e}"),
        }
    }
}
