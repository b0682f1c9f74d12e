//! RFC 3339 timestamps (`2025-06-01T12:00:00Z`), which Anthropic's reset
//! headers and Ollama's `created_at` use, without a date-time dependency.

use std::fmt;
use std::time::{Duration, SystemTime};

use serde::{Serialize, Serializer};

/// A UTC time written as RFC 3339, to the second or to the nanosecond.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rfc3339 {
    since_epoch: Duration,
    nanos: bool,
}

impl Rfc3339 {
    /// To the second, rounded up: a reset time is never earlier than the truth.
    pub fn seconds_ceil(time: SystemTime) -> Rfc3339 {
        let since = since_epoch(time);
        let secs = since.as_secs() + u64::from(since.subsec_nanos() > 0);
        Rfc3339 { since_epoch: Duration::from_secs(secs), nanos: false }
    }

    pub fn nanos(time: SystemTime) -> Rfc3339 {
        Rfc3339 { since_epoch: since_epoch(time), nanos: true }
    }
}

fn since_epoch(time: SystemTime) -> Duration {
    time.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default()
}

impl fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.since_epoch.as_secs();
        let (year, month, day) = civil_from_days(secs / 86_400);
        let (hour, minute, second) = (secs / 3600 % 24, secs / 60 % 60, secs % 60);
        write!(f, "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}")?;
        if self.nanos {
            write!(f, ".{:09}", self.since_epoch.subsec_nanos())?;
        }
        f.write_str("Z")
    }
}

impl Serialize for Rfc3339 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The year and month after the one `time` falls in.
pub(crate) fn next_month(time: SystemTime) -> (u64, u64) {
    let (year, month, _) = civil_from_days(since_epoch(time).as_secs() / 86_400);
    if month == 12 { (year + 1, 1) } else { (year, month + 1) }
}

/// Year, month and day of a day counted from 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for days on or after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 { shifted_month + 3 } else { shifted_month - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, nanos: u32) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::new(secs, nanos)
    }

    #[test]
    fn formats_known_instants() {
        assert_eq!(Rfc3339::seconds_ceil(at(0, 0)).to_string(), "1970-01-01T00:00:00Z");
        assert_eq!(Rfc3339::seconds_ceil(at(951_782_400, 1)).to_string(), "2000-02-29T00:00:01Z");
        assert_eq!(Rfc3339::nanos(at(1_735_689_599, 5)).to_string(), "2024-12-31T23:59:59.000000005Z");
        assert_eq!(next_month(at(1_735_689_599, 0)), (2025, 1));
    }
}
