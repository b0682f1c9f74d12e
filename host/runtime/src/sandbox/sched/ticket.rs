//! What an invocation does with its place in the scheduler: tick, settle
//! its fuel, wait, and leave.

use super::{CpuTicket, SHARE_PERIOD, SlotWait, Step, Verdict};
use std::task::Waker;
use std::time::Instant;
use wasmtime::UpdateDeadline;

impl CpuTicket {
    /// What the epoch callback returns at a tick reached at `now` by a guest
    /// that has burned `fuel_consumed` since it started: go on, or wait (for
    /// a slot, or until its tenant's fuel debt is repaid).
    pub fn tick(&mut self, now: Instant, fuel_consumed: u64) -> UpdateDeadline {
        let unlimited = self.sched.slots == 0;
        match self.tick_at(now, fuel_consumed) {
            // With slots, the guests that compute are few and yield to tokio
            // every `FUEL_YIELD_INTERVAL` anyway; without, behave as before.
            Verdict::Run if unlimited => UpdateDeadline::Yield(1),
            Verdict::Run => UpdateDeadline::Continue(1),
            Verdict::Wait(wait) => UpdateDeadline::YieldCustom(1, Box::pin(wait)),
        }
    }

    /// Charges what the invocation burned after its last tick — all of it,
    /// for one shorter than a tick — once it has ended.
    pub fn settle(&mut self, fuel_consumed: u64) {
        let burned = fuel_consumed.saturating_sub(self.charged);
        self.charged = self.charged.max(fuel_consumed);
        if let Some(share) = self.share.filter(|_| burned > 0) {
            self.sched.state.lock().charge(&self.tenant, share, burned, Instant::now());
        }
    }

    /// When its tenant is more than a minute's fuel share in debt: the
    /// instant it is back within it. Checked before an invocation starts, so
    /// a tenant whose invocations are each shorter than a tick is held to its
    /// share too.
    pub fn throttled_until(&self, now: Instant) -> Option<Instant> {
        self.share?;
        let state = self.sched.state.lock();
        let debt = state.tenants.get(&self.tenant)?.debt(now);
        (debt > SHARE_PERIOD).then(|| now + (debt - SHARE_PERIOD))
    }

    /// Its tenant's fuel per minute, if metered.
    pub fn share(&self) -> Option<u64> {
        self.share
    }

    pub(super) fn tick_at(&mut self, now: Instant, fuel_consumed: u64) -> Verdict {
        let burned = fuel_consumed.saturating_sub(self.charged);
        self.charged = self.charged.max(fuel_consumed);
        let mut wake = Vec::new();
        let verdict = self.sched.state.lock().tick(self, now, burned, &mut wake);
        wake.into_iter().for_each(Waker::wake);
        match verdict {
            Step::Run => Verdict::Run,
            Step::Queued => Verdict::Wait(self.wait(None)),
            Step::Throttled(until) => Verdict::Wait(self.wait(Some(until))),
        }
    }

    fn wait(&self, throttled_until: Option<Instant>) -> SlotWait {
        SlotWait {
            sched: self.sched.clone(),
            id: self.id,
            tenant: self.tenant.clone(),
            throttled_until,
            recheck: None,
            timer: None,
        }
    }
}

impl Drop for CpuTicket {
    fn drop(&mut self) {
        let mut wake = Vec::new();
        self.sched.state.lock().leave(self.id, &self.tenant, Instant::now(), &mut wake);
        wake.into_iter().for_each(Waker::wake);
    }
}
