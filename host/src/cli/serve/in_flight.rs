//! Requests being answered, counted per tenant and per API key, each count
//! under its cap (`serve.concurrent-per-tenant`, `serve.concurrent-per-key`):
//! a tenant that holds its share of the host with slow or long requests gets
//! 429 for the next one, and every other tenant is answered as before.

use crate::core::names::UNNAMED_WHO;
use crate::keys::Caller;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;

/// The counts, and the caps (0: none).
pub struct InFlight {
    per_tenant: u32,
    per_key: u32,
    counts: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    tenants: HashMap<Arc<str>, u32>,
    keys: HashMap<Arc<str>, u32>,
}

/// One request counted until it is dropped.
pub struct Held {
    of: Arc<InFlight>,
    tenant: Arc<str>,
    key: Option<Arc<str>>,
}

impl InFlight {
    /// Counts under `per_tenant` and `per_key` requests at once (0: no cap).
    pub fn new(per_tenant: u32, per_key: u32) -> Arc<InFlight> {
        Arc::new(InFlight { per_tenant, per_key, counts: Mutex::default() })
    }

    /// Counts a request of `caller`, its tenant's under `counted` (its own
    /// name, or the key every unnamed tenant shares), or says which cap it
    /// would pass.
    pub fn hold(self: &Arc<Self>, caller: &Caller, counted: &Arc<str>) -> Result<Held, String> {
        let mut counts = self.counts.lock();
        let tenant_now = counts.tenants.get(counted).copied().unwrap_or(0);
        if self.per_tenant > 0 && tenant_now >= self.per_tenant {
            let (who, shared) = match **counted == *caller.tenant {
                true => (format!("tenant {}", caller.tenant), ""),
                false => (format!("tenant {} ({UNNAMED_WHO}, together)", caller.tenant), ", which they share"),
            };
            return Err(format!(
                "{who} has {tenant_now} requests in flight, serve.concurrent-per-tenant ({}){shared}; retry when one ends",
                self.per_tenant
            ));
        }
        // A development host's callers have no key.
        let key = (!caller.key.is_empty()).then(|| caller.key.clone());
        if let Some(key) = &key {
            let key_now = counts.keys.get(key).copied().unwrap_or(0);
            if self.per_key > 0 && key_now >= self.per_key {
                return Err(format!(
                    "API key {key} has {key_now} requests in flight, serve.concurrent-per-key ({}); retry when one ends",
                    self.per_key
                ));
            }
            *counts.keys.entry(key.clone()).or_default() += 1;
        }
        *counts.tenants.entry(counted.clone()).or_default() += 1;
        Ok(Held { of: self.clone(), tenant: counted.clone(), key })
    }
}

/// Takes one off `name`'s count, forgetting it at zero (so the maps hold
/// only who has requests in flight).
fn release(counts: &mut HashMap<Arc<str>, u32>, name: &Arc<str>) {
    if let Some(n) = counts.get_mut(name) {
        *n -= 1;
        if *n == 0 {
            counts.remove(name);
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut counts = self.of.counts.lock();
        release(&mut counts.tenants, &self.tenant);
        if let Some(key) = &self.key {
            release(&mut counts.keys, key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Role;

    fn caller(tenant: &str, key: &str) -> Caller {
        Caller { tenant: tenant.into(), role: Role::Run, key: key.into() }
    }

    /// Holds a request of `tenant` with `key`, its tenant counted by name.
    fn hold(in_flight: &Arc<InFlight>, tenant: &str, key: &str) -> Result<Held, String> {
        in_flight.hold(&caller(tenant, key), &tenant.into())
    }

    #[test]
    fn each_tenant_and_key_is_held_to_its_own_cap_and_a_finished_request_frees_its_place() {
        let in_flight = InFlight::new(3, 2);
        let first = hold(&in_flight, "a", "k1").unwrap();
        let _second = hold(&in_flight, "a", "k1").unwrap();
        assert_eq!(
            hold(&in_flight, "a", "k1").err().unwrap(),
            "API key k1 has 2 requests in flight, serve.concurrent-per-key (2); retry when one ends"
        );
        let _third = hold(&in_flight, "a", "k2").unwrap();
        assert_eq!(
            hold(&in_flight, "a", "k3").err().unwrap(),
            "tenant a has 3 requests in flight, serve.concurrent-per-tenant (3); retry when one ends"
        );
        let _other = hold(&in_flight, "b", "k9").unwrap();
        drop(first);
        assert!(hold(&in_flight, "a", "k1").is_ok(), "a finished request frees its place");
        assert_eq!(in_flight.counts.lock().tenants.len(), 2);
    }

    #[test]
    fn zero_means_no_cap() {
        let in_flight = InFlight::new(0, 0);
        let held: Vec<Held> = (0..1000).map(|_| hold(&in_flight, "a", "k").unwrap()).collect();
        drop(held);
        assert!(in_flight.counts.lock().tenants.is_empty() && in_flight.counts.lock().keys.is_empty());
    }

    #[test]
    fn tenants_counted_under_one_key_share_its_cap() {
        let in_flight = InFlight::new(2, 0);
        let shared: Arc<str> = crate::core::names::UNNAMED.into();
        let _a = in_flight.hold(&caller("m1", ""), &shared).unwrap();
        let _b = in_flight.hold(&caller("m2", ""), &shared).unwrap();
        assert_eq!(
            in_flight.hold(&caller("m3", ""), &shared).err().unwrap(),
            "tenant m3 (every tenant not named in [tenants], together) has 2 requests in flight, serve.concurrent-per-tenant (2), which they share; retry when one ends"
        );
        assert!(hold(&in_flight, "named", "").is_ok(), "a tenant counted by its own name has its own cap");
    }
}
