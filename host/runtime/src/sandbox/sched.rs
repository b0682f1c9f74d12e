//! Fair sharing of the CPU between tenants.
//!
//! Invocations are tokio tasks, and a busy guest is always runnable: left to
//! tokio, a tenant running 64 CPU-bound agents gets 64 shares of the workers
//! and another tenant's one agent queues behind them all. The scheduler lets
//! at most `slots` guests compute at once and shares those slots max-min
//! fairly between tenants.
//!
//! It works only at epoch ticks, the one hook wasmtime gives while wasm
//! computes. Component-model host calls fire no call hooks, so a guest cannot
//! say "I am now waiting for the LLM": instead a slot is *leased*, and each
//! tick the holder reaches renews the lease. Ticks fire only while wasm runs,
//! so a lease left unrenewed for [`LEASE_TICKS`] ticks belongs to a guest
//! blocked in a host call (or gone), and a waiter may take it. A guest starts
//! without a slot and asks at its first tick, so invocations shorter than a
//! tick never touch the scheduler. A guest that waits does so in its tick,
//! through `UpdateDeadline::YieldCustom`: its fiber is suspended and holds no
//! thread.
//!
//! Who gets a slot: the waiting tenant that holds the fewest slots, ties to
//! the one waiting longest; FIFO within a tenant. A tenant that arrives with
//! at least two slots fewer than the richest takes one of the richest's
//! slots at once, and the holder learns at its next tick that it lost its
//! lease and queues. Waiting for the holder's tick instead would add up to a
//! tick (10 ms, longer than many jobs) to the poorer tenant's latency; taking
//! costs one guest beyond `slots` computing for at most a tick. A smaller
//! imbalance (one slot) is settled at ticks: a holder whose tenant holds more
//! slots than a waiting tenant hands its slot over, so two tenants sharing an
//! odd number of slots take turns tick by tick. A holder also hands its slot
//! to a waiter of its own tenant after [`QUANTUM_TICKS`] ticks, so one
//! runaway agent cannot hold up the rest of its tenant's work. When a guest
//! ends, a tenant entitled to its slot keeps it briefly for its next guest
//! (see `State::leave`).
//!
//! Fuel shares: a tenant may be given a number of fuel per minute. Each tick
//! charges the fuel burned since the previous one to a GCRA account (one
//! "theoretical arrival time" per tenant); a tenant more than a minute's
//! share in debt is throttled: its guests wait in their tick, holding no
//! slot, until the debt is back within a minute's share. Only ticks charge:
//! the fuel an invocation burns after its last tick (all of it, for one
//! shorter than a tick) goes uncharged.

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use tokio::time::Sleep;

/// Ticks a lease survives without renewal. A computing holder renews at every
/// tick; two lets it be late by a whole tick (its worker busy with other
/// tasks) before its slot is thought idle.
const LEASE_TICKS: u32 = 2;

/// Ticks (in halves) a tenant keeps the slot of an ended invocation for its
/// next one. A job started right after the last one reaches its first tick
/// within a tick; the half is slack. Longer would leave the slot idle for
/// nothing when the tenant's jobs come far apart.
const KEEP_TICKS_X2: u32 = 3;

/// Ticks a holder keeps its slot while its own tenant has waiters: long
/// enough that most invocations run to the end in one go (FIFO serves a
/// tenant's short jobs sooner than taking turns would), short enough that a
/// runaway agent does not stall its tenant's other work for long.
const QUANTUM_TICKS: u32 = 10;

/// The window of a fuel share, and the debt a tenant may run up before it is
/// throttled.
const SHARE_PERIOD: Duration = Duration::from_secs(60);

/// The most debt a tenant can run up: past it, a tiny share would only push
/// its instant of repayment towards overflowing the clock.
const MAX_DEBT: Duration = Duration::from_secs(24 * 60 * 60);

/// Shares the CPU fairly between tenants (see the module docs).
pub struct CpuScheduler {
    slots: usize,
    lease: Duration,
    /// Fuel per minute by tenant; replaced by [`CpuScheduler::set_shares`],
    /// read once per invocation.
    shares: ArcSwap<HashMap<String, u64>>,
    next_ticket: AtomicU64,
    state: Mutex<State>,
}

impl CpuScheduler {
    /// A scheduler with `slots` slots (0: no limit on computing guests, only
    /// fuel shares apply) for an engine ticking every `tick`, and each listed
    /// tenant's fuel per minute (a tenant not listed is not metered).
    pub fn new(slots: usize, tick: Duration, fuel_per_minute: HashMap<String, u64>) -> Arc<CpuScheduler> {
        let state = State {
            slots,
            lease: tick * LEASE_TICKS,
            keep: tick * KEEP_TICKS_X2 / 2,
            quantum: tick * QUANTUM_TICKS,
            leases: Vec::with_capacity(slots),
            tenants: HashMap::new(),
            waiting: 0,
            arrivals: 0,
        };
        Arc::new(CpuScheduler {
            slots,
            lease: tick * LEASE_TICKS,
            shares: ArcSwap::from_pointee(metered(fuel_per_minute)),
            next_ticket: AtomicU64::new(0),
            state: Mutex::new(state),
        })
    }

    /// The ticket of one invocation for `tenant`, or `None` when there is
    /// nothing to schedule (no slots and no fuel share for this tenant).
    pub fn ticket(self: &Arc<Self>, tenant: Arc<str>) -> Option<CpuTicket> {
        let share = self.shares.load().get(&*tenant).copied();
        if share.is_none() && self.slots == 0 {
            return None;
        }
        let id = self.next_ticket.fetch_add(1, Ordering::Relaxed);
        Some(CpuTicket { sched: self.clone(), id, tenant, share, charged: 0 })
    }

    /// Each tenant's fuel per minute from the next invocation on; those
    /// running keep the share they started with.
    pub fn set_shares(&self, fuel_per_minute: HashMap<String, u64>) {
        self.shares.store(Arc::new(metered(fuel_per_minute)));
    }

    /// Invocations waiting for a slot.
    pub fn waiting(&self) -> usize {
        self.state.lock().waiting
    }

    /// Guests holding a slot (some of them may be blocked in a host call).
    pub fn leased(&self) -> usize {
        self.state.lock().leases.len()
    }
}

/// One invocation's place in the scheduler; dropping it gives back its slot
/// and leaves the queue.
pub struct CpuTicket {
    sched: Arc<CpuScheduler>,
    id: u64,
    tenant: Arc<str>,
    share: Option<u64>,
    /// Fuel already charged to the tenant.
    charged: u64,
}

/// What a tick decided.
enum Verdict {
    Run,
    Wait(SlotWait),
}

/// What a tick decided, inside the lock.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    Run,
    Queued,
    Throttled(Instant),
}

/// A guest waiting in its tick: first until its tenant's debt is repaid (if
/// throttled), then for a slot. Dropping it leaves the queue.
struct SlotWait {
    sched: Arc<CpuScheduler>,
    id: u64,
    tenant: Arc<str>,
    throttled_until: Option<Instant>,
    /// When the first waiter of a tenant next looks for idle leases.
    recheck: Option<Instant>,
    /// Fires at `throttled_until`, then at `recheck`.
    timer: Option<Pin<Box<Sleep>>>,
}

impl SlotWait {
    /// Sets the timer to `at` and polls it; true when it has already fired.
    fn timer_fired(&mut self, at: Instant, cx: &mut Context<'_>) -> bool {
        let at = tokio::time::Instant::from_std(at);
        let timer = match &mut self.timer {
            Some(timer) => {
                if timer.deadline() != at {
                    timer.as_mut().reset(at);
                }
                timer
            }
            None => self.timer.insert(Box::pin(tokio::time::sleep_until(at))),
        };
        timer.as_mut().poll(cx).is_ready()
    }
}

impl Future for SlotWait {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if let Some(until) = this.throttled_until {
            if !this.timer_fired(until, cx) {
                return Poll::Pending;
            }
            this.throttled_until = None;
        }
        loop {
            let now = Instant::now();
            let mut wake = Vec::new();
            let status = this.sched.state.lock().poll_waiter(this.id, &this.tenant, now, cx.waker(), &mut wake);
            wake.into_iter().for_each(Waker::wake);
            match status {
                WaitStatus::Granted => return Poll::Ready(()),
                WaitStatus::Queued { first: false } => return Poll::Pending,
                WaitStatus::Queued { first: true } => {
                    let at = *this.recheck.get_or_insert(now + this.sched.lease);
                    if !this.timer_fired(at, cx) {
                        return Poll::Pending;
                    }
                    // Holders blocked in host calls tick no more: look for
                    // idle leases.
                    this.recheck = None;
                    let mut wake = Vec::new();
                    this.sched.state.lock().balance(Instant::now(), &mut wake);
                    wake.into_iter().for_each(Waker::wake);
                }
            }
        }
    }
}

impl Drop for SlotWait {
    fn drop(&mut self) {
        let mut wake = Vec::new();
        self.sched.state.lock().dequeue(self.id, &self.tenant, &mut wake);
        wake.into_iter().for_each(Waker::wake);
    }
}

/// Where a waiter stands.
enum WaitStatus {
    Granted,
    /// Still queued; the first waiter of a tenant looks for idle leases now
    /// and then.
    Queued {
        first: bool,
    },
}

/// Everything behind the lock.
struct State {
    slots: usize,
    lease: Duration,
    keep: Duration,
    quantum: Duration,
    /// Leased slots; never more than `slots`.
    leases: Vec<Lease>,
    /// Tenants holding, wanting or owing something.
    tenants: HashMap<Arc<str>, Tenant>,
    /// Waiters over all tenants.
    waiting: usize,
    /// Numbers waiters in order of arrival.
    arrivals: u64,
}

struct Lease {
    /// `None` once its invocation has ended: kept for the tenant's next guest.
    ticket: Option<u64>,
    tenant: Arc<str>,
    granted: Instant,
    renewed: Instant,
}

#[derive(Default)]
struct Tenant {
    held: usize,
    queue: VecDeque<Waiter>,
    /// GCRA: when the tenant's charged fuel would be paid off at its share.
    paid_until: Option<Instant>,
}

impl Tenant {
    /// How long the tenant would take to pay off its charged fuel.
    fn debt(&self, now: Instant) -> Duration {
        self.paid_until.map_or(Duration::ZERO, |p| p.saturating_duration_since(now))
    }
}

struct Waiter {
    ticket: u64,
    since: u64,
    waker: Option<Waker>,
}

impl State {
    fn tick(&mut self, t: &CpuTicket, now: Instant, burned: u64, wake: &mut Vec<Waker>) -> Step {
        let throttled = t.share.and_then(|share| self.charge(&t.tenant, share, burned, now));
        if self.slots == 0 {
            return throttled.map_or(Step::Run, Step::Throttled);
        }
        let held = self.lease_of(t.id);
        if let Some(until) = throttled {
            if let Some(i) = held {
                self.release(i, now);
                self.balance(now, wake);
            }
            return Step::Throttled(until);
        }
        if let Some(i) = held {
            self.leases[i].renewed = now;
            if self.waiting == 0 {
                return Step::Run;
            }
            let Some(to) = self.hand_over_to(i, now) else {
                self.balance(now, wake);
                return Step::Run;
            };
            self.release(i, now);
            self.enqueue(t.id, &t.tenant);
            self.grant_front(&to, now, wake);
        } else if self.take_without_queueing(t.id, &t.tenant, now) {
            return Step::Run;
        } else {
            self.enqueue(t.id, &t.tenant);
        }
        self.balance(now, wake);
        if self.lease_of(t.id).is_some() { Step::Run } else { Step::Queued }
    }

    fn lease_of(&self, id: u64) -> Option<usize> {
        self.leases.iter().position(|l| l.ticket == Some(id))
    }

    /// Gives ticket `id` the lease its tenant kept from an ended invocation,
    /// or a free slot when no one waits. The common first tick; once the map
    /// has grown, it allocates nothing.
    fn take_without_queueing(&mut self, id: u64, tenant: &Arc<str>, now: Instant) -> bool {
        if let Some(kept) = self.leases.iter_mut().find(|l| l.ticket.is_none() && l.tenant == *tenant) {
            (kept.ticket, kept.granted, kept.renewed) = (Some(id), now, now);
            return true;
        }
        if self.waiting > 0 || self.leases.len() >= self.slots {
            return false;
        }
        self.tenants.entry(tenant.clone()).or_default().held += 1;
        self.leases.push(Lease { ticket: Some(id), tenant: tenant.clone(), granted: now, renewed: now });
        true
    }

    /// Charges `burned` fuel to `tenant`; when it is then more than a
    /// period's share in debt, the instant it will be back within it.
    fn charge(&mut self, tenant: &Arc<str>, share: u64, burned: u64, now: Instant) -> Option<Instant> {
        let account = self.tenants.entry(tenant.clone()).or_default();
        let nanos = u128::from(burned) * SHARE_PERIOD.as_nanos() / u128::from(share);
        let cost = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
        let debt = account.debt(now).saturating_add(cost).min(MAX_DEBT);
        account.paid_until = Some(now + debt);
        (debt > SHARE_PERIOD).then(|| now + (debt - SHARE_PERIOD))
    }

    fn throttled(&self, tenant: &Tenant, now: Instant) -> bool {
        tenant.debt(now) > SHARE_PERIOD
    }

    /// The tenant lease `i` should be handed to at this tick, if any: a
    /// waiting tenant holding fewer slots than the holder's, or the holder's
    /// own tenant once the holder has had its quantum.
    fn hand_over_to(&self, i: usize, now: Instant) -> Option<Arc<str>> {
        let lease = &self.leases[i];
        let mine = self.tenants.get(&lease.tenant)?;
        if let Some((name, _)) = self.neediest(now).filter(|(name, t)| **name != lease.tenant && t.held < mine.held) {
            return Some(name.clone());
        }
        let quantum_over = now.saturating_duration_since(lease.granted) >= self.quantum;
        (quantum_over && !mine.queue.is_empty()).then(|| lease.tenant.clone())
    }

    /// The waiting tenant that should get the next slot: fewest slots held,
    /// ties to the longest wait. Throttled tenants are passed over.
    fn neediest(&self, now: Instant) -> Option<(&Arc<str>, &Tenant)> {
        self.tenants
            .iter()
            .filter(|(_, t)| !t.queue.is_empty() && !self.throttled(t, now))
            .min_by_key(|(_, t)| (t.held, t.queue.front().map_or(u64::MAX, |w| w.since)))
    }

    /// Gives free, idle and (from a tenant two slots richer) taken slots to
    /// waiters, neediest first.
    fn balance(&mut self, now: Instant, wake: &mut Vec<Waker>) {
        while let Some((name, needy)) = self.neediest(now) {
            let (name, needy_held) = (name.clone(), needy.held);
            if self.leases.len() < self.slots {
                self.grant_front(&name, now, wake);
                continue;
            }
            let idle = self.leases.iter().position(|l| {
                let limit = if l.ticket.is_some() { self.lease } else { self.keep };
                now.saturating_duration_since(l.renewed) > limit
            });
            if let Some(i) = idle.or_else(|| self.richest_lease(needy_held)) {
                self.release(i, now);
                continue;
            }
            break;
        }
    }

    /// The least recently renewed lease of the tenant holding the most
    /// slots, if that is at least two more than `held`.
    fn richest_lease(&self, held: usize) -> Option<usize> {
        let held_by = |l: &Lease| self.tenants.get(&l.tenant).map_or(0, |t| t.held);
        let most = self.leases.iter().map(held_by).max()?;
        if most < held + 2 {
            return None;
        }
        self.leases
            .iter()
            .enumerate()
            .filter(|(_, l)| held_by(l) == most)
            .min_by_key(|(_, l)| l.renewed)
            .map(|(i, _)| i)
    }

    fn release(&mut self, i: usize, now: Instant) {
        let lease = self.leases.swap_remove(i);
        if let Some(t) = self.tenants.get_mut(&lease.tenant) {
            t.held = t.held.saturating_sub(1);
        }
        self.forget_if_idle(&lease.tenant, now);
    }

    /// Drops a tenant that holds, wants and owes nothing.
    fn forget_if_idle(&mut self, tenant: &Arc<str>, now: Instant) {
        let idle = self.tenants.get(tenant).is_some_and(|t| t.held == 0 && t.queue.is_empty() && t.debt(now).is_zero());
        if idle {
            self.tenants.remove(tenant);
        }
    }

    fn enqueue(&mut self, ticket: u64, tenant: &Arc<str>) {
        let since = self.arrivals;
        self.arrivals += 1;
        self.tenants.entry(tenant.clone()).or_default().queue.push_back(Waiter { ticket, since, waker: None });
        self.waiting += 1;
    }

    /// Gives a slot to the first waiter of `tenant`.
    fn grant_front(&mut self, tenant: &Arc<str>, now: Instant, wake: &mut Vec<Waker>) {
        let Some(t) = self.tenants.get_mut(tenant) else { return };
        let Some(waiter) = t.queue.pop_front() else { return };
        t.held += 1;
        self.waiting -= 1;
        wake.extend(waiter.waker);
        // The new first waiter takes over looking for idle leases.
        wake.extend(t.queue.front().and_then(|w| w.waker.clone()));
        self.leases.push(Lease { ticket: Some(waiter.ticket), tenant: tenant.clone(), granted: now, renewed: now });
    }

    fn poll_waiter(
        &mut self,
        id: u64,
        tenant: &Arc<str>,
        now: Instant,
        waker: &Waker,
        wake: &mut Vec<Waker>,
    ) -> WaitStatus {
        if self.slots == 0 || self.lease_of(id).is_some() {
            return WaitStatus::Granted;
        }
        let queued = self.tenants.get(tenant).and_then(|t| t.queue.iter().position(|w| w.ticket == id));
        let position = match queued {
            Some(position) => position,
            None => {
                // Throttled until now, or granted a lease that went idle
                // before this guest ran again: ask again.
                if self.take_without_queueing(id, tenant, now) {
                    return WaitStatus::Granted;
                }
                self.enqueue(id, tenant);
                self.balance(now, wake);
                if self.lease_of(id).is_some() {
                    return WaitStatus::Granted;
                }
                self.tenants.get(tenant).map_or(0, |t| t.queue.len().saturating_sub(1))
            }
        };
        if let Some(w) = self.tenants.get_mut(tenant).and_then(|t| t.queue.get_mut(position)) {
            match &mut w.waker {
                Some(w) => w.clone_from(waker),
                None => w.waker = Some(waker.clone()),
            }
        }
        WaitStatus::Queued { first: position == 0 }
    }

    /// Takes ticket `id` out of `tenant`'s queue, if it is there.
    fn dequeue(&mut self, id: u64, tenant: &Arc<str>, wake: &mut Vec<Waker>) {
        let Some(t) = self.tenants.get_mut(tenant) else { return };
        let Some(position) = t.queue.iter().position(|w| w.ticket == id) else { return };
        t.queue.remove(position);
        self.waiting -= 1;
        if position == 0 {
            wake.extend(t.queue.front().and_then(|w| w.waker.clone()));
        }
    }

    /// An invocation ended. Its slot goes to the neediest waiter, unless
    /// its tenant is entitled to it (no waiter of its own, no waiting tenant
    /// holding fewer): then the tenant keeps the lease for its next guest to
    /// take up at its first tick, for [`KEEP_TICKS_X2`] half ticks. A tenant
    /// running short jobs back to back thus keeps its share between them:
    /// its next job computes beside the other tenants' guests, not beside as
    /// many as there are slots.
    fn leave(&mut self, id: u64, tenant: &Arc<str>, now: Instant, wake: &mut Vec<Waker>) {
        self.dequeue(id, tenant, wake);
        if let Some(i) = self.lease_of(id) {
            let entitled = self.waiting > 0
                && self.tenants.get(tenant).is_some_and(|t| t.queue.is_empty())
                && self.hand_over_to(i, now).is_none();
            if entitled {
                (self.leases[i].ticket, self.leases[i].renewed) = (None, now);
            } else {
                self.release(i, now);
                self.balance(now, wake);
            }
        }
        self.forget_if_idle(tenant, now);
    }
}

mod ticket;

#[cfg(test)]
mod tests;

/// The tenants with a share: a share of 0 means not metered.
fn metered(fuel_per_minute: HashMap<String, u64>) -> HashMap<String, u64> {
    fuel_per_minute.into_iter().filter(|(_, share)| *share > 0).collect()
}
