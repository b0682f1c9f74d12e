//! The blackboard: a versioned key-value board per tenant, with
//! compare-and-swap, prefix listing, watch cursors and keys that expire.
//!
//! Tenants are separate [`Namespace`]s, never prefixes of one key space: a
//! guest's key is looked up only inside its own tenant's map, so no key
//! string (`../x`, `/x`, NUL, look-alikes) can reach another tenant's data.
//! This module knows nothing of wasmtime.
//!
//! Storage sits behind [`Backend`] / [`TenantStore`]: [`MemoryBackend`] (the
//! fast default for tests) and [`RedbBackend`] (durable, in the data folder).
//! Checks on keys, sizes and time-to-live, and the quota arithmetic, live here
//! once so every backend gives the same answers; one conformance suite runs
//! against each. Expiry is in `expiry.rs`.

#[cfg(test)]
mod conformance;
mod durable;
mod expiry;
mod memory;

pub use durable::RedbBackend;
pub use expiry::{MAX_TTL, SWEEP_EVERY, spawn_sweeper};
pub use memory::MemoryBackend;

use paddock_core::{Clock, SystemClock};
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// Most keys one `list` returns.
pub const LIST_MAX: usize = 1000;
/// Most changes one `watch` returns; the caller continues after the last one.
pub const WATCH_MAX: usize = 1000;

/// Limits of each tenant's board.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BoardLimits {
    /// Longest key or prefix, in bytes.
    pub key_bytes: u64,
    /// Largest value, in bytes.
    pub value_bytes: u64,
    /// Most keys a tenant may hold.
    pub max_keys: u64,
    /// Most bytes (keys plus values) a tenant may hold.
    pub max_bytes: u64,
    /// Changes kept for watchers; a watcher further behind gets `Lagged`.
    pub history: usize,
    /// Whether the key and byte counts come from the tenant's own policy
    /// (`tenants.NAME.blackboard`) rather than `[blackboard]`, for messages.
    pub per_tenant: bool,
}

impl Default for BoardLimits {
    fn default() -> Self {
        BoardLimits {
            key_bytes: 512,
            value_bytes: 1 << 20,
            max_keys: 100_000,
            max_bytes: 256 << 20,
            history: 4096,
            per_tenant: false,
        }
    }
}

/// Why a blackboard operation was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BoardError {
    /// The key or prefix is not acceptable; the text says why.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// The time-to-live is zero or over [`MAX_TTL`].
    #[error("invalid ttl for key {key:?}: {why}")]
    InvalidTtl {
        /// The key written.
        key: String,
        /// What is wrong, with the limits.
        why: String,
    },
    /// Compare-and-swap found another revision (0 = absent).
    #[error("conflict: current revision is {current}")]
    Conflict {
        /// The key's revision now.
        current: u64,
    },
    /// The value is over the size limit.
    #[error("value of {size} bytes is over the limit of {limit} bytes")]
    TooLarge {
        /// The value's size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The tenant's key count or byte total would be exceeded.
    #[error("quota exceeded: {0}")]
    QuotaExceeded(String),
    /// The store failed (I/O, a corrupt file); the text says how.
    #[error("storage failure: {0}")]
    Storage(String),
    /// The watcher fell behind the kept history.
    #[error("lagged: changes after revision {after} are no longer kept; resync and watch after {resume_after}")]
    Lagged {
        /// The cursor the watcher asked from.
        after: u64,
        /// The revision to resume watching after, once resynchronised.
        resume_after: u64,
    },
}

/// Who made a write: an agent, in one run. The tenant is implicit: it is the
/// namespace written to. Cheap to clone (two shared strings).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Writer {
    /// The agent's name (`paddock-cli` from the command line).
    pub agent: Arc<str>,
    /// The run the write was part of.
    pub run: Arc<str>,
}

/// The agent recorded for the deletes the host makes when a ttl runs out.
pub const EXPIRY_AGENT: &str = "paddock";
/// The run recorded for those deletes.
pub const EXPIRY_RUN: &str = "ttl";

static EXPIRY_WRITER: LazyLock<Writer> = LazyLock::new(|| Writer::new(EXPIRY_AGENT, EXPIRY_RUN));

impl Writer {
    /// `agent` writing as part of `run`.
    pub fn new(agent: impl Into<Arc<str>>, run: impl Into<Arc<str>>) -> Self {
        Writer { agent: agent.into(), run: run.into() }
    }

    /// The writer of the host's removal of an expired key: `paddock`, run `ttl`.
    pub fn expiry() -> Self {
        EXPIRY_WRITER.clone()
    }
}

/// A stored value with its provenance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The bytes.
    pub value: Arc<[u8]>,
    /// Revision of the write that stored it.
    pub revision: u64,
    /// Who wrote it.
    pub writer: Writer,
    /// When it was written (to the millisecond).
    pub written_at: SystemTime,
    /// When it expires, if it was written with a ttl.
    pub expires_at: Option<SystemTime>,
}

impl Entry {
    /// Whether it has expired at `now_ms` (milliseconds since the Unix epoch).
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expires_at.is_some_and(|at| unix_millis(at) <= now_ms)
    }
}

/// One change, as seen by watchers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The key changed.
    pub key: Arc<str>,
    /// The new value; `None` for a delete.
    pub value: Option<Arc<[u8]>>,
    /// The write's revision.
    pub revision: u64,
    /// Who made it; [`Writer::expiry`] when the host removed an expired key.
    pub writer: Writer,
}

/// What a read found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// A live entry.
    Found(Entry),
    /// No entry.
    Absent,
    /// An entry whose ttl ran out, not yet removed; it reads as absent.
    Expired {
        /// Its revision, for a removal conditional on it.
        revision: u64,
    },
}

/// Milliseconds since the Unix epoch (0 before it).
pub fn unix_millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The time `millis` milliseconds after the Unix epoch.
pub fn from_unix_millis(millis: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(millis)
}

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
/// checks (see [`plan_write`]); revisions are consecutive, starting at 1.
///
/// Expiry is the same in every backend: an entry expired at a time is never
/// listed then; a write that meets an expired entry first removes it (a delete
/// by [`Writer::expiry`] with its own revision) and is then judged as on an
/// absent key; a write refused for quota while expired entries remain first
/// removes those and tries once more. Removals are kept even when the write
/// itself is refused.
pub trait TenantStore: Send + Sync {
    /// Reads `key` as stored, expired or not ([`Namespace::lookup`] judges).
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
    /// Kept changes under `prefix` after revision `after`, in order, at most `limit`;
    /// `Lagged` when some after `after` are no longer kept.
    fn changes_after(&self, prefix: &str, after: u64, limit: usize) -> Result<Vec<Change>, BoardError>;
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

/// What a tenant holds after a write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Keys.
    pub keys: u64,
    /// Bytes of keys plus values.
    pub bytes: u64,
}

/// Decides a write against the key's current `(revision, value length)` and
/// the tenant's totals: the conflict, quota and delete-of-absent rules every
/// backend applies. Returns the totals after the write.
pub fn plan_write(
    tenant: &str,
    limits: &BoardLimits,
    current: Option<(u64, usize)>,
    totals: Totals,
    write: &Write<'_>,
) -> Result<Totals, BoardError> {
    let current_rev = current.map_or(0, |c| c.0);
    if let Some(expected) = write.expected
        && expected != current_rev
    {
        return Err(BoardError::Conflict { current: current_rev });
    }
    if write.value.is_none() && current.is_none() {
        return Err(BoardError::Conflict { current: 0 });
    }
    let key = write.key.len() as u64;
    let old_bytes = current.map_or(0, |c| key + c.1 as u64);
    let new_bytes = write.value.map_or(0, |v| key + v.len() as u64);
    let keys = match (current.is_some(), write.value.is_some()) {
        (false, true) => totals.keys + 1,
        (true, false) => totals.keys.saturating_sub(1),
        _ => totals.keys,
    };
    let key = |name: &str| {
        if limits.per_tenant { format!("tenants.{tenant}.blackboard.{name}") } else { format!("blackboard.{name}") }
    };
    if keys > limits.max_keys && keys > totals.keys {
        return Err(BoardError::QuotaExceeded(format!(
            "tenant \"{tenant}\" holds {} keys, the limit ({})",
            limits.max_keys,
            key("max-keys")
        )));
    }
    let bytes = totals.bytes.saturating_sub(old_bytes) + new_bytes;
    if bytes > limits.max_bytes && new_bytes > old_bytes {
        return Err(BoardError::QuotaExceeded(format!(
            "tenant \"{tenant}\" would hold {bytes} bytes, over the limit of {} ({})",
            limits.max_bytes,
            key("max-bytes")
        )));
    }
    Ok(Totals { keys, bytes })
}

/// All tenants' boards.
pub struct Blackboard {
    limits: BoardLimits,
    tenant_limits: HashMap<String, BoardLimits>,
    backend: Arc<dyn Backend>,
    clock: Arc<dyn Clock>,
    namespaces: RwLock<HashMap<String, Arc<Namespace>>>,
}

impl Default for Blackboard {
    fn default() -> Self {
        Blackboard::new(BoardLimits::default())
    }
}

impl std::fmt::Debug for Blackboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blackboard").field("limits", &self.limits).finish_non_exhaustive()
    }
}

impl Blackboard {
    /// An empty in-memory board with these limits per tenant.
    pub fn new(limits: BoardLimits) -> Self {
        Blackboard::with_backend(limits, Arc::new(MemoryBackend::default()))
    }

    /// A board kept by `backend`, on the system clock.
    pub fn with_backend(limits: BoardLimits, backend: Arc<dyn Backend>) -> Self {
        Blackboard {
            limits,
            tenant_limits: HashMap::new(),
            backend,
            clock: Arc::new(SystemClock),
            namespaces: RwLock::default(),
        }
    }

    /// The same board reading `clock`'s wall time instead of the system
    /// clock's (tests pass a [`ManualClock`](paddock_core::ManualClock) they
    /// move by hand instead of sleeping).
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        Blackboard { clock, namespaces: RwLock::default(), ..self }
    }

    /// The same board with other limits for some tenants (their policy's).
    pub fn with_tenant_limits(self, tenant_limits: HashMap<String, BoardLimits>) -> Self {
        Blackboard { tenant_limits, ..self }
    }

    /// The limits of tenants with none of their own.
    pub fn limits(&self) -> BoardLimits {
        self.limits
    }

    /// The limits of `tenant`'s board.
    pub fn limits_of(&self, tenant: &str) -> BoardLimits {
        self.tenant_limits.get(tenant).copied().unwrap_or(self.limits)
    }

    /// The time on the board's clock.
    pub fn now(&self) -> SystemTime {
        self.clock.wall()
    }

    /// The board of `tenant`.
    pub fn namespace(&self, tenant: &str) -> Arc<Namespace> {
        if let Some(ns) = self.namespaces.read().get(tenant) {
            return ns.clone();
        }
        self.namespaces
            .write()
            .entry(tenant.to_string())
            .or_insert_with(|| {
                let limits = self.limits_of(tenant);
                let store = self.backend.open(tenant, limits);
                Arc::new(Namespace { tenant: tenant.to_string(), limits, store, clock: self.clock.clone() })
            })
            .clone()
    }
}

/// One tenant's board: checks keys, sizes and ttls, then asks its store.
pub struct Namespace {
    tenant: String,
    limits: BoardLimits,
    store: Arc<dyn TenantStore>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Namespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Namespace").field("tenant", &self.tenant).finish_non_exhaustive()
    }
}

impl Namespace {
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

    /// Writes `key` to expire `ttl` from now (1 ms to [`MAX_TTL`]); returns the new revision.
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
        self.check_prefix(prefix)?;
        self.store.list(prefix, start_after, limit.min(LIST_MAX), self.now_ms())
    }

    /// Kept changes under `prefix` after revision `after`, without waiting.
    pub fn changes_after(&self, prefix: &str, after: u64) -> Result<Vec<Change>, BoardError> {
        self.check_prefix(prefix)?;
        self.store.changes_after(prefix, after, WATCH_MAX)
    }

    /// Changes under `prefix` after revision `after`, in revision order; waits
    /// up to `timeout` for the first and returns an empty list if none came.
    pub async fn watch(&self, prefix: &str, after: u64, timeout: Duration) -> Result<Vec<Change>, BoardError> {
        self.check_prefix(prefix)?;
        // Subscribe before looking, so a write between the look and the wait still wakes us.
        let mut latest = self.store.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changes = self.store.changes_after(prefix, after, WATCH_MAX)?;
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
