//! Per-minute rates (requests and tokens) by GCRA, the generic cell rate
//! algorithm: one "theoretical arrival time" (TAT) per scope and rate.
//!
//! A budget of `r` per minute lets a scope spend the whole minute's `r` at
//! once, then refills evenly: each cell pushes the TAT `60 s / r` further,
//! and a call conforms while the TAT it would leave stays within a minute of
//! now.
//!
//! Why not the `governor` crate: tokens are taken from an *estimate* before
//! the call and settled once the provider says what was really used, so the
//! limiter must accept a refund (actual < estimate) and a debt (actual >
//! estimate) after the fact. governor only ever takes cells, and a cell
//! taken can neither be given back nor added later; a TAT of our own is a
//! number we can move either way.

use std::time::Duration;

const MINUTE_NANOS: u128 = 60_000_000_000;

/// Why a call does not conform to a rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RateRefusal {
    /// It would conform after this wait.
    RetryIn(Duration),
    /// It asks for more cells than the rate allows in a whole minute.
    NeverFits,
}

/// The state of one rate: its theoretical arrival time, in nanoseconds
/// since the ledger's epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Gcra {
    tat: u64,
}

impl Gcra {
    /// The TAT this rate would have after taking `cells` at `now`, if that
    /// conforms to `per_minute`. Takes nothing: pass the result to
    /// [`Gcra::take`] once every other check has passed too.
    pub(crate) fn check(&self, now: u64, cells: u64, per_minute: u64) -> Result<u64, RateRefusal> {
        if cells > per_minute {
            return Err(RateRefusal::NeverFits);
        }
        let tat = self.tat.max(now).saturating_add(span(cells, per_minute));
        let allowed = now.saturating_add(MINUTE_NANOS as u64);
        if tat <= allowed {
            Ok(tat)
        } else {
            // Whole milliseconds, rounded up, so that a retry after the wait conforms.
            let wait = (tat - allowed).div_ceil(1_000_000);
            Err(RateRefusal::RetryIn(Duration::from_millis(wait)))
        }
    }

    /// Takes what [`Gcra::check`] allowed.
    pub(crate) fn take(&mut self, tat: u64) {
        self.tat = tat;
    }

    /// Settles a call that took an estimate: `cells` more than it took (a
    /// debt, pushing the TAT later) or, when negative, fewer (a refund).
    ///
    /// A refund forgives at most what the bucket still holds: a call that
    /// ran longer than the bucket takes to drain has had its cells leak out
    /// already, and its refund then also forgives cells others took since —
    /// never more than the refund itself. Exactness would need the time of
    /// each reservation, which the gateway's `Reservation` does not carry.
    pub(crate) fn settle(&mut self, cells: i64, per_minute: u64) {
        let by = span(cells.unsigned_abs(), per_minute);
        self.tat = if cells >= 0 { self.tat.saturating_add(by) } else { self.tat.saturating_sub(by) };
    }
}

/// The time `cells` occupy at `per_minute`.
fn span(cells: u64, per_minute: u64) -> u64 {
    if per_minute == 0 {
        return 0;
    }
    let nanos = u128::from(cells) * MINUTE_NANOS / u128::from(per_minute);
    u64::try_from(nanos).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    #[test]
    fn a_whole_minute_may_be_spent_at_once_then_refills_evenly() {
        let mut g = Gcra::default();
        let now = 100 * SECOND;
        for _ in 0..60 {
            let tat = g.check(now, 1, 60).unwrap();
            g.take(tat);
        }
        assert_eq!(g.check(now, 1, 60), Err(RateRefusal::RetryIn(Duration::from_millis(1000))));
        assert_eq!(g.check(now + SECOND / 4, 1, 60), Err(RateRefusal::RetryIn(Duration::from_millis(750))));
        assert!(g.check(now + SECOND, 1, 60).is_ok());
    }

    #[test]
    fn check_takes_nothing() {
        let g = Gcra::default();
        assert!(g.check(0, 60, 60).is_ok());
        assert!(g.check(0, 60, 60).is_ok());
        assert_eq!(g, Gcra::default());
    }

    #[test]
    fn more_cells_than_a_minute_holds_never_fit() {
        let g = Gcra::default();
        assert_eq!(g.check(0, 1001, 1000), Err(RateRefusal::NeverFits));
        assert_eq!(g.check(0, 1, 0), Err(RateRefusal::NeverFits));
        assert!(g.check(0, 0, 0).is_ok());
    }

    #[test]
    fn a_refund_gives_back_what_the_estimate_took_beyond_actual_use() {
        let mut g = Gcra::default();
        let now = 10 * SECOND;
        g.take(g.check(now, 1000, 1000).unwrap());
        // 1 token costs 60 ms at 1000 per minute.
        assert_eq!(g.check(now, 1, 1000), Err(RateRefusal::RetryIn(Duration::from_millis(60))));
        g.settle(100 - 1000, 1000);
        g.take(g.check(now, 900, 1000).unwrap());
        assert_eq!(g.check(now, 1, 1000), Err(RateRefusal::RetryIn(Duration::from_millis(60))));
    }

    #[test]
    fn a_debt_pushes_later_calls_back_by_what_was_used_beyond_the_estimate() {
        let mut g = Gcra::default();
        let now = 10 * SECOND;
        g.take(g.check(now, 100, 1000).unwrap());
        g.settle(1000 - 100, 1000);
        // The bucket holds 1000 cells; 100 more are 6 s beyond a minute.
        assert_eq!(g.check(now, 100, 1000), Err(RateRefusal::RetryIn(Duration::from_millis(6000))));
        assert!(g.check(now + 6 * SECOND, 100, 1000).is_ok());
    }
}
