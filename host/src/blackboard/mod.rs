//! The blackboard: a versioned key-value board per tenant, with
//! compare-and-swap, prefix listing and watch cursors.
//!
//! Tenants are separate [`Namespace`]s, never prefixes of one key space: a
//! guest's key is looked up only inside its own tenant's map, so no key
//! string (`../x`, `/x`, NUL, look-alikes) can reach another tenant's data.
//! This module knows nothing of wasmtime.
//!
//! Storage sits behind [`Backend`] / [`TenantStore`]: [`MemoryBackend`] (the
//! fast default for tests) and [`RedbBackend`] (durable, in the data folder).
//! Checks on keys and sizes, and the quota arithmetic, live here once so every
//! backend gives the same answers; one conformance suite runs against each.

mod durable;
mod memory;

pub use durable::RedbBackend;
pub use memory::MemoryBackend;

use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
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
}

impl Default for BoardLimits {
    fn default() -> Self {
        BoardLimits { key_bytes: 512, value_bytes: 1 << 20, max_keys: 100_000, max_bytes: 256 << 20, history: 4096 }
    }
}

/// Why a blackboard operation was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BoardError {
    /// The key or prefix is not acceptable; the text says why.
    #[error("invalid key: {0}")]
    InvalidKey(String),
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

/// A stored value with its provenance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The bytes.
    pub value: Arc<[u8]>,
    /// Revision of the write that stored it.
    pub revision: u64,
    /// Who wrote it (the agent's name).
    pub writer: Arc<str>,
    /// When it was written.
    pub written_at: SystemTime,
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
    /// Who made it.
    pub writer: Arc<str>,
}

/// Checks a tenant name: 1 to 64 of `a-z 0-9 - _`.
pub fn validate_tenant(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!("tenant name `{}` must be 1 to 64 of a-z, 0-9, '-' and '_'", name.escape_debug()))
    }
}

/// Where boards are kept. A backend for several hosts (Redis) implements
/// these two traits; callers do not change.
pub trait Backend: Send + Sync + 'static {
    /// The store of `tenant`'s board. Every call for one tenant returns a
    /// handle to the same store (and the same change notifications).
    fn open(&self, tenant: &str, limits: BoardLimits) -> Arc<dyn TenantStore>;
}

/// One tenant's board in a backend. Each write is applied atomically with its
/// checks (see [`plan_write`]); revisions are consecutive, starting at 1.
pub trait TenantStore: Send + Sync {
    /// Reads `key`.
    fn get(&self, key: &str) -> Result<Option<Entry>, BoardError>;
    /// Applies `write` and returns its revision.
    fn write(&self, write: &Write<'_>) -> Result<u64, BoardError>;
    /// Keys starting with `prefix` and after `start_after`, in byte order, at most `limit`.
    fn list(&self, prefix: &str, start_after: Option<&str>, limit: usize) -> Result<Vec<Arc<str>>, BoardError>;
    /// Kept changes under `prefix` after revision `after`, in order, at most `limit`;
    /// `Lagged` when some after `after` are no longer kept.
    fn changes_after(&self, prefix: &str, after: u64, limit: usize) -> Result<Vec<Change>, BoardError>;
    /// The newest revision (0 when nothing was ever written).
    fn revision(&self) -> Result<u64, BoardError>;
    /// A receiver told the newest revision after each write.
    fn subscribe(&self) -> watch::Receiver<u64>;
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
    pub writer: &'a Arc<str>,
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
    if keys > limits.max_keys && keys > totals.keys {
        return Err(BoardError::QuotaExceeded(format!(
            "tenant \"{tenant}\" holds {} keys, the limit (blackboard.max-keys)",
            limits.max_keys
        )));
    }
    let bytes = totals.bytes.saturating_sub(old_bytes) + new_bytes;
    if bytes > limits.max_bytes && new_bytes > old_bytes {
        return Err(BoardError::QuotaExceeded(format!(
            "tenant \"{tenant}\" would hold {bytes} bytes, over the limit of {} (blackboard.max-bytes)",
            limits.max_bytes
        )));
    }
    Ok(Totals { keys, bytes })
}

/// All tenants' boards.
pub struct Blackboard {
    limits: BoardLimits,
    backend: Arc<dyn Backend>,
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

    /// A board kept by `backend`.
    pub fn with_backend(limits: BoardLimits, backend: Arc<dyn Backend>) -> Self {
        Blackboard { limits, backend, namespaces: RwLock::default() }
    }

    /// The limits every tenant's board has.
    pub fn limits(&self) -> BoardLimits {
        self.limits
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
                let store = self.backend.open(tenant, self.limits);
                Arc::new(Namespace { tenant: tenant.to_string(), limits: self.limits, store })
            })
            .clone()
    }
}

/// One tenant's board: checks keys and sizes, then asks its store.
pub struct Namespace {
    tenant: String,
    limits: BoardLimits,
    store: Arc<dyn TenantStore>,
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

    /// Reads `key`.
    pub fn get(&self, key: &str) -> Result<Option<Entry>, BoardError> {
        self.check_key(key)?;
        self.store.get(key)
    }

    /// Writes `key` unconditionally; returns the new revision.
    pub fn put(&self, key: &str, value: &[u8], writer: &Arc<str>) -> Result<u64, BoardError> {
        self.write(Write { key, expected: None, value: Some(value), writer })
    }

    /// Writes `key` if its revision is `expected` (0 = absent); returns the new revision.
    pub fn compare_and_swap(
        &self,
        key: &str,
        expected: u64,
        value: &[u8],
        writer: &Arc<str>,
    ) -> Result<u64, BoardError> {
        self.write(Write { key, expected: Some(expected), value: Some(value), writer })
    }

    /// Deletes `key`; `false` when it was absent.
    pub fn delete(&self, key: &str, writer: &Arc<str>) -> Result<bool, BoardError> {
        match self.write(Write { key, expected: None, value: None, writer }) {
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
        self.store.list(prefix, start_after, limit.min(LIST_MAX))
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

    fn write(&self, write: Write<'_>) -> Result<u64, BoardError> {
        self.check_key(write.key)?;
        if let Some(v) = write.value
            && v.len() as u64 > self.limits.value_bytes
        {
            return Err(BoardError::TooLarge { size: v.len() as u64, limit: self.limits.value_bytes });
        }
        self.store.write(&write)
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

/// One suite of behaviour every backend must show, instantiated per backend.
#[cfg(test)]
mod conformance {
    use super::*;

    fn writer() -> Arc<str> {
        Arc::from("tester")
    }

    macro_rules! suite {
        ($backend:ident, $make:expr) => {
            mod $backend {
                use super::*;

                /// A board with `limits`, and what must live as long as it.
                fn board(limits: BoardLimits) -> (Blackboard, Option<tempfile::TempDir>) {
                    $make(limits)
                }

                fn ns(limits: BoardLimits) -> (Arc<Namespace>, Option<tempfile::TempDir>) {
                    let (board, dir) = board(limits);
                    (board.namespace("t"), dir)
                }

                #[test]
                fn revisions_increase_by_one_per_write_and_record_the_writer() {
                    let (ns, _d) = ns(BoardLimits::default());
                    assert_eq!(ns.put("a", b"1", &writer()), Ok(1));
                    assert_eq!(ns.put("b", b"2", &writer()), Ok(2));
                    assert_eq!(ns.put("a", b"3", &writer()), Ok(3));
                    let e = ns.get("a").unwrap().unwrap();
                    assert_eq!((&*e.value, e.revision, &*e.writer), (&b"3"[..], 3, "tester"));
                    assert!(e.written_at <= SystemTime::now());
                    assert_eq!(ns.revision(), Ok(3));
                }

                #[test]
                fn compare_and_swap_refuses_a_stale_revision_with_the_current_one() {
                    let (ns, _d) = ns(BoardLimits::default());
                    assert_eq!(ns.compare_and_swap("k", 0, b"x", &writer()), Ok(1));
                    assert_eq!(ns.compare_and_swap("k", 0, b"y", &writer()), Err(BoardError::Conflict { current: 1 }));
                    assert_eq!(ns.compare_and_swap("k", 1, b"y", &writer()), Ok(2));
                    assert_eq!(
                        ns.compare_and_swap("absent", 5, b"y", &writer()),
                        Err(BoardError::Conflict { current: 0 })
                    );
                }

                #[test]
                fn tenants_never_see_each_others_keys() {
                    let (board, _d) = board(BoardLimits::default());
                    board.namespace("a").put("secret", b"1", &writer()).unwrap();
                    let b = board.namespace("b");
                    for key in ["secret", "../a/secret", "/secret", "a/secret", "a:secret", "secret\u{200b}"] {
                        assert_eq!(b.get(key), Ok(None), "{key}");
                    }
                    assert!(b.list("", 10).unwrap().is_empty());
                    assert!(b.changes_after("", 0).unwrap().is_empty());
                    assert_eq!(b.put("secret", b"2", &writer()), Ok(1), "revisions are per tenant");
                    assert_eq!(&*board.namespace("a").get("secret").unwrap().unwrap().value, b"1");
                }

                #[test]
                fn keys_with_control_characters_or_over_the_limit_are_invalid() {
                    let (ns, _d) = ns(BoardLimits::default());
                    assert_eq!(
                        ns.put("a\0b", b"", &writer()),
                        Err(BoardError::InvalidKey("a key must not contain control characters (found '\\0')".into()))
                    );
                    let long = "k".repeat(513);
                    assert_eq!(
                        ns.get(&long),
                        Err(BoardError::InvalidKey("a key of 513 bytes is over the limit of 512 bytes".into()))
                    );
                    assert_eq!(ns.get(""), Err(BoardError::InvalidKey("a key must not be empty".into())));
                }

                #[test]
                fn value_over_the_limit_is_too_large_and_nothing_is_written() {
                    let (ns, _d) = ns(BoardLimits { value_bytes: 4, ..Default::default() });
                    assert_eq!(ns.put("k", b"12345", &writer()), Err(BoardError::TooLarge { size: 5, limit: 4 }));
                    assert_eq!(ns.revision(), Ok(0));
                }

                #[test]
                fn key_count_quota_names_tenant_and_limit_and_deletes_free_room() {
                    let (board, _d) = board(BoardLimits { max_keys: 1, ..Default::default() });
                    let ns = board.namespace("acme");
                    ns.put("a", b"", &writer()).unwrap();
                    ns.put("a", b"again", &writer()).unwrap();
                    assert_eq!(
                        ns.put("b", b"", &writer()),
                        Err(BoardError::QuotaExceeded(
                            "tenant \"acme\" holds 1 keys, the limit (blackboard.max-keys)".into()
                        ))
                    );
                    assert_eq!(ns.delete("a", &writer()), Ok(true));
                    assert_eq!(ns.put("b", b"", &writer()), Ok(4));
                }

                #[test]
                fn byte_quota_counts_keys_and_values() {
                    let (board, _d) = board(BoardLimits { max_bytes: 10, ..Default::default() });
                    let ns = board.namespace("acme");
                    assert_eq!(ns.put("k", b"123456789", &writer()), Ok(1));
                    assert_eq!(
                        ns.put("k", b"1234567890", &writer()),
                        Err(BoardError::QuotaExceeded(
                            "tenant \"acme\" would hold 11 bytes, over the limit of 10 (blackboard.max-bytes)".into()
                        ))
                    );
                    assert_eq!(ns.put("k", b"1", &writer()), Ok(2), "shrinking is always allowed");
                }

                #[test]
                fn list_returns_prefix_matches_in_byte_order_and_pages() {
                    let (ns, _d) = ns(BoardLimits::default());
                    for k in ["task/3", "task/2", "task/1", "tasks", "other"] {
                        ns.put(k, b"", &writer()).unwrap();
                    }
                    let names = |keys: Vec<Arc<str>>| keys.iter().map(|k| k.to_string()).collect::<Vec<_>>();
                    assert_eq!(names(ns.list("task/", 10).unwrap()), ["task/1", "task/2", "task/3"]);
                    assert_eq!(names(ns.list_after("task/", None, 2).unwrap()), ["task/1", "task/2"]);
                    assert_eq!(names(ns.list_after("task/", Some("task/2"), 2).unwrap()), ["task/3"]);
                    assert_eq!(names(ns.list("", 10).unwrap()), ["other", "task/1", "task/2", "task/3", "tasks"]);
                }

                #[test]
                fn delete_reports_whether_the_key_existed_and_is_watched() {
                    let (ns, _d) = ns(BoardLimits::default());
                    ns.put("k", b"v", &writer()).unwrap();
                    assert_eq!(ns.delete("k", &writer()), Ok(true));
                    assert_eq!(ns.delete("k", &writer()), Ok(false));
                    assert_eq!(ns.get("k"), Ok(None));
                    let changes = ns.changes_after("", 1).unwrap();
                    assert_eq!((changes.len(), changes[0].value.is_none(), changes[0].revision), (1, true, 2));
                }

                #[test]
                fn changes_come_in_revision_order_with_values_and_writers() {
                    let (ns, _d) = ns(BoardLimits::default());
                    for i in 0..5u8 {
                        ns.put(&format!("k{}", i % 2), &[i], &writer()).unwrap();
                    }
                    let changes = ns.changes_after("k1", 0).unwrap();
                    let seen: Vec<(u64, Vec<u8>)> =
                        changes.iter().map(|c| (c.revision, c.value.as_deref().unwrap().to_vec())).collect();
                    assert_eq!(seen, [(2, vec![1]), (4, vec![3])]);
                    assert!(changes.iter().all(|c| &*c.writer == "tester"));
                }

                #[tokio::test]
                async fn watch_wakes_on_a_later_write_under_its_prefix_only() {
                    let (ns, _d) = ns(BoardLimits::default());
                    let watcher = {
                        let ns = ns.clone();
                        tokio::spawn(async move { ns.watch("jobs/", 0, Duration::from_secs(5)).await })
                    };
                    tokio::task::yield_now().await;
                    ns.put("other", b"x", &writer()).unwrap();
                    ns.put("jobs/1", b"y", &writer()).unwrap();
                    let changes = watcher.await.unwrap().unwrap();
                    assert_eq!(changes.len(), 1);
                    assert_eq!((&*changes[0].key, changes[0].revision), ("jobs/1", 2));
                }

                #[tokio::test]
                async fn watch_times_out_empty() {
                    let (ns, _d) = ns(BoardLimits::default());
                    assert_eq!(ns.watch("", 0, Duration::from_millis(20)).await, Ok(vec![]));
                }

                #[test]
                fn a_watcher_behind_the_kept_history_is_told_it_lagged() {
                    let (ns, _d) = ns(BoardLimits { history: 2, ..Default::default() });
                    for i in 0..5 {
                        ns.put(&format!("k{i}"), b"", &writer()).unwrap();
                    }
                    assert_eq!(ns.changes_after("", 1), Err(BoardError::Lagged { after: 1, resume_after: 5 }));
                    assert_eq!(ns.changes_after("", 3).unwrap().len(), 2);
                    assert_eq!(ns.changes_after("", 5).unwrap().len(), 0);
                }
            }
        };
    }

    suite!(memory, |limits| (Blackboard::new(limits), None));

    suite!(redb, |limits| {
        let dir = tempfile::tempdir().unwrap();
        let backend = RedbBackend::open(&dir.path().join("board.redb")).unwrap();
        (Blackboard::with_backend(limits, Arc::new(backend)), Some(dir))
    });

    #[test]
    fn the_durable_board_survives_a_reopen_and_keeps_counting() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data/board.redb");
        {
            let board = Blackboard::with_backend(BoardLimits::default(), Arc::new(RedbBackend::open(&path).unwrap()));
            let ns = board.namespace("t");
            ns.put("a", b"1", &writer()).unwrap();
            ns.put("b", b"2", &writer()).unwrap();
            ns.delete("b", &writer()).unwrap();
        }
        let board = Blackboard::with_backend(BoardLimits::default(), Arc::new(RedbBackend::open(&path).unwrap()));
        let ns = board.namespace("t");
        assert_eq!(&*ns.get("a").unwrap().unwrap().value, b"1");
        assert_eq!(ns.get("b"), Ok(None));
        assert_eq!(ns.changes_after("", 0).unwrap().len(), 3);
        assert_eq!(ns.put("c", b"3", &writer()), Ok(4));
    }

    #[test]
    fn opening_a_file_that_is_not_a_board_is_a_storage_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junk.redb");
        std::fs::write(&path, b"not a database at all, just some bytes that go on for a while").unwrap();
        match RedbBackend::open(&path) {
            Err(BoardError::Storage(why)) => assert!(why.starts_with(&path.display().to_string()), "{why}"),
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("a junk file opened as a board"),
        }
    }

    #[test]
    fn tenant_names_are_restricted() {
        assert!(validate_tenant("acme-1").is_ok());
        assert!(validate_tenant("../x").is_err());
        assert!(validate_tenant("").is_err());
    }
}
