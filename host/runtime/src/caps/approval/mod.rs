//! `paddock:agent/approval`: human decisions, through the host's approval
//! service (the flow store's pending questions, answered with `paddock approve`).

use super::CallContext;
use super::wit::approval::Host;
use paddock_journal as journal;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::HasData;

/// A question for a person.
#[derive(Clone, Debug)]
pub struct Question {
    /// The tenant asking.
    pub tenant: Arc<str>,
    /// The run it is part of.
    pub run: Arc<str>,
    /// Who asks: an agent's name, or a flow's step.
    pub asker: String,
    /// The question.
    pub text: String,
    /// The answers on offer.
    pub options: Vec<String>,
    /// How long to wait for an answer.
    pub timeout: Duration,
}

/// Where questions go and answers come from.
pub trait Approvals: Send + Sync {
    /// Asks `question` and waits (holding no thread) for an answer: the
    /// option chosen, or an error text starting with its kind (`timeout`,
    /// `denied: ...`, `unavailable: ...`).
    fn ask(&self, question: Question) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send + 'static>>;
}

/// Per-invocation state of the `approval` interface.
pub struct ApprovalCtx {
    call: Arc<CallContext>,
    granted: bool,
    service: Option<Arc<dyn Approvals>>,
}

impl ApprovalCtx {
    /// The approval interface for one invocation; `granted` when its manifest
    /// asked for approvals and its tenant allows them.
    pub fn new(call: Arc<CallContext>, granted: bool, service: Option<Arc<dyn Approvals>>) -> Self {
        ApprovalCtx { call, granted, service }
    }
}

impl ApprovalCtx {
    async fn ask_now(
        &self,
        (question, options, timeout_ms): (String, Vec<String>, u32),
    ) -> wasmtime::Result<Result<String, String>> {
        if !self.granted {
            return Ok(Err(format!(
                "denied: approvals are not granted to agent {:?} for tenant {:?} (its manifest's capabilities.approvals and the tenant's approvals must both allow them)",
                &*self.call.agent, &*self.call.tenant
            )));
        }
        if options.is_empty() {
            return Ok(Err("denied: a question needs at least one option".to_string()));
        }
        let Some(service) = &self.service else {
            return Ok(Err("denied: approvals are not configured on this host".to_string()));
        };
        let question = Question {
            tenant: self.call.tenant.clone(),
            run: self.call.run.clone(),
            asker: self.call.agent.to_string(),
            text: question,
            options,
            timeout: Duration::from_millis(timeout_ms.into()),
        };
        Ok(service.ask(question).await)
    }
}

impl Host for ApprovalCtx {
    /// Journaled with its answer: a replay answers at once, asking no one.
    async fn ask(
        &mut self,
        question: String,
        options: Vec<String>,
        timeout_ms: u32,
    ) -> wasmtime::Result<Result<String, String>> {
        let size = question.len() + options.iter().map(String::len).sum::<usize>();
        self.call.check_size("approval question", size, self.call.caps.arg_bytes, "limits.max-arg-bytes")?;
        let args = (question, options, timeout_ms);
        journal::through(self.call.journal.as_deref(), "approval.ask", args, |a| self.ask_now(a)).await
    }
}

/// [`HasData`] marker for the `approval` interface.
pub struct Approval;

impl HasData for Approval {
    type Data<'a> = &'a mut ApprovalCtx;
}

impl super::Capability for ApprovalCtx {
    const INTERFACE: &'static str = "approval";

    fn new(call: &Arc<CallContext>, lent: &super::Lent) -> Self {
        ApprovalCtx::new(call.clone(), lent.grants.approvals, lent.approvals.clone())
    }

    fn add_to_linker<T: Send + 'static>(
        linker: &mut wasmtime::component::Linker<T>,
        get: fn(&mut T) -> &mut Self,
    ) -> wasmtime::Result<()> {
        super::wit::approval::add_to_linker::<T, Approval>(linker, get)
    }
}
