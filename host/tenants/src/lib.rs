//! Tenants: who may run which agents, with which capabilities, under which
//! ceilings and budgets.
//!
//! An agent's manifest *requests* capabilities; the tenant's policy *grants* a
//! subset; [`resolve`] computes what an invocation of that agent for that
//! tenant may do, and what was refused and why. The host checks every host
//! call against the result. With no `[tenants]` configured there is one open
//! tenant policy that grants whatever a manifest asks for (the embedded
//! defaults and single-user setups); once any tenant is configured, only the
//! configured ones exist and each grants only what it lists.

mod admission;
mod denied;

pub use admission::{Admission, Admitted, AtCapacity};
pub use denied::Denied;

use paddock_core::Capabilities;
use paddock_core::{DirGrant, Limits};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// A set of names granted by policy: every name, or exactly these.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NameGrant {
    /// Every name (`"*"` in the config).
    Any,
    /// Only these.
    Only(Vec<String>),
}

impl NameGrant {
    /// Whether `name` is granted.
    pub fn allows(&self, name: &str) -> bool {
        match self {
            NameGrant::Any => true,
            NameGrant::Only(names) => names.iter().any(|n| n == name),
        }
    }

    /// The grant as the config writes it, for messages.
    pub fn describe(&self) -> String {
        match self {
            NameGrant::Any => "*".into(),
            NameGrant::Only(names) => names.join(", "),
        }
    }
}

/// Ceilings a tenant puts on its invocations, below the host's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TenantCeiling {
    /// Most fuel per invocation.
    pub fuel: Option<u64>,
    /// Most memory per invocation, in bytes.
    pub memory: Option<u64>,
    /// Longest invocation.
    pub timeout: Option<std::time::Duration>,
}

impl TenantCeiling {
    /// The host ceiling lowered by this one.
    pub fn apply(&self, host: &Limits) -> Limits {
        Limits {
            fuel: self.fuel.map_or(host.fuel, |f| f.min(host.fuel)),
            memory: self.memory.map_or(host.memory, |m| m.min(host.memory)),
            timeout: self.timeout.map_or(host.timeout, |t| t.min(host.timeout)),
        }
    }
}

/// Budgets and caps on the agents of one tenant beyond the tenant's own.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AgentBudget {
    /// Token, cost and rate budgets.
    pub budget: paddock_quota::Budget,
    /// Most invocations of this agent running at once for the tenant.
    pub max_concurrent: Option<u32>,
}

/// What one tenant may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantPolicy {
    /// Its name.
    pub name: String,
    /// Whether this is the open policy used when no tenant is configured.
    pub open: bool,
    /// Agents it may run (and its agents may call).
    pub agents: NameGrant,
    /// LLM routes its agents may use.
    pub routes: NameGrant,
    /// Blackboard prefixes its agents may read ("" = every key).
    pub read: Vec<String>,
    /// Blackboard prefixes its agents may write (writing implies reading).
    pub write: Vec<String>,
    /// Whether its agents may ask for approvals.
    pub approvals: bool,
    /// Directories lent to its agents that ask for them (by guest path).
    pub dirs: Vec<DirGrant>,
    /// Tools its agents may call, as patterns (`server/tool`, `server/*`;
    /// `Any` is `"*"`, every tool of every server).
    pub tools: NameGrant,
    /// Tool calls its agents may make per minute, on this host.
    pub tool_calls_per_minute: Option<u32>,
    /// Hosts its agents may send HTTP requests to, as patterns
    /// (`paddock_core::hosts`; `Any` is `"*"`, every host).
    pub http: NameGrant,
    /// Hosts that may resolve to a loopback, private or link-local address
    /// (an IP address its `http` grant names exactly may be reached anyway).
    pub http_private: Vec<String>,
    /// Its ceiling on per-invocation limits.
    pub ceiling: TenantCeiling,
    /// Its blackboard's key count limit, if lower than the host's.
    pub board_max_keys: Option<u64>,
    /// Its blackboard's byte limit, if lower than the host's.
    pub board_max_bytes: Option<u64>,
    /// Its token, cost and rate budgets.
    pub budget: paddock_quota::Budget,
    /// Most invocations running at once for it.
    pub max_concurrent: Option<u32>,
    /// Fuel its invocations may burn per minute, shared by all of them.
    pub fuel_per_minute: Option<u64>,
    /// Per-agent budgets and caps.
    pub agent_budgets: BTreeMap<String, AgentBudget>,
}

impl TenantPolicy {
    /// The policy of `name` when no tenant is configured: grants whatever a
    /// manifest asks for, with no budgets.
    pub fn open(name: &str) -> Self {
        TenantPolicy {
            name: name.to_string(),
            open: true,
            agents: NameGrant::Any,
            routes: NameGrant::Any,
            read: vec![String::new()],
            write: vec![String::new()],
            approvals: true,
            dirs: Vec::new(),
            tools: NameGrant::Any,
            tool_calls_per_minute: None,
            http: NameGrant::Any,
            http_private: Vec::new(),
            ceiling: TenantCeiling::default(),
            board_max_keys: None,
            board_max_bytes: None,
            budget: paddock_quota::Budget::default(),
            max_concurrent: None,
            fuel_per_minute: None,
            agent_budgets: BTreeMap::new(),
        }
    }

    /// The config key of this tenant's `field`, for messages.
    pub fn key(&self, field: &str) -> String {
        if self.open {
            format!("(no [tenants] configured: {field} is open)")
        } else {
            format!("tenants.{}.{field}", self.name)
        }
    }

    /// Refuses `agent` unless this tenant may run it.
    pub fn check_agent(&self, agent: &str) -> Result<(), Denied> {
        if self.agents.allows(agent) {
            return Ok(());
        }
        Err(Denied::Agent {
            agent: agent.to_string(),
            tenant: self.name.clone(),
            key: self.key("agents"),
            granted: self.agents.describe(),
        })
    }
}

/// Most open policies kept for reuse.
const OPEN_CACHED: usize = 4096;

/// Every tenant of a host.
#[derive(Clone, Debug)]
pub struct Tenants {
    configured: BTreeMap<String, Arc<TenantPolicy>>,
    /// Open policies handed out so far, so a run does not build one each time.
    open: Arc<parking_lot::Mutex<HashMap<String, Arc<TenantPolicy>>>>,
}

/// Equal when the configured tenants are: the open policies are a cache.
impl PartialEq for Tenants {
    fn eq(&self, other: &Self) -> bool {
        self.configured == other.configured
    }
}

impl Tenants {
    /// The configured tenants; empty means one open policy per tenant name.
    pub fn new(policies: impl IntoIterator<Item = TenantPolicy>) -> Self {
        Tenants {
            configured: policies.into_iter().map(|p| (p.name.clone(), Arc::new(p))).collect(),
            open: Arc::default(),
        }
    }

    /// Whether any tenant is configured.
    pub fn configured(&self) -> bool {
        !self.configured.is_empty()
    }

    /// The key `tenant`'s bounds are counted under: its own name when it is
    /// configured, else the one all unnamed tenants share
    /// ([`UNNAMED`](paddock_core::names::UNNAMED)).
    pub fn bounds_key<'a>(&self, tenant: &'a str) -> &'a str {
        paddock_core::names::bounds_key(tenant, self.configured.contains_key(tenant))
    }

    /// The configured policies, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<TenantPolicy>> {
        self.configured.values()
    }

    /// The policy of `tenant`, or [`Denied::UnknownTenant`] when it is not configured.
    pub fn get(&self, tenant: &str) -> Result<Arc<TenantPolicy>, Denied> {
        if self.configured.is_empty() {
            let mut open = self.open.lock();
            if let Some(p) = open.get(tenant) {
                return Ok(p.clone());
            }
            let policy = Arc::new(TenantPolicy::open(tenant));
            // A caller naming ever new tenants must not grow the cache without end.
            if open.len() < OPEN_CACHED {
                open.insert(tenant.to_string(), policy.clone());
            }
            return Ok(policy);
        }
        self.configured.get(tenant).cloned().ok_or_else(|| Denied::UnknownTenant {
            tenant: tenant.to_string(),
            configured: self.configured.keys().cloned().collect(),
        })
    }
}

/// What one agent may do for one tenant: what its manifest asked for and
/// the tenant granted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grants {
    /// LLM routes.
    pub routes: Arc<[String]>,
    /// Agents it may call.
    pub agents: Arc<[String]>,
    /// Blackboard prefixes it may read.
    pub read: Arc<[String]>,
    /// Blackboard prefixes it may write.
    pub write: Arc<[String]>,
    /// Whether it may ask for approvals.
    pub approvals: bool,
    /// Directories the tenant lends it.
    pub dirs: Vec<DirGrant>,
    /// Tools it may call, as patterns (`server/tool`, `server/*`).
    pub tools: Arc<[String]>,
    /// Hosts it may send HTTP requests to, as patterns.
    pub http: Arc<[String]>,
    /// What its tenant lets reach non-public addresses: the hosts of its
    /// `http-private`, and the IP addresses its `http` grant names.
    pub http_private: Arc<[String]>,
    /// What it asked for and was not granted, with why.
    pub refused: Arc<[Refusal]>,
}

impl Grants {
    /// Why `capability` (e.g. `route "smart"`) was refused, if it was asked for.
    pub fn refusal(&self, capability: &str) -> Option<&Refusal> {
        self.refused.iter().find(|r| r.capability == capability)
    }

    /// The `denied` text for `capability` not granted to `agent` for
    /// `tenant`: the tenant's rule when the agent asked for it, else the
    /// manifest key it would have to ask in (`asked` lists what it did ask for).
    pub fn denial(&self, capability: &str, agent: &str, tenant: &str, manifest_key: &str, asked: &[String]) -> String {
        match self.refusal(capability) {
            Some(r) => format!("{capability} is not granted to agent {agent:?} by tenant {tenant:?}: {}", r.reason),
            None => {
                let asked = if asked.is_empty() { "none".to_string() } else { asked.join(", ") };
                format!("{capability} is not granted to agent {agent:?} (its manifest's {manifest_key}: {asked})")
            }
        }
    }

    /// Whether an HTTP request to `host` (normalized) on `port` is granted.
    pub fn allows_host(&self, host: &str, port: u16) -> bool {
        self.http.iter().any(|p| paddock_core::hosts::matches(p, host, port))
    }

    /// The `denied` text for a request to `host` on `port`, not granted to
    /// `agent` for `tenant` (`asked`: the manifest's `capabilities.http`).
    pub fn host_denial(&self, host: &str, port: u16, agent: &str, tenant: &str, asked: &[String]) -> String {
        let names = |p: &str| paddock_core::hosts::matches(p, host, port);
        self.pattern_denial(
            &format!("host \"{host}:{port}\""),
            ("host", "capabilities.http"),
            names,
            (agent, tenant),
            asked,
        )
    }

    /// Whether the tool `name` (`server/tool`) is granted.
    pub fn allows_tool(&self, name: &str) -> bool {
        self.tools.iter().any(|p| paddock_core::tools::matches(p, name))
    }

    /// The `denied` text for the tool `name`, not granted to `agent` for
    /// `tenant` (`asked`: the manifest's `capabilities.tools`).
    pub fn tool_denial(&self, name: &str, agent: &str, tenant: &str, asked: &[String]) -> String {
        let names = |p: &str| paddock_core::tools::matches(p, name);
        self.pattern_denial(&format!("tool {name:?}"), ("tool", "capabilities.tools"), names, (agent, tenant), asked)
    }

    /// The `denied` text for `capability`, granted by patterns of `kind`: the
    /// tenant's rule when a pattern the manifest asked for (`asked`) `names`
    /// it and was refused, else the manifest key to ask in.
    fn pattern_denial(
        &self,
        capability: &str,
        (kind, manifest_key): (&str, &str),
        names: impl Fn(&str) -> bool,
        (agent, tenant): (&str, &str),
        asked: &[String],
    ) -> String {
        let refused = asked.iter().filter(|p| names(p)).find_map(|p| self.refusal(&format!("{kind} {p:?}")));
        match refused {
            Some(r) => format!("{capability} is not granted to agent {agent:?} by tenant {tenant:?}: {}", r.reason),
            None => self.denial(capability, agent, tenant, manifest_key, asked),
        }
    }
}

/// A blackboard access to check against the granted prefixes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoardAccess<'a> {
    /// get of one key.
    Read(&'a str),
    /// list or watch of a prefix.
    ReadPrefix(&'a str),
    /// put, compare-and-swap or delete of one key.
    Write(&'a str),
}

impl Grants {
    /// Refuses a blackboard access outside the granted prefixes, naming the
    /// key or prefix, the agent, the tenant and what is granted.
    pub fn check_board(&self, access: BoardAccess<'_>, agent: &str, tenant: &str) -> Result<(), Denied> {
        let (kind, key, granted) = match access {
            BoardAccess::Read(k) | BoardAccess::ReadPrefix(k) => ("read", k, &self.read),
            BoardAccess::Write(k) => ("write", k, &self.write),
        };
        if covered(key, granted) {
            return Ok(());
        }
        Err(Denied::Board {
            kind,
            key: key.to_string(),
            prefix: matches!(access, BoardAccess::ReadPrefix(_)),
            agent: agent.to_string(),
            tenant: tenant.to_string(),
            granted: granted.to_vec(),
        })
    }
}

/// A capability asked for and not granted.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Refusal {
    /// The capability, e.g. `route "smart"`.
    pub capability: String,
    /// Why, naming the policy key.
    pub reason: String,
}

/// Sorted prefixes without those another one already covers.
fn minimal(mut prefixes: Vec<String>) -> Arc<[String]> {
    prefixes.sort();
    prefixes.dedup();
    let mut out: Vec<String> = Vec::new();
    for p in prefixes {
        if !covered(&p, &out) {
            out.push(p);
        }
    }
    out.into()
}

/// Whether a prefix asked for lies inside one granted.
fn covered(asked: &str, granted: &[String]) -> bool {
    granted.iter().any(|g| asked.starts_with(g.as_str()))
}

/// What `requested` comes to under `policy`, and what was refused.
pub fn resolve(policy: &TenantPolicy, requested: &Capabilities) -> Grants {
    let mut refused = Vec::new();
    let mut names = |kind: &str, asked: &[String], grant: &NameGrant, field: &str| -> Arc<[String]> {
        let mut out = Vec::new();
        for name in asked {
            if grant.allows(name) {
                out.push(name.clone());
            } else {
                refused.push(Refusal {
                    capability: format!("{kind} {name:?}"),
                    reason: format!("not in {} = [{}]", policy.key(field), grant.describe()),
                });
            }
        }
        out.into()
    };
    let routes = names("route", &requested.routes, &policy.routes, "routes");
    let agents = names("agent", &requested.agents, &policy.agents, "agents");

    let board = requested.board();
    let readable: Vec<String> = policy.read.iter().chain(&policy.write).cloned().collect();
    let mut prefixes = |kind: &str, asked: &[String], granted: &[String], field: &str| -> Arc<[String]> {
        let mut out = Vec::new();
        for prefix in asked {
            // The keys under both: the longer prefix, where one extends the other.
            let both: Vec<String> = granted
                .iter()
                .filter_map(|g| match () {
                    () if prefix.starts_with(g.as_str()) => Some(prefix.clone()),
                    () if g.starts_with(prefix.as_str()) => Some(g.clone()),
                    () => None,
                })
                .collect();
            if !both.is_empty() {
                out.extend(both);
            } else {
                refused.push(Refusal {
                    capability: format!("blackboard {kind} {prefix:?}"),
                    reason: format!("not under any of {} = {:?}", policy.key(field), granted),
                });
            }
        }
        out.into()
    };
    let write = prefixes("write", &board.write, &policy.write, "blackboard.write");
    let read = prefixes("read", &board.read, &readable, "blackboard.read");
    // Writing implies reading what one writes.
    let read = minimal(read.iter().chain(write.iter()).cloned().collect());
    let write = minimal(write.to_vec());

    let approvals = requested.approvals && policy.approvals;
    if requested.approvals && !policy.approvals {
        refused
            .push(Refusal { capability: "approvals".into(), reason: format!("{} is false", policy.key("approvals")) });
    }
    let mut dirs = Vec::new();
    for guest in &requested.dirs {
        match policy.dirs.iter().find(|d| &d.guest == guest) {
            Some(d) => dirs.push(d.clone()),
            None if policy.open => {}
            None => refused.push(Refusal {
                capability: format!("directory {guest:?}"),
                reason: format!("no entry with guest = {guest:?} in {}", policy.key("dirs")),
            }),
        }
    }
    let tools = patterns(
        policy,
        ("tool", "tools"),
        &requested.tools,
        &policy.tools,
        paddock_core::tools::intersect,
        &mut refused,
    );
    let http =
        patterns(policy, ("host", "http"), &requested.http, &policy.http, paddock_core::hosts::intersect, &mut refused);
    // An address the tenant itself names is explicit; one a manifest names
    // under a tenant's "*" is not.
    let mut http_private = policy.http_private.clone();
    if let NameGrant::Only(granted) = &policy.http {
        http_private.extend(granted.iter().filter(|p| paddock_core::hosts::is_address(p)).cloned());
    }
    let http_private = http_private.into();
    Grants { routes, agents, read, write, approvals, dirs, tools, http, http_private, refused: refused.into() }
}

/// What `asked` patterns (of `kind`, granted by the policy's `field`) come
/// to under `grant`: each intersected with every granted one. A pattern
/// granted only in part is refused for the rest, naming what is granted.
fn patterns(
    policy: &TenantPolicy,
    (kind, field): (&str, &str),
    asked: &[String],
    grant: &NameGrant,
    intersect: fn(&str, &str) -> Option<String>,
    refused: &mut Vec<Refusal>,
) -> Arc<[String]> {
    let mut out = Vec::new();
    for asked in asked {
        let both: Vec<String> = match grant {
            NameGrant::Any => vec![asked.clone()],
            NameGrant::Only(granted) => granted.iter().filter_map(|g| intersect(asked, g)).collect(),
        };
        let (key, granted) = (policy.key(field), grant.describe());
        if both.is_empty() {
            refused.push(Refusal {
                capability: format!("{kind} {asked:?}"),
                reason: format!("not in {key} = [{granted}]"),
            });
        } else if !both.contains(asked) {
            refused.push(Refusal {
                capability: format!("{kind} {asked:?}"),
                reason: format!("{key} = [{granted}] grants only {} of it", both.join(", ")),
            });
        }
        out.extend(both);
    }
    out.sort();
    out.dedup();
    out.into()
}

#[cfg(test)]
mod tests;
