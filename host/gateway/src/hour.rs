//! The last hour of a route target, minute by minute: attempts, errors,
//! failovers after a 429 and latency, and its breaker's transitions with
//! their reasons. What the console's providers page draws; metrics carry
//! the same counts for as long as a scraper keeps them.

use paddock_core::minutes::{LastHour, MINUTES, PerMinute, now_ms};
use parking_lot::Mutex;
use serde::Serialize;
use std::collections::VecDeque;
use std::time::Duration;

/// Breaker transitions kept (a flapping breaker keeps its latest).
const CHANGES: usize = 100;

/// One minute of a target.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Minute {
    /// Minutes since 1970 (UTC).
    pub minute: u64,
    /// Attempts that ended in it.
    pub attempts: u64,
    /// Of those, the failed.
    pub errors: u64,
    /// Failovers to the next target after this one answered 429.
    pub failovers: u64,
    /// The attempts' summed latency, in milliseconds.
    pub latency_ms: f64,
}

impl PerMinute for Minute {
    fn starting(minute: u64) -> Self {
        Minute { minute, ..Minute::default() }
    }
    fn minute(&self) -> u64 {
        self.minute
    }
}

/// A breaker transition.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Change {
    /// When (ms since 1970).
    pub at_ms: u64,
    /// The state entered: `open`, `half-open` or `closed`.
    pub to: &'static str,
    /// Why.
    pub why: String,
}

/// A target's last hour, as [`Hour::view`] answers it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct HourView {
    /// The minutes with any attempt, oldest first.
    pub minutes: Vec<Minute>,
    /// The breaker's transitions in the hour, oldest first.
    pub transitions: Vec<Change>,
}

/// A target's last hour, kept as it happens.
#[derive(Debug, Default)]
pub struct Hour {
    inner: Mutex<(LastHour<Minute>, VecDeque<Change>)>,
}

impl Hour {
    /// Counts an attempt that took `latency`.
    pub fn attempt(&self, ok: bool, latency: Duration) {
        self.at(now_ms(), |m| {
            m.attempts += 1;
            m.errors += u64::from(!ok);
            m.latency_ms += latency.as_secs_f64() * 1000.0;
        });
    }

    /// Counts a failover after this target's 429.
    pub fn failover(&self) {
        self.at(now_ms(), |m| m.failovers += 1);
    }

    /// Keeps a breaker transition.
    pub fn transition(&self, to: &'static str, why: &str) {
        let mut inner = self.inner.lock();
        if inner.1.len() == CHANGES {
            inner.1.pop_front();
        }
        inner.1.push_back(Change { at_ms: now_ms(), to, why: why.to_string() });
    }

    fn at(&self, ms: u64, count: impl FnOnce(&mut Minute)) {
        self.inner.lock().0.count(ms, count);
    }

    /// The last hour, as of now.
    pub fn view(&self) -> HourView {
        self.view_at(now_ms())
    }

    fn view_at(&self, ms: u64) -> HourView {
        let inner = self.inner.lock();
        HourView {
            minutes: inner.0.view(ms),
            transitions: inner.1.iter().filter(|c| c.at_ms + MINUTES * 60_000 > ms).cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_are_counted_by_the_minute_and_an_hour_old_minute_is_forgotten() {
        let hour = Hour::default();
        let start = 1_000 * 60_000;
        hour.at(start, |m| m.attempts += 1);
        hour.at(start + 59_999, |m| m.errors += 1);
        hour.at(start + 60_000, |m| m.failovers += 1);
        let view = hour.view_at(start + 60_000);
        let counts: Vec<_> = view.minutes.iter().map(|m| (m.minute, m.attempts, m.errors, m.failovers)).collect();
        assert_eq!(counts, [(1_000, 1, 1, 0), (1_001, 0, 0, 1)]);
        // An hour later the first minute is gone, from the view and the store.
        assert_eq!(hour.view_at(start + 60 * 60_000).minutes.len(), 1);
        hour.at(start + 61 * 60_000, |m| m.attempts += 1);
        assert_eq!(hour.inner.lock().0.kept(), 1);
    }

    #[test]
    fn transitions_keep_the_latest_hundred_with_their_reasons() {
        let hour = Hour::default();
        for i in 0..105 {
            hour.transition(if i % 2 == 0 { "open" } else { "closed" }, &format!("reason {i}"));
        }
        let view = hour.view();
        assert_eq!(view.transitions.len(), 100);
        assert_eq!((view.transitions[0].to, view.transitions[0].why.as_str()), ("closed", "reason 5"));
        assert_eq!(view.transitions[99].why, "reason 104");
    }
}
