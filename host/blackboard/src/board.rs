//! All tenants' boards: each tenant's [`Namespace`] made on first use, over
//! one backend and one clock.

use crate::metrics::BoardMetrics;
use crate::{Backend, BoardLimits, MemoryBackend, Namespace};
use paddock_core::{Clock, SystemClock};
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

/// All tenants' boards.
pub struct Blackboard {
    limits: BoardLimits,
    tenant_limits: HashMap<String, BoardLimits>,
    pub(crate) backend: Arc<dyn Backend>,
    clock: Arc<dyn Clock>,
    namespaces: RwLock<HashMap<String, Arc<Namespace>>>,
    metrics: BoardMetrics,
}

impl Default for Blackboard {
    fn default() -> Self {
        Blackboard::new(BoardLimits::default())
    }
}

impl std::fmt::Debug for Blackboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blackboard").field("limits", &self.limits).finish_non_exhaustive()
    }
}

impl Blackboard {
    /// An empty in-memory board with these limits per tenant.
    pub fn new(limits: BoardLimits) -> Self {
        Blackboard::with_backend(limits, Arc::new(MemoryBackend::default()))
    }

    /// A board kept by `backend`, on the system clock.
    pub fn with_backend(limits: BoardLimits, backend: Arc<dyn Backend>) -> Self {
        Blackboard {
            limits,
            tenant_limits: HashMap::new(),
            backend,
            clock: Arc::new(SystemClock),
            namespaces: RwLock::default(),
            metrics: BoardMetrics::default(),
        }
    }

    /// The same board reading `clock`'s wall time instead of the system
    /// clock's (tests pass a [`ManualClock`](paddock_core::ManualClock) they
    /// move by hand instead of sleeping).
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        Blackboard { clock, namespaces: RwLock::default(), ..self }
    }

    /// The same board with other limits for some tenants (their policy's).
    pub fn with_tenant_limits(self, tenant_limits: HashMap<String, BoardLimits>) -> Self {
        Blackboard { tenant_limits, ..self }
    }

    /// The limits of tenants with none of their own.
    pub fn limits(&self) -> BoardLimits {
        self.limits
    }

    /// The limits of `tenant`'s board.
    pub fn limits_of(&self, tenant: &str) -> BoardLimits {
        self.tenant_limits.get(tenant).copied().unwrap_or(self.limits)
    }

    /// The time on the board's clock.
    pub fn now(&self) -> SystemTime {
        self.clock.wall()
    }

    /// Operations by tenant and kind.
    pub fn metrics(&self) -> &BoardMetrics {
        &self.metrics
    }

    /// The board of `tenant`.
    pub fn namespace(&self, tenant: &str) -> Arc<Namespace> {
        if let Some(ns) = self.namespaces.read().get(tenant) {
            return ns.clone();
        }
        self.namespaces
            .write()
            .entry(tenant.to_string())
            .or_insert_with(|| {
                let limits = self.limits_of(tenant);
                let store = self.backend.open(tenant, limits);
                Arc::new(Namespace::new(tenant, limits, store, self.clock.clone(), self.metrics.of(tenant)))
            })
            .clone()
    }
}
