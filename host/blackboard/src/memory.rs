//! The in-memory backend: per tenant, a B-tree of entries, an ordered set of
//! expiry times, and a ring of recent changes.

use super::expiry::SWEEP_BATCH;
use super::store::Answer;
use super::{
    Backend, BoardError, BoardLimits, Change, Entry, TenantStore, Totals, Write, Writer, from_unix_millis, plan_shared,
    plan_write, unix_millis,
};
use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::Arc;
use tokio::sync::watch;

/// Boards kept in memory: fast, gone when the process ends.
#[derive(Default)]
pub struct MemoryBackend {
    tenants: Mutex<HashMap<String, Arc<MemoryTenant>>>,
    /// What every tenant holds together (see [`BoardLimits::shared`]).
    all: Arc<Mutex<Totals>>,
}

impl Backend for MemoryBackend {
    fn open(&self, tenant: &str, limits: BoardLimits) -> Arc<dyn TenantStore> {
        self.tenants
            .lock()
            .entry(tenant.to_string())
            .or_insert_with(|| {
                Arc::new(MemoryTenant {
                    tenant: tenant.to_string(),
                    limits,
                    all: self.all.clone(),
                    state: RwLock::default(),
                    latest: watch::Sender::new(0),
                })
            })
            .clone()
    }

    fn expiring(&self, now_ms: u64) -> Result<Vec<String>, BoardError> {
        let tenants: Vec<Arc<MemoryTenant>> = self.tenants.lock().values().cloned().collect();
        Ok(tenants.into_iter().filter(|t| t.state.read().has_expired(now_ms)).map(|t| t.tenant.clone()).collect())
    }
}

struct MemoryTenant {
    tenant: String,
    limits: BoardLimits,
    /// What every tenant holds together; locked after a tenant's state.
    all: Arc<Mutex<Totals>>,
    state: RwLock<State>,
    latest: watch::Sender<u64>,
}

/// A tenant as its writes see it: its name, its limits and what every
/// tenant holds together.
#[derive(Clone, Copy)]
struct Tenant<'a> {
    name: &'a str,
    limits: &'a BoardLimits,
    all: &'a Mutex<Totals>,
}

#[derive(Default)]
struct State {
    entries: BTreeMap<Arc<str>, Entry>,
    /// (expires-at millis, key) of every entry with a ttl.
    expiry: BTreeSet<(u64, Arc<str>)>,
    revision: u64,
    totals: Totals,
    history: VecDeque<Change>,
    /// [`Change::bytes`] of the history.
    history_bytes: u64,
}

impl State {
    fn has_expired(&self, now_ms: u64) -> bool {
        self.expiry.first().is_some_and(|(at, _)| *at <= now_ms)
    }

    /// Plans and applies one write; the state is untouched when it is refused.
    fn apply(&mut self, tenant: &Tenant<'_>, write: &Write<'_>) -> Result<u64, BoardError> {
        let Tenant { name: tenant, limits, all } = *tenant;
        let current = self.entries.get_key_value(write.key).map(|(k, e)| (k.clone(), e.revision, e.value.len()));
        let was = current.as_ref().map(|c| (c.1, c.2));
        let totals = plan_write(tenant, limits, was, self.totals, write)?;
        {
            // Held only for this: every tenant's writes take it.
            let mut all = all.lock();
            *all = match limits.shared {
                true => plan_shared(tenant, limits, was, *all, write)?,
                false => totals.moved(self.totals, *all),
            };
        }
        self.totals = totals;
        self.revision += 1;
        let revision = self.revision;
        // Reuse the stored key so the map, the index and the history share one allocation.
        let key: Arc<str> = current.map_or_else(|| Arc::from(write.key), |c| c.0);
        let old = match write.value {
            Some(v) => {
                let entry = Entry {
                    value: Arc::from(v),
                    revision,
                    writer: write.writer.clone(),
                    written_at: from_unix_millis(write.at_ms),
                    expires_at: write.expires_ms.map(from_unix_millis),
                };
                if let Some(at) = write.expires_ms {
                    self.expiry.insert((at, key.clone()));
                }
                let value = entry.value.clone();
                (self.entries.insert(key.clone(), entry), Some(value))
            }
            None => (self.entries.remove(&key), None),
        };
        if let Some(at) = old.0.and_then(|e| e.expires_at) {
            let at = unix_millis(at);
            if write.expires_ms != Some(at) {
                self.expiry.remove(&(at, key.clone()));
            }
        }
        if limits.history > 0 {
            let change = Change { key, value: old.1, revision, writer: write.writer.clone() };
            self.history_bytes += change.bytes();
            self.history.push_back(change);
            while self.history.len() > limits.history
                || (self.history_bytes > limits.history_bytes && self.history.len() > 1)
            {
                let dropped = self.history.pop_front().map_or(0, |c| c.bytes());
                self.history_bytes -= dropped;
            }
        }
        Ok(revision)
    }

    /// Removes `key` if it has expired at `now_ms`; whether it did.
    fn remove_if_expired(&mut self, tenant: &Tenant<'_>, key: &str, now_ms: u64) -> bool {
        if !self.entries.get(key).is_some_and(|e| e.is_expired(now_ms)) {
            return false;
        }
        let writer = Writer::expiry();
        self.apply(tenant, &Write::expiry(key, &writer, now_ms)).is_ok()
    }

    /// Removes up to `limit` entries expired at `now_ms`, soonest first.
    fn sweep(&mut self, tenant: &Tenant<'_>, now_ms: u64, limit: usize) -> usize {
        let mut removed = 0;
        while removed < limit {
            let Some((at, key)) = self.expiry.first().cloned() else { break };
            if at > now_ms {
                break;
            }
            if self.remove_if_expired(tenant, &key, now_ms) {
                removed += 1;
            } else {
                // An index row without its entry; never expected, but it must not stop the sweep.
                self.expiry.remove(&(at, key));
            }
        }
        removed
    }
}

impl MemoryTenant {
    fn view(&self) -> Tenant<'_> {
        Tenant { name: &self.tenant, limits: &self.limits, all: &self.all }
    }

    /// Runs `f` under the write lock and tells watchers if the revision moved.
    fn mutate<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut state = self.state.write();
        let before = state.revision;
        let answer = f(&mut state);
        let after = state.revision;
        drop(state);
        if after != before {
            self.latest.send_replace(after);
        }
        answer
    }
}

impl TenantStore for MemoryTenant {
    fn get(&self, key: &str) -> Result<Option<Entry>, BoardError> {
        Ok(self.state.read().entries.get(key).cloned())
    }

    fn write(&self, write: &Write<'_>) -> Result<u64, BoardError> {
        let tenant = &self.view();
        self.mutate(|state| {
            // Checking the index first keeps writes on boards without expired entries at one lookup.
            if state.has_expired(write.at_ms) {
                state.remove_if_expired(tenant, write.key, write.at_ms);
            }
            match state.apply(tenant, write) {
                Err(BoardError::QuotaExceeded(_)) if state.has_expired(write.at_ms) => {
                    state.sweep(tenant, write.at_ms, SWEEP_BATCH);
                    state.apply(tenant, write)
                }
                answer => answer,
            }
        })
    }

    fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        now_ms: u64,
    ) -> Result<Vec<Arc<str>>, BoardError> {
        let state = self.state.read();
        let start = match start_after {
            Some(after) if after >= prefix => Bound::Excluded(after),
            _ => Bound::Included(prefix),
        };
        Ok(state
            .entries
            .range::<str, _>((start, Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter(|(_, e)| !e.is_expired(now_ms))
            .take(limit)
            .map(|(k, _)| k.clone())
            .collect())
    }

    fn changes_after(&self, prefix: &str, after: u64, limit: usize, max_bytes: u64) -> Result<Vec<Change>, BoardError> {
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
        let mut answer = Answer::new(limit, max_bytes);
        for change in state.history.range(start..).filter(|c| c.key.starts_with(prefix)) {
            if !answer.push(change.clone()) {
                break;
            }
        }
        Ok(answer.changes)
    }

    fn revision(&self) -> Result<u64, BoardError> {
        Ok(self.state.read().revision)
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.latest.subscribe()
    }

    fn reap(&self, key: &str, revision: u64, now_ms: u64) -> Result<bool, BoardError> {
        let tenant = &self.view();
        Ok(self.mutate(|state| {
            state.entries.get(key).is_some_and(|e| e.revision == revision)
                && state.remove_if_expired(tenant, key, now_ms)
        }))
    }

    fn sweep(&self, now_ms: u64, limit: usize) -> Result<usize, BoardError> {
        let tenant = &self.view();
        Ok(self.mutate(|state| state.sweep(tenant, now_ms, limit)))
    }
}
