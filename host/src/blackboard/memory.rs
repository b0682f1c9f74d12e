//! The in-memory backend: a B-tree and a ring of recent changes per tenant.

use super::{Backend, BoardError, BoardLimits, Change, Entry, TenantStore, Totals, Write, plan_write};
use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::sync::watch;

/// Boards kept in memory: fast, gone when the process ends.
#[derive(Default)]
pub struct MemoryBackend {
    tenants: Mutex<HashMap<String, Arc<MemoryTenant>>>,
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
                    state: RwLock::default(),
                    latest: watch::Sender::new(0),
                })
            })
            .clone()
    }
}

struct MemoryTenant {
    tenant: String,
    limits: BoardLimits,
    state: RwLock<State>,
    latest: watch::Sender<u64>,
}

#[derive(Default)]
struct State {
    entries: BTreeMap<Arc<str>, Entry>,
    revision: u64,
    totals: Totals,
    history: VecDeque<Change>,
}

impl TenantStore for MemoryTenant {
    fn get(&self, key: &str) -> Result<Option<Entry>, BoardError> {
        Ok(self.state.read().entries.get(key).cloned())
    }

    fn write(&self, write: &Write<'_>) -> Result<u64, BoardError> {
        let mut state = self.state.write();
        let current = state.entries.get_key_value(write.key).map(|(k, e)| (k.clone(), e.revision, e.value.len()));
        let after = plan_write(&self.tenant, &self.limits, current.as_ref().map(|c| (c.1, c.2)), state.totals, write)?;
        state.revision += 1;
        state.totals = after;
        let revision = state.revision;
        // Reuse the stored key so the map and the history share one allocation.
        let key: Arc<str> = current.map_or_else(|| Arc::from(write.key), |c| c.0);
        let value: Option<Arc<[u8]>> = write.value.map(Arc::from);
        match &value {
            Some(v) => {
                let entry =
                    Entry { value: v.clone(), revision, writer: write.writer.clone(), written_at: SystemTime::now() };
                state.entries.insert(key.clone(), entry);
            }
            None => {
                state.entries.remove(&key);
            }
        }
        if self.limits.history > 0 {
            if state.history.len() >= self.limits.history {
                state.history.pop_front();
            }
            state.history.push_back(Change { key, value, revision, writer: write.writer.clone() });
        }
        drop(state);
        self.latest.send_replace(revision);
        Ok(revision)
    }

    fn list(&self, prefix: &str, start_after: Option<&str>, limit: usize) -> Result<Vec<Arc<str>>, BoardError> {
        let state = self.state.read();
        let start = match start_after {
            Some(after) if after >= prefix => Bound::Excluded(after),
            _ => Bound::Included(prefix),
        };
        Ok(state
            .entries
            .range::<str, _>((start, Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(limit)
            .map(|(k, _)| k.clone())
            .collect())
    }

    fn changes_after(&self, prefix: &str, after: u64, limit: usize) -> Result<Vec<Change>, BoardError> {
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
        Ok(state.history.range(start..).filter(|c| c.key.starts_with(prefix)).take(limit).cloned().collect())
    }

    fn revision(&self) -> Result<u64, BoardError> {
        Ok(self.state.read().revision)
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.latest.subscribe()
    }
}
