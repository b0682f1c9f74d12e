//! The blackboard: a versioned key-value board per tenant, with
//! compare-and-swap, prefix listing and watch cursors.
//!
//! Tenants are separate [`Namespace`]s, never prefixes of one key space: a
//! guest's key is looked up only inside its own tenant's map, so no key
//! string (`../x`, `/x`, NUL, look-alikes) can reach another tenant's data.
//! This module knows nothing of wasmtime.

use parking_lot::RwLock;
use std::collections::{BTreeMap, HashMap, VecDeque};
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

/// All tenants' boards.
#[derive(Debug, Default)]
pub struct Blackboard {
    limits: BoardLimits,
    namespaces: RwLock<HashMap<String, Arc<Namespace>>>,
}

impl Blackboard {
    /// An empty board with these limits per tenant.
    pub fn new(limits: BoardLimits) -> Self {
        Blackboard { limits, namespaces: RwLock::default() }
    }

    /// The limits every tenant's board has.
    pub fn limits(&self) -> BoardLimits {
        self.limits
    }

    /// The board of `tenant`, created empty on first use.
    pub fn namespace(&self, tenant: &str) -> Arc<Namespace> {
        if let Some(ns) = self.namespaces.read().get(tenant) {
            return ns.clone();
        }
        self.namespaces
            .write()
            .entry(tenant.to_string())
            .or_insert_with(|| Arc::new(Namespace::new(tenant, self.limits)))
            .clone()
    }
}

/// One tenant's board.
#[derive(Debug)]
pub struct Namespace {
    tenant: String,
    limits: BoardLimits,
    state: RwLock<State>,
    latest: watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct State {
    entries: BTreeMap<Arc<str>, Entry>,
    revision: u64,
    bytes: u64,
    history: VecDeque<Change>,
}

impl Namespace {
    fn new(tenant: &str, limits: BoardLimits) -> Self {
        Namespace { tenant: tenant.to_string(), limits, state: RwLock::default(), latest: watch::Sender::new(0) }
    }

    /// The tenant this board belongs to.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The newest revision (0 when nothing was ever written).
    pub fn revision(&self) -> u64 {
        self.state.read().revision
    }

    /// Reads `key`.
    pub fn get(&self, key: &str) -> Result<Option<Entry>, BoardError> {
        self.check_key(key)?;
        Ok(self.state.read().entries.get(key).cloned())
    }

    /// Writes `key` unconditionally; returns the new revision.
    pub fn put(&self, key: &str, value: &[u8], writer: &Arc<str>) -> Result<u64, BoardError> {
        self.write(key, None, Some(value), writer)
    }

    /// Writes `key` if its revision is `expected` (0 = absent); returns the new revision.
    pub fn compare_and_swap(
        &self,
        key: &str,
        expected: u64,
        value: &[u8],
        writer: &Arc<str>,
    ) -> Result<u64, BoardError> {
        self.write(key, Some(expected), Some(value), writer)
    }

    /// Deletes `key`; `false` when it was absent.
    pub fn delete(&self, key: &str, writer: &Arc<str>) -> Result<bool, BoardError> {
        self.check_key(key)?;
        if !self.state.read().entries.contains_key(key) {
            return Ok(false);
        }
        match self.write(key, None, None, writer) {
            Ok(_) => Ok(true),
            // Deleted by someone else between the two looks.
            Err(BoardError::Conflict { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Keys starting with `prefix`, in byte order, at most `limit` (capped at [`LIST_MAX`]).
    pub fn list(&self, prefix: &str, limit: usize) -> Result<Vec<Arc<str>>, BoardError> {
        self.check_prefix(prefix)?;
        let state = self.state.read();
        Ok(state
            .entries
            .range::<str, _>((std::ops::Bound::Included(prefix), std::ops::Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(limit.min(LIST_MAX))
            .map(|(k, _)| k.clone())
            .collect())
    }

    /// Changes under `prefix` after revision `after`, in revision order; waits
    /// up to `timeout` for the first and returns an empty list if none came.
    pub async fn watch(&self, prefix: &str, after: u64, timeout: Duration) -> Result<Vec<Change>, BoardError> {
        self.check_prefix(prefix)?;
        // Subscribe before looking, so a write between the look and the wait still wakes us.
        let mut latest = self.latest.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changes = self.changes_after(prefix, after)?;
            if !changes.is_empty() {
                return Ok(changes);
            }
            if tokio::time::timeout_at(deadline, latest.changed()).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    fn changes_after(&self, prefix: &str, after: u64) -> Result<Vec<Change>, BoardError> {
        let state = self.state.read();
        if after >= state.revision {
            return Ok(Vec::new());
        }
        // Revisions are consecutive, so a cursor older than the first kept change has missed some.
        let oldest = state.history.front().map_or(state.revision + 1, |c| c.revision);
        if after + 1 < oldest {
            return Err(BoardError::Lagged { after, resume_after: state.revision });
        }
        let start = state.history.partition_point(|c| c.revision <= after);
        Ok(state.history.range(start..).filter(|c| c.key.starts_with(prefix)).take(WATCH_MAX).cloned().collect())
    }

    fn write(
        &self,
        key: &str,
        expected: Option<u64>,
        value: Option<&[u8]>,
        writer: &Arc<str>,
    ) -> Result<u64, BoardError> {
        self.check_key(key)?;
        if let Some(v) = value
            && v.len() as u64 > self.limits.value_bytes
        {
            return Err(BoardError::TooLarge { size: v.len() as u64, limit: self.limits.value_bytes });
        }
        let mut state = self.state.write();
        let current = state.entries.get_key_value(key).map(|(k, e)| (k.clone(), e.revision, e.value.len()));
        let current_rev = current.as_ref().map_or(0, |c| c.1);
        if let Some(expected) = expected
            && expected != current_rev
        {
            return Err(BoardError::Conflict { current: current_rev });
        }
        if value.is_none() && current.is_none() {
            return Err(BoardError::Conflict { current: 0 });
        }
        let old_bytes = current.as_ref().map_or(0, |c| key.len() + c.2) as u64;
        let new_bytes = value.map_or(0, |v| key.len() + v.len()) as u64;
        let keys_after = state.entries.len() as u64 + u64::from(current.is_none() && value.is_some());
        if keys_after > self.limits.max_keys {
            return Err(BoardError::QuotaExceeded(format!(
                "tenant \"{}\" holds {} keys, the limit (blackboard.max-keys)",
                self.tenant, self.limits.max_keys
            )));
        }
        let bytes_after = state.bytes - old_bytes + new_bytes;
        if bytes_after > self.limits.max_bytes {
            return Err(BoardError::QuotaExceeded(format!(
                "tenant \"{}\" would hold {} bytes, over the limit of {} (blackboard.max-bytes)",
                self.tenant, bytes_after, self.limits.max_bytes
            )));
        }

        state.revision += 1;
        state.bytes = bytes_after;
        let revision = state.revision;
        // Reuse the stored key so history and map share one allocation.
        let key: Arc<str> = current.map_or_else(|| Arc::from(key), |c| c.0);
        let value: Option<Arc<[u8]>> = value.map(Arc::from);
        match &value {
            Some(v) => {
                let entry = Entry { value: v.clone(), revision, writer: writer.clone(), written_at: SystemTime::now() };
                state.entries.insert(key.clone(), entry);
            }
            None => {
                state.entries.remove(&key);
            }
        }
        if self.limits.history > 0 {
            if state.history.len() == self.limits.history {
                state.history.pop_front();
            }
            state.history.push_back(Change { key, value, revision, writer: writer.clone() });
        }
        drop(state);
        self.latest.send_replace(revision);
        Ok(revision)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn writer() -> Arc<str> {
        Arc::from("tester")
    }

    #[test]
    fn revisions_increase_by_one_per_write_and_record_the_writer() {
        let ns = Blackboard::default().namespace("t");
        assert_eq!(ns.put("a", b"1", &writer()), Ok(1));
        assert_eq!(ns.put("b", b"2", &writer()), Ok(2));
        assert_eq!(ns.put("a", b"3", &writer()), Ok(3));
        let e = ns.get("a").unwrap().unwrap();
        assert_eq!((&*e.value, e.revision, &*e.writer), (&b"3"[..], 3, "tester"));
    }

    #[test]
    fn compare_and_swap_refuses_a_stale_revision_with_the_current_one() {
        let ns = Blackboard::default().namespace("t");
        assert_eq!(ns.compare_and_swap("k", 0, b"x", &writer()), Ok(1));
        assert_eq!(ns.compare_and_swap("k", 0, b"y", &writer()), Err(BoardError::Conflict { current: 1 }));
        assert_eq!(ns.compare_and_swap("k", 1, b"y", &writer()), Ok(2));
    }

    #[test]
    fn tenants_never_see_each_others_keys() {
        let board = Blackboard::default();
        board.namespace("a").put("secret", b"1", &writer()).unwrap();
        let b = board.namespace("b");
        for key in ["secret", "../a/secret", "/secret", "a/secret", "a:secret"] {
            assert_eq!(b.get(key), Ok(None), "{key}");
        }
        assert!(b.list("", 10).unwrap().is_empty());
    }

    #[test]
    fn keys_with_control_characters_or_over_the_limit_are_invalid() {
        let ns = Blackboard::default().namespace("t");
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
    fn value_over_the_limit_is_too_large() {
        let ns = Blackboard::new(BoardLimits { value_bytes: 4, ..Default::default() }).namespace("t");
        assert_eq!(ns.put("k", b"12345", &writer()), Err(BoardError::TooLarge { size: 5, limit: 4 }));
        assert_eq!(ns.revision(), 0);
    }

    #[test]
    fn key_count_quota_names_tenant_and_limit() {
        let ns = Blackboard::new(BoardLimits { max_keys: 1, ..Default::default() }).namespace("acme");
        ns.put("a", b"", &writer()).unwrap();
        ns.put("a", b"again", &writer()).unwrap();
        assert_eq!(
            ns.put("b", b"", &writer()),
            Err(BoardError::QuotaExceeded("tenant \"acme\" holds 1 keys, the limit (blackboard.max-keys)".into()))
        );
    }

    #[test]
    fn list_returns_prefix_matches_in_byte_order() {
        let ns = Blackboard::default().namespace("t");
        for k in ["task/2", "task/1", "tasks", "other"] {
            ns.put(k, b"", &writer()).unwrap();
        }
        let keys: Vec<_> = ns.list("task/", 10).unwrap().iter().map(|k| k.to_string()).collect();
        assert_eq!(keys, ["task/1", "task/2"]);
    }

    #[test]
    fn delete_reports_whether_the_key_existed_and_is_watched() {
        let ns = Blackboard::default().namespace("t");
        ns.put("k", b"v", &writer()).unwrap();
        assert_eq!(ns.delete("k", &writer()), Ok(true));
        assert_eq!(ns.delete("k", &writer()), Ok(false));
        let changes = ns.changes_after("", 1).unwrap();
        assert_eq!((changes.len(), changes[0].value.is_none(), changes[0].revision), (1, true, 2));
    }

    #[tokio::test]
    async fn watch_wakes_on_a_later_write_under_its_prefix_only() {
        let ns = Blackboard::default().namespace("t");
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
        let ns = Blackboard::default().namespace("t");
        assert_eq!(ns.watch("", 0, Duration::from_millis(20)).await, Ok(vec![]));
    }

    #[test]
    fn a_watcher_behind_the_kept_history_is_told_it_lagged() {
        let ns = Blackboard::new(BoardLimits { history: 2, ..Default::default() }).namespace("t");
        for i in 0..5 {
            ns.put(&format!("k{i}"), b"", &writer()).unwrap();
        }
        assert_eq!(ns.changes_after("", 1), Err(BoardError::Lagged { after: 1, resume_after: 5 }));
        assert_eq!(ns.changes_after("", 3).unwrap().len(), 2);
    }

    #[test]
    fn tenant_names_are_restricted() {
        assert!(validate_tenant("acme-1").is_ok());
        assert!(validate_tenant("../x").is_err());
        assert!(validate_tenant("").is_err());
    }
}
