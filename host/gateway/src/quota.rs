//! The budget hook: a call reserves what it may spend before any provider
//! sees it, and commits what it really spent afterwards. The ledger that
//! enforces budgets plugs in here; without one, calls are unmetered.

use super::types::Tokens;
use std::sync::Arc;
use std::time::Duration;

/// Who is calling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The tenant.
    pub tenant: Arc<str>,
    /// The agent.
    pub agent: Arc<str>,
}

/// What a call is expected to spend at most.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Estimate {
    /// Prompt tokens (estimated from its size).
    pub input_tokens: u32,
    /// Output tokens (max-tokens, or the route's default).
    pub output_tokens: u32,
    /// Cost at the dearest target of the route, in micro-dollars.
    pub cost_micros: u64,
}

/// What one call did, recorded once it ends.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CallRecord {
    /// The tenant.
    pub tenant: Arc<str>,
    /// The agent.
    pub agent: Arc<str>,
    /// The route.
    pub route: Arc<str>,
    /// The provider that answered (or was tried last).
    pub provider: String,
    /// Its model.
    pub model: String,
    /// Provider attempts made.
    pub attempts: u32,
    /// From the request to the answer (or the end of the stream).
    #[serde(with = "millis")]
    pub latency: Duration,
    /// Tokens the provider reported (zero when a call failed before any).
    pub tokens: Tokens,
    /// Cost by the price table.
    pub cost_micros: u64,
    /// `ok`, or the failure's kind.
    pub outcome: String,
    /// Whether the answer was streamed.
    pub streamed: bool,
}

mod millis {
    pub fn serialize<S: serde::Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64() * 1000.0)
    }
}

/// A budget reservation, handed back to [`Quota::commit`].
#[derive(Debug)]
pub struct Reservation {
    /// What was reserved.
    pub estimate: Estimate,
}

/// Budgets: reserve before a call, commit after.
pub trait Quota: Send + Sync {
    /// Reserves `estimate` for `caller` on `route`, or refuses with a message
    /// naming the tenant or agent, the budget and its window.
    fn reserve(&self, caller: &Caller, route: &str, estimate: Estimate) -> Result<Reservation, String>;
    /// Replaces the reservation with what the call really used.
    fn commit(&self, reservation: Reservation, record: &CallRecord);
}

/// No budgets: every reservation succeeds.
#[derive(Debug, Default)]
pub struct Unmetered;

impl Quota for Unmetered {
    fn reserve(&self, _: &Caller, _: &str, estimate: Estimate) -> Result<Reservation, String> {
        Ok(Reservation { estimate })
    }
    fn commit(&self, _: Reservation, _: &CallRecord) {}
}
