//! The last hour, a minute at a time: counts kept as they happen and
//! forgotten an hour later. What the console's charts draw (a route target's
//! attempts, a tenant's invocations); metrics carry the same counts for as
//! long as a scraper keeps them.

use std::collections::VecDeque;
use std::time::{SystemTime, UNIX_EPOCH};

/// Minutes kept.
pub const MINUTES: u64 = 60;

/// The counts of one minute.
pub trait PerMinute: Clone {
    /// Nothing counted yet in `minute` (minutes since 1970, UTC).
    fn starting(minute: u64) -> Self;
    /// The minute it counts.
    fn minute(&self) -> u64;
}

/// The minutes of the last hour with anything counted, oldest first.
#[derive(Debug)]
pub struct LastHour<T> {
    minutes: VecDeque<T>,
}

impl<T> Default for LastHour<T> {
    fn default() -> Self {
        LastHour { minutes: VecDeque::new() }
    }
}

impl<T: PerMinute> LastHour<T> {
    /// Counts into the minute of `ms` (ms since 1970) with `count`, forgetting
    /// the minutes an hour older.
    pub fn count(&mut self, ms: u64, count: impl FnOnce(&mut T)) {
        let minute = ms / 60_000;
        if self.minutes.back().is_none_or(|m| m.minute() != minute) {
            self.minutes.push_back(T::starting(minute));
        }
        while self.minutes.front().is_some_and(|m| m.minute() + MINUTES <= minute) {
            self.minutes.pop_front();
        }
        if let Some(last) = self.minutes.back_mut() {
            count(last);
        }
    }

    /// The minutes of the hour before `ms`, oldest first.
    pub fn view(&self, ms: u64) -> Vec<T> {
        let minute = ms / 60_000;
        self.minutes.iter().filter(|m| m.minute() + MINUTES > minute).cloned().collect()
    }

    /// How many minutes it keeps (an hour's at most, and those not yet forgotten).
    pub fn kept(&self) -> usize {
        self.minutes.len()
    }
}

/// Milliseconds since 1970 by the system clock.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq)]
    struct Tally(u64, u64);

    impl PerMinute for Tally {
        fn starting(minute: u64) -> Self {
            Tally(minute, 0)
        }
        fn minute(&self) -> u64 {
            self.0
        }
    }

    #[test]
    fn counts_go_to_their_minute_and_an_hour_old_minute_is_forgotten() {
        let mut hour = LastHour::<Tally>::default();
        let start = 1_000 * 60_000;
        hour.count(start, |t| t.1 += 1);
        hour.count(start + 59_999, |t| t.1 += 1);
        hour.count(start + 60_000, |t| t.1 += 5);
        assert_eq!(hour.view(start + 60_000), [Tally(1_000, 2), Tally(1_001, 5)]);
        // An hour later the first minute is gone, from the view and the store.
        assert_eq!(hour.view(start + 60 * 60_000), [Tally(1_001, 5)]);
        hour.count(start + 61 * 60_000, |t| t.1 += 1);
        assert_eq!(hour.kept(), 1);
        assert_eq!(hour.view(start + 61 * 60_000), [Tally(1_061, 1)]);
    }
}
