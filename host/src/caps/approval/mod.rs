//! `paddock:agent/approval`: human decisions. No approval service runs in
//! this host yet, so every question is refused, saying so.

use super::CallContext;
use super::wit::approval::Host;
use std::sync::Arc;
use wasmtime::component::HasData;

/// Per-invocation state of the `approval` interface.
#[derive(Debug)]
pub struct ApprovalCtx {
    call: Arc<CallContext>,
    granted: bool,
}

impl ApprovalCtx {
    /// The approval interface for one invocation; `granted` when its manifest
    /// asked for approvals and its tenant allows them.
    pub fn new(call: Arc<CallContext>, granted: bool) -> Self {
        ApprovalCtx { call, granted }
    }
}

impl Host for ApprovalCtx {
    async fn ask(
        &mut self,
        question: String,
        options: Vec<String>,
        _timeout_ms: u32,
    ) -> wasmtime::Result<Result<String, String>> {
        let size = question.len() + options.iter().map(String::len).sum::<usize>();
        self.call.check_size("approval question", size, self.call.caps.arg_bytes, "limits.max-arg-bytes")?;
        if !self.granted {
            return Ok(Err(format!(
                "denied: approvals are not granted to agent {:?} for tenant {:?} (its manifest's capabilities.approvals and the tenant's approvals must both allow them)",
                &*self.call.agent, &*self.call.tenant
            )));
        }
        Ok(Err("denied: approvals are not configured on this host".to_string()))
    }
}

/// [`HasData`] marker for the `approval` interface.
pub struct Approval;

impl HasData for Approval {
    type Data<'a> = &'a mut ApprovalCtx;
}

/// Adds `paddock:agent/approval` to `linker`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    get: fn(&mut T) -> &mut ApprovalCtx,
) -> wasmtime::Result<()> {
    super::wit::approval::add_to_linker::<T, Approval>(linker, get)
}
