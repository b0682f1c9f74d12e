//! A circuit breaker per route target: closed, open, half-open.
//!
//! Closed, it counts outcomes; it opens after `failures` consecutive failures
//! or when the failure rate over `window` reaches `failure_rate` (once at
//! least `min_calls` were seen). Open, it refuses for `open_for`. Then it
//! half-opens and admits up to `probes` calls at once: `close_after`
//! successes close it, one failure opens it again, and a probe that hangs
//! past `probe_timeout` counts as a failure — so a target that stopped
//! answering cannot keep its breaker half-open for ever.
//!
//! Degraded mode (Envoy's "panic threshold"): a breaker also keeps the
//! verdicts of its target's last [`RECENT`] calls, whatever its state. When
//! no target of a route would admit a request, the route may still try a
//! target whose recent calls succeeded at least `panic_min_success` of the
//! time ([`Breaker::admit_degraded`]): random faults at any rate then cost
//! retries, not an outage, while a target that is really down (its recent
//! calls all failed) stays skipped until its probes close it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Verdicts a breaker remembers for degraded mode.
pub const RECENT: usize = 20;

/// Thresholds of a breaker.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BreakerSettings {
    /// Consecutive failures that open it.
    pub failures: u32,
    /// Failure rate over the window that opens it (0.0–1.0).
    pub failure_rate: f64,
    /// The window the rate is measured over.
    pub window: Duration,
    /// Outcomes needed in the window before the rate counts.
    pub min_calls: u32,
    /// How long it stays open before admitting probes.
    pub open_for: Duration,
    /// Probes admitted at once while half-open.
    pub probes: u32,
    /// Successful probes that close it.
    pub close_after: u32,
    /// How long a probe may take before it counts as failed.
    pub probe_timeout: Duration,
    /// When every target of its route refuses, this one is still tried if
    /// at least this fraction of its last [`RECENT`] calls succeeded
    /// (0.0–1.0; 1.0 never tries a target whose breaker refuses).
    pub panic_min_success: f64,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        BreakerSettings {
            failures: 3,
            failure_rate: 0.5,
            window: Duration::from_secs(30),
            min_calls: 10,
            open_for: Duration::from_secs(60),
            probes: 2,
            close_after: 2,
            probe_timeout: Duration::from_secs(30),
            panic_min_success: 0.2,
        }
    }
}

/// The state a breaker is in, for reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls pass.
    Closed,
    /// Calls are refused.
    Open,
    /// A few probes pass.
    HalfOpen,
}

impl BreakerState {
    /// Its name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
        }
    }
}

/// Permission to make one call; hand it back with [`Breaker::record`] or [`Breaker::release`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ticket {
    /// An ordinary call through a closed breaker.
    Normal,
    /// A half-open probe.
    Probe(u64),
    /// A call through a refusing breaker in degraded mode: its verdict is
    /// remembered but moves no state.
    Degraded,
}

/// A change of state, for tracing and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transition {
    /// Closed → open, with why.
    Opened(String),
    /// Open → half-open.
    HalfOpened,
    /// Half-open → closed.
    Closed,
    /// Half-open → open again, with why.
    Reopened(String),
}

#[derive(Debug)]
enum State {
    Closed,
    Open { until: Instant },
    HalfOpen { probes: Vec<(u64, Instant)>, successes: u32 },
}

/// One target's breaker. Not synchronised: the owner keeps it behind a lock
/// held only for these short calls.
#[derive(Debug)]
pub struct Breaker {
    settings: BreakerSettings,
    state: State,
    consecutive: u32,
    window: VecDeque<(Instant, bool)>,
    next_probe: u64,
    /// The last [`RECENT`] verdicts, kept across states.
    recent: VecDeque<bool>,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(settings: BreakerSettings) -> Self {
        Breaker {
            settings,
            state: State::Closed,
            consecutive: 0,
            window: VecDeque::new(),
            next_probe: 0,
            recent: VecDeque::with_capacity(RECENT),
        }
    }

    /// The current state (an open breaker whose wait is over reads as half-open).
    pub fn state(&self, now: Instant) -> BreakerState {
        match self.state {
            State::Closed => BreakerState::Closed,
            State::Open { until } if now < until => BreakerState::Open,
            _ => BreakerState::HalfOpen,
        }
    }

    /// How long an open breaker still refuses calls; `None` unless open.
    pub fn open_for(&self, now: Instant) -> Option<Duration> {
        match self.state {
            State::Open { until } if now < until => Some(until - now),
            _ => None,
        }
    }

    /// Asks to make a call. `Err` holds how long until it may admit one.
    pub fn admit(&mut self, now: Instant, changes: &mut Vec<Transition>) -> Result<Ticket, Duration> {
        self.expire_hung_probes(now, changes);
        match &mut self.state {
            State::Closed => Ok(Ticket::Normal),
            State::Open { until } if now < *until => Err(*until - now),
            State::Open { .. } => {
                changes.push(Transition::HalfOpened);
                self.state = State::HalfOpen { probes: Vec::new(), successes: 0 };
                self.admit(now, changes)
            }
            State::HalfOpen { probes, .. } => {
                if probes.len() as u32 >= self.settings.probes {
                    let oldest = probes.iter().map(|p| p.1).min().unwrap_or(now);
                    return Err((oldest + self.settings.probe_timeout).saturating_duration_since(now));
                }
                self.next_probe += 1;
                probes.push((self.next_probe, now));
                Ok(Ticket::Probe(self.next_probe))
            }
        }
    }

    /// The fraction of the last [`RECENT`] calls that succeeded; `None` before any.
    pub fn recent_success(&self) -> Option<f64> {
        let ok = self.recent.iter().filter(|ok| **ok).count();
        (!self.recent.is_empty()).then(|| ok as f64 / self.recent.len() as f64)
    }

    /// Asks to make a call in degraded mode, after [`Breaker::admit`]
    /// refused: admitted when enough of the target's recent calls succeeded
    /// (see the module docs). `Err` holds that fraction.
    pub fn admit_degraded(&self) -> Result<Ticket, f64> {
        let rate = self.recent_success();
        if self.settings.panic_min_success >= 1.0 {
            return Err(rate.unwrap_or(0.0));
        }
        match rate {
            Some(rate) if rate < self.settings.panic_min_success => Err(rate),
            _ => Ok(Ticket::Degraded),
        }
    }

    /// Records how an admitted call ended.
    pub fn record(&mut self, ticket: Ticket, ok: bool, now: Instant, changes: &mut Vec<Transition>) {
        self.expire_hung_probes(now, changes);
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(ok);
        match (&mut self.state, ticket) {
            (State::HalfOpen { probes, successes }, Ticket::Probe(id)) => {
                let Some(at) = probes.iter().position(|p| p.0 == id) else { return };
                probes.swap_remove(at);
                if !ok {
                    self.open(now, changes, "a half-open probe failed".into());
                } else {
                    *successes += 1;
                    if *successes >= self.settings.close_after {
                        changes.push(Transition::Closed);
                        self.state = State::Closed;
                        self.consecutive = 0;
                        self.window.clear();
                    }
                }
            }
            (State::Closed, Ticket::Normal) => self.count(ok, now, changes),
            // A call admitted before the breaker changed state: its outcome is
            // stale evidence and does not move the new state.
            _ => {}
        }
    }

    /// Hands back a ticket whose call ended with no verdict (cancelled, or
    /// failed for a reason that says nothing about the target).
    pub fn release(&mut self, ticket: Ticket) {
        if let (State::HalfOpen { probes, .. }, Ticket::Probe(id)) = (&mut self.state, ticket) {
            probes.retain(|p| p.0 != id);
        }
    }

    fn count(&mut self, ok: bool, now: Instant, changes: &mut Vec<Transition>) {
        self.window.push_back((now, ok));
        while self.window.front().is_some_and(|(at, _)| now.duration_since(*at) > self.settings.window) {
            self.window.pop_front();
        }
        // Bounded however busy the target: only the rate matters, and a
        // thousand recent outcomes estimate it as well as a million.
        if self.window.len() > 1000 {
            self.window.pop_front();
        }
        if ok {
            self.consecutive = 0;
            return;
        }
        self.consecutive += 1;
        if self.consecutive >= self.settings.failures {
            let why = format!("{} consecutive failures", self.consecutive);
            self.open(now, changes, why);
            return;
        }
        let calls = self.window.len() as u32;
        let failed = self.window.iter().filter(|(_, ok)| !ok).count() as u32;
        if calls >= self.settings.min_calls && f64::from(failed) >= self.settings.failure_rate * f64::from(calls) {
            let why = format!("{failed} of {calls} calls failed in {}", paddock_core::Span(self.settings.window));
            self.open(now, changes, why);
        }
    }

    fn open(&mut self, now: Instant, changes: &mut Vec<Transition>, why: String) {
        let was_half_open = matches!(self.state, State::HalfOpen { .. });
        changes.push(if was_half_open { Transition::Reopened(why) } else { Transition::Opened(why) });
        self.state = State::Open { until: now + self.settings.open_for };
        self.consecutive = 0;
        self.window.clear();
    }

    fn expire_hung_probes(&mut self, now: Instant, changes: &mut Vec<Transition>) {
        if let State::HalfOpen { probes, .. } = &self.state
            && probes.iter().any(|(_, at)| now.duration_since(*at) >= self.settings.probe_timeout)
        {
            let why = format!("a half-open probe hung for {}", paddock_core::Span(self.settings.probe_timeout));
            self.open(now, changes, why);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> (Breaker, Instant, Vec<Transition>) {
        (Breaker::new(BreakerSettings::default()), Instant::now(), Vec::new())
    }

    fn fail(b: &mut Breaker, now: Instant, changes: &mut Vec<Transition>) {
        let t = b.admit(now, changes).unwrap();
        b.record(t, false, now, changes);
    }

    #[test]
    fn breaker_opens_after_three_consecutive_failures() {
        let (mut b, now, mut changes) = breaker();
        fail(&mut b, now, &mut changes);
        fail(&mut b, now, &mut changes);
        assert_eq!(b.state(now), BreakerState::Closed);
        fail(&mut b, now, &mut changes);
        assert_eq!(b.state(now), BreakerState::Open);
        assert_eq!(changes, [Transition::Opened("3 consecutive failures".into())]);
        assert_eq!(b.admit(now + Duration::from_secs(10), &mut changes), Err(Duration::from_secs(50)));
    }

    #[test]
    fn a_success_resets_the_consecutive_count() {
        let (mut b, now, mut changes) = breaker();
        fail(&mut b, now, &mut changes);
        fail(&mut b, now, &mut changes);
        let t = b.admit(now, &mut changes).unwrap();
        b.record(t, true, now, &mut changes);
        fail(&mut b, now, &mut changes);
        fail(&mut b, now, &mut changes);
        assert_eq!(b.state(now), BreakerState::Closed);
    }

    #[test]
    fn breaker_opens_on_failure_rate_over_the_window() {
        let (mut b, now, mut changes) = breaker();
        for i in 0..10 {
            let t = b.admit(now, &mut changes).unwrap();
            b.record(t, i % 2 == 0, now, &mut changes); // alternate: never 3 in a row
        }
        assert_eq!(changes, [Transition::Opened("5 of 10 calls failed in 30s".into())]);
    }

    #[test]
    fn outcomes_older_than_the_window_do_not_count() {
        let (mut b, now, mut changes) = breaker();
        for i in 0..9 {
            let t = b.admit(now, &mut changes).unwrap();
            b.record(t, i % 2 == 0, now, &mut changes);
        }
        let later = now + Duration::from_secs(31);
        let t = b.admit(later, &mut changes).unwrap();
        b.record(t, false, later, &mut changes);
        assert_eq!(b.state(later), BreakerState::Closed);
    }

    #[test]
    fn breaker_half_opens_after_wait_and_closes_after_two_successes() {
        let (mut b, now, mut changes) = breaker();
        (0..3).for_each(|_| fail(&mut b, now, &mut changes));
        let later = now + Duration::from_secs(60);
        let p1 = b.admit(later, &mut changes).unwrap();
        let p2 = b.admit(later, &mut changes).unwrap();
        assert!(matches!((p1, p2), (Ticket::Probe(_), Ticket::Probe(_))));
        assert_eq!(b.admit(later, &mut changes), Err(Duration::from_secs(30)), "only two probes at once");
        b.record(p1, true, later, &mut changes);
        assert_eq!(b.state(later), BreakerState::HalfOpen);
        b.record(p2, true, later, &mut changes);
        assert_eq!(b.state(later), BreakerState::Closed);
        assert_eq!(changes[1..], [Transition::HalfOpened, Transition::Closed]);
    }

    #[test]
    fn failed_probe_reopens_for_another_full_wait() {
        let (mut b, now, mut changes) = breaker();
        (0..3).for_each(|_| fail(&mut b, now, &mut changes));
        let later = now + Duration::from_secs(60);
        fail(&mut b, later, &mut changes);
        assert_eq!(changes.last(), Some(&Transition::Reopened("a half-open probe failed".into())));
        assert_eq!(b.admit(later + Duration::from_secs(59), &mut changes), Err(Duration::from_secs(1)));
    }

    #[test]
    fn hung_probe_times_out_and_reopens() {
        let (mut b, now, mut changes) = breaker();
        (0..3).for_each(|_| fail(&mut b, now, &mut changes));
        let later = now + Duration::from_secs(60);
        let _hung = b.admit(later, &mut changes).unwrap();
        let _hung2 = b.admit(later, &mut changes).unwrap();
        let after = later + Duration::from_secs(30);
        assert!(b.admit(after, &mut changes).is_err());
        assert_eq!(changes.last(), Some(&Transition::Reopened("a half-open probe hung for 30s".into())));
    }

    #[test]
    fn released_probe_frees_its_slot_without_a_verdict() {
        let (mut b, now, mut changes) = breaker();
        (0..3).for_each(|_| fail(&mut b, now, &mut changes));
        let later = now + Duration::from_secs(60);
        let p1 = b.admit(later, &mut changes).unwrap();
        let _p2 = b.admit(later, &mut changes).unwrap();
        b.release(p1);
        assert!(b.admit(later, &mut changes).is_ok());
        assert_eq!(b.state(later), BreakerState::HalfOpen);
    }

    #[test]
    fn degraded_admission_follows_the_last_twenty_verdicts_across_states() {
        let (mut b, now, mut changes) = breaker();
        assert_eq!(b.admit_degraded(), Ok(Ticket::Degraded), "no verdict yet");
        for _ in 0..17 {
            let t = b.admit(now, &mut changes).unwrap();
            b.record(t, true, now, &mut changes);
        }
        (0..3).for_each(|_| fail(&mut b, now, &mut changes));
        assert_eq!(b.state(now), BreakerState::Open);
        assert_eq!(b.recent_success(), Some(0.85));
        for _ in 0..13 {
            let t = b.admit_degraded().unwrap();
            b.record(t, false, now, &mut changes);
        }
        assert_eq!(b.state(now), BreakerState::Open, "degraded verdicts move no state");
        assert_eq!(b.recent_success(), Some(0.2), "4 of the last 20");
        let t = b.admit_degraded().unwrap();
        b.record(t, false, now, &mut changes);
        assert_eq!(b.admit_degraded(), Err(0.15));
        assert_eq!(b.open_for(now), Some(Duration::from_secs(60)), "the wait was not extended");
    }
}
