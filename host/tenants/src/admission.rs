//! Admission: caps on how many invocations run at once per tenant and per
//! agent of a tenant. A run waits its turn in FIFO order (tokio's semaphore is
//! fair), at most as long as its caller lets it (a request its timeout, a flow
//! step as long as it takes), then is refused naming the cap.
//!
//! A tenant without `budget.max-concurrent` still has a cap: its share of
//! the host's instance slots (half of `engine.max-instances`), so no tenant
//! can hold every slot and leave the others `503`. An agent called by another
//! (`agents.call`) takes a slot too, without waiting: a caller holding a slot
//! while waiting for its callee's could deadlock a tenant at its cap.
//!
//! When `[tenants]` names no tenant, every tenant is open and they all share
//! that one cap: a caller naming new tenants gets no more slots.

use super::TenantPolicy;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The concurrency caps of every tenant, created as tenants are first seen.
#[derive(Debug)]
pub struct Admission {
    /// By cap and size: a reload that changes a cap starts a new semaphore,
    /// and runs admitted under the old one finish holding its permits.
    caps: Mutex<HashMap<(String, u32), Arc<Semaphore>>>,
    /// The cap of a tenant that sets none.
    share: u32,
}

impl Default for Admission {
    /// No cap for tenants that set none.
    fn default() -> Self {
        Admission { caps: Mutex::default(), share: u32::MAX }
    }
}

/// The config key naming a tenant's default cap, in refusals.
pub const SHARE_KEY: &str = "half of engine.max-instances, the cap of a tenant without budget.max-concurrent";

/// The config key naming the cap the tenants `[tenants]` does not name share, in refusals.
pub const SHARED_KEY: &str = "half of engine.max-instances, the cap every tenant not named in [tenants] shares";

/// A run refused because a concurrency cap stayed full for as long as it
/// could wait.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{} is at its max-concurrent of {max} running invocations ({key} = {max}); none ended within {}",
    who(.tenant, .agent.as_deref()),
    paddock_core::Span(*.waited)
)]
pub struct AtCapacity {
    /// The tenant.
    pub tenant: String,
    /// The agent, when the cap is the agent's within its tenant.
    pub agent: Option<String>,
    /// The cap's config key.
    pub key: String,
    /// The cap.
    pub max: u32,
    /// How long the run waited.
    pub waited: Duration,
}

/// `tenant "acme"` or `agent "planner" of tenant "acme"`.
fn who(tenant: &str, agent: Option<&str>) -> String {
    match agent {
        Some(agent) => format!("agent {agent:?} of tenant {tenant:?}"),
        None => format!("tenant {tenant:?}"),
    }
}

/// Held while a run is admitted; dropping it lets the next one in.
#[derive(Debug)]
pub struct Admitted {
    _permits: Vec<OwnedSemaphorePermit>,
}

impl Admission {
    /// Admission where a tenant that sets no cap may run `share` invocations at once.
    pub fn with_share(share: u32) -> Self {
        Admission { share: share.max(1), ..Admission::default() }
    }

    fn semaphore(&self, key: String, size: u32) -> Arc<Semaphore> {
        self.caps.lock().entry((key, size)).or_insert_with(|| Arc::new(Semaphore::new(size as usize))).clone()
    }

    /// Admits one run of `agent` for `policy`'s tenant, waiting up to `wait`
    /// (as long as it takes for [`Duration::MAX`]).
    pub async fn admit(&self, policy: &TenantPolicy, agent: &str, wait: Duration) -> Result<Admitted, AtCapacity> {
        let deadline = tokio::time::Instant::now().checked_add(wait);
        let mut permits = Vec::new();
        // The agent's cap first: a run waiting for its agent holds no tenant slot.
        for (semaphore, full) in self.caps_of(policy, agent, wait) {
            let acquired = match deadline {
                Some(deadline) => tokio::time::timeout_at(deadline, semaphore.acquire_owned()).await.ok(),
                None => Some(semaphore.acquire_owned().await),
            };
            match acquired {
                Some(Ok(permit)) => permits.push(permit),
                Some(Err(_)) | None => return Err(full),
            }
        }
        Ok(Admitted { _permits: permits })
    }

    /// Admits one run of `agent` called by another agent of `policy`'s
    /// tenant, at once or not at all (see the module docs).
    pub fn admit_callee(&self, policy: &TenantPolicy, agent: &str) -> Result<Admitted, AtCapacity> {
        let mut permits = Vec::new();
        for (semaphore, full) in self.caps_of(policy, agent, Duration::ZERO) {
            permits.push(semaphore.try_acquire_owned().map_err(|_| full)?);
        }
        Ok(Admitted { _permits: permits })
    }

    /// The caps a run of `agent` for `policy`'s tenant takes a slot of, in
    /// order, each with its refusal.
    fn caps_of(&self, policy: &TenantPolicy, agent: &str, waited: Duration) -> Vec<(Arc<Semaphore>, AtCapacity)> {
        let tenant = &policy.name;
        let mut caps = Vec::new();
        if let Some(max) = policy.agent_budgets.get(agent).and_then(|b| b.max_concurrent) {
            let key = format!("tenants.{tenant}.agent-budgets.{agent}.max-concurrent");
            let full = AtCapacity { tenant: tenant.clone(), agent: Some(agent.to_string()), key, max, waited };
            caps.push((self.semaphore(format!("{tenant}\0{agent}"), max), full));
        }
        let (max, key) = match policy.max_concurrent {
            Some(max) => (max, format!("tenants.{tenant}.budget.max-concurrent")),
            None if policy.open => (self.share, SHARED_KEY.to_string()),
            None => (self.share, SHARE_KEY.to_string()),
        };
        if max < u32::MAX {
            let full = AtCapacity { tenant: tenant.clone(), agent: None, key, max, waited };
            let counted = paddock_core::names::bounds_key(tenant, !policy.open);
            caps.push((self.semaphore(counted.to_string(), max), full));
        }
        caps
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AgentBudget;

    fn policy() -> TenantPolicy {
        let mut p = TenantPolicy { open: false, max_concurrent: Some(2), ..TenantPolicy::open("acme") };
        p.agent_budgets.insert("slow".into(), AgentBudget { max_concurrent: Some(1), ..Default::default() });
        p
    }

    #[tokio::test]
    async fn a_tenant_at_its_cap_waits_then_is_refused_naming_the_cap() {
        let admission = Admission::default();
        let p = policy();
        let _a = admission.admit(&p, "x", Duration::ZERO).await.unwrap();
        let _b = admission.admit(&p, "y", Duration::ZERO).await.unwrap();
        let err = admission.admit(&p, "z", Duration::from_millis(5)).await.unwrap_err().to_string();
        assert_eq!(
            err,
            "tenant \"acme\" is at its max-concurrent of 2 running invocations (tenants.acme.budget.max-concurrent = 2); none ended within 5ms"
        );
    }

    #[tokio::test]
    async fn an_agent_cap_is_checked_within_its_tenant_and_frees_on_drop() {
        let admission = Admission::default();
        let p = policy();
        let first = admission.admit(&p, "slow", Duration::ZERO).await.unwrap();
        let err = admission.admit(&p, "slow", Duration::ZERO).await.unwrap_err().to_string();
        assert!(err.starts_with("agent \"slow\" of tenant \"acme\" is at its max-concurrent of 1"), "{err}");
        drop(first);
        assert!(admission.admit(&p, "slow", Duration::ZERO).await.is_ok());
    }

    #[tokio::test]
    async fn waiting_runs_are_admitted_in_arrival_order() {
        let admission = Arc::new(Admission::default());
        let p = Arc::new(TenantPolicy { open: false, max_concurrent: Some(1), ..TenantPolicy::open("acme") });
        let held = admission.admit(&p, "a", Duration::ZERO).await.unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..5 {
            let (admission, p, order) = (admission.clone(), p.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let _permit = admission.admit(&p, "a", Duration::from_secs(5)).await.unwrap();
                order.lock().push(i);
            }));
            // On the test's single thread, one yield lets the task queue up.
            tokio::task::yield_now().await;
        }
        drop(held);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock(), [0, 1, 2, 3, 4]);
    }

    #[tokio::test]
    async fn a_tenant_without_a_cap_holds_at_most_its_share_and_a_callee_never_waits() {
        let admission = Admission::with_share(2);
        let named = |name| TenantPolicy { open: false, ..TenantPolicy::open(name) };
        let p = named("mallory");
        let _a = admission.admit(&p, "x", Duration::ZERO).await.unwrap();
        let b = admission.admit(&p, "x", Duration::ZERO).await.unwrap();
        let err = admission.admit(&p, "x", Duration::from_millis(5)).await.unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "tenant \"mallory\" is at its max-concurrent of 2 running invocations ({SHARE_KEY} = 2); none ended within 5ms"
            )
        );
        assert!(admission.admit_callee(&p, "y").is_err(), "a callee is refused at once");
        let other = named("acme");
        assert!(admission.admit(&other, "x", Duration::ZERO).await.is_ok(), "another tenant has its own share");
        drop(b);
        assert!(admission.admit_callee(&p, "y").is_ok());
    }

    #[tokio::test]
    async fn tenants_not_named_in_config_share_one_cap_however_many_names_a_caller_uses() {
        let admission = Admission::with_share(2);
        let _a = admission.admit(&TenantPolicy::open("m1"), "x", Duration::ZERO).await.unwrap();
        let _b = admission.admit(&TenantPolicy::open("m2"), "x", Duration::ZERO).await.unwrap();
        let err = admission.admit(&TenantPolicy::open("m3"), "x", Duration::from_millis(5)).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "tenant \"m3\" is at its max-concurrent of 2 running invocations ({SHARED_KEY} = 2); none ended within 5ms"
            )
        );
        assert!(admission.admit_callee(&TenantPolicy::open("m4"), "y").is_err());
    }
}
