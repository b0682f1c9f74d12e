//! The flow store that lives as long as the process (tests, benchmarks,
//! `host.flows = "memory"`). It counts and bounds what it keeps as the
//! SQLite store does, each record's size being its JSON's.

use super::approvals::{apply_answer, taken};
use super::lease;
use super::store::{
    ALL, AnswerError, ApprovalRecord, Cutoffs, DeadLetter, Finished, FlowBounds, FlowStore, Page, Pruned, RunQuery,
    RunRecord, RunStatus, RunSummary, StepRecord,
};
use paddock_journal::Entry;
use parking_lot::Mutex;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// A flow store in memory.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Memory>,
    bounds: FlowBounds,
}

impl MemoryStore {
    /// An empty store keeping at most `bounds`.
    pub fn with_bounds(bounds: FlowBounds) -> Self {
        MemoryStore { inner: Mutex::default(), bounds }
    }
}

/// A record and the bytes it takes.
struct Kept<T> {
    value: T,
    size: u64,
}

impl<T: Serialize> Kept<T> {
    fn new(value: T) -> Self {
        let size = size_of_json(&value);
        Kept { value, size }
    }
}

/// The bytes of `value` as JSON: what the SQLite store keeps. Counted as
/// they are written, not kept.
fn size_of_json<T: Serialize>(value: &T) -> u64 {
    let mut count = Count(0);
    serde_json::to_writer(&mut count, value).map_or(0, |()| count.0)
}

/// A writer that counts the bytes written to it.
struct Count(u64);

impl std::io::Write for Count {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A run, its size, and the bytes of it and its steps and journals.
struct RunEntry {
    run: Kept<RunRecord>,
    bytes: u64,
}

/// A step's journal and the attempt it is from.
type Journal = (u32, Vec<Entry>);

/// What a record written by [`Memory::put_steps`] replaced.
enum Replaced {
    Step(Option<Box<Kept<StepRecord>>>),
    Journal(Option<Kept<Journal>>),
}

/// A run's bytes and its tenant's and every tenant's, before a write.
type Counts = (Option<u64>, [Option<u64>; 2]);

#[derive(Default)]
struct Memory {
    runs: HashMap<String, RunEntry>,
    steps: HashMap<String, HashMap<String, Kept<StepRecord>>>,
    journals: HashMap<(String, String), Kept<Journal>>,
    dead: BTreeMap<String, Kept<DeadLetter>>,
    approvals: BTreeMap<String, Kept<ApprovalRecord>>,
    cancels: HashMap<String, String>,
    tenants: HashMap<String, u64>,
}

impl Memory {
    /// Moves the bytes of `run` (when it is kept) and its tenant from `old`
    /// to `new`, checking the bounds first when it grows and `bounds` is given.
    fn charge(
        &mut self,
        bounds: Option<&FlowBounds>,
        what: &(impl std::fmt::Display + ?Sized),
        run: Option<&str>,
        tenant: &str,
        (old, new): (u64, u64),
    ) -> Result<(), String> {
        let entry = run.and_then(|r| self.runs.get(r).map(|e| (r, e.bytes)));
        if let Some(bounds) = bounds
            && new > old
        {
            let now = self.tenants.get(bounds.counted(tenant)).copied().unwrap_or(0);
            bounds.check(what, entry, (tenant, now), new - old)?;
        }
        if let Some(e) = run.and_then(|r| self.runs.get_mut(r)) {
            e.bytes = (e.bytes + new).saturating_sub(old);
        }
        for counted in [tenant, ALL] {
            let bytes = self.tenants.entry(counted.to_string()).or_default();
            *bytes = (*bytes + new).saturating_sub(old);
        }
        Ok(())
    }

    /// Refuses a write by `holder` to `run` when another holds it.
    fn fence(&self, run: &str, holder: &str) -> Result<(), String> {
        match self.runs.get(run) {
            Some(e) if e.run.value.owner != holder => Err(lease::lost(run, holder, &e.run.value.owner)),
            _ => Ok(()),
        }
    }

    fn tenant_of(&self, run: &str) -> String {
        self.runs.get(run).map(|e| e.run.value.tenant.clone()).unwrap_or_default()
    }

    fn put_run(&mut self, bounds: &FlowBounds, run: &RunRecord) -> Result<(), String> {
        let kept = Kept::new(run.clone());
        let old = self.runs.get(&run.id).map(|e| e.run.size);
        if old.is_none() {
            let placeholder = Kept { value: run.clone(), size: 0 };
            self.runs.insert(run.id.clone(), RunEntry { run: placeholder, bytes: 0 });
        }
        let bounds = run.output.is_some().then_some(bounds);
        let charged =
            self.charge(bounds, "the run's output", Some(&run.id), &run.tenant, (old.unwrap_or(0), kept.size));
        match (charged, old) {
            (Err(e), None) => {
                self.runs.remove(&run.id);
                Err(e)
            }
            (Err(e), Some(_)) => Err(e),
            (Ok(()), _) => {
                if let Some(e) = self.runs.get_mut(&run.id) {
                    e.run = kept;
                }
                Ok(())
            }
        }
    }

    /// Keeps `step`; the checkpoint it replaced.
    fn put_step(
        &mut self,
        bounds: &FlowBounds,
        run: &str,
        step: &StepRecord,
    ) -> Result<Option<Kept<StepRecord>>, String> {
        let kept = Kept::new(step.clone());
        let old = self.steps.get(run).and_then(|s| s.get(&step.path)).map_or(0, |k| k.size);
        let what = format_args!("the checkpoint of step {}", step.path);
        self.charge(Some(bounds), &what, Some(run), &self.tenant_of(run), (old, kept.size))?;
        Ok(self.steps.entry(run.to_string()).or_default().insert(step.path.clone(), kept))
    }

    fn put_journal(
        &mut self,
        bounds: &FlowBounds,
        run: &str,
        step: &str,
        attempt: u32,
        entries: &[Entry],
    ) -> Result<Option<Kept<Journal>>, String> {
        let kept = Kept::new((attempt, entries.to_vec()));
        let key = (run.to_string(), step.to_string());
        let old = self.journals.get(&key).map_or(0, |k| k.size);
        let what = format_args!("the journal of step {step}");
        self.charge(Some(bounds), &what, Some(run), &self.tenant_of(run), (old, kept.size))?;
        Ok(self.journals.insert(key, kept))
    }

    /// Keeps finished attempts and then `next`, or none of them: a refused
    /// record puts back what those before it replaced, and the counts.
    fn put_steps(
        &mut self,
        bounds: &FlowBounds,
        run: &str,
        done: &[Finished],
        next: &[StepRecord],
    ) -> Result<(), String> {
        let tenant = self.tenant_of(run);
        let counts = (self.runs.get(run).map(|e| e.bytes), [&tenant, ALL].map(|t| self.tenants.get(t).copied()));
        let mut replaced = Vec::new();
        let mut written = Ok(());
        for (step, journal) in done {
            written = self.put_journal(bounds, run, &step.path, step.attempt, journal).map(|old| {
                replaced.push((step.path.as_str(), Replaced::Journal(old)));
            });
            written = written.and_then(|()| self.put_step(bounds, run, step)).map(|old| {
                replaced.push((step.path.as_str(), Replaced::Step(old.map(Box::new))));
            });
            if written.is_err() {
                break;
            }
        }
        for step in next {
            if written.is_err() {
                break;
            }
            written = self
                .put_step(bounds, run, step)
                .map(|old| replaced.push((step.path.as_str(), Replaced::Step(old.map(Box::new)))));
        }
        if written.is_err() {
            self.put_back(run, replaced, counts, &tenant);
        }
        written
    }

    /// Undoes a refused [`put_steps`](Self::put_steps).
    fn put_back(&mut self, run: &str, replaced: Vec<(&str, Replaced)>, counts: Counts, tenant: &str) {
        for (path, old) in replaced.into_iter().rev() {
            match old {
                Replaced::Step(Some(k)) => {
                    drop(self.steps.entry(run.to_string()).or_default().insert(path.to_string(), *k))
                }
                Replaced::Step(None) => drop(self.steps.get_mut(run).map(|s| s.remove(path))),
                Replaced::Journal(Some(k)) => drop(self.journals.insert((run.to_string(), path.to_string()), k)),
                Replaced::Journal(None) => drop(self.journals.remove(&(run.to_string(), path.to_string()))),
            }
        }
        let (bytes, tenants) = counts;
        if let (Some(entry), Some(bytes)) = (self.runs.get_mut(run), bytes) {
            entry.bytes = bytes;
        }
        for (t, n) in [tenant, ALL].into_iter().zip(tenants) {
            match n {
                Some(n) => drop(self.tenants.insert(t.to_string(), n)),
                None => drop(self.tenants.remove(t)),
            }
        }
    }

    /// Forgets run `id` with its steps and journals; the bytes it kept.
    fn forget_run(&mut self, id: &str) -> u64 {
        let Some(entry) = self.runs.remove(id) else { return 0 };
        self.steps.remove(id);
        self.journals.retain(|(run, _), _| run != id);
        self.cancels.remove(id);
        for counted in [entry.run.value.tenant.as_str(), ALL] {
            let bytes = self.tenants.entry(counted.to_string()).or_default();
            *bytes = bytes.saturating_sub(entry.bytes);
        }
        entry.bytes
    }
}

fn summary(e: &RunEntry) -> RunSummary {
    let r = &e.run.value;
    RunSummary {
        id: r.id.clone(),
        flow: r.flow.clone(),
        tenant: r.tenant.clone(),
        status: r.status,
        error: r.error.clone(),
        created_ms: r.created_ms,
        updated_ms: r.updated_ms,
        bytes: e.bytes,
        owner: r.owner.clone(),
        heartbeat_ms: r.heartbeat_ms,
    }
}

/// The records of `page` from `all` (in their order, keyed by id): those
/// after the cursor, of the tenant, that `keep` keeps. A cursor names a
/// record of the page's own tenant only (another's gives an empty page).
fn paged<'a, T: Clone + 'a>(
    all: impl Iterator<Item = (&'a String, &'a T)>,
    page: &Page,
    tenant: impl Fn(&T) -> &str,
    keep: impl Fn(&T) -> bool,
) -> Vec<T> {
    let mut past_cursor = page.after.is_none();
    let mut out = Vec::new();
    for (id, value) in all {
        if !past_cursor {
            past_cursor =
                page.after.as_deref() == Some(id.as_str()) && page.tenant.as_deref().is_none_or(|t| t == tenant(value));
            continue;
        }
        if out.len() == page.limit {
            break;
        }
        if page.tenant.as_deref().is_none_or(|t| t == tenant(value)) && keep(value) {
            out.push(value.clone());
        }
    }
    out
}

impl FlowStore for MemoryStore {
    fn bounds(&self) -> FlowBounds {
        self.bounds
    }

    fn put_run(&self, run: &RunRecord) -> Result<(), String> {
        let mut inner = self.inner.lock();
        inner.fence(&run.id, &run.owner)?;
        inner.put_run(&self.bounds, run)
    }

    fn add_run(&self, run: &RunRecord) -> Result<bool, String> {
        let mut inner = self.inner.lock();
        if inner.runs.contains_key(&run.id) {
            return Ok(false);
        }
        let kept = Kept::new(run.clone());
        let what = format!("run {}", run.id);
        inner.charge(Some(&self.bounds), &what, None, &run.tenant, (0, kept.size))?;
        let bytes = kept.size;
        inner.runs.insert(run.id.clone(), RunEntry { run: kept, bytes });
        Ok(true)
    }

    fn run(&self, id: &str) -> Result<Option<RunRecord>, String> {
        Ok(self.inner.lock().runs.get(id).map(|e| e.run.value.clone()))
    }

    fn request_cancel(&self, run: &str, by: &str) -> Result<(), String> {
        self.inner.lock().cancels.insert(run.to_string(), by.to_string());
        Ok(())
    }

    fn cancel_request(&self, run: &str) -> Result<Option<String>, String> {
        Ok(self.inner.lock().cancels.get(run).cloned())
    }

    fn claim(&self, run: &RunRecord, owner: &str, heartbeat_ms: u64) -> Result<bool, String> {
        let mut inner = self.inner.lock();
        match inner.runs.get(&run.id) {
            Some(e) if e.run.value.owner == owner && e.run.value.heartbeat_ms == heartbeat_ms => {}
            _ => return Ok(false),
        }
        inner.put_run(&self.bounds, run).map(|()| true)
    }

    fn renew(&self, run: &str, holder: &str, heartbeat_ms: u64) -> Result<bool, String> {
        let mut inner = self.inner.lock();
        match inner.runs.get_mut(run) {
            Some(e) if e.run.value.owner == holder && e.run.value.status == RunStatus::Running => {
                e.run.value.heartbeat_ms = heartbeat_ms;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn runs(&self, q: &RunQuery) -> Result<Vec<RunSummary>, String> {
        let inner = self.inner.lock();
        let mut all: Vec<&RunEntry> = inner.runs.values().collect();
        all.sort_by(|a, b| (b.run.value.created_ms, &b.run.value.id).cmp(&(a.run.value.created_ms, &a.run.value.id)));
        let page = Page { tenant: q.tenant.clone(), after: q.after.clone(), limit: q.limit };
        let keep = |e: &&RunEntry| {
            q.flow.as_deref().is_none_or(|f| f == e.run.value.flow) && q.status.is_none_or(|s| s == e.run.value.status)
        };
        let rows = paged(all.iter().map(|e| (&e.run.value.id, e)), &page, |e| &e.run.value.tenant, keep);
        Ok(rows.into_iter().map(summary).collect())
    }

    fn running(&self) -> Result<Vec<RunRecord>, String> {
        let inner = self.inner.lock();
        let mut runs: Vec<RunRecord> = inner
            .runs
            .values()
            .filter(|e| e.run.value.status == RunStatus::Running)
            .map(|e| e.run.value.clone())
            .collect();
        runs.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        Ok(runs)
    }

    fn put_step(&self, run: &str, holder: &str, step: &StepRecord) -> Result<(), String> {
        let mut inner = self.inner.lock();
        inner.fence(run, holder)?;
        inner.put_step(&self.bounds, run, step).map(drop)
    }

    fn steps(&self, run: &str) -> Result<Vec<StepRecord>, String> {
        let inner = self.inner.lock();
        let mut steps: Vec<StepRecord> =
            inner.steps.get(run).map(|s| s.values().map(|k| k.value.clone()).collect()).unwrap_or_default();
        steps.sort_by_key(|s| s.seq);
        Ok(steps)
    }

    fn put_journal(&self, run: &str, holder: &str, step: &str, attempt: u32, entries: &[Entry]) -> Result<(), String> {
        let mut inner = self.inner.lock();
        inner.fence(run, holder)?;
        inner.put_journal(&self.bounds, run, step, attempt, entries).map(drop)
    }

    fn finish_step(&self, run: &str, holder: &str, step: &StepRecord, journal: &[Entry]) -> Result<(), String> {
        let mut inner = self.inner.lock();
        inner.fence(run, holder)?;
        inner.put_journal(&self.bounds, run, &step.path, step.attempt, journal)?;
        inner.put_step(&self.bounds, run, step).map(drop)
    }

    fn put_steps(&self, run: &str, holder: &str, done: &[Finished], next: &[StepRecord]) -> Result<(), String> {
        let mut inner = self.inner.lock();
        inner.fence(run, holder)?;
        inner.put_steps(&self.bounds, run, done, next)
    }

    fn journal(&self, run: &str, step: &str) -> Result<Option<(u32, Vec<Entry>)>, String> {
        Ok(self.inner.lock().journals.get(&(run.to_string(), step.to_string())).map(|k| k.value.clone()))
    }

    fn put_dead(&self, dead: &DeadLetter) -> Result<(), String> {
        let mut inner = self.inner.lock();
        let kept = Kept::new(dead.clone());
        let old = inner.dead.get(&dead.id).map_or(0, |k| k.size);
        let what = format!("dead letter {}", dead.id);
        inner.charge(Some(&self.bounds), &what, None, &dead.tenant, (old, kept.size))?;
        inner.dead.insert(dead.id.clone(), kept);
        Ok(())
    }

    fn dead_letters(&self, page: &Page) -> Result<Vec<DeadLetter>, String> {
        let inner = self.inner.lock();
        let mut all: Vec<&DeadLetter> = inner.dead.values().map(|k| &k.value).collect();
        all.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        let rows = paged(all.iter().map(|d| (&d.id, d)), page, |d| &d.tenant, |_| true);
        Ok(rows.into_iter().cloned().collect())
    }

    fn dead(&self, id: &str) -> Result<Option<DeadLetter>, String> {
        Ok(self.inner.lock().dead.get(id).map(|k| k.value.clone()))
    }

    fn drop_dead(&self, id: &str) -> Result<bool, String> {
        let mut inner = self.inner.lock();
        let Some(kept) = inner.dead.remove(id) else { return Ok(false) };
        inner.charge(None, "", None, &kept.value.tenant, (kept.size, 0))?;
        Ok(true)
    }

    fn add_approval(&self, approval: &ApprovalRecord) -> Result<(), String> {
        let mut inner = self.inner.lock();
        if inner.approvals.contains_key(&approval.id) {
            return Err(taken(&approval.id));
        }
        let kept = Kept::new(approval.clone());
        let what = format!("approval {}", approval.id);
        inner.charge(Some(&self.bounds), &what, None, &approval.tenant, (0, kept.size))?;
        inner.approvals.insert(approval.id.clone(), kept);
        Ok(())
    }

    fn approval(&self, id: &str) -> Result<Option<ApprovalRecord>, String> {
        Ok(self.inner.lock().approvals.get(id).map(|k| k.value.clone()))
    }

    fn approvals(&self, page: &Page, waiting_at: Option<u64>) -> Result<Vec<ApprovalRecord>, String> {
        let inner = self.inner.lock();
        let mut all: Vec<&ApprovalRecord> = inner.approvals.values().map(|k| &k.value).collect();
        all.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        let keep = |a: &&ApprovalRecord| waiting_at.is_none_or(|now| a.waiting(now));
        let rows = paged(all.iter().map(|a| (&a.id, a)), page, |a| &a.tenant, keep);
        Ok(rows.into_iter().cloned().collect())
    }

    fn answer(&self, id: &str, option: &str, by: &str, now_ms: u64) -> Result<ApprovalRecord, AnswerError> {
        let mut inner = self.inner.lock();
        let kept = inner.approvals.get_mut(id).ok_or_else(|| AnswerError::NoApproval(id.to_string()))?;
        apply_answer(&mut kept.value, option, by, now_ms)?;
        let (answered, old) = (kept.value.clone(), kept.size);
        kept.size = size_of_json(&answered);
        let new = kept.size;
        inner.charge(None, "", None, &answered.tenant, (old, new)).map_err(AnswerError::Store)?;
        Ok(answered)
    }

    fn tenant_bytes(&self, tenant: &str) -> Result<u64, String> {
        Ok(self.inner.lock().tenants.get(tenant).copied().unwrap_or(0))
    }

    fn prune(&self, cut: &Cutoffs) -> Result<Pruned, String> {
        let mut inner = self.inner.lock();
        let mut pruned = Pruned::default();
        let mut finished: Vec<(&str, u64, &str)> = inner
            .runs
            .values()
            .map(|e| &e.run.value)
            .filter(|r| r.status != RunStatus::Running)
            .map(|r| (r.tenant.as_str(), r.created_ms, r.id.as_str()))
            .collect();
        // Newest first within each tenant: past the count, the rest go.
        finished.sort_by(|a, b| a.0.cmp(b.0).then((b.1, b.2).cmp(&(a.1, a.2))));
        let mut gone = Vec::new();
        let mut seen: HashMap<&str, u64> = HashMap::new();
        for (tenant, _, id) in finished {
            let n = seen.entry(tenant).or_default();
            *n += 1;
            let old = inner.runs[id].run.value.updated_ms < cut.runs_before_ms;
            if old || *n > cut.runs_per_tenant {
                gone.push(id.to_string());
            }
        }
        for id in gone {
            pruned.bytes += inner.forget_run(&id);
            pruned.runs += 1;
        }
        let settled = |a: &ApprovalRecord| a.answered_ms.unwrap_or(a.deadline_ms) < cut.approvals_before_ms;
        let questions: Vec<String> =
            inner.approvals.values().filter(|k| settled(&k.value)).map(|k| k.value.id.clone()).collect();
        for id in questions {
            if let Some(k) = inner.approvals.remove(&id) {
                inner.charge(None, "", None, &k.value.tenant, (k.size, 0))?;
                (pruned.approvals, pruned.bytes) = (pruned.approvals + 1, pruned.bytes + k.size);
            }
        }
        let letters: Vec<String> = inner
            .dead
            .values()
            .filter(|k| k.value.created_ms < cut.dead_before_ms)
            .map(|k| k.value.id.clone())
            .collect();
        for id in letters {
            if let Some(k) = inner.dead.remove(&id) {
                inner.charge(None, "", None, &k.value.tenant, (k.size, 0))?;
                (pruned.dead_letters, pruned.bytes) = (pruned.dead_letters + 1, pruned.bytes + k.size);
            }
        }
        Ok(pruned)
    }
}
