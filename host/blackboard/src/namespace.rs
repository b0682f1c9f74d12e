//! One tenant's board: the checks on keys, sizes and time-to-live made once
//! for every backend, in front of the tenant's store.

use crate::metrics::OpCounters;
use crate::{
    BoardError, BoardLimits, Change, Entry, LIST_MAX, Lookup, TenantStore, WATCH_MAX, WATCH_MAX_BYTES, Write, Writer,
};
use crate::{expiry, unix_millis};
use paddock_core::Clock;
use std::sync::Arc;
use std::time::Duration;

/// One tenant's board: checks keys, sizes and ttls, then asks its store.
pub struct Namespace {
    tenant: String,
    limits: BoardLimits,
    pub(crate) store: Arc<dyn TenantStore>,
    clock: Arc<dyn Clock>,
    ops: OpCounters,
}

impl std::fmt::Debug for Namespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Namespace").field("tenant", &self.tenant).finish_non_exhaustive()
    }
}

impl Namespace {
    /// `tenant`'s board over `store`, read on `clock`.
    pub(crate) fn new(
        tenant: &str,
        limits: BoardLimits,
        store: Arc<dyn TenantStore>,
        clock: Arc<dyn Clock>,
        ops: OpCounters,
    ) -> Self {
        Namespace { tenant: tenant.to_string(), limits, store, clock, ops }
    }

    /// The tenant this board belongs to.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// Whether writes wait on the disk; see [`TenantStore::writes_block`].
    pub fn writes_block(&self) -> bool {
        self.store.writes_block()
    }

    /// The newest revision (0 when nothing was ever written).
    pub fn revision(&self) -> Result<u64, BoardError> {
        self.store.revision()
    }

    fn now_ms(&self) -> u64 {
        unix_millis(self.clock.wall())
    }

    /// Reads `key`; an expired entry reads as absent and is removed on the
    /// spot (with a blocking store this waits for the removal's commit: see
    /// [`Namespace::lookup`] to do that elsewhere).
    pub fn get(&self, key: &str) -> Result<Option<Entry>, BoardError> {
        match self.lookup(key)? {
            Lookup::Found(entry) => Ok(Some(entry)),
            Lookup::Absent => Ok(None),
            Lookup::Expired { revision } => {
                self.reap_expired(key, revision);
                Ok(None)
            }
        }
    }

    /// Reads `key` without removing anything; the caller may pass an
    /// `Expired` answer to [`Namespace::reap_expired`].
    pub fn lookup(&self, key: &str) -> Result<Lookup, BoardError> {
        self.ops.read.inc();
        self.check_key(key)?;
        Ok(match self.store.get(key)? {
            None => Lookup::Absent,
            // The clock is read only for entries with a ttl, which keeps plain gets cheap.
            Some(entry) if entry.expires_at.is_some() && entry.is_expired(self.now_ms()) => {
                Lookup::Expired { revision: entry.revision }
            }
            Some(entry) => Lookup::Found(entry),
        })
    }

    /// Removes the expired `key` if it still has `revision`; whether it did.
    /// A failure is logged, not returned: the key reads as absent anyway and
    /// the sweeper tries again.
    pub fn reap_expired(&self, key: &str, revision: u64) -> bool {
        match self.store.reap(key, revision, self.now_ms()) {
            Ok(reaped) => reaped,
            Err(e) => {
                tracing::warn!(tenant = %self.tenant, key, error = %e, "cannot remove an expired blackboard key");
                false
            }
        }
    }

    /// Writes `key` unconditionally, clearing any ttl; returns the new revision.
    pub fn put(&self, key: &str, value: &[u8], writer: &Writer) -> Result<u64, BoardError> {
        self.write(key, None, Some(value), None, writer)
    }

    /// Writes `key` to expire `ttl` from now (1 ms to [`MAX_TTL`](crate::MAX_TTL)); returns the new revision.
    pub fn put_expiring(&self, key: &str, value: &[u8], ttl: Duration, writer: &Writer) -> Result<u64, BoardError> {
        self.write(key, None, Some(value), Some(ttl), writer)
    }

    /// Writes `key` if its revision is `expected` (0 = absent), clearing any
    /// ttl; returns the new revision.
    pub fn compare_and_swap(&self, key: &str, expected: u64, value: &[u8], writer: &Writer) -> Result<u64, BoardError> {
        self.write(key, Some(expected), Some(value), None, writer)
    }

    /// [`Namespace::compare_and_swap`] with a ttl: a lease that lapses unless renewed.
    pub fn compare_and_swap_expiring(
        &self,
        key: &str,
        expected: u64,
        value: &[u8],
        ttl: Duration,
        writer: &Writer,
    ) -> Result<u64, BoardError> {
        self.write(key, Some(expected), Some(value), Some(ttl), writer)
    }

    /// Deletes `key`; `false` when it was absent (or expired).
    pub fn delete(&self, key: &str, writer: &Writer) -> Result<bool, BoardError> {
        match self.write(key, None, None, None, writer) {
            Ok(_) => Ok(true),
            Err(BoardError::Conflict { current: 0 }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Keys starting with `prefix`, in byte order, at most `limit` (capped at [`LIST_MAX`]).
    pub fn list(&self, prefix: &str, limit: usize) -> Result<Vec<Arc<str>>, BoardError> {
        self.list_after(prefix, None, limit)
    }

    /// One page of [`Namespace::list`]: the keys after `start_after`.
    pub fn list_after(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Arc<str>>, BoardError> {
        self.ops.list.inc();
        self.check_prefix(prefix)?;
        self.store.list(prefix, start_after, limit.min(LIST_MAX), self.now_ms())
    }

    /// Kept changes under `prefix` after revision `after`, without waiting.
    pub fn changes_after(&self, prefix: &str, after: u64) -> Result<Vec<Change>, BoardError> {
        self.ops.changes.inc();
        self.check_prefix(prefix)?;
        self.store.changes_after(prefix, after, WATCH_MAX, WATCH_MAX_BYTES)
    }

    /// Changes under `prefix` after revision `after`, in revision order; waits
    /// up to `timeout` for the first and returns an empty list if none came.
    pub async fn watch(&self, prefix: &str, after: u64, timeout: Duration) -> Result<Vec<Change>, BoardError> {
        self.ops.changes.inc();
        self.check_prefix(prefix)?;
        // Subscribe before looking, so a write between the look and the wait still wakes us.
        let mut latest = self.store.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changes = self.store.changes_after(prefix, after, WATCH_MAX, WATCH_MAX_BYTES)?;
            if !changes.is_empty() {
                return Ok(changes);
            }
            if tokio::time::timeout_at(deadline, latest.changed()).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    fn write(
        &self,
        key: &str,
        expected: Option<u64>,
        value: Option<&[u8]>,
        ttl: Option<Duration>,
        writer: &Writer,
    ) -> Result<u64, BoardError> {
        match (expected, value) {
            (_, None) => self.ops.delete.inc(),
            (Some(_), Some(_)) => self.ops.swap.inc(),
            (None, Some(_)) => self.ops.put.inc(),
        };
        self.check_key(key)?;
        if let Some(v) = value
            && v.len() as u64 > self.limits.value_bytes
        {
            return Err(BoardError::TooLarge { size: v.len() as u64, limit: self.limits.value_bytes });
        }
        let at_ms = self.now_ms();
        let expires_ms = ttl.map(|ttl| expiry::expires_ms(key, ttl, at_ms)).transpose()?;
        self.store.write(&Write { key, expected, value, writer, at_ms, expires_ms })
    }

    fn check_key(&self, key: &str) -> Result<(), BoardError> {
        if key.is_empty() {
            return Err(BoardError::InvalidKey("a key must not be empty".into()));
        }
        self.check_prefix(key)
    }

    fn check_prefix(&self, key: &str) -> Result<(), BoardError> {
        if key.len() as u64 > self.limits.key_bytes {
            return Err(BoardError::InvalidKey(format!(
                "a key of {} bytes is over the limit of {} bytes",
                key.len(),
                self.limits.key_bytes
            )));
        }
        if let Some(c) = key.chars().find(|c| c.is_control()) {
            return Err(BoardError::InvalidKey(format!("a key must not contain control characters (found {:?})", c)));
        }
        Ok(())
    }
}
