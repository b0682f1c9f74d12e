//! Tool calls per minute, per tenant (`tenants.NAME.budget.tool-calls-per-minute`),
//! counted in this process, as the gateway's request rates are.

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

/// Each tenant's rate of tool calls.
#[derive(Default)]
pub struct Rates {
    /// By tenant: the rate set when its limiter was made, and the limiter.
    limiters: parking_lot::Mutex<HashMap<String, (u32, Arc<DefaultDirectRateLimiter>)>>,
}

impl Rates {
    /// Counts one call of `tenant` under `per_minute` calls a minute, or says
    /// how long until one is allowed. A tenant without a rate is not counted,
    /// so only configured tenants hold a limiter; a changed rate starts afresh.
    pub fn admit(&self, tenant: &str, per_minute: Option<u32>) -> Result<(), Duration> {
        let Some(rate) = per_minute.and_then(NonZeroU32::new) else { return Ok(()) };
        let limiter = {
            let mut limiters = self.limiters.lock();
            match limiters.get(tenant) {
                Some((set, limiter)) if *set == rate.get() => limiter.clone(),
                _ => {
                    let limiter = Arc::new(RateLimiter::direct(Quota::per_minute(rate)));
                    limiters.insert(tenant.to_string(), (rate.get(), limiter.clone()));
                    limiter
                }
            }
        };
        limiter.check().map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_past_its_rate_waits_and_others_do_not() {
        let rates = Rates::default();
        assert_eq!((rates.admit("a", Some(2)), rates.admit("a", Some(2))), (Ok(()), Ok(())));
        let wait = rates.admit("a", Some(2)).unwrap_err();
        assert!(wait > Duration::from_secs(20) && wait <= Duration::from_secs(30), "{wait:?}");
        assert_eq!(rates.admit("b", Some(2)), Ok(()));
        assert_eq!(rates.admit("a", None), Ok(()), "no rate, no count");
        assert_eq!(rates.admit("a", Some(3)), Ok(()), "a new rate starts afresh");
    }
}
