//! Where boards are kept: the traits a backend implements, and the [`Write`]
//! a tenant's store applies.

use crate::{BoardError, BoardLimits, Change, Entry, Writer};
use std::sync::Arc;
use tokio::sync::watch;

/// Where boards are kept. A backend for several hosts (Redis) implements
/// these two traits; callers do not change.
pub trait Backend: Send + Sync + 'static {
    /// The store of `tenant`'s board. Every call for one tenant returns a
    /// handle to the same store (and the same change notifications).
    fn open(&self, tenant: &str, limits: BoardLimits) -> Arc<dyn TenantStore>;
    /// The tenants holding an entry expired at `now_ms`, including tenants not
    /// opened since the process started, so their sweep is not forgotten.
    fn expiring(&self, now_ms: u64) -> Result<Vec<String>, BoardError>;
}

/// One tenant's board in a backend. Each write is applied atomically with its
/// checks (see [`plan_write`](crate::plan_write)); revisions are consecutive, starting at 1.
///
/// Expiry is the same in every backend: an entry expired at a time is never
/// listed then; a write that meets an expired entry first removes it (a delete
/// by [`Writer::expiry`] with its own revision) and is then judged as on an
/// absent key; a write refused for quota while expired entries remain first
/// removes those and tries once more. Removals are kept even when the write
/// itself is refused.
pub trait TenantStore: Send + Sync {
    /// Reads `key` as stored, expired or not ([`Namespace::lookup`](crate::Namespace::lookup) judges).
    fn get(&self, key: &str) -> Result<Option<Entry>, BoardError>;
    /// Applies `write` and returns its revision.
    fn write(&self, write: &Write<'_>) -> Result<u64, BoardError>;
    /// Keys starting with `prefix` and after `start_after`, in byte order, at
    /// most `limit`, leaving out entries expired at `now_ms`.
    fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        now_ms: u64,
    ) -> Result<Vec<Arc<str>>, BoardError>;
    /// Kept changes under `prefix` after revision `after`, in order, at most
    /// `limit` and, past the first, at most `max_bytes` of keys and values
    /// ([`Change::bytes`]); `Lagged` when some after `after` are no longer kept.
    fn changes_after(&self, prefix: &str, after: u64, limit: usize, max_bytes: u64) -> Result<Vec<Change>, BoardError>;
    /// The newest revision (0 when nothing was ever written).
    fn revision(&self) -> Result<u64, BoardError>;
    /// A receiver told the newest revision after each write.
    fn subscribe(&self) -> watch::Receiver<u64>;
    /// Removes `key` if it still has `revision` and has expired at `now_ms`;
    /// whether it did.
    fn reap(&self, key: &str, revision: u64, now_ms: u64) -> Result<bool, BoardError>;
    /// Removes up to `limit` entries expired at `now_ms`, soonest expiry
    /// first; how many it removed.
    fn sweep(&self, now_ms: u64, limit: usize) -> Result<usize, BoardError>;
    /// Whether a write waits on the disk (an fsync), so async callers should
    /// run it off the async worker threads.
    fn writes_block(&self) -> bool {
        false
    }
}

/// One write: a put (`value` set), a delete (`value` none), conditional on
/// the current revision when `expected` is set (0 = absent).
#[derive(Clone, Copy, Debug)]
pub struct Write<'a> {
    /// The key.
    pub key: &'a str,
    /// The revision the key must have, if any.
    pub expected: Option<u64>,
    /// The new value; `None` deletes.
    pub value: Option<&'a [u8]>,
    /// Who writes.
    pub writer: &'a Writer,
    /// When, in milliseconds since the Unix epoch: the entry's write time,
    /// and the time a current entry's expiry is judged at.
    pub at_ms: u64,
    /// When the new value expires (milliseconds since the Unix epoch); `None`
    /// keeps it until overwritten, clearing any earlier ttl.
    pub expires_ms: Option<u64>,
}

impl<'a> Write<'a> {
    /// The host's removal of the expired `key` at `at_ms`.
    pub fn expiry(key: &'a str, writer: &'a Writer, at_ms: u64) -> Self {
        Write { key, expected: None, value: None, writer, at_ms, expires_ms: None }
    }
}

/// An answer of `changes_after` as it is built: at most `limit` changes
/// and, past the first, at most `max_bytes` of them ([`Change::bytes`]).
/// Every backend builds its answer through one, so none is built bigger.
pub(crate) struct Answer {
    limit: usize,
    max_bytes: u64,
    bytes: u64,
    /// The changes taken.
    pub changes: Vec<Change>,
}

impl Answer {
    pub(crate) fn new(limit: usize, max_bytes: u64) -> Self {
        Answer { limit, max_bytes, bytes: 0, changes: Vec::new() }
    }

    /// Takes `change` if it fits; whether another may follow.
    pub(crate) fn push(&mut self, change: Change) -> bool {
        self.bytes += change.bytes();
        if self.changes.len() >= self.limit || (self.bytes > self.max_bytes && !self.changes.is_empty()) {
            return false;
        }
        self.changes.push(change);
        self.changes.len() < self.limit
    }
}
