//! Time as the services see it. Breakers, cool-downs, headroom, budget windows
//! and blackboard expiry read a [`Clock`], so tests move time forward instead
//! of sleeping.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// A source of the current time.
pub trait Clock: Send + Sync + Debug {
    /// Monotonic now.
    fn now(&self) -> Instant;
    /// Wall-clock now (for providers that give reset times as dates).
    fn wall(&self) -> SystemTime;
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that stands still until a test advances it.
#[derive(Debug)]
pub struct ManualClock {
    start: Instant,
    wall_start: SystemTime,
    offset_nanos: AtomicU64,
}

impl ManualClock {
    /// A clock reading the real time now, frozen there.
    pub fn new() -> Arc<Self> {
        ManualClock::starting_at(SystemTime::now())
    }

    /// A clock whose wall time stands at `wall` (a test's chosen date, so
    /// calendar windows and expiry times are known in advance).
    pub fn starting_at(wall: SystemTime) -> Arc<Self> {
        Arc::new(ManualClock { start: Instant::now(), wall_start: wall, offset_nanos: AtomicU64::new(0) })
    }

    /// Moves time forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.offset_nanos.fetch_add(by.as_nanos() as u64, Ordering::SeqCst);
    }

    fn offset(&self) -> Duration {
        Duration::from_nanos(self.offset_nanos.load(Ordering::SeqCst))
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.start + self.offset()
    }
    fn wall(&self) -> SystemTime {
        self.wall_start + self.offset()
    }
}
