//! One loaded version of an agent: compiled, checked, pre-instantiated, with
//! its id, its limits and what it asks for.

use crate::caps::AgentWorldPre;
use crate::plugins::Manifest;
use crate::plugins::cache::{Compiled, ContentHash};
use crate::sandbox::AgentState;
use arc_swap::ArcSwap;
use paddock_config::Settings;
use paddock_core::Capabilities;
use paddock_core::Limits;
use paddock_tenants::{self as tenants, Grants, TenantPolicy};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

/// A loaded version of an agent, ready to be instantiated any number of times.
///
/// Invocations hold it by `Arc`, so a version replaced by a hot reload keeps
/// serving the invocations that started on it until the last one ends.
pub struct Agent {
    /// Its name (from the manifest, or the file stem of a bare `.wasm`).
    pub name: Arc<str>,
    /// Its version id: the manifest's version and the first 12 hex digits of
    /// a BLAKE3 hash of the component and the manifest together
    /// (`0.1.0+3fa2c9d1e0b4`, [`Manifest::version_id`]); the component's hash
    /// alone for a bare component.
    pub version: Arc<str>,
    /// The hash of its component's bytes alone: what its compiled code is
    /// cached by, so a manifest-only change compiles nothing.
    pub hash: ContentHash,
    /// Its manifest, unless it was loaded as a bare file.
    pub manifest: Option<Manifest>,
    /// The component file.
    pub component: PathBuf,
    /// Its limits: the defaults, with what its manifest asked for up to the ceiling.
    pub limits: Limits,
    /// Notes from loading (e.g. a limit cut down to the ceiling).
    pub notes: Vec<String>,
    /// What it asks for: its manifest's capabilities (a bare component asks
    /// for its tenant's board and nothing else).
    pub requested: Arc<Capabilities>,
    /// When it was loaded.
    pub loaded_at: SystemTime,
    pub(super) invocations: AtomicU64,
    /// What each tenant granted it, computed once per tenant policy: a
    /// reload that changes the policy makes a new one, which misses here.
    grants: Mutex<HashMap<Arc<str>, Granted>>,
    /// Its code, ready to instantiate. On a tiered host, Winch's code is
    /// replaced by Cranelift's once compiled (`runtime::tiers`); each
    /// invocation takes the code once and keeps it to its end.
    code: ArcSwap<Code>,
}

/// The code of a version: pre-instantiated, and how it was compiled.
pub struct Code {
    /// Ready to instantiate (on the engine that compiled it).
    pub pre: AgentWorldPre<AgentState>,
    /// Compiled now, mapped from the cache, or baseline code serving until
    /// the optimized code is ready.
    pub compiled: Compiled,
}

/// The limits of an agent with `manifest` under `settings`: the defaults,
/// with what the manifest asks for up to the ceiling, and a note for each
/// request cut down.
pub(super) fn limits_for(settings: &Settings, manifest: Option<&Manifest>) -> (Limits, Vec<String>) {
    let requested = manifest.map(|m| m.limits).unwrap_or_default();
    settings.limits.with_request(&settings.ceiling, &requested)
}

/// A tenant policy and what it grants the agent.
type Granted = (Arc<TenantPolicy>, Arc<Grants>);

/// The parts of an [`Agent`] decided before it is built.
pub(super) struct AgentParts {
    pub name: Arc<str>,
    pub hash: ContentHash,
    pub manifest: Option<Manifest>,
    pub component: PathBuf,
    pub limits: Limits,
    pub notes: Vec<String>,
    pub code: Code,
}

impl Agent {
    pub(super) fn new(p: AgentParts) -> Agent {
        let version = match &p.manifest {
            Some(m) => m.version_id(&p.hash),
            None => p.hash.short(),
        };
        let requested = Arc::new(p.manifest.as_ref().map(|m| m.capabilities.clone()).unwrap_or_default());
        Agent {
            name: p.name,
            version: Arc::from(version),
            hash: p.hash,
            manifest: p.manifest,
            component: p.component,
            limits: p.limits,
            notes: p.notes,
            requested,
            loaded_at: SystemTime::now(),
            invocations: AtomicU64::new(0),
            grants: Mutex::default(),
            code: ArcSwap::from_pointee(p.code),
        }
    }

    /// Its code now: what an invocation starting now runs.
    pub fn code(&self) -> Arc<Code> {
        self.code.load_full()
    }

    /// How its code now was compiled.
    pub fn compiled(&self) -> Compiled {
        self.code.load().compiled
    }

    /// Serves `code` from now on, for the same version; invocations
    /// running keep the code they started with.
    pub(super) fn swap_code(&self, code: Code) {
        self.code.store(Arc::new(code));
    }

    /// What `policy` grants this agent (cached per tenant policy).
    pub fn grants(&self, policy: &Arc<TenantPolicy>) -> Arc<Grants> {
        if let Some((_, g)) = self.grants.lock().get(policy.name.as_str()).filter(|(p, _)| Arc::ptr_eq(p, policy)) {
            return g.clone();
        }
        let grants = tenants::resolve(policy, &self.requested);
        for r in grants.refused.iter() {
            tracing::info!(agent = &*self.name, tenant = %policy.name, capability = %r.capability, "not granted: {}", r.reason);
        }
        let grants = Arc::new(grants);
        self.grants.lock().insert(Arc::from(policy.name.as_str()), (policy.clone(), grants.clone()));
        grants
    }

    /// Its limits under `settings`, which a reload may have changed since it
    /// loaded: the defaults, with what its manifest asks for up to the ceiling.
    pub fn limits_under(&self, settings: &Settings) -> Limits {
        limits_for(settings, self.manifest.as_ref()).0
    }

    /// Invocations started on this version.
    pub fn invocations(&self) -> u64 {
        self.invocations.load(Ordering::Relaxed)
    }
}
