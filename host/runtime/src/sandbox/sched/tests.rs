//! The scheduler's rules, on made-up instants (no wasm, no sleeping).

use super::*;
use std::task::Waker;

/// Long, so that the real clock, read when a ticket is dropped, stays
/// well within a tick of the made-up instants the tests tick at.
const TICK: Duration = Duration::from_secs(1);

fn sched(slots: usize) -> Arc<CpuScheduler> {
    CpuScheduler::new(slots, TICK, HashMap::new())
}

fn ticket(s: &Arc<CpuScheduler>, tenant: &str) -> CpuTicket {
    s.ticket(Arc::from(tenant)).expect("a scheduler with slots hands out tickets")
}

fn ms(t0: Instant, ms: u64) -> Instant {
    t0 + Duration::from_millis(ms)
}

/// Ticks with no fuel burned; the wait, if the guest must wait.
fn tick(t: &mut CpuTicket, now: Instant) -> Option<SlotWait> {
    match t.tick_at(now, t.charged) {
        Verdict::Run => None,
        Verdict::Wait(w) => Some(w),
    }
}

fn ready(w: &mut SlotWait) -> bool {
    Pin::new(w).poll(&mut Context::from_waker(Waker::noop())).is_ready()
}

fn holds(s: &CpuScheduler, t: &CpuTicket) -> bool {
    s.state.lock().lease_of(t.id).is_some()
}

#[tokio::test]
async fn a_freed_slot_goes_to_the_tenant_holding_fewest_even_if_another_waited_longer() {
    let s = sched(2);
    let t0 = Instant::now();
    let (mut a1, mut a2, mut a3) = (ticket(&s, "a"), ticket(&s, "a"), ticket(&s, "a"));
    assert!(tick(&mut a1, t0).is_none() && tick(&mut a2, t0).is_none());
    let mut a3_wait = tick(&mut a3, ms(t0, 1)).expect("both slots are taken");
    // b1 arrives two slots poorer than a: it takes one of a's at once.
    let mut b1 = ticket(&s, "b");
    assert!(tick(&mut b1, ms(t0, 2)).is_none());
    let mut b2 = ticket(&s, "b");
    let mut b2_wait = tick(&mut b2, ms(t0, 3)).expect("a and b hold one each");
    drop(b1);
    assert!(ready(&mut b2_wait), "b holds fewer slots than a");
    assert!(!ready(&mut a3_wait));
    assert_eq!(s.waiting(), 1);
}

#[tokio::test]
async fn a_holder_loses_its_slot_to_a_tenant_two_slots_poorer_and_queues_at_its_next_tick() {
    let s = sched(2);
    let t0 = Instant::now();
    let (mut a1, mut a2) = (ticket(&s, "a"), ticket(&s, "a"));
    assert!(tick(&mut a1, t0).is_none());
    assert!(tick(&mut a2, ms(t0, 1)).is_none());
    let mut b = ticket(&s, "b");
    assert!(tick(&mut b, ms(t0, 2)).is_none(), "b gets a slot without waiting");
    assert!(!holds(&s, &a1), "the least recently renewed lease was taken");
    assert!(tick(&mut a2, ms(t0, 1_000)).is_none());
    assert!(tick(&mut a1, ms(t0, 1_000)).is_some(), "a1 learns at its tick and queues");
    assert_eq!(s.leased(), 2);
}

#[tokio::test]
async fn waiters_of_one_tenant_get_slots_in_arrival_order() {
    let s = sched(1);
    let t0 = Instant::now();
    let mut holder = ticket(&s, "a");
    assert!(tick(&mut holder, t0).is_none());
    let mut tickets: Vec<CpuTicket> = (0..3).map(|_| ticket(&s, "a")).collect();
    let mut waits: Vec<SlotWait> =
        tickets.iter_mut().enumerate().map(|(i, t)| tick(t, ms(t0, 1 + i as u64)).expect("queued")).collect();
    drop(holder);
    for i in 0..3 {
        assert!(ready(&mut waits[i]), "waiter {i} is next");
        assert!(waits[i + 1..].iter_mut().all(|w| !ready(w)), "only waiter {i} has a slot");
        tickets.remove(0);
    }
}

#[tokio::test]
async fn one_slot_alternates_between_two_tenants_tick_by_tick() {
    let s = sched(1);
    let t0 = Instant::now();
    let (mut a, mut b) = (ticket(&s, "a"), ticket(&s, "b"));
    assert!(tick(&mut a, t0).is_none());
    let mut b_wait = tick(&mut b, ms(t0, 1)).expect("the slot is a's");
    let mut a_wait = tick(&mut a, ms(t0, 1_000)).expect("a hands over to b, who holds none");
    assert!(ready(&mut b_wait));
    assert!(tick(&mut b, ms(t0, 1_002)).is_some(), "and b back to a");
    assert!(ready(&mut a_wait));
}

#[tokio::test]
async fn a_holder_yields_to_its_own_tenant_after_its_quantum() {
    let s = sched(1);
    let t0 = Instant::now();
    let (mut a1, mut a2) = (ticket(&s, "a"), ticket(&s, "a"));
    assert!(tick(&mut a1, t0).is_none());
    let mut a2_wait = tick(&mut a2, ms(t0, 1)).expect("queued");
    let quantum = TICK.as_millis() as u64 * u64::from(QUANTUM_TICKS);
    assert!(tick(&mut a1, ms(t0, quantum - TICK.as_millis() as u64)).is_none());
    assert!(tick(&mut a1, ms(t0, quantum)).is_some());
    assert!(ready(&mut a2_wait));
}

#[tokio::test]
async fn a_lease_not_renewed_for_two_ticks_goes_to_a_waiter() {
    let s = sched(1);
    let t0 = Instant::now();
    let (mut blocked, mut a2, mut a3) = (ticket(&s, "a"), ticket(&s, "a"), ticket(&s, "a"));
    assert!(tick(&mut blocked, t0).is_none());
    let mut a2_wait = tick(&mut a2, ms(t0, 2_000)).expect("a lease renewed two ticks ago still holds");
    assert!(tick(&mut a3, ms(t0, 2_001)).is_some(), "a3 queues behind a2");
    assert!(ready(&mut a2_wait), "the blocked holder's lease went to the first waiter");
    assert!(tick(&mut blocked, ms(t0, 3_000)).is_some(), "back from its host call, it asks again");
}

#[tokio::test]
async fn the_first_waiter_takes_an_idle_lease_when_no_guest_ticks() {
    let s = CpuScheduler::new(1, Duration::from_millis(1), HashMap::new());
    let (mut blocked, mut a2) = (ticket(&s, "a"), ticket(&s, "a"));
    assert!(tick(&mut blocked, Instant::now()).is_none());
    let wait = tick(&mut a2, Instant::now()).expect("queued");
    tokio::time::timeout(Duration::from_secs(60), wait).await.expect("the waiter reclaims the idle lease");
    assert!(holds(&s, &a2) && !holds(&s, &blocked));
}

#[tokio::test]
async fn an_ended_guests_slot_stays_with_its_tenant_for_its_next_guest_until_idle() {
    let s = sched(2);
    let t0 = Instant::now();
    let (mut a1, mut a2, mut b1) = (ticket(&s, "a"), ticket(&s, "a"), ticket(&s, "b"));
    assert!(tick(&mut a1, t0).is_none() && tick(&mut b1, t0).is_none());
    let mut a2_wait = tick(&mut a2, ms(t0, 1)).expect("a and b hold one each");
    drop(b1);
    assert!(!ready(&mut a2_wait), "b holds no more than a: its slot is kept for b");
    let mut b2 = ticket(&s, "b");
    assert!(tick(&mut b2, ms(t0, 5)).is_none(), "b's next guest takes it up");
    drop(b2);
    assert!(tick(&mut a1, ms(t0, 1_400)).is_none());
    assert!(!ready(&mut a2_wait), "kept for a tick and a half");
    assert!(tick(&mut a1, ms(t0, 1_900)).is_none());
    assert!(ready(&mut a2_wait), "not taken up, the kept lease went to a");
}

#[tokio::test]
async fn a_dropped_waiter_leaves_the_queue() {
    let s = sched(1);
    let t0 = Instant::now();
    let (mut a1, mut a2, mut a3) = (ticket(&s, "a"), ticket(&s, "a"), ticket(&s, "a"));
    assert!(tick(&mut a1, t0).is_none());
    let a2_wait = tick(&mut a2, ms(t0, 1)).expect("queued");
    let mut a3_wait = tick(&mut a3, ms(t0, 2)).expect("queued");
    assert_eq!(s.waiting(), 2);
    drop(a2_wait);
    assert_eq!(s.waiting(), 1);
    drop(a1);
    assert!(ready(&mut a3_wait), "the slot skipped the dropped waiter");
    assert!(!holds(&s, &a2));
    drop((a3, a2));
    assert_eq!((s.waiting(), s.leased()), (0, 0));
    assert!(s.state.lock().tenants.is_empty(), "an idle tenant is forgotten");
}

#[tokio::test]
async fn a_dropped_ticket_leaves_the_queue_even_if_its_wait_was_leaked() {
    let s = sched(1);
    let t0 = Instant::now();
    let (mut a1, mut a2) = (ticket(&s, "a"), ticket(&s, "a"));
    assert!(tick(&mut a1, t0).is_none());
    std::mem::forget(tick(&mut a2, ms(t0, 1)).expect("queued"));
    drop(a2);
    assert_eq!(s.waiting(), 0);
}

#[test]
fn a_tenant_more_than_a_minutes_share_in_debt_waits_until_it_is_back_within_it() {
    let shares = HashMap::from([("a".to_string(), 60)]);
    let s = CpuScheduler::new(2, TICK, shares);
    let t0 = Instant::now();
    let (mut a1, mut a2) = (ticket(&s, "a"), ticket(&s, "a"));
    // One fuel a second: 50 fuel is 50 s of debt, within the minute.
    assert!(matches!(a1.tick_at(t0, 50), Verdict::Run));
    // 30 more from another invocation: 80 s, 20 s over.
    let Verdict::Wait(wait) = a2.tick_at(t0, 30) else { panic!("a is over its share") };
    assert_eq!(wait.throttled_until, Some(t0 + Duration::from_secs(20)));
    assert!(!holds(&s, &a2), "a throttled guest holds no slot");
    assert!(matches!(a1.tick_at(t0 + Duration::from_secs(1), 50), Verdict::Wait(_)), "the debt is the tenant's");
    assert!(matches!(a1.tick_at(t0 + Duration::from_secs(21), 50), Verdict::Run), "repaid");
    let mut b = ticket(&s, "b");
    assert!(matches!(b.tick_at(t0, 1_000_000_000), Verdict::Run), "b has no share and is not metered");
}

#[test]
fn without_slots_or_a_share_there_is_nothing_to_schedule() {
    let s = CpuScheduler::new(0, TICK, HashMap::from([("metered".to_string(), 60)]));
    assert!(s.ticket(Arc::from("free")).is_none());
    let mut t = s.ticket(Arc::from("metered")).expect("a metered tenant is charged");
    assert!(matches!(t.tick_at(Instant::now(), 1), Verdict::Run));
}
