//! Budget windows: the UTC calendar day and month a moment falls in.
//!
//! Dates are computed here rather than with a date crate: the ledger needs
//! only "which day and month is this, in UTC", and Howard Hinnant's
//! `civil_from_days` does that exactly in a dozen lines.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

const SECONDS_PER_DAY: i64 = 86_400;

/// A UTC calendar day, as days since 1970-01-01.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Day(pub(crate) i64);

/// A UTC calendar month, as `year * 12 + (month - 1)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Month(pub(crate) i64);

/// A day or a month: the window a usage row belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Window {
    Day(Day),
    Month(Month),
}

impl Day {
    /// The day `at` falls in, in UTC (moments before 1970 included).
    pub(crate) fn of(at: SystemTime) -> Day {
        let seconds = match at.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            // Before the epoch: a partial second still belongs to the earlier day.
            Err(e) => {
                let d = e.duration();
                -i64::try_from(d.as_secs()).unwrap_or(i64::MAX) - i64::from(d.subsec_nanos() > 0)
            }
        };
        Day(seconds.div_euclid(SECONDS_PER_DAY))
    }

    /// The month this day is in.
    pub(crate) fn month(self) -> Month {
        let (year, month, _) = civil_from_days(self.0);
        Month(year * 12 + i64::from(month) - 1)
    }
}

impl fmt::Display for Day {
    /// `2026-11-21`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (year, month, day) = civil_from_days(self.0);
        write!(f, "{year:04}-{month:02}-{day:02}")
    }
}

impl fmt::Display for Month {
    /// `2026-11`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.0.div_euclid(12), self.0.rem_euclid(12) + 1)
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Window::Day(d) => d.fmt(f),
            Window::Month(m) => m.fmt(f),
        }
    }
}

/// Year, month (1–12) and day (1–31) of the proleptic Gregorian calendar for
/// `days` since 1970-01-01. From Howard Hinnant, "chrono-Compatible Low-Level
/// Date Algorithms": eras of 400 years, years starting in March so that the
/// leap day falls last.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March = 0
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn days_and_months_are_utc_calendar_dates() {
        assert_eq!(Day::of(at(0)).to_string(), "1970-01-01");
        assert_eq!(Day::of(at(86_399)).to_string(), "1970-01-01");
        assert_eq!(Day::of(at(86_400)).to_string(), "1970-01-02");
        // 2026-11-21T23:59:59Z and the second after.
        assert_eq!(Day::of(at(1_795_305_599)).to_string(), "2026-11-21");
        assert_eq!(Day::of(at(1_795_305_600)).to_string(), "2026-11-22");
        assert_eq!(Day::of(at(1_795_305_599)).month().to_string(), "2026-11");
        // Leap days, a century that is not a leap year, and one that is.
        assert_eq!(Day::of(at(951_782_400)).to_string(), "2000-02-29");
        assert_eq!(Day::of(at(1_709_164_800)).to_string(), "2024-02-29");
        assert_eq!(Day::of(at(1_709_251_200)).to_string(), "2024-03-01");
        assert_eq!(Day::of(at(4_107_542_400)).to_string(), "2100-03-01");
        assert_eq!(Day(4_107_542_400 / 86_400 - 1).to_string(), "2100-02-28");
        assert_eq!(Day::of(at(1_798_761_599)).month().to_string(), "2026-12");
        assert_eq!(Day::of(at(1_798_761_600)).month().to_string(), "2027-01");
    }

    #[test]
    fn moments_before_the_epoch_fall_on_earlier_days() {
        assert_eq!(Day::of(UNIX_EPOCH - Duration::from_millis(1)).to_string(), "1969-12-31");
        assert_eq!(Day::of(UNIX_EPOCH - Duration::from_secs(86_400)).to_string(), "1969-12-31");
        assert_eq!(Day::of(UNIX_EPOCH - Duration::from_secs(86_401)).to_string(), "1969-12-30");
        assert_eq!(Day(-1).month().to_string(), "1969-12");
    }

    #[test]
    fn every_day_of_four_centuries_follows_the_one_before() {
        let mut previous = civil_from_days(-1);
        for days in 0..146_097 {
            let (y, m, d) = civil_from_days(days);
            let (py, pm, pd) = previous;
            let next_day = y == py && m == pm && d == pd + 1;
            let next_month = y == py && m == pm + 1 && d == 1;
            let next_year = y == py + 1 && m == 1 && pm == 12 && d == 1;
            assert!(next_day || next_month || next_year, "{previous:?} then {:?}", (y, m, d));
            previous = (y, m, d);
        }
    }
}
