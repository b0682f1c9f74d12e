//! `paddock:agent/agents`: one agent calling another (the supervisor pattern).
//!
//! Checks happen here — the grant, the depth, cycles — and the call itself is
//! handed to a [`Dispatch`] the runtime provides, so this module needs no
//! knowledge of how agents are loaded or run.

use super::wit::agents::Host;
use super::{CallContext, traced};
use paddock_core::{Capabilities, TRACE_TARGET};
use paddock_journal as journal;
use paddock_tenants::Grants;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use wasmtime::component::HasData;

/// Runs an agent on behalf of another.
pub trait Dispatch: Send + Sync {
    /// Runs `agent` with `input` on behalf of `caller`. Errors are text
    /// starting with their kind (`denied:`, `failed:`, `limit:`, `crashed:`).
    fn call(
        &self,
        caller: CallerScope,
        agent: String,
        input: String,
    ) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send + 'static>>;
}

/// Who calls: what a callee inherits from its caller.
#[derive(Clone, Debug)]
pub struct CallerScope {
    /// The caller's tenant.
    pub tenant: Arc<str>,
    /// The caller's run.
    pub run: Arc<str>,
    /// The callers so far, outermost first, ending with the immediate caller.
    pub chain: Vec<Arc<str>>,
    /// The caller's run budget, which the callee's LLM calls spend too.
    pub budget: Option<Arc<paddock_quota::run::RunBudget>>,
    /// The calls made so far in the caller's call tree, which the callee's count in.
    pub made: Arc<AtomicU32>,
}

/// How far one invocation's `agents.call`s may reach: how deep they nest,
/// and how many are made in all, its callees' included — a loop of calls,
/// or a tree of them, is cut at `max_calls` rather than at the wall clock.
#[derive(Clone, Debug, Default)]
pub struct CallBounds {
    /// `limits.max-call-depth`.
    pub max_depth: u32,
    /// `limits.max-agent-calls`.
    pub max_calls: u32,
    /// Calls made so far in the call tree, shared by every invocation in it.
    pub made: Arc<AtomicU32>,
}

/// Per-invocation state of the `agents` interface.
pub struct AgentsCtx {
    call: Arc<CallContext>,
    grants: Arc<Grants>,
    requested: Arc<Capabilities>,
    chain: Vec<Arc<str>>,
    bounds: CallBounds,
    dispatch: Option<Arc<dyn Dispatch>>,
}

impl AgentsCtx {
    /// The agents interface for one invocation. `grants.agents` lists the
    /// agents it may call; `chain` its callers (outermost first, ending with itself).
    pub fn new(
        call: Arc<CallContext>,
        grants: Arc<Grants>,
        requested: Arc<Capabilities>,
        chain: Vec<Arc<str>>,
        bounds: CallBounds,
        dispatch: Option<Arc<dyn Dispatch>>,
    ) -> Self {
        AgentsCtx { call, grants, requested, chain, bounds, dispatch }
    }

    fn path(&self, next: &str) -> String {
        let mut names: Vec<&str> = self.chain.iter().map(|n| &**n).collect();
        names.push(next);
        names.join(" → ")
    }
}

impl AgentsCtx {
    async fn call_now(&self, (agent, input): (String, String)) -> wasmtime::Result<Result<String, String>> {
        let call = &self.call;
        if !self.grants.agents.contains(&agent) {
            let capability = format!("agent {agent:?}");
            let asked = &self.requested.agents;
            let why = self.grants.denial(&capability, &call.agent, &call.tenant, "capabilities.agents", asked);
            return Ok(Err(format!("denied: calling {why}")));
        }
        if self.chain.iter().any(|n| **n == *agent) {
            return Ok(Err(format!("denied: calling {agent:?} would make a cycle: {}", self.path(&agent))));
        }
        if self.chain.len() as u32 > self.bounds.max_depth {
            return Ok(Err(format!(
                "denied: call depth limit of {} reached (limits.max-call-depth): {}",
                self.bounds.max_depth,
                self.path(&agent)
            )));
        }
        let max = self.bounds.max_calls;
        if self.bounds.made.fetch_add(1, Ordering::Relaxed) >= max {
            self.bounds.made.fetch_sub(1, Ordering::Relaxed);
            return Ok(Err(format!(
                "denied: {max} agents.call made in this invocation and its callees, the most allowed (limits.max-agent-calls = {max})"
            )));
        }
        let Some(dispatch) = &self.dispatch else {
            return Ok(Err("denied: this host cannot run other agents from here".to_string()));
        };
        let caller = CallerScope {
            tenant: call.tenant.clone(),
            run: call.run.clone(),
            chain: self.chain.clone(),
            budget: call.budget.clone(),
            made: self.bounds.made.clone(),
        };
        Ok(dispatch.call(caller, agent, input).await)
    }
}

impl Host for AgentsCtx {
    /// Journaled as one call of the caller: the callee's answer is recorded,
    /// and a replay answers with it without running the callee.
    async fn call(&mut self, agent: String, input: String) -> wasmtime::Result<Result<String, String>> {
        let call = &self.call;
        call.check_size("agents.call input", input.len() + agent.len(), call.caps.io_bytes, "limits.max-io-bytes")?;
        let span =
            tracing::info_span!(target: TRACE_TARGET, "agents.call", agent = %agent, outcome = tracing::field::Empty);
        traced(span, journal::through(call.journal.as_deref(), "agents.call", (agent, input), |a| self.call_now(a)))
            .await
    }
}

/// [`HasData`] marker for the `agents` interface.
pub struct Agents;

impl HasData for Agents {
    type Data<'a> = &'a mut AgentsCtx;
}

impl super::Capability for AgentsCtx {
    const INTERFACE: &'static str = "agents";

    fn new(call: &Arc<CallContext>, lent: &super::Lent) -> Self {
        AgentsCtx::new(
            call.clone(),
            lent.grants.clone(),
            lent.requested.clone(),
            lent.chain.clone(),
            lent.call_bounds.clone(),
            lent.dispatch.clone(),
        )
    }

    fn add_to_linker<T: Send + 'static>(
        linker: &mut wasmtime::component::Linker<T>,
        get: fn(&mut T) -> &mut Self,
    ) -> wasmtime::Result<()> {
        super::wit::agents::add_to_linker::<T, Agents>(linker, get)
    }
}
