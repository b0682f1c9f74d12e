//! Cancelling a run: from the process running it, from another process
//! through the store, or of an orphan no process runs.

use super::approvals::now_ms;
use super::held_elsewhere;
use super::lease;
use super::store::{FlowStore, RunStatus};

/// How a cancel was carried out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cancel {
    /// The run executes in this process, and stops now.
    Stopping,
    /// Host `owner` runs it, and stops it as soon as it hears of the request:
    /// at once on a store shared by hosts, else when it next renews its lease (2 s).
    Requested {
        /// That host's holder id.
        owner: String,
    },
    /// No process ran it: it is marked cancelled.
    Cancelled,
}

/// Cancels run `id` through the store alone (what `paddock flow cancel`
/// does from another process): asks its owner, or marks an orphan cancelled.
pub fn cancel(store: &dyn FlowStore, id: &str, by: &str) -> Result<Cancel, CancelError> {
    let mut record = store.run(id).map_err(CancelError::Store)?.ok_or_else(|| CancelError::NoRun(id.to_string()))?;
    if record.status != RunStatus::Running {
        return Err(CancelError::Finished { id: id.to_string(), status: record.status });
    }
    if held_elsewhere(&record) {
        store.request_cancel(id, by).map_err(CancelError::Store)?;
        return Ok(Cancel::Requested { owner: record.owner });
    }
    let (was, beat) = (record.owner.clone(), record.heartbeat_ms);
    let now = now_ms();
    record.owner = lease::this_process().to_string();
    record.heartbeat_ms = now;
    record.updated_ms = now;
    record.status = RunStatus::Cancelled;
    record.error = Some(format!("cancelled by {by}"));
    if !store.claim(&record, &was, beat).map_err(CancelError::Store)? {
        return Err(CancelError::TakenOver(id.to_string()));
    }
    Ok(Cancel::Cancelled)
}

/// Why a run was not cancelled.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CancelError {
    /// No run has this id.
    #[error("no run with id {0:?}")]
    NoRun(String),
    /// The run has ended.
    #[error("run {id} {}; only an unfinished run can be cancelled", status.phrase())]
    Finished {
        /// The run.
        id: String,
        /// How it ended.
        status: RunStatus,
    },
    /// Another process resumed the orphan while it was being cancelled.
    #[error("run {0} was taken over by another process while cancelling; cancel it again")]
    TakenOver(String),
    /// The store failed (its text).
    #[error("{0}")]
    Store(String),
}
